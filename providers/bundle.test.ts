/** Workdir bundles round-trip through create and extract; an empty workdir is a bundle too. */
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { createBundle, extractBundle } from "./bundle.js";

describe("workdir bundles", () => {
  test("a workdir's files round-trip; an empty workdir is an empty bundle, not an error", async () => {
    const root = await mkdtemp(join(tmpdir(), "spawn-bundle-"));
    const full = join(root, "full");
    const empty = join(root, "empty");
    await mkdir(join(full, "sub"), { recursive: true });
    await mkdir(empty);
    await writeFile(join(full, "sub", "a.txt"), "hello");
    for (const [dir, expected] of [
      [full, ["sub"]],
      [empty, []],
    ] as const) {
      const bundle = await createBundle(dir, join(root, "out"));
      const target = join(root, `x-${bundle.sha256}`);
      await extractBundle(bundle.file, bundle.sha256, target);
      expect(await readdir(target)).toEqual(expected);
      expect(bundle.files).toBe(expected.length);
    }
    expect(
      await readFile(
        join(root, `x-${(await createBundle(full, join(root, "out"))).sha256}`, "sub", "a.txt"),
        "utf8",
      ),
    ).toBe("hello");
  });
});
