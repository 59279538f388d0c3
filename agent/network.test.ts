import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { networkRefusal, probeNetworkIsolation } from "./network.js";
import { runTask } from "./task-runner.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "spawn-net-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Tries to connect to 127.0.0.1:<port>; prints "connected" or the error code. */
const CONNECT = (port: number) =>
  `node -e 'const s=require("net").connect(${port},"127.0.0.1");s.on("connect",()=>{console.log("connected");process.exit(0)});s.on("error",e=>{console.log(e.code);process.exit(7)})'`;

const plan = await probeNetworkIsolation();

describe("network: none", () => {
  it.skipIf(!plan.wrapper)(
    `a command in its own network namespace cannot open a socket${plan.warning ? ` (skipped: ${plan.warning})` : ""}`,
    async () => {
      // Given: a server listening on this machine's loopback
      const server = createServer((s) => s.end());
      await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
      const port = (server.address() as { port: number }).port;
      try {
        // The same command reaches it with the network...
        const open = await runTask({
          command: CONNECT(port),
          cwd: dir,
          env: {},
          logFile: join(dir, "open.log"),
          graceMs: 100,
        });
        expect(open.exitCode).toBe(0);
        expect(await readFile(join(dir, "open.log"), "utf8")).toContain("connected");

        // ...and cannot without it
        const closed = await runTask({
          command: CONNECT(port),
          cwd: dir,
          env: {},
          logFile: join(dir, "closed.log"),
          graceMs: 100,
          wrapper: plan.wrapper!,
        });
        expect(closed.exitCode).toBe(7);
        expect(await readFile(join(dir, "closed.log"), "utf8")).toMatch(/ENETUNREACH|ECONNREFUSED/);
      } finally {
        server.close();
      }
    },
  );

  it.skipIf(plan.wrapper !== undefined)(
    "where namespaces are not allowed, says so instead of pretending",
    () => {
      expect(plan.warning).toMatch(/network: none is NOT enforced on this instance/);
    },
  );
});

describe("networkRefusal", () => {
  it("refuses allowlist on the local provider, and without entries on aws", () => {
    expect(networkRefusal({ network: "allowlist", allowlist: ["10.0.0.0/8"] }, "local")).toMatch(
      /only on aws/,
    );
    expect(networkRefusal({ network: "allowlist" }, "aws")).toMatch(/needs an allowlist/);
    expect(networkRefusal({ network: "allowlist", allowlist: ["10.0.0.0/8"] }, "aws")).toBeUndefined();
    expect(networkRefusal({ network: "none" }, "local")).toBeUndefined();
  });
});
