/**
 * `spawn templates list|show|init`: finds templates in the user's template directory and in the
 * project's templates/, reads their manifests, and writes a copy with variables applied.
 *
 * A template is `<name>.yaml` (a spec) with an optional `<name>.template.yaml` manifest; its
 * workdir, when it is a subdirectory of the template directory, is copied along. A user template
 * shadows a project template of the same name.
 */
import { existsSync } from "node:fs";
import { cp, mkdir, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { isAbsolute, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import YAML from "yaml";
import { AbortError, NotFoundError } from "#core/errors.js";
import { parseSpec, SpecError } from "#core/spec.js";
import { pathSegments, resolveVars, TemplateManifest } from "#core/templates.js";

export type TemplateSource = "user" | "project";

export interface TemplateInfo {
  name: string;
  source: TemplateSource;
  dir: string;
  specPath: string;
  manifestPath?: string;
  description: string;
  manifest: TemplateManifest;
}

const MANIFEST_SUFFIX = ".template.yaml";

/**
 * The user's templates: `$SPAWN_HOME/templates` when SPAWN_HOME is set (it overrides every spawn
 * directory), else `$XDG_CONFIG_HOME/spawn/templates`, else `~/.config/spawn/templates`.
 */
export function userTemplatesDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SPAWN_HOME) return join(env.SPAWN_HOME, "templates");
  const config = env.XDG_CONFIG_HOME ? env.XDG_CONFIG_HOME : join(homedir(), ".config");
  return join(config, "spawn", "templates");
}

/** The project's templates/: two levels up from this module in source, one from a bundle in dist/. */
export function projectTemplatesDir(): string {
  const candidates = [
    new URL("../../templates", import.meta.url),
    new URL("../templates", import.meta.url),
  ].map((u) => fileURLToPath(u));
  return candidates.find((p) => existsSync(join(p, "quickstart.yaml"))) ?? candidates[0]!;
}

/** The first comment line of a spec, for templates without a manifest. */
function firstComment(text: string): string {
  const line = text.split("\n").find((l) => l.startsWith("#"));
  return line ? line.replace(/^#\s*/, "") : "";
}

async function readManifest(path: string): Promise<TemplateManifest> {
  const doc = YAML.parseDocument(await readFile(path, "utf8"), { uniqueKeys: true });
  if (doc.errors.length > 0) throw new AbortError(`${path}: ${doc.errors[0]!.message.split("\n")[0]}`);
  const result = TemplateManifest.safeParse(doc.toJS());
  if (!result.success) {
    const issues = result.error.issues.map((i) => `  ${i.path.join(".") || "(root)"}: ${i.message}`);
    throw new AbortError(`invalid template manifest ${path}:\n${issues.join("\n")}`, "see docs/templates.md");
  }
  return result.data;
}

async function templatesIn(dir: string, source: TemplateSource): Promise<TemplateInfo[]> {
  const entries = await readdir(dir).catch(() => [] as string[]);
  const out: TemplateInfo[] = [];
  for (const file of entries.sort()) {
    if (!file.endsWith(".yaml") || file.endsWith(MANIFEST_SUFFIX)) continue;
    const name = file.slice(0, -".yaml".length);
    const specPath = join(dir, file);
    const manifestPath = join(dir, `${name}${MANIFEST_SUFFIX}`);
    const hasManifest = entries.includes(`${name}${MANIFEST_SUFFIX}`);
    const manifest = hasManifest
      ? await readManifest(manifestPath)
      : TemplateManifest.parse({ description: "-" });
    const description = hasManifest ? manifest.description : firstComment(await readFile(specPath, "utf8"));
    out.push({
      name,
      source,
      dir,
      specPath,
      manifestPath: hasManifest ? manifestPath : undefined,
      description,
      manifest,
    });
  }
  return out;
}

/** Every template, user templates first shadowing project ones, sorted by name. */
export async function listTemplates(env: NodeJS.ProcessEnv = process.env): Promise<TemplateInfo[]> {
  const user = await templatesIn(userTemplatesDir(env), "user");
  const names = new Set(user.map((t) => t.name));
  const project = (await templatesIn(projectTemplatesDir(), "project")).filter((t) => !names.has(t.name));
  return [...user, ...project].sort((a, b) => a.name.localeCompare(b.name));
}

export async function findTemplate(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TemplateInfo> {
  const all = await listTemplates(env);
  const found = all.find((t) => t.name === name);
  if (!found) throw new NotFoundError("template", name, `known: ${all.map((t) => t.name).join(", ")}`);
  return found;
}

/** The template's workdir when it is a subdirectory of the template directory (copied at init). */
async function templateWorkdir(
  template: TemplateInfo,
  spec: { workdir: string },
): Promise<string | undefined> {
  if (isAbsolute(spec.workdir)) return undefined;
  const dir = resolve(template.dir, spec.workdir);
  const rel = relative(template.dir, dir);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) return undefined;
  return (await stat(dir).catch(() => undefined))?.isDirectory() ? rel : undefined;
}

export interface TemplateDetails {
  template: TemplateInfo;
  specText: string;
  /** The workdir copied at init, relative to the template directory. */
  workdir?: string;
  files: string[];
}

export async function showTemplate(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<TemplateDetails> {
  const template = await findTemplate(name, env);
  const specText = await readFile(template.specPath, "utf8");
  const spec = parseSpec(YAML.parse(specText), [], template.specPath);
  const workdir = await templateWorkdir(template, spec);
  const files = workdir
    ? (await readdir(join(template.dir, workdir), { recursive: true, withFileTypes: true }))
        .filter((e) => e.isFile())
        .map((e) => relative(template.dir, join(e.parentPath, e.name)).split(sep).join("/"))
        .sort()
    : [];
  return { template, specText, workdir, files };
}

export interface InitResult {
  name: string;
  specPath: string;
  dir: string;
  vars: Record<string, unknown>;
  files: string[];
}

/**
 * Writes `<outDir>/<name>.yaml` with the variables applied (comments kept) and copies the
 * template's workdir beside it. Everything is checked first: unknown or missing variables, a spec
 * the values make invalid, or a file that already exists write nothing.
 */
export async function initTemplate(
  name: string,
  options: { vars?: readonly string[]; outDir?: string },
  env: NodeJS.ProcessEnv = process.env,
): Promise<InitResult> {
  const details = await showTemplate(name, env);
  const { template } = details;
  const values = resolveVars(name, template.manifest, options.vars ?? [], (text) => YAML.parse(text));
  const doc = YAML.parseDocument(details.specText);
  for (const [varName, value] of Object.entries(values)) {
    for (const path of template.manifest.vars[varName]!.paths) doc.setIn(pathSegments(path), value);
  }
  try {
    parseSpec(doc.toJS(), [], `${name} with ${Object.keys(values).join(", ") || "no variables"}`);
  } catch (error) {
    if (error instanceof SpecError)
      throw new AbortError(error.message, "a --var value is out of range for the spec field it sets");
    throw error;
  }

  const dir = resolve(options.outDir ?? name);
  const specPath = join(dir, `${name}.yaml`);
  const targets = [specPath, ...(details.workdir ? [join(dir, details.workdir)] : [])];
  const clash = targets.find((t) => existsSync(t));
  if (clash) throw new AbortError(`${clash} exists`, "choose another directory with -o");

  await mkdir(dir, { recursive: true });
  if (details.workdir)
    await cp(join(template.dir, details.workdir), join(dir, details.workdir), { recursive: true });
  await writeFile(specPath, doc.toString({ lineWidth: 0 }), { flag: "wx" });
  return { name, specPath, dir, vars: values, files: [`${name}.yaml`, ...details.files] };
}
