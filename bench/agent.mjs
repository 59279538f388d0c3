/**
 * The agent's footprint: its resident memory while it runs a task (near idle: it only waits
 * on the task and heartbeats), and how long it takes from process start to its first claim.
 *
 * Method, per repetition (one sweep, one task `date +%s%N > mark; sleep 5`, max_instances 1):
 *   - the agent's pid is the instance's providerRef (`spawn sweep status <id> --json`);
 *   - process start: /proc/<pid>/stat starttime (kernel clock, 10 ms resolution), as epoch ms;
 *   - "agent ready": the timestamp of that log line in $SPAWN_HOME/instances/<id>/agent.log
 *     (the workdir is unpacked, setup done; the claim loop starts right after);
 *   - first claim: the task record's startedAt, written by the agent's claim (read from the
 *     store with GetItem; neither `status` nor `results` prints it);
 *   - task running: the epoch time the task's shell wrote to its mark file;
 *   - RSS: VmRSS (and the peak, VmHWM) from /proc/<pid>/status, about 1.5 s into the task.
 *
 * Baseline in the same run: `node -e "…; setInterval(() => {}, 1000)"`, the same /proc readings;
 * its "first user code" is the Date.now() it prints on its first line.
 *
 *   node bench/agent.mjs [--reps 3]
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DynamoDBClient, GetItemCommand } from "@aws-sdk/client-dynamodb";
import {
  alive,
  check,
  fmtS,
  isMain,
  median,
  PROC_START_RESOLUTION_MS,
  procMemory,
  procStartMs,
  round,
  runStandalone,
  sleep,
  waitFor,
  withSpawnHome,
} from "./lib.mjs";

export const NAME = "agent";

/** Bare Node: RSS of an idle event loop and the time from process start to its first line of code. */
async function baselineOnce() {
  const spawnedAt = Date.now();
  const child = spawn(
    process.execPath,
    ["-e", 'process.stdout.write(Date.now() + "\\n"); setInterval(() => {}, 1000);'],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  try {
    const firstLine = await new Promise((resolve, reject) => {
      let buf = "";
      const timer = setTimeout(() => reject(new Error("baseline node printed nothing in 10 s")), 10_000);
      child.stdout.on("data", (d) => {
        buf += d;
        if (buf.includes("\n")) {
          clearTimeout(timer);
          resolve(Number(buf.split("\n")[0]));
        }
      });
    });
    const startMs = procStartMs(child.pid);
    await sleep(1500);
    const mem = procMemory(child.pid);
    return {
      rssMiB: mem.rssKiB / 1024,
      hwmMiB: mem.hwmKiB / 1024,
      startToCodeMs: firstLine - startMs,
      // Self-check of the /proc clock: kernel start time minus the parent's clock just before spawn().
      procClockSkewMs: startMs - spawnedAt,
    };
  } finally {
    child.kill("SIGKILL");
  }
}

function agentLogTime(home, instanceId, msg) {
  const file = join(home, "instances", instanceId, "agent.log");
  if (!existsSync(file)) return undefined;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    if (!line.includes(`"msg":"${msg}"`)) continue;
    try {
      return Date.parse(JSON.parse(line).time);
    } catch {
      // a partial line
    }
  }
  return undefined;
}

async function taskStartedAt(endpoint, sweepId) {
  const client = new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  try {
    // One task: shard count 1, so its partition is `<sweepId>#0` (providers/dynamodb/codec.ts taskPk).
    const out = await client.send(
      new GetItemCommand({
        TableName: "spawn-tasks",
        Key: { pk: { S: `${sweepId}#0` }, index: { N: "0" } },
        ConsistentRead: true,
      }),
    );
    return Number(out.Item?.startedAt?.N);
  } finally {
    client.destroy();
  }
}

async function agentOnce(home, specPath, marks) {
  const launched = JSON.parse(
    check(await home.cli(["sweep", "launch", specPath, "--json"], { timeoutMs: 60_000 }), "sweep launch")
      .stdout,
  );
  const { sweepId } = launched;
  const mark = join(marks, sweepId);
  // Cheap polling (a file test), so the measurement does not compete with the agent for CPU.
  await waitFor("the task to start", () => existsSync(mark) && readFileSync(mark, "utf8").trim().length > 0, {
    timeoutMs: 60_000,
    intervalMs: 10,
  });
  const taskRunningMs = Number(readFileSync(mark, "utf8").trim()) / 1e6;
  const status = await home.json(["sweep", "status", sweepId]);
  const instance = status.instances[0];
  const pid = Number(instance?.providerRef);
  if (!pid || !alive(pid)) throw new Error(`no live agent for ${sweepId}: ${JSON.stringify(instance)}`);
  const startMs = procStartMs(pid);
  // Sample memory ~1.5 s into the 5 s task: the agent is waiting on it.
  await sleep(Math.max(0, taskRunningMs + 1500 - Date.now()));
  const mem = procMemory(pid);
  const readyMs = agentLogTime(home.home, instance.instanceId, "agent ready");
  const claimMs = await taskStartedAt(home.serverInfo().endpoint, sweepId);
  // Let the sweep end before the next repetition.
  await waitFor(
    "the sweep to end",
    async () => !(await home.json(["local", "status"])).activeSweeps.includes(sweepId),
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  return {
    sweepId,
    pid,
    rssMiB: mem.rssKiB / 1024,
    hwmMiB: mem.hwmKiB / 1024,
    launchToStartMs: startMs - Date.parse(instance.launchedAt),
    startToReadyMs: readyMs - startMs,
    startToClaimMs: claimMs - startMs,
    startToTaskMs: taskRunningMs - startMs,
  };
}

export async function main({ reps = 3, log = console.log } = {}) {
  const base = [];
  const runs = [];
  await withSpawnHome("agent", async (home) => {
    const marks = join(home.home, "marks");
    await mkdir(marks, { recursive: true });
    const spec = await home.writeSpec(
      "agent.yaml",
      [
        "name: agent-bench",
        `command: date +%s%N > ${marks}/{{sweep_id}}; sleep 5`,
        "max_instances: 1",
        "",
      ].join("\n"),
    );
    // Warm-up: starts the control plane, unpacks the (unchanging) workdir bundle once, warms the page cache.
    const warm = await home.writeSpec(
      "warm.yaml",
      ["name: warm", 'command: "true"', "max_instances: 1", ""].join("\n"),
    );
    check(await home.cli(["sweep", "launch", warm, "--wait"], { timeoutMs: 60_000 }), "warm-up sweep");
    for (let rep = 1; rep <= reps; rep++) {
      const b = await baselineOnce();
      base.push(b);
      log(
        `  rep ${rep}: bare node: RSS ${b.rssMiB.toFixed(1)} MiB, start→first line of code ${b.startToCodeMs.toFixed(0)} ms`,
      );
      const r = await agentOnce(home, spec, marks);
      runs.push(r);
      log(
        `  rep ${rep}: agent: RSS ${r.rssMiB.toFixed(1)} MiB (peak ${r.hwmMiB.toFixed(1)}), start→ready ${r.startToReadyMs.toFixed(0)} ms, ` +
          `start→first claim ${r.startToClaimMs.toFixed(0)} ms, start→task running ${r.startToTaskMs.toFixed(0)} ms, ` +
          `instance record→process start ${r.launchToStartMs.toFixed(0)} ms`,
      );
    }
  });
  const med = (xs, k) => median(xs.map((x) => x[k]));
  const result = {
    name: NAME,
    reps,
    method:
      "process start = /proc/<pid>/stat starttime; ready = 'agent ready' log line; claim = task startedAt in the store; " +
      "task running = time written by the task's shell; RSS = VmRSS ~1.5 s into a 5 s task",
    procStartResolutionMs: PROC_START_RESOLUTION_MS,
    agent: {
      rssMiB: round(med(runs, "rssMiB"), 1),
      peakRssMiB: round(med(runs, "hwmMiB"), 1),
      startToReadyMs: round(med(runs, "startToReadyMs"), 0),
      startToFirstClaimMs: round(med(runs, "startToClaimMs"), 0),
      startToTaskRunningMs: round(med(runs, "startToTaskMs"), 0),
      instanceRecordToProcessStartMs: round(med(runs, "launchToStartMs"), 0),
      runs: runs.map((r) => ({
        rssMiB: round(r.rssMiB, 1),
        startToFirstClaimMs: round(r.startToClaimMs, 0),
        startToReadyMs: round(r.startToReadyMs, 0),
      })),
    },
    peer: {
      what: 'node -e "setInterval(() => {}, 1000)" (bare Node, same version)',
      rssMiB: round(med(base, "rssMiB"), 1),
      startToFirstCodeMs: round(med(base, "startToCodeMs"), 0),
      procClockSkewMs: round(med(base, "procClockSkewMs"), 0),
    },
  };
  result.rssRatio = round(result.agent.rssMiB / result.peer.rssMiB);
  result.startRatio = round(result.agent.startToFirstClaimMs / result.peer.startToFirstCodeMs);
  log("");
  log(`agent: median of ${reps}`);
  log(
    `  idle RSS: agent ${result.agent.rssMiB} MiB vs bare node ${result.peer.rssMiB} MiB (${result.rssRatio}x)`,
  );
  log(
    `  process start → first claim: ${fmtS(result.agent.startToFirstClaimMs)} ` +
      `(→ ready ${fmtS(result.agent.startToReadyMs)}, → task running ${fmtS(result.agent.startToTaskRunningMs)}) ` +
      `vs bare node start → first line of code ${fmtS(result.peer.startToFirstCodeMs)} (${result.startRatio}x)`,
  );
  log(
    `  (/proc start time resolution ${PROC_START_RESOLUTION_MS} ms; its offset from the parent's clock: ${result.peer.procClockSkewMs} ms)`,
  );
  return result;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { reps: { type: "string" } } });
  await runStandalone(NAME, () => main({ reps: Number(values.reps ?? 3) }), 10 * 60_000);
}
