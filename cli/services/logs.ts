/**
 * `spawn sweep logs`: each task's combined stdout/stderr from the object store, where the agent
 * ships it in chunks while the task runs (agent/log-shipper.ts); optionally followed live.
 */

import { logChunkPrefix } from "#agent/log-shipper.js";
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

/** Log chunk keys of every attempt, per task index, attempts and chunks in order. */
async function chunksByAttempt(
  objects: ObjectStore,
  sweepId: string,
  task?: number,
): Promise<Map<number, Map<number, string[]>>> {
  const prefix = task === undefined ? `logs/${sweepId}/` : `logs/${sweepId}/${task}/`;
  const out = new Map<number, Map<number, string[]>>();
  for (const key of await objects.list(prefix)) {
    const m = /^logs\/[^/]+\/(\d+)\/(\d+)\/\d+\.log$/.exec(key);
    if (!m) continue;
    const index = Number(m[1]);
    const attempt = Number(m[2]);
    const attempts = out.get(index) ?? new Map<number, string[]>();
    out.set(index, attempts);
    attempts.set(attempt, [...(attempts.get(attempt) ?? []), key]);
  }
  // Keys are listed sorted, and chunk numbers are zero-padded: each list is already in log order.
  return new Map([...out.entries()].sort((a, b) => a[0] - b[0]));
}

async function readChunks(objects: ObjectStore, keys: readonly string[]): Promise<string> {
  const parts = await Promise.all(keys.map((k) => objects.getBytes(k)));
  return Buffer.concat(parts.map((p) => Buffer.from(p ?? []))).toString("utf8");
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
    const keys = await objects.list(logChunkPrefix(sweepId, options.task, options.attempt));
    if (keys.length === 0) throw new NotFoundError("log of attempt", `${options.task}/${options.attempt}`);
    write(await readChunks(objects, keys));
    return;
  }
  // Chunks already printed, and the attempt each task is being followed at.
  const printed = new Set<string>();
  const following = new Map<number, number>();
  const many = options.task === undefined;
  for (;;) {
    const ended = TERMINAL_SWEEP_STATUSES.includes((await requireSweep(store, sweepId)).status);
    for (const [index, attempts] of await chunksByAttempt(objects, sweepId, options.task)) {
      const latest = Math.max(...attempts.keys());
      const before = following.get(index);
      following.set(index, latest);
      const fresh = (attempts.get(latest) ?? []).filter((k) => !printed.has(k));
      // A new attempt (a retry, or a resume after preemption) is announced when followed.
      const header =
        options.follow && before !== undefined && before !== latest ? `[spawn] attempt ${latest}\n` : "";
      if (fresh.length === 0 && !header) continue;
      for (const k of fresh) printed.add(k);
      const text = header + (await readChunks(objects, fresh));
      if (!options.follow && many) write(`==> task ${index} <==\n${text}${text.endsWith("\n") ? "" : "\n"}`);
      else if (many) write(text.replace(/^(?=.)/gm, `[${index}] `));
      else write(text);
    }
    if (!options.follow || ended) return;
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 1000));
  }
}
