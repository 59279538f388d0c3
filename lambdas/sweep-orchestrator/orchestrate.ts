/**
 * What the sweep orchestrator does with each event, over ports only (no SDK): the handler
 * wires the aws adapters in, the tests wire dynalite and mocked EC2. Everything here calls the
 * same core functions the embedded control plane runs.
 */
import { mapLimit } from "#core/concurrency.js";
import {
  type ReconcileDeps,
  type ReconcileResult,
  reapExpiredInstances,
  reconcile,
} from "#core/reconcile.js";
import type { Logger } from "#providers/log.js";
import type { OrchestratorEvent } from "./events.js";

export interface OrchestratorOptions {
  /** Sweeps reconciled at once on a tick. @default 8 */
  concurrency?: number;
  /**
   * A tick starts no new reconcile with less than this left before the Lambda timeout; the sweeps
   * it did not reach are the next tick's (a minute later). Never a self-invoke to "continue".
   * @default 30 s
   */
  reserveMs?: number;
  /** Shuffles the active sweeps, so a tick cut short does not always starve the same ones. @default Math.random */
  random?: () => number;
}

/** The summary the function returns (and logs) for one event. */
export type OrchestratorResult =
  | {
      kind: "tick";
      reaped: string[];
      reconciled: number;
      /** Active sweeps left for the next tick because time ran out. */
      deferred: string[];
      launched: number;
      terminated: number;
    }
  | { kind: "sweep"; sweepId: string; result: Summary }
  | {
      kind: "instance";
      ec2InstanceId: string;
      sweepId?: string;
      instanceId?: string;
      ignored?: string;
      result?: Summary;
    };

/** What a reconcile pass did, in counts (a launch of 500 instances is not logged id by id). */
export type Summary = {
  status?: string;
  launched: number;
  terminated: number;
  requeued: number;
  cancelledTasks: number;
  finished?: string;
  deactivated: boolean;
};

const summarize = (r: ReconcileResult): Summary => ({
  ...(r.status ? { status: r.status } : {}),
  launched: r.launched.length,
  terminated: r.terminated.length,
  requeued: r.requeued.length,
  cancelledTasks: r.cancelledTasks,
  ...(r.finished ? { finished: r.finished } : {}),
  deactivated: r.deactivated,
});

/** Reconcile failed for some sweeps on a tick: thrown after the others were done, so Lambda retries. */
export class TickFailedError extends Error {
  override name = "TickFailedError";
}

export async function orchestrate(
  deps: ReconcileDeps,
  event: OrchestratorEvent,
  context: { log: Logger; remainingMs: () => number },
  options: OrchestratorOptions = {},
): Promise<OrchestratorResult> {
  switch (event.kind) {
    case "tick":
      return tick(deps, context, options);
    case "sweep": {
      const result = summarize(await reconcile(deps, event.sweepId));
      context.log.info("reconciled", { sweepId: event.sweepId, ...result });
      return { kind: "sweep", sweepId: event.sweepId, result };
    }
    case "instance": {
      // Only instances spawn launched have a record; anything else on the account is not ours.
      const instance = await deps.store.findInstanceByProviderRef(event.ec2InstanceId);
      if (!instance) {
        return { kind: "instance", ec2InstanceId: event.ec2InstanceId, ignored: "not a spawn instance" };
      }
      const log = context.log.child({ sweepId: instance.sweepId, instanceId: instance.instanceId });
      log.info("instance event", { cause: event.cause, state: event.state });
      // The level-triggered answer: reconcile the sweep, which observes the instance through
      // the provider (preempted, gone) and replaces it. Delivered twice, the second pass finds
      // nothing left to do: its writes are conditional and launches are reserved.
      const result = summarize(await reconcile(deps, instance.sweepId));
      log.info("reconciled", result);
      return {
        kind: "instance",
        ec2InstanceId: event.ec2InstanceId,
        sweepId: instance.sweepId,
        instanceId: instance.instanceId,
        result,
      };
    }
  }
}

/** The periodic pass: the reaper first (it is what stops runaway spend), then every active sweep, in bounded time. */
async function tick(
  deps: ReconcileDeps,
  context: { log: Logger; remainingMs: () => number },
  options: OrchestratorOptions,
): Promise<OrchestratorResult> {
  const reserveMs = options.reserveMs ?? 30_000;
  const random = options.random ?? Math.random;
  const reaped = await reapExpiredInstances(deps);
  for (const instanceId of reaped) context.log.info("reaped", { instanceId, reason: "ttl reached" });

  const sweeps = (await deps.store.listActiveSweeps()).map((s) => s.sweepId);
  for (let i = sweeps.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [sweeps[i], sweeps[j]] = [sweeps[j] as string, sweeps[i] as string];
  }
  const deferred: string[] = [];
  const failed: string[] = [];
  let reconciled = 0;
  let launched = 0;
  let terminated = 0;
  await mapLimit(sweeps, options.concurrency ?? 8, async (sweepId) => {
    if (context.remainingMs() < reserveMs) {
      deferred.push(sweepId);
      return;
    }
    const log = context.log.child({ sweepId });
    try {
      const result = summarize(await reconcile(deps, sweepId));
      reconciled++;
      launched += result.launched;
      terminated += result.terminated;
      if (result.launched || result.terminated || result.requeued || result.finished || result.deactivated)
        log.info("reconciled", result);
    } catch (error) {
      failed.push(sweepId);
      log.error("reconcile failed", { error });
    }
  });
  if (deferred.length)
    context.log.warn("time ran out; the next tick continues", { deferred: deferred.length });
  if (failed.length) {
    throw new TickFailedError(
      `reconcile failed for ${failed.length} sweep(s): ${failed.slice(0, 10).join(", ")}`,
    );
  }
  return { kind: "tick", reaped, reconciled, deferred, launched, terminated };
}
