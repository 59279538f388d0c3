/**
 * Instance hostnames (docs/dns.md), when the stack is given a hosted zone: the dns-updater
 * Lambda, the agents' right to invoke it (and nothing else), and the EC2 state-change rules that
 * remove a terminated instance's records (home region on the default bus; launch regions'
 * events arrive forwarded on the stack's bus). The function may change records in that one zone,
 * under the zone's name, and tag instances of this stack with `spawn:dns` only (ADR 0032).
 */

import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { Duration, Stack, Validations } from "aws-cdk-lib";
import { type IEventBus, Rule } from "aws-cdk-lib/aws-events";
import { LambdaFunction as LambdaTarget } from "aws-cdk-lib/aws-events-targets";
import { type IRole, PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { Function as LambdaFunction } from "aws-cdk-lib/aws-lambda";
import { Construct } from "constructs";
import { DNS_TAG } from "#providers/aws/dns.js";
import type { SpawnConfig } from "./config.js";
import { spawnFunction } from "./lambda.js";
import { acknowledgeWildcards } from "./nag.js";
import type { SpawnNames } from "./names.js";

/** Where the function finds the certificates (its bundle directory is /var/task). */
export const CERTIFICATES_FILE = "identity-certificates.json";

/** Terminations: the records of an instance going away are removed. */
export const TERMINATION_PATTERN = {
  source: ["aws.ec2"],
  detailType: ["EC2 Instance State-change Notification"],
  detail: { state: ["shutting-down", "terminated"] },
};

/**
 * Reads the certificates file named by `spawn:identityCertificates`: a JSON object, region →
 * PEM, each a certificate valid at `now`. Throws naming the key and the problem, at synth.
 */
export function readIdentityCertificates(file: string, now = Date.now()): Record<string, string> {
  const where = `spawn:identityCertificates (${file})`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${where}: cannot read it as JSON: ${(error as Error).message}`);
  }
  if (!parsed || typeof parsed !== "object" || Array.isArray(parsed) || Object.keys(parsed).length === 0)
    throw new Error(
      `${where}: must be a JSON object of region → PEM certificate, e.g. {"us-east-1": "-----BEGIN CERTIFICATE-----\\n…"}`,
    );
  for (const [region, pem] of Object.entries(parsed)) {
    if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(region))
      throw new Error(`${where}: ${JSON.stringify(region)} is not an AWS region`);
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(String(pem));
    } catch (error) {
      throw new Error(
        `${where}: the certificate for ${region} is not a PEM certificate: ${(error as Error).message}`,
      );
    }
    // The function refuses every document checked against an expired certificate (AWS rotates
    // them): deploying one would make every registration fail, so synth refuses it instead.
    if (Date.parse(certificate.validTo) < now)
      throw new Error(
        `${where}: the certificate for ${region} expired ${certificate.validTo}; copy the current one from the EC2 user guide ("AWS public certificates for instance identity document signatures", RSA)`,
      );
  }
  return parsed as Record<string, string>;
}

export interface DnsUpdaterProps {
  names: SpawnNames;
  dns: NonNullable<SpawnConfig["dns"]>;
  bus: IEventBus;
  /** The agents' role: it may invoke the function. */
  agentRole: IRole;
}

export class DnsUpdater extends Construct {
  readonly function: LambdaFunction;

  constructor(scope: Construct, id: string, props: DnsUpdaterProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { names, dns } = props;
    readIdentityCertificates(dns.certificatesFile);
    const zoneArn = `arn:${stack.partition}:route53:::hostedzone/${dns.hostedZoneId}`;
    const instanceArns = `arn:${stack.partition}:ec2:*:${stack.account}:instance/*`;
    const { fn, role } = spawnFunction(this, {
      name: "dns-updater",
      description: `spawn ${names.stackName}: instance hostnames in ${dns.zoneName}`,
      memorySize: 256,
      // The agent waits 3 s; a slower answer still lands, and the agent's next call is idempotent.
      timeout: Duration.seconds(30),
      files: [{ path: dns.certificatesFile, as: CERTIFICATES_FILE }],
      environment: {
        SPAWN_STACK_NAME: names.stackName,
        SPAWN_HOME_REGION: names.homeRegion,
        SPAWN_HOSTED_ZONE_ID: dns.hostedZoneId,
        SPAWN_DNS_ZONE: dns.zoneName,
        SPAWN_IDENTITY_CERTS_FILE: `/var/task/${CERTIFICATES_FILE}`,
      },
      statements: () => [
        new PolicyStatement({
          sid: "ChangeRecordsUnderTheZone",
          actions: ["route53:ChangeResourceRecordSets"],
          resources: [zoneArn],
          conditions: {
            "ForAllValues:StringLike": {
              "route53:ChangeResourceRecordSetsNormalizedRecordNames": [`*.${dns.zoneName}`],
            },
            "ForAllValues:StringEquals": { "route53:ChangeResourceRecordSetsRecordTypes": ["A"] },
          },
        }),
        new PolicyStatement({
          sid: "ReadRecords",
          actions: ["route53:ListResourceRecordSets"],
          resources: [zoneArn],
        }),
        new PolicyStatement({
          sid: "CheckInstances",
          // DescribeInstances takes no resource ARN.
          actions: ["ec2:DescribeInstances"],
          resources: ["*"],
        }),
        new PolicyStatement({
          sid: "TagOwnInstancesWithTheirRecords",
          actions: ["ec2:CreateTags"],
          resources: [instanceArns],
          conditions: {
            StringEquals: { "aws:ResourceTag/spawn:stack": names.stackName },
            "ForAllValues:StringEquals": { "aws:TagKeys": [DNS_TAG] },
          },
        }),
      ],
    });
    this.function = fn;
    // This function only, unqualified (no `:*` versions or aliases: spawn publishes none).
    props.agentRole.addToPrincipalPolicy(
      new PolicyStatement({
        sid: "RegisterHostname",
        actions: ["lambda:InvokeFunction"],
        resources: [fn.functionArn],
      }),
    );
    Validations.of(role).acknowledge({
      id: "AwsSolutions-IAM5[Resource::*]",
      reason:
        "ec2:DescribeInstances takes no resource ARN; it only reads, and the function trusts no instance before its signed identity document verifies",
    });
    acknowledgeWildcards(
      role,
      [instanceArns],
      "instances of every launch region and of any id; CreateTags is limited to this stack's instances (aws:ResourceTag/spawn:stack) and to the spawn:dns key",
    );

    const target = () =>
      new LambdaTarget(fn, {
        // Removing records already gone is a no-op, so a retry is harmless.
        retryAttempts: 2,
        maxEventAge: Duration.hours(1),
      });
    new Rule(this, "Terminations", {
      description: "Remove the hostnames of spawn instances terminating in the home region",
      eventPattern: TERMINATION_PATTERN,
      targets: [target()],
    });
    new Rule(this, "ForwardedTerminations", {
      description:
        "Remove the hostnames of spawn instances terminating in launch regions (forwarded to the stack bus)",
      eventBus: props.bus,
      eventPattern: TERMINATION_PATTERN,
      targets: [target()],
    });
  }
}
