/** `spawn sweep launch`: bundle the workdir once, upload it, write the sweep and its tasks. */
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import type { BundleRef, SweepRecord } from "#core/model.js";
import type { QueueSettings } from "#core/queue.js";
import { createSweep, launchPrepared, newSweepId } from "#core/sweeps.js";
import { formatTraceparent, newTraceContext } from "#core/traceparent.js";
import { bundleKey, createBundle } from "#providers/bundle.js";
import { type CliContext, currentOwner } from "../context.js";
import type { SweepPlan } from "./plan.js";

/** Bundles a workdir and uploads it unless the same content is there already. */
export async function uploadWorkdir(ctx: CliContext, workdir: string): Promise<BundleRef> {
  const bundle = await createBundle(workdir, join(ctx.paths.home, "tmp"));
  try {
    const key = bundleKey(bundle.sha256);
    if (!(await ctx.objects.exists(key))) await ctx.objects.putFile(key, bundle.file);
    return { key, sha256: bundle.sha256, bytes: bundle.bytes };
  } finally {
    await rm(bundle.file, { force: true });
  }
}

export const cliRandom = () => randomBytes(4).readUInt32BE() / 2 ** 32;

/** A new trace for one launch: recorded on what it creates, and sent with the AWS kick. */
export const launchTraceparent = (): string =>
  formatTraceparent(newTraceContext((n) => new Uint8Array(randomBytes(n))));

/** What `sweep launch` flags add to any launch (sweep, queue, pipeline). */
export interface LaunchOptions {
  /** The AWS dashboard team that sees it (`--team`, validated by core/teams.ts); absent: `default`. */
  team?: string;
}

/** What one launch writes: a sweep's plan, or a queue's (a one-instance sweep whose tasks are its jobs). */
export type LaunchPlan = Pick<SweepPlan, "spec" | "tasks" | "workdir" | "specDir" | "policyFiles"> & {
  queue?: QueueSettings;
};

/**
 * Uploads the workdir, then prepares (aws: the sweep's own role), writes and announces the sweep
 * (core/sweeps.ts launchPrepared). `sweep launch` and `queue launch` both come here.
 */
export async function launchSweep(
  ctx: CliContext,
  plan: LaunchPlan,
  options: LaunchOptions = {},
): Promise<SweepRecord> {
  const traceparent = launchTraceparent();
  const bundle = await uploadWorkdir(ctx, plan.workdir);
  const sweepId = newSweepId(plan.spec.name, ctx.clock.now(), cliRandom);
  return launchPrepared(ctx, {
    traceparent,
    prepare: [{ sweepId, spec: plan.spec, policyFiles: plan.policyFiles, bundle }],
    write: () =>
      createSweep(
        { store: ctx.store, clock: ctx.clock },
        {
          sweepId,
          spec: plan.spec,
          tasks: plan.tasks,
          ...(plan.queue ? { queue: plan.queue } : {}),
          owner: currentOwner(),
          provider: ctx.provider,
          bundle,
          specDir: plan.specDir,
          traceparent,
          ...(options.team ? { team: options.team } : {}),
        },
      ),
  });
}
