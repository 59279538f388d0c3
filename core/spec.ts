/**
 * The sweep spec: one zod schema, the single source of truth for the YAML/JSON a user
 * writes, the JSON Schema `spawn schema` prints, and the spec reference in docs/.
 */
import { z } from "zod";
import { parseDuration } from "./duration.js";
import { AbortError } from "./errors.js";
import { SpecError, type SpecIssue } from "./spec-error.js";

export { SpecError, type SpecIssue };

import { parseGrant } from "./iam-policy.js";

/** A duration: seconds as a number, or text such as `90s`, `15m`, `2h`, `1h30m`. */
export const Duration = z
  .union([z.number().nonnegative(), z.string()])
  .describe("duration: seconds as a number, or text such as 90s, 15m, 2h, 1h30m")
  .transform((value, ctx) => {
    const ms = parseDuration(value);
    if (ms === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `not a duration: ${JSON.stringify(value)} (use e.g. 90s, 15m, 2h)`,
      });
      return z.NEVER;
    }
    return ms;
  });

/** Any JSON value a parameter may take; types are kept exactly in the params file. */
export const ParamValue = z.json();
export type ParamValue = z.infer<typeof ParamValue>;
export type Params = Record<string, ParamValue>;

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;
const ParamName = z
  .string()
  .regex(PARAM_NAME, "parameter names start with a letter or _ and use letters, digits, _ . -");

/** `{range: [start, stop, step]}`: start, start+step, … while < stop (numpy arange; step defaults to 1). */
export const RangeValues = z.strictObject({
  range: z.union([z.tuple([z.number(), z.number()]), z.tuple([z.number(), z.number(), z.number()])]),
});
/** `{linspace: [start, stop, num]}`: num evenly spaced values, both ends included. */
export const LinspaceValues = z.strictObject({
  linspace: z.tuple([z.number(), z.number(), z.number().int().min(1).max(1_000_000)]),
});
/** `{logspace: [startExp, stopExp, num, base?]}`: base**x for num x evenly spaced; base defaults to 10. */
export const LogspaceValues = z.strictObject({
  logspace: z.union([
    z.tuple([z.number(), z.number(), z.number().int().min(1).max(1_000_000)]),
    z.tuple([z.number(), z.number(), z.number().int().min(1).max(1_000_000), z.number().positive()]),
  ]),
});
/** The values of one axis: an explicit non-empty list, or a numeric generator. */
export const AxisValues = z.union([z.array(ParamValue).min(1), RangeValues, LinspaceValues, LogspaceValues]);
export type AxisValues = z.infer<typeof AxisValues>;

/** One dimension of a random search. Bounds are inclusive for `int`. */
export const RandomDistribution = z.union([
  z.strictObject({ uniform: z.tuple([z.number(), z.number()]) }),
  z.strictObject({ loguniform: z.tuple([z.number().positive(), z.number().positive()]) }),
  z.strictObject({ int: z.tuple([z.number().int(), z.number().int()]) }),
  z.strictObject({ choice: z.array(ParamValue).min(1) }),
]);
export type RandomDistribution = z.infer<typeof RandomDistribution>;

/**
 * Parameters. Every block present yields a list of assignments; the sweep is the cartesian
 * product of the blocks in the order grid, zip, list, random (the last varies fastest).
 * A parameter may be defined by one block only.
 */
export const ParamsSpec = z.strictObject({
  grid: z
    .record(ParamName, AxisValues)
    .optional()
    .describe("cartesian product of every axis; the last axis varies fastest"),
  zip: z
    .record(ParamName, AxisValues)
    .optional()
    .describe("axes walked together: the i-th task takes the i-th value of every axis; lengths must match"),
  list: z
    .array(z.record(ParamName, ParamValue))
    .min(1)
    .optional()
    .describe("explicit assignments, one per task"),
  random: z
    .strictObject({
      count: z.number().int().min(1).max(1_000_000),
      seed: z.number().int().default(0),
      space: z.record(ParamName, RandomDistribution),
    })
    .optional()
    .describe("seeded random search: count draws from the space; the same seed gives the same tasks"),
});
export type ParamsSpec = z.infer<typeof ParamsSpec>;

export const Backoff = z.enum(["fixed", "exponential", "exponential-jitter"]);

export const RetrySpec = z.strictObject({
  max_attempts: z.number().int().min(1).max(100).default(1).describe("attempts per task, the first included"),
  backoff: Backoff.default("exponential"),
  base: Duration.prefault(10).describe("delay before the first retry"),
  max_delay: Duration.prefault(600).describe("upper bound on any retry delay"),
  on_exit_codes: z
    .array(z.number().int().min(1).max(255))
    .min(1)
    .optional()
    .describe("retry only these exit codes (default: any non-zero exit, timeout or signal)"),
  dont_retry_on_exit_codes: z
    .array(z.number().int().min(1).max(255))
    .min(1)
    .optional()
    .describe("never retry these exit codes, whatever on_exit_codes says"),
});
export type RetrySpec = z.infer<typeof RetrySpec>;

/** Fractions of a GPU a task may ask for; larger requests are whole GPUs. */
export const GPU_FRACTIONS: readonly number[] = [0.25, 0.5];

/** An instance type or a glob over them, as in `instance_types` and `exclude_instance_types`. */
const InstanceTypePattern = z
  .string()
  .regex(
    /^(?=.*[.*?])[a-z0-9*?-]+(\.[a-z0-9*?-]+)?$/,
    "an EC2 instance type such as g5.xlarge, or a glob such as g6.* or p5*",
  );

export const ResourcesSpec = z.strictObject({
  gpus: z
    .number()
    .min(0)
    .max(64)
    .superRefine((n, ctx) => {
      if (!Number.isInteger(n) && !GPU_FRACTIONS.includes(n))
        ctx.addIssue({ code: "custom", message: `GPUs per task are 0.25, 0.5 or a whole number, got ${n}` });
    })
    .default(0)
    .describe("GPUs per task: 0, 0.25, 0.5 or a whole number; a fraction shares one GPU between tasks"),
  gpu: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .transform((v) => (Array.isArray(v) ? v : [v]))
    .optional()
    .describe(
      "accelerator name(s) from the price catalog, e.g. H100, A10G, L4 (any case); `spawn gpus` lists them. Without it, any NVIDIA GPU (aws provider)",
    ),
  slots: z
    .number()
    .int()
    .min(1)
    .max(1024)
    .optional()
    .describe("tasks run at once per instance (default: one per GPU, or one on a machine without GPUs)"),
  instance_types: z
    .array(InstanceTypePattern)
    .min(1)
    .optional()
    .describe(
      "EC2 types to choose from, globs allowed (g6.*); default: any with the GPUs asked for (aws provider)",
    ),
  exclude_instance_types: z
    .array(InstanceTypePattern)
    .default([])
    .describe("EC2 types never to use, globs allowed (aws provider)"),
  spot: z.boolean().default(true).describe("use spot capacity (aws provider)"),
  on_demand_fallback: z
    .boolean()
    .default(false)
    .describe(
      "with spot, launch on-demand when spot capacity is short or after fallback_after_preemptions (aws provider)",
    ),
  fallback_after_preemptions: z
    .number()
    .int()
    .min(1)
    .max(10_000)
    .default(3)
    .describe("spot interruptions of a sweep after which its launches go on-demand, with on_demand_fallback"),
  regions: z
    .array(z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, "an AWS region such as us-east-1"))
    .min(1)
    .optional()
    .describe("regions allowed, in order of preference (aws provider)"),
  max_price: z.number().positive().optional().describe("USD per instance-hour, spot or on-demand"),
  efa: z
    .boolean()
    .default(false)
    .describe(
      "with nodes above 1, give every member an Elastic Fabric Adapter (aws; the instance types must support EFA); gangs always launch into a cluster placement group",
    ),
  iam: z
    .array(
      z.string().superRefine((text, ctx) => {
        try {
          parseGrant(text);
        } catch (error) {
          ctx.addIssue({ code: "custom", message: (error as Error).message });
        }
      }),
    )
    .default([])
    .describe(
      "permissions for the task's own code, least privilege: s3:read:<bucket>/<prefix>, s3:write:<bucket>/<prefix>, dynamodb:read:<table>, dynamodb:write:<table>, secrets:read:<name>, ssm:read:<name>, policy-file:<path>; see docs/task-iam.md (aws provider)",
    ),
});
export type ResourcesSpec = z.infer<typeof ResourcesSpec>;

const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "environment variable names use letters, digits and _");

/** How a task's command may use the network (setup always has it). */
export const NetworkMode = z.enum(["none", "allowlist", "full"]);
export type NetworkMode = z.infer<typeof NetworkMode>;

/** A size in bytes: a number, or text such as `512KB`, `50MB`, `1GB` (powers of 1024). */
export const ByteSize = z
  .union([z.number().int().positive(), z.string()])
  .describe("bytes: a number, or text such as 512KB, 50MB, 1GB (powers of 1024)")
  .transform((value, ctx) => {
    if (typeof value === "number") return value;
    const m = /^(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?$/i.exec(value.trim());
    const units: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 };
    const bytes = m ? Math.round(Number(m[1]) * (units[(m[2] ?? "B").toUpperCase()] ?? 1)) : 0;
    if (bytes <= 0) {
      ctx.addIssue({ code: "custom", message: `not a size: ${JSON.stringify(value)} (use e.g. 50MB)` });
      return z.NEVER;
    }
    return bytes;
  });

export const CheckpointSpec = z.strictObject({
  interval: Duration.prefault(10).describe(
    "how often SPAWN_CHECKPOINT_DIR is scanned; new or changed files are uploaded, then a manifest commits them",
  ),
  bandwidth: ByteSize.optional().describe(
    "upload cap per task, bytes per second (e.g. 50MB); default: uncapped",
  ),
});
export type CheckpointSpec = z.infer<typeof CheckpointSpec>;

/** Chaos mode: real interruption notices and agent crashes, to prove checkpointing before paying for spot. */
export const ChaosSpec = z.strictObject({
  preempt: z
    .number()
    .min(0)
    .max(1)
    .default(0)
    .describe("chance that a task gets one spot interruption notice (through IMDS) while it runs"),
  kill: z
    .number()
    .min(0)
    .max(1)
    .default(0)
    .describe("chance that a task's agent is killed with SIGKILL while it runs"),
  min_delay: Duration.prefault(2).describe("earliest an injected fault fires after the attempt starts"),
  max_delay: Duration.prefault(20).describe("latest an injected fault fires after the attempt starts"),
});
export type ChaosSpec = z.infer<typeof ChaosSpec>;

/** `<sweep-id>/<task index>` or `<sweep-id>/<task index>/<checkpoint id>`. */
export const RESUME_FROM = /^([A-Za-z0-9._-]+)\/(\d+)(?:\/([0-9]+-[0-9]+))?$/;

const SweepSpecFields = z.strictObject({
  name: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
      "1-63 letters, digits, . _ -, starting with a letter or digit",
    )
    .describe("the sweep's name; sweep ids start with it"),
  workdir: z
    .string()
    .min(1)
    .default(".")
    .describe("directory bundled and shipped to every instance, relative to the spec"),
  setup: z.string().min(1).optional().describe("runs once per instance per workdir version, before any task"),
  setup_timeout: Duration.prefault(600).describe("limit on the setup phase"),
  command: z.string().min(1).describe("run with sh -c; {{name}} is replaced by the shell-quoted parameter"),
  params: ParamsSpec.optional().describe("what to sweep over; without it, one task"),
  repeat: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(1)
    .describe("run every parameter assignment this many times"),
  env: z
    .record(EnvName, z.union([z.string(), z.number(), z.boolean()]))
    .default({})
    .describe("extra environment for setup and every task; the task contract's variables win on a clash"),
  resources: ResourcesSpec.prefault({}).describe("what each task needs and where it may run"),
  max_instances: z
    .number()
    .int()
    .min(1)
    .max(5000)
    .default(1)
    .describe("instances (local: agent processes) running at once; never more than the open work needs"),
  nodes: z
    .number()
    .int()
    .min(1)
    .max(256)
    .default(1)
    .describe(
      "instances per task: above 1, every task is a gang of this many members started together, one per instance, with SPAWN_RANK, SPAWN_WORLD_SIZE, SPAWN_PEERS_FILE, SPAWN_HOSTFILE, MASTER_ADDR and MASTER_PORT (aws: in a cluster placement group); see docs/gangs.md",
    ),
  rendezvous_timeout: Duration.prefault(600).describe(
    "with nodes above 1, how long a gang's members wait for each other; past it the attempt fails, naming the ranks that never arrived",
  ),
  retry: RetrySpec.default(RetrySpec.parse({})).describe("what happens when an attempt fails"),
  timeout: Duration.optional().describe("per attempt; the task gets SIGTERM, then SIGKILL after grace"),
  grace: Duration.prefault(90).describe("time between SIGTERM and SIGKILL on cancel, timeout or preemption"),
  lease: Duration.prefault(60).describe(
    "a claim lives this long without a heartbeat before the task is re-queued",
  ),
  ttl: Duration.prefault(86_400).describe(
    "absolute lifetime of every instance; the reaper terminates it after",
  ),
  idle_timeout: Duration.prefault(300).describe("an instance with nothing to run for this long exits"),
  budget: z
    .number()
    .positive()
    .optional()
    .describe("USD; on aws, launches stop and the sweep fails when reached (local runs cost nothing)"),
  outputs: z
    .array(z.string().min(1))
    .default([])
    .describe("globs, relative to the task's working directory, to keep"),
  network: NetworkMode.default("full").describe(
    "the command's network (setup always has it): none (own network namespace), allowlist (aws only), full",
  ),
  allowlist: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe(
      "with network: allowlist, the CIDRs (optionally :port) the command may reach (aws security groups)",
    ),
  checkpoint: CheckpointSpec.prefault({}).describe("how SPAWN_CHECKPOINT_DIR is synced while a task runs"),
  idle_action: z
    .enum(["terminate", "stop", "hibernate"])
    .default("terminate")
    .describe("what an idle instance does (aws); a local agent exits"),
  resume_from: z
    .string()
    .regex(RESUME_FROM, "<sweep-id>/<task index>[/<checkpoint id>]")
    .optional()
    .describe("start every task from this checkpoint of an earlier sweep (sweep launch --resume-from)"),
  chaos: ChaosSpec.optional().describe(
    "inject interruptions and agent crashes (local provider; sweep launch --chaos)",
  ),
});

/** The sweep spec. Unknown keys are errors at every level. */
export const SweepSpec = SweepSpecFields.superRefine((spec, ctx) => {
  // A gang takes whole instances, all at once: fewer instances than members could never start it.
  if (spec.nodes <= 1) return;
  if (spec.max_instances < spec.nodes)
    ctx.addIssue({
      code: "custom",
      path: ["max_instances"],
      message: `max_instances (${spec.max_instances}) must be at least nodes (${spec.nodes}): a gang starts all its members at once`,
    });
  if (spec.resources.slots !== undefined && spec.resources.slots !== 1)
    ctx.addIssue({
      code: "custom",
      path: ["resources", "slots"],
      message: `with nodes: ${spec.nodes}, resources.slots must be 1 or absent (got ${spec.resources.slots}): each gang member takes a whole instance`,
    });
});
/** A validated spec with defaults applied; durations are milliseconds. */
export type SweepSpec = z.infer<typeof SweepSpec>;
/** What a user writes. */
export type SweepSpecInput = z.input<typeof SweepSpec>;

/** One problem in a spec, with the dotted path of the field it concerns. */

/** Dotted path: `resources.instance_types[0]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out;
}

/** Flattens zod issues; for a union, reports the branch that got furthest instead of "invalid input". */
function flattenRaw(
  issues: readonly z.core.$ZodIssue[],
  prefix: readonly PropertyKey[] = [],
): Array<{ at: PropertyKey[]; message: string }> {
  const out: Array<{ at: PropertyKey[]; message: string }> = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) out.push({ at: [...path, key], message: "unknown key" });
    } else if (issue.code === "invalid_union" && issue.errors.length > 0) {
      const depth = (branch: readonly z.core.$ZodIssue[]) =>
        Math.max(...branch.map((i) => i.path.length + (i.code === "invalid_type" ? 0 : 0.5)));
      const best = [...issue.errors].sort((a, b) => depth(b) - depth(a))[0] ?? [];
      const allShallowTypeErrors = issue.errors.every((b) =>
        b.every((i) => i.path.length === 0 && i.code === "invalid_type"),
      );
      if (allShallowTypeErrors) {
        const expected = issue.errors
          .flatMap((b) => b.map((i) => (i.code === "invalid_type" ? i.expected : "")))
          .filter(Boolean);
        out.push({ at: path, message: `expected ${[...new Set(expected)].join(" or ")}` });
      } else out.push(...flattenRaw(best, path));
    } else {
      out.push({ at: path, message: issue.message.replace(/^Invalid input: /, "") });
    }
  }
  return out;
}

function flattenIssues(issues: readonly z.core.$ZodIssue[]): SpecIssue[] {
  return flattenRaw(issues).map((i) => ({ path: formatPath(i.at), message: i.message }));
}

/**
 * The issues of a file validated by a zod schema (queue files, pipelines), each with its line when
 * `lineOf` can place its path.
 */
export function fileIssues(
  issues: readonly z.core.$ZodIssue[],
  lineOf?: (path: ReadonlyArray<string | number>) => number | undefined,
): Array<SpecIssue & { line?: number }> {
  return flattenRaw(issues).map((i) => ({
    path: formatPath(i.at),
    message: i.message,
    line: lineOf?.(i.at as Array<string | number>),
  }));
}

/** Sets `a.b[0].c`-style paths (dots, numeric segments index arrays) on a plain object, creating objects as needed. */
export function applyOverride(target: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split(".").filter((p) => p !== "");
  if (
    parts.length === 0 ||
    parts.some((p) => p === "__proto__" || p === "constructor" || p === "prototype")
  ) {
    throw new AbortError(
      `--set: invalid key ${JSON.stringify(path)}`,
      "use --set key.sub=value, e.g. --set retry.max_attempts=3",
    );
  }
  let node: Record<string, unknown> | unknown[] = target;
  parts.forEach((part, i) => {
    const last = i === parts.length - 1;
    const key: string | number = Array.isArray(node) && /^\d+$/.test(part) ? Number(part) : part;
    if (last) {
      (node as Record<string | number, unknown>)[key] = value;
      return;
    }
    const next = (node as Record<string | number, unknown>)[key];
    if (next === undefined || next === null || typeof next !== "object") {
      const created = /^\d+$/.test(parts[i + 1] ?? "") ? [] : {};
      (node as Record<string | number, unknown>)[key] = created;
      node = created;
    } else node = next as Record<string, unknown>;
  });
}

/**
 * Validates a raw spec (already parsed from YAML/JSON) after applying `--set` overrides
 * (`[path, value]` pairs, values already parsed). Throws SpecError naming every bad field.
 */
export function parseSpec(
  raw: unknown,
  overrides: Array<[string, unknown]> = [],
  source?: string,
): SweepSpec {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new SpecError(
      [{ path: "", message: "a spec is a mapping with at least name and command" }],
      source,
    );
  }
  const copy = structuredClone(raw) as Record<string, unknown>;
  for (const [path, value] of overrides) applyOverride(copy, path, value);
  const result = SweepSpec.safeParse(copy);
  if (!result.success) throw new SpecError(flattenIssues(result.error.issues), source);
  return result.data;
}

/** JSON Schema (draft 2020-12) of what users write, for editors and `spawn schema`. */
export function specJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(SweepSpec, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
}
