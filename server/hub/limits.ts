/**
 * Resource limits that stop one client from taking more than its share: the
 * {@link Limits} settings with their defaults, the per-connection token
 * bucket for frames, connections per key (client address) and rooms a user
 * may create. Kept apart from the hub so that every limit and its default
 * live in one place and can be checked without sockets.
 *
 * @module
 */
import { DEFAULTS } from "../config.ts";
import { FrameError } from "../../protocol.ts";
import type { Store } from "../store/store.ts";

/** Flood-control settings; see docs/security.md. */
export interface Limits {
  /** Frames per second a connection may send, sustained. @default {20} */
  frameRate: number;
  /** Frames a connection may send in a burst. @default {60} */
  frameBurst: number;
  /** Frames queued while a sign-in is being checked. @default {32} */
  authBacklog: number;
  /** Connections one user may hold on this node. @default {20} */
  maxConnsPerUser: number;
  /** Signed-in connections one client address may hold. @default {100} */
  maxConnsPerAddr: number;
  /**
   * Connections one client address may hold that have not sent a sign-in
   * frame yet; past it, the oldest of them makes way once it has had a
   * second to sign in (at once past four times as many). @default {16}
   */
  maxPendingPerAddr: number;
  /**
   * Connections the whole node holds that have not sent a sign-in frame;
   * past it, the oldest makes way. @default {1024}
   */
  maxPending: number;
  /** Rooms one user may create. @default {50} */
  maxRoomsPerUser: number;
  /** Rooms the whole chat may have. @default {1000} */
  maxRooms: number;
  /** Typing changes one typist may publish per conversation in a burst. @default {4} */
  typingBurst: number;
  /** Milliseconds per further typing change. @default {1000} */
  typingInterval: number;
}

/** Default {@link Limits}. */
export const DEFAULT_LIMITS: Limits = {
  // Those with a flag come from the config's defaults: written once.
  frameRate: DEFAULTS.frameRate,
  frameBurst: DEFAULTS.frameBurst,
  authBacklog: 32,
  maxConnsPerUser: DEFAULTS.maxConnsPerUser,
  maxConnsPerAddr: DEFAULTS.maxConnsPerAddr,
  maxPendingPerAddr: DEFAULTS.maxPendingPerAddr,
  maxPending: 1024,
  maxRoomsPerUser: DEFAULTS.maxRoomsPerUser,
  maxRooms: DEFAULTS.maxRooms,
  typingBurst: 4,
  typingInterval: 1000,
};

/** A token bucket's state, kept on the connection it limits. */
export interface Bucket {
  /** Tokens left. */
  tokens: number;
  /** When the bucket was last refilled (ms). */
  refilled: number;
}

/** Options for {@link takeToken}. */
export interface TakeTokenOptions {
  /** Tokens added per second. */
  rate: number;
  /** Most tokens the bucket holds. */
  burst: number;
  /** Clock in milliseconds, read only when the bucket needs a refill. */
  now: () => number;
}

/**
 * Takes a token from `bucket`, refilling it first if it is empty. Resolves
 * 0 when a token was taken, otherwise the seconds until the next one.
 *
 * @example
 * ```ts
 * import { takeToken } from "./limits.ts";
 * const bucket = { tokens: 1, refilled: 0 };
 * const opts = { rate: 1, burst: 1, now: () => 0 };
 * if (takeToken(bucket, opts) !== 0 || takeToken(bucket, opts) !== 1) throw new Error("bucket");
 * ```
 */
export function takeToken(bucket: Bucket, options: TakeTokenOptions): number {
  if (bucket.tokens >= 1) {
    bucket.tokens--;
    return 0;
  }
  const now = options.now();
  const { rate, burst } = options;
  bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.refilled) * rate) / 1000);
  bucket.refilled = now;
  if (bucket.tokens >= 1) {
    bucket.tokens--;
    return 0;
  }
  return Math.ceil((1 - bucket.tokens) / rate);
}

/** Counts things per key with a ceiling; keys at zero are forgotten. */
export class KeyedCounter {
  #counts = new Map<string, number>();

  /** Counts one more for `key` unless it already has `max`; true when counted. */
  add(key: string, max: number): boolean {
    const n = this.#counts.get(key) ?? 0;
    if (n >= max) return false;
    this.#counts.set(key, n + 1);
    return true;
  }

  /** Counts one less for `key`. */
  remove(key: string): void {
    const n = this.#counts.get(key);
    if (n === undefined) return;
    if (n <= 1) this.#counts.delete(key);
    else this.#counts.set(key, n - 1);
  }

  /** The count for `key`. */
  get(key: string): number {
    return this.#counts.get(key) ?? 0;
  }

  /** Number of keys with a count. */
  get size(): number {
    return this.#counts.size;
  }
}

/**
 * How many rooms each user may create. Creations still in flight count, so
 * parallel `join`s of new rooms cannot pass the limit together.
 */
export class RoomQuota {
  #store: Store;
  #max: number;
  #maxTotal: number;
  #pending = new Map<string, number>();
  #pendingTotal = 0;

  /**
   * Limits every user to `max` rooms created in `store`, and the chat to
   * `maxTotal` rooms (open mode hands out names freely: a per-user limit
   * alone would not bound memory).
   */
  constructor(store: Store, max: number, maxTotal = Infinity) {
    this.#store = store;
    this.#max = max;
    this.#maxTotal = maxTotal;
  }

  /**
   * Checks that `user` may join `room`, creating it if it is new; resolves a
   * release function to call once the join is done.
   *
   * @throws {FrameError} `limit_reached` when `room` is new and `user` has created the most rooms allowed.
   */
  async reserve(user: string, room: string): Promise<() => void> {
    if (await this.#store.roomExists(room)) return noop;
    const created = await this.#store.roomsCreatedBy(user);
    const pending = this.#pending.get(user) ?? 0;
    if (created + pending >= this.#max) {
      throw new FrameError(
        "limit_reached",
        `Cannot create room "${room}": you have created ${this.#max} rooms, the most allowed`,
      );
    }
    if (
      this.#maxTotal !== Infinity &&
      // The count alone: listing every room (and its members) per new room
      // made each creation cost the whole chat.
      await this.#store.roomCount() + this.#pendingTotal >= this.#maxTotal
    ) {
      throw new FrameError(
        "limit_reached",
        `Cannot create room "${room}": this chat has ${this.#maxTotal} rooms, the most allowed: join one of them`,
      );
    }
    this.#pending.set(user, (this.#pending.get(user) ?? 0) + 1);
    this.#pendingTotal++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#pendingTotal--;
      const n = (this.#pending.get(user) ?? 1) - 1;
      if (n <= 0) this.#pending.delete(user);
      else this.#pending.set(user, n);
    };
  }
}

function noop(): void {}
