/** `spawn instances list|terminate|extend|connect` (aws provider). */
import type { Command } from "commander";
import { InvalidArgumentError } from "commander";
import { parseDuration } from "#core/duration.js";
import { ExitCode } from "#core/errors.js";
import { localPaths } from "#providers/local/paths.js";
import { paint, paintStatus, printJson, table } from "../output.js";
import type { InstanceRow } from "../services/instances.js";
import { onPath, runInherited } from "../services/shell.js";
import { awsFlags, withAwsFlags } from "./aws-flags.js";

const iso = (ms: number | undefined) =>
  ms === undefined ? "" : new Date(ms).toISOString().replace("T", " ").slice(0, 19);

/** Opens the stack's store and EC2 clients, runs `fn`, and closes them. */
async function withAws<T>(
  opts: { profile?: string; region?: string; stack?: string },
  fn: (deps: Awaited<ReturnType<typeof open>>) => Promise<T>,
): Promise<T> {
  const deps = await open(opts);
  try {
    return await fn(deps);
  } finally {
    deps.ctx.close();
    deps.ec2.destroy();
  }
}

/** The services are loaded on use, so other commands never evaluate the AWS SDK. */
async function open(opts: { profile?: string; region?: string; stack?: string }) {
  const [{ ec2Clients, openAwsContextFor, openAwsSession }, services] = await Promise.all([
    import("../services/aws.js"),
    import("../services/instances.js"),
  ]);
  const session = await openAwsSession(awsFlags(opts));
  const ctx = await openAwsContextFor(session, localPaths());
  return { session, ctx, ec2: ec2Clients(session), services };
}

const rowJson = (r: InstanceRow) => ({
  sweepId: r.record.sweepId,
  instanceId: r.record.instanceId,
  ec2InstanceId: r.record.providerRef ?? null,
  status: r.record.status,
  ec2State: r.ec2State,
  instanceType: r.record.placement?.instanceType ?? null,
  region: r.record.placement?.region ?? null,
  az: r.record.placement?.az ?? null,
  market: r.record.placement?.market ?? null,
  pricePerHour: r.record.placement?.pricePerHour ?? null,
  launchedAt: new Date(r.record.launchedAt).toISOString(),
  deadline: new Date(r.record.deadline).toISOString(),
  heartbeatAt: r.record.heartbeatAt ? new Date(r.record.heartbeatAt).toISOString() : null,
  reason: r.record.reason ?? null,
});

function durationArg(value: string): number {
  const ms = parseDuration(value);
  if (ms === undefined || ms <= 0) {
    throw new InvalidArgumentError(
      `--by must be a positive duration such as 30m or 2h, got ${JSON.stringify(value)}`,
    );
  }
  return ms;
}

export function registerInstances(program: Command): void {
  const instances = program
    .command("instances")
    .description("the EC2 instances spawn runs for your sweeps (aws)");

  withAwsFlags(
    instances
      .command("list")
      .description("live instances of active sweeps (or every instance of one sweep), with their EC2 state")
      .option("--sweep <id>", "one sweep, terminated instances included")
      .option("--json", "machine-readable output"),
  ).action(async (opts) => {
    await withAws(opts, async ({ ctx, ec2, services }) => {
      const rows = await services.listInstances(
        ctx.store,
        ec2.ec2For,
        opts.sweep ? { sweepId: opts.sweep } : {},
      );
      if (opts.json) return printJson(rows.map(rowJson));
      if (rows.length === 0) {
        process.stdout.write("no instances\n");
        return;
      }
      process.stdout.write(
        `${table(
          ["instance", "ec2 id", "status", "ec2", "type", "where", "market", "deadline", "heartbeat"],
          rows.map((r) => [
            r.record.instanceId,
            r.record.providerRef ?? "",
            paintStatus(r.record.status),
            r.ec2State,
            r.record.placement?.instanceType ?? "",
            r.record.placement?.az ?? r.record.placement?.region ?? "",
            r.record.placement?.market ?? "",
            iso(r.record.deadline),
            iso(r.record.heartbeatAt),
          ]),
        )}\n`,
      );
    });
  });

  withAwsFlags(
    instances
      .command("terminate")
      .description("terminate an instance now (its tasks' leases expire and go to other instances)")
      .argument("<instance>", "our id (<sweep>-i<n>) or the EC2 id (i-…)")
      .option("--json", "machine-readable output"),
  ).action(async (ref: string, opts) => {
    await withAws(opts, async ({ ctx, ec2, services }) => {
      const done = await services.terminateInstance(
        { store: ctx.store, ec2For: ec2.ec2For, clock: ctx.clock },
        ref,
      );
      if (opts.json)
        printJson({ instanceId: done.instanceId, status: done.status, reason: done.reason ?? null });
      else process.stdout.write(`${done.instanceId} (${done.providerRef ?? "no EC2 id"}): ${done.status}\n`);
    });
  });

  withAwsFlags(
    instances
      .command("extend")
      .description("move an instance's absolute deadline (ttl) later")
      .argument("<instance>", "our id (<sweep>-i<n>) or the EC2 id (i-…)")
      .requiredOption("--by <duration>", "how much later, e.g. 2h", durationArg)
      .option("--json", "machine-readable output"),
  ).action(async (ref: string, opts) => {
    await withAws(opts, async ({ ctx, ec2, services }) => {
      const done = await services.extendInstance(
        { store: ctx.store, ec2For: ec2.ec2For, clock: ctx.clock },
        ref,
        opts.by,
      );
      if (opts.json)
        printJson({ instanceId: done.instanceId, deadline: new Date(done.deadline).toISOString() });
      else process.stdout.write(`${done.instanceId}: deadline ${iso(done.deadline)} UTC\n`);
    });
  });

  withAwsFlags(
    instances
      .command("connect")
      .description("open a shell on an instance through SSM Session Manager (no SSH keys, no open ports)")
      .argument("<instance>", "our id (<sweep>-i<n>) or the EC2 id (i-…)"),
  ).action(async (ref: string, opts) => {
    await withAws(opts, async ({ session, ctx, services }) => {
      const instance = await services.findInstance(ctx.store, ref);
      process.stderr.write(
        `${paint("dim", `connecting to ${instance.instanceId} (${instance.providerRef ?? "?"})`)}\n`,
      );
      const { exitCode } = await services.connectInstance(
        ctx.store,
        { which: (p) => onPath(p), exec: (c, a) => runInherited(c, a) },
        instance.instanceId,
        session.target,
      );
      process.exitCode = exitCode === 0 ? ExitCode.ok : exitCode;
    });
  });
}
