/**
 * `npx cdk synth|deploy|destroy` runs this (cdk.json). Settings come from CDK context; see
 * docs/aws.md. cdk-nag's AWS Solutions checks run on every synth: a finding without an
 * acknowledgement (and its reason) fails it.
 */
import { App, Validations } from "aws-cdk-lib";
import { AwsSolutionsChecks } from "cdk-nag";
import { readConfig } from "../lib/config.js";
import { addSpawnStacks } from "../lib/stacks.js";

const app = new App();
Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
addSpawnStacks(
  app,
  readConfig((key) => app.node.tryGetContext(key)),
);
app.synth();
