/**
 * Lambda bundles: for each `lambdas/<fn>/handler.ts`, the size of its bundle and the time a fresh
 * Node process takes to import the handler module (what a cold start pays before the first event).
 *
 *   deployed:     what the stack deploys, built by scripts/lambdas.mjs (the CDK app runs the same
 *                 build at synth): esbuild, minified, ESM, node22, `@aws-sdk/*` external (the
 *                 runtime provides it), zod's message locales reduced to English;
 *   naive:        the peer: everything bundled, the AWS SDK too, not minified;
 *   zod locales:  for context, the deployed settings with every zod locale kept (what
 *                 NodejsFunction bundling gave before ADR 0031);
 *   sdk only:     for context, importing just the `@aws-sdk/*` packages the deployed bundle imports:
 *                 the part of the import time that is the runtime's SDK, not spawn's code;
 *   own:          the deployed bundle imported after those packages are loaded (not timed): the
 *                 part that is spawn's code.
 *
 * Import time is measured in a fresh `node` per sample (median of `reps`), importing the bundle
 * from a directory inside the repository so `@aws-sdk/*` resolves from node_modules as it does
 * from the runtime's. The handlers read their environment at import, so dummy values are set.
 * Node here is the local one (20); Lambda runs nodejs22.x on arm64.
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
import { buildLambda, LAMBDA_ENTRY_FILE, lambdaNames, REQUIRE_BANNER } from "../scripts/lambdas.mjs";
import { isMain, median, OUT_DIR, ROOT, round, runStandalone } from "./lib.mjs";

export const NAME = "lambda-bundles";
export const TARGET_BYTES = 300 * 1024;
export const TARGET_IMPORT_MS = 150;

/** The comparison variants, built with esbuild directly; `deployed` is scripts/lambdas.mjs's build. */
const VARIANTS = {
  naive: { minify: false, external: [] },
  zodLocales: { minify: true, external: ["@aws-sdk/*"] },
};

/** Builds `fn` as `variant` into `dir`; resolves with the entry file, its bytes and its external SDK imports. */
async function bundle(fn, variant, dir) {
  const file = join(dir, LAMBDA_ENTRY_FILE);
  let metafile;
  if (variant === "deployed") metafile = await buildLambda(fn, dir);
  else {
    const v = VARIANTS[variant];
    ({ metafile } = await build({
      entryPoints: [join(ROOT, "lambdas", fn, "handler.ts")],
      bundle: true,
      minify: v.minify,
      platform: "node",
      format: "esm",
      target: "node22",
      external: v.external,
      banner: { js: REQUIRE_BANNER },
      outfile: file,
      metafile: true,
      logLevel: "silent",
    }));
  }
  const output = Object.entries(metafile.outputs).find(([path]) => path.endsWith(LAMBDA_ENTRY_FILE))[1];
  const sdk = [
    ...new Set(output.imports.filter((i) => i.external && i.path.startsWith("@aws-sdk/")).map((i) => i.path)),
  ];
  return { file, bytes: output.bytes, sdk };
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
  SPAWN_ALERTS_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
  SPAWN_ALERTS_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:spawn-alerts",
  SPAWN_HOSTED_ZONE_ID: "Z0000000000000000000",
  SPAWN_DNS_ZONE: "spawn.internal",
  SPAWN_IDENTITY_CERTS_FILE: "identity-certificates.json",
};

/**
 * One fresh process: ms from just before `import()` of the bundle to its module being evaluated,
 * after importing `preload` (untimed).
 */
function importOnce(runner, file, preload = []) {
  const r = spawnSync(process.execPath, [runner, file, ...preload], {
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
    "for (const p of process.argv.slice(3)) await import(p);\nconst t0 = performance.now();\nawait import(process.argv[2]);\nprocess.stdout.write(String(performance.now() - t0));\n",
  );
  const variants = ["deployed", ...Object.keys(VARIANTS), "sdkOnly", "own"];
  const functions = {};
  try {
    for (const fn of lambdaNames()) {
      const out = {};
      const files = {};
      for (const variant of ["deployed", ...Object.keys(VARIANTS)]) {
        const built = await bundle(fn, variant, join(dir, fn, variant));
        files[variant] = built.file;
        out[variant] = { bytes: built.bytes, kib: round(built.bytes / 1024, 1), gzipKiB: 0, importMs: [] };
        if (variant === "deployed") {
          // The SDK packages alone, imported the way the bundle imports them (from this directory).
          files.sdkOnly = join(dir, fn, "sdk-only.mjs");
          await writeFile(files.sdkOnly, built.sdk.map((p) => `import "${p}";`).join("\n"));
          out.sdkOnly = { packages: built.sdk, importMs: [] };
          out.own = { importMs: [] };
        }
      }
      // Interleaved, so drift in machine load hits every variant alike.
      for (let i = 0; i < reps; i++)
        for (const variant of variants)
          out[variant].importMs.push(
            variant === "own"
              ? importOnce(runner, files.deployed, out.sdkOnly.packages)
              : importOnce(runner, files[variant]),
          );
      for (const variant of variants) {
        if (files[variant] && variant !== "sdkOnly")
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
        `${fn}: deployed ${d.kib} KiB (gzip ${d.gzipKiB}), import ${d.medianImportMs} ms ` +
          `(SDK alone ${out.sdkOnly.medianImportMs} ms, spawn's own ${out.own.medianImportMs} ms); naive ${out.naive.kib} KiB, import ` +
          `${out.naive.medianImportMs} ms; with zod locales ${out.zodLocales.kib} KiB, import ${out.zodLocales.medianImportMs} ms`,
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
