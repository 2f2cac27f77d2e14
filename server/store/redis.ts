/**
 * The Redis store (`--redis`): the chat's durable state, shared by every
 * node. Each conversation's history is a Redis Stream capped at `keep`
 * entries whose stream ids are the message ids (`17-0`), so `before`/`since`
 * are plain range reads and the oldest kept id says whether `since` has a gap.
 *
 * Keys (all under `prefix`, `chat:` by default):
 *
 * | key              | type   | holds                                                        |
 * | ---------------- | ------ | ------------------------------------------------------------ |
 * | `seq`            | hash   | conversation → newest message id                             |
 * | `ms`             | hash   | conversation → newest timestamp (ms)                         |
 * | `log:<conv>`     | stream | the kept messages of a conversation                          |
 * | `dms:<user>`     | set    | DM conversation keys the user is in                          |
 * | `rooms`          | hash   | room → creator                                               |
 * | `topics`         | hash   | room → topic (rooms without one are not listed)              |
 * | `created`        | hash   | user → number of rooms created                               |
 * | `members:<room>` | set    | members of a room                                            |
 * | `in:<user>`      | set    | rooms of a user                                              |
 * | `read:<user>`    | hash   | conversation → read marker                                   |
 * | `users`          | set    | users who ever signed in                                     |
 * | `seen`           | hash   | lower-cased name → when last seen (ms)                       |
 * | `claim:<name>`   | hash   | claim of a lower-cased name: `n` name, `s` session, `t` seen |
 * | `claims`         | zset   | lower-cased claimed name → seen (ms)                         |
 * | `revoked:<sid>`  | string | until when (ms) a session is revoked; expires then           |
 * | `sent:<user>`    | hash   | ref → `id\nms\nsha1(text)\nconv`, latest message per ref     |
 * | `sentq:<user>`   | list   | the refs of `sent:<user>`, newest first (256 at most)        |
 *
 * The broker's keys (`evseq`, `feed`, `node:*`, `online:*`, `nodes`) live
 * under the same prefix; see `redis_broker.ts`.
 *
 * Why this file is over 600 lines: every method is a Lua script beside the
 * few lines that call it, and the scripts share one key layout (see
 * docs/scaling.md); keeping them together keeps that layout in one place.
 *
 * @module
 */
import type { ChatMessage, Conversation } from "../../protocol.ts";
import {
  closeRedis,
  command,
  connectRedis,
  type RedisClient,
  type Reply,
  Script,
} from "../broker/redis_client.ts";
import {
  type Appended,
  type ClaimResult,
  dmPair,
  type Draft,
  type JoinResult,
  type NameClaim,
  type Page,
  type PageQuery,
  type RecentQuery,
  REF_WINDOW,
  type RoomInfo,
  type SearchScope,
  searchWords,
  type Store,
} from "./store.ts";
import { Slice } from "./time_slice.ts";

/**
 * Gives a message the next id of its conversation and Redis's clock (never
 * earlier than the conversation's previous message), appends it to the capped
 * stream, and, when a channel is given, numbers it in the event feed, keeps it
 * there and publishes it: one atomic step, so every node sees a conversation's
 * messages in id order.
 *
 * With a ref, the sender's latest refs are checked first (when `once` is 1)
 * and kept after: if the sender's latest message with the ref went to the
 * same conversation with the same text (by SHA-1), that message's id and time
 * are returned and nothing is stored or published. Returns {id, ms, seq, fresh}.
 *
 * ARGV: prefix, conv, keep, dmA, dmB, channel, feedLength, eventJson, from,
 * ref (or empty), once (1/0), refWindow, refTtl ms, fields… (the text last).
 */
const APPEND = new Script(`
local p, conv, ref = ARGV[1], ARGV[2], ARGV[10]
local sent, order, digest
if ref ~= '' then
  sent, order = p .. 'sent:' .. ARGV[9], p .. 'sentq:' .. ARGV[9]
  digest = redis.sha1hex(ARGV[#ARGV])
  local prev = redis.call('HGET', sent, ref)
  if prev then
    local pid, pms, pdigest, pconv = string.match(prev, '^(%d+)\\n(%d+)\\n(%x+)\\n(.*)$')
    if ARGV[11] == '1' and pconv == conv and pdigest == digest then
      return {tonumber(pid), tonumber(pms), 0, 0}
    end
    redis.call('LREM', order, 1, ref)
  end
end
local id = redis.call('HINCRBY', p .. 'seq', conv, 1)
local t = redis.call('TIME')
local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local prev = tonumber(redis.call('HGET', p .. 'ms', conv) or '0')
if ms < prev then ms = prev end
redis.call('HSET', p .. 'ms', conv, ms)
redis.call('XADD', p .. 'log:' .. conv, 'MAXLEN', ARGV[3], id .. '-0', 'ms', ms, unpack(ARGV, 14))
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
if ref ~= '' then
  redis.call('HSET', sent, ref, id .. '\\n' .. ms .. '\\n' .. digest .. '\\n' .. conv)
  redis.call('LPUSH', order, ref)
  if redis.call('LLEN', order) > tonumber(ARGV[12]) then
    redis.call('HDEL', sent, redis.call('RPOP', order))
  end
  redis.call('PEXPIRE', sent, ARGV[13])
  redis.call('PEXPIRE', order, ARGV[13])
end
return {id, ms, seq, 1}
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

/** ARGV: prefix. Returns {room, members, topic, room, members, topic, …} ('' for no topic). */
const ROOMS = new Script(`
local out = {}
for _, room in ipairs(redis.call('HKEYS', ARGV[1] .. 'rooms')) do
  out[#out + 1] = room
  out[#out + 1] = redis.call('SCARD', ARGV[1] .. 'members:' .. room)
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'topics', room) or ''
end
return out
`);

/**
 * Sets a room's topic ('' clears it). ARGV: prefix, room, topic. Returns 1
 * when it changed, 0 when it was the same or the room does not exist.
 */
const SET_TOPIC = new Script(`
local p, room, topic = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', p .. 'rooms', room) == 0 then return 0 end
if (redis.call('HGET', p .. 'topics', room) or '') == topic then return 0 end
if topic == '' then
  redis.call('HDEL', p .. 'topics', room)
else
  redis.call('HSET', p .. 'topics', room, topic)
end
return 1
`);

/**
 * Moves last-seen times forward (never back), and makes a user known when
 * one is given. ARGV: prefix, at (ms), user to add to `users` (or empty),
 * lower-cased names…
 */
const SEEN = new Script(`
local p, at = ARGV[1], tonumber(ARGV[2])
if ARGV[3] ~= '' then redis.call('SADD', p .. 'users', ARGV[3]) end
for i = 4, #ARGV do
  local cur = redis.call('HGET', p .. 'seen', ARGV[i])
  if not cur or at > tonumber(cur) then redis.call('HSET', p .. 'seen', ARGV[i], ARGV[2]) end
end
return 0
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

/**
 * Claims, refreshes or refuses a name. ARGV: prefix, folded name, name,
 * session, now, create (1/0). Returns {ok, name, session, seen}, or {0} when
 * the name is unclaimed and not created.
 */
const CLAIM = new Script(`
local p, folded, now = ARGV[1], ARGV[2], ARGV[5]
local key = p .. 'claim:' .. folded
local held = redis.call('HMGET', key, 'n', 's', 't')
if held[1] then
  if held[2] ~= ARGV[4] then return {0, held[1], held[2], held[3]} end
  redis.call('HSET', key, 't', now)
  redis.call('ZADD', p .. 'claims', now, folded)
  return {1, held[1], held[2], now}
end
if ARGV[6] ~= '1' then return {0} end
redis.call('HSET', key, 'n', ARGV[3], 's', ARGV[4], 't', now)
redis.call('ZADD', p .. 'claims', now, folded)
return {1, ARGV[3], ARGV[4], now}
`);

/**
 * Releases a name held by a session and wipes what was private to it: its DM
 * streams (the `seq` counters stay, so ids continue), both parties' listing
 * and read markers of them, its own markers, its refs, its memberships, its
 * last-seen time and its `users` mark. ARGV: prefix, folded name, session,
 * seen-before (or empty).
 * Returns {1, {room, …}},
 * or nil when the session does not hold the name or was seen since.
 */
const RELEASE = new Script(`
local p, folded = ARGV[1], ARGV[2]
local key = p .. 'claim:' .. folded
local held = redis.call('HMGET', key, 'n', 's', 't')
if not held[1] or held[2] ~= ARGV[3] then return nil end
if ARGV[4] ~= '' and tonumber(held[3]) >= tonumber(ARGV[4]) then return nil end
local user = held[1]
redis.call('DEL', key)
redis.call('ZREM', p .. 'claims', folded)
redis.call('HDEL', p .. 'seen', folded)
for _, conv in ipairs(redis.call('SMEMBERS', p .. 'dms:' .. user)) do
  local i = string.find(conv, ':', 1, true)
  redis.call('DEL', p .. 'log:' .. conv)
  for _, party in ipairs({string.sub(conv, 2, i - 1), string.sub(conv, i + 1)}) do
    redis.call('SREM', p .. 'dms:' .. party, conv)
    redis.call('HDEL', p .. 'read:' .. party, conv)
  end
end
redis.call('DEL', p .. 'read:' .. user, p .. 'sent:' .. user, p .. 'sentq:' .. user)
local rooms = redis.call('SMEMBERS', p .. 'in:' .. user)
for _, room in ipairs(rooms) do redis.call('SREM', p .. 'members:' .. room, user) end
redis.call('DEL', p .. 'in:' .. user)
redis.call('SREM', p .. 'users', user)
redis.call('HDEL', p .. 'created', user)
return {1, rooms}
`);

/** ARGV: prefix, before, limit. Returns {name, session, seen, …}, oldest first. */
const STALE = new Script(`
local out = {}
local stale = redis.call('ZRANGE', ARGV[1] .. 'claims', '-inf', '(' .. ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, folded in ipairs(stale) do
  local held = redis.call('HMGET', ARGV[1] .. 'claim:' .. folded, 'n', 's', 't')
  out[#out + 1] = held[1]
  out[#out + 1] = held[2]
  out[#out + 1] = held[3]
end
return out
`);

/**
 * Claims seen at or after a time whose lower-cased name contains a text,
 * newest first, read from `claims` in chunks until enough matched.
 * ARGV: prefix, since, match (or empty), limit. Returns {name, session, seen, …}.
 */
const RECENT = new Script(`
local p, match, limit = ARGV[1], ARGV[3], tonumber(ARGV[4])
local out, n, offset = {}, 0, 0
while n < limit do
  local chunk = redis.call('ZRANGE', p .. 'claims', '+inf', ARGV[2], 'BYSCORE', 'REV',
    'LIMIT', offset, 500)
  if #chunk == 0 then break end
  for _, folded in ipairs(chunk) do
    if match == '' or string.find(folded, match, 1, true) then
      local held = redis.call('HMGET', p .. 'claim:' .. folded, 'n', 's', 't')
      out[#out + 1] = held[1]
      out[#out + 1] = held[2]
      out[#out + 1] = held[3]
      n = n + 1
      if n >= limit then break end
    end
  end
  offset = offset + #chunk
end
return out
`);

/**
 * Revokes a session until ARGV[3] (ms), never shortening an earlier
 * revocation; the key expires when the revocation lapses. ARGV: prefix, session, until.
 */
const REVOKE = new Script(`
local key = ARGV[1] .. 'revoked:' .. ARGV[2]
local held = tonumber(redis.call('GET', key) or '0')
if tonumber(ARGV[3]) > held then redis.call('SET', key, ARGV[3], 'PXAT', ARGV[3]) end
return 0
`);

/** Stream entries one search command reads (newest first). */
const SEARCH_CHUNK = 256;
/** Conversations a search reads at once. */
const SEARCH_PARALLEL = 4;

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
  /**
   * Milliseconds a user's refs (see {@link Store.appendOnce}) are kept after
   * their last message with one.
   * @default {2592000000} (30 days)
   */
  refTtl?: number;
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

/** A message stored and published, or found stored (a resend, see {@link Store.appendOnce}). */
export interface Published extends Appended {
  /** Its number in the event feed; 0 when nothing was published (`fresh` is false). */
  seq: number;
}

/** Builds a message from a stream entry `[id, [field, value, …]]`. */
function fromEntry(entry: Reply): ChatMessage {
  const [sid, fields] = entry as [string, string[]];
  const f: Record<string, string> = {};
  for (let i = 0; i < fields.length; i += 2) f[fields[i]] = fields[i + 1];
  return toMessage(parseInt(sid), Number(f.ms), f.r, f.t, f.f, f.x);
}

/** The text of a stream entry's fields `[field, value, …]` (a value may look like a field name). */
function textOf(fields: string[]): string {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === "x") return fields[i + 1];
  return "";
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
  #refTtl: number;

  /** Uses a connected client (see {@link connectRedis}). */
  constructor(client: RedisClient, options: RedisStoreOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "chat:";
    this.#keep = options.keep ?? 200;
    this.#timeout = options.timeout ?? 5000;
    this.#owns = options.ownsClient ?? false;
    this.#refTtl = options.refTtl ?? 30 * 86_400_000;
  }

  /**
   * Connects to `url` and returns a store that owns its client.
   *
   * @throws {RedisUnavailableError} with one actionable sentence when Redis
   * cannot be used (yet: see its `transient`).
   */
  static async connect(
    url: string,
    options: Omit<RedisStoreOptions, "ownsClient"> & {
      /** Called with each error once connected (the link dropped). */
      onError?: (err: Error) => void;
      /** Gives up connecting when aborted. */
      signal?: AbortSignal;
    } = {},
  ): Promise<RedisStore> {
    const client = await connectRedis(url, {
      name: "chat-store",
      onError: options.onError,
      signal: options.signal,
    });
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

  async #append(draft: Draft, target?: PublishTarget, once = false): Promise<Published> {
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
      draft.from,
      draft.ref ?? "",
      once ? "1" : "0",
      String(REF_WINDOW),
      String(this.#refTtl),
      ...fields,
    ]) as number[];
    const [id, ms, seq, fresh] = reply;
    const msg = toMessage(id, ms, draft.room, draft.to, draft.from, draft.text);
    return { msg, seq, fresh: fresh === 1 };
  }

  /** Appends a message; resolves once Redis has accepted it. */
  async append(draft: Draft): Promise<ChatMessage> {
    return (await this.#append(draft)).msg;
  }

  /** Appends unless the draft is a resend, in one script (see {@link Store.appendOnce}). */
  async appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    const { msg, fresh } = await this.#append(draft, undefined, true);
    return { msg, fresh };
  }

  /**
   * Appends a message and publishes it in the same script (see the broker):
   * resolves once Redis has done both. A draft with a ref is checked first,
   * in the same script: a resend of a stored message is neither stored nor
   * published again, and resolves that message with `fresh` false.
   */
  appendAndPublish(draft: Draft, target: PublishTarget): Promise<Published> {
    return this.#append(draft, target, true);
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

  /**
   * Scans the kept messages of the visible conversations, newest first: each
   * stream is read in chunks and only until it gave `limit` matches, a few
   * conversations at a time, and parsing yields to the event loop every few
   * milliseconds, so neither Redis nor this node is held up by one search.
   */
  async search(q: string, scope: SearchScope): Promise<ChatMessage[]> {
    const words = searchWords(q);
    const convs = new Set(scope.rooms);
    const dms = await this.#call(["SMEMBERS", `${this.#prefix}dms:${scope.user}`]) as string[];
    for (const c of dms) convs.add(c);
    const wanted = [...convs].filter((c) => scope.conv === undefined || c === scope.conv);
    // Per conversation, in `wanted` order: the sort below keeps that order for equal times.
    const each: ChatMessage[][] = [];
    const slice = new Slice();
    let next = 0;
    const worker = async () => {
      while (next < wanted.length) {
        const i = next++;
        each[i] = await this.#scan(wanted[i], words, scope.limit, slice);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SEARCH_PARALLEL, wanted.length) }, worker));
    const found = each.flat();
    found.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    return found.slice(0, scope.limit);
  }

  /** The newest `limit` messages of `conv` that contain every word. */
  async #scan(conv: string, words: string[], limit: number, slice: Slice): Promise<ChatMessage[]> {
    const key = `${this.#prefix}log:${conv}`;
    const found: ChatMessage[] = [];
    let end = "+";
    while (found.length < limit) {
      const entries = await this.#call(
        ["XREVRANGE", key, end, "-", "COUNT", String(SEARCH_CHUNK)],
      ) as [string, string[]][];
      for (const entry of entries) {
        const text = textOf(entry[1]).toLowerCase();
        if (words.every((w) => text.includes(w))) {
          found.push(fromEntry(entry));
          if (found.length >= limit) break;
        }
        if (slice.spent()) await slice.pause();
      }
      const oldest = parseInt(entries.at(-1)?.[0] ?? "0");
      if (entries.length < SEARCH_CHUNK || oldest <= 1) break;
      // Stream ids are `<id>-0`: the next chunk ends just before the oldest read.
      end = String(oldest - 1);
    }
    return found;
  }

  /** Every room with its member count. */
  async rooms(): Promise<RoomInfo[]> {
    const flat = await this.#run(ROOMS, []) as (string | number)[];
    const out: RoomInfo[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      const info: RoomInfo = { name: String(flat[i]), members: Number(flat[i + 1]) };
      if (flat[i + 2] !== "") info.topic = String(flat[i + 2]);
      out.push(info);
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

  /** The room's topic, `""` for none. */
  async topic(room: string): Promise<string> {
    return String(await this.#call(["HGET", `${this.#prefix}topics`, room]) ?? "");
  }

  /** Sets or clears a room's topic in one script; false when unchanged or no such room. */
  async setTopic(room: string, topic: string): Promise<boolean> {
    return await this.#run(SET_TOPIC, [room, topic]) === 1;
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

  /** Remembers a user (and, in the same script, when it was seen). */
  async touchUser(user: string, seen?: number): Promise<void> {
    if (seen === undefined) await this.#call(["SADD", `${this.#prefix}users`, user]);
    else await this.#run(SEEN, [String(seen), user, user.toLowerCase()]);
  }

  /** Moves the users' last-seen times forward, in one script. */
  async markSeen(users: readonly string[], at: number): Promise<void> {
    if (users.length === 0) return;
    await this.#run(SEEN, [String(at), "", ...users.map((u) => u.toLowerCase())]);
  }

  /** Last-seen times of the users seen, in one HMGET. */
  async lastSeen(users: readonly string[]): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    if (users.length === 0) return out;
    const at = await this.#call([
      "HMGET",
      `${this.#prefix}seen`,
      ...users.map((u) => u.toLowerCase()),
    ]) as (string | null)[];
    users.forEach((user, i) => {
      if (at[i] !== null) out.set(user, Number(at[i]));
    });
    return out;
  }

  /** Whether a user was ever seen. */
  async knownUser(user: string): Promise<boolean> {
    return await this.#call(["SISMEMBER", `${this.#prefix}users`, user]) === 1;
  }

  /** Who holds a name. */
  async nameClaim(name: string): Promise<NameClaim | null> {
    const [n, s, t] = await this.#call([
      "HMGET",
      `${this.#prefix}claim:${name.toLowerCase()}`,
      "n",
      "s",
      "t",
    ]) as (string | null)[];
    return n === null ? null : { name: n, session: s!, seen: Number(t) };
  }

  /** Claims, refreshes or refuses a name in one script (see {@link Store.claimName}). */
  async claimName(
    name: string,
    session: string,
    now: number,
    create: boolean,
  ): Promise<ClaimResult> {
    const reply = await this.#run(CLAIM, [
      name.toLowerCase(),
      name,
      session,
      String(now),
      create ? "1" : "0",
    ]) as [number, string?, string?, string?];
    const claim = reply.length > 1
      ? { name: reply[1]!, session: reply[2]!, seen: Number(reply[3]) }
      : null;
    return reply[0] === 1 ? { ok: true, claim: claim! } : { ok: false, claim };
  }

  /**
   * Releases a name held by `session` and wipes what was private to it, in
   * one script (see {@link Store.releaseName}); DM ids continue from `seq`.
   */
  async releaseName(
    name: string,
    session: string,
    seenBefore?: number,
  ): Promise<string[] | null> {
    const reply = await this.#run(RELEASE, [
      name.toLowerCase(),
      session,
      seenBefore === undefined ? "" : String(seenBefore),
    ]) as
      | [number, string[]]
      | null;
    return reply === null ? null : reply[1].sort();
  }

  /** Claims not seen since `before`, oldest first (ties by name). */
  async staleClaims(before: number, limit: number): Promise<NameClaim[]> {
    if (limit <= 0) return [];
    const flat = await this.#run(STALE, [String(before), String(limit)]) as string[];
    const out: NameClaim[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      out.push({ name: flat[i], session: flat[i + 1], seen: Number(flat[i + 2]) });
    }
    return out;
  }

  /** Claims seen since `query.since` whose name matches, newest first, in one script. */
  async recentClaims(query: RecentQuery): Promise<NameClaim[]> {
    if (query.limit <= 0) return [];
    const flat = await this.#run(RECENT, [
      String(query.since),
      query.match?.toLowerCase() ?? "",
      String(query.limit),
    ]) as string[];
    const out: NameClaim[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      out.push({ name: flat[i], session: flat[i + 1], seen: Number(flat[i + 2]) });
    }
    return out;
  }

  /**
   * Revokes a session until `until` (never shortening an earlier
   * revocation); Redis deletes the key when the revocation lapses.
   */
  async revokeSession(session: string, until: number): Promise<void> {
    await this.#run(REVOKE, [session, String(until)]);
  }

  /** Whether the session's revocation lasts past `now`. */
  async sessionRevoked(session: string, now: number): Promise<boolean> {
    return Number(await this.#call(["GET", `${this.#prefix}revoked:${session}`]) ?? 0) > now;
  }

  /** Closes the client if this store opened it. */
  async close(): Promise<void> {
    if (this.#owns) await closeRedis(this.#client);
  }
}
