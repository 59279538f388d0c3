/**
 * The sweep poller without a timer (what the AWS dashboard-api Lambda runs) and its per-container
 * cache, on dynalite: what a tick reads (counted on the store), when it reads everything again,
 * and how many pollers a container keeps.
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { NotFoundError } from "#core/errors.js";
import type { SweepRecord, TaskRecord } from "#core/model.js";
import { expandParams } from "#core/params.js";
import { parseSpec } from "#core/spec.js";
import { cancelSweep, createSweep } from "#core/sweeps.js";
import { countingStore } from "../test/helpers/counting-store.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { OnDemandPollers, SweepPoller } from "./dashboard-poller.js";

const useStore = useDynaliteStore("poller");

/** A clock the test moves. */
function testClock(start = Date.now()) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function launch(tasks: number, clock = testClock()): Promise<SweepRecord> {
  const { store } = useStore();
  const spec = parseSpec({
    name: "poll",
    command: "echo {{i}}",
    params: { grid: { i: Array.from({ length: tasks }, (_, i) => i) } },
  });
  return createSweep(
    { store, clock },
    {
      sweepId: `poll-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "alice",
      provider: "local",
    },
  );
}

/** An agent's claim: pending → running with a lease. */
function claim(sweep: SweepRecord, index: number): Promise<TaskRecord> {
  const now = Date.now();
  return useStore().store.updateTask(
    sweep.sweepId,
    index,
    sweep.shardCount,
    { status: "pending" },
    {
      status: "running",
      attempt: 1,
      leaseOwner: "i-test",
      leaseExpiresAt: now + 60_000,
      startedAt: now,
      updatedAt: now,
    },
  );
}

/** An agent's finish: running → succeeded, the lease dropped. */
function finish(sweep: SweepRecord, index: number): Promise<TaskRecord> {
  return useStore().store.updateTask(
    sweep.sweepId,
    index,
    sweep.shardCount,
    { status: "running" },
    {
      status: "succeeded",
      leaseOwner: null,
      leaseExpiresAt: null,
      finishedAt: Date.now(),
      exitCode: 0,
      updatedAt: Date.now(),
    },
  );
}

describe("a poller without a timer (onDemand)", () => {
  it("reads nothing between refreshes, and a refresh after one claim reads only the sweep, its instances and each shard's index heads", async () => {
    // Given: a loaded on-demand poller of a 600-task sweep (2 shards)
    const sweep = await launch(600);
    expect(sweep.shardCount).toBe(2);
    const counted = countingStore(useStore().store);
    const poller = new SweepPoller(
      sweep.sweepId,
      { store: counted.store, clock: testClock() },
      {
        onDemand: true,
        tickMs: 20,
      },
    );
    await poller.ready();
    expect(counted.count("listTasks")).toBe(1);
    counted.reset();

    // When: time passes (a timer-driven poller would tick every 20 ms), then a task is claimed
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(counted.calls).toEqual([]);
    await claim(sweep, 5);
    await poller.refresh();

    // Then: one tick of small reads saw it
    expect(poller.snapshot().states[5]).toBe("r");
    expect(counted.calls.map((c) => c.method).sort()).toEqual([
      "getSweep",
      "listInstances",
      "listPendingTasks",
      "listPendingTasks",
      "listRunningTasks",
      "listRunningTasks",
    ]);
  });

  it("reads back with one GetItem a task that left running, and one claimed and finished between two refreshes", async () => {
    // Given: a loaded on-demand poller that has seen task 5 running
    const sweep = await launch(600);
    const counted = countingStore(useStore().store);
    const poller = new SweepPoller(
      sweep.sweepId,
      { store: counted.store, clock: testClock() },
      { onDemand: true },
    );
    await poller.ready();
    await claim(sweep, 5);
    await poller.refresh();
    counted.reset();

    // When: task 5 finishes, and task 6 is claimed and finishes before the next refresh
    await finish(sweep, 5);
    await claim(sweep, 6);
    await finish(sweep, 6);
    await poller.refresh();

    // Then: both are succeeded, each read with one GetItem, and no full read happened
    expect(poller.snapshot().states.slice(5, 7)).toBe("ss");
    expect(counted.calls.filter((c) => c.method === "getTask").map((c) => c.args[1])).toEqual([5, 6]);
    expect(counted.count("listTasks")).toBe(0);
  });

  it("reads every task again when the last full read is 30 s old, and when the sweep's status changes", async () => {
    // Given: a loaded on-demand poller on a clock the test moves
    const clock = testClock();
    const sweep = await launch(20, clock);
    const counted = countingStore(useStore().store);
    const poller = new SweepPoller(sweep.sweepId, { store: counted.store, clock }, { onDemand: true });
    await poller.ready();
    counted.reset();

    // When / Then: a refresh within 30 s is incremental, one after 30 s reads everything
    clock.advance(29_000);
    await poller.refresh();
    expect(counted.count("listTasks")).toBe(0);
    clock.advance(1_000);
    await poller.refresh();
    expect(counted.count("listTasks")).toBe(1);

    // When / Then: a cancel (a status change) is followed by a full read
    counted.reset();
    await cancelSweep({ store: useStore().store, clock }, sweep.sweepId);
    await poller.refresh();
    expect(counted.count("listTasks")).toBe(1);
    expect(poller.snapshot().sweep.status).toBe("cancelled");
  });

  it("shares one tick between concurrent refreshes", async () => {
    const sweep = await launch(4);
    const counted = countingStore(useStore().store);
    const poller = new SweepPoller(
      sweep.sweepId,
      { store: counted.store, clock: testClock() },
      { onDemand: true },
    );
    await poller.ready();
    counted.reset();
    await Promise.all([poller.refresh(), poller.refresh(), poller.refresh()]);
    expect(counted.count("getSweep")).toBe(1);
  });
});

describe("OnDemandPollers (a Lambda container's cache)", () => {
  it("reads a sweep fully on its first request in the container, and ticks it on later ones", async () => {
    const sweep = await launch(30);
    const counted = countingStore(useStore().store);
    const pollers = new OnDemandPollers({ store: counted.store, clock: testClock() });
    await pollers.current(sweep.sweepId);
    expect(counted.count("listTasks")).toBe(1);
    counted.reset();
    await claim(sweep, 0);
    const poller = await pollers.current(sweep.sweepId);
    expect(counted.count("listTasks")).toBe(0);
    expect(poller.snapshot().states[0]).toBe("r");
  });

  it("keeps at most maxSweeps pollers and maxTasks tasks, dropping the least recently used first", async () => {
    // Given: a cache of 2 sweeps and 10 tasks, and four sweeps of 4 tasks
    const [a, b, c, d] = await Promise.all([launch(4), launch(4), launch(4), launch(4)]);
    const pollers = new OnDemandPollers(
      { store: useStore().store, clock: testClock() },
      { maxSweeps: 2, maxTasks: 10 },
    );

    // When / Then: using a again makes b the least recently used, so c replaces b
    await pollers.current(a!.sweepId);
    await pollers.current(b!.sweepId);
    await pollers.current(a!.sweepId);
    await pollers.current(c!.sweepId);
    expect(pollers.sweepIds()).toEqual([a!.sweepId, c!.sweepId]);

    // And: a sweep larger than the task budget is still kept alone, as the one in use
    const big = await launch(12);
    await pollers.current(big.sweepId);
    expect(pollers.sweepIds()).toEqual([big.sweepId]);
    await pollers.current(d!.sweepId);
    expect(pollers.sweepIds()).toEqual([d!.sweepId]);
  });

  it("answers NotFoundError for an unknown sweep and keeps no poller for it", async () => {
    const pollers = new OnDemandPollers({ store: useStore().store, clock: testClock() });
    await expect(pollers.current("no-such-sweep")).rejects.toBeInstanceOf(NotFoundError);
    expect(pollers.sweepIds()).toEqual([]);
  });
});
