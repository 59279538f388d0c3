/**
 * `@{name}` placeholders, the one template syntax of the files under cdk/user-data/ and amis/
 * (it collides neither with shell `${…}` nor with Image Builder's `{{ … }}`). Values may be CDK
 * tokens; CloudFormation fills them in.
 */

const PLACEHOLDER = /@\{([A-Za-z0-9_]+)\}/g;

/** Fills every placeholder; a placeholder without a value, or a value no placeholder uses, is a bug. */
export function renderTemplate(text: string, values: Readonly<Record<string, string>>, what: string): string {
  const used = new Set<string>();
  const missing = new Set<string>();
  const out = text.replace(PLACEHOLDER, (match, name: string) => {
    const value = values[name];
    if (value === undefined) {
      missing.add(name);
      return match;
    }
    used.add(name);
    return value;
  });
  if (missing.size > 0)
    throw new Error(`${what}: no value for ${[...missing].map((n) => `@{${n}}`).join(", ")}`);
  const unused = Object.keys(values).filter((name) => !used.has(name));
  if (unused.length > 0) throw new Error(`${what}: no placeholder for ${unused.join(", ")}`);
  return out;
}

/** The placeholder names a template uses, in order of first use. */
export function placeholders(text: string): string[] {
  return [...new Set([...text.matchAll(PLACEHOLDER)].map((m) => m[1]!))];
}
