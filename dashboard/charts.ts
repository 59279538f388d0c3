/** Small SVG charts: params against a metric, metric curves, cost over time. Labels are text nodes. */
import type { InstanceView } from "#core/api.js";
import { show, svg } from "./dom.js";

const W = 560;
const H = 260;
const PAD = { left: 56, right: 12, top: 12, bottom: 40 };

interface Axis {
  scale(v: unknown): number;
  ticks: { at: number; label: string }[];
}

/** A numeric axis (log when every value is positive and they span more than 100x), else categories. */
function axis(values: readonly unknown[], from: number, to: number): Axis {
  const nums = values.filter((v): v is number => typeof v === "number" && Number.isFinite(v));
  if (nums.length === values.length && nums.length > 0) {
    let lo = Math.min(...nums);
    let hi = Math.max(...nums);
    const log = lo > 0 && hi / lo > 100;
    const f = (v: number) => (log ? Math.log10(v) : v);
    if (lo === hi) {
      lo -= 1;
      hi += 1;
    }
    const [a, b] = [f(lo), f(hi)];
    const scale = (v: unknown) => from + ((f(v as number) - a) / (b - a || 1)) * (to - from);
    const ticks = Array.from({ length: 5 }, (_, k) => {
      const t = a + ((b - a) * k) / 4;
      const value = log ? 10 ** t : t;
      return { at: from + ((t - a) / (b - a || 1)) * (to - from), label: show(Number(value.toPrecision(3))) };
    });
    return { scale, ticks };
  }
  const cats = [...new Set(values.map(show))];
  const step = (to - from) / Math.max(1, cats.length);
  const scale = (v: unknown) => from + step * (cats.indexOf(show(v)) + 0.5);
  return { scale, ticks: cats.slice(0, 20).map((c) => ({ at: scale(c), label: c.slice(0, 12) })) };
}

function frame(title: string, x: Axis, y: Axis, xLabel: string, yLabel: string): SVGElement {
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title });
  root.append(
    svg("title", {}, title),
    svg("line", { class: "axis", x1: PAD.left, y1: H - PAD.bottom, x2: W - PAD.right, y2: H - PAD.bottom }),
    svg("line", { class: "axis", x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: H - PAD.bottom }),
    ...x.ticks.map((t) => svg("text", { x: t.at, y: H - PAD.bottom + 14, "text-anchor": "middle" }, t.label)),
    ...y.ticks.map((t) => svg("text", { x: PAD.left - 4, y: t.at + 4, "text-anchor": "end" }, t.label)),
    svg("text", { x: (PAD.left + W - PAD.right) / 2, y: H - 6, "text-anchor": "middle" }, xLabel),
    svg("text", { x: 12, y: PAD.top + 8 }, yLabel),
  );
  return root;
}

export interface ScatterPoint {
  index: number;
  x: unknown;
  y: number;
  best: boolean;
}

/** Each task as a dot: a param across, a metric up; the best tasks drawn last and highlighted. */
export function scatter(
  points: readonly ScatterPoint[],
  xLabel: string,
  yLabel: string,
  onOpen: (index: number) => void,
): SVGElement {
  const x = axis(
    points.map((p) => p.x),
    PAD.left + 8,
    W - PAD.right - 8,
  );
  const y = axis(
    points.map((p) => p.y),
    H - PAD.bottom - 8,
    PAD.top + 8,
  );
  const root = frame(`${yLabel} against ${xLabel}, ${points.length} tasks`, x, y, xLabel, yLabel);
  const ordered = [...points].sort((a, b) => Number(a.best) - Number(b.best));
  for (const p of ordered) {
    root.append(
      svg(
        "circle",
        {
          class: p.best ? "dot best" : "dot",
          cx: x.scale(p.x),
          cy: y.scale(p.y),
          r: p.best ? 5 : 3.5,
          onclick: () => onOpen(p.index),
        },
        svg("title", {}, `task ${p.index}: ${xLabel}=${show(p.x)}, ${yLabel}=${show(p.y)}`),
      ),
    );
  }
  return root;
}

const SERIES_VARS = ["--running", "--succeeded", "--failed", "--cancelled", "--best", "--pending"];

/** Metric curves of one task: one line per metric, against step. */
export function curves(series: Record<string, [number, number][]>, title: string): SVGElement {
  const all = Object.values(series).flat();
  const x = axis(
    all.map((p) => p[0]),
    PAD.left,
    W - PAD.right,
  );
  const y = axis(
    all.map((p) => p[1]),
    H - PAD.bottom,
    PAD.top,
  );
  const root = frame(title, x, y, "step", "value");
  Object.entries(series).forEach(([name, points], k) => {
    const color = `var(${SERIES_VARS[k % SERIES_VARS.length]})`;
    root.append(
      svg(
        "polyline",
        {
          class: "line",
          stroke: color,
          points: points.map(([px, py]) => `${x.scale(px).toFixed(1)},${y.scale(py).toFixed(1)}`).join(" "),
        },
        svg("title", {}, name),
      ),
      svg(
        "text",
        { x: W - PAD.right - 4, y: PAD.top + 12 + 14 * k, "text-anchor": "end", fill: color },
        name,
      ),
    );
  });
  return root;
}

/** Cumulative cost of priced instances over time (run time x price), with the budget as a dashed line. */
export function costOverTime(
  instances: readonly InstanceView[],
  budget: number | null,
  now: number,
): SVGElement | undefined {
  const priced = instances.filter((i) => i.placement);
  if (priced.length === 0) return undefined;
  const start = Math.min(...priced.map((i) => i.launchedAt));
  const end = Math.max(now, start + 1);
  const steps = 60;
  const points: [number, number][] = [];
  for (let k = 0; k <= steps; k++) {
    const t = start + ((end - start) * k) / steps;
    let cost = 0;
    for (const i of priced) {
      const until = Math.min(t, i.terminatedAt ?? t);
      cost += (Math.max(0, until - i.launchedAt) / 3_600_000) * (i.placement?.pricePerHour ?? 0);
    }
    points.push([(t - start) / 60_000, cost]);
  }
  const top = Math.max(budget ?? 0, ...points.map((p) => p[1]));
  const x = axis(
    points.map((p) => p[0]),
    PAD.left,
    W - PAD.right,
  );
  const y = axis([0, top], H - PAD.bottom, PAD.top);
  const root = frame("cost over time against the budget", x, y, "minutes since the first launch", "USD");
  root.append(
    svg("polyline", {
      class: "line",
      stroke: "var(--succeeded)",
      points: points.map(([px, py]) => `${x.scale(px).toFixed(1)},${y.scale(py).toFixed(1)}`).join(" "),
    }),
  );
  if (budget !== null) {
    root.append(
      svg("line", {
        class: "budget",
        x1: PAD.left,
        x2: W - PAD.right,
        y1: y.scale(budget),
        y2: y.scale(budget),
      }),
      svg(
        "text",
        { x: W - PAD.right - 4, y: y.scale(budget) - 4, "text-anchor": "end" },
        `budget $${budget}`,
      ),
    );
  }
  return root;
}
