/**
 * Password changes (login mode): the `passwd` command, which goes through
 * the sign-in throttle and the hasher's queue, and what follows a change of
 * users.json on every node — the sessions it no longer allows end, except
 * the one that changed its own password, which goes on with a fresh token.
 * Kept apart from the hub because it is a command with its own state (the
 * renewals), not part of routing frames.
 *
 * @module
 */
import { type Auth, newSessionId, passwordProblem } from "../auth/auth.ts";
import { HasherBusyError } from "../auth/password.ts";
import type { LoginThrottle, Outcome } from "../auth/throttle.ts";
import type { Broker, BrokerEvent } from "../broker/broker.ts";
import type { Logger } from "../log.ts";
import type { Store } from "../store/store.ts";
import {
  CloseCode,
  FrameError,
  type PasswdDoneFrame,
  type PasswdFrame,
  type ServerFrame,
} from "../../protocol.ts";
import type { Conn, Drop, SendError } from "./conn.ts";
import { RETRY_CONNECT, sessionKey } from "./sign_in.ts";

/** Milliseconds a node keeps a session's password change in mind (see {@link Passwords.revalidate}). */
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

/** What {@link Passwords} needs from the node. */
export interface PasswordsContext {
  auth: Auth;
  /** Where each user's sessions are counted (for admins): a change leaves only the new one. */
  store: Pick<Store, "forgetSessions" | "noteSession">;
  broker: Pick<Broker, "publish">;
  log: Logger;
  /** Clock in milliseconds. */
  now: () => number;
  /** The sign-in throttle, which password checks share. */
  throttle: LoginThrottle;
  /** Sends a frame to one connection. */
  reply: (conn: Conn, frame: ServerFrame) => void;
  /** Sends an `error` frame. */
  error: SendError;
  /** Closes a connection. */
  drop: Drop;
  /** Ends the sessions users.json no longer allows (see {@link Passwords.revalidate}). */
  revalidate: () => void;
  /**
   * The user's sessions but `keep` ended (its connection goes on in `next`):
   * their push subscriptions go, `keep`'s move to `next`.
   */
  sessionsEnded?: (user: string, keep: string, next: string | undefined) => Promise<void>;
}

/** Password changes and the sessions they end. */
export class Passwords {
  #ctx: PasswordsContext;
  /** Password changes by session (see {@link Renewal}). */
  #renewals = new Map<string, Renewal>();
  /** Rereads of users.json under way (see {@link Passwords.reload}). */
  #rereads = new Set<Promise<void>>();
  #closed = false;

  /** Changes passwords with what `ctx` gives. */
  constructor(ctx: PasswordsContext) {
    this.#ctx = ctx;
  }

  /**
   * Ends every session of users whose credentials changed (after users.json
   * reloads) among `conns` (the signed-in ones), except a session that
   * changed its own password: its connections go on, each with a fresh
   * token (see {@link Passwords.passwd}).
   */
  revalidate(conns: Iterable<Conn>): void {
    const now = this.#ctx.now();
    for (const [session, r] of this.#renewals) if (r.until <= now) this.#renewals.delete(session);
    for (const conn of [...conns]) {
      const name = conn.user!.name;
      const current = this.#ctx.auth.fingerprint(name);
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
          token: this.#ctx.auth.issueToken(name, renewal.next),
        };
        if (renewal.ref !== undefined) frame.ref = renewal.ref;
        this.#ctx.reply(conn, frame);
        continue;
      }
      const changedByUser = current !== null &&
        [...this.#renewals.values()].some((r) => r.user === name && r.fingerprint === current);
      this.#ctx.error(
        conn,
        "auth_failed",
        changedByUser
          ? "Your password was changed on another device: sign in again"
          : "Your account was changed or removed: sign in again",
      );
      this.#ctx.drop(conn, CloseCode.AuthFailed, "account changed");
    }
  }

  /** Another node announced a password change: noted before the file is reread, so that the session goes on here too. */
  noted(e: BrokerEvent & { kind: "passwd" }): void {
    if (this.#renewals.get(e.session)?.fingerprint !== e.fingerprint) {
      const until = this.#ctx.now() + RENEWAL_TTL;
      this.#renewals.set(e.session, { user: e.user, fingerprint: e.fingerprint, until });
    }
    this.reload();
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
  async passwd(conn: Conn, frame: PasswdFrame): Promise<void> {
    const auth = this.#ctx.auth;
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
    const gate = this.#ctx.throttle.admit(sessionKey(session), conn.addr, this.#ctx.now());
    if (!gate.ok) {
      const message = `Too many password attempts: try again in ${gate.retryAfter} s`;
      this.#ctx.error(conn, "rate_limited", message, ref, gate.retryAfter);
      return;
    }
    let outcome: Outcome = "abandoned";
    let result;
    try {
      if (gate.wait > 0) await this.#ctx.throttle.wait(gate.ticket);
      if (conn.closed) return;
      result = await auth.changePassword(name, {
        current: frame.current,
        password: frame.password,
        beforeWrite: async (fingerprint) => {
          const until = this.#ctx.now() + RENEWAL_TTL;
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
      this.#ctx.error(conn, "rate_limited", err.message, ref, RETRY_CONNECT);
      return;
    } finally {
      this.#ctx.throttle.settle(gate.ticket, outcome, this.#ctx.now());
    }
    switch (result) {
      case "wrong":
        this.#ctx.error(conn, "auth_failed", "Your current password is wrong", ref);
        return;
      case "gone":
        this.#ctx.error(
          conn,
          "auth_failed",
          "Your account no longer exists: the password was not changed",
          ref,
        );
        this.reload();
        return;
      case "stale":
        this.#ctx.error(
          conn,
          "auth_failed",
          "Your password was changed elsewhere meanwhile: nothing was changed",
          ref,
        );
        this.reload();
        return;
      case "unavailable":
        this.#ctx.error(
          conn,
          "unavailable",
          "Your password cannot be changed right now: the server's users file needs its owner's attention",
          ref,
        );
        return;
    }
    this.#ctx.log.info(`"${name}" changed their password: their other connections end`);
    const next = this.#renewals.get(session)?.next;
    await this.#noteSessions(name, next);
    await this.#ctx.sessionsEnded?.(name, session, next);
    // This node at once: the asking connection gets its new token, in a
    // session of its own; every other connection of the user ends — other
    // tabs of the same session too, so that a copied token goes with them.
    this.#ctx.revalidate();
    const fingerprint = auth.fingerprint(name);
    // The other nodes reread users.json now rather than at their next look.
    if (fingerprint !== null) {
      await this.#announce({ kind: "passwd", user: name, session, fingerprint });
    }
  }

  /**
   * The user's sessions are this one's new session now (what admins see);
   * a failure only leaves the count stale, the change is done.
   */
  async #noteSessions(user: string, next: string | undefined): Promise<void> {
    try {
      await this.#ctx.store.forgetSessions(user);
      if (next !== undefined) await this.#ctx.store.noteSession(user, next, this.#ctx.now());
    } catch (err) {
      this.#ctx.log.warn(`Could not record "${user}"'s new session: ${(err as Error).message}`);
    }
  }

  /** Tells every node about a password change; without it they find out from the file. */
  async #announce(event: BrokerEvent & { kind: "passwd" }): Promise<void> {
    try {
      await this.#ctx.broker.publish(event);
    } catch (err) {
      this.#ctx.log.warn(
        `Could not tell the other nodes that "${event.user}" changed their password (they notice at their next users.json check): ${
          (err as Error).message
        }`,
      );
    }
  }

  /** Rereads users.json now and ends the sessions it no longer allows (not once closed). */
  reload(): void {
    if (this.#closed) return;
    const reread = this.#ctx.auth.reload().then((changed) => {
      if (changed) this.#ctx.revalidate();
    }).catch((err) =>
      this.#ctx.log.warn(`Could not reread the users file: ${(err as Error).message}`)
    ).finally(() => this.#rereads.delete(reread));
    this.#rereads.add(reread);
  }

  /**
   * Starts no more rereads of users.json and settles once those under way
   * are done (shutdown awaits it: they read the file, and a password change
   * or another node's event could start one until the very end).
   */
  async close(): Promise<void> {
    this.#closed = true;
    while (this.#rereads.size > 0) await Promise.all(this.#rereads);
  }
}
