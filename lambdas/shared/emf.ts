/**
 * CloudWatch Embedded Metric Format: a metric is a JSON log line with an `_aws` envelope, which
 * CloudWatch Logs turns into metrics with no API call, no client and no extra latency
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
 */

/** Every spawn metric's CloudWatch namespace. */
export const EMF_NAMESPACE = "spawn";

export type EmfUnit = "Milliseconds" | "Seconds" | "Count" | "None";

export interface EmfMetric {
  name: string;
  value: number;
  unit: EmfUnit;
}

/**
 * One EMF line: the metrics' values and the dimension values as top-level members, with the
 * envelope naming which members are metrics (and their units) and which are dimensions.
 * `properties` are logged beside them (searchable, not metrics); they never override either.
 */
export function emfLine(
  metrics: readonly EmfMetric[],
  dimensions: Readonly<Record<string, string>>,
  options: { timestamp: number; properties?: Readonly<Record<string, unknown>> },
): string {
  const members: Record<string, unknown> = { ...options.properties, ...dimensions };
  for (const m of metrics) {
    if (!Number.isFinite(m.value))
      throw new RangeError(`metric ${m.name} must be a finite number, got ${m.value}`);
    members[m.name] = m.value;
  }
  return JSON.stringify({
    _aws: {
      Timestamp: options.timestamp,
      CloudWatchMetrics: [
        {
          Namespace: EMF_NAMESPACE,
          Dimensions: [Object.keys(dimensions)],
          Metrics: metrics.map((m) => ({ Name: m.name, Unit: m.unit })),
        },
      ],
    },
    ...members,
  });
}

/** Writes metrics as one EMF line on stdout (CloudWatch Logs); nothing when there are none. */
export function emitMetrics(
  metrics: readonly EmfMetric[],
  dimensions: Readonly<Record<string, string>>,
  options: {
    properties?: Readonly<Record<string, unknown>>;
    now?: () => number;
    write?: (line: string) => void;
  } = {},
): void {
  if (metrics.length === 0) return;
  const write = options.write ?? ((line: string) => process.stdout.write(line));
  write(
    `${emfLine(metrics, dimensions, {
      timestamp: (options.now ?? Date.now)(),
      ...(options.properties ? { properties: options.properties } : {}),
    })}\n`,
  );
}
