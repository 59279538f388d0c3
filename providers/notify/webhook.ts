/**
 * The generic webhook: the message as JSON, signed with HMAC-SHA256 of the alert's secret over
 * `<timestamp>.<body>` in `X-Spawn-Signature` (verification: docs/alerts.md). The delivery id
 * header lets a receiver drop the rare duplicate that at-least-once delivery can send.
 */
import { type AlertMessage, SIGNATURE_HEADER, signWebhook } from "#core/alerts.js";
import { EVENT_VERSION } from "#core/events.js";

/** The body a webhook receives: `version` is the event contract's (docs/events.md). */
export function webhookBody(message: AlertMessage): string {
  return JSON.stringify({ version: EVENT_VERSION, ...message });
}

/** Headers of one attempt; each attempt is signed with its own timestamp. */
export function webhookHeaders(
  message: AlertMessage,
  body: string,
  secret: string,
  nowS: number,
): Record<string, string> {
  return {
    [SIGNATURE_HEADER]: signWebhook(secret, body, nowS),
    "x-spawn-delivery": message.deliveryId,
    "x-spawn-trigger": message.trigger,
  };
}
