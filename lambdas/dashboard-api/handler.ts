/**
 * The dashboard API Lambda behind the stack's HTTP API (cdk/lib/dashboard.ts): a middy handler
 * in front of `dashboardApi`, with the aws adapters. API Gateway's JWT authorizer has verified
 * the Cognito ID token before this runs; the caller is its `email` claim. Each response carries the request's `traceparent`, and an EMF line records its
 * latency by route.
 */
import { randomBytes } from "node:crypto";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { S3Client } from "@aws-sdk/client-s3";
import middy from "@middy/core";
import type {
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Context,
} from "aws-lambda";
import { formatTraceparent, newTraceContext, parseTraceparent } from "#core/api.js";
import { systemClock } from "#core/ports.js";
import { S3ObjectStore } from "#providers/aws/s3-objects.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { DynamoTeamStore } from "#providers/dynamodb/team-store.js";
import { emitMetrics } from "../shared/emf.js";
import { requireEnv } from "../shared/env.js";
import { lambdaLogger } from "../shared/logger.js";
import { dashboardApi } from "./api.js";
import { toApiRequest, toResult } from "./http.js";

/** The environment contract with the stack (docs/aws.md); read once, at cold start. */
export const ENV = requireEnv([
  "SPAWN_TABLE_PREFIX",
  "SPAWN_ARTIFACTS_BUCKET",
  "SPAWN_RESULTS_BUCKET",
  "SPAWN_HOME_REGION",
]);

const logger = lambdaLogger("dashboard-api");
const random = (n: number) => new Uint8Array(randomBytes(n));

let api: ReturnType<typeof dashboardApi> | undefined;

/** Clients and adapters, built once per container and reused by every invocation. */
function containerApi(): ReturnType<typeof dashboardApi> {
  if (api) return api;
  const region = ENV.SPAWN_HOME_REGION;
  const dynamo = new DynamoDBClient({ region });
  api = dashboardApi({
    store: new DynamoStateStore(dynamo, ENV.SPAWN_TABLE_PREFIX),
    teams: new DynamoTeamStore(dynamo, ENV.SPAWN_TABLE_PREFIX),
    objects: new S3ObjectStore(new S3Client({ region }), {
      bucket: ENV.SPAWN_RESULTS_BUCKET,
      routes: { "bundles/": ENV.SPAWN_ARTIFACTS_BUCKET },
    }),
    clock: systemClock,
    log: logger,
  });
  return api;
}

/**
 * No logContext middleware here: its "done" line logs the whole result, which for this function
 * is a response body (a 10,000-task grid, a log chunk, comments). One `request` line instead.
 */
export const handler = middy<
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Error,
  Context
>().handler(async (event, context) => {
  const started = performance.now();
  const trace = parseTraceparent(event.headers?.traceparent) ?? newTraceContext(random);
  const traceparent = formatTraceparent(trace);
  const request = toApiRequest(event);
  const response = await containerApi()(request);
  const ms = performance.now() - started;
  logger.info("request", {
    requestId: context.awsRequestId,
    method: request.method,
    path: request.path,
    status: response.status,
    ms: Math.round(ms),
    user: request.user,
    traceparent,
  });
  emitMetrics(
    [{ name: "RequestLatency", value: ms, unit: "Milliseconds" }],
    { fn: "dashboard-api", route: event.routeKey ?? "unknown" },
    { properties: { status: response.status, traceparent } },
  );
  return toResult(response, { traceparent });
});
