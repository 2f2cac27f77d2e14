import assert from "node:assert/strict";
import {
  applyChange,
  type ChangeFrame,
  type ChatMessage,
  MAX_REACTIONS,
  snippetOf,
} from "../protocol.ts";
import { closeRedis, command, connectRedis, type Reply } from "../server/broker/redis_client.ts";
import { type Published, RedisStore, SEARCH_CHUNK_READ } from "../server/store/redis.ts";
import {
  type Applied,
  type Change,
  type ChangeResult,
  type Draft,
  ReplyChanged,
  replyRef,
  RoomGone,
} from "../server/store/store.ts";
import type { FileMeta } from "../server/files/files.ts";
import { RedisServer } from "./redis_helpers.ts";
import { assertRenamed, roomToRename, storeContract } from "./store_contract.ts";

// One redis-server per test, on a free port; each store gets its own key prefix.
storeContract("RedisStore", async ({ keep }) => {
  const redis = await RedisServer.start();
  try {
    const store = await RedisStore.connect(redis.url, { keep: keep ?? 1000, prefix: "contract:" });
    const close = store.close.bind(store);
    return Object.assign(store, {
      close: async () => {
        await close();
        await redis[Symbol.asyncDispose]();
      },
    });
  } catch (err) {
    await redis[Symbol.asyncDispose]();
    throw err;
  }
});

/** A store on a redis-server of its own (with its `cli`), both closed on dispose. */
async function openStore(
  keep: number,
): Promise<RedisStore & AsyncDisposable & Pick<RedisServer, "cli">> {
  const redis = await RedisServer.start();
  try {
    const store = await RedisStore.connect(redis.url, { keep });
    return Object.assign(store, {
      cli: redis.cli.bind(redis),
      [Symbol.asyncDispose]: async () => {
        await store.close();
        await redis[Symbol.asyncDispose]();
      },
    });
  } catch (err) {
    await redis[Symbol.asyncDispose]();
    throw err;
  }
}

Deno.test("RedisStore.search() reads each conversation newest first in chunks, only until it has enough", async () => {
  await using store = await openStore(5000);
  const rooms = ["a", "b", "c"];
  await Promise.all(rooms.flatMap((r) =>
    Array.from({ length: 3000 }, (_, i) =>
      store.append({
        conv: r,
        room: r,
        from: "u",
        text: i % 1000 === 0 ? `needle ${i}` : `hay ${i}`,
      }))
  ));
  // Messages of every reply of the search's chunk script, seen from the client.
  const replies: number[] = [];
  const client = store.client as unknown as { sendCommand(args: string[]): Promise<unknown> };
  const send = client.sendCommand.bind(client);
  client.sendCommand = async (args: string[]) => {
    const reply = await send(args);
    const script = args[0] === "EVAL" ? args[1] : args[0] === "EVALSHA" ? args[1] : "";
    if (script === SEARCH_CHUNK_READ.source || script === SEARCH_CHUNK_READ.sha) {
      replies.push((reply as unknown[]).length);
    }
    return reply;
  };
  const scope = { user: "u", rooms, limit: 50 };
  const read = () => replies.splice(0).reduce((a, b) => a + b, 0);

  assert.deepEqual(await store.search("nothing-like-this", scope), []);
  assert.ok(Math.max(...replies) <= 256, `no reply holds a whole log: ${Math.max(...replies)}`);
  assert.equal(read(), 9000, "a search that finds nothing reads everything once");

  assert.equal((await store.search("hay", { ...scope, limit: 10 })).length, 10);
  assert.ok(read() <= 3 * 256, "a conversation with enough matches is not read further");

  const expected: ChatMessage[] = [];
  for (const r of rooms) {
    const { messages } = await store.page(r, { limit: 5000 });
    expected.push(...messages.filter((m) => m.text.startsWith("needle")).reverse());
  }
  expected.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
  assert.deepEqual(await store.search("needle", scope), expected);
});

Deno.test("RedisStore.revokeSession() lets Redis expire the revocation when it lapses", async () => {
  await using store = await openStore(10);
  const now = Date.now();
  await store.revokeSession("s1", now + 60_000);
  const ttl = Number(await store.cli("PTTL", "chat:revoked:s1"));
  assert.ok(ttl > 0 && ttl <= 60_000, `expires with the revocation (${ttl} ms)`);
  await store.revokeSession("s2", now - 1);
  assert.equal(await store.cli("EXISTS", "chat:revoked:s2"), "0", "a lapsed one is not kept");
  assert.equal(await store.sessionRevoked("s1", now), true);
});

Deno.test("RedisStore.touchUser(): the sign-ins of one turn write last-seen in one script, each as it asked", async () => {
  await using store = await openStore(10);
  const scripts = async () =>
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(await store.cli("INFO", "commandstats"))?.[1] ?? 0);
  await store.touchUser("old", 5000);
  const before = await scripts();
  // 50 sign-ins in one turn; "Zoe" twice (the later time counts, never an earlier one).
  await Promise.all([
    ...Array.from({ length: 50 }, (_, i) => store.touchUser(`u${i}`, 1000 + i)),
    store.touchUser("Zoe", 900),
    store.touchUser("Zoe", 800),
    store.touchUser("old", 10),
  ]);
  assert.equal(await scripts() - before, 1, "one script for the turn");
  const seen = await store.lastSeen(["u0", "u49", "Zoe", "old", "never"]);
  assert.deepEqual(Object.fromEntries(seen), { u0: 1000, u49: 1049, Zoe: 900, old: 5000 });
  const known = (await store.cli("SMEMBERS", "chat:users")).split("\n");
  assert.ok(["u0", "u49", "Zoe", "old"].every((u) => known.includes(u)), "every user is known");
  // A later turn is a script of its own, and markSeen still moves times forward only.
  await store.touchUser("u0", 2000);
  await store.markSeen(["U1", "old"], 3000);
  assert.equal(await scripts() - before, 3);
  assert.deepEqual(
    Object.fromEntries(await store.lastSeen(["u0", "u1", "old"])),
    { u0: 2000, u1: 3000, old: 5000 },
  );
});

Deno.test("RedisStore.sessionRevoked(): the checks of one turn are one MGET, each answered for its session", async () => {
  await using store = await openStore(10);
  const calls = async (cmd: string) =>
    Number(
      new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(await store.cli("INFO", "commandstats"))
        ?.[1] ?? 0,
    );
  const now = Date.now();
  await store.revokeSession("gone", now + 60_000);
  await store.revokeSession("lapsing", now + 100);
  const before = await calls("mget"), gets = await calls("get");
  const answers = await Promise.all(
    ["ok1", "gone", "ok2", "lapsing", "gone"].map((s) => store.sessionRevoked(s, now)),
  );
  assert.deepEqual(answers, [false, true, false, true, true]);
  assert.equal(await calls("mget") - before, 1, "one MGET for the turn");
  assert.equal(await calls("get") - gets, 0, "no GET per session");
  // Revoked in the same turn as the check: the check sees it (Redis answers in order).
  const [, late] = await Promise.all([
    store.revokeSession("ok1", now + 60_000),
    store.sessionRevoked("ok1", now),
  ]);
  assert.equal(late, true);
  assert.equal(
    await store.sessionRevoked("lapsing", now + 100),
    false,
    "a lapsed one no longer counts",
  );
});

Deno.test("RedisStore: a claim keeps its time in `c`; a claim made before without one reads as 0", async () => {
  await using store = await openStore(10);
  await store.claimName("Alice", "s1", 1000, true);
  assert.equal(await store.cli("HGET", "chat:claim:alice", "c"), "1000");
  // As a claim recorded before `c` existed: no such field.
  await store.cli("HSET", "chat:claim:bob", "n", "Bob", "s", "sb", "t", "500");
  await store.cli("ZADD", "chat:claims", "500", "bob");
  const bob = { name: "Bob", session: "sb", seen: 500, since: 0 };
  assert.deepEqual(await store.nameClaim("BOB"), bob);
  assert.deepEqual(await store.claimName("bob", "s2", 600, true), { ok: false, claim: bob });
  const alice = { name: "Alice", session: "s1", seen: 1000, since: 1000 };
  assert.deepEqual(await store.staleClaims(Infinity, 10), [bob, alice]);
  assert.deepEqual(await store.recentClaims({ since: 0, limit: 10 }), [alice, bob]);
  const refreshed = { ...bob, seen: 2000 };
  assert.deepEqual(await store.claimName("bob", "sb", 2000, false), {
    ok: true,
    claim: refreshed,
  });
  assert.equal(await store.cli("HEXISTS", "chat:claim:bob", "c"), "0", "a refresh adds no time");
  assert.deepEqual(await store.recentClaims({ since: 0, match: "b", limit: 10 }), [refreshed]);
});

Deno.test("RedisStore.appendOnce() keeps a user's last 256 refs in two keys that expire after a quiet while", async () => {
  const redis = await RedisServer.start();
  const store = await RedisStore.connect(redis.url, { keep: 10, refTtl: 60_000 });
  try {
    const said = (i: number) => ({
      conv: "r",
      room: "r",
      from: "alice",
      text: `m${i}`,
      ref: `k${i}`,
    });
    const sent = [];
    for (let i = 0; i < 300; i++) sent.push((await store.appendOnce(said(i))).msg);
    await store.append({ conv: "r", room: "r", from: "bob", text: "no ref" });
    assert.equal(await redis.cli("HLEN", "chat:sent:alice"), "256");
    assert.equal(await redis.cli("LLEN", "chat:sentq:alice"), "256");
    assert.equal(await redis.cli("LINDEX", "chat:sentq:alice", "0"), "k299", "newest first");
    assert.equal(await redis.cli("EXISTS", "chat:sent:bob"), "0", "no ref, no keys");
    for (const key of ["chat:sent:alice", "chat:sentq:alice"]) {
      const ttl = Number(await redis.cli("PTTL", key));
      assert.ok(ttl > 0 && ttl <= 60_000, `${key} expires (${ttl} ms)`);
    }
    assert.equal((await store.page("r", { limit: 50 })).messages.length, 10);
    assert.deepEqual(
      await store.appendOnce(said(100)),
      { msg: sent[100], fresh: false },
      "a resend of a message history no longer keeps is still answered",
    );
    assert.equal((await store.appendOnce(said(43))).fresh, true, "k43 is past the window");
  } finally {
    await store.close();
    await redis[Symbol.asyncDispose]();
  }
});

/** Runs one command on a client of its own (as another program, or an older version, would). */
async function raw(url: string, ...commands: string[][]): Promise<Reply[]> {
  const client = await connectRedis(url);
  try {
    const out: Reply[] = [];
    for (const args of commands) out.push(await command(client, args, 5000));
    return out;
  } finally {
    await closeRedis(client);
  }
}

/**
 * History as the previous version (one capped stream per conversation, the
 * stream ids being the message ids) left it: `general` sent 5 and kept 3, a
 * DM kept both of its 2, and a DM with a released name was wiped after 4.
 */
function oldLayout(prefix: string, ms: number): string[][] {
  const p = prefix;
  const room = (id: number, from: string, text: string) => [
    "XADD",
    `${p}log:general`,
    "MAXLEN",
    "3",
    `${id}-0`,
    "ms",
    String(ms + id),
    "r",
    "general",
    "f",
    from,
    "x",
    text,
  ];
  return [
    ...[1, 2, 3, 4, 5].map((id) => room(id, id % 2 ? "alice" : "bob", `m${id} a/b "q" é`)),
    [
      "XADD",
      `${p}log:@alice:bob`,
      "MAXLEN",
      "3",
      "1-0",
      "ms",
      String(ms),
      "t",
      "bob",
      "f",
      "alice",
      "x",
      "psst",
    ],
    // A field value that looks like a field name.
    [
      "XADD",
      `${p}log:@alice:bob`,
      "MAXLEN",
      "3",
      "2-0",
      "ms",
      String(ms + 1),
      "t",
      "alice",
      "f",
      "bob",
      "x",
      "ms",
    ],
    ["HSET", `${p}seq`, "general", "5", "@alice:bob", "2", "@alice:carol", "4"],
    ["HSET", `${p}ms`, "general", String(ms + 5), "@alice:bob", String(ms + 1)],
    ["SADD", `${p}dms:alice`, "@alice:bob"],
    ["SADD", `${p}dms:bob`, "@alice:bob"],
    ["SADD", `${p}in:bob`, "general"],
    ["SADD", `${p}members:general`, "bob"],
    ["HSET", `${p}rooms`, "general", "alice"],
    ["HSET", `${p}read:bob`, "general", "3"],
  ];
}

Deno.test("RedisStore.connect() converts the previous layout's streams once, with seq = id, and ids go on", async () => {
  await using redis = await RedisServer.start();
  const ms = Date.UTC(2025, 0, 2, 3, 4, 5, 0);
  await raw(redis.url, ...oldLayout("chat:", ms));
  const store = await RedisStore.connect(redis.url, { keep: 3 });
  try {
    assert.equal(await redis.cli("GET", "chat:schema"), "2");
    assert.equal(await redis.cli("KEYS", "chat:log:*"), "", "the streams are gone");
    const ts = (id: number) => new Date(ms + id).toISOString();
    const general = [3, 4, 5].map((id) => ({
      id,
      seq: id,
      room: "general",
      from: id % 2 ? "alice" : "bob",
      text: `m${id} a/b "q" é`,
      ts: ts(id),
    }));
    assert.deepEqual(await store.page("general", { limit: 10 }), {
      messages: general,
      more: false,
      gap: false,
      seq: 5,
    });
    assert.deepEqual(await store.page("general", { since: 1, limit: 10 }), {
      messages: general,
      more: false,
      gap: true,
      seq: 5,
    }, "messages 1 and 2 were trimmed: a gap before 2, as before");
    assert.equal((await store.page("general", { since: 2, limit: 10 })).gap, false);
    assert.deepEqual((await store.page("@alice:bob", { limit: 10 })).messages, [
      { id: 1, seq: 1, to: "bob", from: "alice", text: "psst", ts: new Date(ms).toISOString() },
      { id: 2, seq: 2, to: "alice", from: "bob", text: "ms", ts: new Date(ms + 1).toISOString() },
    ]);
    assert.deepEqual(await store.conversations("bob"), [
      { room: "general", last: 5, read: 3, seq: 5, unread: 1 },
      { to: "alice", last: 2, read: 0, seq: 2, unread: 1 },
    ]);
    assert.deepEqual(
      await store.page("@alice:carol", { since: 3, limit: 10 }),
      { messages: [], more: false, gap: true, seq: 4 },
      "a wiped conversation: everything after since is gone",
    );
    const next = await store.append({ conv: "general", room: "general", from: "bob", text: "new" });
    assert.equal(next.id, 6, "ids go on");
    assert.equal(
      (await store.append({ conv: "@alice:carol", to: "carol", from: "alice", text: "again" })).id,
      5,
    );
    const edit = await store.change({
      kind: "edit",
      conv: "general",
      id: 5,
      user: "alice",
      text: "fixed",
    });
    assert.equal(edit.ok && edit.applied?.seq, 7);
    assert.equal(
      (await store.search("fixed", { user: "bob", rooms: ["general"], limit: 5 }))[0].id,
      5,
    );

    // Converting again (another node starting) changes nothing.
    const before = await redis.cli("HGETALL", "chat:m:general");
    assert.equal(await store.migrate(), 0);
    await redis.cli("DEL", "chat:schema");
    assert.equal(await store.migrate(), 0);
    assert.equal(await redis.cli("HGETALL", "chat:m:general"), before);
    assert.equal((await store.page("general", { since: 6, limit: 10 })).messages[0].text, "fixed");
  } finally {
    await store.close();
  }
});

Deno.test("RedisStore.migrate() run by nodes starting together converts each message once", async () => {
  await using redis = await RedisServer.start();
  const ms = Date.UTC(2025, 0, 2);
  await raw(redis.url, ...oldLayout("chat:", ms));
  // Many conversations, so both are converting while the other is.
  for (let i = 0; i < 50; i++) {
    await raw(redis.url, [
      "XADD",
      `chat:log:r${i}`,
      "1-0",
      "ms",
      String(ms),
      "r",
      `r${i}`,
      "f",
      "u",
      "x",
      "hi",
    ], [
      "HSET",
      "chat:seq",
      `r${i}`,
      "1",
    ]);
  }
  const clients = await Promise.all([connectRedis(redis.url), connectRedis(redis.url)]);
  try {
    const stores = clients.map((c) => new RedisStore(c, { keep: 3 }));
    const counts = await Promise.all(stores.map((s) => s.migrate()));
    assert.equal(counts[0] + counts[1], 3 + 2 + 50, "every kept message converted once");
    assert.equal(await redis.cli("KEYS", "chat:log:*"), "");
    for (const s of stores) {
      assert.deepEqual((await s.page("general", { limit: 10 })).messages.map((m) => m.id), [
        3,
        4,
        5,
      ]);
      assert.deepEqual((await s.page("r7", { since: 0, limit: 10 })).messages.map((m) => m.text), [
        "hi",
      ]);
    }
  } finally {
    await Promise.all(clients.map(closeRedis));
  }
});

Deno.test("RedisStore: two stores racing changes on one message agree on one final state, in seq order", async () => {
  await using redis = await RedisServer.start();
  const [a, b] = await Promise.all([
    RedisStore.connect(redis.url, { keep: 100 }),
    RedisStore.connect(redis.url, { keep: 100 }),
  ]);
  try {
    const original = await a.append({ conv: "r", room: "r", from: "alice", text: "v0" });
    const emoji = ["👍", "🎉", "❤️"];
    const changes: Change[] = [];
    for (let i = 0; i < 60; i++) {
      changes.push(
        i % 6 === 5 ? { kind: "edit", conv: "r", id: 1, user: "alice", text: `v${i}` } : {
          kind: "react",
          conv: "r",
          id: 1,
          user: `u${i % 4}`,
          emoji: emoji[i % 3],
          on: i % 4 !== 3,
        },
      );
    }
    const results = await Promise.all(changes.map((c, i) => (i % 2 ? b : a).change(c)));
    const applied = results.flatMap((r) => r.ok && r.applied ? [r.applied] : []);
    assert.ok(results.every((r) => r.ok), "nothing refused");
    const seqs = applied.map((x) => x.seq).sort((x, y) => x - y);
    assert.deepEqual(
      seqs,
      Array.from({ length: applied.length }, (_, i) => i + 2),
      "one position each",
    );
    // Replaying the applied changes in seq order gives what both stores read.
    let expected: ChatMessage = original;
    for (const x of [...applied].sort((p, q) => p.seq - q.seq)) {
      const frame: ChangeFrame = x.kind === "edited"
        ? { type: "edited", room: "r", id: x.id, text: x.text!, editedAt: x.editedAt!, seq: x.seq }
        : {
          type: "reaction",
          room: "r",
          id: x.id,
          emoji: x.emoji!,
          user: x.user,
          on: x.on!,
          seq: x.seq,
        };
      expected = applyChange(expected, frame);
    }
    assert.deepEqual(await a.message("r", 1), expected);
    assert.deepEqual(await b.message("r", 1), expected);
    assert.deepEqual((await b.page("r", { since: 1, limit: 5 })).seq, seqs.at(-1));
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisStore: of 25 new emoji raced from two stores, exactly 20 stick", async () => {
  await using redis = await RedisServer.start();
  const [a, b] = await Promise.all([
    RedisStore.connect(redis.url, { keep: 100 }),
    RedisStore.connect(redis.url, { keep: 100 }),
  ]);
  try {
    await a.append({ conv: "r", room: "r", from: "alice", text: "react to me" });
    const emoji = Array.from({ length: 25 }, (_, i) => String.fromCodePoint(0x1F600 + i));
    const results = await Promise.all(
      emoji.map((e, i) =>
        (i % 2 ? b : a).change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: e, on: true })
      ),
    );
    const won = results.flatMap((r, i) => r.ok ? [emoji[i]] : []);
    assert.equal(won.length, MAX_REACTIONS);
    assert.deepEqual(
      results.filter((r) => !r.ok),
      Array(5).fill({ ok: false, refusal: "too_many_reactions" }),
    );
    const msg = (await b.message("r", 1))!;
    assert.deepEqual(Object.keys(msg.reactions!).sort(), [...won].sort());
    assert.equal(msg.seq, 21);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisStore: a deleted message's text is gone from Redis, the event feed included", async () => {
  await using store = await openStore(10);
  const target = { channel: "chat:events", feedLength: 100 };
  const said = (text: string) => ({
    conv: "r",
    room: "r",
    from: "alice",
    text,
    json: JSON.stringify({ kind: "message", conv: "r", room: "r", from: "alice", text }),
  });
  for (const text of ["secret-one", "typo-two"]) {
    const { json, ...draft } = said(text);
    await store.appendAndPublish(draft, { ...target, json });
  }
  const change = (c: Change) => store.changeAndPublish(c, { ...target, origin: "" });
  await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "secret-edited" });
  await change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: true });
  await change({ kind: "delete", conv: "r", id: 1, user: "alice" });
  await change({ kind: "edit", conv: "r", id: 2, user: "alice", text: "fixed-two" });
  const dump = await store.cli("HGETALL", "chat:m:r");
  assert.doesNotMatch(dump, /secret|typo-two|👍/);
  assert.match(dump, /fixed-two/);
  const feed = await store.cli("XRANGE", "chat:feed", "-", "+");
  assert.doesNotMatch(feed, /secret/, "the deleted message's entries left the feed");
  assert.match(feed, /typo-two/, "others stay");
  assert.deepEqual(await store.message("r", 1), {
    id: 1,
    seq: 5,
    room: "r",
    from: "alice",
    text: "",
    ts: (await store.page("r", { limit: 1, before: 2 })).messages[0].ts,
    deleted: true,
  });
});

Deno.test("RedisStore: a message dropped by the cap after a late change raises the gap watermark to that change", async () => {
  await using store = await openStore(2);
  for (const text of ["one", "two"]) {
    await store.append({ conv: "r", room: "r", from: "alice", text });
  }
  await store.change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: true }); // seq 3
  await store.append({ conv: "r", room: "r", from: "alice", text: "four" }); // drops 1 (seq 3)
  assert.equal(await store.cli("HGET", "chat:trimmed", "r"), "3");
  const page = await store.page("r", { since: 2, limit: 10 });
  assert.deepEqual([page.gap, page.messages.map((m) => m.id), page.seq], [true, [4], 4]);
  assert.equal((await store.page("r", { since: 3, limit: 10 })).gap, false);
});

Deno.test("RedisStore.releaseName() takes the wiped DMs' texts out of the event feed too", async () => {
  await using store = await openStore(10);
  const target = { channel: "chat:events", feedLength: 100 };
  const send = (conv: string, to: string | undefined, text: string) =>
    store.appendAndPublish(
      to === undefined
        ? { conv, room: conv, from: "alice", text }
        : { conv, to, from: "alice", text },
      { ...target, json: JSON.stringify({ kind: "message", conv, text }) },
    );
  await send("@alice:bob", "bob", "private-words");
  await send("general", undefined, "public-words");
  await store.claimName("alice", "s1", Date.now(), true);
  assert.deepEqual(await store.releaseName("alice", "s1"), []);
  const feed = await store.cli("XRANGE", "chat:feed", "-", "+");
  assert.doesNotMatch(feed, /private-words/);
  assert.match(feed, /public-words/, "room messages stay");
  assert.equal(await store.cli("EXISTS", "chat:m:@alice:bob"), "0");
  assert.deepEqual(
    await store.page("@alice:bob", { since: 0, limit: 10 }),
    { messages: [], more: false, gap: true, seq: 1 },
  );
});

/**
 * Every value Redis holds, as text: each key's name and contents, whatever
 * its type (for "this text is nowhere" checks).
 */
async function everything(store: RedisStore): Promise<string> {
  const run = (...args: string[]) => command(store.client, args, 5000);
  const out: string[] = [];
  for (const key of await run("KEYS", "*") as string[]) {
    const type = await run("TYPE", key) as string;
    const read: Record<string, string[]> = {
      string: ["GET", key],
      hash: ["HGETALL", key],
      set: ["SMEMBERS", key],
      zset: ["ZRANGE", key, "0", "-1", "WITHSCORES"],
      list: ["LRANGE", key, "0", "-1"],
      stream: ["XRANGE", key, "-", "+"],
    };
    assert.ok(read[type], `a key of a type this dump reads: ${key} (${type})`);
    out.push(`${key} ${JSON.stringify(await run(...read[type]))}`);
  }
  return out.join("\n");
}

/** The JSON `m:<conv>` keeps for a message, parsed (`ev` and all). */
async function stored(store: RedisStore, conv: string, id: number) {
  const raw = await command(store.client, ["HGET", `chat:m:${conv}`, String(id)], 5000);
  return JSON.parse(raw as string) as {
    ev?: number[];
    replyTo?: unknown;
    text: string;
    files?: unknown;
  };
}

/** The change as applied, asserting it was. */
function applied(result: ChangeResult): Applied {
  assert.ok(result.ok && result.applied, `applied: ${JSON.stringify(result)}`);
  return result.applied;
}

/**
 * Publishing helpers for a store used as the broker uses it: every write goes
 * to the feed. With `old`, replies are published as versions before the fix
 * of chaos seed 236 did: their feed entry quotes the original.
 */
function publisher(store: RedisStore, feedLength = 100, old = false) {
  const target = { channel: "chat:events", feedLength };
  const event = (from: string, text: string, replyTo?: Record<string, unknown>) =>
    JSON.stringify({ kind: "message", conv: "r", room: "r", from, text, replyTo });
  return {
    send: (from: string, text: string, replyTo?: Draft["replyTo"], ref?: string) =>
      store.appendAndPublish({ conv: "r", room: "r", from, text, replyTo, ref }, {
        ...target,
        // As the broker publishes it: the quote without the original's seq,
        // and in the feed without the original's text.
        json: event(
          from,
          text,
          replyTo && { id: replyTo.id, from: replyTo.from, snippet: replyTo.snippet },
        ),
        feedJson: replyTo && !old
          ? event(from, text, { id: replyTo.id, from: replyTo.from })
          : undefined,
      }),
    change: (c: Change) => store.changeAndPublish(c, { ...target, origin: "" }),
  };
}

/** The quote a reply to `msg` sends, with the `seq` it was taken at. */
function quote(msg: ChatMessage): NonNullable<Draft["replyTo"]> {
  return { ...replyRef(msg), seq: msg.seq };
}

Deno.test("RedisStore: deleting an original empties its replies' quotes and leaves their feed entries, which never quoted it: its text is in no key", async () => {
  await using store = await openStore(10);
  const { send, change } = publisher(store);
  const original = (await send("alice", "the zanzibar plan")).msg; // 1, feed 1
  const reply = (await send("bob", "sounds good", quote(original))).msg; // 2, feed 2
  const other = (await send("carol", "unrelated")).msg; // 3, feed 3
  applied(await change({ kind: "edit", conv: "r", id: 2, user: "bob", text: "sounds great" })); // feed 4
  assert.equal(await store.cli("SMEMBERS", "chat:rp:r:1"), "2", "the reply is indexed");
  assert.match(await everything(store), /zanzibar/);

  applied(await change({ kind: "delete", conv: "r", id: 1, user: "alice" })); // feed 5
  const dump = await everything(store);
  assert.doesNotMatch(dump, /zanzibar/, "the original's text is in no key");
  assert.equal(await store.cli("EXISTS", "chat:rp:r:1"), "0", "its reply index went with it");
  const feed = await command(store.client, ["XRANGE", "chat:feed", "-", "+"], 5000) as [
    string,
    string[],
  ][];
  assert.deepEqual(
    feed.map(([id]) => id),
    ["2-0", "3-0", "4-0", "5-0"],
    "the original's creation entry is gone; the reply's stay (a node catching up delivers it)",
  );
  assert.deepEqual(
    JSON.parse(feed[0][1][1].split("\n")[3]).replyTo,
    { id: 1, from: "alice" },
    "the reply's creation entry names the original without quoting it",
  );
  assert.deepEqual((await stored(store, "r", 2)).replyTo, {
    id: 1,
    from: "alice",
    snippet: "",
    deleted: true,
  }, "emptied in storage, not only on read");
  assert.deepEqual(await store.message("r", 2), {
    ...reply,
    seq: 4,
    text: "sounds great",
    edited: (await store.message("r", 2))!.edited,
    replyTo: { id: 1, from: "alice", snippet: "", deleted: true },
  });
  assert.deepEqual(await store.message("r", 3), other);
});

Deno.test("RedisStore: a reply's feed entry written by an older version quotes its original: deleting the original takes it out", async () => {
  await using store = await openStore(10);
  const { send, change } = publisher(store, 100, true);
  const original = (await send("alice", "the zanzibar plan")).msg; // 1, feed 1
  await send("bob", "sounds good", quote(original)); // 2, feed 2
  await send("carol", "unrelated"); // 3, feed 3
  assert.match(await store.cli("XRANGE", "chat:feed", "2", "2"), /zanzibar/);
  applied(await change({ kind: "delete", conv: "r", id: 1, user: "alice" })); // feed 4
  assert.doesNotMatch(await everything(store), /zanzibar/, "the original's text is in no key");
  const feed = await command(store.client, ["XRANGE", "chat:feed", "-", "+"], 5000) as [
    string,
    string[],
  ][];
  assert.deepEqual(feed.map(([id]) => id), ["3-0", "4-0"]);
});

Deno.test("RedisStore.quoteNow(): a reply read back from the feed quotes its original as it is now", async () => {
  await using store = await openStore(3);
  const { send, change } = publisher(store);
  const original = (await send("alice", "draft one")).msg; // 1
  const reply = (await send("bob", "agreed", quote(original))).msg; // 2
  // As the feed has it: the original named, not quoted.
  const fromFeed = {
    ...reply,
    replyTo: { id: 1, from: "alice" } as NonNullable<ChatMessage["replyTo"]>,
  };
  const plain = (await send("carol", "no reply")).msg; // 3
  assert.equal(await store.quoteNow("r", plain), plain, "a message that is no reply is as it is");
  assert.deepEqual((await store.quoteNow("r", fromFeed)).replyTo, {
    id: 1,
    from: "alice",
    snippet: "draft one",
  });
  applied(await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "draft two" }));
  assert.deepEqual((await store.quoteNow("r", fromFeed)).replyTo, {
    id: 1,
    from: "alice",
    snippet: "draft two",
  }, "the original's edit");
  // An entry of an older version quotes the original as it was: quoted as it is.
  const old = { ...reply, replyTo: { id: 1, from: "alice", snippet: "draft one" } };
  assert.deepEqual((await store.quoteNow("r", old)).replyTo, {
    id: 1,
    from: "alice",
    snippet: "draft two",
  });
  applied(await change({ kind: "delete", conv: "r", id: 1, user: "alice" }));
  const stone = { id: 1, from: "alice", snippet: "", deleted: true };
  assert.deepEqual(await store.quoteNow("r", fromFeed), { ...reply, replyTo: stone });
  // The tombstone dropped by the cap: the quote the reply keeps says so still.
  await send("dan", "four"); // drops 1
  assert.equal(await store.message("r", 1), null);
  assert.deepEqual(await store.quoteNow("r", fromFeed), { ...reply, replyTo: stone });
  await send("dan", "five"); // drops the reply too
  assert.equal(await store.message("r", 2), null);
  assert.deepEqual((await store.quoteNow("r", fromFeed)).replyTo, {
    id: 1,
    from: "alice",
    snippet: "",
  }, "neither kept: what the entry says, no text made up");
  assert.deepEqual((await store.quoteNow("r", old)).replyTo, {
    id: 1,
    from: "alice",
    snippet: "draft one",
  }, "an older entry's quote, which a delete would have taken out of the feed");
});

Deno.test("RedisStore: an original's edit rewrites its kept replies' stored quotes; a deleted reply leaves the index", async () => {
  await using store = await openStore(10);
  const { send, change } = publisher(store);
  const original = (await send("alice", "draft one")).msg; // 1
  await send("bob", "first reply", quote(original)); // 2
  await send("carol", "second reply", quote(original)); // 3
  assert.equal(await store.cli("SCARD", "chat:rp:r:1"), "2");
  applied(await change({ kind: "delete", conv: "r", id: 3, user: "carol" })); // seq 4
  assert.equal(await store.cli("SMEMBERS", "chat:rp:r:1"), "2", "the tombstone quotes nothing");
  const long = "é".repeat(150) + " " + "word ".repeat(100);
  applied(await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: long })); // seq 5
  assert.deepEqual((await stored(store, "r", 2)).replyTo, {
    id: 1,
    from: "alice",
    snippet: snippetOf(long),
  }, "the snippet is cut by characters, not bytes");
  assert.equal((await store.message("r", 3))!.replyTo, undefined);
  assert.equal((await stored(store, "r", 3)).replyTo, undefined, "the edit gave it no quote back");
  assert.doesNotMatch(await store.cli("HGETALL", "chat:m:r"), /draft one/);
});

Deno.test("RedisStore: a reply index goes when its original is dropped by the cap or its DM is wiped", async () => {
  await using store = await openStore(3);
  const { send } = publisher(store);
  const original = (await send("alice", "one")).msg; // 1
  await send("bob", "re one", quote(original)); // 2
  assert.equal(await store.cli("EXISTS", "chat:rp:r:1"), "1");
  await send("bob", "three");
  await send("bob", "four"); // drops 1
  assert.equal(await store.cli("EXISTS", "chat:rp:r:1"), "0");
  assert.deepEqual((await store.message("r", 2))!.replyTo, {
    id: 1,
    from: "alice",
    snippet: "one",
  });

  const dm = { conv: "@alice:bob", to: "bob", from: "alice" };
  const psst = await store.append({ ...dm, text: "psst" });
  await store.append({ ...dm, to: "alice", from: "bob", text: "what", replyTo: quote(psst) });
  assert.equal(await store.cli("SMEMBERS", "chat:rp:@alice:bob:1"), "2");
  await store.claimName("alice", "s1", Date.now(), true);
  assert.deepEqual(await store.releaseName("alice", "s1"), []);
  assert.equal(await store.cli("KEYS", "chat:rp:*"), "", "no index is left behind");
});

Deno.test("RedisStore: a delete of the original racing a reply from another store: refused, or stored and emptied, never the text kept", async () => {
  await using redis = await RedisServer.start();
  const [a, b] = await Promise.all([
    RedisStore.connect(redis.url, { keep: 1000 }),
    RedisStore.connect(redis.url, { keep: 1000 }),
  ]);
  try {
    const pa = publisher(a), pb = publisher(b);
    const outcomes = { refused: 0, emptied: 0 };
    for (let i = 0; i < 40; i++) {
      const original = (await pa.send("alice", `secret${i}word`)).msg;
      // Either may reach Redis first: alternate which one is sent first.
      const del = () => pa.change({ kind: "delete", conv: "r", id: original.id, user: "alice" });
      const reply = () => pb.send("bob", `re ${i}`, quote(original)).catch((e): Error => e);
      let racing: [Promise<ChangeResult>, Promise<Published | Error>];
      if (i % 2) {
        const d = del();
        racing = [d, reply()];
      } else {
        const r = reply();
        racing = [del(), r];
      }
      const [deleted, sent] = await Promise.all(racing);
      assert.equal(applied(deleted).kind, "deleted");
      if (sent instanceof ReplyChanged) {
        outcomes.refused++;
        assert.equal(
          sent.message,
          `Message #${original.id} changed while a reply to it was being sent`,
        );
      } else {
        outcomes.emptied++;
        assert.ok(!(sent instanceof Error), String(sent));
        const { msg } = sent;
        assert.deepEqual(msg.replyTo, replyRef(original), "acknowledged as sent");
        assert.deepEqual((await b.message("r", msg.id))!.replyTo, {
          id: original.id,
          from: "alice",
          snippet: "",
          deleted: true,
        });
        assert.deepEqual((await stored(a, "r", msg.id)).replyTo, {
          id: original.id,
          from: "alice",
          snippet: "",
          deleted: true,
        });
      }
    }
    assert.equal(outcomes.refused + outcomes.emptied, 40);
    assert.doesNotMatch(await everything(a), /secret\d+word/, "no deleted text anywhere");
    // Every position went to a message or a change: refused replies used none.
    const page = await a.page("r", { since: 0, limit: 1000 });
    assert.equal(page.seq, 40 + 40 + outcomes.emptied);
    assert.equal(page.messages.length, 40 + outcomes.emptied);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisStore: a message's feed entries still in the feed are all deleted with it, however far back", async () => {
  await using store = await openStore(1000);
  const { send, change } = publisher(store, 100);
  await send("alice", "keep me"); // 1, feed 1
  applied(await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "early-edit" })); // feed 2
  // 300 messages published, each deleted at once without a feed entry of
  // its own: the feed numbers move far past 2 × feedLength, the feed stays short.
  for (let i = 0; i < 300; i++) {
    const { msg } = await send("bob", `filler ${i}`);
    applied(await store.change({ kind: "delete", conv: "r", id: msg.id, user: "bob" }));
  }
  assert.equal(await store.cli("XLEN", "chat:feed"), "2");
  applied(await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "late-edit" })); // feed 303
  assert.deepEqual((await stored(store, "r", 1)).ev, [1, 2, 303], "the early edit is remembered");
  applied(await change({ kind: "delete", conv: "r", id: 1, user: "alice" }));
  assert.doesNotMatch(await everything(store), /keep me|early-edit|late-edit|filler/);
});

Deno.test("RedisStore: a message's recorded feed entries are exactly its creation's and its edits' still in the feed", async () => {
  await using store = await openStore(10);
  const { send, change } = publisher(store, 10);
  await send("alice", "v0"); // feed 1
  for (let i = 1; i <= 400; i++) {
    applied(await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: `v${i}` }));
  }
  const feed = await command(store.client, ["XRANGE", "chat:feed", "-", "+"], 5000) as [
    string,
    string[],
  ][];
  assert.ok(feed.length < 400, `the feed was trimmed (${feed.length} entries)`);
  assert.deepEqual(
    (await stored(store, "r", 1)).ev,
    [1, ...feed.map(([id]) => parseInt(id))],
    "its creation's first (trimmed long ago), then every entry still in the feed, nothing older",
  );
});

Deno.test("RedisStore: a resend answers the stored message as it is now: edited, or deleted", async () => {
  await using store = await openStore(10);
  const { send, change } = publisher(store);
  const first = await send("alice", "hello", undefined, "k1");
  assert.deepEqual([first.fresh, first.seq], [true, 1]);
  const edit = applied(await change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "hi" }));
  const edited = { ...first.msg, seq: edit.seq, text: "hi", edited: edit.editedAt };
  assert.deepEqual(await send("alice", "hello", undefined, "k1"), {
    msg: edited,
    fresh: false,
    seq: 0,
  });
  assert.deepEqual(
    await store.appendOnce({ conv: "r", room: "r", from: "alice", text: "hello", ref: "k1" }),
    { msg: edited, fresh: false },
  );
  const gone = applied(await change({ kind: "delete", conv: "r", id: 1, user: "alice" }));
  assert.deepEqual((await send("alice", "hello", undefined, "k1")).msg, {
    id: 1,
    seq: gone.seq,
    room: "r",
    from: "alice",
    text: "",
    ts: first.msg.ts,
    deleted: true,
  });
  const feed = await command(store.client, ["XRANGE", "chat:feed", "-", "+"], 5000) as [
    string,
    string[],
  ][];
  assert.deepEqual(
    feed.map(([id]) => id),
    [`${gone.seq}-0`],
    "nothing more was published: the delete's entry is all the feed holds",
  );
});

Deno.test("RedisStore: a message's files are kept in its JSON in wire key order, and gone from Redis with a delete", async () => {
  await using store = await openStore(1);
  // Names cjson must carry as they are: quotes, backslashes, slashes, emoji, bidi-free Unicode.
  const photo: FileMeta = {
    id: "CCCCCCCCCCCCCCCCCCCCCC",
    name: 'a "b" \\ c/d 🐈 é.png',
    size: 26_214_400,
    type: "image/png",
    width: 4032,
    height: 3024,
  };
  const doc: FileMeta = { id: "DDDDDDDDDDDDDDDDDDDDDD", name: "r.pdf", size: 1, type: "x/y" };
  const draft = { conv: "r", room: "r", from: "alice", text: "", files: [photo, doc], ref: "k1" };
  const first = await store.appendOnce(draft);
  assert.deepEqual(first.msg.files, [photo, doc]);
  assert.deepEqual(Object.keys(first.msg.files![0]), [
    "id",
    "name",
    "size",
    "type",
    "width",
    "height",
  ]);
  const kept = await store.message("r", 1);
  assert.deepEqual(kept?.files, [photo, doc]);
  assert.deepEqual(Object.keys(kept!.files![0]), ["id", "name", "size", "type", "width", "height"]);
  assert.deepEqual((await stored(store, "r", 1)).files, [photo, doc]);

  // Dropped by the cap (keep 1): a resend is rebuilt from the draft, files included.
  await store.append({ conv: "r", room: "r", from: "bob", text: "next" });
  assert.deepEqual(await store.appendOnce(draft), { msg: first.msg, fresh: false });

  await store.append({ conv: "r", room: "r", from: "alice", text: "again", files: [photo] });
  assert.equal((await store.change({ kind: "delete", conv: "r", id: 3, user: "alice" })).ok, true);
  const raw = await store.cli("HGET", "chat:m:r", "3");
  assert.equal(raw.includes(photo.id) || raw.includes("files"), false, `gone: ${raw}`);
});

Deno.test("RedisStore: room settings are one key, seen by every store; racing creators agree", async () => {
  await using redis = await RedisServer.start();
  const [a, b] = await Promise.all([
    RedisStore.connect(redis.url, { keep: 100 }),
    RedisStore.connect(redis.url, { keep: 100 }),
  ]);
  try {
    await a.join("alice", "secret", { private: true });
    await a.join("alice", "plain");
    assert.deepEqual(await b.roomSettings("secret"), { private: true });
    assert.deepEqual(await b.roomSettings("plain"), {});
    assert.equal(await b.roomSettings("nowhere"), null);
    assert.deepEqual(await b.setRoomSettings("secret", { readOnly: true, archived: true }), {
      private: true,
      readOnly: true,
      archived: true,
    });
    assert.equal(await redis.cli("HGET", "chat:settings", "secret"), "pra");
    assert.deepEqual(await a.setRoomSettings("secret", { private: false, archived: false }), {
      readOnly: true,
    });
    assert.deepEqual(await b.rooms(), [
      { name: "plain", members: 1 },
      { name: "secret", members: 1, readOnly: true },
    ]);
    await b.setRoomSettings("secret", { readOnly: false });
    assert.equal(await redis.cli("HEXISTS", "chat:settings", "secret"), "0", "a plain room's goes");
    assert.equal(await a.setRoomSettings("nowhere", { private: true }), null);
    assert.equal(await redis.cli("HLEN", "chat:settings"), "0", "nothing written");
    assert.equal(await redis.cli("HEXISTS", "chat:rooms", "nowhere"), "0");
    // Two nodes creating the same rooms at once: only the creator's wish counts.
    for (let i = 0; i < 20; i++) {
      const room = `race${i}`;
      const [ja, jb] = await Promise.all([
        a.join("alice", room, { private: true }),
        b.join("bob", room),
      ]);
      assert.equal(Number(ja.created) + Number(jb.created), 1, "one creator");
      const expected = ja.created ? { private: true } : {};
      assert.deepEqual(await a.roomSettings(room), expected);
      assert.deepEqual(await b.roomSettings(room), expected);
      assert.deepEqual(await b.members(room), ["alice", "bob"]);
    }
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisStore.renameRoom(): the renamed room and the gone old name survive a restart of Redis", async () => {
  await using redis = await RedisServer.start();
  let store = await RedisStore.connect(redis.url, { keep: 100 });
  try {
    const before = await roomToRename(store);
    assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
    await store.close();
    await redis.stop("SIGKILL");
    await redis.restart();
    store = await RedisStore.connect(redis.url, { keep: 100 });
    await assertRenamed(store, before);
    await assert.rejects(
      store.append({ conv: "ops", room: "ops", from: "a", text: "x" }),
      RoomGone,
    );
    assert.deepEqual(await store.join("dave", "ops"), { added: true, created: true, count: 1 });
    const first = await store.append({ conv: "ops", room: "ops", from: "dave", text: "new" });
    assert.equal(first.id, before.history.seq + 2, "after the renamed room's ids and its gap");
  } finally {
    await store.close();
  }
});

Deno.test("RedisStore.renameRoom(): markers move for members; an ex-member's stays under the old name", async () => {
  await using store = await openStore(100);
  await store.join("alice", "ops");
  await store.join("erin", "ops");
  await store.append({ conv: "ops", room: "ops", from: "alice", text: "one" });
  await store.setRead("erin", "ops", 1);
  await store.setRead("alice", "ops", 1);
  await store.leave("erin", "ops");
  assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
  assert.deepEqual(await store.cli("HGETALL", "chat:read:alice"), "deploys\n1");
  assert.deepEqual(await store.cli("HGETALL", "chat:read:erin"), "ops\n1");
  assert.deepEqual(await store.cli("SMEMBERS", "chat:gone"), "ops");
  await store.join("bob", "ops");
  assert.deepEqual(await store.cli("SMEMBERS", "chat:gone"), "", "created again: not gone");
});

Deno.test("RedisStore.renameRoom() renames the reply indexes: an edit under the new name rewrites the stored quotes", async () => {
  await using store = await openStore(100);
  await store.join("alice", "ops");
  const original = await store.append({ conv: "ops", room: "ops", from: "alice", text: "v1" });
  const replyTo = { ...replyRef(original), seq: original.seq };
  await store.append({ conv: "ops", room: "ops", from: "bob", text: "re", replyTo });
  assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
  assert.equal(await store.cli("EXISTS", "chat:rp:ops:1"), "0");
  assert.equal(await store.cli("SMEMBERS", "chat:rp:deploys:1"), "2");
  await store.change({ kind: "edit", conv: "deploys", id: 1, user: "alice", text: "v2" });
  const stored = JSON.parse(await store.cli("HGET", "chat:m:deploys", "2"));
  assert.deepEqual([stored.room, stored.replyTo.snippet], ["deploys", "v2"]);
});

Deno.test("RedisStore: renames and sessions survive a restart of Redis, under their documented keys", async () => {
  await using redis = await RedisServer.start();
  let store = await RedisStore.connect(redis.url, { keep: 100 });
  const now = Date.now();
  try {
    await store.join("alice", "ops");
    assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
    await store.noteSession("Alice", "s1", 1000);
    await store.noteSession("alice", "s2", 2000);
    const [renamed] = await store.recentRenames(1);
    assert.deepEqual(JSON.parse(await redis.cli("LINDEX", "chat:renames", "0")), renamed);
    assert.equal(
      await redis.cli("ZRANGE", "chat:sess:alice", "0", "-1", "WITHSCORES"),
      "s1\n1000\ns2\n2000",
    );
    await store.close();
    await redis.stop("SIGKILL");
    await redis.restart();
    store = await RedisStore.connect(redis.url, { keep: 100 });
    assert.deepEqual(await store.recentRenames(10), [renamed]);
    assert.deepEqual(
      await store.sessions(["ALICE"], 0, now),
      new Map([["ALICE", [{ session: "s2", seen: 2000 }, { session: "s1", seen: 1000 }]]]),
    );
  } finally {
    await store.close();
  }
});

Deno.test("RedisStore.sessions() reads every user's sessions in one script, however many", async () => {
  await using store = await openStore(100);
  const users = Array.from({ length: 200 }, (_, i) => `u${i}`);
  for (const user of users.slice(0, 3)) await store.noteSession(user, `${user}-s`, 1000);
  // Once first, so that the script is loaded and the counted run is its only command.
  await store.sessions(["u0"], 0, Date.now());
  await store.cli("CONFIG", "RESETSTAT");
  const found = await store.sessions(users, 0, Date.now());
  assert.deepEqual([...found.keys()], ["u0", "u1", "u2"]);
  const stats = await store.cli("INFO", "commandstats");
  const calls = (cmd: string) =>
    Number(stats.match(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`))?.[1] ?? 0);
  assert.deepEqual([calls("evalsha"), calls("eval")], [1, 0]);
  assert.equal(calls("zrange"), users.length, "one ZRANGE per user, inside the script");
});

Deno.test("RedisStore.renameRoom() records `renamedto` old → `top\\nnew`; a rename to a name drops its entry", async () => {
  await using store = await openStore(100);
  await store.join("bob", "ops");
  const first = await store.appendOnce({
    conv: "ops",
    room: "ops",
    from: "bob",
    text: "hello",
    ref: "r1",
  });
  assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
  assert.equal(await store.cli("HGETALL", "chat:renamedto"), "ops\n1\ndeploys");
  assert.match(
    await store.cli("HGET", "chat:sent:bob", "r1"),
    /\nops$/,
    "the sender's record is not rewritten",
  );
  assert.equal(await store.renameRoom("deploys", "ops"), "renamed");
  assert.equal(await store.cli("HGETALL", "chat:renamedto"), "deploys\n2\nops");
  const again = await store.appendOnce({
    conv: "ops",
    room: "ops",
    from: "bob",
    text: "hello",
    ref: "r1",
  });
  assert.deepEqual(again, { msg: first.msg, fresh: false });
});

Deno.test("RedisStore.appendAndPublish() with member: a non-member's message is neither stored nor published", async () => {
  await using store = await openStore(100);
  await store.join("alice", "ops");
  const target = { channel: "chat:events", feedLength: 100, json: "{}" };
  const draft = { conv: "ops", room: "ops", from: "bob", text: "x", member: true as const };
  await assert.rejects(store.appendAndPublish(draft, target), RoomGone);
  await assert.rejects(store.appendAndPublish({ ...draft, ref: "b1" }, target), RoomGone);
  assert.equal(await store.cli("EXISTS", "chat:feed"), "0", "nothing in the feed");
  assert.equal(await store.cli("GET", "chat:evseq"), "", "no feed number taken");
  assert.equal(await store.cli("EXISTS", "chat:sent:bob"), "0", "no ref remembered");
  const ok = await store.appendAndPublish({ ...draft, from: "alice" }, target);
  assert.deepEqual([ok.msg.id, ok.seq, ok.fresh], [1, 1, true]);
});

/** The name index of `room` (`membersz:`) and its member set, each sorted. */
async function memberKeys(store: RedisStore, room: string): Promise<[string[], string[]]> {
  const zset = await command(store.client, ["ZRANGE", `chat:membersz:${room}`, "0", "-1"], 5000);
  const set = await command(store.client, ["SMEMBERS", `chat:members:${room}`], 5000);
  return [zset as string[], (set as string[]).sort()];
}

/** Every member of `room`, read by pages of `limit`. */
async function allPages(store: RedisStore, room: string, limit: number): Promise<string[]> {
  const out: string[] = [];
  for (;;) {
    const page = await store.membersPage(room, out.at(-1), limit);
    if (page.members.length === 0) return out;
    out.push(...page.members);
  }
}

Deno.test("RedisStore.membersPage() rebuilds the name index of members written without one", async (t) => {
  await using store = await openStore(100);
  // As an older version left them: a set, no zset.
  const names = Array.from({ length: 1200 }, (_, i) => `${"-0A_az"[i % 6]}${i}`);
  const sorted = [...names].sort();
  for (let i = 0; i < names.length; i += 400) {
    await command(store.client, ["SADD", "chat:members:old", ...names.slice(i, i + 400)], 5000);
  }
  await command(store.client, ["HSET", "chat:rooms", "old", "alice"], 5000);
  await t.step("a join before any page adds to the index, not the whole set", async () => {
    assert.deepEqual(await store.join("zed", "old"), { added: true, created: false, count: 1201 });
    assert.equal(await store.cli("ZCARD", "chat:membersz:old"), "1");
    sorted.push("zed");
  });
  await t.step("the first page rebuilds it: every page is right", async () => {
    assert.deepEqual(await store.membersPage("old", undefined, 3), {
      members: sorted.slice(0, 3),
      count: 1201,
    });
    const [zset, set] = await memberKeys(store, "old");
    assert.deepEqual(zset, set);
    assert.deepEqual(await allPages(store, "old", 500), sorted);
    assert.equal(await store.memberCount("old"), 1201);
  });
  await t.step(
    "a member taken out of the set only (an older node's leave) is dropped",
    async () => {
      await command(store.client, ["SREM", "chat:members:old", sorted[0]], 5000);
      await command(store.client, ["SADD", "chat:members:old", "--new"], 5000);
      // Same sizes, different names: the page finds the stale name and rebuilds.
      assert.deepEqual(await store.membersPage("old", undefined, 2), {
        members: ["--new", sorted[1]],
        count: 1201,
      });
      const [zset, set] = await memberKeys(store, "old");
      assert.deepEqual(zset, set);
    },
  );
});

Deno.test("RedisStore keeps the name index of a room in step through joins, leaves, renames and releases", async () => {
  await using store = await openStore(100);
  const inStep = async (room: string, members: string[]) => {
    assert.deepEqual(await memberKeys(store, room), [members, members], room);
    assert.deepEqual(await store.membersPage(room, undefined, 50), {
      members,
      count: members.length,
    });
  };
  for (const n of ["carol", "alice", "Bob", "dave"]) await store.join(n, "ops");
  await store.join("alice", "general");
  await inStep("ops", ["Bob", "alice", "carol", "dave"]);
  assert.equal(await store.leave("carol", "ops"), true);
  await inStep("ops", ["Bob", "alice", "dave"]);
  // A name without a room but with stray members: the rename replaces them.
  await command(store.client, ["SADD", "chat:members:deploys", "stray"], 5000);
  await command(store.client, ["ZADD", "chat:membersz:deploys", "0", "stray"], 5000);
  assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
  assert.equal(await store.cli("EXISTS", "chat:members:ops", "chat:membersz:ops"), "0");
  await inStep("deploys", ["Bob", "alice", "dave"]);
  await inStep("ops", []);
  await store.claimName("alice", "s1", 1000, true);
  assert.deepEqual(await store.releaseName("alice", "s1"), ["deploys", "general"]);
  await inStep("deploys", ["Bob", "dave"]);
  await inStep("general", []);
});
