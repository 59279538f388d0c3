/**
 * Schedules and alerts on the AWS dashboard: `/api/schedules[/:id[/pause|resume]]` and
 * `/api/alerts[/:id]`, through the services `spawn schedule`, `spawn alerts` and the local
 * dashboard call (cli/services/dashboard/manage.ts: the same checks, field-named errors, sealed
 * secrets, masked webhooks), with the stack's stores.
 *
 * Schedules and alerts belong to a team: their owner is `team:<name>` (core/teams.ts). Members see
 * their teams' schedules and alerts; a team's admins create, edit, pause, resume and delete its
 * schedules (they launch sweeps, and spend, unattended), and any member manages its alerts.
 * One of another team answers 404 exactly as one that does not exist. A schedule is created from
 * a sweep the team sees: a browser has no spec file or workdir to send
 * (docs/adr/0039-dashboard-schedules-alerts-downloads-on-aws.md).
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Actor, CliContext } from "#cli/context.js";
import { listAlerts } from "#cli/services/alerts.js";
import {
  createScheduleFromSweep,
  FieldError,
  type ManageResponse,
  manageRoute,
  readBody,
  rejected,
} from "#cli/services/dashboard/manage.js";
import { scheduleJson } from "#cli/services/schedule-actions.js";
import { publicAlertId } from "#core/alerts.js";
import { type AlertList, ScheduleFromSweep, type ScheduleList } from "#core/api.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { Clock } from "#core/ports.js";
import {
  canSee,
  DEFAULT_TEAM,
  type Membership,
  ownerTeam,
  type TeamStore,
  teamName,
  teamOwner,
} from "#core/teams.js";
import type { StackStores } from "#providers/aws/stack-stores.js";
import { HttpError } from "#providers/dashboard-routes.js";
import { localPaths } from "#providers/local/paths.js";
import type { Logger } from "#providers/log.js";

/** A schedules or alerts request, after the caller was authenticated and their teams read. */
export interface ManageRequest {
  method: string;
  /** The path after `/api/`, decoded: `["schedules", id?, action?]` or `["alerts", id?]`. */
  parts: readonly string[];
  body: string | undefined;
  user: string;
  memberships: readonly Membership[];
}

/** Answers a ManageRequest; undefined when no route matches. */
export type TeamManagement = (request: ManageRequest) => Promise<ManageResponse | undefined>;

/** The stores a team's context is made of (the handler's stack stores; tests' dynalite and mocks). */
export type ManageStores = Pick<StackStores, "store" | "schedules" | "scheduleDriver" | "alerts" | "objects">;

export interface TeamManagementDeps {
  stores: ManageStores;
  teams: TeamStore;
  clock: Clock;
  log: Logger;
}

/**
 * The services' context for one team: the stack's stores, acting as `team:<name>`. The services
 * this module calls never touch `paths` (no spec file is read, no workdir bundled); the Lambda's
 * only writable directory stands in.
 */
function teamContext(deps: TeamManagementDeps, team: string): CliContext & { actor: Actor } {
  const { stores, teams, clock } = deps;
  const actor: Actor = {
    owner: teamOwner(team),
    seesSweep: async (sweep) =>
      canSee(
        sweep,
        new Set([team]),
        (await teams.sharesOf(sweep.sweepId)).map((s) => s.team),
      ),
  };
  return {
    provider: "aws",
    ...stores,
    clock,
    paths: localPaths({ SPAWN_HOME: join(tmpdir(), "spawn") }),
    actor,
    // The stores' clients belong to the Lambda container, not to one request.
    close: () => {},
  };
}

export function teamManagement(deps: TeamManagementDeps): TeamManagement {
  const { stores, log } = deps;
  const open = (team: string) => () => Promise.resolve(teamContext(deps, team));

  /** The team a form names (`team`, default DEFAULT_TEAM), which the caller must belong to. */
  function formTeam(request: ManageRequest, team: unknown): string {
    let name: string;
    try {
      name = teamName(team ?? DEFAULT_TEAM);
    } catch (error) {
      throw new FieldError((error as Error).message, "team");
    }
    if (!request.memberships.some((m) => m.team === name))
      throw new NotFoundError("team", name, "GET /api/teams lists yours");
    return name;
  }

  /** Changing a team's schedules needs its admin role: members see them (403: the id is no secret to them). */
  function requireAdmin(request: ManageRequest, team: string, what: string): void {
    if (!request.memberships.some((m) => m.team === team && m.role === "admin"))
      throw new HttpError(403, `only an admin of team ${team} can ${what}`, "ask one of its admins");
  }

  /** The team of a schedule the caller may see; NotFoundError (the same for missing and cross-team) else. */
  async function scheduleTeam(request: ManageRequest, scheduleId: string): Promise<string> {
    const schedule = await stores.schedules.getSchedule(scheduleId);
    const team = schedule && ownerTeam(schedule.owner);
    if (team && request.memberships.some((m) => m.team === team)) return team;
    throw new NotFoundError("schedule", scheduleId, "the schedules view lists your teams' schedules");
  }

  /** The team of an alert (`al-…`) the caller may see, searched in their teams; NotFoundError else. */
  async function alertTeam(request: ManageRequest, alertId: string): Promise<string> {
    for (const { team } of request.memberships) {
      const alerts = await listAlerts(teamContext(deps, team), undefined);
      if (alerts.some((a) => publicAlertId(a) === alertId)) return team;
    }
    throw new NotFoundError("alert", alertId, "the alerts view lists your teams' alerts");
  }

  /** Each team's answer to the same list route, tagged with the team, merged. */
  async function perTeam<T extends object>(
    request: ManageRequest,
    collection: "schedules" | "alerts",
    items: (body: unknown) => T[],
  ): Promise<ManageResponse | undefined> {
    const all: (T & { team: string })[] = [];
    for (const { team } of request.memberships) {
      const r = await manageRoute(open(team), [], "GET", [collection]);
      if (r?.status !== 200) return r;
      all.push(...items(r.body).map((item) => ({ ...item, team })));
    }
    return { status: 200, body: { [collection]: all } };
  }

  /** A single-item answer tagged with its team. */
  const tagged = (r: ManageResponse | undefined, team: string) =>
    r && r.status < 300 && r.body && typeof r.body === "object" && !("deleted" in r.body)
      ? { ...r, body: { ...r.body, team } }
      : r;

  async function createSchedule(request: ManageRequest): Promise<ManageResponse> {
    const form = await readBody([request.body ?? ""], ScheduleFromSweep);
    const team = formTeam(request, form.team);
    requireAdmin(request, team, "schedule sweeps");
    const ctx = teamContext(deps, team);
    const sweep = await stores.store.getSweep(form.fromSweep);
    if (!sweep || !(await ctx.actor.seesSweep(sweep)))
      return rejected(
        new NotFoundError("sweep", form.fromSweep, `a sweep team ${team} sees; a member can share one`),
        { fromSweep: form.fromSweep },
      );
    try {
      const schedule = await createScheduleFromSweep(ctx, sweep, form);
      log.info("schedule created from a sweep", {
        scheduleId: schedule.scheduleId,
        sweepId: sweep.sweepId,
        team,
        user: request.user,
      });
      return { status: 201, body: { ...scheduleJson(schedule), team } };
    } catch (error) {
      if (error instanceof AbortError) return rejected(error, { fromSweep: form.fromSweep });
      throw error;
    }
  }

  async function route(request: ManageRequest): Promise<ManageResponse | undefined> {
    const { method, parts, body } = request;
    const [collection, id, action, ...rest] = parts;
    if (rest.length) return undefined;
    const bodyOf = [body ?? ""];
    if (collection === "schedules") {
      if (id === undefined && method === "GET")
        return perTeam(request, "schedules", (b) => (b as ScheduleList).schedules);
      if (id === undefined) return method === "POST" ? createSchedule(request) : undefined;
      const team = await scheduleTeam(request, id);
      if (method !== "GET") requireAdmin(request, team, "change its schedules");
      const r = await manageRoute(open(team), bodyOf, method, [collection, id, ...(action ? [action] : [])]);
      if (r && r.status < 300 && method !== "GET")
        log.info("schedule changed", { scheduleId: id, method, action, team });
      return tagged(r, team);
    }
    if (collection === "alerts" && action === undefined) {
      if (id === undefined && method === "GET")
        return perTeam(request, "alerts", (b) => (b as AlertList).alerts);
      let team: string;
      if (id === undefined) {
        if (method !== "POST") return undefined;
        team = formTeam(request, formField(body, "team"));
      } else team = await alertTeam(request, id);
      const r = await manageRoute(
        open(team),
        bodyOf,
        method,
        id === undefined ? [collection] : [collection, id],
      );
      if (r && r.status < 300 && method !== "GET") log.info("alert changed", { alertId: id, method, team });
      return tagged(r, team);
    }
    return undefined;
  }

  return async (request) => {
    try {
      return await route(request);
    } catch (error) {
      // The services' answers: field-named 400s, 404s (the same for cross-team and missing), 409s.
      if (error instanceof AbortError) return rejected(error, {});
      throw error;
    }
  };
}

/** One field of a JSON body, read before the body is validated (the route validates the rest). */
function formField(body: string | undefined, name: string): unknown {
  try {
    const value: unknown = JSON.parse(body ?? "");
    return value && typeof value === "object" ? (value as Record<string, unknown>)[name] : undefined;
  } catch {
    return undefined;
  }
}
