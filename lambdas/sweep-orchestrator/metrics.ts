/**
 * What one orchestrator invocation reports to CloudWatch (EMF, lambdas/shared/emf.ts): how long
 * it took and, when it launched instances, how long that pass took (the launch latency the
 * control plane adds before EC2's own boot time); tasks requeued for another attempt (retries);
 * spot interruptions received (preemptions).
 */
import type { EmfMetric } from "../shared/emf.js";
import type { OrchestratorEvent } from "./events.js";
import type { OrchestratorResult } from "./orchestrate.js";

export function orchestratorMetrics(
  event: OrchestratorEvent,
  result: OrchestratorResult,
  elapsedMs: number,
): EmfMetric[] {
  const metrics: EmfMetric[] = [{ name: "ReconcileLatency", value: elapsedMs, unit: "Milliseconds" }];
  const summary = result.kind === "tick" ? undefined : result.result;
  const launched = result.kind === "tick" ? result.launched : (summary?.launched ?? 0);
  if (launched > 0) {
    metrics.push({ name: "InstancesLaunched", value: launched, unit: "Count" });
    metrics.push({ name: "LaunchLatency", value: elapsedMs, unit: "Milliseconds" });
  }
  if (summary && summary.requeued > 0)
    metrics.push({ name: "Retries", value: summary.requeued, unit: "Count" });
  if (
    event.kind === "instance" &&
    event.cause === "interruption" &&
    result.kind === "instance" &&
    result.sweepId
  )
    metrics.push({ name: "Preemptions", value: 1, unit: "Count" });
  return metrics;
}
