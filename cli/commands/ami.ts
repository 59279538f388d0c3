/** `spawn ami build|list`: the stack's GPU image (EC2 Image Builder pipeline). */
import type { ImagebuilderClient } from "@aws-sdk/client-imagebuilder";
import type { Command } from "commander";
import { localPaths } from "#providers/local/paths.js";
import { paintStatus, printJson, table } from "../output.js";
import { awsFlags, withAwsFlags } from "./aws-flags.js";

/** Loaded on use, so other commands never evaluate the AWS SDK. */
const services = () => import("../services/ami.js");

/** Opens the session, the stack's pipeline ARN and an Image Builder client; closes them after `fn`. */
async function withPipeline<T>(
  opts: { profile?: string; region?: string; stack?: string },
  fn: (client: ImagebuilderClient, pipelineArn: string) => Promise<T>,
): Promise<T> {
  const [{ ImagebuilderClient }, { clientConfig }, { openAwsSession, sessionStack }, { pipelineOf }] =
    await Promise.all([
      import("@aws-sdk/client-imagebuilder"),
      import("#providers/aws/clients.js"),
      import("../services/aws.js"),
      services(),
    ]);
  const session = await openAwsSession(awsFlags(opts));
  const client = new ImagebuilderClient(clientConfig(session.target));
  try {
    return await fn(client, pipelineOf((await sessionStack(session, localPaths())).outputs));
  } finally {
    client.destroy();
    session.cfn.destroy();
  }
}

export function registerAmi(program: Command): void {
  const ami = program.command("ami").description("the GPU image instances boot (EC2 Image Builder)");

  withAwsFlags(
    ami
      .command("build")
      .description("start a build of the spawn GPU AMI (driver, CUDA, Node, agent); takes about an hour")
      .option("--json", "machine-readable output"),
  ).action(async (opts) => {
    await withPipeline(opts, async (client, pipelineArn) => {
      const image = await (await services()).startAmiBuild(client, pipelineArn);
      if (opts.json) printJson({ imageBuildVersionArn: image });
      else process.stdout.write(`started ${image}\n  spawn ami list   shows its progress\n`);
    });
  });

  withAwsFlags(
    ami
      .command("list")
      .description("images the pipeline built, newest first")
      .option("--json", "machine-readable output"),
  ).action(async (opts) => {
    await withPipeline(opts, async (client, pipelineArn) => {
      const images = await (await services()).listAmis(client, pipelineArn);
      if (opts.json) printJson(images);
      else if (images.length === 0) process.stdout.write("no images yet: spawn ami build\n");
      else
        process.stdout.write(
          `${table(
            ["version", "state", "created", "amis"],
            images.map((i) => [
              i.version,
              paintStatus(i.state.toLowerCase()),
              i.createdAt ?? "",
              i.amis.map((a) => `${a.region}:${a.image}`).join(" "),
            ]),
          )}\n`,
        );
    });
  });
}
