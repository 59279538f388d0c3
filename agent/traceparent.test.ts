/**
 * The launch's trace reaches the task: the agent (store on in-process dynalite, real task
 * processes) gives every attempt `SPAWN_TRACEPARENT`, a child span of the traceparent recorded on
 * the sweep, and logs it with the attempt's correlation keys.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTraceparent } from "../core/traceparent.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { createLogger } from "../providers/log.js";
import { agentSweep } from "../test/helpers/agent.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { Agent } from "./agent.js";

const useStore = useDynaliteStore("tp");
let root: string;
let objects: FileObjectStore;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "spawn-agent-trace-"));
  objects = new FileObjectStore(join(root, "objects"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const LAUNCH = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** Runs `command` (two attempts: the first fails) on one agent; returns each attempt's log and the agent's log lines. */
async function runTraced(traceparent: string | undefined) {
  const { store } = useStore();
  const { sweep, options } = await agentSweep(
    store,
    root,
    "tp",
    {
      command: 'echo "tp=[$SPAWN_TRACEPARENT]"; [ "$SPAWN_ATTEMPT" -ge 2 ]',
      retry: { max_attempts: 2, backoff: "fixed", base: "100ms" },
    },
    traceparent ? { traceparent } : {},
  );
  const lines: Array<Record<string, unknown>> = [];
  const agent = new Agent({
    ...options,
    objects,
    log: createLogger({}, (line) => lines.push(JSON.parse(line))),
    logUploadMs: 100,
  });
  expect(await agent.run()).toBe("no work left");
  const task = await store.getTask(sweep.sweepId, 0, sweep.shardCount);
  const logOf = async (attempt: number) => {
    const keys = await objects.list(`logs/${sweep.sweepId}/0/${attempt}`);
    const parts = await Promise.all(keys.map(async (k) => Buffer.from((await objects.getBytes(k)) ?? [])));
    return /tp=\[([^\]]*)\]/.exec(Buffer.concat(parts).toString())?.[1];
  };
  return { sweep, task, seen: [await logOf(1), await logOf(2)], lines };
}

describe("SPAWN_TRACEPARENT", () => {
  it("is a new child span of the sweep's trace for every attempt, and the agent logs it", async () => {
    // Given: a sweep whose launch recorded a traceparent, and a task that fails once
    // When: an agent runs both attempts
    const { sweep, task, seen, lines } = await runTraced(LAUNCH);

    // Then: the sweep kept the launch's traceparent
    expect(sweep.traceparent).toBe(LAUNCH);
    expect(task?.status).toBe("succeeded");
    expect(task?.attempt).toBe(2);
    // And: each attempt saw a valid traceparent in the launch's trace, with a span of its own
    const [first, second] = seen.map((tp) => parseTraceparent(tp));
    expect(first).toMatchObject({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", sampled: true });
    expect(second).toMatchObject({ traceId: "4bf92f3577b34da6a3ce929d0e0e4736", sampled: true });
    expect(first?.spanId).not.toBe("00f067aa0ba902b7");
    expect(second?.spanId).not.toBe(first?.spanId);
    // And: the agent logged each attempt's traceparent with its correlation keys
    const traced = lines.filter((l) => l.msg === "task attempt traced");
    expect(traced.map((l) => [l.sweepId, l.taskIndex, l.attempt, l.traceparent])).toEqual([
      [sweep.sweepId, 0, 1, seen[0]],
      [sweep.sweepId, 0, 2, seen[1]],
    ]);
  }, 30_000);

  it("is left unset for a sweep created without one (records written before it existed)", async () => {
    const { seen, lines } = await runTraced(undefined);
    expect(seen).toEqual(["", ""]);
    expect(lines.some((l) => l.msg === "task attempt traced")).toBe(false);
  }, 30_000);
});
