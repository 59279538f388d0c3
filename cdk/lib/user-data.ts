/**
 * The instances' bootstrap script (cdk/user-data/spawn-boot.sh) with this deployment's values:
 * the launch templates run it as user-data, and the AMI build runs it with `install`.
 */
import { readFileSync } from "node:fs";
import { artifactKeys } from "#providers/aws/launch-config.js";
import { projectPath } from "./paths.js";
import { renderTemplate } from "./template.js";

export interface BootScriptValues {
  stackName: string;
  version: string;
  homeRegion: string;
  artifactsBucket: string;
  resultsBucket: string;
  tablePrefix: string;
  eventBus: string;
}

/** The bootstrap template, as committed. */
export const BOOT_SCRIPT_PATH = projectPath("cdk", "user-data", "spawn-boot.sh");
/** The agent's systemd unit (the agent's own file), which the bootstrap installs. */
export const AGENT_UNIT_PATH = projectPath("agent", "systemd", "spawn-agent.service");

/** Node and the agent as the unit runs them (`ExecStart=<node> <agent.js>`): the bootstrap installs exactly there. */
export function unitExecStart(unit: string): { nodeBin: string; agentPath: string } {
  const match = /^ExecStart=(\/\S+)\s+(\/\S+\.m?js)\s*$/m.exec(unit);
  if (!match) throw new Error(`${AGENT_UNIT_PATH}: expected ExecStart=<absolute node> <absolute agent .js>`);
  return { nodeBin: match[1]!, agentPath: match[2]! };
}

/** The rendered script. It carries names only, never credentials (the instance role provides those). */
export function renderBootScript(values: BootScriptValues): string {
  const unit = readFileSync(AGENT_UNIT_PATH, "utf8");
  return renderTemplate(
    readFileSync(BOOT_SCRIPT_PATH, "utf8"),
    {
      ...values,
      agentKey: artifactKeys.agent(values.version),
      executorKeyX86_64: artifactKeys.executor(values.version, "x86_64"),
      executorKeyAarch64: artifactKeys.executor(values.version, "aarch64"),
      executorSourceKey: artifactKeys.executorSource(values.version),
      ...unitExecStart(unit),
      agentUnit: unit.trimEnd(),
    },
    BOOT_SCRIPT_PATH,
  );
}
