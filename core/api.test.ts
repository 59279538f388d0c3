import { describe, expect, it } from "vitest";
import {
  countStates,
  encodeTaskStates,
  formatTraceparent,
  newTraceContext,
  parseTraceparent,
  statusOfCode,
} from "./api.js";

describe("task state encoding", () => {
  it("puts task i's state at character i, pending where no task was given", () => {
    const states = encodeTaskStates(
      [
        { index: 0, status: "succeeded" },
        { index: 2, status: "failed" },
        { index: 3, status: "running" },
        { index: 4, status: "cancelled" },
      ],
      6,
    );
    expect(states).toBe("spfrcp");
    expect(countStates(states)).toEqual({ pending: 2, running: 1, succeeded: 1, failed: 1, cancelled: 1 });
    expect(statusOfCode("f")).toBe("failed");
  });
});

describe("traceparent", () => {
  const counter = () => {
    let n = 0;
    return (size: number) => Uint8Array.from({ length: size }, () => ++n % 256);
  };

  it("round-trips, and a child span keeps the trace id", () => {
    const parent = newTraceContext(counter());
    const header = formatTraceparent(parent);
    expect(header).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    expect(parseTraceparent(header)).toEqual(parent);
    const child = newTraceContext(counter(), parent);
    expect(child.traceId).toBe(parent.traceId);
  });

  it("never makes all-zero ids and rejects malformed headers", () => {
    let calls = 0;
    const zerosFirst = (size: number) =>
      calls++ === 0 ? new Uint8Array(size) : new Uint8Array(size).fill(7);
    expect(newTraceContext(zerosFirst).traceId).toBe("07".repeat(16));
    for (const bad of [
      undefined,
      "",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
      "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x",
      "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    ])
      expect(parseTraceparent(bad)).toBeUndefined();
    expect(parseTraceparent("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")?.sampled).toBe(false);
  });
});
