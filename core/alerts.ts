/**
 * Alerts: rules that turn what the control plane publishes (core/events.ts) into notifications
 * on Slack, a signed webhook, SNS (email, SMS) or a local log file. Pure logic over ports: the
 * same code runs in the alert-handler Lambda (events from the stack's bus) and in the embedded
 * control plane (events from its in-process bus).
 *
 * Delivery is at least once, deduplicated: every (alert, fact) pair has a key, and a delivery
 * is claimed with one conditional write on `spawn-alert-history` before anything is sent. A
 * duplicate or redelivered event finds the claim (or the finished delivery) and sends nothing;
 * a delivery that crashed is retried once its claim expires; one that failed on a retryable
 * error (429, 5xx, network) is retried by the next delivery of the same event, re-sending only
 * the channels that did not get it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { z } from "zod";
import { spentSoFar } from "./cost.js";
import { formatDuration, parseDuration } from "./duration.js";
import { AbortError, ConditionFailedError } from "./errors.js";
import type { SpawnEvent } from "./events.js";
import { spawnEvent } from "./events.js";
import type { SweepRecord, SweepStatus } from "./model.js";
import type { Clock, EventSink, StateStore } from "./ports.js";
import type { ScheduleLauncher } from "./scheduler.js";

/** Bad alert input (a trigger, a URL, a target): exit 2, nothing written. */
export class AlertError extends AbortError {
  override name = "AlertError";
}

// ---------------------------------------------------------------------------------------------
// Triggers: `--on failure,complete,cost>50,long-running>120m,preempted>3`

/** Triggers that match one event type each. */
const EVENT_TRIGGERS = {
  complete: "SweepCompleted",
  failure: "SweepFailed",
  cancelled: "SweepCancelled",
  "task-failed": "TaskFailed",
  budget: "BudgetReached",
  unhealthy: "InstanceUnhealthy",
  "dns-failed": "DnsRegistrationFailed",
  "schedule-failed": "ScheduleLaunchFailed",
} as const satisfies Record<string, SpawnEvent["type"]>;
type EventTriggerKind = keyof typeof EVENT_TRIGGERS;

/** Triggers on a level the sweep reaches (checked on every event and periodically), with a threshold. */
const LEVEL_TRIGGERS = ["cost", "long-running", "preempted"] as const;

export const TRIGGER_KINDS = [...(Object.keys(EVENT_TRIGGERS) as EventTriggerKind[]), ...LEVEL_TRIGGERS];

export const AlertTrigger = z.discriminatedUnion("kind", [
  z.object({ kind: z.enum(Object.keys(EVENT_TRIGGERS) as [EventTriggerKind, ...EventTriggerKind[]]) }),
  /** Money spent on the sweep's instances reached `usd`. */
  z.object({ kind: z.literal("cost"), usd: z.number().positive() }),
  /** The sweep is still running `ms` after it was created. */
  z.object({ kind: z.literal("long-running"), ms: z.number().int().positive() }),
  /** More than `count` of the sweep's instances were preempted. */
  z.object({ kind: z.literal("preempted"), count: z.number().int().nonnegative() }),
]);
export type AlertTrigger = z.infer<typeof AlertTrigger>;

/** The default `--on`. */
export const DEFAULT_TRIGGERS: readonly AlertTrigger[] = [{ kind: "failure" }, { kind: "complete" }];

const TRIGGER_HINT = `one of ${Object.keys(EVENT_TRIGGERS).join(", ")}, cost>USD, long-running>DURATION, preempted>N`;

/** `cost>50` etc., as the user writes it. */
export function formatTrigger(trigger: AlertTrigger): string {
  switch (trigger.kind) {
    case "cost":
      return `cost>${trigger.usd}`;
    case "long-running":
      // Minutes, as the user most likely wrote it; the text is part of the dedupe key, so it is canonical.
      return `long-running>${trigger.ms % 60_000 === 0 ? `${trigger.ms / 60_000}m` : `${trigger.ms / 1000}s`}`;
    case "preempted":
      return `preempted>${trigger.count}`;
    default:
      return trigger.kind;
  }
}

/** Parses `--on`: a comma-separated list; an unknown trigger or a bad threshold names itself. */
export function parseTriggers(text: string): AlertTrigger[] {
  const tokens = text
    .split(",")
    .map((t) => t.trim())
    .filter(Boolean);
  if (tokens.length === 0) throw new AlertError("--on lists no trigger", `e.g. --on failure,complete`);
  const triggers = new Map<string, AlertTrigger>();
  for (const token of tokens) {
    const trigger = parseTrigger(token);
    triggers.set(formatTrigger(trigger), trigger);
  }
  return [...triggers.values()];
}

function parseTrigger(token: string): AlertTrigger {
  const bad = (why: string, hint = TRIGGER_HINT) =>
    new AlertError(`--on ${JSON.stringify(token)}: ${why}`, hint);
  const level = /^([a-z-]+)\s*>\s*(.+)$/.exec(token);
  if (!level) {
    if (token in EVENT_TRIGGERS) return { kind: token as EventTriggerKind };
    if ((LEVEL_TRIGGERS as readonly string[]).includes(token))
      throw bad(
        "needs a threshold",
        `e.g. ${token === "cost" ? "cost>50" : token === "preempted" ? "preempted>3" : "long-running>120m"}`,
      );
    throw bad("unknown trigger");
  }
  const [, kind, value] = level as unknown as [string, string, string];
  if (kind === "cost") {
    const usd = Number(value.replace(/^\$/, ""));
    if (!/^\$?\d+(\.\d+)?$/.test(value) || usd <= 0)
      throw bad("the threshold is a positive number of USD", "e.g. cost>50");
    return { kind, usd };
  }
  if (kind === "long-running") {
    // A bare number would read as seconds (the spec's convention) where people mean minutes.
    const ms = /\d$/.test(value) ? undefined : parseDuration(value);
    if (ms === undefined || ms < 60_000)
      throw bad(
        "the threshold is a duration with a unit, at least 1m",
        "e.g. long-running>120m, long-running>2h",
      );
    return { kind, ms };
  }
  if (kind === "preempted") {
    if (!/^\d+$/.test(value)) throw bad("the threshold is a whole number of preemptions", "e.g. preempted>3");
    return { kind, count: Number(value) };
  }
  throw bad(`unknown trigger ${JSON.stringify(kind)}`);
}

// ---------------------------------------------------------------------------------------------
// URLs: https only; plain http to loopback only (tests, a local relay)

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]", "::1"]);

function isLoopback(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127(\.\d{1,3}){3}$/.test(hostname);
}

/**
 * A webhook URL that may be posted to: https, or http to a loopback address. The message never
 * repeats the URL's path or query (Slack's token is the path).
 */
export function checkWebhookUrl(url: string, flag: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new AlertError(`${flag} is not a URL`, `e.g. ${flag} https://hooks.example.com/...`);
  }
  if (parsed.username || parsed.password)
    throw new AlertError(`${flag} must not carry credentials in the URL`);
  if (parsed.protocol === "https:") return parsed;
  if (parsed.protocol === "http:" && isLoopback(parsed.hostname)) return parsed;
  throw new AlertError(
    `${flag} must be an https:// URL, got ${parsed.protocol}//${parsed.host}`,
    "plain http is allowed only to a loopback address (127.0.0.1, ::1, localhost)",
  );
}

const SNS_TOPIC_ARN = /^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$/;

export function checkTopicArn(arn: string): string {
  if (!SNS_TOPIC_ARN.test(arn))
    throw new AlertError(
      `--sns ${JSON.stringify(arn)} is not an SNS topic ARN`,
      "e.g. --sns arn:aws:sns:us-east-1:123456789012:alerts",
    );
  return arn;
}

export function checkEmail(address: string): string {
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(address))
    throw new AlertError(`--email ${JSON.stringify(address)} is not an email address`);
  return address;
}

// ---------------------------------------------------------------------------------------------
// Records

/**
 * A secret sealed with AES-256-GCM. On AWS the data key is a KMS data key, stored wrapped
 * (`wrappedKey`); locally the key is the state dir's key file. `context` binds the ciphertext to
 * its alert (GCM additional data, and the KMS encryption context).
 */
export const Sealed = z.object({
  v: z.literal(1),
  key: z.enum(["kms", "file"]),
  wrappedKey: z.string().optional(),
  iv: z.string(),
  tag: z.string(),
  data: z.string(),
});
export type Sealed = z.infer<typeof Sealed>;

export const AlertChannel = z.discriminatedUnion("kind", [
  z.object({ kind: z.literal("slack"), url: Sealed }),
  /** The body is signed with HMAC-SHA256 of `secret` (see signWebhook). */
  z.object({ kind: z.literal("webhook"), url: Sealed, secret: Sealed }),
  z.object({ kind: z.literal("sns"), topicArn: z.string() }),
  /** An SNS email subscription, filtered to this alert; delivered by publishing to its topic. */
  z.object({
    kind: z.literal("email"),
    address: z.string(),
    topicArn: z.string(),
    subscriptionArn: z.string().optional(),
  }),
  /** JSON lines in `alerts.log` under the state dir (embedded default). */
  z.object({ kind: z.literal("log") }),
]);
export type AlertChannel = z.infer<typeof AlertChannel>;
export type ChannelKind = AlertChannel["kind"];

export const AlertTarget = z.object({ kind: z.enum(["sweep", "schedule"]), id: z.string().min(1) });
export type AlertTarget = z.infer<typeof AlertTarget>;

export const AlertRecord = z.object({
  /** Partition: `owner#<name>`, so a user's alerts are one query. */
  scope: z.string(),
  /** `<kind>#<target id>#<suffix>`: a target's alerts are a `begins_with` on the sort key. */
  alertId: z.string(),
  owner: z.string(),
  target: AlertTarget,
  triggers: z.array(AlertTrigger).min(1),
  channels: z.array(AlertChannel).min(1),
  /**
   * The id of the alert as the user created it; the copies made for a schedule's sweeps keep
   * it. Binds the sealed secrets (their context) and filters email subscriptions (an SNS
   * message attribute).
   */
  originId: z.string(),
  /** Set on the copy a schedule's alert makes for each sweep the schedule launches. */
  inheritedFrom: z.string().optional(),
  createdAt: z.number(),
});
export type AlertRecord = z.infer<typeof AlertRecord>;

export const DeliveryOutcome = z.enum(["pending", "delivered", "failed", "rejected"]);
export type DeliveryOutcome = z.infer<typeof DeliveryOutcome>;

export const ChannelResult = z.object({
  /** Position in the alert's `channels`. */
  channel: z.number().int().nonnegative(),
  kind: z.string(),
  /** delivered; failed (retryable: 429, 5xx, network); rejected (the target said no: other 4xx). */
  outcome: z.enum(["delivered", "failed", "rejected"]),
  status: z.number().int().optional(),
  attempts: z.number().int().nonnegative(),
  error: z.string().optional(),
});
export type ChannelResult = z.infer<typeof ChannelResult>;

/** One item of `spawn-alert-history`: the dedupe key and how the delivery went. */
export const AlertDelivery = z.object({
  /** `<scope>#<alertId>`. */
  alertKey: z.string(),
  /** `<trigger>#<subject>`: with alertKey, the dedupe key. */
  eventKey: z.string(),
  owner: z.string(),
  alertId: z.string(),
  sweepId: z.string().optional(),
  trigger: z.string(),
  title: z.string(),
  outcome: DeliveryOutcome,
  /** Delivery attempts (claims) so far. */
  attempts: z.number().int().nonnegative(),
  channels: z.array(ChannelResult),
  firedAt: z.number(),
  updatedAt: z.number(),
  /** While pending: another delivery may take over after this (the first one crashed). */
  claimedUntil: z.number().optional(),
});
export type AlertDelivery = z.infer<typeof AlertDelivery>;

/** Days a delivery is kept (DynamoDB TTL on `expiresAt`). */
export const HISTORY_TTL_DAYS = 90;

export const alertKeyOf = (alert: Pick<AlertRecord, "scope" | "alertId">) =>
  `${alert.scope}#${alert.alertId}`;
export const ownerScope = (owner: string) => `owner#${owner}`;
export const targetPrefix = (target: AlertTarget) => `${target.kind}#${target.id}#`;
/** The sort key of an alert (or of a copy of it) on `target`. */
export const alertIdFor = (target: AlertTarget, originId: string) => `${targetPrefix(target)}${originId}`;
/** The id users see and type: the origin's, so an alert and its copies are one. */
export const publicAlertId = (alert: Pick<AlertRecord, "originId">) => `al-${alert.originId}`;

/** A target named on the command line: a schedule id (`sch-…`) or a sweep id. */
export function parseTarget(text: string): AlertTarget {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$/.test(text))
    throw new AlertError(
      `${JSON.stringify(text)} is not a sweep or schedule id`,
      "spawn sweep list and spawn schedule list show yours",
    );
  return { kind: text.startsWith("sch-") ? "schedule" : "sweep", id: text };
}

// ---------------------------------------------------------------------------------------------
// Ports

/** Seals secrets at rest: KMS envelope on AWS, the state dir's key file locally. */
export interface SecretBox {
  seal(plaintext: string, context: string): Promise<Sealed>;
  /** Throws when the ciphertext was altered or sealed for another context. */
  open(sealed: Sealed, context: string): Promise<string>;
}

export interface ClaimRequest {
  alertKey: string;
  eventKey: string;
  owner: string;
  alertId: string;
  sweepId?: string;
  trigger: string;
  title: string;
  now: number;
  claimMs: number;
}

/** spawn-alerts and spawn-alert-history; every write is one conditional single-item write. */
export interface AlertStore {
  /** ConditionFailedError if it exists. */
  createAlert(alert: AlertRecord): Promise<void>;
  getAlert(owner: string, alertId: string): Promise<AlertRecord | undefined>;
  /** An owner's alerts, or only those of one target (a key query either way). */
  listAlerts(owner: string, target?: AlertTarget): Promise<AlertRecord[]>;
  /** False when there was none. */
  deleteAlert(owner: string, alertId: string): Promise<boolean>;
  /**
   * Claims the delivery of one (alert, fact): succeeds when no delivery exists, the last one
   * failed on a retryable error, or its claim expired. Returns the previous delivery when there
   * was one (its delivered channels are not sent again), or `undefined` with `claimed: false`.
   */
  claimDelivery(request: ClaimRequest): Promise<{ claimed: boolean; previous?: AlertDelivery }>;
  finishDelivery(
    alertKey: string,
    eventKey: string,
    result: { outcome: Exclude<DeliveryOutcome, "pending">; channels: ChannelResult[]; updatedAt: number },
  ): Promise<void>;
  /** Newest first: every delivery about a sweep, or one alert's. */
  listDeliveries(query: { sweepId: string } | { alertKey: string }, limit?: number): Promise<AlertDelivery[]>;
}

/** SNS email subscriptions: what `spawn alerts create --email` and `delete` use (aws). */
export interface EmailSubscriber {
  /** Subscribes `address`, filtered to the alert's messages; returns the subscription ARN. */
  subscribeEmail(topicArn: string, address: string, originId: string): Promise<string>;
  /** Idempotent. */
  unsubscribe(subscriptionArn: string): Promise<void>;
}

/** What `spawn alerts` needs from a provider. */
export interface AlertServices {
  store: AlertStore;
  secrets: SecretBox;
  /** aws: SNS. */
  subscriptions?: EmailSubscriber;
  /** aws: the stack's alerts topic, where `--email` subscribes when no `--sns` is given. */
  defaultTopicArn?: string;
}

/** Sends one message on one channel; never throws for a delivery failure, and never reports secrets. */
export type ChannelSender = (
  channel: AlertChannel,
  message: AlertMessage,
  alert: AlertRecord,
) => Promise<Omit<ChannelResult, "channel">>;

// ---------------------------------------------------------------------------------------------
// Facts and messages

/** What a message says about the sweep, read when the alert fires. */
export interface SweepSnapshot {
  sweepId: string;
  name: string;
  owner: string;
  status: SweepStatus;
  active: boolean;
  taskCount: number;
  createdAt: number;
  finishedAt?: number;
  preemptions: number;
  /** USD paid so far (run time × recorded price; 0 locally). */
  spent: number;
  budget?: number;
}

/** The sweep as alerts see it, with what its instances have cost so far. */
export async function sweepSnapshot(
  store: Pick<StateStore, "listInstances">,
  sweep: SweepRecord,
  now: number,
): Promise<SweepSnapshot> {
  const instances = await store.listInstances(sweep.sweepId);
  return {
    sweepId: sweep.sweepId,
    name: sweep.name,
    owner: sweep.owner,
    status: sweep.status,
    active: sweep.active,
    taskCount: sweep.taskCount,
    createdAt: sweep.createdAt,
    ...(sweep.finishedAt !== undefined ? { finishedAt: sweep.finishedAt } : {}),
    preemptions: sweep.preemptions ?? 0,
    spent: spentSoFar(instances, now),
    ...(sweep.spec.budget !== undefined ? { budget: sweep.spec.budget } : {}),
  };
}

export type Severity = "info" | "warning" | "critical";

/** A fact an alert fires on: an event it matched, or a level the sweep reached. */
export interface AlertFact {
  trigger: AlertTrigger;
  /** `<trigger>#<subject>`; the same fact always gives the same key. */
  eventKey: string;
  sweepId: string;
  severity: Severity;
  title: string;
  detail: string;
  event?: SpawnEvent;
}

/** What every channel renders. */
export interface AlertMessage {
  /** Stable per (alert, fact): receivers can dedupe on it too. */
  deliveryId: string;
  alertId: string;
  trigger: string;
  severity: Severity;
  title: string;
  detail: string;
  sweepId: string;
  sweepName?: string;
  /** `<link base>#/sweeps/<id>` when a dashboard URL is configured. */
  link?: string;
  /** The command that shows the sweep. */
  command: string;
  counts?: { tasks: number; succeeded?: number; failed?: number };
  /** USD spent so far. */
  spent?: number;
  budget?: number;
  time: string;
  event?: SpawnEvent;
}

const usd = (n: number) => `$${n.toFixed(2)}`;

/** The facts `event` gives for `trigger` (event triggers only). */
function eventFact(trigger: AlertTrigger, event: SpawnEvent, name: string): AlertFact | undefined {
  if (!(trigger.kind in EVENT_TRIGGERS) || EVENT_TRIGGERS[trigger.kind as EventTriggerKind] !== event.type)
    return undefined;
  const base = { trigger, sweepId: event.sweepId, event };
  // Redeliveries of one event carry the same time; a new failure after `sweep retry` does not.
  const key = (subject: string) => `${trigger.kind}#${event.sweepId}#${subject}`;
  switch (event.type) {
    case "SweepCompleted":
      return {
        ...base,
        eventKey: key(String(event.time)),
        severity: "info",
        title: `Sweep ${name} completed`,
        detail: event.reason,
      };
    case "SweepFailed":
      return {
        ...base,
        eventKey: key(String(event.time)),
        severity: "critical",
        title: `Sweep ${name} failed`,
        detail: `${event.reason}${event.failedTasks.length ? ` (failed tasks: ${event.failedTasks.slice(0, 20).join(", ")}${event.failedTasks.length > 20 ? ", …" : ""})` : ""}`,
      };
    case "SweepCancelled":
      return {
        ...base,
        eventKey: key(String(event.time)),
        severity: "warning",
        title: `Sweep ${name} was cancelled`,
        detail: event.reason,
      };
    case "TaskFailed":
      return {
        ...base,
        eventKey: key(`${event.taskIndex}#${event.attempt}`),
        severity: "warning",
        title: `Task ${event.taskIndex} of ${name} failed for good`,
        detail: `attempt ${event.attempt}${event.exitCode !== undefined ? `, exit code ${event.exitCode}` : ""}${event.error ? `: ${event.error}` : ""}`,
      };
    case "BudgetReached":
      return {
        ...base,
        eventKey: key(String(event.time)),
        severity: "critical",
        title: `Sweep ${name} reached its budget`,
        detail: `${usd(event.spent)} spent + ${usd(event.committed)} committed of ${usd(event.budget)}: no more instances are launched`,
      };
    case "InstanceUnhealthy":
      return {
        ...base,
        eventKey: key(event.instanceId),
        severity: "warning",
        title: `Instance ${event.providerRef ?? event.instanceId} of ${name} failed its GPU health check`,
        detail: event.reason,
      };
    case "DnsRegistrationFailed":
      return {
        ...base,
        eventKey: key(event.instanceId),
        severity: "warning",
        title: `${event.host} could not be registered in DNS`,
        detail: `${event.error} (instance ${event.instanceId}; it runs its tasks regardless)`,
      };
    case "ScheduleLaunchFailed":
      return {
        ...base,
        eventKey: key(event.scheduleId),
        severity: "critical",
        title: `Schedule ${event.scheduleId} could not launch its sweep`,
        detail: event.error,
      };
    default:
      return undefined;
  }
}

/** The level triggers `sweep` has reached at `now`. Each fires once per sweep. */
function levelFact(trigger: AlertTrigger, sweep: SweepSnapshot, now: number): AlertFact | undefined {
  const base = { trigger, sweepId: sweep.sweepId, eventKey: `${formatTrigger(trigger)}#${sweep.sweepId}` };
  if (trigger.kind === "cost" && sweep.spent >= trigger.usd)
    return {
      ...base,
      severity: "warning",
      title: `Sweep ${sweep.name} has cost ${usd(sweep.spent)}`,
      detail: `over the ${usd(trigger.usd)} threshold${sweep.budget !== undefined ? ` (budget ${usd(sweep.budget)})` : ""}`,
    };
  // Only while it runs: a sweep that ended is no longer "running long".
  if (
    trigger.kind === "long-running" &&
    sweep.active &&
    !sweep.finishedAt &&
    now - sweep.createdAt > trigger.ms
  )
    return {
      ...base,
      severity: "warning",
      title: `Sweep ${sweep.name} has been running for ${formatDuration(now - sweep.createdAt)}`,
      detail: `over the ${formatDuration(trigger.ms)} threshold; status ${sweep.status}`,
    };
  if (trigger.kind === "preempted" && sweep.preemptions > trigger.count)
    return {
      ...base,
      severity: "warning",
      title: `Sweep ${sweep.name} lost ${sweep.preemptions} instances to spot preemption`,
      detail: `over the threshold of ${trigger.count}`,
    };
  return undefined;
}

/** Every fact `alert` fires on for this event (with the sweep as it is now) or, without one, on levels alone. */
export function matchAlert(
  alert: AlertRecord,
  sweep: SweepSnapshot | undefined,
  event: SpawnEvent | undefined,
  now: number,
): AlertFact[] {
  const name = sweep?.name ?? event?.sweepId ?? "?";
  const facts: AlertFact[] = [];
  for (const trigger of alert.triggers) {
    const fact =
      (event && eventFact(trigger, event, name)) ?? (sweep ? levelFact(trigger, sweep, now) : undefined);
    if (fact) facts.push(fact);
  }
  return facts;
}

/** A stable id for one (alert, fact), sent to receivers so they can dedupe too. */
export function deliveryId(alertKey: string, eventKey: string): string {
  return createHmac("sha256", "spawn-delivery").update(`${alertKey}\n${eventKey}`).digest("hex").slice(0, 32);
}

export function renderMessage(
  alert: AlertRecord,
  fact: AlertFact,
  sweep: SweepSnapshot | undefined,
  options: { now: number; linkBase?: string },
): AlertMessage {
  const event = fact.event;
  const counts =
    event?.type === "SweepCompleted" || event?.type === "SweepFailed"
      ? {
          tasks: sweep?.taskCount ?? event.succeeded + (event.type === "SweepFailed" ? event.failed : 0),
          succeeded: event.succeeded,
          ...(event.type === "SweepFailed" ? { failed: event.failed } : { failed: 0 }),
        }
      : sweep
        ? { tasks: sweep.taskCount }
        : undefined;
  return {
    deliveryId: deliveryId(alertKeyOf(alert), fact.eventKey),
    alertId: alert.alertId,
    trigger: formatTrigger(fact.trigger),
    severity: fact.severity,
    title: fact.title,
    detail: fact.detail,
    sweepId: fact.sweepId,
    ...(sweep ? { sweepName: sweep.name, spent: sweep.spent } : {}),
    ...(sweep?.budget !== undefined ? { budget: sweep.budget } : {}),
    ...(options.linkBase && sweep
      ? { link: `${options.linkBase.replace(/\/+$/, "")}/#/sweeps/${encodeURIComponent(fact.sweepId)}` }
      : {}),
    command: `spawn sweep status ${fact.sweepId}`,
    ...(counts ? { counts } : {}),
    time: new Date(options.now).toISOString(),
    ...(event ? { event } : {}),
  };
}

/** One line for terminals and logs. */
export function messageText(message: AlertMessage): string {
  const parts = [message.title, message.detail];
  if (message.counts?.succeeded !== undefined)
    parts.push(
      `${message.counts.succeeded}/${message.counts.tasks} succeeded${message.counts.failed ? `, ${message.counts.failed} failed` : ""}`,
    );
  if (message.spent) parts.push(`cost ${usd(message.spent)}`);
  parts.push(message.link ?? message.command);
  return parts.filter(Boolean).join(" — ");
}

// ---------------------------------------------------------------------------------------------
// Webhook signatures: `X-Spawn-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`

export const SIGNATURE_HEADER = "x-spawn-signature";
/** A receiver should refuse signatures older than this (replay). */
export const SIGNATURE_TOLERANCE_S = 300;

export function signWebhook(secret: string, body: string, timestampS: number): string {
  const mac = createHmac("sha256", secret).update(`${timestampS}.${body}`).digest("hex");
  return `t=${timestampS},v1=${mac}`;
}

/** What a receiver does (docs/alerts.md shows it standalone): constant-time compare, timestamp window. */
export function verifyWebhook(
  secret: string,
  body: string,
  header: string | undefined,
  nowS: number,
  toleranceS = SIGNATURE_TOLERANCE_S,
): boolean {
  const parts = Object.fromEntries((header ?? "").split(",").map((p) => p.split("=", 2) as [string, string]));
  const t = Number(parts.t);
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS || !parts.v1) return false;
  const expected = Buffer.from(signWebhook(secret, body, t).split("v1=")[1]!, "hex");
  const given = Buffer.from(parts.v1, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected);
}

// ---------------------------------------------------------------------------------------------
// Retries of one HTTP delivery

export interface RetryPolicy {
  /** Sends, the first included. @default 5 */
  maxAttempts: number;
  /** @default 500 ms, doubled each attempt, full jitter */
  baseMs: number;
  /** No single wait is longer; a Retry-After beyond it ends the attempts (the next event delivery retries). @default 30 s */
  maxDelayMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 5, baseMs: 500, maxDelayMs: 30_000 };

/** 429 and 5xx (and no answer at all) may succeed later; other statuses will not. */
export function isRetryableStatus(status: number | undefined): boolean {
  return status === undefined || status === 429 || status >= 500;
}

/**
 * How long to wait before attempt `attempt + 1`, or undefined to stop: not retryable, out of
 * attempts, or a Retry-After (seconds or an HTTP date) longer than the policy allows.
 */
export function retryDelayMs(
  attempt: number,
  status: number | undefined,
  retryAfter: string | null | undefined,
  now: number,
  random: () => number,
  policy: RetryPolicy = DEFAULT_RETRY,
): number | undefined {
  if (!isRetryableStatus(status) || attempt >= policy.maxAttempts) return undefined;
  if (retryAfter) {
    const seconds = /^\d+$/.test(retryAfter.trim())
      ? Number(retryAfter) * 1000
      : Date.parse(retryAfter) - now;
    if (Number.isFinite(seconds)) return seconds > policy.maxDelayMs ? undefined : Math.max(0, seconds);
  }
  return Math.floor(random() * Math.min(policy.maxDelayMs, policy.baseMs * 2 ** (attempt - 1)));
}

// ---------------------------------------------------------------------------------------------
// Delivery

export interface AlertDeps {
  alerts: AlertStore;
  store: Pick<StateStore, "getSweep" | "listInstances">;
  send: ChannelSender;
  clock: Clock;
  /** Where a message links the sweep: the dashboard's URL. */
  linkBase?: string;
  /** A claim lasts this long; a delivery that crashed is retried after it. @default 5 min */
  claimMs?: number;
}

export interface DeliveryReport {
  alertId: string;
  eventKey: string;
  outcome: DeliveryOutcome | "duplicate";
}

/** Some delivery failed on a retryable error: the caller retries the event (Lambda does by itself). */
export class AlertDeliveryError extends Error {
  override name = "AlertDeliveryError";
}

async function deliver(
  deps: AlertDeps,
  alert: AlertRecord,
  fact: AlertFact,
  sweep: SweepSnapshot | undefined,
): Promise<DeliveryReport> {
  const now = deps.clock.now();
  const alertKey = alertKeyOf(alert);
  const message = renderMessage(alert, fact, sweep, {
    now,
    ...(deps.linkBase ? { linkBase: deps.linkBase } : {}),
  });
  const claim = await deps.alerts.claimDelivery({
    alertKey,
    eventKey: fact.eventKey,
    owner: alert.owner,
    alertId: alert.alertId,
    sweepId: fact.sweepId,
    trigger: message.trigger,
    title: message.title,
    now,
    claimMs: deps.claimMs ?? 300_000,
  });
  const report = { alertId: alert.alertId, eventKey: fact.eventKey };
  if (!claim.claimed) return { ...report, outcome: "duplicate" };
  const done = new Map(
    (claim.previous?.channels ?? []).filter((c) => c.outcome === "delivered").map((c) => [c.channel, c]),
  );
  // SNS fans out to every subscriber: one publish per topic, however many channels name it.
  const topics = new Set<string>();
  const channels = await Promise.all(
    alert.channels.map(async (channel, index): Promise<ChannelResult> => {
      const previous = done.get(index);
      if (previous) return previous;
      if (channel.kind === "sns" || channel.kind === "email") {
        if (topics.has(channel.topicArn))
          return { channel: index, kind: channel.kind, outcome: "delivered", attempts: 0 };
        topics.add(channel.topicArn);
      }
      try {
        return { channel: index, ...(await deps.send(channel, message, alert)) };
      } catch (error) {
        // A sender bug must not lose the delivery: record it as retryable, without details that could hold a secret.
        return {
          channel: index,
          kind: channel.kind,
          outcome: "failed",
          attempts: 1,
          error: (error as Error).name,
        };
      }
    }),
  );
  const outcome = channels.every((c) => c.outcome === "delivered")
    ? "delivered"
    : channels.some((c) => c.outcome === "failed")
      ? "failed"
      : "rejected";
  await deps.alerts.finishDelivery(alertKey, fact.eventKey, {
    outcome,
    channels,
    updatedAt: deps.clock.now(),
  });
  return { ...report, outcome };
}

async function rulesFor(deps: AlertDeps, owner: string, targets: AlertTarget[]): Promise<AlertRecord[]> {
  const lists = await Promise.all(targets.map((t) => deps.alerts.listAlerts(owner, t)));
  return lists.flat();
}

/** A schedule's alerts, copied for a sweep it launched: the sweep's facts then match them. */
async function inheritScheduleAlerts(
  deps: AlertDeps,
  event: Extract<SpawnEvent, { type: "ScheduleLaunched" }>,
): Promise<void> {
  const alerts = await deps.alerts.listAlerts(event.owner, { kind: "schedule", id: event.scheduleId });
  for (const alert of alerts) {
    const target: AlertTarget = { kind: "sweep", id: event.sweepId };
    try {
      await deps.alerts.createAlert({
        ...alert,
        alertId: alertIdFor(target, alert.originId),
        target,
        inheritedFrom: event.scheduleId,
        createdAt: deps.clock.now(),
      });
    } catch (error) {
      // A redelivered ScheduleLaunched finds the copy made the first time.
      if (!(error instanceof ConditionFailedError)) throw error;
    }
  }
}

/**
 * Handles one published event: finds the alerts of its sweep (and schedule), delivers every
 * fact they fire on, and throws AlertDeliveryError when a retryable failure should bring the
 * event back. Idempotent: a redelivered event sends nothing twice.
 */
export async function handleEvent(deps: AlertDeps, event: SpawnEvent): Promise<DeliveryReport[]> {
  if (event.type === "ScheduleLaunched") {
    await inheritScheduleAlerts(deps, event);
    return [];
  }
  const record = await deps.store.getSweep(event.sweepId);
  const owner = record?.owner ?? (event.type === "ScheduleLaunchFailed" ? event.owner : undefined);
  if (!owner) return [];
  const targets: AlertTarget[] = [{ kind: "sweep", id: event.sweepId }];
  if (event.type === "ScheduleLaunchFailed") targets.push({ kind: "schedule", id: event.scheduleId });
  const rules = await rulesFor(deps, owner, targets);
  // Most events concern sweeps without alerts: their instances are not read.
  if (!rules.length) return [];
  const sweep = record && (await sweepSnapshot(deps.store, record, deps.clock.now()));
  return deliverFacts(deps, rules, sweep, event);
}

/** The periodic pass: level triggers (cost, long-running, preemptions) of these (active) sweeps. */
export async function checkAlertLevels(
  deps: AlertDeps,
  sweeps: readonly SweepRecord[],
): Promise<DeliveryReport[]> {
  const reports: DeliveryReport[] = [];
  for (const record of sweeps) {
    const rules = (await rulesFor(deps, record.owner, [{ kind: "sweep", id: record.sweepId }])).filter((r) =>
      r.triggers.some((t) => (LEVEL_TRIGGERS as readonly string[]).includes(t.kind)),
    );
    if (!rules.length) continue;
    const sweep = await sweepSnapshot(deps.store, record, deps.clock.now());
    reports.push(...(await deliverFacts(deps, rules, sweep, undefined)));
  }
  return reports;
}

async function deliverFacts(
  deps: AlertDeps,
  rules: readonly AlertRecord[],
  sweep: SweepSnapshot | undefined,
  event: SpawnEvent | undefined,
): Promise<DeliveryReport[]> {
  const now = deps.clock.now();
  const reports = await Promise.all(
    rules.flatMap((rule) =>
      matchAlert(rule, sweep, event, now).map((fact) => deliver(deps, rule, fact, sweep)),
    ),
  );
  const failed = reports.filter((r) => r.outcome === "failed");
  if (failed.length)
    throw new AlertDeliveryError(
      `${failed.length} alert deliver${failed.length === 1 ? "y" : "ies"} failed and will be retried: ${failed.map((f) => f.eventKey).join(", ")}`,
    );
  return reports;
}

/**
 * Wraps a schedule launcher so every firing publishes ScheduleLaunched or ScheduleLaunchFailed:
 * the first copies the schedule's alerts to the new sweep, the second fires `schedule-failed`.
 */
export function publishingLauncher(
  inner: ScheduleLauncher,
  events: EventSink,
  clock: Clock,
): ScheduleLauncher {
  return {
    async launch(schedule, sweepId, traceparent) {
      const fields = { scheduleId: schedule.scheduleId, owner: schedule.owner };
      try {
        await inner.launch(schedule, sweepId, traceparent);
      } catch (error) {
        await events.publish([
          spawnEvent(sweepId, clock.now(), {
            type: "ScheduleLaunchFailed",
            ...fields,
            error: error instanceof Error ? error.message : String(error),
          }),
        ]);
        throw error;
      }
      await events.publish([spawnEvent(sweepId, clock.now(), { type: "ScheduleLaunched", ...fields })]);
    },
  };
}
