/**
 * The hub's side of Web Push: the `visible`, `push_subscribe`,
 * `push_unsubscribe` and `notify_level` frames, which users are visible on
 * this node (kept in the push store, renewed by a heartbeat, so that every
 * node can tell), the `notify_level` events from every node, and what the
 * `welcome` says (the VAPID key, the user's levels).
 *
 * @module
 */
import { TurnBatch } from "../turn_batch.ts";
import {
  type ClientFrame,
  FrameError,
  type NotifyLevel,
  type PushInfo,
  type ServerFrame,
  type Target,
} from "../../protocol.ts";
import type { Broker, BrokerEvent, Origin } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import { isDefaultLevel, type PushStore } from "../push/push_store.ts";
import type { PushDispatcher } from "../push/dispatch.ts";
import type { Conn, User } from "./conn.ts";

/** Milliseconds between two writes of this node's visible users. */
export const VISIBLE_HEARTBEAT = 5_000;

/** Milliseconds a node's visible users count without a heartbeat (a dead node's stop then). */
export const VISIBLE_TTL = 3 * VISIBLE_HEARTBEAT;

/**
 * A user set a conversation's level: told to their connections on every
 * node. (Kept here until the broker's event union lists it.)
 */
export interface NotifyLevelEvent {
  kind: "notify_level";
  user: string;
  room?: string;
  to?: string;
  level: NotifyLevel;
  origin?: Origin;
}

/** Web Push as the server has it on (absent: no VAPID keys, pushes off). */
export interface PushSending {
  /** What the welcome says. */
  info: PushInfo;
  /** Why an endpoint is refused (null: accepted). */
  checkEndpoint: (url: string) => string | null;
  /** Who gets which push. */
  dispatcher: PushDispatcher;
}

/** What {@link Pushes} needs from the hub. */
export interface PushesContext {
  store: PushStore;
  broker: Broker;
  log: Logger;
  now: () => number;
  /** Pushes on, or null. */
  sending: PushSending | null;
  /** The conversation of a frame's target, refusing rooms the user is not in and unknown users. */
  conv: (user: User, frame: Target, ref?: string) => Promise<{ conv: string; target: Target }>;
  reply: (conn: Conn, frame: ServerFrame) => void;
  /** The user's connections on this node. */
  userConns: (name: string) => Iterable<Conn> | undefined;
  /** Every user with connections on this node. */
  users: () => Iterable<User>;
}

/** Web Push frames, visibility and levels. */
export class Pushes {
  #ctx: PushesContext;
  #lastBeat = -Infinity;
  #beating = false;
  /** When a visibility write last failed and was logged (once a minute at most). */
  #failedAt = -Infinity;
  /** Visibility changes of this event-loop turn, written together after it (the last of a user's counts). */
  #writes = new TurnBatch<[string, boolean]>((changes) => {
    const visible = new Map(changes);
    return this.#ctx.store.setVisibleMany(this.#ctx.broker.node, visible, VISIBLE_TTL).catch((
      err,
    ) => this.#failed(`Could not record whether ${visible.size} people are visible`, err));
  });

  /** Handles push frames with what `ctx` gives. */
  constructor(ctx: PushesContext) {
    this.#ctx = ctx;
  }

  /** The welcome's `push` field (absent when pushes are off). */
  get info(): PushInfo | undefined {
    return this.#ctx.sending?.info;
  }

  /** Who gets pushes, when they are on. */
  get dispatcher(): PushDispatcher | null {
    return this.#ctx.sending?.dispatcher ?? null;
  }

  /** The store. */
  get store(): PushStore {
    return this.#ctx.store;
  }

  /**
   * The user's levels for the welcome: those of rooms they are in and of
   * DMs (`#room` / `@user` → level). A store that cannot answer gives none.
   */
  async levels(name: string): Promise<Record<string, NotifyLevel>> {
    try {
      return await this.#ctx.store.levels(name);
    } catch (err) {
      this.#ctx.log.warn(
        `Could not read "${name}"'s notification levels: ${(err as Error).message}`,
      );
      return {};
    }
  }

  // -------------------------------------------------------------------------
  // Visibility

  /** Whether any of the user's connections here is visible. */
  #visible(user: User): boolean {
    for (const c of user.conns) if (c.visible && !c.closed) return true;
    return false;
  }

  /** A connection joined the user's (before it is added: call with the user's state before). */
  registered(user: User, conn: Conn, before: boolean): void {
    if (!before && conn.visible) this.#write(user.name, true);
  }

  /** `visible` from a connection. */
  visible(conn: Conn, frame: ClientFrame & { type: "visible" }): void {
    const user = conn.user!;
    if (conn.visible === frame.visible) return;
    const before = this.#visible(user);
    conn.visible = frame.visible;
    const after = this.#visible(user);
    if (before !== after) this.#write(user.name, after);
  }

  /** Whether the user has a visible connection here (before a connection goes). */
  visibleHere(user: User): boolean {
    return this.#visible(user);
  }

  /** A connection went; `before` is whether the user was visible with it. */
  closed(user: User, before: boolean): void {
    if (before && !this.#visible(user)) this.#write(user.name, false);
  }

  /**
   * Records that `name` is (or no longer is) visible here. The changes of one
   * event-loop turn go out as one write: through Redis, a call per sign-in
   * was an eighth of a storm's cost.
   */
  #write(name: string, visible: boolean): void {
    void this.#writes.add([name, visible]);
  }

  /** Logs a failed visibility write, once a minute at most (the next heartbeat repairs it). */
  #failed(what: string, err: unknown): void {
    const now = this.#ctx.now();
    if (now - this.#failedAt < 60_000) return;
    this.#failedAt = now;
    this.#ctx.log.warn(`${what}: ${(err as Error).message} (the next heartbeat tries again)`);
  }

  /** Renews this node's visible users now and then; reads waiting for their interval go. */
  tick(now: number): void {
    this.#ctx.sending?.dispatcher.tick(now);
    if (this.#beating || now - this.#lastBeat < VISIBLE_HEARTBEAT) return;
    this.#lastBeat = now;
    this.#beating = true;
    const visible: string[] = [];
    for (const user of this.#ctx.users()) if (this.#visible(user)) visible.push(user.name);
    this.#ctx.store.heartbeat(this.#ctx.broker.node, visible, VISIBLE_TTL).catch((err) =>
      this.#failed("Could not renew the visible users", err)
    ).finally(() => this.#beating = false);
  }

  /** The node stops: its visible users stop counting at once. */
  async leave(): Promise<void> {
    try {
      await this.#ctx.store.leave(this.#ctx.broker.node);
    } catch (err) {
      this.#ctx.log.warn(`Could not withdraw the visible users: ${(err as Error).message}`);
    }
  }

  // -------------------------------------------------------------------------
  // Subscriptions

  /** `push_subscribe`: keeps this device's subscription for the user and session. */
  async subscribe(conn: Conn, frame: ClientFrame & { type: "push_subscribe" }): Promise<void> {
    const ref = frame.ref;
    const sending = this.#ctx.sending;
    if (!sending) {
      throw new FrameError("unavailable", "Push notifications are off on this server", ref);
    }
    const { endpoint, keys } = frame.subscription;
    const problem = sending.checkEndpoint(endpoint);
    if (problem !== null) {
      throw new FrameError("bad_endpoint", `This push endpoint is refused: ${problem}`, ref);
    }
    const user = conn.user!;
    const result = await this.#ctx.store.subscribe({
      endpoint,
      p256dh: keys.p256dh,
      auth: keys.auth,
      user: user.name,
      session: conn.session ?? "",
      fp: conn.fingerprint ?? "",
      at: this.#ctx.now(),
    });
    if (!result.ok) {
      throw new FrameError(
        "bad_endpoint",
        "This push endpoint is subscribed by another account: subscribe anew in this browser",
        ref,
      );
    }
    this.dispatcher?.subscribed();
    const reply: ServerFrame = { type: "push_subscribed", endpoint };
    if (ref !== undefined) reply.ref = ref;
    this.#ctx.reply(conn, reply);
  }

  /** `push_unsubscribe`: forgets one of the user's own subscriptions (the same answer for any other). */
  async unsubscribe(conn: Conn, frame: ClientFrame & { type: "push_unsubscribe" }): Promise<void> {
    await this.#ctx.store.unsubscribe(conn.user!.name, frame.endpoint);
    const reply: ServerFrame = { type: "push_unsubscribed", endpoint: frame.endpoint };
    if (frame.ref !== undefined) reply.ref = frame.ref;
    this.#ctx.reply(conn, reply);
  }

  // -------------------------------------------------------------------------
  // Levels

  /**
   * `notify_level`: for a room the user is in (any other is refused as a
   * room that does not exist would be) or the DMs with a user who exists.
   */
  async level(conn: Conn, frame: ClientFrame & { type: "notify_level" }): Promise<void> {
    const user = conn.user!;
    const { target } = await this.#ctx.conv(user, frame, frame.ref);
    const key = target.room !== undefined ? `#${target.room}` : `@${target.to}`;
    const level = isDefaultLevel(key, frame.level) ? null : frame.level;
    let kept = await this.#ctx.store.setLevel(user.name, key, level);
    // At the cap: levels of rooms the user is no longer in go, then once more.
    if (!kept && await this.#dropStale(user)) {
      kept = await this.#ctx.store.setLevel(user.name, key, level);
    }
    if (!kept) {
      throw new FrameError(
        "limit_reached",
        "You have set too many notification levels: set some back to their default first",
        frame.ref,
      );
    }
    const event: NotifyLevelEvent = {
      kind: "notify_level",
      user: user.name,
      ...target,
      level: frame.level,
      origin: { node: this.#ctx.broker.node, conn: conn.id },
    };
    if (frame.ref !== undefined) event.origin!.ref = frame.ref;
    await this.#ctx.broker.publish(event as unknown as BrokerEvent);
  }

  /**
   * Drops the user's levels of rooms they are no longer in (left, kicked,
   * the room gone): such a level cannot be set back. Whether any went.
   */
  async #dropStale(user: User): Promise<boolean> {
    let dropped = false;
    for (const conv of Object.keys(await this.#ctx.store.levels(user.name))) {
      if (!conv.startsWith("#")) continue;
      try {
        await this.#ctx.conv(user, { room: conv.slice(1) });
      } catch (err) {
        // Only a refusal says they are not in it; a store error keeps the level.
        if (!(err instanceof FrameError)) continue;
        await this.#ctx.store.setLevel(user.name, conv, null);
        dropped = true;
      }
    }
    return dropped;
  }

  /** A `notify_level` event from any node: to the user's connections here. */
  heard(e: NotifyLevelEvent, asker: Conn | null): void {
    const conns = this.#ctx.userConns(e.user);
    if (!conns) return;
    const target = e.room !== undefined ? { room: e.room } : { to: e.to! };
    for (const c of conns) {
      const frame: ServerFrame = { type: "notify_level", ...target, level: e.level };
      if (c === asker && e.origin?.ref !== undefined) frame.ref = e.origin.ref;
      this.#ctx.reply(c, frame);
    }
  }
}
