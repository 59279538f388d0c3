/**
 * Alerts on the aws provider: the stores on the stack's tables, secrets sealed under the stack's
 * KMS key, SNS for topics and email subscriptions. Used by the alert-handler Lambda and, for
 * `spawn alerts --provider aws`, by the CLI (with its profile's clients).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import type { KMSClient } from "@aws-sdk/client-kms";
import type { SNSClient } from "@aws-sdk/client-sns";
import type { AlertServices } from "#core/alerts.js";
import { DynamoAlertStore } from "../dynamodb/alert-store.js";
import { KmsSecretBox } from "./kms-secrets.js";
import { SnsTopics } from "./sns.js";

export interface AwsAlertConfig {
  dynamo: DynamoDBClient;
  kms: KMSClient;
  sns: SNSClient;
  tablePrefix: string;
  /** The stack's alerts key (ARN). */
  kmsKeyId: string;
  /** The stack's alerts topic, where `--email` subscribes by default. */
  topicArn: string;
}

export function awsAlertServices(config: AwsAlertConfig): AlertServices & { topics: SnsTopics } {
  const topics = new SnsTopics(config.sns);
  return {
    store: new DynamoAlertStore(config.dynamo, config.tablePrefix),
    secrets: new KmsSecretBox(config.kms, config.kmsKeyId),
    subscriptions: topics,
    topics,
    defaultTopicArn: config.topicArn,
  };
}
