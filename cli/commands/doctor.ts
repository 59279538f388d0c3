/** `spawn doctor`: credentials, region, stack version and GPU quotas, each ok / warn / fail. */
import type { Command } from "commander";
import { paint, printJson } from "../output.js";
import type { CheckStatus } from "../services/doctor.js";
import { awsFlags, withAwsFlags } from "./aws-flags.js";

const MARK: Record<CheckStatus, string> = {
  ok: paint("green", "ok  "),
  warn: paint("yellow", "warn"),
  fail: paint("red", "fail"),
};

export function registerDoctor(program: Command): void {
  withAwsFlags(
    program
      .command("doctor")
      .description("check that this machine can run sweeps on AWS; exit 1 when a check fails")
      .option(
        "--instance-types <types>",
        "instance types you mean to use, comma-separated (their quotas must be > 0)",
      )
      .option("--json", "machine-readable output"),
  ).action(async (opts) => {
    // Loaded on use, so other commands never evaluate the AWS SDK.
    const [
      { ServiceQuotasClient },
      { STSClient },
      { clientConfig },
      { openAwsSession },
      { doctorExitCode, runDoctor },
    ] = await Promise.all([
      import("@aws-sdk/client-service-quotas"),
      import("@aws-sdk/client-sts"),
      import("#providers/aws/clients.js"),
      import("../services/aws.js"),
      import("../services/doctor.js"),
    ]);
    const session = await openAwsSession(awsFlags(opts));
    const config = clientConfig(session.target);
    const sts = new STSClient(config);
    const quotas = new ServiceQuotasClient(config);
    try {
      const checks = await runDoctor(
        { sts, cfn: session.cfn, quotas },
        {
          region: session.target.region,
          stackName: session.stackName,
          ...(session.target.profile ? { profile: session.target.profile } : {}),
          ...(opts.instanceTypes
            ? { instanceTypes: String(opts.instanceTypes).split(",").filter(Boolean) }
            : {}),
        },
      );
      if (opts.json) printJson(checks);
      else
        for (const c of checks) {
          process.stdout.write(`${MARK[c.status]}  ${c.name.padEnd(22)} ${c.detail}\n`);
          if (c.advice) process.stdout.write(`      ${paint("dim", c.advice)}\n`);
        }
      process.exitCode = doctorExitCode(checks);
    } finally {
      for (const client of [sts, quotas, session.cfn]) client.destroy();
    }
  });
}
