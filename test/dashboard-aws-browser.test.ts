/**
 * The dashboard as deployed on AWS, in real headless Chromium (Debian's /usr/bin/chromium
 * through playwright-core; skipped with the reason when it is missing): the built UI from
 * dist/dashboard served as S3 serves it (no token filled in), under the stack's own CSP
 * (`dashboardCsp`), with `/api/*` answered by the dashboard-api Lambda's code over dynalite.
 * One local server stands in for CloudFront, API Gateway's JWT authorizer and the Cognito
 * hosted UI; it checks the PKCE exchange the way Cognito does (S256 of the verifier).
 */
import { createHash, createHmac, randomUUID } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { S3Client } from "@aws-sdk/client-s3";
import { CreateScheduleCommand, SchedulerClient } from "@aws-sdk/client-scheduler";
import type { APIGatewayProxyEventV2WithJWTAuthorizer } from "aws-lambda";
import { mockClient } from "aws-sdk-client-mock";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dashboardCsp } from "../cdk/lib/dashboard.js";
import type { SweepRecord } from "../core/model.js";
import { expandParams } from "../core/params.js";
import { systemClock } from "../core/ports.js";
import { parseSpec } from "../core/spec.js";
import { createSweep } from "../core/sweeps.js";
import { dashboardApi } from "../lambdas/dashboard-api/api.js";
import { LINK_TTL_SECONDS, S3OutputLinks } from "../lambdas/dashboard-api/downloads.js";
import { toApiRequest, toResult } from "../lambdas/dashboard-api/http.js";
import { teamManagement } from "../lambdas/dashboard-api/manage.js";
import { EventBridgeScheduleDriver } from "../providers/aws/schedule-driver.js";
import { DynamoScheduleStore } from "../providers/dynamodb/schedule-store.js";
import { DynamoTeamStore } from "../providers/dynamodb/team-store.js";
import { FileObjectStore } from "../providers/local/objects.js";
import { createLogger } from "../providers/log.js";
import { ROOT } from "./helpers/cli.js";
import { useDynaliteStore } from "./helpers/dynamo.js";

const CHROMIUM = process.env.SPAWN_CHROMIUM ?? "/usr/bin/chromium";
const UI = join(ROOT, "dist", "dashboard");
const why = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}; apt-get install chromium`
  : !existsSync(join(UI, "index.html"))
    ? "the UI is not built; run `npm run build`"
    : undefined;
const ARTIFACTS = join(ROOT, "test", "artifacts");
const USER = "first@example.com";
const CLIENT_ID = "test-client";
const SECRET = "test-signing-key";
const HTML = `<img src=x onerror="window.pwned=1">`;
const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
};

const useStore = useDynaliteStore("dashawsui");
/** EventBridge Scheduler, as far as arming a schedule goes: accepted, and the input kept for the test. */
const scheduler = mockClient(SchedulerClient);
const RESULTS_BUCKET = "spawn-results-test";
let objectsDir: string;
let server: Server;
let origin = "";
let browser: Browser;
let sweep: SweepRecord;
const pageErrors: string[] = [];
/** code → the PKCE challenge it was issued for. */
const codes = new Map<string, string>();
let tokenExchanges = 0;
let polls = 0;
let notModified = 0;

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");
/** A stand-in ID token: claims signed with a key only this server knows. */
function idToken(email: string): string {
  const body = `${b64url('{"alg":"HS256"}')}.${b64url(JSON.stringify({ email, token_use: "id", aud: CLIENT_ID }))}`;
  return `${body}.${b64url(createHmac("sha256", SECRET).update(body).digest())}`;
}
/** API Gateway's JWT authorizer: the verified claims, or undefined (the Lambda then answers 401). */
function verifiedClaims(authorization: string | undefined): Record<string, string> | undefined {
  const [head, payload, signature] = (authorization ?? "").replace(/^Bearer /, "").split(".");
  if (!head || !payload || !signature) return undefined;
  if (b64url(createHmac("sha256", SECRET).update(`${head}.${payload}`).digest()) !== signature)
    return undefined;
  return JSON.parse(Buffer.from(payload, "base64url").toString());
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

async function handle(req: IncomingMessage, res: ServerResponse, api: ReturnType<typeof dashboardApi>) {
  const url = new URL(req.url ?? "/", origin);
  const headers = { "content-security-policy": dashboardCsp(origin), "x-content-type-options": "nosniff" };
  if (url.pathname === "/cognito/oauth2/authorize") {
    const q = url.searchParams;
    expect(q.get("client_id")).toBe(CLIENT_ID);
    expect(q.get("response_type")).toBe("code");
    expect(q.get("code_challenge_method")).toBe("S256");
    const code = randomUUID();
    codes.set(code, q.get("code_challenge") ?? "");
    res.writeHead(302, { location: `${q.get("redirect_uri")}?code=${code}&state=${q.get("state")}` });
    return res.end();
  }
  if (url.pathname === "/cognito/oauth2/token" && req.method === "POST") {
    const form = new URLSearchParams(await readBody(req));
    const challenge = codes.get(form.get("code") ?? "");
    codes.delete(form.get("code") ?? "");
    const verified =
      challenge &&
      b64url(
        createHash("sha256")
          .update(form.get("code_verifier") ?? "")
          .digest(),
      );
    if (!challenge || verified !== challenge || form.get("client_id") !== CLIENT_ID) {
      res.writeHead(400, { "content-type": "application/json" });
      return res.end('{"error":"invalid_grant"}');
    }
    tokenExchanges++;
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify({ id_token: idToken(USER), expires_in: 3600, refresh_token: "r" }));
  }
  if (url.pathname === "/config.json") {
    res.writeHead(200, { ...headers, "content-type": "application/json" });
    return res.end(
      JSON.stringify({
        auth: "cognito",
        region: "us-east-1",
        clientId: CLIENT_ID,
        domain: `${origin}/cognito`,
        scopes: ["openid", "email"],
      }),
    );
  }
  if (url.pathname.startsWith("/api/")) {
    if (url.pathname.endsWith("/poll")) polls++;
    const claims = verifiedClaims(req.headers.authorization);
    const event = {
      version: "2.0",
      routeKey: `${req.method} /api/{proxy+}`,
      rawPath: url.pathname,
      rawQueryString: url.search.slice(1),
      headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])),
      body: await readBody(req),
      isBase64Encoded: false,
      requestContext: {
        http: { method: req.method ?? "GET", path: url.pathname },
        ...(claims ? { authorizer: { jwt: { claims, scopes: null } } } : {}),
      },
    } as unknown as APIGatewayProxyEventV2WithJWTAuthorizer;
    const result = toResult(await api(toApiRequest(event)));
    if (result.statusCode === 304) notModified++;
    res.writeHead(result.statusCode ?? 500, result.headers as Record<string, string>);
    return res.end(result.isBase64Encoded ? Buffer.from(result.body ?? "", "base64") : result.body);
  }
  // S3 behind CloudFront: the built files as they are, index.html for the root.
  const name = url.pathname === "/" ? "index.html" : url.pathname.slice(1);
  if (!/^[\w.-]+$/.test(name) || !existsSync(join(UI, name))) {
    res.writeHead(404);
    return res.end();
  }
  res.writeHead(200, { ...headers, "content-type": TYPES[extname(name)] ?? "application/octet-stream" });
  res.end(await readFile(join(UI, name)));
}

async function openPage(viewport: { width: number; height: number }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  return page;
}

const gridCount = (page: Page, state: string) =>
  page.$eval("canvas.grid-canvas", (c, s) => Number((c as HTMLCanvasElement).dataset[s] ?? "-1"), state);

describe.skipIf(why !== undefined)(
  `the AWS dashboard in headless Chromium${why ? ` (skipped: ${why})` : ""}`,
  () => {
    beforeAll(async () => {
      const { store, engine } = useStore();
      objectsDir = await mkdtemp(join(tmpdir(), "spawn-dash-aws-ui-"));
      const prefix = store.tables.sweeps.replace(/sweeps$/, "");
      const teams = new DynamoTeamStore(engine.client, prefix);
      const objects = new FileObjectStore(objectsDir);
      const log = createLogger({}, () => undefined);
      scheduler.resolves({});
      const scheduleDriver = new EventBridgeScheduleDriver(new SchedulerClient({ region: "us-east-1" }), {
        groupName: "spawn-schedules",
        target: {
          arn: "arn:aws:lambda:us-east-1:123456789012:function:scheduler",
          roleArn: "arn:aws:iam::123456789012:role/scheduler-invoke",
          deadLetterArn: "arn:aws:sqs:us-east-1:123456789012:schedules-dlq",
        },
      });
      const api = dashboardApi({
        store,
        teams,
        objects,
        clock: systemClock,
        log,
        // Signed with made-up credentials: the browser's request to S3 is answered by page.route.
        links: new S3OutputLinks(
          new S3Client({
            region: "us-east-1",
            credentials: { accessKeyId: "AKIDTEST", secretAccessKey: "test" },
          }),
          RESULTS_BUCKET,
          systemClock,
        ),
        manage: teamManagement({
          stores: {
            store,
            schedules: new DynamoScheduleStore(engine.client, prefix),
            scheduleDriver,
            objects,
          },
          teams,
          clock: systemClock,
          log,
        }),
      });
      const spec = parseSpec({
        name: "aws-ui",
        command: "python train.py --label {{label}}",
        params: { list: [{ label: HTML }, { label: "plain" }, { label: "third" }] },
      });
      sweep = await createSweep(
        { store, clock: systemClock },
        {
          sweepId: `awsui-${randomUUID().slice(0, 8)}`,
          spec,
          tasks: expandParams(spec.params, spec.repeat),
          owner: "someone",
          provider: "aws",
          bundle: { key: `bundles/${"b".repeat(64)}.tar.gz`, sha256: "b".repeat(64), bytes: 10 },
        },
      );
      server = createServer((req, res) => {
        handle(req, res, api).catch((error) => {
          pageErrors.push(`server: ${error}`);
          res.writeHead(500);
          res.end();
        });
      });
      await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
      origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      browser = await chromium.launch({ executablePath: CHROMIUM });
      mkdirSync(ARTIFACTS, { recursive: true });
    });

    afterAll(async () => {
      await browser?.close();
      server?.closeAllConnections();
      await new Promise((resolve) => server?.close(resolve));
      if (objectsDir) await rm(objectsDir, { recursive: true, force: true });
      expect(pageErrors).toEqual([]);
    });

    it("signs in through the hosted UI with PKCE, then follows the sweep live by polling", async () => {
      // Given: a signed-out browser opening a sweep's page
      const page = await openPage({ width: 1280, height: 900 });
      await page.goto(`${origin}/#/sweeps/${sweep.sweepId}`);

      // Then: it went through sign-in, came back to the same page without ?code=, and shows the grid
      await page.waitForSelector("canvas.grid-canvas[data-pending]");
      await page.waitForFunction(
        () => (document.querySelector("canvas.grid-canvas") as HTMLCanvasElement).dataset.pending === "3",
      );
      expect(tokenExchanges).toBe(1);
      expect(page.url()).toBe(`${origin}/#/sweeps/${sweep.sweepId}`);
      await page.waitForFunction(
        () => document.getElementById("connection")?.textContent === "live (polling)",
      );

      // When: an agent finishes a task
      const { store } = useStore();
      const now = Date.now();
      await store.updateTask(
        sweep.sweepId,
        1,
        sweep.shardCount,
        { status: "pending" },
        { status: "succeeded", attempt: 1, startedAt: now, finishedAt: now, exitCode: 0, updatedAt: now },
      );

      // Then: the grid turns it green within a couple of polls, and unchanged polls were 304s
      const before = polls;
      await page.waitForFunction(
        () => (document.querySelector("canvas.grid-canvas") as HTMLCanvasElement).dataset.succeeded === "1",
        undefined,
        { timeout: 10_000 },
      );
      expect(polls).toBeGreaterThan(before);
      expect(await gridCount(page, "pending")).toBe(2);
      // And: with nothing changing, the next poll costs a 304 with no body
      const unchanged = notModified;
      await page.waitForTimeout(2500);
      expect(notModified).toBeGreaterThan(unchanged);
      expect(await gridCount(page, "succeeded")).toBe(1);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-aws-desktop.png"), fullPage: true });
      await page.close();
    });

    it("posts a comment holding HTML and shows it as text; params holding HTML stay text too", async () => {
      const page = await openPage({ width: 390, height: 844 });
      await page.goto(`${origin}/#/sweeps/${sweep.sweepId}`);
      await page.waitForSelector("#comment-body");
      await page.waitForSelector("#results-table tbody tr:nth-child(3)");

      await page.fill("#comment-body", `lr too high? ${HTML}`);
      await page.click("text=Post comment");
      await page.waitForSelector(".comment-body");

      const state = await page.evaluate(() => ({
        pwned: (window as unknown as { pwned?: number }).pwned,
        imgs: document.querySelectorAll("main img").length,
        comment: document.querySelector(".comment-body")?.textContent ?? "",
        author: document.querySelector(".comment .muted")?.textContent ?? "",
        table: document.querySelector("#results-table")?.textContent ?? "",
      }));
      expect(state.pwned).toBeUndefined();
      expect(state.imgs).toBe(0);
      expect(state.comment).toBe(`lr too high? ${HTML}`);
      expect(state.author).toContain("first@example.com");
      expect(state.table).toContain(HTML);
      // Stored as sent, and listed again after a reload.
      await page.reload();
      await page.waitForSelector(".comment-body");
      expect(await page.textContent(".comment-body")).toBe(`lr too high? ${HTML}`);
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-aws-phone.png"), fullPage: true });
      await page.close();
    });

    it("runs the sweep again on a schedule from the schedules view", async () => {
      const page = await openPage({ width: 1280, height: 900 });
      await page.goto(`${origin}/#/schedules`);
      await page.waitForSelector("#sch-fromSweep");
      expect(await page.textContent("main")).toContain("spawn schedule create <spec> --provider aws");

      await page.fill("#sch-fromSweep", sweep.sweepId);
      await page.fill("#sch-expression", "0 3 * * *");
      await page.click("text=Create schedule");

      const row = await page.waitForSelector("tr[data-schedule]");
      expect(await row.textContent()).toContain("team default");
      expect(await row.textContent()).toContain("cron 0 3 * * *");
      const created = scheduler.commandCalls(CreateScheduleCommand);
      expect(created).toHaveLength(1);
      expect(created[0]!.args[0].input).toMatchObject({
        GroupName: "spawn-schedules",
        ScheduleExpression: "cron(0 3 * * ? *)",
      });
      await page.screenshot({ path: join(ARTIFACTS, "dashboard-aws-schedules.png"), fullPage: true });
      await page.close();
    });

    it("downloads an output through a short-lived presigned link, as an attachment, staying on the page", async () => {
      await new FileObjectStore(objectsDir).putBytes(`outputs/${sweep.sweepId}/0/report.html`, HTML);
      const page = await openPage({ width: 1280, height: 900 });
      // S3 as it answers a presigned GET with response-content-disposition (nothing leaves this machine).
      const s3Requests: string[] = [];
      await page.route(`https://${RESULTS_BUCKET}.s3.us-east-1.amazonaws.com/**`, (route) => {
        const url = new URL(route.request().url());
        s3Requests.push(url.href);
        return route.fulfill({
          status: 200,
          headers: {
            "content-type": url.searchParams.get("response-content-type") ?? "text/html",
            "content-disposition": url.searchParams.get("response-content-disposition") ?? "inline",
          },
          body: HTML,
        });
      });
      await page.goto(`${origin}/#/sweeps/${sweep.sweepId}`);
      await page.click("text=Download outputs");
      const link = await page.waitForSelector("text=task 0: report.html");

      const [download] = await Promise.all([page.waitForEvent("download"), link.click()]);

      expect(download.suggestedFilename()).toBe("report.html");
      const signed = new URL(s3Requests[0] ?? "");
      expect(signed.pathname).toBe(`/outputs/${sweep.sweepId}/0/report.html`);
      expect(signed.searchParams.get("X-Amz-Expires")).toBe(String(LINK_TTL_SECONDS));
      expect(page.url()).toBe(`${origin}/#/sweeps/${sweep.sweepId}`);
      expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
      await page.close();
    });
  },
);
