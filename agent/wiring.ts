/**
 * How `spawn-agent` is wired, from the environment its launcher sets: the local provider's
 * process compute (SPAWN_STORE_ENDPOINT: the embedded dynalite, objects as files) or an EC2
 * instance's boot script (cdk/user-data/spawn-boot.sh: DynamoDB and S3 of the deployed stack,
 * through the standard credential chain, i.e. the instance role).
 *
 * Each provider's adapters are loaded with a dynamic import, so an instance (which has
 * dist/agent.js and no node_modules) never evaluates what only the local provider needs.
 */
import { join } from "node:path";
import { z } from "zod";
import type { EventSink, ObjectStore, StateStore } from "#core/ports.js";
import type { LocalPaths } from "#providers/local/paths.js";
import type { Logger } from "#providers/log.js";
import { type HostnameRegistrar, LambdaHostnames, LocalHostnames } from "./dns.js";
import { DEFAULT_IMDS_ENDPOINT, ImdsClient } from "./imds.js";

/** Bad or missing environment: the agent exits 2 with this message (a launcher bug, not the user's). */
export class AgentConfigError extends Error {
  override name = "AgentConfigError";
}

const Id = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, "must be an id (letters, digits, . _ : -)");
const Nonempty = z.string().min(1, "is empty");

/** What both launchers set. */
const Common = z.object({
  SPAWN_SWEEP_ID: Id,
  SPAWN_INSTANCE_ID: Id,
  /** The instance's private directory. */
  SPAWN_AGENT_DIR: Nonempty.optional(),
  SPAWN_IMDS_ENDPOINT: z.url().optional(),
  SPAWN_IMDS_POLL_MS: z.coerce.number().int().positive().optional(),
});

/** The embedded default (providers/local/compute.ts). */
const LocalEnv = Common.extend({
  SPAWN_PROVIDER: z.literal("local"),
  SPAWN_STORE_ENDPOINT: z.url(),
  /** The state directory; its `hosts` file holds the local agents' hostnames (docs/dns.md). */
  SPAWN_HOME: Nonempty.optional(),
});

/** An EC2 instance (cdk/user-data/spawn-boot.sh writes these to /etc/spawn/agent.env). */
const AwsEnv = Common.extend({
  SPAWN_PROVIDER: z.literal("aws"),
  SPAWN_HOME_REGION: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d+$/, "must be an AWS region such as us-east-1"),
  SPAWN_TABLE_PREFIX: Nonempty,
  SPAWN_RESULTS_BUCKET: Nonempty,
  SPAWN_ARTIFACTS_BUCKET: Nonempty,
  /** The stack's bus, for GpuMemoryPressure; absent: events are only logged. */
  SPAWN_EVENT_BUS: Nonempty.optional(),
  /** The EC2 instance id, for log lines. */
  SPAWN_EC2_INSTANCE_ID: Nonempty.optional(),
});

export type AgentConfig =
  | (z.infer<typeof LocalEnv> & { provider: "local"; agentDir: string; bundleCache: string })
  | (z.infer<typeof AwsEnv> & { provider: "aws"; agentDir: string; bundleCache: string });

/** How long a local agent waits for its alerts to go out before it goes on. */
const LOCAL_ALERT_WAIT_MS = 5000;

/** Where an instance keeps its task directories and bundle cache without SPAWN_AGENT_DIR. */
export const AWS_AGENT_DIR = "/var/lib/spawn";

/**
 * Reads the agent's configuration. The provider is SPAWN_PROVIDER, else `local` when a store
 * endpoint is given (the embedded control plane always gives one) and `aws` when not.
 * `--instance` (the local launcher's flag) beats SPAWN_INSTANCE_ID.
 */
export function agentConfig(
  env: NodeJS.ProcessEnv,
  paths: Pick<LocalPaths, "instances" | "bundleCache">,
  flags: { instance?: string } = {},
): AgentConfig {
  const raw = {
    ...env,
    ...(flags.instance ? { SPAWN_INSTANCE_ID: flags.instance } : {}),
    SPAWN_PROVIDER: env.SPAWN_PROVIDER || (env.SPAWN_STORE_ENDPOINT ? "local" : "aws"),
  };
  // Unset optional variables arrive as "" from an environment file (SPAWN_EXECUTOR= and the like).
  const present = Object.fromEntries(Object.entries(raw).filter(([, v]) => v !== ""));
  if (present.SPAWN_PROVIDER !== "local" && present.SPAWN_PROVIDER !== "aws") {
    throw new AgentConfigError(
      `SPAWN_PROVIDER must be local or aws, got ${JSON.stringify(present.SPAWN_PROVIDER)}`,
    );
  }
  const schema = present.SPAWN_PROVIDER === "aws" ? AwsEnv : LocalEnv;
  const parsed = schema.safeParse(present);
  if (!parsed.success) {
    const issues = parsed.error.issues.map(
      (i) => `${i.path.join(".")} ${i.code === "invalid_type" ? "is not set" : i.message}`,
    );
    throw new AgentConfigError(
      `${issues.join("; ")} (${present.SPAWN_PROVIDER} agent; it is started by spawn, not by hand)`,
    );
  }
  const config = parsed.data;
  if (config.SPAWN_PROVIDER === "aws") {
    const agentDir = config.SPAWN_AGENT_DIR ?? AWS_AGENT_DIR;
    return { ...config, provider: "aws", agentDir, bundleCache: join(agentDir, "bundles") };
  }
  return {
    ...config,
    provider: "local",
    agentDir: config.SPAWN_AGENT_DIR ?? join(paths.instances, config.SPAWN_INSTANCE_ID),
    bundleCache: paths.bundleCache,
  };
}

/** The adapters the agent runs on. */
export interface AgentPorts {
  store: StateStore;
  objects: ObjectStore;
  events?: EventSink;
  hostnames?: HostnameRegistrar;
  close(): void;
}

/**
 * local: the embedded dynalite over loopback, the file object store under `objectsDir`,
 * hostnames in `$SPAWN_HOME/hosts`, and (given `log`) alert delivery for the events it publishes.
 * aws: DynamoDB in the home region with the stack's table prefix, S3 with `bundles/` in the
 * artifacts bucket and everything else in the results bucket, the stack's bus as `spawn.agent`,
 * and hostnames through the dns-updater its instance tag names (none without the tag).
 */
export async function openAgentPorts(
  config: AgentConfig,
  objectsDir: string,
  log?: Logger,
): Promise<AgentPorts> {
  if (config.provider === "local") {
    const [{ localDynamoClient, TABLE_PREFIX }, { DynamoStateStore }, { FileObjectStore }] =
      await Promise.all([
        import("#providers/local/client.js"),
        import("#providers/dynamodb/store.js"),
        import("#providers/local/objects.js"),
      ]);
    const client = localDynamoClient(config.SPAWN_STORE_ENDPOINT);
    const store = new DynamoStateStore(client, TABLE_PREFIX);
    const home = config.SPAWN_HOME;
    const hostnames = home
      ? await import("#providers/local/hosts.js").then(
          ({ LocalHosts }) =>
            new LocalHostnames(new LocalHosts(home), {
              sweepId: config.SPAWN_SWEEP_ID,
              instanceId: config.SPAWN_INSTANCE_ID,
            }),
        )
      : undefined;
    // The task failures this agent writes alert like reconcile's events do: the same local
    // delivery, from this process, waited for (the agent may exit right after; ADR 0033).
    const bus =
      home && log
        ? await import("#providers/notify/local-bus.js").then(
            ({ LocalAlertBus, localAlertDeps }) =>
              new LocalAlertBus(
                localAlertDeps(client, TABLE_PREFIX, store, home),
                log.child({ component: "alerts" }),
              ),
          )
        : undefined;
    return {
      store,
      objects: new FileObjectStore(objectsDir),
      ...(bus
        ? {
            events: {
              publish: async (events) => {
                await bus.publish(events);
                await bus.idle(LOCAL_ALERT_WAIT_MS);
              },
            },
          }
        : {}),
      ...(hostnames ? { hostnames } : {}),
      close: () => {
        bus?.close();
        client.destroy();
      },
    };
  }
  const [
    { DynamoDBClient },
    { S3Client },
    { EventBridgeClient },
    { DynamoStateStore },
    { S3ObjectStore },
    events,
    { invokeLambda },
  ] = await Promise.all([
    import("@aws-sdk/client-dynamodb"),
    import("@aws-sdk/client-s3"),
    import("@aws-sdk/client-eventbridge"),
    import("#providers/dynamodb/store.js"),
    import("#providers/aws/s3-objects.js"),
    import("#providers/aws/events.js"),
    import("#providers/aws/lambda-invoke.js"),
  ]);
  const region = config.SPAWN_HOME_REGION;
  const dynamo = new DynamoDBClient({ region });
  const s3 = new S3Client({ region });
  const bus = config.SPAWN_EVENT_BUS ? new EventBridgeClient({ region }) : undefined;
  return {
    store: new DynamoStateStore(dynamo, config.SPAWN_TABLE_PREFIX),
    objects: new S3ObjectStore(s3, {
      bucket: config.SPAWN_RESULTS_BUCKET,
      routes: { "bundles/": config.SPAWN_ARTIFACTS_BUCKET },
    }),
    ...(bus && config.SPAWN_EVENT_BUS
      ? { events: new events.EventBridgeSink(bus, config.SPAWN_EVENT_BUS, {}, events.AGENT_SOURCE) }
      : {}),
    hostnames: new LambdaHostnames({
      imds: new ImdsClient({ endpoint: config.SPAWN_IMDS_ENDPOINT ?? DEFAULT_IMDS_ENDPOINT }),
      sweepId: config.SPAWN_SWEEP_ID,
      instanceId: config.SPAWN_INSTANCE_ID,
      // The instance role, through the same credential chain as every other client here.
      credentials: () => dynamo.config.credentials(),
      invoke: invokeLambda,
    }),
    close: () => {
      dynamo.destroy();
      s3.destroy();
      bus?.destroy();
    },
  };
}
