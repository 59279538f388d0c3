import { describe, expect, it } from "vitest";
import { ChromeTrace, mergeTaskTraces, type TaskTrace, type TraceEvent } from "./trace.js";

/** A task trace shaped like `spawn-executor trace` output: GPU 0 (tid 1) and lifecycle (tid 0). */
function taskTrace(start: number, end: number, gpuIndex = 0): ChromeTrace {
  const tid = gpuIndex + 1;
  return ChromeTrace.parse({
    traceEvents: [
      { ph: "M", name: "process_name", pid: 1, tid: 0, args: { name: "task" } },
      { ph: "M", name: "thread_name", pid: 1, tid: 0, args: { name: "task lifecycle" } },
      { ph: "M", name: "thread_name", pid: 1, tid, args: { name: `GPU ${gpuIndex} GPU-aaaa` } },
      { ph: "C", name: `GPU ${gpuIndex} utilization`, pid: 1, tid: 0, ts: start, args: { gpu_pct: 90 } },
      { ph: "X", name: "task", cat: "task", pid: 1, tid, ts: start, dur: end - start, args: { status: 0 } },
      { ph: "i", s: "p", name: "exit", cat: "lifecycle", pid: 1, tid: 0, ts: end, args: { status: 0 } },
    ],
    displayTimeUnit: "ms",
  });
}

const slicesOf = (events: TraceEvent[]) => events.filter((e) => e.ph === "X");
const threadName = (events: TraceEvent[], pid: number, tid: number) =>
  events.find((e) => e.ph === "M" && e.name === "thread_name" && e.pid === pid && e.tid === tid)?.args?.name;

describe("mergeTaskTraces", () => {
  it("gives each instance a process and keeps one track per GPU", () => {
    // Given two instances, each running one task on its GPU 0
    const tasks: TaskTrace[] = [
      { instanceId: "i-b", taskIndex: 1, attempt: 1, trace: taskTrace(2_000, 5_000) },
      { instanceId: "i-a", taskIndex: 0, attempt: 1, trace: taskTrace(1_000, 4_000) },
    ];

    // When they are merged
    const merged = mergeTaskTraces("sw-1", tasks);

    // Then instances are pids 1 and 2 in id order, named by id, and the result is a valid trace
    expect(ChromeTrace.parse(merged)).toEqual(merged);
    const processes = merged.traceEvents.filter((e) => e.name === "process_name");
    expect(processes.map((p) => [p.pid, p.args?.name])).toEqual([
      [1, "i-a"],
      [2, "i-b"],
    ]);
    expect(threadName(merged.traceEvents, 1, 1)).toBe("GPU 0 GPU-aaaa");
    const slices = slicesOf(merged.traceEvents);
    expect(slices.map((s) => [s.pid, s.tid, s.name])).toEqual([
      [1, 1, "task 0 #1"],
      [2, 1, "task 1 #1"],
    ]);
    expect(merged.traceEvents.find((e) => e.ph === "i")?.name).toBe("task 0 #1: exit");
    expect(merged.otherData).toEqual({ sweepId: "sw-1", instances: 2, tasks: 2 });
  });

  it("moves overlapping slices on one GPU to extra lanes and reuses a lane once it is free", () => {
    // Given three tasks on the same GPU of one instance: two overlap, the third starts later
    const tasks: TaskTrace[] = [
      { instanceId: "i-a", taskIndex: 0, attempt: 1, trace: taskTrace(1_000, 4_000) },
      { instanceId: "i-a", taskIndex: 1, attempt: 1, trace: taskTrace(2_000, 3_000) },
      { instanceId: "i-a", taskIndex: 2, attempt: 2, trace: taskTrace(4_000, 6_000) },
    ];

    // When merged
    const merged = mergeTaskTraces("sw-1", tasks);

    // Then the overlapping one sits on lane 2 and the later one back on lane 1
    const slices = slicesOf(merged.traceEvents);
    expect(slices.map((s) => [s.name, s.tid])).toEqual([
      ["task 0 #1", 1],
      ["task 1 #1", 1001],
      ["task 2 #2", 1],
    ]);
    expect(threadName(merged.traceEvents, 1, 1001)).toBe("GPU 0 GPU-aaaa · lane 2");
  });

  it("keeps a counter sample once when tasks sharing a GPU both recorded it", () => {
    // Given two tasks on one GPU whose samplers wrote the same sample
    const tasks: TaskTrace[] = [
      { instanceId: "i-a", taskIndex: 0, attempt: 1, trace: taskTrace(1_000, 4_000) },
      { instanceId: "i-a", taskIndex: 1, attempt: 1, trace: taskTrace(1_000, 3_000) },
    ];

    // When merged
    const merged = mergeTaskTraces("sw-1", tasks);

    // Then one counter event remains, and events are in time order after the metadata
    expect(merged.traceEvents.filter((e) => e.ph === "C")).toHaveLength(1);
    const timed = merged.traceEvents.filter((e) => e.ph !== "M").map((e) => e.ts ?? 0);
    expect(timed).toEqual([...timed].sort((a, b) => a - b));
  });

  it("rejects a document that is not a trace", () => {
    expect(() => ChromeTrace.parse({ traceEvents: [{ ph: "X", pid: "one" }] })).toThrow();
  });
});
