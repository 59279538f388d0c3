/** `spawn slurm convert`: an sbatch script in, a spawn spec out. */
import type { Command } from "commander";
import { printJson } from "../output.js";
import { convertSbatchFile, renderConversion, writeNewFile } from "../services/slurm.js";

export function registerSlurm(program: Command): void {
  const slurm = program.command("slurm").description("bring Slurm batch scripts over");
  slurm
    .command("convert")
    .description("convert an sbatch script into a spawn spec; unsupported directives are listed as warnings")
    .argument("<script>", "the sbatch script")
    .option("-o, --output <spec.yaml>", "write the spec here instead of printing it")
    .option("--force", "replace the -o file if it exists")
    .option("--json", "print the spec, warnings and notes as JSON")
    .addHelpText(
      "after",
      "\nExamples:\n  spawn slurm convert train.sbatch\n  spawn slurm convert train.sbatch -o train.yaml && spawn sweep launch train.yaml --dry-run",
    )
    .action(async (script: string, opts) => {
      const conversion = await convertSbatchFile(script);
      const yaml = renderConversion(conversion, script);
      if (opts.output) await writeNewFile(opts.output, yaml, Boolean(opts.force));
      if (opts.json) {
        printJson({ ...conversion, output: opts.output ?? null });
        return;
      }
      for (const w of conversion.warnings)
        process.stderr.write(`warning: ${script}:${w.line}: ${w.message}\n`);
      if (opts.output)
        process.stderr.write(`wrote ${opts.output}: spawn sweep launch ${opts.output} --dry-run\n`);
      else process.stdout.write(yaml);
    });
}
