/**
 * Hostnames on the embedded default, end to end through the real CLI binary (docs/dns.md, ADR
 * 0041): the two agents of a gang register in `$SPAWN_HOME/hosts` and find each other by name
 * through it; an agent killed with -9 cannot remove its line, and the control plane does once it
 * has reaped the agent.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LocalHosts } from "../../providers/local/hosts.js";
import { type CliEnv, cliEnv, waitFor } from "../helpers/cli.js";

// Shows the member what the contract gave it, then holds the gang up for the test.
const TASK = `#!/bin/sh
echo "peers: $(tr -d ' \\n' < "$SPAWN_PEERS_FILE")"
echo "master: $MASTER_ADDR"
sleep 600
`;

interface Peer {
  rank: number;
  instanceId: string;
  address: string;
  dnsName: string | null;
}

let cli: CliEnv;
let dir: string;
beforeAll(() => {
  cli = cliEnv("spawn-hosts-e2e-");
  dir = mkdtempSync(join(tmpdir(), "spawn-hosts-spec-"));
  writeFileSync(join(dir, "task.sh"), TASK);
  writeFileSync(
    join(dir, "pair.yaml"),
    "name: pair\ncommand: sh task.sh\nnodes: 2\nmax_instances: 2\nlease: 3s\ngrace: 1s\nrendezvous_timeout: 30s\n",
  );
});
afterAll(() => cli.stop());

/** What the member at `row` printed, once it has: the peers file and MASTER_ADDR. */
function printed(sweepId: string, row: number): { peers: Peer[]; master: string } | undefined {
  const log = cli.run(["sweep", "logs", sweepId, "--task", String(row)]).stdout;
  const peers = /^peers: (.*)$/m.exec(log)?.[1];
  const master = /^master: (.*)$/m.exec(log)?.[1];
  return peers && master ? { peers: JSON.parse(peers) as Peer[], master } : undefined;
}

describe("a local gang's hostnames", () => {
  it("resolve each member through the hosts file, and a kill -9'd agent's line goes once it is reaped", async () => {
    // Given a gang of two agents, met and running
    const r = cli.run(["sweep", "launch", join(dir, "pair.yaml"), "--json"], { cwd: dir });
    expect(r.code, r.stderr).toBe(0);
    const { sweepId } = JSON.parse(r.stdout) as { sweepId: string };
    const seen = await waitFor("both members to print their peers", () => {
      const both = [printed(sweepId, 0), printed(sweepId, 1)];
      return both.every((p) => p !== undefined) ? both : undefined;
    });
    const hosts = new LocalHosts(cli.home);

    // Then every member saw the same peers, each under the name its agent registered in the file,
    // at the address the file gives for that name; MASTER_ADDR is rank 0's
    const lines = await hosts.entries();
    expect(lines.map((l) => l.host).sort()).toEqual([
      `i0.${sweepId}.spawn.local`,
      `i1.${sweepId}.spawn.local`,
    ]);
    expect(seen[1]!.peers).toEqual(seen[0]!.peers);
    const peers = seen[0]!.peers;
    expect(peers.map((p) => p.rank)).toEqual([0, 1]);
    for (const peer of peers) {
      const line = lines.find((l) => l.instanceId === peer.instanceId);
      expect(peer.dnsName).toBe(line?.host);
      expect([peer.address]).toEqual(await hosts.resolve(peer.dnsName!));
    }
    expect(seen.map((s) => s.master)).toEqual([peers[0]!.address, peers[0]!.address]);
    // The group name is every live member's address; neither agent had to fall back to addresses
    expect(await hosts.resolve(`${sweepId}.spawn.local`)).toEqual(lines.map((l) => l.ip));
    const agentLog = (id: string) => readFileSync(join(cli.home, "instances", id, "agent.log"), "utf8");
    for (const peer of peers) expect(agentLog(peer.instanceId)).not.toContain("found by address");
    const attempt = cli.run(["sweep", "logs", sweepId, "--task", "1"]).stdout;
    expect(attempt).toContain(`[spawn] gang met: rank 1 of 2, master ${peers[0]!.address}:`);
    expect(attempt).toContain(`(${peers[0]!.dnsName})`);

    // When rank 1's agent is killed with SIGKILL (it cannot deregister)
    const status = cli.json<{ instances: Array<{ instanceId: string; providerRef: string | null }> }>([
      "sweep",
      "status",
      sweepId,
    ]);
    const victim = status.instances.find((i) => i.instanceId === peers[1]!.instanceId)!;
    process.kill(Number(victim.providerRef), "SIGKILL");
    const killedAt = Date.now();

    // Then the control plane reaps it and removes its line: its name resolves to nothing, and the
    // group name no longer includes it
    await waitFor(
      "the killed agent's line to go",
      () => (readFileSync(hosts.path, "utf8").includes(`# ${victim.instanceId}`) ? undefined : true),
      15_000,
    );
    expect(Date.now() - killedAt).toBeLessThan(10_000);
    expect(await hosts.resolve(peers[1]!.dnsName!)).toEqual([]);
    expect((await hosts.entries()).map((l) => l.instanceId)).not.toContain(victim.instanceId);
    expect(cli.run(["sweep", "cancel", sweepId]).code).toBe(0);
  }, 60_000);
});
