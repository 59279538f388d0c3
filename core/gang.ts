/**
 * Gangs (spec `nodes` above 1): a task that runs as N members started together, one per
 * instance, for MPI or PyTorch DDP. See docs/gangs.md and ADR 0027.
 *
 * Gang task i is stored as N ordinary task rows, `i * N + rank`, each carrying
 * `gang: { task, rank, size, epoch }`: claims, leases, the reaper and checkpoints work on them
 * unchanged. What gangs add is one rule — the members of an epoch live and die together — kept
 * with single-item conditional writes: when one member's attempt ends in anything but success,
 * every row at that epoch moves to the next epoch (pending, or failed once the retry policy is
 * spent), each write conditioned on the row's status, attempt and epoch as read. A restart left
 * half-done (its writer died) is finished by whoever looks next: rows behind the newest epoch are
 * brought along to it. Everything here but {@link restartGang} and {@link completeGangRestarts}
 * is pure.
 */
import { mapLimit } from "./concurrency.js";
import { ConditionFailedError } from "./errors.js";
import type { GangMember, SweepRecord, TaskRecord } from "./model.js";
import type { ExpandedTask } from "./params.js";
import type { Clock, StateStore, TaskExpectation, TaskUpdate } from "./ports.js";
import { type AttemptEnd, afterAttempt } from "./retry.js";
import type { SweepSpec } from "./spec.js";

/** The row index of member `rank` of gang task `task`. */
export function memberIndex(task: number, rank: number, size: number): number {
  return task * size + rank;
}

/** The row indices of every member of `gang`'s task, by rank. */
export function memberIndices(gang: Pick<GangMember, "task" | "size">): number[] {
  return Array.from({ length: gang.size }, (_, rank) => memberIndex(gang.task, rank, gang.size));
}

/**
 * Expands a sweep's tasks into rows: unchanged for `nodes` 1; else N member rows per task, at
 * epoch 0, each with its own task id (the task's, plus the rank) and its own copy of the params.
 */
export function expandGangs<T extends ExpandedTask>(
  tasks: readonly T[],
  nodes: number,
): Array<T & { gang?: GangMember }> {
  if (nodes <= 1) return [...tasks];
  return tasks.flatMap((t) =>
    Array.from({ length: nodes }, (_, rank) => ({
      ...t,
      index: memberIndex(t.index, rank, nodes),
      taskId: `${t.taskId}r${rank}`,
      params: structuredClone(t.params),
      gang: { task: t.index, rank, size: nodes, epoch: 0 },
    })),
  );
}

/**
 * What the task contract calls the task: for a gang member, the gang task and the number of gang
 * tasks (SPAWN_TASK_INDEX, SPAWN_TASK_COUNT, `{{index}}`), never the row.
 */
export function contractIdentity(
  task: Pick<TaskRecord, "index" | "gang">,
  rowCount: number,
): { index: number; taskCount: number } {
  if (!task.gang) return { index: task.index, taskCount: rowCount };
  return { index: task.gang.task, taskCount: rowCount / task.gang.size };
}

/**
 * Instances a gang sweep keeps: whole gangs only (a partial gang can never start), as many as
 * the open rows need and max_instances allows.
 */
export function gangInstances(spec: Pick<SweepSpec, "nodes" | "max_instances">, openRows: number): number {
  const gangs = Math.min(Math.ceil(openRows / spec.nodes), Math.floor(spec.max_instances / spec.nodes));
  return gangs * spec.nodes;
}

/** One conditional write of a restart: the row, the state it must still be in, and the update. */
export interface GangWrite {
  index: number;
  expect: TaskExpectation;
  update: TaskUpdate;
}

/** A restart's writes: `restart` counts the attempt against the gang; `catch-up` only finishes one already counted. */
export interface GangPlan {
  kind: "restart" | "catch-up";
  writes: GangWrite[];
}

/** Statuses a restart moves; a cancelled row stays cancelled (the sweep ended). */
const MOVABLE: readonly TaskRecord["status"][] = ["pending", "running", "succeeded", "failed"];

type Member = TaskRecord & { gang: GangMember };

const isMember = (t: TaskRecord | undefined): t is Member => t?.gang !== undefined;

function expectationOf(row: Member): TaskExpectation {
  return { status: row.status, attempt: row.attempt, gangEpoch: row.gang.epoch };
}

/** Fields every member shares after a restart: the gang's counters, no lease, no peer. */
function sharedFields(
  decision: TaskUpdate & { status: TaskRecord["status"] },
  counters: Pick<TaskRecord, "failures" | "lost" | "preempted">,
  now: number,
): TaskUpdate {
  return {
    status: decision.status,
    failures: decision.failures ?? counters.failures,
    lost: decision.lost ?? counters.lost,
    ...(decision.preempted !== undefined || counters.preempted !== undefined
      ? { preempted: decision.preempted ?? counters.preempted }
      : {}),
    ...(decision.status === "pending"
      ? { readyAt: decision.readyAt ?? now, finishedAt: null }
      : { finishedAt: decision.finishedAt ?? now }),
    leaseOwner: null,
    leaseExpiresAt: null,
    peer: null,
    updatedAt: now,
  };
}

/**
 * The writes that restart a gang after member `triggerIndex`'s attempt at epoch `epoch` ended with
 * `end` (anything but success). The retry policy is applied once, to the gang, from the trigger's
 * counters (every member carries the same ones), and the outcome — pending at `epoch + 1` after the
 * backoff, or failed — is written to every member, including members that had already succeeded
 * at `epoch`. The trigger's row keeps what its attempt reported (exit code, metrics); every row's
 * `error` names the rank that ended the epoch.
 *
 * Order matters. The lowest-ranked movable row is written first: members restarting the same
 * epoch at once all contend for that one row, and only its winner goes on; the others re-plan and
 * find the epoch restarted, so every row gets the winner's outcome (one count, one backoff). The
 * trigger's own row comes last (unless it is that first row), so the gang keeps an open row
 * until the restart is written.
 *
 * When some member is already past `epoch`, that restart has happened (another member or the
 * reconciler did it): the result is {@link planCatchUp}'s, and nothing is counted twice.
 */
export function planRestart(
  members: readonly TaskRecord[],
  trigger: { index: number; epoch: number; end: AttemptEnd },
  policy: SweepSpec["retry"],
  now: number,
  random: number,
): GangPlan {
  const rows = members.filter(isMember);
  const newest = Math.max(...rows.map((r) => r.gang.epoch));
  const own = rows.find((r) => r.index === trigger.index);
  // Only the attempt that still holds its row at `epoch` may count the restart.
  if (own?.status !== "running" || newest > trigger.epoch || own.gang.epoch !== trigger.epoch)
    return { kind: "catch-up", writes: planCatchUp(rows, now) };
  const decision = afterAttempt(own, policy, trigger.end, now, random);
  const error = `rank ${own.gang.rank}: ${decision.error ?? "attempt ended"}`;
  const shared = { ...sharedFields(decision, own, now), error };
  const movable = rows
    .filter((r) => MOVABLE.includes(r.status) && r.gang.epoch === trigger.epoch)
    .sort((a, b) => a.gang.rank - b.gang.rank);
  // The first row is everyone's lock, even when it is the trigger's own; otherwise own goes last.
  const order = [
    movable[0]!,
    ...movable.slice(1).filter((r) => r !== own),
    ...(movable[0] === own ? [] : [own]),
  ];
  const writes = order.map((row) => ({
    index: row.index,
    expect: expectationOf(row),
    update: {
      ...(row === own ? decision : {}),
      ...shared,
      gang: { ...row.gang, epoch: trigger.epoch + 1 },
    },
  }));
  return { kind: "restart", writes };
}

/**
 * The writes that finish a restart left half-done: every member behind the gang's newest epoch
 * (not cancelled) is brought to it, in the state and with the counters of a member already there
 * (pending, or failed when the gang failed for good). Empty when every member is at one epoch.
 */
export function planCatchUp(members: readonly TaskRecord[], now: number): GangWrite[] {
  const rows = members.filter(isMember);
  if (rows.length === 0) return [];
  const newest = Math.max(...rows.map((r) => r.gang.epoch));
  const laggards = rows.filter((r) => r.gang.epoch < newest && MOVABLE.includes(r.status));
  if (laggards.length === 0) return [];
  const ahead = rows.filter((r) => r.gang.epoch === newest);
  // A member still waiting (pending or failed) carries the restart's outcome as it was written.
  const template = ahead.find((r) => r.status === "pending" || r.status === "failed") ?? ahead[0]!;
  const status = template.status === "failed" ? "failed" : "pending";
  const shared: TaskUpdate = {
    ...sharedFields(
      {
        status,
        readyAt: template.readyAt,
        ...(template.finishedAt ? { finishedAt: template.finishedAt } : {}),
      },
      template,
      now,
    ),
    ...(template.error ? { error: template.error } : {}),
  };
  return laggards.map((row) => ({
    index: row.index,
    expect: expectationOf(row),
    update: { ...shared, gang: { ...row.gang, epoch: newest } },
  }));
}

/** What {@link restartGang} did. */
export interface GangRestart {
  /** Rows it moved, by index. */
  moved: number[];
  /** The gang's new state when this call made the restart (not when it only caught rows up). */
  outcome?: { status: "pending" | "failed"; epoch: number; error: string };
}

/** The members of a gang, by rank, as stored now (a consistent read each). */
export async function readMembers(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  gang: Pick<GangMember, "task" | "size">,
): Promise<TaskRecord[]> {
  const rows = await mapLimit(memberIndices(gang), 16, (index) =>
    store.getTask(sweep.sweepId, index, sweep.shardCount),
  );
  return rows.filter((r): r is TaskRecord => r !== undefined);
}

async function applyWrites(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  writes: readonly GangWrite[],
  options: { firstDecides?: boolean } = {},
): Promise<{ moved: number[]; conflicts: number }> {
  const moved: number[] = [];
  let conflicts = 0;
  // In order (see planRestart): with `firstDecides`, losing the first write means another member
  // is restarting this epoch, and nothing more is written until re-read.
  for (const [i, w] of writes.entries()) {
    try {
      await store.updateTask(sweep.sweepId, w.index, sweep.shardCount, w.expect, w.update);
      moved.push(w.index);
    } catch (error) {
      if (!(error instanceof ConditionFailedError)) throw error;
      conflicts++;
      if (i === 0 && options.firstDecides) break;
    }
  }
  return { moved, conflicts };
}

/** Rounds of read-plan-write before a restart leaves the rest to the next reconcile pass. */
const RESTART_ROUNDS = 3;

/**
 * Restarts the gang of `trigger` (a member row as its attempt saw it) after that attempt ended with
 * `end`: see {@link planRestart}. A write whose condition fails (the row moved meanwhile: claimed,
 * finished, restarted by another member) is re-read and re-planned, a few rounds; what is still
 * left is finished by {@link completeGangRestarts}. Safe to call from every member at once: only
 * the first restart of an epoch is counted.
 */
export async function restartGang(
  deps: { store: StateStore; clock: Clock; random?: () => number },
  sweep: Pick<SweepRecord, "sweepId" | "shardCount" | "spec">,
  trigger: Pick<TaskRecord, "index"> & { gang: GangMember },
  end: AttemptEnd,
): Promise<GangRestart> {
  const random = deps.random ?? Math.random;
  const result: GangRestart = { moved: [] };
  for (let round = 0; round < RESTART_ROUNDS; round++) {
    const members = await readMembers(deps.store, sweep, trigger.gang);
    const now = deps.clock.now();
    const plan = planRestart(
      members,
      { index: trigger.index, epoch: trigger.gang.epoch, end },
      sweep.spec.retry,
      now,
      random(),
    );
    if (plan.writes.length === 0) break;
    const { moved, conflicts } = await applyWrites(deps.store, sweep, plan.writes, {
      firstDecides: plan.kind === "restart",
    });
    result.moved.push(...moved);
    const own = plan.writes.find((w) => w.index === trigger.index);
    if (plan.kind === "restart" && own && moved.includes(trigger.index) && own.update.status) {
      result.outcome = {
        status: own.update.status === "failed" ? "failed" : "pending",
        epoch: trigger.gang.epoch + 1,
        error: own.update.error ?? "",
      };
    }
    if (conflicts === 0) break;
  }
  return result;
}

/**
 * The reconciler's backstop (level-triggered): for every gang of a running gang sweep, brings
 * members left behind a restart to the gang's newest epoch. Returns the rows it moved.
 */
export async function completeGangRestarts(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  tasks: readonly TaskRecord[],
  now: number,
): Promise<number[]> {
  const gangs = new Map<number, TaskRecord[]>();
  for (const t of tasks) {
    if (!t.gang) continue;
    const members = gangs.get(t.gang.task) ?? [];
    members.push(t);
    gangs.set(t.gang.task, members);
  }
  const writes = [...gangs.values()].flatMap((members) => planCatchUp(members, now));
  return (await applyWrites(store, sweep, writes)).moved;
}
