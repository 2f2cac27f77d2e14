/**
 * Ends WebSocket connections stuck in the closing handshake.
 *
 * When the server closes a socket (a slow consumer, a failed ping, a
 * refused sign-in), Deno queues the close frame behind the data not yet
 * sent and waits for the peer's answer. A peer that stopped reading never
 * answers, and Deno keeps the connection, its unsent data and the kernel's
 * buffers forever: a half-open client would hold resources indefinitely.
 * The reaper watches every socket from the shared timer and drops the
 * connection of one that has been closing for longer than a grace period.
 *
 * Deno has no public API to drop a server-side WebSocket's connection, so
 * {@link abortSocket} closes its runtime resource through `Deno.internal`;
 * if that is unavailable it reports so once and the socket is left to Deno.
 *
 * @module
 */
import type { Logger } from "../log.ts";

const CLOSING = 2;

/** Options for {@link SocketReaper}. */
export interface ReaperOptions {
  /** Milliseconds a socket may spend closing before its connection is dropped. @default {5000} */
  grace?: number;
  /** Where the reaper reports what it did. */
  log: Logger;
}

/** Drops connections that do not finish closing in time. */
export class SocketReaper {
  #grace: number;
  #log: Logger;
  /** Socket → its address, then (once seen closing) `[address, since]`. */
  #sockets = new Map<WebSocket, string | [string, number]>();
  #swept = 0;
  #warned = false;
  /** Connections dropped so far. */
  reaped = 0;

  /** Creates a reaper. */
  constructor(options: ReaperOptions) {
    this.#grace = options.grace ?? 5000;
    this.#log = options.log;
  }

  /** Sockets watched. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Watches a socket from its upgrade on. */
  track(socket: WebSocket, addr: string): void {
    // A bare string while open: an object per socket would cost every idle connection.
    this.#sockets.set(socket, addr);
  }

  /** Stops watching a socket (its `close` event fired). */
  untrack(socket: WebSocket): void {
    this.#sockets.delete(socket);
  }

  /** Checks the sockets (at most every `grace / 5` ms) and drops those closing for too long. */
  sweep(now: number): void {
    if (now - this.#swept < this.#grace / 5) return;
    this.#swept = now;
    for (const [socket, s] of this.#sockets) {
      if (socket.readyState !== CLOSING) continue;
      if (typeof s === "string") {
        this.#sockets.set(socket, [s, now]);
        continue;
      }
      const [addr, since] = s;
      if (now - since < this.#grace) continue;
      this.#sockets.delete(socket);
      if (abortSocket(socket)) {
        this.reaped++;
        this.#log.warn(
          `Dropped a connection from ${addr} that did not finish closing within ${
            Math.round(this.#grace / 100) / 10
          } s`,
        );
      } else if (!this.#warned) {
        this.#warned = true;
        this.#log.warn(
          "Cannot drop WebSocket connections stuck while closing on this Deno version: they stay until the peer goes away",
        );
      }
    }
  }
}

/**
 * Drops a server-side WebSocket's connection at once, without the closing
 * handshake; its `close` event follows. Returns false when the runtime offers
 * no way to do it.
 */
export function abortSocket(socket: WebSocket): boolean {
  try {
    const deno = Deno as unknown as Record<string | symbol, unknown>;
    const key = deno.internal;
    if (typeof key !== "symbol") return false;
    const internal = deno[key] as { core?: { tryClose?: (rid: number) => void } } | undefined;
    const tryClose = internal?.core?.tryClose;
    const ridKey = Object.getOwnPropertySymbols(socket).find((s) => s.description === "[[rid]]");
    if (typeof tryClose !== "function" || ridKey === undefined) return false;
    const rid = (socket as unknown as Record<symbol, unknown>)[ridKey];
    if (typeof rid !== "number") return false;
    tryClose(rid);
    return true;
  } catch {
    return false;
  }
}
