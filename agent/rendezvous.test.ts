import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { restartGang } from "#core/gang.js";
import type { SweepRecord, TaskRecord } from "#core/model.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import {
  hostfile,
  joinGang,
  type MemberTask,
  missingRanks,
  peerEntries,
  watchMembership,
} from "./rendezvous.js";

const db = useDynaliteStore("rdv");
const clock = { now: () => Date.now() };

async function gangSweep(sweepId: string, extra: Record<string, unknown> = {}): Promise<SweepRecord> {
  const spec = parseSpec({
    name: "g",
    command: "true",
    nodes: 4,
    max_instances: 4,
    rendezvous_timeout: "1s",
    resources: { gpus: 2 },
    ...extra,
  });
  return createSweep(
    { store: db().store, clock },
    { sweepId, spec, tasks: [{ index: 0, taskId: "t", params: {} }], owner: "me", provider: "local" },
  );
}

async function claim(sweep: SweepRecord, index: number): Promise<MemberTask> {
  const row = await db().store.updateTask(
    sweep.sweepId,
    index,
    sweep.shardCount,
    { status: "pending" },
    { status: "running", attempt: 1, leaseOwner: `inst-${index}`, leaseExpiresAt: Date.now() + 60_000 },
  );
  return row as MemberTask;
}

function join4(sweep: SweepRecord, task: MemberTask, dir: string) {
  return joinGang({
    store: db().store,
    clock,
    sweep,
    task,
    instanceId: task.leaseOwner!,
    self: { address: "127.0.0.1", dnsName: "localhost" },
    dir,
    signal: new AbortController().signal,
    pollMs: 20,
  });
}

describe("peers file and hostfile", () => {
  it("lists peers by rank with every key present, and one hostfile line per rank", () => {
    const rows = [1, 0].map(
      (rank) =>
        ({
          gang: { task: 0, rank, size: 2, epoch: 0 },
          peer: { instanceId: `i${rank}`, address: `10.0.0.${rank}`, ...(rank ? {} : { port: 29500 }) },
        }) as TaskRecord,
    );
    const peers = peerEntries(rows);
    expect(peers).toEqual([
      { rank: 0, instanceId: "i0", address: "10.0.0.0", dnsName: null, port: 29500 },
      { rank: 1, instanceId: "i1", address: "10.0.0.1", dnsName: null, port: null },
    ]);
    expect(hostfile(peers, 8)).toBe("10.0.0.0 slots=8\n10.0.0.1 slots=8\n");
    expect(missingRanks([3])).toBe("rank 3 never arrived");
    expect(missingRanks([2, 3])).toBe("ranks 2, 3 never arrived");
  });
});

describe("joinGang on dynalite", () => {
  it("meets all four members, each with byte-identical peers files and rank 0's port as MASTER_PORT", async () => {
    // Given a 4-member gang, every member claimed by its own instance
    const sweep = await gangSweep("meet");
    const tasks = await Promise.all([0, 1, 2, 3].map((i) => claim(sweep, i)));
    const dirs = await Promise.all(tasks.map(() => mkdtemp(join(tmpdir(), "rdv-"))));

    // When they all join at once
    const results = await Promise.all(tasks.map((t, i) => join4(sweep, t, dirs[i]!)));

    // Then
    const files = await Promise.all(
      results.map((r) => (r.kind === "ready" ? readFile(r.gang.peersFile, "utf8") : "")),
    );
    expect(new Set(files).size).toBe(1);
    const peers = JSON.parse(files[0]!);
    expect(peers.map((p: { rank: number; instanceId: string }) => [p.rank, p.instanceId])).toEqual([
      [0, "inst-0"],
      [1, "inst-1"],
      [2, "inst-2"],
      [3, "inst-3"],
    ]);
    results.forEach((r, rank) => {
      if (r.kind !== "ready") throw new Error(`rank ${rank}: ${r.kind}`);
      expect(r.gang).toMatchObject({
        rank,
        worldSize: 4,
        masterAddr: "127.0.0.1",
        masterPort: peers[0].port,
      });
    });
    const ready = results[2]!;
    if (ready.kind !== "ready") throw new Error("not ready");
    expect(await readFile(ready.gang.hostfile, "utf8")).toBe("127.0.0.1 slots=2\n".repeat(4));
  });

  it("times out naming the ranks that never arrived", async () => {
    // Given only ranks 0 and 1 claimed
    const sweep = await gangSweep("late");
    const tasks = await Promise.all([0, 1].map((i) => claim(sweep, i)));
    const dir = await mkdtemp(join(tmpdir(), "rdv-"));

    // When they wait past rendezvous_timeout (1 s)
    const started = Date.now();
    const results = await Promise.all(tasks.map((t) => join4(sweep, t, dir)));

    // Then
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    for (const r of results)
      expect(r).toMatchObject({
        kind: "timeout",
        reason: "rendezvous timeout after 1s: ranks 2, 3 never arrived",
      });
  });

  it("leaves the rendezvous when the gang is restarted meanwhile", async () => {
    // Given rank 0 waiting, and rank 1 failing (restarting the gang)
    const sweep = await gangSweep("left", { rendezvous_timeout: "30s" });
    const [t0, t1] = await Promise.all([0, 1].map((i) => claim(sweep, i)));
    const waiting = join4(sweep, t0!, await mkdtemp(join(tmpdir(), "rdv-")));

    // When
    await restartGang({ store: db().store, clock }, sweep, t1!, { kind: "lost", reason: "test" });

    // Then rank 0 leaves at once rather than waiting 30 s
    await expect(waiting).resolves.toMatchObject({ kind: "left" });
  });
});

describe("watchMembership", () => {
  it("calls back once the member's row is restarted away from its attempt", async () => {
    // Given rank 2 running, watched
    const sweep = await gangSweep("watch");
    const [t2, t3] = await Promise.all([2, 3].map((i) => claim(sweep, i)));
    let left: TaskRecord | undefined;
    const seen = new Promise<void>((resolve) => {
      watchMembership({
        store: db().store,
        sweep,
        task: t2!,
        instanceId: "inst-2",
        intervalMs: 20,
        onLeft: (row) => {
          left = row;
          resolve();
        },
      });
    });

    // When rank 3 is lost and the gang restarts
    await restartGang({ store: db().store, clock }, sweep, t3!, { kind: "lost", reason: "lease expired" });

    // Then
    await seen;
    expect(left).toMatchObject({ status: "pending", gang: { epoch: 1 } });
  });
});
