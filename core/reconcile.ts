/**
 * The level-triggered control loop. `reconcile(sweepId)` reads desired state (spec,
 * tasks) and actual state (instances, leases) and takes the actions that close the
 * gap: launch, reap, re-queue, finish. It is idempotent: running it twice, late or
 * concurrently is harmless, because every write is conditional on the state it read
 * and instance launches are reserved through the sweep's launch sequence.
 *
 * What happened is published as events (core/events.ts) through the optional EventSink. An
 * event is derived from a conditional write that succeeded, never from a read, so each fact is
 * published once however many passes see it.
 */
import { mapLimit } from "./concurrency.js";
import { committedCost, spentSoFar } from "./cost.js";
import { settleAll, WAITING } from "./dependencies.js";
import { formatDuration } from "./duration.js";
import { ConditionFailedError } from "./errors.js";
import { type SpawnEvent, spawnEvent } from "./events.js";
import { completeGangRestarts, gangInstances, restartGang } from "./gang.js";
import {
  type InstanceRecord,
  type SweepRecord,
  type SweepStatus,
  type TaskRecord,
  TERMINAL_SWEEP_STATUSES,
  TERMINAL_TASK_STATUSES,
} from "./model.js";
import { loadStageGate, pipelinePass } from "./pipeline.js";
import { slotsOn } from "./placement.js";
import type { Clock, Compute, EventSink, LaunchResult, StateStore } from "./ports.js";
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
  /** Where events go (EventBridge on aws); without one, events are only returned in the result. */
  events?: EventSink;
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
  /** Instances of the sweep lost to spot interruptions, this pass's included. */
  preemptions: number;
  /** Cost so far (USD) when instances carry prices (aws). */
  cost?: SweepCost;
  /** The events this pass published (or would have, without a sink). */
  events: SpawnEvent[];
  /** What the provider still holds for an ended sweep (Compute.release), keeping it active. */
  held?: string;
}

/** How many instances the open work needs, never more than max_instances. */
export function desiredInstances(spec: SweepSpec, openTasks: number, slots: number): number {
  if (spec.nodes > 1) return gangInstances(spec, openTasks);
  return Math.min(spec.max_instances, Math.ceil(openTasks / slots));
}

/** Deterministic instance ids from the launch sequence: a retried launch reuses the same ids (idempotency tokens). */
export function instanceIdFor(sweepId: string, seq: number): string {
  return `${sweepId}-i${seq}`;
}

/** How long after an agent deregistered its instance reconcile checks that the machine is gone. */
export const DEREGISTERED_WATCH_MS = 30 * 60_000;

/** The `reason` of an instance that spot took back; preemptions are counted by it. */
export const PREEMPTED_REASON = "preempted: spot interruption";

export const isPreempted = (i: InstanceRecord) => i.status === "terminated" && i.reason === PREEMPTED_REASON;

/** Every `reason` of an instance terminated for failing its GPU health gate starts with this. */
export const UNHEALTHY_REASON = "unhealthy: ";

const isLive = (i: InstanceRecord) => i.status !== "terminated";

/** Pending tasks of an ended sweep cancelled per pass; the next pass does the rest. */
export const CANCELS_PER_PASS = 2000;

/** Money so far, in USD (core/cost.ts): `spent` by run time × price, `committed` by live instances until their deadline. */
export interface SweepCost {
  spent: number;
  committed: number;
}

async function ignoreConflict<T>(write: Promise<T>): Promise<T | undefined> {
  try {
    return await write;
  } catch (error) {
    if (error instanceof ConditionFailedError) return undefined;
    throw error;
  }
}

/** Publishes what a pass produced (after its writes: a fact is recorded before it is announced). */
async function publish(deps: Pick<ReconcileDeps, "events">, events: readonly SpawnEvent[]): Promise<void> {
  if (deps.events && events.length > 0) await deps.events.publish(events);
}

/** One pass of the control loop for one sweep. */
export async function reconcile(deps: ReconcileDeps, sweepId: string): Promise<ReconcileResult> {
  const result = await pass(deps, sweepId);
  await publish(deps, result.events);
  return result;
}

async function pass(deps: ReconcileDeps, sweepId: string): Promise<ReconcileResult> {
  const { store, compute, clock } = deps;
  const random = deps.random ?? Math.random;
  const events: SpawnEvent[] = [];
  const result: ReconcileResult = {
    sweepId,
    launched: [],
    terminated: [],
    requeued: [],
    cancelledTasks: 0,
    deactivated: false,
    preemptions: 0,
    events,
  };
  const sweep = await store.getSweep(sweepId);
  if (!sweep?.active) return result;
  if (sweep.pipeline) return pipelinePass({ store, clock }, sweep, result);
  result.status = sweep.status;
  result.preemptions = sweep.preemptions ?? 0;
  const now = clock.now();
  const opts = deps.options ?? {};
  const spec = sweep.spec;
  const emit = (fields: Parameters<typeof spawnEvent>[2]) => events.push(spawnEvent(sweepId, now, fields));

  if (sweep.status === "creating") {
    if (now - sweep.createdAt > (opts.creatingTimeoutMs ?? 600_000)) {
      const reason = "the launch did not complete";
      const failed = await ignoreConflict(
        store.updateSweep(
          sweepId,
          { status: "creating" },
          { status: "failed", active: false, reason, finishedAt: now, updatedAt: now },
        ),
      );
      if (failed) {
        result.finished = "failed";
        result.deactivated = true;
        emit({ type: "SweepFailed", name: sweep.name, reason, succeeded: 0, failed: 0, failedTasks: [] });
      }
    }
    return result;
  }

  // 1. Instances: observe, then terminate the dead, the expired and the silent.
  const records = await store.listInstances(sweepId);
  let preemptions = records.filter(isPreempted).length;
  /** Instances this pass found lost while work remained: what new launches replace. */
  const lost: string[] = [];
  /**
   * Terminates instances (one provider call per reason, so a pass that finds 500 preempted
   * instances makes one batch of API calls, not 500), then records each with a conditional write.
   * Gone instances are terminated too: "gone" includes stopped, and terminating is idempotent.
   */
  const terminate = async (doomed: ReadonlyArray<{ instance: InstanceRecord; reason: string }>) => {
    for (const reason of new Set(doomed.map((d) => d.reason))) {
      await compute.terminate(
        doomed.filter((d) => d.reason === reason).map((d) => d.instance),
        reason,
      );
    }
    await mapLimit(doomed, 16, async ({ instance, reason }) => {
      const done = await ignoreConflict(
        store.updateInstance(
          sweepId,
          instance.instanceId,
          { status: ["launching", "running"] },
          { status: "terminated", terminatedAt: now, reason },
        ),
      );
      if (!done) return;
      result.terminated.push(instance.instanceId);
      const ref = instance.providerRef ? { providerRef: instance.providerRef } : {};
      if (reason.startsWith(UNHEALTHY_REASON)) {
        emit({
          type: "InstanceUnhealthy",
          instanceId: instance.instanceId,
          ...ref,
          reason: reason.slice(UNHEALTHY_REASON.length),
        });
      } else if (reason === PREEMPTED_REASON) {
        preemptions++;
        emit({
          type: "InstancePreempted",
          instanceId: instance.instanceId,
          ...ref,
          ...(instance.placement ? { placement: instance.placement } : {}),
          preemptions,
        });
      } else emit({ type: "InstanceReaped", instanceId: instance.instanceId, ...ref, reason });
    });
  };
  const instances = records.filter(isLive);
  // Numbers another pass reserved but has not recorded yet are launches in flight; without
  // counting them, a pass that reads in between would launch the same capacity again.
  const launchTimeout = opts.launchTimeoutMs ?? 600_000;
  const inFlight =
    sweep.launchReservedAt !== undefined && now - sweep.launchReservedAt < launchTimeout
      ? Math.max(0, sweep.launchSeq - records.length)
      : 0;
  // An agent that exits marks its own record terminated, but only the provider can stop the
  // machine: for a while after, such instances are still observed, and any the provider still
  // runs (the agent's poweroff failed, or it never tried) is terminated from here. Preempted
  // ones are left to spot: their agents are using the notice's two minutes to checkpoint.
  const deregistered = records.filter(
    (i) =>
      i.status === "terminated" &&
      !isPreempted(i) &&
      i.providerRef !== undefined &&
      i.terminatedAt !== undefined &&
      now - i.terminatedAt < DEREGISTERED_WATCH_MS,
  );
  const observedAll = await compute.describe([...instances, ...deregistered]);
  const observed = new Map(observedAll.map((o) => [o.instanceId, o]));
  const stragglers = deregistered.filter((i) => {
    const state = observed.get(i.instanceId)?.state;
    return state !== undefined && state !== "gone";
  });
  if (stragglers.length > 0) {
    await compute.terminate(stragglers, "the agent exited but the instance kept running");
    result.terminated.push(...stragglers.map((i) => i.instanceId));
  }
  const heartbeatTimeout = opts.heartbeatTimeoutMs ?? Math.max(3 * spec.lease, 30_000);
  const live: InstanceRecord[] = [];
  const doomed: Array<{ instance: InstanceRecord; reason: string }> = [];
  for (const instance of instances) {
    const seen = observed.get(instance.instanceId);
    const state = seen?.state ?? "gone";
    let reason: string | undefined;
    if (state === "gone") {
      reason = seen?.preempted
        ? PREEMPTED_REASON
        : instance.status === "launching"
          ? "instance never started"
          : "instance is gone";
    } else if (instance.health?.verdict === "fail")
      // The agent claims nothing on a failed GPU; replacing it is ours to do.
      reason = `${UNHEALTHY_REASON}${instance.health.reasons.join("; ") || "GPU health check failed"}`;
    else if (now >= instance.deadline) reason = "ttl reached";
    else if (instance.heartbeatAt === undefined && now - instance.launchedAt > launchTimeout)
      reason = "agent never reported in";
    else if (instance.heartbeatAt !== undefined && now - instance.heartbeatAt > heartbeatTimeout)
      reason = "agent heartbeat stopped";
    if (reason === undefined) live.push(instance);
    else {
      doomed.push({ instance, reason });
      if (reason !== "ttl reached") lost.push(instance.instanceId);
    }
  }
  await terminate(doomed);
  result.preemptions = preemptions;

  // 2. Leases that expired go back to pending (or to cancelled, if the sweep already ended).
  const cancelled = sweep.status === "cancelled";
  const ended = TERMINAL_SWEEP_STATUSES.includes(sweep.status);
  for (let shard = 0; shard < sweep.shardCount; shard++) {
    const expired = await store.listRunningTasks(sweepId, shard, { expiredBefore: now });
    for (const task of expired) {
      if (task.gang && !ended) {
        // A lost gang member takes its whole gang down with it, to restart together (core/gang.ts).
        const reason = `lease held by ${task.leaseOwner ?? "?"} expired`;
        const restart = await restartGang(
          deps,
          sweep,
          { ...task, gang: task.gang },
          { kind: "lost", reason },
        );
        if (restart.outcome?.status === "failed")
          emit({
            type: "TaskFailed",
            taskIndex: task.index,
            attempt: task.attempt,
            error: restart.outcome.error,
          });
        else result.requeued.push(...restart.moved);
        continue;
      }
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
      if (done && update.status === "failed") {
        emit({
          type: "TaskFailed",
          taskIndex: task.index,
          attempt: done.attempt,
          ...(done.error ? { error: done.error } : {}),
        });
      }
    }
  }

  // Gang members left behind by a restart that did not finish are brought along.
  if (spec.nodes > 1 && !ended)
    result.requeued.push(
      ...(await completeGangRestarts(store, sweep, await store.listTasks(sweepId, sweep.shardCount), now)),
    );

  // 2b. Tasks that wait (a queue's jobs, a pipeline stage's tasks): settle them (agents settle a
  //     queue's as its jobs finish; this is the backstop), stop starting jobs after a failure under
  //     on_failure: stop, fail a queue once its global_timeout has passed and a stage whose input
  //     stage failed (the next pass cancels what has not started). Only ready work wants instances.
  let readyOpen: number | undefined;
  if ((sweep.queue || sweep.stage) && sweep.status === "running") {
    const tasks = await store.listTasks(sweepId, sweep.shardCount);
    const failWith = async (reason: string) => {
      const finished = finalStatus(tasks);
      const failed = await ignoreConflict(
        store.updateSweep(
          sweepId,
          { status: "running" },
          { status: "failed", reason, finishedAt: now, updatedAt: now },
        ),
      );
      if (failed) {
        result.finished = result.status = "failed";
        emit({
          type: "SweepFailed",
          name: sweep.name,
          reason,
          succeeded: finished.succeeded,
          failed: finished.failedTasks.length,
          failedTasks: finished.failedTasks.slice(0, 100),
        });
      }
      return result;
    };
    const timeout = sweep.queue?.global_timeout;
    if (timeout !== undefined && now - sweep.createdAt >= timeout) {
      const so = finalStatus(tasks).reason;
      return failWith(
        `global_timeout of ${formatDuration(timeout)} passed with ${so}; running jobs are stopped`,
      );
    }
    const gate = sweep.stage ? await loadStageGate(store, sweep.stage) : undefined;
    if (gate?.fail) return failWith(gate.fail);
    await settleAll(store, sweep, tasks, {
      now,
      stopOnFailure: sweep.queue?.on_failure === "stop",
      ...(gate ? { gate: gate.verdict } : {}),
    });
    readyOpen = tasks.filter((t) => t.status === "pending" && t.readyAt !== WAITING).length;
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
  // Slots of the instances this sweep launches: from the offer the provider would launch (8 on an
  // 8-GPU type for gpus: 1), or the spec's own answer where the provider has no GPU inventory.
  // A gang member takes a whole instance.
  const slots = spec.nodes > 1 ? 1 : ((await compute.expectedSlots?.(sweep)) ?? slotsOn(spec.resources, 0));
  const open = await store.countOpenTasks(sweepId, sweep.shardCount, { cap: spec.max_instances * slots });

  // 4. Finish a running sweep whose tasks are all final (checked again with a consistent read).
  let status: SweepStatus = sweep.status;
  const finish = async (finished: Finished) => {
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
      emit(
        finished.status === "succeeded"
          ? {
              type: "SweepCompleted",
              name: sweep.name,
              reason: finished.reason,
              succeeded: finished.succeeded,
            }
          : {
              type: "SweepFailed",
              name: sweep.name,
              reason: finished.reason,
              succeeded: finished.succeeded,
              failed: finished.failedTasks.length,
              failedTasks: finished.failedTasks.slice(0, 100),
            },
      );
    } else status = (await store.getSweep(sweepId))?.status ?? status;
  };
  if (status === "running" && open.pending + open.running === 0) {
    const tasks = await store.listTasks(sweepId, sweep.shardCount);
    if (tasks.every((t) => TERMINAL_TASK_STATUSES.includes(t.status))) await finish(finalStatus(tasks));
  }

  // Budget (aws: instances carry prices). Once reached, it is recorded once and nothing more is
  // launched; when no instance is left to finish the open work, the sweep fails with the reason.
  const cost: SweepCost = { spent: spentSoFar(records, now), committed: committedCost(records, now) };
  if (cost.spent > 0 || cost.committed > 0) result.cost = cost;
  const budgetLeft = spec.budget === undefined ? undefined : spec.budget - cost.spent - cost.committed;
  let budgetReached = sweep.budgetReachedAt !== undefined;
  if (status === "running" && budgetLeft !== undefined && budgetLeft <= 0 && !budgetReached) {
    budgetReached = true;
    const reason = `budget of $${spec.budget} reached: $${cost.spent.toFixed(2)} spent, $${cost.committed.toFixed(2)} committed by running instances; no more launches`;
    const marked = await ignoreConflict(
      store.updateSweep(
        sweepId,
        { status: "running", absent: ["budgetReachedAt"] },
        { budgetReachedAt: now, reason, updatedAt: now },
      ),
    );
    if (marked) {
      emit({
        type: "BudgetReached",
        budget: spec.budget as number,
        spent: cost.spent,
        committed: cost.committed,
      });
    }
  }
  if (status === "running" && budgetReached && live.length === 0 && open.pending > 0) {
    const tasks = await store.listTasks(sweepId, sweep.shardCount);
    const finished = finalStatus(tasks);
    const notRun = tasks.filter((t) => t.status === "pending").length;
    await finish({
      ...finished,
      status: "failed",
      reason: `budget of $${spec.budget} reached with ${notRun} task(s) not run; ${finished.reason}`,
    });
  }
  result.status = status;

  // 5. Terminal: let agents drain, then terminate stragglers; deactivate once nothing is left.
  if (status === "succeeded" || status === "failed" || status === "cancelled") {
    const since = sweep.finishedAt ?? sweep.cancelRequestedAt ?? now;
    const drainUntil = since + (opts.drainMs ?? 30_000) + (cancelled ? spec.grace : 0);
    const stillLive: InstanceRecord[] = [];
    const drained: Array<{ instance: InstanceRecord; reason: string }> = [];
    for (const instance of live) {
      if (now >= drainUntil) drained.push({ instance, reason: `sweep ${status}` });
      else stillLive.push(instance);
    }
    await terminate(drained);
    // A sweep stays active while a machine whose agent left is still being stopped.
    if (stillLive.length === 0 && stragglers.length === 0 && open.running === 0) {
      // And while the provider still holds something for it (a placement group empties only once
      // its instances are fully terminated): the next pass asks again, for as long as terminated
      // instances are watched; after that whatever is left is reported, not waited for.
      const held = await compute.release?.(sweep, records).catch((error: unknown) => `${error}`);
      if (held) {
        result.held = held;
        if (now - since < DEREGISTERED_WATCH_MS) return result;
      }
      const off = await ignoreConflict(
        store.updateSweep(sweepId, { active: true }, { active: false, updatedAt: now }),
      );
      result.deactivated = off !== undefined;
      if (off && status === "cancelled") {
        emit({ type: "SweepCancelled", name: sweep.name, reason: off.reason ?? "cancelled" });
      }
    }
    return result;
  }

  // 6. Running: keep as many instances as the open work needs, never more than max_instances.
  const pending = readyOpen ?? open.pending;
  const want = desiredInstances(spec, pending + open.running, slots);
  const missing = want - live.length - inFlight;
  if (missing > 0 && pending > 0 && !budgetReached) {
    const launched = await launch(deps, sweep, missing, slots, now, {
      preemptions,
      ...(budgetLeft !== undefined ? { budgetLeft } : {}),
      emit,
    });
    result.launched = launched;
    // Each new instance stands in for one lost this pass, in order, while there are some.
    launched.forEach((instanceId, i) => {
      if (i < lost.length) emit({ type: "InstanceReplaced", instanceId, replaces: [lost[i] as string] });
    });
  }
  return result;
}

interface Finished {
  status: SweepStatus;
  reason: string;
  succeeded: number;
  failedTasks: number[];
}

function finalStatus(tasks: readonly TaskRecord[]): Finished {
  const count = (s: TaskRecord["status"]) => tasks.filter((t) => t.status === s).length;
  const failedTasks = tasks.filter((t) => t.status === "failed").map((t) => t.index);
  const cancelledTasks = count("cancelled");
  const succeeded = count("succeeded");
  const parts = [`${succeeded} succeeded`];
  if (failedTasks.length) parts.push(`${failedTasks.length} failed`);
  if (cancelledTasks) parts.push(`${cancelledTasks} cancelled`);
  return {
    status: failedTasks.length || cancelledTasks ? "failed" : "succeeded",
    reason: parts.join(", "),
    succeeded,
    failedTasks,
  };
}

/** Reserves `count` launch sequence numbers with a conditional write, records the instances, then launches them. */
async function launch(
  deps: ReconcileDeps,
  sweep: SweepRecord,
  count: number,
  slots: number,
  now: number,
  context: {
    preemptions: number;
    budgetLeft?: number;
    emit: (fields: Parameters<typeof spawnEvent>[2]) => void;
  },
) {
  const { store, compute } = deps;
  const reserved = await ignoreConflict(
    store.updateSweep(
      sweep.sweepId,
      { status: "running", launchSeq: sweep.launchSeq },
      {
        launchSeq: sweep.launchSeq + count,
        launchReservedAt: now,
        // Counted from the instance records, so the stored value is exact, not an increment.
        preemptions: context.preemptions,
        updatedAt: now,
      },
    ),
  );
  // Another reconcile reserved first; it launches, we don't.
  if (!reserved) return [];
  const deadline = now + sweep.spec.ttl;
  const ids = Array.from({ length: count }, (_, i) => instanceIdFor(sweep.sweepId, sweep.launchSeq + i));
  await mapLimit(ids, 16, (instanceId) =>
    ignoreConflict(
      store.putInstance({
        sweepId: sweep.sweepId,
        instanceId,
        provider: sweep.provider,
        status: "launching",
        slots,
        launchedAt: now,
        deadline,
      }),
    ),
  );
  let results: LaunchResult[];
  try {
    results = await compute.launch({
      sweep: reserved,
      instanceIds: ids,
      deadline,
      ...(context.budgetLeft !== undefined ? { budgetLeft: context.budgetLeft } : {}),
    });
  } catch (error) {
    // An API error fails every instance of the request; each gets the reason below.
    results = ids.map((instanceId) => ({
      instanceId,
      error: error instanceof Error ? error.message : String(error),
    }));
  }
  const failures = results.filter((r) => r.error || !r.providerRef);
  const recorded = await mapLimit(results, 16, async (r) => {
    if (r.error || !r.providerRef) {
      const error = r.error ?? "no instance returned";
      const done = await ignoreConflict(
        store.updateInstance(
          sweep.sweepId,
          r.instanceId,
          { status: "launching" },
          { status: "terminated", terminatedAt: now, reason: `launch failed: ${error}` },
        ),
      );
      if (done) context.emit({ type: "InstanceLaunchFailed", instanceId: r.instanceId, error });
      return undefined;
    }
    const done = await ignoreConflict(
      store.updateInstance(
        sweep.sweepId,
        r.instanceId,
        { status: ["launching", "running"] },
        {
          providerRef: r.providerRef,
          host: r.host ?? null,
          ...(r.placement ? { placement: r.placement } : {}),
          ...(r.gpus !== undefined ? { gpus: r.gpus } : {}),
        },
      ),
    );
    if (done) {
      context.emit({
        type: "InstanceLaunched",
        instanceId: r.instanceId,
        providerRef: r.providerRef,
        ...(r.placement ? { placement: r.placement } : {}),
      });
    }
    return r.instanceId;
  });
  const first = failures[0];
  if (first) {
    // Say why the sweep is not progressing; a stuck sweep always has a reason.
    const reason = `launch failed: ${first.error ?? "no instance returned"}`;
    await ignoreConflict(store.updateSweep(sweep.sweepId, { status: "running" }, { reason, updatedAt: now }));
  }
  return recorded.filter((id): id is string => id !== undefined);
}

/** What an EC2 event said about one instance (the orchestrator parses the EventBridge event). */
export interface InstanceEvent {
  /** The provider handle: the EC2 instance id. */
  providerRef: string;
  cause: "interruption" | "rebalance" | "state-change";
  /** The new state (state-change), or the announced action (interruption). */
  state?: string;
}

/** States after which an EC2 instance runs nothing of ours again. */
const ENDED_STATES = new Set(["shutting-down", "terminated", "stopping", "stopped"]);

/**
 * An EC2 interruption warning, rebalance recommendation or state change for one instance:
 * finds the instance by its EC2 id (undefined when it is not one of ours), records what the
 * event says with a conditional write, then reconciles its sweep, which launches a
 * replacement. A spot interruption warning marks the instance preempted at once (it has about
 * two minutes left; the agent checkpoints and hands its tasks back meanwhile), so the
 * replacement starts before the old one is gone. The same event delivered twice changes
 * nothing the second time: the write's condition fails and the pass finds nothing to launch.
 */
export async function handleInstanceEvent(
  deps: ReconcileDeps,
  event: InstanceEvent,
): Promise<{ instance: InstanceRecord; result: ReconcileResult } | undefined> {
  const instance = await deps.store.findInstanceByProviderRef(event.providerRef);
  if (!instance) return undefined;
  const now = deps.clock.now();
  const events: SpawnEvent[] = [];
  const reason =
    event.cause === "interruption"
      ? PREEMPTED_REASON
      : event.cause === "state-change" && event.state && ENDED_STATES.has(event.state)
        ? `instance ${event.state}`
        : undefined;
  let marked = false;
  if (reason && instance.status !== "terminated") {
    marked =
      (await ignoreConflict(
        deps.store.updateInstance(
          instance.sweepId,
          instance.instanceId,
          { status: ["launching", "running"] },
          { status: "terminated", terminatedAt: now, reason },
        ),
      )) !== undefined;
  }
  const result = await pass(deps, instance.sweepId);
  if (marked) {
    const ref = { providerRef: event.providerRef };
    events.push(
      spawnEvent(
        instance.sweepId,
        now,
        reason === PREEMPTED_REASON
          ? {
              type: "InstancePreempted",
              instanceId: instance.instanceId,
              ...ref,
              ...(instance.placement ? { placement: instance.placement } : {}),
              preemptions: result.preemptions,
            }
          : { type: "InstanceReaped", instanceId: instance.instanceId, ...ref, reason: reason as string },
      ),
    );
    result.terminated.unshift(instance.instanceId);
    // The first new instance the pass did not already pair with an instance it found lost.
    const paired = result.events.filter((e) => e.type === "InstanceReplaced").length;
    result.launched.slice(paired, paired + 1).forEach((instanceId) => {
      events.push(
        spawnEvent(instance.sweepId, now, {
          type: "InstanceReplaced",
          instanceId,
          replaces: [instance.instanceId],
        }),
      );
    });
  }
  result.events.unshift(...events);
  await publish(deps, result.events);
  return { instance, result };
}

/**
 * The out-of-band reaper: terminates any live instance past its absolute deadline,
 * whatever state its sweep is in. Never trusts the instance to stop itself.
 */
export async function reapExpiredInstances(
  deps: Pick<ReconcileDeps, "store" | "compute" | "clock" | "events">,
): Promise<string[]> {
  const now = deps.clock.now();
  // An instance is expired at its deadline (reconcile uses >= too); the store's bound is exclusive.
  const expired = await deps.store.listInstancesPastDeadline(now + 1);
  const reaped: string[] = [];
  const events: SpawnEvent[] = [];
  if (expired.length > 0) await deps.compute.terminate(expired, "ttl reached");
  for (const instance of expired) {
    const done = await ignoreConflict(
      deps.store.updateInstance(
        instance.sweepId,
        instance.instanceId,
        { status: ["launching", "running"] },
        { status: "terminated", terminatedAt: now, reason: "ttl reached" },
      ),
    );
    if (!done) continue;
    reaped.push(instance.instanceId);
    events.push(
      spawnEvent(instance.sweepId, now, {
        type: "InstanceReaped",
        instanceId: instance.instanceId,
        ...(instance.providerRef ? { providerRef: instance.providerRef } : {}),
        reason: "ttl reached",
      }),
    );
  }
  await publish(deps, events);
  return reaped;
}
