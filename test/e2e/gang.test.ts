/**
 * Gangs (spec `nodes`) end to end on the embedded default, through the real CLI binary: every
 * member is a real local agent process, and the rendezvous goes through the embedded DynamoDB.
 * The task script reports, as metrics, the sha256 of the peers file it was given, so the test
 * compares what every rank saw.
 */
import { mkdtempSync, readdirSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DynamoStateStore } from "../../providers/dynamodb/store.js";
import { TABLE_PREFIX } from "../../providers/local/client.js";
import { type CliEnv, cliEnv, serverInfo, waitFor } from "../helpers/cli.js";
import { dynamoClient } from "../helpers/dynamo.js";

interface ResultRow {
  index: number;
  status: string;
  attempts: number;
  error: string | null;
  metrics: {
    peers_sha?: string;
    rank?: number;
    world?: number;
    task?: number;
    tasks?: number;
    master?: string;
    hosts?: number;
    resumed?: number;
  };
}

// Reports what the contract gave this member; with HOLD > 0 and nothing to resume from, it first
// leaves a checkpoint and waits (long enough for the test to kill a member).
const TASK = `#!/bin/sh
set -e
sha=$(sha256sum "$SPAWN_PEERS_FILE" | cut -c1-64)
hosts=$(grep -c " slots=1$" "$SPAWN_HOSTFILE")
if [ "$SPAWN_RESUME" != 1 ] && [ "$SPAWN_PARAM_HOLD" -gt 0 ]; then
  echo started > "$SPAWN_CHECKPOINT_DIR/started"
  sleep "$SPAWN_PARAM_HOLD"
fi
printf '{"peers_sha":"%s","rank":%s,"world":%s,"task":%s,"tasks":%s,"master":"%s:%s","hosts":%s,"resumed":%s}\\n' \\
  "$sha" "$SPAWN_RANK" "$SPAWN_WORLD_SIZE" "$SPAWN_TASK_INDEX" "$SPAWN_TASK_COUNT" \\
  "$MASTER_ADDR" "$MASTER_PORT" "$hosts" "$SPAWN_RESUME" >> "$SPAWN_METRICS_FILE"
`;

let cli: CliEnv;
let dir: string;
beforeAll(() => {
  cli = cliEnv("spawn-gang-e2e-");
  dir = mkdtempSync(join(tmpdir(), "spawn-gang-spec-"));
  writeFileSync(join(dir, "gang-task.sh"), TASK);
});
afterAll(() => cli.stop());

/** Writes a gang spec (4 members, short lease, checkpoints every second) and returns its path. */
function spec(name: string, extra: string): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `name: ${name}
command: sh gang-task.sh
nodes: 4
max_instances: 4
lease: 3s
grace: 5s
idle_timeout: 20s
checkpoint: { interval: 1s }
${extra}`,
  );
  return file;
}

function launch(file: string, wait: boolean): { code: number; sweepId: string; stderr: string } {
  const r = cli.run(["sweep", "launch", file, "--json", ...(wait ? ["--wait"] : [])], { timeoutMs: 240_000 });
  const sweepId = r.stdout ? (JSON.parse(r.stdout) as { sweepId: string }).sweepId : "";
  return { code: r.code, sweepId, stderr: r.stderr };
}

const ended = (sweepId: string) => () => {
  const s = cli.json<{ status: string }>(["sweep", "status", sweepId]);
  return ["succeeded", "failed", "cancelled"].includes(s.status) ? s.status : undefined;
};

describe("a 4-node gang", () => {
  it("meets, and every rank of every gang sees the same peers file and master", () => {
    // Given two gang tasks of 4 members and 4 instances
    const file = spec("meet", "rendezvous_timeout: 90s\nparams: { list: [{ hold: 0 }, { hold: 0 }] }\n");

    // When
    const { code, sweepId, stderr } = launch(file, true);

    // Then both gangs ran, one after the other, on the same four agents
    expect(code, stderr).toBe(0);
    const rows = cli.json<ResultRow[]>(["sweep", "results", sweepId]);
    expect(rows).toHaveLength(8);
    for (const task of [0, 1]) {
      const members = rows.filter((r) => Math.floor(r.index / 4) === task);
      expect(members.map((m) => m.status)).toEqual(Array(4).fill("succeeded"));
      expect(members.map((m) => m.metrics.rank)).toEqual([0, 1, 2, 3]);
      for (const m of members)
        expect(m.metrics).toMatchObject({ world: 4, task, tasks: 2, hosts: 4, resumed: 0 });
      expect(new Set(members.map((m) => m.metrics.peers_sha)).size).toBe(1);
      expect(new Set(members.map((m) => m.metrics.master)).size).toBe(1);
      expect(members[0]!.metrics.master).toMatch(/^127\.0\.0\.1:\d+$/);
    }
  }, 260_000);
});

describe("a gang member killed with -9", () => {
  it("restarts the whole gang at a new epoch, which resumes from its checkpoints and succeeds", async () => {
    // Given a gang whose members all run and have synced a checkpoint
    const file = spec("kill", "rendezvous_timeout: 90s\nparams: { list: [{ hold: 600 }] }\n");
    const { code, sweepId, stderr } = launch(file, false);
    expect(code, stderr).toBe(0);
    const manifests = (i: number) => {
      try {
        return readdirSync(join(cli.home, "objects", "checkpoints", sweepId, String(i), "manifests"));
      } catch {
        return [];
      }
    };
    await waitFor("a synced checkpoint of every member", () =>
      [0, 1, 2, 3].every((i) => manifests(i).length >= 1) ? true : undefined,
    );

    // When one member's agent is killed with SIGKILL
    const status = cli.json<{ instances: Array<{ status: string; providerRef: string | null }> }>([
      "sweep",
      "status",
      sweepId,
    ]);
    const pids = status.instances.filter((i) => i.status === "running").map((i) => Number(i.providerRef));
    expect(pids).toHaveLength(4);
    process.kill(pids[1]!, "SIGKILL");

    // Then its lease expires, the whole gang restarts, resumes from its checkpoints and succeeds
    expect(await waitFor("the sweep to end", ended(sweepId))).toBe("succeeded");
    const rows = cli.json<ResultRow[]>(["sweep", "results", sweepId]);
    expect(rows.map((r) => r.status)).toEqual(Array(4).fill("succeeded"));
    for (const r of rows) {
      expect(r.attempts).toBeGreaterThanOrEqual(2);
      expect(r.metrics.resumed).toBe(1);
    }
    expect(new Set(rows.map((r) => r.metrics.peers_sha)).size).toBe(1);
    // Epoch 0 had met before the kill
    const log = cli.run(["sweep", "logs", sweepId, "--task", "0", "--attempt", "1"]);
    expect(log.stdout).toContain("[spawn] gang met: rank 0 of 4");
  }, 260_000);
});

describe("a member that never arrives", () => {
  it("makes the rendezvous time out, failing the attempt with the missing rank named", async () => {
    // Given a gang whose agents spend 3 s in setup, and rank 3's row held by an agent that never
    // shows up (claimed straight in the store, with a lease that outlives the test)
    const file = spec("late", "setup: sleep 3\nrendezvous_timeout: 4s\nparams: { list: [{ hold: 0 }] }\n");
    const { code, sweepId, stderr } = launch(file, false);
    expect(code, stderr).toBe(0);
    const endpoint = serverInfo(cli.home)?.endpoint;
    expect(endpoint).toBeDefined();
    const client = dynamoClient(endpoint!);
    try {
      const store = new DynamoStateStore(client, TABLE_PREFIX);
      const sweep = await store.getSweep(sweepId);
      await store.updateTask(
        sweepId,
        3,
        sweep!.shardCount,
        { status: "pending", attempt: 0 },
        {
          status: "running",
          attempt: 1,
          leaseOwner: "blocked-agent",
          leaseExpiresAt: Date.now() + 600_000,
          startedAt: Date.now(),
        },
      );
    } finally {
      client.destroy();
    }

    // When the other three members wait for it
    expect(await waitFor("the sweep to end", ended(sweepId))).toBe("failed");

    // Then the attempt failed (retry allows one attempt), on every member, saying which rank never came
    const rows = cli.json<ResultRow[]>(["sweep", "results", sweepId]);
    expect(rows.map((r) => r.status)).toEqual(Array(4).fill("failed"));
    for (const r of rows)
      expect(r.error).toMatch(/^rank [012]: rendezvous timeout after 4s: rank 3 never arrived$/);
    const log = cli.run(["sweep", "logs", sweepId, "--task", "0", "--attempt", "1"]);
    expect(log.stdout).toContain("[spawn] rendezvous timeout after 4s: rank 3 never arrived");
  }, 200_000);
});
