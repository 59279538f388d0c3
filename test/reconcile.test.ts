/**
 * The control loop against the real DynamoStateStore on in-process dynalite, with a fake
 * Compute (records launches and terminations; the test sets what each instance looks like)
 * and a clock the test moves by hand.
 */
import { randomUUID } from "node:crypto";
import {
  CreateFleetCommand,
  DescribeAvailabilityZonesCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { mockClient } from "aws-sdk-client-mock";
import { beforeAll, beforeEach, describe, expect, test } from "vitest";
import type { SpawnEvent } from "../core/events.js";
import type { InstanceRecord, Placement, SweepRecord, TaskRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import { slotsOn } from "../core/placement.js";
import type {
  Clock,
  Compute,
  EventSink,
  LaunchRequest,
  LaunchResult,
  ObservedInstance,
  StateStore,
} from "../core/ports.js";
import {
  handleInstanceEvent,
  instanceIdFor,
  PREEMPTED_REASON,
  type ReconcileOptions,
  reapExpiredInstances,
  reconcile,
} from "../core/reconcile.js";
import { parseSpec } from "../core/spec.js";
import { cancelSweep, createSweep } from "../core/sweeps.js";
import { Ec2Compute } from "../providers/aws/ec2-compute.js";
import { Ec2Throttle } from "../providers/aws/ec2-throttle.js";
import { DynamoStateStore } from "../providers/dynamodb/store.js";
import { ensureTables } from "../providers/dynamodb/tables.js";
import { type DynamoEngine, useDynaliteStore, wrapStore } from "./helpers/dynamo.js";

const NOW = 1_700_000_000_000;

class TestClock implements Clock {
  constructor(public t: number = NOW) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}

/** A compute provider in memory: launched instances are `running` until the test says otherwise. */
class FakeCompute implements Compute {
  readonly launches: LaunchRequest[] = [];
  readonly terminations: Array<{ instanceIds: string[]; reason: string }> = [];
  readonly states = new Map<string, ObservedInstance["state"]>();
  /** When set, every launched instance fails with this error. */
  failWith: string | undefined;
  /** When set, launch() throws this error. */
  throwWith: string | undefined;
  /** When set, launched instances land here (as EC2 would say), with this many GPUs. */
  placement: Placement | undefined;
  /** Instances the provider reports as taken back by spot. */
  readonly preempted = new Set<string>();
  /** When set, each instance the provider would launch has this many GPUs (as an offer would say). */
  gpusPerInstance = 0;

  async expectedSlots(sweep: SweepRecord): Promise<number> {
    return slotsOn(sweep.spec.resources, this.gpusPerInstance);
  }

  async launch(request: LaunchRequest): Promise<LaunchResult[]> {
    this.launches.push(request);
    if (this.throwWith) throw new Error(this.throwWith);
    return request.instanceIds.map((instanceId) => {
      if (this.failWith) return { instanceId, error: this.failWith };
      this.states.set(instanceId, "running");
      return {
        instanceId,
        providerRef: `ref-${instanceId}`,
        host: "127.0.0.1",
        ...(this.placement ? { placement: this.placement, gpus: 4 } : {}),
      };
    });
  }

  async terminate(instances: readonly InstanceRecord[], reason: string): Promise<void> {
    this.terminations.push({ instanceIds: instances.map((i) => i.instanceId), reason });
    for (const i of instances) this.states.set(i.instanceId, "gone");
  }

  async describe(instances: readonly InstanceRecord[]): Promise<ObservedInstance[]> {
    return instances
      .filter((i) => this.states.has(i.instanceId))
      .map((i) => ({
        instanceId: i.instanceId,
        state: this.states.get(i.instanceId)!,
        ...(this.preempted.has(i.instanceId) ? { preempted: true } : {}),
      }));
  }

  /** Every instance id ever launched, in order. */
  get launchedIds(): string[] {
    return this.launches.flatMap((l) => [...l.instanceIds]);
  }

  terminatedIds(reason?: string): string[] {
    return this.terminations
      .filter((t) => reason === undefined || t.reason === reason)
      .flatMap((t) => t.instanceIds);
  }
}

/** A promise and its resolver; also resolves by itself after `ms`, so a changed implementation cannot deadlock a test. */
function gate(ms = 2_000): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
    setTimeout(resolve, ms).unref();
  });
  return { promise, open };
}

const useStore = useDynaliteStore("rc");
let store: DynamoStateStore;
let engine: DynamoEngine;
beforeAll(() => {
  ({ store, engine } = useStore());
});

interface World {
  clock: TestClock;
  compute: FakeCompute;
  sweep: SweepRecord;
  /** One reconcile pass with this world's store, compute and clock. */
  pass: (options?: ReconcileOptions) => ReturnType<typeof reconcile>;
  reload: () => Promise<SweepRecord>;
  tasks: () => Promise<TaskRecord[]>;
  instances: () => Promise<InstanceRecord[]>;
}

/** Creates a running sweep of `taskCount` tasks (params `i` = 0..n-1) through createSweep. */
async function world(
  taskCount: number,
  extra: Record<string, unknown> = {},
  on: StateStore = store,
): Promise<World> {
  const clock = new TestClock();
  const compute = new FakeCompute();
  const spec = parseSpec({
    name: "rc",
    command: "echo {{i}}",
    params: { grid: { i: { range: [0, taskCount] } } },
    ...extra,
  });
  const sweep = await createSweep(
    { store: on, clock },
    {
      sweepId: `rc-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "tester",
      provider: "local",
    },
  );
  return {
    clock,
    compute,
    sweep,
    pass: (options) =>
      reconcile(
        { store: on, compute, clock, random: () => 0.5, ...(options ? { options } : {}) },
        sweep.sweepId,
      ),
    reload: async () => (await on.getSweep(sweep.sweepId))!,
    tasks: () => on.listTasks(sweep.sweepId, sweep.shardCount),
    instances: () => on.listInstances(sweep.sweepId),
  };
}

/** An agent claims task `index` with a lease of `leaseMs`. */
function claim(w: World, index: number, leaseMs = 60_000, owner = "agent-1"): Promise<TaskRecord> {
  const now = w.clock.now();
  return store.updateTask(
    w.sweep.sweepId,
    index,
    w.sweep.shardCount,
    { status: "pending" },
    {
      status: "running",
      attempt: 1,
      leaseOwner: owner,
      leaseExpiresAt: now + leaseMs,
      startedAt: now,
      updatedAt: now,
    },
  );
}

/** An agent finishes task `index`. */
function finish(w: World, index: number, status: "succeeded" | "failed"): Promise<TaskRecord> {
  const now = w.clock.now();
  return store.updateTask(
    w.sweep.sweepId,
    index,
    w.sweep.shardCount,
    { status: ["pending", "running"] },
    {
      status,
      exitCode: status === "succeeded" ? 0 : 1,
      leaseOwner: null,
      leaseExpiresAt: null,
      finishedAt: now,
      updatedAt: now,
      ...(status === "failed" ? { failures: 1, error: "exited with code 1" } : {}),
    },
  );
}

/** The agent on an instance reports in now. */
function heartbeat(w: World, instanceId: string): Promise<InstanceRecord> {
  return store.updateInstance(
    w.sweep.sweepId,
    instanceId,
    { status: ["launching", "running"] },
    { status: "running", heartbeatAt: w.clock.now() },
  );
}

async function heartbeatAll(w: World): Promise<void> {
  for (const i of await w.instances()) if (i.status !== "terminated") await heartbeat(w, i.instanceId);
}

describe("(a) launching: as many instances as the open work needs, at most max_instances", () => {
  test.each([
    { tasks: 3, extra: { max_instances: 10 }, want: 3 },
    { tasks: 10, extra: { max_instances: 2 }, want: 2 },
    { tasks: 10, extra: { max_instances: 10, resources: { slots: 4 } }, want: 3 },
    { tasks: 1, extra: {}, want: 1 },
  ])("$tasks tasks with $extra → $want instances", async ({ tasks, extra, want }) => {
    // Given a fresh running sweep
    const w = await world(tasks, extra);
    // When one reconcile pass runs
    const result = await w.pass();
    // Then it launched exactly `want` instances with ids from the launch sequence
    const ids = Array.from({ length: want }, (_, i) => instanceIdFor(w.sweep.sweepId, i));
    expect(result.launched).toEqual(ids);
    expect(w.compute.launchedIds).toEqual(ids);
    expect((await w.reload()).launchSeq).toBe(want);
    // And recorded each with its slots, provider handle and absolute deadline (launch + ttl)
    const instances = await w.instances();
    expect(instances.map((i) => i.instanceId).sort()).toEqual([...ids].sort());
    const slots = (extra as { resources?: { slots?: number } }).resources?.slots ?? 1;
    for (const i of instances) {
      expect(i).toMatchObject({
        status: "launching",
        slots,
        providerRef: `ref-${i.instanceId}`,
        launchedAt: NOW,
      });
      expect(i.deadline).toBe(NOW + 86_400_000);
    }
  });

  test("the launch request carries the sweep with its reserved launch sequence", async () => {
    // Given a sweep of 2 tasks, max_instances 5
    const w = await world(2, { max_instances: 5 });
    // When it is reconciled
    await w.pass();
    // Then compute was asked once, for the sweep as reserved
    expect(w.compute.launches).toHaveLength(1);
    expect(w.compute.launches[0]?.sweep.sweepId).toBe(w.sweep.sweepId);
    expect(w.compute.launches[0]?.sweep.launchSeq).toBe(2);
  });

  test("fewer open tasks need fewer instances: nothing is launched for finished work", async () => {
    // Given 4 tasks, max_instances 4, of which 3 are already done
    const w = await world(4, { max_instances: 4 });
    for (const i of [0, 1, 2]) await finish(w, i, "succeeded");
    // When reconcile runs
    const result = await w.pass();
    // Then one instance is launched, for the one open task
    expect(result.launched).toHaveLength(1);
    expect(w.compute.launchedIds).toHaveLength(1);
  });

  test("multi-slot instances (8 GPUs, gpus: 1) are sized by the provider's slots, not one per task", async () => {
    // Given 20 one-GPU tasks, max_instances 10, and a provider launching 8-GPU instances
    const w = await world(20, { max_instances: 10, resources: { gpus: 1 } });
    w.compute.gpusPerInstance = 8;
    // When reconcile runs
    const result = await w.pass();
    // Then 3 instances are launched (ceil(20 / 8)), each recorded with 8 slots
    expect(result.launched).toHaveLength(3);
    expect((await w.instances()).map((i) => i.slots)).toEqual([8, 8, 8]);
  });

  test("a lost instance is replaced", async () => {
    // Given a sweep of 2 tasks running on 2 instances
    const w = await world(2, { max_instances: 2 });
    await w.pass();
    await heartbeatAll(w);
    // When one instance disappears (spot interruption)
    w.compute.states.set(instanceIdFor(w.sweep.sweepId, 0), "gone");
    const result = await w.pass();
    // Then it is marked terminated and a new one is launched with the next sequence number
    expect(result.terminated).toEqual([instanceIdFor(w.sweep.sweepId, 0)]);
    expect(result.launched).toEqual([instanceIdFor(w.sweep.sweepId, 2)]);
    expect((await w.instances()).filter((i) => i.status !== "terminated")).toHaveLength(2);
  });
});

describe("(b)(c) idempotence and concurrency", () => {
  test("a second pass launches nothing", async () => {
    // Given a sweep that one pass already launched for
    const w = await world(3, { max_instances: 10 });
    await w.pass();
    await heartbeatAll(w);
    // When reconcile runs again, twice
    const second = await w.pass();
    const third = await w.pass();
    // Then nothing more is launched or terminated
    expect(second.launched).toEqual([]);
    expect(third.launched).toEqual([]);
    expect(second.terminated).toEqual([]);
    expect(w.compute.launchedIds).toHaveLength(3);
    expect((await w.reload()).launchSeq).toBe(3);
  });

  test("two concurrent passes never launch more than the work needs in total", async () => {
    // Given a fresh sweep needing 3 instances
    const w = await world(3, { max_instances: 10 });
    // When two passes run at once
    const [a, b] = await Promise.all([w.pass(), w.pass()]);
    // Then together they launched exactly 3, one of them losing the launchSeq reservation
    expect(a.launched.length + b.launched.length).toBe(3);
    expect(w.compute.launchedIds).toHaveLength(3);
    expect(new Set(w.compute.launchedIds).size).toBe(3);
    expect((await w.reload()).launchSeq).toBe(3);
    expect(await w.instances()).toHaveLength(3);
  });

  test("five concurrent passes on several sweeps never over-launch", async () => {
    // Given two sweeps needing 2 and 4 instances
    const worlds = [await world(2, { max_instances: 3 }), await world(8, { max_instances: 4 })];
    // When five passes per sweep run at once
    await Promise.all(worlds.flatMap((w) => Array.from({ length: 5 }, () => w.pass())));
    // Then each sweep got exactly what it needs
    expect(worlds[0]?.compute.launchedIds).toHaveLength(2);
    expect(worlds[1]?.compute.launchedIds).toHaveLength(4);
  });

  // Regression: the launch reservation (launchSeq) and the instance records are separate writes.
  // A pass that reads the sweep after another pass reserved seq 0..2, but lists instances before
  // that pass wrote the records, must count the reservation as launches in flight.
  test("a pass that sees another pass's reservation but not yet its instance records does not launch again", async () => {
    // Given a fresh sweep needing 3 instances, and two passes A and B interleaved so that
    // A reads the sweep after B reserved launchSeq, and lists instances before B records them
    const w = await world(3, { max_instances: 10 });
    const reservedByB = gate();
    const listedByA = gate();
    const storeB = wrapStore(store, {
      updateSweep: async (id, expectation, update) => {
        const out = await store.updateSweep(id, expectation, update);
        if (update.launchSeq !== undefined) reservedByB.open();
        return out;
      },
      putInstance: async (instance) => {
        await listedByA.promise;
        return store.putInstance(instance);
      },
    });
    const storeA = wrapStore(store, {
      getSweep: async (id) => {
        await reservedByB.promise;
        return store.getSweep(id);
      },
      listInstances: async (id) => {
        const out = await store.listInstances(id);
        listedByA.open();
        return out;
      },
    });
    const deps = { compute: w.compute, clock: w.clock };
    // When both run
    await Promise.all([
      reconcile({ ...deps, store: storeA }, w.sweep.sweepId),
      reconcile({ ...deps, store: storeB }, w.sweep.sweepId),
    ]);
    // Then no more than 3 instances were launched in total
    expect(w.compute.launchedIds.length).toBeLessThanOrEqual(3);
  });
});

describe("(d) expired leases", () => {
  test("an expired lease goes back to pending with lost+1 and its attempt kept; a live lease is untouched", async () => {
    // Given two running tasks: one whose lease expires in 60 s, one in 10 min
    const w = await world(2, { max_instances: 2 });
    await w.pass();
    await claim(w, 0, 60_000, "agent-a");
    const live = await claim(w, 1, 600_000, "agent-b");
    // When 2 minutes pass and reconcile runs
    w.clock.advance(120_000);
    await heartbeatAll(w);
    const result = await w.pass();
    // Then task 0 is pending again, ready now, lost once, attempt 1 kept, lease cleared
    expect(result.requeued).toEqual([0]);
    const [t0, t1] = await w.tasks();
    expect(t0).toMatchObject({ status: "pending", lost: 1, failures: 0, attempt: 1, readyAt: w.clock.now() });
    expect(t0?.leaseOwner).toBeUndefined();
    expect(t0?.leaseExpiresAt).toBeUndefined();
    expect(t0?.error).toContain("agent-a");
    // And task 1 is exactly as it was
    expect(t1).toEqual(live);
    // And the re-queued task shows up as claimable in the pending index
    const pending = await store.listPendingTasks(w.sweep.sweepId, 0, { readyBy: w.clock.now() });
    expect(pending.map((t) => t.index)).toEqual([0]);
  });

  test("a second pass does not re-queue the same lease twice", async () => {
    // Given a task whose lease expired and was re-queued
    const w = await world(1);
    await w.pass();
    await claim(w, 0, 1_000);
    w.clock.advance(5_000);
    await heartbeatAll(w);
    await w.pass();
    // When reconcile runs again
    const again = await w.pass();
    // Then nothing is re-queued and lost is still 1
    expect(again.requeued).toEqual([]);
    expect((await w.tasks())[0]?.lost).toBe(1);
  });
});

describe("(e) finishing", () => {
  test("a sweep whose tasks all succeeded finishes `succeeded` with counts", async () => {
    // Given a sweep of 3 tasks, all succeeded
    const w = await world(3, { max_instances: 3 });
    for (const i of [0, 1, 2]) await finish(w, i, "succeeded");
    // When reconcile runs
    const result = await w.pass();
    // Then the sweep is succeeded, finished now, with the counts as its reason
    expect(result.finished).toBe("succeeded");
    expect(result.launched).toEqual([]);
    const sweep = await w.reload();
    expect(sweep).toMatchObject({ status: "succeeded", reason: "3 succeeded", finishedAt: NOW });
  });

  test("a sweep with any failed task finishes `failed` with counts", async () => {
    // Given a sweep of 3 tasks, 2 succeeded and 1 failed
    const w = await world(3, { max_instances: 3 });
    await finish(w, 0, "succeeded");
    await finish(w, 1, "failed");
    await finish(w, 2, "succeeded");
    // When reconcile runs
    const result = await w.pass();
    // Then the sweep is failed, with the counts
    expect(result.finished).toBe("failed");
    expect(await w.reload()).toMatchObject({ status: "failed", reason: "2 succeeded, 1 failed" });
  });

  test("a sweep with open tasks does not finish", async () => {
    // Given 2 of 3 tasks done and one still running
    const w = await world(3, { max_instances: 3 });
    await w.pass();
    await finish(w, 0, "succeeded");
    await finish(w, 1, "failed");
    await claim(w, 2);
    // When reconcile runs
    const result = await w.pass();
    // Then the sweep is still running
    expect(result.finished).toBeUndefined();
    expect((await w.reload()).status).toBe("running");
  });
});

describe("(f) cancel sticks", () => {
  test("after cancelSweep, reconcile cancels pending tasks, leaves live leases, and launches nothing", async () => {
    // Given a sweep of 3 tasks with task 0 running on a live lease
    const w = await world(3, { max_instances: 1 });
    await w.pass();
    await heartbeatAll(w);
    await claim(w, 0, 600_000);
    const launchedBefore = w.compute.launchedIds.length;
    // When the sweep is cancelled and reconcile runs
    const { changed } = await cancelSweep({ store, clock: w.clock }, w.sweep.sweepId);
    const result = await w.pass();
    // Then the pending tasks are cancelled, the running one is left to its agent
    expect(changed).toBe(true);
    expect(result.cancelledTasks).toBe(2);
    const tasks = await w.tasks();
    expect(tasks.map((t) => t.status)).toEqual(["running", "cancelled", "cancelled"]);
    expect(tasks[1]?.error).toBe("sweep cancelled");
    // And the sweep is still cancelled, active (a task is running), and nothing was launched
    expect(await w.reload()).toMatchObject({ status: "cancelled", active: true });
    expect(result.deactivated).toBe(false);
    expect(w.compute.launchedIds).toHaveLength(launchedBefore);
  });

  test("a running task whose lease expires after cancel becomes cancelled, not pending", async () => {
    // Given a cancelled sweep with a running task on a 60 s lease
    const w = await world(2, { max_instances: 1 });
    await w.pass();
    await claim(w, 0, 60_000);
    await cancelSweep({ store, clock: w.clock }, w.sweep.sweepId);
    await w.pass();
    // When the lease expires and reconcile runs
    w.clock.advance(120_000);
    const result = await w.pass();
    // Then the task is cancelled, with its lost count untouched, and nothing is re-queued
    expect(result.requeued).toEqual([]);
    const [t0] = await w.tasks();
    expect(t0).toMatchObject({
      status: "cancelled",
      lost: 0,
      error: "sweep cancelled",
      finishedAt: w.clock.now(),
    });
    expect(t0?.leaseOwner).toBeUndefined();
    expect((await w.reload()).status).toBe("cancelled");
  });

  test("reconcile never moves a cancelled sweep to succeeded, even when its running task succeeds", async () => {
    // Given a cancelled sweep whose only running task then succeeds
    const w = await world(2, { max_instances: 1 });
    await w.pass();
    await claim(w, 0, 600_000);
    await cancelSweep({ store, clock: w.clock }, w.sweep.sweepId);
    await w.pass();
    await finish(w, 0, "succeeded");
    // When reconcile runs several times, well past the drain period
    for (const step of [0, 60_000, 600_000]) {
      w.clock.advance(step);
      const result = await w.pass();
      expect(result.finished).toBeUndefined();
    }
    // Then the sweep is still cancelled, and now inactive
    expect(await w.reload()).toMatchObject({
      status: "cancelled",
      active: false,
      reason: "cancelled by user",
    });
  });
});

describe("(g)(h) instance reaping", () => {
  test("an instance past its deadline (ttl) is terminated even with a fresh heartbeat", async () => {
    // Given a sweep with ttl 1 h and one instance
    const w = await world(1, { ttl: "1h" });
    await w.pass();
    const id = instanceIdFor(w.sweep.sweepId, 0);
    expect((await store.getInstance(w.sweep.sweepId, id))?.deadline).toBe(NOW + 3_600_000);
    // When the clock reaches the deadline with the agent still heartbeating
    w.clock.advance(3_600_000);
    await heartbeat(w, id);
    const result = await w.pass();
    // Then compute terminated it with reason "ttl reached" and the record says so
    expect(result.terminated).toContain(id);
    expect(w.compute.terminations).toContainEqual({ instanceIds: [id], reason: "ttl reached" });
    expect(await store.getInstance(w.sweep.sweepId, id)).toMatchObject({
      status: "terminated",
      reason: "ttl reached",
      terminatedAt: w.clock.now(),
    });
  });

  test("an instance before its deadline is kept", async () => {
    // Given an instance with a 1 h ttl
    const w = await world(1, { ttl: "1h" });
    await w.pass();
    // When 59 minutes pass with heartbeats
    w.clock.advance(3_540_000);
    await heartbeatAll(w);
    const result = await w.pass();
    // Then nothing is terminated
    expect(result.terminated).toEqual([]);
    expect(w.compute.terminations).toEqual([]);
  });

  test("reapExpiredInstances terminates instances past their deadline of a sweep that is no longer active", async () => {
    // Given a separate table set (the reaper reads every sweep), an inactive sweep with two live instances
    const prefix = `rp${randomUUID().slice(0, 6)}-`;
    await ensureTables(engine.client, prefix);
    const own = new DynamoStateStore(engine.client, prefix);
    const w = await world(2, { ttl: "1h" }, own);
    await own.updateSweep(w.sweep.sweepId, {}, { status: "failed", active: false, finishedAt: NOW });
    const base = {
      sweepId: w.sweep.sweepId,
      provider: "local" as const,
      status: "running" as const,
      slots: 1,
    };
    await own.putInstance({ ...base, instanceId: "old", launchedAt: NOW, deadline: NOW + 3_600_000 });
    await own.putInstance({
      ...base,
      instanceId: "young",
      launchedAt: NOW + 1_800_000,
      deadline: NOW + 5_400_000,
    });
    // When the reaper runs after the first deadline
    w.clock.advance(3_600_001);
    const reaped = await reapExpiredInstances({ store: own, compute: w.compute, clock: w.clock });
    // Then only the expired instance is terminated, by compute and in the record
    expect(reaped).toEqual(["old"]);
    expect(w.compute.terminations).toEqual([{ instanceIds: ["old"], reason: "ttl reached" }]);
    expect(await own.getInstance(w.sweep.sweepId, "old")).toMatchObject({
      status: "terminated",
      reason: "ttl reached",
    });
    expect((await own.getInstance(w.sweep.sweepId, "young"))?.status).toBe("running");
    // And reconcile of the inactive sweep does nothing
    expect(
      (await reconcile({ store: own, compute: w.compute, clock: w.clock }, w.sweep.sweepId)).status,
    ).toBeUndefined();
    // And a second reaper run finds nothing more
    expect(await reapExpiredInstances({ store: own, compute: w.compute, clock: w.clock })).toEqual([]);
  });

  test("an instance whose heartbeat is stale is terminated; a recent one is kept", async () => {
    // Given a sweep with the default lease (60 s → heartbeat timeout 180 s) and two instances
    const w = await world(2, { max_instances: 2 });
    await w.pass();
    const [a, b] = [instanceIdFor(w.sweep.sweepId, 0), instanceIdFor(w.sweep.sweepId, 1)];
    await heartbeat(w, a);
    await heartbeat(w, b);
    // When 179 s pass, then b heartbeats and 2 more seconds pass
    w.clock.advance(179_000);
    expect((await w.pass()).terminated).toEqual([]);
    await heartbeat(w, b);
    w.clock.advance(2_000);
    const result = await w.pass();
    // Then a (silent for 181 s) is terminated, b is kept
    expect(result.terminated).toEqual([a]);
    expect(w.compute.terminatedIds("agent heartbeat stopped")).toEqual([a]);
    expect(await store.getInstance(w.sweep.sweepId, a)).toMatchObject({
      status: "terminated",
      reason: "agent heartbeat stopped",
    });
    expect((await store.getInstance(w.sweep.sweepId, b))?.status).toBe("running");
  });

  test("an instance that never reports in is terminated after launchTimeoutMs", async () => {
    // Given a launched instance whose agent never heartbeats
    const w = await world(1);
    await w.pass();
    const id = instanceIdFor(w.sweep.sweepId, 0);
    // When less, then more than the launch timeout passes
    w.clock.advance(60_000);
    expect((await w.pass({ launchTimeoutMs: 60_000 })).terminated).toEqual([]);
    w.clock.advance(1);
    const result = await w.pass({ launchTimeoutMs: 60_000 });
    // Then it is terminated for never reporting in
    expect(result.terminated).toEqual([id]);
    expect((await store.getInstance(w.sweep.sweepId, id))?.reason).toBe("agent never reported in");
  });

  test("a `gone` instance is marked terminated, with a reason depending on whether it ever ran", async () => {
    // Given two instances: one whose agent reported in (running), one still launching
    const w = await world(2, { max_instances: 2 });
    await w.pass();
    const [ran, never] = [instanceIdFor(w.sweep.sweepId, 0), instanceIdFor(w.sweep.sweepId, 1)];
    await heartbeat(w, ran);
    // When the provider reports both gone
    w.compute.states.set(ran, "gone");
    w.compute.states.set(never, "gone");
    const result = await w.pass();
    // Then both records are terminated, with reasons
    expect([...result.terminated].sort()).toEqual([ran, never].sort());
    expect(await store.getInstance(w.sweep.sweepId, ran)).toMatchObject({
      status: "terminated",
      reason: "instance is gone",
    });
    expect(await store.getInstance(w.sweep.sweepId, never)).toMatchObject({
      status: "terminated",
      reason: "instance never started",
    });
  });
});

describe("(i) launch errors", () => {
  test("a failed launch records the reason on the sweep and on the instance", async () => {
    // Given a provider without capacity
    const w = await world(2, { max_instances: 2 });
    w.compute.failWith = "InsufficientInstanceCapacity";
    // When reconcile runs
    const result = await w.pass();
    // Then nothing counts as launched, the instances are terminated with the reason, and the sweep says why
    expect(result.launched).toEqual([]);
    const reason = "launch failed: InsufficientInstanceCapacity";
    expect(await w.reload()).toMatchObject({ status: "running", reason });
    const instances = await w.instances();
    expect(instances).toHaveLength(2);
    for (const i of instances) expect(i).toMatchObject({ status: "terminated", reason });
    // And once capacity is back, the next pass launches replacements
    w.compute.failWith = undefined;
    const retry = await w.pass();
    expect(retry.launched).toHaveLength(2);
  });

  // Regression: when compute.launch() throws (an API error rather than per-instance errors), the
  // reserved instance records must not stay `launching` and the sweep must say why it is stuck.
  test("a launch that throws still records the reason on the sweep", async () => {
    // Given a provider whose launch call itself fails
    const w = await world(1);
    w.compute.throwWith = "UnauthorizedOperation: not allowed to RunInstances";
    // When reconcile runs (whether or not it rethrows)
    await w.pass().catch(() => undefined);
    // Then the sweep says why it is not progressing, and the reserved instance is not left launching
    expect((await w.reload()).reason, "sweep.reason").toEqual(
      expect.stringContaining("UnauthorizedOperation"),
    );
    for (const i of await w.instances()) expect(i.status).toBe("terminated");
  });
});

describe("(j) deactivation after the drain period", () => {
  test("a finished sweep stays active while instances drain, then terminates them and deactivates", async () => {
    // Given a sweep of 2 tasks on 2 instances, all tasks succeeded
    const w = await world(2, { max_instances: 2 });
    await w.pass();
    await heartbeatAll(w);
    await finish(w, 0, "succeeded");
    await finish(w, 1, "succeeded");
    // When reconcile finishes it
    const finished = await w.pass({ drainMs: 30_000 });
    // Then it is succeeded but still active: the instances get time to exit
    expect(finished.finished).toBe("succeeded");
    expect(finished.deactivated).toBe(false);
    expect(w.compute.terminations).toEqual([]);
    expect((await store.listActiveSweeps()).map((s) => s.sweepId)).toContain(w.sweep.sweepId);
    // When part of the drain period passes
    w.clock.advance(29_000);
    await heartbeatAll(w);
    const draining = await w.pass({ drainMs: 30_000 });
    expect(draining.terminated).toEqual([]);
    expect(draining.deactivated).toBe(false);
    // When the drain period is over
    w.clock.advance(1_000);
    const drained = await w.pass({ drainMs: 30_000 });
    // Then the stragglers are terminated and the sweep is no longer active
    expect([...drained.terminated].sort()).toEqual(w.compute.launchedIds.sort());
    expect(w.compute.terminatedIds("sweep succeeded").sort()).toEqual(w.compute.launchedIds.sort());
    expect(drained.deactivated).toBe(true);
    expect(await w.reload()).toMatchObject({ status: "succeeded", active: false });
    expect((await store.listActiveSweeps()).map((s) => s.sweepId)).not.toContain(w.sweep.sweepId);
    // And a later pass does nothing
    const later = await w.pass();
    expect(later).toMatchObject({ launched: [], terminated: [], deactivated: false });
    expect(later.status).toBeUndefined();
  });

  test("instances that exit by themselves during the drain let the sweep deactivate early", async () => {
    // Given a finished sweep with one live instance
    const w = await world(1);
    await w.pass();
    await heartbeatAll(w);
    await finish(w, 0, "succeeded");
    await w.pass();
    // When the agent exits on its own before the drain period ends
    w.compute.states.set(instanceIdFor(w.sweep.sweepId, 0), "gone");
    w.clock.advance(5_000);
    const result = await w.pass();
    // Then the instance is marked terminated and the sweep deactivates without compute terminating anything
    expect(result.deactivated).toBe(true);
    expect(w.compute.terminatedIds("sweep succeeded")).toEqual([]);
    expect((await store.listActiveSweeps()).map((s) => s.sweepId)).not.toContain(w.sweep.sweepId);
  });

  test("an instance whose agent deregistered itself but whose machine still runs is terminated by the provider", async () => {
    // Given a finished sweep whose only agent marked its own record terminated on exit...
    const w = await world(1);
    await w.pass();
    await heartbeatAll(w);
    const [instance] = await w.instances();
    await finish(w, 0, "succeeded");
    await store.updateInstance(
      w.sweep.sweepId,
      instance!.instanceId,
      { status: "running" },
      { status: "terminated", terminatedAt: w.clock.now(), reason: "no work left" },
    );
    // ...while the provider still reports the machine running (its poweroff never happened)
    expect(w.compute.states.get(instance!.instanceId)).toBe("running");
    // When reconcile runs
    const first = await w.pass();
    // Then the provider is told to terminate it, and the sweep stays active until it is gone
    expect(w.compute.terminations).toEqual([
      { instanceIds: [instance!.instanceId], reason: "the agent exited but the instance kept running" },
    ]);
    expect(first.deactivated).toBe(false);
    const second = await w.pass();
    expect(second.deactivated).toBe(true);
    expect(w.compute.terminations).toHaveLength(1);
  });

  test("a finished sweep with no instances deactivates in the same pass", async () => {
    // Given a sweep whose tasks all failed before any instance was launched
    const w = await world(1);
    await finish(w, 0, "failed");
    // When reconcile runs
    const result = await w.pass();
    // Then it is failed and inactive at once
    expect(result).toMatchObject({ finished: "failed", deactivated: true });
    expect(await w.reload()).toMatchObject({
      status: "failed",
      active: false,
      reason: "0 succeeded, 1 failed",
    });
  });
});

describe("(k) sweeps stuck in `creating`", () => {
  async function creatingSweep(clock: TestClock): Promise<SweepRecord> {
    const spec = parseSpec({ name: "stuck", command: "true" });
    const sweep: SweepRecord = {
      sweepId: `stuck-${randomUUID().slice(0, 8)}`,
      name: "stuck",
      owner: "tester",
      provider: "local",
      status: "creating",
      active: true,
      spec,
      taskCount: 1,
      shardCount: 1,
      launchSeq: 0,
      createdAt: clock.now(),
      updatedAt: clock.now(),
    };
    await store.createSweep(sweep);
    return sweep;
  }

  test("is left alone before creatingTimeoutMs and marked failed after it", async () => {
    // Given a sweep whose launcher died while it was `creating`
    const clock = new TestClock();
    const compute = new FakeCompute();
    const sweep = await creatingSweep(clock);
    const deps = { store, compute, clock, options: { creatingTimeoutMs: 600_000 } };
    // When reconcile runs before the timeout
    clock.advance(600_000);
    const early = await reconcile(deps, sweep.sweepId);
    // Then nothing happens (the launcher may still be writing tasks)
    expect(early).toMatchObject({ status: "creating", launched: [], deactivated: false });
    expect(early.finished).toBeUndefined();
    expect((await store.getSweep(sweep.sweepId))?.status).toBe("creating");
    // When it runs after the timeout
    clock.advance(1);
    const late = await reconcile(deps, sweep.sweepId);
    // Then the sweep is failed, inactive, with a reason, and nothing was launched
    expect(late).toMatchObject({ finished: "failed", deactivated: true });
    expect(await store.getSweep(sweep.sweepId)).toMatchObject({
      status: "failed",
      active: false,
      reason: "the launch did not complete",
      finishedAt: clock.now(),
    });
    expect(compute.launches).toEqual([]);
    expect((await store.listActiveSweeps()).map((s) => s.sweepId)).not.toContain(sweep.sweepId);
  });
});

/** An EventSink that keeps what it was given. */
class RecordingSink implements EventSink {
  readonly events: SpawnEvent[] = [];
  async publish(events: readonly SpawnEvent[]): Promise<void> {
    this.events.push(...events);
  }
  types(): string[] {
    return this.events.map((e) => e.type);
  }
}

const PLACEMENT: Placement = {
  instanceType: "g5.12xlarge",
  region: "us-east-1",
  az: "use1-az1",
  market: "spot",
  pricePerHour: 2,
  priceSource: "snapshot test",
};

describe("(k) events: once per fact", () => {
  test("launches, completion and deactivation are published once, however many passes run", async () => {
    // Given a sweep of 2 tasks and a sink
    const w = await world(2, { max_instances: 2 });
    const sink = new RecordingSink();
    const pass = () =>
      reconcile({ store, compute: w.compute, clock: w.clock, events: sink }, w.sweep.sweepId);
    // When it launches, both passes run again, the tasks succeed and it finishes and drains
    await pass();
    await heartbeatAll(w);
    await pass();
    await finish(w, 0, "succeeded");
    await finish(w, 1, "succeeded");
    await Promise.all([pass(), pass()]);
    w.clock.advance(60_000);
    await pass();
    await pass();
    // Then each fact was published exactly once, versioned and naming the sweep
    expect(sink.types().sort()).toEqual(
      ["InstanceLaunched", "InstanceLaunched", "SweepCompleted", "InstanceReaped", "InstanceReaped"].sort(),
    );
    expect(sink.events.every((e) => e.version === 1 && e.sweepId === w.sweep.sweepId)).toBe(true);
    expect(sink.events.find((e) => e.type === "SweepCompleted")).toMatchObject({
      reason: "2 succeeded",
      succeeded: 2,
    });
  });

  test("a failed launch is an InstanceLaunchFailed; a lost instance's replacement is an InstanceReplaced", async () => {
    const w = await world(2, { max_instances: 1 });
    const sink = new RecordingSink();
    const deps = { store, compute: w.compute, clock: w.clock, events: sink };
    w.compute.failWith = "InsufficientInstanceCapacity";
    await reconcile(deps, w.sweep.sweepId);
    expect(sink.events).toEqual([
      expect.objectContaining({ type: "InstanceLaunchFailed", error: "InsufficientInstanceCapacity" }),
    ]);
    w.compute.failWith = undefined;
    await reconcile(deps, w.sweep.sweepId);
    const first = instanceIdFor(w.sweep.sweepId, 1);
    w.compute.states.set(first, "gone");
    await reconcile(deps, w.sweep.sweepId);
    expect(sink.events.slice(-3)).toEqual([
      expect.objectContaining({
        type: "InstanceReaped",
        instanceId: first,
        reason: "instance never started",
      }),
      expect.objectContaining({ type: "InstanceLaunched", instanceId: instanceIdFor(w.sweep.sweepId, 2) }),
      expect.objectContaining({
        type: "InstanceReplaced",
        instanceId: instanceIdFor(w.sweep.sweepId, 2),
        replaces: [first],
      }),
    ]);
  });
});

describe("(l) placement, preemptions and budget (aws)", () => {
  test("the placement and GPUs a provider reports are recorded on the instance", async () => {
    const w = await world(1);
    w.compute.placement = PLACEMENT;
    await w.pass();
    expect((await w.instances())[0]).toMatchObject({ placement: PLACEMENT, gpus: 4 });
  });

  test("an instance the provider says spot took back is preempted, counted on the sweep, and replaced", async () => {
    // Given a sweep on 2 instances, one of which spot takes back
    const w = await world(4, { max_instances: 2 });
    const sink = new RecordingSink();
    const deps = { store, compute: w.compute, clock: w.clock, events: sink };
    await reconcile(deps, w.sweep.sweepId);
    await heartbeatAll(w);
    const victim = instanceIdFor(w.sweep.sweepId, 0);
    w.compute.states.set(victim, "gone");
    w.compute.preempted.add(victim);
    // When reconcile runs
    const result = await reconcile(deps, w.sweep.sweepId);
    // Then it is recorded as preempted, counted, announced, and replaced
    expect(await store.getInstance(w.sweep.sweepId, victim)).toMatchObject({
      status: "terminated",
      reason: PREEMPTED_REASON,
    });
    expect(result.preemptions).toBe(1);
    expect(result.launched).toEqual([instanceIdFor(w.sweep.sweepId, 2)]);
    expect((await w.reload()).preemptions).toBe(1);
    expect(sink.events.find((e) => e.type === "InstancePreempted")).toMatchObject({
      instanceId: victim,
      preemptions: 1,
    });
  });

  test("budget: launches stop once spent + committed reaches it, BudgetReached once, then the sweep fails when nothing runs", async () => {
    // Given a $50 budget, instances at $2/h with a 10 h ttl ($20 committed each at launch)
    const w = await world(10, { max_instances: 5, ttl: "10h", budget: 50 });
    w.compute.placement = PLACEMENT;
    const sink = new RecordingSink();
    const deps = { store, compute: w.compute, clock: w.clock, events: sink };
    // When the first pass launches (nothing is committed yet, so the provider is told what is left)
    await reconcile(deps, w.sweep.sweepId);
    expect(w.compute.launches[0]?.budgetLeft).toBe(50);
    await heartbeatAll(w);
    // And the next passes see $100 committed by 5 instances ≥ $50
    const second = await reconcile(deps, w.sweep.sweepId);
    await reconcile(deps, w.sweep.sweepId);
    // Then nothing more is launched, the sweep says why, and BudgetReached was published once
    expect(second.launched).toEqual([]);
    expect(second.cost).toEqual({ spent: 0, committed: 100 });
    const sweep = await w.reload();
    expect(sweep.budgetReachedAt).toBe(w.clock.now());
    expect(sweep.reason).toContain("budget of $50 reached");
    expect(sink.events.filter((e) => e.type === "BudgetReached")).toEqual([
      expect.objectContaining({ budget: 50, spent: 0, committed: 100 }),
    ]);
    // When every instance is lost with work left
    for (const i of await w.instances()) w.compute.states.set(i.instanceId, "gone");
    w.clock.advance(60_000);
    const last = await reconcile(deps, w.sweep.sweepId);
    // Then no replacement is launched and the sweep fails, naming the budget
    expect(last.launched).toEqual([]);
    expect(last.finished).toBe("failed");
    expect((await w.reload()).reason).toContain("budget of $50 reached with 10 task(s) not run");
    expect(sink.events.filter((e) => e.type === "SweepFailed")).toHaveLength(1);
  });
});

describe("(m) EC2 events for one instance", () => {
  test("a spot interruption warning marks the instance preempted and launches a replacement at once; delivered twice, nothing more", async () => {
    // Given a sweep on 2 instances with EC2 ids
    const w = await world(4, { max_instances: 2 });
    const sink = new RecordingSink();
    const deps = { store, compute: w.compute, clock: w.clock, events: sink };
    await reconcile(deps, w.sweep.sweepId);
    await heartbeatAll(w);
    const victim = instanceIdFor(w.sweep.sweepId, 1);
    const event = { providerRef: `ref-${victim}`, cause: "interruption" as const, state: "terminate" };
    // When the interruption warning arrives twice (EventBridge delivers at least once)
    const first = await handleInstanceEvent(deps, event);
    const second = await handleInstanceEvent(deps, event);
    // Then the instance (found by its EC2 id) is preempted and replaced by one new instance only
    expect(first?.instance.instanceId).toBe(victim);
    expect(await store.getInstance(w.sweep.sweepId, victim)).toMatchObject({
      status: "terminated",
      reason: PREEMPTED_REASON,
    });
    expect(first?.result.launched).toEqual([instanceIdFor(w.sweep.sweepId, 2)]);
    expect(second?.result.launched).toEqual([]);
    expect(w.compute.launchedIds).toHaveLength(3);
    expect((await w.instances()).filter((i) => i.status !== "terminated")).toHaveLength(2);
    // And the facts were published once each
    expect(sink.types().filter((t) => t === "InstancePreempted")).toHaveLength(1);
    expect(sink.events.find((e) => e.type === "InstanceReplaced")).toMatchObject({
      instanceId: instanceIdFor(w.sweep.sweepId, 2),
      replaces: [victim],
    });
    // And the agent's compute was not told to terminate it (it has two minutes to checkpoint)
    expect(w.compute.terminatedIds()).not.toContain(victim);
  });

  test("an event about an instance spawn did not launch is ignored", async () => {
    const w = await world(1);
    const deps = { store, compute: w.compute, clock: w.clock };
    expect(
      await handleInstanceEvent(deps, {
        providerRef: "i-0notours",
        cause: "state-change",
        state: "terminated",
      }),
    ).toBeUndefined();
  });
});

describe("(n) the reaper on EC2 (mocked EC2, dynalite)", () => {
  const ec2 = mockClient(EC2Client);
  beforeEach(() => ec2.reset());

  test("an instance past its deadline is terminated with TerminateInstances in its region", async () => {
    // Given a sweep (1 h ttl) launched on mocked EC2
    const w = await world(1, { ttl: "1h", resources: { gpus: 1, regions: ["us-west-2"] } });
    const throttle = new Ec2Throttle({ clock: w.clock, sleep: async (ms) => w.clock.advance(ms) });
    const compute = new Ec2Compute({
      client: (region) => new EC2Client({ region, credentials: { accessKeyId: "x", secretAccessKey: "y" } }),
      offersFor: () => [
        {
          instanceType: "g5.xlarge",
          region: "us-west-2",
          az: "usw2-az1",
          gpuName: "A10G",
          gpus: 1,
          vcpus: 4,
          memoryGiB: 16,
          arch: "x86_64",
          market: "spot",
          pricePerHour: 0.4,
          priceSource: "snapshot test",
        },
      ],
      launchConfig: async () => ({
        launchTemplateId: "lt-0abc",
        launchTemplateVersion: "1",
        subnets: [{ subnetId: "subnet-0abc", az: "us-west-2a" }],
      }),
      stack: "spawn",
      throttle,
    });
    ec2.on(DescribeAvailabilityZonesCommand).resolves({
      AvailabilityZones: [{ ZoneName: "us-west-2a", ZoneId: "usw2-az1" }],
    });
    ec2.on(CreateFleetCommand).resolves({
      Instances: [
        {
          InstanceIds: ["i-0aaa"],
          Lifecycle: "spot",
          LaunchTemplateAndOverrides: { Overrides: { InstanceType: "g5.xlarge", SubnetId: "subnet-0abc" } },
        },
      ],
    });
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [{ InstanceId: "i-0aaa", State: { Name: "running" } }] }],
    });
    ec2.on(TerminateInstancesCommand).resolves({});
    await reconcile({ store, compute, clock: w.clock }, w.sweep.sweepId);
    const id = instanceIdFor(w.sweep.sweepId, 0);
    expect(await store.getInstance(w.sweep.sweepId, id)).toMatchObject({
      providerRef: "i-0aaa",
      placement: { region: "us-west-2", az: "usw2-az1", market: "spot", pricePerHour: 0.4 },
    });
    // When the reaper runs at the deadline
    w.clock.advance(3_600_000);
    const reaped = await reapExpiredInstances({ store, compute, clock: w.clock });
    // Then EC2 was asked to terminate exactly that instance, and the record says so
    expect(reaped).toContain(id);
    expect(ec2.commandCalls(TerminateInstancesCommand).map((c) => c.args[0].input)).toEqual([
      { InstanceIds: ["i-0aaa"] },
    ]);
    expect(await store.getInstance(w.sweep.sweepId, id)).toMatchObject({
      status: "terminated",
      reason: "ttl reached",
    });
  });
});
