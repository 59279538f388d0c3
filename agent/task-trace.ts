/**
 * One task attempt's timeline, uploaded by the agent for `spawn sweep trace`: the attempt's
 * lifecycle as the agent saw it (a slice on its slot's track, from claim to report, with
 * instants for what happened in between), plus, when the task ran on GPUs under the executor,
 * the executor's own trace (a slice per GPU and the GPU counters). The document is a Chrome /
 * Perfetto trace on its own; `otherData` says where it ran, for core/trace.ts mergeTaskTraces.
 */
import { z } from "zod";
import { ChromeTrace, type TaskTrace, type TraceEvent } from "#core/trace.js";

/** Object-store prefix of a sweep's task traces. */
export function taskTracePrefix(sweepId: string): string {
  return `logs/${sweepId}/traces/`;
}

/** Object-store key of one attempt's trace. */
export function taskTraceKey(sweepId: string, index: number, attempt: number): string {
  return `${taskTracePrefix(sweepId)}${index}-${attempt}.json`;
}

/**
 * Slot tracks sit far above the executor's GPU tracks (tid = NVML index + 1) and their overlap
 * lanes (core/trace.ts adds multiples of 1000), so the two never share a tid.
 */
export const SLOT_TID_BASE = 1_000_000;

/** Where an attempt ran, carried in the trace's `otherData`. */
export const TaskTraceOrigin = z.object({
  sweepId: z.string(),
  instanceId: z.string(),
  taskIndex: z.number().int().nonnegative(),
  attempt: z.number().int().min(1),
  slot: z.number().int().nonnegative(),
});
export type TaskTraceOrigin = z.infer<typeof TaskTraceOrigin>;

export interface AttemptLifecycle extends TaskTraceOrigin {
  /** Epoch ms: claimed, command started, command exited, result reported. */
  claimedAt: number;
  startedAt?: number;
  exitedAt?: number;
  reportedAt: number;
  /** What the slice's args show: exit code, outcome, GPUs, ... */
  result: Record<string, unknown>;
  /** Extra instants (checkpoint restored, budget exceeded, ...), epoch ms. */
  marks?: readonly { at: number; name: string }[];
}

const us = (ms: number) => Math.round(ms * 1000);

/** The attempt's trace: its lifecycle, merged with the executor's GPU trace when there is one. */
export function attemptTrace(life: AttemptLifecycle, gpu?: ChromeTrace): ChromeTrace {
  const { sweepId, instanceId, taskIndex, attempt, slot } = life;
  const pid = 1;
  const tid = SLOT_TID_BASE + slot;
  const instant = (name: string, at: number): TraceEvent => ({ ph: "i", s: "t", name, pid, tid, ts: us(at) });
  const events: TraceEvent[] = [
    { ph: "M", name: "process_name", pid, tid: 0, args: { name: instanceId } },
    { ph: "M", name: "thread_name", pid, tid, args: { name: `slot ${slot}` } },
    {
      ph: "X",
      cat: "task",
      name: `task ${taskIndex} #${attempt}`,
      pid,
      tid,
      ts: us(life.claimedAt),
      dur: Math.max(1, us(life.reportedAt) - us(life.claimedAt)),
      args: life.result,
    },
    instant("claimed", life.claimedAt),
    ...(life.startedAt !== undefined ? [instant("started", life.startedAt)] : []),
    ...(life.marks ?? []).map((m) => instant(m.name, m.at)),
    ...(life.exitedAt !== undefined ? [instant("exited", life.exitedAt)] : []),
    instant("reported", life.reportedAt),
  ];
  return {
    traceEvents: [...events, ...(gpu?.traceEvents ?? [])],
    displayTimeUnit: "ms",
    otherData: { ...gpu?.otherData, sweepId, instanceId, taskIndex, attempt, slot },
  };
}

/** Reads an uploaded attempt trace back for merging; throws naming what is wrong. */
export function parseTaskTrace(json: unknown): TaskTrace {
  const trace = ChromeTrace.parse(json);
  const origin = TaskTraceOrigin.parse(trace.otherData);
  return { instanceId: origin.instanceId, taskIndex: origin.taskIndex, attempt: origin.attempt, trace };
}
