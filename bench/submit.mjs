/**
 * Submitting a big sweep: `spawn sweep launch spec.yaml --json` (no --wait) for 10,000 tasks,
 * timed from start to exit, on the embedded store; with the control plane already running
 * (warm) and with none (cold: the launch starts it). The sweep is cancelled right after each
 * measurement so it does not keep running.
 *
 *   peer:   a naive submitter in the same run: 10,000 sequential single PutItem calls to the
 *           same dynalite (the running control plane's endpoint from $SPAWN_HOME/server.json),
 *           into a scratch table with the tasks table's keys and indexes, created and deleted here.
 *   target: < 5 s on the embedded store.
 *
 * Each repetition uses a fresh SPAWN_HOME, so the previous sweep's cancellation (the control
 * plane cancels 10,000 pending tasks) does not run during the next measurement.
 *
 *   node bench/submit.mjs [--reps 3] [--tasks 10000]
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import {
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  PutItemCommand,
} from "@aws-sdk/client-dynamodb";
import { check, fmtS, isMain, median, round, runStandalone, waitFor, withSpawnHome } from "./lib.mjs";

export const NAME = "submit";
export const TARGET_S = 5;

function specText(name, tasks) {
  return [
    `name: ${name}`,
    `command: "true"`,
    "params:",
    "  grid:",
    `    i: {range: [0, ${tasks}]}`,
    "max_instances: 1",
    "",
  ].join("\n");
}

/** Launches (timed), then cancels; returns the wall time and a sanity check of what was written. */
async function launchOnce(home, specPath, tasks) {
  const r = check(
    await home.cli(["sweep", "launch", specPath, "--json"], { timeoutMs: 120_000 }),
    `spawn sweep launch ${specPath}`,
  );
  const launched = JSON.parse(r.stdout);
  const cancel = await home.cli(["sweep", "cancel", launched.sweepId, "--json"], { timeoutMs: 60_000 });
  if (cancel.code !== 0) throw new Error(`spawn sweep cancel ${launched.sweepId}: ${cancel.stderr}`);
  const cancelledAt = performance.now();
  if (launched.tasks !== tasks) throw new Error(`launched ${launched.tasks} tasks, expected ${tasks}`);
  return { sweepId: launched.sweepId, wallMs: r.ms, cancelledAt };
}

function dynamoClient(endpoint) {
  return new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 5,
  });
}

/**
 * The naive peer: one PutItem per task, each awaited before the next, against the same dynalite.
 * The scratch table copies the key schema and indexes of spawn's tasks table, and the items carry
 * the same attributes a pending task has, so the store does the same work per item.
 */
async function naiveSubmit(endpoint, tasks) {
  const client = dynamoClient(endpoint);
  const table = `bench-naive-${randomBytes(4).toString("hex")}`;
  try {
    const { Table: t } = await client.send(new DescribeTableCommand({ TableName: "spawn-tasks" }));
    await client.send(
      new CreateTableCommand({
        TableName: table,
        BillingMode: "PAY_PER_REQUEST",
        AttributeDefinitions: t.AttributeDefinitions,
        KeySchema: t.KeySchema,
        GlobalSecondaryIndexes: (t.GlobalSecondaryIndexes ?? []).map((g) => ({
          IndexName: g.IndexName,
          KeySchema: g.KeySchema,
          Projection: g.Projection,
        })),
      }),
    );
    await waitFor("the scratch table", async () => {
      const d = await client.send(new DescribeTableCommand({ TableName: table }));
      return d.Table?.TableStatus === "ACTIVE";
    });
    const sweepId = `naive-${Date.now().toString(36)}`;
    const shards = Math.min(32, Math.max(1, Math.ceil(tasks / 500)));
    const now = Date.now();
    const t0 = performance.now();
    for (let i = 0; i < tasks; i++) {
      const pk = `${sweepId}#${i % shards}`;
      await client.send(
        new PutItemCommand({
          TableName: table,
          Item: {
            pk: { S: pk },
            index: { N: String(i) },
            sweepId: { S: sweepId },
            shard: { N: String(i % shards) },
            taskId: { S: `t${i.toString(16).padStart(12, "0")}` },
            params: { S: JSON.stringify({ i }) },
            status: { S: "pending" },
            attempt: { N: "0" },
            failures: { N: "0" },
            lost: { N: "0" },
            readyAt: { N: String(now) },
            updatedAt: { N: String(now) },
            readyKey: { S: `${String(now).padStart(16, "0")}#${String(i).padStart(10, "0")}` },
            pendingPk: { S: pk },
          },
        }),
      );
    }
    return { wallMs: performance.now() - t0 };
  } finally {
    await client.send(new DeleteTableCommand({ TableName: table })).catch(() => undefined);
    client.destroy();
  }
}

/** Time from `spawn sweep cancel` returning until the sweep is no longer active (`spawn local status`). */
async function cancelDrain(home, launched, limitMs = 120_000) {
  const t0 = launched.cancelledAt;
  const deadline = t0 + limitMs;
  while (performance.now() < deadline) {
    const st = await home.json(["local", "status"]);
    if (!st.activeSweeps.includes(launched.sweepId)) return { ms: performance.now() - t0, timedOut: false };
    await new Promise((r) => setTimeout(r, 1000));
  }
  return { ms: performance.now() - t0, timedOut: true };
}

export async function main({ reps = 3, tasks = 10_000, log = console.log } = {}) {
  const cold = [];
  const warm = [];
  const naive = [];
  const dryRun = [];
  let drain;
  for (let rep = 1; rep <= reps; rep++) {
    // Cold: the launch itself finds no control plane and starts one.
    await withSpawnHome("submit-cold", async (home) => {
      const spec = await home.writeSpec("big.yaml", specText("submit-cold", tasks));
      const r = await launchOnce(home, spec, tasks);
      cold.push(r);
      log(`  rep ${rep}: cold launch (starts the control plane): ${fmtS(r.wallMs)}`);
      if (rep === 1) {
        // Informational, once: how long the control plane takes to wind the cancelled sweep down
        // (it cancels every pending task, and the agent notices at its next heartbeat).
        drain = await cancelDrain(home, r);
        log(`  rep ${rep}: cancel → sweep inactive: ${fmtS(drain.ms)}${drain.timedOut ? " (gave up)" : ""}`);
      }
    });
    // Warm: the control plane is running and has served a small launch before.
    await withSpawnHome("submit-warm", async (home) => {
      const spec = await home.writeSpec("big.yaml", specText("submit", tasks));
      const small = await home.writeSpec("small.yaml", specText("submit-warmup", 100));
      check(await home.cli(["sweep", "launch", small, "--wait"], { timeoutMs: 120_000 }), "warm-up sweep");
      // Where the time goes without the store: CLI start-up, reading the spec, expanding and checking 10,000 tasks.
      const dry = check(
        await home.cli(["sweep", "launch", spec, "--dry-run", "--json"], { timeoutMs: 60_000 }),
        "dry run",
      );
      dryRun.push({ wallMs: dry.ms });
      const endpoint = home.serverInfo()?.endpoint;
      if (!endpoint) throw new Error("no server.json after the warm-up");
      const p = await naiveSubmit(endpoint, tasks);
      naive.push(p);
      log(`  rep ${rep}: naive sequential PutItem × ${tasks}: ${fmtS(p.wallMs)}`);
      const r = await launchOnce(home, spec, tasks);
      warm.push(r);
      log(`  rep ${rep}: warm launch: ${fmtS(r.wallMs)} (dry run alone: ${fmtS(dry.ms)})`);
    });
  }
  const warmMs = median(warm.map((r) => r.wallMs));
  const coldMs = median(cold.map((r) => r.wallMs));
  const naiveMs = median(naive.map((r) => r.wallMs));
  const dryMs = median(dryRun.map((r) => r.wallMs));
  const result = {
    name: NAME,
    tasks,
    reps,
    spawn: {
      warmS: round(warmMs / 1000),
      coldS: round(coldMs / 1000),
      dryRunS: round(dryMs / 1000),
      runsWarmS: warm.map((r) => round(r.wallMs / 1000)),
      runsColdS: cold.map((r) => round(r.wallMs / 1000)),
      runsDryRunS: dryRun.map((r) => round(r.wallMs / 1000)),
    },
    peer: {
      what: `${tasks} sequential single PutItem calls (same dynalite, same table layout)`,
      wallS: round(naiveMs / 1000),
      runsS: naive.map((r) => round(r.wallMs / 1000)),
    },
    ratioWarm: round(warmMs / naiveMs),
    ratioCold: round(coldMs / naiveMs),
    target: `< ${TARGET_S} s`,
    targetMetWarm: warmMs / 1000 < TARGET_S,
    targetMetCold: coldMs / 1000 < TARGET_S,
    repsUnderTargetWarm: `${warm.filter((r) => r.wallMs / 1000 < TARGET_S).length}/${warm.length}`,
    repsUnderTargetCold: `${cold.filter((r) => r.wallMs / 1000 < TARGET_S).length}/${cold.length}`,
    cancelDrain: drain
      ? {
          what: "spawn sweep cancel returned → sweep no longer active (1 run, polled every 1 s)",
          s: round(drain.ms / 1000, 1),
          timedOut: drain.timedOut,
        }
      : null,
    context:
      "SkyPilot users report minutes to submit 1,000 jobs (e.g. skypilot-org/skypilot#4263, #4295); not measured here",
  };
  log("");
  log(`submit: sweep launch of ${tasks} tasks (no --wait), median of ${reps}`);
  log(`  spawn, control plane running: ${fmtS(warmMs)}   (of which CLI + plan, no store: ${fmtS(dryMs)})`);
  log(`  spawn, cold (starts it):      ${fmtS(coldMs)}`);
  log(`  naive sequential PutItem:     ${fmtS(naiveMs)}`);
  log(`  ratio spawn/naive: ${result.ratioWarm}x warm, ${result.ratioCold}x cold`);
  log(
    `  target < ${TARGET_S} s (median): warm ${result.targetMetWarm ? "MET" : "NOT MET"} (${result.repsUnderTargetWarm} runs under), ` +
      `cold ${result.targetMetCold ? "MET" : "NOT MET"} (${result.repsUnderTargetCold} runs under)`,
  );
  if (drain)
    log(`  cancel of the ${tasks}-task sweep → inactive: ${fmtS(drain.ms)} (one run; informational)`);
  log(`  context: ${result.context}`);
  return result;
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ options: { reps: { type: "string" }, tasks: { type: "string" } } });
  await runStandalone(
    NAME,
    () => main({ reps: Number(values.reps ?? 3), tasks: Number(values.tasks ?? 10_000) }),
    20 * 60_000,
  );
}
