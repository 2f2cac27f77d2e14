/**
 * Web Push end to end: a real server (in this process, or nodes as their own
 * processes sharing a real Redis) sends to the test push service of
 * tests/push_endpoint.ts, which checks each request's VAPID JWT and decrypts
 * the payload itself with the subscription's private key.
 *
 * Absence is checked without sleeping: the dispatcher looks at messages one
 * at a time, in order, and one endpoint gets one request at a time, so once
 * a later push (a sentinel) reached an endpoint, an earlier message that
 * would have pushed to it has done so.
 */
import assert from "node:assert/strict";
import type { PushMessagePayload, PushReadPayload, ServerFrame } from "../protocol.ts";
import {
  closeAll,
  type SignedIn,
  signIn,
  signOut,
  startTestServer,
  type TestServer,
  waitUntil,
} from "./helpers.ts";
import { type PushEndpoint, startPushEndpoint, type TestSubscription } from "./push_endpoint.ts";
import { startCluster } from "./redis_helpers.ts";

const USERS = { alice: "alice-pass", bob: "bob-pass", carol: "carol-pass", dave: "dave-pass" };

/** A server that may send to the test push service (http on 127.0.0.1). */
function server(args: string[] = []): Promise<TestServer> {
  return startTestServer({ users: USERS, args: ["--unsafe-push-endpoints", ...args] });
}

/** Subscribes `client` to a fresh subscription of `push`; resolves it. */
async function subscribe(client: SignedIn, push: PushEndpoint): Promise<TestSubscription> {
  const sub = await push.newSubscription({ applicationServerKey: client.welcome.push?.key });
  client.send({ type: "push_subscribe", subscription: sub.subscription, ref: "sub" });
  const reply = await client.next((f) => f.type === "push_subscribed" || f.type === "error");
  assert.deepEqual(reply, {
    type: "push_subscribed",
    endpoint: sub.subscription.endpoint,
    ref: "sub",
  });
  return sub;
}

/** Sends a message and waits for its acknowledgement; resolves its id. */
async function send(
  client: SignedIn,
  target: { room: string } | { to: string },
  text: string,
  ref: string = crypto.randomUUID(),
): Promise<number> {
  client.send({ type: "send", ...target, text, ref });
  const ack = await client.next((f) =>
    (f.type === "message" && f.ref === ref) || (f.type === "error" && f.ref === ref)
  );
  assert.equal(ack.type, "message", JSON.stringify(ack));
  return (ack as ServerFrame & { type: "message" }).id;
}

/** The decrypted payloads an endpoint accepted for `sub`. */
function payloads(push: PushEndpoint, sub: TestSubscription): PushMessagePayload[] {
  return push.received(sub.id).map((r) => r.json as PushMessagePayload);
}

/** Signs `name` in, subscribes, says hidden (or closes): a user the server must push to. */
async function offlineSubscriber(
  url: string,
  name: string,
  push: PushEndpoint,
): Promise<{ sub: TestSubscription; token: string }> {
  const c = await signIn(url, name, USERS[name as keyof typeof USERS]);
  try {
    const sub = await subscribe(c, push);
    // Hidden before it closes: the close may reach the hub after the next message.
    c.send({ type: "visible", visible: false });
    await c.barrier();
    return { sub, token: c.welcome.token };
  } finally {
    await c.close();
  }
}

Deno.test("push: a DM to an offline user arrives once, decrypted; a resend pushes nothing", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const { sub } = await offlineSubscriber(t.ws, "bob", push);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    assert.equal(alice.welcome.push?.contentFree, false);
    assert.match(alice.welcome.push!.key, /^B[A-Za-z0-9_-]{86}$/);
    const id = await send(alice, { to: "bob" }, "hello bob, *lunch*?", "r1");
    const [got] = await push.waitFor(sub.id, 1);
    assert.deepEqual(got.json, {
      v: 1,
      kind: "message",
      conv: "@alice",
      id,
      from: "alice",
      title: "alice",
      body: "hello bob, *lunch*?",
      url: `/#/@alice+bob/${id}`,
    });
    assert.equal(got.headers.urgency, "high");
    // The same ref again: a resend, stored once, pushed once.
    assert.equal(await send(alice, { to: "bob" }, "hello bob, *lunch*?", "r1"), id);
    const next = await send(alice, { to: "bob" }, "second");
    await push.waitFor(sub.id, 2);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [id, next]);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("push: none while the user has a visible connection; one once every connection is hidden", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const { sub } = await offlineSubscriber(t.ws, "bob", push);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  // A terminal-like connection never says: it counts as visible.
  const bob1 = await signIn(t.ws, "bob", "bob-pass");
  const bob2 = await signIn(t.ws, "bob", "bob-pass");
  try {
    bob2.send({ type: "visible", visible: false });
    await bob2.barrier();
    const seen = await send(alice, { to: "bob" }, "you are here");
    bob1.send({ type: "visible", visible: false });
    await bob1.barrier();
    const hidden = await send(alice, { to: "bob" }, "you are away");
    await push.waitFor(sub.id, 1);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [hidden]);
    assert.ok(seen < hidden);
    // Visible again: nothing; a hidden page's connection closing changes nothing.
    bob1.send({ type: "visible", visible: true });
    await bob1.barrier();
    await send(alice, { to: "bob" }, "back");
    await bob1.close();
    await waitUntil(
      async () => (await t.server.hub.pushStore.visibleUsers(["bob"])).size === 0,
      "bob is no longer visible",
    );
    const gone = await send(alice, { to: "bob" }, "gone");
    await push.waitFor(sub.id, 2);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [hidden, gone]);
  } finally {
    await closeAll(alice, bob1, bob2);
  }
});

Deno.test("push: levels — rooms mention-only by default, @name, @room, all, none; DMs all", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const alice = await signIn(t.ws, "alice", "alice-pass");
  const bob = await signIn(t.ws, "bob", "bob-pass");
  try {
    for (const c of [alice, bob]) {
      c.send({ type: "join", room: "dev" });
      await c.next((f) => f.type === "joined" && f.room === "dev");
    }
    const sub = await subscribe(bob, push);
    bob.send({ type: "visible", visible: false });
    await bob.barrier();
    const plain = await send(alice, { room: "dev" }, "plain message");
    const named = await send(alice, { room: "dev" }, "hey @Bob look");
    const address = await send(alice, { room: "dev" }, "mail bob@example.com");
    const room = await send(alice, { room: "dev" }, "@room standup");
    await push.waitFor(sub.id, 2);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [named, room]);
    assert.deepEqual(payloads(push, sub)[0], {
      v: 1,
      kind: "message",
      conv: "#dev",
      id: named,
      from: "alice",
      title: "alice in #dev",
      body: "hey @Bob look",
      url: `/#/dev/${named}`,
    });
    // all: every message; every connection of bob's hears the new level.
    bob.send({ type: "notify_level", room: "dev", level: "all", ref: "lv" });
    assert.deepEqual(await bob.next("notify_level"), {
      type: "notify_level",
      room: "dev",
      level: "all",
      ref: "lv",
    });
    const any = await send(alice, { room: "dev" }, "anything");
    await push.waitFor(sub.id, 3);
    // none: not even a mention, nor a DM once those are none too.
    bob.send({ type: "notify_level", room: "dev", level: "none" });
    await bob.next("notify_level");
    bob.send({ type: "notify_level", to: "ALICE", level: "none" });
    assert.deepEqual(await bob.next("notify_level"), {
      type: "notify_level",
      to: "alice",
      level: "none",
    });
    await send(alice, { room: "dev" }, "@bob @room");
    await send(alice, { to: "bob" }, "dm while none");
    // Back to the default: the welcome lists only levels that differ.
    bob.send({ type: "notify_level", to: "alice", level: "all" });
    await bob.next("notify_level");
    const bob2 = await signIn(t.ws, "bob", "bob-pass");
    bob2.send({ type: "visible", visible: false });
    await bob2.barrier();
    assert.deepEqual(bob2.welcome.levels, { "#dev": "none" });
    await bob2.close();
    const dm = await send(alice, { to: "bob" }, "dm sentinel");
    await push.waitFor(sub.id, 4);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [named, room, any, dm]);
    assert.ok(plain < named && address < room);
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("push: reading on one device sends a read push to the user's devices", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const { sub } = await offlineSubscriber(t.ws, "bob", push);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    const id = await send(alice, { to: "bob" }, "read me");
    await push.waitFor(sub.id, 1);
    const bob = await signIn(t.ws, "bob", "bob-pass");
    bob.send({ type: "read", to: "alice", id });
    await push.waitFor(sub.id, 2);
    const read = push.received(sub.id)[1].json as PushReadPayload;
    assert.deepEqual(read, { v: 1, kind: "read", conv: "@alice", id });
    await bob.close();
  } finally {
    await closeAll(alice);
  }
});

Deno.test("push: a 410 removes the subscription; the next message makes no request", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const { sub } = await offlineSubscriber(t.ws, "bob", push);
  const { sub: carols } = await offlineSubscriber(t.ws, "carol", push);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    push.respondWith(sub.id, 410);
    await send(alice, { to: "bob" }, "to a gone browser");
    await waitUntil(() => push.refused(sub.id).length === 1, "the 410");
    await waitUntil(
      async () => (await t.server.hub.pushStore.subscriptions("bob")).length === 0,
      "the subscription is removed",
    );
    await send(alice, { to: "bob" }, "again");
    await send(alice, { to: "carol" }, "sentinel");
    await push.waitFor(carols.id, 1);
    assert.equal(push.requests(sub.id), 1);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("push: sign-out removes that session's subscriptions, not the other devices'", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const phone = await offlineSubscriber(t.ws, "bob", push);
  const laptop = await offlineSubscriber(t.ws, "bob", push);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    assert.equal(await signOut(t.http, phone.token), 204);
    const left = await t.server.hub.pushStore.subscriptions("bob");
    assert.deepEqual(left.map((s) => s.endpoint), [laptop.sub.subscription.endpoint]);
    const id = await send(alice, { to: "bob" }, "after sign-out");
    await push.waitFor(laptop.sub.id, 1);
    assert.equal(push.requests(phone.sub.id), 0);
    assert.deepEqual(payloads(push, laptop.sub).map((p) => p.id), [id]);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("push: refusals — another's endpoint, unsubscribing another's, levels of rooms one is not in", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const { sub } = await offlineSubscriber(t.ws, "bob", push);
  const mallory = await signIn(t.ws, "carol", "carol-pass");
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    // Bob's endpoint with other keys: refused, bob keeps it.
    const other = await push.newSubscription();
    mallory.send({
      type: "push_subscribe",
      subscription: { endpoint: sub.subscription.endpoint, keys: other.subscription.keys },
      ref: "steal",
    });
    const stolen = await mallory.next("error");
    assert.equal((stolen as { code: string }).code, "bad_endpoint");
    assert.equal((stolen as { ref: string }).ref, "steal");
    // Unsubscribing it: the same answer as for one's own, and nothing happens.
    mallory.send({ type: "push_unsubscribe", endpoint: sub.subscription.endpoint, ref: "u" });
    assert.deepEqual(await mallory.next("push_unsubscribed"), {
      type: "push_unsubscribed",
      endpoint: sub.subscription.endpoint,
      ref: "u",
    });
    assert.equal((await t.server.hub.pushStore.subscriptions("bob")).length, 1);
    // A private room carol is not in answers as a room that does not exist.
    alice.send({ type: "join", room: "secret", private: true });
    await alice.next((f) => f.type === "joined" && f.room === "secret");
    mallory.send({ type: "notify_level", room: "secret", level: "all", ref: "a" });
    const hidden = await mallory.next("error") as { code: string; message: string };
    mallory.send({ type: "notify_level", room: "nothere", level: "all", ref: "b" });
    const missing = await mallory.next("error") as { code: string; message: string };
    assert.equal(hidden.code, "unknown_room");
    assert.equal(missing.code, "unknown_room");
    assert.equal(hidden.message.replace("secret", "X"), missing.message.replace("nothere", "X"));
    mallory.send({ type: "notify_level", to: "nobody", level: "all", ref: "c" });
    assert.equal((await mallory.next("error") as { code: string }).code, "unknown_user");
    // Keys of the wrong size, a huge endpoint: bad_endpoint before anything is kept.
    mallory.send({
      type: "push_subscribe",
      subscription: { endpoint: `${push.origin}/x`, keys: { p256dh: "BAAA", auth: "AAAA" } },
    });
    assert.equal((await mallory.next("error") as { code: string }).code, "bad_endpoint");
    mallory.send({
      type: "push_subscribe",
      subscription: { ...other.subscription, endpoint: `${push.origin}/${"x".repeat(1100)}` },
    });
    assert.equal((await mallory.next("error") as { code: string }).code, "bad_endpoint");
    // Many devices: the oldest go past ten.
    for (let i = 0; i < 12; i++) await subscribe(mallory, push);
    assert.equal((await t.server.hub.pushStore.subscriptions("carol")).length, 10);
    // Bob still gets his pushes.
    const id = await send(alice, { to: "bob" }, "still yours");
    await push.waitFor(sub.id, 1);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [id]);
  } finally {
    await closeAll(mallory, alice);
  }
});

Deno.test("push: a loopback endpoint is refused without --unsafe-push-endpoints", async () => {
  await using push = await startPushEndpoint();
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", "bob-pass");
  try {
    const sub = await push.newSubscription();
    bob.send({ type: "push_subscribe", subscription: sub.subscription, ref: "s" });
    const err = await bob.next("error") as { code: string; message: string; ref: string };
    assert.equal(err.code, "bad_endpoint");
    assert.equal(err.ref, "s");
    const https = { ...sub.subscription, endpoint: "https://127.0.0.1/push/1" };
    bob.send({ type: "push_subscribe", subscription: https });
    assert.equal((await bob.next("error") as { code: string }).code, "bad_endpoint");
    assert.deepEqual(await t.server.hub.pushStore.subscriptions("bob"), []);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("push: --push-content-free pushes carry no text and no room name", async () => {
  await using push = await startPushEndpoint();
  await using t = await server(["--push-content-free"]);
  const { sub } = await offlineSubscriber(t.ws, "bob", push);
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    assert.equal(alice.welcome.push?.contentFree, true);
    // bob is in general (everyone is): a mention there pushes.
    const inRoom = await send(alice, { room: "general" }, "secret plans @bob");
    const dm = await send(alice, { to: "bob" }, "secret dm");
    const got = await push.waitFor(sub.id, 2);
    assert.deepEqual(got.map((g) => g.json), [
      {
        v: 1,
        kind: "message",
        conv: "#",
        id: inRoom,
        from: "alice",
        title: "New message from alice",
        body: "",
        url: "/",
      },
      {
        v: 1,
        kind: "message",
        conv: "@alice",
        id: dm,
        from: "alice",
        title: "New message from alice",
        body: "",
        url: `/#/@alice+bob/${dm}`,
      },
    ]);
    for (const g of got) assert.doesNotMatch(g.text, /secret|general/);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("push: two nodes through Redis — visible on one node suppresses, one push per message", async () => {
  await using push = await startPushEndpoint();
  await using cluster = await startCluster(2, {
    users: USERS,
    args: ["--unsafe-push-endpoints"],
  });
  const [a, b] = cluster.nodes;
  const bob = await signIn(a.ws, "bob", "bob-pass");
  const aliceA = await signIn(a.ws, "alice", "alice-pass");
  const aliceB = await signIn(b.ws, "alice", "alice-pass");
  try {
    assert.equal(aliceA.welcome.push?.key, aliceB.welcome.push?.key, "the nodes share VAPID keys");
    const sub = await subscribe(bob, push);
    const { sub: carols } = await offlineSubscriber(b.ws, "carol", push);
    // Visible on node A: a DM sent on node B pushes nothing.
    const seen = await send(aliceB, { to: "bob" }, "seen on A");
    // Node B looks at its messages in order: once carol's push came, "seen" was looked at.
    await send(aliceB, { to: "carol" }, "sentinel");
    await push.waitFor(carols.id, 1);
    bob.send({ type: "visible", visible: false });
    await bob.barrier();
    const m3 = await send(aliceB, { to: "bob" }, "three");
    const m4 = await send(aliceA, { to: "bob" }, "four");
    const m5 = await send(aliceB, { to: "bob" }, "five");
    await push.waitFor(sub.id, 3);
    assert.deepEqual(payloads(push, sub).map((p) => p.id).sort((x, y) => x - y), [m3, m4, m5]);
    assert.ok(seen < m3);
    // The level set on node A reaches bob's connection on node B.
    const bobB = await signIn(b.ws, "bob", "bob-pass");
    bobB.send({ type: "visible", visible: false });
    await bobB.barrier();
    bob.send({ type: "notify_level", to: "alice", level: "none", ref: "x" });
    assert.deepEqual(await bobB.next("notify_level"), {
      type: "notify_level",
      to: "alice",
      level: "none",
    });
    await bobB.close();
  } finally {
    await closeAll(bob, aliceA, aliceB);
  }
});

Deno.test("push: the visibility of a node killed with -9 expires; pushes resume", async () => {
  await using push = await startPushEndpoint();
  await using cluster = await startCluster(2, {
    users: USERS,
    args: ["--unsafe-push-endpoints"],
  });
  const [a, b] = cluster.nodes;
  const bob = await signIn(a.ws, "bob", "bob-pass");
  const alice = await signIn(b.ws, "alice", "alice-pass");
  try {
    const sub = await subscribe(bob, push);
    /** The nodes whose visible set holds bob, by Redis. */
    const holding = async () => {
      const keys = (await cluster.redis.cli("--scan", "--pattern", "chat:push:vis:*"))
        .split("\n").filter((k) => k !== "");
      let n = 0;
      for (const k of keys) {
        if ((await cluster.redis.cli("SISMEMBER", k, "bob")).trim() === "1") n++;
      }
      return n;
    };
    await waitUntil(async () => await holding() === 1, "bob is visible on node A");
    await a.kill("SIGKILL");
    await waitUntil(async () => await holding() === 0, "node A's visibility expired", 30_000);
    const id = await send(alice, { to: "bob" }, "after node A died");
    await push.waitFor(sub.id, 1);
    assert.deepEqual(payloads(push, sub).map((p) => p.id), [id]);
  } finally {
    await closeAll(bob, alice);
  }
});

Deno.test("push: a password change keeps the changing device's subscription; credentials changed elsewhere drop the rest", async () => {
  await using push = await startPushEndpoint();
  await using t = await server();
  const other = await offlineSubscriber(t.ws, "bob", push);
  const { sub: carols } = await offlineSubscriber(t.ws, "carol", push);
  const bob = await signIn(t.ws, "bob", "bob-pass");
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    const mine = await subscribe(bob, push);
    bob.send({ type: "visible", visible: false });
    bob.send({ type: "passwd", current: "bob-pass", password: "bob-new-password-1", ref: "pw" });
    await bob.next("passwd");
    await waitUntil(
      async () => (await t.server.hub.pushStore.subscriptions("bob")).length === 1,
      "only the changing session's subscription is left",
    );
    const first = await send(alice, { to: "bob" }, "after the change");
    await push.waitFor(mine.id, 1);
    assert.deepEqual(payloads(push, mine).map((p) => p.id), [first]);
    assert.equal(push.requests(other.sub.id), 0);
    // users.json edited by hand (another password): bob's sessions end, and so do his pushes.
    const before = t.server.auth.fingerprint("bob");
    await Deno.writeTextFile(
      `${t.dir}/users.json`,
      JSON.stringify({ ...USERS, bob: "bob-third-password" }),
    );
    await waitUntil(() => t.server.auth.fingerprint("bob") !== before, "users.json is reread");
    await send(alice, { to: "bob" }, "after the edit");
    await send(alice, { to: "carol" }, "sentinel");
    await push.waitFor(carols.id, 1);
    assert.equal(push.requests(mine.id), 1);
    assert.deepEqual(await t.server.hub.pushStore.subscriptions("bob"), []);
  } finally {
    await closeAll(bob, alice);
  }
});

Deno.test("push: a rename carries levels; removing an account removes its subscriptions and levels", async () => {
  await using push = await startPushEndpoint();
  await using t = await startTestServer({
    users: { ...USERS, alice: { password: "alice-pass", role: "admin" } },
    args: ["--unsafe-push-endpoints"],
  });
  const bob = await signIn(t.ws, "bob", "bob-pass");
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    await subscribe(bob, push);
    bob.send({ type: "notify_level", to: "alice", level: "none" });
    await bob.next("notify_level");
    assert.equal((await t.server.hub.pushStore.subscriptions("bob")).length, 1);
    // A rename carries the room's levels along.
    for (const c of [alice, bob]) {
      c.send({ type: "join", room: "dev" });
      await c.next((f) => f.type === "joined" && f.room === "dev");
    }
    bob.send({ type: "notify_level", room: "dev", level: "all" });
    await bob.next("notify_level");
    alice.send({ type: "rename_room", room: "dev", name: "eng", ref: "rn" });
    await alice.next((f) => f.type === "room_renamed" && f.ref === "rn");
    assert.deepEqual(await t.server.hub.pushStore.levels("bob"), {
      "#eng": "all",
      "@alice": "none",
    });
    const res = await fetch(`${t.http}/api/people/bob`, {
      method: "DELETE",
      headers: { authorization: `Bearer ${alice.welcome.token}` },
    });
    assert.equal(res.status, 200, await res.text());
    assert.deepEqual(await t.server.hub.pushStore.subscriptions("bob"), []);
    assert.deepEqual(await t.server.hub.pushStore.levels("bob"), {});
  } finally {
    await closeAll(bob, alice);
  }
});
