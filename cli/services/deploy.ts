/**
 * `spawn deploy`: runs `npx cdk deploy` on the CDK app that ships in this package (cdk.json at
 * the package root), with the stack name and region as CDK context, after checking that the
 * account and region are bootstrapped for CDK; then uploads the agent (and the executor, when
 * built) to the artifacts bucket, where the instances' bootstrap fetches them.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { AbortError } from "#core/errors.js";
import type { ObjectStore } from "#core/ports.js";
import { artifactKeys, type InstanceArch } from "#providers/aws/launch-config.js";

export interface DeployOptions {
  /** Directory holding cdk.json (the installed spawn package). */
  packageRoot: string;
  stackName: string;
  region: string;
  profile?: string;
  /** More regions to launch in (`spawn:launchRegions`); each gets a small stack of its own. */
  launchRegions?: readonly string[];
}

/** The exact command `spawn deploy` runs, and how to print it. */
export interface CommandPlan {
  cwd: string;
  command: string;
  args: string[];
  env: Record<string, string>;
  /** A copy-pasteable shell line. */
  display: string;
}

const quote = (s: string) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s) ? s : `'${s.replace(/'/g, "'\\''")}'`);

function plan(cwd: string, env: Record<string, string>, command: string, args: string[]): CommandPlan {
  const vars = Object.entries(env).map(([k, v]) => `${k}=${quote(v)}`);
  return {
    cwd,
    command,
    args,
    env,
    display: [`cd ${quote(cwd)} &&`, ...vars, command, ...args.map(quote)].join(" "),
  };
}

/** `cdk deploy --all` with the stack's context; the region goes in AWS_REGION, which the cdk CLI reads. */
export function deployPlan(o: DeployOptions): CommandPlan {
  return plan(o.packageRoot, { AWS_REGION: o.region }, "npx", [
    "cdk",
    "deploy",
    "--all",
    "-c",
    `spawn:stackName=${o.stackName}`,
    "-c",
    `spawn:region=${o.region}`,
    ...(o.launchRegions?.length ? ["-c", `spawn:launchRegions=${o.launchRegions.join(",")}`] : []),
    ...(o.profile ? ["--profile", o.profile] : []),
  ]);
}

/** `cdk bootstrap` for one region (what to run when the CDKToolkit stack is missing). */
export function bootstrapPlan(o: Pick<DeployOptions, "packageRoot" | "region" | "profile">): CommandPlan {
  return plan(o.packageRoot, { AWS_REGION: o.region }, "npx", [
    "cdk",
    "bootstrap",
    ...(o.profile ? ["--profile", o.profile] : []),
  ]);
}

/** The directory with cdk.json, walking up from this module (source tree or dist/). */
export function findPackageRoot(from: string = dirname(fileURLToPath(import.meta.url))): string {
  for (let dir = resolve(from); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "cdk.json"))) return dir;
    if (dirname(dir) === dir) {
      throw new AbortError(
        "this spawn installation has no CDK app (cdk.json not found)",
        "deploy from a clone of the spawn repository: npm ci && npx spawn deploy",
      );
    }
  }
}

/** Throws an AbortError with the exact `cdk bootstrap` command when the region is not bootstrapped. */
export async function requireBootstrap(
  cfn: CloudFormationClient,
  o: Pick<DeployOptions, "packageRoot" | "region" | "profile">,
): Promise<void> {
  const advice = `bootstrap it once: ${bootstrapPlan(o).display}`;
  try {
    const stack = (await cfn.send(new DescribeStacksCommand({ StackName: "CDKToolkit" }))).Stacks?.[0];
    if (stack?.StackStatus && !stack.StackStatus.endsWith("_COMPLETE")) {
      throw new AbortError(`the CDK bootstrap stack in ${o.region} is ${stack.StackStatus}`, advice);
    }
    if (stack && stack.StackStatus !== "DELETE_COMPLETE") return;
  } catch (error) {
    const e = error as { name?: string; message?: string };
    if (!(e.name === "ValidationError" && /does not exist/.test(e.message ?? ""))) throw error;
  }
  throw new AbortError(`${o.region} is not bootstrapped for the AWS CDK (no CDKToolkit stack)`, advice);
}

/** `uname -m` of this machine, as the artifact keys name architectures. */
export function hostArch(arch: string = process.arch): InstanceArch | undefined {
  return arch === "x64" ? "x86_64" : arch === "arm64" ? "aarch64" : undefined;
}

/**
 * Uploads the bundled agent (dist/agent.js) and, when it was built here, the executor binary
 * for this machine's architecture. Returns the keys written. The agent is required: without it
 * instances cannot start.
 */
export async function uploadAgentArtifacts(
  artifacts: ObjectStore,
  packageRoot: string,
  version: string,
): Promise<string[]> {
  const agent = join(packageRoot, "dist", "agent.js");
  if (!existsSync(agent)) {
    throw new AbortError(`the bundled agent ${agent} is missing`, "run `npm run build` first");
  }
  const uploads: Array<[string, string]> = [[artifactKeys.agent(version), agent]];
  const executor = join(packageRoot, "agent", "executor", "build", "spawn-executor");
  const arch = hostArch();
  if (arch && existsSync(executor)) uploads.push([artifactKeys.executor(version, arch), executor]);
  for (const [key, file] of uploads) await artifacts.putFile(key, file);
  return uploads.map(([key]) => key);
}
