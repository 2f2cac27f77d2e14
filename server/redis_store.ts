/**
 * The Redis store (`--redis`): the chat's durable state, shared by every
 * node. Each conversation's history is a Redis Stream capped at `keep`
 * entries whose stream ids are the message ids (`17-0`), so `before`/`since`
 * are plain range reads and the oldest kept id says whether `since` has a gap.
 *
 * Keys (all under `prefix`, `chat:` by default):
 *
 * | key              | type   | holds                                   |
 * | ---------------- | ------ | --------------------------------------- |
 * | `seq`            | hash   | conversation → newest message id        |
 * | `ms`             | hash   | conversation → newest timestamp (ms)    |
 * | `log:<conv>`     | stream | the kept messages of a conversation     |
 * | `dms:<user>`     | set    | DM conversation keys the user is in     |
 * | `rooms`          | hash   | room → creator                          |
 * | `created`        | hash   | user → number of rooms created          |
 * | `members:<room>` | set    | members of a room                       |
 * | `in:<user>`      | set    | rooms of a user                         |
 * | `read:<user>`    | hash   | conversation → read marker              |
 * | `users`          | set    | users who ever signed in                |
 *
 * The broker's keys (`evseq`, `feed`, `node:*`, `online:*`, `nodes`) live
 * under the same prefix; see `redis_broker.ts`.
 *
 * @module
 */
import type { ChatMessage, Conversation } from "./protocol.ts";
import {
  closeRedis,
  command,
  connectRedis,
  type RedisClient,
  type Reply,
  Script,
} from "./redis_client.ts";
import {
  dmPair,
  type Draft,
  type JoinResult,
  type Page,
  type PageQuery,
  type RoomInfo,
  type SearchScope,
  searchWords,
  type Store,
} from "./store.ts";

/**
 * Gives a message the next id of its conversation and Redis's clock (never
 * earlier than the conversation's previous message), appends it to the capped
 * stream, and, when a channel is given, numbers it in the event feed, keeps it
 * there and publishes it: one atomic step, so every node sees a conversation's
 * messages in id order.
 *
 * ARGV: prefix, conv, keep, dmA, dmB, channel, feedLength, eventJson, fields…
 */
const APPEND = new Script(`
local p, conv = ARGV[1], ARGV[2]
local id = redis.call('HINCRBY', p .. 'seq', conv, 1)
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = tonumber(redis.call('HGET', p .. 'ms', conv) or '0')
if ms < prev then ms = prev end
redis.call('HSET', p .. 'ms', conv, ms)
redis.call('XADD', p .. 'log:' .. conv, 'MAXLEN', ARGV[3], id .. '-0', 'ms', ms, unpack(ARGV, 9))
if ARGV[4] ~= '' then
  redis.call('SADD', p .. 'dms:' .. ARGV[4], conv)
  redis.call('SADD', p .. 'dms:' .. ARGV[5], conv)
end
local seq = 0
if ARGV[6] ~= '' then
  seq = redis.call('INCR', p .. 'evseq')
  local payload = seq .. '\\n' .. id .. '\\n' .. ms .. '\\n' .. ARGV[8]
  redis.call('XADD', p .. 'feed', 'MAXLEN', '~', ARGV[7], seq .. '-0', 'p', payload)
  redis.call('PUBLISH', ARGV[6], payload)
end
return {id, ms, seq}
`);

/**
 * The oldest kept id (or newest + 1 when nothing is kept) and a range of
 * entries. ARGV: prefix, conv, command (XRANGE/XREVRANGE), start, end, count.
 */
const PAGE = new Script(`
local key = ARGV[1] .. 'log:' .. ARGV[2]
local first = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
local oldest
if #first > 0 then
  oldest = tonumber(string.match(first[1][1], '^(%d+)'))
else
  oldest = tonumber(redis.call('HGET', ARGV[1] .. 'seq', ARGV[2]) or '0') + 1
end
local entries = {}
if ARGV[6] ~= '0' then
  entries = redis.call(ARGV[3], key, ARGV[4], ARGV[5], 'COUNT', ARGV[6])
end
return {oldest, entries}
`);

/** ARGV: prefix, user, room. Returns {added, created}. */
const JOIN = new Script(`
local p, user, room = ARGV[1], ARGV[2], ARGV[3]
local created = redis.call('HSETNX', p .. 'rooms', room, user)
if created == 1 then redis.call('HINCRBY', p .. 'created', user, 1) end
local added = redis.call('SADD', p .. 'members:' .. room, user)
redis.call('SADD', p .. 'in:' .. user, room)
return {added, created}
`);

/** ARGV: prefix, user, room. Returns 1 if the user was a member. */
const LEAVE = new Script(`
redis.call('SREM', ARGV[1] .. 'in:' .. ARGV[2], ARGV[3])
return redis.call('SREM', ARGV[1] .. 'members:' .. ARGV[3], ARGV[2])
`);

/** ARGV: prefix. Returns {room, members, room, members, …}. */
const ROOMS = new Script(`
local out = {}
for _, room in ipairs(redis.call('HKEYS', ARGV[1] .. 'rooms')) do
  out[#out + 1] = room
  out[#out + 1] = redis.call('SCARD', ARGV[1] .. 'members:' .. room)
end
return out
`);

/** ARGV: prefix, user. Returns {kind, conv, last, read, …} with kind r (room) or d (DM). */
const CONVERSATIONS = new Script(`
local p, user = ARGV[1], ARGV[2]
local out = {}
local function add(kind, conv)
  out[#out + 1] = kind
  out[#out + 1] = conv
  out[#out + 1] = redis.call('HGET', p .. 'seq', conv) or '0'
  out[#out + 1] = redis.call('HGET', p .. 'read:' .. user, conv) or '0'
end
for _, room in ipairs(redis.call('SMEMBERS', p .. 'in:' .. user)) do add('r', room) end
for _, conv in ipairs(redis.call('SMEMBERS', p .. 'dms:' .. user)) do add('d', conv) end
return out
`);

/** ARGV: prefix, user, conv, id. Moves the marker forward, never past the newest id. */
const SET_READ = new Script(`
local p, user, conv = ARGV[1], ARGV[2], ARGV[3]
local last = tonumber(redis.call('HGET', p .. 'seq', conv) or '0')
local cur = tonumber(redis.call('HGET', p .. 'read:' .. user, conv) or '0')
local want = tonumber(ARGV[4])
if want > last then want = last end
if want > cur then
  redis.call('HSET', p .. 'read:' .. user, conv, want)
  cur = want
end
return cur
`);

/** Options for {@link RedisStore}. */
export interface RedisStoreOptions {
  /** Prefix of every key, so several chats can share one Redis. @default {"chat:"} */
  prefix?: string;
  /** Messages kept per conversation. @default {200} */
  keep?: number;
  /** Milliseconds a command may take before it fails. @default {5000} */
  timeout?: number;
  /** Close the client in {@link RedisStore.close}. @default {false} */
  ownsClient?: boolean;
}

/** Where {@link RedisStore.appendAndPublish} announces a message. */
export interface PublishTarget {
  /** Pub/sub channel. */
  channel: string;
  /** Approximate number of events the feed keeps for nodes catching up. */
  feedLength: number;
  /**
   * The event as JSON without its id and time (`{"kind":"message",…}`); the
   * script prefixes `seq\nid\nms\n`.
   */
  json: string;
}

/** A message stored and published. */
export interface Published {
  msg: ChatMessage;
  /** Its number in the event feed. */
  seq: number;
}

/** Builds a message from a stream entry `[id, [field, value, …]]`. */
function fromEntry(entry: Reply): ChatMessage {
  const [sid, fields] = entry as [string, string[]];
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  return toMessage(parseInt(sid), Number(f.ms), f.r, f.t, f.f, f.x);
}

/** A message with the memory store's key order (the wire shows it). */
export function toMessage(
  id: number,
  ms: number,
  room: string | undefined,
  to: string | undefined,
  from: string,
  text: string,
): ChatMessage {
  const ts = new Date(ms).toISOString();
  return room !== undefined ? { id, room, from, text, ts } : { id, to, from, text, ts };
}

/** A {@link Store} in Redis, shared by every node of a chat. */
export class RedisStore implements Store {
  #client: RedisClient;
  #prefix: string;
  #keep: number;
  #timeout: number;
  #owns: boolean;

  /** Uses a connected client (see {@link connectRedis}). */
  constructor(client: RedisClient, options: RedisStoreOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "chat:";
    this.#keep = options.keep ?? 200;
    this.#timeout = options.timeout ?? 5000;
    this.#owns = options.ownsClient ?? false;
  }

  /**
   * Connects to `url` and returns a store that owns its client.
   *
   * @throws {Error} with one actionable sentence when Redis cannot be reached.
   */
  static async connect(
    url: string,
    options: Omit<RedisStoreOptions, "ownsClient"> & { onError?: (err: Error) => void } = {},
  ): Promise<RedisStore> {
    const client = await connectRedis(url, { name: "chat-store", onError: options.onError });
    return new RedisStore(client, { ...options, ownsClient: true });
  }

  /** The client (the broker shares it for its commands). */
  get client(): RedisClient {
    return this.#client;
  }

  /** The key prefix. */
  get prefix(): string {
    return this.#prefix;
  }

  /** Milliseconds a command may take. */
  get timeout(): number {
    return this.#timeout;
  }

  #call(args: string[]): Promise<Reply> {
    return command(this.#client, args, this.#timeout);
  }

  #run(script: Script, args: string[]): Promise<Reply> {
    return script.run(this.#client, [this.#prefix, ...args], this.#timeout);
  }

  async #append(draft: Draft, target?: PublishTarget): Promise<Published> {
    const pair = dmPair(draft.conv);
    const fields = draft.room !== undefined
      ? ["r", draft.room, "f", draft.from, "x", draft.text]
      : ["t", draft.to!, "f", draft.from, "x", draft.text];
    const reply = await this.#run(APPEND, [
      draft.conv,
      String(this.#keep),
      pair?.[0] ?? "",
      pair?.[1] ?? "",
      target?.channel ?? "",
      String(target?.feedLength ?? 0),
      target?.json ?? "",
      ...fields,
    ]) as number[];
    const [id, ms, seq] = reply;
    return { msg: toMessage(id, ms, draft.room, draft.to, draft.from, draft.text), seq };
  }

  /** Appends a message; resolves once Redis has accepted it. */
  async append(draft: Draft): Promise<ChatMessage> {
    return (await this.#append(draft)).msg;
  }

  /**
   * Appends a message and publishes it in the same script (see the broker):
   * resolves once Redis has done both.
   */
  appendAndPublish(draft: Draft, target: PublishTarget): Promise<Published> {
    return this.#append(draft, target);
  }

  /** A page of history from the conversation's stream. */
  async page(conv: string, query: PageQuery): Promise<Page> {
    const n = String(query.limit + 1);
    let args: string[];
    if (query.since !== undefined) {
      args = ["XRANGE", String(query.since + 1), "+", n];
    } else if (query.before !== undefined) {
      args = query.before <= 1 ? ["XREVRANGE", "+", "-", "0"] : [
        "XREVRANGE",
        String(query.before - 1),
        "-",
        n,
      ];
    } else {
      args = ["XREVRANGE", "+", "-", n];
    }
    const [oldest, entries] = await this.#run(PAGE, [conv, ...args]) as [number, Reply[]];
    let messages = entries.map(fromEntry);
    const more = messages.length > query.limit;
    if (more) messages = messages.slice(0, query.limit);
    if (args[0] === "XREVRANGE") messages.reverse();
    const gap = query.since !== undefined && query.since < oldest - 1;
    return { messages, more, gap };
  }

  /** Scans the kept messages of the visible conversations, newest first. */
  async search(q: string, scope: SearchScope): Promise<ChatMessage[]> {
    const words = searchWords(q);
    const convs = new Set(scope.rooms);
    const dms = await this.#call(["SMEMBERS", `${this.#prefix}dms:${scope.user}`]) as string[];
    for (const c of dms) convs.add(c);
    const wanted = [...convs].filter((c) => scope.conv === undefined || c === scope.conv);
    const logs = await Promise.all(
      wanted.map((c) => this.#call(["XREVRANGE", `${this.#prefix}log:${c}`, "+", "-"])),
    );
    const found: ChatMessage[] = [];
    for (const entries of logs) {
      let n = 0;
      for (const entry of entries as Reply[]) {
        if (n >= scope.limit) break;
        const msg = fromEntry(entry);
        const text = msg.text.toLowerCase();
        if (words.every((w) => text.includes(w))) {
          found.push(msg);
          n++;
        }
      }
    }
    found.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    return found.slice(0, scope.limit);
  }

  /** Every room with its member count. */
  async rooms(): Promise<RoomInfo[]> {
    const flat = await this.#run(ROOMS, []) as (string | number)[];
    const out: RoomInfo[] = [];
    for (let i = 0; i < flat.length; i += 2) {
      out.push({ name: String(flat[i]), members: Number(flat[i + 1]) });
    }
    out.sort((a, b) => a.name.localeCompare(b.name));
    return out;
  }

  /** Whether the room exists. */
  async roomExists(room: string): Promise<boolean> {
    return await this.#call(["HEXISTS", `${this.#prefix}rooms`, room]) === 1;
  }

  /** Adds a member, creating the room. */
  async join(user: string, room: string): Promise<JoinResult> {
    const [added, created] = await this.#run(JOIN, [user, room]) as number[];
    return { added: added === 1, created: created === 1 };
  }

  /** Rooms created by a user. */
  async roomsCreatedBy(user: string): Promise<number> {
    return Number(await this.#call(["HGET", `${this.#prefix}created`, user]) ?? 0);
  }

  /** Removes a member; the room stays. */
  async leave(user: string, room: string): Promise<boolean> {
    return await this.#run(LEAVE, [user, room]) === 1;
  }

  /** Rooms of a user. */
  async roomsOf(user: string): Promise<string[]> {
    return (await this.#call(["SMEMBERS", `${this.#prefix}in:${user}`]) as string[]).sort();
  }

  /** Members of a room. */
  async members(room: string): Promise<string[]> {
    return (await this.#call(["SMEMBERS", `${this.#prefix}members:${room}`]) as string[]).sort();
  }

  /** The user's rooms and DMs with newest ids and read markers. */
  async conversations(user: string): Promise<Conversation[]> {
    const flat = await this.#run(CONVERSATIONS, [user]) as string[];
    const rooms: [string, Conversation][] = [];
    const dms: [string, Conversation][] = [];
    for (let i = 0; i < flat.length; i += 4) {
      const [kind, conv, last, read] = flat.slice(i, i + 4);
      if (kind === "r") rooms.push([conv, { room: conv, last: Number(last), read: Number(read) }]);
      else {
        const [a, b] = dmPair(conv)!;
        dms.push([conv, { to: a === user ? b : a, last: Number(last), read: Number(read) }]);
      }
    }
    const byKey = (x: [string, Conversation], y: [string, Conversation]) =>
      x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0;
    return [...rooms.sort(byKey), ...dms.sort(byKey)].map(([, c]) => c);
  }

  /** Moves a read marker forward. */
  async setRead(user: string, conv: string, id: number): Promise<number> {
    return Number(await this.#run(SET_READ, [user, conv, String(id)]));
  }

  /** Remembers a user. */
  async touchUser(user: string): Promise<void> {
    await this.#call(["SADD", `${this.#prefix}users`, user]);
  }

  /** Whether a user was ever seen. */
  async knownUser(user: string): Promise<boolean> {
    return await this.#call(["SISMEMBER", `${this.#prefix}users`, user]) === 1;
  }

  /**
   * Nothing is pending here: every append resolved only after Redis accepted
   * it (how durable that is depends on Redis's `appendfsync`; see docs/scaling.md).
   */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  /** Closes the client if this store opened it. */
  async close(): Promise<void> {
    if (this.#owns) await closeRedis(this.#client);
  }
}
