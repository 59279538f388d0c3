/**
 * Lambda bundles: for each `lambdas/<fn>/handler.ts`, the size of its bundle and the time a fresh
 * Node process takes to import the handler module (what a cold start pays before the first event).
 *
 *   deployed:     what the stack deploys, built by scripts/lambdas.mjs (the CDK app runs the same
 *                 build at synth): esbuild, minified, ESM, node22, the AWS SDK bundled from its ES
 *                 modules (tree-shaken), zod's message locales reduced to English (ADR 0037);
 *   runtime SDK:  the same with `@aws-sdk/*` left external, loaded from node_modules as the
 *                 nodejs22.x runtime would load its own copy (what ADR 0031 deployed);
 *   naive:        the peer: everything bundled the default way (the SDK's CommonJS builds, so
 *                 whole clients), not minified.
 *
 * Import time is measured in a fresh `node` per sample (median of `reps`, variants interleaved),
 * importing the bundle from a directory inside the repository so `@aws-sdk/*` resolves from
 * node_modules for the runtime-SDK variant. The handlers read their environment at import, so
 * dummy values are set, and NODE_OPTIONS is the stack's (source maps read at load). Node here is
 * the local one (20); Lambda runs nodejs22.x on arm64.
 *
 *   node bench/lambda-bundles.mjs [--reps 15]
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import {
  LAMBDA_ENTRY_FILE,
  LAMBDA_NODE_OPTIONS,
  lambdaBuildOptions,
  lambdaNames,
} from "../scripts/lambdas.mjs";
import { isMain, median, OUT_DIR, round, runStandalone } from "./lib.mjs";

export const NAME = "lambda-bundles";
export const TARGET_BYTES = 300 * 1024;
export const TARGET_IMPORT_MS = 150;

/** Each variant's esbuild options, from the deployed ones. */
const VARIANTS = {
  deployed: (fn, dir) => lambdaBuildOptions(fn, dir),
  runtimeSdk: (fn, dir) => ({ ...lambdaBuildOptions(fn, dir), external: ["@aws-sdk/*"] }),
  naive: (fn, dir) => ({
    ...lambdaBuildOptions(fn, dir),
    minify: false,
    mainFields: undefined,
    plugins: [],
    sourcemap: false,
    legalComments: "inline",
  }),
};

/** Builds `fn` as `variant` into `dir`; resolves with the entry file, its bytes and the SDK's share of them. */
async function bundle(fn, variant, dir) {
  const { metafile } = await build({ ...VARIANTS[variant](fn, dir), logLevel: "silent" });
  const output = Object.entries(metafile.outputs).find(([path]) => path.endsWith(LAMBDA_ENTRY_FILE))[1];
  const sdkBytes = Object.entries(output.inputs)
    .filter(([path]) => /node_modules\/@(aws-sdk|smithy|aws-crypto)\//.test(path))
    .reduce((sum, [, input]) => sum + input.bytesInOutput, 0);
  return { file: join(dir, LAMBDA_ENTRY_FILE), bytes: output.bytes, sdkBytes };
}

/** Dummy values for every variable the handlers read at cold start, and the stack's NODE_OPTIONS. */
const LAMBDA_ENV = {
  NODE_OPTIONS: LAMBDA_NODE_OPTIONS,
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
  SPAWN_ALERTS_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
  SPAWN_ALERTS_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:spawn-alerts",
  SPAWN_HOSTED_ZONE_ID: "Z0000000000000000000",
  SPAWN_DNS_ZONE: "spawn.internal",
  SPAWN_IDENTITY_CERTS_FILE: "identity-certificates.json",
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
  const variants = Object.keys(VARIANTS);
  const functions = {};
  try {
    for (const fn of lambdaNames()) {
      const out = {};
      for (const variant of variants) {
        const built = await bundle(fn, variant, join(dir, fn, variant));
        out[variant] = {
          file: built.file,
          bytes: built.bytes,
          kib: round(built.bytes / 1024, 1),
          sdkKiB: round(built.sdkBytes / 1024, 1),
          gzipKiB: round(gzipSync(readFileSync(built.file)).length / 1024, 1),
          importMs: [],
        };
      }
      // Interleaved, so drift in machine load hits every variant alike.
      for (let i = 0; i < reps; i++)
        for (const variant of variants) out[variant].importMs.push(importOnce(runner, out[variant].file));
      for (const variant of variants) {
        delete out[variant].file;
        out[variant].medianImportMs = round(median(out[variant].importMs), 1);
        out[variant].importMs = out[variant].importMs.map((x) => round(x, 1));
      }
      const { deployed: d, runtimeSdk: r, naive: n } = out;
      functions[fn] = {
        ...out,
        sizeRatioVsNaive: round(d.bytes / n.bytes, 3),
        importRatioVsNaive: round(d.medianImportMs / n.medianImportMs, 2),
        importRatioVsRuntimeSdk: round(d.medianImportMs / r.medianImportMs, 2),
        targetBytesMet: d.bytes <= TARGET_BYTES,
        targetImportMet: d.medianImportMs <= TARGET_IMPORT_MS,
      };
      log(
        `${fn}: deployed ${d.kib} KiB (SDK ${d.sdkKiB}, gzip ${d.gzipKiB}), import ${d.medianImportMs} ms; ` +
          `runtime SDK ${r.kib} KiB, import ${r.medianImportMs} ms; naive ${n.kib} KiB, import ${n.medianImportMs} ms`,
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
