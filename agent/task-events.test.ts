/**
 * TaskFailed for the failures an agent finalizes itself: the store on dynalite, real task
 * processes, and an in-memory EventSink standing in for the stack's bus.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventSink } from "#core/ports.js";
import { createLogger } from "#providers/log.js";
import { agentSweep, RecordingSink } from "../test/helpers/agent.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { Agent } from "./agent.js";
import { publishTaskOutcome } from "./task-events.js";

const useStore = useDynaliteStore("te");
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "spawn-task-events-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const log = createLogger({}, () => undefined);

async function runSweep(command: string, retry: Record<string, unknown>, events: EventSink) {
  const { store } = useStore();
  const { sweep, options } = await agentSweep(store, root, "te", {
    command,
    params: { grid: { i: [0, 1, 2] } },
    retry,
  });
  await new Agent({ ...options, events }).run();
  const tasks = await Promise.all([0, 1, 2].map((i) => store.getTask(sweep.sweepId, i, sweep.shardCount)));
  return { sweep, tasks };
}

describe("an agent that writes a task failed", () => {
  it("publishes TaskFailed once per task that used up its retries, and nothing for retried or succeeded attempts", async () => {
    // Given: task 1 exits 3 on every attempt, task 2 fails its first attempt only, task 0 succeeds
    const sink = new RecordingSink();
    const command =
      'if [ {{i}} = 1 ]; then exit 3; fi; if [ {{i}} = 2 ] && [ "$SPAWN_ATTEMPT" = 1 ]; then exit 4; fi; exit 0';

    // When: one agent runs the sweep with two attempts per task
    const { sweep, tasks } = await runSweep(command, { max_attempts: 2, base: "100ms" }, sink);

    // Then: the store says 1 failed for good, and exactly that was published
    expect(tasks.map((t) => t?.status)).toEqual(["succeeded", "failed", "succeeded"]);
    expect(sink.events).toEqual([
      {
        version: 1,
        type: "TaskFailed",
        sweepId: sweep.sweepId,
        time: tasks[1]!.finishedAt,
        taskIndex: 1,
        attempt: 2,
        exitCode: 3,
        error: tasks[1]!.error,
      },
    ]);
    expect(tasks[1]!.error).toMatch(/code 3; gave up after 2 attempts/);
  });
});

describe("publishTaskOutcome", () => {
  const written = {
    sweepId: "s-1",
    index: 4,
    attempt: 1,
    exitCode: 2,
    error: "exited with code 2",
    finishedAt: 1_700_000_000_000,
  };

  it("publishes nothing for a task that is not failed, or without a sink", async () => {
    const sink = new RecordingSink();
    for (const status of ["succeeded", "pending", "cancelled"] as const)
      await publishTaskOutcome(sink, log, { ...written, status }, 1);
    await publishTaskOutcome(undefined, log, { ...written, status: "failed" }, 1);
    expect(sink.events).toEqual([]);
  });

  it("logs a publishing error instead of failing the task's report", async () => {
    const lines: string[] = [];
    const failing: EventSink = {
      publish: async () => {
        throw new Error("bus unreachable");
      },
    };
    await publishTaskOutcome(
      failing,
      createLogger({}, (line) => lines.push(line)),
      { ...written, status: "failed" },
      1,
    );
    expect(lines.join("")).toMatch(/could not publish TaskFailed.*bus unreachable/);
  });
});
