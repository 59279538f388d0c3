/**
 * The dns-updater's contract (docs/dns.md), shared by the Lambda that serves it, the agents that
 * call it and the stack that deploys it: what is asked, what is answered, and the tags involved.
 */
import { z } from "zod";

/** On an instance: `<name> <ip>`, the records it got, so its termination alone can remove them. */
export const DNS_TAG = "spawn:dns";

/**
 * On an instance whose stack has hostnames: `<dns-updater function name> <zone>`. The orchestrator
 * tags it at launch and the agent reads it from IMDS; no tag, no hostnames.
 */
export const DNS_UPDATER_TAG = "spawn:dns-updater";

/** Where an instance registers: the function to invoke and the zone its names end in. */
export interface DnsTarget {
  functionName: string;
  zone: string;
}

export const formatDnsTarget = (t: DnsTarget) => `${t.functionName} ${t.zone}`;

/** The tag's value read back; undefined when it is not `<function> <zone>`. */
export function parseDnsTarget(value: string | undefined): DnsTarget | undefined {
  const [functionName, zone, ...rest] = (value ?? "").trim().split(/\s+/);
  return functionName && zone && rest.length === 0 ? { functionName, zone } : undefined;
}

/** What an agent asks: `document` and `signature` are IMDS's identity document and its `/signature`. */
export const DnsAgentRequest = z.object({
  kind: z.enum(["register", "deregister"]),
  document: z.string().min(2).max(8192),
  signature: z.string().min(16).max(4096),
  /** The label to register under (`<name>.<sweep>.<zone>`); the EC2 instance id when absent. */
  name: z.string().optional(),
});
export type DnsAgentRequest = z.infer<typeof DnsAgentRequest>;

/** What the dns-updater answers. `rejected` is final (the reasons are in providers/aws/identity.ts). */
export const DnsResult = z.discriminatedUnion("status", [
  z.object({ status: z.literal("registered"), host: z.string(), group: z.string(), ip: z.string() }),
  z.object({ status: z.literal("removed"), records: z.number().int().nonnegative() }),
  z.object({ status: z.literal("rejected"), reason: z.string(), message: z.string() }),
  z.object({ status: z.literal("ignored"), message: z.string() }),
]);
export type DnsResult = z.infer<typeof DnsResult>;
