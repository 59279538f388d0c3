// Bundles the CLI, the agent and the local control plane into dist/ with their dependencies,
// so a command or an agent loads one file instead of hundreds of modules (start-up time is
// benchmarked). dynalite stays external: it loads a native LevelDB binding at run time. The
// Lambdas are not built here: the CDK app bundles them at synth (scripts/lambdas.mjs, ADR 0031).
import { copyFile } from "node:fs/promises";
import { build } from "esbuild";
import { REQUIRE_BANNER, zodEnglishOnly } from "./lambdas.mjs";

await build({
  entryPoints: {
    cli: "cli/main.ts",
    agent: "agent/main.ts",
    "local-server": "providers/local/server-main.ts",
  },
  outdir: "dist",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  external: ["dynalite"],
  banner: { js: REQUIRE_BANNER },
  sourcemap: true,
  legalComments: "linked",
  logLevel: "warning",
});

// The dashboard UI (dashboard/): one browser bundle plus its stylesheet and page, served by
// `spawn dashboard` from dist/dashboard/.
await build({
  entryPoints: { app: "dashboard/app.ts" },
  outdir: "dist/dashboard",
  bundle: true,
  platform: "browser",
  format: "esm",
  target: ["chrome110", "firefox110", "safari16"],
  minify: true,
  sourcemap: true,
  legalComments: "linked",
  logLevel: "warning",
  // The UI only ever shows English.
  plugins: [zodEnglishOnly],
});
await copyFile("dashboard/index.html", "dist/dashboard/index.html");

// The price catalog beside the CLI bundle: placement and estimates read it (providers/catalog),
// and a copy of dist/ (the benchmarks' snapshot, an installed package) carries it along.
await copyFile("providers/catalog/aws-accelerator-vms.csv", "dist/aws-accelerator-vms.csv");
