/**
 * The deployed scheduler handler end to end: its middy chain and container wiring, DynamoDB
 * on dynalite (AWS_ENDPOINT_URL_DYNAMODB), S3, EventBridge, EventBridge Scheduler and IAM through
 * aws-sdk-client-mock.
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteRoleCommand,
  IAMClient,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DeleteScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { firingSweepId } from "#core/scheduler.js";
import { nextRunAfter, parseTrigger, type ScheduleRecord } from "#core/schedules.js";
import { parseSpec } from "#core/spec.js";
import {
  EC2_TRUST_POLICY,
  SWEEP_POLICY_NAME,
  sweepRoleName,
  sweepRolePolicy,
} from "#providers/aws/sweep-role.js";
import { encodeSpec } from "#providers/dynamodb/codec.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";

const s3 = mockClient(S3Client);
const eb = mockClient(EventBridgeClient);
const scheduler = mockClient(SchedulerClient);
const iam = mockClient(IAMClient);
const PREFIX = `schh${randomUUID().slice(0, 6)}-`;
const SPEC = encodeSpec(parseSpec({ name: "nightly", command: "echo {{x}}", params: { list: [{ x: 1 }] } }));
/** A spec with a task grant from a policy file, and the file as `schedule create` snapshotted it. */
const GRANTED_SPEC = encodeSpec(
  parseSpec({
    name: "nightly",
    command: "python eval.py",
    resources: { gpus: 1, regions: ["us-east-1"], iam: ["policy-file:policies/eval.json"] },
  }),
);
const EVAL_POLICY = {
  Version: "2012-10-17",
  Statement: {
    Effect: "Allow",
    Action: "sqs:SendMessage",
    Resource: "arn:aws:sqs:us-east-1:123456789012:evals",
  },
};
/** The stored objects the handler reads, by key. */
const objects = new Map<string, string>();
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/;

let engine: DynamoEngine;
let store: DynamoStateStore;
let schedules: DynamoScheduleStore;
let handler: (event: unknown, context: Context) => Promise<Record<string, unknown>>;

const context = () =>
  ({ awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 60_000 }) as unknown as Context;

async function armed(extra: Partial<ScheduleRecord> = {}): Promise<ScheduleRecord> {
  const scheduleId = `sch-nightly-${randomUUID().slice(0, 8)}`;
  const draft: ScheduleRecord = {
    scheduleId,
    name: "nightly",
    owner: "ana",
    provider: "aws",
    trigger: parseTrigger({ cron: "0 2 * * *", timezone: "Europe/Paris" }),
    state: "enabled",
    specKey: `schedules/${scheduleId}/spec.json`,
    bundle: { key: "bundles/abc.tgz", sha256: "abc", bytes: 10 },
    executions: 0,
    missed: 0,
    createdAt: Date.parse("2026-11-01T00:00:00Z"),
    updatedAt: 0,
    ...extra,
  };
  const schedule = { ...draft, nextRunAt: nextRunAfter(draft, draft.createdAt) };
  objects.set(schedule.specKey, SPEC);
  await schedules.createSchedule(schedule);
  return schedule;
}

const firing = (s: ScheduleRecord, at = s.nextRunAt!) => ({
  kind: "schedule",
  scheduleId: s.scheduleId,
  scheduledTime: new Date(at).toISOString(),
  attempt: "1",
});

beforeAll(async () => {
  engine = await startDynalite();
  await ensureTables(engine.client, PREFIX);
  store = new DynamoStateStore(engine.client, PREFIX);
  schedules = new DynamoScheduleStore(engine.client, PREFIX);
  Object.assign(process.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL_DYNAMODB: engine.endpoint,
    SPAWN_TABLE_PREFIX: PREFIX,
    SPAWN_ARTIFACTS_BUCKET: "spawn-artifacts",
    SPAWN_RESULTS_BUCKET: "spawn-results",
    SPAWN_EVENT_BUS: "spawn-bus",
    SPAWN_HOME_REGION: "us-east-1",
    SPAWN_SCHEDULE_GROUP: "spawn-schedules",
    SPAWN_STACK_NAME: "spawn",
    SPAWN_ACCOUNT_ID: "123456789012",
    SPAWN_PARTITION: "aws",
  });
  // Imported only now: the handler reads its environment once, at cold start, like in Lambda.
  handler = (await import("./handler.js")).handler as unknown as typeof handler;
});

afterAll(async () => {
  await engine.close();
});

beforeEach(() => {
  s3.reset();
  eb.reset();
  scheduler.reset();
  iam.reset();
  iam.onAnyCommand().resolves({});
  s3.on(GetObjectCommand).callsFake(async (input: { Key: string }) => {
    const text = objects.get(input.Key);
    if (text === undefined) throw Object.assign(new Error("no such key"), { name: "NoSuchKey" });
    const bytes = Buffer.from(text);
    return {
      Body: Object.assign(Readable.from([bytes]), {
        transformToByteArray: async () => new Uint8Array(bytes),
      }),
    };
  });
  eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "e1" }] });
});

describe("scheduler-handler", () => {
  it("launches the stored spec, wakes the orchestrator, and launches nothing on a duplicate delivery", async () => {
    const s = await armed();
    const first = await handler(firing(s), context());
    const again = await handler(firing(s), context());
    expect(first).toMatchObject({ outcome: "launched" });
    expect(again).toEqual({ outcome: "duplicate" });
    // One role for the one sweep: the duplicate made none.
    expect(iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input.Tags)).toEqual([
      [
        { Key: "spawn:sweep", Value: first.sweepId },
        { Key: "spawn:stack", Value: "spawn" },
      ],
    ]);

    // The spec came from the results bucket, under the schedule's key.
    expect(s3.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: "spawn-results",
      Key: s.specKey,
    });
    const sweep = await store.getSweep(first.sweepId as string);
    expect(sweep).toMatchObject({ provider: "aws", owner: "ana", bundle: s.bundle, status: "running" });
    // A new trace, on the sweep, on the history row and on the kick alike.
    expect(sweep?.traceparent).toMatch(TRACEPARENT);
    const [history] = await schedules.listFirings(s.scheduleId);
    expect(history).toMatchObject({ status: "launched", traceparent: sweep?.traceparent });
    const entries = eb.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    // The schedule's own event, for alerts: ScheduleLaunched with the sweep it launched.
    expect(entries.filter((e) => e.DetailType === "ScheduleLaunched")).toEqual([
      expect.objectContaining({ EventBusName: "spawn-bus", Source: "spawn.orchestrator" }),
    ]);
    const kicks = entries.filter((e) => e.DetailType === "Sweep Submitted");
    expect(kicks).toEqual([
      {
        EventBusName: "spawn-bus",
        Source: "spawn.cli",
        DetailType: "Sweep Submitted",
        Detail: JSON.stringify({ kind: "sweep", sweepId: first.sweepId, traceparent: sweep?.traceparent }),
      },
    ]);
    expect(await schedules.listFirings(s.scheduleId)).toHaveLength(1);
  });

  it("builds the sweep's role from the snapshotted policy file before the sweep exists", async () => {
    // Given a schedule whose spec grants a policy file, snapshotted next to the spec at create
    const policyFilesKey = `schedules/sch-eval-${randomUUID().slice(0, 8)}/policy-files.json`;
    const s = await armed({ policyFilesKey });
    objects.set(s.specKey, GRANTED_SPEC);
    objects.set(policyFilesKey, JSON.stringify({ "policies/eval.json": EVAL_POLICY }));
    let sweepAtCreateRole: unknown = "not asked";
    iam.on(CreateRoleCommand).callsFake(async () => {
      sweepAtCreateRole = await store.getSweep(firingSweepId(s, s.nextRunAt!));
      return {};
    });

    // When it fires
    const result = await handler(firing(s), context());

    // Then the role was made before the sweep record, exactly as the CLI makes one
    expect(result).toMatchObject({ outcome: "launched", sweepId: firingSweepId(s, s.nextRunAt!) });
    expect(sweepAtCreateRole).toBeUndefined();
    const sweepId = result.sweepId as string;
    const role = sweepRoleName("spawn", sweepId);
    expect(iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input)).toEqual([
      {
        RoleName: role,
        AssumeRolePolicyDocument: JSON.stringify(EC2_TRUST_POLICY),
        Description: `spawn spawn: the instances of sweep ${sweepId}`,
        Tags: [
          { Key: "spawn:sweep", Value: sweepId },
          { Key: "spawn:stack", Value: "spawn" },
        ],
      },
    ]);
    const spec = parseSpec(JSON.parse(GRANTED_SPEC));
    expect(iam.commandCalls(PutRolePolicyCommand).map((c) => c.args[0].input)).toEqual([
      {
        RoleName: role,
        PolicyName: SWEEP_POLICY_NAME,
        PolicyDocument: JSON.stringify(
          sweepRolePolicy({
            stack: "spawn",
            sweepId,
            account: "123456789012",
            partition: "aws",
            homeRegion: "us-east-1",
            tablePrefix: PREFIX,
            artifactsBucket: "spawn-artifacts",
            resultsBucket: "spawn-results",
            eventBusName: "spawn-bus",
            bundleKey: s.bundle.key,
            spec,
            policyFiles: { "policies/eval.json": EVAL_POLICY },
          }),
        ),
      },
    ]);
    // ...whose task grant is the file's statement, as written
    const document = JSON.parse(iam.commandCalls(PutRolePolicyCommand)[0]!.args[0].input.PolicyDocument!);
    expect(document.Statement).toContainEqual({ ...EVAL_POLICY.Statement, Sid: "File0x0" });
    expect(iam.commandCalls(CreateInstanceProfileCommand)).toHaveLength(1);
    expect(iam.commandCalls(AddRoleToInstanceProfileCommand)[0]?.args[0].input).toEqual({
      InstanceProfileName: role,
      RoleName: role,
    });
    expect(await store.getSweep(sweepId)).toMatchObject({ status: "running" });
  });

  it("a schedule stored without its policy files' copy fails its firing with what to do, sending nothing", async () => {
    // Given a schedule made before policy files were snapshotted with schedules
    const s = await armed();
    objects.set(s.specKey, GRANTED_SPEC);

    const result = await handler(firing(s), context());

    expect(result).toMatchObject({
      outcome: "failed",
      error: expect.stringMatching(/no copy of policy file\(s\) policies\/eval\.json: create it again/),
    });
    expect(iam.calls()).toHaveLength(0);
    expect(await store.getSweep(firingSweepId(s, s.nextRunAt!))).toBeUndefined();
  });

  it("a firing whose role is refused creates no sweep and records why", async () => {
    // Given IAM refuses the role (the handler's own permissions, say)
    const s = await armed();
    iam.on(CreateRoleCommand).rejects(Object.assign(new Error("not authorized"), { name: "AccessDenied" }));

    const result = await handler(firing(s), context());

    expect(result).toMatchObject({ outcome: "failed", error: "not authorized" });
    expect(await store.getSweep(firingSweepId(s, s.nextRunAt!))).toBeUndefined();
    expect(await schedules.listFirings(s.scheduleId)).toEqual([
      expect.objectContaining({
        status: "failed",
        error: "not authorized",
        traceparent: expect.stringMatching(TRACEPARENT),
      }),
    ]);
    expect(iam.commandCalls(DeleteRoleCommand)).toHaveLength(0);
    const kinds = eb.commandCalls(PutEventsCommand).flatMap((c) => c.args[0].input.Entries ?? []);
    expect(kinds.map((e) => e.DetailType)).toEqual(["ScheduleLaunchFailed"]);
  });

  it("continues the trace of the invocation when it carries a valid traceparent, and only then", async () => {
    const parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const s = await armed();
    const result = await handler({ ...firing(s), traceparent: parent }, context());
    const sweep = await store.getSweep(result.sweepId as string);
    // The same trace, a span of its own
    expect(sweep?.traceparent).toMatch(/^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-01$/);
    expect(sweep?.traceparent).not.toBe(parent);

    const other = await armed();
    const next = await handler({ ...firing(other), traceparent: "00-zz-not-a-trace" }, context());
    const fresh = await store.getSweep(next.sweepId as string);
    expect(fresh?.traceparent).toMatch(TRACEPARENT);
    expect(fresh?.traceparent).not.toContain("0af7651916cd43dd8448eb211c80319c");
  });

  it("still counts the firing as launched when the orchestrator's kick fails (the tick starts it)", async () => {
    const s = await armed();
    eb.on(PutEventsCommand).callsFake(async (input: { Entries: Array<{ DetailType?: string }> }) => {
      if (input.Entries.some((e) => e.DetailType === "Sweep Submitted")) throw new Error("bus unavailable");
      return { FailedEntryCount: 0, Entries: input.Entries.map(() => ({ EventId: "e" })) };
    });

    const result = await handler(firing(s), context());

    expect(result).toMatchObject({ outcome: "launched" });
    expect(await store.getSweep(result.sweepId as string)).toMatchObject({ status: "running" });
    expect(await schedules.listFirings(s.scheduleId)).toEqual([
      expect.objectContaining({ status: "launched", sweepId: result.sweepId }),
    ]);
  });

  it("disarms a schedule once it has reached max executions", async () => {
    scheduler.on(DeleteScheduleCommand).resolves({});
    const s = await armed({ maxExecutions: 1 });
    expect(await handler(firing(s), context())).toMatchObject({ outcome: "launched" });
    expect(await schedules.getSchedule(s.scheduleId)).toMatchObject({ state: "completed", executions: 1 });
    expect(scheduler.commandCalls(DeleteScheduleCommand).map((c) => c.args[0].input)).toEqual([
      { Name: s.scheduleId, GroupName: "spawn-schedules" },
    ]);
  });

  it("drops an invalid event with the reason, writing nothing", async () => {
    const result = await handler(
      { kind: "schedule", scheduleId: "sch-x", scheduledTime: "yesterday" },
      context(),
    );
    expect(result).toMatchObject({ status: "dropped" });
    expect(String(result.reason)).toMatch(/ISO-8601 time[\s\S]*scheduledTime/);
    expect(await schedules.listFirings("sch-x")).toEqual([]);
  });

  it("reports a firing of a deleted schedule and launches nothing", async () => {
    const result = await handler(
      { kind: "schedule", scheduleId: "sch-gone", scheduledTime: "2026-11-23T02:00:00Z" },
      context(),
    );
    expect(result).toEqual({ outcome: "unknown-schedule" });
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
  });
});
