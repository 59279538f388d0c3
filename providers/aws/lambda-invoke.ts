/**
 * A synchronous Lambda Invoke (`POST /2015-03-31/functions/<name>/invocations`) signed with
 * Signature Version 4, for the agent's calls to dns-updater. The project ships no Lambda client
 * (@aws-sdk/client-lambda is not a dependency, and the orchestrator must never hold one: ADR
 * 0014), so this is the one request spawn signs itself; credentials come from an SDK client the
 * caller already has (the standard chain: the instance role on EC2). ADR 0032.
 */
import { createHash, createHmac } from "node:crypto";

export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface SignableRequest {
  method: string;
  host: string;
  /** Already URI-encoded, e.g. `/2015-03-31/functions/my-fn/invocations`. */
  path: string;
  /** Canonical query string, sorted and encoded ("" for none). */
  query?: string;
  headers: Record<string, string>;
  body: string;
}

const sha256 = (data: string) => createHash("sha256").update(data, "utf8").digest("hex");
const hmac = (key: Buffer | string, data: string) => createHmac("sha256", key).update(data, "utf8").digest();

/** `20150830T123600Z` */
export function amzDate(at: Date): string {
  return at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d{3}/, "");
}

/**
 * The headers to send, `authorization` included: every header of `request` is signed (names
 * lower-cased, values trimmed), plus `host`, `x-amz-date` and, with temporary credentials,
 * `x-amz-security-token`.
 */
export function signV4(
  request: SignableRequest,
  credentials: AwsCredentials,
  scope: { region: string; service: string },
  at: Date,
): Record<string, string> {
  const date = amzDate(at);
  const day = date.slice(0, 8);
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(request.headers))
    headers[name.toLowerCase()] = value.trim().replace(/\s+/g, " ");
  headers.host = request.host;
  headers["x-amz-date"] = date;
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const signedHeaders = names.join(";");
  const canonical = [
    request.method,
    request.path,
    request.query ?? "",
    ...names.map((n) => `${n}:${headers[n]}`),
    "",
    signedHeaders,
    sha256(request.body),
  ].join("\n");
  const credentialScope = `${day}/${scope.region}/${scope.service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", date, credentialScope, sha256(canonical)].join("\n");
  const key = hmac(
    hmac(hmac(hmac(`AWS4${credentials.secretAccessKey}`, day), scope.region), scope.service),
    "aws4_request",
  );
  const signature = createHmac("sha256", key).update(stringToSign, "utf8").digest("hex");
  return {
    ...headers,
    authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${credentialScope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
  };
}

/** The function ran and threw (Lambda answers 200 with `X-Amz-Function-Error`), or the call was refused. */
export class LambdaInvokeError extends Error {
  override name = "LambdaInvokeError";
}

export interface InvokeOptions {
  region: string;
  functionName: string;
  payload: unknown;
  credentials: () => Promise<AwsCredentials>;
  /** Aborts the request (the agent gives DNS a few seconds). */
  signal?: AbortSignal;
  /** Tests point this at a loopback server. @default https://lambda.<region>.amazonaws.com */
  endpoint?: string;
  now?: () => Date;
}

/** Invokes the function synchronously and resolves with its JSON answer. */
export async function invokeLambda(options: InvokeOptions): Promise<unknown> {
  const url = new URL(
    `/2015-03-31/functions/${encodeURIComponent(options.functionName)}/invocations`,
    options.endpoint ?? `https://lambda.${options.region}.amazonaws.com`,
  );
  const body = JSON.stringify(options.payload);
  const headers = signV4(
    {
      method: "POST",
      host: url.host,
      path: url.pathname,
      headers: { "content-type": "application/json", "x-amz-invocation-type": "RequestResponse" },
      body,
    },
    await options.credentials(),
    { region: options.region, service: "lambda" },
    options.now?.() ?? new Date(),
  );
  // fetch sets Host itself from the URL; the signed value is the same.
  const { host: _host, ...sent } = headers;
  const response = await fetch(url, {
    method: "POST",
    headers: sent,
    body,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  const text = await response.text();
  if (!response.ok)
    throw new LambdaInvokeError(
      `invoking ${options.functionName} failed: HTTP ${response.status} ${text.slice(0, 300)}`,
    );
  const functionError = response.headers.get("x-amz-function-error");
  if (functionError)
    throw new LambdaInvokeError(`${options.functionName} failed (${functionError}): ${text.slice(0, 300)}`);
  try {
    return JSON.parse(text);
  } catch {
    throw new LambdaInvokeError(
      `${options.functionName} answered something other than JSON: ${text.slice(0, 300)}`,
    );
  }
}
