/**
 * Workdir bundles: the spec's workdir packed once into a content-addressed tar.gz,
 * uploaded to the object store, and unpacked once per instance. Deterministic (sorted
 * entries, no mtimes), so an unchanged workdir gives the same hash and is not re-uploaded.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import picomatch from "picomatch";
import * as tar from "tar";
import { AbortError } from "#core/errors.js";

/** Always left out: version control and spawn's own state. Add more in `.spawnignore` (one glob per line). */
const ALWAYS_IGNORED = [".git", ".spawn", ".hg", ".svn"];
/** Bundles above this are refused: ship data through the object store, not the workdir. */
export const MAX_BUNDLE_BYTES = 512 * 1024 * 1024;

export interface Bundle {
  file: string;
  sha256: string;
  bytes: number;
  files: number;
}

async function ignoreMatcher(workdir: string): Promise<(rel: string) => boolean> {
  let patterns: string[] = [];
  try {
    patterns = (await readFile(join(workdir, ".spawnignore"), "utf8"))
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
  } catch {
    // no .spawnignore
  }
  const match = picomatch(
    patterns.flatMap((p) => [p, `${p.replace(/\/$/, "")}/**`]),
    { dot: true },
  );
  return (rel) => ALWAYS_IGNORED.includes(rel.split("/")[0] ?? "") || (patterns.length > 0 && match(rel));
}

async function listFiles(workdir: string): Promise<string[]> {
  const ignored = await ignoreMatcher(workdir);
  const entries = await readdir(workdir, { recursive: true, withFileTypes: true });
  const files: string[] = [];
  for (const e of entries) {
    if (!e.isFile() && !e.isSymbolicLink()) continue;
    const rel = relative(workdir, join(e.parentPath, e.name)).split(sep).join("/");
    if (!ignored(rel)) files.push(rel);
  }
  return files.sort();
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Packs `workdir` into `outDir/<tmp>.tar.gz`; throws AbortError naming `workdir` when it is missing or too big. */
export async function createBundle(workdir: string, outDir: string): Promise<Bundle> {
  const info = await stat(workdir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new AbortError(
      `workdir: ${workdir} is not a directory`,
      "workdir is relative to the spec file's directory",
    );
  }
  const files = await listFiles(workdir);
  await mkdir(outDir, { recursive: true });
  const tmp = join(outDir, `bundle-${process.pid}-${Date.now()}.tar.gz`);
  await tar.c(
    { cwd: workdir, file: tmp, gzip: { level: 6 }, portable: true, noMtime: true, noDirRecurse: true },
    // An empty workdir (every job's command stands alone) is a bundle of the directory itself.
    files.length > 0 ? files : ["."],
  );
  const bytes = (await stat(tmp)).size;
  if (bytes > MAX_BUNDLE_BYTES) {
    await rm(tmp, { force: true });
    throw new AbortError(
      `workdir: bundle of ${workdir} is ${(bytes / 2 ** 20).toFixed(0)} MiB, over the ${MAX_BUNDLE_BYTES / 2 ** 20} MiB limit`,
      "list large files or data directories in .spawnignore",
    );
  }
  return { file: tmp, sha256: await sha256File(tmp), bytes, files: files.length };
}

/** Object-store key of a bundle: content-addressed, so it is uploaded once. */
export function bundleKey(sha256: string): string {
  return `bundles/${sha256}.tar.gz`;
}

/**
 * Unpacks a bundle into `dir` once: verifies the checksum, extracts into a temporary
 * directory, then renames it into place, so concurrent unpackers and crashes never
 * leave a half-extracted workdir behind.
 */
export async function extractBundle(file: string, expectedSha256: string, dir: string): Promise<void> {
  const exists = await stat(dir).catch(() => undefined);
  if (exists?.isDirectory()) return;
  const actual = await sha256File(file);
  if (actual !== expectedSha256)
    throw new Error(`bundle checksum mismatch: expected ${expectedSha256}, got ${actual}`);
  const tmp = `${dir}.${process.pid}.${Date.now()}.partial`;
  await mkdir(tmp, { recursive: true });
  await tar.x({ file, cwd: tmp });
  try {
    await rename(tmp, dir);
  } catch (error) {
    // Someone else finished first; theirs is identical.
    await rm(tmp, { recursive: true, force: true });
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "ENOTEMPTY" && code !== "EEXIST") throw error;
  }
}
