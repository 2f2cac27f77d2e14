/**
 * The web client's model against a real server: sign-in errors, sending
 * with reconciliation by `ref`, read markers across devices, and the
 * reconnect path (token re-auth, `since` catch-up past a page, messages
 * written while offline) with no duplicates and no gaps.
 */
import assert from "node:assert/strict";
import { effect } from "@preact/signals";
import { MemoryStore } from "../server/store/memory.ts";
import {
  type ChatMessage,
  type ClientFrame,
  conversationKey,
  type ServerFrame,
  type WelcomeFrame,
} from "../protocol.ts";
import type { Pending } from "../web/conversation.ts";
import { ChatModel, PACE_NOTICE } from "../web/model.ts";
import { NOT_CONNECTED, PushControl, toBase64Url } from "../web/push.ts";
import type { AppWorker } from "../web/sw_client.ts";
import { loadUnsent } from "../web/unsent.ts";
import {
  loadSnapshot,
  saveSnapshot,
  type Snapshot,
  SNAPSHOT_MAX,
  SNAPSHOT_MESSAGES,
  snapshotKey,
} from "../web/offline.ts";
import {
  checkFileInfo,
  fetchUploader,
  fileKind,
  fitBox,
  humanSize,
  isImage,
  type Uploader,
  uploadProblem,
  type UploadResponse,
} from "../web/uploads.ts";
import { freePort, hashPassword, startTestServer, type TestServer, waitUntil } from "./helpers.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password" };

async function hashedUsers(): Promise<Record<string, string>> {
  return {
    alice: await hashPassword(PASSWORDS.alice),
    bob: await hashPassword(PASSWORDS.bob),
  };
}

/**
 * A login server that can be stopped and started again on the same port,
 * folder and store: a restart, as the page sees it.
 */
async function restartable(): Promise<
  { dir: string; store: MemoryStore; start: () => Promise<TestServer> }
> {
  const dir = await Deno.makeTempDir({ prefix: "chat-model-" });
  const store = new MemoryStore({ limit: 1000 });
  const port = freePort();
  const users = await hashedUsers();
  return {
    dir,
    store,
    start: () => startTestServer({ users, dir, store, args: ["--port", String(port)] }),
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

Deno.test("ChatModel.send() refuses text over limits.maxMessage, counted as the server counts it", async () => {
  await using t = await startTestServer({
    users: await hashedUsers(),
    args: ["--max-message", "10"],
  });
  const alice = await signedIn(t, "alice");
  try {
    assert.deepEqual(alice.limits.value, {
      rate: 20,
      burst: 60,
      maxMessage: 10,
      roomMentionMax: 100,
    });
    const conv = alice.current.value!;
    // Quotes, tabs, newlines and backslashes take 2 bytes, é 2, an emoji 4.
    assert.equal(
      alice.send('ab"\u00e9"\tc'),
      "This message is too long (1 byte over the limit)",
    );
    assert.equal(
      alice.send("\u{1F600}\u{1F600}\n!"),
      "This message is too long (1 byte over the limit)",
    );
    assert.equal(
      alice.send("far too long for ten"),
      "This message is too long (10 bytes over the limit)",
    );
    assert.equal(conv.pending.value.length, 0, "nothing is queued");
    // Exactly at the limit: the server takes it.
    assert.equal(alice.send('a"\u00e9"\tc'), null);
    await waitUntil(() => conv.messages.value.length === 1, "the message is stored");
    assert.equal(conv.messages.value[0].text, 'a"\u00e9"\tc');
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
      fresh.jumpTo({ id: 3, seq: 3, room: "general", from: "alice", text: "m3", ts: "" });
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

/** Every message the model was ever told to put back in the queue (rate limits, store failures). */
function watchRequeues(m: ChatModel): { refs: Set<string>; stop: () => void } {
  const refs = new Set<string>();
  const stop = effect(() => {
    for (const c of m.convs.value.values()) {
      for (const p of c.pending.value) if (p.retryAt !== undefined) refs.add(p.ref);
    }
  });
  return { refs, stop };
}

Deno.test("ChatModel.send() paces 75 quick messages to the announced limits: all stored once, in order", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  const requeues = watchRequeues(alice);
  try {
    const texts = Array.from({ length: 75 }, (_, i) => `quick ${i + 1}`);
    for (const text of texts) alice.send(text);
    const conv = alice.current.value!;
    await waitUntil(
      () => conv.pending.value.length === 0 && ids(bob, "#general").length === 75,
      "every message is confirmed and reaches bob",
      30_000,
    );
    const seen = bob.current.value!.messages.value;
    assert.deepEqual(seen.map((m) => m.text), texts, "once each, in the order written");
    assert.deepEqual(seen.map((m) => m.id), Array.from({ length: 75 }, (_, i) => i + 1));
    assert.deepEqual([...requeues.refs], [], "the server never had to refuse one");
    assert.deepEqual(
      alice.toasts.value.map((x) => x.text).filter((x) => x !== PACE_NOTICE),
      [],
      "no error toasts",
    );
  } finally {
    requeues.stop();
    alice.close();
    bob.close();
  }
});

Deno.test("ChatModel keeps unsent messages and drafts across a reload and sends them once", async () => {
  const { dir, store, start } = await restartable();
  let t = await start();
  const storage = new MemoryStorage();
  let alice = await signedIn(t, "alice", storage);
  const bob = await signedIn(t, "bob");
  try {
    await t.server.shutdown();
    await waitUntil(() => alice.conn.value === "waiting", "alice lost the server");
    for (let i = 1; i <= 3; i++) alice.send(`offline ${i}`);
    alice.current.value!.draft.value = "a thought for later";
    assert.equal(alice.openDm("bob"), null);
    alice.current.value!.draft.value = "psst, draft";
    alice.open("#general");
    // The page goes away.
    alice.close();
    assert.deepEqual(
      JSON.parse(storage.getItem("chat.unsent.alice")!)["#general"].map((p: Pending) => p.text),
      ["offline 1", "offline 2", "offline 3"],
    );
    assert.deepEqual(JSON.parse(storage.getItem("chat.drafts.alice")!), {
      "#general": "a thought for later",
      "@bob": "psst, draft",
    });

    t = await start();
    alice = model(t, storage);
    const started = alice.start();
    // Shown straight away, before the connection is back.
    const general = alice.convs.value.get("#general")!;
    assert.equal(alice.active.value, "#general");
    assert.deepEqual(general.pending.value.map((p) => [p.text, p.state]), [
      ["offline 1", "queued"],
      ["offline 2", "queued"],
      ["offline 3", "queued"],
    ]);
    assert.equal(general.draft.value, "a thought for later");
    assert.equal(alice.convs.value.get("@bob")?.draft.value, "psst, draft");
    await started;
    await waitUntil(() => alice.ready.value && general.pending.value.length === 0, "all sent");
    await waitUntil(() => ids(bob, "#general").length === 3, "bob has them");
    assert.deepEqual(bob.current.value!.messages.value.map((m) => m.text), [
      "offline 1",
      "offline 2",
      "offline 3",
    ]);
    assert.equal(general.draft.value, "a thought for later", "a draft is not sent");
    assert.equal(storage.getItem("chat.unsent.alice"), null, "nothing unsent is left");

    // A message on its way when the page goes: sent again with its ref, stored once.
    alice.send("in flight at a reload");
    const ref = general.pending.value[0].ref;
    assert.match(ref, /^[\w-]{16,64}$/);
    alice.close();
    assert.equal(JSON.parse(storage.getItem("chat.unsent.alice")!)["#general"][0].ref, ref);
    alice = model(t, storage);
    await alice.start();
    await waitUntil(
      () => alice.ready.value && alice.convs.value.get("#general")!.pending.value.length === 0,
      "the message in flight is confirmed",
    );
    await waitUntil(() => ids(bob, "#general").length >= 4, "bob has it");
    const texts = () => alice.convs.value.get("#general")!.messages.value.map((m) => m.text);
    assert.equal(texts().filter((x) => x === "in flight at a reload").length, 1);
    assert.deepEqual(
      (await store.page("general", { limit: 200 })).messages.map((m) => m.text),
      ["offline 1", "offline 2", "offline 3", "in flight at a reload"],
      "stored once",
    );

    // Sent: the draft is cleared from storage at once.
    const conv = alice.convs.value.get("#general")!;
    alice.open("#general");
    alice.send(conv.draft.value);
    conv.draft.value = "";
    assert.deepEqual(JSON.parse(storage.getItem("chat.drafts.alice")!), { "@bob": "psst, draft" });
  } finally {
    alice.close();
    bob.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatModel keeps what other tabs of the same user saved", async () => {
  const { dir, store, start } = await restartable();
  let t = await start();
  const storage = new MemoryStorage();
  const one = await signedIn(t, "alice", storage);
  // A second tab: same storage, signed in with the saved token.
  const two = model(t, storage);
  let later: ChatModel | undefined;
  try {
    await two.start();
    await waitUntil(() => two.convs.value.get("#general")?.loaded.value, "the second tab is in");
    await t.server.shutdown();
    await waitUntil(
      () => one.conn.value === "waiting" && two.conn.value === "waiting",
      "both tabs lost the server",
    );
    one.send("from the first tab");
    one.current.value!.draft.value = "first tab's draft";
    two.send("from the second tab");
    assert.equal(two.openDm("bob"), null);
    two.current.value!.draft.value = "second tab's draft";
    one.saveDrafts();
    two.saveDrafts();
    one.close();
    two.close();
    assert.deepEqual(
      JSON.parse(storage.getItem("chat.unsent.alice")!)["#general"].map((p: Pending) => p.text),
      ["from the first tab", "from the second tab"],
    );
    assert.deepEqual(JSON.parse(storage.getItem("chat.drafts.alice")!), {
      "#general": "first tab's draft",
      "@bob": "second tab's draft",
    });

    t = await start();
    later = model(t, storage);
    await later.start();
    const general = later.convs.value.get("#general")!;
    await waitUntil(() => later!.ready.value && general.pending.value.length === 0, "both sent");
    assert.deepEqual(
      (await store.page("general", { limit: 200 })).messages.map((m) => m.text),
      ["from the first tab", "from the second tab"],
    );
  } finally {
    one.close();
    two.close();
    later?.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatModel keeps a user's unsent messages and drafts from the next user of the browser", async () => {
  const { dir, store, start } = await restartable();
  let t = await start();
  const storage = new MemoryStorage();
  const alice = await signedIn(t, "alice", storage);
  let bob: ChatModel | undefined;
  let again: ChatModel | undefined;
  try {
    await t.server.shutdown();
    await waitUntil(() => alice.conn.value === "waiting", "alice lost the server");
    alice.send("alice's secret plan");
    alice.current.value!.draft.value = "alice's draft";
    alice.signOut();
    assert.equal(alice.convs.value.size, 0);

    t = await start();
    bob = model(t, storage);
    await bob.start();
    assert.equal(bob.phase.value, "signin");
    bob.signIn("bob", PASSWORDS.bob);
    await waitUntil(() => bob!.convs.value.get("#general")?.loaded.value, "bob is in");
    for (const c of bob.convs.value.values()) {
      assert.deepEqual(c.pending.value, [], `nothing of alice's waits in ${c.key}`);
      assert.equal(c.draft.value, "", `no draft of alice's in ${c.key}`);
    }
    bob.send("bob was here");
    await waitUntil(() => bob!.current.value!.pending.value.length === 0, "bob's message is in");
    assert.deepEqual(
      (await store.page("general", { limit: 200 })).messages.map((m) => [m.from, m.text]),
      [["bob", "bob was here"]],
      "alice's message was not sent as bob's",
    );
    assert.equal(storage.getItem("chat.unsent.bob"), null);
    assert.notEqual(storage.getItem("chat.unsent.alice"), null, "alice's wait for her");
    bob.signOut();

    // Alice signs in again: her message goes out, her draft is back.
    again = model(t, storage);
    await again.start();
    again.signIn("alice", PASSWORDS.alice);
    await waitUntil(() => again!.ready.value, "alice is back");
    const general = again.convs.value.get("#general")!;
    assert.equal(general.draft.value, "alice's draft");
    await waitUntil(() => general.pending.value.length === 0, "her message is confirmed");
    assert.deepEqual(
      (await store.page("general", { limit: 200 })).messages.map((m) => [m.from, m.text]),
      [["bob", "bob was here"], ["alice", "alice's secret plan"]],
    );
  } finally {
    alice.close();
    bob?.close();
    again?.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatModel marks a message refused for good as not sent; resend() and discard() finish it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-model-" });
  const store = new MemoryStore({ limit: 1000 });
  const port = freePort();
  const users = await hashedUsers();
  const start = (maxMessage: number) =>
    startTestServer({
      users,
      dir,
      store,
      args: ["--port", String(port), "--max-message", String(maxMessage)],
    });
  let t = await start(100);
  const storage = new MemoryStorage();
  const alice = await signedIn(t, "alice", storage);
  try {
    assert.equal(alice.joinRoom("ops"), null);
    await waitUntil(() => alice.convs.value.get("#ops")?.loaded.value, "alice is in ops");
    await t.server.shutdown();
    await waitUntil(() => alice.conn.value === "waiting", "alice lost the server");
    alice.open("#ops");
    alice.send("ship it");
    alice.send("wrong room");
    alice.open("#general");
    alice.send("x".repeat(60));
    // Meanwhile alice leaves ops elsewhere, and the server comes back with a smaller limit.
    await store.leave("alice", "ops");
    t = await start(50);
    await waitUntil(() => alice.ready.value, "alice is back");
    const ops = alice.convs.value.get("#ops")!;
    const general = alice.convs.value.get("#general")!;
    await waitUntil(() => general.pending.value[0]?.state === "failed", "the long one fails");
    assert.equal(
      general.pending.value[0].error,
      "This message is too long (10 bytes over the limit)",
    );
    assert.equal(ops.member.value, false, "ops stays listed for its unsent messages");
    assert.deepEqual(ops.pending.value.map((p) => [p.text, p.state, p.error]), [
      ["ship it", "failed", "You're not in #ops any more: join it again, then retry"],
      ["wrong room", "failed", "You're not in #ops any more: join it again, then retry"],
    ]);
    const saved = JSON.parse(storage.getItem("chat.unsent.alice")!);
    assert.deepEqual(Object.keys(saved).sort(), ["#general", "#ops"], "still saved");

    const [ship, wrong] = ops.pending.value.map((p) => p.ref);
    alice.resend(ops, ship);
    assert.equal(ops.pending.value[0].state, "failed", "not in the room yet");
    assert.equal(alice.joinRoom("ops"), null);
    await waitUntil(() => ops.member.value, "alice joined ops again");
    alice.resend(ops, ship);
    await waitUntil(() => ops.pending.value.length === 1, "the retried message is confirmed");
    assert.equal(ops.messages.value.filter((m) => m.text === "ship it").length, 1);
    assert.deepEqual(
      (await store.page("ops", { limit: 200 })).messages.filter((m) => m.text === "ship it").length,
      1,
    );

    alice.discard(ops, wrong);
    alice.discard(general, general.pending.value[0].ref);
    assert.deepEqual(ops.pending.value, []);
    assert.equal(storage.getItem("chat.unsent.alice"), null, "deleted from storage too");
    assert.equal(
      (await store.page("ops", { limit: 200 })).messages.some((m) => m.text === "wrong room"),
      false,
    );
  } finally {
    alice.close();
    await t.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ChatModel sends again a message the server could not store", async () => {
  let failures = 0;
  const memory = new MemoryStore();
  // Stores that cannot write for a while (a database restarting): the next appends fail.
  const store = new Proxy(memory, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        if ((prop === "append" || prop === "appendOnce") && failures > 0) {
          failures--;
          return Promise.reject(new Error("database unreachable"));
        }
        return value.apply(target, args);
      };
    },
  });
  await using t = await startTestServer({ users: await hashedUsers(), store });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    failures = 2;
    alice.send("stored at last");
    alice.send("and after it");
    const conv = alice.current.value!;
    await waitUntil(() => conv.pending.value[0]?.attempts === 1, "the first attempt failed");
    assert.equal(conv.pending.value[0].state, "queued", "waiting to be retried, not failed");
    await waitUntil(() => conv.pending.value.length === 0, "both are stored", 20_000);
    await waitUntil(() => ids(bob, "#general").length === 2, "bob has both");
    assert.deepEqual(
      bob.current.value!.messages.value.map((m) => m.text),
      ["stored at last", "and after it"],
      "once each, in order",
    );
  } finally {
    alice.close();
    bob.close();
  }
});

/**
 * A stand-in server that refuses the first `drop` sends with `rate_limited`
 * (no ref, as the real one does), and records every send.
 */
function rateLimitingServer(drop: number) {
  const sends: { ref: string; text: string }[] = [];
  let id = 0;
  const sockets = new Set<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/api/info") return Response.json({ mode: "login", signup: false });
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    const reply = (frame: ServerFrame) => socket.send(JSON.stringify(frame));
    socket.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === "auth") {
        reply({
          type: "welcome",
          user: "alice",
          token: "v1.test",
          rooms: ["general"],
          online: ["alice"],
          mode: "login",
          limits: { rate: 20, burst: 60, maxMessage: 4096 },
          conversations: [{ room: "general", last: 0, read: 0, seq: 0, unread: 0 }],
        });
      } else if (f.type === "join") {
        reply({ type: "joined", room: f.room, members: ["alice"], history: [], seq: id });
      } else if (f.type === "send") {
        sends.push({ ref: f.ref, text: f.text });
        if (sends.length <= drop) {
          reply({
            type: "error",
            code: "rate_limited",
            message: "Too many frames: slow down and retry in 1 s",
            retryAfter: 1,
          });
        } else {
          reply({
            type: "message",
            id: ++id,
            seq: id,
            room: f.room,
            from: "alice",
            text: f.text,
            ts: new Date().toISOString(),
            ref: f.ref,
          });
        }
      }
    };
    return response;
  });
  return {
    http: `http://127.0.0.1:${server.addr.port}`,
    sends,
    async close() {
      for (const s of sockets) s.close();
      await server.shutdown();
    },
  };
}

Deno.test("ChatModel puts messages back in the queue on rate_limited, with one friendly notice", async () => {
  const fake = rateLimitingServer(2);
  const alice = new ChatModel({ origin: fake.http, storage: new MemoryStorage() });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    alice.send("one");
    alice.send("two");
    alice.send("three");
    const conv = alice.current.value!;
    await waitUntil(() => conv.pending.value.length === 0, "all three are confirmed");
    assert.deepEqual(alice.toasts.value.map((x) => x.text), [PACE_NOTICE], "one notice");
    // "one" and "two" were refused and sent again with the same refs; "three" once.
    const [one, two, three] = fake.sends.slice(0, 3);
    assert.deepEqual(fake.sends.map((x) => x.text), ["one", "two", "three", "one", "two"]);
    assert.deepEqual(fake.sends.slice(3), [one, two]);
    assert.equal(new Set([one.ref, two.ref, three.ref]).size, 3);
    assert.deepEqual(conv.messages.value.map((m) => m.text).sort(), ["one", "three", "two"]);
  } finally {
    alice.close();
    await fake.close();
  }
});

// ---------------------------------------------------------------------------
// Living messages (issue 15), against a stand-in server that plays the frames

/** A message as the server sends it (its `seq` is its id until it changes). */
function msg(
  id: number,
  from: string,
  text: string,
  extra: Partial<ChatMessage> = {},
): ChatMessage {
  return {
    id,
    seq: id,
    room: "general",
    from,
    text,
    ts: new Date(Date.UTC(2026, 0, 1, 9, id)).toISOString(),
    ...extra,
  };
}

/**
 * A stand-in server: answers `/api/info` and `auth` with `welcome`, hands
 * every other frame to `answer`, records what the client sends, and lets
 * the test push frames or drop the connection.
 */
function standIn(
  welcome:
    & Pick<WelcomeFrame, "rooms" | "conversations" | "renamed" | "levels" | "push">
    & Partial<Pick<WelcomeFrame, "limits">>,
  answer: (f: ClientFrame & { ref?: string }, reply: (frame: ServerFrame) => void) => void,
) {
  const received: (ClientFrame & { ref?: string })[] = [];
  const sockets = new Set<WebSocket>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const url = new URL(req.url);
    if (url.pathname === "/api/info") return Response.json({ mode: "login", signup: false });
    const { socket, response } = Deno.upgradeWebSocket(req);
    sockets.add(socket);
    socket.onclose = () => sockets.delete(socket);
    const reply = (frame: ServerFrame) => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
    };
    socket.onmessage = (e) => {
      const f = JSON.parse(e.data);
      if (f.type === "auth") {
        reply({
          type: "welcome",
          user: "alice",
          token: "v1.test",
          online: ["alice"],
          mode: "login",
          limits: { rate: 20, burst: 60, maxMessage: 4096 },
          ...welcome,
        });
        return;
      }
      received.push(f);
      answer(f, reply);
    };
    return response;
  });
  return {
    http: `http://127.0.0.1:${server.addr.port}`,
    received,
    /** Sends a frame to every connection. */
    push(frame: ServerFrame): void {
      for (const s of sockets) s.send(JSON.stringify(frame));
    },
    /** Sends frames as the server batches them: one WebSocket message, a line each. */
    pushBatch(frames: ServerFrame[]): void {
      for (const s of sockets) s.send(frames.map((f) => JSON.stringify(f)).join("\n"));
    },
    /** The next frame the client sends (after `from` already seen) that matches. */
    next<T extends ClientFrame["type"]>(
      type: T,
      from = 0,
    ): Promise<Extract<ClientFrame, { type: T }> & { ref?: string }> {
      return waitUntil(
        () => received.slice(from).find((f) => f.type === type),
        `the client sends ${type}`,
      ) as Promise<Extract<ClientFrame, { type: T }> & { ref?: string }>;
    },
    /** Drops every connection (the client reconnects). */
    drop(): void {
      for (const s of sockets) s.close(1001, "going away");
    },
    async close(): Promise<void> {
      for (const s of sockets) s.close();
      await server.shutdown();
    },
  };
}

function texts(m: ChatModel, key = "#general"): string[] {
  return m.convs.value.get(key)?.messages.value.map((x) => x.text) ?? [];
}

Deno.test("ChatModel merges edits, deletes and reactions by id and seq; they never make anything unread", async () => {
  const notes: unknown[] = [];
  const fake = standIn(
    {
      rooms: ["general"],
      conversations: [{ room: "general", last: 3, read: 3, seq: 3, unread: 0 }],
    },
    (f, reply) => {
      if (f.type === "join") {
        reply({
          type: "joined",
          room: "general",
          members: ["alice", "bob"],
          history: [msg(1, "alice", "first"), msg(2, "bob", "second"), msg(3, "bob", "third")],
          seq: 3,
        });
      }
    },
  );
  const alice = new ChatModel({
    origin: fake.http,
    storage: new MemoryStorage(),
    notify: (n) => notes.push(n),
  });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    const conv = alice.convs.value.get("#general")!;
    alice.setVisible(false);
    assert.equal(conv.cursor, 3, "the join's seq");

    fake.push({
      type: "reaction",
      room: "general",
      id: 2,
      emoji: "👍",
      user: "bob",
      on: true,
      seq: 4,
    });
    fake.push({
      type: "reaction",
      room: "general",
      id: 2,
      emoji: "👍",
      user: "carol",
      on: true,
      seq: 5,
    });
    fake.push({
      type: "edited",
      room: "general",
      id: 1,
      text: "first, fixed",
      editedAt: "2026-01-01T10:00:00.000Z",
      seq: 6,
    });
    fake.push({
      type: "message",
      ...msg(7, "bob", "answer @alice", {
        replyTo: { id: 1, from: "alice", snippet: "first, fixed" },
      }),
    });
    fake.push({
      type: "edited",
      room: "general",
      id: 1,
      text: "first,\n  fixed again",
      editedAt: "2026-01-01T10:01:00.000Z",
      seq: 8,
    });
    // Played again (a duplicate delivery): a change the message has already is ignored.
    fake.push({
      type: "reaction",
      room: "general",
      id: 2,
      emoji: "👍",
      user: "carol",
      on: true,
      seq: 5,
    });
    fake.push({
      type: "reaction",
      room: "general",
      id: 2,
      emoji: "👍",
      user: "bob",
      on: false,
      seq: 9,
    });
    // The answer to a change that changed nothing (the reaction was there): position 0.
    fake.push({
      type: "reaction",
      room: "general",
      id: 2,
      emoji: "👍",
      user: "carol",
      on: true,
      seq: 0,
      ref: "w0",
    });
    fake.push({ type: "deleted", room: "general", id: 3, seq: 10 });
    // A change to a message older than the oldest loaded one: it comes with its page.
    fake.push({
      type: "edited",
      room: "general",
      id: 0,
      text: "never loaded",
      editedAt: "2026-01-01T10:02:00.000Z",
      seq: 11,
    });
    await waitUntil(() => conv.cursor === 11, "every frame is in");

    assert.deepEqual(conv.messages.value.map((m) => m.id), [1, 2, 3, 7]);
    const [one, two, three, seven] = conv.messages.value;
    assert.deepEqual(one, {
      ...msg(1, "alice", "first,\n  fixed again"),
      seq: 8,
      edited: "2026-01-01T10:01:00.000Z",
    });
    assert.deepEqual(two, { ...msg(2, "bob", "second"), seq: 9, reactions: { "👍": ["carol"] } });
    assert.deepEqual(three, { ...msg(3, "bob", ""), seq: 10, deleted: true });
    assert.deepEqual(
      seven.replyTo,
      { id: 1, from: "alice", snippet: "first, fixed again" },
      "the quote follows the edit",
    );
    // The answer is unread (and mentions alice); the changes added nothing to that.
    assert.equal(conv.unread.value, 1);
    assert.equal(conv.mentioned.value, true);
    assert.equal(notes.length, 1, "only the new message notified");

    fake.push({ type: "deleted", room: "general", id: 1, seq: 12 });
    await waitUntil(() => conv.messages.value[0].deleted, "the original is deleted");
    assert.deepEqual(conv.messages.value[3].replyTo, {
      id: 1,
      from: "alice",
      snippet: "",
      deleted: true,
    });
    assert.equal(conv.unread.value, 1);
    fake.push({ type: "deleted", room: "general", id: 7, seq: 13 });
    await waitUntil(() => conv.unread.value === 0, "a deleted message is no longer unread");
    assert.equal(conv.mentioned.value, false);
    assert.equal(notes.length, 1);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel places the tombstone of a deleted message it never had, never before the oldest loaded one", async () => {
  const dm = (id: number, from: string): ChatMessage => ({
    id,
    seq: id,
    to: from === "bob" ? "alice" : "bob",
    from,
    text: "",
    ts: msg(id, from, "").ts,
    deleted: true,
  });
  const fake = standIn(
    {
      rooms: ["general"],
      conversations: [{ room: "general", last: 8, read: 8, seq: 8, unread: 0 }],
    },
    (f, reply) => {
      if (f.type === "join") {
        reply({
          type: "joined",
          room: "general",
          members: ["alice", "bob", "carol"],
          // Older messages exist (the first id is not 1): the page starts at #5.
          history: [
            msg(5, "alice", "five"),
            msg(6, "bob", "six"),
            msg(8, "bob", "about seven", {
              replyTo: { id: 7, from: "carol", snippet: "seven" },
            }),
          ],
          seq: 8,
        });
      } else if (f.type === "history" && f.to === "bob" && f.since === undefined) {
        // The whole conversation, and nothing in it yet.
        reply({ type: "history", to: "bob", messages: [], more: false, seq: 0 });
      }
    },
  );
  const alice = new ChatModel({ origin: fake.http, storage: new MemoryStorage() });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    const conv = alice.convs.value.get("#general")!;
    assert.equal(conv.hasOlder.value, true);

    // #7 was created and deleted while alice's server caught up: only its delete came.
    fake.push({
      type: "deleted",
      room: "general",
      id: 7,
      seq: 9,
      from: "carol",
      ts: msg(7, "carol", "").ts,
    });
    // Older than the oldest loaded message: its page brings it.
    fake.push({
      type: "deleted",
      room: "general",
      id: 3,
      seq: 10,
      from: "bob",
      ts: msg(3, "bob", "").ts,
    });
    // An older server's frame says nothing of whose it was: nothing to place.
    fake.push({ type: "deleted", room: "general", id: 11, seq: 12 });
    // Newer than everything loaded, removed by an admin.
    fake.push({
      type: "deleted",
      room: "general",
      id: 13,
      seq: 14,
      from: "bob",
      ts: msg(13, "bob", "").ts,
      removed: true,
    });
    // The same delete again (a duplicate delivery): the tombstone is there already.
    fake.push({
      type: "deleted",
      room: "general",
      id: 7,
      seq: 9,
      from: "carol",
      ts: msg(7, "carol", "").ts,
    });
    await waitUntil(() => conv.cursor === 14, "every frame is in");

    assert.deepEqual(conv.messages.value, [
      msg(5, "alice", "five"),
      msg(6, "bob", "six"),
      { ...msg(7, "carol", ""), seq: 9, deleted: true },
      msg(8, "bob", "about seven", {
        replyTo: { id: 7, from: "carol", snippet: "", deleted: true },
      }),
      { ...msg(13, "bob", ""), seq: 14, deleted: true, removed: true },
    ]);
    assert.equal(conv.last.value, 13);
    assert.equal(conv.unread.value, 0, "a tombstone is never unread");
    assert.equal(conv.oldest, 5, "no tombstone before the oldest loaded message");

    // A DM loaded whole (nothing older on the server): a tombstone of either party goes in.
    alice.openDm("bob");
    await waitUntil(() => alice.convs.value.get("@bob")?.loaded.value, "the DM is loaded");
    const bob = alice.convs.value.get("@bob")!;
    assert.equal(bob.hasOlder.value, false);
    fake.push({ type: "deleted", to: "bob", id: 3, seq: 3, from: "bob", ts: dm(3, "bob").ts });
    fake.push({ type: "deleted", to: "bob", id: 1, seq: 4, from: "alice", ts: dm(1, "alice").ts });
    await waitUntil(() => bob.messages.value.length === 2, "both tombstones are in");
    assert.deepEqual(bob.messages.value, [{ ...dm(1, "alice"), seq: 4 }, dm(3, "bob")]);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel resumes with since = the highest seq it saw, and takes the catch-up's state by id", async () => {
  let joins = 0;
  const dm = (id: number, from: string, text: string): ChatMessage => ({
    ...msg(id, from, text),
    room: undefined,
    to: from === "bob" ? "alice" : "bob",
  });
  const fake = standIn(
    {
      rooms: ["general"],
      conversations: [
        { room: "general", last: 3, read: 3, seq: 3, unread: 0 },
        { to: "bob", last: 2, read: 2, seq: 2, unread: 0 },
      ],
    },
    (f, reply) => {
      if (f.type === "join" && joins++ === 0) {
        reply({
          type: "joined",
          room: "general",
          members: ["alice", "bob"],
          history: [msg(1, "alice", "one"), msg(2, "bob", "two"), msg(3, "bob", "three")],
          seq: 3,
        });
      } else if (f.type === "history" && f.to === "bob" && f.since === undefined) {
        reply({
          type: "history",
          to: "bob",
          messages: [dm(1, "bob", "hi"), dm(2, "alice", "hello")],
          more: false,
          seq: 2,
        });
      }
    },
  );
  const alice = new ChatModel({
    origin: fake.http,
    storage: new MemoryStorage(),
    backoff: 50,
    maxBackoff: 100,
  });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    alice.openDm("bob");
    await waitUntil(() => alice.convs.value.get("@bob")?.loaded.value, "the DM is loaded");
    const general = alice.convs.value.get("#general")!;
    const bob = alice.convs.value.get("@bob")!;
    assert.equal(bob.cursor, 2);
    fake.push({
      type: "reaction",
      room: "general",
      id: 2,
      emoji: "🎉",
      user: "bob",
      on: true,
      seq: 4,
    });
    await waitUntil(() => general.cursor === 4, "the reaction moved the cursor");
    alice.open("#general");

    const seen = fake.received.length;
    fake.drop();
    await waitUntil(() => !alice.ready.value, "alice is offline");
    // Written while offline: goes once the catch-up is done.
    assert.equal(alice.send("back online"), null);
    const join = await fake.next("join", seen);
    assert.equal(join.since, 4, "resumes from the highest seq seen");
    const since = await fake.next("history", seen);
    assert.deepEqual({ to: since.to, since: since.since }, { to: "bob", since: 2 });
    // The catch-up: two changed messages (one older than anything loaded), one new, more to come.
    fake.push({
      type: "joined",
      room: "general",
      members: ["alice", "bob"],
      history: [
        msg(0, "bob", "older than the oldest loaded", { seq: 5 }),
        { ...msg(3, "bob", ""), seq: 6, deleted: true },
        msg(8, "bob", "while you were away"),
      ],
      more: true,
      seq: 8,
    });
    const page = await fake.next("history", fake.received.length);
    assert.deepEqual({ room: page.room, since: page.since }, { room: "general", since: 8 });
    assert.equal(
      alice.current.value!.pending.value[0].state,
      "queued",
      "not sent before the catch-up ends",
    );
    fake.push({
      type: "history",
      room: "general",
      messages: [
        {
          ...msg(2, "bob", "two, fixed"),
          seq: 9,
          edited: "2026-01-01T11:00:00.000Z",
          reactions: { "🎉": ["bob"] },
        },
      ],
      more: false,
      seq: 10,
    });
    fake.push({
      type: "history",
      to: "bob",
      messages: [{ ...dm(1, "bob", "hi"), seq: 3, reactions: { "👋": ["bob"] } }],
      more: false,
      seq: 3,
    });
    const sent = await fake.next("send", seen);
    assert.equal(sent.text, "back online");
    await waitUntil(() => general.cursor === 10 && bob.cursor === 3, "both caught up");
    assert.deepEqual(texts(alice), ["one", "two, fixed", "", "while you were away"]);
    assert.deepEqual(general.messages.value.map((m) => m.id), [1, 2, 3, 8]);
    assert.equal(general.messages.value[1].edited, "2026-01-01T11:00:00.000Z");
    assert.deepEqual(general.messages.value[1].reactions, { "🎉": ["bob"] });
    assert.equal(general.messages.value[2].deleted, true);
    assert.deepEqual(bob.messages.value[0].reactions, { "👋": ["bob"] });
    assert.equal(general.unread.value, 1, "one new message, the changes are not unread");
    assert.equal(bob.unread.value, 0);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel.edit(), delete(), react() and reply() send their frames; refusals show as toasts", async () => {
  const storage = new MemoryStorage();
  let id = 3;
  const fake = standIn(
    {
      rooms: ["general"],
      conversations: [{ room: "general", last: 3, read: 3, seq: 3, unread: 0 }],
    },
    (f, reply) => {
      if (f.type === "join") {
        reply({
          type: "joined",
          room: "general",
          members: ["alice", "bob"],
          history: [
            msg(1, "alice", "mine"),
            msg(2, "bob", "theirs", { reactions: { "👍": ["bob"] } }),
            msg(3, "alice", "also mine"),
          ],
          seq: 3,
        });
      } else if (f.type === "send") {
        if (f.text === "refuse me") {
          reply({
            type: "error",
            code: "unknown_message",
            message: "No message 99 in #general",
            ref: f.ref,
          });
          return;
        }
        reply({
          type: "message",
          ...msg(++id, "alice", f.text),
          ref: f.ref,
          ...(f.replyTo ? { replyTo: { id: f.replyTo, from: "bob", snippet: "theirs" } } : {}),
        });
      } else if (f.type === "react" && f.emoji === "🚀") {
        reply({
          type: "error",
          code: "too_many_reactions",
          message: "At most 20 different reactions",
          ref: f.ref,
        });
      } else if (f.type === "edit" && f.id === 2) {
        reply({ type: "error", code: "forbidden", message: "Not yours", ref: f.ref });
      } else if (f.type === "delete" && f.id === 99) {
        reply({ type: "error", code: "unknown_message", message: "No such message", ref: f.ref });
      } else if (f.type === "react") {
        reply({
          type: "reaction",
          room: "general",
          id: f.id,
          emoji: f.emoji,
          user: "alice",
          on: f.on,
          seq: ++id,
          ref: f.ref,
        });
      }
    },
  );
  const alice = new ChatModel({ origin: fake.http, storage });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    const conv = alice.current.value!;

    // Reactions toggle: bob's 👍 is not alice's, so hers is added, then taken back.
    let from = fake.received.length;
    assert.equal(alice.react(conv, 2, "👍"), null);
    const on = await fake.next("react", from);
    assert.deepEqual({ ...on, ref: undefined }, {
      type: "react",
      room: "general",
      id: 2,
      emoji: "👍",
      on: true,
      ref: undefined,
    });
    assert.match(on.ref!, /^w[0-9a-f]{32}$/);
    await waitUntil(() => conv.find(2)!.reactions!["👍"].length === 2, "alice's reaction is in");
    assert.deepEqual(alice.recentEmoji.value, ["👍"]);
    assert.equal(storage.getItem("chat.emoji"), '["👍"]');
    from = fake.received.length;
    alice.react(conv, 2, "👍");
    assert.equal((await fake.next("react", from)).on, false);
    await waitUntil(() => conv.find(2)!.reactions!["👍"].length === 1, "taken back");
    alice.react(conv, 1, "🎉");
    await waitUntil(() => conv.find(1)!.reactions, "🎉 is in");
    assert.deepEqual(alice.recentEmoji.value, ["🎉", "👍"], "most recent first");

    // Edits: the same text sends nothing, an empty one is refused before sending.
    from = fake.received.length;
    assert.equal(alice.edit(conv, 1, "mine"), null);
    assert.equal(alice.edit(conv, 1, "  "), "A message cannot be empty: delete it instead");
    assert.equal(alice.edit(conv, 1, "mine, edited"), null);
    const edit = await fake.next("edit", from);
    assert.deepEqual({ ...edit, ref: undefined }, {
      type: "edit",
      room: "general",
      id: 1,
      text: "mine, edited",
      ref: undefined,
    });
    assert.equal(fake.received.slice(from).filter((f) => f.type === "edit").length, 1);
    from = fake.received.length;
    assert.equal(alice.delete(conv, 3), null);
    assert.deepEqual({ ...(await fake.next("delete", from)), ref: undefined }, {
      type: "delete",
      room: "general",
      id: 3,
      ref: undefined,
    });

    // A reply: shown with the composer, sent as replyTo, kept with the message until confirmed.
    alice.reply(conv, 2);
    assert.deepEqual(conv.replyTo.value, { id: 2, from: "bob", snippet: "theirs" });
    from = fake.received.length;
    assert.equal(alice.send("answering", conv, conv.replyTo.value), null);
    const send = await fake.next("send", from);
    assert.equal(send.replyTo, 2);
    await waitUntil(() => conv.messages.value.at(-1)?.text === "answering", "the reply is stored");
    assert.deepEqual(conv.messages.value.at(-1)!.replyTo, {
      id: 2,
      from: "bob",
      snippet: "theirs",
    });
    // Refused for good: Retry sends it again as a reply.
    alice.send("refuse me", conv, { id: 2, from: "bob", snippet: "theirs" });
    await waitUntil(() => conv.pending.value[0]?.state === "failed", "refused");
    assert.deepEqual(conv.pending.value[0].replyTo, { id: 2, from: "bob", snippet: "theirs" });
    from = fake.received.length;
    alice.resend(conv, conv.pending.value[0].ref);
    assert.equal((await fake.next("send", from)).replyTo, 2);

    // Refusals, in the user's words; the connection goes on.
    alice.edit(conv, 2, "not mine");
    await waitUntil(
      () => alice.toasts.value.some((t) => t.text === "You can only edit your own messages"),
      "forbidden",
    );
    alice.react(conv, 2, "🚀");
    await waitUntil(
      () =>
        alice.toasts.value.some((t) =>
          t.text === "A message can have at most 20 different reactions"
        ),
      "too many",
    );
    assert.equal(alice.ready.value, true);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel shows the server's unread count until the loaded history reaches the read marker", async () => {
  const page = Array.from({ length: 50 }, (_, i) => msg(451 + i * 2, "bob", `m${451 + i * 2}`));
  const fake = standIn(
    {
      rooms: ["general"],
      // Ids skip the positions reactions took: last - read would say 449.
      conversations: [{ room: "general", last: 549, read: 100, seq: 560, unread: 37 }],
    },
    (f, reply) => {
      if (f.type === "join") {
        reply({
          type: "joined",
          room: "general",
          members: ["alice", "bob"],
          history: page,
          seq: 560,
        });
      }
    },
  );
  const alice = new ChatModel({ origin: fake.http, storage: new MemoryStorage() });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    const conv = alice.convs.value.get("#general")!;
    alice.setVisible(false);
    assert.equal(conv.unread.value, 37);
    fake.push({ type: "message", ...msg(561, "bob", "one more") });
    fake.push({ type: "message", ...msg(562, "alice", "mine") });
    fake.push({
      type: "reaction",
      room: "general",
      id: 561,
      emoji: "👍",
      user: "bob",
      on: true,
      seq: 563,
    });
    await waitUntil(() => conv.cursor === 563, "all in");
    assert.equal(conv.unread.value, 38, "one new message from someone else");
    // Read up to a loaded message on another device: now counted from what is here.
    fake.push({ type: "read", room: "general", id: 541 });
    await waitUntil(() => conv.read.value === 541, "the marker moved");
    assert.equal(conv.unread.value, 5, "543, 545, 547, 549 and 561");
  } finally {
    alice.close();
    await fake.close();
  }
});

// ---------------------------------------------------------------------------
// Files

/** A 1×1 PNG. */
const PNG = Uint8Array.from(
  atob(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==",
  ),
  (c) => c.charCodeAt(0),
);

/**
 * An uploader that holds each upload until the test lets it go (then sends
 * it for real), recording aborts.
 */
function heldUploader() {
  const held: { name: string; go: () => void; aborted: boolean }[] = [];
  const upload: Uploader = (req) => {
    const gate = Promise.withResolvers<void>();
    const entry = {
      name: new URL(req.url).searchParams.get("name") ?? "",
      go: () => gate.resolve(),
      aborted: false,
    };
    held.push(entry);
    let inner: ReturnType<Uploader> | null = null;
    const aborted = Promise.withResolvers<UploadResponse>();
    const done = Promise.race([
      gate.promise.then(() => {
        if (entry.aborted) return aborted.promise;
        inner = fetchUploader(req);
        return inner.done;
      }),
      aborted.promise,
    ]);
    return {
      done,
      abort: () => {
        entry.aborted = true;
        inner?.abort();
        aborted.resolve({ status: 0, text: "aborted" });
      },
    };
  };
  return { held, upload };
}

Deno.test("uploads.ts words and numbers: sizes, boxes, kinds, refusals", () => {
  assert.equal(humanSize(0), "0 bytes");
  assert.equal(humanSize(1), "1 byte");
  assert.equal(humanSize(999), "999 bytes");
  assert.equal(humanSize(1000), "1 KB");
  assert.equal(humanSize(2_450), "2.5 KB");
  assert.equal(humanSize(25_000_000), "25 MB");
  assert.equal(humanSize(999_999), "1 MB");
  assert.equal(humanSize(1_234_567_890), "1.2 GB");
  assert.deepEqual(fitBox(800, 600), { width: 360, height: 270 });
  assert.deepEqual(fitBox(600, 1200), { width: 140, height: 280 });
  assert.deepEqual(fitBox(40, 30), { width: 40, height: 30 }, "never scaled up");
  assert.deepEqual(fitBox(10_000, 1), { width: 360, height: 1 }, "at least a pixel");
  assert.equal(fileKind("application/pdf", "x"), "pdf");
  assert.equal(fileKind("application/octet-stream", "Budget.XLSX"), "sheet");
  assert.equal(fileKind("application/zip", "a.docx"), "archive");
  assert.equal(fileKind("application/octet-stream", "notes"), "file");
  assert.equal(fileKind("text/plain", "notes"), "text");
  assert.equal(fileKind("image/png", "a.txt"), "image");
  assert.deepEqual(
    uploadProblem({ status: 413, text: "The file is larger than 25 MB, this chat's limit" }),
    { text: "The file is larger than 25 MB, this chat's limit", retry: false },
  );
  assert.equal(uploadProblem({ status: 413, text: "" }).text, "Too large for this chat");
  assert.equal(uploadProblem({ status: 400, text: "The file is empty" }).text, "The file is empty");
  assert.deepEqual(uploadProblem({ status: 0, text: "" }), {
    text: "The upload failed: check your connection and retry",
    retry: true,
  });
  assert.equal(uploadProblem({ status: 507, text: "" }).retry, true);
  assert.match(uploadProblem({ status: 401, text: "x" }).text, /^Your session has ended/);
  assert.equal(uploadProblem({ status: 429, text: "" }).retry, true);
  assert.match(uploadProblem({ status: 502, text: "<html>" }).text, /error 502/);
  const id = "A".repeat(22);
  assert.deepEqual(checkFileInfo({ id, name: "a", size: 1, type: "t", width: 2, height: 3 }), {
    id,
    name: "a",
    size: 1,
    type: "t",
    width: 2,
    height: 3,
  });
  assert.equal(checkFileInfo({ id: "short", name: "a", size: 1, type: "t" }), null);
  assert.equal(checkFileInfo({ id, name: "a", size: -1, type: "t" }), null);
  assert.deepEqual(checkFileInfo({ id, name: "a", size: 1, type: "t", width: 0, height: 3 }), {
    id,
    name: "a",
    size: 1,
    type: "t",
  }, "no half a size");
});

Deno.test("ChatModel.attach() uploads, submit() sends the text with the files; the other side gets them signed for it", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    const conv = alice.convs.value.get("#general")!;
    alice.attach(conv, [
      new File([PNG], "dot.png", { type: "image/png" }),
      new File(["hello"], "notes.txt", { type: "text/plain" }),
    ]);
    const list = () => alice.uploads.value.get("#general") ?? [];
    assert.deepEqual(list().map((u) => [u.name, u.state]), [
      ["dot.png", "uploading"],
      ["notes.txt", "uploading"],
    ]);
    await waitUntil(() => list().every((u) => u.state === "done"), "both uploaded");
    const [png, txt] = list().map((u) => u.file!);
    assert.equal(png.type, "image/png");
    assert.deepEqual([png.width, png.height], [1, 1]);
    assert.equal(txt.size, 5);
    conv.draft.value = "two files";
    assert.equal(alice.submit(conv), null);
    assert.equal(conv.draft.value, "", "the composer is empty");
    assert.equal(list().length, 0, "and so are its files");
    assert.deepEqual(conv.pending.value[0].files?.map((f) => f.name), ["dot.png", "notes.txt"]);
    const got = () => bob.convs.value.get("#general")!.messages.value.at(-1);
    await waitUntil(() => got()?.text === "two files", "bob gets it");
    const files = got()!.files!;
    assert.deepEqual(files.map((f) => f.id), [png.id, txt.id]);
    assert.match(files[0].url!, /[?&]v=bob&/, "signed for bob");
    const res = await fetch(t.http + files[0].url);
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), PNG);
    await waitUntil(() => conv.pending.value.length === 0, "alice's copy confirmed");
    assert.equal(conv.messages.value.at(-1)!.files!.length, 2);

    // Files alone: no text at all.
    alice.attach(conv, [new File(["x"], "x.bin")]);
    await waitUntil(() => list()[0]?.state === "done", "uploaded");
    conv.draft.value = "  ";
    assert.equal(alice.submit(conv), null);
    await waitUntil(() => got()?.files?.[0].name === "x.bin", "bob gets the file");
    assert.equal(got()!.text, "");
  } finally {
    alice.close();
    bob.close();
  }
});

Deno.test("ChatModel.submit() waits for uploads on their way; removeUpload() cancels one", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const { held, upload } = heldUploader();
  const m = new ChatModel({ origin: t.http, storage: new MemoryStorage(), upload });
  const bob = await signedIn(t, "bob");
  try {
    await m.start();
    m.signIn("alice", PASSWORDS.alice);
    await waitUntil(() => m.convs.value.get("#general")?.loaded.value, "alice is in");
    const conv = m.convs.value.get("#general")!;
    const list = () => m.uploads.value.get("#general") ?? [];
    m.attach(conv, [new File(["a"], "a.txt"), new File(["b"], "b.txt")]);
    await waitUntil(() => held.length === 2, "both started");
    // Cancelled: aborted and gone.
    m.removeUpload(conv, list()[1].key);
    assert.equal(held[1].aborted, true);
    assert.deepEqual(list().map((u) => u.name), ["a.txt"]);
    conv.draft.value = "with a file";
    assert.equal(m.submit(conv), null);
    assert.equal(m.sendWaiting.value.has("#general"), true, "waits for the upload");
    assert.equal(conv.draft.value, "with a file", "the text stays meanwhile");
    assert.equal(conv.pending.value.length, 0);
    held[0].go();
    const got = () => bob.convs.value.get("#general")!.messages.value.at(-1);
    await waitUntil(() => got()?.text === "with a file", "sent once uploaded");
    assert.deepEqual(got()!.files!.map((f) => f.name), ["a.txt"]);
    assert.equal(m.sendWaiting.value.size, 0);
    assert.equal(conv.draft.value, "");

    // More than a message carries: the rest are left out, with a word.
    m.attach(conv, Array.from({ length: 12 }, (_, i) => new File(["z"], `f${i}.txt`)));
    assert.equal(list().length, 10);
    assert.match(m.toasts.value.at(-1)!.text, /at most 10 files: the other 2 were left out/);
    // At most 3 go at once (the server takes 4 per user).
    await waitUntil(() => held.length === 5, "three more started");
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(held.length, 5, "no more than three at a time");
    for (const u of list()) m.removeUpload(conv, u.key);
    assert.equal(list().length, 0);
    assert.equal(held.slice(2).every((h) => h.aborted), true);
  } finally {
    m.close();
    bob.close();
  }
});

Deno.test("ChatModel.attach() says why a file cannot go: too large (before any upload), empty", async () => {
  await using t = await startTestServer({
    users: await hashedUsers(),
    args: ["--max-upload", "1KB"],
  });
  const alice = await signedIn(t, "alice");
  try {
    const conv = alice.convs.value.get("#general")!;
    alice.attach(conv, [new File([new Uint8Array(5000)], "big.bin"), new File([], "empty.txt")]);
    const list = () => alice.uploads.value.get("#general") ?? [];
    assert.equal(list()[1].state, "failed");
    assert.equal(list()[1].error, "This file is empty");
    await waitUntil(() => list()[0].state === "failed", "refused");
    // Known from /api/info's maxUpload: refused without sending a byte.
    assert.equal(list()[0].error, "big.bin is 5 KB: more than this chat's 1 KB limit");
    assert.equal(list()[0].retry, false);
    conv.draft.value = "look";
    assert.equal(alice.submit(conv), "2 files cannot be sent: remove them to send the rest");
    assert.equal(conv.pending.value.length, 0, "nothing sent");
    for (const u of list()) alice.removeUpload(conv, u.key);
    assert.equal(alice.submit(conv), null);
    await waitUntil(() => conv.messages.value.at(-1)?.text === "look", "the text alone goes");
  } finally {
    alice.close();
  }
});

Deno.test("ChatModel keeps an unsent message's files across a reload and sends them once; expired files say so", async () => {
  await using t = await startTestServer({ users: await hashedUsers() });
  const storage = new MemoryStorage();
  const bob = await signedIn(t, "bob");
  const first = await signedIn(t, "alice", storage);
  let second: ChatModel | null = null;
  try {
    const conv = first.convs.value.get("#general")!;
    first.attach(conv, [new File([PNG], "dot.png", { type: "image/png" })]);
    await waitUntil(
      () => first.uploads.value.get("#general")?.[0].state === "done",
      "uploaded",
    );
    const file = first.uploads.value.get("#general")![0].file!;
    conv.draft.value = "sent before a reload";
    assert.equal(first.submit(conv), null);
    // The page goes while the message is on its way: saved with its files.
    first.close();
    const saved = loadUnsent(storage, "alice").get("#general")!;
    assert.deepEqual(saved.map((p) => p.files?.map((f) => f.id)), [[file.id]]);

    second = model(t, storage);
    const started = second.start();
    const general = second.convs.value.get("#general")!;
    assert.deepEqual(general.pending.value[0].files?.map((f) => f.name), ["dot.png"]);
    await started;
    // Sent again with the same ref and files: the server answers with the stored copy.
    await waitUntil(
      () => second!.ready.value && general.pending.value.length === 0,
      "confirmed after the reload",
    );
    const got = () => bob.convs.value.get("#general")!.messages.value;
    await waitUntil(() => got().some((m) => m.text === "sent before a reload"), "bob has it");
    assert.equal(got().filter((x) => x.text === "sent before a reload").length, 1, "stored once");
    const m = general.messages.value.find((x) => x.text === "sent before a reload")!;
    assert.deepEqual(m.files!.map((f) => f.id), [file.id]);
    assert.equal(storage.getItem("chat.unsent.alice"), null, "nothing unsent is left");

    // Files the server no longer has (or never gave this user): not sent, in words.
    const conv2 = general;
    conv2.pending.value = [{
      ref: "w-expired-files",
      text: "",
      ts: new Date().toISOString(),
      state: "failed",
      error: "",
      files: [{ ...file, id: "B".repeat(22) }],
    }];
    second.resend(conv2, "w-expired-files");
    assert.equal(conv2.pending.value[0].state, "sending");
    await waitUntil(() => conv2.pending.value[0]?.state === "failed", "refused");
    assert.match(conv2.pending.value[0].error!, /^Its files are no longer on the server/);
  } finally {
    first.close();
    second?.close();
    bob.close();
  }
});

Deno.test("isImage(): a picture that claims too many pixels is a file card, not a preview", () => {
  const png = { type: "image/png" };
  assert.equal(isImage({ ...png, width: 4000, height: 3000 }), true);
  assert.equal(isImage({ ...png, width: 7071, height: 7071 }), true, "50 MP");
  assert.equal(isImage({ ...png, width: 30000, height: 30000 }), false, "a decompression bomb");
  assert.equal(isImage({ ...png, width: 2147483647, height: 2147483647 }), false);
  assert.equal(isImage({ type: "image/png" }), false, "no size: not previewed");
  assert.equal(isImage({ type: "image/heic", width: 10, height: 10 }), false);
});

// ---------------------------------------------------------------------------
// Renaming a room (issue 17), against a stand-in server that plays the frames

/** A message of room `room` (see {@link msg}). */
function roomMsg(room: string, id: number, from: string, text: string): ChatMessage {
  return msg(id, from, text, { room });
}

/**
 * The stand-in's answer to `join` (and to `history` with `since`): each
 * room's members and history, as `rooms` says, at most `page` messages a
 * reply as the server pages them — the newest ones for a plain join, the
 * next ones by `seq` after a `since`, with `more` while some are left.
 */
function joinAnswer(
  rooms: Record<string, { history: ChatMessage[]; topic?: string; private?: true }>,
  page = Infinity,
) {
  return (f: ClientFrame & { ref?: string }, reply: (frame: ServerFrame) => void) => {
    if (f.type !== "join" && !(f.type === "history" && f.since !== undefined)) return;
    if (f.room === undefined) return;
    const room = rooms[f.room];
    if (!room) return;
    const last = room.history.at(-1)?.seq ?? 0;
    let messages = page === Infinity ? room.history : room.history.slice(-page);
    let more = false;
    if (f.since !== undefined) {
      const after = room.history.filter((m) => (m.seq ?? m.id) > f.since!);
      messages = after.slice(0, page);
      more = after.length > messages.length;
    }
    const seq = more ? messages.at(-1)!.seq! : last;
    if (f.type === "history") {
      reply({ type: "history", room: f.room, messages, more, seq });
      return;
    }
    reply({
      type: "joined",
      room: f.room,
      members: ["alice", "bob"],
      history: messages,
      ...(more ? { more } : {}),
      seq,
      ...(room.topic ? { topic: room.topic } : {}),
      ...(room.private ? { private: true } : {}),
    });
  };
}

Deno.test("ChatModel moves everything of a renamed room to its new name", async () => {
  const storage = new MemoryStorage();
  const plans = [
    roomMsg("plans", 1, "bob", "one"),
    roomMsg("plans", 2, "bob", "two"),
    roomMsg("plans", 3, "bob", "three"),
  ];
  const answer = joinAnswer({
    general: { history: [] },
    plans: { history: plans, topic: "Q3", private: true },
  });
  const fake = standIn(
    {
      rooms: ["general", "plans"],
      conversations: [
        { room: "general", last: 0, read: 0, seq: 0, unread: 0 },
        { room: "plans", last: 3, read: 1, seq: 3, unread: 2 },
      ],
    },
    answer,
  );
  const alice = new ChatModel({ origin: fake.http, storage });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#plans")?.loaded.value, "plans is loaded");
    // Hidden: nothing is marked read, so the unread count must survive the rename as it is.
    alice.setVisible(false);
    alice.open("#plans");
    const conv = alice.convs.value.get("#plans")!;
    assert.equal(conv.unread.value, 2);
    conv.draft.value = "half a thought";
    alice.send("on its way");
    const sent = await fake.next("send");
    assert.equal(sent.room, "plans");
    fake.push({ type: "typing", room: "plans", user: "bob", active: true });
    await waitUntil(() => conv.typing.value.has("bob"), "bob is typing");
    alice.runSearch("two", "here");
    assert.equal(alice.search.value?.key, "#plans");
    alice.saveDrafts();
    assert.match(storage.getItem("chat.drafts.alice") ?? "", /"#plans"/);

    fake.push({ type: "room_renamed", room: "plans", name: "ideas", by: "bob" });
    await waitUntil(() => alice.convs.value.has("#ideas"), "the room is under its new name");

    assert.deepEqual([...alice.convs.value.keys()].sort(), ["#general", "#ideas"]);
    assert.equal(alice.convs.value.get("#ideas"), conv, "the same conversation, renamed");
    assert.equal(conv.key, "#ideas");
    assert.equal(conv.name, "ideas");
    assert.deepEqual(conv.target, { room: "ideas" });
    assert.deepEqual(alice.rooms.value.map((c) => c.name), ["general", "ideas"]);
    assert.deepEqual(conv.messages.value.map((m) => [m.id, m.room]), [
      [1, "ideas"],
      [2, "ideas"],
      [3, "ideas"],
    ]);
    assert.equal(conv.unread.value, 2);
    assert.equal(conv.read.value, 1);
    assert.equal(conv.draft.value, "half a thought");
    assert.deepEqual(conv.pending.value.map((p) => p.text), ["on its way"]);
    assert.deepEqual(conv.members.value, ["alice", "bob"]);
    assert.equal(conv.topic.value, "Q3");
    assert.deepEqual(conv.settings.value, { private: true });
    assert.equal(conv.typing.value.size, 0, "typing flags were for the old name");
    assert.equal(alice.active.value, "#ideas");
    assert.equal(alice.current.value, conv);
    assert.equal(storage.getItem("chat.active.alice"), "#ideas");
    assert.equal(alice.search.value?.key, "#ideas");
    assert.deepEqual(conv.notices.value.map((n) => [n.kind, n.text, n.after]), [
      ["rename", "bob renamed #plans to #ideas", 3],
    ]);
    assert.ok(alice.toasts.value.some((t) => t.text === "bob renamed #plans to #ideas"));
    // The draft and the unsent message are kept under the new key only.
    await waitUntil(
      () => /"#ideas"/.test(storage.getItem("chat.drafts.alice") ?? ""),
      "the draft is saved under the new name",
    );
    assert.doesNotMatch(storage.getItem("chat.drafts.alice")!, /"#plans"/);
    assert.deepEqual([...loadUnsent(storage, "alice").keys()], ["#ideas"]);

    // Links to the old name follow the rename for as long as the page knows it.
    assert.equal(alice.movedLink("#/plans/2"), "#/ideas/2");
    assert.equal(alice.movedLink("#/plans"), "#/ideas");
    assert.equal(alice.movedLink("#/general"), null);
    alice.open("#general");
    assert.equal(alice.followLink("#/plans"), true);
    assert.equal(alice.active.value, "#ideas");
    assert.equal(alice.convs.value.has("#plans"), false, "no room of the old name appears");
    // So does a key of the old name (a notification shown before the rename, clicked after).
    alice.open("#general");
    alice.open("#plans");
    assert.equal(alice.active.value, "#ideas");

    // The send raced the rename and was refused for the old name: it goes again, same ref.
    const before = fake.received.length;
    fake.push({ type: "error", code: "unknown_room", message: "No room plans", ref: sent.ref });
    const again = await fake.next("send", before);
    assert.deepEqual([again.room, again.ref, again.text], ["ideas", sent.ref, "on its way"]);
    fake.push({ type: "message", ...roomMsg("ideas", 4, "alice", "on its way"), ref: sent.ref });
    await waitUntil(() => conv.pending.value.length === 0, "the message is confirmed");
    // A frame about the old name that was on its way lands in the renamed room.
    fake.push({ type: "message", ...roomMsg("plans", 5, "bob", "late") });
    await waitUntil(() => conv.newest === 5, "the late message is in #ideas");
    assert.equal(alice.convs.value.has("#plans"), false);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel.renameRoom() sends rename_room and settles with the server's answer or words", async () => {
  const fake = standIn(
    {
      rooms: ["general", "plans"],
      conversations: [],
    },
    (f, reply) => {
      joinAnswer({ general: { history: [] }, plans: { history: [] } })(f, reply);
      if (f.type !== "rename_room") return;
      if (f.name === "general") {
        reply({
          type: "error",
          code: "name_taken",
          message: 'There is a room "general" already',
          ref: f.ref,
        });
      } else reply({ type: "room_renamed", room: f.room, name: f.name, by: "alice", ref: f.ref });
    },
  );
  const alice = new ChatModel({ origin: fake.http, storage: new MemoryStorage() });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#plans")?.loaded.value, "plans is loaded");
    await assert.rejects(alice.renameRoom("plans", "Bad name"), /Invalid room name "Bad name"/);
    await assert.rejects(alice.renameRoom("plans", "plans"), /#plans has that name already/);
    assert.equal(fake.received.filter((f) => f.type === "rename_room").length, 0);
    await assert.rejects(alice.renameRoom("plans", "general"), /There is a room "general" already/);
    const f = await alice.renameRoom("plans", "ideas");
    assert.deepEqual([f.room, f.name, f.by], ["plans", "ideas", "alice"]);
    const sent = fake.received.filter((x) => x.type === "rename_room");
    assert.deepEqual(
      sent.map((x) => [x.type === "rename_room" && x.room, x.type === "rename_room" && x.name]),
      [
        ["plans", "general"],
        ["plans", "ideas"],
      ],
    );
    // The answer moved the room in this app too, once.
    assert.deepEqual(alice.rooms.value.map((c) => c.name), ["general", "ideas"]);
    assert.equal(alice.convs.value.get("#ideas")!.notices.value.length, 1);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel moves a room renamed while it was away (welcome.renamed): the same conversation, resumed, with all it held", async () => {
  const storage = new MemoryStorage();
  const plans = [roomMsg("plans", 1, "bob", "one"), roomMsg("plans", 2, "bob", "two")];
  const old = [roomMsg("old", 1, "bob", "from a room alice left elsewhere")];
  const welcome: Pick<WelcomeFrame, "rooms" | "conversations" | "renamed"> = {
    rooms: ["general", "plans", "old"],
    conversations: [
      { room: "plans", last: 2, read: 2, seq: 2, unread: 0 },
      { room: "old", last: 1, read: 1, seq: 1, unread: 0 },
    ],
  };
  const rooms: Parameters<typeof joinAnswer>[0] = {
    general: { history: [] },
    plans: { history: plans },
    old: { history: old },
  };
  const fake = standIn(welcome, (f, reply) => joinAnswer(rooms)(f, reply));
  const alice = new ChatModel({ origin: fake.http, storage, backoff: 50, maxBackoff: 100 });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#old")?.loaded.value, "old is loaded");
    alice.open("#plans");
    const conv = alice.convs.value.get("#plans")!;
    conv.draft.value = "still typing";
    alice.reply(conv, 1);
    alice.attach(conv, [new File([], "empty.txt")]);
    assert.equal(alice.uploads.value.get("#plans")?.length, 1);
    // Never answered: on its way when the connection drops.
    alice.send("written before the rename");
    const sent = await fake.next("send");

    // While the device is away, plans becomes ideas (it was brainstorm before that, which
    // this device never knew), bob writes in it, and alice leaves old on another device.
    welcome.rooms = ["general", "ideas"];
    welcome.conversations = [{ room: "ideas", last: 3, read: 2, seq: 3, unread: 1 }];
    welcome.renamed = [{ room: "plans", name: "ideas" }, { room: "brainstorm", name: "ideas" }];
    rooms.ideas = {
      history: [...plans.map((m) => ({ ...m, room: "ideas" })), roomMsg("ideas", 3, "bob", "new")],
    };
    delete rooms.plans;
    const before = fake.received.length;
    fake.drop();

    const again = await fake.next("send", before);
    assert.deepEqual([again.room, again.ref, again.text], [
      "ideas",
      sent.ref,
      "written before the rename",
    ]);
    // Resumed from where the device was, under the new name; nothing asked of the old one.
    const joins = fake.received.slice(before).filter((f) => f.type === "join");
    assert.deepEqual(joins.map((f) => f.type === "join" && [f.room, f.since]).sort(), [
      ["general", 0],
      ["ideas", 2],
    ]);
    assert.equal(alice.convs.value.get("#ideas"), conv, "the same conversation, renamed");
    assert.deepEqual([...alice.convs.value.keys()].sort(), ["#general", "#ideas"], "no ghost");
    assert.deepEqual(alice.rooms.value.map((c) => c.name), ["general", "ideas"]);
    assert.equal(alice.active.value, "#ideas");
    assert.equal(storage.getItem("chat.active.alice"), "#ideas");
    assert.equal(conv.draft.value, "still typing");
    assert.equal(conv.replyTo.value?.id, 1);
    assert.deepEqual(alice.uploads.value.get("#ideas")?.map((u) => u.name), ["empty.txt"]);
    assert.equal(alice.uploads.value.has("#plans"), false);
    assert.deepEqual(conv.messages.value.map((m) => [m.id, m.room, m.text]), [
      [1, "ideas", "one"],
      [2, "ideas", "two"],
      [3, "ideas", "new"],
    ]);
    assert.equal(conv.unread.value, 1);
    // The line sits where the device left off: before what came while it was away.
    assert.deepEqual(conv.notices.value.map((n) => [n.kind, n.text, n.after]), [
      ["rename", "#plans was renamed to #ideas while you were away", 2],
    ]);
    assert.equal(alice.toasts.value.length, 0);
    // Old links follow, an older name of the room's too; a room left is not taken for it.
    assert.equal(alice.movedLink("#/plans/1"), "#/ideas/1");
    assert.equal(alice.movedLink("#/brainstorm"), "#/ideas");
    assert.equal(alice.movedLink("#/old"), null);
    await waitUntil(
      () => /"#ideas"/.test(storage.getItem("chat.drafts.alice") ?? ""),
      "the draft is saved under the new name",
    );
    assert.doesNotMatch(storage.getItem("chat.drafts.alice")!, /"#plans"/);
    assert.deepEqual([...loadUnsent(storage, "alice").keys()], ["#ideas"]);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel moves an empty room renamed while it was away: the draft, an unsent message and the open room follow", async () => {
  const storage = new MemoryStorage();
  const welcome: Pick<WelcomeFrame, "rooms" | "conversations" | "renamed"> = {
    rooms: ["general", "plans"],
    conversations: [{ room: "plans", last: 0, read: 0, seq: 0, unread: 0 }],
  };
  const rooms: Parameters<typeof joinAnswer>[0] = {
    general: { history: [] },
    plans: { history: [] },
  };
  const fake = standIn(welcome, (f, reply) => joinAnswer(rooms)(f, reply));
  const alice = new ChatModel({ origin: fake.http, storage, backoff: 50, maxBackoff: 100 });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#plans")?.loaded.value, "plans is loaded");
    alice.open("#plans");
    const conv = alice.convs.value.get("#plans")!;
    assert.equal(conv.newest, 0, "nothing was ever said in it");
    conv.draft.value = "the first words";
    alice.send("the first message");
    const sent = await fake.next("send");

    welcome.rooms = ["general", "ideas"];
    welcome.conversations = [{ room: "ideas", last: 0, read: 0, seq: 0, unread: 0 }];
    welcome.renamed = [{ room: "plans", name: "ideas" }];
    rooms.ideas = { history: [] };
    delete rooms.plans;
    const before = fake.received.length;
    fake.drop();

    const again = await fake.next("send", before);
    assert.deepEqual([again.room, again.ref, again.text], ["ideas", sent.ref, "the first message"]);
    assert.equal(alice.convs.value.get("#ideas"), conv);
    assert.deepEqual([...alice.convs.value.keys()].sort(), ["#general", "#ideas"]);
    assert.equal(alice.active.value, "#ideas");
    assert.equal(conv.draft.value, "the first words");
    assert.deepEqual(conv.pending.value.map((p) => p.text), ["the first message"]);
    assert.deepEqual(conv.notices.value.map((n) => [n.text, n.after]), [
      ["#plans was renamed to #ideas while you were away", 0],
    ]);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel moves a room renamed while it was away when more than a page came meanwhile: every message, no gap", async () => {
  const storage = new MemoryStorage();
  const PAGE = 50;
  const plans = [roomMsg("plans", 1, "bob", "m1"), roomMsg("plans", 2, "bob", "m2")];
  const welcome: Pick<WelcomeFrame, "rooms" | "conversations" | "renamed"> = {
    rooms: ["general", "plans"],
    conversations: [{ room: "plans", last: 2, read: 2, seq: 2, unread: 0 }],
  };
  const rooms: Parameters<typeof joinAnswer>[0] = {
    general: { history: [] },
    plans: { history: plans },
  };
  const fake = standIn(welcome, (f, reply) => joinAnswer(rooms, PAGE)(f, reply));
  const alice = new ChatModel({ origin: fake.http, storage, backoff: 50, maxBackoff: 100 });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#plans")?.loaded.value, "plans is loaded");
    alice.open("#plans");
    const conv = alice.convs.value.get("#plans")!;
    conv.draft.value = "kept through it all";

    // 120 messages while away: the newest page no longer holds anything the device had.
    const ideas: ChatMessage[] = plans.map((m) => ({ ...m, room: "ideas" }));
    for (let id = 3; id <= 122; id++) ideas.push(roomMsg("ideas", id, "bob", `m${id}`));
    welcome.rooms = ["general", "ideas"];
    welcome.conversations = [{ room: "ideas", last: 122, read: 2, seq: 122, unread: 120 }];
    welcome.renamed = [{ room: "plans", name: "ideas" }];
    rooms.ideas = { history: ideas };
    delete rooms.plans;
    const before = fake.received.length;
    fake.drop();

    await waitUntil(() => conv.newest === 122 && !conv.resuming, "caught up under the new name");
    const asked = fake.received.slice(before).filter((f) =>
      (f.type === "join" || f.type === "history") && f.room === "ideas"
    );
    assert.deepEqual(asked.map((f) => [f.type, "since" in f ? f.since : undefined]), [
      ["join", 2],
      ["history", 52],
      ["history", 102],
    ]);
    assert.equal(alice.convs.value.get("#ideas"), conv);
    assert.deepEqual([...alice.convs.value.keys()].sort(), ["#general", "#ideas"]);
    assert.deepEqual(ids(alice, "#ideas"), Array.from({ length: 122 }, (_, i) => i + 1));
    assert.equal(conv.unread.value, 120);
    assert.equal(conv.draft.value, "kept through it all");
    assert.equal(alice.active.value, "#ideas");
    assert.deepEqual(conv.notices.value.map((n) => [n.kind, n.after]), [["rename", 2]]);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel after a reload opens a room renamed meanwhile under its new name, with its draft and old links", async () => {
  const storage = new MemoryStorage();
  const plans = [roomMsg("plans", 1, "bob", "one")];
  const welcome: Pick<WelcomeFrame, "rooms" | "conversations" | "renamed"> = {
    rooms: ["general", "plans"],
    conversations: [{ room: "plans", last: 1, read: 1, seq: 1, unread: 0 }],
  };
  const rooms: Parameters<typeof joinAnswer>[0] = {
    general: { history: [] },
    plans: { history: plans },
  };
  const fake = standIn(welcome, (f, reply) => joinAnswer(rooms)(f, reply));
  const first = new ChatModel({ origin: fake.http, storage });
  let second: ChatModel | null = null;
  let third: ChatModel | null = null;
  try {
    await first.start();
    first.signIn("alice", "pw");
    await waitUntil(() => first.convs.value.get("#plans")?.loaded.value, "plans is loaded");
    first.open("#plans");
    first.convs.value.get("#plans")!.draft.value = "typed before the reload";
    first.saveDrafts();
    first.close();

    welcome.rooms = ["general", "ideas"];
    welcome.conversations = [{ room: "ideas", last: 1, read: 1, seq: 1, unread: 0 }];
    welcome.renamed = [{ room: "plans", name: "ideas" }];
    rooms.ideas = { history: plans.map((m) => ({ ...m, room: "ideas" })) };
    delete rooms.plans;

    second = new ChatModel({ origin: fake.http, storage });
    await second.start();
    await waitUntil(() => second!.convs.value.get("#ideas")?.loaded.value, "ideas is loaded");
    const conv = second.convs.value.get("#ideas")!;
    assert.deepEqual([...second.convs.value.keys()].sort(), ["#general", "#ideas"]);
    assert.equal(second.active.value, "#ideas");
    assert.equal(conv.draft.value, "typed before the reload");
    assert.deepEqual(conv.messages.value.map((m) => m.text), ["one"]);
    assert.deepEqual(conv.notices.value.map((n) => n.text), [
      "#plans was renamed to #ideas while you were away",
    ]);
    // The old address, opened now, is the room's new one.
    second.open("#general");
    assert.equal(second.followLink("#/plans/1"), true);
    assert.equal(second.active.value, "#ideas");
    second.close();

    // So is a page opened at the old address: the link waits for the welcome that explains it.
    storage.setItem("chat.active.alice", "#general");
    third = new ChatModel({ origin: fake.http, storage });
    assert.equal(third.followLink("#/plans/1"), true);
    await third.start();
    await waitUntil(() => third!.convs.value.get("#ideas")?.loaded.value, "ideas is loaded");
    assert.equal(third.active.value, "#ideas");
    assert.equal(third.movedLink("#/plans/1"), "#/ideas/1");
    assert.equal(third.convs.value.has("#plans"), false);
  } finally {
    first.close();
    second?.close();
    third?.close();
    await fake.close();
  }
});

Deno.test("Conversation: a page's whole message wins over a held copy at the same position, and a change that came before its message is applied when it comes", async () => {
  const { Conversation } = await import("../web/conversation.ts");
  const { signal } = await import("@preact/signals");
  const c = new Conversation("#r", signal("ann"));
  const msg = (id: number, seq: number, text: string, extra: Record<string, unknown> = {}) => ({
    id,
    seq,
    room: "r",
    from: "ben",
    text,
    ts: "2026-12-07T00:00:00.000Z",
    ...extra,
  });
  // Held at position 5; an edit at 9 was missed; a reaction at 12 arrives live on the stale copy.
  c.add([msg(1, 1, "one"), msg(2, 5, "old text")]);
  c.change({ type: "reaction", room: "r", id: 2, emoji: "👍", user: "cat", on: true, seq: 12 });
  assert.equal(c.messages.value[1].seq, 12);
  assert.equal(c.messages.value[1].text, "old text");
  // The catch-up page brings the message as it is, at the same position: it wins.
  c.add([
    msg(2, 12, "new text", { edited: "2026-12-07T00:01:00.000Z", reactions: { "👍": ["cat"] } }),
  ]);
  assert.equal(c.messages.value[1].text, "new text");
  // A change of a message not held yet (its page is on its way, read before the change).
  c.change({ type: "edited", room: "r", id: 3, text: "third, edited", editedAt: "x", seq: 20 });
  c.change({ type: "reaction", room: "r", id: 3, emoji: "🎉", user: "ann", on: true, seq: 21 });
  c.add([msg(3, 14, "third")]);
  assert.deepEqual(
    [c.messages.value[2].text, c.messages.value[2].seq, c.messages.value[2].reactions],
    ["third, edited", 21, { "🎉": ["ann"] }],
  );
  // A page that brings it in a later state than the held change: the change is not applied again.
  c.change({ type: "edited", room: "r", id: 4, text: "stale edit", editedAt: "y", seq: 22 });
  c.add([msg(4, 30, "fresher")]);
  assert.equal(c.messages.value[3].text, "fresher");
});

/** A stand-in whose `#general` join answers with an empty room. */
function generalStandIn(welcome: Parameters<typeof standIn>[0] = {
  rooms: ["general"],
  conversations: [],
}) {
  return standIn(welcome, (f, reply) => {
    if (f.type === "join") {
      reply({ type: "joined", room: "general", members: ["alice", "bob"], history: [], seq: 0 });
    }
  });
}

for (const how of ["throws", "rejects"] as const) {
  Deno.test(`ChatModel applies every frame of a batch when notify ${how}`, async () => {
    const fake = generalStandIn();
    const tried: string[] = [];
    const alice = new ChatModel({
      origin: fake.http,
      storage: new MemoryStorage(),
      // As `new Notification()` does on Android Chrome, or a refused showNotification.
      notify(alert) {
        tried.push(alert.body);
        if (how === "throws") throw new TypeError("Illegal constructor");
        return Promise.reject(new TypeError("No active registration"));
      },
    });
    // deno-lint-ignore no-console
    const warn = console.warn;
    const warned: unknown[] = [];
    // deno-lint-ignore no-console
    console.warn = (...args: unknown[]) => warned.push(args[0]);
    try {
      await alice.start();
      alice.signIn("alice", "pw");
      await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
      alice.setVisible(false);
      fake.pushBatch([1, 2, 3].map((id) => ({
        type: "message" as const,
        ...msg(id, "bob", `@alice number ${id}`),
      })));
      await waitUntil(() => texts(alice).length === 3, "all three messages are there");
      assert.deepEqual(texts(alice), ["@alice number 1", "@alice number 2", "@alice number 3"]);
      await waitUntil(() => warned.length === 3, "each failure is logged");
      assert.deepEqual(tried, ["@alice number 1", "@alice number 2", "@alice number 3"]);
      assert.equal(alice.convs.value.get("#general")!.unread.value, 3);
    } finally {
      // deno-lint-ignore no-console
      console.warn = warn;
      alice.close();
      await fake.close();
    }
  });
}

Deno.test("ChatModel notification levels: from welcome, set, and changed live; they govern in-app notifications", async () => {
  const fake = generalStandIn({
    rooms: ["general"],
    conversations: [],
    levels: { "#general": "all", "@bob": "none" },
  });
  const notes: string[] = [];
  const alice = new ChatModel({
    origin: fake.http,
    storage: new MemoryStorage(),
    notify: (a) => void notes.push(a.body),
  });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    assert.equal(alice.levelOf("#general"), "all");
    assert.equal(alice.levelOf("@bob"), "none");
    assert.equal(alice.levelOf("@carol"), "all", "DMs default to all");
    assert.equal(alice.levelOf("#other"), "mentions", "rooms default to mentions");
    alice.setVisible(false);
    fake.push({ type: "message", ...msg(1, "bob", "no mention") });
    fake.push({ type: "message", id: 2, seq: 2, from: "bob", to: "alice", text: "psst", ts: "" });
    await waitUntil(() => texts(alice).length === 1, "the room message arrives");
    await waitUntil(() => texts(alice, "@bob").length === 1, "the DM arrives");
    assert.deepEqual(notes, ["no mention"], "the room notifies all; the DM nothing");

    // Another device changed it: this one follows.
    fake.push({ type: "notify_level", room: "general", level: "none" });
    await waitUntil(() => alice.levelOf("#general") === "none", "the level follows");
    fake.push({ type: "message", ...msg(3, "bob", "@alice still nothing") });
    await waitUntil(() => texts(alice).length === 2, "the message arrives");
    assert.deepEqual(notes, ["no mention"]);

    // Set here: sent with a ref, shown at once, and the default is no entry.
    const from = fake.received.length;
    alice.setLevel("#general", "mentions");
    const sent = await fake.next("notify_level", from);
    assert.equal(sent.room, "general");
    assert.equal(sent.level, "mentions");
    assert.equal(typeof sent.ref, "string");
    assert.equal(alice.levelOf("#general"), "mentions");
    assert.equal(alice.levels.value.has("#general"), false);
    fake.push({ type: "message", ...msg(4, "bob", "@alice now you hear") });
    await waitUntil(() => notes.length === 2, "the mention notifies");
    assert.equal(notes[1], "@alice now you hear");

    // Refused: put back, and said.
    const again = fake.received.length;
    alice.setLevel("@bob", "all");
    const frame = await fake.next("notify_level", again);
    assert.equal(frame.to, "bob");
    assert.equal(alice.levelOf("@bob"), "all");
    fake.push({ type: "error", code: "bad_request", message: "No", ref: frame.ref });
    await waitUntil(() => alice.levelOf("@bob") === "none", "the old level is back");
    assert.match(alice.toasts.value.at(-1)?.text ?? "", /^Cannot change the notifications: No/);
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("ChatModel says whether the page is visible after each welcome and on every change", async () => {
  const fake = generalStandIn({
    rooms: ["general"],
    conversations: [],
    push: { key: "BPublicKey", contentFree: false },
  });
  const alice = new ChatModel({ origin: fake.http, storage: new MemoryStorage(), backoff: 50 });
  try {
    alice.visible.value = false;
    await alice.start();
    alice.signIn("alice", "pw");
    const first = await fake.next("visible");
    assert.equal(first.visible, false, "a page opened in the background says so at once");
    assert.deepEqual(alice.push.value, { key: "BPublicKey", contentFree: false });
    const from = fake.received.length;
    alice.setVisible(true);
    assert.equal((await fake.next("visible", from)).visible, true);
    fake.drop();
    const after = fake.received.length;
    await waitUntil(() => fake.received.slice(after).some((f) => f.type === "visible"), "again");
    assert.equal((await fake.next("visible", after)).visible, true);

    // Push subscriptions: answered by ref, refusals in the server's words.
    const sub = { endpoint: "https://push.example/abc", keys: { p256dh: "p", auth: "a" } };
    const ok = alice.pushSubscribe(sub);
    const asked = await fake.next("push_subscribe", after);
    assert.deepEqual(asked.subscription, sub);
    fake.push({ type: "push_subscribed", endpoint: sub.endpoint, ref: asked.ref });
    assert.equal(await ok, null);
    const mark = fake.received.length;
    const refused = alice.pushUnsubscribe(sub.endpoint);
    const gone = await fake.next("push_unsubscribe", mark);
    fake.push({ type: "error", code: "bad_request", message: "Not yours", ref: gone.ref });
    assert.equal(await refused, "Not yours");
  } finally {
    alice.close();
    await fake.close();
  }
});

Deno.test("saveSnapshot() keeps within its bound, dropping the least recent conversations' messages first", () => {
  const storage = new MemoryStorage();
  const big = "x".repeat(1900);
  const messages = (n: number) =>
    Array.from({ length: SNAPSHOT_MESSAGES }, (_, i) => ({
      id: n * 100 + i,
      from: "bob",
      text: big,
      ts: "2026-01-01T09:00:00.000Z",
    }));
  const snap: Snapshot = {
    v: 1,
    user: "Alice",
    saved: "2026-01-01T09:00:00.000Z",
    active: "#a",
    conversations: ["#a", "#b", "#c", "#d", "@bob"].map((key, i) => ({
      key,
      unread: i,
      messages: messages(i),
    })),
  };
  assert.ok(JSON.stringify(snap).length > SNAPSHOT_MAX);
  assert.equal(saveSnapshot(storage, snap, ["#a", "@bob", "#b", "#c", "#d"]), true);
  const raw = storage.getItem(snapshotKey("alice"))!;
  assert.ok(raw.length <= SNAPSHOT_MAX);
  const back = loadSnapshot(storage, "ALICE")!;
  assert.deepEqual(
    back.conversations.filter((c) => c.messages).map((c) => c.key),
    ["#a", "#b", "@bob"],
    "the three most recent keep theirs",
  );
  assert.deepEqual(back.conversations.map((c) => c.key), ["#a", "#b", "#c", "#d", "@bob"]);
  assert.equal(back.active, "#a");
  // Another user's name never reads it; junk is skipped.
  assert.equal(loadSnapshot(storage, "bob"), null);
  storage.setItem(
    snapshotKey("bob"),
    JSON.stringify({
      v: 1,
      user: "bob",
      conversations: [{ key: "<script>" }, { key: "#ok", unread: -3 }],
    }),
  );
  assert.deepEqual(loadSnapshot(storage, "bob")!.conversations, [{ key: "#ok", unread: 0 }]);
});
Deno.test("ChatModel: a member's @room where only admins may use it fails in the server's words; edit() says so at once", async () => {
  await using t = await startTestServer({
    users: {
      alice: { password: await hashPassword(PASSWORDS.alice), role: "admin" },
      bob: await hashPassword(PASSWORDS.bob),
    },
  });
  const alice = await signedIn(t, "alice");
  const bob = await signedIn(t, "bob");
  try {
    for (const m of [alice, bob]) {
      assert.equal(m.joinRoom("dev"), null);
      await waitUntil(() => m.convs.value.get("#dev")?.loaded.value, "in dev");
    }
    const dev = bob.convs.value.get("#dev")!;
    bob.open("#dev");
    bob.send("hello all");
    await waitUntil(() => dev.messages.value.length === 1, "bob's message is stored");
    const id = dev.messages.value[0].id;
    const answer = await alice.roomSettings("dev", { restrictRoomMentions: true });
    assert.deepEqual(answer.settings, { restrictRoomMentions: true });
    await waitUntil(() => dev.settings.value.restrictRoomMentions === true, "bob hears of it");
    const words = "Only admins may notify everyone in #dev with @room or @here";

    bob.send("@room lunch?");
    await waitUntil(() => dev.pending.value[0]?.state === "failed", "refused");
    assert.equal(dev.pending.value[0].error, words);
    assert.equal(bob.edit(dev, id, "@here hello all"), words, "said before anything is sent");
    assert.equal(bob.edit(dev, id, "hello everyone"), null);
    await waitUntil(() => dev.messages.value[0].text === "hello everyone", "the plain edit goes");

    alice.open("#dev");
    alice.send("@room release at 5");
    await waitUntil(
      () => dev.messages.value.some((m) => m.text === "@room release at 5"),
      "an admin's @room reaches bob",
    );
    assert.equal(dev.messages.value.length, 2, "nothing of bob's refused message was stored");
  } finally {
    alice.close();
    bob.close();
  }
});

Deno.test("ChatModel: @room and @here notify at mentions only in rooms up to roomMentionMax, or where only admins may say them", async () => {
  const fake = standIn(
    {
      rooms: ["general"],
      conversations: [],
      limits: { rate: 20, burst: 60, maxMessage: 4096, roomMentionMax: 3 },
    },
    (f, reply) => {
      if (f.type === "join") {
        reply({ type: "joined", room: "general", members: ["alice", "bob"], history: [], seq: 0 });
      }
    },
  );
  const notes: string[] = [];
  const alice = new ChatModel({
    origin: fake.http,
    storage: new MemoryStorage(),
    notify: (a) => void notes.push(a.body),
  });
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.convs.value.get("#general")?.loaded.value, "alice is in");
    assert.equal(alice.levelOf("#general"), "mentions");
    const conv = alice.convs.value.get("#general")!;
    alice.setVisible(false);
    const say = async (id: number, text: string) => {
      fake.push({ type: "message", ...msg(id, "bob", text) });
      await waitUntil(() => texts(alice).length === id, `message ${id} arrives`);
    };
    await say(1, "@room meeting now");
    await say(2, "@Here too");
    await say(3, "not @roomy nor mail ops@here.com");
    await say(4, "hi @alice");
    assert.deepEqual(notes, ["@room meeting now", "@Here too", "hi @alice"]);
    assert.ok(alice.mentionsMe(conv, { from: "bob", text: "@room" }), "the highlight agrees");
    assert.ok(!alice.mentionsMe(conv, { from: "alice", text: "@room" }), "never one's own");

    // Larger than roomMentionMax: a member's @room is an ordinary word there.
    conv.members.value = ["alice", "bob", "carol", "dan"];
    await say(5, "@room in a big room");
    await say(6, "@alice in a big room");
    assert.deepEqual(notes.slice(3), ["@alice in a big room"]);
    assert.ok(!alice.mentionsMe(conv, { from: "bob", text: "@room" }));
    // Where only admins may say it, whoever said it was an admin.
    conv.settings.value = { restrictRoomMentions: true };
    await say(7, "@here admins speaking");
    assert.deepEqual(notes.slice(3), ["@alice in a big room", "@here admins speaking"]);
  } finally {
    alice.close();
    await fake.close();
  }
});

/** Browser globals PushControl needs, in Deno: a granted permission and a PushManager. */
function browserPush(): { asked: () => number; restore: () => void } {
  const g = globalThis as unknown as Record<string, unknown>;
  let asked = 0;
  g.PushManager = class {};
  g.Notification = {
    permission: "granted",
    requestPermission: () => {
      asked++;
      return Promise.resolve("granted");
    },
  };
  return {
    asked: () => asked,
    restore: () => {
      delete g.PushManager;
      delete g.Notification;
    },
  };
}

/** A service worker registration holding one push subscription made with `key`. */
function workerWith(key: Uint8Array<ArrayBuffer>) {
  const p256dh = new Uint8Array(65).fill(4).buffer;
  const auth = new Uint8Array(16).fill(7).buffer;
  const state = {
    sub: null as PushSubscription | null,
  };
  state.sub = {
    endpoint: "https://push.example/alice",
    options: { applicationServerKey: key.buffer, userVisibleOnly: true },
    getKey: (name: string) => name === "p256dh" ? p256dh : auth,
    unsubscribe() {
      state.sub = null;
      return Promise.resolve(true);
    },
  } as unknown as PushSubscription;
  const reg = {
    pushManager: {
      getSubscription: () => Promise.resolve(state.sub),
      subscribe: () => Promise.reject(new Error("not in this test")),
    },
  };
  const worker = {
    supported: true,
    registration: () => Promise.resolve(reg),
  } as unknown as AppWorker;
  return { state, worker };
}

Deno.test("PushControl sends the subscription after every welcome; a refusal turns it off with the server's words", async () => {
  const globals = browserPush();
  const key = new Uint8Array(65).fill(9);
  let refuse = false;
  const fake = standIn(
    {
      rooms: ["general"],
      conversations: [],
      push: { key: toBase64Url(key), contentFree: false },
    },
    (f, reply) => {
      if (f.type === "join") {
        reply({ type: "joined", room: "general", members: ["alice", "bob"], history: [], seq: 0 });
      }
      if (f.type === "push_subscribe") {
        reply(
          refuse
            ? {
              type: "error",
              code: "bad_request",
              message: "That push service is not allowed",
              ref: f.ref,
            }
            : { type: "push_subscribed", endpoint: f.subscription.endpoint, ref: f.ref },
        );
      }
    },
  );
  const storage = new MemoryStorage();
  // What versions before this remembered: never read again, and removed.
  storage.setItem("chat.push.sent", "{}");
  const alice = new ChatModel({ origin: fake.http, storage, backoff: 50, maxBackoff: 100 });
  const { state, worker } = workerWith(key);
  const push = new PushControl(alice, worker, storage);
  const sent = () => fake.received.filter((f) => f.type === "push_subscribe").length;
  try {
    await alice.start();
    alice.signIn("alice", "pw");
    await waitUntil(() => alice.ready.value, "alice is in");
    await push.sync();
    assert.equal(push.state.value, "on");
    assert.equal(sent(), 1);
    // A reconnect (a restarted server with a memory store forgot it): sent again.
    for (const n of [2, 3]) {
      fake.drop();
      await waitUntil(() => !alice.ready.value, "the connection drops");
      await waitUntil(() => alice.ready.value, "the welcome again");
      await push.sync();
      assert.equal(sent(), n, `sent after welcome ${n}`);
      assert.equal(push.state.value, "on");
    }
    assert.equal(storage.getItem("chat.push.sent"), null);

    // Refused: off here too, saying why.
    refuse = true;
    fake.drop();
    await waitUntil(() => !alice.ready.value, "the connection drops");
    await waitUntil(() => alice.ready.value, "the welcome again");
    await push.sync();
    assert.equal(push.state.value, "off");
    assert.equal(push.error.value, "Notifications are off: That push service is not allowed");
    assert.equal(state.sub, null, "the browser's subscription is gone too");
  } finally {
    alice.close();
    await fake.close();
    globals.restore();
  }
});

Deno.test("PushControl: turning notifications on before the welcome says so and stays off", async () => {
  const globals = browserPush();
  const alice = new ChatModel({ origin: "http://127.0.0.1:9", storage: new MemoryStorage() });
  const { worker } = workerWith(new Uint8Array(65));
  const push = new PushControl(alice, worker, new MemoryStorage());
  try {
    push.state.value = "off";
    await push.enable();
    assert.equal(push.state.value, "off");
    assert.equal(push.error.value, NOT_CONNECTED);
    assert.equal(globals.asked(), 0, "nothing asked of the browser");
  } finally {
    alice.close();
    globals.restore();
  }
});
