import { describe, expect, test } from "vitest";
import {
  budgetCheck,
  committedCost,
  costReport,
  DEFAULT_ASSUMPTIONS,
  estimateSweep,
  expectedEndAt,
  launchesWithinBudget,
  spentSoFar,
} from "./cost.js";
import type { InstanceRecord } from "./model.js";
import type { RankedOffer } from "./placement.js";
import { parseSpec, type SweepSpecInput } from "./spec.js";

const HOUR = 3_600_000;
const T0 = 1_800_000_000_000;

function instance(
  id: string,
  fields: Partial<InstanceRecord> & { price?: number; region?: string; type?: string } = {},
): InstanceRecord {
  const { price, region, type, ...rest } = fields;
  return {
    sweepId: "s1",
    instanceId: id,
    provider: price === undefined ? "local" : "aws",
    status: "running",
    slots: 1,
    launchedAt: T0,
    deadline: T0 + 10 * HOUR,
    ...(price !== undefined
      ? {
          placement: {
            instanceType: type ?? "g5.xlarge",
            region: region ?? "us-east-1",
            market: "spot" as const,
            pricePerHour: price,
            priceSource: "test",
          },
        }
      : {}),
    ...rest,
  };
}

describe("spent and committed", () => {
  test("spent is run time × price paid: terminated ones until they ended, live ones until now", () => {
    const instances = [
      instance("a", { price: 2, status: "terminated", terminatedAt: T0 + HOUR / 2 }),
      instance("b", { price: 1, launchedAt: T0 + HOUR }),
      instance("local", {}),
    ];
    expect(spentSoFar(instances, T0 + 3 * HOUR)).toBeCloseTo(2 * 0.5 + 1 * 2, 10);
  });

  test("committed counts live priced instances until their deadline, or the expected end if earlier", () => {
    const instances = [
      instance("a", { price: 2 }),
      instance("b", { price: 1, deadline: T0 + 2 * HOUR }),
      instance("c", { price: 5, status: "terminated", terminatedAt: T0 }),
    ];
    const now = T0 + HOUR;
    expect(committedCost(instances, now)).toBeCloseTo(2 * 9 + 1 * 1, 10);
    expect(committedCost(instances, now, { expectedEndAt: now + HOUR / 2 })).toBeCloseTo(2 * 0.5 + 0.5, 10);
    // An instance past its deadline commits nothing more (the reaper ends it)
    expect(committedCost([instance("d", { price: 1, deadline: T0 })], now)).toBe(0);
  });

  test("expected end counts whole waves of the open work", () => {
    expect(expectedEndAt(T0, { openTasks: 10, instances: 2, slots: 4, taskMs: HOUR })).toBe(T0 + 2 * HOUR);
    expect(expectedEndAt(T0, { openTasks: 8, instances: 2, slots: 4, taskMs: HOUR })).toBe(T0 + HOUR);
  });
});

describe("budget", () => {
  test("reached when spent plus committed meets the budget; launches stop", () => {
    // Given one $2/h instance, 1 h in, 9 h to its deadline: $2 spent, $18 committed
    const instances = [instance("a", { price: 2 })];
    const now = T0 + HOUR;
    // Then a $20 budget is reached, and nothing more may launch
    const at20 = budgetCheck(20, instances, now);
    expect(at20).toEqual({ budget: 20, spent: 2, committed: 18, remaining: 0, reached: true });
    expect(launchesWithinBudget(at20, 1, HOUR)).toBe(0);
    // And a $30 budget has $10 left: three more $3 commitments fit, not four
    const at30 = budgetCheck(30, instances, now);
    expect(at30.reached).toBe(false);
    expect(launchesWithinBudget(at30, 3, HOUR)).toBe(3);
  });

  test("an expected end earlier than the deadlines frees budget for launches", () => {
    const instances = [instance("a", { price: 2 })];
    const check = budgetCheck(30, instances, T0 + HOUR, { expectedEndAt: T0 + 2 * HOUR });
    expect(check).toMatchObject({ spent: 2, committed: 2, remaining: 26 });
    expect(launchesWithinBudget(check, 2, HOUR)).toBe(13);
  });
});

describe("costReport", () => {
  const now = T0 + 2 * HOUR;
  const instances = [
    instance("a", { price: 1, region: "us-east-1", type: "g5.xlarge" }),
    instance("b", { price: 3, region: "us-west-2", type: "g5.xlarge", sweepId: "s2" }),
    instance("c", {
      price: 2,
      region: "us-east-1",
      type: "g6.xlarge",
      status: "terminated",
      terminatedAt: T0 + HOUR,
    }),
    instance("local-1", {}),
  ];

  test("groups by region with totals; unpriced local agents are counted and cost nothing", () => {
    expect(costReport(instances, now, "region")).toEqual({
      total: 2 + 6 + 2,
      hours: 7,
      instances: 4,
      unpriced: 1,
      lines: [
        { key: "us-west-2", instances: 1, hours: 2, cost: 6 },
        { key: "us-east-1", instances: 2, hours: 3, cost: 4 },
        { key: "local", instances: 1, hours: 2, cost: 0 },
      ],
    });
  });

  test("groups by type and by sweep", () => {
    expect(costReport(instances, now, "type").lines.map((l) => [l.key, l.cost])).toEqual([
      ["g5.xlarge", 8],
      ["g6.xlarge", 2],
      ["local", 0],
    ]);
    expect(costReport(instances, now, "sweep").lines.map((l) => [l.key, l.cost])).toEqual([
      ["s2", 6],
      ["s1", 4],
    ]);
  });
});

describe("estimateSweep", () => {
  const ranked = (price: number, slots: number, market: "spot" | "on-demand" = "spot"): RankedOffer[] => [
    {
      instanceType: "g5.12xlarge",
      region: "us-east-1",
      az: "use1-az1",
      gpuName: "A10G",
      gpus: 4,
      vcpus: 48,
      memoryGiB: 192,
      arch: "x86_64",
      market,
      pricePerHour: price,
      priceSource: "test",
      slots,
      pricePerSlotHour: price / slots,
    },
  ];
  const spec = (s: Partial<SweepSpecInput>) => parseSpec({ name: "t", command: "true", ...s });

  test("best case is tasks × duration ÷ slots at the cheapest price", () => {
    // Given 10 one-hour tasks, 4 slots per $2/h instance, on-demand, no retries
    const e = estimateSweep(spec({ timeout: "1h", max_instances: 2 }), 10, ranked(2, 4, "on-demand"));
    // Then best: 2.5 instance-hours, $5
    expect(e.best).toEqual({ instanceHours: 2.5, cost: 5 });
    expect(e).toMatchObject({ tasks: 10, slots: 4, instances: 2, taskMs: HOUR, taskMsFrom: "timeout" });
    // And expected: 3 whole instance-waves of 1 h (10 tasks on 4 slots), plus a 3-minute boot
    // and the 5-minute idle_timeout for each of the 2 instances
    expect(e.expected.instanceHours).toBeCloseTo(3 + 2 * 0.05 + (2 * 5) / 60, 10);
    expect(e.expected.cost).toBeCloseTo(2 * e.expected.instanceHours, 10);
  });

  test("expected adds retries and spot interruptions per the stated assumptions", () => {
    // Given 8 tasks of 1 h, up to 3 attempts, on spot, one slot per instance, 8 instances
    const e = estimateSweep(
      spec({ timeout: "1h", max_instances: 8, retry: { max_attempts: 3 } }),
      8,
      ranked(1, 1),
    );
    // Then with 5% failures each task runs 1 + 0.05 + 0.0025 = 1.0525 attempts: 8.42 one-hour waves;
    // 0.05 interruptions per hour lose half an attempt each: × (1 + 0.05 × 1 / 2) = 8.6305 h of work;
    // boots: 8 + 0.05 × 8.6305 of 3 minutes (0.05 h); idle: 8 × 5 minutes
    expect(DEFAULT_ASSUMPTIONS).toEqual({ failureRate: 0.05, interruptionsPerHour: 0.05, bootMs: 180_000 });
    const work = 8.42 * 1.025;
    expect(e.expected.instanceHours).toBeCloseTo(work + (8 + 0.05 * work) * 0.05 + (8 * 5) / 60, 10);
    expect(e.best).toEqual({ instanceHours: 8, cost: 8 });
    expect(e.expected.cost).toBeGreaterThan(e.best.cost);
  });

  test("without a timeout the duration is bounded by ttl, and an estimate over budget says so", () => {
    const e = estimateSweep(spec({ ttl: "2h", budget: 3 }), 1, ranked(2, 1, "on-demand"));
    expect(e).toMatchObject({ taskMs: 2 * HOUR, taskMsFrom: "ttl", overBudget: 3 });
    expect(e.best.cost).toBe(4);
  });
});

describe("costReport since", () => {
  test("counts only run time after `since`, and leaves out instances that ended before it", () => {
    const instances = [
      instance("old", { price: 4, status: "terminated", terminatedAt: T0 + HOUR }),
      instance("live", { price: 1 }),
    ];
    const report = costReport(instances, T0 + 4 * HOUR, "type", T0 + 2 * HOUR);
    expect(report).toMatchObject({ total: 2, hours: 2, instances: 1 });
  });
});
