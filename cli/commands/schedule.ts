/** `spawn schedule create|list|describe|pause|resume|delete|history`. */
import type { Command } from "commander";
import { formatDuration } from "#core/duration.js";
import { checkProvider, currentOwner, openContext } from "../context.js";
import { collect, intArg, providerOption } from "../flags.js";
import { paint, printJson, table } from "../output.js";
import {
  createSchedule,
  deleteSchedule,
  pauseSchedule,
  requireSchedule,
  resumeSchedule,
  scheduleHistory,
  scheduleJson,
} from "../services/schedule.js";

const when = (ms: number | undefined) =>
  ms === undefined ? "-" : new Date(ms).toISOString().replace("T", " ").slice(0, 16);

export function registerSchedule(program: Command): void {
  const schedule = program
    .command("schedule")
    .description("launch a sweep at a time, on a cron expression, or every N hours");

  schedule
    .command("create")
    .description("validate a spec and schedule its launches (the workdir is snapshotted now)")
    .argument("<spec>", "sweep spec (YAML or JSON)")
    .option("--at <time>", "once, at an ISO-8601 time (read in --timezone unless it has an offset)")
    .option("--cron <expr>", 'five-field cron expression, e.g. "0 2 * * 1-5"')
    .option("--rate <duration>", "every N minutes/hours/days, e.g. 30m, 6h, 1d")
    .option("--timezone <zone>", "IANA time zone for --at, --cron and --end-after", "UTC")
    .option("--name <name>", "schedule name (default: the spec's name)")
    .option("--max-executions <n>", "complete after this many launches", intArg("--max-executions", 1))
    .option("--end-after <time>", "no firing at or after this ISO-8601 time")
    .option("--set <key=value>", "override a spec field before validation (repeatable)", collect, [])
    .addOption(providerOption())
    .option("--json", "machine-readable output")
    .action(async (specPath: string, opts) => {
      checkProvider(opts.provider);
      const ctx = await openContext(opts.provider);
      try {
        const created = await createSchedule(ctx, specPath, {
          at: opts.at,
          cron: opts.cron,
          rate: opts.rate,
          timezone: opts.timezone,
          name: opts.name,
          maxExecutions: opts.maxExecutions,
          endAfter: opts.endAfter,
          set: opts.set,
        });
        if (opts.json) printJson(scheduleJson(created));
        else {
          process.stdout.write(
            `created ${paint("bold", created.scheduleId)}: next run ${when(created.nextRunAt)} UTC\n` +
              (ctx.provider === "local"
                ? "  runs while the local control plane is up; firings missed while it is down are reported, not run late\n"
                : ""),
          );
        }
      } finally {
        ctx.close();
      }
    });

  schedule
    .command("list")
    .description("your schedules")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const ctx = await openContext();
      try {
        const schedules = await ctx.schedules.listSchedules({ owner: currentOwner() });
        if (opts.json) printJson(schedules.map(scheduleJson));
        else if (schedules.length === 0)
          process.stdout.write('no schedules: spawn schedule create <spec> --cron "0 2 * * *"\n');
        else {
          process.stdout.write(
            `${table(
              ["schedule", "state", "trigger", "next run (UTC)", "runs", "missed", "last sweep"],
              schedules.map((s) => [
                s.scheduleId,
                s.state,
                `${s.trigger.kind} ${s.trigger.expression}${s.trigger.timezone === "UTC" ? "" : ` (${s.trigger.timezone})`}`,
                when(s.nextRunAt),
                s.maxExecutions ? `${s.executions}/${s.maxExecutions}` : String(s.executions),
                s.missed ? paint("yellow", String(s.missed)) : "0",
                s.lastSweepId ?? "-",
              ]),
            )}\n`,
          );
        }
      } finally {
        ctx.close();
      }
    });

  schedule
    .command("describe")
    .description("one schedule, with its recent firings")
    .argument("<schedule-id>")
    .option("--json", "machine-readable output")
    .action(async (scheduleId: string, opts) => {
      const ctx = await openContext();
      try {
        const s = await requireSchedule(ctx, scheduleId);
        if (opts.json) printJson(scheduleJson(s));
        else {
          const j = scheduleJson(s);
          const rows: Array<[string, string]> = [
            ["schedule", s.scheduleId],
            ["name", s.name],
            ["state", s.state + (s.reason ? ` (${s.reason})` : "")],
            ["trigger", `${s.trigger.kind} ${s.trigger.expression} in ${s.trigger.timezone}`],
            ["next run", j.nextRunAt ?? "-"],
            ["runs", s.maxExecutions ? `${s.executions} of ${s.maxExecutions}` : String(s.executions)],
            ["missed", String(s.missed)],
            ["last sweep", s.lastSweepId ?? "-"],
            ["ends", j.endAt ?? "never"],
            ["age", formatDuration(ctx.clock.now() - s.createdAt)],
          ];
          process.stdout.write(`${rows.map(([k, v]) => `${k.padEnd(11)}${v}`).join("\n")}\n`);
        }
      } finally {
        ctx.close();
      }
    });

  for (const [verb, description, run] of [
    ["pause", "stop firing until resumed", pauseSchedule],
    ["resume", "fire again from the next time after now (nothing due while paused is run)", resumeSchedule],
  ] as const) {
    schedule
      .command(verb)
      .description(description)
      .argument("<schedule-id>")
      .action(async (scheduleId: string) => {
        const ctx = await openContext();
        try {
          const s = await run(ctx, scheduleId);
          process.stdout.write(`${s.scheduleId}: ${s.state}, next run ${when(s.nextRunAt)} UTC\n`);
        } finally {
          ctx.close();
        }
      });
  }

  schedule
    .command("delete")
    .description("remove a schedule (its sweeps and history stay)")
    .argument("<schedule-id>")
    .action(async (scheduleId: string) => {
      const ctx = await openContext();
      try {
        await deleteSchedule(ctx, scheduleId);
        process.stdout.write(`deleted ${scheduleId}\n`);
      } finally {
        ctx.close();
      }
    });

  schedule
    .command("history")
    .description("firings, newest first: launched, failed, missed or skipped")
    .argument("<schedule-id>")
    .option("--limit <n>", "at most this many", intArg("--limit", 1), 20)
    .option("--json", "machine-readable output")
    .action(async (scheduleId: string, opts) => {
      const ctx = await openContext();
      try {
        const { firings } = await scheduleHistory(ctx, scheduleId, opts.limit);
        if (opts.json) {
          printJson(
            firings.map((f) => ({
              scheduledAt: new Date(f.firedAt).toISOString(),
              status: f.status,
              sweepId: f.sweepId ?? null,
              error: f.error ?? null,
              traceparent: f.traceparent ?? null,
            })),
          );
        } else if (firings.length === 0) process.stdout.write("no firings yet\n");
        else {
          process.stdout.write(
            `${table(
              ["scheduled (UTC)", "status", "sweep", "error"],
              firings.map((f) => [
                when(f.firedAt),
                f.status === "failed" || f.status === "missed" ? paint("yellow", f.status) : f.status,
                f.sweepId ?? "-",
                f.error ?? "",
              ]),
            )}\n`,
          );
        }
      } finally {
        ctx.close();
      }
    });
}
