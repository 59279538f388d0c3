/**
 * POSTs one alert to a webhook (Slack or generic) with retries: 429 and 5xx (and no answer)
 * are retried with exponential backoff and full jitter, honouring Retry-After; other statuses
 * are final. Redirects are not followed (a redirect could leave https). Nothing here reports
 * the URL: its path is the secret for Slack.
 */
import {
  type ChannelResult,
  checkWebhookUrl,
  DEFAULT_RETRY,
  type RetryPolicy,
  retryDelayMs,
} from "#core/alerts.js";

export interface PostOptions {
  retry?: RetryPolicy;
  /** Per attempt. @default 10 s */
  timeoutMs?: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
  now?: () => number;
}

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Why a request got no answer, without the URL (Node's fetch puts host and port in `cause`). */
function networkError(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause;
  if ((error as Error).name === "TimeoutError") return "timed out";
  return cause?.code ? `no answer (${cause.code})` : "no answer";
}

export async function postJson(
  url: string,
  body: string,
  headers: (attempt: number) => Record<string, string>,
  options: PostOptions = {},
): Promise<Omit<ChannelResult, "channel" | "kind">> {
  // Re-checked at send time: a stored URL is trusted no more than a typed one.
  checkWebhookUrl(url, "the webhook URL");
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  const now = options.now ?? Date.now;
  for (let attempt = 1; ; attempt++) {
    let status: number | undefined;
    let retryAfter: string | null = null;
    let error: string;
    try {
      const response = await fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json", "user-agent": "spawn-alerts/1", ...headers(attempt) },
        body,
        redirect: "manual",
        signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
      });
      status = response.status;
      retryAfter = response.headers.get("retry-after");
      // Receivers' error bodies are short words ("invalid_token", "no_service"); keep a little for the history.
      const text = (await response.text()).slice(0, 200).replace(/\s+/g, " ").trim();
      if (status >= 200 && status < 300) return { outcome: "delivered", status, attempts: attempt };
      error = `HTTP ${status}${text ? `: ${text}` : ""}`;
    } catch (e) {
      error = networkError(e);
    }
    const delay = retryDelayMs(attempt, status, retryAfter, now(), random, options.retry ?? DEFAULT_RETRY);
    if (delay === undefined) {
      const outcome = status !== undefined && status < 500 && status !== 429 ? "rejected" : "failed";
      return { outcome, ...(status !== undefined ? { status } : {}), attempts: attempt, error };
    }
    await sleep(delay);
  }
}
