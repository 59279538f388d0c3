// Bundles the CLI, the agent and the local control plane into dist/ with their dependencies,
// so a command or an agent loads one file instead of hundreds of modules (start-up time is
// benchmarked). dynalite stays external: it loads a native LevelDB binding at run time.
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
