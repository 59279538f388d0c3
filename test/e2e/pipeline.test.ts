/**
 * Pipelines end to end on the embedded default, through the real CLI binary: a queue stage feeding
 * a sweep (whole-stage) feeding another sweep task by task (n_to_n), with each stage reading the
 * earlier stages' outputs through SPAWN_INPUT_DIR; a failed stage stopping what depends on it; and
 * bad pipeline files creating nothing.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { type CliEnv, cliEnv } from "../helpers/cli.js";

interface StatusJson {
  sweepId: string;
  status: string;
  reason: string | null;
  stages?: Array<{ name: string; sweepId: string; status: string; inputs: unknown[] }>;
}
interface Row {
  index: number;
  status: string;
  metrics: { start?: number; end?: number };
  error: string | null;
}

let cli: CliEnv;
let dir: string;
beforeAll(() => {
  cli = cliEnv("spawn-pipeline-e2e-");
  dir = join(cli.home, "src");
  mkdirSync(join(dir, "work"), { recursive: true });
});
afterAll(() => cli.stop());

const now = "$(date +%s%3N)";

/** With `failUntilFixed`, prep fails until the file `<dir>/fixed` exists. */
function pipeline(failUntilFixed = false) {
  return {
    name: "pipe",
    stages: [
      {
        name: "prep",
        queue: {
          workdir: "work",
          env: failUntilFixed ? { FIXED: join(dir, "fixed") } : {},
          jobs: [
            {
              id: "make",
              command: `mkdir -p out && echo data > out/data.txt${failUntilFixed ? ' && { [ -f "$FIXED" ] || exit 3; }' : ""}`,
              result_paths: ["out/data.txt"],
            },
          ],
        },
      },
      {
        name: "train",
        depends_on: ["prep"],
        sweep: {
          workdir: "work",
          // Task 2 is slow: eval's task 0 must not wait for it (n_to_n), eval's task 2 must.
          command: `s=${now}; grep -q data "$SPAWN_INPUT_DIR/prep/make/out/data.txt" || exit 9; if [ "$SPAWN_PARAM_I" = 2 ]; then sleep 8; fi; echo "model $SPAWN_PARAM_I" > "$SPAWN_OUTPUT_DIR/model.txt"; echo "{\\"start\\": $s, \\"end\\": ${now}}" >> "$SPAWN_METRICS_FILE"`,
          params: { list: [{ i: 0 }, { i: 1 }, { i: 2 }] },
          max_instances: 3,
        },
      },
      {
        name: "eval",
        depends_on: [{ stage: "train", type: "n_to_n" }],
        sweep: {
          workdir: "work",
          command: `echo "{\\"start\\": ${now}}" >> "$SPAWN_METRICS_FILE"; f="$SPAWN_INPUT_DIR/train/model.txt"; grep -qx "model $SPAWN_PARAM_I" "$f" && test "$(stat -c %a "$f")" = 444`,
          params: { list: [{ i: 0 }, { i: 1 }, { i: 2 }] },
        },
      },
    ],
  };
}

function launch(name: string, spec: unknown, args: string[] = []) {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(file, YAML.stringify(spec));
  return cli.run(["sweep", "launch", file, ...args], { timeoutMs: 240_000 });
}

describe("a three-stage pipeline", () => {
  it("runs each stage after its inputs, task by task for n_to_n, with earlier outputs in SPAWN_INPUT_DIR", () => {
    const r = launch("ok", pipeline(), ["--wait", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as StatusJson;
    expect(status.status).toBe("succeeded");
    expect(status.stages!.map((s) => [s.name, s.status])).toEqual([
      ["prep", "succeeded"],
      ["train", "succeeded"],
      ["eval", "succeeded"],
    ]);
    const ids = new Map(status.stages!.map((s) => [s.name, s.sweepId]));
    const train = cli.json<Row[]>(["sweep", "results", ids.get("train")!]);
    const evaluation = cli.json<Row[]>(["sweep", "results", ids.get("eval")!]);
    // n_to_n: eval task i started after train task i ended...
    for (const i of [0, 1, 2])
      expect(evaluation[i]!.metrics.start).toBeGreaterThanOrEqual(train[i]!.metrics.end!);
    // ...and not after the whole train stage: task 0 ran while train's task 2 was still running
    expect(evaluation[0]!.metrics.start).toBeLessThan(train[2]!.metrics.end!);

    // The stage graph is in the text status too
    const text = cli.run(["sweep", "status", status.sweepId]);
    expect(text.stdout).toMatch(/stages\n\s+prep\s+succeeded/);
    expect(text.stdout).toMatch(/eval\s+succeeded.*← train \(n_to_n\)/);
  }, 260_000);

  it("a failed stage stops the stages that wait on it, and the pipeline fails saying so", () => {
    const r = launch("bad-prep", pipeline(true), ["--wait", "--json"]);
    expect(r.code).toBe(1);
    const status = JSON.parse(r.stdout) as StatusJson;
    expect(status.status).toBe("failed");
    expect(status.reason).toBe("0 of 3 stage(s) succeeded; prep failed, train failed, eval failed");
    const train = cli.json<StatusJson>(["sweep", "status", status.stages![1]!.sweepId]);
    expect(train.reason).toBe("not run: stage prep failed");
    const evaluation = cli.json<Row[]>(["sweep", "results", status.stages![2]!.sweepId]);
    // eval's tasks never ran: cancelled behind train
    expect(evaluation.every((t) => t.status === "cancelled")).toBe(true);

    // Retrying the pipeline re-runs the stages that did not succeed, upstream first
    writeFileSync(join(dir, "fixed"), "");
    const deadline = Date.now() + 60_000;
    let retry = cli.run(["sweep", "retry", status.sweepId, "--json"]);
    while (retry.code !== 0 && retry.stderr.includes("shutting down") && Date.now() < deadline)
      retry = cli.run(["sweep", "retry", status.sweepId, "--json"]);
    expect(retry.code, retry.stderr).toBe(0);
    const watched = cli.run(["sweep", "status", status.sweepId, "--watch", "--json"], { timeoutMs: 180_000 });
    expect((JSON.parse(watched.stdout) as StatusJson).status).toBe("succeeded");
  }, 300_000);
});

describe("bad pipeline files", () => {
  const base = pipeline();
  const cases: Array<[string, unknown, RegExp]> = [
    [
      "cycle",
      { ...base, stages: [{ ...base.stages[0], depends_on: ["eval"] }, ...base.stages.slice(1)] },
      /line \d+: stages\[0\]\.depends_on: dependency cycle: prep → eval → train → prep/,
    ],
    [
      "unknown",
      { ...base, stages: [...base.stages.slice(0, 2), { ...base.stages[2], depends_on: ["ghost"] }] },
      /line \d+: stages\[2\]\.depends_on\[0\]: unknown stage "ghost"/,
    ],
    [
      "sizes",
      {
        ...base,
        stages: [
          ...base.stages.slice(0, 2),
          { ...base.stages[2], sweep: { ...base.stages[2]!.sweep, params: { list: [{ i: 0 }] } } },
        ],
      },
      /stages\[2\]\.depends_on\[0\]: n_to_n needs sweeps of equal size: train has 3 tasks, eval has 1/,
    ],
  ];
  it.each(cases)("%s: exit 2, named, nothing created", (name, spec, message) => {
    const before = cli.json<unknown[]>(["sweep", "list"]).length;
    const r = launch(name, spec);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(cli.json<unknown[]>(["sweep", "list"])).toHaveLength(before);
  });
});
