/**
 * Fresher prices from AWS, laid over the snapshot when AWS is reachable: spot prices from
 * `DescribeSpotPriceHistory` (per region, for the candidate types) and on-demand prices from
 * the Pricing API's `GetProducts`. Each price keeps its source and observation time. Results
 * are cached on disk (under the state dir) with the time they were fetched, so later commands
 * use them without calling AWS again. A region that cannot be reached keeps its older price
 * and is reported, never guessed.
 */
import {
  type _InstanceType,
  DescribeAvailabilityZonesCommand,
  DescribeSpotPriceHistoryCommand,
  type EC2Client,
  type SpotPrice,
} from "@aws-sdk/client-ec2";
import { GetProductsCommand, type PricingClient } from "@aws-sdk/client-pricing";
import { z } from "zod";
import { mapLimit } from "#core/concurrency.js";
import type { Offer, PricePoint } from "#core/placement.js";
import { mergePriceCache, type PriceCache } from "./cache.js";

export const SPOT_SOURCE = "DescribeSpotPriceHistory";
export const ON_DEMAND_SOURCE = "Pricing API";

export interface RefreshClients {
  /** An EC2 client for a region (create each once). */
  ec2(region: string): EC2Client;
  /** A Pricing API client; the API is served from us-east-1 (also eu-central-1, ap-south-1). */
  pricing: PricingClient;
}

export interface RefreshResult {
  points: PricePoint[];
  /** One line per region or market that could not be refreshed, e.g. `us-west-2 spot: AccessDenied`. */
  errors: string[];
}

/** Newest spot price per (type, AZ id) in one region. */
async function spotPrices(
  ec2: EC2Client,
  region: string,
  types: string[],
  now: number,
): Promise<PricePoint[]> {
  const history: SpotPrice[] = [];
  let NextToken: string | undefined;
  do {
    // With a start time and no end time, AWS returns the price in effect then and any change since.
    const page = await ec2.send(
      new DescribeSpotPriceHistoryCommand({
        InstanceTypes: types as _InstanceType[],
        ProductDescriptions: ["Linux/UNIX"],
        StartTime: new Date(now),
        MaxResults: 1000,
        NextToken,
      }),
    );
    history.push(...(page.SpotPriceHistory ?? []));
    NextToken = page.NextToken || undefined;
  } while (NextToken);

  // Offers are keyed by AZ id (the same zone in every account); older answers carry only the name.
  let zoneIds: Map<string, string> | undefined;
  if (history.some((h) => !h.AvailabilityZoneId)) {
    const zones = await ec2.send(new DescribeAvailabilityZonesCommand({ AllAvailabilityZones: true }));
    zoneIds = new Map((zones.AvailabilityZones ?? []).map((z) => [z.ZoneName ?? "", z.ZoneId ?? ""]));
  }
  const newest = new Map<string, PricePoint>();
  for (const h of history) {
    const az = h.AvailabilityZoneId ?? zoneIds?.get(h.AvailabilityZone ?? "");
    const price = Number(h.SpotPrice);
    if (!h.InstanceType || !az || !h.Timestamp || !Number.isFinite(price) || price <= 0) continue;
    const point: PricePoint = {
      instanceType: h.InstanceType,
      region,
      az,
      market: "spot",
      pricePerHour: price,
      priceSource: SPOT_SOURCE,
      priceAsOf: h.Timestamp.getTime(),
    };
    const key = `${point.instanceType}|${az}`;
    const seen = newest.get(key);
    if (!seen || seen.priceAsOf < point.priceAsOf) newest.set(key, point);
  }
  return [...newest.values()];
}

/** The parts of a Pricing API product that matter here (`aws_v1` format). */
const PriceListItem = z.object({
  product: z.object({
    attributes: z.object({ instanceType: z.string(), regionCode: z.string() }),
  }),
  terms: z.object({
    OnDemand: z.record(
      z.string(),
      z.object({
        effectiveDate: z.string(),
        priceDimensions: z.record(
          z.string(),
          z.object({ unit: z.string(), pricePerUnit: z.object({ USD: z.string() }) }),
        ),
      }),
    ),
  }),
});

/** On-demand USD per hour per instance type in one region (Linux, shared tenancy, no software). */
async function onDemandPrices(
  pricing: PricingClient,
  region: string,
  types: string[],
): Promise<Array<{ instanceType: string; pricePerHour: number; priceAsOf: number }>> {
  const out: Array<{ instanceType: string; pricePerHour: number; priceAsOf: number }> = [];
  let NextToken: string | undefined;
  do {
    const page = await pricing.send(
      new GetProductsCommand({
        ServiceCode: "AmazonEC2",
        FormatVersion: "aws_v1",
        Filters: [
          { Type: "ANY_OF", Field: "instanceType", Value: types.join(",") },
          { Type: "TERM_MATCH", Field: "regionCode", Value: region },
          { Type: "TERM_MATCH", Field: "operatingSystem", Value: "Linux" },
          { Type: "TERM_MATCH", Field: "tenancy", Value: "Shared" },
          { Type: "TERM_MATCH", Field: "preInstalledSw", Value: "NA" },
          { Type: "TERM_MATCH", Field: "capacitystatus", Value: "Used" },
          { Type: "TERM_MATCH", Field: "licenseModel", Value: "No License required" },
        ],
        MaxResults: 100,
        NextToken,
      }),
    );
    const list: unknown[] = Array.isArray(page.PriceList) ? page.PriceList : [];
    for (const raw of list) {
      const parsed = PriceListItem.safeParse(typeof raw === "string" ? JSON.parse(raw) : raw);
      if (!parsed.success) continue;
      const { attributes } = parsed.data.product;
      for (const term of Object.values(parsed.data.terms.OnDemand)) {
        for (const dimension of Object.values(term.priceDimensions)) {
          const price = Number(dimension.pricePerUnit.USD);
          // A zero price is a reservation or placeholder line, never an instance-hour price.
          if (dimension.unit !== "Hrs" || !Number.isFinite(price) || price <= 0) continue;
          out.push({
            instanceType: attributes.instanceType,
            pricePerHour: price,
            priceAsOf: Date.parse(term.effectiveDate),
          });
        }
      }
    }
    NextToken = page.NextToken || undefined;
  } while (NextToken);
  return out;
}

/**
 * Current prices for the candidates' instance types in the candidates' regions. Spot prices
 * come per AZ as AWS reports them; an on-demand price (per region) is given to each AZ the
 * candidates list for that type. A region or API that fails is listed in `errors`.
 */
export async function fetchPrices(
  clients: RefreshClients,
  candidates: readonly Offer[],
  now: number,
): Promise<RefreshResult> {
  const byRegion = new Map<string, Map<string, Set<string>>>();
  for (const o of candidates) {
    const types = byRegion.get(o.region) ?? new Map<string, Set<string>>();
    byRegion.set(o.region, types);
    const azs = types.get(o.instanceType) ?? new Set<string>();
    types.set(o.instanceType, azs);
    azs.add(o.az);
  }
  const points: PricePoint[] = [];
  const errors: string[] = [];
  const reason = (error: unknown) =>
    error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  await mapLimit([...byRegion], 8, async ([region, azsByType]) => {
    const types = [...azsByType.keys()].sort();
    const [spot, onDemand] = await Promise.allSettled([
      spotPrices(clients.ec2(region), region, types, now),
      onDemandPrices(clients.pricing, region, types),
    ]);
    if (spot.status === "fulfilled") points.push(...spot.value);
    else errors.push(`${region} spot: ${reason(spot.reason)}`);
    if (onDemand.status === "fulfilled") {
      for (const p of onDemand.value) {
        for (const az of azsByType.get(p.instanceType) ?? []) {
          points.push({
            instanceType: p.instanceType,
            region,
            az,
            market: "on-demand",
            pricePerHour: p.pricePerHour,
            priceSource: ON_DEMAND_SOURCE,
            priceAsOf: p.priceAsOf,
          });
        }
      }
    } else errors.push(`${region} on-demand: ${reason(onDemand.reason)}`);
  });
  return { points, errors };
}

/**
 * Fetches current prices for the candidates and merges them into the cache file.
 */
export async function refreshPriceCache(
  clients: RefreshClients,
  candidates: readonly Offer[],
  file: string,
  now: number,
): Promise<RefreshResult & { cache: PriceCache }> {
  const result = await fetchPrices(clients, candidates, now);
  return { ...result, cache: mergePriceCache(file, result.points, now) };
}
