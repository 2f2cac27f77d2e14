// This module is browser compatible.
/**
 * What the app shows when it starts offline: the conversations the user
 * last had and the last messages of the ones open lately, kept in the page's
 * storage under a key of the user's (bounded in size) and removed on
 * sign-out. It is only ever shown, read-only, until the server answers.
 *
 * @module
 */
import type { ChatMessage } from "../protocol.ts";
import type { ChatModel } from "./model.ts";
import type { KeyValueStorage } from "./unsent.ts";

/** Storage keys of snapshots start with this. */
export const SNAPSHOT_PREFIX = "chat.offline.";
/** Messages kept per conversation. */
export const SNAPSHOT_MESSAGES = 30;
/** Conversations whose messages are kept (the open one and those open before it). */
export const SNAPSHOT_CONVERSATIONS = 5;
/** Largest snapshot, in characters of JSON: older conversations' messages go first. */
export const SNAPSHOT_MAX = 200_000;
/** Longest message text kept. */
const MAX_TEXT = 2000;

/** A message as kept for offline. */
export interface SnapshotMessage {
  id: number;
  from: string;
  text: string;
  ts: string;
  /** Names of its attachments. */
  files?: string[];
}

/** A conversation in the list. */
export interface SnapshotConversation {
  /** `#room` or `@peer`. */
  key: string;
  unread: number;
  /** Its last messages, oldest first (only for conversations open lately). */
  messages?: SnapshotMessage[];
}

/** The last state the app had for a user. */
export interface Snapshot {
  v: 1;
  user: string;
  /** When it was taken (ISO). */
  saved: string;
  /** The open conversation. */
  active: string | null;
  conversations: SnapshotConversation[];
}

/** Storage key of `user`'s snapshot. */
export function snapshotKey(user: string): string {
  return `${SNAPSHOT_PREFIX}${user.toLowerCase()}`;
}

function keep(m: ChatMessage): SnapshotMessage | null {
  if (m.deleted || m.removed) return null;
  const out: SnapshotMessage = {
    id: m.id,
    from: m.from,
    text: m.text.length > MAX_TEXT ? `${m.text.slice(0, MAX_TEXT)}…` : m.text,
    ts: m.ts,
  };
  if (m.files?.length) out.files = m.files.map((f) => f.name);
  return out;
}

/**
 * Takes the model's snapshot: every conversation, and the last messages of
 * `recent` (conversation keys, most recent first).
 */
export function takeSnapshot(model: ChatModel, recent: readonly string[]): Snapshot | null {
  const user = model.me.peek();
  if (!user) return null;
  const wanted = new Set(recent.slice(0, SNAPSHOT_CONVERSATIONS));
  const conversations: SnapshotConversation[] = [];
  for (const conv of [...model.rooms.peek(), ...model.dms.peek()]) {
    if (conv.kind === "room" && !conv.member.peek()) continue;
    const c: SnapshotConversation = { key: conv.key, unread: conv.unread.peek() };
    if (wanted.has(conv.key) && conv.loaded.peek()) {
      c.messages = conv.messages.peek().slice(-SNAPSHOT_MESSAGES).map(keep).filter((m) =>
        m !== null
      );
    }
    conversations.push(c);
  }
  return {
    v: 1,
    user,
    saved: new Date().toISOString(),
    active: model.active.peek(),
    conversations,
  };
}

/**
 * Writes `snap`, dropping the messages of the least recent conversations
 * until it fits {@link SNAPSHOT_MAX}. False when storage refused it.
 */
export function saveSnapshot(
  storage: KeyValueStorage,
  snap: Snapshot,
  recent: readonly string[],
): boolean {
  const rank = (key: string) => {
    const i = recent.indexOf(key);
    return i < 0 ? recent.length : i;
  };
  const victims = snap.conversations.filter((c) => c.messages)
    .sort((a, b) => rank(b.key) - rank(a.key));
  let json = JSON.stringify(snap);
  while (json.length > SNAPSHOT_MAX && victims.length > 0) {
    delete victims.shift()!.messages;
    json = JSON.stringify(snap);
  }
  if (json.length > SNAPSHOT_MAX) return false;
  try {
    storage.setItem(snapshotKey(snap.user), json);
    return true;
  } catch {
    return false;
  }
}

const KEY = /^[#@][A-Za-z0-9_-]{1,32}$/;

/** Reads `user`'s snapshot; anything unreadable is skipped. */
export function loadSnapshot(storage: KeyValueStorage, user: string): Snapshot | null {
  let raw: unknown;
  try {
    raw = JSON.parse(storage.getItem(snapshotKey(user)) ?? "null");
  } catch {
    return null;
  }
  const s = raw as Partial<Snapshot> | null;
  if (!s || s.v !== 1 || typeof s.user !== "string" || !Array.isArray(s.conversations)) return null;
  if (s.user.toLowerCase() !== user.toLowerCase()) return null;
  const conversations: SnapshotConversation[] = [];
  for (const c of s.conversations) {
    if (!c || typeof c.key !== "string" || !KEY.test(c.key)) continue;
    const out: SnapshotConversation = {
      key: c.key,
      unread: Number.isSafeInteger(c.unread) && c.unread > 0 ? c.unread : 0,
    };
    if (Array.isArray(c.messages)) {
      out.messages = c.messages.filter((m) =>
        m && Number.isSafeInteger(m.id) && typeof m.from === "string" &&
        typeof m.text === "string" && typeof m.ts === "string"
      ).map((m) => {
        const kept: SnapshotMessage = { id: m.id, from: m.from, text: m.text, ts: m.ts };
        if (Array.isArray(m.files)) kept.files = m.files.filter((f) => typeof f === "string");
        return kept;
      });
    }
    conversations.push(out);
  }
  return {
    v: 1,
    user: s.user,
    saved: typeof s.saved === "string" ? s.saved : "",
    active: typeof s.active === "string" && KEY.test(s.active) ? s.active : null,
    conversations,
  };
}

/** Removes every user's snapshot (on sign-out: nothing of theirs stays behind). */
export function clearSnapshots(storage: Storage): void {
  const keys: string[] = [];
  for (let i = 0; i < storage.length; i++) {
    const k = storage.key(i);
    if (k?.startsWith(SNAPSHOT_PREFIX)) keys.push(k);
  }
  for (const k of keys) storage.removeItem(k);
}
