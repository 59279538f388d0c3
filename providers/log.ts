/** JSON-lines logger with correlation keys (sweepId, taskIndex, instanceId) for the agent and the local control plane. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export function createLogger(
  base: LogFields = {},
  write: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const emit = (level: string, msg: string, fields?: LogFields) => {
    const extra: LogFields = {};
    for (const [k, v] of Object.entries(fields ?? {}))
      extra[k] = v instanceof Error ? { name: v.name, message: v.message } : v;
    write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...base, ...extra })}\n`);
  };
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
    child: (fields) => createLogger({ ...base, ...fields }, write),
  };
}
