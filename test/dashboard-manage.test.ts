/**
 * The dashboard's schedules and alerts API: the real server on loopback, the CLI's services
 * over the real stores on in-process dynalite, a file object store and the file secret box.
 * Forms are validated by the CLI's rules (same messages), errors name the field, webhook URLs
 * never come back in full.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CliContext } from "../cli/context.js";
import { maskUrl } from "../cli/services/dashboard/manage.js";
import { type RunningDashboard, startDashboard } from "../cli/services/dashboard/server.js";
import { scheduleJson } from "../cli/services/schedule.js";
import { AlertList, AlertView, ApiError, Deleted, ScheduleList, ScheduleView } from "../core/api.js";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseTrigger, ScheduleError } from "../core/schedules.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { DynamoAlertStore } from "../providers/dynamodb/alert-store.js";
import { DynamoScheduleStore } from "../providers/dynamodb/schedule-store.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { localPaths } from "../providers/local/paths.js";
import { createLogger } from "../providers/log.js";
import { FileSecretBox } from "../providers/notify/file-secrets.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const db = useDynaliteStore("dashm");
const owner = process.env.SPAWN_OWNER;
let home: string;
let specPath: string;
let dash: RunningDashboard;
let ctx: CliContext;
const SLACK = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstWXYZ";

beforeAll(async () => {
  process.env.SPAWN_OWNER = "ana";
  home = mkdtempSync(join(tmpdir(), "spawn-dashm-"));
  const specDir = join(home, "project");
  mkdirSync(specDir);
  specPath = join(specDir, "nightly.yaml");
  writeFileSync(specPath, "name: nightly\ncommand: echo {{i}}\nparams:\n  grid: {i: [1, 2]}\n");
  const { engine, store } = db();
  const prefix = store.tables.sweeps.replace(/sweeps$/, "");
  ctx = {
    provider: "local",
    store,
    schedules: new DynamoScheduleStore(engine.client, prefix),
    alerts: { store: new DynamoAlertStore(engine.client, prefix), secrets: new FileSecretBox(home) },
    objects: new FileObjectStore(join(home, "objects")),
    clock: systemClock,
    paths: localPaths({ SPAWN_HOME: home }),
    close() {},
  };
  dash = await startDashboard(
    {
      store,
      objects: ctx.objects,
      clock: systemClock,
      log: createLogger({}, () => {}),
      context: async () => ctx,
    },
    { port: 0 },
  );
});
afterAll(async () => {
  await dash?.close();
  await rm(home, { recursive: true, force: true });
  if (owner === undefined) delete process.env.SPAWN_OWNER;
  else process.env.SPAWN_OWNER = owner;
});

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const r = await fetch(`${dash.url}${path}`, {
    method,
    headers: {
      "x-spawn-token": dash.token,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: r.status, body: (await r.json()) as unknown };
}

/** What the CLI says for the same bad input: the API must say the same. */
function cliMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ScheduleError);
    return (error as Error).message;
  }
  throw new Error("expected the CLI's validation to reject this");
}

describe("schedules", () => {
  it("creates, lists, edits, pauses, resumes and deletes a schedule, as spawn schedule does", async () => {
    // When: a schedule is created from a form
    const created = await call("POST", "/api/schedules", {
      spec: specPath,
      kind: "cron",
      expression: "0 2 * * *",
      timezone: "Europe/Paris",
      maxExecutions: "3",
    });

    // Then: it is created as `spawn schedule create` would, and listed as `list --json` prints it
    expect(created.status).toBe(201);
    const view = ScheduleView.parse(created.body);
    expect(view).toMatchObject({
      name: "nightly",
      state: "enabled",
      trigger: { kind: "cron", expression: "0 2 * * *", timezone: "Europe/Paris" },
      maxExecutions: 3,
      executions: 0,
    });
    const stored = await ctx.schedules.getSchedule(view.scheduleId);
    expect(stored?.owner).toBe("ana");
    expect(view).toEqual(scheduleJson(stored!));
    const list = ScheduleList.parse((await call("GET", "/api/schedules")).body);
    expect(list.schedules.map((s) => s.scheduleId)).toContain(view.scheduleId);

    // When: edited to a rate, without a limit
    const edited = await call("PUT", `/api/schedules/${view.scheduleId}`, {
      kind: "rate",
      expression: "6h",
      timezone: "UTC",
      maxExecutions: null,
      name: "every six hours",
    });
    expect(edited.status).toBe(200);
    const after = ScheduleView.parse(edited.body);
    expect(after).toMatchObject({
      name: "every six hours",
      trigger: { kind: "rate", expression: "6h" },
      maxExecutions: null,
    });
    const next = Date.parse(after.nextRunAt ?? "");
    expect(next - Date.parse(after.createdAt ?? "")).toBe(6 * 3_600_000);

    // And: paused, resumed
    const paused = ScheduleView.parse((await call("POST", `/api/schedules/${view.scheduleId}/pause`)).body);
    expect(paused.state).toBe("paused");
    expect((await ctx.schedules.getSchedule(view.scheduleId))?.state).toBe("paused");
    const resumed = ScheduleView.parse((await call("POST", `/api/schedules/${view.scheduleId}/resume`)).body);
    expect(resumed.state).toBe("enabled");

    // And: deleted; it is gone, and a second delete is not found (exit 3)
    expect(Deleted.parse((await call("DELETE", `/api/schedules/${view.scheduleId}`)).body)).toEqual({
      deleted: view.scheduleId,
    });
    expect(await ctx.schedules.getSchedule(view.scheduleId)).toBeUndefined();
    const again = await call("DELETE", `/api/schedules/${view.scheduleId}`);
    expect(again.status).toBe(404);
    expect(ApiError.parse(again.body).exitCode).toBe(3);
  });

  it("rejects a bad cron with the CLI's message, names the field, and creates nothing", async () => {
    const before = ScheduleList.parse((await call("GET", "/api/schedules")).body).schedules.length;

    const r = await call("POST", "/api/schedules", {
      spec: specPath,
      kind: "cron",
      expression: "61 * * * *",
    });

    expect(r.status).toBe(400);
    const error = ApiError.parse(r.body);
    expect(error.field).toBe("expression");
    expect(error.exitCode).toBe(2);
    expect(error.error).toBe(cliMessage(() => parseTrigger({ cron: "61 * * * *" })));
    expect(ScheduleList.parse((await call("GET", "/api/schedules")).body).schedules).toHaveLength(before);
  });

  it("names the field of each kind of bad input", async () => {
    const bad = async (form: Record<string, unknown>) =>
      ApiError.parse((await call("POST", "/api/schedules", form)).body);
    const base = { spec: specPath, kind: "cron", expression: "0 2 * * *" };

    expect((await bad({ ...base, timezone: "Mars/Olympus" })).field).toBe("timezone");
    expect((await bad({ ...base, kind: "rate", expression: "30s" })).field).toBe("expression");
    expect((await bad({ ...base, kind: "at", expression: "2001-01-01T00:00Z" })).error).toMatch(
      /in the past/,
    );
    const limit = await bad({ ...base, maxExecutions: "0" });
    expect(limit).toMatchObject({
      field: "maxExecutions",
      error: '--max-executions must be an integer >= 1, got "0"',
    });
    expect((await bad({ ...base, endAfter: "soon" })).field).toBe("endAfter");
    const missing = await bad({ ...base, spec: join(home, "nope.yaml") });
    expect(missing.field).toBe("spec");
    expect(missing.error).toMatch(/not found/);
    // A spec the schema rejects is the spec field's too, with the CLI's path-named message
    writeFileSync(join(home, "project", "bad.yaml"), "name: bad\ncommand: echo\nmax_instances: 0\n");
    const invalid = await bad({ ...base, spec: join(home, "project", "bad.yaml") });
    expect(invalid.field).toBe("spec");
    expect(invalid.error).toMatch(/max_instances/);
    // A form that is not the form's shape names the missing field
    expect((await bad({ spec: specPath, kind: "cron" })).field).toBe("expression");
  });

  it("needs the token header for every change", async () => {
    const r = await fetch(`${dash.url}/api/schedules`, {
      method: "POST",
      body: JSON.stringify({ spec: specPath, kind: "rate", expression: "1h" }),
    });
    expect(r.status).toBe(401);
    const foreign = await call(
      "POST",
      "/api/schedules",
      { spec: specPath, kind: "rate", expression: "1h" },
      {
        origin: "https://evil.example",
      },
    );
    expect(foreign.status).toBe(403);
    expect(ScheduleList.parse((await call("GET", "/api/schedules")).body).schedules).toEqual([]);
  });
});

async function sweep(): Promise<string> {
  const spec = parseSpec({ name: "lr", command: "echo {{i}}", params: { grid: { i: [1] } } });
  const created = await createSweep(
    { store: db().store, clock: systemClock },
    {
      sweepId: `lr-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "ana",
      provider: "local",
    },
  );
  return created.sweepId;
}

describe("alerts", () => {
  it("masks webhook URLs in every answer, and keeps them sealed through an edit", async () => {
    // Given: an alert with a Slack hook and a signed webhook
    const sweepId = await sweep();
    const created = await call("POST", "/api/alerts", {
      target: sweepId,
      on: "failure,cost>20",
      slack: SLACK,
      webhook: "http://127.0.0.1:9/hook/with-a-long-secret-path",
    });
    expect(created.status).toBe(201);
    const view = AlertView.parse(created.body);

    // Then: the URLs show only as masks; the generated signing secret is shown this once
    expect(JSON.stringify(created.body)).not.toContain("abcdefghijklmnopqrst");
    expect(view.channels).toEqual([
      { kind: "slack", masked: "https://hooks.slack.com/…WXYZ" },
      { kind: "webhook", masked: "http://127.0.0.1:9/…path" },
    ]);
    expect(view.webhookSecret).toMatch(/^whsec_/);
    expect(view.on).toEqual(["failure", "cost>20"]);
    const listed = await call("GET", "/api/alerts");
    expect(JSON.stringify(listed.body)).not.toContain("abcdefghijklmnopqrst");
    expect(JSON.stringify(listed.body)).not.toContain("whsec_");
    expect(AlertList.parse(listed.body).alerts.map((a) => a.id)).toContain(view.id);

    // When: its triggers are edited (no URL given: the browser never had them)
    const edited = await call("PUT", `/api/alerts/${view.id}`, { on: "complete" });

    // Then: it is replaced by an alert with the same channels and signing secret, the old one gone
    expect(edited.status).toBe(200);
    const next = AlertView.parse(edited.body);
    expect(next.id).not.toBe(view.id);
    expect(next.on).toEqual(["complete"]);
    expect(next.channels).toEqual(view.channels);
    expect(next.webhookSecret).toBeUndefined();
    const records = await ctx.alerts!.store.listAlerts("ana", { kind: "sweep", id: sweepId });
    expect(records).toHaveLength(1);
    const record = records[0]!;
    const [slack, webhook] = record.channels;
    expect(slack?.kind === "slack" && (await ctx.alerts!.secrets.open(slack.url, record.originId))).toBe(
      SLACK,
    );
    expect(
      webhook?.kind === "webhook" && (await ctx.alerts!.secrets.open(webhook.secret, record.originId)),
    ).toBe(view.webhookSecret);

    // And: deleted
    expect(Deleted.parse((await call("DELETE", `/api/alerts/${next.id}`)).body)).toEqual({
      deleted: next.id,
      copies: 0,
    });
    expect(await ctx.alerts!.store.listAlerts("ana", { kind: "sweep", id: sweepId })).toEqual([]);
  });

  it("rejects bad triggers, URLs and targets naming the field, and writes nothing", async () => {
    const sweepId = await sweep();
    const bad = async (form: Record<string, unknown>) => {
      const r = await call("POST", "/api/alerts", form);
      return { status: r.status, ...ApiError.parse(r.body) };
    };

    const on = await bad({ target: sweepId, on: "failure,cost>lots" });
    expect(on).toMatchObject({ status: 400, field: "on" });
    expect(on.error).toMatch(/^--on "cost>lots"/);
    expect(await bad({ target: sweepId, slack: "http://hooks.example.com/x" })).toMatchObject({
      status: 400,
      field: "slack",
    });
    expect(await bad({ target: "no such sweep!" })).toMatchObject({ status: 400, field: "target" });
    expect(await bad({ target: "lr-missing" })).toMatchObject({ status: 404, field: "target", exitCode: 3 });
    expect(await ctx.alerts!.store.listAlerts("ana", { kind: "sweep", id: sweepId })).toEqual([]);
  });

  it("masks a URL to its origin and the path's last four characters", () => {
    expect(maskUrl(SLACK)).toBe("https://hooks.slack.com/…WXYZ");
    // A short path could be guessed from four characters: none shown
    expect(maskUrl("https://example.com/hook")).toBe("https://example.com/…");
  });
});
