import { describe, expect, it } from "vitest";
import { CpuSampler, parseProcStat } from "./idle.js";

const stat = (user: number, idle: number) => `cpu  ${user} 0 0 ${idle} 0 0 0 0 0 0\ncpu0 1 2 3 4\n`;

describe("CpuSampler", () => {
  it("reports the busy share of each interval, not of the machine's lifetime", async () => {
    // Given: a machine that was busy for a long time, then goes quiet
    const readings = [stat(1_000_000, 10), stat(1_000_010, 1000), stat(1_000_510, 1500)];
    const cpu = new CpuSampler(async () => readings.shift() ?? "");

    // Then: the first sample has nothing to compare with; the next ones are per-interval deltas
    expect(await cpu.sample()).toBeUndefined();
    expect(await cpu.sample()).toBeCloseTo(10 / 1000, 5); // a cumulative counter would say ~99.9%
    expect(await cpu.sample()).toBeCloseTo(0.5, 5);
  });

  it("counts iowait as idle and ignores a missing /proc", async () => {
    expect(parseProcStat("cpu  10 0 10 70 10 0 0 0 0 0")).toEqual({ busy: 20, total: 100 });
    expect(parseProcStat("")).toBeUndefined();
    expect(await new CpuSampler(async () => Promise.reject(new Error("no /proc"))).sample()).toBeUndefined();
  });
});
