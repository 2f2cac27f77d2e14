/**
 * Rate limits of HTTP routes, by key.
 *
 * @module
 */
import type { Bucket } from "../hub/limits.ts";

/**
 * Token buckets by key (a user, an address) for HTTP routes: uploads, invite
 * links. Buckets that filled up again are forgotten when there are many.
 */
export class RateBuckets {
  #buckets = new Map<string, Bucket & { burst: number; rate: number }>();

  /** Seconds until `key` has a token (0: it has one now); takes nothing. */
  wait(key: string, limit: { rate: number; burst: number }): number {
    const now = Date.now();
    let b = this.#buckets.get(key);
    if (!b) {
      if (this.#buckets.size >= 10_000) this.#prune(now);
      b = { tokens: limit.burst, refilled: now, ...limit };
      this.#buckets.set(key, b);
    }
    b.tokens = Math.min(b.burst, b.tokens + ((now - b.refilled) * b.rate) / 1000);
    b.refilled = now;
    return b.tokens >= 1 ? 0 : Math.ceil((1 - b.tokens) / b.rate);
  }

  /** Takes the token {@link wait} found for `key`. */
  take(key: string): void {
    const b = this.#buckets.get(key);
    if (b) b.tokens -= 1;
  }

  /** Forgets buckets that have filled up again: they are as good as new. */
  #prune(now: number): void {
    for (const [key, b] of this.#buckets) {
      if (b.tokens + ((now - b.refilled) * b.rate) / 1000 >= b.burst) this.#buckets.delete(key);
    }
  }
}
