/**
 * Living messages through the real server: edits, deletes, reactions and
 * replies reach every member's connections in `seq` order (the asker's copy
 * with its `ref`), every bad request gets its code and harms nobody, and a
 * client that was away catches up on every change with `since`. The same
 * scenarios run in memory, on SQLite and across two nodes through Redis.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type ChatMessage,
  conversationKey,
  MAX_REACTIONS,
  type ServerFrame,
  snippetOf,
} from "../protocol.ts";
import { spawnServer } from "./chat_process.ts";
import {
  closeAll,
  signIn,
  signInWithToken,
  signOut,
  startTestServer,
  type TestClient,
  waitUntil,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
type Client = TestClient & { welcome: F<"welcome"> };

const USERS = { alice: "alice-pass", bob: "bob-pass1", carol: "carol-pass" };

/** Two WebSocket URLs of one chat (the same node, or two nodes sharing Redis). */
type Backend = (fn: (urls: [string, string]) => Promise<void>) => Promise<void>;

const BACKENDS: Record<string, Backend> = {
  memory: async (fn) => {
    await using t = await startTestServer({ users: USERS });
    await fn([t.ws, t.ws]);
  },
  sqlite: async (fn) => {
    const dir = await Deno.makeTempDir({ prefix: "chat-living-" });
    try {
      await using t = await startTestServer({ users: USERS, dir, args: ["--data", `${dir}/c.db`] });
      await fn([t.ws, t.ws]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
  redis: async (fn) => {
    await using cluster = await startCluster(2, { users: USERS });
    await fn([cluster.nodes[0].ws, cluster.nodes[1].ws]);
  },
};

/** Sends a message and waits for its acknowledgement. */
async function say(
  c: TestClient,
  text: string,
  where: { room?: string; to?: string } = { room: "general" },
  replyTo?: number,
): Promise<F<"message">> {
  const ref = crypto.randomUUID().slice(0, 8);
  c.send({ type: "send", ...where, text, ref, ...(replyTo ? { replyTo } : {}) });
  return await c.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
}

/** A frame as the other connections got it. */
function withoutRef<T extends { ref?: string }>(frame: T): T {
  const { ref: _, ...rest } = frame;
  return rest as T;
}

/** Waits for the error answering `ref`. */
const errorOf = (c: TestClient, ref: string) =>
  c.next<F<"error">>((f) => f.type === "error" && f.ref === ref);

/** The change frames (`edited`, `deleted`, `reaction`) `c` received and nobody took yet. */
async function changes(c: TestClient): Promise<ServerFrame[]> {
  await c.barrier();
  return c.peek((f) => f.type === "edited" || f.type === "deleted" || f.type === "reaction");
}

/** A room's history as a fresh read by `c` (current state, oldest first). */
async function history(c: TestClient, where: { room?: string; to?: string }) {
  c.send({ type: "history", ...where, limit: 200 });
  return await c.next<F<"history">>((f) =>
    f.type === "history" && (f.room ?? null) === (where.room ?? null) &&
    (f.to ?? null) === (where.to ?? null)
  );
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test(`living (${name}): edits, deletes, reactions and replies reach every connection in seq order`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a, "alice", USERS.alice);
      const tab = await signIn(b, "alice", USERS.alice);
      const bob = await signIn(b, "bob", USERS.bob);
      try {
        const m1 = await say(alice, "hello wrold");
        assert.equal(m1.seq, m1.id);
        for (const c of [tab, bob]) await c.next((f) => f.type === "message" && f.id === m1.id);

        bob.send({ type: "react", room: "general", id: m1.id, emoji: "👍", on: true, ref: "r1" });
        const bobs = await bob.next<F<"reaction">>((f) => f.type === "reaction" && f.ref === "r1");
        assert.equal(bobs.user, "bob");
        alice.send({
          type: "edit",
          room: "general",
          id: m1.id,
          text: "hello **world**",
          ref: "e1",
        });
        const edited = await alice.next<F<"edited">>((f) => f.type === "edited");
        assert.equal(edited.ref, "e1");
        assert.equal(edited.text, "hello **world**");
        assert.ok(edited.editedAt >= m1.ts);

        const reply = await say(bob, "welcome!", { room: "general" }, m1.id);
        assert.deepEqual(reply.replyTo, {
          id: m1.id,
          from: "alice",
          snippet: snippetOf("hello **world**"),
        });
        alice.send({ type: "delete", room: "general", id: m1.id, ref: "d1" });
        const deleted = await alice.next<F<"deleted">>((f) => f.type === "deleted");
        assert.equal(deleted.ref, "d1");

        // Every other connection saw the same changes, in seq order, without a ref
        // (bob's own reaction came to him with its ref, and was taken above).
        bob.inbox.unshift(withoutRef(bobs));
        for (const c of [tab, bob]) {
          const got = await changes(c);
          const seqs = got.map((f) => (f as { seq: number }).seq);
          assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y));
          assert.deepEqual(
            got.map((f) => f.type),
            ["reaction", "edited", "deleted"],
            JSON.stringify(got),
          );
          for (const f of got) assert.equal((f as { ref?: string }).ref, undefined);
          const reaction = got[0] as F<"reaction">;
          assert.deepEqual(
            { room: reaction.room, id: reaction.id, emoji: reaction.emoji, user: reaction.user },
            { room: "general", id: m1.id, emoji: "👍", user: "bob" },
          );
          assert.equal(reaction.on, true);
          assert.ok(reaction.seq > m1.id);
          assert.equal((got[2] as F<"deleted">).seq, deleted.seq);
        }
        // Positions: message, reaction, edit, reply, delete (ids skip the changes' positions).
        assert.equal(reply.id, edited.seq + 1);
        assert.equal(deleted.seq, reply.id + 1);

        // A fresh read shows the current state: a tombstone, and a reply that says so.
        const page = await history(bob, { room: "general" });
        const byId = new Map(page.messages.map((m) => [m.id, m]));
        const stone = byId.get(m1.id)!;
        assert.equal(stone.deleted, true);
        assert.equal(stone.text, "");
        assert.equal(stone.reactions, undefined);
        assert.equal(stone.edited, undefined);
        assert.equal(stone.seq, deleted.seq);
        assert.deepEqual(byId.get(reply.id)!.replyTo, {
          id: m1.id,
          from: "alice",
          snippet: "",
          deleted: true,
        });
        assert.equal(page.seq, deleted.seq);
      } finally {
        await closeAll(alice, tab, bob);
      }
    });
  });

  Deno.test(`living (${name}): a client that was away catches up on every change with since`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a, "alice", USERS.alice);
      let bob: Client | undefined = await signIn(b, "bob", USERS.bob);
      try {
        const m1 = await say(alice, "first");
        const m2 = await say(alice, "second");
        const m3 = await say(alice, "third");
        await bob.next((f) => f.type === "message" && f.id === m3.id);
        const cursor = m3.seq;
        const token = bob.welcome.token;
        await bob.close();

        alice.send({ type: "edit", room: "general", id: m1.id, text: "first, fixed" });
        alice.send({ type: "react", room: "general", id: m2.id, emoji: "🎉", on: true });
        alice.send({ type: "delete", room: "general", id: m3.id });
        const m4 = await say(alice, "fourth");
        alice.send({ type: "react", room: "general", id: m2.id, emoji: "❤️", on: true, ref: "r" });
        const last = await alice.next<F<"reaction">>((f) => f.type === "reaction" && f.ref === "r");

        bob = await signInWithToken(b, token);
        const conv = bob.welcome.conversations.find((c) => c.room === "general")!;
        assert.equal(conv.seq, last.seq);
        assert.equal(conv.last, m4.id);
        bob.send({ type: "join", room: "general", since: cursor });
        const joined = await bob.next<F<"joined">>((f) => f.type === "joined");
        assert.equal(joined.seq, last.seq);
        assert.equal(joined.gap, undefined);
        // By seq: m1 (edit), m3 (delete), m4 (new), m2 (two reactions, the last change).
        assert.deepEqual(joined.history.map((m) => m.id), [m1.id, m3.id, m4.id, m2.id]);
        const got = new Map(joined.history.map((m) => [m.id, m]));
        assert.equal(got.get(m1.id)!.text, "first, fixed");
        assert.ok(got.get(m1.id)!.edited);
        assert.equal(got.get(m3.id)!.deleted, true);
        assert.deepEqual(got.get(m2.id)!.reactions, { "🎉": ["alice"], "❤️": ["alice"] });
        assert.equal(got.get(m2.id)!.seq, last.seq);

        // The same through `history` pages of two, following `seq`.
        const seen: ChatMessage[] = [];
        let since = cursor;
        for (let i = 0; i < 10; i++) {
          bob.send({ type: "history", room: "general", since, limit: 2 });
          const page = await bob.next<F<"history">>((f) => f.type === "history");
          seen.push(...page.messages);
          since = page.seq;
          if (!page.more) break;
        }
        assert.deepEqual(seen.map((m) => m.id), [m1.id, m3.id, m4.id, m2.id]);
        assert.equal(since, last.seq);
        // Nothing new after the end.
        bob.send({ type: "history", room: "general", since });
        const empty = await bob.next<F<"history">>((f) => f.type === "history");
        assert.deepEqual(empty.messages, []);
        assert.equal(empty.more, false);
      } finally {
        await closeAll(alice, bob);
      }
    });
  });
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test(`living (${name}): search finds the current text, through Markdown marks, never deleted text`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a, "alice", USERS.alice);
      const bob = await signIn(b, "bob", USERS.bob);
      try {
        const bold = await say(alice, "the **deploy** is _done_ ~~late~~");
        const typo = await say(alice, "teh kiwi release");
        const secret = await say(alice, "the password is swordfish");
        alice.send({ type: "edit", room: "general", id: typo.id, text: "the mango release" });
        alice.send({ type: "delete", room: "general", id: secret.id, ref: "d" });
        await alice.next((f) => f.type === "deleted" && f.ref === "d");
        const find = async (q: string) => {
          bob.send({ type: "search", q });
          const r = await bob.next<F<"search">>((f) => f.type === "search" && f.q === q);
          return r.messages.map((m) => m.id);
        };
        assert.deepEqual(await find("deploy done"), [bold.id]);
        assert.deepEqual(await find("late"), [bold.id]);
        assert.deepEqual(await find("mango"), [typo.id]);
        assert.deepEqual(await find("kiwi"), []);
        assert.deepEqual(await find("swordfish"), []);
      } finally {
        await closeAll(alice, bob);
      }
    });
  });
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test(`living (${name}): a reply and the sends right behind it are stored in the order sent`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a, "alice", USERS.alice);
      const bob = await signIn(b, "bob", USERS.bob);
      try {
        const original = await say(bob, "the original");
        await alice.next((f) => f.type === "message" && f.id === original.id);
        for (let i = 0; i < 5; i++) {
          alice.send({ type: "send", room: "general", text: `r${i}`, replyTo: original.id });
          alice.send({ type: "send", room: "general", text: `p${i}` });
        }
        const texts: string[] = [];
        while (texts.length < 10) {
          const m = await bob.next<F<"message">>((f) => f.type === "message");
          texts.push(m.text);
          if (m.text.startsWith("r")) {
            assert.deepEqual(m.replyTo, { id: original.id, from: "bob", snippet: "the original" });
          }
        }
        assert.deepEqual(texts, ["r0", "p0", "r1", "p1", "r2", "p2", "r3", "p3", "r4", "p4"]);
      } finally {
        await closeAll(alice, bob);
      }
    });
  });
}

/** Open mode (an edit or delete reads the name's claim first), in memory and through Redis. */
const OPEN_BACKENDS: Record<string, Backend> = {
  memory: async (fn) => {
    await using t = await startTestServer();
    await fn([t.ws, t.ws]);
  },
  redis: async (fn) => {
    await using cluster = await startCluster(1);
    await fn([cluster.nodes[0].ws, cluster.nodes[0].ws]);
  },
};

for (const [name, backend] of Object.entries({ ...BACKENDS, ...prefixed(OPEN_BACKENDS) })) {
  Deno.test(`living (${name}): one connection's messages and changes take positions in the order sent`, async () => {
    await backend(async ([a]) => {
      const alice = name.startsWith("open")
        ? await signIn(a, "alice")
        : await signIn(a, "alice", USERS.alice);
      try {
        const first = await say(alice, "the first");
        // Sends, edits and reactions interleaved, all in one burst (within --burst).
        const refs: string[] = [];
        for (let i = 0; i < 10; i++) {
          const round: Record<string, unknown>[] = [
            { type: "send", room: "general", text: `m${i}` },
            { type: "edit", room: "general", id: first.id, text: `first, v${i}` },
            { type: "react", room: "general", id: first.id, emoji: "👍", on: true },
            { type: "send", room: "general", text: `n${i}` },
            { type: "react", room: "general", id: first.id, emoji: "👍", on: false },
          ];
          for (const frame of round) {
            const ref = `o${refs.length}`;
            refs.push(ref);
            alice.send({ ...frame, ref });
          }
        }
        const seqOf = new Map<string, number>();
        while (seqOf.size < refs.length) {
          const f = await alice.next((f) => "ref" in f && typeof f.ref === "string");
          if (f.type === "error") throw new Error(`${f.code}: ${f.message}`);
          seqOf.set((f as { ref: string }).ref, (f as { seq: number }).seq);
        }
        const seqs = refs.map((r) => seqOf.get(r)!);
        assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), "positions in the order sent");
        assert.equal(new Set(seqs).size, seqs.length);
      } finally {
        await alice.close();
      }
    });
  });
}

/** The backends under names that say they run in open mode. */
function prefixed(backends: Record<string, Backend>): Record<string, Backend> {
  return Object.fromEntries(Object.entries(backends).map(([k, v]) => [`open mode, ${k}`, v]));
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test(`living (${name}): a resent reply is answered with the stored copy after its original was deleted`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a, "alice", USERS.alice);
      const bob = await signIn(b, "bob", USERS.bob);
      try {
        const original = await say(bob, "delete me soon");
        const frame = {
          type: "send",
          room: "general",
          text: "a reply",
          replyTo: original.id,
          ref: "re1",
        };
        alice.send(frame);
        const first = await alice.next<F<"message">>((f) =>
          f.type === "message" && f.ref === "re1"
        );
        bob.send({ type: "delete", room: "general", id: original.id, ref: "d" });
        await bob.next((f) => f.type === "deleted" && f.ref === "d");
        // The acknowledgement was lost: the same frame again, after the delete.
        alice.send(frame);
        const again = await alice.next<F<"message">>((f) =>
          f.type === "message" && f.ref === "re1"
        );
        assert.equal(again.id, first.id);
        assert.deepEqual(again.replyTo, {
          id: original.id,
          from: "bob",
          snippet: "",
          deleted: true,
        });
        // A new reply to it is refused, and nothing was stored twice.
        alice.send({ ...frame, ref: "re2" });
        assert.equal((await errorOf(alice, "re2")).code, "bad_request");
        const page = await history(bob, { room: "general" });
        assert.equal(page.messages.filter((m) => m.text === "a reply").length, 1);
      } finally {
        await closeAll(alice, bob);
      }
    });
  });
}

Deno.test("living: bad requests get their code, change nothing and leave the connection usable", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const carol = await signIn(t.ws, "carol", USERS.carol);
  try {
    const mine = await say(alice, "alice's");
    const gone = await say(alice, "to be deleted");
    alice.send({ type: "delete", room: "general", id: gone.id, ref: "x" });
    await alice.next((f) => f.type === "deleted");
    alice.send({ type: "join", room: "quiet" });
    await alice.next((f) => f.type === "joined" && f.room === "quiet");
    const quiet = await say(alice, "in quiet", { room: "quiet" });
    const dm = await say(alice, "psst", { to: "bob" });
    await bob.barrier();
    await carol.barrier();
    bob.inbox.length = 0;
    carol.inbox.length = 0;

    const long = "x".repeat(5000);
    const cases: [TestClient, Record<string, unknown>, string][] = [
      [bob, { type: "edit", room: "general", id: mine.id, text: "mine now" }, "forbidden"],
      [bob, { type: "delete", room: "general", id: mine.id }, "forbidden"],
      [alice, { type: "edit", room: "general", id: 999, text: "?" }, "unknown_message"],
      [alice, { type: "delete", room: "general", id: 999 }, "unknown_message"],
      [alice, { type: "react", room: "general", id: 999, emoji: "👍" }, "unknown_message"],
      [alice, { type: "edit", room: "general", id: gone.id, text: "back" }, "unknown_message"],
      [bob, { type: "react", room: "general", id: gone.id, emoji: "👍" }, "unknown_message"],
      [alice, { type: "edit", room: "general", id: mine.id, text: " \n " }, "bad_request"],
      [alice, { type: "edit", room: "general", id: mine.id, text: long }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: "ok" }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: "👍👍" }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: "" }, "bad_request"],
      // Only the invisible parts of emoji sequences: nothing to show.
      [bob, { type: "react", room: "general", id: mine.id, emoji: "\uFE0F" }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: "\u200D\uFE0F" }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: "👍\u0301" }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: 5 }, "bad_request"],
      [bob, { type: "react", room: "general", id: mine.id, emoji: "👍", on: "yes" }, "bad_request"],
      [bob, { type: "edit", room: "general", id: -1, text: "x" }, "bad_request"],
      [bob, { type: "edit", room: "general", id: 1.5, text: "x" }, "bad_request"],
      [bob, { type: "delete", room: "general" }, "bad_request"],
      [bob, { type: "send", room: "general", text: "re", replyTo: 999 }, "bad_request"],
      // A message of another conversation is not one of this conversation.
      [bob, { type: "send", room: "general", text: "re", replyTo: dm.id + 50 }, "bad_request"],
      [alice, { type: "send", room: "general", text: "re", replyTo: gone.id }, "bad_request"],
      // Carol is not in "quiet", and the DM of alice and bob is not hers to touch.
      [carol, { type: "react", room: "quiet", id: quiet.id, emoji: "👍" }, "unknown_room"],
      [carol, { type: "delete", room: "quiet", id: quiet.id }, "unknown_room"],
      [carol, { type: "edit", to: "bob", id: dm.id, text: "hijack" }, "unknown_message"],
      [carol, { type: "react", to: "alice", id: dm.id, emoji: "👍" }, "unknown_message"],
    ];
    let n = 0;
    for (const [c, frame, code] of cases) {
      const ref = `bad${n++}`;
      c.send({ ...frame, ref });
      const err = await errorOf(c, ref);
      assert.equal(err.code, code, `${JSON.stringify(frame).slice(0, 120)} → ${err.message}`);
      assert.ok(err.message.length > 10);
    }
    // Nobody was told of anything, and every connection still works.
    for (const c of [alice, bob, carol]) {
      assert.deepEqual(await changes(c), []);
      await say(c, `still here ${c === alice ? "a" : c === bob ? "b" : "c"}`);
    }
    const page = await history(bob, { room: "general" });
    const kept = page.messages.find((m) => m.id === mine.id)!;
    assert.equal(kept.text, "alice's");
    assert.equal(kept.reactions, undefined);
    assert.equal(kept.seq, mine.id);
    // Carol's try at the DM created nothing there either.
    const dmPage = await history(alice, { to: "bob" });
    assert.deepEqual(dmPage.messages.map((m) => [m.text, m.edited, m.reactions]), [
      ["psst", undefined, undefined],
    ]);
  } finally {
    await closeAll(alice, bob, carol);
  }
});

Deno.test("living: reactions are one emoji each, idempotent, at most 20 kinds per message, removable", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    const m = await say(alice, "react to me");
    await bob.next((f) => f.type === "message" && f.id === m.id);
    // Twice the same: one change.
    bob.send({ type: "react", room: "general", id: m.id, emoji: "👍🏽", on: true });
    bob.send({ type: "react", room: "general", id: m.id, emoji: "👍🏽", on: true });
    alice.send({ type: "react", room: "general", id: m.id, emoji: "👍🏽", on: true });
    const emoji = [..."😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙🥲😚"];
    for (const e of emoji) alice.send({ type: "react", room: "general", id: m.id, emoji: e });
    alice.send({ type: "react", room: "general", id: m.id, emoji: "🚀", ref: "21st" });
    const err = await errorOf(alice, "21st");
    assert.equal(err.code, "too_many_reactions");
    // An emoji already there still takes more people.
    bob.send({ type: "react", room: "general", id: m.id, emoji: "😀", ref: "more" });
    await bob.next((f) => f.type === "reaction" && f.ref === "more");
    bob.send({ type: "react", room: "general", id: m.id, emoji: "👍🏽", on: false, ref: "off" });
    await bob.next((f) => f.type === "reaction" && f.ref === "off");
    // Removing what is not there changes nothing; with a ref, the asker alone
    // is answered, at position 0.
    bob.send({ type: "react", room: "general", id: m.id, emoji: "👍🏽", on: false, ref: "noop" });
    const noop = await bob.next<F<"reaction">>((f) => f.type === "reaction" && f.ref === "noop");
    assert.deepEqual(
      [noop.id, noop.emoji, noop.user, noop.on, noop.seq],
      [m.id, "👍🏽", "bob", false, 0],
    );
    const got = (await changes(alice)) as F<"reaction">[];
    assert.equal(got.length, 1 + 1 + emoji.length + 1 + 1);
    assert.deepEqual(
      got.slice(0, 2).map((f) => [f.user, f.emoji, f.on]),
      [["bob", "👍🏽", true], ["alice", "👍🏽", true]],
    );
    const page = await history(alice, { room: "general" });
    const reactions = page.messages.find((x) => x.id === m.id)!.reactions!;
    assert.equal(Object.keys(reactions).length, MAX_REACTIONS);
    assert.deepEqual(reactions["👍🏽"], ["alice"]);
    assert.deepEqual(reactions["😀"], ["alice", "bob"]);
    assert.equal(reactions["🚀"], undefined);
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("living: in a DM each party sees the other in `to`; unread counts only new messages of others", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  let bob: Client | undefined = await signIn(t.ws, "bob", USERS.bob);
  try {
    const m = await say(alice, "one", { to: "bob" });
    await bob.next((f) => f.type === "message" && f.id === m.id);
    const token = bob.welcome.token;
    await bob.close();
    alice.send({ type: "edit", to: "bob", id: m.id, text: "one!", ref: "e" });
    const own = await alice.next<F<"edited">>((f) => f.type === "edited");
    assert.equal(own.to, "bob");
    await say(alice, "two", { to: "bob" });
    const doomed = await say(alice, "three", { to: "bob" });
    alice.send({ type: "delete", to: "bob", id: doomed.id, ref: "d" });
    await alice.next((f) => f.type === "deleted");
    alice.send({ type: "react", to: "bob", id: m.id, emoji: "✅", ref: "r" });
    await alice.next((f) => f.type === "reaction");

    bob = await signInWithToken(t.ws, token);
    const conv = bob.welcome.conversations.find((c) => c.to === "alice")!;
    // "one" and "two" are unread; the edit, the reaction and the deleted "three" are not.
    assert.equal(conv.unread, 2);
    assert.equal(conv.last, doomed.id);
    const aliceConv = await signIn(t.ws, "alice", USERS.alice);
    try {
      assert.equal(aliceConv.welcome.conversations.find((c) => c.to === "bob")!.unread, 0);
    } finally {
      await aliceConv.close();
    }
    bob.send({ type: "react", to: "alice", id: m.id, emoji: "✅", ref: "r2" });
    const mine = await bob.next<F<"reaction">>((f) => f.type === "reaction" && f.ref === "r2");
    assert.equal(mine.to, "alice");
    const theirs = await alice.next<F<"reaction">>((f) =>
      f.type === "reaction" && f.user === "bob"
    );
    assert.equal(theirs.to, "bob");
    const page = await history(bob, { to: "alice" });
    assert.deepEqual(page.messages.find((x) => x.id === m.id)!.reactions, {
      "✅": ["alice", "bob"],
    });
    assert.equal(conversationKey("alice", { to: "bob" }), "@alice:bob");
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("living: --edit-window refuses edits after it (forbidden) but not deletes", async () => {
  let now = Date.now();
  await using t = await startTestServer({
    users: USERS,
    args: ["--edit-window", "60"],
    now: () => now,
  });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  try {
    const m = await say(alice, "typo");
    alice.send({ type: "edit", room: "general", id: m.id, text: "fixed", ref: "in" });
    await alice.next((f) => f.type === "edited" && f.ref === "in");
    // Past the window from the message's time (stamped by the real clock),
    // however long signing in took on a busy machine.
    now = Date.now() + 61_000;
    alice.send({ type: "edit", room: "general", id: m.id, text: "again", ref: "late" });
    const err = await errorOf(alice, "late");
    assert.equal(err.code, "forbidden");
    assert.match(err.message, /60 seconds/);
    alice.send({ type: "delete", room: "general", id: m.id, ref: "del" });
    await alice.next((f) => f.type === "deleted" && f.ref === "del");
  } finally {
    await alice.close();
  }
});

Deno.test("living: with --data, changes survive kill -9 and a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-living-kill-" });
  try {
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(USERS));
    const args = [
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--users",
      `${dir}/users.json`,
      "--data",
      `${dir}/c.db`,
    ];
    let proc = await spawnServer(args);
    let m: F<"message">, reply: F<"message">;
    try {
      const alice = await signIn(proc.ws, "alice", USERS.alice);
      try {
        m = await say(alice, "before the crash");
        reply = await say(alice, "a reply", { room: "general" }, m.id);
        alice.send({ type: "edit", room: "general", id: m.id, text: "edited before the crash" });
        alice.send({ type: "react", room: "general", id: m.id, emoji: "🔥", ref: "r" });
        await alice.next((f) => f.type === "reaction" && f.ref === "r");
      } finally {
        await alice.close();
      }
    } finally {
      await proc.kill("SIGKILL");
    }
    proc = await spawnServer(args);
    try {
      const bob = await signIn(proc.ws, "bob", USERS.bob);
      try {
        const page = await history(bob, { room: "general" });
        const got = page.messages.find((x) => x.id === m.id)!;
        assert.equal(got.text, "edited before the crash");
        assert.deepEqual(got.reactions, { "🔥": ["alice"] });
        assert.deepEqual(page.messages.find((x) => x.id === reply.id)!.replyTo, {
          id: m.id,
          from: "alice",
          snippet: "edited before the crash",
        });
      } finally {
        await bob.close();
      }
    } finally {
      await proc.kill("SIGTERM");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("living (open mode): whoever takes a released name cannot change what its earlier holder sent", async () => {
  await using t = await startTestServer();
  let frank: Client | undefined = await signIn(t.ws, "frank");
  const carol = await signIn(t.ws, "carol");
  try {
    const old = await say(frank, "pay invoice 1234 to the usual account");
    frank.send({ type: "react", room: "general", id: old.id, emoji: "✅", ref: "r" });
    await frank.next((f) => f.type === "reaction" && f.ref === "r");
    assert.equal(await signOut(t.http, frank.welcome.token), 204);
    await frank.waitClose();
    // Someone else takes the name later (past the clock skew the server allows for).
    await waitUntil(() => Date.now() > Date.parse(old.ts) + 2500, "time to pass");
    frank = await signIn(t.ws, "frank");
    const cases: [Record<string, unknown>, string][] = [
      [{ type: "edit", room: "general", id: old.id, text: "pay it to account EVIL" }, "edit"],
      [{ type: "delete", room: "general", id: old.id }, "delete"],
    ];
    for (const [frame, ref] of cases) {
      frank.send({ ...frame, ref });
      const err = await errorOf(frank, ref);
      assert.equal(err.code, "forbidden");
      assert.match(err.message, /earlier holder of the name "frank"/);
    }
    // Their own messages are theirs.
    const mine = await say(frank, "hello, I am the new frank");
    frank.send({ type: "edit", room: "general", id: mine.id, text: "hello again", ref: "own" });
    await frank.next((f) => f.type === "edited" && f.ref === "own");
    const page = await history(carol, { room: "general" });
    assert.equal(page.messages.find((m) => m.id === old.id)!.text, old.text);
    assert.deepEqual((await changes(carol)).map((f) => f.type), ["reaction", "edited"]);
  } finally {
    await closeAll(frank, carol);
  }
});

/** A 1×1 PNG. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

/** Uploads `bytes` as `name` through the node of `ws` with `c`'s token; resolves the file's id. */
async function uploadFile(
  ws: string,
  c: Client,
  name: string,
  bytes: Uint8Array<ArrayBuffer>,
): Promise<string> {
  const http = ws.replace(/^ws/, "http").replace(/\/ws$/, "");
  const res = await fetch(`${http}/api/files?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${c.welcome.token}` },
    body: bytes,
  });
  assert.equal(res.status, 201, await res.clone().text());
  return (await res.json()).id;
}

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test(`living (${name}): an edit may leave a message with files without text, and only such a message`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a, "alice", USERS.alice);
      const tab = await signIn(b, "alice", USERS.alice);
      const bob = await signIn(b, "bob", USERS.bob);
      try {
        const id = await uploadFile(a, alice, "photo.png", PNG);
        const ref = "withfiles";
        alice.send({ type: "send", room: "general", text: "look at this", files: [id], ref });
        const sent = await alice.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
        const plain = await say(alice, "no files here");
        const reply = await say(bob, "nice", { room: "general" }, sent.id);
        await tab.next((f) => f.type === "message" && f.id === reply.id);
        await alice.next((f) => f.type === "message" && f.id === reply.id);
        await changes(alice);
        for (const c of [alice, tab, bob]) c.inbox.length = 0;

        // Blank text counts as none: the message keeps its files.
        alice.send({ type: "edit", room: "general", id: sent.id, text: " \n ", ref: "e0" });
        const mine = await alice.next<F<"edited">>((f) => f.type === "edited" && f.ref === "e0");
        assert.ok(mine.editedAt >= sent.ts);
        const edited: F<"edited"> = {
          type: "edited",
          room: "general",
          id: sent.id,
          text: "",
          editedAt: mine.editedAt,
          seq: mine.seq,
        };
        assert.deepEqual(mine, { ...edited, ref: "e0" });
        assert.ok(mine.seq > reply.id);
        for (const c of [tab, bob]) {
          await waitUntil(
            () => c.peek((f) => f.type === "edited").length > 0,
            "the edit to arrive",
          );
        }
        assert.deepEqual(await changes(tab), [edited]);
        assert.deepEqual(await changes(bob), [edited]);
        assert.deepEqual(await changes(alice), []);
        for (const c of [tab, bob]) c.inbox.length = 0;

        // A message without files may not be left empty: refused, and nobody is told.
        alice.send({ type: "edit", room: "general", id: plain.id, text: "", ref: "e1" });
        const err = await errorOf(alice, "e1");
        assert.deepEqual(err, {
          type: "error",
          code: "bad_request",
          message:
            `Message #${plain.id} has no files, so it cannot be left empty: delete it instead`,
          ref: "e1",
        });
        for (const c of [alice, tab, bob]) assert.deepEqual(await changes(c), []);

        const page = await history(bob, { room: "general" });
        const kept = page.messages.find((m) => m.id === sent.id)!;
        assert.equal(kept.text, "");
        assert.equal(kept.edited, mine.editedAt);
        assert.deepEqual(kept.files?.map((f) => [f.id, f.name, f.type]), [
          [id, "photo.png", "image/png"],
        ]);
        assert.equal(page.messages.find((m) => m.id === plain.id)!.text, "no files here");
        // The reply's quote follows: the original has no words left.
        assert.deepEqual(page.messages.find((m) => m.id === reply.id)!.replyTo, {
          id: sent.id,
          from: "alice",
          snippet: "",
        });
        // Text can come back.
        alice.send({ type: "edit", room: "general", id: sent.id, text: "words again", ref: "e2" });
        const again = await alice.next<F<"edited">>((f) => f.type === "edited" && f.ref === "e2");
        assert.equal(again.text, "words again");
      } finally {
        await closeAll(alice, tab, bob);
      }
    });
  });
}
