/** `spawn dashboard`: the web dashboard over the embedded control plane, in the foreground until Ctrl-C. */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Command } from "commander";
import { formatTraceparent, newTraceContext } from "#core/api.js";
import { AbortError, ExitCode } from "#core/errors.js";
import type { StateStore } from "#core/ports.js";
import { createLogger } from "#providers/log.js";
import { type CliContext, openContext } from "../context.js";
import { intArg } from "../flags.js";
import { paint, printJson } from "../output.js";
import { startDashboard } from "../services/dashboard/server.js";

const DEFAULT_PORT = 7500;

/** The built UI sits next to the bundled CLI: dist/dashboard/. */
const STATIC_DIR = fileURLToPath(new URL("./dashboard/", import.meta.url));

/** The control plane went away: refused, or a pooled connection to the old one was reset. */
const LOST = new Set(["ECONNREFUSED", "ECONNRESET", "EPIPE"]);
const connectionLost = (error: unknown) => {
  const e = error as { code?: string; cause?: { code?: string } };
  return LOST.has(e?.code ?? "") || LOST.has(e?.cause?.code ?? "");
};

/**
 * A StateStore that follows the embedded control plane: it exits after 10 idle minutes while a
 * dashboard may stay open for days, so a refused connection starts (or finds) it again and
 * the call is retried once on the new endpoint.
 */
function followingStore(first: CliContext): { store: StateStore; close(): void } {
  let ctx = first;
  let reopening: Promise<CliContext> | undefined;
  const reopen = () => {
    reopening ??= openContext().then((next) => {
      ctx.close();
      ctx = next;
      reopening = undefined;
      return next;
    });
    return reopening;
  };
  const store = new Proxy({} as StateStore, {
    get(_target, prop) {
      return async (...args: unknown[]) => {
        const call = (c: CliContext) =>
          (Reflect.get(c.store, prop) as (...a: unknown[]) => unknown).apply(c.store, args);
        try {
          return await call(ctx);
        } catch (error) {
          if (!connectionLost(error)) throw error;
          return call(await reopen());
        }
      };
    },
  });
  return { store, close: () => ctx.close() };
}

function openBrowser(url: string): void {
  const [cmd, ...args] =
    process.platform === "darwin"
      ? ["open", url]
      : process.platform === "win32"
        ? ["cmd", "/c", "start", "", url]
        : ["xdg-open", url];
  const child = spawn(cmd as string, args, { detached: true, stdio: "ignore" });
  child.once("error", () =>
    process.stderr.write(`could not open a browser (${cmd} failed); open the URL above\n`),
  );
  child.unref();
}

export function registerDashboard(program: Command): void {
  program
    .command("dashboard")
    .description("serve the web dashboard (sweeps, live task grid, results, logs, /metrics) until Ctrl-C")
    .option(
      "--port <n>",
      `port to listen on (0: any free port) (default: ${DEFAULT_PORT}, or any free one if taken)`,
      intArg("--port"),
    )
    .option(
      "--host <address>",
      "address to listen on; anything but loopback exposes it to the network",
      "127.0.0.1",
    )
    .option("--open", "open it in the default browser")
    .option("--json", "print the URLs as one JSON object")
    .action(async (opts) => {
      // One trace per command: the server logs it with every request it answers.
      const trace = newTraceContext((n) => new Uint8Array(randomBytes(n)));
      const ctx = await openContext();
      const following = followingStore(ctx);
      const accessLog = createWriteStream(join(ctx.paths.home, "dashboard.log"), { flags: "a" });
      const log = createLogger({ component: "dashboard", traceId: trace.traceId }, (line) => {
        accessLog.write(line);
        if (!line.includes('"level":"info"')) process.stderr.write(line);
      });
      const start = (port: number) =>
        startDashboard(
          // Schedules and alerts open the stores per request, as each CLI command does.
          {
            store: following.store,
            objects: ctx.objects,
            clock: ctx.clock,
            log,
            context: () => openContext(),
          },
          { host: opts.host, port, staticDir: STATIC_DIR, trace },
        );
      let dashboard: Awaited<ReturnType<typeof start>>;
      try {
        dashboard = await start(opts.port ?? DEFAULT_PORT);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EADDRINUSE") throw error;
        if (opts.port !== undefined)
          throw new AbortError(
            `port ${opts.port} is in use`,
            "pick another with --port, or --port 0 for any free one",
          );
        dashboard = await start(0);
      }
      log.info("dashboard up", { url: dashboard.url, traceparent: formatTraceparent(trace) });
      if (opts.json) {
        printJson({
          url: dashboard.url,
          loginUrl: dashboard.loginUrl,
          metricsUrl: `${dashboard.url}/metrics`,
          token: dashboard.token,
          traceparent: formatTraceparent(trace),
        });
      } else {
        process.stdout.write(
          `${paint("bold", "spawn dashboard")}  ${dashboard.loginUrl}\n` +
            `metrics   ${dashboard.url}/metrics  (Authorization: Bearer ${dashboard.token})\n` +
            `health    ${dashboard.url}/health/live  ${dashboard.url}/health/ready\n` +
            `log       ${join(ctx.paths.home, "dashboard.log")}\n` +
            `${paint("dim", "Ctrl-C to stop")}\n`,
        );
      }
      if (opts.host !== "127.0.0.1" && opts.host !== "localhost" && opts.host !== "::1")
        process.stderr.write(
          `${paint("yellow", "warning")}: listening on ${opts.host}: anyone who can reach it and has the link can cancel sweeps\n`,
        );
      if (opts.open) openBrowser(dashboard.loginUrl);
      await new Promise<void>((resolve) => {
        for (const sig of ["SIGINT", "SIGTERM"] as const) process.once(sig, () => resolve());
      });
      await dashboard.close();
      following.close();
      accessLog.end();
      // Stopping is this command's normal end, not an interrupted piece of work.
      process.exitCode = ExitCode.ok;
    });
}
