/**
 * The embedded default's channel: one JSON line per alert appended to `alerts.log` in the state
 * dir, which `tail -f` or a desktop notifier can watch. The file is created 0600: it names
 * sweeps and errors that are the user's business only.
 */
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { type AlertMessage, messageText } from "#core/alerts.js";

export const ALERT_LOG = "alerts.log";

export function alertLogPath(home: string): string {
  return join(home, ALERT_LOG);
}

export async function appendAlertLog(home: string, message: AlertMessage): Promise<void> {
  const { event: _event, ...rest } = message;
  await appendFile(alertLogPath(home), `${JSON.stringify({ ...rest, text: messageText(message) })}\n`, {
    mode: 0o600,
  });
}
