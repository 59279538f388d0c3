/**
 * Finding (and, when needed, starting) the embedded control plane from the CLI. The
 * user never starts it by hand: the first command that needs it starts it detached.
 */
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import { mkdir, open, readFile, rm } from "node:fs/promises";
import { connect } from "node:net";
import { fileURLToPath } from "node:url";
import { AbortError } from "#core/errors.js";
import type { LocalPaths } from "./paths.js";
import type { ServerInfo } from "./server.js";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function reachable(endpoint: string, timeoutMs = 1000): Promise<boolean> {
  const url = new URL(endpoint);
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname, port: Number(url.port) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** The running control plane, if there is one and it answers. */
export async function findLocalControlPlane(paths: LocalPaths): Promise<ServerInfo | undefined> {
  let info: ServerInfo;
  try {
    info = JSON.parse(await readFile(paths.serverFile, "utf8")) as ServerInfo;
  } catch {
    return undefined;
  }
  if (!alive(info.pid) || !(await reachable(info.endpoint))) return undefined;
  return info;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Returns the running control plane, starting it when there is none. A lock file keeps
 * two CLIs from starting two; a stale lock (its owner died) is taken over.
 */
export async function ensureLocalControlPlane(paths: LocalPaths, timeoutMs = 20_000): Promise<ServerInfo> {
  const running = await findLocalControlPlane(paths);
  if (running) return running;
  await mkdir(paths.home, { recursive: true });
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    let lock: Awaited<ReturnType<typeof open>> | undefined;
    try {
      lock = await open(paths.lockFile, "wx");
    } catch {
      const owner = Number(await readFile(paths.lockFile, "utf8").catch(() => "0"));
      if (owner && !alive(owner)) await rm(paths.lockFile, { force: true });
      await sleep(50);
      const started = await findLocalControlPlane(paths);
      if (started) return started;
      continue;
    }
    try {
      await lock.writeFile(String(process.pid));
      await lock.close();
      const found = await findLocalControlPlane(paths);
      if (found) return found;
      const pid = startServerProcess(paths);
      while (Date.now() < deadline) {
        const info = await findLocalControlPlane(paths);
        if (info && info.pid === pid) return info;
        if (!alive(pid)) break;
        await sleep(25);
      }
      const tail = (await readFile(paths.serverLog, "utf8").catch(() => ""))
        .split("\n")
        .slice(-15)
        .join("\n");
      throw new AbortError(
        `the local control plane did not start (see ${paths.serverLog})`,
        tail ? `last log lines:\n${tail}` : undefined,
        1,
      );
    } finally {
      await rm(paths.lockFile, { force: true });
    }
  }
  throw new AbortError(
    `timed out waiting for the local control plane to start (lock ${paths.lockFile})`,
    undefined,
    1,
  );
}

function startServerProcess(paths: LocalPaths): number {
  const script = fileURLToPath(new URL("./local-server.js", import.meta.url));
  const log = openSync(paths.serverLog, "a");
  const child = spawn(process.execPath, ["--enable-source-maps", script], {
    detached: true,
    stdio: ["ignore", log, log],
    env: { ...process.env, SPAWN_HOME: paths.home },
  });
  closeSync(log);
  child.unref();
  if (child.pid === undefined)
    throw new AbortError("could not start the local control plane process", undefined, 1);
  return child.pid;
}

/** Stops the control plane (SIGTERM, then SIGKILL after `graceMs`). Returns false when none was running. */
export async function stopLocalControlPlane(paths: LocalPaths, graceMs = 10_000): Promise<boolean> {
  let info: ServerInfo;
  try {
    info = JSON.parse(await readFile(paths.serverFile, "utf8")) as ServerInfo;
  } catch {
    return false;
  }
  if (!alive(info.pid)) {
    await rm(paths.serverFile, { force: true });
    return false;
  }
  process.kill(info.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (alive(info.pid) && Date.now() < deadline) await sleep(50);
  if (alive(info.pid)) process.kill(info.pid, "SIGKILL");
  await rm(paths.serverFile, { force: true });
  return true;
}
