import { describe, expect, it } from "vitest";
import {
  checkCommandTemplate,
  paramAliasEnvName,
  paramEnvName,
  paramString,
  quotedTemplateReferences,
  renderCommand,
  shellQuote,
  taskEnvironment,
  templateReferences,
} from "./contract.js";
import { AbortError } from "./errors.js";

describe("paramString / shellQuote", () => {
  it("stringifies every JSON type", () => {
    expect(paramString("a b")).toBe("a b");
    expect(paramString(0.001)).toBe("0.001");
    expect(paramString(1e-7)).toBe("1e-7");
    expect(paramString(3)).toBe("3");
    expect(paramString(true)).toBe("true");
    expect(paramString(null)).toBe("null");
    expect(paramString([1, "a"])).toBe('[1,"a"]');
    expect(paramString({ a: { b: 2 } })).toBe('{"a":{"b":2}}');
  });

  it("always single-quotes, with ' as '\\''", () => {
    expect(shellQuote("")).toBe("''");
    expect(shellQuote("abc")).toBe("'abc'");
    expect(shellQuote(7)).toBe("'7'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(shellQuote("$(touch pwned)")).toBe("'$(touch pwned)'");
    expect(shellQuote({ k: "v" })).toBe(`'{"k":"v"}'`);
  });

  it("refuses a NUL, which no argument can carry", () => {
    expect(() => shellQuote("a\0b$(x)")).toThrow(AbortError);
    expect(() => shellQuote("a\0b$(x)")).not.toThrow(/\$\(x\)/);
    expect(() => renderCommand("x {{p}}", { p: "a\0$(x)" })).toThrow(/^\{\{p\}\}: .*NUL/);
  });
});

describe("templates", () => {
  it("finds references, spaces inside braces allowed, and leaves other braces alone", () => {
    expect(templateReferences("python t.py --lr {{lr}} --n {{ n }} {{lr}} {{\tx.y-z }}")).toEqual([
      "lr",
      "n",
      "x.y-z",
    ]);
    expect(templateReferences("docker ps --format '{{.Names}}' {{ json . }} {{}}")).toEqual([]);
  });

  it("names unknown references; built-ins are always known", () => {
    expect(
      checkCommandTemplate("run {{lr}} {{oops}} {{index}} {{attempt}} {{sweep_id}} {{also}}", ["lr"]),
    ).toEqual(["oops", "also"]);
    expect(checkCommandTemplate("run {{lr}}", new Set(["lr"]))).toEqual([]);
  });

  it("renders quoted values and built-ins", () => {
    expect(
      renderCommand(
        "python t.py --lr={{lr}} --name {{ name }} --i {{index}} {{attempt}} {{sweep_id}}",
        { lr: 0.1, name: "a b" },
        {
          index: 3,
          attempt: 2,
          sweepId: "sw-1",
        },
      ),
    ).toBe("python t.py --lr='0.1' --name 'a b' --i '3' '2' 'sw-1'");
  });

  it("lets a parameter shadow a built-in", () => {
    expect(renderCommand("x {{index}}", { index: "mine" }, { index: 3, attempt: 1, sweepId: "s" })).toBe(
      "x 'mine'",
    );
  });

  it("throws naming every unknown reference", () => {
    expect(() => renderCommand("x {{a}} {{b}} {{c}}", { a: 1 })).toThrow(/\{\{b\}\}, \{\{c\}\}/);
    expect(() => renderCommand("x {{index}}", {})).toThrow(AbortError);
  });

  it("refuses references inside quotes or here-documents", () => {
    expect(quotedTemplateReferences(`echo '{{a}}' "x {{b}} y" {{c}}`)).toEqual(["a", "b"]);
    expect(quotedTemplateReferences(`echo "$(echo {{a}})" "\`echo {{b}}\`" \\'{{c}}`)).toEqual([]);
    expect(quotedTemplateReferences(`echo it\\'s {{a}} # don't {{b}}\necho {{c}}`)).toEqual([]);
    expect(quotedTemplateReferences(`echo "a\\"{{a}}" '{{b}}'"{{c}}"`)).toEqual(["a", "b", "c"]);
    expect(quotedTemplateReferences("cat <<EOF > f\n{{a}}\nEOF\necho {{b}}")).toEqual(["a"]);
    expect(quotedTemplateReferences("cat <<-'END' | tr a b\n\tx {{a}}\n\tEND\necho {{b}}")).toEqual(["a"]);
    expect(quotedTemplateReferences("cat <<< {{a}}")).toEqual([]);
    expect(() => renderCommand("echo '{{a}}'", { a: "$(touch pwned)" })).toThrow(/inside quotes/);
  });
});

describe("taskEnvironment", () => {
  const base = {
    sweepId: "sw-1",
    index: 4,
    taskCount: 10,
    attempt: 2,
    params: { "learning-rate": 0.01, Layers: 3, tag: "a b", cfg: { x: [1] }, flag: false },
    paramsFile: "/t/params.json",
    outputDir: "/t/out",
    checkpointDir: "/t/ckpt",
    metricsFile: "/t/metrics.jsonl",
    resume: true,
    specEnv: { FOO: "bar", N: 2, B: true, SPAWN_TASK_INDEX: "user", SWEEP_SIZE: "user" },
  };

  it("sets the contract variables and aliases", () => {
    expect(taskEnvironment(base)).toEqual({
      FOO: "bar",
      N: "2",
      B: "true",
      SPAWN_SWEEP_ID: "sw-1",
      SPAWN_TASK_INDEX: "4",
      SPAWN_TASK_COUNT: "10",
      SPAWN_ATTEMPT: "2",
      SPAWN_PARAMS_FILE: "/t/params.json",
      SPAWN_OUTPUT_DIR: "/t/out",
      SPAWN_CHECKPOINT_DIR: "/t/ckpt",
      SPAWN_RESUME: "1",
      SPAWN_METRICS_FILE: "/t/metrics.jsonl",
      SPAWN_RANK: "0",
      SPAWN_WORLD_SIZE: "1",
      SPAWN_PARAM_LEARNING_RATE: "0.01",
      SPAWN_PARAM_LAYERS: "3",
      SPAWN_PARAM_TAG: "a b",
      SPAWN_PARAM_CFG: '{"x":[1]}',
      SPAWN_PARAM_FLAG: "false",
      PARAM_learning_rate: "0.01",
      PARAM_Layers: "3",
      PARAM_tag: "a b",
      PARAM_cfg: '{"x":[1]}',
      PARAM_flag: "false",
      SWEEP_INDEX: "4",
      SWEEP_SIZE: "10",
      AWS_BATCH_JOB_ARRAY_INDEX: "4",
      SLURM_ARRAY_TASK_ID: "4",
      SLURM_ARRAY_TASK_COUNT: "10",
    });
  });

  it("resume 0, GPUs, and values that cannot be in an environment", () => {
    const env = taskEnvironment({
      ...base,
      resume: false,
      gpus: ["GPU-a", "GPU-b"],
      params: { p: "a\0b", q: "" },
    });
    expect(env.SPAWN_RESUME).toBe("0");
    expect(env.CUDA_VISIBLE_DEVICES).toBe("GPU-a,GPU-b");
    expect(env.SPAWN_PARAM_P).toBeUndefined();
    expect(env.SPAWN_PARAM_Q).toBe("");
    expect(taskEnvironment({ ...base, gpus: [] }).CUDA_VISIBLE_DEVICES).toBe("");
    expect("CUDA_VISIBLE_DEVICES" in taskEnvironment(base)).toBe(false);
  });

  it("names", () => {
    expect(paramEnvName("learning-rate.x")).toBe("LEARNING_RATE_X");
    expect(paramAliasEnvName("learning-rate.X")).toBe("PARAM_learning_rate_X");
  });
});
