/**
 * `spawn schedule`: create (validate the spec and the trigger, snapshot the workdir, store
 * the spec, arm the schedule), list, describe, pause, resume, delete, history.
 */
import { AbortError, NotFoundError } from "#core/errors.js";
import type { ScheduleDriver } from "#core/scheduler.js";
import {
  type FiringRecord,
  newScheduleId,
  nextRunAfter,
  parseInstant,
  parseTrigger,
  ScheduleError,
  type ScheduleRecord,
  type TriggerInput,
  toSchedulerExpression,
} from "#core/schedules.js";
import { encodeSpec } from "#providers/dynamodb/codec.js";
import { type CliContext, currentOwner } from "../context.js";
import { cliRandom, uploadWorkdir } from "./launch.js";
import { planSweep } from "./plan.js";

export interface CreateScheduleOptions extends TriggerInput {
  name?: string;
  maxExecutions?: number;
  endAfter?: string;
  set?: readonly string[];
}

/** Validates everything first: a bad spec, cron, zone or date creates nothing. */
/** aws schedules are armed in EventBridge Scheduler; a stack deployed before schedules existed has no group. */
function driverFor(ctx: CliContext): ScheduleDriver | undefined {
  if (ctx.provider === "aws" && !ctx.scheduleDriver) {
    throw new AbortError(
      "the deployed stack has no schedule group (it predates schedules)",
      "run `spawn deploy` to update it",
    );
  }
  return ctx.scheduleDriver;
}

export async function createSchedule(
  ctx: CliContext,
  specPath: string,
  options: CreateScheduleOptions,
): Promise<ScheduleRecord> {
  const driver = driverFor(ctx);
  const plan = await planSweep(specPath, { set: options.set ?? [] });
  const trigger = parseTrigger(options);
  if (ctx.provider === "aws") toSchedulerExpression(trigger);
  const now = ctx.clock.now();
  const endAt =
    options.endAfter === undefined
      ? undefined
      : parseInstant(options.endAfter, trigger.timezone, "--end-after");
  if (endAt !== undefined && endAt <= now) {
    throw new ScheduleError(`--end-after ${options.endAfter} is in the past`);
  }
  const name = options.name ?? plan.spec.name;
  const scheduleId = newScheduleId(name, now, cliRandom);
  const draft: ScheduleRecord = {
    scheduleId,
    name,
    owner: currentOwner(),
    provider: ctx.provider,
    trigger,
    state: "enabled",
    specKey: `schedules/${scheduleId}/spec.json`,
    bundle: { key: "", sha256: "", bytes: 0 },
    specDir: plan.specDir,
    executions: 0,
    missed: 0,
    createdAt: now,
    updatedAt: now,
    ...(options.maxExecutions !== undefined ? { maxExecutions: options.maxExecutions } : {}),
    ...(endAt !== undefined ? { endAt } : {}),
  };
  const nextRunAt = nextRunAfter(draft, now);
  if (nextRunAt === undefined) {
    throw new ScheduleError(
      trigger.kind === "at"
        ? `--at ${trigger.expression} is in the past`
        : "the schedule has no firing before --end-after",
    );
  }
  const bundle = await uploadWorkdir(ctx, plan.workdir);
  await ctx.objects.putBytes(draft.specKey, encodeSpec(plan.spec));
  const schedule: ScheduleRecord = { ...draft, bundle, nextRunAt };
  await ctx.schedules.createSchedule(schedule);
  if (driver) {
    try {
      await driver.put(schedule);
    } catch (error) {
      // Not armed means not created: take the record back so nothing half-exists.
      await ctx.schedules.deleteSchedule(scheduleId);
      throw error;
    }
  }
  return schedule;
}

export async function requireSchedule(ctx: CliContext, scheduleId: string): Promise<ScheduleRecord> {
  const schedule = await ctx.schedules.getSchedule(scheduleId);
  if (!schedule || schedule.owner !== currentOwner()) {
    throw new NotFoundError("schedule", scheduleId, "spawn schedule list shows yours");
  }
  return schedule;
}

export async function pauseSchedule(ctx: CliContext, scheduleId: string): Promise<ScheduleRecord> {
  const schedule = await requireSchedule(ctx, scheduleId);
  const driver = schedule.provider === "aws" ? driverFor(ctx) : undefined;
  if (schedule.state === "paused") return schedule;
  if (schedule.state === "completed") {
    throw new AbortError(`schedule ${scheduleId} has completed (${schedule.reason ?? "no firing left"})`);
  }
  const updated = await ctx.schedules.updateSchedule(
    scheduleId,
    { state: "enabled" },
    { state: "paused", updatedAt: ctx.clock.now() },
  );
  await driver?.put(updated);
  return updated;
}

/** Resuming never runs what was due while paused: the next firing is the first one after now. */
export async function resumeSchedule(ctx: CliContext, scheduleId: string): Promise<ScheduleRecord> {
  const schedule = await requireSchedule(ctx, scheduleId);
  const driver = schedule.provider === "aws" ? driverFor(ctx) : undefined;
  if (schedule.state === "enabled") return schedule;
  if (schedule.state === "completed") {
    throw new AbortError(`schedule ${scheduleId} has completed (${schedule.reason ?? "no firing left"})`);
  }
  const now = ctx.clock.now();
  const nextRunAt = nextRunAfter(schedule, now);
  if (nextRunAt === undefined) throw new AbortError(`schedule ${scheduleId} has no firing left to resume`);
  const updated = await ctx.schedules.updateSchedule(
    scheduleId,
    { state: "paused" },
    { state: "enabled", nextRunAt, updatedAt: now },
  );
  await driver?.put(updated);
  return updated;
}

export async function deleteSchedule(
  ctx: CliContext,
  scheduleId: string,
  driver?: ScheduleDriver,
): Promise<void> {
  const schedule = await requireSchedule(ctx, scheduleId);
  // Disarm first: a schedule that fires after its record is gone is recorded as unknown, never run.
  await driver?.remove(schedule);
  await ctx.schedules.deleteSchedule(scheduleId);
}

export async function scheduleHistory(
  ctx: CliContext,
  scheduleId: string,
  limit: number,
): Promise<{ schedule: ScheduleRecord; firings: FiringRecord[] }> {
  const schedule = await requireSchedule(ctx, scheduleId);
  return { schedule, firings: await ctx.schedules.listFirings(scheduleId, { limit }) };
}

export function scheduleJson(s: ScheduleRecord) {
  const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
  return {
    scheduleId: s.scheduleId,
    name: s.name,
    state: s.state,
    trigger: { kind: s.trigger.kind, expression: s.trigger.expression, timezone: s.trigger.timezone },
    nextRunAt: iso(s.nextRunAt),
    lastFiredAt: iso(s.lastFiredAt),
    lastSweepId: s.lastSweepId ?? null,
    executions: s.executions,
    maxExecutions: s.maxExecutions ?? null,
    endAt: iso(s.endAt),
    missed: s.missed,
    reason: s.reason ?? null,
    provider: s.provider,
    createdAt: iso(s.createdAt),
  };
}
