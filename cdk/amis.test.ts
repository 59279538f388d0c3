import { readdirSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import {
  AMIS_DIR,
  COMPONENT_ACTIONS,
  ComponentDocument,
  componentYaml,
  readComponent,
  readRecipe,
  renderComponent,
  semanticVersion,
} from "./lib/image-pipeline.js";
import { placeholders } from "./lib/template.js";

const componentFiles = readdirSync(`${AMIS_DIR}/components`).filter((f) => f.endsWith(".yaml"));

describe("amis/ component documents", () => {
  it("every file under amis/components is in the recipe", () => {
    const listed = readRecipe()
      .components.flatMap((c) => ("file" in c ? [c.file] : []))
      .sort();
    expect(listed).toEqual(componentFiles.map((f) => `components/${f}`).sort());
  });

  it.each(componentFiles)(
    "%s: schema 1.0, known phases, named steps, known actions with their inputs",
    (file) => {
      const doc = readComponent(`${AMIS_DIR}/components/${file}`);
      expect(doc.schemaVersion).toBe("1.0");
      expect(doc.phases.map((p) => p.name)).toContain("build");
      expect(doc.phases.map((p) => p.name)).toContain("validate");
      for (const step of doc.phases.flatMap((p) => p.steps)) {
        expect(COMPONENT_ACTIONS).toContain(step.action);
      }
    },
  );

  it("installs the driver, CUDA, Node, the agent, the executor and the unit", () => {
    const nvidia = JSON.stringify(readComponent(`${AMIS_DIR}/components/nvidia-cuda.yaml`));
    expect(nvidia).toContain("dnf install -y nvidia-open");
    expect(nvidia).toContain("cuda-toolkit-13-0");
    expect(nvidia).toContain("modinfo -F version nvidia");
    const agent = readComponent(`${AMIS_DIR}/components/spawn-agent.yaml`);
    const rendered = renderComponent(
      agent,
      { version: "1.2.3", bootScript: "#!/bin/bash\necho boot\n" },
      "t",
    );
    const build = rendered.phases.find((p) => p.name === "build")!;
    expect(build.steps.map((st) => st.action)).toEqual(["CreateFile", "ExecuteBash"]);
    expect(build.steps[0]!.inputs).toEqual([
      expect.objectContaining({ path: "/opt/spawn/spawn-boot.sh", content: "#!/bin/bash\necho boot\n" }),
    ]);
    expect(build.steps[1]!.inputs).toEqual({ commands: ["/opt/spawn/spawn-boot.sh install"] });
    const validate = JSON.stringify(rendered.phases.find((p) => p.name === "validate"));
    expect(validate).toContain("test -s /opt/spawn/1.2.3/agent.js");
    expect(validate).toContain("systemctl cat spawn-agent.service");
  });

  it("renders to YAML that round-trips, with schemaVersion kept a string and nothing left to fill", () => {
    const agent = readComponent(`${AMIS_DIR}/components/spawn-agent.yaml`);
    const script = "#!/bin/bash\nset -e\n# a long line that must never be folded: ".padEnd(300, "x");
    const yaml = componentYaml(renderComponent(agent, { version: "1.2.3", bootScript: script }, "t"));
    expect(placeholders(yaml)).toEqual([]);
    expect(yaml).toContain('schemaVersion: "1.0"');
    const again = ComponentDocument.parse(parse(yaml));
    expect(again.phases[0]!.steps[0]!.inputs).toEqual([expect.objectContaining({ content: script })]);
  });

  it("refuses a placeholder without a value", () => {
    const agent = readComponent(`${AMIS_DIR}/components/spawn-agent.yaml`);
    expect(() => renderComponent(agent, { version: "1.2.3" }, "agent.yaml")).toThrow(
      "agent.yaml: no value for @{bootScript}",
    );
  });

  it.each([
    ["schemaVersion as a number", { schemaVersion: 1 }, "schemaVersion"],
    ["an unknown phase", { phases: [{ name: "deploy", steps: [] }] }, "phases.0.name"],
    [
      "an unknown action",
      { phases: [{ name: "build", steps: [{ name: "A", action: "RunScript", inputs: {} }] }] },
      "phases.0.steps.0.action",
    ],
    [
      "a step name with a hyphen",
      { phases: [{ name: "build", steps: [{ name: "a-b", action: "Reboot", inputs: {} }] }] },
      "phases.0.steps.0.name",
    ],
    [
      "ExecuteBash without commands",
      {
        phases: [{ name: "build", steps: [{ name: "A", action: "ExecuteBash", inputs: { commands: [] } }] }],
      },
      "phases.0.steps.0.inputs",
    ],
    [
      "two steps of one name",
      {
        phases: [
          {
            name: "build",
            steps: [
              { name: "A", action: "Reboot", inputs: {} },
              { name: "A", action: "Reboot", inputs: {} },
            ],
          },
        ],
      },
      "phases.0.steps.1.name",
    ],
    [
      "a phase twice",
      {
        phases: [
          { name: "build", steps: [{ name: "A", action: "Reboot", inputs: {} }] },
          { name: "build", steps: [{ name: "B", action: "Reboot", inputs: {} }] },
        ],
      },
      "phases",
    ],
  ])("rejects %s", (_what, change, path) => {
    const base = { name: "x", description: "x", schemaVersion: "1.0", phases: [] };
    const result = ComponentDocument.safeParse({ ...base, ...change });
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((i) => i.path.join("."))).toContain(path);
  });
});

describe("amis/recipe.yaml", () => {
  it("builds on a managed Amazon Linux 2023 image with a gp3 root and no GPU", () => {
    const recipe = readRecipe();
    expect(recipe.parentImage).toMatch(/^amazon-linux-2023-x86\//);
    expect(recipe.rootVolumeGiB).toBeGreaterThanOrEqual(75);
    for (const type of recipe.buildInstanceTypes) expect(type).not.toMatch(/^(g|p)\d/);
  });

  it("versions components by the spawn version, without prerelease suffixes", () => {
    expect(semanticVersion("0.1.0")).toBe("0.1.0");
    expect(semanticVersion("1.2.3-rc.1")).toBe("1.2.3");
    expect(() => semanticVersion("dev")).toThrow('spawn version "dev" is not major.minor.patch');
  });
});
