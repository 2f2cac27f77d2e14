/**
 * Who is online, and the `presence` frames that tell everyone.
 *
 * Small chats get the full list: while at most {@link PRESENCE_FULL_MAX}
 * users are online, every change is announced on the next hub tick with
 * `{"type":"presence","online":[…]}` (changes within a tick coalesce into one
 * frame). Above that, a frame carries only what changed —
 * `{"type":"presence","count":N,"added":[…],"removed":[…]}` — and frames are
 * spaced further apart the more users are online, so that a storm of sign-ins
 * costs one frame per connection per interval rather than one per sign-in
 * (or per `maxChanges` changes, which bounds the size of a frame). Above
 * {@link PRESENCE_NAMES_MAX} users, frames and the welcome carry only the
 * count: every name sent to every connection costs each idle connection
 * memory in proportion to N, which a very large chat cannot afford.
 * See docs/protocol.md, "Presence at scale".
 *
 * @module
 */

/** Online users up to which presence frames carry the full list. */
export const PRESENCE_FULL_MAX = 200;

/** Online users up to which presence frames and the welcome carry names at all. */
export const PRESENCE_NAMES_MAX = 500;

/** Options for {@link Presence}. */
export interface PresenceOptions {
  /** Online users up to which frames carry the full `online` list. @default {200} */
  fullMax?: number;
  /** Above `fullMax`: milliseconds between frames per online user. @default {0.5} */
  msPerUser?: number;
  /** Above `fullMax`: longest time between frames, in milliseconds. @default {10000} */
  maxInterval?: number;
  /** Above `fullMax`: changes that make a frame go out on the next tick. @default {1000} */
  maxChanges?: number;
  /** Online users above which frames and the welcome carry only the count. @default {500} */
  namesMax?: number;
}

/** Where the online set comes from (the broker). */
export interface OnlineSource {
  isOnline(user: string): boolean;
  onlineUsers(): Iterable<string>;
}

/** The online list, kept sorted, and the presence frames due. */
export class Presence {
  #source: OnlineSource;
  #fullMax: number;
  #msPerUser: number;
  #maxInterval: number;
  #maxChanges: number;
  #namesMax: number;
  /** Online users, sorted; rebuilt from the source when `#stale`. */
  #sorted: string[] = [];
  #stale = false;
  #json: string | null = "[]";
  /** Users whose status changed since the last frame. */
  #changed = new Set<string>();
  /** The online set as of the last frame. */
  #sent = new Set<string>();
  #dirty = false;
  /** When the last frame went out (ms). */
  #last = -Infinity;
  /** The last frame carried only the count: clients' lists are stale. */
  #countOnly = false;

  /** Tracks `source`; call {@link Presence.changed} whenever it changes. */
  constructor(source: OnlineSource, options: PresenceOptions = {}) {
    this.#source = source;
    this.#fullMax = options.fullMax ?? PRESENCE_FULL_MAX;
    this.#msPerUser = options.msPerUser ?? 0.5;
    this.#maxInterval = options.maxInterval ?? 10_000;
    this.#maxChanges = options.maxChanges ?? 1000;
    this.#namesMax = options.namesMax ?? PRESENCE_NAMES_MAX;
  }

  /**
   * The online set changed: for `user` when given, else in some unknown way
   * (the list is then rebuilt from the source and compared with the last frame).
   */
  changed(user?: string): void {
    this.#dirty = true;
    this.#json = null;
    if (user === undefined || this.#stale) {
      this.#stale = true;
      return;
    }
    this.#changed.add(user);
    const list = this.#sorted;
    const i = lowerBound(list, user);
    const present = list[i] === user;
    const online = this.#source.isOnline(user);
    if (online && !present) list.splice(i, 0, user);
    else if (!online && present) list.splice(i, 1);
  }

  /** Online users, sorted (the array is reused: do not keep or change it). */
  online(): readonly string[] {
    if (this.#stale) {
      this.#sorted = [...this.#source.onlineUsers()].sort(compare);
      this.#stale = false;
    }
    return this.#sorted;
  }

  /** The online list as JSON, built once per change. */
  json(): string {
    return this.#json ??= JSON.stringify(this.online());
  }

  /**
   * The welcome's presence fields: `"online":[…]`, or above `namesMax` an
   * empty list and `"onlineCount":N`.
   */
  welcomeFields(): string {
    const n = this.online().length;
    return n > this.#namesMax ? `"online":[],"onlineCount":${n}` : `"online":${this.json()}`;
  }

  /** The presence frame due at `now` (ms), or null when none is due. */
  frame(now: number): string | null {
    if (!this.#dirty) return null;
    const online = this.online();
    const n = online.length;
    // A storm of changes goes out in frames of about maxChanges names rather
    // than one huge frame per interval: smaller bursts, same bytes.
    if (
      n > this.#fullMax && now - this.#last < Math.min(this.#maxInterval, n * this.#msPerUser) &&
      this.#changed.size < this.#maxChanges
    ) return null;
    // Every user whose status changed since the last frame, with the status
    // it has now: a client that got the full list in its welcome after the
    // last frame ends up right whatever happened in between.
    const changed = this.#changed;
    const now_ = new Set(online);
    for (const u of this.#sent) if (!now_.has(u)) changed.add(u);
    for (const u of online) if (!this.#sent.has(u)) changed.add(u);
    this.#sent = now_;
    this.#changed = new Set();
    this.#dirty = false;
    this.#last = now;
    const wasCountOnly = this.#countOnly;
    this.#countOnly = n > this.#namesMax;
    // Coming back from count-only frames, clients need the whole list again.
    if (n <= this.#fullMax || wasCountOnly && !this.#countOnly) {
      return `{"type":"presence","online":${this.json()}}`;
    }
    if (this.#countOnly) return `{"type":"presence","count":${n},"added":[],"removed":[]}`;
    const added: string[] = [], removed: string[] = [];
    for (const u of [...changed].sort(compare)) (now_.has(u) ? added : removed).push(u);
    return `{"type":"presence","count":${n},"added":${JSON.stringify(added)},"removed":${
      JSON.stringify(removed)
    }}`;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Index of the first element not less than `x` in a sorted array. */
function lowerBound(list: string[], x: string): number {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
