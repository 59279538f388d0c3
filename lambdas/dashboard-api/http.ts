/**
 * API Gateway HTTP API (payload format 2.0) ↔ the API's plain request and response. The caller
 * is taken only from the claims API Gateway's JWT authorizer verified, never from a header.
 */
import type { APIGatewayProxyEventV2WithJWTAuthorizer, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { ApiRequest, ApiResponse } from "./api.js";

/** The verified caller: the ID token's e-mail, lowercased; undefined without one (→ 401). */
export function callerOf(event: APIGatewayProxyEventV2WithJWTAuthorizer): string | undefined {
  const claims = event.requestContext?.authorizer?.jwt?.claims;
  // Only ID tokens carry the e-mail; an access token for the same client is not an identity here.
  if (claims?.token_use !== "id") return undefined;
  const email = claims.email;
  return typeof email === "string" && email.includes("@") ? email.toLowerCase() : undefined;
}

export function toApiRequest(event: APIGatewayProxyEventV2WithJWTAuthorizer): ApiRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(event.headers ?? {})) headers[k.toLowerCase()] = v;
  const body =
    event.body === undefined
      ? undefined
      : event.isBase64Encoded
        ? Buffer.from(event.body, "base64").toString("utf8")
        : event.body;
  const user = callerOf(event);
  return {
    method: event.requestContext?.http?.method ?? "GET",
    path: event.rawPath ?? "/",
    query: new URLSearchParams(event.rawQueryString ?? ""),
    headers,
    ...(body !== undefined ? { body } : {}),
    ...(user ? { user } : {}),
  };
}

export function toResult(
  response: ApiResponse,
  extraHeaders: Record<string, string> = {},
): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode: response.status,
    headers: { ...response.headers, ...extraHeaders },
    body: response.body,
    isBase64Encoded: false,
  };
}
