/**
 * Which of this node's connections receive each room's frames, and which are
 * waiting for their `joined` (live messages are held for those, bounded).
 * The routing table of the hub's fan-out, shared with the `join` command,
 * which rewires it.
 *
 * @module
 */
import type { Conn } from "./conn.ts";

/** A live frame held for a connection while its `joined` is on its way. */
export interface Buffered {
  /** The frame's position in the conversation (a message's id, a change's seq); 0 for a topic. */
  seq: number;
  text: string;
  /**
   * Sent after `joined` whatever its history holds: the sender's own copy,
   * carrying its `ref` (the acknowledgement), or a topic change.
   */
  own: boolean;
  /** A topic change (only the latest is held): the `joined` may predate it. */
  topic?: true;
}

export interface Route {
  /** Connections of local members that receive the room's frames. */
  conns: Set<Conn>;
  /** Connections waiting for their `joined` frame; live messages wait here. */
  joining: Map<Conn, Buffered[]>;
  /**
   * Connections whose `joined` reflected the room up to a position (`seq`)
   * this node had not delivered yet (its store read ran ahead of the
   * broker): live changes at or below it are not sent to them again. Each
   * goes once a change at or past its position has come by.
   */
  floors: Map<Conn, number>;
}

/**
 * The connections of `route` that get a live change at position `seq`, and
 * the ones left out because their `joined` already reflected it (null when
 * none). Forgets the floors that change reaches.
 */
export function receivers(
  route: Route,
  seq: number,
): { conns: Iterable<Conn>; skipped: Set<Conn> | null } {
  if (route.floors.size === 0) return { conns: route.conns, skipped: null };
  let skipped: Set<Conn> | null = null;
  for (const [c, floor] of route.floors) {
    if (seq <= floor) (skipped ??= new Set()).add(c);
    if (seq >= floor) route.floors.delete(c);
  }
  if (skipped === null) return { conns: route.conns, skipped };
  const left = skipped;
  return { conns: [...route.conns].filter((c) => !left.has(c)), skipped };
}

/** Live messages held for one connection while its `joined` waits. */
const MAX_JOIN_BUFFER = 1000;

/** Join buffers that reached {@link MAX_JOIN_BUFFER} and dropped messages. */
const overflowedBuffers = new WeakSet<Buffered[]>();

/**
 * Holds a live frame for a connection whose `joined` is on its way. A join
 * that waits long (its socket is full) holds a bounded number; past it the
 * client pages from its `joined` (which then says `more`). The sender's own
 * copy is always held.
 */
export function hold(held: Buffered[], frame: Buffered): void {
  if (!frame.own && held.length >= MAX_JOIN_BUFFER) {
    overflowedBuffers.add(held);
    return;
  }
  held.push(frame);
}

/** Whether {@link hold} dropped frames from `held`. */
export function overflowed(held: Buffered[]): boolean {
  return overflowedBuffers.has(held);
}

/** The routing table: room → connections here that receive or await it. */
export class Routes {
  #routes = new Map<string, Route>();

  /** Number of rooms routed. */
  get size(): number {
    return this.#routes.size;
  }

  /** The room's route, if any connection here receives or awaits it. */
  get(room: string): Route | undefined {
    return this.#routes.get(room);
  }

  /** The room's route, created if there is none. */
  route(room: string): Route {
    let r = this.#routes.get(room);
    if (!r) {
      r = { conns: new Set(), joining: new Map(), floors: new Map() };
      this.#routes.set(room, r);
    }
    return r;
  }

  /** Stops routing the room's frames to `conn`. */
  unroute(room: string, conn: Conn): void {
    const r = this.#routes.get(room);
    if (!r) return;
    r.conns.delete(conn);
    r.joining.delete(conn);
    r.floors.delete(conn);
    this.dropIfUnused(room);
  }

  /**
   * Moves the room's route to its new name (a rename), joining any route the
   * new name has here already; resolves the route under the new name, if any.
   */
  rename(room: string, to: string): Route | undefined {
    const r = this.#routes.get(room);
    if (!r) return this.#routes.get(to);
    this.#routes.delete(room);
    const there = this.#routes.get(to);
    if (!there) {
      this.#routes.set(to, r);
      return r;
    }
    for (const c of r.conns) there.conns.add(c);
    for (const [c, held] of r.joining) if (!there.joining.has(c)) there.joining.set(c, held);
    for (const [c, floor] of r.floors) if (!there.floors.has(c)) there.floors.set(c, floor);
    return there;
  }

  /** Forgets a room's route once no connection here receives or awaits it. */
  dropIfUnused(room: string): void {
    const r = this.#routes.get(room);
    if (r && r.conns.size === 0 && r.joining.size === 0) this.#routes.delete(room);
  }
}
