/**
 * The contract every {@link Store} keeps. Each backend's test calls
 * {@link storeContract} with a factory (hono's `runTest({ newRouter })` shape).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Draft, REF_WINDOW, type Store } from "../server/store/store.ts";
import { conversationKey } from "../protocol.ts";

/** Opens a fresh, empty store; `keep` asks it to keep only that many messages per conversation. */
export type OpenStore<S extends Store = Store> = (options: { keep?: number }) => Promise<S>;

/** What a backend does beyond the contract's minimum. */
export interface ContractOptions<S extends Store = Store> {
  /**
   * Waits for the backend's background work (SQLite's retention sweep), so
   * that what the test reads next is settled. Every write the contract makes
   * is awaited already; backends with nothing in the background leave it out.
   * @default {nothing to wait for}
   */
  settle?: (store: S) => Promise<void>;
  /**
   * `appendOnce()` recognizes a resend among every kept message, not only
   * among the sender's last `REF_WINDOW` refs (SQLite).
   * @default {false}
   */
  refsOfKept?: boolean;
}

/** Registers the contract tests for one backend. */
export function storeContract<S extends Store>(
  name: string,
  open: OpenStore<S>,
  options: ContractOptions<S> = {},
): void {
  const settle = async (store: Store) => await options.settle?.(store as S);
  const test = (what: string, fn: (store: Store) => Promise<void>, keep?: number) =>
    Deno.test(`${name}: ${what}`, async () => {
      const store = await open({ keep });
      try {
        await fn(store);
      } finally {
        await store.close();
      }
    });

  test("append() numbers messages per conversation and stamps them", async (s) => {
    const a = await s.append({ conv: "general", room: "general", from: "alice", text: "one" });
    const b = await s.append({ conv: "general", room: "general", from: "bob", text: "two" });
    const dmConv = conversationKey("alice", { to: "bob" });
    const d = await s.append({ conv: dmConv, to: "bob", from: "alice", text: "psst" });
    assert.deepEqual([a.id, b.id, d.id], [1, 2, 1]);
    assert.equal(a.room, "general");
    assert.equal(a.to, undefined);
    assert.equal(d.to, "bob");
    assert.equal(d.room, undefined);
    assert.equal(d.from, "alice");
    assert.match(a.ts, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(b.ts >= a.ts);
  });

  test("append() resolves concurrent appends in order", async (s) => {
    const all = await Promise.all(
      Array.from(
        { length: 100 },
        (_, i) => s.append({ conv: "r", room: "r", from: "u", text: `m${i}` }),
      ),
    );
    assert.deepEqual(all.map((m) => m.id), Array.from({ length: 100 }, (_, i) => i + 1));
    const order: number[] = [];
    await Promise.all(
      Array.from(
        { length: 20 },
        (_, i) =>
          s.append({ conv: "q", room: "q", from: "u", text: `${i}` }).then((m) => order.push(m.id)),
      ),
    );
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i + 1));
  });

  const said = (text: string, ref: string, conv = "general"): Draft & { ref: string } =>
    conv.startsWith("@")
      ? { conv, to: "bob", from: "alice", text, ref }
      : { conv, room: conv, from: "alice", text, ref };

  test("appendOnce() answers a resend with the stored message and stores nothing", async (s) => {
    const first = await s.appendOnce(said("hi", "k1"));
    assert.equal(first.fresh, true);
    assert.equal(first.msg.id, 1);
    await s.append({ conv: "general", room: "general", from: "bob", text: "hi" });
    const again = await s.appendOnce(said("hi", "k1"));
    assert.deepEqual(again, { msg: first.msg, fresh: false });
    const dm = conversationKey("alice", { to: "bob" });
    const psst = await s.appendOnce(said("psst", "k2", dm));
    assert.deepEqual(await s.appendOnce(said("psst", "k2", dm)), { msg: psst.msg, fresh: false });
    assert.equal(psst.msg.to, "bob");
    const next = await s.append({ conv: "general", room: "general", from: "bob", text: "next" });
    assert.equal(next.id, 3, "a resend takes no id");
    await settle(s);
    assert.deepEqual(
      (await s.page("general", { limit: 10 })).messages.map((m) => [m.id, m.from, m.text]),
      [[1, "alice", "hi"], [2, "bob", "hi"], [3, "bob", "next"]],
    );
    assert.deepEqual((await s.page(dm, { limit: 10 })).messages, [psst.msg]);
  });

  test("appendOnce() takes the same ref with another text, conversation or sender for a new message", async (s) => {
    const hi = await s.appendOnce(said("hi", "k1"));
    const other = await s.appendOnce(said("hi again", "k1"));
    assert.deepEqual([other.fresh, other.msg.id], [true, 2], "another text");
    const elsewhere = await s.appendOnce(said("hi again", "k1", "ops"));
    assert.deepEqual([elsewhere.fresh, elsewhere.msg.id], [true, 1], "another conversation");
    const bob = await s.appendOnce({ ...said("hi again", "k1", "ops"), from: "bob" });
    assert.deepEqual([bob.fresh, bob.msg.id], [true, 2], "another sender");
    // A resend is compared with the sender's latest message with that ref.
    assert.deepEqual(await s.appendOnce(said("hi again", "k1", "ops")), {
      msg: elsewhere.msg,
      fresh: false,
    });
    const old = await s.appendOnce(said("hi", "k1"));
    assert.deepEqual([old.fresh, old.msg.id], [true, 3], "an older use of the ref is no resend");
    assert.notEqual(old.msg.id, hi.msg.id);
    const plain = await s.appendOnce(said("no ref", ""));
    const plainAgain = await s.appendOnce(said("no ref", ""));
    assert.deepEqual([plain.fresh, plainAgain.fresh], [true, true], "an empty ref is no ref");
    await settle(s);
    assert.equal((await s.page("general", { limit: 10 })).messages.length, 5);
  });

  test("appendOnce() stores one of concurrent resends, in order with other appends", async (s) => {
    const order: number[] = [];
    const all = await Promise.all(
      Array.from({ length: 30 }, (_, i) => {
        const done = i % 3 === 0
          ? s.appendOnce(said("once", "k1"))
          : s.appendOnce(said(`m${i}`, `k-${i}`));
        return done.then((r) => {
          if (r.fresh) order.push(r.msg.id);
          return r;
        });
      }),
    );
    const resends = all.filter((_, i) => i % 3 === 0);
    assert.equal(resends.filter((r) => r.fresh).length, 1, "stored once");
    assert.ok(resends.every((r) => r.msg.id === 1 && r.msg.text === "once"));
    assert.deepEqual(order, Array.from({ length: 21 }, (_, i) => i + 1), "ids resolve in order");
    await settle(s);
    const page = await s.page("general", { limit: 50 });
    assert.equal(page.messages.filter((m) => m.text === "once").length, 1);
    assert.deepEqual(page.messages.map((m) => m.id), order);
  });

  test(`appendOnce() recognizes a resend among the sender's last ${REF_WINDOW} refs`, async (s) => {
    const first = await s.appendOnce(said("first", "k0"));
    // Messages without a ref and other senders' refs do not count.
    await s.append({ conv: "general", room: "general", from: "alice", text: "no ref" });
    await s.appendOnce({ ...said("bob's", "b1"), from: "bob" });
    for (let i = 1; i < REF_WINDOW; i++) {
      await s.appendOnce(said(`m${i}`, `k${i}`, i % 2 === 0 ? "general" : "ops"));
    }
    // A resend refreshes nothing: the window moves with new refs only.
    assert.deepEqual(await s.appendOnce(said("first", "k0")), { msg: first.msg, fresh: false });
    assert.deepEqual(await s.appendOnce(said("first", "k0")), { msg: first.msg, fresh: false });
    await s.appendOnce(said("one more", `k${REF_WINDOW}`));
    const late = await s.appendOnce(said("first", "k0"));
    if (options.refsOfKept) {
      assert.deepEqual(late, { msg: first.msg, fresh: false }, "still kept, still known");
    } else {
      assert.equal(late.fresh, true, `${REF_WINDOW} newer refs: k0 is a new message again`);
      assert.notEqual(late.msg.id, first.msg.id);
    }
  });

  test("releaseName() forgets the holder's refs", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    const first = await s.appendOnce(said("hi", "k1"));
    await settle(s);
    await s.releaseName("alice", "s1");
    await s.claimName("alice", "s2", 2000, true);
    const later = await s.appendOnce(said("hi", "k1"));
    assert.deepEqual([later.fresh, later.msg.id], [true, first.msg.id + 1]);
  });

  test("page() reads the newest, before and since, with more", async (s) => {
    for (let i = 1; i <= 30; i++) {
      await s.append({ conv: "r", room: "r", from: "u", text: `m${i}` });
    }
    const last = await s.page("r", { limit: 10 });
    assert.deepEqual(last.messages.map((m) => m.id), [21, 22, 23, 24, 25, 26, 27, 28, 29, 30]);
    assert.equal(last.more, true);
    assert.equal(last.gap, false);
    const before = await s.page("r", { before: 5, limit: 10 });
    assert.deepEqual(before.messages.map((m) => m.id), [1, 2, 3, 4]);
    assert.equal(before.more, false);
    const before2 = await s.page("r", { before: 21, limit: 3 });
    assert.deepEqual(before2.messages.map((m) => m.text), ["m18", "m19", "m20"]);
    assert.equal(before2.more, true);
    const since = await s.page("r", { since: 25, limit: 3 });
    assert.deepEqual(since.messages.map((m) => m.id), [26, 27, 28]);
    assert.equal(since.more, true);
    const tail = await s.page("r", { since: 28, limit: 10 });
    assert.deepEqual(tail.messages.map((m) => m.id), [29, 30]);
    assert.equal(tail.more, false);
    assert.equal(tail.gap, false);
    const none = await s.page("r", { since: 30, limit: 10 });
    assert.deepEqual([none.messages, none.more, none.gap], [[], false, false]);
    const empty = await s.page("nowhere", { limit: 10 });
    assert.deepEqual(empty, { messages: [], more: false, gap: false });
  });

  test("page() reports a gap when since is older than what is kept", async (s) => {
    for (let i = 1; i <= 12; i++) {
      await s.append({ conv: "r", room: "r", from: "u", text: `m${i}` });
    }
    await settle(s);
    const kept = await s.page("r", { limit: 50 });
    assert.deepEqual(kept.messages.map((m) => m.id), [8, 9, 10, 11, 12]);
    const resume = await s.page("r", { since: 3, limit: 50 });
    assert.deepEqual(resume.messages.map((m) => m.id), [8, 9, 10, 11, 12]);
    assert.equal(resume.gap, true);
    const fine = await s.page("r", { since: 7, limit: 50 });
    assert.equal(fine.gap, false);
    const next = await s.append({ conv: "r", room: "r", from: "u", text: "m13" });
    assert.equal(next.id, 13, "ids keep increasing after trimming");
  }, 5);

  test("join(), leave(), members(), roomsOf() and rooms() track membership", async (s) => {
    assert.equal(await s.roomExists("ops"), false);
    assert.deepEqual(await s.join("alice", "ops"), { added: true, created: true });
    assert.deepEqual(await s.join("alice", "ops"), { added: false, created: false });
    assert.deepEqual(await s.join("bob", "ops"), { added: true, created: false });
    assert.deepEqual(await s.join("alice", "general"), { added: true, created: true });
    assert.equal(await s.roomsCreatedBy("alice"), 2);
    assert.equal(await s.roomsCreatedBy("bob"), 0);
    assert.equal(await s.roomExists("ops"), true);
    assert.deepEqual(await s.members("ops"), ["alice", "bob"]);
    assert.deepEqual(await s.roomsOf("alice"), ["general", "ops"]);
    assert.deepEqual(await s.rooms(), [{ name: "general", members: 1 }, {
      name: "ops",
      members: 2,
    }]);
    assert.equal(await s.leave("alice", "ops"), true);
    assert.equal(await s.leave("alice", "ops"), false);
    assert.deepEqual(await s.members("ops"), ["bob"]);
    assert.deepEqual(await s.roomsOf("alice"), ["general"]);
    assert.equal(await s.roomExists("ops"), true, "a room outlives its members leaving");
  });

  test("conversations() and setRead() keep read markers per user", async (s) => {
    await s.join("alice", "general");
    await s.append({ conv: "general", room: "general", from: "bob", text: "1" });
    await s.append({ conv: "general", room: "general", from: "bob", text: "2" });
    const dm = conversationKey("alice", { to: "bob" });
    await s.append({ conv: dm, to: "alice", from: "bob", text: "hey" });
    assert.deepEqual(await s.conversations("alice"), [
      { room: "general", last: 2, read: 0 },
      { to: "bob", last: 1, read: 0 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [{ to: "alice", last: 1, read: 0 }]);
    assert.equal(await s.setRead("alice", "general", 1), 1);
    assert.equal(await s.setRead("alice", "general", 0), 1, "markers never move back");
    assert.equal(await s.setRead("alice", "general", 99), 2, "markers stop at the newest id");
    assert.equal(await s.setRead("alice", dm, 1), 1);
    assert.deepEqual(await s.conversations("alice"), [
      { room: "general", last: 2, read: 2 },
      { to: "bob", last: 1, read: 1 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [{ to: "alice", last: 1, read: 0 }]);
  });

  test("search() finds every word, newest first, only where the user may look", async (s) => {
    await s.append({ conv: "ops", room: "ops", from: "alice", text: "Deploy the API today" });
    await s.append({ conv: "ops", room: "ops", from: "bob", text: "deploy done" });
    await s.append({ conv: "ops", room: "ops", from: "bob", text: "lunch?" });
    await s.append({ conv: "secret", room: "secret", from: "eve", text: "deploy secretly" });
    const ab = conversationKey("alice", { to: "bob" });
    const bc = conversationKey("bob", { to: "carol" });
    await s.append({ conv: ab, to: "bob", from: "alice", text: "deploy at noon?" });
    await s.append({ conv: bc, to: "carol", from: "bob", text: "deploy gossip" });
    await settle(s);
    const alice = await s.search("deploy", { user: "alice", rooms: ["ops"], limit: 10 });
    // Messages in different conversations may share a timestamp: only their set is fixed.
    assert.deepEqual(
      new Set(alice.map((m) => m.text)),
      new Set(["deploy at noon?", "deploy done", "Deploy the API today"]),
    );
    const ops = alice.filter((m) => m.room === "ops").map((m) => m.text);
    assert.deepEqual(ops, ["deploy done", "Deploy the API today"], "newest first");
    const words = await s.search("API deploy", { user: "alice", rooms: ["ops"], limit: 10 });
    assert.deepEqual(words.map((m) => m.text), ["Deploy the API today"]);
    const carol = await s.search("deploy", { user: "carol", rooms: [], limit: 10 });
    assert.deepEqual(
      carol.map((m) => m.text),
      ["deploy gossip"],
      "a DM between two others never appears",
    );
    const one = await s.search("deploy", { user: "alice", rooms: ["ops"], conv: ab, limit: 10 });
    assert.deepEqual(one.map((m) => m.text), ["deploy at noon?"]);
    const limited = await s.search("deploy", { user: "alice", rooms: ["ops"], limit: 1 });
    assert.equal(limited.length, 1);
    assert.deepEqual(
      await s.search("nothing-like-this", { user: "alice", rooms: ["ops"], limit: 5 }),
      [],
    );
  });

  test("search() takes quotes, operators and punctuation in the query as plain text", async (s) => {
    const tricky = 'release "v2" now: col:umn AND NOT (x) OR y*';
    await s.append({ conv: "ops", room: "ops", from: "alice", text: tricky });
    await s.append({ conv: "ops", room: "ops", from: "bob", text: "plain words only" });
    await settle(s);
    const scope = { user: "alice", rooms: ["ops"], limit: 10 };
    for (const q of ['"v2"', "col:umn", "NOT", "(x)", "y*", 'RELEASE "v2"']) {
      assert.deepEqual((await s.search(q, scope)).map((m) => m.text), [tricky], q);
    }
    for (const q of ['"unbalanced', "NEAR(zzz", "zzz*", "{zzz}"]) {
      assert.deepEqual(await s.search(q, scope), [], q);
    }
    // Only that nothing throws: backends may differ on what pure punctuation matches.
    for (const q of ['"', "*", "(", ")", "-", "^", ":", "NEAR(", "AND", "OR NOT", "", "   "]) {
      assert.ok(Array.isArray(await s.search(q, scope)), q);
    }
  });

  test("search() matches the text, whatever the room and sender are called", async (s) => {
    await s.append({ conv: "x", room: "x", from: "x", text: "hello there" });
    await s.append({ conv: "r", room: "r", from: "f", text: "x marks the spot" });
    await settle(s);
    const scope = { user: "x", rooms: ["x", "r"], limit: 10 };
    assert.deepEqual((await s.search("hello", scope)).map((m) => m.text), ["hello there"]);
    assert.deepEqual((await s.search("spot", scope)).map((m) => m.text), ["x marks the spot"]);
  });

  test("touchUser() and knownUser() remember who signed in", async (s) => {
    assert.equal(await s.knownUser("alice"), false);
    await s.touchUser("alice");
    await s.touchUser("alice");
    assert.equal(await s.knownUser("alice"), true);
    assert.equal(await s.knownUser("bob"), false);
  });

  test("claimName() claims a free name, refreshes its holder and refuses everyone else", async (s) => {
    assert.deepEqual(await s.claimName("Alice", "s1", 1000, true), {
      ok: true,
      claim: { name: "Alice", session: "s1", seen: 1000 },
    });
    assert.deepEqual(
      await s.claimName("aLiCe", "s1", 2000, false),
      { ok: true, claim: { name: "Alice", session: "s1", seen: 2000 } },
      "the holder refreshes seen in any case; the display case stays",
    );
    assert.deepEqual(
      await s.claimName("ALICE", "s2", 3000, true),
      { ok: false, claim: { name: "Alice", session: "s1", seen: 2000 } },
      "another session learns who holds it and changes nothing",
    );
    assert.deepEqual(
      await s.claimName("bob", "s2", 3000, false),
      { ok: false, claim: null },
      "an unclaimed name is not created without create",
    );
    assert.deepEqual(await s.staleClaims(Infinity, 10), [
      { name: "Alice", session: "s1", seen: 2000 },
    ]);
    assert.deepEqual(await s.claimName("bob", "s2", 3000, true), {
      ok: true,
      claim: { name: "bob", session: "s2", seen: 3000 },
    });
  });

  test("claimName() gives a name to exactly one of 20 concurrent sessions", async (s) => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.claimName("Zed", `session-${i}`, 1000 + i, true)),
    );
    const won = results.filter((r) => r.ok);
    assert.equal(won.length, 1);
    for (const r of results) assert.deepEqual(r.claim, won[0].claim, "losers see the winner");
    assert.deepEqual(await s.staleClaims(Infinity, 10), [won[0].claim]);
  });

  test("releaseName() changes nothing unless the session holds the name", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    await s.touchUser("alice");
    await s.join("alice", "general");
    const ab = conversationKey("alice", { to: "bob" });
    await s.append({ conv: ab, to: "bob", from: "alice", text: "hi" });
    assert.equal(await s.releaseName("alice", "s2"), null);
    assert.equal(await s.releaseName("nobody", "s1"), null);
    assert.deepEqual(await s.staleClaims(Infinity, 10), [
      { name: "alice", session: "s1", seen: 1000 },
    ]);
    assert.equal(await s.knownUser("alice"), true);
    assert.deepEqual(await s.roomsOf("alice"), ["general"]);
    assert.deepEqual((await s.page(ab, { limit: 10 })).messages.map((m) => m.text), ["hi"]);
  });

  test("nameClaim() reads the holder of any spelling and changes nothing", async (s) => {
    assert.equal(await s.nameClaim("alice"), null);
    await s.claimName("Alice", "s1", 1000, true);
    assert.deepEqual(await s.nameClaim("ALICE"), { name: "Alice", session: "s1", seen: 1000 });
    assert.deepEqual(await s.staleClaims(Infinity, 10), [
      { name: "Alice", session: "s1", seen: 1000 },
    ]);
  });

  test("releaseName() forgets the rooms the holder created, and keeps the rooms", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    await s.join("alice", "made-by-alice");
    assert.equal(await s.roomsCreatedBy("alice"), 1);
    assert.deepEqual(await s.releaseName("alice", "s1"), ["made-by-alice"]);
    assert.equal(await s.roomsCreatedBy("alice"), 0, "a later alice starts at none");
    assert.equal(await s.roomExists("made-by-alice"), true);
  });

  test("releaseName() with seenBefore spares a holder seen since", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    await s.join("alice", "general");
    // Listed as stale at 1000, then seen again at 5000 before the release comes.
    await s.claimName("alice", "s1", 5000, false);
    assert.equal(await s.releaseName("alice", "s1", 2000), null);
    assert.deepEqual(await s.roomsOf("alice"), ["general"]);
    assert.deepEqual(await s.nameClaim("alice"), { name: "alice", session: "s1", seen: 5000 });
    assert.deepEqual(await s.releaseName("alice", "s1", 6000), ["general"]);
    assert.equal(await s.nameClaim("alice"), null);
  });

  test("releaseName() wipes the holder's DMs, read markers, memberships and known mark", async (s) => {
    for (const u of ["alice", "bob", "carol"]) await s.touchUser(u);
    await s.claimName("alice", "s1", 1000, true);
    await s.join("alice", "general");
    await s.join("alice", "ops");
    await s.join("bob", "general");
    await s.append({ conv: "general", room: "general", from: "alice", text: "public note" });
    await s.append({ conv: "general", room: "general", from: "bob", text: "reply" });
    const ab = conversationKey("alice", { to: "bob" });
    const ac = conversationKey("alice", { to: "carol" });
    const bc = conversationKey("bob", { to: "carol" });
    for (let i = 1; i <= 3; i++) {
      await s.append({ conv: ab, to: "bob", from: "alice", text: `secret ${i}` });
    }
    await s.append({ conv: ac, to: "alice", from: "carol", text: "secret too" });
    await s.append({ conv: bc, to: "carol", from: "bob", text: "secret of others" });
    await s.setRead("bob", ab, 2);
    await s.setRead("alice", ab, 3);
    await s.setRead("alice", "general", 1);
    await s.setRead("bob", "general", 1);
    await settle(s);

    assert.deepEqual(await s.releaseName("ALICE", "s1"), ["general", "ops"]);
    await settle(s);
    for (const conv of [ab, ac]) {
      assert.deepEqual((await s.page(conv, { limit: 10 })).messages, [], conv);
    }
    assert.deepEqual(await s.conversations("alice"), []);
    assert.deepEqual(
      await s.conversations("bob"),
      [{ room: "general", last: 2, read: 1 }, { to: "carol", last: 1, read: 0 }],
      "the peer no longer lists the DM",
    );
    assert.deepEqual(await s.conversations("carol"), [{ to: "bob", last: 1, read: 0 }]);
    assert.deepEqual(await s.roomsOf("alice"), []);
    assert.deepEqual(await s.members("general"), ["bob"]);
    assert.deepEqual(await s.members("ops"), []);
    assert.equal(await s.roomExists("ops"), true, "rooms stay");
    assert.equal(await s.roomsCreatedBy("alice"), 0, "but they no longer count as hers");
    assert.equal(await s.knownUser("alice"), false);
    assert.equal(await s.knownUser("bob"), true);
    assert.deepEqual(
      (await s.page("general", { limit: 10 })).messages.map((m) => m.text),
      ["public note", "reply"],
      "room messages stay",
    );
    const bob = await s.search("secret", { user: "bob", rooms: ["general"], limit: 10 });
    assert.deepEqual(bob.map((m) => m.text), ["secret of others"]);
    assert.deepEqual(await s.search("secret", { user: "alice", rooms: [], limit: 10 }), []);
    assert.deepEqual(await s.staleClaims(Infinity, 10), []);
    assert.deepEqual(await s.claimName("alice", "s9", 5000, false), { ok: false, claim: null });

    // A later holder of the name starts clean, and DM ids go on after the old ones.
    assert.equal((await s.claimName("alice", "s9", 5000, true)).ok, true);
    const next = await s.append({ conv: ab, to: "alice", from: "bob", text: "hello again" });
    assert.equal(next.id, 4);
    await settle(s);
    assert.deepEqual((await s.page(ab, { limit: 10 })).messages.map((m) => m.id), [4]);
    assert.deepEqual(await s.conversations("alice"), [{ to: "bob", last: 4, read: 0 }]);
    assert.deepEqual(await s.conversations("bob"), [
      { room: "general", last: 2, read: 1 },
      { to: "alice", last: 4, read: 0 },
      { to: "carol", last: 1, read: 0 },
    ]);
    assert.deepEqual(
      (await s.search("again", { user: "alice", rooms: [], limit: 10 })).map((m) => m.id),
      [4],
    );
  });

  test("staleClaims() lists claims not seen since a time, oldest first, at most limit", async (s) => {
    await s.claimName("a", "sa", 300, true);
    await s.claimName("B", "sb", 100, true);
    await s.claimName("c", "sc", 200, true);
    await s.claimName("d", "sd", 500, true);
    const names = async (before: number, limit: number) =>
      (await s.staleClaims(before, limit)).map((c) => c.name);
    assert.deepEqual(await s.staleClaims(400, 10), [
      { name: "B", session: "sb", seen: 100 },
      { name: "c", session: "sc", seen: 200 },
      { name: "a", session: "sa", seen: 300 },
    ]);
    assert.deepEqual(await names(400, 2), ["B", "c"]);
    assert.deepEqual(await names(100, 10), [], "seen exactly at before is not stale");
    assert.deepEqual(await names(400, 0), []);
    await s.claimName("b", "sb", 600, false);
    assert.deepEqual(await names(400, 10), ["c", "a"], "a refresh makes it fresh");
    await s.releaseName("a", "sa");
    assert.deepEqual(await names(Infinity, 10), ["c", "d", "B"]);
  });

  test("revokeSession() revokes until a time and sessionRevoked() sees it lapse", async (s) => {
    const now = Date.now();
    assert.equal(await s.sessionRevoked("s1", now), false);
    await s.revokeSession("s1", now + 60_000);
    assert.equal(await s.sessionRevoked("s1", now), true);
    assert.equal(await s.sessionRevoked("s1", now + 59_999), true);
    assert.equal(await s.sessionRevoked("s1", now + 60_000), false, "lapsed at until");
    assert.equal(await s.sessionRevoked("s2", now), false, "only that session");
    await s.revokeSession("s1", now + 1000);
    assert.equal(await s.sessionRevoked("s1", now + 30_000), true, "never shortened");
    await s.revokeSession("s3", now - 1);
    assert.equal(await s.sessionRevoked("s3", now), false, "already lapsed");
  });

  test("setTopic() and topic() keep a room's topic, and rooms() lists it where set", async (s) => {
    await s.join("alice", "general");
    await s.join("alice", "ops");
    assert.equal(await s.topic("ops"), "");
    assert.equal(await s.setTopic("ops", "Deploys: ask first ✈"), true);
    assert.equal(await s.topic("ops"), "Deploys: ask first ✈");
    assert.equal(await s.topic("general"), "", "only that room");
    assert.deepEqual(await s.rooms(), [
      { name: "general", members: 1 },
      { name: "ops", members: 1, topic: "Deploys: ask first ✈" },
    ]);
    assert.equal(await s.setTopic("ops", "Deploys: ask first ✈"), false, "the same: no change");
    assert.equal(await s.setTopic("ops", "Deploys: ask first"), true);
    assert.equal(await s.setTopic("ops", ""), true, "cleared");
    assert.equal(await s.topic("ops"), "");
    assert.equal(await s.setTopic("ops", ""), false, "cleared already");
    assert.deepEqual(await s.rooms(), [
      { name: "general", members: 1 },
      { name: "ops", members: 1 },
    ]);
    await s.leave("alice", "ops");
    assert.equal(await s.setTopic("ops", "still a room"), true, "an empty room keeps its topic");
    assert.deepEqual((await s.rooms())[1], { name: "ops", members: 0, topic: "still a room" });
  });

  test("setTopic() of a room that does not exist changes nothing and creates no room", async (s) => {
    assert.equal(await s.setTopic("nowhere", "hello"), false);
    assert.equal(await s.topic("nowhere"), "");
    assert.equal(await s.roomExists("nowhere"), false);
    assert.deepEqual(await s.rooms(), []);
  });

  test("setTopic() reports a change to exactly one of concurrent identical sets", async (s) => {
    await s.join("alice", "ops");
    const changed = await Promise.all(Array.from({ length: 10 }, () => s.setTopic("ops", "t")));
    assert.equal(changed.filter(Boolean).length, 1);
    assert.equal(await s.topic("ops"), "t");
  });

  test("touchUser() with a time, markSeen() and lastSeen() keep when users were last seen", async (s) => {
    assert.deepEqual(await s.lastSeen([]), new Map());
    assert.deepEqual(await s.lastSeen(["alice"]), new Map());
    await s.touchUser("Alice", 1000);
    assert.equal(await s.knownUser("Alice"), true);
    assert.deepEqual(await s.lastSeen(["Alice", "bob"]), new Map([["Alice", 1000]]));
    assert.deepEqual(
      await s.lastSeen(["alice", "ALICE"]),
      new Map([["alice", 1000], ["ALICE", 1000]]),
      "names compare ignoring case; the answer is keyed as asked",
    );
    await s.markSeen(["alice", "bob", "carol"], 2000);
    assert.deepEqual(
      await s.lastSeen(["Alice", "bob", "carol", "dave"]),
      new Map([["Alice", 2000], ["bob", 2000], ["carol", 2000]]),
    );
    assert.equal(await s.knownUser("bob"), false, "markSeen() makes nobody known");
    await s.markSeen(["bob"], 1500);
    await s.touchUser("Alice", 1200);
    assert.deepEqual(
      await s.lastSeen(["Alice", "bob"]),
      new Map([["Alice", 2000], ["bob", 2000]]),
      "never back",
    );
    await s.markSeen([], 9000);
    await s.touchUser("bob");
    assert.deepEqual(await s.lastSeen(["bob"]), new Map([["bob", 2000]]), "no time, no change");
  });

  test("lastSeen() and markSeen() take thousands of users in one call", async (s) => {
    const names = Array.from({ length: 3000 }, (_, i) => `user-${i}`);
    await s.markSeen(names.filter((_, i) => i % 2 === 0), 5000);
    const seen = await s.lastSeen(names);
    assert.equal(seen.size, 1500);
    assert.equal(seen.get("user-2998"), 5000);
    assert.equal(seen.has("user-2999"), false);
  });

  test("recentClaims() lists claims seen since a time, newest first, matching, at most limit", async (s) => {
    await s.claimName("Anna", "sa", 100, true);
    await s.claimName("hannah", "sh", 300, true);
    await s.claimName("Bob", "sb", 200, true);
    await s.claimName("JOHANN", "sj", 400, true);
    await s.claimName("zed", "sz", 50, true);
    const names = async (q: { since: number; match?: string; limit: number }) =>
      (await s.recentClaims(q)).map((c) => c.name);
    assert.deepEqual(await s.recentClaims({ since: 300, limit: 10 }), [
      { name: "JOHANN", session: "sj", seen: 400 },
      { name: "hannah", session: "sh", seen: 300 },
    ]);
    assert.deepEqual(await names({ since: 100, limit: 10 }), ["JOHANN", "hannah", "Bob", "Anna"]);
    assert.deepEqual(await names({ since: 0, match: "ANN", limit: 10 }), [
      "JOHANN",
      "hannah",
      "Anna",
    ]);
    assert.deepEqual(await names({ since: 0, match: "ann", limit: 2 }), ["JOHANN", "hannah"]);
    assert.deepEqual(await names({ since: 0, match: "x", limit: 10 }), []);
    assert.deepEqual(await names({ since: 0, limit: 0 }), []);
    await s.claimName("anna", "sa", 500, false);
    assert.deepEqual(await names({ since: 450, limit: 10 }), ["Anna"], "a refresh counts");
    await s.releaseName("JOHANN", "sj");
    assert.deepEqual(await names({ since: 0, match: "h", limit: 10 }), ["hannah"]);
  });

  test("recentClaims() reads on past a long run of names that do not match", async (s) => {
    for (let i = 0; i < 1200; i++) await s.claimName(`n${i}`, `s${i}`, 10_000 - i, true);
    await s.claimName("needle", "sn", 1, true);
    assert.deepEqual(
      (await s.recentClaims({ since: 0, match: "need", limit: 5 })).map((c) => c.name),
      ["needle"],
    );
    assert.equal((await s.recentClaims({ since: 0, limit: 1000 })).length, 1000);
  });

  test("releaseName() forgets the holder's last-seen time", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    await s.touchUser("alice", 1000);
    await s.markSeen(["bob"], 1000);
    await s.releaseName("Alice", "s1");
    assert.deepEqual(await s.lastSeen(["alice", "bob"]), new Map([["bob", 1000]]));
  });
}
