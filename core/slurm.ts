/**
 * Slurm import: turns an sbatch script into a spawn spec (`spawn slurm convert`).
 *
 * Pure: the caller reads the file and writes the result. `#SBATCH` directives are read the way
 * sbatch reads them (only before the first command; long and short forms; several options on a
 * line; `#` starts a comment), the supported ones are mapped onto the spec, and every other one
 * becomes a warning that names its line: nothing is dropped silently. The script's body becomes
 * the command, run by the interpreter of its `#!` line, after a preamble that sets the
 * `SLURM_*` variables a script expects. See docs/slurm.md.
 */
import { formatDuration } from "./duration.js";
import { AbortError } from "./errors.js";
import type { SweepSpecInput } from "./spec.js";

/** Something in the script spawn does not carry over, with the line it came from. */
export interface SlurmWarning {
  line: number;
  message: string;
}

/** A decision the converter made that the user may want to revisit; rendered as a comment. */
export interface SlurmNote {
  /** The top-level spec field it concerns. */
  field: keyof SweepSpecInput;
  message: string;
}

export interface SlurmConversion {
  spec: SweepSpecInput;
  warnings: SlurmWarning[];
  notes: SlurmNote[];
}

/** Bad sbatch input: names every offending line, exit 2, nothing written. */
export class SbatchError extends AbortError {
  override name = "SbatchError";
  constructor(
    readonly problems: SlurmWarning[],
    source: string,
  ) {
    super(
      `cannot convert ${source}:\n${problems.map((p) => `  line ${p.line}: ${p.message}`).join("\n")}`,
      "see docs/slurm.md for what spawn slurm convert understands",
    );
  }
}

/** The parameter that carries each array task's Slurm index (`SLURM_ARRAY_TASK_ID`). */
export const ARRAY_PARAM = "slurm_array_task_id";

/** Concurrency for an array without a `%` throttle: Slurm would run as many as the cluster allows. */
export const DEFAULT_ARRAY_CONCURRENCY = 8;

/** Slurm's default MaxArraySize is 1001; spawn allows larger arrays, but not unbounded ones. */
const MAX_ARRAY_TASKS = 100_000;

type ArgKind = "required" | "none" | "optional";

interface OptionDef {
  long: string;
  short?: string;
  arg: ArgKind;
  /** Known to sbatch but without a spawn equivalent: why, shown in the warning. */
  unsupported?: string;
}

const NO_EQUIVALENT = "no spawn equivalent";
const PLACEMENT = "spawn places tasks by resources.instance_types and resources.regions";

/** The sbatch options spawn knows by name; the first block is mapped, the rest warned about. */
const OPTIONS: readonly OptionDef[] = [
  { long: "array", short: "a", arg: "required" },
  { long: "job-name", short: "J", arg: "required" },
  { long: "time", short: "t", arg: "required" },
  { long: "gres", arg: "required" },
  { long: "gpus", short: "G", arg: "required" },
  { long: "gpus-per-node", arg: "required" },
  { long: "gpus-per-task", arg: "required" },
  { long: "nodes", short: "N", arg: "required" },
  { long: "ntasks", short: "n", arg: "required" },
  { long: "ntasks-per-node", arg: "required" },
  { long: "cpus-per-task", short: "c", arg: "required" },
  { long: "mem", arg: "required" },
  { long: "mem-per-cpu", arg: "required" },
  { long: "mem-per-gpu", arg: "required" },
  { long: "output", short: "o", arg: "required" },
  { long: "error", short: "e", arg: "required" },
  { long: "partition", short: "p", arg: "required", unsupported: PLACEMENT },
  {
    long: "account",
    short: "A",
    arg: "required",
    unsupported: "spawn has no accounts; costs go to the AWS account",
  },
  { long: "qos", short: "q", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "constraint", short: "C", arg: "required", unsupported: PLACEMENT },
  { long: "nodelist", short: "w", arg: "required", unsupported: PLACEMENT },
  { long: "exclude", short: "x", arg: "required", unsupported: PLACEMENT },
  { long: "exclusive", arg: "optional", unsupported: "every spawn instance is the sweep's own" },
  { long: "mail-type", arg: "required", unsupported: "use the spec's alerts" },
  { long: "mail-user", arg: "required", unsupported: "use the spec's alerts" },
  {
    long: "dependency",
    short: "d",
    arg: "required",
    unsupported: "use a queue (spawn queue) for dependencies",
  },
  { long: "begin", short: "b", arg: "required", unsupported: "use spawn schedule to start later" },
  {
    long: "requeue",
    arg: "none",
    unsupported: "set retry.max_attempts; preempted tasks are always re-queued",
  },
  { long: "no-requeue", arg: "none", unsupported: "set retry.max_attempts" },
  { long: "signal", arg: "required", unsupported: "spawn sends SIGTERM, then SIGKILL after `grace`" },
  { long: "open-mode", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "export", arg: "required", unsupported: "set variables in the spec's env" },
  { long: "chdir", short: "D", arg: "required", unsupported: "tasks run in a copy of the spec's workdir" },
  { long: "hint", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "reservation", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "comment", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "licenses", short: "L", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "wckey", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "tmp", arg: "required", unsupported: PLACEMENT },
  { long: "distribution", short: "m", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "nice", arg: "optional", unsupported: NO_EQUIVALENT },
  { long: "priority", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "time-min", arg: "required", unsupported: "only --time maps (to timeout)" },
  { long: "mincpus", arg: "required", unsupported: PLACEMENT },
  { long: "sockets-per-node", arg: "required", unsupported: PLACEMENT },
  { long: "cores-per-socket", arg: "required", unsupported: PLACEMENT },
  { long: "threads-per-core", arg: "required", unsupported: PLACEMENT },
  { long: "ntasks-per-core", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "cpu-freq", arg: "required", unsupported: NO_EQUIVALENT },
  { long: "input", short: "i", arg: "required", unsupported: "tasks run with stdin on /dev/null" },
  { long: "parsable", arg: "none", unsupported: NO_EQUIVALENT },
  { long: "wait", short: "W", arg: "none", unsupported: "use spawn sweep launch --wait" },
  { long: "hold", short: "H", arg: "none", unsupported: NO_EQUIVALENT },
  { long: "verbose", short: "v", arg: "none", unsupported: NO_EQUIVALENT },
  { long: "quiet", short: "Q", arg: "none", unsupported: NO_EQUIVALENT },
  { long: "overcommit", short: "O", arg: "none", unsupported: NO_EQUIVALENT },
  { long: "oversubscribe", short: "s", arg: "none", unsupported: NO_EQUIVALENT },
  { long: "no-kill", short: "k", arg: "optional", unsupported: NO_EQUIVALENT },
  { long: "get-user-env", arg: "optional", unsupported: NO_EQUIVALENT },
  { long: "propagate", arg: "optional", unsupported: NO_EQUIVALENT },
  { long: "kill-on-invalid-dep", arg: "required", unsupported: NO_EQUIVALENT },
];

const BY_LONG = new Map(OPTIONS.map((o) => [o.long, o]));
const BY_SHORT = new Map(OPTIONS.filter((o) => o.short).map((o) => [o.short as string, o]));

/** One directive as written: the option's canonical long name (or the unknown name) and its value. */
interface Directive {
  line: number;
  name: string;
  def: OptionDef | undefined;
  value: string | undefined;
  /** As written, for messages. */
  text: string;
}

/**
 * Splits the text after `#SBATCH` into words: whitespace separates, single and double quotes
 * group (and are removed), an unquoted `#` at the start of a word begins a comment.
 */
function splitWords(text: string, line: number, problems: SlurmWarning[]): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const c of text) {
    if (quote) {
      if (c === quote) quote = undefined;
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      word ??= "";
    } else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else if (c === "#" && word === undefined) break;
    else word = (word ?? "") + c;
  }
  if (quote) problems.push({ line, message: `unterminated ${quote} quote in #SBATCH directive` });
  if (word !== undefined) words.push(word);
  return words;
}

/** Parses the words of one `#SBATCH` line into directives (getopt rules: `-Jx`, `-J x`, `--job-name=x`, `--job-name x`). */
function parseDirectives(words: string[], line: number, problems: SlurmWarning[]): Directive[] {
  const out: Directive[] = [];
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    const takeNext = (def: OptionDef | undefined): string | undefined => {
      const next = words[i + 1];
      if (def?.arg === "required" || (!def && next !== undefined && !next.startsWith("-"))) {
        i++;
        return next;
      }
      return undefined;
    };
    if (word.startsWith("--") && word.length > 2) {
      const eq = word.indexOf("=");
      const name = eq === -1 ? word.slice(2) : word.slice(2, eq);
      const def = BY_LONG.get(name);
      let value = eq === -1 ? undefined : word.slice(eq + 1);
      if (value === undefined) value = takeNext(def);
      if (def?.arg === "required" && value === undefined) {
        problems.push({ line, message: `--${name} needs a value` });
        continue;
      }
      if (def?.arg === "none" && value !== undefined) {
        problems.push({ line, message: `--${name} takes no value, got ${JSON.stringify(value)}` });
        continue;
      }
      out.push({
        line,
        name,
        def,
        value,
        text: word + (eq === -1 && value !== undefined ? ` ${value}` : ""),
      });
    } else if (/^-[A-Za-z]/.test(word)) {
      const letter = word[1]!;
      const def = BY_SHORT.get(letter);
      const attached = word.slice(2).replace(/^=/, "");
      let value: string | undefined = attached === "" ? undefined : attached;
      if (value === undefined && def?.arg === "required") value = takeNext(def);
      if (def?.arg === "required" && value === undefined) {
        problems.push({ line, message: `-${letter} needs a value` });
        continue;
      }
      const text = value === undefined ? word : attached ? word : `${word} ${value}`;
      out.push({ line, name: def?.long ?? letter, def, value, text });
    } else {
      problems.push({
        line,
        message: `expected an option such as --time=1:00:00, got ${JSON.stringify(word)}`,
      });
    }
  }
  return out;
}

/** The array spec: `0-15`, `1,3,5-7`, `0-15:4`, each optionally with `%N`. */
export interface ArraySpec {
  ids: number[];
  throttle?: number;
  /** A single range `start-stop[:step]` (stop inclusive), when the spec is exactly that. */
  range?: { start: number; stop: number; step: number };
}

/** Parses `--array`'s value; returns an error message instead of throwing, so the caller can name the line. */
export function parseArray(text: string): ArraySpec | string {
  const [list = "", throttleText, ...rest] = text.split("%");
  if (rest.length > 0) return `--array=${text}: more than one %`;
  let throttle: number | undefined;
  if (throttleText !== undefined) {
    if (!/^\d+$/.test(throttleText) || Number(throttleText) < 1)
      return `--array=${text}: the % throttle must be a whole number >= 1`;
    throttle = Number(throttleText);
  }
  const ids = new Set<number>();
  const parts = list.split(",");
  let range: ArraySpec["range"];
  for (const part of parts) {
    const m = /^(\d+)(?:-(\d+)(?::(\d+))?)?$/.exec(part);
    if (!m)
      return `--array=${text}: ${JSON.stringify(part)} is not an index, a range a-b or a stepped range a-b:s`;
    const start = Number(m[1]);
    const stop = m[2] === undefined ? start : Number(m[2]);
    const step = m[3] === undefined ? 1 : Number(m[3]);
    if (stop < start) return `--array=${text}: range ${part} ends before it starts`;
    if (step < 1) return `--array=${text}: step in ${part} must be >= 1`;
    if ((stop - start) / step + ids.size >= MAX_ARRAY_TASKS)
      return `--array=${text}: more than ${MAX_ARRAY_TASKS} array tasks`;
    for (let id = start; id <= stop; id += step) ids.add(id);
    if (parts.length === 1 && m[2] !== undefined) range = { start, stop, step };
  }
  return { ids: [...ids].sort((a, b) => a - b), throttle, range };
}

/**
 * Slurm's `--time`: `minutes`, `minutes:seconds`, `hours:minutes:seconds`, `days-hours`,
 * `days-hours:minutes`, `days-hours:minutes:seconds`. Milliseconds; `null` for no limit
 * (`0`, `UNLIMITED`, `INFINITE`); a string is an error message.
 */
export function parseSlurmTime(text: string): number | null | string {
  if (/^(unlimited|infinite)$/i.test(text)) return null;
  const bad = `--time=${text}: not a Slurm time (use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)`;
  const m = /^(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?$/.exec(text);
  if (!m) return bad;
  const [, days, a, b, c] = m;
  let seconds: number;
  if (days !== undefined) {
    // With days, the fields are hours[:minutes[:seconds]].
    seconds = Number(days) * 86_400 + Number(a) * 3600 + Number(b ?? 0) * 60 + Number(c ?? 0);
  } else if (c !== undefined) seconds = Number(a) * 3600 + Number(b) * 60 + Number(c);
  else if (b !== undefined) seconds = Number(a) * 60 + Number(b);
  else seconds = Number(a) * 60;
  return seconds === 0 ? null : seconds * 1000;
}

/** Slurm memory sizes (`16G`, `500M`, `16000`, default unit MiB) in MiB; a string is an error message. */
export function parseSlurmMemory(option: string, text: string): number | string {
  const m = /^(\d+(?:\.\d+)?)([KMGT])?B?$/i.exec(text);
  if (!m) return `--${option}=${text}: not a size (use e.g. 16G, 500M or 16000)`;
  const factor = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 }[(m[2] ?? "M").toUpperCase() as "K"];
  return Math.ceil(Number(m[1]) * factor);
}

/** A GPU count from `--gres` entries (`gpu`, `gpu:4`, `gpu:a100:4`) or `--gpus` (`4`, `a100:4`). */
function gpuCount(text: string): { count: number; type?: string } | undefined {
  const m = /^(?:([A-Za-z0-9_.-]+):)?(\d+)$/.exec(text);
  if (!m) return undefined;
  return { count: Number(m[2]), type: m[1] };
}

/** The `#!` line: which interpreter runs the body, and how its text is passed to it. */
function interpreterOf(shebang: string): { argv: string[]; flag: string } | string {
  if (!shebang.startsWith("#!"))
    return "the first line must be #! and an interpreter, as sbatch requires (e.g. #!/bin/bash)";
  let argv = shebang.slice(2).trim().split(/\s+/).filter(Boolean);
  if (argv[0]?.endsWith("/env")) argv = argv.slice(1).filter((a) => a !== "-S");
  const program = argv[0]?.split("/").pop() ?? "";
  if (/^(ba|z|k|da)?sh$/.test(program)) return { argv: [program, ...argv.slice(1)], flag: "-c" };
  if (/^python(\d+(\.\d+)?)?$/.test(program)) return { argv: [program, ...argv.slice(1)], flag: "-c" };
  return `interpreter ${JSON.stringify(argv.join(" "))} is not supported (use sh, bash, zsh, ksh or python)`;
}

/** A braced shell expansion, `${NAME}` (or `${NAME:-default}`), for the generated command. */
const shVar = (expr: string): string => `\${${expr}}`;

/**
 * POSIX single-quoting for the body. `{{` is split as `{''{` (the same characters to the shell) so
 * the task contract's `{{name}}` rendering never sees a reference inside the script.
 */
function quoteBody(text: string): string {
  return `'${text.replaceAll("'", "'\\''").replaceAll("{{", "{''{")}'`;
}

/**
 * Slurm's filename patterns (`%j %A %a %x %u %N %n %t %s %%`) as a double-quoted shell word under
 * `$SPAWN_OUTPUT_DIR`. A width such as `%4a` is not reproduced (a warning says so).
 */
function outputPath(
  pattern: string,
  jobName: string,
  line: number,
  warnings: SlurmWarning[],
): { path: string; dir: string } {
  let relative = pattern;
  if (relative.startsWith("/")) {
    relative = relative.split("/").pop() ?? relative;
    warnings.push({
      line,
      message: `absolute path ${pattern}: the file is kept as ${relative} in $SPAWN_OUTPUT_DIR (download it with spawn sweep download)`,
    });
  }
  const escapeDq = (s: string) => s.replace(/[\\"$`]/g, (c) => `\\${c}`);
  let out = "";
  const dirEnd = relative.lastIndexOf("/");
  let dir = "";
  for (let i = 0; i < relative.length; i++) {
    const c = relative[i]!;
    if (i === dirEnd + 1) dir = out;
    if (c !== "%") {
      out += escapeDq(c);
      continue;
    }
    let j = i + 1;
    while (/\d/.test(relative[j] ?? "")) j++;
    if (j > i + 1)
      warnings.push({
        line,
        message: `${pattern}: field widths such as ${relative.slice(i, j + 1)} are not reproduced`,
      });
    const key = relative[j];
    const expansions: Record<string, string> = {
      "%": "%",
      j: shVar("SLURM_JOB_ID"),
      A: shVar("SLURM_ARRAY_JOB_ID"),
      a: shVar("SLURM_ARRAY_TASK_ID"),
      x: escapeDq(jobName),
      u: shVar("USER:-spawn"),
      N: "$(hostname)",
      n: "0",
      t: "0",
      s: "batch",
    };
    const expansion = key === undefined ? undefined : expansions[key];
    if (expansion === undefined) {
      warnings.push({
        line,
        message: `${pattern}: pattern %${key ?? ""} is not supported and is kept as written`,
      });
      out += escapeDq(relative.slice(i, j + 1));
    } else out += expansion;
    i = j;
  }
  return { path: `"$SPAWN_OUTPUT_DIR/${out}"`, dir: dirEnd === -1 ? "" : `"$SPAWN_OUTPUT_DIR/${dir}"` };
}

/** `1h30m`-style text for a duration in ms (whole seconds), as the spec's Duration accepts. */
function durationText(ms: number): string {
  let s = Math.round(ms / 1000);
  let out = "";
  for (const [unit, size] of [
    ["d", 86_400],
    ["h", 3600],
    ["m", 60],
    ["s", 1],
  ] as const) {
    if (s >= size) {
      out += `${Math.floor(s / size)}${unit}`;
      s %= size;
    }
  }
  return out || "0s";
}

/** The spec's name from the job name or the file name: 1-63 letters, digits, `. _ -`. */
function specName(raw: string): string {
  const cleaned = raw
    .replace(/\.(sbatch|slurm|sh|bash)$/i, "")
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 63);
  return cleaned === "" ? "slurm-job" : cleaned;
}

/**
 * Converts an sbatch script. `source` is its file name: the default job name, and the name in
 * error messages.
 *
 * @throws SbatchError naming every bad line (bad values, a missing `#!` line, DOS line breaks,
 *   an empty body); warnings are returned, never thrown.
 */
export function convertSbatch(script: string, source: string): SlurmConversion {
  const problems: SlurmWarning[] = [];
  const warnings: SlurmWarning[] = [];
  const notes: SlurmNote[] = [];
  const lines = script.split("\n");
  if (lines.at(-1) === "") lines.pop();
  const crlf = lines.findIndex((l) => l.endsWith("\r"));
  if (crlf !== -1)
    throw new SbatchError(
      [{ line: crlf + 1, message: "DOS line breaks (\\r\\n); convert the file with dos2unix" }],
      source,
    );

  const interpreter = interpreterOf(lines[0] ?? "");
  if (typeof interpreter === "string") throw new SbatchError([{ line: 1, message: interpreter }], source);

  // sbatch reads directives until the first line that is neither blank nor a comment.
  const directives: Directive[] = [];
  const bodyLines: string[] = [];
  let header = true;
  lines.slice(1).forEach((text, i) => {
    const line = i + 2;
    const isDirective = /^#SBATCH(\s|$)/.test(text);
    if (header && !isDirective && text.trim() !== "" && !text.trimStart().startsWith("#")) header = false;
    if (isDirective && header) {
      directives.push(...parseDirectives(splitWords(text.slice(7), line, problems), line, problems));
      return;
    }
    if (isDirective)
      warnings.push({
        line,
        message: `${text.trim()}: after the first command, so ignored (as sbatch does)`,
      });
    bodyLines.push(text);
  });
  while (bodyLines.length > 0 && bodyLines[0]!.trim() === "") bodyLines.shift();
  while (bodyLines.length > 0 && bodyLines.at(-1)!.trim() === "") bodyLines.pop();
  if (!bodyLines.some((l) => l.trim() !== "" && !l.trimStart().startsWith("#")))
    problems.push({ line: lines.length, message: "the script has no commands after its #SBATCH header" });

  // Later directives override earlier ones, as on sbatch's command line.
  const last = new Map<string, Directive>();
  for (const d of directives) {
    if (!d.def) warnings.push({ line: d.line, message: `${d.text}: unknown sbatch option, ignored` });
    else if (d.def.unsupported)
      warnings.push({ line: d.line, message: `${d.text}: not supported (${d.def.unsupported})` });
    else last.set(d.name, d);
  }
  const get = (name: string) => last.get(name);

  const positiveInt = (name: string): number | undefined => {
    const d = get(name);
    if (!d) return undefined;
    if (!/^\d+$/.test(d.value ?? "") || Number(d.value) < 1) {
      problems.push({ line: d.line, message: `--${name}=${d.value}: expected a whole number >= 1` });
      return undefined;
    }
    return Number(d.value);
  };

  const jobNameDirective = get("job-name");
  const jobName = jobNameDirective?.value ?? (source.split("/").pop() || "slurm-job");
  const name = specName(jobName);
  if (name !== jobName && jobNameDirective)
    notes.push({ field: "name", message: `job name ${JSON.stringify(jobName)} made a valid spec name` });

  // --array
  let array: ArraySpec | undefined;
  const arrayDirective = get("array");
  if (arrayDirective) {
    const parsed = parseArray(arrayDirective.value ?? "");
    if (typeof parsed === "string") problems.push({ line: arrayDirective.line, message: parsed });
    else array = parsed;
  }

  // --time
  let timeout: number | undefined;
  const time = get("time");
  if (time) {
    const parsed = parseSlurmTime(time.value ?? "");
    if (typeof parsed === "string") problems.push({ line: time.line, message: parsed });
    else if (parsed !== null) timeout = parsed;
  }

  // --nodes, --ntasks, --ntasks-per-node, --cpus-per-task
  let nodes: number | undefined;
  const nodesDirective = get("nodes");
  if (nodesDirective) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(nodesDirective.value ?? "");
    if (!m || Number(m[1]) < 1) {
      problems.push({
        line: nodesDirective.line,
        message: `--nodes=${nodesDirective.value}: expected N or MIN-MAX`,
      });
    } else {
      nodes = Number(m[1]);
      if (m[2] !== undefined && m[2] !== m[1])
        warnings.push({
          line: nodesDirective.line,
          message: `--nodes=${nodesDirective.value}: spawn gangs are a fixed size; using the minimum, ${nodes}`,
        });
    }
  }
  const ntasksPerNode = positiveInt("ntasks-per-node");
  const ntasks = positiveInt("ntasks");
  const cpusPerTask = positiveInt("cpus-per-task");

  // GPUs: --gres=gpu:N, --gpus / --gpus-per-node (per node), --gpus-per-task (times tasks per node).
  let gpus: number | undefined;
  const gpuTypes = new Set<string>();
  const gres = get("gres");
  if (gres) {
    for (const entry of (gres.value ?? "").split(",")) {
      const [kind, ...rest] = entry.split(":");
      if (kind !== "gpu") {
        warnings.push({ line: gres.line, message: `--gres=${entry}: only gpu resources are supported` });
        continue;
      }
      const parsed = rest.length === 0 ? { count: 1 } : gpuCount(rest.join(":"));
      if (!parsed)
        problems.push({ line: gres.line, message: `--gres=${entry}: expected gpu, gpu:N or gpu:TYPE:N` });
      else {
        gpus = parsed.count;
        if ("type" in parsed && parsed.type) gpuTypes.add(parsed.type);
      }
    }
  }
  for (const option of ["gpus", "gpus-per-node", "gpus-per-task"] as const) {
    const d = get(option);
    if (!d) continue;
    const parsed = gpuCount(d.value ?? "");
    if (!parsed) {
      problems.push({ line: d.line, message: `--${option}=${d.value}: expected N or TYPE:N` });
      continue;
    }
    if (parsed.type) gpuTypes.add(parsed.type);
    if (option === "gpus-per-task") gpus = parsed.count * (ntasksPerNode ?? ntasks ?? 1);
    else if (option === "gpus" && (nodes ?? 1) > 1) gpus = Math.ceil(parsed.count / (nodes ?? 1));
    else gpus = parsed.count;
  }
  const gpuLine =
    gres?.line ?? get("gpus")?.line ?? get("gpus-per-node")?.line ?? get("gpus-per-task")?.line ?? 1;
  for (const type of gpuTypes)
    warnings.push({
      line: gpuLine,
      message: `GPU type ${type} is not mapped: list matching EC2 types in resources.instance_types`,
    });

  // Memory: kept as Slurm's variables; instance choice does not read them.
  const memoryEnv: Record<string, number> = {};
  for (const [option, variable] of [
    ["mem", "SLURM_MEM_PER_NODE"],
    ["mem-per-cpu", "SLURM_MEM_PER_CPU"],
    ["mem-per-gpu", "SLURM_MEM_PER_GPU"],
  ] as const) {
    const d = get(option);
    if (!d) continue;
    const parsed = parseSlurmMemory(option, d.value ?? "");
    if (typeof parsed === "string") problems.push({ line: d.line, message: parsed });
    else memoryEnv[variable] = parsed;
  }

  if (problems.length > 0)
    throw new SbatchError(
      problems.sort((a, b) => a.line - b.line),
      source,
    );

  // The spec.
  const spec: Record<string, unknown> = { name };
  const env: Record<string, string | number> = { SLURM_JOB_NAME: jobName };
  const gangSize = nodes ?? 1;
  if (gangSize > 1) spec.nodes = gangSize;
  const effectiveNodes = gangSize;
  env.SLURM_JOB_NUM_NODES = effectiveNodes;
  env.SLURM_NNODES = effectiveNodes;
  const tasksTotal = ntasks ?? (ntasksPerNode ?? 1) * effectiveNodes;
  env.SLURM_NTASKS = tasksTotal;
  env.SLURM_NPROCS = tasksTotal;
  if (ntasksPerNode !== undefined) env.SLURM_NTASKS_PER_NODE = ntasksPerNode;
  if (cpusPerTask !== undefined) env.SLURM_CPUS_PER_TASK = cpusPerTask;
  Object.assign(env, memoryEnv);
  if (gpus !== undefined) {
    spec.resources = { ...(spec.resources as object | undefined), gpus };
    env.SLURM_GPUS_ON_NODE = gpus;
  }
  if (cpusPerTask !== undefined || Object.keys(memoryEnv).length > 0)
    notes.push({
      field: "env",
      message:
        "CPU and memory requests are passed on as SLURM_* variables; choose instance types that fit them",
    });
  if (/(^|[\s;&|(])(srun|mpirun|mpiexec)\s/m.test(bodyLines.join("\n"))) {
    const line = lines.findIndex((l, i) => i > 0 && /(^|[\s;&|(])(srun|mpirun|mpiexec)\s/.test(l)) + 1;
    warnings.push({
      line,
      message:
        "the script launches steps with srun/mpirun: spawn has no srun; use SPAWN_HOSTFILE with mpirun, or run the step directly",
    });
  }

  const preamble: string[] = [];
  if (array) {
    if (array.range && array.range.step === 1)
      spec.params = { grid: { [ARRAY_PARAM]: { range: [array.range.start, array.range.stop + 1] } } };
    else if (array.range)
      spec.params = {
        grid: { [ARRAY_PARAM]: { range: [array.range.start, array.range.stop + 1, array.range.step] } },
      };
    else spec.params = { grid: { [ARRAY_PARAM]: array.ids } };
    Object.assign(env, {
      SLURM_ARRAY_TASK_MIN: array.ids[0]!,
      SLURM_ARRAY_TASK_MAX: array.ids.at(-1)!,
      SLURM_ARRAY_TASK_STEP: array.range?.step ?? 1,
      SLURM_ARRAY_TASK_COUNT: array.ids.length,
    });
    preamble.push(`export SLURM_ARRAY_TASK_ID={{${ARRAY_PARAM}}}`);
    preamble.push(
      `export SLURM_ARRAY_JOB_ID="$SPAWN_SWEEP_ID" SLURM_JOB_ID="${shVar("SPAWN_SWEEP_ID")}_${shVar("SLURM_ARRAY_TASK_ID")}"`,
    );
    if (array.throttle !== undefined) {
      spec.max_instances = Math.min(array.throttle, array.ids.length);
      spec.resources = { ...(spec.resources as object | undefined), slots: 1 };
      notes.push({
        field: "max_instances",
        message: `--array %${array.throttle}: at most ${spec.max_instances} task(s) at once (one per instance)`,
      });
    } else {
      spec.max_instances = Math.min(DEFAULT_ARRAY_CONCURRENCY, array.ids.length);
      notes.push({
        field: "max_instances",
        message: `--array has no % throttle; spawn runs up to ${spec.max_instances} instances at once (raise with --max-instances)`,
      });
    }
  } else preamble.push('export SLURM_JOB_ID="$SPAWN_SWEEP_ID"');
  if (gangSize > 1) {
    // A gang takes one instance per node, all at once (docs/gangs.md).
    const gangs = (spec.max_instances as number | undefined) ?? 1;
    spec.max_instances = gangs * gangSize;
    notes.push({
      field: "max_instances",
      message: `--nodes=${gangSize}: each task is a gang of ${gangSize} instances; up to ${gangs} gang(s) at once`,
    });
  }
  preamble.push(
    `export SLURM_SUBMIT_DIR="$PWD" SLURM_PROCID="${shVar("SPAWN_RANK:-0")}" SLURM_NODEID="${shVar("SPAWN_RANK:-0")}" SLURM_LOCALID=0 SLURM_RESTART_COUNT=$((SPAWN_ATTEMPT - 1))`,
  );

  if (timeout !== undefined) {
    spec.timeout = durationText(timeout);
    // An instance's ttl is absolute; a job longer than the default day would be reaped mid-run.
    const defaultTtl = 86_400_000;
    if (timeout + 3_600_000 > defaultTtl) {
      spec.ttl = durationText(timeout + 3_600_000);
      notes.push({
        field: "ttl",
        message: `--time ${formatDuration(timeout)}: instances live an hour longer than one job`,
      });
    }
  }
  spec.env = env;

  // The body, run by its own interpreter; --output/--error also keep copies in $SPAWN_OUTPUT_DIR.
  const run = `${interpreter.argv.join(" ")} ${interpreter.flag} ${quoteBody(`${bodyLines.join("\n")}\n`)}${
    interpreter.argv[0]?.startsWith("python") ? "" : ` ${quoteBody(name)}`
  }`;
  const output = get("output");
  const error = get("error");
  if (!output && !error) preamble.push(`exec ${run}`);
  else {
    const out = output ? outputPath(output.value ?? "", jobName, output.line, warnings) : undefined;
    const err = error ? outputPath(error.value ?? "", jobName, error.line, warnings) : undefined;
    const dirs = [...new Set([out?.dir, err?.dir].filter((d): d is string => Boolean(d)))];
    preamble.push(`mkdir -p ${dirs.length > 0 ? dirs.join(" ") : '"$SPAWN_OUTPUT_DIR"'}`);
    // The task's log keeps the streams too (spawn sweep logs); the exit status survives the pipes.
    preamble.push('spawn_rc="$(mktemp)"');
    if (out && err && out.path !== err.path) {
      preamble.push(
        `{ { ${run}; echo $? > "$spawn_rc"; } 2>&1 1>&3 3>&- | tee -a ${err.path} >&2 3>&-; } 3>&1 | tee -a ${out.path}`,
      );
    } else if (out) {
      preamble.push(`{ ${run}; echo $? > "$spawn_rc"; } 2>&1 | tee -a ${out.path}`);
    } else if (err) {
      preamble.push(
        `{ { ${run}; echo $? > "$spawn_rc"; } 2>&1 1>&3 3>&- | tee -a ${err.path} >&2 3>&-; } 3>&1`,
      );
    }
    preamble.push(`spawn_status="$(cat "$spawn_rc")"; rm -f "$spawn_rc"; exit "${shVar("spawn_status:-1")}"`);
  }
  spec.command = preamble.join("\n");
  return { spec: spec as SweepSpecInput, warnings: warnings.sort((a, b) => a.line - b.line), notes };
}
