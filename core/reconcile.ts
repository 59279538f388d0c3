/**
 * The level-triggered control loop. `reconcile(sweepId)` reads desired state (spec,
 * tasks) and actual state (instances, leases) and takes the actions that close the
 * gap: launch, reap, re-queue, finish. It is idempotent: running it twice, late or
 * concurrently is harmless, because every write is conditional on the state it read
 * and instance launches are reserved through the sweep's launch sequence.
 */
import { mapLimit } from "./concurrency.js";
import { ConditionFailedError } from "./errors.js";
import {
  type InstanceRecord,
  type SweepRecord,
  type SweepStatus,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
  TERMINAL_TASK_STATUSES,
} from "./model.js";
import type { Clock, Compute, LaunchResult, StateStore } from "./ports.js";
import { afterAttempt } from "./retry.js";
import type { SweepSpec } from "./spec.js";

export interface ReconcileOptions {
  /** An instance that has not heartbeated for this long is terminated. @default max(3 × lease, 30 s) */
  heartbeatTimeoutMs?: number;
  /** A launching instance that never heartbeats is terminated after this. @default 10 min */
  launchTimeoutMs?: number;
  /** After a sweep ends, agents get this long to exit by themselves before they are terminated. @default 30 s */
  drainMs?: number;
  /** A sweep stuck in `creating` this long is marked failed (its launcher died). @default 10 min */
  creatingTimeoutMs?: number;
}

export interface ReconcileDeps {
  store: StateStore;
  compute: Compute;
  clock: Clock;
  /** Uniform in [0, 1); jitter for retries. */
  random?: () => number;
  options?: ReconcileOptions;
}

/** What one pass did, for logs and tests. */
export interface ReconcileResult {
  sweepId: string;
  status?: SweepStatus;
  launched: string[];
  terminated: string[];
  requeued: number[];
  cancelledTasks: number;
  finished?: SweepStatus;
  deactivated: boolean;
}

/** Tasks one instance runs at once: `resources.slots`, else one per GPU the instance has, else one. */
export function slotsPerInstance(spec: SweepSpec, gpusPerInstance = 0): number {
  if (spec.resources.slots) return spec.resources.slots;
  if (spec.resources.gpus > 0 && gpusPerInstance > 0)
    return Math.max(1, Math.floor(gpusPerInstance / spec.resources.gpus));
  return 1;
}

/** How many instances the open work needs, never more than max_instances. */
export function desiredInstances(spec: SweepSpec, openTasks: number, slots: number): number {
  return Math.min(spec.max_instances, Math.ceil(openTasks / slots));
}

/** Deterministic instance ids from the launch sequence: a retried launch reuses the same ids (idempotency tokens). */
export function instanceIdFor(sweepId: string, seq: number): string {
  return `${sweepId}-i${seq}`;
}

const isLive = (i: InstanceRecord) => i.status !== "terminated";

/** Pending tasks of an ended sweep cancelled per pass; the next pass does the rest. */
export const CANCELS_PER_PASS = 2000;

async function ignoreConflict<T>(write: Promise<T>): Promise<T | undefined> {
  try {
    return await write;
  } catch (error) {
    if (error instanceof ConditionFailedError) return undefined;
    throw error;
  }
}

/** One pass of the control loop for one sweep. */
export async function reconcile(deps: ReconcileDeps, sweepId: string): Promise<ReconcileResult> {
  const { store, compute, clock } = deps;
  const random = deps.random ?? Math.random;
  const result: ReconcileResult = {
    sweepId,
    launched: [],
    terminated: [],
    requeued: [],
    cancelledTasks: 0,
    deactivated: false,
  };
  const sweep = await store.getSweep(sweepId);
  if (!sweep?.active) return result;
  result.status = sweep.status;
  const now = clock.now();
  const opts = deps.options ?? {};
  const spec = sweep.spec;

  if (sweep.status === "creating") {
    if (now - sweep.createdAt > (opts.creatingTimeoutMs ?? 600_000)) {
      await ignoreConflict(
        store.updateSweep(
          sweepId,
          { status: "creating" },
          {
            status: "failed",
            active: false,
            reason: "the launch did not complete",
            finishedAt: now,
            updatedAt: now,
          },
        ),
      );
      result.finished = "failed";
      result.deactivated = true;
    }
    return result;
  }

  // 1. Instances: observe, then terminate the dead, the expired and the silent.
  const terminate = async (instance: InstanceRecord, reason: string) => {
    await compute.terminate([instance], reason);
    const done = await ignoreConflict(
      store.updateInstance(
        sweepId,
        instance.instanceId,
        { status: ["launching", "running"] },
        { status: "terminated", terminatedAt: now, reason },
      ),
    );
    if (done) result.terminated.push(instance.instanceId);
  };
  const records = await store.listInstances(sweepId);
  const instances = records.filter(isLive);
  // Numbers another pass reserved but has not recorded yet are launches in flight; without
  // counting them, a pass that reads in between would launch the same capacity again.
  const launchTimeout = opts.launchTimeoutMs ?? 600_000;
  const inFlight =
    sweep.launchReservedAt !== undefined && now - sweep.launchReservedAt < launchTimeout
      ? Math.max(0, sweep.launchSeq - records.length)
      : 0;
  const observed = new Map((await compute.describe(instances)).map((o) => [o.instanceId, o.state]));
  const heartbeatTimeout = opts.heartbeatTimeoutMs ?? Math.max(3 * spec.lease, 30_000);
  const live: InstanceRecord[] = [];
  for (const instance of instances) {
    const state = observed.get(instance.instanceId) ?? "gone";
    if (state === "gone") {
      await terminate(
        instance,
        instance.status === "launching" ? "instance never started" : "instance is gone",
      );
    } else if (now >= instance.deadline) {
      await terminate(instance, "ttl reached");
    } else if (
      instance.heartbeatAt === undefined &&
      now - instance.launchedAt > (opts.launchTimeoutMs ?? 600_000)
    ) {
      await terminate(instance, "agent never reported in");
    } else if (instance.heartbeatAt !== undefined && now - instance.heartbeatAt > heartbeatTimeout) {
      await terminate(instance, "agent heartbeat stopped");
    } else live.push(instance);
  }

  // 2. Leases that expired go back to pending (or to cancelled, if the sweep already ended).
  const cancelled = sweep.status === "cancelled";
  const ended = TERMINAL_SWEEP_STATUSES.includes(sweep.status);
  for (let shard = 0; shard < sweep.shardCount; shard++) {
    const expired = await store.listRunningTasks(sweepId, shard, { expiredBefore: now });
    for (const task of expired) {
      const end = ended
        ? ({ kind: "cancelled", reason: `sweep ${sweep.status}` } as const)
        : ({ kind: "lost", reason: `lease held by ${task.leaseOwner ?? "?"} expired` } as const);
      const update = afterAttempt(task, spec.retry, end, now, random());
      const done = await ignoreConflict(
        store.updateTask(
          sweepId,
          task.index,
          sweep.shardCount,
          { status: "running", attempt: task.attempt, leaseExpiresAt: task.leaseExpiresAt },
          update,
        ),
      );
      if (done && update.status === "pending") result.requeued.push(task.index);
    }
  }

  // 3. An ended sweep (cancelled, or failed by its setup): pending tasks are cancelled, a
  //    bounded batch per pass and several writes at once, so cancelling 100,000 tasks neither
  //    stalls the loop nor takes minutes; running ones are stopped by their agents.
  if (ended) {
    const pending: TaskRecord[] = [];
    for (let shard = 0; shard < sweep.shardCount && pending.length < CANCELS_PER_PASS; shard++) {
      pending.push(
        ...(await store.listPendingTasks(sweepId, shard, { limit: CANCELS_PER_PASS - pending.length })),
      );
    }
    const done = await mapLimit(pending, 16, (task) =>
      ignoreConflict(
        store.updateTask(
          sweepId,
          task.index,
          sweep.shardCount,
          { status: "pending", attempt: task.attempt },
          { status: "cancelled", finishedAt: now, error: `sweep ${sweep.status}`, updatedAt: now },
        ),
      ),
    );
    result.cancelledTasks = done.filter(Boolean).length;
  }

  // Only as much open work as max_instances can take matters: the count stops there, so a pass
  // costs the same for a sweep of 100 tasks or 100,000.
  const slots = slotsPerInstance(spec);
  const open = await store.countOpenTasks(sweepId, sweep.shardCount, { cap: spec.max_instances * slots });

  // 4. Finish a running sweep whose tasks are all final (checked again with a consistent read).
  let status: SweepStatus = sweep.status;
  if (status === "running" && open.pending + open.running === 0) {
    const tasks = await store.listTasks(sweepId, sweep.shardCount);
    if (tasks.every((t) => TERMINAL_TASK_STATUSES.includes(t.status))) {
      const finished = finalStatus(tasks);
      const written = await ignoreConflict(
        store.updateSweep(
          sweepId,
          { status: "running" },
          { status: finished.status, reason: finished.reason, finishedAt: now, updatedAt: now },
        ),
      );
      if (written) {
        status = finished.status;
        result.finished = finished.status;
      } else status = (await store.getSweep(sweepId))?.status ?? status;
    }
  }
  result.status = status;

  // 5. Terminal: let agents drain, then terminate stragglers; deactivate once nothing is left.
  if (status === "succeeded" || status === "failed" || status === "cancelled") {
    const since = sweep.finishedAt ?? sweep.cancelRequestedAt ?? now;
    const drainUntil = since + (opts.drainMs ?? 30_000) + (cancelled ? spec.grace : 0);
    const stillLive: InstanceRecord[] = [];
    for (const instance of live) {
      if (now >= drainUntil) await terminate(instance, `sweep ${status}`);
      else stillLive.push(instance);
    }
    if (stillLive.length === 0 && open.running === 0) {
      const off = await ignoreConflict(
        store.updateSweep(sweepId, { active: true }, { active: false, updatedAt: now }),
      );
      result.deactivated = off !== undefined;
    }
    return result;
  }

  // 6. Running: keep as many instances as the open work needs, never more than max_instances.
  const want = desiredInstances(spec, open.pending + open.running, slots);
  const missing = want - live.length - inFlight;
  if (missing > 0 && open.pending > 0) {
    result.launched = await launch(deps, sweep, missing, slots, now);
  }
  return result;
}

function finalStatus(tasks: readonly TaskRecord[]): { status: SweepStatus; reason: string } {
  const count = (s: TaskRecord["status"]) => tasks.filter((t) => t.status === s).length;
  const failed = count("failed");
  const cancelledTasks = count("cancelled");
  const parts = [`${count("succeeded")} succeeded`];
  if (failed) parts.push(`${failed} failed`);
  if (cancelledTasks) parts.push(`${cancelledTasks} cancelled`);
  return { status: failed || cancelledTasks ? "failed" : "succeeded", reason: parts.join(", ") };
}

/** Reserves `count` launch sequence numbers with a conditional write, records the instances, then launches them. */
async function launch(deps: ReconcileDeps, sweep: SweepRecord, count: number, slots: number, now: number) {
  const { store, compute } = deps;
  const reserved = await ignoreConflict(
    store.updateSweep(
      sweep.sweepId,
      { status: "running", launchSeq: sweep.launchSeq },
      { launchSeq: sweep.launchSeq + count, launchReservedAt: now, updatedAt: now },
    ),
  );
  // Another reconcile reserved first; it launches, we don't.
  if (!reserved) return [];
  const ids = Array.from({ length: count }, (_, i) => instanceIdFor(sweep.sweepId, sweep.launchSeq + i));
  for (const instanceId of ids) {
    await ignoreConflict(
      store.putInstance({
        sweepId: sweep.sweepId,
        instanceId,
        provider: sweep.provider,
        status: "launching",
        slots,
        launchedAt: now,
        deadline: now + sweep.spec.ttl,
      }),
    );
  }
  let results: LaunchResult[];
  try {
    results = await compute.launch({ sweep: reserved, instanceIds: ids });
  } catch (error) {
    // An API error fails every instance of the request; each gets the reason below.
    results = ids.map((instanceId) => ({
      instanceId,
      error: error instanceof Error ? error.message : String(error),
    }));
  }
  const launched: string[] = [];
  for (const r of results) {
    if (r.error || !r.providerRef) {
      const reason = `launch failed: ${r.error ?? "no instance returned"}`;
      await ignoreConflict(
        store.updateInstance(
          sweep.sweepId,
          r.instanceId,
          { status: "launching" },
          { status: "terminated", terminatedAt: now, reason },
        ),
      );
      // Say why the sweep is not progressing; a stuck sweep always has a reason.
      await ignoreConflict(
        store.updateSweep(sweep.sweepId, { status: "running" }, { reason, updatedAt: now }),
      );
      continue;
    }
    await ignoreConflict(
      store.updateInstance(
        sweep.sweepId,
        r.instanceId,
        { status: ["launching", "running"] },
        { providerRef: r.providerRef, host: r.host ?? null },
      ),
    );
    launched.push(r.instanceId);
  }
  return launched;
}

/**
 * The out-of-band reaper: terminates any live instance past its absolute deadline,
 * whatever state its sweep is in. Never trusts the instance to stop itself.
 */
export async function reapExpiredInstances(
  deps: Pick<ReconcileDeps, "store" | "compute" | "clock">,
): Promise<string[]> {
  const now = deps.clock.now();
  // An instance is expired at its deadline (reconcile uses >= too); the store's bound is exclusive.
  const expired = await deps.store.listInstancesPastDeadline(now + 1);
  const reaped: string[] = [];
  for (const instance of expired) {
    await deps.compute.terminate([instance], "ttl reached");
    const done = await ignoreConflict(
      deps.store.updateInstance(
        instance.sweepId,
        instance.instanceId,
        { status: ["launching", "running"] },
        { status: "terminated", terminatedAt: now, reason: "ttl reached" },
      ),
    );
    if (done) reaped.push(instance.instanceId);
  }
  return reaped;
}
