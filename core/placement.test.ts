import { describe, expect, test } from "vitest";
import {
  type Catalog,
  isLocalZone,
  listGpus,
  NoOfferError,
  type Offer,
  overlayPrices,
  rankOffers,
  slotsOn,
} from "./placement.js";
import { parseSpec, SpecError, type SweepSpecInput } from "./spec.js";

/** An offer with hardware of the named type; prices are the test's, sources say so. */
function offer(
  instanceType: string,
  market: Offer["market"],
  pricePerHour: number,
  where: { region?: string; az?: string } = {},
): Offer {
  const hardware: Record<string, Pick<Offer, "gpuName" | "gpus" | "gpuMaker">> = {
    "g5.xlarge": { gpuName: "A10G", gpus: 1, gpuMaker: "NVIDIA" },
    "g5.12xlarge": { gpuName: "A10G", gpus: 4, gpuMaker: "NVIDIA" },
    "g6.xlarge": { gpuName: "L4", gpus: 1, gpuMaker: "NVIDIA" },
    "g6f.large": { gpuName: "L4", gpus: 0.25, gpuMaker: "NVIDIA" },
    "p5.48xlarge": { gpuName: "H100", gpus: 8, gpuMaker: "NVIDIA" },
    "inf2.xlarge": { gpuName: "Inferentia2", gpus: 1 },
  };
  const h = hardware[instanceType];
  if (!h) throw new Error(`no hardware for ${instanceType}`);
  return {
    instanceType,
    region: where.region ?? "us-east-1",
    az: where.az ?? "use1-az1",
    ...h,
    vcpus: 4,
    memoryGiB: 16,
    arch: "x86_64",
    market,
    pricePerHour,
    priceSource: "test",
  };
}

const resources = (r: SweepSpecInput["resources"] = {}) =>
  parseSpec({ name: "t", command: "true", resources: r }).resources;

const catalog: Offer[] = [
  offer("g5.xlarge", "spot", 0.4),
  offer("g5.xlarge", "on-demand", 1.006),
  offer("g5.xlarge", "spot", 0.38, { region: "us-west-2", az: "usw2-az1" }),
  offer("g5.12xlarge", "spot", 1.2),
  offer("g6.xlarge", "spot", 0.35),
  offer("g6.xlarge", "spot", 0.2, { region: "us-west-2", az: "usw2-lax1-az1" }),
  offer("g6f.large", "spot", 0.1),
  offer("p5.48xlarge", "spot", 30),
  offer("p5.48xlarge", "on-demand", 55),
  offer("inf2.xlarge", "spot", 0.05),
];

const names = (offers: readonly Offer[]) => offers.map((o) => `${o.instanceType}/${o.market}/${o.az}`);

describe("slotsOn", () => {
  test.each([
    [{ gpus: 1 }, 8, 8],
    [{ gpus: 2 }, 8, 4],
    [{ gpus: 0.25 }, 1, 4],
    [{ gpus: 0.5 }, 4, 8],
    [{ gpus: 0.25 }, 0.25, 1],
    [{ gpus: 0 }, 8, 1],
    [{ gpus: 1, slots: 3 }, 8, 3],
  ])("%j on %d GPUs runs %d tasks at once", (r, gpus, slots) => {
    expect(slotsOn(r, gpus)).toBe(slots);
  });
});

describe("rankOffers", () => {
  test("ranks by price per task-slot: one 4-GPU instance beats four 1-GPU ones when cheaper per GPU", () => {
    // Given 1-GPU tasks on NVIDIA spot, outside Local Zones
    const ranked = rankOffers(catalog, resources({ gpus: 1 }));
    // Then g5.12xlarge ($1.20 / 4 slots = $0.30) comes before g6.xlarge ($0.35) and g5.xlarge
    expect(names(ranked)).toEqual([
      "g5.12xlarge/spot/use1-az1",
      "g6.xlarge/spot/use1-az1",
      "g5.xlarge/spot/usw2-az1",
      "g5.xlarge/spot/use1-az1",
      "p5.48xlarge/spot/use1-az1",
    ]);
    expect(ranked[0]).toMatchObject({ slots: 4, pricePerSlotHour: 0.3 });
    expect(ranked.at(-1)).toMatchObject({ slots: 8, pricePerSlotHour: 3.75 });
  });

  test("gpus 0 takes any NVIDIA type, one slot each; fractional tasks share a GPU", () => {
    expect(rankOffers(catalog, resources({ gpus: 0 }))[0]?.instanceType).toBe("g6f.large");
    const quarter = rankOffers(catalog, resources({ gpus: 0.25 }));
    expect(quarter.map((o) => [o.instanceType, o.slots])).toContainEqual(["g6.xlarge", 4]);
    // A half-GPU task does not fit a quarter-GPU partition
    expect(names(rankOffers(catalog, resources({ gpus: 0.5 })))).not.toContain("g6f.large/spot/use1-az1");
  });

  test("gpu names match any case; non-NVIDIA accelerators only when named", () => {
    expect(names(rankOffers(catalog, resources({ gpu: "a10g", gpus: 1 })))).toEqual([
      "g5.12xlarge/spot/use1-az1",
      "g5.xlarge/spot/usw2-az1",
      "g5.xlarge/spot/use1-az1",
    ]);
    expect(names(rankOffers(catalog, resources({ gpu: "Inferentia2", gpus: 1 })))).toEqual([
      "inf2.xlarge/spot/use1-az1",
    ]);
  });

  test("an unknown gpu name is a spec error listing the known names", () => {
    // When a name is not in the catalog
    const attempt = () => rankOffers(catalog, resources({ gpu: ["H100", "H1OO"] }));
    // Then the error names the field and lists what exists
    expect(attempt).toThrow(SpecError);
    expect(attempt).toThrow('resources.gpu: unknown accelerator "H1OO"; known: A10G, H100, Inferentia2, L4');
  });

  test("include globs, exclude globs and regions filter; regions break price ties in their order", () => {
    const r = resources({ gpus: 1, instance_types: ["g5.*", "g6*"], exclude_instance_types: ["*.12xlarge"] });
    expect(names(rankOffers(catalog, r))).toEqual([
      "g6.xlarge/spot/use1-az1",
      "g5.xlarge/spot/usw2-az1",
      "g5.xlarge/spot/use1-az1",
    ]);
    const tie: Offer[] = [
      offer("g5.xlarge", "spot", 0.4, { region: "us-east-1" }),
      offer("g5.xlarge", "spot", 0.4, { region: "us-west-2", az: "usw2-az1" }),
    ];
    const west = rankOffers(tie, resources({ regions: ["us-west-2", "us-east-1"] }));
    expect(west.map((o) => o.region)).toEqual(["us-west-2", "us-east-1"]);
    const east = rankOffers(tie, resources({ regions: ["us-east-1", "us-west-2"] }));
    expect(east.map((o) => o.region)).toEqual(["us-east-1", "us-west-2"]);
  });

  test("Local Zones are left out unless asked for", () => {
    const r = resources({ gpu: "L4", gpus: 1 });
    expect(names(rankOffers(catalog, r))).toEqual(["g6.xlarge/spot/use1-az1"]);
    expect(names(rankOffers(catalog, r, { includeLocalZones: true }))[0]).toBe(
      "g6.xlarge/spot/usw2-lax1-az1",
    );
    expect(isLocalZone("usw2-lax1-az1")).toBe(true);
    expect(isLocalZone("use1-az4")).toBe(false);
  });

  test("on-demand offers only with spot off, or after every spot offer with on_demand_fallback", () => {
    const r = (spot: boolean, fallback: boolean) =>
      resources({ gpu: "H100", gpus: 8, spot, on_demand_fallback: fallback });
    expect(names(rankOffers(catalog, r(true, false)))).toEqual(["p5.48xlarge/spot/use1-az1"]);
    expect(names(rankOffers(catalog, r(false, false)))).toEqual(["p5.48xlarge/on-demand/use1-az1"]);
    expect(names(rankOffers(catalog, r(true, true)))).toEqual([
      "p5.48xlarge/spot/use1-az1",
      "p5.48xlarge/on-demand/use1-az1",
    ]);
  });

  test("when nothing fits, the error names the constraint that removed the last candidates", () => {
    // Given H100s capped at a price below any H100 offer
    const attempt = () => rankOffers(catalog, resources({ gpu: "H100", gpus: 8, max_price: 10 }));
    // Then max_price is blamed, with the cheapest offer it removed
    expect(attempt).toThrow(NoOfferError);
    expect(attempt).toThrow(
      "no instance offer fits: resources.max_price $10.0000/h removed the last 1 offer(s) (cheapest: p5.48xlarge spot in us-east-1 (use1-az1) at $30.0000/h)",
    );
    // And a task bigger than any instance blames gpus
    expect(() => rankOffers(catalog, resources({ gpus: 16 }))).toThrow(/resources\.gpus 16 per task removed/);
    // And a region without the type blames regions
    const region = () => rankOffers(catalog, resources({ gpu: "H100", regions: ["eu-west-1"] }));
    expect(region).toThrow(/resources\.regions eu-west-1 removed the last 2 offer/);
  });

  test("the order is total: shuffled input gives the same ranking", () => {
    const r = resources({ gpus: 1, on_demand_fallback: true });
    const shuffled = [...catalog].reverse();
    expect(names(rankOffers(shuffled, r))).toEqual(names(rankOffers(catalog, r)));
  });
});

describe("overlayPrices", () => {
  const base: Catalog = { offers: catalog, source: "test snapshot" };

  test("a fresh price replaces its pool's, keeps the hardware, and records source and time", () => {
    const fresh = overlayPrices(base, [
      {
        instanceType: "g5.xlarge",
        region: "us-east-1",
        az: "use1-az1",
        market: "spot",
        pricePerHour: 0.33,
        priceSource: "DescribeSpotPriceHistory",
        priceAsOf: 1_700_000_000_000,
      },
    ]);
    const pool = fresh.offers.filter(
      (o) => o.instanceType === "g5.xlarge" && o.az === "use1-az1" && o.market === "spot",
    );
    expect(pool).toEqual([
      {
        ...offer("g5.xlarge", "spot", 0.33),
        priceSource: "DescribeSpotPriceHistory",
        priceAsOf: 1_700_000_000_000,
      },
    ]);
    expect(fresh.offers).toHaveLength(catalog.length);
    expect(fresh.refreshedAt).toBe(1_700_000_000_000);
  });

  test("a new AZ of a known type is added; an unknown type is ignored, never given made-up hardware", () => {
    const point = {
      market: "spot" as const,
      pricePerHour: 0.3,
      priceSource: "DescribeSpotPriceHistory",
      priceAsOf: 1,
    };
    const fresh = overlayPrices(base, [
      { ...point, instanceType: "g5.xlarge", region: "us-east-1", az: "use1-az6" },
      { ...point, instanceType: "x9.mystery", region: "us-east-1", az: "use1-az6" },
    ]);
    expect(fresh.offers).toHaveLength(catalog.length + 1);
    expect(fresh.offers.find((o) => o.az === "use1-az6")).toMatchObject({
      instanceType: "g5.xlarge",
      gpuName: "A10G",
      pricePerHour: 0.3,
    });
  });
});

describe("listGpus", () => {
  test("one row per type and region with both markets, cheapest per GPU first", () => {
    const rows = listGpus(catalog, { gpu: ["h100"] });
    expect(rows).toEqual([
      {
        instanceType: "p5.48xlarge",
        gpuName: "H100",
        gpus: 8,
        vcpus: 4,
        memoryGiB: 16,
        region: "us-east-1",
        azCount: 1,
        spotPerHour: 30,
        onDemandPerHour: 55,
        perGpuHour: 3.75,
        priceSources: ["test"],
      },
    ]);
  });

  test("a market filter drops rows without a price in it; min GPUs and regions filter", () => {
    expect(listGpus(catalog, { market: "on-demand" }).map((r) => r.instanceType)).toEqual([
      "g5.xlarge",
      "p5.48xlarge",
    ]);
    expect(listGpus(catalog, { minGpus: 4 }).map((r) => r.instanceType)).toEqual([
      "g5.12xlarge",
      "p5.48xlarge",
    ]);
    expect(listGpus(catalog, { regions: ["us-west-2"] }).map((r) => [r.instanceType, r.azCount])).toEqual([
      ["g6.xlarge", 1],
      ["g5.xlarge", 1],
    ]);
  });
});
