/**
 * The `join` command: checks the room quota, writes the membership, and
 * sends each connection its `joined` (members, topic and history) while the
 * room's live messages are held for it, so that none falls between the
 * store write and the history page. Kept apart from the hub, which only
 * routes: this module rewires {@link Routes} for the joining connections.
 *
 * @module
 */
import type { FilesContext } from "./context.ts";
import type { Broker, MemberEvent } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import { FrameError, JOIN_REPLAY, MAX_PAGE, MEMBERS_PAGE } from "../../protocol.ts";
import { kindOf, type RoomKinds } from "./rooms.ts";
import type { JoinResult, Store } from "../store/store.ts";
import type { Conn } from "./conn.ts";
import { fitItems, headBytes, withArrays } from "./frames.ts";
import type { RoomQuota } from "./limits.ts";
import type { Replies } from "./replies.ts";
import { type Buffered, overflowed, type Routes } from "./routes.ts";

/** What {@link Joins} needs from the node. */
export interface JoinsContext extends FilesContext {
  store: Store;
  broker: Broker;
  log: Logger;
  /** Clock in milliseconds. */
  now: () => number;
  /** The routing table the hub fans out with. */
  routes: Routes;
  /** How many rooms each user may create. */
  quota: RoomQuota;
  /** Paces replies built from stored data. */
  replies: Replies;
  /** Queues frame text for one connection. */
  push: (conn: Conn, text: string) => void;
  /** Largest reply in bytes. */
  replyBytes: () => number;
  /** Applies a membership change on this node (see `Hub`). */
  onMember: (event: MemberEvent) => void;
  /** The kinds of rooms (a private room is joined by invitation only). */
  kinds: RoomKinds;
}

/** Joins of rooms by this node's connections. */
export class Joins {
  #ctx: JoinsContext;

  /** Joins rooms with what `ctx` gives. */
  constructor(ctx: JoinsContext) {
    this.#ctx = ctx;
  }

  /**
   * `join`: a member's connection gets its `joined`; anyone else becomes a
   * member of a public room (creating it, private when `create.private`), but
   * a private room answers `unknown_room` as if it did not exist.
   */
  async join(
    conn: Conn,
    room: string,
    since?: number,
    create: { private?: boolean } = {},
  ): Promise<void> {
    // A closed connection must not be routed again: nothing would ever take it out.
    if (conn.closed) return;
    const user = conn.user!;
    if (user.rooms.has(room)) {
      const route = this.#ctx.routes.route(room);
      if (!route.joining.has(conn)) {
        route.conns.delete(conn);
        route.joining.set(conn, []);
        await this.sendJoined(conn, room, since);
      }
      return;
    }
    const pending = user.joining?.get(room);
    if (pending) {
      // Another connection of this user is joining it: this one follows.
      await pending.catch(() => {});
      return this.join(conn, room, since);
    }
    // Buffer the room's messages from now on, so none falls between the
    // store write and the history page; the membership itself counts only
    // once the quota check and the store allow it (frames sent meanwhile wait
    // for it in #isMember).
    const route = this.#ctx.routes.route(room);
    for (const c of user.conns) {
      route.conns.delete(c);
      route.joining.set(c, []);
    }
    const work = (async () => {
      // Checked inside the join under way, so that frames sent right behind it
      // wait for its outcome (see Commands.isMember). Membership of a private
      // room comes only from an invite: a non-member never reaches the store's
      // join, and learns nothing a missing room would not say.
      const kind = await this.#ctx.kinds.of(room);
      if (kind?.private) throw cannotJoin(room);
      if (kind?.archived) {
        throw new FrameError("forbidden", `#${room} is archived: nobody joins it any more`);
      }
      const release = await this.#ctx.quota.reserve(user.name, room);
      try {
        const wish = create.private ? { private: true } : undefined;
        const store = this.#ctx.store;
        const joined = await store.join(user.name, room, wish);
        // Made private by someone else between the check above and now: not ours to enter.
        if (joined.added && !joined.created) {
          const now = await store.roomSettings(room);
          if (now?.private) {
            await this.#ctx.store.leave(user.name, room);
            throw cannotJoin(room);
          }
        }
        return joined;
      } finally {
        release();
      }
    })();
    (user.joining ??= new Map()).set(room, work);
    let joined: JoinResult;
    try {
      joined = await work;
    } catch (err) {
      if (!user.rooms.has(room)) {
        for (const c of user.conns) this.#ctx.routes.unroute(room, c);
        // Created above for connections that may all have closed meanwhile.
        this.#ctx.routes.dropIfUnused(room);
      }
      throw err;
    } finally {
      user.joining?.delete(room);
      if (user.joining?.size === 0) user.joining = null;
    }
    user.rooms.add(room);
    const event: MemberEvent = {
      kind: "member",
      user: user.name,
      room,
      joined: true,
      ts: new Date(this.#ctx.now()).toISOString(),
      origin: { node: this.#ctx.broker.node, conn: conn.id },
    };
    if (since !== undefined) event.since = since;
    // A member already (another connection's join, perhaps on another node,
    // came first and was told): only this user's connections need their `joined`.
    if (!joined.added) return this.#ctx.onMember({ ...event, quiet: true });
    event.count = joined.count;
    try {
      await this.#ctx.broker.publish(event);
    } catch (err) {
      // Stored but not announced: this node's connections still get their
      // `joined`; other nodes learn of the membership when the user reconnects.
      this.#ctx.log.warn(
        `Could not announce "${user.name}" joining "${room}": ${(err as Error).message}`,
      );
      this.#ctx.onMember(event);
    }
  }

  /** Sends `joined` (members and history) to one connection, in its turn. */
  sendJoined(conn: Conn, room: string, since?: number): Promise<void> {
    const mine = this.#ctx.routes.get(room)?.joining.get(conn);
    return this.#ctx.replies.inTurn(conn, () => this.#buildJoined(conn, room, since)).catch(
      (err) => {
        // Refused before it was built (too many replies waiting): live messages flow again.
        if (mine) this.#stopJoining(conn, room, mine);
        throw err;
      },
    );
  }

  /**
   * Gives up a connection's join of `room` that will send no `joined`: it
   * gets the room's live messages again, starting with those held for it.
   * The client is told and may resume with `join` + `since`.
   */
  #stopJoining(conn: Conn, room: string, mine: Buffered[]): void {
    const route = this.#ctx.routes.get(room);
    if (route?.joining.get(conn) !== mine) return;
    route.joining.delete(conn);
    if (conn.closed) {
      this.#ctx.routes.dropIfUnused(room);
      return;
    }
    route.conns.add(conn);
    for (const b of mine) this.#ctx.push(conn, b.text);
  }

  async #buildJoined(conn: Conn, room: string, since?: number): Promise<void> {
    // This join's buffer: a later join of the same connection gets a new one,
    // and whichever finishes must only consume its own.
    const mine = this.#ctx.routes.get(room)?.joining.get(conn);
    if (!mine) return;
    let page, members, topic, kind;
    try {
      [page, members, topic, kind] = await Promise.all([
        this.#ctx.store.page(
          room,
          since === undefined ? { limit: JOIN_REPLAY } : { since, limit: MAX_PAGE },
        ),
        // The first page only: a join costs the same in a room of 100,000.
        this.#ctx.store.membersPage(room, undefined, MEMBERS_PAGE),
        this.#ctx.store.topic(room),
        this.#ctx.kinds.of(room),
      ]);
    } catch (err) {
      this.#stopJoining(conn, room, mine);
      throw err;
    }
    const route = this.#ctx.routes.get(room);
    if (!route || route.joining.get(conn) !== mine) return;
    if (conn.closed) {
      this.#ctx.routes.unroute(room, conn);
      return;
    }
    route.joining.delete(conn);
    route.conns.add(conn);
    // Bounded by its encoded size: members may take half the budget, the
    // history what is left; whatever is cut is said (`memberCount`, `more`).
    const budget = this.#ctx.replyBytes();
    const people = fitItems(members.members, budget / 2, "first");
    const head: { type: "joined"; room: string; memberCount: number; topic?: string } = {
      type: "joined",
      room,
      ...(kind ? kindOf(kind) : {}),
      memberCount: members.count,
    };
    if (topic !== "") head.topic = topic;
    // Without `since` the newest messages matter most; after `since`, the oldest.
    const viewer = conn.user!.name;
    const history = fitItems(
      page.messages.map((m) => this.#ctx.urls.viewed(m, viewer)),
      budget - people.bytes - headBytes(head) - 64,
      since === undefined ? "last" : "first",
    );
    const tail: { more?: boolean; gap?: boolean; seq: number } = { seq: page.seq };
    const overflow = overflowed(mine);
    if (page.more || history.dropped > 0 || overflow) tail.more = true;
    if (page.gap) tail.gap = true;
    // A `since` page cut short brings the client up to its last message only.
    if (since !== undefined && history.dropped > 0) {
      tail.seq = history.end > history.start ? page.messages[history.end - 1].seq : since;
    }
    this.#ctx.push(
      conn,
      withArrays({ ...head, ...tail }, { members: people.parts, history: history.parts }),
    );
    // What the page already reflects is not sent twice, except the sender's own
    // copy: its `ref` is the acknowledgement the client is waiting for. When
    // a `since` page says `more`, the client pages on from `seq` and gets the
    // rest from the store: what was held would only run ahead of those pages.
    // After an overflow, what was held has a hole: the client pages instead.
    const seen = tail.seq;
    const pagesOn = overflow || (since !== undefined && tail.more === true);
    for (const b of mine) if (b.own || (b.seq > seen && !pagesOn)) this.#ctx.push(conn, b.text);
    // Changes the page reflects may still be on their way to this node (the
    // store answered ahead of the broker): they are not sent again.
    if (page.seq > 0) route.floors.set(conn, page.seq);
  }
}

/** The one answer to a join of a private room by a non-member, however it was found out. */
function cannotJoin(room: string): FrameError {
  return new FrameError(
    "unknown_room",
    `There is no room "${room}" you can join: a private room is joined by invitation`,
  );
}
