import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { parseConfig } from "../server/config.ts";
import { memoryLogger } from "../server/log.ts";
import { startServer } from "../server/server.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { closeAll, freePort, signIn, startTestServer, TestClient, waitUntil } from "./helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1", carol: "carol-pass" };

Deno.test("server: two users exchange room messages; ref goes only to the sender's connection", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const alice2 = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    assert.deepEqual(alice.welcome.rooms, ["general"]);
    assert.equal(alice.welcome.mode, "login");
    assert.match(alice.welcome.token, /^v1\./);
    alice.send({ type: "send", room: "general", text: "hi bob", ref: "c1" });
    const own = await alice.next<F<"message">>("message");
    const other = await alice2.next<F<"message">>("message");
    const got = await bob.next<F<"message">>("message");
    assert.equal(own.ref, "c1");
    assert.equal(other.ref, undefined, "the sender's other tab gets no ref");
    assert.equal(got.ref, undefined);
    assert.equal(got.from, "alice");
    assert.equal(got.room, "general");
    assert.equal(got.text, "hi bob");
    assert.equal(got.id, own.id);
    assert.ok(!Number.isNaN(Date.parse(got.ts)) && got.ts.endsWith("Z"));
    bob.send({ type: "send", room: "general", text: "hello alice" });
    const reply = await alice.next<F<"message">>("message");
    assert.equal(reply.from, "bob");
    assert.equal(reply.id, got.id + 1, "ids increase within a room");
  } finally {
    await closeAll(alice, alice2, bob);
  }
});

Deno.test("server: a late joiner gets history in joined, and history pages with before", async () => {
  await using t = await startTestServer({ users: USERS, args: ["--burst", "200"] });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  let bob: TestClient | undefined;
  try {
    alice.send({ type: "join", room: "ops" });
    await alice.next("joined");
    for (let i = 1; i <= 60; i++) {
      alice.send({ type: "send", room: "ops", text: `m${i}`, ref: `r${i}` });
    }
    await alice.next((f) => f.type === "message" && f.ref === "r60");
    bob = await signIn(t.ws, "bob", USERS.bob);
    bob.send({ type: "join", room: "ops" });
    const joined = await bob.next<F<"joined">>("joined");
    assert.equal(joined.room, "ops");
    assert.deepEqual(joined.members, ["alice", "bob"]);
    assert.equal(joined.history.length, 50);
    assert.equal(joined.history[0].text, "m11");
    assert.equal(joined.history.at(-1)!.text, "m60");
    const first = await alice.next<F<"system">>("system");
    assert.deepEqual([first.room, first.event, first.user], ["general", "join", "bob"], "new user");
    const sys = await alice.next<F<"system">>("system");
    assert.deepEqual([sys.room, sys.event, sys.user], ["ops", "join", "bob"]);
    bob.send({ type: "history", room: "ops", before: joined.history[0].id, limit: 20 });
    const page = await bob.next<F<"history">>("history");
    assert.deepEqual(
      page.messages.map((m) => m.text),
      Array.from({ length: 10 }, (_, i) => `m${i + 1}`),
    );
    assert.equal(page.more, false);
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("server: join with since resumes, and reports a gap when history was trimmed", async () => {
  await using t = await startTestServer({ users: USERS, args: ["--history", "5"] });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  try {
    for (let i = 1; i <= 8; i++) {
      alice.send({ type: "send", room: "general", text: `m${i}`, ref: `r${i}` });
    }
    await alice.next((f) => f.type === "message" && f.ref === "r8");
    alice.send({ type: "join", room: "general", since: 6 });
    const resumed = await alice.next<F<"joined">>("joined");
    assert.deepEqual(resumed.history.map((m) => m.id), [7, 8]);
    assert.equal(resumed.gap, undefined);
    alice.send({ type: "join", room: "general", since: 1 });
    const gapped = await alice.next<F<"joined">>("joined");
    assert.deepEqual(gapped.history.map((m) => m.id), [4, 5, 6, 7, 8]);
    assert.equal(gapped.gap, true, "messages 2-3 are gone: the client must know");
    alice.send({ type: "history", room: "general", since: 2 });
    const h = await alice.next<F<"history">>("history");
    assert.equal(h.gap, true);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("server: a direct message reaches both users' connections and no one else", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const bob2 = await signIn(t.ws, "bob", USERS.bob);
  const carol = await signIn(t.ws, "carol", USERS.carol);
  try {
    alice.send({ type: "send", to: "bob", text: "secret", ref: "d1" });
    const own = await alice.next<F<"message">>("message");
    assert.deepEqual([own.to, own.from, own.ref, own.room], ["bob", "alice", "d1", undefined]);
    for (const b of [bob, bob2]) {
      const m = await b.next<F<"message">>("message");
      assert.deepEqual([m.to, m.from, m.text, m.ref], ["bob", "alice", "secret", undefined]);
    }
    // Barrier: a room message sent after the DM reaches carol; the DM would have come first.
    alice.send({ type: "send", room: "general", text: "public" });
    const pub = await carol.next<F<"message">>("message");
    assert.equal(pub.text, "public");
    assert.deepEqual(
      carol.all.filter((f) => f.type === "message").map((f) => (f as F<"message">).text),
      ["public"],
    );
    // DM history from either side; carol cannot read it.
    bob.send({ type: "history", to: "alice" });
    const h = await bob.next<F<"history">>("history");
    assert.deepEqual(h.messages.map((m) => m.text), ["secret"]);
    assert.equal(h.to, "alice");
    carol.send({ type: "search", q: "secret" });
    const s = await carol.next<F<"search">>("search");
    assert.deepEqual(s.messages, []);
    alice.send({ type: "send", to: "nobody", text: "hi", ref: "d2" });
    const err = await alice.next<F<"error">>("error");
    assert.deepEqual([err.code, err.ref], ["unknown_user", "d2"]);
  } finally {
    await closeAll(alice, bob, bob2, carol);
  }
});

Deno.test("server: typing reaches the others, clears after silence and on send", async () => {
  await using t = await startTestServer({ users: USERS, typingTimeout: 300, tickInterval: 20 });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    alice.send({ type: "typing", room: "general", active: true });
    const on = await bob.next<F<"typing">>("typing");
    assert.deepEqual([on.room, on.user, on.active], ["general", "alice", true]);
    const off = await bob.next<F<"typing">>("typing");
    assert.deepEqual([off.user, off.active], ["alice", false], "cleared after silence");
    alice.send({ type: "typing", room: "general", active: true });
    await bob.next((f) => f.type === "typing" && f.active);
    alice.send({ type: "send", room: "general", text: "done typing" });
    const cleared = await bob.next((f) => f.type === "typing" || f.type === "message");
    assert.deepEqual([cleared.type, (cleared as F<"typing">).active], ["typing", false]);
    await alice.barrier();
    assert.equal(
      alice.all.filter((f) => f.type === "typing").length,
      0,
      "the typist hears nothing",
    );
    alice.send({ type: "typing", to: "bob", active: true });
    const dm = await bob.next<F<"typing">>("typing");
    assert.deepEqual([dm.to, dm.user, dm.active], ["bob", "alice", true]);
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("server: presence counts a user with two tabs once", async () => {
  await using t = await startTestServer({ users: USERS, tickInterval: 20 });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  let alice2: TestClient | undefined, bob: TestClient | undefined;
  try {
    assert.deepEqual(alice.welcome.online, ["alice"]);
    alice2 = await signIn(t.ws, "alice", USERS.alice);
    bob = await signIn(t.ws, "bob", USERS.bob);
    await alice.next((f) => f.type === "presence" && f.online?.join() === "alice,bob");
    await alice2.close();
    bob.send({ type: "send", room: "general", text: "barrier" });
    await alice.next("message");
    await alice.barrier();
    const last = alice.all.filter((f) => f.type === "presence").at(-1) as F<"presence">;
    assert.deepEqual(last.online, ["alice", "bob"], "alice is still online with one tab");
    await bob.close();
    await alice.next((f) => f.type === "presence" && f.online?.join() === "alice");
  } finally {
    await closeAll(alice, alice2, bob);
  }
});

Deno.test("server: open mode lets anyone in with a free name and refuses a taken one", async () => {
  await using t = await startTestServer();
  const a = await signIn(t.ws, "dave");
  const c = await TestClient.connect(t.ws);
  try {
    assert.equal(a.welcome.mode, "open");
    c.send({ type: "auth", username: "dave" });
    const err = await c.next<F<"error">>("error");
    assert.equal(err.code, "name_taken");
    assert.match(err.message, /"dave" is in use/);
    const closed = await c.waitClose();
    assert.equal(closed.code, 4009);
    // The token lets the same person open a second tab.
    const tab = await TestClient.connect(t.ws);
    tab.send({ type: "auth", token: a.welcome.token });
    const w = await tab.next<F<"welcome">>("welcome");
    assert.equal(w.user, "dave");
    await tab.close();
  } finally {
    await closeAll(a, c);
  }
});

Deno.test("server: wrong password, unknown user and bad token are refused with auth_failed", async (t) => {
  await using s = await startTestServer({ users: USERS });
  for (
    const [name, frame] of [
      ["wrong password", { type: "auth", username: "alice", password: "nope-nope" }],
      ["unknown user", { type: "auth", username: "mallory", password: "whatever1" }],
      ["no password", { type: "auth", username: "alice" }],
      ["tampered token", { type: "auth", token: "v1.eyJ1IjoiYWxpY2UiLCJlIjo5OTk5OTk5OTk5fQ.AAAA" }],
    ] as const
  ) {
    await t.step(name, async () => {
      const c = await TestClient.connect(s.ws);
      try {
        c.send(frame);
        const err = await c.next<F<"error">>("error");
        assert.equal(err.code, "auth_failed");
        const closed = await c.waitClose();
        assert.equal(closed.code, 4003);
        assert.equal(
          c.all.filter((f) => f.type !== "error").length,
          0,
          "no chat data before sign-in",
        );
      } finally {
        await c.close();
      }
    });
  }
  await t.step("the seed-era first frame signs in", async () => {
    const c = await TestClient.connect(s.ws);
    try {
      c.send({ username: "bob", password: USERS.bob });
      const w = await c.next<F<"welcome">>("welcome");
      assert.equal(w.user, "bob");
    } finally {
      await c.close();
    }
  });
  await t.step("a token from welcome signs in again", async () => {
    const a = await signIn(s.ws, "alice", USERS.alice);
    const c = await TestClient.connect(s.ws);
    try {
      c.send({ type: "auth", token: a.welcome.token });
      const w = await c.next<F<"welcome">>("welcome");
      assert.equal(w.user, "alice");
      const [head, payload, sig] = a.welcome.token.split(".");
      const forged = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/")));
      forged.u = "bob";
      const c2 = await TestClient.connect(s.ws);
      c2.send({
        type: "auth",
        token: `${head}.${btoa(JSON.stringify(forged)).replace(/=+$/, "")}.${sig}`,
      });
      assert.equal((await c2.next<F<"error">>("error")).code, "auth_failed");
      await c2.close();
    } finally {
      await closeAll(a, c);
    }
  });
});

Deno.test("server: frames before sign-in, and a silent socket, are cut off", async () => {
  await using t = await startTestServer({ users: USERS, authTimeout: 200, tickInterval: 20 });
  const early = await TestClient.connect(t.ws);
  const silent = await TestClient.connect(t.ws);
  try {
    early.send({ type: "join", room: "ops" });
    const err = await early.next<F<"error">>("error");
    assert.equal(err.code, "not_authenticated");
    assert.equal((await early.waitClose()).code, 4001);
    const timeout = await silent.next<F<"error">>("error");
    assert.equal(timeout.code, "not_authenticated");
    assert.equal((await silent.waitClose()).code, 4001);
  } finally {
    await closeAll(early, silent);
  }
});

Deno.test("server: every bad frame gets a clear error, the sender stays connected and nobody else hears it", async (t) => {
  await using s = await startTestServer({ users: USERS });
  const alice = await signIn(s.ws, "alice", USERS.alice);
  const bob = await signIn(s.ws, "bob", USERS.bob);
  const cases: [string, unknown, string, RegExp][] = [
    ["malformed JSON", "{not json", "bad_request", /not valid JSON/],
    ["a JSON array", "[1,2]", "bad_request", /JSON object/],
    ["binary frame", new Uint8Array([1, 2, 3]), "bad_request", /Binary frames/],
    ["unknown type", { type: "dance" }, "bad_request", /Unknown frame type "dance"/],
    ["missing type", { room: "general" }, "bad_request", /"type" is required/],
    ["missing text", { type: "send", room: "general" }, "bad_request", /"text" is required/],
    [
      "text of the wrong type",
      { type: "send", room: "general", text: 42 },
      "bad_request",
      /"text" must be a string/,
    ],
    ["empty text", { type: "send", room: "general", text: "" }, "bad_request", /empty/],
    ["whitespace text", { type: "send", room: "general", text: " \n\t " }, "bad_request", /empty/],
    [
      "text over the limit",
      { type: "send", room: "general", text: "x".repeat(4097) },
      "too_large",
      /4096 bytes/,
    ],
    [
      "multibyte text over the limit",
      { type: "send", room: "general", text: "é".repeat(2049) },
      "too_large",
      /4096/,
    ],
    [
      "frame over 64 KB",
      JSON.stringify({ type: "send", room: "general", text: "y".repeat(70_000) }),
      "too_large",
      /65536/,
    ],
    ["missing room", { type: "send", text: "hi" }, "bad_request", /"room"/],
    ["bad room name", { type: "join", room: "no spaces" }, "bad_request", /Invalid room name/],
    [
      "too long room name",
      { type: "join", room: "r".repeat(33) },
      "bad_request",
      /Invalid room name/,
    ],
    [
      "room and to together",
      { type: "send", room: "general", to: "bob", text: "x" },
      "bad_request",
      /not both/,
    ],
    [
      "since of the wrong type",
      { type: "join", room: "general", since: "5" },
      "bad_request",
      /"since"/,
    ],
    ["negative limit", { type: "history", room: "general", limit: -1 }, "bad_request", /"limit"/],
    [
      "room not joined",
      { type: "send", room: "secret", text: "hi" },
      "unknown_room",
      /join it first/,
    ],
    ["unknown user", { type: "send", to: "zed", text: "hi" }, "unknown_user", /"zed"/],
    ["leaving general", { type: "leave", room: "general" }, "bad_request", /general/],
    ["leaving a room one is not in", { type: "leave", room: "ops" }, "unknown_room", /not in room/],
    [
      "auth again",
      { type: "auth", username: "alice", password: "x" },
      "bad_request",
      /Already signed in/,
    ],
  ];
  try {
    for (const [name, frame, code, message] of cases) {
      await t.step(name, async () => {
        alice.send(frame);
        const err = await alice.next<F<"error">>("error");
        assert.equal(err.code, code);
        assert.match(err.message, message);
        await alice.barrier();
      });
    }
    await t.step("ref is echoed on errors about a send", async () => {
      alice.send({ type: "send", room: "general", text: "", ref: "bad1" });
      const err = await alice.next<F<"error">>("error");
      assert.equal(err.ref, "bad1");
    });
    await t.step("nothing was delivered and both still chat", async () => {
      alice.send({ type: "send", room: "general", text: "still here", ref: "ok" });
      const m = await bob.next<F<"message">>("message");
      assert.equal(m.text, "still here");
      assert.equal(m.id, 1, "no bad frame produced a message");
      assert.equal(bob.all.filter((f) => f.type === "error").length, 0);
    });
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("server: rooms are created on join, listed, left on every tab and kept across reconnects", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const alice2 = await signIn(t.ws, "alice", USERS.alice);
  try {
    alice.send({ type: "join", room: "ops" });
    const j1 = await alice.next<F<"joined">>("joined");
    const j2 = await alice2.next<F<"joined">>("joined");
    assert.equal(j1.room, "ops");
    assert.equal(j2.room, "ops", "the other tab joins too");
    alice2.send({ type: "send", room: "ops", text: "from tab 2" });
    assert.equal((await alice.next<F<"message">>("message")).text, "from tab 2");
    alice.send({ type: "rooms" });
    const rooms = await alice.next<F<"rooms">>("rooms");
    assert.deepEqual(rooms.rooms, [{ name: "general", members: 1 }, { name: "ops", members: 1 }]);
    await alice2.close();
    const again = await signIn(t.ws, "alice", USERS.alice);
    assert.deepEqual(again.welcome.rooms, ["general", "ops"], "membership belongs to the user");
    const conv = again.welcome.conversations.find((c) => c.room === "ops");
    // Its own message is never unread.
    assert.deepEqual(conv, { room: "ops", last: 1, read: 0, seq: 1, unread: 0 });
    again.send({ type: "leave", room: "ops" });
    assert.equal((await again.next<F<"left">>("left")).room, "ops");
    assert.equal((await alice.next<F<"left">>("left")).room, "ops");
    alice.send({ type: "send", room: "ops", text: "gone" });
    assert.equal((await alice.next<F<"error">>("error")).code, "unknown_room");
    await again.close();
  } finally {
    await closeAll(alice, alice2);
  }
});

Deno.test("server: read markers reach the user's other connections and come back in welcome", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const phone = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    bob.send({ type: "send", room: "general", text: "one" });
    bob.send({ type: "send", room: "general", text: "two", ref: "b2" });
    await bob.next((f) => f.type === "message" && f.ref === "b2");
    phone.send({ type: "read", room: "general", id: 2 });
    const r = await alice.next<F<"read">>("read");
    assert.deepEqual([r.room, r.id], ["general", 2]);
    await phone.barrier();
    assert.equal(
      phone.all.filter((f) => f.type === "read").length,
      0,
      "the reader's own tab is not echoed",
    );
    assert.equal(
      bob.all.filter((f) => f.type === "read").length,
      0,
      "others never see read markers",
    );
    const later = await signIn(t.ws, "alice", USERS.alice);
    assert.deepEqual(later.welcome.conversations.find((c) => c.room === "general"), {
      room: "general",
      last: 2,
      read: 2,
      seq: 2,
      unread: 0,
    });
    await later.close();
  } finally {
    await closeAll(alice, phone, bob);
  }
});

Deno.test("server: users.json edits apply without a restart; a broken file keeps the last good set", async () => {
  await using t = await startTestServer({ users: { alice: "alice-pass" }, reloadInterval: 50 });
  const alice = await signIn(t.ws, "alice", "alice-pass");
  try {
    await Deno.writeTextFile(
      `${t.dir}/users.json`,
      JSON.stringify({ alice: "alice-pass", bob: "bob-pass1" }),
    );
    await waitUntil(() => t.server.auth.has("bob"), "bob is loaded");
    const bob = await signIn(t.ws, "bob", "bob-pass1");
    await Deno.writeTextFile(`${t.dir}/users.json`, "{ broken");
    await waitUntil(
      () => t.log.some((l) => l.includes("keeping the 2 users")),
      "the error is logged",
    );
    assert.ok(t.server.auth.has("bob"));
    await Deno.writeTextFile(`${t.dir}/users.json`, JSON.stringify({ alice: "alice-pass" }));
    const err = await bob.next<F<"error">>("error");
    assert.equal(err.code, "auth_failed");
    assert.equal((await bob.waitClose()).code, 4003, "a removed user's session ends");
    await alice.barrier();
    await bob.close();
  } finally {
    await closeAll(alice);
  }
});

Deno.test("server: /healthz reports status, connections, rooms and uptime", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  try {
    const res = await fetch(`${t.http}/healthz`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type")!, /application\/json/);
    const body = await res.json();
    assert.equal(body.status, "ok");
    assert.equal(body.connections, 1);
    assert.equal(body.rooms, 1);
    assert.equal(typeof body.uptime, "number");
  } finally {
    await alice.close();
  }
});

Deno.test("server: welcome announces the limits the client must pace itself to", async () => {
  await using t = await startTestServer({
    args: ["--rate", "7", "--burst", "9", "--max-message", "1000"],
  });
  const c = await signIn(t.ws, "pacer");
  try {
    assert.deepEqual(c.welcome.limits, {
      rate: 7,
      burst: 9,
      maxMessage: 1000,
      roomMentionMax: 100,
    });
  } finally {
    await c.close();
  }
});

Deno.test("startServer() closes what it opened when a step after listening throws", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-start-" });
  try {
    const port = freePort();
    const config = parseConfig([
      "--port",
      String(port),
      "--host",
      "127.0.0.1",
      "--users",
      `${dir}/users.json`,
      "--ngrok-token",
      "tok",
    ], {});
    let closed = 0;
    const store = new MemoryStore();
    const close = store.close.bind(store);
    store.close = () => {
      closed++;
      return close();
    };
    // An opener that throws instead of rejecting gets past openTunnel()'s own handling.
    const tunnel = () => {
      throw new Error("the tunnel library broke");
    };
    await assert.rejects(
      startServer(config, { store, log: memoryLogger(), static: () => new Response(null), tunnel }),
      /the tunnel library broke/,
    );
    assert.equal(closed, 1, "the store is closed");
    // The listener is gone too (and the sanitizers see no leaked worker or socket).
    const again = Deno.listen({ hostname: "127.0.0.1", port });
    again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
