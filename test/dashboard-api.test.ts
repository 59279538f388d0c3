/**
 * The dashboard API: the real server on loopback over the real store on in-process dynalite
 * and a file object store. Authentication, escaping, SSE deltas, logs, metrics and the
 * compact encoding of a 10,000-task sweep.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningDashboard, startDashboard } from "../cli/services/dashboard/server.js";
import {
  CancelResult,
  DeltaEvent,
  LogChunk,
  MetricCurves,
  metricsFileKey,
  OutputList,
  Results,
  SnapshotEvent,
  SweepDetail,
  SweepList,
  TaskGrid,
} from "../core/api.js";
import type { SweepRecord, TaskRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import type { DynamoStateStore } from "../providers/dynamodb/store.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { createLogger } from "../providers/log.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const useStore = useDynaliteStore("dash");
let store: DynamoStateStore;
let objects: FileObjectStore;
let objectsDir: string;
let dash: RunningDashboard;
const logLines: string[] = [];

beforeAll(async () => {
  ({ store } = useStore());
  objectsDir = await mkdtemp(join(tmpdir(), "spawn-dash-objects-"));
  objects = new FileObjectStore(objectsDir);
  dash = await startDashboard(
    { store, objects, clock: systemClock, log: createLogger({}, (l) => logLines.push(l)) },
    { port: 0, poller: { tickMs: 100, idleTickMs: 200 } },
  );
});
afterAll(async () => {
  await dash?.close();
  await rm(objectsDir, { recursive: true, force: true });
});

async function launch(params: Record<string, unknown>, owner = "alice"): Promise<SweepRecord> {
  const spec = parseSpec({ name: "dash-test", command: "python train.py --lr {{lr}}", params });
  return createSweep(
    { store, clock: systemClock },
    {
      sweepId: `dash-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner,
      provider: "local",
    },
  );
}

/** Moves a task as an agent would: claim (running), then finish. */
async function claim(sweep: SweepRecord, index: number): Promise<TaskRecord> {
  const now = Date.now();
  return store.updateTask(
    sweep.sweepId,
    index,
    sweep.shardCount,
    { status: "pending" },
    {
      status: "running",
      attempt: 1,
      leaseOwner: "i-test",
      leaseExpiresAt: now + 60_000,
      startedAt: now,
      updatedAt: now,
    },
  );
}
async function finish(sweep: SweepRecord, index: number, status: "succeeded" | "failed", from = "running") {
  return store.updateTask(
    sweep.sweepId,
    index,
    sweep.shardCount,
    { status: from as "running" | "pending" },
    {
      status,
      attempt: 1,
      leaseOwner: null,
      leaseExpiresAt: null,
      finishedAt: Date.now(),
      exitCode: status === "succeeded" ? 0 : 1,
      metrics: { loss: index / 10 },
      updatedAt: Date.now(),
    },
  );
}

const auth = () => ({ "x-spawn-token": dash.token });
const api = (path: string, init: RequestInit = {}) => fetch(`${dash.url}${path}`, init);
async function getJson<T>(path: string, schema: { parse(v: unknown): T }): Promise<T> {
  const r = await api(path, { headers: auth() });
  expect(r.status, await r.clone().text()).toBe(200);
  return schema.parse(await r.json());
}

/** A raw request, for headers fetch will not let us set (Host). */
function raw(path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  const url = new URL(dash.url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers }, (res) => {
      let body = "";
      res.on("data", (d) => {
        body += d;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Opens the SSE stream and collects parsed events. */
function openEvents(sweepId: string) {
  const events: Array<{ event: string; data: unknown }> = [];
  const controller = new AbortController();
  const done = (async () => {
    const r = await api(`/api/sweeps/${sweepId}/events`, { headers: auth(), signal: controller.signal });
    expect(r.headers.get("content-type")).toContain("text/event-stream");
    const reader = (r.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return;
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf("\n\n");
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.+)$/m.exec(block)?.[1];
        const data = /^data: (.+)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
        cut = buffer.indexOf("\n\n");
      }
    }
  })().catch((e) => {
    if (!controller.signal.aborted) throw e;
  });
  return { events, close: () => controller.abort(), done };
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe("authentication", () => {
  it("rejects API requests without the token, or with a wrong one", async () => {
    // Given: a sweep
    const sweep = await launch({ grid: { lr: [1, 2] } });

    // When / Then: no token, a wrong token, a wrong bearer
    const attempts: Record<string, string>[] = [
      {},
      { "x-spawn-token": "nope" },
      { authorization: "Bearer nope" },
    ];
    for (const headers of attempts) {
      const r = await api(`/api/sweeps/${sweep.sweepId}`, { headers });
      expect(r.status).toBe(401);
      expect((await r.json()).error).toMatch(/authentication required/);
    }
    expect((await api("/metrics")).status).toBe(401);
    expect((await api(`/api/sweeps/${sweep.sweepId}/cancel`, { method: "POST" })).status).toBe(401);

    // And: nothing was cancelled
    expect((await store.getSweep(sweep.sweepId))?.status).toBe("running");
  });

  it("turns the login link into a session cookie that serves reads but not actions", async () => {
    // When: the printed link is opened
    const login = await api(`/?token=${dash.token}`, { redirect: "manual" });
    expect(login.status).toBe(303);
    const cookie = login.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const session = cookie.split(";")[0] as string;

    // Then: the cookie reads
    const sweep = await launch({ grid: { lr: [1] } });
    expect((await api(`/api/sweeps/${sweep.sweepId}`, { headers: { cookie: session } })).status).toBe(200);
    // ...but an action needs the header too (what a cross-site form could not send)
    const post = await api(`/api/sweeps/${sweep.sweepId}/cancel`, {
      method: "POST",
      headers: { cookie: session },
    });
    expect(post.status).toBe(401);
    expect((await post.json()).error).toMatch(/x-spawn-token/);
    expect((await store.getSweep(sweep.sweepId))?.status).toBe("running");

    // And: without any of it the page itself is a login hint, not the app
    const page = await api("/");
    expect(page.status).toBe(401);
    expect(await page.text()).toMatch(/session link/);
  });

  it("refuses foreign Host headers (DNS rebinding) and cross-origin actions", async () => {
    const sweep = await launch({ grid: { lr: [1] } });
    const rebound = await raw(`/api/sweeps/${sweep.sweepId}`, { host: "evil.example:80", ...auth() });
    expect(rebound.status).toBe(421);

    const r = await api(`/api/sweeps/${sweep.sweepId}/cancel`, {
      method: "POST",
      headers: { ...auth(), origin: "https://evil.example" },
    });
    expect(r.status).toBe(403);
    expect((await store.getSweep(sweep.sweepId))?.status).toBe("running");
  });

  it("serves health without a token", async () => {
    expect(await (await api("/health/live")).json()).toEqual({ status: "ok" });
    const ready = await api("/health/ready");
    expect(ready.status).toBe(200);
  });
});

describe("reads", () => {
  it("lists sweeps with progress and owner, newest first, filtered by owner", async () => {
    const a = await launch({ grid: { lr: [1, 2, 3] } }, "list-owner");
    await claim(a, 0);
    await finish(a, 0, "succeeded");
    const { sweeps } = await getJson("/api/sweeps?owner=list-owner", SweepList);
    expect(sweeps.map((s) => s.sweepId)).toEqual([a.sweepId]);
    expect(sweeps[0]).toMatchObject({
      owner: "list-owner",
      taskCount: 3,
      open: 2,
      status: "running",
      costUsd: null,
    });
  });

  it("answers unknown sweeps and bad parameters with the CLI's exit codes", async () => {
    const missing = await api("/api/sweeps/nope-123", { headers: auth() });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ exitCode: 3 });
    const sweep = await launch({ grid: { lr: [1] } });
    const bad = await api(`/api/sweeps/${sweep.sweepId}/logs/0?offset=-1`, { headers: auth() });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatch(/offset must be a non-negative integer/);
    const outOfRange = await api(`/api/sweeps/${sweep.sweepId}/logs/7`, { headers: auth() });
    expect(outOfRange.status).toBe(404);
  });

  it("returns params and output holding HTML as data, never as markup", async () => {
    // Given: a task whose params and log contain HTML and script
    const evil = `<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>`;
    const sweep = await launch({ list: [{ lr: evil }] });
    await objects.putBytes(`logs/${sweep.sweepId}/0/1.log`, `${evil}\n`);
    await objects.putBytes(`outputs/${sweep.sweepId}/0/report.html`, evil);

    // When / Then: JSON, with the string intact and headers that stop sniffing and inline script
    const r = await api(`/api/sweeps/${sweep.sweepId}/results`, { headers: auth() });
    expect(r.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(r.headers.get("x-content-type-options")).toBe("nosniff");
    expect(r.headers.get("content-security-policy")).toMatch(/script-src 'self'/);
    expect(Results.parse(await r.json()).rows[0]?.params.lr).toBe(evil);
    const log = await getJson(`/api/sweeps/${sweep.sweepId}/logs/0`, LogChunk);
    expect(log.text).toBe(`${evil}\n`);
    // An HTML output downloads; it is never rendered in the dashboard's origin
    const file = await api(`/api/sweeps/${sweep.sweepId}/outputs/0/report.html`, { headers: auth() });
    expect(file.headers.get("content-type")).toBe("application/octet-stream");
    expect(file.headers.get("content-disposition")).toBe('attachment; filename="report.html"');
    expect(await file.text()).toBe(evil);
    expect((await getJson(`/api/sweeps/${sweep.sweepId}/outputs`, OutputList)).files).toEqual([
      { task: 0, path: "report.html" },
    ]);
    const traversal = await api(`/api/sweeps/${sweep.sweepId}/outputs/0/..%2F..%2Fsecret`, {
      headers: auth(),
    });
    expect(traversal.status).toBe(400);
  });

  it("tails a live log from an offset, chunk by chunk, without cutting a character", async () => {
    // Given: a running attempt whose log is shipped in chunks (the agent's live layout)
    const sweep = await launch({ grid: { lr: [1] } });
    await claim(sweep, 0);
    const prefix = `logs/${sweep.sweepId}/0/1/`;
    const bytes = Buffer.from("héllo\nwörld\n");
    await objects.putBytes(`${prefix}00000000.log`, bytes.subarray(0, 2)); // cuts "é" in half
    await objects.putBytes(`${prefix}00000001.log`, bytes.subarray(2, 9));

    // When: read from the start, then from nextOffset after more output arrives
    const first = await getJson(`/api/sweeps/${sweep.sweepId}/logs/0`, LogChunk);
    await objects.putBytes(`${prefix}00000002.log`, bytes.subarray(9));
    const second = await getJson(
      `/api/sweeps/${sweep.sweepId}/logs/0?attempt=1&offset=${first.nextOffset}`,
      LogChunk,
    );

    // Then: the two pieces make the log, and it is still live while the task runs
    expect(first).toMatchObject({ attempt: 1, attempts: [1], offset: 0, complete: false });
    expect(first.text + second.text).toBe("héllo\nwörld\n");
    expect(second.complete).toBe(false);
    await finish(sweep, 0, "failed");
    const last = await getJson(`/api/sweeps/${sweep.sweepId}/logs/0?offset=${second.nextOffset}`, LogChunk);
    expect(last).toMatchObject({ text: "", complete: true });
  });

  it("draws metric curves from an attempt's metrics file", async () => {
    const sweep = await launch({ grid: { lr: [1] } });
    await claim(sweep, 0);
    await objects.putBytes(
      metricsFileKey(sweep.sweepId, 0, 1),
      '{"step":1,"loss":0.9}\n{"step":2,"loss":0.5,"note":"x"}\nnot json\n{"accuracy":0.8}\n',
    );
    const c = await getJson(`/api/sweeps/${sweep.sweepId}/metrics/0`, MetricCurves);
    expect(c).toMatchObject({ attempt: 1, available: true });
    expect(c.series).toEqual({
      loss: [
        [1, 0.9],
        [2, 0.5],
      ],
      accuracy: [[2, 0.8]],
    });
    const none = await getJson(`/api/sweeps/${sweep.sweepId}/metrics/0?attempt=2`, MetricCurves);
    expect(none).toMatchObject({ available: false, series: {} });
  });

  it("encodes a 10,000-task sweep's states in about 10 KB", async () => {
    // Given: 10,000 tasks, two of them finished
    const sweep = await launch({ grid: { i: { range: [0, 10_000] } } });
    await claim(sweep, 3);
    await finish(sweep, 3, "succeeded");
    await claim(sweep, 9999);
    await finish(sweep, 9999, "failed");

    // When
    const r = await api(`/api/sweeps/${sweep.sweepId}/tasks`, { headers: auth() });
    const text = await r.text();
    const grid = TaskGrid.parse(JSON.parse(text));

    // Then: one character per task
    expect(grid.states).toHaveLength(10_000);
    expect(grid.states[3]).toBe("s");
    expect(grid.states[9999]).toBe("f");
    expect(grid.states.replace(/p/g, "")).toBe("sf");
    expect(text.length).toBeLessThan(10_200);
    const detail = await getJson(`/api/sweeps/${sweep.sweepId}`, SweepDetail);
    expect(detail.counts).toEqual({ pending: 9998, running: 0, succeeded: 1, failed: 1, cancelled: 0 });
    // Its poller stops once the sweep is gone, instead of polling 10,000 tasks for the other tests.
    await store.deleteSweep(sweep.sweepId, sweep.shardCount);
  }, 180_000);
});

describe("live updates", () => {
  it("streams a snapshot, then deltas as tasks change state, including ones that finish between polls", async () => {
    // Given: a 4-task sweep and an open stream
    const sweep = await launch({ grid: { lr: [1, 2, 3, 4] } });
    const stream = openEvents(sweep.sweepId);
    const snapshot = SnapshotEvent.parse(
      (await waitFor("snapshot", () => stream.events.find((e) => e.event === "snapshot"))).data,
    );
    expect(snapshot.states).toBe("pppp");

    // When: task 0 runs; task 1 is claimed and finished within one poll; task 2 fails
    await claim(sweep, 0);
    await waitFor("task 0 running", () =>
      deltas().some((d) => d.changes.some(([i, s]) => i === 0 && s === "r")),
    );
    await claim(sweep, 1);
    await finish(sweep, 1, "succeeded");
    await claim(sweep, 2);
    await finish(sweep, 2, "failed");
    await finish(sweep, 0, "succeeded");

    // Then: every change arrives, in sequence, with nothing skipped
    const states = () => {
      const s = snapshot.states.split("");
      for (const d of deltas()) for (const [i, code] of d.changes) s[i] = code;
      return s.join("");
    };
    await waitFor("all changes", () => states() === "ssfp");
    const seqs = deltas().map((d) => d.seq);
    expect(seqs).toEqual(seqs.map((_, k) => snapshot.seq + k + 1));
    const last = deltas()
      .filter((d) => d.sweep)
      .at(-1);
    expect(last?.sweep?.counts).toMatchObject({ succeeded: 2, failed: 1, pending: 1 });
    stream.close();

    function deltas() {
      return stream.events.filter((e) => e.event === "delta").map((e) => DeltaEvent.parse(e.data));
    }
  });

  it("shows a cancel from the API to every client, and the store agrees", async () => {
    // Given: two clients watching one sweep (one poller serves both)
    const sweep = await launch({ grid: { lr: [1, 2, 3] } });
    const a = openEvents(sweep.sweepId);
    const b = openEvents(sweep.sweepId);
    await waitFor("snapshots", () => a.events.length > 0 && b.events.length > 0 && true);

    // When: cancelled through the API (as the UI's button does)
    const r = await api(`/api/sweeps/${sweep.sweepId}/cancel`, { method: "POST", headers: auth() });
    expect(CancelResult.parse(await r.json())).toEqual({
      sweepId: sweep.sweepId,
      status: "cancelled",
      changed: true,
    });

    // Then: both streams see the sweep cancelled, and so does the store
    for (const s of [a, b])
      await waitFor("cancelled delta", () =>
        s.events.some((e) => e.event === "delta" && DeltaEvent.parse(e.data).sweep?.status === "cancelled"),
      );
    expect((await store.getSweep(sweep.sweepId))?.status).toBe("cancelled");
    a.close();
    b.close();

    // And: retrying a cancelled sweep is refused with the reason
    const retry = await api(`/api/sweeps/${sweep.sweepId}/retry?failed=1`, {
      method: "POST",
      headers: auth(),
    });
    expect(retry.status).toBe(409);
    expect((await retry.json()).error).toMatch(/never restarted/);
  });
});

describe("/metrics", () => {
  it("serves Prometheus text for active sweeps, with a bearer token", async () => {
    const sweep = await launch({ grid: { lr: [1, 2] } });
    await claim(sweep, 0);
    await finish(sweep, 0, "succeeded");
    const r = await api("/metrics", { headers: { authorization: `Bearer ${dash.token}` } });
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    const text = await r.text();
    expect(text).toContain("# TYPE spawn_tasks gauge");
    expect(text).toContain(`spawn_tasks{sweep="${sweep.sweepId}",state="succeeded"} 1`);
    expect(text).toContain(`spawn_tasks{sweep="${sweep.sweepId}",state="pending"} 1`);
    expect(text).toContain(`spawn_task_claim_latency_seconds_count{sweep="${sweep.sweepId}"} 1`);
    expect(text).toMatch(/^spawn_active_sweeps \d+$/m);
    for (const line of text.trim().split("\n"))
      expect(line).toMatch(/^(# (HELP|TYPE) spawn_\w+ .+|spawn_\w+(\{[^}]*\})? \S+)$/);
  });

  it("logs each API request with its traceparent", async () => {
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    await api("/api/sweeps", { headers: { ...auth(), traceparent } });
    const line = logLines.map((l) => JSON.parse(l)).find((l) => l.traceparent === traceparent);
    expect(line).toMatchObject({ msg: "request", method: "GET", path: "/api/sweeps", status: 200 });
  });
});
