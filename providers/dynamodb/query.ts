import { type DynamoDBDocumentClient, QueryCommand, type QueryCommandInput } from "@aws-sdk/lib-dynamodb";
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
