/** `spawn sweep status` output: what it says about instances whose hostname failed (docs/dns.md), and about gangs (docs/gangs.md). */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { InstanceRecord, SweepRecord, TaskRecord } from "#core/model.js";
import { parseSpec } from "#core/spec.js";
import { formatStatus, type SweepStatusView, statusJson } from "./status.js";

const NOW = Date.parse("2026-11-23T10:00:00Z");

function view(instances: InstanceRecord[]): SweepStatusView {
  const sweep = {
    sweepId: "lr-abc",
    name: "lr",
    status: "running",
    provider: "aws",
    owner: "ana",
    createdAt: NOW - 60_000,
    taskCount: 1,
    spec: parseSpec({ name: "lr", command: "true" }),
  } as unknown as SweepRecord;
  return { sweep, tasks: [], counts: { pending: 1 } as SweepStatusView["counts"], instances };
}

const instance = (id: string, dns?: InstanceRecord["dns"]): InstanceRecord => ({
  sweepId: "lr-abc",
  instanceId: id,
  provider: "aws",
  status: "running",
  slots: 1,
  launchedAt: NOW - 30_000,
  deadline: NOW + 3_600_000,
  ...(dns ? { dns } : {}),
});

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("sweep status and hostnames", () => {
  const failed = instance("lr-abc-i1", {
    host: "i1.lr-abc.spawn.example.com",
    status: "failed",
    at: NOW,
    error: "spawn-dns refused it (ip-mismatch): EC2 says 10.0.9.9",
  });
  const registered = instance("lr-abc-i0", {
    host: "i0.lr-abc.spawn.example.com",
    status: "registered",
    at: NOW,
  });

  it("names each instance whose hostname failed, and why; registered ones add no line", () => {
    vi.stubEnv("NO_COLOR", "1");
    const text = formatStatus(view([registered, failed]), NOW);
    expect(text).toContain(
      "  lr-abc-i1: no hostname i1.lr-abc.spawn.example.com: spawn-dns refused it (ip-mismatch): EC2 says 10.0.9.9",
    );
    expect(text).not.toContain("lr-abc-i0");
  });

  it("gives each instance's hostname in --json", () => {
    const json = statusJson(view([registered, instance("lr-abc-i2")]));
    expect(json.instances.map((i) => i.dns)).toEqual([registered.dns, null]);
  });
});

describe("sweep status of a gang sweep", () => {
  /** Member row `rank` of gang `task` (size 4) at `epoch`. */
  const row = (
    task: number,
    rank: number,
    epoch: number,
    status: TaskRecord["status"],
    up = status === "running",
  ): TaskRecord => ({
    sweepId: "ddp-abc",
    index: task * 4 + rank,
    shard: 0,
    taskId: `t${task}r${rank}`,
    params: {},
    status,
    attempt: epoch + 1,
    failures: 0,
    lost: 0,
    readyAt: 0,
    updatedAt: NOW,
    gang: { task, rank, size: 4, epoch },
    ...(status === "running" ? { leaseOwner: `i${rank}` } : {}),
    // A member is up once it wrote its peer under its own lease; a stale peer (another holder) is not.
    ...(status === "running" ? { peer: { instanceId: up ? `i${rank}` : "old", address: "10.0.0.1" } } : {}),
  });

  it("shows each running gang's epoch and which ranks are up; finished and pending gangs add no line", () => {
    vi.stubEnv("NO_COLOR", "1");
    const v = view([]);
    v.sweep.spec = parseSpec({ name: "ddp", command: "true", nodes: 4, max_instances: 8 });
    v.tasks = [
      ...[0, 1, 2, 3].map((r) => row(0, r, 0, "succeeded")),
      // gang 1 restarted once: epoch 0 rows are history
      row(1, 0, 1, "running"),
      row(1, 1, 1, "running", false),
      row(1, 2, 1, "pending"),
      row(1, 3, 1, "running"),
      ...[0, 1, 2, 3].map((r) => row(2, r, 0, "pending")),
    ];
    const text = formatStatus(v, NOW);
    expect(text).toContain("gangs\n  gang 1  epoch 1  ranks up 0, 3 of 4; waiting for 1, 2");
    expect(text).not.toContain("gang 0 ");
    expect(text).not.toContain("gang 2 ");
  });
});
