/**
 * The task grid: one canvas cell per task, coloured by state. A delta repaints only the cells
 * it names, batched into one animation frame, so 10,000 tasks stay smooth: no DOM node per
 * task. Keyboard: arrows move the cursor, Home/End jump, Enter opens the task.
 */
import { type StatusCounts, statusOfCode, type TaskStateCode } from "#core/api.js";
import { announce, cssVar, h } from "./dom.js";

const STATE_VARS: Record<TaskStateCode, string> = {
  p: "--pending",
  r: "--running",
  s: "--succeeded",
  f: "--failed",
  c: "--cancelled",
};

function cellSize(count: number): number {
  if (count <= 64) return 28;
  if (count <= 400) return 16;
  if (count <= 2000) return 10;
  return 6;
}

export class TaskGridView {
  readonly canvas: HTMLCanvasElement;
  private states: TaskStateCode[] = [];
  private pending = new Set<number>();
  private fullPaint = true;
  private frame = 0;
  private cursor = 0;
  private cols = 1;
  private cell = 6;
  private colors: Record<TaskStateCode, string> = { p: "", r: "", s: "", f: "", c: "" };
  private firstPaintDone = false;
  private readonly resize: ResizeObserver;

  constructor(
    private readonly onOpen: (index: number) => void,
    private readonly describe: () => StatusCounts,
  ) {
    this.canvas = h("canvas", {
      class: "grid-canvas",
      tabindex: 0,
      role: "application",
      "aria-roledescription": "task grid",
      "aria-keyshortcuts": "ArrowLeft ArrowRight ArrowUp ArrowDown Home End Enter",
      onkeydown: (e) => this.key(e as KeyboardEvent),
      onclick: (e) => this.click(e as MouseEvent),
      onfocus: () => this.say(),
    });
    this.resize = new ResizeObserver(() => this.invalidate());
    this.resize.observe(this.canvas);
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => this.invalidate());
  }

  /** Replaces every state (a snapshot). */
  setStates(states: string): void {
    this.states = states.split("") as TaskStateCode[];
    this.invalidate();
  }

  /** Applies a delta; only the changed cells are repainted. */
  apply(changes: readonly [number, TaskStateCode][]): void {
    for (const [index, code] of changes) {
      if (index >= this.states.length) continue;
      this.states[index] = code;
      this.pending.add(index);
    }
    this.schedule();
  }

  destroy(): void {
    this.resize.disconnect();
    cancelAnimationFrame(this.frame);
  }

  private invalidate(): void {
    this.fullPaint = true;
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = requestAnimationFrame(() => this.paint());
  }

  private paint(): void {
    this.frame = 0;
    const ctx = this.canvas.getContext("2d");
    const width = this.canvas.clientWidth;
    if (!ctx || width === 0) return;
    const n = this.states.length;
    if (this.fullPaint) {
      this.cell = cellSize(n);
      this.cols = Math.max(1, Math.floor(width / this.cell));
      const rows = Math.max(1, Math.ceil(n / this.cols));
      const dpr = window.devicePixelRatio || 1;
      this.canvas.style.height = `${rows * this.cell}px`;
      this.canvas.width = Math.round(this.cols * this.cell * dpr);
      this.canvas.height = Math.round(rows * this.cell * dpr);
      ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
      for (const code of Object.keys(STATE_VARS) as TaskStateCode[])
        this.colors[code] = cssVar(STATE_VARS[code]);
      ctx.clearRect(0, 0, this.cols * this.cell, rows * this.cell);
      for (let i = 0; i < n; i++) this.paintCell(ctx, i);
    } else {
      for (const i of this.pending) this.paintCell(ctx, i);
    }
    // Incremental paints name their cells (the benchmark times each state change to the screen).
    const cells = this.fullPaint ? [] : [...this.pending].map((i) => [i, this.states[i]] as const);
    const full = this.fullPaint;
    this.fullPaint = false;
    this.pending.clear();
    this.paintCursor(ctx);
    const counts = this.describe();
    for (const [status, value] of Object.entries(counts)) this.canvas.dataset[status] = String(value);
    this.canvas.setAttribute(
      "aria-label",
      `task grid, ${n} tasks: ${Object.entries(counts)
        .filter(([, v]) => v > 0)
        .map(([s, v]) => `${v} ${s}`)
        .join(", ")}. Arrow keys move, Enter opens a task.`,
    );
    // For the benchmark and the tests: when the grid first showed every task, and each repaint.
    if (!this.firstPaintDone && n > 0) {
      this.firstPaintDone = true;
      performance.mark("spawn:grid-rendered", { detail: { tasks: n } });
    }
    this.canvas.dispatchEvent(new CustomEvent("grid-painted", { detail: { full, cells } }));
  }

  private paintCell(ctx: CanvasRenderingContext2D, i: number): void {
    const x = (i % this.cols) * this.cell;
    const y = Math.floor(i / this.cols) * this.cell;
    const gap = this.cell >= 10 ? 2 : 1;
    ctx.clearRect(x, y, this.cell, this.cell);
    ctx.fillStyle = this.colors[this.states[i] as TaskStateCode] ?? this.colors.p;
    ctx.fillRect(x, y, this.cell - gap, this.cell - gap);
  }

  private paintCursor(ctx: CanvasRenderingContext2D): void {
    if (document.activeElement !== this.canvas || this.states.length === 0) return;
    const x = (this.cursor % this.cols) * this.cell;
    const y = Math.floor(this.cursor / this.cols) * this.cell;
    ctx.strokeStyle = cssVar("--focus");
    ctx.lineWidth = 2;
    ctx.strokeRect(x + 1, y + 1, this.cell - 2, this.cell - 2);
  }

  private move(to: number): void {
    const old = this.cursor;
    this.cursor = Math.max(0, Math.min(this.states.length - 1, to));
    this.pending.add(old);
    this.pending.add(this.cursor);
    this.schedule();
    this.say();
  }

  private say(): void {
    const code = this.states[this.cursor];
    if (code) announce(`task ${this.cursor}: ${statusOfCode(code)}`);
    this.schedule();
  }

  private key(e: KeyboardEvent): void {
    const moves: Record<string, number> = {
      ArrowLeft: this.cursor - 1,
      ArrowRight: this.cursor + 1,
      ArrowUp: this.cursor - this.cols,
      ArrowDown: this.cursor + this.cols,
      Home: 0,
      End: this.states.length - 1,
    };
    const to = moves[e.key];
    if (to !== undefined) {
      e.preventDefault();
      this.move(to);
    } else if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      this.onOpen(this.cursor);
    }
  }

  private click(e: MouseEvent): void {
    const rect = this.canvas.getBoundingClientRect();
    const col = Math.floor((e.clientX - rect.left) / this.cell);
    const row = Math.floor((e.clientY - rect.top) / this.cell);
    const index = row * this.cols + col;
    if (col < this.cols && index < this.states.length) {
      this.move(index);
      this.onOpen(index);
    }
  }
}
