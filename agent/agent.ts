/**
 * The agent: one per instance. It registers, fetches and caches the workdir bundle,
 * runs the setup phase once, then claims tasks (pull model, leased, sharded) and runs
 * up to `slots` at once, heartbeating its instance and its leases. It exits when the
 * sweep has no work left, when idle too long, or when told to stop.
 */
import { createHash, randomInt } from "node:crypto";
import { cp, link, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, relative, sep } from "node:path";
import { renderCommand, shellQuote, taskEnvironment } from "#core/contract.js";
import { ConditionFailedError, LeaseLostError } from "#core/errors.js";
import { type SweepRecord, type TaskRecord, TERMINAL_SWEEP_STATUSES } from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import { slotsPerInstance } from "#core/reconcile.js";
import { type AttemptEnd, afterAttempt } from "#core/retry.js";
import { extractBundle } from "#providers/bundle.js";
import type { Logger } from "#providers/log.js";
import { readFinalMetrics } from "./metrics.js";
import { collectOutputs } from "./outputs.js";
import { runTask } from "./task-runner.js";

export interface AgentOptions {
  store: StateStore;
  objects: ObjectStore;
  clock: Clock;
  log: Logger;
  sweepId: string;
  instanceId: string;
  /** This instance's private directory (task dirs, downloads). */
  workDir: string;
  /** Where unpacked bundles are cached (may be shared between local agents). */
  bundleCache: string;
  /** GPUs on this instance; decides the default number of slots. */
  gpuCount?: number;
  /** How often the running log is uploaded for `logs --follow`. @default 2 s */
  logUploadMs?: number;
}

/** Object-store key of one attempt's combined stdout/stderr. */
export function logKey(sweepId: string, index: number, attempt: number): string {
  return `logs/${sweepId}/${index}/${attempt}.log`;
}

/** Object-store key of the setup phase's log on one instance. */
export function setupLogKey(sweepId: string, instanceId: string): string {
  return `logs/${sweepId}/setup/${instanceId}.log`;
}

/** Object-store prefix of a task's kept files. */
export function outputsPrefix(sweepId: string, index: number): string {
  return `outputs/${sweepId}/${index}/`;
}

interface Running {
  task: TaskRecord;
  abort: AbortController;
  /** Why it was aborted: decides what (if anything) is written back. */
  abortReason?: "cancelled" | "lease-lost" | "shutdown";
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

export class Agent {
  private sweep!: SweepRecord;
  private readonly running = new Map<number, Running>();
  private stopping = false;
  private stopReason = "no work left";
  private readonly wake = new AbortController();
  private lastWork: number;
  private lastContact: number;
  private claimLock: Promise<unknown> = Promise.resolve();
  /** Ready tasks from the last page read, not yet tried. */
  private candidates: TaskRecord[] = [];
  private cwd = "";
  /** The unpacked workdir's tree, recreated (hard links) in every task's private directory. */
  private tree: WorkdirTree = { dirs: [], files: [] };

  constructor(private readonly o: AgentOptions) {
    this.lastWork = o.clock.now();
    this.lastContact = this.lastWork;
  }

  /** Asks the agent to stop: running tasks get SIGTERM, the grace period, then SIGKILL; they are released, not failed. */
  stop(reason: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.stopReason = reason;
    for (const r of this.running.values()) {
      r.abortReason ??= "shutdown";
      r.abort.abort();
    }
    this.wake.abort();
  }

  /** Runs until there is no work left; resolves with the reason the agent stopped. */
  async run(): Promise<string> {
    const { store, sweepId, instanceId, log, clock } = this.o;
    const sweep = await store.getSweep(sweepId);
    if (!sweep) throw new Error(`sweep ${sweepId} not found`);
    this.sweep = sweep;
    try {
      await store.updateInstance(
        sweepId,
        instanceId,
        { status: ["launching", "running"] },
        { status: "running", heartbeatAt: clock.now(), host: hostname() },
      );
    } catch (error) {
      if (error instanceof ConditionFailedError) return "instance was terminated before it started";
      throw error;
    }
    const heartbeat = setInterval(
      () => void this.heartbeat(),
      Math.max(250, Math.min(10_000, sweep.spec.lease / 3)),
    );
    // A cancel must stop claims and tasks within seconds, whatever the lease length.
    const watch = setInterval(
      () => void this.watchSweep(),
      Math.min(2000, Math.max(250, sweep.spec.lease / 3)),
    );
    try {
      this.cwd = await this.prepareWorkdir();
      if (!this.stopping && (await this.runSetup())) {
        // After setup, so what setup created is in every task's working directory too.
        this.tree = await readTree(this.cwd);
        const slots = slotsPerInstance(sweep.spec, this.o.gpuCount ?? 0);
        log.info("agent ready", { slots });
        await Promise.all(Array.from({ length: slots }, (_, slot) => this.slotLoop(slot)));
      }
    } catch (error) {
      log.error("agent failed", { error: error instanceof Error ? error.stack : String(error) });
      this.stopReason = `agent error: ${(error as Error).message}`;
      this.stop(this.stopReason);
    } finally {
      clearInterval(heartbeat);
      clearInterval(watch);
      await store
        .updateInstance(
          sweepId,
          instanceId,
          { status: ["launching", "running"] },
          { status: "terminated", terminatedAt: clock.now(), reason: this.stopReason },
        )
        .catch(() => undefined);
    }
    return this.stopReason;
  }

  /** Downloads (once) and unpacks (once per machine) the workdir bundle; without one, runs in the spec's directory. */
  private async prepareWorkdir(): Promise<string> {
    const { bundle } = this.sweep;
    if (!bundle) return this.sweep.specDir ?? this.o.workDir;
    const dir = join(this.o.bundleCache, bundle.sha256);
    if (await stat(dir).catch(() => undefined)) return dir;
    const file = join(this.o.workDir, "downloads", `${bundle.sha256}.tar.gz`);
    if (!(await this.o.objects.getFile(bundle.key, file)))
      throw new Error(`workdir bundle ${bundle.key} is missing`);
    await mkdir(this.o.bundleCache, { recursive: true });
    await extractBundle(file, bundle.sha256, dir);
    await rm(file, { force: true });
    return dir;
  }

  /**
   * The setup phase: once per machine per workdir version and setup command. It runs in the
   * unpacked workdir, so what it creates (a venv, downloaded weights) is there for every task.
   * Agents sharing a machine (local) take a lock; the others wait for its marker. A failing
   * setup fails the sweep with the reason: every instance would fail the same way.
   */
  private async runSetup(): Promise<boolean> {
    const { spec, sweepId } = this.sweep;
    if (!spec.setup) return true;
    const tag = createHash("sha256").update(spec.setup).digest("hex").slice(0, 12);
    const marker = `${this.cwd}.setup-${tag}.ok`;
    const lock = `${this.cwd}.setup-${tag}.lock`;
    const staleAfter = spec.setup_timeout + spec.grace + 60_000;
    for (;;) {
      if (await stat(marker).catch(() => undefined)) return true;
      if (this.stopping) return false;
      try {
        await mkdir(lock);
        break;
      } catch {
        // Another agent on this machine runs setup; wait for its marker (or take over a stale lock).
        const held = await stat(lock).catch(() => undefined);
        if (held && Date.now() - held.mtimeMs > staleAfter) {
          await rm(lock, { recursive: true, force: true });
          continue;
        }
        if (await this.sweepEnded()) return false;
        await sleep(250, this.wake.signal);
      }
    }
    try {
      const logFile = join(this.o.workDir, "setup.log");
      const outcome = await runTask({
        command: spec.setup,
        cwd: this.cwd,
        env: { SPAWN_SWEEP_ID: sweepId, SPAWN_PHASE: "setup", ...stringEnv(spec.env) },
        logFile,
        timeoutMs: spec.setup_timeout,
        graceMs: Math.min(spec.grace, 30_000),
        signal: this.wake.signal,
      });
      await this.o.objects.putFile(setupLogKey(sweepId, this.o.instanceId), logFile).catch(() => undefined);
      if (outcome.exitCode === 0 && !outcome.timedOut) {
        await writeFile(marker, String(this.o.clock.now()));
        return true;
      }
      if (this.stopping) return false;
      const why =
        outcome.error ??
        (outcome.timedOut ? "timed out" : `exited with code ${outcome.exitCode ?? outcome.signal}`);
      const reason = `setup failed on ${this.o.instanceId}: ${why}; see spawn sweep logs ${sweepId} --setup`;
      this.o.log.error("setup failed", { reason });
      const now = this.o.clock.now();
      await this.o.store
        .updateSweep(
          sweepId,
          { status: "running" },
          { status: "failed", reason, finishedAt: now, updatedAt: now },
        )
        .catch(() => undefined);
      this.stopReason = reason;
      return false;
    } finally {
      await rm(lock, { recursive: true, force: true });
    }
  }

  private async sweepEnded(): Promise<boolean> {
    const sweep = await this.o.store.getSweep(this.sweep.sweepId);
    return !sweep || TERMINAL_SWEEP_STATUSES.includes(sweep.status);
  }

  private async slotLoop(slot: number): Promise<void> {
    const idleTimeout = this.sweep.spec.idle_timeout;
    let backoff = 50;
    while (!this.stopping) {
      const claimed = await this.serialized(() => this.claim());
      if (claimed === "none-left") {
        if (this.running.size === 0) this.stop("no work left");
        return;
      }
      if (claimed === "not-ready") {
        if (this.o.clock.now() - this.lastWork > idleTimeout && this.running.size === 0) {
          this.stop(`idle for ${Math.round(idleTimeout / 1000)}s`);
          return;
        }
        await sleep(backoff, this.wake.signal);
        backoff = Math.min(backoff * 2, 1000);
        continue;
      }
      backoff = 50;
      this.lastWork = this.o.clock.now();
      await this.execute(claimed, slot);
      this.lastWork = this.o.clock.now();
    }
  }

  /** Claims run one at a time within an agent, so its own slots never contend for the same task. */
  private serialized<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.claimLock.then(fn, fn);
    this.claimLock = next.catch(() => undefined);
    return next;
  }

  /**
   * Claims the next ready task with a conditional write that sets the lease. Shards are
   * visited from a random start so that many agents spread over partitions.
   */
  private async claim(): Promise<TaskRecord | "not-ready" | "none-left"> {
    const { store, clock } = this.o;
    const { sweepId, shardCount } = this.sweep;
    if (this.stopping) return "none-left";
    const now = clock.now();
    // The rest of the last page first: a claim is then one conditional write, no query. A
    // candidate someone else took meanwhile just fails its condition.
    while (this.candidates.length > 0) {
      const task = this.candidates.pop()!;
      if (task.readyAt > now || this.running.has(task.index)) continue;
      const claimed = await this.tryClaim(task, now);
      if (claimed) return claimed;
    }
    const pageSize = Math.max(8, 2 * slotsPerInstance(this.sweep.spec, this.o.gpuCount ?? 0));
    const start = randomInt(shardCount);
    let anyPending = false;
    for (let i = 0; i < shardCount; i++) {
      const shard = (start + i) % shardCount;
      const ready = await store.listPendingTasks(sweepId, shard, { readyBy: now, limit: pageSize });
      if (ready.length === 0) {
        if (!anyPending) anyPending = (await store.listPendingTasks(sweepId, shard, { limit: 1 })).length > 0;
        continue;
      }
      anyPending = true;
      // Shuffled: agents reading the same page rarely go for the same task.
      for (let j = ready.length - 1; j > 0; j--) {
        const k = randomInt(j + 1);
        [ready[j], ready[k]] = [ready[k]!, ready[j]!];
      }
      for (let j = 0; j < ready.length; j++) {
        const task = ready[j]!;
        if (this.running.has(task.index)) continue;
        const claimed = await this.tryClaim(task, now);
        if (claimed) {
          this.candidates = ready.slice(j + 1);
          return claimed;
        }
      }
    }
    if (anyPending) return "not-ready";
    // Nothing pending anywhere; running tasks elsewhere may still fail and be retried, but
    // then reconcile launches an instance for them. A cancelled or ended sweep also lands here.
    return "none-left";
  }

  /** The claim itself: pending at the attempt we saw → running, leased to us. */
  private async tryClaim(task: TaskRecord, now: number): Promise<TaskRecord | undefined> {
    try {
      return await this.o.store.updateTask(
        this.sweep.sweepId,
        task.index,
        this.sweep.shardCount,
        { status: "pending", attempt: task.attempt },
        {
          status: "running",
          attempt: task.attempt + 1,
          leaseOwner: this.o.instanceId,
          leaseExpiresAt: now + this.sweep.spec.lease,
          startedAt: now,
          updatedAt: now,
        },
      );
    } catch (error) {
      if (error instanceof ConditionFailedError) return undefined;
      throw error;
    }
  }

  private async execute(task: TaskRecord, slot: number): Promise<void> {
    const { objects, clock, store } = this.o;
    const { sweepId, spec, taskCount, shardCount } = this.sweep;
    const log = this.o.log.child({ sweepId, taskIndex: task.index, attempt: task.attempt, slot });
    const entry: Running = { task, abort: new AbortController() };
    this.running.set(task.index, entry);
    const dir = join(this.o.workDir, "tasks", `${task.index}-${task.attempt}`);
    const outputDir = join(dir, "output");
    const checkpointDir = join(dir, "checkpoint");
    const paramsFile = join(dir, "params.json");
    const metricsFile = join(dir, "metrics.jsonl");
    const logFile = join(dir, "task.log");
    const cwd = join(dir, "work");
    let end: AttemptEnd;
    let uploader: NodeJS.Timeout | undefined;
    try {
      await mkdir(outputDir, { recursive: true });
      await mkdir(checkpointDir, { recursive: true });
      await linkTree(this.cwd, this.tree, cwd);
      await writeFile(paramsFile, JSON.stringify(task.params));
      let command: string;
      try {
        command = renderCommand(spec.command, task.params, {
          index: task.index,
          attempt: task.attempt,
          sweepId,
        });
      } catch (error) {
        command = `echo ${shellQuote(`spawn: ${(error as Error).message}`)} >&2; exit 2`;
      }
      const env = taskEnvironment({
        sweepId,
        index: task.index,
        taskCount,
        attempt: task.attempt,
        params: task.params,
        paramsFile,
        outputDir,
        checkpointDir,
        metricsFile,
        resume: false,
        specEnv: spec.env,
      });
      // Live log for `spawn sweep logs --follow`, only for tasks that run longer than a moment.
      const key = logKey(sweepId, task.index, task.attempt);
      uploader = setInterval(
        () => void objects.putFile(key, logFile).catch(() => undefined),
        this.o.logUploadMs ?? 2000,
      );
      const outcome = await runTask({
        command,
        cwd,
        env,
        logFile,
        ...(spec.timeout !== undefined ? { timeoutMs: spec.timeout } : {}),
        graceMs: spec.grace,
        signal: entry.abort.signal,
      });
      clearInterval(uploader);
      uploader = undefined;
      await objects.putFile(key, logFile).catch((error) => log.warn("log upload failed", { error }));
      if (entry.abortReason === "lease-lost") {
        log.warn("lease lost; result dropped");
        return;
      }
      if (entry.abortReason === "shutdown") {
        end = { kind: "lost", reason: `agent stopped: ${this.stopReason}` };
      } else if (entry.abortReason === "cancelled") {
        end = { kind: "cancelled", reason: "sweep cancelled" };
      } else {
        const final = await readFinalMetrics(metricsFile).catch(() => undefined);
        const kept = await collectOutputs({
          cwd,
          patterns: spec.outputs,
          outputDir,
          since: outcome.startedAt,
        });
        const prefix = outputsPrefix(sweepId, task.index);
        await Promise.all(kept.map((f) => objects.putFile(`${prefix}${f.rel}`, f.path)));
        end = {
          kind: "exit",
          exitCode: outcome.exitCode,
          signal: outcome.signal,
          timedOut: outcome.timedOut,
          durationMs: outcome.durationMs,
          ...(outcome.error ? { error: outcome.error } : {}),
          ...(final ? { metrics: final.metrics } : {}),
          ...(kept.length ? { outputs: kept.map((f) => `${prefix}${f.rel}`) } : {}),
        };
      }
      const update = afterAttempt(task, spec.retry, end, clock.now(), Math.random());
      try {
        await store.updateTask(
          sweepId,
          task.index,
          shardCount,
          { status: "running", attempt: task.attempt, leaseOwner: this.o.instanceId },
          update,
        );
      } catch (error) {
        if (!(error instanceof ConditionFailedError)) throw error;
        log.warn("lease lost before the result was written; result dropped");
      }
    } finally {
      if (uploader) clearInterval(uploader);
      this.running.delete(task.index);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Stops claiming and stops running tasks (as cancelled) once the sweep has ended. */
  private async watchSweep(): Promise<void> {
    const sweep = await this.o.store.getSweep(this.sweep.sweepId).catch(() => undefined);
    if (!sweep || !TERMINAL_SWEEP_STATUSES.includes(sweep.status)) return;
    for (const r of this.running.values()) {
      r.abortReason ??= "cancelled";
      r.abort.abort();
    }
    this.candidates = [];
    this.stop(`sweep ${sweep.status}`);
  }

  /** Renews the instance heartbeat and every lease; notices lost leases. */
  private async heartbeat(): Promise<void> {
    const { store, clock, instanceId } = this.o;
    const { sweepId, shardCount, spec } = this.sweep;
    const now = clock.now();
    try {
      await store.updateInstance(sweepId, instanceId, { status: "running" }, { heartbeatAt: now });
      this.lastContact = now;
    } catch (error) {
      if (error instanceof ConditionFailedError) {
        this.stop("instance was terminated by the control plane");
        return;
      }
      this.o.log.warn("heartbeat failed", { error });
      // Our leases have expired by now and others run our tasks: stop rather than run blind.
      if (now - this.lastContact > 2 * spec.lease) this.stop("lost contact with the state store");
      return;
    }
    await Promise.all(
      [...this.running.values()].map(async (r) => {
        try {
          await store.updateTask(
            sweepId,
            r.task.index,
            shardCount,
            { status: "running", attempt: r.task.attempt, leaseOwner: instanceId },
            { leaseExpiresAt: now + spec.lease },
          );
        } catch (error) {
          if (error instanceof ConditionFailedError) {
            this.o.log.warn("lease lost", {
              taskIndex: r.task.index,
              error: new LeaseLostError(error.message),
            });
            r.abortReason ??= "lease-lost";
            r.abort.abort();
          }
        }
      }),
    );
  }
}

interface WorkdirTree {
  /** Relative directories, parents before children. */
  dirs: string[];
  files: string[];
}

async function readTree(root: string): Promise<WorkdirTree> {
  const tree: WorkdirTree = { dirs: [], files: [] };
  for (const entry of await readdir(root, { recursive: true, withFileTypes: true })) {
    const rel = relative(root, join(entry.parentPath, entry.name));
    if (entry.isDirectory()) tree.dirs.push(rel);
    else tree.files.push(rel);
  }
  tree.dirs.sort((a, b) => a.split(sep).length - b.split(sep).length);
  return tree;
}

/**
 * A private working directory per attempt: the workdir's directories are recreated and its
 * files hard-linked (copied across devices). What a task creates there is its own, so
 * parallel tasks never see each other's files and `outputs` globs only keep this attempt's.
 */
async function linkTree(source: string, tree: WorkdirTree, target: string): Promise<void> {
  await mkdir(target, { recursive: true });
  for (const dir of tree.dirs) await mkdir(join(target, dir), { recursive: true });
  await Promise.all(
    tree.files.map((f) =>
      link(join(source, f), join(target, f)).catch(() =>
        cp(join(source, f), join(target, f), { verbatimSymlinks: true }),
      ),
    ),
  );
}

function stringEnv(env: Record<string, string | number | boolean>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}
