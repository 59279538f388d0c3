/**
 * Reading and changing schedules: describe, pause, resume, delete, history, and the record and
 * arming a new schedule ends with. Apart from create (cli/services/schedule.ts), so that what
 * needs neither a spec file nor a workdir (the AWS dashboard's Lambda) imports none of create's
 * planning and bundling.
 */
import { AbortError, NotFoundError } from "#core/errors.js";
import type { ScheduleDriver } from "#core/scheduler.js";
import { type FiringRecord, nextRunAfter, type ScheduleRecord } from "#core/schedules.js";
import { type CliContext, ownerOf } from "../context.js";

/** aws schedules are armed in EventBridge Scheduler; a stack deployed before schedules existed has no group. */
export function driverFor(ctx: CliContext): ScheduleDriver | undefined {
  if (ctx.provider === "aws" && !ctx.scheduleDriver) {
    throw new AbortError(
      "the deployed stack has no schedule group (it predates schedules)",
      "run `spawn deploy` to update it",
    );
  }
  return ctx.scheduleDriver;
}

/** Writes a new schedule's record, then arms it where a driver arms schedules (aws). */
export async function recordAndArm(
  ctx: CliContext,
  driver: ScheduleDriver | undefined,
  schedule: ScheduleRecord,
): Promise<void> {
  await ctx.schedules.createSchedule(schedule);
  if (!driver) return;
  try {
    await driver.put(schedule);
  } catch (error) {
    // Not armed means not created: take the record back so nothing half-exists.
    await ctx.schedules.deleteSchedule(schedule.scheduleId);
    throw error;
  }
}

export async function requireSchedule(ctx: CliContext, scheduleId: string): Promise<ScheduleRecord> {
  const schedule = await ctx.schedules.getSchedule(scheduleId);
  if (!schedule || schedule.owner !== ownerOf(ctx)) {
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
