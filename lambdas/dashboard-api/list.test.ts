/**
 * `GET /api/sweeps` on AWS, over dynalite: the list comes from the sweeps' by-team index, one
 * query per team of the caller, so a team sees its sweeps however many newer sweeps other teams
 * have; and sweeps written before the index (no `team` attribute) stay visible to `default`.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SweepList } from "#core/api.js";
import { mapLimit } from "#core/concurrency.js";
import type { SweepRecord } from "#core/model.js";
import { expandParams } from "#core/params.js";
import { systemClock } from "#core/ports.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { DynamoTeamStore } from "#providers/dynamodb/team-store.js";
import { FileObjectStore } from "#providers/local/objects.js";
import { createLogger } from "#providers/log.js";
import { countingStore } from "../../test/helpers/counting-store.js";
import { useDynaliteStore } from "../../test/helpers/dynamo.js";
import { dashboardApi, LIST_SCAN } from "./api.js";

const useStore = useDynaliteStore("dashlist");
const ADMIN = "admin@example.com";
const ALICE = "alice@example.com"; // default
const BOB = "bob@example.com"; // vision
const CAROL = "carol@example.com"; // nlp
/** Newer sweeps of another team than the old list read before filtering. */
const FLOOD = LIST_SCAN + 10;

let objectsDir: string;
let counted: ReturnType<typeof countingStore>;
let api: ReturnType<typeof dashboardApi>;
let teams: DynamoTeamStore;
let vision: SweepRecord[];
let nlp: SweepRecord[];
let defaults: SweepRecord[];
/** Written before the by-team index existed (no `team` attribute), older than the flood. */
let oldLegacy: SweepRecord;
/** The same kind, among the stack's newest LIST_SCAN sweeps. */
let recentLegacy: SweepRecord;

const call = (user: string, method: string, path: string, body?: unknown) => {
  const [p, q = ""] = path.split("?") as [string, string?];
  return api({
    method,
    path: p,
    query: new URLSearchParams(q),
    headers: {},
    user,
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
};

async function list(user: string, query = ""): Promise<string[]> {
  const r = await call(user, "GET", `/api/sweeps${query}`);
  expect(r.status).toBe(200);
  return SweepList.parse(JSON.parse(r.body as string)).sweeps.map((s) => s.sweepId);
}

/** A sweep as `spawn sweep launch` writes it (core createSweep: `team` always written). */
async function launch(name: string, team?: string): Promise<SweepRecord> {
  const spec = parseSpec({ name, command: "echo {{i}}", params: { list: [{ i: 1 }] } });
  return createSweep(
    { store: useStore().store, clock: systemClock },
    {
      sweepId: `${name}-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: `${name}-owner`,
      provider: "aws",
      ...(team ? { team } : {}),
    },
  );
}

beforeAll(async () => {
  const { store, engine } = useStore();
  objectsDir = await mkdtemp(join(tmpdir(), "spawn-dash-list-"));
  teams = new DynamoTeamStore(engine.client, store.tables.sweeps.replace(/sweeps$/, ""));
  counted = countingStore(store);
  api = dashboardApi({
    store: counted.store,
    teams,
    objects: new FileObjectStore(objectsDir),
    clock: systemClock,
    log: createLogger({}, () => undefined),
  });
  // The first caller becomes admin of `default`, then makes the other teams.
  await call(ADMIN, "GET", "/api/teams");
  for (const [team, user] of [
    ["default", ALICE],
    ["vision", BOB],
    ["nlp", CAROL],
  ] as const)
    expect((await call(ADMIN, "POST", `/api/teams/${team}/members`, { user })).status).toBe(200);

  // Oldest: sweeps of `default` (one written before the by-team index: no `team` attribute) and
  // `vision`; then more sweeps of `nlp` than the old list ever read; then another untagged one.
  const template = await launch("template");
  const { team: _t, ...untagged } = template;
  oldLegacy = {
    ...untagged,
    sweepId: `legacy-${randomUUID().slice(0, 8)}`,
    createdAt: template.createdAt - 1,
  };
  await store.createSweep(oldLegacy);
  vision = [await launch("vision-a", "vision"), await launch("vision-b", "vision")];
  defaults = [template, await launch("default-a")];
  const start = Date.now() + 1000;
  nlp = await mapLimit(
    Array.from({ length: FLOOD }, (_, i) => i),
    16,
    async (i) => {
      const sweep: SweepRecord = {
        ...template,
        sweepId: `nlp-${i}-${randomUUID().slice(0, 6)}`,
        team: "nlp",
        owner: "nlp-owner",
        createdAt: start + i,
        updatedAt: start + i,
      };
      await store.createSweep(sweep);
      return sweep;
    },
  );
  recentLegacy = { ...untagged, sweepId: `legacy-${randomUUID().slice(0, 8)}`, createdAt: start + FLOOD };
  await store.createSweep(recentLegacy);
}, 120_000);
afterAll(async () => {
  await rm(objectsDir, { recursive: true, force: true });
});

describe("GET /api/sweeps on AWS", () => {
  it("shows a team its sweeps when more than LIST_SCAN newer sweeps of another team exist", async () => {
    expect((await list(BOB)).sort()).toEqual(vision.map((s) => s.sweepId).sort());
  });

  it("never lists another team's sweeps, and pages newest first", async () => {
    const carol = await list(CAROL, "?limit=50");
    const newest = [...nlp].sort((a, b) => b.createdAt - a.createdAt).slice(0, 50);
    expect(carol).toEqual(newest.map((s) => s.sweepId));
    expect(await list(ALICE)).toEqual(
      [recentLegacy, ...defaults].sort((a, b) => b.createdAt - a.createdAt).map((s) => s.sweepId),
    );
    expect(await list(BOB, "?owner=nlp-owner")).toEqual([]);
    expect(await list(BOB, "?owner=vision-a-owner")).toEqual([vision[0]!.sweepId]);
  });

  it("adds the sweeps shared with one of the caller's teams", async () => {
    const shared = nlp[3]!;
    await teams.share({
      sweepId: shared.sweepId,
      team: "vision",
      sweepCreatedAt: shared.createdAt,
      sharedAt: Date.now(),
      sharedBy: CAROL,
    });
    expect(await list(BOB)).toEqual(
      [shared, ...vision].sort((a, b) => b.createdAt - a.createdAt).map((s) => s.sweepId),
    );
  });

  it("lists sweeps without a team (written before the index) to `default` while they are among the newest LIST_SCAN", async () => {
    // The `default` page is short (2 tagged sweeps), so the newest LIST_SCAN sweeps are searched for untagged ones.
    counted.reset();
    const alice = await list(ALICE);
    expect(alice).toContain(recentLegacy.sweepId);
    expect(await list(BOB)).not.toContain(recentLegacy.sweepId);
    const untaggedReads = counted.calls.filter(
      (c) => c.method === "listSweeps" && (c.args[0] as { team?: string }).team === undefined,
    );
    expect(untaggedReads.map((c) => c.args[0])).toEqual([{ limit: LIST_SCAN }]);
    // Older ones are not listed (docs/adr/0038: the migration tags them), but still open by id.
    expect(alice).not.toContain(oldLegacy.sweepId);
    expect((await call(ALICE, "GET", `/api/sweeps/${oldLegacy.sweepId}`)).status).toBe(200);
  });

  it("does not search for untagged sweeps when the index fills `default`'s page", async () => {
    counted.reset();
    expect(await list(ALICE, "?limit=2")).toEqual([defaults[1]!.sweepId, defaults[0]!.sweepId]);
    expect(counted.calls.filter((c) => c.method === "listSweeps").map((c) => c.args[0])).toEqual([
      { team: "default", limit: 2 },
    ]);
  });
});
