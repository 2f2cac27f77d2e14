// This module is browser compatible.
/**
 * What must survive a reload: each user's messages not yet confirmed by the
 * server and the composer text of each conversation, kept in the page's
 * storage under keys of their own per user, so that someone else signing in
 * on the same browser neither sees nor sends them.
 *
 * Several tabs of one user share the keys: a tab's write keeps what other
 * tabs wrote (messages it never had, drafts it did not change).
 *
 * @module
 */
import type { FileInfo } from "../protocol.ts";
import type { Pending } from "./conversation.ts";
import { checkFileInfo } from "./uploads.ts";

/** The part of `localStorage` used here. */
export type KeyValueStorage = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** Unsent messages by conversation key (`#room`, `@peer`), in the order written. */
export type UnsentMap = Map<string, Pending[]>;

/** Composer text by conversation key. */
export type DraftMap = Map<string, string>;

const CONV_KEY = /^[#@][A-Za-z0-9_-]{1,32}$/;
const STATES = new Set(["queued", "sending", "failed"]);

/** Storage key of `user`'s unsent messages (names are unique ignoring case). */
export function unsentKey(user: string): string {
  return `chat.unsent.${user.toLowerCase()}`;
}

/** Storage key of `user`'s drafts. */
export function draftsKey(user: string): string {
  return `chat.drafts.${user.toLowerCase()}`;
}

/**
 * Reads `user`'s unsent messages. A message that was on its way counts as
 * queued: it is sent again with the same `ref`, which the server recognizes
 * if it stored it already. Anything unreadable is skipped.
 */
export function loadUnsent(storage: KeyValueStorage, user: string): UnsentMap {
  const out: UnsentMap = new Map();
  const raw = read(storage, unsentKey(user));
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return out;
  for (const [key, list] of Object.entries(raw as Record<string, unknown>)) {
    if (!CONV_KEY.test(key) || !Array.isArray(list)) continue;
    const kept: Pending[] = [];
    for (const item of list) {
      const p = item as Partial<Pending>;
      if (
        typeof p !== "object" || p === null || typeof p.ref !== "string" || p.ref.length === 0 ||
        p.ref.length > 64 || typeof p.text !== "string" || typeof p.ts !== "string" ||
        !STATES.has(p.state as string)
      ) continue;
      const saved: Pending = p.state === "failed"
        ? { ref: p.ref, text: p.text, ts: p.ts, state: "failed", error: String(p.error ?? "") }
        : { ref: p.ref, text: p.text, ts: p.ts, state: "queued" };
      // The message it answers goes with it (sent as `send.replyTo`).
      const r = p.replyTo;
      if (
        r && typeof r === "object" && Number.isSafeInteger(r.id) && r.id > 0 &&
        typeof r.from === "string" && typeof r.snippet === "string"
      ) saved.replyTo = { id: r.id, from: r.from, snippet: r.snippet };
      // Its files go with it (their ids are what the server needs).
      if (Array.isArray(p.files)) {
        const files = p.files.map(checkFileInfo).filter((f): f is FileInfo => f !== null);
        if (files.length > 0) saved.files = files;
      }
      if (saved.text === "" && !saved.files) continue;
      kept.push(saved);
    }
    if (kept.length > 0) out.set(key, kept);
  }
  return out;
}

/**
 * Writes `user`'s unsent messages, keeping those other tabs saved: a saved
 * message whose ref is not in `unsent` stays unless it is one of `ours` (the
 * refs this page wrote before and has since sent or deleted). Removes the
 * entry when nothing is left; false if storage refused.
 */
export function saveUnsent(
  storage: KeyValueStorage,
  user: string,
  unsent: UnsentMap,
  ours: ReadonlySet<string> = new Set(),
): boolean {
  type Saved = Pick<Pending, "ref" | "text" | "ts" | "state" | "error" | "replyTo" | "files">;
  const mine = new Set<string>();
  for (const list of unsent.values()) for (const p of list) mine.add(p.ref);
  const out: Record<string, Saved[]> = {};
  const raw = read(storage, unsentKey(user));
  if (raw !== null && typeof raw === "object" && !Array.isArray(raw)) {
    for (const [key, list] of Object.entries(raw as Record<string, unknown>)) {
      if (!CONV_KEY.test(key) || !Array.isArray(list)) continue;
      const others = list.filter((p: Partial<Pending>) =>
        typeof p?.ref === "string" && !mine.has(p.ref) && !ours.has(p.ref)
      );
      if (others.length > 0) out[key] = others;
    }
  }
  for (const [key, list] of unsent) {
    if (list.length === 0) continue;
    const own = list.map(({ ref, text, ts, state, error, replyTo, files }) => {
      const saved: Saved = { ref, text, ts, state };
      if (error !== undefined) saved.error = error;
      if (replyTo !== undefined) saved.replyTo = replyTo;
      if (files !== undefined && files.length > 0) saved.files = files;
      return saved;
    });
    out[key] = [...(out[key] ?? []), ...own];
  }
  const any = Object.keys(out).length > 0;
  return write(storage, unsentKey(user), any ? JSON.stringify(out) : null);
}

/** Reads `user`'s drafts. */
export function loadDrafts(storage: KeyValueStorage, user: string): DraftMap {
  const out: DraftMap = new Map();
  const raw = read(storage, draftsKey(user));
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) return out;
  for (const [key, text] of Object.entries(raw as Record<string, unknown>)) {
    if (CONV_KEY.test(key) && typeof text === "string" && text !== "") out.set(key, text);
  }
  return out;
}

/**
 * Writes `user`'s drafts that changed since `previous` (what this page wrote
 * last), keeping the others as saved (another tab may have changed them).
 * Empty drafts are left out; false if storage refused.
 */
export function saveDrafts(
  storage: KeyValueStorage,
  user: string,
  drafts: DraftMap,
  previous: DraftMap = new Map(),
): boolean {
  const out = loadDrafts(storage, user);
  for (const key of new Set([...drafts.keys(), ...previous.keys()])) {
    const text = drafts.get(key) ?? "";
    if (text === (previous.get(key) ?? "")) continue;
    if (text === "") out.delete(key);
    else out.set(key, text);
  }
  return write(
    storage,
    draftsKey(user),
    out.size > 0 ? JSON.stringify(Object.fromEntries(out)) : null,
  );
}

function read(storage: KeyValueStorage, key: string): unknown {
  try {
    const text = storage.getItem(key);
    return text === null ? null : JSON.parse(text);
  } catch {
    return null;
  }
}

function write(storage: KeyValueStorage, key: string, value: string | null): boolean {
  try {
    if (value === null) storage.removeItem(key);
    else storage.setItem(key, value);
    return true;
  } catch {
    // Full, or disabled (private browsing): the messages stay in memory.
    return false;
  }
}
