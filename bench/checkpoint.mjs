/**
 * Checkpoint overhead and recovery time, on the embedded default, through the built CLI.
 *
 * Overhead: one sweep, run on one agent (one task at a time), whose tasks are the same CPU-bound
 * job (sha256 over a buffer, a fixed amount of work) that writes a checkpoint of `ckptMiB` MiB
 * every `everyMs` of work: to $SPAWN_CHECKPOINT_DIR (synced by the agent every 2 s) or to a
 * directory the agent does not sync. Both kinds run interleaved in the same sweep; each task
 * reports its own elapsed time. Overhead = median(sync) / median(no sync) − 1. Target < 5%.
 *
 * Recovery: one task, chaos mode `preempt=1` with the notice 6 s into the attempt, EC2's 5 s IMDS
 * poll, a `ckptMiB` checkpoint. Timeline, from the logs and records:
 *   notice posted (control plane log) → seen by the agent (agent log) → task stopped, checkpoint
 *   synced, task released, instance deregistered ("agent exiting") → replacement instance recorded
 *   (its launchedAt) → replacement agent ready → task running again with its checkpoint restored
 *   (the time the resumed task writes first). Target < 60 s (plus instance boot on aws).
 *
 *   node bench/checkpoint.mjs [--reps 3] [--ckpt-mib 32]
 */
import { readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { check, fmtS, isMain, median, round, runStandalone, waitFor, withSpawnHome } from "./lib.mjs";

export const NAME = "checkpoint";
export const TARGET_OVERHEAD = 0.05;
export const TARGET_RECOVERY_MS = 60_000;

/** The task: fixed CPU work, a checkpoint every `everyMs` of it, SIGTERM checkpoints and exits. */
const WORK = `
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
const [mode, units, ckptMiB, everyUnits, marks] = process.argv.slice(2);
const dir = mode === "nosync" ? join(process.cwd(), "unsynced") : process.env.SPAWN_CHECKPOINT_DIR;
mkdirSync(dir, { recursive: true });
const file = join(dir, "state.bin");
let done = 0;
if (process.env.SPAWN_RESUME === "1") {
  writeFileSync(join(marks, "resumed-" + process.env.SPAWN_SWEEP_ID), String(Date.now()));
  done = readFileSync(file).readUInt32LE(0);
}
const state = Buffer.alloc(Number(ckptMiB) * 1024 * 1024, 7);
const save = () => {
  state.writeUInt32LE(done, 0);
  writeFileSync(file + ".tmp", state);
  renameSync(file + ".tmp", file);
};
process.on("SIGTERM", () => { save(); process.exit(143); });
const block = Buffer.alloc(1024 * 1024, 1);
const t0 = performance.now();
while (done < Number(units)) {
  for (let i = 0; i < 8; i++) createHash("sha256").update(block).digest();
  done++;
  if (done % Number(everyUnits) === 0) save();
  if (done % 50 === 0) await new Promise((r) => setImmediate(r));
}
const elapsed = performance.now() - t0;
writeFileSync(process.env.SPAWN_METRICS_FILE, JSON.stringify({ elapsed_ms: elapsed, mode }) + "\\n");
`;

function logTime(file, msg) {
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes(`"msg":"${msg}"`)) continue;
    try {
      return Date.parse(JSON.parse(line).time);
    } catch {
      // a torn line
    }
  }
  return undefined;
}

export async function main({ reps = 3, ckptMiB = 32, log = console.log } = {}) {
  const result = { name: NAME, reps, ckptMiB };
  await withSpawnHome("checkpoint", async (home) => {
    const dir = join(home.work, "job");
    const marks = join(home.home, "marks");
    await mkdir(dir, { recursive: true });
    await mkdir(marks, { recursive: true });
    await writeFile(join(dir, "work.mjs"), WORK);

    // A unit is 8 × sha256 of 1 MiB (~32 ms on the 2-vCPU VM here): ~20 s a task, a checkpoint every ~1.6 s.
    const units = 600;
    const list = [];
    for (let rep = 1; rep <= reps; rep++) for (const mode of ["sync", "nosync"]) list.push({ mode, rep });
    const overheadSpec = await home.writeSpec(
      "overhead.yaml",
      [
        "name: ckpt-overhead",
        "workdir: job",
        `command: node work.mjs {{mode}} ${units} ${ckptMiB} 50 ${marks}`,
        `params: { list: ${JSON.stringify(list)} }`,
        "max_instances: 1",
        "checkpoint: { interval: 2s }",
        "",
      ].join("\n"),
    );
    log(
      `  overhead: ${list.length} tasks, one at a time, ${ckptMiB} MiB checkpoint every 50 of ${units} work units`,
    );
    const sweep = JSON.parse(
      check(
        await home.cli(["sweep", "launch", overheadSpec, "--wait", "--json"], { timeoutMs: 900_000 }),
        "overhead sweep",
      ).stdout,
    );
    const rows = await home.json(["sweep", "results", sweep.sweepId]);
    const by = (mode) => rows.filter((r) => r.params.mode === mode).map((r) => r.metrics.elapsed_ms);
    const withSync = by("sync");
    const without = by("nosync");
    const overhead = median(withSync) / median(without) - 1;
    result.overhead = {
      withSyncMs: withSync.map((x) => round(x, 0)),
      withoutSyncMs: without.map((x) => round(x, 0)),
      medianWithMs: round(median(withSync), 0),
      medianWithoutMs: round(median(without), 0),
      overhead: round(overhead, 4),
      targetMet: overhead < TARGET_OVERHEAD,
    };
    log(
      `  with sync ${withSync.map((x) => fmtS(x)).join(", ")}; without ${without.map((x) => fmtS(x)).join(", ")}: overhead ${(overhead * 100).toFixed(1)}%`,
    );

    // Recovery: the notice 6 s in, a long task so it is still running then.
    const recoverySpec = await home.writeSpec(
      "recovery.yaml",
      [
        "name: ckpt-recovery",
        "workdir: job",
        `command: node work.mjs sync 5000 ${ckptMiB} 50 ${marks}`,
        "max_instances: 1",
        "checkpoint: { interval: 2s }",
        "chaos: { preempt: 1, min_delay: 6s, max_delay: 6s }",
        "",
      ].join("\n"),
    );
    const runs = [];
    for (let rep = 1; rep <= reps; rep++) {
      const { sweepId } = JSON.parse(
        check(await home.cli(["sweep", "launch", recoverySpec, "--json"]), "recovery sweep").stdout,
      );
      const mark = join(marks, `resumed-${sweepId}`);
      await waitFor(
        "the task to resume",
        () => {
          try {
            return readFileSync(mark, "utf8").length > 0;
          } catch {
            return false;
          }
        },
        { timeoutMs: 180_000, intervalMs: 50 },
      );
      const running = Number(readFileSync(mark, "utf8"));
      const status = await home.json(["sweep", "status", sweepId]);
      const [first, second] = [...status.instances].sort((a, b) => a.instanceId.localeCompare(b.instanceId));
      const agentLog = (i) => join(home.home, "instances", i.instanceId, "agent.log");
      const server = readFileSync(join(home.home, "server.log"), "utf8")
        .split("\n")
        .find((l) => l.includes("chaos: spot interruption notice posted") && l.includes(sweepId));
      const posted = Date.parse(JSON.parse(server).time);
      const seen = logTime(agentLog(first), "spot interruption notice");
      const exited = logTime(agentLog(first), "agent exiting");
      const launched = Date.parse(second.launchedAt);
      const ready = logTime(agentLog(second), "agent ready");
      const r = {
        detectMs: seen - posted,
        stopSyncReleaseMs: exited - seen,
        replacementLaunchMs: launched - exited,
        agentStartMs: ready - launched,
        claimRestoreStartMs: running - ready,
        totalMs: running - posted,
      };
      runs.push(r);
      log(
        `  recovery rep ${rep}: ${fmtS(r.totalMs)} = detect ${fmtS(r.detectMs)} + stop/sync/release ${fmtS(r.stopSyncReleaseMs)} + ` +
          `replacement launch ${fmtS(r.replacementLaunchMs)} + agent start ${fmtS(r.agentStartMs)} + claim/restore/start ${fmtS(r.claimRestoreStartMs)}`,
      );
      check(await home.cli(["sweep", "cancel", sweepId]), "cancel");
      await waitFor(
        "the sweep to wind down",
        async () => !(await home.json(["local", "status"])).activeSweeps.includes(sweepId),
        { timeoutMs: 120_000, intervalMs: 500 },
      );
    }
    const med = (k) => round(median(runs.map((r) => r[k])), 0);
    result.recovery = {
      imdsPollMs: 5000,
      medianMs: Object.fromEntries(Object.keys(runs[0]).map((k) => [k, med(k)])),
      runs: runs.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, round(v, 0)]))),
      targetMet: med("totalMs") < TARGET_RECOVERY_MS,
    };
  });
  log("");
  log(`checkpoint: overhead ${(result.overhead.overhead * 100).toFixed(1)}% (target < 5%)`);
  log(
    `  recovery median ${fmtS(result.recovery.medianMs.totalMs)} (target < 60 s): ${JSON.stringify(result.recovery.medianMs)}`,
  );
  return result;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { reps: { type: "string" }, "ckpt-mib": { type: "string" } } });
  await runStandalone(
    NAME,
    () => main({ reps: Number(values.reps ?? 3), ckptMiB: Number(values["ckpt-mib"] ?? 32) }),
    30 * 60_000,
  );
}
