/**
 * The default store: everything in memory, the newest `limit` messages per
 * conversation, gone when the process exits.
 *
 * @module
 */
import {
  applyChange,
  type ChangeFrame,
  type ChatMessage,
  type Conversation,
  MAX_REACTIONS,
  MAX_REACTIONS_TOTAL,
  tombstone,
  UNREAD_CAP,
} from "../../protocol.ts";
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
  REF_WINDOW,
  type Rename,
  type RenameResult,
  RENAMES_KEPT,
  ReplyChanged,
  replyRef,
  RoomGone,
  type RoomInfo,
  type RoomSettings,
  type RoomSettingsChange,
  type SearchScope,
  searchText,
  searchWords,
  SESSIONS_KEPT,
  type SessionSeen,
  sinceGap,
  type Store,
} from "./store.ts";
import { appendLocked, replaceLocked } from "../locked_file.ts";
import { Slice } from "./time_slice.ts";
import { SortedNames } from "../sorted_names.ts";

/** One conversation: its kept messages and its sequence. */
interface Log {
  /**
   * Kept messages in their current state, by id. Ids are increasing but not
   * contiguous (changes take positions too): look them up by binary search.
   * A change replaces the message object: one handed out is never mutated.
   */
  messages: ChatMessage[];
  /** Newest message id given out (`Conversation.last`). */
  last: number;
  /** The conversation's counter: the latest position, message or change. */
  seq: number;
  /**
   * Highest `seq` of any message dropped (the per-conversation limit,
   * `maxTotal`, a wiped DM): a `since` below it may hold a stale copy.
   */
  trimmed: number;
}

/** A sender's message with a ref, to recognize a resend of it. */
interface Sent {
  conv: string;
  id: number;
  /**
   * A hash of the text as sent, compared instead of the text: a deleted
   * message's text must be gone, even from here, yet its resend recognized.
   */
  digest: number;
  /**
   * The message as last known (edited, a tombstone once deleted, its quote
   * following its original), for when it is no longer kept.
   */
  msg: ChatMessage;
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
  /** Room → its members, kept sorted: a page of them costs the page, not the room. */
  #rooms = new Map<string, SortedNames>();
  #creators = new Map<string, string>();
  /** Rooms created by each user, counted (the room quota asks on every new room). */
  #created = new Map<string, number>();
  #roomsOf = new Map<string, Set<string>>();
  #dms = new Map<string, Set<string>>();
  #read = new Map<string, Map<string, number>>();
  #users = new Set<string>();
  /** Room → its topic (rooms without one are not listed). */
  #topics = new Map<string, string>();
  /** Room → its settings (plain rooms are not listed). */
  #settings = new Map<string, RoomSettings>();
  /**
   * Names of rooms renamed away whose history moved with them: appends to
   * them are refused until a room of the name is created again.
   */
  #gone = new Set<string>();
  /** Lower-cased name → when the user was last seen (ms). */
  #seen = new Map<string, number>();
  /** Open-mode names by lower-cased name. */
  #claims = new Map<string, NameClaim>();
  /** Revoked session → until when (ms). */
  #revoked = new Map<string, number>();
  /** Renames, oldest first, at most {@link RENAMES_KEPT}. */
  #renames: Rename[] = [];
  /** Lower-cased name → session → when it last signed in (ms). */
  #sessions = new Map<string, Map<string, number>>();
  /**
   * Per sender: ref → conversation and message of their latest message with
   * that ref, oldest first, at most {@link REF_WINDOW} refs.
   */
  #sent = new Map<string, Map<string, Sent>>();
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
      log = { messages: [], last: 0, seq: 0, trimmed: 0 };
      this.#logs.set(conv, log);
    }
    return log;
  }

  /**
   * Appends a message; in memory it is "durable" at once. Rejects with
   * {@link ReplyChanged} when its `replyTo` no longer matches the original.
   */
  append(draft: Draft): Promise<ChatMessage> {
    try {
      return Promise.resolve(this.#append(draft));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Appends unless the draft is a resend (see {@link Store.appendOnce}). The
   * `member` check is the append's: a resend of a message stored while the
   * sender was a member answers it even after they left (it was stored; the
   * client only lost its acknowledgement).
   */
  appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    // Before the resend check: a resend to a renamed room's old name is refused as a send is.
    if (this.#isGone(draft)) return Promise.reject(new RoomGone(draft.conv));
    const prev = this.#sent.get(draft.from)?.get(draft.ref);
    if (prev && prev.conv === draft.conv && prev.digest === digest(draft.text)) {
      const msg = this.#kept(prev.conv, prev.id) ?? prev.msg;
      return Promise.resolve({ msg: this.#refreshed(prev.conv, [msg])[0], fresh: false });
    }
    // Resolved directly (no `.then`): appends and changes resolve in seq order.
    try {
      return Promise.resolve({ msg: this.#append(draft), fresh: true });
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Stores the draft; throws {@link ReplyChanged} for a stale `replyTo`, and
   * {@link RoomGone} for a renamed-away room or (with `member`) a sender who
   * is not in the room, storing nothing.
   */
  #append(draft: Draft): ChatMessage {
    if (this.#isGone(draft) || this.#notMember(draft)) throw new RoomGone(draft.conv);
    const reply = draft.replyTo;
    if (reply) {
      // Checked before anything is taken: a refused reply uses no position and no ref.
      const original = this.#kept(draft.conv, reply.id);
      if (!original || original.deleted || original.seq !== reply.seq) {
        throw new ReplyChanged(reply.id);
      }
    }
    const log = this.#log(draft.conv);
    const id = ++log.seq;
    log.last = id;
    const ts = new Date().toISOString();
    const msg: ChatMessage = draft.room !== undefined
      ? { id, seq: id, room: draft.room, from: draft.from, text: draft.text, ts }
      : { id, seq: id, to: draft.to, from: draft.from, text: draft.text, ts };
    // The quote as sent, without the seq it was checked at.
    if (reply) msg.replyTo = { id: reply.id, from: reply.from, snippet: reply.snippet };
    // Copies: the caller's objects are not the store's (a tombstone drops them).
    if (draft.files?.length) msg.files = draft.files.map((f) => ({ ...f }));
    if (this.#limit > 0) {
      log.messages.push(msg);
      this.#total++;
      if (log.messages.length > this.#limit) this.#drop(log, 1);
    } else log.trimmed = id;
    // Most recently written last (Map keeps insertion order).
    this.#logs.delete(draft.conv);
    this.#logs.set(draft.conv, log);
    for (const old of this.#logs.values()) {
      if (this.#total <= this.#maxTotal) break;
      this.#drop(old, Math.min(old.messages.length, this.#total - this.#maxTotal));
    }
    const pair = dmPair(draft.conv);
    if (pair) {
      for (const u of pair) this.#set(this.#dms, u).add(draft.conv);
    }
    if (draft.ref) this.#remember(draft.from, draft.ref, draft.conv, msg);
    return msg;
  }

  /** Whether `draft` goes to a room renamed away (see {@link Store.renameRoom}). */
  #isGone(draft: Draft): boolean {
    return draft.room !== undefined && this.#gone.has(draft.conv);
  }

  /** Whether `draft` asks for a member (`member`) and its sender is not in its room. */
  #notMember(draft: Draft): boolean {
    return draft.member === true && draft.room !== undefined &&
      !(this.#rooms.get(draft.room)?.has(draft.from) ?? false);
  }

  /** Drops a log's `n` oldest messages, raising its watermark to the highest seq dropped. */
  #drop(log: Log, n: number): void {
    for (const gone of log.messages.splice(0, n)) {
      if (gone.seq > log.trimmed) log.trimmed = gone.seq;
    }
    this.#total -= n;
  }

  /** The kept message `id` of `conv` (current state, replies not refreshed), or null. */
  #kept(conv: string, id: number): ChatMessage | null {
    const msgs = this.#logs.get(conv)?.messages;
    if (!msgs) return null;
    const i = lowerBound(msgs, id);
    return i < msgs.length && msgs[i].id === id ? msgs[i] : null;
  }

  /**
   * `messages` of `conv` with their `replyTo` refreshed from the kept
   * originals, as `refreshReplies` (store.ts) does, but synchronously: the
   * originals are in memory, and a read needs no turn of the event loop.
   */
  #refreshed(conv: string, messages: ChatMessage[]): ChatMessage[] {
    return messages.map((m) => {
      const original = m.replyTo && this.#kept(conv, m.replyTo.id);
      return original ? { ...m, replyTo: replyRef(original) } : m;
    });
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
    refs.set(ref, { conv, id: msg.id, digest: digest(msg.text), msg });
    if (refs.size > REF_WINDOW) refs.delete(refs.keys().next().value!);
  }

  /** Applies a change at once, checked against the kept message (see {@link Store.change}). */
  change(change: Change): Promise<ChangeResult> {
    return Promise.resolve(this.#change(change));
  }

  #change(change: Change): ChangeResult {
    const log = this.#logs.get(change.conv);
    const msgs = log?.messages ?? [];
    const i = lowerBound(msgs, change.id);
    if (!log || i >= msgs.length || msgs[i].id !== change.id) {
      return { ok: false, refusal: "unknown_message" };
    }
    const msg = msgs[i];
    const base = { conv: change.conv, id: change.id, user: change.user };
    // An admin's delete (`moderator`) checks neither the author nor the time.
    const moderator = change.kind === "delete" && change.moderator === true;
    if (change.kind !== "react" && !moderator && msg.from !== change.user) {
      return { ok: false, refusal: "forbidden" };
    }
    if (change.kind === "delete") {
      // Before the tombstone check: a message sent before `sentAfter` (an
      // earlier holder's of the name) is refused whatever its state.
      if (!moderator && tooLate(msg, change.sentAfter)) return { ok: false, refusal: "too_late" };
      if (msg.deleted) return { ok: true, applied: null };
      const seq = ++log.seq;
      const removed = moderator && msg.from !== change.user;
      msgs[i] = tombstone({ ...msg, seq });
      if (removed) msgs[i].removed = true;
      this.#resync(change.conv, msgs[i]);
      this.#requote(change.conv, msgs, i);
      const applied: Applied = { kind: "deleted", ...base, seq, from: msg.from, ts: msg.ts };
      if (removed) applied.removed = true;
      return { ok: true, applied };
    }
    if (msg.deleted) return { ok: false, refusal: "unknown_message" };
    if (change.kind === "edit") {
      if (tooLate(msg, change.sentAfter)) return { ok: false, refusal: "too_late" };
      const now = new Date().toISOString();
      // A clock stepped back must not date the edit before the message.
      const editedAt = now < msg.ts ? msg.ts : now;
      const seq = ++log.seq;
      const frame: ChangeFrame = {
        type: "edited",
        room: change.conv,
        id: msg.id,
        text: change.text,
        editedAt,
        seq,
      };
      msgs[i] = applyChange(msg, frame);
      this.#resync(change.conv, msgs[i]);
      this.#requote(change.conv, msgs, i);
      const applied: Applied = { kind: "edited", ...base, seq, text: change.text, editedAt };
      return { ok: true, applied };
    }
    const { emoji, on, user } = change;
    const users = msg.reactions?.[emoji] ?? [];
    if (users.includes(user) === on) return { ok: true, applied: null };
    if (on) {
      const all = Object.values(msg.reactions ?? {});
      if (
        (users.length === 0 && all.length >= MAX_REACTIONS) ||
        all.reduce((n, list) => n + list.length, 0) >= MAX_REACTIONS_TOTAL
      ) {
        return { ok: false, refusal: "too_many_reactions" };
      }
    }
    const seq = ++log.seq;
    // The rule clients merge by: a new emoji goes last, an emptied one goes.
    const frame: ChangeFrame = {
      type: "reaction",
      room: change.conv,
      id: msg.id,
      emoji,
      user,
      on,
      seq,
    };
    msgs[i] = applyChange(msg, frame);
    return { ok: true, applied: { kind: "reaction", ...base, seq, emoji, on } };
  }

  /**
   * Replaces the sender's resend record of a message with its new state: a
   * deleted or edited text (or a quote of one) must not live on there,
   * where a resend of the message once dropped would hand it out.
   */
  #resync(conv: string, msg: ChatMessage): void {
    for (const sent of this.#sent.get(msg.from)?.values() ?? []) {
      if (sent.id === msg.id && sent.conv === conv) sent.msg = msg;
    }
  }

  /**
   * Stores the new quote of `msgs[i]` (just edited or deleted) in every kept
   * reply to it, so a reply never quotes text its original no longer has,
   * even after the original is dropped. Replies come after their original:
   * only the messages after it are scanned (at most the conversation's limit).
   */
  #requote(conv: string, msgs: ChatMessage[], i: number): void {
    const original = msgs[i];
    const quote = replyRef(original);
    for (let j = i + 1; j < msgs.length; j++) {
      if (msgs[j].replyTo?.id !== original.id) continue;
      // A new object (one handed out is never mutated); the reply's seq stays: it did not change.
      msgs[j] = { ...msgs[j], replyTo: { ...quote } };
      this.#resync(conv, msgs[j]);
    }
  }

  /** One message in its current state, or null. */
  message(conv: string, id: number): Promise<ChatMessage | null> {
    const msg = this.#kept(conv, id);
    return Promise.resolve(msg && this.#refreshed(conv, [msg])[0]);
  }

  /**
   * A page of history. By id (`before`): a binary search, O(limit). Since a
   * position: a scan of the conversation's kept messages (at most `limit`
   * per conversation), as changed messages may be anywhere among them.
   */
  page(conv: string, query: PageQuery): Promise<Page> {
    const log = this.#logs.get(conv);
    if (!log) {
      const gap = query.since !== undefined && sinceGap(query.since, 0, 0);
      return Promise.resolve({ messages: [], more: false, gap, seq: 0 });
    }
    const msgs = log.messages;
    if (query.since !== undefined) {
      const since = query.since;
      const changed = msgs.filter((m) => m.seq > since).sort((a, b) => a.seq - b.seq);
      const limit = Math.max(0, query.limit);
      const more = changed.length > limit;
      const messages = changed.slice(0, limit);
      return Promise.resolve({
        messages: this.#refreshed(conv, messages),
        more,
        gap: sinceGap(since, log.trimmed, log.seq),
        // With more, up to the last message returned (`since` itself if none fitted).
        seq: more ? (messages.at(-1)?.seq ?? since) : log.seq,
      });
    }
    const end = query.before === undefined ? msgs.length : lowerBound(msgs, query.before);
    const start = Math.max(0, end - query.limit);
    return Promise.resolve({
      messages: this.#refreshed(conv, msgs.slice(start, end)),
      more: start > 0,
      gap: false,
      seq: log.seq,
    });
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
    const found: { conv: string; msg: ChatMessage }[] = [];
    const slice = new Slice();
    for (const conv of convs) {
      if (scope.conv !== undefined && conv !== scope.conv) continue;
      // The scan resumes by id after a pause: meanwhile the array may have shifted or emptied.
      let next = this.#logs.get(conv)?.last ?? 0;
      let n = 0;
      scan: while (n < scope.limit) {
        const msgs = this.#logs.get(conv)?.messages;
        if (!msgs || msgs.length === 0) break;
        for (let i = lowerBound(msgs, next + 1) - 1; i >= 0; i--) {
          const msg = msgs[i];
          // Current state: a tombstone has no text to find, an edit only its new words.
          if (!msg.deleted) {
            const text = searchText(msg);
            if (words.every((w) => text.includes(w))) {
              found.push({ conv, msg });
              if (++n >= scope.limit) break scan;
            }
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
    found.sort((a, b) => (a.msg.ts < b.msg.ts ? 1 : a.msg.ts > b.msg.ts ? -1 : 0));
    return found.slice(0, scope.limit).map(({ conv, msg }) => this.#refreshed(conv, [msg])[0]);
  }

  /** Every room with its member count, topic and settings. */
  rooms(): Promise<RoomInfo[]> {
    const out = [...this.#rooms].map(([name, m]): RoomInfo => {
      const topic = this.#topics.get(name);
      const info: RoomInfo = topic === undefined
        ? { name, members: m.size }
        : { name, members: m.size, topic };
      return Object.assign(info, this.#settings.get(name));
    });
    out.sort((a, b) => a.name.localeCompare(b.name));
    return Promise.resolve(out);
  }

  /** Whether the room exists. */
  roomExists(room: string): Promise<boolean> {
    return Promise.resolve(this.#rooms.has(room));
  }

  /** How many rooms there are. */
  roomCount(): Promise<number> {
    return Promise.resolve(this.#rooms.size);
  }

  /** Adds a member, creating the room (private when asked; an existing room keeps its settings). */
  join(user: string, room: string, create?: { private?: boolean }): Promise<JoinResult> {
    const created = !this.#rooms.has(room);
    if (created) {
      this.#creators.set(room, user);
      this.#created.set(user, (this.#created.get(user) ?? 0) + 1);
    }
    // A new room of a renamed room's old name: its history continues the old counters.
    if (created) this.#gone.delete(room);
    if (created && create?.private) this.#settings.set(room, { private: true });
    let members = this.#rooms.get(room);
    if (!members) {
      members = new SortedNames();
      this.#rooms.set(room, members);
    }
    if (!members.add(user)) return Promise.resolve({ added: false, created, count: members.size });
    this.#set(this.#roomsOf, user).add(room);
    return Promise.resolve({ added: true, created, count: members.size });
  }

  /** Rooms created by a user. */
  roomsCreatedBy(user: string): Promise<number> {
    return Promise.resolve(this.#created.get(user) ?? 0);
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

  /** Members of a room (kept sorted). */
  members(room: string): Promise<string[]> {
    return Promise.resolve([...(this.#rooms.get(room) ?? [])]);
  }

  /** A page of a room's members after `after`: a binary search plus the page. */
  membersPage(room: string, after: string | undefined, limit: number): Promise<MembersPage> {
    const members = this.#rooms.get(room);
    if (!members) return Promise.resolve({ members: [], count: 0 });
    return Promise.resolve({ members: members.after(after, limit), count: members.size });
  }

  /** How many members a room has. */
  memberCount(room: string): Promise<number> {
    return Promise.resolve(this.#rooms.get(room)?.size ?? 0);
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

  /** The room's settings, null when no such room. */
  roomSettings(room: string): Promise<RoomSettings | null> {
    if (!this.#rooms.has(room)) return Promise.resolve(null);
    return Promise.resolve({ ...this.#settings.get(room) });
  }

  /** Sets and clears the room's flags; null (and nothing created) when no such room. */
  setRoomSettings(room: string, change: RoomSettingsChange): Promise<RoomSettings | null> {
    if (!this.#rooms.has(room)) return Promise.resolve(null);
    const now = changedSettings(this.#settings.get(room) ?? {}, change);
    if (Object.keys(now).length === 0) this.#settings.delete(room);
    else this.#settings.set(room, now);
    return Promise.resolve({ ...now });
  }

  /**
   * Renames a room at once (see {@link Store.renameRoom}): its log (each
   * message a new object with the new `room`), members, read markers of
   * every user, topic, settings, creator and the resend records of its
   * messages move; the old name keeps counters that continue after the
   * room's, with every old position behind its watermark.
   */
  renameRoom(room: string, to: string): Promise<RenameResult> {
    if (!this.#rooms.has(room)) return Promise.resolve("unknown");
    // A conversation of the name with messages but no room (written without
    // a join, which the hub never does) is not overwritten either.
    if (this.#rooms.has(to) || (this.#logs.get(to)?.messages.length ?? 0) > 0) {
      return Promise.resolve("taken");
    }
    this.#moveLog(room, to);
    this.#gone.add(room);
    this.#gone.delete(to);
    const members = this.#rooms.get(room)!;
    this.#rooms.delete(room);
    this.#rooms.set(to, members);
    for (const user of members) {
      const rooms = this.#roomsOf.get(user);
      rooms?.delete(room);
      rooms?.add(to);
    }
    for (const markers of this.#read.values()) {
      const marker = markers.get(room);
      // A marker of the new name (a name without a room) says nothing about this history.
      markers.delete(to);
      if (marker === undefined) continue;
      markers.delete(room);
      markers.set(to, marker);
    }
    moveKey(this.#creators, room, to);
    moveKey(this.#topics, room, to);
    moveKey(this.#settings, room, to);
    for (const refs of this.#sent.values()) {
      for (const sent of refs.values()) {
        if (sent.conv !== room) continue;
        sent.conv = to;
        sent.msg = this.#kept(to, sent.id) ?? { ...sent.msg, room: to };
      }
    }
    this.#renames.push({ room, name: to, at: Date.now() });
    if (this.#renames.length > RENAMES_KEPT) this.#renames.shift();
    return Promise.resolve("renamed");
  }

  /** The latest renames, newest first. */
  recentRenames(limit: number): Promise<Rename[]> {
    const n = Math.max(0, Math.min(limit, this.#renames.length));
    const out = this.#renames.slice(this.#renames.length - n).reverse();
    return Promise.resolve(out.map((r) => ({ ...r })));
  }

  /**
   * Moves the log of `room` to `to` (each message a new object with the new
   * `room`; counters merged with any `to` had) and leaves the old name
   * counters one position past the room's, with everything before it
   * trimmed: a reader at an old position of the old name has a gap.
   */
  #moveLog(room: string, to: string): void {
    const old = this.#log(room);
    const left = this.#logs.get(to);
    const moved: Log = {
      messages: old.messages.map((m) => ({ ...m, room: to })),
      last: Math.max(old.last, left?.last ?? 0),
      seq: Math.max(old.seq, left?.seq ?? 0),
      trimmed: Math.max(old.trimmed, left?.trimmed ?? 0),
    };
    this.#logs.delete(to);
    this.#logs.set(to, moved);
    old.messages = [];
    old.seq = old.trimmed = moved.seq + 1;
  }

  /** The user's rooms and DMs with newest ids, positions, read markers and unread counts. */
  conversations(user: string): Promise<Conversation[]> {
    const read = this.#read.get(user);
    const out: Conversation[] = [];
    const about = (conv: string) => {
      const log = this.#logs.get(conv);
      const marker = read?.get(conv) ?? 0;
      return {
        last: log?.last ?? 0,
        read: marker,
        seq: log?.seq ?? 0,
        unread: log ? unread(log.messages, user, marker) : 0,
      };
    };
    for (const room of [...(this.#roomsOf.get(user) ?? [])].sort()) {
      out.push({ room, ...about(room) });
    }
    for (const conv of [...(this.#dms.get(user) ?? [])].sort()) {
      const [a, b] = dmPair(conv)!;
      out.push({ to: a === user ? b : a, ...about(conv) });
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
      const claim: NameClaim = { name, session, seen: now, since: now };
      this.#claims.set(key, claim);
      return Promise.resolve({ ok: true, claim: { ...claim } });
    }
    if (held.session !== session) return Promise.resolve({ ok: false, claim: { ...held } });
    held.seen = now;
    return Promise.resolve({ ok: true, claim: { ...held } });
  }

  /**
   * Releases a name held by `session` and wipes its DMs (keeping their id
   * counters), read markers, memberships, "known" mark, last-seen time,
   * sessions and refs, in one step.
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
        // The counter stays (later ids continue) and becomes the watermark: nothing before is known.
        this.#total -= log.messages.length;
        log.messages = [];
        log.trimmed = log.seq;
      }
      for (const party of dmPair(conv)!) {
        this.#read.get(party)?.delete(conv);
        // The peer's resend records hold wiped messages (and a digest of their text).
        if (party !== user) this.#forgetRefsIn(party, conv);
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
    this.#sessions.delete(key);
    this.#sent.delete(user);
    for (const [room, creator] of this.#creators) {
      if (creator === user) this.#creators.set(room, "");
    }
    this.#created.delete(user);
    return Promise.resolve(rooms);
  }

  /** Forgets `from`'s resend records of messages in `conv` (at most {@link REF_WINDOW}). */
  #forgetRefsIn(from: string, conv: string): void {
    const refs = this.#sent.get(from);
    if (!refs) return;
    for (const [ref, sent] of refs) if (sent.conv === conv) refs.delete(ref);
    if (refs.size === 0) this.#sent.delete(from);
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

  /** Records a sign-in of `session` for `user`, keeping the latest {@link SESSIONS_KEPT}. */
  noteSession(user: string, session: string, seen: number): Promise<void> {
    const key = user.toLowerCase();
    const kept = this.#sessions.get(key) ?? new Map<string, number>();
    this.#sessions.set(key, kept);
    kept.set(session, Math.max(seen, kept.get(session) ?? -Infinity));
    if (kept.size > SESSIONS_KEPT) {
      const [oldest] = latestFirst(kept).slice(-1);
      kept.delete(oldest.session);
    }
    return Promise.resolve();
  }

  /** Each user's sessions seen since `since` and not revoked at `now`, latest first. */
  sessions(
    users: readonly string[],
    since: number,
    now: number,
  ): Promise<Map<string, SessionSeen[]>> {
    const out = new Map<string, SessionSeen[]>();
    for (const user of users) {
      const kept = this.#sessions.get(user.toLowerCase());
      if (!kept) continue;
      const live = latestFirst(kept).filter((s) =>
        s.seen >= since && (this.#revoked.get(s.session) ?? 0) <= now
      );
      if (live.length > 0) out.set(user, live);
    }
    return Promise.resolve(out);
  }

  /** Forgets the user's sessions. */
  forgetSessions(user: string): Promise<void> {
    this.#sessions.delete(user.toLowerCase());
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

/** Sessions latest seen first (ties: greater session id first, as every store orders them). */
function latestFirst(kept: Map<string, number>): SessionSeen[] {
  const all = [...kept].map(([session, seen]) => ({ session, seen }));
  return all.sort((a, b) =>
    b.seen - a.seen || (a.session < b.session ? 1 : a.session > b.session ? -1 : 0)
  );
}

/** Moves the entry of `from` to `to`, if there is one. */
function moveKey<V>(map: Map<string, V>, from: string, to: string): void {
  const value = map.get(from);
  if (value === undefined) return;
  map.delete(from);
  map.set(to, value);
}

/** `settings` after `change`: each flag given set or cleared, the rest as they were. */
function changedSettings(settings: RoomSettings, change: RoomSettingsChange): RoomSettings {
  const out: RoomSettings = {};
  if (change.private ?? settings.private) out.private = true;
  if (change.readOnly ?? settings.readOnly) out.readOnly = true;
  if (change.archived ?? settings.archived) out.archived = true;
  if (change.autoJoin ?? settings.autoJoin) out.autoJoin = true;
  if (change.restrictRoomMentions ?? settings.restrictRoomMentions) {
    out.restrictRoomMentions = true;
  }
  return out;
}

/** Whether `msg` was sent before `sentAfter` (ms), when given: refused as `too_late`. */
function tooLate(msg: ChatMessage, sentAfter: number | undefined): boolean {
  return sentAfter !== undefined && Date.parse(msg.ts) < sentAfter;
}

/** Index of the first message with an id of at least `id` (`msgs.length` when none). */
function lowerBound(msgs: readonly ChatMessage[], id: number): number {
  let lo = 0, hi = msgs.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (msgs[mid].id < id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Others' messages after the read marker that are not deleted, up to
 * `UNREAD_CAP`: newest first, so the scan stops at the marker or the cap.
 */
function unread(msgs: readonly ChatMessage[], user: string, read: number): number {
  let n = 0;
  for (let i = msgs.length - 1; i >= 0 && msgs[i].id > read && n < UNREAD_CAP; i--) {
    if (msgs[i].from !== user && !msgs[i].deleted) n++;
  }
  return n;
}

/** A 53-bit hash of a text (cyrb53): enough to tell a resend from another text with the same ref. */
function digest(text: string): number {
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
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
