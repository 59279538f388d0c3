/**
 * The task contract: what a user's command sees (environment, params file, command
 * rendering). See docs/agent.md.
 */

/** `learning-rate` → `LEARNING_RATE`: upper-cased, every non-alphanumeric character becomes `_`. */
export function paramEnvName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}
