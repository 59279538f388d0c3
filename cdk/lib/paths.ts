/** Where the project's files are, for the CDK app (run from source by cdk/ts-loader.mjs, and by vitest). */
import { fileURLToPath } from "node:url";

/** The repository (package) root. */
export const PROJECT_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** A path under the project root. */
export function projectPath(...parts: string[]): string {
  return [PROJECT_ROOT.replace(/\/$/, ""), ...parts].join("/");
}
