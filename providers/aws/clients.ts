/**
 * SDK v3 clients for the CLI and the Lambdas: the standard credential chain (environment,
 * SSO, shared config and credentials files, container and instance roles), optionally a named
 * profile and an explicit region. Imports no SDK package itself, so each caller loads only the
 * clients it uses (the Lambda bundle and the CLI's start-up time depend on it).
 */
import { AbortError } from "#core/errors.js";

/** Which account and region to talk to: `--profile` / `--region`, else the SDK's own resolution. */
export interface AwsTarget {
  profile?: string;
  region?: string;
}

/** What every SDK v3 client constructor accepts of the target. */
export interface AwsClientConfig {
  profile?: string;
  region?: string;
  maxAttempts: number;
}

/**
 * The target from flags and the environment. `--profile` beats `AWS_PROFILE`, `--region` beats
 * `AWS_REGION` / `AWS_DEFAULT_REGION`; anything unset is left to the SDK (the profile's `region`).
 */
export function resolveTarget(
  flags: { profile?: string; region?: string },
  env: NodeJS.ProcessEnv = process.env,
): AwsTarget {
  const profile = flags.profile ?? env.AWS_PROFILE;
  const region = flags.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-\d+$/.test(region)) {
    throw new AbortError(
      `--region must be an AWS region such as us-east-1, got ${JSON.stringify(region)}`,
      "see `aws ec2 describe-regions --query 'Regions[].RegionName'`",
    );
  }
  return { ...(profile ? { profile } : {}), ...(region ? { region } : {}) };
}

/** Constructor config for any client; the SDK retries throttling and 5xx itself (standard mode). */
export function clientConfig(target: AwsTarget, region = target.region): AwsClientConfig {
  return {
    ...(target.profile ? { profile: target.profile } : {}),
    ...(region ? { region } : {}),
    maxAttempts: 3,
  };
}

/** Anything with a resolved-region provider: every SDK v3 client's `config`. */
interface HasRegion {
  config: { region: string | (() => Promise<string>) };
}

/**
 * The region a client actually uses (flag, environment or the profile's config file). The SDK
 * fails with "Region is missing" at the first request when there is none; this says what to do.
 */
export async function regionOf(client: HasRegion): Promise<string> {
  const { region } = client.config;
  try {
    const value = typeof region === "function" ? await region() : region;
    if (value) return value;
  } catch (error) {
    throw new AbortError("no AWS region is configured", "pass --region, or set AWS_REGION", undefined, {
      cause: error,
    });
  }
  throw new AbortError("no AWS region is configured", "pass --region, or set AWS_REGION");
}
