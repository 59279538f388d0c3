/**
 * Gangs on EC2 (docs/adr/0028-gangs-on-ec2.md): the placement group, whole-gang fleets, EFA, and
 * the cleanup when the sweep ends. EC2 is mocked with aws-sdk-client-mock (asserting exactly
 * what is sent); the cleanup's place in the control loop runs reconcile on dynalite.
 */
import {
  type _InstanceType,
  CreateFleetCommand,
  type CreateFleetCommandInput,
  type CreateFleetCommandOutput,
  CreatePlacementGroupCommand,
  DeletePlacementGroupCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, test } from "vitest";
import { planEstimate } from "#cli/services/plan.js";
import type { SweepRecord } from "#core/model.js";
import type { Offer } from "#core/placement.js";
import { reconcile } from "#core/reconcile.js";
import { parseSpec, SpecError, type SweepSpecInput } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { loadCatalog } from "#providers/catalog/catalog.js";
import { useDynaliteStore } from "../../test/helpers/dynamo.js";
import { ec2Error, SimClock } from "../../test/helpers/sim-ec2.js";
import { clientToken, Ec2Compute, type RegionLaunchConfig } from "./ec2-compute.js";
import { Ec2Throttle } from "./ec2-throttle.js";
import { efaIssues, supportsEfa } from "./efa.js";
import { gangBatchSize, placementGroupName } from "./gang-launch.js";

const NOW = Date.UTC(2026, 0, 1);
const GROUP = "spawn-prod-ddp-abc";

function spec(extra: Partial<SweepSpecInput> = {}, resources: Partial<SweepSpecInput["resources"]> = {}) {
  return parseSpec({
    name: "ddp",
    command: "true",
    nodes: 4,
    max_instances: 8,
    ttl: "2h",
    ...extra,
    resources: { gpus: 8, regions: ["us-east-1", "us-west-2"], ...resources },
  });
}

function gangSweep(
  extra: Partial<SweepSpecInput> = {},
  resources: Partial<SweepSpecInput["resources"]> = {},
) {
  const s: SweepRecord = {
    sweepId: "ddp-abc",
    name: "ddp",
    owner: "me",
    provider: "aws",
    status: "running",
    active: true,
    spec: spec(extra, resources),
    taskCount: 8,
    shardCount: 1,
    launchSeq: 0,
    createdAt: NOW,
    updatedAt: NOW,
  };
  return s;
}

function offer(region: string, az: string, instanceType: string, price: number): Offer {
  return {
    instanceType,
    region,
    az,
    gpuName: "H100",
    gpuMaker: "NVIDIA",
    gpus: 8,
    vcpus: 192,
    memoryGiB: 2048,
    arch: "x86_64",
    market: "spot",
    pricePerHour: price,
    priceSource: "snapshot test",
  };
}

const OFFERS: Offer[] = [
  offer("us-east-1", "use1-az1", "p5.48xlarge", 30),
  offer("us-east-1", "use1-az2", "p5.48xlarge", 31),
  offer("us-east-1", "use1-az1", "g6.xlarge", 0.5),
  offer("us-west-2", "usw2-az1", "p5.48xlarge", 32),
];

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `ddp-abc-i${from + i}`);

describe("gang launches on EC2 (mocked)", () => {
  const ec2 = mockClient(EC2Client);
  const clients = new Map<string, EC2Client>();
  const client = (region: string) => {
    if (!clients.has(region))
      clients.set(region, new EC2Client({ region, credentials: { accessKeyId: "x", secretAccessKey: "y" } }));
    return clients.get(region) as EC2Client;
  };
  const subnet = (region: string, zone: "a" | "b") => `subnet-0${zone}${zone}${region.length}`;
  const withEfa = {
    efaLaunchTemplateId: "lt-0efa0000000000000",
    efaLaunchTemplateVersion: "3",
  };
  const make = (config: Partial<RegionLaunchConfig> = withEfa) => {
    const clock = new SimClock(NOW);
    return new Ec2Compute({
      client,
      offersFor: () => OFFERS,
      launchConfig: async (region) => ({
        launchTemplateId: "lt-0123456789abcdef0",
        launchTemplateVersion: "7",
        subnets: [
          { subnetId: subnet(region, "a"), az: `${region}a` },
          { subnetId: subnet(region, "b"), az: `${region}b` },
        ],
        ...config,
      }),
      stack: "spawn-prod",
      throttle: new Ec2Throttle({ clock, sleep: clock.sleep, random: () => 0.5 }),
    });
  };
  const fleets = () => ec2.commandCalls(CreateFleetCommand).map((c) => c.args[0].input);
  /** A fleet answer: `ids` of `type` in the subnet. */
  const landed = (ec2Ids: string[], type: _InstanceType, subnetId: string): CreateFleetCommandOutput => ({
    $metadata: {},
    Instances: [
      {
        InstanceIds: ec2Ids,
        Lifecycle: "spot",
        LaunchTemplateAndOverrides: { Overrides: { InstanceType: type, SubnetId: subnetId } },
      },
    ],
  });

  beforeEach(() => {
    ec2.reset();
    ec2.on(DescribeAvailabilityZonesCommand).resolves({
      AvailabilityZones: [
        { ZoneName: "us-east-1a", ZoneId: "use1-az1" },
        { ZoneName: "us-east-1b", ZoneId: "use1-az2" },
        { ZoneName: "us-west-2a", ZoneId: "usw2-az1" },
        { ZoneName: "us-west-2b", ZoneId: "usw2-az2" },
      ],
    });
    ec2.on(CreatePlacementGroupCommand).resolves({});
    ec2.on(DescribeInstancesCommand).resolves({ Reservations: [] });
  });

  test("two gangs: a placement group, then one all-or-nothing fleet per gang, the second in the first's zone", async () => {
    // Given EC2 places the first gang in us-east-1b and the second where it is told
    ec2
      .on(CreateFleetCommand)
      .resolvesOnce(landed(["i-04", "i-03", "i-02", "i-01"], "p5.48xlarge", subnet("us-east-1", "b")))
      .resolvesOnce(landed(["i-08", "i-07", "i-06", "i-05"], "p5.48xlarge", subnet("us-east-1", "b")));

    // When a gang sweep launches two gangs of 4
    const results = await make({}).launch({
      sweep: gangSweep(),
      instanceIds: ids(8),
      deadline: NOW + 7_200_000,
    });

    // Then the placement group was made once, tagged with the sweep, and looked up for live members
    expect(ec2.commandCalls(CreatePlacementGroupCommand).map((c) => c.args[0].input)).toEqual([
      {
        GroupName: GROUP,
        Strategy: "cluster",
        TagSpecifications: [
          {
            ResourceType: "placement-group",
            Tags: [
              { Key: "spawn:sweep", Value: "ddp-abc" },
              { Key: "spawn:stack", Value: "spawn-prod" },
            ],
          },
        ],
      },
    ]);
    expect(ec2.commandCalls(DescribeInstancesCommand)[0]?.args[0].input.Filters).toEqual([
      { Name: "placement-group-name", Values: [GROUP] },
      { Name: "instance-state-name", Values: ["pending", "running"] },
    ]);
    // And each gang is one fleet of 4 with MinTargetCapacity 4, one type, one zone, in the group
    const [first, second] = fleets();
    const inGroup = { Placement: { GroupName: GROUP } };
    expect(first).toMatchObject({
      Type: "instant",
      ClientToken: clientToken("us-east-1", "spot", ids(4)),
      LaunchTemplateConfigs: [
        {
          LaunchTemplateSpecification: { LaunchTemplateId: "lt-0123456789abcdef0", Version: "7" },
          Overrides: [
            { InstanceType: "p5.48xlarge", SubnetId: subnet("us-east-1", "a"), ...inGroup },
            { InstanceType: "p5.48xlarge", SubnetId: subnet("us-east-1", "b"), ...inGroup },
            { InstanceType: "g6.xlarge", SubnetId: subnet("us-east-1", "a"), ...inGroup },
          ],
        },
      ],
      TargetCapacitySpecification: {
        TotalTargetCapacity: 4,
        DefaultTargetCapacityType: "spot",
        SpotTargetCapacity: 4,
      },
      SpotOptions: {
        AllocationStrategy: "price-capacity-optimized",
        SingleInstanceType: true,
        SingleAvailabilityZone: true,
        MinTargetCapacity: 4,
      },
    });
    expect(first?.TagSpecifications?.[0]?.Tags).toContainEqual({
      Key: "spawn:launch",
      Value: "ddp-abc-i0..ddp-abc-i3",
    });
    // The second gang only in the zone the first landed in (use1-az2 = us-east-1b)
    expect(second?.ClientToken).toBe(clientToken("us-east-1", "spot", ids(4, 4)));
    expect(second?.LaunchTemplateConfigs?.[0]?.Overrides).toEqual([
      { InstanceType: "p5.48xlarge", SubnetId: subnet("us-east-1", "b"), ...inGroup },
    ]);
    expect(second?.SpotOptions?.MinTargetCapacity).toBe(4);
    // And every instance is recorded, gang by gang
    expect(results.map((r) => [r.instanceId, r.providerRef, r.placement?.az])).toEqual([
      ...ids(4).map((id, i) => [id, `i-0${i + 1}`, "use1-az2"]),
      ...ids(4, 4).map((id, i) => [id, `i-0${i + 5}`, "use1-az2"]),
    ]);
  });

  test("a duplicate placement group is success, and a retried launch sends the very same fleet", async () => {
    // Given the group exists already (an earlier pass made it) and EC2 answers by ClientToken
    ec2.on(CreatePlacementGroupCommand).rejects(ec2Error("InvalidPlacementGroup.Duplicate", "exists"));
    ec2
      .on(CreateFleetCommand)
      .resolves(landed(["i-1", "i-2", "i-3", "i-4"], "p5.48xlarge", subnet("us-east-1", "a")));

    // When the same launch runs twice, the second time seeing its own first gang in the group
    const first = await make({}).launch({ sweep: gangSweep(), instanceIds: ids(4) });
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            {
              InstanceId: "i-1",
              Placement: { AvailabilityZone: "us-east-1a" },
              Tags: [{ Key: "spawn:launch", Value: "ddp-abc-i0..ddp-abc-i3" }],
            },
          ],
        },
      ],
    });
    const again = await make({}).launch({ sweep: gangSweep(), instanceIds: ids(4) });

    // Then both launched, and EC2 was asked exactly the same thing (so it answers with the first fleet)
    expect(first.every((r) => r.providerRef)).toBe(true);
    expect(again.map((r) => r.providerRef)).toEqual(first.map((r) => r.providerRef));
    const [a, b] = fleets();
    expect(b).toEqual(a);
  });

  test("a replacement for a lost member goes alone, into the zone and region where the sweep's gangs run", async () => {
    // Given a member of the sweep still runs in us-west-2b (from another batch)
    ec2.on(DescribeInstancesCommand).callsFake(async (_input, getClient) =>
      (await getClient().config.region()) === "us-west-2"
        ? {
            Reservations: [
              {
                Instances: [
                  {
                    InstanceId: "i-9",
                    Placement: { AvailabilityZone: "us-west-2b" },
                    Tags: [{ Key: "spawn:launch", Value: "ddp-abc-i0..ddp-abc-i3" }],
                  },
                ],
              },
            ],
          }
        : { Reservations: [] },
    );
    ec2.on(CreateFleetCommand).resolves({});
    const offers = [...OFFERS, offer("us-west-2", "usw2-az2", "p5.48xlarge", 33)];
    const compute = new Ec2Compute({
      client,
      offersFor: () => offers,
      launchConfig: async (region) => ({
        launchTemplateId: "lt-0123456789abcdef0",
        launchTemplateVersion: "7",
        subnets: [
          { subnetId: subnet(region, "a"), az: `${region}a` },
          { subnetId: subnet(region, "b"), az: `${region}b` },
        ],
      }),
      stack: "spawn-prod",
      throttle: new Ec2Throttle({ clock: new SimClock(NOW), sleep: async () => {}, random: () => 0.5 }),
    });

    // When one instance (not a multiple of 4) is launched, and EC2 has no capacity
    const results = await compute.launch({ sweep: gangSweep(), instanceIds: ids(1, 8) });

    // Then only us-west-2 was asked, only in zone b, for exactly one instance, all or nothing
    expect(fleets()).toHaveLength(1);
    expect(ec2.commandCalls(CreateFleetCommand)[0]?.args[0].input).toMatchObject({
      LaunchTemplateConfigs: [
        {
          Overrides: [
            {
              InstanceType: "p5.48xlarge",
              SubnetId: subnet("us-west-2", "b"),
              Placement: { GroupName: GROUP },
            },
          ],
        },
      ],
      TargetCapacitySpecification: { TotalTargetCapacity: 1 },
      SpotOptions: { MinTargetCapacity: 1, SingleAvailabilityZone: true, SingleInstanceType: true },
    });
    expect(ec2.commandCalls(CreatePlacementGroupCommand)).toHaveLength(1);
    expect(ec2.commandCalls(CreatePlacementGroupCommand)[0]?.args[0].input.GroupName).toBe(GROUP);
    expect(results).toEqual([
      { instanceId: "ddp-abc-i8", error: expect.stringContaining("0 of 1 launched") },
    ]);
  });

  test("when EC2 cannot say where the sweep's gangs run, nothing is launched (it could split the sweep)", async () => {
    ec2.on(DescribeInstancesCommand).rejects(ec2Error("UnauthorizedOperation", "not allowed"));

    const results = await make({}).launch({ sweep: gangSweep(), instanceIds: ids(4) });

    expect(fleets()).toEqual([]);
    expect(results[0]?.error).toContain("cannot tell where the sweep's gangs run: UnauthorizedOperation");
  });

  test("fewer than a gang from EC2 are terminated and the gang is not launched, with the reason", async () => {
    // Given EC2 (against MinTargetCapacity) returns 3 of 4 in us-east-1 and nothing in us-west-2
    ec2
      .on(CreateFleetCommand)
      .resolvesOnce({
        ...landed(["i-1", "i-2", "i-3"], "p5.48xlarge", subnet("us-east-1", "a")),
        Errors: [{ ErrorCode: "InsufficientInstanceCapacity", ErrorMessage: "not enough p5" }],
      })
      .resolves({ Errors: [{ ErrorCode: "InsufficientInstanceCapacity", ErrorMessage: "none" }] });
    ec2.on(TerminateInstancesCommand).resolves({});

    // When a gang of 4 is launched
    const results = await make({}).launch({ sweep: gangSweep(), instanceIds: ids(4) });

    // Then the three are terminated, no member is recorded as launched, and each says why
    expect(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { InstanceIds: ["i-1", "i-2", "i-3"] },
    ]);
    expect(fleets().map((f) => f.ClientToken)).toEqual([
      clientToken("us-east-1", "spot", ids(4)),
      clientToken("us-west-2", "spot", ids(4)),
    ]);
    expect(results).toHaveLength(4);
    for (const r of results) {
      expect(r.providerRef).toBeUndefined();
      expect(r.error).toContain(
        "3 of 4 launched (InsufficientInstanceCapacity: not enough p5); terminated them",
      );
    }
  });

  test("resources.efa: the EFA launch template, and only types that have EFA", async () => {
    ec2
      .on(CreateFleetCommand)
      .resolves(landed(["i-1", "i-2", "i-3", "i-4"], "p5.48xlarge", subnet("us-east-1", "a")));

    await make().launch({ sweep: gangSweep({}, { efa: true }), instanceIds: ids(4) });

    const [fleet] = fleets();
    const config = fleet?.LaunchTemplateConfigs?.[0];
    expect(config?.LaunchTemplateSpecification).toEqual({
      LaunchTemplateId: "lt-0efa0000000000000",
      Version: "3",
    });
    expect(config?.Overrides?.map((o) => o.InstanceType)).toEqual(["p5.48xlarge", "p5.48xlarge"]);
  });

  test("resources.efa with a stack deployed before EFA launch templates: nothing launched, redeploy named", async () => {
    const results = await make({}).launch({ sweep: gangSweep({}, { efa: true }), instanceIds: ids(4) });

    expect(fleets()).toEqual([]);
    expect(results[0]?.error).toMatch(/resources\.efa: .*no EFA launch template; redeploy the stack/);
  });

  test("a budget that cannot pay for a whole gang launches none of it", async () => {
    // 4 × $30/h for 2 h is $240
    const results = await make({}).launch({
      sweep: gangSweep(),
      instanceIds: ids(4),
      deadline: NOW + 7_200_000,
      budgetLeft: 200,
    });
    expect(fleets()).toEqual([]);
    expect(results[0]?.error).toContain("less than a gang of 4 instances until its deadline");
  });

  test("a sweep without gangs makes no placement group and asks EC2 as before", async () => {
    ec2.on(CreateFleetCommand).resolves(landed(["i-1", "i-2"], "p5.48xlarge", subnet("us-east-1", "a")));
    await make({}).launch({ sweep: gangSweep({ nodes: 1 }), instanceIds: ids(2) });
    expect(ec2.commandCalls(CreatePlacementGroupCommand)).toEqual([]);
    const [fleet] = fleets() as CreateFleetCommandInput[];
    expect(fleet?.SpotOptions).toEqual({ AllocationStrategy: "price-capacity-optimized" });
    expect(fleet?.LaunchTemplateConfigs?.[0]?.Overrides?.[0]).not.toHaveProperty("Placement");
  });

  test("release deletes the placement group in every region it may be in; in use is held, unknown is gone", async () => {
    ec2
      .on(DeletePlacementGroupCommand)
      .rejectsOnce(ec2Error("InvalidPlacementGroup.InUse", "in use"))
      .rejectsOnce(ec2Error("InvalidPlacementGroup.Unknown", "no such group"));
    const compute = make({});

    const held = await compute.release(gangSweep(), []);

    expect(ec2.commandCalls(DeletePlacementGroupCommand).map((c) => c.args[0].input)).toEqual([
      { GroupName: GROUP },
      { GroupName: GROUP },
    ]);
    expect(held).toBe(`placement group ${GROUP} still has instances in us-east-1`);
    // Once EC2 lets it go, nothing is held; a sweep without gangs never had one
    ec2.on(DeletePlacementGroupCommand).resolves({});
    expect(await compute.release(gangSweep(), [])).toBeUndefined();
    ec2.resetHistory();
    expect(await compute.release(gangSweep({ nodes: 1 }), [])).toBeUndefined();
    expect(ec2.commandCalls(DeletePlacementGroupCommand)).toEqual([]);
  });

  describe("reconcile keeps an ended gang sweep active until its placement group is gone", () => {
    const db = useDynaliteStore("ganglaunch");

    test("held while EC2 says in use, deactivated once deleted", async () => {
      // Given a gang sweep on aws whose every member row succeeded
      const { store } = db();
      const clock = { now: () => NOW + 60_000 };
      const sweep = await createSweep(
        { store, clock: { now: () => NOW } },
        {
          sweepId: "ddp-abc",
          spec: spec({ params: { list: [{ a: 1 }] } }),
          tasks: [{ index: 0, taskId: "t0", params: { a: 1 } }],
          owner: "me",
          provider: "aws",
        },
      );
      await store.updateSweep(sweep.sweepId, {}, { status: "running" });
      for (const row of await store.listTasks(sweep.sweepId, sweep.shardCount))
        await store.updateTask(
          sweep.sweepId,
          row.index,
          sweep.shardCount,
          { status: "pending" },
          { status: "succeeded" },
        );
      ec2.on(DeletePlacementGroupCommand).rejects(ec2Error("InvalidPlacementGroup.InUse", "in use"));
      const compute = make({});

      // When reconcile finishes the sweep while the group still holds instances
      const first = await reconcile({ store, compute, clock }, sweep.sweepId);

      // Then it is succeeded but stays active, saying what is held
      expect(first.finished).toBe("succeeded");
      expect(first.deactivated).toBe(false);
      expect(first.held).toContain(GROUP);
      expect((await store.getSweep(sweep.sweepId))?.active).toBe(true);

      // When the group is deleted on a later pass (the last instance's terminated event)
      ec2.on(DeletePlacementGroupCommand).resolves({});
      const second = await reconcile({ store, compute, clock }, sweep.sweepId);

      // Then the sweep is deactivated
      expect(second.deactivated).toBe(true);
      expect((await store.getSweep(sweep.sweepId))?.active).toBe(false);
    });
  });
});

describe("EFA and gang sizes (pure)", () => {
  test("the EFA list names the types with EFA", () => {
    expect(
      ["p5.48xlarge", "p4d.24xlarge", "g6e.12xlarge", "g5.48xlarge", "trn1.32xlarge"].every(supportsEfa),
    ).toBe(true);
    expect(["g5.xlarge", "g6.4xlarge", "g4dn.xlarge", "p3.2xlarge", "p5.4xlarge"].some(supportsEfa)).toBe(
      false,
    );
  });

  test("efaIssues names resources.efa and the type, and passes globs and EFA types", () => {
    const issue = (nodes: number, resources: Partial<SweepSpecInput["resources"]>, allowed?: string[]) =>
      efaIssues(spec({ nodes, max_instances: 8 }, { efa: true, ...resources }), allowed);
    expect(issue(4, { instance_types: ["p5.48xlarge", "g5.xlarge"] })).toEqual([
      {
        path: "resources.efa",
        message: expect.stringMatching(/^g5\.xlarge has no EFA; drop it from resources\.instance_types/),
      },
    ]);
    expect(issue(1, { instance_types: ["p5.48xlarge"] })[0]?.message).toContain("set nodes above 1");
    expect(issue(4, { instance_types: ["g6.*"] }, ["g6.xlarge", "g6.2xlarge"])[0]?.message).toContain(
      "none of the instance types the spec allows has EFA (g6.xlarge, g6.2xlarge)",
    );
    expect(issue(4, { instance_types: ["p5.48xlarge", "g6.*"] }, ["g6.xlarge", "p5.48xlarge"])).toEqual([]);
    expect(efaIssues(spec({}, { instance_types: ["g5.xlarge"] }))).toEqual([]);
  });

  test("a launch is cut into whole gangs, a remainder (replacements) first", () => {
    const cut = (count: number, nodes: number) => {
      const sizes: number[] = [];
      for (let left = count; left > 0; left -= sizes[sizes.length - 1] as number)
        sizes.push(gangBatchSize(left, nodes));
      return sizes;
    };
    expect(cut(8, 4)).toEqual([4, 4]);
    expect(cut(9, 4)).toEqual([1, 4, 4]);
    expect(cut(3, 4)).toEqual([3]);
    expect(placementGroupName("spawn-prod", "ddp-abc")).toBe(GROUP);
  });
});

describe("resources.efa at plan time (cli/services/plan.ts, the real price catalog)", () => {
  const catalog = loadCatalog();
  const plan = (resources: Partial<SweepSpecInput["resources"]>) =>
    planEstimate(spec({ max_instances: 8 }, { regions: undefined, efa: true, ...resources }), 2, catalog);

  test("a named type without EFA is a spec error naming resources.efa and the type, before anything is made", () => {
    expect(() => plan({ gpus: 1, instance_types: ["g5.xlarge"] })).toThrow(SpecError);
    expect(() => plan({ gpus: 1, instance_types: ["g5.xlarge"] })).toThrow(
      /resources\.efa: g5\.xlarge has no EFA/,
    );
    expect(() => plan({ gpus: 1, instance_types: ["g6.x*", "g6e.x*"] })).toThrow(
      /resources\.efa: none of the instance types the spec allows has EFA/,
    );
  });

  test("with a glob, only the types that have EFA are estimated", () => {
    const estimate = plan({ gpus: 1, instance_types: ["g5.*"] }).estimate;
    expect(estimate?.offer.instanceType).toMatch(/^g5\.(8|12|16|24|48)xlarge$/);
    for (const alt of estimate?.alternatives ?? []) expect(supportsEfa(alt.instanceType)).toBe(true);
  });
});
