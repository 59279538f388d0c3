/** `spawn gpus` as a service: the snapshot alone, and after a refresh against mocked AWS clients. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DescribeSpotPriceHistoryCommand, EC2Client } from "@aws-sdk/client-ec2";
import { GetProductsCommand, PricingClient } from "@aws-sdk/client-pricing";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, test } from "vitest";
import { priceCachePath, readPriceCache } from "#providers/catalog/cache.js";
import { gpuOffers } from "./gpus.js";

const NOW = Date.parse("2026-11-20T12:00:00Z");
const credentials = { accessKeyId: "test", secretAccessKey: "test" };

describe("gpuOffers", () => {
  test("lists snapshot prices, limited, with the total before the limit", async () => {
    const cacheFile = priceCachePath(mkdtempSync(join(tmpdir(), "spawn-gpus-")));
    const result = await gpuOffers({ gpu: ["L40S"], market: "spot", limit: 2, cacheFile });
    expect(result.rows).toHaveLength(2);
    expect(result.total).toBeGreaterThan(2);
    expect(result.rows.every((r) => r.gpuName === "L40S" && r.priceAsOf === undefined)).toBe(true);
    expect(result.catalog).toEqual({ source: expect.stringContaining("(snapshot date unknown)") });
    expect(result.refreshErrors).toEqual([]);
  });

  test("--refresh asks AWS only about the listed pools, caches the answer, and shows its source and time", async () => {
    // Given AWS answers a fresh spot price for g6e.xlarge in one us-east-1 AZ, and no on-demand prices
    const ec2 = new EC2Client({ region: "us-east-1", credentials });
    const pricing = new PricingClient({ region: "us-east-1", credentials });
    const ec2Mock = mockClient(ec2);
    const pricingMock = mockClient(pricing);
    ec2Mock.on(DescribeSpotPriceHistoryCommand).resolves({
      SpotPriceHistory: [
        {
          InstanceType: "g6e.xlarge",
          AvailabilityZoneId: "use1-az1",
          SpotPrice: "0.1234",
          Timestamp: new Date(NOW - 60_000),
        },
      ],
    });
    pricingMock.on(GetProductsCommand).resolves({ PriceList: [] });
    const cacheFile = priceCachePath(mkdtempSync(join(tmpdir(), "spawn-gpus-")));

    // When L40S offers in us-east-1 are listed with a refresh
    const result = await gpuOffers({
      gpu: ["l40s"],
      regions: ["us-east-1"],
      market: "spot",
      cacheFile,
      refresh: { clients: { ec2: () => ec2, pricing }, now: NOW },
    });

    // Then only us-east-1 was asked, about L40S types only
    const asked = ec2Mock
      .commandCalls(DescribeSpotPriceHistoryCommand)
      .map((c) => c.args[0].input.InstanceTypes);
    expect(asked).toHaveLength(1);
    expect(asked[0]?.every((t) => t.startsWith("g6e."))).toBe(true);
    // And the fresh price leads the list, saying where and when it came from; the cache holds it
    expect(result.rows[0]).toMatchObject({
      instanceType: "g6e.xlarge",
      region: "us-east-1",
      spotPerHour: 0.1234,
      priceSources: ["DescribeSpotPriceHistory"],
      priceAsOf: NOW - 60_000,
    });
    expect(result.catalog.refreshedAt).toBe(NOW - 60_000);
    expect(readPriceCache(cacheFile)).toMatchObject({ fetchedAt: NOW, points: [{ pricePerHour: 0.1234 }] });
  });
});
