/**
 * What every spawn Lambda shares: esbuild bundling from node_modules (never Docker), Node 22 on
 * arm64, its own log group (30 days) and a role that may write only to it plus the statements
 * the function needs, and the runtime acknowledgement for cdk-nag.
 */
import { type Duration, Validations } from "aws-cdk-lib";
import { PolicyDocument, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Runtime } from "aws-cdk-lib/aws-lambda";
import { NodejsFunction, OutputFormat } from "aws-cdk-lib/aws-lambda-nodejs";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { projectPath } from "./paths.js";

/**
 * Bundling shared by every spawn Lambda: esbuild from node_modules (never Docker), one minified
 * ES module for Node 22 on arm64, the AWS SDK left to the runtime, source maps for stack traces.
 */
export function lambdaBundling(options: { files?: readonly string[] } = {}) {
  const files = options.files ?? [];
  return {
    // Data files the function reads beside its bundle (e.g. the price catalog), copied in.
    ...(files.length
      ? {
          commandHooks: {
            beforeBundling: () => [],
            beforeInstall: () => [],
            afterBundling: (inputDir: string, outputDir: string) =>
              files.map((f) => `cp "${inputDir}/${f}" "${outputDir}/"`),
          },
        }
      : {}),
    format: OutputFormat.ESM,
    target: "node22",
    minify: true,
    sourceMap: true,
    externalModules: ["@aws-sdk/*"],
    forceDockerBundling: false,
    // Bundled CommonJS dependencies call require(); give the ES module output one.
    banner:
      "import { createRequire as __spawnCreateRequire } from 'node:module'; const require = __spawnCreateRequire(import.meta.url);",
  };
}

export interface SpawnFunctionProps {
  /** The handler's directory under lambdas/ (entry `lambdas/<name>/handler.ts`, export `handler`). */
  name: string;
  description: string;
  memorySize: number;
  timeout: Duration;
  /** Everything the function may do besides writing its own logs. */
  statements: (logGroup: LogGroup) => PolicyStatement[];
  environment: Record<string, string>;
  /** Project files copied beside the bundle (read at run time). */
  files?: readonly string[];
}

/** A spawn Lambda in `scope`: constructs `Logs`, `Role` and `Function`. */
export function spawnFunction(
  scope: Construct,
  props: SpawnFunctionProps,
): { fn: NodejsFunction; role: Role } {
  const logGroup = new LogGroup(scope, "Logs", { retention: RetentionDays.ONE_MONTH });
  const role = new Role(scope, "Role", {
    assumedBy: new ServicePrincipal("lambda.amazonaws.com"),
    description: props.description,
    inlinePolicies: {
      [props.name]: new PolicyDocument({
        statements: [
          new PolicyStatement({
            sid: "Logs",
            actions: ["logs:CreateLogStream", "logs:PutLogEvents"],
            resources: [logGroup.logGroupArn],
          }),
          ...props.statements(logGroup),
        ],
      }),
    },
  });
  const fn = new NodejsFunction(scope, "Function", {
    description: props.description,
    entry: projectPath("lambdas", props.name, "handler.ts"),
    handler: "handler",
    projectRoot: projectPath(),
    depsLockFilePath: projectPath("package-lock.json"),
    runtime: Runtime.NODEJS_22_X,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    bundling: lambdaBundling(props.files ? { files: props.files } : {}),
    environment: { ...props.environment, NODE_OPTIONS: "--enable-source-maps" },
  });
  Validations.of(fn).acknowledge({
    id: "AwsSolutions-L1",
    reason:
      "nodejs22.x is the runtime spawn builds and tests its Lambdas for (bundles target node22); raise it with the project's Node floor",
  });
  return { fn, role };
}
