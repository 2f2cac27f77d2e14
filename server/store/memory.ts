/**
 * The default store: everything in memory, the newest `limit` messages per
 * conversation, gone when the process exits.
 *
 * @module
 */
import type { ChatMessage, Conversation } from "../../protocol.ts";
import {
  type Appended,
  type ClaimResult,
  dmPair,
  type Draft,
  type JoinResult,
  type NameClaim,
  type Page,
  type PageQuery,
  type RecentQuery,
  REF_WINDOW,
  type RoomInfo,
  type SearchScope,
  searchWords,
  type Store,
} from "./store.ts";
import { appendLocked, replaceLocked } from "../locked_file.ts";
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
  /** Room → its topic (rooms without one are not listed). */
  #topics = new Map<string, string>();
  /** Lower-cased name → when the user was last seen (ms). */
  #seen = new Map<string, number>();
  /** Open-mode names by lower-cased name. */
  #claims = new Map<string, NameClaim>();
  /** Revoked session → until when (ms). */
  #revoked = new Map<string, number>();
  /**
   * Per sender: ref → conversation and message of their latest message with
   * that ref, oldest first, at most {@link REF_WINDOW} refs.
   */
  #sent = new Map<string, Map<string, { conv: string; msg: ChatMessage }>>();
  #signoutsPath: string | null;
  #compact = false;

  /** Creates an empty store. */
  constructor(options: MemoryStoreOptions = {}) {
    this.#limit = options.limit ?? 200;
    this.#maxTotal = options.maxTotal ?? 100_000;
    this.#signoutsPath = options.signoutsPath ?? null;
    if (this.#signoutsPath) {
      const kept = readSignouts(this.#signoutsPath);
      this.#revoked = kept.live;
      // Mostly lapsed or repeated lines: the next sign-out rewrites the file.
      this.#compact = kept.lines > kept.live.size * 2 + 64;
    }
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
    if (draft.ref) this.#remember(draft.from, draft.ref, draft.conv, msg);
    return Promise.resolve(msg);
  }

  /** Appends unless the draft is a resend (see {@link Store.appendOnce}). */
  appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    const prev = this.#sent.get(draft.from)?.get(draft.ref);
    if (prev && prev.conv === draft.conv && prev.msg.text === draft.text) {
      return Promise.resolve({ msg: prev.msg, fresh: false });
    }
    return this.append(draft).then((msg) => ({ msg, fresh: true }));
  }

  /** Keeps a sender's ref as their newest, forgetting their oldest past the window. */
  #remember(from: string, ref: string, conv: string, msg: ChatMessage): void {
    let refs = this.#sent.get(from);
    if (!refs) {
      refs = new Map();
      this.#sent.set(from, refs);
    }
    // Newest last (a Map keeps insertion order): a reused ref moves to the end.
    refs.delete(ref);
    refs.set(ref, { conv, msg });
    if (refs.size > REF_WINDOW) refs.delete(refs.keys().next().value!);
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
    const out = [...this.#rooms].map(([name, m]): RoomInfo => {
      const topic = this.#topics.get(name);
      return topic === undefined ? { name, members: m.size } : { name, members: m.size, topic };
    });
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

  /** The room's topic, `""` for none. */
  topic(room: string): Promise<string> {
    return Promise.resolve(this.#topics.get(room) ?? "");
  }

  /** Sets or clears a room's topic; false when unchanged or no such room. */
  setTopic(room: string, topic: string): Promise<boolean> {
    if (!this.#rooms.has(room) || (this.#topics.get(room) ?? "") === topic) {
      return Promise.resolve(false);
    }
    if (topic === "") this.#topics.delete(room);
    else this.#topics.set(room, topic);
    return Promise.resolve(true);
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

  /** Remembers a user (and when it was seen). */
  touchUser(user: string, seen?: number): Promise<void> {
    this.#users.add(user);
    if (seen !== undefined) this.markSeen([user], seen);
    return Promise.resolve();
  }

  /** Moves the users' last-seen times forward to `at`. */
  markSeen(users: readonly string[], at: number): Promise<void> {
    for (const user of users) {
      const key = user.toLowerCase();
      this.#seen.set(key, Math.max(at, this.#seen.get(key) ?? -Infinity));
    }
    return Promise.resolve();
  }

  /** Last-seen times of the users seen. */
  lastSeen(users: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    for (const user of users) {
      const at = this.#seen.get(user.toLowerCase());
      if (at !== undefined) out.set(user, at);
    }
    return Promise.resolve(out);
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
   * counters), read markers, memberships, "known" mark, last-seen time and
   * refs, in one step.
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
    this.#seen.delete(key);
    this.#sent.delete(user);
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

  /** Recent claims matching the query, newest first (ties: lower-cased name, last first). */
  recentClaims(query: RecentQuery): Promise<NameClaim[]> {
    const match = query.match?.toLowerCase() ?? "";
    const found = [...this.#claims].filter(([key, c]) =>
      c.seen >= query.since && key.includes(match)
    );
    found.sort(([ka, a], [kb, b]) => b.seen - a.seen || (ka < kb ? 1 : ka > kb ? -1 : 0));
    return Promise.resolve(found.slice(0, Math.max(0, query.limit)).map(([, c]) => ({ ...c })));
  }

  /**
   * Revokes a session until `until` (never shortening an earlier revocation).
   * Revocations that have lapsed by the clock are dropped here.
   */
  async revokeSession(session: string, until: number): Promise<void> {
    const lapse = Math.max(until, this.#revoked.get(session) ?? 0);
    const path = this.#signoutsPath;
    if (path) {
      // Kept on disk before anyone is told "signed out": a restart must not
      // undo it. One line appended per sign-out, under the file's lock, so
      // concurrent sign-outs (and servers sharing the folder) lose none.
      const options = {
        wait: 5000,
        busy: `Cannot write "${path}": "${path}.lock" is in use by another writer`,
      };
      if (this.#compact) {
        this.#compact = false;
        await replaceLocked(path, () => {
          const all = readSignouts(path).live;
          for (const [s, t] of this.#revoked) all.set(s, Math.max(t, all.get(s) ?? 0));
          all.set(session, Math.max(lapse, all.get(session) ?? 0));
          return Promise.resolve([...all].map((e) => JSON.stringify(e) + "\n").join(""));
        }, options);
      } else await appendLocked(path, JSON.stringify([session, lapse]) + "\n", options);
    }
    // Oldest first (a Map keeps insertion order, and revocations are made for
    // one token lifetime): drop the lapsed ones from the front, and stop at
    // the first that still holds, so each call costs what it drops.
    const now = Date.now();
    for (const [s, t] of this.#revoked) {
      if (t > now) break;
      this.#revoked.delete(s);
    }
    this.#revoked.delete(session);
    this.#revoked.set(session, lapse);
  }

  /** Whether the session's revocation lasts past `now`. */
  sessionRevoked(session: string, now: number): Promise<boolean> {
    return Promise.resolve((this.#revoked.get(session) ?? 0) > now);
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

/**
 * Reads kept sign-outs, one JSON `[session, until]` per line: the ones still
 * in force (oldest first) and how many lines the file holds. A line cut short
 * by a crash is skipped; a missing file is none.
 */
function readSignouts(path: string): { live: Map<string, number>; lines: number } {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return { live: new Map(), lines: 0 };
    throw new Error(`Cannot read "${path}": ${(err as Error).message}`);
  }
  const now = Date.now();
  const live = new Map<string, number>();
  let lines = 0;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    lines++;
    let entry: unknown;
    try {
      entry = JSON.parse(line);
    } catch {
      continue;
    }
    if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "number") {
      continue;
    }
    const [session, until] = entry as [string, number];
    if (until > now) live.set(session, Math.max(until, live.get(session) ?? 0));
  }
  return { live: new Map([...live].sort((a, b) => a[1] - b[1])), lines };
}
