/**
 * An agent in a test: a sweep written to the store (dynalite) with one `launching` instance record
 * for it, and the options an Agent needs around them (file objects and work directories under a
 * test root, a quiet logger). Tests add what they exercise (events, hostnames, log lines).
 */
import { randomUUID } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { AgentOptions } from "../../agent/agent.js";
import { SpawnEvent } from "../../core/events.js";
import type { SweepRecord } from "../../core/model.js";
import { expandParams } from "../../core/params.js";
import { type EventSink, type StateStore, systemClock } from "../../core/ports.js";
import { parseSpec } from "../../core/spec.js";
import { type CreateSweepInput, createSweep } from "../../core/sweeps.js";
import { FileObjectStore } from "../../providers/local/objects.js";
import { createLogger } from "../../providers/log.js";

export interface AgentSweep {
  sweep: SweepRecord;
  instanceId: string;
  /** What `new Agent(...)` needs for this sweep and instance; spread it and add the rest. */
  options: AgentOptions;
}

/** Writes a sweep of `spec` (a raw spec, as a user writes it) whose id starts with `prefix`. */
export async function writeSweep(
  store: StateStore,
  prefix: string,
  spec: Record<string, unknown>,
  extra: Partial<Pick<CreateSweepInput, "traceparent">> = {},
): Promise<SweepRecord> {
  const parsed = parseSpec({ name: prefix, ...spec });
  return createSweep(
    { store, clock: systemClock },
    {
      sweepId: `${prefix}-${randomUUID().slice(0, 8)}`,
      spec: parsed,
      tasks: expandParams(parsed.params, parsed.repeat),
      owner: "test",
      provider: "local",
      ...extra,
    },
  );
}

/**
 * Writes a `launching` instance of `sweepId` and returns what `new Agent(...)` needs for it: objects
 * under `root/objects` (shared by every agent of the test), its work directory under `root`.
 */
export async function agentInstance(
  store: StateStore,
  root: string,
  sweepId: string,
  instanceId: string,
): Promise<AgentOptions> {
  await mkdir(join(root, instanceId), { recursive: true });
  await store.putInstance({
    sweepId,
    instanceId,
    provider: "local",
    status: "launching",
    slots: 1,
    launchedAt: Date.now(),
    deadline: Date.now() + 3_600_000,
  });
  return {
    store,
    objects: new FileObjectStore(join(root, "objects")),
    clock: systemClock,
    log: createLogger({}, () => undefined),
    sweepId,
    instanceId,
    workDir: join(root, instanceId),
    bundleCache: join(root, "bundles"),
  };
}

/** A sweep of `spec` with one instance (`<sweep>-i0`), and the agent's options for it. */
export async function agentSweep(
  store: StateStore,
  root: string,
  prefix: string,
  spec: Record<string, unknown>,
  extra: Partial<Pick<CreateSweepInput, "traceparent">> = {},
): Promise<AgentSweep> {
  const sweep = await writeSweep(store, prefix, spec, extra);
  const instanceId = `${sweep.sweepId}-i0`;
  return { sweep, instanceId, options: await agentInstance(store, root, sweep.sweepId, instanceId) };
}

/** Records what an agent publishes, validated against the event contract as the bus's readers do. */
export class RecordingSink implements EventSink {
  readonly events: SpawnEvent[] = [];
  async publish(events: readonly SpawnEvent[]): Promise<void> {
    for (const event of events) this.events.push(SpawnEvent.parse(event));
  }
}
