/**
 * The default store: everything in memory, the newest `limit` messages per
 * conversation, gone when the process exits.
 *
 * @module
 */
import type { ChatMessage, Conversation } from "./protocol.ts";
import {
  type ClaimResult,
  dmPair,
  type Draft,
  type JoinResult,
  type NameClaim,
  type Page,
  type PageQuery,
  type RoomInfo,
  type SearchScope,
  searchWords,
  type Store,
} from "./store.ts";
import { replaceLocked } from "./locked_file.ts";
import { Slice } from "./time_slice.ts";

interface Log {
  /** Kept messages; ids are contiguous, so `messages[i].id === first + i`. */
  messages: ChatMessage[];
  /** Newest id given out. */
  last: number;
}

/** Options for {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Messages kept per conversation. @default {200} */
  limit?: number;
  /**
   * Messages kept in all, across conversations: past it, the conversation
   * least recently written to loses its oldest. Bounds memory however many
   * rooms and DMs there are. @default {100000}
   */
  maxTotal?: number;
  /**
   * A file that keeps signed-out sessions across restarts (JSON, mode 0600):
   * tokens outlive the process (their secret is kept on disk), so their
   * revocations must too. Without it they live in memory only.
   */
  signoutsPath?: string;
}

/** In-memory {@link Store}. */
export class MemoryStore implements Store {
  #limit: number;
  #maxTotal: number;
  #total = 0;
  /** Every conversation's log, least recently written first. */
  #logs = new Map<string, Log>();
  #rooms = new Map<string, Set<string>>();
  #creators = new Map<string, string>();
  #roomsOf = new Map<string, Set<string>>();
  #dms = new Map<string, Set<string>>();
  #read = new Map<string, Map<string, number>>();
  #users = new Set<string>();
  /** Open-mode names by lower-cased name. */
  #claims = new Map<string, NameClaim>();
  /** Revoked session → until when (ms). */
  #revoked = new Map<string, number>();
  #signoutsPath: string | null;

  /** Creates an empty store. */
  constructor(options: MemoryStoreOptions = {}) {
    this.#limit = options.limit ?? 200;
    this.#maxTotal = options.maxTotal ?? 100_000;
    this.#signoutsPath = options.signoutsPath ?? null;
    if (this.#signoutsPath) this.#revoked = readSignouts(this.#signoutsPath);
  }

  #log(conv: string): Log {
    let log = this.#logs.get(conv);
    if (!log) {
      log = { messages: [], last: 0 };
      this.#logs.set(conv, log);
    }
    return log;
  }

  /** Appends a message; in memory it is "durable" at once. */
  append(draft: Draft): Promise<ChatMessage> {
    const log = this.#log(draft.conv);
    const msg: ChatMessage = draft.room !== undefined
      ? {
        id: ++log.last,
        room: draft.room,
        from: draft.from,
        text: draft.text,
        ts: new Date().toISOString(),
      }
      : {
        id: ++log.last,
        to: draft.to,
        from: draft.from,
        text: draft.text,
        ts: new Date().toISOString(),
      };
    if (this.#limit > 0) {
      log.messages.push(msg);
      this.#total++;
      if (log.messages.length > this.#limit) {
        log.messages.shift();
        this.#total--;
      }
    }
    // Most recently written last (Map keeps insertion order).
    this.#logs.delete(draft.conv);
    this.#logs.set(draft.conv, log);
    for (const old of this.#logs.values()) {
      if (this.#total <= this.#maxTotal) break;
      const n = Math.min(old.messages.length, this.#total - this.#maxTotal);
      old.messages.splice(0, n);
      this.#total -= n;
    }
    const pair = dmPair(draft.conv);
    if (pair) {
      for (const u of pair) this.#set(this.#dms, u).add(draft.conv);
    }
    return Promise.resolve(msg);
  }

  /** A page of history (O(limit): ids index the array directly). */
  page(conv: string, query: PageQuery): Promise<Page> {
    const log = this.#logs.get(conv);
    if (!log) return Promise.resolve({ messages: [], more: false, gap: false });
    const msgs = log.messages;
    const first = msgs.length > 0 ? msgs[0].id : log.last + 1;
    let start: number, end: number, more: boolean, gap = false;
    if (query.since !== undefined) {
      start = clamp(query.since + 1 - first, 0, msgs.length);
      end = Math.min(msgs.length, start + query.limit);
      more = end < msgs.length;
      gap = query.since < first - 1;
    } else {
      end = query.before === undefined ? msgs.length : clamp(query.before - first, 0, msgs.length);
      start = Math.max(0, end - query.limit);
      more = start > 0;
    }
    return Promise.resolve({ messages: msgs.slice(start, end), more, gap });
  }

  /**
   * Scans the visible conversations newest first, at most `limit` matches
   * each. The scan yields to the event loop every few milliseconds, so a
   * search through a full store does not hold up other users; what is
   * trimmed or wiped meanwhile is skipped.
   */
  async search(q: string, scope: SearchScope): Promise<ChatMessage[]> {
    const words = searchWords(q);
    const convs = new Set(scope.rooms);
    for (const c of this.#dms.get(scope.user) ?? []) convs.add(c);
    const found: ChatMessage[] = [];
    const slice = new Slice();
    for (const conv of convs) {
      if (scope.conv !== undefined && conv !== scope.conv) continue;
      // Ids are contiguous, so the scan resumes by id: a pause may shift or empty the array.
      let next = this.#logs.get(conv)?.last ?? 0;
      let n = 0;
      scan: while (n < scope.limit) {
        const msgs = this.#logs.get(conv)?.messages;
        if (!msgs || msgs.length === 0) break;
        for (let i = Math.min(next - msgs[0].id, msgs.length - 1); i >= 0; i--) {
          const msg = msgs[i];
          const text = msg.text.toLowerCase();
          if (words.every((w) => text.includes(w))) {
            found.push(msg);
            if (++n >= scope.limit) break scan;
          }
          if (slice.spent()) {
            next = msg.id - 1;
            await slice.pause();
            continue scan;
          }
        }
        break;
      }
    }
    found.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    return found.slice(0, scope.limit);
  }

  /** Every room with its member count. */
  rooms(): Promise<RoomInfo[]> {
    const out = [...this.#rooms].map(([name, m]) => ({
      name,
      members: m.size,
    }));
    out.sort((a, b) => a.name.localeCompare(b.name));
    return Promise.resolve(out);
  }

  /** Whether the room exists. */
  roomExists(room: string): Promise<boolean> {
    return Promise.resolve(this.#rooms.has(room));
  }

  /** Adds a member, creating the room. */
  join(user: string, room: string): Promise<JoinResult> {
    const created = !this.#rooms.has(room);
    if (created) this.#creators.set(room, user);
    const members = this.#set(this.#rooms, room);
    if (members.has(user)) return Promise.resolve({ added: false, created });
    members.add(user);
    this.#set(this.#roomsOf, user).add(room);
    return Promise.resolve({ added: true, created });
  }

  /** Rooms created by a user. */
  roomsCreatedBy(user: string): Promise<number> {
    let n = 0;
    for (const creator of this.#creators.values()) if (creator === user) n++;
    return Promise.resolve(n);
  }

  /** Removes a member; the room stays. */
  leave(user: string, room: string): Promise<boolean> {
    const was = this.#rooms.get(room)?.delete(user) ?? false;
    this.#roomsOf.get(user)?.delete(room);
    return Promise.resolve(was);
  }

  /** Rooms of a user. */
  roomsOf(user: string): Promise<string[]> {
    return Promise.resolve([...(this.#roomsOf.get(user) ?? [])].sort());
  }

  /** Members of a room. */
  members(room: string): Promise<string[]> {
    return Promise.resolve([...(this.#rooms.get(room) ?? [])].sort());
  }

  /** The user's rooms and DMs with newest ids and read markers. */
  conversations(user: string): Promise<Conversation[]> {
    const read = this.#read.get(user);
    const out: Conversation[] = [];
    for (const room of [...(this.#roomsOf.get(user) ?? [])].sort()) {
      out.push({
        room,
        last: this.#logs.get(room)?.last ?? 0,
        read: read?.get(room) ?? 0,
      });
    }
    for (const conv of [...(this.#dms.get(user) ?? [])].sort()) {
      const [a, b] = dmPair(conv)!;
      out.push({
        to: a === user ? b : a,
        last: this.#logs.get(conv)?.last ?? 0,
        read: read?.get(conv) ?? 0,
      });
    }
    return Promise.resolve(out);
  }

  /** Moves a read marker forward. */
  setRead(user: string, conv: string, id: number): Promise<number> {
    const markers = this.#read.get(user) ?? new Map<string, number>();
    this.#read.set(user, markers);
    const last = this.#logs.get(conv)?.last ?? 0;
    const next = Math.max(markers.get(conv) ?? 0, Math.min(id, last));
    markers.set(conv, next);
    return Promise.resolve(next);
  }

  /** Remembers a user. */
  touchUser(user: string): Promise<void> {
    this.#users.add(user);
    return Promise.resolve();
  }

  /** Whether a user was ever seen. */
  knownUser(user: string): Promise<boolean> {
    return Promise.resolve(this.#users.has(user));
  }

  /** Who holds a name. */
  nameClaim(name: string): Promise<NameClaim | null> {
    const held = this.#claims.get(name.toLowerCase());
    return Promise.resolve(held === undefined ? null : { ...held });
  }

  /** Claims, refreshes or refuses a name (see {@link Store.claimName}). */
  claimName(name: string, session: string, now: number, create: boolean): Promise<ClaimResult> {
    const key = name.toLowerCase();
    const held = this.#claims.get(key);
    if (held === undefined) {
      if (!create) return Promise.resolve({ ok: false, claim: null });
      const claim = { name, session, seen: now };
      this.#claims.set(key, claim);
      return Promise.resolve({ ok: true, claim: { ...claim } });
    }
    if (held.session !== session) return Promise.resolve({ ok: false, claim: { ...held } });
    held.seen = now;
    return Promise.resolve({ ok: true, claim: { ...held } });
  }

  /**
   * Releases a name held by `session` and wipes its DMs (keeping their id
   * counters), read markers, memberships and "known" mark, in one step.
   */
  releaseName(name: string, session: string, seenBefore?: number): Promise<string[] | null> {
    const key = name.toLowerCase();
    const held = this.#claims.get(key);
    if (held === undefined || held.session !== session) return Promise.resolve(null);
    if (seenBefore !== undefined && held.seen >= seenBefore) return Promise.resolve(null);
    this.#claims.delete(key);
    const user = held.name;
    for (const conv of this.#dms.get(user) ?? []) {
      const log = this.#logs.get(conv);
      if (log) {
        this.#total -= log.messages.length;
        log.messages = [];
      }
      for (const party of dmPair(conv)!) {
        this.#read.get(party)?.delete(conv);
        const dms = this.#dms.get(party);
        if (party !== user && dms?.delete(conv) && dms.size === 0) this.#dms.delete(party);
      }
    }
    this.#dms.delete(user);
    this.#read.delete(user);
    const rooms = [...(this.#roomsOf.get(user) ?? [])].sort();
    for (const room of rooms) this.#rooms.get(room)?.delete(user);
    this.#roomsOf.delete(user);
    this.#users.delete(user);
    for (const [room, creator] of this.#creators) {
      if (creator === user) this.#creators.set(room, "");
    }
    return Promise.resolve(rooms);
  }

  /** Claims not seen since `before`, oldest first (ties by name). */
  staleClaims(before: number, limit: number): Promise<NameClaim[]> {
    const stale = [...this.#claims].filter(([, c]) => c.seen < before);
    stale.sort(([ka, a], [kb, b]) => a.seen - b.seen || (ka < kb ? -1 : ka > kb ? 1 : 0));
    return Promise.resolve(stale.slice(0, Math.max(0, limit)).map(([, c]) => ({ ...c })));
  }

  /**
   * Revokes a session until `until` (never shortening an earlier revocation).
   * Revocations that have lapsed by the clock are dropped here.
   */
  async revokeSession(session: string, until: number): Promise<void> {
    // Oldest first (a Map keeps insertion order, and revocations are made for
    // one token lifetime): drop the lapsed ones from the front, and stop at
    // the first that still holds, so each call costs what it drops.
    const now = Date.now();
    for (const [s, t] of this.#revoked) {
      if (t > now) break;
      this.#revoked.delete(s);
    }
    const lapse = Math.max(until, this.#revoked.get(session) ?? 0);
    this.#revoked.delete(session);
    this.#revoked.set(session, lapse);
    const path = this.#signoutsPath;
    if (path) {
      // Kept before the caller says "signed out": a restart must not undo it.
      const text = JSON.stringify(Object.fromEntries(this.#revoked)) + "\n";
      await replaceLocked(path, () => Promise.resolve(text), {
        wait: 5000,
        busy: `Cannot write "${path}": "${path}.lock" is in use by another writer`,
      });
    }
  }

  /** Whether the session's revocation lasts past `now`. */
  sessionRevoked(session: string, now: number): Promise<boolean> {
    return Promise.resolve((this.#revoked.get(session) ?? 0) > now);
  }

  /** Nothing is pending in memory. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }

  #set(map: Map<string, Set<string>>, key: string): Set<string> {
    let s = map.get(key);
    if (!s) {
      s = new Set();
      map.set(key, s);
    }
    return s;
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}

/** Reads kept sign-outs (oldest first), dropping lapsed ones; a missing file is none. */
function readSignouts(path: string): Map<string, number> {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return new Map();
    throw new Error(`Cannot read "${path}": ${(err as Error).message}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    throw new SyntaxError(`Cannot read "${path}": not valid JSON: fix or remove it`);
  }
  const now = Date.now();
  const entries = Object.entries(data ?? {}).filter((e): e is [string, number] =>
    typeof e[1] === "number" && e[1] > now
  );
  return new Map(entries.sort((a, b) => a[1] - b[1]));
}
