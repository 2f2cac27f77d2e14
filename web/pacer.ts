// This module is browser compatible.
/**
 * Paces what a client sends to the limits the server announced in `welcome`:
 * a token bucket like the server's own, a little smaller and slower, so that
 * frames sent apart but arriving together (network jitter) still fit.
 *
 * @module
 */
import type { SendLimits } from "../protocol.ts";

/** Share of the announced burst the client allows itself. */
const BURST_SHARE = 0.75;
/** Share of the announced rate the client allows itself. */
const RATE_SHARE = 0.8;
/** Most tokens kept back from messages for other frames (typing, reads, pings, joins). */
const MAX_RESERVE = 8;

/**
 * A token bucket: {@link take} says whether a frame may go now, {@link delay}
 * how long until one may.
 *
 * @example
 * ```ts
 * import { Pacer } from "./pacer.ts";
 * let now = 0;
 * const pacer = new Pacer({ rate: 10, burst: 4, maxMessage: 4096 }, { now: () => now });
 * let sent = 0;
 * while (pacer.take()) sent++;
 * if (sent !== 3) throw new Error("three of the four announced fit at once");
 * now += pacer.delay();
 * if (!pacer.take()) throw new Error("one more after the delay");
 * ```
 */
export class Pacer {
  /** Tokens kept back from messages, so other frames always find one. */
  readonly reserve: number;
  #capacity: number;
  /** Tokens per millisecond. */
  #rate: number;
  #tokens: number;
  #at: number;
  #now: () => number;

  /**
   * A full bucket for `limits`, less the frames `options.used` already took
   * (the sign-in frame, when created on `welcome`).
   */
  constructor(limits: SendLimits, options: { now?: () => number; used?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#capacity = Math.max(1, Math.floor(limits.burst * BURST_SHARE));
    this.#rate = Math.max(0.1, limits.rate * RATE_SHARE) / 1000;
    this.reserve = Math.min(MAX_RESERVE, Math.floor(this.#capacity / 4));
    this.#tokens = Math.max(0, this.#capacity - (options.used ?? 0));
    this.#at = this.#now();
  }

  /** Takes a token if one is left above `reserve`; false when the frame must wait. */
  take(reserve = 0): boolean {
    this.#refill();
    if (this.#tokens - 1 < reserve) return false;
    this.#tokens--;
    return true;
  }

  /** Milliseconds until {@link take} with `reserve` can succeed (0: now). */
  delay(reserve = 0): number {
    this.#refill();
    const now = this.#now();
    const wait = Math.max(0, this.#at - now);
    const need = reserve + 1 - this.#tokens;
    return need <= 0 ? wait : wait + Math.ceil(need / this.#rate);
  }

  /** Empties the bucket and refills nothing for `ms` (the server said to wait). */
  pause(ms: number): void {
    this.#tokens = 0;
    this.#at = Math.max(this.#at, this.#now() + ms);
  }

  #refill(): void {
    const now = this.#now();
    if (now <= this.#at) return;
    this.#tokens = Math.min(this.#capacity, this.#tokens + (now - this.#at) * this.#rate);
    this.#at = now;
  }
}
