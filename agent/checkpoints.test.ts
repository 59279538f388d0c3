/** Checkpoint sync and restore against the real local object store (files under a directory). */
import { mkdir, mkdtemp, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { blobKey, manifestKey } from "../core/checkpoint.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { createLogger } from "../providers/log.js";
import { CheckpointSync, restoreCheckpoint, sha256File } from "./checkpoints.js";

const log = createLogger({}, () => undefined);
let root: string;
let objects: FileObjectStore;
let dir: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "spawn-ckpt-"));
  objects = new FileObjectStore(join(root, "objects"));
  dir = join(root, "task", "checkpoint");
  await mkdir(dir, { recursive: true });
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const newSync = (extra: Partial<ConstructorParameters<typeof CheckpointSync>[0]> = {}) =>
  new CheckpointSync({
    objects,
    sweepId: "sw",
    index: 4,
    attempt: 2,
    dir,
    stagingDir: join(root, "task", "staging"),
    log,
    ...extra,
  });

/** Writes a file with an mtime in the past, so background syncs treat it as settled. */
async function settled(path: string, body: string): Promise<void> {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, body);
  const past = new Date(Date.now() - 10_000);
  await utimes(path, past, past);
}

describe("CheckpointSync", () => {
  it("uploads files, then commits a manifest, and records the step", async () => {
    // Given
    await settled(join(dir, "model.bin"), "weights-1");
    await settled(join(dir, "checkpoint.json"), JSON.stringify({ step: 30 }));
    const committed: string[] = [];
    const sync = newSync({ onCommit: (ref) => void committed.push(ref.id) });

    // When
    const ref = await sync.sync({ final: false });

    // Then
    expect(ref).toMatchObject({ id: "0002-000001", attempt: 2, files: 2, step: 30 });
    expect(committed).toEqual(["0002-000001"]);
    const manifest = JSON.parse(
      Buffer.from((await objects.getBytes(manifestKey("sw", 4, "0002-000001")))!).toString(),
    );
    expect(manifest.files.map((f: { path: string }) => f.path)).toEqual(["checkpoint.json", "model.bin"]);
    const sha = await sha256File(join(dir, "model.bin"));
    expect(await objects.exists(blobKey("sw", 4, sha))).toBe(true);
  });

  it("is incremental: unchanged files are not uploaded again, and no change commits nothing", async () => {
    await settled(join(dir, "a.bin"), "a".repeat(1000));
    await settled(join(dir, "b.bin"), "b".repeat(1000));
    const sync = newSync();
    await sync.sync({ final: false });
    expect(sync.stats.uploadedFiles).toBe(2);

    // Nothing changed: no upload, no new manifest
    expect(await sync.sync({ final: false })).toBeUndefined();
    expect(sync.stats.uploadedFiles).toBe(2);

    // One file changed: one upload, a second manifest
    await settled(join(dir, "b.bin"), "c".repeat(1000));
    const ref = await sync.sync({ final: false });
    expect(ref?.id).toBe("0002-000002");
    expect(sync.stats.uploadedFiles).toBe(3);
  });

  it("reads the step from file names when there is no checkpoint.json", async () => {
    await settled(join(dir, "ckpt", "step-100.pt"), "x");
    await settled(join(dir, "ckpt", "step-200.pt"), "y");
    expect((await newSync().sync({ final: false }))?.step).toBe(200);
  });

  it("leaves temporary names alone and waits for a file still being written", async () => {
    // Given: a complete checkpoint, plus a file written this instant and one under a temporary name
    await settled(join(dir, "state.json"), "{}");
    await writeFile(join(dir, "next.json.tmp"), "{partial");
    const sync = newSync({ settleMs: 5000 });
    expect((await sync.sync({ final: false }))?.files).toBe(1);
    await writeFile(join(dir, "fresh.bin"), "being written");

    // When: a background sync runs
    // Then: it defers rather than commit a checkpoint that may be torn
    expect(await sync.sync({ final: false })).toBeUndefined();
    expect(sync.stats.deferred).toBe(1);

    // And: once the task has exited, the final sync takes it
    expect((await sync.sync({ final: true }))?.files).toBe(2);
  });

  it("keeps to the bandwidth cap", async () => {
    await settled(join(dir, "big.bin"), "z".repeat(200_000));
    const t0 = performance.now();
    await newSync({ bandwidth: 400_000 }).sync({ final: false });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(450);
  });
});

describe("restoreCheckpoint", () => {
  async function commitTwo(): Promise<{ first: string; second: string }> {
    const sync = newSync();
    await settled(join(dir, "checkpoint.json"), JSON.stringify({ step: 10 }));
    const first = (await sync.sync({ final: false }))!.id;
    await settled(join(dir, "checkpoint.json"), JSON.stringify({ step: 20 }));
    const second = (await sync.sync({ final: false }))!.id;
    return { first, second };
  }
  const target = () => join(root, "next-attempt", "checkpoint");
  const restoredStep = async () => JSON.parse(await readFile(join(target(), "checkpoint.json"), "utf8")).step;

  it("restores the newest checkpoint", async () => {
    await commitTwo();
    const r = await restoreCheckpoint(objects, { sweepId: "sw", index: 4 }, target(), join(root, "scratch"));
    expect(r.manifest?.id).toBe("0002-000002");
    expect(r.skipped).toEqual([]);
    expect(await restoredStep()).toBe(20);
  });

  it("never restores a corrupt upload: it falls back to the previous checkpoint", async () => {
    // Given: the newest checkpoint's file is damaged in the store
    await commitTwo();
    const sha = await sha256File(join(dir, "checkpoint.json"));
    await objects.putBytes(blobKey("sw", 4, sha), '{"step": 99}');

    // When
    const r = await restoreCheckpoint(objects, { sweepId: "sw", index: 4 }, target(), join(root, "scratch"));

    // Then
    expect(r.manifest?.id).toBe("0002-000001");
    expect(r.skipped).toEqual([{ id: "0002-000002", reason: "checkpoint.json fails its sha256 check" }]);
    expect(await restoredStep()).toBe(10);
  });

  it("never restores a partial upload: files without their manifest, or a manifest missing a file", async () => {
    const { second } = await commitTwo();
    // A sync that died between its uploads and its commit left a blob and no manifest: invisible.
    await objects.putBytes(blobKey("sw", 4, "f".repeat(64)), "orphan");
    // The newest manifest names a file that is gone.
    const sha = await sha256File(join(dir, "checkpoint.json"));
    await rm(join(root, "objects", ...blobKey("sw", 4, sha).split("/")));
    const r = await restoreCheckpoint(objects, { sweepId: "sw", index: 4 }, target(), join(root, "scratch"));
    expect(r.skipped).toEqual([{ id: second, reason: "checkpoint.json is missing" }]);
    expect(await restoredStep()).toBe(10);
  });

  it("restores nothing when no checkpoint is intact, and a pinned one only", async () => {
    const { first } = await commitTwo();
    const pinned = await restoreCheckpoint(
      objects,
      { sweepId: "sw", index: 4, checkpointId: first },
      target(),
      join(root, "scratch"),
    );
    expect(pinned.manifest?.id).toBe(first);
    const none = await restoreCheckpoint(
      objects,
      { sweepId: "sw", index: 5 },
      join(root, "t5"),
      join(root, "s5"),
    );
    expect(none).toEqual({ bytes: 0, skipped: [] });
  });
});
