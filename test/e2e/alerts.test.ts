/**
 * Alerts through the real binary on the embedded default: the examples in docs/alerts.md run
 * as written, bad input writes nothing, and a failing sweep's alerts reach a webhook receiver
 * on loopback, signed, and the alert log. The receiver is a separate process, because the CLI
 * runs synchronously here and would stall a server in this one.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { type CliEnv, cliEnv, ROOT } from "../helpers/cli.js";

const dir = mkdtempSync(join(tmpdir(), "spawn-alerts-e2e-"));
const envs: CliEnv[] = [];
const fresh = () => {
  const env = cliEnv("spawn-alerts-e2e-");
  envs.push(env);
  return env;
};

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
}

let receiver: ChildProcess;
let hookBase = "";
const received = () =>
  existsSync(join(dir, "received.jsonl"))
    ? readFileSync(join(dir, "received.jsonl"), "utf8")
        .trim()
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Received)
    : [];

beforeAll(() => {
  const script = join(dir, "receiver.mjs");
  writeFileSync(
    script,
    `import { createServer } from "node:http";
import { appendFileSync, writeFileSync } from "node:fs";
const server = createServer((req, res) => {
  let body = "";
  req.on("data", (c) => (body += c));
  req.on("end", () => {
    appendFileSync(process.argv[2] + "/received.jsonl", JSON.stringify({ path: req.url, headers: req.headers, body }) + "\\n");
    res.end("ok");
  });
});
server.listen(0, "127.0.0.1", () => writeFileSync(process.argv[2] + "/port", String(server.address().port)));
`,
  );
  receiver = spawn(process.execPath, [script, dir], { stdio: "ignore" });
  waitFor(() => existsSync(join(dir, "port")), 10_000);
  hookBase = `http://127.0.0.1:${readFileSync(join(dir, "port"), "utf8")}`;
});

afterAll(() => {
  for (const env of envs) env.stop();
  if (receiver.pid) process.kill(receiver.pid);
});

/** A two-task sweep whose task 1 exits 3 once, with no retry: the sweep fails in a few seconds. */
function failingSpec(): string {
  const path = join(dir, "failing.yaml");
  writeFileSync(
    path,
    `name: alerts-e2e
command: sleep 3; exit {{code}}
params:
  list: [{ code: 0 }, { code: 3 }]
max_instances: 2
`,
  );
  return path;
}

function launch(cli: CliEnv, spec: string): string {
  return cli.json<{ sweepId: string }>(["sweep", "launch", spec]).sweepId;
}

/** Splits a command line as a POSIX shell would for the quoting the docs use ("…" and '…'). */
function words(line: string): string[] {
  const out: string[] = [];
  for (const m of line.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)) out.push(m[1] ?? m[2] ?? m[3]!);
  return out;
}

/** `$ spawn …  # exit N` lines of every ```sh block in docs/alerts.md, block by block. */
function examples(): Array<Array<{ args: string[]; exit: number; line: string }>> {
  const doc = readFileSync(join(ROOT, "docs", "alerts.md"), "utf8");
  return [...doc.matchAll(/```sh\n([\s\S]*?)```/g)].map((b) =>
    b[1]!
      .split("\n")
      .filter((l) => l.startsWith("$ spawn "))
      .map((line) => {
        const [command, comment] = line.slice(2).split(/\s+#\s*/);
        const exit = Number(/exit (\d+)/.exec(comment ?? "")?.[1] ?? 0);
        return { args: words(command!).slice(1), exit, line };
      }),
  );
}

describe("docs/alerts.md examples", () => {
  const blocks = examples();

  test("the doc has examples to run", () => {
    expect(blocks.flat().length).toBeGreaterThanOrEqual(12);
  });

  test.each(blocks.map((block, i) => [i, block] as const))(
    "block %i runs as documented",
    { timeout: 120_000 },
    (_i, block) => {
      const cli = fresh();
      const vars: Record<string, string> = { $HOOK: `${hookBase}/docs` };
      if (block.some((c) => c.args.includes("$SWEEP"))) vars.$SWEEP = launch(cli, failingSpec());
      for (const { args, exit, line } of block) {
        const r = cli.run(args.map((a) => vars[a] ?? a));
        expect({ line, code: r.code, stderr: r.stderr }).toEqual({
          line,
          code: exit,
          stderr: expect.any(String),
        });
        if (exit !== 0) expect(r.stderr).toMatch(/^error: /);
        vars.$SCHEDULE ??= /created (sch-\S+):/.exec(r.stdout)?.[1] as string;
        vars.$ALERT ??= /created (al-\S+):/.exec(r.stdout)?.[1] as string;
        for (const [k, v] of Object.entries(vars)) if (v === undefined) delete vars[k];
      }
      // Refused input wrote nothing.
      if (block.every((c) => c.exit !== 0)) expect(cli.json(["alerts", "list"])).toEqual([]);
      // What was deleted is gone.
      if (block.some((c) => c.args[1] === "delete"))
        expect(cli.json(["alerts", "list", "--copies"])).toEqual([]);
    },
  );
});

describe("a failing sweep's alerts", () => {
  test("reach the webhook signed, once per fact, and the alert log; history shows them", {
    timeout: 180_000,
  }, async () => {
    const cli = fresh();
    const sweepId = launch(cli, failingSpec());
    const created = cli.json<{ id: string; webhookSecret: string; on: string[] }>([
      "alerts",
      "create",
      sweepId,
      "--webhook",
      `${hookBase}/e2e/${sweepId}`,
      "--log",
      "--on",
      "failure,complete,task-failed",
    ]);
    expect(created.on).toEqual(["failure", "complete", "task-failed"]);
    expect(created.webhookSecret).toMatch(/^whsec_/);

    cli.run(["sweep", "status", sweepId, "--watch"], { timeoutMs: 120_000 });
    expect(cli.json<{ status: string }>(["sweep", "status", sweepId]).status).toBe("failed");
    waitFor(() => received().filter((r) => r.path === `/e2e/${sweepId}`).length >= 2, 30_000);

    const posts = received().filter((r) => r.path === `/e2e/${sweepId}`);
    const bodies = posts
      .map((p) => JSON.parse(p.body))
      .sort((a, b) => String(a.trigger).localeCompare(String(b.trigger)));
    // One notification per fact: the sweep failed, and its task 1 failed for good (the agent
    // that wrote the failure published it: ADR 0033). They can arrive in either order.
    expect(bodies).toHaveLength(2);
    expect(bodies[1]).toMatchObject({
      trigger: "task-failed",
      sweepId,
      event: { type: "TaskFailed", sweepId, taskIndex: 1, attempt: 1, exitCode: 3 },
    });
    expect(bodies[0]).toMatchObject({
      trigger: "failure",
      version: 1,
      title: "Sweep alerts-e2e failed",
      sweepId,
      counts: { tasks: 2, succeeded: 1, failed: 1 },
      event: { type: "SweepFailed", sweepId, failedTasks: [1] },
    });
    // The documented verifier accepts every delivery with the secret, and nothing else.
    const { verifySpawnSignature } = await import(pathToFileURL(docVerifier()).href);
    for (const post of posts) {
      expect(verifySpawnSignature(created.webhookSecret, post.body, post.headers["x-spawn-signature"])).toBe(
        true,
      );
      expect(verifySpawnSignature("whsec_wrong", post.body, post.headers["x-spawn-signature"])).toBe(false);
      expect(
        verifySpawnSignature(created.webhookSecret, `${post.body} `, post.headers["x-spawn-signature"]),
      ).toBe(false);
    }

    const history = cli.json<
      Array<{ trigger: string; outcome: string; channels: Array<{ kind: string; outcome: string }> }>
    >(["alerts", "history", sweepId]);
    expect(history.map((h) => [h.trigger, h.outcome]).sort()).toEqual([
      ["failure", "delivered"],
      ["task-failed", "delivered"],
    ]);
    for (const h of history)
      expect(h.channels).toEqual([
        expect.objectContaining({ kind: "webhook", outcome: "delivered" }),
        expect.objectContaining({ kind: "log", outcome: "delivered" }),
      ]);
    const log = readFileSync(join(cli.home, "alerts.log"), "utf8")
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l));
    expect(log.map((l) => l.trigger).sort()).toEqual(["failure", "task-failed"]);
    // Neither the webhook URL nor the secret is in the control plane's log.
    const serverLog = readFileSync(join(cli.home, "server.log"), "utf8");
    expect(serverLog).not.toContain(created.webhookSecret);
    expect(serverLog).not.toContain(`/e2e/${sweepId}`);

    expect(cli.run(["alerts", "delete", created.id]).code).toBe(0);
    expect(cli.run(["alerts", "delete", created.id]).code).toBe(3);
  });
});

/** The ```js verifier from docs/alerts.md, as a module file. */
function docVerifier(): string {
  const doc = readFileSync(join(ROOT, "docs", "alerts.md"), "utf8");
  const code = /```js\n([\s\S]*?)```/.exec(doc)?.[1];
  if (!code) throw new Error("docs/alerts.md has no ```js verifier");
  const path = join(dir, "verify.mjs");
  writeFileSync(path, code);
  return path;
}

function waitFor(condition: () => boolean, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}
