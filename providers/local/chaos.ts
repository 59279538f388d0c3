/**
 * Chaos mode on the embedded default (`spawn sweep launch --chaos preempt=0.3,kill=0.1`, or
 * `chaos:` in the spec): real faults, delivered the way production delivers them.
 *
 * - preempt: a spot interruption notice on the agent's own IMDS endpoint (providers/local/imds.ts),
 *   which the agent finds by polling, exactly as on EC2;
 * - kill: SIGKILL to the agent process, so its leases expire and the control plane re-queues.
 *
 * Each task is considered once per fault kind, when it is first seen running: with probability
 * `preempt` (`kill`) it gets that fault once, at a uniformly random time between `min_delay` and
 * `max_delay` after its attempt started, if that attempt is still running then. Once per task
 * keeps every sweep finite whatever the probabilities.
 */
import type { SweepRecord } from "#core/model.js";
import type { StateStore } from "#core/ports.js";
import type { Logger } from "../log.js";
import { isAgentAlive } from "./compute.js";
import type { LocalImds } from "./imds.js";

export interface ChaosOptions {
  store: StateStore;
  imds: LocalImds;
  log: Logger;
  random?: () => number;
}

export class ChaosMonkey {
  /** `<sweep>/<index>/<fault>` already decided. */
  private readonly decided = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(private readonly o: ChaosOptions) {}

  /** Looks at a sweep's running tasks and schedules the faults chaos mode asks for. */
  async tick(sweep: SweepRecord): Promise<void> {
    const chaos = sweep.spec.chaos;
    if (!chaos || sweep.status !== "running") return;
    const random = this.o.random ?? Math.random;
    for (let shard = 0; shard < sweep.shardCount; shard++) {
      for (const task of await this.o.store.listRunningTasks(sweep.sweepId, shard)) {
        if (!task.leaseOwner || task.startedAt === undefined) continue;
        for (const [fault, p] of [
          ["preempt", chaos.preempt],
          ["kill", chaos.kill],
        ] as const) {
          const key = `${sweep.sweepId}/${task.index}/${fault}`;
          if (p <= 0 || this.decided.has(key)) continue;
          this.decided.add(key);
          if (random() >= p) continue;
          const at = task.startedAt + chaos.min_delay + random() * (chaos.max_delay - chaos.min_delay);
          this.schedule(Math.max(0, at - Date.now()), () =>
            this.fire(fault, sweep, task.index, task.attempt, task.leaseOwner!),
          );
        }
      }
    }
  }

  stop(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(ms: number, fn: () => Promise<void>): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      fn().catch((error) => this.o.log.error("chaos fault failed", { error }));
    }, ms);
    this.timers.add(timer);
  }

  private async fire(
    fault: "preempt" | "kill",
    sweep: SweepRecord,
    index: number,
    attempt: number,
    instanceId: string,
  ): Promise<void> {
    const task = await this.o.store.getTask(sweep.sweepId, index, sweep.shardCount);
    // The attempt ended or moved on: nothing to interrupt.
    if (task?.status !== "running" || task.attempt !== attempt || task.leaseOwner !== instanceId) return;
    const fields = { sweepId: sweep.sweepId, taskIndex: index, attempt, instanceId };
    if (fault === "preempt") {
      this.o.imds.interrupt(instanceId, "terminate", 120_000);
      this.o.log.warn("chaos: spot interruption notice posted", fields);
      return;
    }
    const instance = await this.o.store.getInstance(sweep.sweepId, instanceId);
    const pid = Number(instance?.providerRef);
    if (!pid || !isAgentAlive(pid, instanceId)) return;
    process.kill(pid, "SIGKILL");
    this.o.log.warn("chaos: agent killed with SIGKILL", { ...fields, pid });
  }
}
