import { describe, expect, it } from "vitest";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import {
  completeGangRestarts,
  contractIdentity,
  expandGangs,
  gangInstances,
  memberIndices,
  planCatchUp,
  planRestart,
  readMembers,
  restartGang,
} from "./gang.js";
import type { SweepRecord, TaskRecord } from "./model.js";
import type { AttemptEnd } from "./retry.js";
import { parseSpec } from "./spec.js";
import { createSweep } from "./sweeps.js";

const spec = parseSpec({
  name: "g",
  command: "true",
  nodes: 4,
  max_instances: 4,
  params: { list: [{ a: 1 }, { a: 2 }] },
});
const exit = (code: number, error?: string): AttemptEnd => ({
  kind: "exit",
  exitCode: code,
  signal: null,
  timedOut: false,
  durationMs: 5,
  ...(error ? { error } : {}),
});

/** The four members of gang task 0 at `epoch`, all running unless told otherwise. */
function members(epoch: number, overrides: Array<Partial<TaskRecord>> = []): TaskRecord[] {
  return [0, 1, 2, 3].map((rank) => ({
    sweepId: "s",
    index: rank,
    shard: 0,
    taskId: `t0r${rank}`,
    params: {},
    status: "running",
    attempt: epoch + 1,
    failures: epoch,
    lost: 0,
    readyAt: 0,
    leaseOwner: `i${rank}`,
    leaseExpiresAt: 1000,
    gang: { task: 0, rank, size: 4, epoch },
    peer: { instanceId: `i${rank}`, address: "127.0.0.1", port: 40000 + rank },
    updatedAt: 0,
    ...overrides[rank],
  }));
}

describe("the spec's gang fields", () => {
  it("defaults to one node, a 10-minute rendezvous and no EFA", () => {
    const plain = parseSpec({ name: "p", command: "true" });
    expect([plain.nodes, plain.rendezvous_timeout, plain.resources.efa]).toEqual([1, 600_000, false]);
  });

  it("refuses a gang larger than max_instances, naming both", () => {
    expect(() => parseSpec({ name: "g", command: "true", nodes: 4, max_instances: 2 })).toThrow(
      /max_instances.*max_instances \(2\) must be at least nodes \(4\)/s,
    );
  });

  it("refuses more than one slot per instance for a gang", () => {
    expect(() =>
      parseSpec({ name: "g", command: "true", nodes: 2, max_instances: 2, resources: { slots: 4 } }),
    ).toThrow(/resources\.slots.*must be 1 or absent \(got 4\)/s);
    expect(
      parseSpec({ name: "g", command: "true", nodes: 2, max_instances: 2, resources: { slots: 1 } }).nodes,
    ).toBe(2);
  });

  it("bounds nodes to 1..256", () => {
    expect(() => parseSpec({ name: "g", command: "true", nodes: 0 })).toThrow(/nodes/);
    expect(() => parseSpec({ name: "g", command: "true", nodes: 257, max_instances: 300 })).toThrow(/nodes/);
  });
});

describe("gang rows", () => {
  it("expands each task into N member rows, index task*N+rank, at epoch 0", () => {
    // Given two tasks
    const tasks = [
      { index: 0, taskId: "ta", params: { a: 1 } },
      { index: 1, taskId: "tb", params: { a: 2 } },
    ];

    // When
    const rows = expandGangs(tasks, 3);

    // Then
    expect(rows.map((r) => [r.index, r.taskId, r.gang?.task, r.gang?.rank])).toEqual([
      [0, "tar0", 0, 0],
      [1, "tar1", 0, 1],
      [2, "tar2", 0, 2],
      [3, "tbr0", 1, 0],
      [4, "tbr1", 1, 1],
      [5, "tbr2", 1, 2],
    ]);
    expect(rows.every((r) => r.gang?.size === 3 && r.gang.epoch === 0)).toBe(true);
    expect(rows[0]!.params).not.toBe(rows[1]!.params);
    expect(expandGangs(tasks, 1)).toEqual(tasks);
    expect(memberIndices({ task: 1, size: 3 })).toEqual([3, 4, 5]);
  });

  it("tells the task contract the gang task and the gang count, never the row", () => {
    expect(contractIdentity({ index: 6, gang: { task: 1, rank: 2, size: 4, epoch: 0 } }, 8)).toEqual({
      index: 1,
      taskCount: 2,
    });
    expect(contractIdentity({ index: 6 }, 8)).toEqual({ index: 6, taskCount: 8 });
  });

  it("keeps instances in whole gangs, as many as max_instances allows", () => {
    const s = { nodes: 4, max_instances: 10 };
    expect(gangInstances(s, 0)).toBe(0);
    expect(gangInstances(s, 3)).toBe(4);
    expect(gangInstances(s, 8)).toBe(8);
    expect(gangInstances(s, 12)).toBe(8);
  });
});

describe("planRestart", () => {
  it("moves every member, succeeded ones too, to pending at the next epoch with one failure counted", () => {
    // Given rank 0 already succeeded and rank 2 exited 1 at epoch 0, with retries left
    const policy = { ...spec.retry, max_attempts: 3, base: 1000 };
    const rows = members(0, [{ status: "succeeded", leaseOwner: undefined, exitCode: 0 }]);

    // When
    const plan = planRestart(rows, { index: 2, epoch: 0, end: exit(1) }, policy, 5000, 0);

    // Then every row moves, the trigger last, each conditioned on what was read
    expect(plan.kind).toBe("restart");
    expect(plan.writes.map((w) => w.index)).toEqual([0, 1, 3, 2]);
    expect(
      planRestart(members(0), { index: 0, epoch: 0, end: exit(1) }, policy, 5000, 0).writes.map(
        (w) => w.index,
      ),
    ).toEqual([0, 1, 2, 3]);
    for (const w of plan.writes) {
      const row = rows[w.index]!;
      expect(w.expect).toEqual({ status: row.status, attempt: row.attempt, gangEpoch: 0 });
      expect(w.update).toMatchObject({
        status: "pending",
        failures: 1,
        lost: 0,
        readyAt: 6000,
        leaseOwner: null,
        peer: null,
        error: "rank 2: exited with code 1",
        gang: { task: 0, rank: row.gang!.rank, size: 4, epoch: 1 },
      });
    }
    // The trigger keeps what its attempt reported
    expect(plan.writes[3]!.update).toMatchObject({ exitCode: 1 });
    expect(plan.writes[0]!.update.exitCode).toBeUndefined();
  });

  it("fails every member when the retry policy is spent", () => {
    // Given the default policy (one attempt) and a rendezvous timeout
    const plan = planRestart(
      members(0),
      { index: 1, epoch: 0, end: exit(1, "rendezvous timeout after 5s: rank 3 never arrived") },
      spec.retry,
      5000,
      0,
    );

    // Then
    expect(plan.writes).toHaveLength(4);
    for (const w of plan.writes)
      expect(w.update).toMatchObject({
        status: "failed",
        failures: 1,
        finishedAt: 5000,
        error: "rank 1: rendezvous timeout after 5s: rank 3 never arrived",
      });
  });

  it("counts a lost member as lost on every row, not as a failure", () => {
    const plan = planRestart(
      members(2),
      { index: 3, epoch: 2, end: { kind: "lost", reason: "lease held by i3 expired" } },
      spec.retry,
      5000,
      0,
    );
    for (const w of plan.writes)
      expect(w.update).toMatchObject({ status: "pending", failures: 2, lost: 1, gang: { epoch: 3 } });
  });

  it("counts nothing twice: a gang already past the epoch is only caught up", () => {
    // Given another member already restarted epoch 0 except for rank 3
    const rows = members(1, [
      { status: "pending", leaseOwner: undefined, readyAt: 777, failures: 1 },
      { status: "pending", leaseOwner: undefined, readyAt: 777, failures: 1 },
      { status: "pending", leaseOwner: undefined, readyAt: 777, failures: 1 },
      { gang: { task: 0, rank: 3, size: 4, epoch: 0 }, failures: 0 },
    ]);

    // When rank 3's attempt at epoch 0 ends badly too
    const plan = planRestart(rows, { index: 3, epoch: 0, end: exit(1) }, spec.retry, 9000, 0);

    // Then it is brought along, with the gang's counters, and nothing is counted
    expect(plan.kind).toBe("catch-up");
    expect(plan.writes).toHaveLength(1);
    expect(plan.writes[0]).toMatchObject({
      index: 3,
      expect: { status: "running", gangEpoch: 0 },
      update: { status: "pending", failures: 1, readyAt: 777, gang: { rank: 3, epoch: 1 } },
    });
  });

  it("leaves a cancelled gang alone", () => {
    const rows = members(
      0,
      [0, 1, 2, 3].map(() => ({ status: "cancelled" as const })),
    );
    const plan = planRestart(rows, { index: 0, epoch: 0, end: exit(1) }, spec.retry, 1, 0);
    expect(plan.writes).toEqual([]);
  });
});

describe("planCatchUp", () => {
  it("brings members behind the newest epoch to it, failed when the gang failed", () => {
    const rows = members(4, [
      { status: "failed", finishedAt: 50, error: "rank 0: exited with code 3" },
      { gang: { task: 0, rank: 1, size: 4, epoch: 3 }, status: "succeeded" },
      { status: "failed", finishedAt: 50 },
      { status: "failed", finishedAt: 50 },
    ]);
    const writes = planCatchUp(rows, 60);
    expect(writes).toEqual([
      expect.objectContaining({
        index: 1,
        expect: { status: "succeeded", attempt: 5, gangEpoch: 3 },
        update: expect.objectContaining({
          status: "failed",
          finishedAt: 50,
          error: "rank 0: exited with code 3",
          gang: { task: 0, rank: 1, size: 4, epoch: 4 },
        }),
      }),
    ]);
    expect(planCatchUp(members(2), 60)).toEqual([]);
  });
});

describe("restartGang and completeGangRestarts on dynalite", () => {
  const db = useDynaliteStore("gang");
  const clock = { now: () => 10_000 };

  async function launched(sweepId: string, retries = 1): Promise<SweepRecord> {
    const { store } = db();
    const s = parseSpec({
      name: "g",
      command: "true",
      nodes: 4,
      max_instances: 4,
      retry: { max_attempts: retries, base: 0 },
      params: { list: [{ a: 1 }, { a: 2 }] },
    });
    const sweep = await createSweep(
      { store, clock },
      {
        sweepId,
        spec: s,
        tasks: [
          { index: 0, taskId: "ta", params: { a: 1 } },
          { index: 1, taskId: "tb", params: { a: 2 } },
        ],
        owner: "me",
        provider: "local",
      },
    );
    return sweep;
  }

  async function claim(sweep: SweepRecord, index: number, owner: string): Promise<TaskRecord> {
    return db().store.updateTask(
      sweep.sweepId,
      index,
      sweep.shardCount,
      { status: "pending", attempt: 0 },
      { status: "running", attempt: 1, leaseOwner: owner, leaseExpiresAt: 99_000, updatedAt: 10_000 },
    );
  }

  it("stores a gang task as member rows and counts rows", async () => {
    const sweep = await launched("rows");
    expect(sweep.taskCount).toBe(8);
    const rows = await db().store.listTasks(sweep.sweepId, sweep.shardCount);
    expect(rows.map((r) => r.gang)).toEqual(
      [0, 1].flatMap((task) => [0, 1, 2, 3].map((rank) => ({ task, rank, size: 4, epoch: 0 }))),
    );
  });

  it("rejects a write expecting another gang epoch", async () => {
    const sweep = await launched("epoch");
    const { store } = db();
    await expect(
      store.updateTask(
        sweep.sweepId,
        1,
        sweep.shardCount,
        { status: "pending", gangEpoch: 1 },
        { readyAt: 1 },
      ),
    ).rejects.toThrow(/gang\.epoch=1/);
    const ok = await store.updateTask(
      sweep.sweepId,
      1,
      sweep.shardCount,
      { status: "pending", gangEpoch: 0 },
      { readyAt: 1 },
    );
    expect(ok.readyAt).toBe(1);
  });

  it("restarts a whole gang once, even when every member reports the same failure", async () => {
    // Given gang 0 with three members running and one never claimed
    const sweep = await launched("restart", 3);
    const { store } = db();
    const running = await Promise.all([0, 1, 2].map((i) => claim(sweep, i, `i${i}`)));

    // When all three time out at once
    const results = await Promise.all(
      running.map((t) =>
        restartGang(
          { store, clock, random: () => 0 },
          sweep,
          t as TaskRecord & { gang: NonNullable<TaskRecord["gang"]> },
          exit(1, "rendezvous timeout after 5s: rank 3 never arrived"),
        ),
      ),
    );

    // Then exactly one counted the restart, and every member is pending at epoch 1 with one failure
    expect(results.filter((r) => r.outcome).length).toBe(1);
    const rows = await readMembers(store, sweep, { task: 0, size: 4 });
    for (const row of rows) {
      expect(row).toMatchObject({ status: "pending", failures: 1, gang: { epoch: 1 } });
      expect(row.leaseOwner).toBeUndefined();
      expect(row.error).toMatch(/^rank \d: rendezvous timeout after 5s: rank 3 never arrived$/);
    }
    // Gang 1 is untouched
    const other = await readMembers(store, sweep, { task: 1, size: 4 });
    expect(other.every((r) => r.gang?.epoch === 0 && r.failures === 0)).toBe(true);
  });

  it("finishes a restart left half-done, bringing lagging members to the newest epoch", async () => {
    // Given a restart that moved ranks 0-2 of gang 1 and died before rank 3
    const sweep = await launched("catchup", 3);
    const { store } = db();
    const rows = await Promise.all([4, 5, 6, 7].map((i) => claim(sweep, i, `i${i}`)));
    for (const row of rows.slice(0, 3)) {
      await store.updateTask(
        sweep.sweepId,
        row.index,
        sweep.shardCount,
        { status: "running" },
        {
          status: "pending",
          failures: 1,
          readyAt: 12_345,
          leaseOwner: null,
          leaseExpiresAt: null,
          gang: { ...row.gang!, epoch: 1 },
        },
      );
    }

    // When the reconciler looks
    const moved = await completeGangRestarts(
      store,
      sweep,
      await store.listTasks(sweep.sweepId, sweep.shardCount),
      20_000,
    );

    // Then rank 3 follows, and a second pass has nothing to do
    expect(moved).toEqual([7]);
    const rank3 = await store.getTask(sweep.sweepId, 7, sweep.shardCount);
    expect(rank3).toMatchObject({ status: "pending", failures: 1, readyAt: 12_345, gang: { epoch: 1 } });
    expect(rank3?.leaseOwner).toBeUndefined();
    expect(
      await completeGangRestarts(
        store,
        sweep,
        await store.listTasks(sweep.sweepId, sweep.shardCount),
        20_000,
      ),
    ).toEqual([]);
  });
});
