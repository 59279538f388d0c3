/**
 * Checkpoints in the object store: where they live, what a manifest holds, and how a step or
 * epoch is read from what the task wrote. Pure; the agent does the syncing (agent/checkpoints.ts).
 *
 * Layout, per task (`checkpoints/<sweep>/<index>/`):
 * - `blobs/<sha256>`: file contents, content-addressed, so a sync uploads only new or changed files;
 * - `manifests/<id>.json`: one per sync, written only after every blob it names is uploaded. A
 *   manifest is the commit: a checkpoint whose manifest is missing was never complete, and one whose
 *   blobs are missing or fail their checksum is skipped when restoring.
 */
import { z } from "zod";
import { AbortError } from "./errors.js";
import { RESUME_FROM } from "./spec.js";

export const CHECKPOINT_MANIFEST_SCHEMA = 1;

export const CheckpointFile = z.object({
  /** `/`-separated, relative to SPAWN_CHECKPOINT_DIR. */
  path: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  bytes: z.number().int().nonnegative(),
});
export type CheckpointFile = z.infer<typeof CheckpointFile>;

export const CheckpointManifest = z.object({
  schema: z.literal(CHECKPOINT_MANIFEST_SCHEMA),
  sweepId: z.string(),
  index: z.number().int().nonnegative(),
  attempt: z.number().int().min(1),
  id: z.string(),
  createdAt: z.number(),
  step: z.number().optional(),
  epoch: z.number().optional(),
  files: z.array(CheckpointFile),
});
export type CheckpointManifest = z.infer<typeof CheckpointManifest>;

/** `0003-000012`: attempt 3, sync 12. Zero-padded so that key order is checkpoint order. */
export function checkpointId(attempt: number, seq: number): string {
  return `${String(attempt).padStart(4, "0")}-${String(seq).padStart(6, "0")}`;
}

/** Orders checkpoint ids numerically (attempt, then sync), also for unpadded ids a user typed. */
export function compareCheckpointIds(a: string, b: string): number {
  const [aa = 0, as = 0] = a.split("-").map(Number);
  const [ba = 0, bs = 0] = b.split("-").map(Number);
  return aa - ba || as - bs;
}

export function checkpointPrefix(sweepId: string, index: number): string {
  return `checkpoints/${sweepId}/${index}/`;
}

export function manifestKey(sweepId: string, index: number, id: string): string {
  return `${checkpointPrefix(sweepId, index)}manifests/${id}.json`;
}

export function blobKey(sweepId: string, index: number, sha256: string): string {
  return `${checkpointPrefix(sweepId, index)}blobs/${sha256}`;
}

/** The checkpoint ids among object keys under a task's prefix, newest first. */
export function manifestIdsNewestFirst(keys: readonly string[]): string[] {
  const ids: string[] = [];
  for (const key of keys) {
    const m = /\/manifests\/(\d+-\d+)\.json$/.exec(key);
    if (m) ids.push(m[1]!);
  }
  return ids.sort((a, b) => compareCheckpointIds(b, a));
}

/**
 * Files a sync leaves alone: ones still being written under a temporary name (`*.tmp`, `*.partial`,
 * `*.swp`, `*~`). Write a checkpoint under such a name and rename it when complete.
 */
export function isTemporaryCheckpointFile(path: string): boolean {
  return /(\.tmp|\.partial|\.swp|~)$/i.test(path);
}

const NAMED_NUMBER = /(step|epoch|iter|iteration|ckpt|checkpoint)[-_.]?(\d+)/gi;

/**
 * The step or epoch a checkpoint reached: from `checkpoint.json` (`{"step": 200}` or
 * `{"epoch": 3}`) when the task wrote one, else the largest number in file names such as
 * `step-200.pt`, `epoch_3.ckpt`, `model.iter1200` (`iter`, `ckpt` and `checkpoint` count as steps).
 */
export function checkpointProgress(
  paths: readonly string[],
  checkpointJson?: unknown,
): { step?: number; epoch?: number } {
  const out: { step?: number; epoch?: number } = {};
  if (checkpointJson && typeof checkpointJson === "object" && !Array.isArray(checkpointJson)) {
    const j = checkpointJson as Record<string, unknown>;
    if (typeof j.step === "number" && Number.isFinite(j.step)) out.step = j.step;
    if (typeof j.epoch === "number" && Number.isFinite(j.epoch)) out.epoch = j.epoch;
    if (out.step !== undefined || out.epoch !== undefined) return out;
  }
  for (const path of paths) {
    const name = path.split("/").pop() ?? path;
    for (const m of name.matchAll(NAMED_NUMBER)) {
      const n = Number(m[2]);
      const key = m[1]!.toLowerCase() === "epoch" ? "epoch" : "step";
      if ((out[key] ?? -1) < n) out[key] = n;
    }
  }
  return out;
}

/** `--resume-from` parsed: the old sweep, its task, and optionally one checkpoint id. */
export interface ResumeFrom {
  sweepId: string;
  index: number;
  checkpointId?: string;
}

export function parseResumeFrom(text: string): ResumeFrom {
  const m = RESUME_FROM.exec(text.trim());
  if (!m) {
    throw new AbortError(
      `--resume-from must be <sweep-id>/<task index>[/<checkpoint id>], got ${JSON.stringify(text)}`,
      "e.g. --resume-from lr-sweep-20260101-ab12/3 (the task's newest checkpoint)",
    );
  }
  return { sweepId: m[1]!, index: Number(m[2]), ...(m[3] ? { checkpointId: m[3] } : {}) };
}
