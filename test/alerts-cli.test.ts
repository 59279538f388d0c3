/**
 * `spawn alerts` services with the aws provider's shape (an email subscriber and a default
 * topic), on dynalite: --email subscribes with a filter on the alert, a failed write takes the
 * subscription back, delete unsubscribes; and the provider rules of planAlert.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { CliContext } from "../cli/context.js";
import { alertHistory, createAlert, deleteAlert, listAlerts, planAlert } from "../cli/services/alerts.js";
import type { AlertStore, EmailSubscriber } from "../core/alerts.js";
import { expandParams } from "../core/params.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { DynamoAlertStore } from "../providers/dynamodb/alert-store.js";
import { DynamoScheduleStore } from "../providers/dynamodb/schedule-store.js";
import { localPaths } from "../providers/local/paths.js";
import { FileSecretBox } from "../providers/notify/file-secrets.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const db = useDynaliteStore("alcli");
const TOPIC = "arn:aws:sns:us-east-1:123456789012:spawn-alerts";
const owner = process.env.SPAWN_OWNER;
beforeAll(() => {
  process.env.SPAWN_OWNER = "ana";
});
afterAll(() => {
  if (owner === undefined) delete process.env.SPAWN_OWNER;
  else process.env.SPAWN_OWNER = owner;
});

/** Records what SNS would be asked; SNS itself is asserted in test/alerts-aws.test.ts. */
class Subscriptions implements EmailSubscriber {
  readonly subscribed: Array<{ topicArn: string; address: string; originId: string }> = [];
  readonly unsubscribed: string[] = [];
  async subscribeEmail(topicArn: string, address: string, originId: string) {
    this.subscribed.push({ topicArn, address, originId });
    return `${topicArn}:sub-${this.subscribed.length}`;
  }
  async unsubscribe(arn: string) {
    this.unsubscribed.push(arn);
  }
}

function context(subscriptions: Subscriptions, alerts?: AlertStore): CliContext {
  const { engine, store } = db();
  const prefix = store.tables.sweeps.replace(/sweeps$/, "");
  const home = mkdtempSync(join(tmpdir(), "spawn-alcli-"));
  return {
    provider: "aws",
    store,
    schedules: new DynamoScheduleStore(engine.client, prefix),
    alerts: {
      store: alerts ?? new DynamoAlertStore(engine.client, prefix),
      secrets: new FileSecretBox(home),
      subscriptions,
      defaultTopicArn: TOPIC,
    },
    objects: undefined as never,
    clock: { now: () => Date.now() },
    paths: localPaths({ SPAWN_HOME: home }),
    close() {},
  };
}

async function sweep(): Promise<string> {
  const spec = parseSpec({ name: "lr", command: "echo {{i}}", params: { grid: { i: [1] } } });
  const created = await createSweep(
    { store: db().store, clock: { now: () => Date.now() } },
    {
      sweepId: `lr-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "ana",
      provider: "aws",
    },
  );
  return created.sweepId;
}

describe("spawn alerts create --email (aws)", () => {
  test("subscribes each address to the stack topic, filtered on the alert; delete unsubscribes", async () => {
    const subs = new Subscriptions();
    const ctx = context(subs);
    const sweepId = await sweep();

    const { alert } = await createAlert(
      ctx,
      planAlert("aws", sweepId, { email: ["ana@example.com"], on: "failure" }),
    );

    expect(subs.subscribed).toEqual([
      { topicArn: TOPIC, address: "ana@example.com", originId: alert.originId },
    ]);
    expect(alert.channels).toEqual([
      { kind: "email", address: "ana@example.com", topicArn: TOPIC, subscriptionArn: `${TOPIC}:sub-1` },
    ]);
    expect((await listAlerts(ctx, sweepId)).map((a) => a.alertId)).toEqual([alert.alertId]);

    expect(await deleteAlert(ctx, `al-${alert.originId}`)).toBe(1);
    expect(subs.unsubscribed).toEqual([`${TOPIC}:sub-1`]);
    expect(await listAlerts(ctx, sweepId)).toEqual([]);
    expect(await alertHistory(ctx, sweepId, 10)).toEqual([]);
  });

  test("--email with --sns subscribes to that topic; a failed write takes the subscriptions back", async () => {
    const subs = new Subscriptions();
    const { engine, store } = db();
    const broken = new DynamoAlertStore(engine.client, store.tables.sweeps.replace(/sweeps$/, ""));
    broken.createAlert = async () => {
      throw new Error("throttled");
    };
    const ctx = context(subs, broken);
    const mine = "arn:aws:sns:us-east-1:123456789012:mine";

    await expect(
      createAlert(
        ctx,
        planAlert("aws", await sweep(), { email: ["a@example.com", "b@example.com"], sns: [mine] }),
      ),
    ).rejects.toThrow("throttled");

    expect(subs.subscribed.map((s) => s.topicArn)).toEqual([mine, mine]);
    expect(subs.unsubscribed).toEqual([`${mine}:sub-1`, `${mine}:sub-2`]);
  });

  test("an unknown sweep is not found (exit 3) and subscribes nobody", async () => {
    const subs = new Subscriptions();
    await expect(
      createAlert(context(subs), planAlert("aws", "lr-nope", { email: ["a@example.com"] })),
    ).rejects.toMatchObject({ exitCode: 3 });
    expect(subs.subscribed).toEqual([]);
  });
});

describe("planAlert", () => {
  test.each([
    ["local", { sns: [TOPIC] }, /--sns and --email need --provider aws/],
    ["local", { email: ["a@example.com"] }, /--sns and --email need --provider aws/],
    ["aws", { log: true }, /--log is the embedded default's channel/],
    ["aws", {}, /an alert needs a channel/],
    ["aws", { webhookSecret: "0123456789abcdef" }, /--webhook-secret needs a --webhook/],
    ["local", { webhook: ["https://h.example.com/x"], webhookSecret: "short" }, /at least 16 characters/],
    ["local", { slack: ["http://hooks.slack.com/services/x"] }, /--slack must be an https:\/\/ URL/],
  ] as const)("%s %j is refused (exit 2)", (provider, options, message) => {
    expect(() => planAlert(provider, "lr-1", options)).toThrow(message);
    expect(() => planAlert(provider, "lr-1", options)).toThrow(expect.objectContaining({ exitCode: 2 }));
  });

  test("the embedded default's channel is the alert log when none is given", () => {
    expect(planAlert("local", "lr-1", {})).toMatchObject({
      log: true,
      triggers: [{ kind: "failure" }, { kind: "complete" }],
    });
    expect(planAlert("local", "lr-1", { webhook: ["https://h.example.com/x"] })).toMatchObject({
      log: false,
    });
  });
});
