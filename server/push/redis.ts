/**
 * The push store of `--redis`: subscriptions, levels and visibility in the
 * Redis every node shares. Whatever reads and then writes runs in one Lua
 * script, so two nodes never half-apply a subscribe or a rename.
 *
 * Keys (under the store's prefix, `chat:` by default; `<user>` lower-cased):
 *
 * | key                    | type | holds                                                                 |
 * | ---------------------- | ---- | --------------------------------------------------------------------- |
 * | `push:sub:<endpoint>`  | hash | a subscription: `u` user, `f` folded user, `s` session, `k` p256dh,   |
 * |                        |      | `a` auth, `t` time                                                    |
 * | `push:user:<user>`     | zset | the user's endpoints → time (oldest first)                            |
 * | `push:lv:<user>`       | hash | conversation key → level (only levels that differ from the default)  |
 * | `push:conv:<conv>`     | set  | users who set a level of the conversation (a rename moves them)       |
 * | `push:nt:<endpoint>\n<conv>` | string | set while the endpoint was sent a message push of the |
 * |                        |      | conversation and no `read` push since; expires with the push's TTL    |
 * | `push:vis:<node>`      | set  | users with a visible connection on the node; expires unless renewed   |
 * | `push:visnodes`        | set  | nodes that may have a `push:vis:` key (pruned when it expired)        |
 * | `push:any`             | string | set by the first subscription (and found by a scan of `push:user:` |
 * |                        |      | keys of a chat from before it); never removed                         |
 *
 * A node renews its `push:vis:` key with every heartbeat, writing the whole
 * set: a node that dies stops counting once the key expires (its `ttl`), and
 * a write lost while Redis was away is repaired by the next heartbeat.
 *
 * @module
 */
import {
  closeRedis,
  command,
  type RedisClient,
  type Reply,
  Script,
} from "../broker/redis_client.ts";
import type { NotifyLevel } from "../../protocol.ts";
import {
  MAX_LEVELS_PER_USER,
  MAX_SUBSCRIPTIONS_PER_USER,
  type PushStore,
  type PushSubscriptionRecord,
  type Subscribed,
} from "./push_store.ts";

/**
 * Keeps a subscription, dropping the user's oldest past the cap. ARGV:
 * prefix, endpoint, user, folded, session, p256dh, auth, at, max, fp. Returns
 * {0} (another user's endpoint with other keys) or {1, dropped…}.
 */
const SUBSCRIBE = new Script(`
local p, e = ARGV[1], ARGV[2]
local key = p .. 'push:sub:' .. e
local held = redis.call('HMGET', key, 'f', 'k', 'a')
if held[1] and held[1] ~= ARGV[4] and (held[2] ~= ARGV[6] or held[3] ~= ARGV[7]) then
  return {0}
end
if held[1] then redis.call('ZREM', p .. 'push:user:' .. held[1], e) end
redis.call('HSET', key, 'u', ARGV[3], 'f', ARGV[4], 's', ARGV[5], 'k', ARGV[6], 'a', ARGV[7],
  't', ARGV[8], 'c', ARGV[10])
local uk = p .. 'push:user:' .. ARGV[4]
redis.call('ZADD', uk, ARGV[8], e)
redis.call('SET', p .. 'push:any', '1')
local out = {1}
local n = redis.call('ZCARD', uk) - tonumber(ARGV[9])
if n > 0 then
  for _, old in ipairs(redis.call('ZRANGE', uk, 0, n - 1)) do
    redis.call('DEL', p .. 'push:sub:' .. old)
    redis.call('ZREM', uk, old)
    out[#out + 1] = old
  end
end
return out
`);

/** Removes an endpoint if the user holds it. ARGV: prefix, endpoint, folded. Returns 1 or 0. */
const UNSUBSCRIBE = new Script(`
local p, e = ARGV[1], ARGV[2]
local key = p .. 'push:sub:' .. e
if redis.call('HGET', key, 'f') ~= ARGV[3] then return 0 end
redis.call('DEL', key)
redis.call('ZREM', p .. 'push:user:' .. ARGV[3], e)
return 1
`);

/** Removes an endpoint whoever holds it. ARGV: prefix, endpoint. */
const DROP = new Script(`
local p, e = ARGV[1], ARGV[2]
local key = p .. 'push:sub:' .. e
local f = redis.call('HGET', key, 'f')
if not f then return 0 end
redis.call('DEL', key)
redis.call('ZREM', p .. 'push:user:' .. f, e)
return 1
`);

/**
 * The user's subscriptions, oldest first. ARGV: prefix, folded. Returns
 * {{endpoint, user, session, p256dh, auth, at, fp}…}.
 */
const SUBSCRIPTIONS = new Script(`
local p = ARGV[1]
local uk = p .. 'push:user:' .. ARGV[2]
local out = {}
for _, e in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local h = redis.call('HMGET', p .. 'push:sub:' .. e, 'u', 's', 'k', 'a', 't', 'c')
  if h[1] then out[#out + 1] = {e, h[1], h[2], h[3], h[4], h[5], h[6] or ''}
  else redis.call('ZREM', uk, e) end
end
return out
`);

/**
 * Removes subscriptions of a user by session. ARGV: prefix, folded, mode,
 * session, to, fp. Mode `only`: those of the session; `except`: all others
 * (and the session's move to `to` and `fp` when not empty); `all`: every one.
 * Returns how many went.
 */
const FORGET = new Script(`
local p, f, mode, s, to, fp = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local uk = p .. 'push:user:' .. f
local n = 0
for _, e in ipairs(redis.call('ZRANGE', uk, 0, -1)) do
  local key = p .. 'push:sub:' .. e
  local mine = redis.call('HGET', key, 's')
  local go = mode == 'all' or (mode == 'only' and mine == s) or (mode == 'except' and mine ~= s)
  if go then
    redis.call('DEL', key)
    redis.call('ZREM', uk, e)
    n = n + 1
  elseif mode == 'except' then
    if to ~= '' then redis.call('HSET', key, 's', to) end
    if fp ~= '' then redis.call('HSET', key, 'c', fp) end
  end
end
return n
`);

/** Removes a user's levels. ARGV: prefix, folded. */
const FORGET_LEVELS = new Script(`
local p, f = ARGV[1], ARGV[2]
local lk = p .. 'push:lv:' .. f
for _, conv in ipairs(redis.call('HKEYS', lk)) do
  redis.call('SREM', p .. 'push:conv:' .. conv, f)
end
redis.call('DEL', lk)
return 1
`);

/**
 * Sets or (level '') removes a level. ARGV: prefix, folded, conv, level,
 * max. Returns 1, or 0 when a new level would pass the cap.
 */
const SET_LEVEL = new Script(`
local p, f, conv, level = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local lk = p .. 'push:lv:' .. f
if level == '' then
  redis.call('HDEL', lk, conv)
  redis.call('SREM', p .. 'push:conv:' .. conv, f)
  return 1
end
if redis.call('HEXISTS', lk, conv) == 0 and redis.call('HLEN', lk) >= tonumber(ARGV[5]) then
  return 0
end
redis.call('HSET', lk, conv, level)
redis.call('SADD', p .. 'push:conv:' .. conv, f)
return 1
`);

/** The levels of one conversation. ARGV: prefix, conv, folded users… Returns one level or '' each. */
const LEVELS_OF = new Script(`
local p, conv = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  out[#out + 1] = redis.call('HGET', p .. 'push:lv:' .. ARGV[i], conv) or ''
end
return out
`);

/** Every level set of a conversation. ARGV: prefix, conv. Returns {folded, level, …}. */
const CONV_LEVELS = new Script(`
local p, conv = ARGV[1], ARGV[2]
local out = {}
for _, f in ipairs(redis.call('SMEMBERS', p .. 'push:conv:' .. conv)) do
  local level = redis.call('HGET', p .. 'push:lv:' .. f, conv)
  if level then
    out[#out + 1] = f
    out[#out + 1] = level
  end
end
return out
`);

/** Moves the levels of conversation `from` to `to`, replacing those there. ARGV: prefix, from, to. */
const RENAME = new Script(`
local p, from, to = ARGV[1], ARGV[2], ARGV[3]
local tk, fk = p .. 'push:conv:' .. to, p .. 'push:conv:' .. from
for _, f in ipairs(redis.call('SMEMBERS', tk)) do
  redis.call('HDEL', p .. 'push:lv:' .. f, to)
end
redis.call('DEL', tk)
for _, f in ipairs(redis.call('SMEMBERS', fk)) do
  local lk = p .. 'push:lv:' .. f
  local level = redis.call('HGET', lk, from)
  redis.call('HDEL', lk, from)
  if level then
    redis.call('HSET', lk, to, level)
    redis.call('SADD', tk, f)
  end
end
redis.call('DEL', fk)
return 1
`);

/** Marks endpoints as sent a message push of a conversation. ARGV: prefix, conv, ttl ms, endpoints… */
const NOTIFIED = new Script(`
local p, conv, ttl = ARGV[1], ARGV[2], ARGV[3]
for i = 4, #ARGV do
  redis.call('SET', p .. 'push:nt:' .. ARGV[i] .. '\\n' .. conv, '1', 'PX', ttl)
end
return 1
`);

/** Which endpoints were marked, unmarking them. ARGV: prefix, conv, endpoints… Returns those. */
const TAKE_NOTIFIED = new Script(`
local p, conv = ARGV[1], ARGV[2]
local out = {}
for i = 3, #ARGV do
  if redis.call('DEL', p .. 'push:nt:' .. ARGV[i] .. '\\n' .. conv) == 1 then
    out[#out + 1] = ARGV[i]
  end
end
return out
`);

/**
 * Several users' visibility on a node. ARGV: prefix, node, ttl ms, then
 * pairs of folded user and '1' (visible) or '0'.
 */
const SET_VISIBLE_MANY = new Script(`
local p, node = ARGV[1], ARGV[2]
local key = p .. 'push:vis:' .. node
for i = 4, #ARGV, 2 do
  if ARGV[i + 1] == '1' then redis.call('SADD', key, ARGV[i]) else redis.call('SREM', key, ARGV[i]) end
end
redis.call('PEXPIRE', key, ARGV[3])
redis.call('SADD', p .. 'push:visnodes', node)
return 1
`);

/** A node's whole visible set. ARGV: prefix, node, ttl ms, folded users… */
const HEARTBEAT = new Script(`
local p, node = ARGV[1], ARGV[2]
local key = p .. 'push:vis:' .. node
redis.call('DEL', key)
for i = 4, #ARGV, 500 do
  redis.call('SADD', key, unpack(ARGV, i, math.min(i + 499, #ARGV)))
end
redis.call('PEXPIRE', key, ARGV[3])
redis.call('SADD', p .. 'push:visnodes', node)
return 1
`);

/**
 * Which users are visible on a live node (pruning nodes whose key expired).
 * ARGV: prefix, folded users… Returns the visible ones.
 */
const VISIBLE = new Script(`
local p = ARGV[1]
local nodes = {}
for _, node in ipairs(redis.call('SMEMBERS', p .. 'push:visnodes')) do
  local key = p .. 'push:vis:' .. node
  if redis.call('EXISTS', key) == 1 then nodes[#nodes + 1] = key
  else redis.call('SREM', p .. 'push:visnodes', node) end
end
local out = {}
for i = 2, #ARGV do
  for _, key in ipairs(nodes) do
    if redis.call('SISMEMBER', key, ARGV[i]) == 1 then
      out[#out + 1] = ARGV[i]
      break
    end
  end
end
return out
`);

/** Options for {@link RedisPushStore}. */
export interface RedisPushStoreOptions {
  /** Prefix of every key: the message store's. @default {"chat:"} */
  prefix?: string;
  /** Milliseconds a command may take before it fails. @default {5000} */
  timeout?: number;
  /** Close the client in {@link RedisPushStore.close}. @default {false} */
  ownsClient?: boolean;
}

/** Users one visibility script asks about at most (a busy room is asked in parts). */
const VISIBLE_BATCH = 1000;

/** A {@link PushStore} in Redis, shared by every node of a chat. */
export class RedisPushStore implements PushStore {
  #client: RedisClient;
  #prefix: string;
  #timeout: number;
  #owns: boolean;
  /** The keyspace was scanned once for subscriptions from before `push:any`. */
  #scanned = false;

  /** Uses a connected client, normally the message store's, under the same prefix. */
  constructor(client: RedisClient, options: RedisPushStoreOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "chat:";
    this.#timeout = options.timeout ?? 5000;
    this.#owns = options.ownsClient ?? false;
  }

  #run(script: Script, args: string[]): Promise<Reply> {
    return script.run(this.#client, [this.#prefix, ...args], this.#timeout);
  }

  async subscribe(
    sub: PushSubscriptionRecord,
    max = MAX_SUBSCRIPTIONS_PER_USER,
  ): Promise<Subscribed> {
    const reply = await this.#run(SUBSCRIBE, [
      sub.endpoint,
      sub.user,
      sub.user.toLowerCase(),
      sub.session,
      sub.p256dh,
      sub.auth,
      String(sub.at),
      String(max),
      sub.fp,
    ]) as Reply[];
    if (Number(reply[0]) !== 1) return { ok: false };
    return { ok: true, dropped: reply.slice(1) as string[] };
  }

  async unsubscribe(user: string, endpoint: string): Promise<boolean> {
    return Number(await this.#run(UNSUBSCRIBE, [endpoint, user.toLowerCase()])) === 1;
  }

  async drop(endpoint: string): Promise<void> {
    await this.#run(DROP, [endpoint]);
  }

  async anySubscriptions(): Promise<boolean> {
    const marker = `${this.#prefix}push:any`;
    if (Number(await command(this.#client, ["EXISTS", marker], this.#timeout)) === 1) return true;
    // A chat from before the marker: one scan per process finds its subscriptions.
    if (this.#scanned) return false;
    let cursor = "0";
    do {
      const [next, keys] = await command(this.#client, [
        "SCAN",
        cursor,
        "MATCH",
        `${this.#prefix}push:user:*`,
        "COUNT",
        "1000",
      ], this.#timeout) as [string, string[]];
      if (keys.length > 0) {
        await command(this.#client, ["SET", marker, "1"], this.#timeout);
        return true;
      }
      cursor = String(next);
    } while (cursor !== "0");
    this.#scanned = true;
    return false;
  }

  async subscriptions(user: string): Promise<PushSubscriptionRecord[]> {
    const rows = await this.#run(SUBSCRIPTIONS, [user.toLowerCase()]) as string[][];
    return rows.map(([endpoint, u, session, p256dh, auth, at, fp]) => ({
      endpoint,
      user: u,
      session,
      fp,
      p256dh,
      auth,
      at: Number(at),
    }));
  }

  async get(endpoint: string): Promise<PushSubscriptionRecord | null> {
    const h = await command(
      this.#client,
      ["HMGET", `${this.#prefix}push:sub:${endpoint}`, "u", "s", "k", "a", "t", "c"],
      this.#timeout,
    ) as (string | null)[];
    const [u, session, p256dh, auth, at, fp] = h;
    if (u === null || u === undefined) return null;
    return {
      endpoint,
      user: u,
      session: session ?? "",
      fp: fp ?? "",
      p256dh: p256dh ?? "",
      auth: auth ?? "",
      at: Number(at),
    };
  }

  async forgetSession(user: string, session: string): Promise<number> {
    return Number(await this.#run(FORGET, [user.toLowerCase(), "only", session, "", ""]));
  }

  async keepSession(user: string, keep: string, to?: string, fp?: string): Promise<void> {
    await this.#run(FORGET, [user.toLowerCase(), "except", keep, to ?? "", fp ?? ""]);
  }

  async forgetSubscriptions(user: string): Promise<void> {
    await this.#run(FORGET, [user.toLowerCase(), "all", "", "", ""]);
  }

  async forgetUser(user: string): Promise<void> {
    await this.forgetSubscriptions(user);
    await this.#run(FORGET_LEVELS, [user.toLowerCase()]);
  }

  async setLevel(user: string, conv: string, level: NotifyLevel | null): Promise<boolean> {
    const reply = await this.#run(SET_LEVEL, [
      user.toLowerCase(),
      conv,
      level ?? "",
      String(MAX_LEVELS_PER_USER),
    ]);
    return Number(reply) === 1;
  }

  async levels(user: string): Promise<Record<string, NotifyLevel>> {
    const flat = await command(
      this.#client,
      ["HGETALL", `${this.#prefix}push:lv:${user.toLowerCase()}`],
      this.#timeout,
    ) as string[];
    const out: Record<string, NotifyLevel> = {};
    const pairs: [string, NotifyLevel][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([flat[i], flat[i + 1] as NotifyLevel]);
    for (const [k, v] of pairs.sort(([a], [b]) => a < b ? -1 : 1)) out[k] = v;
    return out;
  }

  async levelsOf(conv: string, users: string[]): Promise<Map<string, NotifyLevel>> {
    const out = new Map<string, NotifyLevel>();
    for (let i = 0; i < users.length; i += VISIBLE_BATCH) {
      const part = users.slice(i, i + VISIBLE_BATCH);
      const reply = await this.#run(LEVELS_OF, [conv, ...part.map((u) => u.toLowerCase())]);
      (reply as string[]).forEach((level, j) => {
        if (level !== "") out.set(part[j], level as NotifyLevel);
      });
    }
    return out;
  }

  async convLevels(conv: string): Promise<Map<string, NotifyLevel>> {
    const flat = await this.#run(CONV_LEVELS, [conv]) as string[];
    const out = new Map<string, NotifyLevel>();
    for (let i = 0; i + 1 < flat.length; i += 2) out.set(flat[i], flat[i + 1] as NotifyLevel);
    return out;
  }

  async renameRoom(room: string, to: string): Promise<void> {
    await this.#run(RENAME, [`#${room}`, `#${to}`]);
  }

  async notified(endpoints: string[], conv: string, ttl: number): Promise<void> {
    if (endpoints.length === 0) return;
    await this.#run(NOTIFIED, [conv, String(Math.max(1, Math.ceil(ttl))), ...endpoints]);
  }

  async takeNotified(endpoints: string[], conv: string): Promise<Set<string>> {
    if (endpoints.length === 0) return new Set();
    return new Set(await this.#run(TAKE_NOTIFIED, [conv, ...endpoints]) as string[]);
  }

  async setVisibleMany(
    node: string,
    changes: ReadonlyMap<string, boolean>,
    ttl: number,
  ): Promise<void> {
    if (changes.size === 0) return;
    const args = [node, String(ttl)];
    for (const [user, visible] of changes) args.push(user.toLowerCase(), visible ? "1" : "0");
    await this.#run(SET_VISIBLE_MANY, args);
  }

  async heartbeat(node: string, users: string[], ttl: number): Promise<void> {
    await this.#run(HEARTBEAT, [node, String(ttl), ...users.map((u) => u.toLowerCase())]);
  }

  async visibleUsers(users: string[]): Promise<Set<string>> {
    const out = new Set<string>();
    for (let i = 0; i < users.length; i += VISIBLE_BATCH) {
      const part = users.slice(i, i + VISIBLE_BATCH);
      const folded = new Map(part.map((u) => [u.toLowerCase(), u]));
      const reply = await this.#run(VISIBLE, [...folded.keys()]) as string[];
      for (const f of reply) {
        for (const u of part) if (u.toLowerCase() === f) out.add(u);
      }
    }
    return out;
  }

  async leave(node: string): Promise<void> {
    await command(this.#client, ["DEL", `${this.#prefix}push:vis:${node}`], this.#timeout);
    await command(this.#client, ["SREM", `${this.#prefix}push:visnodes`, node], this.#timeout);
  }

  async close(): Promise<void> {
    if (this.#owns) await closeRedis(this.#client);
  }
}
