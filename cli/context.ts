/**
 * What CLI commands talk to: the state store and object store of the chosen provider.
 * For the embedded default this finds or starts the local control plane; for aws it reads the
 * deployed stack's outputs (cli/services/aws.ts, loaded only then).
 */

import type { AlertServices } from "#core/alerts.js";
import { AbortError } from "#core/errors.js";
import type { ProviderName, SweepRecord } from "#core/model.js";
import type { Clock, ObjectStore, StateStore } from "#core/ports.js";
import { systemClock } from "#core/ports.js";
import type { ScheduleDriver, ScheduleStore } from "#core/scheduler.js";
import type { LaunchHooks, SweepPreparation } from "#core/sweeps.js";
import { DynamoAlertStore } from "#providers/dynamodb/alert-store.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { localDynamoClient, TABLE_PREFIX } from "#providers/local/client.js";
import { ensureLocalControlPlane } from "#providers/local/control-plane.js";
import { FileObjectStore } from "#providers/local/objects.js";
import { type LocalPaths, localPaths } from "#providers/local/paths.js";
import { FileSecretBox } from "#providers/notify/file-secrets.js";
import type { AwsFlags } from "./services/aws.js";

/**
 * The launch hooks (core/sweeps.ts launchPrepared: aws makes each sweep's role before its record
 * and kicks the orchestrator after it) and the stores of the chosen provider.
 */
export interface CliContext extends LaunchHooks {
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
   * Checks, sending nothing, that prepareSweep would accept the sweep (aws: renders its role's
   * policy), for what is launched later: a schedule is refused at create, not at its first firing.
   */
  checkSweep?(sweep: SweepPreparation): Promise<void>;
  /**
   * Who the schedule and alert services act for. Absent: the CLI's user (`currentOwner()`), who
   * sees and changes what they own. The AWS dashboard acts for a team (lambdas/dashboard-api/manage.ts).
   */
  actor?: Actor;
  close(): void;
}

/** An owner other than the CLI's user, and the sweeps it may use that it does not own. */
export interface Actor {
  /** The owner it reads and writes schedules and alerts as (a team: `team:<name>`, core/teams.ts). */
  owner: string;
  /** Whether it may aim an alert at a sweep it does not own (a team: one the team sees). */
  seesSweep(sweep: SweepRecord): Promise<boolean>;
}

/** Who owns the sweeps this CLI creates and lists. */
export function currentOwner(): string {
  return process.env.SPAWN_OWNER ?? process.env.USER ?? process.env.LOGNAME ?? "local";
}

/** The owner a service acts as: the context's actor, else the CLI's user. */
export function ownerOf(ctx: Pick<CliContext, "actor">): string {
  return ctx.actor?.owner ?? currentOwner();
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
