/**
 * The chat hub: connections, users, rooms, typing, presence and fan-out.
 *
 * Plain logic with no I/O of its own: sockets, the store and the broker come
 * in through small interfaces, and time comes from `tick(now)` calls made by
 * the server's one shared timer. The data path reads top to bottom:
 * socket → {@link parseClientFrame} → a handler here → store/broker →
 * {@link BrokerEvent} back on every node → serialized once → {@link Outbox}.
 *
 * @module
 */
import { type Auth, newSessionId, passwordProblem } from "../auth/auth.ts";
import { HasherBusyError } from "../auth/password.ts";
import type { Broker, BrokerEvent, Origin } from "../broker/broker.ts";
import { KeyedCounter, RoomQuota } from "./limits.ts";
import type { Logger } from "../log.ts";
import { type Batch, Outbox, type OutboxOptions, type Socket } from "./outbox.ts";
import { Presence, type PresenceOptions } from "./presence.ts";
import {
  type ChatMessage,
  type ClientFrame,
  CloseCode,
  type Conversation,
  conversationKey,
  type ErrorCode,
  FrameError,
  isReservedName,
  JOIN_REPLAY,
  LOBBY,
  MAX_FRAME_BYTES,
  MAX_PAGE,
  parseClientFrame,
  type PasswdDoneFrame,
  type PasswdFrame,
  type SendLimits,
  type ServerFrame,
  type Target,
  utf8Length,
  type WelcomeFrame,
} from "../../protocol.ts";
import { dmPair, type NameClaim, type Store } from "../store/store.ts";
import { encode, fitItems, headBytes, messageFrame, withArrays, withRef } from "./frames.ts";
import { Directory } from "./directory.ts";
import { LoginThrottle, type Outcome, type ThrottleOptions } from "../auth/throttle.ts";
import { TypingGate } from "./typing_gate.ts";

/** Flood-control settings; see docs/security.md. */
export interface Limits {
  /** Frames per second a connection may send, sustained. @default {20} */
  frameRate: number;
  /** Frames a connection may send in a burst. @default {60} */
  frameBurst: number;
  /** Frames queued while a sign-in is being checked. @default {32} */
  authBacklog: number;
  /** Connections one user may hold on this node. @default {20} */
  maxConnsPerUser: number;
  /** Signed-in connections one client address may hold. @default {100} */
  maxConnsPerAddr: number;
  /**
   * Connections one client address may hold that have not sent a sign-in
   * frame yet; past it, the oldest of them makes way once it has had a
   * second to sign in (at once past four times as many). @default {16}
   */
  maxPendingPerAddr: number;
  /**
   * Connections the whole node holds that have not sent a sign-in frame;
   * past it, the oldest makes way. @default {1024}
   */
  maxPending: number;
  /** Rooms one user may create. @default {50} */
  maxRoomsPerUser: number;
  /** Rooms the whole chat may have. @default {1000} */
  maxRooms: number;
  /** Typing changes one typist may publish per conversation in a burst. @default {4} */
  typingBurst: number;
  /** Milliseconds per further typing change. @default {1000} */
  typingInterval: number;
}

/** Default {@link Limits}. */
export const DEFAULT_LIMITS: Limits = {
  frameRate: 20,
  frameBurst: 60,
  authBacklog: 32,
  maxConnsPerUser: 20,
  maxConnsPerAddr: 100,
  maxPendingPerAddr: 16,
  maxPending: 1024,
  maxRoomsPerUser: 50,
  maxRooms: 1000,
  typingBurst: 4,
  typingInterval: 1000,
};

/** Options for {@link Hub}. */
export interface HubOptions {
  store: Store;
  broker: Broker;
  auth: Auth;
  log: Logger;
  /** Largest message text in UTF-8 bytes. @default {4096} */
  maxMessageBytes?: number;
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
}

/** What the HTTP layer knows about a new connection. */
export interface ConnInfo {
  /** Client address (for logs and per-address limits). */
  addr: string;
}

/**
 * The throttle's key for password checks made on behalf of a session (a
 * sign-in from its device, a password change): names never hold a colon.
 */
function sessionKey(session: string): string {
  return `session:${session}`;
}

interface User {
  name: string;
  conns: Set<Conn>;
  rooms: Set<string>;
  /**
   * Joins under way (quota check and store write): room → settles when done.
   * Null when there are none, which is nearly always: an empty Map per user
   * would cost every idle connection ~200 bytes.
   */
  joining: Map<string, Promise<unknown>> | null;
}

/**
 * Member changes seen while a user signs in on this node: the sign-in read
 * the user's rooms before them, and replays them if it creates the user here.
 */
interface Arriving {
  /** Sign-ins of this user under way. */
  count: number;
  changes: { room: string; joined: boolean }[];
}

interface Buffered {
  id: number;
  text: string;
  /**
   * Sent after `joined` whatever its history holds: the sender's own copy,
   * carrying its `ref` (the acknowledgement), or a topic change.
   */
  own: boolean;
  /** A topic change (only the latest is held): the `joined` may predate it. */
  topic?: true;
}

interface Route {
  /** Connections of local members that receive the room's frames. */
  conns: Set<Conn>;
  /** Connections waiting for their `joined` frame; live messages wait here. */
  joining: Map<Conn, Buffered[]>;
}

interface Typing {
  conv: string;
  target: Target;
  user: string;
  expires: number;
}

/** A close that waits for the socket to open. */
interface Refusal {
  code: number;
  reason: string;
  /** The error frame to send first, if any. */
  error?: { code: ErrorCode; message: string; retryAfter?: number };
}

/** A reply waiting for its connection's socket to drain. */
interface RoomWaiter {
  conn: Conn;
  resolve: () => void;
}

let nextConnId = 1;

/** Seconds a client refused for too many connections is told to wait. */
const RETRY_CONNECT = 10;

/** WebSocket.readyState of a socket whose handshake has not finished. */
const CONNECTING = 0;

/** Milliseconds a connection has to send its sign-in before it may be made to make way. */
const PENDING_GRACE = 1000;

/** Live messages held for one connection while its `joined` waits. */
const MAX_JOIN_BUFFER = 1000;

/** Join buffers that reached {@link MAX_JOIN_BUFFER} and dropped messages. */
const overflowed = new WeakSet<Buffered[]>();

/** Replies from stored data one connection may have waiting at once. */
const MAX_WAITING_REPLIES = 64;

/** Searches and directories (both read much) one node builds at once; more wait their turn. */
const SEARCHES_AT_ONCE = 2;

/** Searches and directories that may wait for their turn on one node; more are refused. */
const MAX_WAITING_SEARCHES = 64;

/** Milliseconds between checks for open-mode names that expired. */
const NAME_SWEEP_INTERVAL = 10 * 60_000;

/** Open-mode names released per check, at most. */
const NAME_SWEEP_BATCH = 200;

/** Read markers `read_all` moves at once (store writes and events in flight). */
const READ_ALL_CHUNK = 64;

/** Milliseconds a node keeps a session's password change in mind (see `Hub.revalidate`). */
const RENEWAL_TTL = 60_000;

/**
 * A session that changed its user's password to the one with this
 * fingerprint: once users.json says so, the connection that asked takes a
 * new token, of a new session, instead of being signed out with every other
 * connection of the user — copies of the old token included.
 */
interface Renewal {
  user: string;
  fingerprint: string;
  /** Forgotten after this time (ms). */
  until: number;
  /** The connection that asked, on the node it asked (the one that goes on). */
  conn?: Conn;
  ref?: string;
  /** The session the asking connection goes on in. */
  next?: string;
}

/** One WebSocket connection. */
export class Conn {
  /** Unique within this process. */
  readonly id: number = nextConnId++;
  /** The socket. */
  readonly socket: Socket;
  /** The client address. */
  readonly addr: string;
  /** Frames queued by the outbox. */
  pending: Batch | null = null;
  /** The signed-in user, once authenticated. */
  user: User | null = null;
  /** Credential fingerprint the session was opened with. */
  fingerprint: string | null = null;
  /** The session (token lineage) it signed in with: sign-out ends it everywhere. */
  session: string | null = null;
  /**
   * Replies from stored data this connection asked for and waits on, in
   * order (null when none, which is nearly always): see `Hub.#inTurn`.
   */
  replies: { tail: Promise<void>; count: number } | null = null;
  /** Frames that arrived while the sign-in was being checked. */
  backlog: string[] | null = null;
  /** When the connection opened (ms). */
  readonly opened: number;
  /** Token bucket: frames left and when it was last refilled. */
  tokens: number;
  refilled: number;
  /** Whether the hub has let go of this connection. */
  closed = false;
  /**
   * How the connection is to be closed once its socket opens: refused by a
   * limit or shutdown, or dropped while its socket was still connecting (a
   * socket ignores close() until then).
   */
  refusal: Refusal | null = null;

  /** Wraps a socket. */
  constructor(socket: Socket, addr: string, now: number, burst: number) {
    this.socket = socket;
    this.addr = addr;
    this.opened = now;
    this.tokens = burst;
    this.refilled = now;
  }
}

/** The other party of a DM conversation. */
function peerOf(conv: string, user: string): string {
  const [a, b] = dmPair(conv)!;
  return a === user ? b : a;
}

/** Rooms, users and fan-out for one node. */
export class Hub {
  #store: Store;
  #broker: Broker;
  #auth: Auth;
  #log: Logger;
  #outbox: Outbox;
  #now: () => number;
  #maxText: number;
  #authTimeout: number;
  #typingTimeout: number;
  #limits: Limits;

  #conns = new Map<number, Conn>();
  /** Connections that have not sent a sign-in frame yet, by address, oldest first. */
  #pending = new Map<string, Set<Conn>>();
  /** The same, all addresses together, oldest first. */
  #pendingAll = new Set<Conn>();
  #authed = new Set<Conn>();
  #users = new Map<string, User>();
  /** Who the `users` frames list. */
  #directory: Directory;
  #nameExpiry: number;
  /** Sign-ins under way, by session: a sign-out closes them too. */
  #signingIn = new Map<string, Set<Conn>>();
  /** Replies waiting for their connection's socket to drain (see #inTurn). */
  #waitingRoom: RoomWaiter[] = [];
  #searching = 0;
  #searchQueue: (() => void)[] = [];
  /** When open-mode names were last checked for expiry (ms). */
  #swept = -Infinity;
  #sweeping = false;
  #arriving = new Map<string, Arriving>();
  #routes = new Map<string, Route>();
  #typing = new Map<string, Typing>();
  #presence: Presence;
  #closing = false;
  #throttle: LoginThrottle;
  #addrs = new KeyedCounter();
  #rooms: RoomQuota;
  #typingGate: TypingGate<BrokerEvent & { kind: "typing" }>;
  /** Password changes by session (see {@link Renewal}). */
  #renewals = new Map<string, Renewal>();

  /** Creates a hub and subscribes it to the broker. */
  constructor(options: HubOptions) {
    this.#store = options.store;
    this.#broker = options.broker;
    this.#auth = options.auth;
    this.#log = options.log;
    this.#now = options.now ?? Date.now;
    this.#maxText = options.maxMessageBytes ?? 4096;
    this.#authTimeout = options.authTimeout ?? 10_000;
    this.#typingTimeout = options.typingTimeout ?? 5_000;
    this.#nameExpiry = options.nameExpiry ?? 30 * 24 * 3600_000;
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#throttle = new LoginThrottle(options.throttle);
    this.#rooms = new RoomQuota(
      this.#store,
      this.#limits.maxRoomsPerUser,
      this.#limits.maxRooms,
    );
    this.#typingGate = new TypingGate({
      burst: this.#limits.typingBurst,
      interval: this.#limits.typingInterval,
    });
    this.#outbox = new Outbox({
      ...options.outbox,
      onSlow: (sink) => this.#slow(sink as Conn),
    });
    this.#broker.subscribe((e) => this.#onEvent(e));
    this.#presence = new Presence(this.#broker, options.presence);
    this.#directory = new Directory({
      accounts: () => this.#auth.mode === "login" ? this.#auth.names() : null,
      store: this.#store,
      isOnline: (name) => this.#broker.isOnline(name),
      onlineUsers: () => this.#broker.onlineUsers(),
      now: () => this.#now(),
      nameExpiry: this.#nameExpiry,
      turn: () => this.#searchTurn(),
      done: () => this.#searchDone(),
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
    } else this.#admitPending(conn);
    return conn;
  }

  /**
   * Counts a connection as waiting for its sign-in frame. A newcomer is never
   * refused for others that wait: past the limit of its address the oldest
   * waiting one makes way once it has had {@link PENDING_GRACE} to sign in
   * (so a burst of real clients, each a round trip from signing in, is not
   * cut), and at once past four times the limit, or past the node's limit.
   * A crowd of half-open sockets thus only ever pushes out its own oldest: to
   * keep a real client out it would have to open a whole address's worth of
   * sockets in the client's round trip.
   */
  #admitPending(conn: Conn): void {
    const max = this.#limits.maxPendingPerAddr;
    const mine = this.#pending.get(conn.addr);
    if (mine && mine.size >= max) this.#makeWay(mine, conn, mine.size >= max * 4);
    const all = this.#pendingAll;
    if (all.size >= this.#limits.maxPending) this.#makeWay(all, conn, true);
    // Looked up again: making way may have emptied (and dropped) the address's set.
    let set = this.#pending.get(conn.addr);
    if (!set) this.#pending.set(conn.addr, set = new Set());
    set.add(conn);
    all.add(conn);
  }

  /** Closes the oldest of `waiting` if it has had its grace to sign in, or if `full`. */
  #makeWay(waiting: Set<Conn>, conn: Conn, full: boolean): void {
    const oldest = waiting.values().next().value!;
    if (!full && conn.opened - oldest.opened < PENDING_GRACE) return;
    this.#drop(oldest, CloseCode.NotAuthenticated, "others were waiting to sign in", {
      code: "not_authenticated",
      message: "Sign in right after connecting: other connections were waiting",
    });
  }

  /** Takes a connection out of the signing-in count. */
  #unpend(conn: Conn): void {
    if (!this.#pendingAll.delete(conn)) return;
    const set = this.#pending.get(conn.addr);
    if (set?.delete(conn) && set.size === 0) this.#pending.delete(conn.addr);
  }

  /** The socket is open: refuses the connection now if {@link open} decided so. */
  opened(conn: Conn): void {
    const r = conn.refusal;
    if (r === null) return;
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
    try {
      conn.socket.close(r.code, r.reason);
    } catch {
      // Already closing.
    }
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
        this.#error(conn, err.code, err.message, err.ref);
        if (conn.user === null) this.#drop(conn, CloseCode.BadFrame, "invalid frame");
        return;
      }
      throw err;
    }
    if (conn.user === null) this.#beforeAuth(conn, frame);
    else this.#dispatch(conn, frame);
  }

  /** The socket closed: forget the connection. */
  close(conn: Conn): void {
    if (conn.closed) return;
    conn.closed = true;
    this.#outbox.discard(conn);
    this.#conns.delete(conn.id);
    this.#unpend(conn);
    this.#authed.delete(conn);
    const user = conn.user;
    if (!user) return;
    this.#addrs.remove(conn.addr);
    for (const room of user.rooms) this.#unroute(room, conn);
    for (const room of user.joining?.keys() ?? []) this.#unroute(room, conn);
    user.conns.delete(conn);
    if (user.conns.size === 0) {
      this.#users.delete(user.name);
      this.#clearTyping(user.name);
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
    // At most maxPending of them; not stopped at the first one in time, since
    // a clock set back makes insertion order and `opened` order differ.
    for (const conn of this.#pendingAll) {
      if (now - conn.opened <= this.#authTimeout) continue;
      this.#error(
        conn,
        "not_authenticated",
        `Sign in within ${Math.round(this.#authTimeout / 1000)} seconds of connecting`,
      );
      this.#drop(conn, CloseCode.NotAuthenticated, "sign-in timed out");
    }
    for (const [key, t] of this.#typing) {
      if (t.expires <= now) {
        this.#typing.delete(key);
        this.#typingEvent(key, {
          kind: "typing",
          conv: t.conv,
          ...t.target,
          user: t.user,
          active: false,
        });
      }
    }
    for (const held of this.#typingGate.due(now)) this.#publish(held.info);
    if (this.#waitingRoom.length > 0) {
      const still: RoomWaiter[] = [];
      for (const w of this.#waitingRoom) {
        if (this.#hasRoom(w.conn)) w.resolve();
        else still.push(w);
      }
      this.#waitingRoom = still;
    }
    this.#throttle.tick(now);
    if (now - this.#swept >= NAME_SWEEP_INTERVAL) {
      this.#swept = now;
      this.#sweepNames(now);
    }
    const presence = this.#presence.frame(now);
    if (presence !== null) this.#outbox.fanout(this.#authed, presence);
  }

  /**
   * Ends every session of users whose credentials changed (after users.json
   * reloads), except a session that changed its own password: its
   * connections go on, each with a fresh token (see `#passwd`).
   */
  revalidate(): void {
    const now = this.#now();
    for (const [session, r] of this.#renewals) if (r.until <= now) this.#renewals.delete(session);
    for (const conn of [...this.#authed]) {
      const name = conn.user!.name;
      const current = this.#auth.fingerprint(name);
      if (current === conn.fingerprint) continue;
      const renewal = this.#renewals.get(conn.session!);
      if (
        current !== null && renewal?.user === name && renewal.fingerprint === current &&
        renewal.conn === conn && renewal.next !== undefined
      ) {
        conn.fingerprint = current;
        conn.session = renewal.next;
        const frame: PasswdDoneFrame = {
          type: "passwd",
          token: this.#auth.issueToken(name, renewal.next),
        };
        if (renewal.ref !== undefined) frame.ref = renewal.ref;
        this.#reply(conn, frame);
        continue;
      }
      const changedByUser = current !== null &&
        [...this.#renewals.values()].some((r) => r.user === name && r.fingerprint === current);
      this.#error(
        conn,
        "auth_failed",
        changedByUser
          ? "Your password was changed on another device: sign in again"
          : "Your account was changed or removed: sign in again",
      );
      this.#drop(conn, CloseCode.AuthFailed, "account changed");
    }
  }

  /**
   * Tells every client the server is going away and closes its socket with
   * 1001; new connections are refused from now on. Returns the sockets it
   * closed, so the caller can wait for their closing handshakes.
   */
  shutdown(): Socket[] {
    this.#closing = true;
    this.#throttle.close();
    // Everyone here was seen until now: one write for all, queued before the store closes.
    const here = [...this.#users.keys()];
    if (here.length > 0) this.#store.markSeen(here, this.#now()).catch(() => {});
    const frame = encode({ type: "system", event: "shutdown", ts: new Date().toISOString() });
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

  #beforeAuth(conn: Conn, frame: ClientFrame): void {
    if (frame.type !== "auth" && frame.type !== "register") {
      this.#error(
        conn,
        "not_authenticated",
        'Sign in first: the first frame must be {"type":"auth",...}',
      );
      this.#drop(conn, CloseCode.NotAuthenticated, "not authenticated");
      return;
    }
    conn.backlog = [];
    // It has sent a sign-in: the throttle and the hasher's queue bound it from here.
    this.#unpend(conn);
    this.#signIn(conn, frame).catch((err) => {
      if (err instanceof HasherBusyError) {
        this.#error(conn, "rate_limited", err.message, undefined, RETRY_CONNECT);
        this.#drop(conn, CloseCode.RateLimited, "server busy");
        return;
      }
      this.#log.error(`Sign-in failed: ${(err as Error).stack ?? err}`);
      this.#error(conn, "unavailable", "The server could not sign you in: try again shortly");
      this.#drop(conn, CloseCode.GoingAway, "sign-in failed");
    });
  }

  async #signIn(conn: Conn, frame: ClientFrame): Promise<void> {
    // The session this sign-in continues, once known: a sign-out of it from
    // then on must reach this sign-in too (see the `signout` event).
    const tracked: { session: string | null } = { session: null };
    let who;
    try {
      who = await this.#identify(conn, frame, tracked);
    } finally {
      if (who == null && tracked.session !== null) this.#untrack(conn, tracked.session);
    }
    if (who === null) return;
    const auth = this.#auth;
    const { name, session, fingerprint } = who;
    this.#track(conn, session, tracked);
    // Membership changes made elsewhere while the rooms are read below would
    // otherwise be missed: this node applies events only to users it holds.
    const arriving = this.#arriving.get(name) ?? { count: 0, changes: [] };
    arriving.count++;
    this.#arriving.set(name, arriving);
    let welcomed = false;
    try {
      if (conn.closed) return;
      const store = this.#store;
      await store.touchUser(name, this.#now());
      this.#directory.moved(name);
      if ((await store.join(name, LOBBY)).added) {
        await this.#broker.publish({
          kind: "member",
          user: name,
          room: LOBBY,
          joined: true,
          ts: new Date().toISOString(),
        });
      }
      const [rooms, conversations] = await Promise.all([
        store.roomsOf(name),
        store.conversations(name),
      ]);
      if (conn.closed) return;
      // users.json may have changed while we awaited: the session is bound to
      // the credentials that were checked, and they must still be current.
      if (fingerprint === null || auth.fingerprint(name) !== fingerprint) {
        this.#deny(
          conn,
          "auth_failed",
          "Your account changed while you were signing in: sign in again",
          CloseCode.AuthFailed,
        );
        return;
      }
      let user = this.#users.get(name);
      const maxConns = this.#limits.maxConnsPerUser;
      const maxAddr = this.#limits.maxConnsPerAddr;
      if (user && user.conns.size >= maxConns) {
        this.#refuse(
          conn,
          `Too many connections for "${name}" (at most ${maxConns}): close another tab or device`,
        );
        return;
      }
      if (!this.#addrs.add(conn.addr, maxAddr)) {
        this.#refuse(
          conn,
          `Too many connections from your address (at most ${maxAddr}): close some and retry`,
        );
        return;
      }
      this.#authed.add(conn);
      if (!user) {
        user = { name, conns: new Set(), rooms: new Set(rooms), joining: null };
        // Events are newer than the read: replaying them in order gives the current set.
        for (const c of arriving.changes) {
          if (c.joined) user.rooms.add(c.room);
          else user.rooms.delete(c.room);
        }
        this.#users.set(name, user);
      }
      user.conns.add(conn);
      conn.user = user;
      conn.fingerprint = fingerprint;
      conn.session = session;
      for (const room of user.rooms) this.#route(room).conns.add(conn);
      this.#broker.online(name);
      this.#outbox.push(
        conn,
        this.#welcome(name, auth.issueToken(name, session), user, conversations),
      );
      welcomed = true;
    } finally {
      if (--arriving.count === 0) this.#arriving.delete(name);
      this.#untrack(conn, session);
      if (!welcomed && auth.mode === "open") this.#releaseUnwelcomed(name, session, who.fresh);
    }
    const backlog = conn.backlog ?? [];
    conn.backlog = null;
    for (const data of backlog) if (!conn.closed) this.#handle(conn, data);
  }

  /**
   * The `welcome` frame, within the reply budget: rooms may take half of it;
   * among the conversations the rooms come first, then direct messages with
   * unread ones first. What does not fit is left out and `more` says so.
   */
  #welcome(name: string, token: string, user: User, conversations: Conversation[]): string {
    const head = { type: "welcome", user: name, token } satisfies Partial<WelcomeFrame>;
    // The online list is kept sorted and serialized once per change, not per welcome.
    const online = this.#presence.welcomeFields();
    const budget = this.#outbox.replyBytes - headBytes(head) - utf8Length(online) - 64;
    const rooms = fitItems([...user.rooms].sort(), budget / 2, "first");
    const ordered = [
      ...conversations.filter((c) => c.room !== undefined),
      ...conversations.filter((c) => c.room === undefined && c.last > c.read),
      ...conversations.filter((c) => c.room === undefined && c.last <= c.read),
    ];
    const convs = fitItems(ordered, budget - rooms.bytes, "first");
    const tail: { mode: string; limits: SendLimits; more?: boolean } = {
      mode: this.#auth.mode,
      limits: {
        rate: this.#limits.frameRate,
        burst: this.#limits.frameBurst,
        maxMessage: this.#maxText,
      },
    };
    if (rooms.dropped > 0 || convs.dropped > 0) tail.more = true;
    const first = withArrays(head, { rooms: rooms.parts });
    const rest = withArrays(tail, { conversations: convs.parts });
    return `${first.slice(0, -1)},${online},${rest.slice(1)}`;
  }

  /** Records a sign-in of `session` under way (see `#signingIn`). */
  #track(conn: Conn, session: string, tracked: { session: string | null }): void {
    tracked.session = session;
    let set = this.#signingIn.get(session);
    if (!set) this.#signingIn.set(session, set = new Set());
    set.add(conn);
  }

  #untrack(conn: Conn, session: string): void {
    const set = this.#signingIn.get(session);
    if (set?.delete(conn) && set.size === 0) this.#signingIn.delete(session);
  }

  /**
   * Open mode: a sign-in that did not get through leaves no name held for
   * nobody — neither one it claimed afresh, nor one it took back for a
   * session that was signed out meanwhile.
   */
  #releaseUnwelcomed(name: string, session: string, fresh = false): void {
    (async () => {
      if (fresh || await this.#store.sessionRevoked(session, this.#now())) {
        await this.#release(name, session);
      }
    })().catch((err) => {
      this.#log.warn(`Could not release the name "${name}": ${(err as Error).message}`);
    });
  }

  /**
   * Who a sign-in frame proves its sender to be, the session it opens or
   * continues and the credentials it was checked against (taken before any
   * slow check: a password changed meanwhile must not open a session); null
   * once the connection has been refused.
   */
  async #identify(
    conn: Conn,
    frame: ClientFrame,
    tracked: { session: string | null },
  ): Promise<
    { name: string; session: string; fingerprint: string | null; fresh?: boolean } | null
  > {
    const auth = this.#auth;
    const now = this.#now();
    if (frame.type === "register") {
      if (auth.mode === "open") {
        return this.#deny(
          conn,
          "signup_disabled",
          "This server is in open mode: sign in with just a name",
          CloseCode.AuthFailed,
        );
      }
      const problem = passwordProblem(frame.password);
      if (problem) return this.#deny(conn, "bad_request", problem, CloseCode.AuthFailed);
      const { username, password } = frame;
      if (isReservedName(username)) return this.#reserved(conn, username);
      const result = auth.signup
        ? await this.#throttled(
          conn,
          null,
          () => auth.register(username, password),
          // Every sign-up costs a password hash: it counts against the address like a failure.
          () => false,
        )
        : "disabled";
      if (result === null) return null;
      if (result === "disabled") {
        return this.#deny(
          conn,
          "signup_disabled",
          "Sign-up is turned off on this server: ask its owner for an account",
          CloseCode.AuthFailed,
        );
      }
      if (result === "exists") {
        return this.#deny(
          conn,
          "name_taken",
          `The name "${username}" is taken: choose another`,
          CloseCode.NameTaken,
        );
      }
      if (result === "unavailable") {
        return this.#deny(
          conn,
          "unavailable",
          "Sign-up is not possible right now: the server's users file needs its owner's attention",
          CloseCode.AuthFailed,
        );
      }
      // The file was read afresh for the sign-up: sessions of users no longer in it end.
      this.revalidate();
      const name = auth.canonical(username) ?? username;
      return { name, session: newSessionId(), fingerprint: auth.fingerprint(name) };
    }
    if (frame.type !== "auth") return null;
    if (frame.token !== undefined) {
      const claims = auth.verifyToken(frame.token);
      const fingerprint = claims === null ? null : auth.fingerprint(claims.user);
      // Tracked before the store is asked: a sign-out landing between the
      // questions below and the welcome must still close this connection.
      if (claims !== null) this.#track(conn, claims.session, tracked);
      if (claims === null || await this.#store.sessionRevoked(claims.session, now)) {
        return this.#deny(
          conn,
          "auth_failed",
          "Your session has expired or is no longer valid: sign in again",
          CloseCode.AuthFailed,
        );
      }
      // Open mode: the name must still be this session's. A name nobody
      // holds (a server that keeps nothing restarted, or it expired) is taken
      // back by a token still in date; one someone else took since is theirs.
      if (auth.mode === "open") {
        const held = await this.#store.claimName(
          claims.user,
          claims.session,
          now,
          !claims.expired,
        );
        if (!held.ok) {
          return this.#deny(
            conn,
            "auth_failed",
            `Someone else has taken the name "${claims.user}" since you last came: sign in with another name`,
            CloseCode.AuthFailed,
          );
        }
      }
      return { name: claims.user, session: claims.session, fingerprint };
    }
    const username = frame.username!;
    if (auth.mode === "login") {
      const stored = auth.canonical(username) ?? username;
      const fingerprint = auth.fingerprint(stored);
      // A device that signed in as this user before is counted on its own:
      // others guessing the password never slow the real user down. It
      // shares its session's count with password changes, so one stolen
      // token does not buy a second set of guesses.
      const device = frame.device === undefined ? null : auth.deviceSession(frame.device, stored);
      const ok = await this.#throttled(
        conn,
        device === null ? stored.toLowerCase() : sessionKey(device),
        () => auth.checkPassword(stored, frame.password ?? ""),
        (ok) => ok,
      );
      if (ok === null) return null;
      if (!ok) {
        return this.#deny(conn, "auth_failed", "Wrong username or password", CloseCode.AuthFailed);
      }
      return { name: stored, session: newSessionId(), fingerprint };
    }
    if (isReservedName(username)) return this.#reserved(conn, username);
    const session = newSessionId();
    const claim = await this.#claim(username, session, now);
    if (claim === null) {
      return this.#deny(
        conn,
        "name_taken",
        `The name "${username}" is in use by someone else: choose another`,
        CloseCode.NameTaken,
      );
    }
    return { name: claim.name, session, fingerprint: auth.fingerprint(claim.name), fresh: true };
  }

  #reserved(conn: Conn, name: string): null {
    return this.#deny(
      conn,
      "name_taken",
      `The name "${name}" is reserved: choose another`,
      CloseCode.NameTaken,
    );
  }

  /**
   * Open mode: claims `name` for a new session. A claim whose holder has not
   * been seen for the name expiry is released first; so is what a holder
   * from before claims existed left behind (a known name nobody holds).
   */
  async #claim(name: string, session: string, now: number): Promise<NameClaim | null> {
    const store = this.#store;
    let result = await store.claimName(name, session, now, true);
    if (!result.ok) {
      const held = result.claim;
      if (!held || now - held.seen <= this.#nameExpiry || this.#broker.isOnline(held.name)) {
        return null;
      }
      // Only if it is still stale: its holder may be signing back in right now.
      await this.#release(held.name, held.session, now - this.#nameExpiry);
      result = await store.claimName(name, session, now, true);
      if (!result.ok) return null;
    } else if (await store.knownUser(result.claim.name)) {
      // Private state of an earlier holder that never had a claim: not ours to see.
      await this.#release(result.claim.name, session);
      result = await store.claimName(name, session, now, true);
      if (!result.ok) return null;
    }
    return result.claim;
  }

  /**
   * Open mode: releases a name held by `session` (and, with `seenBefore`,
   * not seen since), wiping what was private to it, and tells every node
   * that it left its rooms. Resolves false when nothing was released.
   */
  async #release(name: string, session: string, seenBefore?: number): Promise<boolean> {
    const rooms = await this.#store.releaseName(name, session, seenBefore);
    if (rooms === null) return false;
    const ts = new Date().toISOString();
    for (const room of rooms) {
      await this.#broker.publish({ kind: "member", user: name, room, joined: false, ts });
    }
    return true;
  }

  /**
   * Signs a session out everywhere: its tokens stop working on every node,
   * its connections close with 4003, and in open mode its name is released
   * (with its direct messages and read markers). Resolves false for a token
   * that is not valid (forged, expired or already revoked).
   */
  async signOut(token: string): Promise<boolean> {
    const auth = this.#auth;
    const claims = auth.verifyToken(token);
    if (claims === null) return false;
    const now = this.#now();
    // A sign-out that failed half-way is finished by the next try (each step
    // may run twice), which still answers that the token was signed out.
    const already = await this.#store.sessionRevoked(claims.session, now);
    // Revoked first: its tokens must not take the name back once it is free.
    if (!already) await this.#store.revokeSession(claims.session, now + auth.tokenTtl * 1000);
    // Every node closes the session's connections and its sign-ins under way,
    // before the name is free for anyone else.
    await this.#broker.publish({ kind: "signout", user: claims.user, session: claims.session });
    if (auth.mode === "open") await this.#release(claims.user, claims.session);
    return !already;
  }

  /** Open mode: releases names whose holders have not been seen for the name expiry. */
  async #sweepNames(now: number): Promise<void> {
    if (this.#auth.mode !== "open" || this.#sweeping || this.#closing) return;
    this.#sweeping = true;
    try {
      const stale = await this.#store.staleClaims(now - this.#nameExpiry, NAME_SWEEP_BATCH);
      for (const claim of stale) {
        if (this.#broker.isOnline(claim.name)) {
          // Connected all along: seen now.
          await this.#store.claimName(claim.name, claim.session, now, false);
        } else if (await this.#release(claim.name, claim.session, now - this.#nameExpiry)) {
          this.#log.info(`Released the name "${claim.name}": not seen for the name expiry`);
        }
      }
      // A full batch: more may be waiting, go on at the next tick.
      if (stale.length === NAME_SWEEP_BATCH) this.#swept = -Infinity;
    } catch (err) {
      this.#log.warn(`Could not release expired names: ${(err as Error).message}`);
    } finally {
      this.#sweeping = false;
    }
  }

  /**
   * Runs a password check through the sign-in throttle: it may wait its turn,
   * or be refused with `rate_limited` (resolving null, connection closed).
   */
  async #throttled<T>(
    conn: Conn,
    user: string | null,
    check: () => Promise<T>,
    success: (result: T) => boolean,
  ): Promise<T | null> {
    const gate = this.#throttle.admit(user, conn.addr, this.#now());
    if (!gate.ok) {
      const message = `Too many sign-in attempts: try again in ${gate.retryAfter} s`;
      this.#error(conn, "rate_limited", message, undefined, gate.retryAfter);
      this.#drop(conn, CloseCode.RateLimited, "too many sign-in attempts");
      return null;
    }
    let outcome: Outcome = "abandoned";
    try {
      if (gate.wait > 0) await this.#throttle.wait(gate.ticket);
      if (conn.closed) return null;
      const result = await check();
      outcome = success(result) ? "success" : "failure";
      return result;
    } finally {
      this.#throttle.settle(gate.ticket, outcome, this.#now());
    }
  }

  #deny(conn: Conn, code: ErrorCode, message: string, close: number): null {
    this.#error(conn, code, message);
    this.#drop(conn, close, message.split(":")[0]);
    return null;
  }

  /** Refuses a sign-in over a connection limit: `rate_limited`, then 4029. */
  #refuse(conn: Conn, message: string): void {
    this.#error(conn, "rate_limited", message, undefined, RETRY_CONNECT);
    this.#drop(conn, CloseCode.RateLimited, "too many connections");
  }

  /**
   * Changes the user's own password (login mode). Checking `current` costs
   * an argon2 hash, so it waits in the hasher's queue and goes through the
   * sign-in throttle, counted per session (a stolen session cannot guess
   * quickly) and per address; a refusal answers the frame and the
   * connection stays open. On success every other session of the user ends
   * on every node, and this session's connections get a fresh token (see
   * {@link revalidate}).
   */
  async #passwd(conn: Conn, frame: PasswdFrame): Promise<void> {
    const auth = this.#auth;
    const ref = frame.ref;
    if (auth.mode === "open") {
      throw new FrameError(
        "bad_request",
        "This server is in open mode: there are no passwords",
        ref,
      );
    }
    const problem = passwordProblem(frame.password);
    if (problem) throw new FrameError("bad_request", problem, ref);
    const name = conn.user!.name;
    const session = conn.session!;
    const gate = this.#throttle.admit(sessionKey(session), conn.addr, this.#now());
    if (!gate.ok) {
      const message = `Too many password attempts: try again in ${gate.retryAfter} s`;
      this.#error(conn, "rate_limited", message, ref, gate.retryAfter);
      return;
    }
    let outcome: Outcome = "abandoned";
    let result;
    try {
      if (gate.wait > 0) await this.#throttle.wait(gate.ticket);
      if (conn.closed) return;
      result = await auth.changePassword(name, {
        current: frame.current,
        password: frame.password,
        beforeWrite: async (fingerprint) => {
          const until = this.#now() + RENEWAL_TTL;
          const next = newSessionId();
          this.#renewals.set(session, { user: name, fingerprint, until, conn, ref, next });
          // Before the write too: a node that rereads the file before the
          // second announcement must not sign this session out.
          await this.#announce({ kind: "passwd", user: name, session, fingerprint });
        },
      });
      // A try costs a hash, a change two and a write: every one counts, like a sign-up.
      outcome = "failure";
    } catch (err) {
      if (!(err instanceof HasherBusyError)) throw err;
      this.#error(conn, "rate_limited", err.message, ref, RETRY_CONNECT);
      return;
    } finally {
      this.#throttle.settle(gate.ticket, outcome, this.#now());
    }
    switch (result) {
      case "wrong":
        this.#error(conn, "auth_failed", "Your current password is wrong", ref);
        return;
      case "gone":
        this.#error(
          conn,
          "auth_failed",
          "Your account no longer exists: the password was not changed",
          ref,
        );
        this.#reloadUsers();
        return;
      case "stale":
        this.#error(
          conn,
          "auth_failed",
          "Your password was changed elsewhere meanwhile: nothing was changed",
          ref,
        );
        this.#reloadUsers();
        return;
      case "unavailable":
        this.#error(
          conn,
          "unavailable",
          "Your password cannot be changed right now: the server's users file needs its owner's attention",
          ref,
        );
        return;
    }
    this.#log.info(`"${name}" changed their password: their other connections end`);
    // This node at once: the asking connection gets its new token, in a
    // session of its own; every other connection of the user ends — other
    // tabs of the same session too, so that a copied token goes with them.
    this.revalidate();
    const fingerprint = auth.fingerprint(name);
    // The other nodes reread users.json now rather than at their next look.
    if (fingerprint !== null) {
      await this.#announce({ kind: "passwd", user: name, session, fingerprint });
    }
  }

  /** Tells every node about a password change; without it they find out from the file. */
  async #announce(event: BrokerEvent & { kind: "passwd" }): Promise<void> {
    try {
      await this.#broker.publish(event);
    } catch (err) {
      this.#log.warn(
        `Could not tell the other nodes that "${event.user}" changed their password (they notice at their next users.json check): ${
          (err as Error).message
        }`,
      );
    }
  }

  /** Rereads users.json now and ends the sessions it no longer allows. */
  #reloadUsers(): void {
    this.#auth.reload().then(
      (changed) => {
        if (changed) this.revalidate();
      },
      (err) => this.#log.warn(`Could not reread the users file: ${(err as Error).message}`),
    );
  }

  // -------------------------------------------------------------------------
  // Frames from signed-in users

  #dispatch(conn: Conn, frame: ClientFrame): void {
    let work: Promise<void> | void = undefined;
    switch (frame.type) {
      case "send":
        work = this.#send(conn, frame);
        break;
      case "join":
        work = this.#join(conn, frame.room, frame.since);
        break;
      case "leave":
        work = this.#leave(conn, frame.room);
        break;
      case "rooms":
        work = this.#inTurn(conn, async () => {
          const rooms = await this.#store.rooms();
          const fit = fitItems(rooms, this.#outbox.replyBytes, "first");
          const frame = fit.dropped > 0 ? { type: "rooms", more: true } : { type: "rooms" };
          this.#send1(conn, withArrays(frame, { rooms: fit.parts }));
        });
        break;
      case "typing":
        work = this.#typingFrame(conn, frame, frame.active);
        break;
      case "history":
        work = this.#inTurn(conn, () => this.#history(conn, frame));
        break;
      case "read":
        work = this.#read(conn, frame, frame.id);
        break;
      case "search":
        work = this.#inTurn(conn, () => this.#search(conn, frame));
        break;
      case "users":
        work = this.#inTurn(conn, () => this.#listUsers(conn, frame.q));
        break;
      case "topic":
        work = this.#topic(conn, frame);
        break;
      case "read_all":
        work = this.#inTurn(conn, () => this.#readAll(conn));
        break;
      case "ping":
        this.#reply(conn, { type: "pong" });
        break;
      case "passwd":
        work = this.#passwd(conn, frame);
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

  /**
   * The conversation of a frame's target, checking the user may use it; a
   * DM's peer is named as that user spells their name (names are
   * case-insensitive).
   */
  async #conv(user: User, frame: Target, ref?: string): Promise<{ conv: string; target: Target }> {
    if (frame.room !== undefined) {
      if (!(await this.#isMember(user, frame.room))) {
        throw new FrameError(
          "unknown_room",
          `You are not in room "${frame.room}": join it first`,
          ref,
        );
      }
      return { conv: frame.room, target: { room: frame.room } };
    }
    const peer = await this.#resolveUser(frame.to!);
    if (peer === null) {
      throw new FrameError("unknown_user", `There is no user "${frame.to}"`, ref);
    }
    const target = { to: peer };
    return { conv: conversationKey(user.name, target), target };
  }

  /** Whether the user is in the room, once a join of it that is under way has settled. */
  async #isMember(user: User, room: string): Promise<boolean> {
    if (user.rooms.has(room)) return true;
    const pending = user.joining?.get(room);
    if (pending) await pending.catch(() => {});
    return user.rooms.has(room);
  }

  /** A user's name as they spell it, or null when there is no such user. */
  async #resolveUser(name: string): Promise<string | null> {
    if (this.#auth.mode === "login") return this.#auth.canonical(name) ?? null;
    if (this.#broker.isOnline(name)) return name;
    const claim = await this.#store.nameClaim(name);
    if (claim) return claim.name;
    return await this.#store.knownUser(name) ? name : null;
  }

  async #send(conn: Conn, frame: ClientFrame & { type: "send" }): Promise<void> {
    const user = conn.user!;
    const { conv, target } = await this.#conv(user, frame, frame.ref);
    const typingKey = `${conv}\n${user.name}`;
    if (this.#typing.delete(typingKey)) {
      this.#typingEvent(typingKey, {
        kind: "typing",
        conv,
        ...target,
        user: user.name,
        active: false,
      });
    }
    const origin: Origin = { node: this.#broker.node, conn: conn.id };
    if (frame.ref !== undefined) origin.ref = frame.ref;
    let sent;
    try {
      sent = await this.#broker.publishMessage(
        { conv, ...target, from: user.name, text: frame.text },
        origin,
      );
    } catch (err) {
      this.#log.warn(`Message from "${user.name}" not stored: ${(err as Error).message}`);
      throw new FrameError(
        "unavailable",
        "Your message was not delivered: the server cannot store messages right now, try again shortly",
        frame.ref,
      );
    }
    if (sent.fresh || frame.ref === undefined) return;
    // A resend of a stored message: nobody gets it again but this connection,
    // whose acknowledgement (the stored message with its ref) may have been
    // lost. Held like any live message while the room's `joined` is on its way.
    const own = withRef(messageFrame(sent.msg), frame.ref);
    const room = sent.msg.room;
    const held = room === undefined ? undefined : this.#routes.get(room)?.joining.get(conn);
    if (held) held.push({ id: sent.msg.id, text: own, own: true });
    else this.#outbox.push(conn, own);
  }

  async #join(conn: Conn, room: string, since?: number): Promise<void> {
    // A closed connection must not be routed again: nothing would ever take it out.
    if (conn.closed) return;
    const user = conn.user!;
    if (user.rooms.has(room)) {
      const route = this.#route(room);
      if (!route.joining.has(conn)) {
        route.conns.delete(conn);
        route.joining.set(conn, []);
        await this.#sendJoined(conn, room, since);
      }
      return;
    }
    const pending = user.joining?.get(room);
    if (pending) {
      // Another connection of this user is joining it: this one follows.
      await pending.catch(() => {});
      return this.#join(conn, room, since);
    }
    // Buffer the room's messages from now on, so none falls between the
    // store write and the history page; the membership itself counts only
    // once the quota check and the store allow it (frames sent meanwhile wait
    // for it in #isMember).
    const route = this.#route(room);
    for (const c of user.conns) {
      route.conns.delete(c);
      route.joining.set(c, []);
    }
    const work = (async () => {
      const release = await this.#rooms.reserve(user.name, room);
      try {
        return (await this.#store.join(user.name, room)).added;
      } finally {
        release();
      }
    })();
    (user.joining ??= new Map()).set(room, work);
    let added: boolean;
    try {
      added = await work;
    } catch (err) {
      if (!user.rooms.has(room)) {
        for (const c of user.conns) this.#unroute(room, c);
        // Created above for connections that may all have closed meanwhile.
        this.#dropIfUnused(room);
      }
      throw err;
    } finally {
      user.joining?.delete(room);
      if (user.joining?.size === 0) user.joining = null;
    }
    user.rooms.add(room);
    const event: BrokerEvent & { since?: number } = {
      kind: "member",
      user: user.name,
      room,
      joined: true,
      ts: new Date().toISOString(),
      origin: { node: this.#broker.node, conn: conn.id },
    };
    if (since !== undefined) event.since = since;
    if (!added) return this.#onMember(event);
    try {
      await this.#broker.publish(event);
    } catch (err) {
      // Stored but not announced: this node's connections still get their
      // `joined`; other nodes learn of the membership when the user reconnects.
      this.#log.warn(
        `Could not announce "${user.name}" joining "${room}": ${(err as Error).message}`,
      );
      this.#onMember(event);
    }
  }

  /** Sends `joined` (members and history) to one connection, in its turn. */
  #sendJoined(conn: Conn, room: string, since?: number): Promise<void> {
    const mine = this.#routes.get(room)?.joining.get(conn);
    return this.#inTurn(conn, () => this.#buildJoined(conn, room, since)).catch((err) => {
      // Refused before it was built (too many replies waiting): live messages flow again.
      if (mine) this.#stopJoining(conn, room, mine);
      throw err;
    });
  }

  /**
   * Gives up a connection's join of `room` that will send no `joined`: it
   * gets the room's live messages again, starting with those held for it.
   * The client is told and may resume with `join` + `since`.
   */
  #stopJoining(conn: Conn, room: string, mine: Buffered[]): void {
    const route = this.#routes.get(room);
    if (route?.joining.get(conn) !== mine) return;
    route.joining.delete(conn);
    if (conn.closed) {
      this.#dropIfUnused(room);
      return;
    }
    route.conns.add(conn);
    for (const b of mine) this.#outbox.push(conn, b.text);
  }

  async #buildJoined(conn: Conn, room: string, since?: number): Promise<void> {
    // This join's buffer: a later join of the same connection gets a new one,
    // and whichever finishes must only consume its own.
    const mine = this.#routes.get(room)?.joining.get(conn);
    if (!mine) return;
    let page, members, topic;
    try {
      [page, members, topic] = await Promise.all([
        this.#store.page(
          room,
          since === undefined ? { limit: JOIN_REPLAY } : { since, limit: MAX_PAGE },
        ),
        this.#store.members(room),
        this.#store.topic(room),
      ]);
    } catch (err) {
      this.#stopJoining(conn, room, mine);
      throw err;
    }
    const route = this.#routes.get(room);
    if (!route || route.joining.get(conn) !== mine) return;
    if (conn.closed) {
      this.#unroute(room, conn);
      return;
    }
    route.joining.delete(conn);
    route.conns.add(conn);
    // Bounded by its encoded size: members may take half the budget, the
    // history what is left; whatever is cut is said (`memberCount`, `more`).
    const budget = this.#outbox.replyBytes;
    const people = fitItems(members, budget / 2, "first");
    const head: { type: "joined"; room: string; memberCount?: number; topic?: string } = {
      type: "joined",
      room,
    };
    if (people.dropped > 0) head.memberCount = members.length;
    if (topic !== "") head.topic = topic;
    // Without `since` the newest messages matter most; after `since`, the oldest.
    const history = fitItems(
      page.messages,
      budget - people.bytes - headBytes(head) - 64,
      since === undefined ? "last" : "first",
    );
    const tail: { more?: boolean; gap?: boolean } = {};
    const overflow = overflowed.has(mine);
    if (page.more || history.dropped > 0 || overflow) tail.more = true;
    if (page.gap) tail.gap = true;
    this.#outbox.push(
      conn,
      withArrays({ ...head, ...tail }, { members: people.parts, history: history.parts }),
    );
    const seen = history.end > history.start ? page.messages[history.end - 1].id : since ?? 0;
    // What the page already holds is not sent twice, except the sender's own
    // copy: its `ref` is the acknowledgement the client is waiting for.
    // After an overflow, what was held has a hole: the client pages from `seen` instead.
    for (const b of mine) if (b.own || (b.id > seen && !overflow)) this.#outbox.push(conn, b.text);
  }

  async #leave(conn: Conn, room: string): Promise<void> {
    const user = conn.user!;
    if (room === LOBBY) {
      throw new FrameError("bad_request", `Everyone stays in "${LOBBY}": it cannot be left`);
    }
    if (!(await this.#isMember(user, room))) {
      throw new FrameError("unknown_room", `You are not in room "${room}"`);
    }
    const event: BrokerEvent = {
      kind: "member",
      user: user.name,
      room,
      joined: false,
      ts: new Date().toISOString(),
    };
    // The store first: if it fails, the user is still in the room everywhere.
    const was = await this.#store.leave(user.name, room);
    this.#removeMember(user, room);
    this.#clearTyping(user.name, room);
    if (was) await this.#broker.publish(event);
  }

  async #typingFrame(conn: Conn, frame: Target, active: boolean): Promise<void> {
    const user = conn.user!;
    const { conv, target: t } = await this.#conv(user, frame);
    const key = `${conv}\n${user.name}`;
    const existing = this.#typing.get(key);
    if (active) {
      const expires = this.#now() + this.#typingTimeout;
      if (existing) {
        existing.expires = expires;
        return;
      }
      this.#typing.set(key, { conv, target: t, user: user.name, expires });
    } else if (!this.#typing.delete(key)) return;
    this.#typingEvent(key, { kind: "typing", conv, ...t, user: user.name, active });
  }

  async #history(conn: Conn, frame: ClientFrame & { type: "history" }): Promise<void> {
    const { conv, target } = await this.#conv(conn.user!, frame);
    const page = await this.#store.page(conv, {
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
    };
    const fit = fitItems(
      page.messages,
      this.#outbox.replyBytes - headBytes(head) - 16,
      frame.since !== undefined ? "first" : "last",
    );
    if (fit.dropped > 0) head.more = true;
    this.#send1(conn, withArrays(head, { messages: fit.parts }));
  }

  async #read(conn: Conn, frame: Target, id: number): Promise<void> {
    const user = conn.user!;
    const { conv, target: t } = await this.#conv(user, frame);
    const marker = await this.#store.setRead(user.name, conv, id);
    await this.#broker.publish({
      kind: "read",
      user: user.name,
      conv,
      ...t,
      id: marker,
      origin: { node: this.#broker.node, conn: conn.id },
    });
  }

  async #search(conn: Conn, frame: ClientFrame & { type: "search" }): Promise<void> {
    const user = conn.user!;
    let conv: string | undefined;
    if (frame.room !== undefined || frame.to !== undefined) {
      const t: Target = frame.room !== undefined ? { room: frame.room } : { to: frame.to! };
      conv = (await this.#conv(user, t)).conv;
    }
    // Searches of the in-memory and Redis stores scan: a few at a time per node.
    await this.#searchTurn();
    let messages;
    try {
      messages = await this.#store.search(frame.q, {
        user: user.name,
        rooms: [...user.rooms],
        conv,
        limit: frame.limit ?? 50,
      });
    } finally {
      this.#searchDone();
    }
    // Newest first: what does not fit is the oldest, and `more` says so.
    const head: { type: "search"; q: string; more?: boolean } = { type: "search", q: frame.q };
    const fit = fitItems(messages, this.#outbox.replyBytes - headBytes(head) - 16, "first");
    if (fit.dropped > 0) head.more = true;
    this.#send1(conn, withArrays(head, { messages: fit.parts }));
  }

  /**
   * Answers `users` (see {@link Directory}): cut at the reply bound, saying
   * `more` when anyone was left out.
   */
  async #listUsers(conn: Conn, q?: string): Promise<void> {
    const listing = await this.#directory.list(conn.user!.name, q);
    if (conn.closed) return;
    const head: { type: "users"; q?: string; more?: boolean } = { type: "users" };
    if (q !== undefined) head.q = q;
    // Exactly the reply bound, counting `more` and the array's own brackets.
    const budget = this.#outbox.replyBytes - headBytes({ ...head, more: true }) -
      ',"users":[]'.length;
    const fit = fitItems(listing.users, budget, "first");
    if (listing.more || fit.dropped > 0) head.more = true;
    this.#send1(conn, withArrays(head, { users: fit.parts }));
  }

  /** Sets a room's topic: members only; a change reaches every member connection on every node. */
  async #topic(conn: Conn, frame: ClientFrame & { type: "topic" }): Promise<void> {
    const user = conn.user!;
    const { room } = frame;
    await this.#conv(user, { room });
    // The same topic again changes nothing, and nobody is told.
    if (!await this.#store.setTopic(room, frame.topic)) return;
    await this.#broker.publish({
      kind: "topic",
      room,
      topic: frame.topic,
      user: user.name,
      ts: new Date().toISOString(),
    });
  }

  /**
   * Marks every conversation of the user read up to its newest message. Each
   * marker that moved is announced as a `read` to every connection of the
   * user, the asking one included: that is its answer.
   */
  async #readAll(conn: Conn): Promise<void> {
    const name = conn.user!.name;
    const unread = (await this.#store.conversations(name)).filter((c) => c.last > c.read);
    for (let i = 0; i < unread.length; i += READ_ALL_CHUNK) {
      await Promise.all(
        unread.slice(i, i + READ_ALL_CHUNK).map(async (c) => {
          const target: Target = c.room !== undefined ? { room: c.room } : { to: c.to! };
          const conv = conversationKey(name, target);
          const id = await this.#store.setRead(name, conv, c.last);
          if (id > c.read) {
            await this.#broker.publish({ kind: "read", user: name, conv, ...target, id });
          }
        }),
      );
    }
  }

  // -------------------------------------------------------------------------
  // Events from every node

  #onEvent(e: BrokerEvent): void {
    switch (e.kind) {
      case "message":
        return this.#onMessage(e.msg, e.origin);
      case "typing": {
        const text = encode(
          e.room !== undefined
            ? { type: "typing", room: e.room, user: e.user, active: e.active }
            : { type: "typing", to: peerOf(e.conv, e.user), user: e.user, active: e.active },
        );
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
          ...(this.#signingIn.get(e.session) ?? []),
        ];
        for (const c of conns) {
          if (c.closed || (c.session !== e.session && c.user !== null)) continue;
          this.#error(c, "auth_failed", "You signed out: sign in again");
          this.#drop(c, CloseCode.AuthFailed, "signed out");
        }
        return;
      }
      case "passwd": {
        // Noted before the file is reread, so that the session goes on here too.
        if (this.#renewals.get(e.session)?.fingerprint !== e.fingerprint) {
          const until = this.#now() + RENEWAL_TTL;
          this.#renewals.set(e.session, { user: e.user, fingerprint: e.fingerprint, until });
        }
        this.#reloadUsers();
        return;
      }
      case "read": {
        const user = this.#users.get(e.user);
        if (!user) return;
        const origin = this.#originConn(e.origin);
        const frame: ServerFrame = e.room !== undefined
          ? { type: "read", room: e.room, id: e.id }
          : { type: "read", to: e.to!, id: e.id };
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
          held.push({ id: 0, text, own: true, topic: true });
        }
        return;
      }
    }
  }

  #originConn(origin: Origin | undefined): Conn | null {
    if (!origin || origin.node !== this.#broker.node) return null;
    return this.#conns.get(origin.conn) ?? null;
  }

  #onMessage(msg: ChatMessage, origin?: Origin): void {
    const text = messageFrame(msg);
    const sender = this.#originConn(origin);
    const own = sender && origin?.ref !== undefined ? withRef(text, origin.ref) : text;
    if (msg.room !== undefined) {
      const route = this.#routes.get(msg.room);
      if (!route) return;
      this.#outbox.fanout(route.conns, text, sender ?? undefined);
      if (sender && route.conns.has(sender)) this.#outbox.push(sender, own);
      for (const [c, buf] of route.joining) {
        const mine = c === sender && own !== text;
        // A join that waits long (its socket is full) holds a bounded number;
        // past it the client pages from its `joined` (which then says `more`).
        if (!mine && buf.length >= MAX_JOIN_BUFFER) {
          overflowed.add(buf);
          continue;
        }
        buf.push({ id: msg.id, text: mine ? own : text, own: mine });
      }
      return;
    }
    const a = this.#users.get(msg.from);
    const b = msg.to !== msg.from ? this.#users.get(msg.to!) : undefined;
    if (a) this.#outbox.fanout(a.conns, text, sender ?? undefined);
    if (b) this.#outbox.fanout(b.conns, text, sender ?? undefined);
    if (sender) this.#outbox.push(sender, own);
  }

  #onMember(e: BrokerEvent & { kind: "member" }): void {
    const user = this.#users.get(e.user);
    const originConn = this.#originConn(e.origin);
    const system = encode({
      type: "system",
      room: e.room,
      event: e.joined ? "join" : "leave",
      user: e.user,
      ts: e.ts,
    });
    // A sign-in of this user under way read its rooms before this change:
    // it replays the change if it ends up creating the user afresh.
    this.#arriving.get(e.user)?.changes.push({ room: e.room, joined: e.joined });
    if (e.joined) {
      const route = this.#routes.get(e.room);
      if (route) this.#outbox.fanout(othersOf(route.conns, e.user), system);
      if (!user) return;
      user.rooms.add(e.room);
      const r = this.#route(e.room);
      for (const c of user.conns) {
        if (r.conns.has(c)) continue;
        if (!r.joining.has(c)) r.joining.set(c, []);
        const since = c === originConn ? (e as { since?: number }).since : undefined;
        this.#sendJoined(c, e.room, since).catch((err) => {
          this.#log.error(`Sending "joined" failed: ${(err as Error).message}`);
          this.#error(c, "unavailable", `Could not load room "${e.room}": try joining again`);
        });
      }
      return;
    }
    if (user) this.#removeMember(user, e.room);
    const route = this.#routes.get(e.room);
    if (route) this.#outbox.fanout(othersOf(route.conns, e.user), system);
  }

  /** Takes a room from the user's local state and tells its connections. */
  #removeMember(user: User, room: string): void {
    if (!user.rooms.delete(room)) return;
    const left = encode({ type: "left", room });
    for (const c of user.conns) {
      this.#unroute(room, c);
      this.#outbox.push(c, left);
    }
  }

  // -------------------------------------------------------------------------
  // Plumbing

  #route(room: string): Route {
    let r = this.#routes.get(room);
    if (!r) {
      r = { conns: new Set(), joining: new Map() };
      this.#routes.set(room, r);
    }
    return r;
  }

  #unroute(room: string, conn: Conn): void {
    const r = this.#routes.get(room);
    if (!r) return;
    r.conns.delete(conn);
    r.joining.delete(conn);
    this.#dropIfUnused(room);
  }

  /** Forgets a room's route once no connection here receives or awaits it. */
  #dropIfUnused(room: string): void {
    const r = this.#routes.get(room);
    if (r && r.conns.size === 0 && r.joining.size === 0) this.#routes.delete(room);
  }

  /** Publishes a typing change now, or holds it if the typist is changing too often. */
  #typingEvent(key: string, event: BrokerEvent & { kind: "typing" }): void {
    if (this.#typingGate.offer(key, event.active, event, this.#now())) this.#publish(event);
  }

  #publish(event: BrokerEvent): void {
    this.#broker.publish(event).catch((err) => {
      this.#log.warn(`Could not publish ${event.kind} event: ${(err as Error).message}`);
    });
  }

  #clearTyping(user: string, room?: string): void {
    for (const [key, t] of this.#typing) {
      if (t.user === user && (room === undefined || t.target.room === room)) {
        this.#typing.delete(key);
        this.#typingEvent(key, { kind: "typing", conv: t.conv, ...t.target, user, active: false });
      }
    }
  }

  /** Takes a token from the connection's bucket; false (and an error) when empty. */
  #take(conn: Conn): boolean {
    if (conn.tokens >= 1) {
      conn.tokens--;
      return true;
    }
    const now = this.#now();
    const rate = this.#limits.frameRate;
    conn.tokens = Math.min(
      this.#limits.frameBurst,
      conn.tokens + ((now - conn.refilled) * rate) / 1000,
    );
    conn.refilled = now;
    if (conn.tokens >= 1) {
      conn.tokens--;
      return true;
    }
    const retryAfter = Math.ceil((1 - conn.tokens) / rate);
    this.#error(
      conn,
      "rate_limited",
      `Too many frames: slow down and retry in ${retryAfter} s`,
      undefined,
      retryAfter,
    );
    return false;
  }

  /**
   * Runs `build` — which reads the store and sends one reply — after the
   * connection's earlier such replies, once its socket has room for one
   * more. A client that asks for many replies at once (a browser re-joining
   * all its rooms) gets them one after the other as it reads them, instead
   * of a backlog that would cut it off as a slow consumer.
   *
   * @throws {FrameError} `rate_limited` when too many are waiting already.
   */
  #inTurn(conn: Conn, build: () => Promise<void>): Promise<void> {
    const q = conn.replies ??= { tail: Promise.resolve(), count: 0 };
    if (q.count >= MAX_WAITING_REPLIES) {
      return Promise.reject(
        new FrameError(
          "rate_limited",
          "Too many requests are waiting for their answers: wait for them first",
        ),
      );
    }
    q.count++;
    // A connection that closed meanwhile gets nothing built for it.
    const run = q.tail.then(() => this.#roomFor(conn)).then(() =>
      conn.closed ? undefined : build()
    );
    q.tail = run.then(done, done);
    function done(): void {
      if (--q.count === 0 && conn.replies === q) conn.replies = null;
    }
    return run;
  }

  /** Resolves once `conn` may take another reply (or has closed). */
  #roomFor(conn: Conn): Promise<void> {
    if (this.#hasRoom(conn)) return Promise.resolve();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#waitingRoom.push({ conn, resolve });
    return promise;
  }

  /** Whether a reply fits in `conn`'s socket beside what it buffers now. */
  #hasRoom(conn: Conn): boolean {
    if (conn.closed) return true;
    const queued = conn.socket.bufferedAmount + (conn.pending?.size ?? 0);
    return queued + this.#outbox.replyBytes <= this.#outbox.maxBuffered;
  }

  /**
   * Waits for a free search slot on this node.
   *
   * @throws {FrameError} `rate_limited` when too many searches wait already.
   */
  #searchTurn(): Promise<void> {
    if (this.#searching < SEARCHES_AT_ONCE) {
      this.#searching++;
      return Promise.resolve();
    }
    if (this.#searchQueue.length >= MAX_WAITING_SEARCHES) {
      return Promise.reject(
        new FrameError(
          "rate_limited",
          "The server is busy with other searches: try again in a moment",
          undefined,
        ),
      );
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#searchQueue.push(resolve);
    return promise;
  }

  /** Frees a search slot, handing it to the next waiting search. */
  #searchDone(): void {
    const next = this.#searchQueue.shift();
    if (next) next();
    else this.#searching--;
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

  /** Flushes what is queued for `conn`, closes its socket and forgets it. */
  /**
   * Sends `error` (if any) and what is queued for `conn`, closes its socket
   * and forgets it. A socket still connecting ignores close(): it is closed
   * from {@link opened} instead.
   */
  #drop(conn: Conn, code: number, reason: string, error?: Refusal["error"]): void {
    if (conn.socket.readyState === CONNECTING) {
      conn.refusal ??= { code, reason, ...(error ? { error } : {}) };
      this.close(conn);
      return;
    }
    if (error) this.#error(conn, error.code, error.message, undefined, error.retryAfter);
    if (!conn.closed) this.#outbox.flushSink(conn);
    this.close(conn);
    try {
      conn.socket.close(code, reason);
    } catch {
      // Already closing.
    }
  }

  #slow(conn: Conn): void {
    this.#log.warn(
      `Disconnecting a slow consumer${conn.user ? ` ("${conn.user.name}")` : ""} from ${conn.addr}`,
    );
    this.close(conn);
    try {
      conn.socket.close(CloseCode.SlowConsumer, "slow consumer");
    } catch {
      // Already closing.
    }
  }
}

function* othersOf(conns: Iterable<Conn>, user: string): Iterable<Conn> {
  for (const c of conns) if (c.user?.name !== user) yield c;
}
