import { describe, expect, it } from "vitest";
import { MissingEnvironmentError, requireEnv } from "./env.js";
import { lambdaLogger, redact } from "./logger.js";

describe("requireEnv", () => {
  it("returns the variables when all are set", () => {
    expect(requireEnv(["A", "B"], { A: "1", B: "2", C: "3" })).toEqual({ A: "1", B: "2" });
  });

  it("fails naming every missing (or empty) variable", () => {
    expect(() => requireEnv(["A", "B", "C"], { B: "x", C: "" })).toThrow(
      new MissingEnvironmentError(
        "missing environment variable(s) A, C: the stack sets them; redeploy with `spawn deploy`",
      ),
    );
  });
});

describe("lambda logger", () => {
  it("writes JSON lines with the function and correlation keys, and never a secret-looking field", () => {
    const lines: string[] = [];
    const log = lambdaLogger("fn", (l) => lines.push(l)).child({ requestId: "r1", sweepId: "s1" });
    log.info("hello", { instanceId: "i1", sessionToken: "abc", nested: { Authorization: "AWS4 x", ok: 1 } });
    const line = JSON.parse(lines[0] ?? "{}");
    expect(line).toMatchObject({
      level: "info",
      msg: "hello",
      fn: "fn",
      requestId: "r1",
      sweepId: "s1",
      instanceId: "i1",
      sessionToken: "[redacted]",
      nested: { Authorization: "[redacted]", ok: 1 },
    });
    expect(lines[0]).not.toContain("abc");
  });

  it("redact leaves other values alone", () => {
    expect(redact({ a: [1, { password: "p" }], b: "x" })).toEqual({
      a: [1, { password: "[redacted]" }],
      b: "x",
    });
  });
});
