/**
 * docs/events.md is the published event contract: its generated part (one section per
 * detail-type: fields, types, required, an EventBridge rule pattern) must be what the zod
 * schemas in core/events.ts say. After changing an event, regenerate it with
 * `SPAWN_UPDATE_DOCS=1 npx vitest run test/alerts-events-doc.test.ts`.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { z } from "zod";
import { EVENT_VERSION, SPAWN_EVENT_TYPES, SpawnEvent } from "../core/events.js";
import { AGENT_SOURCE, ORCHESTRATOR_SOURCE } from "../providers/aws/events.js";
import { ROOT } from "./helpers/cli.js";

const DOC = join(ROOT, "docs", "events.md");
const START = "<!-- generated from core/events.ts: do not edit by hand -->";
const END = "<!-- end of generated part -->";

type JsonSchema = {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  items?: JsonSchema;
  properties?: Record<string, JsonSchema>;
  required?: string[];
  anyOf?: JsonSchema[];
};

function typeOf(s: JsonSchema): string {
  if (s.const !== undefined) return `\`${JSON.stringify(s.const)}\``;
  if (s.enum) return s.enum.map((v) => `\`${JSON.stringify(v)}\``).join(" \\| ");
  if (s.anyOf) return s.anyOf.map(typeOf).join(" \\| ");
  if (s.type === "array") return `array of ${typeOf(s.items ?? {})}`;
  if (s.type === "object" && s.properties)
    return `object {${Object.keys(s.properties)
      .map((k) => `${k}${s.required?.includes(k) ? "" : "?"}`)
      .join(", ")}}`;
  return String(s.type ?? "any");
}

/**
 * The sources of detail-types agents publish themselves (TaskFailed both: reconcile for expired
 * leases, the agent for the failures it writes); everything else comes from reconcile or the scheduler.
 */
const AGENT_EVENT_SOURCES: Record<string, string[]> = {
  GpuMemoryPressure: [AGENT_SOURCE],
  DnsRegistrationFailed: [AGENT_SOURCE],
  TaskFailed: [ORCHESTRATOR_SOURCE, AGENT_SOURCE],
};

/** The generated part of docs/events.md. */
function generated(): string {
  const sections = SpawnEvent.options.map((schema) => {
    const type = schema.shape.type.value;
    const json = z.toJSONSchema(schema) as JsonSchema;
    const rows = Object.entries(json.properties ?? {}).map(
      ([name, field]) =>
        `| \`${name}\` | ${typeOf(field)} | ${json.required?.includes(name) ? "yes" : "no"} |`,
    );
    const pattern = {
      // Agents publish from their instances under their own source (cdk/lib/agent-role.ts).
      source: AGENT_EVENT_SOURCES[type] ?? [ORCHESTRATOR_SOURCE],
      "detail-type": [type],
      detail: { version: [EVENT_VERSION] },
    };
    return [
      `### ${type}`,
      "",
      "| field | type | required |",
      "|---|---|---|",
      ...rows,
      "",
      "```json",
      JSON.stringify(pattern),
      "```",
    ].join("\n");
  });
  return `${START}\n\n${sections.join("\n\n")}\n\n${END}`;
}

describe("docs/events.md", () => {
  test("the generated part is what core/events.ts says", () => {
    const doc = readFileSync(DOC, "utf8");
    const start = doc.indexOf(START);
    const end = doc.indexOf(END);
    expect(start, "the doc lost its generated-part markers").toBeGreaterThan(0);
    const current = doc.slice(start, end + END.length);
    if (process.env.SPAWN_UPDATE_DOCS === "1" && current !== generated())
      writeFileSync(DOC, doc.replace(current, generated()));
    expect(current).toBe(generated());
  });

  test("the overview names every detail-type and the current version", () => {
    const overview = readFileSync(DOC, "utf8").split(START)[0]!;
    for (const type of SPAWN_EVENT_TYPES) expect(overview).toContain(`| \`${type}\` |`);
    expect(overview).toContain(`\`version\` is \`${EVENT_VERSION}\``);
    expect(overview).toContain(`\`${ORCHESTRATOR_SOURCE}\``);
  });
});
