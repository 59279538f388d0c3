/**
 * Shared by the cdk tests: one synthesized app per test file, deployed to a home region with named
 * zones and one launch region, and a tiny evaluator for the intrinsic functions CloudFormation
 * would resolve, so values built from tokens (the launch configuration JSON) can be checked as
 * their readers will see them.
 */
import { App } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import { readConfig, type SpawnConfig } from "../lib/config.js";
import { addSpawnStacks, type SpawnRegionStack, type SpawnStack } from "../lib/stacks.js";

export const HOME = "us-east-1";
export const LAUNCH_REGION = "us-west-2";
export const HOME_AZS = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"];

export interface Synthesized {
  app: App;
  config: SpawnConfig;
  home: SpawnStack;
  region: SpawnRegionStack;
  homeTemplate: Template;
  regionTemplate: Template;
}

/**
 * Builds and synthesizes the app. CloudFormation validation (slow: it loads every resource schema)
 * runs only where asked; cdk/nag.test.ts asks, and requires it to find nothing.
 */
export function synthesize(
  context: Record<string, unknown> = {},
  options: { validate?: boolean; plugins?: (app: App) => void } = {},
): Synthesized {
  const app = new App({
    builtinCloudFormationValidation: options.validate ?? false,
    context: {
      "spawn:region": HOME,
      "spawn:launchRegions": LAUNCH_REGION,
      [`spawn:azs:${HOME}`]: HOME_AZS.join(","),
      ...context,
    },
  });
  const config = readConfig((key) => app.node.tryGetContext(key), {});
  options.plugins?.(app);
  const { home, regions } = addSpawnStacks(app, config);
  const region = regions[0]!;
  return {
    app,
    config,
    home,
    region,
    homeTemplate: Template.fromStack(home),
    regionTemplate: Template.fromStack(region),
  };
}

type Json = unknown;

/** Resolves Ref, Fn::GetAtt, Fn::Join, Fn::Select and Fn::GetAZs with made-up but well-formed values. */
export function evaluate(value: Json, template: Template, region: string): Json {
  const resources = template.toJSON().Resources as Record<string, { Type: string }>;
  const hex = (id: string) =>
    [...id]
      .reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 7)
      .toString(16)
      .padStart(8, "0");
  const ref = (id: string): string => {
    if (id === "AWS::Region") return region;
    if (id === "AWS::AccountId") return "123456789012";
    if (id === "AWS::Partition") return "aws";
    const type = resources[id]?.Type;
    if (type === "AWS::EC2::LaunchTemplate") return `lt-${hex(id)}`;
    if (type === "AWS::EC2::Subnet") return `subnet-${hex(id)}`;
    if (type === "AWS::EC2::SecurityGroup") return `sg-${hex(id)}`;
    return `ref-${id}`;
  };
  const go = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(go);
    if (!v || typeof v !== "object") return v;
    const o = v as Record<string, Json>;
    if ("Ref" in o) return ref(o.Ref as string);
    if ("Fn::GetAtt" in o) {
      const [id, attr] = o["Fn::GetAtt"] as [string, string];
      if (attr === "LatestVersionNumber") return "3";
      if (attr === "GroupId") return `sg-${hex(id)}`;
      return `${id}.${attr}`;
    }
    if ("Fn::Join" in o) {
      const [sep, parts] = o["Fn::Join"] as [string, Json[]];
      return (go(parts) as Json[]).join(sep);
    }
    if ("Fn::GetAZs" in o) return ["a", "b", "c", "d"].map((l) => `${region}${l}`);
    if ("Fn::Select" in o) {
      const [i, list] = o["Fn::Select"] as [number, Json];
      return (go(list) as Json[])[i];
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, go(x)]));
  };
  return go(value);
}
