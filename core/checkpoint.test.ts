import { describe, expect, it } from "vitest";
import {
  checkpointId,
  checkpointProgress,
  compareCheckpointIds,
  isTemporaryCheckpointFile,
  manifestIdsNewestFirst,
  manifestKey,
  parseResumeFrom,
} from "./checkpoint.js";
import { AbortError } from "./errors.js";

describe("checkpoint ids and keys", () => {
  it("sort in checkpoint order, as keys and as numbers", () => {
    expect(checkpointId(3, 12)).toBe("0003-000012");
    const keys = ["0002-000010", "0010-000001", "0002-000009"].map((id) => manifestKey("sw", 1, id));
    expect(manifestIdsNewestFirst([...keys, "checkpoints/sw/1/blobs/ab"])).toEqual([
      "0010-000001",
      "0002-000010",
      "0002-000009",
    ]);
    expect(compareCheckpointIds("2-10", "10-1")).toBeLessThan(0);
  });

  it("leave temporary files out", () => {
    expect(["a.tmp", "b.partial", ".c.swp", "d~"].every(isTemporaryCheckpointFile)).toBe(true);
    expect(isTemporaryCheckpointFile("model.pt")).toBe(false);
  });
});

describe("checkpointProgress", () => {
  it("prefers checkpoint.json, else the largest step or epoch in file names", () => {
    expect(checkpointProgress(["step-900.pt"], { step: 200, loss: 1 })).toEqual({ step: 200 });
    expect(checkpointProgress(["ckpt/step_100.pt", "ckpt/step_250.pt", "epoch-3.bin"])).toEqual({
      step: 250,
      epoch: 3,
    });
    expect(checkpointProgress(["model.iter1200"])).toEqual({ step: 1200 });
    expect(checkpointProgress(["weights.bin"], "not an object")).toEqual({});
  });
});

describe("parseResumeFrom", () => {
  it("takes sweep/task and sweep/task/checkpoint, and names a bad value", () => {
    expect(parseResumeFrom("lr-sweep-1/3")).toEqual({ sweepId: "lr-sweep-1", index: 3 });
    expect(parseResumeFrom("lr-sweep-1/3/0002-000004")).toEqual({
      sweepId: "lr-sweep-1",
      index: 3,
      checkpointId: "0002-000004",
    });
    expect(() => parseResumeFrom("lr-sweep-1")).toThrow(AbortError);
    expect(() => parseResumeFrom("a/b/c")).toThrow(/--resume-from must be <sweep-id>\/<task index>/);
  });
});
