/**
 * Placement: which (instance type, region, AZ, market) offers can run a sweep's tasks,
 * ranked by price. Pure: the catalog comes in as data (providers/catalog loads it).
 */
import picomatch from "picomatch";
import { AbortError } from "./errors.js";
import { type ResourcesSpec, SpecError } from "./spec.js";

export type Market = "spot" | "on-demand";

/** One purchasable pool: an instance type in one AZ, spot or on-demand, at a catalog price. */
export interface Offer {
  instanceType: string;
  region: string;
  /**
   * The AZ *ID* (`use1-az2`), which names the same zone in every account; AZ names (`us-east-1a`)
   * are shuffled per account. Local Zones look like `usw2-lax1-az1` (see isLocalZone).
   */
  az: string;
  /** Accelerator name as the catalog spells it (H100, A10G, L4, ...). */
  gpuName: string;
  /** Who makes the accelerator (NVIDIA, AMD, Habana), when the catalog says; absent for Neuron and FPGAs. */
  gpuMaker?: string;
  /** Accelerators per instance (fractional for GPU partitions such as g6f). */
  gpus: number;
  /** Per-device memory in MiB, when the catalog says. */
  gpuMemoryMiB?: number;
  vcpus: number;
  memoryGiB: number;
  arch: string;
  market: Market;
  /** USD per instance-hour. Offers without a known price are never created. */
  pricePerHour: number;
  /** "snapshot skypilot-catalog@<commit>", "DescribeSpotPriceHistory", "Pricing API". */
  priceSource: string;
  /** Epoch ms the price was observed; absent when the source does not say (the committed snapshot). */
  priceAsOf?: number;
}

/** Every offer spawn knows of, and where the prices came from. */
export interface Catalog {
  offers: readonly Offer[];
  /** Where the base data came from, in words (shown next to every price listing). */
  source: string;
  /** Epoch ms the base data was taken, when known. */
  asOf?: number;
  /** Epoch ms of the newest price overlaid from AWS, if any. */
  refreshedAt?: number;
}

/** A fresher price for one pool, from AWS (see providers/catalog/refresh.ts). */
export interface PricePoint {
  instanceType: string;
  region: string;
  az: string;
  market: Market;
  pricePerHour: number;
  priceSource: string;
  priceAsOf: number;
}

/** An offer that can run the tasks, with what one task-slot costs there. */
export interface RankedOffer extends Offer {
  /** Tasks one instance of this type runs at once. */
  slots: number;
  /** pricePerHour / slots: what ranking compares. */
  pricePerSlotHour: number;
}

/** Local Zone AZ ids carry the zone's group between region and AZ: `usw2-lax1-az1`. */
export function isLocalZone(az: string): boolean {
  return /^[a-z0-9]+-[a-z]+\d+-az\d+$/.test(az);
}

/**
 * Tasks one instance runs at once: `resources.slots`, else one per `gpus` share of the instance's
 * GPUs (4 tasks of 0.25 GPU on one GPU), else one.
 */
export function slotsOn(resources: Pick<ResourcesSpec, "slots" | "gpus">, gpusPerInstance: number): number {
  if (resources.slots) return resources.slots;
  if (resources.gpus > 0 && gpusPerInstance > 0)
    return Math.max(1, Math.floor(gpusPerInstance / resources.gpus));
  return 1;
}

/** Accelerator names in the catalog, sorted. */
export function gpuNames(offers: readonly Offer[]): string[] {
  return [...new Set(offers.map((o) => o.gpuName))].sort((a, b) => a.localeCompare(b));
}

/**
 * Maps `resources.gpu` names to the catalog's spelling, case-insensitively. Throws SpecError naming
 * `resources.gpu` and listing the known names when one is unknown.
 */
export function resolveGpuNames(offers: readonly Offer[], names: readonly string[]): string[] {
  const known = gpuNames(offers);
  const byLower = new Map(known.map((n) => [n.toLowerCase(), n]));
  const unknown = names.filter((n) => !byLower.has(n.toLowerCase()));
  if (unknown.length > 0) {
    throw new SpecError([
      {
        path: "resources.gpu",
        message: `unknown accelerator ${unknown.map((n) => JSON.stringify(n)).join(", ")}; known: ${known.join(", ")}`,
      },
    ]);
  }
  return names.map((n) => byLower.get(n.toLowerCase()) as string);
}

/** Nothing in the catalog passes the constraints; the message says which one removed the last candidates. */
export class NoOfferError extends AbortError {
  override name = "NoOfferError";
  constructor(
    message: string,
    readonly constraint: string,
  ) {
    super(message, "`spawn gpus` lists what the catalog offers; relax the constraint named above");
  }
}

export interface RankOptions {
  /** Markets to consider. @default spot (plus on-demand with on_demand_fallback), or on-demand when spot is false */
  markets?: readonly Market[];
  /** Consider Local Zone AZs (they need an opt-in and a subnet there). @default false */
  includeLocalZones?: boolean;
}

/** The markets a spec allows: spot, plus on-demand as a fallback when asked, or on-demand only. */
export function marketsFor(resources: Pick<ResourcesSpec, "spot" | "on_demand_fallback">): Market[] {
  if (!resources.spot) return ["on-demand"];
  return resources.on_demand_fallback ? ["spot", "on-demand"] : ["spot"];
}

const usd = (n: number) => `$${n.toFixed(4)}/h`;

/**
 * The offers that can run the tasks, cheapest task-slot-hour first. An 8-GPU instance running
 * eight 1-GPU tasks competes with eight 1-GPU instances on price per slot.
 *
 * Filters, in order: accelerator (`resources.gpu`, else NVIDIA GPUs only, since the agent's
 * executor and image are NVIDIA's), GPUs per task ≤ the instance's GPUs (any instance when
 * `gpus` is 0), `instance_types`, `exclude_instance_types`, Local Zones, `regions`, market,
 * `max_price`. Order: spot before on-demand (on-demand is a fallback when spot is allowed),
 * then price per slot-hour, then region preference (`regions` order), then instance price,
 * type, region and AZ, so the same inputs always give the same order.
 *
 * Throws SpecError for an unknown `gpu` name, and NoOfferError naming the constraint that
 * removed the last candidates.
 */
export function rankOffers(
  catalog: readonly Offer[],
  resources: ResourcesSpec,
  opts: RankOptions = {},
): RankedOffer[] {
  const markets = opts.markets ?? marketsFor(resources);
  const wanted = resources.gpu ? new Set(resolveGpuNames(catalog, resources.gpu)) : undefined;
  const include = resources.instance_types ? picomatch(resources.instance_types) : undefined;
  const exclude = resources.exclude_instance_types.length
    ? picomatch(resources.exclude_instance_types)
    : undefined;
  const regions = resources.regions;

  const steps: Array<[constraint: string, keep: (o: Offer) => boolean]> = [
    wanted
      ? [`resources.gpu ${[...wanted].join(", ")}`, (o) => wanted.has(o.gpuName)]
      : ["NVIDIA GPUs (name others in resources.gpu)", (o) => o.gpuMaker === "NVIDIA"],
    [`resources.gpus ${resources.gpus} per task`, (o) => o.gpus >= resources.gpus],
  ];
  if (include)
    steps.push([
      `resources.instance_types ${resources.instance_types?.join(", ")}`,
      (o) => include(o.instanceType),
    ]);
  if (exclude)
    steps.push([
      `resources.exclude_instance_types ${resources.exclude_instance_types.join(", ")}`,
      (o) => !exclude(o.instanceType),
    ]);
  if (!opts.includeLocalZones) steps.push(["no Local Zones", (o) => !isLocalZone(o.az)]);
  if (regions) steps.push([`resources.regions ${regions.join(", ")}`, (o) => regions.includes(o.region)]);
  steps.push([`market ${markets.join(" or ")}`, (o) => markets.includes(o.market)]);
  const maxPrice = resources.max_price;
  if (maxPrice !== undefined)
    steps.push([`resources.max_price ${usd(maxPrice)}`, (o) => o.pricePerHour <= maxPrice]);

  let candidates = catalog;
  for (const [constraint, keep] of steps) {
    const kept = candidates.filter(keep);
    if (kept.length === 0) {
      const cheapest = [...candidates].sort((a, b) => a.pricePerHour - b.pricePerHour)[0];
      const before = cheapest
        ? `the last ${candidates.length} offer(s) (cheapest: ${describeOffer(cheapest)})`
        : "every offer";
      throw new NoOfferError(`no instance offer fits: ${constraint} removed ${before}`, constraint);
    }
    candidates = kept;
  }

  const preference = (region: string) => {
    const i = regions?.indexOf(region) ?? -1;
    return i < 0 ? Number.MAX_SAFE_INTEGER : i;
  };
  return candidates
    .map((o) => {
      const slots = slotsOn(resources, o.gpus);
      return { ...o, slots, pricePerSlotHour: o.pricePerHour / slots };
    })
    .sort(
      (a, b) =>
        markets.indexOf(a.market) - markets.indexOf(b.market) ||
        a.pricePerSlotHour - b.pricePerSlotHour ||
        preference(a.region) - preference(b.region) ||
        a.pricePerHour - b.pricePerHour ||
        a.instanceType.localeCompare(b.instanceType) ||
        a.region.localeCompare(b.region) ||
        a.az.localeCompare(b.az),
    );
}

/** `g5.xlarge spot in us-east-1 (use1-az2) at $0.4000/h`. */
export function describeOffer(o: Offer): string {
  return `${o.instanceType} ${o.market} in ${o.region} (${o.az}) at ${usd(o.pricePerHour)}`;
}

const poolKey = (o: Pick<Offer, "instanceType" | "region" | "az" | "market">) =>
  `${o.instanceType}|${o.region}|${o.az}|${o.market}`;

/**
 * The catalog with fresher prices laid over it: a point replaces the price of its pool, or adds
 * the pool when the instance type is known (its hardware comes from the catalog; the price never
 * is invented). Points for types the catalog does not know are ignored.
 */
export function overlayPrices(catalog: Catalog, points: readonly PricePoint[]): Catalog {
  if (points.length === 0) return catalog;
  const hardware = new Map<string, Offer>();
  for (const o of catalog.offers) if (!hardware.has(o.instanceType)) hardware.set(o.instanceType, o);
  const pools = new Map(catalog.offers.map((o) => [poolKey(o), o]));
  let refreshedAt = catalog.refreshedAt;
  for (const p of points) {
    const base = pools.get(poolKey(p)) ?? hardware.get(p.instanceType);
    if (!base) continue;
    pools.set(poolKey(p), {
      ...base,
      region: p.region,
      az: p.az,
      market: p.market,
      pricePerHour: p.pricePerHour,
      priceSource: p.priceSource,
      priceAsOf: p.priceAsOf,
    });
    refreshedAt = Math.max(refreshedAt ?? 0, p.priceAsOf);
  }
  return { ...catalog, offers: [...pools.values()], ...(refreshedAt ? { refreshedAt } : {}) };
}

/** One row of `spawn gpus`: an instance type in one region, both markets side by side. */
export interface GpuListing {
  instanceType: string;
  gpuName: string;
  gpus: number;
  gpuMemoryMiB?: number;
  vcpus: number;
  memoryGiB: number;
  region: string;
  /** AZs (Local Zones included) where the type is offered in the region. */
  azCount: number;
  /** Cheapest spot price over the region's AZs. */
  spotPerHour?: number;
  onDemandPerHour?: number;
  /** The cheaper shown market's price divided by the GPUs. */
  perGpuHour: number;
  /** Source of the prices shown; more than one when spot and on-demand differ. */
  priceSources: string[];
  /** Oldest observation time of the prices shown, when known. */
  priceAsOf?: number;
}

export interface ListingFilter {
  /** Accelerator names, any case (unknown names are a SpecError listing the known ones). */
  gpu?: readonly string[];
  regions?: readonly string[];
  market?: Market;
  minGpus?: number;
}

/** The offers of the named accelerators, regions and minimum GPU count (markets are not filtered). */
export function filterOffers(catalog: readonly Offer[], filter: ListingFilter): Offer[] {
  const wanted = filter.gpu?.length ? new Set(resolveGpuNames(catalog, filter.gpu)) : undefined;
  const regions = filter.regions?.length ? filter.regions : undefined;
  return catalog.filter(
    (o) =>
      (!wanted || wanted.has(o.gpuName)) &&
      (!regions || regions.includes(o.region)) &&
      (filter.minGpus === undefined || o.gpus >= filter.minGpus),
  );
}

/**
 * The cheapest offers per (type, region), like `sky gpus list` or `dstack offer`, sorted by
 * price per GPU-hour (then type and region). With `market`, only rows priced in it.
 */
export function listGpus(catalog: readonly Offer[], filter: ListingFilter = {}): GpuListing[] {
  const groups = new Map<string, Offer[]>();
  for (const o of filterOffers(catalog, filter)) {
    const key = `${o.instanceType}|${o.region}`;
    const group = groups.get(key);
    if (group) group.push(o);
    else groups.set(key, [o]);
  }
  const rows: GpuListing[] = [];
  for (const offers of groups.values()) {
    const first = offers[0] as Offer;
    const cheapest = (market: Market) =>
      offers.filter((o) => o.market === market).sort((a, b) => a.pricePerHour - b.pricePerHour)[0];
    const spot = filter.market === "on-demand" ? undefined : cheapest("spot");
    const onDemand = filter.market === "spot" ? undefined : cheapest("on-demand");
    const shown = [spot, onDemand].filter((o): o is Offer => o !== undefined);
    if (shown.length === 0) continue;
    const best = Math.min(...shown.map((o) => o.pricePerHour));
    const dates = shown.map((o) => o.priceAsOf).filter((d): d is number => d !== undefined);
    rows.push({
      instanceType: first.instanceType,
      gpuName: first.gpuName,
      gpus: first.gpus,
      ...(first.gpuMemoryMiB !== undefined ? { gpuMemoryMiB: first.gpuMemoryMiB } : {}),
      vcpus: first.vcpus,
      memoryGiB: first.memoryGiB,
      region: first.region,
      azCount: new Set(offers.map((o) => o.az)).size,
      ...(spot ? { spotPerHour: spot.pricePerHour } : {}),
      ...(onDemand ? { onDemandPerHour: onDemand.pricePerHour } : {}),
      perGpuHour: best / first.gpus,
      priceSources: [...new Set(shown.map((o) => o.priceSource))],
      ...(dates.length === shown.length ? { priceAsOf: Math.min(...dates) } : {}),
    });
  }
  return rows.sort(
    (a, b) =>
      a.perGpuHour - b.perGpuHour ||
      a.instanceType.localeCompare(b.instanceType) ||
      a.region.localeCompare(b.region),
  );
}
