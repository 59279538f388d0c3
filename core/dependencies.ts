/**
 * Tasks that wait on other tasks (queue jobs' `depends_on`). A waiting task is `pending` with
 * `readyAt` at {@link WAITING}: it sits in the pending index, so agents and reconcile see open
 * work, but no claim (which asks for `readyAt <= now`) ever takes it. When every dependency has
 * succeeded it is *released* (readyAt = now); when one failed for good or was cancelled it is
 * *cancelled*, naming that dependency, and so are its own dependents in turn.
 *
 * Every change is a single-item conditional write on the state that was read, so the agent that
 * finished a dependency and reconcile (the level-triggered backstop) may both settle the same task:
 * whichever is second finds its condition false and does nothing.
 */
import { ConditionFailedError } from "./errors.js";
import type { SweepRecord, TaskRecord } from "./model.js";
import type { GateVerdict } from "./pipeline.js";
import type { StateStore } from "./ports.js";

/** `readyAt` of a task waiting on its dependencies: the largest value an index key can hold. */
export const WAITING = Number.MAX_SAFE_INTEGER;

export function isWaiting(task: Pick<TaskRecord, "status" | "readyAt">): boolean {
  return task.status === "pending" && task.readyAt === WAITING;
}

/** How a task is named in reasons: its job id in a queue, else `task <index>`. */
export function taskName(task: Pick<TaskRecord, "index" | "job">): string {
  return task.job ? task.job.id : `task ${task.index}`;
}

export type Settlement =
  | { index: number; attempt: number; action: "release" }
  | { index: number; attempt: number; action: "cancel"; reason: string };

/**
 * What to do with each waiting task among `candidates`, given `lookup` for their dependencies
 * (a dependency `lookup` cannot find is left alone: the caller did not load it) and, for a
 * pipeline's stage, the `gate` its inputs set (core/pipeline.ts). Pure.
 */
export function settleWaiting(
  candidates: Iterable<TaskRecord>,
  lookup: (index: number) => TaskRecord | undefined,
  gate: (index: number) => GateVerdict = () => "open",
): Settlement[] {
  const out: Settlement[] = [];
  for (const task of candidates) {
    if (!isWaiting(task)) continue;
    const verdict = gate(task.index);
    if (verdict === "closed") continue;
    if (verdict !== "open") {
      out.push({ index: task.index, attempt: task.attempt, action: "cancel", reason: verdict.cancel });
      continue;
    }
    const deps = (task.dependsOn ?? []).map(lookup);
    if (deps.some((d) => d === undefined)) continue;
    const blocker = deps.find((d) => d!.status === "failed" || d!.status === "cancelled");
    if (blocker) {
      const what = blocker.status === "failed" ? "failed" : "was cancelled";
      out.push({
        index: task.index,
        attempt: task.attempt,
        action: "cancel",
        reason: `not run: dependency ${taskName(blocker)} ${what}`,
      });
    } else if (deps.every((d) => d!.status === "succeeded")) {
      out.push({ index: task.index, attempt: task.attempt, action: "release" });
    }
  }
  return out;
}

/**
 * `on_failure: stop`: once any task has failed for good, every task not yet started (waiting,
 * ready, or pending a retry) is cancelled, naming the first failure. Running tasks finish. Pure.
 */
export function stopAfterFailure(tasks: readonly TaskRecord[]): Settlement[] {
  const failed = tasks.find((t) => t.status === "failed");
  if (!failed) return [];
  const reason = `not run: the queue stopped after ${taskName(failed)} failed (on_failure: stop)`;
  return tasks
    .filter((t) => t.status === "pending")
    .map((t) => ({ index: t.index, attempt: t.attempt, action: "cancel", reason }));
}

/** Writes one settlement; returns the task as written, or undefined when it had moved on meanwhile. */
async function apply(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  s: Settlement,
  now: number,
): Promise<TaskRecord | undefined> {
  try {
    return await store.updateTask(
      sweep.sweepId,
      s.index,
      sweep.shardCount,
      { status: "pending", attempt: s.attempt },
      s.action === "release"
        ? { readyAt: now, updatedAt: now }
        : { status: "cancelled", finishedAt: now, error: s.reason, updatedAt: now },
    );
  } catch (error) {
    if (error instanceof ConditionFailedError) return undefined;
    throw error;
  }
}

export interface SettleResult {
  released: number[];
  cancelled: number[];
}

/**
 * Reconcile's pass over a whole sweep's tasks: settles every waiting task (cancellations cascade
 * down the graph within the pass) behind the stage's `gate`, if any, and, with `stopOnFailure`,
 * cancels what has not started once a task failed. `tasks` is updated in place with what was written.
 */
export async function settleAll(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  tasks: TaskRecord[],
  options: { now: number; stopOnFailure: boolean; gate?: (index: number) => GateVerdict },
): Promise<SettleResult> {
  const result: SettleResult = { released: [], cancelled: [] };
  const byIndex = new Map(tasks.map((t, i) => [t.index, i]));
  const lookup = (index: number) => {
    const at = byIndex.get(index);
    return at === undefined ? undefined : tasks[at];
  };
  for (;;) {
    const settlements = options.stopOnFailure ? stopAfterFailure(tasks) : [];
    const stopping = new Set(settlements.map((s) => s.index));
    settlements.push(...settleWaiting(tasks, lookup, options.gate).filter((s) => !stopping.has(s.index)));
    if (settlements.length === 0) return result;
    let changed = false;
    for (const s of settlements) {
      const written = await apply(store, sweep, s, options.now);
      if (!written) continue;
      tasks[byIndex.get(s.index)!] = written;
      (s.action === "release" ? result.released : result.cancelled).push(s.index);
      // A release changes nothing another settlement depends on; a cancel may unblock a cascade.
      if (s.action === "cancel") changed = true;
    }
    if (!changed) return result;
  }
}

/**
 * The agent's step after it wrote `finished`'s result: settles the tasks that depend on it (reading
 * only them and their dependencies), following cancellations down the graph. Returns what it wrote.
 */
export async function settleDependents(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  finished: TaskRecord,
  now: number,
): Promise<SettleResult> {
  const result: SettleResult = { released: [], cancelled: [] };
  const known = new Map<number, TaskRecord>([[finished.index, finished]]);
  const load = async (index: number) => {
    if (!known.has(index)) {
      const task = await store.getTask(sweep.sweepId, index, sweep.shardCount);
      if (task) known.set(index, task);
    }
    return known.get(index);
  };
  let frontier = [finished];
  while (frontier.length > 0) {
    const next: TaskRecord[] = [];
    for (const done of frontier) {
      const dependents = (
        await Promise.all(
          (done.dependents ?? []).map((i) => store.getTask(sweep.sweepId, i, sweep.shardCount)),
        )
      ).filter((t): t is TaskRecord => t !== undefined && isWaiting(t));
      for (const d of dependents) {
        known.set(d.index, d);
        for (const dep of d.dependsOn ?? []) await load(dep);
      }
      for (const s of settleWaiting(dependents, (i) => known.get(i))) {
        const written = await apply(store, sweep, s, now);
        if (!written) continue;
        known.set(s.index, written);
        if (s.action === "release") result.released.push(s.index);
        else {
          result.cancelled.push(s.index);
          next.push(written);
        }
      }
    }
    frontier = next;
  }
  return result;
}
