/**
 * Lambda bundles: for each `lambdas/<fn>/handler.ts`, the size of its bundle and the time a fresh
 * Node process takes to import the handler module (what a cold start pays before the first event).
 *
 *   deployed: esbuild, minified, ESM, node22, `@aws-sdk/*` external (the runtime provides it),
 *             the same settings as the stack's NodejsFunction bundling (cdk/lib/orchestrator.ts);
 *   naive:    the peer: everything bundled, the AWS SDK too, not minified;
 *   no zod locales (for context): deployed, with zod's 40-odd message locales replaced by English
 *             alone, to show what the locales cost (`import { z } from "zod"` keeps all of them).
 *
 * Import time is measured in a fresh `node` per sample (median of `reps`), importing the bundle
 * from a directory inside the repository so `@aws-sdk/*` resolves from node_modules as it does
 * from the runtime's. The handlers read their environment at import, so dummy values are set.
 * Node here is the local one (20); Lambda runs nodejs22.x on arm64.
 *
 *   node bench/lambda-bundles.mjs [--reps 15]
 */
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { isMain, median, OUT_DIR, ROOT, round, runStandalone } from "./lib.mjs";

export const NAME = "lambda-bundles";
export const TARGET_BYTES = 300 * 1024;
export const TARGET_IMPORT_MS = 150;

/** Every Lambda in the repository: a directory under lambdas/ with a handler.ts. */
function lambdas() {
  return readdirSync(join(ROOT, "lambdas"), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(ROOT, "lambdas", d.name, "handler.ts")))
    .map((d) => d.name)
    .sort();
}

/** Bundled CommonJS dependencies call require(); the deployed bundles get one (as the stack's bundling does). */
const BANNER =
  "import { createRequire as __spawnCreateRequire } from 'node:module'; const require = __spawnCreateRequire(import.meta.url);";

/** Resolves zod's locale index to English only. */
const englishOnlyZod = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${join("node_modules", "zod")}`)
        ? { path: "zod-locales", namespace: "stub" }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: "stub" }, () => ({
      contents: 'export { default as en } from "zod/v4/locales/en.js";',
      resolveDir: ROOT,
    }));
  },
};

const VARIANTS = {
  deployed: { minify: true, external: ["@aws-sdk/*"], plugins: [] },
  naive: { minify: false, external: [], plugins: [] },
  noZodLocales: { minify: true, external: ["@aws-sdk/*"], plugins: [englishOnlyZod] },
};

async function bundle(fn, variant, outFile) {
  const v = VARIANTS[variant];
  const result = await build({
    entryPoints: [join(ROOT, "lambdas", fn, "handler.ts")],
    bundle: true,
    minify: v.minify,
    platform: "node",
    format: "esm",
    target: "node22",
    external: v.external,
    plugins: v.plugins,
    banner: { js: BANNER },
    outfile: outFile,
    metafile: true,
    logLevel: "silent",
  });
  const output = Object.values(result.metafile.outputs)[0];
  return { bytes: output.bytes };
}

/** Dummy values for every variable the handlers read at cold start. */
const LAMBDA_ENV = {
  AWS_REGION: "us-east-1",
  AWS_ACCESS_KEY_ID: "bench",
  AWS_SECRET_ACCESS_KEY: "bench",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
  SPAWN_TABLE_PREFIX: "spawn-",
  SPAWN_ARTIFACTS_BUCKET: "artifacts",
  SPAWN_RESULTS_BUCKET: "results",
  SPAWN_EVENT_BUS: "spawn-bus",
  SPAWN_LAUNCH_CONFIG_PARAM: "/spawn/spawn/launch-config",
  SPAWN_STACK_NAME: "spawn",
  SPAWN_INSTANCE_PROFILE_ARN: "arn:aws:iam::123456789012:instance-profile/spawn-agent",
  SPAWN_HOME_REGION: "us-east-1",
  SPAWN_SCHEDULE_GROUP: "spawn",
};

/** One fresh process: ms from just before `import()` of the bundle to its module being evaluated. */
function importOnce(runner, file) {
  const r = spawnSync(process.execPath, [runner, file], {
    env: { ...process.env, ...LAMBDA_ENV },
    encoding: "utf8",
    timeout: 30_000,
  });
  if (r.status !== 0) throw new Error(`importing ${file} failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

export async function main({ reps = 15, log = console.log } = {}) {
  const dir = join(OUT_DIR, `lambda-bundles-${process.pid}`);
  await mkdir(dir, { recursive: true });
  const runner = join(dir, "import-once.mjs");
  await writeFile(
    runner,
    "const t0 = performance.now();\nawait import(process.argv[2]);\nprocess.stdout.write(String(performance.now() - t0));\n",
  );
  const functions = {};
  try {
    for (const fn of lambdas()) {
      const out = {};
      const files = {};
      for (const variant of Object.keys(VARIANTS)) {
        files[variant] = join(dir, fn, variant, "index.mjs");
        const { bytes } = await bundle(fn, variant, files[variant]);
        out[variant] = { bytes, kib: round(bytes / 1024, 1), gzipKiB: 0, importMs: [] };
      }
      // Interleaved, so drift in machine load hits every variant alike.
      for (let i = 0; i < reps; i++)
        for (const variant of Object.keys(VARIANTS))
          out[variant].importMs.push(importOnce(runner, files[variant]));
      for (const variant of Object.keys(VARIANTS)) {
        out[variant].gzipKiB = round(gzipSync(readFileSync(files[variant])).length / 1024, 1);
        out[variant].medianImportMs = round(median(out[variant].importMs), 1);
        out[variant].importMs = out[variant].importMs.map((x) => round(x, 1));
      }
      const d = out.deployed;
      functions[fn] = {
        ...out,
        sizeRatioVsNaive: round(d.bytes / out.naive.bytes, 3),
        importRatioVsNaive: round(d.medianImportMs / out.naive.medianImportMs, 2),
        targetBytesMet: d.bytes <= TARGET_BYTES,
        targetImportMet: d.medianImportMs <= TARGET_IMPORT_MS,
      };
      log(
        `${fn}: deployed ${d.kib} KiB (gzip ${d.gzipKiB}), import ${d.medianImportMs} ms; ` +
          `naive ${out.naive.kib} KiB, import ${out.naive.medianImportMs} ms; ` +
          `without zod locales ${out.noZodLocales.kib} KiB, import ${out.noZodLocales.medianImportMs} ms`,
      );
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return {
    name: NAME,
    reps,
    node: process.version,
    targets: { bytes: TARGET_BYTES, importMs: TARGET_IMPORT_MS },
    functions,
  };
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { reps: { type: "string" } } });
  await runStandalone(
    NAME,
    async () => {
      const result = await main(values.reps ? { reps: Number(values.reps) } : {});
      console.log(JSON.stringify(result, null, 2));
    },
    10 * 60_000,
  );
}
