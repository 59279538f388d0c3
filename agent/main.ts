/**
 * `spawn-agent`: the process that runs on every instance (a local process in the
 * embedded default). Configuration comes from the environment its launcher sets.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { systemClock } from "#core/ports.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { localDynamoClient, TABLE_PREFIX } from "#providers/local/client.js";
import { FileObjectStore } from "#providers/local/objects.js";
import { localPaths } from "#providers/local/paths.js";
import { createLogger } from "#providers/log.js";
import { Agent } from "./agent.js";

function required(name: string, value: string | undefined): string {
  if (!value) {
    process.stderr.write(`spawn-agent: ${name} is not set; the agent is started by spawn, not by hand\n`);
    process.exit(2);
  }
  return value;
}

const { values } = parseArgs({ options: { instance: { type: "string" } }, strict: false });
const instanceId = required(
  "SPAWN_INSTANCE_ID",
  (values.instance as string | undefined) ?? process.env.SPAWN_INSTANCE_ID,
);
const sweepId = required("SPAWN_SWEEP_ID", process.env.SPAWN_SWEEP_ID);
const endpoint = required("SPAWN_STORE_ENDPOINT", process.env.SPAWN_STORE_ENDPOINT);
const paths = localPaths();
const workDir = process.env.SPAWN_AGENT_DIR ?? join(paths.instances, instanceId);
const log = createLogger({ component: "agent", sweepId, instanceId }, (line) => process.stdout.write(line));

const client = localDynamoClient(endpoint);
const agent = new Agent({
  store: new DynamoStateStore(client, TABLE_PREFIX),
  objects: new FileObjectStore(paths.objects),
  clock: systemClock,
  log,
  sweepId,
  instanceId,
  workDir,
  bundleCache: paths.bundleCache,
});

let signals = 0;
for (const sig of ["SIGTERM", "SIGINT"] as const) {
  process.on(sig, () => {
    signals++;
    if (signals > 1) process.exit(143);
    log.info("stopping", { signal: sig });
    agent.stop(`received ${sig}`);
  });
}

try {
  const reason = await agent.run();
  log.info("agent exiting", { reason });
  client.destroy();
  process.exit(0);
} catch (error) {
  log.error("agent crashed", { error: error instanceof Error ? error.stack : String(error) });
  process.exit(1);
}
