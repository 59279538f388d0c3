/**
 * The aws provider's SecretBox: an envelope under the stack's KMS key. Each secret gets its own
 * data key (GenerateDataKey, AES_256) with the alert's origin id as encryption context; the
 * wrapped key is stored beside the ciphertext and unwrapped with Decrypt when a message is sent.
 * KMS sees only data keys, never a URL or secret, and the context is in CloudTrail, so every
 * unwrap names the alert it was for.
 */
import { DecryptCommand, GenerateDataKeyCommand, type KMSClient } from "@aws-sdk/client-kms";
import type { Sealed, SecretBox } from "#core/alerts.js";
import { BugError } from "#core/errors.js";
import { openWithKey, sealWithKey } from "./aes.js";

export const CONTEXT_KEY = "spawn:alert";

export class KmsSecretBox implements SecretBox {
  /**
   * @param keyId the stack's alerts key (ARN or alias); needed to seal, and checked on open
   */
  constructor(
    private readonly client: KMSClient,
    private readonly keyId?: string,
  ) {}

  async seal(plaintext: string, context: string): Promise<Sealed> {
    if (!this.keyId) throw new BugError("KmsSecretBox: sealing needs the key id");
    const out = await this.client.send(
      new GenerateDataKeyCommand({
        KeyId: this.keyId,
        KeySpec: "AES_256",
        EncryptionContext: { [CONTEXT_KEY]: context },
      }),
    );
    if (!out.Plaintext || !out.CiphertextBlob) throw new Error("KMS returned no data key");
    try {
      return sealWithKey(out.Plaintext, plaintext, context, {
        key: "kms",
        wrappedKey: Buffer.from(out.CiphertextBlob).toString("base64"),
      });
    } finally {
      out.Plaintext.fill(0);
    }
  }

  async open(sealed: Sealed, context: string): Promise<string> {
    if (sealed.key !== "kms" || !sealed.wrappedKey)
      throw new BugError("this secret was sealed with the local key file, not KMS");
    const out = await this.client.send(
      new DecryptCommand({
        CiphertextBlob: Buffer.from(sealed.wrappedKey, "base64"),
        EncryptionContext: { [CONTEXT_KEY]: context },
        ...(this.keyId ? { KeyId: this.keyId } : {}),
      }),
    );
    if (!out.Plaintext) throw new Error("KMS returned no plaintext key");
    try {
      return openWithKey(out.Plaintext, sealed, context);
    } finally {
      out.Plaintext.fill(0);
    }
  }
}
