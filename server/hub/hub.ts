/**
 * The chat hub of one node: the connection registry (connections, signed-in
 * users, the rooms routed here) and fan-out, in the manner of centrifuge's
 * `hub.go`. The data path reads top to bottom:
 *
 * socket → {@link Hub.receive} (token bucket, backlog) → {@link parseClientFrame}
 * → `#dispatch` to a command module → store/broker → {@link BrokerEvent} back
 * on every node → `#onEvent` serializes once → {@link Outbox} → sockets.
 *
 * The rest lives beside it, each behind a narrow context: sign-in
 * (`sign_in.ts`, open-mode names in `names.ts`), commands (`commands.ts`,
 * `join.ts`, `passwd.ts`), typing (`typing.ts`), flood control (`limits.ts`),
 * reply pacing (`replies.ts`), the routing table (`routes.ts`) and frame text
 * (`frames.ts`). Plain logic with no I/O of its own: sockets, the store and
 * the broker come in through small interfaces, and time comes from
 * `tick(now)` calls made by the server's one shared timer.
 *
 * Why this file is over 600 lines: what remains is the registry and the
 * fan-out that reads it, one set of private state (connections, users,
 * routes) that every event touches, plus the constructor that wires the
 * modules above. Splitting it further would mean handing that state out
 * through a wide context object.
 *
 * @module
 */
import type { Auth } from "../auth/auth.ts";
import {
  type Identity,
  type MemberChange,
  RETRY_CONNECT,
  type SignInRead,
  SignIns,
} from "./sign_in.ts";
import { Passwords } from "./passwd.ts";
import { Commands } from "./commands.ts";
import { DEFAULTS, MEMORY_FILES_QUOTA } from "../config.ts";
import type { FileStore } from "../files/files.ts";
import { MemoryFileStore } from "../files/memory.ts";
import { FileUrls } from "../files/urls.ts";
import { memberCountFrame, MemberCounts } from "./member_counts.ts";
import { Joins } from "./join.ts";
import { hold, receivers, type Route, Routes } from "./routes.ts";
import type { Broker, BrokerEvent, MemberEvent, Origin, RenamedEvent } from "../broker/broker.ts";
import { DEFAULT_LIMITS, KeyedCounter, type Limits, RoomQuota, takeToken } from "./limits.ts";
import { closeSocket, Conn, type Drop, type Refusal, type SendError, type User } from "./conn.ts";
import type { Logger } from "../log.ts";
import { Outbox, type OutboxOptions, type Socket } from "./outbox.ts";
import { Presence, type PresenceOptions } from "./presence.ts";
import {
  type ChatMessage,
  type ClientFrame,
  CloseCode,
  type ErrorCode,
  FrameError,
  MAX_FRAME_BYTES,
  type NotifyLevel,
  parseClientFrame,
  type ServerFrame,
  utf8Length,
} from "../../protocol.ts";
import { type Applied, dmPair, type Rename, type Store } from "../store/store.ts";
import { changeFrame, Changes } from "./changes.ts";
import { encode, messageFrame, peerOf, targetOf, welcomeFrame, withRef } from "./frames.ts";
import { Directory } from "./directory.ts";
import type { ThrottleOptions } from "../auth/throttle.ts";
import { Typists } from "./typing.ts";
import { banMessage, Moderation } from "./moderation.ts";
import { kindOf, renamesFor, RoomCommands, RoomKinds } from "./rooms.ts";
import type { AdminStore } from "../admin/admin.ts";
import { MemoryAdminStore } from "../admin/memory.ts";
import { Replies, SearchSlots } from "./replies.ts";
import { type HubMeter, NO_HUB_METER } from "../metrics/meter.ts";
import type { PushStore } from "../push/push_store.ts";
import { MemoryPushStore } from "../push/memory.ts";
import { type NotifyLevelEvent, Pushes, type PushSending } from "./push.ts";

export { Conn } from "./conn.ts";
export { DEFAULT_LIMITS, type Limits } from "./limits.ts";

/** Options for {@link Hub}. */
export interface HubOptions {
  /** Where messages, rooms and markers are kept. */
  store: Store;
  /** How events reach every node. */
  broker: Broker;
  /** Accounts, passwords and tokens. */
  auth: Auth;
  /** Bans and the audit log. @default {a MemoryAdminStore} */
  admin?: AdminStore;
  /** Where the hub logs. */
  log: Logger;
  /** Largest message text in UTF-8 bytes. @default {4096} */
  maxMessageBytes?: number;
  /** Seconds after sending during which a message may be edited. @default {no limit} */
  editWindow?: number;
  /** Milliseconds a new connection has to sign in. @default {10000} */
  authTimeout?: number;
  /** Milliseconds of silence after which a typing flag clears. @default {5000} */
  typingTimeout?: number;
  /** Flood control. */
  limits?: Partial<Limits>;
  /** Sign-in throttling. */
  throttle?: Partial<ThrottleOptions>;
  /** Batching and slow-consumer settings. */
  outbox?: OutboxOptions;
  /** When presence frames switch from full lists to deltas, and how often they go. */
  presence?: PresenceOptions;
  /**
   * Open mode: milliseconds after which a name not seen is released, with
   * its direct messages and read markers. @default {2592000000} (30 days)
   */
  nameExpiry?: number;
  /** Clock in milliseconds. @default {Date.now} */
  now?: () => number;
  /** Where uploads are kept. @default {a MemoryFileStore with the in-memory quota} */
  files?: FileStore;
  /** Counting hooks (`--metrics`). @default {hooks that do nothing} */
  meter?: HubMeter;
  /** Push subscriptions, levels and visibility. @default {a MemoryPushStore} */
  pushStore?: PushStore;
  /** Web Push, when it is on. @default {off} */
  push?: PushSending | null;
  /** Rooms with more members take `@room` from admins only; 0: any size. @default {100} */
  roomMentionMax?: number;
  /** Joins and leaves are posted only in rooms with fewer members. @default {100} */
  announceBelow?: number;
}

/** What the HTTP layer knows about a new connection. */
export interface ConnInfo {
  /** Client address (for logs and per-address limits). */
  addr: string;
}

/** WebSocket.readyState of a socket whose handshake has not finished. */
const CONNECTING = 0;

/** Rooms, users and fan-out for one node. */
export class Hub {
  #store: Store;
  #broker: Broker;
  #auth: Auth;
  #log: Logger;
  #outbox: Outbox;
  #now: () => number;
  #maxText: number;
  #limits: Limits;

  #conns = new Map<number, Conn>();
  #authed = new Set<Conn>();
  #users = new Map<string, User>();
  /** Who the `users` frames list. */
  #directory: Directory;
  /** Sign-ins: pending connections, identities, sign-out, name expiry. */
  #signIns: SignIns;
  /** Replies from stored data, paced by their connection's socket. */
  #replies: Replies;
  #searches = new SearchSlots();
  #routes = new Routes();
  /** The `join` command, which rewires routes. */
  #joins: Joins;
  #typists: Typists;
  #presence: Presence;
  #closing = false;
  #addrs = new KeyedCounter();
  #rooms: RoomQuota;
  /** Password changes and the sessions they end. */
  #passwords: Passwords;
  /** Handlers of the commands that need no routing changes. */
  #commands: Commands;
  /** Handlers of edits, deletes and reactions. */
  #changes: Changes;
  /** Bans and kicks. */
  #moderation: Moderation;
  /** The kinds of rooms this node has read. */
  #kinds: RoomKinds;
  /** `invite` and `room_settings`. */
  #roomCommands: RoomCommands;
  #files: FileStore;
  #urls: FileUrls;
  #meter: HubMeter;
  /** Web Push frames, visibility and levels. */
  #pushes: Pushes;
  #roomMentionMax: number;
  /** Which joins and leaves are posted; the counts of rooms where they are not. */
  #memberCounts: MemberCounts;

  /** Creates a hub and subscribes it to the broker. */
  constructor(options: HubOptions) {
    this.#store = options.store;
    this.#broker = options.broker;
    this.#auth = options.auth;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#meter = options.meter ?? NO_HUB_METER;
    this.#maxText = options.maxMessageBytes ?? DEFAULTS.maxMessageBytes;
    this.#roomMentionMax = options.roomMentionMax ?? DEFAULTS.roomMentionMax;
    this.#memberCounts = new MemberCounts(options.announceBelow ?? DEFAULTS.announceBelow);
    const nameExpiry = options.nameExpiry ?? DEFAULTS.nameExpiryDays * 24 * 3600_000;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#files = options.files ?? new MemoryFileStore({ quota: MEMORY_FILES_QUOTA });
    this.#urls = new FileUrls(this.#auth.keyFor("files"));
    // What most parts need; each takes only the fields its context names.
    const node = {
      store: this.#store,
      broker: this.#broker,
      auth: this.#auth,
      log: this.#log,
      now: () => this.#now(),
      files: this.#files,
      urls: this.#urls,
    };
    const error: SendError = (...args) => this.#error(...args);
    const drop: Drop = (...args) => this.#drop(...args);
    this.#kinds = new RoomKinds(this.#store);
    const revalidate = () => this.revalidate();
    const admin = options.admin ?? new MemoryAdminStore();
    this.#moderation = new Moderation({
      ...node,
      admin,
      reply: (conn, frame) => this.#reply(conn, frame),
      isMember: async (user, room) => (await this.#store.roomsOf(user)).includes(room),
      // Read only when a ban happens, after the push parts below exist.
      forgetPushes: (user) => this.#pushes.store.forgetSubscriptions(user),
    });
    this.#signIns = new SignIns({
      ...node,
      error,
      drop,
      revalidate,
      closing: () => this.#closing,
      banned: (name) => this.#moderation.banOf(name),
      recentBan: (name) => this.#moderation.recentBan(name),
      directory: { moved: (name) => this.#directory.moved(name) },
      register: (conn, who, read, changes) => this.#register(conn, who, read, changes),
      levels: (name) => this.#pushes.levels(name),
      signedOut: (user, session) =>
        this.#pushes.store.forgetSession(user, session).then(() => {}, (err) =>
          this.#log.warn(
            `Could not forget the push subscriptions of a session of "${user}": ${
              (err as Error).message
            }`,
          )),
      released: (user) =>
        this.#pushes.store.forgetUser(user).catch((err) =>
          this.#log.warn(`Could not forget "${user}"'s push data: ${(err as Error).message}`)
        ),
      handle: (conn, data) => this.#handle(conn, data),
    }, {
      limits: this.#limits,
      authTimeout: options.authTimeout ?? 10_000,
      nameExpiry,
      throttle: options.throttle,
      meter: this.#meter,
    });
    this.#pushes = new Pushes({
      store: options.pushStore ?? new MemoryPushStore(),
      broker: this.#broker,
      log: this.#log,
      now: node.now,
      sending: options.push ?? null,
      conv: (user, frame, ref) => this.#commands.conv(user, frame, ref),
      reply: (conn, frame) => this.#reply(conn, frame),
      userConns: (name) => this.#users.get(name)?.conns,
      users: () => this.#users.values(),
    });
    this.#rooms = new RoomQuota(this.#store, this.#limits.maxRoomsPerUser, this.#limits.maxRooms);
    this.#typists = new Typists(node, {
      timeout: options.typingTimeout ?? 5_000,
      burst: this.#limits.typingBurst,
      interval: this.#limits.typingInterval,
    });
    this.#passwords = new Passwords({
      ...node,
      error,
      drop,
      revalidate,
      throttle: this.#signIns.throttle,
      reply: (conn, frame) => this.#reply(conn, frame),
      sessionsEnded: (user, keep, next) =>
        this.#pushes.store.keepSession(user, keep, next, this.#auth.fingerprint(user) ?? undefined)
          .catch((err) =>
            this.#log.warn(
              `Could not forget the push subscriptions of "${user}"'s other sessions: ${
                (err as Error).message
              }`,
            )
          ),
    });
    this.#outbox = new Outbox({
      ...options.outbox,
      onSlow: (sink) => this.#slow(sink as Conn),
    });
    this.#replies = new Replies(this.#outbox);
    this.#broker.subscribe((e) => this.#onEvent(e));
    this.#presence = new Presence(this.#broker, options.presence);
    this.#directory = new Directory({
      accounts: () => this.#auth.mode === "login" ? this.#auth.names() : null,
      store: this.#store,
      isOnline: (name) => this.#broker.isOnline(name),
      onlineUsers: () => this.#broker.onlineUsers(),
      now: node.now,
      nameExpiry,
      turn: () => this.#searches.turn(),
      done: () => this.#searches.done(),
    });
    const push = (conn: Conn, text: string) => this.#outbox.push(conn, text);
    const replyBytes = () => this.#outbox.replyBytes;
    this.#joins = new Joins({
      ...node,
      push,
      replyBytes,
      routes: this.#routes,
      quota: this.#rooms,
      replies: this.#replies,
      onMember: (event) => this.#onMember(event),
      kinds: this.#kinds,
    });
    this.#commands = new Commands({
      ...node,
      kinds: this.#kinds,
      replyBytes,
      send: (conn, text) => this.#send1(conn, text),
      resent: (conn, room, copy) => {
        const held = room === undefined ? undefined : this.#routes.get(room)?.joining.get(conn);
        if (held) held.push(copy);
        else push(conn, copy.text);
      },
      removeMember: (user, room) => this.#removeMember(user, room),
      typists: this.#typists,
      searches: this.#searches,
      directory: this.#directory,
      stored: (msg) => this.#pushes.dispatcher?.message(msg),
      readUpTo: (user, conv, id) => this.#pushes.dispatcher?.read(user, conv, id),
    });
    this.#roomCommands = new RoomCommands({
      ...node,
      admin,
      kinds: this.#kinds,
      isMember: (user, room) => this.#commands.isMember(user, room),
      resolveUser: (name) => this.#commands.resolveUser(name),
      banned: (name) => this.#moderation.banOf(name),
      reply: (conn, frame) => this.#reply(conn, frame),
      renamed: (room, to) =>
        this.#pushes.store.renameRoom(room, to).catch((err) =>
          this.#log.warn(
            `Notification levels of #${room} did not follow it to #${to}: ${
              (err as Error).message
            }`,
          )
        ),
    });
    this.#changes = new Changes({
      ...node,
      kinds: this.#kinds,
      conv: (user, frame, ref) => this.#commands.conv(user, frame, ref),
      editWindow: options.editWindow === undefined ? undefined : options.editWindow * 1000,
      reply: (conn, text) => this.#send1(conn, text),
      admin,
    });
    this.#broker.onPresence((user) => {
      this.#presence.changed(user);
      // Gone offline (on any node, which wrote their last seen first), or
      // changed in some unknown way: the directory reads them again.
      if (user === undefined) this.#directory.forget();
      else if (!this.#broker.isOnline(user)) this.#directory.moved(user);
    });
  }

  /** Number of open connections (signed in or not). */
  get connections(): number {
    return this.#conns.size;
  }

  /** Number of users online on this node. */
  get usersOnline(): number {
    return this.#users.size;
  }

  /** Number of rooms this node routes frames for (rooms with a connection here). */
  get roomsRouted(): number {
    return this.#routes.size;
  }

  // -------------------------------------------------------------------------
  // Connection lifecycle

  /**
   * Registers a new socket; it must send `auth` first. A connection over a
   * limit (or one arriving during shutdown) is refused when it opens: call
   * {@link opened} from the socket's `open` event.
   *
   * Connections that have not signed in are counted apart from signed-in
   * ones, per address: a crowd of half-open sockets can neither fill the
   * address's signed-in quota nor hold on to its sign-in slots, because the
   * oldest idle one makes way for a newcomer.
   */
  open(socket: Socket, info: ConnInfo): Conn {
    const conn = new Conn(
      socket,
      info.addr,
      this.#now(),
      this.#limits.frameBurst,
    );
    this.#conns.set(conn.id, conn);
    const max = this.#limits.maxConnsPerAddr;
    if (this.#closing) {
      conn.refusal = { code: CloseCode.GoingAway, reason: "server shutting down" };
    } else if (this.#addrs.get(conn.addr) >= max) {
      conn.refusal = {
        code: CloseCode.RateLimited,
        reason: "too many connections",
        error: {
          code: "rate_limited",
          message: `Too many connections from your address (at most ${max}): close some and retry`,
          retryAfter: RETRY_CONNECT,
        },
      };
    } else this.#signIns.admit(conn);
    if (conn.refusal) this.#meter.closed(conn.refusal.code);
    return conn;
  }

  /**
   * The socket is open: refuses the connection now if {@link open} decided
   * so, else its time to sign in starts now.
   */
  opened(conn: Conn): void {
    const r = conn.refusal;
    if (r === null) {
      if (!conn.closed && conn.user === null) conn.opened = this.#now();
      return;
    }
    conn.refusal = null;
    if (r.error) {
      const { code, message, retryAfter } = r.error;
      // Sent even if the hub let go of it already: it was dropped while connecting.
      this.#outbox.push(
        conn,
        encode({ type: "error", code, message, ...(retryAfter ? { retryAfter } : {}) }),
      );
    }
    this.#outbox.flushSink(conn);
    this.close(conn);
    closeSocket(conn, r.code, r.reason);
  }

  /**
   * Handles one frame from a socket (a string, or anything else for binary).
   * Before sign-in, anything invalid, oversized or binary ends the
   * connection after its error frame: nobody has vouched for it yet, and it
   * must not cost the server more than one frame.
   */
  receive(conn: Conn, data: unknown): void {
    if (conn.closed) return;
    const early = conn.user === null;
    if (!this.#take(conn)) {
      if (early) this.#drop(conn, CloseCode.RateLimited, "too many frames");
      return;
    }
    if (typeof data !== "string") {
      this.#meter.frameIn("other");
      this.#error(
        conn,
        "bad_request",
        "Binary frames are not supported: send JSON text",
      );
      if (early) this.#drop(conn, CloseCode.BadFrame, "binary frame");
      return;
    }
    if (conn.backlog !== null) {
      if (conn.backlog.length >= this.#limits.authBacklog) {
        this.#error(conn, "rate_limited", "Too many frames before sign-in finished");
        this.#drop(conn, CloseCode.RateLimited, "too many frames");
      } else if (data.length * 3 > MAX_FRAME_BYTES && utf8Length(data) > MAX_FRAME_BYTES) {
        this.#error(conn, "too_large", `Frame is larger than ${MAX_FRAME_BYTES} bytes`);
        this.#drop(conn, CloseCode.BadFrame, "frame too large");
      } else conn.backlog.push(data);
      return;
    }
    this.#handle(conn, data);
  }

  #handle(conn: Conn, data: string): void {
    let frame: ClientFrame;
    try {
      frame = parseClientFrame(data, { maxMessageBytes: this.#maxText });
    } catch (err) {
      if (err instanceof FrameError) {
        this.#meter.frameIn("other");
        this.#error(conn, err.code, err.message, err.ref);
        if (conn.user === null) this.#drop(conn, CloseCode.BadFrame, "invalid frame");
        return;
      }
      throw err;
    }
    this.#meter.frameIn(frame.type);
    if (conn.user === null) this.#signIns.begin(conn, frame);
    else this.#dispatch(conn, frame);
  }

  /** The socket closed: forget the connection. */
  close(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    this.#outbox.discard(conn);
    this.#conns.delete(conn.id);
    this.#signIns.unpend(conn);
    this.#authed.delete(conn);
    const user = conn.user;
    if (!user) return;
    this.#addrs.remove(conn.addr);
    for (const room of user.rooms) this.#routes.unroute(room, conn);
    for (const room of user.joining?.keys() ?? []) this.#routes.unroute(room, conn);
    const wasVisible = conn.visible || this.#pushes.visibleHere(user);
    user.conns.delete(conn);
    this.#pushes.closed(user, wasVisible);
    if (user.conns.size === 0) {
      this.#users.delete(user.name);
      this.#typists.clear(user.name);
      // Seen until now, queued before going offline (shutdown() records
      // everyone at once). Another node may read the directory before the
      // write lands: it shows this time once its list is read again (within
      // DIRECTORY_TTL). A lost write only leaves the sign-in time showing.
      if (!this.#closing) {
        this.#store.markSeen([user.name], this.#now()).then(
          () => this.#directory.moved(user.name),
          () => {},
        );
      }
      this.#broker.offline(user.name);
      if (this.#auth.mode === "open" && conn.session !== null) {
        // The name's holder was here until now: expiry counts from its last visit.
        this.#store.claimName(user.name, conn.session, this.#now(), false).catch(() => {});
      }
    }
  }

  /**
   * Runs the timers: sign-in deadlines, typing expiry, presence broadcasts.
   * The server calls it from one shared interval.
   */
  tick(now: number = this.#now()): void {
    this.#signIns.timeOut(now);
    this.#typists.tick(now);
    this.#replies.tick();
    this.#signIns.tick(now);
    this.#pushes.tick(now);
    const presence = this.#presence.frame(now);
    if (presence !== null) this.#outbox.fanout(this.#authed, presence);
    const conns = (room: string) => this.#routes.get(room)?.conns.size ?? 0;
    for (const room of this.#memberCounts.take(now, conns)) this.#sendCount(room);
  }

  /**
   * Takes users who are gone (removed from users.json, by an admin or on the
   * server's shell) out of every room; `by` names the admin, if one did it.
   */
  async evict(users: Iterable<string>, by?: string): Promise<void> {
    for (const user of users) {
      await this.#moderation.evict(user, by);
      // Their devices must not hear of a namesake's messages: subscriptions and levels go.
      await this.#pushes.store.forgetUser(user).catch((err) =>
        this.#log.warn(`Could not forget "${user}"'s push subscriptions: ${(err as Error).message}`)
      );
    }
  }

  /** Web Push: subscriptions, levels and visibility. */
  get pushStore(): PushStore {
    return this.#pushes.store;
  }

  /**
   * Stops looking for pushes to send and withdraws this node's visible
   * users (call before the stores close).
   */
  async stopPushes(): Promise<void> {
    await this.#pushes.dispatcher?.close();
    await this.#pushes.leave();
  }

  /** Starts no more rereads of users.json for password changes; settles once those under way are done. */
  stopRereads(): Promise<void> {
    return this.#passwords.close();
  }

  /**
   * Ends every session of users whose credentials changed (after users.json
   * reloads), except a session that changed its own password: its
   * connections go on, each with a fresh token (see {@link Passwords}); and
   * tells users whose role changed their new role.
   */
  revalidate(): void {
    this.#passwords.revalidate(this.#authed);
    // A role changed in users.json reaches the user's connections here at once.
    for (const user of this.#users.values()) {
      const role = this.#auth.role(user.name);
      if (role === user.role) continue;
      if (role === undefined) delete user.role;
      else user.role = role;
      if (role === undefined) continue;
      const text = encode({ type: "role", role } satisfies ServerFrame);
      for (const conn of user.conns) this.#outbox.push(conn, text);
    }
  }

  /**
   * Tells every client the server is going away and closes its socket with
   * 1001; new connections are refused from now on. Returns the sockets it
   * closed, so the caller can wait for their closing handshakes.
   */
  shutdown(): Socket[] {
    this.#closing = true;
    this.#signIns.close();
    // Everyone here was seen until now: one write for all, queued before the store closes.
    const here = [...this.#users.keys()];
    if (here.length > 0) this.#store.markSeen(here, this.#now()).catch(() => {});
    const frame = encode({
      type: "system",
      event: "shutdown",
      ts: new Date(this.#now()).toISOString(),
    });
    this.#outbox.flush();
    for (const conn of [...this.#conns.values()]) {
      if (conn.user) this.#outbox.push(conn, frame);
    }
    this.#outbox.flush();
    const sockets: Socket[] = [];
    for (const conn of [...this.#conns.values()]) {
      sockets.push(conn.socket);
      this.#drop(conn, CloseCode.GoingAway, "server shutting down");
    }
    this.#outbox.close();
    return sockets;
  }

  // -------------------------------------------------------------------------
  // Sign-in

  /**
   * Registers a connection whose sign-in was vouched for: within the
   * connection limits it joins the user's connections and routes and gets
   * its `welcome`; false once it has been refused.
   */
  #register(
    conn: Conn,
    who: Identity,
    read: SignInRead,
    changes: readonly MemberChange[],
  ): boolean {
    const { rooms } = read;
    let { conversations } = read;
    const { name, session, fingerprint } = who;
    const auth = this.#auth;
    // Banned while this sign-in read the store: the ban's event came first.
    const ban = this.#moderation.recentBan(name);
    if (ban) {
      this.#meter.signInFailed("banned");
      this.#drop(conn, CloseCode.Banned, "banned", { code: "banned", message: banMessage(ban) });
      return false;
    }
    let user = this.#users.get(name);
    const maxConns = this.#limits.maxConnsPerUser;
    const maxAddr = this.#limits.maxConnsPerAddr;
    if (user && user.conns.size >= maxConns) {
      this.#signIns.refuse(
        conn,
        `Too many connections for "${name}" (at most ${maxConns}): close another tab or device`,
      );
      return false;
    }
    if (!this.#addrs.add(conn.addr, maxAddr)) {
      this.#signIns.refuse(
        conn,
        `Too many connections from your address (at most ${maxAddr}): close some and retry`,
      );
      return false;
    }
    this.#authed.add(conn);
    if (!user) {
      user = { name, conns: new Set(), rooms: new Set(rooms), joining: null };
      const role = auth.role(name);
      if (role !== undefined) user.role = role;
      // Events are newer than the read: replaying them in order gives the current set.
      for (const c of changes) {
        if (c.to !== undefined) {
          if (user.rooms.delete(c.room)) user.rooms.add(c.to);
        } else if (c.joined) user.rooms.add(c.room);
        else user.rooms.delete(c.room);
      }
      this.#users.set(name, user);
    }
    // The conversations were read before any rename heard since: under the new name.
    const heard: Rename[] = [];
    for (const c of changes) {
      if (c.to === undefined) continue;
      const to = c.to;
      conversations = conversations.map((v) => v.room === c.room ? { ...v, room: to } : v);
      heard.unshift({ room: c.room, name: to, at: 0 });
    }
    const renamed = renamesFor([...heard, ...read.renames], user.rooms);
    const wasVisible = this.#pushes.visibleHere(user);
    user.conns.add(conn);
    this.#pushes.registered(user, conn, wasVisible);
    conn.user = user;
    conn.fingerprint = fingerprint;
    conn.session = session;
    for (const room of user.rooms) this.#routes.route(room).conns.add(conn);
    this.#broker.online(name);
    this.#outbox.push(
      conn,
      welcomeFrame({
        user: name,
        token: auth.issueToken(name, session),
        rooms: user.rooms,
        conversations,
        // The online list is kept sorted and serialized once per change, not per welcome.
        online: this.#presence.welcomeFields(),
        mode: auth.mode,
        role: user.role,
        renamed,
        push: this.#pushes.info,
        levels: levelsFor(read.levels, user.rooms),
        limits: {
          rate: this.#limits.frameRate,
          burst: this.#limits.frameBurst,
          maxMessage: this.#maxText,
          ...(this.#roomMentionMax > 0 ? { roomMentionMax: this.#roomMentionMax } : {}),
        },
        replyBytes: this.#outbox.replyBytes,
      }),
    );
    return true;
  }

  /** Where messages are kept. */
  get store(): Store {
    return this.#store;
  }

  /** Where uploads are kept. */
  get files(): FileStore {
    return this.#files;
  }

  /** Signs file links for their viewers. */
  get fileUrls(): FileUrls {
    return this.#urls;
  }

  /**
   * The user a session token belongs to now (as their name is spelled), or
   * null when it is forged, expired, signed out, or (open mode) its name has
   * gone to someone else: what an HTTP request with a bearer token acts as.
   */
  tokenUser(token: string): Promise<string | null> {
    return this.#signIns.tokenUser(token);
  }

  /**
   * Whether `user` may see the files of conversation `conv` now: a member of
   * the room, or a party of the DM, who still exists (an account in login
   * mode, a held name in open mode).
   */
  async canSeeFiles(user: string, conv: string): Promise<boolean> {
    let name: string | undefined = user;
    if (this.#auth.mode === "login") name = this.#auth.canonical(user);
    else name = (await this.#store.nameClaim(user))?.name;
    if (name === undefined) return false;
    const pair = dmPair(conv);
    if (pair !== null) return pair.some((p) => p.toLowerCase() === name.toLowerCase());
    return (await this.#store.roomsOf(name)).includes(conv);
  }

  /**
   * Signs a session out everywhere: its tokens stop working on every node,
   * its connections close with 4003, and in open mode its name is released
   * (with its direct messages and read markers). Resolves false for a token
   * that is not valid (forged, expired or already revoked).
   */
  signOut(token: string): Promise<boolean> {
    return this.#signIns.signOut(token);
  }

  // -------------------------------------------------------------------------
  // Frames from signed-in users

  #dispatch(conn: Conn, frame: ClientFrame): void {
    let work: Promise<void> | void = undefined;
    switch (frame.type) {
      case "send":
        work = this.#commands.send(conn, frame);
        break;
      case "edit":
        work = this.#changes.edit(conn, frame);
        break;
      case "delete":
        work = this.#changes.delete(conn, frame);
        break;
      case "react":
        work = this.#changes.react(conn, frame);
        break;
      case "join":
        work = this.#joins.join(conn, frame.room, frame.since, { private: frame.private });
        break;
      case "invite":
        work = this.#roomCommands.invite(conn, frame);
        break;
      case "room_settings":
        work = this.#roomCommands.settings(conn, frame);
        break;
      case "rename_room":
        work = this.#roomCommands.rename(conn, frame);
        break;
      case "leave":
        work = this.#commands.leave(conn, frame.room);
        break;
      case "rooms":
        work = this.#replies.inTurn(conn, () => this.#commands.rooms(conn));
        break;
      case "typing":
        work = this.#commands.typing(conn, frame, frame.active);
        break;
      case "history":
        work = this.#replies.inTurn(conn, () => this.#commands.history(conn, frame));
        break;
      case "read":
        work = this.#commands.read(conn, frame, frame.id);
        break;
      case "search":
        work = this.#replies.inTurn(conn, () => this.#commands.search(conn, frame));
        break;
      case "users":
        work = this.#replies.inTurn(conn, () => this.#commands.users(conn, frame.q));
        break;
      case "members":
        work = this.#replies.inTurn(conn, () => this.#commands.members(conn, frame));
        break;
      case "topic":
        work = this.#commands.topic(conn, frame);
        break;
      case "read_all":
        work = this.#replies.inTurn(conn, () => this.#commands.readAll(conn));
        break;
      case "ping":
        this.#reply(conn, { type: "pong" });
        break;
      case "passwd":
        work = this.#passwords.passwd(conn, frame);
        break;
      case "ban":
        work = this.#moderation.ban(conn, frame);
        break;
      case "unban":
        work = this.#moderation.unban(conn, frame);
        break;
      case "kick":
        work = this.#moderation.kick(conn, frame);
        break;
      case "visible":
        this.#pushes.visible(conn, frame);
        break;
      case "push_subscribe":
        work = this.#pushes.subscribe(conn, frame);
        break;
      case "push_unsubscribe":
        work = this.#pushes.unsubscribe(conn, frame);
        break;
      case "notify_level":
        work = this.#pushes.level(conn, frame);
        break;
      case "auth":
      case "register":
        this.#error(conn, "bad_request", "Already signed in");
        break;
    }
    if (work) {
      work.catch((err) => {
        if (err instanceof FrameError) {
          this.#error(conn, err.code, err.message, err.ref);
          return;
        }
        this.#log.error(`Handling "${frame.type}" failed: ${(err as Error).message}`);
        this.#error(
          conn,
          "unavailable",
          "The server could not do that right now: try again shortly",
          (frame as { ref?: string }).ref,
        );
      });
    }
  }

  // -------------------------------------------------------------------------
  // Events from every node

  #onEvent(e: BrokerEvent): void {
    // Not in the broker's union yet (see push.ts): told to the user's connections.
    if ((e as { kind: string }).kind === "notify_level") {
      const level = e as unknown as NotifyLevelEvent;
      return this.#pushes.heard(level, this.#originConn(level.origin));
    }
    switch (e.kind) {
      case "message":
        return this.#onMessage(this.#current(e.msg), e.origin);
      case "change":
        return this.#onChange(this.#current(e.applied), e.origin);
      case "renamed":
        return this.#onRenamed(e);
      case "typing": {
        // A DM's recipient sees it addressed to them, as the conversation spells them.
        const target = e.room !== undefined ? { room: e.room } : { to: peerOf(e.conv, e.user) };
        const text = encode({ type: "typing", ...target, user: e.user, active: e.active });
        if (e.room !== undefined) {
          const route = this.#routes.get(e.room);
          if (route) this.#outbox.fanout(othersOf(route.conns, e.user), text);
        } else {
          const peer = this.#users.get(peerOf(e.conv, e.user));
          if (peer && peer.name !== e.user) this.#outbox.fanout(peer.conns, text);
        }
        return;
      }
      case "member":
        return this.#onMember(e);
      case "signout": {
        const conns = [
          ...(this.#users.get(e.user)?.conns ?? []),
          ...this.#signIns.signingIn(e.session),
        ];
        for (const c of conns) {
          if (c.closed || (c.session !== e.session && c.user !== null)) continue;
          this.#error(c, "auth_failed", "You signed out: sign in again");
          this.#drop(c, CloseCode.AuthFailed, "signed out");
        }
        return;
      }
      case "passwd":
        return this.#passwords.noted(e);
      case "ban": {
        this.#moderation.heard(e.user, true, e);
        const user = this.#users.get(this.#auth.canonical(e.user) ?? e.user);
        for (const c of [...(user?.conns ?? [])]) {
          this.#drop(c, CloseCode.Banned, "banned", { code: "banned", message: banMessage(e) });
        }
        return;
      }
      case "unban":
        return this.#moderation.heard(e.user, false);
      case "room": {
        this.#kinds.set(e.room, e.settings);
        this.#signIns.roomsChanged();
        const route = this.#routes.get(e.room);
        if (!route) return;
        const text = encode({
          type: "room_settings",
          room: e.room,
          settings: kindOf(e.settings),
          by: e.by,
        });
        this.#outbox.fanout(route.conns, text);
        return;
      }
      case "read": {
        const user = this.#users.get(e.user);
        if (!user) return;
        const origin = this.#originConn(e.origin);
        const frame: ServerFrame = { type: "read", ...targetOf(e), id: e.id };
        this.#outbox.fanout(user.conns, encode(frame), origin ?? undefined);
        return;
      }
      case "topic": {
        const route = this.#routes.get(e.room);
        if (!route) return;
        const text = encode({
          type: "topic",
          room: e.room,
          topic: e.topic,
          user: e.user,
          ts: e.ts,
        });
        this.#outbox.fanout(route.conns, text);
        // A `joined` being prepared may hold the topic from before: this follows it.
        for (const held of route.joining.values()) {
          const old = held.findIndex((b) => b.topic);
          if (old !== -1) held.splice(old, 1);
          held.push({ seq: 0, text, own: true, topic: true });
        }
        return;
      }
    }
  }

  /**
   * A message or change of a room renamed since it was stored (published
   * before the rename, heard after it): it goes to the room under its name
   * now. Anything else as it is.
   */
  #current<T extends ChatMessage | Applied>(item: T): T {
    const room = "conv" in item ? (dmPair(item.conv) ? undefined : item.conv) : item.room;
    if (room === undefined || this.#routes.get(room)) return item;
    const now = this.#kinds.renamedTo(room);
    if (now === undefined) return item;
    return "conv" in item ? { ...item, conv: now } : { ...item, room: now };
  }

  /**
   * A room was renamed (on any node): its route, its members' room lists
   * and its kind here move to the new name, sign-ins under way hear of it,
   * and its members' connections are told (the admin's gets the answer).
   */
  #onRenamed(e: RenamedEvent): void {
    this.#kinds.renamed(e.room, e.name);
    this.#memberCounts.moved(e.room, e.name);
    this.#signIns.noteRename(e.room, e.name);
    this.#signIns.roomsChanged();
    this.#typists.forgetRoom(e.room);
    const old = this.#routes.get(e.room);
    if (!old) return;
    // Joins under way by people who are not members (a first join, perhaps
    // one about to be refused) asked for the name, not for this room: they
    // stay with the old name, which is free now, and learn nothing of the new.
    const staying = [...old.joining].filter(([c]) => !c.user?.rooms.has(e.room));
    for (const [c] of staying) old.joining.delete(c);
    const rejoining = [...old.joining.keys()];
    const members = [...old.conns, ...rejoining];
    this.#routes.rename(e.room, e.name);
    if (staying.length > 0) {
      const route = this.#routes.route(e.room);
      for (const [c, held] of staying) route.joining.set(c, held);
    }
    for (const c of members) {
      const user = c.user;
      if (user?.rooms.delete(e.room)) user.rooms.add(e.name);
    }
    const text = encode({ type: "room_renamed", room: e.room, name: e.name, by: e.by });
    const admin = this.#originConn(e.origin);
    this.#outbox.fanout(members, text, admin ?? undefined);
    // A member's `joined` on its way reads the old name: it is answered under the new one.
    for (const c of rejoining) {
      this.#joins.sendJoined(c, e.name).catch((err) => {
        this.#log.error(`Sending "joined" failed: ${(err as Error).message}`);
        this.#error(c, "unavailable", `Could not load room "${e.name}": try joining again`);
      });
    }
  }

  #originConn(origin: Origin | undefined): Conn | null {
    if (!origin || origin.node !== this.#broker.node) return null;
    return this.#conns.get(origin.conn) ?? null;
  }

  #onMessage(msg: ChatMessage, origin?: Origin): void {
    if (msg.files !== undefined) return this.#onFileMessage(msg, origin);
    const text = messageFrame(msg);
    const sender = this.#originConn(origin);
    const own = sender && origin?.ref !== undefined ? withRef(text, origin.ref) : text;
    if (msg.room !== undefined) {
      const route = this.#routes.get(msg.room);
      if (route) {
        this.#meter.message(route.conns.size);
        const { conns, skipped } = receivers(route, msg.seq);
        this.#outbox.fanout(conns, text, sender ?? undefined);
        // The sender's copy: its acknowledgement, even where the page had the message.
        if (sender && route.conns.has(sender) && (own !== text || !skipped?.has(sender))) {
          this.#outbox.push(sender, own);
        }
        for (const [c, buf] of route.joining) {
          const mine = c === sender && own !== text;
          hold(buf, { seq: msg.seq, text: mine ? own : text, own: mine });
        }
      }
      if (sender && own !== text && unrouted(route, sender)) this.#outbox.push(sender, own);
      return;
    }
    const a = this.#users.get(msg.from);
    const b = msg.to !== msg.from ? this.#users.get(msg.to!) : undefined;
    this.#meter.message((a?.conns.size ?? 0) + (b?.conns.size ?? 0));
    if (a) this.#outbox.fanout(a.conns, text, sender ?? undefined);
    if (b) this.#outbox.fanout(b.conns, text, sender ?? undefined);
    if (sender) this.#outbox.push(sender, own);
  }

  /**
   * A message with files: each user gets its own text, its links signed for
   * them (built once per user), by the same routes as any message.
   */
  #onFileMessage(msg: ChatMessage, origin?: Origin): void {
    const sender = this.#originConn(origin);
    const ref = sender ? origin?.ref : undefined;
    const texts = new Map<string, string>();
    const textFor = (c: Conn) => {
      const name = c.user!.name;
      let text = texts.get(name);
      if (text === undefined) {
        text = messageFrame(this.#urls.viewed(msg, name));
        texts.set(name, text);
      }
      return c === sender && ref !== undefined ? withRef(text, ref) : text;
    };
    if (msg.room !== undefined) {
      const route = this.#routes.get(msg.room);
      if (route) {
        this.#meter.message(route.conns.size);
        const { conns, skipped } = receivers(route, msg.seq);
        for (const c of conns) this.#outbox.push(c, textFor(c));
        if (sender && ref !== undefined && skipped?.has(sender)) {
          this.#outbox.push(sender, textFor(sender));
        }
        for (const [c, buf] of route.joining) {
          hold(buf, { seq: msg.seq, text: textFor(c), own: c === sender && ref !== undefined });
        }
      }
      if (sender && ref !== undefined && unrouted(route, sender)) {
        this.#outbox.push(sender, textFor(sender));
      }
      return;
    }
    const a = this.#users.get(msg.from);
    const b = msg.to !== msg.from ? this.#users.get(msg.to!) : undefined;
    const conns = new Set([...(a?.conns ?? []), ...(b?.conns ?? [])]);
    if (sender) conns.add(sender);
    this.#meter.message(conns.size);
    for (const c of conns) this.#outbox.push(c, textFor(c));
  }

  /**
   * A change reaches every connection of the conversation's members, in its
   * `seq` order with the messages around it; the asking connection's copy
   * carries the request's `ref`.
   */
  #onChange(applied: Applied, origin?: Origin): void {
    const asker = this.#originConn(origin);
    const ref = asker ? origin?.ref : undefined;
    const pair = dmPair(applied.conv);
    if (pair === null) {
      const route = this.#routes.get(applied.conv);
      const text = encode(changeFrame(applied, applied.user));
      const own = ref !== undefined ? withRef(text, ref) : text;
      if (route) {
        const { conns } = receivers(route, applied.seq);
        this.#outbox.fanout(conns, text, ref !== undefined ? asker! : undefined);
        if (ref !== undefined && route.conns.has(asker!)) this.#outbox.push(asker!, own);
        for (const [c, buf] of route.joining) {
          const mine = c === asker && own !== text;
          hold(buf, { seq: applied.seq, text: mine ? own : text, own: mine });
        }
      }
      if (ref !== undefined && unrouted(route, asker!)) this.#outbox.push(asker!, own);
      return;
    }
    for (const name of pair[0] === pair[1] ? [pair[0]] : pair) {
      const user = this.#users.get(name);
      if (!user) continue;
      const text = encode(changeFrame(applied, name));
      const mine = ref !== undefined && user.conns.has(asker!);
      this.#outbox.fanout(user.conns, text, mine ? asker! : undefined);
      if (mine) this.#outbox.push(asker!, withRef(text, ref!));
    }
  }

  #onMember(e: MemberEvent): void {
    const user = this.#users.get(e.user);
    const originConn = this.#originConn(e.origin);
    // Posted to every member only in rooms small enough; larger ones hear the
    // count, coalesced, so that a storm of sign-ins costs no frame per member.
    const announced = !e.quiet && this.#memberCounts.announces(e);
    if (!announced && !e.quiet) this.#memberCounts.note(e.room);
    const system = announced
      ? encode({
        type: "system",
        room: e.room,
        event: e.joined ? "join" : "leave",
        user: e.user,
        ...(e.by === undefined ? {} : { by: e.by }),
        ts: e.ts,
      })
      : null;
    // A sign-in of this user under way read its rooms before this change:
    // it replays the change if it ends up creating the user afresh.
    this.#signIns.noteMember(e.user, e.room, e.joined);
    if (e.joined) {
      this.#kinds.joined(e.room);
      const route = this.#routes.get(e.room);
      if (route && system !== null) this.#outbox.fanout(othersOf(route.conns, e.user), system);
      if (!user) return;
      if (e.by !== undefined && !user.rooms.has(e.room)) {
        // Added by someone else (an invite): told who, then given the room.
        const invited = encode({ type: "invited", room: e.room, by: e.by });
        for (const c of user.conns) this.#outbox.push(c, invited);
      }
      user.rooms.add(e.room);
      const r = this.#routes.route(e.room);
      for (const c of user.conns) {
        if (r.conns.has(c)) continue;
        if (!r.joining.has(c)) r.joining.set(c, []);
        const since = c === originConn ? e.since : undefined;
        this.#joins.sendJoined(c, e.room, since).catch((err) => {
          this.#log.error(`Sending "joined" failed: ${(err as Error).message}`);
          this.#error(c, "unavailable", `Could not load room "${e.room}": try joining again`);
        });
      }
      return;
    }
    if (user) this.#removeMember(user, e.room, e.by);
    const route = this.#routes.get(e.room);
    if (route && system !== null) this.#outbox.fanout(othersOf(route.conns, e.user), system);
  }

  /**
   * Tells the members of `room` on this node its count, read from the store
   * now: the newest, whatever order the changes were heard in.
   */
  #sendCount(room: string): void {
    if (!this.#routes.get(room)) return;
    this.#store.memberCount(room).then((count) => {
      const route = this.#routes.get(room);
      if (route) this.#outbox.fanout(route.conns, memberCountFrame(room, count));
    }).catch((err) => {
      // Told again with the room's next change.
      this.#log.warn(`Could not count the members of "${room}": ${(err as Error).message}`);
    });
  }

  /** Takes a room from the user's local state and tells its connections (and who removed them). */
  #removeMember(user: User, room: string, by?: string): void {
    if (!user.rooms.delete(room)) return;
    const left = encode(by === undefined ? { type: "left", room } : { type: "left", room, by });
    for (const c of user.conns) {
      this.#routes.unroute(room, c);
      this.#outbox.push(c, left);
    }
  }

  // -------------------------------------------------------------------------
  // Plumbing

  /** Takes a token from the connection's bucket; false (and an error) when empty. */
  #take(conn: Conn): boolean {
    const { frameRate: rate, frameBurst: burst } = this.#limits;
    const retryAfter = takeToken(conn, { rate, burst, now: this.#now });
    if (retryAfter === 0) return true;
    this.#meter.rateLimited();
    this.#error(
      conn,
      "rate_limited",
      `Too many frames: slow down and retry in ${retryAfter} s`,
      undefined,
      retryAfter,
    );
    return false;
  }

  #reply(conn: Conn, frame: ServerFrame): void {
    this.#send1(conn, encode(frame));
  }

  /** Sends frame text to one connection, if it is still there. */
  #send1(conn: Conn, text: string): void {
    if (!conn.closed) this.#outbox.push(conn, text);
  }

  #error(conn: Conn, code: ErrorCode, message: string, ref?: string, retryAfter?: number): void {
    const frame: ServerFrame = { type: "error", code, message };
    if (ref !== undefined) frame.ref = ref;
    if (retryAfter !== undefined) frame.retryAfter = retryAfter;
    this.#reply(conn, frame);
  }

  /**
   * Sends `error` (if any) and what is queued for `conn`, closes its socket
   * and forgets it. A socket still connecting ignores close(): it is closed
   * from {@link opened} instead.
   */
  #drop(conn: Conn, code: number, reason: string, error?: Refusal["error"]): void {
    if (!conn.closed) this.#meter.closed(code);
    if (conn.socket.readyState === CONNECTING) {
      conn.refusal ??= { code, reason, ...(error ? { error } : {}) };
      this.close(conn);
      return;
    }
    if (error) this.#error(conn, error.code, error.message, undefined, error.retryAfter);
    if (!conn.closed) this.#outbox.flushSink(conn);
    this.close(conn);
    closeSocket(conn, code, reason);
  }

  #slow(conn: Conn): void {
    this.#meter.closed(CloseCode.SlowConsumer);
    this.#log.warn(
      `Disconnecting a slow consumer${conn.user ? ` ("${conn.user.name}")` : ""} from ${conn.addr}`,
    );
    this.close(conn);
    closeSocket(conn, CloseCode.SlowConsumer, "slow consumer");
  }
}

/**
 * Whether `conn` is neither receiving nor awaiting the room: it left it
 * while its request was being stored, and gets the answer (its `ref` copy)
 * all the same — a request is never left unanswered.
 */
function unrouted(route: Route | undefined, conn: Conn): boolean {
  return !route || (!route.conns.has(conn) && !route.joining.has(conn));
}

/** The levels a welcome lists: of DMs and of rooms the user is in (a room left keeps none). */
function levelsFor(
  levels: Record<string, NotifyLevel> | undefined,
  rooms: ReadonlySet<string>,
): Record<string, NotifyLevel> | undefined {
  if (levels === undefined) return undefined;
  const out: Record<string, NotifyLevel> = {};
  let any = false;
  for (const [key, level] of Object.entries(levels)) {
    if (key.startsWith("#") && !rooms.has(key.slice(1))) continue;
    out[key] = level;
    any = true;
  }
  return any ? out : undefined;
}

function* othersOf(conns: Iterable<Conn>, user: string): Iterable<Conn> {
  for (const c of conns) if (c.user?.name !== user) yield c;
}
