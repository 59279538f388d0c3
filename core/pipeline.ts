/**
 * Pipelines (`stages:` in a spec): stages are sweeps or queues that depend on each other, either
 * whole-stage (B starts when A succeeded) or `n_to_n` between two sweeps of equal size (task i of
 * B starts when task i of A succeeded, as in AWS Batch). Each stage is created as its own sweep,
 * with its tasks waiting (core/dependencies.ts); the pipeline itself is a sweep record with no
 * tasks that lists its stages. Reconcile opens a stage's gate from its inputs' state, and ends
 * the pipeline when every stage has ended. Pure apart from the port calls; see docs/pipelines.md.
 */
import { z } from "zod";
import { ConditionFailedError } from "./errors.js";
import { spawnEvent } from "./events.js";
import {
  DependencyType,
  type StageInput,
  type StageOf,
  type SweepRecord,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
} from "./model.js";
import type { Clock, StateStore } from "./ports.js";
import { FileIssuesError, findCycle } from "./queue.js";
import type { ReconcileResult } from "./reconcile.js";
import { fileIssues, formatPath, type SpecIssue } from "./spec.js";

const StageName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$/, "1-32 letters, digits, _ -, starting with a letter or digit");

const StageDependency = z.union([
  StageName.transform((stage) => ({ stage, type: "whole" as const })),
  z.strictObject({
    stage: StageName,
    type: DependencyType.default("whole").describe(
      "whole: wait for the whole stage; n_to_n: task i waits for task i of a sweep of equal size",
    ),
  }),
]);

/** A sweep spec or queue: a path relative to the pipeline file, or written inline. */
const StageBody = z.union([z.string().min(1), z.record(z.string(), z.unknown())]);

export const PipelineStage = z
  .strictObject({
    name: StageName.describe("unique in the pipeline; later stages name it in depends_on"),
    sweep: StageBody.optional().describe("a sweep spec: a file path, or the spec inline"),
    queue: StageBody.optional().describe("a queue file: a file path, or the queue inline"),
    depends_on: z.array(StageDependency).default([]),
  })
  .superRefine((stage, ctx) => {
    if ((stage.sweep === undefined) === (stage.queue === undefined))
      ctx.addIssue({ code: "custom", message: "a stage has exactly one of sweep or queue" });
  });
export type PipelineStage = z.infer<typeof PipelineStage>;

export const PipelineSpec = z.strictObject({
  name: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
      "1-63 letters, digits, . _ -, starting with a letter or digit",
    ),
  stages: z.array(PipelineStage).min(1).max(50),
});
export type PipelineSpec = z.infer<typeof PipelineSpec>;

/** A pipeline file that failed validation (exit 2, nothing created). */
export class PipelineError extends FileIssuesError {
  override name = "PipelineError";
  constructor(issues: Array<SpecIssue & { line?: number }>, source?: string) {
    super("pipeline", issues, source, "see docs/pipelines.md");
  }
}

/**
 * Validates a raw pipeline: the schema, duplicate stage names, unknown or self dependencies, cycles
 * (named), and `n_to_n` only between sweeps. Sizes are checked once the stages are expanded
 * ({@link checkNToN}).
 */
export function parsePipeline(
  raw: unknown,
  options: { source?: string; lineOf?: (path: ReadonlyArray<string | number>) => number | undefined } = {},
): PipelineSpec {
  const at = (path: ReadonlyArray<string | number>, message: string) => ({
    path: formatPath(path),
    message,
    line: options.lineOf?.(path),
  });
  const result = PipelineSpec.safeParse(raw);
  if (!result.success)
    throw new PipelineError(fileIssues(result.error.issues, options.lineOf), options.source);
  const pipeline = result.data;
  const issues: Array<SpecIssue & { line?: number }> = [];
  const index = new Map<string, number>();
  pipeline.stages.forEach((stage, i) => {
    if (index.has(stage.name))
      issues.push(
        at(
          ["stages", i, "name"],
          `duplicate stage ${JSON.stringify(stage.name)} (also stages[${index.get(stage.name)}])`,
        ),
      );
    else index.set(stage.name, i);
  });
  pipeline.stages.forEach((stage, i) => {
    stage.depends_on.forEach((dep, d) => {
      const where = ["stages", i, "depends_on", d];
      const target = index.get(dep.stage);
      if (dep.stage === stage.name) issues.push(at(where, `stage ${stage.name} depends on itself`));
      else if (target === undefined) issues.push(at(where, `unknown stage ${JSON.stringify(dep.stage)}`));
      else if (
        dep.type === "n_to_n" &&
        (stage.sweep === undefined || pipeline.stages[target]!.sweep === undefined)
      )
        issues.push(
          at(where, "n_to_n links two sweeps (task i to task i); a queue stage can only be waited on whole"),
        );
    });
  });
  if (issues.length === 0) {
    const cycle = findCycle(
      pipeline.stages.map((s) => ({ id: s.name, depends_on: s.depends_on.map((d) => d.stage) })),
    );
    if (cycle)
      issues.push(
        at(["stages", index.get(cycle[0]!)!, "depends_on"], `dependency cycle: ${cycle.join(" → ")}`),
      );
  }
  if (issues.length > 0) throw new PipelineError(issues, options.source);
  return pipeline;
}

/** Once every stage is expanded: `n_to_n` needs sweeps of equal task count, and no gangs. */
export function checkNToN(
  pipeline: PipelineSpec,
  sizes: ReadonlyMap<string, { tasks: number; nodes: number }>,
  source?: string,
): void {
  const issues: SpecIssue[] = [];
  pipeline.stages.forEach((stage, i) => {
    stage.depends_on.forEach((dep, d) => {
      if (dep.type !== "n_to_n") return;
      const a = sizes.get(dep.stage)!;
      const b = sizes.get(stage.name)!;
      const path = `stages[${i}].depends_on[${d}]`;
      if (a.tasks !== b.tasks)
        issues.push({
          path,
          message: `n_to_n needs sweeps of equal size: ${dep.stage} has ${a.tasks} tasks, ${stage.name} has ${b.tasks}`,
        });
      else if (a.nodes > 1 || b.nodes > 1)
        issues.push({
          path,
          message: "n_to_n between multi-node sweeps (nodes > 1) is not supported; wait on the whole stage",
        });
    });
  });
  if (issues.length > 0) throw new PipelineError(issues, source);
}

/** Stage names in an order where every stage comes after the stages it depends on. */
export function stageOrder(pipeline: PipelineSpec): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  while (order.length < pipeline.stages.length) {
    for (const s of pipeline.stages) {
      if (!done.has(s.name) && s.depends_on.every((d) => done.has(d.stage))) {
        done.add(s.name);
        order.push(s.name);
      }
    }
  }
  return order;
}

/** How a waiting task of a stage stands against its stage's inputs. */
export type GateVerdict = "open" | "closed" | { cancel: string };

/**
 * The gate of a stage from its inputs' current state: `fail` when a whole-stage input failed or
 * was cancelled (the stage cannot run), else a verdict per task index. Pure.
 */
export function stageGate(
  inputs: readonly StageInput[],
  upstream: ReadonlyMap<string, { sweep: Pick<SweepRecord, "status">; tasks?: readonly TaskRecord[] }>,
): { fail?: string; verdict: (index: number) => GateVerdict } {
  let closed = false;
  for (const input of inputs) {
    const up = upstream.get(input.sweepId);
    if (!up) return { fail: `stage ${input.stage} (${input.sweepId}) is missing`, verdict: () => "closed" };
    if (input.type !== "whole") continue;
    if (up.sweep.status === "failed" || up.sweep.status === "cancelled")
      return { fail: `not run: stage ${input.stage} ${up.sweep.status}`, verdict: () => "closed" };
    if (up.sweep.status !== "succeeded") closed = true;
  }
  const pairs = inputs
    .filter((i) => i.type === "n_to_n")
    .map((i) => ({
      stage: i.stage,
      tasks: new Map((upstream.get(i.sweepId)!.tasks ?? []).map((t) => [t.index, t])),
    }));
  return {
    verdict: (index) => {
      let open = !closed;
      for (const pair of pairs) {
        const task = pair.tasks.get(index);
        if (task?.status === "failed" || task?.status === "cancelled")
          return { cancel: `not run: task ${index} of stage ${pair.stage} ${task.status}` };
        if (task?.status !== "succeeded") open = false;
      }
      return open ? "open" : "closed";
    },
  };
}

/** A pipeline's status from its stages': running until every stage has ended. */
export function pipelineOutcome(
  stages: ReadonlyArray<{ name: string; status: SweepRecord["status"] }>,
): { status: SweepRecord["status"]; reason: string } | undefined {
  if (stages.some((s) => s.status === "creating" || s.status === "running")) return undefined;
  const bad = stages.filter((s) => s.status !== "succeeded");
  if (bad.length === 0) return { status: "succeeded", reason: `${stages.length} stage(s) succeeded` };
  return {
    status: "failed",
    reason: `${stages.length - bad.length} of ${stages.length} stage(s) succeeded; ${bad.map((s) => `${s.name} ${s.status}`).join(", ")}`,
  };
}

/** Reads a stage's inputs (their sweeps, and the tasks of n_to_n ones) and returns its gate. */
export async function loadStageGate(
  store: StateStore,
  stage: StageOf,
): Promise<ReturnType<typeof stageGate>> {
  const upstream = new Map<string, { sweep: SweepRecord; tasks?: TaskRecord[] }>();
  for (const input of stage.inputs) {
    const sweep = await store.getSweep(input.sweepId);
    if (!sweep) continue;
    const tasks =
      input.type === "n_to_n" ? await store.listTasks(sweep.sweepId, sweep.shardCount) : undefined;
    upstream.set(input.sweepId, { sweep, ...(tasks ? { tasks } : {}) });
  }
  return stageGate(stage.inputs, upstream);
}

/**
 * Reconcile's pass over a pipeline's own record: a cancelled pipeline cancels its stages; a
 * running one ends once every stage has ended (succeeded only if all did); an ended one goes
 * inactive once its stages are. The stages themselves are reconciled as sweeps.
 */
export async function pipelinePass(
  deps: { store: StateStore; clock: Clock },
  pipeline: SweepRecord,
  result: ReconcileResult,
): Promise<ReconcileResult> {
  const { store, clock } = deps;
  const now = clock.now();
  const stages = (pipeline.pipeline ?? []).map((s) => s.sweepId);
  const records = (await Promise.all(stages.map((id) => store.getSweep(id)))).filter(
    (s): s is SweepRecord => s !== undefined,
  );
  const write = async (update: Parameters<StateStore["updateSweep"]>[2], expect: SweepRecord["status"]) => {
    try {
      return await store.updateSweep(pipeline.sweepId, { status: expect }, update);
    } catch (error) {
      if (error instanceof ConditionFailedError) return undefined;
      throw error;
    }
  };
  let status = pipeline.status;
  if (status === "cancelled") {
    for (const stage of records.filter((s) => !TERMINAL_SWEEP_STATUSES.includes(s.status))) {
      await store
        .updateSweep(
          stage.sweepId,
          { status: ["creating", "running"] },
          {
            status: "cancelled",
            cancelRequestedAt: now,
            finishedAt: now,
            reason: "pipeline cancelled",
            updatedAt: now,
          },
        )
        .catch((error) => {
          if (!(error instanceof ConditionFailedError)) throw error;
        });
    }
  } else if (status === "running") {
    const outcome = pipelineOutcome(
      (pipeline.pipeline ?? []).map((s) => ({
        name: s.name,
        status: records.find((r) => r.sweepId === s.sweepId)?.status ?? "failed",
      })),
    );
    if (outcome && (await write({ ...outcome, finishedAt: now, updatedAt: now }, "running"))) {
      status = result.finished = outcome.status;
      const succeeded = records.filter((r) => r.status === "succeeded").length;
      result.events.push(
        spawnEvent(
          pipeline.sweepId,
          now,
          outcome.status === "succeeded"
            ? { type: "SweepCompleted", name: pipeline.name, reason: outcome.reason, succeeded }
            : {
                type: "SweepFailed",
                name: pipeline.name,
                reason: outcome.reason,
                succeeded,
                failed: records.length - succeeded,
                failedTasks: [],
              },
        ),
      );
    }
  }
  result.status = status;
  if (TERMINAL_SWEEP_STATUSES.includes(status) && records.every((s) => !s.active)) {
    try {
      await store.updateSweep(pipeline.sweepId, { active: true }, { active: false, updatedAt: now });
      result.deactivated = true;
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
    }
  }
  return result;
}
