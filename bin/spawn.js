#!/usr/bin/env node
// Node 20 is supported until the AWS SDK drops it (see docs/adr/0001-runtime-and-packaging.md);
// its deprecation notice would otherwise print on every command.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
await import("../dist/cli.js");
