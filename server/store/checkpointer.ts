/**
 * Copies the data file's write-ahead log into the file from a thread of its
 * own. SQLite checkpoints on the connection whose commit made the log long
 * enough, and syncs the log at each FULL commit: on the main thread, writing
 * a large upload's chunks would stall chat delivery for tens of
 * milliseconds at a time. The file store writes its chunks without either
 * and asks for a background checkpoint every few megabytes instead, so the
 * log stays short and the upload's final commit has little left to sync.
 *
 * A PASSIVE checkpoint never blocks the main thread's writers or readers.
 * The worker starts at the first request (most data files never need it).
 *
 * @module
 */
import { bounded } from "../bounded.ts";
import type { Logger } from "../log.ts";

/** How long {@link Checkpointer.close} waits for a checkpoint under way. */
const CLOSE_WAIT_MS = 5_000;

/** Background checkpoints of one data file. */
export class Checkpointer {
  #path: string;
  #log: Logger | undefined;
  #url: URL;
  #closeWait: number;
  #worker: Worker | null = null;
  #running = false;
  #again = false;
  #closed = false;
  #onIdle: (() => void) | null = null;
  #checkpoints = 0;
  #started = 0;
  /** Runs ended, done or failed (what {@link settle} waits on). */
  #ended = 0;
  /** Callers of {@link settle}, each with the checkpoint it waits for. */
  #waiting: { until: number; resolve: () => void }[] = [];

  /**
   * `options.worker`: the worker module, `options.closeWait`: ms {@link close}
   * waits for each step (tests use a worker that fails or never answers).
   */
  constructor(path: string, log?: Logger, options: { worker?: URL; closeWait?: number } = {}) {
    this.#path = path;
    this.#log = log;
    this.#url = options.worker ?? new URL("./checkpoint_worker.ts", import.meta.url);
    this.#closeWait = options.closeWait ?? CLOSE_WAIT_MS;
  }

  /** Checkpoints finished so far (for tests). */
  get checkpoints(): number {
    return this.#checkpoints;
  }

  /**
   * Asks for a checkpoint: at once, or right after the one under way (one
   * at a time; requests meanwhile make one more, not one each).
   */
  request(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    this.#started++;
    this.#start().postMessage({ checkpoint: true });
  }

  /**
   * Resolves once a checkpoint that starts after this call has finished (or
   * the worker failed, or this closed): what was written before is then in
   * the file, synced, and a FULL commit on the main thread has little to do.
   */
  settle(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.request();
    // The one under way may have started before the caller's writes: wait for the next.
    const until = this.#again ? this.#started + 1 : this.#started;
    return new Promise((resolve) => this.#waiting.push({ until, resolve }));
  }

  #wake(all = false): void {
    const still = [];
    for (const w of this.#waiting) {
      if (all || w.until <= this.#ended) w.resolve();
      else still.push(w);
    }
    this.#waiting = still;
  }

  #start(): Worker {
    if (this.#worker) return this.#worker;
    const w = new Worker(this.#url.href, { type: "module" });
    w.onmessage = (e: MessageEvent<{ done?: true; error?: string; closed?: true }>) => {
      if (e.data.error) {
        this.#log?.warn(`Background checkpoint of "${this.#path}" failed: ${e.data.error}`);
      }
      if (!e.data.done) return;
      if (!e.data.error) this.#checkpoints++;
      this.#ended++;
      this.#running = false;
      this.#wake();
      if (this.#again && !this.#closed) {
        this.#again = false;
        this.request();
      } else {
        this.#onIdle?.();
      }
    };
    w.onerror = (e) => {
      e.preventDefault();
      this.#log?.warn(`Background checkpoints of "${this.#path}" stopped: ${e.message}`);
      this.#worker?.terminate();
      this.#worker = null;
      this.#running = false;
      this.#again = false;
      // Every run asked for is over: a later settle() waits for a new one only.
      this.#ended = this.#started;
      this.#wake(true);
      this.#onIdle?.();
    };
    w.postMessage({ path: this.#path });
    this.#worker = w;
    return w;
  }

  /**
   * Lets a checkpoint under way finish (bounded), closes the worker's
   * connection and ends it; before the main connection closes, so that one
   * is the last and removes the log. Resolves whether the worker's
   * connection is known to be closed (true when it never opened): when not,
   * the caller must empty the log itself.
   */
  async close(): Promise<boolean> {
    if (this.#closed) return this.#worker === null;
    this.#closed = true;
    this.#wake(true);
    const w = this.#worker;
    if (!w) return true;
    if (this.#running) {
      await bounded(new Promise<void>((r) => this.#onIdle = r), this.#closeWait);
    }
    let confirmed = false;
    await bounded(
      new Promise<void>((resolve) => {
        w.onmessage = (e) => {
          if (!e.data?.closed) return;
          confirmed = true;
          resolve();
        };
        w.onerror = (e) => {
          e.preventDefault();
          resolve();
        };
        w.postMessage({ close: true });
      }),
      this.#closeWait,
    );
    w.terminate();
    this.#worker = null;
    return confirmed;
  }
}
