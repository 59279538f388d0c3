/**
 * The signed Lambda Invoke: the signature against the worked example of AWS's Signature Version 4
 * documentation, and the request and answers against a loopback server standing in for Lambda.
 */
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { invokeLambda, LambdaInvokeError, signV4 } from "./lambda-invoke.js";

const EXAMPLE_CREDENTIALS = {
  accessKeyId: "AKIDEXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

describe("signV4", () => {
  it("gives the signature of AWS's worked example (IAM ListUsers, 2015-08-30T12:36:00Z)", () => {
    const headers = signV4(
      {
        method: "GET",
        host: "iam.amazonaws.com",
        path: "/",
        query: "Action=ListUsers&Version=2010-05-08",
        headers: { "Content-Type": "application/x-www-form-urlencoded; charset=utf-8" },
        body: "",
      },
      EXAMPLE_CREDENTIALS,
      { region: "us-east-1", service: "iam" },
      new Date("2015-08-30T12:36:00Z"),
    );
    expect(headers.authorization).toBe(
      "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7",
    );
    expect(headers["x-amz-date"]).toBe("20150830T123600Z");
  });

  it("signs the session token of temporary credentials (an instance role's)", () => {
    const headers = signV4(
      { method: "POST", host: "lambda.eu-west-1.amazonaws.com", path: "/", headers: {}, body: "{}" },
      { ...EXAMPLE_CREDENTIALS, sessionToken: "token" },
      { region: "eu-west-1", service: "lambda" },
      new Date("2026-01-01T00:00:00Z"),
    );
    expect(headers["x-amz-security-token"]).toBe("token");
    expect(headers.authorization).toContain("SignedHeaders=host;x-amz-date;x-amz-security-token,");
  });
});

describe("invokeLambda", () => {
  let server: Server;
  let endpoint = "";
  const seen: { method?: string; url?: string; headers: IncomingMessage["headers"]; body: string }[] = [];
  let answer: { status: number; headers?: Record<string, string>; body: string } = {
    status: 200,
    body: "{}",
  };

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => {
        body += c.toString();
      });
      req.on("end", () => {
        seen.push({ method: req.method, url: req.url, headers: req.headers, body });
        res.writeHead(answer.status, answer.headers ?? {}).end(answer.body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const invoke = () =>
    invokeLambda({
      region: "us-east-1",
      functionName: "spawn-dns-updater",
      payload: { kind: "register" },
      credentials: async () => ({ ...EXAMPLE_CREDENTIALS, sessionToken: "tok" }),
      endpoint,
      now: () => new Date("2026-11-23T10:00:00Z"),
    });

  it("POSTs the payload, signed for lambda in the region, and returns the function's answer", async () => {
    answer = { status: 200, body: JSON.stringify({ status: "registered" }) };
    seen.length = 0;

    expect(await invoke()).toEqual({ status: "registered" });

    const [request] = seen;
    expect(request).toMatchObject({
      method: "POST",
      url: "/2015-03-31/functions/spawn-dns-updater/invocations",
      body: '{"kind":"register"}',
    });
    expect(request!.headers).toMatchObject({
      "x-amz-invocation-type": "RequestResponse",
      "x-amz-security-token": "tok",
      "x-amz-date": "20261123T100000Z",
    });
    expect(request!.headers.authorization).toMatch(
      /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/20261123\/us-east-1\/lambda\/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-invocation-type;x-amz-security-token, Signature=[0-9a-f]{64}$/,
    );
  });

  it("throws on a refused call and on an error the function threw", async () => {
    answer = { status: 403, body: '{"Message":"not authorized"}' };
    await expect(invoke()).rejects.toThrow(/HTTP 403.*not authorized/);
    answer = {
      status: 200,
      headers: { "x-amz-function-error": "Unhandled" },
      body: '{"errorMessage":"boom"}',
    };
    await expect(invoke()).rejects.toThrow(LambdaInvokeError);
    await expect(invoke()).rejects.toThrow(/Unhandled.*boom/);
  });
});
