/**
 * The dashboard on AWS (docs/dashboard.md, "On AWS"): the built UI in a private S3 bucket behind
 * CloudFront (Origin Access Control, HTTPS only, security headers), the `dashboard-api` Lambda
 * behind an API Gateway HTTP API with a Cognito JWT authorizer, served by the same distribution
 * under `/api/*` (one origin: the UI's CSP keeps `connect-src 'self'`), and the Cognito user pool
 * and app client (authorization code with PKCE through the hosted UI). Teams and comments live
 * in the stack's `teams` table (SpawnTables, from providers/dynamodb/tables.ts). The API also
 * manages the teams' schedules and alerts, in the stack's schedule group and under its alerts key
 * (docs/adr/0039-dashboard-schedules-alerts-downloads-on-aws.md), and signs download links.
 */
import { existsSync } from "node:fs";
import { Annotations, Aws, Duration, RemovalPolicy, Stack, Token, Validations } from "aws-cdk-lib";
import { HttpApi, HttpMethod, HttpStage, LogGroupLogDestination } from "aws-cdk-lib/aws-apigatewayv2";
import { HttpJwtAuthorizer } from "aws-cdk-lib/aws-apigatewayv2-authorizers";
import { HttpLambdaIntegration } from "aws-cdk-lib/aws-apigatewayv2-integrations";
import {
  AllowedMethods,
  CachePolicy,
  Distribution,
  HeadersFrameOption,
  HeadersReferrerPolicy,
  HttpVersion,
  OriginProtocolPolicy,
  OriginRequestPolicy,
  PriceClass,
  ResponseHeadersPolicy,
  ViewerProtocolPolicy,
} from "aws-cdk-lib/aws-cloudfront";
import { HttpOrigin, S3BucketOrigin } from "aws-cdk-lib/aws-cloudfront-origins";
import {
  AccountRecovery,
  FeaturePlan,
  Mfa,
  OAuthScope,
  UserPool,
  type UserPoolClient,
  type UserPoolDomain,
} from "aws-cdk-lib/aws-cognito";
import { PolicyStatement } from "aws-cdk-lib/aws-iam";
import type { IFunction } from "aws-cdk-lib/aws-lambda";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from "aws-cdk-lib/aws-s3";
import { BucketDeployment, Source } from "aws-cdk-lib/aws-s3-deployment";
import { Construct } from "constructs";
import { INDEX } from "#providers/dynamodb/tables.js";
import { CONTEXT_KEY } from "#providers/notify/kms-secrets.js";
import type { Alerts } from "./alerts.js";
import type { SpawnBuckets, SpawnTableResources } from "./data.js";
import { spawnFunction } from "./lambda.js";
import { acknowledgeWildcards, wildcardFinding } from "./nag.js";
import { type SpawnNames, tablePrefix } from "./names.js";
import { projectPath } from "./paths.js";
import type { Scheduler } from "./scheduler.js";

export interface DashboardProps {
  names: SpawnNames;
  tables: SpawnTableResources;
  buckets: SpawnBuckets;
  /** The stack's schedules: the dashboard creates, arms and removes them in this group. */
  scheduler: Pick<Scheduler, "group" | "function" | "invokeRole" | "deadLetters">;
  /** The stack's alerts: the dashboard seals webhook URLs with this key. */
  alerts: Pick<Alerts, "key" | "topic">;
  /**
   * The Cognito hosted UI's domain prefix (`<prefix>.auth.<region>.amazoncognito.com`), unique in
   * the region. @default `<stackName>-<account id>`
   */
  domainPrefix?: string;
  /** The built UI (`npm run build` writes it). @default dist/dashboard */
  uiDir?: string;
}

/**
 * The site's Content-Security-Policy: the UI is one script and one stylesheet from this origin;
 * it talks only to this origin and to the Cognito token endpoint at `tokenOrigin` (the code for
 * tokens exchange). No inline script or style. test/dashboard-aws-browser.test.ts runs the UI under it.
 */
export function dashboardCsp(tokenOrigin: string): string {
  return (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
    `connect-src 'self' ${tokenOrigin}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`
  );
}

/** The hosted UI's OAuth scopes: the ID token carries the e-mail the API knows users by. */
const SCOPES = [OAuthScope.OPENID, OAuthScope.EMAIL];

export class Dashboard extends Construct {
  readonly distribution: Distribution;
  readonly site: Bucket;
  readonly api: HttpApi;
  readonly function: IFunction;
  readonly userPool: UserPool;
  readonly client: UserPoolClient;
  readonly domain: UserPoolDomain;
  /** `https://<distribution>.cloudfront.net` */
  readonly url: string;

  constructor(scope: Construct, id: string, props: DashboardProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { names, tables, buckets, scheduler, alerts } = props;

    this.site = new Bucket(this, "Site", {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      encryption: BucketEncryption.S3_MANAGED,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      serverAccessLogsBucket: buckets.accessLogs,
      serverAccessLogsPrefix: "dashboard/",
      // Like the stack's other buckets, it outlives `cdk destroy` (docs/aws.md, teardown).
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [{ id: "old-versions", noncurrentVersionExpiration: Duration.days(30) }],
    });

    // --- identity --------------------------------------------------------------------------
    this.userPool = new UserPool(this, "Users", {
      userPoolName: `${names.stackName}-dashboard`,
      // Administrators create users (docs/dashboard.md); nobody signs themselves up.
      selfSignUpEnabled: false,
      signInAliases: { email: true },
      autoVerify: { email: true },
      standardAttributes: { email: { required: true, mutable: false } },
      passwordPolicy: {
        minLength: 12,
        requireLowercase: true,
        requireUppercase: true,
        requireDigits: true,
        requireSymbols: true,
        tempPasswordValidity: Duration.days(3),
      },
      mfa: Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      accountRecovery: AccountRecovery.EMAIL_ONLY,
      featurePlan: FeaturePlan.ESSENTIALS,
      // Users and their MFA enrolments outlive a `cdk destroy`, as the tables do.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    Validations.of(this.userPool).acknowledge({
      id: "AwsSolutions-COG8",
      reason:
        "the Plus feature plan is billed per monthly active user; a team dashboard needs none of its features (MFA is required on Essentials)",
    });
    Validations.of(this.userPool).acknowledge({
      id: "AwsSolutions-COG3",
      reason:
        "threat protection (advanced security) needs the Plus feature plan, billed per monthly active user; MFA is required instead and sign-up is closed",
    });
    this.domain = this.userPool.addDomain("HostedUi", {
      cognitoDomain: { domainPrefix: props.domainPrefix ?? `${names.stackName}-${Aws.ACCOUNT_ID}` },
    });

    // --- the API ---------------------------------------------------------------------------
    const readTables = [tables.sweeps, tables.tasks, tables.instances];
    const scheduleSpecs = buckets.results.arnForObjects("schedules/*");
    const scheduleArns = `arn:${stack.partition}:scheduler:${stack.region}:${stack.account}:schedule/${scheduler.group.name}/*`;
    const { fn } = spawnFunction(this, {
      name: "dashboard-api",
      description: `spawn ${names.stackName}: the dashboard's API`,
      memorySize: 1024,
      timeout: Duration.seconds(29),
      environment: {
        SPAWN_TABLE_PREFIX: tablePrefix(names),
        SPAWN_ARTIFACTS_BUCKET: buckets.artifacts.bucketName,
        SPAWN_RESULTS_BUCKET: buckets.results.bucketName,
        SPAWN_HOME_REGION: names.homeRegion,
        SPAWN_SCHEDULE_GROUP: scheduler.group.name!,
        SPAWN_SCHEDULER_HANDLER_ARN: scheduler.function.functionArn,
        SPAWN_SCHEDULER_ROLE_ARN: scheduler.invokeRole.roleArn,
        SPAWN_SCHEDULES_DLQ_ARN: scheduler.deadLetters.queueArn,
        SPAWN_ALERTS_KEY_ARN: alerts.key.keyArn,
        SPAWN_ALERTS_TOPIC_ARN: alerts.topic.topicArn,
      },
      statements: () => [
        new PolicyStatement({
          sid: "ReadSweeps",
          actions: ["dynamodb:GetItem", "dynamodb:Query"],
          resources: readTables.flatMap((t) => [t.attrArn, `${t.attrArn}/index/*`]),
        }),
        // Cancel and retry: the same conditional writes `spawn sweep cancel|retry` makes.
        new PolicyStatement({
          sid: "SweepActions",
          actions: ["dynamodb:UpdateItem"],
          resources: [tables.sweeps.attrArn, tables.tasks.attrArn],
        }),
        new PolicyStatement({
          sid: "Teams",
          actions: ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query"],
          resources: [tables.teams.attrArn, `${tables.teams.attrArn}/index/*`],
        }),
        new PolicyStatement({
          sid: "ReadResults",
          actions: ["s3:GetObject"],
          resources: ["logs/*", "outputs/*", "metrics/*"].map((p) => buckets.results.arnForObjects(p)),
        }),
        new PolicyStatement({
          sid: "ListResults",
          actions: ["s3:ListBucket"],
          resources: [buckets.results.bucketArn],
          conditions: { StringLike: { "s3:prefix": ["logs/*", "outputs/*", "metrics/*"] } },
        }),
        // Schedules and alerts, through the CLI's services (docs/adr/0039-*): the same single-item
        // writes `spawn schedule` and `spawn alerts` make, on their tables and the indexes they query.
        new PolicyStatement({
          sid: "Schedules",
          actions: [
            "dynamodb:DeleteItem",
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:UpdateItem",
          ],
          resources: [
            tables.schedules.attrArn,
            `${tables.schedules.attrArn}/index/${INDEX.schedulesByOwner}`,
          ],
        }),
        new PolicyStatement({
          sid: "Alerts",
          actions: ["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query"],
          resources: [tables.alerts.attrArn],
        }),
        // A schedule made from a sweep stores that sweep's spec where firings read it.
        new PolicyStatement({
          sid: "StoreScheduleSpecs",
          actions: ["s3:PutObject"],
          resources: [scheduleSpecs],
        }),
        new PolicyStatement({
          sid: "ArmSchedules",
          actions: ["scheduler:CreateSchedule", "scheduler:UpdateSchedule", "scheduler:DeleteSchedule"],
          resources: [scheduleArns],
        }),
        // Scheduler invokes the handler as this role; passed to EventBridge Scheduler and nothing else.
        new PolicyStatement({
          sid: "PassSchedulerRole",
          actions: ["iam:PassRole"],
          resources: [scheduler.invokeRole.roleArn],
          conditions: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
        }),
        // Seal and open webhook URLs and secrets, bound to one alert by the encryption context.
        new PolicyStatement({
          sid: "SealAlertSecrets",
          actions: ["kms:GenerateDataKey", "kms:Decrypt"],
          resources: [alerts.key.keyArn],
          conditions: { "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": [CONTEXT_KEY] } },
        }),
        // An edited alert's e-mail channels are subscribed again; a deleted one's unsubscribed.
        new PolicyStatement({
          sid: "AlertSubscriptions",
          actions: ["sns:Subscribe", "sns:Unsubscribe"],
          resources: [alerts.topic.topicArn],
        }),
      ],
    });
    this.function = fn;
    acknowledgeWildcards(
      fn.role!,
      [
        ...readTables.map((t) => `${t.attrArn}/index/*`),
        `${tables.teams.attrArn}/index/*`,
        ...["logs/*", "outputs/*", "metrics/*"].map((p) => buckets.results.arnForObjects(p)),
      ],
      "the dashboard reads every sweep's indexes and its logs, outputs and metrics files; keys are per sweep and not known at deploy time",
    );
    acknowledgeWildcards(
      fn.role!,
      [scheduleSpecs, scheduleArns],
      "a schedule made in the dashboard stores its spec under schedules/ and is armed in the stack's own schedule group; both are named per schedule at run time",
    );

    this.api = new HttpApi(this, "Api", {
      apiName: `${names.stackName}-dashboard`,
      description: `spawn ${names.stackName}: the dashboard's API (behind the dashboard's CloudFront distribution)`,
      createDefaultStage: false,
    });
    const accessLogs = new LogGroup(this, "ApiAccessLogs", { retention: RetentionDays.ONE_MONTH });
    new HttpStage(this, "Stage", {
      httpApi: this.api,
      stageName: "$default",
      autoDeploy: true,
      accessLogSettings: { destination: new LogGroupLogDestination(accessLogs) },
      throttle: { rateLimit: 50, burstLimit: 100 },
    });

    // --- the site --------------------------------------------------------------------------
    const cognitoHost = `${this.domain.domainName}.auth.${stack.region}.amazoncognito.com`;
    const headers = new ResponseHeadersPolicy(this, "Headers", {
      comment: `spawn ${names.stackName} dashboard: CSP, HSTS, no sniffing, no framing`,
      securityHeadersBehavior: {
        contentSecurityPolicy: {
          contentSecurityPolicy: dashboardCsp(`https://${cognitoHost}`),
          override: true,
        },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: HeadersReferrerPolicy.NO_REFERRER, override: true },
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(365),
          includeSubdomains: true,
          override: true,
        },
      },
    });
    const apiBehavior = {
      origin: new HttpOrigin(`${this.api.apiId}.execute-api.${stack.region}.${stack.urlSuffix}`, {
        protocolPolicy: OriginProtocolPolicy.HTTPS_ONLY,
      }),
      viewerProtocolPolicy: ViewerProtocolPolicy.HTTPS_ONLY,
      allowedMethods: AllowedMethods.ALLOW_ALL,
      cachePolicy: CachePolicy.CACHING_DISABLED,
      originRequestPolicy: OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER,
      responseHeadersPolicy: headers,
    };
    this.distribution = new Distribution(this, "Cdn", {
      comment: `spawn ${names.stackName} dashboard`,
      defaultRootObject: "index.html",
      httpVersion: HttpVersion.HTTP2_AND_3,
      priceClass: PriceClass.PRICE_CLASS_100,
      defaultBehavior: {
        origin: S3BucketOrigin.withOriginAccessControl(this.site),
        viewerProtocolPolicy: ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        cachePolicy: CachePolicy.CACHING_OPTIMIZED,
        responseHeadersPolicy: headers,
      },
      additionalBehaviors: { "/api/*": apiBehavior },
    });
    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR1",
      reason:
        "a team's dashboard is used from wherever its members are; access is gated by Cognito sign-in, not by country",
    });
    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR2",
      reason:
        "no WAF web ACL (about 5 USD a month plus rules): every API call needs a Cognito token and the HTTP API stage throttles",
    });
    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR3",
      reason:
        "CloudFront standard logs need a bucket with ACLs, and the stack's log bucket enforces bucket-owner ownership; API calls are logged by the HTTP API stage",
    });
    Validations.of(this.distribution).acknowledge({
      id: "AwsSolutions-CFR4",
      reason:
        "the default *.cloudfront.net certificate allows older TLS versions; a custom domain with its own certificate is needed to pin TLSv1.2_2021",
    });
    this.url = `https://${this.distribution.distributionDomainName}`;

    this.client = this.userPool.addClient("Web", {
      userPoolClientName: `${names.stackName}-dashboard`,
      generateSecret: false,
      authFlows: {},
      preventUserExistenceErrors: true,
      oAuth: {
        flows: { authorizationCodeGrant: true },
        scopes: SCOPES,
        callbackUrls: [`${this.url}/`],
        logoutUrls: [`${this.url}/`],
      },
      idTokenValidity: Duration.hours(1),
      accessTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(1),
    });

    const authorizer = new HttpJwtAuthorizer(
      "Cognito",
      `https://cognito-idp.${stack.region}.${stack.urlSuffix}/${this.userPool.userPoolId}`,
      { jwtAudience: [this.client.userPoolClientId], identitySource: ["$request.header.Authorization"] },
    );
    this.api.addRoutes({
      path: "/api/{proxy+}",
      // PUT and DELETE edit and remove schedules and alerts.
      methods: [HttpMethod.GET, HttpMethod.POST, HttpMethod.PUT, HttpMethod.DELETE],
      integration: new HttpLambdaIntegration("Function", fn),
      authorizer,
    });

    // --- the UI's files --------------------------------------------------------------------
    const uiDir = props.uiDir ?? projectPath("dist", "dashboard");
    // The page reads its sign-in settings from /config.json (resolved at deploy time).
    const config = Source.jsonData("config.json", {
      auth: "cognito",
      region: stack.region,
      clientId: this.client.userPoolClientId,
      domain: `https://${cognitoHost}`,
      scopes: SCOPES.map((s) => s.scopeName),
    });
    if (existsSync(`${uiDir}/index.html`)) {
      const deployment = new BucketDeployment(this, "Ui", {
        sources: [Source.asset(uiDir), config],
        destinationBucket: this.site,
        distribution: this.distribution,
        distributionPaths: ["/*"],
        memoryLimit: 256,
      });
      acknowledgeDeployment(deployment, this.site);
    } else {
      Annotations.of(this).addInfo(
        `the dashboard UI is not built (${uiDir}): run \`npm run build\` before deploying, or the site is empty`,
      );
    }
  }
}

/**
 * BucketDeployment's provider function is CDK's own singleton at the stack's root; its role is
 * CDK's design, acknowledged finding by finding (cdk-nag names each action and resource).
 */
function acknowledgeDeployment(deployment: BucketDeployment, site: Bucket): void {
  const stack = Stack.of(deployment);
  const region = Token.isUnresolved(stack.region) ? "<AWS::Region>" : stack.region;
  const provider = stack.node.children.filter((c) => c.node.id.startsWith("Custom::CDKBucketDeployment"));
  const reasons: Record<string, string> = {
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]":
      "CDK's BucketDeployment provider writes its own logs with the AWS managed basic execution policy",
    "AwsSolutions-L1":
      "CDK's BucketDeployment provider pins its own Python runtime; it runs only during deploys",
    "AwsSolutions-IAM5[Resource::*]":
      "CDK's BucketDeployment provider invalidates the distribution; cloudfront:CreateInvalidation takes no resource ARN here",
    [`AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-${region}/*]`]:
      "CDK's BucketDeployment provider reads the UI's zipped asset from the CDK bootstrap bucket",
    [wildcardFinding(site, site.arnForObjects("*"))]:
      "CDK's BucketDeployment provider replaces every object of the dashboard's site bucket (the built UI)",
  };
  for (const action of ["s3:GetObject*", "s3:GetBucket*", "s3:List*", "s3:DeleteObject*", "s3:Abort*"])
    reasons[`AwsSolutions-IAM5[Action::${action}]`] =
      `CDK's BucketDeployment provider copies the built UI into the site bucket (${action} is CDK's grant)`;
  for (const construct of provider)
    for (const [id, reason] of Object.entries(reasons)) Validations.of(construct).acknowledge({ id, reason });
}
