/**
 * Private, read-only and archived rooms over real sockets: a private room is
 * invisible to non-members from every angle (room list, join, send, history,
 * search, typing), members add people with `invite`, and admins change what
 * kind of room a room is — on one node and across two nodes through Redis.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import { signIn, startTestServer, type TestClient } from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

const USERS = {
  alice: { password: "alice-pass", role: "admin" },
  bob: "bob-pass-1",
  carol: "carol-pass",
};

/**
 * Sends `frame` with a fresh ref and resolves the error frame it got (`join`
 * takes no ref: its errors come without one), or the first other frame
 * matching `ok`.
 */
async function ask(
  c: TestClient,
  frame: Record<string, unknown>,
  ok: (f: ServerFrame) => boolean = () => false,
): Promise<ServerFrame> {
  const ref = `r${Math.random().toString(36).slice(2, 8)}`;
  c.send({ ...frame, ref });
  return await c.next((f) =>
    (f.type === "error" && (f.ref === ref || f.ref === undefined)) || ok(f)
  );
}

async function roomNames(c: TestClient): Promise<string[]> {
  c.send({ type: "rooms" });
  const list = await c.next("rooms");
  return list.type === "rooms" ? list.rooms.map((r) => r.name) : [];
}

Deno.test("a private room is invisible to non-members from every angle, until a member invites them", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  carol.send({ type: "join", room: "secret", private: true });
  const joined = await carol.next((f) => f.type === "joined" && f.room === "secret");
  assert.equal(joined.type === "joined" && joined.private, true);
  carol.send({ type: "send", room: "secret", text: "the plan is xyzzy", ref: "m1" });
  await carol.next((f) => f.type === "message" && f.ref === "m1");
  carol.send({ type: "join", room: "open" });
  await carol.next((f) => f.type === "joined" && f.room === "open");

  for (const outsider of [alice, bob]) {
    // Not even an admin sees a private room they are not in.
    assert.deepEqual((await roomNames(outsider)).sort(), ["general", "open"]);
    const join = await ask(outsider, { type: "join", room: "secret" });
    assert.deepEqual(
      [join.type === "error" && join.code, join.type === "error" && join.message],
      [
        "unknown_room",
        `There is no room "secret" you can join: a private room is joined by invitation`,
      ],
    );
    for (
      const frame of [
        { type: "send", room: "secret", text: "hi" },
        { type: "history", room: "secret" },
        { type: "typing", room: "secret", active: true },
        { type: "invite", room: "secret", user: "bob" },
      ]
    ) {
      const err = await ask(outsider, frame);
      assert.equal(err.type === "error" && err.code, "unknown_room", JSON.stringify(frame));
    }
    outsider.send({ type: "search", q: "xyzzy" });
    const found = await outsider.next("search");
    assert.deepEqual(found.type === "search" && found.messages, []);
  }
  // Typing in it reaches its members only.
  carol.send({ type: "typing", room: "secret", active: true });
  bob.send({ type: "ping" });
  await bob.next("pong");

  // A member adds bob: he is told who did it, and gets the room with its history.
  const sent = await ask(
    carol,
    { type: "invite", room: "secret", user: "BOB" },
    (f) => f.type === "invited",
  );
  assert.equal(sent.type === "invited" && sent.user, "bob");
  assert.equal(sent.type === "invited" && sent.by, "carol");
  assert.deepEqual(await bob.next("invited"), { type: "invited", room: "secret", by: "carol" });
  const his = await bob.next((f) => f.type === "joined" && f.room === "secret");
  assert.ok(his.type === "joined" && his.private === true);
  assert.deepEqual(his.type === "joined" && his.history.map((m) => m.text), ["the plan is xyzzy"]);
  const system = await carol.next((f) =>
    f.type === "system" && f.event === "join" && f.user === "bob"
  );
  assert.equal(system.type === "system" && system.by, "carol");
  assert.ok((await roomNames(bob)).includes("secret"));
  assert.ok(
    !alice.all.some((f) => f.type === "system" && f.room === "secret"),
    "outsiders hear nothing of it",
  );
  const again = await ask(carol, { type: "invite", room: "secret", user: "bob" });
  assert.equal(again.type === "error" && again.message, `"bob" is in #secret already`);
  const nobody = await ask(carol, { type: "invite", room: "secret", user: "zed" });
  assert.equal(nobody.type === "error" && nobody.code, "unknown_user");

  // Leaving takes the room away again, history included.
  bob.send({ type: "leave", room: "secret" });
  await bob.next((f) => f.type === "left" && f.room === "secret");
  assert.ok(!(await roomNames(bob)).includes("secret"));
  const after = await ask(bob, { type: "history", room: "secret" });
  assert.equal(after.type === "error" && after.code, "unknown_room");
  bob.send({ type: "search", q: "xyzzy" });
  const none = await bob.next("search");
  assert.deepEqual(none.type === "search" && none.messages, []);
});

Deno.test("joining an existing room never makes it private; a private room stays private for re-joins", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  bob.send({ type: "join", room: "lobby2" });
  await bob.next((f) => f.type === "joined" && f.room === "lobby2");
  carol.send({ type: "join", room: "lobby2", private: true });
  const j = await carol.next((f) => f.type === "joined" && f.room === "lobby2");
  assert.equal(j.type === "joined" && j.private, undefined, "it exists already: public");
  const bad = await ask(carol, { type: "join", room: "x", private: "yes" });
  assert.equal(bad.type === "error" && bad.code, "bad_request");
});

Deno.test("admins make rooms read-only, archived or private; members are told and refused in words", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  for (const c of [alice, bob]) {
    c.send({ type: "join", room: "news" });
    await c.next((f) => f.type === "joined" && f.room === "news");
  }
  const member = await ask(bob, { type: "room_settings", room: "news", readOnly: true });
  assert.deepEqual(
    member.type === "error" && [member.code, member.message],
    ["forbidden", "Only admins may do this"],
  );
  const done = await ask(
    alice,
    { type: "room_settings", room: "news", readOnly: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  assert.equal(done.type === "room_settings" && done.by, "alice");
  assert.deepEqual(done.type === "room_settings" && done.settings, { readOnly: true });
  const told = await bob.next("room_settings");
  assert.deepEqual(told, {
    type: "room_settings",
    room: "news",
    settings: { readOnly: true },
    by: "alice",
  });
  const refused = await ask(bob, { type: "send", room: "news", text: "hi" });
  assert.deepEqual(
    refused.type === "error" && [refused.code, refused.message],
    ["forbidden", "Only admins post in #news: it is read-only"],
  );
  alice.send({ type: "send", room: "news", text: "announcement", ref: "a1" });
  await alice.next((f) => f.type === "message" && f.ref === "a1");
  await bob.next((f) => f.type === "message" && f.text === "announcement");

  // Archived: out of the list, read-only for everyone, still readable by its members.
  await ask(
    alice,
    { type: "room_settings", room: "news", archived: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  assert.ok(!(await roomNames(carol)).includes("news"));
  const archived = await ask(alice, { type: "send", room: "news", text: "more" });
  assert.equal(
    archived.type === "error" && archived.message,
    "#news is archived: it is kept, read-only",
  );
  bob.send({ type: "history", room: "news" });
  const page = await bob.next("history");
  assert.deepEqual(page.type === "history" && page.messages.map((m) => m.text), ["announcement"]);

  // Made private: carol (not a member) can no longer join it.
  await ask(
    alice,
    { type: "room_settings", room: "news", archived: false, private: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  const join = await ask(carol, { type: "join", room: "news" });
  assert.equal(join.type === "error" && join.code, "unknown_room");

  for (
    const [frame, code] of [
      [{ type: "room_settings", room: "general", private: true }, "bad_request"],
      [{ type: "room_settings", room: "general", archived: true }, "bad_request"],
      [{ type: "room_settings", room: "nowhere", readOnly: true }, "unknown_room"],
      [{ type: "room_settings", room: "news" }, "bad_request"],
      [{ type: "room_settings", room: "news", readOnly: "yes" }, "bad_request"],
    ] as const
  ) {
    const err = await ask(alice, frame);
    assert.equal(err.type === "error" && err.code, code, JSON.stringify(frame));
  }
  const log = await fetch(`${srv.http}/api/audit`, {
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  }).then((r) => r.json());
  assert.deepEqual(
    log.entries.map((
      e: { action: string; target: string; detail: string },
    ) => [e.action, e.target, e.detail]),
    [
      ["room", "news", "private, not archived"],
      ["room", "news", "archived"],
      ["room", "news", "read-only"],
    ],
  );
});

Deno.test("through Redis: a private room made on one node stays invisible on the other, and an invite crosses nodes", async () => {
  await using cluster = await startCluster(2, { users: USERS });
  const [a, b] = cluster.nodes.map((n) => `ws://127.0.0.1:${n.port}/ws`);
  await using alice = await signIn(a, "alice", "alice-pass");
  await using carol = await signIn(a, "carol", "carol-pass");
  await using bob = await signIn(b, "bob", "bob-pass-1");
  // Node b reads "plaza" while it is public, then an admin on node a makes it private.
  bob.send({ type: "join", room: "plaza" });
  await bob.next((f) => f.type === "joined" && f.room === "plaza");
  bob.send({ type: "leave", room: "plaza" });
  await bob.next((f) => f.type === "left");
  carol.send({ type: "join", room: "plaza" });
  await carol.next((f) => f.type === "joined" && f.room === "plaza");
  alice.send({ type: "join", room: "plaza" });
  await alice.next((f) => f.type === "joined" && f.room === "plaza");
  await ask(
    alice,
    { type: "room_settings", room: "plaza", private: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  await carol.next("room_settings");
  // Node b heard of it: bob cannot walk back in.
  const back = await ask(bob, { type: "join", room: "plaza" });
  assert.equal(back.type === "error" && back.code, "unknown_room");
  assert.ok(!(await roomNames(bob)).includes("plaza"));
  // A room created private on node a is unknown on node b too.
  carol.send({ type: "join", room: "hush", private: true });
  await carol.next((f) => f.type === "joined" && f.room === "hush");
  const hush = await ask(bob, { type: "join", room: "hush" });
  assert.equal(hush.type === "error" && hush.code, "unknown_room");
  // An invite from node a reaches bob on node b.
  await ask(carol, { type: "invite", room: "hush", user: "bob" }, (f) => f.type === "invited");
  assert.deepEqual(await bob.next("invited"), { type: "invited", room: "hush", by: "carol" });
  const joined = await bob.next((f) => f.type === "joined" && f.room === "hush");
  assert.equal(joined.type === "joined" && joined.private, true);
});

Deno.test("admins choose default rooms: new accounts join them with general, existing ones do not", async () => {
  await using srv = await startTestServer({ users: USERS, args: ["--allow-signup"] });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using _bob = await signIn(srv.ws, "bob", "bob-pass-1");
  alice.send({ type: "join", room: "welcome" });
  await alice.next((f) => f.type === "joined" && f.room === "welcome");
  const set = await ask(
    alice,
    { type: "room_settings", room: "welcome", autoJoin: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  assert.deepEqual(set.type === "room_settings" && set.settings, { autoJoin: true });
  const c = await (await import("./helpers.ts")).TestClient.connect(srv.ws);
  try {
    c.send({ type: "register", username: "newbie", password: "newbie-pass-1" });
    const w = await c.next("welcome");
    assert.deepEqual(w.type === "welcome" && [...w.rooms].sort(), ["general", "welcome"]);
    const seen = await alice.next((f) =>
      f.type === "system" && f.room === "welcome" && f.event === "join"
    );
    assert.equal(seen.type === "system" && seen.user, "newbie");
  } finally {
    await c.close();
  }
  await using again = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.deepEqual(again.welcome.rooms, ["general"], "existing accounts are left as they are");
  const log = await fetch(`${srv.http}/api/audit`, {
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  }).then((r) => r.json());
  assert.equal(log.entries[0].detail, "a default room");
});

Deno.test("archived rooms change no more and take nobody new; read-only rooms keep their topic; banned users cannot be added", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  for (const c of [alice, bob]) {
    c.send({ type: "join", room: "old" });
    await c.next((f) => f.type === "joined" && f.room === "old");
  }
  bob.send({ type: "send", room: "old", text: "before", ref: "m" });
  const m = await bob.next((f) => f.type === "message" && f.ref === "m");
  const id = m.type === "message" ? m.id : 0;
  await ask(
    alice,
    { type: "room_settings", room: "old", readOnly: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  const topic = await ask(bob, { type: "topic", room: "old", topic: "mine now" });
  assert.equal(
    topic.type === "error" && topic.message,
    "Only admins post in #old: it is read-only",
  );
  await ask(
    alice,
    { type: "room_settings", room: "old", archived: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  for (
    const frame of [
      { type: "edit", room: "old", id, text: "after" },
      { type: "react", room: "old", id, emoji: "👍", on: true },
      { type: "delete", room: "old", id },
    ]
  ) {
    const err = await ask(bob, frame);
    assert.deepEqual(
      err.type === "error" && [err.code, err.message],
      ["forbidden", "#old is archived: it is kept, read-only"],
      JSON.stringify(frame),
    );
  }
  const join = await ask(carol, { type: "join", room: "old" });
  assert.deepEqual(
    join.type === "error" && [join.code, join.message],
    ["forbidden", "#old is archived: nobody joins it any more"],
  );
  // An admin may still remove a message from it.
  const removed = await ask(
    alice,
    { type: "delete", room: "old", id },
    (f) => f.type === "deleted",
  );
  assert.equal(removed.type === "deleted" && removed.removed, true);

  // A ban took carol out of every room: nobody adds her back.
  alice.send({ type: "ban", user: "carol" });
  await alice.next("banned");
  bob.send({ type: "join", room: "fresh" });
  await bob.next((f) => f.type === "joined" && f.room === "fresh");
  const invite = await ask(bob, { type: "invite", room: "fresh", user: "carol" });
  assert.deepEqual(
    invite.type === "error" && [invite.code, invite.message],
    ["forbidden", `"carol" is banned from this chat`],
  );
});

Deno.test("a private room is its members' even to admins: no settings, no kicks, no member list from outside; read-only rooms keep their messages", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  bob.send({ type: "join", room: "pq", private: true });
  await bob.next((f) => f.type === "joined" && f.room === "pq");
  await ask(bob, { type: "invite", room: "pq", user: "carol" }, (f) => f.type === "invited");
  for (
    const frame of [
      { type: "room_settings", room: "pq", private: false },
      { type: "kick", room: "pq", user: "carol" },
      { type: "kick", room: "pq", user: "bob" },
    ]
  ) {
    const err = await ask(alice, frame);
    assert.equal(err.type === "error" && err.code, "unknown_room", JSON.stringify(frame));
  }
  const still = await ask(alice, { type: "join", room: "pq" });
  assert.equal(still.type === "error" && still.code, "unknown_room", "still private");

  // Read-only: members' old messages stay as they are; reactions are fine.
  for (const c of [alice, bob]) {
    c.send({ type: "join", room: "ro" });
    await c.next((f) => f.type === "joined" && f.room === "ro");
  }
  bob.send({ type: "send", room: "ro", text: "mine", ref: "m" });
  const m = await bob.next((f) => f.type === "message" && f.ref === "m");
  const id = m.type === "message" ? m.id : 0;
  await ask(
    alice,
    { type: "room_settings", room: "ro", readOnly: true },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  const edit = await ask(bob, { type: "edit", room: "ro", id, text: "changed" });
  assert.deepEqual(
    edit.type === "error" && [edit.code, edit.message],
    ["forbidden", "Only admins post in #ro: it is read-only"],
  );
  const react = await ask(
    bob,
    { type: "react", room: "ro", id, emoji: "👍", on: true },
    (f) => f.type === "reaction",
  );
  assert.equal(react.type, "reaction");
  assert.equal(carol.ws.readyState, WebSocket.OPEN);
});
