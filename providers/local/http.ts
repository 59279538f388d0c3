/**
 * What the embedded control plane serves over HTTP besides DynamoDB: Prometheus `/metrics`
 * (rendered by core/metrics.ts, names `spawn_*`) and `/health/live` + `/health/ready`, on the same
 * loopback port as its dynalite (the `endpoint` of `server.json` and `spawn local status`).
 * docs/dashboard.md lists the metrics.
 *
 * The port is loopback-only and carries no token, like the DynamoDB API beside it. What guards it
 * is for browsers: a request with an `Origin` header (any page's fetch or form that is not a plain
 * GET) is refused, so a web page cannot write the store through dynalite's permissive CORS, and a
 * `Host` that is not this loopback port is refused, so DNS rebinding cannot read it either.
 */
import type { IncomingMessage, RequestListener, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type MetricFamily, renderPrometheus, summarySamples } from "#core/metrics.js";
import type { ReconcileResult } from "#core/reconcile.js";
import type { SchedulerPass } from "#core/scheduler.js";

/** Tick durations kept for the tick-time summary. */
const TICK_WINDOW = 200;

/** What the control loop has done since the process started; the control loop reports, scrapes read. */
export class ControlPlaneMetrics {
  ticks = 0;
  tickErrors = 0;
  /** When the last tick ended (epoch ms); readiness needs a recent one. */
  lastTickAt: number | undefined;
  private readonly tickMs: number[] = [];
  private readonly actions = { launched: 0, terminated: 0, requeued: 0, reaped: 0 };
  private readonly firings = { fired: 0, missed: 0 };
  /** Each active sweep's preemptions as its last reconcile counted them. */
  private readonly preemptions = new Map<string, number>();

  reconciled(r: ReconcileResult): void {
    this.actions.launched += r.launched.length;
    this.actions.terminated += r.terminated.length;
    this.actions.requeued += r.requeued.length;
    this.preemptions.set(r.sweepId, r.preemptions);
  }

  reaped(instances: readonly string[]): void {
    this.actions.reaped += instances.length;
  }

  scheduled(pass: SchedulerPass): void {
    this.firings.fired += pass.fired.length;
    this.firings.missed += pass.missed.reduce((n, m) => n + m.count, 0);
  }

  tick(ms: number, at: number, failed: boolean): void {
    this.ticks++;
    if (failed) this.tickErrors++;
    this.lastTickAt = at;
    this.tickMs.push(ms);
    if (this.tickMs.length > TICK_WINDOW) this.tickMs.shift();
  }

  /** The families for a scrape; `open` is each active sweep's pending and running tasks, read now. */
  families(
    open: ReadonlyMap<string, { pending: number; running: number }>,
    armedSchedules: number,
  ): MetricFamily[] {
    // Sweeps that are no longer active drop out, so their series end with them.
    for (const sweepId of this.preemptions.keys()) if (!open.has(sweepId)) this.preemptions.delete(sweepId);
    return [
      {
        name: "spawn_active_sweeps",
        help: "Sweeps the control plane still works on.",
        type: "gauge",
        samples: [{ value: open.size }],
      },
      {
        name: "spawn_open_tasks",
        help: "Tasks of an active sweep not yet finished, by state (read from the sparse indexes at scrape time).",
        type: "gauge",
        samples: [...open].flatMap(([sweep, c]) => [
          { labels: { sweep, state: "pending" }, value: c.pending },
          { labels: { sweep, state: "running" }, value: c.running },
        ]),
      },
      {
        name: "spawn_preemptions_total",
        help: "Instances of a sweep lost to spot interruptions.",
        type: "counter",
        samples: [...this.preemptions].map(([sweep, value]) => ({ labels: { sweep }, value })),
      },
      {
        name: "spawn_armed_schedules",
        help: "Enabled schedules with a next firing (they keep the control plane up).",
        type: "gauge",
        samples: [{ value: armedSchedules }],
      },
      {
        name: "spawn_control_loop_ticks_total",
        help: "Control-loop passes (reconcile every active sweep, reap, run due schedules), and those that failed.",
        type: "counter",
        samples: [{ value: this.ticks }, { labels: { outcome: "error" }, value: this.tickErrors }],
      },
      {
        name: "spawn_control_loop_tick_seconds",
        help: `Duration of the last ${TICK_WINDOW} control-loop passes.`,
        type: "summary",
        samples: summarySamples({}, this.tickMs),
      },
      {
        name: "spawn_reconcile_actions_total",
        help: "What reconcile and the reaper did: instances launched, terminated and reaped, tasks re-queued.",
        type: "counter",
        samples: Object.entries(this.actions).map(([action, value]) => ({ labels: { action }, value })),
      },
      {
        name: "spawn_schedule_firings_total",
        help: "Schedule firings run, and those missed while the control plane was down.",
        type: "counter",
        samples: Object.entries(this.firings).map(([outcome, value]) => ({ labels: { outcome }, value })),
      },
    ];
  }
}

export interface ControlPlaneHttp {
  metrics: ControlPlaneMetrics;
  /** The scrape's reads: active sweeps' open tasks and the armed schedules' count. */
  read(): Promise<{ open: Map<string, { pending: number; running: number }>; armedSchedules: number }>;
  /** Null when ready, else why not. */
  notReady(): Promise<string | null>;
}

function answer(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, {
    "content-type": type,
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-store",
    "x-content-type-options": "nosniff",
  });
  res.end(body);
}

const json = (res: ServerResponse, status: number, body: unknown) =>
  answer(res, status, "application/json; charset=utf-8", JSON.stringify(body));

/**
 * Puts the control plane's routes and browser guards in front of dynalite's request handler on
 * `server` (call before it listens). `http()` is undefined while the control plane starts: it
 * is live then, not ready, and has no metrics yet.
 */
export function serveControlPlaneHttp(server: Server, http: () => ControlPlaneHttp | undefined): void {
  const dynamo = server.listeners("request") as RequestListener[];
  server.removeAllListeners("request");
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    const { port } = server.address() as AddressInfo;
    const allowed = new Set([`127.0.0.1:${port}`, `localhost:${port}`]);
    if (req.headers.origin !== undefined)
      return json(res, 403, { error: "the control plane does not answer browsers" });
    if (!allowed.has(req.headers.host ?? ""))
      return json(res, 421, { error: `unexpected Host header ${JSON.stringify(req.headers.host ?? "")}` });
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/health/live") return json(res, 200, { status: "ok" });
    const routes = http();
    if (req.method === "GET" && (path === "/health/ready" || path === "/metrics") && !routes)
      return json(res, 503, { status: "starting" });
    if (req.method === "GET" && path === "/health/ready" && routes) {
      void routes.notReady().then((why) => json(res, why ? 503 : 200, { status: why ?? "ok" }));
      return;
    }
    if (req.method === "GET" && path === "/metrics" && routes) {
      void routes
        .read()
        .then(({ open, armedSchedules }) =>
          answer(
            res,
            200,
            "text/plain; version=0.0.4; charset=utf-8",
            renderPrometheus(routes.metrics.families(open, armedSchedules)),
          ),
        )
        .catch((error: Error) => json(res, 503, { error: `state store not answering: ${error.message}` }));
      return;
    }
    for (const listener of dynamo) listener.call(server, req, res);
  });
}
