import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { axisValues, canonicalJson, expandParams, MAX_TASKS } from "./params.js";
import { ParamsSpec, SpecError, type SpecIssue } from "./spec.js";

/** The issues of the SpecError `fn` throws; fails the test if it throws anything else or nothing. */
function issuesOf(fn: () => unknown): SpecIssue[] {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(SpecError);
    return (error as SpecError).issues;
  }
  throw new Error("expected a SpecError, nothing was thrown");
}

const paramsOf = (spec: Parameters<typeof expandParams>[0], repeat?: number) =>
  expandParams(spec, repeat).map((t) => t.params);

describe("expandParams: blocks", () => {
  it("gives exactly one task with empty params when there are no params", () => {
    // Given no params at all, or an empty params block
    for (const spec of [undefined, {}]) {
      // When expanded
      const tasks = expandParams(spec);
      // Then there is one task with {} and a well-formed id
      expect(tasks).toHaveLength(1);
      expect(tasks[0]!.params).toEqual({});
      expect(tasks[0]!.index).toBe(0);
      expect(tasks[0]!.taskId).toMatch(/^t[0-9a-f]{12}$/);
    }
  });

  it("walks a grid with the last axis varying fastest", () => {
    const params = paramsOf({ grid: { a: [1, 2], b: ["x", "y", "z"] } });
    expect(params).toEqual([
      { a: 1, b: "x" },
      { a: 1, b: "y" },
      { a: 1, b: "z" },
      { a: 2, b: "x" },
      { a: 2, b: "y" },
      { a: 2, b: "z" },
    ]);
  });

  it("numbers tasks 0..n-1 in order", () => {
    const tasks = expandParams({ grid: { a: [1, 2, 3], b: [1, 2], c: [1, 2] } });
    expect(tasks).toHaveLength(12);
    expect(tasks.map((t) => t.index)).toEqual([...Array(12).keys()]);
  });

  it("walks zip axes together", () => {
    const params = paramsOf({ zip: { model: ["small", "large"], lr: [0.1, 0.01] } });
    expect(params).toEqual([
      { model: "small", lr: 0.1 },
      { model: "large", lr: 0.01 },
    ]);
  });

  it("rejects zip axes of different lengths, naming the axis and both lengths", () => {
    const issues = issuesOf(() => expandParams({ zip: { a: [1, 2, 3], b: { range: [0, 4] } } }));
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe("params.zip.b");
    expect(issues[0]!.message).toContain("4");
    expect(issues[0]!.message).toContain("3");
    expect(issues[0]!.message).toContain("params.zip.a");
  });

  it("crosses grid with list, list varying fastest, and keeps each entry's own keys", () => {
    const params = paramsOf({
      grid: { seed: [1, 2] },
      list: [{ opt: "sgd", momentum: 0.9 }, { opt: "adam" }],
    });
    expect(params).toEqual([
      { seed: 1, opt: "sgd", momentum: 0.9 },
      { seed: 1, opt: "adam" },
      { seed: 2, opt: "sgd", momentum: 0.9 },
      { seed: 2, opt: "adam" },
    ]);
  });

  it("orders blocks grid, zip, list, random whatever order they are written in", () => {
    const spec = {
      random: { count: 2, seed: 1, space: { r: { choice: ["p", "q"] } } },
      list: [{ l: 1 }, { l: 2 }],
      zip: { z: [1, 2] },
      grid: { g: [1, 2] },
    };
    const params = paramsOf(spec);
    expect(params).toHaveLength(16);
    // grid slowest, random fastest
    expect(params.map((p) => p.g)).toEqual([...Array(8).fill(1), ...Array(8).fill(2)]);
    expect(params.slice(0, 8).map((p) => p.z)).toEqual([1, 1, 1, 1, 2, 2, 2, 2]);
    expect(params.slice(0, 4).map((p) => p.l)).toEqual([1, 1, 2, 2]);
    const draws = params.slice(0, 2).map((p) => p.r);
    expect(params.map((p) => p.r)).toEqual(Array(8).fill(draws).flat());
  });

  it("accepts a spec as parsed by the zod schema (random seed defaulted)", () => {
    const spec = ParamsSpec.parse({
      grid: { a: { range: [0, 3] } },
      random: { count: 2, space: { x: { int: [0, 9] } } },
    });
    const tasks = expandParams(spec);
    expect(tasks).toHaveLength(6);
    expect(tasks.map((t) => t.params.a)).toEqual([0, 0, 1, 1, 2, 2]);
  });
});

describe("expandParams: random", () => {
  const space = {
    u: { uniform: [-1, 1] as [number, number] },
    lr: { loguniform: [1e-5, 1e-1] as [number, number] },
    n: { int: [1, 3] as [number, number] },
    c: { choice: ["a", { deep: [1] }, 3] },
  };

  it("gives the same draws for the same seed and different draws for another seed", () => {
    const a = paramsOf({ random: { count: 50, seed: 7, space } });
    const b = paramsOf({ random: { count: 50, seed: 7, space } });
    const c = paramsOf({ random: { count: 50, seed: 8, space } });
    expect(a).toEqual(b);
    expect(a.map((p) => p.u)).not.toEqual(c.map((p) => p.u));
    expect(new Set(a.map((p) => p.u)).size).toBe(50);
  });

  it("keeps draws stable across releases (pinned values)", () => {
    // A change here changes every random sweep's tasks; only accept it deliberately.
    const [first] = paramsOf({ random: { count: 1, seed: 42, space: { u: { uniform: [0, 1] } } } });
    expect(first!.u).toBe(0.6011037487409305);
  });

  it("respects bounds for every distribution, int bounds inclusive", () => {
    const params = paramsOf({ random: { count: 2000, seed: 3, space } });
    for (const p of params) {
      expect(p.u).toBeGreaterThanOrEqual(-1);
      expect(p.u).toBeLessThanOrEqual(1);
      expect(p.lr).toBeGreaterThanOrEqual(1e-5);
      expect(p.lr).toBeLessThanOrEqual(1e-1);
      expect(Number.isInteger(p.n)).toBe(true);
    }
    expect(new Set(params.map((p) => p.n))).toEqual(new Set([1, 2, 3]));
    expect(new Set(params.map((p) => JSON.stringify(p.c)))).toEqual(new Set(['"a"', '{"deep":[1]}', "3"]));
  });

  it("spreads loguniform draws over the decades", () => {
    const params = paramsOf({ random: { count: 4000, seed: 11, space: { lr: { loguniform: [1e-4, 1] } } } });
    const decades = new Set(params.map((p) => Math.floor(Math.log10(p.lr as number))));
    // Each of the 4 decades gets about a quarter; a plain uniform draw would put ~90% in the top one.
    expect(decades).toEqual(new Set([-4, -3, -2, -1]));
    const bottom = params.filter((p) => (p.lr as number) < 1e-3).length;
    expect(bottom).toBeGreaterThan(800);
    expect(bottom).toBeLessThan(1200);
  });

  it("handles equal bounds and rejects a lower bound above the upper", () => {
    expect(paramsOf({ random: { count: 3, seed: 0, space: { x: { int: [4, 4] } } } })).toEqual([
      { x: 4 },
      { x: 4 },
      { x: 4 },
    ]);
    const issues = issuesOf(() =>
      expandParams({ random: { count: 1, seed: 0, space: { lr: { uniform: [1, 0.5] } } } }),
    );
    expect(issues[0]!.path).toBe("params.random.space.lr");
    expect(issues[0]!.message).toContain("1");
    expect(issues[0]!.message).toContain("0.5");
  });
});

describe("axisValues", () => {
  it("rounds float ranges: [0, 1, 0.1] gives ten values, 0.3 exact, ending at 0.9", () => {
    const values = axisValues({ range: [0, 1, 0.1] }, "params.grid.x");
    expect(values).toHaveLength(10);
    expect(values[3]).toBe(0.3);
    expect(values.at(-1)).toBe(0.9);
    expect(values).toEqual([0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]);
  });

  it("gives integer ranges with step 1 by default, stop excluded", () => {
    expect(axisValues({ range: [2, 6] }, "p")).toEqual([2, 3, 4, 5]);
    expect(axisValues({ range: [0, 10, 3] }, "p")).toEqual([0, 3, 6, 9]);
  });

  it("counts down with a negative step and reaches exact zero", () => {
    expect(axisValues({ range: [5, 0, -2] }, "p")).toEqual([5, 3, 1]);
    expect(axisValues({ range: [0.3, -0.3, -0.1] }, "p")).toEqual([0.3, 0.2, 0.1, 0, -0.1, -0.2]);
  });

  it("rejects a zero step and a step that never reaches stop", () => {
    const zero = issuesOf(() => axisValues({ range: [0, 1, 0] }, "params.grid.x"));
    expect(zero[0]).toMatchObject({ path: "params.grid.x" });
    expect(zero[0]!.message).toContain("step 0");
    const away = issuesOf(() => axisValues({ range: [0, 10, -1] }, "params.grid.x"));
    expect(away[0]!.message).toContain("[0, 10, -1]");
    expect(issuesOf(() => axisValues({ range: [3, 3] }, "p"))[0]!.message).toContain("no values");
  });

  it("rejects an axis with more than MAX_TASKS values without building it", () => {
    const issues = issuesOf(() => axisValues({ range: [0, 1e12] }, "params.grid.big"));
    expect(issues[0]!.path).toBe("params.grid.big");
    expect(issues[0]!.message).toContain("1,000,000");
  });

  it("gives linspace with both ends included", () => {
    expect(axisValues({ linspace: [0, 1, 5] }, "p")).toEqual([0, 0.25, 0.5, 0.75, 1]);
    expect(axisValues({ linspace: [0, 1, 11] }, "p")[3]).toBe(0.3);
    expect(axisValues({ linspace: [2, 9, 1] }, "p")).toEqual([2]);
  });

  it("gives logspace in base 10 by default, or another base", () => {
    expect(axisValues({ logspace: [-3, 0, 4] }, "p")).toEqual([0.001, 0.01, 0.1, 1]);
    expect(axisValues({ logspace: [0, 4, 5, 2] }, "p")).toEqual([1, 2, 4, 8, 16]);
    const half = axisValues({ logspace: [0, 1, 3] }, "p");
    expect(half[1]).toBe(Number(Math.sqrt(10).toPrecision(12)));
  });

  it("returns explicit values as written, in a fresh array", () => {
    const axis = ["1", 1, true, null, { k: [1] }];
    const values = axisValues(axis, "p");
    expect(values).toEqual(axis);
    expect(values).not.toBe(axis);
  });
});

describe("expandParams: validation", () => {
  it("rejects a name defined in two blocks", () => {
    const issues = issuesOf(() => expandParams({ grid: { lr: [1, 2] }, list: [{ lr: 3 }, { lr: 4 }] }));
    expect(issues).toEqual([
      { path: "params.list[0].lr", message: expect.stringContaining("defined in both grid and list") },
    ]);
  });

  it("rejects two names that become the same environment variable", () => {
    const issues = issuesOf(() => expandParams({ grid: { "a-b": [1] }, zip: { a_b: [2] } }));
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe("params.zip.a_b");
    expect(issues[0]!.message).toContain('"a-b"');
    expect(issues[0]!.message).toContain('"a_b"');
    expect(issues[0]!.message).toContain("A_B");
  });

  it("rejects more than MAX_TASKS tasks before building any, at path params", () => {
    // 1001 × 1001 × 2 = 2,004,002 tasks: must fail fast rather than materialize them.
    const issues = issuesOf(() =>
      expandParams({ grid: { a: { range: [0, 1001] }, b: { range: [0, 1001] }, c: [true, false] } }),
    );
    expect(issues).toHaveLength(1);
    expect(issues[0]!.path).toBe("params");
    expect(issues[0]!.message).toContain("2,004,002");
    expect(MAX_TASKS).toBe(1_000_000);
  });

  it("counts repeats towards the limit", () => {
    const issues = issuesOf(() => expandParams({ grid: { a: { range: [0, 1000] } } }, 1001));
    expect(issues[0]!.path).toBe("params");
    expect(issues[0]!.message).toContain("1,001,000");
  });

  it("rejects a repeat below 1", () => {
    expect(issuesOf(() => expandParams(undefined, 0))[0]!.path).toBe("repeat");
  });
});

describe("expandParams: task ids", () => {
  const expectedId = (params: unknown, occurrence: number) =>
    `t${createHash("sha256")
      .update(`${canonicalJson(params as never)}\n${occurrence}`)
      .digest("hex")
      .slice(0, 12)}`;

  it("derives the id from the canonical params and occurrence", () => {
    const tasks = expandParams({
      grid: { b: [1] },
      list: [{ z: 1, a: { y: 2, x: [3] } }],
      random: { count: 1, seed: 0, space: { m: { choice: ["q"] } } },
    });
    expect(canonicalJson(tasks[0]!.params)).toBe('{"a":{"x":[3],"y":2},"b":1,"m":"q","z":1}');
    expect(tasks[0]!.taskId).toBe(expectedId(tasks[0]!.params, 0));
  });

  it("gives the same ids on every call", () => {
    const spec = {
      grid: { a: { linspace: [0, 1, 7] as [number, number, number] } },
      list: [{ o: "x" }, { o: "y" }],
    };
    const first = expandParams(spec).map((t) => t.taskId);
    const second = expandParams(structuredClone(spec)).map((t) => t.taskId);
    expect(first).toEqual(second);
    expect(new Set(first).size).toBe(14);
  });

  it("repeats each assignment consecutively with distinct, stable ids", () => {
    const tasks = expandParams({ grid: { a: [1, 2] } }, 3);
    expect(tasks.map((t) => t.params.a)).toEqual([1, 1, 1, 2, 2, 2]);
    expect(new Set(tasks.map((t) => t.taskId)).size).toBe(6);
    expect(tasks.map((t) => t.taskId)).toEqual(expandParams({ grid: { a: [1, 2] } }, 3).map((t) => t.taskId));
    expect(tasks[1]!.taskId).toBe(expectedId({ a: 1 }, 1));
    // Adding repeats keeps the ids of the existing ones.
    expect(expandParams({ grid: { a: [1, 2] } }, 1).map((t) => t.taskId)).toEqual([
      tasks[0]!.taskId,
      tasks[3]!.taskId,
    ]);
  });

  it("gives duplicate assignments distinct ids by occurrence", () => {
    const tasks = expandParams({ list: [{ a: 1 }, { a: 2 }, { a: 1 }] }, 2);
    const ids = tasks.map((t) => t.taskId);
    expect(new Set(ids).size).toBe(6);
    expect(ids[4]).toBe(expectedId({ a: 1 }, 2));
    expect(ids[5]).toBe(expectedId({ a: 1 }, 3));
  });

  it("treats key order as irrelevant for ids", () => {
    const [x] = expandParams({ list: [{ a: 1, b: 2 }] });
    const [y] = expandParams({ list: [{ b: 2, a: 1 }] });
    expect(x!.taskId).toBe(y!.taskId);
  });
});

describe("expandParams: values", () => {
  it("keeps JSON types: string '1' and number 1 stay apart", () => {
    const tasks = expandParams({ grid: { v: ["1", 1] } });
    expect(tasks[0]!.params.v).toBe("1");
    expect(tasks[1]!.params.v).toBe(1);
    expect(tasks[0]!.taskId).not.toBe(tasks[1]!.taskId);
  });

  it("gives every task its own params objects, sharing nothing with the spec or each other", () => {
    const spec = { list: [{ cfg: { layers: [1, 2] } }] };
    const tasks = expandParams(spec, 2);
    expect(tasks[0]!.params).toEqual({ cfg: { layers: [1, 2] } });
    (tasks[0]!.params.cfg as { layers: number[] }).layers.push(3);
    expect(tasks[1]!.params).toEqual({ cfg: { layers: [1, 2] } });
    expect(spec.list[0]!.cfg.layers).toEqual([1, 2]);
    expect(tasks[0]!.params).not.toBe(tasks[1]!.params);
  });

  it("expands 100,000 tasks", () => {
    const tasks = expandParams({
      grid: { a: { range: [0, 100] }, b: { linspace: [0, 1, 100] }, c: { range: [0, 10] } },
    });
    expect(tasks).toHaveLength(100_000);
    expect(tasks[99_999]!.params).toEqual({ a: 99, b: 1, c: 9 });
    expect(new Set(tasks.map((t) => t.taskId)).size).toBe(100_000);
  });
});

describe("canonicalJson", () => {
  it("sorts keys recursively and keeps arrays in order", () => {
    expect(canonicalJson({ b: [3, { d: 1, c: 2 }], a: "x" })).toBe('{"a":"x","b":[3,{"c":2,"d":1}]}');
    expect(canonicalJson("1")).toBe('"1"');
    expect(canonicalJson(null)).toBe("null");
  });
});
