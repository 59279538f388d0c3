/**
 * `spawn alerts`: create (validate every flag first, seal the secrets, subscribe emails, write
 * the rule), list, delete (with the copies a schedule's alert made), history.
 */
import { randomBytes } from "node:crypto";
import {
  type AlertChannel,
  type AlertDelivery,
  AlertError,
  type AlertRecord,
  type AlertServices,
  type AlertTarget,
  type AlertTrigger,
  alertIdFor,
  alertKeyOf,
  checkEmail,
  checkTopicArn,
  checkWebhookUrl,
  DEFAULT_TRIGGERS,
  formatTrigger,
  ownerScope,
  parseTarget,
  parseTriggers,
  publicAlertId,
} from "#core/alerts.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { ProviderName } from "#core/model.js";
import { type CliContext, ownerOf } from "../context.js";

export interface CreateAlertOptions {
  slack?: readonly string[];
  webhook?: readonly string[];
  /** Signs every --webhook; generated (and shown once) when not given. */
  webhookSecret?: string;
  sns?: readonly string[];
  email?: readonly string[];
  /** The local alert log (the default channel on the embedded default). */
  log?: boolean;
  on?: string;
}

export interface CreatedAlert {
  alert: AlertRecord;
  /** The webhook signing secret, when spawn generated it: shown to the user once, stored sealed. */
  generatedSecret?: string;
}

export function alertServices(ctx: CliContext): AlertServices {
  if (!ctx.alerts) {
    throw new AbortError(
      `spawn alerts is not available for --provider ${ctx.provider} in this build`,
      "alerts run on the embedded default (--provider local)",
    );
  }
  return ctx.alerts;
}

/** The target must be the user's own sweep or schedule (or a sweep the context's actor sees). */
async function requireTarget(ctx: CliContext, target: AlertTarget): Promise<void> {
  const sweep = target.kind === "sweep" ? await ctx.store.getSweep(target.id) : undefined;
  const owner = target.kind === "sweep" ? sweep?.owner : (await ctx.schedules.getSchedule(target.id))?.owner;
  const seen = sweep !== undefined && ctx.actor !== undefined && (await ctx.actor.seesSweep(sweep));
  if (owner !== ownerOf(ctx) && !seen) {
    throw new NotFoundError(
      target.kind,
      target.id,
      target.kind === "sweep" ? "spawn sweep list shows yours" : "spawn schedule list shows yours",
    );
  }
}

/** Every flag, checked: what createAlert writes. */
export interface AlertPlan {
  target: AlertTarget;
  triggers: AlertTrigger[];
  slack: string[];
  webhooks: string[];
  webhookSecret?: string;
  topics: string[];
  emails: string[];
  log: boolean;
}

/** Validates every flag before anything is opened or written: bad input exits 2 and leaves nothing behind. */
export function planAlert(
  provider: ProviderName,
  targetText: string,
  options: CreateAlertOptions,
): AlertPlan {
  const target = parseTarget(targetText);
  const triggers = options.on === undefined ? [...DEFAULT_TRIGGERS] : parseTriggers(options.on);
  const slack = (options.slack ?? []).map((url) => checkWebhookUrl(url, "--slack").href);
  const webhooks = (options.webhook ?? []).map((url) => checkWebhookUrl(url, "--webhook").href);
  const topics = (options.sns ?? []).map(checkTopicArn);
  const emails = (options.email ?? []).map(checkEmail);
  if (options.webhookSecret !== undefined && webhooks.length === 0)
    throw new AlertError("--webhook-secret needs a --webhook");
  if (options.webhookSecret !== undefined && options.webhookSecret.length < 16)
    throw new AlertError(
      "--webhook-secret must be at least 16 characters",
      "or leave it out: spawn generates one",
    );
  if (provider === "local" && (topics.length || emails.length))
    throw new AlertError(
      "--sns and --email need --provider aws (SNS); the embedded default delivers to Slack, webhooks and the alert log",
    );
  if (provider !== "local" && options.log)
    throw new AlertError(
      "--log is the embedded default's channel; on aws use --sns, --email, --slack or --webhook",
    );
  const log = Boolean(options.log) || (provider === "local" && !slack.length && !webhooks.length);
  if (!log && !slack.length && !webhooks.length && !topics.length && !emails.length)
    throw new AlertError("an alert needs a channel", "give --slack, --webhook, --sns or --email");
  return {
    target,
    triggers,
    slack,
    webhooks,
    ...(options.webhookSecret !== undefined ? { webhookSecret: options.webhookSecret } : {}),
    topics,
    emails,
    log,
  };
}

export async function createAlert(ctx: CliContext, plan: AlertPlan): Promise<CreatedAlert> {
  const { target, triggers, slack, webhooks, topics, emails, log } = plan;
  const services = alertServices(ctx);
  const emailTopic = topics[0] ?? services.defaultTopicArn;
  if (emails.length && (!emailTopic || !services.subscriptions))
    throw new AlertError("--email needs an SNS topic", "give --sns ARN, or deploy the stack's alerts topic");
  await requireTarget(ctx, target);

  const owner = ownerOf(ctx);
  const originId = randomBytes(8).toString("hex");
  const secret =
    plan.webhookSecret ?? (webhooks.length ? `whsec_${randomBytes(24).toString("base64url")}` : undefined);
  const seal = (text: string) => services.secrets.seal(text, originId);
  const channels: AlertChannel[] = [];
  for (const url of slack) channels.push({ kind: "slack", url: await seal(url) });
  for (const url of webhooks)
    channels.push({ kind: "webhook", url: await seal(url), secret: await seal(secret!) });
  for (const topicArn of topics) channels.push({ kind: "sns", topicArn });
  if (log) channels.push({ kind: "log" });
  const subscribed: string[] = [];
  try {
    for (const address of emails) {
      const subscriptionArn = await services.subscriptions!.subscribeEmail(emailTopic!, address, originId);
      subscribed.push(subscriptionArn);
      channels.push({ kind: "email", address, topicArn: emailTopic!, subscriptionArn });
    }
    const alert: AlertRecord = {
      scope: ownerScope(owner),
      alertId: alertIdFor(target, originId),
      owner,
      target,
      triggers,
      channels,
      originId,
      createdAt: ctx.clock.now(),
    };
    await services.store.createAlert(alert);
    return { alert, ...(secret && !plan.webhookSecret ? { generatedSecret: secret } : {}) };
  } catch (error) {
    // Not written means not created: take the subscriptions back.
    for (const arn of subscribed) await services.subscriptions!.unsubscribe(arn).catch(() => {});
    throw error;
  }
}

/** The user's alerts, or one target's; copies made for a schedule's sweeps only with `copies`. */
export async function listAlerts(
  ctx: CliContext,
  targetText: string | undefined,
  options: { copies?: boolean } = {},
): Promise<AlertRecord[]> {
  const target = targetText === undefined ? undefined : parseTarget(targetText);
  const alerts = await alertServices(ctx).store.listAlerts(ownerOf(ctx), target);
  return options.copies || target ? alerts : alerts.filter((a) => !a.inheritedFrom);
}

/** An alert id (`al-…`) to its records: the alert and the copies made for a schedule's sweeps. */
async function recordsOf(ctx: CliContext, alertId: string): Promise<AlertRecord[]> {
  const records = (await alertServices(ctx).store.listAlerts(ownerOf(ctx))).filter(
    (a) => publicAlertId(a) === alertId,
  );
  if (!records.length) throw new NotFoundError("alert", alertId, "spawn alerts list shows yours");
  return records;
}

export async function deleteAlert(ctx: CliContext, alertId: string): Promise<number> {
  const services = alertServices(ctx);
  const records = await recordsOf(ctx, alertId);
  // The original's subscriptions are the copies' too; unsubscribe first so no mail follows a delete.
  const subscriptions = new Set(
    records.flatMap((r) =>
      r.channels.flatMap((c) => (c.kind === "email" && c.subscriptionArn ? [c.subscriptionArn] : [])),
    ),
  );
  for (const arn of subscriptions) await services.subscriptions?.unsubscribe(arn);
  for (const record of records) await services.store.deleteAlert(record.owner, record.alertId);
  return records.length;
}

/**
 * Deliveries, newest first: about a sweep (every alert that fired on it), of an alert (`al-…`,
 * with its copies), or of a schedule's alerts and their copies.
 */
export async function alertHistory(
  ctx: CliContext,
  subject: string,
  limit: number,
): Promise<AlertDelivery[]> {
  const { store } = alertServices(ctx);
  let records: AlertRecord[];
  if (subject.startsWith("al-")) records = await recordsOf(ctx, subject);
  else {
    const target = parseTarget(subject);
    await requireTarget(ctx, target);
    if (target.kind === "sweep") return store.listDeliveries({ sweepId: target.id }, limit);
    const mine = await store.listAlerts(ownerOf(ctx));
    const origins = new Set(
      mine.filter((a) => a.target.kind === "schedule" && a.target.id === target.id).map((a) => a.originId),
    );
    records = mine.filter((a) => origins.has(a.originId));
  }
  const lists = await Promise.all(
    records.map((r) => store.listDeliveries({ alertKey: alertKeyOf(r) }, limit)),
  );
  return lists
    .flat()
    .sort((a, b) => b.firedAt - a.firedAt)
    .slice(0, limit);
}

/** What users see of a channel: never a URL or secret (they are sealed), topics and addresses as given. */
export function channelLabel(channel: AlertChannel): string {
  switch (channel.kind) {
    case "sns":
      return `sns:${channel.topicArn.split(":").pop()}`;
    case "email":
      return `email:${channel.address}`;
    default:
      return channel.kind;
  }
}

export function alertJson(alert: AlertRecord) {
  return {
    id: publicAlertId(alert),
    target: alert.target,
    on: alert.triggers.map(formatTrigger),
    channels: alert.channels.map((c) =>
      c.kind === "email"
        ? { kind: c.kind, address: c.address, topicArn: c.topicArn }
        : c.kind === "sns"
          ? { kind: c.kind, topicArn: c.topicArn }
          : { kind: c.kind },
    ),
    inheritedFrom: alert.inheritedFrom ?? null,
    createdAt: new Date(alert.createdAt).toISOString(),
  };
}

export function deliveryJson(d: AlertDelivery) {
  return {
    firedAt: new Date(d.firedAt).toISOString(),
    alert: `al-${d.alertId.split("#").pop()}`,
    sweepId: d.sweepId ?? null,
    trigger: d.trigger,
    title: d.title,
    outcome: d.outcome,
    attempts: d.attempts,
    channels: d.channels.map((c) => ({
      kind: c.kind,
      outcome: c.outcome,
      status: c.status ?? null,
      attempts: c.attempts,
      error: c.error ?? null,
    })),
  };
}
