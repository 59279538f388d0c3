/**
 * Queues in the control plane, against the real DynamoStateStore on dynalite: a queue's jobs
 * round-trip through the store with their durations intact, waiting jobs are released or cancelled
 * (cascading) by the agent's targeted step and by reconcile's pass, `on_failure: stop` stops what
 * has not started, `global_timeout` fails the queue, and a retry re-runs the failed jobs and what
 * depends on them.
 */
import { beforeAll, describe, expect, test } from "vitest";
import { isWaiting, settleAll, settleDependents, WAITING } from "../core/dependencies.js";
import type { SweepRecord, TaskRecord } from "../core/model.js";
import type { Clock, Compute } from "../core/ports.js";
import { parseQueue } from "../core/queue.js";
import { planQueue } from "../core/queue-plan.js";
import { reconcile } from "../core/reconcile.js";
import { createSweep, retrySweep } from "../core/sweeps.js";
import type { DynamoStateStore } from "../providers/dynamodb/store.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const useStore = useDynaliteStore("queue");
let store: DynamoStateStore;
beforeAll(() => {
  ({ store } = useStore());
});

let clockNow = 1_700_000_000_000;
const clock: Clock = { now: () => clockNow };
/** Compute that has nothing running: reconcile's instance steps find no instance. */
const idle: Compute = {
  launch: async () => [],
  terminate: async () => undefined,
  describe: async () => [],
};

let seq = 0;
async function launchQueue(raw: unknown): Promise<SweepRecord> {
  const plan = planQueue(parseQueue(raw));
  return createSweep(
    { store, clock },
    {
      sweepId: `q-${++seq}-${Date.now().toString(36)}`,
      spec: plan.spec,
      tasks: plan.tasks,
      queue: plan.settings,
      owner: "test",
      provider: "local",
    },
  );
}

const byId = async (sweep: SweepRecord) =>
  new Map((await store.listTasks(sweep.sweepId, sweep.shardCount)).map((t) => [t.job!.id, t]));

/** Writes what an agent writes when a job's attempt ends for good. */
async function finish(
  sweep: SweepRecord,
  task: TaskRecord,
  status: "succeeded" | "failed",
): Promise<TaskRecord> {
  const running = await store.updateTask(
    sweep.sweepId,
    task.index,
    sweep.shardCount,
    { status: "pending", attempt: task.attempt },
    { status: "running", attempt: task.attempt + 1, leaseOwner: "i0", leaseExpiresAt: clockNow + 60_000 },
  );
  return store.updateTask(
    sweep.sweepId,
    task.index,
    sweep.shardCount,
    { status: "running", attempt: running.attempt, leaseOwner: "i0" },
    {
      status,
      finishedAt: clockNow,
      leaseOwner: null,
      leaseExpiresAt: null,
      ...(status === "failed" ? { logTail: "boom\n" } : {}),
    },
  );
}

const DIAMOND = {
  name: "diamond",
  on_failure: "continue",
  global_timeout: "1h",
  jobs: [
    { id: "a", command: "true", timeout: "90s", retry: { max_attempts: 3, base: "2s", max_delay: "1m" } },
    { id: "b", command: "true", depends_on: ["a"] },
    { id: "c", command: "true", depends_on: ["a"] },
    { id: "d", command: "true", depends_on: ["b", "c"] },
    { id: "e", command: "true", depends_on: ["d"] },
    { id: "lone", command: "true" },
  ],
};

describe("a queue in the store", () => {
  test("jobs and settings round-trip with their durations in milliseconds", async () => {
    // When a queue with durations in its settings and jobs is created and read back
    const sweep = await launchQueue(DIAMOND);
    const read = (await store.getSweep(sweep.sweepId))!;
    const a = (await byId(sweep)).get("a")!;
    // Then every duration is what the file said, in ms, however often it is read
    expect(read.queue).toEqual({ on_failure: "continue", global_timeout: 3_600_000 });
    expect(a.job).toMatchObject({
      timeout: 90_000,
      retry: { max_attempts: 3, base: 2000, max_delay: 60_000 },
    });
    expect((await store.getTask(sweep.sweepId, a.index, sweep.shardCount))!.job).toEqual(a.job);
  });

  test("jobs without dependencies are ready; the others wait, with both directions of each edge", async () => {
    const tasks = await byId(await launchQueue(DIAMOND));
    expect(isWaiting(tasks.get("a")!)).toBe(false);
    expect(isWaiting(tasks.get("lone")!)).toBe(false);
    expect(["b", "c", "d", "e"].every((id) => tasks.get(id)!.readyAt === WAITING)).toBe(true);
    expect(tasks.get("d")!.dependsOn).toEqual([tasks.get("b")!.index, tasks.get("c")!.index]);
    expect(tasks.get("a")!.dependents).toEqual([tasks.get("b")!.index, tasks.get("c")!.index]);
  });
});

describe("settling waiting jobs", () => {
  test("the agent's step releases a job only when its last dependency succeeded", async () => {
    // Given the diamond
    const sweep = await launchQueue(DIAMOND);
    let tasks = await byId(sweep);
    // When a succeeds: b and c are released, d still waits
    const a = await finish(sweep, tasks.get("a")!, "succeeded");
    const first = await settleDependents(store, sweep, a, clockNow);
    tasks = await byId(sweep);
    expect(first.released.sort()).toEqual([tasks.get("b")!.index, tasks.get("c")!.index].sort());
    expect(tasks.get("b")!.readyAt).toBe(clockNow);
    expect(isWaiting(tasks.get("d")!)).toBe(true);
    // When b succeeds: d still waits on c
    const b = await finish(sweep, tasks.get("b")!, "succeeded");
    expect(await settleDependents(store, sweep, b, clockNow)).toEqual({ released: [], cancelled: [] });
    // When c succeeds: d is released
    const c = await finish(sweep, (await byId(sweep)).get("c")!, "succeeded");
    expect((await settleDependents(store, sweep, c, clockNow)).released).toEqual([tasks.get("d")!.index]);
  });

  test("a failure cancels its dependents and theirs, naming the failed dependency", async () => {
    const sweep = await launchQueue(DIAMOND);
    let tasks = await byId(sweep);
    const a = await finish(sweep, tasks.get("a")!, "failed");
    // When the agent settles a's dependents
    const result = await settleDependents(store, sweep, a, clockNow);
    tasks = await byId(sweep);
    // Then everything below a is cancelled, in a cascade, and the unrelated job is untouched
    expect(result.cancelled).toHaveLength(4);
    expect(tasks.get("b")).toMatchObject({ status: "cancelled", error: "not run: dependency a failed" });
    expect(tasks.get("d")).toMatchObject({
      status: "cancelled",
      error: "not run: dependency b was cancelled",
    });
    expect(tasks.get("e")!.status).toBe("cancelled");
    expect(tasks.get("lone")!.status).toBe("pending");
  });

  test("reconcile's pass settles what no agent did (the backstop), and a second pass writes nothing", async () => {
    const sweep = await launchQueue(DIAMOND);
    await finish(sweep, (await byId(sweep)).get("a")!, "succeeded");
    // When reconcile runs (no agent settled a's dependents)
    const tasks = await store.listTasks(sweep.sweepId, sweep.shardCount);
    const first = await settleAll(store, sweep, tasks, { now: clockNow, stopOnFailure: false });
    const again = await settleAll(store, sweep, await store.listTasks(sweep.sweepId, sweep.shardCount), {
      now: clockNow,
      stopOnFailure: false,
    });
    // Then b and c are released once
    expect(first.released).toHaveLength(2);
    expect(again).toEqual({ released: [], cancelled: [] });
  });

  test("on_failure: stop cancels every job not started, ready ones included; running ones finish", async () => {
    const sweep = await launchQueue({ ...DIAMOND, on_failure: "stop" });
    let tasks = await byId(sweep);
    await finish(sweep, tasks.get("a")!, "failed");
    // When a reconcile pass runs
    await reconcile({ store, compute: idle, clock }, sweep.sweepId);
    tasks = await byId(sweep);
    // Then lone (ready, not started) is cancelled with the stop named, as are a's dependents
    expect(tasks.get("lone")).toMatchObject({
      status: "cancelled",
      error: "not run: the queue stopped after a failed (on_failure: stop)",
    });
    expect(["b", "c", "d", "e"].map((id) => tasks.get(id)!.status)).toEqual(Array(4).fill("cancelled"));
  });

  test("global_timeout fails the queue, and the next pass cancels what has not started", async () => {
    const sweep = await launchQueue({ ...DIAMOND, global_timeout: "10m" });
    clockNow += 11 * 60_000;
    const result = await reconcile({ store, compute: idle, clock }, sweep.sweepId);
    expect(result.finished).toBe("failed");
    expect((await store.getSweep(sweep.sweepId))!.reason).toMatch(
      /^global_timeout of 10m00s passed with 0 succeeded; running jobs are stopped$/,
    );
    await reconcile({ store, compute: idle, clock }, sweep.sweepId);
    const tasks = await byId(sweep);
    expect([...tasks.values()].every((t) => t.status === "cancelled")).toBe(true);
  });
});

describe("retrying a queue", () => {
  test("re-runs the failed jobs and what was not run because of them; the rest keeps its results", async () => {
    // Given a finished queue where c failed: d and e were cancelled because of it
    const sweep = await launchQueue(DIAMOND);
    let tasks = await byId(sweep);
    for (const id of ["a", "b", "lone"]) await finish(sweep, (await byId(sweep)).get(id)!, "succeeded");
    await finish(sweep, (await byId(sweep)).get("c")!, "failed");
    for (let i = 0; i < 3; i++) await reconcile({ store, compute: idle, clock }, sweep.sweepId);
    expect((await store.getSweep(sweep.sweepId))!.status).toBe("failed");
    // When it is retried (--failed)
    const { reset } = await retrySweep({ store, clock }, sweep.sweepId, { failedOnly: true });
    tasks = await byId(sweep);
    // Then c is ready again (its dependency a succeeded), d and e wait again, succeeded jobs are untouched
    expect(reset.map((i) => [...tasks.values()].find((t) => t.index === i)!.job!.id).sort()).toEqual([
      "c",
      "d",
      "e",
    ]);
    expect(tasks.get("c")).toMatchObject({ status: "pending", readyAt: clockNow });
    expect(tasks.get("c")!.logTail).toBeUndefined();
    expect(isWaiting(tasks.get("d")!) && isWaiting(tasks.get("e")!)).toBe(true);
    expect(["a", "b", "lone"].map((id) => tasks.get(id)!.status)).toEqual(Array(3).fill("succeeded"));
  });
});
