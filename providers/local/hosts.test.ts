import { mkdirSync, mkdtempSync, readFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import type { InstanceRecord } from "#core/model.js";
import { useDynaliteStore } from "../../test/helpers/dynamo.js";
import { LocalHosts, pruneHosts } from "./hosts.js";

const db = useDynaliteStore("hosts");

const fresh = () => new LocalHosts(mkdtempSync(join(tmpdir(), "spawn-hosts-")));

describe("LocalHosts", () => {
  test("names resolve like the AWS records: host, and the sweep's group to every agent", async () => {
    const hosts = fresh();
    await hosts.register({ instanceId: "lr-abc-i0", sweepId: "lr-abc", name: "rank-0" });
    await hosts.register({ instanceId: "lr-abc-i1", sweepId: "lr-abc", name: "rank-1", ip: "127.0.0.2" });

    expect(await hosts.resolve("rank-1.lr-abc.spawn.local")).toEqual(["127.0.0.2"]);
    expect(await hosts.resolve("lr-abc.spawn.local.")).toEqual(["127.0.0.1", "127.0.0.2"]);
    expect(await hosts.resolve("rank-9.lr-abc.spawn.local")).toEqual([]);
    expect(readFileSync(hosts.path, "utf8")).toContain(
      "127.0.0.1\trank-0.lr-abc.spawn.local\tlr-abc.spawn.local\t# lr-abc-i0",
    );
  });

  test("deregistering removes the agent from its host and group names; a taken name moves", async () => {
    const hosts = fresh();
    await hosts.register({ instanceId: "a", sweepId: "s", name: "rank-0" });
    await hosts.register({ instanceId: "b", sweepId: "s", name: "rank-0", ip: "127.0.0.3" });
    expect(await hosts.resolve("rank-0.s.spawn.local")).toEqual(["127.0.0.3"]);
    await hosts.deregister("b");
    await hosts.deregister("b");
    expect(await hosts.entries()).toEqual([]);
  });

  test("concurrent registrations all land (the lock serializes writers)", async () => {
    const hosts = fresh();
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        hosts.register({ instanceId: `s-i${i}`, sweepId: "s", name: `rank-${i}` }),
      ),
    );
    expect((await hosts.resolve("s.spawn.local")).length).toBe(20);
  });

  test("a lock left by a dead writer is broken after 10 s; bad labels are refused", async () => {
    const hosts = fresh();
    const lock = `${hosts.path}.lock`;
    mkdirSync(lock);
    const old = (Date.now() - 60_000) / 1000;
    utimesSync(lock, old, old);
    await hosts.register({ instanceId: "a", sweepId: "s", name: "n" });
    expect(await hosts.resolve("n.s.spawn.local")).toEqual(["127.0.0.1"]);
    await expect(hosts.register({ instanceId: "a", sweepId: "s", name: "../x" })).rejects.toThrow(
      /not a DNS label/,
    );
  });
});

describe("pruneHosts (the control plane's cleanup)", () => {
  const instance = (
    sweepId: string,
    instanceId: string,
    status: InstanceRecord["status"],
  ): InstanceRecord => ({
    sweepId,
    instanceId,
    provider: "local",
    status,
    slots: 1,
    launchedAt: Date.now() - 60_000,
    deadline: Date.now() + 3_600_000,
    heartbeatAt: Date.now(),
    ...(status === "terminated" ? { terminatedAt: Date.now(), reason: "instance is gone" } : {}),
  });

  test("removes the lines of terminated and unknown instances, and keeps the live ones", async () => {
    // Given: in sweep p1, i0 is running, i1 was killed -9 and reconcile terminated it, i2 is
    // still launching; sweep gone-7 has no records at all (a reset store)
    const { store } = db();
    await store.putInstance(instance("p1", "p1-i0", "running"));
    await store.putInstance(instance("p1", "p1-i1", "terminated"));
    await store.putInstance(instance("p1", "p1-i2", "launching"));
    const hosts = fresh();
    for (const id of ["p1-i0", "p1-i1", "p1-i2"])
      await hosts.register({ instanceId: id, sweepId: "p1", name: id.slice(3) });
    await hosts.register({ instanceId: "gone-7-i0", sweepId: "gone-7", name: "i0" });

    // When
    const removed = await pruneHosts(hosts, store);

    // Then
    expect(removed.map((e) => e.host).sort()).toEqual(["i0.gone-7.spawn.local", "i1.p1.spawn.local"]);
    expect(await hosts.resolve("p1.spawn.local")).toEqual(["127.0.0.1", "127.0.0.1"]);
    expect((await hosts.entries()).map((e) => e.instanceId)).toEqual(["p1-i0", "p1-i2"]);
    expect(await pruneHosts(hosts, store)).toEqual([]);
  });

  test("an empty or missing file costs no store read", async () => {
    const hosts = fresh();
    const store = {
      listInstances: async () => {
        throw new Error("must not be read");
      },
    };
    expect(await pruneHosts(hosts, store)).toEqual([]);
  });

  test("a register replaces the stale line a killed agent left under the same name", async () => {
    // Given a dead agent's line for i0 (no one removed it)
    const hosts = fresh();
    await hosts.register({ instanceId: "old-agent", sweepId: "s", name: "i0", ip: "127.0.0.9" });

    // When a new agent registers the same name
    await hosts.register({ instanceId: "new-agent", sweepId: "s", name: "i0" });

    // Then the name has one line, the new agent's
    expect(await hosts.resolve("i0.s.spawn.local")).toEqual(["127.0.0.1"]);
    expect((await hosts.entries()).map((e) => e.instanceId)).toEqual(["new-agent"]);
  });
});
