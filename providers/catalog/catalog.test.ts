import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { parseSpec } from "#core/spec.js";
import { gpuNames, rankOffers } from "../../core/placement.js";
import { mergePriceCache, priceCachePath, readPriceCache } from "./cache.js";
import {
  defaultCsvPath,
  loadCatalog,
  parseCatalogCsv,
  parseCsv,
  parsePythonLiteral,
  SNAPSHOT_SOURCE,
} from "./catalog.js";

const HEADER =
  "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,AvailabilityZone,Arch";

describe("parsing", () => {
  test("CSV fields may be quoted and hold commas and doubled quotes", () => {
    expect(parseCsv('a,"b,c","say ""hi"""\r\n1,2,3\n')).toEqual([
      ["a", "b,c", 'say "hi"'],
      ["1", "2", "3"],
    ]);
  });

  test("GpuInfo is read as a Python literal", () => {
    expect(parsePythonLiteral("{'Gpus': [{'Name': 'L4', 'Ok': True, 'X': None}], 'Total': 5722}")).toEqual({
      Gpus: [{ Name: "L4", Ok: true, X: null }],
      Total: 5722,
    });
  });

  test("an empty Price or SpotPrice gives no offer in that market; fractions and Local Zones are kept", () => {
    // Given three rows from the source's documented gaps
    const csv = [
      HEADER,
      `p5e.48xlarge,H200,8.0,192.0,2048.0,"{'Gpus': [{'Name': 'H200', 'Manufacturer': 'NVIDIA', 'Count': 8, 'MemoryInfo': {'SizeInMiB': 144384}}]}",,19.425400,ap-southeast-3,apse3-az1,x86_64`,
      `g6f.large,L4,0.125,2.0,8.0,"{'Gpus': [{'Name': 'L4', 'Manufacturer': 'NVIDIA', 'Count': 0, 'MemoryInfo': {'SizeInMiB': 2861}}]}",0.202,,us-east-1,use1-az1,x86_64`,
      "f1.2xlarge,Virtex UltraScale (VU9P),1.0,8.0,122.0,,1.65,0.5,us-west-2,usw2-lax1-az1,x86_64",
    ].join("\n");
    // When it is parsed
    const offers = parseCatalogCsv(csv);
    // Then each row gives only the markets it has a price for, with its hardware as written
    expect(offers).toEqual([
      {
        instanceType: "p5e.48xlarge",
        region: "ap-southeast-3",
        az: "apse3-az1",
        gpuName: "H200",
        gpuMaker: "NVIDIA",
        gpus: 8,
        gpuMemoryMiB: 144384,
        vcpus: 192,
        memoryGiB: 2048,
        arch: "x86_64",
        market: "spot",
        pricePerHour: 19.4254,
        priceSource: SNAPSHOT_SOURCE,
      },
      expect.objectContaining({
        instanceType: "g6f.large",
        gpus: 0.125,
        market: "on-demand",
        pricePerHour: 0.202,
      }),
      expect.objectContaining({ instanceType: "f1.2xlarge", az: "usw2-lax1-az1", market: "on-demand" }),
      expect.objectContaining({
        instanceType: "f1.2xlarge",
        az: "usw2-lax1-az1",
        market: "spot",
        pricePerHour: 0.5,
      }),
    ]);
    // And an FPGA has no maker or device memory: nothing is made up
    expect(offers[2]).not.toHaveProperty("gpuMaker");
    expect(offers[2]).not.toHaveProperty("gpuMemoryMiB");
  });

  test("a malformed number is an error naming the line and column", () => {
    expect(() =>
      parseCatalogCsv(`${HEADER}\ng5.xlarge,A10G,one,4,16,,1,0.4,us-east-1,use1-az1,x86_64`),
    ).toThrow('price catalog line 2: AcceleratorCount is "one"');
  });
});

describe("the committed snapshot", () => {
  const catalog = loadCatalog();

  test("holds every priced pool of the source: 2,274 rows, 4,431 prices", () => {
    expect(catalog.offers).toHaveLength(4431);
    expect(catalog.source).toBe(
      "skypilot-org/skypilot-catalog catalogs/v8/aws/vms.csv @ 00148f2a (snapshot date unknown)",
    );
    expect(catalog.asOf).toBeUndefined();
    expect(catalog.offers.every((o) => o.priceSource === SNAPSHOT_SOURCE && o.priceAsOf === undefined)).toBe(
      true,
    );
    expect(catalog.offers.every((o) => Number.isFinite(o.pricePerHour) && o.pricePerHour > 0)).toBe(true);
  });

  test("gives each market only the pools the source prices: 17 rows lack on-demand, 100 lack spot", () => {
    const count = (market: string) => catalog.offers.filter((o) => o.market === market).length;
    expect(count("on-demand")).toBe(2274 - 17);
    expect(count("spot")).toBe(2274 - 100);
    const p5e = catalog.offers.filter((o) => o.instanceType === "p5e.48xlarge" && o.az === "apse3-az1");
    expect(p5e.map((o) => [o.market, o.pricePerHour])).toEqual([["spot", 19.4254]]);
  });

  test("names the accelerators users ask for, and ranks real offers for them", () => {
    expect(gpuNames(catalog.offers)).toEqual(
      expect.arrayContaining(["A10G", "H100", "H200", "L4", "L40S", "T4"]),
    );
    const resources = parseSpec({ name: "t", command: "x", resources: { gpu: "h100", gpus: 1 } }).resources;
    const ranked = rankOffers(catalog.offers, resources);
    expect(ranked.length).toBeGreaterThan(0);
    expect(ranked.every((o) => o.gpuName === "H100" && o.market === "spot")).toBe(true);
    // An 8-GPU p5.48xlarge runs 8 one-GPU tasks; the single-GPU p5.4xlarge runs one
    expect(ranked.find((o) => o.instanceType === "p5.48xlarge")?.slots).toBe(8);
    expect(ranked.find((o) => o.instanceType === "p5.4xlarge")?.slots).toBe(1);
  });

  test("is found at its committed path", () => {
    expect(defaultCsvPath()).toMatch(/providers\/catalog\/aws-accelerator-vms\.csv$/);
  });
});

describe("the price cache", () => {
  const point = {
    instanceType: "g5.xlarge",
    region: "us-east-1",
    az: "use1-az1",
    market: "spot" as const,
    pricePerHour: 0.31,
    priceSource: "DescribeSpotPriceHistory",
    priceAsOf: 1_800_000_000_000,
  };

  test("overlays its prices on the snapshot, with their source and time", () => {
    // Given a cache with one fresher spot price
    const file = priceCachePath(mkdtempSync(join(tmpdir(), "spawn-prices-")));
    mergePriceCache(file, [point], 1_800_000_100_000);
    // When the catalog is loaded with it
    const catalog = loadCatalog({ cacheFile: file });
    // Then that pool has the fresh price and everything else is unchanged
    const pool = catalog.offers.filter(
      (o) => o.instanceType === "g5.xlarge" && o.az === "use1-az1" && o.market === "spot",
    );
    expect(pool).toEqual([
      expect.objectContaining({ pricePerHour: 0.31, priceSource: "DescribeSpotPriceHistory" }),
    ]);
    expect(catalog.offers).toHaveLength(4431);
    expect(catalog.refreshedAt).toBe(point.priceAsOf);
  });

  test("merges later fetches into earlier ones and records when it was fetched", () => {
    const file = priceCachePath(mkdtempSync(join(tmpdir(), "spawn-prices-")));
    mergePriceCache(file, [point, { ...point, az: "use1-az2" }], 1);
    const cache = mergePriceCache(file, [{ ...point, pricePerHour: 0.5 }], 2);
    expect(cache.fetchedAt).toBe(2);
    expect(readPriceCache(file)?.points.map((p) => [p.az, p.pricePerHour])).toEqual([
      ["use1-az1", 0.5],
      ["use1-az2", 0.31],
    ]);
  });

  test("a missing or corrupt cache is ignored: the snapshot stands alone", () => {
    const dir = mkdtempSync(join(tmpdir(), "spawn-prices-"));
    expect(readPriceCache(join(dir, "none.json"))).toBeUndefined();
    writeFileSync(join(dir, "bad.json"), '{"version":1,"points":[{"pricePerHour":-1}]}');
    expect(readPriceCache(join(dir, "bad.json"))).toBeUndefined();
    expect(loadCatalog({ cacheFile: join(dir, "bad.json") }).offers).toHaveLength(4431);
  });
});
