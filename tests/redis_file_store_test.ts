import assert from "node:assert/strict";
import { closeRedis, connectRedis, type RedisClient } from "../server/broker/redis_client.ts";
import {
  CHUNK_BYTES,
  type FileRecord,
  type FileWriter,
  QuotaExceeded,
  UNATTACHED_TTL,
} from "../server/files/files.ts";
import { RedisFileStore } from "../server/files/redis.ts";
import { fileStoreContract } from "./file_store_contract.ts";
import { RedisServer } from "./redis_helpers.ts";

// One redis-server per test, on a free port; the store owns its client.
fileStoreContract("RedisFileStore", async ({ quota, now }) => {
  const redis = await RedisServer.start();
  try {
    const client = await connectRedis(redis.url, { name: "contract" });
    const store = new RedisFileStore(client, { quota, now, ownsClient: true });
    const close = store.close.bind(store);
    return Object.assign(store, {
      close: async () => {
        await close();
        await redis[Symbol.asyncDispose]();
      },
    });
  } catch (err) {
    await redis[Symbol.asyncDispose]();
    throw err;
  }
});

/** A clock the tests move by hand. */
interface Clock {
  t: number;
}

/** Two "nodes": file stores on their own connections to one redis-server. */
interface Nodes extends AsyncDisposable {
  a: RedisFileStore;
  b: RedisFileStore;
  redis: RedisServer;
  clock: Clock;
  /** Every key under the prefix, sorted. */
  keys(): Promise<string[]>;
}

async function twoNodes(quota = 64 * CHUNK_BYTES): Promise<Nodes> {
  const redis = await RedisServer.start();
  const clients: RedisClient[] = [];
  try {
    for (const name of ["node-a", "node-b"]) clients.push(await connectRedis(redis.url, { name }));
  } catch (err) {
    await Promise.all(clients.map(closeRedis));
    await redis[Symbol.asyncDispose]();
    throw err;
  }
  const clock = { t: 1_000_000 };
  const now = () => clock.t;
  return {
    a: new RedisFileStore(clients[0], { quota, now }),
    b: new RedisFileStore(clients[1], { quota, now }),
    redis,
    clock,
    async keys() {
      const out = await redis.cli("--scan", "--pattern", "chat:*");
      return out === "" ? [] : out.split("\n").sort();
    },
    async [Symbol.asyncDispose]() {
      await Promise.all(clients.map(closeRedis));
      await redis[Symbol.asyncDispose]();
    },
  };
}

/** `n` bytes of every value, 0 to 255 (CR, LF, NUL, bytes that are not UTF-8). */
function bytesOf(n: number, seed = 7): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = i < 256 ? i : x >>> 24;
  }
  return out;
}

/** Uploads `bytes` as the HTTP edge does: chunk 0 last, then commit. */
async function upload(
  store: RedisFileStore,
  owner: string,
  name: string,
  bytes: Uint8Array,
): Promise<FileRecord> {
  const writer = await store.create(owner, name);
  const n = Math.ceil(bytes.length / CHUNK_BYTES);
  for (let i = 1; i < n; i++) {
    await writer.write(i, bytes.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES));
  }
  if (n > 0) await writer.write(0, bytes.subarray(0, CHUNK_BYTES));
  return await writer.commit({ type: "application/octet-stream", size: bytes.length });
}

/** The stream's bytes, and the size of each piece it gave. */
async function readAll(stream: ReadableStream<Uint8Array>): Promise<[Uint8Array, number[]]> {
  const parts: Uint8Array[] = [];
  for await (const part of stream) parts.push(part);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return [out, parts.map((p) => p.length)];
}

Deno.test("RedisFileStore: a file uploaded through one node reads byte for byte through another, a chunk per read", async () => {
  await using nodes = await twoNodes();
  const bytes = bytesOf(2 * CHUNK_BYTES + 12_345);
  const file = await upload(nodes.a, "alice", "blob.bin", bytes);
  assert.deepEqual(await nodes.b.get(file.id), file);

  const [all, pieces] = await readAll(nodes.b.read(file.id, 0, bytes.length));
  assert.deepEqual(all, bytes);
  assert.deepEqual(pieces, [CHUNK_BYTES, CHUNK_BYTES, 12_345], "one chunk per pull, as stored");

  for (
    const [start, end] of [
      [CHUNK_BYTES - 10, 2 * CHUNK_BYTES + 5],
      [0, 1],
      [bytes.length - 1, bytes.length],
      [100, 200],
      [CHUNK_BYTES, 2 * CHUNK_BYTES],
    ]
  ) {
    const [part] = await readAll(nodes.b.read(file.id, start, end));
    assert.deepEqual(part, bytes.subarray(start, end), `bytes ${start}-${end}`);
  }
  assert.equal(await nodes.a.usage(), bytes.length);
  assert.equal(await nodes.b.usage(), bytes.length, "one usage for every node");
});

Deno.test("RedisFileStore: nothing of an upload is visible before its commit, on any node", async () => {
  await using nodes = await twoNodes();
  const writer = await nodes.a.create("alice", "photo.png");
  await writer.write(1, bytesOf(10));
  await writer.write(0, bytesOf(CHUNK_BYTES));
  for (const store of [nodes.a, nodes.b]) {
    assert.equal(await store.get(writer.id), null);
    await assert.rejects(readAll(store.read(writer.id, 0, 10)));
    assert.deepEqual(await store.attach("alice", [writer.id], "r", ""), { id: writer.id });
  }
  assert.equal(await nodes.b.usage(), CHUNK_BYTES + 10, "an upload under way counts");
  assert.deepEqual(await nodes.keys(), [
    `chat:file:${writer.id}:0`,
    `chat:file:${writer.id}:1`,
    "chat:files:up",
    "chat:files:usage",
    `chat:fileup:${writer.id}`,
  ], "no meta hash before the commit");

  const file = await writer.commit({
    type: "image/png",
    size: CHUNK_BYTES + 10,
    width: 3,
    height: 2,
  });
  assert.deepEqual(await nodes.b.get(writer.id), file);
  assert.deepEqual([file.width, file.height, file.owner, file.created], [3, 2, "alice", 1_000_000]);
  assert.deepEqual(await nodes.keys(), [
    `chat:file:${writer.id}`,
    `chat:file:${writer.id}:0`,
    `chat:file:${writer.id}:1`,
    "chat:files:unbound",
    "chat:files:usage",
  ]);
  await assert.rejects(writer.write(2, bytesOf(1)), /finished/, "no write after the commit");
});

Deno.test("RedisFileStore: a commit whose chunks do not make its size is refused", async () => {
  await using nodes = await twoNodes();
  const writer = await nodes.a.create("alice", "x");
  await writer.write(0, bytesOf(10));
  await writer.write(1, bytesOf(10));
  await assert.rejects(writer.commit({ type: "x/y", size: 20 }), RangeError);
  assert.equal(await nodes.a.get(writer.id), null);
  await writer.abort();
  assert.equal(await nodes.a.usage(), 0);
  assert.deepEqual(await nodes.keys(), ["chat:files:usage"]);
});

Deno.test("RedisFileStore: two nodes racing to attach the same files: exactly one wins each, all or nothing", async () => {
  await using nodes = await twoNodes();
  for (let round = 0; round < 20; round++) {
    const [f1, f2, f3] = await Promise.all(
      ["1", "2", "3"].map((n) => upload(nodes.a, "alice", `${n}.txt`, bytesOf(5))),
    );
    const [x, y] = await Promise.all([
      nodes.a.attach("alice", [f1.id, f2.id], "room-a", "ref-a"),
      nodes.b.attach("alice", [f2.id, f3.id], "room-b", "ref-b"),
    ]);
    const won = [x, y].filter(Array.isArray);
    assert.equal(won.length, 1, `round ${round}: one attach of f2 wins`);
    assert.deepEqual(Array.isArray(x) ? y : x, { id: f2.id });
    if (Array.isArray(x)) {
      assert.deepEqual(x.map((f) => [f.id, f.conv, f.ref]), [
        [f1.id, "room-a", "ref-a"],
        [f2.id, "room-a", "ref-a"],
      ]);
      assert.equal((await nodes.b.get(f3.id))?.conv, undefined, "the loser attached nothing");
    } else {
      assert.equal((await nodes.b.get(f1.id))?.conv, undefined, "the loser attached nothing");
    }
  }
});

Deno.test("RedisFileStore: the quota holds across two nodes writing at once", async () => {
  const quota = 5 * CHUNK_BYTES;
  await using nodes = await twoNodes(quota);
  const writers: [RedisFileStore, FileWriter][] = [];
  for (const store of [nodes.a, nodes.b, nodes.a, nodes.b]) {
    writers.push([store, await store.create("alice", "big")]);
  }
  const chunk = bytesOf(CHUNK_BYTES);
  const results = await Promise.allSettled(
    writers.flatMap(([, w]) => [0, 1, 2].map((i) => w.write(i, chunk))),
  );
  const stored = results.filter((r) => r.status === "fulfilled").length;
  const refused = results.filter((r) => r.status === "rejected");
  assert.equal(stored, 5, "exactly as many chunks as the quota holds");
  for (const r of refused) assert.ok((r as PromiseRejectedResult).reason instanceof QuotaExceeded);
  assert.equal(await nodes.b.usage(), quota);
  await assert.rejects(writers[0][1].write(7, bytesOf(1)), QuotaExceeded, "not even a byte more");

  await Promise.all(writers.map(([, w]) => w.abort()));
  assert.equal(await nodes.a.usage(), 0, "aborts give every byte back");
  assert.deepEqual(await nodes.keys(), ["chat:files:usage"]);
});

Deno.test("RedisFileStore: an upload abandoned mid-way is swept with its chunks and usage after the TTL", async () => {
  await using nodes = await twoNodes();
  const dead = await nodes.a.create("alice", "half.bin");
  await dead.write(1, bytesOf(100));
  await dead.write(2, bytesOf(100));
  nodes.clock.t += 10 * 60_000;
  const live = await nodes.a.create("bob", "slow.bin");
  await live.write(1, bytesOf(7));
  assert.equal(await nodes.b.usage(), 207);

  // Node a is gone; node b sweeps.
  nodes.clock.t += UNATTACHED_TTL - 10 * 60_000 - 1;
  assert.equal(await nodes.b.sweepUnattached(nodes.clock.t - UNATTACHED_TTL), 0);
  assert.equal(await nodes.b.usage(), 207, "not before the TTL");
  nodes.clock.t += 2;
  assert.equal(await nodes.b.sweepUnattached(nodes.clock.t - UNATTACHED_TTL), 0, "no file went");
  assert.equal(await nodes.b.usage(), 7, "the abandoned upload's bytes are back");
  assert.equal(
    (await nodes.keys()).some((k) => k.includes(dead.id)),
    false,
    "its chunks are gone",
  );
  await assert.rejects(dead.write(3, bytesOf(1)), /finished/);

  // Still writing: each write moves the upload's time on, so it is not swept.
  nodes.clock.t += UNATTACHED_TTL - 1;
  await live.write(0, bytesOf(CHUNK_BYTES));
  nodes.clock.t += UNATTACHED_TTL - 1;
  await nodes.b.sweepUnattached(nodes.clock.t - UNATTACHED_TTL);
  const file = await live.commit({ type: "x/y", size: CHUNK_BYTES + 7 });
  assert.deepEqual(await nodes.b.get(file.id), file);
});

Deno.test("RedisFileStore.sweepUnattached() removes unbound files in batches and counts them; bound ones stay", async () => {
  await using nodes = await twoNodes();
  const files = await Promise.all(
    Array.from({ length: 250 }, (_, i) => upload(nodes.a, "alice", `${i}`, bytesOf(3))),
  );
  const sent = files.slice(0, 10).map((f) => f.id);
  assert.ok(Array.isArray(await nodes.a.attach("alice", sent, "r", "k")));
  await nodes.b.bind(sent, "r", 42);
  // Attached, never bound (the send failed): swept with the ready ones.
  assert.ok(Array.isArray(await nodes.a.attach("alice", [files[10].id], "r", "")));
  nodes.clock.t += UNATTACHED_TTL + 1;
  assert.equal(await nodes.b.sweepUnattached(nodes.clock.t - UNATTACHED_TTL), 240);
  assert.equal(await nodes.a.usage(), 30);
  const bound = await nodes.a.bound("", 100);
  assert.deepEqual(bound, sent.sort().map((id) => ({ id, conv: "r", msg: 42 })));
  assert.deepEqual(await nodes.a.bound(bound[4].id, 3), bound.slice(5, 8));
  await nodes.b.remove(sent);
  assert.equal(await nodes.a.usage(), 0);
  assert.deepEqual(await nodes.keys(), ["chat:files:usage"]);
});

Deno.test("RedisFileStore.read() errors when the file is removed while it is read", async () => {
  await using nodes = await twoNodes();
  const bytes = bytesOf(3 * CHUNK_BYTES);
  const file = await upload(nodes.a, "alice", "big", bytes);
  const reader = nodes.b.read(file.id, 0, bytes.length).getReader();
  const first = await reader.read();
  assert.equal(first.value?.length, CHUNK_BYTES);
  await nodes.a.remove([file.id]);
  await assert.rejects(reader.read(), /gone/);
  assert.equal(await nodes.a.usage(), 0);
});

Deno.test("RedisFileStore: a name that is not a file id (one naming a chunk key) is no file", async () => {
  await using nodes = await twoNodes();
  const file = await upload(nodes.a, "alice", "a.bin", bytesOf(10));
  const chunkKey = `${file.id}:0`;
  assert.equal(await nodes.b.get(chunkKey), null);
  await assert.rejects(readAll(nodes.b.read(chunkKey, 0, 1)), /gone/);
  assert.deepEqual(await nodes.b.attach("alice", [file.id, chunkKey], "r", ""), { id: chunkKey });
  await nodes.b.bind([chunkKey], "r", 1);
  await nodes.b.remove([chunkKey]);
  assert.deepEqual(await nodes.b.get(file.id), file, "the file is untouched");
  assert.deepEqual((await readAll(nodes.b.read(file.id, 0, 10)))[0], bytesOf(10));
  assert.equal(await nodes.b.usage(), 10);
});
