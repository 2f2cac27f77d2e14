/**
 * Resource limits that stop one client from taking more than its share:
 * connections per key (client address) and rooms a user may create.
 *
 * @module
 */
import { FrameError } from "../../protocol.ts";
import type { Store } from "../store/store.ts";

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
      (await this.#store.rooms()).length + this.#pendingTotal >= this.#maxTotal
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
