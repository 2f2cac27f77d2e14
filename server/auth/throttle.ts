/**
 * Sign-in throttling: failed password checks are counted per key and per
 * client address, and further attempts on a counted key are spaced out with
 * a delay that doubles with every failure. The key is the username, or the
 * device's session for a password sign-in from a device that signed in as
 * that user before (so guesses by others never slow the real user down) and
 * for a password change (`session:<id>`, one count for both). An
 * attempt that would have to wait longer than `maxWait` is refused at once
 * with a retry-after instead.
 *
 * Every attempt counts as a failure from the moment it is admitted and is
 * taken back when it succeeds, so parallel attempts cannot slip past the
 * count. A correct password resets its key; it never touches another key.
 * Entries expire, their number is bounded, and waiting attempts are
 * released by {@link LoginThrottle.tick} from the server's one shared timer,
 * not by a timer per socket.
 *
 * @module
 */

/** Settings for {@link LoginThrottle}; see docs/security.md. */
export interface ThrottleOptions {
  /**
   * Failed attempts on one key (a username or a session) that are not held
   * back: the one after them still goes at once, those after that are spaced.
   * @default {5}
   */
  userFree: number;
  /** The same for one client address. @default {20} */
  addrFree: number;
  /** Spacing after the first counted failure, in ms; doubles with each more. @default {1000} */
  baseDelay: number;
  /** Longest spacing between attempts on one key, in ms. @default {60000} */
  maxDelay: number;
  /** Longest an attempt is held before it is refused with a retry-after, in ms. @default {5000} */
  maxWait: number;
  /** Milliseconds without a failure after which a key is forgotten. @default {900000} */
  forgetAfter: number;
  /** Most usernames and most addresses remembered (each); the oldest go first. @default {10000} */
  maxEntries: number;
}

/** Default {@link ThrottleOptions}. */
export const DEFAULT_THROTTLE: ThrottleOptions = {
  userFree: 5,
  addrFree: 20,
  baseDelay: 1000,
  maxDelay: 60_000,
  maxWait: 5000,
  forgetAfter: 15 * 60_000,
  maxEntries: 10_000,
};

interface Entry {
  /** Failures, counting attempts still being checked. */
  fails: number;
  /** Earliest time the next attempt may be checked (ms). */
  next: number;
  /** When the latest admitted attempt may be checked (ms). */
  last: number;
  /** Last time this entry changed (ms). */
  touched: number;
}

/** An admitted attempt; hand it back to {@link LoginThrottle.settle}. */
export interface Ticket {
  /** When the attempt may be checked (ms). */
  readonly at: number;
  /** @internal */
  readonly user: string | null;
  /** @internal */
  readonly addr: string;
  /** @internal */
  settled: boolean;
}

/** What {@link LoginThrottle.admit} decided. */
export type Admission =
  | { ok: true; ticket: Ticket; wait: number }
  | { ok: false; retryAfter: number };

/** How an attempt ended. */
export type Outcome = "success" | "failure" | "abandoned";

interface Waiter {
  at: number;
  resolve: () => void;
}

/** Counts failed sign-ins and spaces out attempts. */
export class LoginThrottle {
  #opts: ThrottleOptions;
  #users = new Map<string, Entry>();
  #addrs = new Map<string, Entry>();
  #waiters: Waiter[] = [];
  #swept = 0;

  /** Creates a throttle. */
  constructor(options: Partial<ThrottleOptions> = {}) {
    this.#opts = { ...DEFAULT_THROTTLE, ...options };
  }

  /** Usernames and addresses currently remembered. */
  get size(): number {
    return this.#users.size + this.#addrs.size;
  }

  /** Attempts waiting for their turn. */
  get waiting(): number {
    return this.#waiters.length;
  }

  /**
   * Decides on a sign-in attempt for `user` (a username, or a device or
   * session key as in the module documentation; null for sign-ups, which
   * count against the address only) from `addr`: admitted after `wait` ms,
   * or refused with a retry-after in seconds.
   */
  admit(user: string | null, addr: string, now: number): Admission {
    const o = this.#opts;
    const u = user === null ? undefined : this.#get(this.#users, user, now);
    const a = this.#get(this.#addrs, addr, now);
    const at = Math.max(now, u?.next ?? 0, a?.next ?? 0);
    if (at - now > o.maxWait) {
      return { ok: false, retryAfter: Math.ceil((at - now) / 1000) };
    }
    if (user !== null) this.#count(this.#users, user, at, o.userFree, now);
    this.#count(this.#addrs, addr, at, o.addrFree, now);
    return { ok: true, ticket: { at, user, addr, settled: false }, wait: at - now };
  }

  /** Resolves when the ticket's turn has come (released by {@link tick}). */
  wait(ticket: Ticket): Promise<void> {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waiters.push({ at: ticket.at, resolve });
    return promise;
  }

  /**
   * Records how an admitted attempt ended: a success clears its username and
   * takes back its count on the address; a failure stays counted; an
   * abandoned attempt (the client left before the check) is taken back.
   */
  settle(ticket: Ticket, outcome: Outcome, now: number): void {
    if (ticket.settled) return;
    ticket.settled = true;
    if (outcome === "failure") return;
    if (ticket.user !== null) {
      if (outcome === "success") this.#users.delete(ticket.user);
      else this.#uncount(this.#users, ticket.user, this.#opts.userFree, now);
    }
    this.#uncount(this.#addrs, ticket.addr, this.#opts.addrFree, now);
  }

  /** Releases attempts whose turn has come and forgets expired entries. */
  tick(now: number): void {
    if (this.#waiters.length > 0) {
      const keep: Waiter[] = [];
      for (const w of this.#waiters) {
        if (w.at <= now) w.resolve();
        else keep.push(w);
      }
      this.#waiters = keep;
    }
    if (now - this.#swept >= 1000) {
      this.#swept = now;
      this.#sweep(this.#users, now);
      this.#sweep(this.#addrs, now);
    }
  }

  /** Releases every waiting attempt (the server is stopping). */
  close(): void {
    for (const w of this.#waiters) w.resolve();
    this.#waiters = [];
  }

  #expired(e: Entry, now: number): boolean {
    return now >= e.next && now - e.touched > this.#opts.forgetAfter;
  }

  #get(map: Map<string, Entry>, key: string, now: number): Entry | undefined {
    const e = map.get(key);
    if (e && this.#expired(e, now)) {
      map.delete(key);
      return undefined;
    }
    return e;
  }

  #count(map: Map<string, Entry>, key: string, at: number, free: number, now: number): void {
    let e = map.get(key);
    if (e) map.delete(key);
    else {
      e = { fails: 0, next: 0, last: 0, touched: now };
      if (map.size >= this.#opts.maxEntries) {
        // Maps iterate in insertion order and every change re-inserts: the first is the stalest.
        map.delete(map.keys().next().value!);
      }
    }
    e.fails++;
    e.touched = now;
    e.last = at;
    e.next = at + this.#spacing(e.fails, free);
    map.set(key, e);
  }

  #uncount(map: Map<string, Entry>, key: string, free: number, now: number): void {
    const e = map.get(key);
    if (!e) return;
    e.fails = Math.max(0, e.fails - 1);
    // The attempt was counted in advance; with one failure less, the wait shrinks again.
    e.next = Math.min(e.next, e.last + this.#spacing(e.fails, free));
    if (e.fails === 0 && now >= e.next) map.delete(key);
  }

  /** Milliseconds between attempts after `fails` failures. */
  #spacing(fails: number, free: number): number {
    if (fails <= free) return 0;
    const o = this.#opts;
    return Math.min(o.maxDelay, o.baseDelay * 2 ** Math.min(fails - free - 1, 30));
  }

  #sweep(map: Map<string, Entry>, now: number): void {
    for (const [k, e] of map) if (this.#expired(e, now)) map.delete(k);
  }
}
