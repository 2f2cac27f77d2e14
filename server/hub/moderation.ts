/**
 * What admins do to people over the WebSocket: `ban` and `unban` (the whole
 * chat) and `kick` (one room). Each is checked here (admins only, never an
 * admin or oneself as the target), kept by the admin store or the message
 * store first, recorded in the audit log, then published so that every node
 * acts on it: a ban closes the user's connections everywhere at once.
 *
 * Which bans are in force is the admin store's to say; each node also keeps
 * the bans it heard of in the last minute, so that a sign-in that checked
 * the store just before a ban cannot slip in after it.
 *
 * @module
 */
import {
  type BanFrame,
  FrameError,
  type KickFrame,
  LOBBY,
  type ServerFrame,
  type UnbanFrame,
} from "../../protocol.ts";
import { sizeOf } from "./member_counts.ts";
import { type AdminStore, type Ban, record } from "../admin/admin.ts";
import type { BanEvent } from "../broker/broker.ts";
import type { Conn } from "./conn.ts";
import type { NodeContext } from "./context.ts";

/** How long a node remembers a ban it heard of (ms): longer than any sign-in takes. */
const RECENT_BAN_MS = 60_000;

/** How many times {@link Moderation.evict} reads a user's rooms again (renames racing it). */
const EVICT_PASSES = 3;

/** What {@link Moderation} needs from the node. */
export interface ModerationContext extends NodeContext {
  admin: AdminStore;
  /** Sends a frame to one connection. */
  reply: (conn: Conn, frame: ServerFrame) => void;
  /** Whether the user is in the room. */
  isMember: (user: string, room: string) => Promise<boolean>;
  /** Forgets the user's push subscriptions (a ban): their devices get no more pushes. */
  forgetPushes?: (user: string) => Promise<void>;
}

/** The words a banned user is told. */
export function banMessage(ban: Pick<Ban, "reason" | "until">): string {
  const until = ban.until === undefined ? "" : ` until ${new Date(ban.until).toISOString()}`;
  return `You are banned from this chat${until}${ban.reason ? `: ${ban.reason}` : ""}`;
}

/** Bans, unbans and kicks. */
export class Moderation {
  #ctx: ModerationContext;
  /** Lower-cased user → the ban heard of, with when it was heard (see the module docs). */
  #recent = new Map<string, { ban: Pick<Ban, "reason" | "until">; heard: number }>();

  /** Moderates with what `ctx` gives. */
  constructor(ctx: ModerationContext) {
    this.#ctx = ctx;
  }

  /** The ban of `user` in force now, or null: the store's word, or a ban just heard of. */
  async banOf(user: string): Promise<Pick<Ban, "reason" | "until"> | null> {
    return this.recentBan(user) ?? await this.#ctx.admin.banned(user, this.#ctx.now());
  }

  /** A ban of `user` this node heard of in the last minute and still in force, or null. */
  recentBan(user: string): Pick<Ban, "reason" | "until"> | null {
    const key = user.toLowerCase();
    const hit = this.#recent.get(key);
    if (!hit) return null;
    const now = this.#ctx.now();
    if (now - hit.heard > RECENT_BAN_MS || (hit.ban.until !== undefined && hit.ban.until <= now)) {
      this.#recent.delete(key);
      return null;
    }
    return hit.ban;
  }

  /** A ban (or its end: `on` false) published by any node, this one included. */
  heard(user: string, on: boolean, ban: Pick<Ban, "reason" | "until"> = {}): void {
    const key = user.toLowerCase();
    if (!on) {
      this.#recent.delete(key);
      return;
    }
    const now = this.#ctx.now();
    // Old entries go as new ones come: the map holds only the last minute's.
    for (const [k, v] of this.#recent) {
      if (now - v.heard <= RECENT_BAN_MS) break;
      this.#recent.delete(k);
    }
    this.#recent.delete(key);
    this.#recent.set(key, { ban, heard: now });
  }

  /** `ban`: admins only; the target must be an account that is not an admin. */
  async ban(conn: Conn, frame: BanFrame): Promise<void> {
    const by = this.#admin(conn, frame.ref);
    const user = this.#target(by, frame.user, frame.ref);
    const now = this.#ctx.now();
    const ban: Ban = { user, by, at: now };
    if (frame.reason) ban.reason = frame.reason;
    if (frame.duration !== undefined) ban.until = now + frame.duration * 1000;
    await this.#ctx.admin.ban(ban);
    // Their devices get no more pushes (the dispatcher also skips the banned).
    await this.#ctx.forgetPushes?.(user).catch((err) =>
      this.#ctx.log.warn(
        `Could not forget "${user}"'s push subscriptions: ${(err as Error).message}`,
      )
    );
    const event: BanEvent = { kind: "ban", user };
    if (ban.reason) event.reason = ban.reason;
    if (ban.until !== undefined) event.until = ban.until;
    // Every node closes their connections (a failure here answers `unavailable`:
    // the ban is kept, and banning again is how the admin makes sure).
    await this.#ctx.broker.publish(event);
    // Out of the chat, out of its rooms: member lists do not fill with the banned.
    await this.evict(user, by);
    await record(this.#ctx.admin, this.#ctx.log, {
      at: now,
      by,
      action: "ban",
      target: user,
      detail: [
        ban.until === undefined ? "until unbanned" : `for ${frame.duration} s`,
        ban.reason,
      ].filter(Boolean).join(": "),
    });
    const reply: ServerFrame = { type: "banned", user, by };
    if (ban.reason) reply.reason = ban.reason;
    if (ban.until !== undefined) reply.until = ban.until;
    if (frame.ref !== undefined) reply.ref = frame.ref;
    this.#ctx.reply(conn, reply);
  }

  /** `unban`: admins only. */
  async unban(conn: Conn, frame: UnbanFrame): Promise<void> {
    const by = this.#admin(conn, frame.ref);
    const user = this.#ctx.auth.canonical(frame.user) ?? frame.user;
    const ok = await this.#ctx.admin.unban(user);
    if (ok) {
      await this.#ctx.broker.publish({ kind: "unban", user });
      await record(this.#ctx.admin, this.#ctx.log, {
        at: this.#ctx.now(),
        by,
        action: "unban",
        target: user,
      });
    }
    const reply: ServerFrame = { type: "unbanned", user, ok };
    if (frame.ref !== undefined) reply.ref = frame.ref;
    this.#ctx.reply(conn, reply);
  }

  /** `kick`: admins only; the user leaves the room on every node and is told who removed them. */
  async kick(conn: Conn, frame: KickFrame): Promise<void> {
    const by = this.#admin(conn, frame.ref);
    const user = this.#target(by, frame.user, frame.ref);
    const room = frame.room;
    if (room === LOBBY) {
      throw new FrameError(
        "bad_request",
        `Everyone stays in "${LOBBY}": ban them instead`,
        frame.ref,
      );
    }
    // A private room is its members' even to admins: one who is not in it
    // learns nothing of who is (and removes nobody from it).
    const kind = await this.#ctx.store.roomSettings(room);
    if (kind?.private && !(await this.#ctx.isMember(by, room))) {
      throw new FrameError(
        "unknown_room",
        `You are not in room "${room}": join it first`,
        frame.ref,
      );
    }
    if (!(await this.#ctx.isMember(user, room))) {
      throw new FrameError("unknown_user", `"${user}" is not in room "${room}"`, frame.ref);
    }
    // Not removed: they left, or the room was renamed meanwhile (its members went with it).
    if (!(await this.#remove(user, room, by))) {
      throw new FrameError("unknown_user", `"${user}" is not in room "${room}"`, frame.ref);
    }
    await record(this.#ctx.admin, this.#ctx.log, {
      at: this.#ctx.now(),
      by,
      action: "kick",
      target: user,
      detail: room,
    });
    const reply: ServerFrame = { type: "kicked", room, user };
    if (frame.ref !== undefined) reply.ref = frame.ref;
    this.#ctx.reply(conn, reply);
  }

  /**
   * Takes `user` out of every room (`general` too: a sign-in puts them back
   * there), telling each room's members, on every node; `by` names the admin
   * who did it, if one did. For the banned and the removed.
   */
  async evict(user: string, by?: string): Promise<void> {
    // Read again after each pass: a room renamed meanwhile kept them under its new name.
    for (let pass = 0; pass < EVICT_PASSES; pass++) {
      const rooms = await this.#ctx.store.roomsOf(user);
      if (rooms.length === 0) return;
      for (const room of rooms) await this.#remove(user, room, by);
    }
  }

  /** Takes `user` out of `room` (kept first, then told on every node); false when not a member. */
  async #remove(user: string, room: string, by?: string): Promise<boolean> {
    if (!(await this.#ctx.store.leave(user, room))) return false;
    const count = await sizeOf(this.#ctx.store, room);
    await this.#ctx.broker.publish({
      kind: "member",
      user,
      room,
      joined: false,
      ts: new Date(this.#ctx.now()).toISOString(),
      ...(by === undefined ? {} : { by }),
      ...(count === undefined ? {} : { count }),
    });
    return true;
  }

  /** The asking admin's name; `forbidden` for anyone else. */
  #admin(conn: Conn, ref?: string): string {
    const user = conn.user!;
    if (this.#ctx.auth.role(user.name) !== "admin") {
      throw new FrameError("forbidden", "Only admins may do this", ref);
    }
    return user.name;
  }

  /** The account `name` names, if an admin may act on it. */
  #target(by: string, name: string, ref?: string): string {
    const user = this.#ctx.auth.canonical(name);
    if (user === undefined) throw new FrameError("unknown_user", `There is no user "${name}"`, ref);
    if (user === by) throw new FrameError("bad_request", "You cannot do this to yourself", ref);
    if (this.#ctx.auth.role(user) === "admin") {
      throw new FrameError(
        "forbidden",
        `"${user}" is an admin: make them a member first`,
        ref,
      );
    }
    return user;
  }
}
