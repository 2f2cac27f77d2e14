/**
 * `@room` for admins only (`restrictRoomMentions`, issue 18) over real
 * sockets: a member's send or edit that notifies everyone is refused in
 * words and goes nowhere, admins and other rooms are untouched, and the
 * setting lasts through a restart, a rename and a second node.
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

const REFUSAL = "Only admins may notify everyone in #dev with @room or @here";

/**
 * Sends `frame` with a fresh ref and resolves the error frame it got, or the
 * first other frame matching `ok`.
 */
async function ask(
  c: TestClient,
  frame: Record<string, unknown>,
  ok: (f: ServerFrame) => boolean = () => false,
): Promise<ServerFrame> {
  const ref = `r${Math.random().toString(36).slice(2, 8)}`;
  c.send({ ...frame, ref });
  return await c.next((f) => (f.type === "error" && f.ref === ref) || ok(f));
}

/** Sends a message and waits for its acknowledgement; resolves its id. */
async function sent(c: TestClient, frame: Record<string, unknown>): Promise<number> {
  const ref = `m${Math.random().toString(36).slice(2, 8)}`;
  c.send({ type: "send", ...frame, ref });
  const f = await c.next((f) => (f.type === "message" || f.type === "error") && f.ref === ref);
  assert.equal(f.type, "message", JSON.stringify(f));
  return f.type === "message" ? f.id : 0;
}

/** The error `c` gets for `frame`, as [code, message, ref echoed]. */
async function refusal(c: TestClient, frame: Record<string, unknown>): Promise<unknown[]> {
  const ref = `x${Math.random().toString(36).slice(2, 8)}`;
  c.send({ ...frame, ref });
  const f = await c.next((f) => "ref" in f && f.ref === ref);
  return f.type === "error" ? [f.code, f.message, f.ref === ref] : [f.type];
}

/** Sets `room`'s settings as `admin` and resolves the answer's settings. */
async function setting(
  admin: TestClient,
  room: string,
  change: Record<string, boolean>,
): Promise<unknown> {
  const f = await ask(
    admin,
    { type: "room_settings", room, ...change },
    (f) => f.type === "room_settings" && f.ref !== undefined,
  );
  assert.equal(f.type, "room_settings", JSON.stringify(f));
  return f.type === "room_settings" ? f.settings : null;
}

/** The texts of `room`'s history as `c` reads it. */
async function texts(c: TestClient, room: string): Promise<string[]> {
  c.send({ type: "history", room, limit: 50 });
  const page = await c.next((f) => f.type === "history" && f.room === room);
  return page.type === "history" ? page.messages.map((m) => m.text) : [];
}

async function join(c: TestClient, room: string): Promise<ServerFrame & { type: "joined" }> {
  c.send({ type: "join", room });
  return await c.next((f) => f.type === "joined" && f.room === room) as ServerFrame & {
    type: "joined";
  };
}

Deno.test("restrictRoomMentions: a member's @room or @here is refused on send and edit, and goes nowhere; admins, DMs and other rooms are untouched", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  for (const c of [alice, bob, carol]) await join(c, "dev");
  await join(bob, "lounge");
  await join(carol, "lounge");

  // Unrestricted: anyone notifies everyone.
  const early = await sent(bob, { room: "dev", text: "@room standup" });
  await carol.next((f) => f.type === "message" && f.text === "@room standup");

  // Only admins change it.
  assert.deepEqual(
    await refusal(bob, { type: "room_settings", room: "dev", restrictRoomMentions: true }),
    ["forbidden", "Only admins may do this", true],
  );
  assert.deepEqual(await setting(alice, "dev", { restrictRoomMentions: true }), {
    restrictRoomMentions: true,
  });
  for (const c of [bob, carol]) {
    assert.deepEqual(await c.next("room_settings"), {
      type: "room_settings",
      room: "dev",
      settings: { restrictRoomMentions: true },
      by: "alice",
    });
  }

  // A member's send that notifies everyone: refused, in words, with the ref.
  for (
    const text of ["ping @room", "@HERE now", "look (@here)", "in code too: `@room`", "@Room."]
  ) {
    assert.deepEqual(
      await refusal(bob, { type: "send", room: "dev", text }),
      ["forbidden", REFUSAL, true],
      text,
    );
  }
  // A reply is a send like any other.
  assert.deepEqual(
    await refusal(bob, { type: "send", room: "dev", text: "+1 @here", replyTo: early }),
    ["forbidden", REFUSAL, true],
  );
  // Not a whole-room mention: these go.
  const plain = await sent(bob, {
    room: "dev",
    text: "mail ops@here.com about @roomy and a@room",
  });
  // Nothing refused reached anyone: carol's next message is the one that went.
  const next = await carol.next("message");
  assert.equal(next.type === "message" && next.id, plain);
  assert.deepEqual(await texts(carol, "dev"), [
    "@room standup",
    "mail ops@here.com about @roomy and a@room",
  ]);

  // Edits: the new text decides, for the author's own message.
  assert.deepEqual(
    await refusal(bob, { type: "edit", room: "dev", id: plain, text: "now @room" }),
    ["forbidden", REFUSAL, true],
  );
  assert.deepEqual(
    await refusal(bob, { type: "edit", room: "dev", id: early, text: "@room standup at 10" }),
    ["forbidden", REFUSAL, true],
    "an old @room stays refused in an edit",
  );
  await ask(
    bob,
    { type: "edit", room: "dev", id: early, text: "standup at 10" },
    (f) => f.type === "edited" && f.ref !== undefined,
  );
  const edited = await carol.next("edited");
  assert.equal(edited.type === "edited" && edited.text, "standup at 10", "no refused edit came");

  // Admins are never refused.
  const announcement = await sent(alice, { room: "dev", text: "@room release at 5" });
  await carol.next((f) => f.type === "message" && f.id === announcement);
  await ask(
    alice,
    { type: "edit", room: "dev", id: announcement, text: "@here release at 6" },
    (f) => f.type === "edited" && f.ref !== undefined,
  );
  await carol.next((f) => f.type === "edited" && f.id === announcement);

  // Other rooms and DMs are not restricted.
  await sent(bob, { room: "lounge", text: "@room cake" });
  await carol.next((f) => f.type === "message" && f.room === "lounge");
  await sent(bob, { to: "carol", text: "@here?" });
  await carol.next((f) => f.type === "message" && f.to !== undefined);

  // The kind is carried wherever the room's kind is: rooms list and joined.
  bob.send({ type: "rooms" });
  const list = await bob.next("rooms");
  assert.deepEqual(
    list.type === "rooms" && list.rooms.find((r) => r.name === "dev"),
    { name: "dev", members: 3, restrictRoomMentions: true },
  );
  bob.send({ type: "leave", room: "dev" });
  await bob.next("left");
  assert.equal((await join(bob, "dev")).restrictRoomMentions, true);

  // Turned off: members notify everyone again.
  assert.deepEqual(await setting(alice, "dev", { restrictRoomMentions: false }), {});
  await sent(bob, { room: "dev", text: "@room again" });

  const log = await fetch(`${srv.http}/api/audit`, {
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  }).then((r) => r.json());
  assert.deepEqual(
    log.entries.map((e: { target: string; detail: string }) => [e.target, e.detail]),
    [["dev", "not @room for admins only"], ["dev", "@room for admins only"]],
  );
});

Deno.test("restrictRoomMentions survives a rename and a restart with --data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-room-mentions-" });
  const args = ["--data", `${dir}/chat.db`];
  try {
    {
      await using srv = await startTestServer({ users: USERS, dir, args });
      await using alice = await signIn(srv.ws, "alice", "alice-pass");
      await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
      await join(alice, "ops");
      await join(bob, "ops");
      await setting(alice, "ops", { restrictRoomMentions: true, readOnly: false });
      await ask(
        alice,
        { type: "rename_room", room: "ops", name: "dev" },
        (f) => f.type === "room_renamed" && f.ref !== undefined,
      );
      await bob.next("room_renamed");
      assert.deepEqual(
        await refusal(bob, { type: "send", room: "dev", text: "@room?" }),
        ["forbidden", REFUSAL, true],
        "the rename kept it, in the refusal's words too",
      );
    }
    await using srv = await startTestServer({ users: USERS, dir, args });
    await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
    assert.deepEqual(
      await refusal(bob, { type: "send", room: "dev", text: "@here?" }),
      ["forbidden", REFUSAL, true],
    );
    assert.equal((await join(bob, "dev")).restrictRoomMentions, true);
    assert.deepEqual(await texts(bob, "dev"), []);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("through Redis: restrictRoomMentions set on one node is enforced on the other, renamed or not", async () => {
  await using cluster = await startCluster(2, { users: USERS });
  const [a, b] = cluster.nodes.map((n) => `ws://127.0.0.1:${n.port}/ws`);
  await using alice = await signIn(a, "alice", "alice-pass");
  await using carol = await signIn(a, "carol", "carol-pass");
  await using bob = await signIn(b, "bob", "bob-pass-1");
  for (const c of [alice, carol, bob]) await join(c, "ops");
  // Node b reads the room's kind while it is open.
  await sent(bob, { room: "ops", text: "@here hello" });
  await carol.next((f) => f.type === "message" && f.text === "@here hello");

  await setting(alice, "ops", { restrictRoomMentions: true });
  assert.deepEqual(await bob.next("room_settings"), {
    type: "room_settings",
    room: "ops",
    settings: { restrictRoomMentions: true },
    by: "alice",
  });
  assert.deepEqual(
    await refusal(bob, { type: "send", room: "ops", text: "@room hello" }),
    ["forbidden", "Only admins may notify everyone in #ops with @room or @here", true],
  );
  await ask(
    alice,
    { type: "rename_room", room: "ops", name: "dev" },
    (f) => f.type === "room_renamed" && f.ref !== undefined,
  );
  await bob.next("room_renamed");
  assert.deepEqual(
    await refusal(bob, { type: "send", room: "dev", text: "@room hello" }),
    ["forbidden", REFUSAL, true],
  );
  const fine = await sent(bob, { room: "dev", text: "hello all" });
  // carol, on the other node, got nothing refused: her next message is the one that went.
  await carol.next("room_renamed");
  const next = await carol.next("message");
  assert.equal(next.type === "message" && next.id, fine);
  assert.deepEqual(await texts(carol, "dev"), ["@here hello", "hello all"]);
});
