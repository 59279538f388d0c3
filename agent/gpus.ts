/**
 * The GPUs of an instance as the agent uses them: which devices each task gets (task slots come
 * from the executor's probe), the budget a shared GPU runs under, and what the GPUs are doing,
 * from the executor's `sample` stream: utilization for the idle check, memory-pressure
 * crossings, and the per-GPU utilization series the dashboard draws (docs/agent.md, "GPUs").
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { SampleLine } from "./executor.js";
import type { GpuUtilization } from "./idle.js";

/** One GPU a task can be given. */
export interface GpuDevice {
  index: number;
  /** What goes into CUDA_VISIBLE_DEVICES: the UUID from the probe (indices are renumbered under MPS). */
  id: string;
  memoryTotalBytes?: number;
}

/** The GPUs one task attempt holds. */
export interface GpuGrant {
  devices: GpuDevice[];
  /** `resources.gpus`: GPUs per task (0.25, 0.5, or a whole number). */
  share: number;
  /** A fraction of a GPU: other tasks may run on the same device. */
  shared: boolean;
}

/** Shares are counted in thousandths of a GPU, so 0.25 + 0.25 + 0.5 adds up exactly. */
const WHOLE = 1000;
const units = (share: number) => Math.round(share * WHOLE);

/**
 * Hands out GPUs to tasks: a whole-GPU task gets `share` devices no one else uses; fractional
 * tasks are packed best-fit, so two `gpus: 0.5` tasks share one device before a second is used.
 */
export class GpuAllocator {
  private readonly used = new Map<string, number>();

  constructor(readonly devices: readonly GpuDevice[]) {
    for (const d of devices) this.used.set(d.id, 0);
  }

  /** How many tasks of `share` GPUs fit at once (0 when a task needs more GPUs than there are). */
  capacity(share: number): number {
    if (share <= 0) return 0;
    if (share >= 1) return Math.floor(this.devices.length / Math.ceil(share));
    return this.devices.length * Math.floor(WHOLE / units(share));
  }

  /** Takes devices for one task; undefined when they are all taken. */
  acquire(share: number): GpuGrant | undefined {
    if (share >= 1) {
      const free = this.devices.filter((d) => this.used.get(d.id) === 0).slice(0, Math.ceil(share));
      if (free.length < Math.ceil(share)) return undefined;
      for (const d of free) this.used.set(d.id, WHOLE);
      return { devices: free, share, shared: false };
    }
    const need = units(share);
    let best: GpuDevice | undefined;
    for (const d of this.devices) {
      const used = this.used.get(d.id) ?? 0;
      if (WHOLE - used < need) continue;
      if (!best || used > (this.used.get(best.id) ?? 0)) best = d;
    }
    if (!best) return undefined;
    this.used.set(best.id, (this.used.get(best.id) ?? 0) + need);
    return { devices: [best], share, shared: true };
  }

  release(grant: GpuGrant): void {
    const each = grant.shared ? units(grant.share) : WHOLE;
    for (const d of grant.devices) this.used.set(d.id, Math.max(0, (this.used.get(d.id) ?? 0) - each));
  }
}

/** What `spawn-executor run` is asked to enforce for one grant. */
export interface GpuBudget {
  /** Per GPU: a fractional task may hold at most its share of the device's memory. */
  memLimitBytes?: number;
  /** MPS active thread percentage: its share of the SMs (applied only when an MPS daemon runs). */
  smPercent?: number;
}

/**
 * The budget policy: a task with whole GPUs owns them and runs unlimited; a task with a fraction
 * gets that fraction of the device's memory (0.5 of an 80 GiB GPU: 40 GiB) and of its SMs.
 */
export function budgetFor(grant: GpuGrant): GpuBudget {
  if (!grant.shared) return {};
  const total = grant.devices[0]?.memoryTotalBytes;
  return {
    ...(total ? { memLimitBytes: Math.floor(total * grant.share) } : {}),
    smPercent: Math.max(1, Math.round(grant.share * 100)),
  };
}

/** Whether an MPS control daemon runs (the same test the executor makes). */
export function mpsRunning(env: NodeJS.ProcessEnv = process.env): boolean {
  return existsSync(join(env.CUDA_MPS_PIPE_DIRECTORY || "/tmp/nvidia-mps", "control"));
}

/** A GPU crossed the memory-pressure threshold. */
export interface MemoryPressure {
  index: number;
  uuid: string;
  usedBytes: number;
  totalBytes: number;
  /** Epoch ms of the sample. */
  at: number;
}

/** Memory in use at or above this share of a GPU is pressure. */
export const MEMORY_PRESSURE_AT = 0.95;
/** A GPU must fall below this again before another crossing is reported (no flapping at 95%). */
export const MEMORY_PRESSURE_REARM = 0.9;

/** The per-GPU utilization series one instance uploads for the dashboard (`gpuSeriesKey`). */
export const GpuSeries = z.object({
  schema: z.literal(1),
  type: z.literal("gpu-series"),
  sweepId: z.string(),
  instanceId: z.string(),
  /** Width of each bucket. */
  bucketSeconds: z.number().positive(),
  /** The GPUs, in the order of the rows below. */
  gpus: z.array(z.object({ index: z.number().int(), uuid: z.string() })),
  /** Start of each bucket, epoch seconds, ascending. */
  t: z.array(z.number()),
  /** `utilization[g][k]`: GPU g's mean utilization.gpu (%) over bucket k; null when it had no sample. */
  utilization: z.array(z.array(z.number().nullable())),
  /** `memory[g][k]`: GPU g's highest memory use (% of its total) in bucket k. */
  memory: z.array(z.array(z.number().nullable())),
  /** Memory-pressure crossings (see MEMORY_PRESSURE_AT), oldest first. */
  pressure: z.array(z.object({ t: z.number(), index: z.number().int(), uuid: z.string(), pct: z.number() })),
});
export type GpuSeries = z.infer<typeof GpuSeries>;

/** Object-store key of an instance's GPU utilization series. */
export function gpuSeriesKey(sweepId: string, instanceId: string): string {
  return `logs/${sweepId}/gpu/${instanceId}.json`;
}

interface Bucket {
  start: number;
  util: Map<string, { sum: number; n: number }>;
  memory: Map<string, number>;
}

export interface GpuTelemetryOptions {
  sweepId: string;
  instanceId: string;
  /** @default 10 s */
  bucketMs?: number;
  /** Oldest buckets are dropped past this many. @default 8640 (24 h of 10 s buckets) */
  maxBuckets?: number;
  onPressure?(pressure: MemoryPressure): void;
}

/**
 * Everything the agent derives from the executor's sample lines. NVML's utilization is already
 * per sample window (the share of it in which a kernel ran), never a cumulative counter; the idle
 * check gets the mean of the samples since it last asked.
 */
export class GpuTelemetry implements GpuUtilization {
  private readonly gpus = new Map<string, number>();
  private readonly since = new Map<string, { sum: number; n: number }>();
  private readonly unarmed = new Set<string>();
  private readonly buckets: Bucket[] = [];
  private readonly pressure: GpuSeries["pressure"] = [];
  private changed = false;

  constructor(private readonly o: GpuTelemetryOptions) {}

  observe(sample: SampleLine): void {
    const at = Math.floor(sample.ts_us / 1000);
    const bucketMs = this.o.bucketMs ?? 10_000;
    const start = at - (at % bucketMs);
    let bucket = this.buckets.at(-1);
    if (!bucket || bucket.start < start) {
      bucket = { start, util: new Map(), memory: new Map() };
      this.buckets.push(bucket);
      if (this.buckets.length > (this.o.maxBuckets ?? 8640)) this.buckets.shift();
    }
    for (const gpu of sample.gpus) {
      this.gpus.set(gpu.uuid, gpu.index);
      const util = gpu.utilization_gpu_pct;
      if (util !== null) {
        for (const acc of [this.since, bucket.util]) {
          const a = acc.get(gpu.uuid) ?? { sum: 0, n: 0 };
          acc.set(gpu.uuid, { sum: a.sum + util, n: a.n + 1 });
        }
      }
      const used = gpu.memory_used_bytes;
      const total = gpu.memory_total_bytes;
      if (used === null || !total) continue;
      const share = used / total;
      bucket.memory.set(gpu.uuid, Math.max(bucket.memory.get(gpu.uuid) ?? 0, share * 100));
      if (share >= MEMORY_PRESSURE_AT && !this.unarmed.has(gpu.uuid)) {
        this.unarmed.add(gpu.uuid);
        this.pressure.push({ t: at / 1000, index: gpu.index, uuid: gpu.uuid, pct: round1(share * 100) });
        this.o.onPressure?.({ index: gpu.index, uuid: gpu.uuid, usedBytes: used, totalBytes: total, at });
      } else if (share < MEMORY_PRESSURE_REARM) this.unarmed.delete(gpu.uuid);
    }
    this.changed = true;
  }

  /** The busiest GPU's mean utilization (0–1) since the last call; undefined without samples. */
  async sample(): Promise<number | undefined> {
    if (this.since.size === 0) return undefined;
    const busiest = Math.max(...[...this.since.values()].map((a) => a.sum / a.n));
    this.since.clear();
    return busiest / 100;
  }

  /** Whether samples came in since the last `series()`. */
  get dirty(): boolean {
    return this.changed;
  }

  series(): GpuSeries {
    this.changed = false;
    const gpus = [...this.gpus].map(([uuid, index]) => ({ index, uuid })).sort((a, b) => a.index - b.index);
    const row = (value: (b: Bucket, uuid: string) => number | undefined) =>
      gpus.map((g) => this.buckets.map((b) => round1(value(b, g.uuid))));
    return {
      schema: 1,
      type: "gpu-series",
      sweepId: this.o.sweepId,
      instanceId: this.o.instanceId,
      bucketSeconds: (this.o.bucketMs ?? 10_000) / 1000,
      gpus,
      t: this.buckets.map((b) => b.start / 1000),
      utilization: row((b, uuid) => {
        const a = b.util.get(uuid);
        return a ? a.sum / a.n : undefined;
      }),
      memory: row((b, uuid) => b.memory.get(uuid)),
      pressure: [...this.pressure],
    };
  }
}

function round1(value: number): number;
function round1(value: number | undefined): number | null;
function round1(value: number | undefined): number | null {
  return value === undefined ? null : Math.round(value * 10) / 10;
}
