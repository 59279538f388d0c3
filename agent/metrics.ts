/**
 * The task's metrics: JSON lines it appends to `SPAWN_METRICS_FILE` (`{"step":10,"loss":0.3}`);
 * the last value of every key becomes the task's result.
 */
import { open } from "node:fs/promises";

/** Only this much of the end of a metrics file is read. */
export const METRICS_TAIL_BYTES = 8 * 1024 * 1024;

export interface FinalMetrics {
  /** Every line's object merged in order: the last value of each key wins (no deep merge). */
  metrics: Record<string, unknown>;
  /** Lines that are not JSON objects (malformed, arrays, numbers, a torn last line). Blank lines don't count. */
  badLines: number;
}

/**
 * Reads a JSON lines metrics file. A missing file gives undefined; bad lines are counted, not fatal.
 * A file larger than `maxBytes` is read from its last `maxBytes` only, the first (partial) line of
 * that tail dropped uncounted. Other read errors (a directory, no permission) are thrown.
 */
export async function readFinalMetrics(
  path: string,
  maxBytes: number = METRICS_TAIL_BYTES,
): Promise<FinalMetrics | undefined> {
  let file: Awaited<ReturnType<typeof open>>;
  try {
    file = await open(path, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
  let text: string;
  try {
    const { size } = await file.stat();
    const start = Math.max(0, size - maxBytes);
    const buffer = Buffer.alloc(size - start);
    let filled = 0;
    while (filled < buffer.length) {
      const { bytesRead } = await file.read(buffer, filled, buffer.length - filled, start + filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
    }
    let body = buffer.subarray(0, filled);
    if (start > 0) {
      const newline = body.indexOf(0x0a);
      body = newline === -1 ? body.subarray(body.length) : body.subarray(newline + 1);
    }
    text = body.toString("utf8");
  } finally {
    await file.close();
  }

  const metrics: Record<string, unknown> = {};
  let badLines = 0;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      badLines++;
      continue;
    }
    if (value === null || typeof value !== "object" || Array.isArray(value)) {
      badLines++;
      continue;
    }
    for (const [key, v] of Object.entries(value)) {
      // defineProperty, not assignment: a "__proto__" key stays a plain key.
      Object.defineProperty(metrics, key, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  return { metrics, badLines };
}
