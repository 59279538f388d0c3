/**
 * Sweep lifecycle operations the CLI (and later the Lambdas) call: create, cancel,
 * retry, summarize. They talk to the world only through ports.
 */
import { AbortError, ConditionFailedError, ExitCode, NotFoundError } from "./errors.js";
import {
  type BundleRef,
  type ProviderName,
  readableId,
  type SweepRecord,
  type SweepStatus,
  shardCountFor,
  shardOf,
  type TaskRecord,
  type TaskStatus,
  TERMINAL_SWEEP_STATUSES,
} from "./model.js";
import type { ExpandedTask } from "./params.js";
import type { Clock, StateStore } from "./ports.js";
import type { SweepSpec } from "./spec.js";

/** `lr-sweep` + time + randomness: sortable by creation, unique without coordination. */
export function newSweepId(name: string, now: number, random: () => number): string {
  return readableId(name, "sweep", now, random);
}

export interface CreateSweepInput {
  sweepId: string;
  spec: SweepSpec;
  tasks: readonly ExpandedTask[];
  owner: string;
  provider: ProviderName;
  bundle?: BundleRef;
  specDir?: string;
}

/**
 * Writes the sweep as `creating`, then its tasks, then flips it to `running`, at which
 * point reconcile picks it up. If any write fails, the partial sweep is deleted: a
 * failed launch leaves nothing behind.
 */
export async function createSweep(
  deps: { store: StateStore; clock: Clock },
  input: CreateSweepInput,
): Promise<SweepRecord> {
  const { store, clock } = deps;
  const now = clock.now();
  const shardCount = shardCountFor(input.tasks.length);
  const sweep: SweepRecord = {
    sweepId: input.sweepId,
    name: input.spec.name,
    owner: input.owner,
    provider: input.provider,
    status: "creating",
    active: true,
    spec: input.spec,
    taskCount: input.tasks.length,
    shardCount,
    launchSeq: 0,
    createdAt: now,
    updatedAt: now,
    ...(input.bundle ? { bundle: input.bundle } : {}),
    ...(input.specDir ? { specDir: input.specDir } : {}),
  };
  await store.createSweep(sweep);
  try {
    const records: TaskRecord[] = input.tasks.map((t) => ({
      sweepId: sweep.sweepId,
      index: t.index,
      shard: shardOf(t.index, shardCount),
      taskId: t.taskId,
      params: t.params,
      status: "pending",
      attempt: 0,
      failures: 0,
      lost: 0,
      readyAt: now,
      updatedAt: now,
    }));
    await store.putTasks(records);
    return await store.updateSweep(
      sweep.sweepId,
      { status: "creating" },
      { status: "running", updatedAt: clock.now() },
    );
  } catch (error) {
    await store.deleteSweep(sweep.sweepId, shardCount).catch(() => undefined);
    throw error;
  }
}

/** Loads a sweep or throws NotFoundError (exit 3). */
export async function requireSweep(store: StateStore, sweepId: string): Promise<SweepRecord> {
  const sweep = await store.getSweep(sweepId);
  if (!sweep) throw new NotFoundError("sweep", sweepId, "run `spawn sweep list` to see your sweeps");
  return sweep;
}

/** Throws NotFoundError (exit 3) unless `index` is one of the sweep's tasks. */
export function requireTaskIndex(sweep: Pick<SweepRecord, "sweepId" | "taskCount">, index: number): void {
  if (index < 0 || index >= sweep.taskCount) {
    throw new NotFoundError(
      "task",
      String(index),
      `sweep ${sweep.sweepId} has tasks 0..${sweep.taskCount - 1}`,
    );
  }
}

/**
 * Cancels a sweep. It sticks: the status becomes `cancelled` with a conditional write,
 * and every other writer (reconcile, agents) only ever moves a sweep out of `running`.
 * Returns false when the sweep had already ended.
 */
export async function cancelSweep(
  deps: { store: StateStore; clock: Clock },
  sweepId: string,
): Promise<{ changed: boolean; sweep: SweepRecord }> {
  const sweep = await requireSweep(deps.store, sweepId);
  if (TERMINAL_SWEEP_STATUSES.includes(sweep.status)) return { changed: false, sweep };
  const now = deps.clock.now();
  try {
    const updated = await deps.store.updateSweep(
      sweepId,
      { status: ["creating", "running"] },
      {
        status: "cancelled",
        cancelRequestedAt: now,
        finishedAt: now,
        reason: "cancelled by user",
        updatedAt: now,
      },
    );
    return { changed: true, sweep: updated };
  } catch (error) {
    if (error instanceof ConditionFailedError)
      return { changed: false, sweep: await requireSweep(deps.store, sweepId) };
    throw error;
  }
}

/**
 * Re-runs a finished sweep's failed tasks (and, unless `failedOnly`, its cancelled ones).
 * Tasks are reset while the sweep is inactive, then the sweep is reopened, so reconcile
 * never sees a reopened sweep with nothing to do. A cancelled sweep is never restarted.
 */
export async function retrySweep(
  deps: { store: StateStore; clock: Clock },
  sweepId: string,
  options: { failedOnly: boolean },
): Promise<{ reset: number[] }> {
  const { store, clock } = deps;
  const sweep = await requireSweep(store, sweepId);
  if (sweep.status === "cancelled") {
    throw new AbortError(
      `sweep ${sweepId} was cancelled; a cancelled sweep is never restarted`,
      "launch the spec again to run it anew",
    );
  }
  if (sweep.status !== "failed" && sweep.status !== "succeeded") {
    throw new AbortError(
      `sweep ${sweepId} is still ${sweep.status}; retry it once it has finished`,
      "spawn sweep status --watch",
    );
  }
  if (sweep.active) {
    throw new AbortError(`sweep ${sweepId} is still shutting down its instances; try again in a few seconds`);
  }
  const wanted: TaskStatus[] = options.failedOnly ? ["failed"] : ["failed", "cancelled"];
  const tasks = (await store.listTasks(sweepId, sweep.shardCount)).filter((t) => wanted.includes(t.status));
  if (tasks.length === 0) return { reset: [] };
  const now = clock.now();
  const reset: number[] = [];
  for (const task of tasks) {
    try {
      await store.updateTask(
        sweepId,
        task.index,
        sweep.shardCount,
        { status: task.status, attempt: task.attempt },
        {
          status: "pending",
          failures: 0,
          lost: 0,
          readyAt: now,
          finishedAt: null,
          exitCode: null,
          signal: null,
          error: null,
          updatedAt: now,
        },
      );
      reset.push(task.index);
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
    }
  }
  await store.updateSweep(
    sweepId,
    { status: sweep.status, active: false },
    {
      status: "running",
      active: true,
      finishedAt: null,
      reason: `retrying ${reset.length} tasks`,
      updatedAt: now,
    },
  );
  return { reset };
}

/** Task counts by status. */
export type StatusCounts = Record<TaskStatus, number>;

export function countByStatus(tasks: readonly Pick<TaskRecord, "status">[]): StatusCounts {
  const counts: StatusCounts = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (const t of tasks) counts[t.status]++;
  return counts;
}

/** The CLI's exit code for a finished sweep: 0 only when every task succeeded. */
export function exitCodeFor(status: SweepStatus): number {
  return status === "succeeded" ? ExitCode.ok : ExitCode.workFailed;
}
