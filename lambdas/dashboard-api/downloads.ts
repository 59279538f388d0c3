/**
 * Output downloads on AWS: the API authorises the caller as for any sweep route, then answers a
 * presigned S3 GET that the browser navigates to. A link cannot carry the bearer token, and a
 * Lambda response is at most 6 MB; a presigned URL has neither limit, and costs the API nothing
 * per byte (docs/adr/0039-dashboard-schedules-alerts-downloads-on-aws.md).
 */
import { GetObjectCommand, type S3Client } from "@aws-sdk/client-s3";
import { getSignedUrl } from "@aws-sdk/s3-request-presigner";
import type { DownloadLink } from "#core/api.js";
import type { Clock } from "#core/ports.js";

/** How long a download link works: long enough to start the download, short enough not to be shared. */
export const LINK_TTL_SECONDS = 300;

/** The port api.ts downloads through (tests sign with made-up credentials: no AWS involved). */
export interface OutputLinks {
  /** A URL that downloads the object `key` as an attachment saved as `filename`. */
  link(key: string, filename: string): Promise<DownloadLink>;
}

/**
 * `attachment` so the browser saves the file rather than renders it (an output may hold HTML,
 * and S3 would serve it as the content type it was uploaded with). `filename` is the API's safe
 * download name (`[\w.-]` only), so it needs no escaping inside the quotes.
 */
export function attachment(filename: string): string {
  return `attachment; filename="${filename}"`;
}

/** Presigned GETs on the stack's results bucket, signed with the Lambda role's credentials. */
export class S3OutputLinks implements OutputLinks {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
    private readonly clock: Clock,
    private readonly ttlSeconds = LINK_TTL_SECONDS,
  ) {}

  async link(key: string, filename: string): Promise<DownloadLink> {
    const now = this.clock.now();
    const url = await getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.bucket,
        Key: key,
        ResponseContentDisposition: attachment(filename),
        // Never sniffed or rendered, whatever type the agent uploaded it with.
        ResponseContentType: "application/octet-stream",
      }),
      { expiresIn: this.ttlSeconds, signingDate: new Date(now) },
    );
    return { url, expiresAt: new Date(now + this.ttlSeconds * 1000).toISOString() };
  }
}
