/**
 * The instance metadata service, IMDSv2 only: a session token from `PUT /latest/api/token`
 * (TTL header), sent back on every GET, refreshed before it expires and fetched again on a 401.
 * Every request has a 2 s timeout and failed requests are retried with jittered backoff, as
 * aws-node-termination-handler does. The watcher polls the spot interruption notice and the
 * rebalance recommendation every 5 s; a 404 means "none".
 */

/** Where IMDS answers on EC2. The local provider has none unless chaos mode or a test sets one. */
export const DEFAULT_IMDS_ENDPOINT = "http://169.254.169.254";

export interface ImdsClientOptions {
  /** Base URL; paths such as `/latest/api/token` are appended. @default http://169.254.169.254 */
  endpoint?: string;
  /** Session token lifetime asked for, seconds (1–21600). @default 3600 */
  tokenTtlS?: number;
  /** A token is replaced this long before it expires. @default 15 s */
  refreshBeforeMs?: number;
  /** Per request. @default 2000 */
  timeoutMs?: number;
  /** Tries per request (the first included). @default 3 */
  attempts?: number;
  /** Backoff base between tries; the delay is uniform in [0, base × 2^n). @default 200 ms */
  backoffMs?: number;
  now?: () => number;
  random?: () => number;
}

/** IMDS answered with something other than 200, 404 or (after a fresh token) 401, or not at all. */
export class ImdsError extends Error {
  override name = "ImdsError";
}

/** `spot/instance-action`: the instance will be stopped, hibernated or terminated at `time`. */
export interface InterruptionNotice {
  action: "terminate" | "stop" | "hibernate";
  /** Epoch ms when the action is due (about 2 minutes after the notice). */
  actionAt: number;
}

/** `events/recommendations/rebalance`: the instance is at elevated risk of interruption. */
export interface RebalanceRecommendation {
  noticeAt: number;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export class ImdsClient {
  readonly endpoint: string;
  private token: { value: string; expiresAt: number } | undefined;
  private readonly o: Required<Omit<ImdsClientOptions, "endpoint">>;

  constructor(options: ImdsClientOptions = {}) {
    this.endpoint = (options.endpoint ?? DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, "");
    this.o = {
      tokenTtlS: options.tokenTtlS ?? 3600,
      refreshBeforeMs: options.refreshBeforeMs ?? 15_000,
      timeoutMs: options.timeoutMs ?? 2000,
      attempts: options.attempts ?? 3,
      backoffMs: options.backoffMs ?? 200,
      now: options.now ?? Date.now,
      random: options.random ?? Math.random,
    };
  }

  /** The body of a metadata path (`/latest/meta-data/...`), or undefined on 404. */
  async get(path: string): Promise<string | undefined> {
    return this.retrying(async () => {
      const token = await this.sessionToken();
      let response = await this.request("GET", path, { "x-aws-ec2-metadata-token": token });
      if (response.status === 401) {
        // The token expired or IMDS restarted: drop it and try once more with a new one.
        this.token = undefined;
        const fresh = await this.sessionToken();
        response = await this.request("GET", path, { "x-aws-ec2-metadata-token": fresh });
      }
      if (response.status === 404) return undefined;
      if (response.status !== 200) throw new ImdsError(`GET ${path}: HTTP ${response.status}`);
      return response.body;
    });
  }

  /** The spot interruption notice, or undefined while there is none. */
  async interruption(): Promise<InterruptionNotice | undefined> {
    const body = await this.get("/latest/meta-data/spot/instance-action");
    if (body === undefined) return undefined;
    const parsed = JSON.parse(body) as { action?: string; time?: string };
    const action = parsed.action === "stop" || parsed.action === "hibernate" ? parsed.action : "terminate";
    const actionAt = Date.parse(parsed.time ?? "");
    // A notice without a readable time still means "soon": assume the documented two minutes.
    return { action, actionAt: Number.isFinite(actionAt) ? actionAt : this.o.now() + 120_000 };
  }

  /** The rebalance recommendation, or undefined while there is none. */
  async rebalance(): Promise<RebalanceRecommendation | undefined> {
    const body = await this.get("/latest/meta-data/events/recommendations/rebalance");
    if (body === undefined) return undefined;
    const at = Date.parse((JSON.parse(body) as { noticeTime?: string }).noticeTime ?? "");
    return { noticeAt: Number.isFinite(at) ? at : this.o.now() };
  }

  private async sessionToken(): Promise<string> {
    const now = this.o.now();
    if (this.token && now < this.token.expiresAt - this.o.refreshBeforeMs) return this.token.value;
    const response = await this.request("PUT", "/latest/api/token", {
      "x-aws-ec2-metadata-token-ttl-seconds": String(this.o.tokenTtlS),
    });
    if (response.status !== 200 || !response.body)
      throw new ImdsError(`PUT /latest/api/token: HTTP ${response.status}`);
    this.token = { value: response.body, expiresAt: now + this.o.tokenTtlS * 1000 };
    return response.body;
  }

  private async request(
    method: "GET" | "PUT",
    path: string,
    headers: Record<string, string>,
  ): Promise<{ status: number; body: string }> {
    const response = await fetch(`${this.endpoint}${path}`, {
      method,
      headers,
      signal: AbortSignal.timeout(this.o.timeoutMs),
    });
    return { status: response.status, body: await response.text() };
  }

  private async retrying<T>(fn: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (error) {
        if (attempt >= this.o.attempts) {
          throw error instanceof ImdsError
            ? error
            : new ImdsError(`IMDS at ${this.endpoint}: ${(error as Error).message}`, { cause: error });
        }
        await sleep(Math.floor(this.o.random() * this.o.backoffMs * 2 ** (attempt - 1)));
      }
    }
  }
}

export interface InterruptionWatchOptions {
  client: ImdsClient;
  /** @default 5000, as AWS recommends */
  intervalMs?: number;
  onInterruption(notice: InterruptionNotice): void;
  onRebalance(recommendation: RebalanceRecommendation): void;
  /** A poll failed (after retries); the watch goes on. */
  onError?(error: Error): void;
}

/**
 * Polls both endpoints every `intervalMs` (the first poll at once) until stopped. Each callback
 * fires at most once: a notice does not go away, and the agent acts on the first sighting.
 */
export function watchInterruptions(options: InterruptionWatchOptions): { stop(): void } {
  let stopped = false;
  let interrupted = false;
  let rebalanced = false;
  let timer: NodeJS.Timeout | undefined;
  const poll = async () => {
    const [notice, rebalance] = await Promise.allSettled([
      interrupted ? Promise.resolve(undefined) : options.client.interruption(),
      rebalanced ? Promise.resolve(undefined) : options.client.rebalance(),
    ]);
    if (stopped) return;
    if (rebalance.status === "fulfilled" && rebalance.value && !rebalanced) {
      rebalanced = true;
      options.onRebalance(rebalance.value);
    }
    if (notice.status === "fulfilled" && notice.value && !interrupted) {
      interrupted = true;
      options.onInterruption(notice.value);
    }
    for (const r of [notice, rebalance]) if (r.status === "rejected") options.onError?.(r.reason as Error);
    if (!stopped && !interrupted) timer = setTimeout(() => void poll(), options.intervalMs ?? 5000);
  };
  void poll();
  return {
    stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
}
