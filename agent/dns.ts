/**
 * The agent's hostname (docs/dns.md): registered at start, removed when it deregisters. On AWS
 * the dns-updater Lambda writes the records, once it has verified the instance's signed identity
 * document; on the embedded default the hosts-style file stands in. Either way DNS never holds
 * up work: the agent registers in the background, gives up after DNS_TIMEOUT_MS, and what came
 * of it is written on its instance record (`dns`, shown by `spawn sweep status`); a failure is
 * also published as DnsRegistrationFailed, so an alert with `--on dns-failed` tells the user.
 */
import { spawnEvent } from "#core/events.js";
import type { Clock, EventSink, StateStore } from "#core/ports.js";
import { DNS_UPDATER_TAG, DnsResult, parseDnsTarget } from "#providers/aws/dns.js";
import type { AwsCredentials, InvokeOptions } from "#providers/aws/lambda-invoke.js";
import type { LocalHosts } from "#providers/local/hosts.js";
import type { Logger } from "#providers/log.js";
import type { ImdsClient } from "./imds.js";
import { DnsResolver, type HostResolver } from "./resolve.js";

/** How long the agent waits for a registration or a removal. */
export const DNS_TIMEOUT_MS = 3000;

/** Registration failed; `host` is the name that was asked for. */
export class HostnameError extends Error {
  override name = "HostnameError";
  constructor(
    readonly host: string,
    message: string,
  ) {
    super(message);
  }
}

/** Where an agent's hostname lives, and how the names registered there resolve. */
export interface HostnameRegistrar {
  /** The registered host name; undefined when this deployment has no hostnames. Throws HostnameError. */
  register(signal: AbortSignal): Promise<{ host: string } | undefined>;
  deregister(signal: AbortSignal): Promise<void>;
  /** Resolves the names agents register here (its peers' included). */
  readonly resolver: HostResolver;
}

/** The label an instance asks for: its rank within the sweep (`i3` of `<sweep>-i3`), else its id. */
export function hostLabel(sweepId: string, instanceId: string): string {
  const label = (instanceId.startsWith(`${sweepId}-`) ? instanceId.slice(sweepId.length + 1) : instanceId)
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, "-");
  return label.replace(/^-+|-+$/g, "") || "instance";
}

/**
 * Rejects when `signal` (an `AbortSignal.timeout(DNS_TIMEOUT_MS)`) aborts, whatever `work` is
 * doing (IMDS and fetch each have their own timeouts too; getaddrinfo cannot be aborted at all).
 */
export function bounded<T>(work: Promise<T>, signal: AbortSignal, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(new Error(`no answer from ${what} within ${DNS_TIMEOUT_MS / 1000} s`));
    if (signal.aborted) return abort();
    signal.addEventListener("abort", abort, { once: true });
    work.then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
  });
}

/** The embedded default: a line in `$SPAWN_HOME/hosts` (providers/local/hosts.ts). */
export class LocalHostnames implements HostnameRegistrar {
  constructor(
    private readonly hosts: LocalHosts,
    private readonly ids: { sweepId: string; instanceId: string },
  ) {}

  async register(): Promise<{ host: string }> {
    const { sweepId, instanceId } = this.ids;
    const entry = await this.hosts.register({ sweepId, instanceId, name: hostLabel(sweepId, instanceId) });
    return { host: entry.host };
  }

  async deregister(): Promise<void> {
    await this.hosts.deregister(this.ids.instanceId);
  }

  /** Names resolve through the same file. */
  get resolver(): HostResolver {
    return this.hosts;
  }
}

export interface LambdaHostnamesOptions {
  /** IMDS (ImdsClient): the instance tags and the identity document. */
  imds: Pick<ImdsClient, "get">;
  sweepId: string;
  instanceId: string;
  credentials: () => Promise<AwsCredentials>;
  /** providers/aws/lambda-invoke.ts `invokeLambda` (tests: a loopback endpoint). */
  invoke: (options: InvokeOptions) => Promise<unknown>;
  /** How the zone's names resolve. @default the system resolver ({@link DnsResolver}) */
  resolver?: HostResolver;
}

/**
 * AWS: the instance's `spawn:dns-updater` tag (IMDS) names the function and zone; the request
 * carries IMDS's identity document and signature, which is all the function trusts.
 */
export class LambdaHostnames implements HostnameRegistrar {
  readonly resolver: HostResolver;

  constructor(private readonly o: LambdaHostnamesOptions) {
    this.resolver = o.resolver ?? new DnsResolver();
  }

  register(signal: AbortSignal): Promise<{ host: string } | undefined> {
    return this.call("register", signal);
  }

  async deregister(signal: AbortSignal): Promise<void> {
    await this.call("deregister", signal);
  }

  private async call(kind: "register" | "deregister", signal: AbortSignal) {
    const { imds, sweepId, instanceId } = this.o;
    const target = parseDnsTarget(await imds.get(`/latest/meta-data/tags/instance/${DNS_UPDATER_TAG}`));
    if (!target) return undefined;
    const name = hostLabel(sweepId, instanceId);
    const host = `${name}.${sweepId}.${target.zone}`;
    try {
      const [document, signature] = await Promise.all([
        imds.get("/latest/dynamic/instance-identity/document"),
        imds.get("/latest/dynamic/instance-identity/signature"),
      ]);
      if (!document || !signature) throw new Error("IMDS has no instance identity document");
      const region = JSON.parse(document).region as string;
      const answer = DnsResult.parse(
        await this.o.invoke({
          region,
          functionName: target.functionName,
          payload: { kind, document, signature: signature.trim(), name },
          credentials: this.o.credentials,
          signal,
        }),
      );
      if (answer.status === "rejected")
        throw new Error(`${target.functionName} refused it (${answer.reason}): ${answer.message}`);
      if (kind === "deregister") return undefined;
      if (answer.status !== "registered")
        throw new Error(`${target.functionName} did not register it: ${JSON.stringify(answer)}`);
      return { host: answer.host };
    } catch (error) {
      throw new HostnameError(host, (error as Error).message);
    }
  }
}

export interface HostnameDeps {
  store: StateStore;
  events?: EventSink;
  clock: Clock;
  log: Logger;
  sweepId: string;
  instanceId: string;
}

/**
 * Registers the hostname, waiting at most DNS_TIMEOUT_MS, and writes the outcome on the instance
 * record; a failure is logged and published (DnsRegistrationFailed). Resolves with the registered
 * host name, undefined when there is none (no hostnames here, or the registration failed). Never
 * throws.
 */
export async function registerHostname(
  deps: HostnameDeps,
  registrar: HostnameRegistrar,
): Promise<string | undefined> {
  const { store, clock, log, sweepId, instanceId } = deps;
  const signal = AbortSignal.timeout(DNS_TIMEOUT_MS);
  let dns: { host: string; status: "registered" | "failed"; at: number; error?: string };
  try {
    const registered = await bounded(registrar.register(signal), signal, "the DNS registration");
    if (!registered) return undefined;
    dns = { host: registered.host, status: "registered", at: clock.now() };
    log.info("hostname registered", { host: registered.host });
  } catch (error) {
    const host = error instanceof HostnameError ? error.host : `${hostLabel(sweepId, instanceId)}.${sweepId}`;
    dns = { host, status: "failed", at: clock.now(), error: (error as Error).message };
    log.warn("hostname registration failed; tasks run regardless", { host, error: dns.error });
    await deps.events
      ?.publish([
        spawnEvent(sweepId, dns.at, { type: "DnsRegistrationFailed", instanceId, host, error: dns.error! }),
      ])
      .catch((e) => log.warn("could not publish DnsRegistrationFailed", { error: e }));
  }
  await store
    .updateInstance(sweepId, instanceId, { status: ["launching", "running"] }, { dns })
    .catch((error) => log.warn("could not record the hostname on the instance", { error }));
  return dns.status === "registered" ? dns.host : undefined;
}

/** Removes the hostname (the agent is deregistering), waiting at most DNS_TIMEOUT_MS. Never throws. */
export async function removeHostname(log: Logger, registrar: HostnameRegistrar): Promise<void> {
  const signal = AbortSignal.timeout(DNS_TIMEOUT_MS);
  await bounded(registrar.deregister(signal), signal, "the DNS removal").catch((error) =>
    // On AWS the termination event removes the records anyway.
    log.warn("hostname removal failed", { error: (error as Error).message }),
  );
}
