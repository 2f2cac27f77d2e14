import assert from "node:assert/strict";
import { applyChange, type ChangeFrame, type ChatMessage, MAX_REACTIONS } from "../protocol.ts";
import { closeRedis, command, connectRedis, type Reply } from "../server/broker/redis_client.ts";
import { RedisStore, SEARCH_CHUNK_READ } from "../server/store/redis.ts";
import type { Change } from "../server/store/store.ts";
import { RedisServer } from "./redis_helpers.ts";
import { storeContract } from "./store_contract.ts";

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
