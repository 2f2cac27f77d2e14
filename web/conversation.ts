// This module is browser compatible.
/**
 * One conversation (a room or a direct-message peer) as the client holds it:
 * its messages in id order, messages still on their way, notices, unread
 * state, members and who is typing, each a signal the UI reads directly.
 *
 * @module
 */
import { computed, type ReadonlySignal, signal } from "@preact/signals";
import type { ChatMessage, Target } from "../protocol.ts";
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
  /** The server could not store it: not sent again before this time (ms). */
  retryAt?: number;
  /** How many times the server could not store it. */
  attempts?: number;
}

/** A line between messages: someone joined or left, or history is missing. */
export interface Notice {
  /** Shown after the message with this id (0: before every message). */
  after: number;
  text: string;
  ts: string;
  kind: "join" | "leave" | "gap" | "topic";
}

/** Where a conversation's history request stands. */
export type HistoryKind = "initial" | "older" | "since";

/** `#room` or `@peer`. */
export function convKey(target: { room?: string; to?: string }): string {
  return target.room !== undefined ? `#${target.room}` : `@${target.to}`;
}

/**
 * Merges messages into a list sorted by id, dropping duplicates. Returns the
 * same array when nothing is new, so signals do not fire for nothing.
 *
 * @example
 * ```ts
 * import { mergeMessages } from "./conversation.ts";
 * const m = (id: number) => ({ id, room: "r", from: "a", text: "", ts: "" });
 * const out = mergeMessages([m(1), m(2)], [m(2), m(3)]);
 * if (out.map((x) => x.id).join() !== "1,2,3") throw new Error("merge");
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
  let added = false;
  for (const m of incoming) {
    if (!byId.has(m.id)) {
      byId.set(m.id, strip(m));
      added = true;
    }
  }
  if (!added) return list;
  return [...byId.values()].sort((a, b) => a.id - b.id);
}

/** A stored copy without the sender-only `ref`. */
function strip(m: ChatMessage): ChatMessage {
  if (m.ref === undefined && !("type" in m)) return m;
  const { id, from, text, ts } = m;
  const out: ChatMessage = { id, from, text, ts };
  if (m.room !== undefined) out.room = m.room;
  if (m.to !== undefined) out.to = m.to;
  return out;
}

/** A room or a direct-message conversation. */
export class Conversation {
  /** `#room` or `@peer`. */
  readonly key: string;
  /** Room or direct message. */
  readonly kind: "room" | "dm";
  /** Room name or peer's username. */
  readonly name: string;
  /** Confirmed messages, by id. */
  readonly messages = signal<ChatMessage[]>([]);
  /** Own messages not confirmed yet, in the order written. */
  readonly pending = signal<Pending[]>([]);
  /** Join/leave and gap notices. */
  readonly notices = signal<Notice[]>([]);
  /** Newest message id the server has. */
  readonly last = signal(0);
  /** The user's read marker. */
  readonly read = signal(0);
  /** Room members (rooms only); only the first ones of a very large room. */
  readonly members = signal<string[]>([]);
  /** How many members a very large room has when `members` is partial, else null. */
  readonly memberCount = signal<number | null>(null);
  /** The room's topic (`""` when it has none). */
  readonly topic = signal("");
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
  /** Unread messages (not counting the user's own). */
  readonly unread: ReadonlySignal<number>;
  /** Some unread message mentions the user (or it is a direct message). */
  readonly mentioned: ReadonlySignal<boolean>;

  /** Everything up to this id is here (from the first loaded message on). */
  syncedTo = 0;
  /** A `since` catch-up is in progress after a reconnect. */
  resuming = false;
  /** Caught up on this connection: queued messages may go out. */
  synced = false;
  /** The history request on its way, and the ones waiting for it. */
  inflight: HistoryKind | null = null;
  queue: HistoryKind[] = [];

  /** Creates an empty conversation; `me` is the signed-in user. */
  constructor(key: string, me: ReadonlySignal<string | null>) {
    this.key = key;
    this.kind = key[0] === "#" ? "room" : "dm";
    this.name = key.slice(1);
    this.unread = computed(() => {
      const read = this.read.value;
      const last = this.last.value;
      if (last <= read) return 0;
      const msgs = this.messages.value;
      if (this.loaded.value && msgs.length > 0 && msgs[0].id <= read + 1) {
        const user = me.value;
        let n = 0;
        for (let i = msgs.length - 1; i >= 0 && msgs[i].id > read; i--) {
          if (msgs[i].from !== user) n++;
        }
        return n;
      }
      return last - read;
    });
    this.mentioned = computed(() => {
      if (this.unread.value === 0) return false;
      if (this.kind === "dm") return true;
      const read = this.read.value;
      const user = me.value;
      const msgs = this.messages.value;
      for (let i = msgs.length - 1; i >= 0 && msgs[i].id > read; i--) {
        if (msgs[i].from !== user && mentions(msgs[i].text, user)) return true;
      }
      return false;
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

  /** Adds messages (any order, duplicates ignored) and moves `last`. */
  add(messages: ChatMessage[]): void {
    const next = mergeMessages(this.messages.value, messages);
    if (next !== this.messages.value) this.messages.value = next;
    const newest = this.newest;
    if (newest > this.last.value) this.last.value = newest;
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
