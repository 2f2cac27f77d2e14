import assert from "node:assert/strict";
import { MemoryStore } from "../server/store/memory.ts";
import { type ChatMessage, conversationKey } from "../protocol.ts";
import { storeContract } from "./store_contract.ts";

storeContract(
  "MemoryStore",
  ({ keep }) => Promise.resolve(new MemoryStore({ limit: keep ?? 1000 })),
);

Deno.test("MemoryStore keeps at most maxTotal messages, trimming the least recently written", async () => {
  const s = new MemoryStore({ limit: 100, maxTotal: 10 });
  for (let i = 0; i < 6; i++) {
    await s.append({ conv: "old", room: "old", from: "u", text: `o${i}` });
  }
  for (let i = 0; i < 6; i++) {
    await s.append({ conv: "new", room: "new", from: "u", text: `n${i}` });
  }
  const old = await s.page("old", { limit: 50 });
  const fresh = await s.page("new", { limit: 50 });
  assert.deepEqual(old.messages.map((m) => m.text), ["o2", "o3", "o4", "o5"]);
  assert.equal(fresh.messages.length, 6);
  assert.equal(
    (await s.page("old", { since: 0, limit: 50 })).gap,
    true,
    "the client learns of the trim",
  );
  const next = await s.append({ conv: "old", room: "old", from: "u", text: "o6" });
  assert.equal(next.id, 7);
  assert.deepEqual((await s.page("new", { limit: 50 })).messages.map((m) => m.text), [
    "n1",
    "n2",
    "n3",
    "n4",
    "n5",
  ]);
});

Deno.test("MemoryStore raises the gap watermark to the highest seq maxTotal drops", async () => {
  const s = new MemoryStore({ limit: 100, maxTotal: 4 });
  for (const t of ["o1", "o2"]) await s.append({ conv: "old", room: "old", from: "u", text: t });
  // o1 changes at 3: a reader at 2 holds a stale o1.
  const edited = await s.change({ kind: "edit", conv: "old", id: 1, user: "u", text: "o1!" });
  assert.equal(edited.ok && edited.applied?.seq, 3);
  for (const t of ["n1", "n2", "n3"]) {
    await s.append({ conv: "new", room: "new", from: "u", text: t });
  }
  // Five messages, four kept: o1 (seq 3) goes, o2 stays.
  assert.deepEqual((await s.page("old", { limit: 10 })).messages.map((m) => m.id), [2]);
  const stale = await s.page("old", { since: 2, limit: 10 });
  assert.deepEqual([stale.messages, stale.gap, stale.seq], [[], true, 3]);
  const fine = await s.page("old", { since: 3, limit: 10 });
  assert.deepEqual([fine.messages, fine.gap, fine.seq], [[], false, 3]);
  assert.deepEqual(await s.change({ kind: "edit", conv: "old", id: 1, user: "u", text: "x" }), {
    ok: false,
    refusal: "unknown_message",
  });
});

Deno.test("MemoryStore never mutates a message it handed out: changes replace it", async () => {
  const s = new MemoryStore();
  const reply = { id: 1, from: "alice", snippet: "hello", seq: 1 };
  const first = await s.append({ conv: "r", room: "r", from: "alice", text: "hello" });
  const second = await s.append({ conv: "r", room: "r", from: "bob", text: "hi", replyTo: reply });
  const held = [first, second, ...(await s.page("r", { limit: 10 })).messages];
  const copies = structuredClone(held);
  await s.change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: true });
  const reacted = await s.message("r", 1);
  await s.change({ kind: "react", conv: "r", id: 1, user: "carol", emoji: "👍", on: true });
  await s.change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "hello!" });
  assert.deepEqual(reacted!.reactions, { "👍": ["bob"] }, "a reaction list is copied, not pushed");
  await s.change({ kind: "edit", conv: "r", id: 2, user: "bob", text: "hi!" });
  await s.change({ kind: "delete", conv: "r", id: 1, user: "alice" });
  assert.deepEqual(held, copies);
  assert.deepEqual(
    reply,
    { id: 1, from: "alice", snippet: "hello", seq: 1 },
    "the draft's replyTo too",
  );
  assert.deepEqual((await s.message("r", 2))!.replyTo, {
    id: 1,
    from: "alice",
    snippet: "",
    deleted: true,
  });
});

Deno.test("MemoryStore answers a resend of a deleted message with its tombstone", async () => {
  const s = new MemoryStore();
  const draft = { conv: "r", room: "r", from: "alice", text: "oops, a password", ref: "k1" };
  const sent = await s.appendOnce(draft);
  await s.change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "fixed" });
  const edited = await s.appendOnce(draft);
  assert.deepEqual([edited.fresh, edited.msg.text, edited.msg.seq], [false, "fixed", 2]);
  await s.change({ kind: "delete", conv: "r", id: 1, user: "alice" });
  const stone = {
    id: 1,
    seq: 3,
    room: "r",
    from: "alice",
    text: "",
    ts: sent.msg.ts,
    deleted: true as const,
  };
  assert.deepEqual(await s.appendOnce(draft), { msg: stone, fresh: false });
  // Still a resend once the tombstone is trimmed (the record keeps the tombstone, not the text).
  const small = new MemoryStore({ limit: 1 });
  await small.appendOnce(draft);
  await small.change({ kind: "delete", conv: "r", id: 1, user: "alice" });
  await small.append({ conv: "r", room: "r", from: "bob", text: "pushes it out" });
  const late = await small.appendOnce(draft);
  assert.deepEqual([late.fresh, late.msg.id, late.msg.text, late.msg.deleted], [
    false,
    1,
    "",
    true,
  ]);
  const other = await small.appendOnce({ ...draft, text: "another text" });
  assert.deepEqual([other.fresh, other.msg.id], [true, 4]);
});

Deno.test("MemoryStore.releaseName() forgets the peer's resend records of the wiped DM", async () => {
  const s = new MemoryStore();
  await s.claimName("alice", "s1", 1000, true);
  const ab = conversationKey("alice", { to: "bob" });
  const secret = { conv: ab, to: "alice", from: "bob", text: "a secret for alice", ref: "b1" };
  const sent = await s.appendOnce(secret); // 1
  const elsewhere = await s.appendOnce({
    conv: "r",
    room: "r",
    from: "bob",
    text: "hi",
    ref: "b2",
  });
  await s.append({ conv: ab, to: "bob", from: "alice", text: "thanks" }); // 2
  assert.deepEqual(await s.appendOnce(secret), { msg: sent.msg, fresh: false }, "a resend first");
  assert.deepEqual(await s.releaseName("alice", "s1"), []);
  // The wiped message is not answered as stored: the resend is a new message, stored now.
  const again = await s.appendOnce(secret);
  assert.deepEqual([again.fresh, again.msg.id, again.msg.text], [true, 3, "a secret for alice"]);
  assert.deepEqual((await s.page(ab, { limit: 10 })).messages, [again.msg]);
  assert.deepEqual(await s.appendOnce(secret), { msg: again.msg, fresh: false });
  // Records of other conversations stay.
  const hi = { conv: "r", room: "r", from: "bob", text: "hi", ref: "b2" };
  assert.deepEqual(await s.appendOnce(hi), { msg: elsewhere.msg, fresh: false });
});

Deno.test("MemoryStore answers a resend of a dropped reply with the original's last quote", async () => {
  const s = new MemoryStore({ limit: 2 });
  const original = await s.append({ conv: "r", room: "r", from: "alice", text: "zork words" });
  const draft = {
    conv: "r",
    room: "r",
    from: "bob",
    text: "my answer",
    ref: "b1",
    replyTo: { id: 1, from: "alice", snippet: "zork words", seq: original.seq },
  };
  const reply = await s.appendOnce(draft); // 2
  await s.change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "better words" }); // 3
  await s.append({ conv: "r", room: "r", from: "carol", text: "one" }); // 4: drops 1
  await s.append({ conv: "r", room: "r", from: "carol", text: "two" }); // 5: drops the reply
  assert.equal(await s.message("r", 2), null);
  const edited = await s.appendOnce(draft);
  assert.deepEqual(edited, {
    msg: { ...reply.msg, replyTo: { id: 1, from: "alice", snippet: "better words" } },
    fresh: false,
  });
  assert.ok(!JSON.stringify(edited).includes("zork"), "the pre-edit text is not handed out");
  // Deleted while the reply is kept: the record quotes nothing of it.
  const small = new MemoryStore({ limit: 2 });
  await small.append({ conv: "r", room: "r", from: "alice", text: "zork words" });
  await small.appendOnce(draft);
  await small.change({ kind: "delete", conv: "r", id: 1, user: "alice" }); // 3
  await small.append({ conv: "r", room: "r", from: "carol", text: "one" });
  await small.append({ conv: "r", room: "r", from: "carol", text: "two" });
  const deleted = await small.appendOnce(draft);
  assert.deepEqual([deleted.fresh, deleted.msg.replyTo], [false, {
    id: 1,
    from: "alice",
    snippet: "",
    deleted: true,
  }]);
  assert.ok(!JSON.stringify(deleted).includes("zork"), "the deleted text is not handed out");
});

Deno.test("MemoryStore.search() with no words lists live messages, never tombstones", async () => {
  const s = new MemoryStore();
  await s.append({ conv: "r", room: "r", from: "alice", text: "kept" });
  await s.append({ conv: "r", room: "r", from: "alice", text: "gone" });
  await s.change({ kind: "delete", conv: "r", id: 2, user: "alice" });
  const found = await s.search("   ", { user: "alice", rooms: ["r"], limit: 10 });
  assert.deepEqual(found.map((m) => m.id), [1]);
});

Deno.test("MemoryStore resolves appendOnce() and change() of one conversation in seq order", async () => {
  const s = new MemoryStore();
  await s.append({ conv: "r", room: "r", from: "alice", text: "first" });
  const order: number[] = [];
  await Promise.all(Array.from({ length: 12 }, (_, i) => {
    if (i % 2 === 0) {
      const draft = { conv: "r", room: "r", from: "bob", text: `m${i}`, ref: `k${i}` };
      return s.appendOnce(draft).then((r) => order.push(r.msg.seq));
    }
    return s.change({ kind: "react", conv: "r", id: 1, user: `u${i}`, emoji: "👍", on: true })
      .then((r) => order.push(r.ok && r.applied ? r.applied.seq : -1));
  }));
  assert.deepEqual(order, Array.from({ length: 12 }, (_, i) => i + 2));
});

/** Text whose lower-casing is not the ASCII fast path, as in a real chat. */
const TEXT = "Déploiement du café terminé, ΣΊΣΥΦΟΣ a relu la PR et tout est passé en production";

/** A store at its default cap: 50 rooms × 2,000 messages. */
async function fullStore(): Promise<{ store: MemoryStore; rooms: string[] }> {
  const store = new MemoryStore({ limit: 2000 });
  const rooms = Array.from({ length: 50 }, (_, i) => `room${i}`);
  for (let i = 0; i < 2000; i++) {
    for (const r of rooms) {
      await store.append({ conv: r, room: r, from: "u", text: `${i} ${TEXT}` });
    }
  }
  return { store, rooms };
}

/** Counts `setTimeout(0)` callbacks until `work` settles. */
async function ticksDuring(work: () => Promise<unknown>): Promise<number> {
  let ticks = 0;
  const tick = () => {
    ticks++;
    timer = setTimeout(tick, 0);
  };
  let timer = setTimeout(tick, 0);
  try {
    await work();
    return ticks;
  } finally {
    clearTimeout(timer);
  }
}

/** Counts one-byte round trips over a local TCP connection until `work` settles. */
async function roundTripsDuring(work: () => Promise<unknown>): Promise<number> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const server = await listener.accept();
  const echo = (async () => {
    const byte = new Uint8Array(1);
    while (await server.read(byte) !== null) await server.write(byte);
  })();
  let trips = 0, done = false;
  const pinging = (async () => {
    const byte = new Uint8Array(1);
    while (!done) {
      await client.write(byte);
      if (await client.read(byte) === null) return;
      trips++;
    }
  })();
  try {
    await work();
    return trips;
  } finally {
    done = true;
    await pinging;
    client.close();
    await echo;
    server.close();
  }
}

Deno.test("MemoryStore.search() lets timers and other sockets run while it scans a full store", async () => {
  const { store, rooms } = await fullStore();
  const scope = { user: "u", rooms, limit: 50 };
  const none = async () => assert.deepEqual(await store.search("nothing-like-this", scope), []);
  // The old synchronous scan resolved before any timer or socket could get a turn.
  const ticks = await ticksDuring(none);
  assert.ok(ticks >= 3, `timers ran ${ticks} times during the scan`);
  const trips = await roundTripsDuring(none);
  assert.ok(trips >= 3, `a socket made ${trips} round trips during the scan`);
});

Deno.test("MemoryStore.search() finds what a plain scan finds, in the same order", async () => {
  const { store, rooms } = await fullStore();
  for (const [q, limit] of [["1999", 200], ["café 17", 50], ["99 production", 7]] as const) {
    const scope = { user: "u", rooms, limit };
    const expected: ChatMessage[] = [];
    for (const r of rooms) {
      const { messages } = await store.page(r, { limit: 2000 });
      const words = q.toLowerCase().split(" ");
      const hits = messages.filter((m) => words.every((w) => m.text.toLowerCase().includes(w)));
      expected.push(...hits.reverse().slice(0, limit));
    }
    expected.sort((a, b) => (a.ts < b.ts ? 1 : a.ts > b.ts ? -1 : 0));
    assert.deepEqual(await store.search(q, scope), expected.slice(0, limit), q);
  }
});

Deno.test("MemoryStore.search() copes with conversations trimmed or wiped while it waits", async () => {
  const { store, rooms } = await fullStore();
  await store.claimName("alice", "s1", 0, true);
  const ab = conversationKey("alice", { to: "bob" });
  await store.append({ conv: ab, to: "bob", from: "alice", text: "needle in a DM" });
  await store.append({ conv: "room49", room: "room49", from: "u", text: "needle in a room" });
  const flood = async () => {
    // Trims the rooms written least recently (the first ones) and wipes the DM.
    for (let i = 0; i < 50_000; i++) {
      await store.append({ conv: "flood", room: "flood", from: "u", text: "x" });
    }
    await store.releaseName("alice", "s1");
  };
  const meanwhile = new Promise((resolve) => setTimeout(() => resolve(flood()), 0));
  const found = await store.search("needle", { user: "alice", rooms, limit: 50 });
  await meanwhile;
  assert.ok(found.some((m) => m.text === "needle in a room"));
  assert.ok(found.every((m) => m.text.startsWith("needle")));
  assert.deepEqual((await store.page("room0", { limit: 10 })).messages, [], "room0 was trimmed");
});

Deno.test("MemoryStore keeps every one of concurrent sign-outs across a restart", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const signoutsPath = `${dir}/.chat-signouts`;
    const until = Date.now() + 3600_000;
    // Two servers sharing the folder, twenty sign-outs at once.
    const a = new MemoryStore({ signoutsPath });
    const b = new MemoryStore({ signoutsPath });
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 ? a : b).revokeSession(`s${i}`, until)),
    );
    const again = new MemoryStore({ signoutsPath });
    for (let i = 0; i < 20; i++) {
      assert.equal(await again.sessionRevoked(`s${i}`, Date.now()), true, `s${i}`);
    }
    assert.equal((await Deno.stat(signoutsPath)).mode! & 0o777, 0o600);
    // A line cut short by a crash is skipped, not fatal.
    await Deno.writeTextFile(signoutsPath, '["half', { append: true });
    assert.equal(await new MemoryStore({ signoutsPath }).sessionRevoked("s3", Date.now()), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MemoryStore rewrites a sign-outs file of mostly lapsed lines, keeping the live ones", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const signoutsPath = `${dir}/.chat-signouts`;
    const past = Date.now() - 1000;
    const lapsed = Array.from({ length: 200 }, (_, i) => JSON.stringify([`old${i}`, past]));
    await Deno.writeTextFile(
      signoutsPath,
      [...lapsed, JSON.stringify(["live", Date.now() + 3600_000])].join("\n") + "\n",
    );
    const store = new MemoryStore({ signoutsPath });
    await store.revokeSession("new", Date.now() + 3600_000);
    const lines = (await Deno.readTextFile(signoutsPath)).trim().split("\n");
    assert.deepEqual(lines.map((l) => JSON.parse(l)[0]).sort(), ["live", "new"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
