/**
 * The Lambdas' structured logger: JSON lines on stdout (CloudWatch Logs), the same shape as the
 * agent's and the local control plane's (providers/log.ts), with the function's correlation
 * keys (requestId, sweepId, instanceId). Fields whose names look like secrets are never written.
 */
import { createLogger, type LogFields, type Logger } from "#providers/log.js";

const SECRET_FIELD = /secret|token|password|credential|authorization|session/i;

/** Replaces secret-looking fields (at any depth) with "[redacted]". */
export function redact(fields: LogFields): LogFields {
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === "object" && !(value instanceof Error)) {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, SECRET_FIELD.test(k) ? "[redacted]" : walk(v)]),
      );
    }
    return value;
  };
  return walk(fields) as LogFields;
}

function redacting(inner: Logger): Logger {
  return {
    info: (msg, fields) => inner.info(msg, fields && redact(fields)),
    warn: (msg, fields) => inner.warn(msg, fields && redact(fields)),
    error: (msg, fields) => inner.error(msg, fields && redact(fields)),
    child: (fields) => redacting(inner.child(redact(fields))),
  };
}

/** A logger for one function; `write` is for tests. */
export function lambdaLogger(
  fn: string,
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  return redacting(createLogger({ fn }, write));
}
