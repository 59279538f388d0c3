/**
 * `spawn dashboard` for browser tests: the real CLI binary serving the embedded default in a
 * test's home, and the Chromium (Debian's /usr/bin/chromium, or SPAWN_CHROMIUM) that drives it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { type CliEnv, ROOT } from "./cli.js";

export const CHROMIUM = process.env.SPAWN_CHROMIUM ?? "/usr/bin/chromium";
/** Why browser tests are skipped here, or undefined when Chromium is installed. */
export const NO_CHROMIUM = existsSync(CHROMIUM)
  ? undefined
  : `skipped: no Chromium at ${CHROMIUM}; apt-get install chromium`;
export const ARTIFACTS = join(ROOT, "test", "artifacts");
export const DESKTOP = { width: 1280, height: 900 };
export const PHONE = { width: 390, height: 844 };

export interface ServedDashboard {
  child: ChildProcess;
  /** What `spawn dashboard --json` prints. */
  info: { url: string; loginUrl: string; token: string; traceparent: string };
  /** SIGINT, as Ctrl-C; resolves with the exit code. */
  stop(): Promise<number | null>;
}

/** Starts `spawn dashboard --port 0 --json` in `env`'s home and reads the URLs it prints. */
export async function serveDashboard(env: CliEnv): Promise<ServedDashboard> {
  const child = spawn(
    process.execPath,
    [join(ROOT, "bin", "spawn.js"), "dashboard", "--port", "0", "--json"],
    {
      env: { ...process.env, SPAWN_HOME: env.home, NO_COLOR: "1", SPAWN_OWNER: "e2e" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
    return exited;
  };
  let out = "";
  let err = "";
  child.stderr?.on("data", (d) => {
    err += d;
  });
  const info = await new Promise<ServedDashboard["info"]>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`spawn dashboard printed nothing in 30 s: ${err}`)),
      30_000,
    );
    child.stdout?.on("data", (d) => {
      out += d;
      try {
        resolve(JSON.parse(out));
        clearTimeout(timer);
      } catch {
        // not the whole object yet
      }
    });
    void exited.then((code) => reject(new Error(`spawn dashboard exited ${code}: ${err}`)));
  });
  return { child, info, stop };
}
