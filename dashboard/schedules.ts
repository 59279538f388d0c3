/**
 * `#/schedules`: the user's schedules (what `spawn schedule list` shows), a form that creates or
 * edits one, and pause, resume and delete. Every rule is the server's, which runs the CLI's.
 * On AWS the schedules are the caller's teams', and a new one runs an existing sweep again (its
 * stored spec and workdir): a browser has no spec file or workdir to send.
 */
import { Deleted, ScheduleList, ScheduleView, SweepList, TeamList } from "#core/api.js";
import { onAws, request } from "./api.js";
import { announce, h, replace } from "./dom.js";
import { badge, cardTable, errorText, every, field, input, onSubmit, replaceRows, when } from "./forms.js";

const EXAMPLES = {
  cron: "e.g. 0 2 * * 1-5 (02:00 on weekdays)",
  rate: "e.g. 30m, 6h, 1d",
  at: "e.g. 2026-12-01T09:00",
};
const enc = encodeURIComponent;

/** Renders the schedules view into `main`; returns what stops its refresh. */
export function schedulesPage(main: HTMLElement): () => void {
  document.title = "Schedules · spawn";
  let editing: ScheduleView | undefined;

  const sweeps = h("datalist", { id: "sch-sweeps" });
  const teams = h("datalist", { id: "sch-teams" });
  // What a new schedule launches: a spec file on the dashboard's machine, or on AWS a sweep to run again.
  const spec = onAws
    ? field(
        "sch",
        "fromSweep",
        "Sweep to run again",
        input({ required: true, list: "sch-sweeps" }),
        "its spec and workdir, as launched; other specs: spawn schedule create <spec> --provider aws",
      )
    : field(
        "sch",
        "spec",
        "Spec file",
        input({ required: true }),
        "a path on this machine, relative to where spawn dashboard was started",
      );
  const team = field(
    "sch",
    "team",
    "Team",
    input({ value: "default", list: "sch-teams" }),
    "the team that sees and runs it; you must be one of its admins",
  );
  const kind = field(
    "sch",
    "kind",
    "Trigger",
    h(
      "select",
      {},
      h("option", { value: "cron" }, "cron"),
      h("option", { value: "rate" }, "every (rate)"),
      h("option", { value: "at" }, "once (at)"),
    ),
  );
  const expression = field("sch", "expression", "When", input({ required: true }), EXAMPLES.cron);
  const timezone = field(
    "sch",
    "timezone",
    "Time zone",
    input({ value: "UTC" }),
    "IANA zone, e.g. Europe/Paris",
  );
  const name = field("sch", "name", "Name", input(), `default: the ${onAws ? "sweep" : "spec"}'s name`);
  const maxExecutions = field(
    "sch",
    "maxExecutions",
    "Max launches",
    input({ inputmode: "numeric" }),
    "optional",
  );
  const endAfter = field("sch", "endAfter", "End after", input(), "optional ISO time, e.g. 2027-01-01T00:00");
  const fields = [spec, ...(onAws ? [team] : []), kind, expression, timezone, name, maxExecutions, endAfter];
  kind.control.addEventListener("change", () => {
    const hint = document.getElementById("sch-expression-hint");
    if (hint) hint.textContent = EXAMPLES[kind.control.value as keyof typeof EXAMPLES];
  });

  const formTitle = h("h2", { id: "sch-form-title" }, "New schedule");
  const formAlert = h("p", { class: "error", role: "alert" });
  const submit = h("button", { type: "submit" }, "Create schedule");
  const cancelEdit = h(
    "button",
    { type: "button", hidden: true, onclick: () => startEdit(undefined) },
    "Cancel edit",
  );
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-labelledby": "sch-form-title" },
    ...fields.map((f) => f.el),
    sweeps,
    teams,
    h("div", { class: "form-actions" }, submit, cancelEdit),
    formAlert,
  );
  const status = h("p", { class: "muted", role: "status", id: "schedules-status" }, "loading…");
  const body = h("tbody") as HTMLTableSectionElement;
  replace(
    main,
    h("h1", {}, "Schedules"),
    h(
      "p",
      { class: "muted" },
      "Sweeps launched at a time, on a cron expression or every N hours. Same as ",
      h("code", {}, "spawn schedule"),
      onAws ? ". Here a schedule runs one of your teams' sweeps again; schedule other specs with " : ".",
      onAws ? h("code", {}, "spawn schedule create <spec> --provider aws") : null,
      onAws ? "." : null,
    ),
    status,
    cardTable(
      "schedules-table",
      "Your schedules, newest first",
      [
        ["Schedule"],
        ["State"],
        ["Trigger"],
        ["Next run"],
        ["Runs", "num"],
        ["Missed", "num"],
        ["Last sweep"],
        ["[Actions]"],
      ],
      body,
    ),
    h("section", { class: "panel", "aria-labelledby": "sch-form-title" }, formTitle, form),
  );

  function startEdit(s: ScheduleView | undefined): void {
    editing = s;
    for (const f of fields) f.setError("");
    formAlert.textContent = "";
    for (const f of [spec, team]) {
      f.control.disabled = s !== undefined;
      f.el.hidden = s !== undefined;
    }
    formTitle.textContent = s ? `Edit ${s.name}` : "New schedule";
    submit.textContent = s ? "Save changes" : "Create schedule";
    cancelEdit.hidden = !s;
    if (s) {
      kind.control.value = s.trigger.kind;
      kind.control.dispatchEvent(new Event("change"));
      expression.control.value = s.trigger.expression;
      timezone.control.value = s.trigger.timezone;
      name.control.value = s.name;
      maxExecutions.control.value = s.maxExecutions === null ? "" : String(s.maxExecutions);
      endAfter.control.value = s.endAt ?? "";
      expression.control.focus();
    } else form.reset();
  }

  onSubmit(form, fields, formAlert, async () => {
    const trigger = {
      kind: kind.control.value,
      expression: expression.control.value.trim(),
      timezone: timezone.control.value.trim() || "UTC",
    };
    // As typed: the server parses it as the CLI parses --max-executions.
    const limit = maxExecutions.control.value.trim();
    const end = endAfter.control.value.trim();
    if (editing) {
      const saved = await request(ScheduleView, `/api/schedules/${enc(editing.scheduleId)}`, {
        method: "PUT",
        body: {
          ...trigger,
          name: name.control.value.trim() || undefined,
          maxExecutions: limit || null,
          endAfter: end || null,
        },
      });
      announce(`schedule ${saved.name} saved; next run ${when(saved.nextRunAt)}`);
    } else {
      const created = await request(ScheduleView, "/api/schedules", {
        method: "POST",
        body: {
          ...trigger,
          ...(onAws
            ? { fromSweep: spec.control.value.trim(), team: team.control.value.trim() || undefined }
            : { spec: spec.control.value.trim() }),
          name: name.control.value.trim() || undefined,
          maxExecutions: limit || undefined,
          endAfter: end || undefined,
        },
      });
      announce(`schedule ${created.scheduleId} created; next run ${when(created.nextRunAt)}`);
    }
    startEdit(undefined);
    await load();
  });

  async function act(s: ScheduleView, verb: "pause" | "resume" | "delete"): Promise<void> {
    if (verb === "delete" && !confirm(`Delete schedule ${s.name}? Its sweeps and history stay.`)) return;
    try {
      if (verb === "delete")
        await request(Deleted, `/api/schedules/${enc(s.scheduleId)}`, { method: "DELETE" });
      else await request(ScheduleView, `/api/schedules/${enc(s.scheduleId)}/${verb}`, { method: "POST" });
      announce(`schedule ${s.name} ${verb === "delete" ? "deleted" : `${verb}d`}`);
      if (editing?.scheduleId === s.scheduleId) startEdit(undefined);
      await load();
    } catch (e) {
      status.textContent = `${verb} failed: ${errorText(e)}`;
    }
  }

  const row = (s: ScheduleView) =>
    h(
      "tr",
      { "data-schedule": s.scheduleId },
      h(
        "td",
        {},
        s.name,
        h("div", { class: "muted kv" }, s.scheduleId),
        s.team ? h("div", { class: "muted" }, `team ${s.team}`) : null,
        s.reason ? h("div", { class: "muted" }, s.reason) : null,
      ),
      h("td", {}, badge(s.state)),
      h(
        "td",
        { class: "kv" },
        `${s.trigger.kind} ${s.trigger.expression}${s.trigger.timezone === "UTC" ? "" : ` (${s.trigger.timezone})`}`,
      ),
      h("td", {}, s.state === "enabled" ? when(s.nextRunAt) : "—"),
      h(
        "td",
        { class: "num" },
        s.maxExecutions ? `${s.executions}/${s.maxExecutions}` : String(s.executions),
      ),
      h("td", { class: "num" }, s.missed),
      h(
        "td",
        {},
        s.lastSweepId ? h("a", { href: `#/sweeps/${enc(s.lastSweepId)}`, class: "kv" }, s.lastSweepId) : "—",
      ),
      h(
        "td",
        { class: "row-actions" },
        s.state === "completed"
          ? null
          : h(
              "button",
              { type: "button", "aria-label": `Edit ${s.name}`, onclick: () => startEdit(s) },
              "Edit",
            ),
        s.state === "enabled"
          ? h(
              "button",
              { type: "button", "aria-label": `Pause ${s.name}`, onclick: () => void act(s, "pause") },
              "Pause",
            )
          : s.state === "paused"
            ? h(
                "button",
                { type: "button", "aria-label": `Resume ${s.name}`, onclick: () => void act(s, "resume") },
                "Resume",
              )
            : null,
        h(
          "button",
          {
            type: "button",
            class: "danger",
            "aria-label": `Delete ${s.name}`,
            onclick: () => void act(s, "delete"),
          },
          "Delete",
        ),
      ),
    );

  async function load(): Promise<void> {
    try {
      const { schedules } = await request(ScheduleList, "/api/schedules");
      replaceRows(body, JSON.stringify(schedules), schedules.map(row));
      status.textContent = schedules.length
        ? `${schedules.length} schedule(s)`
        : 'No schedules yet: create one below, or spawn schedule create <spec> --cron "0 2 * * *"';
    } catch (e) {
      status.textContent = `could not load the schedules: ${errorText(e)}`;
    }
  }

  // On AWS, suggestions for the sweep and team fields: the sweeps and teams the caller sees.
  if (onAws)
    void Promise.all([request(SweepList, "/api/sweeps"), request(TeamList, "/api/teams")])
      .then(([list, mine]) => {
        replace(
          sweeps,
          ...list.sweeps
            .filter((s) => !s.stages && !s.stage && !s.queue)
            .map((s) => h("option", { value: s.sweepId }, s.name)),
        );
        replace(teams, ...mine.teams.map((t) => h("option", { value: t.team }, t.role)));
      })
      .catch(() => {
        // Suggestions only: the fields take any value.
      });

  return every(5000, load);
}
