import { describe, expect, it } from "vitest";
import { EMF_NAMESPACE, emfLine, emitMetrics } from "./emf.js";

describe("CloudWatch EMF", () => {
  it("prints one JSON line whose _aws envelope names the metrics, units and dimensions", () => {
    const lines: string[] = [];
    emitMetrics(
      [
        { name: "LaunchLatency", value: 1234.5, unit: "Milliseconds" },
        { name: "Preemptions", value: 2, unit: "Count" },
      ],
      { fn: "sweep-orchestrator", event: "sweep" },
      { now: () => 1_700_000_000_000, properties: { sweepId: "s-1" }, write: (l) => lines.push(l) },
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]?.endsWith("\n")).toBe(true);
    const parsed = JSON.parse(lines[0] as string);
    expect(parsed).toEqual({
      _aws: {
        Timestamp: 1_700_000_000_000,
        CloudWatchMetrics: [
          {
            Namespace: EMF_NAMESPACE,
            Dimensions: [["fn", "event"]],
            Metrics: [
              { Name: "LaunchLatency", Unit: "Milliseconds" },
              { Name: "Preemptions", Unit: "Count" },
            ],
          },
        ],
      },
      fn: "sweep-orchestrator",
      event: "sweep",
      sweepId: "s-1",
      LaunchLatency: 1234.5,
      Preemptions: 2,
    });
  });

  it("lets neither properties nor dimensions be overridden by a property of the same name", () => {
    const parsed = JSON.parse(
      emfLine(
        [{ name: "Retries", value: 3, unit: "Count" }],
        { fn: "f" },
        {
          timestamp: 1,
          properties: { fn: "spoofed", Retries: -1 },
        },
      ),
    );
    expect(parsed.fn).toBe("f");
    expect(parsed.Retries).toBe(3);
  });

  it("writes nothing without metrics and refuses values CloudWatch cannot store", () => {
    const lines: string[] = [];
    emitMetrics([], { fn: "f" }, { write: (l) => lines.push(l) });
    expect(lines).toEqual([]);
    expect(() => emfLine([{ name: "X", value: Number.NaN, unit: "None" }], {}, { timestamp: 1 })).toThrow(
      "metric X must be a finite number, got NaN",
    );
  });
});
