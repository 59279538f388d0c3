/**
 * DynamoDB engines for tests: an in-process dynalite (always), and DynamoDB Local (the
 * real engine's jar, shipped by amplify-dynamodb-simulator) when Java is available.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import dynalite from "dynalite";
import { afterAll, beforeAll } from "vitest";
import type { StateStore } from "../../core/ports.js";
import { DynamoStateStore } from "../../providers/dynamodb/store.js";
import { ensureTables } from "../../providers/dynamodb/tables.js";

export interface DynamoEngine {
  /** e.g. "dynalite", "DynamoDB Local" */
  name: string;
  endpoint: string;
  client: DynamoDBClient;
  close(): Promise<void>;
}

export function dynamoClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({
    endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: "test", secretAccessKey: "test" },
    maxAttempts: 3,
  });
}

/** dynalite in this process, in memory, on a port the OS picks. Tables are created instantly. */
export async function startDynalite(): Promise<DynamoEngine> {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      server.off("error", reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = dynamoClient(endpoint);
  return {
    name: "dynalite",
    endpoint,
    client,
    close: async () => {
      client.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Overrides some methods of a store, delegating the rest (to inject failures and races). */
export function wrapStore(base: StateStore, overrides: Partial<StateStore>): StateStore {
  return new Proxy(base, {
    get(target, prop, receiver) {
      if (Object.hasOwn(overrides, prop)) return overrides[prop as keyof StateStore];
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

/**
 * A DynamoStateStore on in-process dynalite for one test file: tables under a fresh prefix
 * created before the tests, the engine closed after. Call at the top level of the file; the
 * returned getter works inside tests and hooks registered after it.
 */
export function useDynaliteStore(tag: string): () => { store: DynamoStateStore; engine: DynamoEngine } {
  let ready: { store: DynamoStateStore; engine: DynamoEngine } | undefined;
  beforeAll(async () => {
    const engine = await startDynalite();
    const prefix = `${tag}${randomUUID().slice(0, 6)}-`;
    await ensureTables(engine.client, prefix);
    ready = { engine, store: new DynamoStateStore(engine.client, prefix) };
  });
  afterAll(async () => {
    await ready?.engine.close();
  });
  return () => {
    if (!ready) throw new Error("useDynaliteStore: the store is ready only inside tests");
    return ready;
  };
}

/** Where amplify-dynamodb-simulator keeps DynamoDBLocal.jar (its index.js needs an Amplify CLI install, so we don't load it). */
function dynamoLocalDir(): string | undefined {
  try {
    const require = createRequire(import.meta.url);
    const dir = join(dirname(require.resolve("amplify-dynamodb-simulator/package.json")), "emulator");
    return existsSync(join(dir, "DynamoDBLocal.jar")) ? dir : undefined;
  } catch {
    return undefined;
  }
}

/** Why DynamoDB Local cannot run here, or undefined when it can. */
export async function dynamoLocalUnavailable(): Promise<string | undefined> {
  if (!dynamoLocalDir()) return "amplify-dynamodb-simulator's DynamoDBLocal.jar not found";
  return new Promise((resolve) => {
    execFile("java", ["-version"], { timeout: 10_000 }, (err) => {
      if (!err) resolve(undefined);
      else
        resolve(
          (err as NodeJS.ErrnoException).code === "ENOENT"
            ? "java not found"
            : `java -version failed: ${err.message}`,
        );
    });
  });
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * Starts DynamoDB Local (in memory) on a free port. Returns undefined with the reason when
 * Java or the jar is missing; throws if it is there but does not start.
 */
export async function startDynamoLocal(
  options: { startTimeoutMs?: number } = {},
): Promise<DynamoEngine | { unavailable: string }> {
  const reason = await dynamoLocalUnavailable();
  const dir = dynamoLocalDir();
  if (reason || !dir) return { unavailable: reason ?? "DynamoDBLocal.jar not found" };
  const port = await freePort();
  const proc: ChildProcess = spawn(
    "java",
    [
      "-Djava.library.path=./DynamoDBLocal_lib",
      "-jar",
      "DynamoDBLocal.jar",
      "-port",
      String(port),
      "-inMemory",
      "-disableTelemetry",
    ],
    { cwd: dir, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  proc.stdout?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  proc.stderr?.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = dynamoClient(endpoint);
  const close = async () => {
    client.destroy();
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill("SIGTERM");
      const killer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(killer);
    }
  };

  // Ready when it answers a request (the port is open only once the server is up).
  const deadline = Date.now() + (options.startTimeoutMs ?? 30_000);
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`DynamoDB Local exited with ${proc.exitCode}:\n${output}`);
    try {
      const response = await fetch(endpoint, { method: "GET", signal: AbortSignal.timeout(1000) });
      await response.body?.cancel();
      break;
    } catch {
      if (Date.now() > deadline) {
        await close();
        throw new Error(
          `DynamoDB Local did not start within ${options.startTimeoutMs ?? 30_000} ms:\n${output}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  return { name: "DynamoDB Local", endpoint, client, close };
}
