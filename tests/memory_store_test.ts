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
