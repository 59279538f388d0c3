/**
 * Where the embedded control plane keeps its state: `$SPAWN_HOME`, else
 * `$XDG_STATE_HOME/spawn`, else `~/.local/state/spawn`.
 */
import { homedir } from "node:os";
import { join } from "node:path";

export interface LocalPaths {
  home: string;
  /** dynalite's LevelDB files. */
  db: string;
  /** The object store: bundles, logs, outputs. */
  objects: string;
  /** One work dir per agent process ("instance"). */
  instances: string;
  /** Workdir bundles unpacked once and shared by local agents, like an instance's disk cache. */
  bundleCache: string;
  /** Pid and endpoint of the running control plane. */
  serverFile: string;
  serverLog: string;
  lockFile: string;
}

export function localPaths(env: NodeJS.ProcessEnv = process.env): LocalPaths {
  const home =
    env.SPAWN_HOME ??
    join(
      env.XDG_STATE_HOME && env.XDG_STATE_HOME !== ""
        ? env.XDG_STATE_HOME
        : join(homedir(), ".local", "state"),
      "spawn",
    );
  return {
    home,
    db: join(home, "db"),
    objects: join(home, "objects"),
    instances: join(home, "instances"),
    bundleCache: join(home, "cache", "bundles"),
    serverFile: join(home, "server.json"),
    serverLog: join(home, "server.log"),
    lockFile: join(home, "server.lock"),
  };
}
