import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { artifactKeys } from "#providers/aws/launch-config.js";
import { placeholders, renderTemplate } from "./lib/template.js";
import { AGENT_UNIT_PATH, BOOT_SCRIPT_PATH, renderBootScript, unitExecStart } from "./lib/user-data.js";

const values = {
  stackName: "spawn",
  version: "0.1.0",
  homeRegion: "us-east-1",
  artifactsBucket: "spawn-artifacts-123456789012-us-east-1",
  resultsBucket: "spawn-results-123456789012-us-east-1",
  tablePrefix: "spawn-",
  eventBus: "spawn",
};
const script = renderBootScript(values);

describe("template rendering", () => {
  it("fills placeholders and refuses a missing or an unused value", () => {
    expect(renderTemplate("a @{x} b @{x}", { x: "1" }, "t")).toBe("a 1 b 1");
    expect(() => renderTemplate("a @{x} @{y}", { x: "1" }, "t")).toThrow("t: no value for @{y}");
    expect(() => renderTemplate("a @{x}", { x: "1", z: "2" }, "t")).toThrow("t: no placeholder for z");
    // Shell variables and Image Builder variables are not placeholders.
    expect(placeholders(["$HOME", "$" + "{PATH}", "@{a}", "{{ b }}", "@{c}", "@{a}"].join(" "))).toEqual([
      "a",
      "c",
    ]);
  });
});

describe("instance bootstrap (user-data)", () => {
  it("leaves no placeholder and parses as bash", () => {
    expect(placeholders(script)).toEqual([]);
    const dir = mkdtempSync(join(tmpdir(), "spawn-boot-"));
    writeFileSync(join(dir, "boot.sh"), script);
    expect(() => execFileSync("bash", ["-n", join(dir, "boot.sh")])).not.toThrow();
  });

  it("carries names only: no credentials, keys or secrets", () => {
    expect(script).not.toMatch(
      /AWS_SECRET_ACCESS_KEY|AWS_ACCESS_KEY_ID|AWS_SESSION_TOKEN|AKIA[0-9A-Z]{16}|password/i,
    );
    for (const value of Object.values(values)) expect(script).toContain(value);
  });

  it("talks to instance metadata with IMDSv2 tokens only", () => {
    expect(script).toContain('-X PUT "$IMDS/latest/api/token"');
    expect(script).toContain("X-aws-ec2-metadata-token-ttl-seconds");
    const gets = script
      .split("\n")
      .filter((line) => line.includes("$IMDS/latest/") && !line.includes("api/token"));
    expect(gets.length).toBeGreaterThan(0);
    for (const line of gets) expect(line).toContain("X-aws-ec2-metadata-token: $TOKEN");
  });

  it("learns its sweep and instance from its tags and checks them before use", () => {
    expect(script).toContain("meta-data/tags/instance/spawn:sweep");
    expect(script).toContain("meta-data/tags/instance/spawn:instance");
    expect(script).toMatch(/SWEEP=\$\(checked_id spawn:sweep/);
    expect(script).toMatch(/INSTANCE=\$\(checked_id spawn:instance/);
  });

  it("fetches this version's agent and executor from the artifacts bucket in the home region", () => {
    expect(script).toContain(`readonly AGENT_KEY='${artifactKeys.agent("0.1.0")}'`);
    expect(script).toContain(`readonly EXECUTOR_KEY_X86_64='${artifactKeys.executor("0.1.0", "x86_64")}'`);
    expect(script).toContain(`readonly EXECUTOR_SOURCE_KEY='${artifactKeys.executorSource("0.1.0")}'`);
    expect(script).toContain('aws --region "$HOME_REGION" s3 cp');
    expect(script).toContain('make -C "$src/agent/executor"');
  });

  it("starts the agent under systemd with the SPAWN_* environment the agent reads", () => {
    for (const name of [
      "SPAWN_PROVIDER=aws",
      "SPAWN_SWEEP_ID=$SWEEP",
      "SPAWN_INSTANCE_ID=$INSTANCE",
      "SPAWN_TABLE_PREFIX=$TABLE_PREFIX",
      "SPAWN_ARTIFACTS_BUCKET=$ARTIFACTS_BUCKET",
      "SPAWN_RESULTS_BUCKET=$RESULTS_BUCKET",
      "SPAWN_EVENT_BUS=$EVENT_BUS",
      "SPAWN_HOME_REGION=$HOME_REGION",
      "AWS_REGION=$HOME_REGION",
    ]) {
      expect(script).toContain(`\n${name}\n`);
    }
    expect(script).toContain("systemctl enable --now spawn-agent.service");
  });

  it("installs the agent's own unit, and Node and the agent exactly where it runs them", () => {
    const unit = readFileSync(AGENT_UNIT_PATH, "utf8");
    expect(script).toContain(unit.trimEnd());
    expect(unit).toContain("EnvironmentFile=/etc/spawn/agent.env");
    const { nodeBin, agentPath } = unitExecStart(unit);
    expect(script).toContain(`readonly NODE_BIN='${nodeBin}'`);
    expect(script).toContain(`readonly AGENT_JS='${agentPath}'`);
    expect(script).toContain('ln -sfn "$ROOT/node/bin/node" "$NODE_BIN"');
    expect(script).toContain('ln -sfn "$VERSION_DIR" "$(dirname "$AGENT_JS")"');
    expect(artifactKeys.agent("0.1.0").endsWith(`/${agentPath.split("/").pop()}`)).toBe(true);
    expect(() => unitExecStart("ExecStart=node agent.js")).toThrow("expected ExecStart=<absolute node>");
  });

  it("verifies the Node download against the release's checksums", () => {
    expect(script).toContain("https://nodejs.org/dist/latest-v22.x");
    expect(script).toContain("SHASUMS256.txt");
    expect(script).toContain("sha256sum -c");
  });

  it("powers off after a failed boot and uploads its log first", () => {
    expect(script).toContain("trap 'on_error $LINENO $?' ERR");
    const handler = script.slice(
      script.indexOf("on_error() {"),
      script.indexOf("\n}\n", script.indexOf("on_error() {")),
    );
    expect(handler).toContain("logs/$SWEEP/boot/$INSTANCE.log");
    expect(handler).toContain("shutdown -h");
    expect(readFileSync(BOOT_SCRIPT_PATH, "utf8")).toContain('[ "$MODE" = boot ] || exit "$2"');
  });
});
