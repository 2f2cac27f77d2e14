/**
 * Long scans on the event loop (searching a store held in memory) in slices:
 * a scan counts its steps, looks at the clock now and then, and lets other
 * clients' timers and sockets run once its slice of time is used up.
 *
 * @module
 */

/** Steps between two looks at the clock. */
const CHECK_EVERY = 256;
/** Milliseconds a scan may run before it lets the event loop turn. */
const SLICE_MS = 4;

/** A scan's time budget for one turn of the event loop. */
export class Slice {
  #start = performance.now();
  #count = 0;

  /** Counts one step; true once this turn's budget is used up. */
  spent(): boolean {
    if (++this.#count % CHECK_EVERY !== 0) return false;
    return performance.now() - this.#start >= SLICE_MS;
  }

  /**
   * Lets timers and I/O run, then starts a new budget. A timer, not
   * `setImmediate`: Deno runs immediates before it polls sockets again.
   */
  async pause(): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, 0));
    this.#start = performance.now();
  }
}
