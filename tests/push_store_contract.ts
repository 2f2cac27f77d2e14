/**
 * The contract every {@link PushStore} keeps. `push_store_test.ts` runs it
 * against the memory, SQLite and Redis backends.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  MAX_LEVELS_PER_USER,
  type PushStore,
  type PushSubscriptionRecord,
} from "../server/push/push_store.ts";

/** Opens a fresh, empty push store; its `close()` releases everything it used. */
export type OpenPushStore = () => Promise<PushStore>;

/** The tests' "now": 2026-01-01. */
const T = Date.UTC(2026, 0, 1);

let serial = 0;

/** A subscription of alice's, session s1, made at T (fields override). */
export function aSub(fields: Partial<PushSubscriptionRecord> = {}): PushSubscriptionRecord {
  serial++;
  return {
    endpoint: `https://push.example.com/send/${serial}-${crypto.randomUUID()}`,
    p256dh: `B${"a".repeat(86)}`,
    auth: "A".repeat(22),
    user: "alice",
    session: "s1",
    fp: "fp1",
    at: T + serial,
    ...fields,
  };
}

/** Waits until `check` holds (polling), failing after `ms`. */
async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Registers the contract tests for one backend. */
export function pushStoreContract(name: string, open: OpenPushStore): void {
  const test = (what: string, fn: (s: PushStore) => Promise<void>) =>
    Deno.test(`${name}: ${what}`, async () => {
      const s = await open();
      try {
        await fn(s);
      } finally {
        await s.close();
      }
    });

  test("subscribe() keeps a subscription; subscriptions() lists the user's oldest first, any case", async (s) => {
    const a = aSub({ at: T + 2 });
    const b = aSub({ at: T + 1, session: "s2" });
    const c = aSub({ user: "bob" });
    for (const sub of [a, b, c]) {
      assert.deepEqual(await s.subscribe(sub), { ok: true, dropped: [] });
    }
    assert.deepEqual(await s.subscriptions("alice"), [b, a]);
    assert.deepEqual(await s.subscriptions("ALICE"), [b, a]);
    assert.deepEqual(await s.subscriptions("bob"), [c]);
    assert.deepEqual(await s.subscriptions("carol"), []);
  });

  test("anySubscriptions() is false until someone subscribes", async (s) => {
    assert.equal(await s.anySubscriptions(), false);
    await s.subscribe(aSub({ user: "bob" }));
    assert.equal(await s.anySubscriptions(), true);
  });

  test("subscribe() of an endpoint again replaces its keys, session and time", async (s) => {
    const a = aSub();
    await s.subscribe(a);
    const again = { ...a, p256dh: `B${"b".repeat(86)}`, session: "s9", at: T + 1000 };
    assert.deepEqual(await s.subscribe(again), { ok: true, dropped: [] });
    assert.deepEqual(await s.subscriptions("alice"), [again]);
  });

  test("get() finds a subscription by endpoint, whoever holds it, until it goes", async (s) => {
    const a = aSub();
    const b = aSub({ user: "Bob", session: "b1" });
    await s.subscribe(a);
    await s.subscribe(b);
    assert.deepEqual(await s.get(a.endpoint), a);
    assert.deepEqual(await s.get(b.endpoint), b);
    assert.equal(await s.get("https://push.example.com/none"), null);
    await s.forgetSession("alice", "s1");
    assert.equal(await s.get(a.endpoint), null);
    await s.drop(b.endpoint);
    assert.equal(await s.get(b.endpoint), null);
  });

  test("subscribe() of the same endpoint and keys again is idempotent and renews its time", async (s) => {
    const a = aSub({ at: T + 1 });
    const b = aSub({ at: T + 2 });
    await s.subscribe(a, 2);
    await s.subscribe(b, 2);
    // The app sends push_subscribe again on every welcome: a is the newest now.
    const again = { ...a, at: T + 3 };
    assert.deepEqual(await s.subscribe(again, 2), { ok: true, dropped: [] });
    assert.deepEqual(await s.subscribe(again, 2), { ok: true, dropped: [] });
    assert.deepEqual(await s.subscriptions("alice"), [b, again]);
    const c = aSub({ at: T + 4 });
    assert.deepEqual(await s.subscribe(c, 2), { ok: true, dropped: [b.endpoint] });
    assert.deepEqual(await s.get(a.endpoint), again);
  });

  test("notified() marks endpoints of a conversation until takeNotified() takes them or they expire", async (s) => {
    const [a, b, c] = ["a", "b", "c"].map((x) => `https://push.example.com/n/${x}`);
    assert.deepEqual(await s.takeNotified([a, b], "@bob"), new Set());
    await s.notified([a, b], "@bob", 60_000);
    await s.notified([c], "#dev", 60_000);
    await s.notified([c], "#short", 1);
    assert.deepEqual(await s.takeNotified([a, c], "@bob"), new Set([a]));
    assert.deepEqual(await s.takeNotified([a, b, c], "@bob"), new Set([b]));
    assert.deepEqual(await s.takeNotified([a, b, c], "@bob"), new Set());
    assert.deepEqual(await s.takeNotified([c], "#dev"), new Set([c]));
    await s.notified([], "#dev", 60_000);
    assert.deepEqual(await s.takeNotified([], "#dev"), new Set());
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(await s.takeNotified([c], "#short"), new Set());
  });

  test("subscribe() past the cap drops the user's oldest, and only theirs", async (s) => {
    const subs = [1, 2, 3].map((i) => aSub({ at: T + i }));
    const bobs = aSub({ user: "bob", at: T });
    await s.subscribe(bobs);
    for (const sub of subs) await s.subscribe(sub, 2);
    assert.deepEqual(await s.subscriptions("alice"), [subs[1], subs[2]]);
    const four = aSub({ at: T + 4 });
    assert.deepEqual(await s.subscribe(four, 2), { ok: true, dropped: [subs[1].endpoint] });
    assert.deepEqual(await s.subscriptions("alice"), [subs[2], four]);
    assert.deepEqual(await s.subscriptions("bob"), [bobs]);
  });

  test("subscribe() of another user's endpoint: refused with other keys, moved with the same", async (s) => {
    const a = aSub();
    await s.subscribe(a);
    const stolen = { ...a, user: "mallory", auth: "B".repeat(22), session: "m" };
    assert.deepEqual(await s.subscribe(stolen), { ok: false });
    assert.deepEqual(await s.subscriptions("alice"), [a]);
    assert.deepEqual(await s.subscriptions("mallory"), []);
    // The same browser (same keys), its previous user's session lapsed: it is bob's now.
    const moved = { ...a, user: "bob", session: "b1", at: T + 500 };
    assert.deepEqual(await s.subscribe(moved), { ok: true, dropped: [] });
    assert.deepEqual(await s.subscriptions("alice"), []);
    assert.deepEqual(await s.subscriptions("bob"), [moved]);
  });

  test("unsubscribe() removes the user's own endpoint only; drop() removes anyone's", async (s) => {
    const a = aSub();
    const b = aSub();
    await s.subscribe(a);
    await s.subscribe(b);
    assert.equal(await s.unsubscribe("mallory", a.endpoint), false);
    assert.equal(await s.unsubscribe("alice", "https://push.example.com/none"), false);
    assert.deepEqual(await s.subscriptions("alice"), [a, b]);
    assert.equal(await s.unsubscribe("Alice", a.endpoint), true);
    assert.equal(await s.unsubscribe("alice", a.endpoint), false);
    await s.drop(b.endpoint);
    await s.drop(b.endpoint);
    assert.deepEqual(await s.subscriptions("alice"), []);
  });

  test("forgetSession() removes that session's subscriptions only", async (s) => {
    const a = aSub({ session: "s1" });
    const b = aSub({ session: "s2" });
    const c = aSub({ session: "s1", user: "bob" });
    for (const sub of [a, b, c]) await s.subscribe(sub);
    assert.equal(await s.forgetSession("alice", "s1"), 1);
    assert.equal(await s.forgetSession("alice", "s1"), 0);
    assert.deepEqual(await s.subscriptions("alice"), [b]);
    assert.deepEqual(await s.subscriptions("bob"), [c]);
  });

  test("keepSession() keeps one session's subscriptions, moved to the new session", async (s) => {
    const a = aSub({ session: "s1" });
    const b = aSub({ session: "s2" });
    const c = aSub({ session: "s3" });
    for (const sub of [a, b, c]) await s.subscribe(sub);
    await s.keepSession("alice", "s2", "s2b", "fp2");
    assert.deepEqual(await s.subscriptions("alice"), [{ ...b, session: "s2b", fp: "fp2" }]);
    await s.keepSession("alice", "s2b");
    assert.deepEqual(await s.subscriptions("alice"), [{ ...b, session: "s2b", fp: "fp2" }]);
  });

  test("forgetSubscriptions() removes every subscription; forgetUser() levels too", async (s) => {
    await s.subscribe(aSub());
    await s.subscribe(aSub({ session: "s2" }));
    const bobs = aSub({ user: "bob" });
    await s.subscribe(bobs);
    await s.setLevel("alice", "#dev", "all");
    await s.forgetSubscriptions("alice");
    assert.deepEqual(await s.subscriptions("alice"), []);
    assert.deepEqual(await s.levels("alice"), { "#dev": "all" });
    await s.subscribe(aSub());
    await s.forgetUser("ALICE");
    assert.deepEqual(await s.subscriptions("alice"), []);
    assert.deepEqual(await s.levels("alice"), {});
    assert.deepEqual(await s.levelsOf("#dev", ["alice"]), new Map());
    assert.deepEqual(await s.convLevels("#dev"), new Map());
    assert.deepEqual(await s.subscriptions("bob"), [bobs]);
  });

  test("setLevel() keeps a level per user and conversation; null removes it", async (s) => {
    assert.equal(await s.setLevel("alice", "#dev", "all"), true);
    assert.equal(await s.setLevel("alice", "@bob", "none"), true);
    assert.equal(await s.setLevel("Bob", "#dev", "none"), true);
    assert.deepEqual(await s.levels("alice"), { "#dev": "all", "@bob": "none" });
    assert.deepEqual(
      await s.levelsOf("#dev", ["alice", "bob", "carol"]),
      new Map([["alice", "all"], ["bob", "none"]]),
    );
    assert.equal(await s.setLevel("alice", "#dev", "mentions"), true);
    assert.equal(await s.setLevel("alice", "@bob", null), true);
    assert.deepEqual(await s.levels("ALICE"), { "#dev": "mentions" });
    assert.deepEqual(await s.levelsOf("#none", ["alice"]), new Map());
    assert.deepEqual(await s.levelsOf("#dev", []), new Map());
    assert.deepEqual(await s.convLevels("#dev"), new Map([["alice", "mentions"], ["bob", "none"]]));
    assert.deepEqual(await s.convLevels("@bob"), new Map());
  });

  test("setLevel() refuses a new level past MAX_LEVELS_PER_USER, changing one still works", async (s) => {
    for (let i = 0; i < MAX_LEVELS_PER_USER; i++) {
      assert.equal(await s.setLevel("alice", `@u${i}`, "none"), true);
    }
    assert.equal(await s.setLevel("alice", "#one-more", "all"), false);
    assert.equal(await s.setLevel("alice", "@u0", "mentions"), true);
    assert.equal(await s.setLevel("bob", "#one-more", "all"), true);
    assert.equal(Object.keys(await s.levels("alice")).length, MAX_LEVELS_PER_USER);
  });

  test("renameRoom() moves the room's levels, replacing those of the new name", async (s) => {
    await s.setLevel("alice", "#old", "all");
    await s.setLevel("bob", "#old", "none");
    await s.setLevel("carol", "#new", "all");
    await s.setLevel("alice", "@old", "none");
    await s.renameRoom("old", "new");
    assert.deepEqual(await s.levels("alice"), { "#new": "all", "@old": "none" });
    assert.deepEqual(await s.levels("carol"), {});
    assert.deepEqual(
      await s.levelsOf("#new", ["alice", "bob", "carol"]),
      new Map([["alice", "all"], ["bob", "none"]]),
    );
    assert.deepEqual(await s.levelsOf("#old", ["alice", "bob"]), new Map());
    assert.deepEqual(await s.convLevels("#new"), new Map([["alice", "all"], ["bob", "none"]]));
    assert.deepEqual(await s.convLevels("#old"), new Map());
  });

  test("visibility: per node, any case; a heartbeat replaces the node's set; leave() ends it", async (s) => {
    await s.setVisibleMany("n1", new Map([["Alice", true]]), 60_000);
    await s.setVisibleMany("n2", new Map([["bob", true]]), 60_000);
    assert.deepEqual(await s.visibleUsers(["alice", "bob", "carol"]), new Set(["alice", "bob"]));
    await s.setVisibleMany("n1", new Map([["alice", false]]), 60_000);
    assert.deepEqual(await s.visibleUsers(["alice", "bob"]), new Set(["bob"]));
    await s.heartbeat("n1", ["carol", "dave"], 60_000);
    await s.heartbeat("n2", [], 60_000);
    assert.deepEqual(
      await s.visibleUsers(["alice", "bob", "Carol", "dave"]),
      new Set(["Carol", "dave"]),
    );
    await s.leave("n1");
    assert.deepEqual(await s.visibleUsers(["carol", "dave"]), new Set());
    assert.deepEqual(await s.visibleUsers([]), new Set());
  });

  test("setVisibleMany() writes several users' visibility on a node at once, any case", async (s) => {
    await s.setVisibleMany(
      "n1",
      new Map([["Alice", true], ["bob", true], ["carol", false]]),
      60_000,
    );
    assert.deepEqual(await s.visibleUsers(["alice", "bob", "carol"]), new Set(["alice", "bob"]));
    await s.setVisibleMany("n1", new Map([["alice", false], ["Carol", true]]), 60_000);
    assert.deepEqual(await s.visibleUsers(["alice", "bob", "carol"]), new Set(["bob", "carol"]));
    await s.setVisibleMany("n1", new Map(), 60_000);
    assert.deepEqual(await s.visibleUsers(["bob", "carol"]), new Set(["bob", "carol"]));
    await s.leave("n1");
    assert.deepEqual(await s.visibleUsers(["bob", "carol"]), new Set());
  });

  test("visibility of a node that stops renewing it expires", async (s) => {
    await s.heartbeat("dead", ["alice"], 60_000);
    await s.heartbeat("dying", ["bob"], 150);
    await s.setVisibleMany("dying", new Map([["carol", true]]), 150);
    assert.deepEqual(
      await s.visibleUsers(["alice", "bob", "carol"]),
      new Set(["alice", "bob", "carol"]),
    );
    await until(async () => (await s.visibleUsers(["bob", "carol"])).size === 0);
    assert.deepEqual(await s.visibleUsers(["alice", "bob"]), new Set(["alice"]));
  });
}
