/**
 * The contract every {@link FileStore} keeps. Each backend's test calls
 * {@link fileStoreContract} with a factory, as `store_contract.ts` does for
 * messages.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  CHUNK_BYTES,
  type FileRecord,
  type FileStore,
  QuotaExceeded,
} from "../server/files/files.ts";
import { FILE_ID } from "../protocol.ts";

/** What a fresh file store is opened with. */
export interface OpenFileStoreOptions {
  /** The quota in bytes. */
  quota: number;
  /** The store's clock (ms since the epoch). */
  now: () => number;
}

/** Opens a fresh, empty file store; its `close()` releases everything it used. */
export type OpenFileStore<S extends FileStore = FileStore> = (
  options: OpenFileStoreOptions,
) => Promise<S>;

/** The quota of a test that does not test the quota. */
const ROOMY = 64 * CHUNK_BYTES;

/** `n` bytes of a pattern that does not repeat with the chunk size (251 is prime). */
export function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i + seed) % 251;
  return out;
}

/** Writes `bytes` as an upload's chunks, the last first, and commits. */
export async function upload(
  files: FileStore,
  owner: string,
  name: string,
  bytes: Uint8Array,
  options: { type?: string; width?: number; height?: number } = {},
): Promise<FileRecord> {
  const w = await files.create(owner, name);
  const n = Math.ceil(bytes.length / CHUNK_BYTES);
  // Chunk 0 last, as the HTTP edge writes it (its header is final only at the end).
  for (let i = n - 1; i >= 0; i--) {
    await w.write(
      i,
      bytes.subarray(i * CHUNK_BYTES, Math.min(bytes.length, (i + 1) * CHUNK_BYTES)),
    );
  }
  return await w.commit({
    type: options.type ?? "application/octet-stream",
    size: bytes.length,
    ...(options.width !== undefined ? { width: options.width } : {}),
    ...(options.height !== undefined ? { height: options.height } : {}),
  });
}

/** The pieces a read delivers. */
export async function pieces(stream: ReadableStream<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const piece of stream) out.push(piece);
  return out;
}

/** All bytes a read delivers. */
export async function readAll(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts = await pieces(stream);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Registers the contract tests for one backend. */
export function fileStoreContract<S extends FileStore>(name: string, open: OpenFileStore<S>): void {
  const test = (
    what: string,
    fn: (files: FileStore, clock: { now: number }) => Promise<void>,
    quota = ROOMY,
  ) =>
    Deno.test(`${name}: ${what}`, async () => {
      const clock = { now: 1_000_000 };
      const files = await open({ quota, now: () => clock.now });
      try {
        await fn(files, clock);
      } finally {
        await files.close();
      }
    });

  test("create() starts an upload nobody sees until commit()", async (files, clock) => {
    const w = await files.create("alice", "cat.png");
    assert.match(w.id, FILE_ID);
    await w.write(0, pattern(1000));
    assert.equal(await files.get(w.id), null, "invisible while uploading");
    await assert.rejects(readAll(files.read(w.id, 0, 1000)), "unreadable while uploading");
    assert.deepEqual(await files.attach("alice", [w.id], "general", ""), { id: w.id });
    assert.equal(await files.usage(), 1000, "an upload under way counts");
    clock.now += 5;
    const record = await w.commit({ type: "image/png", size: 1000, width: 640, height: 480 });
    const expected: FileRecord = {
      id: w.id,
      name: "cat.png",
      size: 1000,
      type: "image/png",
      width: 640,
      height: 480,
      owner: "alice",
      created: clock.now,
    };
    assert.deepEqual(record, expected);
    assert.deepEqual(await files.get(w.id), expected);
    assert.deepEqual(await readAll(files.read(w.id, 0, 1000)), pattern(1000));
    assert.equal(await files.usage(), 1000);
    await assert.rejects(w.write(1, pattern(10)), "a committed upload takes no more chunks");
    await assert.rejects(w.commit({ type: "image/png", size: 1000 }), "nor a second commit");
    const other = await files.create("alice", "cat.png");
    assert.notEqual(other.id, w.id, "every upload has its own id");
    await other.abort();
    assert.equal(await files.get("AAAAAAAAAAAAAAAAAAAAAA"), null);
  });

  test("FileWriter.write() takes chunks in any order; a chunk written again replaces it", async (files) => {
    const bytes = pattern(2 * CHUNK_BYTES + 777, 3);
    const w = await files.create("alice", "notes.bin");
    const chunk = (i: number) =>
      bytes.subarray(i * CHUNK_BYTES, Math.min(bytes.length, (i + 1) * CHUNK_BYTES));
    await w.write(1, chunk(1));
    await w.write(2, chunk(2));
    await w.write(0, pattern(CHUNK_BYTES, 99));
    await w.write(0, chunk(0));
    assert.equal(await files.usage(), bytes.length, "the replaced chunk counts once");
    await w.commit({ type: "application/octet-stream", size: bytes.length });
    assert.deepEqual(await readAll(files.read(w.id, 0, bytes.length)), bytes);
  });

  test("read() gives any range, across chunk boundaries, chunk by chunk", async (files) => {
    const size = 2 * CHUNK_BYTES + 1000;
    const bytes = pattern(size, 7);
    const f = await upload(files, "alice", "big.bin", bytes);
    const whole = await pieces(files.read(f.id, 0, size));
    assert.ok(whole.length >= 3, `the whole file comes in pieces (${whole.length})`);
    assert.ok(whole.every((p) => p.length <= CHUNK_BYTES), "none larger than a chunk");
    assert.deepEqual(await readAll(files.read(f.id, 0, size)), bytes);
    const ranges: [number, number][] = [
      [0, 1],
      [10, 20],
      [CHUNK_BYTES - 10, CHUNK_BYTES + 10],
      [CHUNK_BYTES - 5, 2 * CHUNK_BYTES + 5],
      [CHUNK_BYTES, 2 * CHUNK_BYTES],
      [CHUNK_BYTES + 1, 2 * CHUNK_BYTES - 1],
      [2 * CHUNK_BYTES, size],
      [size - 1, size],
      [12345, size],
    ];
    for (const [start, end] of ranges) {
      assert.deepEqual(
        await readAll(files.read(f.id, start, end)),
        bytes.subarray(start, end),
        `bytes ${start}-${end}`,
      );
    }
    for (const at of [0, CHUNK_BYTES, 500, size]) {
      assert.deepEqual(
        await readAll(files.read(f.id, at, at)),
        new Uint8Array(0),
        `empty at ${at}`,
      );
    }
    const small = await upload(files, "alice", "small.txt", pattern(10));
    assert.deepEqual(await readAll(files.read(small.id, 3, 7)), pattern(10).subarray(3, 7));
  });

  test("read() of an unknown file errors; a file removed while read ends the stream with an error", async (files) => {
    await assert.rejects(readAll(files.read("AAAAAAAAAAAAAAAAAAAAAA", 0, 10)));
    const size = 3 * CHUNK_BYTES;
    const f = await upload(files, "alice", "big.bin", pattern(size));
    const reader = files.read(f.id, 0, size).getReader();
    const first = await reader.read();
    assert.equal(first.done, false);
    assert.deepEqual(first.value, pattern(CHUNK_BYTES));
    await files.remove([f.id]);
    await assert.rejects(reader.read());
  });

  test(
    "write() rejects QuotaExceeded at the chunk that would cross the quota, keeping nothing of it",
    async (files) => {
      const w = await files.create("alice", "a.bin");
      await w.write(0, pattern(CHUNK_BYTES));
      await w.write(1, pattern(CHUNK_BYTES));
      assert.equal(await files.usage(), 2 * CHUNK_BYTES);
      const err = await w.write(2, pattern(101)).then(() => null, (e) => e);
      assert.ok(err instanceof QuotaExceeded, `QuotaExceeded, not ${err}`);
      assert.equal(err.name, "QuotaExceeded");
      assert.equal(await files.usage(), 2 * CHUNK_BYTES, "nothing of the chunk counts");
      await w.write(2, pattern(100));
      assert.equal(await files.usage(), 2 * CHUNK_BYTES + 100, "up to the quota exactly");
      const f = await w.commit({ type: "application/octet-stream", size: 2 * CHUNK_BYTES + 100 });
      const other = await files.create("bob", "b.bin");
      await assert.rejects(other.write(0, pattern(1)), QuotaExceeded);
      await files.remove([f.id]);
      assert.equal(await files.usage(), 0, "remove gives the bytes back");
      await other.write(0, pattern(1000));
      assert.equal(await files.usage(), 1000);
      await other.abort();
      assert.equal(await files.usage(), 0, "abort gives the bytes back");
      assert.equal(await files.get(other.id), null);
      await assert.rejects(other.write(0, pattern(1)), "an aborted upload takes no more chunks");
      await other.abort();
      assert.equal(await files.usage(), 0, "a second abort gives nothing back twice");
      assert.equal(files.quota, 2 * CHUNK_BYTES + 100);
    },
    2 * CHUNK_BYTES + 100,
  );

  test("write() of concurrent uploads never passes the quota together", async (files) => {
    const writers = await Promise.all(
      ["alice", "bob", "carol"].map((u) => files.create(u, `${u}.bin`)),
    );
    const tries = writers.flatMap((w) => [0, 1].map((i) => w.write(i, pattern(CHUNK_BYTES, i))));
    const results = await Promise.allSettled(tries);
    const ok = results.filter((r) => r.status === "fulfilled").length;
    assert.equal(ok, 4, "exactly the chunks that fit");
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof QuotaExceeded, String(r.reason));
    }
    assert.equal(await files.usage(), 4 * CHUNK_BYTES);
    await Promise.all(writers.map((w) => w.abort()));
    assert.equal(await files.usage(), 0);
  }, 4 * CHUNK_BYTES + 10);

  test("attach() takes the owner's ready files, all or none, in the order given", async (files) => {
    const a = await upload(files, "alice", "a.png", pattern(10), { type: "image/png" });
    const b = await upload(files, "alice", "b.txt", pattern(20));
    const bobs = await upload(files, "bob", "bob.txt", pattern(30));
    const uploading = await files.create("alice", "later.txt");
    await uploading.write(0, pattern(5));
    const unknown = "AAAAAAAAAAAAAAAAAAAAAA";
    assert.deepEqual(await files.attach("alice", [a.id, bobs.id], "general", "k1"), {
      id: bobs.id,
    }, "someone else's file is named");
    assert.deepEqual(await files.attach("alice", [a.id, unknown, b.id], "general", "k1"), {
      id: unknown,
    });
    assert.deepEqual(await files.attach("alice", [uploading.id], "general", "k1"), {
      id: uploading.id,
    }, "an upload under way cannot be sent");
    assert.deepEqual(await files.get(a.id), a, "a refused attach attached nothing");
    const attached = await files.attach("alice", [b.id, a.id], "general", "k1");
    const at = (f: FileRecord): FileRecord => ({ ...f, conv: "general", ref: "k1" });
    assert.deepEqual(attached, [at(b), at(a)]);
    assert.deepEqual(await files.get(a.id), at(a));
    assert.deepEqual(
      await files.attach("alice", [a.id, b.id], "general", "k1"),
      [at(a), at(b)],
      "a resend (same conversation and ref) gets them again",
    );
    assert.deepEqual(await files.attach("alice", [a.id], "general", "k2"), { id: a.id });
    assert.deepEqual(await files.attach("alice", [a.id], "ops", "k1"), { id: a.id });
    assert.deepEqual(await files.attach("bob", [a.id], "general", "k1"), { id: a.id });
    const c = await upload(files, "alice", "c.txt", pattern(40));
    assert.deepEqual(await files.attach("alice", [c.id], "general", ""), [
      { ...c, conv: "general", ref: "" },
    ]);
    assert.deepEqual(
      await files.attach("alice", [c.id], "general", ""),
      { id: c.id },
      "without a ref, no resend: a file is sent once",
    );
    const d = await upload(files, "alice", "d.txt", pattern(50));
    assert.deepEqual(
      await files.attach("alice", [d.id, a.id], "ops", "k9"),
      { id: a.id },
      "a file sent already makes the whole send fail",
    );
    assert.deepEqual(await files.get(d.id), d);
    await uploading.abort();
  });

  test("bind() records the message; bound() pages through bound files by id", async (files) => {
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await upload(files, "alice", `${i}.txt`, pattern(10))).id);
    }
    assert.ok(!("id" in (await files.attach("alice", ids.slice(0, 3), "general", "k1"))));
    assert.ok(!("id" in (await files.attach("alice", ids.slice(3, 4), "@alice:bob", ""))));
    await files.bind(ids.slice(0, 2), "general", 7);
    await files.bind(ids.slice(3, 4), "@alice:bob", 2);
    await files.bind(ids.slice(2, 3), "ops", 9);
    await files.bind(ids.slice(4, 5), "general", 9);
    const expected = [
      { id: ids[0], conv: "general", msg: 7 },
      { id: ids[1], conv: "general", msg: 7 },
      { id: ids[3], conv: "@alice:bob", msg: 2 },
    ].sort((x, y) => x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
    assert.deepEqual(await files.bound("", 100), expected, "another conversation binds nothing");
    assert.deepEqual(await files.bound("", 2), expected.slice(0, 2));
    assert.deepEqual(await files.bound(expected[1].id, 2), expected.slice(2));
    assert.deepEqual(await files.bound(expected[2].id, 2), []);
    assert.equal((await files.get(ids[0]))?.msg, 7);
    assert.equal((await files.get(ids[2]))?.msg, undefined);
    assert.deepEqual(
      await files.attach("alice", ids.slice(0, 2), "general", "k1"),
      [
        { ...(await files.get(ids[0]))!, msg: 7 },
        { ...(await files.get(ids[1]))!, msg: 7 },
      ],
      "a resend after the bind gets the bound files",
    );
  });

  test("rebind() moves every file attached or bound to a conversation, and only those", async (files) => {
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      ids.push((await upload(files, "alice", `${i}.txt`, pattern(10 + i, i))).id);
    }
    // 0, 1: bound in "ops"; 2: attached to "ops", its send not done; 3: bound in "general";
    // 4: a DM's; 5: ready, never sent.
    assert.ok(Array.isArray(await files.attach("alice", ids.slice(0, 3), "ops", "k1")));
    assert.ok(Array.isArray(await files.attach("alice", [ids[3]], "general", "k2")));
    assert.ok(Array.isArray(await files.attach("alice", [ids[4]], "@alice:bob", "")));
    await files.bind(ids.slice(0, 2), "ops", 7);
    await files.bind([ids[3]], "general", 2);
    await files.bind([ids[4]], "@alice:bob", 1);
    const before = await Promise.all(ids.map((id) => files.get(id)));
    assert.equal(await files.rebind("ops", "deploys"), 3);
    const after = await Promise.all(ids.map((id) => files.get(id)));
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(after[i], { ...before[i]!, conv: "deploys" }, "id, ref, msg stay");
    }
    assert.deepEqual(after.slice(3), before.slice(3), "others' files stay as they were");
    assert.deepEqual(await readAll(files.read(ids[1], 0, 11)), pattern(11, 1), "bytes stay");
    const expected = [
      { id: ids[0], conv: "deploys", msg: 7 },
      { id: ids[1], conv: "deploys", msg: 7 },
      { id: ids[3], conv: "general", msg: 2 },
      { id: ids[4], conv: "@alice:bob", msg: 1 },
    ].sort((x, y) => x.id < y.id ? -1 : x.id > y.id ? 1 : 0);
    assert.deepEqual(await files.bound("", 10), expected);
    await files.bind([ids[2]], "ops", 8);
    assert.equal((await files.get(ids[2]))?.msg, undefined, "the old name binds nothing");
    await files.bind([ids[2]], "deploys", 8);
    assert.equal((await files.get(ids[2]))?.msg, 8, "the new name does");
    assert.deepEqual(
      await files.attach("alice", ids.slice(0, 2), "deploys", "k1"),
      [after[0], after[1]].map((f) => ({ ...f!, msg: 7 })),
      "a resend under the new name gets them",
    );
    assert.equal(await files.rebind("ops", "deploys"), 0, "nothing left to move");
    assert.equal(await files.rebind("nowhere", "x"), 0);
    assert.equal(await files.usage(), 10 + 11 + 12 + 13 + 14 + 15);
  });

  test(
    "sweepUnattached() removes files never sent or never bound before the cut; bound ones stay",
    async (files, clock) => {
      clock.now = 1000;
      const ready = await upload(files, "alice", "ready.txt", pattern(10));
      const sent = await upload(files, "alice", "sent.txt", pattern(20));
      const failed = await upload(files, "alice", "failed.txt", pattern(40));
      await files.attach("alice", [sent.id], "general", "k1");
      await files.attach("alice", [failed.id], "general", "k2");
      await files.bind([sent.id], "general", 1);
      const under = await files.create("alice", "slow.txt");
      await under.write(0, pattern(80));
      clock.now = 5000;
      const fresh = await upload(files, "alice", "fresh.txt", pattern(160));
      assert.equal(await files.usage(), 310);
      assert.equal(await files.sweepUnattached(1000), 0, "the cut is exclusive");
      assert.equal(await files.sweepUnattached(3000), 2);
      assert.equal(await files.get(ready.id), null, "a ready file older than the cut");
      assert.equal(await files.get(failed.id), null, "attached, never bound");
      assert.equal((await files.get(sent.id))?.msg, 1, "bound stays");
      assert.notEqual(await files.get(fresh.id), null, "newer than the cut stays");
      assert.equal(await files.usage(), 260);
      const late = await under.commit({ type: "text/plain", size: 80 });
      assert.equal(late.created, 5000, "an upload under way was not swept");
      assert.equal(await files.sweepUnattached(3000), 0);
      assert.deepEqual(await files.bound("", 10), [{ id: sent.id, conv: "general", msg: 1 }]);
    },
  );

  test(
    "sweepUnattached() counts an attached, unbound file's age from its attach, not its upload",
    async (files, clock) => {
      // Uploaded long ago, sent just now: the send is between attach and bind.
      clock.now = 1000;
      const old = await upload(files, "alice", "old.txt", pattern(10));
      const resent = await upload(files, "alice", "resent.txt", pattern(20));
      clock.now = 9000;
      assert.ok(Array.isArray(await files.attach("alice", [old.id], "general", "")));
      assert.ok(Array.isArray(await files.attach("alice", [resent.id], "general", "k1")));
      assert.equal(await files.sweepUnattached(5000), 0, "attached after the cut");
      assert.equal((await files.get(old.id))?.conv, "general");
      await files.bind([old.id], "general", 4);
      assert.equal((await files.get(old.id))?.msg, 4, "the bind finds it");
      // A resend of the same ref does not move the attach time on.
      clock.now = 20_000;
      assert.ok(Array.isArray(await files.attach("alice", [resent.id], "general", "k1")));
      assert.equal(await files.sweepUnattached(9000), 0, "the cut is exclusive");
      assert.equal(await files.sweepUnattached(9001), 1, "attached before the cut, never bound");
      assert.equal(await files.get(resent.id), null);
      assert.equal((await files.get(old.id))?.msg, 4, "bound stays");
      assert.equal(await files.usage(), 10);
    },
  );

  test("remove() drops files, their bytes and records; unknown ids are ignored", async (files) => {
    const a = await upload(files, "alice", "a.txt", pattern(CHUNK_BYTES + 10));
    const b = await upload(files, "alice", "b.txt", pattern(20));
    await files.attach("alice", [b.id], "general", "");
    await files.bind([b.id], "general", 3);
    assert.equal(await files.usage(), CHUNK_BYTES + 30);
    await files.remove([a.id, b.id, "AAAAAAAAAAAAAAAAAAAAAA"]);
    assert.equal(await files.get(a.id), null);
    assert.equal(await files.get(b.id), null);
    assert.deepEqual(await files.bound("", 10), []);
    await assert.rejects(readAll(files.read(a.id, 0, 10)));
    assert.equal(await files.usage(), 0);
    await files.remove([a.id]);
    assert.equal(await files.usage(), 0, "removing twice gives nothing back twice");
    assert.deepEqual(await files.attach("alice", [a.id], "general", ""), { id: a.id });
  });

  test("usage() counts the uploads under way and the committed files", async (files) => {
    const w1 = await files.create("alice", "1.bin");
    const w2 = await files.create("bob", "2.bin");
    await w1.write(0, pattern(100));
    await w2.write(0, pattern(CHUNK_BYTES));
    await w2.write(1, pattern(50));
    assert.equal(await files.usage(), CHUNK_BYTES + 150);
    await w1.commit({ type: "application/octet-stream", size: 100 });
    assert.equal(await files.usage(), CHUNK_BYTES + 150, "a commit changes nothing");
    await w2.abort();
    assert.equal(await files.usage(), 100);
  });
}
