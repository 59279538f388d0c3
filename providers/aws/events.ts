/**
 * EventSink over EventBridge PutEvents on the stack's own bus, so alerts and users' rules can
 * react to what the control plane does. Also the CLI's "sweep submitted" kick, which is how a
 * new sweep reaches the orchestrator: an event through a rule, never a synchronous invoke.
 */
import {
  type EventBridgeClient,
  PutEventsCommand,
  type PutEventsRequestEntry,
} from "@aws-sdk/client-eventbridge";
import type { SpawnEvent } from "#core/events.js";
import type { EventSink } from "#core/ports.js";

/** PutEvents takes at most 10 entries per call. */
export const MAX_ENTRIES_PER_CALL = 10;
/** ... and at most 256 KB of entries, sized the way EventBridge sizes them (entrySize). */
export const MAX_REQUEST_BYTES = 256 * 1024;

/** `source` of the events the control plane publishes. No rule that targets the orchestrator matches it. */
export const ORCHESTRATOR_SOURCE = "spawn.orchestrator";
/** `source` of the events agents publish (GpuMemoryPressure); the agent role may publish only this. */
export const AGENT_SOURCE = "spawn.agent";

/**
 * The CLI's kick for a sweep it just created. The stack routes exactly this source and
 * detail-type on its bus to the orchestrator; the orchestrator never publishes it, so
 * nothing it sends can trigger it again.
 */
export const SWEEP_SUBMITTED = { source: "spawn.cli", detailType: "Sweep Submitted" } as const;

/** Transient per-entry failures EventBridge reports in `Entries[].ErrorCode`; others won't succeed on retry. */
const RETRYABLE_ENTRY_ERRORS = new Set(["InternalFailure", "ThrottlingException", "InternalException"]);

/** Entry size as EventBridge computes it: Time 14 bytes, UTF-8 bytes of Source, DetailType, Detail and each resource. */
export function entrySize(entry: PutEventsRequestEntry): number {
  const bytes = (s: string | undefined) => (s === undefined ? 0 : Buffer.byteLength(s, "utf8"));
  return (
    (entry.Time ? 14 : 0) +
    bytes(entry.Source) +
    bytes(entry.DetailType) +
    bytes(entry.Detail) +
    (entry.Resources ?? []).reduce((sum, r) => sum + bytes(r), 0)
  );
}

/** Splits entries into calls of at most 10 entries and 256 KB, in order. An entry over 256 KB alone is an error. */
export function batchEntries(entries: readonly PutEventsRequestEntry[]): PutEventsRequestEntry[][] {
  const batches: PutEventsRequestEntry[][] = [];
  let current: PutEventsRequestEntry[] = [];
  let bytes = 0;
  for (const entry of entries) {
    const size = entrySize(entry);
    if (size > MAX_REQUEST_BYTES) {
      throw new Error(
        `event ${entry.DetailType ?? "?"} is ${size} bytes, over EventBridge's ${MAX_REQUEST_BYTES}-byte limit`,
      );
    }
    if (current.length === MAX_ENTRIES_PER_CALL || bytes + size > MAX_REQUEST_BYTES) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(entry);
    bytes += size;
  }
  if (current.length) batches.push(current);
  return batches;
}

export interface PutEntriesOptions {
  /** Sends of one batch, the first included, before failed entries are reported. @default 4 */
  maxAttempts?: number;
  /** Waits between sends; tests pass a recorder. @default setTimeout with full jitter */
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Sends entries in batches and re-sends only the entries EventBridge reports as failed
 * (`FailedEntryCount`), with exponential backoff and full jitter. Throws, naming the error codes,
 * when some entries still failed after the last attempt or failed for a reason a retry cannot fix.
 */
export async function putEntries(
  client: EventBridgeClient,
  entries: readonly PutEventsRequestEntry[],
  options: PutEntriesOptions = {},
): Promise<void> {
  const maxAttempts = options.maxAttempts ?? 4;
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  for (const batch of batchEntries(entries)) {
    let pending = batch;
    for (let attempt = 1; ; attempt++) {
      const out = await client.send(new PutEventsCommand({ Entries: pending }));
      if (!out.FailedEntryCount) break;
      const failed = pending
        .map((entry, i) => ({ entry, result: out.Entries?.[i] }))
        .filter(({ result }) => result?.ErrorCode);
      const permanent = failed.filter(({ result }) => !RETRYABLE_ENTRY_ERRORS.has(result?.ErrorCode ?? ""));
      if (permanent.length || attempt >= maxAttempts) {
        const codes = [
          ...new Set(failed.map(({ result }) => `${result?.ErrorCode}: ${result?.ErrorMessage}`)),
        ];
        throw new Error(
          `EventBridge rejected ${failed.length} of ${pending.length} events after ${attempt} attempt(s): ${codes.join("; ")}`,
        );
      }
      pending = failed.map(({ entry }) => entry);
      await sleep(Math.floor(random() * 100 * 2 ** attempt));
    }
  }
}

/**
 * The EventSink of the aws provider: each event becomes one entry on the stack's bus, with
 * `DetailType` = the event's `type`, `Detail` = the whole event as JSON and `Time` = its time
 * (the schema is documented in core/events.ts).
 */
export class EventBridgeSink implements EventSink {
  constructor(
    private readonly client: EventBridgeClient,
    private readonly busName: string,
    private readonly options: PutEntriesOptions = {},
    /** ORCHESTRATOR_SOURCE, or AGENT_SOURCE on instances. */
    private readonly source: string = ORCHESTRATOR_SOURCE,
  ) {}

  async publish(events: readonly SpawnEvent[]): Promise<void> {
    if (events.length === 0) return;
    await putEntries(
      this.client,
      events.map((event) => ({
        EventBusName: this.busName,
        Source: this.source,
        DetailType: event.type,
        Detail: JSON.stringify(event),
        Time: new Date(event.time),
      })),
      this.options,
    );
  }
}

/**
 * The CLI's kick for a sweep it just created (see SWEEP_SUBMITTED). `traceparent` (W3C) lets the
 * orchestrator log its pass in the launching command's trace (docs/dashboard.md, "Tracing").
 */
export async function kickSweep(
  client: EventBridgeClient,
  busName: string,
  sweepId: string,
  traceparent?: string,
): Promise<void> {
  await putEntries(client, [
    {
      EventBusName: busName,
      Source: SWEEP_SUBMITTED.source,
      DetailType: SWEEP_SUBMITTED.detailType,
      Detail: JSON.stringify({ kind: "sweep", sweepId, ...(traceparent ? { traceparent } : {}) }),
    },
  ]);
}
