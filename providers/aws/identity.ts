/**
 * EC2 instance identity documents: what an instance proves about itself to the dns-updater.
 * IMDS serves the document (`/latest/dynamic/instance-identity/document`) and an RSA-SHA256
 * signature of it (`/signature`), made with the key behind AWS's public certificate for the
 * region. Verifying it needs nothing but that certificate: no call to AWS, and nothing the
 * caller says is trusted before the signature holds.
 *
 * The certificates are AWS's published "RSA" identity certificates, one per region (the EC2
 * user guide's "Verify the instance identity document" page); the stack passes them in. Tests
 * stand a self-signed certificate in for them.
 */
import { verify, X509Certificate } from "node:crypto";
import { z } from "zod";

/** Why a document was refused; each is the caller's problem, never retried. */
export type IdentityRejection =
  | "malformed"
  | "unknown-region"
  | "bad-signature"
  | "certificate-expired"
  | "not-running"
  | "not-ours"
  | "ip-mismatch"
  | "stale";

export class IdentityError extends Error {
  override name = "IdentityError";
  constructor(
    readonly reason: IdentityRejection,
    message: string,
  ) {
    super(message);
  }
}

/** The fields of the document spawn relies on (AWS adds others). */
export const IdentityDocument = z.object({
  instanceId: z.string().regex(/^i-[0-9a-f]{8,17}$/),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/),
  accountId: z.string().regex(/^\d{12}$/),
  privateIp: z.string(),
  availabilityZone: z.string().optional(),
  instanceType: z.string().optional(),
  /** When the instance (last) started: a stop/start gives a new document. */
  pendingTime: z.iso.datetime({ offset: true }),
});
export type IdentityDocument = z.infer<typeof IdentityDocument>;

/** Region → PEM of AWS's identity certificate for it. */
export type IdentityCertificates = Readonly<Record<string, string>>;

/**
 * The document, once its signature verifies against the certificate of the region it names
 * and that certificate is valid at `now`. A document edited by one byte, signed by another key,
 * or claiming a region without a certificate is refused with the reason.
 */
export function verifyIdentityDocument(
  documentText: string,
  signatureBase64: string,
  certificates: IdentityCertificates,
  now: number,
): IdentityDocument {
  let claimed: unknown;
  try {
    claimed = JSON.parse(documentText);
  } catch {
    throw new IdentityError("malformed", "the identity document is not JSON");
  }
  const region = (claimed as { region?: unknown })?.region;
  const pem = typeof region === "string" ? certificates[region] : undefined;
  if (!pem)
    throw new IdentityError("unknown-region", `no identity certificate for region ${JSON.stringify(region)}`);
  const certificate = new X509Certificate(pem);
  if (now < Date.parse(certificate.validFrom) || now > Date.parse(certificate.validTo))
    throw new IdentityError(
      "certificate-expired",
      `the identity certificate for ${region} is valid ${certificate.validFrom} to ${certificate.validTo}`,
    );
  const signature = Buffer.from(signatureBase64.replace(/\s+/g, ""), "base64");
  if (!verify("sha256", Buffer.from(documentText, "utf8"), certificate.publicKey, signature))
    throw new IdentityError("bad-signature", "the identity document's signature does not verify");
  const parsed = IdentityDocument.safeParse(claimed);
  if (!parsed.success)
    throw new IdentityError(
      "malformed",
      `the identity document lacks ${parsed.error.issues[0]?.path.join(".")}`,
    );
  return parsed.data;
}

/** What EC2 says about the instance (DescribeInstances), for the checks after the signature. */
export interface ObservedIdentity {
  state: string;
  privateIp?: string;
  launchTime?: number;
  tags: Readonly<Record<string, string>>;
}

/**
 * The instance must be running, carry the stack's tag and a sweep tag, have the document's IP,
 * and have started when the document says (an older document, from before a stop/start, is
 * stale). Returns the sweep it belongs to.
 */
export function checkInstance(
  document: IdentityDocument,
  observed: ObservedIdentity,
  stackName: string,
): string {
  if (observed.state !== "running")
    throw new IdentityError("not-running", `instance ${document.instanceId} is ${observed.state}`);
  const sweepId = observed.tags["spawn:sweep"];
  if (observed.tags["spawn:stack"] !== stackName || !sweepId)
    throw new IdentityError(
      "not-ours",
      `instance ${document.instanceId} is not a spawn instance of stack ${stackName}`,
    );
  if (observed.privateIp !== document.privateIp)
    throw new IdentityError(
      "ip-mismatch",
      `instance ${document.instanceId} has IP ${observed.privateIp ?? "none"}, the document says ${document.privateIp}`,
    );
  if (observed.launchTime !== undefined && Date.parse(document.pendingTime) < observed.launchTime - 1000)
    throw new IdentityError(
      "stale",
      `the identity document predates instance ${document.instanceId}'s last start`,
    );
  return sweepId;
}
