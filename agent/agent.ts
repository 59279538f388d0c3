/**
 * The agent: one per instance. It registers, fetches and caches the workdir bundle,
 * runs the setup phase once, then claims tasks (pull model, leased, sharded) and runs
 * up to `slots` at once, heartbeating its instance and its leases. Each task's checkpoint
 * directory is synced while it runs and restored on its next attempt; its log is shipped
 * live. It watches IMDS for spot interruption notices and its instance's deadline, and
 * exits when the sweep has no work left, when idle too long, or when told to stop.
 */
import { createHash, randomBytes, randomInt } from "node:crypto";
import { appendFile, cp, link, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { join, relative, sep } from "node:path";
import { parseResumeFrom } from "#core/checkpoint.js";
import { renderCommand, shellQuote, taskEnvironment } from "#core/contract.js";
import { settleDependents } from "#core/dependencies.js";
import { ConditionFailedError, LeaseLostError } from "#core/errors.js";
import { spawnEvent } from "#core/events.js";
import { contractIdentity, restartGang } from "#core/gang.js";
import {
  type InstanceRecord,
  type SweepRecord,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
} from "#core/model.js";
import { slotsOn } from "#core/placement.js";
import type { Clock, EventSink, ObjectStore, StateStore } from "#core/ports.js";
import { jobRetryPolicy } from "#core/queue.js";
import { type AttemptEnd, afterAttempt } from "#core/retry.js";
import { formatTraceparent, newTraceContext, parseTraceparent } from "#core/traceparent.js";
import { extractBundle } from "#providers/bundle.js";
import type { Logger } from "#providers/log.js";
import { CheckpointSync, type RestoreResult, restoreCheckpoint } from "./checkpoints.js";
import { type HostnameRegistrar, registerHostname, removeHostname } from "./dns.js";
import {
  type HealthOptions,
  health,
  probe,
  readRunReport,
  runArgv,
  type Sampler,
  startSampler,
  traceTask,
} from "./executor.js";
import {
  budgetFor,
  GpuAllocator,
  type GpuDevice,
  type GpuGrant,
  GpuTelemetry,
  gpuSeriesKey,
  type MemoryPressure,
  mpsRunning,
} from "./gpus.js";
import type { CpuSampler, GpuUtilization } from "./idle.js";
import {
  type ImdsClient,
  type InterruptionNotice,
  type RebalanceRecommendation,
  watchInterruptions,
} from "./imds.js";
import { LogShipper, logChunkPrefix } from "./log-shipper.js";
import { readFinalMetrics } from "./metrics.js";
import { networkPlan, networkRefusal } from "./network.js";
import { collectOutputs, outputsPrefix } from "./outputs.js";
import { fetchDependencyResults, readLogTail } from "./queue-jobs.js";
import { type MetGang, meetGang, PeerNames } from "./rendezvous.js";
import { StageInputs, thaw } from "./stage-inputs.js";
import { publishTaskOutcome } from "./task-events.js";
import { runTask, TaskAbort } from "./task-runner.js";
import { attemptTrace, taskTraceKey } from "./task-trace.js";

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
  /**
   * GPUs on this instance when there is no executor to probe them (else the instance record's
   * `gpus`, from the offer it was launched from); they are then handed out by index.
   */
  gpuCount?: number;
  /** The CUDA executor (aws, where installed): GPU inventory, health gate, telemetry, budgets, traces. */
  executor?: ExecutorSupport;
  /** Where the agent publishes what it sees (GpuMemoryPressure, TaskFailed); absent: logged only. */
  events?: EventSink;
  /** Where this instance's hostname is registered (docs/dns.md); absent: no hostname. */
  hostnames?: HostnameRegistrar;
  /** How often new task output is shipped for `logs --follow`. @default 2 s */
  logUploadMs?: number;
  /** IMDS, watched for spot interruption notices and rebalance recommendations; absent: not watched (local). */
  imds?: ImdsClient;
  /** How often IMDS is polled. @default 5000 */
  imdsPollMs?: number;
  /** Machine CPU load for the idle check; absent: idle means no work only (local agents share a machine). */
  cpu?: CpuSampler;
  /** GPU utilization for the idle check, from the executor where present. */
  gpu?: GpuUtilization;
  /** CPU or GPU use at or above this fraction keeps the instance from being idle. @default 0.1 */
  idleLoadThreshold?: number;
  /** The provider this agent runs on (`local`, `aws`): decides what the spec can ask of it. @default local */
  provider?: string;
}

/** How the agent uses spawn-executor (agent/executor.ts, docs/executor.md). */
export interface ExecutorSupport {
  /** The spawn-executor binary (locateExecutor()). */
  binary: string;
  /** Added to the environment of every executor call and of GPU tasks (tests: the fake NVML). */
  env?: Record<string, string>;
  /** The boot health gate, run when the probe finds GPUs; false skips it. @default { mode: "quick" } */
  health?: false | Pick<HealthOptions, "mode" | "checks" | "seconds">;
  /** GPU sampling interval. @default 1000 */
  sampleIntervalMs?: number;
  /** How often the GPU utilization series is uploaded (and once more at exit). @default 60 s */
  seriesUploadMs?: number;
}

/** How long a spot notice's grace leaves, before the action is due, for the checkpoint sync and release. */
export const PREEMPT_RESERVE_MS = 20_000;
/** The deadline warning comes this long before it (a log line and `deadlineWarnedAt` on the instance). */
export const DEADLINE_WARNING_MS = 5 * 60_000;

/** Object-store key of the setup phase's log on one instance. */
export function setupLogKey(sweepId: string, instanceId: string): string {
  return `logs/${sweepId}/setup/${instanceId}.log`;
}

interface Running {
  task: TaskRecord;
  abort: AbortController;
  /** Why it was aborted: decides what (if anything) is written back. */
  abortReason?: "cancelled" | "lease-lost" | "shutdown" | "preempted" | "gang-restart";
  /** Its checkpoint directory's sync, once the task has started. */
  sync?: CheckpointSync;
  /** The GPUs it holds. */
  grant?: GpuGrant;
}

/** The instance's GPUs once probed and gated. */
interface Gpus {
  allocator: GpuAllocator;
  /** Absent: GPUs known by count only (no executor), handed out by index, no budgets. */
  executor?: ExecutorSupport;
  /** An MPS control daemon runs: fractional tasks get MPS limits, not only the executor's watch. */
  mps: boolean;
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
  /** How gang members find each other by hostname (agent/rendezvous.ts); set as run() starts. */
  private names!: PeerNames;
  private readonly running = new Map<number, Running>();
  private stopping = false;
  /** A rebalance recommendation: no new claims, running tasks go on. */
  private draining = false;
  private stopReason = "no work left";
  /** The spot interruption notice being acted on, if any. */
  private notice: InterruptionNotice | undefined;
  /** Last time the machine's CPU or GPU was in use (idle check). */
  private lastBusy: number;
  private readonly wake = new AbortController();
  private lastWork: number;
  private lastContact: number;
  private claimLock: Promise<unknown> = Promise.resolve();
  /** Ready tasks from the last page read, not yet tried. */
  private candidates: TaskRecord[] = [];
  private cwd = "";
  /** The unpacked workdir's tree, recreated (hard links) in every task's private directory. */
  private tree: WorkdirTree = { dirs: [], files: [] };
  private gpus: Gpus | undefined;
  /** Failed the GPU health gate. */
  private unhealthy = false;
  private telemetry: GpuTelemetry | undefined;
  private sampler: Sampler | undefined;
  /** A queue's shared working directory (jobs read what the jobs before them wrote), made once. */
  private queueDir: Promise<void> | undefined;
  /** A pipeline stage's inputs (SPAWN_INPUT_DIR), made when its first task runs. */
  private stageInputs: StageInputs | undefined;
  /** Queue jobs this agent ran to success: their files are in the queue directory already. */
  private readonly ranHere = new Set<number>();
  /** Uploads (task traces) that need not hold up the next claim; awaited before the agent exits. */
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly o: AgentOptions) {
    this.lastWork = o.clock.now();
    this.lastContact = this.lastWork;
    this.lastBusy = this.lastWork;
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
    let instance: InstanceRecord;
    try {
      instance = await store.updateInstance(
        sweepId,
        instanceId,
        { status: ["launching", "running"] },
        { status: "running", heartbeatAt: clock.now(), host: hostname() },
      );
    } catch (error) {
      if (error instanceof ConditionFailedError) return "instance was terminated before it started";
      throw error;
    }
    // The hostname registers in the background: DNS never holds up work (docs/dns.md).
    const hostnames = this.o.hostnames && {
      resolver: this.o.hostnames.resolver,
      registered: registerHostname({ ...this.o, sweepId }, this.o.hostnames),
    };
    if (hostnames) this.inBackground(hostnames.registered);
    this.names = new PeerNames({ log, ...hostnames });
    const refusal = networkRefusal(sweep.spec, this.o.provider ?? "local");
    if (refusal) {
      await this.failSweep(refusal);
      await this.deregister();
      return refusal;
    }
    const watch = this.o.imds
      ? watchInterruptions({
          client: this.o.imds,
          intervalMs: this.o.imdsPollMs ?? 5000,
          onInterruption: (n) => this.onInterruption(n),
          onRebalance: (r) => this.onRebalance(r),
          onError: (error) => log.warn("IMDS poll failed", { error }),
        })
      : undefined;
    const deadlineTimers = this.watchDeadline(instance);
    let seriesTimer: NodeJS.Timeout | undefined;
    const heartbeat = setInterval(
      () => void this.heartbeat(),
      Math.max(250, Math.min(10_000, sweep.spec.lease / 3)),
    );
    // A cancel must stop claims and tasks within seconds, whatever the lease length.
    const sweepWatch = setInterval(
      () => void this.watchSweep(),
      Math.min(2000, Math.max(250, sweep.spec.lease / 3)),
    );
    try {
      if (!(await this.prepareGpus(instance))) {
        // Failed the health gate: claim nothing, keep heartbeating, and leave the record to
        // reconcile, which terminates and replaces the instance (deregistering first would hide it).
        this.unhealthy = true;
        await this.untilStopped();
        return this.stopReason;
      }
      if (this.telemetry) {
        const every = this.o.executor?.seriesUploadMs ?? 60_000;
        seriesTimer = setInterval(() => void this.uploadSeries(), every);
      }
      const slots = this.slots();
      if (slots === 0) {
        this.stop(
          `this instance has ${this.gpus?.allocator.devices.length ?? 0} GPU(s); each task needs ${sweep.spec.resources.gpus} (resources.gpus)`,
        );
        log.error("cannot run this sweep's tasks", { reason: this.stopReason });
        return this.stopReason;
      }
      this.cwd = await this.prepareWorkdir();
      if (!this.stopping && (await this.runSetup())) {
        // After setup, so what setup created is in every task's working directory too.
        this.tree = await readTree(this.cwd);
        log.info("agent ready", { slots, gpus: this.gpus?.allocator.devices.length ?? 0 });
        await Promise.all(Array.from({ length: slots }, (_, slot) => this.slotLoop(slot)));
      }
    } catch (error) {
      log.error("agent failed", { error: error instanceof Error ? error.stack : String(error) });
      this.stopReason = `agent error: ${(error as Error).message}`;
      this.stop(this.stopReason);
    } finally {
      clearInterval(heartbeat);
      clearInterval(sweepWatch);
      clearInterval(seriesTimer);
      watch?.stop();
      for (const t of deadlineTimers) clearTimeout(t);
      await this.sampler?.stop();
      await this.uploadSeries();
      await Promise.all(this.background);
      if (!this.unhealthy) await this.deregister();
    }
    return this.stopReason;
  }

  /** Tasks at once: `resources.slots` or one per GPU share, never more than the GPUs hold. */
  private slots(): number {
    const { spec } = this.sweep;
    const gpus = this.gpus?.allocator;
    // A gang member takes a whole instance, so one agent never holds two members of a gang.
    const slots = spec.nodes > 1 ? 1 : slotsOn(spec.resources, gpus?.devices.length ?? 0);
    return gpus && spec.resources.gpus > 0 ? Math.min(slots, gpus.capacity(spec.resources.gpus)) : slots;
  }

  private untilStopped(): Promise<void> {
    const signal = this.wake.signal;
    return signal.aborted
      ? Promise.resolve()
      : new Promise((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }));
  }

  /**
   * GPU inventory from the executor's probe (else the known GPU count), the boot health gate,
   * and the telemetry sampler. Resolves false when a GPU failed the gate: the instance record
   * then says so (`health.verdict: "fail"`), and the instance must claim nothing.
   */
  private async prepareGpus(instance: InstanceRecord): Promise<boolean> {
    const { log, store, sweepId, instanceId } = this.o;
    const exe = this.o.executor;
    if (!exe) {
      const count = this.o.gpuCount ?? instance.gpus ?? 0;
      if (count === 0) return true;
      if (this.sweep.spec.resources.gpus > 0)
        log.warn("no spawn-executor: GPUs are given by index, with no health gate, telemetry or budgets");
      const devices = Array.from({ length: count }, (_, index) => ({ index, id: String(index) }));
      this.gpus = { allocator: new GpuAllocator(devices), mps: false };
      return true;
    }
    const env = { ...process.env, ...exe.env };
    let devices: GpuDevice[];
    try {
      const inventory = await probe(exe.binary, { env });
      devices = inventory.gpus.map((g) => ({
        index: g.index,
        id: g.uuid,
        ...(g.memory_total_bytes ? { memoryTotalBytes: g.memory_total_bytes } : {}),
      }));
      if (devices.length === 0) log.info("no GPU", { reason: inventory.reason ?? "none found" });
    } catch (error) {
      log.warn("GPU probe failed; running without GPUs", { error: (error as Error).message });
      return true;
    }
    if (devices.length === 0) return true;
    const gate = exe.health === false ? undefined : await this.healthGate(exe, env);
    await store
      .updateInstance(
        sweepId,
        instanceId,
        { status: "running" },
        { gpus: devices.length, ...(gate ? { health: gate } : {}) },
      )
      .catch((error) => log.warn("could not record the GPU inventory", { error }));
    if (gate?.verdict === "fail") {
      this.stopReason = `unhealthy: ${gate.reasons.join("; ")}`;
      log.error("GPU health check failed: claiming nothing; the control plane replaces this instance", {
        reasons: gate.reasons,
      });
      return false;
    }
    if (gate?.verdict === "warn")
      log.warn("GPU health check passed with warnings", { reasons: gate.reasons });
    this.gpus = { allocator: new GpuAllocator(devices), executor: exe, mps: mpsRunning(env) };
    this.telemetry = new GpuTelemetry({ sweepId, instanceId, onPressure: (p) => this.onMemoryPressure(p) });
    const telemetry = this.telemetry;
    this.sampler = startSampler(
      exe.binary,
      { env, intervalMs: exe.sampleIntervalMs ?? 1000 },
      (sample) => telemetry.observe(sample),
      (error) => log.warn("GPU sampling", { error: error.message }),
    );
    return true;
  }

  /** `spawn-executor health` on every GPU: the verdict, and each warning or failure in words. */
  private async healthGate(
    exe: ExecutorSupport,
    env: NodeJS.ProcessEnv,
  ): Promise<NonNullable<InstanceRecord["health"]>> {
    const options = exe.health || {};
    try {
      const result = await health(exe.binary, { mode: "quick", ...options, env });
      const reasons = result.gpus.flatMap((g) =>
        g.reasons.map((r) => `GPU ${g.index} (${g.uuid}): ${r.check}: ${r.message}`),
      );
      // No verdict: the check saw no GPU although the probe did, which is no healthy state either.
      const verdict = result.verdict ?? "fail";
      if (!result.verdict) reasons.push(`health check saw no GPU: ${result.reason ?? "no reason given"}`);
      return { verdict, checkedAt: this.o.clock.now(), reasons };
    } catch (error) {
      return {
        verdict: "fail",
        checkedAt: this.o.clock.now(),
        reasons: [`health check could not run: ${(error as Error).message}`],
      };
    }
  }

  /** A GPU went past 95% memory in use: logged, and published once per crossing. */
  private onMemoryPressure(p: MemoryPressure): void {
    const tasks = [...this.running.values()]
      .filter((r) => r.grant?.devices.some((d) => d.id === p.uuid))
      .map((r) => r.task.index);
    this.o.log.warn("GPU memory pressure", {
      gpu: p.index,
      uuid: p.uuid,
      usedBytes: p.usedBytes,
      totalBytes: p.totalBytes,
      tasks,
    });
    const event = spawnEvent(this.sweep.sweepId, p.at, {
      type: "GpuMemoryPressure",
      instanceId: this.o.instanceId,
      gpuIndex: p.index,
      gpuUuid: p.uuid,
      usedBytes: p.usedBytes,
      totalBytes: p.totalBytes,
      tasks,
    });
    void this.o.events
      ?.publish([event])
      .catch((error) => this.o.log.warn("could not publish GpuMemoryPressure", { error }));
  }

  /** The GPU utilization series for the dashboard, when it has new samples. */
  private async uploadSeries(): Promise<void> {
    const telemetry = this.telemetry;
    if (!telemetry?.dirty) return;
    const key = gpuSeriesKey(this.sweep.sweepId, this.o.instanceId);
    await this.o.objects
      .putBytes(key, JSON.stringify(telemetry.series()))
      .catch((error) => this.o.log.warn("GPU series upload failed", { error }));
  }

  private async deregister(): Promise<void> {
    const { store, sweepId, instanceId, clock } = this.o;
    if (this.o.hostnames) await removeHostname(this.o.log, this.o.hostnames);
    await store
      .updateInstance(
        sweepId,
        instanceId,
        { status: ["launching", "running"] },
        { status: "terminated", terminatedAt: clock.now(), reason: this.stopReason },
      )
      .catch(() => undefined);
  }

  /** Fails the sweep with a reason every instance would share (setup failed, spec unenforceable). */
  private async failSweep(reason: string): Promise<void> {
    this.o.log.error("failing the sweep", { reason });
    const now = this.o.clock.now();
    await this.o.store
      .updateSweep(
        this.sweep.sweepId,
        { status: "running" },
        { status: "failed", reason, finishedAt: now, updatedAt: now },
      )
      .catch(() => undefined);
    this.stopReason = reason;
  }

  /**
   * A spot interruption notice: stop claiming, SIGTERM every task with a grace that ends
   * PREEMPT_RESERVE_MS before the action (at most the spec's `grace`), then SIGKILL; each task's
   * checkpoint is synced and it is released as preempted (execute), and the instance deregisters.
   */
  private onInterruption(notice: InterruptionNotice): void {
    if (this.notice) return;
    this.notice = notice;
    const now = this.o.clock.now();
    const graceMs = Math.max(
      1000,
      Math.min(this.sweep.spec.grace, notice.actionAt - now - PREEMPT_RESERVE_MS),
    );
    const due = new Date(notice.actionAt).toISOString();
    this.o.log.warn("spot interruption notice", { action: notice.action, due, graceMs });
    void this.o.store
      .updateInstance(
        this.sweep.sweepId,
        this.o.instanceId,
        { status: ["launching", "running"] },
        { interruption: { kind: notice.action, seenAt: now, actionAt: notice.actionAt } },
      )
      .catch(() => undefined);
    const why = `spot interruption notice (${notice.action} at ${due})`;
    for (const r of this.running.values()) {
      r.abortReason ??= "preempted";
      r.abort.abort(new TaskAbort(why, graceMs));
    }
    this.stop(why);
  }

  /** A rebalance recommendation: stop claiming new work, and checkpoint running tasks now. */
  private onRebalance(recommendation: RebalanceRecommendation): void {
    if (this.draining || this.stopping) return;
    this.draining = true;
    this.o.log.warn("rebalance recommendation: no new claims", {
      noticeAt: new Date(recommendation.noticeAt).toISOString(),
    });
    void this.o.store
      .updateInstance(
        this.sweep.sweepId,
        this.o.instanceId,
        { status: ["launching", "running"] },
        { interruption: { kind: "rebalance", seenAt: this.o.clock.now() } },
      )
      .catch(() => undefined);
    for (const r of this.running.values())
      void r.sync
        ?.sync({ final: false })
        .catch((error) => this.o.log.warn("early checkpoint failed", { error }));
    this.wake.abort();
  }

  /**
   * The instance's absolute deadline (stored with it, so restarts and stop/start never move it):
   * a warning DEADLINE_WARNING_MS before, once; and a graceful stop early enough for the tasks'
   * grace and checkpoint sync to finish before the reaper terminates the instance.
   */
  private watchDeadline(instance: InstanceRecord): NodeJS.Timeout[] {
    const { clock, log, store } = this.o;
    const now = clock.now();
    const timers: NodeJS.Timeout[] = [];
    const at = (when: number, fn: () => void) => {
      // setTimeout's limit is about 24.8 days; a deadline further out is re-armed by the next start.
      const delay = when - now;
      if (delay < 2 ** 31 - 1) timers.push(setTimeout(fn, Math.max(0, delay)));
    };
    const due = new Date(instance.deadline).toISOString();
    if (instance.deadlineWarnedAt === undefined) {
      at(instance.deadline - DEADLINE_WARNING_MS, () => {
        log.warn("instance deadline in 5 minutes or less", { deadline: due });
        void store
          .updateInstance(
            this.sweep.sweepId,
            this.o.instanceId,
            { status: "running" },
            { deadlineWarnedAt: clock.now() },
          )
          .catch(() => undefined);
      });
    }
    at(instance.deadline - this.sweep.spec.grace - PREEMPT_RESERVE_MS, () => {
      const why = `ttl: instance deadline ${due}`;
      const graceMs = Math.max(
        1000,
        Math.min(this.sweep.spec.grace, instance.deadline - clock.now() - PREEMPT_RESERVE_MS),
      );
      for (const r of this.running.values()) {
        r.abortReason ??= "shutdown";
        r.abort.abort(new TaskAbort(why, graceMs));
      }
      this.stop(why);
    });
    return timers;
  }

  /** A queue's jobs share one working directory, a private copy of the workdir made on first use. */
  private sharedQueueDir(dir: string): Promise<void> {
    this.queueDir ??= linkTree(this.cwd, this.tree, dir);
    return this.queueDir;
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
      await this.failSweep(
        `setup failed on ${this.o.instanceId}: ${why}; see spawn sweep logs ${sweepId} --setup`,
      );
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
      if (this.draining) {
        if (this.running.size === 0) this.stop("rebalance recommendation: drained, no new claims");
        return;
      }
      const claimed = await this.serialized(() => this.claim());
      if (claimed === "none-left") {
        if (this.running.size === 0)
          this.stop(this.draining ? "rebalance recommendation: drained, no new claims" : "no work left");
        return;
      }
      if (claimed === "not-ready") {
        const now = this.o.clock.now();
        if (now - Math.max(this.lastWork, this.lastBusy) > idleTimeout && this.running.size === 0) {
          await this.goIdle(idleTimeout);
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

  /** Idle: nothing to run, nothing claimable, machine quiet. The instance asks for `idle_action` (local: exits). */
  private async goIdle(idleTimeout: number): Promise<void> {
    const action = this.sweep.spec.idle_action;
    await this.o.store
      .updateInstance(this.sweep.sweepId, this.o.instanceId, { status: "running" }, { idleAction: action })
      .catch(() => undefined);
    this.stop(`idle for ${Math.round(idleTimeout / 1000)}s (idle_action: ${action})`);
  }

  /** Samples machine load on the heartbeat; any busy interval restarts the idle clock. */
  private async sampleLoad(): Promise<void> {
    const threshold = this.o.idleLoadThreshold ?? 0.1;
    const [cpu, gpu] = await Promise.all([
      this.o.cpu?.sample().catch(() => undefined),
      (this.o.gpu ?? this.telemetry)?.sample().catch(() => undefined),
    ]);
    if ((cpu ?? 0) >= threshold || (gpu ?? 0) >= threshold) this.lastBusy = this.o.clock.now();
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
    if (this.stopping || this.draining) return "none-left";
    const now = clock.now();
    // The rest of the last page first: a claim is then one conditional write, no query. A
    // candidate someone else took meanwhile just fails its condition.
    while (this.candidates.length > 0) {
      const task = this.candidates.pop()!;
      if (task.readyAt > now || this.running.has(task.index)) continue;
      const claimed = await this.tryClaim(task, now);
      if (claimed) return claimed;
    }
    const pageSize = Math.max(8, 2 * this.slots());
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
      // Gang members in row order, so the first N agents fill one gang rather than half of two
      // (which would wait out the rendezvous timeout). Other tasks shuffled: agents reading the
      // same page rarely go for the same task.
      if (this.sweep.spec.nodes > 1) ready.sort((a, b) => a.index - b.index);
      else
        for (let j = ready.length - 1; j > 0; j--) {
          const k = randomInt(j + 1);
          [ready[j], ready[k]] = [ready[k]!, ready[j]!];
        }
      for (let j = 0; j < ready.length; j++) {
        const task = ready[j]!;
        if (this.running.has(task.index)) continue;
        const claimed = await this.tryClaim(task, now);
        if (claimed) {
          // Reversed: pop() then takes them in page order.
          this.candidates = ready.slice(j + 1).reverse();
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
    const claimedAt = clock.now();
    const entry: Running = { task, abort: new AbortController() };
    this.running.set(task.index, entry);
    const dir = join(this.o.workDir, "tasks", `${task.index}-${task.attempt}`);
    const outputDir = join(dir, "output");
    const checkpointDir = join(dir, "checkpoint");
    const paramsFile = join(dir, "params.json");
    const metricsFile = join(dir, "metrics.jsonl");
    const logFile = join(dir, "task.log");
    const reportFile = join(dir, "gpu-report.json");
    const samplesFile = join(dir, "gpu-samples.jsonl");
    const job = task.job;
    const cwd = job ? join(this.o.workDir, "queue") : join(dir, "work");
    const lease = { status: "running", attempt: task.attempt, leaseOwner: this.o.instanceId } as const;
    let end: AttemptEnd;
    let shipper: LogShipper | undefined;
    let inputDir: string | undefined;
    let gang: MetGang | undefined;
    // A gang member is told its gang task, not its row (core/gang.ts).
    const identity = contractIdentity(task, taskCount);
    try {
      await mkdir(outputDir, { recursive: true });
      await mkdir(checkpointDir, { recursive: true });
      if (job) await this.sharedQueueDir(cwd);
      else await linkTree(this.cwd, this.tree, cwd);
      await writeFile(paramsFile, JSON.stringify(task.params));
      let command: string;
      try {
        command = job
          ? job.command
          : renderCommand(spec.command, task.params, {
              index: identity.index,
              attempt: task.attempt,
              sweepId,
            });
      } catch (error) {
        command = `echo ${shellQuote(`spawn: ${(error as Error).message}`)} >&2; exit 2`;
      }
      // Live log for `spawn sweep logs --follow`, shipped in chunks while the task runs.
      shipper = new LogShipper({
        objects,
        prefix: logChunkPrefix(sweepId, task.index, task.attempt),
        file: logFile,
        intervalMs: this.o.logUploadMs ?? 2000,
      });
      shipper.start();
      const notes: string[] = [];
      if (job) {
        const fetched = await fetchDependencyResults({
          store,
          objects,
          sweep: this.sweep,
          task,
          dir: cwd,
          ranHere: this.ranHere,
        });
        if (fetched > 0) notes.push(`fetched ${fetched} result file(s) of jobs that ran on another instance`);
      }
      const stage = this.sweep.stage;
      if (stage?.inputs.length) {
        this.stageInputs ??= new StageInputs({
          store,
          objects,
          stage,
          cacheDir: join(this.o.workDir, "inputs"),
        });
        inputDir = await this.stageInputs.prepare(task.index, join(dir, "input"));
      }
      const restored = await this.restore(task, checkpointDir, join(dir, "restore"));
      for (const skip of restored.skipped)
        notes.push(`checkpoint ${skip.id} not restored: ${skip.reason}; trying an older one`);
      if (restored.manifest) {
        const m = restored.manifest;
        const at =
          m.step !== undefined ? `step ${m.step}, ` : m.epoch !== undefined ? `epoch ${m.epoch}, ` : "";
        notes.push(
          `restored checkpoint ${m.sweepId}/${m.index}/${m.id} (${at}${m.files.length} file(s), ${restored.bytes} bytes): SPAWN_RESUME=1`,
        );
      }
      const network = await networkPlan(spec.network);
      if (network.warning) notes.push(network.warning);
      const gpu = this.grantGpus(entry);
      if (gpu.warning) notes.push(gpu.warning);
      if (notes.length > 0) {
        await appendFile(logFile, notes.map((n) => `[spawn] ${n}\n`).join(""));
        for (const note of notes) log.info(note);
      }
      if (task.gang) {
        gang = await meetGang({
          store,
          clock,
          sweep: this.sweep,
          task: { ...task, gang: task.gang },
          instanceId: this.o.instanceId,
          provider: this.o.provider ?? "local",
          ...(this.o.imds ? { imds: this.o.imds } : {}),
          names: this.names,
          dir,
          logFile,
          log,
          signal: entry.abort.signal,
          onLeft: () => {
            entry.abortReason ??= "gang-restart";
            entry.abort.abort();
          },
        });
        if (!gang) return;
      }
      const env = taskEnvironment({
        sweepId,
        ...identity,
        ...(gang ? { gang: gang.contract } : {}),
        attempt: task.attempt,
        params: task.params,
        paramsFile,
        outputDir,
        checkpointDir,
        metricsFile,
        resume: restored.manifest !== undefined,
        specEnv: job ? { ...spec.env, ...job.env } : spec.env,
      });
      if (job) env.SPAWN_JOB_ID = job.id;
      if (inputDir) env.SPAWN_INPUT_DIR = inputDir;
      // Each attempt is a child span of the launch's trace (docs/dashboard.md, "Tracing").
      const launch = parseTraceparent(this.sweep.traceparent);
      if (launch) {
        env.SPAWN_TRACEPARENT = formatTraceparent(newTraceContext((n) => randomBytes(n), launch));
        log.info("task attempt traced", { traceparent: env.SPAWN_TRACEPARENT });
      }
      if (entry.grant) {
        env.CUDA_VISIBLE_DEVICES = entry.grant.devices.map((d) => d.id).join(",");
        Object.assign(env, this.gpus?.executor?.env);
      }
      // Under the executor, GPU budgets are enforced and the GPUs sampled for the task's trace.
      const executor = entry.grant && this.gpus?.executor;
      const budget = entry.grant ? budgetFor(entry.grant) : {};
      const wrapper = [
        ...(executor && entry.grant
          ? runArgv(executor.binary, {
              gpus: entry.grant.devices.map((d) => d.id),
              reportFile,
              samplesFile,
              ...budget,
            })
          : []),
        ...(network.wrapper ?? []),
      ];
      const sync = new CheckpointSync({
        objects,
        sweepId,
        index: task.index,
        attempt: task.attempt,
        dir: checkpointDir,
        stagingDir: join(dir, "staging"),
        ...(spec.checkpoint.bandwidth ? { bandwidth: spec.checkpoint.bandwidth } : {}),
        log,
        // Every sync is recorded on the task, under the lease: a later attempt anywhere finds it.
        onCommit: async (ref) => {
          await store
            .updateTask(sweepId, task.index, shardCount, lease, { checkpoint: ref, updatedAt: clock.now() })
            .catch((error) => {
              if (!(error instanceof ConditionFailedError)) throw error;
            });
        },
      });
      entry.sync = sync;
      sync.start(spec.checkpoint.interval);
      const timeout = job?.timeout ?? spec.timeout;
      const outcome = await runTask({
        command,
        cwd,
        env,
        logFile,
        ...(timeout !== undefined ? { timeoutMs: timeout } : {}),
        ...(wrapper.length ? { wrapper } : {}),
        graceMs: spec.grace,
        signal: entry.abort.signal,
      });
      gang?.stop();
      await sync.stop();
      const report = executor ? await readRunReport(reportFile).catch(() => undefined) : undefined;
      const overBudget = report?.reason === "gpu_memory_budget_exceeded";
      if (overBudget)
        log.warn("GPU memory budget exceeded", {
          limit: report.mem_limit_bytes,
          peak: report.peak_gpu_memory_bytes,
        });
      if (entry.abortReason === "lease-lost") {
        await shipper.finish().catch(() => undefined);
        log.warn("lease lost; result dropped");
        return;
      }
      // The task has exited: what its checkpoint dir holds now is complete. Synced after every
      // ending, so a preempted attempt resumes from its last state and a finished one can seed
      // another sweep (--resume-from).
      const checkpoint = await sync
        .sync({ final: true })
        .then(() => sync.committed)
        .catch((error) => {
          log.warn("final checkpoint sync failed", { error });
          return sync.committed;
        });
      await shipper.finish().catch((error) => log.warn("log upload failed", { error }));
      if (sync.stats.commits > 0) log.info("checkpoint sync", { ...sync.stats });
      // Another member ended the epoch and restarted the gang, which wrote this row already.
      if (entry.abortReason === "gang-restart") {
        log.info("gang restarted: attempt stopped, checkpoint synced");
        return;
      }
      if (entry.abortReason === "preempted") {
        end = { kind: "lost", reason: this.stopReason, preempted: true };
      } else if (entry.abortReason === "shutdown") {
        end = { kind: "lost", reason: `agent stopped: ${this.stopReason}` };
      } else if (entry.abortReason === "cancelled") {
        end = { kind: "cancelled", reason: "sweep cancelled" };
      } else {
        const final = await readFinalMetrics(metricsFile).catch(() => undefined);
        const kept = await collectOutputs({
          cwd,
          patterns: job ? job.result_paths : spec.outputs,
          outputDir,
          since: outcome.startedAt,
        });
        const prefix = outputsPrefix(sweepId, task.index);
        await Promise.all(kept.map((f) => objects.putFile(`${prefix}${f.rel}`, f.path)));
        const error =
          outcome.error ??
          (overBudget
            ? `GPU memory budget exceeded: the task held more than ${report.mem_limit_bytes} bytes on a GPU (resources.gpus: ${spec.resources.gpus}); stopped by spawn-executor`
            : undefined);
        end = {
          kind: "exit",
          exitCode: outcome.exitCode,
          signal: outcome.signal,
          timedOut: outcome.timedOut,
          durationMs: outcome.durationMs,
          ...(error ? { error } : {}),
          ...(final ? { metrics: final.metrics } : {}),
          ...(kept.length ? { outputs: kept.map((f) => `${prefix}${f.rel}`) } : {}),
        };
      }
      const warnings = [network.warning, gpu.warning, ...(report?.warnings ?? [])].filter(Boolean);
      const policy = job ? jobRetryPolicy(job.retry) : spec.retry;
      const closed = afterAttempt(task, policy, end, clock.now(), Math.random());
      const logTail = closed.status === "failed" ? await readLogTail(logFile) : undefined;
      const update = {
        ...closed,
        ...(checkpoint ? { checkpoint } : {}),
        ...(logTail !== undefined ? { logTail } : {}),
        warning: warnings.length ? warnings.join("; ") : null,
      };
      let written: TaskRecord | undefined;
      try {
        // A gang member's attempt that did not succeed ends its whole gang's epoch (core/gang.ts).
        if (task.gang && closed.status !== "succeeded" && end.kind !== "cancelled")
          await restartGang({ store, clock }, this.sweep, { ...task, gang: task.gang }, end);
        else written = await store.updateTask(sweepId, task.index, shardCount, lease, update);
      } catch (error) {
        if (!(error instanceof ConditionFailedError)) throw error;
        log.warn("lease lost before the result was written; result dropped");
      }
      if (written?.status === "succeeded" && job) this.ranHere.add(task.index);
      if (written) await publishTaskOutcome(this.o.events, log, written, clock.now());
      // Jobs waiting on this one start (or are cancelled) now rather than at the next reconcile.
      if (written?.dependents?.length && written.status !== "pending") {
        await settleDependents(store, this.sweep, written, clock.now()).catch((error) =>
          log.warn("settling dependent jobs failed; reconcile will", { error: (error as Error).message }),
        );
      }
      const gpuTrace = executor
        ? await traceTask(executor.binary, {
            samplesFile,
            reportFile,
            label: `task ${task.index}`,
            env: { ...process.env, ...executor.env },
          }).catch((error) => {
            log.warn("GPU trace failed", { error: (error as Error).message });
            return undefined;
          })
        : undefined;
      const trace = attemptTrace(
        {
          sweepId,
          instanceId: this.o.instanceId,
          taskIndex: task.index,
          attempt: task.attempt,
          slot,
          claimedAt,
          startedAt: outcome.startedAt,
          exitedAt: outcome.finishedAt,
          reportedAt: clock.now(),
          result: {
            outcome: end.kind,
            ...(end.kind === "exit"
              ? { exitCode: end.exitCode, signal: end.signal }
              : { reason: end.reason }),
            ...(entry.grant ? { gpus: entry.grant.devices.map((d) => d.id) } : {}),
            ...(overBudget ? { reason: "gpu_memory_budget_exceeded" } : {}),
          },
          ...(restored.manifest ? { marks: [{ at: claimedAt, name: "checkpoint restored" }] } : {}),
        },
        gpuTrace,
      );
      this.inBackground(
        objects
          .putBytes(taskTraceKey(sweepId, task.index, task.attempt), JSON.stringify(trace))
          .catch((error) => log.warn("trace upload failed", { error })),
      );
    } finally {
      gang?.stop();
      await shipper?.finish().catch(() => undefined);
      await entry.sync?.stop();
      if (entry.grant) this.gpus?.allocator.release(entry.grant);
      this.running.delete(task.index);
      if (inputDir) await thaw(inputDir).catch(() => undefined);
      await rm(dir, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /**
   * Gives the attempt its GPUs (when the spec asks for some and the instance has them), and says
   * plainly what is not enforced: a shared GPU without MPS, budgets without the executor.
   */
  private grantGpus(entry: Running): { warning?: string } {
    const share = this.sweep.spec.resources.gpus;
    const gpus = this.gpus;
    if (share <= 0 || !gpus) return {};
    const grant = gpus.allocator.acquire(share);
    // Slots never exceed what the GPUs hold, so a slot that gets here always finds its share.
    if (!grant) throw new Error(`no free GPU share of ${share} for task ${entry.task.index}`);
    entry.grant = grant;
    const names = grant.devices.map((d) => `GPU ${d.index} (${d.id})`).join(", ");
    if (!gpus.executor)
      return grant.shared
        ? {
            warning: `${names} is shared with other tasks without spawn-executor: no isolation and no memory budget`,
          }
        : {};
    if (!grant.shared) return {};
    const limit = budgetFor(grant).memLimitBytes;
    const memory = limit
      ? `its memory budget (${(limit / 2 ** 30).toFixed(1)} GiB) is enforced by spawn-executor`
      : "no memory budget (GPU memory size unknown)";
    return gpus.mps
      ? {}
      : { warning: `${names} is shared with other tasks without MPS: compute is not isolated; ${memory}` };
  }

  private inBackground(work: Promise<unknown>): void {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }

  /**
   * Before an attempt starts: the newest complete checkpoint of this task (any earlier attempt,
   * any instance), else the `resume_from` seed. A first attempt has no checkpoints of its own.
   */
  private async restore(task: TaskRecord, dir: string, scratch: string): Promise<RestoreResult> {
    const { objects } = this.o;
    const { sweepId, spec } = this.sweep;
    let own: RestoreResult = { bytes: 0, skipped: [] };
    if (task.attempt > 1 || task.checkpoint) {
      own = await restoreCheckpoint(objects, { sweepId, index: task.index }, dir, scratch);
      if (own.manifest) return own;
    }
    if (!spec.resume_from) return own;
    const seed = await restoreCheckpoint(objects, parseResumeFrom(spec.resume_from), dir, scratch);
    return { ...seed, skipped: [...own.skipped, ...seed.skipped] };
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

  /** Renews the instance heartbeat and every lease; notices lost leases; samples machine load. */
  private async heartbeat(): Promise<void> {
    const { store, clock, instanceId } = this.o;
    const { sweepId, shardCount, spec } = this.sweep;
    const now = clock.now();
    void this.sampleLoad();
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
            r.abortReason ??= r.task.gang ? "gang-restart" : "lease-lost";
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
