import assert from "node:assert/strict";
import type { ChatMessage, ServerFrame } from "../protocol.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { runChat, spawnServer } from "./chat_process.ts";
import { closeAll, signIn, startTestServer, type TestClient, waitUntil } from "./helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1", carol: "carol-pass" };
const FAST = ["--rate", "10000", "--burst", "10000"];

/** Every message of a room, paging with `since`. */
async function wholeRoom(
  c: TestClient,
  room: string,
): Promise<{ messages: ChatMessage[]; gap: boolean }> {
  const messages: ChatMessage[] = [];
  let gap = false;
  let since = 0;
  while (true) {
    c.send({ type: "history", room, since, limit: 200 });
    const page = await c.next<F<"history">>((f) => f.type === "history" && f.room === room);
    messages.push(...page.messages);
    gap ||= page.gap === true;
    if (!page.more) return { messages, gap };
    since = page.messages.at(-1)!.id;
  }
}

Deno.test("server --data: a restart keeps history, membership, read markers and ids", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-persist-" });
  const args = ["--data", `${dir}/chat.db`];
  try {
    {
      await using t = await startTestServer({ users: USERS, dir, args });
      const alice = await signIn(t.ws, "alice", USERS.alice);
      const bob = await signIn(t.ws, "bob", USERS.bob);
      const bob2 = await signIn(t.ws, "bob", USERS.bob);
      try {
        alice.send({ type: "join", room: "ops" });
        await alice.next("joined");
        bob.send({ type: "join", room: "ops" });
        await bob.next("joined");
        for (let i = 1; i <= 3; i++) {
          alice.send({ type: "send", room: "ops", text: `ops ${i}`, ref: `r${i}` });
        }
        await alice.next((f) => f.type === "message" && f.ref === "r3");
        alice.send({ type: "send", to: "bob", text: "psst", ref: "d1" });
        await alice.next((f) => f.type === "message" && f.ref === "d1");
        bob.send({ type: "read", room: "ops", id: 2 });
        assert.deepEqual(await bob2.next("read"), { type: "read", room: "ops", id: 2 });
      } finally {
        await closeAll(alice, bob, bob2);
      }
    }
    await using t = await startTestServer({ users: USERS, dir, args });
    const alice = await signIn(t.ws, "alice", USERS.alice);
    const bob = await signIn(t.ws, "bob", USERS.bob);
    try {
      assert.deepEqual(alice.welcome.rooms.toSorted(), ["general", "ops"]);
      assert.deepEqual(bob.welcome.conversations, [
        { room: "general", last: 0, read: 0, seq: 0, unread: 0 },
        { room: "ops", last: 3, read: 2, seq: 3, unread: 1 },
        { to: "alice", last: 1, read: 0, seq: 1, unread: 1 },
      ]);
      bob.send({ type: "join", room: "ops", since: 2 });
      const joined = await bob.next<F<"joined">>("joined");
      assert.deepEqual(joined.members, ["alice", "bob"]);
      assert.deepEqual(joined.history.map((m) => [m.id, m.text]), [[3, "ops 3"]]);
      assert.equal(joined.gap, undefined);
      alice.send({ type: "send", room: "ops", text: "ops 4", ref: "r4" });
      const own = await alice.next<F<"message">>((f) => f.type === "message" && f.ref === "r4");
      assert.equal(own.id, 4, "ids continue after the restart");
      const got = await bob.next<F<"message">>((f) => f.type === "message" && f.room === "ops");
      assert.equal(got.id, 4);
      bob.send({ type: "history", to: "alice", limit: 10 });
      const dm = await bob.next<F<"history">>("history");
      assert.deepEqual(dm.messages.map((m) => [m.id, m.from, m.to, m.text]), [[
        1,
        "alice",
        "bob",
        "psst",
      ]]);
    } finally {
      await closeAll(alice, bob);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** Streams sends, stops the server with `signal` mid-stream, restarts it and checks every ack. */
async function streamThenStop(signal: "SIGKILL" | "SIGTERM"): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "chat-kill-" });
  const data = `${dir}/chat.db`;
  try {
    const acked = new Map<string, number>();
    {
      await using server = await spawnServer([
        "--data",
        data,
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--users",
        `${dir}/users.json`,
        ...FAST,
      ]);
      const alice = await signIn(server.ws, "alice");
      try {
        const isAck = (f: ServerFrame) => f.type === "message" && f.ref !== undefined;
        let sent = 0;
        const send = () => {
          sent++;
          alice.send({ type: "send", room: "general", text: `stream ${sent}`, ref: `k${sent}` });
        };
        for (let i = 0; i < 30; i++) send();
        while (acked.size < 1000) {
          const m = await alice.next<F<"message">>(isAck);
          acked.set(m.ref!, m.id);
          send();
        }
        // 30 sends are in flight; 200 more go out right before the signal.
        for (let i = 0; i < 200; i++) send();
        const status = await server.kill(signal);
        if (signal === "SIGKILL") assert.equal(status.signal, "SIGKILL");
        else assert.equal(status.code, 0, server.lines.join("\n"));
        await alice.waitClose();
        for (const f of alice.inbox) {
          if (f.type === "message" && f.ref !== undefined) acked.set(f.ref, f.id);
        }
        if (signal === "SIGKILL") {
          assert.ok(sent > acked.size, "the kill came while sends were unacknowledged");
        }
      } finally {
        await closeAll(alice);
      }
    }
    await using t = await startTestServer({ dir, args: ["--data", data] });
    // alice's name is still hers after the restart: someone else reads the room.
    const alice = await signIn(t.ws, "reader");
    try {
      const { messages, gap } = await wholeRoom(alice, "general");
      assert.equal(gap, false);
      const byText = new Map(messages.map((m) => [m.text, m.id]));
      for (const [ref, id] of acked) {
        assert.equal(
          byText.get(`stream ${ref.slice(1)}`),
          id,
          `acknowledged ${ref} was kept with id ${id}`,
        );
      }
      assert.deepEqual(
        messages.map((m) => m.id),
        Array.from({ length: messages.length }, (_, i) => i + 1),
        "no holes",
      );
      alice.send({ type: "send", room: "general", text: "after", ref: "a" });
      const next = await alice.next<F<"message">>((f) => f.type === "message" && f.ref === "a");
      assert.equal(next.id, messages.length + 1);
    } finally {
      await closeAll(alice);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("server --data: every acknowledged message survives kill -9 in the middle of a stream", () =>
  streamThenStop("SIGKILL"));

Deno.test("server --data: a graceful stop (SIGTERM) mid-stream keeps every acknowledged message", () =>
  streamThenStop("SIGTERM"));

Deno.test("server --data: search shows only what the asker may see, also after a restart", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-search-" });
  const args = ["--data", `${dir}/chat.db`];
  const texts = (f: F<"search">) => f.messages.map((m) => m.text);
  try {
    {
      await using t = await startTestServer({ users: USERS, dir, args });
      const alice = await signIn(t.ws, "alice", USERS.alice);
      const bob = await signIn(t.ws, "bob", USERS.bob);
      const carol = await signIn(t.ws, "carol", USERS.carol);
      try {
        for (const [c, r] of [[alice, "ops"], [bob, "ops"], [carol, "hr"]] as const) {
          c.send({ type: "join", room: r });
          await c.next("joined");
        }
        const say = async (c: TestClient, frame: Record<string, string>) => {
          c.send({ type: "send", ...frame, ref: "x" });
          await c.next((f) => f.type === "message" && f.ref === "x");
        };
        await say(alice, { room: "ops", text: "deploy on friday" });
        await say(carol, { room: "hr", text: "deploy the salaries" });
        await say(bob, { to: "carol", text: "deploy gossip" });
        await say(bob, { to: "alice", text: "the deploy key" });
        alice.send({ type: "search", q: "deploy" });
        assert.deepEqual(texts(await alice.next("search")), ["the deploy key", "deploy on friday"]);
      } finally {
        await closeAll(alice, bob, carol);
      }
    }
    await using t = await startTestServer({ users: USERS, dir, args });
    const alice = await signIn(t.ws, "alice", USERS.alice);
    const carol = await signIn(t.ws, "carol", USERS.carol);
    try {
      alice.send({ type: "search", q: "DEPLOY" });
      const found = await alice.next<F<"search">>("search");
      assert.equal(found.q, "DEPLOY");
      assert.deepEqual(texts(found), ["the deploy key", "deploy on friday"]);
      alice.send({ type: "search", q: "deploy", room: "ops" });
      assert.deepEqual(texts(await alice.next("search")), ["deploy on friday"]);
      alice.send({ type: "search", q: "gossip" });
      assert.deepEqual(
        texts(await alice.next("search")),
        [],
        "a DM between two others never appears",
      );
      alice.send({ type: "search", q: "salaries" });
      assert.deepEqual(texts(await alice.next("search")), [], "nor a room she is not in");
      carol.send({ type: "search", q: "deploy", limit: 1 });
      assert.deepEqual(texts(await carol.next("search")), ["deploy gossip"]);
      carol.send({ type: "search", q: '"deploy" (gossip' });
      assert.deepEqual(
        texts(await carol.next("search")),
        ["deploy gossip"],
        "syntax is plain text",
      );
    } finally {
      await closeAll(alice, carol);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server --retain-messages: keeps the newest per room in the background; ids and gaps survive", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-retain-" });
  const data = `${dir}/chat.db`;
  try {
    {
      await using t = await startTestServer({
        dir,
        args: ["--data", data, "--retain-messages", "3", ...FAST],
      });
      const alice = await signIn(t.ws, "alice");
      try {
        for (let i = 1; i <= 8; i++) {
          alice.send({ type: "send", room: "general", text: `m${i}`, ref: `r${i}` });
        }
        await alice.next((f) => f.type === "message" && f.ref === "r8");
        await waitUntil(
          async () => (await wholeRoom(alice, "general")).messages.length === 3,
          "trimmed",
        );
        const { messages, gap } = await wholeRoom(alice, "general");
        assert.deepEqual(messages.map((m) => m.text), ["m6", "m7", "m8"]);
        assert.equal(gap, true);
      } finally {
        await closeAll(alice);
      }
    }
    await using t = await startTestServer({ dir, args: ["--data", data] });
    // alice's name is still hers after the restart: someone else reads the room.
    const alice = await signIn(t.ws, "reader");
    try {
      alice.send({ type: "join", room: "general", since: 1 });
      const joined = await alice.next<F<"joined">>("joined");
      assert.deepEqual(joined.history.map((m) => m.id), [6, 7, 8]);
      assert.equal(joined.gap, true);
      alice.send({ type: "send", room: "general", text: "m9", ref: "r9" });
      assert.equal(
        (await alice.next<F<"message">>((f) => f.type === "message" && f.ref === "r9")).id,
        9,
      );
    } finally {
      await closeAll(alice);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("server: retention flags without --data warn that history stays in memory", async () => {
  await using t = await startTestServer({ args: ["--retain-days", "3"] });
  assert.ok(
    t.log.includes(
      "warning: --retain-days and --retain-messages need --data: history stays in memory only",
    ),
    t.log.join("\n"),
  );
});

Deno.test("chat --data: a path it cannot use stops the server with one clear line", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-badpath-" });
  const serve = (data: string, dropRoot = false) =>
    runChat(
      ["--data", data, "--port", "0", "--host", "127.0.0.1", "--users", `${dir}/users.json`],
      {
        dropRoot,
      },
    );
  const expectOneLine = (r: { code: number; stdout: string; stderr: string }, pattern: RegExp) => {
    assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
    assert.doesNotMatch(r.stdout, /listening/);
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    assert.equal(lines.length, 1, `one line: ${r.stderr}`);
    assert.match(lines[0], pattern);
  };
  /** A data file with one message in it. */
  const withData = async (path: string) => {
    const s = SqliteStore.open(path);
    await s.append({ conv: "general", room: "general", from: "alice", text: "keep me" });
    await s.close();
    return await Deno.readFile(path);
  };
  try {
    await t.step("a directory", async () => {
      expectOneLine(
        await serve(dir),
        /^error: Cannot use data file ".*": it is a directory: give a file path such as ".*\/chat\.db"$/,
      );
    });
    await t.step("a missing directory", async () => {
      expectOneLine(
        await serve(`${dir}/missing/chat.db`),
        /^error: Cannot create data file ".*": directory ".*\/missing" does not exist: create it or choose another --data path$/,
      );
    });
    await t.step("a file that is not a database", async () => {
      const path = `${dir}/garbage.db`;
      const garbage = crypto.getRandomValues(new Uint8Array(8192));
      await Deno.writeFile(path, garbage);
      expectOneLine(
        await serve(path),
        /^error: Cannot open data file ".*garbage\.db": it is not a SQLite database: restore it from a backup or choose another --data path$/,
      );
      assert.deepEqual(await Deno.readFile(path), garbage, "left as it was");
    });
    await t.step("a read-only file", async () => {
      const path = `${dir}/readonly.db`;
      const before = await withData(path);
      await Deno.chmod(path, 0o444);
      try {
        expectOneLine(
          await serve(path, true),
          /^error: Cannot write data file ".*readonly\.db": it is read-only \(permission denied\): make it writable by the user running chat or choose another --data path$/,
        );
        assert.deepEqual(await Deno.readFile(path), before, "nothing lost");
      } finally {
        await Deno.chmod(path, 0o644);
      }
    });
    await t.step("a file in a read-only directory", async () => {
      await Deno.mkdir(`${dir}/ro`);
      const path = `${dir}/ro/chat.db`;
      const before = await withData(path);
      await Deno.chmod(`${dir}/ro`, 0o555);
      try {
        expectOneLine(
          await serve(path, true),
          /^error: Cannot write data file ".*ro\/chat\.db": directory ".*\/ro" is read-only and SQLite keeps ".*-wal" and ".*-shm" beside the file: make it writable or choose another --data path$/,
        );
        expectOneLine(
          await serve(`${dir}/ro/new.db`, true),
          /^error: Cannot create data file ".*new\.db": directory ".*\/ro" is not writable \(permission denied\)/,
        );
      } finally {
        await Deno.chmod(`${dir}/ro`, 0o755);
      }
      assert.deepEqual(await Deno.readFile(path), before, "nothing lost");
    });
    await t.step("a file another server is using", async () => {
      const path = `${dir}/busy.db`;
      await using first = await spawnServer([
        "--data",
        path,
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--users",
        `${dir}/users.json`,
        "--retain-days",
        "30",
        "--retain-messages",
        "500",
      ]);
      assert.ok(
        first.lines.includes(
          `  History:    kept in ${path}; messages deleted after 30 days and beyond 500 per room or DM`,
        ),
        first.lines.join("\n"),
      );
      expectOneLine(
        await serve(path),
        /^error: Cannot use data file ".*busy\.db": another chat server is using it: stop that server or choose another --data path$/,
      );
      const alice = await signIn(first.ws, "alice");
      try {
        alice.send({ type: "send", room: "general", text: "still here", ref: "s" });
        await alice.next((f) => f.type === "message" && f.ref === "s");
      } finally {
        await closeAll(alice);
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
