/**
 * Which joins and leaves are posted one by one, and the coalesced member
 * counts of the rooms where they are not.
 *
 * A join posted to every member costs a frame per member: a storm of first
 * sign-ins into a room of N members would cost N² frames. Like Slack and
 * Discord, rooms of `--announce-below` members or more stop posting joins
 * and leaves; their members get `{"type":"member_count",…}` instead, at most
 * once per interval per room, whatever the number of changes in between.
 * The count sent is read from the store when it goes out, not taken from the
 * events: nodes may hear changes in another order than the store made them.
 *
 * @module
 */
import type { MemberEvent } from "../broker/broker.ts";
import type { Store } from "../store/store.ts";

/** Milliseconds between two counts of one room. */
export const MEMBER_COUNT_INTERVAL = 1000;

/** The announce-or-count rule and the counts waiting to go out. */
export class MemberCounts {
  #below: number;
  #interval: number;
  /** Rooms whose count changed since it last went out. */
  #due = new Set<string>();
  #last = -Infinity;

  /**
   * Posts changes in rooms below `below` members (0: in every room); sends
   * counts at most once per `interval` ms.
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
  }

  /** The rooms whose count is due at `now` (ms); none between intervals. */
  take(now: number): string[] {
    if (this.#due.size === 0 || now - this.#last < this.#interval) return [];
    this.#last = now;
    const out = [...this.#due];
    this.#due.clear();
    return out;
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
