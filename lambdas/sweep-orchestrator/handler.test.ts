/**
 * The deployed handler, end to end: its real middy chain and container wiring, DynamoDB on
 * dynalite (through the SDK's AWS_ENDPOINT_URL_DYNAMODB), EC2, SSM and EventBridge through
 * aws-sdk-client-mock. The EC2 mock behaves like EC2 where it matters here: a CreateFleet with a
 * ClientToken it has seen returns the same instances, and DescribeInstances reports what it holds.
 */
import { randomUUID } from "node:crypto";
import {
  CreateFleetCommand,
  type CreateFleetCommandInput,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { GetInstanceProfileCommand, IAMClient, NoSuchEntityException } from "@aws-sdk/client-iam";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from "vitest";
import { expandParams } from "#core/params.js";
import { systemClock } from "#core/ports.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { ORCHESTRATOR_SOURCE } from "#providers/aws/events.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const eb = mockClient(EventBridgeClient);
const iam = mockClient(IAMClient);

const PREFIX = `orch${randomUUID().slice(0, 6)}-`;
const LAUNCH_CONFIG = {
  launchTemplateId: "lt-0123456789abcdef0",
  launchTemplateVersion: "3",
  subnets: [
    { subnetId: "subnet-0a", az: "us-east-1a" },
    { subnetId: "subnet-0b", az: "us-east-1b" },
  ],
  securityGroupId: "sg-0123",
};

/** What the fake EC2 holds: instances by id, and the fleets each ClientToken created. */
interface Ec2World {
  instances: Map<string, { state: string; reason?: { Code: string; Message: string } }>;
  fleets: Map<string, string[]>;
}
const world: Ec2World = { instances: new Map(), fleets: new Map() };

/** EC2 ids are never reused, across tests too (the store finds instances by them). */
let nextEc2Id = 0x1000;

function fakeEc2(): void {
  ec2.on(CreateFleetCommand).callsFake(async (input: CreateFleetCommandInput) => {
    const token = input.ClientToken ?? "";
    let ids = world.fleets.get(token);
    if (!ids) {
      const n = input.TargetCapacitySpecification?.TotalTargetCapacity ?? 0;
      ids = Array.from({ length: n }, () => `i-${(nextEc2Id++).toString(16).padStart(17, "0")}`);
      world.fleets.set(token, ids);
      for (const id of ids) world.instances.set(id, { state: "running" });
    }
    const override = input.LaunchTemplateConfigs?.[0]?.Overrides?.[0];
    return {
      FleetId: `fleet-${token.slice(-8)}`,
      Instances: [
        {
          InstanceIds: ids,
          InstanceType: override?.InstanceType,
          Lifecycle: "spot",
          LaunchTemplateAndOverrides: {
            Overrides: { InstanceType: override?.InstanceType, SubnetId: override?.SubnetId },
          },
        },
      ],
      Errors: [],
    };
  });
  // This account's names for the catalog's zone ids (names differ per account; ids do not).
  ec2.on(DescribeAvailabilityZonesCommand).resolves({
    AvailabilityZones: [
      { ZoneName: "us-east-1a", ZoneId: "use1-az2" },
      { ZoneName: "us-east-1b", ZoneId: "use1-az4" },
    ],
  });
  ec2.on(DescribeInstancesCommand).callsFake(async (input) => {
    const ids: string[] = input.Filters?.[0]?.Values ?? input.InstanceIds ?? [];
    const known = ids.filter((id) => world.instances.has(id));
    return {
      Reservations: [
        {
          Instances: known.map((id) => {
            const i = world.instances.get(id)!;
            return {
              InstanceId: id,
              State: { Name: i.state },
              ...(i.reason ? { StateReason: i.reason } : {}),
            };
          }),
        },
      ],
    };
  });
  ec2.on(TerminateInstancesCommand).callsFake(async (input) => {
    for (const id of input.InstanceIds ?? []) {
      const i = world.instances.get(id);
      if (i) i.state = "terminated";
    }
    return { TerminatingInstances: [] };
  });
}

let engine: DynamoEngine;
let store: DynamoStateStore;
let handler: (event: unknown, context: Context) => Promise<unknown>;
let logLines: string[] = [];

const context = (remainingMs = 120_000) =>
  ({
    awsRequestId: `req-${randomUUID().slice(0, 8)}`,
    functionName: "spawn-sweep-orchestrator",
    getRemainingTimeInMillis: () => remainingMs,
  }) as unknown as Context;

const invoke = (event: unknown, ctx = context()) => handler(event, ctx) as Promise<Record<string, unknown>>;

beforeAll(async () => {
  engine = await startDynalite();
  await ensureTables(engine.client, PREFIX);
  store = new DynamoStateStore(engine.client, PREFIX);
  Object.assign(process.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL_DYNAMODB: engine.endpoint,
    SPAWN_TABLE_PREFIX: PREFIX,
    SPAWN_ARTIFACTS_BUCKET: "spawn-artifacts",
    SPAWN_RESULTS_BUCKET: "spawn-results",
    SPAWN_EVENT_BUS: "spawn-bus",
    SPAWN_LAUNCH_CONFIG_PARAM: "/spawn/spawn/launch-config",
    SPAWN_STACK_NAME: "spawn",
    SPAWN_INSTANCE_PROFILE_ARN: "arn:aws:iam::123456789012:instance-profile/spawn-agent",
    SPAWN_HOME_REGION: "us-east-1",
  });
  // Imported only now: the handler reads its environment once, at cold start, like in Lambda.
  handler = (await import("./handler.js")).handler as unknown as typeof handler;
});

afterAll(async () => {
  await engine.close();
});

beforeEach(() => {
  ec2.reset();
  ssm.reset();
  eb.reset();
  iam.reset();
  fakeEc2();
  // These sweeps were written without a role of their own (as a schedule's or a queue's are):
  // their instances keep the launch template's profile (ADR 36).
  iam
    .on(GetInstanceProfileCommand)
    .rejects(new NoSuchEntityException({ message: "no such profile", $metadata: {} }));
  ssm.on(GetParameterCommand).resolves({ Parameter: { Value: JSON.stringify(LAUNCH_CONFIG) } });
  eb.on(PutEventsCommand).callsFake(async (input) => ({
    FailedEntryCount: 0,
    Entries: (input.Entries ?? []).map(() => ({ EventId: randomUUID() })),
  }));
  logLines = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk) => {
    logLines.push(String(chunk));
    return true;
  });
});

/** A running aws sweep of `tasks` pending tasks on g5.xlarge spot in us-east-1. */
async function awsSweep(tasks: number, maxInstances: number) {
  const spec = parseSpec({
    name: "orch",
    command: "echo {{i}}",
    params: { grid: { i: { range: [0, tasks] } } },
    max_instances: maxInstances,
    resources: { gpus: 1, instance_types: ["g5.xlarge"], regions: ["us-east-1"] },
  });
  return createSweep(
    { store, clock: systemClock },
    {
      sweepId: `orch-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "tester",
      provider: "aws",
    },
  );
}

const fleetCalls = () => ec2.commandCalls(CreateFleetCommand).map((c) => c.args[0].input);
const liveInstances = async (sweepId: string) =>
  (await store.listInstances(sweepId)).filter((i) => i.status !== "terminated");

describe("sweep-orchestrator handler", () => {
  it("a tick reconciles every active sweep: CreateFleet per sweep, instances recorded with their EC2 ids", async () => {
    // Given two new sweeps nobody has reconciled yet
    const a = await awsSweep(3, 2);
    const b = await awsSweep(1, 4);
    // When the periodic rule fires
    const result = await invoke({ kind: "tick" });
    // Then both are reconciled: a asks for 2 instances (max_instances), b for 1 (its open work)
    expect(result).toMatchObject({ kind: "tick", deferred: [], launched: 3 });
    // Each sweep's own instance profile was looked up; these have none, so the template's is used
    expect(iam.commandCalls(GetInstanceProfileCommand).length).toBeGreaterThanOrEqual(2);
    const bySweep = new Map(
      fleetCalls().map((input) => [
        input.TagSpecifications?.[0]?.Tags?.find((t) => t.Key === "spawn:sweep")?.Value,
        input,
      ]),
    );
    expect(bySweep.get(a.sweepId)).toMatchObject({
      Type: "instant",
      SpotOptions: { AllocationStrategy: "price-capacity-optimized" },
      TargetCapacitySpecification: { TotalTargetCapacity: 2, DefaultTargetCapacityType: "spot" },
      LaunchTemplateConfigs: [
        { LaunchTemplateSpecification: { LaunchTemplateId: "lt-0123456789abcdef0", Version: "3" } },
      ],
    });
    expect(bySweep.get(b.sweepId)?.TargetCapacitySpecification?.TotalTargetCapacity).toBe(1);
    const recorded = await liveInstances(a.sweepId);
    expect(recorded).toHaveLength(2);
    for (const i of recorded) expect(world.instances.get(i.providerRef ?? "")?.state).toBe("running");
    // The launch configuration came from the stack's SSM parameter in the launch region
    expect(ssm.commandCalls(GetParameterCommand)[0]?.args[0].input).toEqual({
      Name: "/spawn/spawn/launch-config",
    });
    // What happened was published on the stack bus, as the orchestrator (never as the CLI's kick)
    const entries = eb.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    expect(entries.filter((e) => e.DetailType === "InstanceLaunched")).toHaveLength(3);
    for (const e of entries)
      expect(e).toMatchObject({ EventBusName: "spawn-bus", Source: ORCHESTRATOR_SOURCE });
  });

  it("the same interruption and state-change events delivered twice replace the instance once", async () => {
    // Given a sweep with one running instance
    const sweep = await awsSweep(2, 1);
    await invoke({ kind: "sweep", sweepId: sweep.sweepId });
    const [first] = await liveInstances(sweep.sweepId);
    const ec2Id = first?.providerRef ?? "";
    expect(ec2Id).toMatch(/^i-/);
    expect(fleetCalls()).toHaveLength(1);
    // When spot warns, then takes it back, and EventBridge delivers each event twice
    const warning = {
      version: "0",
      id: randomUUID(),
      source: "aws.ec2",
      "detail-type": "EC2 Spot Instance Interruption Warning",
      account: "123456789012",
      time: new Date().toISOString(),
      region: "us-east-1",
      resources: [`arn:aws:ec2:us-east-1a:instance/${ec2Id}`],
      detail: { "instance-id": ec2Id, "instance-action": "terminate" },
    };
    await invoke(warning);
    await invoke(warning);
    expect(fleetCalls()).toHaveLength(1); // still running: nothing to replace yet
    world.instances.set(ec2Id, {
      state: "terminated",
      reason: { Code: "Server.SpotInstanceTermination", Message: "Server.SpotInstanceTermination: Spot" },
    });
    const stateChange = {
      ...warning,
      id: randomUUID(),
      "detail-type": "EC2 Instance State-change Notification",
      detail: { "instance-id": ec2Id, state: "terminated" },
    };
    const r1 = await invoke(stateChange);
    const r2 = await invoke(stateChange);
    // Then the first delivery replaced it and the second found nothing to do
    expect(r1).toMatchObject({
      kind: "instance",
      sweepId: sweep.sweepId,
      result: { launched: 1, terminated: 1 },
    });
    expect(r2).toMatchObject({
      kind: "instance",
      sweepId: sweep.sweepId,
      result: { launched: 0, terminated: 0 },
    });
    const tokens = fleetCalls().map((f) => f.ClientToken);
    expect(tokens).toHaveLength(2);
    expect(new Set(tokens).size).toBe(2);
    const live = await liveInstances(sweep.sweepId);
    expect(live).toHaveLength(1);
    expect(live[0]?.providerRef).not.toBe(ec2Id);
    expect((await store.getInstance(sweep.sweepId, first!.instanceId))?.status).toBe("terminated");
  });

  it("an instance spawn did not launch is ignored", async () => {
    const result = await invoke({
      source: "aws.ec2",
      "detail-type": "EC2 Instance State-change Notification",
      time: new Date().toISOString(),
      region: "us-east-1",
      detail: { "instance-id": "i-0fedcba9876543210", state: "terminated" },
    });
    expect(result).toEqual({
      kind: "instance",
      ec2InstanceId: "i-0fedcba9876543210",
      ignored: "not a spawn instance",
    });
    expect(fleetCalls()).toHaveLength(0);
  });

  it("drops invalid events with a message naming the field, and does not throw (no endless retries)", async () => {
    const bad = [
      [{ kind: "reconcile-everything" }, /kind is "reconcile-everything"/],
      [{ kind: "sweep" }, /invalid sweep event[\s\S]*sweepId/],
      [
        {
          source: "aws.ec2",
          "detail-type": "EC2 Spot Instance Interruption Warning",
          time: "t",
          region: "us-east-1",
          detail: { "instance-id": "not-an-id", "instance-action": "terminate" },
        },
        /must be an EC2 instance id[\s\S]*detail\["instance-id"\]/,
      ],
      [{ "detail-type": "AWS API Call via CloudTrail", source: "aws.ec2" }, /unexpected detail-type/],
      ["tick", /expected an object/],
    ] as const;
    for (const [event, message] of bad) {
      const result = await invoke(event);
      expect(result).toMatchObject({ status: "dropped" });
      expect(String(result.reason)).toMatch(message);
    }
    expect(fleetCalls()).toHaveLength(0);
    const warnings = logLines.map((l) => JSON.parse(l)).filter((l) => l.msg === "dropped an invalid event");
    expect(warnings).toHaveLength(bad.length);
    expect(warnings[0]).toMatchObject({ level: "warn", fn: "sweep-orchestrator" });
    expect(warnings[0].requestId).toMatch(/^req-/);
  });

  it("a transient failure throws, so Lambda retries the event", async () => {
    const sweep = await awsSweep(1, 1);
    await invoke({ kind: "sweep", sweepId: sweep.sweepId });
    ec2.on(DescribeInstancesCommand).rejects(
      Object.assign(new Error("We encountered an internal error"), {
        name: "InternalError",
        $fault: "server",
      }),
    );
    await expect(invoke({ kind: "sweep", sweepId: sweep.sweepId })).rejects.toThrow(/internal error/);
    const failure = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "failed; Lambda will retry");
    expect(failure).toMatchObject({ level: "error", sweepId: sweep.sweepId });
  });

  it("the reaper terminates an instance past its deadline, whatever its sweep: TerminateInstances is sent", async () => {
    // Given a live instance of a sweep the control plane no longer works on, past its deadline
    const now = Date.now();
    const ec2Id = "i-00000000000dead01";
    world.instances.set(ec2Id, { state: "running" });
    await store.putInstance({
      sweepId: `gone-${randomUUID().slice(0, 8)}`,
      instanceId: "gone-i0",
      provider: "aws",
      status: "running",
      slots: 1,
      launchedAt: now - 7 * 3_600_000,
      deadline: now - 60_000,
      heartbeatAt: now - 5_000,
      providerRef: ec2Id,
      placement: {
        instanceType: "g5.xlarge",
        region: "us-east-1",
        az: "us-east-1a",
        market: "spot",
        pricePerHour: 0.45,
        priceSource: "test",
      },
    });
    // When the tick runs
    const result = await invoke({ kind: "tick" });
    // Then EC2 is asked to terminate it and the record says why
    expect(result.reaped).toContain("gone-i0");
    expect(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input)).toContainEqual({
      InstanceIds: [ec2Id],
    });
    expect(world.instances.get(ec2Id)?.state).toBe("terminated");
    const reaped = logLines.map((l) => JSON.parse(l)).find((l) => l.msg === "reaped");
    expect(reaped).toMatchObject({ instanceId: "gone-i0", reason: "ttl reached" });
  });

  it("a tick with too little time left defers sweeps to the next tick instead of running over", async () => {
    const sweep = await awsSweep(1, 1);
    const result = await invoke({ kind: "tick" }, context(5_000));
    expect(result).toMatchObject({ kind: "tick", reconciled: 0, launched: 0 });
    expect(result.deferred).toContain(sweep.sweepId);
    expect(fleetCalls()).toHaveLength(0);
  });
});
