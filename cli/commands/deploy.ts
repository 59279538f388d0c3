/** `spawn deploy`: stand up (or update) the control plane in your AWS account with the AWS CDK. */
import type { Command } from "commander";
import { AbortError, ExitCode } from "#core/errors.js";
import { localPaths } from "#providers/local/paths.js";
import { paint, printJson } from "../output.js";
import { runInherited } from "../services/shell.js";
import { awsFlags, withAwsFlags } from "./aws-flags.js";

export function registerDeploy(program: Command): void {
  withAwsFlags(
    program
      .command("deploy")
      .description(
        "deploy or update the spawn stack (npx cdk deploy) and upload the agent it starts on instances",
      )
      .option("--launch-regions <regions>", "more regions to launch instances in, comma-separated")
      .option("--dry-run", "print the exact command and change nothing")
      .option("--json", "machine-readable output"),
  ).action(async (opts) => {
    // Loaded on use, so other commands never evaluate the AWS SDK.
    const [{ S3Client }, { clientConfig }, { S3ObjectStore }, stackModule, { openAwsSession }, deploy] =
      await Promise.all([
        import("@aws-sdk/client-s3"),
        import("#providers/aws/clients.js"),
        import("#providers/aws/s3-objects.js"),
        import("#providers/aws/stack.js"),
        import("../services/aws.js"),
        import("../services/deploy.js"),
      ]);
    const { describeStack, forgetStack, SPAWN_VERSION } = stackModule;
    const { deployPlan, findPackageRoot, requireBootstrap, uploadAgentArtifacts } = deploy;
    const session = await openAwsSession(awsFlags(opts));
    const region = session.target.region;
    const packageRoot = findPackageRoot();
    const plan = deployPlan({
      packageRoot,
      stackName: session.stackName,
      region,
      ...(session.target.profile ? { profile: session.target.profile } : {}),
      ...(opts.launchRegions ? { launchRegions: String(opts.launchRegions).split(",").filter(Boolean) } : {}),
    });
    try {
      if (opts.dryRun) {
        if (opts.json) printJson({ dryRun: true, command: plan.display });
        else process.stdout.write(`${paint("bold", "dry run")}: would run\n  ${plan.display}\n`);
        return;
      }
      await requireBootstrap(session.cfn, { packageRoot, ...session.target });
      process.stderr.write(`${paint("dim", `running: ${plan.display}`)}\n`);
      const code = await runInherited(plan.command, plan.args, { cwd: plan.cwd, env: plan.env });
      if (code !== 0) {
        throw new AbortError(`cdk deploy failed (exit ${code})`, "see its output above", ExitCode.workFailed);
      }
      const paths = localPaths();
      await forgetStack(paths.home, region, session.stackName);
      const stack = await describeStack(session.cfn, session.stackName, region);
      const s3 = new S3Client(clientConfig(session.target));
      try {
        const keys = await uploadAgentArtifacts(
          new S3ObjectStore(s3, { bucket: stack.outputs.ArtifactsBucket }),
          packageRoot,
          SPAWN_VERSION,
        );
        if (opts.json)
          printJson({ stack: session.stackName, region, outputs: stack.outputs, uploaded: keys });
        else
          process.stdout.write(
            `deployed ${session.stackName} (spawn ${stack.outputs.SpawnVersion}) in ${region}; uploaded ${keys.join(", ")}\n` +
              "next: spawn doctor, then spawn sweep launch <spec> --provider aws\n",
          );
      } finally {
        s3.destroy();
      }
    } finally {
      session.cfn.destroy();
    }
  });
}
