/**
 * The deployed dns-updater end to end: identity documents signed with a key whose self-signed
 * certificate stands in for AWS's, EC2 and Route 53 through aws-sdk-client-mock.
 */
import { randomUUID, sign } from "node:crypto";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CreateTagsCommand, DescribeInstancesCommand, EC2Client } from "@aws-sdk/client-ec2";
import {
  ChangeResourceRecordSetsCommand,
  ListResourceRecordSetsCommand,
  Route53Client,
} from "@aws-sdk/client-route-53";
import type { Context } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { beforeAll, beforeEach, describe, expect, it } from "vitest";

const ec2 = mockClient(EC2Client);
const route53 = mockClient(Route53Client);
const CERT = readFileSync(join(import.meta.dirname, "fixtures", "test-identity-cert.pem"), "utf8");
const KEY = readFileSync(join(import.meta.dirname, "fixtures", "test-identity-key.pem"), "utf8");
const ZONE_ID = "Z0123456789ABCDEFGHIJ";
const LAUNCHED = new Date("2026-11-23T10:00:00Z");

let handler: (event: unknown, context: Context) => Promise<Record<string, unknown>>;
const context = () => ({ awsRequestId: randomUUID() }) as unknown as Context;

const document = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    accountId: "123456789012",
    instanceId: "i-0123456789abcdef0",
    region: "us-east-1",
    privateIp: "10.0.1.23",
    pendingTime: "2026-11-23T10:00:00Z",
    ...extra,
  });
const request = (kind: string, text = document(), extra: Record<string, unknown> = {}) => ({
  kind,
  document: text,
  signature: sign("sha256", Buffer.from(text), KEY).toString("base64"),
  ...extra,
});

function instance(extra: { state?: string; ip?: string; tags?: Record<string, string> } = {}) {
  const tags = extra.tags ?? { "spawn:stack": "spawn", "spawn:sweep": "lr-abc" };
  ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          {
            InstanceId: "i-0123456789abcdef0",
            State: { Name: (extra.state ?? "running") as "running" },
            PrivateIpAddress: extra.ip ?? "10.0.1.23",
            LaunchTime: LAUNCHED,
            Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
          },
        ],
      },
    ],
  });
}

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), "spawn-dns-"));
  writeFileSync(join(dir, "certs.json"), JSON.stringify({ "us-east-1": CERT }));
  Object.assign(process.env, {
    AWS_REGION: "us-east-1",
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
    SPAWN_STACK_NAME: "spawn",
    SPAWN_HOME_REGION: "us-east-1",
    SPAWN_HOSTED_ZONE_ID: ZONE_ID,
    SPAWN_DNS_ZONE: "spawn.internal",
    SPAWN_IDENTITY_CERTS_FILE: join(dir, "certs.json"),
  });
  // Imported only now: the handler reads its environment once, at cold start, like in Lambda.
  handler = (await import("./handler.js")).handler as unknown as typeof handler;
});

beforeEach(() => {
  ec2.reset();
  route53.reset();
  route53
    .on(ChangeResourceRecordSetsCommand)
    .resolves({ ChangeInfo: { Id: "c1", Status: "PENDING", SubmittedAt: new Date() } });
  ec2.on(CreateTagsCommand).resolves({});
});

describe("dns-updater", () => {
  it("registers a verified instance: host and multi-value group records, TTL 60, and the tag to remove them by", async () => {
    instance();

    const result = await handler(request("register", document(), { name: "rank-0" }), context());

    expect(result).toEqual({
      status: "registered",
      host: "rank-0.lr-abc.spawn.internal",
      group: "lr-abc.spawn.internal",
      ip: "10.0.1.23",
    });
    expect(route53.commandCalls(ChangeResourceRecordSetsCommand)[0]!.args[0].input).toEqual({
      HostedZoneId: ZONE_ID,
      ChangeBatch: {
        Comment: "spawn: i-0123456789abcdef0 of lr-abc",
        Changes: [
          {
            Action: "UPSERT",
            ResourceRecordSet: {
              Name: "rank-0.lr-abc.spawn.internal",
              Type: "A",
              TTL: 60,
              ResourceRecords: [{ Value: "10.0.1.23" }],
            },
          },
          {
            Action: "UPSERT",
            ResourceRecordSet: {
              Name: "lr-abc.spawn.internal",
              Type: "A",
              TTL: 60,
              SetIdentifier: "i-0123456789abcdef0",
              MultiValueAnswer: true,
              ResourceRecords: [{ Value: "10.0.1.23" }],
            },
          },
        ],
      },
    });
    expect(ec2.commandCalls(CreateTagsCommand)[0]!.args[0].input).toEqual({
      Resources: ["i-0123456789abcdef0"],
      Tags: [{ Key: "spawn:dns", Value: "rank-0 10.0.1.23" }],
    });
  });

  it.each([
    [
      "a forged document (edited after signing)",
      () => ({ ...request("register"), document: document({ privateIp: "10.0.1.99" }) }),
      {},
      "bad-signature",
    ],
    ["an IP that does not match the instance", () => request("register"), { ip: "10.0.7.7" }, "ip-mismatch"],
    ["an instance that is not running", () => request("register"), { state: "stopped" }, "not-running"],
    [
      "an instance of another stack",
      () => request("register"),
      { tags: { "spawn:stack": "other", "spawn:sweep": "x" } },
      "not-ours",
    ],
    [
      "a document from before the last start",
      () => request("register", document({ pendingTime: "2026-11-22T10:00:00Z" })),
      {},
      "stale",
    ],
    [
      "a name that is not a DNS label",
      () => request("register", document(), { name: "../etc" }),
      {},
      "malformed",
    ],
  ] as const)("refuses %s and changes nothing", async (_what, make, observed, reason) => {
    instance(observed);

    const result = await handler(make(), context());

    expect(result).toMatchObject({ status: "rejected", reason });
    expect(route53.commandCalls(ChangeResourceRecordSetsCommand)).toHaveLength(0);
    expect(ec2.commandCalls(CreateTagsCommand)).toHaveLength(0);
  });

  it("removes a terminated instance's records, found through its tag, and leaves a host name another instance took", async () => {
    instance({
      state: "terminated",
      tags: { "spawn:stack": "spawn", "spawn:sweep": "lr-abc", "spawn:dns": "rank-0 10.0.1.23" },
    });
    const group = {
      Name: "lr-abc.spawn.internal.",
      Type: "A" as const,
      TTL: 60,
      SetIdentifier: "i-0123456789abcdef0",
      MultiValueAnswer: true,
      ResourceRecords: [{ Value: "10.0.1.23" }],
    };
    route53
      .on(ListResourceRecordSetsCommand, { StartRecordName: "rank-0.lr-abc.spawn.internal" })
      .resolves({
        ResourceRecordSets: [
          {
            Name: "rank-0.lr-abc.spawn.internal.",
            Type: "A",
            TTL: 60,
            ResourceRecords: [{ Value: "10.0.2.2" }],
          },
        ],
        IsTruncated: false,
        MaxItems: 1,
      })
      .on(ListResourceRecordSetsCommand, { StartRecordName: "lr-abc.spawn.internal" })
      .resolves({ ResourceRecordSets: [group], IsTruncated: false, MaxItems: 1 });

    const result = await handler(
      {
        version: "0",
        source: "aws.ec2",
        "detail-type": "EC2 Instance State-change Notification",
        detail: { "instance-id": "i-0123456789abcdef0", state: "terminated" },
      },
      context(),
    );

    expect(result).toEqual({ status: "removed", records: 1 });
    expect(
      route53.commandCalls(ChangeResourceRecordSetsCommand)[0]!.args[0].input.ChangeBatch?.Changes,
    ).toEqual([{ Action: "DELETE", ResourceRecordSet: group }]);
  });

  it("asks EC2 in the region a forwarded termination comes from", async () => {
    instance({ state: "terminated", tags: { "spawn:stack": "spawn", "spawn:sweep": "lr-abc" } });

    const result = await handler(
      {
        version: "0",
        source: "aws.ec2",
        region: "us-west-2",
        "detail-type": "EC2 Instance State-change Notification",
        detail: { "instance-id": "i-0123456789abcdef0", state: "terminated" },
      },
      context(),
    );

    expect(result).toMatchObject({ status: "ignored" });
    const [call] = ec2.commandCalls(DescribeInstancesCommand);
    expect(await (call!.thisValue as EC2Client).config.region()).toBe("us-west-2");
  });

  it("a signed deregister removes the records; an unknown invocation is dropped", async () => {
    instance({
      state: "shutting-down",
      tags: { "spawn:stack": "spawn", "spawn:sweep": "lr-abc", "spawn:dns": "i-0123456789abcdef0 10.0.1.23" },
    });
    route53
      .on(ListResourceRecordSetsCommand)
      .resolves({ ResourceRecordSets: [], IsTruncated: false, MaxItems: 1 });

    expect(await handler(request("deregister"), context())).toEqual({ status: "removed", records: 0 });
    expect(await handler({ kind: "register" }, context())).toMatchObject({ status: "dropped" });
  });
});
