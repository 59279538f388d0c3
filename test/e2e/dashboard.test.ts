/**
 * The dashboard in real headless Chromium (Debian's /usr/bin/chromium driven by
 * playwright-core), on the embedded default through the real CLI binary: `spawn dashboard`
 * serves, `spawn sweep launch` runs real agents. Screenshots at desktop and phone widths are
 * written to test/artifacts/ for review.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnv, cliEnv } from "../helpers/cli.js";
import {
  ARTIFACTS,
  CHROMIUM,
  DESKTOP,
  NO_CHROMIUM,
  PHONE,
  type ServedDashboard,
  serveDashboard,
} from "../helpers/dashboard.js";

const missing = NO_CHROMIUM !== undefined;

let cli: CliEnv;
let served: ServedDashboard | undefined;
let loginUrl = "";
let browser: Browser;
let context: BrowserContext;
const pageErrors: string[] = [];

function writeSpec(name: string, body: string): string {
  const dir = join(cli.home, "specs");
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${name}.yaml`);
  writeFileSync(path, body);
  return path;
}

function launch(spec: string): string {
  const r = cli.run(["sweep", "launch", spec, "--json"]);
  expect(r.code, r.stderr).toBe(0);
  return (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
}

async function openPage(viewport = DESKTOP): Promise<Page> {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  return page;
}

async function openSweep(page: Page, sweepId: string): Promise<void> {
  await page.goto(`${new URL(loginUrl).origin}/#/sweeps/${sweepId}`);
  await page.waitForSelector("canvas.grid-canvas[data-pending]");
}

const gridCount = (page: Page, state: string) =>
  page.$eval("canvas.grid-canvas", (c, s) => Number((c as HTMLCanvasElement).dataset[s] ?? "-1"), state);

describe.skipIf(missing)(
  `the dashboard in headless Chromium${missing ? ` (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium)` : ""}`,
  () => {
    beforeAll(async () => {
      cli = cliEnv("spawn-e2e-dash-");
      mkdirSync(ARTIFACTS, { recursive: true });
      served = await serveDashboard(cli);
      loginUrl = served.info.loginUrl;
      browser = await chromium.launch({ executablePath: CHROMIUM });
      context = await browser.newContext();
      // The login link sets the session cookie every page of this context uses.
      const page = await context.newPage();
      await page.goto(loginUrl);
      await page.waitForSelector("h1");
      await page.close();
    });

    afterAll(async () => {
      await browser?.close();
      await served?.stop();
      cli?.stop();
      expect(pageErrors).toEqual([]);
    });

    it("shows the quickstart's grid turning green live", async () => {
      // Given: the sweep page open before the sweep has done anything
      const page = await openPage();
      const sweepId = launch("templates/quickstart.yaml");
      await openSweep(page, sweepId);
      // Record every succeeded count the grid paints, from inside the page.
      await page.evaluate(() => {
        const canvas = document.querySelector("canvas.grid-canvas") as HTMLCanvasElement;
        const seen: number[] = [];
        (window as unknown as { seen: number[] }).seen = seen;
        canvas.addEventListener("grid-painted", () => seen.push(Number(canvas.dataset.succeeded)));
      });
      const before = await gridCount(page, "succeeded");

      // When: the agents run it
      await page.waitForFunction(
        () => (document.querySelector("canvas.grid-canvas") as HTMLCanvasElement).dataset.succeeded === "6",
        undefined,
        { timeout: 60_000 },
      );

      // Then: it went green in steps while the page stayed open (no reload), and the badge says so
      const seen = await page.evaluate(() => (window as unknown as { seen: number[] }).seen);
      expect(before).toBeLessThan(6);
      expect(new Set(seen.filter((n) => n > before && n < 6)).size).toBeGreaterThan(0);
      await page.waitForSelector(".title-row .badge.succeeded");
      await page.waitForSelector("#results-table tbody tr:nth-child(6)");
      await page.screenshot({ path: join(ARTIFACTS, "sweep-desktop.png"), fullPage: true });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "sweep-desktop-dark.png"), fullPage: true });
      await page.emulateMedia({ colorScheme: "light" });

      await page.setViewportSize(PHONE);
      await page.waitForTimeout(300);
      await page.screenshot({ path: join(ARTIFACTS, "sweep-phone.png"), fullPage: true });
      await page.goto(`${new URL(loginUrl).origin}/#/`);
      await page.waitForSelector(`tr[data-sweep="${sweepId}"]`);
      await page.screenshot({ path: join(ARTIFACTS, "sweeps-phone.png"), fullPage: true });
      await page.setViewportSize(DESKTOP);
      await page.screenshot({ path: join(ARTIFACTS, "sweeps-desktop.png"), fullPage: true });
      // The phone layout fits the width: nothing makes the page scroll sideways.
      await page.setViewportSize(PHONE);
      await openSweep(page, sweepId);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
        PHONE.width,
      );
      await page.close();
    });

    it("filters the results view", async () => {
      // Given: a finished quickstart sweep
      const r = cli.run(["sweep", "launch", "templates/quickstart.yaml", "--wait", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const sweepId = (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
      const page = await openPage();
      await openSweep(page, sweepId);
      await page.waitForSelector("#results-table tbody tr:nth-child(6)");

      // When: filtered by a param value
      await page.fill("#f-text", "lr=0.01");

      // Then: only the two lr=0.01 tasks are listed, and the status line says so
      await page.waitForFunction(() => document.querySelectorAll("#results-table tbody tr").length === 2);
      const lrColumn = await page.$$eval("#results-table tbody tr", (rows) =>
        rows.map((row) => row.querySelectorAll("td")[2]?.textContent),
      );
      expect(lrColumn).toEqual(["0.01", "0.01"]);
      expect(await page.textContent("#results-status")).toMatch(/^2 of 6 tasks match/);

      // And: the best task by loss is highlighted, and the status filter narrows to nothing failed
      expect(await page.$$eval("#results-table tbody tr.best", (rows) => rows.length)).toBe(2);
      await page.fill("#f-text", "");
      await page.selectOption("#f-status", "failed");
      await page.waitForFunction(() => document.querySelectorAll("#results-table tbody tr").length === 0);
      await page.close();
    });

    it("opens the log of a failed task", async () => {
      // Given: a sweep with one task that fails with a message on stderr
      const spec = writeSpec(
        "one-fails",
        [
          "name: one-fails",
          "command: |",
          "  if [ {{mode}} = broken ]; then echo 'this one is broken' >&2; exit 3; fi",
          "  echo fine",
          "params:",
          "  list: [{mode: ok}, {mode: broken}, {mode: ok}]",
          "max_instances: 1",
          "retry: {max_attempts: 1}",
          "",
        ].join("\n"),
      );
      const r = cli.run(["sweep", "launch", spec, "--wait", "--json"]);
      expect(r.code).toBe(1);
      const sweepId = (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
      const page = await openPage();
      await openSweep(page, sweepId);

      // When: the failed tasks are listed and the one there is opened
      await page.waitForSelector("#results-table tbody tr:nth-child(3)");
      await page.selectOption("#f-status", "failed");
      await page.waitForFunction(() => document.querySelectorAll("#results-table tbody tr").length === 1);
      await page.click("#results-table tbody tr a");

      // Then: its panel shows the failure and its log
      await page.waitForSelector("#task-title:text('Task 1')");
      await page.waitForFunction(() =>
        document.querySelector("pre.log")?.textContent?.includes("this one is broken"),
      );
      expect(await page.textContent("[data-facts]")).toMatch(/failed/);
      await page.screenshot({ path: join(ARTIFACTS, "failed-task-desktop.png"), fullPage: true });
      await page.close();
    });

    it("renders params and output holding HTML as text, never as markup", async () => {
      // Given: params that are HTML with script, echoed into the task's log
      const spec = writeSpec(
        "evil",
        [
          "name: evil",
          "command: echo {{label}}",
          "params:",
          "  list:",
          `    - {label: '<img src=x onerror="window.pwned=1">'}`,
          `    - {label: '<script>window.pwned=2</script>'}`,
          "max_instances: 1",
          "",
        ].join("\n"),
      );
      const r = cli.run(["sweep", "launch", spec, "--wait", "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const sweepId = (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
      const page = await openPage();
      await openSweep(page, sweepId);
      await page.waitForSelector("#results-table tbody tr:nth-child(2)");

      // When: the task is opened, its params and log shown
      await page.click("#results-table tbody tr:nth-child(1) a");
      await page.waitForFunction(() => document.querySelector("pre.log")?.textContent?.includes("<img"));

      // Then: the characters are on the page as text; nothing ran and no element was made from them
      const state = await page.evaluate(() => ({
        pwned: (window as unknown as { pwned?: number }).pwned,
        imgs: document.querySelectorAll("main img").length,
        scripts: document.querySelectorAll("main script").length,
        table: document.querySelector("#results-table")?.textContent ?? "",
        log: document.querySelector("pre.log")?.textContent ?? "",
      }));
      expect(state.pwned).toBeUndefined();
      expect(state.imgs).toBe(0);
      expect(state.scripts).toBe(0);
      expect(state.table).toContain('<img src=x onerror="window.pwned=1">');
      expect(state.table).toContain("<script>window.pwned=2</script>");
      expect(state.log).toContain('<img src=x onerror="window.pwned=1">');
      await page.close();
    });

    it("cancels a sweep from the UI, and the CLI agrees", async () => {
      // Given: a sweep of slow tasks, running
      const spec = writeSpec(
        "slow",
        [
          "name: slow",
          "command: sleep 60",
          "params:",
          "  grid: {i: {range: [0, 4]}}",
          "max_instances: 1",
          "",
        ].join("\n"),
      );
      const sweepId = launch(spec);
      const page = await openPage();
      await openSweep(page, sweepId);
      await page.waitForFunction(
        () => (document.querySelector("canvas.grid-canvas") as HTMLCanvasElement).dataset.running === "1",
        undefined,
        { timeout: 30_000 },
      );

      // When: the Cancel button is pressed and confirmed, with the keyboard
      page.once("dialog", (d) => void d.accept());
      await page.focus("button.danger");
      await page.keyboard.press("Enter");

      // Then: the page shows it cancelled, every task ends cancelled, and `spawn sweep status` agrees
      await page.waitForSelector(".title-row .badge.cancelled", { timeout: 30_000 });
      await page.waitForFunction(
        () => (document.querySelector("canvas.grid-canvas") as HTMLCanvasElement).dataset.cancelled === "4",
        undefined,
        { timeout: 30_000 },
      );
      const status = cli.json<{ status: string; counts: { cancelled: number } }>([
        "sweep",
        "status",
        sweepId,
      ]);
      expect(status.status).toBe("cancelled");
      expect(status.counts.cancelled).toBe(4);
      expect(await page.isDisabled("button.danger")).toBe(true);
      await page.close();
    });
  },
);

describe("spawn dashboard", () => {
  let env: CliEnv;
  beforeAll(() => {
    env = cliEnv("spawn-e2e-dash-cli-");
  });
  afterAll(() => env?.stop());

  it("serves the API with its token, outlives a control plane restart, and stops on Ctrl-C with exit 0", async () => {
    // Given: a dashboard and a sweep
    const s = await serveDashboard(env);
    expect(s.info.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    const r = env.run(["sweep", "launch", "templates/quickstart.yaml", "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const list = async () =>
      fetch(`${s.info.url}/api/sweeps`, { headers: { "x-spawn-token": s.info.token } }).then(async (res) => ({
        status: res.status,
        body: (await res.json()) as { sweeps: { sweepId: string }[] },
      }));
    expect((await list()).body.sweeps).toHaveLength(1);
    expect((await fetch(`${s.info.url}/api/sweeps`)).status).toBe(401);

    // When: the control plane stops under it (as it does after 10 idle minutes)
    expect(env.run(["local", "stop"]).code).toBe(0);

    // Then: the next read starts it again and answers
    const again = await list();
    expect(again.status).toBe(200);
    expect(again.body.sweeps).toHaveLength(1);

    // And: Ctrl-C ends it cleanly
    expect(await s.stop()).toBe(0);
  });

  it("refuses a port that is taken, with exit 2", async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as AddressInfo).port;
    try {
      const r = env.run(["dashboard", "--port", String(port)], { timeoutMs: 30_000 });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`port ${port} is in use`));
    } finally {
      blocker.close();
    }
  });
});
