/**
 * The directory (`users`, with last seen), room topics (`topic`) and
 * `read_all`, end to end: real servers on free ports, real WebSocket clients,
 * and for several nodes a redis-server of the test's own.
 */
import assert from "node:assert/strict";
import { MemoryStore } from "../server/store/memory.ts";
import { Directory } from "../server/hub/directory.ts";
import { MAX_DIRECTORY, type ServerFrame } from "../protocol.ts";
import {
  closeAll,
  signIn,
  startTestServer,
  type TestClient,
  type TestServer,
  waitUntil,
} from "./helpers.ts";
import { ChatNode, startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** Plaintext passwords (the seed-era format): nothing to hash when the file is written. */
function accounts(...names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((n) => [n, `pw-${n.toLowerCase()}`]));
}

/** Signs `name` in with its password from {@link accounts}. */
function login(s: { ws: string }, name: string) {
  return signIn(s.ws, name, `pw-${name.toLowerCase()}`);
}

/** Asks for the directory and waits for the answer. */
async function users(c: TestClient, q?: string): Promise<F<"users">> {
  c.send(q === undefined ? { type: "users" } : { type: "users", q });
  return await c.next<F<"users">>("users");
}

/** The next error frame. */
function error(c: TestClient): Promise<F<"error">> {
  return c.next<F<"error">>("error");
}

const T0 = Date.parse("2026-03-01T10:00:00.000Z");
const iso = (ms: number) => new Date(ms).toISOString();

/** A login-mode server with a clock the test moves. */
async function clocked(
  names: string[],
  args: string[] = [],
): Promise<TestServer & { clock: { now: number } }> {
  const clock = { now: T0 };
  const s = await startTestServer({ users: accounts(...names), args, now: () => clock.now });
  return Object.assign(s, { clock });
}

Deno.test("users lists every account: online first by name, then by last seen, never the asker", async () => {
  await using s = await clocked(["alice", "Bob", "carol", "dave", "erin", "frank", "Greta", "Zoe"]);
  const clients: TestClient[] = [];
  try {
    const alice = await login(s, "alice");
    clients.push(alice);
    s.clock.now = T0 + 1000;
    const carol = await login(s, "carol");
    s.clock.now = T0 + 2000;
    await carol.close();
    await waitUntil(() => s.server.hub.usersOnline === 1, "carol is offline");
    s.clock.now = T0 + 3000;
    const dave = await login(s, "dave");
    s.clock.now = T0 + 4000;
    await dave.close();
    await waitUntil(() => s.server.hub.usersOnline === 1, "dave is offline");
    s.clock.now = T0 + 5000;
    // Any spelling signs in; the directory spells names as the users file does.
    clients.push(await login(s, "zoe"), await login(s, "frank"), await login(s, "bob"));
    assert.deepEqual(await users(alice), {
      type: "users",
      users: [
        { name: "Bob", online: true },
        { name: "frank", online: true },
        { name: "Zoe", online: true },
        { name: "dave", online: false, seen: iso(T0 + 4000) },
        { name: "carol", online: false, seen: iso(T0 + 2000) },
        { name: "erin", online: false },
        { name: "Greta", online: false },
      ],
    });

    // Signing in counts as being seen, even before the user leaves again.
    s.clock.now = T0 + 6000;
    const erin = await login(s, "erin");
    await erin.close();
    await waitUntil(() => s.server.hub.usersOnline === 4, "erin is offline");
    const bob = clients.at(-1)!;
    assert.deepEqual((await users(bob)).users.slice(3), [
      { name: "erin", online: false, seen: iso(T0 + 6000) },
      { name: "dave", online: false, seen: iso(T0 + 4000) },
      { name: "carol", online: false, seen: iso(T0 + 2000) },
      { name: "Greta", online: false },
    ]);
    assert.deepEqual((await users(bob)).users.slice(0, 3), [
      { name: "alice", online: true },
      { name: "frank", online: true },
      { name: "Zoe", online: true },
    ]);
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("users q keeps names containing it, ignoring case", async () => {
  await using s = await clocked(["alice", "Alina", "bob", "MALIK", "carol"]);
  const alice = await login(s, "alice");
  try {
    assert.deepEqual(await users(alice, "LI"), {
      type: "users",
      q: "LI",
      users: [{ name: "Alina", online: false }, { name: "MALIK", online: false }],
    });
    assert.deepEqual(
      await users(alice, "alic"),
      { type: "users", q: "alic", users: [] },
      "not the asker",
    );
    assert.deepEqual(await users(alice, "zz"), { type: "users", q: "zz", users: [] });
    assert.deepEqual(await users(alice, ""), {
      type: "users",
      users: ["Alina", "bob", "carol", "MALIK"].map((name) => ({ name, online: false })),
    });
  } finally {
    await alice.close();
  }
});

Deno.test("users refuses a bad query with bad_request and the connection goes on", async () => {
  await using s = await clocked(["alice", "bob"]);
  const alice = await login(s, "alice");
  try {
    alice.send({ type: "users", q: "x".repeat(33) });
    assert.deepEqual(await error(alice), {
      type: "error",
      code: "bad_request",
      message: "Search text is longer than 32 characters",
    });
    alice.send({ type: "users", q: 7 });
    assert.deepEqual(await error(alice), {
      type: "error",
      code: "bad_request",
      message: 'Field "q" must be a string',
    });
    assert.deepEqual(await users(alice), {
      type: "users",
      users: [{ name: "bob", online: false }],
    });
  } finally {
    await alice.close();
  }
});

Deno.test("users in open mode lists names held and seen within the name expiry, and who is online", async () => {
  const clock = { now: T0 };
  await using s = await startTestServer({ now: () => clock.now, tickInterval: 20 });
  const clients: TestClient[] = [];
  try {
    const old = await signIn(s.ws, "Oldie");
    await old.close();
    await waitUntil(() => s.server.hub.usersOnline === 0, "Oldie is offline");
    clock.now = T0 + 24 * 3600_000;
    const ann = await signIn(s.ws, "ann");
    clock.now += 1000;
    await ann.close();
    await waitUntil(() => s.server.hub.usersOnline === 0, "ann is offline");
    const annLeft = clock.now;
    clock.now += 1000;
    const ben = await signIn(s.ws, "Ben");
    const cat = await signIn(s.ws, "cat");
    clients.push(ben, cat);
    assert.deepEqual(await users(ben), {
      type: "users",
      users: [
        { name: "cat", online: true },
        { name: "ann", online: false, seen: iso(annLeft) },
        { name: "Oldie", online: false, seen: iso(T0) },
      ],
    });
    // Past the expiry (30 days) a name is no longer listed, released or not.
    clock.now = T0 + 30 * 24 * 3600_000 + 1;
    assert.deepEqual((await users(cat)).users, [
      { name: "Ben", online: true },
      { name: "ann", online: false, seen: iso(annLeft) },
    ]);
    assert.deepEqual((await users(cat, "AN")).users, [
      { name: "ann", online: false, seen: iso(annLeft) },
    ]);
  } finally {
    await closeAll(...clients);
  }
});

Deno.test(`users stops at ${MAX_DIRECTORY} people, or at the reply's byte budget, and says more`, async (t) => {
  const names = Array.from({ length: 600 }, (_, i) => `u${String(i).padStart(3, "0")}`);
  await t.step(`a directory of 600 accounts gives the first ${MAX_DIRECTORY}`, async () => {
    await using s = await clocked(names);
    const me = await login(s, "u000");
    try {
      assert.deepEqual(await users(me), {
        type: "users",
        users: names.slice(1, MAX_DIRECTORY + 1).map((name) => ({ name, online: false })),
        more: true,
      });
      assert.deepEqual(await users(me, "U59"), {
        type: "users",
        q: "U59",
        users: names.slice(590).map((name) => ({ name, online: false })),
      });
    } finally {
      await me.close();
    }
  });
  await t.step("a small --max-buffered cuts the reply by its size", async () => {
    await using s = await clocked(names, ["--max-buffered", "8192"]);
    const me = await login(s, "u000");
    try {
      const reply = await users(me);
      assert.equal(reply.more, true);
      const n = reply.users.length;
      assert.ok(n > 10 && n < 100, `${n} entries`);
      assert.deepEqual(reply.users, names.slice(1, n + 1).map((name) => ({ name, online: false })));
      const size = JSON.stringify(reply).length;
      assert.ok(size <= 8192 / 4, `${size} bytes`);
      assert.ok(size > 8192 / 4 - 40, `${size} bytes: one more entry would have fitted`);
    } finally {
      await me.close();
    }
  });
});

/** A memory store whose `lastSeen()` waits until released, counting the reads under way. */
class HeldDirectory extends MemoryStore {
  running = 0;
  most = 0;
  reads = 0;
  #gate = Promise.withResolvers<void>();

  release(): void {
    this.#gate.resolve();
  }

  override async lastSeen(users: readonly string[]): Promise<Map<string, number>> {
    this.running++;
    this.reads++;
    this.most = Math.max(this.most, this.running);
    try {
      await this.#gate.promise;
      return await super.lastSeen(users);
    } finally {
      this.running--;
    }
  }
}

Deno.test("users: a node reads the directory once for everyone asking at once, and reuses it", async () => {
  const names = ["u1", "u2", "u3", "u4", "u5"];
  const store = new HeldDirectory();
  await using s = await startTestServer({ users: accounts(...names), store });
  const clients = await Promise.all(names.map((n) => login(s, n)));
  try {
    for (const c of clients) c.send({ type: "users" });
    // Each `users` has been taken up (its read begun, or waiting for it) before the pong.
    for (const c of clients) await c.barrier();
    assert.equal(store.running, 1);
    store.release();
    const answer = (i: number) => ({
      type: "users",
      users: names.filter((_, k) => k !== i).map((name) => ({ name, online: true })),
    });
    for (const [i, c] of clients.entries()) assert.deepEqual(await c.next("users"), answer(i));
    assert.equal(store.most, 1);
    // A flood of them costs no more reads while nobody comes or goes.
    const reads = store.reads;
    for (let round = 0; round < 5; round++) {
      for (const c of clients) c.send({ type: "users", q: "u" });
      for (const [i, c] of clients.entries()) {
        assert.deepEqual(await c.next("users"), { ...answer(i), q: "u" });
      }
    }
    assert.equal(store.reads, reads);
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("topic sets a room's topic for its members only, and joined and rooms carry it", async () => {
  await using s = await clocked(["alice", "bob", "carol"]);
  const [alice, alice2, bob, carol] = [
    await login(s, "alice"),
    await login(s, "alice"),
    await login(s, "bob"),
    await login(s, "carol"),
  ];
  try {
    alice.send({ type: "join", room: "ops" });
    await alice.next("joined");
    await alice2.next("joined");
    bob.send({ type: "join", room: "ops" });
    assert.deepEqual(await bob.next("joined"), {
      type: "joined",
      room: "ops",
      memberCount: 2,
      members: ["alice", "bob"],
      seq: 0,
      history: [],
    }, "no topic yet");

    alice.send({ type: "topic", room: "ops", topic: "  Deploys:\tThursdays  " });
    const first = await alice.next<F<"topic">>("topic");
    assert.equal(first.ts, iso(s.clock.now), "stamped by the server's clock");
    const thursdays = {
      type: "topic",
      room: "ops",
      topic: "Deploys: Thursdays",
      user: "alice",
      ts: first.ts,
    };
    assert.deepEqual(first, thursdays, "one line, trimmed");
    assert.deepEqual(await alice2.next("topic"), thursdays);
    assert.deepEqual(await bob.next("topic"), thursdays);
    await carol.barrier();
    assert.deepEqual(carol.all.filter((f) => f.type === "topic"), [], "carol is not a member");

    // The same topic again tells no one: the next event anyone gets is the change after it.
    alice.send({ type: "topic", room: "ops", topic: "Deploys: Thursdays" });
    alice.send({ type: "topic", room: "ops", topic: "Deploys: Fridays only" });
    const event = await bob.next<F<"topic">>("topic");
    const expected = { ...thursdays, topic: "Deploys: Fridays only", ts: event.ts };
    assert.deepEqual(event, expected);
    assert.deepEqual(await alice.next("topic"), expected);
    assert.deepEqual(await alice2.next("topic"), expected);

    // Not a member, or no such room: as for sending there.
    carol.send({ type: "topic", room: "ops", topic: "mine now" });
    assert.deepEqual(await error(carol), {
      type: "error",
      code: "unknown_room",
      message: 'You are not in room "ops": join it first',
    });
    carol.send({ type: "topic", room: "nowhere", topic: "x" });
    assert.deepEqual(await error(carol), {
      type: "error",
      code: "unknown_room",
      message: 'You are not in room "nowhere": join it first',
    });
    bob.send({ type: "topic", room: "ops", topic: "x".repeat(301) });
    assert.deepEqual(await error(bob), {
      type: "error",
      code: "too_large",
      message: "A topic is longer than 300 bytes",
    });
    bob.send({ type: "topic", room: "ops", topic: "bell\u0007" });
    assert.deepEqual(await error(bob), {
      type: "error",
      code: "bad_request",
      message: "A topic may not contain control characters",
    });
    bob.send({ type: "rooms" });
    assert.deepEqual(await bob.next("rooms"), {
      type: "rooms",
      rooms: [
        { name: "general", members: 3 },
        { name: "ops", members: 2, topic: "Deploys: Fridays only" },
      ],
    }, "the connection goes on, and rooms carry the topic");

    carol.send({ type: "join", room: "ops" });
    assert.deepEqual(await carol.next("joined"), {
      type: "joined",
      room: "ops",
      memberCount: 3,
      members: ["alice", "bob", "carol"],
      topic: "Deploys: Fridays only",
      seq: 0,
      history: [],
    });

    // An empty topic clears it, for everyone in the room now.
    bob.send({ type: "topic", room: "ops", topic: "" });
    for (const c of [alice, alice2, bob, carol]) {
      const cleared = await c.next<F<"topic">>("topic");
      assert.deepEqual(cleared, { ...expected, topic: "", user: "bob", ts: cleared.ts });
    }
    carol.send({ type: "rooms" });
    assert.deepEqual((await carol.next<F<"rooms">>("rooms")).rooms[1], {
      name: "ops",
      members: 3,
    });
    carol.send({ type: "join", room: "ops" });
    assert.equal((await carol.next<F<"joined">>("joined")).topic, undefined);
  } finally {
    await closeAll(alice, alice2, bob, carol);
  }
});

Deno.test("--data keeps topics and last seen over a restart; a shutdown counts as last seen", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-directory-" });
  const names = ["alice", "bob"];
  const clock = { now: T0 };
  const start = () =>
    startTestServer({
      dir,
      users: accounts(...names),
      args: ["--data", `${dir}/chat.db`],
      now: () => clock.now,
    });
  try {
    {
      await using s = await start();
      const alice = await login(s, "alice");
      const bob = await login(s, "bob");
      try {
        alice.send({ type: "join", room: "ops" });
        await alice.next("joined");
        alice.send({ type: "topic", room: "ops", topic: "kept" });
        await alice.next("topic");
        clock.now = T0 + 1000;
        await bob.close();
        await waitUntil(() => s.server.hub.usersOnline === 1, "bob is offline");
        clock.now = T0 + 2000;
        // alice is still connected when the server stops.
        await s.close();
        await alice.waitClose();
      } finally {
        await closeAll(alice, bob);
      }
    }
    clock.now = T0 + 3000;
    await using s = await start();
    const bob = await login(s, "bob");
    try {
      assert.deepEqual(await users(bob), {
        type: "users",
        users: [{ name: "alice", online: false, seen: iso(T0 + 2000) }],
      });
      bob.send({ type: "rooms" });
      assert.deepEqual((await bob.next<F<"rooms">>("rooms")).rooms, [
        { name: "general", members: 2 },
        { name: "ops", members: 1, topic: "kept" },
      ]);
      bob.send({ type: "join", room: "ops" });
      assert.equal((await bob.next<F<"joined">>("joined")).topic, "kept");
    } finally {
      await bob.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** The next `n` read frames, sorted by conversation (their order is not fixed). */
async function reads(c: TestClient, n: number): Promise<F<"read">[]> {
  const out: F<"read">[] = [];
  while (out.length < n) out.push(await c.next<F<"read">>("read"));
  const key = (f: F<"read">) => f.room !== undefined ? `#${f.room}` : `@${f.to}`;
  return out.sort((a, b) => key(a) < key(b) ? -1 : 1);
}

Deno.test("read_all marks every conversation read and tells every connection of the user", async () => {
  await using s = await clocked(["alice", "bob", "carol"]);
  const [alice, alice2, bob, carol] = [
    await login(s, "alice"),
    await login(s, "alice"),
    await login(s, "bob"),
    await login(s, "carol"),
  ];
  try {
    for (const c of [alice, bob]) {
      c.send({ type: "join", room: "ops" });
      await c.next((f) => f.type === "joined" && f.room === "ops");
    }
    bob.send({ type: "send", room: "general", text: "one" });
    bob.send({ type: "send", room: "general", text: "two" });
    bob.send({ type: "send", room: "ops", text: "three" });
    bob.send({ type: "send", to: "alice", text: "psst" });
    bob.send({ type: "send", to: "alice", text: "psst again" });
    carol.send({ type: "send", to: "alice", text: "read already" });
    for (const text of ["one", "two", "three", "psst", "psst again", "read already"]) {
      await alice.next((f) => f.type === "message" && f.text === text);
    }
    alice.send({ type: "read", to: "carol", id: 1 });
    assert.deepEqual(await alice2.next("read"), { type: "read", to: "carol", id: 1 });

    alice.send({ type: "read_all" });
    const expected = [
      { type: "read", room: "general", id: 2 },
      { type: "read", room: "ops", id: 1 },
      { type: "read", to: "bob", id: 2 },
    ];
    assert.deepEqual(await reads(alice, 3), expected, "the asking connection too");
    assert.deepEqual(await reads(alice2, 3), expected);
    await bob.barrier();
    await alice.barrier();
    assert.deepEqual(bob.all.filter((f) => f.type === "read"), [], "only alice's connections");
    assert.deepEqual(alice.peek("read"), [], "nothing for the DM read already");

    const again = await login(s, "alice");
    try {
      assert.deepEqual(again.welcome.conversations, [
        { room: "general", last: 2, read: 2, seq: 2, unread: 0 },
        { room: "ops", last: 1, read: 1, seq: 1, unread: 0 },
        { to: "bob", last: 2, read: 2, seq: 2, unread: 0 },
        { to: "carol", last: 1, read: 1, seq: 1, unread: 0 },
      ]);
    } finally {
      await again.close();
    }
    // Nothing left to mark: no frames at all.
    alice.send({ type: "read_all" });
    await alice.barrier();
    assert.deepEqual(alice.peek("read"), []);
  } finally {
    await closeAll(alice, alice2, bob, carol);
  }
});

Deno.test("Several nodes: topics, read_all and the directory work across nodes", async () => {
  await using cluster = await startCluster(2, { users: accounts("alice", "bob", "carol", "dave") });
  const [n0, n1] = cluster.nodes;
  const clients: TestClient[] = [];
  const on = async (node: ChatNode, name: string) => {
    const c = await login(node, name);
    clients.push(c);
    return c;
  };
  try {
    const alice = await on(n0, "alice");
    const alice2 = await on(n1, "alice");
    const bob = await on(n1, "bob");
    const carol = await on(n1, "carol");
    for (const c of [alice, bob]) {
      c.send({ type: "join", room: "ops" });
      await c.next((f) => f.type === "joined" && f.room === "ops");
    }
    await alice2.next((f) => f.type === "joined" && f.room === "ops");

    // A topic set on one node reaches the members on the other, and no one else.
    alice.send({ type: "topic", room: "ops", topic: "across nodes" });
    const event = await bob.next<F<"topic">>("topic");
    const expected = {
      type: "topic",
      room: "ops",
      topic: "across nodes",
      user: "alice",
      ts: event.ts,
    };
    assert.deepEqual(event, expected);
    assert.deepEqual(await alice.next("topic"), expected);
    assert.deepEqual(await alice2.next("topic"), expected);
    await carol.barrier();
    assert.deepEqual(carol.all.filter((f) => f.type === "topic"), []);
    carol.send({ type: "topic", room: "ops", topic: "x" });
    assert.equal((await error(carol)).code, "unknown_room");

    // Kept in Redis: a node started later has it.
    await using n2 = await ChatNode.start(cluster.redis.url, { users: cluster.users });
    const dave = await on(n2, "dave");
    dave.send({ type: "rooms" });
    assert.deepEqual((await dave.next<F<"rooms">>("rooms")).rooms, [
      { name: "general", members: 4 },
      { name: "ops", members: 2, topic: "across nodes" },
    ]);
    dave.send({ type: "join", room: "ops" });
    assert.equal((await dave.next<F<"joined">>("joined")).topic, "across nodes");

    // read_all on one node: the user's connections on every node hear of it.
    bob.send({ type: "send", room: "ops", text: "one" });
    bob.send({ type: "send", to: "alice", text: "two" });
    await alice2.next((f) => f.type === "message" && f.text === "two");
    await alice.next((f) => f.type === "message" && f.text === "two");
    alice.send({ type: "read_all" });
    // general has the join announcements only: no messages, nothing to mark.
    const expectedReads = [{ type: "read", room: "ops", id: 1 }, {
      type: "read",
      to: "bob",
      id: 1,
    }];
    assert.deepEqual(await reads(alice, 2), expectedReads);
    assert.deepEqual(await reads(alice2, 2), expectedReads);

    // The directory: online wherever they are; seen once gone, from any node.
    assert.deepEqual(await users(bob), {
      type: "users",
      users: [
        { name: "alice", online: true },
        { name: "carol", online: true },
        { name: "dave", online: true },
      ],
    });
    await bob.next((f) => f.type === "presence" && f.online?.includes("dave") === true);
    // Older lists, from before dave came, must not be taken for his leaving.
    for (let i = bob.inbox.length - 1; i >= 0; i--) {
      if (bob.inbox[i].type === "presence") bob.inbox.splice(i, 1);
    }
    const before = Date.now();
    await dave.close();
    await bob.next((f) => f.type === "presence" && f.online?.includes("dave") === false);
    const after = Date.now();
    const listed = await users(bob);
    const seen = listed.users[2].seen!;
    assert.deepEqual(listed, {
      type: "users",
      users: [
        { name: "alice", online: true },
        { name: "carol", online: true },
        { name: "dave", online: false, seen },
      ],
    });
    assert.ok(seen >= iso(before) && seen <= iso(after), seen);
    await n2.kill("SIGTERM");
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Directory: a read refused for want of a slot is not the answer from then on", async () => {
  const store = new MemoryStore();
  await store.markSeen(["bob"], T0);
  let refuse = true;
  let reads = 0;
  const directory = new Directory({
    accounts: () => ["alice", "bob"],
    store: {
      lastSeen: (names) => {
        reads++;
        return store.lastSeen(names);
      },
      recentClaims: (q) => store.recentClaims(q),
    },
    isOnline: () => false,
    onlineUsers: () => [],
    now: () => T0,
    nameExpiry: 1000,
    turn: () => refuse ? Promise.reject(new Error("busy")) : Promise.resolve(),
    done: () => {},
  });
  await assert.rejects(directory.list("alice"), /busy/);
  refuse = false;
  const bob = { name: "bob", online: false, seen: iso(T0) };
  assert.deepEqual(await directory.list("alice"), { users: [bob], more: false });
  // Reused while nobody comes or goes; only who moved is read again.
  assert.deepEqual(await directory.list("alice", "B"), { users: [bob], more: false });
  assert.equal(reads, 1);
  await store.markSeen(["bob"], T0 + 500);
  directory.moved("bob");
  assert.deepEqual(await directory.list("alice"), {
    users: [{ name: "bob", online: false, seen: iso(T0 + 500) }],
    more: false,
  });
  assert.equal(reads, 2);
});
