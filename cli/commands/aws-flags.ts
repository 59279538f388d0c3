/** The flags every aws command takes: `--profile`, `--region`, `--stack` (standard credential chain otherwise). */
import type { Command } from "commander";
import type { AwsFlags } from "../services/aws.js";

export function withAwsFlags(command: Command): Command {
  return command
    .option("--profile <name>", "AWS profile (default: AWS_PROFILE, then the default chain)")
    .option("--region <region>", "AWS region (default: AWS_REGION, then the profile's region)")
    .option("--stack <name>", "spawn stack name (default: SPAWN_STACK_NAME, then spawn)");
}

/** The AwsFlags part of a command's parsed options. */
export function awsFlags(opts: { profile?: string; region?: string; stack?: string }): AwsFlags {
  return {
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.region ? { region: opts.region } : {}),
    ...(opts.stack ? { stack: opts.stack } : {}),
  };
}
