/**
 * The directory behind `users` frames: everyone who has an account (open
 * mode: every name held and seen within the name expiry), online first, then
 * by last seen.
 *
 * A node keeps the people (with their last seen) for a few seconds and
 * answers every `users` from that list, reading again from the store only
 * those who came or went since — so a flood of `users` frames costs a filter
 * of a list each, not a store read and a sort of every account. Online
 * status is always live (the broker's).
 *
 * @module
 */
import { type DirectoryEntry, MAX_DIRECTORY } from "../../protocol.ts";
import type { Store } from "../store/store.ts";

/** Milliseconds the list of people is reused before it is read again whole. */
export const DIRECTORY_TTL = 5000;

/**
 * Most people the list holds in open mode (those seen most recently), where
 * names cost nothing to make.
 */
export const DIRECTORY_MAX = 5000;

/** What the directory reads. */
export interface DirectorySource {
  /** Every account (login mode), or null in open mode (the store's name claims). */
  accounts(): Iterable<string> | null;
  store: Pick<Store, "lastSeen" | "recentClaims">;
  isOnline(name: string): boolean;
  onlineUsers(): Iterable<string>;
  /** The hub's clock (ms). */
  now(): number;
  /** Open mode: names unseen for this long (ms) are not listed. */
  nameExpiry: number;
  /** Waits for one of the node's slots for heavy reads (may reject when too many wait). */
  turn(): Promise<void>;
  /** Gives the slot back. */
  done(): void;
}

/** One person on the list. */
interface Person {
  name: string;
  folded: string;
  /** Last seen (ms since the epoch), if ever. */
  seen?: number;
  /** Their entry when offline. */
  entry: DirectoryEntry;
}

/** A `users` answer before it is fitted into a reply. */
export interface Listing {
  users: DirectoryEntry[];
  /** More people matched than are listed. */
  more: boolean;
}

/** The directory of one node. */
export class Directory {
  #src: DirectorySource;
  #cache: { at: number; list: Person[] } | null = null;
  /** The list being read, shared by everyone asking meanwhile. */
  #load: Promise<Person[]> | null = null;
  /** People whose last seen moved since the list was read. */
  #moved = new Set<string>();

  /** Reads people through `source`. */
  constructor(source: DirectorySource) {
    this.#src = source;
  }

  /**
   * Someone came or went (on any node, which wrote their last seen first):
   * the next answer reads them again. Nothing is remembered while no list
   * is in use.
   */
  moved(name: string): void {
    const cached = this.#cache;
    if (cached !== null && this.#src.now() - cached.at < DIRECTORY_TTL) this.#moved.add(name);
    else this.forget();
  }

  /** Something changed in an unknown way: the next answer reads everyone again. */
  forget(): void {
    this.#cache = null;
    this.#moved.clear();
  }

  /**
   * Who `asker` may see matching `q` (ignoring case), never the asker: online
   * first by name, then by last seen, newest first, the never-seen last; at
   * most {@link MAX_DIRECTORY}.
   */
  async list(asker: string, q = ""): Promise<Listing> {
    const me = asker.toLowerCase();
    const match = q.toLowerCase();
    const src = this.#src;
    const people = await this.#people();
    const online: string[] = [];
    const shown = new Set<string>();
    const away: DirectoryEntry[] = [];
    let more = false;
    for (const p of people) {
      if (p.folded === me || !p.folded.includes(match)) continue;
      if (src.isOnline(p.name)) {
        online.push(p.name);
        shown.add(p.folded);
      } else if (away.length < MAX_DIRECTORY) away.push(p.entry);
      else more = true;
    }
    if (src.accounts() === null) {
      // Online with a name the list does not have yet (read before they came).
      for (const name of src.onlineUsers()) {
        const folded = name.toLowerCase();
        if (folded !== me && folded.includes(match) && !shown.has(folded)) {
          shown.add(folded);
          online.push(name);
        }
      }
    }
    online.sort(byName);
    const users: DirectoryEntry[] = online.slice(0, MAX_DIRECTORY).map((name) => ({
      name,
      online: true,
    }));
    users.push(...away.slice(0, MAX_DIRECTORY - users.length));
    return { users, more: more || online.length + away.length > users.length };
  }

  /** The people by last seen, read at most once per {@link DIRECTORY_TTL}. */
  #people(): Promise<Person[]> {
    const cached = this.#cache;
    const fresh = cached !== null && this.#src.now() - cached.at < DIRECTORY_TTL;
    if (fresh && this.#moved.size === 0) return Promise.resolve(cached.list);
    // Cleared however the read ends: a failed one must not stay the answer.
    this.#load ??= this.#read().finally(() => (this.#load = null));
    return this.#load;
  }

  async #read(): Promise<Person[]> {
    const src = this.#src;
    await src.turn();
    try {
      const now = src.now();
      const kept = this.#cache;
      if (kept !== null && now - kept.at < DIRECTORY_TTL) {
        kept.list = await this.#reread(kept.list);
        return kept.list;
      }
      this.#moved.clear();
      const found: { name: string; seen?: number }[] = [];
      const accounts = src.accounts();
      if (accounts !== null) {
        const names = [...accounts];
        const seen = await src.store.lastSeen(names);
        for (const name of names) found.push({ name, seen: seen.get(name) });
      } else {
        const claims = await src.store.recentClaims({
          since: now - src.nameExpiry,
          limit: DIRECTORY_MAX,
        });
        for (const c of claims) found.push({ name: c.name, seen: c.seen });
      }
      found.sort((a, b) =>
        a.seen === b.seen
          ? byName(a.name, b.name)
          : a.seen === undefined
          ? 1
          : b.seen === undefined
          ? -1
          : b.seen - a.seen
      );
      const list = found.map((f) => person(f.name, f.seen));
      this.#cache = { at: now, list };
      return list;
    } finally {
      src.done();
    }
  }

  /** `list` with those who came or went read again and put in their place. */
  async #reread(list: Person[]): Promise<Person[]> {
    const moved = [...this.#moved];
    this.#moved.clear();
    const seen = await this.#src.store.lastSeen(moved);
    const folded = new Set(moved.map((n) => n.toLowerCase()));
    const out = list.filter((p) => !folded.has(p.folded));
    const open = this.#src.accounts() === null;
    for (const name of moved) {
      const at = seen.get(name);
      // Open mode: a name released (signed out) is nobody's any more.
      if (at === undefined && open) continue;
      // Newest first, never seen last.
      const i = out.findIndex((p) => p.seen === undefined || (at !== undefined && p.seen <= at));
      out.splice(i === -1 ? out.length : i, 0, person(name, at));
    }
    return out;
  }
}

function person(name: string, seen: number | undefined): Person {
  return {
    name,
    folded: name.toLowerCase(),
    seen,
    entry: seen === undefined
      ? { name, online: false }
      : { name, online: false, seen: new Date(seen).toISOString() },
  };
}

/** Names ignoring case, then as spelled (so the order is total). */
export function byName(a: string, b: string): number {
  const x = a.toLowerCase(), y = b.toLowerCase();
  return x < y ? -1 : x > y ? 1 : a < b ? -1 : a > b ? 1 : 0;
}
