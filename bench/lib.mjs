/**
 * Shared helpers for the benchmarks: running commands with a time limit, a private
 * SPAWN_HOME per run that is always stopped and removed, /proc readers, statistics.
 *
 * Everything here drives the built CLI (bin/spawn.js → dist/cli.js) as a user would.
 */
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

// The AWS SDK warns about Node 20 on every client; the CLI silences it the same way (bin/spawn.js).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");
export const OUT_DIR = join(ROOT, "bench", "out");

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * The CLI the benchmarks run. dist/ is copied once per benchmark process into a private snapshot
 * (bin/, dist/, package.json, and a link to node_modules), so a `npm run build` by someone else
 * during a run cannot mix two builds; the control plane and agents are started from the
 * snapshot too (they sit next to dist/cli.js). `SPAWN_BENCH_NO_SNAPSHOT=1` runs ./dist directly.
 */
let snapshot;

export function spawnBin() {
  requireBuild();
  if (process.env.SPAWN_BENCH_NO_SNAPSHOT === "1") return join(ROOT, "bin", "spawn.js");
  if (!snapshot) {
    const dir = mkdtempSync(join(os.tmpdir(), "spawn-bench-build-"));
    cpSync(join(ROOT, "bin"), join(dir, "bin"), { recursive: true });
    cpSync(join(ROOT, "dist"), join(dir, "dist"), { recursive: true });
    cpSync(join(ROOT, "package.json"), join(dir, "package.json"));
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
    snapshot = { dir, dist: distHashes(join(dir, "dist")) };
    process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  }
  return join(snapshot.dir, "bin", "spawn.js");
}

/** Short sha256 of each built file: which build was measured. */
export function distHashes(dir = join(ROOT, "dist")) {
  const out = {};
  for (const f of ["cli.js", "agent.js", "local-server.js"]) {
    try {
      out[f] = createHash("sha256")
        .update(readFileSync(join(dir, f)))
        .digest("hex")
        .slice(0, 12);
    } catch {
      out[f] = null;
    }
  }
  return out;
}

/** The build the benchmarks ran (hashes of the snapshot), or undefined before the first run. */
export const measuredBuild = () => snapshot?.dist;

/** Fails early, with the fix, when dist/ has not been built. */
export function requireBuild() {
  for (const f of ["cli.js", "agent.js", "local-server.js"]) {
    if (!existsSync(join(ROOT, "dist", f))) {
      throw new Error(`dist/${f} is missing: run \`npm run build\` first`);
    }
  }
}

/**
 * Runs a command; resolves (never rejects) with its exit status, output and wall time.
 * `ms` is measured from just before spawn() to the child's exit. On timeout the child's
 * whole process group gets SIGKILL and `timedOut` is true.
 */
export function runCmd(cmd, args, { env = process.env, cwd = ROOT, timeoutMs = 60_000 } = {}) {
  return new Promise((resolvePromise) => {
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    let exitMs;
    let exit;
    const t0 = performance.now();
    const child = spawn(cmd, args, { env, cwd, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.on("data", (d) => {
      stdout += d;
    });
    child.stderr.on("data", (d) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }, timeoutMs);
    child.on("exit", (code, signal) => {
      exitMs = performance.now() - t0;
      exit = { code, signal };
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      resolvePromise({
        code: -1,
        signal: null,
        stdout,
        stderr: String(error),
        ms: performance.now() - t0,
        timedOut,
      });
    });
    child.on("close", () => {
      clearTimeout(timer);
      resolvePromise({
        code: exit?.code ?? -1,
        signal: exit?.signal ?? null,
        stdout,
        stderr,
        ms: exitMs ?? performance.now() - t0,
        timedOut,
      });
    });
  });
}

/** Throws with the command's stderr when it failed or timed out. */
export function check(result, what) {
  if (result.timedOut) throw new Error(`${what}: timed out after ${(result.ms / 1000).toFixed(1)} s`);
  if (result.code !== 0) {
    throw new Error(`${what}: exit ${result.code ?? result.signal}\n${result.stderr.trim().slice(-2000)}`);
  }
  return result;
}

/** Processes whose environment holds `SPAWN_HOME=<home>` (the control plane, agents, tasks). */
export function processesOfHome(home) {
  const marker = `SPAWN_HOME=${home}`;
  const found = [];
  let pids;
  try {
    pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  } catch {
    return found;
  }
  for (const pid of pids) {
    if (Number(pid) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(marker))
        found.push(Number(pid));
    } catch {
      // exited meanwhile, or not readable
    }
  }
  return found;
}

export function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A private SPAWN_HOME for one benchmark run. `fn(home)` gets helpers bound to it. Whatever
 * happens, the control plane is stopped (`spawn local stop`), processes started under this
 * home (agents and their tasks, found by their SPAWN_HOME) are killed by pid, and the
 * directory is removed.
 */
export async function withSpawnHome(label, fn) {
  requireBuild();
  const home = await mkdtemp(join(os.tmpdir(), `spawn-bench-${label}-`));
  const env = { ...process.env, SPAWN_HOME: home, NO_COLOR: "1", SPAWN_OWNER: "bench" };
  activeHomes.set(home, env);
  const work = join(home, "work");
  await mkdir(work, { recursive: true });
  const cli = (args, options = {}) =>
    runCmd(process.execPath, [spawnBin(), ...args], { env, cwd: work, timeoutMs: 120_000, ...options });
  const ctx = {
    home,
    env,
    work,
    cli,
    async json(args, options) {
      const r = check(await cli([...args, "--json"], options), `spawn ${args.join(" ")}`);
      return JSON.parse(r.stdout);
    },
    async writeSpec(name, text) {
      const path = join(work, name);
      await writeFile(path, text);
      return path;
    },
    serverInfo() {
      try {
        return JSON.parse(readFileSync(join(home, "server.json"), "utf8"));
      } catch {
        return undefined;
      }
    },
  };
  try {
    return await fn(ctx);
  } finally {
    const stopped = await cli(["local", "stop"], { timeoutMs: 30_000 });
    if (stopped.code !== 0) process.stderr.write(`warning: spawn local stop exited ${stopped.code}\n`);
    await killHomeProcesses(home);
    await rm(home, { recursive: true, force: true });
    activeHomes.delete(home);
  }
}

/** Homes in use, for the emergency cleanup when a benchmark is killed by its time limit or a signal. */
const activeHomes = new Map();

/** Synchronous last-resort cleanup: stop each live home's control plane, SIGKILL its processes, remove it. */
export function emergencyCleanup() {
  for (const [home, env] of activeHomes) {
    spawnSync(process.execPath, [spawnBin(), "local", "stop"], { env, timeout: 15_000, stdio: "ignore" });
    for (const pid of processesOfHome(home)) signal(pid, "SIGKILL");
    rmSync(home, { recursive: true, force: true });
  }
  activeHomes.clear();
}

/** SIGTERM, then (after up to 5 s) SIGKILL, for every process still running under `home`. */
export async function killHomeProcesses(home, graceMs = 5000) {
  let pids = processesOfHome(home);
  if (pids.length === 0) return;
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    pids = pids.filter(alive);
    if (pids.length === 0) return;
    await sleep(100);
  }
  for (const pid of pids) signal(pid, "SIGKILL");
}

function signal(pid, sig) {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/** Polls `probe()` until it returns a truthy value or `timeoutMs` passes (then throws). */
export async function waitFor(what, probe, { timeoutMs = 30_000, intervalMs = 50 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// ----------------------------------------------------------------------------------------------
// /proc

/** Resident set size and its peak, in KiB, from /proc/<pid>/status; undefined if gone. */
export function procMemory(pid) {
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (key) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
    return { rssKiB: kb("VmRSS"), hwmKiB: kb("VmHWM") };
  } catch {
    return undefined;
  }
}

const CLK_TCK = (() => {
  const r = spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" });
  return Number(r.stdout?.trim()) || 100;
})();

/**
 * When the process started, as epoch ms. /proc/<pid>/stat gives the start in clock ticks since
 * boot (resolution 1/CLK_TCK s: 10 ms); it is mapped to wall time through CLOCK_MONOTONIC
 * (process.hrtime), which counts from boot as well. /proc/stat's btime is whole seconds, so
 * adding it instead would be off by up to a second.
 */
export function procStartMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Field 22 (starttime) is index 19 after "pid (comm)".
    const sinceBootMs = (Number(fields[19]) / CLK_TCK) * 1000;
    const nowSinceBootMs = Number(process.hrtime.bigint()) / 1e6;
    return Date.now() - (nowSinceBootMs - sinceBootMs);
  } catch {
    return undefined;
  }
}

/**
 * CPU time of a process, ms: its own (utime + stime) and that of its children it has waited for
 * (cutime + cstime). `pid` may be "self". Resolution 1/CLK_TCK s.
 */
export function procCpuMs(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    const f = stat
      .slice(stat.lastIndexOf(")") + 2)
      .split(" ")
      .map(Number);
    const ms = (ticks) => (ticks / CLK_TCK) * 1000;
    return { self: ms(f[11] + f[12]), children: ms(f[13] + f[14]) };
  } catch {
    return undefined;
  }
}

export const PROC_START_RESOLUTION_MS = 1000 / CLK_TCK;

// ----------------------------------------------------------------------------------------------
// Machine and statistics

export function machineInfo() {
  let cpuModel = os.cpus()[0]?.model ?? "unknown";
  try {
    cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? cpuModel;
  } catch {
    // not Linux
  }
  let osName = `${os.type()} ${os.release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(readFileSync("/etc/os-release", "utf8"))?.[1];
    if (pretty) osName = `${pretty} (${os.type()} ${os.release()})`;
  } catch {
    // no os-release
  }
  return {
    cpuModel,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: osName,
    arch: process.arch,
    loadAverage: os.loadavg().map((x) => Math.round(x * 100) / 100),
  };
}

export function printMachine(m = machineInfo()) {
  console.log(
    `machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, node ${m.node}, ${m.os}; load ${m.loadAverage.join(" ")}`,
  );
}

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return Number.NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

export const round = (x, digits = 2) => (Number.isFinite(x) ? Number(x.toFixed(digits)) : null);

export const fmtS = (ms) => (Number.isFinite(ms) ? `${(ms / 1000).toFixed(2)} s` : "n/a");

/** True when the module was started directly (`node bench/x.mjs`), not imported by run.mjs. */
export function isMain(importMetaUrl) {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(importMetaUrl);
}

/** On Ctrl-C, SIGTERM or the time limit: clean up synchronously, then exit. */
export function installExitHandlers(name, limitMs) {
  const bail = (why, code) => {
    process.stderr.write(`\n${name}: ${why}; cleaning up\n`);
    emergencyCleanup();
    process.exit(code);
  };
  process.once("SIGINT", () => bail("interrupted", 130));
  process.once("SIGTERM", () => bail("terminated", 143));
  const watchdog = setTimeout(() => bail(`exceeded its ${limitMs / 1000} s limit`, 124), limitMs);
  watchdog.unref();
  return watchdog;
}

/**
 * Runs a benchmark's `main()` as a script: prints the machine first, bounds the whole run by
 * `limitMs` (every command inside has its own, shorter timeout too) and sets the exit code.
 */
export async function runStandalone(name, main, limitMs) {
  printMachine();
  const watchdog = installExitHandlers(name, limitMs);
  try {
    await main();
  } catch (error) {
    process.stderr.write(`${name} failed: ${error?.stack ?? error}\n`);
    process.exitCode = 1;
  } finally {
    clearTimeout(watchdog);
  }
}

/** Path of a scratch directory for one benchmark (removed by the caller). */
export function scratchDir(label) {
  return mkdtemp(join(os.tmpdir(), `spawn-bench-${label}-`));
}
