/**
 * Alert delivery end to end below the CLI: rules and history on dynalite, secrets sealed with
 * the local key file, and a real HTTP server on loopback standing in for Slack and a webhook
 * receiver (payload, signature, retries, dedupe).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, statSync } from "node:fs";
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "vitest";
import {
  type AlertChannel,
  AlertDeliveryError,
  type AlertDeps,
  type AlertRecord,
  alertKeyOf,
  checkAlertLevels,
  handleEvent,
  ownerScope,
  parseTriggers,
  SIGNATURE_HEADER,
  targetPrefix,
  verifyWebhook,
} from "../core/alerts.js";
import { type SpawnEvent, spawnEvent } from "../core/events.js";
import { expandParams } from "../core/params.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { DynamoAlertStore } from "../providers/dynamodb/alert-store.js";
import { channelSender } from "../providers/notify/channels.js";
import { ALERT_KEY_FILE, FileSecretBox } from "../providers/notify/file-secrets.js";
import { LocalAlertBus } from "../providers/notify/local-bus.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const T0 = Date.parse("2026-11-23T10:00:00Z");
const db = useDynaliteStore("alerts");

interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A loopback HTTP server: records every POST and answers from a per-path script (then 200). */
class Receiver {
  readonly received: Received[] = [];
  private readonly script = new Map<string, Array<{ status: number; headers?: Record<string, string> }>>();
  private server!: Server;
  base = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        this.received.push({ path: req.url ?? "", headers: req.headers, body });
        const next = this.script.get(req.url ?? "")?.shift() ?? { status: 200 };
        res.writeHead(next.status, next.headers).end(next.status === 200 ? "ok" : "no_service");
      });
    });
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  answer(path: string, ...responses: Array<{ status: number; headers?: Record<string, string> }>): void {
    this.script.set(path, responses);
  }

  on(path: string): Received[] {
    return this.received.filter((r) => r.path === path);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const receiver = new Receiver();
const home = mkdtempSync(join(tmpdir(), "spawn-alerts-"));
const secrets = new FileSecretBox(home);
let now = T0;
const clock = { now: () => now };
const sleeps: number[] = [];

beforeAll(() => receiver.start());
afterAll(() => receiver.stop());
beforeEach(() => {
  now = T0;
  sleeps.length = 0;
});

function deps(): AlertDeps & { alerts: DynamoAlertStore } {
  const { engine, store } = db();
  const prefix = store.tables.sweeps.replace(/sweeps$/, "");
  return {
    alerts: new DynamoAlertStore(engine.client, prefix),
    store,
    clock,
    linkBase: "http://127.0.0.1:7777",
    send: channelSender({
      secrets,
      home,
      http: { sleep: async (ms) => void sleeps.push(ms), random: () => 0.5, now: clock.now },
    }),
  };
}

async function newSweep(owner = "ana"): Promise<string> {
  const spec = parseSpec({ name: "lr", command: "echo {{i}}", params: { grid: { i: [1, 2, 3] } } });
  const sweep = await createSweep(
    { store: db().store, clock },
    {
      sweepId: `lr-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner,
      provider: "local",
    },
  );
  return sweep.sweepId;
}

/** An alert as `spawn alerts create` writes it: secrets sealed under the alert's origin id. */
async function newAlert(
  target: AlertRecord["target"],
  on: string,
  channels: Array<{ slack: string } | { webhook: string; secret: string } | { log: true }>,
  owner = "ana",
): Promise<AlertRecord> {
  const originId = randomUUID().slice(0, 8);
  const sealed: AlertChannel[] = [];
  for (const c of channels) {
    if ("slack" in c) sealed.push({ kind: "slack", url: await secrets.seal(c.slack, originId) });
    else if ("webhook" in c)
      sealed.push({
        kind: "webhook",
        url: await secrets.seal(c.webhook, originId),
        secret: await secrets.seal(c.secret, originId),
      });
    else sealed.push({ kind: "log" });
  }
  const alert: AlertRecord = {
    scope: ownerScope(owner),
    alertId: `${targetPrefix(target)}${originId}`,
    owner,
    target,
    triggers: parseTriggers(on),
    channels: sealed,
    originId,
    createdAt: now,
  };
  await deps().alerts.createAlert(alert);
  return alert;
}

const completed = (sweepId: string): SpawnEvent =>
  spawnEvent(sweepId, T0 + 5000, { type: "SweepCompleted", name: "lr", reason: "3 succeeded", succeeded: 3 });
const failed = (sweepId: string): SpawnEvent =>
  spawnEvent(sweepId, T0 + 5000, {
    type: "SweepFailed",
    name: "lr",
    reason: "1 task failed",
    succeeded: 2,
    failed: 1,
    failedTasks: [2],
  });

describe("Slack", () => {
  test("a matching event posts one Block Kit message with the sweep, counts and link; a duplicate posts nothing", async () => {
    const sweepId = await newSweep();
    const path = `/services/T0/B0/${randomUUID()}`;
    const alert = await newAlert({ kind: "sweep", id: sweepId }, "failure,complete", [
      { slack: `${receiver.base}${path}` },
    ]);

    const first = await handleEvent(deps(), completed(sweepId));
    const again = await handleEvent(deps(), completed(sweepId));

    expect(first).toEqual([
      { alertId: alert.alertId, eventKey: `complete#${sweepId}#${T0 + 5000}`, outcome: "delivered" },
    ]);
    expect(again).toEqual([expect.objectContaining({ outcome: "duplicate" })]);
    const posts = receiver.on(path);
    expect(posts).toHaveLength(1);
    expect(posts[0]!.headers["content-type"]).toBe("application/json");
    const payload = JSON.parse(posts[0]!.body);
    expect(payload.text).toBe("Sweep lr completed: 3 succeeded");
    expect(payload.blocks[0]).toEqual({
      type: "header",
      text: { type: "plain_text", text: "Sweep lr completed", emoji: true },
    });
    expect(payload.blocks[2].fields.map((f: { text: string }) => f.text)).toEqual([
      `*Sweep*\n<http://127.0.0.1:7777/#/sweeps/${sweepId}|lr (${sweepId})>`,
      "*Trigger*\n`complete`",
      "*Tasks*\n3/3 succeeded",
      "*Cost*\n$0.00",
    ]);
    expect(payload.blocks[3].elements[0].text).toContain(`spawn sweep status ${sweepId}`);

    const [delivery] = await deps().alerts.listDeliveries({ sweepId });
    expect(delivery).toMatchObject({
      alertKey: alertKeyOf(alert),
      outcome: "delivered",
      attempts: 1,
      trigger: "complete",
      channels: [{ channel: 0, kind: "slack", outcome: "delivered", status: 200, attempts: 1 }],
    });
  });

  test("429 with Retry-After is waited out and retried", async () => {
    const sweepId = await newSweep();
    const path = `/slack/${randomUUID()}`;
    receiver.answer(path, { status: 429, headers: { "retry-after": "2" } }, { status: 503 });
    await newAlert({ kind: "sweep", id: sweepId }, "complete", [{ slack: `${receiver.base}${path}` }]);

    const [report] = await handleEvent(deps(), completed(sweepId));

    expect(report?.outcome).toBe("delivered");
    expect(receiver.on(path)).toHaveLength(3);
    expect(sleeps).toEqual([2000, 500]);
  });

  test("a 404 (a revoked webhook) is final: recorded as rejected, not retried by a redelivery", async () => {
    const sweepId = await newSweep();
    const path = `/slack/${randomUUID()}`;
    receiver.answer(path, { status: 404 });
    await newAlert({ kind: "sweep", id: sweepId }, "failure", [{ slack: `${receiver.base}${path}` }]);

    expect((await handleEvent(deps(), failed(sweepId)))[0]?.outcome).toBe("rejected");
    expect((await handleEvent(deps(), failed(sweepId)))[0]?.outcome).toBe("duplicate");
    expect(receiver.on(path)).toHaveLength(1);
    const [delivery] = await deps().alerts.listDeliveries({ sweepId });
    expect(delivery?.channels[0]).toMatchObject({
      outcome: "rejected",
      status: 404,
      error: "HTTP 404: no_service",
    });
  });
});

describe("generic webhook", () => {
  test("the body is signed with the alert's secret and carries the delivery id", async () => {
    const sweepId = await newSweep();
    const path = `/hook/${randomUUID()}`;
    await newAlert({ kind: "sweep", id: sweepId }, "failure", [
      { webhook: `${receiver.base}${path}`, secret: "whsec_test" },
    ]);

    await handleEvent(deps(), failed(sweepId));

    const [post] = receiver.on(path);
    const signature = post!.headers[SIGNATURE_HEADER] as string;
    expect(verifyWebhook("whsec_test", post!.body, signature, Math.floor(T0 / 1000))).toBe(true);
    expect(verifyWebhook("another", post!.body, signature, Math.floor(T0 / 1000))).toBe(false);
    expect(post!.headers["x-spawn-delivery"]).toMatch(/^[0-9a-f]{32}$/);
    const body = JSON.parse(post!.body);
    expect(body).toMatchObject({
      version: 1,
      trigger: "failure",
      title: "Sweep lr failed",
      detail: "1 task failed (failed tasks: 2)",
      sweepId,
      counts: { tasks: 3, succeeded: 2, failed: 1 },
      event: { type: "SweepFailed", sweepId, failedTasks: [2] },
    });
  });

  test("a 5xx after every retry fails the event; the redelivery re-sends only the channel that missed it", async () => {
    const sweepId = await newSweep();
    const slack = `/slack/${randomUUID()}`;
    const hook = `/hook/${randomUUID()}`;
    receiver.answer(hook, ...Array.from({ length: 5 }, () => ({ status: 502 })));
    await newAlert({ kind: "sweep", id: sweepId }, "failure", [
      { slack: `${receiver.base}${slack}` },
      { webhook: `${receiver.base}${hook}`, secret: "s" },
    ]);

    await expect(handleEvent(deps(), failed(sweepId))).rejects.toThrow(AlertDeliveryError);
    const [afterFirst] = await deps().alerts.listDeliveries({ sweepId });
    expect(afterFirst).toMatchObject({ outcome: "failed", attempts: 1 });
    expect(afterFirst?.channels[1]).toMatchObject({ outcome: "failed", status: 502, attempts: 5 });

    const [report] = await handleEvent(deps(), failed(sweepId));

    expect(report?.outcome).toBe("delivered");
    expect(receiver.on(slack)).toHaveLength(1);
    expect(receiver.on(hook)).toHaveLength(6);
    const [afterSecond] = await deps().alerts.listDeliveries({ sweepId });
    expect(afterSecond).toMatchObject({ outcome: "delivered", attempts: 2 });
  });
});

describe("at-least-once with dedupe", () => {
  test("a delivery that crashed after its claim is taken over once the claim expires, not before", async () => {
    const sweepId = await newSweep();
    const path = `/slack/${randomUUID()}`;
    const alert = await newAlert({ kind: "sweep", id: sweepId }, "complete", [
      { slack: `${receiver.base}${path}` },
    ]);
    const eventKey = `complete#${sweepId}#${T0 + 5000}`;
    // A handler claimed the delivery, then died before sending.
    const crashed = await deps().alerts.claimDelivery({
      alertKey: alertKeyOf(alert),
      eventKey,
      owner: "ana",
      alertId: alert.alertId,
      sweepId,
      trigger: "complete",
      title: "Sweep lr completed",
      now,
      claimMs: 300_000,
    });
    expect(crashed).toEqual({ claimed: true });

    now = T0 + 299_000;
    expect((await handleEvent(deps(), completed(sweepId)))[0]?.outcome).toBe("duplicate");
    now = T0 + 301_000;
    expect((await handleEvent(deps(), completed(sweepId)))[0]?.outcome).toBe("delivered");
    expect(receiver.on(path)).toHaveLength(1);
  });

  test("concurrent deliveries of one event send one notification", async () => {
    const sweepId = await newSweep();
    const path = `/slack/${randomUUID()}`;
    await newAlert({ kind: "sweep", id: sweepId }, "complete", [{ slack: `${receiver.base}${path}` }]);

    const reports = await Promise.all(
      Array.from({ length: 5 }, () => handleEvent(deps(), completed(sweepId))),
    );

    expect(
      reports
        .flat()
        .map((r) => r.outcome)
        .sort(),
    ).toEqual(["delivered", "duplicate", "duplicate", "duplicate", "duplicate"]);
    expect(receiver.on(path)).toHaveLength(1);
  });

  test("history items carry a 90-day TTL", async () => {
    const sweepId = await newSweep();
    const alert = await newAlert({ kind: "sweep", id: sweepId }, "complete", [{ log: true }]);
    await handleEvent(deps(), completed(sweepId));
    const { engine, store } = db();
    const doc = DynamoDBDocumentClient.from(engine.client);
    const out = await doc.send(
      new GetCommand({
        TableName: store.tables.alertHistory,
        Key: { alertKey: alertKeyOf(alert), eventKey: `complete#${sweepId}#${T0 + 5000}` },
      }),
    );
    expect(out.Item?.expiresAt).toBe(Math.floor(T0 / 1000) + 90 * 86_400);
  });
});

describe("secrets at rest", () => {
  test("the stored alert holds neither the webhook URL nor the secret, and the key file is 0600", async () => {
    const sweepId = await newSweep();
    const token = `SECRETTOKEN${randomUUID().replace(/-/g, "")}`;
    const alert = await newAlert({ kind: "sweep", id: sweepId }, "failure", [
      { webhook: `${receiver.base}/hook/${token}`, secret: `whsec_${token}` },
    ]);
    const { engine, store } = db();
    const raw = await DynamoDBDocumentClient.from(engine.client).send(
      new GetCommand({ TableName: store.tables.alerts, Key: { scope: alert.scope, alertId: alert.alertId } }),
    );
    expect(JSON.stringify(raw.Item)).not.toContain(token);
    expect(statSync(join(home, ALERT_KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(home, ALERT_KEY_FILE))).toHaveLength(32);
  });

  test("a sealed secret does not open under another alert's context", async () => {
    const sealed = await secrets.seal("https://hooks.example.com/x", "alert-a");
    await expect(secrets.open(sealed, "alert-a")).resolves.toBe("https://hooks.example.com/x");
    await expect(secrets.open(sealed, "alert-b")).rejects.toThrow(/authenticate/);
  });
});

describe("targets", () => {
  test("another sweep's events and another owner's alerts do not match", async () => {
    const mine = await newSweep();
    const other = await newSweep("bob");
    const path = `/slack/${randomUUID()}`;
    await newAlert({ kind: "sweep", id: mine }, "complete", [{ slack: `${receiver.base}${path}` }]);
    await newAlert({ kind: "sweep", id: mine }, "complete", [{ slack: `${receiver.base}${path}` }], "bob");

    expect(await handleEvent(deps(), completed(other))).toEqual([]);
    expect(await handleEvent(deps(), completed(mine))).toHaveLength(1);
    expect(receiver.on(path)).toHaveLength(1);
  });

  test("a schedule's alerts follow the sweeps it launches, and fire when a launch fails", async () => {
    const scheduleId = `sch-nightly-${randomUUID().slice(0, 6)}`;
    const path = `/slack/${randomUUID()}`;
    const alert = await newAlert({ kind: "schedule", id: scheduleId }, "failure,schedule-failed", [
      { slack: `${receiver.base}${path}` },
    ]);
    const sweepId = await newSweep();

    const launched = spawnEvent(sweepId, T0, { type: "ScheduleLaunched", scheduleId, owner: "ana" });
    await handleEvent(deps(), launched);
    await handleEvent(deps(), launched);
    const copies = await deps().alerts.listAlerts("ana", { kind: "sweep", id: sweepId });
    expect(copies).toEqual([
      expect.objectContaining({
        inheritedFrom: scheduleId,
        originId: alert.originId,
        channels: alert.channels,
      }),
    ]);
    expect(await handleEvent(deps(), failed(sweepId))).toEqual([
      expect.objectContaining({ outcome: "delivered" }),
    ]);

    const launchFailed = spawnEvent("nightly-never", T0, {
      type: "ScheduleLaunchFailed",
      scheduleId,
      owner: "ana",
      error: "the schedule's spec is missing",
    });
    expect(await handleEvent(deps(), launchFailed)).toEqual([
      expect.objectContaining({ alertId: alert.alertId, outcome: "delivered" }),
    ]);
    expect(receiver.on(path).map((p) => JSON.parse(p.body).text)).toEqual([
      "Sweep lr failed: 1 task failed (failed tasks: 2)",
      `Schedule ${scheduleId} could not launch its sweep: the schedule's spec is missing`,
    ]);
  });
});

describe("level triggers", () => {
  test("long-running fires once, on the first check past the threshold", async () => {
    const sweepId = await newSweep();
    await newAlert({ kind: "sweep", id: sweepId }, "long-running>30m", [{ log: true }]);
    const active = [(await db().store.getSweep(sweepId))!];

    now = T0 + 29 * 60_000;
    expect(await checkAlertLevels(deps(), active)).toEqual([]);
    now = T0 + 31 * 60_000;
    expect(await checkAlertLevels(deps(), active)).toEqual([
      expect.objectContaining({ eventKey: `long-running>30m#${sweepId}`, outcome: "delivered" }),
    ]);
    now = T0 + 40 * 60_000;
    expect(await checkAlertLevels(deps(), active)).toEqual([
      expect.objectContaining({ outcome: "duplicate" }),
    ]);
    const lines = readFileSync(join(home, "alerts.log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(lines.filter((l) => l.sweepId === sweepId)).toEqual([
      expect.objectContaining({ title: "Sweep lr has been running for 31m00s", trigger: "long-running>30m" }),
    ]);
    expect(statSync(join(home, "alerts.log")).mode & 0o777).toBe(0o600);
  });
});

describe("LocalAlertBus (the embedded default's bus)", () => {
  const quiet = { info() {}, warn() {}, error() {}, child: () => quiet };

  test("publish returns at once; events are delivered in order, and a failed one comes back with backoff", async () => {
    const sweepId = await newSweep();
    const path = `/slack/${randomUUID()}`;
    receiver.answer(path, ...Array.from({ length: 5 }, () => ({ status: 503 })));
    await newAlert({ kind: "sweep", id: sweepId }, "task-failed,failure", [
      { slack: `${receiver.base}${path}` },
    ]);
    const bus = new LocalAlertBus(deps(), quiet, { retryMs: 10 });

    await bus.publish([
      spawnEvent(sweepId, T0, { type: "TaskFailed", taskIndex: 2, attempt: 1, exitCode: 1 }),
      failed(sweepId),
    ]);
    expect(receiver.on(path)).toHaveLength(0);
    // The first event fails 5 times (503) and comes back 10 ms later, after the second.
    for (const deadline = Date.now() + 5000; receiver.on(path).length < 7 && Date.now() < deadline; )
      await new Promise((resolve) => setTimeout(resolve, 10));
    await bus.idle();

    expect(receiver.on(path).map((p) => JSON.parse(p.body).text)).toEqual([
      ...Array.from({ length: 5 }, () => "Task 2 of lr failed for good: attempt 1, exit code 1"),
      "Sweep lr failed: 1 task failed (failed tasks: 2)",
      "Task 2 of lr failed for good: attempt 1, exit code 1",
    ]);
    bus.close();
  });

  test("refuses an event that breaks the contract, as PutEvents validation would", async () => {
    const bus = new LocalAlertBus(deps(), quiet);
    await expect(
      bus.publish([{ type: "SweepFailed", sweepId: "x" } as unknown as SpawnEvent]),
    ).rejects.toThrow();
  });
});
