/**
 * A reply whose original is deleted while a node is cut off from Redis still
 * reaches that node's clients live, with the tombstone quote (found by the
 * chaos checker, seed 236 in redis mode): the reply's feed entry names its
 * original without quoting it, and the node catching up quotes the original
 * as it is now. Deleting the original leaves the reply's entry in the feed,
 * and no text of the original stays there.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, signIn, type TestClient, waitUntil } from "./helpers.ts";
import { ChatNode, RedisServer } from "./redis_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** Sends `text` to #general as `c` (a reply to `replyTo` if given) and resolves the acknowledgement. */
async function say(c: TestClient, text: string, replyTo?: number): Promise<F<"message">> {
  const ref = crypto.randomUUID();
  c.send({ type: "send", room: "general", text, ref, ...(replyTo ? { replyTo } : {}) });
  return await c.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
}

/** The frames of #general that carry a position, as `kind #id @seq`. */
function positions(c: TestClient): string[] {
  return c.all.flatMap((f) => {
    if (!("room" in f) || f.room !== "general" || !("seq" in f) || !("id" in f)) return [];
    if (f.type !== "message" && f.type !== "edited" && f.type !== "deleted") return [];
    return [`${f.type} #${f.id} @${f.seq}`];
  });
}

Deno.test("RedisBroker: a reply whose original was deleted while a node was cut off reaches its clients, quoting the tombstone", async () => {
  await using redis = await RedisServer.start();
  const dir = await Deno.makeTempDir({ prefix: "chat-reply-feed-" });
  const users = `${dir}/users.json`;
  // Node 1 reaches Redis through a proxy the test can cut, like a partition.
  await using proxy = new TcpProxy(redis.port);
  await using n0 = await ChatNode.start(redis.url, { users });
  await using n1 = await ChatNode.start(proxy.url, { users });
  const clients: TestClient[] = [];
  try {
    const ann = await signIn(n0.ws, "ann");
    const bob = await signIn(n1.ws, "bob");
    clients.push(ann, bob);
    const warm = await say(ann, "warm up");
    await bob.next((f) => f.type === "message" && f.id === warm.id);

    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(async () => (await n1.health()).status === "degraded", "node 1 is degraded");
    const original = await say(ann, "the secret original");
    const reply = await say(ann, "a reply to it", original.id);
    assert.deepEqual(reply.replyTo, {
      id: original.id,
      from: "ann",
      snippet: "the secret original",
    });
    ann.send({ type: "delete", room: "general", id: original.id, ref: "d" });
    await ann.next((f) => f.type === "deleted" && f.id === original.id);
    const after = await say(ann, "after");

    // Nothing in the feed quotes the deleted text, and the reply's entry stays.
    const feed = await redis.cli("XRANGE", "chat:feed", "-", "+");
    assert.ok(!feed.includes("secret original"), "the deleted text left the feed");
    assert.ok(feed.includes("a reply to it"), "the reply's creation is still in the feed");

    proxy.refuse = false;
    await waitUntil(async () => (await n1.health()).status === "ok", "node 1 is back");
    await bob.next((f) => f.type === "message" && f.id === after.id);
    const got = bob.all.find((f): f is F<"message"> => f.type === "message" && f.id === reply.id);
    assert.ok(got, "the reply reached node 1's client live");
    assert.deepEqual(got.replyTo, {
      id: original.id,
      from: "ann",
      snippet: "",
      deleted: true,
    });
    assert.equal(got.text, "a reply to it");
    // In order, each once: the original's creation left the feed with its text.
    assert.deepEqual(positions(bob), [
      `message #${warm.id} @${warm.seq}`,
      `message #${reply.id} @${reply.seq}`,
      `deleted #${original.id} @${reply.seq + 1}`,
      `message #${after.id} @${after.seq}`,
    ]);
  } finally {
    await closeAll(...clients);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("RedisBroker: a node catching up quotes an edited original as it is now, and its old text leaves no reply's entry", async () => {
  await using redis = await RedisServer.start();
  const dir = await Deno.makeTempDir({ prefix: "chat-reply-feed-" });
  const users = `${dir}/users.json`;
  await using proxy = new TcpProxy(redis.port);
  await using n0 = await ChatNode.start(redis.url, { users });
  await using n1 = await ChatNode.start(proxy.url, { users });
  const clients: TestClient[] = [];
  try {
    const ann = await signIn(n0.ws, "ann");
    const bob = await signIn(n1.ws, "bob");
    clients.push(ann, bob);
    const warm = await say(ann, "warm up");
    await bob.next((f) => f.type === "message" && f.id === warm.id);

    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(async () => (await n1.health()).status === "degraded", "node 1 is degraded");
    const original = await say(ann, "first words");
    const reply = await say(ann, "agreed", original.id);
    ann.send({ type: "edit", room: "general", id: original.id, text: "second words", ref: "e" });
    await ann.next((f) => f.type === "edited" && f.id === original.id);

    // The reply's entry names its original without quoting it.
    const feed = await redis.cli("XRANGE", "chat:feed", "-", "+");
    const entry = feed.split("\n").find((line) => line.includes('"text":"agreed"'));
    assert.ok(entry, "the reply's creation is in the feed");
    assert.ok(!entry.includes("first words"), "its entry does not quote the original");

    proxy.refuse = false;
    await waitUntil(async () => (await n1.health()).status === "ok", "node 1 is back");
    await bob.next((f) => f.type === "edited" && f.id === original.id);
    assert.deepEqual(positions(bob), [
      `message #${warm.id} @${warm.seq}`,
      `message #${original.id} @${original.seq}`,
      `message #${reply.id} @${reply.seq}`,
      `edited #${original.id} @${reply.seq + 1}`,
    ]);
    const got = bob.all.find((f): f is F<"message"> => f.type === "message" && f.id === reply.id)!;
    assert.deepEqual(got.replyTo, { id: original.id, from: "ann", snippet: "second words" });
  } finally {
    await closeAll(...clients);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
