/**
 * A pipeline stage's inputs, as its tasks see them: `SPAWN_INPUT_DIR/<stage>/` holds what the
 * stages it waits on kept (their SPAWN_OUTPUT_DIR files and `outputs` matches, under the same
 * relative paths), read-only. Waiting on a whole stage gives one directory per task of it
 * (`<stage>/<task index>/`, or `<stage>/<job id>/` for a queue), fetched once per instance;
 * `n_to_n` gives task i the files of task i only (`<stage>/`).
 */
import { chmod, mkdir, readdir, stat, symlink } from "node:fs/promises";
import { join, normalize, sep } from "node:path";
import type { StageOf, TaskRecord } from "#core/model.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import { outputsPrefix } from "./outputs.js";

/** A kept file's path under its task's input directory: the key without `output/` or `files/`. */
function inputPath(sweepId: string, task: Pick<TaskRecord, "index">, key: string): string | undefined {
  const rel = key.slice(outputsPrefix(sweepId, task.index).length).replace(/^(output|files)\//, "");
  const clean = normalize(rel);
  return clean === ".." || clean.startsWith(`..${sep}`) || clean.startsWith(sep) ? undefined : clean;
}

async function fetchTask(
  objects: ObjectStore,
  sweepId: string,
  task: TaskRecord,
  dir: string,
): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const key of task.outputs ?? []) {
    const rel = inputPath(sweepId, task, key);
    if (rel) await objects.getFile(key, join(dir, rel));
  }
}

/** Makes everything under `dir` read-only (files 0444, directories 0555), deepest first. */
async function freeze(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await freeze(path);
    else if (entry.isFile()) await chmod(path, 0o444);
  }
  await chmod(dir, 0o555);
}

export class StageInputs {
  /** Whole-stage inputs, fetched once per instance: stage name → directory. */
  private readonly whole = new Map<string, Promise<string>>();

  constructor(
    private readonly o: { store: StateStore; objects: ObjectStore; stage: StageOf; cacheDir: string },
  ) {}

  /** Builds `dir` (the task's SPAWN_INPUT_DIR) for task `index`; returns it. */
  async prepare(index: number, dir: string): Promise<string> {
    await mkdir(dir, { recursive: true });
    for (const input of this.o.stage.inputs) {
      const target = join(dir, input.stage);
      if (input.type === "whole") {
        // Shared by every task on this instance: linked, not copied.
        await symlink(await this.wholeStage(input.stage, input.sweepId), target);
        continue;
      }
      const sweep = await this.o.store.getSweep(input.sweepId);
      const task = sweep && (await this.o.store.getTask(sweep.sweepId, index, sweep.shardCount));
      if (task) await fetchTask(this.o.objects, input.sweepId, task, target);
      else await mkdir(target, { recursive: true });
      await freeze(target);
    }
    await chmod(dir, 0o555);
    return dir;
  }

  private wholeStage(stage: string, sweepId: string): Promise<string> {
    let ready = this.whole.get(stage);
    if (!ready) {
      ready = (async () => {
        const dir = join(this.o.cacheDir, stage);
        if (await stat(dir).catch(() => undefined)) return dir;
        const sweep = await this.o.store.getSweep(sweepId);
        const tasks = sweep ? await this.o.store.listTasks(sweepId, sweep.shardCount) : [];
        for (const task of tasks)
          await fetchTask(this.o.objects, sweepId, task, join(dir, task.job?.id ?? String(task.index)));
        await mkdir(dir, { recursive: true });
        await freeze(dir);
        return dir;
      })();
      this.whole.set(stage, ready);
    }
    return ready;
  }
}

/** Gives write permission back under `dir` (a task's input directory), so it can be removed. */
export async function thaw(dir: string): Promise<void> {
  const info = await stat(dir).catch(() => undefined);
  if (!info?.isDirectory()) return;
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) await thaw(join(dir, entry.name));
  }
}
