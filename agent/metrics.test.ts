import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { readFinalMetrics } from "./metrics.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-metrics-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("readFinalMetrics", () => {
  it("gives undefined for a missing file", async () => {
    expect(await readFinalMetrics(join(dir, "nope.jsonl"))).toBeUndefined();
    expect(await readFinalMetrics(join(dir, "nope", "deeper.jsonl"))).toBeUndefined();
  });

  it("merges lines, the last value of each key winning", async () => {
    const path = join(dir, "m.jsonl");
    await writeFile(
      path,
      [
        '{"step": 1, "loss": 0.9, "lr": 0.1}',
        "",
        '{"step": 2, "loss": 0.5, "nested": {"a": 1}}',
        '  {"step": 3, "acc": 0.7, "nested": {"b": 2}}  ',
        "",
      ].join("\n"),
    );
    expect(await readFinalMetrics(path)).toEqual({
      metrics: { step: 3, loss: 0.5, lr: 0.1, acc: 0.7, nested: { b: 2 } },
      badLines: 0,
    });
  });

  it("counts bad lines without failing, a torn last line included", async () => {
    const path = join(dir, "m.jsonl");
    await writeFile(path, '{"a": 1}\nnot json\n[1,2]\n42\nnull\n"s"\n{"b": 2}\n{"c": ');
    expect(await readFinalMetrics(path)).toEqual({ metrics: { a: 1, b: 2 }, badLines: 6 });
  });

  it("keeps a __proto__ key as a plain key", async () => {
    const path = join(dir, "m.jsonl");
    await writeFile(path, '{"__proto__": {"polluted": true}, "x": 1}\n');
    const result = await readFinalMetrics(path);
    expect(Object.getPrototypeOf(result!.metrics)).toBe(Object.prototype);
    expect(Object.keys(result!.metrics)).toEqual(["__proto__", "x"]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("reads only the tail of a large file, dropping its first partial line", async () => {
    const path = join(dir, "m.jsonl");
    const lines = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ step: i, [`k${i}`]: i }));
    await writeFile(path, `${lines.join("\n")}\n`);
    const result = await readFinalMetrics(path, 1000);
    expect(result!.badLines).toBe(0);
    expect(result!.metrics.step).toBe(999);
    expect(result!.metrics.k999).toBe(999);
    expect(result!.metrics.k0).toBeUndefined();
    const keys = Object.keys(result!.metrics).filter((k) => k.startsWith("k"));
    expect(keys.length).toBeGreaterThan(10);
    expect(keys.length).toBeLessThan(60);
  });

  it("gives empty metrics for an empty file, and throws for a directory", async () => {
    await writeFile(join(dir, "empty.jsonl"), "");
    expect(await readFinalMetrics(join(dir, "empty.jsonl"))).toEqual({ metrics: {}, badLines: 0 });
    await mkdir(join(dir, "d"));
    await expect(readFinalMetrics(join(dir, "d"))).rejects.toThrow();
  });
});
