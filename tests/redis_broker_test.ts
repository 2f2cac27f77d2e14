import assert from "node:assert/strict";
import type { BrokerEvent } from "../server/broker/broker.ts";
import {
  type Appended,
  type Change,
  type ChangeResult,
  ReplyChanged,
  replyRef,
} from "../server/store/store.ts";
import { RedisBroker } from "../server/broker/redis.ts";
import { memoryLogger } from "../server/log.ts";
import { RedisStore } from "../server/store/redis.ts";
import { brokerContract, type BrokerFixture, Received, said } from "./broker_contract.ts";
import { waitUntil } from "./helpers.ts";
import { RedisServer } from "./redis_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

/** A node of a chat on `redis`: its own store client and broker, closed in that order. */
async function openNode(
  redis: { url: string },
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

Deno.test("RedisBroker: someone online on two nodes stays online until both let go, one change at a time", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { node: "a" });
  await using b = await openNode(redis, { node: "b" });
  const heardA: (string | undefined)[] = [], heardB: (string | undefined)[] = [];
  a.broker.onPresence((user) => heardA.push(user));
  b.broker.onPresence((user) => heardB.push(user));
  const dana = (heard: (string | undefined)[]) => heard.filter((u) => u === "dana").length;
  a.broker.online("dana");
  b.broker.online("dana");
  // One node's changes arrive in order: hearing the next one says the node heard dana's.
  a.broker.online("finn");
  b.broker.online("erin");
  await waitUntil(() => heardA.includes("erin") && heardB.includes("finn"), "each hears the other");
  // dana leaves node a: still online on b, so nobody hears a change.
  a.broker.offline("dana");
  a.broker.online("gus");
  await waitUntil(() => heardB.includes("gus"), "b hears what a did after dana's offline");
  assert.equal(a.broker.isOnline("dana"), true, "online on b still");
  assert.equal(b.broker.isOnline("dana"), true);
  assert.equal(dana(heardA), 1, "a heard dana come once, and not go");
  assert.equal(dana(heardB), 1);
  b.broker.offline("dana");
  await waitUntil(() => dana(heardA) === 2, "a hears dana go");
  assert.equal(dana(heardB), 2);
  assert.equal(a.broker.isOnline("dana"), false);
  assert.equal(b.broker.isOnline("dana"), false);
  assert.deepEqual([...a.broker.onlineUsers()].sort(), ["erin", "finn", "gus"]);
});

Deno.test("RedisBroker: a turn's presence changes reach the other nodes in one message, in order", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { node: "a" });
  await using b = await openNode(redis, { node: "b" });
  const publishes = async () =>
    Number(/cmdstat_publish:calls=(\d+)/.exec(await redis.cli("INFO", "commandstats"))?.[1] ?? 0);
  const before = await publishes();
  // A storm in one turn: 300 come, 100 of them go, 10 of those come back;
  // "x" comes, goes and comes; "y" comes and goes.
  for (let i = 0; i < 300; i++) a.broker.online(`u${i}`);
  for (let i = 0; i < 100; i++) a.broker.offline(`u${i}`);
  for (let i = 0; i < 10; i++) a.broker.online(`u${i}`);
  for (const [user, on] of [["x", 1], ["y", 1], ["x", 0], ["y", 0], ["x", 1]] as const) {
    if (on) a.broker.online(user);
    else a.broker.offline(user);
  }
  const expected = [
    ...Array.from({ length: 10 }, (_, i) => `u${i}`),
    ...Array.from({ length: 200 }, (_, i) => `u${i + 100}`),
    "x",
  ].sort();
  // Node a knows at once; b once the turn's one message arrives.
  assert.deepEqual([...a.broker.onlineUsers()].sort(), expected);
  await waitUntil(() => b.broker.isOnline("x") && b.broker.isOnline("u299"), "b hears the storm");
  assert.deepEqual([...b.broker.onlineUsers()].sort(), expected);
  assert.equal(await publishes() - before, 1, "one message for the turn");
  // What Redis keeps for a (what a heartbeat would also say) is the same set.
  const kept = (await redis.cli("SMEMBERS", "contract:online:a")).split("\n").filter(Boolean);
  assert.deepEqual(kept.sort(), expected);
  // The next turn's change is a message of its own, in the one-change form.
  a.broker.offline("x");
  await waitUntil(() => !b.broker.isOnline("x"), "b hears x go");
  assert.equal(await publishes() - before, 2);
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

/** Where an event of conversation `conv` stands in its sequence (null: another conversation or kind). */
function position(e: BrokerEvent, conv: string): number | null {
  if (e.kind === "message" && e.conv === conv) return e.msg.id;
  if (e.kind === "change" && e.applied.conv === conv) return e.applied.seq;
  return null;
}

/** 30 messages, reactions and edits of `general`, from both nodes at once; message 1 exists. */
function mixed(a: RedisBroker, b: RedisBroker): Promise<unknown>[] {
  return Array.from({ length: 30 }, (_, i) => {
    const node = i % 2 ? b : a;
    const origin = { node: node.node, conn: i, ref: `k${i}` };
    if (i % 3 === 0) return node.publishMessage(said("general", "bob", `m${i}`), origin);
    const change: Change = i % 3 === 1
      ? { kind: "react", conv: "general", id: 1, user: `u${i}`, emoji: "👍", on: true }
      : { kind: "edit", conv: "general", id: 1, user: "alice", text: `edit ${i}` };
    return node.publishChange(change, origin);
  });
}

Deno.test("RedisBroker delivers changes made through one node to every node in seq order with the messages around them", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { node: "a" });
  await using b = await openNode(redis, { node: "b" });
  const atA = new Received(a.broker), atB = new Received(b.broker);
  const origin = { node: "a", conn: 0 };
  const first = await a.broker.publishMessage(said("general", "alice", "first"), origin);
  const results = await Promise.all(mixed(a.broker as RedisBroker, b.broker as RedisBroker));
  const inB = await atB.settle(a.broker);
  await atA.count(atB.events.length);
  assert.deepEqual(atA.events, atB.events, "one order on every node");
  assert.deepEqual(
    inB.map((e) => position(e, "general")),
    Array.from({ length: 31 }, (_, i) => i + 1),
    "messages and changes by position",
  );
  assert.deepEqual(inB[0], { kind: "message", conv: "general", msg: first.msg, origin });
  // Each delivery is what its caller was answered, with the caller's origin.
  results.forEach((r, i) => {
    const delivered = inB.find((e) =>
      (e.kind === "message" || e.kind === "change") && e.origin?.ref === `k${i}`
    );
    const node = i % 2 ? "b" : "a";
    const ref = { node, conn: i, ref: `k${i}` };
    if (i % 3 === 0) {
      const { msg } = r as Appended;
      assert.deepEqual(delivered, { kind: "message", conv: "general", msg, origin: ref });
    } else {
      const change = r as ChangeResult;
      assert.ok(change.ok && change.applied);
      assert.deepEqual(delivered, { kind: "change", applied: change.applied, origin: ref });
    }
  });
  const edit = inB.findLast((e) => e.kind === "change" && e.applied.kind === "edited");
  assert.ok(edit?.kind === "change");
  assert.match(edit.applied.editedAt!, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
});

Deno.test("RedisBroker delivers a refused change, or one with nothing to do, nowhere", async () => {
  await using redis = await RedisServer.start();
  await using a = await openNode(redis, { node: "a" });
  const got = new Received(a.broker);
  const origin = { node: "a", conn: 1 };
  await a.broker.publishMessage(said("general", "alice", "hi"), origin);
  const react: Change = {
    kind: "react",
    conv: "general",
    id: 1,
    user: "bob",
    emoji: "👍",
    on: true,
  };
  assert.equal((await a.broker.publishChange(react, origin)).ok, true);
  assert.deepEqual(await a.broker.publishChange(react, origin), { ok: true, applied: null });
  assert.deepEqual(
    await a.broker.publishChange({ kind: "delete", conv: "general", id: 1, user: "bob" }, origin),
    { ok: false, refusal: "forbidden" },
  );
  assert.deepEqual(
    (await got.settle(a.broker)).map((e) => e.kind),
    ["message", "change"],
  );
});

Deno.test("RedisBroker: a node cut off from Redis replays the changes it missed from the feed, in order", async () => {
  await using redis = await RedisServer.start();
  await using proxy = new TcpProxy(redis.port);
  await using a = await openNode(redis, { node: "a", heartbeat: 50 });
  await using b = await openNode(proxy, { node: "b", heartbeat: 50 });
  const atA = new Received(a.broker), atB = new Received(b.broker);
  await a.broker.publishMessage(said("general", "alice", "first"), { node: "a", conn: 0 });
  await atB.count(1);
  proxy.refuse = true;
  await proxy.cut();
  await waitUntil(() => b.broker.status === "degraded", "b lost Redis");
  // Everything below happens while b hears nothing.
  const both = mixed(a.broker as RedisBroker, a.broker as RedisBroker);
  await Promise.all(both);
  proxy.refuse = false;
  await waitUntil(() => b.broker.status === "ok", "b is back");
  const inB = await atB.settle(a.broker);
  await atA.count(atB.events.length);
  assert.deepEqual(atB.events, atA.events, "b caught up on exactly what a saw");
  assert.deepEqual(
    inB.map((e) => position(e, "general")),
    Array.from({ length: 31 }, (_, i) => i + 1),
  );
  assert.equal(inB.filter((e) => e.kind === "change").length, 20);
  assert.match(b.log.lines.join("\n"), /Reconnected to Redis/);
});

Deno.test("RedisBroker: a deleted message's text leaves the feed, and a node catching up skips it without a false alarm", async () => {
  await using redis = await RedisServer.start();
  await using proxy = new TcpProxy(redis.port);
  await using a = await openNode(redis, { node: "a", heartbeat: 50 });
  await using b = await openNode(proxy, { node: "b", heartbeat: 50 });
  const atB = new Received(b.broker);
  const origin = { node: "a", conn: 1 };
  await a.broker.publishMessage(said("general", "alice", "before"), origin); // 1
  await atB.count(1);
  proxy.refuse = true;
  await proxy.cut();
  await waitUntil(() => b.broker.status === "degraded", "b lost Redis");
  await a.broker.publishMessage(said("general", "alice", "secret-one"), origin); // 2
  const edit = { kind: "edit", conv: "general", id: 2, user: "alice", text: "secret-two" } as const;
  assert.equal((await a.broker.publishChange(edit, origin)).ok, true); // 3
  const gone = await a.broker.publishChange(
    { kind: "delete", conv: "general", id: 2, user: "alice" },
    origin,
  ); // 4
  const after = await a.broker.publishMessage(said("general", "alice", "after"), origin); // 5
  assert.doesNotMatch(await redis.cli("XRANGE", "contract:feed", "-", "+"), /secret/);
  proxy.refuse = false;
  await waitUntil(() => b.broker.status === "ok", "b is back");
  const events = await atB.settle(a.broker);
  assert.ok(gone.ok && gone.applied);
  assert.deepEqual(events.slice(1), [
    { kind: "change", applied: gone.applied, origin },
    { kind: "message", conv: "general", msg: after.msg, origin },
  ]);
  assert.doesNotMatch(b.log.lines.join("\n"), /no longer in the feed/);
});

Deno.test("RedisBroker: a reply goes out quoting its original without seq, a stale one nowhere, and the original's delete takes the quote out of the feed", async () => {
  await using redis = await RedisServer.start();
  await using proxy = new TcpProxy(redis.port);
  await using a = await openNode(redis, { node: "a", heartbeat: 50 });
  await using b = await openNode(proxy, { node: "b", heartbeat: 50 });
  const atA = new Received(a.broker), atB = new Received(b.broker);
  const origin = { node: "a", conn: 1 };
  const original = (await a.broker.publishMessage(said("general", "alice", "zephyr"), origin)).msg;
  const quote = { ...replyRef(original), seq: original.seq };
  const reply = await a.broker.publishMessage(
    { ...said("general", "bob", "agreed"), replyTo: quote },
    origin,
  );
  assert.deepEqual(reply.msg.replyTo, { id: 1, from: "alice", snippet: "zephyr" });
  const heard = await atB.count(2);
  assert.deepEqual(heard[1], { kind: "message", conv: "general", msg: reply.msg, origin });
  assert.doesNotMatch(await redis.cli("XRANGE", "contract:feed", "-", "+"), /"seq"/);

  const edit = { kind: "edit", conv: "general", id: 1, user: "alice", text: "zephyr!" } as const;
  assert.equal((await a.broker.publishChange(edit, origin)).ok, true); // seq 3
  await assert.rejects(
    a.broker.publishMessage({ ...said("general", "carol", "late"), replyTo: quote }, origin),
    ReplyChanged,
    "quoted before the edit",
  );

  proxy.refuse = true;
  await proxy.cut();
  await waitUntil(() => b.broker.status === "degraded", "b lost Redis");
  const gone = await a.broker.publishChange(
    { kind: "delete", conv: "general", id: 1, user: "alice" },
    origin,
  );
  assert.ok(gone.ok && gone.applied);
  assert.doesNotMatch(await redis.cli("XRANGE", "contract:feed", "-", "+"), /zephyr/);
  proxy.refuse = false;
  await waitUntil(() => b.broker.status === "ok", "b is back");
  const events = await atB.settle(a.broker);
  // The reply was heard live; a node catching up would find it in history.
  assert.deepEqual(events.slice(2).map((e) => e.kind === "change" && e.applied.kind), [
    "edited",
    "deleted",
  ]);
  assert.doesNotMatch(b.log.lines.join("\n"), /no longer in the feed/);
  assert.deepEqual(
    (await atA.settle(a.broker)).filter((e) => e.kind !== "signout") // b's settle sentinel
      .map((e) => e.kind === "message" ? e.msg.id : e.kind),
    [1, 2, "change", "change"],
    "the stale reply was published nowhere",
  );
});
