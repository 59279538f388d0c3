/**
 * `#/queues/<id>`: a queue's jobs (`spawn queue status`): their dependency graph, a table of id,
 * status, attempts and dependencies, and the dead-letter list with the end of each failed job's
 * log, shown as text. Retry failed and cancel are the sweep's actions (a queue is a sweep).
 */
import { CancelResult, type QueueJobView, QueueStatusView, RetryResult } from "#core/api.js";
import { request } from "./api.js";
import { announce, duration, h, replace, svg } from "./dom.js";
import { badge, cardTable, errorText, every, replaceRows } from "./forms.js";

const enc = encodeURIComponent;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** Past this many jobs the graph would be unreadable: the table says it all. */
const MAX_GRAPH_JOBS = 150;
const NODE_W = 132;
const NODE_H = 28;
const GAP_X = 48;
const GAP_Y = 12;

/** Each job's column: 0 for jobs with no dependency, else one more than its deepest dependency's. */
export function depths(jobs: readonly Pick<QueueJobView, "id" | "dependsOn">[]): Map<string, number> {
  const byId = new Map(jobs.map((j) => [j.id, j]));
  const depth = new Map<string, number>();
  const visit = (id: string, seen: Set<string>): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    // Queue files are checked for cycles before launch; `seen` only keeps a bad record from looping.
    if (seen.has(id)) return 0;
    seen.add(id);
    const deps = byId.get(id)?.dependsOn.filter((d) => byId.has(d)) ?? [];
    const d = deps.length ? 1 + Math.max(...deps.map((dep) => visit(dep, seen))) : 0;
    depth.set(id, d);
    return d;
  };
  for (const j of jobs) visit(j.id, new Set());
  return depth;
}

/** The dependency graph as SVG: columns by depth, an arrow from each dependency to its job. */
function graph(queueId: string, jobs: readonly QueueJobView[]): SVGElement {
  const depth = depths(jobs);
  const columns: QueueJobView[][] = [];
  for (const j of jobs) {
    const c = depth.get(j.id) ?? 0;
    columns[c] = [...(columns[c] ?? []), j];
  }
  const at = new Map<string, { x: number; y: number }>();
  columns.forEach((col, c) => {
    col.forEach((j, r) => {
      at.set(j.id, { x: c * (NODE_W + GAP_X), y: r * (NODE_H + GAP_Y) });
    });
  });
  const width = columns.length * (NODE_W + GAP_X) - GAP_X;
  const height = Math.max(...columns.map((c) => c.length)) * (NODE_H + GAP_Y) - GAP_Y;
  const edges = jobs.flatMap((j) =>
    j.dependsOn.flatMap((d) => {
      const from = at.get(d);
      const to = at.get(j.id);
      if (!from || !to) return [];
      const [x1, y1, x2, y2] = [from.x + NODE_W, from.y + NODE_H / 2, to.x, to.y + NODE_H / 2];
      const mid = (x1 + x2) / 2;
      return [svg("path", { class: "edge", d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` })];
    }),
  );
  const nodes = jobs.map((j) => {
    const p = at.get(j.id) as { x: number; y: number };
    const label = j.id.length > 16 ? `${j.id.slice(0, 15)}…` : j.id;
    return svg(
      "a",
      { href: `#/sweeps/${enc(queueId)}/tasks/${j.index}`, "aria-label": `${j.id}: ${j.status}` },
      svg("rect", { class: `node s-${j.status}`, x: p.x, y: p.y, width: NODE_W, height: NODE_H, rx: 5 }),
      svg("text", { x: p.x + 8, y: p.y + NODE_H / 2 + 4 }, label),
      svg("title", {}, `${j.id}: ${j.status}`),
    );
  });
  return svg(
    "svg",
    {
      class: "dag",
      viewBox: `-2 -2 ${width + 4} ${height + 4}`,
      width: width + 4,
      role: "img",
      "aria-label": `dependency graph of ${jobs.length} jobs; the table below lists the same`,
    },
    ...edges,
    ...nodes,
  );
}

/** Renders a queue's page into `main`; returns what stops its refresh. */
export function queuePage(main: HTMLElement, queueId: string): () => void {
  document.title = `${queueId} · spawn`;
  let view: QueueStatusView | undefined;
  const title = h("h1", {}, queueId);
  const statusBadge = h("span");
  const facts = h("p", { class: "muted" });
  const alert = h("div", { role: "alert", class: "error" });
  const cancelButton = h(
    "button",
    { type: "button", class: "danger", onclick: () => void cancel() },
    "Cancel queue",
  );
  const retryButton = h("button", { type: "button", onclick: () => void retry() }, "Retry failed jobs");
  const graphBox = h("div", { class: "dag-wrap" });
  const body = h("tbody") as HTMLTableSectionElement;
  const deadBox = h("div");
  const status = h("p", { class: "muted", role: "status", id: "queue-status" }, "loading…");
  replace(
    main,
    h("p", {}, h("a", { href: "#/" }, "← all sweeps")),
    h("div", { class: "title-row" }, title, statusBadge),
    facts,
    h("div", { class: "actions" }, cancelButton, retryButton),
    alert,
    status,
    h(
      "section",
      { class: "panel", "aria-labelledby": "dag-title" },
      h("h2", { id: "dag-title" }, "Dependencies"),
      graphBox,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "jobs-title" },
      h("h2", { id: "jobs-title" }, "Jobs"),
      cardTable(
        "jobs-table",
        "The queue's jobs, in file order",
        [["Job"], ["Status"], ["Attempts", "num"], ["Depends on"], ["Took", "num"], ["Result"]],
        body,
      ),
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "dead-title" },
      h("h2", { id: "dead-title" }, "Dead letters"),
      deadBox,
    ),
  );

  function render(v: QueueStatusView): void {
    title.textContent = v.name;
    replace(statusBadge, badge(v.status));
    facts.textContent = `${v.sweepId} · ${v.jobs.length} jobs · ${v.counts.succeeded} succeeded, ${v.counts.failed} failed${
      v.onFailure ? ` · on failure: ${v.onFailure}` : ""
    }`;
    cancelButton.disabled = TERMINAL.has(v.status);
    retryButton.disabled = v.status === "cancelled" || v.deadLetter.length === 0 || !TERMINAL.has(v.status);
    replaceRows(
      body,
      JSON.stringify(v.jobs),
      v.jobs.map((j) =>
        h(
          "tr",
          { "data-job": j.id },
          h("td", { class: "kv" }, h("a", { href: `#/sweeps/${enc(v.sweepId)}/tasks/${j.index}` }, j.id)),
          h("td", {}, badge(j.status)),
          h("td", { class: "num" }, j.attempts),
          h("td", { class: "kv" }, j.dependsOn.join(", ") || "—"),
          h("td", { class: "num" }, duration(j.durationMs)),
          h("td", {}, j.error ?? (j.exitCode === null ? "" : `exit ${j.exitCode}`)),
        ),
      ),
    );
    if (v.jobs.length > MAX_GRAPH_JOBS)
      replace(
        graphBox,
        h("p", { class: "muted" }, `${v.jobs.length} jobs: too many to draw; the table lists them.`),
      );
    else replace(graphBox, graph(v.sweepId, v.jobs));
    replace(
      deadBox,
      v.deadLetter.length === 0
        ? h("p", { class: "muted" }, "No job has failed for good.")
        : h(
            "ul",
            { class: "plain dead-letters" },
            ...v.deadLetter.map((d) =>
              h(
                "li",
                { "data-dead": d.id },
                h("h3", {}, `${d.id} `, h("span", { class: "muted" }, `(${d.attempts} attempt(s))`)),
                d.error ? h("p", { class: "error" }, d.error) : null,
                // The log tail is the job's own output: a text node, never markup.
                d.logTail
                  ? h(
                      "pre",
                      { class: "log", tabindex: 0, "aria-label": `end of the log of ${d.id}` },
                      d.logTail,
                    )
                  : h("p", { class: "muted" }, "No log kept."),
              ),
            ),
          ),
    );
  }

  async function cancel(): Promise<void> {
    if (!confirm(`Cancel queue ${view?.name ?? queueId}? No job starts; running jobs are stopped.`)) return;
    try {
      cancelButton.disabled = true;
      const r = await request(CancelResult, `/api/sweeps/${enc(queueId)}/cancel`, { method: "POST" });
      announce(r.changed ? "queue cancelled" : `the queue had already ended: ${r.status}`);
      alert.textContent = "";
      await load();
    } catch (e) {
      alert.textContent = `cancel failed: ${errorText(e)}`;
      cancelButton.disabled = false;
    }
  }

  async function retry(): Promise<void> {
    try {
      retryButton.disabled = true;
      const r = await request(RetryResult, `/api/sweeps/${enc(queueId)}/retry?failed=1`, { method: "POST" });
      announce(`re-running ${r.retried.length} job(s)`);
      alert.textContent = "";
      await load();
    } catch (e) {
      alert.textContent = `retry failed: ${errorText(e)}`;
    }
  }

  async function load(): Promise<void> {
    try {
      view = await request(QueueStatusView, `/api/queues/${enc(queueId)}`);
      render(view);
      status.textContent = TERMINAL.has(view.status) ? "" : "updating every few seconds…";
    } catch (e) {
      status.textContent = `could not load the queue: ${errorText(e)}`;
    }
  }

  return every(3000, load);
}
