/**
 * Files with real server processes: two nodes sharing one Redis, and a
 * `--data` server killed with SIGKILL in the middle of an upload.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { ChatMessage, FileInfo, ServerFrame } from "../protocol.ts";
import { closeAll, hashPassword, type SignedIn, signIn, waitUntil } from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";
import { spawnServer } from "./chat_process.ts";

type Message = ChatMessage & { type: "message" };

async function upload(http: string, token: string, name: string, body: BodyInit) {
  const res = await fetch(`${http}/api/files?name=${encodeURIComponent(name)}`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
    body,
  });
  assert.equal(res.status, 201, await res.clone().text());
  return await res.json() as FileInfo;
}

async function get(http: string, url: string): Promise<{ status: number; body: Uint8Array }> {
  const res = await fetch(http + url);
  return { status: res.status, body: new Uint8Array(await res.arrayBuffer()) };
}

function bytes(n: number, seed: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
}

Deno.test("files through Redis: uploaded through one node, downloaded through the other; membership and deletes hold on both", async () => {
  await using cluster = await startCluster(2, {
    users: { alice: await hashPassword("alice-pw-1"), bob: await hashPassword("bob-pw-12") },
  });
  const [a, b] = cluster.nodes;
  let alice: SignedIn | undefined, bob: SignedIn | undefined;
  try {
    alice = await signIn(a.ws, "alice", "alice-pw-1");
    bob = await signIn(b.ws, "bob", "bob-pw-12");
    for (const [c, room] of [[alice, "ops"], [bob, "ops"]] as const) {
      c.send({ type: "join", room });
      await c.next((f) => f.type === "joined" && f.room === room);
    }
    // Larger than a chunk: several chunk keys.
    const data = bytes(600_000, 3);
    const f = await upload(a.http, alice.welcome.token!, "dump.bin", data);
    alice.send({ type: "send", room: "ops", text: "the dump", files: [f.id], ref: "r" });
    const own = await alice.next<Message>((m) => m.type === "message" && m.ref === "r");
    const got = await bob.next<Message>((m) => m.type === "message" && m.room === "ops");
    assert.match(got.files![0].url!, /v=bob/);
    // bob's node, and alice's node too: the link is bob's wherever it is used.
    for (const node of [b, a]) {
      const r = await get(node.http, got.files![0].url!);
      assert.equal(r.status, 200);
      assert.deepEqual(r.body, data);
    }
    bob.send({ type: "leave", room: "ops" });
    await bob.next((m) => m.type === "left");
    for (const node of [a, b]) assert.equal((await get(node.http, got.files![0].url!)).status, 404);
    assert.equal((await get(b.http, own.files![0].url!)).status, 200);

    alice.send({ type: "delete", room: "ops", id: own.id, ref: "d" });
    await alice.next<ServerFrame & { type: "deleted" }>((m) => m.type === "deleted");
    await waitUntil(
      async () => (await get(b.http, own.files![0].url!)).status === 404,
      "the deleted message's file is gone on the other node",
    );
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("files with --data: a kill -9 mid-upload leaves no half file; a committed one survives byte for byte", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-files-kill-" });
  const data = `${dir}/chat.db`;
  const users = `${dir}/users.json`;
  await Deno.writeTextFile(users, JSON.stringify({ alice: await hashPassword("alice-pw-1") }));
  const args = ["--port", "0", "--host", "127.0.0.1", "--users", users, "--data", data];
  const kept = bytes(300_000, 7);
  let token = "";
  let url = "";
  try {
    {
      await using server = await spawnServer(args);
      const http = `http://127.0.0.1:${server.port}`;
      const alice = await signIn(server.ws, "alice", "alice-pw-1");
      try {
        token = alice.welcome.token!;
        const f = await upload(http, token, "kept.bin", kept);
        alice.send({ type: "send", room: "general", files: [f.id], ref: "k" });
        const m = await alice.next<Message>((x) => x.type === "message" && x.ref === "k");
        url = m.files![0].url!;
        // An upload that streams a first megabyte and then waits: killed mid-way.
        let sent = 0;
        const body = new ReadableStream<Uint8Array>({
          pull(c) {
            if (sent >= 1_000_000) return new Promise(() => {});
            sent += 100_000;
            c.enqueue(bytes(100_000, sent));
          },
        });
        const hanging = fetch(`${http}/api/files?name=half.bin`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}` },
          body,
        }).catch(() => null);
        // The server has written chunks of it once the file holds more than the kept file.
        await waitUntil(() => {
          using db = new DatabaseSync(data, { readOnly: true });
          const row = db.prepare("SELECT count(*) AS n FROM file_chunks").get();
          return Number(row?.n) > Math.ceil(kept.length / (256 * 1024));
        }, "chunks of the half upload are in the file");
        await server.kill("SIGKILL");
        await hanging;
      } finally {
        await alice.close().catch(() => {});
      }
    }
    await using again = await spawnServer(args);
    const http = `http://127.0.0.1:${again.port}`;
    const r = await get(http, url);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, kept);
    using db = new DatabaseSync(data, { readOnly: true });
    const files = db.prepare("SELECT name FROM files").all().map((x) => x.name);
    assert.deepEqual(files, ["kept.bin"]);
    const chunks = Number(db.prepare("SELECT count(*) AS n FROM file_chunks").get()?.n);
    assert.equal(chunks, Math.ceil(kept.length / (256 * 1024)));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
