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
import { type Auth, passwordProblem } from "./auth.ts";
import { HasherBusyError } from "./password.ts";
import type { Broker, BrokerEvent, Origin } from "./broker.ts";
import { KeyedCounter, RoomQuota } from "./limits.ts";
import type { Logger } from "./log.ts";
import { type Batch, Outbox, type OutboxOptions, type Socket } from "./outbox.ts";
import { Presence, type PresenceOptions } from "./presence.ts";
import {
  type ChatMessage,
  type ClientFrame,
  CloseCode,
  conversationKey,
  type ErrorCode,
  FrameError,
  JOIN_REPLAY,
  LOBBY,
  MAX_PAGE,
  parseClientFrame,
  type ServerFrame,
  type Target,
  type WelcomeFrame,
} from "./protocol.ts";
import { dmPair, type Store } from "./store.ts";
import { LoginThrottle, type Outcome, type ThrottleOptions } from "./throttle.ts";
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
  /** Connections one client address may hold. @default {100} */
  maxConnsPerAddr: number;
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
  /** Clock in milliseconds. @default {Date.now} */
  now?: () => number;
}

/** What the HTTP layer knows about a new connection. */
export interface ConnInfo {
  /** Client address (for logs and per-address limits). */
  addr: string;
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
  /** The sender's own copy, carrying its `ref`: the acknowledgement. */
  own: boolean;
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

let nextConnId = 1;

/** Seconds a client refused for too many connections is told to wait. */
const RETRY_CONNECT = 10;

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
  /** Frames that arrived while the sign-in was being checked. */
  backlog: string[] | null = null;
  /** When the connection opened (ms). */
  readonly opened: number;
  /** Token bucket: frames left and when it was last refilled. */
  tokens: number;
  refilled: number;
  /** Whether the hub has let go of this connection. */
  closed = false;
  /** Why the connection is refused once it opens (limits, shutdown). */
  refusal: { code: number; message: string } | null = null;

  /** Wraps a socket. */
  constructor(socket: Socket, addr: string, now: number, burst: number) {
    this.socket = socket;
    this.addr = addr;
    this.opened = now;
    this.tokens = burst;
    this.refilled = now;
  }
}

function encode(frame: ServerFrame): string {
  return JSON.stringify(frame);
}

function messageFrame(msg: ChatMessage): string {
  // Key order is fixed so every node builds the same text.
  return msg.room !== undefined
    ? `{"type":"message","id":${msg.id},"room":"${msg.room}","from":"${msg.from}","text":${
      JSON.stringify(msg.text)
    },"ts":"${msg.ts}"}`
    : `{"type":"message","id":${msg.id},"to":"${msg.to}","from":"${msg.from}","text":${
      JSON.stringify(msg.text)
    },"ts":"${msg.ts}"}`;
}

function withRef(text: string, ref: string): string {
  return `${text.slice(0, -1)},"ref":${JSON.stringify(ref)}}`;
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
  #unauthed = new Set<Conn>();
  #authed = new Set<Conn>();
  #users = new Map<string, User>();
  /** Names being signed in (open mode): not online yet, but taken. */
  #claims = new Set<string>();
  #arriving = new Map<string, Arriving>();
  #routes = new Map<string, Route>();
  #typing = new Map<string, Typing>();
  #presence: Presence;
  #closing = false;
  #throttle: LoginThrottle;
  #addrs = new KeyedCounter();
  #rooms: RoomQuota;
  #typingGate: TypingGate<BrokerEvent & { kind: "typing" }>;

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
    this.#broker.onPresence((user) => this.#presence.changed(user));
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
   */
  open(socket: Socket, info: ConnInfo): Conn {
    const conn = new Conn(
      socket,
      info.addr,
      this.#now(),
      this.#limits.frameBurst,
    );
    this.#conns.set(conn.id, conn);
    this.#unauthed.add(conn);
    const max = this.#limits.maxConnsPerAddr;
    if (this.#closing) {
      conn.refusal = { code: CloseCode.GoingAway, message: "server shutting down" };
    } else if (!this.#addrs.add(conn.addr, max)) {
      conn.refusal = {
        code: CloseCode.RateLimited,
        message: `Too many connections from your address (at most ${max}): close some and retry`,
      };
    }
    return conn;
  }

  /** The socket is open: refuses the connection now if {@link open} decided so. */
  opened(conn: Conn): void {
    const r = conn.refusal;
    if (r === null || conn.closed) return;
    if (r.code === CloseCode.RateLimited) {
      this.#error(conn, "rate_limited", r.message, undefined, RETRY_CONNECT);
    }
    this.#drop(conn, r.code, r.code === CloseCode.RateLimited ? "too many connections" : r.message);
  }

  /** Handles one frame from a socket (a string, or anything else for binary). */
  receive(conn: Conn, data: unknown): void {
    if (conn.closed) return;
    if (!this.#take(conn)) return;
    if (typeof data !== "string") {
      this.#error(
        conn,
        "bad_request",
        "Binary frames are not supported: send JSON text",
      );
      return;
    }
    if (conn.backlog !== null) {
      if (conn.backlog.length >= this.#limits.authBacklog) {
        this.#error(conn, "rate_limited", "Too many frames before sign-in finished");
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
    this.#unauthed.delete(conn);
    this.#authed.delete(conn);
    if (conn.refusal === null) this.#addrs.remove(conn.addr);
    const user = conn.user;
    if (!user) return;
    for (const room of user.rooms) this.#unroute(room, conn);
    for (const room of user.joining?.keys() ?? []) this.#unroute(room, conn);
    user.conns.delete(conn);
    if (user.conns.size === 0) {
      this.#users.delete(user.name);
      this.#clearTyping(user.name);
      this.#broker.offline(user.name);
    }
  }

  /**
   * Runs the timers: sign-in deadlines, typing expiry, presence broadcasts.
   * The server calls it from one shared interval.
   */
  tick(now: number = this.#now()): void {
    for (const conn of this.#unauthed) {
      if (conn.backlog === null && now - conn.opened > this.#authTimeout) {
        this.#error(
          conn,
          "not_authenticated",
          `Sign in within ${Math.round(this.#authTimeout / 1000)} seconds of connecting`,
        );
        this.#drop(conn, CloseCode.NotAuthenticated, "sign-in timed out");
      }
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
    this.#throttle.tick(now);
    const presence = this.#presence.frame(now);
    if (presence !== null) this.#outbox.fanout(this.#authed, presence);
  }

  /** Ends every session of users whose credentials changed (after users.json reloads). */
  revalidate(): void {
    for (const conn of [...this.#authed]) {
      if (this.#auth.fingerprint(conn.user!.name) !== conn.fingerprint) {
        this.#error(conn, "auth_failed", "Your account was changed or removed: sign in again");
        this.#drop(conn, CloseCode.AuthFailed, "account changed");
      }
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
    const auth = this.#auth;
    let name: string;
    let claimed = false;
    let fingerprint: string | null = null;
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
      const result = auth.signup
        ? await this.#throttled(
          conn,
          null,
          () => auth.register(username, password),
          // Every sign-up costs a password hash: it counts against the address like a failure.
          () => false,
        )
        : "disabled";
      if (result === null) return;
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
          `The name "${frame.username}" is taken: choose another`,
          CloseCode.NameTaken,
        );
      }
      name = frame.username;
      fingerprint = auth.fingerprint(name);
    } else if (frame.type === "auth" && frame.token !== undefined) {
      const user = auth.verifyToken(frame.token);
      if (user === null) {
        return this.#deny(
          conn,
          "auth_failed",
          "Your session has expired or is no longer valid: sign in again",
          CloseCode.AuthFailed,
        );
      }
      name = user;
      fingerprint = auth.fingerprint(name);
    } else if (frame.type === "auth" && auth.mode === "login") {
      const username = frame.username!;
      // Taken before the (slow) check: a password changed meanwhile must not open a session.
      fingerprint = auth.fingerprint(username);
      const ok = await this.#throttled(
        conn,
        username,
        () => auth.checkPassword(username, frame.password ?? ""),
        (ok) => ok,
      );
      if (ok === null) return;
      if (!ok) {
        return this.#deny(conn, "auth_failed", "Wrong username or password", CloseCode.AuthFailed);
      }
      name = frame.username!;
    } else {
      name = (frame as { username: string }).username;
      if (this.#broker.isOnline(name) || this.#claims.has(name)) {
        return this.#deny(
          conn,
          "name_taken",
          `The name "${name}" is taken: choose another`,
          CloseCode.NameTaken,
        );
      }
      this.#claims.add(name);
      claimed = true;
      fingerprint = auth.fingerprint(name);
    }
    // Membership changes made elsewhere while the rooms are read below would
    // otherwise be missed: this node applies events only to users it holds.
    const arriving = this.#arriving.get(name) ?? { count: 0, changes: [] };
    arriving.count++;
    this.#arriving.set(name, arriving);
    try {
      if (conn.closed) return;
      const store = this.#store;
      await store.touchUser(name);
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
        return this.#deny(
          conn,
          "auth_failed",
          "Your account changed while you were signing in: sign in again",
          CloseCode.AuthFailed,
        );
      }
      this.#unauthed.delete(conn);
      this.#authed.add(conn);
      let user = this.#users.get(name);
      const maxConns = this.#limits.maxConnsPerUser;
      if (user && user.conns.size >= maxConns) {
        this.#error(
          conn,
          "rate_limited",
          `Too many connections for "${name}" (at most ${maxConns}): close another tab or device`,
          undefined,
          RETRY_CONNECT,
        );
        this.#drop(conn, CloseCode.RateLimited, "too many connections");
        return;
      }
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
      for (const room of user.rooms) this.#route(room).conns.add(conn);
      this.#broker.online(name);
      // The online list is kept sorted and serialized once per change, not per welcome.
      const head = JSON.stringify(
        {
          type: "welcome",
          user: name,
          token: auth.issueToken(name),
          rooms: [...user.rooms].sort(),
        } satisfies Partial<WelcomeFrame>,
      );
      const tail = JSON.stringify({ mode: auth.mode, conversations });
      this.#outbox.push(
        conn,
        `${head.slice(0, -1)},${this.#presence.welcomeFields()},${tail.slice(1)}`,
      );
    } finally {
      if (claimed) this.#claims.delete(name);
      if (--arriving.count === 0) this.#arriving.delete(name);
    }
    const backlog = conn.backlog ?? [];
    conn.backlog = null;
    for (const data of backlog) if (!conn.closed) this.#handle(conn, data);
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

  #deny(conn: Conn, code: ErrorCode, message: string, close: number): void {
    this.#error(conn, code, message);
    this.#drop(conn, close, message.split(":")[0]);
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
        work = this.#store.rooms().then((rooms) => this.#reply(conn, { type: "rooms", rooms }));
        break;
      case "typing":
        work = this.#typingFrame(conn, frame, frame.active);
        break;
      case "history":
        work = this.#history(conn, frame);
        break;
      case "read":
        work = this.#read(conn, frame, frame.id);
        break;
      case "search":
        work = this.#search(conn, frame);
        break;
      case "ping":
        this.#reply(conn, { type: "pong" });
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

  /** The conversation key of a target, checking the user may use it. */
  async #conv(user: User, target: Target, ref?: string): Promise<string> {
    if (target.room !== undefined) {
      if (!(await this.#isMember(user, target.room))) {
        throw new FrameError(
          "unknown_room",
          `You are not in room "${target.room}": join it first`,
          ref,
        );
      }
      return target.room;
    }
    const peer = target.to!;
    if (!(await this.#userExists(peer))) {
      throw new FrameError("unknown_user", `There is no user "${peer}"`, ref);
    }
    return conversationKey(user.name, target);
  }

  /** Whether the user is in the room, once a join of it that is under way has settled. */
  async #isMember(user: User, room: string): Promise<boolean> {
    if (user.rooms.has(room)) return true;
    const pending = user.joining?.get(room);
    if (pending) await pending.catch(() => {});
    return user.rooms.has(room);
  }

  async #userExists(name: string): Promise<boolean> {
    if (this.#auth.mode === "login") return this.#auth.has(name);
    return this.#broker.isOnline(name) || await this.#store.knownUser(name);
  }

  async #send(conn: Conn, frame: ClientFrame & { type: "send" }): Promise<void> {
    const user = conn.user!;
    const target: Target = frame.room !== undefined ? { room: frame.room } : { to: frame.to! };
    const conv = await this.#conv(user, target, frame.ref);
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
    try {
      await this.#broker.publishMessage(
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

  async #sendJoined(conn: Conn, room: string, since?: number): Promise<void> {
    // This join's buffer: a later join of the same connection gets a new one,
    // and whichever finishes must only consume its own.
    const mine = this.#routes.get(room)?.joining.get(conn);
    if (!mine) return;
    let page, members;
    try {
      [page, members] = await Promise.all([
        this.#store.page(
          room,
          since === undefined ? { limit: JOIN_REPLAY } : { since, limit: MAX_PAGE },
        ),
        this.#store.members(room),
      ]);
    } catch (err) {
      // Keep the connection in the room (live messages flow again); the
      // client is told and can resume with `join` + `since`.
      const route = this.#routes.get(room);
      if (route?.joining.get(conn) === mine) {
        route.joining.delete(conn);
        if (!conn.closed) {
          route.conns.add(conn);
          for (const b of mine) this.#outbox.push(conn, b.text);
        }
      }
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
    const frame: ServerFrame = { type: "joined", room, members, history: page.messages };
    if (page.more) frame.more = true;
    if (page.gap) frame.gap = true;
    this.#outbox.push(conn, encode(frame));
    const seen = page.messages.length > 0 ? page.messages[page.messages.length - 1].id : since ?? 0;
    // What the page already holds is not sent twice, except the sender's own
    // copy: its `ref` is the acknowledgement the client is waiting for.
    for (const b of mine) if (b.id > seen || b.own) this.#outbox.push(conn, b.text);
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

  async #typingFrame(conn: Conn, target: Target, active: boolean): Promise<void> {
    const user = conn.user!;
    const t: Target = target.room !== undefined ? { room: target.room } : { to: target.to! };
    const conv = await this.#conv(user, t);
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
    const target: Target = frame.room !== undefined ? { room: frame.room } : { to: frame.to! };
    const conv = await this.#conv(conn.user!, target);
    const page = await this.#store.page(conv, {
      before: frame.before,
      since: frame.since,
      limit: frame.limit ?? JOIN_REPLAY,
    });
    const reply: ServerFrame = {
      type: "history",
      ...target,
      messages: page.messages,
      more: page.more,
    };
    if (page.gap) reply.gap = true;
    this.#reply(conn, reply);
  }

  async #read(conn: Conn, target: Target, id: number): Promise<void> {
    const user = conn.user!;
    const t: Target = target.room !== undefined ? { room: target.room } : { to: target.to! };
    const conv = await this.#conv(user, t);
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
      conv = await this.#conv(user, t);
    }
    const messages = await this.#store.search(frame.q, {
      user: user.name,
      rooms: [...user.rooms],
      conv,
      limit: frame.limit ?? 50,
    });
    this.#reply(conn, { type: "search", q: frame.q, messages });
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
        buf.push({
          id: msg.id,
          text: c === sender ? own : text,
          own: c === sender && own !== text,
        });
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

  #reply(conn: Conn, frame: ServerFrame): void {
    if (!conn.closed) this.#outbox.push(conn, encode(frame));
  }

  #error(conn: Conn, code: ErrorCode, message: string, ref?: string, retryAfter?: number): void {
    const frame: ServerFrame = { type: "error", code, message };
    if (ref !== undefined) frame.ref = ref;
    if (retryAfter !== undefined) frame.retryAfter = retryAfter;
    this.#reply(conn, frame);
  }

  /** Flushes what is queued for `conn`, closes its socket and forgets it. */
  #drop(conn: Conn, code: number, reason: string): void {
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
