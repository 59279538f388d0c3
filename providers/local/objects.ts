/** The local object store: keys are paths under a directory; writes are atomic (temp file, then rename). */
import { randomBytes } from "node:crypto";
import { copyFile, mkdir, readdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, join, relative, sep } from "node:path";
import type { ObjectStore } from "#core/ports.js";

export class FileObjectStore implements ObjectStore {
  constructor(private readonly root: string) {}

  private pathOf(key: string): string {
    if (key.split("/").some((part) => part === ".." || part === "") || key.startsWith("/")) {
      throw new Error(`invalid object key ${JSON.stringify(key)}`);
    }
    return join(this.root, ...key.split("/"));
  }

  private async atomically(key: string, write: (tmp: string) => Promise<void>): Promise<void> {
    const target = this.pathOf(key);
    await mkdir(dirname(target), { recursive: true });
    const tmp = `${target}.${randomBytes(4).toString("hex")}.tmp`;
    await write(tmp);
    await rename(tmp, target);
  }

  putFile(key: string, path: string): Promise<void> {
    return this.atomically(key, (tmp) => copyFile(path, tmp));
  }

  putBytes(key: string, body: Uint8Array | string): Promise<void> {
    return this.atomically(key, (tmp) => writeFile(tmp, body));
  }

  async getFile(key: string, path: string): Promise<boolean> {
    try {
      await mkdir(dirname(path), { recursive: true });
      await copyFile(this.pathOf(key), path);
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw error;
    }
  }

  async getBytes(key: string): Promise<Uint8Array | undefined> {
    try {
      return await readFile(this.pathOf(key));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async list(prefix: string): Promise<string[]> {
    const base = this.pathOf(prefix.replace(/\/+$/, "") || ".");
    let entries: string[];
    try {
      entries = (await readdir(base, { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile() && !e.name.endsWith(".tmp"))
        .map((e) => join(e.parentPath, e.name));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
    return entries.map((p) => relative(this.root, p).split(sep).join("/")).sort();
  }

  async exists(key: string): Promise<boolean> {
    try {
      return (await stat(this.pathOf(key))).isFile();
    } catch {
      return false;
    }
  }
}
