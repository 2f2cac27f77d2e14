// This module is browser compatible.
/**
 * One conversation (a room or a direct-message peer) as the client holds it:
 * its messages in id order (each in its latest known state: edits, deletes
 * and reactions merged in by `seq`), messages still on their way, notices,
 * unread state, members, who is typing, and what the composer is doing (a
 * reply, an edit), each a signal the UI reads directly.
 *
 * @module
 */
import { batch, computed, type ReadonlySignal, signal } from "@preact/signals";
import {
  applyChange,
  type ChangeFrame,
  type ChatMessage,
  type DeletedFrame,
  type FileInfo,
  type MembersPageFrame,
  type ReplyRef,
  type RoomKind,
  sameMessageState,
  snippetOf,
  type Target,
} from "../protocol.ts";
import { mentions } from "./text.ts";

/** A message the user sent that the server has not confirmed yet. */
export interface Pending {
  /**
   * Client reference echoed by the server on the confirmed copy: random, and
   * kept when the message is sent again, so the server can recognize a resend
   * of a message it stored already.
   */
  ref: string;
  text: string;
  /** When it was written (ISO-8601), shown until the server's time replaces it. */
  ts: string;
  /**
   * `queued`: waiting to go out (for the connection, the catch-up, its turn
   * within the send limits, or a retry); `sending`: sent, not confirmed yet;
   * `failed`: refused for a reason retrying alone will not fix.
   */
  state: "queued" | "sending" | "failed";
  /** Why it was not sent (`failed`), in the user's words. */
  error?: string;
  /**
   * The uploads it carries (sent as `send.files`; kept for a resend, which
   * the server accepts with the same `ref`).
   */
  files?: FileInfo[];
  /** The server could not store it: not sent again before this time (ms). */
  retryAt?: number;
  /** How many times the server could not store it. */
  attempts?: number;
  /** The message it answers (sent as `send.replyTo`; kept for a resend). */
  replyTo?: ReplyRef;
}

/**
 * A line between messages: someone joined or left, history is missing, the
 * topic, kind or name of the room changed.
 */
export interface Notice {
  /** Shown after the message with this id (0: before every message). */
  after: number;
  text: string;
  ts: string;
  kind: "join" | "leave" | "gap" | "topic" | "settings" | "rename";
}

/** Where a conversation's history request stands. */
export type HistoryKind = "initial" | "older" | "since";

/** `#room` or `@peer`. */
export function convKey(target: { room?: string; to?: string }): string {
  return target.room !== undefined ? `#${target.room}` : `@${target.to}`;
}

/**
 * Merges messages into a list sorted by id. A message already there is
 * replaced only by a state of it at least as late (`seq` as high: edited,
 * deleted, reacted to since). At the same `seq` the incoming whole message
 * wins: a copy held may have had a live change applied on top of a state
 * older than that change's (a catch-up under way), and only the page's copy
 * is the message as it is. Returns the same array when nothing changed, so
 * signals do not fire for nothing.
 *
 * @example
 * ```ts
 * import { mergeMessages } from "./conversation.ts";
 * const m = (id: number, seq = id) => ({ id, seq, room: "r", from: "a", text: "", ts: "" });
 * const out = mergeMessages([m(1), m(2)], [m(2), m(3)]);
 * if (out.map((x) => x.id).join() !== "1,2,3") throw new Error("merge");
 * if (mergeMessages(out, [m(2, 9)])[1].seq !== 9) throw new Error("later state");
 * ```
 */
export function mergeMessages(list: ChatMessage[], incoming: ChatMessage[]): ChatMessage[] {
  if (incoming.length === 0) return list;
  const newest = list.length > 0 ? list[list.length - 1].id : 0;
  // Live traffic: everything new comes after what we have, in order.
  let inOrder = true;
  let prev = newest;
  for (const m of incoming) {
    if (m.id <= prev) {
      inOrder = false;
      break;
    }
    prev = m.id;
  }
  if (inOrder) return list.concat(incoming.map(strip));
  const byId = new Map<number, ChatMessage>();
  for (const m of list) byId.set(m.id, m);
  let changed = false;
  for (const m of incoming) {
    const old = byId.get(m.id);
    if (!old || seqOf(m) > seqOf(old) || (seqOf(m) === seqOf(old) && !sameMessageState(old, m))) {
      byId.set(m.id, strip(m));
      changed = true;
    }
  }
  if (!changed) return list;
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** Changes of messages not held yet that a conversation keeps at most. */
const MAX_EARLY = 200;

/** A message's position: its latest change (its id for a server that does not say). */
function seqOf(m: ChatMessage): number {
  return m.seq ?? m.id;
}

/** A stored copy without the sender-only `ref` (and the frame's `type`). */
function strip(m: ChatMessage): ChatMessage {
  if (m.ref === undefined && !("type" in m)) return m;
  const { ref: _ref, type: _type, ...rest } = m as ChatMessage & { type?: string };
  return rest;
}

/** What a reply carries about `original` as it is now (see the server's `replyRef`). */
export function replyRefOf(original: ChatMessage): ReplyRef {
  return original.deleted
    ? { id: original.id, from: original.from, snippet: "", deleted: true }
    : { id: original.id, from: original.from, snippet: snippetOf(original.text) };
}

/**
 * Replies in `list` quote the current state of the originals in `changed`
 * (by id): the snippet follows an edit, a deleted original says so. Returns
 * the same array when no reply needed it.
 */
function refreshReplies(list: ChatMessage[], changed: Map<number, ChatMessage>): ChatMessage[] {
  if (changed.size === 0) return list;
  let out = list;
  for (let i = 0; i < list.length; i++) {
    const r = list[i].replyTo;
    const original = r && changed.get(r.id);
    if (!r || !original) continue;
    const ref = replyRefOf(original);
    if (ref.snippet === r.snippet && ref.deleted === r.deleted && ref.from === r.from) continue;
    if (out === list) out = list.slice();
    out[i] = { ...list[i], replyTo: ref };
  }
  return out;
}

/** Index of the message with `id` in a list sorted by id, or -1. */
export function indexOfId(list: ChatMessage[], id: number): number {
  let lo = 0;
  let hi = list.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const at = list[mid].id;
    if (at === id) return mid;
    if (at < id) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** Numbers conversations for {@link Conversation.id}. */
let nextId = 0;

/** A room or a direct-message conversation. */
export class Conversation {
  /**
   * Unique in the page and kept when the room is renamed: the identity of
   * the list that shows it, so a rename leaves the reader where they were.
   */
  readonly id = ++nextId;
  /** Room or direct message. */
  readonly kind: "room" | "dm";
  /** The room's name or the peer's username; a signal, since a room may be renamed. */
  readonly #name = signal("");
  /** The signed-in user (the other party of a DM's messages from the peer). */
  readonly #me: ReadonlySignal<string | null>;
  /** Confirmed messages, by id. */
  readonly messages = signal<ChatMessage[]>([]);
  /** Changes of messages not held yet, by id (see {@link #holdEarly}). */
  readonly #early = new Map<number, ChangeFrame[]>();
  /** Own messages not confirmed yet, in the order written. */
  readonly pending = signal<Pending[]>([]);
  /** Join/leave and gap notices. */
  readonly notices = signal<Notice[]>([]);
  /** Newest message id the server has. */
  readonly last = signal(0);
  /** The user's read marker. */
  readonly read = signal(0);
  /**
   * Room members loaded so far (rooms only), sorted: the first ones by name
   * from `joined`, then page after page (see {@link askMembers}).
   */
  readonly members = signal<string[]>([]);
  /**
   * How many members the room has: from `joined`, `member_count` and the
   * pages, moved by the joins and leaves announced; null before `joined`.
   */
  readonly memberCount = signal<number | null>(null);
  /** `members` holds every member (what is known before `joined` counts as whole). */
  readonly membersComplete: ReadonlySignal<boolean>;
  /**
   * The last page said no names follow the last one loaded: no more pages
   * until the next `joined` (joins the room no longer announces may still
   * be missing, as the count shows).
   */
  readonly membersEnd = signal(false);
  /** A page of members is on its way. */
  readonly loadingMembers = signal(false);
  /** Another page of members may be asked for. */
  readonly moreMembers: ReadonlySignal<boolean>;
  /** The room's topic (`""` when it has none). */
  readonly topic = signal("");
  /**
   * What kind of room it is (private, read-only, archived), from `joined`
   * and kept live by `room_settings`.
   */
  readonly settings = signal<RoomKind>({});
  /** Users typing here, with when their flag expires (ms). */
  readonly typing = signal<ReadonlyMap<string, number>>(new Map());
  /** History has been loaded at least once. */
  readonly loaded = signal(false);
  /** Older messages may exist on the server. */
  readonly hasOlder = signal(false);
  /** An older page is on its way. */
  readonly loadingOlder = signal(false);
  /** The message list is scrolled to the end. */
  readonly atBottom = signal(true);
  /** Unsent text in the composer. */
  readonly draft = signal("");
  /**
   * The user is in the room (always true for direct messages). A room the
   * user left stays listed, not a member, while it holds unsent messages.
   */
  readonly member = signal(true);
  /** A message id the list should scroll to and highlight. */
  readonly focus = signal<number | null>(null);
  /** Read marker when the conversation was opened: a "new" line goes after it. */
  readonly divider = signal(Infinity);
  /**
   * The server's unread count (`welcome.conversations[].unread`) and the
   * newest id it counted to: the count to show until the loaded history
   * reaches back to the read marker (ids skip the positions changes took,
   * so `last - read` counts nothing useful).
   */
  readonly unreadBase = signal<{ count: number; last: number } | null>(null);
  /** The message the composer answers (sent as `send.replyTo`), or null. */
  readonly replyTo = signal<ReplyRef | null>(null);
  /** The id of the user's message being edited in place, or null. */
  readonly editing = signal<number | null>(null);
  /** Unread messages (not counting the user's own). */
  readonly unread: ReadonlySignal<number>;
  /** Some unread message mentions the user (or it is a direct message). */
  readonly mentioned: ReadonlySignal<boolean>;

  /**
   * The position (`seq`) this conversation is up to date with, from the
   * first loaded message on: the highest seen in order (messages, changes,
   * `joined.seq`, the `seq` of `since` pages). A reconnect resumes with
   * `since` = this, which brings what was created and what changed after it.
   */
  cursor = 0;
  /** A `since` catch-up is in progress after a reconnect. */
  resuming = false;
  /** Caught up on this connection: queued messages may go out. */
  synced = false;
  /** The history request on its way, and the ones waiting for it. */
  inflight: HistoryKind | null = null;
  queue: HistoryKind[] = [];

  /**
   * The `members` request on its way: its `ref`, the room name it went
   * under, the name it asked after (the reply echoes all three) and when it
   * went.
   */
  #membersAsked: { ref: string; room: string; after: string | undefined; at: number } | null = null;

  /** Creates an empty conversation; `me` is the signed-in user. */
  constructor(key: string, me: ReadonlySignal<string | null>) {
    this.kind = key[0] === "#" ? "room" : "dm";
    this.#name.value = key.slice(1);
    this.#me = me;
    this.membersComplete = computed(() => {
      const count = this.memberCount.value;
      return count === null || this.members.value.length >= count;
    });
    this.moreMembers = computed(() =>
      this.kind === "room" && !this.membersComplete.value && !this.membersEnd.value
    );
    this.unread = computed(() => {
      const read = this.read.value;
      const last = this.last.value;
      if (last <= read) return 0;
      const msgs = this.messages.value;
      const user = me.value;
      // The loaded messages are contiguous from the oldest on: they hold every
      // message after the marker once they reach back to it (or to the start).
      const covered = this.loaded.value &&
        ((msgs.length > 0 && msgs[0].id <= read) || !this.hasOlder.value);
      const base = this.unreadBase.value;
      const counted = !covered && base !== null && base.last > read;
      const from = counted ? base.last : read;
      let n = counted ? base.count : 0;
      for (let i = msgs.length - 1; i >= 0 && msgs[i].id > from; i--) {
        if (msgs[i].from !== user && !msgs[i].deleted) n++;
      }
      return n;
    });
    this.mentioned = computed(() => {
      if (this.unread.value === 0) return false;
      if (this.kind === "dm") return true;
      const read = this.read.value;
      const user = me.value;
      const msgs = this.messages.value;
      for (let i = msgs.length - 1; i >= 0 && msgs[i].id > read; i--) {
        if (msgs[i].from !== user && !msgs[i].deleted && mentions(msgs[i].text, user)) return true;
      }
      return false;
    });
  }

  /** `#room` or `@peer` (a room's follows its renames). */
  get key(): string {
    return (this.kind === "room" ? "#" : "@") + this.#name.value;
  }

  /** Room name or peer's username (a room's follows its renames). */
  get name(): string {
    return this.#name.value;
  }

  /**
   * The room is called `name` from now on (an admin renamed it): the loaded
   * messages name it so (their links follow), and who was typing is
   * forgotten (the flags were for the old name). Everything else stays.
   */
  rename(name: string): void {
    if (this.kind !== "room" || name === this.#name.peek()) return;
    batch(() => {
      this.#name.value = name;
      this.messages.value = this.messages.peek().map((m) =>
        m.room !== undefined && m.room !== name ? { ...m, room: name } : m
      );
      this.expireTyping();
      // A page asked for under the old name is not waited for: asked again under the new one.
      this.#membersAsked = null;
      this.loadingMembers.value = false;
    });
  }

  /**
   * The members a `joined` lists (the first ones by name) and how many there
   * are (a server that does not say lists them all): the pages loaded
   * before are dropped, and a page still on its way is not taken.
   */
  resetMembers(first: readonly string[], count?: number): void {
    batch(() => {
      this.members.value = [...first].sort();
      this.memberCount.value = count ?? first.length;
      this.membersEnd.value = false;
      this.#membersAsked = null;
      this.loadingMembers.value = false;
    });
  }

  /**
   * What to ask for next (`after`: the last name loaded), marked as asked
   * under `ref`; null when no page should go: every member is here, the
   * end was reached, or a page is on its way (one asked for `stale` ms ago
   * or longer is given up, its answer ignored).
   */
  askMembers(ref: string, now = Date.now(), stale = 15_000): { after?: string } | null {
    if (!this.moreMembers.peek()) return null;
    if (this.#membersAsked !== null && now - this.#membersAsked.at < stale) return null;
    const list = this.members.peek();
    const after = list.length > 0 ? list[list.length - 1] : undefined;
    this.#membersAsked = { ref, room: this.#name.peek(), after, at: now };
    this.loadingMembers.value = true;
    return after === undefined ? {} : { after };
  }

  /**
   * The page asked for under `ref` went nowhere: not sent (not connected),
   * given up, or refused. No page is on its way then; with `last`, none is
   * asked for again before the next `joined` (a refusal asking again would
   * only repeat). Returns whether `ref` was the page on its way.
   */
  cancelMembers(ref: string, last = false): boolean {
    if (this.#membersAsked?.ref !== ref) return false;
    batch(() => {
      this.#membersAsked = null;
      this.loadingMembers.value = false;
      if (last) this.membersEnd.value = true;
    });
    return true;
  }

  /**
   * A `members` reply: merged in (sorted, without duplicates) when it answers
   * the page on its way (its `ref`, or for a server that does not echo it,
   * its room and `after`), else ignored (asked before a new `joined` or a
   * rename). Returns whether it was taken.
   */
  takeMembers(page: MembersPageFrame): boolean {
    const asked = this.#membersAsked;
    if (asked === null) return false;
    if (page.ref !== undefined ? page.ref !== asked.ref : asked.room !== page.room) return false;
    if (asked.after !== page.after) return false;
    this.#membersAsked = null;
    batch(() => {
      const list = this.members.peek();
      const merged = new Set(list);
      for (const name of page.members) merged.add(name);
      if (merged.size !== list.length) this.members.value = [...merged].sort();
      this.memberCount.value = page.count;
      // A page that brings nothing new would be asked for forever.
      this.membersEnd.value = !page.more || merged.size === list.length;
      this.loadingMembers.value = false;
    });
    return true;
  }

  /**
   * `user` joined (an announced join): counted, and listed when the loaded
   * names reach past theirs (else a later page brings them).
   */
  memberJoined(user: string): void {
    const list = this.members.peek();
    if (list.includes(user)) return;
    const count = this.memberCount.peek();
    const whole = count === null || this.membersEnd.peek() || list.length >= count;
    batch(() => {
      if (count !== null) this.memberCount.value = count + 1;
      if (whole || user < list[list.length - 1]) this.members.value = [...list, user].sort();
    });
  }

  /** `user` left (an announced leave): no longer counted or listed. */
  memberLeft(user: string): void {
    const list = this.members.peek();
    const count = this.memberCount.peek();
    const listed = list.includes(user);
    // Not among the names of a whole list: the count never held them.
    if (!listed && (count === null || list.length >= count)) return;
    batch(() => {
      if (count !== null) this.memberCount.value = Math.max(0, count - 1);
      if (listed) this.members.value = list.filter((m) => m !== user);
    });
  }

  /** The frame target: `{room}` or `{to}`. */
  get target(): Target {
    return this.kind === "room" ? { room: this.name } : { to: this.name };
  }

  /** Id of the newest confirmed message (0 when none). */
  get newest(): number {
    const m = this.messages.value;
    return m.length > 0 ? m[m.length - 1].id : 0;
  }

  /** Id of the oldest loaded message (0 when none). */
  get oldest(): number {
    const m = this.messages.value;
    return m.length > 0 ? m[0].id : 0;
  }

  /** The loaded message with `id`, or undefined. */
  find(id: number): ChatMessage | undefined {
    const msgs = this.messages.value;
    const i = indexOfId(msgs, id);
    return i === -1 ? undefined : msgs[i];
  }

  /**
   * Adds messages (any order; one already here is replaced by a later state
   * of it) and moves `last`. With `caughtUp` (the messages of a `since`
   * page), messages older than the oldest loaded one are left out: they
   * come, in their current state, with the older page that holds them.
   */
  add(messages: ChatMessage[], caughtUp = false): void {
    const before = this.messages.value;
    let incoming = messages;
    if (caughtUp && before.length > 0) {
      const oldest = before[0].id;
      incoming = messages.filter((m) => m.id >= oldest);
    }
    let next = mergeMessages(before, incoming);
    if (next !== before) {
      // Replies quote their originals as they are now.
      const changed = new Map<number, ChatMessage>();
      for (const m of incoming) {
        const old = before[indexOfId(before, m.id)];
        if (
          old && seqOf(m) >= seqOf(old) && (old.text !== m.text || old.deleted !== m.deleted)
        ) {
          changed.set(m.id, m);
        }
      }
      next = refreshReplies(next, changed);
      this.messages.value = next;
    }
    this.#applyEarly(incoming);
    const newest = this.newest;
    if (newest > this.last.value) this.last.value = newest;
  }

  /**
   * Applies an `edited`, `deleted` or `reaction` frame to the loaded message
   * it names (nothing for one not loaded, or a change it has already). A
   * `deleted` one for a message never held places its tombstone.
   */
  change(f: ChangeFrame): void {
    const msgs = this.messages.value;
    const i = indexOfId(msgs, f.id);
    if (i === -1 && f.type === "deleted") return this.#placeTombstone(f);
    if (i === -1) return this.#holdEarly(f);
    const next = applyChange(msgs[i], f);
    if (next === msgs[i]) return;
    let list = msgs.slice();
    list[i] = next;
    if (f.type !== "reaction") {
      list = refreshReplies(list, new Map([[f.id, next]]));
      const reply = this.replyTo.value;
      if (reply?.id === f.id) this.replyTo.value = next.deleted ? null : replyRefOf(next);
      if (next.deleted && this.editing.value === f.id) this.editing.value = null;
    }
    this.messages.value = list;
  }

  /**
   * A change of a message not held yet: its page may be on its way (a
   * catch-up, or a `history` page read before the change), and would bring
   * it in a state older than this. Kept, a few, until its message comes.
   */
  #holdEarly(f: ChangeFrame): void {
    if (f.seq <= 0) return;
    if (this.#early.size >= MAX_EARLY && !this.#early.has(f.id)) {
      this.#early.delete(this.#early.keys().next().value!);
    }
    const held = this.#early.get(f.id) ?? [];
    held.push(f);
    this.#early.set(f.id, held);
  }

  /** Applies the changes held for messages that just came, those newer than what came. */
  #applyEarly(incoming: ChatMessage[]): void {
    if (this.#early.size === 0) return;
    for (const m of incoming) {
      const held = this.#early.get(m.id);
      if (!held) continue;
      this.#early.delete(m.id);
      for (const f of held.sort((a, b) => a.seq - b.seq)) {
        const msgs = this.messages.value;
        const i = indexOfId(msgs, f.id);
        if (i !== -1 && f.seq > seqOf(msgs[i])) this.change(f);
      }
    }
  }

  /**
   * A message this conversation never held was deleted (its creation was
   * missed: the user's server caught up after losing its link, or it fell
   * between two pages): its tombstone goes in at its id, as everyone else
   * holds it, when the frame says whose it was and when (`from`, `ts`), and
   * the loaded messages reach back that far. One older than the oldest
   * loaded message is left to the older page that holds it: placed now, it
   * would stand alone before a hole in the scrollback.
   */
  #placeTombstone(f: DeletedFrame): void {
    // Position 0: the answer to a delete that changed nothing.
    if (f.from === undefined || f.ts === undefined || f.seq <= 0) return;
    const msgs = this.messages.value;
    const complete = this.loaded.value && !this.hasOlder.value;
    if (!complete && (msgs.length === 0 || f.id < msgs[0].id)) return;
    // A DM message goes to the other party: the user, when the peer wrote it.
    const me = this.#me.peek() ?? this.name;
    const where = this.kind === "room"
      ? { room: this.name }
      : { to: f.from === this.name ? me : this.name };
    const stone: ChatMessage = {
      id: f.id,
      seq: f.seq,
      ...where,
      from: f.from,
      text: "",
      ts: f.ts,
      deleted: true,
    };
    if (f.removed) stone.removed = true;
    // Replies that quoted it live say it was deleted.
    this.messages.value = refreshReplies(mergeMessages(msgs, [stone]), new Map([[f.id, stone]]));
    if (f.id > this.last.value) this.last.value = f.id;
  }

  /** The user's newest message that is not deleted (for Up arrow: edit it), if loaded. */
  lastOwn(user: string | null): ChatMessage | undefined {
    const msgs = this.messages.value;
    for (let i = msgs.length - 1; i >= 0; i--) {
      if (msgs[i].from === user && !msgs[i].deleted) return msgs[i];
    }
    return undefined;
  }

  /** Adds a notice after the newest message. */
  notice(kind: Notice["kind"], text: string, ts: string, after = this.newest): void {
    this.notices.value = [...this.notices.value, { after, text, ts, kind }];
  }

  /** Marks a user as typing until `until` (ms), or not typing. */
  setTyping(user: string, until: number | null): void {
    const cur = this.typing.value;
    if (until === null && !cur.has(user)) return;
    const next = new Map(cur);
    if (until === null) next.delete(user);
    else next.set(user, until);
    this.typing.value = next;
  }

  /** Drops typing flags that expired before `now`; all of them without `now`. */
  expireTyping(now?: number): void {
    const cur = this.typing.value;
    if (cur.size === 0) return;
    const next = new Map([...cur].filter(([, t]) => now !== undefined && t > now));
    if (next.size !== cur.size) this.typing.value = next;
  }
}
