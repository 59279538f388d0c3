import { describe, expect, it } from "vitest";
import { readConfig } from "./lib/config.js";

const from = (context: Record<string, unknown>, env: NodeJS.ProcessEnv = {}) =>
  readConfig((key) => context[key], env);

describe("CDK context", () => {
  it("has defaults for everything, so synth needs no context", () => {
    expect(from({})).toMatchObject({
      stackName: "spawn",
      launchRegions: [],
      azs: {},
      ami: "dlami",
      rootVolumeGiB: 150,
    });
    expect(from({}).homeRegion).toBeUndefined();
  });

  it("reads -c strings the way the CLI passes them", () => {
    const config = from({
      "spawn:region": "us-east-1",
      "spawn:launchRegions": "us-west-2, eu-west-1",
      "spawn:azs:us-west-2": "us-west-2a,us-west-2b",
      "spawn:rootVolumeGiB": "200",
      "spawn:ami": "spawn",
    });
    expect(config).toMatchObject({
      homeRegion: "us-east-1",
      launchRegions: ["us-west-2", "eu-west-1"],
      azs: { "us-west-2": ["us-west-2a", "us-west-2b"] },
      rootVolumeGiB: 200,
      ami: "spawn",
    });
  });

  it("takes the home region from the profile (CDK_DEFAULT_REGION) when not given", () => {
    expect(from({}, { CDK_DEFAULT_REGION: "eu-central-1" }).homeRegion).toBe("eu-central-1");
  });

  it.each([
    [{ "spawn:stackName": "Spawn_1" }, "spawn:stackName: must be 1-20 lowercase letters"],
    [{ "spawn:region": "useast1" }, "spawn:region: must be an AWS region"],
    [
      { "spawn:region": "us-east-1", "spawn:launchRegions": "us-west-2,mars" },
      "spawn:launchRegions: must list AWS regions",
    ],
    [
      { "spawn:region": "us-east-1", "spawn:azs:us-east-1": "us-east-1" },
      "spawn:azs:us-east-1: must list availability zones",
    ],
    [{ "spawn:ami": "ubuntu" }, "spawn:ami:"],
    [{ "spawn:rootVolumeGiB": "40" }, "spawn:rootVolumeGiB:"],
    [{ "spawn:launchRegions": "us-west-2" }, "spawn:launchRegions needs a home region"],
    [
      { "spawn:region": "us-east-1", "spawn:launchRegions": "us-east-1" },
      "must not repeat the home region us-east-1",
    ],
  ])("rejects %j naming the context key", (context, message) => {
    expect(() => from(context)).toThrow(message);
  });
});
