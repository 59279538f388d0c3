import { Match } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { type Synthesized, synthesize } from "./test/fixtures.js";

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };

let s: Synthesized;
beforeAll(() => {
  s = synthesize({ "spawn:dashboardDomainPrefix": "team-sweeps" });
});

const resources = (type: string) =>
  Object.entries(s.homeTemplate.findResources(type) as Record<string, Resource>);
const only = (type: string) => {
  const found = resources(type);
  expect(found, type).toHaveLength(1);
  return found[0]![1];
};
const json = (value: unknown) => JSON.stringify(s.home.resolve(value));

describe("dashboard site", () => {
  it("keeps the UI in a private, versioned, encrypted, TLS-only bucket that only CloudFront reads", () => {
    const [id, site] = resources("AWS::S3::Bucket").find(([logicalId]) =>
      logicalId.startsWith("DashboardSite"),
    )!;
    expect(json(site.Properties.LoggingConfiguration)).toContain("dashboard/");
    expect(site.Properties).toMatchObject({
      VersioningConfiguration: { Status: "Enabled" },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: "AES256" } }],
      },
    });
    const policy = resources("AWS::S3::BucketPolicy").find(([, p]) =>
      json(p.Properties.Bucket).includes(id),
    )!;
    const statements = (policy[1].Properties.PolicyDocument as { Statement: Record<string, unknown>[] })
      .Statement;
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: "Deny", Condition: { Bool: { "aws:SecureTransport": "false" } } }),
    );
    const read = statements.find((st) => json(st.Principal).includes("cloudfront.amazonaws.com"));
    expect(read).toMatchObject({ Effect: "Allow", Action: "s3:GetObject" });
    expect(json(read?.Condition)).toContain("AWS:SourceArn");
  });

  it("serves it through CloudFront with Origin Access Control (no OAI), HTTPS only, and /api/* to the HTTP API", () => {
    const oac = only("AWS::CloudFront::OriginAccessControl");
    expect(oac.Properties.OriginAccessControlConfig).toMatchObject({
      OriginAccessControlOriginType: "s3",
      SigningBehavior: "always",
      SigningProtocol: "sigv4",
    });
    s.homeTemplate.resourceCountIs("AWS::CloudFront::CloudFrontOriginAccessIdentity", 0);
    const config = only("AWS::CloudFront::Distribution").Properties.DistributionConfig as Record<
      string,
      unknown
    >;
    expect(config.DefaultRootObject).toBe("index.html");
    expect(config.DefaultCacheBehavior).toMatchObject({ ViewerProtocolPolicy: "redirect-to-https" });
    const api = (config.CacheBehaviors as Record<string, unknown>[]).find((b) => b.PathPattern === "/api/*");
    expect(api).toMatchObject({
      ViewerProtocolPolicy: "https-only",
      AllowedMethods: expect.arrayContaining(["GET", "POST"]),
      // CachingDisabled: every call is answered for its caller only.
      CachePolicyId: "4135ea2d-6df8-44a3-9df3-4b5a84be39ad",
    });
    const origins = config.Origins as {
      CustomOriginConfig?: { OriginProtocolPolicy: string };
      DomainName: unknown;
    }[];
    const apiOrigin = origins.find((o) => json(o.DomainName).includes("execute-api"));
    expect(apiOrigin?.CustomOriginConfig?.OriginProtocolPolicy).toBe("https-only");
  });

  it("sends a CSP that allows only this origin and the Cognito token endpoint, plus HSTS, nosniff and DENY", () => {
    const policy = only("AWS::CloudFront::ResponseHeadersPolicy").Properties.ResponseHeadersPolicyConfig as {
      SecurityHeadersConfig: Record<string, Record<string, unknown>>;
    };
    const headers = policy.SecurityHeadersConfig;
    const csp = json(headers.ContentSecurityPolicy?.ContentSecurityPolicy);
    expect(csp).toContain("default-src 'none'; script-src 'self'; style-src 'self'");
    expect(csp).toContain("connect-src 'self' https://");
    expect(csp).toContain(".amazoncognito.com");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("unsafe-inline");
    expect(headers.ContentTypeOptions).toEqual({ Override: true });
    expect(headers.FrameOptions).toEqual({ FrameOption: "DENY", Override: true });
    expect(headers.StrictTransportSecurity).toMatchObject({ AccessControlMaxAgeSec: 31_536_000 });
  });
});

describe("dashboard identity and API", () => {
  it("makes a closed user pool with required MFA, and a public PKCE client for the hosted UI", () => {
    const pool = only("AWS::Cognito::UserPool");
    expect(pool.Properties).toMatchObject({
      AdminCreateUserConfig: { AllowAdminCreateUserOnly: true },
      MfaConfiguration: "ON",
      UsernameAttributes: ["email"],
    });
    expect(pool.DeletionPolicy).toBe("Retain");
    const client = only("AWS::Cognito::UserPoolClient").Properties;
    expect(client).toMatchObject({
      GenerateSecret: false,
      AllowedOAuthFlows: ["code"],
      AllowedOAuthFlowsUserPoolClient: true,
      AllowedOAuthScopes: ["openid", "email"],
      PreventUserExistenceErrors: "ENABLED",
    });
    expect(json(client.CallbackURLs)).toContain('"DashboardCdn');
    expect(only("AWS::Cognito::UserPoolDomain").Properties.Domain).toBe("team-sweeps");
  });

  it("puts a Cognito JWT authorizer on every API route, and logs and throttles the stage", () => {
    const authorizer = only("AWS::ApiGatewayV2::Authorizer").Properties;
    expect(authorizer).toMatchObject({
      AuthorizerType: "JWT",
      IdentitySource: ["$request.header.Authorization"],
    });
    expect(json(authorizer.JwtConfiguration)).toContain("cognito-idp.");
    const routes = resources("AWS::ApiGatewayV2::Route");
    expect(routes.map(([, r]) => r.Properties.RouteKey).sort()).toEqual([
      "DELETE /api/{proxy+}",
      "GET /api/{proxy+}",
      "POST /api/{proxy+}",
      "PUT /api/{proxy+}",
    ]);
    for (const [, route] of routes) expect(route.Properties.AuthorizationType).toBe("JWT");
    const stage = only("AWS::ApiGatewayV2::Stage").Properties;
    expect(stage).toMatchObject({
      StageName: "$default",
      AutoDeploy: true,
      DefaultRouteSettings: { ThrottlingRateLimit: 50, ThrottlingBurstLimit: 100 },
    });
    expect(stage.AccessLogSettings).toBeDefined();
  });

  it("runs dashboard-api with read access to sweeps, write access only where cancel, retry and teams write", () => {
    const fn = resources("AWS::Lambda::Function").find(([, f]) =>
      String(f.Properties.Description).includes("dashboard's API"),
    )![1];
    expect(fn.Properties).toMatchObject({ Runtime: "nodejs22.x", Architectures: ["arm64"] });
    expect(Object.keys((fn.Properties.Environment as { Variables: object }).Variables)).toEqual(
      expect.arrayContaining(["SPAWN_TABLE_PREFIX", "SPAWN_RESULTS_BUCKET", "SPAWN_HOME_REGION"]),
    );
    const role = resources("AWS::IAM::Role").find(([id]) => id.startsWith("DashboardRole"))![1];
    const statements = (
      role.Properties.Policies as { PolicyDocument: { Statement: Record<string, unknown>[] } }[]
    ).flatMap((p) => p.PolicyDocument.Statement);
    const bySid = Object.fromEntries(statements.map((st) => [st.Sid, st]));
    expect(bySid.ReadSweeps?.Action).toEqual(["dynamodb:GetItem", "dynamodb:Query"]);
    expect(bySid.SweepActions?.Action).toBe("dynamodb:UpdateItem");
    expect(json(bySid.Teams?.Resource)).toContain("Tablesteams");
    expect(bySid.ReadResults?.Action).toBe("s3:GetObject");
    const actions = statements.flatMap((st) => (Array.isArray(st.Action) ? st.Action : [st.Action]));
    expect(actions).not.toContain("dynamodb:BatchWriteItem");
    expect(actions).not.toContain("dynamodb:Scan");
    // The one object it writes: a scheduled sweep's stored spec.
    expect(statements.filter((st) => String(st.Action).startsWith("s3:Put"))).toEqual([
      expect.objectContaining({ Sid: "StoreScheduleSpecs", Action: "s3:PutObject" }),
    ]);
    expect(json(bySid.StoreScheduleSpecs?.Resource)).toMatch(
      /BucketsResults\w+","Arn"\]\},"\/schedules\/\*"/,
    );
  });

  it("lets dashboard-api manage schedules and alerts exactly as the CLI does, and nothing beyond", () => {
    const fn = resources("AWS::Lambda::Function").find(([, f]) =>
      String(f.Properties.Description).includes("dashboard's API"),
    )![1];
    const variables = (fn.Properties.Environment as { Variables: Record<string, unknown> }).Variables;
    expect(json(variables.SPAWN_SCHEDULE_GROUP)).toBe('"spawn-schedules"');
    expect(json(variables.SPAWN_SCHEDULER_ROLE_ARN)).toContain("SchedulerInvokeRole");
    expect(json(variables.SPAWN_ALERTS_KEY_ARN)).toContain("AlertsKey");
    const role = resources("AWS::IAM::Role").find(([id]) => id.startsWith("DashboardRole"))![1];
    const statements = (
      role.Properties.Policies as { PolicyDocument: { Statement: Record<string, unknown>[] } }[]
    ).flatMap((p) => p.PolicyDocument.Statement);
    const bySid = Object.fromEntries(statements.map((st) => [st.Sid, st]));

    // EventBridge Scheduler: create, update and delete, in the stack's own schedule group only
    expect(bySid.ArmSchedules?.Action).toEqual([
      "scheduler:CreateSchedule",
      "scheduler:UpdateSchedule",
      "scheduler:DeleteSchedule",
    ]);
    expect(json(bySid.ArmSchedules?.Resource)).toMatch(/:schedule\/spawn-schedules\/\*"/);
    // iam:PassRole of the scheduler's invoke role only, and only to EventBridge Scheduler
    expect(bySid.PassSchedulerRole).toMatchObject({
      Action: "iam:PassRole",
      Condition: { StringEquals: { "iam:PassedToService": "scheduler.amazonaws.com" } },
    });
    expect(json(bySid.PassSchedulerRole?.Resource)).toMatch(
      /^\{"Fn::GetAtt":\["SchedulerInvokeRole\w+","Arn"\]\}$/,
    );
    // KMS: seal and open on the alerts key, bound to an alert's encryption context
    expect(bySid.SealAlertSecrets).toMatchObject({
      Action: ["kms:GenerateDataKey", "kms:Decrypt"],
      Condition: { "ForAllValues:StringEquals": { "kms:EncryptionContextKeys": ["spawn:alert"] } },
    });
    expect(json(bySid.SealAlertSecrets?.Resource)).toMatch(/^\{"Fn::GetAtt":\["AlertsKey\w+","Arn"\]\}$/);
    expect(bySid.AlertSubscriptions?.Action).toEqual(["sns:Subscribe", "sns:Unsubscribe"]);
    expect(json(bySid.AlertSubscriptions?.Resource)).toMatch(/^\{"Ref":"AlertsTopic\w+"\}$/);
    // The schedules and alerts tables: the store's single-item writes and the owner index's queries
    expect(json(bySid.Schedules?.Resource)).toMatch(/Tablesschedules.*\/index\/by-owner"/);
    expect(json(bySid.Alerts?.Resource)).toContain("Tablesalerts");
    expect(bySid.Alerts?.Action).toEqual(["dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query"]);
    // Nothing of the kind anywhere else in its policy
    const everything = json(statements);
    expect(everything).not.toMatch(/"iam:\*"|"kms:\*"|"scheduler:\*"|"kms:Encrypt"/);
    expect(statements.filter((st) => JSON.stringify(st.Action).includes("iam:"))).toHaveLength(1);
  });

  it("outputs the dashboard URL, user pool id and client id", () => {
    const outputs = s.homeTemplate.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(json(outputs.DashboardUrl?.Value)).toMatch(/"DashboardCdn\w+","DomainName"/);
    expect(json(outputs.DashboardUserPoolId?.Value)).toContain("DashboardUsers");
    expect(json(outputs.DashboardClientId?.Value)).toContain("DashboardUsersWeb");
  });

  it("deploys the built UI with its sign-in settings, and invalidates the distribution", () => {
    const deployments = s.homeTemplate.findResources("Custom::CDKBucketDeployment");
    const [deployment] = Object.values(deployments) as Resource[];
    expect(deployment, "dist/dashboard must be built (npm run build) for this test").toBeDefined();
    expect(deployment!.Properties).toMatchObject({ DistributionPaths: ["/*"] });
    expect(json(deployment!.Properties.SourceMarkers)).toContain("DashboardUsersWeb");
  });

  it("rejects a hosted UI prefix Cognito would refuse, naming the context key", () => {
    expect(() => synthesize({ "spawn:dashboardDomainPrefix": "my-aws-team" })).toThrow(
      "spawn:dashboardDomainPrefix: must not contain aws, amazon or cognito",
    );
  });
});

it("keeps the teams table in the stack with the other tables", () => {
  s.homeTemplate.hasResourceProperties("AWS::DynamoDB::Table", {
    TableName: "spawn-teams",
    KeySchema: [
      { AttributeName: "pk", KeyType: "HASH" },
      { AttributeName: "sk", KeyType: "RANGE" },
    ],
    GlobalSecondaryIndexes: [Match.objectLike({ IndexName: "by-team" })],
  });
});
