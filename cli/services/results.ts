/** `spawn sweep results`: params against status, exit code and final metrics, in four formats. */
import { resultRow } from "#core/api.js";
import { AbortError } from "#core/errors.js";
import type { TaskRecord } from "#core/model.js";
import { cell, csvField, paintStatus, table } from "../output.js";

export type ResultsFormat = "table" | "csv" | "json" | "jsonl";
export const RESULTS_FORMATS: readonly ResultsFormat[] = ["table", "csv", "json", "jsonl"];

export interface BestSpec {
  metric: string;
  order: "min" | "max";
}

/** `loss`, `loss:min` or `accuracy:max`; the order defaults to min (a loss). */
export function parseBest(text: string): BestSpec {
  const [metric, order = "min", ...rest] = text.split(":");
  if (!metric || rest.length > 0 || (order !== "min" && order !== "max")) {
    throw new AbortError(
      `--best ${JSON.stringify(text)}: expected metric[:min|max]`,
      "e.g. --best loss:min or --best accuracy:max",
    );
  }
  return { metric, order };
}

/** One row per task, the chosen metric's best first when `best` is given (tasks without it last). */
export function resultRows(tasks: readonly TaskRecord[], best?: BestSpec): TaskRecord[] {
  if (!best) return [...tasks];
  if (!tasks.some((t) => typeof t.metrics?.[best.metric] === "number")) {
    const known = [...new Set(tasks.flatMap((t) => Object.keys(t.metrics ?? {})))].sort();
    throw new AbortError(
      `--best: no task reported a numeric metric ${JSON.stringify(best.metric)}`,
      known.length ? `metrics seen: ${known.join(", ")}` : "no task has reported metrics yet",
    );
  }
  const value = (t: TaskRecord) => {
    const v = t.metrics?.[best.metric];
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  };
  return [...tasks].sort((a, b) => {
    const va = value(a);
    const vb = value(b);
    if (va === undefined || vb === undefined)
      return va === undefined ? (vb === undefined ? a.index - b.index : 1) : -1;
    return best.order === "min" ? va - vb || a.index - b.index : vb - va || a.index - b.index;
  });
}

function columns(tasks: readonly TaskRecord[]) {
  const params = [...new Set(tasks.flatMap((t) => Object.keys(t.params)))];
  const metrics = [...new Set(tasks.flatMap((t) => Object.keys(t.metrics ?? {})))];
  return { params, metrics };
}

export function formatResults(tasks: readonly TaskRecord[], format: ResultsFormat): string {
  if (format === "json") return JSON.stringify(tasks.map(resultRow), null, 2);
  if (format === "jsonl") return tasks.map((t) => JSON.stringify(resultRow(t))).join("\n");
  const { params, metrics } = columns(tasks);
  const headers = ["task", "status", "exit", "attempts", ...params, ...metrics];
  const rows = tasks.map((t) => [
    String(t.index),
    format === "table" ? paintStatus(t.status) : t.status,
    t.exitCode === undefined ? "" : String(t.exitCode),
    String(t.attempt),
    ...params.map((p) => cell(t.params[p])),
    ...metrics.map((m) => cell(t.metrics?.[m])),
  ]);
  if (format === "csv") return [headers, ...rows].map((r) => r.map(csvField).join(",")).join("\n");
  return table(headers, rows);
}
