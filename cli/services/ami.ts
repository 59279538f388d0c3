/** `spawn ami build|list`: the stack's EC2 Image Builder pipeline for the GPU AMI. */
import { randomUUID } from "node:crypto";
import {
  type ImagebuilderClient,
  ListImagePipelineImagesCommand,
  type ListImagePipelineImagesCommandOutput,
  StartImagePipelineExecutionCommand,
} from "@aws-sdk/client-imagebuilder";
import { AbortError } from "#core/errors.js";
import type { StackOutputs } from "#providers/aws/stack.js";

export interface AmiImage {
  version: string;
  arn: string;
  state: string;
  createdAt?: string;
  /** AMI ids by region, once the build is distributed. */
  amis: Array<{ region: string; image: string }>;
}

/** The pipeline ARN, or an AbortError when the stack was deployed without one. */
export function pipelineOf(outputs: StackOutputs): string {
  if (!outputs.ImagePipelineArn) {
    throw new AbortError(
      "the deployed stack has no image pipeline",
      "redeploy with this spawn version (`spawn deploy`), which adds it",
    );
  }
  return outputs.ImagePipelineArn;
}

/** Starts a build; returns the ARN of the image version it makes. The client token makes a retried call start one build. */
export async function startAmiBuild(client: ImagebuilderClient, pipelineArn: string): Promise<string> {
  const out = await client.send(
    new StartImagePipelineExecutionCommand({ imagePipelineArn: pipelineArn, clientToken: randomUUID() }),
  );
  if (!out.imageBuildVersionArn) throw new Error("Image Builder started no build (no imageBuildVersionArn)");
  return out.imageBuildVersionArn;
}

/** Every image the pipeline built, newest first. */
export async function listAmis(client: ImagebuilderClient, pipelineArn: string): Promise<AmiImage[]> {
  const images: AmiImage[] = [];
  let nextToken: string | undefined;
  do {
    const page: ListImagePipelineImagesCommandOutput = await client.send(
      new ListImagePipelineImagesCommand({
        imagePipelineArn: pipelineArn,
        ...(nextToken ? { nextToken } : {}),
      }),
    );
    for (const image of page.imageSummaryList ?? []) {
      images.push({
        version: image.version ?? "?",
        arn: image.arn ?? "?",
        state: image.state?.status ?? "UNKNOWN",
        ...(image.dateCreated ? { createdAt: image.dateCreated } : {}),
        amis: (image.outputResources?.amis ?? []).map((a) => ({
          region: a.region ?? "?",
          image: a.image ?? "?",
        })),
      });
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return images.sort((a, b) => (b.createdAt ?? "").localeCompare(a.createdAt ?? ""));
}
