/** `spawn cost`: actual cost from instance records (run time × the price paid), grouped. */
import { type CostGroup, type CostReport, costReport } from "#core/cost.js";
import { parseDuration } from "#core/duration.js";
import { AbortError, NotFoundError } from "#core/errors.js";
import type { InstanceRecord, SweepRecord } from "#core/model.js";
import type { StateStore } from "#core/ports.js";

/** `--since 7d` (a duration back from now) or `--since 2026-11-01` (a date or ISO time). */
export function parseSince(text: string, now: number): number {
  const ms = parseDuration(text);
  if (ms !== undefined) return now - ms;
  const at = Date.parse(text);
  if (/^\d{4}-\d{2}-\d{2}/.test(text) && Number.isFinite(at)) return at;
  throw new AbortError(
    `--since must be a duration or a date, got ${JSON.stringify(text)}`,
    "e.g. --since 7d, --since 12h, --since 2026-11-01",
  );
}

export interface CostQuery {
  owner: string;
  sweepId?: string;
  by: CostGroup;
  since?: number;
  now: number;
}

export interface CostResult extends CostReport {
  sweeps: number;
  /** Sweeps of the local provider among them: they run on this machine and cost nothing. */
  localSweeps: number;
}

/** Every instance of the sweep (or of the owner's sweeps that were live after `since`), costed. */
export async function sweepCosts(store: StateStore, query: CostQuery): Promise<CostResult> {
  let sweeps: SweepRecord[];
  if (query.sweepId) {
    const sweep = await store.getSweep(query.sweepId);
    if (!sweep) throw new NotFoundError("sweep", query.sweepId, "spawn sweep list shows your sweeps");
    sweeps = [sweep];
  } else {
    const since = query.since ?? 0;
    sweeps = (await store.listSweeps({ owner: query.owner, limit: 1000 })).filter(
      (s) => (s.finishedAt ?? query.now) >= since,
    );
  }
  const instances: InstanceRecord[] = (
    await Promise.all(sweeps.map((s) => store.listInstances(s.sweepId)))
  ).flat();
  return {
    ...costReport(instances, query.now, query.by, query.since),
    sweeps: sweeps.length,
    localSweeps: sweeps.filter((s) => s.provider === "local").length,
  };
}
