import { existsSync, readFileSync } from "node:fs";
import { App, Stack, Validations } from "aws-cdk-lib";
import { Bucket } from "aws-cdk-lib/aws-s3";
import { AwsSolutionsChecks } from "cdk-nag";
import { beforeAll, describe, expect, it } from "vitest";
import { type Synthesized, synthesize } from "./test/fixtures.js";

interface Report {
  pluginReports?: {
    summary?: { pluginName?: string };
    violations?: { ruleName: string; severity?: string }[];
  }[];
}

let s: Synthesized;
let assemblyDir: string;
beforeAll(() => {
  // The app exactly as `npx cdk synth` builds it: AWS Solutions checks and CloudFormation validation.
  s = synthesize(
    {},
    { validate: true, plugins: (app) => Validations.of(app).addPlugins(new AwsSolutionsChecks(app)) },
  );
  assemblyDir = s.app.synth().directory;
});

describe("cdk-nag AwsSolutions", () => {
  it("synthesizes: no unacknowledged error (an error would have thrown ValidationFailed)", () => {
    expect(existsSync(`${assemblyDir}/${s.home.templateFile}`)).toBe(true);
    expect(existsSync(`${assemblyDir}/${s.region.templateFile}`)).toBe(true);
  });

  it("leaves no warning either, from cdk-nag or CloudFormation validation", () => {
    const report = JSON.parse(readFileSync(`${assemblyDir}/validation-report.json`, "utf8")) as Report;
    expect(report.pluginReports?.length).toBeGreaterThan(0);
    const violations = (report.pluginReports ?? []).flatMap((p) =>
      (p.violations ?? []).map((v) => `${p.summary?.pluginName}: ${v.ruleName} (${v.severity})`),
    );
    expect(violations).toEqual([]);
    const direct = new AwsSolutionsChecks().validateScope(s.app);
    expect(
      direct.violations.map((v) => `${v.ruleName}: ${v.violatingResources.map((r) => r.resourceLogicalId)}`),
    ).toEqual([]);
    expect(direct.success).toBe(true);
  });

  it("would report an unacknowledged finding (the check is live)", () => {
    const app = new App({ builtinCloudFormationValidation: false });
    new Bucket(new Stack(app, "Control"), "Unlogged");
    const report = new AwsSolutionsChecks().validateScope(app);
    expect(report.success).toBe(false);
    expect(report.violations.map((v) => v.ruleName)).toContain("AwsSolutions-S1");
  });

  it("gives every acknowledgement a specific reason", () => {
    const acknowledgements = [s.home, s.region].flatMap((stack) =>
      stack.node
        .findAll()
        .flatMap((c) => c.node.metadata)
        .filter((m) => m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY)
        .flatMap((m) => Object.entries(m.data as Record<string, string>)),
    );
    const ours = acknowledgements.filter(([id]) => id.includes("AwsSolutions"));
    expect(ours.length).toBeGreaterThan(5);
    for (const [id, reason] of ours) {
      expect(reason.length, id).toBeGreaterThanOrEqual(40);
      expect(reason, id).not.toMatch(/^(ok|n\/a|not needed|suppressed?|todo)\b/i);
    }
  });
});
