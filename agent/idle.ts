/**
 * Machine load for the idle check, from per-interval deltas: the CPU share busy since the last
 * sample (from /proc/stat's aggregate line), never a cumulative counter, which would make a
 * machine that was busy once look busy forever (a lesson from the original spawn).
 */
import { readFile } from "node:fs/promises";

/** Busy and total jiffies from the `cpu` line of /proc/stat. */
export function parseProcStat(text: string): { busy: number; total: number } | undefined {
  const line = text.split("\n").find((l) => l.startsWith("cpu "));
  if (!line) return undefined;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  if (v.length < 4 || v.some((n) => !Number.isFinite(n))) return undefined;
  // user nice system idle iowait irq softirq steal (guest is included in user already)
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export class CpuSampler {
  private last: { busy: number; total: number } | undefined;

  constructor(private readonly read: () => Promise<string> = () => readFile("/proc/stat", "utf8")) {}

  /** CPU busy fraction (0–1) since the previous call; undefined on the first call or without /proc. */
  async sample(): Promise<number | undefined> {
    const now = parseProcStat(await this.read().catch(() => ""));
    if (!now) return undefined;
    const prev = this.last;
    this.last = now;
    if (!prev || now.total <= prev.total) return undefined;
    return (now.busy - prev.busy) / (now.total - prev.total);
  }
}

/** GPU utilization (0–1, the busiest GPU) over the last interval; the executor provides it where present. */
export interface GpuUtilization {
  sample(): Promise<number | undefined>;
}
