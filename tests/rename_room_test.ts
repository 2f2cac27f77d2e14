/**
 * Renaming a room over real sockets: an admin's `rename_room` moves the
 * room's history, members, unread counts, topic, settings and files to the
 * new name; every member's connection is told once, on one node and across
 * two nodes through Redis; every refusal has its code and changes nothing;
 * the old name is free for a new, empty room; sends racing the rename are
 * either stored under the new name or refused, never lost.
 */
import assert from "node:assert/strict";
import type { ChatMessage, ServerFrame } from "../protocol.ts";
import type { FileInfo } from "../server/files/files.ts";
import { signIn, startTestServer, type TestClient, waitUntil } from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

const USERS = {
  alice: { password: "alice-pass", role: "admin" },
  dave: { password: "dave-pass-1", role: "admin" },
  bob: "bob-pass-1",
  carol: "carol-pass",
};

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
type Message = ChatMessage & { type: "message" };

let refs = 0;

/** Sends `frame` with a fresh ref; resolves the frame answering it (error or otherwise). */
async function ask(c: TestClient, frame: Record<string, unknown>): Promise<ServerFrame> {
  const ref = `q${++refs}`;
  c.send({ ...frame, ref });
  return await c.next((f) => "ref" in f && f.ref === ref);
}

async function join(c: TestClient, room: string): Promise<F<"joined">> {
  c.send({ type: "join", room });
  return await c.next<F<"joined">>((f) => f.type === "joined" && f.room === room);
}

async function say(c: TestClient, room: string, text: string): Promise<Message> {
  const ref = `s${++refs}`;
  c.send({ type: "send", room, text, ref });
  return await c.next<Message>((f) => f.type === "message" && f.ref === ref);
}

async function roomNames(c: TestClient): Promise<string[]> {
  c.send({ type: "rooms" });
  const list = await c.next<F<"rooms">>("rooms");
  return list.rooms.map((r) => r.name).sort();
}

async function history(c: TestClient, room: string): Promise<F<"history">> {
  c.send({ type: "history", room, limit: 100 });
  return await c.next<F<"history">>((f) => f.type === "history" && f.room === room);
}

/** The code of the error a `history` of `room` gets (`history` takes no ref). */
async function historyRefusal(c: TestClient, room: string): Promise<string> {
  c.send({ type: "history", room });
  const f = await c.next((f) => f.type === "error" || (f.type === "history" && f.room === room));
  return f.type === "error" ? f.code : "answered";
}

function errorOf(f: ServerFrame): [string, string] | null {
  return f.type === "error" ? [f.code, f.message] : null;
}

Deno.test("an admin renames a room: history, members, unread, topic, settings and files move; each member hears it once", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using bob2 = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  for (const c of [alice, bob, carol]) await join(c, "dev");
  await bob2.next((f) => f.type === "joined" && f.room === "dev");
  const first = await say(bob, "dev", "first");
  const second = await say(carol, "dev", "second");
  bob.send({ type: "topic", room: "dev", topic: "builds" });
  await bob.next((f) => f.type === "topic" && f.room === "dev");
  // A file sent in the room, opened by carol through her link.
  const up = await fetch(`${srv.http}/api/files?name=notes.txt`, {
    method: "POST",
    headers: { authorization: `Bearer ${bob.welcome.token}` },
    body: "release notes",
  });
  assert.equal(up.status, 201);
  const file = await up.json() as FileInfo;
  bob.send({ type: "send", room: "dev", text: "notes", files: [file.id], ref: "f1" });
  await bob.next((f) => f.type === "message" && f.ref === "f1");
  const carolsCopy = await carol.next<Message>((f) => f.type === "message" && f.text === "notes");
  const link = carolsCopy.files![0].url!;
  assert.equal(await fetch(srv.http + link).then((r) => r.text()), "release notes");
  // bob has read up to `first`; the room is read-only for members.
  bob.send({ type: "read", room: "dev", id: first.id });
  await bob2.next((f) => f.type === "read" && f.room === "dev");
  const ro = await ask(alice, { type: "room_settings", room: "dev", readOnly: true });
  assert.equal(ro.type, "room_settings");
  const before = await history(bob, "dev");

  const answer = await ask(alice, { type: "rename_room", room: "dev", name: "engineering" });
  const ref = `q${refs}`;
  assert.deepEqual(answer, {
    type: "room_renamed",
    room: "dev",
    name: "engineering",
    by: "alice",
    ref,
  });
  for (const c of [bob, bob2, carol]) {
    const told = await c.next<F<"room_renamed">>("room_renamed");
    assert.deepEqual(told, { type: "room_renamed", room: "dev", name: "engineering", by: "alice" });
  }
  // Nobody heard it twice (the admin, a member too, got only the answer).
  for (const c of [alice, bob, bob2, carol]) {
    await c.barrier();
    assert.equal(c.peek("room_renamed").length, 0);
  }

  // The same history, ids and positions under the new name; nothing under the old.
  const after = await history(bob, "engineering");
  assert.deepEqual(
    after.messages.map((m) => [m.id, m.seq, m.from, m.text, m.room]),
    before.messages.map((m) => [m.id, m.seq, m.from, m.text, "engineering"]),
  );
  assert.deepEqual(after.messages.slice(0, 2).map((m) => m.id), [first.id, second.id]);
  assert.deepEqual(await historyRefusal(bob, "dev"), "unknown_room");
  assert.deepEqual(await roomNames(carol), ["engineering", "general"]);
  // The file opens through the same link, and through the new history's.
  assert.equal(await fetch(srv.http + link).then((r) => r.text()), "release notes");
  const fresh = (await history(carol, "engineering")).messages.find((m) => m.text === "notes")!;
  assert.equal(await fetch(srv.http + fresh.files![0].url!).then((r) => r.text()), "release notes");
  // Still read-only: bob may not post; the old name says where the room went.
  assert.deepEqual(errorOf(await ask(bob, { type: "send", room: "engineering", text: "x" })), [
    "forbidden",
    "Only admins post in #engineering: it is read-only",
  ]);
  assert.deepEqual(errorOf(await ask(bob, { type: "send", room: "dev", text: "x" })), [
    "unknown_room",
    "#dev was renamed #engineering: use its new name",
  ]);
  const news = await say(alice, "engineering", "renamed!");
  assert.equal(news.room, "engineering");
  for (const c of [bob, bob2, carol]) {
    const got = await c.next<Message>((f) => f.type === "message" && f.text === "renamed!");
    assert.equal(got.room, "engineering");
  }

  // A new connection of bob's: the room under its new name, topic, kind and unread intact.
  await using again = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.deepEqual([...again.welcome.rooms].sort(), ["engineering", "general"]);
  const conv = again.welcome.conversations!.find((c) => c.room === "engineering")!;
  assert.equal(conv.read, first.id);
  assert.equal(conv.unread, 2, "second and renamed! are unread (notes is bob's own)");
  assert.equal(again.welcome.conversations!.some((c) => c.room === "dev"), false);
  const joined = await join(again, "engineering");
  assert.equal(joined.topic, "builds");
  assert.equal(joined.readOnly, true);

  // The audit log says who renamed what.
  const audit = await fetch(`${srv.http}/api/audit`, {
    headers: { authorization: `Bearer ${alice.welcome.token}` },
  }).then((r) => r.json());
  const entry = audit.entries.find((e: { action: string }) => e.action === "rename");
  assert.deepEqual(
    [entry.by, entry.target, entry.detail],
    ["alice", "dev", "to #engineering"],
  );
});

Deno.test("refusals of rename_room: each has its code and words, and changes nothing", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  await join(bob, "dev");
  await join(carol, "ops");
  await say(bob, "dev", "kept");
  carol.send({ type: "join", room: "secret", private: true });
  await carol.next((f) => f.type === "joined" && f.room === "secret");
  const cases: [TestClient, Record<string, unknown>, [string, string]][] = [
    [bob, { room: "dev", name: "x" }, ["forbidden", "Only admins may do this"]],
    [alice, { room: "nope", name: "x" }, ["unknown_room", 'There is no room "nope"']],
    [alice, { room: "dev", name: "ops" }, ["name_taken", 'There is a room "ops" already']],
    [alice, { room: "dev", name: "general" }, ["name_taken", 'There is a room "general" already']],
    [alice, { room: "general", name: "lobby" }, [
      "bad_request",
      'Everyone is in "general": it keeps its name',
    ]],
    // A private room is its members' even to admins: as if it did not exist.
    [alice, { room: "secret", name: "x" }, ["unknown_room", 'There is no room "secret"']],
    [alice, { room: "dev", name: "dev" }, ["bad_request", "#dev has that name already"]],
    [alice, { room: "dev", name: "no spaces" }, [
      "bad_request",
      'Invalid room name "no spaces": use 1-32 letters, digits, - or _',
    ]],
    [alice, { room: "dev" }, ["bad_request", 'Field "name" is required']],
  ];
  for (const [who, frame, want] of cases) {
    assert.deepEqual(errorOf(await ask(who, { type: "rename_room", ...frame })), want);
  }
  // Nothing moved: the rooms, their members and history are as they were.
  assert.deepEqual(await roomNames(alice), ["dev", "general", "ops"]);
  assert.deepEqual(await roomNames(carol), ["dev", "general", "ops", "secret"]);
  assert.deepEqual((await history(bob, "dev")).messages.map((m) => m.text), ["kept"]);
  // Nobody heard of a rename.
  for (const c of [alice, bob, carol]) {
    await c.barrier();
    assert.equal(c.peek("room_renamed").length, 0);
  }
});

Deno.test("after a rename the old name is free: a new room of that name starts empty, and renames chain", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  await join(bob, "dev");
  const old = await say(bob, "dev", "from the old room");
  assert.equal(
    (await ask(alice, { type: "rename_room", room: "dev", name: "dev2" })).type,
    "room_renamed",
  );
  await bob.next("room_renamed");
  // carol creates "dev" anew: empty, and she does not see the old room's messages.
  const fresh = await join(carol, "dev");
  assert.deepEqual(fresh.history, []);
  const m = await say(carol, "dev", "a new room");
  assert.ok(m.id > old.id, "ids continue after the renamed room's");
  // bob (in dev2) hears nothing of the new dev; carol nothing of dev2.
  const back = await say(bob, "dev2", "still here");
  assert.equal(back.room, "dev2");
  await carol.barrier();
  assert.equal(carol.peek((f) => f.type === "message" && f.text === "still here").length, 0);
  assert.equal(bob.peek((f) => f.type === "message" && f.text === "a new room").length, 0);
  // A `since` from the old room's positions on the new room says gap.
  carol.send({ type: "history", room: "dev", since: old.seq });
  const page = await carol.next<F<"history">>((f) => f.type === "history" && f.room === "dev");
  assert.equal(page.gap, true);
  // Renamed again, and back to a free name: bob follows each time.
  assert.equal(
    (await ask(alice, { type: "rename_room", room: "dev2", name: "dev3" })).type,
    "room_renamed",
  );
  assert.deepEqual(await bob.next<F<"room_renamed">>("room_renamed"), {
    type: "room_renamed",
    room: "dev2",
    name: "dev3",
    by: "alice",
  });
  assert.deepEqual(
    (await history(bob, "dev3")).messages.map((x) => x.text),
    ["from the old room", "still here"],
  );
  assert.deepEqual(errorOf(await ask(bob, { type: "send", room: "dev2", text: "x" })), [
    "unknown_room",
    "#dev2 was renamed #dev3: use its new name",
  ]);
  // A device of bob's that was away hears of both old names, newest first.
  await using away = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.deepEqual(away.welcome.renamed, [
    { room: "dev2", name: "dev3" },
    { room: "dev", name: "dev3" },
  ]);
  // Once bob is in the new "dev" too, that name is that room's: not listed.
  await join(bob, "dev");
  await using later = await signIn(srv.ws, "bob", "bob-pass-1");
  assert.deepEqual(later.welcome.renamed, [{ room: "dev2", name: "dev3" }]);
  // carol is in none of the renamed rooms: she hears of no rename.
  await using carol2 = await signIn(srv.ws, "carol", "carol-pass");
  assert.equal(carol2.welcome.renamed, undefined);
});

Deno.test("sends racing a rename are each stored under the new name or refused, never lost", async () => {
  await using srv = await startTestServer({
    users: USERS,
    args: ["--rate", "10000", "--burst", "10000"],
  });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  await join(bob, "race");
  const N = 200;
  // Twenty acknowledged before, then the rest in flight as the rename lands.
  const outcome = new Map<string, string>();
  for (let i = 0; i < 20; i++) {
    bob.send({ type: "send", room: "race", text: `m${i}`, ref: `r${i}` });
    const ack = await bob.next<Message>((f) => f.type === "message" && f.ref === `r${i}`);
    outcome.set(`r${i}`, `ok:${ack.room}`);
  }
  for (let i = 20; i < N; i++) {
    bob.send({ type: "send", room: "race", text: `m${i}`, ref: `r${i}` });
    if (i === 25) alice.send({ type: "rename_room", room: "race", name: "raced", ref: "rename" });
  }
  await waitUntil(() => {
    for (
      const f of bob.peek((f) => "ref" in f && typeof f.ref === "string" && /^r\d+$/.test(f.ref))
    ) {
      const r = (f as { ref: string }).ref;
      outcome.set(
        r,
        f.type === "message" ? `ok:${f.room}` : `error:${f.type === "error" && f.code}`,
      );
    }
    return outcome.size === N;
  }, "every send answered");
  const stored = [...outcome].filter(([, o]) => o.startsWith("ok")).map(([r]) => r);
  for (const [, o] of outcome) {
    assert.ok(["ok:race", "ok:raced", "error:unknown_room"].includes(o), o);
  }
  // Every acknowledged message is in the renamed room's history, once, in order.
  const page = await history(bob, "raced");
  assert.deepEqual(page.messages.map((m) => m.text), stored.map((r) => `m${r.slice(1)}`));
  assert.deepEqual(await historyRefusal(bob, "race"), "unknown_room");
});

Deno.test("a rename through Redis reaches members on every node at once, and they go on in the new name", async () => {
  await using cluster = await startCluster(2, { users: await hashed() });
  const [a, b] = cluster.nodes;
  await using alice = await signIn(a.ws, "alice", "alice-pass");
  await using bob = await signIn(b.ws, "bob", "bob-pass-1");
  await using carol = await signIn(a.ws, "carol", "carol-pass");
  await join(bob, "dev");
  await join(carol, "dev");
  await say(bob, "dev", "before");
  await carol.next((f) => f.type === "message" && f.text === "before");
  assert.equal(
    (await ask(alice, { type: "rename_room", room: "dev", name: "eng" })).type,
    "room_renamed",
  );
  for (const c of [bob, carol]) {
    assert.deepEqual((await c.next<F<"room_renamed">>("room_renamed")).name, "eng");
  }
  // bob on node B and carol on node A talk in the new name.
  await say(bob, "eng", "after, from B");
  const got = await carol.next<Message>((f) => f.type === "message" && f.text === "after, from B");
  assert.equal(got.room, "eng");
  await say(carol, "eng", "after, from A");
  assert.equal(
    (await bob.next<Message>((f) => f.type === "message" && f.text === "after, from A")).room,
    "eng",
  );
  // Node B refuses the old name with where it went, and a sign-in there sees the new name only.
  assert.deepEqual(errorOf(await ask(bob, { type: "send", room: "dev", text: "x" })), [
    "unknown_room",
    "#dev was renamed #eng: use its new name",
  ]);
  await using bob2 = await signIn(b.ws, "bob", "bob-pass-1");
  assert.deepEqual([...bob2.welcome.rooms].sort(), ["eng", "general"]);
  assert.deepEqual(
    (await history(bob2, "eng")).messages.map((m) => m.text),
    ["before", "after, from B", "after, from A"],
  );
});

async function hashed(): Promise<Record<string, string | { password: string; role: string }>> {
  const { hashPassword } = await import("./helpers.ts");
  const out: Record<string, string | { password: string; role: string }> = {};
  for (const [name, v] of Object.entries(USERS)) {
    const password = typeof v === "string" ? v : v.password;
    out[name] = typeof v === "string"
      ? await hashPassword(password)
      : { ...v, password: await hashPassword(password) };
  }
  return out;
}

Deno.test("joins by a non-member racing a rename: the server keeps answering, and they learn nothing of the new name", async () => {
  // Its own process: a server stuck in a loop shows as a missing pong, not a hung test run.
  const { spawnServer } = await import("./chat_process.ts");
  const dir = await Deno.makeTempDir({ prefix: "chat-rename-race-" });
  await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(await hashed()));
  await using proc = await spawnServer([
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--users",
    `${dir}/users.json`,
    "--rate",
    "100000",
    "--burst",
    "100000",
  ]);
  try {
    await using alice = await signIn(proc.ws, "alice", "alice-pass");
    await using carol = await signIn(proc.ws, "carol", "carol-pass");
    for (let t = 0; t < 12; t++) {
      const [p, q, secret] = [`jp${t}`, `jq${t}`, t % 2 === 0];
      await join(alice, p);
      await ask(alice, { type: "room_settings", room: p, private: secret });
      // A private room's joins are refused; a public one's are taken — either way racing the rename.
      const joins = secret ? 20 : 1;
      for (let i = 0; i < joins; i++) carol.send({ type: "join", room: p });
      alice.send({ type: "rename_room", room: p, name: q, ref: `rn${t}` });
      if (secret) { for (let i = 0; i < joins; i++) carol.send({ type: "join", room: p }); }
      await alice.next((f) => "ref" in f && f.ref === `rn${t}`);
      carol.send({ type: "join", room: q });
      await carol.next((f) =>
        (f.type === "joined" && f.room === q) || (f.type === "error" && f.code === "unknown_room")
      );
      await alice.barrier();
      await carol.barrier();
      if (secret) {
        assert.equal(carol.peek((f) => f.type === "room_renamed").length, 0, `trial ${t}`);
        assert.equal(carol.peek((f) => f.type === "joined" && f.room === q).length, 0);
      }
      carol.inbox.length = 0;
    }
    const health = await fetch(`http://127.0.0.1:${proc.port}/healthz`);
    assert.equal(health.status, 200);
    await health.body?.cancel();
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("renamesFor() follows each room by the order of renames, never through another room of a reused name", async () => {
  const { renamesFor } = await import("../server/hub/rooms.ts");
  const list = (...pairs: string[]) =>
    pairs.map((p) => ({ room: p.split(">")[0], name: p.split(">")[1] }));
  // Newest first: a→b, then b→c: both old names lead to c.
  assert.deepEqual(renamesFor(list("b>c", "a>b"), new Set(["c"])), [
    { room: "b", name: "c" },
    { room: "a", name: "c" },
  ]);
  // secret→x, x→y, then another room took "x": the old room is y, not the new x.
  assert.deepEqual(renamesFor(list("x>y", "secret>x"), new Set(["x"])), []);
  assert.deepEqual(renamesFor(list("x>y", "secret>x"), new Set(["x", "y"])), [
    { room: "secret", name: "y" },
  ]);
  // b→x first, later a→b, later b→c: the old b is x; the old a is c.
  assert.deepEqual(renamesFor(list("b>c", "a>b", "b>x"), new Set(["x", "c"])), [
    { room: "b", name: "c" },
    { room: "a", name: "c" },
  ]);
  // A cycle (a→b, b→a) ends where the renames end; a name the user is in is never listed.
  assert.deepEqual(renamesFor(list("b>a", "a>b"), new Set(["a"])), [{ room: "b", name: "a" }]);
  assert.deepEqual(renamesFor(list("a>b"), new Set(["a", "b"])), []);
});

Deno.test("a non-member is not told where a private room went, by a refusal or by a welcome", async () => {
  await using srv = await startTestServer({ users: USERS });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using carol = await signIn(srv.ws, "carol", "carol-pass");
  alice.send({ type: "join", room: "secret-plans", private: true });
  await alice.next((f) => f.type === "joined" && f.room === "secret-plans");
  assert.equal(
    (await ask(alice, { type: "rename_room", room: "secret-plans", name: "x" })).type,
    "room_renamed",
  );
  assert.deepEqual(errorOf(await ask(carol, { type: "send", room: "secret-plans", text: "hi" })), [
    "unknown_room",
    'You are not in room "secret-plans": join it first',
  ]);
  assert.equal(
    (await ask(alice, { type: "rename_room", room: "x", name: "y" })).type,
    "room_renamed",
  );
  await join(carol, "x");
  await using again = await signIn(srv.ws, "carol", "carol-pass");
  assert.equal(again.welcome.renamed, undefined);
  await using aliceAgain = await signIn(srv.ws, "alice", "alice-pass");
  // alice was in it all along: both its old names lead her to y.
  assert.deepEqual(aliceAgain.welcome.renamed, [
    { room: "x", name: "y" },
    { room: "secret-plans", name: "y" },
  ]);
});

Deno.test("a kick racing a rename either removes the user from the renamed room or says it did not", async () => {
  await using srv = await startTestServer({
    users: USERS,
    args: ["--rate", "10000", "--burst", "10000"],
  });
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  await using dave = await signIn(srv.ws, "dave", "dave-pass-1");
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  for (let t = 0; t < 10; t++) {
    const [p, q] = [`k${t}`, `kq${t}`];
    for (const c of [alice, dave, bob]) await join(c, p);
    // The rename first, the kick right behind it: the kick's checks pass, then its leave finds
    // the room gone (sometimes the kick wins instead: both outcomes must be told truly).
    alice.send({ type: "rename_room", room: p, name: q, ref: `r${t}` });
    dave.send({ type: "kick", room: p, user: "bob", ref: `k${t}` });
    await alice.next((f) => "ref" in f && f.ref === `r${t}`);
    const kick = await dave.next((f) => "ref" in f && f.ref === `k${t}`);
    await bob.barrier();
    const sent = await ask(bob, { type: "send", room: q, text: "still here?" });
    if (kick.type === "kicked") {
      assert.deepEqual(errorOf(sent)?.[0], "unknown_room", `trial ${t}: kicked, so out of #${q}`);
    } else {
      assert.deepEqual(errorOf(kick), ["unknown_user", `"bob" is not in room "${p}"`]);
      assert.equal(sent.type, "message", `trial ${t}: the kick said it did nothing`);
    }
  }
});
