/**
 * Issue 19's sign-in storm: joins are posted one by one only in rooms below
 * `--announce-below`, larger rooms get a coalesced `member_count`, `joined`
 * carries the count and a first page of members, and `members` pages
 * through the rest (members of the room only).
 */
import assert from "node:assert/strict";
import { MEMBERS_PAGE, type ServerFrame } from "../protocol.ts";
import { closeAll, type SignedIn, signIn, startTestServer, type TestClient } from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type Of<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** Signs `names` in one after the other, each closed once welcomed (they stay members). */
async function signInOnce(ws: string, names: string[]): Promise<void> {
  for (const name of names) await (await signIn(ws, name)).close();
}

/** `system` frames of `c` about `room`, as "join:user" or "leave:user". */
function posted(c: TestClient, room: string): string[] {
  return c.all.filter((f): f is Of<"system"> => f.type === "system" && f.room === room)
    .map((f) => `${f.event}:${f.user}`);
}

/** Waits until `c` has heard `room`'s count be `count`. */
function countHeard(c: TestClient, room: string, count: number): Promise<Of<"member_count">> {
  return c.next<Of<"member_count">>((f) =>
    f.type === "member_count" && f.room === room && f.count === count
  );
}

Deno.test("joins and leaves are posted below --announce-below and counted above it", async () => {
  await using srv = await startTestServer({ args: ["--announce-below", "3"] });
  let alice: SignedIn | undefined, bob: SignedIn | undefined, carol: SignedIn | undefined;
  try {
    alice = await signIn(srv.ws, "alice");
    bob = await signIn(srv.ws, "bob");
    // general has 2 members with bob: posted.
    await alice.next((f) => f.type === "system" && f.user === "bob" && f.event === "join");
    carol = await signIn(srv.ws, "carol");
    // 3 with carol: not posted, counted.
    await countHeard(alice, "general", 3);
    await countHeard(bob, "general", 3);
    const own = carol.all.find((f): f is Of<"joined"> => f.type === "joined");
    // A first sign-in's general arrives in the welcome; a join brings `joined`.
    carol.send({ type: "join", room: "general" });
    const joined = own ?? await carol.next<Of<"joined">>("joined");
    assert.equal(joined.memberCount, 3);
    assert.deepEqual(joined.members, ["alice", "bob", "carol"]);

    for (const c of [alice, bob, carol]) {
      c.send({ type: "join", room: "ops" });
      await c.next((f) => f.type === "joined" && f.room === "ops");
    }
    await countHeard(alice, "ops", 3);
    // carol leaves a room of 3: not posted; then bob leaves a room of 2: posted.
    carol.send({ type: "leave", room: "ops" });
    await carol.next((f) => f.type === "left" && f.room === "ops");
    await countHeard(alice, "ops", 2);
    bob.send({ type: "leave", room: "ops" });
    await alice.next((f) => f.type === "system" && f.room === "ops" && f.event === "leave");
    await alice.barrier();
    assert.deepEqual(posted(alice, "general"), ["join:bob"], "carol's join was not posted");
    assert.deepEqual(posted(alice, "ops"), ["join:bob", "leave:bob"]);
    assert.deepEqual(posted(bob, "general"), [], "nobody joined after bob below the size");
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("--announce-below 0 posts joins in every room", async () => {
  await using srv = await startTestServer({ args: ["--announce-below", "0"] });
  let watcher: SignedIn | undefined;
  try {
    watcher = await signIn(srv.ws, "watcher");
    await signInOnce(srv.ws, ["u1", "u2", "u3"]);
    await watcher.next((f) => f.type === "system" && f.user === "u3");
    await watcher.barrier();
    assert.deepEqual(posted(watcher, "general"), ["join:u1", "join:u2", "join:u3"]);
    assert.equal(watcher.all.filter((f) => f.type === "member_count").length, 0);
  } finally {
    await closeAll(watcher);
  }
});

Deno.test("a storm of first sign-ins costs a watcher no frame per newcomer above the size", async () => {
  await using srv = await startTestServer();
  let watcher: SignedIn | undefined;
  try {
    watcher = await signIn(srv.ws, "aaa-watcher");
    const names = Array.from({ length: 140 }, (_, i) => `n${String(i).padStart(3, "0")}`);
    await signInOnce(srv.ws, names);
    await countHeard(watcher, "general", 141);
    // The default size is 100: the 98 who made general 2 to 99 members strong were posted.
    assert.deepEqual(posted(watcher, "general"), names.slice(0, 98).map((n) => `join:${n}`));
    const counts = watcher.all.filter((f) => f.type === "member_count");
    // At most one a second, however many joined: the storm took a few seconds at most here.
    assert.ok(counts.length <= 30, `${counts.length} member_count frames`);
    // A newcomer's `joined` is the first page, whatever the room's size.
    const late = await signIn(srv.ws, "zzz-late");
    try {
      late.send({ type: "join", room: "general" });
      const joined = await late.next<Of<"joined">>("joined");
      assert.equal(joined.memberCount, 142);
      assert.equal(joined.members.length, MEMBERS_PAGE);
      assert.deepEqual(joined.members, ["aaa-watcher", ...names.slice(0, MEMBERS_PAGE - 1)]);
    } finally {
      await late.close();
    }
  } finally {
    await closeAll(watcher);
  }
});

Deno.test("members pages through a room by name; only members may ask", async () => {
  await using srv = await startTestServer();
  let alice: SignedIn | undefined, outsider: SignedIn | undefined;
  try {
    alice = await signIn(srv.ws, "alice");
    const names = Array.from({ length: 130 }, (_, i) => `m${String(i).padStart(3, "0")}`);
    await signInOnce(srv.ws, names);
    const all = ["alice", ...names].sort();
    const got: string[] = [];
    let after: string | undefined;
    for (let pages = 1;; pages++) {
      alice.send({ type: "members", room: "general", limit: 50, ...(after ? { after } : {}) });
      const page: Of<"members"> = await alice.next<Of<"members">>("members");
      assert.equal(page.room, "general");
      assert.equal(page.count, 131);
      assert.equal(page.after, after);
      assert.ok(page.members.length <= 50);
      got.push(...page.members);
      if (!page.more) {
        assert.equal(pages, 3, "131 names in pages of 50");
        break;
      }
      after = page.members.at(-1);
    }
    assert.deepEqual(got, all);
    // Without a limit: the default page.
    alice.send({ type: "members", room: "general" });
    const first = await alice.next<Of<"members">>("members");
    assert.deepEqual(first.members, all.slice(0, MEMBERS_PAGE));
    assert.equal(first.more, true);
    // After a name that is not a member: the names after it.
    alice.send({ type: "members", room: "general", after: "m0995" });
    assert.deepEqual((await alice.next<Of<"members">>("members")).members, names.slice(100));

    // A private room's members are its members' business.
    alice.send({ type: "join", room: "hideout", private: true });
    await alice.next((f) => f.type === "joined" && f.room === "hideout");
    outsider = await signIn(srv.ws, "outsider");
    for (const room of ["hideout", "nowhere"]) {
      outsider.send({ type: "members", room, ref: room });
      const err: Of<"error"> = await outsider.next<Of<"error">>("error");
      assert.equal(err.code, "unknown_room");
      assert.equal(err.ref, room);
    }
    // Bad requests are refused with what is wrong; the connection goes on.
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ type: "members" }, /"room" is required/],
      [{ type: "members", room: "general", limit: 0 }, /"limit" must be between 1 and 200/],
      [{ type: "members", room: "general", limit: 201 }, /"limit" must be between 1 and 200/],
      [{ type: "members", room: "general", after: "x y" }, /Invalid user name/],
      [{ type: "members", room: "general", after: 5 }, /"after" must be a string/],
    ];
    for (const [frame, message] of bad) {
      outsider.send(frame);
      const err: Of<"error"> = await outsider.next<Of<"error">>("error");
      assert.equal(err.code, "bad_request");
      assert.match(err.message, message);
    }
    outsider.send({ type: "members", room: "general", after: "m128" });
    const tail = await outsider.next<Of<"members">>("members");
    assert.deepEqual(tail.members, ["m129", "outsider"]);
    assert.equal(tail.more, false);
    assert.equal(tail.count, 132);
  } finally {
    await closeAll(alice, outsider);
  }
});

Deno.test("with Redis, every node posts or counts a join alike, and pages come from Redis", async () => {
  await using cluster = await startCluster(2, { args: ["--announce-below", "3"] });
  const [a, b] = cluster.nodes;
  let alice: SignedIn | undefined, bob: SignedIn | undefined;
  try {
    alice = await signIn(a.ws, "alice");
    bob = await signIn(b.ws, "bob");
    await alice.next((f) => f.type === "system" && f.user === "bob" && f.event === "join");
    // carol on node b makes general 3 strong: counted on both nodes, posted on neither.
    await (await signIn(b.ws, "carol")).close();
    await countHeard(alice, "general", 3);
    await countHeard(bob, "general", 3);
    const names = Array.from({ length: 20 }, (_, i) => `m${String(i).padStart(2, "0")}`);
    await signInOnce(a.ws, names);
    await countHeard(bob, "general", 23);
    await alice.barrier();
    await bob.barrier();
    assert.deepEqual(posted(alice, "general"), ["join:bob"]);
    assert.deepEqual(posted(bob, "general"), []);
    const got: string[] = [];
    let after: string | undefined;
    do {
      bob.send({ type: "members", room: "general", limit: 7, ...(after ? { after } : {}) });
      const page: Of<"members"> = await bob.next<Of<"members">>("members");
      assert.equal(page.count, 23);
      got.push(...page.members);
      after = page.more ? page.members.at(-1) : undefined;
    } while (after !== undefined);
    assert.deepEqual(got, ["alice", "bob", "carol", ...names]);
  } finally {
    await closeAll(alice, bob);
  }
});
