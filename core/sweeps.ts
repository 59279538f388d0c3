/**
 * Sweep lifecycle operations the CLI (and later the Lambdas) call: create, cancel,
 * retry, summarize. They talk to the world only through ports.
 */

import { WAITING } from "./dependencies.js";
import { AbortError, ConditionFailedError, ExitCode, NotFoundError } from "./errors.js";
import { expandGangs } from "./gang.js";
import {
  type BundleRef,
  PipelineStages,
  type ProviderName,
  readableId,
  type StageOf,
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
import type { QueueSettings } from "./queue.js";
import { SweepSpec } from "./spec.js";
import { DEFAULT_TEAM } from "./teams.js";

/** `lr-sweep` + time + randomness: sortable by creation, unique without coordination. */
export function newSweepId(name: string, now: number, random: () => number): string {
  return readableId(name, "sweep", now, random);
}

/** A task to create: its params, plus a queue job's definition and dependencies. */
export type NewTask = ExpandedTask &
  Partial<Pick<TaskRecord, "job" | "dependsOn" | "dependents">> & {
    /** Waits on `dependsOn` (created with readyAt = WAITING) rather than being ready at once. */
    waiting?: boolean;
  };

export interface CreateSweepInput {
  sweepId: string;
  spec: SweepSpec;
  tasks: readonly NewTask[];
  /** A queue's settings (`spawn queue launch`); its jobs come as `tasks`. */
  queue?: QueueSettings;
  /** A pipeline stage's place; with inputs, every task starts waiting on them. */
  stage?: StageOf;
  owner: string;
  provider: ProviderName;
  bundle?: BundleRef;
  specDir?: string;
  /** The launch's W3C traceparent, recorded on the sweep for its agents. */
  traceparent?: string;
  /** The AWS dashboard team that sees the sweep (core/teams.ts); absent means `default`. */
  team?: string;
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
  // A gang task is N member rows (core/gang.ts); everything below counts rows.
  const tasks = expandGangs(input.tasks, input.spec.nodes);
  const shardCount = shardCountFor(tasks.length);
  const sweep: SweepRecord = {
    sweepId: input.sweepId,
    name: input.spec.name,
    owner: input.owner,
    provider: input.provider,
    status: "creating",
    active: true,
    spec: input.spec,
    taskCount: tasks.length,
    shardCount,
    launchSeq: 0,
    createdAt: now,
    updatedAt: now,
    ...(input.bundle ? { bundle: input.bundle } : {}),
    ...(input.specDir ? { specDir: input.specDir } : {}),
    ...(input.queue ? { queue: input.queue } : {}),
    ...(input.stage ? { stage: input.stage } : {}),
    ...(input.traceparent ? { traceparent: input.traceparent } : {}),
    // Written even when it is the default: the team is the key of the sweeps' by-team index.
    team: input.team ?? DEFAULT_TEAM,
  };
  const gated = (input.stage?.inputs.length ?? 0) > 0;
  await store.createSweep(sweep);
  try {
    const records: TaskRecord[] = tasks.map((t) => ({
      sweepId: sweep.sweepId,
      index: t.index,
      shard: shardOf(t.index, shardCount),
      taskId: t.taskId,
      params: t.params,
      status: "pending",
      attempt: 0,
      failures: 0,
      lost: 0,
      readyAt: t.waiting || gated ? WAITING : now,
      updatedAt: now,
      ...(t.job ? { job: t.job } : {}),
      ...(t.dependsOn?.length ? { dependsOn: t.dependsOn } : {}),
      ...(t.dependents?.length ? { dependents: t.dependents } : {}),
      ...(t.gang ? { gang: t.gang } : {}),
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

/**
 * One sweep a launch is about to create, as its provider sees it before the record exists
 * (aws: the sweep's own instance role, ADR 0036 and 0040).
 */
export interface SweepPreparation {
  sweepId: string;
  spec: SweepSpec;
  /** Parsed `policy-file:` grants of `spec.resources.iam`, keyed by the path as written. */
  policyFiles: Readonly<Record<string, unknown>>;
  bundle: BundleRef;
  /** A pipeline stage's inputs: the sweep ids of the stages whose outputs it reads. */
  upstreamSweepIds?: readonly string[];
}

/** A provider's part in every launch; each is optional (the embedded control plane needs none). */
export interface LaunchHooks {
  /** Before the sweep's record (aws: its role). When it throws, no sweep is created. */
  prepareSweep?(sweep: SweepPreparation): Promise<void>;
  /** Takes back what prepareSweep made for a sweep whose record was never written. Idempotent. */
  discardSweep?(sweepId: string): Promise<void>;
  /** Tells the control plane a sweep was created (aws: the orchestrator's kick), in the launch's trace. */
  sweepCreated?(sweepId: string, traceparent?: string): Promise<void>;
}

/**
 * The one launch sequence of every path (`sweep launch`, queues, pipelines, schedule firings):
 * the provider prepares each sweep that will run tasks, `write` creates the records, then the
 * control plane is told of each prepared sweep and of the record `write` returns when that is
 * another one (a pipeline's own). A failure before the records exist takes back what was
 * prepared. `write` answers undefined when an earlier delivery already created the sweep: then
 * nothing is taken back or told.
 */
export async function launchPrepared<T extends SweepRecord | undefined>(
  hooks: LaunchHooks,
  launch: { traceparent: string; prepare: readonly SweepPreparation[]; write: () => Promise<T> },
): Promise<T> {
  const prepared: string[] = [];
  let created: T;
  try {
    for (const sweep of launch.prepare) {
      await hooks.prepareSweep?.(sweep);
      prepared.push(sweep.sweepId);
    }
    created = await launch.write();
  } catch (error) {
    for (const sweepId of prepared) await hooks.discardSweep?.(sweepId).catch(() => undefined);
    throw error;
  }
  if (created) {
    const told = new Set([...prepared, created.sweepId]);
    for (const sweepId of told) await hooks.sweepCreated?.(sweepId, launch.traceparent);
  }
  return created;
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
 * Re-runs a finished sweep's failed tasks (and, unless `failedOnly`, its cancelled ones). In a
 * queue, the cancelled jobs (not run because a job failed) always go with them, and a job whose
 * dependencies are not all succeeded waits on them again.
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
  if (sweep.pipeline) return retryPipeline(deps, sweep, options);
  // A queue's or stage's cancelled tasks never ran because something failed: they go with the failed.
  const dependent = sweep.queue !== undefined || sweep.stage !== undefined;
  const wanted: TaskStatus[] = options.failedOnly && !dependent ? ["failed"] : ["failed", "cancelled"];
  const gated = (sweep.stage?.inputs.length ?? 0) > 0;
  const all = await store.listTasks(sweepId, sweep.shardCount);
  const tasks = all.filter((t) => wanted.includes(t.status));
  if (tasks.length === 0) return { reset: [] };
  const now = clock.now();
  const succeeded = new Set(all.filter((t) => t.status === "succeeded").map((t) => t.index));
  const reset: number[] = [];
  for (const task of tasks) {
    // A stage's tasks wait for its gate again (reconcile opens it if the inputs succeeded).
    const waiting = gated || (task.dependsOn ?? []).some((d) => !succeeded.has(d));
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
          readyAt: waiting ? WAITING : now,
          finishedAt: null,
          exitCode: null,
          signal: null,
          error: null,
          logTail: null,
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

/**
 * Re-runs a finished pipeline's stages that did not succeed, upstream first (so no stage is reopened
 * while a stage it waits on still reads as failed), then reopens the pipeline. Returns the stage
 * tasks reset, in stage order.
 */
async function retryPipeline(
  deps: { store: StateStore; clock: Clock },
  pipeline: SweepRecord,
  options: { failedOnly: boolean },
): Promise<{ reset: number[] }> {
  const stages = pipeline.pipeline ?? [];
  const done = new Set<string>();
  const order: typeof stages = [];
  while (order.length < stages.length) {
    const next = stages.filter((s) => !done.has(s.name) && s.inputs.every((i) => done.has(i.stage)));
    if (next.length === 0) break;
    for (const s of next) {
      done.add(s.name);
      order.push(s);
    }
  }
  const reset: number[] = [];
  for (const stage of order) {
    const record = await requireSweep(deps.store, stage.sweepId);
    if (record.status === "succeeded") continue;
    reset.push(...(await retrySweep(deps, stage.sweepId, options)).reset);
  }
  const now = deps.clock.now();
  await deps.store.updateSweep(
    pipeline.sweepId,
    { status: pipeline.status, active: false },
    { status: "running", active: true, finishedAt: null, reason: "retrying failed stages", updatedAt: now },
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

export interface CreatePipelineInput {
  pipelineId: string;
  name: string;
  owner: string;
  provider: ProviderName;
  /** Recorded on the pipeline and on every stage: one launch, one trace. */
  traceparent?: string;
  /** The team of the pipeline and of every stage. */
  team?: string;
  /** In an order where every stage comes after its inputs (core/pipeline.ts stageOrder). */
  stages: ReadonlyArray<
    Omit<CreateSweepInput, "owner" | "provider" | "stage" | "traceparent" | "team"> & {
      name: string;
      inputs: ReadonlyArray<{ stage: string; type: "whole" | "n_to_n" }>;
    }
  >;
}

/**
 * Writes a pipeline: its own record (no tasks) as `creating`, then every stage as a sweep whose
 * tasks wait on its inputs, then flips the pipeline to `running`. A failure deletes what was
 * written, so a pipeline is created whole or not at all.
 */
export async function createPipeline(
  deps: { store: StateStore; clock: Clock },
  input: CreatePipelineInput,
): Promise<SweepRecord> {
  const { store, clock } = deps;
  const now = clock.now();
  const ids = new Map(input.stages.map((s) => [s.name, s.sweepId]));
  const stages = PipelineStages.parse(
    input.stages.map((s) => ({
      name: s.name,
      sweepId: s.sweepId,
      kind: s.queue ? "queue" : "sweep",
      inputs: s.inputs,
    })),
  );
  await store.createSweep({
    sweepId: input.pipelineId,
    name: input.name,
    owner: input.owner,
    provider: input.provider,
    status: "creating",
    active: true,
    spec: SweepSpec.parse({ name: input.name, command: PIPELINE_COMMAND }),
    taskCount: 0,
    shardCount: 1,
    launchSeq: 0,
    createdAt: now,
    updatedAt: now,
    pipeline: stages,
    ...(input.traceparent ? { traceparent: input.traceparent } : {}),
    team: input.team ?? DEFAULT_TEAM,
  });
  const created: SweepRecord[] = [];
  try {
    for (const stage of input.stages) {
      const { name, inputs, ...sweep } = stage;
      created.push(
        await createSweep(deps, {
          ...sweep,
          owner: input.owner,
          provider: input.provider,
          ...(input.traceparent ? { traceparent: input.traceparent } : {}),
          ...(input.team ? { team: input.team } : {}),
          stage: {
            pipelineId: input.pipelineId,
            name,
            inputs: inputs.map((i) => ({ ...i, sweepId: ids.get(i.stage)! })),
          },
        }),
      );
    }
    return await store.updateSweep(
      input.pipelineId,
      { status: "creating" },
      { status: "running", updatedAt: clock.now() },
    );
  } catch (error) {
    for (const sweep of created)
      await store.deleteSweep(sweep.sweepId, sweep.shardCount).catch(() => undefined);
    await store.deleteSweep(input.pipelineId, 1).catch(() => undefined);
    throw error;
  }
}

/** Command of a pipeline's own spec; never run (its stages are sweeps of their own). */
export const PIPELINE_COMMAND = "# spawn pipeline: every stage runs as its own sweep";
