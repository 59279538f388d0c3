/**
 * `spawn slurm convert`: reads an sbatch script, converts it (core/slurm.ts) and renders the spec
 * as commented YAML. The spec is validated before anything is written, so a conversion that
 * would not launch never reaches the disk.
 */
import { writeFile } from "node:fs/promises";
import { basename } from "node:path";
import YAML from "yaml";
import { AbortError, BugError } from "#core/errors.js";
import { convertSbatch, type SlurmConversion } from "#core/slurm.js";
import { parseSpec, SpecError } from "#core/spec.js";
import { readUserFile } from "../flags.js";

/** Converts the script at `path`; throws SbatchError (exit 2) for bad input. */
export async function convertSbatchFile(path: string): Promise<SlurmConversion> {
  const text = await readUserFile(path, "sbatch script", "spawn slurm convert job.sbatch [-o spec.yaml]");
  const conversion = convertSbatch(text, basename(path));
  try {
    parseSpec(conversion.spec);
  } catch (error) {
    if (error instanceof SpecError)
      throw new BugError(`the converted spec does not validate: ${error.message}`, { cause: error });
    throw error;
  }
  return conversion;
}

/** The spec as YAML: a header naming the source and every warning, and the converter's notes beside their fields. */
export function renderConversion(conversion: SlurmConversion, source: string): string {
  const doc = new YAML.Document(conversion.spec);
  const header = [`Converted from ${source} by spawn slurm convert; see docs/slurm.md.`];
  if (conversion.warnings.length > 0) {
    header.push("Not carried over:");
    for (const w of conversion.warnings) header.push(`  line ${w.line}: ${w.message}`);
  }
  doc.commentBefore = header.map((l) => ` ${l}`).join("\n");
  if (YAML.isMap(doc.contents)) {
    for (const pair of doc.contents.items) {
      const key = YAML.isScalar(pair.key) ? String(pair.key.value) : "";
      const notes = conversion.notes.filter((n) => n.field === key).map((n) => ` ${n.message}`);
      if (notes.length > 0 && YAML.isNode(pair.key)) pair.key.commentBefore = notes.join("\n");
    }
  }
  return doc.toString({ lineWidth: 0 });
}

/** Writes `content` to `path`, refusing to replace a file unless `force`. */
export async function writeNewFile(path: string, content: string, force: boolean): Promise<void> {
  try {
    await writeFile(path, content, { flag: force ? "w" : "wx" });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "EEXIST")
      throw new AbortError(`${path} exists`, "pass --force to replace it, or choose another -o path");
    throw error;
  }
}
