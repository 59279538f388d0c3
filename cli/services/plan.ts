/**
 * Turning a spec file plus flags into a validated plan, with no side effects: the
 * same code path serves `--dry-run` and a real launch, so a dry run can never launch.
 */
import { readFile, stat } from "node:fs/promises";
import { dirname, isAbsolute, resolve } from "node:path";
import YAML from "yaml";
import { checkCommandTemplate, quotedTemplateReferences, renderCommand } from "#core/contract.js";
import { estimateSweep, type SweepEstimate } from "#core/cost.js";
import { formatDuration } from "#core/duration.js";
import { AbortError } from "#core/errors.js";
import { parseGrant, policyFileProblems } from "#core/iam-policy.js";
import { type ExpandedTask, expandParams } from "#core/params.js";
import { type Catalog, describeOffer, NoOfferError, rankOffers, slotsOn } from "#core/placement.js";
import { parseSpec, SpecError, type SpecIssue, type SweepSpec } from "#core/spec.js";
import { efaIssues, supportsEfa, wantsEfa } from "#providers/aws/efa.js";
import { priceCachePath } from "#providers/catalog/cache.js";
import { loadCatalog } from "#providers/catalog/catalog.js";
import { localPaths } from "#providers/local/paths.js";
import { readUserFile } from "../flags.js";

export interface SweepPlan {
  specPath: string;
  specDir: string;
  workdir: string;
  spec: SweepSpec;
  tasks: ExpandedTask[];
  slots: number;
  instances: number;
  /** What the sweep would cost on aws (or why no offer fits), from the price catalog. */
  estimate: PlanEstimate;
  /** Parsed `policy-file:` grants of resources.iam, keyed by the path as written (for the task role). */
  policyFiles: Record<string, unknown>;
}

export interface PlanEstimate {
  /** The catalog's source, and when AWS prices were last laid over it. */
  catalog: { source: string; refreshedAt?: number };
  estimate?: SweepEstimate;
  /** Why no offer fits the spec's resources (NoOfferError's message). */
  unavailable?: string;
}

/** Parses `k=v` flags; the value is YAML, so `--set retry.max_attempts=3` is a number and `--set name=x` a string. */
export function parseSetFlags(flags: readonly string[]): Array<[string, unknown]> {
  return flags.map((flag) => {
    const eq = flag.indexOf("=");
    if (eq <= 0)
      throw new AbortError(
        `--set ${JSON.stringify(flag)}: expected key=value`,
        "e.g. --set retry.max_attempts=3",
      );
    const key = flag.slice(0, eq).trim();
    const text = flag.slice(eq + 1);
    try {
      return [key, text === "" ? "" : YAML.parse(text)];
    } catch {
      return [key, text];
    }
  });
}

/** Reads YAML or JSON; a missing file or a syntax error is the user's (exit 2) and names the file and line. */
export async function readSpecFile(path: string): Promise<unknown> {
  const text = await readUserFile(
    path,
    "spec file",
    "spawn sweep launch <spec.yaml>; see templates/ for examples",
  );
  const doc = YAML.parseDocument(text, { prettyErrors: true, uniqueKeys: true });
  if (doc.errors.length > 0) {
    const first = doc.errors[0]!;
    throw new AbortError(`${path}: ${first.message.split("\n")[0]}`, "fix the YAML syntax");
  }
  return doc.toJS({ maxAliasCount: 100 });
}

export interface PlanOptions {
  set?: readonly string[];
  maxInstances?: number;
}

/** Validates everything a launch needs and expands the tasks. Throws SpecError/AbortError (exit 2). */
export async function planSweep(specPath: string, options: PlanOptions = {}): Promise<SweepPlan> {
  const absolute = resolve(specPath);
  return planSweepSpec(await readSpecFile(absolute), { ...options, specPath: absolute, source: specPath });
}

/**
 * {@link planSweep} for a spec already read: `specPath` is the file it came from (or the pipeline
 * file holding it inline), `source` names it in errors.
 */
export async function planSweepSpec(
  raw: unknown,
  options: PlanOptions & { specPath: string; source: string },
): Promise<SweepPlan> {
  const absolute = options.specPath;
  const specPath = options.source;
  const overrides = parseSetFlags(options.set ?? []);
  if (options.maxInstances !== undefined) overrides.push(["max_instances", options.maxInstances]);
  const spec = parseSpec(raw, overrides, specPath);
  const tasks = expandParams(spec.params, spec.repeat);

  const names = new Set(tasks.flatMap((t) => Object.keys(t.params)));
  const unknown = checkCommandTemplate(spec.command, names);
  const quoted = quotedTemplateReferences(spec.command);
  if (unknown.length > 0 || quoted.length > 0) {
    throw new SpecError([
      ...unknown.map((n) => ({
        path: "command",
        message: `{{${n}}} is not a parameter (known: ${[...names].sort().join(", ") || "none"}; built-ins: index, attempt, sweep_id)`,
      })),
      ...quoted.map((n) => ({
        path: "command",
        message: `{{${n}}} is inside quotes; spawn shell-quotes every value itself, so write {{${n}}} bare`,
      })),
    ]);
  }
  // Every task must render: a parameter missing from some list entries is caught here, not on an instance.
  for (const task of tasks) {
    try {
      renderCommand(spec.command, task.params, { index: task.index, attempt: 1, sweepId: "dry-run" });
    } catch (error) {
      throw new SpecError([{ path: "command", message: `task ${task.index}: ${(error as Error).message}` }]);
    }
  }

  const specDir = dirname(absolute);
  const workdir = isAbsolute(spec.workdir) ? spec.workdir : resolve(specDir, spec.workdir);
  const info = await stat(workdir).catch(() => undefined);
  if (!info?.isDirectory()) {
    throw new SpecError([
      {
        path: "workdir",
        message: `${workdir} is not a directory (relative paths start at the spec's directory)`,
      },
    ]);
  }
  const slots = slotsOn(spec.resources, 0);
  const policyFiles = await readPolicyFiles(spec, specDir);
  return {
    specPath: absolute,
    specDir,
    workdir,
    spec,
    tasks,
    slots,
    instances: Math.min(spec.max_instances, Math.ceil(tasks.length / slots)),
    estimate: planEstimate(spec, tasks.length, loadCatalog({ cacheFile: priceCachePath(localPaths().home) })),
    policyFiles,
  };
}

/** Reads and checks every `policy-file:` grant (relative to the spec's directory); a bad one is a SpecError. */
export async function readPolicyFiles(spec: SweepSpec, specDir: string): Promise<Record<string, unknown>> {
  const files: Record<string, unknown> = {};
  const issues: SpecIssue[] = [];
  for (const [i, text] of spec.resources.iam.entries()) {
    const grant = parseGrant(text);
    if (grant.kind !== "policy-file") continue;
    const path = `resources.iam[${i}]`;
    const file = isAbsolute(grant.path) ? grant.path : resolve(specDir, grant.path);
    let doc: unknown;
    try {
      doc = JSON.parse(await readFile(file, "utf8"));
    } catch (error) {
      issues.push({ path, message: `policy file ${file}: ${(error as Error).message}` });
      continue;
    }
    const problems = policyFileProblems(doc);
    if (problems.length > 0) issues.push({ path, message: `policy file ${file}: ${problems.join("; ")}` });
    else files[grant.path] = doc;
  }
  if (issues.length > 0) throw new SpecError(issues);
  return files;
}

/**
 * Ranks the catalog's offers for the spec and estimates the cost on the cheapest. An unknown
 * `resources.gpu` is a SpecError (the spec is wrong on any provider), and so is `resources.efa`
 * that no allowed type can honour; no fitting offer is not, since a local run needs none: the
 * plan says why instead. With EFA, only types that have it are estimated (and launched).
 */
export function planEstimate(spec: SweepSpec, tasks: number, catalog: Catalog): PlanEstimate {
  const about = {
    source: catalog.source,
    ...(catalog.refreshedAt !== undefined ? { refreshedAt: catalog.refreshedAt } : {}),
  };
  let ranked: ReturnType<typeof rankOffers> | undefined;
  let unavailable: string | undefined;
  try {
    ranked = rankOffers(catalog.offers, spec.resources);
  } catch (error) {
    if (!(error instanceof NoOfferError)) throw error;
    unavailable = error.message;
  }
  const efa = efaIssues(
    spec,
    ranked?.map((o) => o.instanceType),
  );
  if (efa.length > 0) throw new SpecError(efa);
  if (!ranked) return { catalog: about, ...(unavailable ? { unavailable } : {}) };
  try {
    return {
      catalog: about,
      estimate: estimateSweep(
        spec,
        tasks,
        wantsEfa(spec) ? ranked.filter((o) => supportsEfa(o.instanceType)) : ranked,
      ),
    };
  } catch (error) {
    if (error instanceof NoOfferError) return { catalog: about, unavailable: error.message };
    throw error;
  }
}

const amount = (n: number) =>
  n.toLocaleString("en-US", {
    maximumFractionDigits: n < 10 ? 2 : n < 1000 ? 1 : 0,
    minimumFractionDigits: n < 10 ? 2 : 0,
  });
const usd = (n: number) => `$${amount(n)}`;

/** `snapshot skypilot-catalog@… (price date unknown)` or `DescribeSpotPriceHistory, 2026-11-20 12:00Z`. */
function priceOrigin(o: { priceSource: string; priceAsOf?: number }): string {
  return o.priceAsOf === undefined
    ? `${o.priceSource} (price date unknown)`
    : `${o.priceSource}, ${new Date(o.priceAsOf).toISOString().slice(0, 16).replace("T", " ")}Z`;
}

/** The estimate block of `sweep launch --dry-run`, in text. */
export function formatEstimate(plan: PlanEstimate, provider: string): string {
  const lines = [
    provider === "aws"
      ? "estimate   on aws"
      : "estimate   what this would cost on aws (the local provider runs it on this machine for $0)",
  ];
  const e = plan.estimate;
  if (!e) return [...lines, `  ${plan.unavailable}`].join("\n");
  const a = e.assumptions;
  lines.push(
    `  offer    ${describeOffer(e.offer)}, ${e.slots} task(s) at once; ${priceOrigin(e.offer)}`,
    ...(e.alternatives.length
      ? [
          `  next     ${e.alternatives.map((o) => `${o.instanceType} ${o.market} ${o.region} $${o.pricePerHour.toFixed(4)}/h`).join(", ")}`,
        ]
      : []),
    `  tasks    ${e.tasks} of up to ${formatDuration(e.taskMs)} each (${e.taskMsFrom === "timeout" ? "timeout" : "no timeout: bounded by ttl"}), ${e.instances} instance(s)`,
    `  best     ${amount(e.best.instanceHours)} instance-hours = ${usd(e.best.cost)} (no retries, perfect packing, cheapest offer)`,
    `  expected ${amount(e.expected.instanceHours)} instance-hours = ${usd(e.expected.cost)} (${Math.round(a.failureRate * 100)}% of attempts retried, whole instance-waves, ${formatDuration(a.bootMs)} boot and idle_timeout per instance${e.offer.market === "spot" ? `, ${a.interruptionsPerHour} spot interruptions per instance-hour` : ""}; docs/pricing.md)`,
    `  prices   ${plan.catalog.source}${plan.catalog.refreshedAt ? `; AWS prices up to ${new Date(plan.catalog.refreshedAt).toISOString().slice(0, 10)}` : ""}`,
  );
  if (e.overBudget !== undefined)
    lines.push(
      `  budget   expected cost is over the budget of ${usd(e.overBudget)}: launches stop when it is reached`,
    );
  return lines.join("\n");
}
