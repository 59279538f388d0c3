/**
 * `spawn queue`: reading a queue file (YAML or JSON, validated by core/queue.ts with every issue on
 * its line), launching it as a one-instance sweep of jobs, and its status, dead letters and results.
 */
import { stat } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import YAML from "yaml";
import { outputsPrefix } from "#agent/outputs.js";
import { isWaiting } from "#core/dependencies.js";
import { formatDuration } from "#core/duration.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { SweepRecord, TaskRecord } from "#core/model.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import { parseQueue, type QueueFile } from "#core/queue.js";
import { planQueue, type QueuePlan } from "#core/queue-plan.js";
import { requireSweep } from "#core/sweeps.js";
import type { CliContext } from "../context.js";
import { readUserFile } from "../flags.js";
import { paint, paintStatus, table } from "../output.js";
import { launchSweep } from "./launch.js";
import { readPolicyFiles } from "./plan.js";
import { formatStatus, type SweepStatusView, statusJson, sweepStatus } from "./status.js";

/** YAML (or JSON) text and a map from a path in it to its line; a syntax error is the user's (exit 2). */
export function parseYamlWithLines(
  text: string,
  source: string,
): { value: unknown; lineOf: (path: ReadonlyArray<string | number>) => number | undefined } {
  const lines = new YAML.LineCounter();
  const doc = YAML.parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new AbortError(`${source}: ${doc.errors[0]!.message.split("\n")[0]}`, "fix the YAML syntax");
  }
  const lineOf = (path: ReadonlyArray<string | number>): number | undefined => {
    // The deepest node that exists on the path: a missing key is reported on its parent's line.
    for (let n = path.length; n >= 0; n--) {
      const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
      if (YAML.isNode(node) && node.range) return lines.linePos(node.range[0]).line;
    }
    return undefined;
  };
  return { value: doc.toJS({ maxAliasCount: 100 }), lineOf };
}

/** Validates the text of a queue file; `source` names it in errors. Throws QueueError or AbortError (exit 2). */
export function parseQueueText(text: string, source: string): QueueFile {
  const { value, lineOf } = parseYamlWithLines(text, source);
  return parseQueue(value, { source, lineOf });
}

export async function readQueueFile(path: string): Promise<QueueFile> {
  return parseQueueText(await readUserFile(path, "queue file"), path);
}

/** A queue file turned into what launching it creates; `--dry-run` prints this and creates nothing. */
export interface QueueLaunchPlan extends QueuePlan {
  queue: QueueFile;
  /** Absolute workdir, resolved against the queue file's directory. */
  workdir: string;
  queueDir: string;
  /** Parsed `policy-file:` grants of `resources.iam` (relative to queueDir), for the queue's own role. */
  policyFiles: Record<string, unknown>;
}

export async function planQueueFile(path: string): Promise<QueueLaunchPlan> {
  return planValidQueue(await readQueueFile(path), dirname(resolve(path)), path);
}

/** The plan of a validated queue whose relative paths start at `queueDir`; `source` names it in errors. */
export async function planValidQueue(
  queue: QueueFile,
  queueDir: string,
  source: string,
): Promise<QueueLaunchPlan> {
  const workdir = resolve(queueDir, queue.workdir);
  const info = await stat(workdir).catch(() => undefined);
  if (!info?.isDirectory())
    throw new AbortError(
      `${source}: workdir ${JSON.stringify(queue.workdir)} is not a directory (${workdir})`,
    );
  const plan = planQueue(queue);
  return { ...plan, queue, workdir, queueDir, policyFiles: await readPolicyFiles(plan.spec, queueDir) };
}

/** Launches a planned queue the way `sweep launch` launches a sweep (cli/services/launch.ts). */
export const launchQueue = (ctx: CliContext, plan: QueueLaunchPlan): Promise<SweepRecord> =>
  launchSweep(ctx, { ...plan, specDir: plan.queueDir, queue: plan.settings });

/** Loads a queue or throws NotFoundError (exit 3); a sweep id that is not a queue is refused (exit 2). */
export async function requireQueue(store: StateStore, queueId: string): Promise<SweepRecord> {
  const sweep = await requireSweep(store, queueId);
  if (!sweep.queue)
    throw new AbortError(`${queueId} is a sweep, not a queue`, `spawn sweep status ${queueId}`);
  return sweep;
}

export interface QueueJobView {
  index: number;
  id: string;
  /** A task's status, or `waiting` for a pending job whose dependencies have not all succeeded. */
  status: TaskRecord["status"] | "waiting";
  attempts: number;
  dependsOn: string[];
  durationMs: number | null;
  exitCode: number | null;
  error: string | null;
  outputs: string[];
}

export interface QueueView extends SweepStatusView {
  jobs: QueueJobView[];
  /** Jobs that failed for good, with the end of their last attempt's log. */
  deadLetter: Array<{ id: string; attempts: number; error: string | null; logTail: string | null }>;
}

export async function queueStatus(store: StateStore, queueId: string): Promise<QueueView> {
  await requireQueue(store, queueId);
  const view = await sweepStatus(store, queueId);
  const ids = new Map(view.tasks.map((t) => [t.index, t.job?.id ?? String(t.index)]));
  return {
    ...view,
    jobs: view.tasks.map((t) => ({
      index: t.index,
      id: ids.get(t.index)!,
      status: isWaiting(t) ? "waiting" : t.status,
      attempts: t.attempt,
      dependsOn: (t.dependsOn ?? []).map((d) => ids.get(d) ?? String(d)),
      durationMs: t.durationMs ?? null,
      exitCode: t.exitCode ?? null,
      error: t.error ?? null,
      outputs: t.outputs ?? [],
    })),
    deadLetter: view.tasks
      .filter((t) => t.status === "failed")
      .map((t) => ({
        id: ids.get(t.index)!,
        attempts: t.attempt,
        error: t.error ?? null,
        logTail: t.logTail ?? null,
      })),
  };
}

export function queueJson(view: QueueView) {
  return {
    ...statusJson(view),
    onFailure: view.sweep.queue?.on_failure ?? null,
    jobs: view.jobs,
    deadLetter: view.deadLetter,
  };
}

export function formatQueue(view: QueueView, now: number): string {
  const lines = [formatStatus(view, now, { failedTasks: false }), ""];
  lines.push(
    table(
      ["job", "status", "attempts", "depends on", "took", "result"],
      view.jobs.map((j) => [
        j.id,
        paintStatus(j.status),
        String(j.attempts),
        j.dependsOn.join(",") || "-",
        j.durationMs === null ? "-" : formatDuration(j.durationMs),
        j.error ?? (j.exitCode === null ? "" : `exit ${j.exitCode}`),
      ]),
    ),
  );
  if (view.deadLetter.length > 0) {
    lines.push(
      "",
      paint(
        "red",
        `dead letter (${view.deadLetter.length}): spawn queue retry ${view.sweep.sweepId} --failed`,
      ),
    );
    for (const d of view.deadLetter) {
      lines.push(paint("red", `  ${d.id} (${d.attempts} attempt(s)): ${d.error ?? "failed"}`));
      for (const line of (d.logTail ?? "").trimEnd().split("\n").slice(-10))
        if (line) lines.push(`    | ${line}`);
    }
  }
  return lines.join("\n");
}

/**
 * `spawn queue results`: each job's uploaded files into `<to>/<job id>/` (result_paths under their
 * own paths, SPAWN_OUTPUT_DIR files under `output/`). Returns the files written.
 */
export async function downloadQueueResults(
  store: StateStore,
  objects: ObjectStore,
  queueId: string,
  options: { to: string; job?: string },
): Promise<string[]> {
  const view = await queueStatus(store, queueId);
  const jobs = options.job === undefined ? view.jobs : view.jobs.filter((j) => j.id === options.job);
  if (jobs.length === 0)
    throw new NotFoundError(
      "job",
      options.job ?? "",
      `queue ${queueId} has ${view.jobs.map((j) => j.id).join(", ")}`,
    );
  const written: string[] = [];
  for (const job of jobs) {
    const prefix = outputsPrefix(queueId, job.index);
    for (const key of await objects.list(prefix)) {
      const rel = key.slice(prefix.length).replace(/^files\//, "");
      const target = join(options.to, job.id, ...rel.split("/"));
      if (await objects.getFile(key, target)) written.push(target);
    }
  }
  return written;
}
