/** `spawn sweep download`: every kept output file of a sweep (or one task) into a local directory. */
import { join } from "node:path";
import { outputsPrefix } from "#agent/outputs.js";
import type { ObjectStore, StateStore } from "#core/ports.js";
import { requireSweep, requireTaskIndex } from "#core/sweeps.js";

export async function downloadOutputs(
  store: StateStore,
  objects: ObjectStore,
  sweepId: string,
  options: { task?: number; to: string },
): Promise<string[]> {
  const sweep = await requireSweep(store, sweepId);
  if (options.task !== undefined) requireTaskIndex(sweep, options.task);
  const prefix = options.task === undefined ? `outputs/${sweepId}/` : outputsPrefix(sweepId, options.task);
  const written: string[] = [];
  for (const key of await objects.list(prefix)) {
    const rel = key.slice(`outputs/${sweepId}/`.length);
    const target = join(options.to, ...rel.split("/"));
    if (await objects.getFile(key, target)) written.push(target);
  }
  return written;
}
