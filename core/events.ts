/**
 * What the control plane publishes about a sweep: one zod schema set, shared by the publisher
 * (reconcile through the EventSink port; EventBridge PutEvents on aws) and by every reader
 * (alerts, users' own EventBridge rules). Each event is emitted once per fact: reconcile
 * derives them from the outcome of its conditional writes, never from what it merely read, so
 * a pass that runs twice or concurrently does not publish twice.
 *
 * On EventBridge the entry's `DetailType` is the event's `type` and `Detail` is the whole event
 * as JSON, so a rule matches `{"detail-type": ["BudgetReached"]}` or
 * `{"detail": {"sweepId": ["lr-sweep-…"]}}`.
 */
import { z } from "zod";
import { Placement } from "./model.js";

/** Schema version of every event; a reader that sees another value must not guess. */
export const EVENT_VERSION = 1;

const base = {
  version: z.literal(EVENT_VERSION),
  sweepId: z.string(),
  /** Epoch ms of the fact (the reconcile pass's clock). */
  time: z.number(),
};

/** A task failed for good: its retries are used up (or it was lost too many times). */
export const TaskFailed = z.object({
  ...base,
  type: z.literal("TaskFailed"),
  taskIndex: z.number().int().nonnegative(),
  attempt: z.number().int().nonnegative(),
  exitCode: z.number().int().optional(),
  error: z.string().optional(),
});

/** Every task succeeded. */
export const SweepCompleted = z.object({
  ...base,
  type: z.literal("SweepCompleted"),
  name: z.string(),
  /** Counts in words, e.g. "200 succeeded". */
  reason: z.string(),
  succeeded: z.number().int().nonnegative(),
});

/** The sweep ended with failed or cancelled tasks, or could not go on (budget, launch timeout). */
export const SweepFailed = z.object({
  ...base,
  type: z.literal("SweepFailed"),
  name: z.string(),
  reason: z.string(),
  succeeded: z.number().int().nonnegative(),
  failed: z.number().int().nonnegative(),
  /** Indexes of the failed tasks, the first 100 (the sweep's results have them all). */
  failedTasks: z.array(z.number().int().nonnegative()),
});

/** The sweep was cancelled by its owner; reconcile noticed it and is stopping its work. */
export const SweepCancelled = z.object({
  ...base,
  type: z.literal("SweepCancelled"),
  name: z.string(),
  reason: z.string(),
});

/** Spent plus committed cost reached `budget`: no more instances are launched for the sweep. */
export const BudgetReached = z.object({
  ...base,
  type: z.literal("BudgetReached"),
  /** USD, from the spec. */
  budget: z.number(),
  /** USD already paid: run time so far × price of every instance. */
  spent: z.number(),
  /** USD the live instances will cost if they run until their deadline. */
  committed: z.number(),
});

/** An instance was started by the provider (EC2 instance id in `providerRef`). */
export const InstanceLaunched = z.object({
  ...base,
  type: z.literal("InstanceLaunched"),
  instanceId: z.string(),
  providerRef: z.string(),
  placement: Placement.optional(),
});

/** A launch asked for this instance and the provider did not start it. */
export const InstanceLaunchFailed = z.object({
  ...base,
  type: z.literal("InstanceLaunchFailed"),
  instanceId: z.string(),
  error: z.string(),
});

/** Spot took the instance back (interruption notice, or EC2 says it ended for that reason). */
export const InstancePreempted = z.object({
  ...base,
  type: z.literal("InstancePreempted"),
  instanceId: z.string(),
  providerRef: z.string().optional(),
  placement: Placement.optional(),
  /** Preemptions of this sweep so far, this one included. */
  preemptions: z.number().int().nonnegative(),
});

/** A new instance was launched in place of lost ones (preempted, gone, or reaped) while work remained. */
export const InstanceReplaced = z.object({
  ...base,
  type: z.literal("InstanceReplaced"),
  /** The new instance. */
  instanceId: z.string(),
  /** The instances it stands in for, when this pass lost any. */
  replaces: z.array(z.string()),
});

/** The control plane terminated an instance: ttl reached, silent agent, gone, or the sweep ended. */
export const InstanceReaped = z.object({
  ...base,
  type: z.literal("InstanceReaped"),
  instanceId: z.string(),
  providerRef: z.string().optional(),
  reason: z.string(),
});

/** An instance failed its GPU health check (the agent's executor probe); it takes no more tasks. */
export const InstanceUnhealthy = z.object({
  ...base,
  type: z.literal("InstanceUnhealthy"),
  instanceId: z.string(),
  providerRef: z.string().optional(),
  /** What the check found, in words (e.g. "GPU 0: 2 pending row remaps"). */
  reason: z.string(),
});

/** A GPU of an instance went past 95% of its memory in use (the agent, once per crossing). */
export const GpuMemoryPressure = z.object({
  ...base,
  type: z.literal("GpuMemoryPressure"),
  instanceId: z.string(),
  gpuIndex: z.number().int().nonnegative(),
  gpuUuid: z.string(),
  usedBytes: z.number().nonnegative(),
  totalBytes: z.number().positive(),
  /** Tasks running on that GPU when it crossed. */
  tasks: z.array(z.number().int().nonnegative()),
});

/** An instance's hostname could not be registered (dns-updater refused it or failed); it runs tasks regardless. */
export const DnsRegistrationFailed = z.object({
  ...base,
  type: z.literal("DnsRegistrationFailed"),
  instanceId: z.string(),
  /** The name it asked for, `<name>.<sweep>.<zone>`. */
  host: z.string(),
  /** The refusal reason (docs/dns.md) or the error, in words. */
  error: z.string(),
});

/** A schedule's firing created its sweep (`sweepId`). */
export const ScheduleLaunched = z.object({
  ...base,
  type: z.literal("ScheduleLaunched"),
  scheduleId: z.string(),
  /** The schedule's owner, who also owns the sweep. */
  owner: z.string(),
});

/** A schedule's firing could not launch its sweep; `sweepId` is the id that firing would have created. */
export const ScheduleLaunchFailed = z.object({
  ...base,
  type: z.literal("ScheduleLaunchFailed"),
  scheduleId: z.string(),
  /** The schedule's owner (the sweep does not exist to say it). */
  owner: z.string(),
  error: z.string(),
});

/** Any event the control plane publishes; `type` is the EventBridge detail-type. */
export const SpawnEvent = z.discriminatedUnion("type", [
  TaskFailed,
  SweepCompleted,
  SweepFailed,
  SweepCancelled,
  BudgetReached,
  InstanceLaunched,
  InstanceLaunchFailed,
  InstancePreempted,
  InstanceReplaced,
  InstanceReaped,
  InstanceUnhealthy,
  GpuMemoryPressure,
  DnsRegistrationFailed,
  ScheduleLaunched,
  ScheduleLaunchFailed,
]);
export type SpawnEvent = z.infer<typeof SpawnEvent>;
export type SpawnEventType = SpawnEvent["type"];

/** Every detail-type, for rules and docs. */
export const SPAWN_EVENT_TYPES: readonly SpawnEventType[] = SpawnEvent.options.map((o) => o.shape.type.value);

/** Distributes Omit over the union, so `event({type: "BudgetReached", ...})` checks the right fields. */
type EventFields<E> = E extends SpawnEvent ? Omit<E, "version" | "sweepId" | "time"> : never;

/** Builds a versioned event of a sweep at `time`. */
export function spawnEvent(sweepId: string, time: number, fields: EventFields<SpawnEvent>): SpawnEvent {
  return { version: EVENT_VERSION, sweepId, time, ...fields } as SpawnEvent;
}
