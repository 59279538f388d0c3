/** A DynamoDB client for the embedded dynalite: loopback endpoint, placeholder credentials, no AWS account. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";

/** Table names are the same in both providers; the local database is private to $SPAWN_HOME. */
export const TABLE_PREFIX = "spawn-";

export function localDynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 5,
  });
}
