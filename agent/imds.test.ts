import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { type FakeImds, startFakeImds } from "../test/helpers/fake-imds.js";
import { ImdsClient, ImdsError, watchInterruptions } from "./imds.js";

let imds: FakeImds;
beforeEach(async () => {
  imds = await startFakeImds();
});
afterEach(async () => {
  await imds.close();
});

describe("ImdsClient (IMDSv2)", () => {
  it("gets a token with a TTL, sends it on every GET, and reuses it", async () => {
    // Given
    const client = new ImdsClient({ endpoint: imds.endpoint });

    // When: two polls without a notice
    expect(await client.interruption()).toBeUndefined();
    expect(await client.rebalance()).toBeUndefined();

    // Then: one token PUT, two GETs, none refused
    expect(imds.server.stats).toEqual({ tokenPuts: 1, gets: 2, unauthorized: 0 });
  });

  it("reads a posted interruption notice and rebalance recommendation", async () => {
    const client = new ImdsClient({ endpoint: imds.endpoint });
    imds.interrupt("stop", 120_000);
    imds.rebalance();
    const notice = await client.interruption();
    expect(notice?.action).toBe("stop");
    expect(Math.abs((notice?.actionAt ?? 0) - (Date.now() + 120_000))).toBeLessThan(2000);
    expect((await client.rebalance())?.noticeAt).toBeGreaterThan(Date.now() - 2000);
  });

  it("fetches a new token on 401 (expired or IMDS restarted)", async () => {
    const client = new ImdsClient({ endpoint: imds.endpoint });
    await client.interruption();
    // When: the server forgets its tokens
    imds.expireTokens();
    imds.interrupt();
    // Then: the client gets a 401, a new token, and the notice
    expect((await client.interruption())?.action).toBe("terminate");
    expect(imds.server.stats.unauthorized).toBe(1);
    expect(imds.server.stats.tokenPuts).toBe(2);
  });

  it("refreshes the token before it expires", async () => {
    // Given: a clock under the test's control and a 60 s token refreshed 15 s before expiry
    let now = Date.now();
    const client = new ImdsClient({ endpoint: imds.endpoint, tokenTtlS: 60, now: () => now });
    await client.interruption();
    now += 44_000;
    await client.interruption();
    expect(imds.server.stats.tokenPuts).toBe(1);
    // When: within 15 s of expiry
    now += 2000;
    await client.interruption();
    // Then: a fresh token was fetched before the old one was refused
    expect(imds.server.stats.tokenPuts).toBe(2);
    expect(imds.server.stats.unauthorized).toBe(0);
  });

  it("a client that skips the token PUT fails against it (IMDSv1 is refused)", async () => {
    // IMDSv1: a plain GET
    const response = await fetch(`${imds.endpoint}/latest/meta-data/spot/instance-action`, {
      signal: AbortSignal.timeout(2000),
    });
    expect(response.status).toBe(401);
    // A PUT without a TTL header, or through a proxy, is refused too
    const noTtl = await fetch(`${imds.endpoint}/latest/api/token`, { method: "PUT" });
    expect(noTtl.status).toBe(400);
    const proxied = await fetch(`${imds.endpoint}/latest/api/token`, {
      method: "PUT",
      headers: { "x-aws-ec2-metadata-token-ttl-seconds": "60", "x-forwarded-for": "10.0.0.1" },
    });
    expect(proxied.status).toBe(403);
  });

  it("gives up with ImdsError after its retries when IMDS is unreachable", async () => {
    await imds.close();
    const client = new ImdsClient({ endpoint: imds.endpoint, attempts: 3, backoffMs: 1, timeoutMs: 500 });
    const t0 = Date.now();
    await expect(client.interruption()).rejects.toBeInstanceOf(ImdsError);
    expect(Date.now() - t0).toBeLessThan(3000);
  });
});

describe("watchInterruptions", () => {
  it("reports a notice once, at the next poll", async () => {
    const client = new ImdsClient({ endpoint: imds.endpoint });
    const seen: string[] = [];
    const watch = watchInterruptions({
      client,
      intervalMs: 50,
      onInterruption: (n) => seen.push(`interrupt ${n.action}`),
      onRebalance: () => seen.push("rebalance"),
    });
    try {
      await new Promise((r) => setTimeout(r, 150));
      expect(seen).toEqual([]);
      imds.rebalance();
      imds.interrupt("hibernate");
      await new Promise((r) => setTimeout(r, 300));
      expect(seen).toEqual(["rebalance", "interrupt hibernate"]);
    } finally {
      watch.stop();
    }
  });
});
