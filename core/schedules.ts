/**
 * Schedules: a sweep spec launched at a time (`at`), on a cron expression in a time zone
 * (`cron`), or every N minutes/hours/days (`rate`). Pure: when a schedule is due, which
 * firings were missed, and how a trigger reads to EventBridge Scheduler. Firing itself
 * (record once, launch, advance) is `fireSchedule` in core/scheduler.ts.
 *
 * Daylight-saving changes (local evaluation, croner): a cron time inside the skipped hour
 * fires once at the jump (02:30 on a spring-forward night fires at 03:00), and a time that
 * occurs twice on a fall-back night fires once, at its first occurrence. EventBridge
 * Scheduler skips the nonexistent time instead; docs/schedules.md says so.
 */
import { Cron } from "croner";
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { AbortError } from "./errors.js";
import { BundleRef, ProviderName, readableId } from "./model.js";

export const ScheduleKind = z.enum(["at", "cron", "rate"]);
export type ScheduleKind = z.infer<typeof ScheduleKind>;

export const ScheduleTrigger = z.object({
  kind: ScheduleKind,
  /** at: the ISO-8601 time as given; cron: the 5-field expression; rate: the duration as given (`6h`). */
  expression: z.string(),
  /** IANA time zone the expression is evaluated in. */
  timezone: z.string(),
  /** at: the instant (epoch ms); rate: the period (ms). */
  at: z.number().optional(),
  periodMs: z.number().int().positive().optional(),
});
export type ScheduleTrigger = z.infer<typeof ScheduleTrigger>;

export const ScheduleState = z.enum(["enabled", "paused", "completed"]);
export type ScheduleState = z.infer<typeof ScheduleState>;

export const ScheduleRecord = z.object({
  scheduleId: z.string(),
  name: z.string(),
  owner: z.string(),
  provider: ProviderName,
  trigger: ScheduleTrigger,
  state: ScheduleState,
  /** Object-store key of the validated spec (JSON) each firing launches. */
  specKey: z.string(),
  /**
   * Object-store key of the spec's `policy-file:` grants as read at creation (JSON, by path as
   * written), next to the spec: every firing builds the same sweep role (ADR 0040). Absent: none.
   */
  policyFilesKey: z.string().optional(),
  /** The workdir as it was when the schedule was created: every firing runs the same code. */
  bundle: BundleRef,
  specDir: z.string().optional(),
  maxExecutions: z.number().int().positive().optional(),
  /** No firing at or after this instant (epoch ms). */
  endAt: z.number().optional(),
  /** Firings that launched a sweep. */
  executions: z.number().int().nonnegative(),
  /** Firings that were due while nothing could run them (local control plane down). */
  missed: z.number().int().nonnegative(),
  /** The next firing (epoch ms); absent once completed. */
  nextRunAt: z.number().optional(),
  lastFiredAt: z.number().optional(),
  lastSweepId: z.string().optional(),
  /** Why the schedule completed or why its last firing failed, in words. */
  reason: z.string().optional(),
  createdAt: z.number(),
  updatedAt: z.number(),
});
export type ScheduleRecord = z.infer<typeof ScheduleRecord>;

export const FiringStatus = z.enum(["launching", "launched", "failed", "missed", "skipped"]);
export type FiringStatus = z.infer<typeof FiringStatus>;

/** One firing: keyed by (scheduleId, firedAt = the scheduled time), written once with a conditional put. */
export const FiringRecord = z.object({
  scheduleId: z.string(),
  /** The scheduled time of the firing (epoch ms), not when it ran. */
  firedAt: z.number(),
  status: FiringStatus,
  sweepId: z.string().optional(),
  error: z.string().optional(),
  /** The W3C traceparent the firing's launch ran in; its sweep and the orchestrator's kick carry it too. */
  traceparent: z.string().optional(),
  /** When the firing was recorded. */
  recordedAt: z.number(),
  updatedAt: z.number(),
});
export type FiringRecord = z.infer<typeof FiringRecord>;

/** Bad schedule input: exit 2, names the flag. */
export class ScheduleError extends AbortError {}

/** Rejects unknown zones with the zone named, instead of a RangeError from deep inside Intl. */
export function checkTimezone(timezone: string): string {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: timezone });
  } catch {
    throw new ScheduleError(
      `--timezone ${JSON.stringify(timezone)} is not an IANA time zone`,
      "e.g. --timezone Europe/Paris, --timezone America/New_York, --timezone UTC",
    );
  }
  return timezone;
}

const CRON_FIELDS = ["minute", "hour", "day-of-month", "month", "day-of-week"] as const;

function cronFor(expression: string, timezone: string): Cron {
  const fields = expression.trim().split(/\s+/);
  if (fields.length !== CRON_FIELDS.length) {
    throw new ScheduleError(
      `--cron ${JSON.stringify(expression)}: expected 5 fields (${CRON_FIELDS.join(" ")}), got ${fields.length}`,
      'e.g. --cron "0 2 * * 1-5" (02:00 on weekdays)',
    );
  }
  try {
    // legacyMode: day-of-month and day-of-week OR together, as in Vixie cron.
    return new Cron(fields.join(" "), { timezone, paused: true, legacyMode: true });
  } catch (error) {
    throw new ScheduleError(
      `--cron ${JSON.stringify(expression)}: ${(error as Error).message.replace(/^CronPattern: /, "")}`,
      'e.g. --cron "0 2 * * 1-5" (02:00 on weekdays)',
    );
  }
}

/** Wall-clock ISO time without an offset is read in `timezone`; with Z or an offset it is absolute. */
export function parseInstant(text: string, timezone: string, flag = "--at"): number {
  try {
    return parseAt(text, timezone);
  } catch (error) {
    if (error instanceof ScheduleError && flag !== "--at")
      throw new ScheduleError(error.message.replace(/^--at/, flag), error.hint);
    throw error;
  }
}

function parseAt(text: string, timezone: string): number {
  const iso = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$/;
  if (!iso.test(text)) {
    throw new ScheduleError(
      `--at ${JSON.stringify(text)} is not an ISO-8601 date and time`,
      "e.g. --at 2026-12-01T09:00 (in --timezone) or --at 2026-12-01T08:00:00Z",
    );
  }
  if (/(Z|[+-]\d{2}:?\d{2})$/.test(text)) {
    const ms = Date.parse(text);
    if (Number.isNaN(ms)) throw new ScheduleError(`--at ${JSON.stringify(text)} is not a valid date`);
    return ms;
  }
  const [date, time] = text.split("T") as [string, string];
  const [y, mo, d] = date.split("-").map(Number) as [number, number, number];
  const [h, mi, s] = time.split(":").map(Number) as [number, number, number | undefined];
  const wall = Date.UTC(y, mo - 1, d, h, mi, Math.floor(s ?? 0));
  const check = new Date(wall);
  if (check.getUTCMonth() !== mo - 1 || check.getUTCDate() !== d || h > 23 || mi > 59) {
    throw new ScheduleError(`--at ${JSON.stringify(text)} is not a valid date`);
  }
  // The instant whose wall-clock time in `timezone` is `wall`: correct the guess by the zone's
  // offset twice (the second pass settles offsets that change between guess and answer).
  let guess = wall;
  for (let i = 0; i < 2; i++) guess = wall - offsetAt(guess, timezone);
  return guess;
}

/** The zone's UTC offset (ms) at an instant. */
function offsetAt(instant: number, timezone: string): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone: timezone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(instant));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  const asUtc = Date.UTC(
    get("year"),
    get("month") - 1,
    get("day"),
    get("hour"),
    get("minute"),
    get("second"),
  );
  return asUtc - Math.floor(instant / 1000) * 1000;
}

export interface TriggerInput {
  at?: string;
  cron?: string;
  rate?: string;
  timezone?: string;
}

/** Exactly one of --at, --cron, --rate; validated (bad cron, unknown zone, rate under a minute). */
export function parseTrigger(input: TriggerInput): ScheduleTrigger {
  const given = (["at", "cron", "rate"] as const).filter((k) => input[k] !== undefined);
  if (given.length !== 1) {
    throw new ScheduleError(
      given.length === 0
        ? "a schedule needs one of --at, --cron or --rate"
        : `give only one of --at, --cron or --rate (got ${given.map((k) => `--${k}`).join(", ")})`,
      'e.g. --cron "0 2 * * *" --timezone Europe/Paris, --rate 6h, --at 2026-12-01T09:00',
    );
  }
  const timezone = checkTimezone(input.timezone ?? "UTC");
  const kind = given[0]!;
  const expression = input[kind]!;
  if (kind === "cron") {
    cronFor(expression, timezone);
    return { kind, expression: expression.trim().split(/\s+/).join(" "), timezone };
  }
  if (kind === "at") return { kind, expression, timezone, at: parseAt(expression, timezone) };
  const periodMs = parseDuration(expression);
  if (periodMs === undefined || periodMs < 60_000 || periodMs % 60_000 !== 0) {
    throw new ScheduleError(
      `--rate ${JSON.stringify(expression)}: must be a whole number of minutes, at least 1m`,
      "e.g. --rate 30m, --rate 6h, --rate 1d",
    );
  }
  return { kind, expression, timezone, periodMs };
}

/**
 * The first firing strictly after `after`, or undefined when there is none (an `at` that has
 * passed, or one past `endAt`). Rate schedules run at createdAt + k·period.
 */
export function nextRunAfter(
  schedule: Pick<ScheduleRecord, "trigger" | "createdAt" | "endAt">,
  after: number,
): number | undefined {
  const { trigger } = schedule;
  let next: number | undefined;
  if (trigger.kind === "at") next = trigger.at !== undefined && trigger.at > after ? trigger.at : undefined;
  else if (trigger.kind === "rate") {
    const period = trigger.periodMs!;
    const k = Math.max(1, Math.floor((after - schedule.createdAt) / period) + 1);
    next = schedule.createdAt + k * period;
  } else {
    next = cronFor(trigger.expression, trigger.timezone).nextRun(new Date(after))?.getTime();
  }
  if (next === undefined) return undefined;
  if (schedule.endAt !== undefined && next >= schedule.endAt) return undefined;
  return next;
}

/** At most this many missed firings are recorded one by one; the rest are only counted. */
export const MISSED_RECORD_LIMIT = 100;
/** Past this many, missed firings are not counted one by one (a 1-minute cron down for months). */
const MISSED_COUNT_LIMIT = 100_000;

export interface DuePlan {
  /** Scheduled times to record as missed (oldest first, at most MISSED_RECORD_LIMIT). */
  missed: number[];
  /** How many firings were missed in all (capped at MISSED_COUNT_LIMIT). */
  missedCount: number;
  /** The scheduled time to fire now, if the latest due firing is within the grace period. */
  fire?: number;
  /** Where nextRunAt goes after this pass. */
  nextRunAt?: number;
}

/**
 * What a scheduler pass does with a schedule at `now`: a firing is run only within `graceMs`
 * of its time. Older due firings (the control plane was down) are reported as missed, never
 * run late.
 */
export function planDue(schedule: ScheduleRecord, now: number, graceMs: number): DuePlan {
  const plan: DuePlan = { missed: [], missedCount: 0 };
  let at = schedule.nextRunAt;
  while (at !== undefined && at <= now) {
    if (now - at <= graceMs) plan.fire = at;
    else if (plan.missedCount >= MISSED_COUNT_LIMIT) {
      at = nextRunAfter(schedule, now - graceMs - 1);
      continue;
    } else {
      plan.missedCount++;
      if (plan.missed.length < MISSED_RECORD_LIMIT) plan.missed.push(at);
    }
    at = nextRunAfter(schedule, at);
  }
  plan.nextRunAt = at;
  return plan;
}

/** Whether a schedule has fired its last: max executions reached or nothing left before its end. */
export function isExhausted(
  schedule: ScheduleRecord,
  executions: number,
  nextRunAt: number | undefined,
): boolean {
  if (schedule.maxExecutions !== undefined && executions >= schedule.maxExecutions) return true;
  return nextRunAt === undefined;
}

const AWS_DAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/**
 * The EventBridge Scheduler expression: `at(yyyy-mm-ddThh:mm:ss)` in the schedule's zone,
 * `cron(min hour dom month dow year)` with `?` where AWS needs it, `rate(N unit)`.
 */
export function toSchedulerExpression(trigger: ScheduleTrigger): string {
  if (trigger.kind === "at") {
    const local = new Date(trigger.at! + offsetAt(trigger.at!, trigger.timezone));
    return `at(${local.toISOString().slice(0, 19)})`;
  }
  if (trigger.kind === "rate") {
    const minutes = trigger.periodMs! / 60_000;
    if (minutes % 1440 === 0) return `rate(${minutes / 1440} ${minutes === 1440 ? "day" : "days"})`;
    if (minutes % 60 === 0) return `rate(${minutes / 60} ${minutes === 60 ? "hour" : "hours"})`;
    return `rate(${minutes} ${minutes === 1 ? "minute" : "minutes"})`;
  }
  const [minute, hour, dom, month, dow] = trigger.expression.split(" ") as [
    string,
    string,
    string,
    string,
    string,
  ];
  // AWS numbers days 1-7 from Sunday and forbids `*` in both day fields: one of them is `?`.
  const awsDow =
    dow === "*"
      ? "*"
      : [
          ...new Set(dow.split(",").map((part) => part.replace(/\d+/g, (n) => AWS_DAYS[Number(n) % 7]!))),
        ].join(",");
  if (dom !== "*" && awsDow !== "*") {
    throw new ScheduleError(
      `--cron ${JSON.stringify(trigger.expression)}: EventBridge Scheduler cannot combine a day of month and a day of week`,
      "use one of the two day fields and * in the other",
    );
  }
  return awsDow === "*"
    ? `cron(${minute} ${hour} ${dom} ${month} ? *)`
    : `cron(${minute} ${hour} ? ${month} ${awsDow} *)`;
}

/** A readable id: `sch-<slug>-<time><random>`. */
export function newScheduleId(name: string, now: number, random: () => number): string {
  return `sch-${readableId(name, "schedule", now, random)}`;
}
