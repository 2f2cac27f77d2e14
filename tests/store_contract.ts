/**
 * The contract every {@link Store} keeps. Each backend's test calls
 * {@link storeContract} with a factory (hono's `runTest({ newRouter })` shape).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type Applied,
  type Change,
  type ChangeResult,
  type Draft,
  type Page,
  REF_WINDOW,
  RENAMES_KEPT,
  ReplyChanged,
  replyRef,
  RoomGone,
  type RoomInfo,
  SESSIONS_KEPT,
  type Store,
} from "../server/store/store.ts";
import type { FileMeta } from "../server/files/files.ts";
import {
  type ChatMessage,
  type Conversation,
  conversationKey,
  MAX_REACTIONS,
  MAX_REACTIONS_TOTAL,
  type ReplyRef,
  snippetOf,
  UNREAD_CAP,
} from "../protocol.ts";

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
    assert.deepEqual([a.seq, b.seq, d.seq], [1, 2, 1], "a new message's seq is its id");
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
    assert.equal(last.seq, 30);
    const before = await s.page("r", { before: 5, limit: 10 });
    assert.deepEqual(before.messages.map((m) => m.id), [1, 2, 3, 4]);
    assert.equal(before.more, false);
    const before2 = await s.page("r", { before: 21, limit: 3 });
    assert.deepEqual(before2.messages.map((m) => m.text), ["m18", "m19", "m20"]);
    assert.equal(before2.more, true);
    const since = await s.page("r", { since: 25, limit: 3 });
    assert.deepEqual(since.messages.map((m) => m.id), [26, 27, 28]);
    assert.equal(since.more, true);
    assert.equal(since.seq, 28, "with more: the last message's seq");
    const tail = await s.page("r", { since: 28, limit: 10 });
    assert.deepEqual(tail.messages.map((m) => m.id), [29, 30]);
    assert.equal(tail.more, false);
    assert.equal(tail.gap, false);
    assert.equal(tail.seq, 30);
    const none = await s.page("r", { since: 30, limit: 10 });
    assert.deepEqual(none, { messages: [], more: false, gap: false, seq: 30 });
    const empty = await s.page("nowhere", { limit: 10 });
    assert.deepEqual(empty, { messages: [], more: false, gap: false, seq: 0 });
    const emptySince = await s.page("nowhere", { since: 0, limit: 10 });
    assert.deepEqual(emptySince, { messages: [], more: false, gap: false, seq: 0 });
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
    assert.equal(await s.roomCount(), 0);
    assert.deepEqual(await s.join("alice", "ops"), { added: true, created: true, count: 1 });
    assert.deepEqual(await s.join("alice", "ops"), { added: false, created: false, count: 1 });
    assert.deepEqual(await s.join("bob", "ops"), { added: true, created: false, count: 2 });
    assert.deepEqual(await s.join("alice", "general"), { added: true, created: true, count: 1 });
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
    assert.equal(await s.roomCount(), 2, "as many as rooms() lists");
  });

  test("membersPage() pages through a room as members() lists it, with the count", async (s) => {
    // Digits, upper case, `-` and `_` around the lower-case names: JS order is by code unit.
    const names = Array.from({ length: 300 }, (_, i) => `${"-0A_az"[i % 6]}${i.toString(36)}`);
    await Promise.all(names.map((n) => s.join(n, "big")));
    const all = await s.members("big");
    assert.deepEqual(all, [...names].sort());
    for (const limit of [1, 7, 50, 299, 300, 1000]) {
      const seen: string[] = [];
      let after: string | undefined;
      for (let pages = 0;; pages++) {
        assert.ok(pages <= 300, `limit ${limit}: the pages end`);
        const page = await s.membersPage("big", after, limit);
        assert.equal(page.count, 300);
        assert.ok(page.members.length <= limit, `limit ${limit}: at most the limit`);
        if (page.members.length === 0) break;
        seen.push(...page.members);
        after = page.members.at(-1);
      }
      assert.deepEqual(seen, all, `limit ${limit}`);
    }
    assert.deepEqual(await s.membersPage("big", undefined, 0), { members: [], count: 300 });
    assert.deepEqual(await s.membersPage("big", all[299], 10), { members: [], count: 300 });
    assert.equal(await s.memberCount("big"), 300);
  });

  test("membersPage() orders names by JS string order and starts after any name", async (s) => {
    for (const n of ["b", "B", "_x", "-y", "9z", "a1", "a10", "a2", "Z", "a-", "a_"]) {
      await s.join(n, "ops");
    }
    const sorted = ["-y", "9z", "B", "Z", "_x", "a-", "a1", "a10", "a2", "a_", "b"];
    assert.deepEqual(await s.membersPage("ops", undefined, 20), { members: sorted, count: 11 });
    assert.deepEqual(await s.members("ops"), sorted);
    assert.deepEqual(await s.membersPage("ops", "a", 3), {
      members: ["a-", "a1", "a10"],
      count: 11,
    }, "after a name not in the room: from the next one");
    assert.deepEqual(await s.membersPage("ops", "a1", 2), { members: ["a10", "a2"], count: 11 });
    assert.deepEqual(await s.membersPage("ops", "C", 2), { members: ["Z", "_x"], count: 11 });
    assert.deepEqual(await s.membersPage("ops", "-", 1), { members: ["-y"], count: 11 });
    assert.deepEqual(await s.membersPage("ops", "zzz", 5), { members: [], count: 11 });
  });

  test("membersPage() and memberCount() of no room and of an emptied room", async (s) => {
    assert.deepEqual(await s.membersPage("nowhere", undefined, 10), { members: [], count: 0 });
    assert.deepEqual(await s.membersPage("nowhere", "a", 10), { members: [], count: 0 });
    assert.equal(await s.memberCount("nowhere"), 0);
    await s.join("alice", "ops");
    await s.leave("alice", "ops");
    assert.equal(await s.roomExists("ops"), true);
    assert.deepEqual(await s.membersPage("ops", undefined, 10), { members: [], count: 0 });
    assert.equal(await s.memberCount("ops"), 0);
    assert.deepEqual(await s.join("bob", "ops"), { added: true, created: false, count: 1 });
    assert.deepEqual(await s.membersPage("ops", undefined, 10), { members: ["bob"], count: 1 });
  });

  test("join() counts the members after it, in call order", async (s) => {
    const names = Array.from({ length: 20 }, (_, i) => `u${i}`);
    const joined = await Promise.all([...names, "u3"].map((n) => s.join(n, "ops")));
    assert.deepEqual(joined.map((j) => j.count), [...names.map((_, i) => i + 1), 20]);
    assert.equal(joined[20].added, false);
    assert.equal(await s.memberCount("ops"), 20);
  });

  test("memberCount() and membersPage() follow leave(), renameRoom() and releaseName()", async (s) => {
    // Counted before anything changes, so that a store caching counts keeps them up to date.
    assert.equal(await s.memberCount("ops"), 0);
    for (const n of ["alice", "bob", "carol"]) await s.join(n, "ops");
    await s.join("alice", "general");
    assert.equal(await s.memberCount("ops"), 3);
    assert.equal(await s.leave("bob", "ops"), true);
    assert.equal(await s.leave("bob", "ops"), false);
    assert.equal(await s.memberCount("ops"), 2);
    assert.deepEqual(await s.membersPage("ops", undefined, 10), {
      members: ["alice", "carol"],
      count: 2,
    });
    assert.equal(await s.memberCount("deploys"), 0);
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.equal(await s.memberCount("ops"), 0);
    assert.deepEqual(await s.membersPage("ops", undefined, 10), { members: [], count: 0 });
    assert.equal(await s.memberCount("deploys"), 2);
    assert.deepEqual(await s.membersPage("deploys", undefined, 10), {
      members: ["alice", "carol"],
      count: 2,
    });
    assert.deepEqual(await s.join("dave", "ops"), { added: true, created: true, count: 1 });
    assert.deepEqual(await s.join("bob", "deploys"), { added: true, created: false, count: 3 });
    await s.claimName("alice", "s1", 1000, true);
    assert.deepEqual(await s.releaseName("alice", "s1"), ["deploys", "general"]);
    assert.equal(await s.memberCount("deploys"), 2);
    assert.equal(await s.memberCount("general"), 0);
    assert.deepEqual(await s.membersPage("deploys", undefined, 10), {
      members: ["bob", "carol"],
      count: 2,
    });
    assert.deepEqual(await s.membersPage("ops", undefined, 10), { members: ["dave"], count: 1 });
  });

  test("conversations() and setRead() keep read markers per user", async (s) => {
    await s.join("alice", "general");
    await s.append({ conv: "general", room: "general", from: "bob", text: "1" });
    await s.append({ conv: "general", room: "general", from: "bob", text: "2" });
    const dm = conversationKey("alice", { to: "bob" });
    await s.append({ conv: dm, to: "alice", from: "bob", text: "hey" });
    assert.deepEqual(await s.conversations("alice"), [
      { room: "general", last: 2, read: 0, seq: 2, unread: 2 },
      { to: "bob", last: 1, read: 0, seq: 1, unread: 1 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [
      { to: "alice", last: 1, read: 0, seq: 1, unread: 0 },
    ]);
    assert.equal(await s.setRead("alice", "general", 1), 1);
    assert.equal(await s.setRead("alice", "general", 0), 1, "markers never move back");
    assert.equal(await s.setRead("alice", "general", 99), 2, "markers stop at the newest id");
    assert.equal(await s.setRead("alice", dm, 1), 1);
    assert.deepEqual(await s.conversations("alice"), [
      { room: "general", last: 2, read: 2, seq: 2, unread: 0 },
      { to: "bob", last: 1, read: 1, seq: 1, unread: 0 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [
      { to: "alice", last: 1, read: 0, seq: 1, unread: 0 },
    ]);
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

  test("search() looks at the words without their Markdown, also after an edit", async (s) => {
    const room = (text: string) => ({ conv: "r", room: "r", from: "f", text });
    const split = await s.append(room("the dep**loy** is _done_"));
    const link = await s.append(room("read [the runbook](https://wiki.test/zebra-page) first"));
    const code = await s.append(room("run `make kiwi` then\n```\nmango --fast\n```"));
    await settle(s);
    const scope = { user: "f", rooms: ["r"], limit: 10 };
    const ids = async (q: string) => (await s.search(q, scope)).map((m) => m.id);
    assert.deepEqual(await ids("deploy done"), [split.id]);
    assert.deepEqual(await ids("runbook"), [link.id]);
    assert.deepEqual(await ids("zebra"), [], "a link's address is not its words");
    assert.deepEqual(await ids("kiwi"), [code.id]);
    assert.deepEqual(await ids("mango"), [code.id]);
    await s.change({ kind: "edit", conv: "r", id: link.id, user: "f", text: "read **the guide**" });
    await settle(s);
    assert.deepEqual(await ids("guide"), [link.id]);
    assert.deepEqual(await ids("runbook"), []);
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
      claim: { name: "Alice", session: "s1", seen: 1000, since: 1000 },
    });
    assert.deepEqual(
      await s.claimName("aLiCe", "s1", 2000, false),
      { ok: true, claim: { name: "Alice", session: "s1", seen: 2000, since: 1000 } },
      "the holder refreshes seen in any case; the display case and since stay",
    );
    assert.deepEqual(
      await s.claimName("ALICE", "s2", 3000, true),
      { ok: false, claim: { name: "Alice", session: "s1", seen: 2000, since: 1000 } },
      "another session learns who holds it and changes nothing",
    );
    assert.deepEqual(
      await s.claimName("bob", "s2", 3000, false),
      { ok: false, claim: null },
      "an unclaimed name is not created without create",
    );
    assert.deepEqual(await s.staleClaims(Infinity, 10), [
      { name: "Alice", session: "s1", seen: 2000, since: 1000 },
    ]);
    assert.deepEqual(await s.claimName("bob", "s2", 3000, true), {
      ok: true,
      claim: { name: "bob", session: "s2", seen: 3000, since: 3000 },
    });
  });

  test("claimName() records since at creation, keeps it on refresh; every read returns it", async (s) => {
    const first = { name: "Alice", session: "s1", seen: 1000, since: 1000 };
    assert.deepEqual(await s.claimName("Alice", "s1", 1000, true), { ok: true, claim: first });
    const refreshed = { ...first, seen: 4000 };
    assert.deepEqual(await s.claimName("alice", "s1", 4000, true), {
      ok: true,
      claim: refreshed,
    });
    await settle(s);
    assert.deepEqual(await s.nameClaim("ALICE"), refreshed);
    assert.deepEqual(await s.staleClaims(Infinity, 10), [refreshed]);
    assert.deepEqual(await s.recentClaims({ since: 0, limit: 10 }), [refreshed]);
    assert.deepEqual(await s.recentClaims({ since: 4000, match: "lic", limit: 10 }), [refreshed]);

    // Released, the name's next holder gets its own time, not the old one's.
    assert.deepEqual(await s.releaseName("alice", "s1"), []);
    const next = { name: "aLICE", session: "s2", seen: 9000, since: 9000 };
    assert.deepEqual(await s.claimName("aLICE", "s2", 9000, true), { ok: true, claim: next });
    assert.deepEqual(await s.claimName("alice", "s3", 9500, true), { ok: false, claim: next });
    await settle(s);
    assert.deepEqual(await s.nameClaim("alice"), next);
    assert.deepEqual(await s.staleClaims(Infinity, 10), [next]);
    assert.deepEqual(await s.recentClaims({ since: 0, limit: 10 }), [next]);
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
      { name: "alice", session: "s1", seen: 1000, since: 1000 },
    ]);
    assert.equal(await s.knownUser("alice"), true);
    assert.deepEqual(await s.roomsOf("alice"), ["general"]);
    assert.deepEqual((await s.page(ab, { limit: 10 })).messages.map((m) => m.text), ["hi"]);
  });

  test("nameClaim() reads the holder of any spelling and changes nothing", async (s) => {
    assert.equal(await s.nameClaim("alice"), null);
    await s.claimName("Alice", "s1", 1000, true);
    const claim = { name: "Alice", session: "s1", seen: 1000, since: 1000 };
    assert.deepEqual(await s.nameClaim("ALICE"), claim);
    assert.deepEqual(await s.staleClaims(Infinity, 10), [claim]);
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
    assert.deepEqual(await s.nameClaim("alice"), {
      name: "alice",
      session: "s1",
      seen: 5000,
      since: 1000,
    });
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
      [
        { room: "general", last: 2, read: 1, seq: 2, unread: 0 },
        { to: "carol", last: 1, read: 0, seq: 1, unread: 0 },
      ],
      "the peer no longer lists the DM",
    );
    assert.deepEqual(await s.conversations("carol"), [
      { to: "bob", last: 1, read: 0, seq: 1, unread: 1 },
    ]);
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
    assert.deepEqual(await s.conversations("alice"), [
      { to: "bob", last: 4, read: 0, seq: 4, unread: 1 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [
      { room: "general", last: 2, read: 1, seq: 2, unread: 0 },
      { to: "alice", last: 4, read: 0, seq: 4, unread: 0 },
      { to: "carol", last: 1, read: 0, seq: 1, unread: 0 },
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
      { name: "B", session: "sb", seen: 100, since: 100 },
      { name: "c", session: "sc", seen: 200, since: 200 },
      { name: "a", session: "sa", seen: 300, since: 300 },
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

  test("roomSettings(): a plain room's are {}, no room's null; rooms() shows no flags", async (s) => {
    assert.equal(await s.roomSettings("ops"), null);
    await s.join("alice", "ops");
    await s.join("bob", "ops", {});
    await s.join("bob", "general", { private: false });
    assert.deepEqual(await s.roomSettings("ops"), {});
    assert.deepEqual(await s.roomSettings("general"), {});
    assert.deepEqual(await s.rooms(), [
      { name: "general", members: 1 },
      { name: "ops", members: 2 },
    ]);
  });

  test("join() with private creates a private room; membership works as for any room", async (s) => {
    assert.deepEqual(await s.join("alice", "secret", { private: true }), {
      added: true,
      created: true,
      count: 1,
    });
    await s.join("alice", "general");
    assert.deepEqual(await s.roomSettings("secret"), { private: true });
    assert.deepEqual(await s.rooms(), [
      { name: "general", members: 1 },
      { name: "secret", members: 1, private: true },
    ]);
    assert.equal(await s.roomsCreatedBy("alice"), 2);
    assert.deepEqual(await s.join("bob", "secret"), { added: true, created: false, count: 2 });
    assert.deepEqual(await s.members("secret"), ["alice", "bob"]);
    assert.deepEqual(await s.roomsOf("bob"), ["secret"]);
    assert.equal(await s.leave("alice", "secret"), true);
    assert.deepEqual(await s.members("secret"), ["bob"]);
    assert.deepEqual(await s.roomsOf("alice"), ["general"]);
    assert.equal(await s.leave("bob", "secret"), true);
    assert.deepEqual(await s.roomSettings("secret"), { private: true }, "kept when empty");
    assert.deepEqual((await s.rooms())[1], { name: "secret", members: 0, private: true });
  });

  test("join() never changes the settings of a room that exists", async (s) => {
    await s.join("alice", "ops");
    assert.deepEqual(await s.join("bob", "ops", { private: true }), {
      added: true,
      created: false,
      count: 2,
    });
    assert.deepEqual(await s.join("alice", "ops", { private: true }), {
      added: false,
      created: false,
      count: 2,
    });
    assert.deepEqual(await s.roomSettings("ops"), {}, "not made private by a later join");
    await s.join("alice", "secret", { private: true });
    await s.setRoomSettings("secret", { readOnly: true });
    assert.deepEqual(await s.join("bob", "secret"), { added: true, created: false, count: 2 });
    assert.deepEqual(await s.join("carol", "secret", { private: false }), {
      added: true,
      created: false,
      count: 3,
    });
    assert.deepEqual(await s.roomSettings("secret"), { private: true, readOnly: true });
    assert.deepEqual(await s.rooms(), [
      { name: "ops", members: 2 },
      { name: "secret", members: 3, private: true, readOnly: true },
    ]);
  });

  test("join() racing to create a room: only the creator's private wish counts", async (s) => {
    for (const [i, creatorPrivate] of [[0, true], [1, false], [2, true], [3, false]] as const) {
      const room = `race${i}`;
      // Every other joiner wishes the opposite of the first.
      const wish = (j: number) => j % 2 === 0 ? creatorPrivate : !creatorPrivate;
      const joins = await Promise.all(
        Array.from({ length: 8 }, (_, j) => s.join(`u${j}`, room, { private: wish(j) })),
      );
      const creators = joins.flatMap((r, j) => r.created ? [j] : []);
      assert.equal(creators.length, 1, "one creator");
      assert.deepEqual(await s.roomSettings(room), wish(creators[0]) ? { private: true } : {});
      assert.equal((await s.members(room)).length, 8);
    }
  });

  test("setRoomSettings() sets and clears each flag and resolves the settings after", async (s) => {
    await s.join("alice", "ops");
    assert.deepEqual(await s.setRoomSettings("ops", { readOnly: true }), { readOnly: true });
    assert.deepEqual(await s.setRoomSettings("ops", { archived: true, private: true }), {
      private: true,
      readOnly: true,
      archived: true,
    });
    assert.deepEqual(await s.roomSettings("ops"), {
      private: true,
      readOnly: true,
      archived: true,
    });
    assert.deepEqual(await s.rooms(), [
      { name: "ops", members: 1, private: true, readOnly: true, archived: true },
    ]);
    assert.deepEqual(await s.setRoomSettings("ops", { private: false }), {
      readOnly: true,
      archived: true,
    });
    assert.deepEqual(await s.setRoomSettings("ops", { readOnly: false, archived: true }), {
      archived: true,
    });
    assert.deepEqual(await s.setRoomSettings("ops", {}), { archived: true }, "nothing given");
    assert.deepEqual(await s.setRoomSettings("ops", { archived: false }), {});
    assert.deepEqual(await s.setRoomSettings("ops", { private: false }), {}, "cleared already");
    assert.deepEqual(await s.roomSettings("ops"), {});
    assert.deepEqual(await s.rooms(), [{ name: "ops", members: 1 }]);
    assert.deepEqual(await s.setRoomSettings("ops", { private: true }), { private: true });
    assert.deepEqual(await s.setRoomSettings("ops", { private: true }), { private: true });
    assert.deepEqual(await s.members("ops"), ["alice"], "membership unchanged");
    assert.deepEqual(await s.roomsOf("alice"), ["ops"]);
    // A default room of new accounts, beside the other flags.
    assert.deepEqual(await s.setRoomSettings("ops", { autoJoin: true, private: false }), {
      autoJoin: true,
    });
    assert.deepEqual(await s.rooms(), [{ name: "ops", members: 1, autoJoin: true }]);
    assert.deepEqual(await s.setRoomSettings("ops", { readOnly: true }), {
      readOnly: true,
      autoJoin: true,
    });
    assert.deepEqual(await s.setRoomSettings("ops", { autoJoin: false, readOnly: false }), {});
  });

  test("setRoomSettings() keeps restrictRoomMentions beside the other flags, through a rename", async (s) => {
    await s.join("alice", "ops");
    assert.deepEqual(await s.setRoomSettings("ops", { restrictRoomMentions: true }), {
      restrictRoomMentions: true,
    });
    assert.deepEqual(await s.roomSettings("ops"), { restrictRoomMentions: true });
    assert.deepEqual(await s.setRoomSettings("ops", { readOnly: true, autoJoin: true }), {
      readOnly: true,
      autoJoin: true,
      restrictRoomMentions: true,
    });
    assert.deepEqual(await s.setRoomSettings("ops", { readOnly: false, autoJoin: false }), {
      restrictRoomMentions: true,
    }, "clearing the others leaves it");
    assert.deepEqual(await s.rooms(), [{ name: "ops", members: 1, restrictRoomMentions: true }]);
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.deepEqual(await s.roomSettings("deploys"), { restrictRoomMentions: true }, "renamed");
    assert.deepEqual(await s.rooms(), [
      { name: "deploys", members: 1, restrictRoomMentions: true },
    ]);
    await s.join("alice", "ops");
    assert.deepEqual(await s.roomSettings("ops"), {}, "a new room of the old name is plain");
    assert.deepEqual(await s.setRoomSettings("deploys", { restrictRoomMentions: false }), {});
    assert.deepEqual(await s.roomSettings("deploys"), {});
  });

  test("setRoomSettings() of a room that does not exist resolves null and creates nothing", async (s) => {
    assert.equal(await s.setRoomSettings("nowhere", { private: true, readOnly: true }), null);
    assert.equal(await s.setRoomSettings("nowhere", {}), null);
    assert.equal(await s.roomSettings("nowhere"), null);
    assert.equal(await s.roomExists("nowhere"), false);
    assert.deepEqual(await s.rooms(), []);
    assert.deepEqual(await s.join("alice", "nowhere"), { added: true, created: true, count: 1 });
    assert.deepEqual(await s.roomSettings("nowhere"), {}, "created later: plain");
  });

  test("setRoomSettings() made at once on different flags all stick", async (s) => {
    await s.join("alice", "ops");
    await Promise.all([
      s.setRoomSettings("ops", { private: true }),
      s.setRoomSettings("ops", { readOnly: true }),
      s.setRoomSettings("ops", { archived: true }),
      s.setRoomSettings("ops", { restrictRoomMentions: true }),
    ]);
    assert.deepEqual(await s.roomSettings("ops"), {
      private: true,
      readOnly: true,
      archived: true,
      restrictRoomMentions: true,
    });
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
      { name: "JOHANN", session: "sj", seen: 400, since: 400 },
      { name: "hannah", session: "sh", seen: 300, since: 300 },
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

  // ---------------------------------------------------------------------------
  // Living messages (issue 15): one sequence per conversation, changes, since pages.

  /** A message in room `r` (or `conv`), with optional extras such as `replyTo`. */
  const post = (s: Store, from: string, text: string, extra: Partial<Draft> = {}) =>
    s.append({ conv: "r", room: "r", from, text, ...extra });
  const edit = (s: Store, id: number, user: string, text: string, sentAfter?: number) =>
    s.change(
      sentAfter === undefined
        ? { kind: "edit", conv: "r", id, user, text }
        : { kind: "edit", conv: "r", id, user, text, sentAfter },
    );
  const del = (s: Store, id: number, user: string, sentAfter?: number) =>
    s.change(
      sentAfter === undefined
        ? { kind: "delete", conv: "r", id, user }
        : { kind: "delete", conv: "r", id, user, sentAfter },
    );
  const react = (s: Store, id: number, user: string, emoji: string, on = true) =>
    s.change({ kind: "react", conv: "r", id, user, emoji, on });
  /** The `Applied` of an applied change (fails the test otherwise). */
  const applied = (r: ChangeResult): Applied => {
    assert.ok(r.ok && r.applied, `applied, not ${JSON.stringify(r)}`);
    return r.applied;
  };
  const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

  test("append() gives seq === id; ids skip the positions changes take", async (s) => {
    const a = await post(s, "alice", "one");
    assert.deepEqual([a.id, a.seq], [1, 1]);
    const e = applied(await edit(s, 1, "alice", "one!"));
    assert.equal(e.seq, 2);
    const b = await post(s, "bob", "two");
    assert.deepEqual([b.id, b.seq], [3, 3], "the edit took position 2");
    assert.deepEqual((await s.page("r", { limit: 10 })).messages.map((m) => [m.id, m.seq]), [
      [1, 2],
      [3, 3],
    ]);
    assert.equal(await s.message("r", 2), null, "position 2 is a change, not a message");
    assert.equal(await s.setRead("alice", "r", 99), 3, "read markers stop at the newest id");
  });

  test("change() edits: new text, edited time, exact Applied; an edit to the same text is an edit", async (s) => {
    const a = await post(s, "alice", "helo");
    const e = applied(await edit(s, 1, "alice", "hello"));
    assert.match(e.editedAt!, ISO);
    assert.ok(e.editedAt! >= a.ts, "never earlier than the message");
    assert.deepEqual(e, {
      kind: "edited",
      conv: "r",
      id: 1,
      seq: 2,
      user: "alice",
      text: "hello",
      editedAt: e.editedAt,
    });
    const now: ChatMessage = {
      id: 1,
      seq: 2,
      room: "r",
      from: "alice",
      text: "hello",
      ts: a.ts,
      edited: e.editedAt,
    };
    await settle(s);
    assert.deepEqual(await s.message("r", 1), now);
    assert.deepEqual((await s.page("r", { limit: 10 })).messages, [now]);
    const again = applied(await edit(s, 1, "alice", "hello"));
    assert.equal(again.seq, 3, "the same text again still takes a position");
    assert.deepEqual(await s.message("r", 1), { ...now, seq: 3, edited: again.editedAt });
    // In a DM, the same rules and the DM's own sequence.
    const dm = conversationKey("alice", { to: "bob" });
    const d = await s.append({ conv: dm, to: "bob", from: "alice", text: "psst" });
    const de = applied(
      await s.change({ kind: "edit", conv: dm, id: d.id, user: "alice", text: "hm" }),
    );
    assert.deepEqual([de.conv, de.id, de.seq], [dm, 1, 2]);
    assert.deepEqual(await s.message(dm, 1), {
      id: 1,
      seq: 2,
      to: "bob",
      from: "alice",
      text: "hm",
      ts: d.ts,
      edited: de.editedAt,
    });
  });

  test("change() refuses: another's message, unknown ids, deleted ones, the edit window", async (s) => {
    const a = await post(s, "alice", "mine");
    assert.deepEqual(await edit(s, 1, "bob", "yours"), { ok: false, refusal: "forbidden" });
    assert.deepEqual(await del(s, 1, "bob"), { ok: false, refusal: "forbidden" });
    assert.deepEqual(await edit(s, 99, "alice", "x"), { ok: false, refusal: "unknown_message" });
    assert.deepEqual(await del(s, 99, "alice"), { ok: false, refusal: "unknown_message" });
    assert.deepEqual(await react(s, 99, "alice", "👍"), { ok: false, refusal: "unknown_message" });
    assert.deepEqual(
      await s.change({ kind: "edit", conv: "elsewhere", id: 1, user: "alice", text: "x" }),
      { ok: false, refusal: "unknown_message" },
      "another conversation's ids are not this one's",
    );
    const sent = Date.parse(a.ts);
    assert.deepEqual(await edit(s, 1, "alice", "late", sent + 1), {
      ok: false,
      refusal: "too_late",
    });
    const inTime = applied(await edit(s, 1, "alice", "in time", sent));
    assert.equal(inTime.seq, 2, "sent at sentAfter: in time");
    assert.equal((await post(s, "bob", "next")).id, 3, "refusals take no position");
    await settle(s);
    assert.deepEqual(await s.message("r", 1), {
      id: 1,
      seq: 2,
      room: "r",
      from: "alice",
      text: "in time",
      ts: a.ts,
      edited: inTime.editedAt,
    });
  });

  test("change() refuses a delete of a message sent before sentAfter, after the author check", async (s) => {
    const a = await post(s, "alice", "mine");
    const sent = Date.parse(a.ts);
    assert.deepEqual(await del(s, 1, "bob", sent + 1), { ok: false, refusal: "forbidden" });
    assert.deepEqual(await del(s, 1, "alice", sent + 1), { ok: false, refusal: "too_late" });
    assert.equal((await post(s, "bob", "next")).id, 2, "the refusal took no position");
    await settle(s);
    assert.deepEqual(await s.message("r", 1), a, "and changed nothing");
    const d = applied(await del(s, 1, "alice", sent));
    assert.deepEqual(
      d,
      { kind: "deleted", conv: "r", id: 1, seq: 3, user: "alice", from: "alice", ts: a.ts },
      "sent at sentAfter: in time",
    );
    assert.deepEqual(
      await del(s, 1, "alice", sent + 1),
      { ok: false, refusal: "too_late" },
      "a tombstone too: it is not this holder's either",
    );
    assert.deepEqual(await del(s, 1, "alice"), { ok: true, applied: null }, "deleted already");
    await post(s, "alice", "also mine");
    assert.deepEqual(applied(await del(s, 4, "alice")).seq, 5, "without sentAfter: no limit");
  });

  test("a later holder of a released name cannot edit or delete the earlier one's messages", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    const old = await post(s, "alice", "the first alice's");
    await settle(s);
    assert.deepEqual(await s.releaseName("alice", "s1"), []);
    // One ms after the old message: sent before the new claim whatever the clock does.
    const claimed = await s.claimName("alice", "s2", Date.parse(old.ts) + 1, true);
    assert.ok(claimed.ok);
    const since = claimed.claim.since;
    assert.deepEqual(await edit(s, 1, "alice", "hijacked", since), {
      ok: false,
      refusal: "too_late",
    });
    assert.deepEqual(await del(s, 1, "alice", since), { ok: false, refusal: "too_late" });
    await settle(s);
    assert.deepEqual(await s.message("r", 1), old);
    // Its own messages, sent at or after its claim, are its to change: wait
    // for the clock to reach the claim's time (a ms at most) before sending.
    while (Date.now() < since) await new Promise((r) => setTimeout(r, 1));
    const mine = await post(s, "alice", "the second alice's");
    assert.equal(applied(await edit(s, mine.id, "alice", "edited", since)).kind, "edited");
    assert.equal(applied(await del(s, mine.id, "alice", since)).kind, "deleted");
  });

  test("change() deletes: a tombstone without text, edits, reactions or reply, read back everywhere", async (s) => {
    const orig = await post(s, "bob", "the question");
    const a = await post(s, "alice", "secret words", {
      replyTo: { id: 1, from: "bob", snippet: "the question", seq: 1 },
    });
    assert.equal(applied(await edit(s, 2, "alice", "secret words, edited")).seq, 3);
    assert.equal(applied(await react(s, 2, "bob", "👍")).seq, 4);
    const d = applied(await del(s, 2, "alice"));
    // The author and time: what a client that never had the message needs for its tombstone.
    assert.deepEqual(d, {
      kind: "deleted",
      conv: "r",
      id: 2,
      seq: 5,
      user: "alice",
      from: "alice",
      ts: a.ts,
    });
    const stone: ChatMessage = {
      id: 2,
      seq: 5,
      room: "r",
      from: "alice",
      text: "",
      ts: a.ts,
      deleted: true,
    };
    await settle(s);
    assert.deepEqual(await s.message("r", 2), stone);
    assert.deepEqual((await s.page("r", { limit: 10 })).messages, [orig, stone]);
    assert.deepEqual((await s.page("r", { since: 4, limit: 10 })).messages, [stone]);
    assert.deepEqual(await del(s, 2, "bob"), { ok: false, refusal: "forbidden" }, "author first");
    assert.deepEqual(await edit(s, 2, "bob", "x"), { ok: false, refusal: "forbidden" });
    assert.deepEqual(await del(s, 2, "alice"), { ok: true, applied: null }, "deleted already");
    assert.deepEqual(await edit(s, 2, "alice", "back"), { ok: false, refusal: "unknown_message" });
    assert.deepEqual(await react(s, 2, "bob", "🎉"), { ok: false, refusal: "unknown_message" });
    assert.deepEqual(await react(s, 2, "bob", "👍", false), {
      ok: false,
      refusal: "unknown_message",
    });
    assert.equal((await post(s, "bob", "next")).id, 6, "nothing after the delete took a position");
    assert.deepEqual(await s.message("r", 2), stone);
  });

  test("change() reacts: users in reaction order, idempotent, last one out removes the emoji", async (s) => {
    const a = await post(s, "alice", "react to me");
    assert.deepEqual(applied(await react(s, 1, "bob", "👍")), {
      kind: "reaction",
      conv: "r",
      id: 1,
      seq: 2,
      user: "bob",
      emoji: "👍",
      on: true,
    });
    assert.equal(applied(await react(s, 1, "alice", "👍")).seq, 3, "one's own message too");
    assert.equal(applied(await react(s, 1, "carol", "🎉")).seq, 4);
    const reactions = async () => Object.entries((await s.message("r", 1))!.reactions ?? {});
    assert.deepEqual(await reactions(), [["👍", ["bob", "alice"]], ["🎉", ["carol"]]]);
    assert.deepEqual(await react(s, 1, "bob", "👍"), { ok: true, applied: null }, "already on");
    assert.deepEqual(
      await react(s, 1, "carol", "👍", false),
      { ok: true, applied: null },
      "not on",
    );
    assert.deepEqual(applied(await react(s, 1, "bob", "👍", false)), {
      kind: "reaction",
      conv: "r",
      id: 1,
      seq: 5,
      user: "bob",
      emoji: "👍",
      on: false,
    });
    assert.deepEqual(await reactions(), [["👍", ["alice"]], ["🎉", ["carol"]]]);
    assert.equal(applied(await react(s, 1, "bob", "👍")).seq, 6);
    assert.deepEqual(
      await reactions(),
      [["👍", ["alice", "bob"]], ["🎉", ["carol"]]],
      "back at the end",
    );
    assert.equal(applied(await react(s, 1, "carol", "🎉", false)).seq, 7);
    assert.deepEqual(await reactions(), [["👍", ["alice", "bob"]]], "the emoji key is gone");
    assert.equal(applied(await react(s, 1, "alice", "👍", false)).seq, 8);
    assert.equal(applied(await react(s, 1, "bob", "👍", false)).seq, 9);
    await settle(s);
    const bare: ChatMessage = {
      id: 1,
      seq: 9,
      room: "r",
      from: "alice",
      text: "react to me",
      ts: a.ts,
    };
    assert.deepEqual(await s.message("r", 1), bare, "no reactions: no key");
    assert.deepEqual((await s.page("r", { limit: 5 })).messages, [bare]);
    assert.equal((await post(s, "bob", "next")).id, 10, "idempotent reactions took no position");
  });

  test("change() refuses a 21st different emoji, while existing ones still work", async (s) => {
    const emoji = [..."👍😂🎉🙏🔥👀✅😮😢👏🚀💯🤔😄🙌⭐🍕☕🎯", "❤️"];
    assert.equal(emoji.length, 20);
    await post(s, "alice", "popular");
    for (const e of emoji) applied(await react(s, 1, "alice", e));
    assert.deepEqual(await react(s, 1, "bob", "🐛"), { ok: false, refusal: "too_many_reactions" });
    assert.equal(applied(await react(s, 1, "bob", "❤️")).seq, 22, "an existing emoji still works");
    assert.deepEqual((await s.message("r", 1))!.reactions!["❤️"], ["alice", "bob"]);
    assert.equal(applied(await react(s, 1, "alice", "👍", false)).seq, 23);
    assert.equal(applied(await react(s, 1, "bob", "🐛")).seq, 24, "19 left: a new one fits");
    assert.deepEqual(
      Object.keys((await s.message("r", 1))!.reactions!),
      [...emoji.slice(1), "🐛"],
    );
  });

  test("message() reads one message in its current state, null when not kept", async (s) => {
    const a = await post(s, "alice", "hi");
    assert.deepEqual(await s.message("r", 1), a);
    assert.equal(await s.message("r", 2), null);
    assert.equal(await s.message("r", 0), null);
    assert.equal(await s.message("nowhere", 1), null);
    await react(s, 1, "bob", "👋");
    assert.deepEqual(await s.message("r", 1), { ...a, seq: 2, reactions: { "👋": ["bob"] } });
  });

  test("page() since brings new messages and changed older ones, by seq, once each, with a cursor", async (s) => {
    await post(s, "alice", "one"); // 1
    await post(s, "bob", "two"); // 2
    await post(s, "alice", "three"); // 3
    await settle(s);
    const before = await s.page("r", { limit: 10 });
    assert.equal(before.seq, 3);
    applied(await edit(s, 1, "alice", "one, edited")); // 4
    await post(s, "bob", "five"); // 5
    applied(await react(s, 2, "alice", "👍")); // 6
    await post(s, "alice", "seven"); // 7
    applied(await del(s, 3, "alice")); // 8
    applied(await edit(s, 5, "bob", "five, edited")); // 9
    applied(await react(s, 2, "carol", "🎉")); // 10
    await settle(s);
    const all = await s.page("r", { since: 3, limit: 10 });
    assert.deepEqual(all.messages.map((m) => [m.id, m.seq]), [[1, 4], [7, 7], [3, 8], [5, 9], [
      2,
      10,
    ]]);
    assert.deepEqual([all.more, all.gap, all.seq], [false, false, 10]);
    assert.deepEqual(all.messages.map((m) => m.text), [
      "one, edited",
      "seven",
      "",
      "five, edited",
      "two",
    ]);
    assert.deepEqual(all.messages[4].reactions, { "👍": ["alice"], "🎉": ["carol"] });
    assert.equal(all.messages[2].deleted, true);
    for (const m of all.messages) assert.deepEqual(m, await s.message("r", m.id));

    // Paging two at a time: the cursor is the last seq while there is more, then the counter.
    const p1 = await s.page("r", { since: 3, limit: 2 });
    assert.deepEqual([p1.messages.map((m) => m.id), p1.more, p1.gap, p1.seq], [
      [1, 7],
      true,
      false,
      7,
    ]);
    const p2 = await s.page("r", { since: p1.seq, limit: 2 });
    assert.deepEqual([p2.messages.map((m) => m.id), p2.more, p2.seq], [[3, 5], true, 9]);
    const p3 = await s.page("r", { since: p2.seq, limit: 2 });
    assert.deepEqual([p3.messages.map((m) => m.id), p3.more, p3.seq], [[2], false, 10]);
    const p4 = await s.page("r", { since: p3.seq, limit: 2 });
    assert.deepEqual(p4, { messages: [], more: false, gap: false, seq: 10 });
    const exact = await s.page("r", { since: 7, limit: 3 });
    assert.deepEqual([exact.messages.map((m) => m.id), exact.more, exact.seq], [
      [3, 5, 2],
      false,
      10,
    ]);

    // A reader that merges by id ends up with the current state.
    const merged = new Map(before.messages.map((m) => [m.id, m]));
    for (const p of [p1, p2, p3]) for (const m of p.messages) merged.set(m.id, m);
    const now = await s.page("r", { limit: 10 });
    assert.deepEqual([...merged.values()].sort((a, b) => a.id - b.id), now.messages);
    assert.deepEqual(now.messages.map((m) => [m.id, m.seq]), [[1, 4], [2, 10], [3, 8], [5, 9], [
      7,
      7,
    ]]);
    assert.deepEqual([now.more, now.gap, now.seq], [false, false, 10]);

    // Pages by id skip the positions changes took.
    const b1 = await s.page("r", { before: 6, limit: 2 });
    assert.deepEqual([b1.messages.map((m) => m.id), b1.more, b1.seq], [[3, 5], true, 10]);
    const b2 = await s.page("r", { before: 4, limit: 10 });
    assert.deepEqual([b2.messages.map((m) => m.id), b2.more, b2.seq], [[1, 2, 3], false, 10]);
    const b3 = await s.page("r", { before: 3, limit: 1 });
    assert.deepEqual([b3.messages.map((m) => m.id), b3.more], [[2], true]);
  });

  test("page() says gap when a message changed after since was dropped", async (s) => {
    for (const t of ["m1", "m2", "m3"]) await post(s, "alice", t);
    applied(await edit(s, 1, "alice", "m1 edited")); // 4: a reader at 3 holds a stale m1
    await post(s, "alice", "m5"); // drops m1 (keep 3)
    await settle(s);
    assert.deepEqual((await s.page("r", { limit: 10 })).messages.map((m) => m.id), [2, 3, 5]);
    const stale = await s.page("r", { since: 3, limit: 10 });
    assert.deepEqual([stale.messages.map((m) => m.id), stale.gap, stale.seq], [[5], true, 5]);
    const fine = await s.page("r", { since: 4, limit: 10 });
    assert.deepEqual([fine.messages.map((m) => m.id), fine.gap, fine.seq], [[5], false, 5]);
    assert.equal((await s.page("r", { since: 5, limit: 10 })).gap, false);
    // A change to a kept message moves nothing out: no new gap.
    applied(await react(s, 2, "bob", "👍")); // 6
    await settle(s);
    const after = await s.page("r", { since: 4, limit: 10 });
    assert.deepEqual([after.messages.map((m) => m.id), after.gap, after.seq], [[5, 2], false, 6]);
  }, 3);

  test("search() skips deleted messages and sees edited text and reactions", async (s) => {
    await post(s, "alice", "deploy the old api"); // 1
    await post(s, "bob", "deploy tomorrow"); // 2
    await post(s, "alice", "lunch plans"); // 3
    applied(await edit(s, 1, "alice", "ship the new api")); // 4
    applied(await del(s, 2, "bob")); // 5
    applied(await react(s, 3, "bob", "🍕")); // 6
    await settle(s);
    const scope = { user: "alice", rooms: ["r"], limit: 10 };
    assert.deepEqual(await s.search("deploy", scope), [], "old words and deleted text are gone");
    assert.deepEqual(await s.search("old", scope), []);
    assert.deepEqual(await s.search("tomorrow", scope), []);
    assert.deepEqual(await s.search("new api", scope), [await s.message("r", 1)]);
    const lunch = await s.search("lunch", scope);
    assert.deepEqual(lunch, [await s.message("r", 3)]);
    assert.deepEqual(lunch[0].reactions, { "🍕": ["bob"] });
    assert.equal(lunch[0].seq, 6);
  });

  test("conversations() gives seq, the newest id and unread counts of others' live messages", async (s) => {
    await s.join("alice", "general");
    const g = (from: string, text: string) =>
      s.append({ conv: "general", room: "general", from, text });
    /** A change in general (the `Omit` distributes over the kinds). */
    const gc = (
      change: Change extends infer C ? C extends Change ? Omit<C, "conv"> : never : never,
    ) => s.change({ ...change, conv: "general" } as Change);
    await g("bob", "1"); // 1
    await g("bob", "2"); // 2
    await g("alice", "3"); // 3: her own
    applied(await gc({ kind: "react", id: 3, user: "bob", emoji: "👍", on: true })); // 4
    applied(await gc({ kind: "edit", id: 1, user: "bob", text: "1!" })); // 5
    await g("bob", "oops"); // 6
    applied(await gc({ kind: "delete", id: 6, user: "bob" })); // 7: deleted: not unread
    await g("bob", "8"); // 8
    applied(await gc({ kind: "react", id: 8, user: "alice", emoji: "👀", on: true })); // 9
    const dm = conversationKey("alice", { to: "bob" });
    await s.append({ conv: dm, to: "alice", from: "bob", text: "hey" }); // 1
    await s.append({ conv: dm, to: "bob", from: "alice", text: "yo" }); // 2
    applied(
      await s.change({ kind: "react", conv: dm, id: 1, user: "alice", emoji: "👋", on: true }),
    ); // 3
    await settle(s);
    assert.deepEqual(await s.conversations("alice"), [
      { room: "general", last: 8, read: 0, seq: 9, unread: 3 },
      { to: "bob", last: 2, read: 0, seq: 3, unread: 1 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [
      { to: "alice", last: 2, read: 0, seq: 3, unread: 1 },
    ]);
    assert.equal(await s.setRead("alice", "general", 2), 2);
    assert.equal(await s.setRead("bob", dm, 99), 2, "markers stop at the newest id, not at seq");
    assert.deepEqual(await s.conversations("alice"), [
      { room: "general", last: 8, read: 2, seq: 9, unread: 1 },
      { to: "bob", last: 2, read: 0, seq: 3, unread: 1 },
    ]);
    assert.deepEqual(await s.conversations("bob"), [
      { to: "alice", last: 2, read: 2, seq: 3, unread: 0 },
    ]);
    // Changes after the marker never make a conversation unread.
    assert.equal(await s.setRead("alice", "general", 8), 8);
    applied(await gc({ kind: "edit", id: 8, user: "bob", text: "8!" })); // 10
    applied(await gc({ kind: "react", id: 8, user: "bob", emoji: "🎉", on: true })); // 11
    await settle(s);
    assert.deepEqual((await s.conversations("alice"))[0], {
      room: "general",
      last: 8,
      read: 8,
      seq: 11,
      unread: 0,
    });
  });

  test(`conversations() counts unread up to ${UNREAD_CAP}`, async (s) => {
    await s.join("alice", "busy");
    for (let i = 1; i <= 105; i++) {
      await s.append({ conv: "busy", room: "busy", from: "bob", text: `${i}` });
    }
    await settle(s);
    assert.equal(UNREAD_CAP, 100);
    assert.deepEqual(await s.conversations("alice"), [
      { room: "busy", last: 105, read: 0, seq: 105, unread: 100 },
    ]);
    await s.setRead("alice", "busy", 10);
    assert.deepEqual(await s.conversations("alice"), [
      { room: "busy", last: 105, read: 10, seq: 105, unread: 95 },
    ]);
  });

  test("replyTo is stored and read back with the original's current snippet", async (s) => {
    const text = "What do we\n  ship  today?";
    await post(s, "alice", text); // 1
    const sent: ReplyRef = { id: 1, from: "alice", snippet: snippetOf(text) };
    assert.equal(sent.snippet, "What do we ship today?");
    const reply = await post(s, "bob", "the answer", { replyTo: { ...sent, seq: 1 } }); // 2
    assert.deepEqual(reply, {
      id: 2,
      seq: 2,
      room: "r",
      from: "bob",
      text: "the answer",
      ts: reply.ts,
      replyTo: sent,
    });
    await settle(s);
    assert.deepEqual(await s.message("r", 2), reply);
    assert.deepEqual((await s.page("r", { limit: 10 })).messages[1], reply);

    const long = "x".repeat(150) + " " + "y".repeat(150);
    applied(await edit(s, 1, "alice", long)); // 3
    await settle(s);
    const edited: ChatMessage = {
      ...reply,
      replyTo: { id: 1, from: "alice", snippet: snippetOf(long) },
    };
    assert.equal(edited.replyTo!.snippet.length, 200);
    const scope = { user: "bob", rooms: ["r"], limit: 10 };
    assert.deepEqual(await s.message("r", 2), edited, "the snippet follows the edit");
    assert.deepEqual((await s.page("r", { limit: 10 })).messages[1], edited);
    assert.deepEqual((await s.page("r", { since: 1, limit: 10 })).messages, [
      edited,
      await s.message("r", 1),
    ]);
    assert.deepEqual(await s.search("answer", scope), [edited]);

    applied(await del(s, 1, "alice")); // 4
    await settle(s);
    const gone: ChatMessage = {
      ...reply,
      replyTo: { id: 1, from: "alice", snippet: "", deleted: true },
    };
    assert.deepEqual(await s.message("r", 2), gone, "a deleted original says so");
    assert.deepEqual((await s.page("r", { limit: 10 })).messages[1], gone);
    assert.deepEqual(await s.search("answer", scope), [gone]);
  });

  test("appends and changes of one conversation resolve in seq order", async (s) => {
    await post(s, "alice", "first"); // 1
    const order: number[] = [];
    const seqOf = (r: ChatMessage | ChangeResult) => "seq" in r ? r.seq : applied(r).seq;
    const ops = Array.from({ length: 30 }, (_, i): Promise<ChatMessage | ChangeResult> => {
      const op = i % 3 === 1
        ? react(s, 1, `u${i}`, "👍")
        : i % 3 === 2
        ? edit(s, 1, "alice", `edit ${i}`)
        : post(s, "bob", `m${i}`);
      return op.then((r) => {
        order.push(seqOf(r));
        return r;
      });
    });
    const all = await Promise.all(ops);
    const seqs = Array.from({ length: 30 }, (_, i) => i + 2);
    assert.deepEqual(all.map(seqOf), seqs, "positions in call order");
    assert.deepEqual(order, seqs, "resolved in seq order");
    const m1 = (await s.message("r", 1))!;
    assert.deepEqual([m1.seq, m1.text], [31, "edit 29"]);
    assert.equal(m1.reactions!["👍"].length, 10);

    // A change to a message appended in the same breath (not yet resolved) applies after it.
    const [fresh, changed, later] = await Promise.all([
      s.append({ conv: "q", room: "q", from: "alice", text: "typo" }),
      s.change({ kind: "edit", conv: "q", id: 1, user: "alice", text: "fixed" }),
      s.append({ conv: "q", room: "q", from: "bob", text: "after" }),
    ]);
    assert.deepEqual([fresh.id, applied(changed).seq, later.id], [1, 2, 3]);
    await settle(s);
    assert.deepEqual(
      (await s.page("q", { limit: 10 })).messages.map((m) => [m.id, m.seq, m.text]),
      [
        [1, 2, "fixed"],
        [3, 3, "after"],
      ],
    );
  });

  test("releaseName() wiping a DM: ids continue, and a since before the old counter says gap", async (s) => {
    await s.claimName("alice", "s1", 1000, true);
    const ab = conversationKey("alice", { to: "bob" });
    for (const t of ["a", "b", "c"]) {
      await s.append({ conv: ab, to: "bob", from: "alice", text: t });
    }
    applied(await s.change({ kind: "react", conv: ab, id: 3, user: "bob", emoji: "👍", on: true })); // 4
    await settle(s);
    await s.releaseName("alice", "s1");
    await settle(s);
    assert.deepEqual(await s.page(ab, { limit: 10 }), {
      messages: [],
      more: false,
      gap: false,
      seq: 4,
    });
    assert.equal(
      (await s.page(ab, { since: 3, limit: 10 })).gap,
      true,
      "the reader's copy is wiped",
    );
    assert.equal(await s.message(ab, 3), null);
    assert.deepEqual(await s.change({ kind: "edit", conv: ab, id: 3, user: "alice", text: "x" }), {
      ok: false,
      refusal: "unknown_message",
    });
    await s.claimName("alice", "s2", 2000, true);
    const next = await s.append({ conv: ab, to: "alice", from: "bob", text: "hello again" });
    assert.deepEqual([next.id, next.seq], [5, 5]);
    await settle(s);
    for (const since of [0, 2, 3]) {
      const p = await s.page(ab, { since, limit: 10 });
      assert.deepEqual(
        [p.messages.map((m) => m.id), p.gap, p.seq],
        [[5], true, 5],
        `since ${since}`,
      );
    }
    const fine = await s.page(ab, { since: 4, limit: 10 });
    assert.deepEqual([fine.messages.map((m) => m.id), fine.gap, fine.seq], [[5], false, 5]);
    assert.deepEqual(await s.conversations("alice"), [
      { to: "bob", last: 5, read: 0, seq: 5, unread: 1 },
    ]);
  });

  // ---------------------------------------------------------------------------
  // Round 2: replies checked in the append, quotes that never outlive the
  // original's text, the total reactions cap, and a gap for positions ahead.

  /** A quote of `id` in `conv` as the hub takes it: the original as read now, with its seq. */
  const quote = async (s: Store, id: number, conv = "r"): Promise<ReplyRef & { seq: number }> => {
    const original = await s.message(conv, id);
    assert.ok(original, `message ${id} of ${conv} is kept`);
    return { ...replyRef(original), seq: original.seq };
  };
  /** Asserts that `p` rejects with `ReplyChanged` for the original `id`. */
  const replyChanged = (p: Promise<unknown>, id: number) =>
    assert.rejects(p, (err) => {
      assert.ok(err instanceof ReplyChanged, `ReplyChanged, not ${err}`);
      assert.equal(err.message, new ReplyChanged(id).message);
      return true;
    });

  test("append() with replyTo stores the quote without seq when the original is unchanged", async (s) => {
    await post(s, "alice", "the question"); // 1
    applied(await edit(s, 1, "alice", "the real question")); // 2
    const q = await quote(s, 1);
    assert.deepEqual(q, { id: 1, from: "alice", snippet: "the real question", seq: 2 });
    const reply = await post(s, "bob", "the answer", { replyTo: q }); // 3
    const expected: ChatMessage = {
      id: 3,
      seq: 3,
      room: "r",
      from: "bob",
      text: "the answer",
      ts: reply.ts,
      replyTo: { id: 1, from: "alice", snippet: "the real question" },
    };
    assert.deepEqual(reply, expected, "the returned quote carries no seq");
    await settle(s);
    assert.deepEqual(await s.message("r", 3), expected);
    assert.deepEqual((await s.page("r", { limit: 10 })).messages[1], expected);
    assert.deepEqual((await s.page("r", { since: 2, limit: 10 })).messages, [expected]);
    // A reaction moves the original's seq too: a quote taken before it is stale.
    applied(await react(s, 1, "carol", "👍")); // 4
    await replyChanged(post(s, "bob", "late", { replyTo: q }), 1);
    const again = await post(s, "bob", "on time", { replyTo: await quote(s, 1) });
    assert.deepEqual([again.id, again.seq], [5, 5], "the refused append took no position");
    assert.deepEqual(again.replyTo, { id: 1, from: "alice", snippet: "the real question" });
  });

  test("append() with a stale, deleted or unknown original rejects ReplyChanged and stores nothing", async (s) => {
    await post(s, "alice", "original"); // 1
    const q1 = await quote(s, 1);
    applied(await edit(s, 1, "alice", "original, edited")); // 2
    await replyChanged(post(s, "bob", "stale", { replyTo: q1 }), 1);
    await replyChanged(
      post(s, "bob", "unknown", { replyTo: { id: 99, from: "alice", snippet: "", seq: 99 } }),
      99,
    );
    await replyChanged(
      post(s, "bob", "a position, not a message", {
        replyTo: { id: 2, from: "alice", snippet: "", seq: 2 },
      }),
      2,
    );
    await replyChanged(
      s.append({
        conv: "elsewhere",
        room: "elsewhere",
        from: "bob",
        text: "another conversation",
        replyTo: await quote(s, 1),
      }),
      1,
    );
    const q2 = await quote(s, 1);
    applied(await del(s, 1, "alice")); // 3
    await replyChanged(post(s, "bob", "too late", { replyTo: q2 }), 1);
    const stone = await s.message("r", 1);
    assert.deepEqual([stone?.deleted, stone?.seq], [true, 3]);
    await replyChanged(
      post(s, "bob", "to a tombstone", {
        replyTo: { id: 1, from: "alice", snippet: "", deleted: true, seq: 3 },
      }),
      1,
    );
    // With a ref: refused, the ref is not remembered (a retry is a new message).
    await post(s, "alice", "another"); // 4
    const q4 = await quote(s, 4);
    applied(await react(s, 4, "bob", "🎉")); // 5
    const draft = { ...said("with a ref", "k1", "r"), replyTo: q4 };
    await replyChanged(s.appendOnce(draft), 4);
    const retry = await s.appendOnce({ ...draft, replyTo: await quote(s, 4) });
    assert.deepEqual([retry.fresh, retry.msg.id], [true, 6], "next id, nothing stored before");
    assert.deepEqual(retry.msg.replyTo, { id: 4, from: "alice", snippet: "another" });
    assert.equal(
      (await s.append({ conv: "elsewhere", room: "elsewhere", from: "bob", text: "x" })).id,
      1,
    );
    await settle(s);
    assert.deepEqual(
      (await s.page("r", { limit: 10 })).messages.map((m) => [m.id, m.text]),
      [[1, ""], [4, "another"], [6, "with a ref"]],
    );
    assert.deepEqual((await s.page("r", { since: 0, limit: 10 })).seq, 6);
  });

  test("append() with replyTo checks against changes made in the same breath", async (s) => {
    await post(s, "alice", "first draft"); // 1
    await settle(s);
    const q = await quote(s, 1);
    // The edit is asked for first: the reply quoting the text before it is refused.
    const [edited, stale] = await Promise.allSettled([
      edit(s, 1, "alice", "second draft"), // 2
      post(s, "bob", "re: first", { replyTo: q }),
    ]);
    assert.equal(edited.status === "fulfilled" && applied(edited.value).seq, 2);
    assert.equal(stale.status, "rejected");
    assert.ok(stale.status === "rejected" && stale.reason instanceof ReplyChanged);
    // The reply is asked for first: it is stored, and the edit right after updates its quote.
    const q2 = await quote(s, 1);
    const [reply, again] = await Promise.all([
      post(s, "bob", "re: second", { replyTo: q2 }), // 3
      edit(s, 1, "alice", "third draft"), // 4
    ]);
    assert.deepEqual([reply.id, applied(again).seq], [3, 4]);
    assert.deepEqual(reply.replyTo, { id: 1, from: "alice", snippet: "second draft" });
    // A reply to a message appended in the same breath (quoted at its own seq).
    const [orig, fresh] = await Promise.all([
      post(s, "alice", "brand new"), // 5
      post(s, "bob", "re: brand new", {
        replyTo: { id: 5, from: "alice", snippet: "brand new", seq: 5 },
      }), // 6
    ]);
    assert.deepEqual([orig.id, fresh.id], [5, 6]);
    await settle(s);
    assert.deepEqual((await s.message("r", 3))!.replyTo, {
      id: 1,
      from: "alice",
      snippet: "third draft",
    });
    assert.deepEqual((await s.message("r", 6))!.replyTo, {
      id: 5,
      from: "alice",
      snippet: "brand new",
    });
  });

  test(
    "a reply whose original was edited, then dropped, quotes the edited text only",
    async (s) => {
      await post(s, "alice", "xyzzy original wording"); // 1
      const reply = await post(s, "bob", "plover answer", { replyTo: await quote(s, 1) }); // 2
      assert.equal(reply.replyTo?.snippet, "xyzzy original wording");
      const other = await post(s, "carol", "plover too", { replyTo: await quote(s, 1) }); // 3
      applied(await edit(s, 1, "alice", "better wording")); // 4
      await post(s, "dave", "filler one"); // 5: drops 1 (keep 3)
      await settle(s);
      assert.equal(await s.message("r", 1), null, "the original is dropped");
      const quoted = { id: 1, from: "alice", snippet: "better wording" };
      assert.deepEqual((await s.message("r", 2))!.replyTo, quoted);
      assert.deepEqual((await s.message("r", 3))!.replyTo, quoted);
      assert.deepEqual({ ...other, replyTo: quoted }, await s.message("r", 3));
      const scope = { user: "bob", rooms: ["r"], limit: 10 };
      const seen = [
        await s.message("r", 2),
        await s.message("r", 3),
        await s.page("r", { limit: 10 }),
        await s.page("r", { since: 0, limit: 10 }),
        await s.page("r", { before: 5, limit: 10 }),
        await s.search("plover", scope),
      ];
      assert.equal((seen[5] as ChatMessage[]).length, 2);
      assert.ok(!JSON.stringify(seen).includes("xyzzy"), "the pre-edit text is gone");
      assert.ok(JSON.stringify(seen).includes("better wording"));
    },
    3,
  );

  test(
    "a reply whose original was deleted, then dropped, shows it deleted and nothing of its text",
    async (s) => {
      await post(s, "alice", "frobozz secret plan"); // 1
      const q = await quote(s, 1);
      await post(s, "bob", "plugh answer", { replyTo: q }); // 2
      applied(await edit(s, 1, "alice", "frobozz even more secret")); // 3
      await post(s, "carol", "plugh also", { replyTo: await quote(s, 1) }); // 4
      applied(await del(s, 1, "alice")); // 5
      await post(s, "dave", "filler"); // 6: drops the tombstone (keep 3)
      await settle(s);
      assert.equal(await s.message("r", 1), null, "the tombstone is dropped");
      const gone = { id: 1, from: "alice", snippet: "", deleted: true };
      assert.deepEqual((await s.message("r", 2))!.replyTo, gone);
      assert.deepEqual((await s.message("r", 4))!.replyTo, gone);
      const scope = { user: "bob", rooms: ["r"], limit: 10 };
      const seen = [
        await s.message("r", 2),
        await s.message("r", 4),
        await s.page("r", { limit: 10 }),
        await s.page("r", { since: 0, limit: 10 }),
        await s.page("r", { before: 6, limit: 10 }),
        await s.search("plugh", scope),
      ];
      assert.deepEqual((seen[5] as ChatMessage[]).map((m) => m.id), [4, 2]);
      assert.ok(!JSON.stringify(seen).includes("frobozz"), "the deleted text is nowhere");
      assert.ok(!JSON.stringify(seen).includes("secret"));
    },
    3,
  );

  test(`change() refuses a reaction past ${MAX_REACTIONS_TOTAL} in all; removing one makes room`, async (s) => {
    assert.equal(MAX_REACTIONS_TOTAL, 1000);
    assert.equal(MAX_REACTIONS, 20);
    await post(s, "alice", "very popular"); // 1
    const emoji = [..."👍😂🎉🙏🔥👀✅😮😢👏🚀💯🤔😄🙌⭐🍕☕🎯🐛"];
    assert.equal(emoji.length, MAX_REACTIONS);
    const perEmoji = MAX_REACTIONS_TOTAL / MAX_REACTIONS;
    // Asked for at once: one batch where the backend batches (positions 2..1001).
    const all = await Promise.all(
      emoji.flatMap((e) => Array.from({ length: perEmoji }, (_, i) => react(s, 1, `u${i}`, e))),
    );
    assert.deepEqual(
      all.map((r) => applied(r).seq),
      Array.from({ length: MAX_REACTIONS_TOTAL }, (_, i) => i + 2),
      `the ${MAX_REACTIONS_TOTAL}th fits`,
    );
    const refused = { ok: false, refusal: "too_many_reactions" };
    assert.deepEqual(await react(s, 1, `u${perEmoji}`, emoji[0]), refused, "an existing emoji");
    assert.deepEqual(await react(s, 1, "alice", emoji[5]), refused);
    assert.deepEqual(
      await react(s, 1, "u0", emoji[0]),
      { ok: true, applied: null },
      "already on: nothing to do",
    );
    assert.equal(applied(await react(s, 1, "u0", emoji[0], false)).seq, 1002);
    assert.equal(applied(await react(s, 1, `u${perEmoji}`, emoji[0])).seq, 1003, "room for one");
    assert.deepEqual(await react(s, 1, "u0", emoji[0]), refused, "full again");
    assert.equal((await post(s, "bob", "next")).id, 1004, "refusals took no position");
    await settle(s);
    const reactions = (await s.message("r", 1))!.reactions!;
    assert.deepEqual(Object.keys(reactions), emoji);
    assert.equal(Object.values(reactions).reduce((n, users) => n + users.length, 0), 1000);
    assert.deepEqual(reactions[emoji[0]].slice(-2), [`u${perEmoji - 1}`, `u${perEmoji}`]);
    assert.equal(reactions[emoji[0]][0], "u1");
  });

  test("page() since ahead of the conversation's position says gap", async (s) => {
    assert.deepEqual(await s.page("nowhere", { since: 5, limit: 10 }), {
      messages: [],
      more: false,
      gap: true,
      seq: 0,
    }, "no messages at all, a client that holds positions");
    assert.equal((await s.page("nowhere", { since: 0, limit: 10 })).gap, false);
    for (const t of ["a", "b", "c"]) await post(s, "alice", t);
    await settle(s);
    assert.deepEqual(await s.page("r", { since: 3, limit: 10 }), {
      messages: [],
      more: false,
      gap: false,
      seq: 3,
    });
    for (const since of [4, 100]) {
      assert.deepEqual(await s.page("r", { since, limit: 10 }), {
        messages: [],
        more: false,
        gap: true,
        seq: 3,
      }, `since ${since}`);
    }
    applied(await react(s, 2, "bob", "👍")); // 4
    await settle(s);
    const caught = await s.page("r", { since: 4, limit: 10 });
    assert.deepEqual([caught.messages, caught.gap, caught.seq], [[], false, 4]);
    const back = await s.page("r", { since: 3, limit: 10 });
    assert.deepEqual([back.messages.map((m) => m.id), back.gap, back.seq], [[2], false, 4]);
  });

  // ---------------------------------------------------------------------------
  // Files (issue 16): a message keeps the files it carries, until it is deleted.

  const PHOTO: FileMeta = {
    id: "AAAAAAAAAAAAAAAAAAAAAA",
    name: "cat.png",
    size: 1234,
    type: "image/png",
    width: 640,
    height: 480,
  };
  const NOTES: FileMeta = {
    id: "BBBBBBBBBBBBBBBBBBBBBB",
    name: "notes.pdf",
    size: 99,
    type: "application/pdf",
  };

  test("append() keeps files with the message, in order: page, since, message(), search", async (s) => {
    const a = await post(s, "alice", "look", { files: [PHOTO, NOTES] });
    assert.deepEqual(a.files, [PHOTO, NOTES]);
    const b = await post(s, "bob", "", { files: [NOTES] });
    assert.deepEqual([b.text, b.files], ["", [NOTES]], "a message may have files and no text");
    const c = await post(s, "bob", "plain");
    assert.equal("files" in c, false, "no files: no files field");
    await settle(s);
    assert.deepEqual((await s.page("r", { limit: 10 })).messages, [a, b, c]);
    assert.deepEqual((await s.page("r", { since: 1, limit: 10 })).messages, [b, c]);
    assert.deepEqual((await s.page("r", { before: 2, limit: 10 })).messages, [a]);
    assert.deepEqual(await s.message("r", 1), a);
    assert.deepEqual(await s.search("look", { user: "alice", rooms: ["r"], limit: 10 }), [a]);
    const dmConv = conversationKey("alice", { to: "bob" });
    const d = await s.append({ conv: dmConv, to: "bob", from: "alice", text: "", files: [PHOTO] });
    await settle(s);
    assert.deepEqual((await s.page(dmConv, { limit: 10 })).messages, [d]);
    assert.deepEqual(d.files, [PHOTO]);
  });

  test("search() finds a message by its files' names, through edits, not once deleted", async (s) => {
    const scope = { user: "alice", rooms: ["r"], limit: 10 };
    await post(s, "alice", "look", { files: [PHOTO, NOTES] });
    await post(s, "bob", "", { files: [{ ...NOTES, name: "Q3-Revenue.xlsx" }] });
    await post(s, "bob", "cats are great");
    await settle(s);
    const ids = async (q: string) => (await s.search(q, scope)).map((m) => m.id);
    assert.deepEqual(await ids("notes"), [1]);
    assert.deepEqual(await ids("revenue"), [2], "a part of the name, in any case");
    assert.deepEqual(await ids("cat"), [3, 1], "text and names alike, newest first");
    applied(await edit(s, 1, "alice", "look again"));
    await settle(s);
    assert.deepEqual(await ids("notes"), [1], "an edit keeps the names searchable");
    assert.deepEqual(await ids("again"), [1]);
    applied(await del(s, 2, "bob"));
    await settle(s);
    assert.deepEqual(await ids("revenue"), [], "a deleted message is found by nothing");
  });

  test("appendOnce() answers a resend of a message with files with the stored message", async (s) => {
    const draft = { conv: "r", room: "r", from: "alice", text: "", files: [PHOTO], ref: "k1" };
    const first = await s.appendOnce(draft);
    assert.deepEqual([first.fresh, first.msg.files], [true, [PHOTO]]);
    assert.deepEqual(await s.appendOnce(draft), { msg: first.msg, fresh: false });
    await settle(s);
    assert.equal((await s.page("r", { limit: 10 })).messages.length, 1);
  });

  test("change() keeps a message's files through edits and reactions; a delete drops them", async (s) => {
    const a = await post(s, "alice", "look", { files: [PHOTO, NOTES] });
    applied(await edit(s, 1, "alice", "look at this"));
    applied(await react(s, 1, "bob", "👍"));
    await settle(s);
    const edited = await s.message("r", 1);
    assert.deepEqual(
      [edited?.text, edited?.files, edited?.reactions],
      ["look at this", [PHOTO, NOTES], { "👍": ["bob"] }],
    );
    assert.deepEqual((await s.page("r", { since: 2, limit: 10 })).messages, [edited]);
    applied(await del(s, 1, "alice"));
    await settle(s);
    const stone: ChatMessage = {
      id: 1,
      seq: 4,
      room: "r",
      from: "alice",
      text: "",
      ts: a.ts,
      deleted: true,
    };
    assert.deepEqual(await s.message("r", 1), stone, "a tombstone carries no files");
    assert.deepEqual((await s.page("r", { limit: 10 })).messages, [stone]);
    assert.deepEqual((await s.page("r", { since: 3, limit: 10 })).messages, [stone]);
  });

  // ---------------------------------------------------------------------------
  // Moderation (issue 17): an admin's delete (`moderator`) of anyone's message.

  /** A moderator delete in room `r` (or `conv`), with an optional `sentAfter`. */
  const remove = (s: Store, id: number, user: string, sentAfter?: number, conv = "r") =>
    s.change(
      sentAfter === undefined
        ? { kind: "delete", conv, id, user, moderator: true }
        : { kind: "delete", conv, id, user, moderator: true, sentAfter },
    );

  test("change() with moderator deletes someone else's message: a tombstone that says removed", async (s) => {
    const q = await post(s, "alice", "the question"); // 1
    const rude = await post(s, "bob", "rude words", {
      replyTo: { id: 1, from: "alice", snippet: "the question", seq: 1 },
      files: [PHOTO],
    }); // 2
    const answer = await post(s, "carol", "calm answer", {
      replyTo: { id: 2, from: "bob", snippet: "rude words", seq: 2 },
    }); // 3
    applied(await react(s, 2, "carol", "👎")); // 4
    assert.deepEqual(await del(s, 2, "carol"), { ok: false, refusal: "forbidden" }, "not one");
    const sent = Date.parse(rude.ts);
    assert.deepEqual(
      applied(await remove(s, 2, "alice", sent + 60_000)),
      {
        kind: "deleted",
        conv: "r",
        id: 2,
        seq: 5,
        user: "alice",
        from: "bob",
        ts: rude.ts,
        removed: true,
      },
      "neither the author nor sentAfter is checked; the author and time are the message's",
    );
    const stone: ChatMessage = {
      id: 2,
      seq: 5,
      room: "r",
      from: "bob",
      text: "",
      ts: rude.ts,
      deleted: true,
      removed: true,
    };
    const quoting: ChatMessage = {
      ...answer,
      replyTo: { id: 2, from: "bob", snippet: "", deleted: true },
    };
    await settle(s);
    assert.deepEqual(await s.message("r", 2), stone, "no text, files or reactions");
    assert.deepEqual((await s.page("r", { limit: 10 })).messages, [q, stone, quoting]);
    assert.deepEqual((await s.page("r", { since: 4, limit: 10 })).messages, [stone]);
    assert.deepEqual((await s.page("r", { before: 3, limit: 1 })).messages, [stone]);
    const scope = { user: "alice", rooms: ["r"], limit: 10 };
    assert.deepEqual(await s.search("rude", scope), [], "its text is found by nothing");
    assert.deepEqual(await s.search("cat", scope), [], "nor its files' names");
    assert.deepEqual(await s.search("calm", scope), [quoting], "a reply quotes none of it");
    assert.deepEqual(await remove(s, 2, "alice"), { ok: true, applied: null }, "removed already");
    assert.deepEqual(await del(s, 2, "bob"), { ok: true, applied: null }, "its author: nothing");
    assert.deepEqual(await edit(s, 2, "bob", "back"), { ok: false, refusal: "unknown_message" });
    assert.equal((await post(s, "bob", "next")).id, 6, "one position, taken once");
    await settle(s);
    assert.deepEqual(await s.message("r", 2), stone, "still removed");
  });

  test("change() with moderator on one's own message is a plain delete; DMs too", async (s) => {
    const own = await post(s, "alice", "mine");
    await settle(s);
    assert.deepEqual(
      applied(await remove(s, 1, "alice", Date.parse(own.ts) + 60_000)),
      { kind: "deleted", conv: "r", id: 1, seq: 2, user: "alice", from: "alice", ts: own.ts },
      "no removed: its author deleted it",
    );
    await settle(s);
    assert.deepEqual(await s.message("r", 1), {
      id: 1,
      seq: 2,
      room: "r",
      from: "alice",
      text: "",
      ts: own.ts,
      deleted: true,
    });
    const dm = conversationKey("alice", { to: "bob" });
    const d = await s.append({ conv: dm, to: "alice", from: "bob", text: "psst" });
    assert.deepEqual(await s.change({ kind: "delete", conv: dm, id: 1, user: "alice" }), {
      ok: false,
      refusal: "forbidden",
    });
    assert.deepEqual(applied(await remove(s, 1, "alice", undefined, dm)), {
      kind: "deleted",
      conv: dm,
      id: 1,
      seq: 2,
      user: "alice",
      from: "bob",
      ts: d.ts,
      removed: true,
    });
    await settle(s);
    const stone: ChatMessage = {
      id: 1,
      seq: 2,
      to: "alice",
      from: "bob",
      text: "",
      ts: d.ts,
      deleted: true,
      removed: true,
    };
    assert.deepEqual(await s.message(dm, 1), stone);
    assert.deepEqual((await s.page(dm, { since: 1, limit: 10 })).messages, [stone]);
  });
  // ---------------------------------------------------------------------------
  // Renaming a room (issue 17): everything of the room moves, the old name is free.

  test("renameRoom() moves history, replies, reactions, search, members, markers, topic, settings", async (s) => {
    const before = await roomToRename(s, settle);
    const rooms = await s.roomCount();
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    await settle(s);
    await assertRenamed(s, before);
    assert.equal(await s.roomCount(), rooms, "a rename counts one room still");
    assert.equal(await s.roomCount(), (await s.rooms()).length);
    // Changes under the new name reach what moved: the reply follows its original.
    const top = before.history.seq;
    const edited = await s.change({
      kind: "edit",
      conv: "deploys",
      id: 1,
      user: "alice",
      text: "deploy the web",
    });
    assert.deepEqual([edited.ok, edited.ok && edited.applied?.seq], [true, top + 1]);
    await settle(s);
    assert.equal((await s.message("deploys", 2))?.replyTo?.snippet, "deploy the web");
    assert.deepEqual(
      await s.change({ kind: "react", conv: "deploys", id: 1, user: "bob", emoji: "👍", on: true }),
      { ok: true, applied: null },
      "bob's reaction moved with the message",
    );
    await s.change({ kind: "delete", conv: "deploys", id: 1, user: "alice" });
    await settle(s);
    assert.deepEqual((await s.message("deploys", 2))?.replyTo, {
      id: 1,
      from: "alice",
      snippet: "",
      deleted: true,
    });
    assert.deepEqual(
      await s.change({ kind: "edit", conv: "ops", id: 3, user: "carol", text: "x" }),
      { ok: false, refusal: "unknown_message" },
      "nothing is left under the old name",
    );
  });

  test("renameRoom() frees the old name: gap for old positions, RoomGone until created again", async (s) => {
    const before = await roomToRename(s, settle);
    const top = before.history.seq;
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    await settle(s);
    for (let since = 0; since <= top; since++) {
      const page = await s.page("ops", { since, limit: 10 });
      assert.deepEqual([page.messages, page.gap], [[], true], `a reader of "ops" at ${since}`);
    }
    const draft = { conv: "ops", room: "ops", from: "alice", text: "lost?" };
    await assert.rejects(s.append(draft), RoomGone);
    await assert.rejects(s.appendOnce({ ...draft, ref: "k-gone" }), RoomGone);
    // A resend of a message the room kept: refused under the old name too.
    await assert.rejects(
      s.appendOnce({ ...draft, from: "carol", text: "ship it", ref: "k-ship" }),
      RoomGone,
    );
    const reply = { ...draft, replyTo: { id: 1, from: "alice", snippet: "x", seq: 1 } };
    await assert.rejects(s.append(reply), RoomGone);
    await settle(s);
    assert.equal((await s.page("ops", { limit: 10 })).messages.length, 0, "nothing stored");
    assert.deepEqual(await s.page("deploys", { limit: 50 }), renamedPage(before.history));
    // The new name takes sends, continuing the room's ids.
    const next = await s.append({ conv: "deploys", room: "deploys", from: "bob", text: "on" });
    assert.equal(next.id, top + 1);
    // Created again: it starts empty, after the old room's ids, and takes sends.
    assert.deepEqual(await s.join("dave", "ops"), { added: true, created: true, count: 1 });
    assert.equal(await s.roomsCreatedBy("dave"), 1);
    assert.deepEqual(await s.roomSettings("ops"), {}, "a new room: none of the old settings");
    assert.equal(await s.topic("ops"), "");
    assert.deepEqual(await s.members("ops"), ["dave"]);
    await settle(s);
    const empty = await s.page("ops", { limit: 10 });
    assert.deepEqual(empty.messages, []);
    assert.ok(empty.seq > top, "its position is past the old room's");
    const first = await s.append({ conv: "ops", room: "ops", from: "dave", text: "hello" });
    assert.ok(first.id > top, `id ${first.id} continues after ${top}`);
    await settle(s);
    assert.deepEqual((await s.page("ops", { limit: 10 })).messages, [first]);
    assert.equal((await s.page("ops", { since: top, limit: 10 })).gap, true);
    assert.deepEqual(await s.page("ops", { since: empty.seq, limit: 10 }), {
      messages: [first],
      more: false,
      gap: false,
      seq: first.seq,
    });
    assert.deepEqual(
      (await s.conversations("dave")).filter((c) => c.room === "ops").map((c) => [c.last, c.read]),
      [[first.id, 0]],
    );
    assert.deepEqual(
      (await s.page("deploys", { limit: 50 })).messages,
      [...renamedPage(before.history).messages, next],
      "the renamed room is untouched by the new one",
    );
  });

  test("renameRoom() of no such room is unknown, to a room that exists taken; nothing changes", async (s) => {
    const before = await roomToRename(s, settle);
    assert.equal(await s.renameRoom("nowhere", "deploys"), "unknown");
    assert.equal(await s.roomExists("deploys"), false);
    assert.equal(await s.renameRoom("ops", "general"), "taken");
    assert.equal(await s.renameRoom("ops", "ops"), "taken", "its own name is taken");
    await s.leave("alice", "general");
    assert.equal(await s.renameRoom("ops", "general"), "taken", "an empty room is taken");
    assert.equal(await s.renameRoom("general", "ops"), "taken");
    await settle(s);
    assert.deepEqual(await s.page("ops", { limit: 50 }), before.history);
    assert.deepEqual(await s.page("ops", { since: 0, limit: 50 }), before.changes);
    assert.deepEqual(await s.page("general", { limit: 50 }), before.general);
    assert.deepEqual(await s.members("ops"), ["alice", "bob", "carol"]);
    assert.deepEqual(await s.members("general"), ["dave"]);
    assert.equal(await s.topic("ops"), "Deploys: ask first");
    assert.deepEqual(await s.roomSettings("ops"), { private: true, readOnly: true });
    const more = await s.append({ conv: "ops", room: "ops", from: "bob", text: "still here" });
    assert.equal(more.id, before.history.seq + 1, "the room takes sends as before");
  });

  test("renameRoom() back to the old name restores the room, ids and all", async (s) => {
    const before = await roomToRename(s, settle);
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.equal(await s.renameRoom("deploys", "ops"), "renamed");
    await settle(s);
    const page = await s.page("ops", { limit: 50 });
    assert.deepEqual(page.messages, before.history.messages);
    assert.ok(page.seq >= before.history.seq);
    assert.deepEqual(await s.members("ops"), ["alice", "bob", "carol"]);
    assert.equal(await s.topic("ops"), "Deploys: ask first");
    for (const user of ["alice", "bob", "carol"]) {
      const [was, is] = [before.convs.get(user)!, await s.conversations(user)];
      assert.deepEqual(
        is.map(({ room, to, read, unread }) => ({ room, to, read, unread })),
        was.map(({ room, to, read, unread }) => ({ room, to, read, unread })),
        `${user}'s markers came back`,
      );
    }
    const next = await s.append({ conv: "ops", room: "ops", from: "bob", text: "back" });
    assert.ok(next.id > before.history.seq);
    await assert.rejects(
      s.append({ conv: "deploys", room: "deploys", from: "bob", text: "x" }),
      RoomGone,
      "the name it had meanwhile is gone now",
    );
    assert.equal((await s.search("deploy", scopeOf("carol", ["deploys"]))).length, 0);
    assert.equal((await s.search("deploy", scopeOf("carol", ["ops"]))).length, 1);
  });

  test("renameRoom() racing appends: each is in the renamed history or refused, never lost", async (s) => {
    await s.join("alice", "ops");
    const sends: Promise<ChatMessage>[] = [];
    const send = (i: number) =>
      sends.push(s.append({ conv: "ops", room: "ops", from: "alice", text: `m${i}` }));
    for (let i = 0; i < 20; i++) send(i);
    const renamed = s.renameRoom("ops", "deploys");
    for (let i = 20; i < 40; i++) send(i);
    // Some after a microtask too, while the rename may be under way.
    await Promise.resolve();
    for (let i = 40; i < 50; i++) send(i);
    assert.equal(await renamed, "renamed");
    const results = await Promise.allSettled(sends);
    const stored: ChatMessage[] = [];
    for (const r of results) {
      if (r.status === "fulfilled") stored.push({ ...r.value, room: "deploys" });
      else assert.ok(r.reason instanceof RoomGone, `refused with RoomGone, not ${r.reason}`);
    }
    assert.ok(stored.length >= 20, "those sent before the rename are kept");
    await settle(s);
    assert.deepEqual((await s.page("deploys", { limit: 100 })).messages, stored);
    assert.deepEqual((await s.page("ops", { limit: 100 })).messages, []);
    // Refused sends after accepted ones only: the rename is one point in the order.
    const kinds = results.map((r) => r.status);
    assert.deepEqual(kinds, [...kinds].sort((a, b) => a === b ? 0 : a === "fulfilled" ? -1 : 1));
  });

  // ---------------------------------------------------------------------------
  // `member`: the sender must be in the room at the append (a send racing a
  // rename, a leave or a kick lands nowhere).

  const sent = (from: string, text: string, ref = ""): Draft & { ref: string } => ({
    conv: "ops",
    room: "ops",
    from,
    text,
    ref,
    member: true,
  });

  test("append() with member refuses a sender not in the room with RoomGone, taking nothing", async (s) => {
    await s.join("alice", "ops");
    await assert.rejects(s.append(sent("bob", "let me in")), RoomGone);
    await assert.rejects(s.appendOnce(sent("bob", "let me in", "b1")), RoomGone);
    await assert.rejects(
      s.append({ ...sent("bob", "nowhere"), conv: "void", room: "void" }),
      RoomGone,
      "no such room",
    );
    const a = await s.append(sent("alice", "hi"));
    assert.equal(a.id, 1, "a refusal takes no id");
    // Refused, the ref is not remembered: the same ref later is a new message.
    await s.join("bob", "ops");
    const b = await s.appendOnce(sent("bob", "let me in", "b1"));
    assert.deepEqual([b.fresh, b.msg.id, b.msg.room], [true, 2, "ops"]);
    await s.leave("alice", "ops");
    await assert.rejects(s.append(sent("alice", "still here?")), RoomGone, "after a leave");
    // Without the flag nothing is checked (as before).
    const c = await s.append({ conv: "ops", room: "ops", from: "alice", text: "unchecked" });
    assert.equal(c.id, 3);
    await settle(s);
    assert.deepEqual(
      (await s.page("ops", { limit: 10 })).messages.map((m) => [m.id, m.from, m.text]),
      [[1, "alice", "hi"], [2, "bob", "let me in"], [3, "alice", "unchecked"]],
    );
    assert.deepEqual((await s.page("void", { limit: 10 })).messages, []);
  });

  test("append() with member checks membership at its turn, after joins and leaves asked before", async (s) => {
    await s.join("alice", "ops");
    const [joined, first] = await Promise.all([s.join("bob", "ops"), s.append(sent("bob", "in"))]);
    assert.deepEqual([joined.added, first.id], [true, 1], "a join asked just before counts");
    const [left, late] = await Promise.allSettled([
      s.leave("bob", "ops"),
      s.append(sent("bob", "out")),
    ]);
    assert.deepEqual(left, { status: "fulfilled", value: true });
    assert.ok(late.status === "rejected" && late.reason instanceof RoomGone, "a leave just before");
    // A released name leaves every room, in order with the append after it.
    await s.join("carol", "ops");
    await s.claimName("carol", "s1", 1000, true);
    const [released, gone] = await Promise.allSettled([
      s.releaseName("carol", "s1"),
      s.append(sent("carol", "still mine?")),
    ]);
    assert.deepEqual(released, { status: "fulfilled", value: ["ops"] });
    assert.ok(gone.status === "rejected" && gone.reason instanceof RoomGone, "released before");
    // A release that does not apply (another session) leaves the membership.
    await s.join("dave", "ops");
    await s.claimName("dave", "s2", 1000, true);
    const [kept, taken] = await Promise.all([
      s.releaseName("dave", "other"),
      s.append(sent("dave", "here")),
    ]);
    assert.deepEqual([kept, taken.id], [null, 2]);
    await settle(s);
    assert.deepEqual(
      (await s.page("ops", { limit: 10 })).messages.map((m) => m.text),
      ["in", "here"],
    );
  });

  test("append() with member after a rename and a new room of the old name: refused there", async (s) => {
    // The hub checked bob's membership of private "ops", then the room was
    // renamed and carol created a new "ops" before bob's send took its turn.
    await s.join("alice", "ops", { private: true });
    await s.join("bob", "ops");
    const before = await s.append(sent("bob", "secret"));
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.deepEqual(await s.join("carol", "ops"), { added: true, created: true, count: 1 });
    await assert.rejects(s.append(sent("bob", "secret 2")), RoomGone);
    await assert.rejects(s.appendOnce(sent("bob", "secret 3", "k3")), RoomGone);
    await settle(s);
    assert.deepEqual((await s.page("ops", { limit: 10 })).messages, [], "carol's room is empty");
    assert.deepEqual(
      (await s.page("deploys", { limit: 10 })).messages,
      [{ ...before, room: "deploys" }],
    );
    const carol = await s.append(sent("carol", "mine"));
    assert.equal(carol.room, "ops");
  });

  test("appendOnce() with member answers a resend of a message stored while a member, after a leave", async (s) => {
    // It was stored; the client only lost its acknowledgement. Refusing it
    // would tell the sender it was not stored.
    await s.join("alice", "ops");
    await s.join("bob", "ops");
    const first = await s.appendOnce(sent("bob", "bye", "k1"));
    assert.equal(first.fresh, true);
    await s.leave("bob", "ops");
    assert.deepEqual(await s.appendOnce(sent("bob", "bye", "k1")), {
      msg: first.msg,
      fresh: false,
    });
    await assert.rejects(s.appendOnce(sent("bob", "bye", "k2")), RoomGone, "a new message");
    await assert.rejects(s.appendOnce(sent("bob", "other text", "k1")), RoomGone, "another text");
    await settle(s);
    assert.deepEqual((await s.page("ops", { limit: 10 })).messages, [first.msg]);
  });

  test("appendOnce() recognizes a resend under the room's new name", async (s) => {
    await s.join("bob", "ops");
    const first = await s.appendOnce(sent("bob", "hello", "r1"));
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    const under = (name: string) => ({ ...sent("bob", "hello", "r1"), conv: name, room: name });
    const again = await s.appendOnce(under("deploys"));
    assert.deepEqual(again, { msg: { ...first.msg, room: "deploys" }, fresh: false });
    // Through several renames, and back to the first name.
    assert.equal(await s.renameRoom("deploys", "ship"), "renamed");
    assert.deepEqual((await s.appendOnce(under("ship"))).fresh, false);
    assert.equal(await s.renameRoom("ship", "ops"), "renamed");
    assert.deepEqual(await s.appendOnce(under("ops")), { msg: first.msg, fresh: false });
    await settle(s);
    assert.deepEqual((await s.page("ops", { limit: 10 })).messages, [first.msg], "stored once");
  });

  test("appendOnce() does not take a send to a new room of the old name for a resend", async (s) => {
    await s.join("bob", "ops");
    const first = await s.appendOnce(sent("bob", "hello", "r1"));
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    await s.join("bob", "ops");
    // The same ref and text under the old name: the message is in "deploys" now.
    const there = await s.appendOnce(sent("bob", "hello", "r1"));
    assert.equal(there.fresh, true);
    assert.ok(there.msg.id > first.msg.id);
    assert.equal(there.msg.room, "ops");
    await settle(s);
    assert.deepEqual((await s.page("ops", { limit: 10 })).messages, [there.msg]);
    assert.deepEqual(
      (await s.page("deploys", { limit: 10 })).messages,
      [{ ...first.msg, room: "deploys" }],
    );
  });

  test("appendOnce() follows the room a message moved with, not a later room of its old name", async (s) => {
    await s.join("alice", "ops");
    const first = await s.appendOnce(sent("alice", "hello", "r1"));
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    // A new room of the old name, with messages of its own, renamed in turn.
    await s.join("bob", "ops");
    await s.append(sent("bob", "one"));
    await s.append(sent("bob", "two"));
    assert.equal(await s.renameRoom("ops", "ship"), "renamed");
    await s.join("alice", "ship");
    const ship = { ...sent("alice", "hello", "r1"), conv: "ship", room: "ship" };
    const there = await s.appendOnce(ship);
    assert.equal(there.fresh, true, "the first message is in deploys, not in ship");
    assert.deepEqual(await s.appendOnce(ship), { msg: there.msg, fresh: false });
    await settle(s);
    assert.deepEqual(
      (await s.page("ship", { limit: 10 })).messages.map((m) => [m.from, m.text]),
      [["bob", "one"], ["bob", "two"], ["alice", "hello"]],
    );
    assert.deepEqual(
      (await s.page("deploys", { limit: 10 })).messages,
      [{ ...first.msg, room: "deploys" }],
    );
  });

  test("recentRenames() lists renames newest first, at most limit, with their time", async (s) => {
    assert.deepEqual(await s.recentRenames(10), [], "none yet");
    await s.join("alice", "ops");
    await s.join("alice", "dev");
    const t0 = Date.now();
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.equal(await s.renameRoom("dev", "build"), "renamed");
    assert.equal(await s.renameRoom("deploys", "ops"), "renamed");
    const t1 = Date.now();
    const all = await s.recentRenames(10);
    assert.deepEqual(all.map(({ room, name }) => [room, name]), [
      ["deploys", "ops"],
      ["dev", "build"],
      ["ops", "deploys"],
    ]);
    for (const r of all) assert.ok(r.at >= t0 && r.at <= t1, `at ${r.at} in [${t0}, ${t1}]`);
    assert.ok(all[0].at >= all[1].at && all[1].at >= all[2].at, "newest first");
    assert.deepEqual(await s.recentRenames(2), all.slice(0, 2));
    assert.deepEqual(await s.recentRenames(0), []);
  });

  test("recentRenames() leaves out refused renames", async (s) => {
    await s.join("alice", "ops");
    await s.join("alice", "dev");
    assert.equal(await s.renameRoom("nowhere", "deploys"), "unknown");
    assert.equal(await s.renameRoom("ops", "dev"), "taken");
    assert.deepEqual(await s.recentRenames(10), []);
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.equal(await s.renameRoom("ops", "other"), "unknown", "its old name is no room now");
    assert.equal(await s.renameRoom("dev", "deploys"), "taken");
    assert.deepEqual((await s.recentRenames(10)).map(({ room, name }) => [room, name]), [
      ["ops", "deploys"],
    ]);
  });

  test("recentRenames() keeps the latest RENAMES_KEPT, dropping the oldest", async (s) => {
    await s.join("alice", "r0");
    const total = RENAMES_KEPT + 3;
    for (let i = 0; i < total; i++) {
      assert.equal(await s.renameRoom(`r${i}`, `r${i + 1}`), "renamed");
    }
    const kept = await s.recentRenames(total);
    // Every backend here trims to exactly RENAMES_KEPT: the list stays bounded.
    assert.equal(kept.length, RENAMES_KEPT);
    assert.deepEqual(
      kept.map(({ room, name }) => [room, name]),
      Array.from({ length: RENAMES_KEPT }, (_, k) => [`r${total - 1 - k}`, `r${total - k}`]),
    );
    assert.deepEqual((await s.recentRenames(1)).map((r) => r.name), [`r${total}`]);
  });

  test("noteSession() moves a session's time forward only; sessions() lists latest first", async (s) => {
    const now = Date.now();
    await s.noteSession("Alice", "s1", 1000);
    await s.noteSession("alice", "s2", 3000);
    await s.noteSession("ALICE", "s1", 2000);
    await s.noteSession("alice", "s1", 500);
    await s.noteSession("alice", "s3", 1500);
    assert.deepEqual(
      await s.sessions(["alice"], 0, now),
      new Map([["alice", [
        { session: "s2", seen: 3000 },
        { session: "s1", seen: 2000 },
        { session: "s3", seen: 1500 },
      ]]]),
    );
  });

  test("sessions() reads several users at once, keyed by the names as given", async (s) => {
    const now = Date.now();
    await s.noteSession("Alice", "a1", 1000);
    await s.noteSession("bob", "b1", 2000);
    await s.noteSession("bob", "b2", 2500);
    await s.noteSession("erin", "e1", 3000);
    const found = await s.sessions(["ALICE", "Bob", "carol", "alice"], 0, now);
    assert.deepEqual(
      found,
      new Map([
        ["ALICE", [{ session: "a1", seen: 1000 }]],
        ["Bob", [{ session: "b2", seen: 2500 }, { session: "b1", seen: 2000 }]],
        ["alice", [{ session: "a1", seen: 1000 }]],
      ]),
      "carol has none and erin was not asked for",
    );
    assert.deepEqual(await s.sessions([], 0, now), new Map());
  });

  test("sessions() lists those seen at or after since", async (s) => {
    const now = Date.now();
    await s.noteSession("alice", "s1", 1000);
    await s.noteSession("alice", "s2", 2000);
    await s.noteSession("alice", "s3", 3000);
    await s.noteSession("bob", "b1", 1999);
    const names = async (since: number) =>
      [...(await s.sessions(["alice", "bob"], since, now))].map((
        [user, list],
      ) => [user, list.map((x) => x.session)]);
    assert.deepEqual(await names(2000), [["alice", ["s3", "s2"]]], "bob's is too old");
    assert.deepEqual(await names(1999), [["alice", ["s3", "s2"]], ["bob", ["b1"]]]);
    assert.deepEqual(await names(3001), []);
  });

  test("sessions() leaves out revoked sessions until the revocation lapses", async (s) => {
    const now = Date.now();
    await s.noteSession("alice", "s1", 1000);
    await s.noteSession("alice", "s2", 2000);
    await s.noteSession("bob", "b1", 3000);
    await s.revokeSession("s2", now + 60_000);
    await s.revokeSession("b1", now + 60_000);
    assert.deepEqual(
      await s.sessions(["alice", "bob"], 0, now),
      new Map([["alice", [{ session: "s1", seen: 1000 }]]]),
      "bob's only session is revoked: bob is left out",
    );
    assert.deepEqual(
      await s.sessions(["alice", "bob"], 0, now + 60_000),
      new Map([
        ["alice", [{ session: "s2", seen: 2000 }, { session: "s1", seen: 1000 }]],
        ["bob", [{ session: "b1", seen: 3000 }]],
      ]),
      "lapsed at until",
    );
  });

  test("noteSession() keeps SESSIONS_KEPT per user, dropping the least recently seen", async (s) => {
    const now = Date.now();
    // Noted latest first: the first noted are the last to go.
    for (let k = SESSIONS_KEPT + 1; k >= 0; k--) await s.noteSession("alice", `s${k}`, 1000 + k);
    await s.noteSession("bob", "b1", 10);
    const ids = async () =>
      (await s.sessions(["alice"], 0, now)).get("alice")!.map((x) => x.session);
    const expected = Array.from({ length: SESSIONS_KEPT }, (_, i) => `s${SESSIONS_KEPT + 1 - i}`);
    assert.deepEqual(await ids(), expected, "s0 and s1 are dropped");
    await s.noteSession("alice", "s10", 5000);
    assert.deepEqual(
      await ids(),
      ["s10", ...expected.filter((x) => x !== "s10")],
      "a kept session seen again drops none",
    );
    await s.noteSession("alice", "s0", 6000);
    assert.deepEqual(
      await ids(),
      ["s0", "s10", ...expected.filter((x) => x !== "s10" && x !== "s2")],
      "a new one drops the least recently seen",
    );
    assert.deepEqual(
      await s.sessions(["bob"], 0, now),
      new Map([["bob", [{ session: "b1", seen: 10 }]]]),
      "per user",
    );
  });

  test("forgetSessions() forgets the user's sessions, in any spelling, and no one else's", async (s) => {
    const now = Date.now();
    await s.noteSession("Alice", "s1", 1000);
    await s.noteSession("bob", "b1", 2000);
    await s.forgetSessions("ALICE");
    assert.deepEqual(
      await s.sessions(["alice", "bob"], 0, now),
      new Map([["bob", [{ session: "b1", seen: 2000 }]]]),
    );
    await s.noteSession("alice", "s2", 3000);
    assert.deepEqual(
      await s.sessions(["alice"], 0, now),
      new Map([["alice", [{ session: "s2", seen: 3000 }]]]),
      "noted afresh after",
    );
  });

  test("releaseName() forgets the holder's sessions", async (s) => {
    const now = Date.now();
    await s.claimName("Alice", "c1", 1000, true);
    await s.noteSession("Alice", "s1", 1000);
    await s.noteSession("bob", "b1", 2000);
    assert.equal(await s.releaseName("alice", "other"), null);
    assert.equal((await s.sessions(["alice"], 0, now)).size, 1, "a refused release keeps them");
    assert.deepEqual(await s.releaseName("ALICE", "c1"), []);
    assert.deepEqual(
      await s.sessions(["Alice", "bob"], 0, now),
      new Map([["bob", [{ session: "b1", seen: 2000 }]]]),
    );
  });
}

/** A search scope of `user` over `rooms`. */
function scopeOf(user: string, rooms: string[]) {
  return { user, rooms, limit: 50 };
}

/** What room "ops" and its neighbours looked like before {@link assertRenamed}. */
export interface RoomSnapshot {
  /** `page("ops", { limit: 50 })`. */
  history: Page;
  /** `page("ops", { since: 0, limit: 50 })`. */
  changes: Page;
  /** `page("general", { limit: 50 })`. */
  general: Page;
  /** The page of alice and bob's DM. */
  dm: Page;
  /** `conversations()` of alice, bob, carol and dave. */
  convs: Map<string, Conversation[]>;
  /** `rooms()`. */
  rooms: RoomInfo[];
}

/**
 * Fills `s` with a room "ops" to rename (created by alice, private and
 * read-only, with a topic; members alice, bob, carol; a reply, a reaction, an
 * edit, a delete, a file, read markers) beside room "general" and a DM, and
 * resolves how it all looked. `settle` waits for the backend's background work.
 */
export async function roomToRename(
  s: Store,
  settle: (s: Store) => Promise<void> = () => Promise.resolve(),
): Promise<RoomSnapshot> {
  const dm = conversationKey("alice", { to: "bob" });
  await s.join("alice", "general");
  await s.join("alice", "ops");
  await s.join("bob", "ops");
  await s.join("carol", "ops");
  await s.join("dave", "general");
  await s.setTopic("ops", "Deploys: ask first");
  await s.setRoomSettings("ops", { private: true, readOnly: true });
  const ops = (from: string, text: string, extra: Partial<Draft> = {}) =>
    s.append({ conv: "ops", room: "ops", from, text, ...extra });
  const m1 = await ops("alice", "deploy the api");
  await s.append({ conv: "general", room: "general", from: "dave", text: "deploy nothing here" });
  const file: FileMeta = { id: "CCCCCCCCCCCCCCCCCCCCCC", name: "plan.pdf", size: 12, type: "x/y" };
  await ops("bob", "rollback plan", { replyTo: { ...replyRef(m1), seq: m1.seq }, files: [file] });
  await ops("carol", "ship it", { ref: "k-ship" });
  await s.change({ kind: "react", conv: "ops", id: 1, user: "bob", emoji: "👍", on: true });
  await s.change({ kind: "edit", conv: "ops", id: 1, user: "alice", text: "deploy the api now" });
  const m4 = await ops("alice", "oops");
  await s.change({ kind: "delete", conv: "ops", id: m4.id, user: "alice" });
  await ops("bob", "done");
  await s.append({ conv: dm, to: "bob", from: "alice", text: "deploy tonight?" });
  await s.setRead("alice", "ops", 3);
  await s.setRead("bob", "ops", m4.id + 1);
  await s.setRead("dave", "general", 1);
  await settle(s);
  const convs = new Map<string, Conversation[]>();
  for (const user of ["alice", "bob", "carol", "dave"]) {
    convs.set(user, await s.conversations(user));
  }
  return {
    history: await s.page("ops", { limit: 50 }),
    changes: await s.page("ops", { since: 0, limit: 50 }),
    general: await s.page("general", { limit: 50 }),
    dm: await s.page(dm, { limit: 50 }),
    convs,
    rooms: await s.rooms(),
  };
}

/** A page of "ops" as it reads under the new name "deploys". */
function renamedPage(page: Page): Page {
  return { ...page, messages: page.messages.map((m) => ({ ...m, room: "deploys" })) };
}

/** Conversations after "ops" became "deploys": renamed, rooms by name, then DMs. */
function renamedConvs(convs: Conversation[]): Conversation[] {
  const rooms = convs.filter((c) => c.room !== undefined)
    .map((c) => c.room === "ops" ? { ...c, room: "deploys" } : c)
    .sort((a, b) => a.room! < b.room! ? -1 : a.room! > b.room! ? 1 : 0);
  return [...rooms, ...convs.filter((c) => c.room === undefined)];
}

/**
 * Checks that `s` holds the room of {@link roomToRename} (as `before`)
 * renamed from "ops" to "deploys", with nothing else changed.
 */
export async function assertRenamed(s: Store, before: RoomSnapshot): Promise<void> {
  assert.deepEqual(await s.page("deploys", { limit: 50 }), renamedPage(before.history));
  assert.deepEqual(await s.page("deploys", { since: 0, limit: 50 }), renamedPage(before.changes));
  assert.deepEqual(
    await s.page("deploys", { before: 3, limit: 50 }),
    renamedPage({ ...before.history, messages: before.history.messages.slice(0, 2) }),
  );
  const reply = await s.message("deploys", 2);
  assert.deepEqual(reply?.replyTo, { id: 1, from: "alice", snippet: "deploy the api now" });
  assert.deepEqual(reply?.files?.map((f) => f.name), ["plan.pdf"]);
  assert.deepEqual((await s.message("deploys", 1))?.reactions, { "👍": ["bob"] });
  assert.equal(await s.message("ops", 1), null);
  const found = await s.search("deploy", scopeOf("alice", ["deploys"]));
  assert.deepEqual(
    found.map((m) => `${m.room ?? `@${m.to}`}#${m.id}`).sort(),
    ["@bob#1", "deploys#1"],
    "the room's message under the new name (and alice's DM)",
  );
  assert.deepEqual(await s.search("plan", scopeOf("bob", ["deploys"])), [
    (await s.message("deploys", 2))!,
  ]);
  assert.deepEqual(await s.search("deploy", { ...scopeOf("carol", ["ops"]) }), []);
  assert.deepEqual(await s.members("deploys"), ["alice", "bob", "carol"]);
  assert.deepEqual(await s.members("ops"), []);
  assert.deepEqual(await s.roomsOf("alice"), ["deploys", "general"]);
  assert.deepEqual(await s.roomsOf("bob"), ["deploys"]);
  assert.deepEqual(await s.roomsOf("carol"), ["deploys"]);
  for (const [user, convs] of before.convs) {
    assert.deepEqual(await s.conversations(user), renamedConvs(convs), `${user}'s conversations`);
  }
  assert.equal(await s.topic("deploys"), "Deploys: ask first");
  assert.equal(await s.topic("ops"), "");
  assert.deepEqual(await s.roomSettings("deploys"), { private: true, readOnly: true });
  assert.equal(await s.roomSettings("ops"), null);
  assert.equal(await s.roomExists("ops"), false);
  assert.equal(await s.roomExists("deploys"), true);
  assert.deepEqual(
    await s.rooms(),
    before.rooms.map((r) => r.name === "ops" ? { ...r, name: "deploys" } : r)
      .sort((a, b) => a.name.localeCompare(b.name)),
  );
  assert.equal(await s.roomsCreatedBy("alice"), 2, "the creator keeps the count");
  assert.deepEqual(await s.page("general", { limit: 50 }), before.general, "another room");
  const dm = conversationKey("alice", { to: "bob" });
  assert.deepEqual(await s.page(dm, { limit: 50 }), before.dm, "a DM");
}
