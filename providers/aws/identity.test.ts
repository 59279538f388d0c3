import { generateKeyPairSync, sign, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { checkInstance, IdentityError, type IdentityRejection, verifyIdentityDocument } from "./identity.js";

// A self-signed certificate stands in for AWS's (lambdas/dns-updater/fixtures/README.md).
const FIXTURES = join(import.meta.dirname, "..", "..", "lambdas", "dns-updater", "fixtures");
const CERT = readFileSync(join(FIXTURES, "test-identity-cert.pem"), "utf8");
const KEY = readFileSync(join(FIXTURES, "test-identity-key.pem"), "utf8");
const certs = { "us-east-1": CERT };
const now = Date.parse(new X509Certificate(CERT).validFrom) + 86_400_000;

const doc = (extra: Record<string, unknown> = {}) =>
  JSON.stringify(
    {
      accountId: "123456789012",
      architecture: "x86_64",
      availabilityZone: "us-east-1a",
      imageId: "ami-0abcdef1234567890",
      instanceId: "i-0123456789abcdef0",
      instanceType: "g5.xlarge",
      pendingTime: "2026-11-23T10:00:00Z",
      privateIp: "10.0.1.23",
      region: "us-east-1",
      version: "2017-09-30",
      ...extra,
    },
    null,
    2,
  );
const signed = (text: string, key = KEY) => sign("sha256", Buffer.from(text), key).toString("base64");

function rejection(run: () => unknown): IdentityRejection | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof IdentityError) return error.reason;
    throw error;
  }
  return undefined;
}

describe("verifyIdentityDocument", () => {
  test("accepts a document signed with the region's certificate key", () => {
    const text = doc();
    expect(verifyIdentityDocument(text, signed(text), certs, now)).toMatchObject({
      instanceId: "i-0123456789abcdef0",
      region: "us-east-1",
      privateIp: "10.0.1.23",
    });
  });

  test("refuses a forged document: one edited byte, another key, or a region without a certificate", () => {
    const text = doc();
    const sig = signed(text);
    expect(
      rejection(() => verifyIdentityDocument(text.replace("10.0.1.23", "10.0.1.24"), sig, certs, now)),
    ).toBe("bad-signature");
    const attacker = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
    expect(
      rejection(() =>
        verifyIdentityDocument(
          text,
          signed(text, attacker.export({ type: "pkcs8", format: "pem" }) as string),
          certs,
          now,
        ),
      ),
    ).toBe("bad-signature");
    const elsewhere = doc({ region: "eu-west-1" });
    expect(rejection(() => verifyIdentityDocument(elsewhere, signed(elsewhere), certs, now))).toBe(
      "unknown-region",
    );
    expect(rejection(() => verifyIdentityDocument("not json", sig, certs, now))).toBe("malformed");
  });

  test("refuses everything once the certificate has expired", () => {
    const text = doc();
    const after = Date.parse(new X509Certificate(CERT).validTo) + 1000;
    expect(rejection(() => verifyIdentityDocument(text, signed(text), certs, after))).toBe(
      "certificate-expired",
    );
  });
});

describe("checkInstance", () => {
  const text = doc();
  const document = verifyIdentityDocument(text, signed(text), certs, now);
  const running = {
    state: "running",
    privateIp: "10.0.1.23",
    launchTime: Date.parse("2026-11-23T10:00:00Z"),
    tags: { "spawn:stack": "spawn", "spawn:sweep": "lr-abc" },
  };

  test("a running instance of the stack with the document's IP belongs to its sweep", () => {
    expect(checkInstance(document, running, "spawn")).toBe("lr-abc");
  });

  test.each([
    [{ ...running, state: "stopped" }, "not-running"],
    [{ ...running, tags: { "spawn:stack": "other", "spawn:sweep": "lr-abc" } }, "not-ours"],
    [{ ...running, tags: { "spawn:stack": "spawn" } }, "not-ours"],
    [{ ...running, privateIp: "10.0.9.9" }, "ip-mismatch"],
    [{ ...running, launchTime: Date.parse("2026-11-23T12:00:00Z") }, "stale"],
  ] as const)("%j is refused (%s)", (observed, reason) => {
    expect(rejection(() => checkInstance(document, observed, "spawn"))).toBe(reason);
  });
});
