/**
 * The agent's hostname: registered in the background at start and removed when it deregisters,
 * the outcome written on the instance record (dynalite) and a failure published. Locally through
 * the real hosts file; on AWS through LambdaHostnames with IMDS answering from a table and the
 * dns-updater's answers (or its silence) standing in for the Lambda (its signed invoke is tested
 * in providers/aws/lambda-invoke.test.ts, the function itself in lambdas/dns-updater).
 */
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvokeOptions } from "#providers/aws/lambda-invoke.js";
import { LocalHosts } from "#providers/local/hosts.js";
import { createLogger } from "#providers/log.js";
import { agentSweep, RecordingSink } from "../test/helpers/agent.js";
import { useDynaliteStore } from "../test/helpers/dynamo.js";
import { Agent } from "./agent.js";
import { DNS_TIMEOUT_MS, type HostnameRegistrar, hostLabel, LambdaHostnames, LocalHostnames } from "./dns.js";
import { DnsResolver } from "./resolve.js";

const useStore = useDynaliteStore("dn");
let root: string;
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "spawn-dns-agent-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const _log = createLogger({}, () => undefined);

/** A one-task sweep and an agent for it; `command` runs as the task. */
async function agentWith(
  command: string,
  hostnames: (ids: { sweepId: string; instanceId: string }) => HostnameRegistrar,
) {
  const { store } = useStore();
  const { sweep, instanceId, options } = await agentSweep(store, root, "dns", { command });
  const events = new RecordingSink();
  const agent = new Agent({
    ...options,
    events,
    hostnames: hostnames({ sweepId: sweep.sweepId, instanceId }),
  });
  return { agent, sweep, instanceId, events, store };
}

describe("hostLabel", () => {
  it("is the instance's rank within its sweep, as a DNS label", () => {
    expect(hostLabel("lr-abc", "lr-abc-i12")).toBe("i12");
    expect(hostLabel("lr-abc", "Other_Id")).toBe("other-id");
  });
});

describe("on the embedded default", () => {
  it("resolves the names agents registered through the same hosts file", async () => {
    const home = await mkdtemp(join(root, "resolve-"));
    const hosts = new LocalHosts(home);
    const a = new LocalHostnames(hosts, { sweepId: "s", instanceId: "s-i0" });
    const b = new LocalHostnames(new LocalHosts(home), { sweepId: "s", instanceId: "s-i1" });
    await hosts.register({ sweepId: "s", instanceId: "s-i1", name: "i1", ip: "127.0.0.2" });

    expect(await a.register()).toEqual({ host: "i0.s.spawn.local" });
    expect(await b.resolver.resolve("i0.s.spawn.local")).toEqual(["127.0.0.1"]);
    expect(await a.resolver.resolve("i1.s.spawn.local")).toEqual(["127.0.0.2"]);
  });

  it("an agent is in the hosts file while it runs and gone after it deregisters; its record says so", async () => {
    // Given: an agent whose task resolves its own name through the hosts file
    const home = join(root, "home");
    await mkdir(home, { recursive: true });
    const hosts = new LocalHosts(home);
    let seenWhileRunning: string[] = [];
    const { agent, sweep, instanceId, store } = await agentWith(
      "sleep 1",
      (ids) => new LocalHostnames(hosts, ids),
    );
    const watcher = setInterval(async () => {
      const found = await hosts.resolve(`i0.${sweep.sweepId}.spawn.local`);
      if (found.length) seenWhileRunning = found;
    }, 100);

    // When: it runs its sweep to the end
    await agent.run();
    clearInterval(watcher);

    // Then
    expect(seenWhileRunning).toEqual(["127.0.0.1"]);
    expect(await hosts.resolve(`${sweep.sweepId}.spawn.local`)).toEqual([]);
    expect((await store.getInstance(sweep.sweepId, instanceId))?.dns).toMatchObject({
      host: `i0.${sweep.sweepId}.spawn.local`,
      status: "registered",
    });
  });
});

describe("on AWS (LambdaHostnames)", () => {
  const DOCUMENT = JSON.stringify({
    instanceId: "i-0123456789abcdef0",
    region: "us-west-2",
    privateIp: "10.0.1.23",
  });
  const imds = (tags: Record<string, string>) => ({
    get: async (path: string) =>
      ({
        ...Object.fromEntries(
          Object.entries(tags).map(([k, v]) => [`/latest/meta-data/tags/instance/${k}`, v]),
        ),
        "/latest/dynamic/instance-identity/document": DOCUMENT,
        "/latest/dynamic/instance-identity/signature": "c2lnbmF0dXJlLW9mLXRoZS1kb2N1bWVudA==\n",
      })[path],
  });
  const TAGGED = { "spawn:dns-updater": "spawn-dns-fn spawn.example.com" };
  const credentials = async () => ({ accessKeyId: "AKID", secretAccessKey: "secret" });

  it("registers through the function its tag names, with the identity document, and records the host", async () => {
    const calls: InvokeOptions[] = [];
    const invoke = async (o: InvokeOptions) => {
      calls.push(o);
      const kind = (o.payload as { kind: string }).kind;
      return kind === "register"
        ? {
            status: "registered",
            host: "i0.s.spawn.example.com",
            group: "s.spawn.example.com",
            ip: "10.0.1.23",
          }
        : { status: "removed", records: 2 };
    };
    const { agent, sweep, instanceId, store, events } = await agentWith(
      "true",
      (ids) => new LambdaHostnames({ imds: imds(TAGGED), ...ids, credentials, invoke }),
    );

    await agent.run();

    expect(calls.map((c) => [c.functionName, c.region, c.payload])).toEqual([
      [
        "spawn-dns-fn",
        "us-west-2",
        {
          kind: "register",
          document: DOCUMENT,
          signature: "c2lnbmF0dXJlLW9mLXRoZS1kb2N1bWVudA==",
          name: "i0",
        },
      ],
      [
        "spawn-dns-fn",
        "us-west-2",
        {
          kind: "deregister",
          document: DOCUMENT,
          signature: "c2lnbmF0dXJlLW9mLXRoZS1kb2N1bWVudA==",
          name: "i0",
        },
      ],
    ]);
    expect((await store.getInstance(sweep.sweepId, instanceId))?.dns).toMatchObject({
      host: "i0.s.spawn.example.com",
      status: "registered",
    });
    expect(events.events.filter((e) => e.type === "DnsRegistrationFailed")).toEqual([]);
  });

  it("records a refusal on the instance, publishes DnsRegistrationFailed, and runs the task regardless", async () => {
    const invoke = async () => ({ status: "rejected", reason: "ip-mismatch", message: "EC2 says 10.0.9.9" });
    const { agent, sweep, instanceId, store, events } = await agentWith(
      "true",
      (ids) => new LambdaHostnames({ imds: imds(TAGGED), ...ids, credentials, invoke }),
    );

    await agent.run();

    const host = `i0.${sweep.sweepId}.spawn.example.com`;
    expect((await store.getInstance(sweep.sweepId, instanceId))?.dns).toMatchObject({
      host,
      status: "failed",
      error: "spawn-dns-fn refused it (ip-mismatch): EC2 says 10.0.9.9",
    });
    expect(events.events.filter((e) => e.type === "DnsRegistrationFailed")).toEqual([
      expect.objectContaining({ instanceId, host, error: expect.stringMatching(/ip-mismatch/) }),
    ]);
    expect((await store.getTask(sweep.sweepId, 0, sweep.shardCount))?.status).toBe("succeeded");
  });

  it("gives up on a function that does not answer after a few seconds, while the task already runs", async () => {
    const never = () => new Promise<never>(() => {});
    const { agent, sweep, instanceId, store } = await agentWith(
      'echo started > "$SPAWN_OUTPUT_DIR/started"; sleep 4',
      (ids) => new LambdaHostnames({ imds: imds(TAGGED), ...ids, credentials, invoke: never }),
    );
    const started = Date.now();
    const run = agent.run();

    // The task starts without waiting for DNS; the failure is on the record within the timeout.
    const task = await until(async () => {
      const t = await store.getTask(sweep.sweepId, 0, sweep.shardCount);
      return t?.status === "running" ? t : undefined;
    });
    expect(task.status).toBe("running");
    const dns = await until(async () => (await store.getInstance(sweep.sweepId, instanceId))?.dns);
    expect(dns).toMatchObject({ status: "failed", error: /no answer from the DNS registration within 3 s/ });
    expect(dns.at - started).toBeLessThan(DNS_TIMEOUT_MS + 1500);
    await run;
  });

  it("resolves names through the system resolver unless given another", () => {
    const options = {
      imds: imds(TAGGED),
      sweepId: "s",
      instanceId: "s-i0",
      credentials,
      invoke: async () => ({}),
    };
    const zone = new DnsResolver(async () => [{ address: "10.0.1.23" }]);
    expect(new LambdaHostnames(options).resolver).toBeInstanceOf(DnsResolver);
    expect(new LambdaHostnames({ ...options, resolver: zone }).resolver).toBe(zone);
  });

  it("does nothing where the stack has no hostnames (no tag)", async () => {
    const invoke = async () => {
      throw new Error("must not be called");
    };
    const { agent, sweep, instanceId, store, events } = await agentWith(
      "true",
      (ids) => new LambdaHostnames({ imds: imds({}), ...ids, credentials, invoke }),
    );

    await agent.run();

    expect((await store.getInstance(sweep.sweepId, instanceId))?.dns).toBeUndefined();
    expect(events.events.filter((e) => e.type === "DnsRegistrationFailed")).toEqual([]);
  });
});

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}
