/**
 * `spawn-agent`: the process that runs on every instance (a local process in the embedded
 * default). Configuration comes from the environment its launcher sets (agent/wiring.ts): the
 * local provider's process compute, or an EC2 instance's boot script.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { systemClock } from "#core/ports.js";
import { localPaths } from "#providers/local/paths.js";
import { createLogger } from "#providers/log.js";
import { Agent } from "./agent.js";
import { locateExecutor } from "./executor.js";
import { CpuSampler } from "./idle.js";
import { DEFAULT_IMDS_ENDPOINT, ImdsClient } from "./imds.js";
import { type AgentConfig, AgentConfigError, agentConfig, openAgentPorts } from "./wiring.js";

const { values } = parseArgs({ options: { instance: { type: "string" } }, strict: false });
const paths = localPaths();
let config: AgentConfig;
try {
  config = agentConfig(process.env, paths, { instance: values.instance as string | undefined });
} catch (error) {
  if (!(error instanceof AgentConfigError)) throw error;
  process.stderr.write(`spawn-agent: ${error.message}\n`);
  process.exit(2);
}
const { SPAWN_SWEEP_ID: sweepId, SPAWN_INSTANCE_ID: instanceId, provider } = config;
const log = createLogger(
  {
    component: "agent",
    sweepId,
    instanceId,
    ...(config.provider === "aws" && config.SPAWN_EC2_INSTANCE_ID
      ? { ec2: config.SPAWN_EC2_INSTANCE_ID }
      : {}),
  },
  (line) => process.stdout.write(line),
);

// IMDS exists on EC2; on the local provider only where chaos mode or a test provides one.
const imdsEndpoint = config.SPAWN_IMDS_ENDPOINT ?? (provider === "local" ? undefined : DEFAULT_IMDS_ENDPOINT);

// The executor is optional on an instance (the boot script installs it where it can); local
// agents share one machine's GPUs with each other, so they leave them alone.
let executor: string | null = null;
if (provider === "aws") {
  try {
    executor = locateExecutor(process.env);
  } catch (error) {
    log.warn("spawn-executor unusable", { error: (error as Error).message });
  }
  if (!executor) log.warn("no spawn-executor: no GPU inventory, health gate, telemetry or budgets");
}

const ports = await openAgentPorts(config, paths.objects, log);
const agent = new Agent({
  store: ports.store,
  objects: ports.objects,
  ...(ports.events ? { events: ports.events } : {}),
  ...(ports.hostnames ? { hostnames: ports.hostnames } : {}),
  clock: systemClock,
  log,
  sweepId,
  instanceId,
  workDir: config.agentDir,
  bundleCache: config.bundleCache,
  provider,
  ...(imdsEndpoint ? { imds: new ImdsClient({ endpoint: imdsEndpoint }) } : {}),
  ...(config.SPAWN_IMDS_POLL_MS ? { imdsPollMs: config.SPAWN_IMDS_POLL_MS } : {}),
  // Local agents share this machine with everything else on it: its load says nothing about them.
  ...(provider === "local" ? {} : { cpu: new CpuSampler() }),
  ...(executor ? { executor: { binary: executor } } : {}),
});

/** The DMI vendor EC2's Nitro and Xen machines report. */
function onEc2(): boolean {
  try {
    return /Amazon EC2|Xen/.test(readFileSync("/sys/devices/virtual/dmi/id/sys_vendor", "utf8"));
  } catch {
    return false;
  }
}

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
  ports.close();
  // On EC2 the machine goes with its agent: the launch template makes a shutdown terminate the
  // instance (systemd would otherwise restart the agent). Reconcile terminates it if this fails.
  // Only where the boot script asked for it and the machine says it is EC2 (never a dev box).
  if (provider === "aws" && process.env.SPAWN_POWEROFF_ON_EXIT === "1" && onEc2()) {
    const off = spawnSync("systemctl", ["poweroff"], { stdio: "inherit" });
    if (off.status !== 0) log.warn("poweroff failed; the control plane will terminate the instance", {});
  }
  process.exit(0);
} catch (error) {
  log.error("agent crashed", { error: error instanceof Error ? error.stack : String(error) });
  process.exit(1);
}
