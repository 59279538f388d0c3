/**
 * Checkpoint sync and restore (layout and manifest: core/checkpoint.ts).
 *
 * While a task runs, its SPAWN_CHECKPOINT_DIR is scanned every `interval`: each file that is new
 * or changed is copied to a staging file (a snapshot the task cannot change under us), hashed, and
 * uploaded once per content (sha256), within the bandwidth cap; then the manifest naming every file
 * is committed. A file that changed while it was copied, or was modified in the last moment, makes
 * the sync wait for the next round rather than commit a torn checkpoint. Restoring downloads the
 * newest manifest's files, checks every sha256, and falls back to an older manifest when one is
 * missing or corrupt, so a partial or damaged upload is never restored.
 */
import { createHash } from "node:crypto";
import { createReadStream, type Dirent } from "node:fs";
import { copyFile, lstat, mkdir, readdir, readFile, rename, rm } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import {
  blobKey,
  CHECKPOINT_MANIFEST_SCHEMA,
  type CheckpointFile,
  CheckpointManifest,
  checkpointId,
  checkpointPrefix,
  checkpointProgress,
  isTemporaryCheckpointFile,
  manifestIdsNewestFirst,
  manifestKey,
} from "#core/checkpoint.js";
import type { CheckpointRef } from "#core/model.js";
import type { ObjectStore } from "#core/ports.js";
import type { Logger } from "#providers/log.js";

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Regular files under `dir`, `/`-separated relative paths, sorted; temporary names left out. */
async function listFiles(dir: string): Promise<string[]> {
  let entries: Dirent[];
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join("/"))
    .filter((p) => !isTemporaryCheckpointFile(p))
    .sort();
}

export interface CheckpointSyncOptions {
  objects: ObjectStore;
  sweepId: string;
  index: number;
  attempt: number;
  /** The task's SPAWN_CHECKPOINT_DIR. */
  dir: string;
  /** Scratch space for snapshots (removed by the caller with the task directory). */
  stagingDir: string;
  /** Bytes per second, averaged over each upload; absent: uncapped. */
  bandwidth?: number;
  /** Files modified more recently than this are assumed half-written (background syncs only). @default 500 ms */
  settleMs?: number;
  log: Logger;
  /** Called after each manifest commit; the agent records it on the task. */
  onCommit?(ref: CheckpointRef): Promise<void> | void;
  now?: () => number;
}

/** Counters for the benchmark and the logs. */
export interface SyncStats {
  syncs: number;
  commits: number;
  uploadedFiles: number;
  uploadedBytes: number;
  /** Rounds that found a file still being written and left the commit to the next round. */
  deferred: number;
  busyMs: number;
}

export class CheckpointSync {
  private seq = 0;
  /** What each file held when last hashed, by size and mtime (an unchanged file is not read again). */
  private readonly known = new Map<
    string,
    { size: number; mtimeMs: number; sha256: string; json?: unknown }
  >();
  private readonly uploaded = new Set<string>();
  private lastCommitted = "";
  private latest: CheckpointRef | undefined;
  private running: Promise<CheckpointRef | undefined> = Promise.resolve(undefined);
  private timer: NodeJS.Timeout | undefined;
  /** The last round found a file still being written. */
  private deferred = false;
  readonly stats: SyncStats = {
    syncs: 0,
    commits: 0,
    uploadedFiles: 0,
    uploadedBytes: 0,
    deferred: 0,
    busyMs: 0,
  };

  constructor(private readonly o: CheckpointSyncOptions) {}

  /** The newest checkpoint this sync committed. */
  get committed(): CheckpointRef | undefined {
    return this.latest;
  }

  /**
   * Syncs every `intervalMs` in the background until {@link stop}. A round that found a file
   * still being written is tried again once it has had time to settle, not a whole interval later:
   * a task that checkpoints exactly as often as the sync runs would otherwise never be caught at rest.
   */
  start(intervalMs: number): void {
    const tick = (delay: number) => {
      this.timer = setTimeout(async () => {
        await this.sync({ final: false }).catch((error) =>
          this.o.log.warn("checkpoint sync failed", { error }),
        );
        if (this.timer) tick(this.deferred ? this.settleMs(false) : intervalMs);
      }, delay);
    };
    tick(intervalMs);
  }

  private settleMs(final: boolean): number {
    return final ? 0 : (this.o.settleMs ?? 500);
  }

  /** Stops background syncs and waits for one in progress. */
  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.running.catch(() => undefined);
  }

  /**
   * One sync, after any in progress. `final`: the task has exited, so nothing is still being
   * written and the settle time does not apply. Resolves with the checkpoint committed, if any.
   */
  sync(options: { final: boolean }): Promise<CheckpointRef | undefined> {
    const next = this.running.catch(() => undefined).then(() => this.syncOnce(options.final));
    this.running = next;
    return next;
  }

  private async syncOnce(final: boolean): Promise<CheckpointRef | undefined> {
    const { objects, sweepId, index, dir, log } = this.o;
    const now = this.o.now ?? Date.now;
    const t0 = performance.now();
    this.stats.syncs++;
    this.deferred = false;
    const defer = () => {
      this.stats.deferred++;
      this.deferred = true;
      return undefined;
    };
    try {
      const paths = await listFiles(dir);
      if (paths.length === 0) return undefined;
      const files: CheckpointFile[] = [];
      const settleMs = this.settleMs(final);
      // checkpoint.json as snapshotted, so the step recorded is the one the manifest holds.
      let checkpointJson: unknown;
      await mkdir(this.o.stagingDir, { recursive: true });
      for (const path of paths) {
        const source = join(dir, ...path.split("/"));
        const before = await lstat(source).catch(() => undefined);
        if (!before?.isFile()) continue; // removed meanwhile
        if (now() - before.mtimeMs < settleMs) return defer();
        const seen = this.known.get(path);
        if (seen && seen.size === before.size && seen.mtimeMs === before.mtimeMs) {
          files.push({ path, sha256: seen.sha256, bytes: seen.size });
          if (path === "checkpoint.json") checkpointJson = seen.json;
          continue;
        }
        // Snapshot first: what is hashed is exactly what is uploaded, whatever the task does next.
        const staged = join(this.o.stagingDir, `${files.length}.snapshot`);
        await copyFile(source, staged);
        const after = await lstat(source).catch(() => undefined);
        if (!after || after.size !== before.size || after.mtimeMs !== before.mtimeMs) return defer();
        const sha256 = await sha256File(staged);
        let json: unknown;
        if (path === "checkpoint.json") {
          json = await readFile(staged, "utf8")
            .then((t) => JSON.parse(t) as unknown)
            .catch(() => undefined);
          checkpointJson = json;
        }
        this.known.set(path, { size: before.size, mtimeMs: before.mtimeMs, sha256, json });
        if (!this.uploaded.has(sha256)) {
          await this.upload(blobKey(sweepId, index, sha256), staged, before.size);
          this.uploaded.add(sha256);
        }
        await rm(staged, { force: true });
        files.push({ path, sha256, bytes: before.size });
      }
      const fingerprint = files.map((f) => `${f.path}\0${f.sha256}`).join("\n");
      if (fingerprint === this.lastCommitted) return undefined;

      const progress = checkpointProgress(
        files.map((f) => f.path),
        checkpointJson,
      );
      this.seq++;
      const id = checkpointId(this.o.attempt, this.seq);
      const manifest: CheckpointManifest = {
        schema: CHECKPOINT_MANIFEST_SCHEMA,
        sweepId,
        index,
        attempt: this.o.attempt,
        id,
        createdAt: now(),
        ...progress,
        files,
      };
      // The commit: written only once every blob it names is in the store.
      const key = manifestKey(sweepId, index, id);
      await objects.putBytes(key, JSON.stringify(manifest));
      this.lastCommitted = fingerprint;
      this.stats.commits++;
      const ref: CheckpointRef = {
        id,
        key,
        attempt: this.o.attempt,
        at: manifest.createdAt,
        files: files.length,
        bytes: files.reduce((n, f) => n + f.bytes, 0),
        ...progress,
      };
      this.latest = ref;
      log.info("checkpoint committed", { checkpoint: id, files: ref.files, bytes: ref.bytes, ...progress });
      await this.o.onCommit?.(ref);
      return ref;
    } finally {
      this.stats.busyMs += performance.now() - t0;
    }
  }

  /** Uploads one blob, then waits as long as the bandwidth cap asks for those bytes. */
  private async upload(key: string, path: string, bytes: number): Promise<void> {
    const t0 = performance.now();
    await this.o.objects.putFile(key, path);
    this.stats.uploadedFiles++;
    this.stats.uploadedBytes += bytes;
    if (this.o.bandwidth) {
      const owed = (bytes / this.o.bandwidth) * 1000 - (performance.now() - t0);
      if (owed > 0) await sleep(owed);
    }
  }
}

/** Where a restore looks: a task's own checkpoints, or one pinned checkpoint of another sweep. */
export interface RestoreSource {
  sweepId: string;
  index: number;
  /** Only this checkpoint; absent: the newest one that is complete and intact. */
  checkpointId?: string;
}

export interface RestoreResult {
  /** The checkpoint restored; absent when there was none intact. */
  manifest?: CheckpointManifest;
  bytes: number;
  /** Newer manifests that were skipped, with the reason (missing or corrupt files). */
  skipped: Array<{ id: string; reason: string }>;
}

/**
 * Restores the newest complete, intact checkpoint of `source` into `dir` (which should be empty):
 * every file is downloaded to a scratch directory and its sha256 checked; only a manifest whose
 * files all check out is moved into place.
 */
export async function restoreCheckpoint(
  objects: ObjectStore,
  source: RestoreSource,
  dir: string,
  scratch: string,
): Promise<RestoreResult> {
  const ids = source.checkpointId
    ? [source.checkpointId]
    : manifestIdsNewestFirst(
        await objects.list(`${checkpointPrefix(source.sweepId, source.index)}manifests/`),
      );
  const skipped: RestoreResult["skipped"] = [];
  for (const id of ids) {
    const reason = await tryRestore(objects, source, id, dir, scratch);
    if (typeof reason === "string") {
      skipped.push({ id, reason });
      continue;
    }
    return { manifest: reason, bytes: reason.files.reduce((n, f) => n + f.bytes, 0), skipped };
  }
  return { bytes: 0, skipped };
}

/** The manifest when restored, else why not. */
async function tryRestore(
  objects: ObjectStore,
  source: RestoreSource,
  id: string,
  dir: string,
  scratch: string,
): Promise<CheckpointManifest | string> {
  const raw = await objects.getBytes(manifestKey(source.sweepId, source.index, id));
  if (!raw) return "manifest not found";
  let manifest: CheckpointManifest;
  try {
    manifest = CheckpointManifest.parse(JSON.parse(Buffer.from(raw).toString("utf8")));
  } catch {
    return "manifest unreadable";
  }
  await rm(scratch, { recursive: true, force: true });
  try {
    for (const file of manifest.files) {
      if (file.path.split("/").some((p) => p === ".." || p === "") || file.path.startsWith("/"))
        return `bad path ${JSON.stringify(file.path)}`;
      const target = join(scratch, ...file.path.split("/"));
      if (!(await objects.getFile(blobKey(source.sweepId, source.index, file.sha256), target)))
        return `${file.path} is missing`;
      if ((await sha256File(target)) !== file.sha256) return `${file.path} fails its sha256 check`;
    }
    for (const file of manifest.files) {
      const target = join(dir, ...file.path.split("/"));
      await mkdir(dirname(target), { recursive: true });
      await rename(join(scratch, ...file.path.split("/")), target);
    }
    return manifest;
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
