/** `spawn cost` over real instance records in dynalite: run time × the price recorded at launch. */
import { randomUUID } from "node:crypto";
import { describe, expect, test } from "vitest";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { InstanceRecord, ProviderName, SweepRecord } from "#core/model.js";
import { parseSpec } from "#core/spec.js";
import { useDynaliteStore } from "../../test/helpers/dynamo.js";
import { parseSince, sweepCosts } from "./cost.js";

const HOUR = 3_600_000;
const T0 = 1_800_000_000_000;
const useStore = useDynaliteStore("cost");

async function sweepWith(
  owner: string,
  provider: ProviderName,
  instances: Array<Partial<InstanceRecord> & { price?: number; region?: string }>,
): Promise<string> {
  const { store } = useStore();
  const sweepId = `cost-${randomUUID().slice(0, 8)}`;
  const sweep: SweepRecord = {
    sweepId,
    name: "cost",
    owner,
    provider,
    status: "running",
    active: true,
    spec: parseSpec({ name: "cost", command: "true" }),
    taskCount: 1,
    shardCount: 1,
    launchSeq: instances.length,
    createdAt: T0,
    updatedAt: T0,
  };
  await store.createSweep(sweep);
  for (const [n, { price, region, ...fields }] of instances.entries()) {
    await store.putInstance({
      sweepId,
      instanceId: `${sweepId}-i${n}`,
      provider,
      status: "running",
      slots: 1,
      launchedAt: T0,
      deadline: T0 + 24 * HOUR,
      ...(price !== undefined
        ? {
            placement: {
              instanceType: "g5.xlarge",
              region: region ?? "us-east-1",
              az: "use1-az1",
              market: "spot",
              pricePerHour: price,
              priceSource: "DescribeSpotPriceHistory",
            },
          }
        : {}),
      ...fields,
    });
  }
  return sweepId;
}

describe("sweepCosts", () => {
  test("sums run time × price paid over the owner's sweeps, grouped by region", async () => {
    // Given an owner with an aws sweep of two instances in two regions, one of them ended
    const owner = `o-${randomUUID().slice(0, 6)}`;
    await sweepWith(owner, "aws", [
      { price: 0.5, region: "us-east-1" },
      { price: 2, region: "us-west-2", status: "terminated", terminatedAt: T0 + HOUR },
    ]);
    // When the cost is asked for 3 hours in
    const report = await sweepCosts(useStore().store, { owner, by: "region", now: T0 + 3 * HOUR });
    // Then each region has its own line: $1.50 in us-east-1 (3 h), $2 in us-west-2 (1 h)
    expect(report).toEqual({
      total: 3.5,
      hours: 4,
      instances: 2,
      unpriced: 0,
      sweeps: 1,
      localSweeps: 0,
      lines: [
        { key: "us-west-2", instances: 1, hours: 1, cost: 2 },
        { key: "us-east-1", instances: 1, hours: 3, cost: 1.5 },
      ],
    });
  });

  test("a local sweep costs $0 and is counted as local", async () => {
    const owner = `o-${randomUUID().slice(0, 6)}`;
    const sweepId = await sweepWith(owner, "local", [{}, {}]);
    const report = await sweepCosts(useStore().store, { owner, sweepId, by: "sweep", now: T0 + HOUR });
    expect(report).toMatchObject({ total: 0, instances: 2, unpriced: 2, localSweeps: 1 });
    expect(report.lines).toEqual([{ key: sweepId, instances: 2, hours: 2, cost: 0 }]);
  });

  test("--since leaves out sweeps that finished before it; an unknown sweep is not found", async () => {
    const owner = `o-${randomUUID().slice(0, 6)}`;
    const old = await sweepWith(owner, "aws", [{ price: 1, status: "terminated", terminatedAt: T0 + HOUR }]);
    await useStore().store.updateSweep(old, {}, { status: "succeeded", finishedAt: T0 + HOUR });
    await sweepWith(owner, "aws", [{ price: 1 }]);
    const report = await sweepCosts(useStore().store, {
      owner,
      by: "sweep",
      since: T0 + 2 * HOUR,
      now: T0 + 3 * HOUR,
    });
    expect(report).toMatchObject({ total: 1, sweeps: 1, instances: 1 });
    await expect(
      sweepCosts(useStore().store, { owner, sweepId: "nope", by: "sweep", now: T0 }),
    ).rejects.toBeInstanceOf(NotFoundError);
  });
});

describe("parseSince", () => {
  test("takes a duration back from now, or a date", () => {
    expect(parseSince("7d", T0)).toBe(T0 - 7 * 24 * HOUR);
    expect(parseSince("2026-11-01", T0)).toBe(Date.parse("2026-11-01"));
    expect(() => parseSince("last week", T0)).toThrow(AbortError);
  });
});
