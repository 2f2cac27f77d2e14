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
 * count, at most once per interval: every name sent to every connection
 * costs each idle connection memory in proportion to N, which a very large
 * chat cannot afford.
 * See docs/protocol.md, "Presence at scale".
 *
 * @module
 */
import { SortedNames } from "../sorted_names.ts";

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
  /**
   * Online users, sorted; rebuilt from the source when `#stale`. A chunked
   * sorted list: a sign-in moves a chunk, not the whole list (an array's
   * splice made a storm of N sign-ins O(N²)).
   */
  #sorted = new SortedNames();
  /** `#sorted` as an array, built when asked for after a change. */
  #list: string[] | null = [];
  #stale = false;
  #json: string | null = "[]";
  /** Users whose status changed since the last frame. */
  #changed = new Set<string>();
  /** The online set as of the last frame (null after a count-only frame). */
  #sent: Set<string> | null = new Set<string>();
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
    if (this.#source.isOnline(user)) this.#sorted.add(user);
    else this.#sorted.delete(user);
    this.#list = null;
  }

  /** How many users are online. */
  count(): number {
    this.#fresh();
    return this.#sorted.size;
  }

  /** Online users, sorted (the array is reused: do not keep or change it). */
  online(): readonly string[] {
    this.#fresh();
    return this.#list ??= [...this.#sorted];
  }

  #fresh(): void {
    if (!this.#stale) return;
    this.#sorted = new SortedNames();
    for (const u of this.#source.onlineUsers()) this.#sorted.add(u);
    this.#list = null;
    this.#stale = false;
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
    const n = this.count();
    return n > this.#namesMax ? `"online":[],"onlineCount":${n}` : `"online":${this.json()}`;
  }

  /** The presence frame due at `now` (ms), or null when none is due. */
  frame(now: number): string | null {
    if (!this.#dirty) return null;
    const n = this.count();
    // A storm of changes goes out in frames of about maxChanges names rather
    // than one huge frame per interval: smaller bursts, same bytes. A count
    // has no names to bound: it waits for its interval, or a storm of N
    // sign-ins would cost every connection a frame per maxChanges of them.
    if (
      n > this.#fullMax && now - this.#last < Math.min(this.#maxInterval, n * this.#msPerUser) &&
      (n > this.#namesMax || this.#changed.size < this.#maxChanges)
    ) return null;
    this.#dirty = false;
    this.#last = now;
    const wasCountOnly = this.#countOnly;
    this.#countOnly = n > this.#namesMax;
    if (this.#countOnly) {
      // Names go out again only with a full list, once the count is low enough.
      this.#changed = new Set();
      this.#sent = null;
      return `{"type":"presence","count":${n},"added":[],"removed":[]}`;
    }
    // Every user whose status changed since the last frame, with the status
    // it has now: a client that got the full list in its welcome after the
    // last frame ends up right whatever happened in between.
    const online = this.online();
    const changed = this.#changed;
    const now_ = new Set(online);
    if (this.#sent !== null) {
      for (const u of this.#sent) if (!now_.has(u)) changed.add(u);
      for (const u of online) if (!this.#sent.has(u)) changed.add(u);
    }
    this.#sent = now_;
    this.#changed = new Set();
    // Coming back from count-only frames, clients need the whole list again.
    if (n <= this.#fullMax || wasCountOnly) {
      return `{"type":"presence","online":${this.json()}}`;
    }
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
