/**
 * What the deployed Lambda bundles hold: each built by scripts/lambdas.mjs, the build the stack
 * deploys (cdk/lib/lambda.ts runs it at synth), then read through esbuild's metafile. No Lambda
 * client means no way for the orchestrator to invoke itself or another function. Their size and
 * import time are measured by bench/lambda-bundles.mjs (docs/BENCHMARKS.md, ADR 0037).
 */

import { randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Metafile } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expandParams } from "#core/params.js";
import { systemClock } from "#core/ports.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { buildLambda, LAMBDA_ENTRY_FILE, lambdaNames } from "../../scripts/lambdas.mjs";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";

/**
 * spawn's own code and its dependencies other than the AWS SDK, minified. The largest is the
 * dashboard-api's, 306 KiB: zod 148, croner 33 (schedules are edited there), spawn's code the
 * rest. A guard against pulling the CLI's planning code or a new dependency in by accident (ADR
 * 0037 gave up issue 4's 300 KB for whole bundles, trading size for import time).
 */
const MAX_OWN_BYTES = 320 * 1024;
/** The SDK's part of a bundle comes from its ES modules, tree-shaken; a whole client would blow this. */
const MAX_SDK_BYTES = 1536 * 1024;

/** Input paths of the AWS SDK (clients, their Smithy runtime and crypto). */
const SDK_PATH = /node_modules\/@(aws-sdk|smithy|aws-crypto)\//;

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

/** The SDK packages a bundle carries (`@aws-sdk/client-ec2`, ...). */
function sdkPackages(inputs: readonly string[]): string[] {
  const names = inputs
    .map((p) => /node_modules\/(@aws-sdk\/[^/]+)\//.exec(p)?.[1])
    .filter((n) => n !== undefined);
  return [...new Set(names)].sort();
}

describe("sweep-orchestrator bundle", () => {
  it("imports no Lambda (or Step Functions) client: it cannot invoke itself or another function", () => {
    const { inputs } = entry("sweep-orchestrator");
    const clients = sdkPackages(inputs).filter(
      (p) => p.startsWith("@aws-sdk/client-") || p.startsWith("@aws-sdk/lib-"),
    );
    expect(clients).toEqual([
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

  it.each(lambdaNames())(
    "%s: the AWS SDK inside, from its ES modules, and at most 320 KiB of the rest",
    (name) => {
      const { output } = entry(name);
      const sdk = Object.entries(output.inputs).filter(([p]) => SDK_PATH.test(p));
      const sdkBytes = sdk.reduce((sum, [, input]) => sum + input.bytesInOutput, 0);
      expect(output.imports.filter((i) => i.external && !i.path.startsWith("node:"))).toEqual([]);
      expect(sdk.length).toBeGreaterThan(0);
      // dist-cjs is one file per package: bundling it would keep every command of a client.
      expect(sdk.filter(([p]) => p.includes("/dist-cjs/"))).toEqual([]);
      expect(sdkBytes).toBeLessThanOrEqual(MAX_SDK_BYTES);
      expect(output.bytes - sdkBytes).toBeLessThanOrEqual(MAX_OWN_BYTES);
    },
  );

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

describe("the SDK inside a deployed bundle", () => {
  let engine: DynamoEngine;
  beforeAll(async () => {
    engine = await startDynalite();
  });
  afterAll(() => engine.close());

  it("talks to a real DynamoDB engine: the alert-handler's check finds the one active sweep", async () => {
    const prefix = `bundle${randomUUID().slice(0, 6)}-`;
    await ensureTables(engine.client, prefix);
    const store = new DynamoStateStore(engine.client, prefix);
    const spec = parseSpec({ name: "bundle", command: "true" });
    const created = await createSweep(
      { store, clock: systemClock },
      {
        sweepId: `bundle-${randomUUID().slice(0, 8)}`,
        spec,
        tasks: expandParams(spec.params, spec.repeat),
        owner: "test",
        provider: "aws",
      },
    );
    // The bundle builds its clients from the environment, as in Lambda; the SDK's own
    // AWS_ENDPOINT_URL_DYNAMODB points its DynamoDB client at dynalite.
    Object.assign(process.env, {
      AWS_REGION: "us-east-1",
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
      AWS_ENDPOINT_URL_DYNAMODB: engine.endpoint,
      SPAWN_TABLE_PREFIX: prefix,
      SPAWN_HOME_REGION: "us-east-1",
      SPAWN_ALERTS_KEY_ARN: "arn:aws:kms:us-east-1:123456789012:key/00000000-0000-0000-0000-000000000000",
      SPAWN_ALERTS_TOPIC_ARN: "arn:aws:sns:us-east-1:123456789012:spawn-alerts",
    });
    const { handler } = (await import(pathToFileURL(join(dir, "alert-handler", LAMBDA_ENTRY_FILE)).href)) as {
      handler: (event: unknown, context: unknown) => Promise<Record<string, unknown>>;
    };

    const result = await handler({ kind: "check" }, { awsRequestId: "r-2" });

    expect(result).toEqual({ status: "checked", sweeps: 1, deliveries: [] });
    expect((await store.getSweep(created.sweepId))?.status).toBe(created.status);
  });
});
