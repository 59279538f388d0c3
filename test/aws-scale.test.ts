/**
 * A 2,000-instance sweep on the simulated EC2 (capacity per pool, token buckets, random spot
 * preemptions), driven by the real reconcile and Ec2Compute, with a simulated agent population
 * that claims, renews and finishes tasks through the real store on dynalite. Time is
 * simulated: each step moves the clock 20 s.
 *
 * Must hold: every task ends exactly once (one successful finishing write per task, all
 * succeeded), and the live instance count never exceeds max_instances, in our records or at
 * EC2, checked after every action of every step.
 */
import { randomUUID } from "node:crypto";
import { beforeAll, expect, test } from "vitest";
import type { SpawnEvent } from "../core/events.js";
import type { SweepRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import { handleInstanceEvent, reconcile } from "../core/reconcile.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { Ec2Compute } from "../providers/aws/ec2-compute.js";
import { Ec2Throttle } from "../providers/aws/ec2-throttle.js";
import type { DynamoStateStore } from "../providers/dynamodb/store.js";
import { useDynaliteStore } from "./helpers/dynamo.js";
import { SimAgents, SimClock, SimEc2, seeded, syntheticCatalog } from "./helpers/sim-ec2.js";

const MAX_INSTANCES = 2000;
const TASKS = 2200;
const STEP_MS = 20_000;
const PREEMPT_RATE = 0.02;
const REGIONS = ["us-east-1", "us-west-2", "eu-west-1"];
const TYPES = ["g5.xlarge", "g6.xlarge"];

const useStore = useDynaliteStore("scale");
let store: DynamoStateStore;
beforeAll(() => {
  ({ store } = useStore());
});

/** Two AZs × two types per region, spot and on-demand; us-east-1 (preferred) has little spot. */
const catalog = () =>
  syntheticCatalog(REGIONS, TYPES, (region) => (region === "us-east-1" ? 150 : 400), "snapshot test");

test("2,000 instances, random preemptions: every task ends exactly once and never more than max_instances live", {
  timeout: 600_000,
}, async () => {
  // Given a simulated EC2 of three regions and a sweep of 4,000 tasks on up to 2,000 instances
  const clock = new SimClock(Date.UTC(2026, 0, 1));
  const random = seeded(42);
  const { offers, capacity } = catalog();
  const sim = new SimEc2({ clock, capacity, random, bootMs: 30_000 });
  const compute = new Ec2Compute({
    client: sim.client,
    offersFor: () => offers,
    launchConfig: sim.launchConfig,
    stack: "spawn",
    throttle: new Ec2Throttle({ clock, sleep: clock.sleep, random }),
  });
  const spec = parseSpec({
    name: "scale",
    command: "true",
    params: { grid: { i: { range: [0, TASKS] } } },
    max_instances: MAX_INSTANCES,
    lease: "120s",
    ttl: "6h",
    resources: { gpus: 1, regions: REGIONS, on_demand_fallback: true, fallback_after_preemptions: 20 },
  });
  const sweep: SweepRecord = await createSweep(
    { store, clock },
    {
      sweepId: `scale-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "tester",
      provider: "aws",
    },
  );
  const events: SpawnEvent[] = [];
  const deps = {
    store,
    compute,
    clock,
    random,
    events: { publish: async (e: readonly SpawnEvent[]) => void events.push(...e) },
  };
  const agents = new SimAgents({ store, sweep, sim, clock, random });
  let maxRecordsLive = 0;
  let maxEc2Live = 0;
  const checkLive = async (when: string) => {
    const live = (await store.listInstances(sweep.sweepId)).filter((i) => i.status !== "terminated").length;
    const atEc2 = sim.live().length;
    maxRecordsLive = Math.max(maxRecordsLive, live);
    maxEc2Live = Math.max(maxEc2Live, atEc2);
    expect(live, `live records ${when}`).toBeLessThanOrEqual(MAX_INSTANCES);
    expect(atEc2, `live at EC2 ${when}`).toBeLessThanOrEqual(MAX_INSTANCES);
  };

  // When the control loop, EC2 and the agents run step by step until the sweep ends
  let step = 0;
  let preempted = 0;
  let status = "running";
  for (; step < 80 && status === "running"; step++) {
    // Spot takes instances back.
    const taken = sim.preempt(PREEMPT_RATE);
    preempted += taken.length;
    // EventBridge delivers the warning for a few each step (some twice: at least once delivery);
    // the rest are found by describe. Each event reconciles the whole sweep, so a few keep it fast.
    for (const ec2Id of taken.slice(0, 2)) {
      const twice = random() < 0.3;
      await handleInstanceEvent(deps, { providerRef: ec2Id, cause: "interruption", state: "terminate" });
      if (twice)
        await handleInstanceEvent(deps, { providerRef: ec2Id, cause: "interruption", state: "terminate" });
    }
    await checkLive(`after the interruption events of step ${step}`);
    const result = await reconcile(deps, sweep.sweepId);
    await checkLive(`after reconcile at step ${step}`);
    await agents.step(step);
    await checkLive(`after the agents at step ${step}`);
    status = result.finished ?? result.status ?? status;
    clock.advance(STEP_MS);
  }

  // Then the sweep succeeded, every task ended exactly once, and it was announced once
  const tasks = await store.listTasks(sweep.sweepId, sweep.shardCount);
  expect(status).toBe("succeeded");
  expect(tasks).toHaveLength(TASKS);
  expect(tasks.every((t) => t.status === "succeeded")).toBe(true);
  expect(agents.finishedBy.size).toBe(TASKS);
  expect([...agents.finishedBy.values()].every((n) => n === 1)).toBe(true);
  expect(events.filter((e) => e.type === "SweepCompleted")).toHaveLength(1);
  // And it really ran at scale, through preemptions and fallbacks, within max_instances
  expect(maxRecordsLive).toBe(MAX_INSTANCES);
  expect(maxEc2Live).toBeLessThanOrEqual(MAX_INSTANCES);
  expect(preempted).toBeGreaterThan(100);
  const records = await store.listInstances(sweep.sweepId);
  const regions = new Set(records.map((r) => r.placement?.region));
  expect(regions).toEqual(new Set(REGIONS));
  expect(records.some((r) => r.placement?.market === "on-demand")).toBe(true);
  expect(events.filter((e) => e.type === "InstancePreempted").length).toBe(
    records.filter((r) => r.reason === "preempted: spot interruption").length,
  );
  expect(sim.throttled).toBe(0);
  console.log(
    `scale: ${step} steps (${(step * STEP_MS) / 1000} s simulated), ${records.length} instances launched, ${preempted} preempted, ` +
      `EC2 calls ${JSON.stringify(sim.calls)}`,
  );
});
