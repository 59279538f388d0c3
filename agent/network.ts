/**
 * The command phase's network. `none` runs the command in a new, empty network namespace
 * (`unshare --net`, only a loopback that is down), so it cannot open a socket to anything. That
 * takes CAP_SYS_ADMIN (the agent runs as root on spawn's AMIs) or, failing that, unprivileged user
 * namespaces (`unshare --user --map-root-user --net`). Where neither works the command runs with
 * the network and the agent says so in the task's log and record: it never pretends.
 */
import { execFile } from "node:child_process";
import type { NetworkMode } from "#core/spec.js";

export interface NetworkPlan {
  /** argv to put before `/bin/sh -c <command>`; absent: run as is. */
  wrapper?: readonly string[];
  /** Said plainly in the task's log and on its record when the spec's mode is not enforced. */
  warning?: string;
}

const CANDIDATES: ReadonlyArray<readonly string[]> = [
  ["unshare", "--net", "--"],
  ["unshare", "--user", "--map-root-user", "--net", "--"],
];

function works(wrapper: readonly string[]): Promise<string | undefined> {
  const [program, ...args] = wrapper;
  return new Promise((resolve) => {
    execFile(program!, [...args, "/bin/sh", "-c", "exit 0"], { timeout: 5000 }, (error, _out, stderr) => {
      resolve(error ? (String(stderr).trim() || error.message).split("\n")[0] : undefined);
    });
  });
}

let isolation: Promise<NetworkPlan> | undefined;

/** Probes (once per process) how this machine can take a command off the network. */
export function probeNetworkIsolation(): Promise<NetworkPlan> {
  isolation ??= (async () => {
    const reasons: string[] = [];
    for (const wrapper of CANDIDATES) {
      const failure = await works(wrapper);
      if (failure === undefined) return { wrapper };
      reasons.push(`${wrapper.slice(0, -1).join(" ")}: ${failure}`);
    }
    return {
      warning:
        `network: none is NOT enforced on this instance: the agent cannot create a network namespace ` +
        `(${reasons.join("; ")}); the command runs with the network`,
    };
  })();
  return isolation;
}

/**
 * How to run a command under `mode` with `provider`. `full` needs nothing. `allowlist` is enforced
 * by the instance's security group on aws (the agent has nothing to add); the local provider has
 * no way to enforce it, so there the sweep is refused before it starts ({@link networkRefusal}).
 */
export async function networkPlan(mode: NetworkMode): Promise<NetworkPlan> {
  if (mode === "none") return probeNetworkIsolation();
  return {};
}

/** Why a sweep cannot run as its spec says on this provider, or undefined when it can. */
export function networkRefusal(
  spec: { network: NetworkMode; allowlist?: readonly string[] | undefined },
  provider: string,
): string | undefined {
  if (spec.network !== "allowlist") return undefined;
  if (provider !== "aws")
    return "network: allowlist is enforced only on aws (security-group egress rules); the local provider cannot enforce it: use network: none or full";
  if (!spec.allowlist?.length) return "network: allowlist needs an allowlist: [CIDRs] entry";
  return undefined;
}
