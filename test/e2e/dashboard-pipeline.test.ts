/**
 * A pipeline's stage graph in the dashboard, in real headless Chromium on the embedded default
 * through the real CLI binary: a three-stage pipeline (a queue, then a sweep after it, then a
 * sweep task by task after that) launched with `spawn sweep launch`, its graph turning green live
 * with labelled edges, keyboard moves between stages, a stage's page linking back to its
 * pipeline, the sweeps list showing the pipeline as one row, and every attempt of every stage
 * traced in the launch's trace (SPAWN_TRACEPARENT). Screenshots at desktop and phone
 * widths, light and dark, go to test/artifacts/.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
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

let cli: CliEnv;
let served: ServedDashboard | undefined;
let origin = "";
let browser: Browser;
let context: BrowserContext;
const pageErrors: string[] = [];

const PIPELINE = {
  name: "dash-pipe",
  stages: [
    { name: "prep", queue: { workdir: "work", jobs: [{ id: "make", command: "echo prepared" }] } },
    {
      name: "train",
      depends_on: ["prep"],
      // Slow enough that the page sees eval before it could have run.
      sweep: {
        workdir: "work",
        command: "sleep 3; echo trained {{i}}",
        params: { list: [{ i: 0 }, { i: 1 }] },
      },
    },
    {
      name: "eval",
      depends_on: [{ stage: "train", type: "n_to_n" }],
      sweep: { workdir: "work", command: "echo evaluated {{i}}", params: { list: [{ i: 0 }, { i: 1 }] } },
    },
  ],
};

async function openPage(hash: string, viewport = DESKTOP): Promise<Page> {
  const page = await context.newPage();
  await page.setViewportSize(viewport);
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  await page.goto(`${origin}/${hash}`);
  return page;
}

const nodeStates = (page: Page) =>
  page.$$eval("svg.stage-graph a[data-stage]", (links) =>
    Object.fromEntries(links.map((a) => [a.getAttribute("data-stage"), a.getAttribute("data-status")])),
  );

describe.skipIf(NO_CHROMIUM !== undefined)(
  `a pipeline's stage graph in headless Chromium${NO_CHROMIUM ? ` (${NO_CHROMIUM})` : ""}`,
  () => {
    beforeAll(async () => {
      cli = cliEnv("spawn-e2e-dash-pipe-");
      mkdirSync(ARTIFACTS, { recursive: true });
      served = await serveDashboard(cli);
      origin = new URL(served.info.loginUrl).origin;
      browser = await chromium.launch({ executablePath: CHROMIUM });
      context = await browser.newContext();
      // The login link sets the session cookie every page of this context uses.
      const page = await context.newPage();
      await page.goto(served.info.loginUrl);
      await page.waitForSelector("h1");
      await page.close();
    });

    afterAll(async () => {
      await browser?.close();
      await served?.stop();
      cli?.stop();
      expect(pageErrors).toEqual([]);
    });

    it("draws the stages as a graph that turns green live, each stage linked both ways", async () => {
      // Given: a three-stage pipeline launched from its file
      const dir = join(cli.home, "src");
      mkdirSync(join(dir, "work"), { recursive: true });
      const file = join(dir, "pipeline.yaml");
      writeFileSync(file, YAML.stringify(PIPELINE));
      const r = cli.run(["sweep", "launch", file, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const pipelineId = (JSON.parse(r.stdout) as { sweepId: string }).sweepId;
      const stageIds = new Map(
        cli
          .json<{ stages: Array<{ name: string; sweepId: string }> }>(["sweep", "status", pipelineId])
          .stages.map((s) => [s.name, s.sweepId]),
      );

      // When: its page is open while it runs
      const page = await openPage(`#/sweeps/${pipelineId}`);
      await page.waitForSelector("svg.stage-graph a[data-stage='eval']");
      const first = await nodeStates(page);
      await page.evaluate(() => {
        // Every state each node shows, recorded from inside the page as the graph is redrawn.
        const seen: Record<string, string[]> = {};
        (window as unknown as { seen: typeof seen }).seen = seen;
        new MutationObserver(() => {
          for (const a of document.querySelectorAll("svg.stage-graph a[data-stage]")) {
            const stage = a.getAttribute("data-stage") as string;
            const state = a.getAttribute("data-status") as string;
            const list = seen[stage] ?? [];
            if (list.at(-1) !== state) seen[stage] = [...list, state];
          }
        }).observe(document.getElementById("main") as HTMLElement, { childList: true, subtree: true });
      });

      // Then: the nodes are the stages in file order, linking to the stages' pages; the edges are
      // the dependencies, labelled with their kind
      expect(
        await page.$$eval("svg.stage-graph a[data-stage]", (links) =>
          links.map((a) => [a.getAttribute("data-stage"), a.getAttribute("href")]),
        ),
      ).toEqual(["prep", "train", "eval"].map((s) => [s, `#/sweeps/${stageIds.get(s)}`]));
      expect(await page.$$eval("svg.stage-graph path.edge", (p) => p.map((e) => e.dataset.edge))).toEqual([
        "prep>train",
        "train>eval",
      ]);
      expect(await page.$$eval("svg.stage-graph .edge-label", (t) => t.map((e) => e.textContent))).toEqual([
        "whole",
        "n_to_n",
      ]);
      expect(await page.getAttribute("svg.stage-graph", "role")).toBe("group");
      expect(await page.getAttribute("a[data-stage='eval']", "aria-label")).toMatch(
        /^stage eval: \w+, \d of 2 tasks done; after train \(task by task\)$/,
      );
      // eval cannot have finished yet: train sleeps first
      expect(first.eval).not.toBe("succeeded");
      // The pipeline's own (empty) task grid and results are not shown
      expect(await page.isHidden("canvas.grid-canvas")).toBe(true);

      // And: every node turns green without a reload, and the pipeline's badge says succeeded
      await page.waitForFunction(
        () =>
          [...document.querySelectorAll("svg.stage-graph a[data-stage]")].every(
            (a) => a.getAttribute("data-status") === "succeeded",
          ),
        undefined,
        { timeout: 120_000 },
      );
      await page.waitForSelector(".title-row .badge.succeeded");
      const seen = await page.evaluate(() => (window as unknown as { seen: Record<string, string[]> }).seen);
      // eval was seen before it succeeded (waiting on train, or running), live
      expect([first.eval, ...(seen.eval ?? [])].filter((s) => s !== "succeeded").length).toBeGreaterThan(0);
      expect(seen.eval?.at(-1)).toBe("succeeded");
      expect(await page.textContent("a[data-stage='eval']")).toContain("2/2 tasks");
      expect(cli.json<{ status: string }>(["sweep", "status", pipelineId]).status).toBe("succeeded");
      // One launch, one trace: every attempt of every stage ran as a span of it (the agents' logs)
      const traced = readdirSync(cli.home, { recursive: true, encoding: "utf8" })
        .filter((f) => f.endsWith("agent.log"))
        .flatMap((f) => readFileSync(join(cli.home, f), "utf8").split("\n"))
        .filter((line) => line.includes('"task attempt traced"'))
        .map((line) => JSON.parse(line) as { sweepId: string; traceparent: string });
      expect(traced).toHaveLength(5);
      expect(new Set(traced.map((t) => t.sweepId))).toEqual(new Set(stageIds.values()));
      expect(new Set(traced.map((t) => t.traceparent.split("-")[1])).size).toBe(1);
      expect(new Set(traced.map((t) => t.traceparent)).size).toBe(5);
      await page.screenshot({ path: join(ARTIFACTS, "pipeline-desktop.png"), fullPage: true });
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "pipeline-desktop-dark.png"), fullPage: true });
      await page.emulateMedia({ colorScheme: "light" });

      // When: the keyboard moves from prep to the next stage and opens it
      await page.focus("a[data-stage='prep']");
      await page.keyboard.press("ArrowDown");
      expect(await page.evaluate(() => document.activeElement?.getAttribute("data-stage"))).toBe("train");
      await page.keyboard.press("Enter");

      // Then: train's page says which pipeline it is a stage of, and links back
      await page.waitForURL(`**/#/sweeps/${stageIds.get("train")}`);
      await page.waitForSelector(`[data-stage-of='${pipelineId}']`);
      expect(await page.textContent(`[data-stage-of='${pipelineId}']`)).toBe(
        `train of pipeline ${pipelineId}; after prep (whole)`,
      );
      await page.waitForFunction(
        () => (document.querySelector("canvas.grid-canvas") as HTMLCanvasElement)?.dataset.succeeded === "2",
      );
      await page.screenshot({ path: join(ARTIFACTS, "pipeline-stage-desktop.png"), fullPage: true });
      await page.click(`[data-stage-of='${pipelineId}'] a[href='#/sweeps/${pipelineId}']`);
      await page.waitForSelector("svg.stage-graph a[data-stage='prep'][data-status='succeeded']");

      // And: at phone width the graph fits without the page scrolling sideways
      await page.setViewportSize(PHONE);
      await page.waitForTimeout(300);
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
        PHONE.width,
      );
      await page.screenshot({ path: join(ARTIFACTS, "pipeline-phone.png"), fullPage: true });

      // And: the sweeps list shows the pipeline as one row, its stages folded into it
      await page.setViewportSize(DESKTOP);
      await page.goto(`${origin}/#/`);
      const row = `tr[data-sweep='${pipelineId}']`;
      await page.waitForSelector(row);
      expect(await page.textContent(row)).toMatch(/pipeline: 3 of 3 stages ended/);
      expect(await page.textContent(`${row} td:nth-child(3)`)).toContain("5/5");
      for (const id of stageIds.values()) expect(await page.$(`tr[data-sweep='${id}']`)).toBeNull();
      await page.close();
    }, 200_000);
  },
);
