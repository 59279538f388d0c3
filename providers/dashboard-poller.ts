/**
 * One poller per watched sweep, shared by every dashboard client (SSE streams, REST reads and
 * /metrics of `spawn dashboard`; `/poll` of the AWS `dashboard-api` Lambda): it keeps each task's
 * state in memory and turns store reads into deltas. The local server ticks it on a timer
 * ({@link PollerRegistry}); a Lambda container, frozen between invocations, ticks it when a
 * request arrives ({@link OnDemandPollers}).
 *
 * Reading all 10,000 tasks of a sweep takes most of a second on dynalite, so a tick reads only
 * what can have changed (docs/dashboard.md has the reasoning):
 * - the sweep item (GetItem) and its instances (one Query);
 * - every shard's running tasks (the sparse `running` index: at most one item per busy slot);
 * - the head of every shard's `pending` index (the first 32 by `readyKey`). Agents claim a
 *   shard's ready tasks from the front of that order, so a task we still think pending that is
 *   missing from the head has left pending; together with running tasks that left the running
 *   index, these are read back with consistent GetItems.
 * A full read (`listTasks`) happens on the first tick, when the sweep's status changes (cancel,
 * retry), while a cancelled sweep drains, when more tasks changed than is worth reading one by
 * one, and every 30 s as a safety net against index lag.
 */

import {
  countStates,
  type DeltaEvent,
  type SnapshotEvent,
  type StageSummary,
  type SweepDetail,
  type SweepSummary,
  TASK_STATE_CODE,
  type TaskStateCode,
} from "#core/api.js";
import { mapLimit } from "#core/concurrency.js";
import { NotFoundError } from "#core/errors.js";
import { costSoFarUsd, type SweepObservation } from "#core/metrics.js";
import {
  type InstanceRecord,
  type SweepRecord,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
} from "#core/model.js";
import type { Clock, StateStore } from "#core/ports.js";
import { requireSweep } from "#core/sweeps.js";
import { detailOf, stageSummaries, summaryOf } from "#providers/dashboard-routes.js";
import type { Logger } from "#providers/log.js";

export interface PollerOptions {
  /** Between ticks while the sweep runs. @default 500 ms */
  tickMs?: number;
  /** Between ticks once the sweep has ended (only the sweep item is read, to notice a retry). @default 2 s */
  idleTickMs?: number;
  /** A full read at least this often while the sweep runs. @default 30 s */
  fullReadMs?: number;
  /** More changed tasks than this in one tick are read with one full read instead of GetItems. @default 64 */
  maxSingleReads?: number;
  /**
   * Pending tasks read from the head of each shard's index per tick. Agents claim from pages of
   * ready tasks (8 or 2 × slots each), so claims land anywhere in the first few pages; a window
   * wider than that sees a task claimed and finished between two ticks at once. @default 32
   */
  pendingWindow?: number;
  /**
   * No timer: the poller ticks only when {@link SweepPoller.refresh} is called (a Lambda
   * container is frozen between invocations, so a timer would fire at random later). @default false
   */
  onDemand?: boolean;
}

/** Observations kept for the summaries in /metrics (the most recent ones). */
const MAX_LATENCIES = 10_000;

const push = (list: number[], value: number) => {
  list.push(value);
  if (list.length > MAX_LATENCIES) list.splice(0, list.length - MAX_LATENCIES);
};

const orderedBefore = (a: { readyAt: number; index: number }, b: { readyAt: number; index: number }) =>
  a.readyAt < b.readyAt || (a.readyAt === b.readyAt && a.index < b.index);

export class SweepPoller {
  private sweep!: SweepRecord;
  private instances: InstanceRecord[] = [];
  /** A pipeline's stages, read on every tick while it runs: they are its progress. */
  private stages: StageSummary[] | undefined;
  private states: TaskStateCode[] = [];
  /** The last record read of each task: results are served from here, consistent with the grid. */
  private records: (TaskRecord | undefined)[] = [];
  private readyAt: number[] = [];
  private attempts: number[] = [];
  /** The attempt whose claim latency was recorded last, per task. */
  private claimSeen: number[] = [];
  private readonly launching = new Set<string>();
  private readonly launchSeen = new Set<string>();
  private readonly claimLatencies: number[] = [];
  private readonly launchLatencies: number[] = [];
  private seq = 0;
  private lastFullRead = 0;
  /** How long the last full read took. */
  private fullReadMs = 0;
  private timer: NodeJS.Timeout | undefined;
  /** The on-demand tick in flight, shared by concurrent refresh() calls. */
  private refreshing: Promise<void> | undefined;
  private stopped = false;
  private readonly listeners = new Set<(event: DeltaEvent) => void>();
  private readonly firstRead: Promise<void>;
  private detailKey = "";
  /** How long the last tick's reads took (exported in /metrics: it bounds update latency). */
  lastPollMs = 0;
  /** True once the first full read has finished. */
  loaded = false;
  /** Last time anyone used this poller (a REST read, a scrape, an open stream). */
  lastUsed: number;

  constructor(
    readonly sweepId: string,
    private readonly deps: { store: StateStore; clock: Clock; log?: Logger },
    private readonly options: PollerOptions = {},
  ) {
    this.lastUsed = deps.clock.now();
    this.firstRead = this.fullRead().then(() => {
      this.detailKey = JSON.stringify(this.detail());
      this.loaded = true;
      this.schedule();
    });
    // Callers await ready(); an unobserved rejection here would crash the process.
    this.firstRead.catch(() => undefined);
  }

  /** Resolves after the first full read; rejects with NotFoundError for an unknown sweep. */
  ready(): Promise<void> {
    this.lastUsed = this.deps.clock.now();
    return this.firstRead;
  }

  /**
   * One tick now, after the first read, for a poller without a timer (`onDemand`); concurrent
   * calls share the tick in flight. Rejects with what the reads threw (NotFoundError once the
   * sweep is gone), where a timer's tick would log and retry.
   */
  refresh(): Promise<void> {
    this.lastUsed = this.deps.clock.now();
    this.refreshing ??= this.firstRead
      .then(async () => {
        const started = performance.now();
        await this.poll();
        this.lastPollMs = performance.now() - started;
      })
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Tasks whose state and last record this poller keeps (0 before the first read). */
  get taskCount(): number {
    return this.states.length;
  }

  /** The current state of every task, with the sequence number it reflects. */
  snapshot(): SnapshotEvent {
    return { seq: this.seq, sweep: this.detail(), states: this.states.join("") };
  }

  /** Deltas after the current snapshot; returns the unsubscribe function. */
  subscribe(listener: (event: DeltaEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
      this.lastUsed = this.deps.clock.now();
    };
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  summary(): SweepSummary {
    const counts = countStates(this.states.join(""));
    return summaryOf(
      this.sweep,
      counts.pending + counts.running,
      this.instances,
      this.deps.clock.now(),
      this.stages,
    );
  }

  detail(): SweepDetail {
    return detailOf(this.sweep, this.states.join(""), this.instances, this.deps.clock.now(), this.stages);
  }

  /** Every task's last record read, by index (results without another read of the store). */
  tasks(): TaskRecord[] {
    return this.records.filter((t): t is TaskRecord => t !== undefined);
  }

  /** What /metrics reports for this sweep. */
  observation(): SweepObservation {
    const instancesByStatus: Record<string, number> = {};
    for (const i of this.instances) instancesByStatus[i.status] = (instancesByStatus[i.status] ?? 0) + 1;
    return {
      sweepId: this.sweepId,
      counts: countStates(this.states.join("")),
      claimLatenciesMs: this.claimLatencies,
      launchLatenciesMs: this.launchLatencies,
      retries: this.attempts.reduce((sum, a) => sum + Math.max(0, a - 1), 0),
      preemptions: this.sweep.preemptions ?? 0,
      instancesByStatus,
      costUsd: costSoFarUsd(this.instances, this.deps.clock.now()),
    };
  }

  private get ended(): boolean {
    return TERMINAL_SWEEP_STATUSES.includes(this.sweep.status);
  }

  private schedule(): void {
    if (this.stopped || this.options.onDemand) return;
    const every =
      this.ended && !this.sweep.active ? (this.options.idleTickMs ?? 2000) : (this.options.tickMs ?? 500);
    // Ticks start every `every` ms (a slow tick is followed at once, after a breath), so a change
    // waits for half a period on average, not half a period plus the tick's own time.
    this.timer = setTimeout(() => void this.tick(), Math.max(50, every - this.lastPollMs));
  }

  private async tick(): Promise<void> {
    const started = performance.now();
    try {
      await this.poll();
      this.lastPollMs = performance.now() - started;
    } catch (error) {
      if (error instanceof NotFoundError) return this.stop();
      this.deps.log?.warn("dashboard poll failed", { sweepId: this.sweepId, error });
    }
    this.schedule();
  }

  private async poll(): Promise<void> {
    const { store, clock } = this.deps;
    const before = this.sweep;
    const sweep = await requireSweep(store, this.sweepId);
    this.sweep = sweep;
    const changes: [number, TaskStateCode][] = [];
    const statusChanged = before.status !== sweep.status || before.active !== sweep.active;
    const open = !this.ended || sweep.active;
    const now = clock.now();
    if (open || statusChanged) {
      this.instances = await store.listInstances(this.sweepId);
      this.observeInstances();
      if (sweep.pipeline) this.stages = await stageSummaries(store, sweep);
      // While a cancelled sweep drains, its pending tasks turn cancelled in no index we can
      // follow: read them all, as often as a full read's own cost allows.
      const draining = this.ended && sweep.active;
      const every = draining ? Math.max(1000, 5 * this.fullReadMs) : (this.options.fullReadMs ?? 30_000);
      if (statusChanged || now - this.lastFullRead >= every) {
        changes.push(...(await this.fullRead()));
      } else if (!this.ended) {
        changes.push(...(await this.incrementalRead()));
      }
    }
    const key = JSON.stringify(this.detail());
    const sweepChanged = key !== this.detailKey;
    this.detailKey = key;
    if (changes.length === 0 && !sweepChanged) return;
    this.seq++;
    const event: DeltaEvent = { seq: this.seq, changes, ...(sweepChanged ? { sweep: this.detail() } : {}) };
    for (const listener of this.listeners) listener(event);
  }

  /** Applies one task record; returns its new state when it changed. */
  private apply(t: TaskRecord): TaskStateCode | undefined {
    const code = TASK_STATE_CODE[t.status];
    this.records[t.index] = t;
    this.readyAt[t.index] = t.readyAt;
    this.attempts[t.index] = t.attempt;
    if (t.startedAt !== undefined && t.attempt > (this.claimSeen[t.index] ?? 0) && t.startedAt >= t.readyAt) {
      this.claimSeen[t.index] = t.attempt;
      push(this.claimLatencies, t.startedAt - t.readyAt);
    }
    if (this.states[t.index] === code) return undefined;
    this.states[t.index] = code;
    return code;
  }

  private async fullRead(): Promise<[number, TaskStateCode][]> {
    const { store, clock } = this.deps;
    const first = this.states.length === 0;
    if (first) {
      this.sweep = await requireSweep(store, this.sweepId);
      this.instances = await store.listInstances(this.sweepId);
      this.observeInstances();
      if (this.sweep.pipeline) this.stages = await stageSummaries(store, this.sweep);
      const n = this.sweep.taskCount;
      this.states = new Array<TaskStateCode>(n).fill(TASK_STATE_CODE.pending);
      this.records = new Array<TaskRecord | undefined>(n);
      this.readyAt = new Array<number>(n).fill(0);
      this.attempts = new Array<number>(n).fill(0);
      this.claimSeen = new Array<number>(n).fill(0);
    }
    this.lastFullRead = clock.now();
    const started = performance.now();
    const tasks = await store.listTasks(this.sweepId, this.sweep.shardCount);
    this.fullReadMs = performance.now() - started;
    const changes: [number, TaskStateCode][] = [];
    for (const t of tasks) {
      const code = this.apply(t);
      if (code) changes.push([t.index, code]);
    }
    return first ? [] : changes;
  }

  private async incrementalRead(): Promise<[number, TaskStateCode][]> {
    const { store } = this.deps;
    const { shardCount } = this.sweep;
    const shards = Array.from({ length: shardCount }, (_, s) => s);
    const window = this.options.pendingWindow ?? 32;
    const [running, pending] = await Promise.all([
      mapLimit(shards, 16, (s) => store.listRunningTasks(this.sweepId, s)),
      mapLimit(shards, 16, (s) => store.listPendingTasks(this.sweepId, s, { limit: window })),
    ]);
    // Per shard: the pending tasks at the head of the index, and the key up to which that list is
    // complete (all of them when the shard has fewer than `window` left).
    const heads = pending.map((page) => ({
      indexes: new Set(page.map((t) => t.index)),
      end: page.length === window ? page.at(-1) : undefined,
    }));
    const changes: [number, TaskStateCode][] = [];
    const nowRunning = new Set<number>();
    for (const t of running.flat()) {
      nowRunning.add(t.index);
      const code = this.apply(t);
      if (code) changes.push([t.index, code]);
    }
    // Tasks that left the running index, and ones we think pending that are missing from the
    // complete part of their shard's pending head.
    const suspects: number[] = [];
    for (let i = 0; i < this.states.length; i++) {
      const state = this.states[i];
      if (nowRunning.has(i)) continue;
      if (state === TASK_STATE_CODE.running) suspects.push(i);
      else if (state === TASK_STATE_CODE.pending) {
        const head = heads[i % shardCount];
        if (
          head &&
          !head.indexes.has(i) &&
          (!head.end || orderedBefore({ readyAt: this.readyAt[i] ?? 0, index: i }, head.end))
        )
          suspects.push(i);
      }
    }
    if (suspects.length > (this.options.maxSingleReads ?? 64))
      return [...changes, ...(await this.fullRead())];
    const read = await mapLimit(suspects, 16, (i) => store.getTask(this.sweepId, i, shardCount));
    for (const t of read) {
      if (!t) continue;
      const code = this.apply(t);
      if (code) changes.push([t.index, code]);
    }
    return changes;
  }

  /**
   * Launch latency: launched → the agent's first heartbeat, for instances this poller saw in
   * `launching` before it saw them `running` (the first heartbeat is what marks them running;
   * later heartbeats come at most every lease/3, far slower than a tick).
   */
  private observeInstances(): void {
    for (const i of this.instances) {
      if (i.status === "launching") this.launching.add(i.instanceId);
      else if (
        i.status === "running" &&
        this.launching.has(i.instanceId) &&
        !this.launchSeen.has(i.instanceId) &&
        i.heartbeatAt !== undefined
      ) {
        this.launchSeen.add(i.instanceId);
        push(this.launchLatencies, Math.max(0, i.heartbeatAt - i.launchedAt));
      }
    }
  }
}

/** Pollers by sweep id: created on first use, stopped once nobody has used them for `idleMs`. */
export class PollerRegistry {
  private readonly pollers = new Map<string, SweepPoller>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly deps: { store: StateStore; clock: Clock; log?: Logger },
    private readonly options: PollerOptions & { idleMs?: number } = {},
  ) {
    this.sweeper = setInterval(() => this.collect(), 5000);
    this.sweeper.unref();
  }

  /** The sweep's poller after its first full read; throws NotFoundError for an unknown sweep. */
  async get(sweepId: string): Promise<SweepPoller> {
    let poller = this.pollers.get(sweepId);
    if (!poller) {
      poller = new SweepPoller(sweepId, this.deps, this.options);
      this.pollers.set(sweepId, poller);
    }
    try {
      await poller.ready();
    } catch (error) {
      poller.stop();
      if (this.pollers.get(sweepId) === poller) this.pollers.delete(sweepId);
      throw error;
    }
    return poller;
  }

  /** Starts (or keeps using) a sweep's poller without waiting for it; errors are dropped. */
  warm(sweepId: string): void {
    this.get(sweepId).then(
      (p) => {
        p.lastUsed = this.deps.clock.now();
      },
      () => undefined,
    );
  }

  /** Every poller, loaded or not (check `loaded`), for /metrics and the sweeps list. */
  all(): SweepPoller[] {
    return [...this.pollers.values()];
  }

  private collect(): void {
    const idleMs = this.options.idleMs ?? 60_000;
    const now = this.deps.clock.now();
    for (const [id, p] of this.pollers) {
      if (p.listenerCount === 0 && now - p.lastUsed > idleMs) {
        p.stop();
        this.pollers.delete(id);
      }
    }
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const p of this.pollers.values()) p.stop();
    this.pollers.clear();
  }
}

/** Bounds and tuning of {@link OnDemandPollers}. */
export interface OnDemandPollerOptions extends Omit<PollerOptions, "onDemand" | "tickMs" | "idleTickMs"> {
  /** Pollers kept; the least recently used is dropped first. @default 32 */
  maxSweeps?: number;
  /**
   * Tasks kept over all pollers (each keeps every task's last record: about 330 bytes measured
   * for a task with two params and no metrics, more with metrics). The poller just used is kept
   * whatever its size. @default 100,000
   */
  maxTasks?: number;
}

/**
 * Pollers for a process that cannot tick between requests (a Lambda container is frozen between
 * invocations): each request for a sweep ticks its poller once, so a poll costs the tick's small
 * queries (about `2 × shards + 2`) instead of a read of every task. The first request for a sweep
 * in a container is a full read, as a poller's first tick is, and the poller's own rules add
 * full reads (status change, many changes, draining, 30 s since the last one). Bounded, least
 * recently used first: at most `maxSweeps` pollers and `maxTasks` tasks.
 */
export class OnDemandPollers {
  /** By sweep id, least recently used first (a Map keeps insertion order). */
  private readonly pollers = new Map<string, SweepPoller>();

  constructor(
    private readonly deps: { store: StateStore; clock: Clock; log?: Logger },
    private readonly options: OnDemandPollerOptions = {},
  ) {}

  /**
   * The sweep's poller, brought up to date by one tick (a full read when it is new here);
   * throws what the reads threw, NotFoundError for an unknown sweep, and forgets the poller then.
   */
  async current(sweepId: string): Promise<SweepPoller> {
    const cached = this.pollers.get(sweepId);
    const poller = cached ?? new SweepPoller(sweepId, this.deps, { ...this.options, onDemand: true });
    this.pollers.delete(sweepId);
    this.pollers.set(sweepId, poller);
    try {
      await (cached ? poller.refresh() : poller.ready());
    } catch (error) {
      // Its state may be half-updated or its sweep gone: the next request starts afresh.
      if (this.pollers.get(sweepId) === poller) this.pollers.delete(sweepId);
      throw error;
    }
    this.evict();
    return poller;
  }

  /** The sweeps whose pollers are kept, least recently used first. */
  sweepIds(): string[] {
    return [...this.pollers.keys()];
  }

  private evict(): void {
    const maxSweeps = this.options.maxSweeps ?? 32;
    const maxTasks = this.options.maxTasks ?? 100_000;
    let tasks = 0;
    for (const p of this.pollers.values()) tasks += p.taskCount;
    for (const [id, p] of this.pollers) {
      if (this.pollers.size <= 1 || (this.pollers.size <= maxSweeps && tasks <= maxTasks)) return;
      this.pollers.delete(id);
      tasks -= p.taskCount;
    }
  }
}
