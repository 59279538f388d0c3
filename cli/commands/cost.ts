/** `spawn cost`: what sweeps actually cost, from instance run time × the price paid. */
import { type Command, Option } from "commander";
import { COST_GROUPS } from "#core/cost.js";
import { currentOwner, openContext } from "../context.js";
import { paint, printJson, table } from "../output.js";
import { parseSince, sweepCosts } from "../services/cost.js";

const dollars = (n: number) => `$${n.toFixed(2)}`;

export function registerCost(program: Command): void {
  program
    .command("cost")
    .description("actual cost of your sweeps: instance run time × the price paid at launch")
    .option("--sweep <id>", "one sweep")
    .addOption(new Option("--by <group>", "group by").choices(COST_GROUPS).default("sweep"))
    .option("--since <when>", "only run time after this: a duration back from now (7d, 12h) or a date")
    .option("--json", "machine-readable output")
    .action(async (opts) => {
      const now = Date.now();
      const since = opts.since ? parseSince(opts.since, now) : undefined;
      const ctx = await openContext();
      try {
        const report = await sweepCosts(ctx.store, {
          owner: currentOwner(),
          ...(opts.sweep ? { sweepId: opts.sweep } : {}),
          by: opts.by,
          ...(since !== undefined ? { since } : {}),
          now,
        });
        const note =
          report.localSweeps > 0
            ? `${report.localSweeps} local sweep(s): they run on this machine and cost $0`
            : undefined;
        if (opts.json) {
          printJson({
            since: since !== undefined ? new Date(since).toISOString() : null,
            by: opts.by,
            total: report.total,
            instanceHours: report.hours,
            instances: report.instances,
            unpriced: report.unpriced,
            sweeps: report.sweeps,
            lines: report.lines,
            note: note ?? null,
          });
          return;
        }
        process.stdout.write(
          `${paint("bold", dollars(report.total))} over ${report.hours.toFixed(2)} instance-hours, ` +
            `${report.instances} instance(s) in ${report.sweeps} sweep(s)` +
            `${since !== undefined ? ` since ${new Date(since).toISOString().slice(0, 16).replace("T", " ")}Z` : ""}\n`,
        );
        if (report.lines.length > 0) {
          process.stdout.write(
            `${table(
              [opts.by, "instances", "hours", "cost"],
              report.lines.map((l) => [l.key, String(l.instances), l.hours.toFixed(2), dollars(l.cost)]),
            )}\n`,
          );
        }
        if (note) process.stdout.write(`${paint("dim", note)}\n`);
      } finally {
        ctx.close();
      }
    });
}
