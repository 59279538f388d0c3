import { describe, expect, it } from "vitest";
import { emfLine } from "../shared/emf.js";
import { orchestratorMetrics } from "./metrics.js";
import type { Summary } from "./orchestrate.js";

const summary = (s: Partial<Summary>): Summary => ({
  launched: 0,
  terminated: 0,
  requeued: 0,
  cancelledTasks: 0,
  deactivated: false,
  ...s,
});
const names = (m: { name: string; value: number }[]) => Object.fromEntries(m.map((x) => [x.name, x.value]));

describe("orchestrator EMF metrics", () => {
  it("reports launch latency and launches only for passes that launched", () => {
    const launched = orchestratorMetrics(
      { kind: "sweep", sweepId: "s" },
      { kind: "sweep", sweepId: "s", result: summary({ launched: 3 }) },
      812,
    );
    expect(names(launched)).toEqual({ ReconcileLatency: 812, InstancesLaunched: 3, LaunchLatency: 812 });
    const idle = orchestratorMetrics(
      { kind: "sweep", sweepId: "s" },
      { kind: "sweep", sweepId: "s", result: summary({}) },
      20,
    );
    expect(names(idle)).toEqual({ ReconcileLatency: 20 });
  });

  it("counts a spot interruption of one of our instances as a preemption, and requeued tasks as retries", () => {
    const metrics = orchestratorMetrics(
      {
        kind: "instance",
        cause: "interruption",
        ec2InstanceId: "i-0abc",
        region: "us-east-1",
        state: "terminate",
        time: "2026-11-23T00:00:00Z",
      },
      {
        kind: "instance",
        ec2InstanceId: "i-0abc",
        sweepId: "s",
        instanceId: "s-1",
        result: summary({ requeued: 2 }),
      },
      40,
    );
    expect(names(metrics)).toEqual({ ReconcileLatency: 40, Retries: 2, Preemptions: 1 });
    // A foreign instance's interruption is not ours to count.
    const foreign = orchestratorMetrics(
      {
        kind: "instance",
        cause: "interruption",
        ec2InstanceId: "i-0def",
        region: "us-east-1",
        time: "2026-11-23T00:00:00Z",
      },
      { kind: "instance", ec2InstanceId: "i-0def", ignored: "not a spawn instance" },
      5,
    );
    expect(names(foreign)).toEqual({ ReconcileLatency: 5 });
  });

  it("renders as an EMF line CloudWatch can read", () => {
    const metrics = orchestratorMetrics(
      { kind: "tick" },
      { kind: "tick", reaped: [], reconciled: 2, deferred: [], launched: 1, terminated: 0 },
      99,
    );
    const line = JSON.parse(emfLine(metrics, { fn: "sweep-orchestrator", event: "tick" }, { timestamp: 5 }));
    expect(line._aws.CloudWatchMetrics[0].Metrics.map((m: { Name: string }) => m.Name)).toEqual([
      "ReconcileLatency",
      "InstancesLaunched",
      "LaunchLatency",
    ]);
    expect(line.LaunchLatency).toBe(99);
  });
});
