/**
 * The dispatcher on its own: who gets pushes, the bound on waiting work, and
 * the pacing of `read` pushes (the end-to-end cases are in push_test.ts).
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import type { ChatMessage } from "../protocol.ts";
import { memoryLogger } from "../server/log.ts";
import { PushDispatcher, type PushOutlet } from "../server/push/dispatch.ts";
import { MemoryPushStore } from "../server/push/memory.ts";
import { aSub } from "./push_store_contract.ts";
import { send, setup } from "./hub_harness.ts";

/** An outlet that keeps what it is given. */
function outlet(): PushOutlet & { sent: { endpoint: string; payload: Record<string, unknown> }[] } {
  const sent: { endpoint: string; payload: Record<string, unknown> }[] = [];
  return {
    sent,
    enqueue(sub, payload) {
      sent.push({ endpoint: sub.endpoint, payload: JSON.parse(payload) });
    },
  };
}

let nextId = 1;
function msg(fields: Partial<ChatMessage>): ChatMessage {
  const id = nextId++;
  return { id, seq: id, from: "alice", text: "hi", ts: "2026-01-01T00:00:00.000Z", ...fields };
}

Deno.test("dispatch: room members by level and mention, never the sender, the visible or those without devices", async () => {
  const store = new MemoryPushStore();
  const out = outlet();
  const members = ["alice", "Bob", "carol", "dave", "erin"];
  const d = new PushDispatcher({
    store,
    members: () => Promise.resolve(members),
    out,
    log: memoryLogger(),
  });
  const subs = new Map<string, string>();
  for (const u of ["alice", "bob", "carol", "dave"]) {
    const s = aSub({ user: u });
    subs.set(u, s.endpoint);
    await store.subscribe(s);
  }
  await store.setLevel("carol", "#dev", "all");
  await store.setLevel("dave", "#dev", "none");
  await store.setVisibleMany("n1", new Map([["erin", true]]), 60_000);
  const m = msg({ room: "dev", text: "ping @bob @dave @erin @alice" });
  d.message(m);
  d.message(m); // the same message again: looked at once
  await d.idle();
  assert.deepEqual(
    out.sent.map((s) => s.endpoint).sort(),
    [subs.get("bob"), subs.get("carol")].sort(),
  );
  out.sent.length = 0;
  d.message(msg({ room: "dev", text: "@here deploy" }));
  await d.idle();
  assert.deepEqual(
    out.sent.map((s) => s.endpoint).sort(),
    [subs.get("bob"), subs.get("carol")].sort(),
  );
  assert.equal(d.stats.messages, 2);
  await d.close();
});

Deno.test("dispatch: a busy room fills a bounded queue; the rest get no push and are counted", async () => {
  const store = new MemoryPushStore();
  await store.subscribe(aSub({ user: "bob" }));
  await store.setLevel("bob", "#busy", "all");
  const out = outlet();
  const gate = Promise.withResolvers<void>();
  const d = new PushDispatcher({
    store,
    members: async () => {
      await gate.promise;
      return ["alice", "bob"];
    },
    out,
    log: memoryLogger(),
    maxPending: 10,
  });
  for (let i = 0; i < 50; i++) d.message(msg({ room: "busy" }));
  assert.equal(d.stats.dropped, 40);
  gate.resolve();
  await d.idle();
  assert.equal(out.sent.length, 10);
  await d.close();
});

Deno.test("dispatch: read pushes go once per interval per conversation, newest id, not for level none", async () => {
  const store = new MemoryPushStore();
  const bobs = aSub({ user: "bob" });
  await store.subscribe(bobs);
  await store.setLevel("bob", "#quiet", "none");
  const out = outlet();
  let now = 1_000_000;
  const d = new PushDispatcher({
    store,
    members: () => Promise.resolve([]),
    out,
    log: memoryLogger(),
    now: () => now,
    readInterval: 3000,
  });
  // Each endpoint was sent a message push of these conversations.
  const shown = () =>
    Promise.all(["@alice", "#quiet"].map((c) => store.notified([bobs.endpoint], c, 3600_000)));
  await shown();
  d.read("bob", "@alice", 5);
  d.read("bob", "@alice", 6);
  d.read("bob", "@alice", 7);
  d.read("bob", "@alice", 4);
  d.read("bob", "#quiet", 9);
  d.read("carol", "@alice", 1);
  await d.idle();
  assert.deepEqual(out.sent.map((s) => s.payload), [{ v: 1, kind: "read", conv: "@alice", id: 5 }]);
  now += 1000;
  d.tick(now);
  await d.idle();
  assert.equal(out.sent.length, 1, "not before the interval");
  await shown();
  now += 2000;
  d.tick(now);
  await d.idle();
  assert.deepEqual(out.sent.map((s) => s.payload.id), [5, 7]);
  await d.close();
});

Deno.test("hub without push: push_subscribe is unavailable; levels and visibility still work", async () => {
  await using h = await setup({ users: { alice: "alice-pass" } });
  const a = await h.connect("alice", "alice-pass");
  const b = await h.connect("alice", "alice-pass");
  assert.equal(a.welcome.push, undefined);
  send(h.hub, a.conn, {
    type: "push_subscribe",
    ref: "s",
    subscription: {
      endpoint: "https://push.example.com/1",
      keys: { p256dh: "B" + "A".repeat(86), auth: "A".repeat(22) },
    },
  });
  await h.until(() => a.socket.frames.some((f) => f.type === "error"));
  const [err] = a.socket.take("error") as { code: string; ref: string }[];
  assert.deepEqual([err.code, err.ref], ["unavailable", "s"]);
  send(h.hub, a.conn, { type: "notify_level", room: "general", level: "all", ref: "n" });
  await h.until(() => b.socket.frames.some((f) => f.type === "notify_level"));
  await h.until(() => a.socket.frames.some((f) => f.type === "notify_level"));
  assert.deepEqual(a.socket.take("notify_level"), [
    { type: "notify_level", room: "general", level: "all", ref: "n" },
  ]);
  assert.deepEqual(b.socket.take("notify_level"), [
    { type: "notify_level", room: "general", level: "all" },
  ]);
  assert.deepEqual(await h.hub.pushStore.levels("alice"), { "#general": "all" });
  // Visibility is written once per event-loop turn: the store has it after that turn.
  const visible = async () => (await h.hub.pushStore.visibleUsers(["alice"])).has("alice");
  // setImmediate runs its callbacks in order: after this one, the hub's write has run.
  const settled = () => new Promise((r) => setImmediate(r));
  await settled();
  assert.equal(await visible(), true);
  send(h.hub, a.conn, { type: "visible", visible: false });
  await settled();
  assert.equal(await visible(), true, "another tab of hers is visible");
  send(h.hub, b.conn, { type: "visible", visible: false });
  await settled();
  assert.equal(await visible(), false);
  send(h.hub, b.conn, { type: "visible", visible: true });
  await settled();
  assert.equal(await visible(), true);
  h.hub.close(b.conn);
  await settled();
  assert.equal(await visible(), false);
  const c = await h.connect("alice", "alice-pass");
  assert.deepEqual(c.welcome.levels, { "#general": "all" });
  await settled();
  assert.equal(await visible(), true);
});

Deno.test("dispatch: in a room larger than roomMentionMax only an admin's @room reaches everyone", async () => {
  const store = new MemoryPushStore();
  const bobs = aSub({ user: "bob" });
  await store.subscribe(bobs);
  const out = outlet();
  const d = new PushDispatcher({
    store,
    members: () => Promise.resolve(["alice", "bob", "carol", "root"]),
    out,
    log: memoryLogger(),
    roomMentionMax: 3,
    isAdmin: (u) => u === "root",
  });
  const byMember = msg({ room: "big", text: "@room lunch" });
  const named = msg({ room: "big", text: "@room @bob lunch" });
  const byAdmin = msg({ room: "big", from: "root", text: "@here deploy" });
  for (const m of [byMember, named, byAdmin]) d.message(m);
  await d.idle();
  assert.deepEqual(out.sent.map((s) => s.payload.id), [named.id, byAdmin.id]);
  await d.close();
});

Deno.test("dispatch: one user's read pushes are capped per interval (a read_all of many conversations)", async () => {
  const store = new MemoryPushStore();
  await store.subscribe(aSub({ user: "bob" }));
  const out = outlet();
  let now = 5_000_000;
  const d = new PushDispatcher({
    store,
    members: () => Promise.resolve([]),
    out,
    log: memoryLogger(),
    now: () => now,
  });
  const bobs = (await store.subscriptions("bob")).map((s) => s.endpoint);
  for (let i = 0; i < 100; i++) await store.notified(bobs, `@user${i}`, 60_000);
  await store.notified(bobs, "@late", 60_000);
  for (let i = 0; i < 100; i++) d.read("bob", `@user${i}`, 10);
  await d.idle();
  assert.equal(out.sent.length, 20);
  now += 3000;
  d.tick(now);
  d.read("bob", "@late", 3);
  await d.idle();
  assert.equal(out.sent.length, 21);
  await d.close();
});

Deno.test("dispatch: a read goes only to devices sent a message push of it since, never to Apple's", async () => {
  const store = new MemoryPushStore();
  const phone = aSub({ user: "bob" });
  const mac = aSub({
    user: "bob",
    endpoint: "https://web.push.apple.com/QGx-" + crypto.randomUUID(),
  });
  await store.subscribe(phone);
  await store.subscribe(mac);
  const out = outlet();
  let now = 9_000_000;
  const d = new PushDispatcher({
    store,
    members: () => Promise.resolve([]),
    out,
    log: memoryLogger(),
    now: () => now,
    readInterval: 10,
  });
  // No message push of the conversation yet: a read sends nothing.
  d.read("bob", "@alice", 1);
  await d.idle();
  assert.equal(out.sent.length, 0);

  // A DM to bob: a message push to both devices.
  const m = msg({ to: "bob", text: "hi bob" });
  d.message(m);
  await d.idle();
  assert.deepEqual(out.sent.map((s) => s.endpoint).sort(), [mac.endpoint, phone.endpoint].sort());
  // A laptop subscribed after it: it shows no notification of it.
  const laptop = aSub({ user: "bob" });
  await store.subscribe(laptop);
  out.sent.length = 0;

  now += 100;
  d.read("bob", "@alice", m.id);
  await d.idle();
  assert.deepEqual(out.sent, [
    { endpoint: phone.endpoint, payload: { v: 1, kind: "read", conv: "@alice", id: m.id } },
  ]);

  // Read again with nothing new shown: nothing goes.
  out.sent.length = 0;
  now += 100;
  d.read("bob", "@alice", m.id + 1);
  await d.idle();
  assert.deepEqual(out.sent, []);
  await d.close();
});

Deno.test("dispatch: levels of a room set by people who left it go with its next message", async () => {
  const store = new MemoryPushStore();
  await store.setLevel("zed", "#dev", "all");
  await store.setLevel("Bob", "#dev", "none");
  await store.setLevel("zed", "#other", "all");
  // Someone has pushes on (without any, messages are not looked at).
  await store.subscribe(aSub({ user: "alice" }));
  const d = new PushDispatcher({
    store,
    members: () => Promise.resolve(["alice", "bob"]),
    out: outlet(),
    log: memoryLogger(),
  });
  d.message(msg({ room: "dev", text: "hi" }));
  await d.idle();
  assert.deepEqual(await store.levels("zed"), { "#other": "all" });
  assert.deepEqual(await store.levels("bob"), { "#dev": "none" });
  await d.close();
});

Deno.test("dispatch: while nobody has a subscription, messages cost no read of their room's members", async () => {
  const store = new MemoryPushStore();
  const out = outlet();
  let reads = 0, now = 0;
  const d = new PushDispatcher({
    store,
    members: () => (reads++, Promise.resolve(["alice", "bob"])),
    out,
    log: memoryLogger(),
    now: () => now,
  });
  try {
    for (let i = 0; i < 5; i++) d.message(msg({ room: "dev", text: "@bob hi" }));
    await d.idle();
    assert.equal(reads, 0, "no subscription: no members read");
    assert.equal(out.sent.length, 0);
    // Subscribed through another node: believed within a second.
    await store.subscribe(aSub({ user: "bob" }));
    d.message(msg({ room: "dev", text: "@bob hi" }));
    await d.idle();
    assert.equal(reads, 0, "the store is not asked again within the second");
    now = 1000;
    d.message(msg({ room: "dev", text: "@bob again" }));
    await d.idle();
    assert.equal(reads, 1);
    assert.equal(out.sent.length, 1);
    // Subscribed on this node: seen at once (and for good).
    const e = new PushDispatcher({
      store: new MemoryPushStore(),
      members: () => (reads++, Promise.resolve(["alice", "bob"])),
      out,
      log: memoryLogger(),
      now: () => now,
    });
    e.message(msg({ room: "dev" }));
    await e.idle();
    e.subscribed();
    e.message(msg({ room: "dev" }));
    await e.idle();
    assert.equal(reads, 2, "looked at once subscribed() said so");
    await e.close();
  } finally {
    await d.close();
  }
});
