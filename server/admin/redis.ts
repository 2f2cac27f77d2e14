/**
 * The admin store of `--redis`: invites, bans and the audit log in the
 * Redis every node shares. Whatever checks and then writes runs in one Lua
 * script (creating an invite under the cap of live ones, a redeem, its
 * release, a revoke, an audit entry with its id and the trim), so two nodes
 * racing for an invite's last use never both get it.
 *
 * Keys (under the store's prefix, `chat:` by default):
 *
 * | key                      | type   | holds                                                           |
 * | ------------------------ | ------ | --------------------------------------------------------------- |
 * | `admin:inv:<code>`       | hash   | an invite: `b` by, `c` created, `e` expires, `n` uses, `u` used, |
 * |                          |        | `a` admin (1/0), `r` revoked (ms, absent until revoked)         |
 * | `admin:inv:<code>:by`    | list   | the names that joined with it, oldest first                     |
 * | `admin:invites`          | zset   | every kept invite → created (listing, newest first)             |
 * | `admin:invites:live`     | zset   | invites not revoked nor used up → expires (counting live ones)  |
 * | `admin:invites:drop`     | zset   | every kept invite → when it stops being listed (`droppedAt`)    |
 * | `admin:bans`             | hash   | lower-cased name → the ban as JSON                              |
 * | `admin:audit`            | zset   | `<id> <entry as JSON>` → id, the newest {@link AUDIT_KEEP}      |
 * | `admin:audit:id`         | string | the last audit id given out                                     |
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
import {
  type AdminStore,
  AUDIT_KEEP,
  type AuditEntry,
  type Ban,
  droppedAt,
  type Invite,
  type InviteRefusal,
  MAX_LIVE_INVITES,
  type Redeemed,
  SPENT_INVITE_KEEP,
} from "./admin.ts";

/**
 * An invite code as `newInviteCode()` makes them (checked by every
 * backend alike). Here it also keeps a code from naming another key
 * (`x:by` would be the list of invite `x`).
 */
const CODE = /^[A-Za-z0-9_-]{22}$/;

/** Most audit entries one {@link RedisAdminStore.auditLog} call returns. */
const AUDIT_PAGE = 500;

/** Invites one script forgets at most (the rest at the next call): Redis is never held long. */
const DROP_BATCH = 200;

/**
 * Lua: forgets the invites no longer listed at `now` (at most `DROP_BATCH`),
 * and reads one invite as {code, HGETALL, names} (false when there is none).
 */
const INVITE_LUA = `
local function drop(p, now, batch)
  local gone = redis.call('ZRANGE', p .. 'admin:invites:drop', '-inf', now, 'BYSCORE',
    'LIMIT', 0, batch)
  for _, code in ipairs(gone) do
    local key = p .. 'admin:inv:' .. code
    redis.call('DEL', key, key .. ':by')
    redis.call('ZREM', p .. 'admin:invites', code)
    redis.call('ZREM', p .. 'admin:invites:live', code)
    redis.call('ZREM', p .. 'admin:invites:drop', code)
  end
end
local function read(p, code)
  local key = p .. 'admin:inv:' .. code
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then return false end
  return {code, fields, redis.call('LRANGE', key .. ':by', 0, -1)}
end
`;

/**
 * Keeps a new invite unless as many as the cap can still be used at its
 * creation (forgetting those no longer listed first). ARGV: prefix, code,
 * by, created, expires, uses, used, admin (1/0), revoked (or empty),
 * dropped at, live (1/0), cap, drop batch, names… Returns 1, 0 (at the cap)
 * or -1 (the code exists).
 */
const CREATE = new Script(
  INVITE_LUA + `
local p, code = ARGV[1], ARGV[2]
local key = p .. 'admin:inv:' .. code
if redis.call('EXISTS', key) == 1 then return -1 end
drop(p, ARGV[4], ARGV[13])
if redis.call('ZCOUNT', p .. 'admin:invites:live', '(' .. ARGV[4], '+inf') >= tonumber(ARGV[12]) then
  return 0
end
redis.call('HSET', key, 'b', ARGV[3], 'c', ARGV[4], 'e', ARGV[5], 'n', ARGV[6], 'u', ARGV[7],
  'a', ARGV[8])
if ARGV[9] ~= '' then redis.call('HSET', key, 'r', ARGV[9]) end
for i = 14, #ARGV do redis.call('RPUSH', key .. ':by', ARGV[i]) end
redis.call('ZADD', p .. 'admin:invites', ARGV[4], code)
redis.call('ZADD', p .. 'admin:invites:drop', ARGV[10], code)
if ARGV[11] == '1' then redis.call('ZADD', p .. 'admin:invites:live', ARGV[5], code) end
return 1
`,
);

/** One invite. ARGV: prefix, code. Returns {code, fields, names} or nil. */
const GET = new Script(INVITE_LUA + `return read(ARGV[1], ARGV[2])`);

/**
 * Every invite still listed at `now`, newest first (forgetting the others).
 * ARGV: prefix, now, drop batch. Returns {{code, fields, names}…}.
 */
const LIST = new Script(
  INVITE_LUA + `
local p = ARGV[1]
drop(p, ARGV[2], ARGV[3])
local out = {}
for _, code in ipairs(redis.call('ZRANGE', p .. 'admin:invites', 0, -1, 'REV')) do
  local invite = read(p, code)
  if invite then out[#out + 1] = invite end
end
return out
`,
);

/**
 * Revokes an invite that is not revoked yet. ARGV: prefix, code, at,
 * dropped at (at + the time spent invites stay listed). Returns 1 or 0.
 */
const REVOKE = new Script(`
local p, code = ARGV[1], ARGV[2]
local key = p .. 'admin:inv:' .. code
local f = redis.call('HMGET', key, 'c', 'r')
if not f[1] or f[2] then return 0 end
redis.call('HSET', key, 'r', ARGV[3])
redis.call('ZREM', p .. 'admin:invites:live', code)
redis.call('ZADD', p .. 'admin:invites:drop', ARGV[4], code)
return 1
`);

/**
 * Takes one use of a usable invite for a name. ARGV: prefix, code, name,
 * now. Returns {code, fields, names} (as updated), or why not: 'unknown',
 * 'revoked', 'expired' or 'used' (checked in that order, as inviteState()).
 */
const REDEEM = new Script(
  INVITE_LUA + `
local p, code, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
local key = p .. 'admin:inv:' .. code
local f = redis.call('HMGET', key, 'e', 'n', 'u', 'r')
if not f[1] then return 'unknown' end
if f[4] then return 'revoked' end
if tonumber(f[1]) <= now then return 'expired' end
local used, uses = tonumber(f[3]), tonumber(f[2])
if used >= uses then return 'used' end
redis.call('HINCRBY', key, 'u', 1)
redis.call('RPUSH', key .. ':by', ARGV[3])
if used + 1 >= uses then redis.call('ZREM', p .. 'admin:invites:live', code) end
return read(p, code)
`,
);

/**
 * Gives back the use a name took (its latest), if it holds one. ARGV:
 * prefix, code, name. Returns 1 or 0.
 */
const RELEASE = new Script(`
local p, code = ARGV[1], ARGV[2]
local key = p .. 'admin:inv:' .. code
if redis.call('LREM', key .. ':by', -1, ARGV[3]) == 0 then return 0 end
local used = redis.call('HINCRBY', key, 'u', -1)
local f = redis.call('HMGET', key, 'e', 'n', 'r')
if not f[3] and used < tonumber(f[2]) then
  redis.call('ZADD', p .. 'admin:invites:live', f[1], code)
end
return 1
`);

/**
 * Adds an audit entry under the next id and keeps only the newest ones.
 * ARGV: prefix, keep, entry as JSON. Returns the id.
 */
const AUDIT = new Script(`
local p = ARGV[1]
local id = redis.call('INCR', p .. 'admin:audit:id')
redis.call('ZADD', p .. 'admin:audit', id, id .. ' ' .. ARGV[3])
redis.call('ZREMRANGEBYRANK', p .. 'admin:audit', 0, -(tonumber(ARGV[2]) + 1))
return id
`);

/** Options for {@link RedisAdminStore}. */
export interface RedisAdminStoreOptions {
  /** Prefix of every key: the message store's. @default {"chat:"} */
  prefix?: string;
  /** Milliseconds a command may take before it fails. @default {5000} */
  timeout?: number;
  /** The clock stamping audit entries made with `at: 0`, in ms since the epoch. @default {Date.now} */
  now?: () => number;
  /** Close the client in {@link RedisAdminStore.close}. @default {false} */
  ownsClient?: boolean;
}

/** An {@link AdminStore} in Redis, shared by every node of a chat. */
export class RedisAdminStore implements AdminStore {
  #client: RedisClient;
  #prefix: string;
  #timeout: number;
  #now: () => number;
  #owns: boolean;

  /**
   * Uses a connected client, normally the message store's (see
   * `RedisStore.client`), under the same prefix (`RedisStore.prefix`).
   */
  constructor(client: RedisClient, options: RedisAdminStoreOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "chat:";
    this.#timeout = options.timeout ?? 5000;
    this.#now = options.now ?? Date.now;
    this.#owns = options.ownsClient ?? false;
  }

  #run(script: Script, args: string[]): Promise<Reply> {
    return script.run(this.#client, [this.#prefix, ...args], this.#timeout);
  }

  #call(args: string[]): Promise<Reply> {
    return command(this.#client, args, this.#timeout);
  }

  /** Keeps a new invite, unless {@link MAX_LIVE_INVITES} can still be used (in one script). */
  async createInvite(invite: Invite): Promise<void> {
    if (!CODE.test(invite.code)) throw new RangeError(`"${invite.code}" is not an invite code`);
    const live = invite.revoked === undefined && invite.used < invite.uses;
    const done = await this.#run(CREATE, [
      invite.code,
      invite.by,
      String(invite.created),
      String(invite.expires),
      String(invite.uses),
      String(invite.used),
      invite.admin ? "1" : "0",
      invite.revoked === undefined ? "" : String(invite.revoked),
      String(droppedAt(invite)),
      live ? "1" : "0",
      String(MAX_LIVE_INVITES),
      String(DROP_BATCH),
      ...invite.usedBy,
    ]);
    if (done === -1) throw new Error(`Invite ${invite.code} exists already`);
    if (done === 0) {
      throw new RangeError(
        `Cannot create an invite: ${MAX_LIVE_INVITES} invites can still be used; revoke some first`,
      );
    }
  }

  async invite(code: string): Promise<Invite | null> {
    if (!CODE.test(code)) return null;
    const found = await this.#run(GET, [code]);
    return Array.isArray(found) ? toInvite(found) : null;
  }

  /** Every invite still listed, newest first, in one script that forgets the others. */
  async invites(now: number): Promise<Invite[]> {
    const list = await this.#run(LIST, [String(now), String(DROP_BATCH)]) as Reply[][];
    // More than a batch past their time are forgotten by later calls; not listed meanwhile.
    return list.map(toInvite).filter((invite) => droppedAt(invite) > now);
  }

  async liveInvites(now: number): Promise<number> {
    return Number(
      await this.#call(["ZCOUNT", `${this.#prefix}admin:invites:live`, `(${now}`, "+inf"]),
    );
  }

  async revokeInvite(code: string, at: number): Promise<boolean> {
    if (!CODE.test(code)) return false;
    // Listed for as long as droppedAt() says, from now on.
    return await this.#run(REVOKE, [code, String(at), String(at + SPENT_INVITE_KEEP)]) === 1;
  }

  /** Takes a use in one script (see {@link AdminStore.redeem}). */
  async redeem(code: string, name: string, now: number): Promise<Redeemed> {
    if (!CODE.test(code)) return { ok: false, why: "unknown" };
    const done = await this.#run(REDEEM, [code, name, String(now)]);
    if (typeof done === "string") return { ok: false, why: done as InviteRefusal };
    return { ok: true, invite: toInvite(done as Reply[]) };
  }

  async release(code: string, name: string): Promise<void> {
    if (!CODE.test(code)) return;
    await this.#run(RELEASE, [code, name]);
  }

  async ban(ban: Ban): Promise<void> {
    await this.#call([
      "HSET",
      `${this.#prefix}admin:bans`,
      ban.user.toLowerCase(),
      JSON.stringify(copyBan(ban)),
    ]);
  }

  async unban(user: string): Promise<boolean> {
    return await this.#call(["HDEL", `${this.#prefix}admin:bans`, user.toLowerCase()]) === 1;
  }

  async banned(user: string, now: number): Promise<Ban | null> {
    const json = await this.#call(["HGET", `${this.#prefix}admin:bans`, user.toLowerCase()]);
    if (typeof json !== "string") return null;
    const ban = copyBan(JSON.parse(json));
    return inForce(ban, now) ? ban : null;
  }

  /** Every ban in force, oldest first (ties by lower-cased name, as the other backends). */
  async bans(now: number): Promise<Ban[]> {
    const flat = await this.#call(["HGETALL", `${this.#prefix}admin:bans`]) as string[];
    const all: [string, Ban][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      all.push([flat[i], copyBan(JSON.parse(flat[i + 1]))]);
    }
    return all
      .filter(([, b]) => inForce(b, now))
      .sort(([ka, a], [kb, b]) => a.at - b.at || (ka < kb ? -1 : ka > kb ? 1 : 0))
      .map(([, b]) => b);
  }

  /** Adds an entry under the next id and trims the log, in one script. */
  async audit(entry: Omit<AuditEntry, "id">): Promise<AuditEntry> {
    const kept: Omit<AuditEntry, "id"> = {
      at: entry.at === 0 ? this.#now() : entry.at,
      by: entry.by,
      action: entry.action,
      target: entry.target,
    };
    if (entry.detail !== undefined) kept.detail = entry.detail;
    const id = Number(await this.#run(AUDIT, [String(AUDIT_KEEP), JSON.stringify(kept)]));
    return { id, ...kept };
  }

  async auditLog(query: { before?: number; limit: number }): Promise<AuditEntry[]> {
    const limit = Math.min(Math.max(0, Math.floor(query.limit)), AUDIT_PAGE);
    if (limit === 0) return [];
    const top = query.before === undefined ? "+inf" : `(${query.before}`;
    const members = await this.#call([
      "ZRANGE",
      `${this.#prefix}admin:audit`,
      top,
      "-inf",
      "BYSCORE",
      "REV",
      "LIMIT",
      "0",
      String(limit),
    ]) as string[];
    return members.map((m) => {
      const space = m.indexOf(" ");
      return { id: Number(m.slice(0, space)), ...JSON.parse(m.slice(space + 1)) };
    });
  }

  /** Closes the client if this store opened it. */
  async close(): Promise<void> {
    if (this.#owns) await closeRedis(this.#client);
  }
}

function inForce(ban: Ban, now: number): boolean {
  return ban.until === undefined || ban.until > now;
}

/** A ban with only the fields it has, in their order. */
function copyBan(ban: Ban): Ban {
  const out: Ban = { user: ban.user, by: ban.by, at: ban.at };
  if (ban.until !== undefined) out.until = ban.until;
  if (ban.reason !== undefined) out.reason = ban.reason;
  return out;
}

/** An invite from a script's {code, HGETALL, names}. */
function toInvite(reply: Reply[]): Invite {
  const [code, flat, names] = reply as [string, string[], string[]];
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(flat[i], flat[i + 1]);
  const invite: Invite = {
    code,
    by: f.get("b") ?? "",
    created: Number(f.get("c")),
    expires: Number(f.get("e")),
    uses: Number(f.get("n")),
    used: Number(f.get("u")),
    admin: f.get("a") === "1",
    usedBy: names,
  };
  if (f.has("r")) invite.revoked = Number(f.get("r"));
  return invite;
}
