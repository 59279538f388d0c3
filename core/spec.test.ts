import { describe, expect, test } from "vitest";
import { AbortError } from "./errors.js";
import { parseSpec, SpecError, specJsonSchema } from "./spec.js";

const minimal = { name: "lr-sweep", command: "python train.py --lr {{lr}}" };

/** The issues parseSpec reports, or fails the test if it accepts the spec. */
function issuesOf(
  raw: unknown,
  overrides: Array<[string, unknown]> = [],
): Array<{ path: string; message: string }> {
  try {
    parseSpec(raw, overrides);
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    return (error as SpecError).issues;
  }
  throw new Error(`spec was accepted: ${JSON.stringify(raw)}`);
}

describe("parseSpec: defaults", () => {
  test("a minimal spec gets every default, durations in milliseconds", () => {
    // Given a spec with only name and command
    // When it is parsed
    const spec = parseSpec(minimal);
    // Then the defaults are applied and durations are milliseconds
    expect(spec.lease).toBe(60_000);
    expect(spec.ttl).toBe(86_400_000);
    expect(spec.grace).toBe(90_000);
    expect(spec.idle_timeout).toBe(300_000);
    expect(spec.setup_timeout).toBe(600_000);
    expect(spec.retry).toEqual({ max_attempts: 1, backoff: "exponential", base: 10_000, max_delay: 600_000 });
    expect(spec.resources).toMatchObject({ gpus: 0, spot: true });
    expect(spec.max_instances).toBe(1);
    expect(spec.repeat).toBe(1);
    expect(spec.workdir).toBe(".");
    expect(spec.env).toEqual({});
    expect(spec.outputs).toEqual([]);
    expect(spec.timeout).toBeUndefined();
  });

  test("a partial nested block still gets the defaults of its other fields", () => {
    // Given a retry block with only max_attempts
    // When it is parsed
    const spec = parseSpec({ ...minimal, retry: { max_attempts: 4 } });
    // Then base and max_delay are the defaults, in ms
    expect(spec.retry).toEqual({ max_attempts: 4, backoff: "exponential", base: 10_000, max_delay: 600_000 });
  });
});

describe("parseSpec: durations", () => {
  test.each([
    ["90s", 90_000],
    ["1h30m", 5_400_000],
    ["2h", 7_200_000],
    [45, 45_000],
    ["500ms", 500],
  ] as const)("timeout %j is %d ms", (text, ms) => {
    // Given a duration field written as text or seconds
    // When the spec is parsed
    const spec = parseSpec({ ...minimal, timeout: text, retry: { base: text } });
    // Then it is milliseconds, at the top level and nested
    expect(spec.timeout).toBe(ms);
    expect(spec.retry.base).toBe(ms);
  });

  test("a bad duration names its path", () => {
    // Given bad durations at the top level and nested
    // When the spec is parsed
    const issues = issuesOf({ ...minimal, lease: "abc", retry: { max_delay: "10 minutes" } });
    // Then each issue names the field and says it is not a duration
    expect(issues).toContainEqual({
      path: "lease",
      message: expect.stringContaining('not a duration: "abc"'),
    });
    expect(issues).toContainEqual({
      path: "retry.max_delay",
      message: expect.stringContaining('not a duration: "10 minutes"'),
    });
  });

  test("a negative or non-scalar duration names its path", () => {
    // Given a negative number and a boolean as durations
    // When the spec is parsed
    const issues = issuesOf({ ...minimal, ttl: -5, grace: true });
    // Then both fields are reported with what was expected
    expect(issues.map((i) => i.path).sort()).toEqual(["grace", "ttl"]);
    expect(issues.find((i) => i.path === "grace")?.message).toBe("expected number or string");
    expect(issues.find((i) => i.path === "ttl")?.message).toMatch(/>=0/);
  });
});

describe("parseSpec: validation errors", () => {
  test("unknown keys are reported at the root and nested as `<path>: unknown key`", () => {
    // Given a typo at the root and one inside resources
    // When the spec is parsed
    const issues = issuesOf({ ...minimal, comand: "x", resources: { gpuz: 1 } });
    // Then both are reported with their dotted paths
    expect(issues).toContainEqual({ path: "comand", message: "unknown key" });
    expect(issues).toContainEqual({ path: "resources.gpuz", message: "unknown key" });
  });

  test("out-of-range values name their paths", () => {
    // Given three out-of-range values
    // When the spec is parsed
    const issues = issuesOf({
      ...minimal,
      max_instances: 0,
      resources: { gpus: 1.5 },
      retry: { max_attempts: 0 },
    });
    // Then every one is reported with its path
    const paths = issues.map((i) => i.path).sort();
    expect(paths).toEqual(["max_instances", "resources.gpus", "retry.max_attempts"]);
    expect(issues.find((i) => i.path === "max_instances")?.message).toMatch(/>=1/);
    expect(issues.find((i) => i.path === "resources.gpus")?.message).toBe(
      "GPUs per task are 0.25, 0.5 or a whole number, got 1.5",
    );
    expect(issues.find((i) => i.path === "retry.max_attempts")?.message).toMatch(/>=1/);
  });

  test("array elements are named with an index", () => {
    // Given a bad instance type in the second position
    // When the spec is parsed
    const issues = issuesOf({ ...minimal, resources: { instance_types: ["g5.xlarge", "G5 XL"] } });
    // Then the path has the index
    expect(issues).toEqual([
      {
        path: "resources.instance_types[1]",
        message: "an EC2 instance type such as g5.xlarge, or a glob such as g6.* or p5*",
      },
    ]);
  });

  test("a union field reports the branch that got furthest, not `invalid input`", () => {
    // Given a range with one number instead of two or three
    // When the spec is parsed
    const issues = issuesOf({ ...minimal, params: { grid: { x: { range: [1] } } } });
    // Then the issue is about the range of x, saying what was wrong
    expect(issues).toHaveLength(1);
    expect(issues[0]?.path).toMatch(/^params\.grid\.x/);
    expect(issues[0]?.path).toBe("params.grid.x.range");
    expect(issues[0]?.message).toMatch(/>=2/);
    expect(issues[0]?.message).not.toMatch(/invalid input/i);
  });

  test("a union field of the wrong type lists the types it accepts", () => {
    // Given an axis that is a string
    // When the spec is parsed
    const issues = issuesOf({ ...minimal, params: { grid: { x: "abc" } } });
    // Then it says which types are accepted
    expect(issues).toEqual([{ path: "params.grid.x", message: "expected array or object" }]);
  });

  test("a missing required field is named", () => {
    // Given a spec without command
    // When it is parsed
    const issues = issuesOf({ name: "x" });
    // Then command is named
    expect(issues.map((i) => i.path)).toEqual(["command"]);
  });

  test.each([null, [], "name: x", 42])("a spec that is not a mapping (%j) is a root issue", (raw) => {
    // Given something that is not an object
    // When it is parsed
    const issues = issuesOf(raw);
    // Then one root issue says what a spec is
    expect(issues).toEqual([{ path: "", message: expect.stringContaining("mapping") }]);
  });

  test("SpecError is an AbortError with exit code 2 that lists every issue", () => {
    // Given a spec with several problems
    let caught: unknown;
    // When it is parsed
    try {
      parseSpec({ ...minimal, max_instances: 0, lease: "abc", bogus: 1 }, [], "spec.yaml");
    } catch (error) {
      caught = error;
    }
    // Then the error is a SpecError / AbortError, exit code 2, with a hint and every issue in the message
    expect(caught).toBeInstanceOf(SpecError);
    expect(caught).toBeInstanceOf(AbortError);
    const error = caught as SpecError;
    expect(error.exitCode).toBe(2);
    expect(error.name).toBe("SpecError");
    expect(error.issues).toHaveLength(3);
    expect(error.message).toContain("invalid spec spec.yaml");
    for (const issue of error.issues) expect(error.message).toContain(`${issue.path}: ${issue.message}`);
    expect(error.hint).toContain("spawn schema");
  });
});

describe("parseSpec: --set overrides", () => {
  test("an override creates nested objects and still gets defaults", () => {
    // Given a spec without a retry block
    // When retry.max_attempts is set
    const spec = parseSpec(minimal, [["retry.max_attempts", 3]]);
    // Then the retry block exists with that value and the defaults
    expect(spec.retry).toEqual({ max_attempts: 3, backoff: "exponential", base: 10_000, max_delay: 600_000 });
  });

  test("numeric path segments index arrays", () => {
    // Given a spec with lists
    const raw = {
      ...minimal,
      params: { grid: { lr: [0.1, 0.01] } },
      resources: { instance_types: ["g5.xlarge"] },
    };
    // When elements are replaced and appended by index
    const spec = parseSpec(raw, [
      ["params.grid.lr.1", 0.5],
      ["resources.instance_types.1", "g5.2xlarge"],
    ]);
    // Then the arrays hold the new values (arrays, not objects)
    expect(spec.params?.grid?.lr).toEqual([0.1, 0.5]);
    expect(spec.resources.instance_types).toEqual(["g5.xlarge", "g5.2xlarge"]);
  });

  test("a numeric segment under a missing field creates a list, not a mapping", () => {
    // Given a spec without outputs
    // When an element is set by index
    const spec = parseSpec(minimal, [["outputs.0", "results/*.json"]]);
    // Then outputs is a list holding it
    expect(spec.outputs).toEqual(["results/*.json"]);
  });

  test("overrides do not mutate the caller's object", () => {
    // Given a raw spec
    const raw = { ...minimal, retry: { max_attempts: 2 } };
    // When it is parsed with an override
    parseSpec(raw, [["retry.max_attempts", 5]]);
    // Then the raw object is unchanged
    expect(raw.retry.max_attempts).toBe(2);
  });

  test.each(["__proto__.polluted", "retry.__proto__.polluted", "constructor.prototype.polluted", "", "..."])(
    "the path %j is rejected and nothing is polluted",
    (path) => {
      // Given a malicious or empty path
      // When it is used as an override
      // Then parseSpec throws an AbortError about --set, exit 2
      let caught: unknown;
      try {
        parseSpec(minimal, [[path, "yes"]]);
      } catch (error) {
        caught = error;
      }
      expect(caught).toBeInstanceOf(AbortError);
      expect(caught).not.toBeInstanceOf(SpecError);
      expect((caught as AbortError).message).toContain("--set");
      expect((caught as AbortError).exitCode).toBe(2);
      // And Object.prototype is untouched
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    },
  );

  test("overrides apply before validation: a --set can make an invalid spec valid", () => {
    // Given a spec missing command and with max_instances 0
    const raw = { name: "x", max_instances: 0 };
    // When command and max_instances are set
    const spec = parseSpec(raw, [
      ["command", "echo hi"],
      ["max_instances", 4],
    ]);
    // Then the result is valid with those values
    expect(spec.command).toBe("echo hi");
    expect(spec.max_instances).toBe(4);
  });

  test("overrides apply before validation: a --set can make a valid spec invalid", () => {
    // Given a valid spec
    // When a bad value is set
    const issues = issuesOf(minimal, [
      ["max_instances", 0],
      ["retry.backoff", "linear"],
    ]);
    // Then validation names the overridden paths
    expect(issues.map((i) => i.path).sort()).toEqual(["max_instances", "retry.backoff"]);
  });
});

describe("specJsonSchema", () => {
  test("is a closed JSON schema of the input, with command and name required", () => {
    // Given the schema
    // When it is generated
    const schema = specJsonSchema();
    // Then it is a JSON object schema, closed at the root and nested, with the required fields
    expect(schema.type).toBe("object");
    expect(String(schema.$schema)).toContain("json-schema.org");
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(expect.arrayContaining(["command", "name"]));
    // Fields with defaults are optional in what users write
    expect(schema.required).not.toContain("lease");
    const properties = schema.properties as Record<string, Record<string, unknown>>;
    expect(Object.keys(properties)).toEqual(
      expect.arrayContaining(["command", "params", "retry", "resources", "ttl"]),
    );
    expect(properties.resources?.additionalProperties).toBe(false);
    // And it survives JSON serialization
    expect(JSON.parse(JSON.stringify(schema))).toEqual(schema);
  });
});

describe("parseSpec: resources for placement", () => {
  test("defaults: no gpu name, no excludes, no fallback, 3 preemptions, no grants", () => {
    // Given a spec without resources
    // When it is parsed
    const { resources } = parseSpec(minimal);
    // Then placement gets its defaults
    expect(resources).toEqual({
      gpus: 0,
      exclude_instance_types: [],
      spot: true,
      on_demand_fallback: false,
      fallback_after_preemptions: 3,
      efa: false,
      iam: [],
    });
  });

  test.each([0, 0.25, 0.5, 1, 8])("gpus %d per task is accepted", (gpus) => {
    expect(parseSpec({ ...minimal, resources: { gpus } }).resources.gpus).toBe(gpus);
  });

  test.each([0.3, 0.75, 1.5, -1, 65])("gpus %d per task is an error naming resources.gpus", (gpus) => {
    const issues = issuesOf({ ...minimal, resources: { gpus } });
    expect(issues.map((i) => i.path)).toEqual(["resources.gpus"]);
  });

  test("gpu takes one name or a list, and always reads back as a list", () => {
    expect(parseSpec({ ...minimal, resources: { gpu: "H100" } }).resources.gpu).toEqual(["H100"]);
    expect(parseSpec({ ...minimal, resources: { gpu: ["l4", "A10G"] } }).resources.gpu).toEqual([
      "l4",
      "A10G",
    ]);
    expect(issuesOf({ ...minimal, resources: { gpu: [] } }).map((i) => i.path)).toEqual(["resources.gpu"]);
  });

  test("instance type lists take exact names and globs; a bare family is an error", () => {
    // Given globs in both lists
    const { resources } = parseSpec({
      ...minimal,
      resources: { instance_types: ["g6.*", "p5*", "g5.xlarge"], exclude_instance_types: ["*.metal"] },
    });
    // Then they are kept as written
    expect(resources.instance_types).toEqual(["g6.*", "p5*", "g5.xlarge"]);
    expect(resources.exclude_instance_types).toEqual(["*.metal"]);
    // And a family without a size or a wildcard matches nothing, so it is rejected
    expect(issuesOf({ ...minimal, resources: { exclude_instance_types: ["g5"] } })).toEqual([
      {
        path: "resources.exclude_instance_types[0]",
        message: "an EC2 instance type such as g5.xlarge, or a glob such as g6.* or p5*",
      },
    ]);
  });

  test("a bad iam grant is reported with its index; good ones are kept", () => {
    // Given one good grant and two bad ones
    const issues = issuesOf({
      ...minimal,
      resources: { iam: ["s3:read:my-bucket/data", "s3:read:my-bucket", "ec2:all:*"] },
    });
    // Then each bad one is named by its position, with how to write it
    expect(issues.map((i) => i.path)).toEqual(["resources.iam[1]", "resources.iam[2]"]);
    expect(issues[0]?.message).toContain("write s3:read:my-bucket/<prefix>, or s3:read:my-bucket/* ");
    expect(issues[1]?.message).toMatch(/^unknown grant "ec2:all:\*"/);
  });

  test("the stored spec re-parses to itself (records keep the spec as JSON)", () => {
    // Given a spec using every placement field
    const spec = parseSpec({
      ...minimal,
      resources: {
        gpus: 0.5,
        gpu: "L4",
        instance_types: ["g6.*"],
        on_demand_fallback: true,
        fallback_after_preemptions: 5,
        iam: ["dynamodb:read:results"],
      },
    });
    // When its resources go through JSON and back
    const again = parseSpec({ ...minimal, resources: JSON.parse(JSON.stringify(spec.resources)) });
    // Then nothing changes
    expect(again.resources).toEqual(spec.resources);
  });
});
