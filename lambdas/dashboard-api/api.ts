/**
 * The dashboard API on AWS, over ports only (the handler wires DynamoDB and S3; tests wire
 * dynalite and files). The sweep routes answer exactly what the local dashboard answers
 * (providers/dashboard-routes.ts, shapes in core/api.ts); on top of them: the caller's teams,
 * comments, sharing, and `/poll` (API Gateway HTTP APIs do not stream Server-Sent Events).
 *
 * Every request is authorised: the caller is the e-mail in the Cognito ID token that API
 * Gateway's JWT authorizer verified, and sees only the sweeps of their teams. A sweep of
 * another team answers 404, exactly as a sweep that does not exist, so sweep ids cannot be
 * probed (docs/adr/0029-dashboard-on-aws-teams-and-polling.md).
 */
import { createHash, randomUUID } from "node:crypto";
import type {
  CommentList,
  CommentView,
  DownloadLink,
  ShareResult,
  SnapshotEvent,
  SweepList,
  TaskGrid,
  TeamList,
} from "#core/api.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { SweepRecord } from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import {
  canSee,
  commentBody,
  DEFAULT_TEAM,
  type Membership,
  TeamRole,
  type TeamStore,
  teamName,
  teamOf,
} from "#core/teams.js";
import { type OnDemandPollerOptions, OnDemandPollers } from "#providers/dashboard-poller.js";
import {
  DashboardReads,
  errorResponse,
  HttpError,
  intParam,
  outputObject,
  resultsOf,
} from "#providers/dashboard-routes.js";
import type { Logger } from "#providers/log.js";
import type { OutputLinks } from "./downloads.js";
import type { TeamManagement } from "./manage.js";

export interface ApiDeps {
  store: StateStore;
  objects: ObjectStore;
  teams: TeamStore;
  clock: Clock;
  log: Logger;
  /** Bounds of the container's sweep pollers behind `/poll`. @default OnDemandPollers' defaults */
  pollers?: OnDemandPollerOptions;
  /** Presigned download links for outputs (downloads.ts); without it output downloads answer 404. */
  links?: OutputLinks;
  /** The schedules and alerts routes (manage.ts); without it they answer 404. */
  manage?: TeamManagement;
}

/** An HTTP request as the handler hands it over (path without the stage, headers lowercased). */
export interface ApiRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Readonly<Record<string, string | undefined>>;
  body?: string;
  /** The verified caller (lowercased e-mail), undefined when the request carried no valid identity. */
  user?: string;
}

export interface ApiResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sweeps read from the newest, then filtered by team, where no index answers: a list filtered by
 * `owner`, and sweeps written before the by-team index, which `default` members see
 * (docs/dashboard.md, "On AWS"; docs/adr/0038-lambda-polls-and-sweeps-by-team.md).
 */
export const LIST_SCAN = 500;

/** JSON responses are never rendered as HTML; `default-src 'none'` says so even to a confused browser. */
const JSON_HEADERS = {
  "content-type": "application/json; charset=utf-8",
  "x-content-type-options": "nosniff",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "cache-control": "no-store",
};

/**
 * JSON with `<`, `>` and `&` (and the two JavaScript line terminators) as \u escapes: the same
 * value once parsed, but no byte sequence a sniffing browser or a careless embedder could read
 * as markup.
 */
export function safeJson(value: unknown): string {
  return JSON.stringify(value).replace(
    /[<>&\u2028\u2029]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

const json = (status: number, body: unknown, headers: Record<string, string> = {}): ApiResponse => ({
  status,
  headers: { ...JSON_HEADERS, ...headers },
  body: safeJson(body),
});

function jsonBody(request: ApiRequest): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(request.body ?? "");
    if (value && typeof value === "object" && !Array.isArray(value)) return value as Record<string, unknown>;
  } catch {
    // answered below
  }
  throw new HttpError(400, "the request body must be a JSON object", 'e.g. {"body": "…"}');
}

/** The API as one function from request to response; every error becomes its status and ApiError body. */
export function dashboardApi(deps: ApiDeps): (request: ApiRequest) => Promise<ApiResponse> {
  const { store, teams, clock, log } = deps;
  const reads = new DashboardReads(deps);
  // Kept for the container's life (the API is built once per container): a poll ticks its
  // sweep's poller instead of reading every task (docs/adr/0038-lambda-polls-and-sweeps-by-team.md).
  const pollers = new OnDemandPollers({ store, clock, log }, deps.pollers);

  /** The caller's memberships; the very first caller of a stack becomes admin of `default`. */
  async function membershipsOf(user: string): Promise<Membership[]> {
    const mine = await teams.teamsOf(user);
    if (mine.length > 0) return mine;
    if (await teams.claimFirstAdmin(user, clock.now())) {
      log.info("first user: admin of the default team", { user });
      return teams.teamsOf(user);
    }
    return mine;
  }

  /** The sweep, when the caller may see it; NotFoundError otherwise (never 403: ids are not probeable). */
  async function visibleSweep(sweepId: string, mine: ReadonlySet<string>): Promise<SweepRecord> {
    const sweep = await store.getSweep(sweepId);
    if (sweep) {
      if (mine.has(teamOf(sweep))) return sweep;
      const shares = await teams.sharesOf(sweepId);
      if (
        canSee(
          sweep,
          mine,
          shares.map((s) => s.team),
        )
      )
        return sweep;
    }
    throw new NotFoundError(
      "sweep",
      sweepId,
      "`spawn sweep list` shows your sweeps; a team member can share one",
    );
  }

  async function listSweeps(query: URLSearchParams, mine: ReadonlySet<string>): Promise<SweepList> {
    const owner = query.get("owner") ?? undefined;
    const limit = Math.min(200, intParam(query.get("limit"), "limit", 50));
    const [own, shared] = await Promise.all([
      owner
        ? store.listSweeps({ owner, limit: LIST_SCAN }).then((l) => l.filter((s) => mine.has(teamOf(s))))
        : Promise.all([...mine].map((team) => teamSweeps(team, limit))).then((lists) => lists.flat()),
      Promise.all([...mine].map((team) => teams.sharedWith(team, limit))).then((lists) => lists.flat()),
    ]);
    const byId = new Map(own.map((s) => [s.sweepId, s]));
    const missing = [...new Set(shared.map((s) => s.sweepId))].filter((id) => !byId.has(id));
    for (const s of await Promise.all(missing.map((id) => store.getSweep(id))))
      if (s && (!owner || s.owner === owner)) byId.set(s.sweepId, s);
    const sweeps = [...byId.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, limit);
    return { sweeps: await Promise.all(sweeps.map((s) => reads.summary(s))) };
  }

  /**
   * A team's newest `limit` sweeps, from the by-team index. Sweeps written before that index have
   * no `team` attribute and belong to `default`; they are older than every sweep written since,
   * so they can only make `default`'s page while its index holds less than a page, and only then
   * are the newest LIST_SCAN sweeps searched for them.
   */
  async function teamSweeps(team: string, limit: number): Promise<SweepRecord[]> {
    const indexed = await store.listSweeps({ team, limit });
    if (team !== DEFAULT_TEAM || indexed.length >= limit) return indexed;
    const legacy = await store.listSweeps({ limit: LIST_SCAN });
    return [...indexed, ...legacy.filter((s) => s.team === undefined)];
  }

  async function poll(request: ApiRequest, sweepId: string): Promise<ApiResponse> {
    const poller = await pollers.current(sweepId);
    // seq 0: a poller's sequence number is its container's own. The body (and so the ETag, a hash
    // of it) must be the same whichever container answers.
    const text = safeJson({ ...poller.snapshot(), seq: 0 } satisfies SnapshotEvent);
    const etag = `"${createHash("sha256").update(text).digest("base64url").slice(0, 27)}"`;
    if (request.headers["if-none-match"] === etag)
      return { status: 304, headers: { etag, "cache-control": "no-store" }, body: "" };
    return { status: 200, headers: { ...JSON_HEADERS, etag }, body: text };
  }

  async function comments(sweepId: string): Promise<CommentList> {
    const list = await teams.comments(sweepId);
    return {
      sweepId,
      comments: list.map(
        (c): CommentView => ({
          commentId: c.commentId,
          author: c.author,
          body: c.body,
          createdAt: c.createdAt,
        }),
      ),
    };
  }

  async function share(sweep: SweepRecord, user: string, request: ApiRequest): Promise<ShareResult> {
    const team = field(() => teamName(jsonBody(request).team));
    if (team !== teamOf(sweep) && (await teams.membersOf(team)).length === 0)
      throw new NotFoundError(
        "team",
        team,
        "a team exists once it has a member (POST /api/teams/<team>/members)",
      );
    const sharedAt = clock.now();
    const shareWith = async (s: SweepRecord) =>
      team !== teamOf(s) &&
      teams.share({ sweepId: s.sweepId, team, sweepCreatedAt: s.createdAt, sharedAt, sharedBy: user });
    const changed = await shareWith(sweep);
    // A pipeline's stages are sweeps of their own: the team sees them too (each share its own
    // idempotent put; sharing again repairs a stage an interrupted share missed).
    for (const stage of sweep.pipeline ?? []) {
      const record = await store.getSweep(stage.sweepId);
      if (record) await shareWith(record);
    }
    if (changed) log.info("sweep shared", { sweepId: sweep.sweepId, team, user });
    const shares = await teams.sharesOf(sweep.sweepId);
    return { sweepId: sweep.sweepId, teams: [teamOf(sweep), ...shares.map((s) => s.team)], changed };
  }

  /** Adds a member; the caller must be an admin of the team, or the team must be new (they become its admin too). */
  async function addMember(team: string, memberships: Membership[], user: string, request: ApiRequest) {
    const body = jsonBody(request);
    const member = typeof body.user === "string" ? body.user.trim().toLowerCase() : "";
    if (!/^[^@\s]+@[^@\s]+$/.test(member))
      throw new HttpError(400, `user must be an e-mail address, got ${JSON.stringify(body.user)}`);
    const role = TeamRole.safeParse(body.role ?? "member");
    if (!role.success)
      throw new HttpError(400, `role must be admin or member, got ${JSON.stringify(body.role)}`);
    const isAdmin = memberships.some((m) => m.team === team && m.role === "admin");
    const members = await teams.membersOf(team);
    if (!isAdmin && members.length > 0) throw new HttpError(403, `only an admin of ${team} can add members`);
    if (!isAdmin && !memberships.some((m) => m.role === "admin"))
      throw new HttpError(403, "only a team admin can create a team");
    const now = clock.now();
    if (members.length === 0 && member !== user)
      await teams.addMember({ team, user, role: "admin", addedAt: now, addedBy: user });
    await teams.addMember({ team, user: member, role: role.data, addedAt: now, addedBy: user });
    log.info("team member added", { team, member, role: role.data, by: user });
    return { team, members: (await teams.membersOf(team)).map((m) => ({ user: m.user, role: m.role })) };
  }

  async function route(request: ApiRequest, user: string): Promise<ApiResponse> {
    const { method, path, query } = request;
    const memberships = await membershipsOf(user);
    const mine = new Set(memberships.map((m) => m.team));
    const parts = path.split("/").slice(1).map(decodeURIComponent);
    if (parts[0] !== "api") throw new HttpError(404, `no such API: ${path}`);
    const [, resource, id, sub, arg, ...rest] = parts;

    if (resource === "teams") {
      if (method === "GET" && id === undefined)
        return json(200, {
          user,
          teams: memberships.map((m) => ({ team: m.team, role: m.role })),
        } satisfies TeamList);
      if (method === "POST" && id !== undefined && sub === "members" && arg === undefined)
        return json(
          200,
          await addMember(
            field(() => teamName(id)),
            memberships,
            user,
            request,
          ),
        );
      throw new HttpError(404, `no such API: ${method} ${path}`);
    }
    if ((resource === "schedules" || resource === "alerts") && deps.manage) {
      const r = await deps.manage({ method, parts: parts.slice(1), body: request.body, user, memberships });
      if (r) return json(r.status, r.body);
      throw new HttpError(404, `no such API: ${method} ${path}`);
    }
    if (resource !== "sweeps") throw new HttpError(404, `no such API: ${path}`);
    if (id === undefined && method === "GET") return json(200, await listSweeps(query, mine));
    if (!id) throw new HttpError(404, `no such API: ${path}`);
    const sweep = await visibleSweep(id, mine);

    if (method === "POST") {
      if (arg !== undefined) throw new HttpError(404, `no such action: ${path}`);
      switch (sub) {
        case "cancel": {
          const r = await reads.cancel(id);
          log.info("sweep cancelled from the dashboard", { sweepId: id, changed: r.changed, user });
          return json(200, r);
        }
        case "retry": {
          const r = await reads.retry(id, query);
          log.info("sweep retried from the dashboard", { sweepId: id, retried: r.retried.length, user });
          return json(200, r);
        }
        case "comments": {
          const body = field(() => commentBody(jsonBody(request).body));
          const comment = {
            sweepId: id,
            commentId: randomUUID(),
            author: user,
            body,
            createdAt: clock.now(),
          };
          await teams.addComment(comment);
          const { sweepId: _s, ...view } = comment;
          return json(201, view satisfies CommentView);
        }
        case "share":
          return json(200, await share(sweep, user, request));
      }
      throw new HttpError(404, `no such action: ${path}`);
    }
    if (method !== "GET") throw new HttpError(405, `${method} is not allowed here`);

    switch (sub) {
      case undefined:
        return json(200, (await reads.snapshot(id)).event.sweep);
      case "tasks": {
        const { event } = await reads.snapshot(id);
        return json(200, { sweepId: id, seq: event.seq, states: event.states } satisfies TaskGrid);
      }
      case "poll":
        return poll(request, id);
      case "results":
        return json(200, resultsOf(id, (await reads.snapshot(id)).tasks));
      case "comments":
        return json(200, await comments(id));
      case "logs":
        if (arg === undefined || rest.length) break;
        return json(200, await reads.logs(id, arg, query));
      case "metrics":
        if (arg === undefined || rest.length) break;
        return json(200, await reads.curves(id, arg, query));
      case "outputs": {
        if (arg === undefined) return json(200, await reads.outputs(id));
        const { key, name, label } = outputObject(id, path.split("/").slice(5).join("/"));
        if (!deps.links)
          throw new HttpError(404, "this deployment serves no downloads", `spawn sweep download ${id}`);
        if (!(await deps.objects.exists(key))) throw new NotFoundError("output", label);
        const link = await deps.links.link(key, name);
        log.info("output download link", { sweepId: id, key, user });
        return json(200, link satisfies DownloadLink);
      }
      case "events":
        throw new HttpError(
          404,
          "live events are not streamed by this deployment",
          `poll GET /api/sweeps/${id}/poll with If-None-Match`,
        );
    }
    throw new HttpError(404, `no such API: ${path}`);
  }

  return async (request) => {
    try {
      if (!request.user)
        throw new HttpError(401, "authentication required", "sign in: open the dashboard's URL");
      return await route(request, request.user);
    } catch (error) {
      const { status, body, internal } = errorResponse(error);
      if (internal) log.error("request failed", { path: request.path, error });
      return json(status, body);
    }
  };
}

/** A field of the request validated by `check`; its AbortError is a bad request (400), not a state conflict (409). */
function field<T>(check: () => T): T {
  try {
    return check();
  } catch (error) {
    if (error instanceof AbortError) throw new HttpError(400, error.message, error.hint);
    throw error;
  }
}
