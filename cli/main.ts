/**
 * `spawn`: thin commands (flags, help, output) over services. Exit codes: 0 ok, 1 the
 * work failed, 2 bad usage or input, 3 not found, 130 interrupted.
 */
import { resolve } from "node:path";
import { Command, CommanderError, Option } from "commander";
import { AbortError, ExitCode } from "#core/errors.js";
import { specJsonSchema } from "#core/spec.js";
import { cancelSweep, exitCodeFor, retrySweep } from "#core/sweeps.js";
import { teamName } from "#core/teams.js";
import { findLocalControlPlane, stopLocalControlPlane } from "#providers/local/control-plane.js";
import { localPaths } from "#providers/local/paths.js";
import { registerAlerts } from "./commands/alerts.js";
import { registerAmi } from "./commands/ami.js";
import { registerCost } from "./commands/cost.js";
import { registerDashboard } from "./commands/dashboard.js";
import { registerDeploy } from "./commands/deploy.js";
import { registerDoctor } from "./commands/doctor.js";
import { registerGpus } from "./commands/gpus.js";
import { registerInstances } from "./commands/instances.js";
import { launchPipelineCommand } from "./commands/pipeline.js";
import { registerQueue } from "./commands/queue.js";
import { registerSchedule } from "./commands/schedule.js";
import { registerSlurm } from "./commands/slurm.js";
import { registerTemplates } from "./commands/templates.js";
import { registerTrace } from "./commands/trace.js";
import { checkProvider, currentOwner, openContext } from "./context.js";
import { collect, intArg, onInterrupt, providerOption } from "./flags.js";
import { paint, paintStatus, printJson, table } from "./output.js";
import { downloadOutputs } from "./services/download.js";
import { launchSweep } from "./services/launch.js";
import { showLogs } from "./services/logs.js";
import { isPipeline } from "./services/pipeline.js";
import { formatEstimate, planSweep, readSpecFile } from "./services/plan.js";
import { chaosOverrides, checkSpecForProvider, pinResumeFrom } from "./services/resilience.js";
import {
  formatResults,
  parseBest,
  RESULTS_FORMATS,
  type ResultsFormat,
  resultRows,
} from "./services/results.js";
import { specMarkdown } from "./services/spec-doc.js";
import { formatStatus, statusJson, summary, sweepStatus, watchSweep } from "./services/status.js";

const program = new Command("spawn")
  .description(
    "GPU parameter sweeps and job arrays on EC2 spot from one YAML file; embedded on this machine by default.",
  )
  .version("0.1.0")
  .option("--debug", "print stack traces for internal errors")
  .showHelpAfterError("(run with --help for usage)")
  .exitOverride();

const sweep = program.command("sweep").description("launch and inspect parameter sweeps");

sweep
  .command("launch")
  .description("expand a spec into tasks and run them")
  .argument("<spec>", "sweep spec (YAML or JSON)")
  .addOption(providerOption())
  .option("--set <key=value>", "override a spec field before validation (repeatable)", collect, [])
  .option("--max-instances <n>", "override max_instances", intArg("--max-instances", 1))
  .option("--dry-run", "validate and print the plan; create nothing")
  .option("--wait", "show progress until the sweep ends; exit 0 only if every task succeeded")
  .option("--json", "machine-readable output")
  .option(
    "--chaos <faults>",
    "inject real faults (embedded default): preempt=<0..1>,kill=<0..1>; see docs/agent.md",
  )
  .option("--resume-from <sweep/task[/checkpoint]>", "start every task from a checkpoint of an earlier sweep")
  .option("--team <team>", "the dashboard team (aws) that sees the sweep (default: default)")
  .action(async (specPath: string, opts) => {
    const provider = checkProvider(opts.provider);
    // Checked before anything is read or created: a bad name exits 2 with nothing made.
    const team = opts.team === undefined ? undefined : teamName(opts.team, "--team");
    if (isPipeline(await readSpecFile(specPath))) {
      const sweepOnly = [
        ...(opts.set.length ? ["--set"] : []),
        ...(opts.maxInstances !== undefined ? ["--max-instances"] : []),
        ...(opts.chaos ? ["--chaos"] : []),
        ...(opts.resumeFrom ? ["--resume-from"] : []),
      ];
      return launchPipelineCommand(specPath, provider, { ...opts, team, sweepOnly });
    }
    const set = [
      ...opts.set,
      ...(opts.chaos ? chaosOverrides(opts.chaos) : []),
      ...(opts.resumeFrom ? [`resume_from=${opts.resumeFrom}`] : []),
    ];
    const plan = await planSweep(specPath, { set, maxInstances: opts.maxInstances });
    checkSpecForProvider(plan.spec, provider);
    if (opts.dryRun) {
      const preview = plan.tasks.slice(0, 10);
      if (opts.json) {
        printJson({
          dryRun: true,
          name: plan.spec.name,
          tasks: plan.tasks.length,
          instances: plan.instances,
          slotsPerInstance: plan.slots,
          workdir: plan.workdir,
          spec: plan.spec,
          preview: preview.map((t) => ({ index: t.index, taskId: t.taskId, params: t.params })),
          estimate: { ...plan.estimate, provider: "aws", runsOn: provider },
        });
      } else {
        process.stdout.write(
          `${paint("bold", "dry run")}: nothing was created\n` +
            `sweep      ${plan.spec.name}\n` +
            `tasks      ${plan.tasks.length}\n` +
            `instances  up to ${plan.instances} (max_instances ${plan.spec.max_instances}, ${plan.slots} slot(s) each)\n` +
            `workdir    ${plan.workdir}\n` +
            `command    ${plan.spec.command}\n\n` +
            `${table(
              ["task", "id", "params"],
              preview.map((t) => [String(t.index), t.taskId, JSON.stringify(t.params)]),
            )}\n${plan.tasks.length > preview.length ? `… and ${plan.tasks.length - preview.length} more\n` : ""}` +
            `\n${formatEstimate(plan.estimate, provider)}\n`,
        );
      }
      return;
    }
    const ctx = await openContext(opts.provider);
    try {
      if (plan.spec.resume_from)
        plan.spec.resume_from = await pinResumeFrom(ctx.store, ctx.objects, plan.spec.resume_from);
      const created = await launchSweep(ctx, plan, { team });
      if (!opts.wait) {
        if (opts.json)
          printJson({ sweepId: created.sweepId, status: created.status, tasks: created.taskCount });
        else {
          process.stdout.write(`launched ${paint("bold", created.sweepId)}: ${created.taskCount} tasks\n`);
          process.stdout.write(
            `  spawn sweep status ${created.sweepId} --watch\n  spawn sweep results ${created.sweepId}\n`,
          );
        }
        return;
      }
      if (!opts.json) process.stderr.write(`launched ${created.sweepId}: ${created.taskCount} tasks\n`);
      onInterrupt(`still running in the background: spawn sweep status ${created.sweepId}`);
      const view = await watchSweep(ctx.store, created.sweepId, { quiet: Boolean(opts.json) });
      if (opts.json) printJson(statusJson(view));
      else process.stdout.write(`${formatStatus(view, ctx.clock.now())}\n`);
      process.exitCode = exitCodeFor(view.sweep.status);
    } finally {
      ctx.close();
    }
  });

sweep
  .command("status")
  .description("a sweep's state, task counts and instances")
  .argument("<sweep-id>")
  .option("--watch", "refresh until the sweep ends")
  .option("--json", "machine-readable output")
  .action(async (sweepId: string, opts) => {
    const ctx = await openContext();
    try {
      if (opts.watch) {
        onInterrupt("stopped watching; the sweep goes on");
        await watchSweep(ctx.store, sweepId, { quiet: Boolean(opts.json) });
      }
      const view = await sweepStatus(ctx.store, sweepId);
      if (opts.json) printJson(statusJson(view));
      else process.stdout.write(`${formatStatus(view, ctx.clock.now())}\n`);
    } finally {
      ctx.close();
    }
  });

sweep
  .command("list")
  .description("your sweeps, newest first")
  .option("--limit <n>", "at most this many", intArg("--limit", 1), 20)
  .option("--json", "machine-readable output")
  .action(async (opts) => {
    const ctx = await openContext();
    try {
      const sweeps = await ctx.store.listSweeps({ owner: currentOwner(), limit: opts.limit });
      if (opts.json) {
        printJson(
          sweeps.map((s) => ({
            sweepId: s.sweepId,
            name: s.name,
            status: s.status,
            tasks: s.taskCount,
            createdAt: new Date(s.createdAt).toISOString(),
            reason: s.reason ?? null,
          })),
        );
      } else if (sweeps.length === 0)
        process.stdout.write("no sweeps yet: spawn sweep launch templates/quickstart.yaml\n");
      else {
        process.stdout.write(
          `${table(
            ["sweep", "name", "status", "tasks", "created", "reason"],
            sweeps.map((s) => [
              s.sweepId,
              s.name,
              paintStatus(s.status),
              String(s.taskCount),
              new Date(s.createdAt).toISOString().replace("T", " ").slice(0, 19),
              s.reason ?? "",
            ]),
          )}\n`,
        );
      }
    } finally {
      ctx.close();
    }
  });

sweep
  .command("logs")
  .description("task output (stdout and stderr, combined)")
  .argument("<sweep-id>")
  .option("--task <n>", "one task", intArg("--task"))
  .option("--attempt <n>", "one attempt of --task (default: the latest)", intArg("--attempt", 1))
  .option("--setup", "the setup phase's logs, per instance")
  .option("-f, --follow", "keep printing new output until the sweep ends")
  .action(async (sweepId: string, opts) => {
    const ctx = await openContext();
    try {
      if (opts.follow) onInterrupt("");
      await showLogs(ctx.store, ctx.objects, sweepId, opts);
    } finally {
      ctx.close();
    }
  });

sweep
  .command("results")
  .description("every task's params, status, exit code and final metrics")
  .argument("<sweep-id>")
  .addOption(new Option("--format <format>", "output format").choices(RESULTS_FORMATS).default("table"))
  .option("--best <metric[:min|max]>", "sort by a metric, best first (default order: min)")
  .option("--json", "same as --format json")
  .action(async (sweepId: string, opts) => {
    const best = opts.best ? parseBest(opts.best) : undefined;
    const format: ResultsFormat = opts.json ? "json" : opts.format;
    const ctx = await openContext();
    try {
      const view = await sweepStatus(ctx.store, sweepId);
      const rows = resultRows(view.tasks, best);
      process.stdout.write(`${formatResults(rows, format)}\n`);
      if (format === "table")
        process.stderr.write(`${view.sweep.sweepId}: ${view.sweep.status}; ${summary(view.counts)}\n`);
    } finally {
      ctx.close();
    }
  });

sweep
  .command("cancel")
  .description("cancel a sweep: pending tasks never start, running ones get SIGTERM; it is never restarted")
  .argument("<sweep-id>")
  .option("--json", "machine-readable output")
  .action(async (sweepId: string, opts) => {
    const ctx = await openContext();
    try {
      const { changed, sweep: s } = await cancelSweep(ctx, sweepId);
      if (opts.json) printJson({ sweepId, status: s.status, changed });
      else if (changed) process.stdout.write(`cancelled ${sweepId}; running tasks are being stopped\n`);
      else process.stdout.write(`${sweepId} had already ended: ${s.status}\n`);
    } finally {
      ctx.close();
    }
  });

sweep
  .command("retry")
  .description("run a finished sweep's failed (and cancelled) tasks again")
  .argument("<sweep-id>")
  .option("--failed", "only failed tasks, not cancelled ones")
  .option("--json", "machine-readable output")
  .action(async (sweepId: string, opts) => {
    const ctx = await openContext();
    try {
      const { reset } = await retrySweep(ctx, sweepId, { failedOnly: Boolean(opts.failed) });
      if (opts.json) printJson({ sweepId, retried: reset });
      else if (reset.length === 0) process.stdout.write(`nothing to retry in ${sweepId}\n`);
      else
        process.stdout.write(
          `retrying ${reset.length} task(s) of ${sweepId}: spawn sweep status ${sweepId} --watch\n`,
        );
    } finally {
      ctx.close();
    }
  });

sweep
  .command("download")
  .description("download the files tasks kept (SPAWN_OUTPUT_DIR and `outputs` globs)")
  .argument("<sweep-id>")
  .option("--task <n>", "one task", intArg("--task"))
  .option("--to <dir>", "destination directory (default: ./<sweep-id>)")
  .option("--json", "machine-readable output")
  .action(async (sweepId: string, opts) => {
    const ctx = await openContext();
    try {
      const to = resolve(opts.to ?? sweepId);
      const files = await downloadOutputs(ctx.store, ctx.objects, sweepId, { task: opts.task, to });
      if (opts.json) printJson({ sweepId, to, files });
      else process.stdout.write(`${files.length} file(s) downloaded to ${to}\n`);
    } finally {
      ctx.close();
    }
  });

program
  .command("schema")
  .description("print the sweep spec's JSON Schema (for editors)")
  .option("--markdown", "print the spec reference (docs/spec.md) instead")
  .action((opts) => {
    if (opts.markdown) process.stdout.write(specMarkdown());
    else printJson(specJsonSchema());
  });

const local = program.command("local").description("the embedded control plane on this machine");

local
  .command("status")
  .description("whether it runs, where, and what it is doing")
  .option("--json", "machine-readable output")
  .action(async (opts) => {
    const paths = localPaths();
    const info = await findLocalControlPlane(paths);
    if (!info) {
      if (opts.json) printJson({ running: false, home: paths.home });
      else process.stdout.write(`not running (state in ${paths.home}); any spawn command starts it\n`);
      return;
    }
    const ctx = await openContext();
    try {
      const active = await ctx.store.listActiveSweeps();
      const instances = (await Promise.all(active.map((s) => ctx.store.listInstances(s.sweepId))))
        .flat()
        .filter((i) => i.status !== "terminated");
      if (opts.json) {
        printJson({
          running: true,
          pid: info.pid,
          endpoint: info.endpoint,
          home: paths.home,
          startedAt: new Date(info.startedAt).toISOString(),
          activeSweeps: active.map((s) => s.sweepId),
          liveInstances: instances.map((i) => i.instanceId),
        });
      } else {
        process.stdout.write(
          `running   pid ${info.pid}, store ${info.endpoint}\nhome      ${paths.home}\n` +
            `sweeps    ${active.length} active${active.length ? `: ${active.map((s) => s.sweepId).join(", ")}` : ""}\n` +
            `agents    ${instances.length} live\n`,
        );
      }
    } finally {
      ctx.close();
    }
  });

local
  .command("stop")
  .description("stop it (agents of running sweeps stop once they lose contact)")
  .action(async () => {
    const stopped = await stopLocalControlPlane(localPaths());
    process.stdout.write(stopped ? "stopped\n" : "not running\n");
  });

// Command groups that live in cli/commands/<group>.ts register here, one call each.
registerTrace(program);
registerAlerts(program);
registerDeploy(program);
registerDoctor(program);
registerInstances(program);
registerAmi(program);
registerDashboard(program);
registerSchedule(program);
registerSlurm(program);
registerTemplates(program);
registerGpus(program);
registerCost(program);
registerQueue(program);

function report(error: unknown): number {
  if (error instanceof CommanderError) {
    if (
      error.code === "commander.helpDisplayed" ||
      error.code === "commander.version" ||
      error.exitCode === 0
    )
      return 0;
    return ExitCode.usage;
  }
  if (error instanceof AbortError) {
    process.stderr.write(`${paint("red", "error")}: ${error.message}\n`);
    if (error.hint) process.stderr.write(`${paint("dim", error.hint)}\n`);
    return error.exitCode;
  }
  const debug = process.argv.includes("--debug");
  process.stderr.write(
    `${paint("red", "internal error")}: ${error instanceof Error ? error.message : String(error)}\n` +
      (debug && error instanceof Error ? `${error.stack}\n` : "run again with --debug for a stack trace\n"),
  );
  return ExitCode.workFailed;
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.exitCode = report(error);
}
