/** `spawn sweep trace`: a sweep's timeline for ui.perfetto.dev or chrome://tracing. */
import { writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Command } from "commander";
import { openContext } from "../context.js";
import { paint, printJson } from "../output.js";
import { sweepTrace } from "../services/trace.js";

export function registerTrace(program: Command): void {
  const sweep = program.commands.find((c) => c.name() === "sweep");
  if (!sweep) throw new Error("registerTrace: the sweep command group must be registered first");
  sweep
    .command("trace")
    .description("write a Perfetto / Chrome trace of the sweep: one track per instance slot and GPU")
    .argument("<sweep-id>")
    .option("--out <file>", "where to write it (default: ./<sweep-id>.trace.json)")
    .option("--json", "machine-readable summary")
    .addHelpText("after", "\nOpen the file in https://ui.perfetto.dev (or chrome://tracing).")
    .action(async (sweepId: string, opts) => {
      const ctx = await openContext();
      try {
        const result = await sweepTrace(ctx.store, ctx.objects, sweepId);
        const out = resolve(opts.out ?? `${sweepId}.trace.json`);
        await writeFile(out, JSON.stringify(result.trace));
        if (opts.json) {
          printJson({
            sweepId,
            out,
            attempts: result.attempts,
            fromRecords: result.fromRecords,
            instances: result.instances,
            unreadable: result.unreadable,
          });
          return;
        }
        for (const problem of result.unreadable)
          process.stderr.write(`${paint("yellow", "skipped")} ${problem}\n`);
        const records = result.fromRecords ? `, ${result.fromRecords} task(s) from their records only` : "";
        process.stdout.write(
          `wrote ${out}: ${result.attempts} attempt trace(s)${records}, ${result.instances} instance(s)\n` +
            `${paint("dim", "open it in https://ui.perfetto.dev")}\n`,
        );
      } finally {
        ctx.close();
      }
    });
}
