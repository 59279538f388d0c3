/**
 * The spawn CDK app: one home stack (control plane and the home region's launch configuration)
 * and one small stack per extra launch region. See docs/aws.md for what each deploys.
 */
import { type App, CfnOutput, Stack, type StackProps, Tags } from "aws-cdk-lib";
import { EventBus, Rule } from "aws-cdk-lib/aws-events";
import { EventBus as EventBusTarget } from "aws-cdk-lib/aws-events-targets";
import { InstanceProfile } from "aws-cdk-lib/aws-iam";
import type { Construct } from "constructs";
import { launchConfigParameterName } from "#providers/aws/launch-config.js";
import type { StackOutputs } from "#providers/aws/stack.js";
import { AgentRole } from "./agent-role.js";
import { Alerts } from "./alerts.js";
import type { SpawnConfig } from "./config.js";
import { Dashboard } from "./dashboard.js";
import { SpawnBuckets, SpawnTables } from "./data.js";
import { DnsUpdater } from "./dns.js";
import { SpawnImagePipeline } from "./image-pipeline.js";
import { amiParameter, availabilityZones, RegionalLaunch } from "./launch.js";
import {
  agentInstanceProfileName,
  eventBusArn,
  eventBusName,
  type SpawnNames,
  tablePrefix,
} from "./names.js";
import { EC2_EVENT_PATTERN, Orchestrator } from "./orchestrator.js";
import { Scheduler } from "./scheduler.js";
import { renderBootScript } from "./user-data.js";

/** Every spawn resource carries this tag; the orchestrator may terminate only instances that do. */
export const STACK_TAG = "spawn:stack";

export interface SpawnStackProps extends StackProps {
  config: SpawnConfig;
}

/** The home stack: tables, buckets, bus, Lambdas, rules, agent role, image pipeline, and this region's launch configuration. */
export class SpawnStack extends Stack {
  readonly names: SpawnNames;
  readonly launch: RegionalLaunch;
  readonly orchestrator: Orchestrator;

  constructor(scope: Construct, id: string, props: SpawnStackProps) {
    super(scope, id, props);
    // Access logs are delivered by a bucket policy, so no bucket needs ACLs (ownership enforced).
    this.node.setContext("@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy", true);
    const { config } = props;
    const names: SpawnNames = { stackName: config.stackName, homeRegion: this.region };
    this.names = names;
    Tags.of(this).add(STACK_TAG, config.stackName);

    const { tables } = new SpawnTables(this, "Tables", names);
    const buckets = new SpawnBuckets(this, "Buckets", names);
    const bus = new EventBus(this, "Bus", { eventBusName: eventBusName(names) });
    const agent = new AgentRole(this, "Agent", { names, tables, buckets, bus });
    this.launch = new RegionalLaunch(this, "Launch", {
      names,
      config,
      azs: availabilityZones(config, config.homeRegion),
      instanceProfile: agent.instanceProfile,
    });
    this.orchestrator = new Orchestrator(this, "Orchestrator", {
      names,
      version: config.version,
      tables,
      buckets,
      bus,
      agent,
      launchConfigParameter: launchConfigParameterName(config.stackName),
      amiParameter: amiParameter(config),
      launchRegions: [this.region, ...config.launchRegions],
    });
    const scheduler = new Scheduler(this, "Scheduler", { names, tables, buckets, bus });
    const alerts = new Alerts(this, "Alerts", { names, tables, bus });
    const dashboard = new Dashboard(this, "Dashboard", {
      names,
      tables,
      buckets,
      scheduler,
      alerts,
      ...(config.dashboardDomainPrefix ? { domainPrefix: config.dashboardDomainPrefix } : {}),
    });
    // Instance hostnames, when a hosted zone is configured: the orchestrator tags each instance
    // with the function's name, which is how its agent knows to register (docs/dns.md).
    if (config.dns) {
      const dns = new DnsUpdater(this, "Dns", { names, dns: config.dns, bus, agentRole: agent.role });
      this.orchestrator.function
        .addEnvironment("SPAWN_DNS_UPDATER", dns.function.functionName)
        .addEnvironment("SPAWN_DNS_ZONE", config.dns.zoneName);
      // A schedule firing's sweep role may invoke it too (ADR 0040).
      scheduler.function.addEnvironment("SPAWN_DNS_UPDATER_ARN", dns.function.functionArn);
      new CfnOutput(this, "DnsZone", { value: config.dns.zoneName });
      // A sweep's own instance role (ADR 36) may invoke it too: the CLI reads this when it makes one.
      new CfnOutput(this, "DnsUpdaterArn", { value: dns.function.functionArn });
    }
    const image = new SpawnImagePipeline(this, "Image", {
      stackName: config.stackName,
      version: config.version,
      bootScript: renderBootScript({
        stackName: names.stackName,
        version: config.version,
        homeRegion: names.homeRegion,
        artifactsBucket: buckets.artifacts.bucketName,
        resultsBucket: buckets.results.bucketName,
        tablePrefix: tablePrefix(names),
        eventBus: bus.eventBusName,
      }),
      artifacts: buckets.artifacts,
      subnet: this.launch.vpc.publicSubnets[0]!,
      securityGroup: this.launch.securityGroup,
      regions: [this.region, ...config.launchRegions],
    });

    // DnsUpdaterArn is output above, only with a hosted zone.
    const outputs: Required<Omit<StackOutputs, "DnsUpdaterArn">> = {
      SpawnVersion: config.version,
      TablePrefix: tablePrefix(names),
      ArtifactsBucket: buckets.artifacts.bucketName,
      ResultsBucket: buckets.results.bucketName,
      EventBusName: bus.eventBusName,
      OrchestratorFunctionName: this.orchestrator.function.functionName,
      LaunchConfigParam: launchConfigParameterName(config.stackName),
      ImagePipelineArn: image.pipeline.attrArn,
      ScheduleGroupName: scheduler.group.name!,
      SchedulerHandlerArn: scheduler.function.functionArn,
      SchedulerRoleArn: scheduler.invokeRole.roleArn,
      SchedulesDlqArn: scheduler.deadLetters.queueArn,
      AlertsKeyArn: alerts.key.keyArn,
      AlertsTopicArn: alerts.topic.topicArn,
    };
    for (const [key, value] of Object.entries(outputs)) new CfnOutput(this, key, { value });
    new CfnOutput(this, "StagingBucket", { value: buckets.staging.bucketName });
    new CfnOutput(this, "DashboardUrl", { value: dashboard.url });
    new CfnOutput(this, "DashboardUserPoolId", { value: dashboard.userPool.userPoolId });
    new CfnOutput(this, "DashboardClientId", { value: dashboard.client.userPoolClientId });
    new CfnOutput(this, "LaunchRegions", { value: [this.region, ...config.launchRegions].join(",") });
  }
}

export interface SpawnRegionStackProps extends StackProps {
  config: SpawnConfig & { homeRegion: string };
}

/**
 * A launch region: its launch configuration, and a rule that forwards its EC2 events to the home
 * stack's bus. Deployed after the home stack (it names the home stack's instance profile and bus).
 */
export class SpawnRegionStack extends Stack {
  readonly launch: RegionalLaunch;

  constructor(scope: Construct, id: string, props: SpawnRegionStackProps) {
    super(scope, id, props);
    const { config } = props;
    const names: SpawnNames = { stackName: config.stackName, homeRegion: config.homeRegion };
    Tags.of(this).add(STACK_TAG, config.stackName);
    this.launch = new RegionalLaunch(this, "Launch", {
      names,
      config,
      azs: availabilityZones(config, this.region),
      instanceProfile: InstanceProfile.fromInstanceProfileName(
        this,
        "AgentProfile",
        agentInstanceProfileName(names),
      ),
    });
    new Rule(this, "ForwardEc2Events", {
      description:
        "EC2 spot interruptions, rebalance recommendations and state changes, to the home stack's bus",
      eventPattern: EC2_EVENT_PATTERN,
      targets: [new EventBusTarget(EventBus.fromEventBusArn(this, "HomeBus", eventBusArn(names)))],
    });
  }
}

/** Adds the home stack and one stack per launch region to `app`. */
export function addSpawnStacks(
  app: App,
  config: SpawnConfig,
): { home: SpawnStack; regions: SpawnRegionStack[] } {
  const home = new SpawnStack(app, config.stackName, {
    config,
    // Region only, never the account: the app makes no lookups and synthesizes offline.
    ...(config.homeRegion ? { env: { region: config.homeRegion } } : {}),
    description: `spawn ${config.version}: serverless control plane for GPU sweeps`,
  });
  const regions = config.launchRegions.map(
    (region) =>
      new SpawnRegionStack(app, `${config.stackName}-${region}`, {
        config: { ...config, homeRegion: config.homeRegion! },
        env: { region },
        description: `spawn ${config.version}: launch configuration in ${region} for the ${config.stackName} stack`,
      }),
  );
  for (const stack of regions) stack.addStackDependency(home);
  return { home, regions };
}
