/** DocumentClient requests every store shares: paginated queries, conditional creates, their errors. */
import {
  type DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  type QueryCommandInput,
} from "@aws-sdk/lib-dynamodb";
import type { Item } from "./codec.js";

/** Every page of a query, or the first `limit` items. */
export async function queryAll(
  doc: DynamoDBDocumentClient,
  input: QueryCommandInput,
  limit?: number,
): Promise<Item[]> {
  const items: Item[] = [];
  let startKey: Record<string, unknown> | undefined;
  do {
    const remaining = limit === undefined ? undefined : limit - items.length;
    if (remaining !== undefined && remaining <= 0) break;
    const out = await doc.send(
      new QueryCommand({
        ...input,
        ExclusiveStartKey: startKey,
        ...(remaining !== undefined ? { Limit: remaining } : {}),
      }),
    );
    items.push(...((out.Items ?? []) as Item[]));
    startKey = out.LastEvaluatedKey;
  } while (startKey);
  return items;
}

/** Writes `item` unless an item with its key exists (`attribute_not_exists(keyAttribute)`); false when one does. */
export async function putIfAbsent(
  doc: DynamoDBDocumentClient,
  table: string,
  item: Item,
  keyAttribute: string,
): Promise<boolean> {
  try {
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: item,
        ConditionExpression: `attribute_not_exists(#k)`,
        ExpressionAttributeNames: { "#k": keyAttribute },
      }),
    );
    return true;
  } catch (err) {
    if (isConditionalCheckFailed(err)) return false;
    throw err;
  }
}

export function isConditionalCheckFailed(err: unknown): boolean {
  return (
    err !== null &&
    typeof err === "object" &&
    "name" in err &&
    (err as { name: unknown }).name === "ConditionalCheckFailedException"
  );
}
