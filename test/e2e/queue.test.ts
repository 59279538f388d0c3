/**
 * Queues end to end on the embedded default, through the real CLI binary: a 50-job queue shaped as
 * two diamonds, with a flaky job, a doomed one and one that must not be retried. It checks the run
 * order against every dependency, the retries and the dead-letter list with its log tail, that an
 * agent killed with -9 mid-queue redoes no completed job (and its replacement fetches the results
 * of jobs it did not run), `queue retry --failed`, `queue results`, and that bad files create
 * nothing.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { type CliEnv, cliEnv, waitFor } from "../helpers/cli.js";

interface JobView {
  id: string;
  status: string;
  attempts: number;
  dependsOn: string[];
  error: string | null;
}
interface QueueJson {
  sweepId: string;
  status: string;
  jobs: JobView[];
  deadLetter: Array<{ id: string; attempts: number; error: string | null; logTail: string | null }>;
  instances: Array<{ status: string; providerRef: string | null }>;
}

let cli: CliEnv;
let dir: string;
let log: string;
beforeAll(() => {
  cli = cliEnv("spawn-queue-e2e-");
  dir = join(cli.home, "queue-src");
  mkdirSync(join(dir, "work"), { recursive: true });
  log = join(dir, "order.log");
});
afterAll(() => cli.stop());

/** A job that logs its start and end; `body` runs in between. */
const job = (id: string, depends_on: string[], body = "sleep 0.2", extra: Record<string, unknown> = {}) => ({
  id,
  command: `echo "${id} start" >> "$LOG"; ${body}; echo "${id} end" >> "$LOG"`,
  depends_on,
  ...extra,
});

function diamondQueue(): unknown {
  const a = Array.from({ length: 20 }, (_, i) => `a${String(i).padStart(2, "0")}`);
  const b = Array.from({ length: 20 }, (_, i) => `b${String(i).padStart(2, "0")}`);
  const jobs = [
    job("start", []),
    ...a.map((id) => job(id, ["start"])),
    job("mid", a, "mkdir -p data && echo from-mid > data/mid.txt", { result_paths: ["data/mid.txt"] }),
    // The second diamond reads what mid wrote: after the restart it runs on an agent that did not run mid.
    ...b.map((id) => job(id, ["mid"], "grep -q from-mid data/mid.txt && sleep 1")),
    job("end", b),
    // Fails once (exit 1), then succeeds on its second attempt.
    job("flaky", [], '[ -f "$STATE/flaky.once" ] || { touch "$STATE/flaky.once"; exit 1; }', {
      retry: { max_attempts: 3, backoff: "fixed", base: "200ms" },
    }),
    // Fails every attempt until $STATE/fixed exists: dead-lettered with its log tail.
    job("doomed", [], '[ -f "$STATE/fixed" ] || { echo "doomed: boom" >&2; exit 4; }', {
      retry: { max_attempts: 2, backoff: "exponential", base: "200ms", max_delay: "1s" },
    }),
    job("after-doomed", ["doomed"]),
    job("after-after", ["after-doomed"]),
    // Exit 2 is never retried, however many attempts are allowed.
    job("nope", [], '[ -f "$STATE/fixed" ] || exit 2', {
      retry: { max_attempts: 5, dont_retry_on_exit_codes: [2] },
    }),
    job("solo1", []),
    job("solo2", ["solo1"]),
  ];
  return {
    name: "dag50",
    workdir: "work",
    slots: 4,
    lease: "3s",
    grace: "1s",
    on_failure: "continue",
    env: { LOG: log, STATE: dir },
    jobs,
  };
}

/** `[job, "start" | "end"]` in the order they were written. */
const events = () =>
  readFileSync(log, "utf8")
    .trim()
    .split("\n")
    .map((line) => line.split(" ") as [string, "start" | "end"]);

const status = (id: string) => cli.json<QueueJson>(["queue", "status", id]);
const ended = (id: string) => {
  const s = status(id);
  return ["succeeded", "failed", "cancelled"].includes(s.status) ? s : undefined;
};

describe("a 50-job diamond queue with failing jobs", () => {
  let queueId: string;
  let completedBeforeKill: string[];

  it("runs in dependency order, retries, dead-letters, and survives its agent being killed", async () => {
    // Given
    const file = join(dir, "dag50.yaml");
    writeFileSync(file, YAML.stringify(diamondQueue()));
    const launched = cli.run(["queue", "launch", file, "--json"]);
    expect(launched.code, launched.stderr).toBe(0);
    queueId = (JSON.parse(launched.stdout) as { queueId: string }).queueId;

    // When: the agent is killed with -9 while the second diamond runs
    await waitFor("mid to finish", () =>
      existsSync(log) && events().some(([id, what]) => id === "mid" && what === "end") ? true : undefined,
    );
    const before = status(queueId);
    completedBeforeKill = before.jobs.filter((j) => j.status === "succeeded").map((j) => j.id);
    const pids = before.instances.filter((i) => i.status === "running").map((i) => Number(i.providerRef));
    expect(pids).toHaveLength(1);
    process.kill(pids[0]!, "SIGKILL");

    // Then: the queue ends failed (doomed and nope failed for good), with everything else done
    const final = await waitFor("the queue to end", () => ended(queueId), 150_000);
    expect(final.status).toBe("failed");
    expect(final.instances.length).toBeGreaterThanOrEqual(2);
    const jobs = new Map(final.jobs.map((j) => [j.id, j]));
    expect(jobs.size).toBe(50);
    const failed = ["doomed", "nope"];
    const cancelled = ["after-doomed", "after-after"];
    for (const [id, j] of jobs) {
      expect(j.status, id).toBe(
        failed.includes(id) ? "failed" : cancelled.includes(id) ? "cancelled" : "succeeded",
      );
    }

    // Order: every start comes after the end of each of the job's dependencies
    const seq = events();
    /** Positions in the log of `id`'s `what` lines. */
    const at = (id: string, what: "start" | "end") =>
      seq.flatMap(([j, w], i) => (j === id && w === what ? [i] : []));
    for (const j of jobs.values()) {
      if (j.status !== "succeeded") continue;
      for (const dep of j.dependsOn)
        expect(at(j.id, "start")[0], `${j.id} after ${dep}`).toBeGreaterThan(Math.max(...at(dep, "end")));
    }

    // The restart redid no completed job: each one completed before the kill ended once, and never
    // started again after that
    expect(completedBeforeKill).toEqual(expect.arrayContaining(["start", "mid", "a00", "a19"]));
    for (const id of completedBeforeKill) {
      const ends = at(id, "end");
      expect(ends, id).toHaveLength(1);
      expect(Math.max(...at(id, "start")), id).toBeLessThan(ends[0]!);
    }

    // Retries: flaky took two attempts; doomed used both of its; nope was not retried
    expect(jobs.get("flaky")!.attempts).toBe(2);
    expect(jobs.get("doomed")).toMatchObject({
      attempts: 2,
      error: "exited with code 4; gave up after 2 attempts",
    });
    expect(jobs.get("nope")).toMatchObject({
      attempts: 1,
      error: "exited with code 2; exit code 2 is in retry.dont_retry_on_exit_codes",
    });
    expect(jobs.get("after-after")!.error).toBe("not run: dependency after-doomed was cancelled");

    // Dead letters: the failed jobs, with the end of their last log
    expect(final.deadLetter.map((d) => d.id).sort()).toEqual(["doomed", "nope"]);
    expect(final.deadLetter.find((d) => d.id === "doomed")!.logTail).toContain("doomed: boom");
    const text = cli.run(["queue", "status", queueId]);
    expect(text.stdout).toContain("dead letter (2)");
    expect(text.stdout).toContain("| doomed: boom");
  }, 240_000);

  it("retries the failed jobs and their dependents only, then succeeds", async () => {
    writeFileSync(join(dir, "fixed"), "");
    await waitFor("the queue to wind down", () => {
      const r = cli.run(["queue", "retry", queueId, "--failed", "--json"]);
      return r.code === 0 ? (JSON.parse(r.stdout) as { reset: string[] }) : undefined;
    }).then((r) => expect(r.reset.sort()).toEqual(["after-after", "after-doomed", "doomed", "nope"]));
    const final = await waitFor("the retried queue to end", () => ended(queueId), 120_000);
    expect(final.status).toBe("succeeded");
    // Nothing that had succeeded ran again
    const seq = events();
    for (const id of ["start", "mid", "end", "flaky", "solo2"])
      expect(
        seq.filter(([j, w]) => j === id && w === "end"),
        id,
      ).toHaveLength(1);
  }, 150_000);

  it("downloads each job's results into its own directory", () => {
    const to = join(cli.home, "results");
    const r = cli.run(["queue", "results", queueId, "--to", to, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(join(to, "mid", "data", "mid.txt"), "utf8")).toBe("from-mid\n");
  });
});

describe("bad queue files", () => {
  const cases: Array<[string, string, RegExp]> = [
    [
      "cycle",
      "name: bad\njobs:\n  - id: a\n    command: x\n    depends_on: [b]\n  - id: b\n    command: x\n    depends_on: [a]\n",
      /line 5: jobs\[0\]\.depends_on: dependency cycle: a → b → a/,
    ],
    [
      "unknown",
      "name: bad\njobs:\n  - id: a\n    command: x\n    depends_on: [ghost]\n",
      /line 5: jobs\[0\]\.depends_on\[0\]: unknown job "ghost"/,
    ],
    [
      "duration",
      "name: bad\njobs:\n  - id: a\n    command: x\n    timeout: soon\n",
      /line 5: jobs\[0\]\.timeout: not a duration: "soon"/,
    ],
  ];
  it.each(cases)("%s: exit 2, the line named, nothing created", (name, text, message) => {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, text);
    const r = cli.run(["queue", "launch", file]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    const sweeps = cli.json<Array<{ name: string }>>(["sweep", "list"]);
    expect(sweeps.some((s) => s.name === "bad")).toBe(false);
  });
});
