/**
 * A local instance metadata service speaking the IMDSv2 token protocol, for chaos mode and
 * tests: one HTTP server on loopback serving any number of "instances", each under its own path
 * prefix (`http://127.0.0.1:<port>/<instance>` is that instance's IMDS endpoint).
 *
 * Like EC2's, with IMDSv2 required:
 * - `PUT /latest/api/token` needs `X-aws-ec2-metadata-token-ttl-seconds` (1–21600), else 400; a
 *   request carrying `X-Forwarded-For` gets 403. The token expires after its TTL.
 * - every GET needs a valid, unexpired `X-aws-ec2-metadata-token`, else 401.
 * - `/latest/meta-data/spot/instance-action` and `/latest/meta-data/events/recommendations/rebalance`
 *   answer 404 until a notice is posted with {@link LocalImds.interrupt} or {@link LocalImds.rebalance}.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

interface InstanceState {
  notice?: { action: "terminate" | "stop" | "hibernate"; time: string };
  rebalance?: { noticeTime: string };
}

/** Request counts, for tests that check the protocol was followed. */
export interface ImdsStats {
  tokenPuts: number;
  gets: number;
  /** GETs refused with 401 (no token, unknown token, expired token). */
  unauthorized: number;
}

export class LocalImds {
  private server: Server | undefined;
  private base = "";
  private readonly tokens = new Map<string, number>();
  private readonly instances = new Map<string, InstanceState>();
  readonly stats: ImdsStats = { tokenPuts: 0, gets: 0, unauthorized: 0 };

  /** Starts listening on 127.0.0.1 (a port the OS picks); resolves with the base URL. */
  async start(): Promise<string> {
    const server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    this.server = server;
    this.base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.base;
  }

  /** The IMDS endpoint an agent for `instance` is given (SPAWN_IMDS_ENDPOINT). */
  endpointFor(instance: string): string {
    if (!this.base) throw new Error("LocalImds: not started");
    return `${this.base}/${encodeURIComponent(instance)}`;
  }

  /** Posts a spot interruption notice: the action is due `inMs` from now (EC2 gives 2 minutes). */
  interrupt(
    instance: string,
    action: "terminate" | "stop" | "hibernate" = "terminate",
    inMs = 120_000,
  ): void {
    this.state(instance).notice = { action, time: isoSeconds(Date.now() + inMs) };
  }

  /** Posts a rebalance recommendation. */
  rebalance(instance: string): void {
    this.state(instance).rebalance = { noticeTime: isoSeconds(Date.now()) };
  }

  /** Withdraws every notice of an instance. */
  clear(instance: string): void {
    this.instances.delete(instance);
  }

  /** Invalidates every session token, as an IMDS restart would: the next GET with one gets 401. */
  expireTokens(): void {
    this.tokens.clear();
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private state(instance: string): InstanceState {
    let s = this.instances.get(instance);
    if (!s) {
      s = {};
      this.instances.set(instance, s);
    }
    return s;
  }

  /** Answers one request; every branch ends in one `send`. */
  private handle(req: IncomingMessage, res: ServerResponse) {
    const send = (status: number, body = "", type = "text/plain") => {
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
      res.end(body);
    };
    const url = new URL(req.url ?? "/", "http://imds");
    const m = /^\/([^/]+)(\/latest\/.*)$/.exec(url.pathname);
    if (!m) return send(404, "Not Found");
    const instance = decodeURIComponent(m[1]!);
    const path = m[2]!;
    req.resume();
    if (path === "/latest/api/token") {
      if (req.method !== "PUT") return send(405, "Method Not Allowed");
      if (req.headers["x-forwarded-for"]) return send(403, "Forbidden");
      const ttl = Number(req.headers["x-aws-ec2-metadata-token-ttl-seconds"]);
      if (!Number.isInteger(ttl) || ttl < 1 || ttl > 21_600) return send(400, "Bad Request");
      this.stats.tokenPuts++;
      const token = randomBytes(24).toString("base64url");
      this.tokens.set(token, Date.now() + ttl * 1000);
      return send(200, token);
    }
    if (req.method !== "GET") return send(405, "Method Not Allowed");
    this.stats.gets++;
    const token = req.headers["x-aws-ec2-metadata-token"];
    const expiresAt = typeof token === "string" ? this.tokens.get(token) : undefined;
    if (expiresAt === undefined || Date.now() >= expiresAt) {
      this.stats.unauthorized++;
      return send(401, "Unauthorized");
    }
    const state = this.instances.get(instance);
    if (path === "/latest/meta-data/spot/instance-action") {
      return state?.notice
        ? send(200, JSON.stringify(state.notice), "application/json")
        : send(404, "Not Found");
    }
    if (path === "/latest/meta-data/events/recommendations/rebalance") {
      return state?.rebalance
        ? send(200, JSON.stringify(state.rebalance), "application/json")
        : send(404, "Not Found");
    }
    if (path === "/latest/meta-data/instance-id") return send(200, instance);
    return send(404, "Not Found");
  }
}

/** EC2 writes notice times to the second: `2026-01-01T00:02:00Z`. */
function isoSeconds(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 19)}Z`;
}
