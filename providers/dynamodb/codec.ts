/**
 * Domain records ⇄ DynamoDB items (plain objects, marshalled by the DocumentClient).
 *
 * - JSON-valued fields (`spec`, task `params` and `metrics`) are stored as JSON text, so
 *   values keep their exact types (1 vs "1", nested objects, empty maps) and never meet
 *   DynamoDB's number/set/empty-value rules.
 * - Index attributes (`listPk`, `activePk`, `pendingPk`, `runningPk`, `liveShard`) are
 *   derived here from the domain fields; callers of the store never see them.
 * - Every read is validated with the zod record schema.
 */
import type { z } from "zod";
import { BugError } from "../../core/errors.js";
import {
  InstanceRecord,
  type InstanceStatus,
  SweepRecord,
  TaskRecord,
  type TaskStatus,
} from "../../core/model.js";
import { QueueJob, QueueSettings } from "../../core/queue.js";
import { Duration, SweepSpec } from "../../core/spec.js";
import { LIVE_SHARDS, ORDERED_KEY_DIGITS, SWEEP_ACTIVE_PK, SWEEP_LIST_PK } from "./tables.js";

export type Item = Record<string, unknown>;

// ---------------------------------------------------------------------------------------------
// Spec (and a queue's settings and jobs): a parsed spec holds durations as milliseconds, but the
// schema reads a bare number as seconds. Stored specs therefore write every duration as "<ms>ms",
// which the same schema parses back to the same number: parsing is idempotent over a round-trip.

type AnySchema = z.core.$ZodType;

function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  for (;;) {
    const def = s._zod.def as { type: string; innerType?: AnySchema };
    if (
      (def.type === "optional" ||
        def.type === "default" ||
        def.type === "nullable" ||
        def.type === "prefault") &&
      def.innerType
    ) {
      s = def.innerType;
    } else return s;
  }
}

function encodeDurations(schema: AnySchema, value: unknown): unknown {
  const s = unwrap(schema);
  if (s === Duration) return typeof value === "number" ? `${value}ms` : value;
  const def = s._zod.def as {
    type: string;
    shape?: Record<string, AnySchema>;
    element?: AnySchema;
    valueType?: AnySchema;
  };
  if (value === null || typeof value !== "object") return value;
  if (def.type === "object" && def.shape && !Array.isArray(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) {
      const field = def.shape[key];
      out[key] = field ? encodeDurations(field, v) : v;
    }
    return out;
  }
  if (def.type === "array" && def.element && Array.isArray(value)) {
    return value.map((v) => encodeDurations(def.element!, v));
  }
  if (def.type === "record" && def.valueType && !Array.isArray(value)) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, encodeDurations(def.valueType!, v)]));
  }
  return value;
}

export function encodeSpec(spec: SweepSpec): string {
  return JSON.stringify(encodeDurations(SweepSpec, spec));
}

/** A queue job as stored on its task: JSON text, durations as "<ms>ms". */
function encodeJob(job: unknown): string {
  return JSON.stringify(encodeDurations(QueueJob, job));
}

// ---------------------------------------------------------------------------------------------
// Sweeps

export function sweepToItem(sweep: SweepRecord): Item {
  const spec = encodeSpec(sweep.spec);
  const queue = sweep.queue === undefined ? undefined : encodeDurations(QueueSettings, sweep.queue);
  // Validate the form that will be read back, not the in-memory one (durations differ).
  const record = SweepRecord.parse({ ...sweep, spec: JSON.parse(spec), queue });
  return withoutUndefined({
    ...record,
    spec,
    queue,
    listPk: SWEEP_LIST_PK,
    activePk: record.active ? SWEEP_ACTIVE_PK : undefined,
  });
}

export function itemToSweep(item: Item): SweepRecord {
  const { listPk: _l, activePk: _a, spec, ...rest } = item;
  return SweepRecord.parse({ ...rest, spec: typeof spec === "string" ? JSON.parse(spec) : spec });
}

// ---------------------------------------------------------------------------------------------
// Ordered string keys for index sort keys (see ORDERED_KEY_DIGITS in tables.ts)

function pad(value: number): string {
  return String(value).padStart(ORDERED_KEY_DIGITS, "0");
}

/** `0001700000000000#<tiebreak>`: sorts by `value` (a non-negative integer, e.g. epoch ms), then by tiebreak. */
export function orderedKey(value: number, tiebreak: string, field: string): string {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new BugError(`${field} must be a non-negative integer (epoch ms) to be indexed, got ${value}`);
  }
  return `${pad(value)}#${tiebreak}`;
}

/**
 * The exclusive upper bound for `key < bound` ⟺ `value < limit` over ordered keys.
 * `null`: no value qualifies; `undefined`: every value does (no bound needed).
 */
export function orderedKeyBelow(limit: number): string | null | undefined {
  if (Number.isNaN(limit)) throw new BugError("index bound is NaN");
  if (limit <= 0) return null;
  if (limit > Number.MAX_SAFE_INTEGER) return undefined;
  return pad(Math.ceil(limit));
}

/** Task index as the tie-breaker, zero-padded so equal readyAt values keep index order. */
function indexTiebreak(index: number): string {
  return String(index).padStart(10, "0");
}

export function readyKey(readyAt: number, index: number): string {
  return orderedKey(readyAt, indexTiebreak(index), "readyAt");
}

export function leaseKey(leaseExpiresAt: number, index: number): string {
  return orderedKey(leaseExpiresAt, indexTiebreak(index), "leaseExpiresAt");
}

export function deadlineKey(deadline: number, instanceId: string): string {
  return orderedKey(deadline, instanceId, "deadline");
}

// ---------------------------------------------------------------------------------------------
// Tasks

export function taskPk(sweepId: string, shard: number): string {
  return `${sweepId}#${shard}`;
}

/** The sparse-index attributes a task carries in `status`. */
export function taskIndexAttributes(
  pk: string,
  status: TaskStatus,
): { pendingPk?: string; runningPk?: string } {
  if (status === "pending") return { pendingPk: pk };
  if (status === "running") return { runningPk: pk };
  return {};
}

export function taskToItem(task: TaskRecord): Item {
  const job = task.job === undefined ? undefined : encodeJob(task.job);
  const record = TaskRecord.parse({ ...task, job: job === undefined ? undefined : JSON.parse(job) });
  const pk = taskPk(record.sweepId, record.shard);
  return withoutUndefined({
    ...record,
    pk,
    job,
    params: JSON.stringify(record.params),
    metrics: record.metrics === undefined ? undefined : JSON.stringify(record.metrics),
    readyKey: readyKey(record.readyAt, record.index),
    leaseKey: record.leaseExpiresAt === undefined ? undefined : leaseKey(record.leaseExpiresAt, record.index),
    ...taskIndexAttributes(pk, record.status),
  });
}

export function itemToTask(item: Item): TaskRecord {
  const {
    pk: _p,
    pendingPk: _pp,
    runningPk: _rp,
    readyKey: _r,
    leaseKey: _l,
    params,
    metrics,
    job,
    ...rest
  } = item;
  return TaskRecord.parse({
    ...rest,
    job: typeof job === "string" ? JSON.parse(job) : job,
    params: typeof params === "string" ? JSON.parse(params) : params,
    metrics: typeof metrics === "string" ? JSON.parse(metrics) : metrics,
  });
}

/** How update values are stored, per field (identity unless listed). */
export const TASK_FIELD_ENCODERS: Record<string, (value: unknown) => unknown> = {
  metrics: (value) => JSON.stringify(value),
  job: encodeJob,
};

// ---------------------------------------------------------------------------------------------
// Instances

/** Partition keys of the instances `live` index. */
export const LIVE_SHARD_KEYS: readonly string[] = Array.from({ length: LIVE_SHARDS }, (_, i) => `live#${i}`);

/** FNV-1a, so an instance always lands in the same `live#n` shard. */
export function liveShardOf(instanceId: string): string {
  let hash = 0x811c9dc5;
  for (let i = 0; i < instanceId.length; i++) {
    hash ^= instanceId.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return `live#${(hash >>> 0) % LIVE_SHARDS}`;
}

export function instanceIndexAttributes(instanceId: string, status: InstanceStatus): { liveShard?: string } {
  return status === "terminated" ? {} : { liveShard: liveShardOf(instanceId) };
}

export function instanceToItem(instance: InstanceRecord): Item {
  const record = InstanceRecord.parse(instance);
  return withoutUndefined({
    ...record,
    deadlineKey: deadlineKey(record.deadline, record.instanceId),
    ...instanceIndexAttributes(record.instanceId, record.status),
  });
}

export function itemToInstance(item: Item): InstanceRecord {
  const { liveShard: _s, deadlineKey: _d, ...rest } = item;
  return InstanceRecord.parse(rest);
}

// ---------------------------------------------------------------------------------------------
// Updates

/**
 * Checks an update against the record schema before it is written: `null` only on optional
 * fields (it removes the attribute), other values must be valid for their field, and keys
 * must be fields the update type allows (the key and identity fields are not).
 */
export function validateUpdate(
  schema: z.ZodObject,
  kind: string,
  update: Record<string, unknown>,
  immutable: readonly string[],
): void {
  for (const [key, value] of Object.entries(update)) {
    if (value === undefined) continue;
    const field = schema.shape[key] as z.ZodType | undefined;
    if (!field || immutable.includes(key))
      throw new BugError(`${kind} update: field ${key} cannot be updated`);
    if (value === null) {
      if (!field.safeParse(undefined).success)
        throw new BugError(`${kind} update: required field ${key} cannot be removed`);
      continue;
    }
    const result = field.safeParse(value);
    if (!result.success) {
      throw new BugError(
        `${kind} update: invalid ${key} ${JSON.stringify(value)}: ${result.error.issues[0]?.message}`,
      );
    }
  }
}

function withoutUndefined(item: Item): Item {
  for (const key of Object.keys(item)) if (item[key] === undefined) delete item[key];
  return item;
}
