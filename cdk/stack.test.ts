import { Match } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { AGENT_SOURCE, ORCHESTRATOR_SOURCE, SWEEP_SUBMITTED } from "#providers/aws/events.js";
import {
  DLAMI_PARAMETER,
  launchConfigParameterName,
  parseLaunchConfig,
} from "#providers/aws/launch-config.js";
import { StackOutputs } from "#providers/aws/stack.js";
import { INDEX, TTL_ATTRIBUTE, tableDefinitions, tableNames } from "#providers/dynamodb/tables.js";
import { LIFECYCLE } from "./lib/data.js";
import { EC2_EVENT_PATTERN } from "./lib/orchestrator.js";
import { evaluate, HOME, HOME_AZS, LAUNCH_REGION, type Synthesized, synthesize } from "./test/fixtures.js";

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };
type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: Record<string, Record<string, unknown>>;
};

let s: Synthesized;
beforeAll(() => {
  s = synthesize();
});

const resources = (type: string, which: "home" | "region" = "home") =>
  Object.entries(
    (which === "home" ? s.homeTemplate : s.regionTemplate).findResources(type) as Record<string, Resource>,
  );
const first = (found: [string, Resource][]) => {
  expect(found).toHaveLength(1);
  return found[0]![1];
};
const actions = (st: Statement) => (Array.isArray(st.Action) ? st.Action : [st.Action]);

/** The statements of the inline policies of the role whose logical id starts with `prefix`. */
function roleStatements(prefix: string): Statement[] {
  const roles = resources("AWS::IAM::Role").filter(([id]) => id.startsWith(prefix));
  expect(roles).toHaveLength(1);
  const policies = (roles[0]![1].Properties.Policies ?? []) as {
    PolicyDocument: { Statement: Statement[] };
  }[];
  return policies.flatMap((p) => p.PolicyDocument.Statement);
}

describe("DynamoDB tables", () => {
  const defs = tableDefinitions("spawn-");

  it("creates exactly the tables providers/dynamodb/tables.ts defines, keys and indexes included", () => {
    s.homeTemplate.resourceCountIs("AWS::DynamoDB::Table", defs.length);
    for (const def of defs) {
      s.homeTemplate.hasResourceProperties("AWS::DynamoDB::Table", {
        TableName: def.TableName,
        KeySchema: def.KeySchema,
        AttributeDefinitions: Match.arrayWith(def.AttributeDefinitions!.map((a) => Match.objectEquals(a))),
        ...(def.GlobalSecondaryIndexes
          ? {
              GlobalSecondaryIndexes: def.GlobalSecondaryIndexes.map((g) =>
                Match.objectEquals({
                  IndexName: g.IndexName,
                  KeySchema: g.KeySchema,
                  Projection: g.Projection,
                }),
              ),
            }
          : {}),
      });
    }
  });

  it("bills on demand with point-in-time recovery and encryption, and outlives the stack", () => {
    for (const [, table] of resources("AWS::DynamoDB::Table")) {
      expect(table.Properties.BillingMode).toBe("PAY_PER_REQUEST");
      expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(table.Properties.SSESpecification).toEqual({ SSEEnabled: true });
      expect(table.DeletionPolicy).toBe("Retain");
    }
  });

  it("expires items by TTL on the two history tables only", () => {
    const names = tableNames("spawn-");
    const withTtl = resources("AWS::DynamoDB::Table")
      .filter(([, t]) => t.Properties.TimeToLiveSpecification)
      .map(([, t]) => t.Properties);
    expect(withTtl.map((t) => t.TableName).sort()).toEqual(
      [names.alertHistory, names.scheduleHistory].sort(),
    );
    for (const t of withTtl) {
      expect(t.TimeToLiveSpecification).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
    }
  });

  it("prefixes table names with the stack name", () => {
    const other = synthesize({ "spawn:stackName": "lab" });
    other.homeTemplate.hasResourceProperties("AWS::DynamoDB::Table", { TableName: "lab-tasks" });
    other.homeTemplate.hasOutput("TablePrefix", { Value: "lab-" });
  });
});

describe("S3 buckets", () => {
  const buckets = () => resources("AWS::S3::Bucket");
  const byName = (kind: string) => {
    const found = buckets().find(([, b]) =>
      JSON.stringify(b.Properties.BucketName).includes(`spawn-${kind}-`),
    );
    expect(found, kind).toBeDefined();
    return found!;
  };

  it("blocks public access, encrypts, enforces owner-only objects and survives the stack", () => {
    // artifacts, results, staging, access logs, and the dashboard's site (cdk/lib/dashboard.ts).
    expect(buckets()).toHaveLength(5);
    for (const [, bucket] of buckets()) {
      expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(bucket.Properties.BucketEncryption).toEqual({
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      });
      expect(bucket.DeletionPolicy).toBe("Retain");
    }
  });

  it("denies every request that is not TLS, on every bucket", () => {
    const policies = resources("AWS::S3::BucketPolicy");
    const buckedIds = buckets().map(([id]) => id);
    const covered = policies
      .filter(([, p]) =>
        (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.some(
          (st) =>
            st.Effect === "Deny" &&
            actions(st).includes("s3:*") &&
            JSON.stringify(st.Condition) === JSON.stringify({ Bool: { "aws:SecureTransport": "false" } }),
        ),
      )
      .map(([, p]) => (p.Properties.Bucket as { Ref: string }).Ref);
    expect(covered.sort()).toEqual(buckedIds.sort());
  });

  it("has lifecycle rules: abort incomplete uploads, IA for results, expiry for staging and logs", () => {
    const rules = (kind: string) =>
      (byName(kind)[1].Properties.LifecycleConfiguration as { Rules: Record<string, unknown>[] }).Rules;
    const abort = {
      AbortIncompleteMultipartUpload: { DaysAfterInitiation: LIFECYCLE.abortIncompleteUploadDays },
    };
    expect(rules("artifacts")).toEqual([expect.objectContaining(abort)]);
    expect(rules("results")).toEqual([
      expect.objectContaining({
        ...abort,
        Transitions: [
          { StorageClass: "STANDARD_IA", TransitionInDays: LIFECYCLE.resultsInfrequentAccessDays },
        ],
      }),
    ]);
    expect(rules("staging")).toEqual([
      expect.objectContaining({ ...abort, ExpirationInDays: LIFECYCLE.stagingExpiryDays }),
    ]);
    expect(rules("access-logs")).toEqual([
      expect.objectContaining({ ExpirationInDays: LIFECYCLE.accessLogsExpiryDays }),
    ]);
  });

  it("sends server access logs of the other buckets to the access-log bucket", () => {
    const [logsId] = byName("access-logs");
    for (const kind of ["artifacts", "results", "staging"]) {
      expect(byName(kind)[1].Properties.LoggingConfiguration).toEqual({
        DestinationBucketName: { Ref: logsId },
        LogFilePrefix: `${kind}/`,
      });
    }
  });
});

/** The properties of the one Lambda function whose logical id starts with `prefix`. */
function lambda(prefix: string): Record<string, unknown> {
  const fns = resources("AWS::Lambda::Function").filter(([id]) => id.startsWith(prefix));
  expect(fns).toHaveLength(1);
  return fns[0]![1].Properties;
}

describe("sweep-orchestrator Lambda", () => {
  const fn = () => lambda("Orchestrator");

  it("runs nodejs22.x on arm64 from an ES module bundle", () => {
    expect(fn()).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"], Handler: "index.handler" });
  });

  it("gets exactly the environment the handler reads", () => {
    const vars = (fn().Environment as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(vars).sort()).toEqual(
      [
        "NODE_OPTIONS",
        "SPAWN_ARTIFACTS_BUCKET",
        "SPAWN_EVENT_BUS",
        "SPAWN_HOME_REGION",
        "SPAWN_INSTANCE_PROFILE_ARN",
        "SPAWN_LAUNCH_CONFIG_PARAM",
        "SPAWN_RESULTS_BUCKET",
        "SPAWN_STACK_NAME",
        "SPAWN_TABLE_PREFIX",
      ].sort(),
    );
    expect(vars).toMatchObject({
      SPAWN_TABLE_PREFIX: "spawn-",
      SPAWN_STACK_NAME: "spawn",
      SPAWN_HOME_REGION: HOME,
      SPAWN_LAUNCH_CONFIG_PARAM: launchConfigParameterName("spawn"),
      NODE_OPTIONS: "--enable-source-maps",
    });
  });

  it("may publish only as spawn.orchestrator and may invoke no Lambda", () => {
    const statements = roleStatements("OrchestratorRole");
    const all = statements.flatMap(actions);
    expect(all.some((a) => a.startsWith("lambda:"))).toBe(false);
    const put = statements.filter((st) => actions(st).includes("events:PutEvents"));
    expect(put).toHaveLength(1);
    expect(put[0]!.Condition).toEqual({ StringEquals: { "events:source": ORCHESTRATOR_SOURCE } });
    expect(all).not.toContain("dynamodb:Scan");
  });

  it("terminates only instances tagged with its stack and passes only the agent role to EC2", () => {
    const statements = roleStatements("OrchestratorRole");
    const terminate = statements.find((st) => actions(st).includes("ec2:TerminateInstances"))!;
    expect(terminate.Condition).toEqual({ StringEquals: { "ec2:ResourceTag/spawn:stack": "spawn" } });
    const tag = statements.find((st) => actions(st).includes("ec2:CreateTags"))!;
    expect(tag.Condition).toEqual({
      StringEquals: { "ec2:CreateAction": ["CreateFleet", "RunInstances", "CreatePlacementGroup"] },
    });
    const pass = statements.find((st) => actions(st).includes("iam:PassRole"))!;
    expect(pass.Condition).toEqual({ StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } });
    expect(JSON.stringify(pass.Resource)).toContain("AgentRole");
  });

  it("creates and deletes only placement groups named after its stack, in every launch region", () => {
    const groups = roleStatements("OrchestratorRole").find((st) =>
      actions(st).includes("ec2:CreatePlacementGroup"),
    )!;
    expect(actions(groups)).toEqual(["ec2:CreatePlacementGroup", "ec2:DeletePlacementGroup"]);
    expect((evaluate(groups.Resource, s.homeTemplate, HOME) as string[]).sort()).toEqual(
      [HOME, LAUNCH_REGION].map((r) => `arn:aws:ec2:${r}:123456789012:placement-group/spawn-*`).sort(),
    );
  });

  it("reads the launch configuration and the AMI parameter in every launch region", () => {
    const ssm = roleStatements("OrchestratorRole").find((st) => actions(st).includes("ssm:GetParameter"))!;
    const arns = (evaluate(ssm.Resource, s.homeTemplate, HOME) as string[]).sort();
    expect(arns).toEqual(
      [
        `arn:aws:ssm:${HOME}:123456789012:parameter/spawn/spawn/launch-config`,
        `arn:aws:ssm:${LAUNCH_REGION}:123456789012:parameter/spawn/spawn/launch-config`,
        `arn:aws:ssm:${HOME}::parameter${DLAMI_PARAMETER}`,
        `arn:aws:ssm:${LAUNCH_REGION}::parameter${DLAMI_PARAMETER}`,
      ].sort(),
    );
  });
});

describe("EventBridge", () => {
  const rules = () => resources("AWS::Events::Rule");
  const orchestratorTargets = (rule: Resource) =>
    (rule.Properties.Targets as { Arn: unknown }[]).filter((t) =>
      JSON.stringify(t.Arn).includes("Orchestrator"),
    );
  const ec2Pattern = {
    source: EC2_EVENT_PATTERN.source,
    "detail-type": EC2_EVENT_PATTERN.detailType,
  };

  it("owns a custom bus", () => {
    s.homeTemplate.hasResourceProperties("AWS::Events::EventBus", { Name: "spawn" });
  });

  it("routes the three EC2 events on the default bus and on the stack bus to the orchestrator", () => {
    const ec2Rules = rules().filter(
      ([, r]) => JSON.stringify(r.Properties.EventPattern) === JSON.stringify(ec2Pattern),
    );
    expect(ec2Rules).toHaveLength(2);
    expect(ec2Rules.map(([, r]) => r.Properties.EventBusName === undefined).sort()).toEqual([false, true]);
    for (const [, rule] of ec2Rules) {
      expect(orchestratorTargets(rule)).toEqual([
        expect.objectContaining({ RetryPolicy: { MaximumEventAgeInSeconds: 300, MaximumRetryAttempts: 2 } }),
      ]);
    }
    expect(EC2_EVENT_PATTERN.detailType).toEqual([
      "EC2 Spot Instance Interruption Warning",
      "EC2 Instance Rebalance Recommendation",
      "EC2 Instance State-change Notification",
    ]);
  });

  it("passes the CLI's Sweep Submitted detail, as is, to the orchestrator", () => {
    const kick = rules().find(([, r]) =>
      JSON.stringify(r.Properties.EventPattern).includes(SWEEP_SUBMITTED.detailType),
    );
    expect(kick![1].Properties.EventPattern).toEqual({
      source: [SWEEP_SUBMITTED.source],
      "detail-type": [SWEEP_SUBMITTED.detailType],
    });
    expect(orchestratorTargets(kick![1])).toEqual([expect.objectContaining({ InputPath: "$.detail" })]);
  });

  it("ticks every minute with {kind: tick}", () => {
    const tick = rules().find(([, r]) => r.Properties.ScheduleExpression);
    expect(tick![1].Properties.ScheduleExpression).toBe("rate(1 minute)");
    expect(orchestratorTargets(tick![1])).toEqual([expect.objectContaining({ Input: '{"kind":"tick"}' })]);
  });

  it("lets nothing the orchestrator or an agent publishes reach the orchestrator (no recursive loop)", () => {
    // Only rules that target the orchestrator matter (alert-handler listens to spawn.orchestrator).
    for (const [, rule] of rules().filter(([, r]) => orchestratorTargets(r).length > 0)) {
      const sources = (
        (rule.Properties.EventPattern as { source?: string[] } | undefined)?.source ?? []
      ).join();
      expect(sources).not.toContain(ORCHESTRATOR_SOURCE);
      expect(sources).not.toContain(AGENT_SOURCE);
    }
    // Every rule that targets the orchestrator is one of the four above.
    expect(rules().filter(([, r]) => orchestratorTargets(r).length > 0)).toHaveLength(4);
  });

  it("forwards a launch region's EC2 events to the home bus", () => {
    const rule = first(resources("AWS::Events::Rule", "region"));
    expect(rule.Properties.EventPattern).toEqual(ec2Pattern);
    const [target] = rule.Properties.Targets as { Arn: unknown }[];
    expect(evaluate(target!.Arn, s.regionTemplate, LAUNCH_REGION)).toBe(
      `arn:aws:events:${HOME}:123456789012:event-bus/spawn`,
    );
  });
});

describe("launch configuration", () => {
  const template = (which: "home" | "region") => (which === "home" ? s.homeTemplate : s.regionTemplate);

  it.each(["home", "region"] as const)(
    "%s: the launch template requires IMDSv2, encrypts a gp3 root and terminates on shutdown",
    (which) => {
      template(which).hasResourceProperties("AWS::EC2::LaunchTemplate", {
        LaunchTemplateData: Match.objectLike({
          MetadataOptions: {
            HttpTokens: "required",
            HttpPutResponseHopLimit: 2,
            InstanceMetadataTags: "enabled",
          },
          BlockDeviceMappings: [
            {
              DeviceName: "/dev/xvda",
              Ebs: { VolumeSize: 150, VolumeType: "gp3", Encrypted: true, DeleteOnTermination: true },
            },
          ],
          ImageId: `resolve:ssm:${DLAMI_PARAMETER}`,
          InstanceInitiatedShutdownBehavior: "terminate",
          IamInstanceProfile: Match.objectLike({ Arn: Match.anyValue() }),
          UserData: { "Fn::Base64": Match.anyValue() },
        }),
      });
    },
  );

  it.each(["home", "region"] as const)(
    "%s: the EFA launch template puts one EFA with the instances' group on the primary interface",
    (which) => {
      const [[sgId]] = resources("AWS::EC2::SecurityGroup", which) as [[string, Resource]];
      const efa = first(resources("AWS::EC2::LaunchTemplate", which).filter(([id]) => id.includes("Efa")));
      const data = efa.Properties.LaunchTemplateData as Record<string, unknown>;
      expect(data.NetworkInterfaces).toEqual([
        {
          DeviceIndex: 0,
          NetworkCardIndex: 0,
          InterfaceType: "efa",
          Groups: [{ "Fn::GetAtt": [sgId, "GroupId"] }],
          AssociatePublicIpAddress: true,
          DeleteOnTermination: true,
        },
      ]);
      // Security groups live on the interface: EC2 refuses them beside network interfaces.
      expect(data.SecurityGroupIds).toBeUndefined();
      expect(data.MetadataOptions).toEqual(expect.objectContaining({ HttpTokens: "required" }));
    },
  );

  it("resolves the spawn AMI's parameter with -c spawn:ami=spawn", () => {
    const other = synthesize({ "spawn:ami": "spawn", "spawn:rootVolumeGiB": "300" });
    other.homeTemplate.hasResourceProperties("AWS::EC2::LaunchTemplate", {
      LaunchTemplateData: Match.objectLike({
        ImageId: "resolve:ssm:/spawn/spawn/ami",
        BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ VolumeSize: 300 }) })],
      }),
    });
  });

  it("the region's launch template uses the home stack's instance profile by name", () => {
    const lt = first(resources("AWS::EC2::LaunchTemplate", "region").filter(([id]) => !id.includes("Efa")));
    const data = lt.Properties.LaunchTemplateData as { IamInstanceProfile: { Arn: unknown } };
    expect(evaluate(data.IamInstanceProfile.Arn, s.regionTemplate, LAUNCH_REGION)).toBe(
      `arn:aws:iam::123456789012:instance-profile/spawn-agent-${HOME}`,
    );
    s.homeTemplate.hasResourceProperties("AWS::IAM::InstanceProfile", {
      InstanceProfileName: `spawn-agent-${HOME}`,
    });
  });

  it.each(["home", "region"] as const)(
    "%s: public subnets in every zone, no NAT, S3 and DynamoDB gateway endpoints, inbound only from the group itself",
    (which) => {
      const t = template(which);
      t.resourceCountIs("AWS::EC2::NatGateway", 0);
      t.resourceCountIs("AWS::EC2::Subnet", which === "home" ? HOME_AZS.length : 3);
      for (const [, subnet] of resources("AWS::EC2::Subnet", which)) {
        expect(subnet.Properties.MapPublicIpOnLaunch).toBe(true);
      }
      const endpoints = resources("AWS::EC2::VPCEndpoint", which).map(([, e]) =>
        JSON.stringify(e.Properties.ServiceName),
      );
      expect(endpoints.some((e) => e.includes(".s3"))).toBe(true);
      expect(endpoints.some((e) => e.includes(".dynamodb"))).toBe(true);
      // The only inbound rule: members of the group from each other (gangs), all traffic.
      for (const [, sg] of resources("AWS::EC2::SecurityGroup", which)) {
        expect(sg.Properties.SecurityGroupIngress).toBeUndefined();
      }
      const [[sgId]] = resources("AWS::EC2::SecurityGroup", which) as [[string, Resource]];
      const ingress = resources("AWS::EC2::SecurityGroupIngress", which).map(([, r]) => r.Properties);
      expect(ingress).toEqual([
        expect.objectContaining({
          IpProtocol: "-1",
          GroupId: { "Fn::GetAtt": [sgId, "GroupId"] },
          SourceSecurityGroupId: { "Fn::GetAtt": [sgId, "GroupId"] },
        }),
      ]);
    },
  );

  it.each(["home", "region"] as const)(
    "%s: publishes a LaunchConfig the orchestrator's parser accepts",
    (which) => {
      const region = which === "home" ? HOME : LAUNCH_REGION;
      const param = first(resources("AWS::SSM::Parameter", which));
      expect(param.Properties.Name).toBe(launchConfigParameterName("spawn"));
      expect(param.Properties.Type).toBe("String");
      const text = evaluate(param.Properties.Value, template(which), region) as string;
      const config = parseLaunchConfig(text, `test ${which}`);
      expect(config.launchTemplateVersion).toBe("3");
      expect(config.efaLaunchTemplateId).toMatch(/^lt-/);
      expect(config.efaLaunchTemplateId).not.toBe(config.launchTemplateId);
      expect(config.amiSsmParameter).toBe(DLAMI_PARAMETER);
      expect(config.subnets.map((sn) => sn.az)).toEqual(
        which === "home" ? HOME_AZS : ["a", "b", "c"].map((l) => `${LAUNCH_REGION}${l}`),
      );
      expect(new Set(config.subnets.map((sn) => sn.subnetId)).size).toBe(config.subnets.length);
    },
  );
});

describe("agent role", () => {
  const statements = () => roleStatements("AgentRole");
  const bySid = (sid: string) => statements().find((st) => st.Sid === sid)!;

  it("is assumed by EC2 and has Session Manager's managed policy", () => {
    const role = first(resources("AWS::IAM::Role").filter(([id]) => id.startsWith("AgentRole")));
    expect(JSON.stringify(role.Properties.AssumeRolePolicyDocument)).toContain("ec2.amazonaws.com");
    expect(JSON.stringify(role.Properties.ManagedPolicyArns)).toContain("AmazonSSMManagedInstanceCore");
  });

  it("reads its sweep, claims and reports tasks, and heartbeats its instance, and nothing else in DynamoDB", () => {
    const allowed = statements()
      .filter((st) => st.Effect === "Allow")
      .flatMap(actions)
      .filter((a) => a.startsWith("dynamodb:"));
    expect(new Set(allowed)).toEqual(new Set(["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"]));
    const claim = JSON.stringify(bySid("ClaimAndReportTasks").Resource);
    expect(claim).toContain(`/index/${INDEX.tasksPending}`);
    expect(claim).toContain(`/index/${INDEX.tasksRunning}`);
    expect(JSON.stringify(bySid("ReadSweep").Resource)).toContain("Tablessweeps");
    expect(actions(bySid("ReadSweep"))).toEqual(["dynamodb:GetItem"]);
    const deny = statements().find((st) => st.Effect === "Deny")!;
    expect(actions(deny)).toEqual(
      expect.arrayContaining(["dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:BatchWriteItem"]),
    );
  });

  it("reads agent binaries and bundles, writes only logs, outputs and checkpoints", () => {
    const arns = (sid: string) => evaluate(bySid(sid).Resource, s.homeTemplate, HOME) as string[];
    expect(arns("ReadArtifacts")).toEqual([
      "BucketsArtifactsB9EE6400.Arn/agent/*",
      "BucketsArtifactsB9EE6400.Arn/bundles/*",
    ]);
    expect(arns("WriteResults").map((a) => a.replace(/^.*\.Arn/, ""))).toEqual([
      "/logs/*",
      "/outputs/*",
      "/checkpoints/*",
    ]);
    expect(actions(bySid("WriteResults"))).not.toContain("s3:DeleteObject");
  });

  it("may publish only as spawn.agent on the stack's bus", () => {
    expect(bySid("PublishAgentEvents").Condition).toEqual({
      StringEquals: { "events:source": AGENT_SOURCE },
    });
  });
});

describe("image pipeline", () => {
  it("builds only when started: no schedule", () => {
    const pipeline = first(resources("AWS::ImageBuilder::ImagePipeline"));
    expect(pipeline.Properties.Schedule).toBeUndefined();
    expect(pipeline.Properties.ImageTestsConfiguration).toEqual({
      ImageTestsEnabled: true,
      TimeoutMinutes: 60,
    });
  });

  it("distributes to every launch region and publishes the AMI id where the launch templates look", () => {
    const dist = first(resources("AWS::ImageBuilder::DistributionConfiguration"));
    const distributions = dist.Properties.Distributions as {
      Region: unknown;
      SsmParameterConfigurations: unknown;
    }[];
    expect(distributions.map((d) => d.Region)).toEqual([HOME, LAUNCH_REGION]);
    for (const d of distributions) {
      expect(d.SsmParameterConfigurations).toEqual([
        { ParameterName: "/spawn/spawn/ami", DataType: "aws:ec2:image" },
      ]);
    }
  });

  it("requires IMDSv2 on build instances and terminates them on failure", () => {
    s.homeTemplate.hasResourceProperties("AWS::ImageBuilder::InfrastructureConfiguration", {
      TerminateInstanceOnFailure: true,
      InstanceMetadataOptions: { HttpTokens: "required", HttpPutResponseHopLimit: 2 },
    });
  });
});

describe("schedules", () => {
  it("owns a schedule group, and a dead-letter queue that is encrypted and TLS only", () => {
    s.homeTemplate.hasResourceProperties("AWS::Scheduler::ScheduleGroup", { Name: "spawn-schedules" });
    s.homeTemplate.hasResourceProperties("AWS::SQS::Queue", { SqsManagedSseEnabled: true });
    const queuePolicies = resources("AWS::SQS::QueuePolicy").flatMap(
      ([, r]) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );
    expect(queuePolicies).toContainEqual(
      expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
    );
  });

  it("runs scheduler-handler on nodejs22.x arm64 with exactly the environment it reads", () => {
    const fn = lambda("Scheduler");
    expect(fn).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"], Handler: "index.handler" });
    const vars = (fn.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(vars).sort()).toEqual(
      [
        "NODE_OPTIONS",
        "SPAWN_ARTIFACTS_BUCKET",
        "SPAWN_EVENT_BUS",
        "SPAWN_HOME_REGION",
        "SPAWN_RESULTS_BUCKET",
        "SPAWN_SCHEDULE_GROUP",
        "SPAWN_TABLE_PREFIX",
        "SPAWN_STACK_NAME",
        "SPAWN_ACCOUNT_ID",
        "SPAWN_PARTITION",
      ].sort(),
    );
    expect(vars).toMatchObject({
      SPAWN_SCHEDULE_GROUP: "spawn-schedules",
      SPAWN_TABLE_PREFIX: "spawn-",
      SPAWN_STACK_NAME: "spawn",
      SPAWN_ACCOUNT_ID: { Ref: "AWS::AccountId" },
      SPAWN_PARTITION: { Ref: "AWS::Partition" },
    });
  });

  it("lets EventBridge Scheduler in this account invoke the handler and nothing else", () => {
    const roles = resources("AWS::IAM::Role").filter(([id]) => id.startsWith("SchedulerInvokeRole"));
    expect(roles).toHaveLength(1);
    const trust = roles[0]![1].Properties.AssumeRolePolicyDocument as { Statement: Statement[] };
    expect(trust.Statement).toEqual([
      expect.objectContaining({
        Principal: { Service: "scheduler.amazonaws.com" },
        Condition: { StringEquals: { "aws:SourceAccount": expect.anything() } },
      }),
    ]);
    const statements = roleStatements("SchedulerInvokeRole");
    expect(statements.map((st) => [st.Sid, actions(st)])).toEqual([
      ["InvokeHandler", ["lambda:InvokeFunction"]],
      ["DeadLetters", ["sqs:SendMessage"]],
    ]);
    expect(JSON.stringify(statements[0]!.Resource)).toMatch(/SchedulerFunction/);
  });

  it("gives the handler its tables, the stored specs, the orchestrator kick, schedule deletion and sweep roles only", () => {
    const statements = roleStatements("SchedulerRole");
    const bySid = Object.fromEntries(statements.map((st) => [st.Sid, st]));
    expect(Object.keys(bySid).sort()).toEqual(
      [
        "DisarmCompletedSchedules",
        "Logs",
        "MakeSweepProfiles",
        "MakeSweepRoles",
        "PassSweepRoles",
        "ReadStoredSpecs",
        "State",
        "WakeOrchestrator",
      ].sort(),
    );
    expect(actions(bySid.State!)).not.toContain("dynamodb:Scan");
    expect(bySid.WakeOrchestrator!.Condition).toEqual({
      StringEquals: { "events:source": [SWEEP_SUBMITTED.source, ORCHESTRATOR_SOURCE] },
    });
    expect(actions(bySid.DisarmCompletedSchedules!)).toEqual(["scheduler:DeleteSchedule"]);
    expect(JSON.stringify(bySid.DisarmCompletedSchedules!.Resource)).toMatch(/schedule\/spawn-schedules\/\*/);
    expect(JSON.stringify(bySid.ReadStoredSpecs!.Resource)).toMatch(/\/schedules\/\*/);
  });

  it("lets the handler make, pass to EC2 and take back only the stack's sweep roles (ADR 0040)", () => {
    const statements = roleStatements("SchedulerRole");
    const bySid = Object.fromEntries(statements.map((st) => [st.Sid, st]));
    const arn = (kind: string) => ({
      "Fn::Join": [
        "",
        ["arn:", { Ref: "AWS::Partition" }, ":iam::", { Ref: "AWS::AccountId" }, `:${kind}/spawn-sweep-*`],
      ],
    });
    expect(bySid.MakeSweepRoles).toEqual({
      Sid: "MakeSweepRoles",
      Effect: "Allow",
      Action: [
        "iam:CreateRole",
        "iam:TagRole",
        "iam:PutRolePolicy",
        "iam:DeleteRolePolicy",
        "iam:DeleteRole",
      ],
      Resource: arn("role"),
    });
    expect(bySid.MakeSweepProfiles).toEqual({
      Sid: "MakeSweepProfiles",
      Effect: "Allow",
      Action: [
        "iam:CreateInstanceProfile",
        "iam:TagInstanceProfile",
        "iam:AddRoleToInstanceProfile",
        "iam:RemoveRoleFromInstanceProfile",
        "iam:DeleteInstanceProfile",
      ],
      Resource: arn("instance-profile"),
    });
    expect(bySid.PassSweepRoles).toEqual({
      Sid: "PassSweepRoles",
      Effect: "Allow",
      Action: "iam:PassRole",
      Resource: arn("role"),
      Condition: { StringEquals: { "iam:PassedToService": "ec2.amazonaws.com" } },
    });
    // Nothing else of IAM, and no IAM action on any other resource
    const iamStatements = statements.filter((st) => actions(st).some((a) => a.startsWith("iam:")));
    expect(iamStatements.map((st) => st.Sid).sort()).toEqual([
      "MakeSweepProfiles",
      "MakeSweepRoles",
      "PassSweepRoles",
    ]);
    // The orchestrator passes and deletes the same names, and creates none
    const orchestrator = roleStatements("OrchestratorRole").filter((st) =>
      actions(st).some((a) => a.startsWith("iam:")),
    );
    expect(orchestrator.flatMap(actions)).not.toContain("iam:CreateRole");
    expect(orchestrator.flatMap(actions)).not.toContain("iam:PutRolePolicy");
    expect(orchestrator.find((st) => st.Sid === "PassSweepRoles")?.Resource).toEqual(arn("role"));
  });
});

describe("alerts", () => {
  it("seals webhook secrets with a rotating KMS key and has a TLS-only, encrypted topic", () => {
    s.homeTemplate.hasResourceProperties("AWS::KMS::Key", { EnableKeyRotation: true });
    s.homeTemplate.hasResourceProperties("AWS::SNS::Topic", { KmsMasterKeyId: Match.anyValue() });
    const topicPolicies = resources("AWS::SNS::TopicPolicy").flatMap(
      ([, r]) => (r.Properties.PolicyDocument as { Statement: Statement[] }).Statement,
    );
    expect(topicPolicies).toContainEqual(
      expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
    );
  });

  it("runs alert-handler with exactly the environment it reads", () => {
    const fn = lambda("Alerts");
    expect(fn).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"] });
    const vars = (fn.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(Object.keys(vars).sort()).toEqual(
      [
        "NODE_OPTIONS",
        "SPAWN_ALERTS_KEY_ARN",
        "SPAWN_ALERTS_TOPIC_ARN",
        "SPAWN_HOME_REGION",
        "SPAWN_TABLE_PREFIX",
      ].sort(),
    );
  });

  it("feeds it the control plane's events from the stack bus and a 5-minute check", () => {
    s.homeTemplate.hasResourceProperties("AWS::Events::Rule", {
      EventBusName: Match.anyValue(),
      EventPattern: { source: [ORCHESTRATOR_SOURCE, AGENT_SOURCE] },
    });
    s.homeTemplate.hasResourceProperties("AWS::Events::Rule", {
      ScheduleExpression: "rate(5 minutes)",
      Targets: [Match.objectLike({ Input: JSON.stringify({ kind: "check" }) })],
    });
  });

  it("may decrypt only alert secrets (by encryption context) and publish only to its topic", () => {
    const bySid = Object.fromEntries(roleStatements("AlertsRole").map((st) => [st.Sid, st]));
    expect(Object.keys(bySid).sort()).toEqual([
      "AlertState",
      "Logs",
      "Notify",
      "OpenSealedSecrets",
      "ReadSweeps",
    ]);
    expect(actions(bySid.OpenSealedSecrets!)).toEqual(["kms:Decrypt"]);
    expect(bySid.OpenSealedSecrets!.Condition).toEqual({
      "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": ["spawn:alert"] },
    });
    expect(actions(bySid.Notify!)).toEqual(["sns:Publish"]);
    expect(actions(bySid.ReadSweeps!)).not.toContain("dynamodb:PutItem");
  });
});

describe("outputs", () => {
  it("publishes every output the CLI reads, plus the staging bucket and launch regions", () => {
    const outputs = s.homeTemplate.findOutputs("*");
    // DnsUpdaterArn only with a hosted zone (cdk/dns.test.ts checks it there).
    const expected = Object.keys(StackOutputs.shape).filter((key) => key !== "DnsUpdaterArn");
    expect(Object.keys(outputs)).toEqual(
      expect.arrayContaining([...expected, "StagingBucket", "LaunchRegions"]),
    );
    const values = Object.fromEntries(
      expected.map((key) => [key, String(evaluate(outputs[key]!.Value, s.homeTemplate, HOME))]),
    );
    expect(StackOutputs.parse(values)).toMatchObject({
      SpawnVersion: s.config.version,
      TablePrefix: "spawn-",
      LaunchConfigParam: "/spawn/spawn/launch-config",
    });
    expect(outputs.LaunchRegions!.Value).toBe(`${HOME},${LAUNCH_REGION}`);
  });

  it("names buckets from stack, account and home region, the same in every stack", () => {
    s.homeTemplate.hasResourceProperties("AWS::S3::Bucket", {
      BucketName: { "Fn::Join": ["", ["spawn-artifacts-", { Ref: "AWS::AccountId" }, `-${HOME}`]] },
    });
  });
});
