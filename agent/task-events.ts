/**
 * The events an agent publishes about the tasks it finalizes. Reconcile publishes TaskFailed only
 * for the failures it writes itself (expired leases); the common case, a task whose last attempt
 * exits non-zero, is written `failed` by the agent that ran it, so the agent publishes it, once:
 * only after its own conditional write (under the lease) made the task failed, never from what it
 * merely read. A lost lease means another writer finished the task, and it publishes nothing.
 */
import { spawnEvent } from "#core/events.js";
import type { TaskRecord } from "#core/model.js";
import type { EventSink } from "#core/ports.js";
import type { Logger } from "#providers/log.js";

/**
 * Publishes `TaskFailed` when `written` (what the agent's conditional write stored) says the task
 * failed for good. Resolves once published; a publishing error is logged, not thrown: the task's
 * result is already stored, and alerts are told at most once (the sink retries as it can).
 */
export async function publishTaskOutcome(
  events: EventSink | undefined,
  log: Logger,
  written: Pick<TaskRecord, "sweepId" | "index" | "status" | "attempt" | "exitCode" | "error" | "finishedAt">,
  now: number,
): Promise<void> {
  if (!events || written.status !== "failed") return;
  const event = spawnEvent(written.sweepId, written.finishedAt ?? now, {
    type: "TaskFailed",
    taskIndex: written.index,
    attempt: written.attempt,
    ...(written.exitCode !== undefined ? { exitCode: written.exitCode } : {}),
    ...(written.error ? { error: written.error } : {}),
  });
  await events.publish([event]).catch((error) => log.warn("could not publish TaskFailed", { error }));
}
