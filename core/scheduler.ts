/**
 * Running schedules: the same code fires a schedule in the scheduler-handler Lambda (on an
 * EventBridge Scheduler invocation) and in the embedded control plane (on its timer).
 *
 * A firing is keyed by (scheduleId, scheduled time) and recorded with a conditional put
 * before anything is launched, so a duplicate delivery of the same firing launches nothing.
 * The sweep id is derived from the same key, so even a launcher retried after a crash
 * cannot create a second sweep for one firing.
 */
import { createHash } from "node:crypto";
import { ConditionFailedError } from "./errors.js";
import { readableId, type SweepRecord } from "./model.js";
import { expandParams } from "./params.js";
import type { Clock, ObjectStore, StateStore } from "./ports.js";
import {
  type FiringRecord,
  type FiringStatus,
  isExhausted,
  nextRunAfter,
  planDue,
  type ScheduleRecord,
  type ScheduleState,
} from "./schedules.js";
import { SweepSpec } from "./spec.js";
import { createSweep } from "./sweeps.js";

/** Fields an update may set; `null` removes the attribute (e.g. no next firing). */
export type ScheduleUpdate = {
  [K in keyof Omit<ScheduleRecord, "scheduleId" | "owner" | "provider" | "createdAt">]?:
    | ScheduleRecord[K]
    | null;
};

export interface ScheduleExpectation {
  state?: ScheduleState | readonly ScheduleState[];
  /** `null`: the schedule must have no nextRunAt. */
  nextRunAt?: number | null;
  executions?: number;
}

/** spawn-schedules and spawn-schedule-history; every write is one conditional single-item write. */
export interface ScheduleStore {
  /** ConditionFailedError if the id exists. */
  createSchedule(schedule: ScheduleRecord): Promise<void>;
  getSchedule(scheduleId: string): Promise<ScheduleRecord | undefined>;
  /** One owner's schedules, newest first (a query on the owner index, never a scan). */
  listSchedules(options: { owner: string }): Promise<ScheduleRecord[]>;
  /** Enabled schedules with nextRunAt <= `now`, through the sparse `due` index. */
  listDueSchedules(now: number): Promise<ScheduleRecord[]>;
  /** ConditionFailedError when `expect` does not hold (or the schedule is gone). */
  updateSchedule(
    scheduleId: string,
    expect: ScheduleExpectation,
    update: ScheduleUpdate,
  ): Promise<ScheduleRecord>;
  deleteSchedule(scheduleId: string): Promise<void>;
  /** Writes the firing if no record exists for (scheduleId, firedAt); false when one does. */
  recordFiring(firing: FiringRecord): Promise<boolean>;
  updateFiring(
    scheduleId: string,
    firedAt: number,
    update: { status: FiringStatus; sweepId?: string; error?: string; updatedAt: number },
  ): Promise<void>;
  /** Newest first. */
  listFirings(scheduleId: string, options?: { limit?: number }): Promise<FiringRecord[]>;
}

/** Creates the sweep of a firing (reads the stored spec, expands params, writes the sweep). */
export interface ScheduleLauncher {
  launch(schedule: ScheduleRecord, sweepId: string): Promise<void>;
}

/**
 * The launcher both providers use: the spec stored at creation (validated then, encoded as the
 * store encodes specs), the workdir bundle of that time, and the firing's sweep id. A sweep that
 * already exists under that id was launched by an earlier delivery: nothing more to do.
 */
export function storedSpecLauncher(deps: {
  store: StateStore;
  objects: ObjectStore;
  clock: Clock;
  /** Runs after the sweep is written (aws: wake the orchestrator). */
  afterCreate?: (sweep: SweepRecord) => Promise<void>;
}): ScheduleLauncher {
  return {
    async launch(schedule, sweepId) {
      const bytes = await deps.objects.getBytes(schedule.specKey);
      if (!bytes) throw new Error(`the schedule's spec ${schedule.specKey} is missing from the object store`);
      const spec = SweepSpec.parse(JSON.parse(new TextDecoder().decode(bytes)));
      let sweep: SweepRecord;
      try {
        sweep = await createSweep(
          { store: deps.store, clock: deps.clock },
          {
            sweepId,
            spec,
            tasks: expandParams(spec.params, spec.repeat),
            owner: schedule.owner,
            provider: schedule.provider,
            bundle: schedule.bundle,
            ...(schedule.specDir ? { specDir: schedule.specDir } : {}),
          },
        );
      } catch (error) {
        if (error instanceof ConditionFailedError && (await deps.store.getSweep(sweepId))) return;
        throw error;
      }
      await deps.afterCreate?.(sweep);
    },
  };
}

/** Where a schedule is armed: EventBridge Scheduler on aws; nothing locally (the timer reads the table). */
export interface ScheduleDriver {
  /** Creates or updates the armed schedule to match the record (state included). */
  put(schedule: ScheduleRecord): Promise<void>;
  /** Idempotent. */
  remove(schedule: ScheduleRecord): Promise<void>;
}

export interface SchedulerDeps {
  schedules: ScheduleStore;
  launcher: ScheduleLauncher;
  clock: Clock;
  /** Told when a schedule completes, so the armed copy goes away. */
  driver?: ScheduleDriver;
}

/** The sweep a firing creates: readable, and the same for every delivery of the firing. */
export function firingSweepId(
  schedule: Pick<ScheduleRecord, "scheduleId" | "name">,
  firedAt: number,
): string {
  const digest = createHash("sha256").update(`${schedule.scheduleId}#${firedAt}`).digest();
  let byte = 0;
  return readableId(schedule.name, "schedule", firedAt, () => digest[byte++ % digest.length]! / 256);
}

export type FireOutcome = "launched" | "failed" | "duplicate" | "skipped" | "unknown-schedule";

export interface FireResult {
  outcome: FireOutcome;
  sweepId?: string;
  error?: string;
}

/**
 * Fires one scheduled time: records it once, launches its sweep, and advances the schedule
 * (executions, next run, completion). A firing of a paused or exhausted schedule is recorded
 * as skipped with the reason and launches nothing.
 */
export async function fireSchedule(
  deps: SchedulerDeps,
  scheduleId: string,
  firedAt: number,
): Promise<FireResult> {
  const { schedules, clock } = deps;
  const schedule = await schedules.getSchedule(scheduleId);
  if (!schedule) return { outcome: "unknown-schedule" };
  const now = clock.now();
  const skipReason =
    schedule.state !== "enabled"
      ? `the schedule is ${schedule.state}`
      : schedule.maxExecutions !== undefined && schedule.executions >= schedule.maxExecutions
        ? `max executions (${schedule.maxExecutions}) reached`
        : schedule.endAt !== undefined && firedAt >= schedule.endAt
          ? "past the schedule's end date"
          : undefined;
  const recorded = await schedules.recordFiring({
    scheduleId,
    firedAt,
    status: skipReason ? "skipped" : "launching",
    ...(skipReason ? { error: skipReason } : {}),
    recordedAt: now,
    updatedAt: now,
  });
  if (!recorded) return { outcome: "duplicate" };
  if (skipReason) {
    if (schedule.state === "enabled") await complete(deps, schedule, skipReason);
    return { outcome: "skipped", error: skipReason };
  }

  const sweepId = firingSweepId(schedule, firedAt);
  let error: string | undefined;
  try {
    await deps.launcher.launch(schedule, sweepId);
  } catch (e) {
    error = e instanceof Error ? e.message : String(e);
  }
  await schedules.updateFiring(scheduleId, firedAt, {
    status: error ? "failed" : "launched",
    ...(error ? { error } : { sweepId }),
    updatedAt: clock.now(),
  });
  await advance(deps, scheduleId, firedAt, error ? undefined : sweepId, error);
  return error ? { outcome: "failed", error } : { outcome: "launched", sweepId };
}

/** Counts the execution and moves nextRunAt on; retried on a concurrent update (e.g. a pause). */
async function advance(
  deps: SchedulerDeps,
  scheduleId: string,
  firedAt: number,
  sweepId: string | undefined,
  error: string | undefined,
): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const schedule = await deps.schedules.getSchedule(scheduleId);
    if (!schedule) return;
    const executions = schedule.executions + (sweepId ? 1 : 0);
    // The embedded scheduler has already moved nextRunAt past this firing; EventBridge has not.
    const nextRunAt =
      schedule.nextRunAt !== undefined && schedule.nextRunAt > firedAt
        ? schedule.nextRunAt
        : nextRunAfter(schedule, firedAt);
    const exhausted = isExhausted(schedule, executions, nextRunAt);
    const now = deps.clock.now();
    try {
      const updated = await deps.schedules.updateSchedule(
        scheduleId,
        { executions: schedule.executions },
        {
          executions,
          lastFiredAt: firedAt,
          ...(sweepId ? { lastSweepId: sweepId } : {}),
          reason: error
            ? `last firing failed: ${error}`
            : exhausted
              ? completionReason(schedule, executions)
              : null,
          nextRunAt: exhausted || nextRunAt === undefined ? null : nextRunAt,
          ...(exhausted && schedule.state === "enabled" ? { state: "completed" as const } : {}),
          updatedAt: now,
        },
      );
      if (updated.state === "completed") await deps.driver?.remove(updated);
      return;
    } catch (e) {
      if (!(e instanceof ConditionFailedError)) throw e;
    }
  }
}

function completionReason(schedule: ScheduleRecord, executions: number): string {
  if (schedule.maxExecutions !== undefined && executions >= schedule.maxExecutions)
    return `max executions (${schedule.maxExecutions}) reached`;
  return schedule.trigger.kind === "at" ? "fired once" : "no firing left before the end date";
}

async function complete(deps: SchedulerDeps, schedule: ScheduleRecord, reason: string): Promise<void> {
  try {
    const updated = await deps.schedules.updateSchedule(
      schedule.scheduleId,
      { state: "enabled" },
      { state: "completed", nextRunAt: null, reason, updatedAt: deps.clock.now() },
    );
    await deps.driver?.remove(updated);
  } catch (e) {
    if (!(e instanceof ConditionFailedError)) throw e;
  }
}

export interface SchedulerPass {
  fired: FireResult[];
  /** Scheduled times recorded as missed, per schedule. */
  missed: Array<{ scheduleId: string; count: number }>;
}

/**
 * One pass of the embedded scheduler: every due schedule is claimed by moving its nextRunAt
 * with a condition on the value read (so two passes never fire the same time), firings older
 * than `graceMs` are recorded as missed, and the latest due firing within the grace runs.
 */
export async function runDueSchedules(deps: SchedulerDeps, graceMs: number): Promise<SchedulerPass> {
  const now = deps.clock.now();
  const pass: SchedulerPass = { fired: [], missed: [] };
  for (const schedule of await deps.schedules.listDueSchedules(now)) {
    const plan = planDue(schedule, now, graceMs);
    const done = plan.fire === undefined && plan.nextRunAt === undefined;
    try {
      await deps.schedules.updateSchedule(
        schedule.scheduleId,
        { state: "enabled", nextRunAt: schedule.nextRunAt ?? null },
        {
          nextRunAt: plan.nextRunAt ?? null,
          missed: schedule.missed + plan.missedCount,
          ...(done ? { state: "completed" as const, reason: "its last firing was missed" } : {}),
          updatedAt: now,
        },
      );
    } catch (e) {
      if (e instanceof ConditionFailedError) continue;
      throw e;
    }
    for (const firedAt of plan.missed) {
      await deps.schedules.recordFiring({
        scheduleId: schedule.scheduleId,
        firedAt,
        status: "missed",
        error: "the control plane was not running at this time; missed firings are not run late",
        recordedAt: now,
        updatedAt: now,
      });
    }
    if (plan.missedCount > 0) pass.missed.push({ scheduleId: schedule.scheduleId, count: plan.missedCount });
    if (plan.fire !== undefined) pass.fired.push(await fireSchedule(deps, schedule.scheduleId, plan.fire));
  }
  return pass;
}
