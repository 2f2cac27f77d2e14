// This module is browser compatible.
/**
 * What kind of room a room is (private, read-only, archived, a default room,
 * `@room` for admins only), in words: the flags a `joined` frame carries,
 * the room notices an admin's `room_settings` leaves ("alice made #news
 * read-only"), and what the app offers or refuses in each kind of room.
 *
 * @module
 */
import type { RoomKind } from "../protocol.ts";

/** The flags of a room a frame carries (`joined`, a `rooms` entry), without anything else. */
export function kindOf(f: RoomKind): RoomKind {
  const kind: RoomKind = {};
  if (f.private) kind.private = true;
  if (f.readOnly) kind.readOnly = true;
  if (f.archived) kind.archived = true;
  if (f.autoJoin) kind.autoJoin = true;
  if (f.restrictRoomMentions) kind.restrictRoomMentions = true;
  return kind;
}

/** Whether two kinds are the same. */
export function sameKind(a: RoomKind, b: RoomKind): boolean {
  return !!a.private === !!b.private && !!a.readOnly === !!b.readOnly &&
    !!a.archived === !!b.archived && !!a.autoJoin === !!b.autoJoin &&
    !!a.restrictRoomMentions === !!b.restrictRoomMentions;
}

/**
 * What changed from `before` to `after`, one line each, as the room shows it.
 *
 * @example
 * ```ts
 * import { kindNotices } from "./room_kind.ts";
 * kindNotices("news", "alice", {}, { readOnly: true }); // ["alice made #news read-only"]
 * ```
 */
export function kindNotices(room: string, by: string, before: RoomKind, after: RoomKind): string[] {
  const who = by === "" ? "An admin" : by;
  const out: string[] = [];
  const turned = (key: keyof RoomKind) => !!before[key] !== !!after[key] ? !!after[key] : null;
  const p = turned("private");
  if (p !== null) {
    out.push(p ? `${who} made #${room} private` : `${who} made #${room} public`);
  }
  const r = turned("readOnly");
  if (r !== null) {
    out.push(
      r ? `${who} made #${room} read-only` : `${who} let everyone post in #${room} again`,
    );
  }
  const a = turned("archived");
  if (a !== null) out.push(a ? `${who} archived #${room}` : `${who} unarchived #${room}`);
  const d = turned("autoJoin");
  if (d !== null) {
    out.push(
      d ? `${who} made #${room} a default room` : `${who} made #${room} no longer a default room`,
    );
  }
  const m = turned("restrictRoomMentions");
  if (m !== null) {
    out.push(
      m
        ? `${who} let only admins use @room and @here in #${room}`
        : `${who} let everyone use @room and @here in #${room} again`,
    );
  }
  return out;
}

/**
 * Why the composer of a room is not there for this user, or null when they
 * may post: an archived room is read-only for everyone, a read-only one for
 * everyone but admins.
 */
export function postingClosed(room: string, kind: RoomKind, admin: boolean): string | null {
  if (kind.archived) return `#${room} is archived: read-only`;
  if (kind.readOnly && !admin) return `Only admins post in #${room}`;
  return null;
}

/** What a user may do to the messages of a room of this kind (the server refuses the rest). */
export interface MessageRights {
  /** Reply (the composer is there). */
  reply: boolean;
  /** Edit their own messages. */
  edit: boolean;
  /** React. */
  react: boolean;
  /** Delete their own messages (admins: anyone's). */
  delete: boolean;
}

/**
 * What a user may do to messages in a room of kind `kind`: an archived room
 * takes no changes but an admin's delete; in a read-only room a member
 * reacts and deletes their own messages, but neither posts nor edits.
 */
export function messageRights(kind: RoomKind, admin: boolean): MessageRights {
  if (kind.archived) return { reply: false, edit: false, react: false, delete: admin };
  if (kind.readOnly && !admin) return { reply: false, edit: false, react: true, delete: true };
  return { reply: true, edit: true, react: true, delete: true };
}
