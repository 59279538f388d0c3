/** `spawn gpus`: the cheapest GPU offers per instance type and region, like `sky gpus list`. */
import { EC2Client } from "@aws-sdk/client-ec2";
import { PricingClient } from "@aws-sdk/client-pricing";
import { type Command, Option } from "commander";
import { priceCachePath } from "#providers/catalog/cache.js";
import { localPaths } from "#providers/local/paths.js";
import { collect, intArg } from "../flags.js";
import { paint, printJson, table } from "../output.js";
import { gpuOffers } from "../services/gpus.js";

const dollars = (n: number | undefined) => (n === undefined ? "-" : `$${n.toFixed(n < 10 ? 4 : 2)}`);
const when = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace("T", " ")}Z`;

/** Clients for `--refresh`: the default credential chain, short timeouts, one EC2 client per region. */
function refreshClients() {
  const requestHandler = { connectionTimeout: 3000, requestTimeout: 15_000 };
  const ec2 = new Map<string, EC2Client>();
  return {
    ec2: (region: string) => {
      const client = ec2.get(region) ?? new EC2Client({ region, maxAttempts: 2, requestHandler });
      ec2.set(region, client);
      return client;
    },
    // The Pricing API is served from us-east-1 for every region's prices.
    pricing: new PricingClient({ region: "us-east-1", maxAttempts: 2, requestHandler }),
  };
}

export function registerGpus(program: Command): void {
  program
    .command("gpus")
    .description("the cheapest GPU instance offers per type and region, from the price catalog")
    .option("--gpu <name>", "accelerator, any case: H100, A10G, L4, … (repeatable)", collect, [])
    .addOption(new Option("--spot", "spot prices only").conflicts("onDemand"))
    .addOption(new Option("--on-demand", "on-demand prices only"))
    .option("--region <region>", "only this region (repeatable)", collect, [])
    .option("--min-gpus <n>", "at least this many GPUs per instance", intArg("--min-gpus", 1))
    .option("--limit <n>", "rows to show, cheapest first", intArg("--limit", 1), 20)
    .option("--all", "every row")
    .option(
      "--refresh",
      "fetch current prices from AWS first (credentials needed); cached under the state dir",
    )
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      "\nPrices come from the committed catalog snapshot, with AWS prices from --refresh laid over it;\n" +
        "every price shows its source. $/GPU-h divides the cheaper shown price by the GPUs.",
    )
    .action(async (opts) => {
      const result = await gpuOffers({
        gpu: opts.gpu,
        regions: opts.region,
        ...(opts.spot ? { market: "spot" as const } : opts.onDemand ? { market: "on-demand" as const } : {}),
        ...(opts.minGpus ? { minGpus: opts.minGpus } : {}),
        ...(opts.all ? {} : { limit: opts.limit }),
        cacheFile: priceCachePath(localPaths().home),
        ...(opts.refresh ? { refresh: { clients: refreshClients(), now: Date.now() } } : {}),
      });
      for (const error of result.refreshErrors)
        process.stderr.write(`${paint("yellow", "warning")}: ${error}\n`);
      if (opts.json) {
        printJson({
          catalog: {
            source: result.catalog.source,
            refreshedAt: result.catalog.refreshedAt
              ? new Date(result.catalog.refreshedAt).toISOString()
              : null,
          },
          total: result.total,
          offers: result.rows.map((r) => ({
            ...r,
            priceAsOf: r.priceAsOf ? new Date(r.priceAsOf).toISOString() : null,
          })),
          refreshErrors: result.refreshErrors,
        });
        return;
      }
      process.stdout.write(
        `${table(
          [
            "type",
            "gpu",
            "count",
            "gpu mem",
            "vcpus",
            "memory",
            "region",
            "azs",
            "spot $/h",
            "on-demand $/h",
            "$/gpu-h",
            "price from",
          ],
          result.rows.map((r) => [
            r.instanceType,
            r.gpuName,
            String(r.gpus),
            r.gpuMemoryMiB ? `${Math.round(r.gpuMemoryMiB / 1024)} GiB` : "-",
            String(r.vcpus),
            `${r.memoryGiB} GiB`,
            r.region,
            String(r.azCount),
            dollars(r.spotPerHour),
            dollars(r.onDemandPerHour),
            dollars(r.perGpuHour),
            r.priceAsOf ? `AWS ${when(r.priceAsOf)}` : "snapshot",
          ]),
        )}\n`,
      );
      const more = result.total - result.rows.length;
      process.stdout.write(
        `${more > 0 ? `… and ${more} more (--all)\n` : ""}` +
          paint(
            "dim",
            `prices: ${result.catalog.source}` +
              (result.catalog.refreshedAt
                ? `; AWS prices up to ${when(result.catalog.refreshedAt)}\n`
                : "; refresh with --refresh\n"),
          ),
      );
    });
}
