// Bundles the CLI and the agent into dist/ so that `npx spawn` starts fast
// (one file of our code; dependencies stay in node_modules).
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
  packages: "external",
  sourcemap: true,
  logLevel: "warning",
});
