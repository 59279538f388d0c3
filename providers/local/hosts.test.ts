import { mkdirSync, mkdtempSync, readFileSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { LocalHosts } from "./hosts.js";

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
