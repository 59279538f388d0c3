/**
 * Parameter expansion: turns the `params` block of a spec (grid, zip, list, random) and
 * `repeat` into the ordered list of tasks, each with a stable content-derived id.
 *
 * Pure and deterministic: the same spec gives the same tasks, in the same order, with the
 * same ids and the same random draws, on every machine.
 */
import * as crypto from "node:crypto";
import { paramEnvName } from "./contract.js";
import type { AxisValues, Params, ParamsSpec, ParamValue, RandomDistribution, SpecIssue } from "./spec.js";
import { SpecError } from "./spec.js";

/** The most tasks one sweep may expand to, and the most values one axis may produce. */
export const MAX_TASKS = 1_000_000;

/** One task of a sweep, before it is stored. */
export interface ExpandedTask {
  /** 0-based position in the sweep. */
  index: number;
  /** `t` + 12 hex characters, derived from the params and how often they occurred before. */
  taskId: string;
  /** A fresh object per task: no value is shared with another task or with the spec. */
  params: Params;
}

type Block = "grid" | "zip" | "list" | "random";

/** One factor of the cartesian product: `size` rows, the i-th written into a task's params by `apply`. */
interface Dimension {
  size: number;
  /** No two rows are equal. */
  distinct: boolean;
  apply(target: Params, i: number): void;
  /** Writes the canonical JSON fragment (`"name":value`) of row i's parameters into their slots. */
  canon(slots: Array<string | undefined>, i: number): void;
}

const fail = (path: string, message: string): never => {
  throw new SpecError([{ path, message }]);
};

const fmtList = (xs: readonly number[]): string => `[${xs.join(", ")}]`;
const fmtCount = (n: number): string => (Number.isFinite(n) ? n.toLocaleString("en-US") : String(n));

/**
 * JSON with object keys sorted recursively (UTF-16 code unit order), no whitespace:
 * equal JSON values give equal strings whatever order their keys were written in.
 */
export function canonicalJson(value: ParamValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) out += (i ? "," : "") + canonicalJson(value[i] as ParamValue);
    return `${out}]`;
  }
  const keys = Object.keys(value).sort();
  let out = "{";
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    out += `${i ? "," : ""}${JSON.stringify(key)}:${canonicalJson(value[key] as ParamValue)}`;
  }
  return `${out}}`;
}

/** Deep copy of a JSON value; a `__proto__` key stays an own property instead of setting the prototype. */
function cloneJson(value: ParamValue): ParamValue {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(cloneJson);
  const out: { [key: string]: ParamValue } = {};
  for (const key of Object.keys(value)) {
    const v = cloneJson(value[key] as ParamValue);
    if (key === "__proto__")
      Object.defineProperty(out, key, { value: v, enumerable: true, writable: true, configurable: true });
    else out[key] = v;
  }
  return out;
}

/** Digits after the decimal point in the shortest representation of `x` (`0.25` → 2, `1e-7` → 7). */
function decimals(x: number): number {
  const [mantissa = "", exponent = "0"] = String(Math.abs(x)).split("e");
  const fraction = mantissa.split(".")[1]?.length ?? 0;
  return Math.max(0, fraction - Number(exponent));
}

/** Rounds away float noise: 12 significant digits, and values tiny next to `scale` become 0. */
function roundNoise(x: number, scale: number): number {
  if (Number.isInteger(x)) return x === 0 ? 0 : x;
  if (Math.abs(x) < scale * 1e-12) return 0;
  return Number(x.toPrecision(12));
}

/** Validates a `range` and returns its values: numpy arange, computed as start + i*step. */
function rangeValues(
  range: readonly number[],
  path: string,
  materialize: boolean,
): { count: number; values: number[] } {
  const [start = Number.NaN, stop = Number.NaN, step = 1] = range;
  const shown = fmtList(range);
  if (![start, stop, step].every(Number.isFinite)) fail(path, `range ${shown} must hold finite numbers`);
  if (step === 0) fail(path, `range ${shown} has step 0; use a non-zero step such as 1`);
  const span = (stop - start) / step;
  if (!(span > 0)) {
    fail(
      path,
      step > 0
        ? `range ${shown} yields no values: stop must be greater than start for a positive step`
        : `range ${shown} yields no values: stop must be less than start for a negative step`,
    );
  }
  let count = Math.max(1, Math.ceil(span - 1e-9));
  if (count > MAX_TASKS) {
    fail(
      path,
      `range ${shown} yields ${fmtCount(count)} values, more than the limit of ${fmtCount(MAX_TASKS)}; use a larger step`,
    );
  }
  // When start and step are short decimals (0.1, 2.5e-3), round to their decimal places: exact
  // for what the user wrote, and -0.3 + 3*0.1 gives 0 rather than 5.6e-17.
  const places = Math.max(decimals(start), decimals(step));
  const scale = Math.max(Math.abs(start), Math.abs(stop), Math.abs(step));
  const at = (i: number): number => {
    const x = start + i * step;
    if (Number.isInteger(x)) return x === 0 ? 0 : x;
    return places <= 15 ? Number(x.toFixed(places)) || 0 : roundNoise(x, scale);
  };
  // Rounding may land the last value on stop; arange never includes stop.
  while (count > 1 && (step > 0 ? at(count - 1) >= stop : at(count - 1) <= stop)) count--;
  if (!materialize) return { count, values: [] };
  const values = new Array<number>(count);
  for (let i = 0; i < count; i++) values[i] = at(i);
  return { count, values };
}

function checkNum(num: number, what: string, path: string): void {
  if (!Number.isInteger(num) || num < 1)
    fail(path, `${what} count ${num} must be a whole number of at least 1`);
  if (num > MAX_TASKS) {
    fail(
      path,
      `${what} count ${fmtCount(num)} is more than the limit of ${fmtCount(MAX_TASKS)}; use fewer values`,
    );
  }
}

/** `num` evenly spaced values from start to stop, both included; exact at both ends. */
function linspace(start: number, stop: number, num: number): number[] {
  const values = new Array<number>(num);
  const scale = Math.max(Math.abs(start), Math.abs(stop));
  for (let i = 0; i < num; i++) {
    values[i] =
      i === 0 ? start : i === num - 1 ? stop : roundNoise(start + ((stop - start) * i) / (num - 1), scale);
  }
  return values;
}

/** Validates an axis and returns how many values it has, without building them. */
function axisLength(axis: AxisValues, path: string): number {
  if (Array.isArray(axis)) {
    if (axis.length === 0) fail(path, "an axis needs at least one value");
    if (axis.length > MAX_TASKS) {
      fail(
        path,
        `${fmtCount(axis.length)} values is more than the limit of ${fmtCount(MAX_TASKS)}; use fewer values`,
      );
    }
    return axis.length;
  }
  if ("range" in axis) return rangeValues(axis.range, path, false).count;
  if ("linspace" in axis) {
    const [start, stop, num] = axis.linspace;
    if (!Number.isFinite(start) || !Number.isFinite(stop))
      fail(path, `linspace ${fmtList(axis.linspace)} must hold finite numbers`);
    checkNum(num, "linspace", path);
    return num;
  }
  if ("logspace" in axis) {
    const [start, stop, num, base = 10] = axis.logspace;
    if (!Number.isFinite(start) || !Number.isFinite(stop))
      fail(path, `logspace ${fmtList(axis.logspace)} must hold finite numbers`);
    if (!(base > 0) || !Number.isFinite(base))
      fail(path, `logspace base ${base} must be a positive number such as 10`);
    checkNum(num, "logspace", path);
    return num;
  }
  return fail(path, "expected a list of values, {range: [...]}, {linspace: [...]} or {logspace: [...]}");
}

/**
 * The values of one axis (an explicit list, or a range/linspace/logspace generator), in order.
 * `path` (`params.grid.lr`) is where errors are reported. Explicit values are returned as given
 * (the array is a copy, the values are not); generated numbers are rounded to drop float noise.
 */
export function axisValues(axis: AxisValues, path: string): ParamValue[] {
  axisLength(axis, path);
  if (Array.isArray(axis)) return axis.slice();
  if ("range" in axis) return rangeValues(axis.range, path, true).values;
  if ("linspace" in axis) {
    const [start, stop, num] = axis.linspace;
    return linspace(start, stop, num);
  }
  const [start, stop, num, base = 10] = axis.logspace;
  return linspace(start, stop, num).map((x) => {
    const v = base ** x;
    return Number.isInteger(v) ? v : Number(v.toPrecision(12));
  });
}

/** mulberry32: a small 32-bit PRNG; integer arithmetic only, so identical on every platform. */
function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

/** A uniform double in [0, 1) with 53 random bits, from two 32-bit draws. */
function uniform01(next: () => number): number {
  const hi = next() >>> 5; // 27 bits
  const lo = next() >>> 6; // 26 bits
  return (hi * 67_108_864 + lo) / 9_007_199_254_740_992;
}

/** Folds an integer seed of any size (negative included) into 32 bits; the high half is mixed in. */
function seed32(seed: number): number {
  const lo = ((seed % 4_294_967_296) + 4_294_967_296) % 4_294_967_296;
  const hi = Math.floor(seed / 4_294_967_296);
  return (lo ^ Math.imul(hi | 0, 0x9e3779b9)) >>> 0;
}

function checkBounds(pair: readonly number[], kind: string, path: string): [number, number] {
  const [a = Number.NaN, b = Number.NaN] = pair;
  if (!Number.isFinite(a) || !Number.isFinite(b))
    fail(path, `${kind} ${fmtList(pair)} must hold two finite numbers`);
  if (a > b)
    fail(path, `${kind} lower bound ${a} is greater than upper bound ${b}; write ${fmtList([b, a])}`);
  return [a, b];
}

/** Validates one distribution and returns a sampler taking a uniform [0, 1) number. */
function sampler(dist: RandomDistribution, path: string): (u: number) => ParamValue {
  if ("uniform" in dist) {
    const [a, b] = checkBounds(dist.uniform, "uniform", path);
    return (u) => Math.min(b, a + u * (b - a));
  }
  if ("loguniform" in dist) {
    const [a, b] = checkBounds(dist.loguniform, "loguniform", path);
    if (a <= 0) fail(path, `loguniform bounds ${fmtList(dist.loguniform)} must be greater than 0`);
    const la = Math.log(a);
    const lb = Math.log(b);
    return (u) => Math.min(b, Math.max(a, Math.exp(la + u * (lb - la))));
  }
  if ("int" in dist) {
    const [a, b] = checkBounds(dist.int, "int", path);
    if (!Number.isSafeInteger(a) || !Number.isSafeInteger(b)) {
      fail(path, `int bounds ${fmtList(dist.int)} must be whole numbers; use uniform for fractions`);
    }
    const n = b - a + 1;
    return (u) => Math.min(b, a + Math.floor(u * n));
  }
  if ("choice" in dist) {
    const items = dist.choice;
    if (items.length === 0) fail(path, "choice needs at least one value");
    return (u) => items[Math.min(items.length - 1, Math.floor(u * items.length))] as ParamValue;
  }
  return fail(
    path,
    "expected one of {uniform: [a, b]}, {loguniform: [a, b]}, {int: [a, b]}, {choice: [...]}",
  );
}

/**
 * Checks that every parameter name is defined by one block only and that no two names share
 * an environment variable. Returns every problem found.
 */
function nameIssues(spec: ParamsSpec): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const owner = new Map<string, Block>();
  const byEnv = new Map<string, string>();
  const reported = new Set<string>();
  const visit = (block: Block, name: string, path: string): void => {
    if (name === "__proto__") {
      issues.push({ path, message: `"__proto__" cannot be a parameter name; rename it` });
      return;
    }
    const first = owner.get(name);
    if (first !== undefined) {
      if (first !== block && !reported.has(`${block}:${name}`)) {
        reported.add(`${block}:${name}`);
        issues.push({
          path,
          message: `defined in both ${first} and ${block}; define each parameter in one block only`,
        });
      }
      return;
    }
    owner.set(name, block);
    const env = paramEnvName(name);
    const other = byEnv.get(env);
    if (other !== undefined) {
      issues.push({
        path,
        message: `"${other}" and "${name}" both become the environment variable ${env}; rename one of them`,
      });
    } else byEnv.set(env, name);
  };
  for (const name of Object.keys(spec.grid ?? {})) visit("grid", name, `params.grid.${name}`);
  for (const name of Object.keys(spec.zip ?? {})) visit("zip", name, `params.zip.${name}`);
  (spec.list ?? []).forEach((entry, i) => {
    for (const name of Object.keys(entry)) visit("list", name, `params.list[${i}].${name}`);
  });
  for (const name of Object.keys(spec.random?.space ?? {}))
    visit("random", name, `params.random.space.${name}`);
  return issues;
}

type Row = ReadonlyArray<readonly [string, ParamValue]>;

/**
 * A factor built from its rows (the assignments it contributes). The canonical JSON fragment
 * of every row is computed once here, so a task's canonical params are a join of fragments.
 */
function dimension(rows: readonly Row[], slotOf: ReadonlyMap<string, number>): Dimension {
  const fragments = rows.map((row) => {
    const out = row.map(
      ([name, value]) => [slotOf.get(name)!, `${JSON.stringify(name)}:${canonicalJson(value)}`] as const,
    );
    for (let k = 1; k < out.length; k++) {
      if (out[k]![0] < out[k - 1]![0]) return out.sort((x, y) => x[0] - y[0]);
    }
    return out;
  });
  const seen = new Set<string>();
  for (const row of fragments) seen.add(row.map(([, f]) => f).join(","));
  return {
    size: rows.length,
    distinct: seen.size === rows.length,
    apply: (target, i) => {
      for (const [name, value] of rows[i]!) target[name] = cloneJson(value);
    },
    canon: (slots, i) => {
      for (const [slot, fragment] of fragments[i]!) slots[slot] = fragment;
    },
  };
}

/** Validates every block and returns the factors of the product, not yet materialized. */
function plan(
  spec: ParamsSpec,
  slotOf: ReadonlyMap<string, number>,
): Array<{ size: number; build: () => Dimension }> {
  const factors: Array<{ size: number; build: () => Dimension }> = [];
  for (const [name, axis] of Object.entries(spec.grid ?? {})) {
    const path = `params.grid.${name}`;
    factors.push({
      size: axisLength(axis, path),
      build: () =>
        dimension(
          axisValues(axis, path).map((v) => [[name, v] as const]),
          slotOf,
        ),
    });
  }
  const zip = Object.entries(spec.zip ?? {});
  if (zip.length > 0) {
    let size = -1;
    let firstName = "";
    for (const [name, axis] of zip) {
      const n = axisLength(axis, `params.zip.${name}`);
      if (size < 0) {
        size = n;
        firstName = name;
      } else if (n !== size) {
        fail(
          `params.zip.${name}`,
          `has ${fmtCount(n)} values but params.zip.${firstName} has ${fmtCount(size)}; zip axes must have the same length`,
        );
      }
    }
    factors.push({
      size,
      build: () => {
        const columns = zip.map(([name, axis]) => [name, axisValues(axis, `params.zip.${name}`)] as const);
        const rows = Array.from({ length: size }, (_, i) =>
          columns.map(([name, values]) => [name, values[i]!] as const),
        );
        return dimension(rows, slotOf);
      },
    });
  }
  if (spec.list !== undefined) {
    const list = spec.list;
    if (list.length === 0)
      fail("params.list", "a list needs at least one entry; remove it or add an assignment");
    factors.push({
      size: list.length,
      build: () =>
        dimension(
          list.map((entry) => Object.entries(entry)),
          slotOf,
        ),
    });
  }
  if (spec.random !== undefined) {
    const { count, seed = 0, space } = spec.random;
    if (!Number.isInteger(count) || count < 1)
      fail("params.random.count", `count ${count} must be a whole number of at least 1`);
    if (count > MAX_TASKS) {
      fail(
        "params.random.count",
        `count ${fmtCount(count)} is more than the limit of ${fmtCount(MAX_TASKS)}`,
      );
    }
    if (!Number.isSafeInteger(seed)) fail("params.random.seed", `seed ${seed} must be a whole number`);
    const samplers = Object.entries(space).map(
      ([name, dist]) => [name, sampler(dist, `params.random.space.${name}`)] as const,
    );
    factors.push({
      size: count,
      build: () => {
        const next = mulberry32(seed32(seed));
        const rows = new Array<Row>(count);
        for (let d = 0; d < count; d++)
          rows[d] = samplers.map(([name, sample]) => [name, sample(uniform01(next))] as const);
        return dimension(rows, slotOf);
      },
    });
  }
  return factors;
}

/** sha256 of `data` as hex. */
export const hashHex: (data: string) => string =
  typeof crypto.hash === "function"
    ? (data) => crypto.hash("sha256", data, "hex")
    : (data) => crypto.createHash("sha256").update(data).digest("hex");

/** Every parameter name of the spec, in canonical (sorted) order. */
function allNames(spec: ParamsSpec): string[] {
  const names = new Set<string>([
    ...Object.keys(spec.grid ?? {}),
    ...Object.keys(spec.zip ?? {}),
    ...Object.keys(spec.random?.space ?? {}),
  ]);
  for (const entry of spec.list ?? []) for (const name of Object.keys(entry)) names.add(name);
  return [...names].sort();
}

/**
 * Expands a sweep's params into its tasks: the cartesian product of the blocks grid, zip, list,
 * random (in that order, the last varying fastest; within grid the last axis varies fastest),
 * each assignment repeated `repeat` times in a row. No params gives one task with params `{}`.
 *
 * Task ids: `t` + the first 12 hex characters of sha256(canonicalJson(params) + "\n" + n), n
 * counting earlier tasks with identical params, so repeats and duplicates get distinct ids.
 *
 * The task count is checked against MAX_TASKS before anything is built. Throws SpecError.
 */
export function expandParams(spec: ParamsSpec | undefined, repeat = 1): ExpandedTask[] {
  if (!Number.isInteger(repeat) || repeat < 1)
    fail("repeat", `repeat ${repeat} must be a whole number of at least 1`);
  const params: ParamsSpec = spec ?? {};
  const issues = nameIssues(params);
  if (issues.length > 0) throw new SpecError(issues);

  const names = allNames(params);
  const slotOf = new Map(names.map((name, i) => [name, i]));
  const factors = plan(params, slotOf);
  let total = repeat;
  for (const f of factors) total *= f.size;
  if (total > MAX_TASKS) {
    const sizes = factors.map((f) => fmtCount(f.size));
    if (repeat > 1) sizes.push(`${fmtCount(repeat)} repeats`);
    fail(
      "params",
      `expands to ${fmtCount(total)} tasks (${sizes.join(" × ")}), more than the limit of ${fmtCount(MAX_TASKS)}; ` +
        "use fewer values or split the sweep",
    );
  }

  const dims = factors.map((f) => f.build());
  // Names belong to one block each, so two assignments are equal exactly when every factor
  // contributed equal rows: with no duplicate rows anywhere, no assignment can repeat.
  const seen = dims.every((d) => d.distinct) ? undefined : new Map<string, number>();
  const counter = new Array<number>(dims.length).fill(0);
  const slots = new Array<string | undefined>(names.length);
  const tasks = new Array<ExpandedTask>(total);
  let index = 0;
  while (index < total) {
    slots.fill(undefined);
    for (let d = 0; d < dims.length; d++) dims[d]!.canon(slots, counter[d]!);
    let canonical = "{";
    for (const fragment of slots)
      if (fragment !== undefined) canonical += canonical.length > 1 ? `,${fragment}` : fragment;
    canonical += "}";
    // Earlier tasks with these params: every repeat of each earlier equal assignment.
    let before = 0;
    if (seen !== undefined) {
      before = seen.get(canonical) ?? 0;
      seen.set(canonical, before + 1);
    }
    for (let r = 0; r < repeat; r++) {
      const taskParams: Params = {};
      for (let d = 0; d < dims.length; d++) dims[d]!.apply(taskParams, counter[d]!);
      const taskId = `t${hashHex(`${canonical}\n${before * repeat + r}`).slice(0, 12)}`;
      tasks[index] = { index, taskId, params: taskParams };
      index++;
    }
    // Odometer: the last factor varies fastest.
    for (let d = dims.length - 1; d >= 0; d--) {
      counter[d]!++;
      if (counter[d]! < dims[d]!.size) break;
      counter[d] = 0;
    }
  }
  return tasks;
}
