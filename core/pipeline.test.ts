import { describe, expect, test } from "vitest";
import type { SweepRecord, TaskRecord } from "./model.js";
import { PipelineError, parsePipeline, pipelineOutcome, stageGate, stageOrder } from "./pipeline.js";

const stage = (name: string, depends_on: unknown[] = [], kind: "sweep" | "queue" = "sweep") => ({
  name,
  [kind]: `${name}.yaml`,
  depends_on,
});

describe("parsePipeline", () => {
  test("a string dependency is whole-stage; stages order after their inputs", () => {
    const p = parsePipeline({
      name: "p",
      stages: [
        stage("eval", [{ stage: "train", type: "n_to_n" }]),
        stage("train", ["prep"]),
        stage("prep", [], "queue"),
      ],
    });
    expect(p.stages[1]!.depends_on).toEqual([{ stage: "prep", type: "whole" }]);
    expect(stageOrder(p)).toEqual(["prep", "train", "eval"]);
  });

  test.each([
    [
      { name: "p", stages: [{ name: "a", sweep: "a.yaml", queue: "q.yaml" }] },
      "stages[0]: a stage has exactly one of sweep or queue",
    ],
    [{ name: "p", stages: [stage("a"), stage("a")] }, 'stages[1].name: duplicate stage "a" (also stages[0])'],
    [{ name: "p", stages: [stage("a", ["a"])] }, "stages[0].depends_on[0]: stage a depends on itself"],
    [
      { name: "p", stages: [stage("a", [{ stage: "q", type: "n_to_n" }]), stage("q", [], "queue")] },
      "n_to_n links two sweeps",
    ],
    [
      { name: "p", stages: [stage("a", ["b"]), stage("b", ["a"])] },
      "stages[0].depends_on: dependency cycle: a → b → a",
    ],
  ])("refuses %j naming the field", (raw, message) => {
    expect(() => parsePipeline(raw)).toThrow(PipelineError);
    expect(() => parsePipeline(raw)).toThrow(message);
  });
});

const task = (index: number, status: TaskRecord["status"]) => ({ index, status }) as TaskRecord;
type Upstream = { sweep: Pick<SweepRecord, "status">; tasks?: TaskRecord[] };

describe("stageGate", () => {
  const inputs = [
    { stage: "prep", sweepId: "s-prep", type: "whole" as const },
    { stage: "train", sweepId: "s-train", type: "n_to_n" as const },
  ];
  test("closed until the whole-stage input succeeded; then task by task for n_to_n", () => {
    const train = {
      sweep: { status: "running" as const },
      tasks: [task(0, "succeeded"), task(1, "running"), task(2, "failed")],
    };
    const running = stageGate(
      inputs,
      new Map<string, Upstream>([
        ["s-prep", { sweep: { status: "running" as const } }],
        ["s-train", train],
      ]),
    );
    expect(running.fail).toBeUndefined();
    expect(running.verdict(0)).toBe("closed");
    const done = stageGate(
      inputs,
      new Map<string, Upstream>([
        ["s-prep", { sweep: { status: "succeeded" as const } }],
        ["s-train", train],
      ]),
    );
    expect([0, 1].map(done.verdict)).toEqual(["open", "closed"]);
    expect(done.verdict(2)).toEqual({ cancel: "not run: task 2 of stage train failed" });
  });

  test("a failed whole-stage input fails the stage", () => {
    const gate = stageGate(
      inputs.slice(0, 1),
      new Map([["s-prep", { sweep: { status: "failed" as const } }]]),
    );
    expect(gate.fail).toBe("not run: stage prep failed");
  });
});

test("pipelineOutcome: running until every stage ended; succeeded only if all did", () => {
  expect(
    pipelineOutcome([
      { name: "a", status: "succeeded" },
      { name: "b", status: "running" },
    ]),
  ).toBeUndefined();
  expect(
    pipelineOutcome([
      { name: "a", status: "succeeded" },
      { name: "b", status: "succeeded" },
    ]),
  ).toEqual({
    status: "succeeded",
    reason: "2 stage(s) succeeded",
  });
  expect(
    pipelineOutcome([
      { name: "a", status: "succeeded" },
      { name: "b", status: "cancelled" },
    ]),
  ).toEqual({
    status: "failed",
    reason: "1 of 2 stage(s) succeeded; b cancelled",
  });
});
