/**
 * Replies the server builds from stored data are bounded by their encoded
 * size and never cut off the client that asked (issue: one user must not be
 * able to put every newcomer into a disconnect loop). Real server, real
 * sockets, a store filled with text that JSON inflates the most.
 */
import assert from "node:assert/strict";
import { MemoryStore } from "../server/store/memory.ts";
import { conversationKey, type ServerFrame, utf8Length } from "../protocol.ts";
import { closeAll, signIn, startTestServer, type TestClient } from "./helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** `--max-buffered` for these tests: replies may take a quarter of it. */
const MAX_BUFFERED = 64 * 1024;
const BUDGET = MAX_BUFFERED / 4;

/**
 * Text JSON encodes at six bytes a character: what a store written before
 * control characters were refused (or an attacker with a bug to use) holds.
 */
const HOSTILE = "\u0001".repeat(4000);

/** The largest raw text frame the client received. */
function largest(c: TestClient): number {
  return Math.max(...c.raw.map((r) => utf8Length(r)));
}

/** Every frame of `c` after a `ping`: the connection is alive and in order. */
async function alive(c: TestClient): Promise<void> {
  await c.barrier();
  assert.equal(c.closeEvent, null, "still connected");
}

Deno.test("Hub replies: joined, since, history and search stay within the budget and page on", async () => {
  const store = new MemoryStore({ limit: 1000 });
  await store.join("mallory", "general");
  for (let i = 0; i < 30; i++) {
    await store.append({ conv: "general", room: "general", from: "mallory", text: HOSTILE });
  }
  await using t = await startTestServer({ store, args: ["--max-buffered", String(MAX_BUFFERED)] });
  const clients: TestClient[] = [];
  try {
    const bob = await signIn(t.ws, "bob");
    clients.push(bob);
    // Joining replays the newest messages: cut to what fits, newest kept, `more` said.
    bob.send({ type: "join", room: "general" });
    const joined = await bob.next<F<"joined">>("joined");
    assert.equal(joined.more, true);
    assert.ok(joined.history.length >= 1 && joined.history.length < 30, `${joined.history.length}`);
    assert.equal(joined.history.at(-1)!.id, 30, "the newest message is kept");
    assert.equal(joined.history[0].text, HOSTILE);
    await alive(bob);

    // A newcomer and a resume (`since`) get the same treatment.
    const carol = await signIn(t.ws, "carol");
    clients.push(carol);
    carol.send({ type: "join", room: "general", since: 0 });
    const resumed = await carol.next<F<"joined">>("joined");
    assert.equal(resumed.more, true);
    assert.equal(resumed.history[0].id, 1, "after since, the oldest come first");
    // Paging forward from there gets every message exactly once, in order.
    const ids = resumed.history.map((m) => m.id);
    while (ids.at(-1)! < 30) {
      carol.send({ type: "history", room: "general", since: ids.at(-1)!, limit: 200 });
      const page = await carol.next<F<"history">>("history");
      assert.ok(page.messages.length >= 1);
      ids.push(...page.messages.map((m) => m.id));
    }
    assert.deepEqual(ids, Array.from({ length: 30 }, (_, i) => i + 1));

    // Paging back (`before`) keeps the newest of the page and says there is more.
    carol.send({ type: "history", room: "general", before: 31, limit: 200 });
    const back = await carol.next<F<"history">>("history");
    assert.equal(back.more, true);
    assert.equal(back.messages.at(-1)!.id, 30);

    // Search results, newest first, cut where the budget ends.
    carol.send({ type: "search", q: "\u0001", limit: 200 });
    const found = await carol.next<F<"search">>("search");
    assert.equal(found.more, true);
    assert.ok(found.messages.length >= 1 && found.messages.length < 30);
    assert.equal(found.messages[0].id, 30);

    for (const c of [bob, carol]) {
      await alive(c);
      // One stored message is larger than the budget, so a reply may hold one such
      // message: never more than the budget plus one message plus the frame's head.
      assert.ok(largest(c) <= BUDGET + utf8Length(JSON.stringify(HOSTILE)) + 1024, `${largest(c)}`);
    }
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub replies: member lists, room lists and welcome stay within the budget", async () => {
  const store = new MemoryStore({ limit: 100 });
  const long = (i: number) => `member-${String(i).padStart(25, "0")}`;
  // Members and rooms enough to fill far more than a reply may hold.
  for (let i = 0; i < 600; i++) await store.join(long(i), "crowd");
  for (let i = 0; i < 600; i++) await store.join("alice", `room-${String(i).padStart(26, "0")}`);
  // Direct messages from hundreds of names: alice's welcome lists her conversations.
  for (let i = 0; i < 600; i++) {
    const from = long(i);
    await store.touchUser(from);
    await store.append({
      conv: conversationKey(from, { to: "alice" }),
      to: "alice",
      from,
      text: "hi",
    });
  }
  await using t = await startTestServer({
    store,
    users: { alice: "alice-pass1", dave: "dave-pass1" },
    args: ["--max-buffered", String(MAX_BUFFERED)],
  });
  const clients: TestClient[] = [];
  try {
    // alice's welcome is cut: her rooms come first, then the DMs, and it says so.
    const alice = await signIn(t.ws, "alice", "alice-pass1");
    clients.push(alice);
    const welcome = alice.welcome;
    assert.equal(welcome.more, true);
    assert.ok(welcome.rooms.length > 0 && welcome.rooms.length < 601, "a sorted prefix of them");
    assert.deepEqual(welcome.rooms, [...welcome.rooms].sort());
    const convs = welcome.conversations;
    assert.ok(convs.length > 0 && convs.length < 1201, `${convs.length}`);
    const firstDm = convs.findIndex((c) => c.to !== undefined);
    assert.ok(firstDm === -1 || convs.slice(firstDm).every((c) => c.to !== undefined));
    await alive(alice);
    const dave = await signIn(t.ws, "dave", "dave-pass1");
    clients.push(dave);
    dave.send({ type: "join", room: "crowd" });
    const joined = await dave.next<F<"joined">>("joined");
    assert.equal(joined.memberCount, 601, "the whole count, though the list is cut");
    assert.ok(joined.members.length > 0 && joined.members.length < 601);
    assert.deepEqual(joined.members, [...joined.members].sort(), "a sorted prefix");
    dave.send({ type: "rooms" });
    const rooms = await dave.next<F<"rooms">>("rooms");
    assert.equal(rooms.more, true);
    assert.ok(rooms.rooms.length > 0 && rooms.rooms.length < 602);
    for (const c of [alice, dave]) {
      await alive(c);
      assert.ok(largest(c) <= BUDGET + 1024, `${largest(c)}`);
    }
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub replies: re-joining many full rooms at once never cuts off the client", async () => {
  const store = new MemoryStore({ limit: 100 });
  // Eight rooms, each one reply's worth of plain 4 KB messages: together many times
  // what the client may have waiting, as when a browser re-joins its rooms.
  const rooms = Array.from({ length: 8 }, (_, i) => `room${i}`);
  for (const room of rooms) {
    await store.join("mallory", room);
    for (let i = 0; i < 5; i++) {
      await store.append({ conv: room, room, from: "mallory", text: "x".repeat(4000) });
    }
  }
  await using t = await startTestServer({ store, args: ["--max-buffered", String(MAX_BUFFERED)] });
  const bob = await signIn(t.ws, "bob");
  try {
    for (const room of rooms) bob.send({ type: "join", room });
    const joined = [];
    for (let i = 0; i < rooms.length; i++) joined.push(await bob.next<F<"joined">>("joined"));
    assert.deepEqual(joined.map((j) => j.room).sort(), rooms);
    await alive(bob);
  } finally {
    await bob.close();
  }
});
