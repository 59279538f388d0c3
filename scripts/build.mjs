// Bundles the CLI, the agent and the local control plane into dist/ with their dependencies,
// so a command or an agent loads one file instead of hundreds of modules (start-up time is
// benchmarked). dynalite stays external: it loads a native LevelDB binding at run time.
import { copyFile } from "node:fs/promises";
import { dirname, join, sep } from "node:path";
import { build } from "esbuild";

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
  // Bundled CommonJS dependencies call require(); give the ES module output one.
  banner: {
    js: "import { createRequire as __spawnCreateRequire } from 'node:module'; const require = __spawnCreateRequire(import.meta.url);",
  },
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
  plugins: [
    {
      // zod's `z` namespace re-exports every locale (~200 KB); the UI only ever shows English.
      name: "zod-english-only",
      setup(b) {
        b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
          args.importer.includes(`${sep}zod${sep}`)
            ? { path: join(dirname(args.importer), "..", "locales", "en.js") }
            : undefined,
        );
      },
    },
  ],
});
await copyFile("dashboard/index.html", "dist/dashboard/index.html");

// The price catalog beside the CLI bundle: placement and estimates read it (providers/catalog),
// and a copy of dist/ (the benchmarks' snapshot, an installed package) carries it along.
await copyFile("providers/catalog/aws-accelerator-vms.csv", "dist/aws-accelerator-vms.csv");
