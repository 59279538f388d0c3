/**
 * The spec reference (docs/spec.md), generated from the zod schema's JSON Schema so it
 * cannot drift: a test fails when docs/spec.md differs from what this produces.
 */
import { specJsonSchema } from "#core/spec.js";

type Schema = {
  type?: string | string[];
  description?: string;
  default?: unknown;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema | false;
  prefixItems?: Schema[];
  anyOf?: Schema[];
  enum?: unknown[];
  additionalProperties?: Schema | boolean;
  propertyNames?: Schema;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  pattern?: string;
};

function typeOf(s: Schema): string {
  if (s.enum) return s.enum.map((v) => JSON.stringify(v)).join(" \\| ");
  if (s.anyOf) return [...new Set(s.anyOf.map(typeOf))].join(" \\| ");
  if (s.prefixItems) return `[${s.prefixItems.map(typeOf).join(", ")}]`;
  const t = Array.isArray(s.type) ? s.type.join(" \\| ") : s.type;
  if (t === "array") return s.items ? `list of ${typeOf(s.items)}` : "list";
  if (
    t === "object" &&
    s.additionalProperties &&
    typeof s.additionalProperties === "object" &&
    !s.properties
  ) {
    return `map of name → ${typeOf(s.additionalProperties)}`;
  }
  if (!t) return "any JSON value";
  return t;
}

function constraints(s: Schema): string {
  const parts: string[] = [];
  const safe = (n: number) => Math.abs(n) < 9e15;
  if (s.minimum !== undefined && safe(s.minimum)) parts.push(`≥ ${s.minimum}`);
  if (s.maximum !== undefined && safe(s.maximum)) parts.push(`≤ ${s.maximum}`);
  if (s.minItems) parts.push(`at least ${s.minItems}`);
  return parts.join(", ");
}

function rows(schema: Schema, prefix: string, out: string[][]): void {
  const required = new Set(schema.required ?? []);
  for (const [name, prop] of Object.entries(schema.properties ?? {})) {
    const path = prefix ? `${prefix}.${name}` : name;
    const def =
      prop.default === undefined
        ? required.has(name)
          ? "**required**"
          : ""
        : `\`${JSON.stringify(prop.default)}\``;
    const objectBranch = prop.properties ? prop : prop.anyOf?.find((b) => b.properties);
    out.push([
      `\`${path}\``,
      objectBranch && !prop.anyOf ? "mapping" : typeOf(prop),
      def,
      [prop.description ?? "", constraints(prop)].filter(Boolean).join("; "),
    ]);
    if (objectBranch?.properties) rows(objectBranch, path, out);
    if (
      prop.additionalProperties &&
      typeof prop.additionalProperties === "object" &&
      prop.additionalProperties.properties
    ) {
      rows(prop.additionalProperties, `${path}.<name>`, out);
    }
  }
}

/** Markdown reference of every spec field: path, type, default, meaning. */
export function specMarkdown(): string {
  const schema = specJsonSchema() as Schema;
  const out: string[][] = [];
  rows(schema, "", out);
  const oneLine = (c: string) => c.replace(/\n/g, " ");
  return [
    "# Sweep spec reference",
    "",
    "<!-- Generated from the zod schema in core/spec.ts by `npm run docs:spec`; a test fails when it is stale. -->",
    "",
    "A sweep spec is YAML or JSON. Unknown keys are errors at every level, and every error names",
    "the field's path (`resources.gpus: expected int, received number`). Durations are seconds as a",
    "number, or text such as `90s`, `15m`, `2h`, `1h30m`. `spawn schema` prints the JSON Schema for",
    "editors (e.g. `# yaml-language-server: $schema=./spec.schema.json` after",
    "`spawn schema > spec.schema.json`). `--set key.sub=value` on `sweep launch` overrides a field",
    "before validation; the value is parsed as YAML.",
    "",
    "| field | type | default | meaning |",
    "|---|---|---|---|",
    ...out.map((r) => `| ${r.map(oneLine).join(" | ")} |`),
    "",
    "## Parameters",
    "",
    "Each block under `params` yields a list of assignments; the sweep is their cartesian product in",
    "the order grid, zip, list, random (the last varies fastest), times `repeat`. A parameter may be",
    "defined by one block only. Axis values are a list, or a generator:",
    "",
    "| generator | values |",
    "|---|---|",
    "| `{range: [start, stop, step]}` | start, start+step, … strictly before stop (step defaults to 1) |",
    "| `{linspace: [start, stop, num]}` | num evenly spaced values, both ends included |",
    "| `{logspace: [a, b, num, base]}` | base**x for num x evenly spaced in [a, b] (base defaults to 10) |",
    "",
    "Random search draws `count` assignments from `space` with a seeded generator, so the same spec",
    "always gives the same tasks: `{uniform: [lo, hi]}`, `{loguniform: [lo, hi]}`, `{int: [lo, hi]}`",
    "(inclusive) and `{choice: [a, b, …]}`.",
    "",
    "Task indices and ids are deterministic: the same spec gives the same index and id for every task.",
    "",
  ].join("\n");
}
