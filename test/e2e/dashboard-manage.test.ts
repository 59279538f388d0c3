/**
 * Schedules, alerts and queues in the dashboard, in real headless Chromium (Debian's
 * /usr/bin/chromium driven by playwright-core), on the embedded default through the real CLI
 * binary: a schedule created and paused from the UI is what `spawn schedule list --json` shows; a
 * bad cron gets the CLI's own message next to its field; a queue's dead letter shows its log as
 * text, and retrying it from the UI is what `spawn queue status` sees. Keyboard use, labels,
 * contrast in light and dark, and the phone width are checked; screenshots go to test/artifacts/.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnv, cliEnv, ROOT } from "../helpers/cli.js";
import { ARTIFACTS, CHROMIUM, DESKTOP, NO_CHROMIUM, PHONE } from "../helpers/dashboard.js";

const missing = NO_CHROMIUM !== undefined;
const SLACK = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstWXYZ";

let cli: CliEnv;
let child: ChildProcess | undefined;
let origin = "";
let browser: Browser;
let context: BrowserContext;
const pageErrors: string[] = [];

/** `spawn dashboard --port 0 --json` in the test's home; resolves with the login URL it prints. */
async function serve(env: CliEnv): Promise<string> {
  child = spawn(process.execPath, [join(ROOT, "bin", "spawn.js"), "dashboard", "--port", "0", "--json"], {
    env: { ...process.env, SPAWN_HOME: env.home, NO_COLOR: "1", SPAWN_OWNER: "e2e" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stderr?.on("data", (d) => {
    err += d;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`spawn dashboard printed nothing in 30 s: ${err}`)),
      30_000,
    );
    child?.stdout?.on("data", (d) => {
      out += d;
      try {
        resolve((JSON.parse(out) as { loginUrl: string }).loginUrl);
        clearTimeout(timer);
      } catch {
        // not the whole object yet
      }
    });
    child?.once("exit", (code) => reject(new Error(`spawn dashboard exited ${code}: ${err}`)));
  });
}

async function openPage(hash: string, viewport = DESKTOP): Promise<Page> {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    // The browser logs every 4xx; the 400s these tests provoke on purpose are not errors of the page.
    if (m.type() === "error" && !/status of 400 \(Bad Request\)/.test(m.text())) pageErrors.push(m.text());
  });
  await page.goto(`${origin}/${hash}`);
  return page;
}

/**
 * Accessibility facts of the page, measured in the browser: controls without a label, and text
 * whose contrast with its (first opaque ancestor's) background is under WCAG AA (4.5:1, 3:1 for
 * large or bold-large text).
 */
async function audit(page: Page): Promise<{ unlabelled: string[]; lowContrast: string[] }> {
  return page.evaluate(() => {
    const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).map(Number);
    const lum = ([r, g, b]: number[]) => {
      const f = (v: number) => {
        const s = v / 255;
        return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
      };
      return 0.2126 * f(r ?? 0) + 0.7152 * f(g ?? 0) + 0.0722 * f(b ?? 0);
    };
    const background = (el: Element | null): number[] => {
      for (let e = el; e; e = e.parentElement) {
        const c = rgb(getComputedStyle(e).backgroundColor);
        if (c.length === 3 || (c[3] ?? 0) > 0.9) return c;
      }
      return [255, 255, 255];
    };
    const unlabelled = [...document.querySelectorAll("main input, main select, main button")]
      .filter((el) => {
        const c = el as HTMLInputElement;
        return !(c.labels?.length || c.getAttribute("aria-label") || c.textContent?.trim());
      })
      .map((el) => el.outerHTML.slice(0, 80));
    const lowContrast: string[] = [];
    const walker = document.createTreeWalker(document.querySelector("main") as Node, NodeFilter.SHOW_TEXT);
    for (let n = walker.nextNode(); n; n = walker.nextNode()) {
      const el = n.parentElement;
      // SVG text sits on shapes, not on a CSS background: its contrast is the fill's, set in styles.css.
      if (!el || !n.textContent?.trim() || el.closest(".visually-hidden,[hidden],svg")) continue;
      const style = getComputedStyle(el);
      if (style.display === "none" || style.visibility === "hidden") continue;
      const [a, b] = [lum(rgb(style.color)), lum(background(el))];
      const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
      const size = Number.parseFloat(style.fontSize);
      const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
      if (ratio < (large ? 3 : 4.5))
        lowContrast.push(`${n.textContent.trim().slice(0, 40)} (${ratio.toFixed(2)})`);
    }
    return { unlabelled, lowContrast };
  });
}

async function checkLayouts(page: Page, name: string): Promise<void> {
  for (const scheme of ["light", "dark"] as const) {
    await page.emulateMedia({ colorScheme: scheme });
    const facts = await audit(page);
    expect(facts.unlabelled, `${name} ${scheme}: controls without a label`).toEqual([]);
    expect(facts.lowContrast, `${name} ${scheme}: text under AA contrast`).toEqual([]);
  }
  await page.emulateMedia({ colorScheme: "light" });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`), fullPage: true });
  await page.setViewportSize(PHONE);
  await page.waitForTimeout(200);
  // The phone layout fits the width: nothing makes the page scroll sideways.
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(PHONE.width);
  await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-phone-dark.png`), fullPage: true });
  await page.emulateMedia({ colorScheme: "light" });
  await page.setViewportSize(DESKTOP);
}

describe.skipIf(missing)(
  `schedules, alerts and queues in headless Chromium${missing ? ` (skipped: no Chromium at ${CHROMIUM}; apt-get install chromium)` : ""}`,
  () => {
    let spec: string;

    beforeAll(async () => {
      cli = cliEnv("spawn-e2e-dash-manage-");
      mkdirSync(ARTIFACTS, { recursive: true });
      mkdirSync(join(cli.home, "specs"));
      spec = join(cli.home, "specs", "nightly.yaml");
      writeFileSync(spec, "name: nightly\ncommand: echo {{i}}\nparams:\n  grid: {i: [1, 2]}\n");
      const loginUrl = await serve(cli);
      origin = new URL(loginUrl).origin;
      browser = await chromium.launch({ executablePath: CHROMIUM });
      context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(loginUrl);
      await page.waitForSelector("h1");
      await page.close();
    });

    afterAll(async () => {
      await browser?.close();
      if (child && child.exitCode === null) {
        const exited = new Promise((resolve) => child?.once("exit", resolve));
        child.kill("SIGINT");
        await exited;
      }
      cli?.stop();
      expect(pageErrors).toEqual([]);
    });

    it("creates a schedule from the UI with the keyboard, pauses it, and spawn schedule list agrees", async () => {
      // Given: the schedules view, reached from the nav
      const page = await openPage("#/");
      await page.click("nav >> text=Schedules");
      await page.waitForSelector("#schedules-status:not(:text('loading…'))");
      expect(await page.getAttribute("nav a[href='#/schedules']", "aria-current")).toBe("page");

      // When: the form is filled and submitted from the keyboard
      await page.fill("#sch-spec", spec);
      await page.selectOption("#sch-kind", "cron");
      await page.fill("#sch-expression", "30 2 * * 1-5");
      await page.fill("#sch-timezone", "Europe/Paris");
      await page.focus("#sch-maxExecutions");
      await page.keyboard.type("4");
      await page.keyboard.press("Enter");

      // Then: it is listed, enabled, with its trigger
      const row = page.locator("#schedules-table tbody tr", { hasText: "nightly" });
      await row.locator(".badge.enabled").waitFor();
      const scheduleId = (await row.getAttribute("data-schedule")) as string;
      expect(scheduleId).toMatch(/^sch-nightly-/);
      expect(await row.textContent()).toContain("cron 30 2 * * 1-5 (Europe/Paris)");
      expect(await row.textContent()).toContain("0/4");
      await checkLayouts(page, "schedules");

      // When: paused with the keyboard (its button is labelled with the schedule's name)
      await page.focus("button[aria-label='Pause nightly']");
      await page.keyboard.press("Enter");

      // Then: the page shows it paused, focus stays on the row's action, and the CLI agrees
      await row.locator(".badge.paused").waitFor();
      expect(await page.evaluate(() => document.activeElement?.getAttribute("aria-label"))).toBe(
        "Resume nightly",
      );
      const listed = cli.json<
        Array<{ scheduleId: string; state: string; trigger: unknown; maxExecutions: number }>
      >(["schedule", "list"]);
      expect(listed).toHaveLength(1);
      expect(listed[0]).toMatchObject({
        scheduleId,
        state: "paused",
        trigger: { kind: "cron", expression: "30 2 * * 1-5", timezone: "Europe/Paris" },
        maxExecutions: 4,
      });

      // And: an edit from the UI (a rate now) is what the CLI describes
      await page.click("button[aria-label='Edit nightly']");
      await page.selectOption("#sch-kind", "rate");
      await page.fill("#sch-expression", "6h");
      await page.click("form button[type=submit]");
      await row.locator("text=rate 6h").waitFor();
      expect(
        cli.json<{ trigger: { kind: string; expression: string } }>(["schedule", "describe", scheduleId]),
      ).toMatchObject({
        state: "paused",
        trigger: { kind: "rate", expression: "6h" },
      });
      await page.close();
    });

    it("shows a bad cron's error next to its field, in the CLI's words, and creates nothing", async () => {
      // Given: the form, and what the CLI says about the same cron
      const page = await openPage("#/schedules");
      await page.waitForSelector("#schedules-status:not(:text('loading…'))");
      const before = cli.json<unknown[]>(["schedule", "list"]).length;
      const r = cli.run(["schedule", "create", spec, "--cron", "61 * * * *"]);
      expect(r.code).toBe(2);

      // When: the same cron is submitted from the UI
      await page.fill("#sch-spec", spec);
      await page.fill("#sch-expression", "61 * * * *");
      await page.click("form button[type=submit]");

      // Then: the message is by the field, announced with it, and the field has focus
      await page.waitForSelector("#sch-expression-error:not(:empty)");
      const message = (await page.textContent("#sch-expression-error")) as string;
      expect(message).toMatch(/^--cron "61 \* \* \* \*"/);
      expect(r.stderr).toContain(message.replace(/ \(e\.g\..*$/, ""));
      expect(await page.getAttribute("#sch-expression", "aria-invalid")).toBe("true");
      expect(await page.getAttribute("#sch-expression", "aria-describedby")).toContain(
        "sch-expression-error",
      );
      expect(await page.evaluate(() => document.activeElement?.id)).toBe("sch-expression");
      await page.screenshot({ path: join(ARTIFACTS, "schedule-cron-error-desktop.png"), fullPage: true });

      // And: nothing was created
      expect(cli.json<unknown[]>(["schedule", "list"])).toHaveLength(before);
      await page.close();
    });

    it("creates, edits and deletes an alert with a masked Slack URL, naming a bad trigger", async () => {
      // Given: the alerts view
      const page = await openPage("#/alerts");
      await page.waitForSelector("#alerts-status:not(:text('loading…'))");
      const [schedule] = cli.json<Array<{ scheduleId: string }>>(["schedule", "list"]);

      // When: a bad trigger is submitted
      await page.fill("#al-target", schedule?.scheduleId as string);
      await page.fill("#al-on", "failure,cost>lots");
      await page.fill("#al-slack", SLACK);
      await page.click("form button[type=submit]");

      // Then: the error is by the On field
      await page.waitForSelector("#al-on-error:not(:empty)");
      expect(await page.textContent("#al-on-error")).toMatch(/^--on "cost>lots"/);

      // When: corrected
      await page.fill("#al-on", "failure,cost>20");
      await page.click("form button[type=submit]");

      // Then: listed with the URL masked; the full URL is nowhere on the page
      const row = page.locator("#alerts-table tbody tr").first();
      await row.waitFor();
      expect(await row.textContent()).toContain("slack https://hooks.slack.com/…WXYZ");
      expect(await page.content()).not.toContain("abcdefghijklmnopqrst");
      const [alert] = cli.json<Array<{ id: string; on: string[] }>>(["alerts", "list"]);
      expect(alert?.on).toEqual(["failure", "cost>20"]);
      await checkLayouts(page, "alerts");

      // When: its triggers are edited; the Slack field, left empty, says it keeps the stored URL
      await page.click(`button[aria-label='Edit ${alert?.id}']`);
      expect(await page.getAttribute("#al-slack", "placeholder")).toBe("keep https://hooks.slack.com/…WXYZ");
      await page.fill("#al-on", "complete");
      await page.click("form button[type=submit]");

      // Then: the alert is replaced (a new id) with the new triggers and the same channel
      const edited = page.locator("#alerts-table tbody tr", { hasText: "complete" });
      await edited.waitFor();
      const [replaced] = cli.json<Array<{ id: string; on: string[]; channels: Array<{ kind: string }> }>>([
        "alerts",
        "list",
      ]);
      expect(replaced?.id).not.toBe(alert?.id);
      expect(replaced).toMatchObject({ on: ["complete"], channels: [{ kind: "slack" }] });
      expect(await edited.textContent()).toContain("slack https://hooks.slack.com/…WXYZ");

      // When: deleted (confirmed)
      page.once("dialog", (d) => void d.accept());
      await page.click(`button[aria-label='Delete ${replaced?.id}']`);

      // Then: gone from the page and for the CLI
      await page.waitForSelector("#alerts-status:text('No alerts yet')");
      expect(cli.json<unknown[]>(["alerts", "list"])).toEqual([]);
      await page.close();
    });

    it("shows a queue's jobs, graph and dead letter (its log as text), and retries it from the UI", async () => {
      // Given: a finished queue whose `broken` job failed with HTML on stderr, and `report` waited on it
      const file = join(cli.home, "specs", "queue.yaml");
      writeFileSync(
        file,
        [
          "name: q-demo",
          "on_failure: continue",
          "jobs:",
          "  - {id: prep, command: echo prep}",
          "  - {id: train, command: echo train, depends_on: [prep]}",
          "  - id: broken",
          `    command: "echo '<img src=x onerror=window.pwned=1>' >&2; exit 3"`,
          "    depends_on: [prep]",
          "    retry: {max_attempts: 1}",
          "  - {id: report, command: echo report, depends_on: [train, broken]}",
          "",
        ].join("\n"),
      );
      const launched = cli.run(["queue", "launch", file, "--wait", "--json"]);
      expect(launched.code, launched.stderr).toBe(1);
      const queueId = cli.json<Array<{ sweepId: string }>>(["sweep", "list"])[0]?.sweepId as string;

      // When: it is opened from the sweeps list
      const page = await openPage("#/");
      await page.click(`a[href='#/queues/${queueId}']`);

      // Then: jobs with their state, attempts and dependencies; the graph; the dead letter as text
      await page.waitForSelector("#jobs-table tr[data-job='broken'] .badge.failed");
      const jobs = await page.$$eval("#jobs-table tbody tr", (rows) =>
        rows.map((r) => [...r.querySelectorAll("td")].slice(0, 4).map((td) => td.textContent)),
      );
      expect(jobs).toEqual([
        ["prep", "succeeded", "1", "—"],
        ["train", "succeeded", "1", "prep"],
        ["broken", "failed", "1", "prep"],
        ["report", "cancelled", "0", "train, broken"],
      ]);
      expect(await page.$$eval("svg.dag .node", (n) => n.length)).toBe(4);
      expect(await page.$$eval("svg.dag .edge", (n) => n.length)).toBe(4);
      expect(await page.textContent("li[data-dead='broken'] pre.log")).toContain(
        "<img src=x onerror=window.pwned=1>",
      );
      expect(
        await page.evaluate(() => ({
          pwned: (window as unknown as { pwned?: number }).pwned,
          imgs: document.querySelectorAll("main img").length,
        })),
      ).toEqual({ pwned: undefined, imgs: 0 });
      await checkLayouts(page, "queue");

      // When: "Retry failed jobs" is pressed from the keyboard
      await page.focus("text=Retry failed jobs");
      await page.keyboard.press("Enter");

      // Then: broken (and report, which waited on it) run again, and the CLI agrees
      await page.waitForFunction(
        () =>
          document.querySelector("#jobs-table tr[data-job='broken'] td:nth-child(3)")?.textContent === "2",
        undefined,
        { timeout: 30_000 },
      );
      await page.waitForSelector(".title-row .badge.failed", { timeout: 30_000 });
      const status = cli.json<{ jobs: Array<{ id: string; attempts: number; status: string }> }>([
        "queue",
        "status",
        queueId,
      ]);
      expect(status.jobs.find((j) => j.id === "broken")).toMatchObject({ attempts: 2, status: "failed" });
      expect(status.jobs.find((j) => j.id === "prep")).toMatchObject({ attempts: 1 });
      await page.close();
    });
  },
);
