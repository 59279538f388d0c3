/**
 * The UI's client for the dashboard API: every request carries the session token and a
 * `traceparent` in the dashboard session's trace; every response is validated with the
 * schema the server answers with (core/api.ts).
 */
import type { z } from "zod";
import {
  ApiError,
  DownloadLink,
  formatTraceparent,
  newTraceContext,
  parseTraceparent,
  pollPath,
  SnapshotEvent,
  TOKEN_HEADER,
} from "#core/api.js";

const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? "";
const token = meta("spawn-token");
/**
 * Deployed on AWS the page is served as built, with no session token filled in: it signs in
 * with Cognito and sends the ID token instead (dashboard/cognito.ts).
 */
export const onAws = token === "" || token === "%SPAWN_TOKEN%";
let idToken: Promise<string> | undefined;

/**
 * How the sweep page follows a sweep: Server-Sent Events from `spawn dashboard`, or `/poll`
 * with an ETag on AWS, where API Gateway HTTP APIs do not stream.
 */
export const liveUpdates: "events" | "poll" = onAws ? "poll" : "events";

async function credentials(renew = false): Promise<Record<string, string>> {
  if (!onAws) return { [TOKEN_HEADER]: token };
  if (renew || !idToken) idToken = import("./cognito.js").then((m) => m.cognitoIdToken({ renew }));
  return { authorization: `Bearer ${await idToken}` };
}
const session = parseTraceparent(meta("spawn-trace"));
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

export class RequestError extends Error {
  override name = "RequestError";
  constructor(
    message: string,
    readonly status: number,
    readonly hint?: string,
    /** The form field a rejected request is about (ApiError.field). */
    readonly field?: string,
  ) {
    super(message);
  }
}

export async function request<S extends z.ZodType>(
  schema: S,
  path: string,
  init: { method?: "GET" | "POST" | "PUT" | "DELETE"; body?: unknown; signal?: AbortSignal } = {},
): Promise<z.infer<S>> {
  const response = await fetch(path, {
    method: init.method ?? "GET",
    headers: {
      ...(await credentials()),
      traceparent: formatTraceparent(newTraceContext(random, session)),
      accept: "application/json",
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
    },
    credentials: "same-origin",
    ...(init.body === undefined ? {} : { body: JSON.stringify(init.body) }),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = ApiError.safeParse(body);
    throw new RequestError(
      error.success ? error.data.error : `HTTP ${response.status}`,
      response.status,
      error.success ? error.data.hint : undefined,
      error.success ? error.data.field : undefined,
    );
  }
  return schema.parse(body);
}

/**
 * `GET /api/sweeps/:id/poll`: the sweep's snapshot, or undefined while it still matches `etag`
 * (304). A 401 on AWS renews the ID token once (it expires hourly) and asks again.
 */
export async function pollSnapshot(
  sweepId: string,
  etag: string | undefined,
  signal?: AbortSignal,
): Promise<{ snapshot?: SnapshotEvent; etag?: string }> {
  const send = async (renew: boolean) =>
    fetch(pollPath(sweepId), {
      headers: {
        ...(await credentials(renew)),
        traceparent: formatTraceparent(newTraceContext(random, session)),
        accept: "application/json",
        ...(etag ? { "if-none-match": etag } : {}),
      },
      credentials: "same-origin",
      cache: "no-store",
      ...(signal ? { signal } : {}),
    });
  let response = await send(false);
  if (response.status === 401 && onAws) response = await send(true);
  if (response.status === 304) return etag ? { etag } : {};
  if (!response.ok) throw new RequestError(`HTTP ${response.status}`, response.status);
  const next = response.headers.get("etag");
  return { snapshot: SnapshotEvent.parse(await response.json()), ...(next ? { etag: next } : {}) };
}

/** Where an output file downloads from (on AWS: where its download link comes from). */
export function outputUrl(sweepId: string, task: number, path: string): string {
  return `/api/sweeps/${encodeURIComponent(sweepId)}/outputs/${task}/${path.split("/").map(encodeURIComponent).join("/")}`;
}

/**
 * Downloads an output on AWS: the API answers a presigned S3 URL valid a few minutes (asked for
 * with the bearer token), and the page navigates to it. S3 answers with `Content-Disposition:
 * attachment`, so the browser saves the file and the page stays. A navigation is not a fetch:
 * the CSP's `connect-src` does not apply to it.
 */
export async function downloadOutput(sweepId: string, task: number, path: string): Promise<void> {
  const { url } = await request(DownloadLink, outputUrl(sweepId, task, path));
  location.assign(url);
}
