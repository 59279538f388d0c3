/**
 * A fake EC2 instance metadata service for tests: the local IMDS server (a real HTTP server on
 * loopback speaking the IMDSv2 token protocol, providers/local/imds.ts) with one instance, and
 * controls to post notices and expire tokens.
 */
import { LocalImds } from "../../providers/local/imds.js";

export interface FakeImds {
  /** Give this to ImdsClient / SPAWN_IMDS_ENDPOINT. */
  endpoint: string;
  server: LocalImds;
  /** A spot interruption notice, the action due `inMs` from now. */
  interrupt(action?: "terminate" | "stop" | "hibernate", inMs?: number): void;
  rebalance(): void;
  clear(): void;
  /** Every token stops working (the next GET with one gets 401). */
  expireTokens(): void;
  close(): Promise<void>;
}

export async function startFakeImds(instance = "i-0123456789abcdef0"): Promise<FakeImds> {
  const server = new LocalImds();
  await server.start();
  return {
    endpoint: server.endpointFor(instance),
    server,
    interrupt: (action = "terminate", inMs = 120_000) => server.interrupt(instance, action, inMs),
    rebalance: () => server.rebalance(instance),
    clear: () => server.clear(instance),
    expireTokens: () => server.expireTokens(),
    close: () => server.stop(),
  };
}
