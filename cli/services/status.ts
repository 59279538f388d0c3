/** `spawn sweep status`: one sweep's state, counts, instances; and the progress watcher behind --watch and --wait. */
import { formatDuration } from "#core/duration.js";
import {
  type InstanceRecord,
  type SweepRecord,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
} from "#core/model.js";
import type { StateStore } from "#core/ports.js";
import { countByStatus, requireSweep, type StatusCounts } from "#core/sweeps.js";
import { paint, paintStatus, progressBar } from "../output.js";

export interface SweepStatusView {
  sweep: SweepRecord;
  counts: StatusCounts;
  tasks: TaskRecord[];
  instances: InstanceRecord[];
}

export async function sweepStatus(store: StateStore, sweepId: string): Promise<SweepStatusView> {
  const sweep = await requireSweep(store, sweepId);
  const [tasks, instances] = await Promise.all([
    store.listTasks(sweepId, sweep.shardCount),
    store.listInstances(sweepId),
  ]);
  return { sweep, tasks, counts: countByStatus(tasks), instances };
}

export function statusJson(view: SweepStatusView) {
  const { sweep } = view;
  return {
    sweepId: sweep.sweepId,
    name: sweep.name,
    status: sweep.status,
    provider: sweep.provider,
    owner: sweep.owner,
    reason: sweep.reason ?? null,
    createdAt: new Date(sweep.createdAt).toISOString(),
    finishedAt: sweep.finishedAt ? new Date(sweep.finishedAt).toISOString() : null,
    taskCount: sweep.taskCount,
    counts: view.counts,
    instances: view.instances.map((i) => ({
      instanceId: i.instanceId,
      status: i.status,
      providerRef: i.providerRef ?? null,
      launchedAt: new Date(i.launchedAt).toISOString(),
      deadline: new Date(i.deadline).toISOString(),
      reason: i.reason ?? null,
    })),
  };
}

export function formatStatus(view: SweepStatusView, now: number): string {
  const { sweep, counts } = view;
  const live = view.instances.filter((i) => i.status !== "terminated").length;
  const age = formatDuration((sweep.finishedAt ?? now) - sweep.createdAt);
  const lines = [
    `${paint("bold", sweep.sweepId)}  ${paintStatus(sweep.status)}  ${sweep.name}  (${sweep.provider}, ${age})`,
    `tasks      ${progressBar(counts, sweep.taskCount)}  ${summary(counts)}`,
    `instances  ${live} live, ${view.instances.length} launched, max ${sweep.spec.max_instances}`,
  ];
  if (sweep.reason) lines.push(`reason     ${sweep.reason}`);
  const failed = view.tasks.filter((t) => t.status === "failed").slice(0, 5);
  for (const t of failed) lines.push(paint("red", `  task ${t.index} failed: ${t.error ?? "unknown"}`));
  return lines.join("\n");
}

export function summary(counts: StatusCounts): string {
  return (Object.entries(counts) as [string, number][])
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s}`)
    .join(", ");
}

export const isFinished = (sweep: SweepRecord) =>
  TERMINAL_SWEEP_STATUSES.includes(sweep.status) && !sweep.active;

/**
 * Polls until the sweep has ended. The sweep item is read every `intervalMs`; the task
 * counts (a read of every task) only every 2 s, or every 10 s for sweeps over 2,000 tasks,
 * and never when `quiet`, so watching a large sweep doesn't load the store it watches. On a
 * TTY one progress line is redrawn; elsewhere a line is printed when the counts change.
 */
export async function watchSweep(
  store: StateStore,
  sweepId: string,
  options: { intervalMs?: number; quiet?: boolean } = {},
): Promise<SweepStatusView> {
  const tty = Boolean(process.stderr.isTTY);
  let last = "";
  let countedAt = 0;
  for (;;) {
    const sweep = await requireSweep(store, sweepId);
    const ended = TERMINAL_SWEEP_STATUSES.includes(sweep.status);
    const every = sweep.taskCount > 2000 ? 10_000 : 2000;
    if (!options.quiet && (ended || Date.now() - countedAt >= every)) {
      countedAt = Date.now();
      const counts = countByStatus(await store.listTasks(sweepId, sweep.shardCount));
      const line = `${sweep.sweepId} ${sweep.status} ${progressBar(counts, sweep.taskCount)} ${summary(counts)}`;
      if (line !== last) {
        process.stderr.write(tty ? `\r\u001b[2K${line}` : `${line}\n`);
        last = line;
      }
    }
    if (ended) {
      if (!options.quiet && tty) process.stderr.write("\n");
      return sweepStatus(store, sweepId);
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
  }
}
