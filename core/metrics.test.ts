import { describe, expect, it } from "vitest";
import { costSoFarUsd, quantile, renderPrometheus, summarySamples, sweepMetricFamilies } from "./metrics.js";
import type { InstanceRecord } from "./model.js";

describe("renderPrometheus", () => {
  it("writes HELP and TYPE once per family and escapes label values", () => {
    const text = renderPrometheus([
      {
        name: "spawn_tasks",
        help: "Tasks by state.\nSecond line \\ here",
        type: "gauge",
        samples: [
          { labels: { sweep: 'a"b\\c\nd', state: "running" }, value: 3 },
          { labels: { sweep: "x", state: "failed" }, value: Number.NaN },
        ],
      },
    ]);
    expect(text).toBe(
      [
        "# HELP spawn_tasks Tasks by state.\\nSecond line \\\\ here",
        "# TYPE spawn_tasks gauge",
        'spawn_tasks{sweep="a\\"b\\\\c\\nd",state="running"} 3',
        'spawn_tasks{sweep="x",state="failed"} NaN',
        "",
      ].join("\n"),
    );
  });

  it("refuses names without the spawn_ prefix and bad label names", () => {
    expect(() => renderPrometheus([{ name: "tasks", help: "", type: "gauge", samples: [] }])).toThrow(
      /spawn_/,
    );
    expect(() =>
      renderPrometheus([
        { name: "spawn_x", help: "", type: "gauge", samples: [{ labels: { "a-b": "1" }, value: 1 }] },
      ]),
    ).toThrow(/label name/);
  });
});

describe("summaries", () => {
  it("uses nearest-rank quantiles and reports seconds", () => {
    expect(quantile([1, 2, 3, 4], 0.5)).toBe(2);
    expect(quantile([1, 2, 3, 4], 0.99)).toBe(4);
    expect(quantile([], 0.5)).toBeNaN();
    const samples = summarySamples({ sweep: "s" }, [2000, 1000, 3000]);
    expect(samples).toEqual([
      { labels: { sweep: "s", quantile: "0.5" }, value: 2 },
      { labels: { sweep: "s", quantile: "0.9" }, value: 3 },
      { labels: { sweep: "s", quantile: "0.99" }, value: 3 },
      { labels: { sweep: "s" }, value: 6, suffix: "_sum" },
      { labels: { sweep: "s" }, value: 3, suffix: "_count" },
    ]);
  });
});

describe("costSoFarUsd", () => {
  const placement = {
    instanceType: "g5.xlarge",
    region: "us-east-1",
    market: "spot" as const,
    pricePerHour: 0.5,
    priceSource: "test",
  };
  const instance = (extra: Partial<InstanceRecord>): InstanceRecord => ({
    sweepId: "s",
    instanceId: "i",
    provider: "aws",
    status: "running",
    slots: 1,
    launchedAt: 0,
    deadline: 10 * 3_600_000,
    ...extra,
  });
  it("multiplies run time by the price paid, up to termination or now", () => {
    const h = 3_600_000;
    expect(
      costSoFarUsd(
        [
          instance({ placement, launchedAt: 0, status: "terminated", terminatedAt: 2 * h }),
          instance({ placement, launchedAt: h }),
        ],
        3 * h,
      ),
    ).toBe(2);
  });
  it("is unknown, not zero, when no instance carries a price", () => {
    expect(costSoFarUsd([instance({ status: "terminated", terminatedAt: 1 })], 2)).toBeUndefined();
  });
});

describe("sweepMetricFamilies", () => {
  it("labels every sample with its sweep and leaves cost out when unknown", () => {
    const families = sweepMetricFamilies([
      {
        sweepId: "s1",
        counts: { pending: 1, running: 2, succeeded: 3, failed: 0, cancelled: 0 },
        claimLatenciesMs: [100],
        launchLatenciesMs: [],
        retries: 4,
        preemptions: 1,
        instancesByStatus: { running: 2 },
        costUsd: undefined,
      },
    ]);
    const text = renderPrometheus(families);
    expect(text).toContain('spawn_tasks{sweep="s1",state="running"} 2');
    expect(text).toContain('spawn_task_retries_total{sweep="s1"} 4');
    expect(text).toContain('spawn_preemptions_total{sweep="s1"} 1');
    expect(text).toContain('spawn_instances{sweep="s1",status="running"} 2');
    expect(text).toContain('spawn_task_claim_latency_seconds{sweep="s1",quantile="0.5"} 0.1');
    expect(text).toContain('spawn_instance_launch_latency_seconds_count{sweep="s1"} 0');
    expect(text).not.toMatch(/^spawn_cost_usd\{/m);
  });
});
