/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): `traceparent: 00-<trace>-<span>-<flags>`.
 * Every hop (the CLI, the dashboard, the Lambdas) parses and extends the same header. Pure.
 */

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

export interface TraceContext {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** A fresh span: in `trace` when given (a child span of it), else in a new trace. Ids are never all zeros. */
export function newTraceContext(
  randomBytes: (n: number) => Uint8Array,
  trace?: Pick<TraceContext, "traceId" | "sampled">,
): TraceContext {
  const id = (n: number) => {
    for (;;) {
      const value = hex(randomBytes(n));
      if (/[^0]/.test(value)) return value;
    }
  };
  return { traceId: trace?.traceId ?? id(16), spanId: id(8), sampled: trace?.sampled ?? true };
}

export function formatTraceparent(t: TraceContext): string {
  return `00-${t.traceId}-${t.spanId}-${t.sampled ? "01" : "00"}`;
}

/** Parses a version-00 traceparent; undefined for anything malformed or with all-zero ids. */
export function parseTraceparent(header: string | undefined): TraceContext | undefined {
  const m = header ? TRACEPARENT.exec(header.trim()) : null;
  if (!m || /^0+$/.test(m[1] as string) || /^0+$/.test(m[2] as string)) return undefined;
  return {
    traceId: m[1] as string,
    spanId: m[2] as string,
    sampled: (Number.parseInt(m[3] as string, 16) & 1) === 1,
  };
}
