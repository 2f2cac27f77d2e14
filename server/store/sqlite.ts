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
 * Positions (`seq`: message ids, and the positions of edits, deletes and
 * reactions) are given out at once from per-conversation counters (loaded
 * from the file on first use), so the order of a conversation is fixed before
 * the commit. A change is checked at call time against the file plus what the
 * queue will write (a send followed at once by an edit of it works before the
 * commit), and resolves in the same ordered commit as the appends around it;
 * a reply's quote of its original is checked against the same view. An edit
 * stores the new quote in the replies, a delete empties it, so a reply never
 * quotes text its original no longer has, even once the original is gone.
 * Retention (`--retain-days`, `--retain-messages`) runs in the background in
 * small transactions between deliveries.
 *
 * A message keeps the files it carries (their meta, as JSON; the bytes are
 * the file store's, in the same file). A deleted message's text and files
 * are gone from the file, not hidden: its row keeps an empty text and no files, the search index drops its words (FTS5 `secure-delete`),
 * freed space is zeroed (`PRAGMA secure_delete`), and a checkpoint soon after
 * the commit empties the write-ahead log that still held the old page.
 *
 * Why this file is over 600 lines: it is the whole Store interface against
 * one schema — the prepared statements, the write queue committed once per
 * tick (with the view of queued messages that changes are checked against)
 * and every method that reads through them share one transaction model,
 * which splitting would scatter across files that must change together.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { clearImmediate, setImmediate } from "node:timers";
import {
  type ChatMessage,
  type Conversation,
  MAX_REACTIONS,
  MAX_REACTIONS_TOTAL,
  type ReplyRef,
  snippetOf,
  UNREAD_CAP,
} from "../../protocol.ts";
import { plainText } from "../../markdown.ts";
import type { Logger } from "../log.ts";
import type { FileMeta } from "../files/files.ts";
import { Checkpointer } from "./checkpointer.ts";
import { type DataFile, openDataFile } from "./sqlite_schema.ts";
import { immediate } from "./sqlite_tx.ts";
import {
  type Appended,
  type Applied,
  type Change,
  type ChangeResult,
  type ClaimResult,
  dmPair,
  type Draft,
  type JoinResult,
  type MembersPage,
  type NameClaim,
  type Page,
  type PageQuery,
  type RecentQuery,
  refreshReplies,
  type Rename,
  type RenameResult,
  RENAMES_KEPT,
  ReplyChanged,
  RoomGone,
  type RoomInfo,
  type RoomSettings,
  type RoomSettingsChange,
  searchable,
  type SearchScope,
  searchWords,
  SESSIONS_KEPT,
  type SessionSeen,
  sinceGap,
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
  /**
   * Milliseconds after a commit that removed text (a delete, retention, a
   * released name's DMs) before the write-ahead log is checkpointed and
   * emptied, so the old text does not linger in it. @default {1000}
   */
  checkpointDelay?: number;
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
  /** Edits, deletes and reactions committed. */
  changes: number;
  /** Messages deleted by retention. */
  deleted: number;
  /** Checkpoints run from another thread (after a file's chunks, see {@link SqliteStore.grewLog}). */
  backgroundCheckpoints: number;
}

interface ConvState {
  /** Newest position given out, to a message or a change (committed or queued). */
  seq: number;
  /** Newest position committed. */
  durable: number;
  /** Newest message id given out (committed or queued). */
  newest: number;
  /**
   * The highest position of any message dropped (retention, a released
   * name): a reader up to an older position may hold a stale copy.
   */
  trimmed: number;
  /**
   * Messages kept, committed (ids skip, so this is not `newest - trimmed`);
   * {@link GONE} for the old name of a renamed room.
   */
  kept: number;
}

/**
 * `convs.kept` of a room's old name after a rename (see
 * {@link SqliteStore.renameRoom}): it has no messages, and appends to it are
 * refused until a room of the name is created again (which sets it to 0).
 * Kept in the counters' row, so it survives a restart without a new column.
 */
const GONE = -1;

/** A conversation's counters before the batch being built touched them. */
interface BatchStart {
  seq: number;
  newest: number;
}

/**
 * What a change is checked against: a message as the file plus the queue
 * leave it.
 */
interface Live {
  from: string;
  /** Sent at (ms). */
  ts: number;
  /**
   * The position of its latest change (its id until it changes): a reply's
   * quote is checked against it.
   */
  seq: number;
  deleted: boolean;
  /** Emoji → who reacted, in the order they did. */
  reactions: Map<string, string[]>;
}

/** What the ops of the transaction being committed did, for memory once it committed. */
interface Ran {
  /** Messages inserted per conversation (since a wipe of it in the same transaction). */
  added: Map<string, number>;
  /** Conversations whose messages were all deleted (a released name's DMs). */
  emptied: Set<string>;
  /** New watermarks. */
  trimmed: Map<string, number>;
  messages: number;
  changes: number;
  /** Some text was removed: checkpoint the log soon. */
  textGone: boolean;
}

function newRan(): Ran {
  return {
    added: new Map(),
    emptied: new Set(),
    trimmed: new Map(),
    messages: 0,
    changes: 0,
    textGone: false,
  };
}

interface Op {
  run(): unknown;
  resolve(value: unknown): void;
  reject(err: Error): void;
}

interface Row {
  conv: string;
  id: number;
  rev: number;
  room: string | null;
  recipient: string | null;
  sender: string;
  text: string;
  ts: number;
  edited: number | null;
  deleted: number;
  reply_to: number | null;
  reply_from: string | null;
  reply_snippet: string | null;
  /** JSON array of {@link FileMeta}, NULL when none (and once deleted). */
  files: string | null;
}

/**
 * The `deleted` column: 0 kept, 1 deleted by its author, 2 removed by an
 * admin (`removed` on the tombstone). Readers test `deleted = 0` for kept,
 * so schema 6's column carries it without a migration.
 */
const DELETED = 1, REMOVED = 2;

const DAY = 86_400_000;

/**
 * Most messages after a read marker that `conversations()` looks at to count
 * the unread (up to `UNREAD_CAP`): the count's work stays bounded however far
 * behind the reader is. Only past this many deleted or own messages in a row
 * does it count fewer than are there.
 */
export const UNREAD_SCAN = 1000;

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
  /**
   * Room → its committed member count (`count(*)` reads every member, so
   * each room is counted once, then kept up to date by the writes that move
   * members, as they run). Cleared when a batch rolls back.
   */
  #memberCounts = new Map<string, number>();
  #queue: Op[] = [];
  /** Convs given a new position in the batch being built: their counters before it. */
  #batchFirst = new Map<string, BatchStart>();
  /** Messages a change looked at since the last commit, as the queue leaves them. */
  #live = new Map<string, Live>();
  #ran: Ran = newRan();
  /** Messages with a ref in the batch being built, by sender and ref (the latest). */
  #batchRefs = new Map<string, { conv: string; text: string; msg: Promise<ChatMessage> }>();
  /** DMs whose parties the transaction being committed has written to `dm_members`. */
  #dmsListed = new Set<string>();
  /** Old names of renamed rooms that a join in the batch being built creates again. */
  #revived = new Set<string>();
  /**
   * Memberships the batch being built changes, by {@link memberKey}: whether
   * the user is in the room after it (the last join or leave asked for).
   */
  #batchMembers = new Map<string, boolean>();
  /** Lower-cased names the batch being built may release, with their memberships. */
  #batchReleases = new Set<string>();
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
  #checkpointDelay: number;
  #checkpointTimer: ReturnType<typeof setTimeout> | undefined;
  #log?: Logger;
  #background: Checkpointer;
  #stats: Omit<SqliteStats, "backgroundCheckpoints"> = {
    commits: 0,
    messages: 0,
    changes: 0,
    deleted: 0,
  };

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
    this.#checkpointDelay = options.checkpointDelay ?? 1000;
    this.#log = options.log;
    this.#background = new Checkpointer(path, options.log);
    if (this.#retainMessages !== undefined) {
      for (const r of this.#sql.overLimit.all(this.#retainMessages)) {
        const conv = String(r.conv);
        this.#convs.set(conv, convState(r));
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
    // A log left behind by a crash (a kill within `checkpointDelay` of a
    // delete) still holds the removed text in old frames: empty it soon.
    const leftLog = hasLog(path);
    const file = openDataFile(path, { synchronous: options.synchronous });
    let store: SqliteStore;
    try {
      store = new SqliteStore(file, path, options);
    } catch (err) {
      file.close();
      throw err;
    }
    if (leftLog) store.#checkpointSoon();
    return store;
  }

  /** Counters of committed work. */
  get stats(): SqliteStats {
    return { ...this.#stats, backgroundCheckpoints: this.#background.checkpoints };
  }

  /**
   * The data file's connection, for the SQLite file store
   * (`server/files/sqlite.ts`) that keeps files in the same file. It must
   * run each of its writes as one synchronous transaction (never across an
   * `await`), so that it never interleaves with this store's commits, and
   * must not close it: {@link close} does.
   */
  get database(): DatabaseSync {
    if (this.#closed) throw closedError();
    return this.#db;
  }

  /** The data file's path (for messages about it). */
  get path(): string {
    return this.#path;
  }

  /**
   * Tells the store that data was removed from the file outside its own
   * writes (a file's bytes): the write-ahead log, which still holds the old
   * pages, is checkpointed and emptied soon, as after a delete (and at the
   * next {@link flush}).
   */
  removedData(): void {
    this.#checkpointSoon();
  }

  /**
   * Tells the store that a lot was written outside its own writes (a file's
   * chunks, written without a sync or a checkpoint of their own): the log is
   * copied into the file from another thread now (see {@link Checkpointer}).
   */
  grewLog(): void {
    if (!this.#closed) this.#background.request();
  }

  /**
   * Resolves once the log written so far is checkpointed from another thread
   * (see {@link Checkpointer.settle}): a FULL commit right after has little
   * left to sync, instead of waiting on the main thread for megabytes.
   */
  settleLog(): Promise<void> {
    return this.#closed ? Promise.resolve() : this.#background.settle();
  }

  get #retains(): boolean {
    return this.#retainDays !== undefined || this.#retainMessages !== undefined;
  }

  /**
   * Numbers and stamps the message now; resolves once its transaction has
   * committed. A reply is checked now against the file plus the queue (the
   * view changes are checked against): when its original is not kept, is
   * deleted or has changed since it was quoted, it rejects with
   * {@link ReplyChanged}, after what is queued (the caller's next read of the
   * original sees the change), and takes nothing. So does a `member` draft
   * whose sender is not in the room as the file plus the queue leave it,
   * with {@link RoomGone}.
   */
  append(draft: Draft): Promise<ChatMessage> {
    if (this.#closed) return Promise.reject(closedError());
    const refused = this.#goneCheck(draft) ?? this.#memberCheck(draft);
    if (refused) return refused;
    const reply = draft.replyTo;
    if (reply) {
      let original: Live | undefined;
      try {
        original = this.#liveOf(draft.conv, reply.id);
      } catch (err) {
        return Promise.reject(err);
      }
      if (!original || original.deleted || original.seq !== reply.seq) {
        const refused = new ReplyChanged(reply.id);
        return this.#after(null).then(() => Promise.reject(refused));
      }
    }
    const state = this.#state(draft.conv, true)!;
    this.#touch(draft.conv, state);
    const id = ++state.seq;
    state.newest = id;
    // Never backwards, so time order is id order (retention by age trims a prefix).
    this.#clock = Math.max(this.#clock, this.#now());
    const ts = this.#clock;
    const msg: ChatMessage = draft.room !== undefined
      ? { id, seq: id, room: draft.room, from: draft.from, text: draft.text, ts: iso(ts) }
      : { id, seq: id, to: draft.to, from: draft.from, text: draft.text, ts: iso(ts) };
    // The quote as sent, without the seq it was checked at.
    if (reply) msg.replyTo = { id: reply.id, from: reply.from, snippet: reply.snippet };
    const files = draft.files?.length ? draft.files.map(fileMeta) : undefined;
    if (files) msg.files = files;
    this.#live.set(liveKey(draft.conv, id), {
      from: draft.from,
      ts,
      seq: id,
      deleted: false,
      reactions: new Map(),
    });
    const recipient = draft.room === undefined ? draft.to ?? null : null;
    const pair = dmPair(draft.conv);
    const ref = draft.ref || null;
    const done = this.#write(() => {
      // In the op, not after the batch: a name released earlier in the batch unlisted the DM.
      if (pair && !this.#dmsListed.has(draft.conv)) {
        for (const u of pair) this.#sql.addDm.run(u, draft.conv);
        this.#dmsListed.add(draft.conv);
      }
      // A name released earlier in this transaction wiped the original with
      // its DM (the view checked at call time does not know): quote nothing of it.
      if (reply && this.#sql.liveRow.get(draft.conv, reply.id) === undefined) {
        msg.replyTo = { id: reply.id, from: reply.from, snippet: "", deleted: true };
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
        reply?.id ?? null,
        reply?.from ?? null,
        // NULL: the original is gone (its text must not live on here).
        msg.replyTo && !msg.replyTo.deleted ? msg.replyTo.snippet : null,
        searchable(draft.text, files),
        files ? JSON.stringify(files) : null,
      );
      this.#ran.added.set(draft.conv, (this.#ran.added.get(draft.conv) ?? 0) + 1);
      this.#ran.messages++;
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
   * A rejection with {@link RoomGone} (after what is queued) when `draft`
   * goes to the old name of a renamed room, or null.
   */
  #goneCheck(draft: Draft): Promise<never> | null {
    if (draft.room === undefined) return null;
    let state: ConvState | undefined;
    try {
      state = this.#state(draft.conv, false);
    } catch (err) {
      return Promise.reject(err);
    }
    if (state?.kept !== GONE) return null;
    const refused = new RoomGone(draft.room);
    return this.#after(null).then(() => Promise.reject(refused));
  }

  /**
   * A rejection with {@link RoomGone} (after what is queued) when `draft`
   * asks for a member (`member`) and its sender is not in its room once the
   * queue is written, or null.
   */
  #memberCheck(draft: Draft): Promise<never> | null {
    if (draft.member !== true || draft.room === undefined) return null;
    let member: boolean;
    try {
      member = this.#isMember(draft.room, draft.from);
    } catch (err) {
      return Promise.reject(err);
    }
    if (member) return null;
    const refused = new RoomGone(draft.room);
    return this.#after(null).then(() => Promise.reject(refused));
  }

  /**
   * Whether `user` is in `room` once the queue is written: the batch's last
   * join or leave of it, else the file. Joins and leaves are queued in call
   * order with the appends, so this is the membership at the append's turn.
   */
  #isMember(room: string, user: string): boolean {
    // A release in the batch takes its holder out of every room, but whether
    // it applies (the session, the time) is known only as it runs: write the
    // batch first, then ask the file. Releases are rare.
    if (this.#batchReleases.has(user.toLowerCase())) {
      const failed = this.#commit();
      if (failed) throw failed;
    }
    return this.#batchMembers.get(memberKey(room, user)) ??
      this.#sql.isMember.get(room, user) !== undefined;
  }

  /**
   * Appends unless the draft is a resend (see {@link Store.appendOnce}): the
   * sender's latest message with the ref is looked up among the batch being
   * built, then among the kept messages, and numbered in the same turn, so
   * no other write comes between. A resend of a message still in the batch
   * resolves once it committed. The `member` check is the append's: a
   * resend of a message stored while the sender was a member answers it even
   * after they left (it was stored; the client only lost its acknowledgement).
   */
  appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    if (this.#closed) return Promise.reject(closedError());
    // Before the resend check: a resend to a renamed room's old name is refused as a send is.
    const gone = this.#goneCheck(draft);
    if (gone) return gone;
    const fresh = () => this.append(draft).then((msg) => ({ msg, fresh: true }));
    if (!draft.ref) return fresh();
    const queued = this.#batchRefs.get(refKey(draft.from, draft.ref));
    if (queued) {
      return queued.conv === draft.conv && queued.text === draft.text
        ? queued.msg.then((msg) => ({ msg, fresh: false }))
        : fresh();
    }
    let row: Row | undefined;
    try {
      row = this.#sql.byRef.get(draft.from, draft.ref) as Row | undefined;
    } catch (err) {
      return Promise.reject(err);
    }
    // An edited or deleted message no longer has the text it was sent with:
    // its ref in the same conversation is enough (a resend must not bring a
    // deleted message back).
    if (
      row && row.conv === draft.conv &&
      (row.text === draft.text || row.edited !== null || row.deleted !== 0)
    ) {
      return this.#current([row]).then(([msg]) => ({ msg, fresh: false }));
    }
    return fresh();
  }

  /**
   * Checks and applies a change (see {@link Store.change}) against the file
   * plus the queue, now; gives it the conversation's next position and
   * queues its write, so it resolves in order with the appends around it.
   * Nothing to do and refusals resolve after what is queued already.
   */
  change(change: Change): Promise<ChangeResult> {
    if (this.#closed) return Promise.reject(closedError());
    const { conv, id, user } = change;
    let live: Live | undefined;
    try {
      live = this.#liveOf(conv, id);
    } catch (err) {
      return Promise.reject(err);
    }
    if (!live) return this.#after({ ok: false, refusal: "unknown_message" });
    // An admin's delete (`moderator`) checks neither the author nor the time.
    const moderator = change.kind === "delete" && change.moderator === true;
    if (change.kind !== "react" && !moderator && live.from !== user) {
      return this.#after({ ok: false, refusal: "forbidden" });
    }
    if (
      change.kind === "delete" && !moderator && change.sentAfter !== undefined &&
      live.ts < change.sentAfter
    ) {
      // Before the tombstone check: a message sent before `sentAfter` (an
      // earlier holder's of the name) is refused whatever its state.
      return this.#after({ ok: false, refusal: "too_late" });
    }
    if (live.deleted) {
      // Deleting a tombstone again changes nothing; there is nothing left to edit or react to.
      const result: ChangeResult = change.kind === "delete"
        ? { ok: true, applied: null }
        : { ok: false, refusal: "unknown_message" };
      return this.#after(result);
    }
    if (change.kind === "edit" && change.sentAfter !== undefined && live.ts < change.sentAfter) {
      return this.#after({ ok: false, refusal: "too_late" });
    }
    if (change.kind === "react") {
      const users = live.reactions.get(change.emoji);
      if ((users?.includes(user) ?? false) === change.on) {
        return this.#after({ ok: true, applied: null });
      }
      if (change.on) {
        let total = 0;
        for (const list of live.reactions.values()) total += list.length;
        if ((!users && live.reactions.size >= MAX_REACTIONS) || total >= MAX_REACTIONS_TOTAL) {
          return this.#after({ ok: false, refusal: "too_many_reactions" });
        }
      }
    }
    const state = this.#state(conv, true);
    this.#touch(conv, state);
    const seq = ++state.seq;
    // Every kind moves the message's position: a reply quoting it before is stale.
    live.seq = seq;
    let applied: Applied;
    let write: () => boolean;
    if (change.kind === "edit") {
      this.#clock = Math.max(this.#clock, this.#now());
      const at = Math.max(this.#clock, live.ts);
      applied = { kind: "edited", conv, id, seq, user, text: change.text, editedAt: iso(at) };
      const snippet = snippetOf(change.text);
      write = () => {
        if (
          this.#sql.edit.run(change.text, at, seq, conv, id, plainText(change.text)).changes === 0
        ) return false;
        // Replies store the new quote: once the original is dropped, they show the last text.
        this.#sql.requote.run(conv, id, snippet);
        return true;
      };
    } else if (change.kind === "delete") {
      live.deleted = true;
      live.reactions.clear();
      applied = { kind: "deleted", conv, id, seq, user, from: live.from, ts: iso(live.ts) };
      const removed = moderator && live.from !== user;
      if (removed) applied.removed = true;
      write = () => {
        if (this.#sql.erase.run(seq, conv, id, removed ? REMOVED : DELETED).changes === 0) {
          return false;
        }
        this.#sql.dropReactions.run(conv, id);
        // Replies keep no quote of it either.
        this.#sql.orphanReplies.run(conv, id);
        this.#ran.textGone = true;
        return true;
      };
    } else {
      const { emoji, on } = change;
      const users = live.reactions.get(emoji) ?? [];
      const now = on ? [...users, user] : users.filter((u) => u !== user);
      if (now.length > 0) live.reactions.set(emoji, now);
      else live.reactions.delete(emoji);
      applied = { kind: "reaction", conv, id, seq, user, emoji, on };
      write = () => {
        if (this.#sql.bump.run(seq, conv, id).changes === 0) return false;
        if (on) this.#sql.addReaction.run(conv, id, emoji, user, seq);
        else this.#sql.removeReaction.run(conv, id, emoji, user);
        return true;
      };
    }
    return this.#write((): ChangeResult => {
      if (!write()) {
        // Dropped in this transaction before its change (a released name's
        // DM): the position is spent, and readers before it have a gap.
        this.#ran.trimmed.set(conv, Math.max(this.#ran.trimmed.get(conv) ?? 0, seq));
        return { ok: false, refusal: "unknown_message" };
      }
      this.#ran.changes++;
      return { ok: true, applied };
    });
  }

  /** One committed message in its current state, or null. */
  message(conv: string, id: number): Promise<ChatMessage | null> {
    return this.#read(() => {
      const row = this.#sql.one.get(conv, id) as Row | undefined;
      return row ? this.#current([row]).then(([msg]) => msg) : null;
    });
  }

  /**
   * A page of committed history, in its current state: by position for
   * `since` (what was created or changed after it), else by id.
   */
  page(conv: string, query: PageQuery): Promise<Page> {
    return this.#read(() => {
      const state = this.#state(conv, false);
      if (!state) {
        // A reader at a position in a conversation that never had one: not this store's.
        const gap = query.since !== undefined && sinceGap(query.since, 0, 0);
        return { messages: [], more: false, gap, seq: 0 };
      }
      const limit = Math.max(0, query.limit);
      let rows: Row[], gap = false;
      const since = query.since;
      if (since !== undefined) {
        rows = this.#sql.since.all(conv, since, limit + 1) as unknown as Row[];
        gap = sinceGap(since, state.trimmed, state.durable);
      } else {
        const before = query.before ?? Number.MAX_SAFE_INTEGER;
        rows = this.#sql.before.all(conv, before, limit + 1) as unknown as Row[];
      }
      const more = rows.length > limit;
      if (more) rows.pop();
      if (since === undefined) rows.reverse();
      const seq = since !== undefined && more ? rows.at(-1)?.rev ?? since : state.durable;
      return this.#current(rows).then((messages) => ({ messages, more, gap, seq }));
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
      return this.#current(rows as unknown as Row[]);
    });
  }

  /** Every room with its member count, topic and settings, by name. */
  rooms(): Promise<RoomInfo[]> {
    return this.#read(() => {
      const out = this.#sql.rooms.all().map((r): RoomInfo => {
        const info = { name: String(r.name), members: Number(r.members) };
        return Object.assign(r.topic ? { ...info, topic: String(r.topic) } : info, settingsOf(r));
      });
      return out.sort((a, b) => a.name.localeCompare(b.name));
    });
  }

  /** Whether the room exists. */
  roomExists(room: string): Promise<boolean> {
    return this.#read(() => this.#sql.roomExists.get(room) !== undefined);
  }

  /** How many rooms there are (the rooms table alone: no member is counted). */
  roomCount(): Promise<number> {
    return this.#read(() => Number(this.#sql.roomCount.get()?.n ?? 0));
  }

  /**
   * Adds a member (creating the room, private when asked) in the next
   * commit; a room that exists keeps its settings (the insert is ignored).
   */
  join(user: string, room: string, create?: { private?: boolean }): Promise<JoinResult> {
    if (this.#closed) return Promise.reject(closedError());
    let state: ConvState | undefined;
    try {
      state = this.#state(room, false);
    } catch (err) {
      return Promise.reject(err);
    }
    if (state?.kept === GONE) {
      // The old name of a renamed room, created again by this join (renames
      // are never queued, so nothing else can create it first): sends to it
      // are taken from now on, in order after the join.
      state.kept = 0;
      this.#revived.add(room);
    }
    this.#batchMembers.set(memberKey(room, user), true);
    return this.#write(() => {
      const priv = create?.private ? 1 : 0;
      const created = this.#sql.createRoom.run(room, user, this.#now(), priv).changes > 0;
      if (created) this.#sql.revive.run(room);
      const added = this.#sql.addMember.run(room, user, this.#now()).changes > 0;
      if (added) this.#countMembers(room, 1);
      return { added, created, count: this.#membersIn(room) };
    });
  }

  /** Number of rooms the user created. */
  roomsCreatedBy(user: string): Promise<number> {
    return this.#read(() => Number(this.#sql.createdBy.get(user)?.n ?? 0));
  }

  /** Removes a member in the next commit; the room stays. */
  leave(user: string, room: string): Promise<boolean> {
    if (this.#closed) return Promise.reject(closedError());
    this.#batchMembers.set(memberKey(room, user), false);
    return this.#write(() => {
      const left = this.#sql.removeMember.run(room, user).changes > 0;
      if (left) this.#countMembers(room, -1);
      return left;
    });
  }

  /** Rooms of a user. */
  roomsOf(user: string): Promise<string[]> {
    return this.#read(() => this.#sql.roomsOf.all(user).map((r) => String(r.room)));
  }

  /** Members of a room. */
  members(room: string): Promise<string[]> {
    return this.#read(() => this.#sql.members.all(room).map((r) => String(r.member)));
  }

  /**
   * A page of a room's committed members after `after` (a range of the
   * primary key: the page's rows only) with its committed member count.
   */
  membersPage(room: string, after: string | undefined, limit: number): Promise<MembersPage> {
    return this.#read(() => {
      const rows = this.#sql.membersAfter.all(room, after ?? "", Math.max(0, limit));
      return { members: rows.map((r) => String(r.member)), count: this.#membersIn(room) };
    });
  }

  /** How many committed members a room has (counted once, then kept). */
  memberCount(room: string): Promise<number> {
    return this.#read(() => this.#membersIn(room));
  }

  /**
   * A room's member count as the file (inside a batch: plus the batch so
   * far) has it: counted at the first ask, then from {@link #memberCounts}.
   */
  #membersIn(room: string): number {
    let n = this.#memberCounts.get(room);
    if (n === undefined) {
      n = Number(this.#sql.countMembers.get(room)?.n ?? 0);
      this.#memberCounts.set(room, n);
    }
    return n;
  }

  /** Adds `delta` to a counted room's member count (an uncounted one is counted when asked). */
  #countMembers(room: string, delta: number): void {
    const n = this.#memberCounts.get(room);
    if (n !== undefined) this.#memberCounts.set(room, n + delta);
  }

  /** The room's committed topic, `""` for none. */
  topic(room: string): Promise<string> {
    return this.#read(() => String(this.#sql.topic.get(room)?.topic ?? ""));
  }

  /** Sets or clears a room's topic in the next commit; false when unchanged or no such room. */
  setTopic(room: string, topic: string): Promise<boolean> {
    return this.#write(() => this.#sql.setTopic.run(room, topic).changes > 0);
  }

  /** The room's committed settings, null when no such room. */
  roomSettings(room: string): Promise<RoomSettings | null> {
    return this.#read(() => {
      const row = this.#sql.roomSettings.get(room);
      return row ? settingsOf(row) : null;
    });
  }

  /**
   * Sets and clears the room's flags in the next commit, in one statement;
   * null (and no room created) when no such room.
   */
  setRoomSettings(room: string, change: RoomSettingsChange): Promise<RoomSettings | null> {
    const flag = (on: boolean | undefined) => on === undefined ? null : on ? 1 : 0;
    return this.#write(() => {
      const row = this.#sql.setRoomSettings.get(
        room,
        flag(change.private),
        flag(change.readOnly),
        flag(change.archived),
        flag(change.autoJoin),
        flag(change.restrictRoomMentions),
      );
      return row ? settingsOf(row) : null;
    });
  }

  /**
   * Renames a room (see {@link Store.renameRoom}). Not queued: the queue is
   * committed first, so every message numbered before the rename is in the
   * file and moves with the room, then the rename runs in a transaction of
   * its own, now. Durable when it resolves, and every append numbered after
   * it finds the old name gone (its counters say so, see {@link GONE}).
   * Messages, reactions, members, every user's read marker and the room's
   * row (topic, settings, creator) change name in place; the search index
   * follows the rows (it is keyed by `seq`, which stays).
   */
  renameRoom(room: string, to: string): Promise<RenameResult> {
    if (this.#closed) return Promise.reject(closedError());
    const failed = this.#commit();
    if (failed) return Promise.reject(failed);
    let done: RenameResult | { moved: ConvState; left: ConvState };
    try {
      done = immediate(this.#db, () => this.#renameRows(room, to));
    } catch (err) {
      return Promise.reject(
        new Error(`Cannot save to data file "${this.#path}": ${(err as Error).message}`),
      );
    }
    if (typeof done === "string") return Promise.resolve(done);
    // Committed: the counters in memory follow. The new name's members
    // were dropped, then the room's moved in.
    const members = this.#memberCounts.get(room);
    this.#memberCounts.set(room, 0);
    if (members === undefined) this.#memberCounts.delete(to);
    else this.#memberCounts.set(to, members);
    this.#convs.set(to, done.moved);
    this.#convs.set(room, done.left);
    if (this.#over.delete(room)) this.#over.add(to);
    this.#live.clear();
    return Promise.resolve("renamed");
  }

  /**
   * The rename's writes, in the caller's transaction: the refusals, or the
   * counters of the new name (merged with any the name had: the old name of
   * a room renamed before) and of the old one, one position past the room's
   * with every earlier position trimmed.
   */
  #renameRows(room: string, to: string): RenameResult | { moved: ConvState; left: ConvState } {
    const sql = this.#sql;
    if (sql.roomExists.get(room) === undefined) return "unknown";
    // A conversation of the name with messages but no room (written without
    // a join, which the hub never does) is not overwritten either.
    if (sql.roomExists.get(to) !== undefined || sql.anyMessage.get(to) !== undefined) {
      return "taken";
    }
    const old = this.#state(room, true);
    const prior = this.#state(to, false);
    const seq = Math.max(old.seq, prior?.seq ?? 0);
    const moved: ConvState = {
      seq,
      durable: seq,
      newest: Math.max(old.newest, prior?.newest ?? 0),
      trimmed: Math.max(old.trimmed, prior?.trimmed ?? 0),
      kept: Math.max(0, old.kept),
    };
    const left: ConvState = {
      seq: seq + 1,
      durable: seq + 1,
      newest: old.newest,
      trimmed: seq + 1,
      kept: GONE,
    };
    // What the new name holds without a room (stray markers, members, reactions) is not the room's.
    sql.dropConvReactions.run(to);
    sql.unreadConv.run(to);
    sql.dropMembers.run(to);
    sql.moveMessages.run(room, to);
    sql.moveReactions.run(room, to);
    sql.moveReads.run(room, to);
    sql.moveMembers.run(room, to);
    sql.renameRoom.run(room, to);
    for (const [conv, s] of [[to, moved], [room, left]] as const) {
      sql.putConv.run(conv, s.seq, s.newest, s.kept, s.trimmed);
    }
    sql.addRename.run(room, to, this.#now());
    sql.trimRenames.run(RENAMES_KEPT);
    return { moved, left };
  }

  /** The latest committed renames, newest first. */
  recentRenames(limit: number): Promise<Rename[]> {
    return this.#read(() =>
      this.#sql.recentRenames.all(Math.max(0, limit)).map((r) => ({
        room: String(r.room),
        name: String(r.name),
        at: Number(r.at),
      }))
    );
  }

  /**
   * The user's rooms and DMs with committed newest ids, positions, read
   * markers and unread counts (each stops counting at `UNREAD_CAP`).
   */
  conversations(user: string): Promise<Conversation[]> {
    return this.#read(() => {
      const out: Conversation[] = [];
      const numbers = (r: Record<string, unknown>) => ({
        last: Number(r.last),
        read: Number(r.read),
        seq: Number(r.seq),
        unread: Number(r.unread),
      });
      for (const r of this.#sql.roomConvs.all(user, UNREAD_CAP, UNREAD_SCAN)) {
        out.push({ room: String(r.conv), ...numbers(r) });
      }
      for (const r of this.#sql.dmConvs.all(user, UNREAD_CAP, UNREAD_SCAN)) {
        const [a, b] = dmPair(String(r.conv))!;
        out.push({ to: a === user ? b : a, ...numbers(r) });
      }
      return out;
    });
  }

  /** Moves a read marker forward (up to the newest id given out) in the next commit. */
  setRead(user: string, conv: string, id: number): Promise<number> {
    if (this.#closed) return Promise.reject(closedError());
    const last = this.#state(conv, false)?.newest ?? 0;
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
        this.#sql.addClaim.run(folded, name, session, now, now);
        return { ok: true, claim: { name, session, seen: now, since: now } };
      }
      const held = toClaim(row);
      if (held.session !== session) return { ok: false, claim: held };
      this.#sql.touchClaim.run(folded, now);
      return { ok: true, claim: { ...held, seen: now } };
    });
  }

  /**
   * Releases a name held by `session` and, in the same transaction, deletes
   * its DMs (their rows and reactions; the rows leave the search index by
   * trigger; `convs` keeps the counters, so ids continue, and the counter
   * becomes the watermark), their read markers, its own markers, its
   * memberships, its last-seen time, its sessions and its `users` row.
   */
  releaseName(name: string, session: string, seenBefore?: number): Promise<string[] | null> {
    const folded = name.toLowerCase();
    if (this.#closed) return Promise.reject(closedError());
    this.#batchReleases.add(folded);
    return this.#write(() => {
      const row = this.#sql.claim.get(folded);
      if (row === undefined || String(row.session) !== session) return null;
      if (seenBefore !== undefined && Number(row.seen) >= seenBefore) return null;
      const user = String(row.name);
      this.#sql.deleteClaim.run(folded);
      this.#sql.forgetSeen.run(folded);
      this.#sql.forgetSessions.run(folded);
      this.#sql.forgetCreator.run(user);
      for (const r of this.#sql.dmsOf.all(user)) {
        const conv = String(r.conv);
        const [a, b] = dmPair(conv)!;
        // The counter as of this op: what is committed, and what the batch wrote before it.
        const top = Number(this.#sql.wipeTop.get(conv)?.top ?? 0);
        if (this.#sql.deleteConv.run(conv).changes > 0) this.#ran.textGone = true;
        this.#sql.dropConvReactions.run(conv);
        this.#sql.wipeConv.run(conv, top);
        this.#ran.trimmed.set(conv, Math.max(this.#ran.trimmed.get(conv) ?? 0, top));
        this.#ran.emptied.add(conv);
        this.#ran.added.delete(conv);
        this.#sql.unlistDm.run(a, b, conv);
        this.#sql.unreadDm.run(a, b, conv);
        this.#dmsListed.delete(conv);
      }
      this.#sql.unreadAll.run(user);
      const rooms = this.#sql.leaveAll.all(user).map((r) => String(r.room)).sort();
      for (const room of rooms) this.#countMembers(room, -1);
      this.#sql.forgetUser.run(user);
      this.#sql.forgetRefs.run(user);
      this.#users.delete(user);
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
   * Records a sign-in in the next commit, dropping the user's least recently
   * seen sessions past {@link SESSIONS_KEPT}.
   */
  noteSession(user: string, session: string, seen: number): Promise<void> {
    const folded = user.toLowerCase();
    return this.#write(() => {
      this.#sql.noteSession.run(folded, session, seen);
      this.#sql.trimSessions.run(folded, SESSIONS_KEPT);
    });
  }

  /** Committed sessions of the users seen since `since` and not revoked at `now`, in one query. */
  sessions(
    users: readonly string[],
    since: number,
    now: number,
  ): Promise<Map<string, SessionSeen[]>> {
    return this.#read(() => {
      const out = new Map<string, SessionSeen[]>();
      if (users.length === 0) return out;
      const folded = users.map((u) => u.toLowerCase());
      const found = new Map<string, SessionSeen[]>();
      for (const r of this.#sql.sessions.all(JSON.stringify(folded), since, now)) {
        const key = String(r.folded);
        const list = found.get(key) ?? [];
        found.set(key, list);
        list.push({ session: String(r.session), seen: Number(r.seen) });
      }
      users.forEach((user, i) => {
        const list = found.get(folded[i]);
        if (list) out.set(user, list.map((s) => ({ ...s })));
      });
      return out;
    });
  }

  /** Forgets the user's sessions in the next commit. */
  forgetSessions(user: string): Promise<void> {
    const folded = user.toLowerCase();
    return this.#write(() => {
      this.#sql.forgetSessions.run(folded);
    });
  }

  /**
   * Commits the queue now, then lets retention catch up, so that what the
   * caller reads next is settled. Rejects if the commit failed.
   */
  async flush(): Promise<void> {
    const err = this.#commit();
    if (err) throw err;
    if (this.#retains && !this.#closed) {
      clearTimeout(this.#sweepTimer);
      this.#sweepTimer = undefined;
      await this.#sweeping;
      await this.#startSweep();
    }
    if (this.#checkpointTimer !== undefined) this.#checkpoint();
  }

  /** Commits what is queued, stops retention and closes the file. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#sweepTimer);
    clearInterval(this.#sweepInterval);
    // Closing the last connection checkpoints and removes the log anyway.
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    this.#commit();
    await this.#sweeping;
    // Before the main connection closes: it must be the last, to remove the log.
    if (!await this.#background.close()) {
      // The worker's connection may still be open: empty the log from here,
      // so that the data file alone is the whole state, as a backup expects.
      this.#log?.warn(`The checkpoint thread of "${this.#path}" did not stop in time`);
      try {
        this.#db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
      } catch (err) {
        this.#log?.warn(`Checkpoint of "${this.#path}" failed: ${(err as Error).message}`);
      }
    }
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
  #read<T>(run: () => T | Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(closedError());
    try {
      return Promise.resolve(run());
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Resolves `value` after what is queued (so a refusal or a no-op does not
   * overtake the writes asked for before it), or now when nothing is.
   */
  #after<T>(value: T): Promise<T> {
    return this.#queue.length > 0 ? this.#write(() => value) : Promise.resolve(value);
  }

  /** Records a conversation's counters before the batch being built first touches them. */
  #touch(conv: string, state: ConvState): void {
    if (!this.#batchFirst.has(conv)) {
      this.#batchFirst.set(conv, { seq: state.seq, newest: state.newest });
    }
  }

  /** A message as the file plus the queue leave it, or undefined when not kept. */
  #liveOf(conv: string, id: number): Live | undefined {
    const key = liveKey(conv, id);
    const known = this.#live.get(key);
    if (known) return known;
    const row = this.#sql.liveRow.get(conv, id);
    if (!row) return undefined;
    const reactions = new Map<string, string[]>();
    for (const r of this.#sql.reactionsOf.all(conv, id)) {
      const emoji = String(r.emoji);
      const users = reactions.get(emoji);
      if (users) users.push(String(r.member));
      else reactions.set(emoji, [String(r.member)]);
    }
    const live = {
      from: String(row.sender),
      ts: Number(row.ts),
      seq: Number(row.rev),
      deleted: row.deleted !== 0,
      reactions,
    };
    this.#live.set(key, live);
    return live;
  }

  /**
   * Rows as messages in their current state: reactions (one query for all)
   * and replies refreshed from their originals (one query for all). Reads
   * synchronously, so the rows and what decorates them are one snapshot.
   */
  #current(rows: Row[]): Promise<ChatMessage[]> {
    const msgs = rows.map(toMessage);
    if (msgs.length === 0) return Promise.resolve(msgs);
    const byKey = new Map(msgs.map((m, i) => [liveKey(rows[i].conv, m.id), m]));
    const live = rows.filter((r) => r.deleted === 0).map((r) => [r.conv, r.id]);
    if (live.length > 0) {
      for (const r of this.#sql.reactionsIn.all(JSON.stringify(live))) {
        const m = byKey.get(liveKey(String(r.conv), Number(r.id)));
        if (!m) continue;
        const reactions = m.reactions ??= {};
        (reactions[String(r.emoji)] ??= []).push(String(r.member));
      }
    }
    const asked = rows.flatMap((r) => r.reply_to !== null ? [[r.conv, r.reply_to]] : []);
    if (asked.length === 0) return Promise.resolve(msgs);
    const originals = new Map<string, ChatMessage>();
    for (const o of this.#sql.messagesIn.all(JSON.stringify(asked)) as unknown as Row[]) {
      originals.set(liveKey(o.conv, o.id), toMessage(o));
    }
    // refreshReplies works on one conversation: split by it, keep the order.
    const groups = new Map<string, number[]>();
    rows.forEach((r, i) => {
      if (r.reply_to === null) return;
      const group = groups.get(r.conv);
      if (group) group.push(i);
      else groups.set(r.conv, [i]);
    });
    const out = [...msgs];
    const done = [...groups].map(([conv, at]) =>
      refreshReplies(at.map((i) => msgs[i]), (ids) => {
        const found = new Map<number, ChatMessage>();
        for (const id of ids) {
          const o = originals.get(liveKey(conv, id));
          if (o) found.set(id, o);
        }
        return found;
      }).then((fresh) => fresh.forEach((m, j) => (out[at[j]] = m)))
    );
    return Promise.all(done).then(() => out);
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
    this.#batchMembers.clear();
    this.#batchReleases.clear();
    this.#live.clear();
    const ran = this.#ran = newRan();
    const results: unknown[] = [];
    const db = this.#db;
    this.#dmsListed.clear();
    const revived = this.#revived;
    this.#revived = new Set();
    try {
      db.exec("BEGIN IMMEDIATE");
      for (const op of ops) results.push(op.run());
      for (const conv of firsts.keys()) {
        const s = this.#convs.get(conv)!;
        this.#sql.setConv.run(
          conv,
          s.seq,
          s.newest,
          ran.added.get(conv) ?? 0,
          ran.trimmed.get(conv) ?? 0,
        );
      }
      db.exec("COMMIT");
    } catch (err) {
      rollback(db);
      // The ops updated the caches of known users and member counts as they ran.
      this.#users.clear();
      this.#memberCounts.clear();
      // Nothing of the batch was kept or delivered: give its positions out again.
      for (const [conv, first] of firsts) {
        const s = this.#convs.get(conv)!;
        s.seq = first.seq;
        s.newest = first.newest;
      }
      // Their joins were not kept: the old names are still gone.
      for (const conv of revived) {
        const s = this.#convs.get(conv);
        if (s) s.kept = GONE;
      }
      const error = new Error(
        `Cannot save to data file "${this.#path}": ${(err as Error).message}`,
      );
      for (const op of ops) op.reject(error);
      return error;
    }
    this.#stats.commits++;
    this.#stats.messages += ran.messages;
    this.#stats.changes += ran.changes;
    for (const conv of ran.emptied) {
      const s = this.#convs.get(conv);
      if (s) s.kept = 0;
    }
    for (const [conv, top] of ran.trimmed) {
      const s = this.#convs.get(conv);
      if (s) s.trimmed = Math.max(s.trimmed, top);
    }
    for (const [conv] of firsts) {
      const s = this.#convs.get(conv)!;
      s.durable = s.seq;
      s.kept += ran.added.get(conv) ?? 0;
      if (this.#retainMessages !== undefined && s.kept > this.#retainMessages) {
        this.#over.add(conv);
      }
    }
    for (let i = 0; i < ops.length; i++) ops[i].resolve(results[i]);
    if (this.#over.size > 0) this.#sweepSoon(this.#retentionDelay);
    if (ran.textGone) this.#checkpointSoon();
    return null;
  }

  #checkpointSoon(): void {
    if (this.#closed || this.#checkpointTimer !== undefined) return;
    this.#checkpointTimer = setTimeout(() => this.#checkpoint(), this.#checkpointDelay);
  }

  /**
   * Copies the log into the file and empties it, so that removed text no
   * longer sits in old log frames. Never waits: a reader that holds an old
   * snapshot (`chat export`) makes it try again later.
   */
  #checkpoint(): void {
    clearTimeout(this.#checkpointTimer);
    this.#checkpointTimer = undefined;
    if (this.#closed) return;
    let busy = false;
    try {
      this.#db.exec("PRAGMA busy_timeout = 0");
      busy = Number(this.#db.prepare("PRAGMA wal_checkpoint(TRUNCATE)").get()?.busy ?? 0) !== 0;
    } catch (err) {
      busy = true;
      this.#log?.warn(`Checkpoint of "${this.#path}" failed: ${(err as Error).message}`);
    } finally {
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT}`);
    }
    if (busy) this.#checkpointSoon();
  }

  #state(conv: string, create: true): ConvState;
  #state(conv: string, create: false): ConvState | undefined;
  #state(conv: string, create: boolean): ConvState | undefined {
    let s = this.#convs.get(conv);
    if (s) return s;
    const row = this.#sql.conv.get(conv);
    if (row) s = convState(row);
    else if (create) s = { seq: 0, durable: 0, newest: 0, trimmed: 0, kept: 0 };
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

  /**
   * Deletes up to one batch of expired messages (with their reactions; the
   * watermark becomes the highest position of what went); resolves whether
   * more may be left.
   */
  #sweepBatch(): boolean {
    // Changes in the queue were checked against rows this may delete: commit them first.
    if (this.#commit() !== null) return false;
    this.#live.clear();
    let budget = this.#retentionBatch;
    let deleted = 0;
    const db = this.#db;
    /** New watermarks and messages gone per conversation, for memory once committed. */
    const trimmed = new Map<string, number>();
    const gone = new Map<string, number>();
    /** Conversations whose `kept` turned out wrong: counted again. */
    const recount = new Map<string, number>();
    const drop = (conv: string, rev: number) => {
      trimmed.set(conv, Math.max(trimmed.get(conv) ?? 0, rev));
      gone.set(conv, (gone.get(conv) ?? 0) + 1);
    };
    db.exec("BEGIN IMMEDIATE");
    try {
      const limit = this.#retainMessages;
      if (limit !== undefined) {
        for (const conv of this.#over) {
          const s = this.#convs.get(conv)!;
          const n = Math.min(s.kept - limit, budget);
          if (n <= 0) continue;
          const rows = this.#sql.trimOldest.all(conv, n);
          let top = 0;
          for (const r of rows) {
            drop(conv, Number(r.rev));
            top = Math.max(top, Number(r.id));
          }
          // The oldest by id went: every reaction up to the newest of them was theirs.
          if (rows.length > 0) this.#sql.dropReactionsTo.run(conv, top);
          if (rows.length < n) {
            recount.set(conv, Number(this.#sql.countConv.get(conv)?.n ?? 0));
          }
          deleted += rows.length;
          budget -= rows.length;
          if (budget <= 0) break;
        }
      }
      if (this.#retainDays !== undefined && budget > 0) {
        const cutoff = this.#now() - this.#retainDays * DAY;
        const old = this.#sql.expired.all(cutoff, budget);
        for (const r of old) {
          const conv = String(r.conv);
          this.#sql.deleteSeq.run(r.seq as number);
          this.#sql.dropReactions.run(conv, r.id as number);
          drop(conv, Number(r.rev));
        }
        deleted += old.length;
        budget -= old.length;
      }
      for (const [conv, top] of trimmed) this.#sql.shrink.run(conv, gone.get(conv)!, top);
      for (const [conv, n] of recount) this.#sql.setKept.run(conv, n);
      db.exec("COMMIT");
    } catch (err) {
      rollback(db);
      throw err;
    }
    this.#stats.deleted += deleted;
    for (const [conv, top] of trimmed) {
      const s = this.#convs.get(conv);
      if (!s) continue;
      s.trimmed = Math.max(s.trimmed, top);
      s.kept = recount.get(conv) ?? s.kept - gone.get(conv)!;
    }
    if (this.#retainMessages !== undefined) {
      for (const conv of this.#over) {
        const s = this.#convs.get(conv)!;
        if (s.kept <= this.#retainMessages!) this.#over.delete(conv);
      }
    }
    if (deleted > 0) this.#checkpointSoon();
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

/** A membership's key in the batch's view of memberships. */
function memberKey(room: string, user: string): string {
  return `${room}\n${user}`;
}

/** A message's key in the batch's view of messages. */
function liveKey(conv: string, id: number): string {
  return `${conv}\n${id}`;
}

/** The `busy_timeout` the data file is opened with (ms). */
const BUSY_TIMEOUT = 5000;

function convState(r: Record<string, unknown>): ConvState {
  const seq = Number(r.last);
  return {
    seq,
    durable: seq,
    newest: Number(r.newest),
    trimmed: Number(r.trimmed),
    kept: Number(r.kept),
  };
}

function closedError(): Error {
  return new Error("The data file is closed");
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function toClaim(r: Record<string, unknown>): NameClaim {
  return {
    name: String(r.name),
    session: String(r.session),
    seen: Number(r.seen),
    since: Number(r.since),
  };
}

/** Whether the write-ahead log of the data file at `path` exists and is not empty. */
function hasLog(path: string): boolean {
  try {
    return Deno.statSync(`${path}-wal`).size > 0;
  } catch {
    return false;
  }
}

/** A room row's 0/1 flag columns as {@link RoomSettings} (flags that are off left out). */
function settingsOf(r: Record<string, unknown>): RoomSettings {
  const out: RoomSettings = {};
  if (Number(r.private) === 1) out.private = true;
  if (Number(r.read_only) === 1) out.readOnly = true;
  if (Number(r.archived) === 1) out.archived = true;
  if (Number(r.auto_join) === 1) out.autoJoin = true;
  if (Number(r.room_mentions) === 1) out.restrictRoomMentions = true;
  return out;
}

/** A row as a message in its stored state (reactions and reply refresh are added by reads). */
function toMessage(r: Row): ChatMessage {
  const ts = iso(Number(r.ts));
  const id = Number(r.id), seq = Number(r.rev);
  const msg: ChatMessage = r.room !== null
    ? { id, seq, room: r.room, from: r.sender, text: r.text, ts }
    : { id, seq, to: r.recipient ?? undefined, from: r.sender, text: r.text, ts };
  if (r.deleted !== 0) {
    msg.text = "";
    msg.deleted = true;
    if (r.deleted === REMOVED) msg.removed = true;
    return msg;
  }
  if (r.edited !== null) msg.edited = iso(Math.max(Number(r.edited), Number(r.ts)));
  if (r.reply_to !== null) {
    const reply: ReplyRef = { id: Number(r.reply_to), from: r.reply_from ?? "", snippet: "" };
    if (r.reply_snippet === null) reply.deleted = true;
    else reply.snippet = r.reply_snippet;
    msg.replyTo = reply;
  }
  if (r.files !== null) msg.files = JSON.parse(r.files) as FileMeta[];
  return msg;
}

/** A file as a message keeps it: only the fields of {@link FileMeta}, in their order. */
function fileMeta(f: FileMeta): FileMeta {
  const meta: FileMeta = { id: f.id, name: f.name, size: f.size, type: f.type };
  if (f.width !== undefined) meta.width = f.width;
  if (f.height !== undefined) meta.height = f.height;
  return meta;
}

const COLUMN_NAMES = [
  "conv",
  "id",
  "rev",
  "room",
  "recipient",
  "sender",
  "text",
  "ts",
  "edited",
  "deleted",
  "reply_to",
  "reply_from",
  "reply_snippet",
  "files",
];
const COLUMNS = COLUMN_NAMES.join(", ");
/** A JSON array of `[conv, id]` pairs as rows (for `(conv, id) IN (…)`). */
const PAIRS = "SELECT value ->> 0, value ->> 1 FROM json_each(?)";

function statements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    insert: p(
      `INSERT INTO messages (conv, id, rev, room, recipient, sender, text, ts, ref,
         reply_to, reply_from, reply_snippet, plain, files)
       VALUES (?1, ?2, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)`,
    ),
    one: p(`SELECT ${COLUMNS} FROM messages WHERE conv = ? AND id = ?`),
    messagesIn: p(`SELECT ${COLUMNS} FROM messages WHERE (conv, id) IN (${PAIRS})`),
    liveRow: p("SELECT sender, ts, rev, deleted FROM messages WHERE conv = ? AND id = ?"),
    reactionsOf: p(
      "SELECT emoji, member FROM reactions WHERE conv = ? AND id = ? ORDER BY emoji_ord, ord",
    ),
    reactionsIn: p(
      `SELECT conv, id, emoji, member FROM reactions WHERE (conv, id) IN (${PAIRS}) ORDER BY emoji_ord, ord`,
    ),
    // What is searched keeps the names of the message's files (see searchable()).
    edit: p(
      `UPDATE messages SET text = ?1, edited = ?2, rev = ?3,
         plain = ltrim(?6 || coalesce(
           (SELECT ' ' || group_concat(value ->> '$.name', ' ') FROM json_each(messages.files)), ''))
       WHERE conv = ?4 AND id = ?5 AND deleted = 0`,
    ),
    // The text becomes '' (the update trigger takes its words out of the index);
    // the files go with it (the file store removes their bytes).
    erase: p(
      `UPDATE messages SET text = '', plain = '', edited = NULL, deleted = ?4, rev = ?1,
         reply_to = NULL, reply_from = NULL, reply_snippet = NULL, files = NULL
       WHERE conv = ?2 AND id = ?3`,
    ),
    orphanReplies: p(
      "UPDATE messages SET reply_snippet = NULL WHERE conv = ? AND reply_to = ?",
    ),
    // Through messages_by_reply; a deleted reply has no reply_to any more.
    requote: p("UPDATE messages SET reply_snippet = ?3 WHERE conv = ?1 AND reply_to = ?2"),
    bump: p("UPDATE messages SET rev = ?1 WHERE conv = ?2 AND id = ?3 AND deleted = 0"),
    // An emoji keeps its place among the message's while anyone still has it.
    addReaction: p(
      `INSERT OR IGNORE INTO reactions (conv, id, emoji, member, ord, emoji_ord)
       VALUES (?1, ?2, ?3, ?4, ?5, coalesce((SELECT min(emoji_ord) FROM reactions
         WHERE conv = ?1 AND id = ?2 AND emoji = ?3), ?5))`,
    ),
    removeReaction: p(
      "DELETE FROM reactions WHERE conv = ? AND id = ? AND emoji = ? AND member = ?",
    ),
    dropReactions: p("DELETE FROM reactions WHERE conv = ? AND id = ?"),
    dropReactionsTo: p("DELETE FROM reactions WHERE conv = ? AND id <= ?"),
    dropConvReactions: p("DELETE FROM reactions WHERE conv = ?"),
    byRef: p(
      `SELECT ${COLUMNS} FROM messages WHERE sender = ? AND ref = ?
       ORDER BY seq DESC LIMIT 1`,
    ),
    forgetRefs: p("UPDATE messages SET ref = NULL WHERE sender = ? AND ref IS NOT NULL"),
    conv: p("SELECT last, trimmed, newest, kept FROM convs WHERE conv = ?"),
    // `kept` grows by what the batch inserted (after a wipe of it in the batch).
    setConv: p(
      `INSERT INTO convs (conv, last, newest, kept, trimmed) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (conv) DO UPDATE SET last = max(last, excluded.last),
         newest = max(newest, excluded.newest), kept = kept + excluded.kept,
         trimmed = max(trimmed, excluded.trimmed)`,
    ),
    shrink: p(
      "UPDATE convs SET kept = max(0, kept - ?2), trimmed = max(trimmed, ?3) WHERE conv = ?1",
    ),
    setKept: p("UPDATE convs SET kept = ?2 WHERE conv = ?1"),
    putConv: p(
      `INSERT INTO convs (conv, last, newest, kept, trimmed) VALUES (?1, ?2, ?3, ?4, ?5)
       ON CONFLICT (conv) DO UPDATE SET last = excluded.last, newest = excluded.newest,
         kept = excluded.kept, trimmed = excluded.trimmed`,
    ),
    revive: p(`UPDATE convs SET kept = 0 WHERE conv = ? AND kept = ${GONE}`),
    anyMessage: p("SELECT 1 FROM messages WHERE conv = ? LIMIT 1"),
    moveMessages: p("UPDATE messages SET conv = ?2, room = ?2 WHERE conv = ?1"),
    moveReactions: p("UPDATE reactions SET conv = ?2 WHERE conv = ?1"),
    moveReads: p("UPDATE reads SET conv = ?2 WHERE conv = ?1"),
    unreadConv: p("DELETE FROM reads WHERE conv = ?"),
    moveMembers: p("UPDATE members SET room = ?2 WHERE room = ?1"),
    dropMembers: p("DELETE FROM members WHERE room = ?"),
    renameRoom: p("UPDATE rooms SET name = ?2 WHERE name = ?1"),
    countConv: p("SELECT count(*) AS n FROM messages WHERE conv = ?"),
    wipeConv: p("UPDATE convs SET kept = 0, trimmed = max(trimmed, ?2) WHERE conv = ?1"),
    overLimit: p("SELECT conv, last, trimmed, newest, kept FROM convs WHERE kept > ?"),
    addDm: p("INSERT OR IGNORE INTO dm_members (member, conv) VALUES (?, ?)"),
    dmsOf: p("SELECT conv FROM dm_members WHERE member = ?"),
    since: p(`SELECT ${COLUMNS} FROM messages WHERE conv = ? AND rev > ? ORDER BY rev LIMIT ?`),
    before: p(
      `SELECT ${COLUMNS} FROM messages WHERE conv = ? AND id < ? ORDER BY id DESC LIMIT ?`,
    ),
    search: p(
      `SELECT ${COLUMN_NAMES.map((c) => `m.${c}`).join(", ")}
       FROM messages_fts JOIN messages AS m ON m.seq = messages_fts.rowid
       WHERE messages_fts MATCH ?1 AND m.conv IN (SELECT value FROM json_each(?2))
         AND m.deleted = 0
       ORDER BY messages_fts.rowid DESC LIMIT ?3`,
    ),
    rooms: p(
      `SELECT r.name, r.topic, r.private, r.read_only, r.archived, r.auto_join, r.room_mentions,
         (SELECT count(*) FROM members AS m WHERE m.room = r.name) AS members
       FROM rooms AS r`,
    ),
    roomSettings: p(
      "SELECT private, read_only, archived, auto_join, room_mentions FROM rooms WHERE name = ?",
    ),
    // A NULL flag stays as it is.
    setRoomSettings: p(
      `UPDATE rooms SET private = coalesce(?2, private), read_only = coalesce(?3, read_only),
         archived = coalesce(?4, archived), auto_join = coalesce(?5, auto_join),
         room_mentions = coalesce(?6, room_mentions)
       WHERE name = ?1 RETURNING private, read_only, archived, auto_join, room_mentions`,
    ),
    topic: p("SELECT topic FROM rooms WHERE name = ?"),
    setTopic: p("UPDATE rooms SET topic = ?2 WHERE name = ?1 AND topic <> ?2"),
    roomExists: p("SELECT 1 FROM rooms WHERE name = ?"),
    roomCount: p("SELECT count(*) AS n FROM rooms"),
    createRoom: p(
      "INSERT OR IGNORE INTO rooms (name, creator, created, private) VALUES (?, ?, ?, ?)",
    ),
    createdBy: p("SELECT count(*) AS n FROM rooms WHERE creator = ?"),
    addMember: p("INSERT OR IGNORE INTO members (room, member, joined) VALUES (?, ?, ?)"),
    removeMember: p("DELETE FROM members WHERE room = ? AND member = ?"),
    roomsOf: p("SELECT room FROM members WHERE member = ? ORDER BY room"),
    members: p("SELECT member FROM members WHERE room = ? ORDER BY member"),
    membersAfter: p(
      "SELECT member FROM members WHERE room = ? AND member > ? ORDER BY member LIMIT ?",
    ),
    countMembers: p("SELECT count(*) AS n FROM members WHERE room = ?"),
    isMember: p("SELECT 1 FROM members WHERE room = ? AND member = ?"),
    // Unread: others' kept messages after the marker, not deleted; the LIMIT ?2 stops the
    // count, and it looks at the newest ?3 messages after the marker only, so a reader far
    // behind in a conversation full of tombstones or of its own messages costs no more.
    roomConvs: p(
      `SELECT m.room AS conv, coalesce(c.newest, 0) AS last, coalesce(c.last, 0) AS seq,
         coalesce(r.id, 0) AS read,
         (SELECT count(*) FROM (SELECT 1 FROM (SELECT x.deleted, x.sender FROM messages AS x
             WHERE x.conv = m.room AND x.id > coalesce(r.id, 0) ORDER BY x.id DESC LIMIT ?3)
           WHERE deleted = 0 AND sender <> ?1 LIMIT ?2)) AS unread
       FROM members AS m
       LEFT JOIN convs AS c ON c.conv = m.room
       LEFT JOIN reads AS r ON r.member = m.member AND r.conv = m.room
       WHERE m.member = ?1 ORDER BY m.room`,
    ),
    dmConvs: p(
      `SELECT d.conv, coalesce(c.newest, 0) AS last, coalesce(c.last, 0) AS seq,
         coalesce(r.id, 0) AS read,
         (SELECT count(*) FROM (SELECT 1 FROM (SELECT x.deleted, x.sender FROM messages AS x
             WHERE x.conv = d.conv AND x.id > coalesce(r.id, 0) ORDER BY x.id DESC LIMIT ?3)
           WHERE deleted = 0 AND sender <> ?1 LIMIT ?2)) AS unread
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
    trimOldest: p(
      `DELETE FROM messages WHERE seq IN
         (SELECT seq FROM messages WHERE conv = ?1 ORDER BY id LIMIT ?2)
       RETURNING id, rev`,
    ),
    claim: p("SELECT name, session, seen, since FROM claims WHERE folded = ?"),
    addClaim: p("INSERT INTO claims (folded, name, session, seen, since) VALUES (?, ?, ?, ?, ?)"),
    touchClaim: p("UPDATE claims SET seen = ?2 WHERE folded = ?1"),
    deleteClaim: p("DELETE FROM claims WHERE folded = ?"),
    forgetCreator: p("UPDATE rooms SET creator = '' WHERE creator = ?"),
    staleClaims: p(
      "SELECT name, session, seen, since FROM claims WHERE seen < ? ORDER BY seen, folded LIMIT ?",
    ),
    // Backwards along claims_by_seen: no sort, and it stops after `limit` matches.
    recentClaims: p(
      `SELECT name, session, seen, since FROM claims WHERE seen >= ?1 AND instr(folded, ?2) > 0
       ORDER BY seen DESC, folded DESC LIMIT ?3`,
    ),
    wipeTop: p(
      `SELECT max(coalesce((SELECT last FROM convs WHERE conv = ?1), 0),
         coalesce((SELECT max(rev) FROM messages WHERE conv = ?1), 0)) AS top`,
    ),
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
    addRename: p("INSERT INTO renames (room, name, at) VALUES (?, ?, ?)"),
    // The newest `n` stay: rows are numbered in the order made.
    trimRenames: p("DELETE FROM renames WHERE n <= (SELECT max(n) FROM renames) - ?"),
    recentRenames: p("SELECT room, name, at FROM renames ORDER BY n DESC LIMIT ?"),
    noteSession: p(
      `INSERT INTO sessions (folded, session, seen) VALUES (?, ?, ?)
       ON CONFLICT (folded, session) DO UPDATE SET seen = max(seen, excluded.seen)`,
    ),
    trimSessions: p(
      `DELETE FROM sessions WHERE folded = ?1 AND session IN
         (SELECT session FROM sessions WHERE folded = ?1
          ORDER BY seen DESC, session DESC LIMIT -1 OFFSET ?2)`,
    ),
    // Along sessions_by_seen, each user's latest first: no sort.
    sessions: p(
      `SELECT folded, session, seen FROM sessions AS s
       WHERE folded IN (SELECT value FROM json_each(?1)) AND seen >= ?2
         AND NOT EXISTS (SELECT 1 FROM revoked AS r WHERE r.session = s.session AND r.until > ?3)
       ORDER BY folded, seen DESC, session DESC`,
    ),
    forgetSessions: p("DELETE FROM sessions WHERE folded = ?"),
    expired: p("SELECT seq, conv, id, rev FROM messages WHERE ts < ? ORDER BY ts LIMIT ?"),
    deleteSeq: p("DELETE FROM messages WHERE seq = ?"),
  } satisfies Record<string, StatementSync>;
}
