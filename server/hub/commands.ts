/**
 * The commands of a signed-in user that read or write the store and go out
 * through the broker: send, leave, typing, history, read, read_all, search,
 * users, topic and rooms. Each handler checks the frame's target, does its
 * work and either replies to the one connection or publishes an event that
 * comes back to every node's hub for fan-out. Kept apart from the hub so that
 * the hub holds only the connection registry and fan-out (`join`, which
 * rewires routes, stays with them).
 *
 * @module
 */
import type { BrokerEvent, Origin } from "../broker/broker.ts";
import {
  type ChatMessage,
  type ClientFrame,
  conversationKey,
  FrameError,
  JOIN_REPLAY,
  LOBBY,
  MEMBERS_PAGE,
  type ReplyRef,
  roomMentionRefusal,
  type Target,
} from "../../protocol.ts";
import { type Appended, type Draft, ReplyChanged, replyRef, RoomGone } from "../store/store.ts";
import type { FileMeta } from "../files/files.ts";
import { createHash } from "node:crypto";
import { type Conn, takeTurn, type User } from "./conn.ts";
import type { Directory } from "./directory.ts";
import { encode, fitItems, headBytes, targetOf, withArrays } from "./frames.ts";
import { sizeOf } from "./member_counts.ts";
import { type RoomKinds, sendRefusal } from "./rooms.ts";
import type { SearchSlots } from "./replies.ts";
import type { Typists } from "./typing.ts";
import type { FilesContext, NodeContext } from "./context.ts";

/** Reads of a reply's original before giving up when it keeps changing meanwhile. */
const REPLY_ATTEMPTS = 3;

/** Read markers `read_all` moves at once (store writes and events in flight). */
const READ_ALL_CHUNK = 64;

/** A resent message's own copy, for a connection whose `joined` may still hold it back. */
export interface Resent {
  seq: number;
  text: string;
  own: true;
}

/** What {@link Commands} needs from the node. */
export interface CommandsContext extends NodeContext, FilesContext {
  /** The kinds of rooms (read-only and archived rooms refuse sends). */
  kinds: RoomKinds;
  /** Largest reply in bytes. */
  replyBytes: () => number;
  /** Sends frame text to one connection, if it is still there. */
  send: (conn: Conn, text: string) => void;
  /**
   * Sends the own copy of a resent message to `conn`, held back like a live
   * message while a `joined` of `room` is on its way to it.
   */
  resent: (conn: Conn, room: string | undefined, copy: Resent) => void;
  /** Takes a room from a user's local state and tells their connections. */
  removeMember: (user: User, room: string) => void;
  typists: Typists;
  searches: SearchSlots;
  directory: Directory;
  /** A message was stored afresh by this node (Web Push looks at it; never awaited). */
  stored?: (msg: ChatMessage) => void;
  /** The user read `conv` (`#room` or `@peer`) up to `id` (Web Push tells their devices). */
  readUpTo?: (user: string, conv: string, id: number) => void;
}

/** Handlers of the commands that need no routing changes. */
export class Commands {
  #ctx: CommandsContext;

  /** Handles commands with what `ctx` gives. */
  constructor(ctx: CommandsContext) {
    this.#ctx = ctx;
  }

  /** Hands a message stored afresh to Web Push, which must never hold up or fail the send. */
  #pushed(msg: ChatMessage): void {
    try {
      this.#ctx.stored?.(msg);
    } catch (err) {
      this.#ctx.log.warn(`Web Push could not take a message: ${(err as Error).message}`);
    }
  }

  /** Tells Web Push the user read a conversation (their other devices close its notifications). */
  #read(user: string, target: Target, id: number): void {
    try {
      this.#ctx.readUpTo?.(
        user,
        target.room !== undefined ? `#${target.room}` : `@${target.to}`,
        id,
      );
    } catch (err) {
      this.#ctx.log.warn(`Web Push could not take a read: ${(err as Error).message}`);
    }
  }

  /** Answers `rooms`: every room, cut at the reply bound. */
  async rooms(conn: Conn): Promise<void> {
    const mine = conn.user!.rooms;
    // Archived rooms are out of the list; private ones are for their members' eyes only.
    const rooms = (await this.#ctx.store.rooms()).filter((r) =>
      !r.archived && (!r.private || mine.has(r.name))
    );
    const fit = fitItems(rooms, this.#ctx.replyBytes(), "first");
    const frame = fit.dropped > 0 ? { type: "rooms", more: true } : { type: "rooms" };
    this.#ctx.send(conn, withArrays(frame, { rooms: fit.parts }));
  }

  /**
   * The conversation of a frame's target, checking the user may use it; a
   * DM's peer is named as that user spells their name (names are
   * case-insensitive).
   */
  async conv(user: User, frame: Target, ref?: string): Promise<{ conv: string; target: Target }> {
    if (frame.room !== undefined) {
      if (!(await this.isMember(user, frame.room))) {
        throw await this.#notIn(user.name, frame.room, ref);
      }
      return { conv: frame.room, target: { room: frame.room } };
    }
    const peer = await this.resolveUser(frame.to!);
    if (peer === null) {
      throw new FrameError("unknown_user", `There is no user "${frame.to}"`, ref);
    }
    const target = { to: peer };
    return { conv: conversationKey(user.name, target), target };
  }

  /** Whether the user is in the room, once a join of it that is under way has settled. */
  async isMember(user: User, room: string): Promise<boolean> {
    if (user.rooms.has(room)) return true;
    const pending = user.joining?.get(room);
    if (pending) await pending.catch(() => {});
    return user.rooms.has(room);
  }

  /** A user's name as they spell it, or null when there is no such user. */
  async resolveUser(name: string): Promise<string | null> {
    if (this.#ctx.auth.mode === "login") return this.#ctx.auth.canonical(name) ?? null;
    if (this.#ctx.broker.isOnline(name)) return name;
    const claim = await this.#ctx.store.nameClaim(name);
    if (claim) return claim.name;
    return await this.#ctx.store.knownUser(name) ? name : null;
  }

  async send(conn: Conn, frame: ClientFrame & { type: "send" }): Promise<void> {
    const turn = takeTurn(conn);
    let sent, conv;
    try {
      const user = conn.user!;
      // Someone no longer in the room (they left or were kicked before the
      // answer came back) may be resending a message stored while they were
      // in it: the store recognizes a resend before it checks membership and
      // answers it with the stored message; anything else it refuses
      // (RoomGone: unknown_room, as below). docs/scaling.md.
      const outsider = frame.room !== undefined && frame.ref !== undefined &&
        !(await this.isMember(user, frame.room));
      const found = outsider
        ? { conv: frame.room!, target: { room: frame.room! } }
        : await this.conv(user, frame, frame.ref);
      conv = found.conv;
      const target = found.target;
      if (target.room !== undefined && !outsider) {
        const admin = this.#ctx.auth.role(user.name) === "admin";
        const kind = await this.#ctx.kinds.of(target.room);
        const refusal = sendRefusal(kind, target.room, admin) ??
          roomMentionRefusal(target.room, kind, { admin, text: frame.text });
        if (refusal !== null) throw new FrameError("forbidden", refusal, frame.ref);
      }
      if (!outsider) this.#ctx.typists.stop(conv, target, user.name);
      const origin: Origin = { node: this.#ctx.broker.node, conn: conn.id };
      if (frame.ref !== undefined) origin.ref = frame.ref;
      const draft: Draft = { conv, ...target, from: user.name, text: frame.text };
      // Checked again where it is stored: a leave, kick or rename may come
      // first. Not in general, which everyone is in and nobody leaves, kicks
      // from or renames: there it would only refuse sends after Redis lost
      // its data (memberships gone, the sessions still up).
      if (target.room !== undefined && (target.room !== LOBBY || outsider)) draft.member = true;
      // An outsider's send is a resend or nothing: the stored message has its files and quote.
      if (frame.files && !outsider) draft.files = await this.#attach(user.name, frame, conv);
      if (frame.replyTo === undefined || outsider) {
        if (turn.ready) await turn.ready;
        const stored = this.#publish(draft, origin, frame.ref);
        turn.done();
        sent = await stored;
      } else {
        // A reply keeps its turn until it is stored: a retry (its original
        // changed meanwhile) must still come before what was sent after it.
        if (turn.ready) await turn.ready;
        sent = await this.#publishReply(draft, origin, frame);
      }
    } finally {
      turn.done();
    }
    if (sent.fresh) this.#pushed(sent.msg);
    // Also on a resend: the first attempt may have stored the message and died before this.
    if (frame.files) await this.#ctx.files.bind(frame.files, conv, sent.msg.id);
    if (sent.fresh || frame.ref === undefined) return;
    // A resend of a stored message: nobody gets it again but this connection,
    // whose acknowledgement (the stored message with its ref) may have been
    // lost. It gets the message as it is now (edited, or a tombstone). Held
    // like any live message while the room's `joined` is on its way.
    const stored = await this.#ctx.store.message(conv, sent.msg.id) ?? sent.msg;
    const now = this.#ctx.urls.viewed(stored, conn.user!.name);
    const own = encode({ type: "message", ...now, ref: frame.ref });
    this.#ctx.resent(conn, now.room, { seq: now.seq, text: own, own: true });
  }

  /**
   * Attaches the files a send names to its conversation (the sender's own
   * uploads not sent yet; a resend's, sent with the same ref), as one step.
   */
  async #attach(
    user: string,
    frame: ClientFrame & { type: "send" },
    conv: string,
  ): Promise<FileMeta[]> {
    // A resend is the same ref with the same text (as `appendOnce` decides):
    // the same ref with other text is another message, which must not get
    // files a message carries already.
    const ref = frame.ref === undefined || frame.ref === ""
      ? ""
      : `${frame.ref}\n${createHash("sha256").update(frame.text).digest("base64url").slice(0, 22)}`;
    let result;
    try {
      result = await this.#ctx.files.attach(user, frame.files!, conv, ref);
    } catch (err) {
      this.#ctx.log.warn(
        `Files of a message from "${user}" not attached: ${(err as Error).message}`,
      );
      throw new FrameError(
        "unavailable",
        "Your message was not delivered: the server cannot reach its files right now, try again shortly",
        frame.ref,
      );
    }
    if (!Array.isArray(result)) {
      throw new FrameError(
        "unknown_file",
        `File ${result.id} is not one of your uploads waiting to be sent: it is someone else's, sent already, or was removed (unsent uploads go after an hour)`,
        frame.ref,
      );
    }
    return result.map(({ id, name, size, type, width, height }) => {
      const meta: FileMeta = { id, name, size, type };
      if (width !== undefined) meta.width = width;
      if (height !== undefined) meta.height = height;
      return meta;
    });
  }

  /**
   * The refusal of a frame about a room `user` is not in: where it went, if
   * it was renamed and they are in it (a non-member must not learn the new
   * name of a private room from its old one).
   */
  async #notIn(user: string, room: string, ref?: string): Promise<FrameError> {
    const now = this.#ctx.kinds.renamedTo(room);
    const theirs = now !== undefined && (await this.#ctx.store.roomsOf(user)).includes(now);
    const message = theirs
      ? `#${room} was renamed #${now}: use its new name`
      : `You are not in room "${room}": join it first`;
    return new FrameError("unknown_room", message, ref);
  }

  /** Stores and delivers a message; a store that cannot is `unavailable`. */
  async #publish(draft: Draft, origin: Origin, ref?: string): Promise<Appended> {
    try {
      return await this.#ctx.broker.publishMessage(draft, origin);
    } catch (err) {
      if (err instanceof ReplyChanged) throw err;
      if (err instanceof RoomGone) throw await this.#notIn(draft.from, draft.room!, ref);
      this.#ctx.log.warn(`Message from "${draft.from}" not stored: ${(err as Error).message}`);
      throw new FrameError(
        "unavailable",
        "Your message was not delivered: the server cannot store messages right now, try again shortly",
        ref,
      );
    }
  }

  /**
   * Stores a reply with its quote of the original as it is now. The store
   * refuses it if the original changed after it was read (see
   * {@link ReplyChanged}): it is read again, a few times at most.
   */
  async #publishReply(
    draft: Draft,
    origin: Origin,
    frame: ClientFrame & { type: "send" },
  ): Promise<Appended> {
    for (let attempt = 1;; attempt++) {
      try {
        draft.replyTo = await this.#quote(draft.conv, frame);
      } catch (err) {
        // The original is gone; but this may be a resend of a reply stored
        // before it went, whose acknowledgement was lost: that one is answered.
        if (!(err instanceof FrameError) || frame.ref === undefined) throw err;
        return await this.#resentReply(draft, origin, frame, err);
      }
      try {
        return await this.#publish(draft, origin, frame.ref);
      } catch (err) {
        if (!(err instanceof ReplyChanged)) throw err;
        if (attempt === REPLY_ATTEMPTS) {
          throw new FrameError(
            "unavailable",
            `Message #${frame.replyTo} kept changing while you replied to it: try again`,
            frame.ref,
          );
        }
      }
    }
  }

  /**
   * A reply whose original is gone: stored already (a resend, recognized by
   * its ref before the quote is checked) → that message; otherwise `refusal`.
   * The quote given can never match, so nothing new is stored.
   */
  async #resentReply(
    draft: Draft,
    origin: Origin,
    frame: ClientFrame & { type: "send" },
    refusal: FrameError,
  ): Promise<Appended> {
    draft.replyTo = { id: frame.replyTo!, from: "", snippet: "", seq: -1 };
    try {
      return await this.#publish(draft, origin, frame.ref);
    } catch (err) {
      throw err instanceof ReplyChanged ? refusal : err;
    }
  }

  /** What a reply quotes of its original: a message of the same conversation, not deleted. */
  async #quote(
    conv: string,
    frame: ClientFrame & { type: "send" },
  ): Promise<ReplyRef & { seq: number }> {
    const original = await this.#ctx.store.message(conv, frame.replyTo!);
    if (!original) {
      throw new FrameError(
        "bad_request",
        `"replyTo": there is no message #${frame.replyTo} in this conversation`,
        frame.ref,
      );
    }
    if (original.deleted) {
      throw new FrameError(
        "bad_request",
        `"replyTo": message #${frame.replyTo} was deleted`,
        frame.ref,
      );
    }
    return { ...replyRef(original), seq: original.seq };
  }

  async leave(conn: Conn, room: string): Promise<void> {
    const user = conn.user!;
    if (room === LOBBY) {
      throw new FrameError("bad_request", `Everyone stays in "${LOBBY}": it cannot be left`);
    }
    if (!(await this.isMember(user, room))) {
      throw new FrameError("unknown_room", `You are not in room "${room}"`);
    }
    const event: BrokerEvent = {
      kind: "member",
      user: user.name,
      room,
      joined: false,
      ts: new Date(this.#ctx.now()).toISOString(),
    };
    // The store first: if it fails, the user is still in the room everywhere.
    const was = await this.#ctx.store.leave(user.name, room);
    this.#ctx.removeMember(user, room);
    this.#ctx.typists.clear(user.name, room);
    if (!was) return;
    const count = await sizeOf(this.#ctx.store, room);
    await this.#ctx.broker.publish(count === undefined ? event : { ...event, count });
  }

  async typing(conn: Conn, frame: Target, active: boolean): Promise<void> {
    const user = conn.user!;
    const { conv, target } = await this.conv(user, frame);
    this.#ctx.typists.set(conv, target, user.name, active);
  }

  async history(conn: Conn, frame: ClientFrame & { type: "history" }): Promise<void> {
    const { conv, target } = await this.conv(conn.user!, frame);
    const page = await this.#ctx.store.page(conv, {
      before: frame.before,
      since: frame.since,
      limit: frame.limit ?? JOIN_REPLAY,
    });
    // Paging forward (`since`) keeps the oldest; otherwise the newest. Either
    // way `more` still means "more in the direction asked".
    const head = {
      type: "history",
      ...target,
      more: page.more,
      ...(page.gap ? { gap: true } : {}),
      seq: page.seq,
    };
    const viewer = conn.user!.name;
    const fit = fitItems(
      page.messages.map((m) => this.#ctx.urls.viewed(m, viewer)),
      this.#ctx.replyBytes() - headBytes(head) - 16,
      frame.since !== undefined ? "first" : "last",
    );
    if (fit.dropped > 0) {
      head.more = true;
      // A `since` page cut short brings the client up to its last message only.
      if (frame.since !== undefined) head.seq = page.messages[fit.end - 1].seq;
    }
    this.#ctx.send(conn, withArrays(head, { messages: fit.parts }));
  }

  /**
   * `members`: a page of a room's members by name, after `after`; for the
   * room's members only (anyone else learns nothing a missing room would not say).
   */
  async members(conn: Conn, frame: ClientFrame & { type: "members" }): Promise<void> {
    const { room, after } = frame;
    if (!(await this.isMember(conn.user!, room))) {
      throw await this.#notIn(conn.user!.name, room, frame.ref);
    }
    const limit = frame.limit ?? MEMBERS_PAGE;
    // One name beyond the page says whether another page follows.
    const page = await this.#ctx.store.membersPage(room, after, limit + 1);
    const names = page.members.slice(0, limit);
    const head = {
      type: "members",
      room,
      ...(after === undefined ? {} : { after }),
      count: page.count,
      more: page.members.length > limit,
      ...(frame.ref === undefined ? {} : { ref: frame.ref }),
    };
    const fit = fitItems(names, this.#ctx.replyBytes() - headBytes(head) - 16, "first");
    if (fit.dropped > 0) head.more = true;
    this.#ctx.send(conn, withArrays(head, { members: fit.parts }));
  }

  async read(conn: Conn, frame: Target, id: number): Promise<void> {
    const user = conn.user!;
    const { conv, target: t } = await this.conv(user, frame);
    const marker = await this.#ctx.store.setRead(user.name, conv, id);
    this.#read(user.name, t, marker);
    await this.#ctx.broker.publish({
      kind: "read",
      user: user.name,
      conv,
      ...t,
      id: marker,
      origin: { node: this.#ctx.broker.node, conn: conn.id },
    });
  }

  async search(conn: Conn, frame: ClientFrame & { type: "search" }): Promise<void> {
    const user = conn.user!;
    let conv: string | undefined;
    if (frame.room !== undefined || frame.to !== undefined) {
      conv = (await this.conv(user, targetOf(frame))).conv;
    }
    // Searches of the in-memory and Redis stores scan: a few at a time per node.
    await this.#ctx.searches.turn();
    let messages;
    try {
      messages = await this.#ctx.store.search(frame.q, {
        user: user.name,
        rooms: [...user.rooms],
        conv,
        limit: frame.limit ?? 50,
      });
    } finally {
      this.#ctx.searches.done();
    }
    // Newest first: what does not fit is the oldest, and `more` says so.
    const head: { type: "search"; q: string; more?: boolean } = { type: "search", q: frame.q };
    const fit = fitItems(
      messages.map((m) => this.#ctx.urls.viewed(m, user.name)),
      this.#ctx.replyBytes() - headBytes(head) - 16,
      "first",
    );
    if (fit.dropped > 0) head.more = true;
    this.#ctx.send(conn, withArrays(head, { messages: fit.parts }));
  }

  /**
   * Answers `users` (see {@link Directory}): cut at the reply bound, saying
   * `more` when anyone was left out.
   */
  async users(conn: Conn, q?: string): Promise<void> {
    const listing = await this.#ctx.directory.list(conn.user!.name, q);
    if (conn.closed) return;
    const head: { type: "users"; q?: string; more?: boolean } = { type: "users" };
    if (q !== undefined) head.q = q;
    // Exactly the reply bound, counting `more` and the array's own brackets.
    const budget = this.#ctx.replyBytes() - headBytes({ ...head, more: true }) -
      ',"users":[]'.length;
    const fit = fitItems(listing.users, budget, "first");
    if (listing.more || fit.dropped > 0) head.more = true;
    this.#ctx.send(conn, withArrays(head, { users: fit.parts }));
  }

  /** Sets a room's topic: members only; a change reaches every member connection on every node. */
  async topic(conn: Conn, frame: ClientFrame & { type: "topic" }): Promise<void> {
    const user = conn.user!;
    const { room } = frame;
    await this.conv(user, { room });
    // The topic of an announcement room is the admins' to set; an archived room stays as it is.
    const admin = this.#ctx.auth.role(user.name) === "admin";
    const refusal = sendRefusal(await this.#ctx.kinds.of(room), room, admin);
    if (refusal !== null) throw new FrameError("forbidden", refusal);
    // The same topic again changes nothing, and nobody is told.
    if (!await this.#ctx.store.setTopic(room, frame.topic)) return;
    await this.#ctx.broker.publish({
      kind: "topic",
      room,
      topic: frame.topic,
      user: user.name,
      ts: new Date(this.#ctx.now()).toISOString(),
    });
  }

  /**
   * Marks every conversation of the user read up to its newest message. Each
   * marker that moved is announced as a `read` to every connection of the
   * user, the asking one included: that is its answer.
   */
  async readAll(conn: Conn): Promise<void> {
    const name = conn.user!.name;
    const unread = (await this.#ctx.store.conversations(name)).filter((c) => c.last > c.read);
    for (let i = 0; i < unread.length; i += READ_ALL_CHUNK) {
      await Promise.all(
        unread.slice(i, i + READ_ALL_CHUNK).map(async (c) => {
          const target = targetOf(c);
          const conv = conversationKey(name, target);
          const id = await this.#ctx.store.setRead(name, conv, c.last);
          if (id > c.read) {
            this.#read(name, target, id);
            await this.#ctx.broker.publish({ kind: "read", user: name, conv, ...target, id });
          }
        }),
      );
    }
  }
}
