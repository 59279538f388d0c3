/**
 * Task permissions: `resources.iam` grants become the IAM policy of a per-sweep role that
 * only the task's own code uses (never the agent's role). Every grant expands from a fixed
 * template to the fewest actions on the narrowest resources; a wildcard appears only where
 * the user wrote one in the one place it is allowed (a whole trailing path segment, `bucket/*`),
 * or where AWS's own naming needs it (the random suffix of a Secrets Manager ARN).
 * Pure: policy files are read by the caller and passed in as parsed JSON. See docs/task-iam.md.
 */
import { z } from "zod";
import { SpecError, type SpecIssue } from "./spec-error.js";

/** The grant kinds, as written before the first `:` pair. */
export const GRANT_KINDS = [
  "s3:read",
  "s3:write",
  "dynamodb:read",
  "dynamodb:write",
  "secrets:read",
  "ssm:read",
  "policy-file",
] as const;
export type GrantKind = (typeof GRANT_KINDS)[number];

/** One parsed `resources.iam` item. */
export type Grant =
  | {
      kind: "s3:read" | "s3:write";
      bucket: string /** `""` for the whole bucket (`bucket/*`). */;
      prefix: string;
    }
  | { kind: "dynamodb:read" | "dynamodb:write"; table: string }
  | { kind: "secrets:read"; secret: string }
  | { kind: "ssm:read"; parameter: string }
  | { kind: "policy-file"; path: string };

const S3_BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const S3_PREFIX_SEGMENT = /^[A-Za-z0-9!_.'()=+,@-]+$/;
const DYNAMO_TABLE = /^[A-Za-z0-9_.-]{3,255}$/;
const SECRET_NAME = /^[A-Za-z0-9/_+=.@-]{1,512}$/;
const SSM_NAME = /^\/?[A-Za-z0-9_.\-/]{1,1011}$/;
const TABLE_ARN = /^arn:aws[a-z-]*:dynamodb:[a-z]{2}(-[a-z]+)+-\d:\d{12}:table\/[A-Za-z0-9_.-]{3,255}$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z]{2}(-[a-z]+)+-\d:\d{12}:secret:[A-Za-z0-9/_+=.@-]+$/;
const WILDCARD = /[*?]/;

/** Parses one grant; throws an Error whose message says what is wrong and how to write it. */
export function parseGrant(text: string): Grant {
  const match =
    /^(s3:read|s3:write|dynamodb:read|dynamodb:write|secrets:read|ssm:read|policy-file):(.+)$/.exec(text);
  if (!match) {
    throw new Error(
      `unknown grant ${JSON.stringify(text)}: use one of ${GRANT_KINDS.map((k) => `${k}:…`).join(", ")}`,
    );
  }
  const kind = match[1] as GrantKind;
  const target = match[2] as string;
  switch (kind) {
    case "s3:read":
    case "s3:write": {
      const slash = target.indexOf("/");
      const bucket = slash < 0 ? target : target.slice(0, slash);
      if (!S3_BUCKET.test(bucket))
        throw new Error(`${kind}: ${JSON.stringify(bucket)} is not an S3 bucket name`);
      if (slash < 0) {
        throw new Error(
          `${kind}:${bucket} names no prefix: write ${kind}:${bucket}/<prefix>, or ${kind}:${bucket}/* to grant the whole bucket`,
        );
      }
      const rest = target.slice(slash + 1);
      if (rest === "*") return { kind, bucket, prefix: "" };
      const segments = rest.replace(/\/(\*)?$/, "").split("/");
      for (const segment of segments) {
        if (WILDCARD.test(segment)) {
          throw new Error(
            `${kind}: ${JSON.stringify(text)} has a wildcard inside the prefix; only a whole trailing /* is allowed`,
          );
        }
        if (!S3_PREFIX_SEGMENT.test(segment)) {
          throw new Error(`${kind}: ${JSON.stringify(segment)} is not a valid key prefix segment`);
        }
      }
      return { kind, bucket, prefix: `${segments.join("/")}/` };
    }
    case "dynamodb:read":
    case "dynamodb:write":
      if (WILDCARD.test(target)) throw new Error(`${kind}: wildcards are not allowed in table names`);
      if (!DYNAMO_TABLE.test(target) && !TABLE_ARN.test(target))
        throw new Error(`${kind}: ${JSON.stringify(target)} is not a DynamoDB table name or table ARN`);
      return { kind, table: target };
    case "secrets:read":
      if (WILDCARD.test(target)) throw new Error(`${kind}: wildcards are not allowed in secret names`);
      if (!SECRET_NAME.test(target) && !SECRET_ARN.test(target))
        throw new Error(`${kind}: ${JSON.stringify(target)} is not a Secrets Manager secret name or ARN`);
      return { kind, secret: target };
    case "ssm:read":
      if (WILDCARD.test(target)) throw new Error(`${kind}: wildcards are not allowed in parameter names`);
      if (!SSM_NAME.test(target))
        throw new Error(`${kind}: ${JSON.stringify(target)} is not an SSM parameter name`);
      return { kind, parameter: target.replace(/^\//, "") };
    case "policy-file":
      return { kind, path: target };
  }
}

const StringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** An IAM statement as a policy file may hold it (identity policy: no Principal). */
export const PolicyStatement = z
  .strictObject({
    Sid: z
      .string()
      .regex(/^[A-Za-z0-9]*$/, "Sid uses letters and digits only")
      .optional(),
    Effect: z.enum(["Allow", "Deny"]),
    Action: StringOrList.optional(),
    NotAction: StringOrList.optional(),
    Resource: StringOrList.optional(),
    NotResource: StringOrList.optional(),
    Condition: z
      .record(z.string(), z.record(z.string(), z.union([z.string(), z.array(z.string())])))
      .optional(),
  })
  .refine(
    (s) => (s.Action === undefined) !== (s.NotAction === undefined),
    "needs exactly one of Action, NotAction",
  )
  .refine(
    (s) => (s.Resource === undefined) !== (s.NotResource === undefined),
    "needs exactly one of Resource, NotResource",
  );
export type PolicyStatement = z.infer<typeof PolicyStatement>;

/** An identity-based IAM policy document. */
export const PolicyDocument = z.strictObject({
  Version: z.literal("2012-10-17"),
  Id: z.string().optional(),
  Statement: z.union([PolicyStatement, z.array(PolicyStatement).min(1)]),
});
export type PolicyDocument = { Version: "2012-10-17"; Statement: PolicyStatement[] };

/** Where the task role lives; names become ARNs in these regions. */
export interface PolicyContext {
  /** 12-digit account id of the deployment. */
  account: string;
  /** Regions the sweep may run in: a table or secret given by name is granted in each. */
  regions: readonly string[];
  /** @default "aws" */
  partition?: string;
  /** Parsed contents of every `policy-file:<path>` grant, keyed by the path as written. */
  policyFiles?: Readonly<Record<string, unknown>>;
}

/** The largest inline role policy IAM accepts (characters, whitespace excluded). */
export const MAX_INLINE_POLICY_CHARS = 10_240;

/** Validates a policy file's parsed JSON; returns the problems in words (empty when it is fine). */
export function policyFileProblems(doc: unknown): string[] {
  const result = PolicyDocument.safeParse(doc);
  if (result.success) return [];
  return result.error.issues.map((i) => `${i.path.join(".") || "(document)"}: ${i.message}`);
}

/**
 * The task role's policy for `resources.iam`. Throws SpecError naming `resources.iam[i]` for a
 * grant that does not parse, a missing or malformed policy file, or a document over IAM's size limit.
 */
export function taskPolicyDocument(grants: readonly string[], context: PolicyContext): PolicyDocument {
  const partition = context.partition ?? "aws";
  const issues: SpecIssue[] = [];
  const statements: PolicyStatement[] = [];
  if (!/^\d{12}$/.test(context.account)) throw new Error(`account must be 12 digits, got ${context.account}`);
  grants.forEach((text, i) => {
    const path = `resources.iam[${i}]`;
    let grant: Grant;
    try {
      grant = parseGrant(text);
    } catch (error) {
      issues.push({ path, message: (error as Error).message });
      return;
    }
    const sid = (name: string) => `${name}${i}`;
    const inRegions = (service: string, resource: string) =>
      context.regions.map((r) => `arn:${partition}:${service}:${r}:${context.account}:${resource}`);
    switch (grant.kind) {
      case "s3:read":
      case "s3:write": {
        const objects = `arn:${partition}:s3:::${grant.bucket}/${grant.prefix}*`;
        if (grant.kind === "s3:write") {
          statements.push({
            Sid: sid("S3Write"),
            Effect: "Allow",
            Action: ["s3:PutObject", "s3:AbortMultipartUpload"],
            Resource: objects,
          });
          break;
        }
        statements.push({ Sid: sid("S3Read"), Effect: "Allow", Action: "s3:GetObject", Resource: objects });
        statements.push({
          Sid: sid("S3List"),
          Effect: "Allow",
          Action: "s3:ListBucket",
          Resource: `arn:${partition}:s3:::${grant.bucket}`,
          // Listing is limited to the granted prefix; the whole-bucket form lists everything.
          ...(grant.prefix ? { Condition: { StringLike: { "s3:prefix": [`${grant.prefix}*`] } } } : {}),
        });
        break;
      }
      case "dynamodb:read":
      case "dynamodb:write": {
        const tables = grant.table.startsWith("arn:")
          ? [grant.table]
          : inRegions("dynamodb", `table/${grant.table}`);
        statements.push(
          grant.kind === "dynamodb:read"
            ? {
                Sid: sid("DynamoDBRead"),
                Effect: "Allow",
                Action: [
                  "dynamodb:BatchGetItem",
                  "dynamodb:ConditionCheckItem",
                  "dynamodb:DescribeTable",
                  "dynamodb:GetItem",
                  "dynamodb:Query",
                  "dynamodb:Scan",
                ],
                Resource: [...tables, ...tables.map((t) => `${t}/index/*`)],
              }
            : {
                Sid: sid("DynamoDBWrite"),
                Effect: "Allow",
                Action: [
                  "dynamodb:BatchWriteItem",
                  "dynamodb:DeleteItem",
                  "dynamodb:PutItem",
                  "dynamodb:UpdateItem",
                ],
                Resource: tables,
              },
        );
        break;
      }
      case "secrets:read":
        statements.push({
          Sid: sid("SecretRead"),
          Effect: "Allow",
          Action: ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
          // A secret's ARN ends in "-" and six random characters that AWS adds at creation.
          Resource: grant.secret.startsWith("arn:")
            ? grant.secret
            : inRegions("secretsmanager", `secret:${grant.secret}-??????`),
        });
        break;
      case "ssm:read":
        statements.push({
          Sid: sid("ParameterRead"),
          Effect: "Allow",
          Action: ["ssm:GetParameter", "ssm:GetParameters"],
          Resource: inRegions("ssm", `parameter/${grant.parameter}`),
        });
        break;
      case "policy-file": {
        const doc = context.policyFiles?.[grant.path];
        if (doc === undefined) {
          issues.push({ path, message: `policy file ${grant.path} was not read` });
          break;
        }
        const problems = policyFileProblems(doc);
        if (problems.length > 0) {
          issues.push({ path, message: `policy file ${grant.path}: ${problems.join("; ")}` });
          break;
        }
        const parsed = PolicyDocument.parse(doc);
        const list = Array.isArray(parsed.Statement) ? parsed.Statement : [parsed.Statement];
        // The file's statements are used as written; Sids are made unique across grants.
        statements.push(...list.map((s, j) => ({ ...s, Sid: `${s.Sid ?? "File"}${i}x${j}` })));
        break;
      }
    }
  });
  if (issues.length > 0) throw new SpecError(issues);
  const document: PolicyDocument = { Version: "2012-10-17", Statement: statements };
  const size = JSON.stringify(document).length;
  if (size > MAX_INLINE_POLICY_CHARS) {
    throw new SpecError([
      {
        path: "resources.iam",
        message: `the task policy is ${size} characters, over IAM's ${MAX_INLINE_POLICY_CHARS}: use fewer grants or one policy-file`,
      },
    ]);
  }
  return document;
}
