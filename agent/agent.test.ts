/**
 * The agent against real parts: the store on in-process dynalite, the local object store, a fake
 * IMDS speaking IMDSv2, and real task processes.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SweepSpecInput } from "../core/spec.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { agentInstance, writeSweep } from "../test/helpers/agent.js";
import { waitFor } from "../test/helpers/cli.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { startFakeImds } from "../test/helpers/fake-imds.js";
import { Agent, type AgentOptions } from "./agent.js";
import { ImdsClient } from "./imds.js";

const useStore = useDynaliteStore("ag");
let root: string;
let objects: FileObjectStore;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "spawn-agent-"));
  objects = new FileObjectStore(join(root, "objects"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const sweepWith = (spec: Omit<SweepSpecInput, "name">) => writeSweep(useStore().store, "ag", spec);

async function agentFor(sweepId: string, instanceId: string, extra: Partial<AgentOptions> = {}) {
  const options = await agentInstance(useStore().store, root, sweepId, instanceId);
  return new Agent({ ...options, logUploadMs: 200, ...extra });
}

const until = <T>(what: string, probe: () => Promise<T | undefined>) => waitFor(what, probe, 20_000, 50);

/** One attempt's log, from the chunks the agent shipped. */
async function attemptLog(sweepId: string, index: number, attempt: number): Promise<string> {
  const keys = await objects.list(`logs/${sweepId}/${index}/${attempt}/`);
  const parts = await Promise.all(keys.map(async (k) => Buffer.from((await objects.getBytes(k)) ?? [])));
  return Buffer.concat(parts).toString();
}

/** Counts to 100 (0.1 s a step), checkpointing every 5 steps and on SIGTERM; resumes from its checkpoint. */
const COUNTER = [
  'f="$SPAWN_CHECKPOINT_DIR/n"; i=0',
  'if [ "$SPAWN_RESUME" = 1 ]; then i=$(cat "$f"); echo "resumed at $i"; fi',
  'trap \'echo $i > "$f.tmp"; mv "$f.tmp" "$f"; echo "SIGTERM at $i"; exit 143\' TERM',
  'while [ $i -lt 100 ]; do i=$((i+1)); sleep 0.1; if [ $((i % 5)) -eq 0 ]; then echo $i > "$f.tmp"; mv "$f.tmp" "$f"; fi; done',
  'echo "{\\"n\\":$i}" >> "$SPAWN_METRICS_FILE"',
].join("\n");

describe("a spot interruption notice", () => {
  it("stops the task, syncs its checkpoint, releases it as preempted, and the next attempt resumes", async () => {
    // Given: a task running on an agent that watches a fake IMDS
    const { store } = useStore();
    const imds = await startFakeImds();
    try {
      const sweep = await sweepWith({ command: COUNTER, checkpoint: { interval: "300ms" }, grace: 30 });
      const first = await agentFor(sweep.sweepId, "i-first", {
        imds: new ImdsClient({ endpoint: imds.endpoint }),
        imdsPollMs: 100,
      });
      const run = first.run();
      await until("a synced checkpoint", async () => {
        const t = await store.getTask(sweep.sweepId, 0, sweep.shardCount);
        return t?.checkpoint ? t : undefined;
      });

      // When: IMDS posts a notice
      const noticeAt = Date.now();
      imds.interrupt("terminate", 120_000);
      const reason = await run;

      // Then: the agent acted within a poll or two, and released the task as preempted
      expect(reason).toMatch(/^spot interruption notice \(terminate at /);
      expect(Date.now() - noticeAt).toBeLessThan(5000);
      const task = (await store.getTask(sweep.sweepId, 0, sweep.shardCount))!;
      expect(task).toMatchObject({ status: "pending", attempt: 1, lost: 1, preempted: 1, failures: 0 });
      expect(task.error).toMatch(/attempt 1 lost: spot interruption notice/);
      expect(task.checkpoint?.attempt).toBe(1);
      const instance = await store.getInstance(sweep.sweepId, "i-first");
      expect(instance).toMatchObject({ status: "terminated", interruption: { kind: "terminate" } });
      expect(instance?.reason).toMatch(/spot interruption notice/);
      const interruptedAt = Number(/SIGTERM at (\d+)/.exec(await attemptLog(sweep.sweepId, 0, 1))?.[1]);

      // And: the next attempt, on another agent, restores that checkpoint and finishes the count
      const second = await agentFor(sweep.sweepId, "i-second");
      expect(await second.run()).toBe("no work left");
      const done = (await store.getTask(sweep.sweepId, 0, sweep.shardCount))!;
      expect(done).toMatchObject({ status: "succeeded", attempt: 2, metrics: { n: 100 } });
      const log2 = await attemptLog(sweep.sweepId, 0, 2);
      expect(log2).toMatch(/\[spawn\] restored checkpoint .*SPAWN_RESUME=1/);
      const resumedAt = Number(/resumed at (\d+)/.exec(log2)?.[1]);
      // Checkpointed on SIGTERM and synced after the task exited: nothing was redone.
      expect(resumedAt).toBeGreaterThan(0);
      expect(resumedAt).toBe(interruptedAt);
    } finally {
      await imds.close();
    }
  }, 60_000);

  it("a rebalance recommendation stops new claims but lets the running task finish", async () => {
    const { store } = useStore();
    const imds = await startFakeImds();
    try {
      const sweep = await sweepWith({
        command: "sleep 1",
        params: { list: [{ x: 1 }, { x: 2 }] },
      });
      const agent = await agentFor(sweep.sweepId, "i-rebalance", {
        imds: new ImdsClient({ endpoint: imds.endpoint }),
        imdsPollMs: 100,
      });
      const run = agent.run();
      await until("a running task", async () =>
        (await store.listTasks(sweep.sweepId, sweep.shardCount)).some((t) => t.status === "running")
          ? true
          : undefined,
      );
      imds.rebalance();
      expect(await run).toMatch(/rebalance recommendation/);
      const statuses = (await store.listTasks(sweep.sweepId, sweep.shardCount)).map((t) => t.status).sort();
      expect(statuses).toEqual(["pending", "succeeded"]);
      expect((await store.getInstance(sweep.sweepId, "i-rebalance"))?.interruption?.kind).toBe("rebalance");
    } finally {
      await imds.close();
    }
  }, 30_000);
});

describe("network: allowlist", () => {
  it("is refused on the local provider with a reason, not run unenforced", async () => {
    const { store } = useStore();
    const sweep = await sweepWith({ command: "true", network: "allowlist", allowlist: ["10.0.0.0/8"] });
    const agent = await agentFor(sweep.sweepId, "i-allow");
    expect(await agent.run()).toMatch(/network: allowlist is enforced only on aws/);
    const after = await store.getSweep(sweep.sweepId);
    expect(after?.status).toBe("failed");
    expect(after?.reason).toMatch(/allowlist/);
    expect((await store.getTask(sweep.sweepId, 0, sweep.shardCount))?.status).toBe("pending");
  });
});

describe("the instance deadline", () => {
  it("survives a restart: a new agent stops gracefully before the stored deadline", async () => {
    // Given: an instance whose absolute deadline is close (as after a restart late in its life)
    const { store } = useStore();
    const sweep = await sweepWith({ command: "sleep 30", grace: 1 });
    const agent = await agentFor(sweep.sweepId, "i-ttl");
    await store.updateInstance(sweep.sweepId, "i-ttl", {}, { deadline: Date.now() + 23_000 });

    // When / Then: the deadline (not a fresh ttl) decides: the task is released, the agent stops
    const t0 = Date.now();
    expect(await agent.run()).toMatch(/^ttl: instance deadline /);
    expect(Date.now() - t0).toBeLessThan(10_000);
    const task = (await store.getTask(sweep.sweepId, 0, sweep.shardCount))!;
    expect(task).toMatchObject({ status: "pending", lost: 1, failures: 0 });
    expect((await store.getInstance(sweep.sweepId, "i-ttl"))?.deadlineWarnedAt).toBeGreaterThan(t0 - 1);
  }, 30_000);
});
