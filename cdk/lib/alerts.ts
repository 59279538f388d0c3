/**
 * Alerts on AWS: the alert-handler Lambda, the rules that feed it (the control plane's events on
 * the stack bus, and a 5-minute check of level triggers such as cost and long-running), the KMS
 * key that seals webhook URLs and secrets (envelope encryption, docs/alerts.md), and the stack's
 * SNS topic for email and SMS.
 */
import { Duration } from "aws-cdk-lib";
import type { CfnTable } from "aws-cdk-lib/aws-dynamodb";
import { type IEventBus, Rule, RuleTargetInput, Schedule } from "aws-cdk-lib/aws-events";
import { LambdaFunction } from "aws-cdk-lib/aws-events-targets";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import { Alias, Key } from "aws-cdk-lib/aws-kms";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { Topic } from "aws-cdk-lib/aws-sns";
import { Construct } from "constructs";
import { AGENT_SOURCE, ORCHESTRATOR_SOURCE } from "#providers/aws/events.js";
import { CONTEXT_KEY } from "#providers/notify/kms-secrets.js";
import type { SpawnTableResources } from "./data.js";
import { spawnFunction } from "./lambda.js";
import { type SpawnNames, tablePrefix } from "./names.js";

export interface AlertsProps {
  names: SpawnNames;
  tables: SpawnTableResources;
  bus: IEventBus;
}

/** The periodic invocation: evaluate cost, long-running and preemption triggers of active sweeps. */
export const ALERT_CHECK_EVENT = { kind: "check" } as const;

export class Alerts extends Construct {
  readonly function: IFunction;
  readonly key: Key;
  readonly topic: Topic;

  constructor(scope: Construct, id: string, props: AlertsProps) {
    super(scope, id);
    const { names, tables } = props;
    this.key = new Key(this, "Key", {
      description: `spawn ${names.stackName}: seals alert webhook URLs and signing secrets`,
      enableKeyRotation: true,
    });
    this.topic = new Topic(this, "Topic", {
      displayName: `spawn ${names.stackName} alerts`,
      enforceSSL: true,
      // SNS-managed key: publishers need no grant on a customer key.
      masterKey: Alias.fromAliasName(this, "SnsKey", "alias/aws/sns"),
    });
    const indexArns = (table: CfnTable) =>
      ((table.globalSecondaryIndexes ?? []) as CfnTable.GlobalSecondaryIndexProperty[]).map(
        (index) => `${table.attrArn}/index/${index.indexName}`,
      );
    const { fn } = spawnFunction(this, {
      name: "alert-handler",
      description: `spawn ${names.stackName}: deliver alerts (Slack, webhooks, SNS)`,
      memorySize: 512,
      timeout: Duration.minutes(2),
      environment: {
        SPAWN_TABLE_PREFIX: tablePrefix(names),
        SPAWN_HOME_REGION: names.homeRegion,
        SPAWN_ALERTS_KEY_ARN: this.key.keyArn,
        SPAWN_ALERTS_TOPIC_ARN: this.topic.topicArn,
      },
      statements: () => [
        new PolicyStatement({
          sid: "AlertState",
          actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"],
          resources: [tables.alerts, tables.alertHistory].flatMap((t) => [t.attrArn, ...indexArns(t)]),
        }),
        new PolicyStatement({
          sid: "ReadSweeps",
          actions: ["dynamodb:GetItem", "dynamodb:Query"],
          resources: [tables.sweeps, tables.instances].flatMap((t) => [t.attrArn, ...indexArns(t)]),
        }),
        new PolicyStatement({
          sid: "OpenSealedSecrets",
          actions: ["kms:Decrypt"],
          resources: [this.key.keyArn],
          conditions: { "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": [CONTEXT_KEY] } },
        }),
        new PolicyStatement({ sid: "Notify", actions: ["sns:Publish"], resources: [this.topic.topicArn] }),
      ],
    });
    this.function = fn;
    const target = (input?: RuleTargetInput) =>
      new LambdaFunction(this.function, {
        // Deliveries are deduplicated by their history claims, so a retry sends nothing twice.
        retryAttempts: 4,
        maxEventAge: Duration.hours(1),
        ...(input ? { event: input } : {}),
      });
    new Rule(this, "ControlPlaneEvents", {
      description:
        "The control plane's and the agents' events (sweep ended, task failed, budget, instances, DNS) to alert-handler",
      eventBus: props.bus,
      // Agents publish the failures they finalize (TaskFailed) and DnsRegistrationFailed themselves.
      eventPattern: { source: [ORCHESTRATOR_SOURCE, AGENT_SOURCE] },
      targets: [target()],
    });
    new Rule(this, "Check", {
      description: "Evaluate level triggers (cost, long-running, preemptions) of active sweeps",
      schedule: Schedule.rate(Duration.minutes(5)),
      targets: [target(RuleTargetInput.fromObject(ALERT_CHECK_EVENT))],
    });
  }
}
