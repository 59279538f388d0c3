/**
 * The price catalog: the committed snapshot (aws-accelerator-vms.csv, see README.md here)
 * parsed into offers, with any fresher AWS prices from the on-disk cache laid over it.
 * Nothing here invents a price: a pool with no price in the source has no offer.
 */
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type Catalog, type Offer, overlayPrices } from "#core/placement.js";
import { readPriceCache } from "./cache.js";

/** Where the snapshot comes from; README.md in this folder says the same. */
export const SNAPSHOT = {
  repository: "skypilot-org/skypilot-catalog",
  path: "catalogs/v8/aws/vms.csv",
  /** The source does not record when its prices were observed; only this commit dates them. */
  commit: "00148f2af3672e2229b4f7bf8157d5a3f36e3c35",
} as const;

/** The `priceSource` of every snapshot price. */
export const SNAPSHOT_SOURCE = `snapshot skypilot-catalog@${SNAPSHOT.commit.slice(0, 8)}`;

const CSV_NAME = "aws-accelerator-vms.csv";

/**
 * The committed CSV: next to this module when run from source, under providers/catalog/ from
 * a bundle in dist/. A bundle placed elsewhere (a Lambda) passes `csvPath` itself.
 */
export function defaultCsvPath(): string {
  const candidates = [
    new URL(`./${CSV_NAME}`, import.meta.url),
    new URL(`../providers/catalog/${CSV_NAME}`, import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((p) => existsSync(p));
  if (!found) throw new Error(`price catalog ${CSV_NAME} not found (looked in ${candidates.join(", ")})`);
  return found;
}

/** RFC 4180 rows: quoted fields may hold commas, newlines and doubled quotes. Slices, never char-by-char appends. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    let field: string;
    if (text[i] === '"') {
      let end = i + 1;
      let value = "";
      for (;;) {
        const quote = text.indexOf('"', end);
        if (quote < 0) throw new Error("price catalog: unterminated quoted field");
        value += text.slice(end, quote);
        if (text[quote + 1] === '"') {
          value += '"';
          end = quote + 2;
        } else {
          end = quote + 1;
          break;
        }
      }
      field = value;
      i = end;
    } else {
      let end = i;
      while (end < n && text[end] !== "," && text[end] !== "\n" && text[end] !== "\r") end++;
      field = text.slice(i, end);
      i = end;
    }
    row.push(field);
    if (text[i] === ",") {
      i++;
      if (i === n) row.push("");
    } else {
      if (text[i] === "\r") i++;
      if (text[i] === "\n") i++;
      rows.push(row);
      row = [];
    }
  }
  if (row.length > 0) rows.push(row);
  return rows;
}

interface GpuInfo {
  Gpus?: Array<{ Manufacturer?: string; MemoryInfo?: { SizeInMiB?: number } }>;
}

/**
 * `GpuInfo` is a Python literal (single-quoted strings, True/False/None). Each quoted string is
 * re-encoded as JSON, and the Python constants outside strings are mapped, so it parses as JSON.
 */
export function parsePythonLiteral(text: string): unknown {
  const json = text.replace(/'((?:[^'\\]|\\.)*)'|\b(True|False|None)\b/g, (_, str, constant) => {
    if (constant) return constant === "True" ? "true" : constant === "False" ? "false" : "null";
    return JSON.stringify(String(str).replace(/\\'/g, "'"));
  });
  return JSON.parse(json);
}

const COLUMNS = [
  "InstanceType",
  "AcceleratorName",
  "AcceleratorCount",
  "vCPUs",
  "MemoryGiB",
  "GpuInfo",
  "Price",
  "SpotPrice",
  "Region",
  "AvailabilityZone",
  "Arch",
] as const;

/**
 * Offers from the snapshot CSV: one per (type, region, AZ) and market that has a price. An
 * empty `Price` or `SpotPrice` gives no offer for that market; fractional accelerator counts
 * (GPU partitions) are kept as they are; Local Zone AZs stay under their parent region.
 */
export function parseCatalogCsv(text: string, priceSource = SNAPSHOT_SOURCE, priceAsOf?: number): Offer[] {
  const [header, ...rows] = parseCsv(text);
  const index = Object.fromEntries(COLUMNS.map((c) => [c, header?.indexOf(c) ?? -1])) as Record<
    (typeof COLUMNS)[number],
    number
  >;
  const missing = COLUMNS.filter((c) => index[c] < 0);
  if (missing.length > 0) throw new Error(`price catalog lacks column(s) ${missing.join(", ")}`);
  const offers: Offer[] = [];
  // Rows of one type repeat the same GpuInfo text in every AZ: parse each distinct text once.
  const infos = new Map<string, GpuInfo>();
  const gpuInfo = (text: string) => {
    const known = infos.get(text);
    if (known) return known;
    const info = parsePythonLiteral(text) as GpuInfo;
    infos.set(text, info);
    return info;
  };
  rows.forEach((row, i) => {
    if (row.length === 1 && row[0] === "") return;
    const get = (c: (typeof COLUMNS)[number]) => (row[index[c]] ?? "").trim();
    const number = (c: (typeof COLUMNS)[number]) => {
      const value = Number(get(c));
      if (get(c) === "" || !Number.isFinite(value))
        throw new Error(`price catalog line ${i + 2}: ${c} is ${JSON.stringify(get(c))}`);
      return value;
    };
    const info = get("GpuInfo") ? gpuInfo(get("GpuInfo")) : undefined;
    const device = info?.Gpus?.[0];
    const hardware = {
      instanceType: get("InstanceType"),
      region: get("Region"),
      az: get("AvailabilityZone"),
      gpuName: get("AcceleratorName"),
      ...(device?.Manufacturer ? { gpuMaker: device.Manufacturer } : {}),
      gpus: number("AcceleratorCount"),
      ...(device?.MemoryInfo?.SizeInMiB ? { gpuMemoryMiB: device.MemoryInfo.SizeInMiB } : {}),
      vcpus: number("vCPUs"),
      memoryGiB: number("MemoryGiB"),
      arch: get("Arch"),
      priceSource,
      ...(priceAsOf !== undefined ? { priceAsOf } : {}),
    };
    if (get("Price") !== "") offers.push({ ...hardware, market: "on-demand", pricePerHour: number("Price") });
    if (get("SpotPrice") !== "")
      offers.push({ ...hardware, market: "spot", pricePerHour: number("SpotPrice") });
  });
  return offers;
}

export interface LoadCatalogOptions {
  /** @default defaultCsvPath() */
  csvPath?: string;
  /** A price cache written by refreshPriceCache; its prices override the snapshot's. */
  cacheFile?: string;
}

/** The snapshot, with the cached AWS prices (if any) overlaid. */
export function loadCatalog(options: LoadCatalogOptions = {}): Catalog {
  const offers = parseCatalogCsv(readFileSync(options.csvPath ?? defaultCsvPath(), "utf8"));
  const base: Catalog = {
    offers,
    source: `${SNAPSHOT.repository} ${SNAPSHOT.path} @ ${SNAPSHOT.commit.slice(0, 8)} (snapshot date unknown)`,
  };
  const cache = options.cacheFile ? readPriceCache(options.cacheFile) : undefined;
  return cache ? overlayPrices(base, cache.points) : base;
}
