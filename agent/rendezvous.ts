/**
 * A gang member's rendezvous, through the state store (never EC2 tags, which cap at 256
 * characters): the member publishes where it can be reached on its own row (a conditional write
 * under its lease): its hostname and its address. Then it reads its siblings' rows until every
 * member of its epoch has done the same, or until `rendezvous_timeout` passes, finds each sibling
 * by its name ({@link PeerNames}: Route 53 on AWS, `$SPAWN_HOME/hosts` locally; by address where
 * a member has no name) and writes the peers file and the MPI hostfile its command is given.
 * See docs/gangs.md and ADR 0041.
 *
 * While the command runs, {@link watchMembership} re-reads the member's own row: a restart of the
 * gang (core/gang.ts) moves the row away from this attempt, and the member must stop.
 */
import { appendFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import type { GangContract } from "#core/contract.js";
import { formatDuration } from "#core/duration.js";
import { ConditionFailedError } from "#core/errors.js";
import { memberIndex, restartGang } from "#core/gang.js";
import type { GangMember, GangPeer, SweepRecord, TaskRecord } from "#core/model.js";
import type { Clock, StateStore } from "#core/ports.js";
import type { Logger } from "#providers/log.js";
import { bounded, DNS_TIMEOUT_MS } from "./dns.js";
import type { ImdsClient } from "./imds.js";
import type { HostResolver } from "./resolve.js";

/** A member row as its agent claimed it. */
export type MemberTask = TaskRecord & { gang: GangMember };

/** One line of the peers file. Every key is always there (null when unknown), in this order. */
export interface PeerEntry {
  rank: number;
  instanceId: string;
  address: string;
  dnsName: string | null;
  port: number | null;
}

/** This instance's address for its gang: 127.0.0.1 locally (a gang shares one machine), IMDS's local-ipv4 on EC2. */
export async function peerAddress(provider: string, imds?: ImdsClient): Promise<string> {
  if (provider !== "aws" || !imds) return "127.0.0.1";
  const address = await imds.get("/latest/meta-data/local-ipv4");
  if (!address) throw new Error("IMDS has no local-ipv4 for this instance: its gang cannot reach it");
  return address.trim();
}

export interface PeerNamesOptions {
  /** How hostnames resolve here (the HostnameRegistrar's resolver); absent: no hostnames here. */
  resolver?: HostResolver;
  /** This instance's hostname once its registration has ended (agent/dns.ts registerHostname). */
  registered?: Promise<string | undefined>;
  log: Logger;
}

/**
 * Peer discovery by name, the same on both providers (ADR 0041): a member publishes its
 * hostname, and its siblings turn that name into the address they hand to the command. A member
 * without a name (DNS registration failed, or this deployment has none) or whose name resolves to
 * nothing is found by the address on its row instead; the agent says so once in its log, not on
 * every gang it joins. One per agent.
 */
export class PeerNames {
  private saidFallback = false;

  constructor(private readonly o: PeerNamesOptions) {}

  /** The name this instance gives its gang; undefined when it has none (it is reached by address). */
  async self(): Promise<string | undefined> {
    const host = this.o.resolver ? await this.o.registered : undefined;
    if (!host)
      this.fallBack(this.o.resolver ? "this instance's hostname is not registered" : "no hostnames here");
    return host;
  }

  /**
   * `peers`, each at the address its hostname resolves to: the address on its row when that is
   * one of them (so members that resolve alike write the same bytes), else the first. A peer
   * without a name, or whose name does not resolve within DNS_TIMEOUT_MS, keeps its row's address.
   */
  async addresses<P extends { rank: number; address: string; dnsName: string | null }>(
    peers: readonly P[],
  ): Promise<P[]> {
    const resolver = this.o.resolver;
    return Promise.all(
      peers.map(async (peer) => {
        if (!resolver || !peer.dnsName) {
          this.fallBack(`rank ${peer.rank} has no hostname`);
          return peer;
        }
        const signal = AbortSignal.timeout(DNS_TIMEOUT_MS);
        const found = await bounded(resolver.resolve(peer.dnsName), signal, "the resolver").catch(
          (error: Error) => error,
        );
        if (found instanceof Error || found.length === 0) {
          const why = found instanceof Error ? `did not resolve: ${found.message}` : "resolves to no address";
          this.fallBack(`${peer.dnsName} (rank ${peer.rank}) ${why}`);
          return peer;
        }
        return found.includes(peer.address) ? peer : { ...peer, address: found[0]! };
      }),
    );
  }

  private fallBack(reason: string): void {
    if (this.saidFallback) return;
    this.saidFallback = true;
    this.o.log.warn("gang peers are found by address, not by hostname", { reason });
  }
}

/**
 * A port free on `host` now, chosen by the OS. Members of local gangs share one machine, so each
 * asks the OS rather than using a fixed port; the task binds it soon after.
 */
export function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

/** True when `row` is still the attempt `task` started: running, leased to `instanceId`, same epoch. */
export function holdsRow(row: TaskRecord | undefined, task: MemberTask, instanceId: string): boolean {
  return (
    row?.status === "running" &&
    row.leaseOwner === instanceId &&
    row.attempt === task.attempt &&
    row.gang?.epoch === task.gang.epoch
  );
}

/**
 * A sibling has arrived at `epoch` when its row is at that epoch with a peer its current holder
 * wrote (running: the peer's instance holds the lease), or it already finished successfully.
 */
export function arrived(row: TaskRecord | undefined, epoch: number): boolean {
  if (!row?.peer || row.gang?.epoch !== epoch) return false;
  if (row.status === "succeeded") return true;
  return row.status === "running" && row.peer.instanceId === row.leaseOwner;
}

/** The peers file's entries, by rank, from rows that have all arrived. */
export function peerEntries(rows: readonly TaskRecord[]): PeerEntry[] {
  return rows
    .filter((r): r is TaskRecord & { gang: GangMember; peer: GangPeer } => !!r.gang && !!r.peer)
    .sort((a, b) => a.gang.rank - b.gang.rank)
    .map((r) => ({
      rank: r.gang.rank,
      instanceId: r.peer.instanceId,
      address: r.peer.address,
      dnsName: r.peer.dnsName ?? null,
      port: r.peer.port ?? null,
    }));
}

/** The MPI hostfile: one `<address> slots=<n>` line per rank, in rank order. */
export function hostfile(peers: readonly PeerEntry[], slots: number): string {
  return peers.map((p) => `${p.address} slots=${slots}\n`).join("");
}

/** `rank 3 never arrived` / `ranks 2, 3 never arrived`. */
export function missingRanks(ranks: readonly number[]): string {
  return `${ranks.length === 1 ? "rank" : "ranks"} ${ranks.join(", ")} never arrived`;
}

export interface JoinGangOptions {
  store: StateStore;
  clock: Clock;
  sweep: Pick<SweepRecord, "sweepId" | "shardCount" | "spec">;
  task: MemberTask;
  instanceId: string;
  /** This member's address ({@link peerAddress}). */
  address: string;
  /** This agent's peer discovery: the name it publishes, and how it finds its siblings. */
  names: PeerNames;
  /** The attempt's directory: `peers.json` and `hostfile` are written here. */
  dir: string;
  /** Aborts the wait (the agent stops). */
  signal: AbortSignal;
  /** First delay between reads of the siblings; it grows to 1 s. @default 100 */
  pollMs?: number;
}

/** How a rendezvous ended. */
export type JoinResult =
  | { kind: "ready"; gang: GangContract; peers: PeerEntry[] }
  /** Not every member arrived in time: the attempt fails with `reason`. */
  | { kind: "timeout"; reason: string; missing: number[] }
  /** This attempt's row was moved (the gang restarted, the sweep ended) or the agent stopped: nothing to write. */
  | { kind: "left"; reason: string };

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

/**
 * Publishes this member's peer on its row, then waits for every member of its epoch. Reads only
 * the rows not yet seen arrived (and its own, to notice a restart), so a gang of N costs about N
 * reads per member, not N per poll.
 */
export async function joinGang(o: JoinGangOptions): Promise<JoinResult> {
  const { store, clock, sweep, task, instanceId } = o;
  const { epoch, size, rank } = task.gang;
  const timeout = sweep.spec.rendezvous_timeout;
  const deadline = clock.now() + timeout;
  const port = await freePort(o.address === "127.0.0.1" ? "127.0.0.1" : "0.0.0.0");
  const dnsName = await o.names.self();
  const peer: GangPeer = { instanceId, address: o.address, ...(dnsName ? { dnsName } : {}), port };
  let own: TaskRecord;
  try {
    own = await store.updateTask(
      sweep.sweepId,
      task.index,
      sweep.shardCount,
      { status: "running", attempt: task.attempt, leaseOwner: instanceId, gangEpoch: epoch },
      { peer, updatedAt: clock.now() },
    );
  } catch (error) {
    if (error instanceof ConditionFailedError) return { kind: "left", reason: "the gang restarted" };
    throw error;
  }
  const rows = new Map<number, TaskRecord>([[rank, own]]);
  let delay = o.pollMs ?? 100;
  for (;;) {
    if (o.signal.aborted) return { kind: "left", reason: "the agent is stopping" };
    const waiting = Array.from({ length: size }, (_, r) => r).filter((r) => !arrived(rows.get(r), epoch));
    if (waiting.length === 0) break;
    if (clock.now() >= deadline) {
      return {
        kind: "timeout",
        reason: `rendezvous timeout after ${formatDuration(timeout)}: ${missingRanks(waiting)}`,
        missing: waiting,
      };
    }
    await sleep(delay, o.signal);
    delay = Math.min(1000, Math.ceil(delay * 1.5));
    const read = await Promise.all(
      [rank, ...waiting.filter((r) => r !== rank)].map(async (r) => {
        const row = await store.getTask(
          sweep.sweepId,
          memberIndex(task.gang.task, r, size),
          sweep.shardCount,
        );
        return [r, row] as const;
      }),
    );
    for (const [r, row] of read) if (row) rows.set(r, row);
    if (!holdsRow(rows.get(rank), task, instanceId)) return { kind: "left", reason: "the gang restarted" };
    // A sibling already at a later epoch: this one was restarted and our row follows shortly.
    if (read.some(([, row]) => (row?.gang?.epoch ?? epoch) > epoch))
      return { kind: "left", reason: "the gang restarted" };
  }
  const peers = await o.names.addresses(peerEntries([...rows.values()]));
  const peersFile = join(o.dir, "peers.json");
  const hostFile = join(o.dir, "hostfile");
  await writeFile(peersFile, `${JSON.stringify(peers, null, 2)}\n`);
  await writeFile(hostFile, hostfile(peers, Math.max(1, Math.floor(sweep.spec.resources.gpus))));
  const master = peers[0]!;
  return {
    kind: "ready",
    peers,
    gang: {
      rank,
      worldSize: size,
      peersFile,
      hostfile: hostFile,
      masterAddr: master.address,
      masterPort: master.port ?? port,
    },
  };
}

/** A gang whose members have met: what the command is told, and the watch on this member's row. */
export interface MetGang {
  contract: GangContract;
  /** Stops {@link watchMembership}; call once the command has exited. */
  stop(): void;
}

/**
 * The agent's side of a gang attempt, before its command starts: finds this instance's address,
 * joins the gang ({@link joinGang}) and, once every member is there, watches this member's row
 * (`onLeft`: the gang restarted, stop the command). Undefined when the attempt must not run:
 * the rendezvous timed out (the reason goes to the attempt's log and the gang is restarted,
 * counted as a failed attempt) or this member's row moved meanwhile (nothing to write).
 */
export async function meetGang(
  o: Omit<JoinGangOptions, "address"> & {
    provider: string;
    imds?: ImdsClient;
    logFile: string;
    log: Logger;
    onLeft: () => void;
  },
): Promise<MetGang | undefined> {
  const startedAt = o.clock.now();
  const address = await peerAddress(o.provider, o.imds);
  const joined = await joinGang({ ...o, address });
  if (joined.kind === "ready") {
    const { rank, worldSize, masterAddr, masterPort } = joined.gang;
    const masterName = joined.peers[0]?.dnsName;
    await appendFile(
      o.logFile,
      `[spawn] gang met: rank ${rank} of ${worldSize}, master ${masterAddr}:${masterPort}${masterName ? ` (${masterName})` : ""}\n`,
    );
    const watch = watchMembership({ ...o, onLeft: o.onLeft });
    return { contract: joined.gang, stop: () => watch.stop() };
  }
  await appendFile(o.logFile, `[spawn] ${joined.reason}\n`);
  if (joined.kind === "timeout") {
    o.log.warn("gang rendezvous timed out", { missing: joined.missing });
    await restartGang(o, o.sweep, o.task, {
      kind: "exit",
      exitCode: null,
      signal: null,
      timedOut: false,
      durationMs: o.clock.now() - startedAt,
      error: joined.reason,
    });
  } else if (o.signal.aborted) {
    // The agent is stopping: hand the gang back now rather than when the lease expires.
    await restartGang(o, o.sweep, o.task, { kind: "lost", reason: "agent stopped before its gang met" });
  } else o.log.info("left the gang before it met", { reason: joined.reason });
  return undefined;
}

/**
 * Re-reads a running member's own row every `intervalMs` (default 1 s) and calls `onLeft` once
 * when the row is no longer this attempt's (a sibling failed and the gang restarted, or it was
 * reaped): the member must then stop its command. Read errors are retried on the next tick.
 */
export function watchMembership(o: {
  store: StateStore;
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">;
  task: MemberTask;
  instanceId: string;
  intervalMs?: number;
  onLeft: (row: TaskRecord | undefined) => void;
}): { stop(): void } {
  let stopped = false;
  const timer = setInterval(async () => {
    const row = await o.store.getTask(o.sweep.sweepId, o.task.index, o.sweep.shardCount).catch(() => null);
    if (stopped || row === null || holdsRow(row, o.task, o.instanceId)) return;
    stopped = true;
    clearInterval(timer);
    o.onLeft(row);
  }, o.intervalMs ?? 1000);
  return {
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
