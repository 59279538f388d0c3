/**
 * What happens to a task after an attempt ends: success, a retry after backoff, a
 * re-queue after infrastructure loss, or a final failure. Pure; the caller writes
 * the resulting update with a conditional write on the attempt it owned.
 */
import type { TaskRecord } from "./model.js";
import type { TaskUpdate } from "./ports.js";
import type { RetrySpec } from "./spec.js";

/** How an attempt ended. */
export type AttemptEnd =
  | {
      kind: "exit";
      exitCode: number | null;
      signal: string | null;
      timedOut: boolean;
      durationMs: number;
      error?: string;
      metrics?: Record<string, unknown>;
      outputs?: string[];
    }
  /**
   * The instance went away (lease expired, preempted, told to stop): not the task's fault.
   * `preempted`: a spot interruption notice ended it; counted in the task's `preempted` too.
   */
  | { kind: "lost"; reason: string; preempted?: boolean }
  | { kind: "cancelled"; reason: string };

/** Exit code GNU timeout uses; a timed-out attempt counts as this code for `on_exit_codes`. */
export const TIMEOUT_EXIT_CODE = 124;
/** A task lost this many times is failed rather than re-queued forever. */
export const MAX_LOST_ATTEMPTS = 10;

/** Linux signal numbers (x86-64 and arm64 agree on 1-31). */
const SIGNAL_NUMBERS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** The shell's view of an exit: the code, 128+n for a signal, 124 for a timeout. */
export function effectiveExitCode(end: {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
}): number {
  if (end.timedOut) return TIMEOUT_EXIT_CODE;
  if (end.exitCode !== null) return end.exitCode;
  return 128 + (SIGNAL_NUMBERS[end.signal ?? ""] ?? 0);
}

/**
 * Delay before retry number `failures` (1 = first retry). `random` in [0, 1) drives jitter
 * ("full jitter": uniform between 0 and the exponential delay).
 */
export function retryDelayMs(policy: RetrySpec, failures: number, random: number): number {
  if (policy.backoff === "fixed") return Math.min(policy.base, policy.max_delay);
  const exponential = Math.min(policy.max_delay, policy.base * 2 ** Math.max(0, failures - 1));
  return policy.backoff === "exponential" ? exponential : Math.floor(random * exponential);
}

function describeExit(end: Extract<AttemptEnd, { kind: "exit" }>, timeoutNote: string): string {
  if (end.error) return end.error;
  if (end.timedOut) return timeoutNote;
  if (end.signal) return `killed by ${end.signal}`;
  return `exited with code ${end.exitCode}`;
}

/**
 * The update that closes attempt `task.attempt`. Success → succeeded; a failure the
 * policy retries → pending after backoff; otherwise failed. Loss re-queues without
 * using up max_attempts; cancellation is final.
 */
export function afterAttempt(
  task: Pick<TaskRecord, "failures" | "lost" | "attempt" | "preempted">,
  policy: RetrySpec,
  end: AttemptEnd,
  now: number,
  random: number,
): TaskUpdate & { status: TaskRecord["status"] } {
  const clearLease = { leaseOwner: null, leaseExpiresAt: null, updatedAt: now } as const;
  if (end.kind === "cancelled") {
    return { ...clearLease, status: "cancelled", finishedAt: now, error: end.reason };
  }
  if (end.kind === "lost") {
    const lost = task.lost + 1;
    const preempted = end.preempted ? { preempted: (task.preempted ?? 0) + 1 } : {};
    if (lost >= MAX_LOST_ATTEMPTS) {
      return {
        ...clearLease,
        status: "failed",
        lost,
        ...preempted,
        finishedAt: now,
        error: `lost ${lost} times (last: ${end.reason}); giving up`,
      };
    }
    return {
      ...clearLease,
      status: "pending",
      lost,
      ...preempted,
      readyAt: now,
      error: `attempt ${task.attempt} lost: ${end.reason}`,
    };
  }
  const result = {
    ...clearLease,
    exitCode: end.exitCode ?? null,
    signal: end.signal ?? null,
    durationMs: end.durationMs,
    metrics: end.metrics ?? null,
    outputs: end.outputs ?? null,
  };
  if (end.exitCode === 0 && !end.timedOut && !end.error) {
    return { ...result, status: "succeeded", finishedAt: now, error: null };
  }
  const failures = task.failures + 1;
  const code = effectiveExitCode(end);
  const error = describeExit(end, "timed out");
  const excluded = policy.dont_retry_on_exit_codes?.includes(code) ?? false;
  const retryable = !excluded && (policy.on_exit_codes === undefined || policy.on_exit_codes.includes(code));
  if (retryable && failures < policy.max_attempts) {
    const delay = retryDelayMs(policy, failures, random);
    return { ...result, status: "pending", failures, readyAt: now + delay, error };
  }
  const why = excluded
    ? `${error}; exit code ${code} is in retry.dont_retry_on_exit_codes`
    : !retryable
      ? `${error}; exit code ${code} is not in retry.on_exit_codes`
      : policy.max_attempts > 1
        ? `${error}; gave up after ${failures} attempts`
        : error;
  return { ...result, status: "failed", failures, finishedAt: now, error: why };
}
