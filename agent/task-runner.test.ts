import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { renderCommand, taskEnvironment } from "../core/contract.js";
import type { Params } from "../core/spec.js";
import { runTask } from "./task-runner.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-runner-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const run = (command: string, extra: Partial<Parameters<typeof runTask>[0]> = {}) =>
  runTask({ command, cwd: dir, env: {}, logFile: join(dir, "logs", "task.log"), graceMs: 300, ...extra });
const log = () => readFile(join(dir, "logs", "task.log"), "utf8");

/**
 * True while a process of group `pgid` (or, with `single`, process `pgid`) is alive, zombies not
 * counted: PID 1 in a container may be slow to reap orphans, which kill(pid, 0) would still see.
 */
function alive(pid: number, single = false): boolean {
  if (existsSync("/proc/self/stat")) {
    for (const entry of readdirSync("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      } catch {
        continue;
      }
      // pid (comm) state ppid pgrp ...
      const [state, , pgrp] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const match = single ? Number(entry) === pid : Number(pgrp) === pid;
      if (match && state !== "Z") return true;
    }
    return false;
  }
  try {
    process.kill(single ? pid : -pid, 0);
    return true;
  } catch {
    return false;
  }
}
const groupAlive = (pgid: number) => alive(pgid);

describe("runTask", () => {
  it("propagates exit codes", async () => {
    const ok = await run("true");
    expect(ok).toMatchObject({ exitCode: 0, signal: null, timedOut: false, cancelled: false });
    expect(ok.error).toBeUndefined();
    expect(ok.finishedAt).toBeGreaterThanOrEqual(ok.startedAt);
    expect((await run("exit 3")).exitCode).toBe(3);
    expect((await run("kill -9 $$")).signal).toBe("SIGKILL");
  });

  it("captures stdout and stderr in arrival order, appending", async () => {
    await run("echo one; echo two >&2; echo three");
    await run("echo four >&2");
    expect(await log()).toBe("one\ntwo\nthree\nfour\n");
  });

  it("makes the log directory again if it was removed", async () => {
    await run("echo a");
    await rm(join(dir, "logs"), { recursive: true });
    expect((await run("echo b")).error).toBeUndefined();
    expect(await log()).toBe("b\n");
  });

  it("gives the command /dev/null as stdin", async () => {
    const outcome = await run("cat; echo done");
    expect(outcome.exitCode).toBe(0);
    expect(await log()).toBe("done\n");
  });

  it("passes the environment over the agent's", async () => {
    process.env.SPAWN_TEST_INHERITED = "inherited";
    try {
      await run('echo "$FOO|$SPAWN_TEST_INHERITED|$SPAWN_TASK_INDEX|$PWD"', {
        env: taskEnvironment({
          sweepId: "sw",
          index: 7,
          taskCount: 9,
          attempt: 1,
          params: {},
          paramsFile: "p",
          outputDir: "o",
          checkpointDir: "c",
          metricsFile: "m",
          resume: false,
          specEnv: { FOO: "bar" },
        }),
      });
    } finally {
      delete process.env.SPAWN_TEST_INHERITED;
    }
    expect(await log()).toBe(`bar|inherited|7|${dir}\n`);
  });

  it("reports a start failure instead of throwing", async () => {
    const outcome = await run("true", { cwd: join(dir, "missing") });
    expect(outcome.exitCode).toBeNull();
    expect(outcome.error).toMatch(/missing/);
    const badLog = await runTask({
      command: "true",
      cwd: dir,
      env: {},
      logFile: join(dir, "f", "x"),
      graceMs: 1,
    }).then(() =>
      runTask({ command: "true", cwd: dir, env: {}, logFile: join(dir, "f", "x", "y"), graceMs: 1 }),
    );
    expect(badLog.error).toMatch(/log file/);
  });

  const nasty: Record<string, string> = {
    singleQuotes: "it's 'quoted'",
    doubleQuotes: 'say "hi"',
    spaces: "  a  b  ",
    subst: "$(touch pwned)",
    backticks: "`touch pwned`",
    semicolon: ";rm -rf x; touch pwned",
    newlines: "line1\nline2\n\n",
    tabs: "a\tb\t",
    unicode: "héllo wörld 🚀 漢字 日本語 ñ",
    dash: "-n",
    dashE: "-e \\n",
    empty: "",
    glob: "* ?",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal ${...} is the point
    variables: "$HOME ${PATH} $1 $@",
    backslashes: "a\\b\\\\c\\'",
    mixed: `'"$(\`;|&<>{}[]!#~%^*()`,
  };

  it.each(Object.entries(nasty))(
    "passes %s byte-exact through {{p}} and SPAWN_PARAM_P",
    async (_name, value) => {
      const params: Params = { p: value };
      const command = renderCommand(
        `printf '%s' {{p}} > out.bin; printf '%s' "$SPAWN_PARAM_P" > env.bin`,
        params,
      );
      const env = taskEnvironment({
        sweepId: "sw",
        index: 0,
        taskCount: 1,
        attempt: 1,
        params,
        paramsFile: "p",
        outputDir: "o",
        checkpointDir: "c",
        metricsFile: "m",
        resume: false,
        specEnv: {},
      });
      const outcome = await run(command, { env });
      expect(outcome.exitCode).toBe(0);
      const expected = Buffer.from(value, "utf8");
      expect(Buffer.compare(await readFile(join(dir, "out.bin")), expected)).toBe(0);
      expect(Buffer.compare(await readFile(join(dir, "env.bin")), expected)).toBe(0);
      expect(existsSync(join(dir, "pwned"))).toBe(false);
      expect(existsSync(join(dir, "x"))).toBe(false);
    },
  );

  it("times out with SIGTERM, then SIGKILL after the grace period", async () => {
    const t0 = Date.now();
    const outcome = await run("trap 'echo got TERM' TERM; while :; do sleep 0.05; done", {
      timeoutMs: 200,
      graceMs: 300,
    });
    const took = Date.now() - t0;
    expect(outcome.timedOut).toBe(true);
    expect(outcome.cancelled).toBe(false);
    expect(outcome.exitCode).toBeNull();
    expect(outcome.signal).toBe("SIGKILL");
    expect(took).toBeGreaterThanOrEqual(450);
    expect(took).toBeLessThan(3000);
    const text = await log();
    expect(text).toMatch(/\[spawn\] .* timed out after 200 ms: SIGTERM/);
    expect(text).toContain("got TERM");
  });

  it("ends at once when the task exits on SIGTERM, with its own exit status", async () => {
    const t0 = Date.now();
    const outcome = await run("trap 'exit 42' TERM; while :; do sleep 0.05; done", {
      timeoutMs: 100,
      graceMs: 10_000,
    });
    expect(outcome).toMatchObject({ timedOut: true, exitCode: 42, signal: null });
    expect(Date.now() - t0).toBeLessThan(3000);
  });

  it("keeps the grace period for the group when the shell dies first", async () => {
    // The shell dies on SIGTERM; its child traps TERM, takes 300 ms to "checkpoint", then writes a file.
    const outcome = await run(
      "sh -c 'trap \"sleep 0.3; echo saved > ckpt; exit 0\" TERM; while :; do sleep 0.02; done'; echo unreachable",
      { timeoutMs: 200, graceMs: 5000 },
    );
    expect(outcome.timedOut).toBe(true);
    expect(outcome.durationMs).toBeLessThan(3000);
    expect(await log()).not.toContain("unreachable");
    expect(await readFile(join(dir, "ckpt"), "utf8")).toBe("saved\n");
  });

  it("cancels on abort with the same sequence", async () => {
    const controller = new AbortController();
    let pid = 0;
    const running = run("trap '' TERM; sleep 100", {
      signal: controller.signal,
      graceMs: 200,
      onSpawn: (p) => {
        pid = p;
      },
    });
    setTimeout(() => controller.abort(), 100);
    const outcome = await running;
    expect(outcome).toMatchObject({ cancelled: true, timedOut: false, exitCode: null, signal: "SIGKILL" });
    expect(outcome.durationMs).toBeLessThan(3000);
    expect(pid).toBeGreaterThan(0);
    expect(groupAlive(pid)).toBe(false);
  });

  it("does not start a task whose signal already fired", async () => {
    const controller = new AbortController();
    controller.abort();
    const outcome = await run("touch started", { signal: controller.signal });
    expect(outcome).toMatchObject({ cancelled: true, exitCode: null });
    expect(existsSync(join(dir, "started"))).toBe(false);
  });

  it("kills background children when the task ends", async () => {
    let pid = 0;
    const outcome = await run("sleep 100 & echo $! > bg.pid", {
      onSpawn: (p) => {
        pid = p;
      },
    });
    expect(outcome.exitCode).toBe(0);
    const bg = Number((await readFile(join(dir, "bg.pid"), "utf8")).trim());
    // SIGKILL is delivered before runTask resolves; the orphan may stay a zombie a while, which is fine.
    expect(alive(bg, true)).toBe(false);
    expect(groupAlive(pid)).toBe(false);
  });

  it("runs many short tasks quickly", async () => {
    const t0 = Date.now();
    const outcomes = await Promise.all(
      Array.from({ length: 100 }, (_, i) => run("true", { logFile: join(dir, "logs", `${i}.log`) })),
    );
    expect(outcomes.every((o) => o.exitCode === 0)).toBe(true);
    expect(Date.now() - t0).toBeLessThan(10_000);
  });
});
