/**
 * The embedded control plane: dynalite on 127.0.0.1 (a port the OS picks, data under
 * $SPAWN_HOME/db) plus the reconcile loop and the reaper on a timer, for as long as
 * sweeps are active. Started on demand by the CLI; `spawn local stop` stops it.
 */
import { mkdir, readFile, rename, rm, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import dynalite from "dynalite";
import { publishingLauncher } from "#core/alerts.js";
import { systemClock } from "#core/ports.js";
import { reapExpiredInstances, reconcile } from "#core/reconcile.js";
import { runDueSchedules, storedSpecLauncher } from "#core/scheduler.js";
import { DynamoScheduleStore } from "#providers/dynamodb/schedule-store.js";
import { DynamoStateStore } from "#providers/dynamodb/store.js";
import { ensureTables } from "#providers/dynamodb/tables.js";
import { LocalAlertBus, localAlertDeps } from "#providers/notify/local-bus.js";
import type { Logger } from "../log.js";
import { ChaosMonkey } from "./chaos.js";
import { localDynamoClient, TABLE_PREFIX } from "./client.js";
import { ProcessCompute } from "./compute.js";
import { LocalHosts, pruneHosts } from "./hosts.js";
import { type ControlPlaneHttp, ControlPlaneMetrics, serveControlPlaneHttp } from "./http.js";
import { LocalImds } from "./imds.js";
import { FileObjectStore } from "./objects.js";
import type { LocalPaths } from "./paths.js";

/** What `server.json` holds: how clients find the running control plane. */
export interface ServerInfo {
  pid: number;
  endpoint: string;
  startedAt: number;
  version: number;
}
export const SERVER_INFO_VERSION = 1;
/** A firing is run up to this late (a slow tick); older due firings are recorded as missed. */
const SCHEDULE_GRACE_MS = 60_000;
/** How often level alerts (cost, long-running, preemptions) of active sweeps are checked. */
const ALERT_CHECK_MS = 15_000;

export interface LocalServerOptions {
  paths: LocalPaths;
  agentCommand: readonly string[];
  log: Logger;
  /** @default 500 ms */
  tickMs?: number;
  /** Exit after this long with no active sweep. @default 10 min */
  idleExitMs?: number;
}

export async function runLocalServer(
  options: LocalServerOptions,
): Promise<{ endpoint: string; stop: () => Promise<void> }> {
  const { paths, log } = options;
  await mkdir(paths.db, { recursive: true });
  const server = dynalite({ path: paths.db, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  // /metrics and /health on the same port, and no browser reaches dynalite (providers/local/http.ts).
  const metrics = new ControlPlaneMetrics();
  let http: ControlPlaneHttp | undefined;
  serveControlPlaneHttp(server, () => http);
  // Reuse the last port when it is free, so agents that outlived a restart find the store again.
  const lastPort = Number(await readFile(join(paths.home, "port"), "utf8").catch(() => "0")) || 0;
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        server.off("error", reject);
        resolve();
      });
    });
  await listen(lastPort).catch(() => listen(0));
  const port = (server.address() as AddressInfo).port;
  await writeFile(join(paths.home, "port"), String(port));
  const endpoint = `http://127.0.0.1:${port}`;
  const client = localDynamoClient(endpoint);
  // A store made by an older spawn is brought up to today's indexes here, keeping its items.
  await ensureTables(client, TABLE_PREFIX, { rebuildDir: paths.home });
  const store = new DynamoStateStore(client, TABLE_PREFIX);
  const imds = new LocalImds();
  await imds.start();
  const chaos = new ChaosMonkey({ store, imds, log });
  const compute = new ProcessCompute({ paths, endpoint, agentCommand: options.agentCommand, imds });
  const hosts = new LocalHosts(paths.home);
  // Alerts: reconcile's events go through an in-process bus to the same delivery code as the alert-handler Lambda.
  const alertBus = new LocalAlertBus(
    localAlertDeps(client, TABLE_PREFIX, store, paths.home),
    log.child({ component: "alerts" }),
  );
  let alertsCheckedAt = 0;
  const deps = {
    store,
    compute,
    clock: systemClock,
    events: alertBus,
    options: { launchTimeoutMs: 60_000, drainMs: 10_000 },
  };
  const schedules = new DynamoScheduleStore(client, TABLE_PREFIX);
  const scheduler = {
    schedules,
    clock: systemClock,
    launcher: publishingLauncher(
      storedSpecLauncher({ store, objects: new FileObjectStore(paths.objects), clock: systemClock }),
      alertBus,
      systemClock,
    ),
  };

  const tickMs = options.tickMs ?? 500;
  http = {
    metrics,
    async read() {
      const active = await store.listActiveSweeps();
      const counts = await Promise.all(active.map((s) => store.countOpenTasks(s.sweepId, s.shardCount)));
      const armed = await schedules.listDueSchedules(Number.MAX_SAFE_INTEGER);
      return { open: new Map(active.map((s, i) => [s.sweepId, counts[i]!])), armedSchedules: armed.length };
    },
    async notReady() {
      const answered = await Promise.race([
        store.listSweeps({ limit: 1 }).then(
          () => true,
          () => false,
        ),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 2000).unref()),
      ]);
      if (!answered) return "state store not answering";
      const since = Date.now() - (metrics.lastTickAt ?? 0);
      return since > Math.max(10_000, 20 * tickMs)
        ? `the control loop has not run for ${Math.round(since / 1000)} s`
        : null;
    },
  };

  const info: ServerInfo = {
    pid: process.pid,
    endpoint,
    startedAt: Date.now(),
    version: SERVER_INFO_VERSION,
  };
  const tmp = `${paths.serverFile}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(info));
  await rename(tmp, paths.serverFile);
  log.info("control plane up", { endpoint, home: paths.home });

  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let idleSince = Date.now();

  const tick = async () => {
    const started = performance.now();
    let failed = false;
    try {
      const active = await store.listActiveSweeps();
      // Sweeps are reconciled side by side: one busy sweep (a large cancel) never holds up another.
      await Promise.all(
        active.map(async (sweep) => {
          try {
            if (sweep.spec.chaos) await chaos.tick(sweep);
            const r = await reconcile(deps, sweep.sweepId);
            metrics.reconciled(r);
            if (
              r.launched.length ||
              r.terminated.length ||
              r.requeued.length ||
              r.finished ||
              r.deactivated
            ) {
              log.info("reconciled", { ...r });
            }
          } catch (error) {
            failed = true;
            log.error("reconcile failed", { sweepId: sweep.sweepId, error });
          }
        }),
      );
      if (Date.now() - alertsCheckedAt >= ALERT_CHECK_MS) {
        alertsCheckedAt = Date.now();
        await alertBus.checkLevels(active);
      }
      const reaped = await reapExpiredInstances(deps);
      metrics.reaped(reaped);
      if (reaped.length) log.warn("reaped instances past their deadline", { instances: reaped });
      // What reconcile and the reaper terminated leaves the hosts file (a kill -9'd agent cannot).
      const pruned = await pruneHosts(hosts, store).catch((error: unknown) => {
        log.warn("could not prune the hosts file", { error });
        return [];
      });
      if (pruned.length)
        log.info("removed terminated agents' hostnames", { hosts: pruned.map((e) => e.host) });
      const pass = await runDueSchedules(scheduler, SCHEDULE_GRACE_MS);
      metrics.scheduled(pass);
      for (const fired of pass.fired) log.info("schedule fired", { ...fired });
      for (const missed of pass.missed)
        log.warn("schedule firings missed while the control plane was down", missed);
      // Armed schedules keep the control plane up: it is their timer.
      const armed = await schedules.listDueSchedules(Number.MAX_SAFE_INTEGER);
      if (active.length > 0 || armed.length > 0) idleSince = Date.now();
      else if (Date.now() - idleSince > (options.idleExitMs ?? 600_000)) {
        log.info("no active sweeps; exiting");
        await stop();
        return;
      }
    } catch (error) {
      failed = true;
      log.error("control loop error", { error });
    }
    metrics.tick(performance.now() - started, Date.now(), failed);
    if (!stopped) timer = setTimeout(tick, tickMs);
  };

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    chaos.stop();
    // Alerts the last passes published get a moment to go out; retries still pending are dropped.
    await alertBus.idle(5_000);
    alertBus.close();
    await imds.stop();
    await rm(paths.serverFile, { force: true });
    client.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    log.info("control plane stopped");
  };

  timer = setTimeout(tick, 0);
  return { endpoint, stop };
}
