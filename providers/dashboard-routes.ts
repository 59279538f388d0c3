/**
 * The dashboard API's reads and actions over the state and object stores, shared by the local
 * server (cli/services/dashboard/server.ts) and the AWS `dashboard-api` Lambda, so both answer
 * the same routes with the same shapes (core/api.ts) and cannot drift. No HTTP here: callers
 * map HttpError and AbortError to statuses the same way (`errorResponse`).
 */
import {
  type ApiError,
  type CancelResult,
  countStates,
  encodeTaskStates,
  type InstanceView,
  type LogChunk,
  type MetricCurves,
  metricsFileKey,
  type OutputList,
  type Results,
  type RetryResult,
  resultRow,
  type SnapshotEvent,
  type StageSummary,
  type SweepDetail,
  type SweepSummary,
} from "#core/api.js";
import { AbortError, ExitCode, NotFoundError } from "#core/errors.js";
import { costSoFarUsd } from "#core/metrics.js";
import {
  type InstanceRecord,
  type SweepRecord,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
} from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import { cancelSweep, requireSweep, requireTaskIndex, retrySweep } from "#core/sweeps.js";

/** At most this much of a log per response; the UI asks again from `nextOffset`. */
export const LOG_CHUNK_BYTES = 256 * 1024;

/** An error with the HTTP status it answers with. */
export class HttpError extends Error {
  override name = "HttpError";
  constructor(
    readonly status: number,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

/**
 * The status and body an error answers with: HttpError its own status, NotFoundError 404, any
 * other AbortError (the sweep's state forbids the action, a bad field) 409 or its 400 twin;
 * anything else is ours, 500 with no detail (`internal` says so, so the caller logs it).
 */
export function errorResponse(error: unknown): { status: number; body: ApiError; internal: boolean } {
  if (error instanceof HttpError) {
    return {
      status: error.status,
      body: {
        error: error.message,
        exitCode: error.status === 404 ? ExitCode.notFound : ExitCode.usage,
        ...(error.hint ? { hint: error.hint } : {}),
      },
      internal: false,
    };
  }
  if (error instanceof AbortError) {
    return {
      status: error instanceof NotFoundError ? 404 : 409,
      body: { error: error.message, exitCode: error.exitCode, ...(error.hint ? { hint: error.hint } : {}) },
      internal: false,
    };
  }
  return {
    status: 500,
    body: { error: "internal error; see the dashboard's log", exitCode: ExitCode.workFailed },
    internal: true,
  };
}

/** A non-negative integer query or path parameter; `fallback` when absent, else 400. */
export function intParam(value: string | null | undefined, name: string, fallback?: number): number {
  if (value === null || value === undefined || value === "") {
    if (fallback !== undefined) return fallback;
    throw new HttpError(400, `${name} is required`);
  }
  if (!/^\d+$/.test(value))
    throw new HttpError(400, `${name} must be a non-negative integer, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** The end of the longest prefix of `bytes[start, end)` that does not cut a UTF-8 character. */
export function utf8SafeEnd(bytes: Uint8Array, start: number, end: number): number {
  let i = end;
  // Step back over continuation bytes (10xxxxxx) to the lead byte of the last character.
  while (i > start && ((bytes[i - 1] as number) & 0xc0) === 0x80) i--;
  if (i === start) return end;
  const lead = bytes[i - 1] as number;
  const length = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return i - 1 + length <= end ? end : i - 1;
}

/**
 * Each numeric key of a JSON-lines metrics file as `[x, value]` points. x is the line's `step`
 * when numeric, else the last step seen before it (a final `{"accuracy": …}` line belongs to
 * the last step), else the line's number. Lines that are not JSON objects are skipped.
 */
export function parseMetricCurves(text: string): Record<string, [number, number][]> {
  const series: Record<string, [number, number][]> = {};
  let line = 0;
  let lastStep: number | undefined;
  for (const raw of text.split("\n")) {
    if (raw.trim() === "") continue;
    line++;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) continue;
    const entries = Object.entries(value as Record<string, unknown>);
    const step = (value as { step?: unknown }).step;
    if (typeof step === "number" && Number.isFinite(step)) lastStep = step;
    const x = lastStep ?? line;
    for (const [key, v] of entries) {
      if (key === "step" || typeof v !== "number" || !Number.isFinite(v)) continue;
      if (!Object.hasOwn(series, key))
        Object.defineProperty(series, key, { value: [], enumerable: true, writable: true });
      (series[key] as [number, number][]).push([x, v]);
    }
  }
  return series;
}

export function instanceView(i: InstanceRecord): InstanceView {
  return {
    instanceId: i.instanceId,
    status: i.status,
    slots: i.slots,
    host: i.host ?? null,
    providerRef: i.providerRef ?? null,
    launchedAt: i.launchedAt,
    heartbeatAt: i.heartbeatAt ?? null,
    deadline: i.deadline,
    terminatedAt: i.terminatedAt ?? null,
    reason: i.reason ?? null,
    placement: i.placement ?? null,
    gpus: i.gpus ?? null,
  };
}

/**
 * A pipeline's stages as its graph shows them: each stage's record, and its open tasks while it
 * may have any. The same reads as one sweeps-list row per stage.
 */
export async function stageSummaries(store: StateStore, pipeline: SweepRecord): Promise<StageSummary[]> {
  return Promise.all(
    (pipeline.pipeline ?? []).map(async (s) => {
      const stage = await store.getSweep(s.sweepId);
      const settled = !stage || (TERMINAL_SWEEP_STATUSES.includes(stage.status) && !stage.active);
      const open = settled
        ? { pending: 0, running: 0 }
        : await store.countOpenTasks(stage.sweepId, stage.shardCount);
      return {
        name: s.name,
        sweepId: s.sweepId,
        kind: s.kind,
        status: stage?.status ?? "failed",
        taskCount: stage?.taskCount ?? 0,
        pending: open.pending,
        running: open.running,
        inputs: s.inputs,
      };
    }),
  );
}

/**
 * A sweep's row in the sweeps list; cost from its instances' prices (null when none has one).
 * A pipeline's row carries its `stages` ({@link stageSummaries}), read by the caller.
 */
export function summaryOf(
  s: SweepRecord,
  open: number,
  instances: readonly InstanceRecord[],
  now: number,
  stages?: StageSummary[],
): SweepSummary {
  const cost = costSoFarUsd(instances, now);
  return {
    sweepId: s.sweepId,
    name: s.name,
    owner: s.owner,
    provider: s.provider,
    status: s.status,
    taskCount: s.taskCount,
    open,
    createdAt: s.createdAt,
    finishedAt: s.finishedAt ?? null,
    reason: s.reason ?? null,
    costUsd: cost === undefined ? null : Math.round(cost * 10_000) / 10_000,
    budgetUsd: s.spec.budget ?? null,
    ...(s.queue ? { queue: true } : {}),
    ...(stages ? { stages } : {}),
    ...(s.stage ? { stage: s.stage } : {}),
  };
}

/** A sweep's page header: the summary plus counts, what the spec says, and its instances. */
export function detailOf(
  s: SweepRecord,
  states: string,
  instances: readonly InstanceRecord[],
  now: number,
  stages?: StageSummary[],
): SweepDetail {
  const counts = countStates(states);
  return {
    ...summaryOf(s, counts.pending + counts.running, instances, now, stages),
    counts,
    command: s.spec.command,
    maxInstances: s.spec.max_instances,
    instances: instances.map(instanceView),
  };
}

/** Every task's result row, plus the param and metric names seen. */
export function resultsOf(sweepId: string, tasks: readonly TaskRecord[]): Results {
  return {
    sweepId,
    params: [...new Set(tasks.flatMap((t) => Object.keys(t.params)))],
    metrics: [...new Set(tasks.flatMap((t) => Object.keys(t.metrics ?? {})))],
    rows: tasks.map(resultRow),
  };
}

/**
 * The object behind `GET /api/sweeps/:id/outputs/:task/:path`: `rest` is the still-encoded
 * `<task>/<path>`, and no segment may climb out of the task's outputs (else 400). `name` is a
 * safe download name, `label` the `<task>/<path>` errors show.
 */
export function outputObject(sweepId: string, rest: string): { key: string; name: string; label: string } {
  const m = /^(\d+)\/(.+)$/.exec(rest);
  const rel = m ? (m[2] as string).split("/").map(decodeURIComponent) : [];
  if (!m || rel.some((p) => p === "" || p === "." || p === ".." || /[/\\\0]/.test(p)))
    throw new HttpError(400, `bad output path ${JSON.stringify(rest)}`);
  const label = `${m[1]}/${rel.join("/")}`;
  return {
    key: `outputs/${sweepId}/${label}`,
    name: (rel.at(-1) as string).replace(/[^\w.-]+/g, "_"),
    label,
  };
}

export interface DashboardReadDeps {
  store: StateStore;
  objects: ObjectStore;
  clock: Clock;
}

/**
 * The routes that read a sweep's objects or act on it, the same for every server. Keeps the
 * sizes of log chunks it has seen (chunks never change), so a log tail fetches only new chunks.
 */
export class DashboardReads {
  private readonly chunkSizes = new Map<string, number>();

  constructor(private readonly deps: DashboardReadDeps) {}

  /** A sweep's row in the list, read from the store (servers with a live poller use its summary instead). */
  async summary(s: SweepRecord): Promise<SweepSummary> {
    const { store, clock } = this.deps;
    const ended = TERMINAL_SWEEP_STATUSES.includes(s.status);
    const open =
      ended && !s.active
        ? 0
        : await store.countOpenTasks(s.sweepId, s.shardCount).then((c) => c.pending + c.running);
    // Only the aws provider's instances carry a price: local sweeps skip the read.
    const instances = s.provider === "local" ? [] : await store.listInstances(s.sweepId);
    const stages = s.pipeline ? await stageSummaries(store, s) : undefined;
    return summaryOf(s, open, instances, clock.now(), stages);
  }

  /** Every task's state and the sweep's detail, read from the store in one go (no poller). */
  async snapshot(sweepId: string): Promise<{ event: SnapshotEvent; tasks: TaskRecord[] }> {
    const { store, clock } = this.deps;
    const sweep = await requireSweep(store, sweepId);
    const [tasks, instances, stages] = await Promise.all([
      store.listTasks(sweepId, sweep.shardCount),
      store.listInstances(sweepId),
      sweep.pipeline ? stageSummaries(store, sweep) : undefined,
    ]);
    const states = encodeTaskStates(tasks, sweep.taskCount);
    return {
      event: { seq: 0, sweep: detailOf(sweep, states, instances, clock.now(), stages), states },
      tasks,
    };
  }

  /** `GET /api/sweeps/:id/logs/:task?attempt=&offset=`. */
  async logs(sweepId: string, taskText: string, query: URLSearchParams): Promise<LogChunk> {
    const { store } = this.deps;
    const task = intParam(taskText, "task");
    const sweep = await requireSweep(store, sweepId);
    requireTaskIndex(sweep, task);
    const record = await store.getTask(sweepId, task, sweep.shardCount);
    const byAttempt = await this.logObjects(sweepId, task);
    const attempts = [...byAttempt.keys()].sort((a, b) => a - b);
    const attempt = intParam(query.get("attempt"), "attempt", attempts.at(-1) ?? 0);
    const offset = intParam(query.get("offset"), "offset", 0);
    const keys = byAttempt.get(attempt) ?? [];
    if (query.has("attempt") && keys.length === 0 && !(record && record.attempt === attempt))
      throw new NotFoundError("log of attempt", `${task}/${attempt}`);
    const { bytes, start, size } = await this.readLog(keys, offset);
    const end = utf8SafeEnd(bytes, 0, bytes.length);
    const running = record?.status === "running" && record.attempt === attempt;
    const pendingAgain = record?.status === "pending" && (attempt === 0 || record.attempt < attempt);
    return {
      sweepId,
      task,
      attempt,
      attempts,
      offset: start,
      nextOffset: start + end,
      text: Buffer.from(bytes.subarray(0, end)).toString("utf8"),
      complete: !running && !pendingAgain && start + end >= size,
    };
  }

  /** `GET /api/sweeps/:id/metrics/:task?attempt=`. */
  async curves(sweepId: string, taskText: string, query: URLSearchParams): Promise<MetricCurves> {
    const { store, objects } = this.deps;
    const task = intParam(taskText, "task");
    const sweep = await requireSweep(store, sweepId);
    requireTaskIndex(sweep, task);
    const record = await store.getTask(sweepId, task, sweep.shardCount);
    const attempt = intParam(query.get("attempt"), "attempt", record?.attempt ?? 0);
    const bytes = attempt > 0 ? await objects.getBytes(metricsFileKey(sweepId, task, attempt)) : undefined;
    return {
      sweepId,
      task,
      attempt,
      available: bytes !== undefined,
      series: bytes ? parseMetricCurves(Buffer.from(bytes).toString("utf8")) : {},
    };
  }

  /** `GET /api/sweeps/:id/outputs`. */
  async outputs(sweepId: string): Promise<OutputList> {
    const { store, objects } = this.deps;
    await requireSweep(store, sweepId);
    const prefix = `outputs/${sweepId}/`;
    const files = (await objects.list(prefix)).flatMap((key) => {
      const m = /^(\d+)\/(.+)$/.exec(key.slice(prefix.length));
      return m ? [{ task: Number(m[1]), path: m[2] as string }] : [];
    });
    return { sweepId, files };
  }

  /**
   * `GET /api/sweeps/:id/outputs/:task/:path`: the file's bytes and a safe download name. `rest`
   * is the still-encoded `<task>/<path>`; no segment may climb out of the task's outputs.
   */
  async output(sweepId: string, rest: string): Promise<{ name: string; bytes: Uint8Array }> {
    const { store, objects } = this.deps;
    await requireSweep(store, sweepId);
    const { key, name, label } = outputObject(sweepId, rest);
    const bytes = await objects.getBytes(key);
    if (!bytes) throw new NotFoundError("output", label);
    return { name, bytes };
  }

  /** `POST /api/sweeps/:id/cancel`: the CLI's `cancelSweep`. */
  async cancel(sweepId: string): Promise<CancelResult> {
    const r = await cancelSweep(this.deps, sweepId);
    return { sweepId, status: r.sweep.status, changed: r.changed };
  }

  /** `POST /api/sweeps/:id/retry?failed=1`: the CLI's `retrySweep`. */
  async retry(sweepId: string, query: URLSearchParams): Promise<RetryResult> {
    const r = await retrySweep(this.deps, sweepId, { failedOnly: query.get("failed") === "1" });
    return { sweepId, retried: r.reset };
  }

  /**
   * An attempt's log is either one object `logs/<sweep>/<task>/<attempt>.log` or, shipped live,
   * chunks `logs/<sweep>/<task>/<attempt>/<seq>.log` in key order.
   */
  private async logObjects(sweepId: string, task: number): Promise<Map<number, string[]>> {
    const byAttempt = new Map<number, string[]>();
    for (const key of await this.deps.objects.list(`logs/${sweepId}/${task}/`)) {
      const m = /^logs\/[^/]+\/\d+\/(\d+)(?:\.log|\/\d+\.log)$/.exec(key);
      if (!m) continue;
      const attempt = Number(m[1]);
      byAttempt.set(attempt, [...(byAttempt.get(attempt) ?? []), key]);
    }
    return byAttempt;
  }

  private async readLog(
    keys: readonly string[],
    offset: number,
  ): Promise<{ bytes: Uint8Array; start: number; size: number }> {
    let position = 0;
    const parts: Uint8Array[] = [];
    let taken = 0;
    for (const key of keys) {
      const known = this.chunkSizes.get(key);
      if (known !== undefined && position + known <= offset) {
        position += known;
        continue;
      }
      const body = await this.deps.objects.getBytes(key);
      if (!body) continue;
      // Chunks (logs/<sweep>/<task>/<attempt>/<seq>.log) are written once; a single-object log is rewritten.
      if (key.split("/").length === 5) this.chunkSizes.set(key, body.length);
      if (position + body.length > offset && taken < LOG_CHUNK_BYTES) {
        const from = Math.max(0, offset - position);
        const part = body.subarray(from, from + (LOG_CHUNK_BYTES - taken));
        parts.push(part);
        taken += part.length;
      }
      position += body.length;
    }
    return { bytes: Buffer.concat(parts), start: Math.min(offset, position), size: position };
  }
}
