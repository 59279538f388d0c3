/** Terminal output: tables, colour only on a TTY without NO_COLOR, JSON for --json. */
import type { TaskStatus } from "#core/model.js";

export const useColor = (): boolean =>
  Boolean(process.stdout.isTTY) && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb";

const CODES: Record<string, [number, number]> = {
  green: [32, 39],
  red: [31, 39],
  yellow: [33, 39],
  cyan: [36, 39],
  dim: [2, 22],
  bold: [1, 22],
};

export function paint(color: keyof typeof CODES, text: string): string {
  const code = CODES[color];
  return useColor() && code ? `\u001b[${code[0]}m${text}\u001b[${code[1]}m` : text;
}

export function paintStatus(status: string): string {
  const color: Record<string, keyof typeof CODES> = {
    succeeded: "green",
    failed: "red",
    cancelled: "yellow",
    running: "cyan",
    pending: "dim",
    creating: "dim",
  };
  return paint(color[status] ?? "bold", status);
}

/** Visible width (ANSI codes excluded). */
// biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes start with ESC.
const width = (s: string) => s.replace(/\u001b\[\d+m/g, "").length;

/** A plain text table; cells are already strings. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((h, i) => Math.max(width(h), ...rows.map((r) => width(r[i] ?? ""))));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c + " ".repeat(Math.max(0, (widths[i] ?? 0) - width(c))))
      .join("  ")
      .trimEnd();
  return [line(headers.map((h) => paint("bold", h))), ...rows.map(line)].join("\n");
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** RFC 4180 CSV field. */
export function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** A cell for a param or metric value: strings as-is, everything else as JSON. */
export function cell(value: unknown): string {
  if (value === undefined) return "";
  if (typeof value === "string") return value.replace(/\n/g, "\\n");
  if (typeof value === "number")
    return Number.isInteger(value) ? String(value) : String(Number(value.toPrecision(6)));
  return JSON.stringify(value);
}

export function progressBar(counts: Record<TaskStatus, number>, total: number, barWidth = 30): string {
  const done = counts.succeeded + counts.failed + counts.cancelled;
  const filled = total === 0 ? barWidth : Math.round((done / total) * barWidth);
  return `[${"#".repeat(filled)}${"-".repeat(barWidth - filled)}] ${done}/${total}`;
}
