/**
 * The embedded default's event bus: the EventSink the local control plane hands to reconcile,
 * with the contract of the stack's EventBridge bus (the same validated events, delivered after
 * `publish` returns). Events are handled one at a time, in order, by the same core code as the
 * alert-handler Lambda; one whose delivery failed on a retryable error comes back later with
 * backoff, as Lambda's retries would bring it back. The queue lives in memory: events still
 * queued when the control plane stops are lost (docs/alerts.md).
 */
import type { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { type AlertDeps, checkAlertLevels, handleEvent } from "#core/alerts.js";
import { SpawnEvent } from "#core/events.js";
import type { SweepRecord } from "#core/model.js";
import { type EventSink, systemClock } from "#core/ports.js";
import { DynamoAlertStore } from "../dynamodb/alert-store.js";
import type { Logger } from "../log.js";
import { channelSender } from "./channels.js";
import { FileSecretBox } from "./file-secrets.js";

/**
 * Alert delivery on the embedded default, over its dynalite (`client`, tables `prefix`) and state
 * directory `home` (sealed secrets, alerts.log): what the control plane's bus and local agents
 * (for the task failures they write) deliver with.
 */
export function localAlertDeps(
  client: DynamoDBClient,
  prefix: string,
  store: AlertDeps["store"],
  home: string,
): AlertDeps {
  return {
    alerts: new DynamoAlertStore(client, prefix),
    store,
    clock: systemClock,
    send: channelSender({ secrets: new FileSecretBox(home), home }),
    ...(process.env.SPAWN_DASHBOARD_URL ? { linkBase: process.env.SPAWN_DASHBOARD_URL } : {}),
  };
}

export interface LocalBusOptions {
  /** Handlings of one event, the first included. @default 5 */
  maxTries?: number;
  /** Wait before the second try, doubled each time. @default 5 s */
  retryMs?: number;
}

export class LocalAlertBus implements EventSink {
  private readonly queue: Array<{ event: SpawnEvent; tries: number }> = [];
  private draining: Promise<void> | undefined;
  private readonly retries = new Set<NodeJS.Timeout>();

  constructor(
    private readonly deps: AlertDeps,
    private readonly log: Logger,
    private readonly options: LocalBusOptions = {},
  ) {}

  async publish(events: readonly SpawnEvent[]): Promise<void> {
    // The same contract as PutEvents: a malformed event is the publisher's bug, refused here.
    for (const event of events) this.queue.push({ event: SpawnEvent.parse(event), tries: 0 });
    this.kick();
  }

  /** Level triggers (cost, long-running, preemptions) of the active sweeps; failures come back next time. */
  async checkLevels(sweeps: readonly SweepRecord[]): Promise<void> {
    try {
      for (const report of await checkAlertLevels(this.deps, sweeps))
        if (report.outcome !== "duplicate") this.log.info("alert", { ...report });
    } catch (error) {
      this.log.warn("alert check failed; it runs again", { error });
    }
  }

  /** Resolves once everything queued so far was handled, or after `timeoutMs`. */
  async idle(timeoutMs = Number.POSITIVE_INFINITY): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(resolve, timeoutMs);
    });
    await Promise.race([
      (async () => {
        while (this.draining) await this.draining;
      })(),
      timeout,
    ]);
    clearTimeout(timer);
  }

  /** Drops pending retries (the control plane is stopping). */
  close(): void {
    for (const timer of this.retries) clearTimeout(timer);
    this.retries.clear();
  }

  private kick(): void {
    this.draining ??= this.drain().finally(() => {
      this.draining = undefined;
      if (this.queue.length) this.kick();
    });
  }

  private async drain(): Promise<void> {
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      const { event } = item;
      try {
        for (const report of await handleEvent(this.deps, event))
          if (report.outcome !== "duplicate") this.log.info("alert", { sweepId: event.sweepId, ...report });
      } catch (error) {
        const tries = item.tries + 1;
        if (tries >= (this.options.maxTries ?? 5)) {
          this.log.error("alert delivery gave up", { sweepId: event.sweepId, type: event.type, error });
          continue;
        }
        this.log.warn("alert delivery failed; retrying", {
          sweepId: event.sweepId,
          type: event.type,
          tries,
          error,
        });
        const timer = setTimeout(
          () => {
            this.retries.delete(timer);
            this.queue.push({ event, tries });
            this.kick();
          },
          (this.options.retryMs ?? 5000) * 2 ** (tries - 1),
        );
        timer.unref();
        this.retries.add(timer);
      }
    }
  }
}
