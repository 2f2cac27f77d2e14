/**
 * Frame text built by hand where it is hot or must be bounded: a live
 * message (one string for every recipient, the same on every node) and
 * replies built from stored data, which stop before their encoded size
 * passes a budget instead of after a count.
 *
 * @module
 */
import {
  type ChatMessage,
  type Conversation,
  type NotifyLevel,
  type PushInfo,
  type RoomRename,
  type SendLimits,
  type ServerFrame,
  type Target,
  utf8Length,
  type WelcomeFrame,
} from "../../protocol.ts";
import { dmPair } from "../store/store.ts";

/** A server frame as JSON text. */
export function encode(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

/**
 * The `message` frame of a new message; key order is fixed so every node
 * builds the same text. Only `replyTo` is optional: a new message has no
 * edits or reactions yet.
 */
export function messageFrame(msg: ChatMessage): string {
  const where = msg.room !== undefined ? `"room":"${msg.room}"` : `"to":"${msg.to}"`;
  const reply = msg.replyTo === undefined ? "" : `,"replyTo":${JSON.stringify(msg.replyTo)}`;
  const files = msg.files === undefined ? "" : `,"files":${JSON.stringify(msg.files)}`;
  return `{"type":"message","id":${msg.id},"seq":${msg.seq},${where},"from":"${msg.from}","text":${
    JSON.stringify(msg.text)
  },"ts":"${msg.ts}"${reply}${files}}`;
}

/**
 * The target of a frame built from a conversation, event or frame: its room,
 * or else the user named in `to`.
 */
export function targetOf(x: { room?: string; to?: string }): Target {
  return x.room !== undefined ? { room: x.room } : { to: x.to! };
}

/** The other party of DM conversation `conv` for `user` (`user` itself, in a DM to oneself). */
export function peerOf(conv: string, user: string): string {
  const [a, b] = dmPair(conv)!;
  return a === user ? b : a;
}

/** A frame's text with `"ref"` added: the sender's own copy. */
export function withRef(text: string, ref: string): string {
  return `${text.slice(0, -1)},"ref":${JSON.stringify(ref)}}`;
}

/** Items encoded within a budget. */
export interface Fitted {
  /** The JSON text of the items kept, in their original order. */
  parts: string[];
  /** UTF-8 bytes of the parts and the commas between them. */
  bytes: number;
  /** How many items were left out. */
  dropped: number;
  /** Index of the first item kept. */
  start: number;
  /** Index after the last item kept. */
  end: number;
}

/**
 * Encodes `items` one by one, from the start (`"first"`) or from the end
 * (`"last"`), until the next one would take the total past `budget` UTF-8
 * bytes. At least one item is always kept, so that paging always moves on.
 *
 * @example
 * ```ts
 * import { fitItems } from "./frames.ts";
 * const f = fitItems(["aaaa", "bbbb", "cccc"], 14, "last");
 * if (f.parts.join() !== '"bbbb","cccc"' || f.dropped !== 1) throw new Error("fit");
 * ```
 */
export function fitItems(
  items: readonly unknown[],
  budget: number,
  keep: "first" | "last",
): Fitted {
  const parts: string[] = [];
  let bytes = 0;
  const n = items.length;
  for (let k = 0; k < n; k++) {
    const part = JSON.stringify(items[keep === "first" ? k : n - 1 - k]);
    const size = utf8Length(part) + (k > 0 ? 1 : 0);
    if (k > 0 && bytes + size > budget) break;
    parts.push(part);
    bytes += size;
  }
  const k = parts.length;
  if (keep === "last") parts.reverse();
  return {
    parts,
    bytes,
    dropped: n - k,
    start: keep === "first" ? 0 : n - k,
    end: keep === "first" ? k : n,
  };
}

/**
 * `frame` as JSON with arrays added whose items are already JSON:
 * `{...frame, key: [...], …}` without encoding the items again.
 *
 * @example
 * ```ts
 * import { withArrays } from "./frames.ts";
 * const text = withArrays({ type: "x" }, { a: ["1", "2"] });
 * if (text !== '{"type":"x","a":[1,2]}') throw new Error(text);
 * ```
 */
export function withArrays(frame: object, arrays: Record<string, readonly string[]>): string {
  let text = JSON.stringify(frame).slice(0, -1);
  for (const [key, parts] of Object.entries(arrays)) {
    text += `${text.length > 1 ? "," : ""}"${key}":[${parts.join(",")}]`;
  }
  return text + "}";
}

/** UTF-8 bytes of a frame's fixed part (everything but the bounded arrays). */
export function headBytes(frame: object): number {
  return utf8Length(JSON.stringify(frame));
}

/** What a `welcome` frame is built from (see {@link welcomeFrame}). */
export interface WelcomeParts {
  /** The signed-in user's name. */
  user: string;
  /** The session token to keep. */
  token: string;
  /** The user's rooms. */
  rooms: Iterable<string>;
  /** The user's conversations with their markers. */
  conversations: Conversation[];
  /** The online list as JSON fields, serialized once per change. */
  online: string;
  /** The server's sign-in mode. */
  mode: string;
  /** The user's role (login mode only). */
  role?: "admin" | "member";
  /** The user's rooms renamed lately (old name → name now); left out when empty. */
  renamed?: RoomRename[];
  /** The send limits the client should keep to. */
  limits: SendLimits;
  /** The reply budget in bytes. */
  replyBytes: number;
  /** Web Push, when it is on. */
  push?: PushInfo;
  /** The user's levels that differ from the default; left out when none. */
  levels?: Record<string, NotifyLevel>;
}

/**
 * The `welcome` frame, within the reply budget: rooms may take half of it;
 * among the conversations the rooms come first, then direct messages with
 * unread ones first. What does not fit is left out and `more` says so.
 */
export function welcomeFrame(parts: WelcomeParts): string {
  const head = {
    type: "welcome",
    user: parts.user,
    token: parts.token,
  } satisfies Partial<WelcomeFrame>;
  const online = parts.online;
  const renamed = parts.renamed?.length ? parts.renamed : undefined;
  const extra = { push: parts.push, levels: parts.levels };
  const budget = parts.replyBytes - headBytes(head) - utf8Length(online) - 64 -
    (renamed ? utf8Length(JSON.stringify(renamed)) : 0) - headBytes(extra);
  const rooms = fitItems([...parts.rooms].sort(), budget / 2, "first");
  const conversations = parts.conversations;
  const ordered = [
    ...conversations.filter((c) => c.room !== undefined),
    ...conversations.filter((c) => c.room === undefined && c.unread > 0),
    ...conversations.filter((c) => c.room === undefined && c.unread === 0),
  ];
  const convs = fitItems(ordered, budget - rooms.bytes, "first");
  const tail: {
    mode: string;
    role?: string;
    limits: SendLimits;
    more?: boolean;
    renamed?: RoomRename[];
    push?: PushInfo;
    levels?: Record<string, NotifyLevel>;
  } = {
    mode: parts.mode,
    limits: parts.limits,
  };
  if (parts.role !== undefined) tail.role = parts.role;
  if (rooms.dropped > 0 || convs.dropped > 0) tail.more = true;
  if (renamed) tail.renamed = renamed;
  if (parts.push) tail.push = parts.push;
  if (parts.levels) tail.levels = parts.levels;
  const first = withArrays(head, { rooms: rooms.parts });
  const rest = withArrays(tail, { conversations: convs.parts });
  return `${first.slice(0, -1)},${online},${rest.slice(1)}`;
}
