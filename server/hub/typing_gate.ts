/**
 * Typing-event flood control: each typist in each conversation may change
 * what the others see a few times in a burst, then about once per interval.
 * Changes beyond that are held, and only the latest held state goes out when
 * the typist's turn comes (and only if it differs from what was shown), so a
 * client toggling typing on and off as fast as it can costs the room at most
 * one event per interval, and the room still ends up seeing the right state.
 *
 * @module
 */

/** Settings for {@link TypingGate}. */
export interface TypingGateOptions {
  /** Changes one typist may publish in a burst. @default {4} */
  burst?: number;
  /** Milliseconds per further change. @default {1000} */
  interval?: number;
}

interface Entry<T> {
  tokens: number;
  refilled: number;
  /** The state the others were last told. */
  shown: boolean;
  /** The latest change not yet published. */
  held: { active: boolean; info: T } | null;
}

/** A typing change whose turn has come. */
export interface Released<T> {
  active: boolean;
  info: T;
}

/** Decides which typing changes go out now and which wait. */
export class TypingGate<T> {
  #burst: number;
  #interval: number;
  #entries = new Map<string, Entry<T>>();

  /** Creates a gate. */
  constructor(options: TypingGateOptions = {}) {
    this.#burst = options.burst ?? 4;
    this.#interval = options.interval ?? 1000;
  }

  /** Typists remembered. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Offers a change of `key`'s typing state (with what is needed to publish
   * it later): true when it may be published now, false when it is held.
   */
  offer(key: string, active: boolean, info: T, now: number): boolean {
    let e = this.#entries.get(key);
    if (!e) {
      e = { tokens: this.#burst, refilled: now, shown: !active, held: null };
      this.#entries.set(key, e);
    }
    this.#refill(e, now);
    if (e.held === null && e.tokens >= 1) {
      e.tokens--;
      e.shown = active;
      return true;
    }
    e.held = { active, info };
    return false;
  }

  /** Held changes whose turn has come; forgets typists that are back to a full burst. */
  due(now: number): Released<T>[] {
    const out: Released<T>[] = [];
    for (const [key, e] of this.#entries) {
      this.#refill(e, now);
      if (e.held !== null && e.tokens >= 1) {
        if (e.held.active !== e.shown) {
          e.tokens--;
          e.shown = e.held.active;
          out.push(e.held);
        }
        e.held = null;
      }
      if (e.held === null && e.tokens >= this.#burst) this.#entries.delete(key);
    }
    return out;
  }

  #refill(e: Entry<T>, now: number): void {
    if (e.tokens >= this.#burst) {
      e.refilled = now;
      return;
    }
    const gained = (now - e.refilled) / this.#interval;
    if (gained <= 0) return;
    e.tokens = Math.min(this.#burst, e.tokens + gained);
    e.refilled = now;
  }
}
