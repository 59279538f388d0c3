import { describe, expect, test } from "vitest";
import { convertSbatch, parseArray, parseSlurmMemory, parseSlurmTime, SbatchError } from "./slurm.js";
import { parseSpec } from "./spec.js";

/** The problems an invalid script is rejected with, or fails the test if it converts. */
function problemsOf(script: string): Array<{ line: number; message: string }> {
  try {
    convertSbatch(script, "job.sbatch");
  } catch (error) {
    expect(error).toBeInstanceOf(SbatchError);
    return (error as SbatchError).problems;
  }
  throw new Error("the script was accepted");
}

describe("parseArray", () => {
  test.each([
    ["0-3", [0, 1, 2, 3], undefined],
    ["1,3,5-7", [1, 3, 5, 6, 7], undefined],
    ["0-15:4", [0, 4, 8, 12], undefined],
    ["0-15:4%2", [0, 4, 8, 12], 2],
    ["7", [7], undefined],
    ["3,1,3", [1, 3], undefined],
    ["1-5%10", [1, 2, 3, 4, 5], 10],
  ])("%s", (text, ids, throttle) => {
    // When an array spec is parsed
    const parsed = parseArray(text);
    // Then it yields the sorted, distinct ids and the throttle
    expect(parsed).toMatchObject({ ids, throttle });
  });

  test("a single range is kept as a range so the spec stays short", () => {
    expect(parseArray("0-15:4%2")).toMatchObject({ range: { start: 0, stop: 15, step: 4 } });
    expect(parseArray("1,2-4")).not.toHaveProperty("range.start");
  });

  test.each([
    ["5-1", "ends before it starts"],
    ["1-5%0", "throttle"],
    ["1-5%2%3", "more than one %"],
    ["a-b", "is not an index"],
    ["1-5:0", "step"],
    ["", "is not an index"],
    ["0-999999999", "more than 100000"],
  ])("rejects %j", (text, message) => {
    expect(parseArray(text)).toContain(message);
  });
});

describe("parseSlurmTime", () => {
  test.each([
    ["90", 90 * 60_000],
    ["5:30", 5 * 60_000 + 30_000],
    ["02:00:00", 2 * 3_600_000],
    ["1-12", 36 * 3_600_000],
    ["1-0:30", 86_400_000 + 30 * 60_000],
    ["2-01:02:03", 2 * 86_400_000 + 3_600_000 + 2 * 60_000 + 3000],
  ])("%s", (text, ms) => {
    expect(parseSlurmTime(text)).toBe(ms);
  });

  test("0, UNLIMITED and INFINITE mean no limit", () => {
    expect(parseSlurmTime("0")).toBeNull();
    expect(parseSlurmTime("UNLIMITED")).toBeNull();
    expect(parseSlurmTime("infinite")).toBeNull();
  });

  test("anything else is an error naming the value", () => {
    expect(parseSlurmTime("2h")).toContain("--time=2h: not a Slurm time");
  });
});

describe("parseSlurmMemory", () => {
  test("units K, M (default), G, T become MiB", () => {
    expect(parseSlurmMemory("mem", "16000")).toBe(16000);
    expect(parseSlurmMemory("mem", "16G")).toBe(16384);
    expect(parseSlurmMemory("mem", "1T")).toBe(1_048_576);
    expect(parseSlurmMemory("mem", "2048K")).toBe(2);
    expect(parseSlurmMemory("mem-per-cpu", "lots")).toContain("--mem-per-cpu=lots");
  });
});

describe("convertSbatch", () => {
  test("long and short forms, attached and separate values, mean the same", () => {
    // Given one job written four ways
    const forms = [
      "#SBATCH --job-name=a --time=10 --cpus-per-task=2",
      "#SBATCH --job-name a --time 10 --cpus-per-task 2",
      "#SBATCH -J a -t 10 -c 2",
      "#SBATCH -Ja -t10 -c2",
    ];
    // When each is converted
    const specs = forms.map((header) => convertSbatch(`#!/bin/bash\n${header}\necho hi\n`, "x").spec);
    // Then every form gives the same spec
    for (const spec of specs) {
      expect(spec).toMatchObject({ name: "a", timeout: "10m", env: { SLURM_CPUS_PER_TASK: 2 } });
      expect(spec).toEqual(specs[0]);
    }
  });

  test("the last of a repeated directive wins, as on sbatch's command line", () => {
    const { spec } = convertSbatch("#!/bin/bash\n#SBATCH -t 10\n#SBATCH --time=20\necho\n", "x");
    expect(spec.timeout).toBe("20m");
  });

  test("directives stop at the first command; later ones are kept in the body and warned about", () => {
    // Given a directive after the first command
    const script = "#!/bin/bash\n#SBATCH -t 10\n\n# comment\necho start\n#SBATCH -t 99\necho end\n";
    // When it is converted
    const { spec, warnings } = convertSbatch(script, "x");
    // Then the early one applies, the late one is a warning on its line
    expect(spec.timeout).toBe("10m");
    expect(warnings).toEqual([{ line: 6, message: expect.stringContaining("after the first command") }]);
    expect(spec.command).toContain("#SBATCH -t 99");
  });

  test("indented or doubled #SBATCH lines are plain comments, as in sbatch", () => {
    const { spec, warnings } = convertSbatch("#!/bin/bash\n  #SBATCH -t 10\n##SBATCH -t 20\necho\n", "x");
    expect(spec.timeout).toBeUndefined();
    expect(warnings).toEqual([]);
  });

  test("every unsupported or unknown directive is a warning with its line; none is dropped", () => {
    // Given five directives spawn does not map
    const script = [
      "#!/bin/bash",
      "#SBATCH -p gpu",
      "#SBATCH --qos=high --exclusive",
      "#SBATCH --frobnicate=3",
      "#SBATCH --gres=gpu:v100:2,nvme:1",
      "echo",
    ].join("\n");
    // When it is converted
    const { warnings, spec } = convertSbatch(script, "x");
    // Then each one is listed
    expect(warnings.map((w) => [w.line, w.message.split(":")[0]])).toEqual([
      [2, "-p gpu"],
      [3, "--qos=high"],
      [3, "--exclusive"],
      [4, "--frobnicate=3"],
      [5, "--gres=nvme"],
      [5, "GPU type v100 is not mapped"],
    ]);
    // And the GPU count still maps
    expect(spec.resources).toEqual({ gpus: 2 });
  });

  test("--gpus-per-task multiplies by tasks per node", () => {
    const { spec } = convertSbatch("#!/bin/bash\n#SBATCH --ntasks-per-node=4 --gpus-per-task=2\necho\n", "x");
    expect(spec.resources).toEqual({ gpus: 8 });
    expect(spec.env).toMatchObject({ SLURM_NTASKS_PER_NODE: 4, SLURM_NTASKS: 4, SLURM_GPUS_ON_NODE: 8 });
  });

  test("an array becomes one task per index, with SLURM_ARRAY_TASK_ID set from it", () => {
    // Given a stepped, throttled array
    const { spec, notes } = convertSbatch(
      "#!/bin/bash\n#SBATCH --array=1-9:4%2\necho $SLURM_ARRAY_TASK_ID\n",
      "x",
    );
    // Then the ids are the values of one parameter and the throttle caps concurrency
    expect(spec.params).toEqual({ grid: { slurm_array_task_id: { range: [1, 10, 4] } } });
    expect(spec.max_instances).toBe(2);
    expect(spec.resources).toEqual({ slots: 1 });
    expect(spec.command).toContain("export SLURM_ARRAY_TASK_ID={{slurm_array_task_id}}");
    expect(notes.map((n) => n.field)).toContain("max_instances");
    // And the spec is valid
    expect(() => parseSpec(spec)).not.toThrow();
  });

  test("the body is single-quoted for its interpreter, with {{ split so spawn never renders it", () => {
    const { spec } = convertSbatch("#!/bin/bash -l\necho 'it''s' {{ x }}\n", "job.sbatch");
    expect(spec.command).toContain(`exec bash -l -c 'echo '\\''it'\\'''\\''s'\\'' {''{ x }}\n' 'job'`);
    expect(spec.name).toBe("job");
  });

  test("a long --time stretches the instance ttl past one job", () => {
    const { spec } = convertSbatch("#!/bin/bash\n#SBATCH -t 3-00:00:00\necho\n", "x");
    expect(spec).toMatchObject({ timeout: "3d", ttl: "3d1h" });
  });

  test("bad input names every bad line", () => {
    // Given several bad directives
    const problems = problemsOf(
      [
        "#!/bin/bash",
        "#SBATCH --array=5-1",
        "#SBATCH --time=2h",
        "#SBATCH -c zero --mem=lots",
        "#SBATCH --job-name",
        "echo",
      ].join("\n"),
    );
    // Then each is reported with its line
    expect(problems.map((p) => p.line)).toEqual([2, 3, 4, 4, 5]);
    expect(problems[0]?.message).toContain("--array=5-1");
    expect(problems[4]?.message).toBe("--job-name needs a value");
  });

  test.each([
    ["echo no shebang\n", 1, "the first line must be #!"],
    ["#!/usr/bin/perl\nprint 1;\n", 1, "interpreter"],
    ["#!/bin/bash\r\necho\r\n", 1, "DOS line breaks"],
    ["#!/bin/bash\n#SBATCH -t 10\n# only comments\n", 3, "no commands"],
    ["#!/bin/bash\n#SBATCH --job-name='unterminated\necho\n", 2, "unterminated"],
  ])("rejects %j", (script, line, message) => {
    const problems = problemsOf(script);
    expect(problems[0]).toEqual({ line, message: expect.stringContaining(message) });
  });
});
