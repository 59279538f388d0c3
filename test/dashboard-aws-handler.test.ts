/**
 * The dashboard-api Lambda's entry point as Lambda runs it: the environment the stack sets, the
 * SDK's DynamoDB client (pointed at dynalite by AWS_ENDPOINT_URL_DYNAMODB), the API Gateway
 * event in, the structured result out, and the request's EMF line on stdout.
 */
import type { APIGatewayProxyEventV2WithJWTAuthorizer, Context } from "aws-lambda";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { useDynaliteStore } from "./helpers/dynamo.js";

const useStore = useDynaliteStore("dashawsfn");
let handler: (event: APIGatewayProxyEventV2WithJWTAuthorizer, context: Context) => Promise<unknown>;

beforeAll(async () => {
  const { store, engine } = useStore();
  vi.stubEnv("SPAWN_TABLE_PREFIX", store.tables.sweeps.replace(/sweeps$/, ""));
  vi.stubEnv("SPAWN_ARTIFACTS_BUCKET", "artifacts");
  vi.stubEnv("SPAWN_RESULTS_BUCKET", "results");
  vi.stubEnv("SPAWN_HOME_REGION", "us-east-1");
  vi.stubEnv("SPAWN_SCHEDULE_GROUP", "spawn-schedules");
  vi.stubEnv("SPAWN_SCHEDULER_HANDLER_ARN", "arn:aws:lambda:us-east-1:123456789012:function:scheduler");
  vi.stubEnv("SPAWN_SCHEDULER_ROLE_ARN", "arn:aws:iam::123456789012:role/scheduler-invoke");
  vi.stubEnv("SPAWN_SCHEDULES_DLQ_ARN", "arn:aws:sqs:us-east-1:123456789012:schedules-dlq");
  vi.stubEnv("SPAWN_ALERTS_KEY_ARN", "arn:aws:kms:us-east-1:123456789012:key/k");
  vi.stubEnv("SPAWN_ALERTS_TOPIC_ARN", "arn:aws:sns:us-east-1:123456789012:alerts");
  vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", engine.endpoint);
  vi.stubEnv("AWS_ACCESS_KEY_ID", "test");
  vi.stubEnv("AWS_SECRET_ACCESS_KEY", "test");
  ({ handler } = (await import("../lambdas/dashboard-api/handler.js")) as unknown as {
    handler: typeof handler;
  });
});
afterEach(() => vi.restoreAllMocks());

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const context = { awsRequestId: "req-1", getRemainingTimeInMillis: () => 29_000 } as unknown as Context;

function event(
  claims?: Record<string, string>,
  path = "/api/teams",
): APIGatewayProxyEventV2WithJWTAuthorizer {
  return {
    version: "2.0",
    routeKey: "GET /api/{proxy+}",
    rawPath: path,
    rawQueryString: "",
    headers: { traceparent: TRACEPARENT },
    isBase64Encoded: false,
    requestContext: {
      http: { method: "GET", path },
      ...(claims ? { authorizer: { jwt: { claims, scopes: null } } } : {}),
    },
  } as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
}

/** Runs the handler and returns its result and the EMF lines it printed. */
async function invoke(e: APIGatewayProxyEventV2WithJWTAuthorizer) {
  const lines: string[] = [];
  vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  const result = (await handler(e, context)) as {
    statusCode: number;
    headers: Record<string, string>;
    body: string;
  };
  vi.restoreAllMocks();
  const emf = lines.map((l) => JSON.parse(l)).filter((l) => l._aws);
  return { result, emf, lines };
}

describe("dashboard-api handler", () => {
  it("answers 401 without verified claims, echoes the traceparent, and records the latency as EMF", async () => {
    const { result, emf, lines } = await invoke(event());
    expect(result.statusCode).toBe(401);
    expect(result.headers.traceparent).toBe(TRACEPARENT);
    expect(JSON.parse(result.body)).toMatchObject({ error: "authentication required" });
    expect(emf).toHaveLength(1);
    expect(emf[0]._aws.CloudWatchMetrics[0]).toEqual({
      Namespace: "spawn",
      Dimensions: [["fn", "route"]],
      Metrics: [{ Name: "RequestLatency", Unit: "Milliseconds" }],
    });
    expect(emf[0]).toMatchObject({
      fn: "dashboard-api",
      route: "GET /api/{proxy+}",
      status: 401,
      traceparent: TRACEPARENT,
    });
    expect(emf[0].RequestLatency).toBeGreaterThanOrEqual(0);
    // One request line, without the response body.
    const requestLine = lines.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    expect(requestLine).toMatchObject({
      fn: "dashboard-api",
      requestId: "req-1",
      status: 401,
      path: "/api/teams",
    });
    expect(JSON.stringify(requestLine)).not.toContain("authentication required");
  });

  it("reads the teams table the stack names, through the SDK's own client", async () => {
    const { result } = await invoke(event({ email: "Owner@Example.com", token_use: "id" }));
    expect(result.statusCode).toBe(200);
    expect(JSON.parse(result.body)).toEqual({
      user: "owner@example.com",
      teams: [{ team: "default", role: "admin" }],
    });
  });

  it("serves the schedules and alerts of the caller's teams from the stack's tables", async () => {
    const claims = { email: "owner@example.com", token_use: "id" };
    const schedules = await invoke(event(claims, "/api/schedules"));
    expect(schedules.result.statusCode).toBe(200);
    expect(JSON.parse(schedules.result.body)).toEqual({ schedules: [] });
    const alerts = await invoke(event(claims, "/api/alerts"));
    expect(alerts.result.statusCode).toBe(200);
    expect(JSON.parse(alerts.result.body)).toEqual({ alerts: [] });
  });
});
