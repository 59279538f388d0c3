/**
 * ObjectStore over S3. Keys map to buckets by prefix (workdir bundles live in the artifacts
 * bucket, logs and outputs in the results bucket), so callers keep using one key space, the
 * same as the local file store. Big files go up in parts with `@aws-sdk/client-s3` alone.
 */
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdir, open, readFile, rename, rm, stat } from "node:fs/promises";
import { dirname } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { mapLimit } from "#core/concurrency.js";
import type { ObjectStore } from "#core/ports.js";

const MiB = 2 ** 20;
/** S3's floor for every part but the last. */
export const MIN_PART_BYTES = 5 * MiB;
/** S3's ceiling on the number of parts of one upload. */
const MAX_PARTS = 10_000;

export interface S3ObjectStoreOptions {
  /** Bucket for keys no route matches. */
  bucket: string;
  /** Key prefix → bucket, e.g. `{ "bundles/": artifactsBucket }`; the longest matching prefix wins. */
  routes?: Readonly<Record<string, string>>;
  /** Files at least this large are uploaded in parts. @default 16 MiB */
  multipartThreshold?: number;
  /** Part size (raised when a file would need more than 10,000 parts). @default 8 MiB */
  partBytes?: number;
  /** Parts in flight at once. @default 4 */
  partConcurrency?: number;
}

/** S3 reports a missing key as NoSuchKey (GET) or a bare 404 (HEAD). */
function isMissing(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === "NoSuchKey" || e?.name === "NotFound" || e?.$metadata?.httpStatusCode === 404;
}

export class S3ObjectStore implements ObjectStore {
  private readonly routes: [string, string][];
  private readonly threshold: number;
  private readonly partBytes: number;
  private readonly partConcurrency: number;

  constructor(
    private readonly client: S3Client,
    private readonly options: S3ObjectStoreOptions,
  ) {
    this.routes = Object.entries(options.routes ?? {}).sort((a, b) => b[0].length - a[0].length);
    this.threshold = options.multipartThreshold ?? 16 * MiB;
    this.partBytes = options.partBytes ?? 8 * MiB;
    this.partConcurrency = options.partConcurrency ?? 4;
    if (this.partBytes < MIN_PART_BYTES) {
      throw new RangeError(
        `partBytes must be at least ${MIN_PART_BYTES} (S3's minimum), got ${this.partBytes}`,
      );
    }
  }

  /** The bucket a key (or a list prefix) lives in. */
  bucketOf(key: string): string {
    if (key === "" || key.startsWith("/")) throw new Error(`invalid object key ${JSON.stringify(key)}`);
    return this.routes.find(([prefix]) => key.startsWith(prefix))?.[1] ?? this.options.bucket;
  }

  async putFile(key: string, path: string): Promise<void> {
    const { size } = await stat(path);
    if (size < this.threshold) {
      await this.putBytes(key, await readFile(path));
      return;
    }
    await this.putMultipart(key, path, size);
  }

  async putBytes(key: string, body: Uint8Array | string): Promise<void> {
    await this.client.send(new PutObjectCommand({ Bucket: this.bucketOf(key), Key: key, Body: body }));
  }

  /** Parts are read from the file as they are sent; a failed upload is aborted so no parts linger (and bill). */
  private async putMultipart(key: string, path: string, size: number): Promise<void> {
    const Bucket = this.bucketOf(key);
    const partBytes = Math.max(this.partBytes, Math.ceil(size / MAX_PARTS));
    const count = Math.ceil(size / partBytes);
    const created = await this.client.send(
      new CreateMultipartUploadCommand({ Bucket, Key: key, ChecksumAlgorithm: "CRC32" }),
    );
    const UploadId = created.UploadId;
    if (!UploadId) throw new Error(`S3 returned no UploadId for ${Bucket}/${key}`);
    const file = await open(path, "r");
    try {
      const parts = await mapLimit(
        Array.from({ length: count }, (_, i) => i),
        this.partConcurrency,
        async (i): Promise<CompletedPart> => {
          const length = Math.min(partBytes, size - i * partBytes);
          const buffer = Buffer.alloc(length);
          await file.read(buffer, 0, length, i * partBytes);
          const out = await this.client.send(
            new UploadPartCommand({
              Bucket,
              Key: key,
              UploadId,
              PartNumber: i + 1,
              Body: buffer,
              ChecksumAlgorithm: "CRC32",
            }),
          );
          return { PartNumber: i + 1, ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32 };
        },
      );
      await this.client.send(
        new CompleteMultipartUploadCommand({ Bucket, Key: key, UploadId, MultipartUpload: { Parts: parts } }),
      );
    } catch (error) {
      await this.client
        .send(new AbortMultipartUploadCommand({ Bucket, Key: key, UploadId }))
        .catch(() => undefined);
      throw error;
    } finally {
      await file.close();
    }
  }

  /** Written to a temporary file first, then renamed: a reader never sees half a download. */
  async getFile(key: string, path: string): Promise<boolean> {
    let body: Readable;
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucketOf(key), Key: key }));
      body = out.Body as Readable;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
    try {
      await pipeline(body, createWriteStream(tmp));
      await rename(tmp, path);
    } catch (error) {
      await rm(tmp, { force: true });
      throw error;
    }
    return true;
  }

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.bucketOf(key), Key: key }));
      return await out.Body?.transformToByteArray();
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const Bucket = prefix === "" ? this.options.bucket : this.bucketOf(prefix);
    const keys: string[] = [];
    let ContinuationToken: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket,
          Prefix: prefix,
          ...(ContinuationToken ? { ContinuationToken } : {}),
        }),
      );
      for (const object of page.Contents ?? []) if (object.Key) keys.push(object.Key);
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return keys.sort();
  }

  async exists(key: string): Promise<boolean> {
    try {
      await this.client.send(new HeadObjectCommand({ Bucket: this.bucketOf(key), Key: key }));
      return true;
    } catch (error) {
      if (isMissing(error)) return false;
      throw error;
    }
  }
}
