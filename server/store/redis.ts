/**
 * The Redis store (`--redis`): the chat's durable state, shared by every
 * node. Each conversation keeps its messages in their current state (a hash
 * of JSON by id) with two sorted sets beside it: by id (for `before` pages and
 * the cap of `keep` messages) and by `seq`, the position of each message's
 * latest change (for `since` pages). Everything that checks and writes runs
 * in one Lua script, so nodes sharing the Redis never see half a change.
 *
 * Keys (all under `prefix`, `chat:` by default):
 *
 * | key               | type   | holds                                                            |
 * | ----------------- | ------ | ---------------------------------------------------------------- |
 * | `schema`          | string | layout version (`2`); set once data of older layouts is migrated |
 * | `seq`             | hash   | conversation → its position: latest message or change            |
 * | `last`            | hash   | conversation → newest message id                                 |
 * | `trimmed`         | hash   | conversation → highest `seq` of any message dropped              |
 * | `ms`              | hash   | conversation → newest timestamp (ms)                             |
 * | `m:<conv>`        | hash   | message id → the message as JSON, in its current state           |
 * | `ids:<conv>`      | zset   | kept message ids (score: id)                                     |
 * | `revs:<conv>`     | zset   | kept message ids (score: `seq` of the latest change)             |
 * | `rp:<conv>:<id>`  | set    | ids of the kept replies to message `id` (while `id` is kept)     |
 * | `dms:<user>`      | set    | DM conversation keys the user is in                              |
 * | `rooms`           | hash   | room → creator                                                   |
 * | `gone`            | set    | old names of renamed rooms, until a room of the name is created  |
 * | `renamedto`       | hash   | old name of a renamed room → `top\nnew`: its ids up to `top`     |
 * |                   |        | moved to `new` (resends recorded under the old name find them)   |
 * | `topics`          | hash   | room → topic (rooms without one are not listed)                  |
 * | `settings`        | hash   | room → its flags: `p` private, `r` read-only, `a` archived,      |
 * |                   |        | `j` auto-join, `m` `@room` for admins only, in that order (plain |
 * |                   |        | rooms are not listed)                                            |
 * | `created`         | hash   | user → number of rooms created                                   |
 * | `members:<room>`  | set    | members of a room                                                |
 * | `membersz:<room>` | zset   | the same members (score 0), for pages by name; a page rebuilds   |
 * |                   |        | it from `members:<room>` when they differ (data of old versions) |
 * | `in:<user>`       | set    | rooms of a user                                                  |
 * | `read:<user>`     | hash   | conversation → read marker                                       |
 * | `users`           | set    | users who ever signed in                                         |
 * | `seen`            | hash   | lower-cased name → when last seen (ms)                           |
 * | `claim:<name>`    | hash   | claim of a lower-cased name: `n` name, `s` session, `t` seen,    |
 * |                   |        | `c` since when held (ms; absent for claims made before: 0)       |
 * | `claims`          | zset   | lower-cased claimed name → seen (ms)                             |
 * | `revoked:<sid>`   | string | until when (ms) a session is revoked; expires then               |
 * | `sess:<name>`     | zset   | sessions of a lower-cased name (score: last signed in, ms),      |
 * |                   |        | the latest 50 (`SESSIONS_KEPT`)                                  |
 * | `renames`         | list   | `{room, name, at}` JSON of the latest renames, newest first,     |
 * |                   |        | 100 at most (`RENAMES_KEPT`)                                     |
 * | `sent:<user>`     | hash   | ref → `id\nms\nsha1(text)\nconv`, latest message per ref         |
 * | `sentq:<user>`    | list   | the refs of `sent:<user>`, newest first (256 at most)            |
 *
 * A stored message is `{id, seq, room | to, from, text, ms, edited?,
 * deleted?, removed?, reactions?, replyTo?, files?, ev?}` with `ms` the time in milliseconds,
 * `removed` true on the tombstone of a message an admin deleted (someone else's),
 * `reactions` a list of `[emoji, [user…]]` (a JSON object would lose the
 * order in Lua), `files` the files it carries (`{id, name, size, type,
 * width?, height?}`, kept through edits and reactions, gone with a delete;
 * their bytes are the file store's, see `server/files/redis.ts`) and `ev` the numbers of the broker's feed entries that hold a
 * text of it: `ev[1]` its creation's (0 when it was not published), then
 * its edits' still in the feed. Deleting the message deletes them, so its
 * text is gone from Redis, not only from its history.
 *
 * A reply's `replyTo` quotes its original: the original's edits rewrite the
 * snippet of every kept reply (found through `rp:<conv>:<id>`), and its
 * delete empties it, so the original's text outlives it nowhere. A reply's
 * creation entry in the feed names its original without quoting it (a node
 * catching up quotes the original as it is then, see {@link RedisStore.quoteNow}),
 * so the original's edits and delete leave it as it is. (Entries written
 * before that quote it: a delete still removes those.) The
 * previous layout (`log:<conv>` streams) is converted at connect (see
 * {@link RedisStore.connect}).
 *
 * The broker's keys (`evseq`, `feed`, `epoch`, `node:*`, `online:*`,
 * `nodes`) live under the same prefix; see `server/broker/redis.ts`.
 *
 * Why this file is over 600 lines: every method is a Lua script beside the
 * few lines that call it, and the scripts share one key layout (see
 * docs/scaling.md); keeping them together keeps that layout in one place.
 *
 * @module
 */
import {
  type ChatMessage,
  type Conversation,
  MAX_REACTIONS,
  MAX_REACTIONS_TOTAL,
  type ReplyRef,
  snippetOf,
  UNREAD_CAP,
} from "../../protocol.ts";
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
  type Applied,
  type Change,
  type ChangeRefusal,
  type ChangeResult,
  type ClaimResult,
  dmPair,
  type Draft,
  type JoinResult,
  type MembersPage,
  type NameClaim,
  type Page,
  type PageQuery,
  type RecentQuery,
  REF_WINDOW,
  refreshReplies,
  type Rename,
  type RenameResult,
  RENAMES_KEPT,
  ReplyChanged,
  replyRef,
  RoomGone,
  type RoomInfo,
  type RoomSettings,
  type RoomSettingsChange,
  type SearchScope,
  searchText,
  searchWords,
  SESSIONS_KEPT,
  type SessionSeen,
  sinceGap,
  type Store,
} from "./store.ts";
import { TurnBatch } from "../turn_batch.ts";
import { Slice } from "./time_slice.ts";
import type { FileMeta } from "../files/files.ts";

/** The key layout this file reads and writes (see the module's table). */
const SCHEMA = "2";

/**
 * Lua: the conversation's clock, read from Redis (`TIME`) and never earlier
 * than its previous message or change (a clock stepped back must not make
 * times go backwards). Writes it back.
 */
const CLOCK_LUA = `
local function clock(p, conv)
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local prev = tonumber(redis.call('HGET', p .. 'ms', conv) or '0')
  if ms < prev then ms = prev end
  redis.call('HSET', p .. 'ms', conv, ms)
  return ms
end
`;

/**
 * Lua: drops the oldest messages past `keep` and raises the `trimmed`
 * watermark to the highest `seq` among them (a message changed lately may be
 * dropped with a `seq` above messages still kept). A dropped message's reply
 * index goes with it. Replies are newer than their original, so a dropped
 * reply's original was dropped first (or now): no index keeps a dropped reply.
 */
const CAP_LUA = `
local function cap(p, conv, keep)
  local ids, revs = p .. 'ids:' .. conv, p .. 'revs:' .. conv
  local over = redis.call('ZCARD', ids) - keep
  if over <= 0 then return end
  local gone = redis.call('ZPOPMIN', ids, over)
  local top = tonumber(redis.call('HGET', p .. 'trimmed', conv) or '0')
  for i = 1, #gone, 2 do
    local s = tonumber(redis.call('ZSCORE', revs, gone[i]) or '0')
    if s > top then top = s end
    redis.call('HDEL', p .. 'm:' .. conv, gone[i])
    redis.call('ZREM', revs, gone[i])
    redis.call('DEL', p .. 'rp:' .. conv .. ':' .. gone[i])
  end
  redis.call('HSET', p .. 'trimmed', conv, top)
end
`;

/**
 * How many renames in a row a resend's recorded room name is followed
 * through (see `WHERE_NOW_LUA`): a resend comes within seconds of its send, so
 * more renames than this in between are not worth a longer walk.
 */
const RENAME_HOPS = 4;

/**
 * Lua: the name, now, of the room where the message `id` was sent under the
 * name `conv`, or nil past {@link RENAME_HOPS} renames. `renamedto` holds,
 * for each name a room was renamed away from, `top\nnew`: messages of that
 * name up to id `top` moved to `new`; later ones are a later room's of the
 * name. The rename script drops the entry of the name it renames to, so a
 * chain has no cycles.
 */
const WHERE_NOW_LUA = `
local function where_now(p, conv, id)
  for _ = 1, ${RENAME_HOPS} do
    local entry = redis.call('HGET', p .. 'renamedto', conv)
    if not entry then return conv end
    local top, to = string.match(entry, '^(%d+)\\n(.*)$')
    if id > tonumber(top) then return conv end
    conv = to
  end
  return nil
end
`;

/**
 * Lua: ISO-8601 UTC of a time in ms (`2025-01-02T03:04:05.678Z`), as
 * JavaScript's `toISOString` writes it (Redis's Lua has no `os.date`).
 * Days to a civil date after Howard Hinnant's `civil_from_days`.
 */
const ISO_LUA = `
local function iso(ms)
  local s = math.floor(ms / 1000)
  local days = math.floor(s / 86400)
  local rem = s - days * 86400
  local z = days + 719468
  local era = math.floor(z / 146097)
  local doe = z - era * 146097
  local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524)
    - math.floor(doe / 146096)) / 365)
  local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
  local mp = math.floor((5 * doy + 2) / 153)
  local d = doy - math.floor((153 * mp + 2) / 5) + 1
  local m = mp < 10 and mp + 3 or mp - 9
  local y = yoe + era * 400
  if m <= 2 then y = y + 1 end
  return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d,
    math.floor(rem / 3600), math.floor(rem / 60) % 60, rem % 60, ms % 1000)
end
`;

/**
 * Gives a message the next position of its conversation as its id (and
 * `seq`) and Redis's clock (never earlier than the conversation's previous
 * message), keeps it (dropping the oldest past `keep`), and, when a channel
 * is given, numbers it in the event feed, keeps it there and publishes it:
 * one atomic step, so every node sees a conversation's messages and changes
 * in `seq` order.
 *
 * With a ref, the sender's latest refs are checked first (when `once` is 1)
 * and kept after: if the sender's latest message with the ref went to the
 * same conversation with the same text (by SHA-1), that message is returned
 * (its JSON in its current state, when still kept) and nothing is stored or
 * published. A record names the room as it was named then (a rename
 * leaves `sent:<user>` as it is): `renamedto` leads from it to the room's
 * name now (see `WHERE_NOW_LUA`). A kept message must be the sender's with
 * the recorded time; one that moved with a rename must still be kept. With `member`,
 * a sender not in the room is then refused ({-2}): after the resend check,
 * so a resend of a message stored while a member is still answered. A reply
 * is then checked against its original: kept, not deleted and still at the
 * `seq` the quote was taken at, or nothing is stored ({-1}); it joins the
 * original's reply index.
 *
 * Returns {id, ms, seq, 1} for a new message, {id, ms, 0, 0, json?} for a
 * resend, {-1} when the original changed, {-2} when the room was renamed
 * away (its old name is in `gone`) or the sender is not in it (`member`).
 *
 * The feed keeps `feedJson` when given (a reply's event without its quote's
 * text: the original's edits and delete would leave it stale), the channel
 * gets `eventJson`.
 *
 * ARGV: prefix, conv, keep, dmA, dmB, channel, feedLength, eventJson, from,
 * ref (or empty), once (1/0), refWindow, refTtl ms, room (or empty), to (or
 * empty), replyTo id (or empty), its from, its snippet, its seq, files JSON
 * (or empty), member ('1' or empty), text, feedJson (or empty: eventJson).
 */
const APPEND = new Script(
  CLOCK_LUA + CAP_LUA + WHERE_NOW_LUA + `
local p, conv, ref, text = ARGV[1], ARGV[2], ARGV[10], ARGV[22]
local mkey = p .. 'm:' .. conv
-- The old name of a renamed room (before the resend check: a resend there is refused too).
if ARGV[14] ~= '' and redis.call('SISMEMBER', p .. 'gone', conv) == 1 then return {-2} end
local sent, order, digest, prev
if ref ~= '' then
  sent, order = p .. 'sent:' .. ARGV[9], p .. 'sentq:' .. ARGV[9]
  digest = redis.sha1hex(text)
  prev = redis.call('HGET', sent, ref)
  if prev and ARGV[11] == '1' then
    local pid, pms, pdigest, pconv = string.match(prev, '^(%d+)\\n(%d+)\\n(%x+)\\n(.*)$')
    -- Recorded under the name the room had then (records are not rewritten by a rename).
    local now = pconv
    if ARGV[14] ~= '' then now = where_now(p, pconv, tonumber(pid)) end
    if now == conv and pdigest == digest then
      local stored = redis.call('HGET', mkey, pid)
      if stored then
        -- As it is now (edited, deleted…), if it is the sender's of that time:
        -- an entry overwritten by a later rename of the name may lead elsewhere.
        local m = cjson.decode(stored)
        if m.from == ARGV[9] and m.ms == tonumber(pms) then
          return {tonumber(pid), tonumber(pms), 0, 0, stored}
        end
      elseif now == pconv then
        -- Dropped since: rebuilt by the caller. One that moved and is not
        -- here cannot be told from a stale lead: a new message (as SQLite has it).
        return {tonumber(pid), tonumber(pms), 0, 0}
      end
    end
  end
end
if ARGV[21] == '1' and ARGV[14] ~= '' and
    redis.call('SISMEMBER', p .. 'members:' .. ARGV[14], ARGV[9]) == 0 then
  -- Not in the room (a send that raced a rename, a leave or a kick): nothing is written.
  return {-2}
end
if ARGV[16] ~= '' then
  -- Checked before anything is written: a refused reply leaves no trace.
  local raw = redis.call('HGET', mkey, ARGV[16])
  if not raw then return {-1} end
  local original = cjson.decode(raw)
  if original.deleted or original.seq ~= tonumber(ARGV[19]) then return {-1} end
end
if prev then redis.call('LREM', order, 1, ref) end
local id = redis.call('HINCRBY', p .. 'seq', conv, 1)
local ms = clock(p, conv)
local msg = {id = id, seq = id, from = ARGV[9], text = text, ms = ms}
if ARGV[14] ~= '' then msg.room = ARGV[14] else msg.to = ARGV[15] end
if ARGV[16] ~= '' then
  msg.replyTo = {id = tonumber(ARGV[16]), from = ARGV[17], snippet = ARGV[18]}
  redis.call('SADD', p .. 'rp:' .. conv .. ':' .. ARGV[16], id)
end
if ARGV[20] ~= '' then msg.files = cjson.decode(ARGV[20]) end
local seq = 0
if ARGV[6] ~= '' then
  seq = redis.call('INCR', p .. 'evseq')
  -- The feed entry holds the text (a reply's names its original without
  -- quoting it): a delete removes it (see CHANGE).
  msg.ev = {seq}
end
redis.call('HSET', mkey, id, cjson.encode(msg))
redis.call('ZADD', p .. 'ids:' .. conv, id, id)
redis.call('ZADD', p .. 'revs:' .. conv, id, id)
redis.call('HSET', p .. 'last', conv, id)
cap(p, conv, tonumber(ARGV[3]))
if ARGV[4] ~= '' then
  redis.call('SADD', p .. 'dms:' .. ARGV[4], conv)
  redis.call('SADD', p .. 'dms:' .. ARGV[5], conv)
end
if seq > 0 then
  local head = seq .. '\\n' .. id .. '\\n' .. ms .. '\\n'
  local entry = ARGV[8]
  if ARGV[23] and ARGV[23] ~= '' then entry = ARGV[23] end
  redis.call('XADD', p .. 'feed', 'MAXLEN', '~', ARGV[7], seq .. '-0', 'p', head .. entry)
  redis.call('PUBLISH', ARGV[6], head .. ARGV[8])
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
`,
);

/**
 * Checks a change against the message's current state and applies it: the
 * change takes the conversation's next position, which becomes the message's
 * `seq`. When a channel is given, the change is numbered in the event feed,
 * kept there and published as `{"kind":"change","applied":…,"origin":…}`, in
 * the same step (as APPEND does for messages).
 *
 * An edit rewrites the quote of every kept reply to the message with the new
 * snippet; a delete empties those quotes and deletes the message's own
 * entries from the feed: the text it had survives nowhere. The replies'
 * creation entries stay (they name the original without quoting it; a node
 * catching up quotes it as it is then), except those written before that,
 * which quote it. A reply deleted leaves its original's reply index.
 *
 * Returns {1, appliedJson} when applied, {1} when there was nothing to do (a
 * reaction that is already so, a delete of a tombstone), {0, refusal}.
 *
 * ARGV: prefix, conv, id, user, kind (edit/delete/react), text or emoji,
 * on (1/0), sentAfter ms for edit and delete (or empty), maxReactions, channel (or empty),
 * feedLength, origin JSON (or empty), maxReactionsTotal, the edit's snippet
 * (computed by the caller: Lua counts bytes, not characters), moderator (1
 * for an admin's delete, which checks neither the author nor sentAfter, or
 * empty).
 */
const CHANGE = new Script(
  CLOCK_LUA + ISO_LUA + `
local p, conv, id, user, kind, arg = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local mkey, feed = p .. 'm:' .. conv, p .. 'feed'
local raw = redis.call('HGET', mkey, id)
if not raw then return {0, 'unknown_message'} end
local msg = cjson.decode(raw)
local moderator = kind == 'delete' and ARGV[15] == '1'
if kind ~= 'react' and not moderator and msg.from ~= user then return {0, 'forbidden'} end
-- Before the tombstone check: a delete of a message sent before sentAfter (an
-- earlier holder's of the name) is refused whatever its state.
if kind == 'delete' and not moderator and ARGV[8] ~= '' and msg.ms < tonumber(ARGV[8]) then
  return {0, 'too_late'}
end
if msg.deleted then
  if kind == 'delete' then return {1} end
  return {0, 'unknown_message'}
end
if kind == 'edit' and ARGV[8] ~= '' and msg.ms < tonumber(ARGV[8]) then
  return {0, 'too_late'}
end
local applied = {conv = conv, id = msg.id, user = user}
if kind == 'react' then
  local on = ARGV[7] == '1'
  local list = msg.reactions or {}
  local at, pos
  local total = 0
  for i = 1, #list do
    if list[i][1] == arg then at = i end
    total = total + #list[i][2]
  end
  if at then
    for j = 1, #list[at][2] do
      if list[at][2][j] == user then pos = j end
    end
  end
  if (pos ~= nil) == on then return {1} end
  if on and (total >= tonumber(ARGV[13]) or (not at and #list >= tonumber(ARGV[9]))) then
    return {0, 'too_many_reactions'}
  end
  if on and at then
    table.insert(list[at][2], user)
  elseif on then
    list[#list + 1] = {arg, {user}}
  else
    table.remove(list[at][2], pos)
    if #list[at][2] == 0 then table.remove(list, at) end
  end
  -- cjson writes an empty table as {}: no reactions is no field.
  if #list > 0 then msg.reactions = list else msg.reactions = nil end
  applied.kind, applied.emoji, applied.on = 'reaction', arg, on
end
local seq = redis.call('HINCRBY', p .. 'seq', conv, 1)
local n = 0
if ARGV[10] ~= '' then n = redis.call('INCR', p .. 'evseq') end
-- The kept replies quoting this message (the index may name replies gone since).
local rp = p .. 'rp:' .. conv .. ':' .. id
local function replies(each)
  for _, r in ipairs(redis.call('SMEMBERS', rp)) do
    local rraw = redis.call('HGET', mkey, r)
    local reply = rraw and cjson.decode(rraw)
    if reply and not reply.deleted and reply.replyTo and reply.replyTo.id == msg.id then
      each(reply)
      redis.call('HSET', mkey, r, cjson.encode(reply))
    else
      redis.call('SREM', rp, r)
    end
  end
end
if kind == 'edit' then
  local ms = clock(p, conv)
  if ms < msg.ms then ms = msg.ms end
  msg.text, msg.edited = arg, iso(ms)
  applied.kind, applied.text, applied.editedAt = 'edited', arg, msg.edited
  replies(function(reply) reply.replyTo.snippet = ARGV[14] end)
elseif kind == 'delete' then
  -- The text goes from the feed too: a node catching up skips these entries.
  for _, e in ipairs(msg.ev or {}) do redis.call('XDEL', feed, e .. '-0') end
  replies(function(reply)
    reply.replyTo = {id = msg.id, from = msg.from, snippet = '', deleted = true}
    -- Its creation entry names this message without quoting it, and stays
    -- (a node catching up delivers the reply, quoting the tombstone). One
    -- written by an older version quotes it: that one goes. A quote in the
    -- text is escaped, so only the key itself matches.
    local created = reply.ev and reply.ev[1] or 0
    if created > 0 then
      local e = redis.call('XRANGE', feed, created .. '-0', created .. '-0')
      if e[1] and string.find(e[1][2][2], '"snippet":', 1, true) then
        redis.call('XDEL', feed, created .. '-0')
      end
    end
  end)
  redis.call('DEL', rp)
  if msg.replyTo then
    redis.call('SREM', p .. 'rp:' .. conv .. ':' .. msg.replyTo.id, msg.id)
  end
  local removed = moderator and msg.from ~= user
  -- What a tombstone shows, for clients that never had the message: its
  -- creation's feed entry is gone, and a node catching up skips it.
  applied.from, applied.ts = msg.from, iso(msg.ms)
  msg = {id = msg.id, room = msg.room, to = msg.to, from = msg.from, text = '', ms = msg.ms,
    deleted = true}
  applied.kind = 'deleted'
  if removed then msg.removed, applied.removed = true, true end
end
msg.seq, applied.seq = seq, seq
local json = cjson.encode(applied)
if n > 0 then
  local origin = ''
  if ARGV[12] ~= '' then origin = ',"origin":' .. ARGV[12] end
  local payload = n .. '\\n\\n\\n{"kind":"change","applied":' .. json .. origin .. '}'
  redis.call('XADD', feed, 'MAXLEN', '~', ARGV[11], n .. '-0', 'p', payload)
  redis.call('PUBLISH', ARGV[10], payload)
  if kind == 'edit' then
    -- The feed entries holding a text of the message: its creation's first,
    -- then its edits' still in the feed. Those below the feed's first entry
    -- are gone for good (trimmed or deleted: numbers only grow), whatever
    -- the cap's overshoot or the deletes' holes; every other one is kept.
    local first = redis.call('XRANGE', feed, '-', '+', 'COUNT', 1)
    local low = tonumber(string.match(first[1][1], '^(%d+)'))
    local old = msg.ev or {0}
    local ev = {old[1]}
    for i = 2, #old do
      if old[i] >= low then ev[#ev + 1] = old[i] end
    end
    ev[#ev + 1] = n
    msg.ev = ev
  end
end
redis.call('HSET', mkey, id, cjson.encode(msg))
redis.call('ZADD', p .. 'revs:' .. conv, seq, id)
return {1, json}
`,
);

/**
 * A page: the conversation's position, its `trimmed` watermark and up to
 * `n` messages (JSON), by `seq` after `since` or by id before `before`
 * (newest first). ARGV: prefix, conv, mode (since/before), bound (a score:
 * `(17` or `+inf`), n.
 */
const PAGE = new Script(`
local p, conv = ARGV[1], ARGV[2]
local out = {
  redis.call('HGET', p .. 'seq', conv) or '0',
  redis.call('HGET', p .. 'trimmed', conv) or '0',
}
local ids
if ARGV[3] == 'since' then
  ids = redis.call('ZRANGE', p .. 'revs:' .. conv, ARGV[4], '+inf', 'BYSCORE', 'LIMIT', 0, ARGV[5])
else
  ids = redis.call('ZRANGE', p .. 'ids:' .. conv, ARGV[4], '-inf', 'BYSCORE', 'REV',
    'LIMIT', 0, ARGV[5])
end
for i = 1, #ids, 1000 do
  local part = redis.call('HMGET', p .. 'm:' .. conv, unpack(ids, i, math.min(i + 999, #ids)))
  for j = 1, #part do out[#out + 1] = part[j] end
end
return out
`);

/**
 * Search: up to `n` kept messages (JSON) of a conversation with an id below
 * a bound (a score: `(17` or `+inf`), newest first. ARGV: prefix, conv,
 * bound, n. Exported for tests, which count what searches read.
 */
export const SEARCH_CHUNK_READ = new Script(`
local ids = redis.call('ZRANGE', ARGV[1] .. 'ids:' .. ARGV[2], ARGV[3], '-inf', 'BYSCORE', 'REV',
  'LIMIT', 0, ARGV[4])
if #ids == 0 then return {} end
return redis.call('HMGET', ARGV[1] .. 'm:' .. ARGV[2], unpack(ids))
`);

/**
 * Converts one conversation from the previous layout (a `log:<conv>` stream
 * whose entry ids were the message ids, the counter being the newest id) to
 * this one, and deletes the stream. Idempotent, so nodes starting together
 * may both run it: once the stream is gone, a conversation that has a `last`
 * is converted (or new) and left alone. ARGV: prefix, conv. Returns the
 * number of messages converted.
 */
const MIGRATE = new Script(`
local p, conv = ARGV[1], ARGV[2]
local log = p .. 'log:' .. conv
local counter = tonumber(redis.call('HGET', p .. 'seq', conv) or '0')
if redis.call('EXISTS', log) == 0 then
  if redis.call('HEXISTS', p .. 'last', conv) == 1 then return 0 end
  -- A stream wiped (a released DM) or trimmed away: whatever was given out is gone.
  redis.call('HSET', p .. 'last', conv, counter)
  if counter > 0 then redis.call('HSET', p .. 'trimmed', conv, counter) end
  return 0
end
local mkey, ids, revs = p .. 'm:' .. conv, p .. 'ids:' .. conv, p .. 'revs:' .. conv
local entries = redis.call('XRANGE', log, '-', '+')
local oldest = counter + 1
for i, e in ipairs(entries) do
  local id = string.match(e[1], '^(%d+)')
  if i == 1 then oldest = tonumber(id) end
  local msg = {id = tonumber(id), seq = tonumber(id)}
  local f = e[2]
  for j = 1, #f, 2 do
    local k, v = f[j], f[j + 1]
    if k == 'ms' then msg.ms = tonumber(v)
    elseif k == 'r' then msg.room = v
    elseif k == 't' then msg.to = v
    elseif k == 'f' then msg.from = v
    elseif k == 'x' then msg.text = v end
  end
  redis.call('HSETNX', mkey, id, cjson.encode(msg))
  redis.call('ZADD', ids, 'NX', id, id)
  redis.call('ZADD', revs, 'NX', id, id)
end
if counter > tonumber(redis.call('HGET', p .. 'last', conv) or '0') then
  redis.call('HSET', p .. 'last', conv, counter)
end
if oldest - 1 > tonumber(redis.call('HGET', p .. 'trimmed', conv) or '0') then
  redis.call('HSET', p .. 'trimmed', conv, oldest - 1)
end
redis.call('DEL', log)
return #entries
`);
/**
 * ARGV: prefix, user, room, private ('1' to create the room private). Returns
 * {added, created, members after the join}. Only the creation sets the
 * settings: a room that exists keeps its own.
 */
const JOIN = new Script(`
local p, user, room = ARGV[1], ARGV[2], ARGV[3]
local created = redis.call('HSETNX', p .. 'rooms', room, user)
if created == 1 then
  redis.call('HINCRBY', p .. 'created', user, 1)
  -- A new room of a renamed room's old name: sends to it are taken again.
  redis.call('SREM', p .. 'gone', room)
end
if created == 1 and ARGV[4] == '1' then redis.call('HSET', p .. 'settings', room, 'p') end
local added = redis.call('SADD', p .. 'members:' .. room, user)
-- Whether or not the set had the user: a name index from before it existed catches up.
redis.call('ZADD', p .. 'membersz:' .. room, 0, user)
redis.call('SADD', p .. 'in:' .. user, room)
return {added, created, redis.call('SCARD', p .. 'members:' .. room)}
`);

/** ARGV: prefix, user, room. Returns 1 if the user was a member. */
const LEAVE = new Script(`
redis.call('SREM', ARGV[1] .. 'in:' .. ARGV[2], ARGV[3])
redis.call('ZREM', ARGV[1] .. 'membersz:' .. ARGV[3], ARGV[2])
return redis.call('SREM', ARGV[1] .. 'members:' .. ARGV[3], ARGV[2])
`);

/**
 * A page of a room's members by name. ARGV: prefix, room, after ('' for
 * from the first), limit. Returns {member count, {name, …}}. BYLEX compares
 * bytes: for names of `NAME_PATTERN` (ASCII) that is JS string order.
 *
 * Every script that changes `members:<room>` changes `membersz:<room>`
 * alike, so the zset only lacks names of members that joined before it
 * existed (data of an older version): then its size differs from the set's,
 * and it is rebuilt from the set once (O(members), in chunks) before the
 * page is read. A name in the page that is not a member (a node of an older
 * version took a member out of the set only) also rebuilds it.
 */
const MEMBERS_PAGE = new Script(`
local p, after, limit = ARGV[1], ARGV[3], tonumber(ARGV[4])
local set, zset = p .. 'members:' .. ARGV[2], p .. 'membersz:' .. ARGV[2]
local count = redis.call('SCARD', set)
local function rebuild()
  redis.call('DEL', zset)
  local all = redis.call('SMEMBERS', set)
  for i = 1, #all, 500 do
    local args = {}
    for j = i, math.min(i + 499, #all) do
      args[#args + 1] = 0
      args[#args + 1] = all[j]
    end
    redis.call('ZADD', zset, unpack(args))
  end
end
local function page()
  if limit <= 0 then return {} end
  local from = '-'
  if after ~= '' then from = '(' .. after end
  return redis.call('ZRANGE', zset, from, '+', 'BYLEX', 'LIMIT', 0, ARGV[4])
end
if redis.call('ZCARD', zset) ~= count then rebuild() end
local names = page()
for _, name in ipairs(names) do
  if redis.call('SISMEMBER', set, name) == 0 then
    rebuild()
    names = page()
    break
  end
end
return {count, names}
`);

/**
 * ARGV: prefix. Returns {room, members, topic, flags, room, …} ('' for no
 * topic, and for a plain room's flags).
 */
const ROOMS = new Script(`
local out = {}
for _, room in ipairs(redis.call('HKEYS', ARGV[1] .. 'rooms')) do
  out[#out + 1] = room
  out[#out + 1] = redis.call('SCARD', ARGV[1] .. 'members:' .. room)
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'topics', room) or ''
  out[#out + 1] = redis.call('HGET', ARGV[1] .. 'settings', room) or ''
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
 * A room's settings. ARGV: prefix, room. Returns {1, flags} (see
 * {@link settingsOf}), or {0} when the room does not exist.
 */
const ROOM_SETTINGS = new Script(`
local p, room = ARGV[1], ARGV[2]
if redis.call('HEXISTS', p .. 'rooms', room) == 0 then return {0} end
return {1, redis.call('HGET', p .. 'settings', room) or ''}
`);

/**
 * Sets and clears a room's flags. ARGV: prefix, room, then private,
 * read-only, archived, auto-join and room mentions restricted: '1' sets, '0'
 * clears, '' leaves it. Returns {1,
 * flags} after the change (a plain room's field is deleted), or {0} when the
 * room does not exist (nothing is written).
 */
const SET_ROOM_SETTINGS = new Script(`
local p, room = ARGV[1], ARGV[2]
if redis.call('HEXISTS', p .. 'rooms', room) == 0 then return {0} end
local old = redis.call('HGET', p .. 'settings', room) or ''
local flags = ''
for i, letter in ipairs({'p', 'r', 'a', 'j', 'm'}) do
  local want = ARGV[i + 2]
  if want == '1' or (want == '' and string.find(old, letter, 1, true)) then
    flags = flags .. letter
  end
end
if flags == '' then
  redis.call('HDEL', p .. 'settings', room)
else
  redis.call('HSET', p .. 'settings', room, flags)
end
return {1, flags}
`);

/**
 * Renames a room (see {@link Store.renameRoom}) and lists the rename in
 * `renames` (at Redis's time, keeping the newest `kept`). ARGV: prefix,
 * room, to, kept. Returns 'unknown', 'taken' or 'renamed'.
 *
 * Every message is rewritten with its new `room` (one HSET per 500): Redis
 * does nothing else meanwhile (a room of 10,000 messages took 60 to 110 ms,
 * one of 50,000 about 1.2 s, on a busy 2-core box), its zsets and reply indexes are renamed, and the counters merge with any the
 * new name had (the old name of a room renamed before). The old name keeps
 * `last` and `ms`, and its `seq` and `trimmed` become one past the
 * room's: a reader at an old position has a gap, and a later room of the
 * name continues after it. Read markers move for the members only (no index
 * lists every user's markers of a room): an ex-member's stays under the old name.
 * The senders' resend records stay as they are: `renamedto` leads from the
 * old name to the new (see `WHERE_NOW_LUA`).
 */
const RENAME = new Script(`
local p, room, to = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HEXISTS', p .. 'rooms', room) == 0 then return 'unknown' end
-- A conversation of the name with messages but no room (written without a
-- join, which the hub never does) is not overwritten either.
if redis.call('HEXISTS', p .. 'rooms', to) == 1 or redis.call('EXISTS', p .. 'ids:' .. to) == 1 then
  return 'taken'
end
local mold, mnew = p .. 'm:' .. room, p .. 'm:' .. to
redis.call('DEL', mnew, p .. 'revs:' .. to)
local all = redis.call('HGETALL', mold)
local batch, originals = {}, {}
local function flush()
  if #batch > 0 then redis.call('HSET', mnew, unpack(batch)) end
  batch = {}
end
-- cjson writes the field so, unspaced, and a room name needs no escaping; a
-- quote inside a string is escaped, so this finds the field itself. Cheaper
-- than decoding every message (3x); a message written otherwise is decoded.
local field, renamed = '"room":"' .. room .. '"', '"room":"' .. to .. '"'
for i = 1, #all, 2 do
  local raw = all[i + 1]
  local at = string.find(raw, field, 1, true)
  local reply = string.find(raw, '"replyTo":', 1, true)
  if at and not reply then
    raw = string.sub(raw, 1, at - 1) .. renamed .. string.sub(raw, at + #field)
  else
    local m = cjson.decode(raw)
    m.room = to
    raw = cjson.encode(m)
    if m.replyTo then originals[m.replyTo.id] = true end
  end
  batch[#batch + 1] = all[i]
  batch[#batch + 1] = raw
  if #batch >= 1000 then flush() end
end
flush()
redis.call('DEL', mold)
-- Only an original with kept replies has an index.
for id in pairs(originals) do
  local rp = p .. 'rp:' .. room .. ':' .. id
  if redis.call('EXISTS', rp) == 1 then redis.call('RENAME', rp, p .. 'rp:' .. to .. ':' .. id) end
end
for _, k in ipairs({'ids:', 'revs:'}) do
  if redis.call('EXISTS', p .. k .. room) == 1 then redis.call('RENAME', p .. k .. room, p .. k .. to) end
end
local function num(h, conv) return tonumber(redis.call('HGET', p .. h, conv) or '0') end
local seq = math.max(num('seq', room), num('seq', to))
redis.call('HSET', p .. 'seq', to, seq, room, seq + 1)
redis.call('HSET', p .. 'trimmed', to, math.max(num('trimmed', room), num('trimmed', to)),
  room, seq + 1)
redis.call('HSET', p .. 'last', to, math.max(num('last', room), num('last', to)))
redis.call('HSET', p .. 'ms', to, math.max(num('ms', room), num('ms', to)))
local members = redis.call('SMEMBERS', p .. 'members:' .. room)
redis.call('DEL', p .. 'members:' .. to, p .. 'membersz:' .. to)
for _, user in ipairs(members) do
  redis.call('SREM', p .. 'in:' .. user, room)
  redis.call('SADD', p .. 'in:' .. user, to)
  local read = p .. 'read:' .. user
  local marker = redis.call('HGET', read, room)
  -- A marker of the new name (a name without a room) says nothing about this history.
  redis.call('HDEL', read, room, to)
  if marker then redis.call('HSET', read, to, marker) end
end
if #members > 0 then redis.call('RENAME', p .. 'members:' .. room, p .. 'members:' .. to) end
-- Absent for a room of an older version (or an empty one): the next page rebuilds it.
if redis.call('EXISTS', p .. 'membersz:' .. room) == 1 then
  redis.call('RENAME', p .. 'membersz:' .. room, p .. 'membersz:' .. to)
end
for _, h in ipairs({'rooms', 'topics', 'settings'}) do
  local v = redis.call('HGET', p .. h, room)
  if v then
    redis.call('HSET', p .. h, to, v)
    redis.call('HDEL', p .. h, room)
  end
end
redis.call('SADD', p .. 'gone', room)
redis.call('SREM', p .. 'gone', to)
-- Resends recorded under the old name find the room (see APPEND); the senders'
-- records are not rewritten (that would be every member's, at every rename).
-- Ids up to seq moved; a later room of the old name gives out ids after it.
redis.call('HSET', p .. 'renamedto', room, seq .. '\\n' .. to)
redis.call('HDEL', p .. 'renamedto', to)
local t = redis.call('TIME')
local at = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('LPUSH', p .. 'renames', cjson.encode({room = room, name = to, at = at}))
redis.call('LTRIM', p .. 'renames', 0, tonumber(ARGV[4]) - 1)
return 'renamed'
`);

/**
 * Moves last-seen times forward (never back), and makes users known. ARGV:
 * prefix, then for each user: the name to add to `users` (or empty), the
 * lower-cased name, at (ms).
 */
const SEEN = new Script(`
local p = ARGV[1]
for i = 2, #ARGV, 3 do
  if ARGV[i] ~= '' then redis.call('SADD', p .. 'users', ARGV[i]) end
  local at, cur = tonumber(ARGV[i + 2]), redis.call('HGET', p .. 'seen', ARGV[i + 1])
  if not cur or at > tonumber(cur) then redis.call('HSET', p .. 'seen', ARGV[i + 1], ARGV[i + 2]) end
end
return 0
`);

/**
 * The user's conversations, each with its newest id, position, read marker
 * and unread count: kept messages after the marker from others that are not
 * deleted, counted up to a cap (a long unread run costs at most the cap).
 * ARGV: prefix, user, cap. Returns {kind, conv, last, seq, read, unread, …}
 * with kind r (room) or d (DM).
 */
const CONVERSATIONS = new Script(`
local p, user, cap = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
local function unread(conv, read)
  local ids, mkey = p .. 'ids:' .. conv, p .. 'm:' .. conv
  local n, offset = 0, 0
  while n < cap do
    local chunk = redis.call('ZRANGE', ids, '(' .. read, '+inf', 'BYSCORE', 'LIMIT', offset, 128)
    if #chunk == 0 then break end
    local raws = redis.call('HMGET', mkey, unpack(chunk))
    for i = 1, #raws do
      if raws[i] then
        local m = cjson.decode(raws[i])
        if m.from ~= user and not m.deleted then
          n = n + 1
          if n >= cap then break end
        end
      end
    end
    offset = offset + #chunk
  end
  return n
end
local function add(kind, conv)
  local read = redis.call('HGET', p .. 'read:' .. user, conv) or '0'
  out[#out + 1] = kind
  out[#out + 1] = conv
  out[#out + 1] = redis.call('HGET', p .. 'last', conv) or '0'
  out[#out + 1] = redis.call('HGET', p .. 'seq', conv) or '0'
  out[#out + 1] = read
  out[#out + 1] = unread(conv, read)
end
for _, room in ipairs(redis.call('SMEMBERS', p .. 'in:' .. user)) do add('r', room) end
for _, conv in ipairs(redis.call('SMEMBERS', p .. 'dms:' .. user)) do add('d', conv) end
return out
`);

/** ARGV: prefix, user, conv, id. Moves the marker forward, never past the newest message id. */
const SET_READ = new Script(`
local p, user, conv = ARGV[1], ARGV[2], ARGV[3]
local last = tonumber(redis.call('HGET', p .. 'last', conv) or '0')
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
 * session, now, create (1/0). Returns {ok, name, session, seen, since}, or
 * {0} when the name is unclaimed and not created. A refresh keeps `c` (since).
 */
const CLAIM = new Script(`
local p, folded, now = ARGV[1], ARGV[2], ARGV[5]
local key = p .. 'claim:' .. folded
local held = redis.call('HMGET', key, 'n', 's', 't', 'c')
if held[1] then
  local since = held[4] or '0'
  if held[2] ~= ARGV[4] then return {0, held[1], held[2], held[3], since} end
  redis.call('HSET', key, 't', now)
  redis.call('ZADD', p .. 'claims', now, folded)
  return {1, held[1], held[2], now, since}
end
if ARGV[6] ~= '1' then return {0} end
redis.call('HSET', key, 'n', ARGV[3], 's', ARGV[4], 't', now, 'c', now)
redis.call('ZADD', p .. 'claims', now, folded)
return {1, ARGV[3], ARGV[4], now, now}
`);

/**
 * Releases a name held by a session and wipes what was private to it: its DM
 * messages, from the broker's feed too (the `seq` counters stay, so ids
 * continue, and `trimmed` rises to them: a reader of the old conversation
 * has a gap), both parties' listing
 * and read markers of them, its own markers, its refs, its memberships, its
 * last-seen time, its sessions and its `users` mark. ARGV: prefix, folded name, session,
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
redis.call('DEL', p .. 'sess:' .. folded)
for _, conv in ipairs(redis.call('SMEMBERS', p .. 'dms:' .. user)) do
  local i = string.find(conv, ':', 1, true)
  -- Their texts leave the broker's feed too (as a delete's do), and their
  -- reply indexes go (each names replies of this conversation only).
  for _, raw in ipairs(redis.call('HVALS', p .. 'm:' .. conv)) do
    local m = cjson.decode(raw)
    for _, e in ipairs(m.ev or {}) do redis.call('XDEL', p .. 'feed', e .. '-0') end
    if m.replyTo then redis.call('DEL', p .. 'rp:' .. conv .. ':' .. m.replyTo.id) end
  end
  redis.call('DEL', p .. 'm:' .. conv, p .. 'ids:' .. conv, p .. 'revs:' .. conv)
  redis.call('HSET', p .. 'trimmed', conv, redis.call('HGET', p .. 'seq', conv) or '0')
  for _, party in ipairs({string.sub(conv, 2, i - 1), string.sub(conv, i + 1)}) do
    redis.call('SREM', p .. 'dms:' .. party, conv)
    redis.call('HDEL', p .. 'read:' .. party, conv)
  end
end
redis.call('DEL', p .. 'read:' .. user, p .. 'sent:' .. user, p .. 'sentq:' .. user)
local rooms = redis.call('SMEMBERS', p .. 'in:' .. user)
for _, room in ipairs(rooms) do
  redis.call('SREM', p .. 'members:' .. room, user)
  redis.call('ZREM', p .. 'membersz:' .. room, user)
end
redis.call('DEL', p .. 'in:' .. user)
redis.call('SREM', p .. 'users', user)
redis.call('HDEL', p .. 'created', user)
return {1, rooms}
`);

/** ARGV: prefix, before, limit. Returns {name, session, seen, since, …}, oldest first. */
const STALE = new Script(`
local out = {}
local stale = redis.call('ZRANGE', ARGV[1] .. 'claims', '-inf', '(' .. ARGV[2], 'BYSCORE', 'LIMIT', 0, ARGV[3])
for _, folded in ipairs(stale) do
  local held = redis.call('HMGET', ARGV[1] .. 'claim:' .. folded, 'n', 's', 't', 'c')
  out[#out + 1] = held[1]
  out[#out + 1] = held[2]
  out[#out + 1] = held[3]
  out[#out + 1] = held[4] or '0'
end
return out
`);

/**
 * Claims seen at or after a time whose lower-cased name contains a text,
 * newest first, read from `claims` in chunks until enough matched.
 * ARGV: prefix, since, match (or empty), limit. Returns {name, session, seen, since, …}.
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
      local held = redis.call('HMGET', p .. 'claim:' .. folded, 'n', 's', 't', 'c')
      out[#out + 1] = held[1]
      out[#out + 1] = held[2]
      out[#out + 1] = held[3]
      out[#out + 1] = held[4] or '0'
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

/**
 * Records a sign-in: the session's time moves forward only, and the user's
 * least recently seen sessions past `kept` go (ties: the lowest id first).
 * ARGV: prefix, lower-cased name, session, seen (ms), kept.
 */
const NOTE_SESSION = new Script(`
local key = ARGV[1] .. 'sess:' .. ARGV[2]
local cur = redis.call('ZSCORE', key, ARGV[3])
if not cur or tonumber(ARGV[4]) > tonumber(cur) then redis.call('ZADD', key, ARGV[4], ARGV[3]) end
redis.call('ZREMRANGEBYRANK', key, 0, -tonumber(ARGV[5]) - 1)
return 0
`);

/**
 * Sessions of several users seen at or after a time and not revoked at
 * another, latest first (ties: the highest id first), in one script.
 * ARGV: prefix, since, now, lower-cased names…
 * Returns one {session, seen, …} per name, in order.
 */
const SESSIONS = new Script(`
local p, since, now = ARGV[1], ARGV[2], tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV do
  local live = {}
  local all = redis.call('ZRANGE', p .. 'sess:' .. ARGV[i], '+inf', since, 'BYSCORE', 'REV', 'WITHSCORES')
  for j = 1, #all, 2 do
    if tonumber(redis.call('GET', p .. 'revoked:' .. all[j]) or '0') <= now then
      live[#live + 1] = all[j]
      live[#live + 1] = all[j + 1]
    end
  end
  out[#out + 1] = live
end
return out
`);

/** Messages one search command reads (newest first). */
const SEARCH_CHUNK = 256;
/** Conversations a search reads at once. */
const SEARCH_PARALLEL = 4;
/** Conversations of the previous layout converted at once at connect. */
const MIGRATE_CHUNK = 200;

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
  /**
   * The event as the feed keeps it, when it differs from `json`: a reply's
   * without its quote's text (see {@link RedisStore.quoteNow}).
   */
  feedJson?: string;
}

/** Where {@link RedisStore.changeAndPublish} announces a change. */
export interface ChangeTarget {
  /** Pub/sub channel. */
  channel: string;
  /** Approximate number of events the feed keeps for nodes catching up. */
  feedLength: number;
  /** The event's `origin` as JSON, or empty for none. */
  origin: string;
}

/** A message stored and published, or found stored (a resend, see {@link Store.appendOnce}). */
export interface Published extends Appended {
  /** Its number in the event feed; 0 when nothing was published (`fresh` is false). */
  seq: number;
}

/** A message as the scripts keep it in `m:<conv>` (see the module's documentation). */
interface Stored {
  id: number;
  seq: number;
  room?: string;
  to?: string;
  from: string;
  text: string;
  ms: number;
  edited?: string;
  deleted?: boolean;
  /** On a tombstone: an admin removed it. */
  removed?: boolean;
  reactions?: [string, string[]][];
  replyTo?: ReplyRef;
  /** The files it carries (absent when none, and on a tombstone). */
  files?: FileMeta[];
  /**
   * Event feed entries that hold a text of the message: its creation's (0
   * for none), then its edits' still in the feed. A delete removes them.
   */
  ev?: number[];
}

/** A reply reference with the wire's key order (Lua's cjson writes keys in any order). */
function replyOf(r: ReplyRef): ReplyRef {
  return r.deleted
    ? { id: r.id, from: r.from, snippet: r.snippet, deleted: true }
    : { id: r.id, from: r.from, snippet: r.snippet };
}

/**
 * Files with the wire's key order (`{id, name, size, type, width?, height?}`):
 * Lua's cjson writes keys in any order.
 */
function filesOf(files: readonly FileMeta[]): FileMeta[] {
  return files.map((f) => {
    const meta: FileMeta = { id: f.id, name: f.name, size: f.size, type: f.type };
    if (f.width !== undefined) meta.width = f.width;
    if (f.height !== undefined) meta.height = f.height;
    return meta;
  });
}

/** A new message with the memory store's key order (the wire shows it). */
export function toMessage(
  id: number,
  ms: number,
  room: string | undefined,
  to: string | undefined,
  from: string,
  text: string,
  replyTo?: ReplyRef,
  files?: readonly FileMeta[],
): ChatMessage {
  const ts = new Date(ms).toISOString();
  const msg: ChatMessage = room !== undefined
    ? { id, seq: id, room, from, text, ts }
    : { id, seq: id, to, from, text, ts };
  if (replyTo) msg.replyTo = replyOf(replyTo);
  if (files && files.length > 0) msg.files = filesOf(files);
  return msg;
}

/**
 * A room's flags as `settings` keeps them (letters `p`, `r`, `a`, `j`, `m`) as
 * {@link RoomSettings}.
 */
function settingsOf(flags: string): RoomSettings {
  const out: RoomSettings = {};
  if (flags.includes("p")) out.private = true;
  if (flags.includes("r")) out.readOnly = true;
  if (flags.includes("a")) out.archived = true;
  if (flags.includes("j")) out.autoJoin = true;
  if (flags.includes("m")) out.restrictRoomMentions = true;
  return out;
}

/** A message in its current state from its JSON in `m:<conv>`. */
function fromStored(json: string): ChatMessage {
  const s = JSON.parse(json) as Stored;
  const ts = new Date(s.ms).toISOString();
  const msg: ChatMessage = s.room !== undefined
    ? { id: s.id, seq: s.seq, room: s.room, from: s.from, text: s.text, ts }
    : { id: s.id, seq: s.seq, to: s.to, from: s.from, text: s.text, ts };
  if (s.edited) msg.edited = s.edited;
  if (s.deleted) msg.deleted = true;
  if (s.deleted && s.removed) msg.removed = true;
  if (s.reactions) msg.reactions = Object.fromEntries(s.reactions);
  if (s.replyTo) msg.replyTo = replyOf(s.replyTo);
  if (s.files && s.files.length > 0) msg.files = filesOf(s.files);
  return msg;
}

/** An applied change with {@link Applied}'s key order, from the scripts' JSON. */
export function toApplied(a: Applied): Applied {
  const out: Applied = { kind: a.kind, conv: a.conv, id: a.id, seq: a.seq, user: a.user };
  if (a.kind === "edited") {
    out.text = a.text;
    out.editedAt = a.editedAt;
  } else if (a.kind === "reaction") {
    out.emoji = a.emoji;
    out.on = a.on;
  } else {
    // Events published before deletes carried the author and time have neither.
    if (a.from !== undefined) out.from = a.from;
    if (a.ts !== undefined) out.ts = a.ts;
    if (a.removed) out.removed = true;
  }
  return out;
}

/** A {@link Store} in Redis, shared by every node of a chat. */
export class RedisStore implements Store {
  #client: RedisClient;
  #prefix: string;
  #keep: number;
  #timeout: number;
  #owns: boolean;
  #refTtl: number;
  /** Last-seen writes of this event-loop turn (see {@link RedisStore.touchUser}). */
  #seen = new TurnBatch<[string, number]>(async (users) => {
    await this.#run(SEEN, users.flatMap(([name, at]) => [name, name.toLowerCase(), `${at}`]));
  });
  /** Revocation checks of this event-loop turn, in one MGET (see {@link RedisStore.sessionRevoked}). */
  #revoked = new TurnBatch<string, Reply>((keys) =>
    this.#call(["MGET", ...keys]) as Promise<Reply[]>
  );

  /**
   * Uses a connected client (see {@link connectRedis}). Data of an older key
   * layout is converted by {@link migrate}, which {@link connect} runs.
   */
  constructor(client: RedisClient, options: RedisStoreOptions = {}) {
    this.#client = client;
    this.#prefix = options.prefix ?? "chat:";
    this.#keep = options.keep ?? 200;
    this.#timeout = options.timeout ?? 5000;
    this.#owns = options.ownsClient ?? false;
    this.#refTtl = options.refTtl ?? 30 * 86_400_000;
  }

  /**
   * Connects to `url`, converts data written by an older version (see
   * {@link migrate}) and returns a store that owns its client.
   *
   * @throws {RedisUnavailableError} with one actionable sentence when Redis
   * cannot be used (yet: see its `transient`); an error reply (`LOADING`…)
   * when it stopped answering meanwhile.
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
    const store = new RedisStore(client, { ...options, ownsClient: true });
    try {
      await store.migrate();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /**
   * Converts the history of the previous layout (one capped `log:<conv>`
   * stream per conversation) to this one, once: `schema` records that it is
   * done. The conversations are the fields of `seq` (every conversation that
   * ever had a message has one), so no scan of the whole keyspace is needed.
   * Each conversation is converted by one idempotent script, so nodes
   * starting together may run this at the same time. Resolves the number of
   * messages converted.
   */
  async migrate(): Promise<number> {
    if (await this.#call(["GET", `${this.#prefix}schema`]) === SCHEMA) return 0;
    let converted = 0;
    let cursor = "0";
    do {
      const [next, flat] = await this.#call([
        "HSCAN",
        `${this.#prefix}seq`,
        cursor,
        "COUNT",
        String(MIGRATE_CHUNK),
      ]) as [string, string[]];
      cursor = next;
      for (let i = 0; i < flat.length; i += 2) {
        converted += Number(await this.#run(MIGRATE, [flat[i]]));
      }
    } while (cursor !== "0");
    await this.#call(["SET", `${this.#prefix}schema`, SCHEMA]);
    return converted;
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

  // Appends and changes of a conversation must resolve in `seq` order: Redis
  // answers in order, and every public method below reaches its caller
  // through the same number of promise steps (one script run, two `then`s),
  // so no answer overtakes an earlier one on its way out.

  #append(draft: Draft, target?: PublishTarget, once = false): Promise<Published> {
    const pair = dmPair(draft.conv);
    const reply = draft.replyTo;
    return this.#run(APPEND, [
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
      draft.room ?? "",
      draft.room === undefined ? draft.to! : "",
      reply ? String(reply.id) : "",
      reply?.from ?? "",
      reply?.snippet ?? "",
      reply ? String(reply.seq) : "",
      draft.files && draft.files.length > 0 ? JSON.stringify(filesOf(draft.files)) : "",
      draft.member ? "1" : "",
      draft.text,
      target?.feedJson ?? "",
    ]).then((out) => {
      const [id, ms, seq, fresh, stored] = out as [number, number, number, number, string?];
      if (id === -1) throw new ReplyChanged(reply!.id);
      if (id === -2) throw new RoomGone(draft.room!);
      // A resend answers the stored message as it is now (edited, deleted…).
      const msg = stored !== undefined
        ? fromStored(stored)
        : toMessage(id, ms, draft.room, draft.to, draft.from, draft.text, reply, draft.files);
      return { msg, seq, fresh: fresh === 1 };
    });
  }

  /**
   * Appends a message; resolves once Redis has accepted it. Rejects with
   * {@link ReplyChanged} (storing nothing) when the draft's `replyTo` no
   * longer matches its original, checked in the same script.
   */
  append(draft: Draft): Promise<ChatMessage> {
    return this.#append(draft).then((p) => p.msg);
  }

  /** Appends unless the draft is a resend, in one script (see {@link Store.appendOnce}). */
  appendOnce(draft: Draft & { ref: string }): Promise<Appended> {
    return this.#append(draft, undefined, true).then(({ msg, fresh }) => ({ msg, fresh }));
  }

  /**
   * Appends a message and publishes it in the same script (see the broker):
   * resolves once Redis has done both. A draft with a ref is checked first,
   * in the same script: a resend of a stored message is neither stored nor
   * published again, and resolves that message (as it is now) with `fresh`
   * false. A reply whose original changed since its quote was taken rejects
   * with {@link ReplyChanged}: nothing is stored or published.
   */
  appendAndPublish(draft: Draft, target: PublishTarget): Promise<Published> {
    return this.#append(draft, target, true).then((p) => p);
  }

  #change(change: Change, target?: ChangeTarget): Promise<ChangeResult> {
    const [arg, on, sentAfter] = change.kind === "edit"
      ? [change.text, "0", change.sentAfter === undefined ? "" : String(change.sentAfter)]
      : change.kind === "react"
      ? [change.emoji, change.on ? "1" : "0", ""]
      : ["", "0", change.sentAfter === undefined ? "" : String(change.sentAfter)];
    return this.#run(CHANGE, [
      change.conv,
      String(change.id),
      change.user,
      change.kind,
      arg,
      on,
      sentAfter,
      String(MAX_REACTIONS),
      target?.channel ?? "",
      String(target?.feedLength ?? 0),
      target?.origin ?? "",
      String(MAX_REACTIONS_TOTAL),
      change.kind === "edit" ? snippetOf(change.text) : "",
      change.kind === "delete" && change.moderator ? "1" : "",
    ]).then((reply): ChangeResult => {
      const [ok, detail] = reply as [number, string?];
      if (ok !== 1) return { ok: false, refusal: detail as ChangeRefusal };
      return { ok: true, applied: detail === undefined ? null : toApplied(JSON.parse(detail)) };
    });
  }

  /** Checks and applies a change in one script (see {@link Store.change}). */
  change(change: Change): Promise<ChangeResult> {
    return this.#change(change).then((r) => r);
  }

  /**
   * Applies a change and, in the same script, numbers it in the event feed
   * and publishes it (see the broker), as {@link appendAndPublish} does for
   * messages: every node receives a conversation's messages and changes in
   * `seq` order. A refusal or a change with nothing to do is published nowhere.
   */
  changeAndPublish(change: Change, target: ChangeTarget): Promise<ChangeResult> {
    return this.#change(change, target).then((r) => r);
  }

  /** One message in its current state, or null when not kept. */
  async message(conv: string, id: number): Promise<ChatMessage | null> {
    const raw = await this.#call(["HGET", `${this.#prefix}m:${conv}`, String(id)]) as
      | string
      | null;
    if (raw === null) return null;
    return (await this.#refresh(conv, [fromStored(raw)]))[0];
  }

  /**
   * A reply read back from the event feed, quoting its original as it is
   * now, as a page would bring it: the feed names the original without
   * quoting it (entries of older versions quote it as it was). The original
   * when kept, else the quote the reply keeps (updated by the original's
   * edits and delete until it was dropped), else what the entry says. One
   * HMGET; a message that is no reply is returned as it is.
   */
  async quoteNow(conv: string, msg: ChatMessage): Promise<ChatMessage> {
    const r = msg.replyTo;
    if (!r) return msg;
    const [original, reply] = await this.#call(
      ["HMGET", `${this.#prefix}m:${conv}`, String(r.id), String(msg.id)],
    ) as (string | null)[];
    const kept = reply === null ? undefined : (JSON.parse(reply) as Stored).replyTo;
    const quote = original !== null
      ? replyRef(fromStored(original))
      : kept && kept.id === r.id
      ? replyOf(kept)
      : replyOf({ id: r.id, from: r.from, snippet: r.snippet ?? "", deleted: r.deleted });
    return { ...msg, replyTo: quote };
  }

  /** Refreshes the replies among `messages` of `conv` from their originals, in one HMGET. */
  #refresh(conv: string, messages: ChatMessage[]): Promise<ChatMessage[]> {
    return refreshReplies(messages, async (ids) => {
      const raws = await this.#call(
        ["HMGET", `${this.#prefix}m:${conv}`, ...ids.map(String)],
      ) as (string | null)[];
      const found = new Map<number, ChatMessage>();
      for (const raw of raws) {
        if (raw === null) continue;
        const msg = fromStored(raw);
        found.set(msg.id, msg);
      }
      return found;
    });
  }

  /** A page of history: by `seq` after `since`, or by id before `before` (see {@link PageQuery}). */
  async page(conv: string, query: PageQuery): Promise<Page> {
    const { since, before, limit } = query;
    const [counter, trimmed, ...raws] = await this.#run(PAGE, [
      conv,
      since !== undefined ? "since" : "before",
      since !== undefined ? `(${since}` : before !== undefined ? `(${before}` : "+inf",
      String(limit + 1),
    ]) as string[];
    let messages = raws.map(fromStored);
    const more = messages.length > limit;
    if (more) messages = messages.slice(0, limit);
    if (since === undefined) messages.reverse();
    messages = await this.#refresh(conv, messages);
    return {
      messages,
      more,
      gap: since !== undefined && sinceGap(since, Number(trimmed), Number(counter)),
      seq: since !== undefined && more ? messages.at(-1)?.seq ?? since : Number(counter),
    };
  }

  /**
   * Scans the kept messages of the visible conversations, newest first: each
   * conversation is read in chunks and only until it gave `limit` matches, a
   * few conversations at a time, and parsing yields to the event loop every
   * few milliseconds, so neither Redis nor this node is held up by one search.
   * Deleted messages are never found (their text is gone anyway).
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
        const found = await this.#scan(wanted[i], words, scope.limit, slice);
        each[i] = await this.#refresh(wanted[i], found);
      }
    };
    await Promise.all(Array.from({ length: Math.min(SEARCH_PARALLEL, wanted.length) }, worker));
    const found = each.flat();
    found.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    return found.slice(0, scope.limit);
  }

  /** The newest `limit` messages of `conv` that are not deleted and contain every word. */
  async #scan(conv: string, words: string[], limit: number, slice: Slice): Promise<ChatMessage[]> {
    const found: ChatMessage[] = [];
    let bound = "+inf";
    while (found.length < limit) {
      const raws = await this.#run(SEARCH_CHUNK_READ, [conv, bound, String(SEARCH_CHUNK)]) as (
        | string
        | null
      )[];
      let oldest = 0;
      for (const raw of raws) {
        if (raw === null) continue;
        const msg = fromStored(raw);
        oldest = msg.id;
        const text = searchText(msg);
        if (!msg.deleted && words.every((w) => text.includes(w))) {
          found.push(msg);
          if (found.length >= limit) break;
        }
        if (slice.spent()) await slice.pause();
      }
      if (raws.length < SEARCH_CHUNK || oldest <= 1) break;
      bound = `(${oldest}`;
    }
    return found;
  }

  /** Every room with its member count. */
  async rooms(): Promise<RoomInfo[]> {
    const flat = await this.#run(ROOMS, []) as (string | number)[];
    const out: RoomInfo[] = [];
    for (let i = 0; i < flat.length; i += 4) {
      const info: RoomInfo = { name: String(flat[i]), members: Number(flat[i + 1]) };
      if (flat[i + 2] !== "") info.topic = String(flat[i + 2]);
      out.push(Object.assign(info, settingsOf(String(flat[i + 3]))));
    }
    out.sort((a, b) => a.name.localeCompare(b.name));
    return out;
  }

  /** Whether the room exists. */
  async roomExists(room: string): Promise<boolean> {
    return await this.#call(["HEXISTS", `${this.#prefix}rooms`, room]) === 1;
  }

  /** How many rooms there are: one HLEN. */
  async roomCount(): Promise<number> {
    return Number(await this.#call(["HLEN", `${this.#prefix}rooms`]));
  }

  /** Adds a member, creating the room (private when asked) in the same script. */
  async join(user: string, room: string, create?: { private?: boolean }): Promise<JoinResult> {
    const wish = create?.private ? "1" : "";
    const [added, created, count] = await this.#run(JOIN, [user, room, wish]) as number[];
    return { added: added === 1, created: created === 1, count };
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

  /**
   * A page of a room's members from its name index (`membersz:<room>`, see
   * the module's table), in one script that also counts them.
   */
  async membersPage(room: string, after: string | undefined, limit: number): Promise<MembersPage> {
    const [count, names] = await this.#run(MEMBERS_PAGE, [
      room,
      after ?? "",
      String(Math.max(0, Math.floor(limit))),
    ]) as [number, string[]];
    return { members: names, count };
  }

  /** How many members a room has (`SCARD`). */
  async memberCount(room: string): Promise<number> {
    return Number(await this.#call(["SCARD", `${this.#prefix}members:${room}`]));
  }

  /** The room's topic, `""` for none. */
  async topic(room: string): Promise<string> {
    return String(await this.#call(["HGET", `${this.#prefix}topics`, room]) ?? "");
  }

  /** Sets or clears a room's topic in one script; false when unchanged or no such room. */
  async setTopic(room: string, topic: string): Promise<boolean> {
    return await this.#run(SET_TOPIC, [room, topic]) === 1;
  }

  /** The room's settings, null when no such room (one script). */
  async roomSettings(room: string): Promise<RoomSettings | null> {
    const [found, flags] = await this.#run(ROOM_SETTINGS, [room]) as [number, string?];
    return found === 1 ? settingsOf(String(flags)) : null;
  }

  /** Sets and clears the room's flags in one script; null (nothing written) when no such room. */
  async setRoomSettings(room: string, change: RoomSettingsChange): Promise<RoomSettings | null> {
    const flag = (on: boolean | undefined) => on === undefined ? "" : on ? "1" : "0";
    const [found, flags] = await this.#run(SET_ROOM_SETTINGS, [
      room,
      flag(change.private),
      flag(change.readOnly),
      flag(change.archived),
      flag(change.autoJoin),
      flag(change.restrictRoomMentions),
    ]) as [number, string?];
    return found === 1 ? settingsOf(String(flags)) : null;
  }

  /** Renames a room in one script (see {@link Store.renameRoom} and the script's notes). */
  async renameRoom(room: string, to: string): Promise<RenameResult> {
    return await this.#run(RENAME, [room, to, String(RENAMES_KEPT)]) as RenameResult;
  }

  /** The latest renames, newest first, in one LRANGE. */
  async recentRenames(limit: number): Promise<Rename[]> {
    if (limit <= 0) return [];
    const raw = await this.#call([
      "LRANGE",
      `${this.#prefix}renames`,
      "0",
      String(limit - 1),
    ]) as string[];
    return raw.map((json) => {
      const r = JSON.parse(json) as Rename;
      return { room: String(r.room), name: String(r.name), at: Number(r.at) };
    });
  }

  /** The user's rooms and DMs with newest ids, positions, read markers and unread counts. */
  async conversations(user: string): Promise<Conversation[]> {
    const flat = await this.#run(CONVERSATIONS, [user, String(UNREAD_CAP)]) as (
      | string
      | number
    )[];
    const rooms: [string, Conversation][] = [];
    const dms: [string, Conversation][] = [];
    for (let i = 0; i < flat.length; i += 6) {
      const [kind, conv] = [String(flat[i]), String(flat[i + 1])];
      const [last, seq, read, unread] = flat.slice(i + 2, i + 6).map(Number);
      if (kind === "r") rooms.push([conv, { room: conv, last, read, seq, unread }]);
      else {
        const [a, b] = dmPair(conv)!;
        dms.push([conv, { to: a === user ? b : a, last, read, seq, unread }]);
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

  /**
   * Remembers a user (and when it was seen). Every sign-in does this: the
   * users of one event-loop turn share one script, settled for all of them.
   */
  async touchUser(user: string, seen?: number): Promise<void> {
    if (seen === undefined) await this.#call(["SADD", `${this.#prefix}users`, user]);
    else await this.#seen.add([user, seen]);
  }

  /** Moves the users' last-seen times forward, in one script. */
  async markSeen(users: readonly string[], at: number): Promise<void> {
    if (users.length === 0) return;
    await this.#run(SEEN, users.flatMap((u) => ["", u.toLowerCase(), `${at}`]));
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
    const [n, s, t, c] = await this.#call([
      "HMGET",
      `${this.#prefix}claim:${name.toLowerCase()}`,
      "n",
      "s",
      "t",
      "c",
    ]) as (string | null)[];
    // No `c`: a claim made before claims kept it (0).
    return n === null ? null : { name: n, session: s!, seen: Number(t), since: Number(c ?? 0) };
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
    ]) as [number, string?, string?, string?, string?];
    const claim = reply.length > 1
      ? { name: reply[1]!, session: reply[2]!, seen: Number(reply[3]), since: Number(reply[4]) }
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
    for (let i = 0; i < flat.length; i += 4) {
      out.push({
        name: flat[i],
        session: flat[i + 1],
        seen: Number(flat[i + 2]),
        since: Number(flat[i + 3]),
      });
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
    for (let i = 0; i < flat.length; i += 4) {
      out.push({
        name: flat[i],
        session: flat[i + 1],
        seen: Number(flat[i + 2]),
        since: Number(flat[i + 3]),
      });
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
    // Every returning sign-in asks: the turn's questions share one MGET.
    return Number(await this.#revoked.add(`${this.#prefix}revoked:${session}`) ?? 0) > now;
  }

  /** Records a sign-in of `session` for `user`, keeping the latest {@link SESSIONS_KEPT}. */
  async noteSession(user: string, session: string, seen: number): Promise<void> {
    await this.#run(NOTE_SESSION, [
      user.toLowerCase(),
      session,
      String(seen),
      String(SESSIONS_KEPT),
    ]);
  }

  /** The users' sessions seen since `since` and not revoked at `now`, in one script. */
  async sessions(
    users: readonly string[],
    since: number,
    now: number,
  ): Promise<Map<string, SessionSeen[]>> {
    const out = new Map<string, SessionSeen[]>();
    if (users.length === 0) return out;
    const lists = await this.#run(SESSIONS, [
      String(since),
      String(now),
      ...users.map((u) => u.toLowerCase()),
    ]) as string[][];
    users.forEach((user, i) => {
      const flat = lists[i];
      const live: SessionSeen[] = [];
      for (let j = 0; j < flat.length; j += 2) {
        live.push({ session: flat[j], seen: Number(flat[j + 1]) });
      }
      if (live.length > 0) out.set(user, live);
    });
    return out;
  }

  /** Forgets the user's sessions. */
  async forgetSessions(user: string): Promise<void> {
    await this.#call(["DEL", `${this.#prefix}sess:${user.toLowerCase()}`]);
  }

  /** Closes the client if this store opened it. */
  async close(): Promise<void> {
    if (this.#owns) await closeRedis(this.#client);
  }
}
