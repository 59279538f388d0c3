import { appendFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileObjectStore } from "../providers/local/objects.js";
import { LogShipper, logChunkPrefix } from "./log-shipper.js";

let dir: string;
let objects: FileObjectStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-logs-"));
  objects = new FileObjectStore(join(dir, "objects"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const shipped = async (prefix: string) => {
  const keys = await objects.list(prefix);
  const parts = await Promise.all(keys.map(async (k) => Buffer.from((await objects.getBytes(k)) ?? [])));
  return { keys, text: Buffer.concat(parts).toString() };
};

describe("LogShipper", () => {
  it("ships new output in chunks while the task runs, by time and by size, and the rest at the end", async () => {
    // Given
    const file = join(dir, "task.log");
    await writeFile(file, "");
    const prefix = logChunkPrefix("sw", 3, 1);
    const shipper = new LogShipper({ objects, prefix, file, intervalMs: 150, chunkBytes: 64, pollMs: 20 });
    shipper.start();

    // When: a line is written, then time passes
    await appendFile(file, "hello\n");
    await new Promise((r) => setTimeout(r, 300));
    // Then: it is in the store already, while the task still runs
    expect((await shipped(prefix)).text).toBe("hello\n");

    // When: a burst larger than a chunk
    await appendFile(file, "x".repeat(150));
    await new Promise((r) => setTimeout(r, 100));
    const burst = await shipped(prefix);
    expect(burst.keys.length).toBeGreaterThanOrEqual(3);

    // And: the end ships whatever is left, in order
    await appendFile(file, "\nbye\n");
    await shipper.finish();
    const all = await shipped(prefix);
    expect(all.text).toBe(`hello\n${"x".repeat(150)}\nbye\n`);
    expect(all.keys.every((k) => k.startsWith("logs/sw/3/1/"))).toBe(true);
  });
});
