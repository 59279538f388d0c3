/**
 * The stack's state: the DynamoDB tables (from providers/dynamodb/tables.ts, the definitions the
 * store and `ensureTables` use) and the S3 buckets. Both outlive the stack (RETAIN): they hold
 * users' sweeps, results and logs, which `cdk destroy` must not delete (docs/aws.md, teardown).
 */
import { Duration, RemovalPolicy, Validations } from "aws-cdk-lib";
import { CfnTable } from "aws-cdk-lib/aws-dynamodb";
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type LifecycleRule,
  ObjectOwnership,
  StorageClass,
} from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { TTL_ATTRIBUTE, tableDefinitions, tableNames } from "#providers/dynamodb/tables.js";
import { type BucketKind, bucketName, type SpawnNames, tablePrefix } from "./names.js";

/** Logical table → its CloudFormation resource. */
export type SpawnTableResources = Record<keyof ReturnType<typeof tableNames>, CfnTable>;

export class SpawnTables extends Construct {
  readonly tables: SpawnTableResources;

  constructor(scope: Construct, id: string, names: SpawnNames) {
    super(scope, id);
    const prefix = tablePrefix(names);
    const logical = tableNames(prefix);
    const ttlTables = new Set([logical.scheduleHistory, logical.alertHistory]);
    const byName = new Map<string, CfnTable>();
    for (const def of tableDefinitions(prefix)) {
      const name = def.TableName!;
      const table = new CfnTable(this, name.slice(prefix.length), {
        tableName: name,
        billingMode: def.BillingMode,
        attributeDefinitions: (def.AttributeDefinitions ?? []).map((a) => ({
          attributeName: a.AttributeName!,
          attributeType: a.AttributeType!,
        })),
        keySchema: (def.KeySchema ?? []).map((k) => ({
          attributeName: k.AttributeName!,
          keyType: k.KeyType!,
        })),
        globalSecondaryIndexes: def.GlobalSecondaryIndexes?.map((index) => ({
          indexName: index.IndexName!,
          keySchema: (index.KeySchema ?? []).map((k) => ({
            attributeName: k.AttributeName!,
            keyType: k.KeyType!,
          })),
          projection: { projectionType: index.Projection?.ProjectionType },
        })),
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        // The AWS managed key (aws/dynamodb), so CloudTrail shows key use; no key of our own to pay for.
        sseSpecification: { sseEnabled: true },
        ...(ttlTables.has(name)
          ? { timeToLiveSpecification: { attributeName: TTL_ATTRIBUTE, enabled: true } }
          : {}),
      });
      table.applyRemovalPolicy(RemovalPolicy.RETAIN);
      byName.set(name, table);
    }
    this.tables = Object.fromEntries(
      Object.entries(logical).map(([key, name]) => [key, byName.get(name)!]),
    ) as SpawnTableResources;
  }
}

/** Lifecycle numbers, documented in docs/aws.md. */
export const LIFECYCLE = {
  /** Parts of uploads that never completed (a killed CLI or agent) are deleted after this. */
  abortIncompleteUploadDays: 1,
  /** Results (logs, outputs, checkpoints) move to Standard-IA after this. */
  resultsInfrequentAccessDays: 30,
  /** Staging objects (uploads in flight) are deleted after this. */
  stagingExpiryDays: 7,
  /** Server access logs are deleted after this. */
  accessLogsExpiryDays: 90,
} as const;

export class SpawnBuckets extends Construct {
  /** Agent binaries and workdir bundles (`agent/…`, `bundles/…`). */
  readonly artifacts: Bucket;
  /** Logs, outputs and checkpoints (`logs/…`, `outputs/…`, `checkpoints/…`). */
  readonly results: Bucket;
  /** Short-lived uploads. */
  readonly staging: Bucket;
  /** Server access logs of the three above. */
  readonly accessLogs: Bucket;

  constructor(scope: Construct, id: string, names: SpawnNames) {
    super(scope, id);
    const secure = {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
    } as const;
    this.accessLogs = new Bucket(this, "AccessLogs", {
      ...secure,
      bucketName: bucketName(names, "access-logs"),
      lifecycleRules: [{ id: "expire", expiration: Duration.days(LIFECYCLE.accessLogsExpiryDays) }],
    });
    Validations.of(this.accessLogs).acknowledge({
      id: "AwsSolutions-S1",
      reason:
        "this is the server access log bucket of the other three; logging it into itself would log its own log writes",
    });
    const abort = { abortIncompleteMultipartUploadAfter: Duration.days(LIFECYCLE.abortIncompleteUploadDays) };
    const bucket = (kind: BucketKind, logicalId: string, lifecycleRules: LifecycleRule[]) =>
      new Bucket(this, logicalId, {
        ...secure,
        bucketName: bucketName(names, kind),
        serverAccessLogsBucket: this.accessLogs,
        serverAccessLogsPrefix: `${kind}/`,
        lifecycleRules,
      });
    this.artifacts = bucket("artifacts", "Artifacts", [{ id: "abort-incomplete-uploads", ...abort }]);
    this.results = bucket("results", "Results", [
      {
        id: "infrequent-access",
        ...abort,
        transitions: [
          {
            storageClass: StorageClass.INFREQUENT_ACCESS,
            transitionAfter: Duration.days(LIFECYCLE.resultsInfrequentAccessDays),
          },
        ],
      },
    ]);
    this.staging = bucket("staging", "Staging", [
      { id: "expire", ...abort, expiration: Duration.days(LIFECYCLE.stagingExpiryDays) },
    ]);
  }
}
