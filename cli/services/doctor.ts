/**
 * `spawn doctor`: is this machine ready to run sweeps on AWS? Credentials (STS), region, the
 * deployed stack and its version, and the EC2 vCPU quotas of the GPU instance families. Each
 * check says ok, warn or fail, with advice; the clients come in as parameters.
 */
import type { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { GetServiceQuotaCommand, type ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { GetCallerIdentityCommand, type STSClient } from "@aws-sdk/client-sts";
import { AbortError } from "#core/errors.js";
import { compatibleVersions, describeStack, SPAWN_VERSION } from "#providers/aws/stack.js";

export type CheckStatus = "ok" | "warn" | "fail";

export interface Check {
  name: string;
  status: CheckStatus;
  detail: string;
  advice?: string;
}

/**
 * EC2 vCPU quotas of the GPU families spawn launches. Codes from the Service Quotas console's
 * EC2 list (names as in the EC2 user guide, "Spot Instance quotas"); cross-checked against
 * several public tools that query them. "All P Spot Instance Requests" covers P2–P4; P5 has a
 * quota of its own that this table does not include yet.
 */
export const GPU_QUOTAS = [
  {
    family: "G and VT",
    matches: /^(g\d|vt\d)/,
    spot: { code: "L-3819A6DF", name: "All G and VT Spot Instance Requests" },
    onDemand: { code: "L-DB2E81BA", name: "Running On-Demand G and VT instances" },
  },
  {
    family: "P",
    matches: /^p\d/,
    spot: { code: "L-7212CCBC", name: "All P Spot Instance Requests" },
    onDemand: { code: "L-417A185B", name: "Running On-Demand P instances" },
  },
] as const;

export interface DoctorClients {
  sts: STSClient;
  cfn: CloudFormationClient;
  quotas: ServiceQuotasClient;
}

export interface DoctorOptions {
  region: string;
  stackName: string;
  profile?: string;
  /** Instance types (or globs) the user means to run; their families' quotas must be above 0. */
  instanceTypes?: readonly string[];
}

const errorText = (error: unknown) =>
  error instanceof Error ? `${error.name}: ${error.message}` : String(error);

/** Runs every check; a failed credentials check skips the rest (they would all fail the same way). */
export async function runDoctor(clients: DoctorClients, options: DoctorOptions): Promise<Check[]> {
  const checks: Check[] = [];
  const profileFlag = options.profile ? ` --profile ${options.profile}` : "";
  try {
    const me = await clients.sts.send(new GetCallerIdentityCommand({}));
    checks.push({ name: "credentials", status: "ok", detail: `account ${me.Account} as ${me.Arn}` });
  } catch (error) {
    checks.push({
      name: "credentials",
      status: "fail",
      detail: errorText(error),
      advice: `configure credentials: \`aws configure${profileFlag}\` or \`aws sso login${profileFlag}\``,
    });
    return checks;
  }
  checks.push({ name: "region", status: "ok", detail: options.region });

  try {
    const stack = await describeStack(clients.cfn, options.stackName, options.region);
    const version = stack.outputs.SpawnVersion;
    checks.push(
      compatibleVersions(version, SPAWN_VERSION)
        ? { name: "stack", status: "ok", detail: `${options.stackName} ${stack.status}, spawn ${version}` }
        : {
            name: "stack",
            status: "warn",
            detail: `${options.stackName} was deployed by spawn ${version}; this CLI is ${SPAWN_VERSION}`,
            advice: `run \`spawn deploy --region ${options.region}${profileFlag}\` to update it`,
          },
    );
  } catch (error) {
    checks.push({
      name: "stack",
      status: "fail",
      detail: error instanceof Error ? error.message : String(error),
      advice: error instanceof AbortError && error.hint ? error.hint : "see the CloudFormation console",
    });
  }

  const wanted = options.instanceTypes;
  for (const family of GPU_QUOTAS) {
    const requested = wanted?.some((t) => family.matches.test(t)) ?? false;
    // Families the user did not ask for are reported, but a zero there is only a warning.
    if (wanted && !requested) continue;
    for (const [market, quota] of [
      ["spot", family.spot],
      ["on-demand", family.onDemand],
    ] as const) {
      const name = `quota ${family.family} ${market}`;
      try {
        const out = await clients.quotas.send(
          new GetServiceQuotaCommand({ ServiceCode: "ec2", QuotaCode: quota.code }),
        );
        const vcpus = out.Quota?.Value ?? 0;
        const increase = `request an increase: \`aws service-quotas request-service-quota-increase --service-code ec2 --quota-code ${quota.code} --desired-value <vCPUs> --region ${options.region}${profileFlag}\``;
        checks.push(
          vcpus > 0
            ? { name, status: "ok", detail: `${quota.name}: ${vcpus} vCPUs` }
            : {
                name,
                status: requested ? "fail" : "warn",
                detail: `${quota.name} (${quota.code}) is 0 vCPUs: ${market} ${family.family} instances cannot launch in ${options.region}`,
                advice: increase,
              },
        );
      } catch (error) {
        checks.push({
          name,
          status: "warn",
          detail: `could not read ${quota.name} (${quota.code}): ${errorText(error)}`,
          advice: "allow servicequotas:GetServiceQuota, or check the quota in the Service Quotas console",
        });
      }
    }
  }
  return checks;
}

/** 0 when nothing failed, else 1. */
export function doctorExitCode(checks: readonly Check[]): number {
  return checks.some((c) => c.status === "fail") ? 1 : 0;
}
