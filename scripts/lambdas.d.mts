// Types for scripts/lambdas.mjs (imported by TypeScript tests and the CDK app's tests).
import type { BuildOptions, Metafile, Plugin } from "esbuild";

export declare const zodEnglishOnly: Plugin;
export declare const REQUIRE_BANNER: string;
export declare const LAMBDA_ENTRY_FILE: string;
export declare const LAMBDA_NODE_OPTIONS: string;
export declare function lambdaBuildOptions(name: string, outdir: string): BuildOptions;
export declare function lambdaNames(): string[];
export declare function buildLambda(name: string, outdir: string): Promise<Metafile>;
