/**
 * Prometheus metrics for sweeps, rendered in the text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/). Every name starts with
 * `spawn_`. Pure: callers gather the observations (the dashboard's sweep pollers) and this
 * module turns them into text.
 */
import type { StatusCounts } from "./api.js";
import { spentSoFar } from "./cost.js";
import type { InstanceRecord } from "./model.js";

export type MetricType = "counter" | "gauge" | "summary";

export interface Sample {
  labels?: Record<string, string>;
  value: number;
  /** Appended to the family name: `_sum`, `_count` for summaries. */
  suffix?: string;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: MetricType;
  samples: Sample[];
}

const NAME = /^spawn_[a-zA-Z0-9_]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

/** Label values escape `\`, `"` and newlines; HELP text escapes `\` and newlines. */
const escapeLabel = (v: string) => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
const escapeHelp = (v: string) => v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Number.POSITIVE_INFINITY) return "+Inf";
  if (v === Number.NEGATIVE_INFINITY) return "-Inf";
  return String(v);
}

/** The text format: HELP and TYPE once per family, then its samples. Throws on a name that is not `spawn_*`. */
export function renderPrometheus(families: readonly MetricFamily[]): string {
  const lines: string[] = [];
  for (const f of families) {
    if (!NAME.test(f.name)) throw new Error(`metric name must match ${NAME}, got ${JSON.stringify(f.name)}`);
    lines.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      for (const [k] of labels)
        if (!LABEL.test(k)) throw new Error(`label name must match ${LABEL}, got ${JSON.stringify(k)}`);
      const text = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(",")}}` : "";
      lines.push(`${f.name}${s.suffix ?? ""}${text} ${formatValue(s.value)}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** The value below which `q` of the sorted values fall (nearest rank). NaN for no values. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

const QUANTILES = [0.5, 0.9, 0.99] as const;

/** Summary samples (quantiles, `_sum`, `_count`) in seconds from millisecond observations. */
export function summarySamples(labels: Record<string, string>, valuesMs: readonly number[]): Sample[] {
  const sorted = [...valuesMs].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  return [
    ...QUANTILES.map((q) => ({
      labels: { ...labels, quantile: String(q) },
      value: quantile(sorted, q) / 1000,
    })),
    { labels, value: sum / 1000, suffix: "_sum" },
    { labels, value: sorted.length, suffix: "_count" },
  ];
}

/**
 * USD spent so far by instances that carry a price (aws): run time (launch to termination, or
 * to `now`) times the price paid per hour. Undefined when none carries one (the local provider
 * costs nothing and says so rather than showing $0.00 as if it were measured).
 */
export function costSoFarUsd(instances: readonly InstanceRecord[], now: number): number | undefined {
  return instances.some((i) => i.placement) ? spentSoFar(instances, now) : undefined;
}

/** What the dashboard's poller has observed of one sweep. */
export interface SweepObservation {
  sweepId: string;
  counts: StatusCounts;
  /** Ready → claimed, per observed claim (ms). */
  claimLatenciesMs: readonly number[];
  /** Launched → first heartbeat (agent up), per instance seen starting (ms). */
  launchLatenciesMs: readonly number[];
  /** Attempts beyond each task's first, summed (failures retried and attempts lost to infrastructure). */
  retries: number;
  /** Instances lost to spot interruptions (the sweep's own count). */
  preemptions: number;
  instancesByStatus: Record<string, number>;
  costUsd: number | undefined;
}

/** The `spawn_*` families for these sweeps, one labelled sample per sweep. */
export function sweepMetricFamilies(sweeps: readonly SweepObservation[]): MetricFamily[] {
  const per = (fn: (s: SweepObservation) => Sample[]) => sweeps.flatMap(fn);
  return [
    {
      name: "spawn_tasks",
      help: "Tasks of a sweep by state.",
      type: "gauge",
      samples: per((s) =>
        (Object.entries(s.counts) as [string, number][]).map(([state, value]) => ({
          labels: { sweep: s.sweepId, state },
          value,
        })),
      ),
    },
    {
      name: "spawn_task_claim_latency_seconds",
      help: "Time from a task becoming ready (readyAt) to an agent claiming it, over observed claims.",
      type: "summary",
      samples: per((s) => summarySamples({ sweep: s.sweepId }, s.claimLatenciesMs)),
    },
    {
      name: "spawn_instance_launch_latency_seconds",
      help: "Time from an instance's launch to its agent's first heartbeat, over instances seen starting.",
      type: "summary",
      samples: per((s) => summarySamples({ sweep: s.sweepId }, s.launchLatenciesMs)),
    },
    {
      name: "spawn_task_retries_total",
      help: "Attempts beyond each task's first: failures retried and attempts lost to preemption or expired leases.",
      type: "counter",
      samples: per((s) => [{ labels: { sweep: s.sweepId }, value: s.retries }]),
    },
    {
      name: "spawn_preemptions_total",
      help: "Instances of a sweep lost to spot interruptions.",
      type: "counter",
      samples: per((s) => [{ labels: { sweep: s.sweepId }, value: s.preemptions }]),
    },
    {
      name: "spawn_instances",
      help: "Instances of a sweep by status.",
      type: "gauge",
      samples: per((s) =>
        Object.entries(s.instancesByStatus).map(([status, value]) => ({
          labels: { sweep: s.sweepId, status },
          value,
        })),
      ),
    },
    {
      name: "spawn_cost_usd",
      help: "USD spent so far by a sweep's instances (run time x price paid); absent for the local provider.",
      type: "gauge",
      samples: per((s) =>
        s.costUsd === undefined ? [] : [{ labels: { sweep: s.sweepId }, value: s.costUsd }],
      ),
    },
  ];
}
