/**
 * Fan-out between nodes. A node hands every message and event to its broker;
 * the broker delivers it to every node (this one included), in one order per
 * conversation. {@link LocalBroker} is the single-node broker; the Redis
 * broker (`--redis`) makes several nodes one chat.
 *
 * @module
 */
import type { ChatMessage } from "../../protocol.ts";
import type {
  Appended,
  Applied,
  Change,
  ChangeResult,
  Draft,
  RoomSettings,
  Store,
} from "../store/store.ts";

/** Where a message came from, so its node can echo `ref` to the sender's connection only. */
export interface Origin {
  /** The sending connection's node ({@link Broker.node}). */
  node: string;
  /** The sending connection's id on that node. */
  conn: number;
  /** The `ref` of the client's frame, echoed on the sender's copy. */
  ref?: string;
}

/** A stored message, delivered after the store kept it. */
export interface ChatMessageEvent {
  /** Always `"message"`. */
  kind: "message";
  /** Conversation key (see `conversationKey`). */
  conv: string;
  /** The message as stored, with its id and timestamp. */
  msg: ChatMessage;
  /** The sending connection. */
  origin?: Origin;
}

/** A message changed (edited, deleted, a reaction): delivered after the store applied it. */
export interface ChangeEvent {
  /** Always `"change"`. */
  kind: "change";
  /** What changed, with its position. */
  applied: Applied;
  /** The connection that asked, to echo its `ref`. */
  origin?: Origin;
}

/** Someone started or stopped typing in a room (`room`) or to a user (`to`). Never kept. */
export interface TypingEvent {
  /** Always `"typing"`. */
  kind: "typing";
  /** Conversation key (see `conversationKey`). */
  conv: string;
  /** The room, for a room. */
  room?: string;
  /** The recipient, for a direct message. */
  to?: string;
  /** Who is typing. */
  user: string;
  /** Whether they started (true) or stopped. */
  active: boolean;
}

/** A user joined or left a room. */
export interface MemberEvent {
  /** Always `"member"`. */
  kind: "member";
  /** Who joined or left. */
  user: string;
  /** The room. */
  room: string;
  /** True for a join, false for a leave. */
  joined: boolean;
  /** ISO-8601 UTC. */
  ts: string;
  /**
   * The last message id the joining connection has (its `join` + `since`):
   * that connection's `joined` replays from there. Only with `joined` and `origin`.
   */
  since?: number;
  /** The connection that joined or left. */
  origin?: Origin;
  /** For a leave: the admin who removed the user (a `kick`); for a join: who added them (an `invite`). */
  by?: string;
  /**
   * How many members the room has after the change, when the node that made
   * it knows: it decides whether the change is posted (`--announce-below`).
   */
  count?: number;
  /**
   * Applied on this node only, and posted nowhere: the user was a member
   * already (another node's join won the race and told everyone).
   */
  quiet?: boolean;
}

/** An admin changed what kind of room a room is. */
export interface RoomEvent {
  /** Always `"room"`. */
  kind: "room";
  /** The room. */
  room: string;
  /** Its settings from now on. */
  settings: RoomSettings;
  /** The admin. */
  by: string;
}

/** An admin renamed a room: everything of it is under `name` from now on. */
export interface RenamedEvent {
  /** Always `"renamed"`. */
  kind: "renamed";
  /** The room's old name. */
  room: string;
  /** Its new name. */
  name: string;
  /** The admin. */
  by: string;
  /** The admin's connection (answered with the request's ref instead). */
  origin?: Origin;
}

/** An admin lifted a user's ban. */
export interface UnbanEvent {
  /** Always `"unban"`. */
  kind: "unban";
  /** The user. */
  user: string;
}

/** An admin banned a user: their connections close on every node. */
export interface BanEvent {
  /** Always `"ban"`. */
  kind: "ban";
  /** The banned user. */
  user: string;
  /** The reason given, if any. */
  reason?: string;
  /** When the ban ends (ms since the epoch); absent: until lifted. */
  until?: number;
}

/** A user read a conversation up to `id`. */
export interface ReadEvent {
  /** Always `"read"`. */
  kind: "read";
  /** Who read. */
  user: string;
  /** Conversation key (see `conversationKey`). */
  conv: string;
  /** The room, for a room. */
  room?: string;
  /** The peer, for a direct-message conversation. */
  to?: string;
  /** The newest message id read. */
  id: number;
  /** The connection that read; the user's other connections are told. */
  origin?: Origin;
}

/** A session signed out: its connections close on every node. */
export interface SignoutEvent {
  /** Always `"signout"`. */
  kind: "signout";
  /** The session's user. */
  user: string;
  /** The session that ended. */
  session: string;
}

/**
 * A session changed its user's password; sent before users.json is
 * written and again after. Every node rereads the file: the session's
 * connections go on with a new token, every other session of the user ends.
 */
export interface PasswdEvent {
  /** Always `"passwd"`. */
  kind: "passwd";
  /** The user whose password changed. */
  user: string;
  /** The session that changed it: the only one that goes on. */
  session: string;
  /** The credential fingerprint the user's tokens carry after the change. */
  fingerprint: string;
}

/** A room's topic changed (`""`: cleared): to the room's members on every node. */
export interface TopicEvent {
  /** Always `"topic"`. */
  kind: "topic";
  /** The room. */
  room: string;
  /** The new topic; `""` when cleared. */
  topic: string;
  /** Who changed it. */
  user: string;
  /** ISO-8601 UTC. */
  ts: string;
}

/** What travels between nodes: a union on `kind`. */
export type BrokerEvent =
  | ChatMessageEvent
  | ChangeEvent
  | TypingEvent
  | MemberEvent
  | ReadEvent
  | SignoutEvent
  | PasswdEvent
  | TopicEvent
  | BanEvent
  | UnbanEvent
  | RoomEvent
  | RenamedEvent;

/** Called for every event from any node, in delivery order. */
export type BrokerHandler = (event: BrokerEvent) => void;

/**
 * Who is online on any node. A user is online on a node from
 * {@link Presence.online} until {@link Presence.offline}; the handler hears
 * of every change of the union, this node's own changes at once.
 */
export interface Presence {
  /** A user now has a connection on this node (again: no change). */
  online(user: string): void;
  /** A user has no connection left on this node (not online here: no change). */
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
}

/** Fan-out across nodes, and presence. */
export interface Broker extends Presence {
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
  /**
   * Applies the change in the store and delivers it to every node, as one
   * step: a conversation's changes and messages reach every node in `seq`
   * order. Resolves with what the store did (a refusal or a no-op is
   * delivered nowhere); rejects (code `unavailable`) when it cannot be kept.
   */
  publishChange(change: Change, origin: Origin): Promise<ChangeResult>;
  /**
   * Delivers an event to every node, this one included: after the events of
   * earlier calls, and after the messages whose `publishMessage` resolved.
   */
  publish(event: BrokerEvent): Promise<void>;
  /** Sets the handler for events from every node. */
  subscribe(handler: BrokerHandler): void;
  /** `"ok"`, or `"degraded"` while the shared backend is unreachable. */
  readonly status: "ok" | "degraded";
  /** Stops delivering and releases connections. */
  close(): Promise<void>;
}

/** A store call waiting for its turn to be delivered (see `LocalBroker`). */
interface Turn {
  settled: boolean;
  /** What to deliver; null for a failure, a resend or a refused change. */
  event: BrokerEvent | null;
}

/** The single-node broker: events loop straight back to this node. */
export class LocalBroker implements Broker {
  readonly node = "local";
  readonly status = "ok" as const;
  #store: Store;
  #handler: BrokerHandler = () => {};
  #presence: (user?: string) => void = () => {};
  #online = new Set<string>();
  #closed = false;
  /** Store calls in call order, each delivered once it and those before it settled. */
  #turns: Turn[] = [];

  /** Delivers messages after `store` has kept them. */
  constructor(store: Store) {
    this.#store = store;
  }

  /** Stores, then delivers (a resend: neither), in the order of the calls. */
  publishMessage(draft: Draft, origin: Origin): Promise<Appended> {
    const stored = origin.ref === undefined
      ? this.#store.append(draft).then((msg) => ({ msg, fresh: true }))
      : this.#store.appendOnce({ ...draft, ref: origin.ref });
    return this.#inTurn(
      stored,
      (result) =>
        result.fresh ? { kind: "message", conv: draft.conv, msg: result.msg, origin } : null,
    );
  }

  /** Applies, then delivers (refused or nothing to do: nowhere), in the order of the calls. */
  publishChange(change: Change, origin: Origin): Promise<ChangeResult> {
    return this.#inTurn(
      this.#store.change(change),
      (result) =>
        result.ok && result.applied ? { kind: "change", applied: result.applied, origin } : null,
    );
  }

  /**
   * Delivers what `work` stored once it and every store call made before it
   * have settled. The store gives positions in call order, so delivering in
   * call order is delivering in `seq` order — by construction, not by
   * counting promise steps.
   */
  #inTurn<T>(work: Promise<T>, eventOf: (result: T) => BrokerEvent | null): Promise<T> {
    const turn: Turn = { settled: false, event: null };
    this.#turns.push(turn);
    return work.then(
      (result) => {
        turn.event = eventOf(result);
        turn.settled = true;
        this.#deliverSettled();
        return result;
      },
      (err) => {
        turn.settled = true;
        this.#deliverSettled();
        throw err;
      },
    );
  }

  #deliverSettled(): void {
    let failed: unknown = null;
    while (this.#turns.length > 0 && this.#turns[0].settled) {
      const { event } = this.#turns.shift()!;
      try {
        if (event && !this.#closed) this.#handler(event);
      } catch (err) {
        // The rest still goes out; the caller whose turn ran hears of it.
        failed ??= err;
      }
    }
    if (failed !== null) throw failed;
  }

  /** Delivers at once (once closed: nowhere). */
  publish(event: BrokerEvent): Promise<void> {
    if (this.#closed) return Promise.resolve();
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

  /** Stops delivering, as the Redis broker does once its subscription is closed. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}
