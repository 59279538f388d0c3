/**
 * The agent's GPU side against real parts: spawn-executor (built by agent/executor.test.ts's
 * make, or here) over the fake NVML shim, the store on dynalite, real task processes. Covers the
 * boot health gate and the replacement reconcile makes, slots and CUDA_VISIBLE_DEVICES from the
 * probe, fractional GPUs with their memory budget, memory-pressure events, the utilization
 * series, and the per-task trace.
 */
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { SpawnEvent } from "../core/events.js";
import type { InstanceRecord } from "../core/model.js";
import { type Compute, type ObservedInstance, systemClock } from "../core/ports.js";
import { reconcile } from "../core/reconcile.js";
import type { SweepSpecInput } from "../core/spec.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { agentInstance, writeSweep } from "../test/helpers/agent.js";
import { waitFor } from "../test/helpers/cli.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { Agent, type ExecutorSupport } from "./agent.js";
import { GpuSeries, gpuSeriesKey } from "./gpus.js";
import { parseTaskTrace, SLOT_TID_BASE, taskTraceKey } from "./task-trace.js";

const executorDir = join(import.meta.dirname, "executor");
const binary = join(executorDir, "build", "spawn-executor");
const fakeNvml = join(executorDir, "build", "libfake-nvml.so");
const hasNvcc = (process.env.PATH ?? "")
  .split(delimiter)
  .concat("/usr/local/cuda/bin")
  .some((dir) => existsSync(join(dir, "nvcc")));
const GiB = 2 ** 30;
const uuid = (i: number) => `GPU-00000000-0000-0000-0000-${String(i).padStart(12, "0")}`;

const useStore = useDynaliteStore("gp");
let root: string;
let objects: FileObjectStore;

const sweepWith = (spec: Omit<SweepSpecInput, "name">) => writeSweep(useStore().store, "gp", spec);

/** An agent on a fake-NVML instance with `gpus` GPUs whose processes are listed in `procs`. */
async function gpuAgent(
  sweepId: string,
  instanceId: string,
  fake: { gpus: number; procs: string; extra?: Record<string, string> },
  options: Partial<ExecutorSupport> & { events?: SpawnEvent[] } = {},
) {
  const { events, ...executor } = options;
  return new Agent({
    ...(await agentInstance(useStore().store, root, sweepId, instanceId)),
    logUploadMs: 200,
    executor: {
      binary,
      env: {
        SPAWN_NVML_LIBRARY: fakeNvml,
        SPAWN_FAKE_NVML_GPUS: String(fake.gpus),
        SPAWN_FAKE_NVML_PROCS_FILE: fake.procs,
        // No MPS daemon in tests, whatever the machine has.
        CUDA_MPS_PIPE_DIRECTORY: join(root, "no-mps"),
        ...fake.extra,
      },
      // The fake NVML has no CUDA behind it: the active checks would fail every GPU.
      health: { checks: ["nvml"] },
      sampleIntervalMs: 100,
      ...executor,
    },
    ...(events ? { events: { publish: async (e) => void events.push(...e) } } : {}),
  });
}

/** Every task writes what it was given, as metrics, then sleeps so that they overlap. */
const REPORT_GPUS = [
  'echo "{\\"gpus\\":\\"$CUDA_VISIBLE_DEVICES\\",\\"start\\":$(date +%s%N)}" >> "$SPAWN_METRICS_FILE"',
  "sleep 1",
  'echo "{\\"end\\":$(date +%s%N)}" >> "$SPAWN_METRICS_FILE"',
].join("\n");

describe.skipIf(!hasNvcc)(
  `the agent on GPUs${hasNvcc ? "" : " (skipped: nvcc is not on PATH, so spawn-executor cannot be built)"}`,
  () => {
    beforeAll(async () => {
      // A no-op when agent/executor.test.ts has built it already.
      execFileSync("make", ["-C", executorDir, "-j4", "all"], {
        stdio: "pipe",
        env: { ...process.env, PATH: `${process.env.PATH}${delimiter}/usr/local/cuda/bin` },
      });
      root = await mkdtemp(join(tmpdir(), "spawn-agent-gpu-"));
      objects = new FileObjectStore(join(root, "objects"));
    }, 900_000);
    afterAll(async () => {
      if (root) await rm(root, { recursive: true, force: true });
    });

    it("a failing GPU: the instance is marked unhealthy, claims nothing, and reconcile replaces it", async () => {
      // Given: an instance whose GPU has a pending row remap (a reset is needed)
      const { store } = useStore();
      const procs = join(root, "procs-unhealthy");
      await writeFile(procs, "");
      const sweep = await sweepWith({ command: "true", resources: { gpus: 1 }, max_instances: 1, lease: 3 });
      await store.updateSweep(sweep.sweepId, {}, { launchSeq: 1 });
      const agent = await gpuAgent(sweep.sweepId, `${sweep.sweepId}-i0`, {
        gpus: 2,
        procs,
        extra: { SPAWN_FAKE_NVML_REMAP_PENDING: "1" },
      });

      // When: it boots
      const run = agent.run();
      const record = await waitFor("the health verdict", async () => {
        const i = await store.getInstance(sweep.sweepId, `${sweep.sweepId}-i0`);
        return i?.health ? i : undefined;
      });

      // Then: the record says why, and the task is not claimed
      expect(record).toMatchObject({ status: "running", gpus: 2, health: { verdict: "fail" } });
      expect(record.health?.reasons.join("\n")).toMatch(/GPU 0 \(GPU-[0-9-]+\): nvml: row remapping pending/);
      await new Promise((r) => setTimeout(r, 500));
      expect((await store.getTask(sweep.sweepId, 0, sweep.shardCount))?.status).toBe("pending");

      // When: the control plane reconciles
      const terminated: string[] = [];
      const compute: Compute = {
        launch: async (r) =>
          r.instanceIds.map((instanceId) => ({ instanceId, providerRef: `ref-${instanceId}` })),
        terminate: async (instances: readonly InstanceRecord[]) => {
          terminated.push(...instances.map((i) => i.instanceId));
        },
        describe: async (instances): Promise<ObservedInstance[]> =>
          instances.map((i) => ({ instanceId: i.instanceId, state: "running" })),
      };
      const result = await reconcile({ store, compute, clock: systemClock }, sweep.sweepId);

      // Then: it is terminated as unhealthy (an alertable event) and a replacement is launched
      expect(terminated).toEqual([`${sweep.sweepId}-i0`]);
      const unhealthy = result.events.find((e) => e.type === "InstanceUnhealthy");
      expect(unhealthy).toMatchObject({ instanceId: `${sweep.sweepId}-i0` });
      expect(unhealthy?.type === "InstanceUnhealthy" && unhealthy.reason).toMatch(/remap/i);
      expect(result.launched).toEqual([`${sweep.sweepId}-i1`]);
      expect(result.events.map((e) => e.type)).toContain("InstanceReplaced");
      // And: the agent notices at its next heartbeat and exits
      expect(await run).toBe("instance was terminated by the control plane");
      const after = await store.getInstance(sweep.sweepId, `${sweep.sweepId}-i0`);
      expect(after?.reason).toMatch(/^unhealthy: GPU 0/);
    }, 60_000);

    it("gpus: 1 on an 8-GPU instance runs 8 tasks at once, each on its own GPU by UUID", async () => {
      // Given: 8 tasks that record their CUDA_VISIBLE_DEVICES
      const { store } = useStore();
      const procs = join(root, "procs-8");
      await writeFile(procs, "");
      const sweep = await sweepWith({
        command: REPORT_GPUS,
        params: { grid: { x: [0, 1, 2, 3, 4, 5, 6, 7] } },
        resources: { gpus: 1 },
      });
      const agent = await gpuAgent(sweep.sweepId, "i-eight", { gpus: 8, procs });

      // When: the agent runs them
      expect(await agent.run()).toBe("no work left");

      // Then: every GPU got exactly one task, and all 8 ran at the same time
      const tasks = await store.listTasks(sweep.sweepId, sweep.shardCount);
      expect(tasks.map((t) => t.status)).toEqual(Array(8).fill("succeeded"));
      const given = tasks.map((t) => String(t.metrics?.gpus)).sort();
      expect(given).toEqual(Array.from({ length: 8 }, (_, i) => uuid(i)));
      const lastStart = Math.max(...tasks.map((t) => Number(t.metrics?.start)));
      const firstEnd = Math.min(...tasks.map((t) => Number(t.metrics?.end)));
      expect(lastStart).toBeLessThan(firstEnd);
      expect((await store.getInstance(sweep.sweepId, "i-eight"))?.health).toMatchObject({ verdict: "pass" });
      expect(tasks.every((t) => t.warning === undefined)).toBe(true);

      // And: each attempt left a trace with its slot slice and the executor's GPU slice
      const trace = parseTaskTrace(
        JSON.parse(Buffer.from((await objects.getBytes(taskTraceKey(sweep.sweepId, 3, 1)))!).toString()),
      );
      expect(trace).toMatchObject({ instanceId: "i-eight", taskIndex: 3, attempt: 1 });
      const slices = trace.trace.traceEvents.filter((e) => e.ph === "X");
      expect(slices.some((e) => (e.tid ?? 0) >= SLOT_TID_BASE && e.args?.exitCode === 0)).toBe(true);
      expect(slices.some((e) => e.tid !== undefined && e.tid >= 1 && e.tid <= 8)).toBe(true);
    }, 60_000);

    it("gpus: 0.5 packs two tasks per GPU, says sharing is unisolated without MPS, and enforces half the memory", async () => {
      // Given: 4 tasks of half a GPU on 2 GPUs; task 3 "allocates" 45 GB, over its 40 GiB half
      const { store } = useStore();
      const procs = join(root, "procs-half");
      await writeFile(procs, "");
      const sweep = await sweepWith({
        command: [
          REPORT_GPUS,
          `if [ "$SPAWN_TASK_INDEX" = 3 ]; then idx=$(expr "\${CUDA_VISIBLE_DEVICES##*-}" + 0); echo "$$ ${45e9} $idx" >> ${procs}; sleep 20; fi`,
        ].join("\n"),
        params: { grid: { x: [0, 1, 2, 3] } },
        resources: { gpus: 0.5 },
        retry: { max_attempts: 1 },
      });
      const agent = await gpuAgent(sweep.sweepId, "i-half", { gpus: 2, procs });

      // When
      expect(await agent.run()).toBe("no work left");

      // Then: each GPU carried two tasks, all four at once
      const tasks = await store.listTasks(sweep.sweepId, sweep.shardCount);
      const perGpu = new Map<string, number>();
      for (const t of tasks)
        perGpu.set(String(t.metrics?.gpus), (perGpu.get(String(t.metrics?.gpus)) ?? 0) + 1);
      expect(Object.fromEntries(perGpu)).toEqual({ [uuid(0)]: 2, [uuid(1)]: 2 });
      expect(Math.max(...tasks.map((t) => Number(t.metrics?.start)))).toBeLessThan(
        Math.min(...tasks.map((t) => Number(t.metrics?.end))),
      );
      // And: the warning says the sharing is not isolated, and what is enforced
      expect(tasks[0]?.warning).toMatch(/shared with other tasks without MPS: compute is not isolated/);
      expect(tasks[0]?.warning).toMatch(/memory budget \(40\.0 GiB\) is enforced by spawn-executor/);
      // And: the task over its budget was stopped by the executor, with the reason
      expect(tasks.slice(0, 3).map((t) => t.status)).toEqual(["succeeded", "succeeded", "succeeded"]);
      expect(tasks[3]).toMatchObject({ status: "failed", exitCode: 143 });
      expect(tasks[3]?.error).toMatch(/GPU memory budget exceeded: .* 42949672960 bytes/);
    }, 60_000);

    it("publishes memory pressure once per crossing and uploads the utilization series", async () => {
      // Given: a task that fills GPU 0 to 96%, lets go, fills it again
      const { store } = useStore();
      const procs = join(root, "procs-pressure");
      await writeFile(procs, "");
      const events: SpawnEvent[] = [];
      const fill = `echo "$$ ${Math.round(0.96 * 80 * GiB)} 0" > ${procs}`;
      const sweep = await sweepWith({
        command: `${fill}; sleep 0.6; : > ${procs}; sleep 0.6; ${fill}; sleep 0.6; : > ${procs}; sleep 0.3`,
        resources: { gpus: 1 },
      });
      const agent = await gpuAgent(sweep.sweepId, "i-pressure", { gpus: 1, procs }, { events });

      // When
      expect(await agent.run()).toBe("no work left");

      // Then: two crossings, two events (not one per 100 ms sample), naming the task
      const pressure = events.filter((e) => e.type === "GpuMemoryPressure");
      expect(pressure).toHaveLength(2);
      expect(pressure[0]).toMatchObject({
        instanceId: "i-pressure",
        gpuIndex: 0,
        gpuUuid: uuid(0),
        tasks: [0],
      });
      // And: the series holds the per-interval utilization (the fake reports 42%) and the crossings
      const series = GpuSeries.parse(
        JSON.parse(
          Buffer.from((await objects.getBytes(gpuSeriesKey(sweep.sweepId, "i-pressure")))!).toString(),
        ),
      );
      expect(series.gpus).toEqual([{ index: 0, uuid: uuid(0) }]);
      expect(series.utilization[0]?.filter((v) => v !== null).every((v) => v === 42)).toBe(true);
      expect(Math.max(...(series.memory[0] ?? []).map(Number))).toBeCloseTo(96, 0);
      expect(series.pressure).toHaveLength(2);
      expect((await store.getTask(sweep.sweepId, 0, sweep.shardCount))?.status).toBe("succeeded");
    }, 60_000);
  },
);
