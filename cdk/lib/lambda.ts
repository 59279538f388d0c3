/**
 * What every spawn Lambda shares: its bundle built by scripts/lambdas.mjs at synth (ADR 0031), Node
 * 22 on arm64, its own log group (30 days) and a role that may write only to it plus the
 * statements the function needs, and the runtime acknowledgement for cdk-nag.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { type Duration, Validations } from "aws-cdk-lib";
import { PolicyDocument, PolicyStatement, Role, ServicePrincipal } from "aws-cdk-lib/aws-iam";
import { Architecture, Code, Function as LambdaFunction, Runtime } from "aws-cdk-lib/aws-lambda";
import { LogGroup, RetentionDays } from "aws-cdk-lib/aws-logs";
import type { Construct } from "constructs";
import { LAMBDA_NODE_OPTIONS } from "../../scripts/lambdas.mjs";
import { projectPath } from "./paths.js";

const bundles = new Map<string, string>();

/** A file deployed beside a bundle: a project path (kept under its own name), or any path under a new name. */
export type BundledFile = string | { path: string; as: string };

/**
 * The directory the function is deployed from: `lambdas/<name>/handler.ts` bundled into
 * `index.mjs` (+ source map) by `node scripts/lambdas.mjs`, the build the bundle test and
 * bench/lambda-bundles.mjs measure, plus `files` copied beside it. Built once per process and
 * name, at synth, so a deployment never ships a stale bundle. esbuild runs in a child process
 * because its plugins (zod's locales to English) need its async API and constructs are built
 * synchronously.
 */
export function lambdaBundle(name: string, files: readonly BundledFile[] = []): string {
  const key = JSON.stringify([name, files]);
  const cached = bundles.get(key);
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), `spawn-lambda-${name}-`));
  // The asset is staged (copied into the cloud assembly) when the function is built; this copy
  // is only reused by later functions of the same process.
  process.once("exit", () => rmSync(dir, { recursive: true, force: true }));
  const build = spawnSync(process.execPath, [projectPath("scripts", "lambdas.mjs"), dir, name], {
    cwd: projectPath(),
    encoding: "utf8",
  });
  if (build.status !== 0) {
    throw new Error(
      `bundling the ${name} Lambda failed (node scripts/lambdas.mjs ${dir} ${name}): ${build.stderr || build.error?.message || `exit ${build.status}`}`,
    );
  }
  for (const file of files) {
    const [from, as] = typeof file === "string" ? [projectPath(file), basename(file)] : [file.path, file.as];
    copyFileSync(from, join(dir, as));
  }
  bundles.set(key, dir);
  return dir;
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
  /** Files copied beside the bundle (read at run time from `/var/task`), e.g. the price catalog. */
  files?: readonly BundledFile[];
}

/** A spawn Lambda in `scope`: constructs `Logs`, `Role` and `Function`. */
export function spawnFunction(
  scope: Construct,
  props: SpawnFunctionProps,
): { fn: LambdaFunction; role: Role } {
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
  const fn = new LambdaFunction(scope, "Function", {
    description: props.description,
    code: Code.fromAsset(lambdaBundle(props.name, props.files)),
    handler: "index.handler",
    runtime: Runtime.NODEJS_22_X,
    architecture: Architecture.ARM_64,
    memorySize: props.memorySize,
    timeout: props.timeout,
    role,
    logGroup,
    environment: { ...props.environment, NODE_OPTIONS: LAMBDA_NODE_OPTIONS },
  });
  Validations.of(fn).acknowledge({
    id: "AwsSolutions-L1",
    reason:
      "nodejs22.x is the runtime spawn builds and tests its Lambdas for (bundles target node22); raise it with the project's Node floor",
  });
  return { fn, role };
}
