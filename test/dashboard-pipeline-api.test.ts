/**
 * A pipeline through the dashboard API's shared reads (providers/dashboard-routes.ts, served by
 * both the local server and the AWS Lambda) and the local server's poller, on dynalite: the
 * pipeline's detail carries its stages (the graph's nodes and edges), a stage's says which
 * pipeline it belongs to; and what `createPipeline` records for the launch (team, traceparent).
 */
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { SweepDetail, SweepSummary } from "../core/api.js";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createPipeline } from "../core/sweeps.js";
import { SweepPoller } from "../providers/dashboard-poller.js";
import { DashboardReads } from "../providers/dashboard-routes.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const useStore = useDynaliteStore("dp");
const TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

function stage(name: string, size: number, inputs: Array<{ stage: string; type: "whole" | "n_to_n" }>) {
  const spec = parseSpec({
    name: `p-${name}`,
    command: "true",
    params: { list: Array.from({ length: size }, (_, i) => ({ i })) },
  });
  return {
    name,
    inputs,
    sweepId: `p-${name}-${randomUUID().slice(0, 6)}`,
    spec,
    tasks: expandParams(spec.params, spec.repeat),
  };
}

async function threeStages() {
  const { store } = useStore();
  const stages = [
    stage("prep", 1, []),
    stage("train", 2, [{ stage: "prep", type: "whole" }]),
    stage("eval", 2, [{ stage: "train", type: "n_to_n" }]),
  ];
  const pipeline = await createPipeline(
    { store, clock: systemClock },
    {
      pipelineId: `pipe-${randomUUID().slice(0, 6)}`,
      name: "pipe",
      owner: "test",
      provider: "local",
      traceparent: TRACE,
      team: "ml",
      stages,
    },
  );
  return { pipeline, ids: new Map(stages.map((s) => [s.name, s.sweepId])) };
}

describe("a pipeline in the dashboard API", () => {
  it("its detail lists the stages with status, progress and dependencies; a stage's names its pipeline", async () => {
    // Given: a three-stage pipeline whose first stage has finished its one task
    const { store } = useStore();
    const { pipeline, ids } = await threeStages();
    const prep = (await store.getSweep(ids.get("prep")!))!;
    await store.updateTask(
      prep.sweepId,
      0,
      prep.shardCount,
      { status: "pending" },
      { status: "succeeded", updatedAt: Date.now() },
    );
    const reads = new DashboardReads({
      store,
      objects: new FileObjectStore("/nonexistent"),
      clock: systemClock,
    });

    // When: the pipeline's and a stage's details are read, as both servers read them
    const detail = SweepDetail.parse((await reads.snapshot(pipeline.sweepId)).event.sweep);
    const train = SweepDetail.parse((await reads.snapshot(ids.get("train")!)).event.sweep);

    // Then: the pipeline's stages are in file order with their dependencies and open tasks
    expect(detail.stages).toEqual([
      {
        name: "prep",
        sweepId: ids.get("prep"),
        kind: "sweep",
        status: "running",
        taskCount: 1,
        pending: 0,
        running: 0,
        inputs: [],
      },
      {
        name: "train",
        sweepId: ids.get("train"),
        kind: "sweep",
        status: "running",
        taskCount: 2,
        pending: 2,
        running: 0,
        inputs: [{ stage: "prep", type: "whole" }],
      },
      {
        name: "eval",
        sweepId: ids.get("eval"),
        kind: "sweep",
        status: "running",
        taskCount: 2,
        pending: 2,
        running: 0,
        inputs: [{ stage: "train", type: "n_to_n" }],
      },
    ]);
    expect(detail.stage).toBeUndefined();
    // And: a stage's detail says which pipeline, and which stage sweeps it waits on
    expect(train.stage).toEqual({
      pipelineId: pipeline.sweepId,
      name: "train",
      inputs: [{ stage: "prep", sweepId: ids.get("prep"), type: "whole" }],
    });
    expect(train.stages).toBeUndefined();
    // And: the list's row of the pipeline carries the same stages
    const row = SweepSummary.parse(await reads.summary(pipeline));
    expect(row.stages?.map((s) => [s.name, s.pending])).toEqual([
      ["prep", 0],
      ["train", 2],
      ["eval", 2],
    ]);
  });

  it("the local server's poller serves the stages and sends them again when a stage moves", async () => {
    // Given: the poller of a pipeline, loaded
    const { store } = useStore();
    const { pipeline, ids } = await threeStages();
    const poller = new SweepPoller(pipeline.sweepId, { store, clock: systemClock }, { tickMs: 50 });
    try {
      await poller.ready();
      expect(poller.detail().stages?.map((s) => s.status)).toEqual(["running", "running", "running"]);
      const deltas: Array<SweepDetail | undefined> = [];
      poller.subscribe((d) => deltas.push(d.sweep));

      // When: a stage ends
      await store.updateSweep(
        ids.get("prep")!,
        { status: "running" },
        { status: "succeeded", updatedAt: Date.now() },
      );

      // Then: a delta carries the pipeline's detail with that stage's new status
      await expect
        .poll(() => deltas.at(-1)?.stages?.find((s) => s.name === "prep")?.status, { timeout: 5000 })
        .toBe("succeeded");
    } finally {
      poller.stop();
    }
  });
});

describe("what a launch records on a pipeline", () => {
  it("the launch's traceparent and team, on the pipeline and on every stage", async () => {
    const { store } = useStore();
    const { pipeline, ids } = await threeStages();
    for (const id of [pipeline.sweepId, ...ids.values()]) {
      const record = await store.getSweep(id);
      expect([id, record?.traceparent, record?.team]).toEqual([id, TRACE, "ml"]);
    }
  });
});
