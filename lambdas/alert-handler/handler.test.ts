/**
 * The deployed alert handler end to end: its middy chain and container wiring, DynamoDB on
 * dynalite (AWS_ENDPOINT_URL_DYNAMODB), KMS and SNS through aws-sdk-client-mock, and a real
 * HTTP server on loopback standing in for Slack.
 */
import { randomUUID } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { DecryptCommand, GenerateDataKeyCommand, KMSClient } from "@aws-sdk/client-kms";
import { PublishCommand, SNSClient } from "@aws-sdk/client-sns";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type AlertRecord, alertIdFor, ownerScope, parseTriggers } from "#core/alerts.js";
import { spawnEvent } from "#core/events.js";
import { expandParams } from "#core/params.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { DynamoAlertStore } from "#providers/dynamodb/alert-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { KmsSecretBox } from "#providers/notify/kms-secrets.js";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";

const kms = mockClient(KMSClient);
const sns = mockClient(SNSClient);
const PREFIX = `alh${randomUUID().slice(0, 6)}-`;
const KEY = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const TOPIC = "arn:aws:sns:us-east-1:123456789012:spawn-alerts";
const DATA_KEY = new Uint8Array(32).fill(9);

let engine: DynamoEngine;
let store: DynamoStateStore;
let alerts: DynamoAlertStore;
let handler: (event: unknown, context: Context) => Promise<Record<string, unknown>>;
let slack: Server;
let slackUrl = "";
const slackPosts: string[] = [];
let slackStatus = 200;

const context = () =>
  ({ awsRequestId: randomUUID(), getRemainingTimeInMillis: () => 60_000 }) as unknown as Context;

const entry = (detail: ReturnType<typeof spawnEvent>, source = "spawn.orchestrator") => ({
  version: "0",
  id: randomUUID(),
  source,
  "detail-type": detail.type,
  account: "123456789012",
  time: new Date(detail.time).toISOString(),
  region: "us-east-1",
  resources: [],
  detail,
});

async function sweepOf(createdAt = Date.now()): Promise<string> {
  const spec = parseSpec({ name: "lr", command: "echo {{i}}", params: { grid: { i: [1, 2] } } });
  const sweep = await createSweep(
    { store, clock: { now: () => createdAt } },
    {
      sweepId: `lr-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "ana",
      provider: "aws",
    },
  );
  return sweep.sweepId;
}

/** An alert as `spawn alerts create --provider aws` writes it: the Slack URL sealed under KMS. */
async function alertOn(sweepId: string, on: string): Promise<AlertRecord> {
  const originId = randomUUID().slice(0, 8);
  const box = new KmsSecretBox(new KMSClient({ region: "us-east-1" }), KEY);
  const target = { kind: "sweep" as const, id: sweepId };
  const alert: AlertRecord = {
    scope: ownerScope("ana"),
    alertId: alertIdFor(target, originId),
    owner: "ana",
    target,
    triggers: parseTriggers(on),
    channels: [
      { kind: "slack", url: await box.seal(`${slackUrl}/services/${originId}`, originId) },
      { kind: "sns", topicArn: TOPIC },
    ],
    originId,
    createdAt: Date.now(),
  };
  await alerts.createAlert(alert);
  return alert;
}

beforeAll(async () => {
  engine = await startDynalite();
  await ensureTables(engine.client, PREFIX);
  store = new DynamoStateStore(engine.client, PREFIX);
  alerts = new DynamoAlertStore(engine.client, PREFIX);
  slack = createServer((req, res) => {
    let body = "";
    req.on("data", (c: Buffer) => {
      body += c.toString();
    });
    req.on("end", () => {
      slackPosts.push(body);
      res.writeHead(slackStatus, { "retry-after": "0" }).end(slackStatus === 200 ? "ok" : "busy");
    });
  });
  await new Promise<void>((resolve) => slack.listen(0, "127.0.0.1", resolve));
  slackUrl = `http://127.0.0.1:${(slack.address() as AddressInfo).port}`;
  Object.assign(process.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    AWS_ENDPOINT_URL_DYNAMODB: engine.endpoint,
    SPAWN_TABLE_PREFIX: PREFIX,
    SPAWN_HOME_REGION: "us-east-1",
    SPAWN_ALERTS_KEY_ARN: KEY,
    SPAWN_ALERTS_TOPIC_ARN: TOPIC,
    SPAWN_DASHBOARD_URL: "https://spawn.example.com",
  });
  // Imported only now: the handler reads its environment once, at cold start, like in Lambda.
  handler = (await import("./handler.js")).handler as unknown as typeof handler;
});

afterAll(async () => {
  slack.closeAllConnections();
  await new Promise<void>((resolve) => slack.close(() => resolve()));
  await engine.close();
});

beforeEach(() => {
  kms.reset();
  sns.reset();
  slackPosts.length = 0;
  slackStatus = 200;
  kms.on(GenerateDataKeyCommand).callsFake(async () => ({
    Plaintext: DATA_KEY.slice(),
    CiphertextBlob: new Uint8Array([7, 7, 7]),
  }));
  kms.on(DecryptCommand).callsFake(async () => ({ Plaintext: DATA_KEY.slice() }));
  sns.on(PublishCommand).resolves({ MessageId: "m-1" });
});

describe("alert-handler", () => {
  it("delivers a bus event to Slack and SNS once, however often it is delivered", async () => {
    const sweepId = await sweepOf();
    const alert = await alertOn(sweepId, "failure");
    const failed = spawnEvent(sweepId, Date.now(), {
      type: "SweepFailed",
      name: "lr",
      reason: "1 task failed",
      succeeded: 1,
      failed: 1,
      failedTasks: [1],
    });

    const first = await handler(entry(failed), context());
    const again = await handler(entry(failed), context());

    expect(first).toEqual({
      status: "handled",
      deliveries: [
        { alertId: alert.alertId, eventKey: `failure#${sweepId}#${failed.time}`, outcome: "delivered" },
      ],
    });
    expect(again).toMatchObject({ deliveries: [{ outcome: "duplicate" }] });
    expect(slackPosts).toHaveLength(1);
    expect(JSON.parse(slackPosts[0]!).blocks[2].fields[0].text).toBe(
      `*Sweep*\n<https://spawn.example.com/#/sweeps/${sweepId}|lr (${sweepId})>`,
    );
    expect(sns.commandCalls(PublishCommand)).toHaveLength(1);
    expect(sns.commandCalls(PublishCommand)[0]!.args[0].input).toMatchObject({
      TopicArn: TOPIC,
      Subject: "Sweep lr failed",
      MessageAttributes: { spawn_alert: { DataType: "String", StringValue: alert.originId } },
    });
    expect(kms.commandCalls(DecryptCommand)[0]!.args[0].input).toMatchObject({
      EncryptionContext: { "spawn:alert": alert.originId },
      KeyId: KEY,
    });
  });

  it("fails the invocation when Slack stays down, so Lambda retries; the retry sends only what is missing", async () => {
    const sweepId = await sweepOf();
    await alertOn(sweepId, "complete");
    const done = spawnEvent(sweepId, Date.now(), {
      type: "SweepCompleted",
      name: "lr",
      reason: "2 succeeded",
      succeeded: 2,
    });
    slackStatus = 503;

    await expect(handler(entry(done), context())).rejects.toThrow(/will be retried/);
    expect(slackPosts).toHaveLength(5);
    slackStatus = 200;
    expect(await handler(entry(done), context())).toMatchObject({ deliveries: [{ outcome: "delivered" }] });
    expect(slackPosts).toHaveLength(6);
    expect(sns.commandCalls(PublishCommand)).toHaveLength(1);
  });

  it("delivers a TaskFailed an agent published (source spawn.agent) to a task-failed alert", async () => {
    const sweepId = await sweepOf();
    const alert = await alertOn(sweepId, "task-failed");
    const failed = spawnEvent(sweepId, Date.now(), {
      type: "TaskFailed",
      taskIndex: 1,
      attempt: 3,
      exitCode: 1,
      error: "exit code 1",
    });

    const result = await handler(entry(failed, "spawn.agent"), context());

    expect(result).toEqual({
      status: "handled",
      deliveries: [{ alertId: alert.alertId, eventKey: `task-failed#${sweepId}#1#3`, outcome: "delivered" }],
    });
    expect(JSON.parse(slackPosts[0]!).text).toMatch(/^Task 1 of lr failed for good: attempt 3, exit code 1/);
    expect(
      await handler(
        entry(spawnEvent(sweepId, Date.now(), { type: "TaskFailed", taskIndex: 0, attempt: 1 }), "spawn.cli"),
        context(),
      ),
    ).toMatchObject({ status: "dropped" });
  });

  it("the periodic check fires level triggers of active sweeps", async () => {
    const sweepId = await sweepOf(Date.now() - 3 * 3_600_000);
    await alertOn(sweepId, "long-running>2h");

    const result = await handler({ kind: "check" }, context());

    expect(result).toMatchObject({ status: "checked" });
    expect(result.deliveries).toContainEqual(
      expect.objectContaining({ eventKey: `long-running>120m#${sweepId}`, outcome: "delivered" }),
    );
    expect(JSON.parse(slackPosts.at(-1)!).text).toMatch(
      /^Sweep lr has been running for 3h00m: over the 2h00m threshold/,
    );
  });

  it("drops what does not match the contract, without a retry", async () => {
    const bad = {
      ...entry(spawnEvent("x", 1, { type: "SweepCancelled", name: "x", reason: "r" })),
      detail: { version: 2 },
    };
    expect(await handler(bad, context())).toMatchObject({
      status: "dropped",
      reason: /does not match the event contract/,
    });
    const mislabelled = {
      ...entry(spawnEvent("x", 1, { type: "SweepCancelled", name: "x", reason: "r" })),
      "detail-type": "SweepFailed",
    };
    expect(await handler(mislabelled, context())).toMatchObject({
      status: "dropped",
      reason: /carries a SweepCancelled event/,
    });
    expect(await handler({ hello: "world" }, context())).toMatchObject({ status: "dropped" });
  });
});
