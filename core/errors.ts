/**
 * Domain errors. An error the user can fix carries the CLI exit code it maps to;
 * anything else reaching the top level is a bug in spawn.
 */

/** Exit codes documented in the architecture brief. */
export const ExitCode = {
  ok: 0,
  workFailed: 1,
  usage: 2,
  notFound: 3,
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The user's to fix (bad spec, bad flag): printed plainly with a hint, exit 2 unless told otherwise. */
export class AbortError extends Error {
  override name = "AbortError";
  constructor(
    message: string,
    readonly hint?: string,
    readonly exitCode: ExitCode = ExitCode.usage,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A sweep, task or instance that does not exist: exit 3. */
export class NotFoundError extends AbortError {
  override name = "NotFoundError";
  constructor(what: string, id: string, hint?: string) {
    super(`${what} ${JSON.stringify(id)} not found`, hint, ExitCode.notFound);
  }
}

/** A conditional write found the item in another state than the caller expected. */
export class ConditionFailedError extends Error {
  override name = "ConditionFailedError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The agent no longer owns the lease on a task (it expired and was re-queued, or the task was cancelled). */
export class LeaseLostError extends ConditionFailedError {
  override name = "LeaseLostError";
}

/** Ours, not the user's: printed with a stack under --debug. */
export class BugError extends Error {
  override name = "BugError";
}
