/**
 * Queue files: ordered jobs with dependencies (`spawn queue`). One zod schema for the file, and the
 * graph checks that run before anything is created: duplicate ids, unknown or self dependencies,
 * and cycles (named, e.g. `prep → train → prep`). Pure; see docs/queues.md.
 */
import { z } from "zod";
import { AbortError } from "./errors.js";
import { Duration, fileIssues, formatPath, ResourcesSpec, RetrySpec, type SpecIssue } from "./spec.js";

const JobId = z
  .string()
  .regex(
    /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    "1-128 letters, digits, . _ -, starting with a letter or digit",
  );

/**
 * A job's retry policy: the sweep's {@link RetrySpec}, with `on_exit_codes` spelled
 * `retry_on_exit_codes` as queue files (AWS Batch, the original spawn) do.
 */
export const QueueRetry = RetrySpec.omit({ on_exit_codes: true })
  .extend({
    retry_on_exit_codes: RetrySpec.shape.on_exit_codes.describe(
      "retry only these exit codes (default: any failure)",
    ),
  })
  .superRefine((r, ctx) => {
    const both = (r.retry_on_exit_codes ?? []).filter((c) => r.dont_retry_on_exit_codes?.includes(c));
    if (both.length > 0)
      ctx.addIssue({
        code: "custom",
        path: ["dont_retry_on_exit_codes"],
        message: `exit code(s) ${both.join(", ")} are also in retry_on_exit_codes`,
      });
  });
export type QueueRetry = z.infer<typeof QueueRetry>;

/** The policy core/retry.ts applies to a job's attempts. */
export function jobRetryPolicy(retry: QueueRetry): RetrySpec {
  const { retry_on_exit_codes, ...rest } = retry;
  return { ...rest, ...(retry_on_exit_codes ? { on_exit_codes: retry_on_exit_codes } : {}) };
}

const EnvName = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "environment variable names use letters, digits and _");

export const QueueJob = z.strictObject({
  id: JobId.describe("unique within the queue; other jobs name it in depends_on"),
  command: z.string().min(1).describe("run with sh -c in the queue's workdir"),
  timeout: Duration.optional().describe("per attempt"),
  env: z.record(EnvName, z.union([z.string(), z.number(), z.boolean()])).default({}),
  depends_on: z.array(JobId).default([]).describe("jobs that must succeed before this one starts"),
  retry: QueueRetry.default(QueueRetry.parse({})),
  result_paths: z
    .array(z.string().min(1))
    .default([])
    .describe("globs, relative to the job's directory, uploaded as its results"),
});
export type QueueJob = z.infer<typeof QueueJob>;

/** What a queue keeps on its sweep record besides the spec (the jobs live on its tasks). */
export const QueueSettings = z.object({
  global_timeout: Duration.optional().describe(
    "the whole queue; when it passes, the queue fails and running jobs are stopped",
  ),
  on_failure: z
    .enum(["stop", "continue"])
    .default("stop")
    .describe("stop: no new job starts after a job fails for good; continue: jobs not depending on it go on"),
});
export type QueueSettings = z.infer<typeof QueueSettings>;

export const QueueFile = z.strictObject({
  name: z
    .string()
    .regex(
      /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/,
      "1-63 letters, digits, . _ -, starting with a letter or digit",
    ),
  workdir: z
    .string()
    .min(1)
    .default(".")
    .describe("bundled and shipped to the instance, relative to the file"),
  setup: z.string().min(1).optional().describe("runs once on the instance before any job"),
  env: z.record(EnvName, z.union([z.string(), z.number(), z.boolean()])).default({}),
  slots: z.number().int().min(1).max(1024).default(1).describe("independent jobs run at once"),
  resources: ResourcesSpec.omit({ slots: true })
    .prefault({})
    .describe("what the queue's one instance needs, as in a sweep spec (gpus, instance_types, spot, ...)"),
  ttl: Duration.prefault(86_400).describe("absolute lifetime of the queue's instance"),
  lease: Duration.prefault(60).describe(
    "a job's claim lives this long without a heartbeat before it is re-queued",
  ),
  grace: Duration.prefault(90).describe("time between SIGTERM and SIGKILL on cancel, timeout or preemption"),
  ...QueueSettings.shape,
  jobs: z.array(QueueJob).min(1).max(10_000),
});
export type QueueFile = z.infer<typeof QueueFile>;

/**
 * A file validated by line (a queue file, a pipeline) that failed: exit 2, nothing created. Issues
 * carry their line where known.
 */
export class FileIssuesError extends AbortError {
  constructor(
    what: string,
    readonly issues: Array<SpecIssue & { line?: number }>,
    source: string | undefined,
    hint: string,
  ) {
    super(
      `invalid ${what}${source ? ` ${source}` : ""}:\n${issues
        .map((i) => `  ${i.line !== undefined ? `line ${i.line}: ` : ""}${i.path || "(root)"}: ${i.message}`)
        .join("\n")}`,
      hint,
    );
  }
}

/** A queue file that failed validation. */
export class QueueError extends FileIssuesError {
  override name = "QueueError";
  constructor(issues: Array<SpecIssue & { line?: number }>, source?: string) {
    super("queue", issues, source, "see docs/queues.md");
  }
}

/**
 * Finds a cycle among `jobs` (edges job → dependency), or undefined. Depth-first with colours;
 * the cycle is returned in dependency order, closed: `[a, b, a]` when a depends on b and b on a.
 */
export function findCycle(jobs: ReadonlyArray<Pick<QueueJob, "id" | "depends_on">>): string[] | undefined {
  const deps = new Map(jobs.map((j) => [j.id, j.depends_on]));
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    state.set(id, "open");
    stack.push(id);
    for (const dep of deps.get(id) ?? []) {
      if (!deps.has(dep)) continue;
      if (state.get(dep) === "open") return [...stack.slice(stack.indexOf(dep)), dep];
      if (!state.has(dep)) {
        const found = visit(dep);
        if (found) return found;
      }
    }
    stack.pop();
    state.set(id, "done");
    return undefined;
  };
  for (const job of jobs) {
    if (state.has(job.id)) continue;
    const found = visit(job.id);
    if (found) return found;
  }
  return undefined;
}

/**
 * Validates a raw queue (parsed YAML/JSON). `lineOf` maps a path (`["jobs", 3, "depends_on", 0]`)
 * to its line in the file, so every issue can name its line.
 *
 * @throws QueueError naming every schema problem, duplicate id, unknown or self dependency, and
 *   the first cycle found.
 */
export function parseQueue(
  raw: unknown,
  options: { source?: string; lineOf?: (path: ReadonlyArray<string | number>) => number | undefined } = {},
): QueueFile {
  const at = (path: ReadonlyArray<string | number>, message: string) => ({
    path: formatPath(path),
    message,
    line: options.lineOf?.(path),
  });
  const result = QueueFile.safeParse(raw);
  if (!result.success) throw new QueueError(fileIssues(result.error.issues, options.lineOf), options.source);
  const queue = result.data;
  const issues: Array<SpecIssue & { line?: number }> = [];
  const firstIndex = new Map<string, number>();
  queue.jobs.forEach((job, i) => {
    const first = firstIndex.get(job.id);
    if (first === undefined) firstIndex.set(job.id, i);
    else
      issues.push(at(["jobs", i, "id"], `duplicate job id ${JSON.stringify(job.id)} (also jobs[${first}])`));
  });
  queue.jobs.forEach((job, i) => {
    job.depends_on.forEach((dep, d) => {
      if (dep === job.id) issues.push(at(["jobs", i, "depends_on", d], `job ${job.id} depends on itself`));
      else if (!firstIndex.has(dep))
        issues.push(at(["jobs", i, "depends_on", d], `unknown job ${JSON.stringify(dep)}`));
    });
  });
  if (issues.length === 0) {
    const cycle = findCycle(queue.jobs);
    if (cycle) {
      const index = firstIndex.get(cycle[0]!)!;
      issues.push(at(["jobs", index, "depends_on"], `dependency cycle: ${cycle.join(" → ")}`));
    }
  }
  if (issues.length > 0) throw new QueueError(issues, options.source);
  return queue;
}

/** Job ids in an order where every job comes after its dependencies; ties keep file order. */
export function topologicalOrder(jobs: ReadonlyArray<Pick<QueueJob, "id" | "depends_on">>): string[] {
  const waiting = new Map(jobs.map((j) => [j.id, new Set(j.depends_on)]));
  const order: string[] = [];
  while (waiting.size > 0) {
    const ready = [...waiting].filter(([, deps]) => deps.size === 0).map(([id]) => id);
    if (ready.length === 0)
      throw new AbortError("dependency cycle: validate the queue with parseQueue first");
    for (const id of ready) {
      waiting.delete(id);
      order.push(id);
      for (const deps of waiting.values()) deps.delete(id);
    }
  }
  return order;
}

/** `ids` and every job that depends on them, directly or not: what `queue retry --failed` re-runs. */
export function withDependents(
  jobs: ReadonlyArray<Pick<QueueJob, "id" | "depends_on">>,
  ids: Iterable<string>,
): Set<string> {
  const out = new Set(ids);
  let grew = true;
  while (grew) {
    grew = false;
    for (const job of jobs) {
      if (!out.has(job.id) && job.depends_on.some((d) => out.has(d))) {
        out.add(job.id);
        grew = true;
      }
    }
  }
  return out;
}
