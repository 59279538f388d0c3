/**
 * Firing schedules against the real store on dynalite: a firing launches once however often
 * it is delivered, limits complete the schedule, and firings missed while nothing ran are
 * recorded, never run late.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import type { Clock } from "../core/ports.js";
import {
  fireSchedule,
  firingSweepId,
  runDueSchedules,
  type SchedulerDeps,
  storedSpecLauncher,
} from "../core/scheduler.js";
import { nextRunAfter, parseTrigger, type ScheduleRecord, type TriggerInput } from "../core/schedules.js";
import { parseSpec } from "../core/spec.js";
import { encodeSpec } from "../providers/dynamodb/codec.js";
import { DynamoScheduleStore } from "../providers/dynamodb/schedule-store.js";
import type { DynamoStateStore } from "../providers/dynamodb/store.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const T0 = Date.parse("2026-03-01T00:00:00Z");

class TestClock implements Clock {
  constructor(public t = T0) {}
  now() {
    return this.t;
  }
}

const useStore = useDynaliteStore("sch");
let store: DynamoStateStore;
let schedules: DynamoScheduleStore;
let objects: FileObjectStore;
let dir: string;
let counter = 0;

beforeAll(async () => {
  const ready = useStore();
  store = ready.store;
  schedules = new DynamoScheduleStore(ready.engine.client, ready.store.tables.sweeps.replace(/sweeps$/, ""));
  dir = await mkdtemp(join(tmpdir(), "spawn-sched-"));
  objects = new FileObjectStore(dir);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function makeSchedule(
  trigger: TriggerInput,
  extra: Partial<ScheduleRecord> = {},
): Promise<ScheduleRecord> {
  const scheduleId = `sch-test-${++counter}`;
  const spec = parseSpec({
    name: `nightly-${counter}`,
    command: "echo {{x}}",
    params: { list: [{ x: 1 }, { x: 2 }] },
  });
  const specKey = `schedules/${scheduleId}/spec.json`;
  await objects.putBytes(specKey, encodeSpec(spec));
  const draft: ScheduleRecord = {
    scheduleId,
    name: spec.name,
    owner: "tester",
    provider: "local",
    trigger: parseTrigger(trigger),
    state: "enabled",
    specKey,
    bundle: { key: "bundles/none.tgz", sha256: "0".repeat(64), bytes: 0 },
    executions: 0,
    missed: 0,
    createdAt: T0,
    updatedAt: T0,
    ...extra,
  };
  const schedule = { ...draft, nextRunAt: nextRunAfter(draft, T0) };
  await schedules.createSchedule(schedule);
  return schedule;
}

function deps(clock: Clock): SchedulerDeps {
  return { schedules, clock, launcher: storedSpecLauncher({ store, objects, clock }) };
}

describe("fireSchedule", () => {
  test("launches the stored spec once, however often the firing is delivered", async () => {
    const s = await makeSchedule({ cron: "0 2 * * *" });
    const clock = new TestClock(s.nextRunAt! + 1_000);
    const first = await fireSchedule(deps(clock), s.scheduleId, s.nextRunAt!);
    const again = await Promise.all([
      fireSchedule(deps(clock), s.scheduleId, s.nextRunAt!),
      fireSchedule(deps(clock), s.scheduleId, s.nextRunAt!),
    ]);
    expect(first).toEqual({ outcome: "launched", sweepId: firingSweepId(s, s.nextRunAt!) });
    expect(again.map((r) => r.outcome)).toEqual(["duplicate", "duplicate"]);

    const sweep = await store.getSweep(first.sweepId!);
    expect(sweep).toMatchObject({ status: "running", taskCount: 2, owner: "tester", name: s.name });
    const after = await schedules.getSchedule(s.scheduleId);
    expect(after).toMatchObject({ executions: 1, lastSweepId: first.sweepId, state: "enabled" });
    expect(after!.nextRunAt).toBe(nextRunAfter(s, s.nextRunAt!));
    const history = await schedules.listFirings(s.scheduleId);
    expect(history).toHaveLength(1);
    expect(history[0]).toMatchObject({ status: "launched", sweepId: first.sweepId, firedAt: s.nextRunAt });
  });

  test("a team's schedule launches into that team; a user's into default", async () => {
    const clock = new TestClock();
    const team = await makeSchedule({ rate: "1h" }, { owner: "team:vision" });
    const own = await makeSchedule({ rate: "1h" });
    clock.t = team.nextRunAt!;
    const fired = await fireSchedule(deps(clock), team.scheduleId, team.nextRunAt!);
    clock.t = own.nextRunAt!;
    const mine = await fireSchedule(deps(clock), own.scheduleId, own.nextRunAt!);
    expect((await store.getSweep(fired.sweepId!))?.team).toBe("vision");
    expect((await store.getSweep(mine.sweepId!))?.team).toBe("default");
  });

  test("a launcher that crashed after creating the sweep is not a second sweep", async () => {
    const s = await makeSchedule({ rate: "1h" });
    const clock = new TestClock(s.nextRunAt!);
    // The sweep of this firing exists already (an earlier delivery died before recording it).
    await storedSpecLauncher({ store, objects, clock }).launch(
      s,
      firingSweepId(s, s.nextRunAt!),
      "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    );
    const result = await fireSchedule(deps(clock), s.scheduleId, s.nextRunAt!);
    expect(result.outcome).toBe("launched");
    expect(
      (await store.listSweeps({ owner: "tester", limit: 100 })).filter((w) => w.sweepId === result.sweepId),
    ).toHaveLength(1);
  });

  test("completes after max executions and skips firings after that", async () => {
    const s = await makeSchedule({ rate: "1h" }, { maxExecutions: 2 });
    const clock = new TestClock();
    const times = [s.nextRunAt!, s.nextRunAt! + 3_600_000, s.nextRunAt! + 7_200_000];
    const outcomes = [];
    for (const t of times) {
      clock.t = t;
      outcomes.push((await fireSchedule(deps(clock), s.scheduleId, t)).outcome);
    }
    expect(outcomes).toEqual(["launched", "launched", "skipped"]);
    const after = await schedules.getSchedule(s.scheduleId);
    expect(after).toMatchObject({ state: "completed", executions: 2, reason: "max executions (2) reached" });
    expect(after!.nextRunAt).toBeUndefined();
    expect(await schedules.listDueSchedules(Number.MAX_SAFE_INTEGER)).not.toContainEqual(
      expect.objectContaining({ scheduleId: s.scheduleId }),
    );
    const history = await schedules.listFirings(s.scheduleId);
    expect(history.map((f) => f.status)).toEqual(["skipped", "launched", "launched"]);
  });

  test("a failed launch is recorded with its error and the schedule goes on", async () => {
    const s = await makeSchedule({ rate: "1h" });
    await rm(join(dir, ...s.specKey.split("/")));
    const clock = new TestClock(s.nextRunAt!);
    const result = await fireSchedule(deps(clock), s.scheduleId, s.nextRunAt!);
    expect(result.outcome).toBe("failed");
    expect(result.error).toMatch(/spec .* is missing/);
    const [firing] = await schedules.listFirings(s.scheduleId);
    expect(firing).toMatchObject({ status: "failed", error: result.error });
    const after = await schedules.getSchedule(s.scheduleId);
    expect(after).toMatchObject({ state: "enabled", executions: 0 });
    expect(after!.reason).toMatch(/last firing failed/);
  });

  test("a paused schedule's firing launches nothing", async () => {
    const s = await makeSchedule({ rate: "1h" });
    await schedules.updateSchedule(s.scheduleId, { state: "enabled" }, { state: "paused", updatedAt: T0 });
    const result = await fireSchedule(deps(new TestClock(s.nextRunAt!)), s.scheduleId, s.nextRunAt!);
    expect(result).toEqual({ outcome: "skipped", error: "the schedule is paused" });
    expect((await schedules.getSchedule(s.scheduleId))!.state).toBe("paused");
  });
});

describe("runDueSchedules (the embedded scheduler)", () => {
  test("fires what is due within the grace, once, even with two passes at the same time", async () => {
    const s = await makeSchedule({ rate: "30m" });
    const clock = new TestClock(s.nextRunAt! + 5_000);
    const passes = await Promise.all([
      runDueSchedules(deps(clock), 60_000),
      runDueSchedules(deps(clock), 60_000),
    ]);
    const fired = passes.flatMap((p) => p.fired).filter((f) => f.sweepId?.startsWith(s.name));
    expect(fired).toHaveLength(1);
    expect(fired[0]!.outcome).toBe("launched");
    expect((await schedules.getSchedule(s.scheduleId))!.nextRunAt).toBe(s.nextRunAt! + 1_800_000);
  });

  test("records firings missed while it was down and does not run them late", async () => {
    const s = await makeSchedule({ rate: "1h" });
    // Down for 3.5 hours past the first firing.
    const clock = new TestClock(s.nextRunAt! + 3.5 * 3_600_000);
    const pass = await runDueSchedules(deps(clock), 60_000);
    expect(pass.missed).toContainEqual({ scheduleId: s.scheduleId, count: 4 });
    expect(pass.fired.filter((f) => f.sweepId?.startsWith(s.name))).toEqual([]);
    const history = await schedules.listFirings(s.scheduleId);
    expect(history.map((f) => f.status)).toEqual(["missed", "missed", "missed", "missed"]);
    expect(history[0]!.error).toMatch(/not run late/);
    const after = await schedules.getSchedule(s.scheduleId);
    expect(after).toMatchObject({ missed: 4, executions: 0, state: "enabled" });
    expect(after!.nextRunAt).toBe(s.nextRunAt! + 4 * 3_600_000);
  });

  test("an at schedule fires once and completes", async () => {
    const at = new Date(T0 + 600_000).toISOString();
    const s = await makeSchedule({ at });
    const clock = new TestClock(T0 + 601_000);
    const pass = await runDueSchedules(deps(clock), 60_000);
    expect(pass.fired.filter((f) => f.sweepId?.startsWith(s.name)).map((f) => f.outcome)).toEqual([
      "launched",
    ]);
    expect(await schedules.getSchedule(s.scheduleId)).toMatchObject({
      state: "completed",
      executions: 1,
      reason: "fired once",
    });
    clock.t += 3_600_000;
    const later = await runDueSchedules(deps(clock), 60_000);
    expect(later.fired.filter((f) => f.sweepId?.startsWith(s.name))).toEqual([]);
  });
});
