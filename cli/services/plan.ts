/**
 * Turning a spec file plus flags into a validated plan, with no side effects: the
 * same code path serves `--dry-run` and a real launch, so a dry run can never launch.
 */
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import YAML from "yaml";
import { checkCommandTemplate, quotedTemplateReferences, renderCommand } from "#core/contract.js";
import { AbortError } from "#core/errors.js";
import { type ExpandedTask, expandParams } from "#core/params.js";
import { slotsPerInstance } from "#core/reconcile.js";
import { parseSpec, SpecError, type SweepSpec } from "#core/spec.js";

export interface SweepPlan {
  specPath: string;
  specDir: string;
  workdir: string;
  spec: SweepSpec;
  tasks: ExpandedTask[];
  slots: number;
  instances: number;
}

/** Parses `k=v` flags; the value is YAML, so `--set retry.max_attempts=3` is a number and `--set name=x` a string. */
export function parseSetFlags(flags: readonly string[]): Array<[string, unknown]> {
  return flags.map((flag) => {
    const eq = flag.indexOf("=");
    if (eq <= 0)
      throw new AbortError(
        `--set ${JSON.stringify(flag)}: expected key=value`,
        "e.g. --set retry.max_attempts=3",
      );
    const key = flag.slice(0, eq).trim();
    const text = flag.slice(eq + 1);
    try {
      return [key, text === "" ? "" : YAML.parse(text)];
    } catch {
      return [key, text];
    }
  });
}

/** Reads YAML or JSON; a missing file or a syntax error is the user's (exit 2) and names the file and line. */
export async function readSpecFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new AbortError(
      code === "ENOENT"
        ? `spec file ${path} not found`
        : `cannot read spec file ${path}: ${(error as Error).message}`,
      "spawn sweep launch <spec.yaml>; see templates/ for examples",
    );
  }
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new AbortError(`${path}: ${first.message.split("\n")[0]}`, "fix the YAML syntax");
  }
  return doc.toJS({ maxAliasCount: 100 });
}

export interface PlanOptions {
  set?: readonly string[];
  maxInstances?: number;
}

/** Validates everything a launch needs and expands the tasks. Throws SpecError/AbortError (exit 2). */
export async function planSweep(specPath: string, options: PlanOptions = {}): Promise<SweepPlan> {
  const absolute = resolve(specPath);
  const raw = await readSpecFile(absolute);
  const overrides = parseSetFlags(options.set ?? []);
  if (options.maxInstances !== undefined) overrides.push(["max_instances", options.maxInstances]);
  const spec = parseSpec(raw, overrides, specPath);
  const tasks = expandParams(spec.params, spec.repeat);

  const names = new Set(tasks.flatMap((t) => Object.keys(t.params)));
  const unknown = checkCommandTemplate(spec.command, names);
  const quoted = quotedTemplateReferences(spec.command);
  if (unknown.length > 0 || quoted.length > 0) {
    throw new SpecError([
      ...unknown.map((n) => ({
        path: "command",
        message: `{{${n}}} is not a parameter (known: ${[...names].sort().join(", ") || "none"}; built-ins: index, attempt, sweep_id)`,
      })),
      ...quoted.map((n) => ({
        path: "command",
        message: `{{${n}}} is inside quotes; spawn shell-quotes every value itself, so write {{${n}}} bare`,
      })),
    ]);
  }
  // Every task must render: a parameter missing from some list entries is caught here, not on an instance.
  for (const task of tasks) {
    try {
      renderCommand(spec.command, task.params, { index: task.index, attempt: 1, sweepId: "dry-run" });
    } catch (error) {
      throw new SpecError([{ path: "command", message: `task ${task.index}: ${(error as Error).message}` }]);
    }
  }

  const specDir = dirname(absolute);
  const workdir = isAbsolute(spec.workdir) ? spec.workdir : resolve(specDir, spec.workdir);
  const info = await stat(workdir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new SpecError([
      {
        path: "workdir",
        message: `${workdir} is not a directory (relative paths start at the spec's directory)`,
      },
    ]);
  }
  const slots = slotsPerInstance(spec);
  return {
    specPath: absolute,
    specDir,
    workdir,
    spec,
    tasks,
    slots,
    instances: Math.min(spec.max_instances, Math.ceil(tasks.length / slots)),
  };
}
