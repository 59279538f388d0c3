/**
 * Every CLI launch path on the aws provider gives each sweep that runs tasks its own instance role
 * before its record (ADR 0036, 0040): queues, pipeline stages (reading exactly their upstream
 * stages), and schedules (their policy files snapshotted at create). IAM, S3, STS, CloudFormation,
 * EventBridge and Scheduler through aws-sdk-client-mock; DynamoDB on dynalite.
 */
import { randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CloudFormationClient, DescribeStacksCommand } from "@aws-sdk/client-cloudformation";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteRoleCommand,
  IAMClient,
  PutRolePolicyCommand,
} from "@aws-sdk/client-iam";
import { HeadObjectCommand, PutObjectCommand, S3Client, S3ServiceException } from "@aws-sdk/client-s3";
import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import { GetCallerIdentityCommand, STSClient } from "@aws-sdk/client-sts";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SpecError } from "#core/spec-error.js";
import { SPAWN_VERSION } from "#providers/aws/stack.js";
import { EC2_TRUST_POLICY, SWEEP_POLICY_NAME, sweepRoleName } from "#providers/aws/sweep-role.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { localPaths } from "#providers/local/paths.js";
import { type DynamoEngine, startDynalite } from "../../test/helpers/dynamo.js";
import type { CliContext } from "../context.js";
import { type AwsSession, openAwsContextFor } from "./aws.js";
import { launchPipeline, planPipeline } from "./pipeline.js";
import { launchQueue, planQueueFile } from "./queue.js";
import { createSchedule } from "./schedule.js";

const cfn = mockClient(CloudFormationClient);
const s3 = mockClient(S3Client);
const eb = mockClient(EventBridgeClient);
const sts = mockClient(STSClient);
const iam = mockClient(IAMClient);
const scheduler = mockClient(SchedulerClient);

const PREFIX = `roles${randomUUID().slice(0, 6)}-`;
const ACCOUNT = "123456789012";
const OUTPUTS = {
  SpawnVersion: SPAWN_VERSION,
  TablePrefix: PREFIX,
  ArtifactsBucket: "spawn-artifacts-bkt",
  ResultsBucket: "spawn-results-bkt",
  EventBusName: "spawn-bus",
  OrchestratorFunctionName: "spawn-orchestrator",
  LaunchConfigParam: "/spawn/spawn/launch-config",
  ImagePipelineArn: `arn:aws:imagebuilder:us-east-1:${ACCOUNT}:image-pipeline/spawn-gpu`,
  ScheduleGroupName: "spawn-schedules",
  SchedulerHandlerArn: `arn:aws:lambda:us-east-1:${ACCOUNT}:function:spawn-scheduler`,
  SchedulerRoleArn: `arn:aws:iam::${ACCOUNT}:role/spawn-scheduler-invoke`,
  SchedulesDlqArn: `arn:aws:sqs:us-east-1:${ACCOUNT}:spawn-dlq`,
};
const TABLES = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/${PREFIX}`;
const EVAL_POLICY = {
  Version: "2012-10-17",
  Statement: {
    Effect: "Allow",
    Action: "sqs:SendMessage",
    Resource: `arn:aws:sqs:us-east-1:${ACCOUNT}:evals`,
  },
};

let dir: string;
let engine: DynamoEngine;
let ctx: CliContext;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-launch-roles-"));
  engine = await startDynalite();
  await ensureTables(engine.client, PREFIX);
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_DYNAMODB: engine.endpoint,
    AWS_ACCESS_KEY_ID: "test",
    AWS_SECRET_ACCESS_KEY: "test",
  });
  cfn.on(DescribeStacksCommand).resolves({
    Stacks: [
      {
        StackName: "spawn",
        StackStatus: "UPDATE_COMPLETE",
        CreationTime: new Date(),
        Outputs: Object.entries(OUTPUTS).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  });
  const session: AwsSession = {
    target: { region: "us-east-1" },
    stackName: "spawn",
    cfn: new CloudFormationClient({ region: "us-east-1" }),
  };
  ctx = await openAwsContextFor(session, localPaths({ SPAWN_HOME: join(dir, "home") }));
});

afterAll(async () => {
  ctx.close();
  await engine.close();
  await rm(dir, { recursive: true, force: true });
});

/** What was put in the results bucket, by key. */
const stored = new Map<string, string>();

beforeEach(() => {
  for (const m of [s3, eb, sts, iam, scheduler]) m.reset();
  stored.clear();
  s3.on(HeadObjectCommand).rejects(
    new S3ServiceException({ name: "NotFound", $fault: "client", $metadata: { httpStatusCode: 404 } }),
  );
  s3.on(PutObjectCommand).callsFake(async (input: { Key: string; Body: unknown }) => {
    if (typeof input.Body === "string" || input.Body instanceof Uint8Array)
      stored.set(input.Key, Buffer.from(input.Body).toString("utf8"));
    return {};
  });
  eb.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: "1" }] });
  sts.on(GetCallerIdentityCommand).resolves({ Account: ACCOUNT, Arn: `arn:aws:iam::${ACCOUNT}:user/me` });
  iam.onAnyCommand().resolves({});
  scheduler.on(CreateScheduleCommand).resolves({ ScheduleArn: "arn:aws:scheduler:::schedule/x" });
});

async function files(name: string, contents: Record<string, string>): Promise<string> {
  const root = join(dir, name);
  for (const [path, text] of Object.entries(contents)) {
    await mkdir(join(root, path, ".."), { recursive: true });
    await writeFile(join(root, path), text);
  }
  return root;
}

/** The role policy IAM was sent for a sweep, by statement id. */
function policyOf(sweepId: string): Map<string, Record<string, unknown>> {
  const put = iam
    .commandCalls(PutRolePolicyCommand)
    .map((c) => c.args[0].input)
    .find((input) => input.RoleName === sweepRoleName("spawn", sweepId));
  expect(put?.PolicyName).toBe(SWEEP_POLICY_NAME);
  const statements = JSON.parse(put?.PolicyDocument ?? "{}").Statement as Array<Record<string, unknown>>;
  return new Map(statements.map((st) => [st.Sid as string, st]));
}

describe("pipelines on aws", () => {
  it("gives every stage its own role before the records, and a stage reads exactly its upstream stage", async () => {
    // Given a two-stage pipeline: eval waits on train
    const root = await files("pipeline", {
      "pipeline.yaml": [
        "name: train-eval",
        "stages:",
        "  - name: train",
        "    sweep:",
        '      command: "python train.py --seed {{seed}}"',
        "      params: { grid: { seed: [1, 2] } }",
        "      resources: { gpus: 1, regions: [us-east-1] }",
        "  - name: eval",
        "    depends_on: [{ stage: train, type: n_to_n }]",
        "    sweep:",
        '      command: "python eval.py --seed {{seed}}"',
        "      params: { grid: { seed: [1, 2] } }",
        "      resources: { gpus: 1, regions: [us-east-1], iam: ['policy-file:eval-policy.json'] }",
        "",
      ].join("\n"),
      "eval-policy.json": JSON.stringify(EVAL_POLICY),
      "train.py": "print(1)\n",
    });
    const recordsAtCreateRole: number[] = [];
    iam.on(CreateRoleCommand).callsFake(async () => {
      recordsAtCreateRole.push((await ctx.store.listSweeps({ limit: 1000 })).length);
      return {};
    });
    const before = (await ctx.store.listSweeps({ limit: 1000 })).length;

    // When it is launched
    const pipeline = await launchPipeline(ctx, await planPipeline(join(root, "pipeline.yaml")));

    // Then each stage, and only the stages, got a role, all before any record was written
    const stages = pipeline.pipeline!;
    const [train, evalStage] = [stages[0]!.sweepId, stages[1]!.sweepId];
    expect(recordsAtCreateRole).toEqual([before, before]);
    expect(iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input)).toEqual(
      [train, evalStage].map((sweepId) => ({
        RoleName: sweepRoleName("spawn", sweepId),
        AssumeRolePolicyDocument: JSON.stringify(EC2_TRUST_POLICY),
        Description: `spawn spawn: the instances of sweep ${sweepId}`,
        Tags: [
          { Key: "spawn:sweep", Value: sweepId },
          { Key: "spawn:stack", Value: "spawn" },
        ],
      })),
    );
    expect(iam.commandCalls(CreateInstanceProfileCommand)).toHaveLength(2);
    expect(iam.commandCalls(AddRoleToInstanceProfileCommand)).toHaveLength(2);
    // ...the first stage reads no other sweep...
    expect([...policyOf(train).keys()].filter((sid) => sid.startsWith("ReadUpstream"))).toEqual([]);
    // ...and eval reads exactly train's items and kept outputs, read only, beside its own grant
    const evalPolicy = policyOf(evalStage);
    expect(evalPolicy.get("ReadUpstreamSweeps")).toEqual({
      Sid: "ReadUpstreamSweeps",
      Effect: "Allow",
      Action: "dynamodb:GetItem",
      Resource: `${TABLES}sweeps`,
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [train] } },
    });
    expect(evalPolicy.get("ReadUpstreamTasks")).toEqual({
      Sid: "ReadUpstreamTasks",
      Effect: "Allow",
      Action: ["dynamodb:GetItem", "dynamodb:Query"],
      Resource: `${TABLES}tasks`,
      Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${train}#*`] } },
    });
    expect(evalPolicy.get("ReadUpstreamOutputs")).toEqual({
      Sid: "ReadUpstreamOutputs",
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: [`arn:aws:s3:::spawn-results-bkt/outputs/${train}/*`],
    });
    expect(evalPolicy.get("ClaimAndReportOwnTasks")?.Condition).toEqual({
      "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${evalStage}#*`] },
    });
    expect(evalPolicy.get("File0x0")).toEqual({ ...EVAL_POLICY.Statement, Sid: "File0x0" });
    // ...and the orchestrator heard of both stages and the pipeline, in one trace
    const kicks = eb
      .commandCalls(PutEventsCommand)
      .flatMap((c) => c.args[0].input.Entries ?? [])
      .map((e) => JSON.parse(e.Detail ?? "{}"));
    expect(kicks.map((k) => k.sweepId)).toEqual([train, evalStage, pipeline.sweepId]);
    expect(new Set(kicks.map((k) => k.traceparent))).toEqual(new Set([pipeline.traceparent]));
  });

  it("takes back the roles already made when a later stage's role is refused, and writes nothing", async () => {
    const root = await files("pipeline-refused", {
      "pipeline.yaml": [
        "name: refused",
        "stages:",
        "  - { name: a, sweep: { command: 'true', resources: { gpus: 1, regions: [us-east-1] } } }",
        "  - { name: b, depends_on: [a], sweep: { command: 'true', resources: { gpus: 1, regions: [us-east-1] } } }",
        "",
      ].join("\n"),
    });
    let creates = 0;
    iam.on(CreateRoleCommand).callsFake(async () => {
      if (++creates === 2) throw Object.assign(new Error("not authorized"), { name: "AccessDenied" });
      return {};
    });
    const before = (await ctx.store.listSweeps({ limit: 1000 })).length;

    await expect(launchPipeline(ctx, await planPipeline(join(root, "pipeline.yaml")))).rejects.toThrow(
      "not authorized",
    );

    const [first] = iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input.RoleName);
    expect(iam.commandCalls(DeleteRoleCommand).map((c) => c.args[0].input)).toEqual([{ RoleName: first }]);
    expect((await ctx.store.listSweeps({ limit: 1000 })).length).toBe(before);
    expect(eb.commandCalls(PutEventsCommand)).toHaveLength(0);
  });
});

describe("queues on aws", () => {
  it("give the queue's sweep its own role, with the queue's own grants, before its record", async () => {
    const root = await files("queue", {
      "queue.yaml": [
        "name: nightly-jobs",
        "resources: { gpus: 1, regions: [us-east-1], iam: ['s3:read:datasets/imagenet'] }",
        "jobs:",
        "  - { id: fetch, command: ./fetch.sh }",
        "  - { id: train, command: ./train.sh, depends_on: [fetch] }",
        "",
      ].join("\n"),
    });
    let recordAtCreateRole: unknown = "not asked";
    iam.on(CreateRoleCommand).callsFake(async (input: { Tags: Array<{ Value: string }> }) => {
      recordAtCreateRole = await ctx.store.getSweep(input.Tags[0]!.Value);
      return {};
    });

    const queue = await launchQueue(ctx, await planQueueFile(join(root, "queue.yaml")));

    expect(recordAtCreateRole).toBeUndefined();
    expect(iam.commandCalls(CreateRoleCommand).map((c) => c.args[0].input.RoleName)).toEqual([
      sweepRoleName("spawn", queue.sweepId),
    ]);
    const policy = policyOf(queue.sweepId);
    expect(policy.get("ClaimAndReportOwnTasks")?.Condition).toEqual({
      "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${queue.sweepId}#*`] },
    });
    expect(policy.get("S3Read0")?.Resource).toBe("arn:aws:s3:::datasets/imagenet/*");
    expect(await ctx.store.getSweep(queue.sweepId)).toMatchObject({ status: "running", queue: {} });
  });

  it("read a queue's policy files at plan time: a broken one is a spec error and nothing is sent", async () => {
    const root = await files("queue-bad-policy", {
      "queue.yaml": [
        "name: bad-policy",
        "resources: { gpus: 1, iam: ['policy-file:missing.json'] }",
        "jobs: [{ id: a, command: 'true' }]",
        "",
      ].join("\n"),
    });
    const error = await planQueueFile(join(root, "queue.yaml")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).toMatch(/resources\.iam\[0\]: policy file .*missing\.json/);
    expect(iam.calls()).toHaveLength(0);
  });
});

describe("schedules on aws", () => {
  it("snapshot the spec's policy files next to the stored spec, for every firing's role", async () => {
    const root = await files("schedule", {
      "spec.yaml":
        "name: nightly\ncommand: python eval.py\nresources: { gpus: 1, regions: [us-east-1], iam: ['policy-file:policies/eval.json'] }\n",
      "policies/eval.json": JSON.stringify(EVAL_POLICY),
    });

    const schedule = await createSchedule(ctx, join(root, "spec.yaml"), {
      cron: "0 2 * * *",
      timezone: "UTC",
    });

    expect(schedule.policyFilesKey).toBe(`schedules/${schedule.scheduleId}/policy-files.json`);
    expect(JSON.parse(stored.get(schedule.policyFilesKey!) ?? "null")).toEqual({
      "policies/eval.json": EVAL_POLICY,
    });
    expect(stored.has(schedule.specKey)).toBe(true);
    expect(await ctx.schedules.getSchedule(schedule.scheduleId)).toMatchObject({
      policyFilesKey: schedule.policyFilesKey,
    });
    // Checked, not made: the role is the firing's
    expect(iam.calls()).toHaveLength(0);
  });

  it("refuse at create a spec whose sweep role would be over IAM's limit, creating nothing", async () => {
    const grants = Array.from({ length: 30 }, (_, i) => `'secrets:read:team/project-${i}/api-token-x'`);
    const root = await files("schedule-too-big", {
      "spec.yaml": `name: too-big\ncommand: 'true'\nresources: { gpus: 1, regions: [us-east-1, us-west-2], iam: [${grants.join(", ")}] }\n`,
    });

    const error = await createSchedule(ctx, join(root, "spec.yaml"), { rate: "6h", timezone: "UTC" }).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).toMatch(/over IAM's 10240/);
    expect([...stored.keys()].filter((k) => k.startsWith("schedules/"))).toEqual([]);
    expect(scheduler.commandCalls(CreateScheduleCommand)).toHaveLength(0);
    expect(iam.calls()).toHaveLength(0);
  });
});
