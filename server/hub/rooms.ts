/**
 * Kinds of rooms: private (members only see and reach it), read-only (only
 * admins send: announcements), archived (kept, read-only for everyone, out
 * of the list), a default room (new accounts join it) and one where only
 * admins notify everyone with `@room` or `@here`. The store keeps each
 * room's settings; this node keeps those it has read, updated at once where
 * an admin changes them and by the `room` event on every other node, so that
 * a send does not read the store each time. Only rooms that exist are
 * remembered: a room another node creates private is read from the store the
 * first time it is asked about here. (A node that misses an event — Redis
 * unreachable as it is published — keeps the old kind until the admin sets
 * it again.)
 *
 * Also the commands on rooms' membership, kind and name: `invite` (a member
 * adds someone: the way into a private room), `room_settings` and
 * `rename_room` (admins).
 *
 * @module
 */
import {
  FrameError,
  type InviteFrame,
  LOBBY,
  type RenameRoomFrame,
  type RoomKind,
  type RoomRename,
  type RoomSettingsFrame,
  type ServerFrame,
} from "../../protocol.ts";
import { type AdminStore, record } from "../admin/admin.ts";
import type { RoomSettings, RoomSettingsChange, Store } from "../store/store.ts";
import type { Conn, User } from "./conn.ts";
import type { FilesContext, NodeContext } from "./context.ts";

/** At most this many rooms' settings are remembered (the chat's room cap is 1,000 by default). */
const REMEMBERED = 10_000;

/** At most this many renames are remembered (for late events and for errors in words). */
const RENAMES = 1_000;

/** The settings of the rooms this node has read (see the module docs). */
export class RoomKinds {
  #store: Store;
  #known = new Map<string, RoomSettings>();
  #renames = new Map<string, string>();

  /** Reads what it does not know from `store`. */
  constructor(store: Store) {
    this.#store = store;
  }

  /** The settings of `room`, or null when it does not exist. */
  async of(room: string): Promise<RoomSettings | null> {
    const known = this.#known.get(room);
    if (known) return known;
    const read = await this.#store.roomSettings(room);
    if (read !== null) this.#remember(room, read);
    return read;
  }

  /** What an admin's change made of `room` (an event from any node). */
  set(room: string, settings: RoomSettings): void {
    this.#remember(room, settings);
  }

  /**
   * `room` is called `to` from now on (an admin's rename, from any node):
   * its settings move, and the old name is remembered as the new one's for a
   * while (see {@link renamedTo}).
   */
  renamed(room: string, to: string): void {
    const settings = this.#known.get(room);
    this.#known.delete(room);
    if (settings) this.#remember(to, settings);
    // Both names are live rooms' or free now: neither leads elsewhere.
    this.#renames.delete(room);
    this.#renames.delete(to);
    if (this.#renames.size >= RENAMES) this.#renames.delete(this.#renames.keys().next().value!);
    this.#renames.set(room, to);
  }

  /**
   * What `room` is called now, when this node saw it renamed (following
   * renames of renames); undefined otherwise. A late frame about the old
   * name (published before the rename, heard after it) goes to the room's
   * members under its new name, and a refusal can say where the room went.
   */
  renamedTo(room: string): string | undefined {
    let name = this.#renames.get(room);
    for (let hops = 0; name !== undefined && hops < 8; hops++) {
      const next = this.#renames.get(name);
      if (next === undefined) return name;
      name = next;
    }
    return name;
  }

  /**
   * A room of this name was joined (perhaps created anew after a rename):
   * frames about it are its own from now on. Events reach every node in the
   * order they were published, so none of the new room's comes before this.
   */
  joined(room: string): void {
    this.#renames.delete(room);
  }

  #remember(room: string, settings: RoomSettings): void {
    if (this.#known.size >= REMEMBERED && !this.#known.has(room)) {
      this.#known.delete(this.#known.keys().next().value!);
    }
    this.#known.set(room, settings);
  }
}

/**
 * The renames `user` should hear of at sign-in, from the store's latest
 * (newest first): each old name of a room the user is in now, with the
 * room's name now, except names the user is in now (a new room of an old
 * name is its own room). A name's latest rename is followed through the
 * renames that came after it, each the first later rename of the name the
 * room had then: a name taken again by another room and renamed later is
 * that other room's, so the order of renames, not their names alone, says
 * where a room went.
 */
export function renamesFor(
  renames: readonly { room: string; name: string }[],
  rooms: ReadonlySet<string>,
): RoomRename[] {
  // Each name's renames, oldest first, by their place in the list (newest first).
  const byName = new Map<string, { order: number; name: string }[]>();
  renames.forEach((r, i) => {
    let list = byName.get(r.room);
    if (!list) byName.set(r.room, list = []);
    list.unshift({ order: renames.length - i, name: r.name });
  });
  const out: RoomRename[] = [];
  for (const [room, list] of byName) {
    if (rooms.has(room)) continue;
    let { order, name } = list[list.length - 1];
    for (let hops = 0; hops < renames.length; hops++) {
      const next = byName.get(name)?.find((r) => r.order > order);
      if (!next) break;
      ({ order, name } = next);
    }
    if (rooms.has(name)) out.push({ room, name });
  }
  return out;
}

/** The fields of {@link RoomKind} that are set in `s`, for frames. */
export function kindOf(s: RoomSettings): RoomKind {
  const kind: RoomKind = {};
  if (s.private) kind.private = true;
  if (s.readOnly) kind.readOnly = true;
  if (s.archived) kind.archived = true;
  if (s.autoJoin) kind.autoJoin = true;
  if (s.restrictRoomMentions) kind.restrictRoomMentions = true;
  return kind;
}

/**
 * Why `user` may not send in a room of kind `s` (`forbidden`), or null when
 * they may: nobody in an archived room, only admins in a read-only one.
 */
export function sendRefusal(s: RoomSettings | null, room: string, admin: boolean): string | null {
  if (s?.archived) return `#${room} is archived: it is kept, read-only`;
  if (s?.readOnly && !admin) return `Only admins post in #${room}: it is read-only`;
  return null;
}

/** What {@link RoomCommands} needs from the node. */
export interface RoomCommandsContext extends NodeContext, Pick<FilesContext, "files"> {
  admin: AdminStore;
  kinds: RoomKinds;
  /** Whether the user is in the room (once a join under way settled). */
  isMember: (user: User, room: string) => Promise<boolean>;
  /** A user's name as they spell it, or null when there is no such user. */
  resolveUser: (name: string) => Promise<string | null>;
  /** The ban of `user` in force now, or null. */
  banned: (user: string) => Promise<unknown | null>;
  /** Sends a frame to one connection. */
  reply: (conn: Conn, frame: ServerFrame) => void;
  /** A room was renamed: what else is kept under its name (notification levels) follows. */
  renamed?: (room: string, to: string) => Promise<void>;
}

/** `invite`, `room_settings` and `rename_room`. */
export class RoomCommands {
  #ctx: RoomCommandsContext;

  /** Runs the commands with what `ctx` gives. */
  constructor(ctx: RoomCommandsContext) {
    this.#ctx = ctx;
  }

  /** `invite`: a member adds `frame.user` to the room, on every node, and they are told who did. */
  async invite(conn: Conn, frame: InviteFrame): Promise<void> {
    const user = conn.user!;
    const { room, ref } = frame;
    if (!(await this.#ctx.isMember(user, room))) {
      throw new FrameError("unknown_room", `You are not in room "${room}": join it first`, ref);
    }
    const kind = await this.#ctx.kinds.of(room);
    if (kind?.archived) {
      throw new FrameError("forbidden", `#${room} is archived: nobody joins it any more`, ref);
    }
    const target = await this.#ctx.resolveUser(frame.user);
    if (target === null) {
      throw new FrameError("unknown_user", `There is no user "${frame.user}"`, ref);
    }
    // A ban took them out of every room: nobody brings them back in.
    if (this.#ctx.auth.mode === "login" && await this.#ctx.banned(target) !== null) {
      throw new FrameError("forbidden", `"${target}" is banned from this chat`, ref);
    }
    const joined = await this.#ctx.store.join(target, room);
    if (!joined.added) {
      throw new FrameError("bad_request", `"${target}" is in #${room} already`, ref);
    }
    await this.#ctx.broker.publish({
      kind: "member",
      user: target,
      room,
      joined: true,
      ts: new Date(this.#ctx.now()).toISOString(),
      by: user.name,
      count: joined.count,
    });
    const reply: ServerFrame = { type: "invited", room, user: target, by: user.name };
    if (ref !== undefined) reply.ref = ref;
    this.#ctx.reply(conn, reply);
  }

  /** `room_settings`: admins change what kind of room a room is; its members are told. */
  async settings(conn: Conn, frame: RoomSettingsFrame): Promise<void> {
    const by = conn.user!.name;
    const { room, ref } = frame;
    if (this.#ctx.auth.role(by) !== "admin") {
      throw new FrameError("forbidden", "Only admins may do this", ref);
    }
    if (room === LOBBY && (frame.private || frame.archived)) {
      throw new FrameError("bad_request", `Everyone is in "${LOBBY}": it stays open`, ref);
    }
    const change: RoomSettingsChange = {};
    if (frame.private !== undefined) change.private = frame.private;
    if (frame.readOnly !== undefined) change.readOnly = frame.readOnly;
    if (frame.archived !== undefined) change.archived = frame.archived;
    if (frame.autoJoin !== undefined) change.autoJoin = frame.autoJoin;
    if (frame.restrictRoomMentions !== undefined) {
      change.restrictRoomMentions = frame.restrictRoomMentions;
    }
    // A private room is its members' even to admins: one who is not in it
    // changes nothing about it (and cannot open it up to read it).
    if (
      (await this.#ctx.kinds.of(room))?.private && !(await this.#ctx.isMember(conn.user!, room))
    ) {
      throw new FrameError("unknown_room", `There is no room "${room}"`, ref);
    }
    const settings = await this.#ctx.store.setRoomSettings(room, change);
    if (settings === null) throw new FrameError("unknown_room", `There is no room "${room}"`, ref);
    // Known here at once (this node's refusals must not wait on the event),
    // then on every node.
    this.#ctx.kinds.set(room, settings);
    await this.#ctx.broker.publish({ kind: "room", room, settings, by });
    const words = Object.entries(change).map(([k, v]) => `${v ? "" : "not "}${WORDS[k]}`);
    await record(this.#ctx.admin, this.#ctx.log, {
      at: this.#ctx.now(),
      by,
      action: "room",
      target: room,
      detail: words.join(", "),
    });
    const reply: ServerFrame = { type: "room_settings", room, settings: kindOf(settings), by };
    if (ref !== undefined) reply.ref = ref;
    this.#ctx.reply(conn, reply);
  }

  /** Moves a refused rename's files back to the room's name. */
  async #filesBack(room: string, to: string): Promise<void> {
    try {
      await retried(() => this.#ctx.files.rebind(to, room));
    } catch (err) {
      this.#ctx.log.error(
        `Files of #${room} left under #${to} after a refused rename: ${(err as Error).message}`,
      );
    }
  }

  /**
   * `rename_room`: an admin renames a room. Its files move, then the store
   * moves everything else of it in one step (the files go back if it
   * refuses), then every node re-keys its routes and tells the room's
   * members (`room_renamed`).
   */
  async rename(conn: Conn, frame: RenameRoomFrame): Promise<void> {
    const by = conn.user!.name;
    const { room, name: to, ref } = frame;
    if (this.#ctx.auth.role(by) !== "admin") {
      throw new FrameError("forbidden", "Only admins may do this", ref);
    }
    if (room === LOBBY) {
      throw new FrameError("bad_request", `Everyone is in "${LOBBY}": it keeps its name`, ref);
    }
    if (to === LOBBY) throw new FrameError("name_taken", `There is a room "${LOBBY}" already`, ref);
    // As for its settings: a private room is its members' even to admins.
    if (
      (await this.#ctx.kinds.of(room))?.private && !(await this.#ctx.isMember(conn.user!, room))
    ) {
      throw new FrameError("unknown_room", `There is no room "${room}"`, ref);
    }
    // Checked again by the store's rename, in its atomic step: these only
    // spare the files a move there and back for a rename bound to be refused.
    const store = this.#ctx.store;
    if (!(await store.roomExists(room))) {
      throw new FrameError("unknown_room", `There is no room "${room}"`, ref);
    }
    if (await store.roomExists(to)) {
      throw new FrameError("name_taken", `There is a room "${to}" already`, ref);
    }
    // The files move first: if they cannot, nothing is renamed. Left behind
    // under the old name, they could be opened by whoever creates a room of
    // it and holds an old link. Until the messages follow, a file link of the
    // room is refused for a moment (and the janitor leaves files of a name
    // that has no room alone).
    try {
      await retried(() => this.#ctx.files.rebind(room, to));
    } catch (err) {
      this.#ctx.log.error(`Files of #${room} could not move to #${to}: ${(err as Error).message}`);
      throw new FrameError(
        "unavailable",
        `#${room} was not renamed: its files cannot be moved right now, try again shortly`,
        ref,
      );
    }
    let result;
    try {
      result = await this.#ctx.store.renameRoom(room, to);
    } catch (err) {
      await this.#filesBack(room, to);
      throw err;
    }
    if (result !== "renamed") {
      await this.#filesBack(room, to);
      if (result === "unknown") {
        throw new FrameError("unknown_room", `There is no room "${room}"`, ref);
      }
      throw new FrameError("name_taken", `There is a room "${to}" already`, ref);
    }
    this.#ctx.kinds.renamed(room, to);
    await this.#ctx.renamed?.(room, to);
    await this.#ctx.broker.publish({
      kind: "renamed",
      room,
      name: to,
      by,
      origin: { node: this.#ctx.broker.node, conn: conn.id },
    });
    await record(this.#ctx.admin, this.#ctx.log, {
      at: this.#ctx.now(),
      by,
      action: "rename",
      target: room,
      detail: `to #${to}`,
    });
    const reply: ServerFrame = { type: "room_renamed", room, name: to, by };
    if (ref !== undefined) reply.ref = ref;
    this.#ctx.reply(conn, reply);
  }
}

/**
 * Tries a file store step a few times: a rename that moved the messages must
 * move their files too, or nobody could open them under the new name.
 */
async function retried<T>(step: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await step();
    } catch (err) {
      if (i >= attempts) throw err;
    }
  }
}

const WORDS: Record<string, string> = {
  private: "private",
  readOnly: "read-only",
  archived: "archived",
  autoJoin: "a default room",
  restrictRoomMentions: "@room for admins only",
};
