/**
 * The durable store (`--data FILE`): everything in one SQLite file through
 * Deno's built-in `node:sqlite`, so a restart loses nothing.
 *
 * Writes are grouped: every write (a message, a join, a read marker) is
 * queued, and one transaction per tick commits the whole queue; only then do
 * the callers' promises resolve, in the order they were made. The broker
 * delivers and acknowledges a message after its `append` resolved, so what a
 * sender saw acknowledged is in the file. The file is in WAL mode with
 * `synchronous = FULL`: a commit survives `kill -9` and power loss.
 *
 * Message ids are given out at once from per-conversation counters (loaded
 * from the file on first use), so the order of a conversation is fixed before
 * the commit. Retention (`--retain-days`, `--retain-messages`) runs in the
 * background in small transactions between deliveries.
 *
 * Why this file is over 600 lines: it is the whole Store interface against
 * one schema — the prepared statements, the write queue committed once per
 * tick and every method that reads through them share one transaction
 * model, which splitting would scatter across files that must change
 * together.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { clearImmediate, setImmediate } from "node:timers";
import type { ChatMessage, Conversation } from "../../protocol.ts";
import type { Logger } from "../log.ts";
import { type DataFile, openDataFile } from "./sqlite_schema.ts";
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
  type RoomInfo,
  type SearchScope,
  searchWords,
  type Store,
} from "./store.ts";

/** Options for {@link SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** Delete messages older than this many days. @default {undefined} (keep) */
  retainDays?: number;
  /** Keep at most this many messages per room or DM. @default {undefined} (keep all) */
  retainMessages?: number;
  /**
   * `PRAGMA synchronous`: `"full"` survives power loss, `"normal"` only a
   * killed process (see docs/persistence.md).
   * @default {"full"}
   */
  synchronous?: "full" | "normal";
  /** Milliseconds a write waits for others to share its transaction. @default {0} */
  commitDelay?: number;
  /** Milliseconds between `retainDays` sweeps. @default {60000} */
  retentionInterval?: number;
  /** Milliseconds after a commit before trimming to `retainMessages`. @default {1000} */
  retentionDelay?: number;
  /** Most messages one retention transaction deletes. @default {500} */
  retentionBatch?: number;
  /** Where retention problems are reported. @default {undefined} (silent) */
  log?: Logger;
  /** The clock, in milliseconds since the epoch (for tests). @default {Date.now} */
  now?: () => number;
}

/** Counters of the store's work, for health and benchmarks. */
export interface SqliteStats {
  /** Transactions committed by the write queue. */
  commits: number;
  /** Messages committed. */
  messages: number;
  /** Messages deleted by retention. */
  deleted: number;
}

interface ConvState {
  /** Newest id given out (committed or queued). */
  last: number;
  /** Newest id committed. */
  durable: number;
  /** Every id up to this one may be gone (deleted by retention or a released name). */
  trimmed: number;
}

interface Op {
  run(): unknown;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Row {
  id: number;
  room: string | null;
  recipient: string | null;
  sender: string;
  text: string;
  ts: number;
}

const DAY = 86_400_000;

/** A {@link Store} in one SQLite file. */
export class SqliteStore implements Store {
  #file: DataFile;
  #db: DatabaseSync;
  #path: string;
  #sql: ReturnType<typeof statements>;
  #now: () => number;
  #clock = 0;
  #convs = new Map<string, ConvState>();
  #users = new Set<string>();
  #queue: Op[] = [];
  /** Convs given a new id in the batch being built: their first id in it. */
  #batchFirst = new Map<string, number>();
  /** Messages with a ref in the batch being built, by sender and ref (the latest). */
  #batchRefs = new Map<string, { conv: string; text: string; msg: Promise<ChatMessage> }>();
  /** DMs whose parties the transaction being committed has written to `dm_members`. */
  #dmsListed = new Set<string>();
  #timer: (() => void) | undefined;
  #commitDelay: number;
  #closed = false;
  #retainDays?: number;
  #retainMessages?: number;
  #retentionDelay: number;
  #retentionBatch: number;
  #over = new Set<string>();
  #sweepTimer: ReturnType<typeof setTimeout> | undefined;
  #sweepInterval: ReturnType<typeof setInterval> | undefined;
  #sweeping: Promise<void> | null = null;
  #log?: Logger;
  #stats: SqliteStats = { commits: 0, messages: 0, deleted: 0 };

  private constructor(file: DataFile, path: string, options: SqliteStoreOptions) {
    this.#file = file;
    this.#db = file.db;
    this.#path = path;
    this.#sql = statements(file.db);
    this.#now = options.now ?? Date.now;
    this.#commitDelay = options.commitDelay ?? 0;
    this.#retainDays = options.retainDays;
    this.#retainMessages = options.retainMessages;
    this.#retentionDelay = options.retentionDelay ?? 1000;
    this.#retentionBatch = options.retentionBatch ?? 500;
    this.#log = options.log;
    if (this.#retainMessages !== undefined) {
      for (const r of this.#sql.overLimit.all(this.#retainMessages)) {
        const conv = String(r.conv);
        const last = Number(r.last);
        this.#convs.set(conv, { last, durable: last, trimmed: Number(r.trimmed) });
        this.#over.add(conv);
      }
    }
    if (this.#retainDays !== undefined) {
      this.#sweepInterval = setInterval(
        () => this.#startSweep(),
        options.retentionInterval ?? 60_000,
      );
    }
    // Catch up with retention (the limits may be new) without delaying the start.
    if (this.#retains) this.#sweepSoon(0);
  }

  /**
   * Opens the data file at `path`, creating and migrating it as needed.
   *
   * @throws {Error} with one line saying what is wrong with the path or file
   * and what to do (see `openDataFile`).
   * @example
   * ```ts
   * import { SqliteStore } from "./sqlite.ts";
   * const store = SqliteStore.open(await Deno.makeTempFile({ suffix: ".db" }), { retainDays: 30 });
   * await store.append({ conv: "general", room: "general", from: "alice", text: "hi" });
   * await store.close();
   * ```
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    const file = openDataFile(path, { synchronous: options.synchronous });
    try {
      return new SqliteStore(file, path, options);
    } catch (err) {
      file.close();
      throw err;
    }
  }

  /** Counters of committed work. */
  get stats(): SqliteStats {
    return { ...this.#stats };
  }

  get #retains(): boolean {
    return this.#retainDays !== undefined || this.#retainMessages !== undefined;
  }

  /** Numbers and stamps the message now; resolves once its transaction has committed. */
  append(draft: Draft): Promise<ChatMessage> {
    if (this.#closed) return Promise.reject(closedError());
    const state = this.#state(draft.conv, true)!;
    const id = ++state.last;
    if (!this.#batchFirst.has(draft.conv)) this.#batchFirst.set(draft.conv, id);
    // Never backwards, so time order is id order (retention by age trims a prefix).
    this.#clock = Math.max(this.#clock, this.#now());
    const ts = this.#clock;
    const msg: ChatMessage = draft.room !== undefined
      ? { id, room: draft.room, from: draft.from, text: draft.text, ts: iso(ts) }
      : { id, to: draft.to, from: draft.from, text: draft.text, ts: iso(ts) };
    const recipient = draft.room === undefined ? draft.to ?? null : null;
    const pair = dmPair(draft.conv);
    const ref = draft.ref || null;
    const done = this.#write(() => {
      // In the op, not after the batch: a name released earlier in the batch unlisted the DM.
      if (pair && !this.#dmsListed.has(draft.conv)) {
        for (const u of pair) this.#sql.addDm.run(u, draft.conv);
        this.#dmsListed.add(draft.conv);
      }
      this.#sql.insert.run(
        draft.conv,
        id,
        draft.room ?? null,
        recipient,
        draft.from,
        draft.text,
        ts,
        ref,
      );
      return msg;
    });
    if (ref !== null) {
      this.#batchRefs.set(refKey(draft.from, ref), {
        conv: draft.conv,
        text: draft.text,
        msg: done,
      });
    }
    return done;
  }

  /**
   * Appends unless the draft is a resend (see {@link Store.appendOnce}): the
   * sender's latest message with the ref is looked up among the batch being
   * built, then among the kept messages, and numbered in the same turn, so
   * no other write comes between. A resend of a message still in the batch
   * resolves once it committed.
   */
  appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    if (this.#closed) return Promise.reject(closedError());
    const fresh = () => this.append(draft).then((msg) => ({ msg, fresh: true }));
    if (!draft.ref) return fresh();
    const queued = this.#batchRefs.get(refKey(draft.from, draft.ref));
    if (queued) {
      return queued.conv === draft.conv && queued.text === draft.text
        ? queued.msg.then((msg) => ({ msg, fresh: false }))
        : fresh();
    }
    let row: (Row & { conv: string }) | undefined;
    try {
      row = this.#sql.byRef.get(draft.from, draft.ref) as (Row & { conv: string }) | undefined;
    } catch (err) {
      return Promise.reject(err);
    }
    if (row && row.conv === draft.conv && row.text === draft.text) {
      return Promise.resolve({ msg: toMessage(row), fresh: false });
    }
    return fresh();
  }

  /** A page of committed history. */
  page(conv: string, query: PageQuery): Promise<Page> {
    return this.#read(() => {
      const state = this.#state(conv, false);
      if (!state) return { messages: [], more: false, gap: false };
      const limit = Math.max(0, query.limit);
      let rows: Row[], gap = false;
      if (query.since !== undefined) {
        rows = this.#sql.since.all(conv, query.since, limit + 1) as unknown as Row[];
        gap = query.since < state.trimmed;
      } else {
        const before = query.before ?? Number.MAX_SAFE_INTEGER;
        rows = this.#sql.before.all(conv, before, limit + 1) as unknown as Row[];
      }
      const more = rows.length > limit;
      if (more) rows.pop();
      if (query.since === undefined) rows.reverse();
      return { messages: rows.map(toMessage), more, gap };
    });
  }

  /**
   * Full-text search (FTS5): every word must start a word of the message
   * (`dep` finds "deploy"), accents and case ignored, newest first. Words are
   * quoted, so operators and punctuation in `q` are plain text.
   */
  search(q: string, scope: SearchScope): Promise<ChatMessage[]> {
    return this.#read(() => {
      const words = searchWords(q).filter((w) => /[\p{L}\p{N}]/u.test(w));
      if (words.length === 0 || scope.limit <= 0) return [];
      const match = words.map((w) => `"${w.replaceAll('"', '""')}"*`).join(" ");
      let convs = [
        ...scope.rooms,
        ...this.#sql.dmsOf.all(scope.user).map((r) => String(r.conv)),
      ];
      if (scope.conv !== undefined) convs = convs.includes(scope.conv) ? [scope.conv] : [];
      if (convs.length === 0) return [];
      const rows = this.#sql.search.all(match, JSON.stringify(convs), scope.limit);
      return (rows as unknown as Row[]).map(toMessage);
    });
  }

  /** Every room with its member count, by name. */
  rooms(): Promise<RoomInfo[]> {
    return this.#read(() => {
      const out = this.#sql.rooms.all().map((r): RoomInfo => {
        const info = { name: String(r.name), members: Number(r.members) };
        return r.topic ? { ...info, topic: String(r.topic) } : info;
      });
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  /** Whether the room exists. */
  roomExists(room: string): Promise<boolean> {
    return this.#read(() => this.#sql.roomExists.get(room) !== undefined);
  }

  /** Adds a member (creating the room) in the next commit. */
  join(user: string, room: string): Promise<JoinResult> {
    return this.#write(() => {
      const created = this.#sql.createRoom.run(room, user, this.#now()).changes > 0;
      const added = this.#sql.addMember.run(room, user, this.#now()).changes > 0;
      return { added, created };
    });
  }

  /** Number of rooms the user created. */
  roomsCreatedBy(user: string): Promise<number> {
    return this.#read(() => Number(this.#sql.createdBy.get(user)?.n ?? 0));
  }

  /** Removes a member in the next commit; the room stays. */
  leave(user: string, room: string): Promise<boolean> {
    return this.#write(() => this.#sql.removeMember.run(room, user).changes > 0);
  }

  /** Rooms of a user. */
  roomsOf(user: string): Promise<string[]> {
    return this.#read(() => this.#sql.roomsOf.all(user).map((r) => String(r.room)));
  }

  /** Members of a room. */
  members(room: string): Promise<string[]> {
    return this.#read(() => this.#sql.members.all(room).map((r) => String(r.member)));
  }

  /** The room's committed topic, `""` for none. */
  topic(room: string): Promise<string> {
    return this.#read(() => String(this.#sql.topic.get(room)?.topic ?? ""));
  }

  /** Sets or clears a room's topic in the next commit; false when unchanged or no such room. */
  setTopic(room: string, topic: string): Promise<boolean> {
    return this.#write(() => this.#sql.setTopic.run(room, topic).changes > 0);
  }

  /** The user's rooms and DMs with committed newest ids and read markers. */
  conversations(user: string): Promise<Conversation[]> {
    return this.#read(() => {
      const out: Conversation[] = [];
      for (const r of this.#sql.roomConvs.all(user)) {
        out.push({ room: String(r.conv), last: Number(r.last), read: Number(r.read) });
      }
      for (const r of this.#sql.dmConvs.all(user)) {
        const [a, b] = dmPair(String(r.conv))!;
        out.push({ to: a === user ? b : a, last: Number(r.last), read: Number(r.read) });
      }
      return out;
    });
  }

  /** Moves a read marker forward (up to the newest id given out) in the next commit. */
  setRead(user: string, conv: string, id: number): Promise<number> {
    if (this.#closed) return Promise.reject(closedError());
    const last = this.#state(conv, false)?.last ?? 0;
    const want = Math.max(0, Math.min(id, last));
    return this.#write(() => Number(this.#sql.setRead.get(user, conv, want)?.id));
  }

  /** Remembers a user (one write the first time only, unless `seen` is given). */
  touchUser(user: string, seen?: number): Promise<void> {
    if (this.#users.has(user) && seen === undefined) return Promise.resolve();
    return this.#write(() => {
      this.#sql.touchUser.run(user, this.#now());
      // Here, in order with a release in the same batch (a failed commit clears the cache).
      this.#users.add(user);
      if (seen !== undefined) this.#sql.markSeen.run(user.toLowerCase(), seen);
    });
  }

  /** Moves the users' last-seen times forward in the next commit (one transaction for all). */
  markSeen(users: readonly string[], at: number): Promise<void> {
    if (users.length === 0) return Promise.resolve();
    return this.#write(() => {
      for (const user of users) this.#sql.markSeen.run(user.toLowerCase(), at);
    });
  }

  /** Committed last-seen times of the users seen, in one query. */
  lastSeen(users: readonly string[]): Promise<Map<string, number>> {
    return this.#read(() => {
      const out = new Map<string, number>();
      if (users.length === 0) return out;
      const folded = users.map((u) => u.toLowerCase());
      const at = new Map<string, number>();
      for (const r of this.#sql.lastSeen.all(JSON.stringify(folded))) {
        at.set(String(r.folded), Number(r.at));
      }
      users.forEach((user, i) => {
        const t = at.get(folded[i]);
        if (t !== undefined) out.set(user, t);
      });
      return out;
    });
  }

  /** Whether the user ever signed in. */
  knownUser(user: string): Promise<boolean> {
    return this.#read(() => {
      if (this.#users.has(user)) return true;
      const known = this.#sql.knownUser.get(user) !== undefined;
      if (known) this.#users.add(user);
      return known;
    });
  }

  /** Who holds a name (a read: no commit). */
  nameClaim(name: string): Promise<NameClaim | null> {
    return this.#read(() => {
      const row = this.#sql.claim.get(name.toLowerCase());
      return row === undefined ? null : toClaim(row);
    });
  }

  /** Claims, refreshes or refuses a name in the next commit (see {@link Store.claimName}). */
  claimName(name: string, session: string, now: number, create: boolean): Promise<ClaimResult> {
    const folded = name.toLowerCase();
    return this.#write((): ClaimResult => {
      const row = this.#sql.claim.get(folded);
      if (row === undefined) {
        if (!create) return { ok: false, claim: null };
        this.#sql.addClaim.run(folded, name, session, now);
        return { ok: true, claim: { name, session, seen: now } };
      }
      const held = toClaim(row);
      if (held.session !== session) return { ok: false, claim: held };
      this.#sql.touchClaim.run(folded, now);
      return { ok: true, claim: { ...held, seen: now } };
    });
  }

  /**
   * Releases a name held by `session` and, in the same transaction, deletes
   * its DMs (their rows leave the search index by trigger; `convs` keeps the
   * newest id, so ids continue), their read markers, its own markers, its
   * memberships, its last-seen time and its `users` row.
   */
  releaseName(name: string, session: string, seenBefore?: number): Promise<string[] | null> {
    const folded = name.toLowerCase();
    const wiped = new Map<string, number>();
    return this.#write(() => {
      const row = this.#sql.claim.get(folded);
      if (row === undefined || String(row.session) !== session) return null;
      if (seenBefore !== undefined && Number(row.seen) >= seenBefore) return null;
      const user = String(row.name);
      this.#sql.deleteClaim.run(folded);
      this.#sql.forgetSeen.run(folded);
      this.#sql.forgetCreator.run(user);
      for (const r of this.#sql.dmsOf.all(user)) {
        const conv = String(r.conv);
        const [a, b] = dmPair(conv)!;
        const top = this.#sql.newestKept.get(conv)?.top;
        if (top !== null && top !== undefined) {
          this.#sql.deleteConv.run(conv);
          this.#sql.setTrimmed.run(conv, Number(top));
          wiped.set(conv, Number(top));
        }
        this.#sql.unlistDm.run(a, b, conv);
        this.#sql.unreadDm.run(a, b, conv);
        this.#dmsListed.delete(conv);
      }
      this.#sql.unreadAll.run(user);
      const rooms = this.#sql.leaveAll.all(user).map((r) => String(r.room)).sort();
      this.#sql.forgetUser.run(user);
      this.#sql.forgetRefs.run(user);
      this.#users.delete(user);
      return rooms;
    }).then((rooms) => {
      for (const [conv, top] of wiped) {
        const s = this.#convs.get(conv);
        if (s) s.trimmed = Math.max(s.trimmed, top);
      }
      return rooms;
    });
  }

  /** Committed claims not seen since `before`, oldest first (ties by name). */
  staleClaims(before: number, limit: number): Promise<NameClaim[]> {
    return this.#read(() => this.#sql.staleClaims.all(before, Math.max(0, limit)).map(toClaim));
  }

  /** Committed claims seen since `query.since` whose name matches, newest first. */
  recentClaims(query: RecentQuery): Promise<NameClaim[]> {
    return this.#read(() =>
      this.#sql.recentClaims.all(
        query.since,
        query.match?.toLowerCase() ?? "",
        Math.max(0, query.limit),
      ).map(toClaim)
    );
  }

  /**
   * Revokes a session until `until` (never shortening an earlier revocation)
   * in the next commit, which also drops the revocations lapsed by the clock.
   */
  revokeSession(session: string, until: number): Promise<void> {
    return this.#write(() => {
      this.#sql.purgeRevoked.run(this.#now());
      this.#sql.revoke.run(session, until);
    });
  }

  /** Whether a committed revocation of the session lasts past `now`. */
  sessionRevoked(session: string, now: number): Promise<boolean> {
    return this.#read(() => Number(this.#sql.revoked.get(session)?.until ?? 0) > now);
  }

  /**
   * Commits the queue now, then lets retention catch up, so that what the
   * caller reads next is settled. Rejects if the commit failed.
   */
  async flush(): Promise<void> {
    const err = this.#commit();
    if (err) throw err;
    if (!this.#retains || this.#closed) return;
    clearTimeout(this.#sweepTimer);
    this.#sweepTimer = undefined;
    await this.#sweeping;
    await this.#startSweep();
  }

  /** Commits what is queued, stops retention and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#sweepTimer);
    clearInterval(this.#sweepInterval);
    this.#commit();
    await this.#sweeping;
    try {
      // Cheap upkeep SQLite recommends before closing: refreshes planner statistics.
      this.#db.exec("PRAGMA analysis_limit = 400; PRAGMA optimize");
    } catch {
      // Only statistics: closing matters more.
    }
    this.#file.close();
  }

  // -------------------------------------------------------------------------
  // Reads and the write queue

  /** Runs a read of committed data; a failure (or a closed store) rejects. */
  #read<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    try {
      return Promise.resolve(run());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #write<T>(run: () => T): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    this.#queue.push({ run, resolve: resolve as (v: unknown) => void, reject });
    this.#timer ??= this.#schedule(() => this.#commit());
    return promise;
  }

  /**
   * Runs `fn` after the I/O that is ready now (every frame that arrived in the
   * meantime joins the batch), or after `commitDelay`; returns a cancel.
   */
  #schedule(fn: () => void): () => void {
    if (this.#commitDelay > 0) {
      const t = setTimeout(fn, this.#commitDelay);
      return () => clearTimeout(t);
    }
    const t = setImmediate(fn);
    return () => clearImmediate(t);
  }

  /** Commits every queued write in one transaction; returns the error if it failed. */
  #commit(): Error | null {
    this.#timer?.();
    this.#timer = undefined;
    const ops = this.#queue;
    const firsts = this.#batchFirst;
    if (ops.length === 0) return null;
    this.#queue = [];
    this.#batchFirst = new Map();
    // Committed or rolled back below: either way the file answers from now on.
    this.#batchRefs = new Map();
    const results: unknown[] = [];
    const db = this.#db;
    this.#dmsListed.clear();
    try {
      db.exec("BEGIN IMMEDIATE");
      for (const op of ops) results.push(op.run());
      for (const conv of firsts.keys()) this.#sql.setLast.run(conv, this.#convs.get(conv)!.last);
      db.exec("COMMIT");
    } catch (err) {
      rollback(db);
      // The ops updated the cache of known users as they ran.
      this.#users.clear();
      // Nothing of the batch was kept or delivered: give its ids out again.
      for (const [conv, first] of firsts) this.#convs.get(conv)!.last = first - 1;
      const error = new Error(
        `Cannot save to data file "${this.#path}": ${(err as Error).message}`,
      );
      for (const op of ops) op.reject(error);
      return error;
    }
    this.#stats.commits++;
    for (const [conv] of firsts) {
      const s = this.#convs.get(conv)!;
      this.#stats.messages += s.last - s.durable;
      s.durable = s.last;
      if (this.#retainMessages !== undefined && s.durable - s.trimmed > this.#retainMessages) {
        this.#over.add(conv);
      }
    }
    for (let i = 0; i < ops.length; i++) ops[i].resolve(results[i]);
    if (this.#over.size > 0) this.#sweepSoon(this.#retentionDelay);
    return null;
  }

  #state(conv: string, create: true): ConvState;
  #state(conv: string, create: false): ConvState | undefined;
  #state(conv: string, create: boolean): ConvState | undefined {
    let s = this.#convs.get(conv);
    if (s) return s;
    const row = this.#sql.conv.get(conv);
    if (row) {
      const last = Number(row.last);
      s = { last, durable: last, trimmed: Number(row.trimmed) };
    } else if (create) s = { last: 0, durable: 0, trimmed: 0 };
    else return undefined;
    this.#convs.set(conv, s);
    return s;
  }

  // -------------------------------------------------------------------------
  // Retention

  #sweepSoon(delay: number): void {
    if (this.#closed || this.#sweepTimer !== undefined) return;
    this.#sweepTimer = setTimeout(() => {
      this.#sweepTimer = undefined;
      this.#startSweep();
    }, delay);
  }

  #startSweep(): Promise<void> {
    this.#sweeping ??= this.#sweepLoop().finally(() => {
      this.#sweeping = null;
    });
    return this.#sweeping;
  }

  /** Small transactions with a turn of the event loop between them. */
  async #sweepLoop(): Promise<void> {
    while (!this.#closed) {
      let more: boolean;
      try {
        more = this.#sweepBatch();
      } catch (err) {
        this.#log?.warn(`Retention paused: ${(err as Error).message}`);
        return;
      }
      if (!more) return;
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }

  /** Deletes up to one batch of expired messages; resolves whether more may be left. */
  #sweepBatch(): boolean {
    let budget = this.#retentionBatch;
    let deleted = 0;
    const db = this.#db;
    /** New watermarks, applied to memory once the transaction committed. */
    const trimmed = new Map<string, number>();
    db.exec("BEGIN IMMEDIATE");
    try {
      const limit = this.#retainMessages;
      if (limit !== undefined) {
        for (const conv of this.#over) {
          const s = this.#convs.get(conv)!;
          const upTo = Math.min(s.durable - limit, s.trimmed + budget);
          if (upTo <= s.trimmed) continue;
          deleted += Number(this.#sql.trimTo.run(conv, upTo).changes);
          this.#sql.setTrimmed.run(conv, upTo);
          trimmed.set(conv, upTo);
          budget -= upTo - s.trimmed;
          if (budget <= 0) break;
        }
      }
      if (this.#retainDays !== undefined && budget > 0) {
        const cutoff = this.#now() - this.#retainDays * DAY;
        const old = this.#sql.expired.all(cutoff, budget);
        for (const r of old) {
          this.#sql.deleteSeq.run(r.seq as number);
          const conv = String(r.conv);
          trimmed.set(conv, Math.max(trimmed.get(conv) ?? 0, Number(r.id)));
        }
        for (const [conv, top] of trimmed) this.#sql.setTrimmed.run(conv, top);
        deleted += old.length;
        budget -= old.length;
      }
      db.exec("COMMIT");
    } catch (err) {
      rollback(db);
      throw err;
    }
    this.#stats.deleted += deleted;
    for (const [conv, top] of trimmed) {
      const s = this.#convs.get(conv);
      if (s) s.trimmed = Math.max(s.trimmed, top);
    }
    if (this.#retainMessages !== undefined) {
      for (const conv of this.#over) {
        const s = this.#convs.get(conv)!;
        if (s.durable - s.trimmed <= this.#retainMessages!) this.#over.delete(conv);
      }
    }
    return budget <= 0 || this.#over.size > 0;
  }
}

/** Ends a failed transaction; SQLite may have rolled it back already. */
function rollback(db: DatabaseSync): void {
  try {
    if (db.isTransaction) db.exec("ROLLBACK");
  } catch {
    // The error that got us here is the one to report.
  }
}

/** A sender's ref as one key (names never hold a newline). */
function refKey(from: string, ref: string): string {
  return `${from}\n${ref}`;
}

function closedError(): Error {
  return new Error("The data file is closed");
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function toClaim(r: Record<string, unknown>): NameClaim {
  return { name: String(r.name), session: String(r.session), seen: Number(r.seen) };
}

function toMessage(r: Row): ChatMessage {
  const ts = iso(Number(r.ts));
  return r.room !== null
    ? { id: Number(r.id), room: r.room, from: r.sender, text: r.text, ts }
    : { id: Number(r.id), to: r.recipient ?? undefined, from: r.sender, text: r.text, ts };
}

const COLUMNS = "id, room, recipient, sender, text, ts";

function statements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    insert: p(
      `INSERT INTO messages (conv, id, room, recipient, sender, text, ts, ref)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    byRef: p(
      `SELECT conv, ${COLUMNS} FROM messages WHERE sender = ? AND ref = ?
       ORDER BY seq DESC LIMIT 1`,
    ),
    forgetRefs: p("UPDATE messages SET ref = NULL WHERE sender = ? AND ref IS NOT NULL"),
    conv: p("SELECT last, trimmed FROM convs WHERE conv = ?"),
    setLast: p(
      `INSERT INTO convs (conv, last, trimmed) VALUES (?1, ?2, 0)
       ON CONFLICT (conv) DO UPDATE SET last = max(last, excluded.last)`,
    ),
    setTrimmed: p("UPDATE convs SET trimmed = max(trimmed, ?2) WHERE conv = ?1"),
    overLimit: p("SELECT conv, last, trimmed FROM convs WHERE last - trimmed > ?"),
    addDm: p("INSERT OR IGNORE INTO dm_members (member, conv) VALUES (?, ?)"),
    dmsOf: p("SELECT conv FROM dm_members WHERE member = ?"),
    since: p(`SELECT ${COLUMNS} FROM messages WHERE conv = ? AND id > ? ORDER BY id LIMIT ?`),
    before: p(
      `SELECT ${COLUMNS} FROM messages WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?`,
    ),
    search: p(
      `SELECT m.id, m.room, m.recipient, m.sender, m.text, m.ts
       FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid
       WHERE messages_fts MATCH ?1 AND m.conv IN (SELECT value FROM json_each(?2))
       ORDER BY messages_fts.rowid DESC LIMIT ?3`,
    ),
    rooms: p(
      `SELECT r.name, r.topic,
         (SELECT count(*) FROM members AS m WHERE m.room = r.name) AS members
       FROM rooms AS r`,
    ),
    topic: p("SELECT topic FROM rooms WHERE name = ?"),
    setTopic: p("UPDATE rooms SET topic = ?2 WHERE name = ?1 AND topic <> ?2"),
    roomExists: p("SELECT 1 FROM rooms WHERE name = ?"),
    createRoom: p("INSERT OR IGNORE INTO rooms (name, creator, created) VALUES (?, ?, ?)"),
    createdBy: p("SELECT count(*) AS n FROM rooms WHERE creator = ?"),
    addMember: p("INSERT OR IGNORE INTO members (room, member, joined) VALUES (?, ?, ?)"),
    removeMember: p("DELETE FROM members WHERE room = ? AND member = ?"),
    roomsOf: p("SELECT room FROM members WHERE member = ? ORDER BY room"),
    members: p("SELECT member FROM members WHERE room = ? ORDER BY member"),
    roomConvs: p(
      `SELECT m.room AS conv, coalesce(c.last, 0) AS last, coalesce(r.id, 0) AS read
       FROM members AS m
       LEFT JOIN convs AS c ON c.conv = m.room
       LEFT JOIN reads AS r ON r.member = m.member AND r.conv = m.room
       WHERE m.member = ?1 ORDER BY m.room`,
    ),
    dmConvs: p(
      `SELECT d.conv, coalesce(c.last, 0) AS last, coalesce(r.id, 0) AS read
       FROM dm_members AS d
       LEFT JOIN convs AS c ON c.conv = d.conv
       LEFT JOIN reads AS r ON r.member = d.member AND r.conv = d.conv
       WHERE d.member = ?1 ORDER BY d.conv`,
    ),
    setRead: p(
      `INSERT INTO reads (member, conv, id) VALUES (?, ?, ?)
       ON CONFLICT (member, conv) DO UPDATE SET id = max(id, excluded.id)
       RETURNING id`,
    ),
    touchUser: p("INSERT OR IGNORE INTO users (name, first_seen) VALUES (?, ?)"),
    knownUser: p("SELECT 1 FROM users WHERE name = ?"),
    markSeen: p(
      `INSERT INTO seen (folded, at) VALUES (?, ?)
       ON CONFLICT (folded) DO UPDATE SET at = max(at, excluded.at)`,
    ),
    lastSeen: p(
      "SELECT folded, at FROM seen WHERE folded IN (SELECT value FROM json_each(?))",
    ),
    forgetSeen: p("DELETE FROM seen WHERE folded = ?"),
    trimTo: p("DELETE FROM messages WHERE conv = ? AND id <= ?"),
    claim: p("SELECT name, session, seen FROM claims WHERE folded = ?"),
    addClaim: p("INSERT INTO claims (folded, name, session, seen) VALUES (?, ?, ?, ?)"),
    touchClaim: p("UPDATE claims SET seen = ?2 WHERE folded = ?1"),
    deleteClaim: p("DELETE FROM claims WHERE folded = ?"),
    forgetCreator: p("UPDATE rooms SET creator = '' WHERE creator = ?"),
    staleClaims: p(
      "SELECT name, session, seen FROM claims WHERE seen < ? ORDER BY seen, folded LIMIT ?",
    ),
    // Backwards along claims_by_seen: no sort, and it stops after `limit` matches.
    recentClaims: p(
      `SELECT name, session, seen FROM claims WHERE seen >= ?1 AND instr(folded, ?2) > 0
       ORDER BY seen DESC, folded DESC LIMIT ?3`,
    ),
    newestKept: p("SELECT max(id) AS top FROM messages WHERE conv = ?"),
    deleteConv: p("DELETE FROM messages WHERE conv = ?"),
    unlistDm: p("DELETE FROM dm_members WHERE member IN (?1, ?2) AND conv = ?3"),
    unreadDm: p("DELETE FROM reads WHERE member IN (?1, ?2) AND conv = ?3"),
    unreadAll: p("DELETE FROM reads WHERE member = ?"),
    leaveAll: p("DELETE FROM members WHERE member = ? RETURNING room"),
    forgetUser: p("DELETE FROM users WHERE name = ?"),
    purgeRevoked: p("DELETE FROM revoked WHERE until <= ?"),
    revoke: p(
      `INSERT INTO revoked (session, until) VALUES (?, ?)
       ON CONFLICT (session) DO UPDATE SET until = max(until, excluded.until)`,
    ),
    revoked: p("SELECT until FROM revoked WHERE session = ?"),
    expired: p("SELECT seq, conv, id FROM messages WHERE ts < ? ORDER BY ts LIMIT ?"),
    deleteSeq: p("DELETE FROM messages WHERE seq = ?"),
  } satisfies Record<string, StatementSync>;
}
