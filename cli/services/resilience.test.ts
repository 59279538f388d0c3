import { describe, expect, it } from "vitest";
import { AbortError } from "../../core/errors.js";
import { parseSpec } from "../../core/spec.js";
import { chaosOverrides, checkSpecForProvider } from "./resilience.js";

describe("--chaos", () => {
  it("becomes spec overrides, and a bad value is a usage error naming it", () => {
    expect(chaosOverrides("preempt=0.3,kill=0.1")).toEqual(["chaos.preempt=0.3", "chaos.kill=0.1"]);
    expect(() => chaosOverrides("preempt=2")).toThrow(/--chaos: .*"preempt=2"/);
    expect(() => chaosOverrides("explode=1")).toThrow(AbortError);
    expect(() => chaosOverrides("")).toThrow(AbortError);
  });
});

describe("checkSpecForProvider", () => {
  it("refuses network: allowlist and chaos mode where they cannot be honoured", () => {
    const allow = parseSpec({ name: "a", command: "true", network: "allowlist", allowlist: ["10.0.0.0/8"] });
    expect(() => checkSpecForProvider(allow, "local")).toThrow(/only on aws/);
    expect(() => checkSpecForProvider(allow, "aws")).not.toThrow();
    const chaos = parseSpec({ name: "c", command: "true", chaos: { preempt: 0.5 } });
    expect(() => checkSpecForProvider(chaos, "aws")).toThrow(/chaos mode runs on the embedded default/);
    expect(() => checkSpecForProvider(chaos, "local")).not.toThrow();
  });
});
