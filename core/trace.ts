/**
 * Sweep timelines: merges the per-task Chrome / Perfetto trace JSON that
 * `spawn-executor trace` writes (one per task attempt) into one trace for the whole sweep,
 * with one process per instance and one thread (track) per GPU, for ui.perfetto.dev or
 * chrome://tracing. Pure: the caller reads the task traces and writes the result.
 *
 * Executor convention (docs/executor.md): in a task trace, pid is 1, tid 0 carries lifecycle
 * instants, tid = NVML index + 1 carries the task's slice on that GPU, and counters are named
 * "GPU <index> <metric>". Timestamps are microseconds since the Unix epoch, so traces from
 * different instances line up without rebasing.
 */
import { z } from "zod";

/** One trace event (the subset of the Trace Event Format the executor writes). */
export const TraceEvent = z.looseObject({
  ph: z.string().min(1),
  name: z.string(),
  pid: z.number().int(),
  tid: z.number().int().optional(),
  ts: z.number().optional(),
  dur: z.number().optional(),
  cat: z.string().optional(),
  s: z.string().optional(),
  args: z.record(z.string(), z.unknown()).optional(),
});
export type TraceEvent = z.infer<typeof TraceEvent>;

/** A trace document in the JSON Object Format. */
export const ChromeTrace = z.object({
  traceEvents: z.array(TraceEvent),
  displayTimeUnit: z.enum(["ms", "ns"]).optional(),
  otherData: z.record(z.string(), z.unknown()).optional(),
});
export type ChromeTrace = z.infer<typeof ChromeTrace>;

/** One task attempt's trace and where it ran. */
export interface TaskTrace {
  instanceId: string;
  taskIndex: number;
  attempt: number;
  trace: ChromeTrace;
}

/** Thread ids of extra lanes for a GPU whose task slices overlap (tasks sharing it under MPS). */
const LANE_STRIDE = 1000;

/**
 * Merges task traces into one sweep trace. Instances become processes (pids 1..n in instance-id
 * order, named by instance id); each GPU keeps its thread. Task slices are renamed
 * `task <index> #<attempt>`; when two slices on one GPU overlap (fractional GPUs under MPS),
 * the later one moves to an extra lane `GPU n · lane k`, since a track must hold properly
 * nested slices. Counter samples repeated by tasks that shared a GPU are kept once.
 */
export function mergeTaskTraces(sweepId: string, tasks: readonly TaskTrace[]): ChromeTrace {
  const instances = [...new Set(tasks.map((t) => t.instanceId))].sort();
  const pidOf = new Map(instances.map((id, i) => [id, i + 1]));
  const threadNames = new Map<string, string>(); // `${pid}:${tid}` → name
  const counters = new Set<string>();
  const slices: TraceEvent[] = [];
  const others: TraceEvent[] = [];

  for (const task of tasks) {
    const pid = pidOf.get(task.instanceId)!;
    const label = `task ${task.taskIndex} #${task.attempt}`;
    for (const event of task.trace.traceEvents) {
      if (event.ph === "M") {
        if (event.name === "thread_name" && event.tid !== undefined && event.tid !== 0) {
          threadNames.set(`${pid}:${event.tid}`, String(event.args?.name ?? `tid ${event.tid}`));
        }
        continue; // process names are the instance ids; task lifecycle tracks are renamed below
      }
      if (event.ph === "C") {
        const key = `${pid}\u0000${event.name}\u0000${event.ts}`;
        if (counters.has(key)) continue;
        counters.add(key);
        others.push({ ...event, pid });
      } else if (event.ph === "X") {
        slices.push({
          ...event,
          pid,
          name: label,
          args: { ...event.args, task: task.taskIndex, attempt: task.attempt },
        });
      } else {
        others.push({ ...event, pid, name: `${label}: ${event.name}` });
      }
    }
  }

  // Lane assignment, earliest slice first, per (instance, GPU).
  slices.sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
  const laneEnds = new Map<string, number[]>();
  for (const slice of slices) {
    const tid = slice.tid ?? 0;
    const key = `${slice.pid}:${tid}`;
    const ends = laneEnds.get(key) ?? [];
    const start = slice.ts ?? 0;
    let lane = ends.findIndex((end) => end <= start);
    if (lane === -1) lane = ends.length;
    ends[lane] = start + (slice.dur ?? 0);
    laneEnds.set(key, ends);
    if (lane > 0) {
      slice.tid = tid + lane * LANE_STRIDE;
      const base = threadNames.get(key) ?? `tid ${tid}`;
      threadNames.set(`${slice.pid}:${slice.tid}`, `${base} · lane ${lane + 1}`);
    }
  }

  const metadata: TraceEvent[] = [];
  for (const [id, pid] of pidOf) {
    metadata.push({ ph: "M", name: "process_name", pid, tid: 0, args: { name: id } });
    metadata.push({ ph: "M", name: "thread_name", pid, tid: 0, args: { name: "lifecycle" } });
  }
  for (const [key, name] of [...threadNames].sort()) {
    const [pid, tid] = key.split(":").map(Number) as [number, number];
    metadata.push({ ph: "M", name: "thread_name", pid, tid, args: { name } });
  }
  const events = [...slices, ...others].sort((a, b) => (a.ts ?? 0) - (b.ts ?? 0));
  return {
    traceEvents: [...metadata, ...events],
    displayTimeUnit: "ms",
    otherData: { sweepId, instances: instances.length, tasks: tasks.length },
  };
}
