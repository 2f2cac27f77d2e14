import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { CHUNK_BYTES } from "../server/files/files.ts";
import { MemoryFileStore } from "../server/files/memory.ts";
import { SqliteFileStore } from "../server/files/sqlite.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { fileStoreContract, pattern, readAll, upload } from "./file_store_contract.ts";
import { FileJanitor } from "../server/files/janitor.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { memoryLogger } from "../server/log.ts";
import type { FileStore } from "../server/files/files.ts";

fileStoreContract("MemoryFileStore", (options) => Promise.resolve(new MemoryFileStore(options)));

fileStoreContract("SqliteFileStore", async (options) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-files-" });
  const store = SqliteStore.open(`${dir}/chat.db`);
  const files = SqliteFileStore.open(store, options);
  const close = files.close.bind(files);
  files.close = async () => {
    await close();
    await store.close();
    await Deno.remove(dir, { recursive: true });
  };
  return files;
});

/** A temporary directory with `chat.db` in it, removed on dispose. */
async function tempData(): Promise<{ dir: string; path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "chat-files-" });
  return {
    dir,
    path: `${dir}/chat.db`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** The message store and the file store of a data file, closed together on dispose. */
function openBoth(
  path: string,
  quota = 64 * CHUNK_BYTES,
): { store: SqliteStore; files: SqliteFileStore } & AsyncDisposable {
  const store = SqliteStore.open(path, { checkpointDelay: 60_000 });
  const files = SqliteFileStore.open(store, { quota });
  return {
    store,
    files,
    [Symbol.asyncDispose]: async () => {
      await files.close();
      await store.close();
    },
  };
}

/** Runs `fn` on a second, read-only connection. */
function peek<T>(path: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

function countRows(path: string, table: string): number {
  return peek(path, (db) => Number(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()!.n));
}

/**
 * A child process that opens the data file as a server does, commits the
 * file `done.bin` (when `commitFirst`), then writes two chunks of
 * `cut.bin` and waits forever: the test kills it there.
 */
function childScript(path: string, commitFirst: boolean): string {
  const url = (p: string) => new URL(p, import.meta.url).href;
  return `
    import { SqliteStore } from ${JSON.stringify(url("../server/store/sqlite.ts"))};
    import { SqliteFileStore } from ${JSON.stringify(url("../server/files/sqlite.ts"))};
    import { CHUNK_BYTES } from ${JSON.stringify(url("../server/files/files.ts"))};
    import { pattern } from ${JSON.stringify(url("./file_store_contract.ts"))};
    const store = SqliteStore.open(${JSON.stringify(path)});
    const files = SqliteFileStore.open(store, { quota: 1 << 30 });
    const say = (line) => Deno.stdout.write(new TextEncoder().encode(line + "\\n"));
    if (${commitFirst}) {
      const w = await files.create("alice", "done.bin");
      const bytes = pattern(CHUNK_BYTES + 999, 5);
      await w.write(1, bytes.subarray(CHUNK_BYTES));
      await w.write(0, bytes.subarray(0, CHUNK_BYTES));
      await w.commit({ type: "application/octet-stream", size: bytes.length });
      await say("committed " + w.id);
    }
    const cut = await files.create("alice", "cut.bin");
    await cut.write(2, pattern(100, 9));
    await cut.write(1, pattern(CHUNK_BYTES, 9));
    await say("uploading " + cut.id);
    setInterval(() => {}, 1000);
  `;
}

/** Runs the child until it has said `lines` lines, kills it with SIGKILL; resolves the lines. */
async function killMidUpload(dir: string, path: string, commitFirst: boolean): Promise<string[]> {
  const script = `${dir}/child.ts`;
  await Deno.writeTextFile(script, childScript(path, commitFirst));
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      `--config=${new URL("../deno.json", import.meta.url).pathname}`,
      script,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const want = commitFirst ? 2 : 1;
  const lines: string[] = [];
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const errors = new Response(child.stderr).text();
  try {
    let text = "";
    while (lines.length < want) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
      const parts = text.split("\n");
      text = parts.pop()!;
      lines.push(...parts);
    }
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // It died by itself: its stderr says why.
    }
    const status = await child.status;
    reader.releaseLock();
    await child.stdout.cancel().catch(() => {});
    const stderr = await errors;
    assert.equal(lines.length, want, `the child said ${JSON.stringify(lines)}: ${stderr}`);
    assert.equal(status.signal, "SIGKILL");
  }
  return lines;
}

Deno.test("SqliteFileStore: an upload cut by kill -9 leaves nothing at the next open", async () => {
  await using data = await tempData();
  const [line] = await killMidUpload(data.dir, data.path, false);
  const id = line.split(" ")[1];
  assert.equal(
    peek(data.path, (db) => Number(db.prepare("SELECT count(*) AS n FROM file_chunks").get()!.n)),
    2,
    "the chunks were written before the kill",
  );
  await using both = openBoth(data.path);
  assert.equal(await both.files.get(id), null);
  assert.equal(await both.files.usage(), 0);
  await assert.rejects(readAll(both.files.read(id, 0, 10)));
  assert.equal(countRows(data.path, "files"), 0, "the upload's row is gone");
  assert.equal(countRows(data.path, "file_chunks"), 0, "and its chunks");
});

Deno.test("SqliteFileStore: a committed file survives kill -9 byte for byte", async () => {
  await using data = await tempData();
  const lines = await killMidUpload(data.dir, data.path, true);
  const done = lines[0].split(" ")[1], cut = lines[1].split(" ")[1];
  await using both = openBoth(data.path);
  const bytes = pattern(CHUNK_BYTES + 999, 5);
  const record = await both.files.get(done);
  assert.deepEqual(
    record && { name: record.name, size: record.size, owner: record.owner },
    { name: "done.bin", size: bytes.length, owner: "alice" },
  );
  assert.deepEqual(await readAll(both.files.read(done, 0, bytes.length)), bytes);
  assert.equal(await both.files.get(cut), null);
  assert.equal(await both.files.usage(), bytes.length, "only the committed file counts");
  assert.equal(countRows(data.path, "file_chunks"), 2, "only the committed file's chunks are left");
});

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  const first = needle[0];
  outer: for (let i = hay.indexOf(first); i !== -1 && i <= hay.length - needle.length;) {
    for (let j = 1; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) {
        i = hay.indexOf(first, i + 1);
        continue outer;
      }
    }
    return true;
  }
  return false;
}

async function fileBytes(path: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return new Uint8Array(0);
    throw err;
  }
}

Deno.test("SqliteFileStore.remove() leaves the file's bytes nowhere in the data file or its log", async () => {
  await using data = await tempData();
  await using both = openBoth(data.path);
  const marker = new TextEncoder().encode("SECRET-PHOTO-BYTES-");
  const bytes = new Uint8Array(2 * CHUNK_BYTES + 500);
  for (let i = 0; i + marker.length <= bytes.length; i += marker.length) bytes.set(marker, i);
  const kept = await upload(both.files, "alice", "keep.bin", pattern(CHUNK_BYTES + 3));
  const f = await upload(both.files, "alice", "secret.bin", bytes);
  // Into the data file itself, so that the test shows the bytes leave it.
  // (After any checkpoint the upload asked of the checkpoint thread: it would make this one busy.)
  await both.store.settleLog();
  both.store.database.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  assert.ok(contains(await Deno.readFile(data.path), marker), "the bytes were in the file");
  await both.files.remove([f.id]);
  await both.store.flush();
  assert.ok(!contains(await Deno.readFile(data.path), marker), "not in the data file");
  assert.ok(!contains(await fileBytes(`${data.path}-wal`), marker), "not in its log");
  assert.deepEqual(
    await readAll(both.files.read(kept.id, 0, kept.size)),
    pattern(CHUNK_BYTES + 3),
    "the other file is intact",
  );
});

Deno.test("SqliteFileStore.sweepUnattached() and an aborted upload leave no bytes behind either", async () => {
  await using data = await tempData();
  await using both = openBoth(data.path);
  const marker = new TextEncoder().encode("UNSENT-SCREENSHOT-");
  const bytes = new Uint8Array(CHUNK_BYTES + 100);
  for (let i = 0; i + marker.length <= bytes.length; i += marker.length) bytes.set(marker, i);
  await upload(both.files, "alice", "unsent.bin", bytes);
  const w = await both.files.create("alice", "aborted.bin");
  await w.write(0, bytes.subarray(0, CHUNK_BYTES));
  // (After any checkpoint the upload asked of the checkpoint thread: it would make this one busy.)
  await both.store.settleLog();
  both.store.database.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  assert.ok(contains(await Deno.readFile(data.path), marker));
  await w.abort();
  assert.equal(await both.files.sweepUnattached(Date.now() + 1), 1);
  await both.store.flush();
  assert.ok(!contains(await Deno.readFile(data.path), marker), "not in the data file");
  assert.ok(!contains(await fileBytes(`${data.path}-wal`), marker), "not in its log");
  assert.equal(await both.files.usage(), 0);
});

Deno.test("SqliteFileStore counts the committed files at open; files, attachments and bindings survive a reopen", async () => {
  await using data = await tempData();
  let a, b;
  {
    await using both = openBoth(data.path);
    a = await upload(both.files, "alice", "a.png", pattern(CHUNK_BYTES + 1), {
      type: "image/png",
      width: 3,
      height: 4,
    });
    b = await upload(both.files, "bob", "b.txt", pattern(10));
    await both.files.attach("alice", [a.id], "general", "k1");
    await both.files.bind([a.id], "general", 5);
  }
  await using both = openBoth(data.path, CHUNK_BYTES + 20);
  assert.equal(await both.files.usage(), CHUNK_BYTES + 11);
  assert.deepEqual(await both.files.get(a.id), { ...a, conv: "general", ref: "k1", msg: 5 });
  assert.deepEqual(await both.files.get(b.id), b);
  assert.deepEqual(await both.files.bound("", 10), [{ id: a.id, conv: "general", msg: 5 }]);
  const w = await both.files.create("carol", "c.bin");
  await assert.rejects(w.write(0, pattern(10)), /full/, "the quota counts what was there");
  await w.write(0, pattern(9));
  await w.abort();
});

Deno.test("SqliteFileStore.commit() refuses chunks that do not make the whole file", async () => {
  await using data = await tempData();
  await using both = openBoth(data.path);
  const gap = await both.files.create("alice", "gap.bin");
  await gap.write(1, pattern(10));
  await assert.rejects(
    gap.commit({ type: "text/plain", size: 10 }),
    /chunk 0 is missing/,
  );
  const short = await both.files.create("alice", "short.bin");
  await short.write(0, pattern(10));
  await short.write(1, pattern(10));
  await assert.rejects(short.commit({ type: "text/plain", size: 20 }), /chunk 0 is 10 bytes/);
  const size = await both.files.create("alice", "size.bin");
  await size.write(0, pattern(10));
  await assert.rejects(size.commit({ type: "text/plain", size: 11 }), /hold 10 bytes, not 11/);
  await assert.rejects(size.write(0, pattern(CHUNK_BYTES + 1)), RangeError);
  await Promise.all([gap.abort(), short.abort(), size.abort()]);
  assert.equal(await both.files.usage(), 0);
  assert.equal(countRows(data.path, "files"), 0);
});

Deno.test("SqliteFileStore shares the connection: file writes between message commits", async () => {
  await using data = await tempData();
  await using both = openBoth(data.path);
  const { store, files } = both;
  // A message write queued (committed at the next tick) and a file written meanwhile.
  const sent = store.append({ conv: "general", room: "general", from: "alice", text: "hi" });
  const f = await upload(files, "alice", "a.txt", pattern(100));
  const attached = await files.attach("alice", [f.id], "general", "k1");
  assert.ok(Array.isArray(attached));
  const msg = await store.append({
    conv: "general",
    room: "general",
    from: "alice",
    text: "",
    files: attached.map(({ id, name, size, type }) => ({ id, name, size, type })),
  });
  await files.bind([f.id], "general", msg.id);
  assert.equal((await sent).id, 1);
  assert.deepEqual((await store.message("general", 2))?.files, [
    { id: f.id, name: "a.txt", size: 100, type: "application/octet-stream" },
  ]);
  assert.deepEqual(await files.bound("", 10), [{ id: f.id, conv: "general", msg: 2 }]);
});

Deno.test("SqliteFileStore.sweepUnattached() counts an unbound file's age from its attach: a send under way keeps it", async () => {
  await using data = await tempData();
  const clock = { now: 1000 };
  const store = SqliteStore.open(data.path);
  const files = SqliteFileStore.open(store, { quota: 1 << 20, now: () => clock.now });
  try {
    const old = await upload(files, "alice", "old.txt", pattern(10));
    clock.now = 9000;
    await files.attach("alice", [old.id], "general", "k1");
    assert.equal(await files.sweepUnattached(5000), 0, "attached after the cut");
    assert.equal(await files.sweepUnattached(9001), 1, "attached before it, never bound");
    assert.equal(await files.usage(), 0);
  } finally {
    await files.close();
    await store.close();
  }
});

Deno.test("FileJanitor.sweep() keeps the files of a room just renamed until they are rebound; others whose message is gone go", async () => {
  const files = new MemoryFileStore({ quota: 64 * CHUNK_BYTES });
  const store = new MemoryStore();
  const janitor = new FileJanitor(files, store, memoryLogger());
  const orphans = { unattached: false, orphans: true };
  /** Uploads a file and sends it in `conv` (a message is stored only with `store`). */
  const sent = async (conv: string, store?: MemoryStore) => {
    const f = await upload(files, "alice", `${conv}.txt`, pattern(10));
    assert.ok(Array.isArray(await files.attach("alice", [f.id], conv, "")));
    const draft = conv.startsWith("@")
      ? { conv, to: "bob", from: "alice", text: "" }
      : { conv, room: conv, from: "alice", text: "" };
    const msg = store ? (await store.append({ ...draft, files: [f] })).id : 99;
    await files.bind([f.id], conv, msg);
    return f.id;
  };
  const kept = (fs: FileStore, ids: string[]) =>
    Promise.all(ids.map(async (id) => (await fs.get(id))?.conv ?? null));
  await store.join("alice", "ops");
  await store.join("alice", "general");
  const inOps = await sent("ops", store);
  const lost = await sent("general");
  const lostDm = await sent("@alice:bob");
  assert.equal(await store.renameRoom("ops", "deploys"), "renamed");
  // Between the rename and the rebind: the message is under the new name.
  assert.equal(await janitor.sweep(Date.now(), orphans), 2, "only the files whose message is gone");
  assert.deepEqual(await kept(files, [inOps, lost, lostDm]), ["ops", null, null]);
  assert.equal(await files.rebind("ops", "deploys"), 1);
  assert.equal(await janitor.sweep(Date.now(), orphans), 0, "found under the new name");
  assert.deepEqual(await kept(files, [inOps]), ["deploys"]);
  // A room of the old name created again: a file left under it (a failed rebind) now goes.
  const stale = await sent("deploys", store);
  assert.equal(await store.renameRoom("deploys", "ops"), "renamed");
  await store.join("bob", "deploys");
  assert.equal(
    await janitor.sweep(Date.now(), orphans),
    2,
    "the room exists: its message is not there",
  );
  assert.deepEqual(await kept(files, [inOps, stale]), [null, null]);
});
