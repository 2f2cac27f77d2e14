import assert from "node:assert/strict";
import { MemoryPushStore } from "../server/push/memory.ts";
import { RedisPushStore } from "../server/push/redis.ts";
import { SqlitePushStore } from "../server/push/sqlite.ts";
import { command, connectRedis } from "../server/broker/redis_client.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { aSub, pushStoreContract } from "./push_store_contract.ts";
import { RedisServer } from "./redis_helpers.ts";

pushStoreContract("MemoryPushStore", () => Promise.resolve(new MemoryPushStore()));

pushStoreContract("SqlitePushStore", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-push-" });
  const store = SqliteStore.open(`${dir}/chat.db`, { synchronous: "normal" });
  const push = SqlitePushStore.open(store);
  const close = push.close.bind(push);
  return Object.assign(push, {
    close: async () => {
      await close();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  });
});

pushStoreContract("RedisPushStore", async () => {
  const redis = await RedisServer.start();
  try {
    const client = await connectRedis(redis.url, { name: "contract" });
    const push = new RedisPushStore(client, { ownsClient: true });
    const close = push.close.bind(push);
    return Object.assign(push, {
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

Deno.test("SqlitePushStore: subscriptions and levels outlive a reopen of the data file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-push-" });
  try {
    const sub = aSub();
    {
      const store = SqliteStore.open(`${dir}/chat.db`);
      const push = SqlitePushStore.open(store);
      await push.subscribe(sub);
      await push.setLevel("alice", "#dev", "all");
      await push.close();
      await store.close();
    }
    const store = SqliteStore.open(`${dir}/chat.db`);
    const push = SqlitePushStore.open(store);
    try {
      assert.deepEqual(await push.subscriptions("alice"), [sub]);
      assert.deepEqual(await push.levels("alice"), { "#dev": "all" });
    } finally {
      await push.close();
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("RedisPushStore: two nodes' clients share subscriptions, levels and visibility", async () => {
  await using redis = await RedisServer.start();
  const a = new RedisPushStore(await connectRedis(redis.url, { name: "a" }), { ownsClient: true });
  const b = new RedisPushStore(await connectRedis(redis.url, { name: "b" }), { ownsClient: true });
  try {
    const sub = aSub();
    await a.subscribe(sub);
    await a.setLevel("alice", "#dev", "none");
    await a.setVisibleMany("node-a", new Map([["bob", true]]), 60_000);
    assert.deepEqual(await b.subscriptions("alice"), [sub]);
    assert.deepEqual(await b.levels("alice"), { "#dev": "none" });
    assert.deepEqual(await b.visibleUsers(["bob"]), new Set(["bob"]));
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("RedisPushStore: anySubscriptions() finds subscriptions kept before its marker existed", async () => {
  await using redis = await RedisServer.start();
  const client = await connectRedis(redis.url, { name: "old" });
  const push = new RedisPushStore(client, { ownsClient: true });
  try {
    // What a chat from before `push:any` holds: a user's endpoints, no marker.
    await command(client, ["ZADD", "chat:push:user:bob", "1", "https://push.example/bob"], 5000);
    assert.equal(await push.anySubscriptions(), true);
    assert.equal(
      await command(client, ["GET", "chat:push:any"], 5000),
      "1",
      "the scan left the marker",
    );
    await command(client, ["FLUSHALL"], 5000);
    const fresh = new RedisPushStore(client);
    assert.equal(await fresh.anySubscriptions(), false);
    await fresh.subscribe(aSub());
    assert.equal(await fresh.anySubscriptions(), true);
  } finally {
    await push.close();
  }
});
