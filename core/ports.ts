/**
 * Ports: what core/ needs from the outside world. Adapters live in providers/.
 * Every state change goes through a single-item conditional write; a failed
 * condition surfaces as ConditionFailedError (or a subclass) and nothing is written.
 */
import type { SpawnEvent } from "./events.js";
import type {
  InstanceRecord,
  InstanceStatus,
  Placement,
  SweepRecord,
  SweepStatus,
  TaskRecord,
  TaskStatus,
} from "./model.js";

/** Fields a task update may set; `null` removes the attribute (e.g. clearing a lease). */
export type TaskUpdate = {
  [K in keyof Omit<TaskRecord, "sweepId" | "index" | "shard" | "taskId" | "params">]?: TaskRecord[K] | null;
};

/** The state a task must be in for a transition to apply. */
export interface TaskExpectation {
  status: TaskStatus | readonly TaskStatus[];
  attempt?: number;
  leaseOwner?: string;
  /** The lease must still expire exactly here (the reaper re-queues only the lease it saw). */
  leaseExpiresAt?: number;
  /** A gang member row must be at this gang epoch (core/gang.ts restarts a gang epoch by epoch). */
  gangEpoch?: number;
}

export type SweepUpdate = {
  [K in keyof Omit<SweepRecord, "sweepId" | "name" | "owner" | "provider" | "spec" | "createdAt">]?:
    | SweepRecord[K]
    | null;
};

export interface SweepExpectation {
  status?: SweepStatus | readonly SweepStatus[];
  launchSeq?: number;
  active?: boolean;
  /** Fields that must not be set yet (a fact recorded once, e.g. `budgetReachedAt`). */
  absent?: readonly (keyof SweepRecord)[];
}

export type InstanceUpdate = {
  [K in keyof Omit<InstanceRecord, "sweepId" | "instanceId" | "provider" | "launchedAt">]?:
    | InstanceRecord[K]
    | null;
};

export interface InstanceExpectation {
  status?: InstanceStatus | readonly InstanceStatus[];
}

/** Pending and running counts from the sparse indexes; eventually consistent on DynamoDB. */
export interface OpenTaskCounts {
  pending: number;
  running: number;
}

/** Sweeps, tasks and instances in DynamoDB (dynalite locally). */
export interface StateStore {
  /** Writes a new sweep; fails with ConditionFailedError if the id exists. */
  createSweep(sweep: SweepRecord): Promise<void>;
  getSweep(sweepId: string): Promise<SweepRecord | undefined>;
  /**
   * Newest first, through an index (no scan): every sweep, an owner's, or a team's (at most one
   * of `owner` and `team`). A team's list holds only sweeps written with a `team` attribute;
   * sweeps of older versions without one are not in it (docs/adr/0038).
   */
  listSweeps(options?: { owner?: string; team?: string; limit?: number }): Promise<SweepRecord[]>;
  /** Sweeps whose `active` flag is set, through a sparse index. */
  listActiveSweeps(): Promise<SweepRecord[]>;
  /** Conditional update; returns the new record. Setting `active: false` drops it from the active index. */
  updateSweep(sweepId: string, expect: SweepExpectation, update: SweepUpdate): Promise<SweepRecord>;
  /** Deletes a sweep and its tasks; used only to undo a launch that failed half-way. */
  deleteSweep(sweepId: string, shardCount: number): Promise<void>;

  /** Initial write of a sweep's tasks (batched, idempotent puts); only while the sweep is `creating`. */
  putTasks(tasks: readonly TaskRecord[]): Promise<void>;
  getTask(sweepId: string, index: number, shardCount: number): Promise<TaskRecord | undefined>;
  /** Every task of a sweep, sorted by index; a strongly consistent query per shard. */
  listTasks(sweepId: string, shardCount: number): Promise<TaskRecord[]>;
  /** Pending tasks of one shard with readyAt <= `readyBy` (omit for any), oldest readyAt first. */
  listPendingTasks(
    sweepId: string,
    shard: number,
    options?: { readyBy?: number; limit?: number },
  ): Promise<TaskRecord[]>;
  /** Running tasks of one shard whose lease expires before `expiredBefore` (omit for all). */
  listRunningTasks(
    sweepId: string,
    shard: number,
    options?: { expiredBefore?: number; limit?: number },
  ): Promise<TaskRecord[]>;
  /**
   * Pending and running tasks. With `cap`, each count stops at `cap` (and reads no more), for
   * callers that only need to know whether the open work reaches a threshold.
   */
  countOpenTasks(sweepId: string, shardCount: number, options?: { cap?: number }): Promise<OpenTaskCounts>;
  /** Conditional single-item transition; throws ConditionFailedError when `expect` does not hold. */
  updateTask(
    sweepId: string,
    index: number,
    shardCount: number,
    expect: TaskExpectation,
    update: TaskUpdate,
  ): Promise<TaskRecord>;

  /** Creates an instance record; ConditionFailedError if it exists (launches are idempotent by id). */
  putInstance(instance: InstanceRecord): Promise<void>;
  listInstances(sweepId: string): Promise<InstanceRecord[]>;
  getInstance(sweepId: string, instanceId: string): Promise<InstanceRecord | undefined>;
  updateInstance(
    sweepId: string,
    instanceId: string,
    expect: InstanceExpectation,
    update: InstanceUpdate,
  ): Promise<InstanceRecord>;
  /** Live (not terminated) instances of any sweep whose deadline is before `before`: the reaper's view. */
  listInstancesPastDeadline(before: number): Promise<InstanceRecord[]>;
  /**
   * The instance whose provider handle (EC2 instance id) is `providerRef`, of any sweep, through
   * a keys-only index and a consistent read; undefined when none (e.g. an instance spawn did not launch).
   */
  findInstanceByProviderRef(providerRef: string): Promise<InstanceRecord | undefined>;
}

/** What reconcile asks a compute provider to start. */
export interface LaunchRequest {
  sweep: SweepRecord;
  /** Our ids for the instances, derived from the sweep's launch sequence: idempotency tokens. */
  instanceIds: readonly string[];
  /** The instances' absolute deadline (epoch ms), as recorded; providers tag it. */
  deadline?: number;
  /**
   * USD the sweep's budget still allows (budget − spent − committed), when it has one: a provider
   * that knows prices launches no more than what fits, each instance counted at its price until
   * the deadline.
   */
  budgetLeft?: number;
}

export interface LaunchResult {
  instanceId: string;
  /** Set when the instance started; absent with `error` when it did not. */
  providerRef?: string;
  host?: string;
  /** Where the instance landed and what it costs (aws); recorded on the instance. */
  placement?: Placement;
  /** GPUs the instance has (from the offer it was launched from). */
  gpus?: number;
  error?: string;
}

/** What a provider can see of an instance. */
export interface ObservedInstance {
  instanceId: string;
  state: "pending" | "running" | "gone";
  /** True when the provider says the instance ended because spot took it back. */
  preempted?: boolean;
  /** The provider's own words for why it ended (EC2 StateReason), when gone. */
  reason?: string;
}

/** Where reconcile publishes what happened (EventBridge on aws); optional, the local provider may pass none. */
export interface EventSink {
  /** Publishes the events in order; throws when some could not be published. */
  publish(events: readonly SpawnEvent[]): Promise<void>;
}

/** EC2 (aws) or agent processes (local). */
export interface Compute {
  /**
   * Task slots an instance launched for this sweep will have: from the offer the provider would
   * launch first (aws: an 8-GPU type gives 8 slots for gpus: 1). Absent: the spec decides alone.
   */
  expectedSlots?(sweep: SweepRecord): Promise<number>;
  launch(request: LaunchRequest): Promise<LaunchResult[]>;
  /** Idempotent; terminating a gone instance is not an error. */
  terminate(instances: readonly InstanceRecord[], reason: string): Promise<void>;
  describe(instances: readonly InstanceRecord[]): Promise<ObservedInstance[]>;
  /**
   * Frees what the provider made for a sweep besides instances (aws: a gang sweep's placement
   * groups), once the sweep has ended and its instances are terminated. Idempotent. Returns what
   * is still held (asked again on the next pass), or undefined when nothing is.
   */
  release?(sweep: SweepRecord, instances: readonly InstanceRecord[]): Promise<string | undefined>;
}

/** S3 (aws) or a directory (local). Keys use `/` separators. */
export interface ObjectStore {
  putFile(key: string, path: string): Promise<void>;
  putBytes(key: string, body: Uint8Array | string): Promise<void>;
  getFile(key: string, path: string): Promise<boolean>;
  getBytes(key: string): Promise<Uint8Array | undefined>;
  /** Keys under a prefix, sorted. */
  list(prefix: string): Promise<string[]>;
  exists(key: string): Promise<boolean>;
}

export interface Clock {
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };
