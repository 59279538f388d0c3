/** Entry point of the embedded control plane process (started detached by the CLI). */
import { fileURLToPath } from "node:url";
import { createLogger } from "../log.js";
import { localPaths } from "./paths.js";
import { runLocalServer } from "./server.js";

const log = createLogger({ component: "local-control-plane" }, (line) => process.stdout.write(line));
const agentScript = fileURLToPath(new URL("./agent.js", import.meta.url));

try {
  const { stop } = await runLocalServer({
    paths: localPaths(),
    agentCommand: [process.execPath, "--enable-source-maps", agentScript],
    log,
    ...(process.env.SPAWN_LOCAL_IDLE_EXIT_MS
      ? { idleExitMs: Number(process.env.SPAWN_LOCAL_IDLE_EXIT_MS) }
      : {}),
  });
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    process.once(sig, () => {
      stop().then(() => process.exit(0));
    });
  }
} catch (error) {
  log.error("control plane failed to start", { error: error instanceof Error ? error.stack : String(error) });
  process.exit(1);
}
