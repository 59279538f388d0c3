import { describe, expect, test } from "vitest";
import {
  AlertError,
  type AlertRecord,
  checkEmail,
  checkTopicArn,
  checkWebhookUrl,
  formatTrigger,
  matchAlert,
  messageText,
  parseTarget,
  parseTriggers,
  publishingLauncher,
  renderMessage,
  retryDelayMs,
  type SweepSnapshot,
  signWebhook,
  verifyWebhook,
} from "./alerts.js";
import { type SpawnEvent, spawnEvent } from "./events.js";

const T0 = Date.parse("2026-11-23T10:00:00Z");

function alert(on: string, extra: Partial<AlertRecord> = {}): AlertRecord {
  return {
    scope: "owner#ana",
    alertId: "sweep#lr-1#a1",
    owner: "ana",
    target: { kind: "sweep", id: "lr-1" },
    triggers: parseTriggers(on),
    channels: [{ kind: "log" }],
    originId: "a1",
    createdAt: T0,
    ...extra,
  };
}

function sweep(extra: Partial<SweepSnapshot> = {}): SweepSnapshot {
  return {
    sweepId: "lr-1",
    name: "lr",
    owner: "ana",
    status: "running",
    active: true,
    taskCount: 12,
    createdAt: T0,
    preemptions: 0,
    spent: 0,
    ...extra,
  };
}

describe("parseTriggers", () => {
  test("reads the documented triggers, thresholds included", () => {
    expect(
      parseTriggers("failure, complete,cost>50,long-running>120m,preempted>3,unhealthy,schedule-failed"),
    ).toEqual([
      { kind: "failure" },
      { kind: "complete" },
      { kind: "cost", usd: 50 },
      { kind: "long-running", ms: 7_200_000 },
      { kind: "preempted", count: 3 },
      { kind: "unhealthy" },
      { kind: "schedule-failed" },
    ]);
  });

  test("formats back to what the user wrote, canonically, and drops duplicates", () => {
    const triggers = parseTriggers("cost>$12.5,long-running>2h,failure,failure,preempted>0");
    expect(triggers.map(formatTrigger)).toEqual(["cost>12.5", "long-running>120m", "failure", "preempted>0"]);
  });

  test.each([
    ["fail", /--on "fail": unknown trigger/],
    ["cost", /--on "cost": needs a threshold/],
    ["cost>abc", /--on "cost>abc": the threshold is a positive number of USD/],
    ["cost>0", /positive number of USD/],
    ["long-running>120", /a duration with a unit/],
    ["long-running>30s", /at least 1m/],
    ["preempted>1.5", /whole number of preemptions/],
    ["gpu>3", /unknown trigger "gpu"/],
    [" , ", /--on lists no trigger/],
  ])("%j is refused with a message naming it", (text, message) => {
    expect(() => parseTriggers(text)).toThrow(AlertError);
    expect(() => parseTriggers(text)).toThrow(message);
  });
});

describe("URLs and addresses", () => {
  test("https anywhere, plain http only to loopback", () => {
    expect(checkWebhookUrl("https://hooks.slack.com/services/T/B/x", "--slack").host).toBe("hooks.slack.com");
    for (const url of [
      "http://127.0.0.1:8080/hook",
      "http://localhost/x",
      "http://[::1]:9/x",
      "http://127.9.9.9/",
    ])
      expect(checkWebhookUrl(url, "--webhook").protocol).toBe("http:");
  });

  test.each([
    ["http://hooks.example.com/x", /--webhook must be an https:\/\/ URL, got http:\/\/hooks.example.com/],
    ["http://10.0.0.1/x", /must be an https/],
    ["ftp://127.0.0.1/x", /must be an https/],
    ["hooks.example.com/x", /--webhook is not a URL/],
    ["https://user:pw@example.com/x", /must not carry credentials/],
  ])("%s is refused", (url, message) => {
    expect(() => checkWebhookUrl(url, "--webhook")).toThrow(message);
  });

  test("the error never repeats the URL's path (Slack's token)", () => {
    expect(() => checkWebhookUrl("http://hooks.slack.com/services/T0/B0/SECRETTOKEN", "--slack")).toThrow(
      expect.objectContaining({ message: expect.not.stringContaining("SECRETTOKEN") }),
    );
  });

  test("SNS topic ARNs, emails and targets", () => {
    expect(checkTopicArn("arn:aws:sns:us-east-1:123456789012:alerts")).toMatch(/alerts$/);
    expect(() => checkTopicArn("arn:aws:sqs:us-east-1:123456789012:q")).toThrow(/not an SNS topic ARN/);
    expect(checkEmail("ana@example.com")).toBe("ana@example.com");
    expect(() => checkEmail("ana")).toThrow(/not an email address/);
    expect(parseTarget("sch-nightly-abc")).toEqual({ kind: "schedule", id: "sch-nightly-abc" });
    expect(parseTarget("lr-sweep-m1x")).toEqual({ kind: "sweep", id: "lr-sweep-m1x" });
    expect(() => parseTarget("a#b")).toThrow(/not a sweep or schedule id/);
  });
});

describe("matchAlert", () => {
  const failed = spawnEvent("lr-1", T0 + 60_000, {
    type: "SweepFailed",
    name: "lr",
    reason: "2 tasks failed",
    succeeded: 10,
    failed: 2,
    failedTasks: [3, 7],
  });

  test("an event trigger fires on its event type only, keyed by the event", () => {
    const facts = matchAlert(alert("failure,complete"), sweep(), failed, T0 + 60_000);
    expect(facts).toEqual([
      expect.objectContaining({
        eventKey: `failure#lr-1#${T0 + 60_000}`,
        severity: "critical",
        title: "Sweep lr failed",
        detail: "2 tasks failed (failed tasks: 3, 7)",
      }),
    ]);
  });

  test("a task failure is keyed by task and attempt, so a later attempt alerts again", () => {
    const e = (attempt: number) =>
      spawnEvent("lr-1", T0, { type: "TaskFailed", taskIndex: 4, attempt, exitCode: 1 });
    const keys = [1, 3].map((a) => matchAlert(alert("task-failed"), sweep(), e(a), T0)[0]?.eventKey);
    expect(keys).toEqual(["task-failed#lr-1#4#1", "task-failed#lr-1#4#3"]);
  });

  test("level triggers fire once the sweep reaches them, with or without an event", () => {
    const rule = alert("cost>50,long-running>120m,preempted>2");
    expect(matchAlert(rule, sweep({ spent: 49.99, preemptions: 2 }), undefined, T0 + 7_200_000)).toEqual([]);
    const facts = matchAlert(rule, sweep({ spent: 50, preemptions: 3 }), undefined, T0 + 7_200_001);
    expect(facts.map((f) => f.eventKey)).toEqual([
      "cost>50#lr-1",
      "long-running>120m#lr-1",
      "preempted>2#lr-1",
    ]);
    expect(facts[0]?.title).toBe("Sweep lr has cost $50.00");
  });

  test("long-running does not fire for a sweep that has ended", () => {
    const ended = sweep({ active: false, status: "succeeded", finishedAt: T0 + 10_000_000 });
    expect(matchAlert(alert("long-running>1m"), ended, undefined, T0 + 20_000_000)).toEqual([]);
  });

  test("dns-failed fires once per instance whose hostname was refused", () => {
    const event = spawnEvent("lr-1", T0, {
      type: "DnsRegistrationFailed",
      instanceId: "i-0abc",
      host: "rank-0.lr-1.spawn.internal",
      error: "ip-mismatch",
    });
    expect(matchAlert(alert("dns-failed"), sweep(), event, T0)).toEqual([
      expect.objectContaining({
        eventKey: "dns-failed#lr-1#i-0abc",
        title: "rank-0.lr-1.spawn.internal could not be registered in DNS",
      }),
    ]);
  });

  test("schedule-failed fires on the schedule's failed launch", () => {
    const event = spawnEvent("nightly-m1", T0, {
      type: "ScheduleLaunchFailed",
      scheduleId: "sch-nightly",
      owner: "ana",
      error: "the schedule's spec is missing",
    });
    const facts = matchAlert(alert("schedule-failed"), undefined, event, T0);
    expect(facts).toEqual([
      expect.objectContaining({
        eventKey: "schedule-failed#nightly-m1#sch-nightly",
        title: "Schedule sch-nightly could not launch its sweep",
      }),
    ]);
  });
});

describe("renderMessage", () => {
  test("carries counts, cost, a link when a dashboard is configured, and a stable delivery id", () => {
    const event = spawnEvent("lr-1", T0, {
      type: "SweepCompleted",
      name: "lr",
      reason: "12 succeeded",
      succeeded: 12,
    });
    const rule = alert("complete");
    const [fact] = matchAlert(rule, sweep({ spent: 3.5 }), event, T0);
    const message = renderMessage(rule, fact!, sweep({ spent: 3.5 }), {
      now: T0,
      linkBase: "http://127.0.0.1:7777/",
    });
    expect(message).toMatchObject({
      title: "Sweep lr completed",
      counts: { tasks: 12, succeeded: 12, failed: 0 },
      spent: 3.5,
      link: "http://127.0.0.1:7777/#/sweeps/lr-1",
      command: "spawn sweep status lr-1",
      trigger: "complete",
    });
    expect(message.deliveryId).toMatch(/^[0-9a-f]{32}$/);
    expect(renderMessage(rule, fact!, undefined, { now: T0 + 1 }).deliveryId).toBe(message.deliveryId);
    expect(messageText(message)).toBe(
      "Sweep lr completed — 12 succeeded — 12/12 succeeded — cost $3.50 — http://127.0.0.1:7777/#/sweeps/lr-1",
    );
  });
});

describe("webhook signatures", () => {
  const body = '{"title":"Sweep lr failed"}';

  test("verify accepts what sign produced, within the time window", () => {
    const header = signWebhook("s3cret", body, 1_700_000_000);
    expect(header).toMatch(/^t=1700000000,v1=[0-9a-f]{64}$/);
    expect(verifyWebhook("s3cret", body, header, 1_700_000_100)).toBe(true);
  });

  test("a changed body, another secret, an old timestamp or no header is refused", () => {
    const header = signWebhook("s3cret", body, 1_700_000_000);
    expect(verifyWebhook("s3cret", `${body} `, header, 1_700_000_000)).toBe(false);
    expect(verifyWebhook("other", body, header, 1_700_000_000)).toBe(false);
    expect(verifyWebhook("s3cret", body, header, 1_700_000_301)).toBe(false);
    expect(verifyWebhook("s3cret", body, undefined, 1_700_000_000)).toBe(false);
    expect(verifyWebhook("s3cret", body, "t=1700000000,v1=00", 1_700_000_000)).toBe(false);
  });
});

describe("retryDelayMs", () => {
  const half = () => 0.5;

  test("429, 5xx and no answer back off exponentially with jitter; other statuses stop", () => {
    expect([1, 2, 3, 4].map((a) => retryDelayMs(a, 503, null, T0, half))).toEqual([250, 500, 1000, 2000]);
    expect(retryDelayMs(1, undefined, null, T0, half)).toBe(250);
    expect(retryDelayMs(5, 503, null, T0, half)).toBeUndefined();
    for (const status of [400, 403, 404, 410])
      expect(retryDelayMs(1, status, null, T0, half)).toBeUndefined();
  });

  test("Retry-After is honoured in seconds or as a date, up to the longest wait allowed", () => {
    expect(retryDelayMs(1, 429, "3", T0, half)).toBe(3000);
    expect(retryDelayMs(1, 429, new Date(T0 + 7000).toUTCString(), T0, half)).toBe(7000);
    expect(retryDelayMs(1, 429, "120", T0, half)).toBeUndefined();
  });
});

describe("publishingLauncher", () => {
  const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  const schedule = { scheduleId: "sch-n", owner: "ana" } as Parameters<
    ReturnType<typeof publishingLauncher>["launch"]
  >[0];

  test("a launch publishes ScheduleLaunched; a failed one ScheduleLaunchFailed, and still fails", async () => {
    const published: SpawnEvent[] = [];
    const sink = { publish: async (events: readonly SpawnEvent[]) => void published.push(...events) };
    const clock = { now: () => T0 };
    await publishingLauncher({ launch: async () => {} }, sink, clock).launch(schedule, "n-1", TRACE);
    const failing = publishingLauncher(
      {
        launch: async () => {
          throw new Error("spec is missing");
        },
      },
      sink,
      clock,
    );
    await expect(failing.launch(schedule, "n-2", TRACE)).rejects.toThrow("spec is missing");
    expect(published).toEqual([
      { version: 1, sweepId: "n-1", time: T0, type: "ScheduleLaunched", scheduleId: "sch-n", owner: "ana" },
      {
        version: 1,
        sweepId: "n-2",
        time: T0,
        type: "ScheduleLaunchFailed",
        scheduleId: "sch-n",
        owner: "ana",
        error: "spec is missing",
      },
    ]);
  });
});
