/**
 * How an agent turns a spawn hostname (`<name>.<sweep>.<zone>`, docs/dns.md) into addresses:
 * the port, and its AWS implementation. On AWS the names are Route 53 records the dns-updater
 * wrote, so they resolve like any name (getaddrinfo, through the VPC resolver); on the embedded
 * default `$SPAWN_HOME/hosts` holds them and providers/local/hosts.ts `LocalHosts` is the
 * implementation. Peer discovery (agent/rendezvous.ts) is written against the port only.
 */
import { lookup } from "node:dns/promises";

/** Resolves spawn hostnames. */
export interface HostResolver {
  /**
   * Every address `name` resolves to now: one for a host name, one per live instance for a
   * sweep's group name; [] when it resolves to none. Throws when it cannot tell (resolver down).
   */
  resolve(name: string): Promise<string[]>;
}

/** What `lookup(name, { all: true, family: 4 })` of node:dns/promises answers. */
export type LookupAll = (name: string) => Promise<ReadonlyArray<{ address: string }>>;

/** The codes getaddrinfo answers for a name that has no address (rather than a resolver failure). */
const NO_SUCH_NAME = new Set(["ENOTFOUND", "ENODATA"]);

/**
 * AWS: the system resolver (node:dns `lookup`, i.e. getaddrinfo, as the task's own tools
 * resolve), which answers for the stack's private hosted zone once it is associated with the
 * VPC. IPv4 only: the dns-updater writes A records.
 */
export class DnsResolver implements HostResolver {
  constructor(private readonly lookupAll: LookupAll = (name) => lookup(name, { all: true, family: 4 })) {}

  async resolve(name: string): Promise<string[]> {
    try {
      return (await this.lookupAll(name)).map((a) => a.address);
    } catch (error) {
      if (NO_SUCH_NAME.has((error as NodeJS.ErrnoException).code ?? "")) return [];
      throw error;
    }
  }
}
