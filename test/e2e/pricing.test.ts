/** `spawn gpus`, the --dry-run estimate and `spawn cost`, through the real binary. */
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cliEnv, serverInfo } from "../helpers/cli.js";

const cli = cliEnv("spawn-pricing-");
afterAll(() => cli.stop());

const specs = mkdtempSync(join(tmpdir(), "spawn-pricing-specs-"));
function writeSpec(name: string, text: string): string {
  const path = join(specs, `${name}.yaml`);
  writeFileSync(path, text);
  return path;
}

describe("spawn gpus", () => {
  it("lists the cheapest offers of an accelerator with the catalog's source and age, starting nothing", () => {
    // Given a home where nothing has run
    const fresh = cliEnv("spawn-gpus-");
    try {
      // When H100 offers are asked for, any case
      const out = fresh.json<{
        catalog: { source: string; refreshedAt: string | null };
        total: number;
        offers: Array<{ gpuName: string; perGpuHour: number; priceSources: string[]; spotPerHour?: number }>;
      }>(["gpus", "--gpu", "h100", "--spot", "--limit", "5"]);

      // Then they are H100 spot rows, cheapest per GPU first, each saying where its price came from
      expect(out.catalog.source).toContain("(snapshot date unknown)");
      expect(out.offers).toHaveLength(5);
      expect(out.total).toBeGreaterThanOrEqual(5);
      expect(out.offers.every((o) => o.gpuName === "H100" && o.spotPerHour !== undefined)).toBe(true);
      const perGpu = out.offers.map((o) => o.perGpuHour);
      expect(perGpu).toEqual([...perGpu].sort((a, b) => a - b));
      expect(out.offers[0]?.priceSources).toEqual(["snapshot skypilot-catalog@00148f2a"]);
      // And no control plane was started for a catalog look-up
      expect(serverInfo(fresh.home)).toBeUndefined();
    } finally {
      fresh.stop();
    }
  });

  it("prints a table with the price source, and names the known accelerators for an unknown one", () => {
    const table = cli.run(["gpus", "--gpu", "A10G", "--region", "us-east-1", "--limit", "3"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toMatch(
      /^type\s+gpu\s+count\s+gpu mem\s+vcpus\s+memory\s+region\s+azs\s+spot \$\/h/,
    );
    expect(table.stdout).toContain("prices: skypilot-org/skypilot-catalog");
    const bad = cli.run(["gpus", "--gpu", "H1OO"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('resources.gpu: unknown accelerator "H1OO"; known: A100,');
    expect(cli.run(["gpus", "--spot", "--on-demand"]).code).toBe(2);
  });
});

describe("sweep launch --dry-run estimate", () => {
  it("prints the chosen offer, best and expected cost, says it is what aws would cost, and creates nothing", () => {
    // Given a GPU spec and a home where nothing has run
    const spec = writeSpec(
      "gpu",
      [
        "name: gpu",
        "workdir: .",
        "command: echo {{lr}}",
        "params: { grid: { lr: [0.1, 0.01, 0.001, 0.0001] } }",
        "resources: { gpus: 1, gpu: A10G, regions: [us-east-1] }",
        "max_instances: 2",
        "timeout: 1h",
      ].join("\n"),
    );
    const fresh = cliEnv("spawn-estimate-");
    try {
      // When it is dry-run, as JSON and as text
      const json = fresh.run(["sweep", "launch", spec, "--dry-run", "--json"]);
      const text = fresh.run(["sweep", "launch", spec, "--dry-run"]);

      // Then the estimate is on an A10G spot offer in us-east-1, best ≤ expected
      expect(json.code, json.stderr).toBe(0);
      const { estimate } = JSON.parse(json.stdout);
      expect(estimate).toMatchObject({ provider: "aws", runsOn: "local" });
      expect(estimate.estimate.offer).toMatchObject({ gpuName: "A10G", region: "us-east-1", market: "spot" });
      expect(estimate.estimate).toMatchObject({ tasks: 4, taskMs: 3_600_000, taskMsFrom: "timeout" });
      const { best, expected, offer } = estimate.estimate;
      expect(best.cost).toBeCloseTo((4 * offer.pricePerHour) / offer.slots, 10);
      expect(expected.cost).toBeGreaterThan(best.cost);
      expect(text.code, text.stderr).toBe(0);
      expect(text.stdout).toContain(
        "estimate   what this would cost on aws (the local provider runs it on this machine for $0)",
      );
      expect(text.stdout).toMatch(
        / {2}best {5}[\d.]+ instance-hours = \$[\d.]+ \(no retries, perfect packing, cheapest offer\)/,
      );
      // And nothing was created: no control plane, no database
      expect(serverInfo(fresh.home)).toBeUndefined();
      expect(existsSync(join(fresh.home, "db"))).toBe(false);
    } finally {
      fresh.stop();
    }
  });

  it("says why no offer fits instead of failing a local plan; an unknown gpu fails with exit 2", () => {
    const spec = writeSpec(
      "cheap",
      "name: cheap\nworkdir: .\ncommand: 'true'\nresources: { gpus: 8, gpu: H100, max_price: 1 }\n",
    );
    const r = cli.run(["sweep", "launch", spec, "--dry-run"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain("no instance offer fits: resources.max_price $1.0000/h removed the last");
    const bad = cli.run(["sweep", "launch", spec, "--dry-run", "--set", "resources.gpu=h1oo"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("resources.gpu: unknown accelerator");
  });
});

describe("resources.iam at plan time", () => {
  it("reads policy files next to the spec and refuses a missing or malformed one, naming the grant", () => {
    writeFileSync(
      join(specs, "good-policy.json"),
      JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          { Effect: "Allow", Action: "sqs:SendMessage", Resource: "arn:aws:sqs:us-east-1:123456789012:q" },
        ],
      }),
    );
    writeFileSync(join(specs, "bad-policy.json"), JSON.stringify({ Version: "2012-10-17", Statement: [] }));
    const spec = (grants: string) =>
      writeSpec("iam", `name: iam\nworkdir: .\ncommand: 'true'\nresources: { iam: [${grants}] }\n`);
    const ok = cli.run([
      "sweep",
      "launch",
      spec("'s3:read:my-data/x', 'policy-file:good-policy.json'"),
      "--dry-run",
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    const bad = cli.run([
      "sweep",
      "launch",
      spec("'policy-file:bad-policy.json', 'policy-file:none.json', 's3:read:my-data'"),
      "--dry-run",
    ]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("resources.iam[2]: s3:read:my-data names no prefix");
    const files = cli.run([
      "sweep",
      "launch",
      spec("'policy-file:bad-policy.json', 'policy-file:none.json'"),
      "--dry-run",
    ]);
    expect(files.code).toBe(2);
    expect(files.stderr).toMatch(/resources\.iam\[0\]: policy file .*bad-policy\.json: Statement/);
    expect(files.stderr).toMatch(/resources\.iam\[1\]: policy file .*none\.json: ENOENT/);
  });
});

describe("spawn cost", () => {
  it("reports $0 for a local sweep, with a note saying why", () => {
    // Given a finished local sweep
    const spec = writeSpec("free", "name: free\nworkdir: .\ncommand: 'true'\n");
    const launched = cli.run(["sweep", "launch", spec, "--wait", "--json"]);
    expect(launched.code, launched.stderr).toBe(0);
    const sweepId = JSON.parse(launched.stdout).sweepId as string;

    // When its cost is asked for, by type
    const report = cli.json<{
      total: number;
      instances: number;
      note: string;
      lines: Array<{ key: string }>;
    }>(["cost", "--sweep", sweepId, "--by", "type"]);

    // Then it cost nothing, its agent shows up as a local instance, and the note says why
    expect(report.total).toBe(0);
    expect(report.instances).toBeGreaterThanOrEqual(1);
    expect(report.lines.map((l) => l.key)).toEqual(["local"]);
    expect(report.note).toBe("1 local sweep(s): they run on this machine and cost $0");
    const text = cli.run(["cost", "--since", "1h"]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/^\$0\.00 over [\d.]+ instance-hours/);
    expect(cli.run(["cost", "--since", "yesterday-ish"]).code).toBe(2);
  });
});
