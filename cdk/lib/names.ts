/**
 * Physical names shared by the home stack and the launch-region stacks. A region stack cannot
 * import values from a stack in another region, so what it needs from the home stack (bucket
 * names, the bus, the agent's instance profile) has a name computed from the stack name, the home
 * region and the account, the same on both sides.
 */
import { Aws } from "aws-cdk-lib";

/** The buckets the home stack owns; see SpawnBuckets. */
export type BucketKind = "artifacts" | "results" | "staging" | "access-logs";

export interface SpawnNames {
  stackName: string;
  /** Home region: a literal, or the `AWS::Region` token of a region-agnostic stack. */
  homeRegion: string;
}

/** Table prefix: the stack name and a hyphen (`spawn-` for the default stack, as locally). */
export function tablePrefix(names: SpawnNames): string {
  return `${names.stackName}-`;
}

/** Globally unique: `<stack>-<kind>-<account>-<home region>` (at most 63 characters for a 20-character stack name). */
export function bucketName(names: SpawnNames, kind: BucketKind): string {
  return `${names.stackName}-${kind}-${Aws.ACCOUNT_ID}-${names.homeRegion}`;
}

/** The stack's own EventBridge bus. */
export function eventBusName(names: SpawnNames): string {
  return names.stackName;
}

export function eventBusArn(names: SpawnNames): string {
  return `arn:${Aws.PARTITION}:events:${names.homeRegion}:${Aws.ACCOUNT_ID}:event-bus/${eventBusName(names)}`;
}

/** IAM names are global to the account: the home region keeps two home stacks of one name apart. */
export function agentInstanceProfileName(names: SpawnNames): string {
  return `${names.stackName}-agent-${names.homeRegion}`;
}

export function agentInstanceProfileArn(names: SpawnNames): string {
  return `arn:${Aws.PARTITION}:iam::${Aws.ACCOUNT_ID}:instance-profile/${agentInstanceProfileName(names)}`;
}

/** DynamoDB table ARN in the home region (instances in every region write to the home tables). */
export function tableArn(names: SpawnNames, tableName: string): string {
  return `arn:${Aws.PARTITION}:dynamodb:${names.homeRegion}:${Aws.ACCOUNT_ID}:table/${tableName}`;
}
