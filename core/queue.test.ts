import { describe, expect, test } from "vitest";
import { parseQueueText } from "#cli/services/queue.js";
import { findCycle, parseQueue, QueueError, topologicalOrder, withDependents } from "./queue.js";

/** The issues a queue is rejected with, or fails the test if it is accepted. */
function issuesOf(text: string): Array<{ path: string; message: string; line?: number }> {
  try {
    parseQueueText(text, "q.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(QueueError);
    return (error as QueueError).issues;
  }
  throw new Error("the queue was accepted");
}

const job = (id: string, ...deps: string[]) => ({ id, command: `echo ${id}`, depends_on: deps });

describe("parseQueue", () => {
  test("a diamond validates with defaults applied, durations in ms", () => {
    // Given a diamond: a → (b, c) → d
    const queue = parseQueue({
      name: "diamond",
      global_timeout: "1h",
      jobs: [
        job("a"),
        {
          ...job("b", "a"),
          retry: { max_attempts: 3, backoff: "exponential-jitter", base: "2s", retry_on_exit_codes: [1] },
        },
        { ...job("c", "a"), timeout: "90s", result_paths: ["out/*.json"] },
        job("d", "b", "c"),
      ],
    });
    // Then the defaults and units are applied
    expect(queue.on_failure).toBe("stop");
    expect(queue.slots).toBe(1);
    expect(queue.global_timeout).toBe(3_600_000);
    expect(queue.jobs[1]!.retry).toMatchObject({
      max_attempts: 3,
      backoff: "exponential-jitter",
      base: 2000,
      max_delay: 600_000,
    });
    expect(queue.jobs[2]!.timeout).toBe(90_000);
    expect(queue.jobs[0]!.retry.max_attempts).toBe(1);
  });

  test("retry_on and dont_retry_on may not share an exit code", () => {
    expect(() =>
      parseQueue({
        name: "q",
        jobs: [{ ...job("a"), retry: { retry_on_exit_codes: [1, 2], dont_retry_on_exit_codes: [2] } }],
      }),
    ).toThrow("jobs[0].retry.dont_retry_on_exit_codes: exit code(s) 2 are also in retry_on_exit_codes");
  });
});

describe("graph checks name the job and its line", () => {
  test("a cycle is named in dependency order", () => {
    const issues = issuesOf(`name: q
jobs:
  - id: prep
    command: echo prep
  - id: train
    command: echo train
    depends_on: [prep, eval]
  - id: eval
    command: echo eval
    depends_on: [train]
`);
    expect(issues).toEqual([
      { path: "jobs[1].depends_on", message: "dependency cycle: train → eval → train", line: 7 },
    ]);
  });

  test("unknown and self dependencies and duplicate ids are all reported, each on its line", () => {
    const issues = issuesOf(`name: q
jobs:
  - id: a
    command: echo
  - id: b
    command: echo
    depends_on:
      - a
      - nope
      - b
  - id: a
    command: again
`);
    expect(issues).toEqual([
      { path: "jobs[2].id", message: 'duplicate job id "a" (also jobs[0])', line: 11 },
      { path: "jobs[1].depends_on[1]", message: 'unknown job "nope"', line: 9 },
      { path: "jobs[1].depends_on[2]", message: "job b depends on itself", line: 10 },
    ]);
  });

  test("bad durations, unknown keys and a bad on_failure name their field and line", () => {
    const issues = issuesOf(`name: q
on_failure: halt
global_timeout: forever
jobs:
  - id: a
    command: echo
    timeout: 5 minutes
    retries: 3
`);
    expect(issues).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ path: "on_failure", line: 2 }),
        expect.objectContaining({
          path: "global_timeout",
          message: expect.stringContaining("not a duration"),
          line: 3,
        }),
        expect.objectContaining({ path: "jobs[0].timeout", line: 7 }),
        expect.objectContaining({ path: "jobs[0].retries", message: "unknown key", line: 8 }),
      ]),
    );
  });

  test("YAML syntax errors and an empty job list are errors", () => {
    expect(() => parseQueueText("name: [", "q.yaml")).toThrow("q.yaml:");
    expect(issuesOf("name: q\njobs: []\n")[0]).toMatchObject({ path: "jobs", line: 2 });
  });
});

describe("graph helpers", () => {
  const diamond = [job("d", "b", "c"), job("b", "a"), job("c", "a"), job("a"), job("e")];

  test("topological order puts every job after its dependencies, ties in file order", () => {
    expect(topologicalOrder(diamond)).toEqual(["a", "e", "b", "c", "d"]);
  });

  test("findCycle finds none in a DAG, and a long one when it closes", () => {
    expect(findCycle(diamond)).toBeUndefined();
    expect(findCycle([job("x", "z"), job("y", "x"), job("z", "y")])).toEqual(["x", "z", "y", "x"]);
  });

  test("withDependents closes over everything downstream", () => {
    expect([...withDependents(diamond, ["b"])].sort()).toEqual(["b", "d"]);
    expect([...withDependents(diamond, ["a"])].sort()).toEqual(["a", "b", "c", "d"]);
  });
});
