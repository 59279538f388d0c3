/**
 * `GET /api/sweeps/:id/poll` on AWS, over dynalite: each container ticks a cached poller on
 * demand, so a poll after one task change reads the index heads, not every task; and the answer
 * (body and ETag) is the same whichever container gives it, so 304s hold across containers.
 */
import { randomUUID } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SnapshotEvent } from "#core/api.js";
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
import { type ApiDeps, type ApiResponse, dashboardApi } from "./api.js";

const useStore = useDynaliteStore("dashpoll");
const USER = "admin@example.com";
let objectsDir: string;
let deps: Omit<ApiDeps, "store">;

beforeAll(async () => {
  const { store, engine } = useStore();
  objectsDir = await mkdtemp(join(tmpdir(), "spawn-dash-poll-"));
  deps = {
    teams: new DynamoTeamStore(engine.client, store.tables.sweeps.replace(/sweeps$/, "")),
    objects: new FileObjectStore(objectsDir),
    clock: systemClock,
    log: createLogger({}, () => undefined),
  };
});
afterAll(async () => {
  await rm(objectsDir, { recursive: true, force: true });
});

/** One Lambda container: its own API instance (and pollers) over the shared tables, its store calls counted. */
function container() {
  const counted = countingStore(useStore().store);
  const api = dashboardApi({ ...deps, store: counted.store });
  const poll = (sweepId: string, etag?: string): Promise<ApiResponse> =>
    api({
      method: "GET",
      path: `/api/sweeps/${sweepId}/poll`,
      query: new URLSearchParams(),
      headers: etag ? { "if-none-match": etag } : {},
      user: USER,
    });
  return { counted, poll };
}

async function launch(tasks: number): Promise<SweepRecord> {
  const { store } = useStore();
  const spec = parseSpec({
    name: "poll",
    command: "echo {{i}}",
    params: { grid: { i: Array.from({ length: tasks }, (_, i) => i) } },
  });
  return createSweep(
    { store, clock: systemClock },
    {
      sweepId: `aws-${randomUUID().slice(0, 8)}`,
      spec,
      tasks: expandParams(spec.params, spec.repeat),
      owner: "someone",
      provider: "aws",
    },
  );
}

describe("GET /api/sweeps/:id/poll", () => {
  it("reads every task on a container's first poll, then only the index heads after one task changes", async () => {
    // Given: a 600-task sweep (2 shards), polled once by a container
    const sweep = await launch(600);
    const a = container();
    const first = await a.poll(sweep.sweepId);
    expect(first.status).toBe(200);
    expect(a.counted.count("listTasks")).toBe(1);
    a.counted.reset();

    // When: an agent claims one task, and the page polls with its ETag
    const now = Date.now();
    await useStore().store.updateTask(
      sweep.sweepId,
      7,
      sweep.shardCount,
      { status: "pending" },
      {
        status: "running",
        attempt: 1,
        leaseOwner: "i-1",
        leaseExpiresAt: now + 60_000,
        startedAt: now,
        updatedAt: now,
      },
    );
    const second = await a.poll(sweep.sweepId, first.headers.etag);

    // Then: the change is there, read with the small queries of one tick (no task query of a shard)
    expect(second.status).toBe(200);
    expect(SnapshotEvent.parse(JSON.parse(second.body as string)).states[7]).toBe("r");
    const reads = a.counted.calls.map((c) => c.method);
    expect(reads).not.toContain("listTasks");
    expect(reads.filter((m) => m === "listPendingTasks" || m === "listRunningTasks")).toHaveLength(
      2 * sweep.shardCount,
    );
    expect(reads.filter((m) => m === "getTask")).toEqual([]);
  });

  it("answers the same body and ETag from another container, and 304 to that ETag in both", async () => {
    // Given: a sweep with a running task, polled by one container before and after the change
    const sweep = await launch(40);
    const a = container();
    const b = container();
    const before = await a.poll(sweep.sweepId);
    const now = Date.now();
    await useStore().store.updateTask(
      sweep.sweepId,
      3,
      sweep.shardCount,
      { status: "pending" },
      {
        status: "running",
        attempt: 1,
        leaseOwner: "i-1",
        leaseExpiresAt: now + 60_000,
        startedAt: now,
        updatedAt: now,
      },
    );
    const fromA = await a.poll(sweep.sweepId, before.headers.etag);

    // When: a second container, which never saw the sweep, answers the next poll
    const fromB = await b.poll(sweep.sweepId);

    // Then: byte-identical answers (its seq is 0, not a container's own count), and 304 from either
    expect(fromA.status).toBe(200);
    expect(fromB.body).toBe(fromA.body);
    expect(fromB.headers.etag).toBe(fromA.headers.etag);
    expect(SnapshotEvent.parse(JSON.parse(fromA.body as string)).seq).toBe(0);
    for (const c of [a, b]) {
      const unchanged = await c.poll(sweep.sweepId, fromA.headers.etag);
      expect(unchanged.status).toBe(304);
      expect(unchanged.body).toBe("");
    }
  });
});
