/** `spawn sweep launch <pipeline.yaml>`: a spec with `stages:` launches a pipeline (docs/pipelines.md). */
import { AbortError } from "#core/errors.js";
import type { ProviderName } from "#core/model.js";
import { exitCodeFor } from "#core/sweeps.js";
import { openContext } from "../context.js";
import { onInterrupt } from "../flags.js";
import { paint, printJson, table } from "../output.js";
import { launchPipeline, planPipeline } from "../services/pipeline.js";
import { checkSpecForProvider } from "../services/resilience.js";
import { formatStatus, statusJson, sweepStatus, watchSweep } from "../services/status.js";

export interface PipelineLaunchFlags {
  dryRun?: boolean;
  wait?: boolean;
  json?: boolean;
  /** `--team`, already validated: the pipeline's and every stage's. */
  team?: string;
  /** Flags that shape one sweep (`--set`, `--max-instances`, `--chaos`, `--resume-from`): refused here. */
  sweepOnly: string[];
}

export async function launchPipelineCommand(
  path: string,
  provider: ProviderName,
  opts: PipelineLaunchFlags,
): Promise<void> {
  if (opts.sweepOnly.length > 0)
    throw new AbortError(
      `${opts.sweepOnly.join(", ")} shape(s) one sweep; ${path} is a pipeline`,
      "set them in the stage's own spec instead",
    );
  const plan = await planPipeline(path);
  for (const stage of plan.stages) checkSpecForProvider((stage.sweep ?? stage.queue!).spec, provider);
  const rows = plan.stages.map((s) => ({
    stage: s.name,
    kind: s.sweep ? "sweep" : "queue",
    tasks: (s.sweep ?? s.queue!).tasks.length,
    after: s.inputs.map((i) => `${i.stage}${i.type === "n_to_n" ? " (n_to_n)" : ""}`),
  }));
  if (opts.dryRun) {
    if (opts.json) printJson({ dryRun: true, name: plan.pipeline.name, stages: rows });
    else
      process.stdout.write(
        `${paint("bold", "dry run")}: nothing was created\npipeline   ${plan.pipeline.name}, ${rows.length} stage(s)\n\n${table(
          ["stage", "kind", "tasks", "after"],
          rows.map((r) => [r.stage, r.kind, String(r.tasks), r.after.join(", ") || "-"]),
        )}\n`,
      );
    return;
  }
  const ctx = await openContext(provider);
  try {
    const created = await launchPipeline(ctx, plan, { team: opts.team });
    if (!opts.wait) {
      if (opts.json) printJson({ sweepId: created.sweepId, status: created.status, stages: rows.length });
      else
        process.stdout.write(
          `launched pipeline ${paint("bold", created.sweepId)}: ${rows.length} stage(s)\n  spawn sweep status ${created.sweepId} --watch\n`,
        );
      return;
    }
    if (!opts.json) process.stderr.write(`launched pipeline ${created.sweepId}: ${rows.length} stage(s)\n`);
    onInterrupt(`still running in the background: spawn sweep status ${created.sweepId}`);
    await watchSweep(ctx.store, created.sweepId, { quiet: true });
    const view = await sweepStatus(ctx.store, created.sweepId);
    if (opts.json) printJson(statusJson(view));
    else process.stdout.write(`${formatStatus(view, ctx.clock.now())}\n`);
    process.exitCode = exitCodeFor(view.sweep.status);
  } finally {
    ctx.close();
  }
}
