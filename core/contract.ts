/**
 * The task contract: what a user's command sees (environment, params file, command
 * rendering). See docs/agent.md.
 *
 * Pure: no I/O. The agent renders the command and builds the environment with these
 * functions; spec validation uses {@link checkCommandTemplate} and
 * {@link quotedTemplateReferences} to reject a bad command before anything is created.
 */
import { AbortError } from "./errors.js";
import type { Params, ParamValue } from "./spec.js";

/** `learning-rate` → `LEARNING_RATE`: upper-cased, every non-alphanumeric character becomes `_`. */
export function paramEnvName(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, "_");
}

/**
 * The alias name of a parameter's variable, `PARAM_<name>`: the case is kept, every character other
 * than a letter, digit or `_` becomes `_` (`learning-rate` → `PARAM_learning_rate`).
 */
export function paramAliasEnvName(name: string): string {
  return `PARAM_${name.replace(/[^A-Za-z0-9_]/g, "_")}`;
}

/**
 * The string form of a parameter, used for `SPAWN_PARAM_*` and (quoted) for `{{name}}`: a string
 * as-is, a number, boolean or null as JSON writes it (`0.001`, `1e-7`, `true`, `null`), an object or
 * array as compact JSON. The params file keeps the exact typed value.
 */
export function paramString(value: ParamValue): string {
  if (typeof value === "string") return value;
  if (value === null || typeof value === "number" || typeof value === "boolean") return String(value);
  return JSON.stringify(value);
}

const NUL_MESSAGE = "a parameter value holds a NUL character, which cannot be passed to a command";
const NUL_HINT = "remove the NUL, or read the value from $SPAWN_PARAMS_FILE";

/**
 * POSIX sh single-quoting of {@link paramString}: always `'...'`, every `'` written as `'\''`, so
 * nothing inside is interpreted (`$(...)`, backticks, `;`, newlines, globs, spaces, quotes, any
 * Unicode): the command receives the exact bytes as one word. The empty string becomes `''`.
 *
 * @throws AbortError for a value holding a NUL character, which no shell argument can carry.
 */
export function shellQuote(value: ParamValue): string {
  const text = paramString(value);
  // The message leaves the value out: callers may echo it through a shell.
  if (text.includes("\0")) throw new AbortError(NUL_MESSAGE, NUL_HINT);
  return `'${text.replaceAll("'", "'\\''")}'`;
}

/**
 * Names every command may reference besides its parameters: `{{index}}` (the task index, from 0),
 * `{{attempt}}` (from 1) and `{{sweep_id}}`. A parameter of the same name shadows the built-in.
 */
export const BUILTIN_TEMPLATE_NAMES: readonly string[] = ["index", "attempt", "sweep_id"];

/** Values of the built-in template names for one attempt of one task. */
export interface TemplateBuiltins {
  index: number;
  attempt: number;
  sweepId: string;
}

/**
 * A reference: `{{name}}` or `{{ name }}` where name is a valid parameter name (a letter or `_`, then
 * letters, digits, `_ . -`). Anything else between braces (`{{.Names}}`, `{{ json . }}`) is not a
 * reference and is left as written.
 */
const REFERENCE = /\{\{[ \t]*([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*\}\}/g;

/** The distinct names a command template references, in order of first appearance. */
export function templateReferences(template: string): string[] {
  return [...new Set(Array.from(template.matchAll(REFERENCE), (m) => m[1]!))];
}

/**
 * The names `template` references that are neither in `knownNames` (the sweep's parameters) nor
 * built-in ({@link BUILTIN_TEMPLATE_NAMES}); empty when the template is fine.
 */
export function checkCommandTemplate(template: string, knownNames: Iterable<string>): string[] {
  const known = new Set(knownNames);
  return templateReferences(template).filter(
    (name) => !known.has(name) && !BUILTIN_TEMPLATE_NAMES.includes(name),
  );
}

type QuoteContext = "plain" | "single" | "double" | "subst" | "backtick";

/** Characters that end an unquoted word in sh. */
const WORD_END = /[\s;&|()<>]/;

/**
 * Which offsets of `template` lie inside quotes or a here-document body, found by a small sh lexer:
 * single and double quotes, backslash escapes, `#` comments, `$(...)` and backticks (an unquoted
 * context, even inside double quotes) and `<<`/`<<-` here-documents. Used to refuse `'{{p}}'`,
 * `"{{p}}"` and here-document references: the value is quoted already, and quoting it again would
 * leave it unquoted, open to the shell (a here-document body expands `$(...)` even within `'...'`).
 */
function quotedOffsets(template: string): (offset: number) => boolean {
  const quoted = new Uint8Array(template.length);
  const stack: QuoteContext[] = ["plain"];
  const heredocs: Array<{ delimiter: string; stripTabs: boolean }> = [];
  let wordStart = true;
  for (let i = 0; i < template.length; i++) {
    const top = stack[stack.length - 1]!;
    const c = template[i]!;
    if (top === "single") {
      quoted[i] = 1;
      if (c === "'") stack.pop();
      continue;
    }
    if (top === "double") {
      quoted[i] = 1;
      if (c === "\\") {
        if (i + 1 < template.length) quoted[i + 1] = 1;
        i++;
      } else if (c === '"') stack.pop();
      else if (c === "`") stack.push("backtick");
      else if (c === "$" && template[i + 1] === "(") {
        stack.push("subst");
        i++;
      }
      continue;
    }
    // plain, subst, backtick: unquoted contexts.
    if (c === "\\") {
      i++;
      wordStart = false;
      continue;
    }
    if (c === "#" && wordStart) {
      while (i + 1 < template.length && template[i + 1] !== "\n") i++;
      continue;
    }
    if (c === "\n" && heredocs.length > 0) {
      // Here-document bodies start on the line after the operator, one after the other.
      let lineStart = i + 1;
      for (const { delimiter, stripTabs } of heredocs.splice(0)) {
        while (lineStart < template.length) {
          let lineEnd = template.indexOf("\n", lineStart);
          if (lineEnd === -1) lineEnd = template.length;
          const line = template.slice(lineStart, lineEnd);
          quoted.fill(1, lineStart, lineEnd);
          lineStart = lineEnd + 1;
          if ((stripTabs ? line.replace(/^\t+/, "") : line) === delimiter) break;
        }
      }
      i = lineStart - 1;
      wordStart = true;
      continue;
    }
    if (c === "<" && template[i + 1] === "<" && template[i + 2] !== "<") {
      let j = i + 2;
      const stripTabs = template[j] === "-";
      if (stripTabs) j++;
      while (template[j] === " " || template[j] === "\t") j++;
      let delimiter = "";
      while (j < template.length && !WORD_END.test(template[j]!)) {
        const d = template[j]!;
        if (d !== "'" && d !== '"' && d !== "\\") delimiter += d;
        j++;
      }
      heredocs.push({ delimiter, stripTabs });
      i = j - 1;
      wordStart = true;
      continue;
    }
    wordStart = WORD_END.test(c);
    if (c === "'") stack.push("single");
    else if (c === '"') stack.push("double");
    else if (c === "`") {
      if (top === "backtick") stack.pop();
      else stack.push("backtick");
    } else if (c === "$" && template[i + 1] === "(") {
      stack.push("subst");
      i++;
      wordStart = true;
    } else if (c === "(" && top === "subst") stack.push("subst");
    else if (c === ")" && top === "subst") stack.pop();
  }
  return (offset) => quoted[offset] === 1;
}

/**
 * The names referenced from inside single or double quotes (`'{{lr}}'`, `"--lr={{lr}}"`). Such a
 * command is refused: every value is single-quoted by {@link renderCommand}, so quotes around a
 * reference would end that quoting and expose the value to the shell. Write `--lr={{lr}}` instead.
 */
export function quotedTemplateReferences(template: string): string[] {
  const isQuoted = quotedOffsets(template);
  const out = new Set<string>();
  for (const m of template.matchAll(REFERENCE)) if (isQuoted(m.index)) out.add(m[1]!);
  return [...out];
}

/**
 * Renders a command template: every `{{name}}` (spaces allowed inside the braces: `{{ name }}`)
 * becomes {@link shellQuote} of the parameter's value, so a value is one shell word with its exact
 * bytes and is never interpreted. The built-in names `{{index}}`, `{{attempt}}` and `{{sweep_id}}`
 * render the same way (quoted) from `builtins`; a parameter of the same name takes precedence.
 *
 * @throws AbortError naming every unknown reference, every reference inside quotes (see
 *   {@link quotedTemplateReferences}), a built-in used without `builtins`, or a referenced value
 *   holding a NUL. Messages hold names, never values.
 */
export function renderCommand(template: string, params: Params, builtins?: TemplateBuiltins): string {
  const values = new Map<string, ParamValue>();
  if (builtins) {
    values.set("index", builtins.index);
    values.set("attempt", builtins.attempt);
    values.set("sweep_id", builtins.sweepId);
  }
  for (const [name, value] of Object.entries(params)) values.set(name, value);
  const unknown = templateReferences(template).filter((name) => !values.has(name));
  if (unknown.length > 0) {
    throw new AbortError(
      `command references ${unknown.map((n) => `{{${n}}}`).join(", ")}, which ${unknown.length === 1 ? "is not a parameter" : "are not parameters"}`,
      `known: ${[...values.keys()].map((n) => `{{${n}}}`).join(", ") || "(none)"}`,
    );
  }
  const quoted = quotedTemplateReferences(template);
  if (quoted.length > 0) {
    throw new AbortError(
      `command puts ${quoted.map((n) => `{{${n}}}`).join(", ")} inside quotes`,
      "remove the quotes around the reference: spawn quotes every value itself (write --lr={{lr}}, not '{{lr}}')",
    );
  }
  const withNul = templateReferences(template).filter((name) =>
    paramString(values.get(name) as ParamValue).includes("\0"),
  );
  if (withNul.length > 0) {
    throw new AbortError(`${withNul.map((n) => `{{${n}}}`).join(", ")}: ${NUL_MESSAGE}`, NUL_HINT);
  }
  return template.replace(REFERENCE, (_match, name: string) => shellQuote(values.get(name) as ParamValue));
}

/** What {@link taskEnvironment} needs for one attempt of one task. */
export interface TaskEnvironmentInput {
  sweepId: string;
  /** From 0. */
  index: number;
  taskCount: number;
  /** From 1. */
  attempt: number;
  params: Params;
  paramsFile: string;
  outputDir: string;
  checkpointDir: string;
  metricsFile: string;
  /** A checkpoint from an earlier attempt was restored. */
  resume: boolean;
  /** The spec's `env`. */
  specEnv: Record<string, string | number | boolean>;
  /** GPU UUIDs given to the task, as `CUDA_VISIBLE_DEVICES`; `[]` hides every GPU; absent leaves it unset. */
  gpus?: readonly string[];
  /** A gang member's place and peers, once its gang has met (agent/rendezvous.ts). */
  gang?: GangContract;
}

/** What a gang member's command is told about its gang (docs/gangs.md). */
export interface GangContract {
  /** From 0; rank 0 is the master. */
  rank: number;
  worldSize: number;
  /** JSON: `[{rank, instanceId, address, dnsName, port}]` by rank, the same bytes on every member. */
  peersFile: string;
  /** MPI hostfile: `<address> slots=<n>` per rank. */
  hostfile: string;
  /** Rank 0's address and the port it picked. */
  masterAddr: string;
  masterPort: number;
}

/**
 * The environment of one task attempt (added over the agent's own environment by the runner):
 *
 * - the spec's `env`, stringified (`true` → `"true"`); it comes first, so the contract's variables
 *   below win over a user variable of the same name;
 * - `SPAWN_SWEEP_ID`, `SPAWN_TASK_INDEX`, `SPAWN_TASK_COUNT`, `SPAWN_ATTEMPT`, `SPAWN_PARAMS_FILE`,
 *   `SPAWN_OUTPUT_DIR`, `SPAWN_CHECKPOINT_DIR`, `SPAWN_RESUME` (`1` or `0`), `SPAWN_METRICS_FILE`,
 *   `SPAWN_RANK`, `SPAWN_WORLD_SIZE` (0 and 1 outside a gang), and `CUDA_VISIBLE_DEVICES` when
 *   `gpus` is given; for a gang member also `SPAWN_PEERS_FILE`, `SPAWN_HOSTFILE`, `MASTER_ADDR` and
 *   `MASTER_PORT` (`index` and `taskCount` are then the gang task's, see core/gang.ts);
 * - per parameter, `SPAWN_PARAM_<NAME>` ({@link paramEnvName}) and the alias `PARAM_<name>`
 *   ({@link paramAliasEnvName}), both {@link paramString}. Names that map to the same variable
 *   (`lr` and `LR`) collide: the later parameter wins; the params file is always exact. A value
 *   holding a NUL character cannot be in an environment and is left out (the params file has it);
 * - aliases for scripts written for other tools: `SWEEP_INDEX`, `AWS_BATCH_JOB_ARRAY_INDEX`,
 *   `SLURM_ARRAY_TASK_ID` (the index), `SWEEP_SIZE` and `SLURM_ARRAY_TASK_COUNT` (the task count).
 */
export function taskEnvironment(input: TaskEnvironmentInput): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(input.specEnv)) env[name] = String(value);
  const index = String(input.index);
  const count = String(input.taskCount);
  for (const [name, value] of Object.entries(input.params)) {
    const text = paramString(value);
    if (text.includes("\0")) continue;
    env[paramAliasEnvName(name)] = text;
    env[`SPAWN_PARAM_${paramEnvName(name)}`] = text;
  }
  Object.assign(env, {
    SWEEP_INDEX: index,
    SWEEP_SIZE: count,
    AWS_BATCH_JOB_ARRAY_INDEX: index,
    SLURM_ARRAY_TASK_ID: index,
    SLURM_ARRAY_TASK_COUNT: count,
    SPAWN_SWEEP_ID: input.sweepId,
    SPAWN_TASK_INDEX: index,
    SPAWN_TASK_COUNT: count,
    SPAWN_ATTEMPT: String(input.attempt),
    SPAWN_PARAMS_FILE: input.paramsFile,
    SPAWN_OUTPUT_DIR: input.outputDir,
    SPAWN_CHECKPOINT_DIR: input.checkpointDir,
    SPAWN_RESUME: input.resume ? "1" : "0",
    SPAWN_METRICS_FILE: input.metricsFile,
    SPAWN_RANK: String(input.gang?.rank ?? 0),
    SPAWN_WORLD_SIZE: String(input.gang?.worldSize ?? 1),
  });
  if (input.gang) {
    Object.assign(env, {
      SPAWN_PEERS_FILE: input.gang.peersFile,
      SPAWN_HOSTFILE: input.gang.hostfile,
      MASTER_ADDR: input.gang.masterAddr,
      MASTER_PORT: String(input.gang.masterPort),
    });
  }
  if (input.gpus) env.CUDA_VISIBLE_DEVICES = input.gpus.join(",");
  return env;
}
