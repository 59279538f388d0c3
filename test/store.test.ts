/**
 * StateStore behaviour on DynamoDB engines: dynalite (always) and DynamoDB Local (the real
 * engine's jar; when Java is present). One suite, so semantic differences show up as failures.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BugError, ConditionFailedError, LeaseLostError } from "../core/errors.js";
import { type InstanceRecord, type SweepRecord, shardOf, type TaskRecord } from "../core/model.js";
import { type Params, SweepSpec } from "../core/spec.js";
import { DynamoStateStore } from "../providers/dynamodb/store.js";
import { ensureTables, tableDefinitions, tableNames } from "../providers/dynamodb/tables.js";
import {
  type DynamoEngine,
  dynamoLocalUnavailable,
  startDynalite,
  startDynamoLocal,
} from "./helpers/dynamo.js";

const localUnavailable = await dynamoLocalUnavailable();

interface EngineCase {
  name: string;
  skip: boolean;
  start: () => Promise<DynamoEngine>;
}

const engines: EngineCase[] = [
  { name: "dynalite", skip: false, start: startDynalite },
  {
    name: localUnavailable ? `DynamoDB Local (skipped: ${localUnavailable})` : "DynamoDB Local",
    skip: localUnavailable !== undefined,
    start: async () => {
      const engine = await startDynamoLocal();
      if ("unavailable" in engine) throw new Error(engine.unavailable);
      return engine;
    },
  },
];

const NOW = 1_700_000_000_000;

function makeSweep(overrides: Partial<SweepRecord> = {}): SweepRecord {
  const sweepId = overrides.sweepId ?? `sw-${randomUUID().slice(0, 8)}`;
  return {
    sweepId,
    name: "lr-sweep",
    owner: "alice",
    provider: "local",
    status: "creating",
    active: true,
    spec: SweepSpec.parse({
      name: "lr-sweep",
      command: "python train.py --lr {{lr}}",
      params: { grid: { lr: [0.1, 0.01] } },
      retry: { max_attempts: 3, base: "10s" },
      timeout: "2h",
    }),
    taskCount: 2,
    shardCount: 1,
    launchSeq: 0,
    createdAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

function makeTask(
  sweepId: string,
  index: number,
  shardCount: number,
  overrides: Partial<TaskRecord> = {},
): TaskRecord {
  return {
    sweepId,
    index,
    shard: shardOf(index, shardCount),
    taskId: `t${index.toString(16).padStart(6, "0")}`,
    params: { lr: index / 10, name: `task-${index}` },
    status: "pending",
    attempt: 0,
    failures: 0,
    lost: 0,
    readyAt: NOW,
    updatedAt: NOW,
    ...overrides,
  };
}

function makeTasks(sweepId: string, count: number, shardCount: number): TaskRecord[] {
  return Array.from({ length: count }, (_, i) => makeTask(sweepId, i, shardCount));
}

function makeInstance(
  sweepId: string,
  instanceId: string,
  overrides: Partial<InstanceRecord> = {},
): InstanceRecord {
  return {
    sweepId,
    instanceId,
    provider: "local",
    status: "launching",
    slots: 1,
    launchedAt: NOW,
    deadline: NOW + 3_600_000,
    ...overrides,
  };
}

const claim = (owner: string, until: number) => ({
  status: "running" as const,
  attempt: 1,
  leaseOwner: owner,
  leaseExpiresAt: until,
  startedAt: NOW,
  updatedAt: NOW,
});

describe.each(engines.map((engine) => [engine.name, engine] as const))(
  "StateStore on %s",
  (_name, engine) => {
    describe.skipIf(engine.skip)("behaviour", () => {
      let running: DynamoEngine;
      let store: DynamoStateStore;
      const prefix = `t${randomUUID().slice(0, 6)}-`;

      beforeAll(async () => {
        running = await engine.start();
        const created = await ensureTables(running.client, prefix);
        expect(created.sort()).toEqual(Object.values(tableNames(prefix)).sort());
        store = new DynamoStateStore(running.client, prefix);
      });

      afterAll(async () => {
        await running?.close();
      });

      test("ensureTables is idempotent and safe to run concurrently", async () => {
        expect(await ensureTables(running.client, prefix)).toEqual([]);
        const other = `c${randomUUID().slice(0, 6)}-`;
        const [a, b] = await Promise.all([
          ensureTables(running.client, other),
          ensureTables(running.client, other),
        ]);
        expect([...(a ?? []), ...(b ?? [])].sort()).toEqual(
          tableDefinitions(other)
            .map((d) => d.TableName)
            .sort(),
        );
      });

      test("create and get a sweep; the spec round-trips exactly; a second create fails", async () => {
        const sweep = makeSweep({
          bundle: { key: "bundles/abc.tar.gz", sha256: "abc", bytes: 123 },
          reason: "why",
        });
        await store.createSweep(sweep);
        const read = await store.getSweep(sweep.sweepId);
        expect(read).toEqual(sweep);
        // Durations are milliseconds in memory and stay so through the store (not re-read as seconds).
        expect(read?.spec.timeout).toBe(7_200_000);
        expect(read?.spec.retry.base).toBe(10_000);
        expect(read?.spec.ttl).toBe(sweep.spec.ttl);

        await expect(store.createSweep({ ...sweep, name: "other" })).rejects.toThrow(ConditionFailedError);
        expect((await store.getSweep(sweep.sweepId))?.name).toBe("lr-sweep");
        expect(await store.getSweep("no-such-sweep")).toBeUndefined();
      });

      test("listSweeps: by owner, newest first, with a limit; without owner too", async () => {
        const owner = `owner-${randomUUID().slice(0, 8)}`;
        const base = Date.now() + 10_000_000; // newer than every other test's sweeps
        const sweeps = [3, 1, 4, 2].map((n) =>
          makeSweep({ owner, createdAt: base + n, updatedAt: base + n }),
        );
        await Promise.all(sweeps.map((s) => store.createSweep(s)));
        await store.createSweep(makeSweep({ owner: `${owner}-other`, createdAt: base + 5 }));

        const mine = await store.listSweeps({ owner });
        expect(mine.map((s) => s.createdAt)).toEqual([base + 4, base + 3, base + 2, base + 1]);
        expect((await store.listSweeps({ owner, limit: 2 })).map((s) => s.createdAt)).toEqual([
          base + 4,
          base + 3,
        ]);

        const all = await store.listSweeps({ limit: 5 });
        expect(all.map((s) => s.createdAt)).toEqual([base + 5, base + 4, base + 3, base + 2, base + 1]);
        expect(await store.listSweeps({ owner: "nobody-at-all" })).toEqual([]);
      });

      test("active index: a sweep appears while active and disappears when the flag drops", async () => {
        const sweep = makeSweep({ active: true });
        const idle = makeSweep({ active: false });
        await store.createSweep(sweep);
        await store.createSweep(idle);
        let active = (await store.listActiveSweeps()).map((s) => s.sweepId);
        expect(active).toContain(sweep.sweepId);
        expect(active).not.toContain(idle.sweepId);

        const updated = await store.updateSweep(
          sweep.sweepId,
          { active: true },
          { active: false, updatedAt: NOW + 1 },
        );
        expect(updated.active).toBe(false);
        active = (await store.listActiveSweeps()).map((s) => s.sweepId);
        expect(active).not.toContain(sweep.sweepId);

        await store.updateSweep(idle.sweepId, { active: false }, { active: true });
        const found = (await store.listActiveSweeps()).find((s) => s.sweepId === idle.sweepId);
        expect(found).toEqual({ ...idle, active: true });
      });

      test("updateSweep is conditional: a cancelled sweep is not overwritten by a writer expecting running", async () => {
        const sweep = makeSweep({ status: "running" });
        await store.createSweep(sweep);
        const cancelled = await store.updateSweep(
          sweep.sweepId,
          { status: ["creating", "running"] },
          { status: "cancelled", cancelRequestedAt: NOW + 5, reason: "user cancelled" },
        );
        expect(cancelled.status).toBe("cancelled");

        const late = store.updateSweep(
          sweep.sweepId,
          { status: "running" },
          { status: "succeeded", finishedAt: NOW + 9 },
        );
        await expect(late).rejects.toThrow(ConditionFailedError);
        await expect(late).rejects.toThrow(/sweep .*expected status=/);
        expect((await store.getSweep(sweep.sweepId))?.status).toBe("cancelled");

        // launchSeq compare-and-set; null removes an optional attribute.
        const bumped = await store.updateSweep(
          sweep.sweepId,
          { launchSeq: 0 },
          { launchSeq: 2, reason: null },
        );
        expect(bumped.launchSeq).toBe(2);
        expect(bumped.reason).toBeUndefined();
        expect("reason" in bumped).toBe(false);
        await expect(store.updateSweep(sweep.sweepId, { launchSeq: 0 }, { launchSeq: 3 })).rejects.toThrow(
          ConditionFailedError,
        );
        await expect(store.updateSweep("missing-sweep", {}, { reason: "x" })).rejects.toThrow(
          ConditionFailedError,
        );
        // Required fields cannot be removed, and keys cannot be rewritten.
        await expect(store.updateSweep(sweep.sweepId, {}, { status: null })).rejects.toThrow(BugError);
      });

      test("putTasks + listTasks: sorted by index, params round-trip with their exact types", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const shardCount = 3;
        const tricky: Params[] = [
          { s: 'quote " and \\ backslash', n: 1, f: 1.5, one: "1" },
          { unicode: "héllo ✓ 日本 🚀", empty: "", nothing: null, t: true },
          { nested: { a: [1, "1", { b: [null, false, 0.1] }], o: {} }, list: [] },
          { big: 12345678901234, neg: -0.000123, exp: 1e-7 },
          {},
        ];
        const tasks = tricky.map((params, index) => makeTask(sweepId, index, shardCount, { params }));
        await store.putTasks([...tasks].reverse());
        const listed = await store.listTasks(sweepId, shardCount);
        expect(listed.map((t) => t.index)).toEqual([0, 1, 2, 3, 4]);
        expect(listed).toEqual(tasks);
        expect(listed[0]?.params.n).toBe(1);
        expect(listed[0]?.params.one).toBe("1");
        expect(await store.getTask(sweepId, 2, shardCount)).toEqual(tasks[2]);
        expect(await store.getTask(sweepId, 99, shardCount)).toBeUndefined();
        // Idempotent: putting the same tasks again changes nothing.
        await store.putTasks(tasks);
        expect(await store.listTasks(sweepId, shardCount)).toEqual(tasks);
      });

      test("listPendingTasks respects readyBy, shard, order and limit", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const shardCount = 2;
        const tasks = Array.from({ length: 8 }, (_, i) =>
          makeTask(sweepId, i, shardCount, { readyAt: NOW + (10 - i) * 1000 }),
        );
        await store.putTasks(tasks);

        const shard0 = await store.listPendingTasks(sweepId, 0);
        expect(shard0.map((t) => t.index)).toEqual([6, 4, 2, 0]); // oldest readyAt first
        expect(shard0.every((t) => t.shard === 0)).toBe(true);

        const ready = await store.listPendingTasks(sweepId, 1, { readyBy: NOW + 5000 });
        expect(ready.map((t) => t.index)).toEqual([7, 5]); // readyAt 3000, 5000 (inclusive)
        expect((await store.listPendingTasks(sweepId, 1, { limit: 3 })).map((t) => t.index)).toEqual([
          7, 5, 3,
        ]);
        expect(await store.listPendingTasks(sweepId, 1, { readyBy: NOW })).toEqual([]);
        expect(await store.listPendingTasks("other-sweep", 0)).toEqual([]);
      });

      test("tasks that tie on readyAt / leaseExpiresAt all stay in the sparse indexes", async () => {
        // dynalite tells index entries with equal index keys apart by a 24-bit hash of the table key;
        // tasks 527 and 675 of this sweep collide there, so with readyAt alone as the index sort key
        // one of them would vanish from the pending index. The ordered keys (readyAt#index) keep both.
        const sweepId = "sw-dynalite-collision";
        const tasks = [527, 675].map((index) => makeTask(sweepId, index, 1, { readyAt: NOW }));
        await store.putTasks(tasks);
        expect((await store.listPendingTasks(sweepId, 0)).map((t) => t.index)).toEqual([527, 675]);
        for (const index of [527, 675]) {
          await store.updateTask(
            sweepId,
            index,
            1,
            { status: "pending", attempt: 0 },
            claim(`a${index}`, NOW + 1000),
          );
        }
        expect((await store.listRunningTasks(sweepId, 0)).map((t) => t.index)).toEqual([527, 675]);
        expect(await store.countOpenTasks(sweepId, 1)).toEqual({ pending: 0, running: 2 });
      });

      test("claim: pending → running with a lease; concurrent claims of one task, exactly one wins", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const shardCount = 4;
        await store.putTasks(makeTasks(sweepId, 16, shardCount));

        for (let index = 0; index < 16; index++) {
          const claimers = ["agent-a", "agent-b", "agent-c"];
          const results = await Promise.allSettled(
            claimers.map((owner) =>
              store.updateTask(
                sweepId,
                index,
                shardCount,
                { status: "pending", attempt: 0 },
                claim(owner, NOW + 60_000),
              ),
            ),
          );
          const won = results.filter((r) => r.status === "fulfilled");
          const lost = results.filter((r) => r.status === "rejected");
          expect(won).toHaveLength(1);
          expect(lost).toHaveLength(2);
          for (const r of lost)
            expect((r as PromiseRejectedResult).reason).toBeInstanceOf(ConditionFailedError);
          const winner = (won[0] as PromiseFulfilledResult<TaskRecord>).value;
          expect(winner).toMatchObject({ status: "running", attempt: 1, leaseExpiresAt: NOW + 60_000 });
          expect(claimers).toContain(winner.leaseOwner);
          expect(await store.getTask(sweepId, index, shardCount)).toEqual(winner);
        }
        expect(await store.listPendingTasks(sweepId, 0)).toEqual([]);
        expect(await store.countOpenTasks(sweepId, shardCount)).toEqual({ pending: 0, running: 16 });
      });

      test("lease renewal: the owner renews, anyone else fails with LeaseLostError", async () => {
        const sweepId = `sw-${randomUUID()}`;
        await store.putTasks(makeTasks(sweepId, 1, 1));
        await store.updateTask(
          sweepId,
          0,
          1,
          { status: "pending", attempt: 0 },
          claim("agent-a", NOW + 60_000),
        );

        const renewed = await store.updateTask(
          sweepId,
          0,
          1,
          { status: "running", attempt: 1, leaseOwner: "agent-a" },
          { leaseExpiresAt: NOW + 120_000 },
        );
        expect(renewed.leaseExpiresAt).toBe(NOW + 120_000);

        const wrong = store.updateTask(
          sweepId,
          0,
          1,
          { status: "running", attempt: 1, leaseOwner: "agent-b" },
          { leaseExpiresAt: NOW + 180_000 },
        );
        await expect(wrong).rejects.toThrow(LeaseLostError);
        await expect(wrong).rejects.toThrow(
          /task 0 of sweep .*leaseOwner="agent-b".*found .*leaseOwner="agent-a"/,
        );
        // A stale attempt fails too, and nothing was written.
        await expect(
          store.updateTask(sweepId, 0, 1, { status: "running", attempt: 0 }, { leaseExpiresAt: NOW + 1 }),
        ).rejects.toThrow(ConditionFailedError);
        expect((await store.getTask(sweepId, 0, 1))?.leaseExpiresAt).toBe(NOW + 120_000);
        // A missing task is a failed condition, not a silent upsert.
        await expect(
          store.updateTask(sweepId, 5, 1, { status: "pending" }, { status: "running" }),
        ).rejects.toThrow(ConditionFailedError);
        expect(await store.getTask(sweepId, 5, 1)).toBeUndefined();
      });

      test("running index: listRunningTasks(expiredBefore) finds only expired leases; the reaper re-queues the lease it saw", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const shardCount = 2;
        await store.putTasks(makeTasks(sweepId, 6, shardCount));
        // Shard 0 holds 0, 2, 4: leases expiring at +10s, +20s, +30s.
        for (const [index, expires] of [
          [0, NOW + 10_000],
          [2, NOW + 20_000],
          [4, NOW + 30_000],
          [1, NOW + 5_000],
        ] as const) {
          await store.updateTask(
            sweepId,
            index,
            shardCount,
            { status: "pending", attempt: 0 },
            claim(`a${index}`, expires),
          );
        }
        const all = await store.listRunningTasks(sweepId, 0);
        expect(all.map((t) => t.index)).toEqual([0, 2, 4]);
        const expired = await store.listRunningTasks(sweepId, 0, { expiredBefore: NOW + 20_000 });
        expect(expired.map((t) => t.index)).toEqual([0]); // strictly before
        expect(expired[0]).toMatchObject({
          status: "running",
          leaseOwner: "a0",
          leaseExpiresAt: NOW + 10_000,
        });
        expect((await store.listRunningTasks(sweepId, 1)).map((t) => t.index)).toEqual([1]);
        expect(await store.listRunningTasks(sweepId, 0, { limit: 2 })).toHaveLength(2);

        // Renewed meanwhile: the reaper's expectation on the old expiry fails.
        await store.updateTask(
          sweepId,
          2,
          shardCount,
          { status: "running", leaseOwner: "a2" },
          { leaseExpiresAt: NOW + 90_000 },
        );
        await expect(
          store.updateTask(
            sweepId,
            2,
            shardCount,
            { status: "running", leaseExpiresAt: NOW + 20_000 },
            { status: "pending", leaseOwner: null, leaseExpiresAt: null },
          ),
        ).rejects.toThrow(ConditionFailedError);

        // Re-queue task 0: it leaves the running index, enters the pending one, lease attributes gone.
        const requeued = await store.updateTask(
          sweepId,
          0,
          shardCount,
          { status: "running", leaseExpiresAt: NOW + 10_000 },
          {
            status: "pending",
            leaseOwner: null,
            leaseExpiresAt: null,
            lost: 1,
            readyAt: NOW + 1,
            updatedAt: NOW + 1,
          },
        );
        expect(requeued).toMatchObject({ status: "pending", lost: 1, attempt: 1 });
        expect(requeued.leaseOwner).toBeUndefined();
        expect(requeued.leaseExpiresAt).toBeUndefined();
        // Task 2's lease was renewed to +90s, so it now sorts after task 4 (+30s).
        expect((await store.listRunningTasks(sweepId, 0)).map((t) => t.index)).toEqual([4, 2]);
        expect((await store.listPendingTasks(sweepId, 0)).map((t) => t.index)).toEqual([requeued.index]);
      });

      test("leaving running (finish, cancel) removes the task from both sparse indexes; counts follow", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const shardCount = 3;
        await store.putTasks(makeTasks(sweepId, 9, shardCount));
        expect(await store.countOpenTasks(sweepId, shardCount)).toEqual({ pending: 9, running: 0 });

        await store.updateTask(
          sweepId,
          0,
          shardCount,
          { status: "pending", attempt: 0 },
          claim("a", NOW + 60_000),
        );
        await store.updateTask(
          sweepId,
          1,
          shardCount,
          { status: "pending", attempt: 0 },
          claim("b", NOW + 60_000),
        );
        expect(await store.countOpenTasks(sweepId, shardCount)).toEqual({ pending: 7, running: 2 });

        const done = await store.updateTask(
          sweepId,
          0,
          shardCount,
          { status: "running", attempt: 1, leaseOwner: "a" },
          {
            status: "succeeded",
            exitCode: 0,
            finishedAt: NOW + 100,
            durationMs: 100,
            metrics: { loss: 0.25, step: 10, tag: "1", nested: { ok: true } },
            outputs: ["results/a.json"],
            leaseOwner: null,
            leaseExpiresAt: null,
          },
        );
        expect(done.metrics).toEqual({ loss: 0.25, step: 10, tag: "1", nested: { ok: true } });
        expect(done.outputs).toEqual(["results/a.json"]);
        expect(await store.getTask(sweepId, 0, shardCount)).toEqual(done);

        await store.updateTask(
          sweepId,
          3,
          shardCount,
          { status: ["pending", "running"] },
          { status: "cancelled" },
        );
        expect(await store.listRunningTasks(sweepId, 0)).toEqual([]);
        expect((await store.listPendingTasks(sweepId, 0)).map((t) => t.index)).toEqual([6]);
        expect(await store.countOpenTasks(sweepId, shardCount)).toEqual({ pending: 6, running: 1 });

        // Terminal statuses are final for a writer that expects an open one.
        await expect(
          store.updateTask(
            sweepId,
            0,
            shardCount,
            { status: ["pending", "running"] },
            { status: "cancelled" },
          ),
        ).rejects.toThrow(ConditionFailedError);
        // An empty update only checks the expectation and returns the record.
        expect(await store.updateTask(sweepId, 0, shardCount, { status: "succeeded" }, {})).toEqual(done);
      });

      test("instances: put, get, list, update, and the reaper's past-deadline view skips terminated ones", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const other = `sw-${randomUUID()}`;
        const ids = Array.from({ length: 10 }, (_, i) => `${sweepId}-i${i}`);
        await Promise.all(
          ids.map((id, i) => store.putInstance(makeInstance(sweepId, id, { deadline: NOW + i * 1000 }))),
        );
        await store.putInstance(makeInstance(other, `${other}-i0`, { deadline: NOW }));
        await expect(store.putInstance(makeInstance(sweepId, ids[0]!))).rejects.toThrow(ConditionFailedError);

        expect((await store.listInstances(sweepId)).map((i) => i.instanceId).sort()).toEqual([...ids].sort());
        expect(await store.getInstance(sweepId, ids[3]!)).toEqual(
          makeInstance(sweepId, ids[3]!, { deadline: NOW + 3000 }),
        );
        expect(await store.getInstance(sweepId, "nope")).toBeUndefined();

        const up = await store.updateInstance(
          sweepId,
          ids[1]!,
          { status: "launching" },
          { status: "running", providerRef: "1234", host: "127.0.0.1", heartbeatAt: NOW + 5 },
        );
        expect(up).toMatchObject({ status: "running", providerRef: "1234", heartbeatAt: NOW + 5 });
        await store.updateInstance(
          sweepId,
          ids[2]!,
          { status: ["launching", "running"] },
          {
            status: "terminated",
            terminatedAt: NOW + 6,
            reason: "done",
          },
        );
        await expect(
          store.updateInstance(sweepId, ids[2]!, { status: ["launching", "running"] }, { status: "running" }),
        ).rejects.toThrow(ConditionFailedError);
        await expect(store.updateInstance(sweepId, "missing", {}, { heartbeatAt: 1 })).rejects.toThrow(
          ConditionFailedError,
        );

        const past = (await store.listInstancesPastDeadline(NOW + 4000)).filter((i) => i.sweepId === sweepId);
        // Deadlines NOW+0..3000 are before NOW+4000; i2 is terminated.
        expect(past.map((i) => i.instanceId)).toEqual([ids[0], ids[1], ids[3]]);
        expect(past[1]?.status).toBe("running");
        const everywhere = await store.listInstancesPastDeadline(NOW + 1);
        expect(everywhere.map((i) => i.instanceId)).toEqual(expect.arrayContaining([ids[0], `${other}-i0`]));
      });

      test("putTasks writes 10,000 tasks over 20 shards; listTasks and counts see all of them", async () => {
        const sweepId = `sw-${randomUUID()}`;
        const shardCount = 20;
        const tasks = makeTasks(sweepId, 10_000, shardCount);
        const started = performance.now();
        await store.putTasks(tasks);
        const ms = performance.now() - started;
        console.info(`[${engine.name}] putTasks(10,000) took ${Math.round(ms)} ms`);
        const listed = await store.listTasks(sweepId, shardCount);
        expect(listed).toHaveLength(10_000);
        expect(listed[9_999]).toEqual(tasks[9_999]);
        expect(await store.countOpenTasks(sweepId, shardCount)).toEqual({ pending: 10_000, running: 0 });
        // A capped count stops at the cap, across shard boundaries too (500 per shard here).
        expect(await store.countOpenTasks(sweepId, shardCount, { cap: 7 })).toEqual({
          pending: 7,
          running: 0,
        });
        expect(await store.countOpenTasks(sweepId, shardCount, { cap: 1_234 })).toEqual({
          pending: 1_234,
          running: 0,
        });
        expect(await store.listPendingTasks(sweepId, 7)).toHaveLength(500);
      });

      test("deleteSweep removes the sweep and every task", async () => {
        const sweep = makeSweep({ shardCount: 3, taskCount: 60 });
        await store.createSweep(sweep);
        await store.putTasks(makeTasks(sweep.sweepId, 60, 3));
        await store.deleteSweep(sweep.sweepId, 3);
        expect(await store.getSweep(sweep.sweepId)).toBeUndefined();
        expect(await store.listTasks(sweep.sweepId, 3)).toEqual([]);
        expect(await store.countOpenTasks(sweep.sweepId, 3)).toEqual({ pending: 0, running: 0 });
        expect((await store.listActiveSweeps()).map((s) => s.sweepId)).not.toContain(sweep.sweepId);
      });
    });
  },
);
