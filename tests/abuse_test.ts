/**
 * Flood control and sign-in throttling. Room creation limits, typing floods
 * and the per-connection frame bucket need no socket: they run on the
 * in-memory hub harness (tests/hub_harness.ts). On real servers stay only the
 * checks that need real sockets: sign-in throttling (held answers are paced
 * by real timers and the password hasher's worker, and the refusals end in
 * close codes on the wire) and connection limits (the client address comes
 * from X-Forwarded-For on the HTTP upgrade, and refusals close the socket
 * with 4029).
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, signIn, startTestServer, TestClient, waitUntil } from "./helpers.ts";
import { send, setup } from "./hub_harness.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1", carol: "carol-pass" };

/** Connects as if from `addr` (the server trusts X-Forwarded-For in these tests). */
function connectFrom(url: string, addr: string): Promise<TestClient> {
  return TestClient.connect(url, { headers: { "x-forwarded-for": addr } });
}

/** Sends a sign-in from `addr` and resolves the first answer. */
async function attempt(
  url: string,
  addr: string,
  username: string,
  password: string,
): Promise<{ client: TestClient; answer: Promise<ServerFrame> }> {
  const client = await connectFrom(url, addr);
  client.send({ type: "auth", username, password });
  return {
    client,
    answer: client.next((f) => f.type === "welcome" || f.type === "error"),
  };
}

Deno.test("Hub sign-in throttle: failures on a name are spaced out, then refused with retryAfter", async () => {
  await using t = await startTestServer({
    users: USERS,
    args: ["--trust-proxy"],
    tickInterval: 20,
    throttle: { userFree: 2, addrFree: 100, baseDelay: 400, maxWait: 1500 },
  });
  const clients: TestClient[] = [];
  try {
    // Two free failures, answered at once.
    for (let i = 0; i < 2; i++) {
      const a = await attempt(t.ws, "10.6.6.6", "bob", "wrong-guess");
      clients.push(a.client);
      assert.equal(((await a.answer) as F<"error">).code, "auth_failed");
      assert.equal((await a.client.waitClose()).code, 4003);
    }
    // Four guesses at once: the first goes now, two wait 400 and 1200 ms, and the last, which
    // would have to wait 2800 ms (more than maxWait), is refused.
    const order: string[] = [];
    const guesses = await Promise.all(
      [0, 1, 2, 3].map(() => attempt(t.ws, "10.6.6.6", "bob", "wrong-guess")),
    );
    clients.push(...guesses.map((g) => g.client));
    const answers = guesses.map((g, i) =>
      g.answer.then((f) => {
        order.push(`guess${i}`);
        return f as F<"error">;
      })
    );
    // Meanwhile carol signs in from elsewhere: not slowed by bob's attacker.
    const carol = await attempt(t.ws, "10.0.0.7", "carol", USERS.carol);
    clients.push(carol.client);
    const welcome = await carol.answer;
    order.push("carol");
    assert.equal(welcome.type, "welcome");

    // The name itself is throttled: even bob's right password waits its turn, and the
    // held guesses put it beyond maxWait.
    const bob = await attempt(t.ws, "10.0.0.8", "bob", USERS.bob);
    clients.push(bob.client);
    const bobAnswer = await bob.answer;
    assert.equal(bobAnswer.type, "error");
    assert.equal((bobAnswer as F<"error">).code, "rate_limited");

    const codes = (await Promise.all(answers)).map((e) => e.code).sort();
    assert.deepEqual(codes, ["auth_failed", "auth_failed", "auth_failed", "rate_limited"]);
    const limited = (await Promise.all(answers)).find((e) => e.code === "rate_limited")!;
    // 2.8 s from the guesses' arrival, rounded up; less if the machine was slow to admit them.
    assert.ok(limited.retryAfter! >= 1 && limited.retryAfter! <= 3, `${limited.retryAfter}`);
    assert.equal(
      limited.message,
      `Too many sign-in attempts: try again in ${limited.retryAfter} s`,
    );
    const limitedClient = guesses[(await Promise.all(answers)).indexOf(limited)].client;
    assert.equal((await limitedClient.waitClose()).code, 4029);
    assert.ok(
      order.indexOf("carol") < order.length - 1,
      `carol was answered before the held guesses: ${order.join(", ")}`,
    );

    assert.ok(t.log.every((l) => !l.startsWith("error:")), t.log.join("\n"));
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub sign-in throttle: one address guessing many names is slowed, others are not", async () => {
  await using t = await startTestServer({
    users: USERS,
    args: ["--trust-proxy"],
    tickInterval: 20,
    throttle: { userFree: 100, addrFree: 3, baseDelay: 5000, maxWait: 1000 },
  });
  const clients: TestClient[] = [];
  try {
    for (const name of ["alice", "bob", "carol"]) {
      const a = await attempt(t.ws, "10.6.6.6", name, "wrong-guess");
      clients.push(a.client);
      assert.equal(((await a.answer) as F<"error">).code, "auth_failed");
    }
    const fourth = await attempt(t.ws, "10.6.6.6", "dave", "wrong-guess");
    clients.push(fourth.client);
    assert.equal(((await fourth.answer) as F<"error">).code, "auth_failed");
    const fifth = await attempt(t.ws, "10.6.6.6", "alice", USERS.alice);
    clients.push(fifth.client);
    const refused = (await fifth.answer) as F<"error">;
    assert.equal(refused.code, "rate_limited");
    // The 5 s delay counts from the last failure: a slow machine may take a second or more to get here.
    assert.ok(
      refused.retryAfter !== undefined && refused.retryAfter >= 1 && refused.retryAfter <= 5,
      `retryAfter ${refused.retryAfter}`,
    );
    assert.match(refused.message, /try again in [1-5] s/);
    // The names themselves are not locked: alice signs in from her own address.
    const alice = await attempt(t.ws, "10.0.0.1", "alice", USERS.alice);
    clients.push(alice.client);
    assert.equal((await alice.answer).type, "welcome");
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub sign-in throttle: a correct login resets its name and token sign-ins are never throttled", async () => {
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 2, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  const clients: TestClient[] = [];
  try {
    const first = await signIn(t.ws, "alice", USERS.alice);
    clients.push(first);
    for (let i = 0; i < 2; i++) {
      const a = await attempt(t.ws, "127.0.0.1", "alice", "typo-typo");
      clients.push(a.client);
      assert.equal(((await a.answer) as F<"error">).code, "auth_failed");
    }
    const ok = await attempt(t.ws, "127.0.0.1", "alice", USERS.alice);
    clients.push(ok.client);
    assert.equal((await ok.answer).type, "welcome", "two typos, then the right password");
    for (let i = 0; i < 2; i++) {
      const a = await attempt(t.ws, "127.0.0.1", "alice", "typo-typo");
      clients.push(a.client);
      assert.equal(((await a.answer) as F<"error">).code, "auth_failed", "the count started over");
    }
    const a = await attempt(t.ws, "127.0.0.1", "alice", "typo-typo");
    clients.push(a.client);
    assert.equal(((await a.answer) as F<"error">).code, "auth_failed");
    const locked = await attempt(t.ws, "127.0.0.1", "alice", USERS.alice);
    clients.push(locked.client);
    assert.equal(((await locked.answer) as F<"error">).code, "rate_limited");
    // A session token is an HMAC, not a guess: it is never held back.
    const tab = await TestClient.connect(t.ws);
    clients.push(tab);
    tab.send({ type: "auth", token: first.welcome.token });
    assert.equal((await tab.next<F<"welcome">>("welcome")).user, "alice");
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub sign-up: every registration counts against the address", async () => {
  await using t = await startTestServer({
    users: USERS,
    args: ["--allow-signup"],
    tickInterval: 20,
    throttle: { addrFree: 2, baseDelay: 60_000, maxWait: 1000 },
  });
  const clients: TestClient[] = [];
  try {
    for (const name of ["new1", "new2"]) {
      const c = await TestClient.connect(t.ws);
      clients.push(c);
      c.send({ type: "register", username: name, password: "long-enough" });
      assert.equal((await c.next<F<"welcome">>("welcome")).user, name);
    }
    for (const name of ["new3", "new4"]) {
      const c = await TestClient.connect(t.ws);
      clients.push(c);
      c.send({ type: "register", username: name, password: "long-enough" });
      const answer = await c.next((f) => f.type === "welcome" || f.type === "error");
      if (name === "new3") assert.equal(answer.type, "welcome", "third: spaced, not yet refused");
      else {
        assert.equal((answer as F<"error">).code, "rate_limited");
        assert.equal((await c.waitClose()).code, 4029);
      }
    }
    assert.equal(t.server.auth.has("new4"), false);
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub connection limits: per user and per address, with a clear error and close code 4029", async (t) => {
  await using s = await startTestServer({
    users: USERS,
    args: ["--trust-proxy", "--max-conns-per-user", "2", "--max-conns-per-addr", "3"],
  });
  await t.step("a user's third connection is refused; the first two keep working", async () => {
    const a1 = await signIn(s.ws, "alice", USERS.alice);
    const a2 = await signIn(s.ws, "alice", USERS.alice);
    const a3 = await TestClient.connect(s.ws);
    try {
      a3.send({ type: "auth", username: "alice", password: USERS.alice });
      const err = await a3.next<F<"error">>("error");
      assert.equal(err.code, "rate_limited");
      assert.equal(
        err.message,
        'Too many connections for "alice" (at most 2): close another tab or device',
      );
      assert.equal((await a3.waitClose()).code, 4029);
      assert.equal(a3.all.filter((f) => f.type !== "error").length, 0);
      a1.send({ type: "send", room: "general", text: "still here", ref: "s" });
      await a1.next((f) => f.type === "message" && f.ref === "s");
      await a2.next((f) => f.type === "message" && f.text === "still here");
      await a2.close();
      const again = await signIn(s.ws, "alice", USERS.alice);
      await again.close();
    } finally {
      await closeAll(a1, a2, a3);
    }
  });
  await t.step("an address's fourth connection is refused before sign-in", async () => {
    // Half-open sockets from the address do not count against its signed-in quota…
    const idle = await Promise.all([1, 2, 3, 4, 5].map(() => connectFrom(s.ws, "10.1.1.1")));
    const mine = await Promise.all(
      (["alice", "bob", "carol"] as const).map(async (name) => {
        const c = await connectFrom(s.ws, "10.1.1.1");
        c.send({ type: "auth", username: name, password: USERS[name] });
        await c.next("welcome");
        return c;
      }),
    );
    await closeAll(...idle);
    const other = await connectFrom(s.ws, "10.1.1.2");
    let fourth: TestClient | undefined, fifth: TestClient | undefined;
    try {
      fourth = await connectFrom(s.ws, "10.1.1.1");
      const err = await fourth.next<F<"error">>("error");
      assert.equal(err.code, "rate_limited");
      assert.equal(err.retryAfter, 10);
      assert.match(err.message, /^Too many connections from your address \(at most 3\)/);
      const closed = await fourth.waitClose();
      assert.deepEqual([closed.code, closed.reason], [4029, "too many connections"]);
      other.send({ type: "auth", username: "bob", password: USERS.bob });
      await other.next("welcome");
      await mine[0].close();
      await waitUntil(() => s.server.hub.connections === 3, "the closed sockets are forgotten");
      fifth = await connectFrom(s.ws, "10.1.1.1");
      fifth.send({ type: "auth", username: "carol", password: USERS.carol });
      await fifth.next("welcome");
    } finally {
      await closeAll(...mine, other, fourth, fifth);
    }
  });
  await t.step(
    "only the address the proxy appended counts, not what the client claims",
    async () => {
      // nginx appends the address it saw: "<what the client sent>, <real address>".
      const names = ["alice", "bob", "carol"] as const;
      const mine = await Promise.all(
        ["1.1.1.1", "2.2.2.2", "3.3.3.3"].map(async (fake, i) => {
          const c = await connectFrom(s.ws, `${fake}, 10.2.2.2`);
          c.send({ type: "auth", username: names[i], password: USERS[names[i]] });
          await c.next("welcome");
          return c;
        }),
      );
      let fourth: TestClient | undefined;
      try {
        fourth = await connectFrom(s.ws, "4.4.4.4, 10.2.2.2");
        assert.equal((await fourth.next<F<"error">>("error")).code, "rate_limited");
        assert.equal((await fourth.waitClose()).code, 4029);
      } finally {
        await closeAll(...mine, fourth);
      }
    },
  );
});

Deno.test("Hub room limit: the whole chat holds at most --max-rooms rooms", async () => {
  await using h = await setup({ limits: { maxRooms: 3 } });
  const eve = await h.connect("eve");
  const zed = await h.connect("zed");
  for (const room of ["r1", "r2"]) {
    send(h.hub, eve.conn, { type: "join", room });
    await h.until(() => eve.socket.take("joined").length === 1);
  }
  send(h.hub, zed.conn, { type: "join", room: "r3" });
  await h.until(() => zed.socket.frames.some((f) => f.type === "error"));
  const err = zed.socket.take("error")[0] as F<"error">;
  assert.equal(err.code, "limit_reached");
  assert.equal(
    err.message,
    'Cannot create room "r3": this chat has 3 rooms, the most allowed: join one of them',
  );
  send(h.hub, zed.conn, { type: "join", room: "r2" });
  await h.until(() => zed.socket.frames.some((f) => f.type === "joined"));
  assert.equal(
    (zed.socket.take("joined")[0] as F<"joined">).room,
    "r2",
    "existing rooms stay open",
  );
});

Deno.test("Hub room limit: a user may create --max-rooms-per-user rooms, and still join others", async () => {
  await using h = await setup({ users: USERS, limits: { maxRoomsPerUser: 2 } });
  // The first user to sign in creates the lobby; that is one of their rooms (see docs/security.md).
  const bob = await h.connect("bob", USERS.bob);
  const alice = await h.connect("alice", USERS.alice);
  /** Waits for the next frame of `type` on `socket` and takes it. */
  const next = async <T extends ServerFrame["type"]>(
    socket: typeof alice.socket,
    type: T,
  ): Promise<F<T>> => {
    await h.until(() => socket.frames.some((f) => f.type === type));
    const i = socket.frames.findIndex((f) => f.type === type);
    return socket.frames.splice(0, i + 1)[i] as F<T>;
  };
  for (const room of ["r1", "r2"]) {
    send(h.hub, alice.conn, { type: "join", room });
    assert.equal((await next(alice.socket, "joined")).room, room);
  }
  send(h.hub, alice.conn, { type: "join", room: "r3" });
  const err = await next(alice.socket, "error");
  assert.equal(err.code, "limit_reached");
  assert.equal(
    err.message,
    'Cannot create room "r3": you have created 2 rooms, the most allowed',
  );
  send(h.hub, alice.conn, { type: "send", room: "r3", text: "hello?", ref: "x" });
  assert.equal((await next(alice.socket, "error")).code, "unknown_room");
  send(h.hub, alice.conn, { type: "rooms" });
  const rooms = await next(alice.socket, "rooms");
  assert.deepEqual(rooms.rooms.map((r) => r.name), ["general", "r1", "r2"]);
  // Rooms made by others are open to her, and leaving does not give back a creation.
  send(h.hub, bob.conn, { type: "join", room: "bobs" });
  await next(bob.socket, "joined");
  send(h.hub, bob.conn, { type: "join", room: "bobs2" });
  assert.equal((await next(bob.socket, "error")).code, "limit_reached", "general + bobs");
  send(h.hub, alice.conn, { type: "join", room: "bobs" });
  assert.equal((await next(alice.socket, "joined")).room, "bobs");
  send(h.hub, alice.conn, { type: "leave", room: "r1" });
  await next(alice.socket, "left");
  send(h.hub, alice.conn, { type: "join", room: "r4" });
  assert.equal((await next(alice.socket, "error")).code, "limit_reached");
  send(h.hub, alice.conn, { type: "join", room: "r1" });
  assert.equal((await next(alice.socket, "joined")).room, "r1", "r1 still exists");
});

Deno.test("Hub typing limit: toggling typing on and off cannot flood a room", async () => {
  await using h = await setup({ users: USERS, limits: { frameRate: 1000, frameBurst: 1000 } });
  const alice = await h.connect("alice", USERS.alice);
  const bob = await h.connect("bob", USERS.bob);
  const started = h.now();
  for (let i = 0; i < 400; i++) {
    send(h.hub, alice.conn, { type: "typing", room: "general", active: i % 2 === 0 });
  }
  const elapsed = h.now() - started;
  // Alice's last toggle was "off": bob ends up seeing that, as the hub's timer
  // (the server's 20 ms tick) gives the typist tokens back.
  await h.until(() => {
    const last = bob.socket.frames.filter((f) => f.type === "typing").at(-1) as
      | F<"typing">
      | undefined;
    if (last && last.active === false) return true;
    h.advance(20);
    return false;
  });
  const seen = bob.socket.frames.filter((f) => f.type === "typing") as F<"typing">[];
  assert.ok(
    seen.length <= 4 + Math.ceil((h.now() - started) / 1000) + 1,
    `bob got ${seen.length} typing events for 400 toggles in ${elapsed} ms`,
  );
  for (let i = 1; i < seen.length; i++) {
    assert.notEqual(seen[i].active, seen[i - 1].active, "every event is a change");
  }
  assert.ok(seen.every((f) => f.user === "alice" && f.room === "general"));
  assert.equal(alice.socket.take("error").length, 0, "typing is never an error");
});

Deno.test("Hub frame bucket: a flood gets rate_limited with retryAfter, and nothing else is lost", async () => {
  await using h = await setup({ users: USERS, limits: { frameRate: 5, frameBurst: 20 } });
  const alice = await h.connect("alice", USERS.alice);
  const bob = await h.connect("bob", USERS.bob);
  for (let i = 0; i < 50; i++) send(h.hub, alice.conn, { type: "ping" });
  await h.until(() =>
    alice.socket.frames.filter((f) => f.type === "pong" || f.type === "error").length === 50
  );
  const pongs = alice.socket.frames.filter((f) => f.type === "pong").length;
  const limited = alice.socket.frames.filter((f) => f.type === "error") as F<"error">[];
  // The burst of 20 less the auth frame (the harness clock stands still: nothing refills).
  assert.ok(pongs >= 19 && pongs < 50, `${pongs} pongs`);
  assert.ok(limited.every((e) => e.code === "rate_limited" && e.retryAfter === 1));
  assert.equal(alice.socket.closed, null, "a flood is slowed, not disconnected");
  assert.equal(alice.socket.readyState, WebSocket.OPEN);
  send(h.hub, bob.conn, { type: "send", room: "general", text: "unaffected", ref: "b" });
  await h.until(() =>
    bob.socket.frames.some((f) => f.type === "message" && f.ref === "b") &&
    alice.socket.frames.some((f) => f.type === "message" && f.text === "unaffected")
  );
});
