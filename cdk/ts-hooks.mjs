// Module hooks for cdk/ts-loader.mjs (they run on Node's loader thread).
import { readFile } from "node:fs/promises";
import { transform } from "esbuild";

export async function resolve(specifier, context, nextResolve) {
  try {
    return await nextResolve(specifier, context);
  } catch (error) {
    if (error?.code !== "ERR_MODULE_NOT_FOUND" || !specifier.endsWith(".js")) throw error;
    // `./foo.js` and `#core/foo.js` name TypeScript sources: try the `.ts` file.
    return nextResolve(`${specifier.slice(0, -3)}.ts`, context);
  }
}

export async function load(url, context, nextLoad) {
  if (!url.startsWith("file:") || !url.endsWith(".ts")) return nextLoad(url, context);
  const source = await readFile(new URL(url), "utf8");
  const { code } = await transform(source, {
    loader: "ts",
    format: "esm",
    target: `node${process.versions.node}`,
    sourcemap: "inline",
    sourcefile: new URL(url).pathname,
  });
  return { format: "module", source: code, shortCircuit: true };
}
