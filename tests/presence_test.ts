import assert from "node:assert/strict";
import { Rng } from "./chaos/prng.ts";
import { Presence, PRESENCE_FULL_MAX } from "../server/hub/presence.ts";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, signIn, startTestServer, type TestClient } from "./helpers.ts";

/** The online set a broker would hold, telling a {@link Presence} about every change. */
function online(presence?: (p: Set<string>) => Presence) {
  const set = new Set<string>();
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = presence ? presence(set) : new Presence(source);
  return {
    p,
    source,
    add(...users: string[]) {
      for (const u of users) (set.add(u), p.changed(u));
    },
    remove(...users: string[]) {
      for (const u of users) (set.delete(u), p.changed(u));
    },
  };
}

function names(n: number, prefix = "u"): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
}

Deno.test("Presence.frame() sends the full list, coalesced, while few users are online", () => {
  const o = online();
  assert.equal(o.p.frame(0), null, "nothing changed");
  o.add("carol", "alice");
  o.add("bob");
  assert.equal(o.p.frame(0), '{"type":"presence","online":["alice","bob","carol"]}');
  assert.equal(o.p.frame(1), null, "one frame per change");
  o.remove("bob");
  o.add("bob");
  assert.equal(
    o.p.frame(100),
    '{"type":"presence","online":["alice","bob","carol"]}',
    "a flip still goes out: a client welcomed in between saw bob offline",
  );
  assert.equal(o.p.json(), '["alice","bob","carol"]');
  assert.equal(PRESENCE_FULL_MAX, 200);
});

Deno.test("Presence.frame() sends deltas above the threshold, spaced by the number online", () => {
  const set = new Set<string>();
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = new Presence(source, { fullMax: 3, msPerUser: 100, maxInterval: 1000 });
  const add = (u: string) => (set.add(u), p.changed(u));
  const remove = (u: string) => (set.delete(u), p.changed(u));
  add("a"), add("b"), add("c");
  assert.equal(p.frame(0), '{"type":"presence","online":["a","b","c"]}', "3 online: full list");
  add("d");
  assert.equal(p.frame(100), null, "4 online: frames at least 400 ms apart");
  assert.equal(p.frame(400), '{"type":"presence","count":4,"added":["d"],"removed":[]}');
  add("e");
  remove("a");
  assert.equal(p.frame(799), null);
  assert.equal(
    p.frame(800),
    '{"type":"presence","count":4,"added":["e"],"removed":["a"]}',
  );
  remove("e");
  add("e");
  remove("b");
  assert.equal(
    p.frame(801),
    '{"type":"presence","online":["c","d","e"]}',
    "back to 3 online: the full list again, without waiting",
  );
  for (const u of names(20)) add(u);
  assert.equal(p.frame(802), null, "23 online: 2.3 s, capped at 1 s");
  assert.equal(
    p.frame(1801),
    `{"type":"presence","count":23,"added":${JSON.stringify(names(20))},"removed":[]}`,
  );
  add("zz");
  assert.equal(p.frame(2800), null);
  assert.equal(p.frame(2801), '{"type":"presence","count":24,"added":["zz"],"removed":[]}');
  assert.equal(p.json(), JSON.stringify(["c", "d", "e", ...names(20), "zz"]));
});

Deno.test("Presence.frame() lists users that changed and changed back, so late welcomes stay right", () => {
  const set = new Set<string>();
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = new Presence(source, { fullMax: 1, msPerUser: 1000 });
  set.add("a"), p.changed("a");
  set.add("b"), p.changed("b");
  p.frame(0);
  set.delete("b"), p.changed("b");
  // A client signing in now gets welcome.online = ["a"]…
  assert.equal(p.json(), '["a"]');
  set.add("b"), p.changed("b");
  // …so the next frame must tell it that b is online, though b was online at the last frame.
  assert.equal(p.frame(5000), '{"type":"presence","count":2,"added":["b"],"removed":[]}');
});

Deno.test("Presence.frame() sends early once maxChanges changes are pending", () => {
  const set = new Set<string>();
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = new Presence(source, { fullMax: 2, msPerUser: 1000, maxChanges: 3 });
  for (const u of ["a", "b", "c"]) set.add(u), p.changed(u);
  assert.match(p.frame(0)!, /"added":\["a","b","c"\]/);
  set.add("d"), p.changed("d");
  set.add("e"), p.changed("e");
  assert.equal(p.frame(10), null, "two changes wait for the interval");
  set.add("f"), p.changed("f");
  assert.equal(p.frame(20), '{"type":"presence","count":6,"added":["d","e","f"],"removed":[]}');
});

Deno.test("Presence: above namesMax a storm of changes waits for the interval, however many", () => {
  const set = new Set<string>();
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = new Presence(source, { fullMax: 2, namesMax: 3, msPerUser: 1000, maxChanges: 3 });
  for (const u of ["a", "b", "c", "d"]) set.add(u), p.changed(u);
  assert.equal(p.frame(0), '{"type":"presence","count":4,"added":[],"removed":[]}');
  for (let i = 0; i < 50; i++) set.add(`n${i}`), p.changed(`n${i}`);
  assert.equal(p.frame(10), null, "50 changes, no names to bound: the count waits");
  assert.equal(p.frame(9_999), null, "54 online: 54 s apart, capped at 10 s");
  assert.equal(p.frame(10_000), '{"type":"presence","count":54,"added":[],"removed":[]}');
});

Deno.test("Presence works from whole lists when the broker does not name the user", () => {
  const set = new Set<string>(["b", "a"]);
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = new Presence(source, { fullMax: 2, msPerUser: 0 });
  p.changed();
  assert.equal(p.frame(0), '{"type":"presence","online":["a","b"]}');
  set.add("c");
  set.delete("a");
  set.add("d");
  p.changed();
  assert.equal(p.json(), '["b","c","d"]');
  assert.equal(p.frame(1), '{"type":"presence","count":3,"added":["c","d"],"removed":["a"]}');
});

Deno.test("Presence sends only the count above namesMax, in frames and in the welcome", () => {
  const set = new Set<string>(["a", "b"]);
  const source = { isOnline: (u: string) => set.has(u), onlineUsers: () => set };
  const p = new Presence(source, { fullMax: 1, namesMax: 3, msPerUser: 0 });
  p.changed();
  assert.equal(p.frame(0), '{"type":"presence","count":2,"added":["a","b"],"removed":[]}');
  assert.equal(p.welcomeFields(), '"online":["a","b"]');
  for (const u of ["c", "d"]) set.add(u), p.changed(u);
  assert.equal(p.frame(1), '{"type":"presence","count":4,"added":[],"removed":[]}');
  assert.equal(p.welcomeFields(), '"online":[],"onlineCount":4');
  set.delete("d"), p.changed("d");
  assert.equal(p.frame(2), '{"type":"presence","online":["a","b","c"]}', "back: the whole list");
  assert.equal(p.welcomeFields(), '"online":["a","b","c"]');
  set.add("e"), p.changed("e");
  assert.equal(p.frame(3), '{"type":"presence","count":4,"added":[],"removed":[]}');
  set.delete("e"), p.changed("e");
  assert.equal(p.frame(4), '{"type":"presence","online":["a","b","c"]}');
});

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

Deno.test("server: presence switches to deltas above the threshold; welcome keeps the full list", async () => {
  await using t = await startTestServer({
    tickInterval: 20,
    presence: { fullMax: 2, msPerUser: 1, maxInterval: 50 },
  });
  const clients: TestClient[] = [];
  try {
    const a = await signIn(t.ws, "ann");
    clients.push(a);
    assert.deepEqual(a.welcome.online, ["ann"]);
    const b = await signIn(t.ws, "ben");
    clients.push(b);
    assert.deepEqual(b.welcome.online, ["ann", "ben"]);
    await a.next((f) => f.type === "presence" && f.online?.length === 2);
    const c = await signIn(t.ws, "cat");
    clients.push(c);
    assert.deepEqual(c.welcome.online, ["ann", "ben", "cat"], "the welcome keeps the full list");
    const delta = await a.next<F<"presence">>((f) =>
      f.type === "presence" && f.count !== undefined
    );
    assert.deepEqual(delta, { type: "presence", count: 3, added: ["cat"], removed: [] });
    assert.deepEqual(
      await b.next((f) => f.type === "presence" && f.count !== undefined),
      delta,
      "every connection gets the same frame",
    );
    await clients.pop()!.close();
    const back = await a.next<F<"presence">>((f) =>
      f.type === "presence" && f.online?.length === 2
    );
    assert.deepEqual(back, { type: "presence", online: ["ann", "ben"] }, "2 online: full list");
    assert.deepEqual(
      a.all.filter((f) => f.type === "presence").slice(-3),
      [back, delta, back],
      "nothing in between",
    );
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Presence keeps the online list sorted through thousands of changes, and counts it", () => {
  const o = online();
  const expected = new Set<string>();
  const rng = new Rng(7);
  for (let i = 0; i < 5000; i++) {
    const user = `u${rng.int(3000)}`;
    if (rng.chance(1 / 3) && expected.has(user)) {
      expected.delete(user);
      o.remove(user);
    } else if (!expected.has(user)) {
      expected.add(user);
      o.add(user);
    }
    if (i % 997 === 0) assert.deepEqual(o.p.online(), [...expected].sort());
  }
  assert.deepEqual(o.p.online(), [...expected].sort());
  assert.equal(o.p.count(), expected.size);
  // An unknown change rebuilds from the source: the same list.
  o.p.changed();
  assert.deepEqual(o.p.online(), [...expected].sort());
  assert.equal(o.p.count(), expected.size);
});
