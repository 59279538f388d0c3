/**
 * Instance hostnames in the stack (docs/dns.md): present only with a hosted zone configured, and
 * then least privilege throughout; cdk-nag stays clean; bad context fails synth naming the key.
 * Also what every deployed function is built from (ADR 0031).
 */
import { X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { DNS_TAG } from "#providers/aws/dns.js";
import { readConfig } from "./lib/config.js";
import { CERTIFICATES_FILE, readIdentityCertificates } from "./lib/dns.js";
import { HOME, type Synthesized, synthesize } from "./test/fixtures.js";

type Resource = { Type: string; Properties: Record<string, unknown> };
type Statement = {
  Sid?: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

const CERT = join(import.meta.dirname, "..", "lambdas", "dns-updater", "fixtures", "test-identity-cert.pem");
const ZONE_ID = "Z0123456789ABCDEFGHIJ";

let certsFile: string;
let s: Synthesized;
let plain: Synthesized;

function certificates(content: string): string {
  const dir = mkdtempSync(join(tmpdir(), "spawn-certs-"));
  writeFileSync(join(dir, "certs.json"), content);
  return join(dir, "certs.json");
}

const dnsContext = (file: string) => ({
  "spawn:hostedZoneId": ZONE_ID,
  "spawn:dnsZone": "Spawn.Example.com.",
  "spawn:identityCertificates": file,
});

beforeAll(() => {
  certsFile = certificates(JSON.stringify({ [HOME]: readFileSync(CERT, "utf8") }));
  s = synthesize(dnsContext(certsFile), {
    plugins: (app) => Validations.of(app).addPlugins(new AwsSolutionsChecks(app)),
  });
  plain = synthesize();
});

const resources = (x: Synthesized, type: string) =>
  Object.entries(x.homeTemplate.findResources(type) as Record<string, Resource>);
const fnOf = (x: Synthesized, prefix: string) => {
  const found = resources(x, "AWS::Lambda::Function").filter(([id]) => id.startsWith(prefix));
  expect(found).toHaveLength(1);
  return found[0]!;
};
const statementsOf = (x: Synthesized, rolePrefix: string): Statement[] => {
  const [, role] = resources(x, "AWS::IAM::Role").find(([id]) => id.startsWith(rolePrefix))!;
  return ((role.Properties.Policies ?? []) as { PolicyDocument: { Statement: Statement[] } }[]).flatMap(
    (p) => p.PolicyDocument.Statement,
  );
};
const ref = (id: string) => ({ "Fn::GetAtt": [id, "Arn"] });

describe("without a hosted zone", () => {
  it("deploys no dns-updater, no rule for it, and leaves the orchestrator untold", () => {
    expect(resources(plain, "AWS::Lambda::Function").filter(([id]) => id.startsWith("Dns"))).toEqual([]);
    const [, orchestrator] = fnOf(plain, "Orchestrator");
    expect(
      Object.keys((orchestrator.Properties.Environment as { Variables: object }).Variables),
    ).not.toContain("SPAWN_DNS_UPDATER");
  });
});

describe("with a hosted zone", () => {
  it("runs dns-updater on nodejs22.x arm64 with exactly the environment it reads, the certificates beside it", () => {
    const [, fn] = fnOf(s, "Dns");
    expect(fn.Properties).toMatchObject({
      Runtime: "nodejs22.x",
      Architectures: ["arm64"],
      Handler: "index.handler",
    });
    expect((fn.Properties.Environment as { Variables: unknown }).Variables).toEqual({
      SPAWN_STACK_NAME: "spawn",
      SPAWN_HOME_REGION: HOME,
      SPAWN_HOSTED_ZONE_ID: ZONE_ID,
      SPAWN_DNS_ZONE: "spawn.example.com",
      SPAWN_IDENTITY_CERTS_FILE: `/var/task/${CERTIFICATES_FILE}`,
      NODE_OPTIONS: "--enable-source-maps",
    });
  });

  it("may change A records under the zone's name in that zone only, and tag its own instances with spawn:dns only", () => {
    const byId = Object.fromEntries(statementsOf(s, "Dns").map((st) => [st.Sid, st]));
    const zoneArn = {
      "Fn::Join": ["", ["arn:", { Ref: "AWS::Partition" }, `:route53:::hostedzone/${ZONE_ID}`]],
    };
    expect(byId.ChangeRecordsUnderTheZone).toMatchObject({
      Action: "route53:ChangeResourceRecordSets",
      Resource: zoneArn,
      Condition: {
        "ForAllValues:StringLike": {
          "route53:ChangeResourceRecordSetsNormalizedRecordNames": ["*.spawn.example.com"],
        },
        "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsRecordTypes": ["A"] },
      },
    });
    expect(byId.ReadRecords).toMatchObject({ Action: "route53:ListResourceRecordSets", Resource: zoneArn });
    expect(byId.CheckInstances).toMatchObject({ Action: "ec2:DescribeInstances", Resource: "*" });
    expect(byId.TagOwnInstancesWithTheirRecords).toMatchObject({
      Action: "ec2:CreateTags",
      Condition: {
        StringEquals: { "aws:ResourceTag/spawn:stack": "spawn" },
        "ForAllValues:StringEquals": { "aws:TagKeys": [DNS_TAG] },
      },
    });
    expect(Object.keys(byId).sort()).toEqual(
      [
        "ChangeRecordsUnderTheZone",
        "CheckInstances",
        "Logs",
        "ReadRecords",
        "TagOwnInstancesWithTheirRecords",
      ].sort(),
    );
  });

  it("lets the agents invoke it, and no other function", () => {
    const [fnId] = fnOf(s, "Dns");
    const policies = resources(s, "AWS::IAM::Policy").filter(([, p]) =>
      JSON.stringify(p.Properties.Roles).includes("AgentRole"),
    );
    const invokes = policies
      .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement)
      .filter((st) => JSON.stringify(st.Action).includes("lambda:"));
    expect(invokes).toEqual([
      { Sid: "RegisterHostname", Effect: "Allow", Action: "lambda:InvokeFunction", Resource: ref(fnId) },
    ]);
  });

  it("removes records on terminations in the home region and, forwarded, in launch regions", () => {
    const [fnId] = fnOf(s, "Dns");
    const rules = resources(s, "AWS::Events::Rule").filter(([, r]) =>
      JSON.stringify(r.Properties.Targets).includes(fnId),
    );
    expect(rules.map(([, r]) => r.Properties.EventBusName === undefined).sort()).toEqual([false, true]);
    for (const [, rule] of rules)
      expect(rule.Properties.EventPattern).toEqual({
        source: ["aws.ec2"],
        "detail-type": ["EC2 Instance State-change Notification"],
        detail: { state: ["shutting-down", "terminated"] },
      });
  });

  it("tells the orchestrator the function and zone, to tag instances with", () => {
    const [fnId] = fnOf(s, "Dns");
    const [, orchestrator] = fnOf(s, "Orchestrator");
    expect((orchestrator.Properties.Environment as { Variables: object }).Variables).toMatchObject({
      SPAWN_DNS_UPDATER: { Ref: fnId },
      SPAWN_DNS_ZONE: "spawn.example.com",
    });
  });

  it("outputs the function's ARN, for the per-sweep roles the CLI makes (ADR 36); none without a zone", () => {
    const [fnId] = fnOf(s, "Dns");
    expect(s.homeTemplate.findOutputs("DnsUpdaterArn")).toEqual({ DnsUpdaterArn: { Value: ref(fnId) } });
    expect(plain.homeTemplate.findOutputs("DnsUpdaterArn")).toEqual({});
  });

  it("tells the scheduler-handler its ARN, for the roles of scheduled sweeps (ADR 40); nothing without a zone", () => {
    const [fnId] = fnOf(s, "Dns");
    const vars = (x: Synthesized) =>
      (fnOf(x, "Scheduler")[1].Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(vars(s).SPAWN_DNS_UPDATER_ARN).toEqual(ref(fnId));
    expect(vars(plain)).not.toHaveProperty("SPAWN_DNS_UPDATER_ARN");
  });

  it("passes the AWS Solutions checks with nothing left unacknowledged", () => {
    const report = new AwsSolutionsChecks().validateScope(s.app);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });
});

describe("bad DNS context", () => {
  const read = (context: Record<string, unknown>) => () => readConfig((key) => context[key], {});

  it("needs the three keys together, and names the missing ones", () => {
    expect(read({ "spawn:hostedZoneId": ZONE_ID })).toThrow(
      /missing spawn:dnsZone, spawn:identityCertificates/,
    );
  });

  it("names the key of a malformed value", () => {
    expect(read({ ...dnsContext("c.json"), "spawn:hostedZoneId": "zone-1" })).toThrow(
      /spawn:hostedZoneId: must be a Route 53 hosted zone id/,
    );
    expect(read({ ...dnsContext("c.json"), "spawn:dnsZone": "not a domain" })).toThrow(
      /spawn:dnsZone: must be a domain name/,
    );
  });

  it("fails synth on a certificates file that is not region → PEM", () => {
    const app = (file: string) => () => synthesize(dnsContext(file));
    expect(app(join(tmpdir(), "no-such-certs.json"))).toThrow(
      /spawn:identityCertificates .*cannot read it as JSON/,
    );
    expect(app(certificates('{"us-east-1": "hello"}'))).toThrow(
      /the certificate for us-east-1 is not a PEM certificate/,
    );
    expect(app(certificates("[]"))).toThrow(/must be a JSON object of region → PEM/);
  });

  it("fails synth on an expired certificate, naming its region and end date", () => {
    const validTo = Date.parse(new X509Certificate(readFileSync(CERT, "utf8")).validTo);
    expect(readIdentityCertificates(certsFile, validTo - 1)).toHaveProperty(HOME);
    expect(() => readIdentityCertificates(certsFile, validTo + 1)).toThrow(
      new RegExp(`the certificate for ${HOME} expired .*2126.*copy the current one from the EC2 user guide`),
    );
  });
});

describe("deployed code (ADR 0031)", () => {
  it("every function's asset is the scripts/lambdas.mjs bundle: index.mjs with its map, the files it reads beside it", () => {
    const dir = s.app.synth().directory;
    const assets = readdirSync(dir).filter(
      (f) => f.startsWith("asset.") && statSync(join(dir, f)).isDirectory(),
    );
    const bundles = assets.filter((a) => existsSync(join(dir, a, "index.mjs")));
    expect(bundles.length).toBeGreaterThanOrEqual(4);
    for (const a of bundles) expect(existsSync(join(dir, a, "index.mjs.map"))).toBe(true);
    expect(bundles.some((a) => existsSync(join(dir, a, "aws-accelerator-vms.csv")))).toBe(true);
    expect(bundles.some((a) => existsSync(join(dir, a, CERTIFICATES_FILE)))).toBe(true);
  });
});
