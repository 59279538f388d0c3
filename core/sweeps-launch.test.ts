/** The one launch sequence (launchPrepared): prepare, write, tell; and take back on failure. */
import { describe, expect, test } from "vitest";
import type { SweepRecord } from "./model.js";
import { parseSpec } from "./spec.js";
import { type LaunchHooks, launchPrepared, type SweepPreparation } from "./sweeps.js";

const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
const spec = parseSpec({ name: "s", command: "true" });
const prep = (sweepId: string): SweepPreparation => ({
  sweepId,
  spec,
  policyFiles: {},
  bundle: { key: "bundles/x.tar.gz", sha256: "x", bytes: 1 },
});
const record = (sweepId: string) => ({ sweepId }) as SweepRecord;

/** Hooks that log what they are asked, and fail `prepareSweep` for the ids in `refuse`. */
function recorder(refuse: string[] = []) {
  const log: string[] = [];
  const hooks: Required<LaunchHooks> = {
    prepareSweep: async (s) => {
      if (refuse.includes(s.sweepId)) throw new Error(`refused ${s.sweepId}`);
      log.push(`prepare ${s.sweepId}`);
    },
    discardSweep: async (id) => void log.push(`discard ${id}`),
    sweepCreated: async (id, trace) =>
      void log.push(`told ${id} ${trace === TRACE ? "in trace" : "no trace"}`),
  };
  return { hooks, log };
}

describe("launchPrepared", () => {
  test("prepares every sweep before the write, then tells of each prepared one and of the written record", async () => {
    const { hooks, log } = recorder();
    const created = await launchPrepared(hooks, {
      traceparent: TRACE,
      prepare: [prep("stage-a"), prep("stage-b")],
      write: async () => {
        log.push("write");
        return record("pipeline");
      },
    });
    expect(created.sweepId).toBe("pipeline");
    expect(log).toEqual([
      "prepare stage-a",
      "prepare stage-b",
      "write",
      "told stage-a in trace",
      "told stage-b in trace",
      "told pipeline in trace",
    ]);
  });

  test("a refused preparation takes back the earlier ones and writes nothing", async () => {
    const { hooks, log } = recorder(["stage-b"]);
    const launch = launchPrepared(hooks, {
      traceparent: TRACE,
      prepare: [prep("stage-a"), prep("stage-b"), prep("stage-c")],
      write: async () => {
        log.push("write");
        return record("pipeline");
      },
    });
    await expect(launch).rejects.toThrow("refused stage-b");
    expect(log).toEqual(["prepare stage-a", "discard stage-a"]);
  });

  test("a failed write takes back every preparation and tells nothing", async () => {
    const { hooks, log } = recorder();
    const launch = launchPrepared(hooks, {
      traceparent: TRACE,
      prepare: [prep("one")],
      write: async () => {
        throw new Error("table unavailable");
      },
    });
    await expect(launch).rejects.toThrow("table unavailable");
    expect(log).toEqual(["prepare one", "discard one"]);
  });

  test("a write that finds the sweep already created keeps what was prepared and tells nothing", async () => {
    const { hooks, log } = recorder();
    const created = await launchPrepared(hooks, {
      traceparent: TRACE,
      prepare: [prep("one")],
      write: async () => undefined,
    });
    expect(created).toBeUndefined();
    expect(log).toEqual(["prepare one"]);
  });

  test("needs no hooks at all (the embedded control plane)", async () => {
    const created = await launchPrepared(
      {},
      { traceparent: TRACE, prepare: [prep("one")], write: async () => record("one") },
    );
    expect(created.sweepId).toBe("one");
  });
});
