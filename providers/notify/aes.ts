/** AES-256-GCM under a 32-byte key, with the alert's context as additional data: the part of sealing both key sources share. */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Sealed } from "#core/alerts.js";

export function sealWithKey(
  key: Uint8Array,
  plaintext: string,
  context: string,
  envelope: Pick<Sealed, "key" | "wrappedKey">,
): Sealed {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(Buffer.from(context, "utf8"));
  const data = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
  return {
    v: 1,
    ...envelope,
    iv: iv.toString("base64"),
    tag: cipher.getAuthTag().toString("base64"),
    data: data.toString("base64"),
  };
}

/** Throws ("unable to authenticate data") when the ciphertext, tag or context differ. */
export function openWithKey(key: Uint8Array, sealed: Sealed, context: string): string {
  const decipher = createDecipheriv("aes-256-gcm", key, Buffer.from(sealed.iv, "base64"));
  decipher.setAAD(Buffer.from(context, "utf8"));
  decipher.setAuthTag(Buffer.from(sealed.tag, "base64"));
  return Buffer.concat([decipher.update(Buffer.from(sealed.data, "base64")), decipher.final()]).toString(
    "utf8",
  );
}
