/**
 * Forms and the small pieces the management views share: labelled fields whose error shows
 * next to them (the server names the field, `ApiError.field`), and a submit that maps a 400
 * back onto its field. Validation is the server's, which is the CLI's: the browser checks nothing
 * itself (`novalidate`), so a message is always the one `spawn` would print.
 */
import { RequestError } from "./api.js";
import { h, replace } from "./dom.js";

/** A state as a coloured pill (sweeps, tasks, schedules, jobs). */
export function badge(status: string): HTMLElement {
  return h("span", { class: `badge ${status}` }, status);
}

/** An error as one line for people: the message and, when there is one, the hint. */
export function errorText(e: unknown): string {
  if (e instanceof RequestError) return `${e.message}${e.hint ? ` (${e.hint})` : ""}`;
  return e instanceof Error ? e.message : String(e);
}

type Control = HTMLInputElement | HTMLSelectElement;

export interface Field<C extends Control = Control> {
  /** The request-body key this field fills, as the server names it in errors. */
  name: string;
  control: C;
  /** The field's wrapper: label, control, hint, error. */
  el: HTMLElement;
  setError(message: string): void;
}

/** A labelled control with a hint and an error slot, both announced with it (aria-describedby). */
export function field<C extends Control>(
  form: string,
  name: string,
  label: string,
  control: C,
  hint?: string,
): Field<C> {
  const id = `${form}-${name}`;
  control.id = id;
  control.name = name;
  const hintEl = hint ? h("span", { id: `${id}-hint`, class: "hint" }, hint) : null;
  const error = h("span", { id: `${id}-error`, class: "field-error" });
  control.setAttribute("aria-describedby", `${hint ? `${id}-hint ` : ""}${id}-error`);
  const el = h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl, error);
  return {
    name,
    control,
    el,
    setError(message: string) {
      error.textContent = message;
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    },
  };
}

export const input = (attrs: Record<string, string | boolean | undefined> = {}) =>
  h("input", { type: "text", autocomplete: "off", spellcheck: "false", ...attrs });

/**
 * Runs `send` on submit: clears old errors, shows a rejected field's message next to it (and
 * focuses it), or any other failure in the form's alert line.
 */
export function onSubmit(
  form: HTMLFormElement,
  fields: readonly Field[],
  alertLine: HTMLElement,
  send: () => Promise<void>,
): void {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    for (const f of fields) f.setError("");
    alertLine.textContent = "";
    const submit = form.querySelector<HTMLButtonElement>("button[type=submit]");
    if (submit) submit.disabled = true;
    send()
      .catch((e) => {
        const target =
          e instanceof RequestError && e.field ? fields.find((f) => f.name === e.field) : undefined;
        if (target) {
          target.setError(errorText(e));
          target.control.focus();
        } else alertLine.textContent = errorText(e);
      })
      .finally(() => {
        if (submit) submit.disabled = false;
      });
  });
}

/**
 * Replaces a table's rows when they changed, keeping keyboard focus on the same button (by its
 * aria-label, else the one in its place: Pause becomes Resume) so a refresh or an action never
 * throws a keyboard user back to the top of the page.
 */
export function replaceRows(body: HTMLTableSectionElement, key: string, rows: readonly HTMLElement[]): void {
  if (body.dataset.key === key) return;
  body.dataset.key = key;
  const active = body.contains(document.activeElement) ? (document.activeElement as HTMLElement) : null;
  const label = active?.getAttribute("aria-label");
  const row = active?.closest("tr");
  const place = row
    ? [[...body.rows].indexOf(row), [...row.querySelectorAll("button")].indexOf(active as HTMLButtonElement)]
    : undefined;
  replace(body, ...rows);
  // On a phone each row is a card (styles.css): each cell shows its column's name, and the
  // explicit roles keep the table a table for screen readers once its display is changed.
  const names = [...(body.closest("table")?.tHead?.rows[0]?.cells ?? [])].map((c) => c.textContent ?? "");
  for (const tr of body.rows) {
    tr.setAttribute("role", "row");
    [...tr.cells].forEach((td, i) => {
      td.setAttribute("role", "cell");
      td.dataset.label = names[i] ?? "";
    });
  }
  if (!active) return;
  const same = label ? body.querySelector<HTMLElement>(`[aria-label="${CSS.escape(label)}"]`) : null;
  const moved = place
    ? body.rows[place[0] as number]?.querySelectorAll("button")[place[1] as number]
    : undefined;
  (same ?? moved)?.focus();
}

/**
 * A table of the management views, filled by {@link replaceRows}: a scrolling table on wide
 * screens, a list of cards on a phone. `columns` are `[name, class]`; a name in brackets is
 * for screen readers only (`[Actions]`).
 */
export function cardTable(
  id: string,
  caption: string,
  columns: ReadonlyArray<readonly [string, string?]>,
  body: HTMLTableSectionElement,
): HTMLElement {
  const head = columns.map(([name, cls]) => {
    const hidden = /^\[(.*)\]$/.exec(name);
    return h(
      "th",
      { scope: "col", role: "columnheader", class: cls },
      hidden ? h("span", { class: "visually-hidden" }, hidden[1]) : name,
    );
  });
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { id, class: "cards", role: "table" },
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", { role: "row" }, ...head)),
      body,
    ),
  );
}

/** A timer that re-runs `load` every `ms` until stopped; what a list view returns to the router. */
export function every(ms: number, load: () => Promise<void>): () => void {
  let stopped = false;
  let timer: number | undefined;
  const run = async () => {
    await load();
    if (!stopped) timer = window.setTimeout(run, ms);
  };
  void run();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** An ISO time as `2026-12-01 09:00 UTC`, or a dash. */
export function when(iso: string | null): string {
  return iso ? `${iso.slice(0, 16).replace("T", " ")} UTC` : "—";
}
