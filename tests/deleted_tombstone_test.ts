/**
 * A `deleted` frame carries what a tombstone needs (`from`, `ts`), so that a
 * client that never had the message places it: over real sockets in memory,
 * and the case that needed it, found by the chaos checker (issue 20) — a
 * message created and deleted while a node was cut off from Redis, whose
 * creation the node's catch-up cannot replay (its text left the feed).
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChatMessage, ServerFrame } from "../protocol.ts";
import { toApplied } from "../server/store/redis.ts";
import { ChatModel } from "../web/model.ts";
import { closeAll, signIn, startTestServer, type TestClient, waitUntil } from "./helpers.ts";
import { ChatNode, RedisServer } from "./redis_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = {
  alice: { password: "alice-pass", role: "admin" },
  bob: "bob-pass-1",
};
const PASS = { alice: "alice-pass", bob: "bob-pass-1" };

/** localStorage stand-in for the web model. */
class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

/** Sends `text` as `c` and resolves the acknowledged message. */
async function say(c: TestClient, text: string, where: { room?: string; to?: string }) {
  const ref = crypto.randomUUID();
  c.send({ type: "send", ...where, text, ref });
  return await c.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
}

/** The first `deleted` frame `c` gets for message `id`. */
function deletedOf(c: TestClient, id: number): Promise<F<"deleted">> {
  return c.next<F<"deleted">>((f) => f.type === "deleted" && f.id === id);
}

Deno.test("changeFrame(): a deleted frame names the message's author and time, for every member", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", PASS.alice);
  const bob = await signIn(t.ws, "bob", PASS.bob);
  try {
    const own = await say(bob, "oops", { room: "general" });
    bob.send({ type: "delete", room: "general", id: own.id, ref: "d1" });
    const frame = {
      type: "deleted",
      room: "general",
      id: own.id,
      seq: own.id + 1,
      from: "bob",
      ts: own.ts,
    };
    assert.deepEqual(await deletedOf(bob, own.id), { ...frame, ref: "d1" });
    assert.deepEqual(await deletedOf(alice, own.id), frame);

    // An admin's delete of someone else's message: the author is the message's, not the admin.
    const rude = await say(bob, "rude words", { room: "general" });
    alice.send({ type: "delete", room: "general", id: rude.id });
    assert.deepEqual(await deletedOf(bob, rude.id), {
      type: "deleted",
      room: "general",
      id: rude.id,
      seq: rude.id + 1,
      from: "bob",
      ts: rude.ts,
      removed: true,
    });

    // A DM: each party is told with `to` the other one, the author the same.
    const dm = await say(alice, "psst", { to: "bob" });
    alice.send({ type: "delete", to: "bob", id: dm.id });
    const stone = { id: dm.id, seq: dm.id + 1, from: "alice", ts: dm.ts };
    assert.deepEqual(await deletedOf(alice, dm.id), { type: "deleted", to: "bob", ...stone });
    assert.deepEqual(await deletedOf(bob, dm.id), { type: "deleted", to: "alice", ...stone });

    // Deleting a tombstone again takes no position: its answer has neither.
    bob.send({ type: "delete", room: "general", id: own.id, ref: "d2" });
    assert.deepEqual(await deletedOf(bob, own.id), {
      type: "deleted",
      room: "general",
      id: own.id,
      seq: 0,
      ref: "d2",
    });
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("toApplied() keeps a delete's author and time, and reads an event from before them", () => {
  const base = { kind: "deleted", conv: "general", id: 7, seq: 9, user: "alice" } as const;
  const ts = "2026-01-01T09:07:00.000Z";
  // Lua's cjson writes keys in any order: the result has Applied's.
  const parsed = toApplied(JSON.parse(
    `{"removed":true,"ts":"${ts}","user":"alice","seq":9,"from":"bob","id":7,"conv":"general","kind":"deleted"}`,
  ));
  assert.equal(
    JSON.stringify(parsed),
    JSON.stringify({ ...base, from: "bob", ts, removed: true }),
  );
  // Still in a feed written before the change: no author, no time, nothing made up.
  assert.equal(JSON.stringify(toApplied({ ...base })), JSON.stringify(base));
});

Deno.test("RedisBroker: a message created and deleted while a node was cut off reaches its clients as a tombstone", async () => {
  // Node 1 reaches Redis through a proxy the test can cut, like a partition.
  await using redis = await RedisServer.start();
  const dir = await Deno.makeTempDir({ prefix: "chat-tombstone-" });
  const users = `${dir}/users.json`;
  await using proxy = new TcpProxy(redis.port);
  await using n0 = await ChatNode.start(redis.url, { users });
  await using n1 = await ChatNode.start(proxy.url, { users });
  const clients: TestClient[] = [];
  const model = new ChatModel({ origin: n1.http, storage: new MemoryStorage() });
  try {
    const alice = await signIn(n0.ws, "alice");
    const bob = await signIn(n1.ws, "bob");
    clients.push(alice, bob);
    await model.start();
    model.signIn("carol");
    await waitUntil(() => model.convs.value.get("#general")?.loaded.value, "carol is in");
    const general = model.convs.value.get("#general")!;
    const before = await say(alice, "before", { room: "general" });
    await bob.next((f) => f.type === "message" && f.id === before.id);
    await waitUntil(() => general.newest === before.id, "carol has it");

    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(async () => (await n1.health()).status === "degraded", "node 1 is degraded");
    const doomed = await say(alice, "dan says 21", { room: "general" });
    alice.send({ type: "delete", room: "general", id: doomed.id, ref: "d" });
    await deletedOf(alice, doomed.id);
    const after = await say(alice, "after", { room: "general" });

    proxy.refuse = false;
    await waitUntil(async () => (await n1.health()).status === "ok", "node 1 is back");
    // Its creation left the feed with its text: the delete says whose it was and when.
    assert.deepEqual(await deletedOf(bob, doomed.id), {
      type: "deleted",
      room: "general",
      id: doomed.id,
      seq: doomed.id + 1,
      from: "alice",
      ts: doomed.ts,
    });
    await bob.next((f) => f.type === "message" && f.id === after.id);
    assert.equal(
      bob.all.filter((f) => f.type === "message" && f.id === doomed.id).length,
      0,
      "the message itself never came",
    );

    // The web app holds the tombstone where everyone else does, in id order.
    await waitUntil(() => general.newest === after.id, "carol has the message after it");
    const stone: ChatMessage = {
      id: doomed.id,
      seq: doomed.id + 1,
      room: "general",
      from: "alice",
      text: "",
      ts: doomed.ts,
      deleted: true,
    };
    await waitUntil(() => general.find(doomed.id)?.deleted, "carol holds the tombstone");
    assert.deepEqual(general.find(doomed.id), stone);
    assert.deepEqual(general.messages.value.map((m) => m.id), [before.id, doomed.id, after.id]);
    alice.send({ type: "history", room: "general", limit: 10 });
    const fresh = await alice.next<F<"history">>("history");
    assert.deepEqual(fresh.messages.find((m) => m.id === doomed.id), stone, "as a fresh read");
  } finally {
    model.close();
    await closeAll(...clients);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
