/**
 * Integer flags as typed, without commander: `cli/flags.ts` wraps this for the commands, and the
 * dashboard's forms use it as is (the AWS dashboard runs them in a Lambda, which carries no
 * commander). One rule and one message for both.
 */
import { AbortError } from "#core/errors.js";

/** `--limit 5`: an integer of at least `min`, or a usage error naming the flag. */
export function intFlag(name: string, min: number, value: string): number {
  if (!/^\d+$/.test(value) || Number(value) < min)
    throw new AbortError(`${name} must be an integer >= ${min}, got ${JSON.stringify(value)}`);
  return Number(value);
}
