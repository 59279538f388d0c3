/**
 * Slurm import against a corpus of sbatch scripts (test/fixtures/sbatch): each converts to the
 * expected spec and warnings, validates and expands; a converted command runs for real under sh;
 * and the CLI writes nothing for bad input.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import YAML from "yaml";
import { renderConversion } from "#cli/services/slurm.js";
import { renderCommand, taskEnvironment } from "#core/contract.js";
import { expandParams } from "#core/params.js";
import { convertSbatch } from "#core/slurm.js";
import { parseSpec } from "#core/spec.js";
import { type CliEnv, cliEnv, ROOT } from "./helpers/cli.js";

const CORPUS = join(ROOT, "test", "fixtures", "sbatch");
const scripts = readdirSync(CORPUS).filter((f) => f.endsWith(".sbatch"));

interface Expected {
  spec: Record<string, unknown>;
  tasks: number;
  warnings: Array<[number, string]>;
}

describe.each(scripts)("corpus: %s", (file) => {
  const text = readFileSync(join(CORPUS, file), "utf8");
  const expected = JSON.parse(
    readFileSync(join(CORPUS, file.replace(/\.sbatch$/, ".expected.json")), "utf8"),
  ) as Expected;
  const conversion = convertSbatch(text, file);

  test("converts to the expected spec", () => {
    expect(conversion.spec).toMatchObject(expected.spec);
  });

  test("lists every directive it does not carry over, with its line", () => {
    // The gang size maps only where this build's schema has one; otherwise it is a warning too.
    const warnings = conversion.warnings.filter(
      (w) => !w.message.includes("multi-node jobs are not available"),
    );
    expect(warnings.map((w) => w.line)).toEqual(expected.warnings.map(([line]) => line));
    warnings.forEach((w, i) => {
      expect(w.message).toContain(expected.warnings[i]![1]);
    });
  });

  test("passes the spec schema and expands to one task per array index", () => {
    const spec = parseSpec(conversion.spec);
    expect(expandParams(spec.params, spec.repeat)).toHaveLength(expected.tasks);
  });

  test("renders YAML that reads back as the same spec, with warnings in the header", () => {
    const yaml = renderConversion(conversion, file);
    expect(YAML.parse(yaml)).toEqual(conversion.spec);
    for (const w of conversion.warnings) expect(yaml).toContain(`#   line ${w.line}: `);
  });
});

describe("a converted command runs as Slurm would run the script", () => {
  const conversion = convertSbatch(readFileSync(join(CORPUS, "heredoc.sbatch"), "utf8"), "heredoc.sbatch");
  const spec = parseSpec(conversion.spec);
  const tasks = expandParams(spec.params, spec.repeat);

  function runTask(index: number) {
    const task = tasks[index]!;
    const dir = mkdtempSync(join(tmpdir(), "spawn-slurm-run-"));
    const outputDir = join(dir, "output");
    mkdirSync(outputDir);
    const env = taskEnvironment({
      sweepId: "render-abc123",
      index,
      taskCount: tasks.length,
      attempt: 1,
      params: task.params,
      paramsFile: join(dir, "params.json"),
      outputDir,
      checkpointDir: join(dir, "ckpt"),
      metricsFile: join(dir, "metrics.jsonl"),
      resume: false,
      specEnv: spec.env,
    });
    const command = renderCommand(spec.command, task.params, { index, attempt: 1, sweepId: "render-abc123" });
    const r = spawnSync("/bin/sh", ["-c", command], {
      cwd: dir,
      env: { PATH: process.env.PATH, ...env },
      encoding: "utf8",
    });
    return { dir, outputDir, ...r };
  }

  test("array ids, heredocs, quotes and {{ }} reach the script unchanged; --output keeps a copy", () => {
    // When the first array task (id 2) runs
    const r = runTask(0);
    // Then it succeeded and saw Slurm's variables
    expect(r.status).toBe(0);
    expect(readFileSync(join(r.dir, "config.yaml"), "utf8")).toBe("task: 2\nname: 'render'\n");
    expect(readFileSync(join(r.dir, "greeting.j2"), "utf8")).toBe(
      `Hello {{ user }}, it's "task" $SLURM_ARRAY_TASK_ID\n`,
    );
    // And its output is in the task's log and in the --output file, stderr included
    expect(r.stdout).toContain("task: 2");
    const kept = readFileSync(join(r.outputDir, "out", "render-2.txt"), "utf8");
    expect(kept).toContain("Hello {{ user }}");
    expect(kept).toContain("of 3, job render-abc123");
  });

  test("the script's exit status is the task's", () => {
    // Array id 3 exits 3
    expect(runTask(1).status).toBe(3);
  });
});

describe("spawn slurm convert (CLI)", () => {
  let cli: CliEnv;
  let work: string;
  beforeAll(() => {
    cli = cliEnv("spawn-slurm-");
    work = join(cli.home, "work");
    mkdirSync(work);
  });
  afterAll(() => cli.stop());

  test("-o writes a spec that sweep launch --dry-run plans", () => {
    // When a script is converted to a file
    const out = join(work, "resnet.yaml");
    const r = cli.run(["slurm", "convert", join(CORPUS, "pytorch-array.sbatch"), "-o", out]);
    // Then warnings name their lines and the file plans as a 10-task sweep
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("pytorch-array.sbatch:3: --partition=gpu: not supported");
    const plan = cli.json<{ tasks: number; name: string }>(["sweep", "launch", out, "--dry-run"]);
    expect(plan).toMatchObject({ tasks: 10, name: "resnet-sweep" });
    // And an existing file is not replaced without --force
    const again = cli.run(["slurm", "convert", join(CORPUS, "pytorch-array.sbatch"), "-o", out]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain("exists");
  });

  test("bad input exits 2, names the lines, and writes nothing", () => {
    const out = join(work, "bad.yaml");
    const r = cli.run(["slurm", "convert", join(CORPUS, "bad", "backwards-array.sbatch"), "-o", out]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("line 3: --array=10-1: range 10-1 ends before it starts");
    expect(r.stderr).toContain("line 4: --time=soon: not a Slurm time");
    expect(existsSync(out)).toBe(false);
    const noShebang = cli.run(["slurm", "convert", join(CORPUS, "bad", "no-shebang.sbatch")]);
    expect(noShebang.code).toBe(2);
    expect(noShebang.stderr).toContain("line 1: the first line must be #!");
    expect(noShebang.stdout).toBe("");
  });

  test("a missing script is exit 2 with the path", () => {
    const r = cli.run(["slurm", "convert", join(work, "nope.sbatch")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("nope.sbatch not found");
  });
});
