/**
 * Template variables: the manifest a template declares them in, and turning `--var k=v` flags
 * into typed values. Pure; cli/services/templates.ts finds, reads and writes the files.
 *
 * A template is a spec `<name>.yaml` that launches as it is; its optional manifest
 * `<name>.template.yaml` names the spec fields a user may set at `spawn templates init`, each
 * with a type and a default (the value the spec already holds). See docs/templates.md.
 */
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { AbortError } from "./errors.js";

export const VAR_TYPES = ["string", "int", "number", "boolean", "duration", "list"] as const;
export type VarType = (typeof VAR_TYPES)[number];

const VarName = z
  .string()
  .regex(
    /^[a-z][a-z0-9_]{0,39}$/,
    "variable names are lower case letters, digits and _, starting with a letter",
  );

/** A dotted path into the spec (`resources.gpus`, `params.grid.lr`); numeric segments index lists. */
const SpecPath = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z0-9_-]+)*$/, "a dotted spec path such as resources.gpus");

/** One declared variable. */
export const TemplateVar = z
  .strictObject({
    type: z.enum(VAR_TYPES),
    description: z.string().min(1),
    /** Absent: the variable is required at init. */
    default: z.json().optional(),
    choices: z
      .array(z.union([z.string(), z.number()]))
      .min(1)
      .optional(),
    min: z.number().optional(),
    max: z.number().optional(),
    /** The spec fields the value is written to. */
    paths: z.array(SpecPath).min(1),
  })
  .superRefine((v, ctx) => {
    if (v.default === undefined) return;
    const problem = checkValue(v, v.default);
    if (problem) ctx.addIssue({ code: "custom", path: ["default"], message: problem });
  });
export type TemplateVar = z.infer<typeof TemplateVar>;

/** `<name>.template.yaml`. */
export const TemplateManifest = z.strictObject({
  description: z.string().min(1).describe("one line for spawn templates list"),
  gpu: z.boolean().default(false).describe("the template needs a GPU machine"),
  vars: z.record(VarName, TemplateVar).default({}),
});
export type TemplateManifest = z.infer<typeof TemplateManifest>;

/** Why `value` is not a valid value of `v`, or undefined. */
export function checkValue(
  v: Pick<TemplateVar, "type" | "choices" | "min" | "max">,
  value: unknown,
): string | undefined {
  switch (v.type) {
    case "string":
      if (typeof value !== "string") return "expected a string";
      break;
    case "int":
      if (!Number.isInteger(value)) return "expected a whole number";
      break;
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return "expected a number";
      break;
    case "boolean":
      if (typeof value !== "boolean") return "expected true or false";
      break;
    case "duration":
      if ((typeof value !== "string" && typeof value !== "number") || parseDuration(value) === undefined)
        return "expected a duration such as 90s, 15m or 2h";
      break;
    case "list":
      if (!Array.isArray(value) || value.length === 0) return "expected a non-empty list such as [1, 2]";
      break;
  }
  if (typeof value === "number") {
    if (v.min !== undefined && value < v.min) return `must be >= ${v.min}`;
    if (v.max !== undefined && value > v.max) return `must be <= ${v.max}`;
  }
  if (v.choices && !v.choices.includes(value as string | number))
    return `must be one of ${v.choices.map((c) => JSON.stringify(c)).join(", ")}`;
  return undefined;
}

/** Reads a `--var` value written on a command line as the variable's type. */
export function parseVarText(
  name: string,
  v: TemplateVar,
  text: string,
  parseList: (text: string) => unknown,
): unknown {
  let value: unknown = text;
  if (v.type === "int" && /^-?\d+$/.test(text)) value = Number(text);
  else if (v.type === "number" && text.trim() !== "" && Number.isFinite(Number(text))) value = Number(text);
  else if (v.type === "boolean" && /^(true|false)$/i.test(text)) value = text.toLowerCase() === "true";
  else if (v.type === "list") {
    try {
      value = parseList(text);
    } catch {
      value = undefined;
    }
  }
  const problem = checkValue(v, value);
  if (problem)
    throw new AbortError(`--var ${name}=${text}: ${problem}`, `${name} (${v.type}): ${v.description}`);
  return value;
}

/**
 * Resolves every variable of a template: `--var` flags (`k=v`) over declared defaults.
 *
 * @throws AbortError naming an undeclared variable (with the declared ones), a required variable
 *   left out, a flag given twice, a flag without `=`, or a value of the wrong type.
 */
export function resolveVars(
  template: string,
  manifest: TemplateManifest,
  flags: readonly string[],
  parseList: (text: string) => unknown,
): Record<string, unknown> {
  const declared = Object.keys(manifest.vars);
  const given = new Map<string, string>();
  for (const flag of flags) {
    const eq = flag.indexOf("=");
    if (eq <= 0)
      throw new AbortError(`--var ${JSON.stringify(flag)}: expected name=value`, "e.g. --var gpus=2");
    const name = flag.slice(0, eq);
    if (!(name in manifest.vars)) {
      throw new AbortError(
        `template ${template} has no variable ${JSON.stringify(name)}`,
        declared.length > 0 ? `its variables: ${declared.join(", ")}` : `${template} declares no variables`,
      );
    }
    if (given.has(name)) throw new AbortError(`--var ${name} is given twice`);
    given.set(name, flag.slice(eq + 1));
  }
  const values: Record<string, unknown> = {};
  const missing: string[] = [];
  for (const [name, v] of Object.entries(manifest.vars)) {
    const text = given.get(name);
    if (text !== undefined) values[name] = parseVarText(name, v, text, parseList);
    else if (v.default !== undefined) values[name] = v.default;
    else missing.push(name);
  }
  if (missing.length > 0) {
    throw new AbortError(
      `template ${template} needs ${missing.map((n) => `--var ${n}=…`).join(", ")}`,
      missing.map((n) => `${n} (${manifest.vars[n]!.type}): ${manifest.vars[n]!.description}`).join("\n"),
    );
  }
  return values;
}

/** `params.grid.lr` → `["params", "grid", "lr"]`; numeric segments become list indexes. */
export function pathSegments(path: string): Array<string | number> {
  return path.split(".").map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}
