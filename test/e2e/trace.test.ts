/**
 * `spawn sweep trace` end to end on the embedded default, through the real CLI: tasks without
 * GPUs still leave one trace per attempt, merged into lifecycle tracks per instance and slot.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChromeTrace } from "../../core/trace.js";
import { type CliEnv, cliEnv } from "../helpers/cli.js";

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv("spawn-e2e-trace-");
});
afterAll(() => cli.stop());

describe("spawn sweep trace", () => {
  it("merges every attempt's lifecycle into one Perfetto trace, one process per instance", () => {
    // Given: a finished sweep of 6 CPU tasks over 2 instances with 2 slots each
    const specs = join(cli.home, "specs");
    mkdirSync(specs, { recursive: true });
    const spec = join(specs, "trace.yaml");
    writeFileSync(
      spec,
      [
        "name: trace-e2e",
        "command: sleep 0.3; test {{x}} != 5",
        "params: { list: [{x: 0}, {x: 1}, {x: 2}, {x: 3}, {x: 4}, {x: 5}] }",
        "resources: { slots: 2 }",
        "max_instances: 2",
        "retry: { max_attempts: 1 }",
        "",
      ].join("\n"),
    );
    const launched = cli.run(["sweep", "launch", spec, "--wait", "--json"]);
    expect(launched.code).toBe(1); // task 5 fails on purpose
    const sweepId = (JSON.parse(launched.stdout) as { sweepId: string }).sweepId;

    // When
    const out = join(cli.home, "t.json");
    const r = cli.run(["sweep", "trace", sweepId, "--out", out, "--json"]);

    // Then: every attempt is a slice on a slot track of the instance that ran it
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout) as { attempts: number; fromRecords: number; instances: number };
    expect(summary).toMatchObject({ attempts: 6, fromRecords: 0 });
    const trace = ChromeTrace.parse(JSON.parse(readFileSync(out, "utf8")));
    const slices = trace.traceEvents.filter((e) => e.ph === "X");
    expect(slices.map((e) => e.name).sort()).toEqual([0, 1, 2, 3, 4, 5].map((i) => `task ${i} #1`));
    const processes = trace.traceEvents.filter((e) => e.ph === "M" && e.name === "process_name");
    expect(processes.map((e) => e.args?.name)).toEqual(
      expect.arrayContaining([expect.stringMatching(new RegExp(`^${sweepId}-i\\d+$`))]),
    );
    expect(processes).toHaveLength(summary.instances);
    const tracks = trace.traceEvents.filter((e) => e.ph === "M" && e.name === "thread_name");
    expect(tracks.map((e) => e.args?.name)).toContain("slot 0");
    expect(slices.find((e) => e.name === "task 5 #1")?.args).toMatchObject({ outcome: "exit", exitCode: 1 });
    for (const s of slices) expect(s.dur).toBeGreaterThanOrEqual(300_000);
    // And: instants say what happened to each attempt
    expect(trace.traceEvents.filter((e) => e.ph === "i").map((e) => e.name)).toContain("task 0 #1: started");
  }, 120_000);

  it("an unknown sweep exits 3", () => {
    const r = cli.run(["sweep", "trace", "no-such-sweep"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/sweep "no-such-sweep" not found/);
  });
});
