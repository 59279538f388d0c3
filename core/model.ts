/**
 * The records the control plane keeps: sweeps, tasks, instances. These are the domain
 * shapes; how they map to DynamoDB items (keys, sparse index attributes) is the store
 * adapter's business (see docs/data-model.md). Validated with zod on read, so a record
 * written by one version and read by another fails loudly instead of half-working.
 */
import { z } from "zod";
import { QueueJob, QueueSettings } from "./queue.js";
import { ParamValue, SweepSpec } from "./spec.js";

export const SweepStatus = z.enum(["creating", "running", "succeeded", "failed", "cancelled"]);
export type SweepStatus = z.infer<typeof SweepStatus>;
/** Statuses a sweep never leaves. `cancelled` is sticky: nothing restarts a cancelled sweep. */
export const TERMINAL_SWEEP_STATUSES: readonly SweepStatus[] = ["succeeded", "failed", "cancelled"];

export const TaskStatus = z.enum(["pending", "running", "succeeded", "failed", "cancelled"]);
export type TaskStatus = z.infer<typeof TaskStatus>;
export const TERMINAL_TASK_STATUSES: readonly TaskStatus[] = ["succeeded", "failed", "cancelled"];

export const InstanceStatus = z.enum(["launching", "running", "terminated"]);
export type InstanceStatus = z.infer<typeof InstanceStatus>;

export const ProviderName = z.enum(["local", "aws"]);
export type ProviderName = z.infer<typeof ProviderName>;

/** Where a sweep's workdir bundle lives in the object store. */
export const BundleRef = z.object({
  key: z.string(),
  sha256: z.string(),
  bytes: z.number().int().nonnegative(),
});
export type BundleRef = z.infer<typeof BundleRef>;

/** How a pipeline stage waits on another: the whole stage, or task i on task i (`n_to_n`). */
export const DependencyType = z.enum(["whole", "n_to_n"]);

/** A stage a pipeline stage waits on (core/pipeline.ts). */
export const StageInput = z.object({ stage: z.string(), sweepId: z.string(), type: DependencyType });
export type StageInput = z.infer<typeof StageInput>;

/** What a stage's sweep record says about its place in its pipeline. */
export const StageOf = z.object({
  pipelineId: z.string(),
  name: z.string(),
  /** The stages it waits on, and how. */
  inputs: z.array(StageInput),
});
export type StageOf = z.infer<typeof StageOf>;

/** A pipeline's own record of its stages, in file order. */
export const PipelineStages = z.array(
  z.object({
    name: z.string(),
    sweepId: z.string(),
    kind: z.enum(["sweep", "queue"]),
    inputs: z.array(z.object({ stage: z.string(), type: DependencyType })),
  }),
);
export type PipelineStages = z.infer<typeof PipelineStages>;

export const SweepRecord = z.object({
  sweepId: z.string(),
  name: z.string(),
  owner: z.string(),
  provider: ProviderName,
  status: SweepStatus,
  /** True while the control plane still has work for this sweep (tasks, or instances to reap). */
  active: z.boolean(),
  spec: SweepSpec,
  taskCount: z.number().int().nonnegative(),
  shardCount: z.number().int().min(1),
  bundle: BundleRef.optional(),
  /** Next instance sequence number; advanced with a conditional write before launching, so concurrent reconciles never over-launch. */
  launchSeq: z.number().int().nonnegative(),
  /** When the last launch reservation was made: reserved numbers without instance records count as in flight until the launch timeout. */
  launchReservedAt: z.number().optional(),
  createdAt: z.number(),
  updatedAt: z.number(),
  finishedAt: z.number().optional(),
  cancelRequestedAt: z.number().optional(),
  /** Why the sweep ended as it did, or why it is stuck (never "RUNNABLE" with no reason). */
  reason: z.string().optional(),
  /** Instances of this sweep lost to spot interruptions so far (drives `fallback_after_preemptions`). */
  preemptions: z.number().int().nonnegative().optional(),
  /** When spent plus committed cost reached `budget`; set once, after which nothing is launched. */
  budgetReachedAt: z.number().optional(),
  /** Absolute path of the directory holding the spec file the sweep was launched from (local provider). */
  specDir: z.string().optional(),
  /** The team the sweep belongs to on the AWS dashboard (core/teams.ts); absent means `default`. */
  team: z.string().optional(),
  /**
   * The W3C traceparent of the launch that created the sweep (core/traceparent.ts): agents run
   * each attempt as a child span of it (`SPAWN_TRACEPARENT`), so one sweep's story is one trace.
   */
  traceparent: z.string().optional(),
  /**
   * Set on a queue (`spawn queue launch`): its tasks are the queue's jobs, each with its own command
   * and dependencies (TaskRecord `job`, `dependsOn`). Absent on a sweep.
   */
  queue: QueueSettings.optional(),
  /** Set on a pipeline (`stages:` in a spec): it has no tasks; its stages run as their own sweeps. */
  pipeline: PipelineStages.optional(),
  /** Set on a pipeline's stage: which pipeline, and the stages it waits on (its tasks start waiting). */
  stage: StageOf.optional(),
});
export type SweepRecord = z.infer<typeof SweepRecord>;

/** The newest committed checkpoint of a task: where its manifest is, and what it holds. */
export const CheckpointRef = z.object({
  /** `<attempt>-<sequence>`, ordered: later attempts and later syncs sort after. */
  id: z.string(),
  /** Object-store key of the manifest (committed last, after every file it names). */
  key: z.string(),
  attempt: z.number().int().min(1),
  /** Epoch ms the manifest was committed. */
  at: z.number(),
  files: z.number().int().nonnegative(),
  bytes: z.number().int().nonnegative(),
  /** From a `checkpoint.json` or the newest file name (`step-200.pt`), when either says. */
  step: z.number().optional(),
  epoch: z.number().optional(),
});
export type CheckpointRef = z.infer<typeof CheckpointRef>;

/** A member row's place in its gang. */
export const GangMember = z.object({
  /** The gang task's index (SPAWN_TASK_INDEX): the row index divided by `size`. */
  task: z.number().int().nonnegative(),
  rank: z.number().int().nonnegative(),
  size: z.number().int().min(2),
  epoch: z.number().int().nonnegative(),
});
export type GangMember = z.infer<typeof GangMember>;

/** A gang member's address, published through the store (never EC2 tags, which cap at 256 characters). */
export const GangPeer = z.object({
  instanceId: z.string(),
  /** Private IPv4 (aws: IMDS local-ipv4; local: 127.0.0.1). */
  address: z.string(),
  /** The member's spawn hostname (`i3.<sweep>.<zone>`, docs/dns.md); absent when it has none. */
  dnsName: z.string().optional(),
  /** A free port this member picked; rank 0's is MASTER_PORT. */
  port: z.number().int().min(1).max(65_535).optional(),
});
export type GangPeer = z.infer<typeof GangPeer>;

export const TaskRecord = z.object({
  sweepId: z.string(),
  index: z.number().int().nonnegative(),
  shard: z.number().int().nonnegative(),
  /** Short content hash of the task's params and repeat number: the same spec gives the same ids. */
  taskId: z.string(),
  params: z.record(z.string(), ParamValue),
  status: TaskStatus,
  /** Attempts started so far (0 before the first claim). The running attempt is `attempt`. */
  attempt: z.number().int().nonnegative(),
  /** Attempts that failed (non-zero exit, timeout); counted against retry.max_attempts. */
  failures: z.number().int().nonnegative(),
  /** Attempts lost to infrastructure (lease expired, preemption); not counted against max_attempts. */
  lost: z.number().int().nonnegative(),
  /** Epoch ms from which a pending task may be claimed (retry backoff). */
  readyAt: z.number().int().nonnegative(),
  leaseOwner: z.string().optional(),
  leaseExpiresAt: z.number().int().nonnegative().optional(),
  startedAt: z.number().optional(),
  finishedAt: z.number().optional(),
  exitCode: z.number().int().optional(),
  signal: z.string().optional(),
  durationMs: z.number().optional(),
  /** Final value of every key seen in the task's metrics file (last value wins). */
  metrics: z.record(z.string(), z.unknown()).optional(),
  /** Object-store keys of the files the task produced. */
  outputs: z.array(z.string()).optional(),
  /** Why the last attempt ended other than with exit 0, in words. */
  error: z.string().optional(),
  /** The newest checkpoint synced by any attempt; the next attempt restores it (SPAWN_RESUME=1). */
  checkpoint: CheckpointRef.optional(),
  /**
   * Set on the member rows of a gang (spec `nodes` above 1): gang task `task` is stored as `size`
   * rows, `task * size + rank`. `epoch` counts the gang's restarts; every member at one epoch is
   * started, failed or restarted together (core/gang.ts).
   */
  gang: GangMember.optional(),
  /** Where this member can be reached, written by its agent once it holds the row (rendezvous). */
  peer: GangPeer.optional(),
  /** Attempts lost to a spot interruption notice (a subset of `lost`). */
  preempted: z.number().int().nonnegative().optional(),
  /** What the agent could not do as the spec asked, said plainly (e.g. network: none not enforced). */
  warning: z.string().optional(),
  /** A queue job's own definition: what this task runs instead of the spec's command. */
  job: QueueJob.optional(),
  /** Tasks of the same sweep that must succeed before this one may start (queue jobs' depends_on). */
  dependsOn: z.array(z.number().int().nonnegative()).optional(),
  /** Tasks that depend on this one: looked at when it finishes. */
  dependents: z.array(z.number().int().nonnegative()).optional(),
  /** The end of a failed-for-good attempt's log (the queue's dead-letter list shows it). */
  logTail: z.string().optional(),
  updatedAt: z.number(),
});
export type TaskRecord = z.infer<typeof TaskRecord>;

/** Where an instance runs and what it costs (aws). Cost reports multiply run time by `pricePerHour`. */
export const Placement = z.object({
  instanceType: z.string(),
  region: z.string(),
  az: z.string().optional(),
  market: z.enum(["spot", "on-demand"]),
  /** USD per instance-hour at launch, from the price catalog (never invented). */
  pricePerHour: z.number().nonnegative(),
  /** Where the price came from: "snapshot <date>", "DescribeSpotPriceHistory", "Pricing API". */
  priceSource: z.string(),
});
export type Placement = z.infer<typeof Placement>;

export const InstanceRecord = z.object({
  sweepId: z.string(),
  instanceId: z.string(),
  provider: ProviderName,
  status: InstanceStatus,
  slots: z.number().int().min(1),
  launchedAt: z.number(),
  /** Absolute deadline (launch + ttl); stop/start never moves it. The reaper terminates past it. */
  deadline: z.number().int().nonnegative(),
  heartbeatAt: z.number().optional(),
  /** Provider handle: a pid for local, an EC2 instance id for aws. */
  providerRef: z.string().optional(),
  host: z.string().optional(),
  /** Set once the provider reports where the instance landed (aws). */
  placement: Placement.optional(),
  /** GPUs the instance has (from the catalog on aws, from the executor's probe on the instance). */
  gpus: z.number().nonnegative().optional(),
  terminatedAt: z.number().optional(),
  reason: z.string().optional(),
  /** The last interruption notice or rebalance recommendation the agent saw (IMDS), as it came. */
  interruption: z
    .object({
      kind: z.enum(["terminate", "stop", "hibernate", "rebalance"]),
      /** Epoch ms the agent saw it. */
      seenAt: z.number(),
      /** Epoch ms the action is due (interruption notices only). */
      actionAt: z.number().optional(),
    })
    .optional(),
  /** Set once the agent has warned that the deadline is near (5 minutes before). */
  deadlineWarnedAt: z.number().optional(),
  /** What the instance asked to be done with it when it went idle (aws: terminate, stop or hibernate). */
  idleAction: z.enum(["terminate", "stop", "hibernate"]).optional(),
  /**
   * The agent's GPU health gate at boot (`spawn-executor health --quick`). `fail`: the agent
   * claims nothing and reconcile terminates and replaces the instance (InstanceUnhealthy).
   */
  health: z
    .object({
      verdict: z.enum(["pass", "warn", "fail"]),
      /** Epoch ms the check finished. */
      checkedAt: z.number(),
      /** Every warning and failure, in words: "GPU 0 (GPU-…): nvml: 2 pending row remaps". */
      reasons: z.array(z.string()),
    })
    .optional(),
  /** The instance's hostname (docs/dns.md), as the agent's registration at start left it. */
  dns: z
    .object({
      /** `<name>.<sweep>.<zone>` */
      host: z.string(),
      status: z.enum(["registered", "failed"]),
      /** Epoch ms of the answer, or of giving up waiting for it. */
      at: z.number(),
      /** Why it failed: the dns-updater's refusal or the error, in words. */
      error: z.string().optional(),
    })
    .optional(),
});
export type InstanceRecord = z.infer<typeof InstanceRecord>;

/** Shards spread pending-task claims so thousands of agents don't contend on one partition key. */
export function shardCountFor(taskCount: number): number {
  return Math.min(32, Math.max(1, Math.ceil(taskCount / 500)));
}

/** Which shard a task lives in: round-robin, so every shard holds a similar share. */
export function shardOf(index: number, shardCount: number): number {
  return index % shardCount;
}

/** `<slug of name>-<time base36><4 random>`: sortable by creation, unique without coordination. */
export function readableId(name: string, fallback: string, now: number, random: () => number): string {
  const slug =
    name
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .replace(/^-+|-+$/g, "")
      .slice(0, 32) || fallback;
  const suffix = Array.from(
    { length: 4 },
    () => "abcdefghijklmnopqrstuvwxyz0123456789"[Math.floor(random() * 36)],
  ).join("");
  return `${slug}-${now.toString(36)}${suffix}`;
}
