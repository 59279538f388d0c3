/**
 * The UI's client for the dashboard API: every request carries the session token and a
 * `traceparent` in the dashboard session's trace; every response is validated with the
 * schema the server answers with (core/api.ts).
 */
import type { z } from "zod";
import { ApiError, formatTraceparent, newTraceContext, parseTraceparent, TOKEN_HEADER } from "#core/api.js";

const meta = (name: string) => document.querySelector<HTMLMetaElement>(`meta[name="${name}"]`)?.content ?? "";
const token = meta("spawn-token");
const session = parseTraceparent(meta("spawn-trace"));
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));

export class RequestError extends Error {
  override name = "RequestError";
  constructor(
    message: string,
    readonly status: number,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export async function request<S extends z.ZodType>(
  schema: S,
  path: string,
  init: { method?: "GET" | "POST"; signal?: AbortSignal } = {},
): Promise<z.infer<S>> {
  const response = await fetch(path, {
    method: init.method ?? "GET",
    headers: {
      [TOKEN_HEADER]: token,
      traceparent: formatTraceparent(newTraceContext(random, session)),
      accept: "application/json",
    },
    credentials: "same-origin",
    ...(init.signal ? { signal: init.signal } : {}),
  });
  const body: unknown = await response.json().catch(() => undefined);
  if (!response.ok) {
    const error = ApiError.safeParse(body);
    throw new RequestError(
      error.success ? error.data.error : `HTTP ${response.status}`,
      response.status,
      error.success ? error.data.hint : undefined,
    );
  }
  return schema.parse(body);
}

/** Where an output file downloads from. */
export function outputUrl(sweepId: string, task: number, path: string): string {
  return `/api/sweeps/${encodeURIComponent(sweepId)}/outputs/${task}/${path.split("/").map(encodeURIComponent).join("/")}`;
}
