/**
 * The middy middlewares every spawn Lambda uses, in chain order: validate the event, give the
 * request a correlated logger, and handle errors (a bad event is logged and dropped, so it is
 * not retried forever; anything else is rethrown, so Lambda retries it).
 */
import type { MiddlewareObj } from "@middy/core";
import type { Context } from "aws-lambda";
import type { LogFields, Logger } from "#providers/log.js";

/** The event failed validation: retrying cannot help, so it is dropped with a reason. */
export class BadEventError extends Error {
  override name = "BadEventError";
}

/** The Lambda context plus the request's logger (requestId and the event's correlation keys). */
export type LoggedContext = Context & { log: Logger };

/** What the function returns for an event it drops. */
export interface Dropped {
  status: "dropped";
  reason: string;
}

/** Replaces the raw event with `parse(event)`; `parse` throws BadEventError for what it rejects. */
export function validateEvent<T>(
  parse: (raw: unknown) => T,
): MiddlewareObj<unknown, unknown, Error, LoggedContext> {
  return {
    name: "validateEvent",
    before: (request) => {
      request.event = parse(request.event);
    },
  };
}

/**
 * Attaches `context.log`: the function logger with the request id, cold-start flag and the
 * keys `correlate` takes from the (validated) event, and logs the outcome.
 */
export function logContext<E>(
  logger: Logger,
  correlate: (event: E) => LogFields,
): MiddlewareObj<E, unknown, Error, LoggedContext> {
  let coldStart = true;
  return {
    name: "logContext",
    before: (request) => {
      request.context.log = logger.child({
        requestId: request.context.awsRequestId,
        coldStart,
        ...correlate(request.event),
      });
      coldStart = false;
    },
    after: (request) => {
      request.context.log.info("done", { result: request.response as LogFields });
    },
  };
}

/**
 * BadEventError → logged as a warning and answered with `{status: "dropped"}` (the invocation
 * succeeds, so Lambda does not retry it). Any other error is logged and rethrown (Lambda
 * retries the asynchronous invocation, then sends it to the function's failure destination).
 */
export function handleErrors(logger: Logger): MiddlewareObj<unknown, unknown, Error, LoggedContext> {
  return {
    name: "handleErrors",
    onError: (request) => {
      const log = request.context.log ?? logger.child({ requestId: request.context.awsRequestId });
      const error = request.error;
      if (error instanceof BadEventError) {
        log.warn("dropped an invalid event", { reason: error.message });
        const dropped: Dropped = { status: "dropped", reason: error.message };
        request.response = dropped;
        return;
      }
      log.error("failed; Lambda will retry", {
        error:
          error instanceof Error ? { name: error.name, message: error.message, stack: error.stack } : error,
      });
    },
  };
}
