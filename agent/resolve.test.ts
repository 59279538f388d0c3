/**
 * The AWS resolver: the system's getaddrinfo through node:dns (here it answers `localhost` from
 * /etc/hosts, as the VPC resolver answers the stack's zone on an instance), and what it makes of
 * getaddrinfo's errors. The hosts-file resolver is LocalHosts (providers/local/hosts.test.ts).
 */
import { describe, expect, it } from "vitest";
import { DnsResolver } from "./resolve.js";

const failing = (code: string) => async () => {
  throw Object.assign(new Error(`getaddrinfo ${code} i1.s.spawn.example.com`), { code });
};

describe("DnsResolver", () => {
  it("resolves through the system resolver, IPv4 only", async () => {
    expect(await new DnsResolver().resolve("localhost")).toContain("127.0.0.1");
    expect(await new DnsResolver().resolve("127.0.0.5")).toEqual(["127.0.0.5"]);
  });

  it("answers every address of a multi-value name", async () => {
    const resolver = new DnsResolver(async () => [{ address: "10.0.1.5" }, { address: "10.0.1.6" }]);
    expect(await resolver.resolve("s.spawn.example.com")).toEqual(["10.0.1.5", "10.0.1.6"]);
  });

  it("answers no address for a name that does not exist, and throws when it cannot tell", async () => {
    expect(await new DnsResolver(failing("ENOTFOUND")).resolve("i1.s.spawn.example.com")).toEqual([]);
    expect(await new DnsResolver(failing("ENODATA")).resolve("i1.s.spawn.example.com")).toEqual([]);
    await expect(new DnsResolver(failing("EAI_AGAIN")).resolve("i1.s.spawn.example.com")).rejects.toThrow(
      /EAI_AGAIN/,
    );
  });
});
