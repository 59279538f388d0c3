// The Lambda bundles, built one way for every use: the CDK app at synth (cdk/lib/lambda.ts runs
// this file for each function it deploys), the bundle test (lambdas/sweep-orchestrator/
// bundle.test.ts) and bench/lambda-bundles.mjs. One minified ES module per handler for Node 22,
// the AWS SDK inside it (ADR 0037), zod's message locales reduced to English, source maps beside
// it (ADR 0031).
//
//   node scripts/lambdas.mjs <outdir> <fn>   → <outdir>/index.mjs, <outdir>/index.mjs.map
import { existsSync, readdirSync } from "node:fs";
import { dirname, join, resolve, sep } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * zod's `z` namespace re-exports every message locale (~260 KiB minified) and esbuild cannot drop
 * a namespace member; spawn never switches zod's locale, so the locale index resolves to English.
 */
export const zodEnglishOnly = {
  name: "zod-english-only",
  setup(b) {
    b.onResolve({ filter: /^\.\.\/locales\/index\.js$/ }, (args) =>
      args.importer.includes(`${sep}zod${sep}`)
        ? { path: join(dirname(args.importer), "..", "locales", "en.js") }
        : undefined,
    );
  },
};

/**
 * zod modules the `z` namespace re-exports but a Lambda never calls: the `z.compile` fast-path
 * compiler and `z.fromJSONSchema` (~40 KiB). They stay importable (same export names), and each
 * export throws if called, saying why.
 */
const ZOD_UNUSED_IN_LAMBDAS = ["core/compile.js", "classic/from-json-schema.js"];

export const zodLambdaOnly = {
  name: "zod-lambda-only",
  setup(b) {
    const suffixes = ZOD_UNUSED_IN_LAMBDAS.map((m) => `${sep}zod${sep}v4${sep}${m.replace("/", sep)}`);
    b.onLoad(
      { filter: /[\\/]zod[\\/]v4[\\/](core[\\/]compile|classic[\\/]from-json-schema)\.js$/ },
      async (args) => {
        if (!suffixes.some((s) => args.path.endsWith(s))) return undefined;
        const names = Object.keys(await import(pathToFileURL(args.path).href));
        const contents = names
          .map(
            (n) =>
              `export const ${n} = () => { throw new Error("zod's ${n} is left out of spawn's Lambda bundles (scripts/lambdas.mjs)"); };`,
          )
          .join("\n");
        return { contents, loader: "js" };
      },
    );
  },
};

/** Bundled CommonJS dependencies call require(); give the ES module output one. */
export const REQUIRE_BANNER =
  "import { createRequire as __spawnCreateRequire } from 'node:module'; const require = __spawnCreateRequire(import.meta.url);";

/**
 * The functions' NODE_OPTIONS: stack traces through the source map beside the bundle. Node reads
 * the map when the module loads, a cost at every cold start (measured by bench/lambda-bundles.mjs,
 * which imports with it), so the map leaves out the sources' text: file and line are enough.
 */
export const LAMBDA_NODE_OPTIONS = "--enable-source-maps";

/** The deployed file in a Lambda's bundle directory (the function's handler is `index.handler`). */
export const LAMBDA_ENTRY_FILE = "index.mjs";

/** Every Lambda in the repository: a directory under lambdas/ with a handler.ts. */
export function lambdaNames() {
  return readdirSync(join(ROOT, "lambdas"), { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(ROOT, "lambdas", d.name, "handler.ts")))
    .map((d) => d.name)
    .sort();
}

/**
 * The esbuild options of `lambdas/<name>/handler.ts` as the stack deploys it. The AWS SDK is
 * bundled from its ES modules (`module` before `main`), so esbuild keeps only the commands and
 * schemas a handler uses: a cold start compiles one file instead of loading the runtime's SDK
 * packages whole, 2.5–4× faster to import for a bundle 3–5× larger (ADR 0037).
 */
export function lambdaBuildOptions(name, outdir) {
  const entry = join(ROOT, "lambdas", name, "handler.ts");
  if (!existsSync(entry)) throw new Error(`no Lambda ${name}: ${entry} does not exist`);
  return {
    entryPoints: [entry],
    outfile: join(outdir, LAMBDA_ENTRY_FILE),
    bundle: true,
    minify: true,
    platform: "node",
    format: "esm",
    target: "node22",
    mainFields: ["module", "main"],
    plugins: [zodEnglishOnly, zodLambdaOnly],
    banner: { js: REQUIRE_BANNER },
    sourcemap: true,
    sourcesContent: false,
    legalComments: "linked",
    metafile: true,
    logLevel: "warning",
  };
}

/**
 * Bundles `lambdas/<name>/handler.ts` into `<outdir>/index.mjs` as the stack deploys it; resolves
 * with esbuild's metafile (inputs, output bytes, external imports).
 */
export async function buildLambda(name, outdir) {
  return (await build(lambdaBuildOptions(name, outdir))).metafile;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [outdir, name] = process.argv.slice(2);
  if (!outdir || !name) {
    process.stderr.write("usage: node scripts/lambdas.mjs <outdir> <lambda name>\n");
    process.exit(2);
  }
  await buildLambda(name, resolve(outdir));
}
