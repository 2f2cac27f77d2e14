/**
 * Sign-in: who a sign-in frame proves its sender to be (password, token or
 * an open-mode name claim), through the sign-in throttle; the connections
 * that have not signed in yet and make way for newcomers; the sign-ins under
 * way that a sign-out must reach; and sign-out. Open-mode names are claimed
 * and released through `names.ts`. Kept apart from the hub, which only
 * registers the user (see {@link SignInContext.register}) once this module
 * has vouched for them.
 *
 * @module
 */
import { newSessionId, passwordProblem } from "../auth/auth.ts";
import { LoginThrottle, type Outcome, type ThrottleOptions } from "../auth/throttle.ts";
import {
  type ClientFrame,
  CloseCode,
  type Conversation,
  type ErrorCode,
  isReservedName,
  LOBBY,
  type NotifyLevel,
} from "../../protocol.ts";
import { HasherBusyError } from "../auth/password.ts";
import type { Directory } from "./directory.ts";
import { Names } from "./names.ts";
import type { Conn, Drop, SendError } from "./conn.ts";
import type { Limits } from "./limits.ts";
import { banMessage } from "./moderation.ts";
import type { NodeContext } from "./context.ts";
import { type Rename, RENAMES_KEPT } from "../store/store.ts";
import { type HubMeter, NO_HUB_METER } from "../metrics/meter.ts";

/** Seconds a client refused for too many connections (or a busy server) is told to wait. */
export const RETRY_CONNECT = 10;

/** Milliseconds a connection has to send its sign-in before it may be made to make way. */
const PENDING_GRACE = 1000;

/** How long the list of default rooms is kept before it is read again (ms). */
const DEFAULTS_TTL = 2000;

/** A session's sign-ins are recorded at most this often (ms) by a node. */
const SESSION_NOTE_EVERY = 10 * 60_000;

/** Sessions whose last record a node remembers (forgotten all at once past it). */
const MAX_NOTED = 100_000;

/**
 * The throttle's key for password checks made on behalf of a session (a
 * sign-in from its device, a password change): names never hold a colon.
 */
export function sessionKey(session: string): string {
  return `session:${session}`;
}

/** What {@link SignIns} needs from the node. */
export interface SignInContext extends NodeContext {
  /** Whether the node is shutting down. */
  closing: () => boolean;
  /** The user's notification levels, for the welcome. */
  levels?: (user: string) => Promise<Record<string, NotifyLevel>>;
  /** A session signed out (here): its push subscriptions go. */
  signedOut?: (user: string, session: string) => Promise<void>;
  /** Open mode: a name was released; what was private to it (push data) goes. */
  released?: (user: string) => Promise<void>;
  /** The ban of `user` in force now, or null. */
  banned: (user: string) => Promise<{ reason?: string; until?: number } | null>;
  /** A ban of `user` this node heard of while the sign-in was under way, or null. */
  recentBan: (user: string) => { reason?: string; until?: number } | null;
  /** Sends an `error` frame. */
  error: SendError;
  /** Closes a connection. */
  drop: Drop;
  /** Ends the sessions whose credentials changed (see `Hub.revalidate`). */
  revalidate: () => void;
  /** Who the `users` frames list: a signed-in user moves in it. */
  directory: Pick<Directory, "moved">;
  /**
   * Registers a connection whose sign-in was vouched for and sends its
   * `welcome`, replaying `changes` (newer than `rooms`) if the user is new
   * here; false when a connection limit refused it.
   */
  register: (
    conn: Conn,
    who: Identity,
    read: SignInRead,
    changes: readonly MemberChange[],
  ) => boolean;
  /** Handles a frame of a signed-in connection (the backlog, once signed in). */
  handle: (conn: Conn, data: string) => void;
}

/** What a sign-in read of the user's state (before `changes`). */
export interface SignInRead {
  /** The user's rooms. */
  rooms: string[];
  /** The user's conversations with their markers. */
  conversations: Conversation[];
  /** The latest renames of any room, newest first (the welcome lists the user's). */
  renames: readonly Rename[];
  /** The user's notification levels (conversation key → level). */
  levels?: Record<string, NotifyLevel>;
}

/** A membership change seen while a user signs in. */
export interface MemberChange {
  room: string;
  joined: boolean;
  /** A rename: `room` is called this from now on (`joined` is unused). */
  to?: string;
}

/**
 * Member changes seen while a user signs in on this node: the sign-in read
 * the user's rooms before them, and replays them if it creates the user here.
 */
interface Arriving {
  /** Sign-ins of this user under way. */
  count: number;
  changes: MemberChange[];
}

/** Options for {@link SignIns}. */
export interface SignInOptions {
  /** Limits on connections waiting to sign in. */
  limits: Pick<Limits, "maxPendingPerAddr" | "maxPending">;
  /** Milliseconds a new connection has to sign in. */
  authTimeout: number;
  /** Open mode: milliseconds after which a name not seen is released. */
  nameExpiry: number;
  /** Sign-in throttling. */
  throttle?: Partial<ThrottleOptions>;
  /** Counts sign-ins and their failures (`--metrics`). @default {hooks that do nothing} */
  meter?: Pick<HubMeter, "signedIn" | "signInFailed">;
}

/** Who a sign-in proved its sender to be. */
export interface Identity {
  name: string;
  /** The session it opens or continues. */
  session: string;
  /** The credentials it was checked against. */
  fingerprint: string | null;
  /** Open mode: the name was claimed afresh. */
  fresh?: boolean;
}

/** Sign-ins on one node, from the first frame to the identity. */
export class SignIns {
  #ctx: SignInContext;
  #limits: Pick<Limits, "maxPendingPerAddr" | "maxPending">;
  #throttle: LoginThrottle;
  #authTimeout: number;
  #meter: Pick<HubMeter, "signedIn" | "signInFailed">;
  /** Connections that have not sent a sign-in frame yet, by address, oldest first. */
  #pending = new Map<string, Set<Conn>>();
  /** The same, all addresses together, oldest first. */
  #pendingAll = new Set<Conn>();
  /** Sign-ins under way, by session: a sign-out closes them too. */
  #signingIn = new Map<string, Set<Conn>>();
  /** Open-mode name claims. */
  #names: Names;
  /** Member changes seen while users sign in here, by user. */
  #arriving = new Map<string, Arriving>();
  /** The default rooms as last read (see `#defaultRooms`). */
  #defaults: { at: number; rooms: string[] } | null = null;
  /** The latest renames, read at most every {@link DEFAULTS_TTL} ms (see {@link #latestRenames}). */
  #renames: { at: number; list: Rename[] } | null = null;
  /** When this node last recorded each session's sign-in (see {@link #noteSession}). */
  #noted = new Map<string, number>();

  /** Checks sign-ins with what `ctx` gives. */
  constructor(ctx: SignInContext, options: SignInOptions) {
    this.#ctx = ctx;
    this.#limits = options.limits;
    this.#names = new Names(ctx, { nameExpiry: options.nameExpiry });
    this.#throttle = new LoginThrottle(options.throttle);
    this.#authTimeout = options.authTimeout;
    this.#meter = options.meter ?? NO_HUB_METER;
  }

  /** The throttle for password checks (sign-ins and password changes). */
  get throttle(): LoginThrottle {
    return this.#throttle;
  }

  /** Connections signing in to `session` right now. */
  signingIn(session: string): Iterable<Conn> {
    return this.#signingIn.get(session) ?? [];
  }

  /**
   * A membership change seen on this node: a sign-in of this user under way
   * read its rooms before it, and replays it if it creates the user afresh.
   */
  noteMember(user: string, room: string, joined: boolean): void {
    this.#arriving.get(user)?.changes.push({ room, joined });
  }

  /** A room was renamed: sign-ins under way read its old name, and replay this. */
  noteRename(room: string, to: string): void {
    for (const arriving of this.#arriving.values()) {
      arriving.changes.push({ room, joined: false, to });
    }
  }

  /** Closes the connections that did not sign in within the time they had. */
  timeOut(now: number): void {
    const timeout = this.#authTimeout;
    // At most maxPending of them; not stopped at the first one in time, since
    // a clock set back makes insertion order and `opened` order differ.
    for (const conn of this.#pendingAll) {
      if (now - conn.opened <= timeout) continue;
      this.#ctx.error(
        conn,
        "not_authenticated",
        `Sign in within ${Math.round(timeout / 1000)} seconds of connecting`,
      );
      this.#ctx.drop(conn, CloseCode.NotAuthenticated, "sign-in timed out");
    }
  }

  /** Runs the throttle's timers and, now and then, the sweep of expired names. */
  tick(now: number): void {
    this.#throttle.tick(now);
    this.#names.tick(now);
  }

  /** Stops the throttle (shutdown). */
  close(): void {
    this.#throttle.close();
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
  admit(conn: Conn): void {
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
    this.#ctx.drop(oldest, CloseCode.NotAuthenticated, "others were waiting to sign in", {
      code: "not_authenticated",
      message: "Sign in right after connecting: other connections were waiting",
    });
  }

  /**
   * The rooms admins chose for newcomers (besides `general`), read at most
   * every {@link DEFAULTS_TTL} ms and after every change of a room's
   * settings: a storm of first sign-ins reads the room list once, not once each.
   */
  async #defaultRooms(): Promise<string[]> {
    const now = this.#ctx.now();
    if (this.#defaults === null || now - this.#defaults.at > DEFAULTS_TTL) {
      const rooms = (await this.#ctx.store.rooms())
        .filter((r) => r.autoJoin && !r.archived && r.name !== LOBBY)
        .map((r) => r.name);
      this.#defaults = { at: now, rooms };
    }
    return this.#defaults.rooms;
  }

  /**
   * Records the session's sign-in for the admins' count of sessions (login
   * mode), at most once per {@link SESSION_NOTE_EVERY} per session from this
   * node: a storm of reconnects writes each session once, not each time.
   */
  async #noteSession(name: string, session: string): Promise<void> {
    if (this.#ctx.auth.mode !== "login") return;
    const now = this.#ctx.now();
    const last = this.#noted.get(session);
    if (last !== undefined && now - last < SESSION_NOTE_EVERY) return;
    if (this.#noted.size >= MAX_NOTED) this.#noted.clear();
    this.#noted.set(session, now);
    await this.#ctx.store.noteSession(name, session, now);
  }

  /**
   * The store's latest renames, read at most every {@link DEFAULTS_TTL} ms
   * and after every rename heard, like {@link #defaultRooms}.
   */
  async #latestRenames(): Promise<Rename[]> {
    const now = this.#ctx.now();
    if (this.#renames === null || now - this.#renames.at > DEFAULTS_TTL) {
      this.#renames = { at: now, list: await this.#ctx.store.recentRenames(RENAMES_KEPT) };
    }
    return this.#renames.list;
  }

  /** A room's settings or name changed (on any node): default rooms and renames are read again. */
  roomsChanged(): void {
    this.#defaults = null;
    this.#renames = null;
  }

  /** Takes a connection out of the signing-in count. */
  unpend(conn: Conn): void {
    if (!this.#pendingAll.delete(conn)) return;
    const set = this.#pending.get(conn.addr);
    if (set?.delete(conn) && set.size === 0) this.#pending.delete(conn.addr);
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
   * A connection's first frame, which must be a sign-in: checks it, and
   * registers the user through the context (see {@link SignInContext.register});
   * frames that arrive meanwhile wait in the connection's backlog, then run.
   */
  begin(conn: Conn, frame: ClientFrame): void {
    if (frame.type !== "auth" && frame.type !== "register") {
      this.#ctx.error(
        conn,
        "not_authenticated",
        'Sign in first: the first frame must be {"type":"auth",...}',
      );
      this.#ctx.drop(conn, CloseCode.NotAuthenticated, "not authenticated");
      return;
    }
    conn.backlog = [];
    // It has sent a sign-in: the throttle and the hasher's queue bound it from here.
    this.unpend(conn);
    this.#signIn(conn, frame).catch((err) => {
      if (err instanceof HasherBusyError) {
        this.#meter.signInFailed("rate_limited");
        this.#ctx.error(conn, "rate_limited", err.message, undefined, RETRY_CONNECT);
        this.#ctx.drop(conn, CloseCode.RateLimited, "server busy");
        return;
      }
      this.#ctx.log.error(`Sign-in failed: ${(err as Error).stack ?? err}`);
      this.#meter.signInFailed("unavailable");
      this.#ctx.error(conn, "unavailable", "The server could not sign you in: try again shortly");
      this.#ctx.drop(conn, CloseCode.GoingAway, "sign-in failed");
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
    const auth = this.#ctx.auth;
    const { name, session, fingerprint } = who;
    // Open mode has no admins, so nobody to ban (and no store read per sign-in).
    const ban = auth.mode === "login" ? await this.#ctx.banned(name) : null;
    if (ban !== null) {
      this.#meter.signInFailed("banned");
      if (tracked.session !== null) this.#untrack(conn, tracked.session);
      this.#ctx.drop(conn, CloseCode.Banned, "banned", {
        code: "banned",
        message: banMessage(ban),
      });
      return;
    }
    this.#track(conn, session, tracked);
    // Membership changes made elsewhere while the rooms are read below would
    // otherwise be missed: this node applies events only to users it holds.
    const arriving = this.#arriving.get(name) ?? { count: 0, changes: [] };
    arriving.count++;
    this.#arriving.set(name, arriving);
    let welcomed = false;
    try {
      if (conn.closed) return;
      const store = this.#ctx.store;
      await Promise.all([store.touchUser(name, this.#ctx.now()), this.#noteSession(name, session)]);
      // Banned since the check above: not even back into general.
      const late = this.#ctx.recentBan(name);
      if (late !== null) {
        this.#meter.signInFailed("banned");
        this.#ctx.drop(conn, CloseCode.Banned, "banned", {
          code: "banned",
          message: banMessage(late),
        });
        return;
      }
      this.#ctx.directory.moved(name);
      const lobby = await store.join(name, LOBBY);
      if (lobby.added) {
        // New here (or back after a removal): general, and the rooms admins chose for newcomers.
        for (const room of [LOBBY, ...await this.#defaultRooms()]) {
          const joined = room === LOBBY ? lobby : await store.join(name, room);
          if (!joined.added) continue;
          await this.#ctx.broker.publish({
            kind: "member",
            user: name,
            room,
            joined: true,
            ts: new Date(this.#ctx.now()).toISOString(),
            count: joined.count,
          });
        }
      }
      const [rooms, conversations, renames, levels] = await Promise.all([
        store.roomsOf(name),
        store.conversations(name),
        this.#latestRenames(),
        this.#ctx.levels?.(name),
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
      const read: SignInRead = { rooms, conversations, renames };
      if (levels !== undefined) read.levels = levels;
      if (!this.#ctx.register(conn, who, read, arriving.changes)) {
        return;
      }
      welcomed = true;
      this.#meter.signedIn();
    } finally {
      if (--arriving.count === 0) this.#arriving.delete(name);
      this.#untrack(conn, session);
      if (!welcomed && auth.mode === "open") {
        this.#names.releaseUnwelcomed(name, session, who.fresh);
      }
    }
    const backlog = conn.backlog ?? [];
    conn.backlog = null;
    for (const data of backlog) if (!conn.closed) this.#ctx.handle(conn, data);
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
  ): Promise<Identity | null> {
    const auth = this.#ctx.auth;
    const now = this.#ctx.now();
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
      this.#ctx.revalidate();
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
      if (claims === null || await this.#ctx.store.sessionRevoked(claims.session, now)) {
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
        const held = await this.#ctx.store.claimName(
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
    const claim = await this.#names.claim(username, session, now);
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

  /** The user a token acts as now, or null (see `Hub.tokenUser`). */
  async tokenUser(token: string): Promise<string | null> {
    const claims = this.#ctx.auth.verifyToken(token);
    if (claims === null) return null;
    if (await this.#ctx.store.sessionRevoked(claims.session, this.#ctx.now())) return null;
    if (this.#ctx.auth.mode === "login" && await this.#ctx.banned(claims.user) !== null) {
      return null;
    }
    if (this.#ctx.auth.mode === "login") return claims.user;
    const claim = await this.#ctx.store.nameClaim(claims.user);
    return claim !== null && claim.session === claims.session ? claim.name : null;
  }

  /**
   * Signs a session out everywhere: its tokens stop working on every node,
   * its connections close with 4003, and in open mode its name is released
   * (with its direct messages and read markers). Resolves false for a token
   * that is not valid (forged, expired or already revoked).
   */
  async signOut(token: string): Promise<boolean> {
    const auth = this.#ctx.auth;
    const claims = auth.verifyToken(token);
    if (claims === null) return false;
    const now = this.#ctx.now();
    // A sign-out that failed half-way is finished by the next try (each step
    // may run twice), which still answers that the token was signed out.
    const already = await this.#ctx.store.sessionRevoked(claims.session, now);
    // Revoked first: its tokens must not take the name back once it is free.
    if (!already) await this.#ctx.store.revokeSession(claims.session, now + auth.tokenTtl * 1000);
    // Every node closes the session's connections and its sign-ins under way,
    // before the name is free for anyone else.
    await this.#ctx.broker.publish({ kind: "signout", user: claims.user, session: claims.session });
    await this.#ctx.signedOut?.(claims.user, claims.session);
    if (auth.mode === "open") await this.#names.release(claims.user, claims.session);
    return !already;
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
    const gate = this.#throttle.admit(user, conn.addr, this.#ctx.now());
    if (!gate.ok) {
      this.#meter.signInFailed("rate_limited");
      const message = `Too many sign-in attempts: try again in ${gate.retryAfter} s`;
      this.#ctx.error(conn, "rate_limited", message, undefined, gate.retryAfter);
      this.#ctx.drop(conn, CloseCode.RateLimited, "too many sign-in attempts");
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
      this.#throttle.settle(gate.ticket, outcome, this.#ctx.now());
    }
  }

  #deny(conn: Conn, code: ErrorCode, message: string, close: number): null {
    this.#meter.signInFailed(code);
    this.#ctx.error(conn, code, message);
    this.#ctx.drop(conn, close, message.split(":")[0]);
    return null;
  }

  /** Refuses a sign-in over a connection limit: `rate_limited`, then 4029. */
  refuse(conn: Conn, message: string): void {
    this.#meter.signInFailed("rate_limited");
    this.#ctx.error(conn, "rate_limited", message, undefined, RETRY_CONNECT);
    this.#ctx.drop(conn, CloseCode.RateLimited, "too many connections");
  }
}
