import { mkdir, mkdtemp, rm, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { AbortError } from "../core/errors.js";
import { collectOutputs } from "./outputs.js";

let dir: string;
let cwd: string;
let outputDir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-outputs-"));
  cwd = join(dir, "work");
  outputDir = join(dir, "task", "output");
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function write(path: string, text = "x", mtimeMs?: number) {
  await mkdir(join(path, ".."), { recursive: true });
  await writeFile(path, text);
  if (mtimeMs !== undefined) await utimes(path, mtimeMs / 1000, mtimeMs / 1000);
}

describe("collectOutputs", () => {
  it("collects the output dir and new pattern matches, with stable keys", async () => {
    const since = Date.now() - 1000;
    const old = since - 3_600_000;
    await write(join(outputDir, "model.pt"));
    await write(join(outputDir, "sub", "deep", "a.json"));
    await write(join(outputDir, ".hidden"));
    await write(join(cwd, "results", "mine.json"));
    await write(join(cwd, "results", "other-task.json"), "x", old);
    await write(join(cwd, "results", ".dot.json"));
    await write(join(cwd, "results", "notes.txt"));
    await write(join(cwd, "plots", "a", "b.png"));
    await symlink("/etc/hostname", join(cwd, "results", "link.json"));

    const found = await collectOutputs({ cwd, outputDir, since, patterns: ["results/*.json", "plots"] });
    expect(found).toEqual([
      { path: join(cwd, "plots", "a", "b.png"), rel: "files/plots/a/b.png" },
      { path: join(cwd, "results", "mine.json"), rel: "files/results/mine.json" },
      { path: join(outputDir, ".hidden"), rel: "output/.hidden" },
      { path: join(outputDir, "model.pt"), rel: "output/model.pt" },
      { path: join(outputDir, "sub", "deep", "a.json"), rel: "output/sub/deep/a.json" },
    ]);
  });

  it("works without an output dir or patterns", async () => {
    await mkdir(cwd, { recursive: true });
    expect(await collectOutputs({ cwd, outputDir, since: 0, patterns: [] })).toEqual([]);
    await write(join(cwd, "a.txt"));
    expect(await collectOutputs({ cwd, outputDir, since: 0, patterns: ["*.txt"] })).toEqual([
      { path: join(cwd, "a.txt"), rel: "files/a.txt" },
    ]);
  });

  it("lists a file in an output dir inside the workdir once", async () => {
    const inner = join(cwd, "out");
    await write(join(inner, "r.json"));
    expect(await collectOutputs({ cwd, outputDir: inner, since: 0, patterns: ["**/*.json"] })).toEqual([
      { path: join(inner, "r.json"), rel: "output/r.json" },
    ]);
  });

  it.each(["/etc/passwd", "../secret", "results/../../x", "a/..", "!../x", "C:/x"])(
    "refuses %s, which escapes the workdir",
    async (pattern) => {
      await mkdir(cwd, { recursive: true });
      const run = collectOutputs({ cwd, outputDir, since: 0, patterns: ["ok/*", pattern] });
      await expect(run).rejects.toThrow(AbortError);
      await expect(run).rejects.toThrow(pattern);
    },
  );
});
