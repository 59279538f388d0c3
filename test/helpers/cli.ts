/**
 * Drives the real `spawn` binary (built into dist/ by `npm test`) against a private
 * SPAWN_HOME, as a user would from a shell.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..");
const BIN = join(ROOT, "bin", "spawn.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliEnv {
  home: string;
  run(args: readonly string[], options?: { cwd?: string; timeoutMs?: number }): CliResult;
  json<T = unknown>(args: readonly string[]): T;
  stop(): void;
}

/** A fresh SPAWN_HOME; `stop()` shuts its control plane down (call in afterAll). */
export function cliEnv(prefix = "spawn-e2e-"): CliEnv {
  if (!existsSync(join(ROOT, "dist", "cli.js")))
    throw new Error("dist/ is missing: run `npm run build` (npm test does)");
  const home = mkdtempSync(join(tmpdir(), prefix));
  const env = { ...process.env, SPAWN_HOME: home, NO_COLOR: "1", SPAWN_OWNER: "e2e" };
  const run = (args: readonly string[], options: { cwd?: string; timeoutMs?: number } = {}): CliResult => {
    const r = spawnSync(process.execPath, [BIN, ...args], {
      cwd: options.cwd ?? ROOT,
      env,
      encoding: "utf8",
      timeout: options.timeoutMs ?? 120_000,
    });
    return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  return {
    home,
    run,
    json<T>(args: readonly string[]): T {
      const r = run([...args, "--json"]);
      if (r.code !== 0) throw new Error(`spawn ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
      return JSON.parse(r.stdout) as T;
    },
    stop() {
      run(["local", "stop"]);
    },
  };
}

/** Reads the control plane's pid file, if it is running. */
export function serverInfo(home: string): { pid: number; endpoint: string } | undefined {
  try {
    return JSON.parse(readFileSync(join(home, "server.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/** Polls `probe` (every `intervalMs`) until it returns a value; throws naming `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs = 120_000,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}`);
}
