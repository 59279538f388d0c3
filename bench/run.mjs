/**
 * `npm run bench`: every benchmark in sequence, then a summary; the results also go to
 * bench/out/bench-<time>.json (gitignored).
 *
 *   node bench/run.mjs [--only local-throughput,submit,agent,expand,checkpoint,dashboard,launch-scale,lambda-bundles] [--reps N]
 *
 * Each benchmark is also runnable alone: `node bench/<name>.mjs`.
 */
import { spawnSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as agent from "./agent.mjs";
import * as checkpoint from "./checkpoint.mjs";
import * as dashboard from "./dashboard.mjs";
import * as expand from "./expand.mjs";
import * as lambdaBundles from "./lambda-bundles.mjs";
import * as launchScale from "./launch-scale.mjs";
import {
  distHashes,
  installExitHandlers,
  machineInfo,
  measuredBuild,
  OUT_DIR,
  printMachine,
  ROOT,
  requireBuild,
  spawnBin,
} from "./lib.mjs";
import * as throughput from "./local-throughput.mjs";
import * as submit from "./submit.mjs";

const BENCHMARKS = [throughput, submit, agent, expand, dashboard, checkpoint, launchScale, lambdaBundles];

/** What was measured: the commit, how many tracked files had local changes, hashes of dist/. */
function codeState() {
  const git = (...args) => spawnSync("git", args, { cwd: ROOT, encoding: "utf8" }).stdout?.trim() ?? "";
  const changed = git("status", "--porcelain", "--untracked-files=no");
  return {
    commit: git("rev-parse", "--short", "HEAD"),
    modifiedFiles: changed ? changed.split("\n").length : 0,
    dist: distHashes(),
  };
}
const LIMIT_MS = 60 * 60_000;

const { values } = parseArgs({ options: { only: { type: "string" }, reps: { type: "string" } } });
const only = values.only ? new Set(values.only.split(",")) : undefined;
const reps = values.reps ? Number(values.reps) : undefined;

requireBuild();
installExitHandlers("bench", LIMIT_MS);
const codeBefore = codeState();
spawnBin(); // snapshot dist/ now: every benchmark runs this build
const machine = machineInfo();
printMachine(machine);
const started = new Date();
const results = {};
const errors = {};
for (const b of BENCHMARKS) {
  if (only && !only.has(b.NAME)) continue;
  console.log(`\n=== ${b.NAME}`);
  const t0 = performance.now();
  const loadBefore = machineInfo().loadAverage;
  try {
    results[b.NAME] = await b.main(reps ? { reps } : {});
    results[b.NAME].elapsedS = Math.round((performance.now() - t0) / 100) / 10;
    results[b.NAME].loadAverage = { before: loadBefore, after: machineInfo().loadAverage };
  } catch (error) {
    errors[b.NAME] = String(error?.stack ?? error);
    console.error(`${b.NAME} failed: ${error?.stack ?? error}`);
  }
}

const yesNo = (x) => (x === null || x === undefined ? "n/a" : x ? "yes" : "NO");
const rows = [];
const t = results["local-throughput"];
if (t) {
  for (const key of ["1x4", "4x1"]) {
    const s = t.spawn[key];
    rows.push([
      `throughput ${t.tasks} × true, ${s.label}`,
      `${s.wallS} s (${s.perTaskOverheadMs} ms/task·slot)`,
      t.peer.wallS !== undefined
        ? `parallel -j4: ${t.peer.wallS} s (${t.peer.perTaskOverheadMs} ms)`
        : "not installed",
      s.ratio === null ? "n/a" : `${s.ratio}x`,
      `≤ ${throughput.TARGET_RATIO}x`,
      s.ratio === null ? "n/a" : yesNo(s.ratio <= throughput.TARGET_RATIO),
    ]);
  }
  rows.push([`  same, cold first run (${t.cold.label})`, `${t.cold.wallS} s`, "", "", "", ""]);
}
const s = results.submit;
if (s) {
  rows.push([
    `submit ${s.tasks} tasks, control plane running`,
    `${s.spawn.warmS} s`,
    `naive PutItem: ${s.peer.wallS} s`,
    `${s.ratioWarm}x`,
    `< ${submit.TARGET_S} s`,
    `${yesNo(s.targetMetWarm)} (${s.repsUnderTargetWarm} runs)`,
  ]);
  rows.push([
    `submit ${s.tasks} tasks, cold`,
    `${s.spawn.coldS} s`,
    `naive PutItem: ${s.peer.wallS} s`,
    `${s.ratioCold}x`,
    `< ${submit.TARGET_S} s`,
    `${yesNo(s.targetMetCold)} (${s.repsUnderTargetCold} runs)`,
  ]);
}
const a = results.agent;
if (a) {
  rows.push([
    "agent idle RSS",
    `${a.agent.rssMiB} MiB`,
    `bare node: ${a.peer.rssMiB} MiB`,
    `${a.rssRatio}x`,
    "—",
    "n/a",
  ]);
  rows.push([
    "agent process start → first claim",
    `${a.agent.startToFirstClaimMs} ms`,
    `bare node → first code: ${a.peer.startToFirstCodeMs} ms`,
    `${a.startRatio}x`,
    "—",
    "n/a",
  ]);
}
const e = results.expand;
if (e) {
  rows.push([
    `expand ${e.tasks} tasks`,
    `${e.spawn.ms} ms`,
    `naive loops: ${e.peer.ms} ms`,
    `${e.ratio}x`,
    "—",
    "n/a",
  ]);
}

const c = results.checkpoint;
if (c) {
  rows.push([
    `checkpoint sync, ${c.ckptMiB} MiB every 50 work units`,
    `${c.overhead.medianWithMs} ms`,
    `no sync: ${c.overhead.medianWithoutMs} ms`,
    `+${(c.overhead.overhead * 100).toFixed(1)}%`,
    `< ${checkpoint.TARGET_OVERHEAD * 100}%`,
    yesNo(c.overhead.targetMet),
  ]);
  rows.push([
    "recovery: notice → running again, checkpoint restored",
    `${c.recovery.medianMs.totalMs} ms`,
    "",
    "",
    `< ${checkpoint.TARGET_RECOVERY_MS / 1000} s`,
    yesNo(c.recovery.targetMet),
  ]);
}

const d = results.dashboard;
if (d) {
  rows.push([
    `dashboard load, ${d.tasks} tasks (first / warm)`,
    `${d.load.firstMs} / ${d.load.warmMedianMs} ms`,
    "—",
    "—",
    `< ${dashboard.LOAD_TARGET_MS} ms`,
    yesNo(d.load.met),
  ]);
  rows.push([
    `dashboard update, ${d.tasks} tasks (median / p95)`,
    `${d.update.medianMs} / ${d.update.p95Ms} ms`,
    "—",
    "—",
    `< ${dashboard.UPDATE_TARGET_MS} ms`,
    yesNo(d.update.met),
  ]);
}
const l = results["launch-scale"];
if (l) {
  rows.push([
    `launch ${l.launch.instances} instances, 3 regions (simulated EC2)`,
    `${l.launch.simulatedS} s, ${l.launch.apiCallsPer1000} calls/1k`,
    `token-bucket bound: ${l.launch.boundS} s`,
    `${l.launch.ratio}`,
    `≥ ${launchScale.TARGET_RATIO}`,
    yesNo(l.launch.ratio >= launchScale.TARGET_RATIO),
  ]);
  rows.push([
    `DynamoDB writes per task (${l.lifecycle.tasks} tasks, preemptions)`,
    `${l.lifecycle.writesPerTask}`,
    "—",
    "—",
    `≤ ${launchScale.TARGET_WRITES_PER_TASK}`,
    yesNo(l.lifecycle.writesPerTask <= launchScale.TARGET_WRITES_PER_TASK),
  ]);
}

const lb = results["lambda-bundles"];
if (lb) {
  for (const [fn, r] of Object.entries(lb.functions)) {
    rows.push([
      `lambda ${fn} bundle (minified, SDK external)`,
      `${r.deployed.kib} KiB`,
      `naive: ${r.naive.kib} KiB`,
      `${r.sizeRatioVsNaive}x`,
      `≤ ${lb.targets.bytes / 1024} KiB`,
      yesNo(r.targetBytesMet),
    ]);
    rows.push([
      `lambda ${fn} handler import`,
      `${r.deployed.medianImportMs} ms`,
      `naive: ${r.naive.medianImportMs} ms`,
      `${r.importRatioVsNaive}x`,
      `≤ ${lb.targets.importMs} ms`,
      yesNo(r.targetImportMet),
    ]);
  }
}

const headers = ["benchmark", "spawn", "peer", "ratio", "target", "met"];
const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
const line = (cells) =>
  cells
    .map((c, i) => String(c).padEnd(widths[i]))
    .join("  ")
    .trimEnd();
console.log(`\n=== summary (${machine.cpuModel}, ${machine.cores} cores, node ${machine.node})`);
console.log(line(headers));
for (const r of rows) console.log(line(r));
for (const [name, err] of Object.entries(errors)) console.log(`${name}: FAILED (${err.split("\n")[0]})`);

const measured = measuredBuild() ?? codeBefore.dist;
console.log(
  `\ncode: commit ${codeBefore.commit}${codeBefore.modifiedFiles ? ` + ${codeBefore.modifiedFiles} modified file(s)` : ""}; ` +
    `measured build (snapshot of dist/ at start) ${Object.values(measured).join(" ")}`,
);
await mkdir(OUT_DIR, { recursive: true });
const file = join(OUT_DIR, `bench-${started.toISOString().replace(/[:.]/g, "-")}.json`);
await writeFile(
  file,
  `${JSON.stringify(
    {
      startedAt: started.toISOString(),
      machine,
      loadAverageAfter: machineInfo().loadAverage,
      code: { ...codeBefore, measuredDist: measured },
      results,
      errors,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nJSON summary: ${file}`);
process.exitCode = Object.keys(errors).length ? 1 : 0;
process.exit();
