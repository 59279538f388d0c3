/**
 * The dashboard API's shapes: one zod schema per response and event, shared by the server
 * (cli/services/dashboard) and the browser UI (dashboard/), which validates what it receives.
 * Also the compact task-state encoding that keeps a 10,000-task sweep's grid at ~10 KB, and
 * the W3C `traceparent` helpers. Pure: no I/O, safe to bundle for the browser.
 */
import { z } from "zod";
import { DependencyType, Placement, StageOf, SweepStatus, type TaskRecord, TaskStatus } from "./model.js";
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

/** A stage of a pipeline: a node of the stage graph, its `inputs` the edges into it. */
export const StageSummary = z.object({
  name: z.string(),
  sweepId: z.string(),
  kind: z.enum(["sweep", "queue"]),
  /** The stage sweep's status; `failed` when its record is gone (as `spawn sweep status` says). */
  status: SweepStatus,
  taskCount: z.number().int().nonnegative(),
  pending: z.number().int().nonnegative(),
  running: z.number().int().nonnegative(),
  inputs: z.array(z.object({ stage: z.string(), type: DependencyType })),
});
export type StageSummary = z.infer<typeof StageSummary>;

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
  /** True for a queue (`spawn queue launch`): its page is `#/queues/<id>`. */
  queue: z.boolean().optional(),
  /** USD spent so far (instance run time × price paid); null when no instance carries a price (local). */
  costUsd: z.number().nonnegative().nullable(),
  budgetUsd: z.number().nonnegative().nullable(),
  /** On a pipeline (it has no tasks of its own): its stages in file order, the stage graph. */
  stages: z.array(StageSummary).optional(),
  /** On a pipeline's stage: the pipeline, and the stages it waits on. */
  stage: StageOf.optional(),
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

/** A task's result row (the same fields as `spawn sweep results --format json`). */
export function resultRow(t: TaskRecord): ResultRow {
  return {
    index: t.index,
    taskId: t.taskId,
    status: t.status,
    attempts: t.attempt,
    exitCode: t.exitCode ?? null,
    durationMs: t.durationMs ?? null,
    params: t.params,
    metrics: t.metrics ?? {},
    outputs: t.outputs ?? [],
    error: t.error ?? null,
  };
}

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

/**
 * Every error response: a message for people, the CLI's exit code for scripts, and for a
 * rejected form the request-body field it is about (`expression` for `--cron`, `on`, `spec`).
 */
export const ApiError = z.object({
  error: z.string(),
  hint: z.string().optional(),
  exitCode: z.number(),
  field: z.string().optional(),
});
export type ApiError = z.infer<typeof ApiError>;

// ---------------------------------------------------------------------------------------------
// Schedules and alerts: the same validation as `spawn schedule` and `spawn alerts` (the server
// calls the CLI's services); views are what their `--json` prints.

const isoTime = z.string().nullable();

/** A schedule as `spawn schedule list --json` prints it (`GET /api/schedules`). */
export const ScheduleView = z.object({
  scheduleId: z.string(),
  name: z.string(),
  state: z.enum(["enabled", "paused", "completed"]),
  trigger: z.object({ kind: z.enum(["at", "cron", "rate"]), expression: z.string(), timezone: z.string() }),
  nextRunAt: isoTime,
  lastFiredAt: isoTime,
  lastSweepId: z.string().nullable(),
  executions: z.number().int().nonnegative(),
  maxExecutions: z.number().int().positive().nullable(),
  endAt: isoTime,
  missed: z.number().int().nonnegative(),
  reason: z.string().nullable(),
  provider: z.string(),
  createdAt: isoTime,
  /** On AWS: the team the schedule belongs to (lambdas/dashboard-api/manage.ts). */
  team: z.string().optional(),
});
export type ScheduleView = z.infer<typeof ScheduleView>;

export const ScheduleList = z.object({ schedules: z.array(ScheduleView) });
export type ScheduleList = z.infer<typeof ScheduleList>;

/** The trigger fields of a schedule form: one kind, its expression, a zone. */
const TriggerFields = z.object({
  kind: z.enum(["at", "cron", "rate"]),
  expression: z.string(),
  timezone: z.string().optional(),
});

/** `POST /api/schedules`: `spawn schedule create <spec> --<kind> <expression> ...`. */
export const ScheduleCreate = TriggerFields.extend({
  /** The spec file, absolute or relative to the directory `spawn dashboard` was started in. */
  spec: z.string(),
  name: z.string().optional(),
  /** As typed: parsed as the CLI parses `--max-executions`. */
  maxExecutions: z.string().optional(),
  endAfter: z.string().optional(),
});
export type ScheduleCreate = z.infer<typeof ScheduleCreate>;

/** `PUT /api/schedules/:id`: a new trigger, name or limits (the spec and workdir snapshot stay). `null` clears a limit. */
export const ScheduleEdit = TriggerFields.extend({
  name: z.string().optional(),
  maxExecutions: z.string().nullable().optional(),
  endAfter: z.string().nullable().optional(),
});
export type ScheduleEdit = z.infer<typeof ScheduleEdit>;

/** A channel as the dashboard shows it: webhook URLs only masked (`https://hooks.slack.com/…b3Xq`). */
export const AlertChannelView = z.object({
  kind: z.enum(["slack", "webhook", "sns", "email", "log"]),
  masked: z.string().optional(),
  topicArn: z.string().optional(),
  address: z.string().optional(),
});
export type AlertChannelView = z.infer<typeof AlertChannelView>;

/** An alert as `spawn alerts list --json` prints it, with masked webhook URLs (`GET /api/alerts`). */
export const AlertView = z.object({
  id: z.string(),
  target: z.object({ kind: z.enum(["sweep", "schedule"]), id: z.string() }),
  on: z.array(z.string()),
  channels: z.array(AlertChannelView),
  inheritedFrom: z.string().nullable(),
  createdAt: z.string(),
  /** Only in the answer to a create or edit that generated a webhook signing secret: shown once. */
  webhookSecret: z.string().optional(),
  /** On AWS: the team the alert belongs to (lambdas/dashboard-api/manage.ts). */
  team: z.string().optional(),
});
export type AlertView = z.infer<typeof AlertView>;

export const AlertList = z.object({ alerts: z.array(AlertView) });
export type AlertList = z.infer<typeof AlertList>;

/** `POST /api/alerts`: `spawn alerts create <target> --on ... [--slack URL] [--webhook URL] [--log]`. */
export const AlertCreate = z.object({
  target: z.string(),
  on: z.string().optional(),
  slack: z.string().optional(),
  webhook: z.string().optional(),
  webhookSecret: z.string().optional(),
  log: z.boolean().optional(),
});
export type AlertCreate = z.infer<typeof AlertCreate>;

/**
 * `PUT /api/alerts/:id`: new triggers; a channel URL given replaces that kind's, one left out
 * is kept as it is (the browser never had it). The alert is replaced: it gets a new id.
 */
export const AlertEdit = AlertCreate.omit({ target: true });
export type AlertEdit = z.infer<typeof AlertEdit>;

/** A queue's job as `spawn queue status --json` shows it. */
export const QueueJobView = z.object({
  index: z.number().int().nonnegative(),
  id: z.string(),
  /** A task's status, or `waiting` for a pending job whose dependencies have not all succeeded. */
  status: z.union([TaskStatus, z.literal("waiting")]),
  attempts: z.number().int().nonnegative(),
  /** Job ids. */
  dependsOn: z.array(z.string()),
  durationMs: z.number().nullable(),
  exitCode: z.number().int().nullable(),
  error: z.string().nullable(),
});
export type QueueJobView = z.infer<typeof QueueJobView>;

/** `GET /api/queues/:id`: what `spawn queue status --json` prints (the fields the dashboard shows). */
export const QueueStatusView = z.object({
  sweepId: z.string(),
  name: z.string(),
  status: SweepStatus,
  reason: z.string().nullable(),
  taskCount: z.number().int().nonnegative(),
  counts: StatusCounts,
  onFailure: z.enum(["stop", "continue"]).nullable(),
  jobs: z.array(QueueJobView),
  /** Jobs that failed for good, with the end of their last attempt's log (user output: text only). */
  deadLetter: z.array(
    z.object({
      id: z.string(),
      attempts: z.number().int().nonnegative(),
      error: z.string().nullable(),
      logTail: z.string().nullable(),
    }),
  ),
});
export type QueueStatusView = z.infer<typeof QueueStatusView>;

/** `DELETE /api/schedules/:id` and `/api/alerts/:id`. */
export const Deleted = z.object({ deleted: z.string(), copies: z.number().int().nonnegative().optional() });
export type Deleted = z.infer<typeof Deleted>;

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

// W3C Trace Context: in core/traceparent.ts (small, so Lambdas can parse it without these shapes).
export {
  formatTraceparent,
  newTraceContext,
  parseTraceparent,
  type TraceContext,
} from "./traceparent.js";

// ---------------------------------------------------------------------------------------------
// The AWS deployment's routes (lambdas/dashboard-api): teams, sharing, comments, polling.

/** `GET /api/teams`: the caller's identity and the teams they belong to. */
export const TeamList = z.object({
  user: z.string(),
  teams: z.array(z.object({ team: z.string(), role: z.enum(["admin", "member"]) })),
});
export type TeamList = z.infer<typeof TeamList>;

/** A comment on a sweep; `body` is plain text, always rendered as text. */
export const CommentView = z.object({
  commentId: z.string(),
  author: z.string(),
  body: z.string(),
  createdAt: epochMs,
});
export type CommentView = z.infer<typeof CommentView>;

/** `GET /api/sweeps/:id/comments`, oldest first. */
export const CommentList = z.object({ sweepId: z.string(), comments: z.array(CommentView) });
export type CommentList = z.infer<typeof CommentList>;

/** `POST /api/sweeps/:id/share` `{team}`: the teams that now see the sweep (its own first). */
export const ShareResult = z.object({
  sweepId: z.string(),
  teams: z.array(z.string()),
  changed: z.boolean(),
});
export type ShareResult = z.infer<typeof ShareResult>;

/**
 * `GET /api/sweeps/:id/outputs/:task/:path` on AWS: a short-lived presigned S3 URL the browser
 * navigates to (it downloads as an attachment), instead of the bytes through the API (no bearer
 * token on a link, and a Lambda response is at most 6 MB).
 */
export const DownloadLink = z.object({
  url: z.url(),
  /** ISO-8601; the URL answers 403 after this. */
  expiresAt: z.string(),
});
export type DownloadLink = z.infer<typeof DownloadLink>;

/**
 * `POST /api/schedules` on AWS: run an existing sweep again on a schedule, with its stored spec
 * and workdir bundle (a browser cannot send a spec file and workdir; other specs are scheduled
 * with `spawn schedule create`). The schedule belongs to `team` (default `default`), which must
 * see the sweep.
 */
export const ScheduleFromSweep = TriggerFields.extend({
  fromSweep: z.string().min(1),
  team: z.string().optional(),
  name: z.string().optional(),
  maxExecutions: z.string().optional(),
  endAfter: z.string().optional(),
});
export type ScheduleFromSweep = z.infer<typeof ScheduleFromSweep>;

/** `POST /api/alerts` on AWS: the local form plus the team the alert belongs to (default `default`). */
export const TeamAlertCreate = AlertCreate.extend({ team: z.string().optional() });
export type TeamAlertCreate = z.infer<typeof TeamAlertCreate>;

/**
 * Where live updates come from when Server-Sent Events are not served (API Gateway HTTP APIs
 * do not stream): `GET /api/sweeps/:id/poll` answers a SnapshotEvent with an `ETag`, and `304`
 * to `If-None-Match` while nothing changed.
 */
export function pollPath(sweepId: string): string {
  return `/api/sweeps/${encodeURIComponent(sweepId)}/poll`;
}
