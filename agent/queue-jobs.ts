/**
 * What the agent does differently for a queue job (a task carrying `job`): jobs share one working
 * directory on the instance, so a job reads the files the jobs it depends on wrote. When a job runs
 * on an instance that did not run some of its dependencies (the first instance was lost, or the
 * agent restarted), their uploaded results are fetched into that directory first.
 */
import { open } from "node:fs/promises";
import { join, normalize, sep } from "node:path";
import type { SweepRecord, TaskRecord } from "#core/model.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import { outputsPrefix } from "./outputs.js";

/** Bytes of a log's end kept on a task that failed for good (the dead-letter list shows them). */
export const LOG_TAIL_BYTES = 4096;

/** The last `bytes` of a file as text (from a line start where one is near), or undefined when unreadable. */
export async function readLogTail(file: string, bytes = LOG_TAIL_BYTES): Promise<string | undefined> {
  const handle = await open(file, "r").catch(() => undefined);
  if (!handle) return undefined;
  try {
    const { size } = await handle.stat();
    const length = Math.min(size, bytes);
    const buffer = Buffer.alloc(length);
    await handle.read(buffer, 0, length, size - length);
    let text = buffer.toString("utf8");
    if (size > length) {
      const newline = text.indexOf("\n");
      if (newline >= 0 && newline < 200) text = text.slice(newline + 1);
    }
    return text;
  } finally {
    await handle.close();
  }
}

/** Every task `task` depends on, directly or not, loaded from the store. */
async function ancestors(
  store: StateStore,
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">,
  task: TaskRecord,
): Promise<TaskRecord[]> {
  const seen = new Map<number, TaskRecord>();
  let frontier = task.dependsOn ?? [];
  while (frontier.length > 0) {
    const loaded = await Promise.all(
      frontier.filter((i) => !seen.has(i)).map((i) => store.getTask(sweep.sweepId, i, sweep.shardCount)),
    );
    frontier = [];
    for (const t of loaded) {
      if (!t || seen.has(t.index)) continue;
      seen.set(t.index, t);
      frontier.push(...(t.dependsOn ?? []));
    }
  }
  return [...seen.values()];
}

/**
 * Fetches into `dir` the result files (`files/<path>`, uploaded from `result_paths`) of every job
 * `task` depends on, directly or not, that this instance did not run itself (`ranHere`).
 * Returns how many files it fetched.
 */
export async function fetchDependencyResults(options: {
  store: StateStore;
  objects: ObjectStore;
  sweep: Pick<SweepRecord, "sweepId" | "shardCount">;
  task: TaskRecord;
  dir: string;
  ranHere: ReadonlySet<number>;
}): Promise<number> {
  const { store, objects, sweep, task, dir, ranHere } = options;
  if (!task.dependsOn?.length) return 0;
  let fetched = 0;
  for (const dep of await ancestors(store, sweep, task)) {
    if (ranHere.has(dep.index) || dep.status !== "succeeded") continue;
    const prefix = `${outputsPrefix(sweep.sweepId, dep.index)}files/`;
    for (const key of dep.outputs ?? []) {
      if (!key.startsWith(prefix)) continue;
      const rel = normalize(key.slice(prefix.length));
      if (rel.startsWith(`..${sep}`) || rel === "..") continue;
      if (await objects.getFile(key, join(dir, rel))) fetched++;
    }
  }
  return fetched;
}
