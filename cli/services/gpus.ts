/**
 * `spawn gpus`: the catalog's cheapest offers, optionally after refreshing prices from AWS.
 * Takes its clients as parameters so it is tested without a terminal or AWS.
 */
import {
  type Catalog,
  filterOffers,
  type GpuListing,
  type ListingFilter,
  listGpus,
} from "#core/placement.js";
import { mergePriceCache } from "#providers/catalog/cache.js";
import { loadCatalog } from "#providers/catalog/catalog.js";
import { fetchPrices, type RefreshClients } from "#providers/catalog/refresh.js";

export interface GpusResult {
  catalog: Pick<Catalog, "source" | "refreshedAt">;
  rows: GpuListing[];
  /** Rows before --limit. */
  total: number;
  /** What a --refresh could not reach (region and API, with AWS's error). */
  refreshErrors: string[];
}

export interface GpusOptions extends ListingFilter {
  limit?: number;
  /** Price cache file (read always; written on refresh). */
  cacheFile: string;
  /** Fetch current prices for the listed pools first. */
  refresh?: { clients: RefreshClients; now: number };
}

export async function gpuOffers(options: GpusOptions): Promise<GpusResult> {
  let catalog = loadCatalog({ cacheFile: options.cacheFile });
  let refreshErrors: string[] = [];
  if (options.refresh) {
    const { clients, now } = options.refresh;
    const result = await fetchPrices(clients, filterOffers(catalog.offers, options), now);
    mergePriceCache(options.cacheFile, result.points, now);
    refreshErrors = result.errors;
    catalog = loadCatalog({ cacheFile: options.cacheFile });
  }
  const rows = listGpus(catalog.offers, options);
  return {
    catalog: { source: catalog.source, ...(catalog.refreshedAt ? { refreshedAt: catalog.refreshedAt } : {}) },
    rows: options.limit ? rows.slice(0, options.limit) : rows,
    total: rows.length,
    refreshErrors,
  };
}
