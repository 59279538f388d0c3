/**
 * `spawn instances list|terminate|extend|connect` on the aws provider: the store says which
 * instances spawn launched, EC2 says what they are doing. Instances are named by our id
 * (`<sweep>-i<n>`) or their EC2 id. The clients come in as parameters.
 */
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  type EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { AbortError, ConditionFailedError, NotFoundError } from "#core/errors.js";
import type { InstanceRecord } from "#core/model.js";
import type { Clock, StateStore } from "#core/ports.js";

/** The EC2 client of a region. */
export type Ec2For = (region: string) => EC2Client;

export interface InstanceRow {
  record: InstanceRecord;
  /** EC2's state name, or "unknown to EC2" / "not launched". */
  ec2State: string;
}

const EC2_ID = /^i-[0-9a-f]{8,17}$/;
/** DescribeInstances filter values per request. */
const DESCRIBE_BATCH = 200;

/** Our id (`<sweep>-i<n>`) or an EC2 id → the instance's record; NotFoundError (exit 3) otherwise. */
export async function findInstance(store: StateStore, ref: string): Promise<InstanceRecord> {
  const hint = "run `spawn instances list` to see instance ids";
  if (EC2_ID.test(ref)) {
    const found = await store.findInstanceByProviderRef(ref);
    if (!found) throw new NotFoundError("instance", ref, `no spawn instance has this EC2 id; ${hint}`);
    return found;
  }
  const sweepId = /^(.+)-i\d+$/.exec(ref)?.[1];
  const found = sweepId ? await store.getInstance(sweepId, ref) : undefined;
  if (!found) throw new NotFoundError("instance", ref, hint);
  return found;
}

/** The instance's region and EC2 id, or an AbortError when it never reached EC2. */
function ec2Handle(instance: InstanceRecord): { region: string; ec2Id: string } {
  if (!instance.providerRef || !instance.placement) {
    throw new AbortError(
      `instance ${instance.instanceId} has no EC2 instance (${instance.reason ?? "its launch has not completed"})`,
    );
  }
  return { region: instance.placement.region, ec2Id: instance.providerRef };
}

/**
 * Instances of one sweep (every one, terminated included) or of every active sweep (live
 * ones), each with its EC2 state read in batches per region.
 */
export async function listInstances(
  store: StateStore,
  ec2For: Ec2For,
  options: { sweepId?: string } = {},
): Promise<InstanceRow[]> {
  const records = options.sweepId
    ? await store.listInstances(options.sweepId)
    : (await Promise.all((await store.listActiveSweeps()).map((s) => store.listInstances(s.sweepId))))
        .flat()
        .filter((i) => i.status !== "terminated");
  const byRegion = new Map<string, string[]>();
  for (const r of records) {
    if (!r.providerRef || !r.placement || r.status === "terminated") continue;
    byRegion.set(r.placement.region, [...(byRegion.get(r.placement.region) ?? []), r.providerRef]);
  }
  const states = new Map<string, string>();
  for (const [region, ids] of byRegion) {
    for (let i = 0; i < ids.length; i += DESCRIBE_BATCH) {
      let NextToken: string | undefined;
      do {
        const page: DescribeInstancesCommandOutput = await ec2For(region).send(
          new DescribeInstancesCommand({
            Filters: [{ Name: "instance-id", Values: ids.slice(i, i + DESCRIBE_BATCH) }],
            ...(NextToken ? { NextToken } : {}),
          }),
        );
        for (const reservation of page.Reservations ?? [])
          for (const ec2 of reservation.Instances ?? [])
            if (ec2.InstanceId) states.set(ec2.InstanceId, ec2.State?.Name ?? "unknown");
        NextToken = page.NextToken;
      } while (NextToken);
    }
  }
  return records.map((record) => ({
    record,
    ec2State: !record.providerRef
      ? "not launched"
      : record.status === "terminated"
        ? "terminated"
        : (states.get(record.providerRef) ?? "unknown to EC2"),
  }));
}

/** Terminates the EC2 instance, then records it terminated (a conditional write: once). */
export async function terminateInstance(
  deps: { store: StateStore; ec2For: Ec2For; clock: Clock },
  ref: string,
): Promise<InstanceRecord> {
  const instance = await findInstance(deps.store, ref);
  if (instance.status === "terminated") return instance;
  const { region, ec2Id } = ec2Handle(instance);
  await deps.ec2For(region).send(new TerminateInstancesCommand({ InstanceIds: [ec2Id] }));
  try {
    return await deps.store.updateInstance(
      instance.sweepId,
      instance.instanceId,
      { status: ["launching", "running"] },
      { status: "terminated", terminatedAt: deps.clock.now(), reason: "terminated by user" },
    );
  } catch (error) {
    // The reaper or reconcile recorded it first: it is terminated either way.
    if (error instanceof ConditionFailedError) return findInstance(deps.store, instance.instanceId);
    throw error;
  }
}

/**
 * Moves the absolute deadline `byMs` later: a conditional write that holds only while the
 * instance is live (never revives a terminated one), then the `spawn:deadline` tag.
 */
export async function extendInstance(
  deps: { store: StateStore; ec2For: Ec2For; clock: Clock },
  ref: string,
  byMs: number,
): Promise<InstanceRecord> {
  if (!(byMs > 0)) throw new AbortError(`--by must be a positive duration, got ${byMs} ms`);
  const instance = await findInstance(deps.store, ref);
  if (instance.status === "terminated") {
    throw new AbortError(
      `instance ${instance.instanceId} is already terminated (${instance.reason ?? "no reason"})`,
    );
  }
  const deadline = Math.max(instance.deadline, deps.clock.now()) + byMs;
  let updated: InstanceRecord;
  try {
    updated = await deps.store.updateInstance(
      instance.sweepId,
      instance.instanceId,
      { status: ["launching", "running"] },
      { deadline },
    );
  } catch (error) {
    if (error instanceof ConditionFailedError) {
      throw new AbortError(`instance ${instance.instanceId} was terminated meanwhile; its deadline stays`);
    }
    throw error;
  }
  if (instance.providerRef && instance.placement) {
    await deps.ec2For(instance.placement.region).send(
      new CreateTagsCommand({
        Resources: [instance.providerRef],
        Tags: [{ Key: "spawn:deadline", Value: new Date(deadline).toISOString() }],
      }),
    );
  }
  return updated;
}

/** What `connect` needs from the machine: finding programs and running one in the foreground. */
export interface ShellOps {
  which(program: string): Promise<boolean>;
  exec(command: string, args: readonly string[]): Promise<number>;
}

/**
 * Opens an SSM Session Manager shell on the instance (no SSH keys, no open ports) through the
 * aws CLI and its session-manager-plugin; says plainly which one is missing.
 */
export async function connectInstance(
  store: StateStore,
  ops: ShellOps,
  ref: string,
  target: { profile?: string },
): Promise<{ command: string[]; exitCode: number }> {
  const instance = await findInstance(store, ref);
  if (instance.status === "terminated") throw new AbortError(`instance ${instance.instanceId} is terminated`);
  const { region, ec2Id } = ec2Handle(instance);
  if (!(await ops.which("aws"))) {
    throw new AbortError(
      "the aws CLI is not installed; `spawn instances connect` runs `aws ssm start-session`",
      "install AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html",
    );
  }
  if (!(await ops.which("session-manager-plugin"))) {
    throw new AbortError(
      "the Session Manager plugin for the aws CLI is not installed",
      "install it: https://docs.aws.amazon.com/systems-manager/latest/userguide/session-manager-working-with-install-plugin.html",
    );
  }
  const args = [
    "ssm",
    "start-session",
    "--target",
    ec2Id,
    "--region",
    region,
    ...(target.profile ? ["--profile", target.profile] : []),
  ];
  return { command: ["aws", ...args], exitCode: await ops.exec("aws", args) };
}
