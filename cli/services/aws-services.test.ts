/**
 * The CLI's aws mode through its services: the stack's outputs, `sweep launch` against the
 * stack (S3 bundle, DynamoDB on dynalite, the EventBridge kick), doctor, instances, ami and
 * deploy. AWS APIs go through aws-sdk-client-mock; nothing here needs an account.
 */
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CloudFormationClient,
  DescribeStacksCommand,
  type StackStatus,
} from "@aws-sdk/client-cloudformation";
import {
  CreateTagsCommand,
  DescribeInstancesCommand,
  EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { CreateRoleCommand, IAMClient, PutRolePolicyCommand } from "@aws-sdk/client-iam";
import {
  ImagebuilderClient,
  ListImagePipelineImagesCommand,
  StartImagePipelineExecutionCommand,
} from "@aws-sdk/client-imagebuilder";
import { HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { GetServiceQuotaCommand, ServiceQuotasClient } from "@aws-sdk/client-service-quotas";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { AbortError, ExitCode, NotFoundError } from "#core/errors.js";
import type { InstanceRecord } from "#core/model.js";
import { systemClock } from "#core/ports.js";
import { SWEEP_SUBMITTED } from "#providers/aws/events.js";
import { artifactKeys } from "#providers/aws/launch-config.js";
import { loadStack, SPAWN_VERSION, StackNotFoundError, stackCacheFile } from "#providers/aws/stack.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { localPaths } from "#providers/local/paths.js";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";
import { listAmis, startAmiBuild } from "./ami.js";
import { type AwsSession, openAwsContextFor } from "./aws.js";
import { deployPlan, requireBootstrap, uploadAgentArtifacts } from "./deploy.js";
import { doctorExitCode, runDoctor } from "./doctor.js";
import {
  connectInstance,
  extendInstance,
  findInstance,
  listInstances,
  terminateInstance,
} from "./instances.js";
import { launchSweep } from "./launch.js";
import { planSweep } from "./plan.js";

const cfnMock = mockClient(CloudFormationClient);
const s3Mock = mockClient(S3Client);
const ebMock = mockClient(EventBridgeClient);
const ec2Mock = mockClient(EC2Client);
const stsMock = mockClient(STSClient);
const quotaMock = mockClient(ServiceQuotasClient);
const ibMock = mockClient(ImagebuilderClient);
const iamMock = mockClient(IAMClient);

const creds = { region: "us-east-1", credentials: { accessKeyId: "x", secretAccessKey: "y" } };
const PREFIX = `cli${randomUUID().slice(0, 6)}-`;
const OUTPUTS = {
  SpawnVersion: SPAWN_VERSION,
  TablePrefix: PREFIX,
  ArtifactsBucket: "spawn-artifacts-bkt",
  ResultsBucket: "spawn-results-bkt",
  EventBusName: "spawn-bus",
  OrchestratorFunctionName: "spawn-orchestrator",
  LaunchConfigParam: "/spawn/spawn/launch-config",
  ImagePipelineArn: "arn:aws:imagebuilder:us-east-1:123456789012:image-pipeline/spawn-gpu",
};
const stackAnswer = (outputs: Record<string, string> = OUTPUTS, status: StackStatus = "UPDATE_COMPLETE") => ({
  Stacks: [
    {
      StackName: "spawn",
      StackStatus: status,
      CreationTime: new Date(),
      Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
    },
  ],
});
const noStack = (name: string) =>
  Object.assign(new Error(`Stack with id ${name} does not exist`), { name: "ValidationError" });

let dir: string;
let engine: DynamoEngine;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-aws-cli-"));
  engine = await startDynalite();
  await ensureTables(engine.client, PREFIX);
  // The context builds its own DynamoDB client; the SDK's endpoint variable points it at dynalite.
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: engine.endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  });
});
afterAll(async () => {
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  for (const m of [cfnMock, s3Mock, ebMock, ec2Mock, stsMock, quotaMock, ibMock, iamMock]) m.reset();
});

const session = (): AwsSession => ({
  target: { region: "us-east-1" },
  stackName: "spawn",
  cfn: new CloudFormationClient(creds),
});

describe("stack outputs", () => {
  it("a missing stack is exit 2 with `spawn deploy` advice, and is never cached", async () => {
    cfnMock.on(DescribeStacksCommand).rejects(noStack("spawn"));
    const stateDir = join(dir, "state-missing");
    const error = await loadStack({
      cfn: new CloudFormationClient(creds),
      stackName: "spawn",
      region: "eu-west-1",
      stateDir,
      now: 0,
    }).catch((e) => e);
    expect(error).toBeInstanceOf(StackNotFoundError);
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toBe('the spawn stack "spawn" is not deployed in eu-west-1');
    expect(error.hint).toMatch(/spawn deploy --region eu-west-1/);
    await expect(readFile(stackCacheFile(stateDir, "eu-west-1", "spawn"))).rejects.toThrow();
  });

  it("reads DescribeStacks once, then the cache, until it is stale", async () => {
    cfnMock.on(DescribeStacksCommand).resolves(stackAnswer());
    const options = {
      cfn: new CloudFormationClient(creds),
      stackName: "spawn",
      region: "us-east-1",
      stateDir: join(dir, "s"),
    };
    expect((await loadStack({ ...options, now: 1000 })).outputs).toEqual(OUTPUTS);
    await loadStack({ ...options, now: 2000 });
    expect(cfnMock.commandCalls(DescribeStacksCommand)).toHaveLength(1);
    await loadStack({ ...options, now: 1000 + 3_600_000 });
    expect(cfnMock.commandCalls(DescribeStacksCommand)).toHaveLength(2);
    expect(cfnMock.commandCalls(DescribeStacksCommand)[0]?.args[0].input).toEqual({ StackName: "spawn" });
  });

  it("names the outputs an older stack lacks, and the status of an unfinished one", async () => {
    const { EventBusName: _, ...partial } = OUTPUTS;
    cfnMock
      .on(DescribeStacksCommand)
      .resolvesOnce(stackAnswer(partial))
      .resolvesOnce(stackAnswer(OUTPUTS, "UPDATE_IN_PROGRESS"));
    const options = { cfn: new CloudFormationClient(creds), stackName: "spawn", region: "us-east-1", now: 0 };
    await expect(loadStack({ ...options, stateDir: join(dir, "p1") })).rejects.toThrow(
      /lacks outputs this CLI needs: EventBusName/,
    );
    await expect(loadStack({ ...options, stateDir: join(dir, "p2") })).rejects.toThrow(
      /is UPDATE_IN_PROGRESS/,
    );
  });
});

describe("sweep launch on the aws provider", () => {
  it("uploads the bundle to the artifacts bucket, writes the sweep to DynamoDB and kicks the orchestrator by event", async () => {
    // Given a deployed stack and a spec
    cfnMock.on(DescribeStacksCommand).resolves(stackAnswer());
    s3Mock
      .on(HeadObjectCommand)
      .rejects(
        new S3ServiceException({ name: "NotFound", $fault: "client", $metadata: { httpStatusCode: 404 } }),
      );
    s3Mock.on(PutObjectCommand).resolves({});
    ebMock.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
    stsMock
      .on(GetCallerIdentityCommand)
      .resolves({ Account: "123456789012", Arn: "arn:aws:iam::123456789012:user/me" });
    iamMock.onAnyCommand().resolves({});
    const work = join(dir, "work");
    await mkdir(work, { recursive: true });
    await writeFile(join(work, "train.py"), "print(1)\n");
    await writeFile(
      join(work, "spec.yaml"),
      "name: aws-run\ncommand: python train.py --lr {{lr}}\nparams: { grid: { lr: [0.1, 0.01] } }\nresources: { gpus: 1, regions: [us-east-1] }\n",
    );
    const paths = { ...localPaths({ SPAWN_HOME: join(dir, "home") }) };
    const ctx = await openAwsContextFor(session(), paths);
    try {
      // When it is launched
      const sweep = await launchSweep(ctx, await planSweep(join(work, "spec.yaml")));
      // Then the bundle went to the artifacts bucket under its content key...
      const put = s3Mock.commandCalls(PutObjectCommand)[0]?.args[0].input;
      expect(put?.Bucket).toBe("spawn-artifacts-bkt");
      expect(put?.Key).toBe(sweep.bundle?.key);
      // ...the sweep's own role was made (providers/aws/sweep-role.test.ts has what it holds)...
      expect(iamMock.commandCalls(CreateRoleCommand)).toHaveLength(1);
      expect(iamMock.commandCalls(PutRolePolicyCommand)[0]?.args[0].input.PolicyDocument).toContain(
        `${sweep.sweepId}#*`,
      );
      // ...the sweep and its tasks are in the stack's tables...
      expect(await ctx.store.getSweep(sweep.sweepId)).toMatchObject({
        provider: "aws",
        status: "running",
        taskCount: 2,
      });
      // ...and the orchestrator was told by an event on the stack bus, not a Lambda invoke
      const entries = ebMock.commandCalls(PutEventsCommand)[0]?.args[0].input.Entries;
      expect(entries).toEqual([
        {
          EventBusName: "spawn-bus",
          Source: SWEEP_SUBMITTED.source,
          DetailType: SWEEP_SUBMITTED.detailType,
          Detail: expect.any(String),
        },
      ]);
      // ...carrying a new W3C trace for this launch, which the orchestrator logs its pass in
      expect(JSON.parse(entries?.[0]?.Detail ?? "{}")).toEqual({
        kind: "sweep",
        sweepId: sweep.sweepId,
        traceparent: expect.stringMatching(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/),
      });
    } finally {
      ctx.close();
    }
  });
});

describe("doctor", () => {
  const clients = () => ({
    sts: new STSClient(creds),
    cfn: new CloudFormationClient(creds),
    quotas: new ServiceQuotasClient(creds),
  });

  it("all ok: credentials, region, stack version, every GPU quota above 0 → exit 0", async () => {
    stsMock
      .on(GetCallerIdentityCommand)
      .resolves({ Account: "123456789012", Arn: "arn:aws:iam::123456789012:user/me" });
    cfnMock.on(DescribeStacksCommand).resolves(stackAnswer());
    quotaMock.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 64 } });
    const checks = await runDoctor(clients(), { region: "us-east-1", stackName: "spawn" });
    expect(checks.map((c) => [c.name, c.status])).toEqual([
      ["credentials", "ok"],
      ["region", "ok"],
      ["stack", "ok"],
      ["quota G and VT spot", "ok"],
      ["quota G and VT on-demand", "ok"],
      ["quota P spot", "ok"],
      ["quota P on-demand", "ok"],
    ]);
    expect(quotaMock.commandCalls(GetServiceQuotaCommand).map((c) => c.args[0].input)).toEqual(
      ["L-3819A6DF", "L-DB2E81BA", "L-7212CCBC", "L-417A185B"].map((QuotaCode) => ({
        ServiceCode: "ec2",
        QuotaCode,
      })),
    );
    expect(doctorExitCode(checks)).toBe(0);
  });

  it("a zero quota for a requested family fails with the increase command; a missing stack fails with deploy advice", async () => {
    stsMock.on(GetCallerIdentityCommand).resolves({ Account: "1", Arn: "arn" });
    cfnMock.on(DescribeStacksCommand).rejects(noStack("spawn"));
    quotaMock.on(GetServiceQuotaCommand, { QuotaCode: "L-3819A6DF" }).resolves({ Quota: { Value: 0 } });
    quotaMock.on(GetServiceQuotaCommand, { QuotaCode: "L-DB2E81BA" }).resolves({ Quota: { Value: 8 } });
    const checks = await runDoctor(clients(), {
      region: "us-west-2",
      stackName: "spawn",
      profile: "lab",
      instanceTypes: ["g5.xlarge"],
    });
    const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
    expect(byName.stack).toMatchObject({ status: "fail", advice: expect.stringMatching(/spawn deploy/) });
    expect(byName["quota G and VT spot"]).toMatchObject({
      status: "fail",
      advice:
        "request an increase: `aws service-quotas request-service-quota-increase --service-code ec2 --quota-code L-3819A6DF --desired-value <vCPUs> --region us-west-2 --profile lab`",
    });
    expect(byName["quota P spot"]).toBeUndefined(); // not requested
    expect(doctorExitCode(checks)).toBe(1);
  });

  it("without credentials, says how to get them and stops", async () => {
    stsMock
      .on(GetCallerIdentityCommand)
      .rejects(Object.assign(new Error("Could not load credentials"), { name: "CredentialsProviderError" }));
    const checks = await runDoctor(clients(), { region: "us-east-1", stackName: "spawn" });
    expect(checks).toEqual([
      {
        name: "credentials",
        status: "fail",
        detail: "CredentialsProviderError: Could not load credentials",
        advice: "configure credentials: `aws configure` or `aws sso login`",
      },
    ]);
  });
});

describe("instances", () => {
  let ctxStore: Awaited<ReturnType<typeof openAwsContextFor>>["store"];
  const ec2For = () => new EC2Client(creds);
  const sweepId = `inst-${randomUUID().slice(0, 6)}`;
  const record = (n: number, ec2Id: string): InstanceRecord => ({
    sweepId,
    instanceId: `${sweepId}-i${n}`,
    provider: "aws",
    status: "running",
    slots: 1,
    launchedAt: Date.now() - 60_000,
    deadline: Date.now() + 3_600_000,
    heartbeatAt: Date.now(),
    providerRef: ec2Id,
    placement: {
      instanceType: "g5.xlarge",
      region: "us-west-2",
      az: "usw2-az1",
      market: "spot",
      pricePerHour: 0.5,
      priceSource: "t",
    },
  });

  beforeAll(async () => {
    cfnMock.on(DescribeStacksCommand).resolves(stackAnswer());
    const ctx = await openAwsContextFor(session(), localPaths({ SPAWN_HOME: join(dir, "home2") }));
    ctxStore = ctx.store;
    await ctxStore.putInstance(record(0, "i-0aaaaaaaaaaaaaaa0"));
    await ctxStore.putInstance(record(1, "i-0bbbbbbbbbbbbbbb1"));
  });

  it("list shows each instance of a sweep with its EC2 state, asked per region in one filter", async () => {
    ec2Mock.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [{ InstanceId: "i-0aaaaaaaaaaaaaaa0", State: { Name: "running" } }] }],
    });
    const rows = await listInstances(ctxStore, ec2For, { sweepId });
    expect(rows.map((r) => [r.record.instanceId, r.ec2State])).toEqual([
      [`${sweepId}-i0`, "running"],
      [`${sweepId}-i1`, "unknown to EC2"],
    ]);
    expect(ec2Mock.commandCalls(DescribeInstancesCommand)[0]?.args[0].input).toEqual({
      Filters: [{ Name: "instance-id", Values: ["i-0aaaaaaaaaaaaaaa0", "i-0bbbbbbbbbbbbbbb1"] }],
    });
  });

  it("finds an instance by our id or its EC2 id, and says so when neither exists", async () => {
    expect((await findInstance(ctxStore, "i-0bbbbbbbbbbbbbbb1")).instanceId).toBe(`${sweepId}-i1`);
    expect((await findInstance(ctxStore, `${sweepId}-i0`)).providerRef).toBe("i-0aaaaaaaaaaaaaaa0");
    await expect(findInstance(ctxStore, "nope-i9")).rejects.toBeInstanceOf(NotFoundError);
  });

  it("extend moves the deadline with a conditional write and retags spawn:deadline", async () => {
    ec2Mock.on(CreateTagsCommand).resolves({});
    const before = await findInstance(ctxStore, `${sweepId}-i0`);
    const after = await extendInstance(
      { store: ctxStore, ec2For, clock: systemClock },
      `${sweepId}-i0`,
      2 * 3_600_000,
    );
    expect(after.deadline).toBe(before.deadline + 2 * 3_600_000);
    expect(ec2Mock.commandCalls(CreateTagsCommand)[0]?.args[0].input).toEqual({
      Resources: ["i-0aaaaaaaaaaaaaaa0"],
      Tags: [{ Key: "spawn:deadline", Value: new Date(after.deadline).toISOString() }],
    });
  });

  it("terminate by EC2 id sends TerminateInstances in the instance's region and records it; extend then refuses", async () => {
    ec2Mock.on(TerminateInstancesCommand).resolves({});
    const regions: string[] = [];
    const done = await terminateInstance(
      {
        store: ctxStore,
        ec2For: (region) => {
          regions.push(region);
          return ec2For();
        },
        clock: systemClock,
      },
      "i-0bbbbbbbbbbbbbbb1",
    );
    expect(done).toMatchObject({ status: "terminated", reason: "terminated by user" });
    expect(regions).toEqual(["us-west-2"]);
    expect(ec2Mock.commandCalls(TerminateInstancesCommand)[0]?.args[0].input).toEqual({
      InstanceIds: ["i-0bbbbbbbbbbbbbbb1"],
    });
    await expect(
      extendInstance({ store: ctxStore, ec2For, clock: systemClock }, "i-0bbbbbbbbbbbbbbb1", 60_000),
    ).rejects.toThrow(/already terminated/);
  });

  it("connect runs aws ssm start-session, and names what is missing when the aws CLI or the plugin is not installed", async () => {
    const ran: string[][] = [];
    const ops = (have: string[]) => ({
      which: async (p: string) => have.includes(p),
      exec: async (c: string, a: readonly string[]) => {
        ran.push([c, ...a]);
        return 0;
      },
    });
    await expect(connectInstance(ctxStore, ops([]), `${sweepId}-i0`, {})).rejects.toThrow(
      /aws CLI is not installed/,
    );
    await expect(connectInstance(ctxStore, ops(["aws"]), `${sweepId}-i0`, {})).rejects.toThrow(
      /Session Manager plugin/,
    );
    const out = await connectInstance(ctxStore, ops(["aws", "session-manager-plugin"]), `${sweepId}-i0`, {
      profile: "lab",
    });
    expect(ran).toEqual([
      [
        "aws",
        "ssm",
        "start-session",
        "--target",
        "i-0aaaaaaaaaaaaaaa0",
        "--region",
        "us-west-2",
        "--profile",
        "lab",
      ],
    ]);
    expect(out.exitCode).toBe(0);
  });
});

describe("ami", () => {
  const arn = OUTPUTS.ImagePipelineArn;
  it("build starts the stack's pipeline with a client token", async () => {
    ibMock.on(StartImagePipelineExecutionCommand).resolves({ imageBuildVersionArn: `${arn}/1.0.0/1` });
    expect(await startAmiBuild(new ImagebuilderClient(creds), arn)).toBe(`${arn}/1.0.0/1`);
    const input = ibMock.commandCalls(StartImagePipelineExecutionCommand)[0]?.args[0].input;
    expect(input?.imagePipelineArn).toBe(arn);
    expect(input?.clientToken).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("list pages through the pipeline's images, newest first, with their AMIs", async () => {
    ibMock
      .on(ListImagePipelineImagesCommand)
      .resolvesOnce({
        imageSummaryList: [
          {
            arn: "a1",
            version: "1.0.0/1",
            state: { status: "AVAILABLE" },
            dateCreated: "2026-11-01T00:00:00Z",
            outputResources: { amis: [{ region: "us-east-1", image: "ami-1" }] },
          },
        ],
        nextToken: "n",
      })
      .resolvesOnce({
        imageSummaryList: [
          {
            arn: "a2",
            version: "1.0.0/2",
            state: { status: "BUILDING" },
            dateCreated: "2026-11-20T00:00:00Z",
          },
        ],
      });
    const images = await listAmis(new ImagebuilderClient(creds), arn);
    expect(images.map((i) => [i.version, i.state, i.amis])).toEqual([
      ["1.0.0/2", "BUILDING", []],
      ["1.0.0/1", "AVAILABLE", [{ region: "us-east-1", image: "ami-1" }]],
    ]);
    expect(ibMock.commandCalls(ListImagePipelineImagesCommand)[1]?.args[0].input).toEqual({
      imagePipelineArn: arn,
      nextToken: "n",
    });
  });
});

describe("deploy", () => {
  it("prints the exact cdk command, with the stack and region as context", () => {
    const plan = deployPlan({
      packageRoot: "/opt/spawn",
      stackName: "spawn",
      region: "eu-west-1",
      profile: "lab",
      launchRegions: ["us-west-2"],
    });
    expect(plan.display).toBe(
      "cd /opt/spawn && AWS_REGION=eu-west-1 npx cdk deploy --all -c spawn:stackName=spawn -c spawn:region=eu-west-1 -c spawn:launchRegions=us-west-2 --profile lab",
    );
    expect(plan).toMatchObject({ cwd: "/opt/spawn", command: "npx", env: { AWS_REGION: "eu-west-1" } });
  });

  it("an unbootstrapped region is exit 2 with the cdk bootstrap command", async () => {
    cfnMock.on(DescribeStacksCommand, { StackName: "CDKToolkit" }).rejects(noStack("CDKToolkit"));
    const error = await requireBootstrap(new CloudFormationClient(creds), {
      packageRoot: "/opt/spawn",
      region: "eu-west-1",
    }).catch((e) => e);
    expect(error).toBeInstanceOf(AbortError);
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.hint).toBe("bootstrap it once: cd /opt/spawn && AWS_REGION=eu-west-1 npx cdk bootstrap");
    cfnMock
      .on(DescribeStacksCommand, { StackName: "CDKToolkit" })
      .resolves(stackAnswer({}, "CREATE_COMPLETE"));
    await expect(
      requireBootstrap(new CloudFormationClient(creds), { packageRoot: "/opt/spawn", region: "eu-west-1" }),
    ).resolves.toBeUndefined();
  });

  it("uploads the bundled agent under its versioned key; without a build it says to run one", async () => {
    const root = join(dir, "pkg");
    await mkdir(join(root, "dist"), { recursive: true });
    await writeFile(join(root, "dist", "agent.js"), "// agent\n");
    const puts: Array<[string, string]> = [];
    const objectsStub = {
      putFile: async (key: string, file: string) => void puts.push([key, file]),
      putBytes: async () => {},
      getFile: async () => false,
      getBytes: async () => undefined,
      list: async () => [],
      exists: async () => false,
    };
    const keys = await uploadAgentArtifacts(objectsStub, root, "9.9.9");
    // The key the instances' bootstrap reads (one definition, providers/aws/launch-config.ts)
    expect(keys).toEqual([artifactKeys.agent("9.9.9")]);
    expect(puts).toEqual([[artifactKeys.agent("9.9.9"), join(root, "dist", "agent.js")]]);
    await expect(uploadAgentArtifacts(objectsStub, join(dir, "empty"), "9.9.9")).rejects.toThrow(
      expect.objectContaining({
        message: expect.stringMatching(/agent\.js is missing/),
        hint: "run `npm run build` first",
      }),
    );
  });
});

describe("credentials", () => {
  it("a command on the aws provider without credentials is exit 2 with the fix, not an internal error", async () => {
    cfnMock.on(DescribeStacksCommand).rejects(
      Object.assign(new Error("Could not load credentials from any providers"), {
        name: "CredentialsProviderError",
      }),
    );
    const error = await openAwsContextFor(
      { ...session(), target: { region: "us-east-1", profile: "lab" } },
      localPaths({ SPAWN_HOME: join(dir, "home3") }),
    ).catch((e) => e);
    expect(error).toBeInstanceOf(AbortError);
    expect(error.exitCode).toBe(ExitCode.usage);
    expect(error.message).toMatch(/^no usable AWS credentials for profile lab/);
    expect(error.hint).toBe(
      "run `aws configure --profile lab` or `aws sso login --profile lab`, then `spawn doctor --profile lab`",
    );
  });
});
