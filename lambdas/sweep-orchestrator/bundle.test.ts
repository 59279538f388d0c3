/**
 * What the orchestrator's deployed bundle may reach: built the way the stack deploys it (esbuild,
 * minified, @aws-sdk external since the runtime provides it), then its external imports are read
 * from esbuild's metafile. No Lambda client means no way to invoke itself or another function.
 * Its size and import time are measured by bench/lambda-bundles.mjs.
 */
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

async function bundle() {
  const result = await build({
    entryPoints: ["lambdas/sweep-orchestrator/handler.ts"],
    bundle: true,
    minify: true,
    platform: "node",
    format: "esm",
    target: "node22",
    external: ["@aws-sdk/*"],
    write: false,
    metafile: true,
    outdir: "out",
    logLevel: "silent",
  });
  const output = Object.values(result.metafile.outputs)[0]!;
  const sdk = new Set(
    output.imports.filter((i) => i.external && i.path.startsWith("@aws-sdk/")).map((i) => i.path),
  );
  return { sdk, inputs: Object.keys(result.metafile.inputs) };
}

describe("sweep-orchestrator bundle", () => {
  it("imports no Lambda (or Step Functions) client: it cannot invoke itself or another function", async () => {
    const { sdk, inputs } = await bundle();
    expect([...sdk].sort()).toEqual([
      "@aws-sdk/client-dynamodb",
      "@aws-sdk/client-ec2",
      "@aws-sdk/client-eventbridge",
      "@aws-sdk/client-ssm",
      "@aws-sdk/lib-dynamodb",
    ]);
    expect(inputs.filter((p) => /client-lambda|client-sfn|InvokeCommand/.test(p))).toEqual([]);
  });
});
