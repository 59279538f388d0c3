import { describe, expect, test } from "vitest";
import { parseGrant, policyFileProblems, taskPolicyDocument } from "./iam-policy.js";
import { SpecError } from "./spec.js";

const context = { account: "123456789012", regions: ["us-east-1", "us-west-2"] };

/** The issues taskPolicyDocument reports, or fails the test if it accepts the grants. */
function issuesOf(grants: string[], policyFiles?: Record<string, unknown>) {
  try {
    taskPolicyDocument(grants, { ...context, ...(policyFiles ? { policyFiles } : {}) });
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    return (error as SpecError).issues;
  }
  throw new Error(`grants were accepted: ${grants.join(", ")}`);
}

describe("taskPolicyDocument: templates", () => {
  test("s3:read grants GetObject under the prefix and ListBucket limited to it", () => {
    expect(taskPolicyDocument(["s3:read:my-data/train/v1"], context)).toEqual({
      Version: "2012-10-17",
      Statement: [
        {
          Sid: "S3Read0",
          Effect: "Allow",
          Action: "s3:GetObject",
          Resource: "arn:aws:s3:::my-data/train/v1/*",
        },
        {
          Sid: "S3List0",
          Effect: "Allow",
          Action: "s3:ListBucket",
          Resource: "arn:aws:s3:::my-data",
          Condition: { StringLike: { "s3:prefix": ["train/v1/*"] } },
        },
      ],
    });
  });

  test("a trailing slash or /* on the prefix means the same folder; bucket/* is the whole bucket", () => {
    const a = taskPolicyDocument(["s3:read:my-data/train/"], context);
    const b = taskPolicyDocument(["s3:read:my-data/train/*"], context);
    expect(a).toEqual(b);
    expect(taskPolicyDocument(["s3:read:my-data/*"], context).Statement).toEqual([
      { Sid: "S3Read0", Effect: "Allow", Action: "s3:GetObject", Resource: "arn:aws:s3:::my-data/*" },
      { Sid: "S3List0", Effect: "Allow", Action: "s3:ListBucket", Resource: "arn:aws:s3:::my-data" },
    ]);
  });

  test("s3:write grants PutObject and multipart abort under the prefix only, no read, no delete", () => {
    expect(
      taskPolicyDocument(["s3:write:results/sweeps"], { ...context, partition: "aws-cn" }).Statement,
    ).toEqual([
      {
        Sid: "S3Write0",
        Effect: "Allow",
        Action: ["s3:PutObject", "s3:AbortMultipartUpload"],
        Resource: "arn:aws-cn:s3:::results/sweeps/*",
      },
    ]);
  });

  test("dynamodb grants name the table (and its indexes for reads) in every sweep region", () => {
    const { Statement } = taskPolicyDocument(["dynamodb:read:runs", "dynamodb:write:runs"], context);
    expect(Statement).toEqual([
      {
        Sid: "DynamoDBRead0",
        Effect: "Allow",
        Action: [
          "dynamodb:BatchGetItem",
          "dynamodb:ConditionCheckItem",
          "dynamodb:DescribeTable",
          "dynamodb:GetItem",
          "dynamodb:Query",
          "dynamodb:Scan",
        ],
        Resource: [
          "arn:aws:dynamodb:us-east-1:123456789012:table/runs",
          "arn:aws:dynamodb:us-west-2:123456789012:table/runs",
          "arn:aws:dynamodb:us-east-1:123456789012:table/runs/index/*",
          "arn:aws:dynamodb:us-west-2:123456789012:table/runs/index/*",
        ],
      },
      {
        Sid: "DynamoDBWrite1",
        Effect: "Allow",
        Action: ["dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:UpdateItem"],
        Resource: [
          "arn:aws:dynamodb:us-east-1:123456789012:table/runs",
          "arn:aws:dynamodb:us-west-2:123456789012:table/runs",
        ],
      },
    ]);
  });

  test("a table ARN is used as written, in its own region", () => {
    const arn = "arn:aws:dynamodb:eu-west-1:210987654321:table/shared";
    expect(taskPolicyDocument([`dynamodb:write:${arn}`], context).Statement[0]?.Resource).toEqual([arn]);
  });

  test("secrets and parameters: read actions on the named resource only", () => {
    const { Statement } = taskPolicyDocument(["secrets:read:prod/hf-token", "ssm:read:/spawn/wandb-key"], {
      account: "123456789012",
      regions: ["eu-west-1"],
    });
    expect(Statement).toEqual([
      {
        Sid: "SecretRead0",
        Effect: "Allow",
        Action: ["secretsmanager:DescribeSecret", "secretsmanager:GetSecretValue"],
        Resource: ["arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/hf-token-??????"],
      },
      {
        Sid: "ParameterRead1",
        Effect: "Allow",
        Action: ["ssm:GetParameter", "ssm:GetParameters"],
        Resource: ["arn:aws:ssm:eu-west-1:123456789012:parameter/spawn/wandb-key"],
      },
    ]);
  });
});

describe("taskPolicyDocument: policy files", () => {
  test("a valid file's statements are appended as written, with unique Sids", () => {
    const file = {
      Version: "2012-10-17",
      Statement: {
        Effect: "Allow",
        Action: "sqs:SendMessage",
        Resource: "arn:aws:sqs:us-east-1:123456789012:q",
      },
    };
    const doc = taskPolicyDocument(["s3:write:out/x", "policy-file:extra.json"], {
      ...context,
      policyFiles: { "extra.json": file },
    });
    expect(doc.Statement[1]).toEqual({
      Sid: "File1x0",
      Effect: "Allow",
      Action: "sqs:SendMessage",
      Resource: "arn:aws:sqs:us-east-1:123456789012:q",
    });
  });

  test("a malformed file, or one not read, is an error naming the grant", () => {
    const issues = issuesOf(["policy-file:a.json", "policy-file:b.json"], {
      a: {},
      "a.json": { Version: "2008-10-17", Statement: [{ Effect: "Allow", Principal: "*", Action: "s3:*" }] },
    });
    expect(issues.map((i) => i.path)).toEqual(["resources.iam[0]", "resources.iam[1]"]);
    expect(issues[0]?.message).toContain("policy file a.json: Version");
    expect(issues[0]?.message).toContain('Unrecognized key: "Principal"');
    expect(issues[1]?.message).toBe("policy file b.json was not read");
  });

  test("policyFileProblems lists what is wrong in a document", () => {
    expect(
      policyFileProblems({ Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "x:Y" }] }),
    ).toEqual(["Statement.0: needs exactly one of Resource, NotResource"]);
    expect(policyFileProblems({ Version: "2012-10-17", Statement: [] })).not.toEqual([]);
  });
});

describe("grants that are refused", () => {
  test.each([
    ["s3:read:my-data", /names no prefix: write s3:read:my-data\/<prefix>, or s3:read:my-data\/\* /],
    ["s3:read:my-data/logs-*", /wildcard inside the prefix/],
    ["s3:write:my-data/a/*/b", /wildcard inside the prefix/],
    ["s3:read:My_Bucket/x", /is not an S3 bucket name/],
    ["dynamodb:read:runs-*", /wildcards are not allowed in table names/],
    ["secrets:read:*", /wildcards are not allowed in secret names/],
    ["ssm:read:/a/*", /wildcards are not allowed in parameter names/],
    ["s3:ReadOnly:bucket/x", /^unknown grant "s3:ReadOnly:bucket\/x": use one of s3:read:…/],
    ["iam:*", /^unknown grant/],
  ])("%s", (grant, message) => {
    expect(() => parseGrant(grant)).toThrow(message);
    expect(issuesOf(["s3:read:ok-bucket/x", grant])).toEqual([
      { path: "resources.iam[1]", message: expect.stringMatching(message) },
    ]);
  });

  test("a document over IAM's inline size limit is refused as a whole", () => {
    const grants = Array.from({ length: 60 }, (_, i) => `dynamodb:read:table-number-${i}`);
    expect(issuesOf(grants)).toEqual([
      { path: "resources.iam", message: expect.stringMatching(/over IAM's 10240: use fewer grants/) },
    ]);
  });
});
