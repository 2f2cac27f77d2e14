/**
 * Fan-out between nodes. A node hands every message and event to its broker;
 * the broker delivers it to every node (this one included), in one order per
 * conversation. {@link LocalBroker} is the single-node broker; the Redis
 * broker (`--redis`) makes several nodes one chat.
 *
 * @module
 */
import type { ChatMessage } from "../../protocol.ts";
import type { Appended, Draft, Store } from "../store/store.ts";

/** Where a message came from, so its node can echo `ref` to the sender's connection only. */
export interface Origin {
  node: string;
  conn: number;
  ref?: string;
}

/** What travels between nodes. */
export type BrokerEvent =
  | { kind: "message"; conv: string; msg: ChatMessage; origin?: Origin }
  | {
    kind: "typing";
    conv: string;
    room?: string;
    to?: string;
    user: string;
    active: boolean;
  }
  | {
    kind: "member";
    user: string;
    room: string;
    joined: boolean;
    ts: string;
    origin?: Origin;
  }
  | {
    kind: "read";
    user: string;
    conv: string;
    room?: string;
    to?: string;
    id: number;
    origin?: Origin;
  }
  | {
    /** A session signed out: its connections close on every node. */
    kind: "signout";
    user: string;
    session: string;
  }
  | {
    /**
     * A session changed its user's password; sent before users.json is
     * written and again after. Every node rereads the file: the session's
     * connections go on with a new token, every other session of the user ends.
     */
    kind: "passwd";
    user: string;
    session: string;
    /** The credential fingerprint the user's tokens carry after the change. */
    fingerprint: string;
  }
  | {
    /** A room's topic changed (`""`: cleared): to the room's members on every node. */
    kind: "topic";
    room: string;
    topic: string;
    user: string;
    ts: string;
  };

/** Called for every event from any node, in delivery order. */
export type BrokerHandler = (event: BrokerEvent) => void;

/** Fan-out and presence across nodes. */
export interface Broker {
  /** This node's id (unique among the nodes sharing a chat). */
  readonly node: string;
  /**
   * Stores the message and delivers it to every node, as one step: messages
   * of a conversation reach every node in id order. Resolves with the stored
   * message once it is durable; rejects (code `unavailable`) when it cannot be.
   *
   * When `origin` carries a ref, the message is stored with
   * {@link Store.appendOnce}: a resend of a message already stored is neither
   * stored nor delivered again, and resolves that message with `fresh`
   * false (the caller acknowledges it to the sender's connection alone).
   */
  publishMessage(draft: Draft, origin: Origin): Promise<Appended>;
  /** Delivers an event to every node. */
  publish(event: BrokerEvent): Promise<void>;
  /** Sets the handler for events from every node. */
  subscribe(handler: BrokerHandler): void;
  /** A user now has a connection on this node. */
  online(user: string): void;
  /** A user has no connection left on this node. */
  offline(user: string): void;
  /** Whether the user is online on any node. */
  isOnline(user: string): boolean;
  /** Users online on any node. */
  onlineUsers(): Iterable<string>;
  /**
   * Sets the handler called when the online set changes, with the user whose
   * status changed where the broker knows it (presence deltas are exact then;
   * without a name the hub compares whole lists).
   */
  onPresence(handler: (user?: string) => void): void;
  /** `"ok"`, or `"degraded"` while the shared backend is unreachable. */
  readonly status: "ok" | "degraded";
  /** Stops delivering and releases connections. */
  close(): Promise<void>;
}

/** The single-node broker: events loop straight back to this node. */
export class LocalBroker implements Broker {
  readonly node = "local";
  readonly status = "ok" as const;
  #store: Store;
  #handler: BrokerHandler = () => {};
  #presence: (user?: string) => void = () => {};
  #online = new Set<string>();

  /** Delivers messages after `store` has kept them. */
  constructor(store: Store) {
    this.#store = store;
  }

  /** Stores, then delivers (a resend: neither); the store resolves appends in order. */
  publishMessage(draft: Draft, origin: Origin): Promise<Appended> {
    // Both ways take the same number of steps, so deliveries keep the store's order.
    const stored = origin.ref === undefined
      ? this.#store.append(draft).then((msg) => ({ msg, fresh: true }))
      : this.#store.appendOnce({ ...draft, ref: origin.ref });
    return stored.then((result) => {
      if (result.fresh) {
        this.#handler({ kind: "message", conv: draft.conv, msg: result.msg, origin });
      }
      return result;
    });
  }

  /** Delivers at once. */
  publish(event: BrokerEvent): Promise<void> {
    try {
      this.#handler(event);
      return Promise.resolve();
    } catch (err) {
      // As a remote broker would: the caller's catch handles it, not the event loop.
      return Promise.reject(err);
    }
  }

  /** Sets the event handler. */
  subscribe(handler: BrokerHandler): void {
    this.#handler = handler;
  }

  /** Marks a user online. */
  online(user: string): void {
    if (this.#online.has(user)) return;
    this.#online.add(user);
    this.#presence(user);
  }

  /** Marks a user offline. */
  offline(user: string): void {
    if (this.#online.delete(user)) this.#presence(user);
  }

  /** Whether the user is online. */
  isOnline(user: string): boolean {
    return this.#online.has(user);
  }

  /** Users online. */
  onlineUsers(): Iterable<string> {
    return this.#online;
  }

  /** Sets the presence handler. */
  onPresence(handler: (user?: string) => void): void {
    this.#presence = handler;
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
