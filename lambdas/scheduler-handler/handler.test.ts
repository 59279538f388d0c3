/**
 * The deployed scheduler handler end to end: its middy chain and container wiring, DynamoDB
 * on dynalite (AWS_ENDPOINT_URL_DYNAMODB), S3, EventBridge and EventBridge Scheduler through
 * aws-sdk-client-mock.
 */
import { randomUUID } from "node:crypto";
import { Readable } from "node:stream";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { DeleteScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { nextRunAfter, parseTrigger, type ScheduleRecord } from "#core/schedules.js";
import { parseSpec } from "#core/spec.js";
import { encodeSpec } from "#providers/dynamodb/codec.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";

const s3 = mockClient(S3Client);
const eb = mockClient(EventBridgeClient);
const scheduler = mockClient(SchedulerClient);
const PREFIX = `schh${randomUUID().slice(0, 6)}-`;
const SPEC = encodeSpec(parseSpec({ name: "nightly", command: "echo {{x}}", params: { list: [{ x: 1 }] } }));

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
  s3.on(GetObjectCommand).callsFake(async () => {
    const bytes = Buffer.from(SPEC);
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

    // The spec came from the results bucket, under the schedule's key.
    expect(s3.commandCalls(GetObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: "spawn-results",
      Key: s.specKey,
    });
    const sweep = await store.getSweep(first.sweepId as string);
    expect(sweep).toMatchObject({ provider: "aws", owner: "ana", bundle: s.bundle, status: "running" });
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
        Detail: JSON.stringify({ kind: "sweep", sweepId: first.sweepId }),
      },
    ]);
    expect(await schedules.listFirings(s.scheduleId)).toHaveLength(1);
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
