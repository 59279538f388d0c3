/**
 * Client-side pacing for the EC2 API. EC2 throttles each account per region with token buckets:
 * one *request* bucket per API, and for RunInstances (which CreateFleet draws on) and
 * TerminateInstances a *resource* bucket counted in instances (RunInstances: 1,000 instances,
 * refilling at 2 per second). We keep an estimate of each bucket so a launch is batched to what
 * EC2 will accept instead of being refused, and we back off with full jitter when EC2 says
 * `RequestLimitExceeded` anyway (other callers in the account share the same buckets).
 *
 * Bucket sizes are the defaults documented in the EC2 API reference ("Request throttling for
 * the Amazon EC2 API"); an account with raised limits passes its own. Time comes from an injected
 * clock and sleep, so tests and the launch benchmark run on simulated time.
 */
import type { Clock } from "#core/ports.js";

/** Size and refill rate of one token bucket. */
export interface BucketSpec {
  capacity: number;
  refillPerSecond: number;
}

/** The EC2 actions spawn calls, with the throttling category EC2 puts them in. */
export const EC2_API = {
  CreateFleet: "mutating",
  TerminateInstances: "mutating",
  DescribeInstances: "non-mutating",
  DescribeAvailabilityZones: "non-mutating",
  CreatePlacementGroup: "mutating",
  DeletePlacementGroup: "mutating",
} as const;
export type Ec2ApiName = keyof typeof EC2_API;

/** Request buckets per category: mutating 200 / 5 per second, non-mutating 100 / 20 per second. */
export const DEFAULT_REQUEST_BUCKETS: Record<(typeof EC2_API)[Ec2ApiName], BucketSpec> = {
  mutating: { capacity: 200, refillPerSecond: 5 },
  "non-mutating": { capacity: 100, refillPerSecond: 20 },
};

/** RunInstances resource bucket: 1,000 instances, 2 more per second, per region. */
export const RUN_INSTANCES_BUCKET: BucketSpec = { capacity: 1000, refillPerSecond: 2 };

/** A token bucket on an injected clock. Starts full. */
export class TokenBucket {
  private tokens: number;
  private at: number;

  constructor(
    readonly spec: BucketSpec,
    private readonly clock: Clock,
  ) {
    this.tokens = spec.capacity;
    this.at = clock.now();
  }

  /** Tokens available now (fractional while refilling). */
  available(): number {
    const now = this.clock.now();
    if (now > this.at) {
      this.tokens = Math.min(
        this.spec.capacity,
        this.tokens + ((now - this.at) / 1000) * this.spec.refillPerSecond,
      );
      this.at = now;
    }
    return this.tokens;
  }

  /** Takes up to `wanted` whole tokens now; returns how many it took (0 when empty). */
  take(wanted: number): number {
    const granted = Math.max(0, Math.min(Math.floor(wanted), Math.floor(this.available())));
    this.tokens -= granted;
    return granted;
  }

  /** Puts back tokens taken for work that did not happen (instances EC2 did not launch). */
  refund(count: number): void {
    this.tokens = Math.min(this.spec.capacity, this.available() + count);
  }

  /** Milliseconds until `count` whole tokens are available (0 if they are); capped at the capacity. */
  msUntil(count: number): number {
    const missing = Math.min(count, this.spec.capacity) - this.available();
    return missing <= 0 ? 0 : Math.ceil((missing / this.spec.refillPerSecond) * 1000);
  }
}

export interface Ec2ThrottleOptions {
  clock: Clock;
  /** Waits on the same clock (simulated in tests). @default setTimeout */
  sleep?: (ms: number) => Promise<void>;
  /** Uniform in [0, 1), for jitter. @default Math.random */
  random?: () => number;
  requestBuckets?: Partial<Record<(typeof EC2_API)[Ec2ApiName], BucketSpec>>;
  runInstancesBucket?: BucketSpec;
  /** Sends of one request after which a throttling error is thrown. @default 8 */
  maxAttempts?: number;
  /** First backoff ceiling; doubles per attempt. @default 200 ms */
  baseDelayMs?: number;
  /** Largest backoff ceiling. @default 20 s */
  maxDelayMs?: number;
}

/** EC2's throttling errors (RequestLimitExceeded), and the SDK's generic names for them. */
export function isThrottling(error: unknown): boolean {
  const name = (error as { name?: unknown; Code?: unknown } | null)?.name;
  return name === "RequestLimitExceeded" || name === "Throttling" || name === "ThrottlingException";
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * Request buckets per (region, API) and the RunInstances resource bucket per region, shared by
 * every call an Ec2Compute makes (keep one per process: a Lambda container, the CLI).
 */
export class Ec2Throttle {
  readonly clock: Clock;
  readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly requests = new Map<string, TokenBucket>();
  private readonly instances = new Map<string, TokenBucket>();
  private readonly options: Ec2ThrottleOptions;
  /** Throttling errors EC2 returned (each retried after a backoff). */
  throttled = 0;

  constructor(options: Ec2ThrottleOptions) {
    this.options = options;
    this.clock = options.clock;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
  }

  private requestBucket(region: string, api: Ec2ApiName): TokenBucket {
    const key = `${region}\u0000${api}`;
    let bucket = this.requests.get(key);
    if (!bucket) {
      const category = EC2_API[api];
      bucket = new TokenBucket(
        this.options.requestBuckets?.[category] ?? DEFAULT_REQUEST_BUCKETS[category],
        this.clock,
      );
      this.requests.set(key, bucket);
    }
    return bucket;
  }

  /** The RunInstances resource bucket of a region (instances launched). */
  instanceBucket(region: string): TokenBucket {
    let bucket = this.instances.get(region);
    if (!bucket) {
      bucket = new TokenBucket(this.options.runInstancesBucket ?? RUN_INSTANCES_BUCKET, this.clock);
      this.instances.set(region, bucket);
    }
    return bucket;
  }

  /**
   * Sends one request: waits for a token of its (region, API) bucket, then calls `send`; on a
   * throttling error, backs off (exponential ceiling, full jitter) and sends again, at most
   * `maxAttempts` times in all. Other errors are thrown at once.
   */
  async call<T>(region: string, api: Ec2ApiName, send: () => Promise<T>): Promise<T> {
    const bucket = this.requestBucket(region, api);
    const maxAttempts = this.options.maxAttempts ?? 8;
    const base = this.options.baseDelayMs ?? 200;
    const cap = this.options.maxDelayMs ?? 20_000;
    for (let attempt = 1; ; attempt++) {
      const wait = bucket.msUntil(1);
      if (wait > 0) await this.sleep(wait);
      bucket.take(1);
      try {
        return await send();
      } catch (error) {
        if (!isThrottling(error) || attempt >= maxAttempts) throw error;
        this.throttled++;
        await this.sleep(Math.floor(this.random() * Math.min(cap, base * 2 ** (attempt - 1))));
      }
    }
  }
}
