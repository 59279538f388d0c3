/**
 * Lambda configuration from the environment, read once at cold start. A missing variable is a
 * deploy bug: the function fails at init, loudly, naming every missing name, instead of at the
 * first request.
 */

/** Thrown at cold start when the stack did not set a variable the function needs. */
export class MissingEnvironmentError extends Error {
  override name = "MissingEnvironmentError";
}

/** The named variables, all non-empty, or MissingEnvironmentError listing those that are not. */
export function requireEnv<const K extends string>(
  names: readonly K[],
  env: NodeJS.ProcessEnv = process.env,
): Readonly<Record<K, string>> {
  const missing = names.filter((name) => !env[name]);
  if (missing.length) {
    throw new MissingEnvironmentError(
      `missing environment variable(s) ${missing.join(", ")}: the stack sets them; redeploy with \`spawn deploy\``,
    );
  }
  return Object.fromEntries(names.map((name) => [name, env[name] as string])) as Record<K, string>;
}
