/** The docs users read are checked against the code they describe. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { specMarkdown } from "../cli/services/spec-doc.js";
import { SweepSpec } from "../core/spec.js";
import { ROOT } from "./helpers/cli.js";

describe("docs/spec.md", () => {
  it("is what the zod schema generates (run `npm run docs:spec` after changing core/spec.ts)", () => {
    expect(readFileSync(join(ROOT, "docs", "spec.md"), "utf8")).toBe(specMarkdown());
  });

  it("documents every top-level field of the schema", () => {
    const doc = specMarkdown();
    for (const key of Object.keys(SweepSpec.shape)) expect(doc).toContain(`| \`${key}\` |`);
  });
});

describe("README", () => {
  it("quick start uses the template that exists and the test command CI runs", () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    expect(readme).toContain("npx spawn sweep launch templates/quickstart.yaml --wait");
    expect(readme).toContain("npm test");
    expect(readFileSync(join(ROOT, ".ci", "run"), "utf8")).toMatch(/^npm ci$[\s\S]*^npm test$/m);
  });
});
