/**
 * End to end on the embedded default, through the real CLI binary: the control plane
 * starts by itself, agents are real processes, state is in dynalite on disk.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnv, cliEnv, ROOT, serverInfo, waitFor } from "../helpers/cli.js";

interface ResultRow {
  index: number;
  status: string;
  attempts: number;
  exitCode: number | null;
  params: Record<string, unknown>;
  metrics: Record<string, unknown>;
  outputs: string[];
  error: string | null;
}

interface StatusJson {
  status: string;
  counts: { pending: number; running: number; succeeded: number; failed: number; cancelled: number };
  instances: Array<{ instanceId: string; status: string; providerRef: string | null }>;
  reason: string | null;
}

let cli: CliEnv;
let specs: string;

beforeAll(() => {
  cli = cliEnv();
  specs = join(cli.home, "specs");
  mkdirSync(specs, { recursive: true });
});
afterAll(() => cli.stop());

function writeSpec(name: string, body: string): string {
  const path = join(specs, `${name}.yaml`);
  writeFileSync(path, body);
  return path;
}

function launch(spec: string, extra: string[] = []): string {
  const r = cli.run(["sweep", "launch", spec, "--json", ...extra]);
  expect(r.stderr).toBe("");
  expect(r.code).toBe(0);
  return (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
}

describe("the quickstart", () => {
  it("runs every task and reports params and metrics", () => {
    // When: the README's command
    const r = cli.run(["sweep", "launch", "templates/quickstart.yaml", "--wait", "--json"]);

    // Then: it exits 0 and every task has its params and metrics
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as StatusJson & { sweepId: string };
    expect(status.status).toBe("succeeded");
    expect(status.counts.succeeded).toBe(6);
    const results = cli.json<ResultRow[]>(["sweep", "results", (status as { sweepId: string }).sweepId]);
    expect(results).toHaveLength(6);
    const grid = results.map((t) => `${t.params.lr}/${t.params.layers}`).sort();
    expect(grid).toEqual(["0.001/2", "0.001/4", "0.01/2", "0.01/4", "0.1/2", "0.1/4"]);
    for (const t of results) {
      expect(t.status).toBe("succeeded");
      expect(t.exitCode).toBe(0);
      expect(typeof t.metrics.loss).toBe("number");
      expect(t.metrics.step).toBe(10);
      expect(t.outputs.some((o) => o.endsWith("output/result.json"))).toBe(true);
    }

    // And: the table view and --best sort work for a person
    const table = cli.run(["sweep", "results", status.sweepId, "--best", "loss:min"]);
    expect(table.code).toBe(0);
    const firstRow = table.stdout.split("\n")[1] ?? "";
    const best = [...results].sort((a, b) => (a.metrics.loss as number) - (b.metrics.loss as number))[0]!;
    expect(firstRow.split(/\s+/)[0]).toBe(String(best.index));

    // And: outputs download, one directory per task, with only that task's files
    const to = join(cli.home, "download");
    expect(cli.run(["sweep", "download", status.sweepId, "--to", to]).code).toBe(0);
    for (const t of results) {
      const result = JSON.parse(readFileSync(join(to, String(t.index), "output", "result.json"), "utf8"));
      expect(result.params).toEqual(t.params);
      expect(existsSync(join(to, String(t.index), "files", "checkpoints", `task-${t.index}.json`))).toBe(
        true,
      );
      const other = (t.index + 1) % 6;
      expect(existsSync(join(to, String(t.index), "files", "checkpoints", `task-${other}.json`))).toBe(false);
    }

    // And: logs hold what the task printed
    const logs = cli.run(["sweep", "logs", status.sweepId, "--task", "0"]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toMatch(/^task 0: lr=/);
  });
});

describe("bad input", () => {
  it("an invalid spec exits 2, names the field, and creates nothing", () => {
    // Given
    const before = cli.json<unknown[]>(["sweep", "list"]);
    const bad = writeSpec(
      "bad",
      "name: bad\ncommand: echo {{x}}\nparams: { grid: { x: [1] } }\nresources: { gpus: 1.5 }\nretyr: {}\n",
    );

    // When
    const r = cli.run(["sweep", "launch", bad]);

    // Then
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("resources.gpus");
    expect(r.stderr).toContain("retyr: unknown key");
    expect(cli.json<unknown[]>(["sweep", "list"])).toEqual(before);
  });

  it("names an unknown {{reference}} in the command", () => {
    const bad = writeSpec(
      "badref",
      "name: badref\ncommand: echo {{lr}} {{nope}}\nparams: { grid: { lr: [1] } }\n",
    );
    const r = cli.run(["sweep", "launch", bad]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/command: \{\{nope\}\} is not a parameter/);
  });

  it("applies --set before validation, and rejects a bad value it sets", () => {
    const spec = writeSpec("settable", "name: settable\ncommand: 'true'\n");
    const ok = cli.run(["sweep", "launch", spec, "--dry-run", "--json", "--set", "retry.max_attempts=4"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout).spec.retry.max_attempts).toBe(4);
    const bad = cli.run(["sweep", "launch", spec, "--dry-run", "--set", "max_instances=0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("max_instances");
  });

  it("a missing spec file exits 2 and an unknown sweep exits 3", () => {
    expect(cli.run(["sweep", "launch", join(specs, "missing.yaml")]).code).toBe(2);
    const r = cli.run(["sweep", "status", "no-such-sweep"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('sweep "no-such-sweep" not found');
  });
});

describe("--dry-run", () => {
  it("prints the plan and launches nothing, not even the control plane", () => {
    // Given: a home where nothing has ever run
    const fresh = cliEnv("spawn-dry-");
    try {
      // When
      const r = fresh.run(["sweep", "launch", "templates/quickstart.yaml", "--dry-run", "--json"]);

      // Then
      expect(r.code, r.stderr).toBe(0);
      const plan = JSON.parse(r.stdout);
      expect(plan.dryRun).toBe(true);
      expect(plan.tasks).toBe(6);
      expect(serverInfo(fresh.home)).toBeUndefined();
      expect(existsSync(join(fresh.home, "db"))).toBe(false);
    } finally {
      fresh.stop();
    }
  });
});

describe("parameters reach the task byte-exact", () => {
  it("through {{name}}, SPAWN_PARAM_* and the params file, and nothing in them runs", () => {
    // Given: values that break naive quoting
    const evil = [
      `it's "quoted"`,
      "two  spaces\tand a tab",
      "$(touch pwned)",
      "`touch pwned`",
      "; touch pwned #",
      "line one\nline two\n",
      "naïve café 日本語 🚀",
      "-n",
      "",
      "\\back\\slash\\",
    ];
    const spec = writeSpec(
      "evil",
      [
        "name: evil",
        "command: |",
        `  printf '%s' {{p}} > "$SPAWN_OUTPUT_DIR/arg.bin"`,
        `  printf '%s' "$SPAWN_PARAM_P" > "$SPAWN_OUTPUT_DIR/env.bin"`,
        `  cp "$SPAWN_PARAMS_FILE" "$SPAWN_OUTPUT_DIR/params.json"`,
        "params:",
        `  list: ${JSON.stringify(evil.map((p) => ({ p })))}`,
        "max_instances: 2",
      ].join("\n"),
    );

    // When
    const sweepId = launch(spec);
    const done = cli.run(["sweep", "status", sweepId, "--watch", "--json"]);
    expect(done.code, done.stderr).toBe(0);
    expect((JSON.parse(done.stdout) as StatusJson).status).toBe("succeeded");
    const to = join(cli.home, "evil-out");
    expect(cli.run(["sweep", "download", sweepId, "--to", to]).code).toBe(0);

    // Then
    evil.forEach((value, index) => {
      const dir = join(to, String(index), "output");
      expect(readFileSync(join(dir, "arg.bin")).equals(Buffer.from(value, "utf8"))).toBe(true);
      expect(readFileSync(join(dir, "env.bin")).equals(Buffer.from(value, "utf8"))).toBe(true);
      expect(JSON.parse(readFileSync(join(dir, "params.json"), "utf8"))).toEqual({ p: value });
    });
    const pwned = execFileSync(
      "find",
      [cli.home, ROOT, "-name", "pwned", "-not", "-path", "*/node_modules/*"],
      {
        encoding: "utf8",
      },
    );
    expect(pwned).toBe("");
  });
});

describe("retries", () => {
  it("retries what the policy allows, fails what it doesn't, and `retry --failed` re-runs", () => {
    // When: the template that fails on purpose
    const r = cli.run(["sweep", "launch", "templates/flaky.yaml", "--wait", "--json"]);

    // Then: the sweep failed (exit 1) because one task is broken
    expect(r.code).toBe(1);
    const status = JSON.parse(r.stdout) as StatusJson & { sweepId: string };
    expect(status.status).toBe("failed");
    const results = cli.json<ResultRow[]>(["sweep", "results", status.sweepId]);
    const [a, b, broken] = results;
    expect(a?.status).toBe("succeeded");
    expect(a?.attempts).toBe(2);
    expect(a?.metrics.recovered).toBe(1);
    expect(b?.status).toBe("succeeded");
    expect(broken?.status).toBe("failed");
    expect(broken?.attempts).toBe(1);
    expect(broken?.exitCode).toBe(3);
    expect(broken?.error).toContain("not in retry.on_exit_codes");

    // And: retry --failed runs only the failed task again
    const retried = cli.json<{ retried: number[] }>(["sweep", "retry", status.sweepId, "--failed"]);
    expect(retried.retried).toEqual([2]);
    const again = cli.run(["sweep", "status", status.sweepId, "--watch", "--json"]);
    expect((JSON.parse(again.stdout) as StatusJson).status).toBe("failed");
    const after = cli.json<ResultRow[]>(["sweep", "results", status.sweepId]);
    expect(after[2]?.attempts).toBe(2);
    expect(after[0]?.attempts).toBe(2);
  });
});

describe("cancel", () => {
  it("stops running tasks, never starts pending ones, and sticks", async () => {
    // Given: long tasks, two running at once
    const spec = writeSpec(
      "long",
      "name: long\ncommand: sleep 60\nparams: { grid: { i: { range: [0, 6] } } }\nmax_instances: 2\ngrace: 2s\n",
    );
    const sweepId = launch(spec);
    await waitFor("two running tasks", () => {
      const s = cli.json<StatusJson>(["sweep", "status", sweepId]);
      return s.counts.running === 2 ? s : undefined;
    });

    // When
    const c = cli.json<{ changed: boolean; status: string }>(["sweep", "cancel", sweepId]);

    // Then: cancelled at once, every task ends cancelled, every agent exits
    expect(c).toMatchObject({ changed: true, status: "cancelled" });
    const settled = await waitFor("tasks and agents to stop", () => {
      const s = cli.json<StatusJson>(["sweep", "status", sweepId]);
      const live = s.instances.filter((i) => i.status !== "terminated");
      return s.counts.cancelled === 6 && live.length === 0 ? s : undefined;
    });
    expect(settled.status).toBe("cancelled");

    // And: nothing restarts it
    await new Promise((r) => setTimeout(r, 1500));
    const later = cli.json<StatusJson>(["sweep", "status", sweepId]);
    expect(later.status).toBe("cancelled");
    expect(later.counts.running + later.counts.pending).toBe(0);
    expect(cli.run(["sweep", "retry", sweepId]).code).toBe(2);
    expect(cli.json<{ changed: boolean }>(["sweep", "cancel", sweepId]).changed).toBe(false);
  });
});

describe("an agent killed with SIGKILL mid-task", () => {
  it("loses its lease; another agent re-runs the task; every task ends with one result", async () => {
    // Given: short leases so the test is quick, tasks that take a few seconds
    const spec = writeSpec(
      "kill9",
      [
        "name: kill9",
        "command: |",
        `  sleep 3; echo '{"done": 1}' >> "$SPAWN_METRICS_FILE"`,
        "params: { grid: { i: { range: [0, 4] } } }",
        "max_instances: 2",
        "lease: 2s",
      ].join("\n"),
    );
    const sweepId = launch(spec);
    const victim = await waitFor("a running agent", () => {
      const s = cli.json<StatusJson>(["sweep", "status", sweepId]);
      return s.counts.running > 0 ? s.instances.find((i) => i.status === "running") : undefined;
    });
    const pid = Number(victim.providerRef);
    expect(pid).toBeGreaterThan(1);

    // When
    process.kill(pid, "SIGKILL");

    // Then
    const done = cli.run(["sweep", "status", sweepId, "--watch", "--json"]);
    const status = JSON.parse(done.stdout) as StatusJson;
    expect(status.status).toBe("succeeded");
    const results = cli.json<ResultRow[]>(["sweep", "results", sweepId]);
    expect(results).toHaveLength(4);
    expect(results.every((t) => t.status === "succeeded" && t.metrics.done === 1)).toBe(true);
    expect(results.some((t) => t.attempts >= 2)).toBe(true);
    const killed = status.instances.find((i) => i.instanceId === victim.instanceId);
    expect(killed?.status).toBe("terminated");
  });
});

describe("logs --follow", () => {
  it("prints a running task's output as it comes, once, and returns when the sweep ends", () => {
    const spec = writeSpec(
      "chatty",
      'name: chatty\ncommand: |\n  for i in 1 2 3 4; do echo "line $i"; sleep 1; done\n',
    );
    const sweepId = launch(spec);
    const r = cli.run(["sweep", "logs", sweepId, "--task", "0", "--follow"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("line 1\nline 2\nline 3\nline 4\n");
  });
});

describe("the local control plane", () => {
  it("shows its status, stops, and restarts on demand with its data intact", () => {
    // Given: it is running (earlier tests started it) and knows some sweeps
    const before = cli.json<Array<{ sweepId: string }>>(["sweep", "list"]);
    expect(before.length).toBeGreaterThan(0);
    const status = cli.json<{ running: boolean; pid: number }>(["local", "status"]);
    expect(status.running).toBe(true);

    // When: stopped
    expect(cli.run(["local", "stop"]).stdout).toBe("stopped\n");
    expect(cli.json<{ running: boolean }>(["local", "status"]).running).toBe(false);

    // Then: the next command starts it again, and the sweeps are still there
    const after = cli.json<Array<{ sweepId: string }>>(["sweep", "list"]);
    expect(after.map((s) => s.sweepId)).toEqual(before.map((s) => s.sweepId));
    const restarted = cli.json<{ running: boolean; pid: number }>(["local", "status"]);
    expect(restarted.running).toBe(true);
    expect(restarted.pid).not.toBe(status.pid);
  });
});

describe("setup", () => {
  it("runs once per machine before any task, and its files are in every task's directory", () => {
    // Given: a setup that counts its runs and creates a file tasks read
    const spec = writeSpec(
      "setup-ok",
      [
        "name: setup-ok",
        "workdir: setupwd",
        "setup: |",
        "  echo run >> ../setup-runs.txt",
        "  echo ready > prepared.txt",
        "command: |",
        '  cp prepared.txt "$SPAWN_OUTPUT_DIR/"',
        "params: { grid: { i: { range: [0, 4] } } }",
        "max_instances: 2",
      ].join("\n"),
    );
    mkdirSync(join(specs, "setupwd"), { recursive: true });
    writeFileSync(join(specs, "setupwd", "README"), "a workdir\n");

    // When
    const r = cli.run(["sweep", "launch", spec, "--wait", "--json"]);

    // Then: every task saw setup's file; setup ran once for two agents on this machine
    expect(r.code, r.stderr).toBe(0);
    const sweepId = (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
    const to = join(cli.home, "setup-out");
    expect(cli.run(["sweep", "download", sweepId, "--to", to]).code).toBe(0);
    for (const i of [0, 1, 2, 3])
      expect(readFileSync(join(to, String(i), "output", "prepared.txt"), "utf8")).toBe("ready\n");
    expect(readFileSync(join(cli.home, "cache", "bundles", "setup-runs.txt"), "utf8")).toBe("run\n");
  });

  it("a failing setup fails the sweep with the reason, and its log is kept", () => {
    const spec = writeSpec(
      "setup-bad",
      "name: setup-bad\nsetup: echo 'no such package' >&2; exit 7\ncommand: 'true'\nparams: { grid: { i: [1, 2, 3] } }\n",
    );
    const r = cli.run(["sweep", "launch", spec, "--wait", "--json"]);
    expect(r.code).toBe(1);
    const status = JSON.parse(r.stdout) as StatusJson & { sweepId: string };
    expect(status.status).toBe("failed");
    expect(status.reason).toMatch(/setup failed on .*: exited with code 7/);
    const logs = cli.run(["sweep", "logs", status.sweepId, "--setup"]);
    expect(logs.stdout).toContain("no such package");
  });
});
