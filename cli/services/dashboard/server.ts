/**
 * The dashboard's HTTP server: the UI's static files, a small JSON API over the state and
 * object stores, Server-Sent Events for live task states, Prometheus `/metrics`, and
 * `/health/live` + `/health/ready`. Loopback only by default; every API call needs the session
 * token (cookie or `x-spawn-token` header) and actions need the header (CSRF). docs/dashboard.md
 * documents every route.
 */
import { randomBytes as nodeRandomBytes, timingSafeEqual } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { extname, join } from "node:path";
import {
  type DeltaEvent,
  formatTraceparent,
  type LogChunk,
  type MetricCurves,
  newTraceContext,
  type OutputList,
  parseTraceparent,
  type Results,
  type SweepList,
  type SweepSummary,
  type TaskGrid,
  TOKEN_HEADER,
  type TraceContext,
} from "#core/api.js";
import { ExitCode } from "#core/errors.js";
import { type MetricFamily, renderPrometheus, sweepMetricFamilies } from "#core/metrics.js";
import type { SweepRecord } from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import { type PollerOptions, PollerRegistry } from "#providers/dashboard-poller.js";
import {
  DashboardReads,
  errorResponse,
  HttpError,
  intParam,
  resultsOf,
} from "#providers/dashboard-routes.js";
import type { Logger } from "#providers/log.js";
import type { OpenContext } from "./manage.js";
import { localManageRoute } from "./manage-local.js";

export interface DashboardDeps {
  store: StateStore;
  objects: ObjectStore;
  clock: Clock;
  log: Logger;
  /** Opens the CLI's stores per request for the schedules and alerts routes; without it they are 404. */
  context?: OpenContext;
}

export interface DashboardOptions {
  /** @default "127.0.0.1" */
  host?: string;
  /** 0 lets the OS pick. */
  port: number;
  /** The session token; generated when omitted. */
  token?: string;
  /** The built UI (dist/dashboard); without it `/` says the UI is not built. */
  staticDir?: string;
  /** The trace this dashboard session belongs to (the `spawn dashboard` command's traceparent). */
  trace?: TraceContext;
  poller?: PollerOptions & { idleMs?: number };
}

export interface RunningDashboard {
  /** Base URL, e.g. http://127.0.0.1:7500 */
  url: string;
  /** The URL to open: it carries the token once, the server turns it into a session cookie. */
  loginUrl: string;
  token: string;
  server: Server;
  close(): Promise<void>;
}

const COOKIE = "spawn_session";
/** An SSE client this far behind is disconnected; it reconnects and gets a fresh snapshot. */
const MAX_SSE_BACKLOG = 1024 * 1024;

const SECURITY_HEADERS = {
  "content-security-policy":
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cache-control": "no-store",
} as const;

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json; charset=utf-8",
  ".svg": "image/svg+xml",
};

function sameToken(given: string | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieValue(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? "").split(";")) {
    const [k, ...v] = part.trim().split("=");
    if (k === name) return v.join("=");
  }
  return undefined;
}

export async function startDashboard(
  deps: DashboardDeps,
  options: DashboardOptions,
): Promise<RunningDashboard> {
  const { store, objects, clock, log } = deps;
  const host = options.host ?? "127.0.0.1";
  const token = options.token ?? nodeRandomBytes(24).toString("base64url");
  const random = (n: number) => new Uint8Array(nodeRandomBytes(n));
  const sessionTrace = options.trace ?? newTraceContext(random);
  const pollers = new PollerRegistry({ store, clock, log }, options.poller);
  const reads = new DashboardReads({ store, objects, clock });
  const streams = new Set<ServerResponse>();
  const staticFiles = await loadStatic(options.staticDir);
  let port = options.port;

  const allowedHosts = () =>
    new Set([`${host}:${port}`, `127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`]);

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      ...SECURITY_HEADERS,
      "content-type": "application/json; charset=utf-8",
      "content-length": String(Buffer.byteLength(text)),
      ...headers,
    });
    res.end(text);
  };

  const sendError = (res: ServerResponse, error: unknown, trace: TraceContext, path: string) => {
    const { status, body, internal } = errorResponse(error);
    if (internal) log.error("request failed", { path, traceparent: formatTraceparent(trace), error });
    if (!res.headersSent) send(res, status, body);
    else res.end();
  };

  // --- the API -------------------------------------------------------------------------------

  async function sweepSummary(s: SweepRecord): Promise<SweepSummary> {
    const poller = pollers.all().find((p) => p.sweepId === s.sweepId);
    // A sweep on the list that is still active is likely opened next: keep its poller warm.
    if (s.active) pollers.warm(s.sweepId);
    if (poller?.loaded) return poller.summary();
    return reads.summary(s);
  }

  async function listSweeps(url: URL): Promise<SweepList> {
    const owner = url.searchParams.get("owner") ?? undefined;
    const limit = Math.min(200, intParam(url.searchParams.get("limit"), "limit", 50));
    const sweeps = await store.listSweeps({ ...(owner ? { owner } : {}), limit });
    return { sweeps: await Promise.all(sweeps.map(sweepSummary)) };
  }

  async function results(sweepId: string): Promise<Results> {
    // From the poller's records: no second read of every task, and the same state as the grid.
    return resultsOf(sweepId, (await pollers.get(sweepId)).tasks());
  }

  const logs = (sweepId: string, task: string, url: URL): Promise<LogChunk> =>
    reads.logs(sweepId, task, url.searchParams);
  const curves = (sweepId: string, task: string, url: URL): Promise<MetricCurves> =>
    reads.curves(sweepId, task, url.searchParams);
  const outputs = (sweepId: string): Promise<OutputList> => reads.outputs(sweepId);

  async function downloadOutput(res: ServerResponse, sweepId: string, rest: string): Promise<void> {
    const { name, bytes } = await reads.output(sweepId, rest);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      // Never rendered in our origin: a task's HTML output must not run as our page.
      "content-type": "application/octet-stream",
      "content-disposition": `attachment; filename="${name}"`,
      "content-length": String(bytes.length),
    });
    res.end(Buffer.from(bytes));
  }

  async function events(req: IncomingMessage, res: ServerResponse, sweepId: string): Promise<void> {
    const poller = await pollers.get(sweepId);
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      "content-type": "text/event-stream; charset=utf-8",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    streams.add(res);
    const write = (event: string, data: unknown) => {
      // A delta can arrive between destroy() and the "close" event that unsubscribes.
      if (res.destroyed) return;
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
      if (res.writableLength > MAX_SSE_BACKLOG) res.destroy();
    };
    res.write("retry: 2000\n\n");
    // Subscribe and snapshot in the same turn: no delta can fall between them.
    const unsubscribe = poller.subscribe((delta: DeltaEvent) => write("delta", delta));
    write("snapshot", poller.snapshot());
    const keepAlive = setInterval(() => {
      if (!res.destroyed) res.write(": keep-alive\n\n");
    }, 15_000);
    const close = () => {
      clearInterval(keepAlive);
      unsubscribe();
      streams.delete(res);
    };
    req.once("close", close);
    res.once("close", close);
  }

  async function metricsText(): Promise<string> {
    // Active sweeps are watched while someone scrapes; pollers stop once scrapes stop.
    const active = await store.listActiveSweeps();
    await Promise.all(active.map((s) => pollers.get(s.sweepId).catch(() => undefined)));
    const loaded = pollers.all().filter((p) => p.loaded);
    for (const p of loaded) p.lastUsed = clock.now();
    const own: MetricFamily[] = [
      {
        name: "spawn_dashboard_sse_clients",
        help: "Open Server-Sent Events streams.",
        type: "gauge",
        samples: [{ value: streams.size }],
      },
      {
        name: "spawn_dashboard_poll_seconds",
        help: "How long a sweep poller's last tick took to read the store (bounds the update latency).",
        type: "gauge",
        samples: loaded.map((p) => ({ labels: { sweep: p.sweepId }, value: p.lastPollMs / 1000 })),
      },
      {
        name: "spawn_active_sweeps",
        help: "Sweeps the control plane still works on.",
        type: "gauge",
        samples: [{ value: active.length }],
      },
    ];
    return renderPrometheus([...sweepMetricFamilies(loaded.map((p) => p.observation())), ...own]);
  }

  async function ready(): Promise<boolean> {
    const timeout = new Promise<false>((resolve) => setTimeout(() => resolve(false), 2000).unref());
    return Promise.race([
      store.listSweeps({ limit: 1 }).then(
        () => true,
        () => false,
      ),
      timeout,
    ]);
  }

  // --- routing -------------------------------------------------------------------------------

  function authenticated(req: IncomingMessage, allowCookie: boolean): boolean {
    const header = req.headers[TOKEN_HEADER];
    if (sameToken(typeof header === "string" ? header : undefined, token)) return true;
    const auth = req.headers.authorization;
    if (auth?.startsWith("Bearer ") && sameToken(auth.slice(7), token)) return true;
    return allowCookie && sameToken(cookieValue(req, COOKIE), token);
  }

  async function route(req: IncomingMessage, res: ServerResponse, url: URL, trace: TraceContext) {
    const method = req.method ?? "GET";
    const path = url.pathname;

    if (path === "/health/live") return send(res, 200, { status: "ok" });
    if (path === "/health/ready") {
      const ok = await ready();
      return send(res, ok ? 200 : 503, { status: ok ? "ok" : "state store not answering" });
    }

    if (path === "/" && method === "GET") {
      if (sameToken(url.searchParams.get("token") ?? undefined, token)) {
        res.writeHead(303, {
          ...SECURITY_HEADERS,
          location: "/",
          "set-cookie": `${COOKIE}=${token}; HttpOnly; SameSite=Strict; Path=/`,
        });
        return res.end();
      }
      if (!authenticated(req, true)) return sendLoginPage(res);
      return sendIndex(res);
    }
    const asset = staticFiles.get(path.slice(1));
    if (asset && method === "GET") {
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        "content-type": CONTENT_TYPES[extname(path)] ?? "application/octet-stream",
        "content-length": String(asset.length),
      });
      return res.end(asset);
    }

    if (path === "/metrics") {
      if (!authenticated(req, true))
        throw new HttpError(401, "authentication required", "send Authorization: Bearer <token>");
      const text = await metricsText();
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/plain; version=0.0.4; charset=utf-8" });
      return res.end(text);
    }

    if (!path.startsWith("/api/")) throw new HttpError(404, `no such page: ${path}`);
    // Actions need the header: a cookie alone is what a cross-site request could carry.
    const isAction = method !== "GET" && method !== "HEAD";
    if (!authenticated(req, !isAction))
      throw new HttpError(
        401,
        isAction ? `actions need the ${TOKEN_HEADER} header` : "authentication required",
        "open the URL that `spawn dashboard` printed",
      );
    if (
      isAction &&
      req.headers.origin !== undefined &&
      !allowedHosts().has(req.headers.origin.replace(/^https?:\/\//, ""))
    )
      throw new HttpError(403, `cross-origin request from ${req.headers.origin} refused`);

    const parts = path.slice("/api/".length).split("/").map(decodeURIComponent);
    if ((parts[0] === "schedules" || parts[0] === "alerts" || parts[0] === "queues") && deps.context) {
      const answer = await localManageRoute(deps.context, req, method, parts);
      if (!answer) throw new HttpError(404, `no such API: ${method} ${path}`);
      return send(res, answer.status, answer.body);
    }
    if (parts[0] !== "sweeps") throw new HttpError(404, `no such API: ${path}`);
    const [, sweepId, sub, arg, ...rest] = parts;
    if (method === "GET" && sweepId === undefined) return send(res, 200, await listSweeps(url));
    if (!sweepId) throw new HttpError(404, `no such API: ${path}`);

    if (method === "POST") {
      if (sub === "cancel" && arg === undefined) {
        const r = await reads.cancel(sweepId);
        log.info("sweep cancelled from the dashboard", {
          sweepId,
          changed: r.changed,
          traceparent: formatTraceparent(trace),
        });
        return send(res, 200, r);
      }
      if (sub === "retry" && arg === undefined) {
        const r = await reads.retry(sweepId, url.searchParams);
        log.info("sweep retried from the dashboard", {
          sweepId,
          retried: r.retried.length,
          traceparent: formatTraceparent(trace),
        });
        return send(res, 200, r);
      }
      throw new HttpError(404, `no such action: ${path}`);
    }
    if (method !== "GET") throw new HttpError(405, `${method} is not allowed here`);

    switch (sub) {
      case undefined:
        return send(res, 200, (await pollers.get(sweepId)).detail());
      case "tasks": {
        const snap = (await pollers.get(sweepId)).snapshot();
        return send(res, 200, { sweepId, seq: snap.seq, states: snap.states } satisfies TaskGrid);
      }
      case "results":
        return send(res, 200, await results(sweepId));
      case "logs":
        if (arg === undefined || rest.length) break;
        return send(res, 200, await logs(sweepId, arg, url));
      case "metrics":
        if (arg === undefined || rest.length) break;
        return send(res, 200, await curves(sweepId, arg, url));
      case "outputs":
        if (arg === undefined) return send(res, 200, await outputs(sweepId));
        return downloadOutput(res, sweepId, path.split("/").slice(5).join("/"));
      case "events":
        return events(req, res, sweepId);
    }
    throw new HttpError(404, `no such API: ${path}`);
  }

  function sendIndex(res: ServerResponse) {
    const page = staticFiles.get("index.html");
    if (!page) {
      res.writeHead(503, { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8" });
      return res.end("the dashboard UI is not built: run `npm run build`\n");
    }
    // The page learns the CSRF token and the session's trace from meta tags (values are base64url/hex).
    const html = page
      .toString("utf8")
      .replace("%SPAWN_TOKEN%", token)
      .replace("%SPAWN_TRACE%", formatTraceparent(sessionTrace));
    res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" });
    res.end(html);
  }

  function sendLoginPage(res: ServerResponse) {
    res.writeHead(401, { ...SECURITY_HEADERS, "content-type": "text/html; charset=utf-8" });
    res.end(
      '<!doctype html><html lang="en"><meta charset="utf-8"><title>spawn dashboard</title>' +
        "<p>This dashboard needs its session link. Open the URL that <code>spawn dashboard</code> printed " +
        "(it ends in <code>?token=…</code>).</p></html>",
    );
  }

  const server = createServer((req, res) => {
    const started = performance.now();
    const incoming = parseTraceparent(req.headers.traceparent as string | undefined);
    const trace = incoming ?? newTraceContext(random, sessionTrace);
    res.setHeader("traceparent", formatTraceparent(trace));
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://dashboard.invalid");
    } catch {
      return send(res, 400, { error: "bad request URL", exitCode: ExitCode.usage });
    }
    // DNS rebinding: a page on another name that resolves to 127.0.0.1 must not reach the API.
    if (!allowedHosts().has(req.headers.host ?? "")) {
      return send(res, 421, {
        error: `unexpected Host header ${JSON.stringify(req.headers.host ?? "")}`,
        exitCode: ExitCode.usage,
      });
    }
    res.once("finish", () => {
      if (url.pathname.startsWith("/api/") || url.pathname === "/metrics")
        log.info("request", {
          method: req.method,
          path: url.pathname,
          status: res.statusCode,
          ms: Math.round(performance.now() - started),
          traceparent: formatTraceparent(trace),
        });
    });
    route(req, res, url, trace).catch((error) => sendError(res, error, trace, url.pathname));
  });
  // Node closes idle keep-alive sockets after 5 s; a client that reuses one at that moment sees
  // "other side closed". A page polls and idles for longer than that, so keep sockets a minute.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  // Start reading active sweeps now: the first full read of a large sweep takes a while.
  void store
    .listActiveSweeps()
    .then((active) => {
      for (const sweep of active) pollers.warm(sweep.sweepId);
    })
    .catch((error) => log.warn("could not list active sweeps", { error }));
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  return {
    url,
    loginUrl: `${url}/?token=${token}`,
    token,
    server,
    async close() {
      pollers.close();
      for (const s of streams) s.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The built UI's files by name (index.html, app.js, app.css, maps); only these are ever served. */
async function loadStatic(dir: string | undefined): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  if (!dir) return files;
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return files;
  }
  for (const name of names) {
    if (CONTENT_TYPES[extname(name)]) files.set(name, await readFile(join(dir, name)));
  }
  return files;
}
