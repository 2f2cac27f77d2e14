/**
 * The Redis broker (`--redis`): several nodes as one chat.
 *
 * - **Fan-out.** Every event goes to one pub/sub channel that every node
 *   subscribes to; Redis delivers a channel's messages to each subscriber in
 *   the order it executed the publishes, so every node sees one order. The
 *   hub delivers each event to its own connections only (a DM reaches only
 *   its two users' connections, wherever they are).
 * - **Messages and changes** are stored and published by one Lua script
 *   each ({@link RedisStore.appendAndPublish}, {@link RedisStore.changeAndPublish}):
 *   position, stored state, feed entry and publish happen as one step, so
 *   every node receives a conversation's messages and changes in `seq` order,
 *   and the sender is acknowledged only after Redis has done all of it. A
 *   resend (same sender and ref, see `Store.appendOnce`) is recognized in
 *   that same step and published nowhere; so is a refused change.
 * - **No gaps, no duplicates.** Every event except typing gets a number from
 *   `evseq` and is kept in the capped stream `feed`. A node delivers event
 *   `n` only after `n - 1`; when one is missing (its subscription dropped, or
 *   a publish was missed) it reads the gap from the feed first, and it drops
 *   numbers it has delivered already. After reconnecting it reads everything
 *   past its last number. Deleting a message removes the feed entries that
 *   hold its text (its creation, its edits): those holes are skipped quietly,
 *   only entries the cap trimmed count as missed. A reply's entry names its
 *   original without quoting it (the original's edits and delete leave it
 *   in place): a node reading it quotes the original as it is then.
 * - **Presence.** Each node keeps `node:<id>` (expiring after `nodeTimeout`)
 *   and `online:<id>` (its users) fresh with a heartbeat and announces
 *   changes at once; a node whose key expired is removed by the next
 *   heartbeat of any other node, so a node killed with `kill -9` has its users
 *   go offline within `nodeTimeout + heartbeat`. Updates carry the node's
 *   version number, so a late snapshot never undoes a newer change.
 * - **Outages.** A dropped connection, or a heartbeat that Redis does not
 *   serve (`LOADING` after a restart, `BUSY`, no answer), makes the node
 *   `degraded` until a heartbeat gets through again; then it catches up.
 *
 * Why this file is over 600 lines: publishing, the subscription, catch-up
 * after a lost link, presence heartbeats and the degraded state are one
 * state machine around two Redis connections; its parts only make sense
 * read together.
 *
 * @module
 */
import type { Broker, BrokerEvent, BrokerHandler, ChangeEvent, Origin } from "./broker.ts";
import type { Logger } from "../log.ts";
import { TurnBatch } from "../turn_batch.ts";
import {
  closeRedis,
  command,
  connectRedis,
  describeError,
  redactUrl,
  type RedisClient,
  type Reply,
  Script,
} from "./redis_client.ts";
import { type RedisStore, toApplied, toMessage } from "../store/redis.ts";
import type { Appended, Change, ChangeResult, Draft } from "../store/store.ts";

/**
 * Numbers a non-message event, keeps it in the feed and publishes it.
 * ARGV: prefix, channel, feedLength, eventJson. Returns the number.
 */
const EMIT = new Script(`
local p = ARGV[1]
local seq = redis.call('INCR', p .. 'evseq')
local payload = seq .. '\\n\\n\\n' .. ARGV[4]
redis.call('XADD', p .. 'feed', 'MAXLEN', '~', ARGV[3], seq .. '-0', 'p', payload)
redis.call('PUBLISH', ARGV[2], payload)
return seq
`);

/**
 * Users came online or went offline on a node, in order. ARGV: prefix,
 * node, ttl ms, version, channel, payload, then user and on (1/0) for each
 * change.
 */
const PRESENCE = new Script(`
local p, node = ARGV[1], ARGV[2]
local set = p .. 'online:' .. node
for i = 7, #ARGV, 2 do
  if ARGV[i + 1] == '1' then redis.call('SADD', set, ARGV[i]) else redis.call('SREM', set, ARGV[i]) end
end
redis.call('PEXPIRE', set, ARGV[3])
redis.call('SET', p .. 'node:' .. node, ARGV[4], 'PX', ARGV[3])
redis.call('SADD', p .. 'nodes', node)
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
`);

/**
 * A node's heartbeat: refreshes its keys and users, removes nodes whose key
 * expired, and returns `{evseq, node, version, count, users…, …}` for the
 * other live nodes. ARGV: prefix, node, ttl ms, version, users…
 */
const HEARTBEAT = new Script(`
local p, node, ttl = ARGV[1], ARGV[2], ARGV[3]
local set = p .. 'online:' .. node
redis.call('SET', p .. 'node:' .. node, ARGV[4], 'PX', ttl)
redis.call('DEL', set)
for i = 5, #ARGV, 1000 do
  redis.call('SADD', set, unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
redis.call('PEXPIRE', set, ttl)
redis.call('SADD', p .. 'nodes', node)
local out = {redis.call('GET', p .. 'evseq') or '0'}
for _, n in ipairs(redis.call('SMEMBERS', p .. 'nodes')) do
  local v = redis.call('GET', p .. 'node:' .. n)
  if not v then
    redis.call('SREM', p .. 'nodes', n)
    redis.call('DEL', p .. 'online:' .. n)
  elseif n ~= node then
    local users = redis.call('SMEMBERS', p .. 'online:' .. n)
    out[#out + 1] = n
    out[#out + 1] = v
    out[#out + 1] = tostring(#users)
    for _, u in ipairs(users) do out[#out + 1] = u end
  end
end
return out
`);

/** A node leaves: its keys go and the others hear at once. ARGV: prefix, node, channel, payload. */
const GONE = new Script(`
local p, node = ARGV[1], ARGV[2]
redis.call('DEL', p .. 'node:' .. node, p .. 'online:' .. node)
redis.call('SREM', p .. 'nodes', node)
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
`);

/**
 * Where the feed stands: `{epoch, evseq}`. The epoch is a random id set once;
 * if it changes, Redis lost its data and the numbers started over.
 * ARGV: prefix, a new epoch to set if there is none.
 */
const SYNC = new Script(`
redis.call('SET', ARGV[1] .. 'epoch', ARGV[2], 'NX')
return {redis.call('GET', ARGV[1] .. 'epoch'), redis.call('GET', ARGV[1] .. 'evseq') or '0'}
`);

/** Broker-internal events on the channel (never handed to the hub). */
type Internal =
  /**
   * One change (`user`, `on`), or several in order (`changes`, from one
   * event-loop turn); `v` is the node's version after the last.
   */
  | {
    kind: "presence";
    node: string;
    v: number;
    user?: string;
    on?: boolean;
    changes?: [string, boolean][];
  }
  | { kind: "gone"; node: string };

/** Options for {@link RedisBroker.start}. */
export interface RedisBrokerOptions {
  /** Redis URL (for the subscriber connection). */
  url: string;
  /** The store whose client and keys the broker shares. */
  store: RedisStore;
  /** Where link losses, reconnections and catch-up problems are reported. */
  log: Logger;
  /** This node's id. @default {a random id} */
  node?: string;
  /** Milliseconds between heartbeats. @default {1000} */
  heartbeat?: number;
  /** Milliseconds without a heartbeat after which a node's users go offline. @default {5000} */
  nodeTimeout?: number;
  /** Events kept in the feed for nodes catching up (approximate). @default {10000} */
  feedLength?: number;
  /** Gives up connecting when aborted (a node stopped while it waits for Redis). */
  signal?: AbortSignal;
}

interface RemoteNode {
  /** Version of `users` (the node's own counter). */
  v: number;
  users: Set<string>;
  /** Heartbeat round during which a live update last arrived. */
  touched: number;
}

const CATCH_UP = Symbol("catch up");
type Item = string | typeof CATCH_UP;

/**
 * Splits a channel payload `seq\nid\nms\njson`: a message's id and time are
 * given by the script that stored it (the event JSON is the draft's), other
 * events have neither. A change's `applied` was written by Lua's cjson, in
 * any key order: it gets `Applied`'s.
 */
function parsePayload(payload: string): { seq: number | null; event: BrokerEvent | Internal } {
  const a = payload.indexOf("\n");
  const b = payload.indexOf("\n", a + 1);
  const c = payload.indexOf("\n", b + 1);
  const seq = a === 0 ? null : Number(payload.slice(0, a));
  const json = JSON.parse(payload.slice(c + 1));
  if (b === a + 1) {
    if (json.kind !== "change") return { seq, event: json };
    const change: ChangeEvent = { kind: "change", applied: toApplied(json.applied) };
    if (json.origin) change.origin = json.origin;
    return { seq, event: change };
  }
  const id = Number(payload.slice(a + 1, b));
  const ms = Number(payload.slice(b + 1, c));
  const event: BrokerEvent = {
    kind: "message",
    conv: json.conv,
    msg: toMessage(id, ms, json.room, json.to, json.from, json.text, json.replyTo, json.files),
  };
  if (json.origin) event.origin = json.origin;
  return { seq, event };
}

/** A {@link Broker} that makes every node sharing a Redis one chat. */
export class RedisBroker implements Broker {
  readonly node: string;
  #store: RedisStore;
  #cmd: RedisClient;
  #sub: RedisClient;
  #log: Logger;
  #url: string;
  #prefix: string;
  #channel: string;
  #timeout: number;
  #heartbeatMs: number;
  #nodeTimeout: number;
  #feedLength: number;

  #handler: BrokerHandler = () => {};
  #presence: (user?: string) => void = () => {};

  /** Random id kept in Redis: a different one means Redis lost its data. */
  #epoch = "";
  /** Last event number delivered; null until the start position is known. */
  #lastSeq: number | null = null;
  /** Newest event number the previous heartbeat saw. */
  #seenTop = 0;
  #inbox: Item[] = [];
  #pumping = false;

  #local = new Set<string>();
  #version = 0;
  /**
   * Presence changes of this event-loop turn: this node knows each at once,
   * Redis and the other nodes at the turn's end, in one script and one
   * message (a storm of sign-ins made a round trip each).
   */
  #presenceWrites = new TurnBatch<[string, boolean]>((changes) => this.#writePresence(changes));
  #remote = new Map<string, RemoteNode>();
  #union = new Set<string>();
  #round = 0;
  #beating = false;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Redis counts as gone: a connection dropped, or it failed a heartbeat (loading, busy…). */
  #degraded = false;
  /** The outage began with a dropped connection (for the line that ends it). */
  #dropped = false;
  #closed = false;

  private constructor(options: RedisBrokerOptions, sub: RedisClient) {
    this.node = options.node ?? crypto.randomUUID().slice(0, 8);
    this.#store = options.store;
    this.#cmd = options.store.client;
    this.#sub = sub;
    this.#log = options.log;
    this.#url = redactUrl(options.url);
    this.#prefix = options.store.prefix;
    this.#channel = `${this.#prefix}events`;
    this.#timeout = options.store.timeout;
    this.#heartbeatMs = options.heartbeat ?? 1000;
    this.#nodeTimeout = options.nodeTimeout ?? 5000;
    this.#feedLength = options.feedLength ?? 10_000;
  }

  /**
   * Subscribes, learns where the event feed stands and starts the heartbeat.
   *
   * @throws {RedisUnavailableError} with one actionable sentence when Redis
   * cannot be used (yet: see its `transient`); an error reply (`LOADING`…)
   * when it stopped answering meanwhile.
   */
  static async start(options: RedisBrokerOptions): Promise<RedisBroker> {
    const ref: { broker?: RedisBroker } = {};
    const sub = await connectRedis(options.url, {
      name: "chat-events",
      onError: (err) => {
        if (ref.broker) ref.broker.#linkError(err);
      },
      signal: options.signal,
    });
    const broker = ref.broker = new RedisBroker(options, sub);
    try {
      await broker.#init();
    } catch (err) {
      await closeRedis(sub);
      throw err;
    }
    return broker;
  }

  async #init(): Promise<void> {
    const cmd = this.#cmd, sub = this.#sub;
    for (const c of [cmd, sub]) {
      c.on("ready", () => this.#linkUp());
      c.on("end", () => this.#checkLink());
    }
    cmd.on("error", (err: Error) => this.#linkError(err));
    await sub.subscribe(this.#channel, (payload: string) => this.#receive(payload));
    const { epoch, top } = await this.#sync();
    this.#epoch = epoch;
    this.#lastSeq = top;
    this.#seenTop = this.#lastSeq;
    await this.#beat();
    this.#timer = setInterval(() => this.#beat(), this.#heartbeatMs);
    this.#pump();
  }

  /** Redis's data epoch (new when Redis lost its data) and the newest event number. */
  async #sync(): Promise<{ epoch: string; top: number }> {
    const [epoch, top] = await SYNC.run(
      this.#cmd,
      [this.#prefix, crypto.randomUUID()],
      this.#timeout,
    ) as [string, string];
    return { epoch, top: Number(top) };
  }

  /**
   * `"degraded"` while either connection to Redis is down, and from a failed
   * heartbeat (Redis loading its data after a restart, busy with a script,
   * not answering) until one gets through again.
   */
  get status(): "ok" | "degraded" {
    return this.#cmd.isReady && this.#sub.isReady && !this.#degraded ? "ok" : "degraded";
  }

  // -------------------------------------------------------------------------
  // Link state

  #linkError(err: Error): void {
    if (this.#closed) return;
    this.#dropped = true;
    this.#down(
      `Lost the connection to Redis at "${this.#url}" (${err.message}): serving local users only, reconnecting`,
    );
  }

  /** A heartbeat failed with the connection up: Redis is loading, busy or stuck. */
  #unanswered(err: unknown): void {
    // A dropped connection reports itself, with a better line.
    if (this.#closed || !this.#cmd.isReady) return;
    this.#down(
      `Redis at "${this.#url}" cannot serve (${
        describeError(err)
      }): serving local users only until it can`,
    );
  }

  /** Enters the degraded state, saying why once per outage. */
  #down(line: string): void {
    if (this.#degraded) return;
    this.#degraded = true;
    this.#log.warn(line);
  }

  #checkLink(): void {
    if (!this.#closed && !(this.#cmd.isReady && this.#sub.isReady) && !this.#degraded) {
      this.#linkError(new Error("connection closed"));
    }
  }

  #linkUp(): void {
    if (this.#closed || !this.#cmd.isReady || !this.#sub.isReady) return;
    // The subscription is live again (node-redis resubscribes before "ready"):
    // whatever was published meanwhile is in the feed.
    this.#inbox.push(CATCH_UP);
    this.#pump();
    // Connected is not serving: after a restart Redis answers LOADING for a
    // while. The outage ends with the first heartbeat that gets through.
    this.#beat();
  }

  /** A heartbeat got through: Redis serves this node again. */
  #answered(): void {
    if (!this.#degraded || this.#closed || !this.#cmd.isReady || !this.#sub.isReady) return;
    this.#degraded = false;
    this.#log.info(
      this.#dropped
        ? `Reconnected to Redis at "${this.#url}"; catching up`
        : `Redis at "${this.#url}" serves again; catching up`,
    );
    this.#dropped = false;
    // Events published while it could not serve us are in the feed.
    if (!this.#inbox.includes(CATCH_UP)) this.#inbox.push(CATCH_UP);
  }

  // -------------------------------------------------------------------------
  // Publishing

  /**
   * Stores the message and publishes it in one script; resolves once Redis
   * accepted both. With a ref, the same script first checks for a resend: a
   * message already stored is neither stored nor published again, so nodes
   * racing the same resend store it once. A reply whose original changed
   * since its quote was taken rejects with `ReplyChanged` (nothing published).
   */
  publishMessage(draft: Draft, origin: Origin): Promise<Appended> {
    const event = (replyTo: Record<string, unknown> | undefined) =>
      JSON.stringify({
        kind: "message",
        conv: draft.conv,
        room: draft.room,
        to: draft.to,
        from: draft.from,
        text: draft.text,
        replyTo,
        files: draft.files,
        origin,
      });
    const reply = draft.replyTo;
    // The quote as stored: the original's `seq` was for the store's check only.
    const json = event(reply && { id: reply.id, from: reply.from, snippet: reply.snippet });
    // The feed keeps a reply without its quote's text, which the original's
    // edits and delete would leave stale there: a node catching up quotes
    // the original as it is then (see #replay).
    const feedJson = reply && event({ id: reply.id, from: reply.from });
    // As many promise steps as publishChange: a conversation's messages and
    // changes resolve in the order Redis ran them.
    return this.#store.appendAndPublish(
      origin.ref === undefined ? draft : { ...draft, ref: origin.ref },
      { channel: this.#channel, feedLength: this.#feedLength, json, feedJson },
    ).then(({ msg, fresh }) => ({ msg, fresh }));
  }

  /**
   * Applies the change and publishes it in one script; resolves once Redis
   * did both (a refusal, or a change with nothing to do, is published nowhere).
   */
  publishChange(change: Change, origin: Origin): Promise<ChangeResult> {
    return this.#store.changeAndPublish(change, {
      channel: this.#channel,
      feedLength: this.#feedLength,
      origin: JSON.stringify(origin),
    }).then((r) => r);
  }

  /** Publishes an event to every node; typing is not kept (it is stale by the time anyone catches up). */
  async publish(event: BrokerEvent): Promise<void> {
    const json = JSON.stringify(event);
    if (event.kind === "typing") {
      await command(this.#cmd, ["PUBLISH", this.#channel, `\n\n\n${json}`], this.#timeout);
      return;
    }
    await EMIT.run(
      this.#cmd,
      [this.#prefix, this.#channel, String(this.#feedLength), json],
      this.#timeout,
    );
  }

  /** Sets the event handler. */
  subscribe(handler: BrokerHandler): void {
    this.#handler = handler;
  }

  // -------------------------------------------------------------------------
  // Receiving, in order

  #receive(payload: string): void {
    if (this.#closed) return;
    this.#inbox.push(payload);
    this.#pump();
  }

  /** Delivers queued events one by one, filling gaps from the feed first. */
  async #pump(): Promise<void> {
    if (this.#pumping || this.#lastSeq === null) return;
    this.#pumping = true;
    try {
      while (this.#inbox.length > 0 && !this.#closed) {
        const item = this.#inbox[0];
        if (item === CATCH_UP) {
          const state = await this.#sync().catch(() => null);
          if (state === null) return; // Retried on the next heartbeat or reconnect.
          if (state.epoch !== this.#epoch || state.top < this.#lastSeq) {
            this.#log.error(
              `Redis at "${this.#url}" lost its data (restarted without appendonly yes?): carrying on from what it holds now`,
            );
            this.#epoch = state.epoch;
            this.#lastSeq = 0;
          }
          if (state.top > this.#lastSeq && !await this.#replay(state.top)) return;
          this.#inbox.shift();
          continue;
        }
        let parsed;
        try {
          parsed = parsePayload(item);
        } catch (err) {
          this.#log.error(`Ignoring a malformed event from Redis: ${(err as Error).message}`);
          this.#inbox.shift();
          continue;
        }
        const { seq, event } = parsed;
        if (seq !== null) {
          if (seq <= this.#lastSeq) {
            this.#inbox.shift();
            continue;
          }
          if (seq > this.#lastSeq + 1) {
            if (!await this.#replay(seq - 1)) return;
            continue;
          }
          this.#lastSeq = seq;
        }
        this.#inbox.shift();
        this.#deliver(event);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Delivers feed events after the last one delivered, up to `to`; false if Redis failed. */
  async #replay(to: number): Promise<boolean> {
    while (this.#lastSeq! < to && !this.#closed) {
      let entries: Reply[];
      try {
        entries = await command(this.#cmd, [
          "XRANGE",
          `${this.#prefix}feed`,
          String(this.#lastSeq! + 1),
          String(to),
          "COUNT",
          "500",
        ], this.#timeout) as Reply[];
      } catch (err) {
        this.#log.warn(`Could not catch up from Redis yet: ${(err as Error).message}`);
        return false;
      }
      if (entries.length === 0) {
        if (!await this.#hole(this.#lastSeq! + 1, to)) return false;
        this.#lastSeq = to;
        break;
      }
      for (const entry of entries) {
        const [id, fields] = entry as [string, string[]];
        const seq = parseInt(id);
        if (seq > this.#lastSeq! + 1) {
          if (!await this.#hole(this.#lastSeq! + 1, seq - 1)) return false;
          this.#lastSeq = seq - 1;
        }
        let event;
        try {
          event = parsePayload(fields[1]).event;
        } catch (err) {
          this.#log.error(`Ignoring a malformed event from Redis: ${(err as Error).message}`);
          this.#lastSeq = seq;
          continue;
        }
        if (event.kind === "message" && event.msg.replyTo) {
          // The feed names a reply's original without quoting it: quoted as
          // it is now (edited, deleted…), as a page would bring the reply.
          try {
            event = { ...event, msg: await this.#store.quoteNow(event.conv, event.msg) };
          } catch (err) {
            this.#log.warn(`Could not catch up from Redis yet: ${(err as Error).message}`);
            return false;
          }
        }
        this.#lastSeq = seq;
        this.#deliver(event);
      }
    }
    return true;
  }

  /**
   * Events `from`-`to` are missing from the feed: says so for those its cap
   * trimmed, which are lost to this node. The others are entries of messages
   * deleted since (their text must not stay in Redis): nothing was missed,
   * their `deleted` change follows. Trimming removes the oldest entries only,
   * so the feed's first entry tells one from the other. False if Redis failed.
   */
  async #hole(from: number, to: number): Promise<boolean> {
    let first: Reply[];
    try {
      first = await command(
        this.#cmd,
        ["XRANGE", `${this.#prefix}feed`, "-", "+", "COUNT", "1"],
        this.#timeout,
      ) as Reply[];
    } catch (err) {
      this.#log.warn(`Could not catch up from Redis yet: ${(err as Error).message}`);
      return false;
    }
    const kept = first.length > 0 ? parseInt((first[0] as [string])[0]) : Infinity;
    const lost = Math.min(to, kept - 1);
    if (lost >= from) {
      this.#log.error(
        `Events ${from}-${lost} are no longer in the feed: some live updates were missed (history is complete)`,
      );
    }
    return true;
  }

  #deliver(event: BrokerEvent | Internal): void {
    // A catch-up read in flight when close() was called ends here.
    if (this.#closed) return;
    switch (event.kind) {
      case "presence":
        return this.#onPresence(event);
      case "gone":
        if (event.node !== this.node && this.#remote.delete(event.node)) this.#recompute();
        return;
      default:
        try {
          this.#handler(event);
        } catch (err) {
          this.#log.error(`Handling a ${event.kind} event failed: ${(err as Error).stack ?? err}`);
        }
    }
  }

  // -------------------------------------------------------------------------
  // Presence

  /** Marks a user online here and tells the other nodes. */
  online(user: string): void {
    if (this.#local.has(user)) return;
    this.#local.add(user);
    this.#changed(user, true);
  }

  /** Marks a user offline here and tells the other nodes. */
  offline(user: string): void {
    if (!this.#local.delete(user)) return;
    this.#changed(user, false);
  }

  /** Whether the user is online on any node. */
  isOnline(user: string): boolean {
    return this.#union.has(user);
  }

  /** Users online on any node. */
  onlineUsers(): Iterable<string> {
    return this.#union;
  }

  /** Sets the presence handler. */
  onPresence(handler: (user?: string) => void): void {
    this.#presence = handler;
  }

  #changed(user: string, on: boolean): void {
    ++this.#version;
    this.#recomputeOne(user);
    if (this.#closed) return;
    // A failure is repaired by the next heartbeat, which writes the whole set.
    this.#presenceWrites.add([user, on]).catch(() => {});
  }

  /** Writes a turn's presence changes and tells the other nodes, in one script. */
  async #writePresence(changes: [string, boolean][]): Promise<void> {
    if (this.#closed) return;
    // Every change of the turn is in: the version now is the last one's.
    const v = this.#version;
    const event: Internal = changes.length === 1
      ? { kind: "presence", node: this.node, user: changes[0][0], on: changes[0][1], v }
      : { kind: "presence", node: this.node, changes, v };
    const args = [
      this.#prefix,
      this.node,
      String(this.#nodeTimeout),
      String(v),
      this.#channel,
      `\n\n\n${JSON.stringify(event)}`,
    ];
    for (const [user, on] of changes) args.push(user, on ? "1" : "0");
    await PRESENCE.run(this.#cmd, args, this.#timeout);
  }

  #onPresence(e: Internal & { kind: "presence" }): void {
    if (e.node === this.node) return;
    let n = this.#remote.get(e.node);
    if (!n) {
      n = { v: 0, users: new Set(), touched: this.#round };
      this.#remote.set(e.node, n);
    }
    n.touched = this.#round;
    if (e.v <= n.v) return;
    n.v = e.v;
    const changes = e.changes ?? (e.user === undefined ? [] : [[e.user, e.on === true] as const]);
    for (const [user, on] of changes) {
      if (on) n.users.add(user);
      else n.users.delete(user);
      this.#recomputeOne(user);
    }
  }

  /**
   * One user's status after a change of theirs, in O(nodes): rebuilding the
   * whole set per sign-in made a storm of N sign-ins cost O(N²).
   */
  #recomputeOne(user: string): void {
    let on = this.#local.has(user);
    if (!on) {
      for (const n of this.#remote.values()) {
        if (n.users.has(user)) {
          on = true;
          break;
        }
      }
    }
    if (on === this.#union.has(user)) return;
    if (on) this.#union.add(user);
    else this.#union.delete(user);
    this.#presence(user);
  }

  /**
   * Rebuilds the set of online users (after a heartbeat replaced what other
   * nodes hold, or a node went); calls the presence handler for each change.
   */
  #recompute(): void {
    const next = new Set(this.#local);
    for (const n of this.#remote.values()) for (const u of n.users) next.add(u);
    // Name every user whose status changed: presence deltas stay exact.
    const changed: string[] = [];
    for (const u of next) if (!this.#union.has(u)) changed.push(u);
    for (const u of this.#union) if (!next.has(u)) changed.push(u);
    this.#union = next;
    for (const u of changed) this.#presence(u);
  }

  async #beat(): Promise<void> {
    if (this.#beating || this.#closed || !this.#cmd.isReady) return;
    this.#beating = true;
    const round = ++this.#round;
    try {
      const out = await HEARTBEAT.run(this.#cmd, [
        this.#prefix,
        this.node,
        String(this.#nodeTimeout),
        String(this.#version),
        ...this.#local,
      ], this.#timeout) as string[];
      if (this.#closed) return;
      this.#answered();
      const live = new Set<string>();
      for (let i = 1; i < out.length;) {
        const node = out[i], v = Number(out[i + 1]), count = Number(out[i + 2]);
        const users = out.slice(i + 3, i + 3 + count);
        i += 3 + count;
        live.add(node);
        const known = this.#remote.get(node);
        if (!known) this.#remote.set(node, { v, users: new Set(users), touched: 0 });
        else if (v >= known.v) {
          known.v = v;
          known.users = new Set(users);
        }
      }
      for (const [node, n] of this.#remote) {
        // A node heard from after this heartbeat was sent may simply be new.
        if (!live.has(node) && n.touched < round) this.#remote.delete(node);
      }
      this.#recompute();
      // Safety net: events a whole heartbeat old that never arrived are read from the feed.
      const top = Number(out[0]);
      if (
        this.#lastSeq !== null && this.#lastSeq < this.#seenTop && !this.#inbox.includes(CATCH_UP)
      ) this.#inbox.push(CATCH_UP);
      this.#seenTop = top;
      this.#pump();
    } catch (err) {
      // The next beat retries.
      this.#unanswered(err);
    } finally {
      this.#beating = false;
    }
  }

  /** Leaves: removes this node's presence, unsubscribes and closes the event connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    const payload = `\n\n\n${JSON.stringify({ kind: "gone", node: this.node })}`;
    if (this.#cmd.isReady) {
      await GONE.run(this.#cmd, [this.#prefix, this.node, this.#channel, payload], this.#timeout)
        .catch(() => {});
    }
    await closeRedis(this.#sub);
  }
}
