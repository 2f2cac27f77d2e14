/**
 * Which joins and leaves are posted one by one, and the coalesced member
 * counts of the rooms where they are not.
 *
 * A join posted to every member costs a frame per member: a storm of first
 * sign-ins into a room of N members would cost N² frames. Like Slack and
 * Discord, rooms of `--announce-below` members or more stop posting joins
 * and leaves; their members get `{"type":"member_count",…}` instead, at most
 * once per interval per room (longer in rooms with thousands connected),
 * whatever the number of changes in between.
 * The count sent is read from the store when it goes out, not taken from the
 * events: nodes may hear changes in another order than the store made them.
 *
 * @module
 */
import type { MemberEvent } from "../broker/broker.ts";
import type { Store } from "../store/store.ts";

/** Milliseconds between two counts of one room, at least. */
export const MEMBER_COUNT_INTERVAL = 1000;

/** Above 2,000 connections in a room: milliseconds between its counts per connection. */
export const MEMBER_COUNT_MS_PER_CONN = 0.5;

/** Milliseconds between two counts of one room, at most. */
export const MEMBER_COUNT_MAX_INTERVAL = 10_000;

/** The announce-or-count rule and the counts waiting to go out. */
export class MemberCounts {
  #below: number;
  #interval: number;
  /** Rooms whose count changed since it last went out. */
  #due = new Set<string>();
  /** When each room's count last went out (ms), while it may still hold the next one back. */
  #sentAt = new Map<string, number>();
  #pruned = 0;

  /**
   * Posts changes in rooms below `below` members (0: in every room); sends
   * a room's count at most once per `interval` ms.
   */
  constructor(below: number, interval = MEMBER_COUNT_INTERVAL) {
    this.#below = below;
    this.#interval = interval;
  }

  /**
   * Whether `e` is posted as a `system` frame. A room's size counts the one
   * who joined or left; an event that does not know the size is posted.
   */
  announces(e: MemberEvent): boolean {
    if (this.#below === 0 || e.count === undefined) return true;
    return (e.joined ? e.count : e.count + 1) < this.#below;
  }

  /** Notes a change in `room` that was not posted: its count goes out on a later tick. */
  note(room: string): void {
    this.#due.add(room);
  }

  /** A room was renamed: its pending count follows it. */
  moved(room: string, to: string): void {
    if (this.#due.delete(room)) this.#due.add(to);
    const at = this.#sentAt.get(room);
    this.#sentAt.delete(room);
    if (at !== undefined) this.#sentAt.set(to, at);
  }

  /**
   * Milliseconds between two counts of a room with `conns` connections on
   * this node: a count costs a frame per connection, so a room of 100,000
   * counted every second would cost a core in a storm of joins. Like
   * presence, the interval grows with the room (0.5 ms per connection),
   * between one second and ten.
   */
  intervalFor(conns: number): number {
    return Math.min(
      Math.max(this.#interval, conns * MEMBER_COUNT_MS_PER_CONN),
      Math.max(this.#interval, MEMBER_COUNT_MAX_INTERVAL),
    );
  }

  /**
   * The rooms whose count is due at `now` (ms): those that changed and whose
   * last count is older than their interval (`conns` says how many
   * connections a room has on this node).
   */
  take(now: number, conns: (room: string) => number): string[] {
    if (now - this.#pruned >= MEMBER_COUNT_MAX_INTERVAL) this.#prune(now);
    if (this.#due.size === 0) return [];
    const out: string[] = [];
    for (const room of this.#due) {
      const last = this.#sentAt.get(room);
      if (last !== undefined && now - last < this.intervalFor(conns(room))) continue;
      this.#due.delete(room);
      this.#sentAt.set(room, now);
      out.push(room);
    }
    return out;
  }

  /** Rooms whose last send time is still kept (it may hold their next count back). */
  get remembered(): number {
    return this.#sentAt.size;
  }

  /** Forgets send times that can no longer hold a count back. */
  #prune(now: number): void {
    this.#pruned = now;
    const longest = Math.max(this.#interval, MEMBER_COUNT_MAX_INTERVAL);
    for (const [room, at] of this.#sentAt) if (now - at >= longest) this.#sentAt.delete(room);
  }
}

/** The frame that tells a room's members its count. */
export function memberCountFrame(room: string, count: number): string {
  return JSON.stringify({ type: "member_count", room, count });
}

/**
 * A room's member count after a leave, or `undefined` when the store cannot
 * say: the leave is then posted, as it was before counts existed.
 */
export function sizeOf(
  store: Pick<Store, "memberCount">,
  room: string,
): Promise<number | undefined> {
  return store.memberCount(room).catch(() => undefined);
}
