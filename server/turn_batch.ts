/**
 * Many calls of one event-loop turn made as one. A storm of sign-ins makes
 * the same small write for each (last seen, presence, visibility); to Redis
 * each was a round trip, its encoding and its promise. The first call of a
 * turn schedules one `run` at the turn's end (`setImmediate`: after the I/O
 * the loop dispatched) with every item added meanwhile, in order.
 *
 * @module
 */
import { setImmediate } from "node:timers";

/** Items collected during one event-loop turn, run together at its end. */
export class TurnBatch<T, R = void> {
  #run: (items: T[]) => Promise<R[] | void>;
  #items: T[] = [];
  #done: Promise<R[] | void> | null = null;

  /**
   * `run` gets the turn's items in the order they were added and resolves
   * one result per item (or nothing, when callers only wait for it); if it
   * rejects, every caller of that turn gets the error.
   */
  constructor(run: (items: T[]) => Promise<R[] | void>) {
    this.#run = run;
  }

  /** Adds `item` to this turn's run; resolves its result once the run is done. */
  add(item: T): Promise<R> {
    if (this.#done === null) {
      const items: T[] = this.#items = [];
      this.#done = new Promise((resolve) => setImmediate(resolve)).then(() => {
        // Calls from here on belong to the next turn.
        this.#done = null;
        return this.#run(items);
      });
    }
    const i = this.#items.push(item) - 1;
    return this.#done.then((results) => (results as R[] | undefined)?.[i] as R);
  }
}
