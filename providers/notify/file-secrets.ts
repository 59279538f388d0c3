/**
 * The embedded default's SecretBox: AES-256-GCM under a key kept in `alerts.key` in the state
 * dir, created once with mode 0600. It protects webhook URLs and secrets in the database files
 * (backups, a copied state dir without the key) but not from someone who can read the user's
 * files: the key sits beside the data. docs/alerts.md says so; on AWS the key is in KMS.
 */
import { randomBytes } from "node:crypto";
import { link, readFile, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { Sealed, SecretBox } from "#core/alerts.js";
import { AbortError } from "#core/errors.js";
import { openWithKey, sealWithKey } from "./aes.js";

export const ALERT_KEY_FILE = "alerts.key";

export class FileSecretBox implements SecretBox {
  private key: Promise<Buffer> | undefined;

  constructor(private readonly home: string) {}

  private loadKey(): Promise<Buffer> {
    this.key ??= (async () => {
      const path = join(this.home, ALERT_KEY_FILE);
      // Written aside, then linked into place: exactly one process creates the key, and no
      // reader ever sees it half-written.
      const tmp = `${path}.${process.pid}.${randomBytes(4).toString("hex")}`;
      await writeFile(tmp, randomBytes(32), { flag: "wx", mode: 0o600 });
      try {
        await link(tmp, path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      } finally {
        await unlink(tmp);
      }
      const info = await stat(path);
      if (info.mode & 0o077) throw new AbortError(`${path} is readable by other users`, `chmod 600 ${path}`);
      const key = await readFile(path);
      if (key.length !== 32) throw new AbortError(`${path} is not a 32-byte key (was it edited?)`);
      return key;
    })();
    return this.key;
  }

  async seal(plaintext: string, context: string): Promise<Sealed> {
    return sealWithKey(await this.loadKey(), plaintext, context, { key: "file" });
  }

  async open(sealed: Sealed, context: string): Promise<string> {
    if (sealed.key !== "file")
      throw new AbortError("this alert's secrets were sealed with KMS; use --provider aws");
    return openWithKey(await this.loadKey(), sealed, context);
  }
}
