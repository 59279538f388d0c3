/** `spawn sweep logs`: each task's combined stdout/stderr from the object store, optionally followed live. */

import { logKey } from "#agent/agent.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import { TERMINAL_SWEEP_STATUSES } from "#core/model.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import { requireSweep, requireTaskIndex } from "#core/sweeps.js";

export interface LogsOptions {
  task?: number;
  attempt?: number;
  follow?: boolean;
  setup?: boolean;
  intervalMs?: number;
  write?: (text: string) => void;
}

/** Latest attempt with a log, per task index. */
async function latestLogs(
  objects: ObjectStore,
  sweepId: string,
  task?: number,
): Promise<Map<number, string>> {
  const prefix = task === undefined ? `logs/${sweepId}/` : `logs/${sweepId}/${task}/`;
  const latest = new Map<number, { attempt: number; key: string }>();
  for (const key of await objects.list(prefix)) {
    const m = /^logs\/[^/]+\/(\d+)\/(\d+)\.log$/.exec(key);
    if (!m) continue;
    const index = Number(m[1]);
    const attempt = Number(m[2]);
    if ((latest.get(index)?.attempt ?? 0) < attempt) latest.set(index, { attempt, key });
  }
  return new Map([...latest.entries()].sort((a, b) => a[0] - b[0]).map(([i, v]) => [i, v.key]));
}

export async function showLogs(
  store: StateStore,
  objects: ObjectStore,
  sweepId: string,
  options: LogsOptions,
): Promise<void> {
  const write = options.write ?? ((t: string) => process.stdout.write(t));
  const sweep = await requireSweep(store, sweepId);
  if (options.task !== undefined) requireTaskIndex(sweep, options.task);
  if (options.setup) {
    const keys = await objects.list(`logs/${sweepId}/setup/`);
    if (keys.length === 0)
      throw new AbortError(
        `sweep ${sweepId} has no setup logs (no setup, or none has run yet)`,
        undefined,
        3,
      );
    for (const key of keys) {
      write(
        `==> ${key
          .split("/")
          .pop()
          ?.replace(/\.log$/, "")} setup <==\n`,
      );
      write(Buffer.from((await objects.getBytes(key)) ?? []).toString("utf8"));
    }
    return;
  }
  if (options.attempt !== undefined) {
    if (options.task === undefined) throw new AbortError("--attempt needs --task");
    const bytes = await objects.getBytes(logKey(sweepId, options.task, options.attempt));
    if (!bytes) throw new NotFoundError("log of attempt", `${options.task}/${options.attempt}`);
    write(Buffer.from(bytes).toString("utf8"));
    return;
  }
  const offsets = new Map<string, number>();
  const many = options.task === undefined;
  for (;;) {
    const ended = TERMINAL_SWEEP_STATUSES.includes((await requireSweep(store, sweepId)).status);
    for (const [index, key] of await latestLogs(objects, sweepId, options.task)) {
      const bytes = await objects.getBytes(key);
      if (!bytes) continue;
      const seen = offsets.get(key) ?? 0;
      if (bytes.length <= seen) continue;
      const text = Buffer.from(bytes.subarray(seen)).toString("utf8");
      offsets.set(key, bytes.length);
      if (!options.follow && many) write(`==> task ${index} <==\n${text}${text.endsWith("\n") ? "" : "\n"}`);
      else if (many) write(text.replace(/^(?=.)/gm, `[${index}] `));
      else write(text);
    }
    if (!options.follow || ended) return;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
  }
}
