/**
 * The role every spawn instance runs with, and its instance profile. What it may do is listed in
 * docs/aws.md; what IAM can and cannot confine (one role for all sweeps) is ADR 0009.
 */
import { Stack, Validations } from "aws-cdk-lib";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import {
  Effect,
  InstanceProfile,
  ManagedPolicy,
  PolicyDocument,
  PolicyStatement,
  Role,
  ServicePrincipal,
} from "aws-cdk-lib/aws-iam";
import type { Bucket } from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { AGENT_SOURCE } from "#providers/aws/events.js";
import { sweepRolePrefix } from "#providers/aws/sweep-role.js";
import { INDEX } from "#providers/dynamodb/tables.js";
import type { SpawnBuckets, SpawnTableResources } from "./data.js";
import { acknowledgeWildcards } from "./nag.js";
import { agentInstanceProfileName, type SpawnNames } from "./names.js";

/** Object prefixes the agents read and write, by bucket; the same key space as the local file store. */
export const AGENT_PREFIXES = {
  /** Read: the agent and executor binaries, and workdir bundles. */
  artifactsRead: ["agent/", "bundles/"],
  /** Read and write: attempt logs (also the boot log), kept outputs, checkpoints. */
  resultsReadWrite: ["logs/", "outputs/", "checkpoints/"],
} as const;

export interface AgentRoleProps {
  names: SpawnNames;
  tables: SpawnTableResources;
  buckets: SpawnBuckets;
  bus: IEventBus;
}

/**
 * Every per-sweep role and instance profile the stack's sweeps may get (`<stack>-sweep-*`,
 * providers/aws/sweep-role.ts): what the Lambdas that make, pass and delete them are granted on.
 */
export function sweepRoleArns(scope: Construct, names: SpawnNames): { roles: string[]; profiles: string[] } {
  const stack = Stack.of(scope);
  const iam = (kind: string) =>
    `arn:${stack.partition}:iam::${stack.account}:${kind}/${sweepRolePrefix(names.stackName)}*`;
  return { roles: [iam("role")], profiles: [iam("instance-profile")] };
}

const objects = (bucket: Bucket, prefixes: readonly string[]) =>
  prefixes.map((p) => bucket.arnForObjects(`${p}*`));

export class AgentRole extends Construct {
  readonly role: Role;
  readonly instanceProfile: InstanceProfile;

  constructor(scope: Construct, id: string, props: AgentRoleProps) {
    super(scope, id);
    const { tables, buckets } = props;
    const index = (table: keyof SpawnTableResources, name: string) =>
      `${tables[table].attrArn}/index/${name}`;
    const policy = new PolicyDocument({
      statements: [
        new PolicyStatement({
          sid: "ReadSweep",
          actions: ["dynamodb:GetItem"],
          resources: [tables.sweeps.attrArn],
        }),
        new PolicyStatement({
          sid: "ClaimAndReportTasks",
          actions: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"],
          resources: [
            tables.tasks.attrArn,
            index("tasks", INDEX.tasksPending),
            index("tasks", INDEX.tasksRunning),
          ],
        }),
        new PolicyStatement({
          sid: "HeartbeatInstance",
          actions: ["dynamodb:GetItem", "dynamodb:UpdateItem"],
          resources: [tables.instances.attrArn],
        }),
        new PolicyStatement({
          sid: "ReadArtifacts",
          actions: ["s3:GetObject"],
          resources: objects(buckets.artifacts, AGENT_PREFIXES.artifactsRead),
        }),
        new PolicyStatement({
          sid: "WriteResults",
          actions: ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
          resources: objects(buckets.results, AGENT_PREFIXES.resultsReadWrite),
        }),
        new PolicyStatement({
          sid: "ListCheckpoints",
          actions: ["s3:ListBucket"],
          resources: [buckets.results.bucketArn],
          conditions: { StringLike: { "s3:prefix": ["checkpoints/*", "outputs/*"] } },
        }),
        new PolicyStatement({
          sid: "PublishAgentEvents",
          actions: ["events:PutEvents"],
          resources: [props.bus.eventBusArn],
          conditions: { StringEquals: { "events:source": AGENT_SOURCE } },
        }),
        // No DeleteItem, Scan, batch or table operations; no sweep writes; no other bucket.
        new PolicyStatement({
          sid: "NeverDeleteOrScan",
          effect: Effect.DENY,
          actions: ["dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem", "dynamodb:PartiQL*"],
          resources: ["*"],
        }),
      ],
    });
    this.role = new Role(this, "Role", {
      assumedBy: new ServicePrincipal("ec2.amazonaws.com"),
      description: `spawn ${props.names.stackName}: the agent on every instance`,
      inlinePolicies: { agent: policy },
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName("AmazonSSMManagedInstanceCore")],
    });
    this.instanceProfile = new InstanceProfile(this, "InstanceProfile", {
      role: this.role,
      instanceProfileName: agentInstanceProfileName(props.names),
    });

    Validations.of(this.role).acknowledge(
      {
        id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
        reason:
          "Session Manager (`spawn instances connect`) needs exactly this AWS-maintained set; it replaces SSH keys and inbound ports",
      },
      {
        id: "AwsSolutions-IAM5[Resource::*]",
        reason: "only in the Deny statement: denying on every resource is the point",
      },
      {
        id: "AwsSolutions-IAM5[Action::dynamodb:PartiQL*]",
        reason: "denied, not allowed: PartiQL statements would bypass the per-operation grants above",
      },
    );
    acknowledgeWildcards(
      this.role,
      [
        ...objects(buckets.artifacts, AGENT_PREFIXES.artifactsRead),
        ...objects(buckets.results, AGENT_PREFIXES.resultsReadWrite),
      ],
      "one role serves every sweep's instances, so object ARNs cannot name the sweep: IAM cannot tie a request to the calling instance's spawn:sweep tag (ADR 0009); the prefixes limit it to the agent's own key spaces",
    );
  }
}
