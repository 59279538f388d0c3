/**
 * Launching at scale on the simulated EC2 (test/helpers/sim-ec2.ts), on simulated time:
 *
 *   1. time to have 5,000 instances requested across 3 regions by Ec2Compute, against the
 *      bound EC2's RunInstances resource buckets allow (per region 1,000 at once, then 2 per
 *      second: with 3 regions, 3,000 at once and 2,000 more in 333 s). ratio = bound / ours,
 *      target ≥ 0.9. Capacity is ample, so only the buckets limit.
 *   2. EC2 API calls per 1,000 instances in that launch (CreateFleet, DescribeAvailabilityZones),
 *      and calls refused by the simulated EC2 (target 0: the client-side buckets pace it).
 *   3. DynamoDB writes per task lifecycle: a sweep of `tasks` tasks on `instances` instances run
 *      by the real reconcile, Ec2Compute and store on dynalite, with simulated agents (the real
 *      agent's writes: heartbeat per instance, claim, lease renewal, finish) and 2% spot
 *      preemptions per 20 s step. Every write to the store is counted (a wrapped store; putTasks
 *      counts its items). Target ≤ 6 per task, heartbeats per instance rather than per task.
 *
 * The TypeScript modules are bundled on the fly with esbuild (Node 20 doesn't strip types).
 *
 *   node bench/launch-scale.mjs [--instances 5000] [--tasks 400] [--sweep-instances 100]
 */
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { build } from "esbuild";
import { isMain, OUT_DIR, ROOT, round, runStandalone } from "./lib.mjs";

export const NAME = "launch-scale";
export const TARGET_RATIO = 0.9;
export const TARGET_WRITES_PER_TASK = 6;

const ENTRY = `
export { SimEc2, SimClock, SimAgents, poolKey, seeded, syntheticCatalog } from "./test/helpers/sim-ec2.ts";
export { Ec2Compute } from "./providers/aws/ec2-compute.ts";
export { Ec2Throttle, RUN_INSTANCES_BUCKET } from "./providers/aws/ec2-throttle.ts";
export { reconcile, handleInstanceEvent } from "./core/reconcile.ts";
export { createSweep } from "./core/sweeps.ts";
export { parseSpec } from "./core/spec.ts";
export { expandParams } from "./core/params.ts";
export { DynamoStateStore } from "./providers/dynamodb/store.ts";
export { ensureTables } from "./providers/dynamodb/tables.ts";
`;

async function load() {
  const out = await build({
    stdin: { contents: ENTRY, resolveDir: ROOT, sourcefile: "launch-scale-entry.ts", loader: "ts" },
    bundle: true,
    write: false,
    platform: "node",
    format: "esm",
    target: "node20",
    external: ["dynalite", "@aws-sdk/*", "zod", "picomatch"],
    logLevel: "silent",
  });
  // Inside the repository (bench/out, gitignored), so the bundle's bare imports resolve in node_modules.
  await mkdir(OUT_DIR, { recursive: true });
  const file = join(OUT_DIR, `launch-scale-${process.pid}.mjs`);
  await writeFile(file, out.outputFiles[0].text);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    await rm(file, { force: true });
  }
}

const REGIONS = ["us-east-1", "us-west-2", "eu-west-1"];
const TYPES = ["g5.xlarge", "g6.xlarge"];

/** Two AZs × two types per region, spot and on-demand; `spotPerPool` instances per spot pool. */
const catalog = (m, spotPerPool) => m.syntheticCatalog(REGIONS, TYPES, () => spotPerPool, "snapshot bench");

/** Part 1 and 2: one launch of `count` instances across 3 regions, on simulated time. */
async function launchRun(m, count) {
  const t0 = Date.UTC(2026, 0, 1);
  const clock = new m.SimClock(t0);
  const { offers, capacity } = catalog(m, count);
  const sim = new m.SimEc2({ clock, capacity, random: m.seeded(1) });
  const compute = new m.Ec2Compute({
    client: sim.client,
    offersFor: () => offers,
    launchConfig: sim.launchConfig,
    stack: "bench",
    throttle: new m.Ec2Throttle({ clock, sleep: clock.sleep, random: m.seeded(2) }),
    maxLaunchWaitMs: 3_600_000,
  });
  const spec = m.parseSpec({
    name: "bench",
    command: "true",
    max_instances: 5000,
    resources: { gpus: 1, regions: REGIONS },
  });
  const sweep = {
    sweepId: "bench",
    name: "bench",
    owner: "bench",
    provider: "aws",
    status: "running",
    active: true,
    spec,
    taskCount: count,
    shardCount: 1,
    launchSeq: 0,
    createdAt: t0,
    updatedAt: t0,
  };
  const ids = Array.from({ length: count }, (_, i) => `bench-i${i}`);
  const wall0 = performance.now();
  const results = await compute.launch({ sweep, instanceIds: ids });
  const wallMs = performance.now() - wall0;
  const launched = results.filter((r) => r.providerRef).length;
  if (launched !== count)
    throw new Error(`launched ${launched} of ${count}: ${results.find((r) => r.error)?.error}`);
  const oursS = (clock.now() - t0) / 1000;
  const bucket = m.RUN_INSTANCES_BUCKET;
  const boundS = Math.max(
    0,
    (count - REGIONS.length * bucket.capacity) / (REGIONS.length * bucket.refillPerSecond),
  );
  const calls = Object.values(sim.calls).reduce((a, b) => a + b, 0);
  const perRegion = Object.fromEntries(
    REGIONS.map((r) => [r, results.filter((x) => x.placement?.region === r).length]),
  );
  return {
    instances: count,
    simulatedS: round(oursS, 1),
    boundS: round(boundS, 1),
    ratio: oursS === 0 ? 1 : round(boundS / oursS, 3),
    apiCalls: sim.calls,
    apiCallsPer1000: round((calls / count) * 1000, 1),
    fleets: sim.fleets.length,
    refusedByEc2: sim.throttled,
    perRegion,
    wallMs: round(wallMs, 0),
  };
}

/** Part 3: a whole sweep on dynalite; every store write counted. */
async function lifecycleRun(m, { tasks, instances }) {
  const { default: dynalite } = await import("dynalite");
  const { DynamoDBClient } = await import("@aws-sdk/client-dynamodb");
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const client = new DynamoDBClient({
    endpoint: `http://127.0.0.1:${server.address().port}`,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
  });
  try {
    await m.ensureTables(client, "bench-");
    const base = new m.DynamoStateStore(client, "bench-");
    const writes = {};
    const count = (name, n = 1) => {
      writes[name] = (writes[name] ?? 0) + n;
    };
    const WRITES = ["createSweep", "updateSweep", "putTasks", "updateTask", "putInstance", "updateInstance"];
    const store = new Proxy(base, {
      get(target, prop) {
        const value = Reflect.get(target, prop);
        if (typeof value !== "function") return value;
        if (!WRITES.includes(prop)) return value.bind(target);
        return async (...args) => {
          const out = await value.apply(target, args);
          count(prop, prop === "putTasks" ? args[0].length : 1);
          return out;
        };
      },
    });
    const clock = new m.SimClock(Date.UTC(2026, 0, 1));
    const random = m.seeded(7);
    const { offers, capacity } = catalog(m, instances);
    const sim = new m.SimEc2({ clock, capacity, random });
    const compute = new m.Ec2Compute({
      client: sim.client,
      offersFor: () => offers,
      launchConfig: sim.launchConfig,
      stack: "bench",
      throttle: new m.Ec2Throttle({ clock, sleep: clock.sleep, random }),
    });
    const spec = m.parseSpec({
      name: "bench",
      command: "true",
      params: { grid: { i: { range: [0, tasks] } } },
      max_instances: instances,
      lease: "300s",
      resources: { gpus: 1, regions: REGIONS },
    });
    const sweep = await m.createSweep(
      { store, clock },
      {
        sweepId: `bench-${process.pid}`,
        spec,
        tasks: m.expandParams(spec.params, spec.repeat),
        owner: "bench",
        provider: "aws",
      },
    );
    const agents = new m.SimAgents({ store, sweep, sim, clock, random });
    const deps = { store, compute, clock, random };
    let status = "running";
    let step = 0;
    let preempted = 0;
    for (; step < 400 && status === "running"; step++) {
      preempted += sim.preempt(0.02).length;
      const result = await m.reconcile(deps, sweep.sweepId);
      status = result.finished ?? result.status ?? status;
      await agents.step(step);
      clock.advance(20_000);
    }
    if (status !== "succeeded") throw new Error(`the sweep ended ${status} after ${step} steps`);
    const total = Object.values(writes).reduce((a, b) => a + b, 0);
    const instanceRecords = (await base.listInstances(sweep.sweepId)).length;
    return {
      tasks,
      maxInstances: instances,
      instancesLaunched: instanceRecords,
      preempted,
      steps: step,
      writes,
      writesPerTask: round(total / tasks, 2),
      instanceWritesPerTask: round(((writes.putInstance ?? 0) + (writes.updateInstance ?? 0)) / tasks, 2),
      taskWritesPerTask: round(((writes.putTasks ?? 0) + (writes.updateTask ?? 0)) / tasks, 2),
    };
  } finally {
    client.destroy();
    server.close();
  }
}

export async function main({ instances = 5000, tasks = 400, sweepInstances = 100, log = console.log } = {}) {
  const m = await load();
  const launch = await launchRun(m, instances);
  log(
    `launch ${launch.instances} instances across ${REGIONS.length} regions: ${launch.simulatedS} s simulated, ` +
      `bound ${launch.boundS} s (ratio ${launch.ratio}, target ≥ ${TARGET_RATIO}); ` +
      `${launch.apiCallsPer1000} EC2 API calls per 1,000 instances (${launch.fleets} fleets), ` +
      `${launch.refusedByEc2} refused by EC2; per region ${JSON.stringify(launch.perRegion)}; ${launch.wallMs} ms wall`,
  );
  const lifecycle = await lifecycleRun(m, { tasks, instances: sweepInstances });
  log(
    `sweep of ${lifecycle.tasks} tasks on ≤ ${lifecycle.maxInstances} instances (${lifecycle.instancesLaunched} launched, ` +
      `${lifecycle.preempted} preempted, ${lifecycle.steps} steps): ${lifecycle.writesPerTask} DynamoDB writes per task ` +
      `(tasks ${lifecycle.taskWritesPerTask}, instances ${lifecycle.instanceWritesPerTask}; target ≤ ${TARGET_WRITES_PER_TASK}); ` +
      `${JSON.stringify(lifecycle.writes)}`,
  );
  return {
    launch,
    lifecycle,
    targetMet: launch.ratio >= TARGET_RATIO && lifecycle.writesPerTask <= TARGET_WRITES_PER_TASK,
  };
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      instances: { type: "string" },
      tasks: { type: "string" },
      "sweep-instances": { type: "string" },
    },
  });
  await runStandalone(
    NAME,
    () =>
      main({
        ...(values.instances ? { instances: Number(values.instances) } : {}),
        ...(values.tasks ? { tasks: Number(values.tasks) } : {}),
        ...(values["sweep-instances"] ? { sweepInstances: Number(values["sweep-instances"]) } : {}),
      }),
    30 * 60_000,
  );
}
