/**
 * Launch flags of the spot-resilience features: `--chaos` and `--resume-from` become spec fields
 * (so they are validated, stored and shown like any other), and the checks that need a provider
 * or the object store run before anything is created.
 */

import { networkRefusal } from "#agent/network.js";
import { checkpointPrefix, manifestIdsNewestFirst, manifestKey, parseResumeFrom } from "#core/checkpoint.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import type { SweepSpec } from "#core/spec.js";
import { requireSweep, requireTaskIndex } from "#core/sweeps.js";

/** `--chaos preempt=0.3,kill=0.1` as `--set` overrides (`chaos.preempt=0.3`, ...). */
export function chaosOverrides(text: string): string[] {
  const out: string[] = [];
  for (const part of text.split(",").filter((p) => p.trim() !== "")) {
    const m = /^\s*(preempt|kill)\s*=\s*([0-9.]+)\s*$/.exec(part);
    const value = m ? Number(m[2]) : Number.NaN;
    if (!m || !(value >= 0 && value <= 1))
      throw new AbortError(
        `--chaos: expected preempt=<0..1> and/or kill=<0..1>, got ${JSON.stringify(part)}`,
        "e.g. --chaos preempt=0.3,kill=0.1",
      );
    out.push(`chaos.${m[1]}=${value}`);
  }
  if (out.length === 0)
    throw new AbortError(`--chaos: expected preempt=<0..1> and/or kill=<0..1>, got ${JSON.stringify(text)}`);
  return out;
}

/** Refuses a spec this provider cannot run as written (before a dry run prints, before a launch creates). */
export function checkSpecForProvider(spec: SweepSpec, provider: string): void {
  const refusal = networkRefusal(spec, provider);
  if (refusal) throw new AbortError(refusal, "see docs/agent.md, Network");
  if (spec.chaos && provider !== "local")
    throw new AbortError("chaos mode runs on the embedded default only (--provider local)");
}

/**
 * Pins `resume_from` to one checkpoint: the task's newest, or the one named, checked to exist.
 * Pinned at launch, the new sweep's tasks all start from the same state even if the old sweep
 * goes on writing checkpoints. Throws NotFoundError (exit 3) for a missing sweep, task or checkpoint.
 */
export async function pinResumeFrom(store: StateStore, objects: ObjectStore, text: string): Promise<string> {
  const from = parseResumeFrom(text);
  const old = await requireSweep(store, from.sweepId);
  requireTaskIndex(old, from.index);
  let id = from.checkpointId;
  if (id === undefined) {
    [id] = manifestIdsNewestFirst(
      await objects.list(`${checkpointPrefix(from.sweepId, from.index)}manifests/`),
    );
    if (id === undefined)
      throw new NotFoundError("checkpoint of task", `${from.sweepId}/${from.index}`, "it never synced one");
  } else if (!(await objects.exists(manifestKey(from.sweepId, from.index, id)))) {
    throw new NotFoundError("checkpoint", `${from.sweepId}/${from.index}/${id}`);
  }
  return `${from.sweepId}/${from.index}/${id}`;
}
