/**
 * The aws provider's stores over a deployed stack: state on its tables, objects in its buckets
 * (bundles in the artifacts bucket, logs, outputs and stored specs in the results bucket),
 * schedules armed in its EventBridge Scheduler group, alerts sealed with its KMS key. The CLI
 * builds them from the stack's CloudFormation outputs (cli/services/aws.ts), the dashboard-api
 * Lambda from the environment the stack gives it; one builder, so the two cannot wire differently.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { KMSClient } from "@aws-sdk/client-kms";
import { S3Client } from "@aws-sdk/client-s3";
import { SchedulerClient } from "@aws-sdk/client-scheduler";
import { SNSClient } from "@aws-sdk/client-sns";
import type { AlertServices } from "#core/alerts.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import type { ScheduleDriver, ScheduleStore } from "#core/scheduler.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { awsAlertServices } from "#providers/notify/aws-alerts.js";
import type { AwsClientConfig } from "./clients.js";
import { S3ObjectStore } from "./s3-objects.js";
import { EventBridgeScheduleDriver } from "./schedule-driver.js";
import type { StackOutputs } from "./stack.js";

/** The outputs the stores need; schedules and alerts are optional, as a stack predating them lacks them. */
export type StackStoreOutputs = Pick<StackOutputs, "TablePrefix" | "ArtifactsBucket" | "ResultsBucket"> &
  Partial<
    Pick<
      StackOutputs,
      | "ScheduleGroupName"
      | "SchedulerHandlerArn"
      | "SchedulerRoleArn"
      | "SchedulesDlqArn"
      | "AlertsKeyArn"
      | "AlertsTopicArn"
    >
  >;

export interface StackStores {
  store: StateStore;
  schedules: ScheduleStore;
  /** Absent when the stack has no schedule group. */
  scheduleDriver?: ScheduleDriver;
  /** Absent when the stack has no alerts key and topic. */
  alerts?: AlertServices;
  objects: ObjectStore;
  /** The clients behind them, for callers that need the same ones (one connection pool each). */
  clients: { dynamo: DynamoDBClient; s3: S3Client };
  /** Destroys every client made here. */
  destroy(): void;
}

/** The stores of the stack whose outputs are `outputs`, with clients made from `config`. */
export function openStackStores(config: AwsClientConfig, outputs: StackStoreOutputs): StackStores {
  const dynamo = new DynamoDBClient(config);
  const s3 = new S3Client(config);
  const made: { destroy(): void }[] = [dynamo, s3];
  const client = <C extends { destroy(): void }>(c: C): C => {
    made.push(c);
    return c;
  };
  const { ScheduleGroupName, SchedulerHandlerArn, SchedulerRoleArn, SchedulesDlqArn } = outputs;
  return {
    store: new DynamoStateStore(dynamo, outputs.TablePrefix),
    schedules: new DynamoScheduleStore(dynamo, outputs.TablePrefix),
    ...(ScheduleGroupName && SchedulerHandlerArn && SchedulerRoleArn && SchedulesDlqArn
      ? {
          scheduleDriver: new EventBridgeScheduleDriver(client(new SchedulerClient(config)), {
            groupName: ScheduleGroupName,
            target: { arn: SchedulerHandlerArn, roleArn: SchedulerRoleArn, deadLetterArn: SchedulesDlqArn },
          }),
        }
      : {}),
    ...(outputs.AlertsKeyArn && outputs.AlertsTopicArn
      ? {
          alerts: awsAlertServices({
            dynamo,
            kms: client(new KMSClient(config)),
            sns: client(new SNSClient(config)),
            tablePrefix: outputs.TablePrefix,
            kmsKeyId: outputs.AlertsKeyArn,
            topicArn: outputs.AlertsTopicArn,
          }),
        }
      : {}),
    objects: new S3ObjectStore(s3, {
      bucket: outputs.ResultsBucket,
      routes: { "bundles/": outputs.ArtifactsBucket },
    }),
    clients: { dynamo, s3 },
    destroy: () => {
      for (const c of made) c.destroy();
    },
  };
}
