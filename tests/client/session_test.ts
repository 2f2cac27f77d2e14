import assert from "node:assert/strict";
import type { ChatMessage, ServerFrame } from "../../protocol.ts";
import { ConnectError, ServerError, Session, type SessionEvent } from "../../client/session.ts";
import { closeAll, DEADLINE, signIn, signOut, startTestServer, waitUntil } from "../helpers.ts";
import { TcpProxy } from "../tcp_proxy.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

/** A session that records its events. */
function recorder(url: string, username: string, password?: string) {
  const events: SessionEvent[] = [];
  const session = new Session({
    url,
    username,
    password,
    onEvent: (e) => events.push(e),
    backoff: 50,
    maxBackoff: 200,
  });
  const messages = () =>
    events.filter((e): e is SessionEvent & { type: "message" } => e.type === "message")
      .map((e) => e.message);
  return { session, events, messages };
}

Deno.test("Session.send() resolves on the server's acknowledgement, in order past the burst", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const { session } = recorder(t.ws, "alice", USERS.alice);
  try {
    const welcome = await session.start();
    assert.equal(welcome.user, "alice");
    const sends: Promise<ChatMessage>[] = [];
    for (let i = 1; i <= 90; i++) sends.push(session.send({ room: "general" }, `m${i}`));
    const acked = await Promise.all(sends);
    assert.deepEqual(acked.map((m) => m.text), Array.from({ length: 90 }, (_, i) => `m${i + 1}`));
    assert.ok(acked.every((m, i) => i === 0 || m.id === acked[i - 1].id + 1), "ids in order");
    const got: string[] = [];
    while (got.length < 90) got.push((await bob.next<F<"message">>("message")).text);
    assert.deepEqual(got, acked.map((m) => m.text));
    assert.equal(bob.peek("error").length, 0);
  } finally {
    await session.close();
    await closeAll(bob);
  }
});

Deno.test("Session.send() uses refs no other run uses: the same line sent by two runs is two messages", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const refs: string[] = [];
  try {
    for (let run = 0; run < 2; run++) {
      const { session } = recorder(t.ws, "alice", USERS.alice);
      try {
        await session.start();
        const acked = await session.send({ room: "general" }, "deploy done") as ChatMessage & {
          ref?: string;
        };
        refs.push(acked.ref!);
      } finally {
        await session.close();
      }
    }
    assert.notEqual(refs[0], refs[1]);
    assert.ok(refs.every((r) => r.length <= 64), "refs fit the protocol's limit");
    const first = await bob.next<F<"message">>("message");
    const second = await bob.next<F<"message">>("message");
    assert.deepEqual([first.text, second.text], ["deploy done", "deploy done"]);
    assert.equal(second.id, first.id + 1, "stored twice, not taken for a resend");
  } finally {
    await closeAll(bob);
  }
});

Deno.test("Session.send() resends what a stricter server's rate limit refused, losing nothing", async () => {
  await using t = await startTestServer({ users: USERS, args: ["--rate", "5", "--burst", "8"] });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const { session } = recorder(t.ws, "alice", USERS.alice);
  try {
    await session.start();
    const sends: Promise<ChatMessage>[] = [];
    for (let i = 1; i <= 25; i++) sends.push(session.send({ room: "general" }, `r${i}`));
    await Promise.all(sends);
    const got: string[] = [];
    while (got.length < 25) got.push((await bob.next<F<"message">>("message")).text);
    assert.deepEqual(got, Array.from({ length: 25 }, (_, i) => `r${i + 1}`));
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "no message twice");
  } finally {
    await session.close();
    await closeAll(bob);
  }
});

Deno.test("Session.send() rejects with the server's sentence for a message it refuses", async () => {
  await using t = await startTestServer({ users: USERS, args: ["--max-message", "10"] });
  const { session } = recorder(t.ws, "alice", USERS.alice);
  try {
    await session.start();
    await assert.rejects(
      session.send({ room: "general" }, "far too long for ten bytes"),
      new ServerError("too_large", "Message text is longer than 10 bytes"),
    );
    await assert.rejects(
      session.send({ room: "nowhere" }, "hi"),
      new ServerError("unknown_room", 'You are not in room "nowhere": join it first'),
    );
    const ok = await session.send({ room: "general" }, "short");
    assert.equal(ok.text, "short", "the queue goes on after a refusal");
  } finally {
    await session.close();
  }
});

Deno.test("Session.start() reports a refused sign-in and an unreachable server", async () => {
  await using t = await startTestServer({ users: USERS });
  const wrong = recorder(t.ws, "alice", "not-her-password");
  await assert.rejects(
    wrong.session.start(),
    new ConnectError("auth_failed", "Wrong username or password"),
  );
  await wrong.session.close();
  const proxy = new TcpProxy(t.server.port);
  proxy.refuse = true;
  const down = recorder(proxy.ws, "alice", USERS.alice);
  try {
    await assert.rejects(down.session.start(), (err: Error) => {
      assert.ok(err instanceof ConnectError);
      assert.equal(err.code, "network");
      assert.match(err.message, /^Cannot connect to 127\.0\.0\.1:\d+: /);
      return true;
    });
  } finally {
    await down.session.close();
    await proxy.close();
  }
});

Deno.test("Session resumes after a dropped connection: missed messages once, no send repeated", async () => {
  await using t = await startTestServer({ users: USERS });
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const alice = recorder(proxy.ws, "alice", USERS.alice);
  try {
    await alice.session.start();
    await alice.session.join("ops");
    bob.send({ type: "join", room: "ops" });
    await bob.next("joined");
    await alice.session.send({ room: "ops" }, "before");
    // Drop the line; the server keeps the old socket until it notices.
    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(
      () => alice.events.some((e) => e.type === "disconnected"),
      "alice sees the drop",
    );
    for (let i = 1; i <= 3; i++) {
      bob.send({ type: "send", room: "ops", text: `missed ${i}`, ref: `b${i}` });
      await bob.next((f) => f.type === "message" && f.ref === `b${i}`);
    }
    bob.send({ type: "send", to: "alice", text: "dm while away", ref: "d1" });
    await bob.next((f) => f.type === "message" && f.ref === "d1");
    // Queued while away: goes out after the catch-up, exactly once.
    const queued = alice.session.send({ room: "ops" }, "written offline");
    proxy.refuse = false;
    await waitUntil(() => alice.events.some((e) => e.type === "resumed"), "alice resumes");
    await queued;
    const resumed = alice.events.find((e) => e.type === "resumed") as { missed: number };
    assert.equal(resumed.missed, 4);
    const texts = alice.messages().map((m) => m.text);
    assert.deepEqual(texts, [
      "before",
      "missed 1",
      "missed 2",
      "missed 3",
      "dm while away",
      "written offline",
    ]);
    const replayed = alice.events.filter((e) => e.type === "message" && e.replay).length;
    assert.equal(replayed, 4);
    // bob gets the offline message once.
    await bob.next((f) => f.type === "message" && f.text === "written offline");
    await bob.barrier();
    const fromAlice = bob.all.filter((f) => f.type === "message" && f.from === "alice");
    assert.deepEqual(fromAlice.map((f) => (f as F<"message">).text), ["before", "written offline"]);
  } finally {
    await alice.session.close();
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("Session keeps a send that was in flight when the line dropped, without repeating it", async () => {
  await using t = await startTestServer({ users: USERS });
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const alice = recorder(proxy.ws, "alice", USERS.alice);
  try {
    await alice.session.start();
    // Cut right after the first frame of a stream of sends reached the
    // server: some are stored without their echo reaching alice.
    const sends: Promise<ChatMessage>[] = [];
    for (let i = 1; i <= 40; i++) sends.push(alice.session.send({ room: "general" }, `s${i}`));
    await waitUntil(() => bob.peek((f) => f.type === "message" && f.text === "s5").length, "s5");
    await proxy.cut();
    const acked = await Promise.all(sends);
    assert.deepEqual(acked.map((m) => m.text), Array.from({ length: 40 }, (_, i) => `s${i + 1}`));
    const got: string[] = [];
    while (got.length < 40) {
      got.push((await bob.next<F<"message">>("message")).text);
    }
    assert.deepEqual(got, Array.from({ length: 40 }, (_, i) => `s${i + 1}`));
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "nothing twice");
    // The cut may land after the last echo: the session then resumes afterwards.
    await waitUntil(() => alice.events.some((e) => e.type === "resumed"), "alice resumed");
  } finally {
    await alice.session.close();
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("Session notices a server that started over and shows its new messages", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-test-" });
  let t = await startTestServer({ dir });
  const port = t.server.port;
  const alice = recorder(t.ws, "alice");
  let bob;
  try {
    await alice.session.start();
    await alice.session.send({ room: "general" }, "old one");
    await alice.session.send({ room: "general" }, "old two");
    await t.close();
    await waitUntil(() => alice.events.some((e) => e.type === "disconnected"), "drop");
    t = await startTestServer({ dir, args: ["--port", String(port)] });
    await waitUntil(() => alice.events.some((e) => e.type === "resumed"), "resumed", DEADLINE);
    bob = await signIn(t.ws, "bob");
    bob.send({ type: "send", room: "general", text: "new one", ref: "n1" });
    const sent = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === "n1");
    assert.equal(sent.id, 1, "the new server's ids start over");
    await waitUntil(() => alice.messages().some((m) => m.text === "new one"), "alice sees it");
    const notice = alice.events.find((e) => e.type === "notice") as { message: string };
    assert.match(notice.message, /no longer has the earlier messages of #general/);
  } finally {
    await alice.session.close();
    await closeAll(bob);
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("Session.start() signs in with a saved token, and says when the token was refused", async () => {
  await using t = await startTestServer({ users: USERS });
  const first = recorder(t.ws, "alice", USERS.alice);
  const welcome = await first.session.start();
  await first.session.close();
  const saved = new Session({ url: t.ws, username: "alice", token: welcome.token, onEvent() {} });
  try {
    const renewed = await saved.start();
    assert.equal(renewed.user, "alice", "no password needed");
    assert.equal(await signOut(t.http, renewed.token), 204);
  } finally {
    await saved.close();
  }
  for (const token of [welcome.token, "v1.forged.token"]) {
    const s = new Session({ url: t.ws, username: "alice", token, onEvent() {} });
    try {
      await assert.rejects(
        s.start(),
        (err: Error) => {
          assert.ok(err instanceof ConnectError);
          assert.deepEqual(
            [err.code, err.token, err.message],
            ["auth_failed", true, "Your session has expired or is no longer valid: sign in again"],
          );
          return true;
        },
      );
    } finally {
      await s.close();
    }
  }
});

Deno.test("Session ends when its session is signed out elsewhere, and leaves the name free", async () => {
  await using t = await startTestServer();
  const alice = recorder(t.ws, "alice");
  let other: Awaited<ReturnType<typeof signIn>> | undefined;
  try {
    const welcome = await alice.session.start();
    assert.equal(await signOut(t.http, welcome.token), 204);
    const fatal = await waitUntil(
      () => alice.events.find((e) => e.type === "fatal"),
      "alice's session ends",
    );
    assert.deepEqual(fatal, { type: "fatal", message: "You signed out: sign in again" });
    assert.ok(!alice.events.some((e) => e.type === "disconnected"), "no reconnecting");
    other = await signIn(t.ws, "alice");
    assert.equal(other.welcome.user, "alice", "the name was not taken back");
  } finally {
    await alice.session.close();
    await closeAll(other);
  }
});

Deno.test("Session.passwd() changes the password once and goes on with the new token", async () => {
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 1, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  const alice = recorder(t.ws, "alice", USERS.alice);
  const elsewhere = recorder(t.ws, "alice", USERS.alice);
  try {
    const welcome = await alice.session.start();
    await elsewhere.session.start();
    await assert.rejects(alice.session.passwd("not-it", "a-new-secret"), (err: Error) => {
      assert.ok(err instanceof ServerError);
      assert.deepEqual([err.code, err.message], ["auth_failed", "Your current password is wrong"]);
      return true;
    });
    await assert.rejects(alice.session.passwd(USERS.alice, "short"), /too short/);

    await alice.session.passwd(USERS.alice, "a-new-secret");
    const token = alice.events.find((e) => e.type === "token");
    assert.ok(token?.type === "token" && token.mine && token.user === "alice");
    assert.notEqual(token.token, welcome.token);
    const fatal = await waitUntil(
      () => elsewhere.events.find((e) => e.type === "fatal"),
      "the other session ends",
    );
    assert.deepEqual(fatal, {
      type: "fatal",
      message: "Your password was changed on another device: sign in again",
    });
    const sent = await alice.session.send({ room: "general" }, "still here");
    assert.equal(sent.text, "still here");
    // The change gave this connection a session of its own, with a count of its own:
    // two wrong tries are one more than free, and the throttle's refusal of the
    // next is reported at once, not retried behind the user's back.
    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        alice.session.passwd("not-it", "x-new-secret"),
        (err: Error) => err instanceof ServerError && err.code === "auth_failed",
      );
    }
    await assert.rejects(
      alice.session.passwd("a-new-secret", "x-new-secret"),
      (err: Error) => err instanceof ServerError && err.code === "rate_limited",
    );
  } finally {
    await alice.session.close();
    await elsewhere.session.close();
  }
});

Deno.test("Session sends its earlier token as `device` with a password, past guesses on its name", async () => {
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 1, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  const first = recorder(t.ws, "alice", USERS.alice);
  const { token } = await first.session.start();
  await first.session.close();
  assert.equal(await signOut(t.http, token), 204);
  for (const guess of ["g1", "g2"]) {
    const s = new Session({ url: t.ws, username: "alice", password: guess, onEvent() {} });
    await assert.rejects(s.start(), /Wrong username or password/);
    await s.close();
  }
  const plain = new Session({ url: t.ws, username: "alice", password: USERS.alice, onEvent() {} });
  await assert.rejects(plain.start(), /Too many sign-in attempts/);
  await plain.close();
  // The token was signed out: it cannot sign in, but it still shows whose device this is.
  const device = new Session({ url: t.ws, username: "alice", token, onEvent() {} });
  await assert.rejects(device.start(), (err: Error) => err instanceof ConnectError && err.token);
  await device.close();
  const back = new Session({
    url: t.ws,
    username: "alice",
    password: USERS.alice,
    device: token,
    onEvent() {},
  });
  try {
    assert.equal((await back.start()).user, "alice");
  } finally {
    await back.close();
  }
});

Deno.test("Session edits, deletes, reacts and replies; a peer gets the frames, the session merges them", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const alice = recorder(t.ws, "alice", USERS.alice);
  const changes = () =>
    alice.events.filter((e): e is SessionEvent & { type: "change" } => e.type === "change");
  try {
    await alice.session.start();
    const here = { room: "general" };
    bob.send({ type: "send", room: "general", text: "is the deploy done?", ref: "q" });
    const question = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === "q");
    await waitUntil(() => alice.session.message(here, question.id), "alice holds bob's message");

    const mine = await alice.session.send(here, "not yet");
    assert.equal((await bob.next<F<"message">>("message")).id, mine.id);
    assert.equal(alice.session.lastOwn(here)?.id, mine.id);

    const edited = await alice.session.edit(here, mine.id, "done **now**");
    assert.ok(edited !== null && edited.type === "edited");
    const seen = await bob.next<F<"edited">>("edited");
    assert.deepEqual(
      [seen.room, seen.id, seen.text, seen.seq, seen.editedAt],
      ["general", mine.id, "done **now**", edited.seq, edited.editedAt],
    );
    assert.ok(edited.seq > mine.id, "an edit takes the next position");
    const held = alice.session.message(here, mine.id)!;
    assert.deepEqual([held.text, held.edited, held.seq], [
      "done **now**",
      edited.editedAt,
      edited.seq,
    ]);
    assert.equal(changes().at(-1)?.before?.text, "not yet");

    // Reactions: on, then off; the held copy follows.
    const on = await alice.session.react(here, question.id, "👍", true);
    assert.ok(on !== null && on.on);
    const r1 = await bob.next<F<"reaction">>("reaction");
    assert.deepEqual([r1.id, r1.emoji, r1.user, r1.on], [question.id, "👍", "alice", true]);
    assert.deepEqual(alice.session.message(here, question.id)?.reactions, { "👍": ["alice"] });
    await alice.session.react(here, question.id, "👍", false);
    const r2 = await bob.next<F<"reaction">>("reaction");
    assert.deepEqual([r2.emoji, r2.user, r2.on], ["👍", "alice", false]);
    assert.equal(alice.session.message(here, question.id)?.reactions, undefined);
    // Another user's reaction arrives as a change with the state after it.
    bob.send({ type: "react", room: "general", id: mine.id, emoji: "🎉", on: true });
    const live = await waitUntil(
      () => changes().find((e) => e.change.type === "reaction" && e.change.user === "bob"),
      "bob's reaction reaches alice",
    );
    assert.deepEqual(live.message?.reactions, { "🎉": ["bob"] });

    // A reply quotes its original.
    const reply = await alice.session.send(here, "see above", { replyTo: question.id });
    assert.deepEqual(reply.replyTo, {
      id: question.id,
      from: "bob",
      snippet: "is the deploy done?",
    });
    const got = await bob.next<F<"message">>((f) => f.type === "message" && f.text === "see above");
    assert.deepEqual(got.replyTo, reply.replyTo);

    const deleted = await alice.session.delete(here, reply.id);
    assert.ok(deleted !== null);
    assert.deepEqual(
      [
        (await bob.next<F<"deleted">>("deleted")).id,
        alice.session.message(here, reply.id)?.deleted,
      ],
      [reply.id, true],
    );
    assert.equal(alice.session.lastOwn(here)?.id, mine.id, "a deleted message is not the last");

    // Refusals reject with the server's code; the queue goes on.
    const refused = async (p: Promise<unknown>, code: string) => {
      await assert.rejects(p, (err: Error) => {
        assert.ok(err instanceof ServerError, String(err));
        assert.equal(err.code, code, err.message);
        return true;
      });
    };
    await refused(alice.session.edit(here, question.id, "mine now"), "forbidden");
    await refused(alice.session.delete(here, question.id), "forbidden");
    await refused(alice.session.react(here, 9999, "👍", true), "unknown_message");
    await refused(alice.session.edit(here, reply.id, "back from the dead"), "unknown_message");
    await refused(alice.session.send(here, "to nothing", { replyTo: 9999 }), "bad_request");
    await refused(alice.session.edit(here, mine.id, ""), "bad_request");
    const emoji = [..."😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗😙😚🙂🤗"];
    assert.equal(emoji.length, 20);
    for (const e of emoji) await alice.session.react(here, question.id, e, true);
    await refused(alice.session.react(here, question.id, "🤩", true), "too_many_reactions");
    assert.equal(Object.keys(alice.session.message(here, question.id)!.reactions!).length, 20);
    assert.equal((await alice.session.send(here, "still here")).text, "still here");
  } finally {
    await alice.session.close();
    await closeAll(bob);
  }
});

Deno.test("Session.fetchMessage() asks the server for a message it does not hold", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const alice = recorder(t.ws, "alice", USERS.alice);
  try {
    bob.send({ type: "send", room: "general", text: "long ago", ref: "old" });
    const old = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === "old");
    bob.send({ type: "react", room: "general", id: old.id, emoji: "👀", on: true });
    await bob.next("reaction");
    for (let i = 0; i < 60; i++) bob.send({ type: "send", room: "general", text: `n${i}` });
    await bob.next((f) => f.type === "message" && f.text === "n59");
    await alice.session.start();
    // The first 50 of the join do not reach back that far.
    await alice.session.join("general");
    assert.equal(alice.session.message({ room: "general" }, old.id), undefined);
    const fetched = await alice.session.fetchMessage({ room: "general" }, old.id);
    assert.deepEqual([fetched?.text, fetched?.reactions], ["long ago", { "👀": ["bob"] }]);
    assert.equal(await alice.session.fetchMessage({ room: "general" }, 99_999), null);
  } finally {
    await alice.session.close();
    await closeAll(bob);
  }
});

Deno.test("Session catches up on changes made while it was away, in their current state, once", async () => {
  await using t = await startTestServer({ users: USERS });
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const alice = recorder(proxy.ws, "alice", USERS.alice);
  const updates = () =>
    alice.events.filter((e): e is SessionEvent & { type: "updated" } => e.type === "updated");
  try {
    await alice.session.start();
    const here = { room: "general" };
    const say = async (text: string, to?: string) => {
      const ref = `r-${text}`;
      bob.send(to ? { type: "send", to, text, ref } : { type: "send", room: "general", text, ref });
      return await bob.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
    };
    const typo = await say("teh plan");
    const doomed = await say("wrong room, sorry");
    const dm = await say("psst", "alice");
    const mine = await alice.session.send(here, "sounds good");
    await waitUntil(
      () => alice.session.message({ to: "bob" }, dm.id) && alice.session.message(here, doomed.id),
      "alice holds them all",
    );

    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(() => alice.events.some((e) => e.type === "disconnected"), "the drop");
    bob.send({ type: "edit", room: "general", id: typo.id, text: "the plan" });
    await bob.next("edited");
    bob.send({ type: "delete", room: "general", id: doomed.id });
    await bob.next("deleted");
    bob.send({ type: "react", room: "general", id: mine.id, emoji: "👍", on: true });
    await bob.next("reaction");
    bob.send({ type: "react", to: "alice", id: dm.id, emoji: "🤫", on: true });
    await bob.next("reaction");
    await say("after all that");
    proxy.refuse = false;

    const resumed = await waitUntil(
      () => alice.events.find((e) => e.type === "resumed"),
      "alice resumes",
    );
    assert.deepEqual(resumed, { type: "resumed", missed: 1, changed: 4 });
    // Ids are per conversation: the DM's first message is #1 too.
    const byId = new Map(updates().filter((e) => e.message.room).map((e) => [e.message.id, e]));
    const dmUpdate = updates().find((e) => e.message.to !== undefined);
    assert.equal(updates().length, 4, "each change once");
    assert.deepEqual(
      [byId.get(typo.id)?.before?.text, byId.get(typo.id)?.message.text],
      ["teh plan", "the plan"],
    );
    assert.ok(byId.get(typo.id)?.message.edited);
    assert.deepEqual(byId.get(doomed.id)?.message.deleted, true);
    assert.equal(byId.get(doomed.id)?.message.text, "");
    assert.deepEqual(byId.get(mine.id)?.message.reactions, { "👍": ["bob"] });
    assert.deepEqual([dmUpdate?.message.id, dmUpdate?.message.reactions], [dm.id, {
      "🤫": ["bob"],
    }]);
    assert.equal(alice.session.message(here, typo.id)?.text, "the plan", "merged by id");
    const news = alice.events.filter((e) => e.type === "message" && e.replay);
    assert.deepEqual(news.map((e) => e.type === "message" && e.message.text), ["after all that"]);

    // Live again: a change after the catch-up arrives once, nothing before it twice.
    bob.send({ type: "react", room: "general", id: typo.id, emoji: "✅", on: true });
    await waitUntil(
      () => alice.events.some((e) => e.type === "change" && e.change.type === "reaction"),
      "a live change",
    );
    assert.equal(alice.events.filter((e) => e.type === "change").length, 1);
    assert.equal(updates().length, 4);
  } finally {
    await alice.session.close();
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("Session resolves a change the server had nothing to do for with null, and goes on", async () => {
  await using t = await startTestServer();
  const events: SessionEvent[] = [];
  const session = new Session({
    url: t.ws,
    username: "alice",
    onEvent: (e) => events.push(e),
  });
  try {
    await session.start();
    const here = { room: "general" };
    const m = await session.send(here, "react to me");
    assert.ok(await session.react(here, m.id, "👍", true));
    // Already so: the server answers at seq 0, which resolves null.
    assert.equal(await session.react(here, m.id, "👍", true), null);
    assert.ok(await session.delete(here, m.id));
    assert.equal(await session.delete(here, m.id), null);
    assert.equal((await session.send(here, "next")).text, "next");
    assert.equal(events.filter((e) => e.type === "change").length, 2);
  } finally {
    await session.close();
  }
});

Deno.test("Session counts a message made and edited while away as new, over several pages", async () => {
  await using t = await startTestServer({ args: ["--rate", "1000", "--burst", "1000"] });
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob");
  const alice = recorder(proxy.ws, "alice");
  // Long messages: a reply holds about 80 (a quarter of the 1 MiB a socket may
  // buffer), so the catch-up takes two pages.
  const pad = "x".repeat(3000);
  try {
    await alice.session.start();
    await alice.session.send({ room: "general" }, "before");
    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(() => alice.events.some((e) => e.type === "disconnected"), "the drop");
    for (let i = 1; i <= 150; i++) {
      bob.send({ type: "send", room: "general", text: `m${i} ${pad}` });
    }
    const first = await bob.next<F<"message">>((f) =>
      f.type === "message" && f.text.startsWith("m1 ")
    );
    await bob.next((f) => f.type === "message" && f.text.startsWith("m150 "));
    // The edit moves m1 to the end of the catch-up, pages after its id.
    bob.send({ type: "edit", room: "general", id: first.id, text: "m1, edited" });
    await bob.next("edited");
    proxy.refuse = false;
    const resumed = await waitUntil(
      () => alice.events.find((e) => e.type === "resumed"),
      "alice resumes",
      DEADLINE,
    );
    assert.deepEqual(resumed, { type: "resumed", missed: 150, changed: 0 });
    const texts = alice.messages().filter((m) => m.from === "bob").map((m) => m.text.split(" ")[0]);
    assert.equal(texts.length, 150);
    assert.equal(new Set(texts).size, 150, "each once");
    assert.equal(texts.at(-1), "m1,", "in its current state, where the edit put it");
    assert.ok(!texts.includes("m1"));
  } finally {
    await alice.session.close();
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("Session: admin frames get their answers, and a ban ends the member's session without reconnecting", async () => {
  const users = { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass1" };
  await using t = await startTestServer({ users });
  const alice = recorder(t.ws, "alice", "alice-pass");
  const bob = recorder(t.ws, "bob", "bob-pass1");
  try {
    assert.equal((await alice.session.start()).role, "admin");
    assert.equal((await bob.session.start()).role, "member");

    // A private room, and an invitation: bob is told who added him, then joined.
    const joined = await bob.session.join("plans", undefined, { private: true });
    assert.equal(joined.private, true);
    const invited = await bob.session.invite("plans", "alice");
    assert.deepEqual(
      [invited.type, invited.room, invited.user, invited.by],
      ["invited", "plans", "alice", "bob"],
    );
    await waitUntil(() => alice.session.rooms.has("plans"), "alice is in #plans");
    const told = alice.events.find((e) => e.type === "frame" && e.frame.type === "invited");
    assert.deepEqual(told, { type: "frame", frame: { type: "invited", room: "plans", by: "bob" } });
    assert.ok((await alice.session.listRooms()).some((r) => r.name === "plans" && r.private));

    // Room settings and kicks answer the asker; members refused with the server's sentence.
    const settings = await alice.session.roomSettings("plans", { readOnly: true });
    assert.deepEqual(settings.settings, { private: true, readOnly: true });
    await assert.rejects(bob.session.send({ room: "plans" }, "may I?"), (err: Error) => {
      assert.ok(err instanceof ServerError);
      assert.deepEqual([err.code, err.message], [
        "forbidden",
        "Only admins post in #plans: it is read-only",
      ]);
      return true;
    });
    await assert.rejects(bob.session.kick("plans", "alice"), /Only admins/);
    const kicked = await alice.session.kick("plans", "bob");
    assert.deepEqual([kicked.type, kicked.room, kicked.user], ["kicked", "plans", "bob"]);
    const left = await waitUntil(
      () => bob.events.find((e) => e.type === "frame" && e.frame.type === "left"),
      "bob is told",
    );
    assert.deepEqual(left, { type: "frame", frame: { type: "left", room: "plans", by: "alice" } });
    assert.ok(!bob.session.rooms.has("plans"));

    // A ban: fatal with the server's sentence, and no attempt to reconnect.
    const banned = await alice.session.ban("bob", { duration: 600, reason: "spam" });
    assert.deepEqual([banned.user, banned.by, banned.reason], ["bob", "alice", "spam"]);
    assert.ok(banned.until !== undefined && banned.until > Date.now());
    const fatal = await waitUntil(
      () => bob.events.find((e) => e.type === "fatal"),
      "bob's session ends",
    );
    assert.deepEqual(fatal, {
      type: "fatal",
      message: `You are banned from this chat until ${new Date(banned.until).toISOString()}: spam`,
    });
    assert.ok(!bob.events.some((e) => e.type === "disconnected"), "no reconnecting");
    await assert.rejects(bob.session.send({ room: "general" }, "still here?"), /banned/);
    const unbanned = await alice.session.unban("bob");
    assert.deepEqual([unbanned.type, unbanned.user, unbanned.ok], ["unbanned", "bob", true]);
    assert.equal((await alice.session.unban("bob")).ok, false);
  } finally {
    await alice.session.close();
    await bob.session.close();
  }
});

const ADMIN_USERS = { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass1" };

Deno.test("Session.renameRoom() moves the room for every member; refusals carry their codes", async () => {
  await using t = await startTestServer({ users: ADMIN_USERS });
  const alice = recorder(t.ws, "alice", "alice-pass");
  const bob = recorder(t.ws, "bob", "bob-pass1");
  try {
    await alice.session.start();
    await bob.session.start();
    await alice.session.join("ops");
    await bob.session.join("ops");
    await alice.session.join("taken");
    const before = await bob.session.send({ room: "ops" }, "before");

    const refused = async (p: Promise<unknown>, code: string) =>
      await assert.rejects(p, (err: Error) => {
        assert.ok(err instanceof ServerError);
        assert.equal(err.code, code, err.message);
        return true;
      });
    await refused(bob.session.renameRoom("ops", "mine"), "forbidden");
    await refused(alice.session.renameRoom("general", "lobby"), "bad_request");
    await refused(alice.session.renameRoom("nowhere", "somewhere"), "unknown_room");
    await refused(alice.session.renameRoom("ops", "taken"), "name_taken");
    assert.ok(!alice.events.some((e) => e.type === "renamed"), "nothing renamed yet");

    const answer = await alice.session.renameRoom("ops", "ops-2");
    assert.deepEqual(
      [answer.type, answer.room, answer.name, answer.by],
      ["room_renamed", "ops", "ops-2", "alice"],
    );
    const renamed = { type: "renamed", room: "ops", name: "ops-2", by: "alice" };
    assert.deepEqual(alice.events.filter((e) => e.type === "renamed"), [renamed]);
    assert.deepEqual([...alice.session.rooms].sort(), ["general", "ops-2", "taken"]);

    // bob is told once, and everything he keeps of #ops is under #ops-2.
    await waitUntil(() => bob.events.some((e) => e.type === "renamed"), "bob is told");
    assert.deepEqual(bob.events.filter((e) => e.type === "renamed"), [renamed]);
    assert.ok(!bob.events.some((e) => e.type === "frame" && e.frame.type === "room_renamed"));
    assert.deepEqual([...bob.session.rooms].sort(), ["general", "ops-2"]);
    assert.deepEqual(bob.session.message({ room: "ops-2" }, before.id), {
      ...before,
      room: "ops-2",
    });
    assert.equal(bob.session.message({ room: "ops" }, before.id), undefined);
    assert.equal(bob.session.lastOwn({ room: "ops-2" })?.id, before.id);

    const after = await bob.session.send({ room: "ops-2" }, "after");
    assert.deepEqual([after.room, after.id > before.id], ["ops-2", true]);
    const heard = await waitUntil(
      () => alice.messages().find((m) => m.text === "after"),
      "alice hears it",
    );
    assert.equal(heard.room, "ops-2");
    assert.deepEqual((await bob.session.listRooms()).map((r) => r.name).sort(), [
      "general",
      "ops-2",
      "taken",
    ]);
  } finally {
    await alice.session.close();
    await bob.session.close();
  }
});

Deno.test("Session follows the welcome's renamed rooms: caught up under the names now, no ghost of the old", async () => {
  await using t = await startTestServer({ users: ADMIN_USERS });
  const proxy = new TcpProxy(t.server.port);
  const alice = recorder(t.ws, "alice", "alice-pass");
  const bob = recorder(proxy.ws, "bob", "bob-pass1");
  try {
    await alice.session.start();
    await bob.session.start();
    await bob.session.join("ops");
    await bob.session.join("quiet"); // empty: no message to tell it by
    const before = await bob.session.send({ room: "ops" }, "before");

    proxy.refuse = true;
    await proxy.cut();
    await waitUntil(() => bob.events.some((e) => e.type === "disconnected"), "bob is away");
    await alice.session.renameRoom("ops", "ops-2");
    await alice.session.renameRoom("quiet", "calm");
    await alice.session.renameRoom("ops-2", "ops-3"); // renamed twice
    await alice.session.join("ops-3");
    await alice.session.send({ room: "ops-3" }, "while away");
    await alice.session.join("calm");
    await alice.session.send({ room: "calm" }, "calm while away");
    // A new room of an old name, which bob is not in: not his #quiet.
    await alice.session.join("quiet");
    // Written to the old name while away: it goes to the name now.
    const queued = bob.session.send({ room: "ops" }, "written offline");
    proxy.refuse = false;

    await waitUntil(() => bob.events.some((e) => e.type === "resumed"), "bob resumes");
    const sent = await queued;
    assert.equal(sent.room, "ops-3");
    const welcome = bob.events.findLast((e) => e.type === "welcome");
    assert.ok(welcome?.type === "welcome" && welcome.reconnect);
    // Newest first, followed to the name now; #ops-2 is a name bob never held.
    assert.deepEqual(welcome.welcome.renamed, [
      { room: "ops-2", name: "ops-3" },
      { room: "quiet", name: "calm" },
      { room: "ops", name: "ops-3" },
    ]);
    const told = bob.events.filter((e) =>
      e.type === "renamed" || e.type === "notice" || e.type === "resumed" ||
      (e.type === "message" && e.replay)
    );
    assert.deepEqual(told.map((e) => e.type === "message" ? e.message.text : e), [
      { type: "renamed", room: "quiet", name: "calm" },
      { type: "renamed", room: "ops", name: "ops-3" },
      "calm while away",
      "while away",
      { type: "resumed", missed: 2, changed: 0 },
    ]);
    assert.equal(bob.messages().find((m) => m.text === "while away")?.room, "ops-3");
    assert.equal(bob.messages().find((m) => m.text === "calm while away")?.room, "calm");
    assert.deepEqual([...bob.session.rooms].sort(), ["calm", "general", "ops-3"]);
    assert.equal(bob.session.message({ room: "ops-3" }, before.id)?.text, "before");
    assert.equal(bob.session.message({ room: "ops" }, before.id), undefined);
    // No old name was made again by a join: #quiet is alice's new room alone.
    assert.deepEqual((await alice.session.listRooms()).map((r) => r.name).sort(), [
      "calm",
      "general",
      "ops-3",
      "quiet",
    ]);
    const got = await waitUntil(
      () => alice.messages().find((m) => m.text === "written offline"),
      "alice gets the offline line",
    );
    assert.equal(got.room, "ops-3");
  } finally {
    await alice.session.close();
    await bob.session.close();
    await proxy.close();
  }
});

/**
 * A stand-in server that signs anyone in as alice (in #general) and lets
 * the test push frames: what no real server can be made to do at will.
 */
function standIn() {
  const sockets = new Set<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    socket.onmessage = (e) => {
      if (JSON.parse(e.data).type !== "auth") return;
      const welcome: ServerFrame = {
        type: "welcome",
        user: "alice",
        token: "v1.test",
        rooms: ["general"],
        online: ["alice"],
        mode: "login",
        limits: { rate: 20, burst: 60, maxMessage: 4096 },
        conversations: [],
      };
      socket.send(JSON.stringify(welcome));
    };
    return response;
  });
  return {
    url: `ws://127.0.0.1:${server.addr.port}`,
    push(frame: ServerFrame): void {
      for (const s of sockets) s.send(JSON.stringify(frame));
    },
    async close(): Promise<void> {
      for (const s of sockets) s.close();
      await server.shutdown();
    },
  };
}

Deno.test("Session holds the tombstone of a deleted message it never had", async () => {
  const fake = standIn();
  const alice = recorder(fake.url, "alice", USERS.alice);
  const ts = (minute: number) => new Date(Date.UTC(2026, 0, 1, 9, minute)).toISOString();
  const general = { room: "general" } as const;
  try {
    await alice.session.start();
    fake.push({
      type: "message",
      id: 5,
      seq: 5,
      room: "general",
      from: "bob",
      text: "hi",
      ts: ts(5),
    });
    // #4 was created and deleted while alice's server caught up: only its delete came.
    fake.push({ type: "deleted", room: "general", id: 4, seq: 6, from: "carol", ts: ts(4) });
    fake.push({ type: "deleted", to: "bob", id: 2, seq: 2, from: "bob", ts: ts(2), removed: true });
    // An older server's frame says nothing of whose it was: nothing to hold.
    fake.push({ type: "deleted", room: "general", id: 7, seq: 8 });
    // The same delete again (a duplicate delivery): not news.
    fake.push({ type: "deleted", room: "general", id: 4, seq: 6, from: "carol", ts: ts(4) });
    fake.push({
      type: "message",
      id: 9,
      seq: 9,
      room: "general",
      from: "bob",
      text: "end",
      ts: ts(9),
    });
    await waitUntil(() => alice.messages().some((m) => m.id === 9), "every frame is in");

    const carols: ChatMessage = {
      id: 4,
      seq: 6,
      room: "general",
      from: "carol",
      text: "",
      ts: ts(4),
      deleted: true,
    };
    const bobs: ChatMessage = {
      id: 2,
      seq: 2,
      to: "alice",
      from: "bob",
      text: "",
      ts: ts(2),
      deleted: true,
      removed: true,
    };
    assert.deepEqual(alice.session.message(general, 4), carols);
    assert.deepEqual(alice.session.message({ to: "bob" }, 2), bobs);
    assert.equal(alice.session.message(general, 7), undefined);
    const changes = alice.events.filter((e) => e.type === "change");
    assert.deepEqual(
      changes.map((e) => e.type === "change" && [e.change.id, e.before, e.message]),
      [
        [4, undefined, carols],
        [2, undefined, bobs],
        [7, undefined, undefined],
      ],
    );
  } finally {
    await alice.session.close();
    await fake.close();
  }
});
