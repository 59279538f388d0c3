/**
 * The embedded control plane's own HTTP routes, over real HTTP: the real `runLocalServer`
 * (dynalite on disk, the control loop on its timer) in a private SPAWN_HOME serves `/metrics`
 * and `/health/live|ready` beside the DynamoDB API on its one loopback port, and refuses
 * browsers (an Origin header) and foreign Host headers before they reach dynalite.
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync } from "node:fs";
import { rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { DynamoStateStore } from "../providers/dynamodb/store.js";
import { localDynamoClient, TABLE_PREFIX } from "../providers/local/client.js";
import { localPaths } from "../providers/local/paths.js";
import { runLocalServer } from "../providers/local/server.js";
import { createLogger } from "../providers/log.js";

let home: string;
let endpoint: string;
let stop: () => Promise<void>;
let store: DynamoStateStore;
let client: ReturnType<typeof localDynamoClient>;

beforeAll(async () => {
  home = mkdtempSync(join(tmpdir(), "spawn-cp-http-"));
  // Agents that exit at once: instances are launched (and counted) but never claim anything.
  ({ endpoint, stop } = await runLocalServer({
    paths: localPaths({ SPAWN_HOME: home }),
    agentCommand: [process.execPath, "-e", "setTimeout(() => {}, 1000)"],
    log: createLogger({}, () => {}),
    tickMs: 100,
  }));
  client = localDynamoClient(endpoint);
  store = new DynamoStateStore(client, TABLE_PREFIX);
});
afterAll(async () => {
  client?.destroy();
  await stop?.();
  await rm(home, { recursive: true, force: true });
});

/** A raw request, so the Host and Origin headers are exactly what the test says. */
function raw(
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; text: string; type: string }> {
  const url = new URL(endpoint);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: url.hostname, port: url.port, method, path, headers: { host: url.host, ...headers } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () =>
          resolve({ status: res.statusCode ?? 0, text, type: String(res.headers["content-type"] ?? "") }),
        );
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

/** `name{labels} value` → value, for one exact series. */
function sample(text: string, series: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 15_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("health", () => {
  it("is live, and ready once the store answers and the control loop has run", async () => {
    expect(await raw("GET", "/health/live")).toMatchObject({ status: 200, text: '{"status":"ok"}' });
    const ready = await eventually("ready", async () => {
      const r = await raw("GET", "/health/ready");
      return r.status === 200 ? r : undefined;
    });
    expect(JSON.parse(ready.text)).toEqual({ status: "ok" });
  });
});

describe("/metrics", () => {
  it("counts an active sweep's open tasks and the instances reconcile launched for it", async () => {
    // Given: a sweep of three tasks on the control plane
    const spec = parseSpec({
      name: "cp",
      command: "echo {{i}}",
      params: { grid: { i: [1, 2, 3] } },
      max_instances: 1,
    });
    const sweepId = `cp-${randomUUID().slice(0, 8)}`;
    await createSweep(
      { store, clock: systemClock },
      { sweepId, spec, tasks: expandParams(spec.params, spec.repeat), owner: "ana", provider: "local" },
    );

    // When: scraped after the control loop saw it
    const text = await eventually("a launch", async () => {
      const r = await raw("GET", "/metrics");
      expect(r.status).toBe(200);
      return (sample(r.text, 'spawn_reconcile_actions_total{action="launched"}') ?? 0) >= 1
        ? r.text
        : undefined;
    });

    // Then: Prometheus text with the sweep's open tasks and the loop's own numbers, all spawn_*
    expect(sample(text, "spawn_active_sweeps")).toBe(1);
    expect(sample(text, `spawn_open_tasks{sweep="${sweepId}",state="pending"}`)).toBe(3);
    expect(sample(text, `spawn_open_tasks{sweep="${sweepId}",state="running"}`)).toBe(0);
    expect(sample(text, `spawn_preemptions_total{sweep="${sweepId}"}`)).toBe(0);
    expect(sample(text, "spawn_control_loop_ticks_total")).toBeGreaterThan(0);
    expect(sample(text, 'spawn_control_loop_ticks_total{outcome="error"}')).toBe(0);
    expect(sample(text, "spawn_control_loop_tick_seconds_count")).toBeGreaterThan(0);
    expect(sample(text, 'spawn_schedule_firings_total{outcome="missed"}')).toBe(0);
    expect(text).toMatch(/^# TYPE spawn_control_loop_tick_seconds summary$/m);
    for (const line of text.trim().split("\n"))
      expect(line).toMatch(
        /^(# (HELP|TYPE) spawn_\w+ .+|spawn_\w+(\{[^}]*\})? -?[\d.e+-]+|spawn_\w+(\{[^}]*\})? NaN)$/,
      );
  });

  it("serves text/plain in the 0.0.4 exposition format", async () => {
    const r = await raw("GET", "/metrics");
    expect(r.type).toBe("text/plain; version=0.0.4; charset=utf-8");
  });
});

describe("browsers", () => {
  it("refuses any request with an Origin header, so a web page cannot use dynalite", async () => {
    // A CORS preflight and a cross-site write to the DynamoDB API
    const preflight = await raw("OPTIONS", "/", {
      origin: "https://evil.example",
      "access-control-request-method": "POST",
    });
    expect(preflight.status).toBe(403);
    const write = await raw(
      "POST",
      "/",
      {
        origin: "https://evil.example",
        "content-type": "application/x-amz-json-1.0",
        "x-amz-target": "DynamoDB_20120810.ListTables",
      },
      "{}",
    );
    expect(write.status).toBe(403);
    expect(write.text).not.toContain("TableNames");
    // ...while the SDK (no Origin) goes on working
    expect(await store.listSweeps({ limit: 1 })).toHaveLength(1);
  });

  it("refuses a Host that is not its loopback port (DNS rebinding)", async () => {
    const r = await raw("GET", "/metrics", { host: "rebound.example:80" });
    expect(r.status).toBe(421);
    expect(r.text).not.toContain("spawn_");
  });
});
