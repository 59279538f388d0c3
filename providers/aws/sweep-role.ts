/**
 * The per-sweep instance role (docs/adr/0036-per-sweep-instance-role.md, 0040): every aws sweep
 * that runs tasks gets an IAM role `<stack>-sweep-<hash>` and an instance profile of the same name,
 * whose one inline policy is the agent's own needs confined to that sweep (DynamoDB items through
 * `dynamodb:LeadingKeys`, S3 objects under the sweep's prefixes; a pipeline stage also reads the
 * stages it waits on) plus the task grants of `resources.iam` (core/iam-policy.ts). Whoever
 * launches it (the CLI, or the scheduler-handler for a firing) creates it before the sweep record
 * exists (`sweepRoleHooks`); the orchestrator launches the sweep's instances with it (a CreateFleet
 * override) and deletes it once the sweep has ended (Compute.release). No credentials are
 * involved: EC2 hands the role's short-lived credentials to the instance through IMDS.
 */
import { createHash } from "node:crypto";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  GetInstanceProfileCommand,
  type IAMClient,
  PutRolePolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
} from "@aws-sdk/client-iam";
import {
  MAX_INLINE_POLICY_CHARS,
  type PolicyDocument,
  type PolicyStatement,
  taskPolicyDocument,
} from "#core/iam-policy.js";
import type { SweepSpec } from "#core/spec.js";
import { SpecError } from "#core/spec-error.js";
import type { LaunchHooks, SweepPreparation } from "#core/sweeps.js";
import { INDEX, tableNames } from "#providers/dynamodb/tables.js";
import { AGENT_SOURCE } from "./events.js";

/** IAM's longest role and instance profile name. */
const MAX_NAME = 64;
/** The inline policy's name on every sweep role. */
export const SWEEP_POLICY_NAME = "sweep";

/** What every sweep role and instance profile name of a stack starts with: IAM grants name them all by it. */
export const sweepRolePrefix = (stack: string): string => `${stack}-sweep-`;

/**
 * The role's (and its instance profile's) name: `<stack>-sweep-` and 16 hex characters of the
 * sweep id's SHA-256, so it fits IAM's 64 characters whatever the sweep is called, and the
 * orchestrator's IAM grants can name every sweep role of the stack by one prefix.
 */
export function sweepRoleName(stack: string, sweepId: string): string {
  const hash = createHash("sha256").update(sweepId).digest("hex").slice(0, 16);
  const name = `${sweepRolePrefix(stack)}${hash}`;
  if (name.length > MAX_NAME) {
    throw new Error(
      `stack name ${stack} is ${stack.length} characters: per-sweep role names need it to be at most ${MAX_NAME - 23}`,
    );
  }
  return name;
}

/** Trust policy: only EC2 may assume the role (for the sweep's instances). */
export const EC2_TRUST_POLICY = {
  Version: "2012-10-17",
  Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
} as const;

/** Where the sweep's agent works: the stack's tables, buckets and bus, and the sweep's bundle. */
export interface SweepRoleScope {
  stack: string;
  sweepId: string;
  account: string;
  partition: string;
  /** The stack's home region: its tables and bus live there. */
  homeRegion: string;
  tablePrefix: string;
  artifactsBucket: string;
  resultsBucket: string;
  eventBusName: string;
  /** The sweep's workdir bundle key (`bundles/<sha256>.tar.gz`), the one bundle it may read. */
  bundleKey?: string;
  /** The stack's dns-updater (output DnsUpdaterArn), when it has one: agents register hostnames with it. */
  dnsUpdaterArn?: string;
  /**
   * A pipeline stage's inputs: the sweep ids of the stages it waits on, whose sweep and task items
   * and kept outputs its agent reads (agent/stage-inputs.ts). Read only, and only these.
   */
  upstreamSweepIds?: readonly string[];
}

/** A table of the stack (in its home region); `name*` names every table with that prefix. */
const tableArn = (scope: SweepRoleScope, name: string) =>
  `arn:${scope.partition}:dynamodb:${scope.homeRegion}:${scope.account}:table/${name}`;

/**
 * The agent's statements of docs/aws.md, confined to one sweep: `dynamodb:LeadingKeys` ties every
 * item it reads or writes to the sweep (tasks `pk = <sweepId>#<shard>`, and the pending/running
 * indexes whose partition keys hold the same value; instances and the sweep item by `sweepId`),
 * and every object ARN names the sweep's prefix.
 */
export function agentStatements(scope: SweepRoleScope): PolicyStatement[] {
  const { partition, account, homeRegion, sweepId } = scope;
  const tables = tableNames(scope.tablePrefix);
  const table = (name: string) => tableArn(scope, name);
  const s3 = (bucket: string, key: string) => `arn:${partition}:s3:::${bucket}/${key}`;
  const sweepPrefixes = ["logs", "outputs", "checkpoints"].map((p) => `${p}/${sweepId}/`);
  return [
    {
      Sid: "ReadOwnSweep",
      Effect: "Allow",
      Action: "dynamodb:GetItem",
      Resource: table(tables.sweeps),
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [sweepId] } },
    },
    {
      Sid: "ClaimAndReportOwnTasks",
      Effect: "Allow",
      Action: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"],
      Resource: [
        table(tables.tasks),
        `${table(tables.tasks)}/index/${INDEX.tasksPending}`,
        `${table(tables.tasks)}/index/${INDEX.tasksRunning}`,
      ],
      Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${sweepId}#*`] } },
    },
    {
      Sid: "HeartbeatOwnInstances",
      Effect: "Allow",
      Action: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
      Resource: table(tables.instances),
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [sweepId] } },
    },
    {
      Sid: "ReadAgentAndBundle",
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: [
        s3(scope.artifactsBucket, "agent/*"),
        ...(scope.bundleKey ? [s3(scope.artifactsBucket, scope.bundleKey)] : []),
      ],
    },
    {
      Sid: "WriteOwnResults",
      Effect: "Allow",
      Action: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
      Resource: sweepPrefixes.map((p) => s3(scope.resultsBucket, `${p}*`)),
    },
    {
      Sid: "ListOwnCheckpoints",
      Effect: "Allow",
      Action: "s3:ListBucket",
      Resource: `arn:${partition}:s3:::${scope.resultsBucket}`,
      Condition: { StringLike: { "s3:prefix": [`checkpoints/${sweepId}/*`, `outputs/${sweepId}/*`] } },
    },
    {
      Sid: "PublishAgentEvents",
      Effect: "Allow",
      Action: "events:PutEvents",
      Resource: `arn:${partition}:events:${homeRegion}:${account}:event-bus/${scope.eventBusName}`,
      Condition: { StringEquals: { "events:source": AGENT_SOURCE } },
    },
    {
      // Session Manager (`spawn instances connect`): the minimal set AWS documents for it, which
      // supports no resource-level permissions; the managed AmazonSSMManagedInstanceCore would also
      // give the task every SSM parameter.
      Sid: "SessionManager",
      Effect: "Allow",
      Action: [
        "ssm:UpdateInstanceInformation",
        "ssmmessages:CreateControlChannel",
        "ssmmessages:CreateDataChannel",
        "ssmmessages:OpenControlChannel",
        "ssmmessages:OpenDataChannel",
      ],
      Resource: "*",
    },
    ...upstreamStatements(scope),
    ...(scope.dnsUpdaterArn
      ? [
          {
            // The instance's hostname (docs/dns.md), as the shared agent role may.
            Sid: "RegisterHostname",
            Effect: "Allow" as const,
            Action: "lambda:InvokeFunction",
            Resource: scope.dnsUpdaterArn,
          },
        ]
      : []),
    {
      // Also why the ForAllValues LeadingKeys conditions above hold: a request carrying no key
      // (a Scan, a batch, PartiQL) would pass them, so none may reach the stack's tables, whatever
      // a task grant allows (ADR 0036, "Requests with no key"). Only the stack's tables: the task's
      // own `dynamodb:read`/`write` grants on other tables keep their Scan and batch writes.
      Sid: "NeverDeleteOrScan",
      Effect: "Deny",
      Action: [...DENIED_ON_STACK_TABLES],
      Resource: `${table(scope.tablePrefix)}*`,
    },
  ];
}

/**
 * DynamoDB actions the sweep role denies on every table of the stack: the ones whose requests
 * carry no partition key for `dynamodb:LeadingKeys` to test (Scan, BatchWriteItem, PartiQL), and
 * DeleteItem. Transactions need no entry: IAM authorizes each of their items as its own GetItem,
 * PutItem, UpdateItem, DeleteItem or ConditionCheckItem, key included.
 */
export const DENIED_ON_STACK_TABLES = [
  "dynamodb:DeleteItem",
  "dynamodb:Scan",
  "dynamodb:BatchWriteItem",
  "dynamodb:PartiQL*",
] as const;

/** Read-only access to the upstream stages of a pipeline stage (none for any other sweep). */
function upstreamStatements(scope: SweepRoleScope): PolicyStatement[] {
  const upstream = scope.upstreamSweepIds ?? [];
  if (upstream.length === 0) return [];
  const tables = tableNames(scope.tablePrefix);
  const table = (name: string) => tableArn(scope, name);
  return [
    {
      Sid: "ReadUpstreamSweeps",
      Effect: "Allow",
      Action: "dynamodb:GetItem",
      Resource: table(tables.sweeps),
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [...upstream] } },
    },
    {
      // GetItem for an n_to_n input's one task, Query for a whole stage's (the main table only).
      Sid: "ReadUpstreamTasks",
      Effect: "Allow",
      Action: ["dynamodb:GetItem", "dynamodb:Query"],
      Resource: table(tables.tasks),
      Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": upstream.map((id) => `${id}#*`) } },
    },
    {
      Sid: "ReadUpstreamOutputs",
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: upstream.map((id) => `arn:${scope.partition}:s3:::${scope.resultsBucket}/outputs/${id}/*`),
    },
  ];
}

/** What a launch knows of a sweep: the stack, the account, and the planned spec. */
export interface SweepRoleRequest extends SweepRoleScope {
  spec: Pick<SweepSpec, "resources">;
  /** Parsed `policy-file:` grants (cli/services/plan.ts; a schedule's snapshot of them). */
  policyFiles: Readonly<Record<string, unknown>>;
}

/**
 * The role's inline policy: the agent's confined statements, then the task grants. Throws the
 * SpecError of core/iam-policy.ts for a bad grant, or when the whole document is over IAM's limit.
 */
export function sweepRolePolicy(request: SweepRoleRequest): PolicyDocument {
  const task = taskPolicyDocument(request.spec.resources.iam, {
    account: request.account,
    partition: request.partition,
    regions: request.spec.resources.regions ?? [request.homeRegion],
    policyFiles: request.policyFiles,
  });
  const document: PolicyDocument = {
    Version: "2012-10-17",
    Statement: [...agentStatements(request), ...task.Statement],
  };
  // Checked again with the agent's statements in: IAM counts the whole inline document.
  const size = JSON.stringify(document).length;
  if (size > MAX_INLINE_POLICY_CHARS) {
    throw new SpecError([
      {
        path: "resources.iam",
        message: `the sweep role's policy is ${size} characters with the agent's own statements, over IAM's ${MAX_INLINE_POLICY_CHARS}: use fewer grants or one policy-file`,
      },
    ]);
  }
  return document;
}

const named = (error: unknown, name: string) => (error as { name?: string } | null)?.name === name;

/** Runs an IAM call whose `already` error means "done before": a retried launch or cleanup. */
async function idempotent(call: Promise<unknown>, already: string): Promise<void> {
  try {
    await call;
  } catch (error) {
    if (!named(error, already)) throw error;
  }
}

/**
 * Creates the sweep's role, its inline policy and its instance profile, idempotently (a retried
 * launch finds them and rewrites the policy). The policy is rendered first, so a bad grant sends
 * nothing; a failure after the role exists deletes what was made. Returns the profile's ARN.
 */
export async function createSweepRole(iam: IAMClient, request: SweepRoleRequest): Promise<string> {
  const policy = sweepRolePolicy(request);
  const name = sweepRoleName(request.stack, request.sweepId);
  const tags = [
    { Key: "spawn:sweep", Value: request.sweepId },
    { Key: "spawn:stack", Value: request.stack },
  ];
  await idempotent(
    iam.send(
      new CreateRoleCommand({
        RoleName: name,
        AssumeRolePolicyDocument: JSON.stringify(EC2_TRUST_POLICY),
        Description: `spawn ${request.stack}: the instances of sweep ${request.sweepId}`,
        Tags: tags,
      }),
    ),
    "EntityAlreadyExistsException",
  );
  try {
    await iam.send(
      new PutRolePolicyCommand({
        RoleName: name,
        PolicyName: SWEEP_POLICY_NAME,
        PolicyDocument: JSON.stringify(policy),
      }),
    );
    await idempotent(
      iam.send(new CreateInstanceProfileCommand({ InstanceProfileName: name, Tags: tags })),
      "EntityAlreadyExistsException",
    );
    // A profile holds one role: LimitExceeded means this one is in it already (a retried launch).
    await idempotent(
      iam.send(new AddRoleToInstanceProfileCommand({ InstanceProfileName: name, RoleName: name })),
      "LimitExceededException",
    );
  } catch (error) {
    await deleteSweepRole(iam, request.stack, request.sweepId).catch(() => undefined);
    throw error;
  }
  return `arn:${request.partition}:iam::${request.account}:instance-profile/${name}`;
}

/** Deletes the sweep's instance profile, the role's inline policy and the role. Idempotent. */
export async function deleteSweepRole(iam: IAMClient, stack: string, sweepId: string): Promise<void> {
  const name = sweepRoleName(stack, sweepId);
  // In this order: IAM refuses to delete a role still in a profile or still holding a policy.
  await idempotent(
    iam.send(new RemoveRoleFromInstanceProfileCommand({ InstanceProfileName: name, RoleName: name })),
    "NoSuchEntityException",
  );
  await idempotent(
    iam.send(new DeleteInstanceProfileCommand({ InstanceProfileName: name })),
    "NoSuchEntityException",
  );
  await idempotent(
    iam.send(new DeleteRolePolicyCommand({ RoleName: name, PolicyName: SWEEP_POLICY_NAME })),
    "NoSuchEntityException",
  );
  await idempotent(iam.send(new DeleteRoleCommand({ RoleName: name })), "NoSuchEntityException");
}

/** What every sweep role of a stack shares: the stack's own names, known before any sweep. */
export type StackRoleScope = Omit<SweepRoleScope, "sweepId" | "bundleKey" | "upstreamSweepIds">;

/** The role request of one prepared sweep (core/sweeps.ts SweepPreparation) in a stack. */
export function sweepRoleRequest(stack: StackRoleScope, sweep: SweepPreparation): SweepRoleRequest {
  return {
    ...stack,
    sweepId: sweep.sweepId,
    bundleKey: sweep.bundle.key,
    ...(sweep.upstreamSweepIds?.length ? { upstreamSweepIds: sweep.upstreamSweepIds } : {}),
    spec: sweep.spec,
    policyFiles: sweep.policyFiles,
  };
}

/**
 * The launch hooks of the aws provider's role step, the same for the CLI and the scheduler-handler
 * (ADR 0040): each prepared sweep gets its role before its record, a sweep never written loses it
 * again, and `checkSweep` renders the policy without sending anything. `stack` is asked once.
 */
export function sweepRoleHooks(
  iam: IAMClient,
  stack: () => Promise<StackRoleScope>,
): Required<Pick<LaunchHooks, "prepareSweep" | "discardSweep">> & {
  checkSweep(sweep: SweepPreparation): Promise<void>;
} {
  let scope: Promise<StackRoleScope> | undefined;
  const resolved = () => {
    if (!scope) {
      scope = stack();
      // A failed lookup (no credentials yet) is asked again by the next launch.
      scope.catch(() => {
        scope = undefined;
      });
    }
    return scope;
  };
  return {
    prepareSweep: async (sweep) => {
      await createSweepRole(iam, sweepRoleRequest(await resolved(), sweep));
    },
    discardSweep: async (sweepId) => deleteSweepRole(iam, (await resolved()).stack, sweepId),
    checkSweep: async (sweep) => {
      sweepRolePolicy(sweepRoleRequest(await resolved(), sweep));
    },
  };
}

/** EC2's answer while a new instance profile has not reached it yet (IAM is eventually consistent). */
export function isProfilePropagating(code: string | undefined, message: string | undefined): boolean {
  return code === "InvalidParameterValue" && /invalid iam instance profile/i.test(message ?? "");
}

/**
 * The orchestrator's side: which instance profile a sweep's instances get, and its cleanup.
 * Keep one per process: a sweep's answer is remembered (a sweep created without a role, by an
 * older CLI or stack, never gets one later, and launches with the stack's shared profile).
 */
export class SweepProfiles {
  private readonly arns = new Map<string, Promise<string | undefined>>();

  constructor(
    private readonly iam: IAMClient,
    private readonly stack: string,
  ) {}

  /** The sweep's instance profile ARN, or undefined when it has none. A failed lookup is asked again next time. */
  profileArn(sweepId: string): Promise<string | undefined> {
    let arn = this.arns.get(sweepId);
    if (!arn) {
      arn = this.iam
        .send(new GetInstanceProfileCommand({ InstanceProfileName: sweepRoleName(this.stack, sweepId) }))
        .then(
          (out) => out.InstanceProfile?.Arn,
          (error: unknown) => {
            if (named(error, "NoSuchEntityException")) return undefined;
            throw error;
          },
        );
      arn.catch(() => this.arns.delete(sweepId));
      this.arns.set(sweepId, arn);
    }
    return arn;
  }

  /** Deletes the sweep's role and profile (Compute.release). Idempotent. */
  async release(sweepId: string): Promise<void> {
    await deleteSweepRole(this.iam, this.stack, sweepId);
    this.arns.delete(sweepId);
  }
}
