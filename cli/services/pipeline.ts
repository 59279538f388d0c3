/**
 * Pipelines (`stages:` in a spec given to `spawn sweep launch`): every stage is planned exactly as
 * `sweep launch` or `queue launch` would plan it alone, the graph and n_to_n sizes are checked,
 * and only then is anything uploaded or written (core/sweeps.ts createPipeline, all or nothing).
 */
import { dirname, resolve } from "node:path";
import type { SweepRecord } from "#core/model.js";
import { checkNToN, type PipelineSpec, parsePipeline, stageOrder } from "#core/pipeline.js";
import { parseQueue } from "#core/queue.js";
import {
  type CreatePipelineInput,
  createPipeline,
  launchPrepared,
  newSweepId,
  type SweepPreparation,
} from "#core/sweeps.js";
import { type CliContext, currentOwner } from "../context.js";
import { readUserFile } from "../flags.js";
import { cliRandom, type LaunchOptions, launchTraceparent, uploadWorkdir } from "./launch.js";
import { planSweepSpec, type SweepPlan } from "./plan.js";
import { parseQueueText, parseYamlWithLines, planValidQueue, type QueueLaunchPlan } from "./queue.js";

export interface StagePlan {
  name: string;
  inputs: Array<{ stage: string; type: "whole" | "n_to_n" }>;
  sweep?: SweepPlan;
  queue?: QueueLaunchPlan;
}

export interface PipelinePlan {
  path: string;
  pipeline: PipelineSpec;
  /** In an order where every stage comes after its inputs. */
  stages: StagePlan[];
}

/** True when a parsed spec file is a pipeline (has `stages`) rather than one sweep. */
export function isPipeline(raw: unknown): boolean {
  return raw !== null && typeof raw === "object" && !Array.isArray(raw) && "stages" in raw;
}

/** Validates a pipeline file and every stage in it; throws (exit 2) naming the field and line. */
export async function planPipeline(path: string): Promise<PipelinePlan> {
  const absolute = resolve(path);
  const dir = dirname(absolute);
  const { value, lineOf } = parseYamlWithLines(await readUserFile(absolute, "spec file"), path);
  const pipeline = parsePipeline(value, { source: path, lineOf });
  const byName = new Map(pipeline.stages.map((s, i) => [s.name, { stage: s, i }]));
  const stages: StagePlan[] = [];
  for (const name of stageOrder(pipeline)) {
    const { stage, i } = byName.get(name)!;
    const inputs = stage.depends_on.map((d) => ({ stage: d.stage, type: d.type }));
    const body = stage.sweep ?? stage.queue!;
    const where = `${path} stages[${i}].${stage.sweep !== undefined ? "sweep" : "queue"}`;
    if (stage.sweep !== undefined) {
      const plan =
        typeof body === "string"
          ? await planSweepSpec(
              parseYamlWithLines(await readUserFile(resolve(dir, body), "spec file"), body).value,
              { specPath: resolve(dir, body), source: body },
            )
          : await planSweepSpec(
              { name: `${pipeline.name}-${name}`, ...body },
              { specPath: absolute, source: where },
            );
      stages.push({ name, inputs, sweep: plan });
    } else if (typeof body === "string") {
      const file = resolve(dir, body);
      stages.push({
        name,
        inputs,
        queue: await planValidQueue(
          parseQueueText(await readUserFile(file, "queue file"), body),
          dirname(file),
          body,
        ),
      });
    } else {
      const queue = parseQueue({ name: `${pipeline.name}-${name}`, ...body }, { source: where });
      stages.push({ name, inputs, queue: await planValidQueue(queue, dir, where) });
    }
  }
  checkNToN(
    pipeline,
    new Map(
      stages.map((s) => [
        s.name,
        { tasks: s.sweep?.tasks.length ?? s.queue!.tasks.length, nodes: s.sweep?.spec.nodes ?? 1 },
      ]),
    ),
    path,
  );
  return { path: absolute, pipeline, stages };
}

/**
 * Uploads every stage's workdir, prepares every stage (aws: its own role, which may read exactly
 * the stages it waits on), then writes the pipeline and its stages (all or nothing) and announces
 * them (core/sweeps.ts launchPrepared). The pipeline's own record runs no task: it gets no role.
 */
export async function launchPipeline(
  ctx: CliContext,
  plan: PipelinePlan,
  options: LaunchOptions = {},
): Promise<SweepRecord> {
  const now = ctx.clock.now();
  const traceparent = launchTraceparent();
  const stages: Array<CreatePipelineInput["stages"][number]> = [];
  const prepare: SweepPreparation[] = [];
  const ids = new Map<string, string>();
  for (const stage of plan.stages) {
    const source = stage.sweep ?? stage.queue!;
    const sweepId = newSweepId(source.spec.name, now, cliRandom);
    const bundle = await uploadWorkdir(ctx, source.workdir);
    ids.set(stage.name, sweepId);
    stages.push({
      name: stage.name,
      inputs: stage.inputs,
      sweepId,
      spec: source.spec,
      tasks: source.tasks,
      bundle,
      specDir: stage.sweep?.specDir ?? stage.queue!.queueDir,
      ...(stage.queue ? { queue: stage.queue.settings } : {}),
    });
    prepare.push({
      sweepId,
      spec: source.spec,
      policyFiles: source.policyFiles,
      bundle,
      // plan.stages comes in an order where every stage follows its inputs.
      upstreamSweepIds: stage.inputs.map((input) => ids.get(input.stage)!),
    });
  }
  return launchPrepared(ctx, {
    traceparent,
    prepare,
    write: () =>
      createPipeline(
        { store: ctx.store, clock: ctx.clock },
        {
          pipelineId: newSweepId(plan.pipeline.name, now, cliRandom),
          name: plan.pipeline.name,
          owner: currentOwner(),
          provider: ctx.provider,
          traceparent,
          ...(options.team ? { team: options.team } : {}),
          stages,
        },
      ),
  });
}
