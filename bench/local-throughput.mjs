/**
 * Throughput of the embedded default on tasks that do nothing, against GNU parallel.
 *
 *   spawn:    1,000 tasks `true`, 4 slots on 1 instance (and the variant 4 instances × 1 slot),
 *             timed from `spawn sweep launch spec.yaml --wait` start to exit; also the part after
 *             the sweep was created (createdAt → finishedAt from `spawn sweep status <id> --json`).
 *   peer:     `parallel -j4 true ::: $(seq 1000)`, in the same run.
 *   target:   spawn within 1.5x of GNU parallel.
 *
 * A cold run (fresh SPAWN_HOME, no control plane) is reported on its own; the steady-state
 * numbers come after a warm-up sweep, as the median of `reps` repetitions, interleaved with
 * the peer so that both see the same background load.
 *
 *   node bench/local-throughput.mjs [--reps 3] [--tasks 1000]
 */
import { spawnSync } from "node:child_process";
import { parseArgs } from "node:util";
import {
  check,
  fmtS,
  isMain,
  median,
  procCpuMs,
  processesOfHome,
  round,
  runCmd,
  runStandalone,
  sleep,
  waitFor,
  withSpawnHome,
} from "./lib.mjs";

export const NAME = "local-throughput";
export const TARGET_RATIO = 1.5;
const SLOTS = 4;

function specText(name, tasks, { slots, instances }) {
  return [
    `name: ${name}`,
    `command: "true"`,
    "params:",
    "  grid:",
    `    i: {range: [0, ${tasks}]}`,
    `resources: {slots: ${slots}}`,
    `max_instances: ${instances}`,
    "",
  ].join("\n");
}

export function parallelAvailable() {
  const r = spawnSync("parallel", ["--version"], { encoding: "utf8" });
  if (r.status !== 0 || !/GNU parallel/.test(r.stdout)) return undefined;
  return r.stdout.split("\n")[0].trim();
}

const INSTALL_HINT =
  "GNU parallel is not installed, so the peer is not measured. Install it with `apt-get install parallel` " +
  "(Debian/Ubuntu), `dnf install parallel` or `brew install parallel`, then run this again.";

/** One `spawn sweep launch --wait` of a fresh sweep; returns wall time and the sweep's own times. */
async function spawnRun(home, specPath, tasks) {
  // Exactly what a user runs; the sweep id is on stderr ("launched <id>: N tasks").
  const cli0 = procCpuMs("self").children;
  const r = check(
    await home.cli(["sweep", "launch", specPath, "--wait"], { timeoutMs: 300_000 }),
    `spawn sweep launch ${specPath} --wait`,
  );
  const cliCpuMs = procCpuMs("self").children - cli0;
  const sweepId = /launched (\S+):/.exec(r.stderr)?.[1];
  if (!sweepId) throw new Error(`no sweep id in the output of spawn sweep launch --wait:\n${r.stderr}`);
  const status = await home.json(["sweep", "status", sweepId]);
  if (status.status !== "succeeded" || status.counts.succeeded !== tasks) {
    throw new Error(`sweep ${status.sweepId} ended ${status.status}: ${JSON.stringify(status.counts)}`);
  }
  const sweepMs = Date.parse(status.finishedAt) - Date.parse(status.createdAt);
  return { sweepId: status.sweepId, wallMs: r.ms, sweepMs, cliCpuMs, instances: status.instances.length };
}

/** Lets the previous sweep's agents exit and the control plane deactivate it, so runs don't overlap. */
async function settle(home) {
  await waitFor(
    "the previous sweep to wind down",
    async () => {
      const st = await home.json(["local", "status"]);
      if (st.activeSweeps.length > 0) return false;
      const server = home.serverInfo()?.pid;
      return processesOfHome(home.home).every((pid) => pid === server);
    },
    { timeoutMs: 60_000, intervalMs: 250 },
  );
}

async function parallelRun(tasks, slots) {
  const seq = Array.from({ length: tasks }, (_, i) => String(i + 1));
  const cpu0 = procCpuMs("self").children;
  const r = check(
    await runCmd("parallel", [`-j${slots}`, "true", ":::", ...seq], { timeoutMs: 300_000 }),
    "parallel",
  );
  return { wallMs: r.ms, cpuMs: procCpuMs("self").children - cpu0 };
}

const perTaskMs = (wallMs, tasks, slots) => (wallMs / tasks) * slots;

export async function main({ reps = 3, tasks = 1000, log = console.log } = {}) {
  const peerVersion = parallelAvailable();
  if (!peerVersion) log(`NOTE: ${INSTALL_HINT}`);
  const variants = [
    { key: "1x4", label: `1 instance × ${SLOTS} slots`, slots: SLOTS, instances: 1 },
    { key: "4x1", label: `${SLOTS} instances × 1 slot`, slots: 1, instances: SLOTS },
  ];

  // Cold: a fresh SPAWN_HOME, so this run also starts the control plane (dynalite, tables).
  log(`cold run: ${tasks} tasks, ${variants[0].label}, fresh SPAWN_HOME (control plane not running)`);
  const cold = await withSpawnHome("thr-cold", async (home) => {
    const spec = await home.writeSpec("cold.yaml", specText("thr-cold", tasks, variants[0]));
    return spawnRun(home, spec, tasks);
  });
  log(`  cold: wall ${fmtS(cold.wallMs)}, createdAt→finishedAt ${fmtS(cold.sweepMs)}`);

  const runs = { parallel: [], "1x4": [], "4x1": [] };
  await withSpawnHome("thr", async (home) => {
    const specs = {};
    for (const v of variants)
      specs[v.key] = await home.writeSpec(`${v.key}.yaml`, specText(`thr-${v.key}`, tasks, v));
    const warm = await home.writeSpec("warmup.yaml", specText("thr-warmup", 8, variants[0]));
    log("warm-up: 8-task sweep (starts the control plane)");
    await spawnRun(home, warm, 8);
    await settle(home);
    for (let rep = 1; rep <= reps; rep++) {
      if (peerVersion) {
        const p = await parallelRun(tasks, SLOTS);
        runs.parallel.push(p);
        log(
          `  rep ${rep}: parallel -j${SLOTS}: ${fmtS(p.wallMs)}; CPU ${(p.cpuMs / tasks).toFixed(1)} ms/task`,
        );
      }
      for (const v of variants) {
        const serverPid = home.serverInfo()?.pid;
        const server0 = procCpuMs(serverPid);
        const r = await spawnRun(home, specs[v.key], tasks);
        await settle(home);
        // Agents are children of the control plane: once they have exited and been reaped, their
        // CPU time (and that of their tasks) is in its children's total.
        const server1 = procCpuMs(serverPid);
        r.serverCpuMs = server1 && server0 ? server1.self - server0.self : Number.NaN;
        r.agentsCpuMs = server1 && server0 ? server1.children - server0.children : Number.NaN;
        runs[v.key].push(r);
        log(
          `  rep ${rep}: spawn ${v.label}: wall ${fmtS(r.wallMs)}, createdAt→finishedAt ${fmtS(r.sweepMs)}; ` +
            `CPU ms/task: agents+tasks ${(r.agentsCpuMs / tasks).toFixed(1)}, control plane ${(r.serverCpuMs / tasks).toFixed(1)}, ` +
            `CLI ${(r.cliCpuMs / tasks).toFixed(1)}`,
        );
        await sleep(250);
      }
    }
  });

  const peerMs = peerVersion ? median(runs.parallel.map((r) => r.wallMs)) : Number.NaN;
  const summary = {};
  for (const v of variants) {
    const wallMs = median(runs[v.key].map((r) => r.wallMs));
    const sweepMs = median(runs[v.key].map((r) => r.sweepMs));
    summary[v.key] = {
      label: v.label,
      wallS: round(wallMs / 1000),
      sweepS: round(sweepMs / 1000),
      tasksPerS: round(tasks / (wallMs / 1000), 1),
      perTaskOverheadMs: round(perTaskMs(wallMs, tasks, SLOTS), 1),
      perTaskOverheadSweepMs: round(perTaskMs(sweepMs, tasks, SLOTS), 1),
      ratio: peerVersion ? round(wallMs / peerMs) : null,
      ratioSweep: peerVersion ? round(sweepMs / peerMs) : null,
      cpuMsPerTask: {
        agentsAndTasks: round(median(runs[v.key].map((r) => r.agentsCpuMs)) / tasks, 1),
        controlPlane: round(median(runs[v.key].map((r) => r.serverCpuMs)) / tasks, 1),
        cli: round(median(runs[v.key].map((r) => r.cliCpuMs)) / tasks, 1),
      },
      runsWallS: runs[v.key].map((r) => round(r.wallMs / 1000)),
      runsSweepS: runs[v.key].map((r) => round(r.sweepMs / 1000)),
    };
  }
  const result = {
    name: NAME,
    tasks,
    slots: SLOTS,
    reps,
    peer: peerVersion
      ? {
          command: `parallel -j${SLOTS} true ::: $(seq ${tasks})`,
          version: peerVersion,
          wallS: round(peerMs / 1000),
          perTaskOverheadMs: round(perTaskMs(peerMs, tasks, SLOTS), 1),
          cpuMsPerTask: round(median(runs.parallel.map((r) => r.cpuMs)) / tasks, 1),
          runsWallS: runs.parallel.map((r) => round(r.wallMs / 1000)),
        }
      : { missing: INSTALL_HINT },
    cold: { label: variants[0].label, wallS: round(cold.wallMs / 1000), sweepS: round(cold.sweepMs / 1000) },
    spawn: summary,
    target: `spawn wall time ≤ ${TARGET_RATIO}x GNU parallel`,
    targetMet: peerVersion ? summary["1x4"].ratio <= TARGET_RATIO : null,
  };

  log("");
  log(`local-throughput: ${tasks} × \`true\`, median of ${reps}`);
  if (peerVersion) {
    log(
      `  GNU parallel -j${SLOTS}:         ${fmtS(peerMs)}  (${result.peer.perTaskOverheadMs} ms/task·slot)`,
    );
  }
  for (const v of variants) {
    const s = summary[v.key];
    log(
      `  spawn ${v.label.padEnd(22)} ${s.wallS.toFixed(2)} s wall (${s.perTaskOverheadMs} ms/task·slot), ` +
        `${s.sweepS.toFixed(2)} s createdAt→finishedAt` +
        (peerVersion ? `; ratio ${s.ratio}x wall, ${s.ratioSweep}x in-sweep` : ""),
    );
  }
  for (const v of variants) {
    const c = summary[v.key].cpuMsPerTask;
    const total = round(c.agentsAndTasks + c.controlPlane + c.cli, 1);
    log(
      `  CPU per task, ${v.label}: ${total} ms (agents+tasks ${c.agentsAndTasks}, control plane ${c.controlPlane}, CLI ${c.cli})` +
        (peerVersion ? `; GNU parallel ${result.peer.cpuMsPerTask} ms` : ""),
    );
  }
  log(`  cold first run (${variants[0].label}, starts the control plane): ${fmtS(cold.wallMs)} wall`);
  if (peerVersion) {
    log(
      `  target ≤ ${TARGET_RATIO}x GNU parallel: ${result.targetMet ? "MET" : "NOT MET"} (${summary["1x4"].ratio}x)`,
    );
  } else log(`  ${INSTALL_HINT}`);
  return result;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { reps: { type: "string" }, tasks: { type: "string" } } });
  await runStandalone(
    NAME,
    () => main({ reps: Number(values.reps ?? 3), tasks: Number(values.tasks ?? 1000) }),
    30 * 60_000,
  );
}
