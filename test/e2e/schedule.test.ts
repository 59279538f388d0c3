/**
 * Schedules through the real binary on the embedded default: the examples in
 * docs/schedules.md run as written, bad input creates nothing, and a schedule fires a sweep
 * that runs to the end.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, test } from "vitest";
import { type CliEnv, cliEnv, ROOT } from "../helpers/cli.js";

const envs: CliEnv[] = [];
const fresh = () => {
  const env = cliEnv("spawn-sched-e2e-");
  envs.push(env);
  return env;
};
afterAll(() => {
  for (const env of envs) env.stop();
});

/** Splits a command line as a POSIX shell would for the quoting the docs use ("…" and '…'). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** `$ spawn …  # exit N` lines of every ```sh block in a doc, block by block. */
function examples(doc: string): Array<Array<{ args: string[]; exit: number; line: string }>> {
  const blocks = [...readFileSync(join(ROOT, "docs", doc), "utf8").matchAll(/```sh\n([\s\S]*?)```/g)];
  return blocks.map((b) =>
    b[1]!
      .split("\n")
      .filter((l) => l.startsWith("$ spawn "))
      .map((line) => {
        const [command, comment] = line.slice(2).split(/\s+#\s*/);
        const exit = Number(/exit (\d+)/.exec(comment ?? "")?.[1] ?? 0);
        return { args: words(command!).slice(1), exit, line };
      }),
  );
}

describe("docs/schedules.md examples", () => {
  const blocks = examples("schedules.md");

  test("the doc has examples to run", () => {
    expect(blocks.flat().length).toBeGreaterThanOrEqual(8);
  });

  test.each(blocks.map((block, i) => [i, block] as const))("block %i runs as documented", (_i, block) => {
    const cli = fresh();
    let id: string | undefined;
    for (const { args, exit, line } of block) {
      const r = cli.run(args.map((a) => (a === "$ID" ? id! : a)));
      expect({ line, code: r.code, stderr: r.stderr }).toEqual({
        line,
        code: exit,
        stderr: expect.any(String),
      });
      if (exit !== 0) expect(r.stderr).toMatch(/^error: /);
      id ??= /created (sch-\S+):/.exec(r.stdout)?.[1];
    }
    // Refused input created nothing.
    if (block.every((c) => c.exit !== 0)) expect(cli.json(["schedule", "list"])).toEqual([]);
  });
});

describe("spawn schedule on the embedded default", () => {
  test("an --at schedule fires once and its sweep runs to the end", { timeout: 240_000 }, () => {
    const cli = fresh();
    const at = new Date(Date.now() + 25_000).toISOString().replace(/\.\d+Z$/, "Z");
    const created = cli.json<{ scheduleId: string; nextRunAt: string }>([
      "schedule",
      "create",
      "templates/quickstart.yaml",
      "--at",
      at,
      "--name",
      "soon",
    ]);
    expect(created.nextRunAt).toBe(new Date(at).toISOString());

    let history: Array<{ status: string; sweepId: string | null }> = [];
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      history = cli.json(["schedule", "history", created.scheduleId]);
      if (history.some((h) => h.status !== "launching")) break;
      spin(500);
    }
    expect(history).toEqual([
      {
        scheduledAt: new Date(at).toISOString(),
        status: "launched",
        sweepId: expect.any(String),
        error: null,
        // The firing's trace (ADR 0040), also on its sweep
        traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/),
      },
    ]);
    const sweepId = history[0]!.sweepId!;
    const status = cli.run(["sweep", "status", sweepId, "--watch"], { timeoutMs: 120_000 });
    expect(status.code).toBe(0);
    expect(cli.json<{ status: string }>(["sweep", "status", sweepId]).status).toBe("succeeded");
    expect(cli.json<Array<{ state: string; executions: number }>>(["schedule", "list"])).toEqual([
      expect.objectContaining({ scheduleId: created.scheduleId, state: "completed", executions: 1 }),
    ]);
  });

  test("a schedule for someone else is not found (exit 3)", () => {
    const cli = fresh();
    const r = cli.run(["schedule", "pause", "sch-nobody-123"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/schedule "sch-nobody-123" not found\n.*spawn schedule list shows yours/);
  });
});

function spin(ms: number) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
