/**
 * Pipelines on the dashboard (docs/pipelines.md): a pipeline's page draws its stages as a graph,
 * one node per stage (status colour, tasks done) linking to the stage's own page, one edge per
 * dependency labelled `whole` or `n_to_n`; a stage's page says which pipeline it belongs to and
 * what it waits on. Stage names are user text: they reach the page as text nodes and attribute
 * values only (dom.ts).
 */
import type { StageSummary, SweepSummary } from "#core/api.js";
import type { StageOf } from "#core/model.js";
import { h, svg } from "./dom.js";
import { depths } from "./queues.js";

const enc = encodeURIComponent;
const NODE_W = 200;
const NODE_H = 56;
const GAP_X = 24;
/** Tall enough for an edge's label between two rows. */
const GAP_Y = 52;
const MAX_LABEL = 22;

/** What a stage node shows: the stage's status, or `waiting` while its inputs hold it back. */
export type StageState = StageSummary["status"] | "waiting";

/** Tasks of a stage that have ended. */
const doneOf = (s: StageSummary) => s.taskCount - s.pending - s.running;

/**
 * A running stage that has started nothing while an input has not succeeded is waiting on it
 * (its tasks are gated, core/pipeline.ts); the record alone says `running`.
 */
export function stageState(stage: StageSummary, stages: readonly StageSummary[]): StageState {
  if (stage.status !== "running" || stage.running > 0 || doneOf(stage) > 0) return stage.status;
  const upstream = stage.inputs.map((i) => stages.find((s) => s.name === i.stage));
  return upstream.some((s) => s?.status !== "succeeded") ? "waiting" : "running";
}

/** A pipeline's row in the sweeps list: tasks done over all its stages, and stages ended. */
export function pipelineTotals(stages: readonly StageSummary[]): {
  taskCount: number;
  done: number;
  stagesEnded: number;
} {
  return {
    taskCount: stages.reduce((n, s) => n + s.taskCount, 0),
    done: stages.reduce((n, s) => n + doneOf(s), 0),
    stagesEnded: stages.filter((s) => s.status !== "creating" && s.status !== "running").length,
  };
}

/**
 * The sweeps list shows a pipeline as one row: its stages are left out when their pipeline's row
 * is there (its page has them all, as a graph), kept when it is not (an older pipeline past the
 * list's limit) so no sweep becomes unreachable.
 */
export function withoutListedStages(sweeps: readonly SweepSummary[]): SweepSummary[] {
  const pipelines = new Set(sweeps.filter((s) => s.stages).map((s) => s.sweepId));
  return sweeps.filter((s) => !(s.stage && pipelines.has(s.stage.pipelineId)));
}

const unit = (s: StageSummary) => (s.kind === "queue" ? "jobs" : "tasks");

/** A node's whole story for screen readers and the tooltip. */
function describe(s: StageSummary, state: StageState): string {
  const after = s.inputs.map((i) => `${i.stage} (${i.type === "n_to_n" ? "task by task" : "whole stage"})`);
  return `stage ${s.name}${s.kind === "queue" ? " (queue)" : ""}: ${state}, ${doneOf(s)} of ${s.taskCount} ${unit(s)} done${
    after.length ? `; after ${after.join(", ")}` : ""
  }`;
}

/** The stage graph as SVG: rows by depth (so a chain stays narrow on a phone), edges downward. */
export function stageGraph(stages: readonly StageSummary[]): SVGElement {
  const depth = depths(stages.map((s) => ({ id: s.name, dependsOn: s.inputs.map((i) => i.stage) })));
  const rows: StageSummary[][] = [];
  for (const s of stages) {
    const d = depth.get(s.name) ?? 0;
    rows[d] = [...(rows[d] ?? []), s];
  }
  const widest = Math.max(...rows.map((r) => r.length));
  const width = widest * (NODE_W + GAP_X) - GAP_X;
  const height = rows.length * (NODE_H + GAP_Y) - GAP_Y;
  const at = new Map<string, { x: number; y: number }>();
  rows.forEach((row, r) => {
    // Each row centred under the widest one.
    const left = (width - (row.length * (NODE_W + GAP_X) - GAP_X)) / 2;
    row.forEach((s, i) => {
      at.set(s.name, { x: left + i * (NODE_W + GAP_X), y: r * (NODE_H + GAP_Y) });
    });
  });

  const edges = stages.flatMap((s) =>
    s.inputs.flatMap((input) => {
      const from = at.get(input.stage);
      const to = at.get(s.name);
      if (!from || !to) return [];
      const [x1, y1, x2, y2] = [from.x + NODE_W / 2, from.y + NODE_H, to.x + NODE_W / 2, to.y - 4];
      const mid = (y1 + y2) / 2;
      return [
        svg("path", {
          class: `edge${input.type === "n_to_n" ? " n-to-n" : ""}`,
          d: `M${x1},${y1} C${x1},${mid} ${x2},${mid} ${x2},${y2}`,
          "marker-end": "url(#stage-arrow)",
          "data-edge": `${input.stage}>${s.name}`,
        }),
        svg("text", { class: "edge-label", x: (x1 + x2) / 2 + 6, y: mid + 4 }, input.type),
      ];
    }),
  );

  const nodes = stages.map((s) => {
    const p = at.get(s.name) as { x: number; y: number };
    const state = stageState(s, stages);
    const done = doneOf(s);
    const name = s.name.length > MAX_LABEL ? `${s.name.slice(0, MAX_LABEL - 1)}…` : s.name;
    const track = NODE_W - 16;
    const text = describe(s, state);
    return svg(
      "a",
      {
        href: `#/sweeps/${enc(s.sweepId)}`,
        class: "stage-node",
        "aria-label": text,
        "data-stage": s.name,
        "data-status": state,
      },
      svg("title", {}, text),
      svg("rect", { class: `node s-${state}`, x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 6 }),
      svg("text", { class: "stage-name", x: p.x + 8, y: p.y + 18 }, name),
      svg(
        "text",
        { x: p.x + 8, y: p.y + 35 },
        // "jobs" says it is a queue; the full story is in the label.
        `${state} · ${done}/${s.taskCount} ${unit(s)}`,
      ),
      svg("rect", { class: "track", x: p.x + 8, y: p.y + 42, width: track, height: 6, rx: 3 }),
      s.taskCount > 0 && done > 0
        ? svg("rect", {
            class: "bar",
            x: p.x + 8,
            y: p.y + 42,
            width: (track * done) / s.taskCount,
            height: 6,
            rx: 3,
          })
        : null,
    );
  });

  const graph = svg(
    "svg",
    {
      class: "dag stage-graph",
      viewBox: `-2 -2 ${width + 4} ${height + 4}`,
      width: width + 4,
      role: "group",
      "aria-label": `stage graph: ${stages.length} stages; arrow keys move between them`,
      onkeydown: (event: Event) => moveFocus(graph, event as KeyboardEvent),
    },
    svg(
      "defs",
      {},
      svg(
        "marker",
        {
          id: "stage-arrow",
          viewBox: "0 0 8 8",
          refX: 4,
          refY: 4,
          markerWidth: 8,
          markerHeight: 8,
          orient: "auto-start-reverse",
        },
        svg("path", { class: "arrow", d: "M0,0 L8,4 L0,8 z" }),
      ),
    ),
    ...edges,
    ...nodes,
  );
  return graph;
}

/** Arrow keys, Home and End move between the stages in file order (Tab does too, one by one). */
function moveFocus(graph: SVGElement, event: KeyboardEvent): void {
  const links = [...graph.querySelectorAll<SVGAElement>("a.stage-node")];
  const at = links.indexOf(document.activeElement as SVGAElement);
  if (at < 0) return;
  const next = {
    ArrowDown: at + 1,
    ArrowRight: at + 1,
    ArrowUp: at - 1,
    ArrowLeft: at - 1,
    Home: 0,
    End: links.length - 1,
  }[event.key];
  if (next === undefined) return;
  event.preventDefault();
  links[Math.max(0, Math.min(links.length - 1, next))]?.focus();
}

/**
 * Draws the graph into `box`, keeping keyboard focus on the same stage across live redraws (a
 * node's link is replaced every time a stage's progress changes).
 */
export function renderStageGraph(box: HTMLElement, stages: readonly StageSummary[]): void {
  const focused = box.contains(document.activeElement)
    ? (document.activeElement as Element).getAttribute("data-stage")
    : null;
  box.replaceChildren(
    stages.length ? stageGraph(stages) : h("p", { class: "muted" }, "This pipeline has no stages on record."),
  );
  if (focused !== null)
    [...box.querySelectorAll<SVGAElement>("a.stage-node")]
      .find((a) => a.getAttribute("data-stage") === focused)
      ?.focus();
}

/** A stage page's fact: `train of pipeline <link>`, and the stages it waits on, linked. */
export function stageFact(stage: StageOf): HTMLElement {
  const inputs = stage.inputs.flatMap((i, n) => [
    n === 0 ? "; after " : ", ",
    h("a", { href: `#/sweeps/${enc(i.sweepId)}` }, i.stage),
    ` (${i.type})`,
  ]);
  return h(
    "span",
    { "data-stage-of": stage.pipelineId },
    h("strong", {}, stage.name),
    " of pipeline ",
    h("a", { href: `#/sweeps/${enc(stage.pipelineId)}`, class: "kv" }, stage.pipelineId),
    ...inputs,
  );
}
