/**
 * Which files a finished task keeps: everything under its `SPAWN_OUTPUT_DIR`, plus files in its
 * working directory matching the spec's `outputs` globs that the attempt wrote.
 */
import { lstat } from "node:fs/promises";
import { isAbsolute, join, resolve } from "node:path";
import { glob } from "tinyglobby";
import { AbortError } from "../core/errors.js";

/** Object-store prefix of a task's kept files. */
export function outputsPrefix(sweepId: string, index: number): string {
  return `outputs/${sweepId}/${index}/`;
}

export interface CollectOutputsOptions {
  /** The task's working directory; `patterns` are relative to it. */
  cwd: string;
  /** The spec's `outputs` globs. */
  patterns: readonly string[];
  /** The task's `SPAWN_OUTPUT_DIR`; may not exist. */
  outputDir: string;
  /** Epoch ms the attempt started: pattern matches modified before it are someone else's. */
  since: number;
}

export interface CollectedOutput {
  /** Absolute path on this machine. */
  path: string;
  /** The key it is stored under, `/`-separated: `output/<path in outputDir>` or `files/<path in cwd>`. */
  rel: string;
}

/** Throws for a glob that could reach outside the working directory (absolute, or with a `..` segment). */
export function checkOutputPattern(pattern: string): void {
  const body = pattern.startsWith("!") ? pattern.slice(1) : pattern;
  if (isAbsolute(body) || /^[A-Za-z]:/.test(body) || body.split(/[/\\]/).includes("..")) {
    throw new AbortError(
      `outputs pattern ${JSON.stringify(pattern)} reaches outside the task's working directory`,
      "write outputs globs relative to the workdir, without .. (or write files to $SPAWN_OUTPUT_DIR)",
    );
  }
}

/**
 * The files to upload for one attempt, sorted by `rel`:
 *
 * - every regular file under `outputDir`, dotfiles included, as `output/<relative path>`;
 * - regular files under `cwd` matching `patterns` (tinyglobby: no dotfiles, symbolic links not
 *   followed; a directory name matches everything under it), as `files/<relative path>`, but only
 *   those modified at or after `since`, so files of other tasks or older runs sharing the workdir are
 *   left out. `since` is rounded down to the second, for filesystems with coarse timestamps. A file
 *   also under `outputDir` is listed once, as `output/...`.
 *
 * Symbolic links are never collected. Throws (before reading anything) for a pattern that escapes
 * `cwd` ({@link checkOutputPattern}).
 */
export async function collectOutputs(options: CollectOutputsOptions): Promise<CollectedOutput[]> {
  for (const pattern of options.patterns) checkOutputPattern(pattern);
  const cwd = resolve(options.cwd);
  const outputDir = resolve(options.outputDir);
  const out: CollectedOutput[] = [];
  const seen = new Set<string>();

  const inOutputDir = await glob("**", {
    cwd: outputDir,
    onlyFiles: true,
    dot: true,
    followSymbolicLinks: false,
    expandDirectories: false,
  }).catch((err: NodeJS.ErrnoException) => {
    if (err.code === "ENOENT") return [] as string[];
    throw err;
  });
  await Promise.all(
    inOutputDir.map(async (rel) => {
      const path = join(outputDir, rel);
      const stat = await lstat(path).catch(() => undefined);
      if (!stat?.isFile()) return;
      seen.add(path);
      out.push({ path, rel: `output/${rel}` });
    }),
  );

  if (options.patterns.length > 0) {
    const since = Math.floor(options.since / 1000) * 1000;
    const matched = await glob([...options.patterns], {
      cwd,
      onlyFiles: true,
      dot: false,
      followSymbolicLinks: false,
    });
    await Promise.all(
      matched.map(async (rel) => {
        const path = join(cwd, rel);
        if (seen.has(path)) return;
        const stat = await lstat(path).catch(() => undefined);
        if (!stat?.isFile() || stat.mtimeMs < since) return;
        out.push({ path, rel: `files/${rel}` });
      }),
    );
  }
  return out.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));
}
