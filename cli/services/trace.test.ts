/** sweepTrace against dynalite and the file object store: uploaded traces, task records, nothing. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attemptTrace, taskTraceKey } from "#agent/task-trace.js";
import { AbortError } from "#core/errors.js";
import { expandParams } from "#core/params.js";
import { systemClock } from "#core/ports.js";
import { parseSpec } from "#core/spec.js";
import { createSweep } from "#core/sweeps.js";
import { FileObjectStore } from "#providers/local/objects.js";
import { useDynaliteStore } from "../../test/helpers/dynamo.js";
import { RECORDS_INSTANCE, sweepTrace } from "./trace.js";

const useStore = useDynaliteStore("tr");
let root: string;
let objects: FileObjectStore;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "spawn-trace-"));
  objects = new FileObjectStore(join(root, "objects"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function sweepOf(name: string, tasks: number) {
  const { store } = useStore();
  const spec = parseSpec({
    name,
    command: "true",
    params: { list: Array.from({ length: tasks }, (_, x) => ({ x })) },
  });
  return createSweep(
    { store, clock: systemClock },
    { sweepId: name, spec, tasks: expandParams(spec.params, spec.repeat), owner: "t", provider: "local" },
  );
}

describe("sweepTrace", () => {
  it("merges uploaded traces and draws tasks without one from their records", async () => {
    // Given: task 0 uploaded its trace; task 1 ran under an agent that uploaded none; task 2 never ran
    const { store } = useStore();
    const sweep = await sweepOf("tr-mixed", 3);
    const life = { sweepId: sweep.sweepId, instanceId: "tr-mixed-i0", taskIndex: 0, attempt: 1, slot: 0 };
    await objects.putBytes(
      taskTraceKey(sweep.sweepId, 0, 1),
      JSON.stringify(attemptTrace({ ...life, claimedAt: 1000, reportedAt: 2000, result: { exitCode: 0 } })),
    );
    await objects.putBytes(`${taskTraceKey(sweep.sweepId, 9, 1)}`, "not json");
    for (const index of [0, 1]) {
      await store.updateTask(
        sweep.sweepId,
        index,
        sweep.shardCount,
        { status: "pending" },
        {
          status: "succeeded",
          attempt: 1,
          startedAt: 1500,
          finishedAt: 2500,
          exitCode: 0,
          updatedAt: 2500,
        },
      );
    }

    // When
    const result = await sweepTrace(store, objects, sweep.sweepId);

    // Then: one attempt from its trace, one from its record, the bad upload named
    expect(result).toMatchObject({ attempts: 1, fromRecords: 1, instances: 2 });
    expect(result.unreadable).toEqual([expect.stringMatching(/^logs\/tr-mixed\/traces\/9-1\.json: /)]);
    const names = result.trace.traceEvents
      .filter((e) => e.ph === "M" && e.name === "process_name")
      .map((e) => e.args?.name);
    expect(names).toEqual(["tr-mixed-i0", RECORDS_INSTANCE].sort());
    const slices = result.trace.traceEvents.filter((e) => e.ph === "X");
    expect(slices.map((e) => [e.name, e.ts, e.dur])).toEqual([
      ["task 0 #1", 1_000_000, 1_000_000],
      ["task 1 #1", 1_500_000, 1_000_000],
    ]);
  });

  it("says so (exit 3) when nothing has run yet", async () => {
    const { store } = useStore();
    const sweep = await sweepOf("tr-empty", 2);
    const error = await sweepTrace(store, objects, sweep.sweepId).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AbortError);
    expect(error).toMatchObject({ exitCode: 3, message: expect.stringMatching(/has nothing to trace yet/) });
  });
});
