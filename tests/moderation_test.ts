/**
 * Moderation over real sockets: `ban` / `unban` (the whole chat, on every
 * node), `kick` (one room), and the people routes (roles, removal). Every
 * refusal has its code and leaves the asking connection usable.
 */
import assert from "node:assert/strict";
import { CloseCode, type ServerFrame } from "../protocol.ts";
import {
  signIn,
  signInWithToken,
  signOut,
  startTestServer,
  TestClient,
  type TestServer,
  waitUntil,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

const USERS = {
  alice: { password: "alice-pass", role: "admin" },
  root: { password: "root-pass-1", role: "admin" },
  bob: "bob-pass-1",
  carol: "carol-pass",
};

/** Signs in and expects to be refused as banned; resolves the error frame and close event. */
async function refusedAsBanned(ws: string, frame: Record<string, unknown>) {
  const c = await TestClient.connect(ws);
  try {
    c.send(frame);
    const err = await c.next((f) => f.type === "error" || f.type === "welcome");
    const closed = await c.closed();
    return { err, closed };
  } finally {
    await c.close();
  }
}

async function audit(srv: TestServer | string, token: string) {
  const http = typeof srv === "string" ? srv : srv.http;
  const res = await fetch(`${http}/api/audit`, { headers: { authorization: `Bearer ${token}` } });
  return ((await res.json()).entries as {
    action: string;
    by: string;
    target: string;
    detail?: string;
  }[]);
}

Deno.test("ban closes every connection of the user at once, refuses password and token sign-ins, and unban lets them back", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob1 = await signIn(srv.ws, "bob", "bob-pass-1");
  await using bob2 = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  const token = bob1.welcome.token;
  alice.send({ type: "ban", user: "BOB", reason: "spamming  links", ref: "b1" });
  const done = await alice.next("banned");
  assert.deepEqual(done, {
    type: "banned",
    user: "bob",
    by: "alice",
    reason: "spamming links",
    ref: "b1",
  });
  for (const bob of [bob1, bob2]) {
    const err = await bob.next("error");
    assert.deepEqual(err, {
      type: "error",
      code: "banned",
      message: "You are banned from this chat: spamming links",
    });
    const closed = await bob.closed();
    assert.equal(closed.code, CloseCode.Banned);
    assert.equal(closed.reason, "banned");
  }
  assert.equal(carol.ws.readyState, WebSocket.OPEN, "nobody else is affected");
  const byPassword = await refusedAsBanned(srv.ws, {
    type: "auth",
    username: "bob",
    password: "bob-pass-1",
  });
  assert.equal((byPassword.err as ServerFrame & { code: string }).code, "banned");
  assert.equal(byPassword.closed.code, CloseCode.Banned);
  const byToken = await refusedAsBanned(srv.ws, { type: "auth", token });
  assert.equal(byToken.closed.code, CloseCode.Banned);
  // The token no longer works over HTTP either.
  const upload = await fetch(`${srv.http}/api/files?name=a.txt`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body: "hello",
  });
  assert.equal(upload.status, 401);
  await upload.body?.cancel();
  alice.send({ type: "unban", user: "bob", ref: "u1" });
  assert.deepEqual(await alice.next("unbanned"), {
    type: "unbanned",
    user: "bob",
    ok: true,
    ref: "u1",
  });
  await using back = await signInWithToken(srv.ws, token);
  assert.equal(back.welcome.user, "bob", "the old token works again");
  alice.send({ type: "unban", user: "bob", ref: "u2" });
  assert.deepEqual(await alice.next("unbanned"), {
    type: "unbanned",
    user: "bob",
    ok: false,
    ref: "u2",
  });
  const log = await audit(srv, alice.welcome.token);
  assert.deepEqual(log.map((e) => [e.action, e.by, e.target]), [
    ["unban", "alice", "bob"],
    ["ban", "alice", "bob"],
  ]);
  assert.equal(log[1].detail, "until unbanned: spamming links");
});

Deno.test("a ban with a duration ends by itself", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  alice.send({ type: "ban", user: "bob", duration: 1 });
  const done = await alice.next("banned");
  assert.ok(done.type === "banned" && done.until! > Date.now() && done.until! <= Date.now() + 1000);
  const refused = await refusedAsBanned(srv.ws, {
    type: "auth",
    username: "bob",
    password: "bob-pass-1",
  });
  assert.match(
    (refused.err as { message: string }).message,
    /^You are banned from this chat until \d{4}-/,
  );
  const bob = await waitUntil(
    () => signIn(srv.ws, "bob", "bob-pass-1").catch(() => null),
    "the ban has ended",
  );
  assert.equal(bob.welcome.user, "bob");
  await bob.close();
});

Deno.test("ban, unban and kick: every refusal has its code and the connection stays usable", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  const refusals: [TestClient, Record<string, unknown>, string, string][] = [
    [bob, { type: "ban", user: "carol" }, "forbidden", "Only admins may do this"],
    [bob, { type: "unban", user: "carol" }, "forbidden", "Only admins may do this"],
    [bob, { type: "kick", room: "x", user: "carol" }, "forbidden", "Only admins may do this"],
    [alice, { type: "ban", user: "zed" }, "unknown_user", `There is no user "zed"`],
    [alice, { type: "ban", user: "alice" }, "bad_request", "You cannot do this to yourself"],
    [
      alice,
      { type: "ban", user: "root" },
      "forbidden",
      `"root" is an admin: make them a member first`,
    ],
    [
      alice,
      { type: "ban", user: "bob", duration: 0 },
      "bad_request",
      `Field "duration" must be a whole number of seconds from 1 to 315360000`,
    ],
    [
      alice,
      { type: "ban", user: "bob", duration: "1h" },
      "bad_request",
      `Field "duration" must be a whole number of seconds from 1 to 315360000`,
    ],
    [
      alice,
      { type: "ban", user: "bob", reason: "x".repeat(201) },
      "bad_request",
      "A reason has at most 200 characters",
    ],
    [
      alice,
      { type: "ban", user: "bob", reason: "a\u202Eb" },
      "bad_request",
      "A reason may not contain control characters",
    ],
    [
      alice,
      { type: "ban", user: "bad name" },
      "bad_request",
      `Invalid user name "bad name": use 1-32 letters, digits, - or _`,
    ],
    [
      alice,
      { type: "kick", room: "general", user: "bob" },
      "bad_request",
      `Everyone stays in "general": ban them instead`,
    ],
    [
      alice,
      { type: "kick", room: "nowhere", user: "bob" },
      "unknown_user",
      `"bob" is not in room "nowhere"`,
    ],
  ];
  let n = 0;
  for (const [who, frame, code, message] of refusals) {
    const ref = `r${n++}`;
    who.send({ ...frame, ref });
    const err = await who.next((f) => f.type === "error" && f.ref === ref);
    assert.deepEqual(err, { type: "error", code, message, ref }, JSON.stringify(frame));
  }
  for (const who of [alice, bob]) {
    who.send({ type: "ping" });
    await who.next("pong");
  }
  assert.equal(bob.ws.readyState, WebSocket.OPEN);
});

Deno.test("open mode has no admins: ban and kick are forbidden", async () => {
  await using srv = await startTestServer();
  await using zed = await signIn(srv.ws, "zed");
  await using amy = await signIn(srv.ws, "amy");
  zed.send({ type: "ban", user: "amy", ref: "b" });
  const err = await zed.next("error");
  assert.equal(err.type === "error" && err.code, "forbidden");
  assert.equal(amy.ws.readyState, WebSocket.OPEN);
});

Deno.test("kick removes a user from a room: they and the others are told who did it; they may join again", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  for (const c of [bob, carol]) {
    c.send({ type: "join", room: "lounge" });
    await c.next((f) => f.type === "joined" && f.room === "lounge");
  }
  alice.send({ type: "kick", room: "lounge", user: "bob", ref: "k" });
  assert.deepEqual(await alice.next("kicked"), {
    type: "kicked",
    room: "lounge",
    user: "bob",
    ref: "k",
  });
  assert.deepEqual(await bob.next("left"), { type: "left", room: "lounge", by: "alice" });
  const seen = await carol.next((f) => f.type === "system" && f.event === "leave");
  assert.ok(seen.type === "system");
  assert.equal(seen.user, "bob");
  assert.equal(seen.by, "alice");
  bob.send({ type: "send", room: "lounge", text: "still here?", ref: "s" });
  const err = await bob.next("error");
  assert.equal(err.type === "error" && err.code, "unknown_room");
  bob.send({ type: "join", room: "lounge" });
  await bob.next((f) => f.type === "joined" && f.room === "lounge");
  const log = await audit(srv, alice.welcome.token);
  assert.deepEqual(log.map((e) => [e.action, e.target, e.detail]), [["kick", "bob", "lounge"]]);
});

Deno.test("people routes: roles change live, the last admin stays, a removed user is signed out", async () => {
  await using srv = await startTestServer({
    users: { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" },
  });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  const token = alice.welcome.token;
  const api = async (method: string, path: string, body?: unknown, as = token) => {
    const res = await fetch(`${srv.http}${path}`, {
      method,
      headers: { authorization: `Bearer ${as}` },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: await res.json() };
  };
  const listed = (await api("GET", "/api/people")).body.people;
  assert.deepEqual(
    listed.map((p: Record<string, unknown>) => [p.name, p.role, p.sessions]),
    [["alice", "admin", 1], ["bob", "member", 1]],
  );
  for (const p of listed) assert.ok(Math.abs(p.signedIn - Date.now()) < 60_000, "signed in now");
  const member = await api("GET", "/api/people", undefined, bob.welcome.token);
  assert.equal(member.status, 403);
  const last = await api("POST", "/api/people/alice/role", { role: "member" });
  assert.equal(last.status, 409);
  assert.equal(last.body.error, "last_admin");
  const bad = await api("POST", "/api/people/bob/role", { role: "owner" });
  assert.equal(bad.status, 400);
  const nobody = await api("POST", "/api/people/zed/role", { role: "admin" });
  assert.equal(nobody.status, 404);
  assert.equal(nobody.body.error, "unknown_user");
  const up = await api("POST", "/api/people/Bob/role", { role: "admin" });
  assert.deepEqual(up.body, { user: "bob", role: "admin", changed: true });
  assert.deepEqual(await bob.next("role"), { type: "role", role: "admin" });
  const users = JSON.parse(await Deno.readTextFile(`${srv.dir}/users.json`));
  assert.equal(users.bob.role, "admin");
  const down = await api("POST", "/api/people/bob/role", { role: "member" });
  assert.equal(down.body.changed, true);
  assert.deepEqual(await bob.next("role"), { type: "role", role: "member" });
  const self = await api("DELETE", "/api/people/alice");
  assert.equal(self.status, 400);
  const gone = await api("DELETE", "/api/people/bob");
  assert.deepEqual(gone.body, { ok: true });
  const closed = await bob.closed();
  assert.equal(closed.code, CloseCode.AuthFailed);
  await assert.rejects(signIn(srv.ws, "bob", "bob-pass-1"), /auth_failed/);
  const log = await audit(srv, token);
  assert.deepEqual(log.map((e) => [e.action, e.target, e.detail ?? ""]), [
    ["remove", "bob", ""],
    ["role", "bob", "member"],
    ["role", "bob", "admin"],
  ]);
});

Deno.test("through Redis: a ban on one node closes the user's connections on the other within a second", async () => {
  await using cluster = await startCluster(2, { users: USERS });
  const [a, b] = cluster.nodes.map((n) => `ws://127.0.0.1:${n.port}/ws`);
  await using alice = await signIn(a, "alice", "alice-pass");
  await using bob = await signIn(b, "bob", "bob-pass-1");
  alice.send({ type: "ban", user: "bob", reason: "gone" });
  await alice.next("banned");
  const closed = await bob.closed();
  assert.equal(closed.code, CloseCode.Banned);
  // Nothing but the ban's event closes it: no node checks bans on a timer.
  const again = await refusedAsBanned(b, { type: "auth", username: "bob", password: "bob-pass-1" });
  assert.equal(again.closed.code, CloseCode.Banned);
  const bans = await fetch(`http://127.0.0.1:${cluster.nodes[1].port}/api/bans`, {
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  }).then((r) => r.json());
  assert.deepEqual(bans.bans.map((x: { user: string; reason: string }) => [x.user, x.reason]), [[
    "bob",
    "gone",
  ]]);
});

Deno.test("the banned and the removed leave their rooms; the others see who took them out", async () => {
  await using srv = await startTestServer({ users: USERS, reloadInterval: 50 });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  carol.send({ type: "join", room: "lounge" });
  await carol.next((f) => f.type === "joined" && f.room === "lounge");
  const joinLounge = async (name: string, password: string) => {
    await using c = await signIn(srv.ws, name, password);
    c.send({ type: "join", room: "lounge" });
    await c.next((f) => f.type === "joined" && f.room === "lounge");
  };
  const leaves = (user: string) =>
    carol.next((f) =>
      f.type === "system" && f.event === "leave" && f.user === user && f.room === "lounge"
    );

  await joinLounge("bob", "bob-pass-1");
  alice.send({ type: "ban", user: "bob" });
  const banned = await leaves("bob");
  assert.equal(banned.type === "system" && banned.by, "alice");
  alice.send({ type: "unban", user: "bob" });
  await alice.next("unbanned");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.deepEqual(bob.welcome.rooms, ["general"], "back in general only");
  await bob.close();

  // Removed by an admin over HTTP.
  await joinLounge("bob", "bob-pass-1");
  const res = await fetch(`${srv.http}/api/people/bob`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  });
  assert.equal(res.status, 200);
  await res.body?.cancel();
  const removed = await leaves("bob");
  assert.equal(removed.type === "system" && removed.by, "alice");

  // Removed on the server's shell (users.json edited): the reload takes them out.
  const { updateUsers } = await import("../server/auth/users.ts");
  await updateUsers(`${srv.dir}/users.json`, (u) => void u.set("dave", "dave-pass-1"));
  await waitUntil(() => srv.server.auth.has("dave"), "dave is loaded");
  await joinLounge("dave", "dave-pass-1");
  await updateUsers(`${srv.dir}/users.json`, (u) => void u.delete("dave"));
  const shell = await leaves("dave");
  assert.equal(shell.type === "system" && shell.by, undefined);
});

Deno.test("sign out everywhere: every session of the user ends and their tokens stop working; a password still lets them in", async () => {
  await using srv = await startTestServer({ users: USERS, reloadInterval: 50 });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using phone = await signIn(srv.ws, "bob", "bob-pass-1");
  await using laptop = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  const call = (path: string, token: string) =>
    fetch(`${srv.http}${path}`, { method: "POST", headers: { authorization: `Bearer ${token}` } })
      .then(async (r) => ({ status: r.status, body: await r.json() }));
  // What admins see of each person's sessions: those that can still sign in.
  const sessionsOf = async (name: string) => {
    const res = await fetch(`${srv.http}/api/people`, {
      headers: { authorization: `Bearer ${alice.welcome.token}` },
    });
    const { people } = await res.json() as { people: { name: string; sessions: number }[] };
    return people.find((p) => p.name === name)?.sessions;
  };
  // Two password sign-ins: two sessions; a token sign-in is one of them again.
  assert.equal(await sessionsOf("bob"), 2);
  await using again = await signInWithToken(srv.ws, phone.welcome.token);
  assert.equal(await sessionsOf("bob"), 2);
  await again.close();
  // One device signs out: its session no longer counts.
  await using tablet = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.equal(await sessionsOf("bob"), 3);
  assert.equal(await signOut(srv.http, tablet.welcome.token), 204);
  assert.equal(await sessionsOf("bob"), 2);
  assert.equal((await call("/api/people/bob/signout", carol.welcome.token)).status, 403);
  assert.equal((await call("/api/people/zed/signout", alice.welcome.token)).status, 404);
  const done = await call("/api/people/BOB/signout", alice.welcome.token);
  assert.deepEqual(done, { status: 200, body: { ok: true } });
  for (const bob of [phone, laptop]) {
    const closed = await bob.closed();
    assert.equal(closed.code, CloseCode.AuthFailed);
  }
  assert.equal(carol.ws.readyState, WebSocket.OPEN, "nobody else is signed out");
  await assert.rejects(signInWithToken(srv.ws, phone.welcome.token), /auth_failed/);
  await waitUntil(async () => await sessionsOf("bob") === 0, "bob has no session left");
  await using back = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.equal(back.welcome.user, "bob");
  assert.equal(await sessionsOf("bob"), 1);
  assert.equal(await sessionsOf("carol"), 1, "nobody else's sessions are forgotten");
  const users = JSON.parse(await Deno.readTextFile(`${srv.dir}/users.json`));
  assert.deepEqual(Object.keys(users.bob).sort(), ["password", "sessions"]);
  assert.equal(users.bob.sessions, 1);
  const log = await audit(srv, alice.welcome.token);
  assert.deepEqual(log.map((e) => [e.action, e.by, e.target]), [["signout", "alice", "bob"]]);

  // The same from the server's shell: chat user signout.
  const { runClient } = await import("./client_helpers.ts");
  const { SERVE } = await import("./chat_process.ts");
  const r = await runClient([
    "user",
    "signout",
    "bob",
    "--users",
    `${srv.dir}/users.json`,
    "--url",
    srv.http,
  ], {
    permissions: SERVE,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  assert.equal(r.stdout, `Signed "bob" out everywhere: their sessions end within a second\n`);
  const shell = (await audit(srv, alice.welcome.token)).find((e) => e.by === "");
  assert.deepEqual([shell?.action, shell?.target], ["signout", "bob"]);
  const closed = await back.closed();
  assert.equal(closed.code, CloseCode.AuthFailed);
  await waitUntil(
    async () => await sessionsOf("bob") === 0,
    "the shell's sign-out reached the count",
  );
});

Deno.test("people routes tell nobody but admins whether an account exists; admins are not removed", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  for (
    const [method, path] of [
      ["POST", "/api/people/nosuch/role"],
      ["POST", "/api/people/alice/role"],
      ["DELETE", "/api/people/nosuch"],
      ["POST", "/api/people/nosuch/signout"],
    ]
  ) {
    const res = await fetch(`${srv.http}${path}`, { method, body: "{}" });
    assert.equal(res.status, 401, `${method} ${path}`);
    await res.body?.cancel();
  }
  const res = await fetch(`${srv.http}/api/people/root`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  });
  assert.deepEqual(
    { status: res.status, body: await res.json() },
    {
      status: 403,
      body: { error: "forbidden", message: `"root" is an admin: make them a member first` },
    },
  );
  assert.ok(srv.server.auth.has("root"));
});

Deno.test("admins see a password change leave the user one session: the device that changed it", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using phone = await signIn(srv.ws, "bob", "bob-pass-1");
  await using laptop = await signIn(srv.ws, "bob", "bob-pass-1");
  const people = async () => {
    const res = await fetch(`${srv.http}/api/people`, {
      headers: { authorization: `Bearer ${alice.welcome.token}` },
    });
    const body = await res.json() as { people: { name: string; sessions: number }[] };
    return Object.fromEntries(body.people.map((p) => [p.name, p.sessions]));
  };
  assert.equal((await people()).bob, 2);
  phone.send({ type: "passwd", current: "bob-pass-1", password: "bob-pass-new", ref: "p" });
  const done = await phone.next((f) => f.type === "passwd" || f.type === "error");
  assert.equal(done.type, "passwd");
  assert.equal((await laptop.closed()).code, CloseCode.AuthFailed);
  assert.deepEqual(await people(), { alice: 1, bob: 1, carol: 0, root: 0 });
  // The new session is the one that counts: its token signs in, and is still one session.
  const token = done.type === "passwd" ? done.token : "";
  await using again = await signInWithToken(srv.ws, token);
  assert.equal(again.welcome.user, "bob");
  assert.equal((await people()).bob, 1);
});
