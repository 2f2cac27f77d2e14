/**
 * The file store of `--redis`: files in chunked keys of the Redis every node
 * shares, so a file uploaded through one node downloads through any other.
 * Everything that checks and writes runs in one Lua script (the quota, an
 * attach raced by two nodes), as in the Redis message store.
 *
 * Keys (under the store's prefix, `chat:` by default):
 *
 * | key               | type   | holds                                                             |
 * | ----------------- | ------ | ----------------------------------------------------------------- |
 * | `file:<id>`       | hash   | a committed file: `o` owner, `n` name, `s` size, `t` type,        |
 * |                   |        | `w`/`h` image size, `c` committed (ms), `v` conv, `r` ref, `m` msg |
 * | `file:<id>:<n>`   | string | chunk `n` of the file (0-based; {@link CHUNK_BYTES} but the last) |
 * | `fileup:<id>`     | hash   | an upload under way: chunk index → bytes written                  |
 * | `files:up`        | zset   | uploads under way → time of their latest write (ms)               |
 * | `files:unbound`   | zset   | files not bound to a message → committed, or attached once sent   |
 * | `files:bound`     | zset   | bound files (score 0: by id)                                      |
 * | `files:usage`     | string | bytes counted against the quota: files and uploads under way      |
 *
 * The meta hash is written only at commit: before it, nothing reads the
 * chunks. An upload whose node died keeps its chunks and its usage until
 * {@link RedisFileStore.sweepUnattached} finds it in `files:up`, untouched
 * for {@link UNATTACHED_TTL}.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { FILE_ID } from "../../protocol.ts";
import { RESP_TYPES } from "redis";
import {
  closeRedis,
  command,
  type RedisClient,
  type Reply,
  Script,
} from "../broker/redis_client.ts";
import {
  type AttachRefusal,
  CHUNK_BYTES,
  type CommitInfo,
  type FileRecord,
  type FileStore,
  type FileWriter,
  newFileId,
  QuotaExceeded,
  UNATTACHED_TTL,
} from "./files.ts";

/**
 * Lua: removes a committed file (meta, chunks, its place in the indexes) and
 * gives its bytes back to the quota; 1 when there was one.
 */
const DROP_LUA = `
local function drop(p, id, chunk)
  local key = p .. 'file:' .. id
  local size = tonumber(redis.call('HGET', key, 's') or '-1')
  if size < 0 then return 0 end
  for i = 0, math.ceil(size / chunk) - 1 do redis.call('DEL', key .. ':' .. i) end
  redis.call('DECRBY', p .. 'files:usage', size)
  redis.call('DEL', key)
  redis.call('ZREM', p .. 'files:unbound', id)
  redis.call('ZREM', p .. 'files:bound', id)
  return 1
end
`;

/**
 * Lua: drops an upload under way (its chunks, and their bytes from the
 * quota); 1 when there was one.
 */
const ABANDON_LUA = `
local function abandon(p, id)
  local up = p .. 'fileup:' .. id
  local sizes = redis.call('HGETALL', up)
  local total = 0
  for i = 1, #sizes, 2 do
    redis.call('DEL', p .. 'file:' .. id .. ':' .. sizes[i])
    total = total + tonumber(sizes[i + 1])
  end
  if total ~= 0 then redis.call('DECRBY', p .. 'files:usage', total) end
  redis.call('DEL', up)
  return redis.call('ZREM', p .. 'files:up', id)
end
`;

/** Starts an upload. ARGV: prefix, id, now. */
const CREATE = new Script(`
redis.call('ZADD', ARGV[1] .. 'files:up', ARGV[3], ARGV[2])
return 1
`);

/**
 * Stores one chunk of an upload under way, if the quota allows what it
 * adds (a chunk written again counts only its growth). ARGV: prefix, id,
 * index, quota, now, bytes. Returns 1 (stored), 0 (over the quota, nothing
 * kept) or -1 (no such upload: committed, aborted or swept).
 */
const WRITE = new Script(`
local p, id, index, bytes = ARGV[1], ARGV[2], ARGV[3], ARGV[6]
if not redis.call('ZSCORE', p .. 'files:up', id) then return -1 end
local up, usage = p .. 'fileup:' .. id, p .. 'files:usage'
local grow = #bytes - tonumber(redis.call('HGET', up, index) or '0')
if grow > 0 and tonumber(redis.call('GET', usage) or '0') + grow > tonumber(ARGV[4]) then
  return 0
end
redis.call('SET', p .. 'file:' .. id .. ':' .. index, bytes)
redis.call('HSET', up, index, #bytes)
if grow ~= 0 then redis.call('INCRBY', usage, grow) end
-- The latest write, not the start: an upload still sending is never swept.
redis.call('ZADD', p .. 'files:up', 'GT', ARGV[5], id)
return 1
`);

/**
 * Makes an upload a ready file: checks that its chunks are exactly those of
 * `size` bytes, writes the meta hash and forgets the upload (its bytes stay
 * counted). ARGV: prefix, id, owner, name, size, type, width (or empty),
 * height (or empty), now, chunk bytes. Returns 1, -1 (no such upload) or -2
 * (the chunks do not make `size` bytes).
 */
const COMMIT = new Script(`
local p, id = ARGV[1], ARGV[2]
if not redis.call('ZSCORE', p .. 'files:up', id) then return -1 end
local up = p .. 'fileup:' .. id
local size, chunk = tonumber(ARGV[5]), tonumber(ARGV[10])
local n = math.ceil(size / chunk)
if redis.call('HLEN', up) ~= n then return -2 end
for i = 0, n - 1 do
  local want = chunk
  if i == n - 1 then want = size - chunk * (n - 1) end
  if tonumber(redis.call('HGET', up, i) or '-1') ~= want then return -2 end
end
local key = p .. 'file:' .. id
redis.call('HSET', key, 'o', ARGV[3], 'n', ARGV[4], 's', ARGV[5], 't', ARGV[6], 'c', ARGV[9])
if ARGV[7] ~= '' then redis.call('HSET', key, 'w', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', key, 'h', ARGV[8]) end
redis.call('ZADD', p .. 'files:unbound', ARGV[9], id)
redis.call('DEL', up)
redis.call('ZREM', p .. 'files:up', id)
return 1
`);

/** Drops an upload under way. ARGV: prefix, id. */
const ABORT = new Script(
  ABANDON_LUA + `
return abandon(ARGV[1], ARGV[2])
`,
);

/**
 * Attaches files to a conversation, all or none: each must be the owner's
 * and ready, or attached to the same conversation by a send with the same
 * non-empty ref (a resend). A first attach moves the file's time in
 * `files:unbound` to now: the sweep counts an unbound file's age from its
 * send, so an old upload sent just now is not removed before its bind (a
 * resend leaves the time alone). ARGV: prefix, owner, conv, ref, now, ids…
 * Returns {1, fields of each file…} (HGETALL, in the order given) or {0, id}.
 */
const ATTACH = new Script(`
local p, owner, conv, ref, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
for i = 6, #ARGV do
  local f = redis.call('HMGET', p .. 'file:' .. ARGV[i], 'o', 'v', 'r')
  if f[1] ~= owner or (f[2] and (ref == '' or f[2] ~= conv or f[3] ~= ref)) then
    return {0, ARGV[i]}
  end
end
local out = {1}
for i = 6, #ARGV do
  local key = p .. 'file:' .. ARGV[i]
  if redis.call('HEXISTS', key, 'v') == 0 then
    redis.call('HSET', key, 'v', conv, 'r', ref)
    redis.call('ZADD', p .. 'files:unbound', 'XX', now, ARGV[i])
  end
  out[#out + 1] = redis.call('HGETALL', key)
end
return out
`);

/**
 * Records the message carrying files attached to a conversation (others are
 * left alone). ARGV: prefix, conv, msg, ids…
 */
const BIND = new Script(`
local p, conv = ARGV[1], ARGV[2]
for i = 4, #ARGV do
  local key = p .. 'file:' .. ARGV[i]
  if redis.call('HGET', key, 'v') == conv then
    redis.call('HSET', key, 'm', ARGV[3])
    redis.call('ZREM', p .. 'files:unbound', ARGV[i])
    redis.call('ZADD', p .. 'files:bound', 0, ARGV[i])
  end
end
return 0
`);

/**
 * Moves every file attached or bound to a conversation to another (a room's
 * rename). No index by conversation: it reads the conversation of every
 * file sent (`files:bound`, and the attached ones of `files:unbound`),
 * one HGET each — a rare admin step. ARGV: prefix, from, to. Returns how
 * many moved.
 */
const REBIND = new Script(`
local p, from, to = ARGV[1], ARGV[2], ARGV[3]
local n = 0
for _, index in ipairs({'files:bound', 'files:unbound'}) do
  for _, id in ipairs(redis.call('ZRANGE', p .. index, 0, -1)) do
    local key = p .. 'file:' .. id
    if redis.call('HGET', key, 'v') == from then
      redis.call('HSET', key, 'v', to)
      n = n + 1
    end
  end
end
return n
`);

/** Removes committed files. ARGV: prefix, chunk bytes, ids… Returns how many there were. */
const REMOVE = new Script(
  DROP_LUA + `
local n = 0
for i = 3, #ARGV do n = n + drop(ARGV[1], ARGV[i], tonumber(ARGV[2])) end
return n
`,
);

/**
 * One round of the sweep: at most `limit` uploads untouched since one time
 * and at most `limit` files never bound whose time in `files:unbound`
 * (committed, or attached once sent) is before another. ARGV:
 * prefix, chunk bytes, files' cut, limit, uploads' cut. Returns {uploads
 * dropped, files removed}.
 */
const SWEEP = new Script(
  DROP_LUA + ABANDON_LUA + `
local p, chunk, bound = ARGV[1], tonumber(ARGV[2]), '(' .. ARGV[3]
local uploads, files = 0, 0
for _, id in ipairs(redis.call('ZRANGE', p .. 'files:up', '-inf', '(' .. ARGV[5], 'BYSCORE',
    'LIMIT', 0, ARGV[4])) do
  uploads = uploads + abandon(p, id)
end
for _, id in ipairs(redis.call('ZRANGE', p .. 'files:unbound', '-inf', bound, 'BYSCORE',
    'LIMIT', 0, ARGV[4])) do
  files = files + drop(p, id, chunk)
end
return {uploads, files}
`,
);

/**
 * Bound files after an id, by id. ARGV: prefix, after (or empty), limit.
 * Returns {id, conv, msg, …}.
 */
const BOUND = new Script(`
local p = ARGV[1]
local low = '-'
if ARGV[2] ~= '' then low = '(' .. ARGV[2] end
local out = {}
for _, id in ipairs(redis.call('ZRANGE', p .. 'files:bound', low, '+', 'BYLEX',
    'LIMIT', 0, ARGV[3])) do
  local f = redis.call('HMGET', p .. 'file:' .. id, 'v', 'm')
  out[#out + 1] = id
  out[#out + 1] = f[1] or ''
  out[#out + 1] = f[2] or '0'
end
return out
`);

/** Uploads and files one sweep script handles (each), so that Redis is never held long. */
const SWEEP_BATCH = 100;

/** Replies of commands whose bulk strings are bytes (chunks), not text. */
const AS_BYTES = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } };

/** Options for {@link RedisFileStore}. */
export interface RedisFileStoreOptions {
  /** Most bytes kept (files and uploads under way, over every node). */
  quota: number;
  /** The clock, in ms since the epoch (for tests). @default {Date.now} */
  now?: () => number;
  /** Prefix of every key: the message store's. @default {"chat:"} */
  prefix?: string;
  /** Milliseconds a command may take before it fails. @default {5000} */
  timeout?: number;
  /** Close the client in {@link RedisFileStore.close}. @default {false} */
  ownsClient?: boolean;
}

/** A file record from the fields of its meta hash (HGETALL). */
function toRecord(id: string, flat: readonly Reply[]): FileRecord {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < flat.length; i += 2) f.set(String(flat[i]), String(flat[i + 1]));
  const record: FileRecord = {
    id,
    name: f.get("n")!,
    size: Number(f.get("s")),
    type: f.get("t")!,
    owner: f.get("o")!,
    created: Number(f.get("c")),
  };
  if (f.has("w")) record.width = Number(f.get("w"));
  if (f.has("h")) record.height = Number(f.get("h"));
  if (f.has("v")) {
    record.conv = f.get("v");
    record.ref = f.get("r") ?? "";
  }
  if (f.has("m")) record.msg = Number(f.get("m"));
  return record;
}

/** Bytes as Redis takes them in an argument (a view, not a copy). */
function asArgument(bytes: Uint8Array): string {
  // node-redis sends a Buffer as it is; `Script.run` is typed for text only.
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength) as unknown as string;
}

/** A {@link FileStore} in Redis, shared by every node of a chat. */
export class RedisFileStore implements FileStore {
  /** The quota in bytes. */
  readonly quota: number;
  #client: RedisClient;
  #prefix: string;
  #timeout: number;
  #owns: boolean;
  #now: () => number;

  /**
   * Uses a connected client, normally the message store's (see
   * `RedisStore.client`), under the same prefix.
   */
  constructor(client: RedisClient, options: RedisFileStoreOptions) {
    this.#client = client;
    this.quota = options.quota;
    this.#now = options.now ?? Date.now;
    this.#prefix = options.prefix ?? "chat:";
    this.#timeout = options.timeout ?? 5000;
    this.#owns = options.ownsClient ?? false;
  }

  #run(script: Script, args: string[]): Promise<Reply> {
    return script.run(this.#client, [this.#prefix, ...args], this.#timeout);
  }

  /** A command whose bulk replies are bytes, failing after the timeout as {@link command} does. */
  async #bytes(args: string[]): Promise<Buffer> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.#client.sendCommand(args, AS_BYTES) as Promise<Buffer>,
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error(`Redis did not answer within ${this.#timeout} ms`)),
            this.#timeout,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Starts an upload, listed in `files:up` so that it is swept if this node dies. */
  async create(owner: string, name: string): Promise<FileWriter> {
    const id = newFileId();
    await this.#run(CREATE, [id, String(this.#now())]);
    const finished = () => new Error(`Upload ${id} is finished: committed, aborted or swept`);
    return {
      id,
      write: async (index, bytes) => {
        if (!Number.isInteger(index) || index < 0 || bytes.length > CHUNK_BYTES) {
          throw new RangeError(`Cannot write chunk ${index}: at most ${CHUNK_BYTES} bytes each`);
        }
        const done = await this.#run(WRITE, [
          id,
          String(index),
          String(this.quota),
          String(this.#now()),
          asArgument(bytes),
        ]);
        if (done === 0) throw new QuotaExceeded(this.quota);
        if (done === -1) throw finished();
      },
      commit: async (info: CommitInfo) => {
        const created = this.#now();
        const done = await this.#run(COMMIT, [
          id,
          owner,
          name,
          String(info.size),
          info.type,
          info.width === undefined ? "" : String(info.width),
          info.height === undefined ? "" : String(info.height),
          String(created),
          String(CHUNK_BYTES),
        ]);
        if (done === -1) throw finished();
        if (done === -2) {
          throw new RangeError(
            `Cannot commit upload ${id}: its chunks do not make ${info.size} bytes`,
          );
        }
        const record: FileRecord = { id, name, size: info.size, type: info.type, owner, created };
        if (info.width !== undefined) record.width = info.width;
        if (info.height !== undefined) record.height = info.height;
        return record;
      },
      abort: async () => {
        await this.#run(ABORT, [id]);
      },
    };
  }

  /** A committed file, or null. */
  async get(id: string): Promise<FileRecord | null> {
    // Not a file id (`x:0` would name a chunk key): no such file.
    if (!FILE_ID.test(id)) return null;
    const flat = await command(
      this.#client,
      ["HGETALL", `${this.#prefix}file:${id}`],
      this.#timeout,
    );
    return Array.isArray(flat) && flat.length > 0 ? toRecord(id, flat) : null;
  }

  /**
   * Reads the bytes from `start` to `end` one chunk key per pull (GETRANGE of
   * the part wanted). A chunk that comes back short was removed meanwhile
   * (a remove deletes the meta and every chunk in one script): the stream
   * errors rather than end early.
   */
  read(id: string, start: number, end: number): ReadableStream<Uint8Array> {
    const key = `${this.#prefix}file:${id}`;
    let pos = start;
    let last = -1;
    return new ReadableStream<Uint8Array>({
      start: async () => {
        if (!FILE_ID.test(id)) throw new Error(`File ${id} is gone`);
        const size = await command(this.#client, ["HGET", key, "s"], this.#timeout);
        if (size === null) throw new Error(`File ${id} is gone`);
        last = Math.min(end, Number(size));
      },
      pull: async (controller) => {
        if (pos >= last) return controller.close();
        const index = Math.floor(pos / CHUNK_BYTES);
        const from = pos - index * CHUNK_BYTES;
        const take = Math.min(CHUNK_BYTES - from, last - pos);
        const got = await this.#bytes([
          "GETRANGE",
          `${key}:${index}`,
          String(from),
          String(from + take - 1),
        ]);
        if (got.length !== take) throw new Error(`File ${id} is gone`);
        controller.enqueue(new Uint8Array(got.buffer, got.byteOffset, got.byteLength));
        pos += take;
      },
    }, { highWaterMark: 0 });
  }

  /** Attaches files in one script (see {@link FileStore.attach}). */
  async attach(
    owner: string,
    ids: readonly string[],
    conv: string,
    ref: string,
  ): Promise<FileRecord[] | AttachRefusal> {
    if (ids.length === 0) return [];
    const bad = ids.find((id) => !FILE_ID.test(id));
    if (bad !== undefined) return { id: bad };
    const [ok, ...rest] = await this.#run(ATTACH, [
      owner,
      conv,
      ref,
      String(this.#now()),
      ...ids,
    ]) as Reply[];
    if (ok !== 1) return { id: String(rest[0]) };
    return rest.map((flat, i) => toRecord(ids[i], flat as Reply[]));
  }

  /** Records the message carrying files, in one script. */
  async bind(ids: readonly string[], conv: string, msg: number): Promise<void> {
    const valid = ids.filter((id) => FILE_ID.test(id));
    if (valid.length === 0) return;
    await this.#run(BIND, [conv, String(msg), ...valid]);
  }

  /** Moves the files of conversation `from` to `to`, in one script (see {@link FileStore.rebind}). */
  async rebind(from: string, to: string): Promise<number> {
    return Number(await this.#run(REBIND, [from, to]));
  }

  /** Removes files and gives their bytes back, in one script. */
  async remove(ids: readonly string[]): Promise<void> {
    const valid = ids.filter((id) => FILE_ID.test(id));
    if (valid.length === 0) return;
    await this.#run(REMOVE, [String(CHUNK_BYTES), ...valid]);
  }

  /**
   * Removes files never bound that were committed (ready ones) or attached
   * (sent ones whose message never came) before `before`, and drops
   * uploads not written to for {@link UNATTACHED_TTL} (by this store's
   * clock) nor since `before`: their node died, or their client stalled. A
   * batch per script. Resolves the number of files removed (dropped uploads
   * were never files).
   */
  async sweepUnattached(before: number): Promise<number> {
    // An upload is judged by its own idleness, not by the cut for files:
    // however close `before` is to now, one still sending is never dropped.
    const idle = Math.min(before, this.#now() - UNATTACHED_TTL);
    let removed = 0;
    for (;;) {
      const [uploads, files] = await this.#run(SWEEP, [
        String(CHUNK_BYTES),
        String(before),
        String(SWEEP_BATCH),
        String(idle),
      ]) as number[];
      removed += files;
      if (uploads < SWEEP_BATCH && files < SWEEP_BATCH) return removed;
    }
  }

  /** Bound files after `after`, by id, in one script. */
  async bound(after: string, limit: number): Promise<{ id: string; conv: string; msg: number }[]> {
    if (limit <= 0) return [];
    const flat = await this.#run(BOUND, [after, String(limit)]) as string[];
    const out: { id: string; conv: string; msg: number }[] = [];
    for (let i = 0; i < flat.length; i += 3) {
      out.push({ id: flat[i], conv: flat[i + 1], msg: Number(flat[i + 2]) });
    }
    return out;
  }

  /** Bytes counted against the quota, over every node. */
  async usage(): Promise<number> {
    return Number(
      await command(this.#client, ["GET", `${this.#prefix}files:usage`], this.#timeout) ?? 0,
    );
  }

  /** Closes the client if this store opened it. */
  async close(): Promise<void> {
    if (this.#owns) await closeRedis(this.#client);
  }
}
