/**
 * The dashboard API Lambda behind the stack's HTTP API (cdk/lib/dashboard.ts): a middy handler
 * in front of `dashboardApi`, with the aws adapters. API Gateway's JWT authorizer has verified
 * the Cognito ID token before this runs; the caller is its `email` claim. Each response carries the request's `traceparent`, and an EMF line records its
 * latency by route.
 */
import { randomBytes } from "node:crypto";
import middy from "@middy/core";
import type {
  APIGatewayProxyEventV2WithJWTAuthorizer,
  APIGatewayProxyStructuredResultV2,
  Context,
} from "aws-lambda";
import { formatTraceparent, newTraceContext, parseTraceparent } from "#core/api.js";
import { systemClock } from "#core/ports.js";
import { openStackStores } from "#providers/aws/stack-stores.js";
import { DynamoTeamStore } from "#providers/dynamodb/team-store.js";
import { emitMetrics } from "../shared/emf.js";
import { requireEnv } from "../shared/env.js";
import { lambdaLogger } from "../shared/logger.js";
import { dashboardApi } from "./api.js";
import { S3OutputLinks } from "./downloads.js";
import { toApiRequest, toResult } from "./http.js";
import { teamManagement } from "./manage.js";

/** The environment contract with the stack (docs/aws.md); read once, at cold start. */
export const ENV = requireEnv([
  "SPAWN_TABLE_PREFIX",
  "SPAWN_ARTIFACTS_BUCKET",
  "SPAWN_RESULTS_BUCKET",
  "SPAWN_HOME_REGION",
  "SPAWN_SCHEDULE_GROUP",
  "SPAWN_SCHEDULER_HANDLER_ARN",
  "SPAWN_SCHEDULER_ROLE_ARN",
  "SPAWN_SCHEDULES_DLQ_ARN",
  "SPAWN_ALERTS_KEY_ARN",
  "SPAWN_ALERTS_TOPIC_ARN",
]);

const logger = lambdaLogger("dashboard-api");
const random = (n: number) => new Uint8Array(randomBytes(n));

let api: ReturnType<typeof dashboardApi> | undefined;

/** Clients, adapters and the sweep pollers behind `/poll`, built once per container and reused by every invocation. */
function containerApi(): ReturnType<typeof dashboardApi> {
  if (api) return api;
  // The stores the CLI builds from the stack's outputs, from the same values in the environment.
  const {
    clients,
    destroy: _destroy,
    ...stores
  } = openStackStores(
    { region: ENV.SPAWN_HOME_REGION, maxAttempts: 3 },
    {
      TablePrefix: ENV.SPAWN_TABLE_PREFIX,
      ArtifactsBucket: ENV.SPAWN_ARTIFACTS_BUCKET,
      ResultsBucket: ENV.SPAWN_RESULTS_BUCKET,
      ScheduleGroupName: ENV.SPAWN_SCHEDULE_GROUP,
      SchedulerHandlerArn: ENV.SPAWN_SCHEDULER_HANDLER_ARN,
      SchedulerRoleArn: ENV.SPAWN_SCHEDULER_ROLE_ARN,
      SchedulesDlqArn: ENV.SPAWN_SCHEDULES_DLQ_ARN,
      AlertsKeyArn: ENV.SPAWN_ALERTS_KEY_ARN,
      AlertsTopicArn: ENV.SPAWN_ALERTS_TOPIC_ARN,
    },
  );
  const teams = new DynamoTeamStore(clients.dynamo, ENV.SPAWN_TABLE_PREFIX);
  api = dashboardApi({
    store: stores.store,
    teams,
    objects: stores.objects,
    clock: systemClock,
    log: logger,
    links: new S3OutputLinks(clients.s3, ENV.SPAWN_RESULTS_BUCKET, systemClock),
    manage: teamManagement({ stores, teams, clock: systemClock, log: logger }),
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
