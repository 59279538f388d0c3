/**
 * spawn-executor without a GPU: builds it with make (when nvcc is on PATH), then checks the
 * no-driver behaviour, argument errors, `run` (exit status, signal forwarding, GPU memory budget
 * against the fake NVML shim), `sample`'s clean stop, `trace`, and the wrapper's zod parsing.
 * The GPU half (bandwidth, GEMM, real budgets) is agent/executor/scripts/gpu-check.sh.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChromeTrace, mergeTaskTraces } from "#core/trace.js";
import {
  ExecutorError,
  ExecutorExit,
  health,
  locateExecutor,
  probe,
  RunReport,
  readRunReport,
  runArgv,
  type SampleLine,
  startSampler,
  traceTask,
} from "./executor.js";

const executorDir = join(import.meta.dirname, "executor");
const binary = join(executorDir, "build", "spawn-executor");
const fakeNvml = join(executorDir, "build", "libfake-nvml.so");
const GPU0 = "GPU-00000000-0000-0000-0000-000000000000";
const GiB = 2 ** 30;

const hasNvcc = (process.env.PATH ?? "")
  .split(delimiter)
  .concat("/usr/local/cuda/bin")
  .some((dir) => existsSync(join(dir, "nvcc")));

let tmp: string;
/** The fake NVML's process table: lines "pid bytes [gpu]". */
let procsFile: string;

/** Environment with no driver at all, even on a GPU machine. */
const noDriver = () => ({ ...process.env, SPAWN_NVML_LIBRARY: join(tmp, "no-such-libnvidia-ml.so.1") });
/** Environment with the fake NVML: one H100-like GPU, processes from `procsFile`. */
const fake = (extra: Record<string, string> = {}) => ({
  ...process.env,
  SPAWN_NVML_LIBRARY: fakeNvml,
  SPAWN_FAKE_NVML_PROCS_FILE: procsFile,
  ...extra,
});

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function exec(args: string[], env: NodeJS.ProcessEnv, onStart?: (pid: number) => void): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(binary, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    if (child.pid !== undefined) onStart?.(child.pid);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function waitFor(file: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${file}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe.skipIf(!hasNvcc)(
  `spawn-executor${hasNvcc ? "" : " (skipped: nvcc is not on PATH, so it cannot be built)"}`,
  () => {
    beforeAll(async () => {
      // The first build compiles the CUDA sources for four architectures: minutes on two cores.
      execFileSync("make", ["-C", executorDir, "-j4", "all"], {
        stdio: "pipe",
        env: { ...process.env, PATH: `${process.env.PATH}${delimiter}/usr/local/cuda/bin` },
      });
      tmp = await mkdtemp(join(tmpdir(), "spawn-executor-"));
      procsFile = join(tmp, "procs");
      await writeFile(procsFile, "");
    }, 900_000);

    afterAll(async () => {
      if (tmp) await rm(tmp, { recursive: true, force: true });
    });

    describe("without a driver", () => {
      it("probe prints an empty GPU list with the reason and exits 0", async () => {
        // When probe runs where libnvidia-ml cannot be loaded
        const result = await probe(binary, { env: noDriver() });

        // Then the document parses and says why
        expect(result.gpus).toEqual([]);
        expect(result.reason).toMatch(/no NVIDIA driver: cannot load .*no-such-libnvidia-ml/);
        expect(result.cuda_runtime_version).toMatch(/^\d+\.\d+$/);
      });

      it("health, sample and run exit 3 with a clear message", async () => {
        const h = await exec(["health", "--quick"], noDriver());
        expect(h.code).toBe(ExecutorExit.noGpu);
        expect(JSON.parse(h.stdout)).toMatchObject({ schema: 1, type: "health", gpus: [] });
        expect(h.stderr).toMatch(/health: no NVIDIA driver/);

        const s = await exec(["sample", "--count", "1"], noDriver());
        expect(s.code).toBe(ExecutorExit.noGpu);
        expect(s.stderr).toMatch(/sample: no NVIDIA driver/);

        const report = join(tmp, "no-driver-report.json");
        const r = await exec(["run", "--gpus", GPU0, "--report", report, "--", "true"], noDriver());
        expect(r.code).toBe(ExecutorExit.noGpu);
        expect(await readRunReport(report)).toMatchObject({ started: false, reason: "no_gpu" });
      });

      it("the wrapper resolves health with no GPUs instead of throwing", async () => {
        const result = await health(binary, { env: noDriver() });
        expect(result.gpus).toEqual([]);
        expect(result.reason).toMatch(/no NVIDIA driver/);
      });
    });

    describe("argument errors exit 2 and name the problem", () => {
      it.each([
        [[], /missing subcommand/],
        [["launch"], /unknown subcommand 'launch'/],
        [["probe", "--verbose"], /probe takes no arguments, got '--verbose'/],
        [["health", "--quick", "--full"], /--quick and --full exclude each other/],
        [["health", "--seconds", "-1"], /--seconds must be a non-negative number/],
        [["health", "--checks", "hbm,disk"], /--checks takes hbm, pcie, gemm and nvml, got 'disk'/],
        [["sample", "--interval", "0"], /--interval must be at least 10ms, got '0'/],
        [["sample", "--interval", "1 fortnight"], /--interval has an unknown unit/],
        [["run", "--", "true"], /--gpus <uuid,...> is required/],
        [["run", "--gpus", GPU0, "true"], /unknown argument 'true' \(the command goes after --\)/],
        [["run", "--gpus", GPU0, "--"], /missing the command after --/],
        [
          ["run", "--gpus", GPU0, "--mem-limit", "20XB", "--", "true"],
          /--mem-limit has an unknown unit 'XB'/,
        ],
        [
          ["run", "--gpus", GPU0, "--sm-percent", "150", "--", "true"],
          /--sm-percent must be an integer from 1 to 100/,
        ],
        [
          ["run", "--gpus", "GPU-nope", "--", "true"],
          /--gpus names GPU-nope, which is not a GPU on this machine/,
        ],
        [["trace"], /trace: give --samples FILE/],
      ])("%j", async (args, message) => {
        const result = await exec(args, fake());
        expect(result.code).toBe(ExecutorExit.usage);
        expect(result.stderr).toMatch(message);
        expect(result.stderr).toMatch(/^spawn-executor: /);
      });

      it("--help documents every subcommand and the exit codes", async () => {
        const result = await exec(["--help"], fake());
        expect(result.code).toBe(0);
        for (const word of [
          "probe",
          "health",
          "sample",
          "run",
          "trace",
          "Exit codes",
          "gpu_memory_budget_exceeded",
        ]) {
          expect(result.stdout).toContain(word);
        }
      });
    });

    describe("probe and health against the fake NVML", () => {
      it("probe derives the peaks and names their sources", async () => {
        const result = await probe(binary, { env: fake() });

        expect(result.gpus).toHaveLength(1);
        const gpu = result.gpus[0]!;
        expect(gpu).toMatchObject({ uuid: GPU0, name: "NVIDIA H100 80GB HBM3", compute_capability: "9.0" });
        expect(gpu.sm_count.value).toBe(132);
        // 2 x 2619 MHz x 5120 bit / 8
        expect(gpu.peaks.memory_bandwidth_bytes_per_s.value).toBe(3_352_320_000_000);
        expect(gpu.peaks.memory_bandwidth_bytes_per_s.source).toMatch(
          /NVML max memory clock.*NVML bus width/,
        );
        // 132 SMs x 4096 FLOP/clock x 1980 MHz
        expect(gpu.peaks.bf16_dense_flops.value).toBe(132 * 4096 * 1980e6);
        expect(gpu.peaks.bf16_dense_flops.source).toMatch(/sku-data.json arch 9.0/);
        expect(gpu.datasheet).toMatchObject({ memory_bandwidth_bytes_per_s: 3.35e12 });
      });

      it("health fails a GPU on NVML errors and critical Xids, ignoring application Xids", async () => {
        // Given pending row remapping, volatile ECC errors and Xids 13 (application) and 79 (fell off the bus)
        const env = fake({
          SPAWN_FAKE_NVML_REMAP_PENDING: "1",
          SPAWN_FAKE_NVML_ECC_UNCORRECTED: "3",
          SPAWN_FAKE_NVML_XIDS: "13,79",
        });

        // When the NVML checks run
        const result = await health(binary, { env, checks: ["nvml"] });

        // Then the GPU fails for each, and Xid 13 is listed as ignored
        const gpu = result.gpus[0]!;
        expect(result.verdict).toBe("fail");
        expect(gpu.verdict).toBe("fail");
        const messages = gpu.reasons.map((r) => `${r.level} ${r.check}: ${r.message}`);
        expect(messages).toEqual(
          expect.arrayContaining([
            "fail nvml: 3 volatile uncorrectable ECC errors",
            "fail nvml: row remapping pending: the GPU needs a reset",
            "fail xid: critical Xid 79 during the checks",
          ]),
        );
        expect(messages.join("\n")).not.toMatch(/Xid 13/);
        expect(gpu.checks.xid).toMatchObject({ critical: [79], ignored_application_xids: [13] });
      });

      it("health passes a clean GPU on the NVML checks and exits 0", async () => {
        const result = await health(binary, { env: fake(), checks: ["nvml"] });
        expect(result.verdict).toBe("pass");
        expect(result.gpus[0]!.reasons).toEqual([]);
      });
    });

    describe("run", () => {
      it("returns the task's exit status and reports it", async () => {
        const report = join(tmp, "exit7.json");
        const result = await exec(
          runArgv(binary, { gpus: [GPU0], reportFile: report }, ["sh", "-c", "exit 7"]).slice(1),
          fake(),
        );

        expect(result.code).toBe(7);
        const parsed = await readRunReport(report);
        expect(parsed).toMatchObject({
          started: true,
          exit_code: 7,
          signal: null,
          status: 7,
          reason: "exited",
        });
        expect(parsed.events.map((e) => e.type)).toEqual(["start", "exit"]);
      });

      it("sets CUDA_VISIBLE_DEVICES to the UUIDs", async () => {
        const report = join(tmp, "env.json");
        const result = await exec(
          ["run", "--gpus", GPU0, "--report", report, "--", "sh", "-c", 'printf %s "$CUDA_VISIBLE_DEVICES"'],
          fake(),
        );
        expect(result.code).toBe(0);
        expect(result.stdout).toBe(GPU0);
      });

      it("exits 127 for a command that does not exist", async () => {
        const report = join(tmp, "missing.json");
        const result = await exec(
          ["run", "--gpus", GPU0, "--report", report, "--", "/no/such/command"],
          fake(),
        );
        expect(result.code).toBe(ExecutorExit.notFound);
        expect(result.stderr).toMatch(/cannot execute '\/no\/such\/command'/);
        expect(await readRunReport(report)).toMatchObject({ started: false, reason: "command_not_found" });
      });

      it("forwards SIGTERM to the task and returns its status", async () => {
        // Given a task that exits 42 on SIGTERM
        const ready = join(tmp, "term-ready");
        const report = join(tmp, "term.json");
        const script = `trap 'exit 42' TERM; : > ${ready}; while :; do sleep 0.05; done`;
        let pid = 0;
        const running = exec(
          ["run", "--gpus", GPU0, "--report", report, "--", "sh", "-c", script],
          fake(),
          (p) => {
            pid = p;
          },
        );

        // When the executor gets SIGTERM
        await waitFor(ready);
        process.kill(pid, "SIGTERM");
        const result = await running;

        // Then the task saw it and its status comes back
        expect(result.code).toBe(42);
        const parsed = await readRunReport(report);
        expect(parsed.reason).toBe("exited");
        expect(parsed.events).toContainEqual(
          expect.objectContaining({ type: "signal_forwarded", signal: "SIGTERM" }),
        );
      });

      it("stops a task over its GPU memory budget: SIGTERM, then SIGKILL after the grace", async () => {
        // Given a task whose grandchild holds 2 GiB of GPU memory and ignores SIGTERM
        const script = join(tmp, "hog.sh");
        await writeFile(
          script,
          `trap '' TERM\nsh -c 'echo "$$ ${2 * GiB}" > "$SPAWN_FAKE_NVML_PROCS_FILE"; exec sleep 30' &\nwait\n`,
        );
        const report = join(tmp, "budget.json");

        // When it runs with a 1 GiB budget and a 600 ms grace
        const started = Date.now();
        const argv = runArgv(binary, { gpus: [GPU0], memLimitBytes: GiB, graceMs: 600, reportFile: report }, [
          "sh",
          script,
        ]);
        const result = await exec([...argv.slice(1, -3), "--poll", "50ms", ...argv.slice(-3)], fake());

        // Then it was killed well before its 30 s sleep, with the documented reason
        expect(Date.now() - started).toBeLessThan(10_000);
        expect(result.code).toBe(137);
        expect(result.stderr).toContain(`exceeded its GPU memory budget on ${GPU0}: 2.00 GiB > 1.00 GiB`);
        const parsed = await readRunReport(report);
        expect(parsed).toMatchObject({
          reason: "gpu_memory_budget_exceeded",
          signal: "SIGKILL",
          status: 137,
          mem_limit_bytes: GiB,
        });
        expect(parsed.peak_gpu_memory_bytes).toEqual({ [GPU0]: 2 * GiB });
        const types = parsed.events.map((e) => e.type);
        expect(types).toEqual(["start", "gpu_memory_budget_exceeded", "sigterm", "sigkill", "exit"]);
        const at = (type: string) => parsed.events.find((e) => e.type === type)!.ts_us;
        expect((at("sigkill") - at("sigterm")) / 1000).toBeGreaterThanOrEqual(590);
        await writeFile(procsFile, "");
      });

      it("counts only the task's own processes against its budget", async () => {
        // Given another process (pid 1) holding 10 GiB, and the task itself 512 MiB for a moment
        const report = join(tmp, "under.json");
        const script = `echo "1 ${10 * GiB}" > "$SPAWN_FAKE_NVML_PROCS_FILE"; echo "$$ ${GiB / 2}" >> "$SPAWN_FAKE_NVML_PROCS_FILE"; sleep 0.4`;

        // When it runs with a 1 GiB budget
        const result = await exec(
          [
            "run",
            "--gpus",
            GPU0,
            "--mem-limit",
            "1GiB",
            "--poll",
            "50ms",
            "--report",
            report,
            "--",
            "sh",
            "-c",
            script,
          ],
          fake(),
        );

        // Then it finishes normally and its own peak is recorded
        expect(result.code).toBe(0);
        const parsed = await readRunReport(report);
        expect(parsed.reason).toBe("exited");
        expect(parsed.peak_gpu_memory_bytes).toEqual({ [GPU0]: GiB / 2 });
        await writeFile(procsFile, "");
      });

      it("notes that --sm-percent needs an MPS daemon", async () => {
        const report = join(tmp, "sm.json");
        const env = fake({ CUDA_MPS_PIPE_DIRECTORY: join(tmp, "no-mps") });
        const result = await exec(
          ["run", "--gpus", GPU0, "--sm-percent", "50", "--report", report, "--", "true"],
          env,
        );
        expect(result.code).toBe(0);
        const parsed = await readRunReport(report);
        expect(parsed.mps).toBe(false);
        expect(parsed.warnings).toEqual([
          expect.stringMatching(/--sm-percent 50 not applied: no MPS control daemon/),
        ]);
      });
    });

    describe("sample", () => {
      it("streams valid JSON lines and stops cleanly on SIGTERM", async () => {
        // Given a process holding GPU memory and a sampler every 100 ms
        await writeFile(procsFile, `4242 ${3 * GiB}\n`);
        const samples: SampleLine[] = [];
        const errors: Error[] = [];
        const sampler = startSampler(
          binary,
          { env: fake(), intervalMs: 100 },
          (s) => samples.push(s),
          (e) => errors.push(e),
        );

        // When it has produced a few lines and is stopped
        while (samples.length < 3) await new Promise((r) => setTimeout(r, 20));
        await sampler.stop();

        // Then it exited 0, every line parsed, and the telemetry is there
        expect(await sampler.exited).toBe(0);
        expect(errors).toEqual([]);
        const gpu = samples[0]!.gpus[0]!;
        expect(gpu).toMatchObject({
          uuid: GPU0,
          utilization_gpu_pct: 42,
          memory_used_bytes: 3 * GiB,
          power_w: 123.456,
        });
        expect(gpu.processes).toEqual([{ pid: 4242, used_bytes: 3 * GiB }]);
        expect(samples[1]!.ts_us).toBeGreaterThan(samples[0]!.ts_us);
        await writeFile(procsFile, "");
      });
    });

    describe("trace", () => {
      it("turns a task's samples and report into a trace that merges into a sweep trace", async () => {
        // Given a task run with samples every 50 ms
        const report = join(tmp, "traced.json");
        const samples = join(tmp, "traced.jsonl");
        const result = await exec(
          [
            "run",
            "--gpus",
            GPU0,
            "--report",
            report,
            "--samples",
            samples,
            "--sample-interval",
            "50ms",
            "--",
            "sleep",
            "0.3",
          ],
          fake(),
        );
        expect(result.code).toBe(0);

        // When it is traced and merged with itself from another instance
        const trace = await traceTask(binary, {
          samplesFile: samples,
          reportFile: report,
          label: "task 0",
          env: fake(),
        });
        const merged = mergeTaskTraces("sw-1", [
          { instanceId: "i-1", taskIndex: 0, attempt: 1, trace },
          { instanceId: "i-2", taskIndex: 1, attempt: 1, trace },
        ]);

        // Then the task is a slice on GPU 0's track, with utilization counters, on both instances
        const slice = trace.traceEvents.find((e) => e.ph === "X")!;
        expect(slice).toMatchObject({ name: "task 0", tid: 1, args: { status: 0, reason: "exited" } });
        expect(slice.dur).toBeGreaterThanOrEqual(250_000);
        expect(
          trace.traceEvents.filter((e) => e.ph === "C" && e.name === "GPU 0 utilization").length,
        ).toBeGreaterThan(2);
        expect(
          ChromeTrace.parse(merged)
            .traceEvents.filter((e) => e.ph === "X")
            .map((e) => e.pid),
        ).toEqual([1, 2]);
      });

      it("rejects a report file that is not JSON", async () => {
        const bad = join(tmp, "bad.json");
        await writeFile(bad, "{not json");
        const result = await exec(["trace", "--report", bad], fake());
        expect(result.code).toBe(ExecutorExit.usage);
        expect(result.stderr).toMatch(/--report .*bad\.json: invalid JSON at offset 1/);
      });
    });

    describe("wrapper", () => {
      it("locates the built binary, and refuses a SPAWN_EXECUTOR that is not executable", async () => {
        expect(locateExecutor({ PATH: "" })).toBe(binary);
        expect(() => locateExecutor({ SPAWN_EXECUTOR: join(tmp, "nothing-here") })).toThrow(ExecutorError);
        expect(locateExecutor({ SPAWN_EXECUTOR: binary })).toBe(binary);
      });

      it("rejects a report of another shape", async () => {
        const file = join(tmp, "odd-report.json");
        await writeFile(file, JSON.stringify({ schema: 2, type: "run_report" }));
        await expect(readRunReport(file)).rejects.toThrow();
        expect(RunReport.safeParse(JSON.parse(await readFile(file, "utf8"))).success).toBe(false);
      });
    });
  },
);
