/** Flag parsers and helpers shared by every command group. */

import { readFile } from "node:fs/promises";
import { InvalidArgumentError, Option } from "commander";
import { AbortError, ExitCode } from "#core/errors.js";
import { intFlag } from "./integers.js";

/** `--limit 5`: an integer of at least `min` (cli/integers.ts), or commander's usage error naming the flag. */
export function intArg(name: string, min = 0) {
  return (value: string) => {
    try {
      return intFlag(name, min, value);
    } catch (error) {
      throw new InvalidArgumentError((error as Error).message);
    }
  };
}

/** A repeatable flag's accumulator: `--set a=1 --set b=2`. */
export const collect = (value: string, previous: string[]) => [...previous, value];

export const providerOption = () =>
  new Option("--provider <provider>", "where to run: local (embedded, default) or aws").choices([
    "local",
    "aws",
  ]);

/** Ctrl-C while waiting: exit 130, and say the work goes on. */
export function onInterrupt(message: string): void {
  process.once("SIGINT", () => {
    process.stderr.write(`\n${message}\n`);
    process.exit(ExitCode.interrupted);
  });
}

/** A file the user named: a missing or unreadable one is their error (exit 2), saying what it was for. */
export async function readUserFile(path: string, what: string, hint?: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new AbortError(
      code === "ENOENT"
        ? `${what} ${path} not found`
        : `cannot read ${what} ${path}: ${(error as Error).message}`,
      hint,
    );
  }
}
