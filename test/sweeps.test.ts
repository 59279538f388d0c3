/**
 * Sweep lifecycle operations (create, cancel, retry) against the real DynamoStateStore on
 * in-process dynalite.
 */
import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, test } from "vitest";
import { AbortError, ConditionFailedError, NotFoundError } from "../core/errors.js";
import type { SweepRecord, TaskRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import type { Clock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { cancelSweep, createSweep, newSweepId, retrySweep } from "../core/sweeps.js";
import type { DynamoStateStore } from "../providers/dynamodb/store.js";
import { useDynaliteStore, wrapStore } from "./helpers/dynamo.js";

const NOW = 1_700_000_000_000;

class TestClock implements Clock {
  constructor(public t: number = NOW) {}
  now(): number {
    return this.t;
  }
}

const useStore = useDynaliteStore("sw");
let store: DynamoStateStore;
beforeAll(() => {
  ({ store } = useStore());
});

function input(taskCount: number, sweepId = `sw-${randomUUID().slice(0, 8)}`) {
  const spec = parseSpec({
    name: "lr-sweep",
    command: "python train.py --lr {{lr}}",
    params: { grid: { lr: { range: [0, taskCount] } } },
  });
  return {
    sweepId,
    spec,
    tasks: expandParams(spec.params, spec.repeat),
    owner: "alice",
    provider: "local" as const,
  };
}

/** Puts a task into a final state, as an agent would. */
function settle(
  sweep: SweepRecord,
  index: number,
  status: TaskRecord["status"],
  now = NOW,
): Promise<TaskRecord> {
  return store.updateTask(
    sweep.sweepId,
    index,
    sweep.shardCount,
    { status: "pending" },
    {
      status,
      attempt: 1,
      finishedAt: now,
      updatedAt: now,
      ...(status === "failed" ? { failures: 1, exitCode: 1, error: "exited with code 1" } : {}),
      ...(status === "succeeded" ? { exitCode: 0 } : {}),
    },
  );
}

/** Marks a sweep finished and inactive, as reconcile does once its instances are gone. */
function end(sweep: SweepRecord, status: "succeeded" | "failed"): Promise<SweepRecord> {
  return store.updateSweep(
    sweep.sweepId,
    { status: "running" },
    { status, active: false, finishedAt: NOW, reason: "done", updatedAt: NOW },
  );
}

async function activeIds(): Promise<string[]> {
  return (await store.listActiveSweeps()).map((s) => s.sweepId);
}

describe("createSweep", () => {
  test("writes the sweep and its tasks, then flips the sweep to running", async () => {
    // Given 5 expanded tasks
    const clock = new TestClock();
    const data = input(5);
    // When the sweep is created
    const sweep = await createSweep({ store, clock }, data);
    // Then the stored sweep is running and active, with counts, and equals what was returned
    expect(sweep).toMatchObject({
      sweepId: data.sweepId,
      name: "lr-sweep",
      owner: "alice",
      status: "running",
      active: true,
      taskCount: 5,
      shardCount: 1,
      launchSeq: 0,
      createdAt: NOW,
    });
    expect(await store.getSweep(data.sweepId)).toEqual(sweep);
    expect(await activeIds()).toContain(data.sweepId);
    // And every task is pending, ready now, with its params and id
    const tasks = await store.listTasks(data.sweepId, sweep.shardCount);
    expect(tasks.map((t) => t.params)).toEqual(data.tasks.map((t) => t.params));
    expect(tasks.map((t) => t.taskId)).toEqual(data.tasks.map((t) => t.taskId));
    for (const t of tasks) {
      expect(t).toMatchObject({
        status: "pending",
        attempt: 0,
        failures: 0,
        lost: 0,
        readyAt: NOW,
        shard: 0,
      });
    }
    expect(await store.countOpenTasks(data.sweepId, sweep.shardCount)).toEqual({ pending: 5, running: 0 });
  });

  test("a sweep of more than 500 tasks is spread over shards", async () => {
    // Given 600 tasks
    const data = input(600);
    // When the sweep is created
    const sweep = await createSweep({ store, clock: new TestClock() }, data);
    // Then it has 2 shards, tasks round-robin, and all are stored
    expect(sweep.shardCount).toBe(2);
    const tasks = await store.listTasks(data.sweepId, 2);
    expect(tasks).toHaveLength(600);
    expect(tasks.filter((t) => t.shard === 1)).toHaveLength(300);
    expect(tasks[7]?.shard).toBe(1);
  });

  test("if writing the tasks fails, the partial sweep and its tasks are deleted and the error propagates", async () => {
    // Given a store that writes the first two tasks and then fails
    const data = input(6);
    const failing = wrapStore(store, {
      putTasks: async (tasks) => {
        await store.putTasks(tasks.slice(0, 2));
        throw new Error("throttled");
      },
    });
    // When the sweep is created
    await expect(createSweep({ store: failing, clock: new TestClock() }, data)).rejects.toThrow("throttled");
    // Then nothing is left behind: no sweep, no tasks, not in the active index
    expect(await store.getSweep(data.sweepId)).toBeUndefined();
    expect(await store.listTasks(data.sweepId, 1)).toEqual([]);
    expect(await activeIds()).not.toContain(data.sweepId);
  });

  test("if flipping to running fails, the partial sweep is deleted too", async () => {
    // Given a store whose updateSweep fails
    const data = input(2);
    const failing = wrapStore(store, {
      updateSweep: async () => {
        throw new Error("network down");
      },
    });
    // When the sweep is created
    await expect(createSweep({ store: failing, clock: new TestClock() }, data)).rejects.toThrow(
      "network down",
    );
    // Then the sweep and its tasks are gone
    expect(await store.getSweep(data.sweepId)).toBeUndefined();
    expect(await store.listTasks(data.sweepId, 1)).toEqual([]);
  });

  test("creating a sweep whose id exists fails and leaves the existing sweep intact", async () => {
    // Given an existing sweep
    const data = input(2);
    const first = await createSweep({ store, clock: new TestClock() }, data);
    // When another sweep with the same id is created
    await expect(
      createSweep({ store, clock: new TestClock(NOW + 1) }, input(3, data.sweepId)),
    ).rejects.toThrow(ConditionFailedError);
    // Then the first sweep and its tasks are untouched
    expect(await store.getSweep(data.sweepId)).toEqual(first);
    expect(await store.listTasks(data.sweepId, 1)).toHaveLength(2);
  });
});

describe("cancelSweep", () => {
  test("cancels a running sweep once; a second cancel changes nothing", async () => {
    // Given a running sweep
    const clock = new TestClock(NOW + 5_000);
    const sweep = await createSweep({ store, clock }, input(2));
    // When it is cancelled twice
    const first = await cancelSweep({ store, clock }, sweep.sweepId);
    const second = await cancelSweep({ store, clock }, sweep.sweepId);
    // Then the first changed it to cancelled with the time and reason; the second did not
    expect(first.changed).toBe(true);
    expect(first.sweep).toMatchObject({
      status: "cancelled",
      cancelRequestedAt: NOW + 5_000,
      finishedAt: NOW + 5_000,
      reason: "cancelled by user",
      active: true,
    });
    expect(second.changed).toBe(false);
    expect(second.sweep.status).toBe("cancelled");
  });

  test("on a finished sweep returns changed false and leaves it as it was", async () => {
    // Given a succeeded sweep
    const clock = new TestClock();
    const sweep = await createSweep({ store, clock }, input(1));
    await settle(sweep, 0, "succeeded");
    const done = await end(sweep, "succeeded");
    // When it is cancelled
    const result = await cancelSweep({ store, clock }, sweep.sweepId);
    // Then nothing changed
    expect(result.changed).toBe(false);
    expect(result.sweep).toEqual(done);
    expect(await store.getSweep(sweep.sweepId)).toEqual(done);
  });

  test("on an unknown sweep throws NotFoundError (exit 3)", async () => {
    // Given no such sweep
    // When it is cancelled
    // Then NotFoundError, exit code 3
    const error = await cancelSweep({ store, clock: new TestClock() }, "no-such-sweep").catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NotFoundError);
    expect((error as NotFoundError).exitCode).toBe(3);
  });
});

describe("retrySweep", () => {
  test("resets failed tasks to pending and reopens the sweep", async () => {
    // Given a failed, inactive sweep: task 0 succeeded, 1 failed, 2 cancelled
    const sweep = await createSweep({ store, clock: new TestClock() }, input(3));
    await settle(sweep, 0, "succeeded");
    await settle(sweep, 1, "failed");
    await settle(sweep, 2, "cancelled");
    await end(sweep, "failed");
    expect(await activeIds()).not.toContain(sweep.sweepId);
    // When its failed tasks are retried
    const later = new TestClock(NOW + 60_000);
    const { reset } = await retrySweep({ store, clock: later }, sweep.sweepId, { failedOnly: true });
    // Then only the failed task is reset: pending, ready now, counters and result cleared
    expect(reset).toEqual([1]);
    const tasks = await store.listTasks(sweep.sweepId, sweep.shardCount);
    expect(tasks.map((t) => t.status)).toEqual(["succeeded", "pending", "cancelled"]);
    const t1 = tasks[1]!;
    expect(t1).toMatchObject({ failures: 0, lost: 0, readyAt: NOW + 60_000, attempt: 1 });
    expect(t1.error).toBeUndefined();
    expect(t1.exitCode).toBeUndefined();
    expect(t1.finishedAt).toBeUndefined();
    expect((await store.listPendingTasks(sweep.sweepId, 0)).map((t) => t.index)).toEqual([1]);
    // And the sweep is running and active again, with no finish time
    const reopened = await store.getSweep(sweep.sweepId);
    expect(reopened).toMatchObject({ status: "running", active: true, reason: "retrying 1 tasks" });
    expect(reopened?.finishedAt).toBeUndefined();
    expect(await activeIds()).toContain(sweep.sweepId);
  });

  test("without failedOnly, cancelled tasks are reset too", async () => {
    // Given a failed, inactive sweep with a failed and a cancelled task
    const sweep = await createSweep({ store, clock: new TestClock() }, input(3));
    await settle(sweep, 0, "succeeded");
    await settle(sweep, 1, "failed");
    await settle(sweep, 2, "cancelled");
    await end(sweep, "failed");
    // When it is retried with failedOnly false
    const { reset } = await retrySweep({ store, clock: new TestClock() }, sweep.sweepId, {
      failedOnly: false,
    });
    // Then both are pending again
    expect(reset.sort()).toEqual([1, 2]);
    expect((await store.countOpenTasks(sweep.sweepId, 1)).pending).toBe(2);
  });

  test("a succeeded sweep with nothing to retry is not reopened", async () => {
    // Given a succeeded, inactive sweep
    const sweep = await createSweep({ store, clock: new TestClock() }, input(1));
    await settle(sweep, 0, "succeeded");
    const done = await end(sweep, "succeeded");
    // When it is retried
    const { reset } = await retrySweep({ store, clock: new TestClock() }, sweep.sweepId, {
      failedOnly: false,
    });
    // Then nothing was reset and the sweep is as it was
    expect(reset).toEqual([]);
    expect(await store.getSweep(sweep.sweepId)).toEqual(done);
  });

  test("refuses a cancelled sweep (AbortError, exit 2) and leaves it cancelled", async () => {
    // Given a cancelled sweep with a cancelled task, no longer active
    const clock = new TestClock();
    const sweep = await createSweep({ store, clock }, input(1));
    await cancelSweep({ store, clock }, sweep.sweepId);
    await settle(sweep, 0, "cancelled");
    await store.updateSweep(sweep.sweepId, { status: "cancelled" }, { active: false });
    // When it is retried
    const error = await retrySweep({ store, clock }, sweep.sweepId, { failedOnly: false }).catch(
      (e: unknown) => e,
    );
    // Then it is refused with exit code 2, and nothing changed
    expect(error).toBeInstanceOf(AbortError);
    expect((error as AbortError).exitCode).toBe(2);
    expect((error as AbortError).message).toMatch(/cancelled/);
    expect(await store.getSweep(sweep.sweepId)).toMatchObject({ status: "cancelled", active: false });
    expect((await store.listTasks(sweep.sweepId, 1))[0]?.status).toBe("cancelled");
  });

  test("refuses a running sweep", async () => {
    // Given a running sweep with a failed task
    const sweep = await createSweep({ store, clock: new TestClock() }, input(2));
    await settle(sweep, 0, "failed");
    // When it is retried
    const error = await retrySweep({ store, clock: new TestClock() }, sweep.sweepId, {
      failedOnly: true,
    }).catch((e: unknown) => e);
    // Then it is refused (exit 2), saying it is still running, and the task stays failed
    expect(error).toBeInstanceOf(AbortError);
    expect((error as AbortError).exitCode).toBe(2);
    expect((error as AbortError).message).toContain("still running");
    expect((await store.listTasks(sweep.sweepId, 1))[0]?.status).toBe("failed");
  });

  test("refuses a finished sweep that is still draining its instances (active)", async () => {
    // Given a failed sweep that is still active
    const sweep = await createSweep({ store, clock: new TestClock() }, input(1));
    await settle(sweep, 0, "failed");
    await store.updateSweep(sweep.sweepId, { status: "running" }, { status: "failed", finishedAt: NOW });
    // When it is retried
    const error = await retrySweep({ store, clock: new TestClock() }, sweep.sweepId, {
      failedOnly: true,
    }).catch((e: unknown) => e);
    // Then it is refused and the task is untouched
    expect(error).toBeInstanceOf(AbortError);
    expect((error as AbortError).message).toContain("shutting down");
    expect((await store.listTasks(sweep.sweepId, 1))[0]?.status).toBe("failed");
  });
});

describe("newSweepId", () => {
  test("starts with the slug of the name, then the time and random characters", () => {
    // Given a name with capitals and punctuation
    // When an id is made
    const id = newSweepId("LR Sweep!! v2", NOW, () => 0);
    // Then it is the slug, a dash, the time in base 36, and 4 characters
    expect(id).toBe(`lr-sweep-v2-${NOW.toString(36)}aaaa`);
    expect(id).toMatch(/^[a-z0-9-]+$/);
  });

  test("a name with no usable characters gives `sweep`, and long names are cut", () => {
    // Given degenerate names
    // When ids are made
    // Then the slug is `sweep`, or at most 32 characters
    expect(newSweepId("!!!", NOW, () => 0.5).startsWith("sweep-")).toBe(true);
    const long = newSweepId("a".repeat(80), NOW, () => 0.5);
    expect(long.startsWith(`${"a".repeat(32)}-`)).toBe(true);
    expect(long.startsWith("a".repeat(33))).toBe(false);
  });

  test("ids made in the same millisecond differ, and later ids sort after earlier ones", () => {
    // Given many ids made with Math.random at the same time
    const ids = new Set(Array.from({ length: 200 }, () => newSweepId("lr", NOW, Math.random)));
    // Then they are (almost surely) all different
    expect(ids.size).toBeGreaterThanOrEqual(199);
    for (const id of ids) expect(id.startsWith("lr-")).toBe(true);
    // And an id made later sorts after, whatever the random part
    expect(newSweepId("lr", NOW + 1, () => 0) > newSweepId("lr", NOW, () => 0.999)).toBe(true);
  });
});
