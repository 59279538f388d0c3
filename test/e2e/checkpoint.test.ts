/**
 * Spot resilience end to end on the embedded default, through the real CLI binary, with the
 * template `templates/checkpoint-demo.yaml` (each task counts to n, checkpointing every k steps):
 * real interruption notices through the local IMDS (chaos mode), agents killed with -9, and a
 * damaged checkpoint that must not be restored.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnv, cliEnv, waitFor } from "../helpers/cli.js";

// The agents inherit the CLI's environment: poll IMDS every 500 ms instead of EC2's 5 s, so a
// notice lands well inside a 6-second task.
process.env.SPAWN_IMDS_POLL_MS = "500";

const N = 60;
const K = 10;
const SPEC = "templates/checkpoint-demo.yaml";

interface ResultRow {
  index: number;
  status: string;
  attempts: number;
  metrics: { count?: number; resumed_from?: number; attempt?: number };
}

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv("spawn-ckpt-e2e-");
});
afterAll(() => cli.stop());

function launch(args: string[]): string {
  const r = cli.run(["sweep", "launch", SPEC, "--json", ...args], { timeoutMs: 180_000 });
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
}

function logOf(sweepId: string, task: number, attempt: number): string {
  const r = cli.run(["sweep", "logs", sweepId, "--task", String(task), "--attempt", String(attempt)]);
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

const lastNumber = (text: string, re: RegExp) => {
  const all = [...text.matchAll(re)];
  return all.length ? Number(all[all.length - 1]![1]) : undefined;
};

let preempted: string;

describe("chaos: every task preempted once mid-run", () => {
  it("finishes every task with the right count, redoing at most one checkpoint interval", () => {
    // When
    const r = cli.run(["sweep", "launch", SPEC, "--chaos", "preempt=1", "--wait", "--json"], {
      timeoutMs: 180_000,
    });

    // Then: the sweep succeeded
    expect(r.code, r.stderr).toBe(0);
    preempted = (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
    const rows = cli.json<ResultRow[]>(["sweep", "results", preempted]);
    expect(rows).toHaveLength(3);
    for (const row of rows) {
      expect(row.status).toBe("succeeded");
      expect(row.metrics.count).toBe(N);
      expect(row.attempts).toBe(2);

      // Attempt 1 got the notice through IMDS, mid-run, and stopped
      const first = logOf(preempted, row.index, 1);
      expect(first).toMatch(/\[spawn\] .*spot interruption notice \(terminate at .*\): SIGTERM/);
      expect(first).not.toContain("done: counted");
      const reached = lastNumber(first, /^step (\d+)$/gm)!;
      expect(reached).toBeGreaterThan(0);
      expect(reached).toBeLessThan(N);

      // Attempt 2 restored the checkpoint before starting (SPAWN_RESUME=1) and redid at most k steps
      const second = logOf(preempted, row.index, 2);
      expect(second).toMatch(/\[spawn\] restored checkpoint .* SPAWN_RESUME=1/);
      const resumed = row.metrics.resumed_from!;
      expect(resumed).toBe(lastNumber(second, /^resumed from step (\d+)/gm));
      expect(reached - resumed).toBeGreaterThanOrEqual(0);
      expect(reached - resumed).toBeLessThanOrEqual(K);
    }
  }, 200_000);
});

describe("agents killed with -9", () => {
  it("lose nothing, and no task completes twice", async () => {
    // Given: a sweep whose tasks are running and have synced a checkpoint
    const sweepId = launch(["--set", "params.grid.n=[80]"]);
    const manifests = (i: number) => {
      try {
        return readdirSync(join(cli.home, "objects", "checkpoints", sweepId, String(i), "manifests"));
      } catch {
        return [];
      }
    };
    await waitFor("a synced checkpoint of every task", () =>
      [0, 1, 2].every((i) => manifests(i).length >= 1) ? true : undefined,
    );

    // When: every agent is killed with SIGKILL (no chance to release anything)
    const status = cli.json<{ instances: Array<{ status: string; providerRef: string | null }> }>([
      "sweep",
      "status",
      sweepId,
    ]);
    const pids = status.instances.filter((i) => i.status === "running").map((i) => Number(i.providerRef));
    expect(pids.length).toBeGreaterThan(0);
    for (const pid of pids) process.kill(pid, "SIGKILL");

    // Then: the leases expire, new agents resume every task from its synced checkpoint
    const end = await waitFor(
      "the sweep to end",
      () => {
        const s = cli.json<{ status: string }>(["sweep", "status", sweepId]);
        return ["succeeded", "failed", "cancelled"].includes(s.status) ? s.status : undefined;
      },
      120_000,
    );
    expect(end).toBe("succeeded");
    for (const row of cli.json<ResultRow[]>(["sweep", "results", sweepId])) {
      expect(row.metrics.count).toBe(80);
      // One completion per task: the attempt that reported it is the last one, and no earlier one finished.
      expect(row.metrics.attempt).toBe(row.attempts);
      for (let a = 1; a < row.attempts; a++)
        expect(logOf(sweepId, row.index, a)).not.toContain("done: counted");
      expect(logOf(sweepId, row.index, row.attempts).match(/done: counted/g)).toHaveLength(1);
      // Nothing lost: the next attempt started from a checkpoint synced while the killed one ran.
      expect(row.metrics.resumed_from).toBeGreaterThan(0);
    }
  }, 200_000);
});

describe("a damaged checkpoint", () => {
  it("is never restored (--resume-from a checkpoint whose upload is corrupt)", () => {
    // Given: the newest checkpoint of task 0 of the preempted sweep, with its file damaged in the store
    const dir = join(cli.home, "objects", "checkpoints", preempted, "0");
    const ids = readdirSync(join(dir, "manifests"))
      .map((f) => f.replace(/\.json$/, ""))
      .sort();
    const newest = ids[ids.length - 1]!;
    const older = ids[0]!;
    const manifest = JSON.parse(readFileSync(join(dir, "manifests", `${newest}.json`), "utf8"));
    const blob = join(dir, "blobs", manifest.files[0].sha256);
    writeFileSync(blob, JSON.stringify({ step: 59, count: 59 }));

    // When: a new sweep is seeded from it
    const corrupt = launch(["--resume-from", `${preempted}/0/${newest}`, "--set", "params.grid.seed=[1]"]);
    // And: another from an intact, older checkpoint
    const intact = launch(["--resume-from", `${preempted}/0/${older}`, "--set", "params.grid.seed=[1]"]);

    // Then: the damaged one is refused and the task starts from scratch, saying why
    for (const id of [corrupt, intact])
      expect(cli.run(["sweep", "status", id, "--watch"], { timeoutMs: 120_000 }).code).toBe(0);
    const [fromCorrupt] = cli.json<ResultRow[]>(["sweep", "results", corrupt]);
    expect(fromCorrupt).toMatchObject({ status: "succeeded", metrics: { count: N, resumed_from: 0 } });
    expect(logOf(corrupt, 0, 1)).toMatch(
      /checkpoint \S+ not restored: checkpoint.json fails its sha256 check/,
    );
    // And: the intact one is restored
    const [fromIntact] = cli.json<ResultRow[]>(["sweep", "results", intact]);
    expect(fromIntact?.status).toBe("succeeded");
    expect(fromIntact?.metrics.resumed_from).toBe(
      JSON.parse(readFileSync(join(dir, "manifests", `${older}.json`), "utf8")).step,
    );
    expect(fromIntact?.metrics.resumed_from).toBeGreaterThan(0);
  }, 200_000);

  it("--resume-from a checkpoint that does not exist exits 3 and creates nothing", () => {
    const before = cli.json<unknown[]>(["sweep", "list"]);
    const r = cli.run(["sweep", "launch", SPEC, "--resume-from", `${preempted}/0/9999-000001`]);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain("not found");
    expect(cli.json<unknown[]>(["sweep", "list"])).toEqual(before);
  });
});
