/**
 * `spawn sweep launch --team`, through the real CLI binary on the embedded default: a team name
 * is checked as the AWS dashboard checks one (core/teams.ts) before anything is read or created.
 * What a valid one records is tested on dynalite in test/dashboard-pipeline-api.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type CliEnv, cliEnv } from "../helpers/cli.js";

let cli: CliEnv;
beforeAll(() => {
  cli = cliEnv("spawn-e2e-team-");
});
afterAll(() => cli.stop());

describe("sweep launch --team", () => {
  it.each(["Bad Team", "-lead", "x".repeat(64)])(
    "refuses %j: exit 2, the flag named, nothing created",
    (team) => {
      const before = cli.json<unknown[]>(["sweep", "list"]).length;
      const r = cli.run(["sweep", "launch", "templates/quickstart.yaml", "--team", team]);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`--team ${JSON.stringify(team)} must be 1-63 lowercase letters`);
      expect(cli.json<unknown[]>(["sweep", "list"])).toHaveLength(before);
    },
  );

  it("takes a valid name", () => {
    const r = cli.run([
      "sweep",
      "launch",
      "templates/quickstart.yaml",
      "--team",
      "ml-research",
      "--wait",
      "--json",
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect((JSON.parse(r.stdout) as { status: string }).status).toBe("succeeded");
  }, 120_000);
});
