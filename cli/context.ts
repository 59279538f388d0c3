/**
 * What CLI commands talk to: the state store and object store of the chosen provider.
 * For the embedded default this finds or starts the local control plane; for aws it reads the
 * deployed stack's outputs (cli/services/aws.ts, loaded only then).
 */

import type { AlertServices } from "#core/alerts.js";
import { AbortError } from "#core/errors.js";
import type { BundleRef, ProviderName } from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import { systemClock } from "#core/ports.js";
import type { ScheduleDriver, ScheduleStore } from "#core/scheduler.js";
import { DynamoAlertStore } from "#providers/dynamodb/alert-store.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { localDynamoClient, TABLE_PREFIX } from "#providers/local/client.js";
import { ensureLocalControlPlane } from "#providers/local/control-plane.js";
import { FileObjectStore } from "#providers/local/objects.js";
import { type LocalPaths, localPaths } from "#providers/local/paths.js";
import { FileSecretBox } from "#providers/notify/file-secrets.js";
import type { AwsFlags } from "./services/aws.js";
import type { SweepPlan } from "./services/plan.js";

export interface CliContext {
  provider: ProviderName;
  store: StateStore;
  schedules: ScheduleStore;
  /** Where schedules are armed (aws: EventBridge Scheduler); the embedded control plane needs none. */
  scheduleDriver?: ScheduleDriver;
  /** `spawn alerts`: absent where the provider's alert key and topic are not wired. */
  alerts?: AlertServices;
  objects: ObjectStore;
  clock: Clock;
  paths: LocalPaths;
  /**
   * Tells the control plane a sweep was created (aws: an EventBridge kick to the orchestrator),
   * in the launch's trace when given.
   */
  sweepCreated?(sweepId: string, traceparent?: string): Promise<void>;
  /**
   * A provider step between planning and the sweep record (aws: the sweep's own IAM role,
   * providers/aws/sweep-role.ts). When it throws, no sweep is created.
   */
  prepareSweep?(sweepId: string, plan: SweepPlan, bundle: BundleRef): Promise<void>;
  close(): void;
}

/** Who owns the sweeps this CLI creates and lists. */
export function currentOwner(): string {
  return process.env.SPAWN_OWNER ?? process.env.USER ?? process.env.LOGNAME ?? "local";
}

export function checkProvider(name: string | undefined): ProviderName {
  const provider = name ?? process.env.SPAWN_PROVIDER ?? "local";
  if (provider === "local") return "local";
  if (provider === "aws") return "aws";
  throw new AbortError(`--provider must be local or aws, got ${JSON.stringify(provider)}`);
}

/**
 * Opens the provider's stores: `providerName` (a `--provider` flag), else `SPAWN_PROVIDER`, else
 * local. For aws, `aws` carries `--profile`/`--region`/`--stack` (default: the standard chain).
 */
export async function openContext(providerName?: string, aws?: AwsFlags): Promise<CliContext> {
  const provider = checkProvider(providerName);
  const paths = localPaths();
  if (provider === "aws") return (await import("./services/aws.js")).openAwsContext(paths, aws);
  const server = await ensureLocalControlPlane(paths);
  const client = localDynamoClient(server.endpoint);
  return {
    provider,
    store: new DynamoStateStore(client, TABLE_PREFIX),
    schedules: new DynamoScheduleStore(client, TABLE_PREFIX),
    alerts: { store: new DynamoAlertStore(client, TABLE_PREFIX), secrets: new FileSecretBox(paths.home) },
    objects: new FileObjectStore(paths.objects),
    clock: systemClock,
    paths,
    close: () => client.destroy(),
  };
}
