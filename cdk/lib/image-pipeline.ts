/**
 * The EC2 Image Builder pipeline of the spawn GPU AMI, from amis/recipe.yaml and the component
 * documents it names. Nothing runs on a schedule: a build starts only when asked (`spawn ami
 * build`), so the pipeline costs nothing at rest. Component documents are validated here (the
 * AWSTOE document shape), so a bad document fails `cdk synth`, not a 40-minute build.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { Stack, Validations } from "aws-cdk-lib";
import type { ISecurityGroup, ISubnet } from "aws-cdk-lib/aws-ec2";
import { InstanceProfile, ManagedPolicy, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import {
  CfnComponent,
  CfnDistributionConfiguration,
  CfnImagePipeline,
  CfnImageRecipe,
  CfnInfrastructureConfiguration,
} from "aws-cdk-lib/aws-imagebuilder";
import type { Bucket } from "aws-cdk-lib/aws-s3";
import { Construct } from "constructs";
import { parse, stringify } from "yaml";
import { z } from "zod";
import { spawnAmiParameterName } from "#providers/aws/launch-config.js";
import { ROOT_DEVICE } from "./launch.js";
import { acknowledgeWildcards } from "./nag.js";
import { projectPath } from "./paths.js";
import { placeholders, renderTemplate } from "./template.js";

/** AWSTOE actions spawn's documents may use (a subset of the documented action modules). */
export const COMPONENT_ACTIONS = [
  "ExecuteBash",
  "ExecuteBinary",
  "CreateFile",
  "CreateFolder",
  "DeleteFile",
  "S3Download",
  "WebDownload",
  "Reboot",
  "UpdateOS",
  "SetFilePermissions",
] as const;

const Step = z.strictObject({
  /** Unique in its phase; AWSTOE allows letters and digits only. */
  name: z.string().regex(/^[A-Za-z][A-Za-z0-9]{0,127}$/, "step names are letters and digits"),
  action: z.enum(COMPONENT_ACTIONS),
  timeoutSeconds: z.number().int().min(1).max(43_200).optional(),
  onFailure: z.enum(["Abort", "Continue", "Ignore"]).optional(),
  maxAttempts: z.number().int().min(1).max(10).optional(),
  inputs: z.union([z.record(z.string(), z.unknown()), z.array(z.record(z.string(), z.unknown()))]),
});

/** An Image Builder (AWSTOE) component document. */
export const ComponentDocument = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z][a-z0-9-]{0,125}$/, "component names are lowercase letters, digits and hyphens"),
    description: z.string().min(1).max(1024),
    schemaVersion: z.literal("1.0"),
    phases: z
      .array(
        z.strictObject({
          name: z.enum(["build", "validate", "test"]),
          steps: z.array(Step).min(1),
        }),
      )
      .min(1),
  })
  .superRefine((doc, ctx) => {
    const phases = doc.phases.map((p) => p.name);
    if (new Set(phases).size !== phases.length)
      ctx.addIssue({ code: "custom", message: "a phase is listed twice", path: ["phases"] });
    doc.phases.forEach((phase, i) => {
      const seen = new Set<string>();
      phase.steps.forEach((step, j) => {
        if (seen.has(step.name)) {
          ctx.addIssue({
            code: "custom",
            message: `step ${step.name} is listed twice`,
            path: ["phases", i, "steps", j, "name"],
          });
        }
        seen.add(step.name);
        const inputs = step.inputs;
        const ok =
          step.action === "ExecuteBash"
            ? !Array.isArray(inputs) &&
              Array.isArray(inputs.commands) &&
              inputs.commands.length > 0 &&
              inputs.commands.every((c) => typeof c === "string" && c.trim() !== "")
            : step.action === "CreateFile"
              ? Array.isArray(inputs) &&
                inputs.length > 0 &&
                inputs.every((f) => typeof f.path === "string" && "content" in f)
              : true;
        if (!ok) {
          ctx.addIssue({
            code: "custom",
            message: `${step.action} inputs are malformed (ExecuteBash: a non-empty commands list; CreateFile: a list of {path, content})`,
            path: ["phases", i, "steps", j, "inputs"],
          });
        }
      });
    });
  });
export type ComponentDocument = z.infer<typeof ComponentDocument>;

/** amis/recipe.yaml. */
export const RecipeFile = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9-]{0,62}$/),
  description: z.string().min(1),
  /** An Image Builder managed image, `<name>/<version>`. */
  parentImage: z
    .string()
    .regex(/^[a-z0-9-]+\/(\d+|x)\.(\d+|x)\.(\d+|x)$/, "must be <managed image>/<version>"),
  rootVolumeGiB: z.number().int().min(20).max(16_384),
  buildInstanceTypes: z.array(z.string().regex(/^[a-z0-9-]+\.[a-z0-9]+$/)).min(1),
  components: z
    .array(
      z.union([
        z.strictObject({ aws: z.string().regex(/^[a-z0-9-]+\/(\d+|x)\.(\d+|x)\.(\d+|x)$/) }),
        z.strictObject({ file: z.string().regex(/^components\/[a-z0-9-]+\.yaml$/) }),
      ]),
    )
    .min(1),
});
export type RecipeFile = z.infer<typeof RecipeFile>;

/** Where amis/ is. */
export const AMIS_DIR = projectPath("amis");

function describeIssues(error: z.ZodError): string {
  return error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`).join("; ");
}

export function readRecipe(path = `${AMIS_DIR}/recipe.yaml`): RecipeFile {
  const parsed = RecipeFile.safeParse(parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new Error(`${path}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** Parses and validates one component document (placeholders left in). */
export function readComponent(path: string): ComponentDocument {
  const parsed = ComponentDocument.safeParse(parse(readFileSync(path, "utf8")));
  if (!parsed.success) throw new Error(`${path}: ${describeIssues(parsed.error)}`);
  return parsed.data;
}

/** The document with every `@{name}` in its strings filled in. */
export function renderComponent(
  doc: ComponentDocument,
  values: Readonly<Record<string, string>>,
  what: string,
): ComponentDocument {
  const wanted = new Set<string>();
  const visit = (value: unknown): unknown => {
    if (typeof value === "string") {
      const names = placeholders(value);
      for (const name of names) wanted.add(name);
      return names.length === 0
        ? value
        : renderTemplate(value, Object.fromEntries(names.map((n) => [n, values[n] ?? `@{${n}}`])), what);
    }
    if (Array.isArray(value)) return value.map(visit);
    if (value && typeof value === "object")
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, visit(v)]));
    return value;
  };
  const rendered = visit(doc);
  const missing = [...wanted].filter((n) => values[n] === undefined);
  if (missing.length > 0)
    throw new Error(`${what}: no value for ${missing.map((n) => `@{${n}}`).join(", ")}`);
  const unused = Object.keys(values).filter((n) => !wanted.has(n));
  if (unused.length > 0) throw new Error(`${what}: no placeholder for ${unused.join(", ")}`);
  return rendered as ComponentDocument;
}

/** The YAML Image Builder stores. lineWidth 0: never fold, so scripts and CDK tokens keep their lines. */
export function componentYaml(doc: ComponentDocument): string {
  return stringify(doc, { lineWidth: 0 });
}

export interface ImagePipelineProps {
  stackName: string;
  version: string;
  /** The rendered instance bootstrap (cdk/lib/user-data.ts): the AMI runs it with `install`. */
  bootScript: string;
  artifacts: Bucket;
  /** A public subnet and the no-inbound security group of the home region's launch VPC. */
  subnet: ISubnet;
  securityGroup: ISecurityGroup;
  /** Regions to copy each AMI to (the home region first) and publish its SSM parameter in. */
  regions: string[];
}

export class SpawnImagePipeline extends Construct {
  readonly pipeline: CfnImagePipeline;

  constructor(scope: Construct, id: string, props: ImagePipelineProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const recipeFile = readRecipe();
    const componentValues: Record<string, Record<string, string>> = {
      "components/spawn-agent.yaml": { version: props.version, bootScript: props.bootScript },
      "components/nvidia-cuda.yaml": {},
    };
    const components = recipeFile.components.map((entry, i) => {
      if ("aws" in entry) {
        return {
          componentArn: `arn:${stack.partition}:imagebuilder:${stack.region}:aws:component/${entry.aws}`,
        };
      }
      const path = `${AMIS_DIR}/${entry.file}`;
      const doc = readComponent(path);
      const values = componentValues[entry.file];
      if (!values) throw new Error(`${path}: cdk/lib/image-pipeline.ts has no values for this component`);
      const rendered = renderComponent(doc, values, path);
      const data = componentYaml(rendered);
      const component = new CfnComponent(this, `Component${i}`, {
        // Components are immutable per name and version: a changed document gets a new name.
        name: `${props.stackName}-${rendered.name}-${contentHash(stack, data)}`,
        version: semanticVersion(props.version),
        platform: "Linux",
        description: rendered.description,
        data,
      });
      return { componentArn: component.attrArn };
    });
    const recipe = new CfnImageRecipe(this, "Recipe", {
      // Immutable too: new components, new recipe name.
      name: `${props.stackName}-${recipeFile.name}-${contentHash(stack, { recipeFile, components })}`,
      version: semanticVersion(props.version),
      description: recipeFile.description,
      parentImage: `arn:${stack.partition}:imagebuilder:${stack.region}:aws:image/${recipeFile.parentImage}`,
      components,
      blockDeviceMappings: [
        {
          deviceName: ROOT_DEVICE,
          ebs: {
            volumeSize: recipeFile.rootVolumeGiB,
            volumeType: "gp3",
            encrypted: true,
            deleteOnTermination: true,
          },
        },
      ],
    });

    const buildRole = new Role(this, "BuildRole", {
      assumedBy: new ServicePrincipal("ec2.amazonaws.com"),
      description: `spawn ${props.stackName}: EC2 Image Builder build and test instances`,
      managedPolicies: [
        ManagedPolicy.fromAwsManagedPolicyName("EC2InstanceProfileForImageBuilder"),
        ManagedPolicy.fromAwsManagedPolicyName("AmazonSSMManagedInstanceCore"),
      ],
    });
    buildRole.addToPolicy(
      new PolicyStatement({
        sid: "ReadAgentArtifacts",
        actions: ["s3:GetObject"],
        resources: [props.artifacts.arnForObjects("agent/*")],
      }),
    );
    const profile = new InstanceProfile(this, "BuildProfile", { role: buildRole });
    const infrastructure = new CfnInfrastructureConfiguration(this, "Infrastructure", {
      name: `${props.stackName}-gpu-image`,
      instanceProfileName: profile.instanceProfileName,
      instanceTypes: recipeFile.buildInstanceTypes,
      subnetId: props.subnet.subnetId,
      securityGroupIds: [props.securityGroup.securityGroupId],
      terminateInstanceOnFailure: true,
      instanceMetadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 2 },
    });
    const distribution = new CfnDistributionConfiguration(this, "Distribution", {
      name: `${props.stackName}-gpu-image`,
      distributions: props.regions.map((region) => ({
        region,
        // Untyped (JSON) in the CloudFormation schema: the keys are CloudFormation's own.
        amiDistributionConfiguration: {
          Name: `${props.stackName}-${recipeFile.name}-{{ imagebuilder:buildDate }}`,
          Description: `${recipeFile.description} (spawn ${props.version})`,
          AmiTags: { "spawn:stack": props.stackName, "spawn:version": props.version },
        },
        ssmParameterConfigurations: [
          { parameterName: spawnAmiParameterName(props.stackName), dataType: "aws:ec2:image" },
        ],
      })),
    });
    this.pipeline = new CfnImagePipeline(this, "Pipeline", {
      name: `${props.stackName}-gpu-image`,
      description: "spawn GPU AMI; runs only when started (spawn ami build)",
      imageRecipeArn: recipe.attrArn,
      infrastructureConfigurationArn: infrastructure.attrArn,
      distributionConfigurationArn: distribution.attrArn,
      imageTestsConfiguration: { imageTestsEnabled: true, timeoutMinutes: 60 },
      status: "ENABLED",
    });

    acknowledgeWildcards(
      buildRole,
      [props.artifacts.arnForObjects("agent/*")],
      "the build installs the agent and executor of the version it builds, which live under agent/<version>/",
    );
    Validations.of(buildRole).acknowledge(
      {
        id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/EC2InstanceProfileForImageBuilder]",
        reason:
          "the AWS-maintained set Image Builder's build and test instances need to report to the service",
      },
      {
        id: "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]",
        reason: "Image Builder drives its build and test instances through Systems Manager",
      },
    );
  }
}

/**
 * A short hash of what CloudFormation will see (tokens resolved to their references), so names
 * change exactly when the content does.
 */
function contentHash(stack: Stack, value: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(stack.resolve(value)))
    .digest("hex")
    .slice(0, 8);
}

/** Image Builder wants `major.minor.patch`: a prerelease or build suffix of the package version is dropped. */
export function semanticVersion(version: string): string {
  const match = /^(\d+)\.(\d+)\.(\d+)/.exec(version);
  if (!match) throw new Error(`spawn version ${JSON.stringify(version)} is not major.minor.patch`);
  return `${match[1]}.${match[2]}.${match[3]}`;
}
