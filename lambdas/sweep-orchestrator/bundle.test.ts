/**
 * What the deployed Lambda bundles hold: each built by scripts/lambdas.mjs, the build the stack
 * deploys (cdk/lib/lambda.ts runs it at synth), then read through esbuild's metafile. No Lambda
 * client means no way for the orchestrator to invoke itself or another function. Their import
 * time is measured by bench/lambda-bundles.mjs (docs/BENCHMARKS.md).
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildLambda, LAMBDA_ENTRY_FILE, lambdaNames } from "../../scripts/lambdas.mjs";

/** Issue 4's target for a minified bundle (the SDK is the runtime's and not counted). */
const MAX_BYTES = 300 * 1024;

let dir: string;
const built = new Map<string, Metafile>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-bundles-"));
  for (const name of lambdaNames()) built.set(name, await buildLambda(name, join(dir, name)));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function entry(name: string) {
  const meta = built.get(name)!;
  const [, output] = Object.entries(meta.outputs).find(([path]) => path.endsWith(LAMBDA_ENTRY_FILE))!;
  return { output, inputs: Object.keys(meta.inputs) };
}

describe("sweep-orchestrator bundle", () => {
  it("imports no Lambda (or Step Functions) client: it cannot invoke itself or another function", () => {
    const { output, inputs } = entry("sweep-orchestrator");
    const sdk = new Set(
      output.imports.filter((i) => i.external && i.path.startsWith("@aws-sdk/")).map((i) => i.path),
    );
    expect([...sdk].sort()).toEqual([
      "@aws-sdk/client-dynamodb",
      "@aws-sdk/client-ec2",
      "@aws-sdk/client-eventbridge",
      "@aws-sdk/client-iam",
      "@aws-sdk/client-ssm",
      "@aws-sdk/lib-dynamodb",
    ]);
    expect(inputs.filter((p) => /client-lambda|client-sfn|InvokeCommand/.test(p))).toEqual([]);
  });
});

describe("every Lambda bundle", () => {
  it("finds the four Lambdas of the design at least", () => {
    expect(lambdaNames()).toEqual(
      expect.arrayContaining(["alert-handler", "dns-updater", "scheduler-handler", "sweep-orchestrator"]),
    );
  });

  it.each(lambdaNames())("%s: at most 300 KiB minified, the AWS SDK left to the runtime", (name) => {
    const { output, inputs } = entry(name);
    expect(output.bytes).toBeLessThanOrEqual(MAX_BYTES);
    expect(inputs.filter((p) => p.includes("node_modules/@aws-sdk/"))).toEqual([]);
  });

  it.each(lambdaNames())("%s: carries zod's English messages and no other locale", (name) => {
    const locales = entry(name).inputs.filter((p) => /node_modules\/zod\/.*\/locales\//.test(p));
    expect(locales.length).toBeGreaterThan(0);
    expect(locales.every((p) => p.endsWith("/locales/en.js"))).toBe(true);
  });
});

describe("a deployed bundle at run time", () => {
  it("validates with zod and words its errors in English (locales and zod's unused parts left out)", async () => {
    // The dns-updater bundle, as Lambda loads it: its environment read at import.
    Object.assign(process.env, {
      AWS_REGION: "us-east-1",
      SPAWN_STACK_NAME: "spawn",
      SPAWN_HOME_REGION: "us-east-1",
      SPAWN_HOSTED_ZONE_ID: "Z0123456789ABCDEFGHIJ",
      SPAWN_DNS_ZONE: "spawn.internal",
      SPAWN_IDENTITY_CERTS_FILE: join(dir, "certs.json"),
    });
    await writeFile(join(dir, "certs.json"), "{}");
    const { handler } = (await import(pathToFileURL(join(dir, "dns-updater", LAMBDA_ENTRY_FILE)).href)) as {
      handler: (event: unknown, context: unknown) => Promise<Record<string, unknown>>;
    };
    const context = { awsRequestId: "r-1" };

    const bad = await handler({ kind: "register", document: "{}" }, context);
    const pending = await handler(
      {
        source: "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        detail: { "instance-id": "i-0123456789abcdef0", state: "pending" },
      },
      context,
    );

    expect(bad).toMatchObject({ status: "dropped" });
    expect(String(bad.reason)).toMatch(/Invalid input: expected string, received undefined/);
    expect(pending).toEqual({ status: "ignored", message: "state pending" });
  });
});
