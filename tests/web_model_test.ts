/**
 * The web client's model against a real server: sign-in errors, sending
 * with reconciliation by `ref`, read markers across devices, and the
 * reconnect path (token re-auth, `since` catch-up past a page, messages
 * written while offline) with no duplicates and no gaps.
 */
import assert from "node:assert/strict";
import { MemoryStore } from "../server/memory_store.ts";
import { conversationKey } from "../server/protocol.ts";
import { ChatModel } from "../web/model.ts";
import { freePort, hashPassword, startTestServer, type TestServer, waitUntil } from "./helpers.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password" };

async function hashedUsers(): Promise<Record<string, string>> {
  return {
    alice: await hashPassword(PASSWORDS.alice),
    bob: await hashPassword(PASSWORDS.bob),
  };
}

/** localStorage stand-in. */
class MemoryStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

function model(t: TestServer, storage = new MemoryStorage()): ChatModel {
  return new ChatModel({ origin: t.http, storage, backoff: 100, maxBackoff: 400 });
}

async function signedIn(t: TestServer, user: "alice" | "bob", storage?: MemoryStorage) {
  const m = model(t, storage);
  await m.start();
  m.signIn(user, PASSWORDS[user]);
  await waitUntil(() => m.ready.value, `${user} is signed in`);
  await waitUntil(() => m.convs.value.get("#general")?.loaded.value, `${user} loaded general`);
  return m;
}

function ids(m: ChatModel, key: string): number[] {
  return m.convs.value.get(key)?.messages.value.map((x) => x.id) ?? [];
}

Deno.test("ChatModel.signIn() shows the server's error and does not retry", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const m = model(t);
  try {
    await m.start();
    assert.equal(m.phase.value, "signin");
    assert.deepEqual(m.info.value?.mode, "login");
    m.signIn("alice", "wrong-password");
    assert.equal(m.busy.value, true);
    await waitUntil(() => m.authError.value, "an error shows");
    assert.equal(m.authError.value, "Wrong username or password");
    await waitUntil(() => !m.busy.value, "the attempt ends");
    assert.equal(m.phase.value, "signin");
    assert.equal(m.conn.value, "offline", "no reconnect after a refused sign-in");
    m.signIn("not valid!", "x");
    assert.match(m.authError.value ?? "", /^Invalid username "not valid!"/);
  } finally {
    m.close();
  }
});

Deno.test("ChatModel.register() reports a taken name and a short password inline", async () => {
  await using t = await startTestServer({ users: await hashedUsers(), args: ["--allow-signup"] });
  const m = model(t);
  try {
    await m.start();
    assert.equal(m.info.value?.signup, true);
    m.register("carol", "short");
    assert.equal(m.authError.value, "The password is too short: use at least 8 characters");
    m.register("alice", "long-enough-password");
    await waitUntil(() => m.authError.value, "the server answers");
    assert.equal(m.authError.value, 'The name "alice" is taken: choose another');
    m.register("carol", "carol-password");
    await waitUntil(() => m.ready.value, "carol is signed in");
    assert.equal(m.me.value, "carol");
  } finally {
    m.close();
  }
});

Deno.test("ChatModel.start() forgets a rejected token and returns to sign-in", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const storage = new MemoryStorage();
  storage.setItem("chat.token", "v1.bogus.token");
  storage.setItem("chat.user", "alice");
  const m = model(t, storage);
  try {
    await m.start();
    await waitUntil(() => m.phase.value === "signin", "sign-in shows");
    assert.match(m.authError.value ?? "", /session has expired/);
    assert.equal(storage.getItem("chat.token"), null);
    assert.equal(m.me.value, null);
  } finally {
    m.close();
  }
});

Deno.test("ChatModel.send() shows the message at once and reconciles it by ref", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    alice.send("hello <b>bob</b>");
    const conv = alice.current.value!;
    assert.equal(conv.pending.value.length, 1, "pending before the server answers");
    assert.equal(conv.pending.value[0].state, "sending");
    await waitUntil(() => conv.pending.value.length === 0, "the message is confirmed");
    assert.deepEqual(conv.messages.value.map((m) => m.text), ["hello <b>bob</b>"]);
    assert.equal(conv.messages.value[0].ref, undefined, "the stored copy drops the ref");
    assert.equal(conv.read.value, conv.messages.value[0].id, "own message counts as read");
    await waitUntil(() => bob.current.value!.messages.value.length === 1, "bob gets it");
    assert.equal(bob.current.value!.messages.value[0].from, "alice");
  } finally {
    alice.close();
    bob.close();
  }
});

Deno.test("ChatModel shows a refused message as failed with the server's reason", async () => {
  await using t = await startTestServer({
    users: await hashedUsers(),
    args: ["--max-message", "10"],
  });
  const alice = await signedIn(t, "alice");
  try {
    alice.send("this is far too long");
    const conv = alice.current.value!;
    await waitUntil(() => conv.pending.value[0]?.state === "failed", "the message fails");
    assert.equal(conv.pending.value[0].error, "Message text is longer than 10 bytes");
    assert.equal(conv.messages.value.length, 0);
    alice.discard(conv, conv.pending.value[0].ref);
    assert.equal(conv.pending.value.length, 0);
  } finally {
    alice.close();
  }
});

Deno.test("ChatModel counts unread messages and clears them when another device reads", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const alice = await signedIn(t, "alice");
  const bob1 = await signedIn(t, "bob");
  const bob2 = await signedIn(t, "bob");
  try {
    assert.equal(alice.joinRoom("ops"), null);
    await waitUntil(() => alice.active.value === "#ops", "alice is in ops");
    assert.equal(bob1.joinRoom("ops"), null);
    await waitUntil(() => bob2.convs.value.get("#ops")?.loaded.value, "bob's other device joined");
    bob1.open("#general");
    alice.send("one");
    alice.send("two @bob");
    const ops1 = () => bob1.convs.value.get("#ops")!;
    const ops2 = () => bob2.convs.value.get("#ops")!;
    await waitUntil(() => ops1().unread.value === 2 && ops2().unread.value === 2, "2 unread");
    assert.equal(ops1().mentioned.value, true);
    assert.equal(bob1.unreadTotal.value, 2);
    bob2.open("#ops");
    await waitUntil(() => ops1().unread.value === 0, "the read reaches the other device");
    assert.equal(ops1().read.value, 2);
    // A new session sees the same marker.
    const bob3 = await signedIn(t, "bob");
    try {
      await waitUntil(() => bob3.convs.value.get("#ops")?.loaded.value, "bob3 joined ops");
      assert.equal(bob3.convs.value.get("#ops")!.unread.value, 0);
    } finally {
      bob3.close();
    }
  } finally {
    alice.close();
    bob1.close();
    bob2.close();
  }
});

Deno.test("ChatModel keeps a typing line and presence", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    await waitUntil(() => alice.online.value.has("bob"), "alice sees bob online");
    bob.typing("h");
    const general = alice.convs.value.get("#general")!;
    await waitUntil(() => general.typing.value.has("bob"), "alice sees bob typing");
    bob.typing("");
    await waitUntil(() => !general.typing.value.has("bob"), "the typing line clears");
    bob.close();
    await waitUntil(() => !alice.online.value.has("bob"), "bob goes offline");
  } finally {
    alice.close();
    bob.close();
  }
});

Deno.test("ChatModel resumes after a restart with since: no duplicates, no gaps", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-model-" });
  const store = new MemoryStore({ limit: 1000 });
  const port = freePort();
  const users = await hashedUsers();
  const start = () =>
    startTestServer({ users, dir, store, args: ["--port", String(port), "--history", "1000"] });
  let t = await start();
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    for (let i = 1; i <= 3; i++) alice.send(`before ${i}`);
    await waitUntil(() => ids(bob, "#general").length === 3, "bob has the first three");
    bob.openDm("alice");
    await waitUntil(() => bob.convs.value.get("@alice")?.loaded.value, "bob opened the DM");
    bob.open("#general");

    // A message on its way when the server goes: stored or not, it must show once.
    bob.send("in flight");
    await t.server.shutdown();
    await waitUntil(() => bob.conn.value === "waiting", "bob waits to reconnect");
    assert.equal(bob.ready.value, false);
    assert.equal(bob.connNote.value, "The server is restarting");

    // While bob is away: more than one page of room messages and a DM.
    for (let i = 1; i <= 230; i++) {
      await store.append({ conv: "general", room: "general", from: "alice", text: `away ${i}` });
    }
    await store.append({
      conv: conversationKey("alice", { to: "bob" }),
      to: "bob",
      from: "alice",
      text: "psst, while you were away",
    });
    bob.send("written offline");
    assert.equal(bob.current.value!.pending.value.at(-1)!.state, "queued");

    t = await start();
    await waitUntil(() => bob.ready.value && alice.ready.value, "both reconnect", 30_000);
    const expectedLast = 3 + 230 + 2;
    await waitUntil(
      () =>
        ids(bob, "#general").at(-1) === expectedLast &&
        bob.current.value!.pending.value.length === 0,
      "bob caught up and sent what waited",
      30_000,
    );
    const got = ids(bob, "#general");
    assert.deepEqual(
      got,
      Array.from({ length: expectedLast }, (_, i) => i + 1),
      "no gaps, no dups",
    );
    const texts = bob.convs.value.get("#general")!.messages.value.map((m) => m.text);
    assert.equal(texts.filter((x) => x === "in flight").length, 1);
    assert.equal(texts.filter((x) => x === "written offline").length, 1);
    assert.equal(texts.at(-1), "written offline");
    const dm = bob.convs.value.get("@alice")!;
    await waitUntil(() => dm.messages.value.length === 1, "the DM arrives");
    assert.equal(dm.messages.value[0].text, "psst, while you were away");
    assert.equal(dm.unread.value, 1);
    await waitUntil(() => ids(alice, "#general").at(-1) === expectedLast, "alice caught up too");
    assert.deepEqual(ids(alice, "#general"), got, "alice resumed the same way");
  } finally {
    alice.close();
    bob.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatModel.signIn() in open mode reports a name in use", async () => {
  await using t = await startTestServer();
  const a = model(t);
  const b = model(t);
  try {
    await a.start();
    assert.equal(a.info.value?.mode, "open");
    a.signIn("dana");
    await waitUntil(() => a.ready.value, "dana is in");
    await b.start();
    b.signIn("dana");
    await waitUntil(() => b.authError.value, "the name is refused");
    assert.equal(b.authError.value, 'The name "dana" is in use by someone else: choose another');
    assert.equal(b.phase.value, "signin");
    b.signIn("Admin");
    assert.equal(b.authError.value, 'The name "Admin" is reserved: choose another');
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("ChatModel.signOut() ends the session on the server and frees an open-mode name", async () => {
  await using t = await startTestServer();
  const storage = new MemoryStorage();
  const a = model(t, storage);
  const b = model(t);
  try {
    await a.start();
    a.signIn("erin");
    await waitUntil(() => a.ready.value, "erin is in");
    const token = storage.getItem("chat.token")!;
    a.signOut();
    assert.equal(a.phase.value, "signin");
    assert.equal(storage.getItem("chat.token"), null);
    // The server forgot the session: the old token no longer signs in anywhere…
    await waitUntil(async () => {
      const ws = new WebSocket(`${t.ws}`);
      const answer = await new Promise<string>((resolve) => {
        ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token }));
        ws.onmessage = (e) => resolve(JSON.parse(String(e.data).split("\n")[0]).type);
        ws.onclose = () => resolve("closed");
      });
      ws.close();
      await new Promise((r) => (ws.readyState === WebSocket.CLOSED ? r(0) : (ws.onclose = r)));
      return answer === "error";
    }, "the token is revoked");
    // …and the name is free for someone else (once the release that follows the
    // revocation is done).
    await b.start();
    await waitUntil(async () => {
      b.authError.value = null;
      b.signIn("erin");
      await waitUntil(() => b.ready.value || b.authError.value, "an answer");
      return b.ready.value;
    }, "someone else may take the name");
  } finally {
    a.close();
    b.close();
  }
});

Deno.test("ChatModel.loadOlder() pages back and jumpTo() reaches an old message", async () => {
  await using t = await startTestServer({ users: await hashedUsers(), args: ["--burst", "300"] });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    for (let i = 1; i <= 120; i++) alice.send(`m${i}`);
    await waitUntil(() => bob.current.value!.newest === 120, "bob has 120 live", 30_000);
    const fresh = await signedIn(t, "bob");
    try {
      const conv = fresh.current.value!;
      assert.deepEqual(ids(fresh, "#general"), Array.from({ length: 50 }, (_, i) => 71 + i));
      assert.equal(conv.hasOlder.value, true);
      fresh.loadOlder();
      assert.equal(conv.loadingOlder.value, true);
      await waitUntil(() => !conv.loadingOlder.value, "a page arrives");
      assert.equal(conv.oldest, 21);
      fresh.jumpTo({ id: 3, room: "general", from: "alice", text: "m3", ts: "" });
      await waitUntil(() => conv.focus.value === 3, "the old message is reached");
      assert.deepEqual(ids(fresh, "#general"), Array.from({ length: 120 }, (_, i) => i + 1));
      assert.equal(conv.hasOlder.value, false);
    } finally {
      fresh.close();
    }
  } finally {
    alice.close();
    bob.close();
  }
});

Deno.test("ChatModel returns to sign-in with the reason when the account is removed", async () => {
  await using t = await startTestServer({ users: await hashedUsers(), reloadInterval: 50 });
  const bob = await signedIn(t, "bob");
  try {
    const users = JSON.parse(await Deno.readTextFile(`${t.dir}/users.json`));
    delete users.bob;
    await Deno.writeTextFile(`${t.dir}/users.json`, JSON.stringify(users));
    await waitUntil(() => bob.phase.value === "signin", "bob is signed out");
    assert.equal(bob.authError.value, "Your account was changed or removed: sign in again");
    assert.equal(bob.me.value, null);
    assert.equal(bob.convs.value.size, 0, "nothing of bob's is left on screen");
    assert.equal(bob.conn.value, "offline", "no reconnect");
  } finally {
    bob.close();
  }
});
