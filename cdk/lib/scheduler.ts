/**
 * Schedules on AWS: the stack's EventBridge Scheduler group, the scheduler-handler Lambda each
 * schedule invokes, the role EventBridge Scheduler assumes to invoke it (that function only),
 * and the dead-letter queue for invocations that fail after their retries. The CLI creates the
 * schedules themselves (providers/aws/schedule-driver.ts) in the group, naming the role. A firing
 * gives its sweep its own instance role as `sweep launch` does (ADR 0040), so the handler may make
 * and pass exactly the stack's `<stack>-sweep-*` roles and instance profiles.
 */
import { Duration, Stack, Validations } from "aws-cdk-lib";
import type { IEventBus } from "aws-cdk-lib/aws-events";
import { PolicyDocument, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import type { Function as LambdaFunction } from "aws-cdk-lib/aws-lambda";
import { CfnScheduleGroup } from "aws-cdk-lib/aws-scheduler";
import { Queue, QueueEncryption } from "aws-cdk-lib/aws-sqs";
import { Construct } from "constructs";
import { ORCHESTRATOR_SOURCE, SWEEP_SUBMITTED } from "#providers/aws/events.js";
import { sweepRoleArns } from "./agent-role.js";
import type { SpawnBuckets, SpawnTableResources } from "./data.js";
import { spawnFunction } from "./lambda.js";
import { acknowledgeWildcards } from "./nag.js";
import { type SpawnNames, tablePrefix } from "./names.js";

export interface SchedulerProps {
  names: SpawnNames;
  tables: SpawnTableResources;
  buckets: SpawnBuckets;
  bus: IEventBus;
}

export class Scheduler extends Construct {
  readonly function: LambdaFunction;
  readonly group: CfnScheduleGroup;
  readonly invokeRole: Role;
  readonly deadLetters: Queue;

  constructor(scope: Construct, id: string, props: SchedulerProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { names, tables, buckets } = props;
    this.group = new CfnScheduleGroup(this, "Group", { name: `${names.stackName}-schedules` });
    this.deadLetters = new Queue(this, "DeadLetters", {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    // A firing reads the schedule, writes its history, and creates the sweep and its tasks.
    const used = [tables.schedules, tables.scheduleHistory, tables.sweeps, tables.tasks];
    const scheduleArn = `arn:${stack.partition}:scheduler:${stack.region}:${stack.account}:schedule/${this.group.name}/*`;
    const specObjects = buckets.results.arnForObjects("schedules/*");
    const sweepRoles = sweepRoleArns(this, names);
    const { fn, role } = spawnFunction(this, {
      name: "scheduler-handler",
      description: `spawn ${names.stackName}: launch a scheduled sweep`,
      memorySize: 512,
      timeout: Duration.minutes(2),
      environment: {
        SPAWN_TABLE_PREFIX: tablePrefix(names),
        SPAWN_ARTIFACTS_BUCKET: buckets.artifacts.bucketName,
        SPAWN_RESULTS_BUCKET: buckets.results.bucketName,
        SPAWN_EVENT_BUS: props.bus.eventBusName,
        SPAWN_HOME_REGION: names.homeRegion,
        SPAWN_SCHEDULE_GROUP: this.group.name!,
        // What a sweep role's policy names (providers/aws/sweep-role.ts); the stack adds
        // SPAWN_DNS_UPDATER_ARN when it has a hosted zone.
        SPAWN_STACK_NAME: names.stackName,
        SPAWN_ACCOUNT_ID: stack.account,
        SPAWN_PARTITION: stack.partition,
      },
      statements: () => [
        new PolicyStatement({
          sid: "State",
          actions: [
            "dynamodb:BatchWriteItem",
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
          ],
          resources: used.map((t) => t.attrArn),
        }),
        new PolicyStatement({ sid: "ReadStoredSpecs", actions: ["s3:GetObject"], resources: [specObjects] }),
        new PolicyStatement({
          sid: "WakeOrchestrator",
          actions: ["events:PutEvents"],
          resources: [props.bus.eventBusArn],
          // The kick for the new sweep, and ScheduleLaunched/ScheduleLaunchFailed for alerts.
          conditions: { StringEquals: { "events:source": [SWEEP_SUBMITTED.source, ORCHESTRATOR_SOURCE] } },
        }),
        new PolicyStatement({
          sid: "DisarmCompletedSchedules",
          actions: ["scheduler:DeleteSchedule"],
          resources: [scheduleArn],
        }),
        // The firing's sweep role (providers/aws/sweep-role.ts createSweepRole); the deletes take
        // back a role whose sweep was never written. Deleting ended sweeps' roles is the orchestrator's.
        new PolicyStatement({
          sid: "MakeSweepRoles",
          actions: [
            "iam:CreateRole",
            "iam:TagRole",
            "iam:PutRolePolicy",
            "iam:DeleteRolePolicy",
            "iam:DeleteRole",
          ],
          resources: sweepRoles.roles,
        }),
        new PolicyStatement({
          sid: "MakeSweepProfiles",
          actions: [
            "iam:CreateInstanceProfile",
            "iam:TagInstanceProfile",
            "iam:AddRoleToInstanceProfile",
            "iam:RemoveRoleFromInstanceProfile",
            "iam:DeleteInstanceProfile",
          ],
          resources: sweepRoles.profiles,
        }),
        new PolicyStatement({
          // AddRoleToInstanceProfile is a pass of the role (to EC2, through the profile).
          sid: "PassSweepRoles",
          actions: ["iam:PassRole"],
          resources: sweepRoles.roles,
          conditions: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
        }),
      ],
    });
    this.function = fn;
    // EventBridge Scheduler invokes with this role; it may invoke the handler and nothing else.
    this.invokeRole = new Role(this, "InvokeRole", {
      assumedBy: new ServicePrincipal("scheduler.amazonaws.com", {
        conditions: { StringEquals: { "aws:SourceAccount": stack.account } },
      }),
      description: `spawn ${names.stackName}: EventBridge Scheduler invokes scheduler-handler`,
      inlinePolicies: {
        invoke: new PolicyDocument({
          statements: [
            new PolicyStatement({
              sid: "InvokeHandler",
              actions: ["lambda:InvokeFunction"],
              resources: [this.function.functionArn],
            }),
            new PolicyStatement({
              sid: "DeadLetters",
              actions: ["sqs:SendMessage"],
              resources: [this.deadLetters.queueArn],
            }),
          ],
        }),
      },
    });
    acknowledgeWildcards(
      role,
      [...sweepRoles.roles, ...sweepRoles.profiles],
      "each firing's sweep gets its own role and instance profile, named after the sweep at run time: only the stack's `<stack>-sweep-` prefix is known at deploy time; the role may only be passed to EC2",
    );
    acknowledgeWildcards(
      role,
      [specObjects, scheduleArn],
      "the handler reads the specs stored under schedules/ and disarms schedules in the stack's own schedule group; both are named per schedule at run time",
    );
    Validations.of(this.deadLetters).acknowledge({
      id: "AwsSolutions-SQS3",
      reason: "this queue is itself the dead-letter queue of the schedules' targets",
    });
  }
}
