/**
 * The dns-updater Lambda: instance hostnames in the stack's private hosted zone.
 *
 * - `{kind: "register", document, signature, name?}` (the agent, at start) and
 *   `{kind: "deregister", document, signature}` (the agent, on shutdown): nothing the caller
 *   says is trusted. The identity document's signature must verify against AWS's certificate
 *   for its region; then EC2 must say the instance is running, carries the stack's tags, has
 *   the document's IP and started when the document says. Only then are its records UPSERTed
 *   (or deleted). A refused request is answered `{status: "rejected", reason}` and not retried.
 * - the EC2 state-change event for a terminated instance (a rule on the default bus): its
 *   records, found through its `spawn:dns` tag, are deleted.
 *
 * A Route 53 or EC2 error fails the invocation (the caller sees it and may retry). The agent
 * calls with a short timeout and never waits on DNS to run tasks (docs/dns.md).
 *
 * Environment (cold start): SPAWN_STACK_NAME, SPAWN_HOME_REGION, SPAWN_HOSTED_ZONE_ID,
 * SPAWN_DNS_ZONE (e.g. `spawn.internal`), SPAWN_IDENTITY_CERTS_FILE (JSON: region → PEM of
 * AWS's identity certificate, bundled with the function).
 */
import { readFileSync } from "node:fs";
import { CreateTagsCommand, DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import { ChangeResourceRecordSetsCommand, Route53Client } from "@aws-sdk/client-route-53";
import middy from "@middy/core";
import { z } from "zod";
import { DNS_TAG, DnsAgentRequest, type DnsResult } from "#providers/aws/dns.js";
import {
  checkInstance,
  type IdentityCertificates,
  IdentityError,
  type ObservedIdentity,
  verifyIdentityDocument,
} from "#providers/aws/identity.js";
import { requireEnv } from "../shared/env.js";
import { lambdaLogger } from "../shared/logger.js";
import {
  BadEventError,
  handleErrors,
  type LoggedContext,
  logContext,
  validateEvent,
} from "../shared/middleware.js";
import { checkLabel, recordNames, removeRecords, upsertInput } from "./records.js";

export const ENV = requireEnv([
  "SPAWN_STACK_NAME",
  "SPAWN_HOME_REGION",
  "SPAWN_HOSTED_ZONE_ID",
  "SPAWN_DNS_ZONE",
  "SPAWN_IDENTITY_CERTS_FILE",
]);

const logger = lambdaLogger("dns-updater");

const StateChange = z.object({
  source: z.literal("aws.ec2"),
  /** The instance's region (events from launch regions arrive forwarded to the home bus). */
  region: z.string().optional(),
  "detail-type": z.literal("EC2 Instance State-change Notification"),
  detail: z.object({ "instance-id": z.string(), state: z.string() }),
});

export type DnsRequest =
  | DnsAgentRequest
  | { kind: "terminated"; instanceId: string; state: string; region: string };

export function parseRequest(raw: unknown): DnsRequest {
  const agent = DnsAgentRequest.safeParse(raw);
  if (agent.success) return agent.data;
  const change = StateChange.safeParse(raw);
  if (change.success)
    return {
      kind: "terminated",
      instanceId: change.data.detail["instance-id"],
      state: change.data.detail.state,
      region: change.data.region ?? ENV.SPAWN_HOME_REGION,
    };
  throw new BadEventError(`not a dns request or an EC2 state change: ${z.prettifyError(agent.error)}`);
}

let clients:
  | { ec2: (region: string) => EC2Client; route53: Route53Client; certificates: IdentityCertificates }
  | undefined;

const ec2Clients = new Map<string, EC2Client>();

function container() {
  clients ??= {
    // Instances live in every launch region: each is asked in its own.
    ec2: (region) => {
      const client = ec2Clients.get(region) ?? new EC2Client({ region });
      ec2Clients.set(region, client);
      return client;
    },
    route53: new Route53Client({ region: ENV.SPAWN_HOME_REGION }),
    certificates: z
      .record(z.string(), z.string())
      .parse(JSON.parse(readFileSync(ENV.SPAWN_IDENTITY_CERTS_FILE, "utf8"))),
  };
  return clients;
}

async function observe(ec2: EC2Client, instanceId: string): Promise<ObservedIdentity | undefined> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  const instance = out.Reservations?.[0]?.Instances?.[0];
  if (!instance) return undefined;
  return {
    state: instance.State?.Name ?? "unknown",
    ...(instance.PrivateIpAddress ? { privateIp: instance.PrivateIpAddress } : {}),
    ...(instance.LaunchTime ? { launchTime: instance.LaunchTime.getTime() } : {}),
    tags: Object.fromEntries((instance.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])),
  };
}

async function handle(request: DnsRequest): Promise<DnsResult> {
  const { ec2, route53, certificates } = container();
  const zone = ENV.SPAWN_DNS_ZONE;
  if (request.kind === "terminated") {
    if (request.state !== "terminated" && request.state !== "shutting-down")
      return { status: "ignored", message: `state ${request.state}` };
    const observed = await observe(ec2(request.region), request.instanceId);
    const tag = observed?.tags[DNS_TAG];
    const sweepId = observed?.tags["spawn:sweep"];
    if (!tag || !sweepId || observed?.tags["spawn:stack"] !== ENV.SPAWN_STACK_NAME)
      return { status: "ignored", message: `instance ${request.instanceId} has no spawn records` };
    const [name, ip] = tag.split(" ") as [string, string];
    return {
      status: "removed",
      records: await removeRecords(route53, ENV.SPAWN_HOSTED_ZONE_ID, zone, {
        instanceId: request.instanceId,
        sweepId,
        name,
        ip,
      }),
    };
  }
  try {
    const document = verifyIdentityDocument(request.document, request.signature, certificates, Date.now());
    const observed = await observe(ec2(document.region), document.instanceId);
    if (!observed) throw new IdentityError("not-ours", `instance ${document.instanceId} does not exist here`);
    if (request.kind === "deregister") {
      // A shutting-down agent still proves who it is; its instance may no longer be "running".
      const tag = observed.tags[DNS_TAG];
      const sweepId = observed.tags["spawn:sweep"];
      if (!tag || !sweepId || observed.tags["spawn:stack"] !== ENV.SPAWN_STACK_NAME)
        return { status: "ignored", message: `instance ${document.instanceId} has no spawn records` };
      const [name, ip] = tag.split(" ") as [string, string];
      const records = await removeRecords(route53, ENV.SPAWN_HOSTED_ZONE_ID, zone, {
        instanceId: document.instanceId,
        sweepId,
        name,
        ip,
      });
      return { status: "removed", records };
    }
    const sweepId = checkLabel(checkInstance(document, observed, ENV.SPAWN_STACK_NAME), "the sweep id");
    const name = checkLabel(request.name ?? document.instanceId, "name");
    const records = { instanceId: document.instanceId, sweepId, name, ip: document.privateIp };
    await route53.send(
      new ChangeResourceRecordSetsCommand(upsertInput(ENV.SPAWN_HOSTED_ZONE_ID, zone, records)),
    );
    await ec2(document.region).send(
      new CreateTagsCommand({
        Resources: [document.instanceId],
        Tags: [{ Key: DNS_TAG, Value: `${name} ${records.ip}` }],
      }),
    );
    return { status: "registered", ...recordNames(zone, records), ip: records.ip };
  } catch (error) {
    if (error instanceof IdentityError)
      return { status: "rejected", reason: error.reason, message: error.message };
    throw error;
  }
}

export const handler = middy<DnsRequest, DnsResult, Error, LoggedContext>()
  .use(validateEvent(parseRequest))
  .use(
    logContext(logger, (r: DnsRequest) => ({
      kind: r.kind,
      ...(r.kind === "terminated" ? { instanceId: r.instanceId } : {}),
    })),
  )
  .use(handleErrors(logger))
  .handler(async (request) => handle(request));
