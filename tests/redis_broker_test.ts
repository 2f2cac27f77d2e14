import assert from "node:assert/strict";
import type { BrokerEvent } from "../server/broker/broker.ts";
import { RedisBroker } from "../server/broker/redis.ts";
import { memoryLogger } from "../server/log.ts";
import { RedisStore } from "../server/store/redis.ts";
import { brokerContract, type BrokerFixture, Received, said } from "./broker_contract.ts";
import { waitUntil } from "./helpers.ts";
import { RedisServer } from "./redis_helpers.ts";

/** A node of a chat on `redis`: its own store client and broker, closed in that order. */
async function openNode(
  redis: RedisServer,
  options: { node?: string; heartbeat?: number; nodeTimeout?: number } = {},
): Promise<BrokerFixture & { log: ReturnType<typeof memoryLogger> }> {
  const log = memoryLogger();
  const store = await RedisStore.connect(redis.url, { keep: 1000, prefix: "contract:" });
  try {
    const broker = await RedisBroker.start({ url: redis.url, store, log, ...options });
    return {
      broker,
      log,
      [Symbol.asyncDispose]: async () => {
        await broker.close();
        await store.close();
      },
    };
  } catch (err) {
    await store.close();
    throw err;
  }
}

// One redis-server per test, on a free port (never the machine's own on 6379).
brokerContract("RedisBroker", async () => {
  const redis = await RedisServer.start();
  try {
    const node = await openNode(redis);
    return {
      broker: node.broker,
      [Symbol.asyncDispose]: async () => {
        await node[Symbol.asyncDispose]();
        await redis[Symbol.asyncDispose]();
      },
    };
  } catch (err) {
    await redis[Symbol.asyncDispose]();
    throw err;
  }
});

Deno.test("RedisBroker delivers every node's messages and events to every node in one order", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { node: "a" });
  await using b = await openNode(redis, { node: "b" });
  const atA = new Received(a.broker), atB = new Received(b.broker);
  const sends = Array.from({ length: 40 }, (_, i) => {
    const node = i % 2 ? b.broker : a.broker;
    return i % 5 === 4
      ? node.publish({ kind: "typing", conv: "general", room: "general", user: "u", active: true })
      : node.publishMessage(said("general", `u${i % 2}`, `m${i}`), { node: node.node, conn: i });
  });
  await Promise.all(sends);
  // A sentinel after them all: nothing more arrives on either node before it.
  const sentinel: BrokerEvent = { kind: "signout", user: "~", session: "end" };
  await a.broker.publish(sentinel);
  await atA.count(41);
  await atB.count(41);
  assert.deepEqual(atA.events, atB.events);
  assert.deepEqual(atA.events.at(-1), sentinel);
  const ids = atA.events.flatMap((e) => e.kind === "message" ? [e.msg.id] : []);
  assert.deepEqual(ids, Array.from({ length: 32 }, (_, i) => i + 1));
});

Deno.test("RedisBroker tells the other nodes who comes online and goes offline, and who left with a closed node", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { node: "a" });
  await using b = await openNode(redis, { node: "b" });
  const heard: (string | undefined)[] = [];
  b.broker.onPresence((user) => heard.push(user));
  a.broker.online("alice");
  await waitUntil(() => heard.length === 1, "b hears alice come");
  assert.deepEqual(heard, ["alice"]);
  assert.equal(b.broker.isOnline("alice"), true);
  b.broker.online("bob");
  assert.deepEqual([...b.broker.onlineUsers()].sort(), ["alice", "bob"]);
  a.broker.offline("alice");
  await waitUntil(() => heard.length === 3, "b hears alice go");
  assert.deepEqual(heard, ["alice", "bob", "alice"]);
  assert.equal(b.broker.isOnline("alice"), false);
  a.broker.online("carol");
  await waitUntil(() => heard.length === 4, "b hears carol come");
  await a.broker.close();
  await waitUntil(() => heard.length === 5, "b hears carol go with her node");
  assert.deepEqual(heard, ["alice", "bob", "alice", "carol", "carol"]);
  assert.deepEqual([...b.broker.onlineUsers()], ["bob"]);
});

Deno.test("RedisBroker.status is degraded while Redis is down, ok once it serves again, and catches up", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { heartbeat: 50 });
  const got = new Received(a.broker);
  await redis.stop();
  await waitUntil(() => a.broker.status === "degraded", "the broker is degraded");
  await redis.restart();
  await waitUntil(() => a.broker.status === "ok", "the broker is ok again");
  const event: BrokerEvent = { kind: "signout", user: "alice", session: "s1" };
  await a.broker.publish(event);
  assert.deepEqual(await got.count(1), [event]);
  assert.match(a.log.lines.join("\n"), /Lost the connection to Redis/);
  assert.match(a.log.lines.join("\n"), /Reconnected to Redis|serves again/);
});
