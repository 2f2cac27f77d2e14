import assert from "node:assert/strict";
import { CloseCode, type ServerFrame } from "../protocol.ts";
import { FakeSocket, joinElsewhere, send, setup } from "./hub_harness.ts";

/** Whether `socket` got a message with `text`, live or in a joined's history. */
function sees(socket: FakeSocket, text: string): boolean {
  return socket.frames.some((f) =>
    (f.type === "message" && f.text === text) ||
    (f.type === "joined" && f.history.some((m) => m.text === text))
  );
}

Deno.test("Hub delivers a room message to every member once, in order", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  for (let i = 1; i <= 5; i++) {
    send(h.hub, a.conn, { type: "send", room: "general", text: `m${i}`, ref: `r${i}` });
  }
  await h.until(() =>
    b.socket.frames.filter((f) => f.type === "message").length === 5 &&
    a.socket.frames.filter((f) => f.type === "message").length === 5
  );
  const got = b.socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  assert.deepEqual(got.map((m) => m.text), ["m1", "m2", "m3", "m4", "m5"]);
  assert.deepEqual(got.map((m) => m.id), [1, 2, 3, 4, 5]);
  const own = a.socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  assert.deepEqual(own.map((m) => m.ref), ["r1", "r2", "r3", "r4", "r5"]);
});

Deno.test("Hub.tick() clears typing after the timeout and ends sign-in windows", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  const c = await h.connect("carol");
  const typing = (user: string, active: boolean) => () =>
    b.socket.frames.some((f) => f.type === "typing" && f.user === user && f.active === active);
  send(h.hub, a.conn, { type: "typing", room: "general", active: true });
  await h.until(typing("alice", true));
  assert.deepEqual(b.socket.take("typing"), [{
    type: "typing",
    room: "general",
    user: "alice",
    active: true,
  }]);
  h.advance(4000);
  send(h.hub, a.conn, { type: "typing", room: "general", active: true });
  // Sentinel: carol's flag, sent after alice's repeat, takes the same path to bob.
  send(h.hub, c.conn, { type: "typing", room: "general", active: true });
  await h.until(typing("carol", true));
  assert.deepEqual(
    b.socket.take("typing").filter((f) => f.type === "typing" && f.user === "alice"),
    [],
    "repeating active only extends the flag",
  );
  h.advance(4000);
  // Sentinel: carol's flag cleared after the tick that would have expired alice's.
  send(h.hub, c.conn, { type: "typing", room: "general", active: false });
  await h.until(typing("carol", false));
  assert.deepEqual(
    b.socket.take("typing").filter((f) => f.type === "typing" && f.user === "alice"),
    [],
    "extended: not expired yet",
  );
  h.advance(1001);
  await h.until(typing("alice", false));
  assert.deepEqual(b.socket.take("typing"), [{
    type: "typing",
    room: "general",
    user: "alice",
    active: false,
  }]);

  const silent = new FakeSocket();
  h.hub.open(silent, { addr: "127.0.0.1" });
  h.advance(10_001);
  await h.until(() => silent.closed !== null);
  assert.equal((silent.take("error")[0] as { code: string }).code, "not_authenticated");
  assert.equal(silent.closed?.code, 4001);
});

Deno.test("Hub: the time to sign in counts from the socket's open, not from its upgrade", async () => {
  await using h = await setup();
  // Under a storm of handshakes the socket may open seconds after its upgrade was accepted.
  const late = new FakeSocket();
  const conn = h.hub.open(late, { addr: "127.0.0.1" });
  h.advance(9_000);
  h.hub.opened(conn);
  h.advance(9_000);
  await h.until(() => true);
  assert.equal(late.closed, null, "18 s after the upgrade, 9 s after the open: still waiting");
  h.advance(1_001);
  await h.until(() => late.closed !== null);
  assert.equal((late.take("error")[0] as { code: string }).code, "not_authenticated");
  assert.equal((late.closed as { code?: number } | null)?.code, 4001);
  // A socket that never opens times out from its upgrade.
  const never = new FakeSocket();
  h.hub.open(never, { addr: "127.0.0.1" });
  h.advance(10_001);
  await h.until(() => never.closed !== null);
  assert.equal(never.closed?.code, 4001);
});

Deno.test("Hub presence counts users, not connections, and coalesces changes per tick", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b1 = await h.connect("bob");
  const b2 = new FakeSocket();
  const b2conn = h.hub.open(b2, { addr: "127.0.0.1" });
  h.hub.receive(b2conn, JSON.stringify({ type: "auth", token: b1.welcome.token }));
  await h.until(() => b2.frames.some((f) => f.type === "welcome"));
  assert.equal(b2.take("welcome").length, 1, "the token opens a second tab");
  const presence = () => a.socket.frames.some((f) => f.type === "presence");
  h.advance(100);
  await h.until(presence);
  assert.deepEqual(a.socket.take("presence"), [{ type: "presence", online: ["alice", "bob"] }]);
  h.hub.close(b1.conn);
  h.advance(100);
  // Sentinel: carol coming online is the next presence change alice hears of.
  const c = await h.connect("carol");
  h.advance(100);
  await h.until(presence);
  assert.deepEqual(
    a.socket.take("presence"),
    [{ type: "presence", online: ["alice", "bob", "carol"] }],
    "bob still has a connection",
  );
  h.hub.close(b2conn);
  h.hub.close(c.conn);
  h.advance(100);
  await h.until(presence);
  assert.deepEqual(a.socket.take("presence"), [{ type: "presence", online: ["alice"] }]);
});

Deno.test("Hub sends joined before live messages and never duplicates history", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  send(h.hub, a.conn, { type: "join", room: "ops" });
  send(h.hub, a.conn, { type: "send", room: "ops", text: "first" });
  send(h.hub, b.conn, { type: "join", room: "ops" });
  send(h.hub, a.conn, { type: "send", room: "ops", text: "second" });
  // Sentinel for "never duplicates": a later message, delivered after any duplicate.
  send(h.hub, a.conn, { type: "send", room: "ops", text: "third" });
  await h.until(() => sees(b.socket, "third"));
  const frames = b.socket.frames.filter((f) => f.type === "joined" || f.type === "message");
  const joined = frames[0] as Extract<ServerFrame, { type: "joined" }>;
  assert.equal(joined.type, "joined");
  const seen = [
    ...joined.history.map((m) => m.text),
    ...frames.slice(1).map((f) => (f as { text: string }).text),
  ];
  assert.deepEqual(seen, ["first", "second", "third"], "each message once, in order");
});

Deno.test("Hub refuses a second sign-in with a name that is online (open mode)", async () => {
  await using h = await setup();
  await h.connect("alice");
  const socket = new FakeSocket();
  const conn = h.hub.open(socket, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", username: "alice" }));
  await h.until(() => socket.closed !== null);
  assert.equal((socket.take("error")[0] as { code: string }).code, "name_taken");
  assert.equal(socket.closed?.code, 4009);
  assert.equal(h.hub.connections, 1);
});

Deno.test("Hub queues frames sent before the welcome and handles them after it", async () => {
  await using h = await setup();
  const socket = new FakeSocket();
  const conn = h.hub.open(socket, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", username: "zoe" }));
  h.hub.receive(conn, JSON.stringify({ type: "join", room: "early" }));
  h.hub.receive(conn, JSON.stringify({ type: "send", room: "early", text: "hi", ref: "e1" }));
  await h.until(() => socket.frames.some((f) => f.type === "message"));
  const types = socket.frames.map((f) => f.type).filter((t) => t !== "presence");
  assert.deepEqual(types, ["welcome", "joined", "message"]);
});

Deno.test("Hub refuses a sign-in whose account changed while it was being checked", async () => {
  await using h = await setup({ users: { alice: "alice-pass", bob: "bob-pass1" } });
  const release = h.store.hold("touchUser");
  const socket = new FakeSocket();
  const conn = h.hub.open(socket, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", username: "alice", password: "alice-pass" }));
  await h.store.reached("touchUser"); // the password matched; the sign-in now waits on the store
  await Deno.writeTextFile(h.usersPath, JSON.stringify({ bob: "bob-pass1" }));
  assert.equal(await h.auth.reload(), true);
  h.hub.revalidate();
  release();
  await h.until(() => socket.closed !== null);
  assert.deepEqual(socket.take("welcome"), [], "alice was removed: no session");
  assert.equal((socket.take("error")[0] as { code: string }).code, "auth_failed");
  assert.equal(socket.closed?.code, 4003);
  assert.equal(h.hub.connections, 0);
});

Deno.test("Hub sends a message that lands during a join once, whether in history or live", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  send(h.hub, a.conn, { type: "join", room: "ops" });
  for (let i = 1; i <= 60; i++) send(h.hub, a.conn, { type: "send", room: "ops", text: `m${i}` });
  await h.until(() => sees(a.socket, "m60")); // the last, acknowledged or in alice's joined
  const release = h.store.hold("page");
  send(h.hub, b.conn, { type: "join", room: "ops" });
  await h.store.reached("page"); // bob's joined waits for its page
  send(h.hub, a.conn, { type: "send", room: "ops", text: "during" });
  await h.until(() => a.socket.frames.some((f) => f.type === "message" && f.text === "during"));
  release();
  // Sentinel: a later message reaches bob after "during" could have twice.
  send(h.hub, a.conn, { type: "send", room: "ops", text: "after" });
  await h.until(() => sees(b.socket, "after"));
  const joined = b.socket.take("joined")[0] as Extract<ServerFrame, { type: "joined" }>;
  assert.equal(joined.more, true, "older messages exist");
  const live = b.socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  const seen = [...joined.history, ...live].filter((m) => m.text === "during");
  assert.equal(seen.length, 1, "exactly once");
});

Deno.test("Hub lets nothing into a room whose join is refused, even frames sent right after it", async () => {
  await using h = await setup({ limits: { maxRoomsPerUser: 1 } });
  const b = await h.connect("bob"); // bob creates the lobby
  const a = await h.connect("alice");
  send(h.hub, a.conn, { type: "join", room: "first" });
  await h.until(() => a.socket.frames.some((f) => f.type === "joined"));
  assert.equal(a.socket.take("joined").length, 1, "the first room is within the quota");
  a.socket.take("message");
  const release = h.store.hold("roomExists");
  send(h.hub, a.conn, { type: "join", room: "second" });
  send(h.hub, a.conn, { type: "send", room: "second", text: "ghost", ref: "g1" });
  send(h.hub, a.conn, { type: "typing", room: "second", active: true });
  await h.store.reached("roomExists"); // the quota check is waiting on the store
  release();
  // The three answers are the join's refusal and the refusals of what followed it.
  await h.until(() => a.socket.frames.filter((f) => f.type === "error").length === 3);
  const errors = a.socket.take("error") as Extract<ServerFrame, { type: "error" }>[];
  // In any order: a send with a ref from a non-member goes on to the store, which
  // answers a resend of a message stored earlier (none here) and refuses the rest.
  assert.deepEqual(errors.map((e) => `${e.code} ${e.ref}`).sort(), [
    "limit_reached undefined",
    "unknown_room g1",
    "unknown_room undefined",
  ]);
  assert.deepEqual(a.socket.take("message"), [], "no acknowledgement for the refused room");
  assert.deepEqual(a.socket.take("joined"), []);
  assert.equal(await h.store.roomExists("second"), false, "the room was not created");
  assert.deepEqual((await h.store.page("second", { limit: 10 })).messages, [], "nothing stored");
  assert.deepEqual(b.socket.take("typing"), []);

  // Within the quota, a send right behind the join waits for it and is delivered.
  const release2 = h.store.hold("roomExists");
  send(h.hub, b.conn, { type: "join", room: "first" });
  send(h.hub, b.conn, { type: "send", room: "first", text: "right behind", ref: "b1" });
  await h.store.reached("roomExists");
  release2();
  await h.until(() =>
    b.socket.frames.some((f) => f.type === "message" && f.text === "right behind") &&
    a.socket.frames.some((f) => f.type === "message" && f.text === "right behind")
  );
  assert.deepEqual(b.socket.take("error"), []);
  const own = b.socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  assert.deepEqual(own.map((m) => [m.text, m.ref]), [["right behind", "b1"]]);
  const got = a.socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  assert.deepEqual(got.map((m) => m.text), ["right behind"]);
});

Deno.test("Hub keeps a room the user joined on another node while signing in here", async () => {
  await using h = await setup();
  const b = await h.connect("bob");
  send(h.hub, b.conn, { type: "join", room: "ops" });
  await h.until(() => b.socket.frames.some((f) => f.type === "joined"));
  const release = h.store.hold("roomsOf");
  const socket = new FakeSocket();
  const conn = h.hub.open(socket, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", username: "alice" }));
  await h.store.reached("roomsOf"); // alice's rooms were read; the answer is still on its way
  // Meanwhile alice (on another node) joins "ops": the store and the event say so.
  await joinElsewhere(h, "alice", "ops");
  // The hub handled the event: bob, in ops, hears of it.
  await h.until(() =>
    b.socket.frames.some((f) => f.type === "system" && f.user === "alice" && f.event === "join")
  );
  release();
  await h.until(() => socket.frames.some((f) => f.type === "welcome"));
  const welcome = socket.take("welcome")[0] as Extract<ServerFrame, { type: "welcome" }>;
  assert.deepEqual(welcome.rooms, ["general", "ops"]);
  send(h.hub, b.conn, { type: "send", room: "ops", text: "to ops" });
  await h.until(() => socket.frames.some((f) => f.type === "message" && f.text === "to ops"));
  const got = socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  assert.deepEqual(got.map((m) => m.text), ["to ops"], "alice gets the room's messages");
});

Deno.test("Hub forgets a connection that closes while its join waits for another", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const tab = new FakeSocket();
  const tabConn = h.hub.open(tab, { addr: "127.0.0.1" });
  h.hub.receive(tabConn, JSON.stringify({ type: "auth", token: a.welcome.token }));
  await h.until(() => tab.frames.some((f) => f.type === "welcome"));
  assert.equal(tab.take("welcome").length, 1);
  assert.equal(h.hub.roomsRouted, 1, "general");

  // Two tabs join the same new room; the second waits for the first and closes meanwhile.
  let release = h.store.hold("roomExists");
  send(h.hub, a.conn, { type: "join", room: "ops" });
  await h.store.reached("roomExists");
  send(h.hub, tabConn, { type: "join", room: "ops" }); // finds alice's join under way at once
  h.hub.close(tabConn);
  release();
  // The tab's join resumes (and stops, closed) before alice's joined is built.
  await h.until(() => a.socket.frames.some((f) => f.type === "joined"));
  assert.equal(a.socket.take("joined").length, 1, "the open tab joined");
  assert.deepEqual(tab.take("joined"), [], "nothing for the closed tab");

  // One connection joins a room twice and closes before either finishes.
  release = h.store.hold("roomExists");
  send(h.hub, a.conn, { type: "join", room: "dev" });
  send(h.hub, a.conn, { type: "join", room: "dev" });
  await h.store.reached("roomExists");
  h.hub.close(a.conn);
  release();
  await h.until(() => h.hub.connections === 0 && h.hub.roomsRouted === 0);
  assert.equal(h.hub.connections, 0);
  assert.equal(h.hub.roomsRouted, 0, "no room keeps a closed connection");
});

Deno.test("Hub forgets a room whose refused join outlived the user's connections", async () => {
  await using h = await setup({ limits: { maxRoomsPerUser: 1 } });
  await h.connect("bob"); // bob creates the lobby
  const a = await h.connect("alice");
  send(h.hub, a.conn, { type: "join", room: "first" });
  await h.until(() => a.socket.frames.some((f) => f.type === "joined"));
  const release = h.store.hold("roomExists");
  send(h.hub, a.conn, { type: "join", room: "second" });
  send(h.hub, a.conn, { type: "join", room: "second" });
  await h.store.reached("roomExists");
  h.hub.close(a.conn);
  release();
  // "second" is dropped once the refusal is handled, the last step of both joins.
  await h.until(() => h.hub.roomsRouted === 1);
  assert.equal(await h.store.roomExists("second"), false);
  assert.equal(h.hub.roomsRouted, 1, "only general, for bob");
});

Deno.test("Hub keeps a room joined elsewhere while a second sign-in outlives the first session", async () => {
  await using h = await setup();
  await h.connect("bob");
  const a = await h.connect("alice");
  const release = h.store.hold("roomsOf");
  const socket = new FakeSocket();
  const conn = h.hub.open(socket, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", token: a.welcome.token }));
  await h.store.reached("roomsOf"); // the second sign-in read alice's rooms; its answer is on its way
  await joinElsewhere(h, "alice", "ops");
  await h.until(() => a.socket.frames.some((f) => f.type === "joined"));
  assert.equal(a.socket.take("joined").length, 1, "the first session joined ops");
  h.hub.close(a.conn); // alice's only registered connection goes
  release();
  await h.until(() => socket.frames.some((f) => f.type === "welcome"));
  const welcome = socket.take("welcome")[0] as Extract<ServerFrame, { type: "welcome" }>;
  assert.deepEqual(welcome.rooms, ["general", "ops"]);
});

Deno.test("Hub never releases an expired name whose holder came back meanwhile", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  send(h.hub, b.conn, { type: "send", to: "alice", text: "for alice", ref: "d" });
  await h.until(() => sees(a.socket, "for alice") && sees(b.socket, "for alice"));
  const claims = h.store.claims;
  h.hub.close(a.conn);
  await h.until(() => h.store.claims > claims); // the close stamped alice's claim
  // 31 days later the sweep lists alice as stale; before it releases her, she is back.
  const release = h.store.hold("staleClaims");
  h.advance(31 * 24 * 3600_000);
  await h.store.reached("staleClaims");
  const back = new FakeSocket();
  const conn = h.hub.open(back, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", token: a.welcome.token }));
  await h.until(() => back.frames.some((f) => f.type === "welcome"));
  assert.equal(back.take("welcome").length, 1);
  const swept = h.store.claims;
  release();
  // The sweep's last step for an online holder: it stamps her claim instead.
  await h.until(() => h.store.claims > swept);
  assert.ok(!h.log.lines.some((l) => l.includes('Released the name "alice"')));
  assert.equal(back.closed, null, "still signed in");
  send(h.hub, conn, { type: "history", to: "bob" });
  await h.until(() => back.frames.some((f) => f.type === "history"));
  const page = back.take("history")[0] as Extract<ServerFrame, { type: "history" }>;
  assert.deepEqual(page.messages.map((m) => m.text), ["for alice"], "her DMs are kept");
});

Deno.test("Hub ends a sign-in under way when its session signs out", async (t) => {
  for (const mode of ["login", "open"] as const) {
    await t.step(mode, async () => {
      await using h = await setup(
        mode === "login" ? { users: { alice: "alice-pass", bob: "bob-pass1" } } : {},
      );
      const first = new FakeSocket();
      const c1 = h.hub.open(first, { addr: "127.0.0.1" });
      h.hub.receive(
        c1,
        JSON.stringify(
          mode === "login"
            ? { type: "auth", username: "alice", password: "alice-pass" }
            : { type: "auth", username: "alice" },
        ),
      );
      await h.until(() => first.frames.some((f) => f.type === "welcome"));
      const token = (first.take("welcome")[0] as Extract<ServerFrame, { type: "welcome" }>).token;
      // A second tab signs in with the token; the store holds it up mid-way.
      const release = h.store.hold("touchUser");
      const second = new FakeSocket();
      const c2 = h.hub.open(second, { addr: "127.0.0.1" });
      h.hub.receive(c2, JSON.stringify({ type: "auth", token }));
      await h.store.reached("touchUser");
      assert.equal(await h.hub.signOut(token), true);
      release();
      await h.until(() =>
        first.closed !== null && second.closed !== null && h.hub.connections === 0 &&
        h.hub.usersOnline === 0
      );
      for (const s of [first, second]) {
        assert.deepEqual(s.take("welcome"), [], "no session after the sign-out");
        assert.equal(s.closed?.code, 4003);
      }
      assert.equal(h.hub.connections, 0);
      assert.equal(h.hub.usersOnline, 0);
    });
  }
});

Deno.test("Hub frees a name claimed by a first sign-in that did not get through", async () => {
  await using h = await setup();
  const release = h.store.hold("touchUser");
  const gone = new FakeSocket();
  const conn = h.hub.open(gone, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", username: "alice" }));
  await h.store.reached("touchUser");
  h.hub.close(conn); // the tab was closed right after Enter
  release();
  await h.until(async () => (await h.store.nameClaim("alice")) === null);
  const again = await h.connect("alice");
  assert.equal(again.welcome.user, "alice");
});

Deno.test("Hub sends the replies a connection asked for one after another as its socket drains", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  for (let i = 0; i < 3; i++) send(h.hub, a.conn, { type: "history", room: "general" });
  // The socket is full: nothing more than what is on its way until it drains.
  a.socket.bufferedAmount = 1024 * 1024;
  // Sentinel: bob's history, asked after alice's, takes the same path on a free socket.
  send(h.hub, b.conn, { type: "history", room: "general" });
  await h.until(() => b.socket.frames.some((f) => f.type === "history"));
  const first = a.socket.take("history").length;
  assert.ok(first <= 1, `${first} sent into a full socket`);
  a.socket.bufferedAmount = 0;
  h.advance(100);
  await h.until(() => a.socket.frames.filter((f) => f.type === "history").length === 3 - first);
  assert.equal(a.socket.closed, null);
});

Deno.test("Hub runs two searches at once per node and lets a connection wait for 64 answers", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  const release = h.store.hold("search");
  for (let i = 0; i < 70; i++) send(h.hub, a.conn, { type: "search", q: `w${i}` });
  for (let i = 0; i < 3; i++) send(h.hub, b.conn, { type: "search", q: `b${i}` });
  // No more than two ever run at once: mostSearching is checked at the end.
  await h.until(() =>
    a.socket.frames.filter((f) => f.type === "error").length === 6 && h.store.searching === 2
  );
  const refused = a.socket.take("error") as Extract<ServerFrame, { type: "error" }>[];
  assert.equal(refused.length, 6, "past 64 waiting, refused at once");
  assert.ok(refused.every((e) => e.code === "rate_limited"));
  assert.equal(h.store.searching, 2, "two at a time on the node");
  release();
  await h.until(() =>
    a.socket.frames.filter((f) => f.type === "search").length === 64 &&
    b.socket.frames.filter((f) => f.type === "search").length === 3
  );
  assert.equal(h.store.mostSearching, 2);
});

Deno.test("Hub counts and times out waiting connections however small the limits are", async () => {
  await using h = await setup({ limits: { maxPendingPerAddr: 1, maxPending: 3 } });
  const first = new FakeSocket();
  const c1 = h.hub.open(first, { addr: "10.0.0.1" });
  h.skip(2000);
  const second = new FakeSocket();
  const c2 = h.hub.open(second, { addr: "10.0.0.1" });
  assert.equal(first.closed?.code, 4001, "the old idle one made way");
  assert.equal(c2.refusal, null);
  // The node's own bound: three wait; a fourth, however young the others, makes the
  // oldest go.
  const third = new FakeSocket();
  h.hub.open(third, { addr: "10.0.0.2" });
  h.hub.open(new FakeSocket(), { addr: "10.0.0.3" });
  const fourth = h.hub.open(new FakeSocket(), { addr: "10.0.0.4" });
  assert.equal(fourth.refusal, null);
  assert.equal(second.closed?.code, 4001, "the oldest made way");
  assert.equal(third.readyState, 1, "the others stay");
  // Every one still waiting is counted and timed out.
  h.advance(11_000);
  assert.equal(third.closed?.code, 4001);
  assert.equal(h.hub.connections, 0);
  void c1;
});

Deno.test("Hub: a sign-out landing while a token sign-in asks the store still ends it", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const claims = h.store.claims;
  h.hub.close(a.conn);
  await h.until(() => h.store.claims > claims); // the close stamped alice's claim
  // The tab comes back with its token; the store holds the sign-in at the claim.
  const release = h.store.hold("claimName");
  const back = new FakeSocket();
  const conn = h.hub.open(back, { addr: "127.0.0.1" });
  h.hub.receive(conn, JSON.stringify({ type: "auth", token: a.welcome.token }));
  await h.store.reached("claimName");
  // Meanwhile the session signs out (from another tab): revoked, closed, released.
  const signedOut = h.hub.signOut(a.welcome.token);
  release();
  assert.equal(await signedOut, true);
  await h.until(async () => back.closed !== null && (await h.store.nameClaim("alice")) === null);
  assert.deepEqual(back.take("welcome"), [], "no session after the sign-out");
  assert.equal(back.closed?.code, 4003);
  const someoneElse = await h.connect("alice");
  assert.equal(someoneElse.welcome.user, "alice", "the name was not left held");
});

Deno.test("Hub: a sign-out that failed half-way is finished by trying again", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  h.store.failRelease = true;
  await assert.rejects(() => h.hub.signOut(a.welcome.token), /went away/);
  // Tried again: the token counts as signed out already, and the rest is done.
  assert.equal(await h.hub.signOut(a.welcome.token), false);
  await h.until(async () =>
    a.socket.closed !== null && (await h.store.nameClaim("alice")) === null
  );
  assert.equal(a.socket.closed?.code, 4003);
  assert.equal(await h.store.nameClaim("alice"), null);
});

Deno.test("Hub: a connection that closes has nothing more built for it", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  const release = h.store.hold("search");
  for (let i = 0; i < 10; i++) send(h.hub, a.conn, { type: "search", q: `q${i}` });
  await h.store.reached("search");
  h.hub.close(a.conn);
  release();
  // Sentinel: bob's search, asked after, needs the slot alice's first one frees.
  send(h.hub, b.conn, { type: "search", q: "sentinel" });
  await h.until(() => b.socket.frames.some((f) => f.type === "search"));
  assert.equal(h.store.searches, 2, "only the search already under way ran (and bob's)");
});

Deno.test("Hub: a join refused for too many waiting replies leaves the room's messages flowing", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  send(h.hub, b.conn, { type: "join", room: "ops" });
  await h.until(() => b.socket.frames.some((f) => f.type === "joined"));
  // alice's socket is nearly full (past room for a reply, short of the slow-consumer
  // bound), and 64 answers wait for it; then she joins ops.
  a.socket.bufferedAmount = 800 * 1024;
  for (let i = 0; i < 64; i++) send(h.hub, a.conn, { type: "history", room: "general" });
  send(h.hub, a.conn, { type: "join", room: "ops" });
  await h.until(() => a.socket.frames.some((f) => f.type === "error"));
  a.socket.bufferedAmount = 0;
  send(h.hub, b.conn, { type: "send", room: "ops", text: "still reaches alice", ref: "x" });
  await h.until(() => {
    h.advance(100);
    return a.socket.frames.some((f) => f.type === "message" && f.text === "still reaches alice");
  });
});

Deno.test("Hub times out waiting connections also after the clock was set back", async () => {
  await using h = await setup();
  const first = new FakeSocket();
  h.hub.open(first, { addr: "10.0.0.1" });
  h.skip(-3600_000);
  const second = new FakeSocket();
  h.hub.open(second, { addr: "10.0.0.2" });
  h.advance(11_000);
  // The entry inserted later is still reached (the one stamped an hour ahead waits its hour).
  assert.equal(second.closed?.code, 4001);
  assert.equal(first.closed, null);
});

Deno.test("Hub holds a bounded number of messages for a join that waits, then says more", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  send(h.hub, b.conn, { type: "join", room: "ops" });
  await h.until(() => b.socket.frames.some((f) => f.type === "joined"));
  a.socket.bufferedAmount = 800 * 1024; // no room for a reply: alice's joined waits
  send(h.hub, a.conn, { type: "join", room: "ops" });
  // The join was announced (bob hears of it), and alice's joined is now waiting.
  await h.until(() =>
    b.socket.frames.some((f) => f.type === "system" && f.user === "alice" && f.event === "join")
  );
  for (let i = 1; i <= 1100; i++) {
    await h.broker.publishMessage(
      { conv: "ops", room: "ops", from: "bob", text: `m${i}` },
      { node: h.broker.node, conn: b.conn.id },
    );
  }
  a.socket.frames = [];
  a.socket.bufferedAmount = 0;
  await h.until(() => {
    h.advance(100);
    return a.socket.frames.some((f) => f.type === "joined");
  });
  const joined = a.socket.take("joined")[0] as Extract<ServerFrame, { type: "joined" }>;
  assert.equal(joined.more, true, "the client is told to page on");
  const live = a.socket.take("message") as Extract<ServerFrame, { type: "message" }>[];
  assert.deepEqual(live.filter((m) => m.room === "ops"), [], "nothing after a hole");
  assert.equal(joined.history.at(-1)?.id, 1100, "the page, read now, ends with the newest");
});

Deno.test("Hub sends topic changes made while a joined is prepared after it, only the latest", async () => {
  await using h = await setup();
  const a = await h.connect("alice");
  const b = await h.connect("bob");
  send(h.hub, a.conn, { type: "join", room: "ops" });
  await h.until(() => a.socket.frames.some((f) => f.type === "joined"));
  const release = h.store.hold("page");
  send(h.hub, b.conn, { type: "join", room: "ops" });
  await h.store.reached("page"); // bob's joined waits for its page; the topic was read before
  send(h.hub, a.conn, { type: "topic", room: "ops", topic: "one" });
  send(h.hub, a.conn, { type: "topic", room: "ops", topic: "two" });
  await h.until(() => a.socket.frames.filter((f) => f.type === "topic").length === 2);
  assert.deepEqual(
    (a.socket.take("topic") as Extract<ServerFrame, { type: "topic" }>[]).map((f) => f.topic),
    ["one", "two"],
  );
  release();
  // Sentinel: a later message reaches bob after any topic held for his joined.
  send(h.hub, a.conn, { type: "send", room: "ops", text: "after" });
  await h.until(() => sees(b.socket, "after"));
  const frames = b.socket.frames.filter((f) => f.type === "joined" || f.type === "topic");
  assert.equal(frames.length, 2, JSON.stringify(frames));
  assert.equal(frames[0].type, "joined");
  assert.equal((frames[0] as Extract<ServerFrame, { type: "joined" }>).topic, undefined);
  const topic = frames[1] as Extract<ServerFrame, { type: "topic" }>;
  assert.deepEqual(topic, {
    type: "topic",
    room: "ops",
    topic: "two",
    user: "alice",
    ts: topic.ts,
  });
});

Deno.test("Hub: a sign-in under way when its user is banned never gets in, not even back into general", async () => {
  await using h = await setup({
    users: {
      alice: { password: "alice-pass", role: "admin" },
      bob: "bob-pass-1",
    } as unknown as Record<string, string>,
  });
  const alice = await h.connect("alice", "alice-pass");
  await h.connect("bob", "bob-pass-1"); // bob is a member of general
  const release = h.store.hold("touchUser");
  const socket = new FakeSocket();
  const conn = h.hub.open(socket, { addr: "127.0.0.1" });
  send(h.hub, conn, { type: "auth", username: "bob", password: "bob-pass-1" });
  await h.store.reached("touchUser"); // past the ban check, before anything is written
  send(h.hub, alice.conn, { type: "ban", user: "bob", ref: "b" });
  await h.until(() => alice.socket.frames.some((f) => f.type === "banned"));
  assert.deepEqual(await h.store.roomsOf("bob"), [], "the ban took bob out of general");
  release();
  await h.until(() => socket.closed !== null);
  assert.equal(socket.closed?.code, CloseCode.Banned);
  assert.deepEqual(socket.take("welcome"), []);
  assert.deepEqual(
    (socket.take("error") as Extract<ServerFrame, { type: "error" }>[]).map((e) => e.code),
    ["banned"],
  );
  assert.deepEqual(await h.store.roomsOf("bob"), [], "and the sign-in did not put him back");
});

Deno.test("Hub: a change the joined page already reflected, heard late from the broker, is not sent again", async () => {
  await using h = await setup();
  const ann = await h.connect("ann");
  // Another node stored #1 and #2 of "r1"; their events have not reached this node yet.
  await h.store.join("ben", "r1");
  const one = await h.store.append({ conv: "r1", room: "r1", from: "ben", text: "one" });
  const two = await h.store.append({ conv: "r1", room: "r1", from: "ben", text: "two" });
  send(h.hub, ann.conn, { type: "join", room: "r1" });
  await h.until(() => ann.socket.frames.some((f) => f.type === "joined"));
  const joined = ann.socket.take("joined")[0] as Extract<ServerFrame, { type: "joined" }>;
  assert.deepEqual(joined.history.map((m) => m.text), ["one", "two"]);
  // Now the late events, then a new message: only the new one goes out live.
  await h.broker.publish({ kind: "message", conv: "r1", msg: one });
  await h.broker.publish({ kind: "message", conv: "r1", msg: two });
  const three = await h.store.append({ conv: "r1", room: "r1", from: "ben", text: "three" });
  await h.broker.publish({ kind: "message", conv: "r1", msg: three });
  await h.until(() => ann.socket.frames.some((f) => f.type === "message"));
  assert.deepEqual(
    ann.socket.take("message").map((f) => f.type === "message" && f.text),
    ["three"],
  );
});
