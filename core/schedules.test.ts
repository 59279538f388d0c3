import { describe, expect, it } from "vitest";
import {
  nextRunAfter,
  parseTrigger,
  planDue,
  ScheduleError,
  type ScheduleRecord,
  toSchedulerExpression,
} from "./schedules.js";

const iso = (ms: number | undefined) => (ms === undefined ? undefined : new Date(ms).toISOString());

function schedule(
  trigger: ReturnType<typeof parseTrigger>,
  extra: Partial<ScheduleRecord> = {},
): ScheduleRecord {
  return {
    scheduleId: "sch-x",
    name: "x",
    owner: "me",
    provider: "local",
    trigger,
    state: "enabled",
    specKey: "schedules/sch-x/spec.json",
    bundle: { key: "bundles/x.tgz", sha256: "x", bytes: 1 },
    executions: 0,
    missed: 0,
    createdAt: Date.parse("2026-01-01T00:00:00Z"),
    updatedAt: 0,
    ...extra,
  };
}

/** Every firing in [from, to). */
function firings(s: ScheduleRecord, from: string, to: string): string[] {
  const out: string[] = [];
  let at = nextRunAfter(s, Date.parse(from) - 1);
  while (at !== undefined && at < Date.parse(to)) {
    out.push(iso(at)!);
    at = nextRunAfter(s, at);
  }
  return out;
}

describe("parseTrigger", () => {
  it("needs exactly one of --at, --cron, --rate", () => {
    expect(() => parseTrigger({})).toThrow(/one of --at, --cron or --rate/);
    expect(() => parseTrigger({ cron: "* * * * *", rate: "1h" })).toThrow(/only one .*--cron, --rate/);
  });

  it("rejects a bad cron with the expression and the field", () => {
    const error = (() => {
      try {
        parseTrigger({ cron: "61 * * * *" });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ScheduleError);
    expect((error as Error).message).toMatch(/--cron "61 \* \* \* \*".*minute/);
    expect((error as ScheduleError).exitCode).toBe(2);
    expect(() => parseTrigger({ cron: "0 2 * *" })).toThrow(/expected 5 fields .* got 4/);
  });

  it("rejects an unknown time zone by name", () => {
    expect(() => parseTrigger({ cron: "0 2 * * *", timezone: "Mars/Olympus" })).toThrow(
      /--timezone "Mars\/Olympus" is not an IANA time zone/,
    );
  });

  it("reads --rate as whole minutes of at least one", () => {
    expect(parseTrigger({ rate: "6h" }).periodMs).toBe(6 * 3_600_000);
    expect(() => parseTrigger({ rate: "30s" })).toThrow(/whole number of minutes, at least 1m/);
    expect(() => parseTrigger({ rate: "soon" })).toThrow(/--rate "soon"/);
  });

  it("reads --at in the time zone unless it carries an offset", () => {
    expect(iso(parseTrigger({ at: "2026-07-01T09:00", timezone: "Europe/Paris" }).at)).toBe(
      "2026-07-01T07:00:00.000Z",
    );
    expect(iso(parseTrigger({ at: "2026-01-15T09:00:00", timezone: "America/New_York" }).at)).toBe(
      "2026-01-15T14:00:00.000Z",
    );
    expect(iso(parseTrigger({ at: "2026-07-01T09:00:00Z", timezone: "Europe/Paris" }).at)).toBe(
      "2026-07-01T09:00:00.000Z",
    );
    expect(() => parseTrigger({ at: "2026-02-30T09:00" })).toThrow(/not a valid date/);
    expect(() => parseTrigger({ at: "tomorrow" })).toThrow(/not an ISO-8601/);
  });
});

describe("nextRunAfter across daylight-saving changes", () => {
  it("fires a time inside the skipped hour once, at the jump (spring forward)", () => {
    // Europe/Paris, 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist.
    const s = schedule(parseTrigger({ cron: "30 2 * * *", timezone: "Europe/Paris" }));
    expect(firings(s, "2026-03-28T00:00:00Z", "2026-03-31T00:00:00Z")).toEqual([
      "2026-03-28T01:30:00.000Z", // 02:30 CET
      "2026-03-29T01:00:00.000Z", // 03:00 CEST, the first instant after the skipped 02:30
      "2026-03-30T00:30:00.000Z", // 02:30 CEST
    ]);
  });

  it("fires a time that occurs twice only once (fall back)", () => {
    // Europe/Paris, 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
    const s = schedule(parseTrigger({ cron: "30 2 * * *", timezone: "Europe/Paris" }));
    expect(firings(s, "2026-10-24T00:00:00Z", "2026-10-27T00:00:00Z")).toEqual([
      "2026-10-24T00:30:00.000Z",
      "2026-10-25T00:30:00.000Z",
      "2026-10-26T01:30:00.000Z",
    ]);
  });

  it("keeps an hourly cron one hour apart in real time through both changes", () => {
    const s = schedule(parseTrigger({ cron: "0 * * * *", timezone: "America/New_York" }));
    for (const [from, to] of [
      ["2026-03-08T04:00:00Z", "2026-03-08T10:00:00Z"],
      ["2026-11-01T03:00:00Z", "2026-11-01T09:00:00Z"],
    ] as const) {
      const times = firings(s, from, to).map((t) => Date.parse(t));
      expect(times).toHaveLength(6);
      for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBe(3_600_000);
    }
  });

  it("runs rate schedules at createdAt + k·period, and stops at endAt", () => {
    const s = schedule(parseTrigger({ rate: "6h" }), { endAt: Date.parse("2026-01-02T00:00:00Z") });
    expect(firings(s, "2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z")).toEqual([
      "2026-01-01T06:00:00.000Z",
      "2026-01-01T12:00:00.000Z",
      "2026-01-01T18:00:00.000Z",
    ]);
  });

  it("fires an at schedule once", () => {
    const s = schedule(parseTrigger({ at: "2026-05-01T10:00:00Z" }));
    expect(iso(nextRunAfter(s, 0))).toBe("2026-05-01T10:00:00.000Z");
    expect(nextRunAfter(s, Date.parse("2026-05-01T10:00:00Z"))).toBeUndefined();
  });
});

describe("planDue", () => {
  const hourly = (nextRunAt: string) =>
    schedule(parseTrigger({ cron: "0 * * * *" }), { nextRunAt: Date.parse(nextRunAt) });

  it("fires a firing within the grace period", () => {
    const plan = planDue(hourly("2026-02-01T10:00:00Z"), Date.parse("2026-02-01T10:00:30Z"), 120_000);
    expect(iso(plan.fire)).toBe("2026-02-01T10:00:00.000Z");
    expect(plan.missed).toEqual([]);
    expect(iso(plan.nextRunAt)).toBe("2026-02-01T11:00:00.000Z");
  });

  it("reports firings older than the grace as missed and never runs them late", () => {
    // Down from 10:00 to 13:30: 10, 11, 12, 13 o'clock were missed; nothing fires now.
    const plan = planDue(hourly("2026-02-01T10:00:00Z"), Date.parse("2026-02-01T13:30:00Z"), 120_000);
    expect(plan.fire).toBeUndefined();
    expect(plan.missed.map(iso)).toEqual([
      "2026-02-01T10:00:00.000Z",
      "2026-02-01T11:00:00.000Z",
      "2026-02-01T12:00:00.000Z",
      "2026-02-01T13:00:00.000Z",
    ]);
    expect(plan.missedCount).toBe(4);
    expect(iso(plan.nextRunAt)).toBe("2026-02-01T14:00:00.000Z");
  });

  it("records at most 100 missed firings one by one but counts them all", () => {
    const s = schedule(parseTrigger({ cron: "* * * * *" }), {
      nextRunAt: Date.parse("2026-02-01T00:00:00Z"),
    });
    const plan = planDue(s, Date.parse("2026-02-01T10:00:00Z"), 0);
    expect(plan.missed).toHaveLength(100);
    expect(plan.missedCount).toBe(600);
    expect(iso(plan.fire)).toBe("2026-02-01T10:00:00.000Z");
  });
});

describe("toSchedulerExpression", () => {
  it("writes at() in the schedule's zone", () => {
    expect(toSchedulerExpression(parseTrigger({ at: "2026-07-01T09:00", timezone: "Europe/Paris" }))).toBe(
      "at(2026-07-01T09:00:00)",
    );
  });

  it("writes rate() in the largest whole unit", () => {
    expect(toSchedulerExpression(parseTrigger({ rate: "6h" }))).toBe("rate(6 hours)");
    expect(toSchedulerExpression(parseTrigger({ rate: "1d" }))).toBe("rate(1 day)");
    expect(toSchedulerExpression(parseTrigger({ rate: "90m" }))).toBe("rate(90 minutes)");
  });

  it("writes AWS cron: six fields, ? in one day field, named weekdays", () => {
    expect(toSchedulerExpression(parseTrigger({ cron: "0 2 * * *" }))).toBe("cron(0 2 * * ? *)");
    expect(toSchedulerExpression(parseTrigger({ cron: "30 9 * * 1-5" }))).toBe("cron(30 9 ? * MON-FRI *)");
    expect(toSchedulerExpression(parseTrigger({ cron: "0 0 * * 0,7" }))).toBe("cron(0 0 ? * SUN *)");
    expect(toSchedulerExpression(parseTrigger({ cron: "0 0 1 * *" }))).toBe("cron(0 0 1 * ? *)");
    expect(() => toSchedulerExpression(parseTrigger({ cron: "0 0 1 * 1" }))).toThrow(
      /cannot combine a day of month and a day of week/,
    );
  });
});
