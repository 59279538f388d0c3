// Lets `node` run the CDK app's TypeScript directly (cdk.json: `node --import ./cdk/ts-loader.mjs
// cdk/bin/app.ts`), so `npx cdk synth` needs no build step and no tsx. Sources import siblings
// with `.js` suffixes and `#core/*`-style aliases (ESM, NodeNext); Node resolves those to `.js`
// paths that only exist as `.ts`, so the resolver retries with `.ts`, and the loader strips
// types with esbuild (already a dependency: NodejsFunction bundles with it).
import { register } from "node:module";

register("./ts-hooks.mjs", import.meta.url);
