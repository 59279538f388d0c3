/**
 * Running schedules: the same code fires a schedule in the scheduler-handler Lambda (on an
 * EventBridge Scheduler invocation) and in the embedded control plane (on its timer).
 *
 * A firing is keyed by (scheduleId, scheduled time) and recorded with a conditional put
 * before anything is launched, so a duplicate delivery of the same firing launches nothing.
 * The sweep id is derived from the same key, so even a launcher retried after a crash
 * cannot create a second sweep for one firing.
 */
import { createHash, randomBytes } from "node:crypto";
import { z } from "zod";
import { ConditionFailedError } from "./errors.js";
import { parseGrant } from "./iam-policy.js";
import { readableId } from "./model.js";
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
import { createSweep, type LaunchHooks, launchPrepared } from "./sweeps.js";
import { ownerTeam } from "./teams.js";
import { formatTraceparent, newTraceContext, parseTraceparent } from "./traceparent.js";

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
  /** `traceparent`: the firing's trace, recorded on the sweep and sent with the orchestrator's kick. */
  launch(schedule: ScheduleRecord, sweepId: string, traceparent: string): Promise<void>;
}

/** The snapshot of a schedule's `policy-file:` grants: the parsed files by path as written. */
const PolicyFiles = z.record(z.string(), z.unknown());

async function readStoredJson(objects: ObjectStore, key: string, what: string): Promise<unknown> {
  const bytes = await objects.getBytes(key);
  if (!bytes) throw new Error(`the schedule's ${what} ${key} is missing from the object store`);
  return JSON.parse(new TextDecoder().decode(bytes));
}

/**
 * The launcher both providers use: the spec stored at creation (validated then, encoded as the
 * store encodes specs) with its policy files, the workdir bundle of that time, and the firing's
 * sweep id, through the same launch sequence as the CLI's (core/sweeps.ts launchPrepared: on aws
 * the sweep's role before its record, the orchestrator's kick after). A sweep that already exists
 * under that id was launched by an earlier delivery: nothing more to do.
 */
export function storedSpecLauncher(deps: {
  store: StateStore;
  objects: ObjectStore;
  clock: Clock;
  /** The provider's part (aws: the sweep's role, the orchestrator's kick); none on the embedded default. */
  hooks?: LaunchHooks;
}): ScheduleLauncher {
  return {
    async launch(schedule, sweepId, traceparent) {
      if (await deps.store.getSweep(sweepId)) return;
      const spec = SweepSpec.parse(await readStoredJson(deps.objects, schedule.specKey, "spec"));
      const policyFiles = schedule.policyFilesKey
        ? PolicyFiles.parse(await readStoredJson(deps.objects, schedule.policyFilesKey, "policy files"))
        : {};
      // A schedule stored before policy files were snapshotted with it has none to build the role from.
      const unread = spec.resources.iam
        .map(parseGrant)
        .flatMap((g) => (g.kind === "policy-file" && !(g.path in policyFiles) ? [g.path] : []));
      if (unread.length > 0) {
        throw new Error(
          `the schedule stores no copy of policy file(s) ${unread.join(", ")}: create it again with \`spawn schedule create\``,
        );
      }
      const team = ownerTeam(schedule.owner);
      await launchPrepared(deps.hooks ?? {}, {
        traceparent,
        prepare: [{ sweepId, spec, policyFiles, bundle: schedule.bundle }],
        write: async () => {
          try {
            return await createSweep(
              { store: deps.store, clock: deps.clock },
              {
                sweepId,
                spec,
                tasks: expandParams(spec.params, spec.repeat),
                owner: schedule.owner,
                provider: schedule.provider,
                bundle: schedule.bundle,
                traceparent,
                ...(schedule.specDir ? { specDir: schedule.specDir } : {}),
                // A team's schedule (made from the dashboard) launches into that team.
                ...(team ? { team } : {}),
              },
            );
          } catch (error) {
            // A concurrent delivery wrote it first: its role is the one just (re)put, keep it.
            if (error instanceof ConditionFailedError && (await deps.store.getSweep(sweepId)))
              return undefined;
            throw error;
          }
        },
      });
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
  /** Randomness for the firings' trace and span ids. @default node:crypto randomBytes */
  randomBytes?: (n: number) => Uint8Array;
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
 * as skipped with the reason and launches nothing. A launching firing starts a trace, a child of
 * `parentTraceparent` when the invocation carried a valid one, recorded on its history row, its
 * sweep and the orchestrator's kick.
 */
export async function fireSchedule(
  deps: SchedulerDeps,
  scheduleId: string,
  firedAt: number,
  parentTraceparent?: string,
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
  // W3C Trace Context: a malformed parent is not continued; the firing starts a trace of its own.
  const random = deps.randomBytes ?? ((n: number) => new Uint8Array(randomBytes(n)));
  const traceparent = formatTraceparent(newTraceContext(random, parseTraceparent(parentTraceparent)));
  const recorded = await schedules.recordFiring({
    scheduleId,
    firedAt,
    status: skipReason ? "skipped" : "launching",
    ...(skipReason ? { error: skipReason } : { traceparent }),
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
    await deps.launcher.launch(schedule, sweepId, traceparent);
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
