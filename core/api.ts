/**
 * The dashboard API's shapes: one zod schema per response and event, shared by the server
 * (cli/services/dashboard) and the browser UI (dashboard/), which validates what it receives.
 * Also the compact task-state encoding that keeps a 10,000-task sweep's grid at ~10 KB, and
 * the W3C `traceparent` helpers. Pure: no I/O, safe to bundle for the browser.
 */
import { z } from "zod";
import { Placement, SweepStatus, type TaskRecord, TaskStatus } from "./model.js";
import { ParamValue } from "./spec.js";

/** One character per task status: the grid and its live deltas are sent as these. */
export const TASK_STATE_CODE = {
  pending: "p",
  running: "r",
  succeeded: "s",
  failed: "f",
  cancelled: "c",
} as const satisfies Record<TaskStatus, string>;
export type TaskStateCode = (typeof TASK_STATE_CODE)[TaskStatus];
export const TaskStateCode = z.enum(["p", "r", "s", "f", "c"]);

const STATUS_OF_CODE = Object.fromEntries(
  Object.entries(TASK_STATE_CODE).map(([status, code]) => [code, status]),
) as Record<TaskStateCode, TaskStatus>;

/** The status a state code stands for. */
export function statusOfCode(code: TaskStateCode): TaskStatus {
  return STATUS_OF_CODE[code];
}

/**
 * Every task's state as one string, character `i` for task `i`. Indexes without a task
 * (none in a well-formed sweep) read as pending.
 */
export function encodeTaskStates(
  tasks: readonly Pick<TaskRecord, "index" | "status">[],
  taskCount: number,
): string {
  const codes = new Array<string>(taskCount).fill(TASK_STATE_CODE.pending);
  for (const t of tasks) if (t.index < taskCount) codes[t.index] = TASK_STATE_CODE[t.status];
  return codes.join("");
}

/** Task counts by status. */
export const StatusCounts = z.object({
  pending: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  cancelled: z.number().int().nonnegative(),
});
export type StatusCounts = z.infer<typeof StatusCounts>;

/** Counts from a state string. */
export function countStates(states: string): StatusCounts {
  const counts: StatusCounts = { pending: 0, running: 0, succeeded: 0, failed: 0, cancelled: 0 };
  for (let i = 0; i < states.length; i++) {
    const status = STATUS_OF_CODE[states[i] as TaskStateCode];
    if (status) counts[status]++;
  }
  return counts;
}

const epochMs = z.number();

/** A row of the sweeps list (`GET /api/sweeps`). */
export const SweepSummary = z.object({
  sweepId: z.string(),
  name: z.string(),
  owner: z.string(),
  provider: z.string(),
  status: SweepStatus,
  taskCount: z.number().int().nonnegative(),
  /** Tasks not yet finished (pending + running); 0 once the sweep is inactive. */
  open: z.number().int().nonnegative(),
  createdAt: epochMs,
  finishedAt: epochMs.nullable(),
  reason: z.string().nullable(),
  /** USD spent so far (instance run time × price paid); null when no instance carries a price (local). */
  costUsd: z.number().nonnegative().nullable(),
  budgetUsd: z.number().nonnegative().nullable(),
});
export type SweepSummary = z.infer<typeof SweepSummary>;

export const SweepList = z.object({ sweeps: z.array(SweepSummary) });
export type SweepList = z.infer<typeof SweepList>;

/** An instance (EC2 or local agent process) as the dashboard shows it. */
export const InstanceView = z.object({
  instanceId: z.string(),
  status: z.string(),
  slots: z.number().int(),
  host: z.string().nullable(),
  providerRef: z.string().nullable(),
  launchedAt: epochMs,
  heartbeatAt: epochMs.nullable(),
  deadline: epochMs,
  terminatedAt: epochMs.nullable(),
  reason: z.string().nullable(),
  placement: Placement.nullable(),
  gpus: z.number().nullable(),
});
export type InstanceView = z.infer<typeof InstanceView>;

/** One sweep (`GET /api/sweeps/:id`): the summary plus counts, instances and what the spec says. */
export const SweepDetail = SweepSummary.extend({
  counts: StatusCounts,
  command: z.string(),
  maxInstances: z.number().int(),
  instances: z.array(InstanceView),
});
export type SweepDetail = z.infer<typeof SweepDetail>;

/** Every task's state (`GET /api/sweeps/:id/tasks`): `states[i]` is task i's TaskStateCode. */
export const TaskGrid = z.object({
  sweepId: z.string(),
  /** The poller's sequence number this snapshot reflects; deltas with a higher `seq` apply on top. */
  seq: z.number().int().nonnegative(),
  states: z.string().regex(/^[prsfc]*$/),
});
export type TaskGrid = z.infer<typeof TaskGrid>;

/** A task's result row; the same fields as `spawn sweep results --format json`. */
export const ResultRow = z.object({
  index: z.number().int().nonnegative(),
  taskId: z.string(),
  status: TaskStatus,
  attempts: z.number().int().nonnegative(),
  exitCode: z.number().int().nullable(),
  durationMs: z.number().nullable(),
  params: z.record(z.string(), ParamValue),
  metrics: z.record(z.string(), z.unknown()),
  outputs: z.array(z.string()),
  error: z.string().nullable(),
});
export type ResultRow = z.infer<typeof ResultRow>;

/** `GET /api/sweeps/:id/results`: every task's row, plus the param and metric names seen. */
export const Results = z.object({
  sweepId: z.string(),
  params: z.array(z.string()),
  metrics: z.array(z.string()),
  rows: z.array(ResultRow),
});
export type Results = z.infer<typeof Results>;

/** `GET /api/sweeps/:id/logs/:task?attempt=&offset=`: the log from `offset` (bytes) on. */
export const LogChunk = z.object({
  sweepId: z.string(),
  task: z.number().int().nonnegative(),
  /** The attempt shown: the requested one, else the latest with a log. 0 when none has a log yet. */
  attempt: z.number().int().nonnegative(),
  /** Attempts that have a log, ascending. */
  attempts: z.array(z.number().int().positive()),
  offset: z.number().int().nonnegative(),
  /** Where the next request should start; equals `offset` when nothing new was there. */
  nextOffset: z.number().int().nonnegative(),
  text: z.string(),
  /** True once this attempt has ended (no more output will come). */
  complete: z.boolean(),
});
export type LogChunk = z.infer<typeof LogChunk>;

/** `GET /api/sweeps/:id/metrics/:task?attempt=`: each numeric metric's points over the metrics file's lines. */
export const MetricCurves = z.object({
  sweepId: z.string(),
  task: z.number().int().nonnegative(),
  attempt: z.number().int().nonnegative(),
  /** False when the metrics file of this attempt is not in the object store. */
  available: z.boolean(),
  /** `[x, value]` pairs; x is the line's `step` when it has a numeric one, else the line number. */
  series: z.record(z.string(), z.array(z.tuple([z.number(), z.number()]))),
});
export type MetricCurves = z.infer<typeof MetricCurves>;

/** `GET /api/sweeps/:id/outputs`: the files tasks kept, per task. */
export const OutputList = z.object({
  sweepId: z.string(),
  files: z.array(z.object({ task: z.number().int().nonnegative(), path: z.string() })),
});
export type OutputList = z.infer<typeof OutputList>;

export const CancelResult = z.object({ sweepId: z.string(), status: SweepStatus, changed: z.boolean() });
export type CancelResult = z.infer<typeof CancelResult>;

export const RetryResult = z.object({ sweepId: z.string(), retried: z.array(z.number().int()) });
export type RetryResult = z.infer<typeof RetryResult>;

/** Every error response: a message for people, the CLI's exit code for scripts. */
export const ApiError = z.object({ error: z.string(), hint: z.string().optional(), exitCode: z.number() });
export type ApiError = z.infer<typeof ApiError>;

/**
 * Server-Sent Events on `/api/sweeps/:id/events`. The first event is a `snapshot`; `delta`s
 * follow whenever something changed, each with the next `seq`. A client that sees a gap in
 * `seq` reloads the snapshot.
 */
export const SnapshotEvent = z.object({
  seq: z.number().int().nonnegative(),
  sweep: SweepDetail,
  states: z.string().regex(/^[prsfc]*$/),
});
export type SnapshotEvent = z.infer<typeof SnapshotEvent>;

export const DeltaEvent = z.object({
  seq: z.number().int().positive(),
  /** `[taskIndex, newState]` for each task whose state changed since the previous event. */
  changes: z.array(z.tuple([z.number().int().nonnegative(), TaskStateCode])),
  /** Present when the sweep's own fields, counts or instances changed. */
  sweep: SweepDetail.optional(),
});
export type DeltaEvent = z.infer<typeof DeltaEvent>;

/**
 * Object-store key of one attempt's metrics file (the JSON lines the task appended to
 * `SPAWN_METRICS_FILE`), beside its log: the dashboard draws metric curves from it.
 */
export function metricsFileKey(sweepId: string, index: number, attempt: number): string {
  return `metrics/${sweepId}/${index}/${attempt}.jsonl`;
}

/** The header that carries the session token on API requests (the CSRF token on actions). */
export const TOKEN_HEADER = "x-spawn-token";

// ---------------------------------------------------------------------------------------------
// W3C Trace Context (https://www.w3.org/TR/trace-context/): `traceparent: 00-<trace>-<span>-<flags>`.

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export interface TraceContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** A fresh span: in `trace` when given (a child span of it), else in a new trace. Ids are never all zeros. */
export function newTraceContext(
  randomBytes: (n: number) => Uint8Array,
  trace?: Pick<TraceContext, "traceId" | "sampled">,
): TraceContext {
  const id = (n: number) => {
    for (;;) {
      const value = hex(randomBytes(n));
      if (/[^0]/.test(value)) return value;
    }
  };
  return { traceId: trace?.traceId ?? id(16), spanId: id(8), sampled: trace?.sampled ?? true };
}

export function formatTraceparent(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.sampled ? "01" : "00"}`;
}

/** Parses a version-00 traceparent; undefined for anything malformed or with all-zero ids. */
export function parseTraceparent(header: string | undefined): TraceContext | undefined {
  const m = header ? TRACEPARENT.exec(header.trim()) : null;
  if (!m || /^0+$/.test(m[1] as string) || /^0+$/.test(m[2] as string)) return undefined;
  return {
    traceId: m[1] as string,
    spanId: m[2] as string,
    sampled: (Number.parseInt(m[3] as string, 16) & 1) === 1,
  };
}
