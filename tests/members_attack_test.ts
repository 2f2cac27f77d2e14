/**
 * Attacks on issue 19's member pages and coalesced counts (`members`,
 * `member_count`, `joined.memberCount`): each test here is a problem found
 * by review, asserting what the protocol promises (docs/protocol.md
 * "members", "member_count", "join → joined"); each failed on the code
 * before its fix.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import {
  closeAll,
  type SignedIn,
  signIn,
  signInWithToken,
  startTestServer,
  waitUntil,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type Of<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** The `member_count`s of `room` that `c` heard, oldest first. */
function counts(c: SignedIn, room: string): number[] {
  return c.all.filter((f): f is Of<"member_count"> => f.type === "member_count" && f.room === room)
    .map((f) => f.count);
}

/** Joins `room` with `c` and waits for its `joined`. */
async function join(c: SignedIn, room: string): Promise<Of<"joined">> {
  c.send({ type: "join", room });
  return await c.next<Of<"joined">>((f) => f.type === "joined" && f.room === room);
}

Deno.test("with Redis, member_count ends on the room's count after concurrent changes on two nodes", async () => {
  // The coalesced count was whichever member event arrived last, not the
  // newest count: two nodes' events reach the broker in another order than
  // their store writes. It is read from the store when it goes out now. Here ten leave while
  // ten others join, so the room stays 12 strong; any count heard last but
  // taken mid-way is wrong. A race: most runs see several rounds go wrong.
  await using cluster = await startCluster(2, { args: ["--announce-below", "2"] });
  const [a, b] = cluster.nodes;
  let watcherA: SignedIn | undefined, watcherB: SignedIn | undefined;
  const inside: SignedIn[] = [], outside: SignedIn[] = [];
  try {
    watcherA = await signIn(a.ws, "watcher-a");
    watcherB = await signIn(b.ws, "watcher-b");
    for (let i = 0; i < 20; i++) {
      (i < 10 ? inside : outside).push(await signIn(i % 2 ? b.ws : a.ws, `u${i}`));
    }
    for (const c of [watcherA, watcherB, ...inside]) await join(c, "big");
    const wrong: string[] = [];
    for (let round = 0; round < 10; round++) {
      const [leaving, joining] = round % 2 === 0 ? [inside, outside] : [outside, inside];
      const heardA = counts(watcherA, "big").length, heardB = counts(watcherB, "big").length;
      /** What each watcher heard in this round. */
      const heard =
        () => [counts(watcherA!, "big").slice(heardA), counts(watcherB!, "big").slice(heardB)];
      for (let i = 0; i < 10; i++) {
        leaving[i].send({ type: "leave", room: "big" });
        joining[i].send({ type: "join", room: "big" });
      }
      await Promise.all([
        ...leaving.map((c) => c.next((f) => f.type === "left" && f.room === "big")),
        ...joining.map((c) => c.next((f) => f.type === "joined" && f.room === "big")),
      ]);
      watcherA.send({ type: "members", room: "big" });
      const page: Of<"members"> = await watcherA.next<Of<"members">>("members");
      assert.equal(page.count, 12, "the store's count");
      // Counts go out at most once a second: give them five.
      await waitUntil(() => heard().every((h) => h.at(-1) === 12), "both watchers hear 12", 5000)
        .catch(() => wrong.push(`round ${round}: heard ${JSON.stringify(heard())} (a, b)`));
    }
    assert.deepEqual(wrong, [], "every round ends on the room's count, 12");
  } finally {
    await closeAll(watcherA, watcherB, ...inside, ...outside);
  }
});

Deno.test("with Redis, one user joining a large room from two nodes at once posts no system join", async () => {
  // The node whose store join finds the user a member already ran its own
  // onMember without a count, and an event without a count is posted: its
  // node's members got a `system` join in a room at or above
  // --announce-below (and, in a small room, the join twice). It is `quiet` now.
  await using cluster = await startCluster(2, { args: ["--announce-below", "2"] });
  const [a, b] = cluster.nodes;
  let onA: SignedIn | undefined, onB: SignedIn | undefined;
  let xa: SignedIn | undefined, xb: SignedIn | undefined;
  try {
    onA = await signIn(a.ws, "member-a");
    onB = await signIn(b.ws, "member-b");
    await join(onA, "big");
    await join(onB, "big");
    xa = await signIn(a.ws, "xuser");
    xb = await signInWithToken(b.ws, xa.welcome.token!);
    // Both devices open the room at once (two tabs, each on its own node).
    xa.send({ type: "join", room: "big" });
    xb.send({ type: "join", room: "big" });
    await xa.next((f) => f.type === "joined" && f.room === "big");
    await xb.next((f) => f.type === "joined" && f.room === "big");
    // 3 members, at or above --announce-below 2: counted on both nodes.
    for (const c of [onA, onB]) {
      await c.next((f) => f.type === "member_count" && f.room === "big" && f.count === 3);
      await c.barrier();
    }
    const posted = (c: SignedIn) =>
      c.all.filter((f) => f.type === "system" && f.room === "big").map((f) =>
        `${(f as Of<"system">).event}:${(f as Of<"system">).user}`
      );
    assert.deepEqual(posted(onA), [], "member-a is told of no join");
    assert.deepEqual(posted(onB), [], "member-b is told of no join");
  } finally {
    await closeAll(onA, onB, xa, xb);
  }
});

Deno.test("members naming a renamed room says where it went, as every other frame does", async () => {
  // docs/protocol.md "rename_room": "a frame naming the old room is refused
  // with unknown_room and … words that say where it went". `members`
  // answered with its own words: a client paging the member list across a
  // rename was not told the new name.
  await using srv = await startTestServer({
    users: { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" },
  });
  let alice: SignedIn | undefined;
  try {
    alice = await signIn(srv.ws, "alice", "alice-pass");
    await join(alice, "dev");
    alice.send({ type: "rename_room", room: "dev", name: "engineering", ref: "n1" });
    await alice.next((f) => f.type === "room_renamed" && f.ref === "n1");
    // What another frame naming the old room is told:
    alice.send({ type: "history", room: "dev" });
    const other: Of<"error"> = await alice.next<Of<"error">>("error");
    assert.equal(other.code, "unknown_room");
    assert.equal(other.message, "#dev was renamed #engineering: use its new name");
    alice.send({ type: "members", room: "dev", ref: "m1" });
    const err: Of<"error"> = await alice.next<Of<"error">>((f) =>
      f.type === "error" && f.ref === "m1"
    );
    assert.equal(err.code, "unknown_room");
    assert.equal(err.message, "#dev was renamed #engineering: use its new name");
  } finally {
    await closeAll(alice);
  }
});
