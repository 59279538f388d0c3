/** The AWS price refresh against mocked EC2 and Pricing clients: what is asked, and what is kept. */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  DescribeAvailabilityZonesCommand,
  DescribeSpotPriceHistoryCommand,
  EC2Client,
} from "@aws-sdk/client-ec2";
import { GetProductsCommand, PricingClient } from "@aws-sdk/client-pricing";
import { mockClient } from "aws-sdk-client-mock";
import { afterEach, describe, expect, test } from "vitest";
import type { Offer } from "#core/placement.js";
import { priceCachePath, readPriceCache } from "./cache.js";
import { fetchPrices, ON_DEMAND_SOURCE, refreshPriceCache, SPOT_SOURCE } from "./refresh.js";

const NOW = Date.parse("2026-11-20T12:00:00Z");
const credentials = { accessKeyId: "test", secretAccessKey: "test" };

function candidate(instanceType: string, region: string, az: string): Offer {
  return {
    instanceType,
    region,
    az,
    gpuName: "A10G",
    gpus: 1,
    vcpus: 4,
    memoryGiB: 16,
    arch: "x86_64",
    market: "spot",
    pricePerHour: 0.5,
    priceSource: "snapshot",
  };
}

/** One Pricing API product in the aws_v1 format, as GetProducts returns it (a JSON string). */
function product(
  instanceType: string,
  regionCode: string,
  usd: string,
  effectiveDate = "2026-11-01T00:00:00Z",
) {
  return JSON.stringify({
    product: { attributes: { instanceType, regionCode, operatingSystem: "Linux" } },
    terms: {
      OnDemand: {
        "ABC.JRTCKXETXF": {
          effectiveDate,
          priceDimensions: {
            "ABC.JRTCKXETXF.6YS6EN2CT7": { unit: "Hrs", pricePerUnit: { USD: usd } },
          },
        },
      },
    },
  });
}

const east = new EC2Client({ region: "us-east-1", credentials });
const west = new EC2Client({ region: "us-west-2", credentials });
const pricing = new PricingClient({ region: "us-east-1", credentials });
const eastMock = mockClient(east);
const westMock = mockClient(west);
const pricingMock = mockClient(pricing);
const clients = { ec2: (region: string) => (region === "us-east-1" ? east : west), pricing };

afterEach(() => {
  eastMock.reset();
  westMock.reset();
  pricingMock.reset();
});

describe("fetchPrices", () => {
  const candidates = [
    candidate("g5.xlarge", "us-east-1", "use1-az1"),
    candidate("g5.xlarge", "us-east-1", "use1-az2"),
    candidate("g6.xlarge", "us-east-1", "use1-az1"),
    candidate("g5.xlarge", "us-west-2", "usw2-az1"),
  ];

  test("asks each region for the candidate types only, from now, and pages through the answers", async () => {
    // Given two pages of spot history in us-east-1 and one in us-west-2
    eastMock
      .on(DescribeSpotPriceHistoryCommand)
      .resolvesOnce({
        SpotPriceHistory: [
          {
            InstanceType: "g5.xlarge",
            AvailabilityZone: "us-east-1a",
            AvailabilityZoneId: "use1-az1",
            SpotPrice: "0.420000",
            Timestamp: new Date(NOW - 60_000),
          },
        ],
        NextToken: "page-2",
      })
      .resolvesOnce({
        SpotPriceHistory: [
          {
            InstanceType: "g5.xlarge",
            AvailabilityZone: "us-east-1a",
            AvailabilityZoneId: "use1-az1",
            SpotPrice: "0.410000",
            Timestamp: new Date(NOW - 3_600_000),
          },
        ],
        NextToken: "",
      });
    westMock.on(DescribeSpotPriceHistoryCommand).resolves({ SpotPriceHistory: [] });
    pricingMock.on(GetProductsCommand).resolves({ PriceList: [] });

    // When prices are fetched
    const result = await fetchPrices(clients, candidates, NOW);

    // Then each region was asked about its own candidate types, Linux, starting now
    expect(eastMock.commandCalls(DescribeSpotPriceHistoryCommand).map((c) => c.args[0].input)).toEqual([
      {
        InstanceTypes: ["g5.xlarge", "g6.xlarge"],
        ProductDescriptions: ["Linux/UNIX"],
        StartTime: new Date(NOW),
        MaxResults: 1000,
      },
      {
        InstanceTypes: ["g5.xlarge", "g6.xlarge"],
        ProductDescriptions: ["Linux/UNIX"],
        StartTime: new Date(NOW),
        MaxResults: 1000,
        NextToken: "page-2",
      },
    ]);
    expect(westMock.commandCalls(DescribeSpotPriceHistoryCommand)[0]?.args[0].input.InstanceTypes).toEqual([
      "g5.xlarge",
    ]);
    // And the newest price per pool is kept, keyed by AZ id, with its own timestamp
    expect(result).toEqual({
      points: [
        {
          instanceType: "g5.xlarge",
          region: "us-east-1",
          az: "use1-az1",
          market: "spot",
          pricePerHour: 0.42,
          priceSource: SPOT_SOURCE,
          priceAsOf: NOW - 60_000,
        },
      ],
      errors: [],
    });
  });

  test("asks the Pricing API for Linux shared-tenancy on-demand prices and gives them to each candidate AZ", async () => {
    // Given on-demand products for both us-east-1 types, one with a zero-price line to skip
    eastMock.on(DescribeSpotPriceHistoryCommand).resolves({});
    westMock.on(DescribeSpotPriceHistoryCommand).resolves({});
    const products: Record<string, string[]> = {
      "us-east-1": [
        product("g5.xlarge", "us-east-1", "1.0060000000"),
        product("g6.xlarge", "us-east-1", "0.0000000000"),
      ],
      "us-west-2": [product("g5.xlarge", "us-west-2", "1.0060000000")],
    };
    pricingMock.on(GetProductsCommand).callsFake((input) => ({
      PriceList: products[input.Filters.find((f: { Field: string }) => f.Field === "regionCode").Value],
    }));

    // When prices are fetched
    const { points, errors } = await fetchPrices(clients, candidates, NOW);

    // Then the request filters exactly the product wanted
    const inputs = pricingMock.commandCalls(GetProductsCommand).map((c) => c.args[0].input);
    expect(inputs).toContainEqual({
      ServiceCode: "AmazonEC2",
      FormatVersion: "aws_v1",
      Filters: [
        { Type: "ANY_OF", Field: "instanceType", Value: "g5.xlarge,g6.xlarge" },
        { Type: "TERM_MATCH", Field: "regionCode", Value: "us-east-1" },
        { Type: "TERM_MATCH", Field: "operatingSystem", Value: "Linux" },
        { Type: "TERM_MATCH", Field: "tenancy", Value: "Shared" },
        { Type: "TERM_MATCH", Field: "preInstalledSw", Value: "NA" },
        { Type: "TERM_MATCH", Field: "capacitystatus", Value: "Used" },
        { Type: "TERM_MATCH", Field: "licenseModel", Value: "No License required" },
      ],
      MaxResults: 100,
    });
    // And the regional price goes to every AZ the candidates list; the zero line gives nothing
    expect(errors).toEqual([]);
    expect(
      points.map((p) => [p.region, p.az, p.instanceType, p.market, p.pricePerHour, p.priceSource]),
    ).toEqual([
      ["us-east-1", "use1-az1", "g5.xlarge", "on-demand", 1.006, ON_DEMAND_SOURCE],
      ["us-east-1", "use1-az2", "g5.xlarge", "on-demand", 1.006, ON_DEMAND_SOURCE],
      ["us-west-2", "usw2-az1", "g5.xlarge", "on-demand", 1.006, ON_DEMAND_SOURCE],
    ]);
    expect(points[0]?.priceAsOf).toBe(Date.parse("2026-11-01T00:00:00Z"));
  });

  test("maps AZ names to ids when an answer carries only the name", async () => {
    eastMock
      .on(DescribeSpotPriceHistoryCommand)
      .resolves({
        SpotPriceHistory: [
          {
            InstanceType: "g6.xlarge",
            AvailabilityZone: "us-east-1b",
            SpotPrice: "0.3",
            Timestamp: new Date(NOW),
          },
        ],
      })
      .on(DescribeAvailabilityZonesCommand)
      .resolves({ AvailabilityZones: [{ ZoneName: "us-east-1b", ZoneId: "use1-az6" }] });
    pricingMock.on(GetProductsCommand).resolves({});
    const { points } = await fetchPrices(clients, [candidate("g6.xlarge", "us-east-1", "use1-az1")], NOW);
    expect(eastMock.commandCalls(DescribeAvailabilityZonesCommand)[0]?.args[0].input).toEqual({
      AllAvailabilityZones: true,
    });
    expect(points).toEqual([expect.objectContaining({ az: "use1-az6", pricePerHour: 0.3 })]);
  });

  test("a region or API that fails is reported and keeps its old prices; nothing is guessed", async () => {
    // Given us-west-2 denies spot history and the Pricing API is unreachable
    eastMock.on(DescribeSpotPriceHistoryCommand).resolves({
      SpotPriceHistory: [
        {
          InstanceType: "g5.xlarge",
          AvailabilityZoneId: "use1-az2",
          SpotPrice: "0.4",
          Timestamp: new Date(NOW),
        },
      ],
    });
    const denied = Object.assign(new Error("not authorized"), { name: "UnauthorizedOperation" });
    westMock.on(DescribeSpotPriceHistoryCommand).rejects(denied);
    pricingMock
      .on(GetProductsCommand)
      .rejects(Object.assign(new Error("connect ETIMEDOUT"), { name: "TimeoutError" }));
    const file = priceCachePath(mkdtempSync(join(tmpdir(), "spawn-refresh-")));

    // When the cache is refreshed
    const result = await refreshPriceCache(clients, candidates, file, NOW);

    // Then the failures are named and only the price AWS gave is cached, stamped with the fetch time
    expect(result.errors.sort()).toEqual([
      "us-east-1 on-demand: TimeoutError: connect ETIMEDOUT",
      "us-west-2 on-demand: TimeoutError: connect ETIMEDOUT",
      "us-west-2 spot: UnauthorizedOperation: not authorized",
    ]);
    expect(readPriceCache(file)).toEqual({
      version: 1,
      fetchedAt: NOW,
      points: [
        {
          instanceType: "g5.xlarge",
          region: "us-east-1",
          az: "use1-az2",
          market: "spot",
          pricePerHour: 0.4,
          priceSource: SPOT_SOURCE,
          priceAsOf: NOW,
        },
      ],
    });
  });
});
