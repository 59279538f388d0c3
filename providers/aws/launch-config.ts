/**
 * What the deployed stack publishes for the code that launches instances: the per-region launch
 * configuration (an SSM String parameter, one per region the stack's regional part is deployed
 * in, all under the same name), and where the instances' bootstrap finds the agent in the
 * artifacts bucket. The CDK app writes these shapes and the orchestrator reads them; this file is
 * the one description both use. See docs/aws.md.
 */
import { z } from "zod";

/** SSM parameter, in every launch region, that holds that region's `LaunchConfig` as JSON. */
export function launchConfigParameterName(stackName: string): string {
  return `/spawn/${stackName}/launch-config`;
}

/**
 * SSM parameter the EC2 Image Builder distribution updates with the newest spawn GPU AMI, in
 * every region it distributes to. Launch templates use it when the stack is deployed with
 * `-c spawn:ami=spawn`.
 */
export function spawnAmiParameterName(stackName: string): string {
  return `/spawn/${stackName}/ami`;
}

/** Public SSM parameter of the newest Deep Learning Base OSS Nvidia Driver GPU AMI (Amazon Linux 2023, x86_64). */
export const DLAMI_PARAMETER =
  "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-amazon-linux-2023/latest/ami-id";

const LaunchSubnet = z.strictObject({
  subnetId: z.string().regex(/^subnet-[0-9a-f]+$/, "must be a subnet id (subnet-…)"),
  /** The subnet's availability zone, e.g. `us-east-1a`: CreateFleet overrides pair types with these. */
  az: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+[a-z]$/, "must be an availability zone such as us-east-1a"),
});

/** One region's launch configuration, as the stack writes it into `launchConfigParameterName(stack)`. */
export const LaunchConfig = z.strictObject({
  launchTemplateId: z.string().regex(/^lt-[0-9a-f]+$/, "must be a launch template id (lt-…)"),
  /** A version number (the one this deployment created), never `$Latest`, so a launch is reproducible. */
  launchTemplateVersion: z.string().regex(/^\d+$/, "must be a launch template version number"),
  /**
   * The same launch template with one Elastic Fabric Adapter as its primary network interface
   * (security group on the interface, subnet from the fleet's override), for gangs with
   * `resources.efa` (docs/adr/0028-gangs-on-ec2.md). Absent in configurations written before it.
   */
  efaLaunchTemplateId: z
    .string()
    .regex(/^lt-[0-9a-f]+$/, "must be a launch template id (lt-…)")
    .optional(),
  efaLaunchTemplateVersion: z.string().regex(/^\d+$/, "must be a launch template version number").optional(),
  /** Public subnets, one per availability zone the stack covers in this region. */
  subnets: z.array(LaunchSubnet).min(1),
  securityGroupId: z.string().regex(/^sg-[0-9a-f]+$/, "must be a security group id (sg-…)"),
  /**
   * The SSM parameter the launch template resolves its AMI from at launch (`resolve:ssm:`): the
   * public DLAMI parameter, or the spawn AMI's. Informational: EC2 resolves it, not the caller.
   */
  amiSsmParameter: z.string().startsWith("/").optional(),
});
export type LaunchConfig = z.infer<typeof LaunchConfig>;

/**
 * Parses the parameter's value. `where` names the parameter and region in the error, which says
 * what to do: the usual cause is a region the stack's regional part was never deployed to.
 */
export function parseLaunchConfig(text: string, where: string): LaunchConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(
      `launch configuration ${where} is not JSON (${(error as Error).message}); redeploy the stack`,
    );
  }
  const parsed = LaunchConfig.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new Error(
      `launch configuration ${where} is invalid (${problems.join("; ")}); it was written by another spawn version, redeploy the stack`,
    );
  }
  return parsed.data;
}

/** Architectures the instances' bootstrap fetches binaries for, named as `uname -m` prints them. */
export type InstanceArch = "x86_64" | "aarch64";

/**
 * Keys in the artifacts bucket that the instance bootstrap (cdk/user-data/spawn-boot.sh) and the
 * AMI build read, per spawn version. `spawn deploy` uploads them; a missing executor is skipped.
 */
export const artifactKeys = {
  /** The agent bundle, `dist/agent.js` (one ES module with its dependencies). */
  agent: (version: string) => `agent/${version}/agent.js`,
  /** A prebuilt `spawn-executor` for one architecture. */
  executor: (version: string, arch: InstanceArch) => `agent/${version}/spawn-executor-${arch}`,
  /** `agent/executor` sources, built with `make` on the AMI when no prebuilt binary exists. */
  executorSource: (version: string) => `agent/${version}/executor-src.tar.gz`,
} as const;
