/**
 * `#/alerts`: the user's alerts (what `spawn alerts list` shows, webhook URLs masked), a form that
 * creates one or edits one's triggers and channels, and delete. A URL left empty while editing
 * keeps the one stored: the browser never has it.
 */
import { AlertList, AlertView, Deleted, ScheduleList, SweepList } from "#core/api.js";
import { onAws, request } from "./api.js";
import { announce, h, replace } from "./dom.js";
import { cardTable, errorText, every, field, input, onSubmit, replaceRows } from "./forms.js";

const enc = encodeURIComponent;
const DEFAULT_ON = "failure,complete";

const channelText = (c: AlertView["channels"][number]) =>
  c.masked
    ? `${c.kind} ${c.masked}`
    : c.address
      ? `${c.kind} ${c.address}`
      : c.topicArn
        ? `${c.kind} ${c.topicArn}`
        : c.kind;

/** Renders the alerts view into `main`; returns what stops its refresh. */
export function alertsPage(main: HTMLElement): () => void {
  document.title = "Alerts · spawn";
  let editing: AlertView | undefined;

  const targets = h("datalist", { id: "al-targets" });
  const target = field(
    "al",
    "target",
    "Sweep or schedule",
    input({ list: "al-targets", required: true }),
    "a sweep id, or a schedule id (sch-…) for every sweep it launches",
  );
  const on = field(
    "al",
    "on",
    "On",
    input({ value: DEFAULT_ON }),
    "comma-separated: failure, complete, cancelled, task-failed, budget, cost>USD, long-running>2h, preempted>N",
  );
  const slack = field("al", "slack", "Slack webhook URL", input({ inputmode: "url" }), "optional");
  const webhook = field(
    "al",
    "webhook",
    "Webhook URL",
    input({ inputmode: "url" }),
    "optional; https, or http to loopback; signed",
  );
  const webhookSecret = field(
    "al",
    "webhookSecret",
    "Webhook signing secret",
    input({ type: "password", autocomplete: "new-password" }),
    "optional, at least 16 characters; generated and shown once when left empty",
  );
  const logBox = h("input", { type: "checkbox" }) as HTMLInputElement;
  const log = field("al", "log", "Also append to the local alert log", logBox);
  log.el.classList.add("field-check");
  // On AWS an alert belongs to a team (any member manages it); the local alert log is the embedded default's.
  const team = field(
    "al",
    "team",
    "Team",
    input({ value: "default" }),
    "the team whose members see and manage it; it must see the sweep",
  );
  const fields = onAws
    ? [target, team, on, slack, webhook, webhookSecret]
    : [target, on, slack, webhook, webhookSecret, log];

  const formTitle = h("h2", { id: "al-form-title" }, "New alert");
  const formAlert = h("p", { class: "error", role: "alert" });
  const secretNotice = h("div", { class: "notice", role: "status", hidden: true });
  const submit = h("button", { type: "submit" }, "Create alert");
  const cancelEdit = h(
    "button",
    { type: "button", hidden: true, onclick: () => startEdit(undefined) },
    "Cancel edit",
  );
  const form = h(
    "form",
    { class: "form-grid", novalidate: true, "aria-labelledby": "al-form-title" },
    ...fields.map((f) => f.el),
    targets,
    h("div", { class: "form-actions" }, submit, cancelEdit),
    formAlert,
  );
  const status = h("p", { class: "muted", role: "status", id: "alerts-status" }, "loading…");
  const body = h("tbody") as HTMLTableSectionElement;
  replace(
    main,
    h("h1", {}, "Alerts"),
    h(
      "p",
      { class: "muted" },
      `Slack, webhooks${onAws ? "" : " or the local alert log"} when a sweep or schedule needs you. Same as `,
      h("code", {}, "spawn alerts"),
      ".",
    ),
    status,
    secretNotice,
    cardTable(
      "alerts-table",
      "Your alerts",
      [["Alert"], ["Target"], ["On"], ["Channels"], ["Created"], ["[Actions]"]],
      body,
    ),
    h("section", { class: "panel", "aria-labelledby": "al-form-title" }, formTitle, form),
  );

  function startEdit(a: AlertView | undefined): void {
    editing = a;
    for (const f of fields) f.setError("");
    formAlert.textContent = "";
    target.control.disabled = team.control.disabled = a !== undefined;
    formTitle.textContent = a ? `Edit ${a.id}` : "New alert";
    submit.textContent = a ? "Save changes" : "Create alert";
    cancelEdit.hidden = !a;
    form.reset();
    // Empty URL fields keep the stored ones: the placeholders say which.
    const masked = (kind: string) => a?.channels.find((c) => c.kind === kind)?.masked;
    slack.control.placeholder = masked("slack") ? `keep ${masked("slack")}` : "";
    webhook.control.placeholder = masked("webhook") ? `keep ${masked("webhook")}` : "";
    webhookSecret.control.placeholder = masked("webhook") ? "keep the current secret" : "";
    if (!a) return;
    target.control.value = a.target.id;
    on.control.value = a.on.join(",");
    logBox.checked = a.channels.some((c) => c.kind === "log");
    on.control.focus();
  }

  /** A generated signing secret is shown here once, as the CLI prints it once. */
  function showSecret(a: AlertView): void {
    secretNotice.hidden = !a.webhookSecret;
    if (a.webhookSecret)
      replace(
        secretNotice,
        `Webhook signing secret for ${a.id} (shown once, keep it): `,
        h("code", { class: "kv" }, a.webhookSecret),
      );
  }

  onSubmit(form, fields, formAlert, async () => {
    const channels = {
      on: on.control.value.trim() || undefined,
      slack: slack.control.value.trim() || undefined,
      webhook: webhook.control.value.trim() || undefined,
      webhookSecret: webhookSecret.control.value || undefined,
      ...(onAws ? {} : { log: logBox.checked }),
    };
    const saved = editing
      ? await request(AlertView, `/api/alerts/${enc(editing.id)}`, { method: "PUT", body: channels })
      : await request(AlertView, "/api/alerts", {
          method: "POST",
          body: {
            ...channels,
            target: target.control.value.trim(),
            ...(onAws ? { team: team.control.value.trim() || undefined } : {}),
          },
        });
    announce(editing ? `alert ${editing.id} replaced by ${saved.id}` : `alert ${saved.id} created`);
    showSecret(saved);
    startEdit(undefined);
    await load();
  });

  async function remove(a: AlertView): Promise<void> {
    if (!confirm(`Delete alert ${a.id} on ${a.target.id}? Its history stays.`)) return;
    try {
      await request(Deleted, `/api/alerts/${enc(a.id)}`, { method: "DELETE" });
      announce(`alert ${a.id} deleted`);
      if (editing?.id === a.id) startEdit(undefined);
      await load();
    } catch (e) {
      status.textContent = `delete failed: ${errorText(e)}`;
    }
  }

  const row = (a: AlertView) =>
    h(
      "tr",
      { "data-alert": a.id },
      h(
        "td",
        { class: "kv" },
        a.id,
        a.inheritedFrom ? h("div", { class: "muted" }, `from ${a.inheritedFrom}`) : null,
        a.team ? h("div", { class: "muted" }, `team ${a.team}`) : null,
      ),
      h(
        "td",
        {},
        a.target.kind === "sweep"
          ? h("a", { href: `#/sweeps/${enc(a.target.id)}`, class: "kv" }, a.target.id)
          : h("span", { class: "kv" }, a.target.id),
      ),
      h("td", { class: "kv" }, a.on.join(", ")),
      h(
        "td",
        {},
        h("ul", { class: "plain" }, ...a.channels.map((c) => h("li", { class: "kv" }, channelText(c)))),
      ),
      h("td", {}, `${a.createdAt.slice(0, 16).replace("T", " ")} UTC`),
      h(
        "td",
        { class: "row-actions" },
        h("button", { type: "button", "aria-label": `Edit ${a.id}`, onclick: () => startEdit(a) }, "Edit"),
        h(
          "button",
          { type: "button", class: "danger", "aria-label": `Delete ${a.id}`, onclick: () => void remove(a) },
          "Delete",
        ),
      ),
    );

  async function load(): Promise<void> {
    try {
      const { alerts } = await request(AlertList, "/api/alerts");
      replaceRows(body, JSON.stringify(alerts), alerts.map(row));
      status.textContent = alerts.length
        ? `${alerts.length} alert(s)`
        : "No alerts yet: create one below, or spawn alerts create <sweep-or-schedule> --slack URL";
    } catch (e) {
      status.textContent = `could not load the alerts: ${errorText(e)}`;
    }
  }

  // Suggestions for the target field: the user's sweeps and schedules.
  void Promise.all([request(SweepList, "/api/sweeps"), request(ScheduleList, "/api/schedules")])
    .then(([sweeps, schedules]) =>
      replace(
        targets,
        ...schedules.schedules.map((s) => h("option", { value: s.scheduleId }, s.name)),
        ...sweeps.sweeps.map((s) => h("option", { value: s.sweepId }, s.name)),
      ),
    )
    .catch(() => {
      // Suggestions only: the field takes any id.
    });

  return every(5000, load);
}
