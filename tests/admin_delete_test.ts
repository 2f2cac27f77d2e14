/**
 * An admin deletes anyone's message, through the real server: every member
 * is told `deleted` with `removed: true` at one position, the tombstone says
 * so in history, catch-up (`since`) and search, the message's files go, and
 * the audit log records it. Members still delete only their own messages
 * (`forbidden`, the connection stays usable), and open mode (no admins) is
 * unchanged. The same scenario runs in memory, on SQLite and across two
 * nodes through Redis.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ChatMessage, FileInfo, ServerFrame } from "../protocol.ts";
import {
  closeAll,
  signIn,
  signInWithToken,
  startTestServer,
  type TestClient,
  waitUntil,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = {
  alice: { password: "alice-pass", role: "admin" },
  bob: "bob-pass-1",
  carol: "carol-pass",
};
const PASS = { alice: "alice-pass", bob: "bob-pass-1", carol: "carol-pass" };

/** One node's addresses. */
interface Node {
  ws: string;
  http: string;
}

/** Two nodes of one chat (the same node twice, or two nodes sharing Redis). */
type Backend = (fn: (nodes: [Node, Node]) => Promise<void>) => Promise<void>;

const BACKENDS: Record<string, Backend> = {
  memory: async (fn) => {
    await using t = await startTestServer({ users: USERS });
    await fn([t, t]);
  },
  sqlite: async (fn) => {
    const dir = await Deno.makeTempDir({ prefix: "chat-admin-delete-" });
    try {
      await using t = await startTestServer({ users: USERS, dir, args: ["--data", `${dir}/c.db`] });
      await fn([t, t]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
  redis: async (fn) => {
    await using cluster = await startCluster(2, { users: USERS });
    await fn([cluster.nodes[0], cluster.nodes[1]]);
  },
};

/** Sends a message and waits for its acknowledgement. */
async function say(
  c: TestClient,
  text: string,
  where: { room?: string; to?: string } = { room: "general" },
  files?: string[],
): Promise<F<"message">> {
  const ref = crypto.randomUUID().slice(0, 8);
  c.send({ type: "send", ...where, text, ref, ...(files ? { files } : {}) });
  return await c.next<F<"message">>((f) => f.type === "message" && f.ref === ref);
}

/** Uploads a file as the holder of `token`. */
async function upload(node: Node, token: string, name: string, body: string): Promise<FileInfo> {
  const res = await fetch(`${node.http}/api/files?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body,
  });
  assert.equal(res.status, 201);
  return await res.json();
}

/** The status of a GET of a file link. */
async function download(node: Node, url: string): Promise<number> {
  const res = await fetch(node.http + url);
  await res.body?.cancel();
  return res.status;
}

/** The audit log as the admin holding `token` reads it, newest first. */
async function audit(node: Node, token: string) {
  const res = await fetch(`${node.http}/api/audit`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return ((await res.json()).entries as {
    action: string;
    by: string;
    target: string;
    detail?: string;
  }[]).map((e) => ({ action: e.action, by: e.by, target: e.target, detail: e.detail }));
}

/** Waits for the error answering `ref`. */
const errorOf = (c: TestClient, ref: string) =>
  c.next<F<"error">>((f) => f.type === "error" && f.ref === ref);

for (const [name, backend] of Object.entries(BACKENDS)) {
  Deno.test(`admin delete (${name}): everyone is told removed at one seq; catch-up, history, search and the audit log say so`, async () => {
    await backend(async ([a, b]) => {
      const alice = await signIn(a.ws, "alice", PASS.alice);
      const bob = await signIn(b.ws, "bob", PASS.bob);
      const bobTab = await signIn(a.ws, "bob", PASS.bob);
      let carol: (TestClient & { welcome: F<"welcome"> }) | undefined = await signIn(
        b.ws,
        "carol",
        PASS.carol,
      );
      try {
        const file = await upload(b, bob.welcome.token, "rude.txt", "rude attachment");
        const rude = await say(bob, "rude words", { room: "general" }, [file.id]);
        for (const c of [alice, bobTab, carol]) {
          await c.next((f) => f.type === "message" && f.id === rude.id);
        }
        // carol goes away, holding her position.
        const cursor = rude.seq;
        const token = carol.welcome.token;
        await carol.close();

        alice.send({ type: "delete", room: "general", id: rude.id, ref: "d1" });
        const frame = {
          type: "deleted",
          room: "general",
          id: rude.id,
          seq: rude.seq + 1,
          from: "bob",
          ts: rude.ts,
        };
        assert.deepEqual(
          await alice.next((f) => f.type === "deleted"),
          { ...frame, removed: true, ref: "d1" },
          "the admin's copy carries the ref",
        );
        for (const c of [bob, bobTab]) {
          assert.deepEqual(await c.next((f) => f.type === "deleted"), { ...frame, removed: true });
        }
        // The file goes with the message.
        await waitUntil(
          async () => (await download(b, rude.files![0].url!)) === 404,
          "the file is gone",
        );

        const stone: ChatMessage = {
          id: rude.id,
          seq: rude.seq + 1,
          room: "general",
          from: "bob",
          text: "",
          ts: rude.ts,
          deleted: true,
          removed: true,
        };
        bob.send({ type: "history", room: "general", limit: 50 });
        const page = await bob.next<F<"history">>((f) => f.type === "history");
        assert.deepEqual(page.messages.find((m) => m.id === rude.id), stone);
        alice.send({ type: "search", q: "rude", ref: "s1" });
        const found = await alice.next<F<"search">>((f) => f.type === "search");
        assert.deepEqual(found.messages, [], "its text and file name are found by nothing");

        // carol comes back and catches up from her position.
        carol = await signInWithToken(b.ws, token);
        carol.send({ type: "join", room: "general", since: cursor });
        const joined = await carol.next<F<"joined">>((f) => f.type === "joined");
        assert.equal(joined.seq, rude.seq + 1);
        assert.deepEqual(joined.history, [stone]);

        // Members delete only their own: forbidden, and the connection goes on.
        const mine = await say(alice, "an admin's words");
        await bob.next((f) => f.type === "message" && f.id === mine.id);
        const bobs = await say(bob, "bob's words");
        await carol.next((f) => f.type === "message" && f.id === bobs.id);
        for (const [c, id, ref] of [[bob, mine.id, "x1"], [carol, bobs.id, "x2"]] as const) {
          c.send({ type: "delete", room: "general", id, ref });
          const err = await errorOf(c, ref);
          assert.deepEqual(err, {
            type: "error",
            code: "forbidden",
            message: `Message #${id} is someone else's: only its author or an admin may delete it`,
            ref,
          });
        }
        const after = await say(carol, "still here");
        await bob.next((f) => f.type === "message" && f.id === after.id);
        assert.equal(after.id, bobs.id + 1, "the refusals took no position");
        // An admin deleting their own message: a plain delete, not audited.
        alice.send({ type: "delete", room: "general", id: mine.id, ref: "d2" });
        const own = await alice.next<F<"deleted">>((f) => f.type === "deleted" && f.ref === "d2");
        assert.equal(own.removed, undefined);
        assert.deepEqual(await carol.next((f) => f.type === "deleted"), {
          type: "deleted",
          room: "general",
          id: mine.id,
          seq: own.seq,
          from: "alice",
          ts: mine.ts,
        });

        const entry = {
          action: "delete",
          by: "alice",
          target: `general #${rude.id}`,
          detail: "a message by bob",
        };
        // Every node reads the same log.
        for (const node of [a, b]) {
          assert.deepEqual(await audit(node, alice.welcome.token), [entry]);
        }
        for (const c of [alice, bob, bobTab, carol]) await c.barrier();
        assert.deepEqual(
          [alice, bob, bobTab, carol].flatMap((c) => c.peek("error")),
          [],
          "no other errors",
        );
      } finally {
        await closeAll(alice, bob, bobTab, carol);
      }
    });
  });
}

Deno.test("admin delete: in the admin's own DM; the audit target names no room", async () => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", PASS.alice);
  const bob = await signIn(t.ws, "bob", PASS.bob);
  try {
    const m = await say(bob, "psst", { to: "alice" });
    await alice.next((f) => f.type === "message" && f.id === m.id && f.to === "alice");
    alice.send({ type: "delete", to: "bob", id: m.id, ref: "d" });
    assert.deepEqual(await alice.next((f) => f.type === "deleted"), {
      type: "deleted",
      to: "bob",
      id: m.id,
      seq: m.seq + 1,
      from: "bob",
      ts: m.ts,
      removed: true,
      ref: "d",
    });
    assert.deepEqual(await bob.next((f) => f.type === "deleted"), {
      type: "deleted",
      to: "alice",
      id: m.id,
      seq: m.seq + 1,
      from: "bob",
      ts: m.ts,
      removed: true,
    });
    assert.deepEqual(await audit(t, alice.welcome.token), [
      { action: "delete", by: "alice", target: `DM #${m.id}`, detail: "a message by bob" },
    ]);
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("admin delete: open mode has no admins: someone else's message stays forbidden", async () => {
  await using t = await startTestServer();
  const alice = await signIn(t.ws, "alice");
  const bob = await signIn(t.ws, "bob");
  try {
    const m = await say(alice, "mine");
    await bob.next((f) => f.type === "message" && f.id === m.id);
    bob.send({ type: "delete", room: "general", id: m.id, ref: "x" });
    const err = await errorOf(bob, "x");
    assert.deepEqual(err, {
      type: "error",
      code: "forbidden",
      message: `Message #${m.id} is someone else's: only its author may delete it`,
      ref: "x",
    });
    const next = await say(bob, "still here");
    assert.equal(next.id, m.id + 1, "the refusal took no position");
  } finally {
    await closeAll(alice, bob);
  }
});
