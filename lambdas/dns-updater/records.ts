/**
 * The dns-updater's work once an instance is verified: its records in the stack's private
 * hosted zone, through Route 53 ChangeResourceRecordSets.
 *
 * - `<name>.<sweep>.<zone>`: A, TTL 60, the instance's private IP (`name` defaults to the EC2
 *   instance id; an agent may ask for its task name);
 * - `<sweep>.<zone>`: a multi-value A record per instance (SetIdentifier = instance id), so the
 *   sweep's name resolves to its live instances (a job array's group name).
 *
 * The name and IP the instance got are tagged on it (`spawn:dns` = `<name> <ip>`), so its
 * records can be removed when it terminates, from the state-change event alone.
 */
import {
  ChangeResourceRecordSetsCommand,
  type ChangeResourceRecordSetsCommandInput,
  ListResourceRecordSetsCommand,
  type ResourceRecordSet,
  type Route53Client,
} from "@aws-sdk/client-route-53";
import { IdentityError } from "#providers/aws/identity.js";

export const DNS_TTL = 60;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A DNS label, or a refusal naming the value (a caller's name is a claim like any other). */
export function checkLabel(value: string, what: string): string {
  if (!LABEL.test(value))
    throw new IdentityError(
      "malformed",
      `${what} ${JSON.stringify(value)} is not a DNS label (a-z, 0-9, -; at most 63)`,
    );
  return value;
}

export interface InstanceRecords {
  instanceId: string;
  sweepId: string;
  name: string;
  ip: string;
}

export function recordNames(
  zone: string,
  records: Pick<InstanceRecords, "sweepId" | "name">,
): { host: string; group: string } {
  const z = zone.replace(/\.$/, "");
  return { host: `${records.name}.${records.sweepId}.${z}`, group: `${records.sweepId}.${z}` };
}

export function upsertInput(
  zoneId: string,
  zone: string,
  r: InstanceRecords,
): ChangeResourceRecordSetsCommandInput {
  const { host, group } = recordNames(zone, r);
  const value = [{ Value: r.ip }];
  return {
    HostedZoneId: zoneId,
    ChangeBatch: {
      Comment: `spawn: ${r.instanceId} of ${r.sweepId}`,
      Changes: [
        {
          Action: "UPSERT",
          ResourceRecordSet: { Name: host, Type: "A", TTL: DNS_TTL, ResourceRecords: value },
        },
        {
          Action: "UPSERT",
          ResourceRecordSet: {
            Name: group,
            Type: "A",
            TTL: DNS_TTL,
            SetIdentifier: r.instanceId,
            MultiValueAnswer: true,
            ResourceRecords: value,
          },
        },
      ],
    },
  };
}

/** Route 53 returns names fully qualified, with the trailing dot. */
const sameName = (a: string | undefined, b: string) => a?.replace(/\.$/, "") === b;

/** The record set of `name` (and `setIdentifier`), as Route 53 holds it: a DELETE must match it exactly. */
async function current(
  route53: Route53Client,
  zoneId: string,
  name: string,
  setIdentifier?: string,
): Promise<ResourceRecordSet | undefined> {
  const out = await route53.send(
    new ListResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      StartRecordName: name,
      StartRecordType: "A",
      ...(setIdentifier ? { StartRecordIdentifier: setIdentifier } : {}),
      MaxItems: 1,
    }),
  );
  const set = out.ResourceRecordSets?.[0];
  return set && sameName(set.Name, name) && set.Type === "A" && set.SetIdentifier === setIdentifier
    ? set
    : undefined;
}

/** Removes the instance's records; records already gone are not an error. Returns how many were deleted. */
export async function removeRecords(
  route53: Route53Client,
  zoneId: string,
  zone: string,
  r: InstanceRecords,
): Promise<number> {
  const { host, group } = recordNames(zone, r);
  const hostSet = await current(route53, zoneId, host);
  const groupSet = await current(route53, zoneId, group, r.instanceId);
  // A host name another instance took over (UPSERT with its IP) is no longer this one's to delete.
  const mine = [hostSet?.ResourceRecords?.[0]?.Value === r.ip ? hostSet : undefined, groupSet].filter(
    (s): s is ResourceRecordSet => s !== undefined,
  );
  if (!mine.length) return 0;
  await route53.send(
    new ChangeResourceRecordSetsCommand({
      HostedZoneId: zoneId,
      ChangeBatch: {
        Comment: `spawn: ${r.instanceId} of ${r.sweepId} is gone`,
        Changes: mine.map((set) => ({ Action: "DELETE", ResourceRecordSet: set })),
      },
    }),
  );
  return mine.length;
}
