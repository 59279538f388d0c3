/**
 * Parameter expansion: `expandParams` (core/params.ts) on a 100 × 100 × 10 grid = 100,000 tasks.
 *
 * core/params.ts is TypeScript and Node 20 does not strip types, so it is bundled on the fly with
 * esbuild (`build({ bundle: true, write: false })`) into a temporary .mjs file and imported.
 *
 *   peer: a naive nested-loop cartesian product over the same axis values, each task's id the
 *         JSON.stringify of its params, in the same run. For context (not the peer), the same
 *         naive loop with sha256 ids like spawn's, to show what the hashing costs.
 *
 * Each variant runs once to warm up, then `reps` timed rounds (variants interleaved); the median is reported. Outputs are
 * checked to hold the same params in the same order.
 *
 *   node bench/expand.mjs [--reps 7]
 */
import { createHash } from "node:crypto";
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { isDeepStrictEqual, parseArgs } from "node:util";
import { build } from "esbuild";
import { isMain, median, ROOT, round, runStandalone, scratchDir } from "./lib.mjs";

export const NAME = "expand";

/** 100 × 100 × 10: floats, integers and strings. */
const PARAMS = {
  grid: {
    lr: { linspace: [0.0001, 0.1, 100] },
    layers: { range: [1, 101] },
    optimizer: ["sgd", "adam", "adamw", "rmsprop", "adagrad", "lamb", "lion", "sophia", "nadam", "radam"],
  },
};

async function loadExpandParams() {
  const out = await build({
    entryPoints: [join(ROOT, "core", "params.ts")],
    bundle: true,
    write: false,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "silent",
  });
  const dir = await scratchDir("expand");
  const file = join(dir, "params.mjs");
  await writeFile(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The naive peer: nested loops, a fresh params object per task, JSON.stringify as the id. */
function naiveExpand(axes, idOf = (params) => JSON.stringify(params)) {
  const [lrs, layers, optimizers] = axes;
  const tasks = [];
  let index = 0;
  for (const lr of lrs) {
    for (const l of layers) {
      for (const optimizer of optimizers) {
        const params = { lr, layers: l, optimizer };
        tasks.push({ index: index++, taskId: idOf(params), params });
      }
    }
  }
  return tasks;
}

const sha256Id = (params) =>
  `t${createHash("sha256").update(JSON.stringify(params)).digest("hex").slice(0, 12)}`;

/** Runs every variant once to warm up, then `reps` rounds, each variant once per round in rotating order. */
function timeAll(variants, reps) {
  const out = Object.fromEntries(Object.keys(variants).map((k) => [k, { ms: [], last: undefined }]));
  for (const fn of Object.values(variants)) fn();
  const names = Object.keys(variants);
  for (let i = 0; i < reps; i++) {
    for (let j = 0; j < names.length; j++) {
      const name = names[(i + j) % names.length];
      const t0 = performance.now();
      out[name].last = variants[name]();
      out[name].ms.push(performance.now() - t0);
    }
  }
  return out;
}

export async function main({ reps = 7, log = console.log } = {}) {
  const { expandParams, axisValues } = await loadExpandParams();
  // The peer gets the same axis values spawn computes (a list, a range, a linspace), so both build the same tasks.
  const axes = Object.entries(PARAMS.grid).map(([name, axis]) => axisValues(axis, `params.grid.${name}`));
  const total = axes.reduce((n, a) => n * a.length, 1);

  const runs = timeAll(
    {
      spawn: () => expandParams(PARAMS, 1),
      naive: () => naiveExpand(axes),
      hashed: () => naiveExpand(axes, sha256Id),
    },
    reps,
  );
  const spawnRun = runs.spawn;
  const naiveRun = runs.naive;
  const hashedRun = runs.hashed;

  const a = spawnRun.last;
  const b = naiveRun.last;
  if (a.length !== total || b.length !== total)
    throw new Error(`expected ${total} tasks, got ${a.length} and ${b.length}`);
  for (const i of [0, 1, 9, 10, 999, 1000, 54_321, total - 1]) {
    if (!isDeepStrictEqual(a[i].params, b[i].params)) {
      throw new Error(`task ${i} differs: ${JSON.stringify(a[i].params)} vs ${JSON.stringify(b[i].params)}`);
    }
  }
  if (new Set(a.map((t) => t.taskId)).size !== total) throw new Error("spawn's task ids are not unique");

  const spawnMs = median(spawnRun.ms);
  const naiveMs = median(naiveRun.ms);
  const hashedMs = median(hashedRun.ms);
  const result = {
    name: NAME,
    tasks: total,
    reps,
    spawn: {
      ms: round(spawnMs, 1),
      runsMs: spawnRun.ms.map((x) => round(x, 1)),
      perTaskUs: round((spawnMs * 1000) / total, 2),
    },
    peer: {
      what: "nested loops, JSON.stringify(params) ids",
      ms: round(naiveMs, 1),
      runsMs: naiveRun.ms.map((x) => round(x, 1)),
      perTaskUs: round((naiveMs * 1000) / total, 2),
    },
    naiveWithSha256: { ms: round(hashedMs, 1), runsMs: hashedRun.ms.map((x) => round(x, 1)) },
    ratio: round(spawnMs / naiveMs, 1),
    ratioVsSha256: round(spawnMs / hashedMs, 2),
  };
  log("");
  log(`expand: ${total.toLocaleString("en-US")} tasks (grid 100 × 100 × 10), median of ${reps}`);
  log(`  spawn expandParams:           ${result.spawn.ms} ms (${result.spawn.perTaskUs} µs/task)`);
  log(
    `  naive loops, JSON ids (peer): ${result.peer.ms} ms (${result.peer.perTaskUs} µs/task); ratio ${result.ratio}x`,
  );
  log(
    `  naive loops, sha256 ids:      ${result.naiveWithSha256.ms} ms; spawn / this = ${result.ratioVsSha256}x`,
  );
  return result;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { reps: { type: "string" } } });
  await runStandalone(NAME, () => main({ reps: Number(values.reps ?? 7) }), 5 * 60_000);
}
