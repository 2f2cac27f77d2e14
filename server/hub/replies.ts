/**
 * Pacing of replies built from stored data: each connection's replies go
 * out one after the other as its socket drains (instead of a backlog that
 * would cut it off as a slow consumer), and the node builds only a few
 * searches and directories at once. Separate from the hub because it is
 * back-pressure, not routing: the commands use it, fan-out never does.
 *
 * @module
 */
import { FrameError } from "../../protocol.ts";
import type { Conn } from "./conn.ts";
import type { Outbox } from "./outbox.ts";

/** Replies from stored data one connection may have waiting at once. */
const MAX_WAITING_REPLIES = 64;

/** Searches and directories (both read much) one node builds at once; more wait their turn. */
const SEARCHES_AT_ONCE = 2;

/** Searches and directories that may wait for their turn on one node; more are refused. */
const MAX_WAITING_SEARCHES = 64;

/** A reply waiting for its connection's socket to drain. */
interface RoomWaiter {
  conn: Conn;
  resolve: () => void;
}

/** Each connection's replies from stored data, in order and paced by its socket. */
export class Replies {
  #outbox: Pick<Outbox, "replyBytes" | "maxBuffered">;
  #waitingRoom: RoomWaiter[] = [];

  /** Paces replies to fit within `outbox`'s reply bound and buffer limit. */
  constructor(outbox: Pick<Outbox, "replyBytes" | "maxBuffered">) {
    this.#outbox = outbox;
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
  inTurn(conn: Conn, build: () => Promise<void>): Promise<void> {
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

  /** Lets go the replies whose sockets have drained; called from the hub's tick. */
  tick(): void {
    if (this.#waitingRoom.length === 0) return;
    const still: RoomWaiter[] = [];
    for (const w of this.#waitingRoom) {
      if (this.#hasRoom(w.conn)) w.resolve();
      else still.push(w);
    }
    this.#waitingRoom = still;
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
}

/** The node's slots for searches and directories, which read much. */
export class SearchSlots {
  #searching = 0;
  #queue: (() => void)[] = [];

  /**
   * Waits for a free search slot on this node.
   *
   * @throws {FrameError} `rate_limited` when too many searches wait already.
   */
  turn(): Promise<void> {
    if (this.#searching < SEARCHES_AT_ONCE) {
      this.#searching++;
      return Promise.resolve();
    }
    if (this.#queue.length >= MAX_WAITING_SEARCHES) {
      return Promise.reject(
        new FrameError(
          "rate_limited",
          "The server is busy with other searches: try again in a moment",
          undefined,
        ),
      );
    }
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#queue.push(resolve);
    return promise;
  }

  /** Frees a search slot, handing it to the next waiting search. */
  done(): void {
    const next = this.#queue.shift();
    if (next) next();
    else this.#searching--;
  }
}
