/**
 * The local compute provider: each "instance" is a `spawn-agent` process on this
 * machine with its own work dir, behind the same Compute port that EC2 implements.
 */
import { spawn } from "node:child_process";
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { InstanceRecord } from "#core/model.js";
import type { Compute, LaunchRequest, LaunchResult, ObservedInstance } from "#core/ports.js";
import type { LocalImds } from "./imds.js";
import type { LocalPaths } from "./paths.js";

export interface ProcessComputeOptions {
  paths: LocalPaths;
  /** Endpoint of the embedded DynamoDB (dynalite). */
  endpoint: string;
  /** argv that starts an agent, e.g. [process.execPath, "dist/agent.js"]. */
  agentCommand: readonly string[];
  /** Grace between SIGTERM and SIGKILL when terminating. @default 10 s */
  killGraceMs?: number;
  /** The local IMDS; agents of sweeps in chaos mode get their own endpoint on it. */
  imds?: LocalImds;
}

/** True when `pid` is alive and is the agent for `instanceId` (guards against pid reuse). */
export function isAgentAlive(pid: number, instanceId: string): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").includes(instanceId);
  } catch {
    // No /proc (macOS): trust kill(0).
    return true;
  }
}

export class ProcessCompute implements Compute {
  constructor(private readonly options: ProcessComputeOptions) {}

  async launch(request: LaunchRequest): Promise<LaunchResult[]> {
    const [command, ...args] = this.options.agentCommand;
    if (!command) throw new Error("ProcessCompute: empty agent command");
    return request.instanceIds.map((instanceId) => {
      const dir = join(this.options.paths.instances, instanceId);
      try {
        mkdirSync(dir, { recursive: true });
        const log = openSync(join(dir, "agent.log"), "a");
        const child = spawn(command, [...args, "--instance", instanceId], {
          detached: true,
          stdio: ["ignore", log, log],
          env: {
            ...process.env,
            SPAWN_PROVIDER: "local",
            SPAWN_HOME: this.options.paths.home,
            SPAWN_STORE_ENDPOINT: this.options.endpoint,
            SPAWN_SWEEP_ID: request.sweep.sweepId,
            SPAWN_INSTANCE_ID: instanceId,
            SPAWN_AGENT_DIR: dir,
            // Only chaos mode gives a local agent an IMDS to watch: that is how its notices arrive.
            ...(request.sweep.spec.chaos && this.options.imds
              ? { SPAWN_IMDS_ENDPOINT: this.options.imds.endpointFor(instanceId) }
              : {}),
          },
        });
        closeSync(log);
        child.on("error", () => undefined);
        child.unref();
        if (child.pid === undefined) return { instanceId, error: "agent process did not start" };
        return { instanceId, providerRef: String(child.pid), host: "localhost" };
      } catch (error) {
        return { instanceId, error: (error as Error).message };
      }
    });
  }

  async describe(instances: readonly InstanceRecord[]): Promise<ObservedInstance[]> {
    return instances.map((i) => {
      // Reserved but not yet started: the launch is in flight.
      if (!i.providerRef)
        return { instanceId: i.instanceId, state: i.status === "launching" ? "pending" : "gone" };
      return {
        instanceId: i.instanceId,
        state: isAgentAlive(Number(i.providerRef), i.instanceId) ? "running" : "gone",
      };
    });
  }

  async terminate(instances: readonly InstanceRecord[]): Promise<void> {
    for (const instance of instances) {
      const pid = Number(instance.providerRef);
      if (!pid || !isAgentAlive(pid, instance.instanceId)) {
        // The agent died (kill -9, crash): its tasks, in process groups of their own, may live on.
        killOrphanTasks(instance.instanceId);
        continue;
      }
      // The agent is a process-group leader; its tasks are groups of their own and the agent stops them on SIGTERM.
      signal(-pid, "SIGTERM");
      setTimeout(() => {
        if (isAgentAlive(pid, instance.instanceId)) signal(-pid, "SIGKILL");
        killOrphanTasks(instance.instanceId);
      }, this.options.killGraceMs ?? 10_000).unref();
    }
  }
}

/**
 * SIGKILLs the process group of every process that carries `SPAWN_INSTANCE_ID=<id>` in its
 * environment (tasks inherit it from their agent). Linux only; elsewhere a no-op.
 */
export function killOrphanTasks(instanceId: string): void {
  let pids: string[];
  try {
    pids = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
  } catch {
    return;
  }
  const marker = `SPAWN_INSTANCE_ID=${instanceId}`;
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/environ`, "latin1").split("\0").includes(marker)) {
        signal(-Number(pid), "SIGKILL");
        signal(Number(pid), "SIGKILL");
      }
    } catch {
      // exited meanwhile, or not ours to read
    }
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}
