/**
 * What CLI commands talk to: the state store and object store of the chosen provider.
 * For the embedded default this finds or starts the local control plane.
 */
import { AbortError } from "#core/errors.js";
import type { ProviderName } from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import { systemClock } from "#core/ports.js";
import type { ScheduleStore } from "#core/scheduler.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { localDynamoClient, TABLE_PREFIX } from "#providers/local/client.js";
import { ensureLocalControlPlane } from "#providers/local/control-plane.js";
import { FileObjectStore } from "#providers/local/objects.js";
import { type LocalPaths, localPaths } from "#providers/local/paths.js";

export interface CliContext {
  provider: ProviderName;
  store: StateStore;
  schedules: ScheduleStore;
  objects: ObjectStore;
  clock: Clock;
  paths: LocalPaths;
  close(): void;
}

/** Who owns the sweeps this CLI creates and lists. */
export function currentOwner(): string {
  return process.env.SPAWN_OWNER ?? process.env.USER ?? process.env.LOGNAME ?? "local";
}

export function checkProvider(name: string | undefined): ProviderName {
  const provider = name ?? process.env.SPAWN_PROVIDER ?? "local";
  if (provider === "local") return "local";
  if (provider === "aws") {
    throw new AbortError(
      "--provider aws is not available in this build yet: the AWS control plane (spawn deploy) has not landed",
      "run on the embedded default (--provider local) meanwhile",
    );
  }
  throw new AbortError(`--provider must be local or aws, got ${JSON.stringify(provider)}`);
}

export async function openContext(providerName?: string): Promise<CliContext> {
  const provider = checkProvider(providerName);
  const paths = localPaths();
  const server = await ensureLocalControlPlane(paths);
  const client = localDynamoClient(server.endpoint);
  return {
    provider,
    store: new DynamoStateStore(client, TABLE_PREFIX),
    schedules: new DynamoScheduleStore(client, TABLE_PREFIX),
    objects: new FileObjectStore(paths.objects),
    clock: systemClock,
    paths,
    close: () => client.destroy(),
  };
}
