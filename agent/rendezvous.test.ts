import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { restartGang } from "#core/gang.js";
import type { SweepRecord, TaskRecord } from "#core/model.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { LocalHosts } from "#providers/local/hosts.js";
import { createLogger } from "#providers/log.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { DNS_TIMEOUT_MS } from "./dns.js";
import {
  hostfile,
  joinGang,
  type MemberTask,
  missingRanks,
  PeerNames,
  type PeerNamesOptions,
  peerEntries,
  watchMembership,
} from "./rendezvous.js";
import { DnsResolver } from "./resolve.js";

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

/** Peer discovery without hostnames (by address), logging nowhere. */
const byAddress = () => new PeerNames({ log: createLogger({}, () => undefined) });

function join4(sweep: SweepRecord, task: MemberTask, dir: string, names = byAddress()) {
  return joinGang({
    store: db().store,
    clock,
    sweep,
    task,
    instanceId: task.leaseOwner!,
    address: "127.0.0.1",
    names,
    dir,
    signal: new AbortController().signal,
    pollMs: 20,
  });
}

/** Peer discovery that logs into `lines`. */
function recordingNames(lines: string[], o: Omit<PeerNamesOptions, "log"> = {}) {
  return new PeerNames({ ...o, log: createLogger({}, (line) => lines.push(line)) });
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
    const sweep = await gangSweep("meet", { rendezvous_timeout: "30s" });
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

describe("peer discovery by name", () => {
  it("finds every member by the hostname it registered in the hosts file", async () => {
    // Given a 4-member gang whose agents registered in a hosts file, rank 1's name pointing at
    // 127.0.0.2 (its row still says 127.0.0.1: the name, not the row, must decide)
    const sweep = await gangSweep("names", { rendezvous_timeout: "30s" });
    const hosts = new LocalHosts(await mkdtemp(join(tmpdir(), "rdv-home-")));
    const tasks = await Promise.all([0, 1, 2, 3].map((i) => claim(sweep, i)));
    const names = await Promise.all(
      tasks.map(async (t, rank) => {
        const entry = await hosts.register({
          instanceId: t.leaseOwner!,
          sweepId: sweep.sweepId,
          name: `i${rank}`,
          ...(rank === 1 ? { ip: "127.0.0.2" } : {}),
        });
        return new PeerNames({
          resolver: hosts,
          registered: Promise.resolve(entry.host),
          log: createLogger({}, () => undefined),
        });
      }),
    );

    // When they all join
    const dirs = await Promise.all(tasks.map(() => mkdtemp(join(tmpdir(), "rdv-"))));
    const results = await Promise.all(tasks.map((t, i) => join4(sweep, t, dirs[i]!, names[i])));

    // Then each saw every sibling under its name, at the address its name resolves to
    const files = await Promise.all(
      results.map((r) => (r.kind === "ready" ? readFile(r.gang.peersFile, "utf8") : "")),
    );
    expect(new Set(files).size).toBe(1);
    const peers = JSON.parse(files[0]!) as Array<{ rank: number; address: string; dnsName: string }>;
    expect(peers.map((p) => [p.rank, p.dnsName, p.address])).toEqual([
      [0, `i0.${sweep.sweepId}.spawn.local`, "127.0.0.1"],
      [1, `i1.${sweep.sweepId}.spawn.local`, "127.0.0.2"],
      [2, `i2.${sweep.sweepId}.spawn.local`, "127.0.0.1"],
      [3, `i3.${sweep.sweepId}.spawn.local`, "127.0.0.1"],
    ]);
    const ready = results[3]!;
    if (ready.kind !== "ready") throw new Error(ready.kind);
    expect(await readFile(ready.gang.hostfile, "utf8")).toBe(
      "127.0.0.1 slots=2\n127.0.0.2 slots=2\n127.0.0.1 slots=2\n127.0.0.1 slots=2\n",
    );
    // The group name is the multi-value record: every member's address
    expect((await hosts.resolve(`${sweep.sweepId}.spawn.local`)).sort()).toEqual([
      "127.0.0.1",
      "127.0.0.1",
      "127.0.0.1",
      "127.0.0.2",
    ]);
  });

  it("finds members the same way through DNS on AWS (the names the dns-updater registered)", async () => {
    // Given a zone as Route 53 would answer it through getaddrinfo: rank 2 at 10.0.0.12
    const sweep = await gangSweep("dns", { rendezvous_timeout: "30s" });
    const zone = new Map(
      [0, 1, 2, 3].map((r) => [`i${r}.${sweep.sweepId}.spawn.example.com`, `10.0.0.1${r}`]),
    );
    const resolver = new DnsResolver(async (name) => {
      const address = zone.get(name);
      if (!address) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: "ENOTFOUND" });
      return [{ address }];
    });
    const tasks = await Promise.all([0, 1, 2, 3].map((i) => claim(sweep, i)));

    // When they join, each published under its name
    const results = await Promise.all(
      tasks.map(async (t, rank) =>
        join4(
          sweep,
          t,
          await mkdtemp(join(tmpdir(), "rdv-")),
          new PeerNames({
            resolver,
            registered: Promise.resolve(`i${rank}.${sweep.sweepId}.spawn.example.com`),
            log: createLogger({}, () => undefined),
          }),
        ),
      ),
    );

    // Then the addresses handed to the command are the names' (the rows say 127.0.0.1)
    const ready = results[1]!;
    if (ready.kind !== "ready") throw new Error(ready.kind);
    expect(ready.gang.masterAddr).toBe("10.0.0.10");
    expect(await readFile(ready.gang.hostfile, "utf8")).toBe(
      "10.0.0.10 slots=2\n10.0.0.11 slots=2\n10.0.0.12 slots=2\n10.0.0.13 slots=2\n",
    );
    expect(ready.peers.map((p) => p.dnsName)).toEqual([...zone.keys()]);
  });

  it("publishes no name for an agent whose registration failed, finds nameless peers by address, and says so once", async () => {
    // Given an agent whose hostname registration failed
    const lines: string[] = [];
    const hosts = new LocalHosts(await mkdtemp(join(tmpdir(), "rdv-home-")));
    const names = recordingNames(lines, { resolver: hosts, registered: Promise.resolve(undefined) });
    const peers = [
      { rank: 0, address: "10.0.0.1", dnsName: null },
      { rank: 1, address: "10.0.0.2", dnsName: null },
    ];

    // When it joins two gangs in turn
    const first = [await names.self(), await names.addresses(peers)];
    const second = [await names.self(), await names.addresses(peers)];

    // Then it publishes no name, every peer keeps its row's address, and the log says why once
    expect(first).toEqual([undefined, peers]);
    expect(second).toEqual(first);
    expect(lines.map((l) => JSON.parse(l))).toEqual([
      expect.objectContaining({
        level: "warn",
        msg: "gang peers are found by address, not by hostname",
        reason: "this instance's hostname is not registered",
      }),
    ]);
  });

  it("keeps a peer's row address when its name resolves to nothing or the resolver fails", async () => {
    // Given one agent whose hosts file lacks its peer's name, and one whose resolver is down
    const emptyLines: string[] = [];
    const brokenLines: string[] = [];
    const registered = Promise.resolve("i0.s.spawn.local");
    const empty = recordingNames(emptyLines, {
      resolver: new LocalHosts(await mkdtemp(join(tmpdir(), "rdv-home-"))),
      registered,
    });
    const broken = recordingNames(brokenLines, {
      resolver: {
        resolve: async () => {
          throw new Error("resolver down");
        },
      },
      registered,
    });
    const peers = [{ rank: 1, address: "10.0.0.2", dnsName: "i1.s.spawn.local" }];

    // When each looks the peer up twice
    for (const names of [empty, broken]) {
      expect(await names.self()).toBe("i0.s.spawn.local");
      expect(await names.addresses(peers)).toEqual(peers);
      expect(await names.addresses(peers)).toEqual(peers);
    }

    // Then each said why, once
    expect(emptyLines.map((l) => JSON.parse(l).reason)).toEqual([
      "i1.s.spawn.local (rank 1) resolves to no address",
    ]);
    expect(brokenLines.map((l) => JSON.parse(l).reason)).toEqual([
      "i1.s.spawn.local (rank 1) did not resolve: resolver down",
    ]);
  });

  it("does not wait more than 3 s for a resolver that never answers", async () => {
    const lines: string[] = [];
    const names = recordingNames(lines, {
      resolver: { resolve: () => new Promise<never>(() => {}) },
      registered: Promise.resolve("i0.s.spawn.local"),
    });
    const started = Date.now();

    const peers = await names.addresses([{ rank: 1, address: "10.0.0.2", dnsName: "i1.s.spawn.local" }]);

    expect(peers[0]!.address).toBe("10.0.0.2");
    expect(Date.now() - started).toBeLessThan(DNS_TIMEOUT_MS + 1000);
    expect(lines.map((l) => JSON.parse(l).reason)).toEqual([
      "i1.s.spawn.local (rank 1) did not resolve: no answer from the resolver within 3 s",
    ]);
  });
});
