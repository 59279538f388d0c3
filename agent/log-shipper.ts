/**
 * Live task logs: the attempt's log file is shipped to the object store in chunks while the task
 * runs, one object per chunk (S3 has no append), whenever `intervalMs` has passed with new output
 * or `chunkBytes` have piled up, and once more when the task ends. `spawn sweep logs --follow`
 * reads the chunks in order (cli/services/logs.ts).
 */
import { open, stat } from "node:fs/promises";
import type { ObjectStore } from "#core/ports.js";

/** Object-store prefix of one attempt's log chunks: `logs/<sweep>/<index>/<attempt>/`. */
export function logChunkPrefix(sweepId: string, index: number, attempt: number): string {
  return `logs/${sweepId}/${index}/${attempt}/`;
}

/** The key of chunk `seq` (from 0): zero-padded, so key order is log order. */
export function logChunkKey(prefix: string, seq: number): string {
  return `${prefix}${String(seq).padStart(8, "0")}.log`;
}

export interface LogShipperOptions {
  objects: ObjectStore;
  /** {@link logChunkPrefix} */
  prefix: string;
  file: string;
  /** New output is shipped at least this often. @default 2000 */
  intervalMs?: number;
  /** ...and as soon as this much is waiting; also the largest chunk. @default 1 MiB */
  chunkBytes?: number;
  /** How often the file's size is checked. @default 250 ms */
  pollMs?: number;
}

export class LogShipper {
  private shipped = 0;
  private seq = 0;
  private lastShipAt = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly o: LogShipperOptions) {}

  start(): void {
    const poll = () => {
      this.timer = setTimeout(() => {
        this.busy = this.busy.then(() => this.maybeShip()).catch(() => undefined);
        void this.busy.then(() => {
          if (this.timer) poll();
        });
      }, this.o.pollMs ?? 250);
    };
    poll();
  }

  /** Stops the timer and ships whatever is left. */
  async finish(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.busy.catch(() => undefined);
    await this.ship(Number.POSITIVE_INFINITY);
  }

  private async maybeShip(): Promise<void> {
    const size = (await stat(this.o.file).catch(() => undefined))?.size ?? 0;
    const waiting = size - this.shipped;
    if (waiting <= 0) return;
    const due = Date.now() - this.lastShipAt >= (this.o.intervalMs ?? 2000);
    if (due || waiting >= (this.o.chunkBytes ?? 1024 * 1024)) await this.ship(size);
  }

  /** Ships everything up to `upTo` bytes (or the end of the file), in chunks of at most chunkBytes. */
  private async ship(upTo: number): Promise<void> {
    const handle = await open(this.o.file, "r").catch(() => undefined);
    if (!handle) return;
    try {
      const end = Math.min(upTo, (await handle.stat()).size);
      const max = this.o.chunkBytes ?? 1024 * 1024;
      while (this.shipped < end) {
        const buffer = Buffer.alloc(Math.min(max, end - this.shipped));
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, this.shipped);
        if (bytesRead === 0) break;
        await this.o.objects.putBytes(logChunkKey(this.o.prefix, this.seq), buffer.subarray(0, bytesRead));
        this.seq++;
        this.shipped += bytesRead;
      }
      this.lastShipAt = Date.now();
    } finally {
      await handle.close();
    }
  }
}
