/** A DynamoDB client for the embedded dynalite: loopback endpoint, placeholder credentials, no AWS account. */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";

/** Table names are the same in both providers; the local database is private to $SPAWN_HOME. */
export const TABLE_PREFIX = "spawn-";

/**
 * dynalite requires an Authorization header but never verifies it, so requests to the loopback
 * store carry a fixed one instead of a SigV4 signature: signing every request (HMAC over the
 * payload) is measurable CPU on the agent's hot path and buys nothing on 127.0.0.1.
 */
const loopbackSigner = {
  sign: async <R extends { headers: Record<string, string> }>(request: R): Promise<R> => {
    request.headers.authorization =
      "AWS4-HMAC-SHA256 Credential=local/20260101/local/dynamodb/aws4_request, SignedHeaders=host, Signature=00";
    request.headers["x-amz-date"] = "20260101T000000Z";
    return request;
  },
};

export function localDynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: "local",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    signer: loopbackSigner,
    maxAttempts: 5,
  });
}
