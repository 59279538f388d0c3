/**
 * The agent's wiring without AWS: the environment the EC2 boot script writes (read from the
 * script itself) picks DynamoDB + S3 + EventBridge (S3 and EventBridge asserted with
 * aws-sdk-client-mock, DynamoDB run against dynalite through the SDK's endpoint override), and
 * the bundled dist/agent.js starts in that mode with no node_modules beside it.
 */
import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { alertIdFor, ownerScope, parseTriggers } from "../core/alerts.js";
import { spawnEvent } from "../core/events.js";
import { expandParams } from "../core/params.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { DynamoAlertStore } from "../providers/dynamodb/alert-store.js";
import { DynamoStateStore } from "../providers/dynamodb/store.js";
import { ensureTables } from "../providers/dynamodb/tables.js";
import { TABLE_PREFIX } from "../providers/local/client.js";
import { createLogger } from "../providers/log.js";
import { alertLogPath } from "../providers/notify/log.js";
import { type DynamoEngine, startDynalite } from "../test/helpers/dynamo.js";
import { LocalHostnames } from "./dns.js";
import { AgentConfigError, agentConfig, openAgentPorts } from "./wiring.js";

const repo = join(import.meta.dirname, "..");
const paths = { instances: "/home/u/.local/state/spawn/instances", bundleCache: "/home/u/.cache/bundles" };

/** /etc/spawn/agent.env as cdk/user-data/spawn-boot.sh writes it, with its shell variables filled in. */
async function bootScriptEnvironment(values: Record<string, string>): Promise<Record<string, string>> {
  const script = await readFile(join(repo, "cdk", "user-data", "spawn-boot.sh"), "utf8");
  const body = /cat >\/etc\/spawn\/agent\.env <<ENV\n([\s\S]*?)\nENV\n/.exec(script)?.[1];
  if (!body) throw new Error("spawn-boot.sh no longer writes /etc/spawn/agent.env as this test expects");
  return Object.fromEntries(
    body.split("\n").map((line) => {
      const [name, value = ""] = line.split(/=(.*)/s);
      return [name!, value.replace(/\$([A-Za-z_][A-Za-z_0-9]*)/g, (_, v: string) => values[v] ?? "")];
    }),
  );
}

const BOOT_VALUES = {
  STACK_NAME: "spawn",
  SPAWN_VERSION: "0.1.0",
  SWEEP: "lr-sweep-abc",
  INSTANCE: "lr-sweep-abc-i3",
  ec2_id: "i-0123456789abcdef0",
  TABLE_PREFIX: "spawn-",
  ARTIFACTS_BUCKET: "spawn-artifacts-1-us-east-1",
  RESULTS_BUCKET: "spawn-results-1-us-east-1",
  EVENT_BUS: "spawn",
  HOME_REGION: "us-east-1",
  executor: "",
};

describe("agentConfig", () => {
  it("reads the boot script's environment as the aws provider", async () => {
    const env = await bootScriptEnvironment(BOOT_VALUES);
    expect(env.SPAWN_EXECUTOR).toBe(""); // no executor on this image: the variable is written empty
    const config = agentConfig(env, paths);
    expect(config).toMatchObject({
      provider: "aws",
      SPAWN_SWEEP_ID: "lr-sweep-abc",
      SPAWN_INSTANCE_ID: "lr-sweep-abc-i3",
      SPAWN_HOME_REGION: "us-east-1",
      SPAWN_TABLE_PREFIX: "spawn-",
      SPAWN_RESULTS_BUCKET: "spawn-results-1-us-east-1",
      SPAWN_ARTIFACTS_BUCKET: "spawn-artifacts-1-us-east-1",
      SPAWN_EVENT_BUS: "spawn",
      agentDir: "/var/lib/spawn",
      bundleCache: "/var/lib/spawn/bundles",
    });
  });

  it("is aws without a store endpoint, local with one, and names what is missing", async () => {
    const { SPAWN_PROVIDER: _, ...unmarked } = await bootScriptEnvironment(BOOT_VALUES);
    expect(agentConfig(unmarked, paths).provider).toBe("aws");
    const { SPAWN_HOME_REGION: __, ...noRegion } = unmarked;
    expect(() => agentConfig(noRegion, paths)).toThrow(
      new AgentConfigError("SPAWN_HOME_REGION is not set (aws agent; it is started by spawn, not by hand)"),
    );
    const local = agentConfig(
      { SPAWN_PROVIDER: "local", SPAWN_STORE_ENDPOINT: "http://127.0.0.1:4567", SPAWN_SWEEP_ID: "s-1" },
      paths,
      { instance: "s-1-i0" },
    );
    expect(local).toMatchObject({
      provider: "local",
      SPAWN_INSTANCE_ID: "s-1-i0",
      agentDir: "/home/u/.local/state/spawn/instances/s-1-i0",
      bundleCache: "/home/u/.cache/bundles",
    });
    expect(() => agentConfig({ SPAWN_SWEEP_ID: "s-1", SPAWN_INSTANCE_ID: "a b" }, paths)).toThrow(
      /SPAWN_INSTANCE_ID must be an id/,
    );
  });
});

describe("openAgentPorts on aws", () => {
  let dynamo: DynamoEngine;
  const s3 = mockClient(S3Client);
  const eventBridge = mockClient(EventBridgeClient);
  const saved = { ...process.env };
  beforeAll(async () => {
    dynamo = await startDynalite();
    await ensureTables(dynamo.client, "stack-");
  });
  afterEach(() => {
    s3.reset();
    eventBridge.reset();
    process.env = { ...saved };
  });
  afterAll(async () => {
    s3.restore();
    eventBridge.restore();
    await dynamo.close();
  });

  it("uses the stack's tables, routes bundles/ to the artifacts bucket, and publishes as spawn.agent", async () => {
    // Given: the instance's environment, with DynamoDB's endpoint pointed at dynalite the way
    // the SDK allows for any client (credentials from the environment: the standard chain)
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
      AWS_ACCESS_KEY_ID: "test",
      AWS_SECRET_ACCESS_KEY: "test",
    });
    const config = agentConfig(
      await bootScriptEnvironment({ ...BOOT_VALUES, TABLE_PREFIX: "stack-", HOME_REGION: "eu-west-1" }),
      paths,
    );
    const ports = await openAgentPorts(config, "/unused");
    try {
      // Then: the store reads the stack's tables
      expect(ports.store).toBeInstanceOf(DynamoStateStore);
      const seeded = new DynamoStateStore(dynamo.client, "stack-");
      const sweepId = `w-${randomUUID().slice(0, 8)}`;
      await seeded.putInstance({
        sweepId,
        instanceId: "w-i0",
        provider: "aws",
        status: "launching",
        slots: 1,
        launchedAt: 1,
        deadline: 2,
      });
      expect((await ports.store.getInstance(sweepId, "w-i0"))?.status).toBe("launching");

      // And: objects go to the bucket their prefix belongs to
      s3.on(PutObjectCommand).resolves({});
      await ports.objects.putBytes("bundles/abc.tar.gz", "b");
      await ports.objects.putBytes(`logs/${sweepId}/traces/0-1.json`, "{}");
      const puts = s3
        .commandCalls(PutObjectCommand)
        .map((c) => [c.args[0].input.Bucket, c.args[0].input.Key]);
      expect(puts).toEqual([
        ["spawn-artifacts-1-us-east-1", "bundles/abc.tar.gz"],
        ["spawn-results-1-us-east-1", `logs/${sweepId}/traces/0-1.json`],
      ]);
      expect(await s3.call(0).thisValue.config.region()).toBe("eu-west-1");

      // And: events go to the stack's bus with the only source the agent role may use
      eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
      await ports.events?.publish([
        spawnEvent(sweepId, 1000, {
          type: "GpuMemoryPressure",
          instanceId: "w-i0",
          gpuIndex: 0,
          gpuUuid: "GPU-0",
          usedBytes: 96,
          totalBytes: 100,
          tasks: [3],
        }),
      ]);
      const entry = eventBridge.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries?.[0];
      expect(entry).toMatchObject({
        EventBusName: "spawn",
        Source: "spawn.agent",
        DetailType: "GpuMemoryPressure",
      });
    } finally {
      ports.close();
    }
  });
});

const bundle = join(repo, "dist", "agent.js");
describe.skipIf(!existsSync(bundle))(
  `dist/agent.js on an instance${existsSync(bundle) ? "" : " (skipped: not built; run npm run build)"}`,
  () => {
    it("imports nothing but Node built-ins", async () => {
      const text = await readFile(bundle, "utf8");
      const specifiers = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)"([^"]+)"/g)].map((m) => m[1]!);
      const builtins = new Set((await import("node:module")).builtinModules);
      const external = specifiers.filter((s) => !s.startsWith("node:") && !builtins.has(s));
      expect(external).toEqual([]);
    });

    it("starts in aws mode with no node_modules beside it and reaches the stack's tables", async () => {
      // Given: the bundle alone in an empty directory, and "DynamoDB" (dynalite) with the tables
      const dir = await mkdtemp(join(tmpdir(), "spawn-instance-"));
      const dynamo = await startDynalite();
      try {
        await ensureTables(dynamo.client, "stack-");
        await copyFile(bundle, join(dir, "agent.js"));
        const env = {
          PATH: process.env.PATH ?? "",
          ...(await bootScriptEnvironment({
            ...BOOT_VALUES,
            TABLE_PREFIX: "stack-",
            SWEEP: "no-such-sweep",
          })),
          SPAWN_AGENT_DIR: dir,
          SPAWN_IMDS_ENDPOINT: "http://127.0.0.1:9",
          AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
          AWS_ACCESS_KEY_ID: "test",
          AWS_SECRET_ACCESS_KEY: "test",
        };

        // When: systemd would start it
        const result = await new Promise<{ code: number | null; out: string }>((resolve) => {
          execFile(
            process.execPath,
            [join(dir, "agent.js")],
            { cwd: dir, env, timeout: 30_000 },
            (error, stdout, stderr) =>
              resolve({
                code: error ? (typeof error.code === "number" ? error.code : null) : 0,
                out: stdout + stderr,
              }),
          );
        });

        // Then: it loaded, read the sweep from the stack's table, and said it does not exist
        expect(result.out).not.toMatch(/ERR_MODULE_NOT_FOUND|Cannot find (package|module)/);
        expect(result.out).toMatch(/sweep no-such-sweep not found/);
        expect(result.code).toBe(1);
      } finally {
        await dynamo.close();
        await rm(dir, { recursive: true, force: true });
      }
    }, 60_000);
  },
);

describe("openAgentPorts on the embedded default", () => {
  it("delivers what the agent publishes through the local alerts, before publish resolves", async () => {
    // Given: the embedded dynalite, a sweep with an alert that writes the local alert log
    const engine = await startDynalite();
    const home = await mkdtemp(join(tmpdir(), "spawn-wiring-home-"));
    try {
      await ensureTables(engine.client, TABLE_PREFIX);
      const store = new DynamoStateStore(engine.client, TABLE_PREFIX);
      const spec = parseSpec({ name: "lr", command: "exit 3", params: { grid: { i: [1, 2] } } });
      const sweep = await createSweep(
        { store, clock: { now: () => Date.now() } },
        {
          sweepId: `lr-${randomUUID().slice(0, 8)}`,
          spec,
          tasks: expandParams(spec.params, spec.repeat),
          owner: "ana",
          provider: "local",
        },
      );
      const target = { kind: "sweep" as const, id: sweep.sweepId };
      await new DynamoAlertStore(engine.client, TABLE_PREFIX).createAlert({
        scope: ownerScope("ana"),
        alertId: alertIdFor(target, "o1"),
        owner: "ana",
        target,
        triggers: parseTriggers("task-failed"),
        channels: [{ kind: "log" }],
        originId: "o1",
        createdAt: Date.now(),
      });
      const config = agentConfig(
        {
          SPAWN_PROVIDER: "local",
          SPAWN_STORE_ENDPOINT: engine.endpoint,
          SPAWN_HOME: home,
          SPAWN_SWEEP_ID: sweep.sweepId,
          SPAWN_INSTANCE_ID: `${sweep.sweepId}-i0`,
        },
        paths,
      );
      const ports = await openAgentPorts(
        config,
        join(home, "objects"),
        createLogger({}, () => undefined),
      );

      // When: the agent publishes a task it wrote failed
      await ports.events!.publish([
        spawnEvent(sweep.sweepId, Date.now(), { type: "TaskFailed", taskIndex: 1, attempt: 1, exitCode: 3 }),
      ]);
      ports.close();

      // Then: the alert is already in the log, and the hostnames go to the local hosts file
      const logged = (await readFile(alertLogPath(home), "utf8"))
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l));
      expect(logged).toEqual([expect.objectContaining({ title: "Task 1 of lr failed for good" })]);
      expect(ports.hostnames).toBeInstanceOf(LocalHostnames);
    } finally {
      await engine.close();
      await rm(home, { recursive: true, force: true });
    }
  });
});
