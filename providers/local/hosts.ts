/**
 * Hostnames on the embedded default: a hosts-style file (`$SPAWN_HOME/hosts`) standing in for
 * the stack's Route 53 zone, so peer-discovery code resolves the same names locally and on AWS
 * (docs/dns.md). One line per registered agent:
 *
 *     127.0.0.1  i0.lr-abc.spawn.local  lr-abc.spawn.local  # lr-abc-i0
 *
 * i.e. `<name>.<sweep>.<zone>` and the sweep's group name, like the A and multi-value records
 * on AWS. Writers take a lock directory (mkdir is atomic; a lock older than 10 s is a dead
 * writer's and is broken) and replace the file by rename, so a reader never sees half a file.
 *
 * Agents read it to find their peers by name (`LocalHosts` is agent/resolve.ts's HostResolver
 * here). An agent removes its own line when it deregisters; the lines of agents that could not
 * (kill -9) are removed by the control plane ({@link pruneHosts}), as the state-change rule
 * removes a terminated instance's records on AWS.
 */
import { mkdir, readFile, rename, rmdir, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { StateStore } from "#core/ports.js";

export const LOCAL_DNS_ZONE = "spawn.local";
const STALE_LOCK_MS = 10_000;
const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface HostEntry {
  ip: string;
  /** `<name>.<sweep>.<zone>` */
  host: string;
  /** `<sweep>.<zone>` */
  group: string;
  instanceId: string;
}

function parse(text: string): HostEntry[] {
  const entries: HostEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+#\s*(\S+)\s*$/.exec(line);
    if (m) entries.push({ ip: m[1]!, host: m[2]!, group: m[3]!, instanceId: m[4]! });
  }
  return entries;
}

const format = (entries: readonly HostEntry[]) =>
  `# spawn: local agents' hostnames (docs/dns.md); rewritten by spawn, do not edit\n${entries
    .map((e) => `${e.ip}\t${e.host}\t${e.group}\t# ${e.instanceId}`)
    .join("\n")}\n`;

export class LocalHosts {
  readonly path: string;
  private readonly lock: string;

  constructor(
    home: string,
    private readonly zone = LOCAL_DNS_ZONE,
  ) {
    this.path = join(home, "hosts");
    this.lock = join(home, "hosts.lock");
  }

  async entries(): Promise<HostEntry[]> {
    try {
      return parse(await readFile(this.path, "utf8"));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw error;
    }
  }

  /** The addresses of a host name or a group name (every live agent of the sweep); [] if none. */
  async resolve(name: string): Promise<string[]> {
    const wanted = name.replace(/\.$/, "");
    return (await this.entries()).filter((e) => e.host === wanted || e.group === wanted).map((e) => e.ip);
  }

  /** Adds or replaces the agent's line; a name another agent holds moves to this one, as an UPSERT does. */
  async register(entry: {
    instanceId: string;
    sweepId: string;
    name: string;
    ip?: string;
  }): Promise<HostEntry> {
    for (const [what, value] of [
      ["name", entry.name],
      ["sweep id", entry.sweepId],
    ] as const)
      if (!LABEL.test(value))
        throw new Error(`${what} ${JSON.stringify(value)} is not a DNS label (a-z, 0-9, -)`);
    const line: HostEntry = {
      ip: entry.ip ?? "127.0.0.1",
      host: `${entry.name}.${entry.sweepId}.${this.zone}`,
      group: `${entry.sweepId}.${this.zone}`,
      instanceId: entry.instanceId,
    };
    await this.update((all) => [
      ...all.filter((e) => e.instanceId !== entry.instanceId && e.host !== line.host),
      line,
    ]);
    return line;
  }

  /** Removes the agents' lines (on exit, or when the control plane reaps them); idempotent. */
  async deregister(...instanceIds: string[]): Promise<void> {
    const gone = new Set(instanceIds);
    await this.update((all) => all.filter((e) => !gone.has(e.instanceId)));
  }

  /** The sweep a line belongs to (its group name without the zone). */
  sweepOf(entry: HostEntry): string {
    return entry.group.slice(0, -(this.zone.length + 1));
  }

  private async update(change: (entries: HostEntry[]) => HostEntry[]): Promise<void> {
    await this.acquire();
    try {
      const tmp = `${this.path}.${process.pid}.tmp`;
      await writeFile(tmp, format(change(await this.entries())));
      await rename(tmp, this.path);
    } finally {
      await rmdir(this.lock).catch(() => {});
    }
  }

  private async acquire(): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        await mkdir(this.lock);
        return;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      }
      const since = await stat(this.lock).then(
        (s) => Date.now() - s.mtimeMs,
        () => 0,
      );
      if (since > STALE_LOCK_MS) await rmdir(this.lock).catch(() => {});
      else await new Promise((resolve) => setTimeout(resolve, Math.min(50, 5 * 2 ** Math.min(attempt, 4))));
    }
  }
}

/**
 * Removes the lines of agents whose instance the control plane has terminated, or that no
 * instance record knows: an agent killed with -9 never removes its own. Run after reconcile and
 * the reaper, so their rules decide who is dead (a process gone, a heartbeat stopped, a deadline
 * passed, a sweep over), not a copy of them here. Returns the lines removed.
 *
 * The file is read without the lock and only the dead agents' lines are removed under it, so a
 * line written meanwhile stays; a dead agent never writes again, and a name it held that a new
 * agent took over is the new agent's line, left alone.
 */
export async function pruneHosts(
  hosts: LocalHosts,
  store: Pick<StateStore, "listInstances">,
): Promise<HostEntry[]> {
  const entries = await hosts.entries();
  if (entries.length === 0) return [];
  const live = new Set<string>();
  for (const sweepId of new Set(entries.map((e) => hosts.sweepOf(e)))) {
    for (const instance of await store.listInstances(sweepId))
      if (instance.status !== "terminated") live.add(instance.instanceId);
  }
  const dead = entries.filter((e) => !live.has(e.instanceId));
  if (dead.length > 0) await hosts.deregister(...dead.map((e) => e.instanceId));
  return dead;
}
