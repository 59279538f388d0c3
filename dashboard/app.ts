/**
 * The spawn dashboard: a sweeps list and a live sweep page (task grid, results with a params ×
 * metric view, a task's metric curves and live log, instances, cost, actions). Plain DOM, no
 * framework; routes are URL hashes (`#/`, `#/sweeps/<id>`, `#/sweeps/<id>/tasks/<n>`).
 */
import "./styles.css";
import {
  CancelResult,
  countStates,
  DeltaEvent,
  LogChunk,
  MetricCurves,
  OutputList,
  type ResultRow,
  Results,
  RetryResult,
  SnapshotEvent,
  type StatusCounts,
  type SweepDetail,
  SweepDetail as SweepDetailSchema,
  SweepList,
  type SweepSummary,
  type TaskStateCode,
} from "#core/api.js";
import { TaskStatus } from "#core/model.js";
import { alertsPage } from "./alerts.js";
import { downloadOutput, liveUpdates, onAws, outputUrl, pollSnapshot, request } from "./api.js";
import { costOverTime, curves, scatter } from "./charts.js";
import { commentsPanel } from "./comments.js";
import { ago, announce, duration, h, replace, show, usd } from "./dom.js";
import { badge, errorText } from "./forms.js";
import { TaskGridView } from "./grid.js";
import { pipelineTotals, renderStageGraph, stageFact, withoutListedStages } from "./pipeline.js";
import { queuePage } from "./queues.js";
import { schedulesPage } from "./schedules.js";

const main = document.getElementById("main") as HTMLElement;
const connection = document.getElementById("connection") as HTMLElement;
const STATUSES = TaskStatus.options;
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
/** Rows drawn in the results table at once; the filter narrows the rest. */
const MAX_ROWS = 200;
const BEST_COUNT = 5;
const COUNTERS = /^(step|steps|epoch|epochs|iter|iteration|global_step)$/i;
const HIGHER_IS_BETTER = /acc|score|auc|f1|precision|recall|reward|bleu|rouge|map|iou/i;

const enc = encodeURIComponent;

function progress(counts: Partial<StatusCounts>, total: number, label: string): HTMLElement {
  const bar = h("div", {
    class: "progress",
    role: "progressbar",
    "aria-label": label,
    "aria-valuemin": 0,
    "aria-valuemax": total,
    "aria-valuenow": total - (counts.pending ?? 0) - (counts.running ?? 0),
  });
  for (const s of ["succeeded", "failed", "cancelled", "running"] as const) {
    const n = counts[s] ?? 0;
    if (n === 0 || total === 0) continue;
    // Through the CSSOM: the CSP blocks style attributes.
    const part = h("span", { class: `s-${s}` });
    part.style.width = `${(100 * n) / total}%`;
    bar.append(part);
  }
  return bar;
}

// ---------------------------------------------------------------------------------------------
// Sweeps list

function listPage(): () => void {
  document.title = "Sweeps · spawn";
  const status = h("p", { class: "muted", role: "status" }, "loading…");
  const body = h("tbody");
  const head = h(
    "tr",
    {},
    h("th", { scope: "col" }, "Sweep"),
    h("th", { scope: "col" }, "Status"),
    h("th", { scope: "col" }, "Progress"),
    h("th", { scope: "col", class: "num hide-narrow" }, "Tasks"),
    h("th", { scope: "col", class: "num" }, "Cost"),
    h("th", { scope: "col" }, "Age"),
    h("th", { scope: "col", class: "hide-narrow" }, "Owner"),
  );
  replace(
    main,
    h("h1", {}, "Sweeps"),
    status,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        {},
        h("caption", { class: "visually-hidden" }, "Sweeps, newest first"),
        h("thead", {}, head),
        body,
      ),
    ),
  );
  let timer: number | undefined;
  let stopped = false;
  const row = (s: SweepSummary) => {
    // A pipeline has no tasks of its own: its row counts its stages' (pipeline.ts).
    const totals = s.stages ? pipelineTotals(s.stages) : undefined;
    const taskCount = totals?.taskCount ?? s.taskCount;
    const done = totals?.done ?? s.taskCount - s.open;
    return h(
      "tr",
      { "data-sweep": s.sweepId },
      h(
        "td",
        {},
        h("a", { href: `#/${s.queue ? "queues" : "sweeps"}/${enc(s.sweepId)}` }, s.name),
        h("div", { class: "muted kv" }, s.sweepId),
        s.stages
          ? h(
              "div",
              { class: "muted" },
              `pipeline: ${totals?.stagesEnded} of ${s.stages.length} stages ended`,
            )
          : null,
        s.stage ? h("div", { class: "muted" }, "stage ", stageFact(s.stage)) : null,
        s.reason ? h("div", { class: "muted" }, s.reason) : null,
      ),
      h("td", {}, badge(s.status)),
      h(
        "td",
        {},
        progress(
          s.status === "succeeded"
            ? { succeeded: done }
            : s.status === "failed"
              ? { failed: done }
              : { succeeded: done },
          taskCount,
          `${s.name}: ${done} of ${taskCount} tasks done`,
        ),
        h("span", { class: "muted" }, `${done}/${taskCount}`),
      ),
      h("td", { class: "num hide-narrow" }, taskCount),
      h(
        "td",
        { class: "num" },
        s.costUsd === null ? (s.provider === "local" ? "local" : "—") : usd(s.costUsd),
      ),
      h("td", {}, h("time", { datetime: new Date(s.createdAt).toISOString() }, ago(s.createdAt))),
      h("td", { class: "hide-narrow" }, s.owner),
    );
  };
  const load = async () => {
    try {
      const { sweeps } = await request(SweepList, "/api/sweeps");
      const shown = withoutListedStages(sweeps);
      replace(body, ...shown.map(row));
      status.textContent = shown.length
        ? `${shown.length} sweep(s)`
        : "No sweeps yet: spawn sweep launch templates/quickstart.yaml";
    } catch (e) {
      status.textContent = `could not load the sweeps: ${errorText(e)}`;
    }
    if (!stopped) timer = window.setTimeout(load, 3000);
  };
  void load();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

// ---------------------------------------------------------------------------------------------
// Sweep page

interface SweepPage {
  sweepId: string;
  open(task: number): void;
  close(): void;
}

function sweepPage(sweepId: string): SweepPage {
  let detail: SweepDetail | undefined;
  let states: TaskStateCode[] = [];
  let counts: StatusCounts = countStates("");
  let results: Results | undefined;
  let resultsAt = 0;
  let resultsTimer: number | undefined;
  let selected: number | undefined;
  let events: EventSource | undefined;
  let seq = -1;
  let closed = false;
  const timers = new Set<number>();

  const title = h("h1", {}, sweepId);
  const statusBadge = h("span");
  const facts = h("dl", { class: "facts" });
  const alert = h("div", { role: "alert", class: "error" });
  const cancelButton = h(
    "button",
    { type: "button", class: "danger", onclick: () => void cancel() },
    "Cancel sweep",
  );
  const retryButton = h("button", { type: "button", onclick: () => void retry() }, "Retry failed tasks");
  const outputsButton = h(
    "button",
    { type: "button", onclick: () => void showOutputs() },
    "Download outputs",
  );
  const legend = h("ul", { class: "legend", "aria-label": "task states" });
  const grid = new TaskGridView(
    (i) => {
      location.hash = `#/sweeps/${enc(sweepId)}/tasks/${i}`;
    },
    () => counts,
  );
  const resultsStatus = h("p", { id: "results-status", class: "muted", role: "status" }, "loading results…");
  const statusFilter = h(
    "select",
    { id: "f-status", onchange: () => renderResults() },
    h("option", { value: "" }, "all"),
    ...STATUSES.map((s) => h("option", { value: s }, s)),
  );
  const textFilter = h("input", {
    id: "f-text",
    type: "search",
    placeholder: "e.g. lr=0.01",
    oninput: () => renderResults(),
  });
  const metricSelect = h("select", { id: "f-metric", onchange: () => renderResults() });
  const orderSelect = h(
    "select",
    { id: "f-order", onchange: () => renderResults() },
    h("option", { value: "min" }, "lowest is best"),
    h("option", { value: "max" }, "highest is best"),
  );
  const xSelect = h("select", { id: "f-x", onchange: () => renderResults() });
  const chartBox = h("div");
  const resultsBody = h("tbody");
  const resultsHead = h("tr");
  // data-tasks marks the panels of a sweep's own tasks and instances, which a pipeline has none of.
  const taskPanel = h("section", { class: "panel", "aria-labelledby": "task-title", "data-tasks": "" });
  const instancesPanel = h("section", {
    class: "panel",
    "aria-labelledby": "instances-title",
    "data-tasks": "",
  });
  const costPanel = h("section", { class: "panel", "aria-labelledby": "cost-title", hidden: true });
  const outputsPanel = h("section", { class: "panel", "aria-labelledby": "outputs-title", hidden: true });
  const stagesBox = h("div", { class: "dag-wrap" });
  const stagesPanel = h(
    "section",
    { class: "panel", "aria-labelledby": "stages-title", hidden: true },
    h("h2", { id: "stages-title" }, "Stages"),
    stagesBox,
  );

  const label = (text: string, control: HTMLElement) => h("label", { for: control.id }, text, control);

  replace(
    main,
    h("p", {}, h("a", { href: "#/" }, "← all sweeps")),
    h("div", { class: "title-row" }, title, statusBadge),
    facts,
    h("div", { class: "actions" }, cancelButton, retryButton, outputsButton),
    alert,
    h(
      "div",
      { class: "layout" },
      h(
        "div",
        {},
        stagesPanel,
        h(
          "section",
          { class: "panel", "aria-labelledby": "grid-title", "data-tasks": "" },
          h("h2", { id: "grid-title" }, "Tasks"),
          legend,
          grid.canvas,
        ),
        h(
          "section",
          { class: "panel", "aria-labelledby": "results-title", "data-tasks": "" },
          h("h2", { id: "results-title" }, "Results"),
          h(
            "div",
            { class: "controls" },
            label("Status", statusFilter),
            label("Filter", textFilter),
            label("Metric", metricSelect),
            label("Best is", orderSelect),
            label("Against", xSelect),
          ),
          chartBox,
          h(
            "div",
            { class: "controls" },
            resultsStatus,
            h("button", { type: "button", onclick: () => void loadResults() }, "Refresh results"),
          ),
          h(
            "div",
            { class: "table-wrap" },
            h("table", { id: "results-table" }, h("thead", {}, resultsHead), resultsBody),
          ),
        ),
      ),
      h("div", {}, taskPanel, instancesPanel, costPanel, outputsPanel, onAws ? commentsPanel(sweepId) : ""),
    ),
  );
  replace(
    taskPanel,
    h("h2", { id: "task-title" }, "Task"),
    h("p", { class: "muted" }, "Select a task in the grid or the results."),
  );

  const later = (fn: () => void, ms: number) => {
    const t = window.setTimeout(() => {
      timers.delete(t);
      if (!closed) fn();
    }, ms);
    timers.add(t);
    return t;
  };

  // --- header and actions --------------------------------------------------------------------

  function renderDetail(): void {
    if (!detail) return;
    const d = detail;
    document.title = `${d.name} · spawn`;
    title.textContent = d.name;
    replace(statusBadge, badge(d.status));
    const fact = (k: string, v: Node | string) => h("div", {}, h("dt", {}, k), h("dd", {}, v));
    replace(
      facts,
      fact("sweep", h("span", { class: "kv" }, d.sweepId)),
      fact("owner", d.owner),
      fact("created", ago(d.createdAt)),
      d.stages ? fact("stages", `${d.stages.length}`) : fact("tasks", `${d.taskCount}`),
      d.stage ? fact("stage", stageFact(d.stage)) : "",
      fact(
        "cost",
        d.costUsd === null
          ? d.provider === "local"
            ? "none (local)"
            : "—"
          : `${usd(d.costUsd)}${d.budgetUsd === null ? "" : ` of ${usd(d.budgetUsd)}`}`,
      ),
      d.stages ? "" : fact("command", h("span", { class: "kv" }, d.command)),
      d.queue ? fact("queue", h("a", { href: `#/queues/${enc(d.sweepId)}` }, "jobs and dead letters")) : "",
      d.reason ? fact("reason", d.reason) : "",
    );
    const ended = TERMINAL.has(d.status);
    const pipeline = d.stages !== undefined;
    stagesPanel.hidden = !pipeline;
    if (d.stages) renderStageGraph(stagesBox, d.stages);
    for (const el of main.querySelectorAll<HTMLElement>("[data-tasks]")) el.hidden = pipeline;
    // Cancelling a pipeline cancels every stage; retry and outputs belong to the stages' pages.
    cancelButton.textContent = pipeline ? "Cancel pipeline" : "Cancel sweep";
    retryButton.hidden = outputsButton.hidden = pipeline;
    cancelButton.disabled = ended;
    retryButton.disabled = !ended || d.status === "cancelled" || d.open > 0 || counts.failed === 0;
    renderInstances(d);
  }

  function renderCounts(): void {
    replace(
      legend,
      ...STATUSES.map((s) =>
        h("li", { "data-state": s }, h("i", { class: `s-${s}`, "aria-hidden": "true" }), `${s} ${counts[s]}`),
      ),
    );
  }

  async function cancel(): Promise<void> {
    if (!confirm(`Cancel ${detail?.name ?? sweepId}? Pending tasks never start; running ones are stopped.`))
      return;
    try {
      cancelButton.disabled = true;
      const r = await request(CancelResult, `/api/sweeps/${enc(sweepId)}/cancel`, { method: "POST" });
      announce(r.changed ? "sweep cancelled" : `the sweep had already ended: ${r.status}`);
      alert.textContent = "";
    } catch (e) {
      alert.textContent = `cancel failed: ${errorText(e)}`;
      cancelButton.disabled = false;
    }
  }

  async function retry(): Promise<void> {
    try {
      retryButton.disabled = true;
      const r = await request(RetryResult, `/api/sweeps/${enc(sweepId)}/retry?failed=1`, { method: "POST" });
      announce(`retrying ${r.retried.length} task(s)`);
      alert.textContent = "";
    } catch (e) {
      alert.textContent = `retry failed: ${errorText(e)}`;
    }
  }

  async function showOutputs(): Promise<void> {
    outputsPanel.hidden = false;
    replace(
      outputsPanel,
      h("h2", { id: "outputs-title" }, "Outputs"),
      h("p", { class: "muted" }, "loading…"),
    );
    try {
      const list = await request(OutputList, `/api/sweeps/${enc(sweepId)}/outputs`);
      const items = list.files.map((f) =>
        h(
          "li",
          {},
          h(
            "a",
            {
              href: outputUrl(sweepId, f.task, f.path),
              download: "",
              // On AWS a link cannot carry the bearer token: ask for a presigned URL, then go there.
              ...(onAws
                ? {
                    onclick: (e: Event) => {
                      e.preventDefault();
                      downloadOutput(sweepId, f.task, f.path).catch((error) => {
                        alert.textContent = `download failed: ${errorText(error)}`;
                      });
                    },
                  }
                : {}),
            },
            `task ${f.task}: ${f.path}`,
          ),
        ),
      );
      replace(
        outputsPanel,
        h("h2", { id: "outputs-title" }, "Outputs"),
        h(
          "p",
          { class: "muted" },
          "Everything at once: ",
          h("code", {}, `spawn sweep download ${sweepId} --to results/`),
        ),
        items.length ? h("ul", {}, ...items) : h("p", {}, "No task has kept any files yet."),
      );
      outputsPanel.focus();
    } catch (e) {
      replace(
        outputsPanel,
        h("h2", { id: "outputs-title" }, "Outputs"),
        h("p", { class: "error" }, errorText(e)),
      );
    }
  }

  // --- instances and cost -------------------------------------------------------------------

  function renderInstances(d: SweepDetail): void {
    const gpus = d.instances.some((i) => i.gpus !== null);
    const priced = d.instances.some((i) => i.placement);
    const rows = d.instances.map((i) =>
      h(
        "tr",
        {},
        h("td", { class: "kv" }, i.instanceId),
        h("td", {}, badge(i.status)),
        h("td", { class: "hide-narrow" }, i.host ?? i.providerRef ?? ""),
        h("td", {}, ago(i.launchedAt)),
        h("td", {}, i.heartbeatAt === null ? "—" : ago(i.heartbeatAt)),
        priced
          ? h(
              "td",
              {},
              i.placement
                ? `${i.placement.instanceType} ${i.placement.region} ${i.placement.market} $${i.placement.pricePerHour}/h`
                : "",
            )
          : null,
        gpus ? h("td", { class: "num" }, i.gpus ?? "") : null,
        h("td", { class: "hide-narrow" }, i.reason ?? ""),
      ),
    );
    replace(
      instancesPanel,
      h(
        "h2",
        { id: "instances-title" },
        `Instances (${d.instances.filter((i) => i.status !== "terminated").length} live)`,
      ),
      rows.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              {},
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", { scope: "col" }, "Instance"),
                  h("th", { scope: "col" }, "Status"),
                  h("th", { scope: "col", class: "hide-narrow" }, "Host"),
                  h("th", { scope: "col" }, "Launched"),
                  h("th", { scope: "col" }, "Heartbeat"),
                  priced ? h("th", { scope: "col" }, "Placement") : null,
                  gpus ? h("th", { scope: "col", class: "num" }, "GPUs") : null,
                  h("th", { scope: "col", class: "hide-narrow" }, "Reason"),
                ),
              ),
              h("tbody", {}, ...rows),
            ),
          )
        : h("p", { class: "muted" }, "No instances yet."),
    );
    const chart = costOverTime(d.instances, d.budgetUsd, Date.now());
    costPanel.hidden = !chart;
    if (chart) replace(costPanel, h("h2", { id: "cost-title" }, "Cost over time"), chart);
  }

  // --- results -------------------------------------------------------------------------------

  function setOptions(select: HTMLSelectElement, values: readonly string[]): void {
    const current = select.value;
    const have = [...select.options].map((o) => o.value);
    if (have.length === values.length && have.every((v, i) => v === values[i])) return;
    replace(select, ...values.map((v) => h("option", { value: v }, v)));
    if (values.includes(current)) select.value = current;
  }

  async function loadResults(): Promise<void> {
    try {
      results = await request(Results, `/api/sweeps/${enc(sweepId)}/results`);
      resultsAt = Date.now();
      const numeric = results.metrics.filter((m) =>
        results?.rows.some((r) => typeof r.metrics[m] === "number"),
      );
      const first = !metricSelect.options.length;
      setOptions(metricSelect, numeric);
      if (first) {
        // A counter (step, epoch) is rarely what to rank by; scores and accuracies are best high.
        const pick = numeric.find((m) => !COUNTERS.test(m)) ?? numeric[0];
        if (pick) {
          metricSelect.value = pick;
          orderSelect.value = HIGHER_IS_BETTER.test(pick) ? "max" : "min";
        }
      }
      setOptions(xSelect, results.params);
      renderResults();
      if (selected !== undefined) renderTaskFacts(selected);
    } catch (e) {
      resultsStatus.textContent = `could not load results: ${errorText(e)}`;
    }
  }

  /** Results hold every task (about 2 MB for 10,000): refreshed after tasks finish, at most every few seconds. */
  function refreshResultsSoon(): void {
    if (resultsTimer !== undefined) return;
    // A large sweep's results are megabytes: refreshed rarely by themselves, or with the button.
    const every = (detail?.taskCount ?? 0) > 2000 ? 30_000 : 2000;
    resultsTimer = later(
      () => {
        resultsTimer = undefined;
        void loadResults();
      },
      Math.max(0, resultsAt + every - Date.now()),
    );
  }

  const metricOf = (r: ResultRow, m: string) => {
    const v = r.metrics[m];
    return typeof v === "number" && Number.isFinite(v) ? v : undefined;
  };

  function matches(r: ResultRow, status: string, terms: string[]): boolean {
    if (status && r.status !== status) return false;
    if (terms.length === 0) return true;
    const hay = [
      `task=${r.index}`,
      r.status,
      r.error ?? "",
      ...Object.entries(r.params).map(([k, v]) => `${k}=${show(v)}`),
      ...Object.entries(r.metrics).map(([k, v]) => `${k}=${show(v)}`),
    ]
      .join(" ")
      .toLowerCase();
    return terms.every((t) => hay.includes(t));
  }

  function renderResults(): void {
    if (!results) return;
    const r = results;
    const metric = metricSelect.value;
    const max = orderSelect.value === "max";
    const terms = textFilter.value.toLowerCase().split(/\s+/).filter(Boolean);
    const rows = r.rows.filter((row) => matches(row, statusFilter.value, terms));
    const ranked = metric
      ? rows
          .filter((row) => metricOf(row, metric) !== undefined)
          .sort(
            (a, b) => ((metricOf(a, metric) as number) - (metricOf(b, metric) as number)) * (max ? -1 : 1),
          )
      : [];
    const best = new Set(ranked.slice(0, BEST_COUNT).map((row) => row.index));
    const ordered = metric ? [...ranked, ...rows.filter((row) => metricOf(row, metric) === undefined)] : rows;

    resultsStatus.textContent = `${rows.length} of ${r.rows.length} tasks match${
      ordered.length > MAX_ROWS ? `; the first ${MAX_ROWS} are listed` : ""
    }${metric ? `; best ${best.size} by ${metric} highlighted` : ""}`;
    replace(
      resultsHead,
      h("th", { scope: "col", class: "num" }, "Task"),
      h("th", { scope: "col" }, "Status"),
      ...r.params.map((p) => h("th", { scope: "col" }, p)),
      ...r.metrics.map((m) => h("th", { scope: "col", class: "num" }, m)),
      h("th", { scope: "col", class: "num hide-narrow" }, "Attempts"),
      h("th", { scope: "col", class: "num hide-narrow" }, "Duration"),
    );
    replace(
      resultsBody,
      ...ordered
        .slice(0, MAX_ROWS)
        .map((row) =>
          h(
            "tr",
            { class: best.has(row.index) ? "best" : undefined, "data-task": row.index },
            h(
              "td",
              { class: "num" },
              h("a", { href: `#/sweeps/${enc(sweepId)}/tasks/${row.index}` }, String(row.index)),
              best.has(row.index) ? h("span", { class: "visually-hidden" }, " (best)") : null,
            ),
            h("td", {}, badge(row.status)),
            ...r.params.map((p) => h("td", {}, show(row.params[p]))),
            ...r.metrics.map((m) => h("td", { class: "num" }, show(row.metrics[m]))),
            h("td", { class: "num hide-narrow" }, row.attempts),
            h("td", { class: "num hide-narrow" }, duration(row.durationMs)),
          ),
        ),
    );
    const x = xSelect.value;
    if (metric && x) {
      const points = ranked.map((row) => ({
        index: row.index,
        x: row.params[x],
        y: metricOf(row, metric) as number,
        best: best.has(row.index),
      }));
      replace(
        chartBox,
        scatter(points, x, metric, (i) => (location.hash = `#/sweeps/${enc(sweepId)}/tasks/${i}`)),
      );
    } else replace(chartBox);
  }

  // --- the selected task: facts, metric curves, live log -------------------------------------

  let logAbort: AbortController | undefined;

  function renderTaskFacts(index: number): void {
    const box = taskPanel.querySelector<HTMLElement>("[data-facts]");
    const row = results?.rows.find((r) => r.index === index);
    if (!box || !row) return;
    const kv = (entries: [string, unknown][]) =>
      h(
        "dl",
        { class: "facts kv" },
        ...entries.map(([k, v]) => h("div", {}, h("dt", {}, k), h("dd", {}, show(v)))),
      );
    replace(
      box,
      h(
        "p",
        {},
        badge(row.status),
        ` attempts ${row.attempts}`,
        row.exitCode === null ? "" : `, exit ${row.exitCode}`,
      ),
      row.error ? h("p", { class: "error" }, row.error) : null,
      h("h3", {}, "Params"),
      kv(Object.entries(row.params)),
      Object.keys(row.metrics).length ? h("h3", {}, "Final metrics") : null,
      Object.keys(row.metrics).length ? kv(Object.entries(row.metrics)) : null,
      row.outputs.length
        ? h(
            "ul",
            {},
            ...row.outputs.map((key) => {
              const path = key.split("/").slice(3).join("/");
              return h("li", {}, h("a", { href: outputUrl(sweepId, index, path), download: "" }, path));
            }),
          )
        : null,
    );
  }

  function openTask(index: number): void {
    selected = index;
    logAbort?.abort();
    const abort = new AbortController();
    logAbort = abort;
    const attemptSelect = h("select", { id: "log-attempt", "aria-label": "attempt" });
    const log = h("pre", {
      class: "log",
      tabindex: 0,
      "aria-label": `log of task ${index}`,
      "aria-live": "off",
    });
    const logStatus = h("p", { class: "muted", role: "status" });
    const curveBox = h("div");
    replace(
      taskPanel,
      h("h2", { id: "task-title" }, `Task ${index}`),
      h("div", { "data-facts": "" }),
      h("h3", {}, "Metrics over steps"),
      curveBox,
      h("h3", {}, "Log"),
      h("div", { class: "controls" }, h("label", { for: "log-attempt" }, "Attempt", attemptSelect)),
      logStatus,
      log,
    );
    renderTaskFacts(index);
    if (!results) void loadResults();

    let attempt: number | undefined;
    let offset = 0;
    const base = `/api/sweeps/${enc(sweepId)}`;
    const loadCurves = async () => {
      try {
        const c = await request(
          MetricCurves,
          `${base}/metrics/${index}${attempt ? `?attempt=${attempt}` : ""}`,
          {
            signal: abort.signal,
          },
        );
        if (Object.keys(c.series).length)
          replace(curveBox, curves(c.series, `metrics of task ${index}, attempt ${c.attempt}`));
        else
          replace(
            curveBox,
            h(
              "p",
              { class: "muted" },
              c.available
                ? "The metrics file has no numeric values."
                : "No metrics file stored for this attempt.",
            ),
          );
      } catch (e) {
        if (!abort.signal.aborted) replace(curveBox, h("p", { class: "error" }, errorText(e)));
      }
    };
    const tail = async () => {
      try {
        const q = new URLSearchParams({ offset: String(offset) });
        if (attempt) q.set("attempt", String(attempt));
        const chunk = await request(LogChunk, `${base}/logs/${index}?${q}`, { signal: abort.signal });
        if (attempt === undefined) {
          attempt = chunk.attempt;
          replace(attemptSelect, ...chunk.attempts.map((a) => h("option", { value: a }, `attempt ${a}`)));
          attemptSelect.value = String(chunk.attempt);
          void loadCurves();
        }
        const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
        if (chunk.text) log.append(document.createTextNode(chunk.text));
        if (atBottom) log.scrollTop = log.scrollHeight;
        offset = chunk.nextOffset;
        logStatus.textContent = chunk.attempt === 0 ? "No log yet." : chunk.complete ? "" : "following live…";
        if (!chunk.complete) later(() => void tail(), chunk.nextOffset > chunk.offset ? 250 : 1000);
      } catch (e) {
        if (!abort.signal.aborted) logStatus.textContent = `could not load the log: ${errorText(e)}`;
      }
    };
    attemptSelect.addEventListener("change", () => {
      attempt = Number(attemptSelect.value);
      offset = 0;
      log.replaceChildren();
      void tail();
      void loadCurves();
    });
    void tail();
    taskPanel.scrollIntoView?.({ block: "nearest" });
  }

  // --- live updates --------------------------------------------------------------------------

  function applyStates(all: string): void {
    states = all.split("") as TaskStateCode[];
    counts = countStates(all);
    grid.setStates(all);
    renderCounts();
  }

  function onSnapshot(snap: SnapshotEvent, how: string): void {
    seq = snap.seq;
    detail = snap.sweep;
    applyStates(snap.states);
    renderDetail();
    // After the grid: results are every task's row, and the grid is what the page is for first.
    if (!results) refreshResultsSoon();
    connection.textContent = how;
  }

  function onDelta(changes: DeltaEvent["changes"], sweep: SweepDetail | undefined): void {
    let finished = false;
    for (const [i, code] of changes) {
      const old = states[i];
      if (old === undefined || old === code) continue;
      counts[statusName(old)]--;
      counts[statusName(code)]++;
      states[i] = code;
      if (code === "s" || code === "f" || code === "c") finished = true;
    }
    grid.apply(changes);
    if (changes.length) renderCounts();
    if (sweep) {
      const was = detail?.status;
      detail = sweep;
      renderDetail();
      if (was !== detail.status) announce(`sweep ${detail.status}`);
    }
    if (finished || sweep) refreshResultsSoon();
    if (selected !== undefined && changes.some(([i]) => i === selected)) refreshResultsSoon();
  }

  /**
   * Live updates without a stream (AWS): the snapshot every 2 s (5 s above 2,000 tasks), 304
   * while nothing changed; a changed one is applied as the delta it differs by.
   */
  async function pollLive(): Promise<void> {
    let etag: string | undefined;
    let loaded = false;
    while (!closed) {
      try {
        const r = await pollSnapshot(sweepId, etag);
        etag = r.etag;
        if (r.snapshot && !loaded) {
          loaded = true;
          onSnapshot(r.snapshot, "live (polling)");
        } else if (r.snapshot) {
          const changes: DeltaEvent["changes"] = [];
          r.snapshot.states.split("").forEach((code, i) => {
            if (states[i] !== code) changes.push([i, code as TaskStateCode]);
          });
          const sweepChanged = JSON.stringify(r.snapshot.sweep) !== JSON.stringify(detail);
          onDelta(changes, sweepChanged ? r.snapshot.sweep : undefined);
        }
        if (loaded) connection.textContent = "live (polling)";
      } catch {
        connection.textContent = "reconnecting…";
      }
      await new Promise((resolve) =>
        timers.add(window.setTimeout(resolve, states.length > 2000 ? 5000 : 2000)),
      );
    }
  }

  function connect(): void {
    events?.close();
    seq = -1;
    if (liveUpdates === "poll") return void pollLive();
    const es = new EventSource(`/api/sweeps/${enc(sweepId)}/events`);
    events = es;
    es.addEventListener("snapshot", (e) => {
      onSnapshot(SnapshotEvent.parse(JSON.parse((e as MessageEvent).data)), "live");
    });
    es.addEventListener("delta", (e) => {
      const delta = DeltaEvent.parse(JSON.parse((e as MessageEvent).data));
      if (delta.seq !== seq + 1) return connect(); // missed one: start again from a snapshot
      seq = delta.seq;
      onDelta(delta.changes, delta.sweep);
    });
    es.onerror = () => {
      connection.textContent = "reconnecting…";
    };
  }

  const statusName = (code: TaskStateCode) =>
    ({ p: "pending", r: "running", s: "succeeded", f: "failed", c: "cancelled" })[code] as keyof StatusCounts;

  void (async () => {
    try {
      detail = await request(SweepDetailSchema, `/api/sweeps/${enc(sweepId)}`);
      renderDetail();
      connect();
    } catch (e) {
      replace(
        main,
        h("p", {}, h("a", { href: "#/" }, "← all sweeps")),
        h("p", { class: "error", role: "alert" }, errorText(e)),
      );
    }
  })();

  return {
    sweepId,
    open: openTask,
    close() {
      closed = true;
      events?.close();
      logAbort?.abort();
      grid.destroy();
      for (const t of timers) clearTimeout(t);
      connection.textContent = "";
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Routing

let page: SweepPage | undefined;
let stopList: (() => void) | undefined;

/** Views that are a list refreshed on a timer: each renders into main and returns its stop. */
const LIST_VIEWS: Record<string, () => () => void> = {
  "/": listPage,
  "/schedules": () => schedulesPage(main),
  "/alerts": () => alertsPage(main),
};

function route(): void {
  const path = location.hash.replace(/^#/, "") || "/";
  const m = /^\/sweeps\/([^/]+)(?:\/tasks\/(\d+))?$/.exec(path);
  stopList?.();
  stopList = undefined;
  // The nav says where the user is (aria-current), sweep pages under Sweeps.
  for (const link of document.querySelectorAll<HTMLAnchorElement>("header nav a")) {
    const here = link.hash === `#${path}` || (m !== null && link.hash === "#/");
    if (here) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (!m) {
    page?.close();
    page = undefined;
    const queue = /^\/queues\/([^/]+)$/.exec(path);
    stopList = queue
      ? queuePage(main, decodeURIComponent(queue[1] as string))
      : (LIST_VIEWS[path] ?? listPage)();
    main.focus({ preventScroll: true });
    return;
  }
  const sweepId = decodeURIComponent(m[1] as string);
  if (page?.sweepId !== sweepId) {
    page?.close();
    page = sweepPage(sweepId);
    main.focus({ preventScroll: true });
  }
  if (m[2] !== undefined) page.open(Number(m[2]));
}

window.addEventListener("hashchange", route);
route();
