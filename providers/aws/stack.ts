/**
 * The deployed control plane as the CLI sees it: the CloudFormation stack's outputs (table
 * prefix, buckets, bus, orchestrator, launch config, image pipeline, version), read with
 * DescribeStacks and cached in the state directory, keyed by region and stack name and
 * tagged with the CLI version that read them.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { type CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { z } from "zod";
import { AbortError } from "#core/errors.js";
import pkg from "../../package.json" with { type: "json" };

/** This build's version; the stack records the version that deployed it. */
export const SPAWN_VERSION: string = pkg.version;

/** The stack name `spawn deploy` uses unless told otherwise (`--stack` / `SPAWN_STACK_NAME`). */
export const DEFAULT_STACK_NAME = "spawn";

/**
 * The outputs the stack publishes and the CLI reads: the CDK app writes exactly these keys
 * (one schema, shared by writer and reader). Extra outputs are ignored.
 */
export const StackOutputs = z.object({
  /** The spawn version that deployed the stack (compared with this CLI by `spawn doctor`). */
  SpawnVersion: z.string().min(1),
  TablePrefix: z.string().min(1),
  /** Agent binaries and workdir bundles (`bundles/…`). */
  ArtifactsBucket: z.string().min(1),
  /** Logs and outputs (`logs/…`, `outputs/…`). */
  ResultsBucket: z.string().min(1),
  EventBusName: z.string().min(1),
  OrchestratorFunctionName: z.string().min(1),
  /** SSM parameter holding the per-region launch configuration. */
  LaunchConfigParam: z.string().min(1),
  /** EC2 Image Builder pipeline of the GPU AMI (`spawn ami`). */
  ImagePipelineArn: z.string().min(1).optional(),
  /** Schedules (`spawn schedule --provider aws`): the group, what they invoke, as whom, and the DLQ. */
  ScheduleGroupName: z.string().min(1).optional(),
  SchedulerHandlerArn: z.string().min(1).optional(),
  SchedulerRoleArn: z.string().min(1).optional(),
  SchedulesDlqArn: z.string().min(1).optional(),
  /** Alerts (`spawn alerts --provider aws`): the key that seals webhook secrets, the email/SMS topic. */
  AlertsKeyArn: z.string().min(1).optional(),
  AlertsTopicArn: z.string().min(1).optional(),
  /** The dns-updater, when the stack has a hosted zone: a sweep's own role may invoke it. */
  DnsUpdaterArn: z.string().min(1).optional(),
});
export type StackOutputs = z.infer<typeof StackOutputs>;

export interface StackInfo {
  stackName: string;
  region: string;
  status: string;
  outputs: StackOutputs;
}

/** What the cache file holds. */
const CachedStack = z.object({
  cliVersion: z.string(),
  fetchedAt: z.number(),
  stack: z.object({ stackName: z.string(), region: z.string(), status: z.string(), outputs: StackOutputs }),
});

/** The stack is not deployed in this account and region: exit 2, with the fix. */
export class StackNotFoundError extends AbortError {
  override name = "StackNotFoundError";
  constructor(stackName: string, region: string) {
    super(
      `the spawn stack ${JSON.stringify(stackName)} is not deployed in ${region}`,
      `run \`spawn deploy --region ${region}\` first (or pass the --profile/--region it was deployed with)`,
    );
  }
}

/** CloudFormation says "Stack with id X does not exist" as a ValidationError. */
function isMissingStack(error: unknown): boolean {
  const e = error as { name?: string; message?: string };
  return e?.name === "ValidationError" && /does not exist/.test(e.message ?? "");
}

/** Statuses in which the outputs are those of a complete deployment. */
const USABLE_STATUSES = new Set(["CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE"]);

/** DescribeStacks, validated. Throws StackNotFoundError, or an AbortError naming the missing output or bad status. */
export async function describeStack(
  cfn: CloudFormationClient,
  stackName: string,
  region: string,
): Promise<StackInfo> {
  let stack: { StackStatus?: string; Outputs?: { OutputKey?: string; OutputValue?: string }[] } | undefined;
  try {
    stack = (await cfn.send(new DescribeStacksCommand({ StackName: stackName }))).Stacks?.[0];
  } catch (error) {
    if (isMissingStack(error)) throw new StackNotFoundError(stackName, region);
    throw error;
  }
  if (!stack || stack.StackStatus === "DELETE_COMPLETE") throw new StackNotFoundError(stackName, region);
  const status = stack.StackStatus ?? "UNKNOWN";
  if (!USABLE_STATUSES.has(status)) {
    throw new AbortError(
      `the spawn stack ${JSON.stringify(stackName)} in ${region} is ${status}`,
      status.endsWith("IN_PROGRESS")
        ? "wait for the deployment to finish, then try again"
        : "run `spawn deploy` to repair it (see the stack's events in the CloudFormation console)",
    );
  }
  const raw = Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
  const parsed = StackOutputs.safeParse(raw);
  if (!parsed.success) {
    const missing = parsed.error.issues.map((i) => i.path.join(".")).join(", ");
    throw new AbortError(
      `the spawn stack ${JSON.stringify(stackName)} in ${region} lacks outputs this CLI needs: ${missing}`,
      `it was deployed by another spawn version; run \`spawn deploy --region ${region}\``,
    );
  }
  return { stackName, region, status, outputs: parsed.data };
}

export interface LoadStackOptions {
  cfn: CloudFormationClient;
  stackName: string;
  region: string;
  /** The state directory; the cache lives under `<stateDir>/aws/`. */
  stateDir: string;
  now: number;
  /** A cached copy older than this is read again. @default 1 hour */
  maxAgeMs?: number;
}

/** Where the outputs of one stack in one region are cached. */
export function stackCacheFile(stateDir: string, region: string, stackName: string): string {
  return join(stateDir, "aws", `stack-${region}-${stackName.replace(/[^A-Za-z0-9-]/g, "_")}.json`);
}

/**
 * The stack's outputs, from the cache when it is fresh and was written by this CLI version,
 * else from DescribeStacks (and cached). A missing stack is never cached.
 */
export async function loadStack(options: LoadStackOptions): Promise<StackInfo> {
  const file = stackCacheFile(options.stateDir, options.region, options.stackName);
  const cached = CachedStack.safeParse(
    await readFile(file, "utf8").then(
      (text) => JSON.parse(text) as unknown,
      () => undefined,
    ),
  );
  if (
    cached.success &&
    cached.data.cliVersion === SPAWN_VERSION &&
    options.now - cached.data.fetchedAt < (options.maxAgeMs ?? 3_600_000)
  ) {
    return cached.data.stack;
  }
  const stack = await describeStack(options.cfn, options.stackName, options.region);
  await mkdir(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify({ cliVersion: SPAWN_VERSION, fetchedAt: options.now, stack }));
  await rename(tmp, file);
  return stack;
}

/** Drops the cached outputs (after `spawn deploy`, which may change them). */
export async function forgetStack(stateDir: string, region: string, stackName: string): Promise<void> {
  await rm(stackCacheFile(stateDir, region, stackName), { force: true });
}

/** `major.minor` of a version: stacks and CLIs that agree on it work together. */
export function compatibleVersions(a: string, b: string): boolean {
  const mm = (v: string) => v.split(".").slice(0, 2).join(".");
  return mm(a) === mm(b);
}
