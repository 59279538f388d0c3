/**
 * The AWS dashboard API (lambdas/dashboard-api) over dynalite and file objects, through the
 * Lambda handler's own event translation (API Gateway HTTP API payload 2.0 with JWT claims):
 * authentication, team isolation, comments, sharing, polling, and escaping.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { APIGatewayProxyEventV2WithJWTAuthorizer } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ApiError,
  CommentList,
  CommentView,
  LogChunk,
  Results,
  ShareResult,
  SnapshotEvent,
  SweepDetail,
  SweepList,
  TaskGrid,
  TeamList,
} from "../core/api.js";
import type { SweepRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { type ApiResponse, dashboardApi, safeJson } from "../lambdas/dashboard-api/api.js";
import { toApiRequest, toResult } from "../lambdas/dashboard-api/http.js";
import { DynamoTeamStore } from "../providers/dynamodb/team-store.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { createLogger } from "../providers/log.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const useStore = useDynaliteStore("dashaws");
let objectsDir: string;
let api: ReturnType<typeof dashboardApi>;
let teams: DynamoTeamStore;

const ADMIN = "admin@example.com";
const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const XSS = `<img src=x onerror="alert(1)"><script>alert(2)</script>&amp;`;

beforeAll(async () => {
  const { store, engine } = useStore();
  objectsDir = await mkdtemp(join(tmpdir(), "spawn-dash-aws-"));
  teams = new DynamoTeamStore(engine.client, store.tables.sweeps.replace(/sweeps$/, ""));
  api = dashboardApi({
    store,
    teams,
    objects: new FileObjectStore(objectsDir),
    clock: systemClock,
    log: createLogger({}, () => undefined),
  });
});
afterAll(async () => {
  await rm(objectsDir, { recursive: true, force: true });
});

/** An HTTP API event as API Gateway sends it after the JWT authorizer accepted an ID token for `user`. */
function event(
  method: string,
  path: string,
  options: { user?: string; body?: unknown; headers?: Record<string, string>; tokenUse?: string } = {},
): APIGatewayProxyEventV2WithJWTAuthorizer {
  const [rawPath, rawQueryString = ""] = path.split("?") as [string, string?];
  return {
    version: "2.0",
    routeKey: "ANY /api/{proxy+}",
    rawPath,
    rawQueryString,
    headers: options.headers ?? {},
    isBase64Encoded: false,
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
    requestContext: {
      http: { method, path: rawPath, protocol: "HTTP/1.1", sourceIp: "203.0.113.1", userAgent: "test" },
      ...(options.user
        ? {
            authorizer: {
              principalId: "",
              integrationLatency: 0,
              jwt: {
                claims: { email: options.user, token_use: options.tokenUse ?? "id", sub: randomUUID() },
                scopes: null as unknown as string[],
              },
            },
          }
        : {}),
    },
  } as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
}

async function call(
  method: string,
  path: string,
  options: Parameters<typeof event>[2] = {},
): Promise<ApiResponse & { json: () => unknown; raw: string }> {
  const response = await api(toApiRequest(event(method, path, options)));
  // Through the handler's response translation too: what API Gateway returns is what is checked.
  const result = toResult(response);
  const raw = typeof result.body === "string" ? result.body : "";
  return { ...response, raw, json: () => JSON.parse(raw) };
}

async function launch(
  name: string,
  team?: string,
  params: Record<string, unknown> = { grid: { lr: [0.1, 0.2] } },
) {
  const { store } = useStore();
  const spec = parseSpec({ name, command: "python train.py --lr {{lr}}", params });
  const sweep = await createSweep(
    { store, clock: systemClock },
    {
      sweepId: `aws-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "someone",
      provider: "aws",
    },
  );
  return team ? store.updateSweep(sweep.sweepId, {}, { team }) : sweep;
}

let defaultSweep: SweepRecord;
let vision: SweepRecord;

beforeAll(async () => {
  // The first caller of the stack becomes admin of `default`, and adds the others.
  expect((await call("GET", "/api/teams", { user: ADMIN })).json()).toEqual({
    user: ADMIN,
    teams: [{ team: "default", role: "admin" }],
  });
  const added = await call("POST", "/api/teams/default/members", { user: ADMIN, body: { user: ALICE } });
  expect(added.status).toBe(200);
  const vis = await call("POST", "/api/teams/vision/members", { user: ADMIN, body: { user: BOB } });
  expect(vis.status).toBe(200);
  defaultSweep = await launch("default-team");
  vision = await launch("vision-team", "vision");
});

describe("authentication", () => {
  it("answers 401 to a request without verified claims, on every route", async () => {
    for (const [method, path] of [
      ["GET", "/api/sweeps"],
      ["GET", `/api/sweeps/${defaultSweep.sweepId}`],
      ["GET", "/api/teams"],
      ["POST", `/api/sweeps/${defaultSweep.sweepId}/cancel`],
      ["POST", `/api/sweeps/${defaultSweep.sweepId}/comments`],
    ] as const) {
      const r = await call(method, path, { body: { body: "hi" } });
      expect(r.status, `${method} ${path}`).toBe(401);
      expect(ApiError.parse(r.json()).error).toBe("authentication required");
    }
    // The sweep was not cancelled by the refused request.
    expect((await useStore().store.getSweep(defaultSweep.sweepId))?.status).not.toBe("cancelled");
  });

  it("takes the identity only from the authorizer's ID-token claims, never from headers or access tokens", async () => {
    const spoofed = await call("GET", "/api/teams", {
      headers: { "x-user": ADMIN, authorization: "Bearer x" },
    });
    expect(spoofed.status).toBe(401);
    const access = await call("GET", "/api/teams", { user: ADMIN, tokenUse: "access" });
    expect(access.status).toBe(401);
  });

  it("makes only one first admin: a later newcomer belongs to no team and sees nothing", async () => {
    const r = await call("GET", "/api/teams", { user: "newcomer@example.com" });
    expect(TeamList.parse(r.json()).teams).toEqual([]);
    const list = SweepList.parse((await call("GET", "/api/sweeps", { user: "newcomer@example.com" })).json());
    expect(list.sweeps).toEqual([]);
  });
});

describe("team isolation", () => {
  it("lists only the sweeps of the caller's teams", async () => {
    const alice = SweepList.parse((await call("GET", "/api/sweeps", { user: ALICE })).json());
    const bob = SweepList.parse((await call("GET", "/api/sweeps", { user: BOB })).json());
    expect(alice.sweeps.map((s) => s.sweepId)).toContain(defaultSweep.sweepId);
    expect(alice.sweeps.map((s) => s.sweepId)).not.toContain(vision.sweepId);
    expect(bob.sweeps.map((s) => s.sweepId)).toEqual([vision.sweepId]);
  });

  it("answers a cross-team sweep exactly as a missing one (404), for reads and actions", async () => {
    const missing = await call("GET", "/api/sweeps/aws-nonexistent", { user: BOB });
    expect(missing.status).toBe(404);
    for (const [method, sub] of [
      ["GET", ""],
      ["GET", "/tasks"],
      ["GET", "/poll"],
      ["GET", "/results"],
      ["GET", "/logs/0"],
      ["GET", "/comments"],
      ["POST", "/cancel"],
      ["POST", "/retry?failed=1"],
      ["POST", "/comments"],
      ["POST", "/share"],
    ] as const) {
      const r = await call(method, `/api/sweeps/${defaultSweep.sweepId}${sub}`, {
        user: BOB,
        body: { body: "sneaky", team: "vision" },
      });
      expect(r.status, `${method} ${sub}`).toBe(404);
      expect(ApiError.parse(r.json()).exitCode).toBe(3);
      expect(r.raw.replace(defaultSweep.sweepId, "ID")).toBe(missing.raw.replace("aws-nonexistent", "ID"));
    }
    expect((await useStore().store.getSweep(defaultSweep.sweepId))?.status).not.toBe("cancelled");
    expect(await teams.comments(defaultSweep.sweepId)).toEqual([]);
    expect(await teams.sharesOf(defaultSweep.sweepId)).toEqual([]);
  });

  it("lets a member add members only to teams they administer", async () => {
    const r = await call("POST", "/api/teams/vision/members", { user: ALICE, body: { user: ALICE } });
    expect(r.status).toBe(403);
    expect((await teams.membersOf("vision")).map((m) => m.user)).not.toContain(ALICE);
  });

  it("shares a sweep with another team, which then sees it; sharing twice changes nothing", async () => {
    const sweep = await launch("shared");
    expect((await call("GET", `/api/sweeps/${sweep.sweepId}`, { user: BOB })).status).toBe(404);
    const shared = await call("POST", `/api/sweeps/${sweep.sweepId}/share`, {
      user: ALICE,
      body: { team: "vision" },
    });
    expect(ShareResult.parse(shared.json())).toEqual({
      sweepId: sweep.sweepId,
      teams: ["default", "vision"],
      changed: true,
    });
    const again = await call("POST", `/api/sweeps/${sweep.sweepId}/share`, {
      user: ALICE,
      body: { team: "vision" },
    });
    expect(ShareResult.parse(again.json()).changed).toBe(false);
    expect(
      SweepDetail.parse((await call("GET", `/api/sweeps/${sweep.sweepId}`, { user: BOB })).json()).name,
    ).toBe("shared");
    const bob = SweepList.parse((await call("GET", "/api/sweeps", { user: BOB })).json());
    expect(bob.sweeps.map((s) => s.sweepId)).toEqual([sweep.sweepId, vision.sweepId]);
  });

  it("refuses a bad or unknown team name with 400 / 404 naming it", async () => {
    const bad = await call("POST", `/api/sweeps/${defaultSweep.sweepId}/share`, {
      user: ALICE,
      body: { team: "<b>Vision</b>" },
    });
    expect(bad.status).toBe(400);
    expect(ApiError.parse(bad.json()).error).toMatch(/^team "<b>Vision<\/b>" must be/);
    const unknown = await call("POST", `/api/sweeps/${defaultSweep.sweepId}/share`, {
      user: ALICE,
      body: { team: "nobody-here" },
    });
    expect(unknown.status).toBe(404);
  });
});

describe("comments", () => {
  it("round-trips comments, oldest first, with the author from the token", async () => {
    const path = `/api/sweeps/${defaultSweep.sweepId}/comments`;
    const first = await call("POST", path, { user: ALICE, body: { body: "  lr=0.1 diverges  " } });
    expect(first.status).toBe(201);
    expect(CommentView.parse(first.json())).toMatchObject({ author: ALICE, body: "lr=0.1 diverges" });
    await call("POST", path, {
      user: ADMIN,
      body: { body: "rerun with warmup", author: "mallory@example.com" },
    });
    const list = CommentList.parse((await call("GET", path, { user: ALICE })).json());
    expect(list.comments.map((c) => [c.author, c.body])).toEqual([
      [ALICE, "lr=0.1 diverges"],
      [ADMIN, "rerun with warmup"],
    ]);
  });

  it("rejects empty, oversized and non-JSON bodies with 400 naming the field", async () => {
    const path = `/api/sweeps/${defaultSweep.sweepId}/comments`;
    for (const body of [{ body: "   " }, { body: "x".repeat(4001) }, { text: "hi" }]) {
      const r = await call("POST", path, { user: ALICE, body });
      expect(r.status).toBe(400);
      expect(ApiError.parse(r.json()).error).toMatch(/^body must be/);
    }
    const notJson = await api({
      ...toApiRequest(event("POST", path, { user: ALICE })),
      body: "<html>",
    });
    expect(notJson.status).toBe(400);
  });
});

describe("escaping", () => {
  it("never sends markup: HTML in comments and params comes back as \\u escapes in JSON", async () => {
    const sweep = await launch("xss", undefined, { list: [{ lr: XSS }] });
    await call("POST", `/api/sweeps/${sweep.sweepId}/comments`, { user: ALICE, body: { body: XSS } });
    const comments = await call("GET", `/api/sweeps/${sweep.sweepId}/comments`, { user: ALICE });
    const results = await call("GET", `/api/sweeps/${sweep.sweepId}/results`, { user: ALICE });
    const detail = await call("GET", `/api/sweeps/${sweep.sweepId}`, { user: ALICE });
    for (const r of [comments, results]) {
      expect(r.headers["content-type"]).toBe("application/json; charset=utf-8");
      expect(r.headers["x-content-type-options"]).toBe("nosniff");
      expect(r.headers["content-security-policy"]).toContain("default-src 'none'");
      expect(r.raw).not.toMatch(/[<>]/);
      expect(r.raw).toContain("\\u003cscript\\u003e");
    }
    // The same values once parsed: escaping is in the encoding, never in the data.
    expect(CommentList.parse(comments.json()).comments[0]?.body).toBe(XSS);
    expect(Results.parse(results.json()).rows[0]?.params.lr).toBe(XSS);
    expect(SweepDetail.parse(detail.json()).command).toBe("python train.py --lr {{lr}}");
    expect(safeJson({ a: "</script>\u2028" })).toBe('{"a":"\\u003c/script\\u003e\\u2028"}');
  });

  it("never serves an output's bytes itself: downloads are presigned links (test/dashboard-aws-manage.test.ts)", async () => {
    const objects = new FileObjectStore(objectsDir);
    await objects.putBytes(`outputs/${defaultSweep.sweepId}/0/report.html`, XSS);
    // This API was built without download links.
    const r = await call("GET", `/api/sweeps/${defaultSweep.sweepId}/outputs/0/report.html`, { user: ALICE });
    expect(r.status).toBe(404);
    expect(ApiError.parse(r.json()).hint).toBe(`spawn sweep download ${defaultSweep.sweepId}`);
    expect(r.raw).not.toContain("alert(1)");
  });
});

describe("the local dashboard's routes and shapes", () => {
  it("answers the sweep routes with the schemas the UI parses", async () => {
    const id = defaultSweep.sweepId;
    const grid = TaskGrid.parse((await call("GET", `/api/sweeps/${id}/tasks`, { user: ALICE })).json());
    expect(grid.states).toBe("pp");
    const objects = new FileObjectStore(objectsDir);
    await objects.putBytes(`logs/${id}/1/1.log`, "epoch 1\nepoch 2\n");
    const log = LogChunk.parse(
      (await call("GET", `/api/sweeps/${id}/logs/1?offset=8`, { user: ALICE })).json(),
    );
    expect(log).toMatchObject({ attempt: 1, attempts: [1], offset: 8, text: "epoch 2\n" });
    const bad = await call("GET", `/api/sweeps/${id}/logs/1?offset=-1`, { user: ALICE });
    expect(bad.status).toBe(400);
    const events = await call("GET", `/api/sweeps/${id}/events`, { user: ALICE });
    expect(events.status).toBe(404);
    expect(ApiError.parse(events.json()).hint).toContain("/poll");
  });

  it("polls with an ETag: 304 while nothing changed, the new snapshot after a change", async () => {
    const sweep = await launch("poll");
    const path = `/api/sweeps/${sweep.sweepId}/poll`;
    const first = await call("GET", path, { user: ALICE });
    const etag = first.headers.etag as string;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(SnapshotEvent.parse(first.json()).states).toBe("pp");
    const same = await call("GET", path, { user: ALICE, headers: { "If-None-Match": etag } });
    expect(same.status).toBe(304);
    expect(same.raw).toBe("");
    const cancelled = await call("POST", `/api/sweeps/${sweep.sweepId}/cancel`, { user: ALICE });
    expect(cancelled.json()).toMatchObject({ sweepId: sweep.sweepId, status: "cancelled", changed: true });
    const changed = await call("GET", path, { user: ALICE, headers: { "If-None-Match": etag } });
    expect(changed.status).toBe(200);
    expect(changed.headers.etag).not.toBe(etag);
    expect(SnapshotEvent.parse(changed.json()).sweep.status).toBe("cancelled");
  });
});
