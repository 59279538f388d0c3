/**
 * A region's launch configuration: a VPC of public subnets (one per availability zone, no NAT,
 * so it costs nothing at rest), gateway endpoints for S3 and DynamoDB, a security group whose
 * only inbound rule admits its own members (gangs: NCCL, MPI, EFA), the launch template and its
 * EFA twin, and the SSM parameter the orchestrator reads them from.
 */
import { Fn, Stack, Validations } from "aws-cdk-lib";
import {
  BlockDeviceVolume,
  type CfnLaunchTemplate,
  EbsDeviceVolumeType,
  GatewayVpcEndpointAwsService,
  InstanceInitiatedShutdownBehavior,
  LaunchTemplate,
  LaunchTemplateHttpTokens,
  type LaunchTemplateProps,
  MachineImage,
  Port,
  SecurityGroup,
  SubnetType,
  UserData,
  Vpc,
} from "aws-cdk-lib/aws-ec2";
import type { IInstanceProfile } from "aws-cdk-lib/aws-iam";
import { StringParameter } from "aws-cdk-lib/aws-ssm";
import { Construct } from "constructs";
import {
  DLAMI_PARAMETER,
  type LaunchConfig,
  launchConfigParameterName,
  spawnAmiParameterName,
} from "#providers/aws/launch-config.js";
import type { SpawnConfig } from "./config.js";
import { bucketName, eventBusName, type SpawnNames, tablePrefix } from "./names.js";
import { renderBootScript } from "./user-data.js";

/** The root device of Amazon Linux 2023 AMIs, the DLAMI and the spawn AMI alike. */
export const ROOT_DEVICE = "/dev/xvda";

/** The AMI parameter the launch templates resolve at launch for `spawn:ami`. */
export function amiParameter(config: Pick<SpawnConfig, "ami" | "stackName">): string {
  return config.ami === "spawn" ? spawnAmiParameterName(config.stackName) : DLAMI_PARAMETER;
}

/** Zones to cover in `region`: the configured list, else the region's first three. */
export function availabilityZones(config: Pick<SpawnConfig, "azs">, region: string | undefined): string[] {
  const listed = region ? config.azs[region] : undefined;
  if (listed?.length) return listed;
  return [0, 1, 2].map((i) => Fn.select(i, Fn.getAzs()));
}

export interface RegionalLaunchProps {
  names: SpawnNames;
  config: SpawnConfig;
  /** Zones to make subnets in (see availabilityZones). */
  azs: string[];
  /** The agents' instance profile (the home stack's, or looked up by name in a launch region). */
  instanceProfile: IInstanceProfile;
}

export class RegionalLaunch extends Construct {
  readonly vpc: Vpc;
  readonly securityGroup: SecurityGroup;
  readonly launchTemplate: LaunchTemplate;
  /** The same template with an Elastic Fabric Adapter as the primary interface (gangs with `resources.efa`). */
  readonly efaLaunchTemplate: LaunchTemplate;
  readonly parameter: StringParameter;

  constructor(scope: Construct, id: string, props: RegionalLaunchProps) {
    super(scope, id);
    const { names, config } = props;
    this.vpc = new Vpc(this, "Vpc", {
      availabilityZones: props.azs,
      natGateways: 0,
      subnetConfiguration: [{ name: "public", subnetType: SubnetType.PUBLIC, cidrMask: 20 }],
      gatewayEndpoints: {
        S3: { service: GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });
    Validations.of(this.vpc).acknowledge({
      id: "AwsSolutions-VPC7",
      reason:
        "no inbound traffic is allowed and no NAT exists; flow logs of every dataset download would cost per GB, against a stack that costs ~$0 at rest",
    });
    this.securityGroup = new SecurityGroup(this, "Instances", {
      vpc: this.vpc,
      description:
        "spawn instances: inbound only from each other (gangs; Session Manager needs none); all outbound",
      allowAllOutbound: true,
    });
    // Gang members talk to each other on any port (NCCL, MPI, torchrun's rendezvous; EFA needs
    // all traffic within the group). Nothing outside the group gets in.
    this.securityGroup.addIngressRule(
      this.securityGroup,
      Port.allTraffic(),
      "gang members reach each other (NCCL, MPI, EFA)",
    );
    const userData = UserData.custom(
      renderBootScript({
        stackName: names.stackName,
        version: config.version,
        homeRegion: names.homeRegion,
        artifactsBucket: bucketName(names, "artifacts"),
        resultsBucket: bucketName(names, "results"),
        tablePrefix: tablePrefix(names),
        eventBus: eventBusName(names),
      }),
    );
    const template: LaunchTemplateProps = {
      machineImage: MachineImage.resolveSsmParameterAtLaunch(amiParameter(config)),
      userData,
      instanceProfile: props.instanceProfile,
      requireImdsv2: true,
      httpTokens: LaunchTemplateHttpTokens.REQUIRED,
      // Two hops, so containers on the instance reach the metadata service too.
      httpPutResponseHopLimit: 2,
      // The bootstrap reads the instance's spawn:sweep and spawn:instance tags from metadata.
      instanceMetadataTags: true,
      // An agent that powers off (sweep done, boot failed) ends the bill.
      instanceInitiatedShutdownBehavior: InstanceInitiatedShutdownBehavior.TERMINATE,
      blockDevices: [
        {
          deviceName: ROOT_DEVICE,
          volume: BlockDeviceVolume.ebs(config.rootVolumeGiB, {
            volumeType: EbsDeviceVolumeType.GP3,
            encrypted: true,
            deleteOnTermination: true,
          }),
        },
      ],
    };
    this.launchTemplate = new LaunchTemplate(this, "LaunchTemplate", {
      ...template,
      launchTemplateName: `${names.stackName}-${Stack.of(this).region}`,
      securityGroup: this.securityGroup,
    });
    // A fleet override cannot carry network interfaces, so EFA needs a template of its own. With
    // interfaces in a template, security groups go on the interface, and the fleet's subnet
    // override applies to the primary one. One EFA (the public IP a single interface may have keeps
    // setup's network without a NAT); see docs/adr/0028-gangs-on-ec2.md.
    this.efaLaunchTemplate = new LaunchTemplate(this, "EfaLaunchTemplate", {
      ...template,
      launchTemplateName: `${names.stackName}-${Stack.of(this).region}-efa`,
    });
    (this.efaLaunchTemplate.node.defaultChild as CfnLaunchTemplate).addPropertyOverride(
      "LaunchTemplateData.NetworkInterfaces",
      [
        {
          DeviceIndex: 0,
          NetworkCardIndex: 0,
          InterfaceType: "efa",
          Groups: [this.securityGroup.securityGroupId],
          AssociatePublicIpAddress: true,
          DeleteOnTermination: true,
        },
      ],
    );
    const launchConfig: LaunchConfig = {
      launchTemplateId: this.launchTemplate.launchTemplateId!,
      launchTemplateVersion: this.launchTemplate.latestVersionNumber,
      efaLaunchTemplateId: this.efaLaunchTemplate.launchTemplateId!,
      efaLaunchTemplateVersion: this.efaLaunchTemplate.latestVersionNumber,
      subnets: this.vpc.publicSubnets.map((s) => ({ subnetId: s.subnetId, az: s.availabilityZone })),
      securityGroupId: this.securityGroup.securityGroupId,
      amiSsmParameter: amiParameter(config),
    };
    this.parameter = new StringParameter(this, "LaunchConfig", {
      parameterName: launchConfigParameterName(names.stackName),
      description: "spawn launch configuration for this region (providers/aws/launch-config.ts)",
      stringValue: Stack.of(this).toJsonString(launchConfig),
    });
  }
}
