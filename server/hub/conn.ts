/**
 * One WebSocket connection and the user it signs in as, as the hub and its
 * command modules see them. Separate from the hub so that sign-in, commands
 * and fan-out can share the type without sharing the hub's private state.
 *
 * @module
 */
import type { ErrorCode } from "../../protocol.ts";
import type { Bucket } from "./limits.ts";
import type { Batch, Socket } from "./outbox.ts";

/** A signed-in user with connections on this node. */
export interface User {
  name: string;
  conns: Set<Conn>;
  rooms: Set<string>;
  /**
   * Joins under way (quota check and store write): room → settles when done.
   * Null when there are none, which is nearly always: an empty Map per user
   * would cost every idle connection ~200 bytes.
   */
  joining: Map<string, Promise<unknown>> | null;
  /** The role the user's connections were last told (login mode only). */
  role?: "admin" | "member";
}

/** A close that waits for the socket to open. */
export interface Refusal {
  code: number;
  reason: string;
  /** The error frame to send first, if any. */
  error?: { code: ErrorCode; message: string; retryAfter?: number };
}

/** Sends an `error` frame to one connection (see `Hub`). */
export type SendError = (
  conn: Conn,
  code: ErrorCode,
  message: string,
  ref?: string,
  retryAfter?: number,
) => void;

/** Sends what is queued (and `error`, if any), closes the socket and forgets the connection. */
export type Drop = (conn: Conn, code: number, reason: string, error?: Refusal["error"]) => void;

let nextConnId = 1;

/** One WebSocket connection. */
export class Conn implements Bucket {
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
   * order (null when none, which is nearly always): see `Replies.inTurn`.
   */
  replies: { tail: Promise<void>; count: number } | null = null;
  /** Frames that arrived while the sign-in was being checked. */
  backlog: string[] | null = null;
  /**
   * Settles once every message and change this connection sent so far has
   * reached the store (null when none is on its way): see {@link takeTurn}.
   */
  storeTail: Promise<void> | null = null;
  /**
   * When the connection opened (ms): when its upgrade was accepted, then when
   * its socket opened. The time to sign in counts from the latter, when the
   * client can first send: under a storm of handshakes the two are seconds apart.
   */
  opened: number;
  /** Token bucket: frames left and when it was last refilled. */
  tokens: number;
  refilled: number;
  /** Whether the hub has let go of this connection. */
  closed = false;
  /** Whether its page is visible (`visible` frames); one that never says counts as visible. */
  visible = true;
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

/** Closes the connection's socket, which may be closing already. */
export function closeSocket(conn: Conn, code: number, reason: string): void {
  try {
    conn.socket.close(code, reason);
  } catch {
    // Already closing.
  }
}

/** A connection's place in line for the store (see {@link takeTurn}). */
export interface Turn {
  /** Settles when the frames before this one have reached the store (null: none). */
  ready: Promise<void> | null;
  /** Lets the next frame go: call once this frame's store call is made (or it failed). */
  done(): void;
}

/**
 * Takes the connection's next turn at the store. Messages and changes take
 * positions in the order their store calls are made, and handlers await
 * different things first (a room check, a reply's original, a name's
 * claim): without turns, a send could overtake the edit sent just before
 * it. Take the turn before the first `await`, await `ready` right before the
 * store call, and call `done` right after making it.
 */
export function takeTurn(conn: Conn): Turn {
  const before = conn.storeTail;
  const mine = Promise.withResolvers<void>();
  const tail = before ? Promise.all([before, mine.promise]).then(() => {}) : mine.promise;
  conn.storeTail = tail;
  return {
    ready: before,
    done() {
      mine.resolve();
      if (conn.storeTail === tail) conn.storeTail = null;
    },
  };
}
