/**
 * The template library: every template's spec validates, its manifest's defaults are what the
 * spec holds, `templates init` writes a copy that `sweep launch --dry-run` plans (through the
 * real CLI), Python files compile, and variables are checked by type, presence and name.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import YAML from "yaml";
import { listTemplates, userTemplatesDir } from "#cli/services/templates.js";
import { parseSpec } from "#core/spec.js";
import { pathSegments, resolveVars, TemplateManifest } from "#core/templates.js";
import { type CliEnv, cliEnv, ROOT } from "./helpers/cli.js";

const TEMPLATES = join(ROOT, "templates");
const REQUIRED = [
  "quickstart",
  "gpu-health",
  "pytorch-ddp",
  "hf-finetune",
  "lora-finetune",
  "sd-generate",
  "llm-batch",
  "mpi",
];
const project = await listTemplates({ SPAWN_HOME: join(tmpdir(), "spawn-no-user-templates") });

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv("spawn-templates-");
});
afterAll(() => cli.stop());

test("the library has every template the issue asks for, and checkpoint-demo when present", () => {
  const names = project.map((t) => t.name);
  expect(names).toEqual(expect.arrayContaining(REQUIRED));
  if (existsSync(join(TEMPLATES, "checkpoint-demo.yaml"))) expect(names).toContain("checkpoint-demo");
  const listed = cli.json<Array<{ name: string; source: string }>>(["templates", "list"]);
  expect(listed.map((t) => t.name)).toEqual(expect.arrayContaining(REQUIRED));
});

describe.each(project.map((t) => t.name))("template %s", (name) => {
  const template = project.find((t) => t.name === name)!;
  const raw = YAML.parse(readFileSync(template.specPath, "utf8"));

  test("its spec passes the schema as it is", () => {
    expect(() => parseSpec(raw, [], template.specPath)).not.toThrow();
  });

  test("each variable's default is the value its spec fields hold", () => {
    for (const [varName, v] of Object.entries(template.manifest.vars)) {
      for (const path of v.paths) {
        const held = pathSegments(path).reduce<unknown>(
          (node, key) => (node as Record<string, unknown>)?.[key],
          raw,
        );
        expect({ var: varName, path, value: held }).toEqual({ var: varName, path, value: v.default });
      }
    }
  });

  test("init with its defaults writes a spec that sweep launch --dry-run plans", () => {
    const out = join(cli.home, "init", name);
    const init = cli.run(["templates", "init", name, "-o", out, "--json"]);
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);
    const { specPath } = JSON.parse(init.stdout) as { specPath: string };
    const plan = cli.run(["sweep", "launch", specPath, "--dry-run", "--json"]);
    expect(plan.stderr).toBe("");
    expect(plan.code).toBe(0);
    expect(JSON.parse(plan.stdout)).toMatchObject({ dryRun: true, name: raw.name });
  });
});

const python = spawnSync("python3", ["--version"]).status === 0;
const pythonFiles = readdirSync(join(TEMPLATES, "ml")).filter((f) => f.endsWith(".py"));
test.skipIf(!python)(
  python
    ? "Python files compile (python3 -m py_compile)"
    : "Python files compile (skipped: python3 is not installed)",
  () => {
    // Given every script, compiled with its bytecode kept out of the tree
    const r = spawnSync(
      "python3",
      ["-m", "py_compile", ...pythonFiles.map((f) => join(TEMPLATES, "ml", f))],
      {
        env: { ...process.env, PYTHONPYCACHEPREFIX: join(tmpdir(), "spawn-pycache") },
        encoding: "utf8",
      },
    );
    // Then none has a syntax error
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(pythonFiles.length).toBeGreaterThanOrEqual(6);
  },
);

describe("variables", () => {
  const manifest = TemplateManifest.parse({
    description: "d",
    vars: {
      model: { type: "string", description: "a model id", paths: ["env.MODEL"] },
      gpus: { type: "int", description: "GPUs", default: 1, min: 1, max: 8, paths: ["resources.gpus"] },
      mode: {
        type: "string",
        description: "m",
        default: "quick",
        choices: ["quick", "full"],
        paths: ["env.M"],
      },
      lr: { type: "list", description: "lrs", default: [0.1], paths: ["params.grid.lr"] },
      t: { type: "duration", description: "limit", default: "1h", paths: ["timeout"] },
    },
  });
  const resolve = (flags: string[]) => resolveVars("demo", manifest, flags, (text) => YAML.parse(text));

  test("flags are read as the declared type over defaults", () => {
    expect(resolve(["model=m1", "gpus=4", "lr=[0.1, 0.01]", "t=90m"])).toEqual({
      model: "m1",
      gpus: 4,
      mode: "quick",
      lr: [0.1, 0.01],
      t: "90m",
    });
  });

  test.each([
    [["gpus=2"], "template demo needs --var model=…"],
    [["model=m", "nope=1"], 'template demo has no variable "nope"'],
    [["model=m", "gpus=two"], "--var gpus=two: expected a whole number"],
    [["model=m", "gpus=9"], "--var gpus=9: must be <= 8"],
    [["model=m", "mode=slow"], '--var mode=slow: must be one of "quick", "full"'],
    [["model=m", "lr=0.1"], "--var lr=0.1: expected a non-empty list"],
    [["model=m", "t=soon"], "--var t=soon: expected a duration"],
    [["model=m", "model=n"], "--var model is given twice"],
    [["model"], "expected name=value"],
  ])("%j is an error naming the variable", (flags, message) => {
    expect(() => resolve(flags)).toThrow(message);
  });

  test("a manifest whose default has the wrong type is rejected", () => {
    const r = TemplateManifest.safeParse({
      description: "d",
      vars: { gpus: { type: "int", description: "g", default: "1", paths: ["resources.gpus"] } },
    });
    expect(r.success).toBe(false);
  });
});

describe("user templates (CLI)", () => {
  beforeAll(() => {
    // Given a user template that shadows quickstart and one with a required variable
    const dir = userTemplatesDir({ SPAWN_HOME: cli.home });
    mkdirSync(join(dir, "job"), { recursive: true });
    writeFileSync(join(dir, "job", "run.sh"), "echo hi\n");
    writeFileSync(join(dir, "quickstart.yaml"), "# my own quickstart\nname: mine\ncommand: echo mine\n");
    writeFileSync(
      join(dir, "job.yaml"),
      "# a job\nname: job\nworkdir: job\ncommand: sh run.sh\nenv:\n  MODEL: placeholder # set at init\nresources:\n  gpus: 0\n",
    );
    writeFileSync(
      join(dir, "job.template.yaml"),
      YAML.stringify({
        description: "a user job",
        vars: {
          model: { type: "string", description: "the model", paths: ["env.MODEL"] },
          gpus: { type: "int", description: "GPUs", default: 0, paths: ["resources.gpus"] },
        },
      }),
    );
  });

  test("list shows user templates first-class and shadowing project ones", () => {
    const listed = cli.json<Array<{ name: string; source: string; description: string }>>([
      "templates",
      "list",
    ]);
    expect(listed.find((t) => t.name === "quickstart")).toMatchObject({
      source: "user",
      description: "my own quickstart",
    });
    expect(listed.find((t) => t.name === "job")).toMatchObject({ source: "user", description: "a user job" });
  });

  test("init applies --var values, keeps comments and copies the workdir", () => {
    const out = join(cli.home, "user-init");
    const r = cli.run(["templates", "init", "job", "--var", "model=gpt2", "--var", "gpus=2", "-o", out]);
    expect(r.code).toBe(0);
    const written = readFileSync(join(out, "job.yaml"), "utf8");
    expect(written).toContain("MODEL: gpt2 # set at init");
    expect(YAML.parse(written).resources).toEqual({ gpus: 2 });
    expect(readFileSync(join(out, "job", "run.sh"), "utf8")).toBe("echo hi\n");
  });

  test("a missing, undeclared or out-of-range variable exits 2 and writes nothing", () => {
    const cases: Array<[string[], string]> = [
      [[], "needs --var model=…"],
      [["--var", "model=x", "--var", "color=red"], 'has no variable "color"'],
      [["--var", "model=x", "--var", "gpus=100"], "resources.gpus"],
    ];
    for (const [flags, message] of cases) {
      const out = join(cli.home, "not-written");
      const r = cli.run(["templates", "init", "job", ...flags, "-o", out]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(message);
      expect(existsSync(out)).toBe(false);
    }
  });

  test("show prints variables, required ones marked; an unknown template is exit 3", () => {
    const r = cli.run(["templates", "show", "job"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/model\s+string\s+required\s+the model/);
    expect(cli.run(["templates", "show", "nope"]).code).toBe(3);
  });
});
