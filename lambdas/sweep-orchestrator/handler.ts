/**
 * The sweep orchestrator Lambda: a middy chain (validate → correlated logger → error policy)
 * in front of `orchestrate`, which calls core reconcile and the reaper with the aws adapters.
 *
 * Invoked only by EventBridge rules: EC2 interruption, rebalance and state-change events, the
 * periodic tick, and the CLI's "Sweep Submitted" kick. It never invokes itself or any Lambda
 * (no Lambda client is even imported): work that does not fit in one invocation is left to the
 * next tick, so a long sweep cannot start a recursive loop.
 */
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { EC2Client } from "@aws-sdk/client-ec2";
import { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { IAMClient } from "@aws-sdk/client-iam";
import { GetParameterCommand, SSMClient } from "@aws-sdk/client-ssm";
import middy from "@middy/core";
import { type Catalog, rankOffers } from "#core/placement.js";
import { systemClock } from "#core/ports.js";
import type { ReconcileDeps } from "#core/reconcile.js";
import { Ec2Compute } from "#providers/aws/ec2-compute.js";
import { Ec2Throttle } from "#providers/aws/ec2-throttle.js";
import { EventBridgeSink } from "#providers/aws/events.js";
import { type LaunchConfig, parseLaunchConfig } from "#providers/aws/launch-config.js";
import { SweepProfiles } from "#providers/aws/sweep-role.js";
import { loadCatalog } from "#providers/catalog/catalog.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { emitMetrics } from "../shared/emf.js";
import { requireEnv } from "../shared/env.js";
import { lambdaLogger } from "../shared/logger.js";
import { handleErrors, type LoggedContext, logContext, validateEvent } from "../shared/middleware.js";
import { type OrchestratorEvent, parseOrchestratorEvent } from "./events.js";
import { orchestratorMetrics } from "./metrics.js";
import { type OrchestratorResult, orchestrate } from "./orchestrate.js";

/** The environment contract with the stack (docs/aws.md); read once, at cold start. */
export const ENV = requireEnv([
  "SPAWN_TABLE_PREFIX",
  "SPAWN_ARTIFACTS_BUCKET",
  "SPAWN_RESULTS_BUCKET",
  "SPAWN_EVENT_BUS",
  "SPAWN_LAUNCH_CONFIG_PARAM",
  "SPAWN_STACK_NAME",
  "SPAWN_INSTANCE_PROFILE_ARN",
  "SPAWN_HOME_REGION",
]);
/** Set only when the stack has hostnames: instances are tagged with them (docs/dns.md). */
const DNS =
  process.env.SPAWN_DNS_UPDATER && process.env.SPAWN_DNS_ZONE
    ? { functionName: process.env.SPAWN_DNS_UPDATER, zone: process.env.SPAWN_DNS_ZONE }
    : undefined;

const logger = lambdaLogger("sweep-orchestrator");

/** A region's launch configuration is read again after this, so a redeploy is picked up without a cold start. */
const LAUNCH_CONFIG_TTL_MS = 5 * 60_000;

/** One client per region per container: the SDK keeps connections alive across invocations. */
function perRegion<C>(make: (region: string) => C): (region: string) => C {
  const clients = new Map<string, C>();
  return (region) => {
    const client = clients.get(region) ?? make(region);
    clients.set(region, client);
    return client;
  };
}

function ec2Compute(): Ec2Compute {
  const ssm = perRegion((region) => new SSMClient({ region }));
  const configs = new Map<string, { at: number; config: Promise<LaunchConfig> }>();
  const launchConfig = (region: string): Promise<LaunchConfig> => {
    const cached = configs.get(region);
    if (cached && systemClock.now() - cached.at < LAUNCH_CONFIG_TTL_MS) return cached.config;
    const config = ssm(region)
      .send(new GetParameterCommand({ Name: ENV.SPAWN_LAUNCH_CONFIG_PARAM }))
      .then((out) =>
        parseLaunchConfig(out.Parameter?.Value ?? "", `${ENV.SPAWN_LAUNCH_CONFIG_PARAM} in ${region}`),
      );
    // A failed read is not cached: the next launch asks again.
    config.catch(() => configs.delete(region));
    configs.set(region, { at: systemClock.now(), config });
    return config;
  };
  // The price catalog ships beside the bundle (providers/catalog/aws-accelerator-vms.csv); it is
  // parsed on the first launch, not at cold start, since most invocations launch nothing.
  let catalog: Catalog | undefined;
  return new Ec2Compute({
    client: perRegion((region) => new EC2Client({ region })),
    offersFor: (sweep) => {
      catalog ??= loadCatalog();
      return rankOffers(catalog.offers, sweep.spec.resources);
    },
    launchConfig,
    stack: ENV.SPAWN_STACK_NAME,
    // Each sweep's instances get its own role (ADR 36); sweeps launched without one keep the template's.
    sweepProfiles: new SweepProfiles(new IAMClient({}), ENV.SPAWN_STACK_NAME),
    ...(DNS ? { dns: DNS } : {}),
    throttle: new Ec2Throttle({ clock: systemClock }),
  });
}

let deps: ReconcileDeps | undefined;

/** Clients and adapters, built once per container and reused by every invocation. */
function containerDeps(): ReconcileDeps {
  deps ??= {
    store: new DynamoStateStore(
      new DynamoDBClient({ region: ENV.SPAWN_HOME_REGION }),
      ENV.SPAWN_TABLE_PREFIX,
    ),
    compute: ec2Compute(),
    clock: systemClock,
    events: new EventBridgeSink(
      new EventBridgeClient({ region: ENV.SPAWN_HOME_REGION }),
      ENV.SPAWN_EVENT_BUS,
    ),
  };
  return deps;
}

const correlate = (event: OrchestratorEvent) =>
  event.kind === "sweep"
    ? {
        event: "sweep",
        sweepId: event.sweepId,
        ...(event.traceparent ? { traceparent: event.traceparent } : {}),
      }
    : event.kind === "instance"
      ? { event: event.cause, ec2InstanceId: event.ec2InstanceId, region: event.region }
      : { event: "tick" };

export const handler = middy<OrchestratorEvent, OrchestratorResult, Error, LoggedContext>()
  .use(validateEvent(parseOrchestratorEvent))
  .use(logContext(logger, correlate))
  .use(handleErrors(logger))
  .handler(async (event, context) => {
    const started = performance.now();
    const result = await orchestrate(containerDeps(), event, {
      log: context.log,
      remainingMs: () => context.getRemainingTimeInMillis(),
    });
    // CloudWatch metrics as EMF log lines: no client, no call, no added latency.
    emitMetrics(
      orchestratorMetrics(event, result, performance.now() - started),
      {
        fn: "sweep-orchestrator",
        event: event.kind,
      },
      { properties: correlate(event) },
    );
    return result;
  });
