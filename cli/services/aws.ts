/**
 * The CLI's view of AWS: which account, region and stack a command talks to (`--profile`,
 * `--region`, `SPAWN_STACK_NAME`, the standard credential chain), and the CliContext of the aws
 * provider over the deployed stack. Loaded with a dynamic import by cli/context.ts, so local
 * commands never evaluate the AWS SDK.
 */
import { randomBytes } from "node:crypto";
import { CloudFormationClient } from "@aws-sdk/client-cloudformation";
import { EC2Client } from "@aws-sdk/client-ec2";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { IAMClient } from "@aws-sdk/client-iam";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { formatTraceparent, newTraceContext } from "#core/api.js";
import { AbortError } from "#core/errors.js";
import { systemClock } from "#core/ports.js";
import { type AwsTarget, clientConfig, regionOf, resolveTarget } from "#providers/aws/clients.js";
import { kickSweep } from "#providers/aws/events.js";
import { DEFAULT_STACK_NAME, loadStack, type StackInfo } from "#providers/aws/stack.js";
import { openStackStores } from "#providers/aws/stack-stores.js";
import { sweepRoleHooks } from "#providers/aws/sweep-role.js";
import type { LocalPaths } from "#providers/local/paths.js";
import type { CliContext } from "../context.js";

/** `--profile`, `--region` and `--stack` as commands take them. */
export interface AwsFlags {
  profile?: string;
  region?: string;
  stack?: string;
}

/** Where a command talks to: the target (profile, region) resolved, and the stack's name. */
export interface AwsSession {
  target: AwsTarget & { region: string };
  stackName: string;
  cfn: CloudFormationClient;
}

/** Resolves the region now (flag, environment or the profile's config), so every client agrees on it. */
export async function openAwsSession(
  flags: AwsFlags,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AwsSession> {
  const target = resolveTarget(flags, env);
  const cfn = new CloudFormationClient(clientConfig(target));
  const region = await regionOf(cfn);
  return {
    target: { ...target, region },
    stackName: flags.stack ?? env.SPAWN_STACK_NAME ?? DEFAULT_STACK_NAME,
    cfn,
  };
}

/** The stack's outputs through the state directory's cache (StackNotFoundError, exit 2, when it is not deployed). */
export async function sessionStack(session: AwsSession, paths: LocalPaths): Promise<StackInfo> {
  try {
    return await loadStack({
      cfn: session.cfn,
      stackName: session.stackName,
      region: session.target.region,
      stateDir: paths.home,
      now: systemClock.now(),
    });
  } catch (error) {
    throw credentialsProblem(error, session.target) ?? error;
  }
}

/** Errors that mean "no usable credentials", as the user's to fix (exit 2) with the command that fixes them. */
const CREDENTIAL_ERRORS = new Set([
  "CredentialsProviderError",
  "ExpiredToken",
  "ExpiredTokenException",
  "InvalidClientTokenId",
  "UnrecognizedClientException",
]);

export function credentialsProblem(error: unknown, target: AwsTarget): AbortError | undefined {
  const name = (error as { name?: string } | null)?.name ?? "";
  if (!CREDENTIAL_ERRORS.has(name)) return undefined;
  const profile = target.profile ? ` --profile ${target.profile}` : "";
  return new AbortError(
    `no usable AWS credentials${target.profile ? ` for profile ${target.profile}` : ""}: ${(error as Error).message}`,
    `run \`aws configure${profile}\` or \`aws sso login${profile}\`, then \`spawn doctor${profile}\``,
    undefined,
    { cause: error },
  );
}

/**
 * The aws provider's CliContext: the same DynamoStateStore on the stack's tables, S3 objects in
 * its buckets (bundles in the artifacts bucket, logs and outputs in the results bucket), a
 * `prepareSweep` step that creates the sweep's own IAM role before its record (sweep-role.ts),
 * and a `sweepCreated` hook that kicks the orchestrator through the stack's bus.
 */
export async function openAwsContext(paths: LocalPaths, flags: AwsFlags = {}): Promise<CliContext> {
  return openAwsContextFor(await openAwsSession(flags), paths);
}

/** The same, for a session a command already opened (it needs the session's clients too). */
export async function openAwsContextFor(session: AwsSession, paths: LocalPaths): Promise<CliContext> {
  const stack = await sessionStack(session, paths);
  const config = clientConfig(session.target);
  const { clients: _clients, destroy: destroyStores, ...stores } = openStackStores(config, stack.outputs);
  const events = new EventBridgeClient(config);
  const iam = new IAMClient(config);
  const sts = new STSClient(config);
  const { outputs } = stack;
  return {
    provider: "aws",
    ...stores,
    clock: systemClock,
    paths,
    // The sweep's own role before its record (sweep-role.ts), in the caller's own account and
    // partition: the role and the ARNs its policy names live there.
    ...sweepRoleHooks(iam, async () => {
      const identity = await sts.send(new GetCallerIdentityCommand({}));
      return {
        stack: session.stackName,
        account: identity.Account ?? "",
        partition: identity.Arn?.split(":")[1] ?? "aws",
        homeRegion: stack.region,
        tablePrefix: outputs.TablePrefix,
        artifactsBucket: outputs.ArtifactsBucket,
        resultsBucket: outputs.ResultsBucket,
        eventBusName: outputs.EventBusName,
        ...(outputs.DnsUpdaterArn ? { dnsUpdaterArn: outputs.DnsUpdaterArn } : {}),
      };
    }),
    // The kick only saves waiting for the next periodic tick (a minute at most), so a failed one
    // is reported and the launch still succeeds.
    sweepCreated: (sweepId, traceparent) =>
      kickSweep(
        events,
        outputs.EventBusName,
        sweepId,
        traceparent ?? formatTraceparent(newTraceContext((n) => new Uint8Array(randomBytes(n)))),
      ).catch((error: Error) => {
        process.stderr.write(
          `warning: could not notify the orchestrator (${error.message}); the periodic reconcile starts ${sweepId} within a minute\n`,
        );
      }),
    close: () => {
      destroyStores();
      for (const client of [session.cfn, events, iam, sts]) client.destroy();
    },
  };
}

/** EC2 clients per region for one session, created on first use. */
export function ec2Clients(session: AwsSession): { ec2For: (region: string) => EC2Client; destroy(): void } {
  const clients = new Map<string, EC2Client>();
  return {
    ec2For: (region) => {
      const client = clients.get(region) ?? new EC2Client(clientConfig(session.target, region));
      clients.set(region, client);
      return client;
    },
    destroy: () => {
      for (const client of clients.values()) client.destroy();
    },
  };
}
