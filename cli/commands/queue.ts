/** `spawn queue launch|status|results|retry|cancel`: ordered jobs with dependencies on one instance. */
import { resolve } from "node:path";
import type { Command } from "commander";
import { formatDuration } from "#core/duration.js";
import { topologicalOrder } from "#core/queue.js";
import { cancelSweep, exitCodeFor, retrySweep } from "#core/sweeps.js";
import { checkProvider, openContext } from "../context.js";
import { onInterrupt, providerOption } from "../flags.js";
import { paint, printJson, table } from "../output.js";
import {
  downloadQueueResults,
  formatQueue,
  launchQueue,
  planQueueFile,
  queueJson,
  queueStatus,
  requireQueue,
} from "../services/queue.js";
import { checkSpecForProvider } from "../services/resilience.js";
import { watchSweep } from "../services/status.js";

export function registerQueue(program: Command): void {
  const queue = program
    .command("queue")
    .description("run jobs with dependencies in order on one instance, independent ones in parallel");

  queue
    .command("launch")
    .description("validate a queue file and run it")
    .argument("<queue>", "queue file (YAML or JSON); see docs/queues.md")
    .addOption(providerOption())
    .option("--dry-run", "validate and print the run order; create nothing")
    .option("--wait", "show progress until the queue ends; exit 0 only if every job succeeded")
    .option("--json", "machine-readable output")
    .action(async (path: string, opts) => {
      const provider = checkProvider(opts.provider);
      const plan = await planQueueFile(path);
      checkSpecForProvider(plan.spec, provider);
      if (opts.dryRun) {
        const order = topologicalOrder(plan.queue.jobs);
        const byId = new Map(plan.queue.jobs.map((j) => [j.id, j]));
        if (opts.json) {
          printJson({
            dryRun: true,
            name: plan.queue.name,
            jobs: plan.queue.jobs.length,
            slots: plan.queue.slots,
            onFailure: plan.queue.on_failure,
            workdir: plan.workdir,
            order,
          });
        } else {
          process.stdout.write(
            `${paint("bold", "dry run")}: nothing was created\n` +
              `queue      ${plan.queue.name}\n` +
              `jobs       ${plan.queue.jobs.length}, ${plan.queue.slots} at once, on_failure: ${plan.queue.on_failure}\n` +
              `workdir    ${plan.workdir}\n\n` +
              `${table(
                ["job", "depends on", "timeout", "attempts", "command"],
                order.map((id) => {
                  const job = byId.get(id)!;
                  return [
                    id,
                    job.depends_on.join(",") || "-",
                    job.timeout === undefined ? "-" : formatDuration(job.timeout),
                    String(job.retry.max_attempts),
                    job.command.length > 60 ? `${job.command.slice(0, 57)}...` : job.command,
                  ];
                }),
              )}\n`,
          );
        }
        return;
      }
      const ctx = await openContext(opts.provider);
      try {
        const created = await launchQueue(ctx, plan);
        if (!opts.wait) {
          if (opts.json)
            printJson({ queueId: created.sweepId, status: created.status, jobs: created.taskCount });
          else
            process.stdout.write(
              `launched ${paint("bold", created.sweepId)}: ${created.taskCount} jobs\n` +
                `  spawn queue status ${created.sweepId}\n  spawn queue results ${created.sweepId}\n`,
            );
          return;
        }
        if (!opts.json) process.stderr.write(`launched ${created.sweepId}: ${created.taskCount} jobs\n`);
        onInterrupt(`still running in the background: spawn queue status ${created.sweepId}`);
        await watchSweep(ctx.store, created.sweepId, { quiet: Boolean(opts.json) });
        const view = await queueStatus(ctx.store, created.sweepId);
        if (opts.json) printJson(queueJson(view));
        else process.stdout.write(`${formatQueue(view, ctx.clock.now())}\n`);
        process.exitCode = exitCodeFor(view.sweep.status);
      } finally {
        ctx.close();
      }
    });

  queue
    .command("status")
    .description("a queue's jobs, their order and state, and its dead-letter list")
    .argument("<queue-id>")
    .option("--watch", "refresh until the queue ends")
    .option("--json", "machine-readable output")
    .action(async (queueId: string, opts) => {
      const ctx = await openContext();
      try {
        await requireQueue(ctx.store, queueId);
        if (opts.watch) {
          onInterrupt("stopped watching; the queue goes on");
          await watchSweep(ctx.store, queueId, { quiet: Boolean(opts.json) });
        }
        const view = await queueStatus(ctx.store, queueId);
        if (opts.json) printJson(queueJson(view));
        else process.stdout.write(`${formatQueue(view, ctx.clock.now())}\n`);
      } finally {
        ctx.close();
      }
    });

  queue
    .command("results")
    .description("download the jobs' results (result_paths and SPAWN_OUTPUT_DIR), one directory per job")
    .argument("<queue-id>")
    .option("--job <id>", "one job")
    .option("--to <dir>", "destination directory (default: ./<queue-id>)")
    .option("--json", "machine-readable output")
    .action(async (queueId: string, opts) => {
      const ctx = await openContext();
      try {
        const to = resolve(opts.to ?? queueId);
        const files = await downloadQueueResults(ctx.store, ctx.objects, queueId, { to, job: opts.job });
        if (opts.json) printJson({ queueId, to, files });
        else process.stdout.write(`${files.length} file(s) downloaded to ${to}\n`);
      } finally {
        ctx.close();
      }
    });

  queue
    .command("retry")
    .description("re-run a finished queue's failed jobs and the jobs that depend on them")
    .argument("<queue-id>")
    .option(
      "--failed",
      "the failed jobs and what was not run because of them (the default, and the only mode)",
    )
    .option("--json", "machine-readable output")
    .action(async (queueId: string, opts) => {
      const ctx = await openContext();
      try {
        await requireQueue(ctx.store, queueId);
        const { reset } = await retrySweep(ctx, queueId, { failedOnly: true });
        const view = await queueStatus(ctx.store, queueId);
        const ids = reset.map((i) => view.jobs[i]?.id ?? String(i));
        if (opts.json) printJson({ queueId, reset: ids });
        else
          process.stdout.write(
            reset.length === 0
              ? "nothing to retry: no job failed\n"
              : `re-running ${ids.length} job(s): ${ids.join(", ")}\n`,
          );
      } finally {
        ctx.close();
      }
    });

  queue
    .command("cancel")
    .description("cancel a queue: no job starts, running jobs are stopped")
    .argument("<queue-id>")
    .option("--json", "machine-readable output")
    .action(async (queueId: string, opts) => {
      const ctx = await openContext();
      try {
        await requireQueue(ctx.store, queueId);
        const { changed, sweep } = await cancelSweep(ctx, queueId);
        if (opts.json) printJson({ queueId, changed, status: sweep.status });
        else
          process.stdout.write(
            changed ? `cancelled ${queueId}\n` : `${queueId} had already ${sweep.status}\n`,
          );
      } finally {
        ctx.close();
      }
    });
}
