import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { mockClient } from "aws-sdk-client-mock";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MIN_PART_BYTES, S3ObjectStore } from "./s3-objects.js";

const s3 = mockClient(S3Client);
const client = new S3Client({ region: "us-east-1", credentials: { accessKeyId: "x", secretAccessKey: "y" } });
const store = new S3ObjectStore(client, {
  bucket: "results-bkt",
  routes: { "bundles/": "artifacts-bkt" },
  multipartThreshold: 2 * MIN_PART_BYTES,
  partBytes: MIN_PART_BYTES,
});

const missing = (name: string, status: number) =>
  new S3ServiceException({ name, $fault: "client", $metadata: { httpStatusCode: status }, message: name });

/** A GetObject body as the SDK returns it in Node: a stream that can also give its bytes. */
const body = (bytes: Buffer) =>
  Object.assign(Readable.from([bytes]), { transformToByteArray: async () => new Uint8Array(bytes) });

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-s3-test-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  s3.reset();
});

describe("S3ObjectStore", () => {
  it("routes keys to buckets by prefix", () => {
    expect(store.bucketOf("bundles/abc.tar.gz")).toBe("artifacts-bkt");
    expect(store.bucketOf("logs/s1/0/1.log")).toBe("results-bkt");
    expect(() => store.bucketOf("/abs")).toThrow(/invalid object key/);
  });

  it("puts a small file in one PutObject", async () => {
    // Given a small file
    const file = join(dir, "small.txt");
    await writeFile(file, "hello");
    s3.on(PutObjectCommand).resolves({});
    // When it is uploaded
    await store.putFile("bundles/x.tar.gz", file);
    // Then one PutObject to the routed bucket carries its bytes
    const calls = s3.commandCalls(PutObjectCommand);
    expect(calls).toHaveLength(1);
    const input = calls[0]!.args[0].input;
    expect({ Bucket: input.Bucket, Key: input.Key }).toEqual({
      Bucket: "artifacts-bkt",
      Key: "bundles/x.tar.gz",
    });
    expect(Buffer.from(input.Body as Uint8Array).toString()).toBe("hello");
    expect(s3.commandCalls(CreateMultipartUploadCommand)).toHaveLength(0);
  });

  it("uploads a big file in parts with CRC32 checksums and completes in order", async () => {
    // Given a file of 2 full parts and a 1 KiB tail
    const size = 2 * MIN_PART_BYTES + 1024;
    const bytes = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) bytes[i] = (i / 4096) % 251;
    const file = join(dir, "big.bin");
    await writeFile(file, bytes);
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: "up-1" });
    s3.on(UploadPartCommand).callsFake(async (input) => ({
      ETag: `"etag-${input.PartNumber}"`,
      ChecksumCRC32: `crc-${input.PartNumber}`,
    }));
    s3.on(CompleteMultipartUploadCommand).resolves({});
    // When it is uploaded
    await store.putFile("outputs/s1/0/model.bin", file);
    // Then the upload is created with a checksum algorithm, every part carries its slice...
    expect(s3.commandCalls(CreateMultipartUploadCommand)[0]!.args[0].input).toEqual({
      Bucket: "results-bkt",
      Key: "outputs/s1/0/model.bin",
      ChecksumAlgorithm: "CRC32",
    });
    const parts = s3
      .commandCalls(UploadPartCommand)
      .map((c) => c.args[0].input)
      .sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
    expect(parts.map((p) => [p.PartNumber, (p.Body as Buffer).length, p.UploadId])).toEqual([
      [1, MIN_PART_BYTES, "up-1"],
      [2, MIN_PART_BYTES, "up-1"],
      [3, 1024, "up-1"],
    ]);
    expect(Buffer.concat(parts.map((p) => p.Body as Buffer)).equals(bytes)).toBe(true);
    // ...and completion lists the parts in order with their ETags and checksums
    expect(s3.commandCalls(CompleteMultipartUploadCommand)[0]!.args[0].input).toEqual({
      Bucket: "results-bkt",
      Key: "outputs/s1/0/model.bin",
      UploadId: "up-1",
      MultipartUpload: {
        Parts: [1, 2, 3].map((n) => ({ PartNumber: n, ETag: `"etag-${n}"`, ChecksumCRC32: `crc-${n}` })),
      },
    });
  });

  it("aborts a multipart upload whose part fails, so no parts linger", async () => {
    const file = join(dir, "big2.bin");
    await writeFile(file, Buffer.alloc(2 * MIN_PART_BYTES));
    s3.on(CreateMultipartUploadCommand).resolves({ UploadId: "up-2" });
    s3.on(UploadPartCommand).rejects(new Error("connection reset"));
    s3.on(AbortMultipartUploadCommand).resolves({});
    await expect(store.putFile("outputs/s1/1/big.bin", file)).rejects.toThrow("connection reset");
    expect(s3.commandCalls(AbortMultipartUploadCommand)[0]!.args[0].input).toEqual({
      Bucket: "results-bkt",
      Key: "outputs/s1/1/big.bin",
      UploadId: "up-2",
    });
    expect(s3.commandCalls(CompleteMultipartUploadCommand)).toHaveLength(0);
  });

  it("lists every page of a prefix, sorted", async () => {
    s3.on(ListObjectsV2Command, { Bucket: "results-bkt", Prefix: "logs/s1/" })
      .resolvesOnce({
        Contents: [{ Key: "logs/s1/1/1.log" }],
        IsTruncated: true,
        NextContinuationToken: "t2",
      })
      .resolvesOnce({ Contents: [{ Key: "logs/s1/0/1.log" }], IsTruncated: false });
    expect(await store.list("logs/s1/")).toEqual(["logs/s1/0/1.log", "logs/s1/1/1.log"]);
    expect(s3.commandCalls(ListObjectsV2Command).map((c) => c.args[0].input)).toEqual([
      { Bucket: "results-bkt", Prefix: "logs/s1/" },
      { Bucket: "results-bkt", Prefix: "logs/s1/", ContinuationToken: "t2" },
    ]);
  });

  it("exists: HeadObject, and a 404 is false, any other error is thrown", async () => {
    s3.on(HeadObjectCommand, { Key: "bundles/yes.tar.gz" }).resolves({ ContentLength: 3 });
    s3.on(HeadObjectCommand, { Key: "bundles/no.tar.gz" }).rejects(missing("NotFound", 404));
    s3.on(HeadObjectCommand, { Key: "bundles/denied.tar.gz" }).rejects(missing("Forbidden", 403));
    expect(await store.exists("bundles/yes.tar.gz")).toBe(true);
    expect(await store.exists("bundles/no.tar.gz")).toBe(false);
    await expect(store.exists("bundles/denied.tar.gz")).rejects.toThrow("Forbidden");
    expect(s3.commandCalls(HeadObjectCommand)[0]!.args[0].input).toEqual({
      Bucket: "artifacts-bkt",
      Key: "bundles/yes.tar.gz",
    });
  });

  it("gets bytes and files; a missing key is undefined / false", async () => {
    s3.on(GetObjectCommand, { Key: "logs/s1/0/1.log" }).callsFake(async () => ({
      Body: body(Buffer.from("line\n")),
    }));
    s3.on(GetObjectCommand, { Key: "logs/s1/9/1.log" }).rejects(missing("NoSuchKey", 404));
    expect(Buffer.from((await store.getBytes("logs/s1/0/1.log")) ?? []).toString()).toBe("line\n");
    expect(await store.getBytes("logs/s1/9/1.log")).toBeUndefined();
    const target = join(dir, "nested", "out.log");
    expect(await store.getFile("logs/s1/0/1.log", target)).toBe(true);
    expect(await readFile(target, "utf8")).toBe("line\n");
    expect(await store.getFile("logs/s1/9/1.log", join(dir, "never.log"))).toBe(false);
  });
});
