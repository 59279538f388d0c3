/**
 * The per-sweep role against mocked IAM and EC2 clients (aws-sdk-client-mock): exactly what is
 * sent to create it, to launch with it, to wait for it to propagate, and to delete it.
 */
import {
  CreateFleetCommand,
  DescribeAvailabilityZonesCommand,
  EC2Client,
  TerminateInstancesCommand,
} from "@aws-sdk/client-ec2";
import {
  AddRoleToInstanceProfileCommand,
  CreateInstanceProfileCommand,
  CreateRoleCommand,
  DeleteInstanceProfileCommand,
  DeleteRoleCommand,
  DeleteRolePolicyCommand,
  GetInstanceProfileCommand,
  IAMClient,
  PutRolePolicyCommand,
  RemoveRoleFromInstanceProfileCommand,
} from "@aws-sdk/client-iam";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, test } from "vitest";
import { taskPolicyDocument } from "#core/iam-policy.js";
import type { SweepRecord } from "#core/model.js";
import type { Offer } from "#core/placement.js";
import { parseSpec } from "#core/spec.js";
import { SpecError } from "#core/spec-error.js";
import { a10gOffer, SimClock } from "../../test/helpers/sim-ec2.js";
import { clientToken, Ec2Compute, PROFILE_PROPAGATION_WAITS_MS } from "./ec2-compute.js";
import { Ec2Throttle } from "./ec2-throttle.js";
import {
  createSweepRole,
  EC2_TRUST_POLICY,
  SweepProfiles,
  type SweepRoleRequest,
  sweepRoleName,
  sweepRolePolicy,
} from "./sweep-role.js";

const iam = mockClient(IAMClient);
const ec2 = mockClient(EC2Client);
const credentials = { accessKeyId: "x", secretAccessKey: "y" };
const iamClient = new IAMClient({ region: "us-east-1", credentials });
const SWEEP = "train-20260101-abcd";
const ROLE = sweepRoleName("spawn-prod", SWEEP);
/** An IAM error as the SDK raises it: its `name` is the exception shape's (`NoSuchEntityException`). */
const NAMED = (name: string) => Object.assign(new Error(`${name} here`), { name });

function request(iamGrants: string[], policyFiles: Record<string, unknown> = {}): SweepRoleRequest {
  const spec = parseSpec({
    name: "train",
    command: "true",
    resources: { gpus: 1, regions: ["us-east-1", "us-west-2"], iam: iamGrants },
  });
  return {
    stack: "spawn-prod",
    sweepId: SWEEP,
    account: "123456789012",
    partition: "aws",
    homeRegion: "us-east-1",
    tablePrefix: "spawn-prod-",
    artifactsBucket: "spawn-prod-artifacts",
    resultsBucket: "spawn-prod-results",
    eventBusName: "spawn-prod",
    bundleKey: "bundles/abc123.tar.gz",
    spec,
    policyFiles,
  };
}

beforeEach(() => {
  iam.reset();
  ec2.reset();
});

describe("sweepRoleName", () => {
  test("is the stack, -sweep- and 16 hex characters of the sweep id's hash, whatever the sweep is called", () => {
    expect(ROLE).toMatch(/^spawn-prod-sweep-[0-9a-f]{16}$/);
    expect(sweepRoleName("spawn-prod", `${"x".repeat(200)}`)).toHaveLength("spawn-prod-sweep-".length + 16);
    expect(sweepRoleName("spawn-prod", "other")).not.toBe(ROLE);
  });

  test("refuses a stack name that would make it longer than IAM's 64 characters", () => {
    expect(() => sweepRoleName("s".repeat(42), SWEEP)).toThrow(/at most 41/);
    expect(sweepRoleName("s".repeat(41), SWEEP)).toHaveLength(64);
  });
});

describe("createSweepRole", () => {
  test("creates the role for EC2, its confined policy with the task grants, and its instance profile", async () => {
    // Given IAM accepts every call
    iam.on(CreateRoleCommand).resolves({});
    iam.on(PutRolePolicyCommand).resolves({});
    iam.on(CreateInstanceProfileCommand).resolves({});
    iam.on(AddRoleToInstanceProfileCommand).resolves({});

    // When the sweep's role is created with one read grant
    const arn = await createSweepRole(iamClient, request(["s3:read:my-data/imagenet"]));

    // Then the role trusts EC2 only, tagged with the sweep and the stack
    const tags = [
      { Key: "spawn:sweep", Value: SWEEP },
      { Key: "spawn:stack", Value: "spawn-prod" },
    ];
    expect(arn).toBe(`arn:aws:iam::123456789012:instance-profile/${ROLE}`);
    const role = iam.commandCalls(CreateRoleCommand)[0]?.args[0].input;
    expect(role).toEqual({
      RoleName: ROLE,
      AssumeRolePolicyDocument: JSON.stringify(EC2_TRUST_POLICY),
      Description: `spawn spawn-prod: the instances of sweep ${SWEEP}`,
      Tags: tags,
    });
    expect(JSON.parse(role?.AssumeRolePolicyDocument ?? "")).toEqual({
      Version: "2012-10-17",
      Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
    });
    // And its one inline policy confines the agent to this sweep's items and objects
    const put = iam.commandCalls(PutRolePolicyCommand)[0]?.args[0].input;
    expect(put?.RoleName).toBe(ROLE);
    expect(put?.PolicyName).toBe("sweep");
    const statements = JSON.parse(put?.PolicyDocument ?? "").Statement as Array<Record<string, unknown>>;
    const sid = (name: string) => statements.find((s) => s.Sid === name);
    const tables = "arn:aws:dynamodb:us-east-1:123456789012:table/spawn-prod-";
    expect(sid("ClaimAndReportOwnTasks")).toEqual({
      Sid: "ClaimAndReportOwnTasks",
      Effect: "Allow",
      Action: ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"],
      Resource: [`${tables}tasks`, `${tables}tasks/index/pending`, `${tables}tasks/index/running`],
      Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${SWEEP}#*`] } },
    });
    expect(sid("HeartbeatOwnInstances")).toMatchObject({
      Resource: `${tables}instances`,
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [SWEEP] } },
    });
    expect(sid("ReadOwnSweep")).toMatchObject({
      Action: "dynamodb:GetItem",
      Resource: `${tables}sweeps`,
      Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [SWEEP] } },
    });
    expect(sid("WriteOwnResults")?.Resource).toEqual([
      `arn:aws:s3:::spawn-prod-results/logs/${SWEEP}/*`,
      `arn:aws:s3:::spawn-prod-results/outputs/${SWEEP}/*`,
      `arn:aws:s3:::spawn-prod-results/checkpoints/${SWEEP}/*`,
    ]);
    expect(sid("ReadAgentAndBundle")?.Resource).toEqual([
      "arn:aws:s3:::spawn-prod-artifacts/agent/*",
      "arn:aws:s3:::spawn-prod-artifacts/bundles/abc123.tar.gz",
    ]);
    expect(sid("ListOwnCheckpoints")?.Condition).toEqual({
      StringLike: { "s3:prefix": [`checkpoints/${SWEEP}/*`, `outputs/${SWEEP}/*`] },
    });
    // And the task grants follow, rendered by core/iam-policy.ts
    expect(sid("S3Read0")).toEqual({
      Sid: "S3Read0",
      Effect: "Allow",
      Action: "s3:GetObject",
      Resource: "arn:aws:s3:::my-data/imagenet/*",
    });
    expect(sid("S3List0")?.Condition).toEqual({ StringLike: { "s3:prefix": ["imagenet/*"] } });
    // And the instance profile of the same name holds the role
    expect(iam.commandCalls(CreateInstanceProfileCommand)[0]?.args[0].input).toEqual({
      InstanceProfileName: ROLE,
      Tags: tags,
    });
    expect(iam.commandCalls(AddRoleToInstanceProfileCommand)[0]?.args[0].input).toEqual({
      InstanceProfileName: ROLE,
      RoleName: ROLE,
    });
  });

  test("with the stack's dns-updater, the role may invoke it and nothing else of Lambda", () => {
    const arn = "arn:aws:lambda:us-east-1:123456789012:function:spawn-prod-DnsFn";
    const invokes = (doc: ReturnType<typeof sweepRolePolicy>) =>
      doc.Statement.filter((st) => JSON.stringify(st.Action).includes("lambda:"));
    expect(invokes(sweepRolePolicy({ ...request([]), dnsUpdaterArn: arn }))).toEqual([
      { Sid: "RegisterHostname", Effect: "Allow", Action: "lambda:InvokeFunction", Resource: arn },
    ]);
    expect(invokes(sweepRolePolicy(request([])))).toEqual([]);
  });

  test("a pipeline stage may read its upstream stages' items and outputs, read only, and no other sweep's", () => {
    const upstream = "prep-20260101-ef01";
    const doc = sweepRolePolicy({ ...request([]), upstreamSweepIds: [upstream] });
    const tables = "arn:aws:dynamodb:us-east-1:123456789012:table/spawn-prod-";
    expect(doc.Statement.filter((st) => st.Sid?.startsWith("ReadUpstream"))).toEqual([
      {
        Sid: "ReadUpstreamSweeps",
        Effect: "Allow",
        Action: "dynamodb:GetItem",
        Resource: `${tables}sweeps`,
        Condition: { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": [upstream] } },
      },
      {
        Sid: "ReadUpstreamTasks",
        Effect: "Allow",
        Action: ["dynamodb:GetItem", "dynamodb:Query"],
        Resource: `${tables}tasks`,
        Condition: { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": [`${upstream}#*`] } },
      },
      {
        Sid: "ReadUpstreamOutputs",
        Effect: "Allow",
        Action: "s3:GetObject",
        Resource: [`arn:aws:s3:::spawn-prod-results/outputs/${upstream}/*`],
      },
    ]);
    // The stage's own statements are those of any sweep; a sweep with no inputs reads no other.
    const plain = sweepRolePolicy(request([]));
    expect(doc.Statement.filter((st) => !st.Sid?.startsWith("ReadUpstream"))).toEqual(plain.Statement);
    expect(JSON.stringify(plain)).not.toContain("Upstream");
  });

  test("is idempotent: a retried launch finds the role and profile and rewrites the policy", async () => {
    iam.on(CreateRoleCommand).rejects(NAMED("EntityAlreadyExistsException"));
    iam.on(PutRolePolicyCommand).resolves({});
    iam.on(CreateInstanceProfileCommand).rejects(NAMED("EntityAlreadyExistsException"));
    iam.on(AddRoleToInstanceProfileCommand).rejects(NAMED("LimitExceededException"));

    await expect(createSweepRole(iamClient, request([]))).resolves.toMatch(/instance-profile\//);
    expect(iam.commandCalls(PutRolePolicyCommand)).toHaveLength(1);
  });

  test("a bad grant sends nothing to IAM", async () => {
    // A policy file with a Principal (a resource policy, not an identity policy) is refused.
    const file = {
      Version: "2012-10-17",
      Statement: { Effect: "Allow", Principal: "*", Action: "s3:GetObject", Resource: "*" },
    };
    const error = await createSweepRole(
      iamClient,
      request(["policy-file:extra.json"], { "extra.json": file }),
    ).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).toMatch(/resources\.iam\[0\]/);
    expect(iam.calls()).toHaveLength(0);
  });

  test("a policy over IAM's limit with the agent's statements is refused before anything is sent", async () => {
    // Given 30 secret grants, which fit IAM's limit alone
    const grants = Array.from({ length: 30 }, (_, i) => `secrets:read:team/project-${i}/api-token-x`);
    const alone = taskPolicyDocument(grants, {
      account: "123456789012",
      regions: ["us-east-1", "us-west-2"],
    });
    expect(JSON.stringify(alone).length).toBeLessThan(10_240);
    // When the agent's statements join them, the document is too large
    const error = await createSweepRole(iamClient, request(grants)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpecError);
    expect((error as Error).message).toMatch(/over IAM's 10240/);
    expect(iam.calls()).toHaveLength(0);
  });

  test("a failure after the role exists deletes what was made", async () => {
    iam.on(CreateRoleCommand).resolves({});
    iam.on(PutRolePolicyCommand).resolves({});
    iam.on(CreateInstanceProfileCommand).rejects(NAMED("LimitExceededException"));
    iam.on(RemoveRoleFromInstanceProfileCommand).rejects(NAMED("NoSuchEntityException"));
    iam.on(DeleteInstanceProfileCommand).rejects(NAMED("NoSuchEntityException"));
    iam.on(DeleteRolePolicyCommand).resolves({});
    iam.on(DeleteRoleCommand).resolves({});

    await expect(createSweepRole(iamClient, request([]))).rejects.toThrow(/LimitExceeded/);
    expect(iam.commandCalls(DeleteRolePolicyCommand)[0]?.args[0].input).toEqual({
      RoleName: ROLE,
      PolicyName: "sweep",
    });
    expect(iam.commandCalls(DeleteRoleCommand)[0]?.args[0].input).toEqual({ RoleName: ROLE });
  });
});

describe("requests with no key never reach the stack's tables (ADR 0036)", () => {
  // `ForAllValues` holds for a request that carries no key at all, so every action on the stack's
  // tables that the LeadingKeys statements allow must carry one, and the keyless ones are denied.
  const KEYED = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"];
  const list = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  /** IAM's ARN matching: `*` is any run of characters, `?` any one. */
  const matches = (pattern: string, arn: string) => {
    const literal = pattern.replace(/[.+^${}()|[\]\\]/g, "\\$&");
    return new RegExp(`^${literal.replace(/\*/g, ".*").replace(/\?/g, ".")}$`).test(arn);
  };
  const ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/";
  const stackTables = [
    "sweeps",
    "tasks",
    "tasks/index/pending",
    "instances",
    "schedules",
    "alerts",
    "teams",
  ].map((t) => `${ARN}spawn-prod-${t}`);
  // A stage with an input and DynamoDB grants of its own: every statement kind at once.
  const doc = sweepRolePolicy({
    ...request(["dynamodb:read:experiments", "dynamodb:write:experiments"]),
    upstreamSweepIds: ["prep-20260101-ef01"],
  });

  test("every allowed action on a stack table is keyed, under a LeadingKeys condition", () => {
    const onStack = doc.Statement.filter(
      (st) => st.Effect === "Allow" && list(st.Resource).some((r) => r.startsWith(`${ARN}spawn-prod-`)),
    );
    expect(onStack.length).toBeGreaterThan(0);
    for (const st of onStack) {
      expect(list(st.Action).every((a) => KEYED.includes(a))).toBe(true);
      const condition = Object.entries(st.Condition ?? {});
      expect(condition).toHaveLength(1);
      expect(condition[0]![0]).toMatch(/^ForAllValues:String(Equals|Like)$/);
      expect(Object.keys(condition[0]![1])).toEqual(["dynamodb:LeadingKeys"]);
    }
  });

  test("Scan, BatchWriteItem, PartiQL and DeleteItem are denied on every stack table and index", () => {
    const denies = doc.Statement.filter((st) => st.Effect === "Deny");
    for (const action of [
      "dynamodb:Scan",
      "dynamodb:BatchWriteItem",
      "dynamodb:PartiQLSelect",
      "dynamodb:PartiQLUpdate",
      "dynamodb:DeleteItem",
    ]) {
      for (const table of stackTables) {
        const denied = denies.some(
          (st) =>
            !st.Condition &&
            list(st.Action).some((a) => matches(a, action)) &&
            list(st.Resource).some((r) => matches(r, table)),
        );
        expect({ action, table, denied }).toEqual({ action, table, denied: true });
      }
    }
  });

  test("the deny leaves the task's own grants on its own tables alone", () => {
    const deniedResources = doc.Statement.filter((st) => st.Effect === "Deny").flatMap((st) =>
      list(st.Resource),
    );
    expect(deniedResources.some((r) => matches(r, `${ARN}experiments`))).toBe(false);
    const grant = doc.Statement.find((st) => st.Sid === "DynamoDBRead0");
    expect(list(grant?.Action)).toContain("dynamodb:Scan");
  });
});

describe("SweepProfiles: launch with the sweep's profile, then delete it", () => {
  const NOW = Date.UTC(2026, 0, 1);
  const offers: Offer[] = [a10gOffer("us-east-1", "use1-az1", "g5.xlarge", "spot", 0.4)];
  const sweep: SweepRecord = {
    sweepId: SWEEP,
    name: "train",
    owner: "me",
    provider: "aws",
    status: "running",
    active: true,
    spec: parseSpec({ name: "train", command: "true", resources: { gpus: 1, regions: ["us-east-1"] } }),
    taskCount: 1,
    shardCount: 1,
    launchSeq: 0,
    createdAt: NOW,
    updatedAt: NOW,
  };
  const PROFILE_ARN = `arn:aws:iam::123456789012:instance-profile/${ROLE}`;
  const sleeps: number[] = [];
  const ec2Client = new EC2Client({ region: "us-east-1", credentials });

  function compute(profiles = new SweepProfiles(iamClient, "spawn-prod")) {
    const clock = new SimClock(NOW);
    return new Ec2Compute({
      client: () => ec2Client,
      offersFor: () => offers,
      launchConfig: async () => ({
        launchTemplateId: "lt-0123456789abcdef0",
        launchTemplateVersion: "7",
        subnets: [{ subnetId: "subnet-0aaa1", az: "us-east-1a" }],
      }),
      stack: "spawn-prod",
      sweepProfiles: profiles,
      throttle: new Ec2Throttle({
        clock,
        sleep: async (ms) => {
          sleeps.push(ms);
          clock.advance(ms);
        },
        random: () => 0.5,
      }),
    });
  }
  const launch = (c: Ec2Compute) =>
    c.launch({ sweep, instanceIds: [`${SWEEP}-i0`], deadline: NOW + 3_600_000 });
  const launched = { Instances: [{ InstanceIds: ["i-0a"], Lifecycle: "spot" as const }] };
  const notYet = {
    name: "InvalidParameterValue",
    message: `Value (${PROFILE_ARN}) for parameter iamInstanceProfile.arn is invalid. Invalid IAM Instance Profile ARN`,
  };

  beforeEach(() => {
    sleeps.length = 0;
    ec2.on(DescribeAvailabilityZonesCommand).resolves({
      AvailabilityZones: [{ ZoneName: "us-east-1a", ZoneId: "use1-az1" }],
    });
  });

  test("the fleet's overrides carry the sweep's instance profile", async () => {
    iam.on(GetInstanceProfileCommand).resolves({
      InstanceProfile: {
        Arn: PROFILE_ARN,
        InstanceProfileName: ROLE,
        InstanceProfileId: "AIPA",
        Path: "/",
        Roles: [],
        CreateDate: new Date(NOW),
      },
    });
    ec2.on(CreateFleetCommand).resolves(launched);

    const [result] = await launch(compute());

    expect(result?.providerRef).toBe("i-0a");
    expect(iam.commandCalls(GetInstanceProfileCommand)[0]?.args[0].input).toEqual({
      InstanceProfileName: ROLE,
    });
    const overrides =
      ec2.commandCalls(CreateFleetCommand)[0]?.args[0].input.LaunchTemplateConfigs?.[0]?.Overrides;
    expect(overrides).toEqual([
      { InstanceType: "g5.xlarge", SubnetId: "subnet-0aaa1", IamInstanceProfile: { Arn: PROFILE_ARN } },
    ]);
  });

  test("a sweep without its own profile launches with the template's (no override)", async () => {
    iam.on(GetInstanceProfileCommand).rejects(NAMED("NoSuchEntityException"));
    ec2.on(CreateFleetCommand).resolves(launched);

    await launch(compute());

    const overrides =
      ec2.commandCalls(CreateFleetCommand)[0]?.args[0].input.LaunchTemplateConfigs?.[0]?.Overrides;
    expect(overrides).toEqual([{ InstanceType: "g5.xlarge", SubnetId: "subnet-0aaa1" }]);
  });

  test("a failed profile lookup launches nothing (never the shared profile instead)", async () => {
    iam.on(GetInstanceProfileCommand).rejects(NAMED("ServiceFailure"));

    const results = await launch(compute());

    expect(results).toEqual([
      { instanceId: `${SWEEP}-i0`, error: expect.stringMatching(/instance profile/) },
    ]);
    expect(ec2.commandCalls(CreateFleetCommand)).toHaveLength(0);
  });

  test("retries with backoff and a new ClientToken while EC2 does not know the new profile", async () => {
    iam.on(GetInstanceProfileCommand).resolves({ InstanceProfile: { Arn: PROFILE_ARN } as never });
    // Given EC2 refuses the profile twice (once thrown, once as the fleet's error), then launches
    ec2
      .on(CreateFleetCommand)
      .rejectsOnce(Object.assign(new Error(notYet.message), { name: notYet.name }))
      .resolvesOnce({ Errors: [{ ErrorCode: notYet.name, ErrorMessage: notYet.message }] })
      .resolves(launched);

    const [result] = await launch(compute());

    expect(result?.providerRef).toBe("i-0a");
    const tokens = ec2.commandCalls(CreateFleetCommand).map((c) => c.args[0].input.ClientToken);
    const token = clientToken("us-east-1", "spot", [`${SWEEP}-i0`]);
    expect(tokens).toEqual([token, `${token}-p1`, `${token}-p2`]);
    expect(sleeps).toEqual([2_000, 4_000]);
  });

  test("gives up after 30 s of waiting and leaves the launch to the next pass", async () => {
    iam.on(GetInstanceProfileCommand).resolves({ InstanceProfile: { Arn: PROFILE_ARN } as never });
    ec2.on(CreateFleetCommand).rejects(Object.assign(new Error(notYet.message), { name: notYet.name }));

    const [result] = await launch(compute());

    expect(result?.error).toMatch(/instance profile is not usable yet/);
    expect(ec2.commandCalls(CreateFleetCommand)).toHaveLength(PROFILE_PROPAGATION_WAITS_MS.length + 1);
    expect(sleeps.reduce((a, b) => a + b, 0)).toBe(30_000);
    expect(ec2.commandCalls(TerminateInstancesCommand)).toHaveLength(0);
  });

  test("release deletes the profile, the policy and the role in order; NoSuchEntity is success", async () => {
    iam.on(RemoveRoleFromInstanceProfileCommand).resolves({});
    iam.on(DeleteInstanceProfileCommand).rejects(NAMED("NoSuchEntityException"));
    iam.on(DeleteRolePolicyCommand).resolves({});
    iam.on(DeleteRoleCommand).rejects(NAMED("NoSuchEntityException"));

    const held = await compute().release(sweep, []);

    expect(held).toBeUndefined();
    expect(iam.calls().map((c) => [c.args[0].constructor.name, c.args[0].input])).toEqual([
      ["RemoveRoleFromInstanceProfileCommand", { InstanceProfileName: ROLE, RoleName: ROLE }],
      ["DeleteInstanceProfileCommand", { InstanceProfileName: ROLE }],
      ["DeleteRolePolicyCommand", { RoleName: ROLE, PolicyName: "sweep" }],
      ["DeleteRoleCommand", { RoleName: ROLE }],
    ]);
  });

  test("a failed delete is reported to reconcile (it asks again on the next pass)", async () => {
    iam.on(RemoveRoleFromInstanceProfileCommand).rejects(NAMED("ServiceFailure"));

    await expect(compute().release(sweep, [])).rejects.toThrow(/ServiceFailure/);
  });
});
