/**
 * The sweep-orchestrator Lambda and what triggers it: EC2 spot interruption, rebalance and
 * state-change events (from the home region's default bus, and forwarded from launch regions to
 * the stack's bus), the CLI's "Sweep Submitted" kick on the stack's bus, and a 1-minute tick that
 * runs reconcile and the reaper. Nothing the orchestrator itself can send reaches it again: it may
 * publish only with `source: spawn.orchestrator`, which no rule here matches, and it may not
 * invoke any Lambda (ADR 0008).
 */
import { Duration, Stack, Validations } from "aws-cdk-lib";
import type { CfnTable } from "aws-cdk-lib/aws-dynamodb";
import { type EventPattern, type IEventBus, Rule, RuleTargetInput, Schedule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Function as LambdaResource } from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { ORCHESTRATOR_SOURCE, SWEEP_SUBMITTED } from "#providers/aws/events.js";
import { DLAMI_PARAMETER } from "#providers/aws/launch-config.js";
import { type AgentRole, sweepRoleArns as sweepRoles } from "./agent-role.js";
import type { SpawnBuckets, SpawnTableResources } from "./data.js";
import { spawnFunction } from "./lambda.js";
import { acknowledgeWildcards } from "./nag.js";
import { type SpawnNames, tablePrefix } from "./names.js";

/** The three EC2 events the orchestrator reconciles on. */
export const EC2_EVENT_PATTERN: EventPattern = {
  source: ["aws.ec2"],
  detailType: [
    "EC2 Spot Instance Interruption Warning",
    "EC2 Instance Rebalance Recommendation",
    "EC2 Instance State-change Notification",
  ],
};

/** The periodic event: reconcile every active sweep, then reap. */
export const TICK_EVENT = { kind: "tick" } as const;

export interface OrchestratorProps {
  names: SpawnNames;
  version: string;
  tables: SpawnTableResources;
  buckets: SpawnBuckets;
  bus: IEventBus;
  agent: AgentRole;
  /** SSM parameter name of the launch configuration (the same in every region). */
  launchConfigParameter: string;
  /** SSM parameter the launch templates resolve their AMI from (the caller of CreateFleet must read it). */
  amiParameter: string;
  /** Every region with a launch configuration, the home region first. */
  launchRegions: string[];
}

export class Orchestrator extends Construct {
  readonly function: LambdaResource;

  constructor(scope: Construct, id: string, props: OrchestratorProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { tables, buckets, names } = props;
    // Each table and each of its indexes by name (no `index/*`): the definitions list them.
    const tableArns = Object.values(tables).flatMap((table) => [
      table.attrArn,
      ...((table.globalSecondaryIndexes ?? []) as CfnTable.GlobalSecondaryIndexProperty[]).map(
        (index) => `${table.attrArn}/index/${index.indexName}`,
      ),
    ]);
    const objectArns = [buckets.artifacts, buckets.results].map((b) => b.arnForObjects("*"));
    const ssmParameterArn = (region: string, account: string, name: string) =>
      `arn:${stack.partition}:ssm:${region}:${account}:parameter${name}`;
    // Gang sweeps' cluster placement groups, named `<stack>-<sweep id>` (providers/aws/gang-launch.ts).
    const placementGroupArns = props.launchRegions.map(
      (region) =>
        `arn:${stack.partition}:ec2:${region}:${stack.account}:placement-group/${names.stackName}-*`,
    );
    // Per-sweep roles and instance profiles: the CLI and the scheduler-handler create them; the
    // orchestrator only passes them to EC2 and deletes them.
    const { roles: sweepRoleArns, profiles: sweepProfileArns } = sweepRoles(this, names);
    const { fn, role } = spawnFunction(this, {
      name: "sweep-orchestrator",
      description: `spawn ${names.stackName}: reconcile sweeps, replace lost instances, reap`,
      memorySize: 1024,
      // A tick stops starting work before this and leaves the rest to the next tick.
      timeout: Duration.minutes(5),
      // Placement ranks offers from the committed price catalog (providers/catalog/catalog.ts looks beside the bundle).
      files: ["providers/catalog/aws-accelerator-vms.csv"],
      environment: {
        SPAWN_TABLE_PREFIX: tablePrefix(names),
        SPAWN_ARTIFACTS_BUCKET: buckets.artifacts.bucketName,
        SPAWN_RESULTS_BUCKET: buckets.results.bucketName,
        SPAWN_EVENT_BUS: props.bus.eventBusName,
        SPAWN_LAUNCH_CONFIG_PARAM: props.launchConfigParameter,
        SPAWN_STACK_NAME: names.stackName,
        SPAWN_INSTANCE_PROFILE_ARN: props.agent.instanceProfile.instanceProfileArn,
        SPAWN_HOME_REGION: names.homeRegion,
      },
      statements: () => [
        new PolicyStatement({
          sid: "State",
          // Every path is a key read, a Query or a conditional write: no Scan (docs/data-model.md).
          actions: [
            "dynamodb:BatchWriteItem",
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
          ],
          resources: tableArns,
        }),
        new PolicyStatement({
          sid: "Objects",
          actions: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:ListBucket"],
          resources: [buckets.artifacts.bucketArn, buckets.results.bucketArn, ...objectArns],
        }),
        new PolicyStatement({
          sid: "PublishOwnEvents",
          actions: ["events:PutEvents"],
          resources: [props.bus.eventBusArn],
          conditions: { StringEquals: { "events:source": ORCHESTRATOR_SOURCE } },
        }),
        new PolicyStatement({
          sid: "ReadLaunchConfig",
          actions: ["ssm:GetParameter", "ssm:GetParameters"],
          resources: props.launchRegions.flatMap((region) => [
            ssmParameterArn(region, stack.account, props.launchConfigParameter),
            // EC2 resolves the launch template's `resolve:ssm:` AMI with the caller's permissions;
            // the public DLAMI parameter belongs to no account.
            ssmParameterArn(
              region,
              props.amiParameter === DLAMI_PARAMETER ? "" : stack.account,
              props.amiParameter,
            ),
          ]),
        }),
        new PolicyStatement({
          sid: "Launch",
          actions: ["ec2:CreateFleet", "ec2:RunInstances"],
          resources: ["*"],
        }),
        new PolicyStatement({
          sid: "TagOnLaunch",
          actions: ["ec2:CreateTags"],
          resources: ["*"],
          conditions: {
            StringEquals: { "ec2:CreateAction": ["CreateFleet", "RunInstances", "CreatePlacementGroup"] },
          },
        }),
        new PolicyStatement({
          sid: "GangPlacementGroups",
          actions: ["ec2:CreatePlacementGroup", "ec2:DeletePlacementGroup"],
          resources: placementGroupArns,
        }),
        new PolicyStatement({
          sid: "TerminateOwnInstances",
          actions: ["ec2:TerminateInstances"],
          resources: ["*"],
          conditions: { StringEquals: { "ec2:ResourceTag/spawn:stack": names.stackName } },
        }),
        new PolicyStatement({
          sid: "Describe",
          // Describe and price calls take no resource ARNs.
          actions: [
            "ec2:DescribeInstances",
            "ec2:DescribeInstanceStatus",
            "ec2:DescribeLaunchTemplateVersions",
            "ec2:DescribeSpotPriceHistory",
            "ec2:DescribeSubnets",
            "pricing:GetProducts",
          ],
          resources: ["*"],
        }),
        new PolicyStatement({
          sid: "PassAgentRole",
          actions: ["iam:PassRole"],
          resources: [props.agent.role.roleArn],
          conditions: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
        }),
        new PolicyStatement({
          sid: "PassSweepRoles",
          actions: ["iam:PassRole"],
          resources: sweepRoleArns,
          conditions: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
        }),
        new PolicyStatement({
          sid: "UseAndDeleteSweepProfiles",
          actions: [
            "iam:GetInstanceProfile",
            "iam:RemoveRoleFromInstanceProfile",
            "iam:DeleteInstanceProfile",
          ],
          resources: sweepProfileArns,
        }),
        new PolicyStatement({
          sid: "DeleteSweepRoles",
          actions: ["iam:RemoveRoleFromInstanceProfile", "iam:DeleteRolePolicy", "iam:DeleteRole"],
          resources: sweepRoleArns,
        }),
        new PolicyStatement({
          sid: "SpotServiceLinkedRoles",
          // The first spot launch in an account creates these roles.
          actions: ["iam:CreateServiceLinkedRole"],
          resources: ["*"],
          conditions: {
            StringEquals: { "iam:AWSServiceName": ["spot.amazonaws.com", "ec2fleet.amazonaws.com"] },
          },
        }),
      ],
    });
    this.function = fn;

    const target = (input?: RuleTargetInput) =>
      new LambdaFunction(this.function, {
        // Reconcile is level-triggered: a late or lost event is caught by the next tick.
        retryAttempts: 2,
        maxEventAge: Duration.minutes(5),
        ...(input ? { event: input } : {}),
      });
    new Rule(this, "Ec2Events", {
      description: "EC2 spot interruptions, rebalance recommendations and state changes in the home region",
      eventPattern: EC2_EVENT_PATTERN,
      targets: [target()],
    });
    new Rule(this, "ForwardedEc2Events", {
      description: "The same EC2 events, forwarded to the stack's bus by launch-region stacks",
      eventBus: props.bus,
      eventPattern: EC2_EVENT_PATTERN,
      targets: [target()],
    });
    new Rule(this, "SweepSubmitted", {
      description: "The CLI's kick for a sweep it just created",
      eventBus: props.bus,
      eventPattern: { source: [SWEEP_SUBMITTED.source], detailType: [SWEEP_SUBMITTED.detailType] },
      // The detail is the handler's `{"kind":"sweep","sweepId":…}` event.
      targets: [target(RuleTargetInput.fromEventPath("$.detail"))],
    });
    new Rule(this, "Tick", {
      description: "Reconcile every active sweep and reap instances past their deadline or heartbeat",
      schedule: Schedule.rate(Duration.minutes(1)),
      targets: [target(RuleTargetInput.fromObject(TICK_EVENT))],
    });
    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "EC2 CreateFleet/RunInstances/Describe*, pricing:GetProducts and iam:CreateServiceLinkedRole take no narrower resource; TerminateInstances and CreateTags are conditioned on the spawn:stack tag and the launch call",
    });
    acknowledgeWildcards(
      role,
      placementGroupArns,
      "a gang sweep's placement group is named after the sweep, created at its first launch: only the stack's name prefix is known at deploy time",
    );
    acknowledgeWildcards(
      role,
      [...sweepRoleArns, ...sweepProfileArns],
      "each sweep's own role and instance profile is named after the sweep and created at launch (CLI or scheduler-handler): only the stack's name prefix is known at deploy time; the orchestrator may only pass them to EC2, read and delete them",
    );
    acknowledgeWildcards(
      role,
      objectArns,
      "the orchestrator manages every sweep's objects (bundles, logs, outputs, checkpoints) in the stack's own two buckets",
    );
  }
}
