import { describe, expect, it } from "vitest";
import type { SampleLine } from "./executor.js";
import { budgetFor, GpuAllocator, type GpuDevice, GpuTelemetry, type MemoryPressure } from "./gpus.js";

const GiB = 2 ** 30;
const devices = (n: number): GpuDevice[] =>
  Array.from({ length: n }, (_, index) => ({ index, id: `GPU-${index}`, memoryTotalBytes: 80 * GiB }));

const line = (tsMs: number, gpus: Array<{ util: number; usedGiB: number }>): SampleLine => ({
  schema: 1,
  type: "sample",
  ts_us: tsMs * 1000,
  gpus: gpus.map((g, index) => ({
    index,
    uuid: `GPU-${index}`,
    utilization_gpu_pct: g.util,
    utilization_memory_pct: 0,
    memory_used_bytes: g.usedGiB * GiB,
    memory_total_bytes: 80 * GiB,
    power_w: 100,
    temperature_c: 40,
    sm_clock_mhz: 1980,
    processes: [],
  })),
});

describe("GpuAllocator", () => {
  it("gives whole-GPU tasks their own devices: 8 slots of 1, 4 of 2, none of 16", () => {
    const gpus = new GpuAllocator(devices(8));
    expect([gpus.capacity(1), gpus.capacity(2), gpus.capacity(16)]).toEqual([8, 4, 0]);
    const a = gpus.acquire(2)!;
    const b = gpus.acquire(2)!;
    expect(a.devices.map((d) => d.id)).toEqual(["GPU-0", "GPU-1"]);
    expect(b.devices.map((d) => d.id)).toEqual(["GPU-2", "GPU-3"]);
    gpus.acquire(2);
    gpus.acquire(2);
    expect(gpus.acquire(1)).toBeUndefined();
    gpus.release(a);
    expect(gpus.acquire(1)?.devices.map((d) => d.id)).toEqual(["GPU-0"]);
  });

  it("packs fractions onto one GPU before using the next", () => {
    const gpus = new GpuAllocator(devices(2));
    expect([gpus.capacity(0.5), gpus.capacity(0.25)]).toEqual([4, 8]);
    const ids = Array.from({ length: 4 }, () => gpus.acquire(0.5)!.devices[0]!.id);
    expect(ids).toEqual(["GPU-0", "GPU-0", "GPU-1", "GPU-1"]);
    expect(gpus.acquire(0.5)).toBeUndefined();
    // A whole-GPU task cannot have a half-used device
    const quarter = new GpuAllocator(devices(1));
    quarter.acquire(0.25);
    expect(quarter.acquire(1)).toBeUndefined();
  });
});

describe("budgetFor", () => {
  it("limits a fractional task to its share of the memory and SMs, and leaves whole GPUs unlimited", () => {
    const gpus = new GpuAllocator(devices(1));
    expect(budgetFor(gpus.acquire(0.5)!)).toEqual({ memLimitBytes: 40 * GiB, smPercent: 50 });
    expect(budgetFor(new GpuAllocator(devices(1)).acquire(1)!)).toEqual({});
  });
});

describe("GpuTelemetry", () => {
  it("reports the busiest GPU's utilization over each interval, not since boot", async () => {
    const t = new GpuTelemetry({ sweepId: "s", instanceId: "i" });
    expect(await t.sample()).toBeUndefined();
    t.observe(
      line(1000, [
        { util: 100, usedGiB: 1 },
        { util: 0, usedGiB: 1 },
      ]),
    );
    t.observe(
      line(2000, [
        { util: 80, usedGiB: 1 },
        { util: 20, usedGiB: 1 },
      ]),
    );
    expect(await t.sample()).toBeCloseTo(0.9);
    // A quiet interval after a busy one reads quiet
    t.observe(
      line(3000, [
        { util: 0, usedGiB: 1 },
        { util: 2, usedGiB: 1 },
      ]),
    );
    expect(await t.sample()).toBeCloseTo(0.02);
    expect(await t.sample()).toBeUndefined();
  });

  it("reports memory pressure once per crossing of 95%, re-armed below 90%", () => {
    const seen: MemoryPressure[] = [];
    const t = new GpuTelemetry({ sweepId: "s", instanceId: "i", onPressure: (p) => seen.push(p) });
    for (const usedGiB of [70, 77, 78, 79, 74, 77, 70, 77]) t.observe(line(1000, [{ util: 50, usedGiB }]));
    // 77/80 = 96%: crossings at the 2nd and 8th samples; 74 (92.5%) does not re-arm
    expect(seen.map((p) => p.usedBytes / GiB)).toEqual([77, 77]);
    expect(t.series().pressure).toHaveLength(2);
  });

  it("buckets the series: mean utilization and peak memory per GPU per bucket", () => {
    const t = new GpuTelemetry({ sweepId: "s", instanceId: "i", bucketMs: 10_000 });
    t.observe(line(100_000, [{ util: 10, usedGiB: 8 }]));
    t.observe(line(105_000, [{ util: 30, usedGiB: 40 }]));
    t.observe(line(110_000, [{ util: 50, usedGiB: 20 }]));
    expect(t.dirty).toBe(true);
    const s = t.series();
    expect(s).toMatchObject({
      t: [100, 110],
      utilization: [[20, 50]],
      memory: [[50, 25]],
      bucketSeconds: 10,
    });
    expect(t.dirty).toBe(false);
  });
});
