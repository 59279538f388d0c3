/**
 * The on-disk price cache: AWS prices fetched by refresh.ts, with the time they were fetched,
 * so later commands overlay them on the snapshot without calling AWS. No SDK here: reading the
 * cache is on the path of every command that prices anything.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { z } from "zod";
import type { PricePoint } from "#core/placement.js";

const PriceCacheFile = z.object({
  version: z.literal(1),
  /** Epoch ms of the last refresh that wrote the file. */
  fetchedAt: z.number(),
  points: z.array(
    z.object({
      instanceType: z.string(),
      region: z.string(),
      az: z.string(),
      market: z.enum(["spot", "on-demand"]),
      pricePerHour: z.number().positive(),
      priceSource: z.string(),
      priceAsOf: z.number(),
    }),
  ),
});
export type PriceCache = z.infer<typeof PriceCacheFile>;

/** `<state dir>/cache/prices.json`. */
export function priceCachePath(stateHome: string): string {
  return join(stateHome, "cache", "prices.json");
}

/** The cache, or undefined when there is none or it is unreadable (then the snapshot stands alone). */
export function readPriceCache(file: string): PriceCache | undefined {
  try {
    const parsed = PriceCacheFile.safeParse(JSON.parse(readFileSync(file, "utf8")));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

const cacheKey = (p: PricePoint) => `${p.instanceType}|${p.region}|${p.az}|${p.market}`;

/**
 * Merges points into the cache file (a point replaces the same pool's older one; other pools are
 * kept) and stamps it with `fetchedAt`. Written atomically, so a reader never sees half a file.
 */
export function mergePriceCache(file: string, points: readonly PricePoint[], fetchedAt: number): PriceCache {
  const merged = new Map((readPriceCache(file)?.points ?? []).map((p) => [cacheKey(p), p]));
  for (const p of points) merged.set(cacheKey(p), p);
  const cache: PriceCache = { version: 1, fetchedAt, points: [...merged.values()] };
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(cache));
  renameSync(tmp, file);
  return cache;
}
