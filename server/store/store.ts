/**
 * The durable state of a chat: messages, rooms, membership and read markers.
 *
 * One interface, several backends: {@link MemoryStore} (the default, nothing
 * survives a restart), the SQLite store (`--data`) and the Redis store
 * (`--redis`). `tests/store_contract.ts` runs the same suite against each.
 *
 * @module
 */
import { type ChatMessage, type Conversation, type ReplyRef, snippetOf } from "../../protocol.ts";
import { plainText } from "../../markdown.ts";
import type { FileMeta } from "../files/files.ts";

/** A message before the store gives it an id and a timestamp. */
export interface Draft {
  /** Conversation key: a room name, or `@a:b` for a DM pair (see `conversationKey`). */
  conv: string;
  /** The room, for a room message. */
  room?: string;
  /** The recipient, for a direct message. */
  to?: string;
  /** Who sent it. */
  from: string;
  /** The message text. */
  text: string;
  /**
   * The message this one answers, quoted as the hub read it, with the
   * original's `seq` at that read. The store checks in the same atomic step
   * as the append that the original is still kept, not deleted and at that
   * `seq` (unchanged since the quote was taken): otherwise the append
   * rejects with {@link ReplyChanged} and nothing is stored. The stored quote
   * (without `seq`) follows later edits of the original and is emptied when
   * the original is deleted, so it never outlives the original's text.
   */
  replyTo?: ReplyRef & { seq: number };
  /**
   * Files the message carries (attached by the file store before the
   * append), kept with the message in this order and dropped when it is
   * deleted. Absent (never `[]`) when none.
   */
  files?: FileMeta[];
  /**
   * The sender's reference for the message (the `ref` of its `send`), kept
   * so that {@link Store.appendOnce} recognizes a resend. Empty means none.
   */
  ref?: string;
  /**
   * The sender must be a member of `room` at the append, checked in the same
   * atomic step; otherwise the append rejects with {@link RoomGone} (a send
   * that raced a rename, or a leave or kick).
   */
  member?: true;
}

/**
 * Thrown (rejected) by an append whose {@link Draft.replyTo} no longer
 * matches its original: the original changed, was deleted or is no longer
 * kept since the quote was taken. The caller reads it again and retries.
 */
export class ReplyChanged extends Error {
  /** Builds the error for the original `id`. */
  constructor(id: number) {
    super(`Message #${id} changed while a reply to it was being sent`);
    this.name = "ReplyChanged";
  }
}

/**
 * How many of a sender's latest refs every store remembers at least: a
 * resend within them is recognized by {@link Store.appendOnce}.
 */
export const REF_WINDOW = 256;

/** What {@link Store.appendOnce} did. */
export interface Appended {
  /** The message: stored now, or stored before when `fresh` is false. */
  msg: ChatMessage;
  /** Stored now; false for a resend of a stored message (nothing was stored). */
  fresh: boolean;
}

/**
 * A change to a message that exists: every kind takes the conversation's
 * next position (`seq`), as a new message does.
 */
export type Change =
  | {
    /** Replaces the text; only the author may. */
    kind: "edit";
    conv: string;
    id: number;
    /** Who asks: must be the author. */
    user: string;
    text: string;
    /** Refuse (`too_late`) when the message was sent before this time (ms): the edit window. */
    sentAfter?: number;
  }
  | {
    /** Deletes: the message becomes a tombstone; text, edits, reactions and reply are gone. */
    kind: "delete";
    conv: string;
    id: number;
    /** Who asks: must be the author, unless `moderator`. */
    user: string;
    /** Refuse (`too_late`) when the message was sent before this time (ms); ignored with `moderator`. */
    sentAfter?: number;
    /**
     * An admin removes the message: neither the author nor `sentAfter` is
     * checked. The tombstone of someone else's message keeps `removed`.
     */
    moderator?: boolean;
  }
  | {
    /** Adds (`on`) or removes `user`'s reaction with `emoji`. */
    kind: "react";
    conv: string;
    id: number;
    user: string;
    emoji: string;
    on: boolean;
  };

/** A change as it was applied: what every member of the conversation is told. */
export interface Applied {
  /** What changed. */
  kind: "edited" | "deleted" | "reaction";
  /** Conversation key (a room name, or `@a:b`). */
  conv: string;
  /** The message's id. */
  id: number;
  /** The position this change took. */
  seq: number;
  /** Who made the change. */
  user: string;
  /** `edited`: the new text. */
  text?: string;
  /** `edited`: ISO-8601 UTC. */
  editedAt?: string;
  /** `reaction`: the emoji. */
  emoji?: string;
  /** `reaction`: added (true) or removed. */
  on?: boolean;
  /**
   * `deleted`: the message's author, so that a client that never had the
   * message (it missed the creation) can still place its tombstone.
   */
  from?: string;
  /** `deleted`: when the message was sent, ISO-8601 UTC (as its `ts`). */
  ts?: string;
  /** `deleted`: an admin removed someone else's message (a moderator delete). */
  removed?: true;
}

/** Why a change was refused. */
export type ChangeRefusal =
  /** No such message in the conversation (trimmed, never sent, or deleted for edit and react). */
  | "unknown_message"
  /** Edit or delete of someone else's message (a moderator delete excepted). */
  | "forbidden"
  /** An edit after the edit window, or an edit or delete of a message sent before `sentAfter`. */
  | "too_late"
  /**
   * A new emoji on a message that has `MAX_REACTIONS` different ones, or a
   * reaction on one that has `MAX_REACTIONS_TOTAL` reactions in all.
   */
  | "too_many_reactions";

/**
 * What {@link Store.change} did: applied (with what to tell everyone), or
 * nothing to do (`applied: null`: a reaction that is already so, a delete of
 * a tombstone), or refused.
 */
export type ChangeResult =
  | { ok: true; applied: Applied | null }
  | { ok: false; refusal: ChangeRefusal };

/**
 * Thrown (rejected) by an append to a room that was renamed away: the
 * conversation has a history but its room no longer exists under that name
 * (see {@link Store.renameRoom}). A send that raced the rename must not land
 * where nobody can read it, nor in the history of a later room of that name.
 */
export class RoomGone extends Error {
  /** Builds the error for `room`. */
  constructor(room: string) {
    super(`There is no room "${room}" any more`);
    this.name = "RoomGone";
  }
}

/** What {@link Store.renameRoom} did. */
export type RenameResult =
  /** Renamed: everything of the room is under the new name. */
  | "renamed"
  /** There is no room of the old name (nothing changed). */
  | "unknown"
  /** A room of the new name exists (nothing changed). */
  | "taken";

/** A room's rename, as {@link Store.recentRenames} lists it. */
export interface Rename {
  /** The room's old name. */
  room: string;
  /** The name it was given. */
  name: string;
  /** When (ms since the epoch). */
  at: number;
}

/** How many renames {@link Store.recentRenames} keeps at least (the newest). */
export const RENAMES_KEPT = 100;

/** A user's session as {@link Store.sessions} lists it. */
export interface SessionSeen {
  /** The session id (carried by its tokens). */
  session: string;
  /** When it last signed in (ms since the epoch). */
  seen: number;
}

/** How many sessions {@link Store.noteSession} keeps per user at most (the latest seen). */
export const SESSIONS_KEPT = 50;

/** Which page of a conversation to read. */
export interface PageQuery {
  /** Only messages with a smaller id (the newest `limit` of them), oldest first. */
  before?: number;
  /**
   * Every message created or changed after this position (`seq`), in its
   * current state, by `seq` (the `limit` lowest), instead of by id.
   */
  since?: number;
  /** Largest number of messages to return. */
  limit: number;
}

/** A page of messages, oldest first (by `seq` for a `since` page). */
export interface Page {
  /** The messages, in their current state. */
  messages: ChatMessage[];
  /** More messages exist beyond this page in the direction asked. */
  more: boolean;
  /**
   * Changes after `since` are no longer all known: messages that changed
   * (or were created) after it are gone (retention, the per-conversation cap).
   */
  gap: boolean;
  /**
   * The position the page brings a reader up to: for a `since` page with
   * `more`, the last message's `seq`; otherwise the conversation's `seq` as
   * the page was read (0 for a conversation that never had a message).
   */
  seq: number;
}

/** Where a search looks. */
export interface SearchScope {
  /** The user asking: DMs it is a party to are searched. */
  user: string;
  /** Rooms the user is in (the only rooms searched). */
  rooms: string[];
  /** Only this conversation key, when set (must be within the scope). */
  conv?: string;
  /** Largest number of results. */
  limit: number;
}

/** What {@link Store.join} did. */
export interface JoinResult {
  /** The user was not a member before. */
  added: boolean;
  /** The room did not exist before. */
  created: boolean;
  /** How many members the room has after the join. */
  count: number;
}

/** A page of a room's members (see {@link Store.membersPage}). */
export interface MembersPage {
  /** Names, sorted. */
  members: string[];
  /** How many members the room has. */
  count: number;
}

/**
 * What kind of room a room is. Each flag is absent (never `false`) when off,
 * so a plain room's settings are `{}`.
 */
export interface RoomSettings {
  /** Only its members see it, find it and read it (see `docs/admin.md`). */
  private?: true;
  /** Only admins may send in it (announcements). */
  readOnly?: true;
  /** Kept, read-only for everyone, and out of the rooms list. */
  archived?: true;
  /** New accounts join it, as they join `general` (an admin's choice of default rooms). */
  autoJoin?: true;
  /** Only admins may notify everyone in it with `@room` or `@here`. */
  restrictRoomMentions?: true;
}

/** A change of {@link RoomSettings}: each flag given is set (`true`) or cleared (`false`). */
export interface RoomSettingsChange {
  /** Members only, or open again. */
  private?: boolean;
  /** Only admins send, or everyone again. */
  readOnly?: boolean;
  /** Archived, or back in use. */
  archived?: boolean;
  /** A default room for new accounts, or not. */
  autoJoin?: boolean;
  /** `@room` and `@here` for admins only, or for everyone again. */
  restrictRoomMentions?: boolean;
}

/** A room and how many members it has, with its settings. */
export interface RoomInfo extends RoomSettings {
  /** The room's name. */
  name: string;
  /** How many members it has. */
  members: number;
  /** The room's topic; absent when it has none. */
  topic?: string;
}

/** Who holds an open-mode name (see {@link Store.claimName}). */
export interface NameClaim {
  /** The name as its holder chose it (the display case). */
  name: string;
  /** The holder's session id (carried by its token). */
  session: string;
  /** When the holder last signed in or disconnected (ms since the epoch). */
  seen: number;
  /**
   * When this holder claimed the name (ms since the epoch); 0 for claims
   * recorded before it was kept. Messages the name sent before are an
   * earlier holder's: not this one's to edit or delete.
   */
  since: number;
}

/** Which claims {@link Store.recentClaims} lists. */
export interface RecentQuery {
  /** Only claims seen at or after this time (ms since the epoch). */
  since: number;
  /** Only names containing this text, ignoring case. */
  match?: string;
  /** Largest number of claims. */
  limit: number;
}

/** What {@link Store.claimName} found or did. */
export type ClaimResult =
  | { ok: true; claim: NameClaim }
  | { ok: false; claim: NameClaim | null };

/** Durable chat state. Every method may be called concurrently. */
export interface Store {
  /**
   * Gives the message the next id of its conversation and the current time,
   * and keeps it. Resolves once the message is durable for this backend: a
   * caller acknowledges the sender only after that. Messages of one
   * conversation resolve in the order they were appended.
   */
  append(draft: Draft): Promise<ChatMessage>;
  /**
   * Appends the message unless it is a resend: when the sender's latest
   * message with this `ref` (among at least their last {@link REF_WINDOW}
   * refs) went to the same conversation with the same text, resolves that
   * stored message with `fresh: false` and stores nothing. The same ref with
   * another conversation or text is a new message. Checking and appending
   * are one atomic step (also across nodes), so concurrent resends store the
   * message once. An empty `ref` is no ref: the message is appended.
   *
   * @example
   * ```ts
   * import { MemoryStore } from "./memory.ts";
   * const store = new MemoryStore();
   * const draft = { conv: "general", room: "general", from: "alice", text: "hi", ref: "k7-1" };
   * await store.appendOnce(draft); // { msg: { id: 1, … }, fresh: true }
   * await store.appendOnce(draft); // { msg: { id: 1, … }, fresh: false }: a resend
   * ```
   */
  appendOnce(draft: Draft & { ref: string }): Promise<Appended>;
  /**
   * Applies a change to a message, checking it (author, existence,
   * `MAX_REACTIONS`) in the same atomic step (also across nodes).
   * Changes and appends of a conversation resolve in `seq` order; an applied
   * change is durable when it resolves, like an append.
   */
  change(change: Change): Promise<ChangeResult>;
  /** One message in its current state (tombstones included), or null when not kept. */
  message(conv: string, id: number): Promise<ChatMessage | null>;
  /** A page of a conversation's history (see {@link PageQuery}). */
  page(conv: string, query: PageQuery): Promise<Page>;
  /** Messages matching every word of `q`, newest first, within `scope`. */
  search(q: string, scope: SearchScope): Promise<ChatMessage[]>;
  /**
   * Every room with its member count, its topic where it has one, and its
   * settings, by name; private and archived rooms included (the hub decides
   * who sees them).
   */
  rooms(): Promise<RoomInfo[]>;
  /** Whether a room exists. */
  roomExists(room: string): Promise<boolean>;
  /** How many rooms there are (as many as {@link rooms} lists), without reading them. */
  roomCount(): Promise<number>;
  /**
   * Adds `user` to `room`, creating the room (with `user` as its creator) if
   * it is new, private when `create.private` is true. The settings of a room
   * that exists are left as they are.
   */
  join(user: string, room: string, create?: { private?: boolean }): Promise<JoinResult>;
  /** Number of rooms `user` created. */
  roomsCreatedBy(user: string): Promise<number>;
  /** Removes `user` from `room`; resolves `true` if it was a member. */
  leave(user: string, room: string): Promise<boolean>;
  /** Rooms `user` is in, by name. */
  roomsOf(user: string): Promise<string[]>;
  /** Members of `room`, by name. */
  members(room: string): Promise<string[]>;
  /**
   * Members of `room` by name after `after` (from the first when absent), at
   * most `limit`, with the room's member count. Costs the page, not the room:
   * a sign-in into a room of 100,000 reads no more than one into a room of 10.
   */
  membersPage(room: string, after: string | undefined, limit: number): Promise<MembersPage>;
  /** How many members `room` has (0 when there is no such room), in constant time. */
  memberCount(room: string): Promise<number>;
  /** The topic of `room`: `""` when it has none (or there is no such room). */
  topic(room: string): Promise<string>;
  /**
   * Sets the topic of `room` (`""` clears it) as one step, also across
   * nodes; resolves whether it changed. False when the room has that topic
   * already, or does not exist (no room is created).
   */
  setTopic(room: string, topic: string): Promise<boolean>;
  /** The settings of `room`, or null when there is no such room. */
  roomSettings(room: string): Promise<RoomSettings | null>;
  /**
   * Changes the settings of `room` as one step (also across nodes); resolves
   * the settings after it, or null when there is no such room (none is created).
   */
  setRoomSettings(room: string, change: RoomSettingsChange): Promise<RoomSettings | null>;
  /**
   * Renames `room` to `to` as one atomic step (also across nodes): its
   * messages (each message's `room` field), ids and positions (`seq`), reply
   * links, reactions, search index, members (and each member's list of
   * rooms), read markers, topic, settings and creator move to the new name
   * unchanged. Resolves `"unknown"` when there is no room `room` and
   * `"taken"` when a room `to` exists; then nothing changes.
   *
   * The old name is free afterwards. Its counters stay behind (as a released
   * DM's do): a room created later under it continues ids and positions after
   * the renamed room's, and a `since` page of it from a position the old room
   * had says `gap`, so a reader that missed the rename never takes the new
   * room's messages for the old room's. Until such a room is created, an
   * append to the old name rejects with {@link RoomGone}.
   */
  renameRoom(room: string, to: string): Promise<RenameResult>;
  /**
   * The latest renames, newest first, at most `limit` (at least the last
   * {@link RENAMES_KEPT} are kept; older ones may be forgotten). Each
   * {@link renameRoom} that resolved `"renamed"` is listed, in the same
   * atomic step as the rename. A client that was away follows them from a
   * name it holds to the room's name now.
   */
  recentRenames(limit: number): Promise<Rename[]>;
  /**
   * The user's rooms and DM conversations with newest id, `seq`, read marker
   * and unread count (messages of others after the marker, not deleted, up
   * to `UNREAD_CAP`).
   */
  conversations(user: string): Promise<Conversation[]>;
  /** Moves the user's read marker of `conv` forward to `id` (never back); resolves the marker. */
  setRead(user: string, conv: string, id: number): Promise<number>;
  /**
   * Records that a user has signed in (open mode lets DMs reach known users
   * only) and, with `seen` (ms since the epoch), that it was seen then, as
   * {@link markSeen} does.
   */
  touchUser(user: string, seen?: number): Promise<void>;
  /**
   * Records that `users` were connected at `at` (ms since the epoch), in one
   * step however many they are. A user's last-seen time only moves forward;
   * names compare ignoring case. Unlike {@link touchUser}, it does not make
   * anyone a known user: a name released meanwhile stays released.
   */
  markSeen(users: readonly string[], at: number): Promise<void>;
  /**
   * When each of `users` was last seen (ms), in one read however many they
   * are (a directory of 10,000 accounts must not cost 10,000 round trips).
   * Keyed by the names as given; users never seen are left out.
   */
  lastSeen(users: readonly string[]): Promise<Map<string, number>>;
  /** Whether the user has ever signed in. */
  knownUser(user: string): Promise<boolean>;
  /**
   * Open mode: gives `name` to `session`, atomically (also across nodes).
   * Names compare case-insensitively: a claim on "Alice" holds "alice" too.
   * - Unclaimed and `create`: claims it for `session` (seen = `now`) → ok.
   * - Claimed by `session`: refreshes `seen` to `now` (keeping the display case) → ok.
   * - Otherwise → not ok, with the current claim (null when unclaimed), and nothing changes.
   * The store never takes a claim away by itself: expiry is {@link releaseName}'s job.
   */
  claimName(name: string, session: string, now: number, create: boolean): Promise<ClaimResult>;
  /** Open mode: who holds `name` (any spelling), or null; a read that changes nothing. */
  nameClaim(name: string): Promise<NameClaim | null>;
  /**
   * Open mode: releases `name` if `session` holds it (and, with
   * `seenBefore`, only if the holder was last seen before that time: an
   * expiry must not release a name whose holder just came back), and forgets everything
   * private to it: its direct-message conversations (both parties lose them;
   * message ids of a later conversation between the same names continue
   * after the old ones), every read marker of those conversations, its own
   * read markers, its room memberships, its "known user" mark, its count of
   * rooms created (the rooms stay, so a later holder starts at none), its
   * last-seen time, its sessions and its refs (a later holder's sends are never taken for
   * its resends). Room
   * messages it sent stay. Resolves the rooms it was in (to announce the
   * leaves), or null when `session` did not hold the name (nothing changed).
   */
  releaseName(name: string, session: string, seenBefore?: number): Promise<string[] | null>;
  /** Open mode: claims not seen since `before` (ms), oldest first, at most `limit`. */
  staleClaims(before: number, limit: number): Promise<NameClaim[]>;
  /**
   * Open mode: claims seen at or after `query.since` whose name contains
   * `query.match` (ignoring case), newest first (ties by lower-cased name,
   * last first), at most `query.limit`: one read, for the directory.
   */
  recentClaims(query: RecentQuery): Promise<NameClaim[]>;
  /**
   * Revokes a session until `until` (ms since the epoch): its tokens stop
   * working everywhere. A later call with an earlier `until` does not shorten it.
   */
  revokeSession(session: string, until: number): Promise<void>;
  /** Whether a session was revoked (and the revocation has not lapsed at `now`). */
  sessionRevoked(session: string, now: number): Promise<boolean>;
  /**
   * Records that `user` signed in with `session` at `seen` (ms; only moves
   * forward). At most {@link SESSIONS_KEPT} sessions are kept per user: the
   * least recently seen go first. Names compare ignoring case.
   */
  noteSession(user: string, session: string, seen: number): Promise<void>;
  /**
   * The sessions of each of `users` seen at or after `since` (ms) and not
   * revoked at `now` (see {@link revokeSession}), latest first, in one read
   * however many users (keyed by the names as given; users without any are
   * left out).
   */
  sessions(
    users: readonly string[],
    since: number,
    now: number,
  ): Promise<Map<string, SessionSeen[]>>;
  /** Forgets every session recorded for `user` (signed out everywhere, or removed). */
  forgetSessions(user: string): Promise<void>;
  /** Makes everything written so far durable and releases the backend. */
  close(): Promise<void>;
}

/**
 * The gap rule every store follows for a `since` page: changes after `since`
 * are not all known when something changed after it was dropped
 * (`since < trimmed`), or when `since` is ahead of the conversation's
 * position (`seq`): the client holds positions this store never gave out,
 * from before a restart that lost them (the memory store) or from another
 * chat.
 */
export function sinceGap(since: number, trimmed: number, seq: number): boolean {
  return since < trimmed || since > seq;
}

/**
 * Refreshes the `replyTo` of `messages` from the originals' current state:
 * the snippet follows edits, and a deleted original says so. `originals`
 * reads the kept originals by id (missing ones keep the snippet they were
 * sent with). Returns new message objects where something changed.
 */
export async function refreshReplies(
  messages: ChatMessage[],
  originals: (ids: number[]) => Promise<Map<number, ChatMessage>> | Map<number, ChatMessage>,
): Promise<ChatMessage[]> {
  const ids = [...new Set(messages.flatMap((m) => m.replyTo ? [m.replyTo.id] : []))];
  if (ids.length === 0) return messages;
  const found = await originals(ids);
  return messages.map((m) => {
    const o = m.replyTo && found.get(m.replyTo.id);
    return o ? { ...m, replyTo: replyRef(o) } : m;
  });
}

/** What a reply to `original` carries about it, as the original is now. */
export function replyRef(original: ChatMessage): ReplyRef {
  return original.deleted
    ? { id: original.id, from: original.from, snippet: "", deleted: true }
    : { id: original.id, from: original.from, snippet: snippetOf(original.text) };
}

/** Splits a DM conversation key `@a:b` into its two users. */
export function dmPair(conv: string): [string, string] | null {
  if (!conv.startsWith("@")) return null;
  const i = conv.indexOf(":");
  return [conv.slice(1, i), conv.slice(i + 1)];
}

/** Searchable text by message object (messages are never changed in place). */
const searchableText = new WeakMap<ChatMessage, string>();

/**
 * What a message is found by: its words without their Markdown
 * (`plainText`) and the names of its files ("report" finds the message that
 * carries `q3-report.pdf`). The SQLite store indexes this; see
 * {@link searchText} for the scanning stores.
 */
export function searchable(text: string, files?: readonly { name: string }[]): string {
  const plain = plainText(text);
  if (!files?.length) return plain;
  return [plain, ...files.map((f) => f.name)].filter((t) => t !== "").join(" ");
}

/**
 * What the scanning stores (memory, Redis) match search words against:
 * {@link searchable}, lower-cased. Cached per message object.
 */
export function searchText(msg: ChatMessage): string {
  let text = searchableText.get(msg);
  if (text === undefined) {
    text = searchable(msg.text, msg.files).toLowerCase();
    searchableText.set(msg, text);
  }
  return text;
}

/** Every whitespace-separated word of `q`, lower-cased (at most 8). */
export function searchWords(q: string): string[] {
  return q.toLowerCase().split(/\s+/).filter((w) => w !== "").slice(0, 8);
}
