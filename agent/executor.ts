/**
 * The agent's handle on `spawn-executor`, the native CUDA executor (agent/executor/, see
 * docs/executor.md): locate the binary, run its subcommands, and parse every JSON document it
 * writes with one zod schema per shape.
 *
 * Wiring it into the agent (agent/agent.ts):
 *
 * ```ts
 * const exe = locateExecutor();                      // null: not installed (no GPU work possible)
 * const inventory = await probe(exe);                // inventory.gpus: [] plus `reason` without a driver
 * const gate = await health(exe, { mode: "quick" }); // boot gate: gate.verdict === "fail" → instance unhealthy
 * const slots = inventory.gpus.length;               // gpus: 1 per task → one slot per GPU
 * const sampler = startSampler(exe, { intervalMs: 1000 }, (s) => {
 *   // idle: every GPU's utilizationGpuPct low for idle_timeout; pressure: memoryUsed / memoryTotal > 0.95
 * });
 * // A task: run this argv instead of the command (e.g. task-runner's `wrapper`), then read the report.
 * const argv = runArgv(exe, { gpus: [uuid], memLimitBytes, reportFile, samplesFile });
 * const report = await readRunReport(reportFile);    // report.reason === "gpu_memory_budget_exceeded"
 * await sampler.stop();
 * ```
 */
import { execFile, spawn } from "node:child_process";
import { accessSync, constants } from "node:fs";
import { readFile } from "node:fs/promises";
import { delimiter, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { ChromeTrace } from "#core/trace.js";

/** The JSON schema version this wrapper understands (`schema` in every document). */
export const EXECUTOR_SCHEMA = 1;

/** Exit codes of spawn-executor (docs/executor.md). `run` returns its task's status instead. */
export const ExecutorExit = {
  ok: 0,
  healthFail: 1,
  usage: 2,
  noGpu: 3,
  internal: 4,
  cannotExecute: 126,
  notFound: 127,
} as const;

/** spawn-executor failed in a way its output does not describe (bad usage, crash, bad JSON). */
export class ExecutorError extends Error {
  override name = "ExecutorError";
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const Schema = z.literal(EXECUTOR_SCHEMA);
const Nullable = <T extends z.ZodType>(t: T) => t.nullable();
/** A derived number and where it came from. */
const Peak = z.object({ value: Nullable(z.number()), source: z.string() });

/** One GPU as `probe` describes it. */
export const ProbedGpu = z.object({
  index: z.number().int(),
  uuid: z.string(),
  name: z.string(),
  compute_capability: Nullable(z.string()),
  sm_count: Peak,
  memory_total_bytes: Nullable(z.number()),
  clocks: z.object({
    sm_max_mhz: Nullable(z.number()),
    memory_max_mhz: Nullable(z.number()),
    sm_current_mhz: Nullable(z.number()),
    memory_current_mhz: Nullable(z.number()),
  }),
  memory_bus_width_bits: Nullable(z.number()),
  ecc: z.object({ enabled: Nullable(z.boolean()), pending_enabled: z.boolean().optional() }),
  mig: z.object({ enabled: Nullable(z.boolean()), pending_enabled: z.boolean().optional() }),
  pcie: z.object({
    current_generation: Nullable(z.number()),
    current_width: Nullable(z.number()),
    max_generation: Nullable(z.number()),
    max_width: Nullable(z.number()),
  }),
  peaks: z.object({
    memory_bandwidth_bytes_per_s: Peak,
    bf16_dense_flops: Peak,
    fp16_dense_flops: Peak,
    fp32_flops: Peak,
    pcie_bytes_per_s: Peak,
  }),
  datasheet: Nullable(z.record(z.string(), z.union([z.number(), z.string()]))),
});
export type ProbedGpu = z.infer<typeof ProbedGpu>;

/** `spawn-executor probe`. Without a driver: `gpus: []` and a `reason`. */
export const ProbeResult = z.object({
  schema: Schema,
  type: z.literal("probe"),
  cuda_runtime_version: z.string(),
  driver_version: Nullable(z.string()).optional(),
  cuda_driver_version: Nullable(z.string()).optional(),
  nvml_library: z.string().optional(),
  cuda: z.object({ available: z.boolean(), reason: z.string().optional() }).optional(),
  gpus: z.array(ProbedGpu),
  reason: z.string().optional(),
});
export type ProbeResult = z.infer<typeof ProbeResult>;

export const Verdict = z.enum(["pass", "warn", "fail"]);
export type Verdict = z.infer<typeof Verdict>;

/** Why a GPU did not pass. */
export const HealthReason = z.object({
  level: z.enum(["warn", "fail"]),
  check: z.string(),
  message: z.string(),
});

/** One GPU's health: verdict, reasons, and the raw measurements (shapes in docs/executor.md). */
export const GpuHealth = z.object({
  index: z.number().int(),
  uuid: z.string(),
  name: z.string(),
  verdict: Verdict,
  reasons: z.array(HealthReason),
  checks: z.record(z.string(), z.unknown()),
  peaks: z.record(z.string(), Peak),
});
export type GpuHealth = z.infer<typeof GpuHealth>;

/** `spawn-executor health`. Without a driver: `gpus: []`, a `reason`, no verdict. */
export const HealthResult = z.object({
  schema: Schema,
  type: z.literal("health"),
  mode: z.enum(["quick", "full"]),
  verdict: Verdict.optional(),
  seconds: z.number().optional(),
  elapsed_s: z.number().optional(),
  gpus: z.array(GpuHealth),
  reason: z.string().optional(),
});
export type HealthResult = z.infer<typeof HealthResult>;

/** One line of `spawn-executor sample` (also what `run --samples` writes). */
export const SampleLine = z.object({
  schema: Schema,
  type: z.literal("sample"),
  ts_us: z.number(),
  gpus: z.array(
    z.object({
      index: z.number().int(),
      uuid: z.string(),
      utilization_gpu_pct: Nullable(z.number()),
      utilization_memory_pct: Nullable(z.number()),
      memory_used_bytes: Nullable(z.number()),
      memory_total_bytes: Nullable(z.number()),
      power_w: Nullable(z.number()),
      temperature_c: Nullable(z.number()),
      sm_clock_mhz: Nullable(z.number()),
      processes: z.array(z.object({ pid: z.number().int(), used_bytes: Nullable(z.number()) })),
    }),
  ),
});
export type SampleLine = z.infer<typeof SampleLine>;

/** The exit report `spawn-executor run --report FILE` writes. */
export const RunReport = z.object({
  schema: Schema,
  type: z.literal("run_report"),
  command: z.array(z.string()),
  mem_limit_bytes: Nullable(z.number()),
  sm_percent: Nullable(z.number()),
  gpus: z.array(z.object({ index: z.number().int(), uuid: z.string() })).optional(),
  mps: z.boolean().optional(),
  warnings: z.array(z.string()).optional(),
  started: z.boolean(),
  pid: z.number().int().optional(),
  start_us: z.number().optional(),
  end_us: z.number().optional(),
  exit_code: Nullable(z.number().int()).optional(),
  signal: Nullable(z.string()).optional(),
  /** What the executor exited with: the task's status, 128+N for signal N. */
  status: z.number().int().optional(),
  reason: z.enum([
    "exited",
    "signaled",
    "gpu_memory_budget_exceeded",
    "no_gpu",
    "command_not_found",
    "command_not_executable",
  ]),
  message: z.string().optional(),
  peak_gpu_memory_bytes: z.record(z.string(), z.number()).optional(),
  events: z.array(z.looseObject({ ts_us: z.number(), type: z.string() })).prefault([]),
});
export type RunReport = z.infer<typeof RunReport>;

const moduleDir = () => fileURLToPath(new URL(".", import.meta.url));

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Finds spawn-executor: `$SPAWN_EXECUTOR` (which must then exist), then
 * agent/executor/build/spawn-executor (next to this module, or under the working directory when
 * bundled into dist/), then `PATH`. Null when it is nowhere: the instance cannot run GPU work.
 */
export function locateExecutor(env: NodeJS.ProcessEnv = process.env): string | null {
  const explicit = env.SPAWN_EXECUTOR;
  if (explicit) {
    if (!executable(explicit)) {
      throw new ExecutorError(`SPAWN_EXECUTOR=${explicit} is not an executable file`, null, "");
    }
    return explicit;
  }
  const candidates = [
    join(moduleDir(), "executor", "build", "spawn-executor"),
    join(process.cwd(), "agent", "executor", "build", "spawn-executor"),
    ...(env.PATH ?? "").split(delimiter).map((dir) => join(dir, "spawn-executor")),
  ];
  return candidates.find((c) => c !== "spawn-executor" && executable(c)) ?? null;
}

interface Completed {
  code: number | null;
  stdout: string;
  stderr: string;
}

function execute(binary: string, args: string[], env?: NodeJS.ProcessEnv): Promise<Completed> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { env: env ?? process.env, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      if (error && typeof error.code !== "number") {
        reject(new ExecutorError(`cannot run ${binary}: ${error.message}`, null, stderr, { cause: error }));
        return;
      }
      resolve({ code: typeof error?.code === "number" ? error.code : 0, stdout, stderr });
    });
  });
}

function parseDocument<T extends z.ZodType>(schema: T, what: string, done: Completed): z.infer<T> {
  let json: unknown;
  try {
    json = JSON.parse(done.stdout);
  } catch (cause) {
    throw new ExecutorError(
      `spawn-executor ${what} exited ${done.code} without a JSON document: ${done.stderr.trim()}`,
      done.code,
      done.stderr,
      { cause },
    );
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    throw new ExecutorError(
      `spawn-executor ${what} wrote an unexpected document: ${z.prettifyError(parsed.error)}`,
      done.code,
      done.stderr,
    );
  }
  return parsed.data;
}

export interface ExecOptions {
  /** Environment for the executor (tests point SPAWN_NVML_LIBRARY at the fake NVML). */
  env?: NodeJS.ProcessEnv;
}

/** Inventory of the GPUs. Never fails for a missing driver: `gpus` is empty and `reason` says why. */
export async function probe(binary: string, options: ExecOptions = {}): Promise<ProbeResult> {
  const done = await execute(binary, ["probe"], options.env);
  if (done.code !== ExecutorExit.ok) {
    throw new ExecutorError(
      `spawn-executor probe exited ${done.code}: ${done.stderr.trim()}`,
      done.code,
      done.stderr,
    );
  }
  return parseDocument(ProbeResult, "probe", done);
}

export interface HealthOptions extends ExecOptions {
  mode?: "quick" | "full";
  /** GEMM burn time; the executor's default is 2 s quick, 30 s full. */
  seconds?: number;
  /** Only these GPUs (UUIDs); default all. */
  gpus?: readonly string[];
  /** Subset of checks; default all. `["nvml"]` needs no CUDA. */
  checks?: readonly ("hbm" | "pcie" | "gemm" | "nvml")[];
}

/**
 * Active health check. Resolves for every outcome the document describes: all passed (exit 0),
 * a GPU failed (exit 1, `verdict: "fail"`), or no driver (exit 3, `gpus: []` and `reason`).
 */
export async function health(binary: string, options: HealthOptions = {}): Promise<HealthResult> {
  const args = ["health", `--${options.mode ?? "quick"}`];
  if (options.seconds !== undefined) args.push("--seconds", String(options.seconds));
  if (options.gpus?.length) args.push("--gpus", options.gpus.join(","));
  if (options.checks?.length) args.push("--checks", options.checks.join(","));
  const done = await execute(binary, args, options.env);
  const described: number[] = [ExecutorExit.ok, ExecutorExit.healthFail, ExecutorExit.noGpu];
  if (done.code === null || !described.includes(done.code)) {
    throw new ExecutorError(
      `spawn-executor health exited ${done.code}: ${done.stderr.trim()}`,
      done.code,
      done.stderr,
    );
  }
  return parseDocument(HealthResult, "health", done);
}

export interface SamplerOptions extends ExecOptions {
  /** @default 1000 */
  intervalMs?: number;
  gpus?: readonly string[];
}

export interface Sampler {
  /** SIGTERM, then resolves when the sampler has exited (its last line delivered). */
  stop(): Promise<void>;
  /** Resolves with the exit code when the sampler exits by itself (e.g. no driver: 3). */
  readonly exited: Promise<number | null>;
}

/**
 * Streams `sample` lines to `onSample`. A line that does not parse goes to `onError` (default:
 * ignored), so one bad line never stops telemetry.
 */
export function startSampler(
  binary: string,
  options: SamplerOptions,
  onSample: (sample: SampleLine) => void,
  onError: (error: Error) => void = () => {},
): Sampler {
  const args = ["sample", "--interval", `${options.intervalMs ?? 1000}ms`];
  if (options.gpus?.length) args.push("--gpus", options.gpus.join(","));
  const child = spawn(binary, args, { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const lines = createInterface({ input: child.stdout });
  lines.on("line", (line) => {
    try {
      onSample(SampleLine.parse(JSON.parse(line)));
    } catch (cause) {
      onError(new ExecutorError(`bad sample line: ${line.slice(0, 200)}`, null, stderr, { cause }));
    }
  });
  const linesDone = new Promise<void>((resolve) => lines.once("close", resolve));
  const exited = new Promise<number | null>((resolve) => {
    child.once("close", (code) => {
      if (code !== 0)
        onError(new ExecutorError(`spawn-executor sample exited ${code}: ${stderr.trim()}`, code, stderr));
      resolve(code);
    });
  });
  return {
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await Promise.all([exited, linesDone]);
    },
  };
}

export interface RunOptions {
  /** The task's GPUs (UUIDs); the task sees CUDA_VISIBLE_DEVICES set to them. */
  gpus: readonly string[];
  /** Per-GPU memory budget of the task's processes. */
  memLimitBytes?: number;
  /** MPS active thread percentage (applied only when an MPS daemon runs). */
  smPercent?: number;
  /** Between the budget SIGTERM and SIGKILL. @default 10 s */
  graceMs?: number;
  /** Where the exit report goes (read it with {@link readRunReport}). */
  reportFile: string;
  /** Optional: the task's GPU telemetry as sample lines, for `trace`. */
  samplesFile?: string;
}

/**
 * The argv that runs `command` under the executor: spawn it (or pass everything before the
 * command as task-runner's `wrapper`). The executor forwards SIGTERM/INT/HUP/QUIT/USR1/USR2 to
 * the task's process group and exits with the task's status.
 */
export function runArgv(binary: string, options: RunOptions, command: readonly string[] = []): string[] {
  if (options.gpus.length === 0) throw new ExecutorError("runArgv needs at least one GPU UUID", null, "");
  const argv = [binary, "run", "--gpus", options.gpus.join(","), "--report", options.reportFile];
  if (options.memLimitBytes !== undefined)
    argv.push("--mem-limit", String(Math.floor(options.memLimitBytes)));
  if (options.smPercent !== undefined) argv.push("--sm-percent", String(options.smPercent));
  if (options.graceMs !== undefined) argv.push("--grace", `${Math.round(options.graceMs)}ms`);
  if (options.samplesFile) argv.push("--samples", options.samplesFile);
  return [...argv, "--", ...command];
}

/** Reads and validates a run report. */
export async function readRunReport(file: string): Promise<RunReport> {
  const text = await readFile(file, "utf8");
  return RunReport.parse(JSON.parse(text));
}

export interface TraceOptions extends ExecOptions {
  samplesFile?: string;
  reportFile?: string;
  /** Names the task's slice and process. @default "task" */
  label?: string;
}

/** One task's trace (Chrome / Perfetto JSON) from its samples and run report; merge with core/trace.ts. */
export async function traceTask(binary: string, options: TraceOptions): Promise<ChromeTrace> {
  const args = ["trace"];
  if (options.samplesFile) args.push("--samples", options.samplesFile);
  if (options.reportFile) args.push("--report", options.reportFile);
  if (options.label) args.push("--label", options.label);
  const done = await execute(binary, args, options.env);
  if (done.code !== ExecutorExit.ok) {
    throw new ExecutorError(
      `spawn-executor trace exited ${done.code}: ${done.stderr.trim()}`,
      done.code,
      done.stderr,
    );
  }
  return parseDocument(ChromeTrace, "trace", done);
}
