/**
 * `spawn sweep trace`: the timelines every task attempt uploaded (agent/task-trace.ts), merged
 * into one Chrome / Perfetto trace with core/trace.ts: one process per instance, a track per
 * agent slot (the attempt's lifecycle) and per GPU (the executor's slices and counters).
 * Attempts from agents that uploaded no trace are drawn from the task records instead: a
 * lifecycle span of each task's last attempt, on a process of its own.
 */
import { parseTaskTrace, SLOT_TID_BASE, taskTracePrefix } from "#agent/task-trace.js";
import { AbortError, ExitCode } from "#core/errors.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import { requireSweep } from "#core/sweeps.js";
import { type ChromeTrace, mergeTaskTraces, type TaskTrace } from "#core/trace.js";

/** The process task-record spans are drawn on: where an attempt ran is not kept on the record. */
export const RECORDS_INSTANCE = "task records (no trace uploaded)";

export interface SweepTrace {
  trace: ChromeTrace;
  /** Attempts from uploaded traces, and tasks drawn from their records. */
  attempts: number;
  fromRecords: number;
  instances: number;
  /** Uploaded traces that could not be read, with why. */
  unreadable: string[];
}

export async function sweepTrace(
  store: StateStore,
  objects: ObjectStore,
  sweepId: string,
  now = Date.now(),
): Promise<SweepTrace> {
  const sweep = await requireSweep(store, sweepId);
  const traces: TaskTrace[] = [];
  const unreadable: string[] = [];
  for (const key of await objects.list(taskTracePrefix(sweepId))) {
    const bytes = await objects.getBytes(key);
    try {
      traces.push(parseTaskTrace(JSON.parse(Buffer.from(bytes ?? []).toString("utf8"))));
    } catch (error) {
      unreadable.push(`${key}: ${(error as Error).message.split("\n")[0]}`);
    }
  }
  const traced = new Set(traces.map((t) => `${t.taskIndex}#${t.attempt}`));
  const records = (await store.listTasks(sweepId, sweep.shardCount)).filter(
    (t) => t.startedAt !== undefined && t.attempt > 0 && !traced.has(`${t.index}#${t.attempt}`),
  );
  const fromRecords = records.map(
    (t): TaskTrace => ({
      instanceId: RECORDS_INSTANCE,
      taskIndex: t.index,
      attempt: t.attempt,
      trace: {
        traceEvents: [
          {
            ph: "X",
            name: `task ${t.index}`,
            pid: 1,
            // Lanes are assigned by the merge; one base track for all.
            tid: SLOT_TID_BASE,
            ts: Math.round((t.startedAt as number) * 1000),
            dur: Math.max(1, Math.round(((t.finishedAt ?? now) - (t.startedAt as number)) * 1000)),
            args: {
              status: t.status,
              ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
              ...(t.error ? { error: t.error } : {}),
            },
          },
        ],
      },
    }),
  );
  if (traces.length === 0 && fromRecords.length === 0) {
    throw new AbortError(
      `sweep ${sweepId} has nothing to trace yet: no task attempt has uploaded a trace or started`,
      `check \`spawn sweep status ${sweepId}\`; traces appear as attempts finish`,
      ExitCode.notFound,
    );
  }
  const all = [...traces, ...fromRecords];
  return {
    trace: mergeTaskTraces(sweepId, all),
    attempts: traces.length,
    fromRecords: fromRecords.length,
    instances: new Set(all.map((t) => t.instanceId)).size,
    unreadable,
  };
}
