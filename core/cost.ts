/**
 * Money, in USD. Actual cost is run time × the price recorded on each instance at launch
 * (`InstanceRecord.placement.pricePerHour`, from the catalog; never invented). Budgets compare
 * what was spent plus what live instances are committed to against `budget`. Estimates say what
 * a sweep would cost before anything runs. Pure: no I/O. The model is in docs/pricing.md.
 */
import type { InstanceRecord } from "./model.js";
import type { RankedOffer } from "./placement.js";
import type { SweepSpec } from "./spec.js";

const HOUR_MS = 3_600_000;

/** Billed run time so far: launch (or `since`, if later) until termination, or until `now` while it lives. */
export function instanceRunMs(instance: InstanceRecord, now: number, since = 0): number {
  const end = instance.status === "terminated" ? (instance.terminatedAt ?? now) : now;
  return Math.max(0, end - Math.max(instance.launchedAt, since));
}

/** What one instance has cost so far (since `since`); 0 without a recorded price (local agents, or not yet placed). */
export function instanceCost(instance: InstanceRecord, now: number, since = 0): number {
  const price = instance.placement?.pricePerHour;
  return price === undefined ? 0 : (price * instanceRunMs(instance, now, since)) / HOUR_MS;
}

/** Run time × price paid, summed over the instances (terminated ones included). */
export function spentSoFar(instances: readonly InstanceRecord[], now: number): number {
  return instances.reduce((sum, i) => sum + instanceCost(i, now), 0);
}

export interface CommitOptions {
  /**
   * When the work is expected to end (see expectedEndAt); live instances are counted until the
   * earlier of this and their own deadline. @default each instance's deadline, the most it can cost
   */
  expectedEndAt?: number;
}

/**
 * What live, priced instances will still cost: from `now` until their absolute deadline (which
 * the reaper enforces, so this is a bound), or until the expected end of the work if earlier.
 */
export function committedCost(
  instances: readonly InstanceRecord[],
  now: number,
  options: CommitOptions = {},
): number {
  let committed = 0;
  for (const i of instances) {
    const price = i.placement?.pricePerHour;
    if (i.status === "terminated" || price === undefined) continue;
    const until = Math.min(i.deadline, options.expectedEndAt ?? Number.POSITIVE_INFINITY);
    committed += (price * Math.max(0, until - now)) / HOUR_MS;
  }
  return committed;
}

/**
 * When open work should end if `instances` instances with `slots` slots each keep working through
 * `openTasks` tasks of `taskMs` each: whole waves, so a last partial wave counts in full.
 */
export function expectedEndAt(
  now: number,
  work: { openTasks: number; instances: number; slots: number; taskMs: number },
): number {
  const lanes = Math.max(1, work.instances * work.slots);
  return now + Math.ceil(work.openTasks / lanes) * work.taskMs;
}

/** Where a sweep stands against its budget. */
export interface BudgetCheck {
  budget: number;
  spent: number;
  committed: number;
  /** budget − spent − committed; may be negative. */
  remaining: number;
  /** True once spent plus committed reaches the budget: launch nothing more. */
  reached: boolean;
}

/** Spent plus committed against `budget`. Reconcile stops launching when `reached`. */
export function budgetCheck(
  budget: number,
  instances: readonly InstanceRecord[],
  now: number,
  options: CommitOptions = {},
): BudgetCheck {
  const spent = spentSoFar(instances, now);
  const committed = committedCost(instances, now, options);
  const remaining = budget - spent - committed;
  return { budget, spent, committed, remaining, reached: remaining <= 0 };
}

/**
 * How many more instances fit in what the budget has left, each committed at `pricePerHour`
 * for `commitMs` (its deadline, or the expected end of the work). 0 once the budget is reached.
 */
export function launchesWithinBudget(check: BudgetCheck, pricePerHour: number, commitMs: number): number {
  if (check.reached) return 0;
  const each = (pricePerHour * Math.max(0, commitMs)) / HOUR_MS;
  if (each <= 0) return Number.MAX_SAFE_INTEGER;
  return Math.max(0, Math.floor(check.remaining / each + 1e-9));
}

/** How `spawn cost` groups instances. */
export const COST_GROUPS = ["sweep", "region", "type", "market"] as const;
export type CostGroup = (typeof COST_GROUPS)[number];

export interface CostLine {
  /** The sweep id, region, instance type or market; `local` for unpriced local agents. */
  key: string;
  instances: number;
  /** Billed instance-hours. */
  hours: number;
  cost: number;
}

export interface CostReport {
  total: number;
  hours: number;
  instances: number;
  /** Instances without a recorded price (local agents cost nothing; aws ones before placement). */
  unpriced: number;
  lines: CostLine[];
}

/**
 * Actual cost of the instances, grouped; lines sorted by cost, highest first, then key. With
 * `since`, only run time after it counts, and instances that ended before it are left out.
 */
export function costReport(
  instances: readonly InstanceRecord[],
  now: number,
  by: CostGroup,
  since = 0,
): CostReport {
  const counted = instances.filter((i) => i.status !== "terminated" || (i.terminatedAt ?? now) > since);
  const groups = new Map<string, CostLine>();
  let unpriced = 0;
  for (const i of counted) {
    if (!i.placement) unpriced++;
    const key =
      by === "sweep"
        ? i.sweepId
        : !i.placement
          ? i.provider
          : by === "region"
            ? i.placement.region
            : by === "type"
              ? i.placement.instanceType
              : i.placement.market;
    const line = groups.get(key) ?? { key, instances: 0, hours: 0, cost: 0 };
    line.instances++;
    line.hours += instanceRunMs(i, now, since) / HOUR_MS;
    line.cost += instanceCost(i, now, since);
    groups.set(key, line);
  }
  const lines = [...groups.values()].sort((a, b) => b.cost - a.cost || a.key.localeCompare(b.key));
  return {
    total: lines.reduce((s, l) => s + l.cost, 0),
    hours: lines.reduce((s, l) => s + l.hours, 0),
    instances: counted.length,
    unpriced,
    lines,
  };
}

/** What the expected estimate assumes; printed with every estimate. */
export interface EstimateAssumptions {
  /** Share of attempts that fail and are retried (up to retry.max_attempts). */
  failureRate: number;
  /** Spot interruptions per instance-hour; each loses half an attempt on average and a boot. */
  interruptionsPerHour: number;
  /** Boot, agent start and setup before an instance runs its first task (paid). */
  bootMs: number;
}

export const DEFAULT_ASSUMPTIONS: EstimateAssumptions = {
  failureRate: 0.05,
  interruptionsPerHour: 0.05,
  bootMs: 180_000,
};

export interface CostFigure {
  instanceHours: number;
  cost: number;
}

export interface SweepEstimate {
  offer: RankedOffer;
  /** Other offers that fit, cheapest first after `offer` (at most 4). */
  alternatives: RankedOffer[];
  tasks: number;
  slots: number;
  instances: number;
  /** Per-attempt duration used: `timeout`, else `ttl` (an upper bound either way). */
  taskMs: number;
  taskMsFrom: "timeout" | "ttl";
  /** No retries, perfect packing, no boot time, the cheapest offer. */
  best: CostFigure;
  /** Retries, whole instance-waves, boots, idle time and spot interruptions per the assumptions. */
  expected: CostFigure;
  assumptions: EstimateAssumptions;
  /** Set when the expected cost exceeds `budget`: launches will stop there. */
  overBudget?: number;
}

/**
 * Instance-hours × price for a sweep of `tasks` tasks on the first of `ranked` (rankOffers'
 * order). Best case: tasks × duration ÷ slots. Expected: whole instance-waves (an instance with
 * free slots still costs in full), attempts per task Σ failureRate^k over max_attempts, half an
 * attempt lost per spot interruption, a boot per instance and per interruption, and each
 * instance's idle_timeout before it exits. See docs/pricing.md.
 */
export function estimateSweep(
  spec: SweepSpec,
  tasks: number,
  ranked: readonly RankedOffer[],
  assumptions: EstimateAssumptions = DEFAULT_ASSUMPTIONS,
): SweepEstimate {
  const offer = ranked[0];
  if (!offer) throw new Error("estimateSweep needs at least one offer");
  const taskMsFrom = spec.timeout !== undefined ? "timeout" : "ttl";
  const taskMs = spec.timeout ?? spec.ttl;
  const taskH = taskMs / HOUR_MS;
  const slots = offer.slots;
  const instances = Math.min(spec.max_instances, Math.max(1, Math.ceil(tasks / slots)));

  let attempts = 0;
  for (let k = 0; k < spec.retry.max_attempts; k++) attempts += assumptions.failureRate ** k;
  const interruptions = offer.market === "spot" ? assumptions.interruptionsPerHour : 0;
  const waves = Math.ceil(tasks / slots) + ((attempts - 1) * tasks) / slots;
  const workH = waves * taskH * (1 + (interruptions * taskH) / 2);
  const boots = instances + interruptions * workH;
  const expectedHours = workH + (boots * assumptions.bootMs + instances * spec.idle_timeout) / HOUR_MS;

  const bestHours = (tasks * taskH) / slots;
  const expected = { instanceHours: expectedHours, cost: expectedHours * offer.pricePerHour };
  return {
    offer,
    alternatives: ranked.slice(1, 5),
    tasks,
    slots,
    instances,
    taskMs,
    taskMsFrom,
    best: { instanceHours: bestHours, cost: bestHours * offer.pricePerHour },
    expected,
    assumptions,
    ...(spec.budget !== undefined && expected.cost > spec.budget ? { overBudget: spec.budget } : {}),
  };
}
