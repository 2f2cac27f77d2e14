import assert from "node:assert/strict";
import type { ChatMessage } from "../protocol.ts";
import { RedisStore } from "../server/store/redis.ts";
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

Deno.test("RedisStore.search() reads each stream newest first in chunks, only until it has enough", async () => {
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
  // Entries of every XREVRANGE reply, seen from the client.
  const replies: number[] = [];
  const client = store.client as unknown as { sendCommand(args: string[]): Promise<unknown> };
  const send = client.sendCommand.bind(client);
  client.sendCommand = async (args: string[]) => {
    const reply = await send(args);
    if (args[0] === "XREVRANGE") replies.push((reply as unknown[]).length);
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
