/**
 * Ec2Compute against a mocked EC2 client (aws-sdk-client-mock: what is sent, exactly) and
 * against the simulated EC2 (capacity per pool, token buckets, ClientToken idempotency).
 * Time is simulated: waits and backoffs advance a clock instead of sleeping.
 */
import {
  CreateFleetCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, test } from "vitest";
import type { InstanceRecord, SweepRecord } from "#core/model.js";
import type { Offer } from "#core/placement.js";
import { parseSpec, type SweepSpecInput } from "#core/spec.js";
import { a10gOffer, ec2Error, poolKey, SimClock, SimEc2, seeded } from "../../test/helpers/sim-ec2.js";
import { DNS_UPDATER_TAG } from "./dns.js";
import { clientToken, Ec2Compute, type Ec2ComputeOptions, launchStages } from "./ec2-compute.js";
import { Ec2Throttle } from "./ec2-throttle.js";

const NOW = Date.UTC(2026, 0, 1);

function sweep(
  extra: Partial<SweepSpecInput["resources"]> = {},
  more: Partial<SweepRecord> = {},
): SweepRecord {
  const spec = parseSpec({
    name: "fleet",
    command: "true",
    max_instances: 5000,
    ttl: "2h",
    resources: { gpus: 1, regions: ["us-east-1", "us-west-2"], ...extra },
  });
  return {
    sweepId: "fleet-abc",
    name: "fleet",
    owner: "me",
    provider: "aws",
    status: "running",
    active: true,
    spec,
    taskCount: 10,
    shardCount: 1,
    launchSeq: 0,
    createdAt: NOW,
    updatedAt: NOW,
    ...more,
  };
}

const offer = a10gOffer;

/** Two types × two AZs in each of two regions, spot and on-demand, ranked cheapest first. */
const OFFERS: Offer[] = [
  offer("us-east-1", "use1-az1", "g5.xlarge", "spot", 0.4),
  offer("us-east-1", "use1-az2", "g5.xlarge", "spot", 0.41),
  offer("us-east-1", "use1-az1", "g6.xlarge", "spot", 0.45),
  offer("us-east-1", "use1-az2", "g6.xlarge", "spot", 0.46),
  offer("us-west-2", "usw2-az1", "g5.xlarge", "spot", 0.42),
  offer("us-west-2", "usw2-az2", "g6.xlarge", "spot", 0.47),
  offer("us-east-1", "use1-az1", "g5.xlarge", "on-demand", 1.006),
  offer("us-west-2", "usw2-az1", "g5.xlarge", "on-demand", 1.006),
];

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `fleet-abc-i${from + i}`);

function world(capacity: Record<string, number>, options: Partial<Ec2ComputeOptions> = {}) {
  const clock = new SimClock(NOW);
  const sim = new SimEc2({ clock, capacity, random: seeded(1) });
  const throttle = new Ec2Throttle({ clock, sleep: clock.sleep, random: seeded(2) });
  const compute = new Ec2Compute({
    client: sim.client,
    offersFor: () => OFFERS,
    launchConfig: sim.launchConfig,
    stack: "spawn",
    throttle,
    ...options,
  });
  return { clock, sim, throttle, compute };
}

/** Plenty of capacity in every pool of OFFERS. */
const PLENTY = Object.fromEntries(
  OFFERS.map((o) => [poolKey(o.region, o.az, o.instanceType, o.market), 10_000]),
);

describe("CreateFleet inputs (mocked EC2)", () => {
  const ec2 = mockClient(EC2Client);
  const clients = new Map<string, EC2Client>();
  const client = (region: string) => {
    if (!clients.has(region)) {
      clients.set(region, new EC2Client({ region, credentials: { accessKeyId: "x", secretAccessKey: "y" } }));
    }
    return clients.get(region) as EC2Client;
  };
  const clock = new SimClock(NOW);
  const launchConfig = async (region: string) => ({
    launchTemplateId: "lt-0123456789abcdef0",
    launchTemplateVersion: "7",
    subnets: [
      { subnetId: `subnet-0aaa${region.length}`, az: `${region}a` },
      { subnetId: `subnet-0bbb${region.length}`, az: `${region}b` },
    ],
  });
  const sleeps: number[] = [];
  const make = (extra: Pick<Ec2ComputeOptions, "dns"> = {}) =>
    new Ec2Compute({
      ...extra,
      client,
      offersFor: () => OFFERS,
      launchConfig,
      stack: "spawn-prod",
      throttle: new Ec2Throttle({
        clock,
        sleep: async (ms) => {
          sleeps.push(ms);
          clock.advance(ms);
        },
        random: () => 0.5,
      }),
    });

  beforeEach(() => {
    ec2.reset();
    sleeps.length = 0;
    ec2.on(DescribeAvailabilityZonesCommand).resolves({
      AvailabilityZones: [
        { ZoneName: "us-east-1a", ZoneId: "use1-az1" },
        { ZoneName: "us-east-1b", ZoneId: "use1-az2" },
        { ZoneName: "us-west-2a", ZoneId: "usw2-az1" },
        { ZoneName: "us-west-2b", ZoneId: "usw2-az2" },
      ],
    });
  });

  test("tags instances with the dns-updater's name when the stack has hostnames, and only then", async () => {
    ec2.on(CreateFleetCommand).resolves({ Instances: [{ InstanceIds: ["i-0c"], Lifecycle: "spot" }] });
    const tagsOf = (call: number) =>
      ec2.commandCalls(CreateFleetCommand)[call]!.args[0].input.TagSpecifications!.map((t) => t.Tags);

    await make({ dns: { functionName: "spawn-prod-dns", zone: "spawn.example.com" } }).launch({
      sweep: sweep({}),
      instanceIds: ids(1),
      deadline: NOW + 7_200_000,
    });
    await make().launch({ sweep: sweep({}), instanceIds: ids(1, 5), deadline: NOW + 7_200_000 });

    for (const tags of tagsOf(0))
      expect(tags).toContainEqual({ Key: DNS_UPDATER_TAG, Value: "spawn-prod-dns spawn.example.com" });
    for (const tags of tagsOf(1)) expect(tags!.map((t) => t.Key)).not.toContain(DNS_UPDATER_TAG);
  });

  test("one instant spot fleet over types × subnets, price-capacity-optimized, tagged, with a ClientToken", async () => {
    // Given EC2 launches both instances asked for
    ec2.on(CreateFleetCommand).resolves({
      Instances: [
        {
          InstanceIds: ["i-0b", "i-0a"],
          Lifecycle: "spot",
          LaunchTemplateAndOverrides: { Overrides: { InstanceType: "g5.xlarge", SubnetId: "subnet-0aaa9" } },
        },
      ],
    });
    const s = sweep({ max_price: 0.9 });
    // When two instances are launched
    const results = await make().launch({ sweep: s, instanceIds: ids(2), deadline: NOW + 7_200_000 });
    // Then exactly this request was sent
    const calls = ec2.commandCalls(CreateFleetCommand);
    expect(calls).toHaveLength(1);
    const tags = [
      { Key: "spawn:sweep", Value: "fleet-abc" },
      { Key: "spawn:stack", Value: "spawn-prod" },
      { Key: "spawn:deadline", Value: "2026-01-01T02:00:00.000Z" },
      { Key: "spawn:launch", Value: "fleet-abc-i0..fleet-abc-i1" },
    ];
    expect(calls[0]?.args[0].input).toEqual({
      Type: "instant",
      ClientToken: clientToken("us-east-1", "spot", ids(2)),
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: { LaunchTemplateId: "lt-0123456789abcdef0", Version: "7" },
          Overrides: [
            { InstanceType: "g5.xlarge", SubnetId: "subnet-0aaa9", MaxPrice: "0.9" },
            { InstanceType: "g5.xlarge", SubnetId: "subnet-0bbb9", MaxPrice: "0.9" },
            { InstanceType: "g6.xlarge", SubnetId: "subnet-0aaa9", MaxPrice: "0.9" },
            { InstanceType: "g6.xlarge", SubnetId: "subnet-0bbb9", MaxPrice: "0.9" },
          ],
        },
      ],
      TargetCapacitySpecification: {
        TotalTargetCapacity: 2,
        DefaultTargetCapacityType: "spot",
        SpotTargetCapacity: 2,
      },
      SpotOptions: { AllocationStrategy: "price-capacity-optimized" },
      TagSpecifications: [
        { ResourceType: "instance", Tags: tags },
        { ResourceType: "volume", Tags: tags },
      ],
    });
    expect(calls[0]?.args[0].input.ClientToken).toMatch(/^spawn-[0-9a-f]{48}$/);
    // And the instances map to our ids in a stable order, with where they landed and the price
    expect(results).toEqual([
      {
        instanceId: "fleet-abc-i0",
        providerRef: "i-0a",
        gpus: 1,
        placement: {
          instanceType: "g5.xlarge",
          region: "us-east-1",
          az: "use1-az1",
          market: "spot",
          pricePerHour: 0.4,
          priceSource: "snapshot test",
        },
      },
      expect.objectContaining({ instanceId: "fleet-abc-i1", providerRef: "i-0b" }),
    ]);
  });

  test("the ClientToken depends on the reserved ids, region and market: the same launch sends the same token", async () => {
    // Given EC2 answering every fleet
    ec2.on(CreateFleetCommand).resolves({ Instances: [{ InstanceIds: ["i-1"], Lifecycle: "spot" }] });
    // When the same launch runs twice (a retried invocation), and a different batch once
    await make().launch({ sweep: sweep(), instanceIds: ids(1) });
    await make().launch({ sweep: sweep(), instanceIds: ids(1) });
    await make().launch({ sweep: sweep(), instanceIds: ids(1, 1) });
    // Then the first two carry the same token and the third another
    const tokens = ec2.commandCalls(CreateFleetCommand).map((c) => c.args[0].input.ClientToken);
    expect(tokens[0]).toBe(tokens[1]);
    expect(tokens[2]).not.toBe(tokens[0]);
  });

  test("RequestLimitExceeded is retried with full-jitter exponential backoff, bounded", async () => {
    // Given EC2 throttles the first two CreateFleet calls
    ec2
      .on(CreateFleetCommand)
      .rejectsOnce(ec2Error("RequestLimitExceeded", "Request limit exceeded."))
      .rejectsOnce(ec2Error("RequestLimitExceeded", "Request limit exceeded."))
      .resolves({ Instances: [{ InstanceIds: ["i-1"], Lifecycle: "spot" }] });
    // When one instance is launched
    const [result] = await make().launch({ sweep: sweep(), instanceIds: ids(1) });
    // Then the third send succeeded, after waits of random × 200 ms and random × 400 ms (random = 0.5)
    expect(result?.providerRef).toBe("i-1");
    expect(ec2.commandCalls(CreateFleetCommand)).toHaveLength(3);
    expect(sleeps).toEqual([100, 200]);
    // And the same ClientToken on every send, so a throttled-but-accepted call is not duplicated
    expect(new Set(ec2.commandCalls(CreateFleetCommand).map((c) => c.args[0].input.ClientToken)).size).toBe(
      1,
    );
  });

  test("throttling that never ends gives up after maxAttempts and reports it on the instances", async () => {
    // Given EC2 throttles every call
    ec2.on(CreateFleetCommand).rejects(ec2Error("RequestLimitExceeded", "Request limit exceeded."));
    // When one instance is launched
    const [result] = await make().launch({ sweep: sweep(), instanceIds: ids(1) });
    // Then 8 sends per region were made (2 regions), and the instance has the reason
    expect(ec2.commandCalls(CreateFleetCommand)).toHaveLength(16);
    expect(result?.error).toContain("RequestLimitExceeded");
    expect(Math.max(...sleeps)).toBeLessThanOrEqual(20_000 * 0.5);
  });

  test("terminate sends TerminateInstances per region in batches of 1000, dropping ids EC2 no longer knows", async () => {
    // Given 1500 instances in us-east-1 and one in us-west-2, one of which EC2 has forgotten
    const record = (i: number, region: string): InstanceRecord => ({
      sweepId: "fleet-abc",
      instanceId: `fleet-abc-i${i}`,
      provider: "aws",
      status: "running",
      slots: 1,
      launchedAt: NOW,
      deadline: NOW + 1,
      providerRef: `i-${i.toString(16).padStart(8, "0")}`,
      placement: { instanceType: "g5.xlarge", region, market: "spot", pricePerHour: 0.4, priceSource: "t" },
    });
    const instances = [
      ...Array.from({ length: 1500 }, (_, i) => record(i, "us-east-1")),
      record(9999, "us-west-2"),
    ];
    ec2
      .on(TerminateInstancesCommand)
      .rejectsOnce(ec2Error("InvalidInstanceID.NotFound", "The instance ID 'i-00000005' does not exist"))
      .resolves({});
    // When they are terminated
    await make().terminate(instances, "ttl reached");
    // Then: 1000 (refused for one id), 999 again, 500, then 1 in the other region
    const sent = ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input.InstanceIds ?? []);
    expect(sent.map((s) => s.length)).toEqual([1000, 999, 500, 1]);
    expect(sent[1]).not.toContain("i-00000005");
    expect(sent[3]).toEqual(["i-0000270f"]);
  });

  test("describe maps EC2 states; an id EC2 does not know is gone; a spot termination is a preemption", async () => {
    // Given three recorded instances and one still without an EC2 id
    const rec = (n: number, ref?: string): InstanceRecord => ({
      sweepId: "fleet-abc",
      instanceId: `fleet-abc-i${n}`,
      provider: "aws",
      status: "running",
      slots: 1,
      launchedAt: NOW,
      deadline: NOW + 1,
      ...(ref
        ? {
            providerRef: ref,
            placement: {
              instanceType: "g5.xlarge",
              region: "us-east-1",
              market: "spot",
              pricePerHour: 1,
              priceSource: "t",
            },
          }
        : {}),
    });
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            { InstanceId: "i-run", State: { Name: "running" } },
            {
              InstanceId: "i-pre",
              State: { Name: "terminated" },
              StateReason: { Code: "Server.SpotInstanceTermination", Message: "Spot instance termination" },
            },
          ],
        },
      ],
    });
    // When they are described
    const seen = await make().describe([rec(0, "i-run"), rec(1, "i-pre"), rec(2, "i-forgotten"), rec(3)]);
    // Then
    expect(seen).toEqual(
      expect.arrayContaining([
        { instanceId: "fleet-abc-i0", state: "running" },
        { instanceId: "fleet-abc-i1", state: "gone", preempted: true, reason: "Spot instance termination" },
        { instanceId: "fleet-abc-i2", state: "gone" },
        { instanceId: "fleet-abc-i3", state: "pending" },
      ]),
    );
    expect(seen).toHaveLength(4);
    // And the filter (not InstanceIds) was used, so one forgotten id does not fail the call
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input).toEqual({
      Filters: [{ Name: "instance-id", Values: ["i-run", "i-pre", "i-forgotten"] }],
    });
  });
});

describe("fallback chain (simulated EC2)", () => {
  test("spot short in the preferred region's pools → the next region's spot", async () => {
    // Given us-east-1 spot holds 3 instances in all, us-west-2 plenty
    const { sim, compute } = world({
      ...PLENTY,
      [poolKey("us-east-1", "use1-az1", "g5.xlarge", "spot")]: 2,
      [poolKey("us-east-1", "use1-az2", "g5.xlarge", "spot")]: 1,
      [poolKey("us-east-1", "use1-az1", "g6.xlarge", "spot")]: 0,
      [poolKey("us-east-1", "use1-az2", "g6.xlarge", "spot")]: 0,
    });
    // When 10 instances are launched
    const results = await compute.launch({ sweep: sweep(), instanceIds: ids(10) });
    // Then 3 came from us-east-1 (across AZs and types in one fleet), 7 from us-west-2, all spot
    expect(results.every((r) => r.providerRef)).toBe(true);
    const regions = results.map((r) => r.placement?.region);
    expect(regions.filter((r) => r === "us-east-1")).toHaveLength(3);
    expect(regions.filter((r) => r === "us-west-2")).toHaveLength(7);
    expect(results.every((r) => r.placement?.market === "spot")).toBe(true);
    expect(sim.fleets.map((f) => f.region)).toEqual(["us-east-1", "us-west-2"]);
  });

  test("spot short everywhere → on-demand when on_demand_fallback; without it, the instances fail with the reason", async () => {
    const noSpot = Object.fromEntries(Object.keys(PLENTY).map((k) => [k, k.endsWith("/spot") ? 0 : 100]));
    // Given no spot capacity anywhere, and a spec that allows on-demand
    const a = world(noSpot);
    const ok = await a.compute.launch({ sweep: sweep({ on_demand_fallback: true }), instanceIds: ids(4) });
    // Then the instances run on-demand in the preferred region, at the on-demand price
    expect(ok.map((r) => r.placement?.market)).toEqual(["on-demand", "on-demand", "on-demand", "on-demand"]);
    expect(ok[0]?.placement).toMatchObject({ region: "us-east-1", pricePerHour: 1.006 });
    expect(a.sim.fleets.map((f) => f.input.TargetCapacitySpecification?.DefaultTargetCapacityType)).toEqual([
      "spot",
      "spot",
      "on-demand",
    ]);
    // Given the same, but a spec without on-demand fallback
    const b = world(noSpot);
    const failed = await b.compute.launch({ sweep: sweep(), instanceIds: ids(2) });
    // Then nothing launched, and each instance says why, naming the capacity error
    expect(failed.every((r) => r.error?.includes("InsufficientInstanceCapacity"))).toBe(true);
  });

  test("after fallback_after_preemptions preemptions, launches go straight to on-demand", async () => {
    const s = sweep({ on_demand_fallback: true, fallback_after_preemptions: 3 }, { preemptions: 3 });
    expect(launchStages(s, OFFERS).map((st) => `${st.region} ${st.market}`)).toEqual([
      "us-east-1 on-demand",
      "us-west-2 on-demand",
    ]);
    const { compute } = world(PLENTY);
    const results = await compute.launch({ sweep: s, instanceIds: ids(2) });
    expect(results.map((r) => r.placement?.market)).toEqual(["on-demand", "on-demand"]);
  });

  test("a region whose API fails is skipped for a bounded time, then tried again", async () => {
    // Given us-east-1's launch configuration cannot be read (a broken region)
    let broken = true;
    const clock = new SimClock(NOW);
    const sim = new SimEc2({ clock, capacity: PLENTY, random: seeded(1) });
    const compute = new Ec2Compute({
      client: sim.client,
      offersFor: () => OFFERS,
      launchConfig: async (region) => {
        if (broken && region === "us-east-1") throw new Error("ParameterNotFound");
        return sim.launchConfig(region);
      },
      stack: "spawn",
      throttle: new Ec2Throttle({ clock, sleep: clock.sleep }),
      regionFailureTtlMs: 600_000,
    });
    // When a launch runs, then another one minute later after the region is repaired
    const first = await compute.launch({ sweep: sweep(), instanceIds: ids(1) });
    broken = false;
    clock.advance(60_000);
    const second = await compute.launch({ sweep: sweep(), instanceIds: ids(1, 1) });
    // Then both went to us-west-2 (the failure is remembered) ...
    expect(first[0]?.placement?.region).toBe("us-west-2");
    expect(second[0]?.placement?.region).toBe("us-west-2");
    // ... until the failure expires, when us-east-1 is tried again
    clock.advance(600_000);
    const third = await compute.launch({ sweep: sweep(), instanceIds: ids(1, 2) });
    expect(third[0]?.placement?.region).toBe("us-east-1");
  });

  test("the same launch twice (a duplicated invocation) gets the same instances from EC2, not new ones", async () => {
    const { sim, compute } = world(PLENTY);
    const a = await compute.launch({ sweep: sweep(), instanceIds: ids(5) });
    const b = await compute.launch({ sweep: sweep(), instanceIds: ids(5) });
    expect(b.map((r) => r.providerRef)).toEqual(a.map((r) => r.providerRef));
    expect(sim.live()).toHaveLength(5);
  });
});

describe("token buckets", () => {
  test("a launch larger than the RunInstances bucket is batched to it: 1000 at once, the rest as it refills", async () => {
    // Given one region, plenty of capacity
    const { clock, sim, compute } = world(PLENTY, { maxLaunchWaitMs: 3_600_000 });
    const s = sweep({ regions: ["us-east-1"] });
    // When 1,200 instances are launched
    const results = await compute.launch({ sweep: s, instanceIds: ids(1200) });
    // Then all were launched, never refused by EC2, in 1000 then batches of 50 as the bucket refilled (2/s)
    expect(results.every((r) => r.providerRef)).toBe(true);
    expect(sim.throttled).toBe(0);
    const sizes = sim.fleets.map((f) => f.input.TargetCapacitySpecification?.TotalTargetCapacity);
    expect(sizes[0]).toBe(1000);
    expect(sizes.slice(1).every((n) => n === 50)).toBe(true);
    // And it took what the bucket allows: 200 more instances at 2 per second = 100 s
    expect(clock.now() - NOW).toBe(100_000);
  });

  test("a launch that would wait longer than maxLaunchWaitMs leaves the rest to the next pass, saying why", async () => {
    const { compute } = world(PLENTY, { maxLaunchWaitMs: 10_000 });
    const results = await compute.launch({
      sweep: sweep({ regions: ["us-east-1"] }),
      instanceIds: ids(1100),
    });
    expect(results.filter((r) => r.providerRef)).toHaveLength(1000);
    expect(results.filter((r) => r.error)[0]?.error).toContain("RunInstances resource bucket");
  });

  test("with three regions, buckets empty in one region spill to the others before waiting", async () => {
    const { clock, sim, compute } = world(PLENTY);
    const s = sweep({ regions: ["us-east-1", "us-west-2"] });
    const results = await compute.launch({ sweep: s, instanceIds: ids(1500) });
    expect(results.every((r) => r.providerRef)).toBe(true);
    expect(clock.now()).toBe(NOW);
    expect(
      sim.fleets.map((f) => [f.region, f.input.TargetCapacitySpecification?.TotalTargetCapacity]),
    ).toEqual([
      ["us-east-1", 1000],
      ["us-west-2", 500],
    ]);
  });

  test("budgetLeft caps how many instances a launch starts", async () => {
    // Given $10 left, instances for 2 h, and spot at $0.40–0.46/h in us-east-1
    const { compute } = world(PLENTY);
    // When 20 are asked for
    const results = await compute.launch({
      sweep: sweep({ regions: ["us-east-1"] }),
      instanceIds: ids(20),
      deadline: NOW + 7_200_000,
      budgetLeft: 10,
    });
    // Then what was launched costs at most $10 until the deadline (counted at the dearest offer
    // before each fleet, then at the price obtained), within one instance of it, and the rest say why
    const launched = results.filter((r) => r.providerRef);
    const cost = launched.reduce((sum, r) => sum + (r.placement?.pricePerHour ?? 0) * 2, 0);
    expect(cost).toBeLessThanOrEqual(10);
    expect(cost).toBeGreaterThan(10 - 0.46 * 2);
    expect(results.filter((r) => r.error)[0]?.error).toContain("budget");
  });
});
