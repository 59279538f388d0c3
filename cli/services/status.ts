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

/** One stage of a pipeline, as `sweep status <pipeline>` shows its graph. */
export interface StageView {
  name: string;
  sweepId: string;
  kind: "sweep" | "queue";
  status: SweepRecord["status"];
  taskCount: number;
  counts: StatusCounts;
  inputs: Array<{ stage: string; type: "whole" | "n_to_n" }>;
}

export interface SweepStatusView {
  sweep: SweepRecord;
  counts: StatusCounts;
  tasks: TaskRecord[];
  instances: InstanceRecord[];
  /** A pipeline's stages, in file order. */
  stages?: StageView[];
}

export async function sweepStatus(store: StateStore, sweepId: string): Promise<SweepStatusView> {
  const sweep = await requireSweep(store, sweepId);
  const [tasks, instances] = await Promise.all([
    store.listTasks(sweepId, sweep.shardCount),
    store.listInstances(sweepId),
  ]);
  const view: SweepStatusView = { sweep, tasks, counts: countByStatus(tasks), instances };
  if (sweep.pipeline) {
    view.stages = await Promise.all(
      sweep.pipeline.map(async (s) => {
        const stage = await store.getSweep(s.sweepId);
        const counts = countByStatus(stage ? await store.listTasks(s.sweepId, stage.shardCount) : []);
        return { ...s, status: stage?.status ?? "failed", taskCount: stage?.taskCount ?? 0, counts };
      }),
    );
  }
  return view;
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
    ...(sweep.stage ? { stage: sweep.stage } : {}),
    ...(view.stages ? { stages: view.stages } : {}),
    instances: view.instances.map((i) => ({
      instanceId: i.instanceId,
      status: i.status,
      providerRef: i.providerRef ?? null,
      launchedAt: new Date(i.launchedAt).toISOString(),
      deadline: new Date(i.deadline).toISOString(),
      reason: i.reason ?? null,
      dns: i.dns ?? null,
    })),
  };
}

/** `failedTasks: false` leaves out the first failed tasks' errors (a queue lists its dead letters instead). */
export function formatStatus(
  view: SweepStatusView,
  now: number,
  options: { failedTasks?: boolean } = {},
): string {
  const { sweep, counts } = view;
  const live = view.instances.filter((i) => i.status !== "terminated").length;
  const age = formatDuration((sweep.finishedAt ?? now) - sweep.createdAt);
  const lines = [
    `${paint("bold", sweep.sweepId)}  ${paintStatus(sweep.status)}  ${sweep.name}  (${sweep.provider}, ${age})`,
  ];
  if (view.stages) lines.push(...formatStages(view.stages));
  else
    lines.push(
      `tasks      ${progressBar(counts, sweep.taskCount)}  ${summary(counts)}`,
      `instances  ${live} live, ${view.instances.length} launched, max ${sweep.spec.max_instances}`,
    );
  if (sweep.spec.nodes > 1) lines.push(...formatGangs(view.tasks));
  if (sweep.stage) {
    const after = sweep.stage.inputs.map((i) => `${i.stage}${i.type === "n_to_n" ? " (n_to_n)" : ""}`);
    lines.push(
      `stage      ${sweep.stage.name} of pipeline ${sweep.stage.pipelineId}${after.length ? `, after ${after.join(", ")}` : ""}`,
    );
  }
  if (sweep.reason) lines.push(`reason     ${sweep.reason}`);
  const failed =
    options.failedTasks === false ? [] : view.tasks.filter((t) => t.status === "failed").slice(0, 5);
  for (const t of failed) lines.push(paint("red", `  task ${t.index} failed: ${t.error ?? "unknown"}`));
  // A hostname that could not be registered is never swallowed (docs/dns.md); tasks ran regardless.
  for (const i of view.instances.filter((x) => x.dns?.status === "failed").slice(0, 5))
    lines.push(
      paint("yellow", `  ${i.instanceId}: no hostname ${i.dns!.host}: ${i.dns!.error ?? "unknown"}`),
    );
  return lines.join("\n");
}

/** Running gangs listed by `sweep status`; the rest are counted. */
const GANG_LINES = 10;

/**
 * A gang sweep's running gangs, one line each: the epoch (restarts so far) and which ranks are
 * up, counted as the rendezvous counts them: holding their row, with their peer written.
 */
function formatGangs(tasks: readonly TaskRecord[]): string[] {
  const gangs = new Map<number, Array<TaskRecord & { gang: NonNullable<TaskRecord["gang"]> }>>();
  for (const t of tasks)
    if (t.gang) gangs.set(t.gang.task, [...(gangs.get(t.gang.task) ?? []), { ...t, gang: t.gang }]);
  const lines: string[] = [];
  for (const [task, rows] of [...gangs].sort(([a], [b]) => a - b)) {
    const epoch = Math.max(...rows.map((r) => r.gang.epoch));
    const current = rows.filter((r) => r.gang.epoch === epoch);
    if (!current.some((r) => r.status === "running")) continue;
    const size = current[0]?.gang.size ?? 0;
    const up = new Set(
      current
        .filter((r) => r.status === "running" && r.peer !== undefined && r.peer.instanceId === r.leaseOwner)
        .map((r) => r.gang.rank),
    );
    const waiting = Array.from({ length: size }, (_, rank) => rank).filter((rank) => !up.has(rank));
    lines.push(
      `  gang ${task}  epoch ${epoch}  ranks up ${[...up].sort((a, b) => a - b).join(", ") || "none"} of ${size}${waiting.length ? `; waiting for ${waiting.join(", ")}` : ""}`,
    );
  }
  if (lines.length > GANG_LINES)
    lines.splice(GANG_LINES, lines.length, `  … and ${lines.length - GANG_LINES} more running gangs`);
  return lines.length > 0 ? ["gangs", ...lines] : [];
}

/** The stage graph: one line per stage, with what it waits on. */
function formatStages(stages: readonly StageView[]): string[] {
  const width = Math.max(...stages.map((s) => s.name.length));
  return [
    "stages",
    ...stages.map((s) => {
      const after = s.inputs.map((i) => `${i.stage}${i.type === "n_to_n" ? " (n_to_n)" : ""}`);
      return `  ${s.name.padEnd(width)}  ${paintStatus(s.status).padEnd(9)}  ${progressBar(s.counts, s.taskCount, 20)}  ${s.kind} ${s.sweepId}${after.length ? `  ← ${after.join(", ")}` : ""}`;
    }),
  ];
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
