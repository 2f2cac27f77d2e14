/**
 * A large upload into the data file: its chunks are written without a sync
 * or a checkpoint on the main thread, the log is checkpointed from a worker
 * instead, and the file comes back whole — after a close and after a
 * reopen. The main connection's settings are as they were after each chunk.
 */
import assert from "node:assert/strict";
import { CHUNK_BYTES } from "../server/files/files.ts";
import { SqliteFileStore } from "../server/files/sqlite.ts";
import { Checkpointer } from "../server/store/checkpointer.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { memoryLogger } from "../server/log.ts";
import { readAll } from "./file_store_contract.ts";

function chunk(i: number, length = CHUNK_BYTES): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let j = 0; j < length; j++) bytes[j] = (i * 31 + j * 7) & 0xff;
  return bytes;
}

function pragma(store: SqliteStore, name: string): number {
  return Number(store.database.prepare(`PRAGMA ${name}`).get()?.[name]);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

Deno.test("a large upload is checkpointed off the main thread and comes back whole", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-checkpoint-" });
  const path = `${dir}/chat.db`;
  const n = 40; // 10 MiB: several background checkpoints
  let id = "";
  try {
    const store = SqliteStore.open(path);
    const files = SqliteFileStore.open(store, { quota: 1e9 });
    try {
      const w = await files.create("ann", "big.bin");
      id = w.id;
      // One buffer, reused for every chunk as the upload route does.
      const buf = new Uint8Array(CHUNK_BYTES);
      for (let i = 1; i < n; i++) {
        buf.set(chunk(i));
        await w.write(i, buf);
        assert.equal(pragma(store, "synchronous"), 2, "FULL again after each chunk");
        assert.equal(
          pragma(store, "wal_autocheckpoint"),
          1000,
          "checkpoints again after each chunk",
        );
      }
      buf.set(chunk(0));
      await w.write(0, buf);
      const record = await w.commit({ type: "application/octet-stream", size: n * CHUNK_BYTES });
      assert.equal(record.size, n * CHUNK_BYTES);
      assert.ok(
        store.stats.backgroundCheckpoints >= 2,
        `checkpointed from the worker: ${store.stats.backgroundCheckpoints}`,
      );
      const back = await readAll(files.read(id, 0, n * CHUNK_BYTES));
      for (let i = 0; i < n; i++) {
        assert.deepEqual(
          back.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES),
          chunk(i),
          `chunk ${i}`,
        );
      }
    } finally {
      await files.close();
      await store.close();
    }
    // The worker's connection closed first: the main one was the last and removed the log.
    assert.equal(await exists(`${path}-wal`), false, "no log left after close");

    const again = SqliteStore.open(path);
    const files2 = SqliteFileStore.open(again, { quota: 1e9 });
    try {
      const file = await files2.get(id);
      assert.equal(file?.size, n * CHUNK_BYTES);
      const back = await readAll(files2.read(id, (n - 1) * CHUNK_BYTES, n * CHUNK_BYTES));
      assert.deepEqual(back, chunk(n - 1));
      assert.equal(again.stats.backgroundCheckpoints, 0, "the worker starts only when needed");
    } finally {
      await files2.close();
      await again.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a small upload never starts the checkpoint worker", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-checkpoint-" });
  try {
    const store = SqliteStore.open(`${dir}/chat.db`);
    const files = SqliteFileStore.open(store, { quota: 1e9 });
    try {
      const w = await files.create("ann", "small.bin");
      await w.write(1, chunk(1));
      await w.write(0, chunk(0));
      await w.commit({ type: "application/octet-stream", size: 2 * CHUNK_BYTES });
      assert.equal(store.stats.backgroundCheckpoints, 0);
    } finally {
      await files.close();
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("closing the store while an upload waits for its checkpoint ends cleanly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-checkpoint-" });
  try {
    const store = SqliteStore.open(`${dir}/chat.db`);
    const files = SqliteFileStore.open(store, { quota: 1e9 });
    let commit: Promise<unknown> = Promise.resolve(null);
    try {
      const w = await files.create("ann", "cut.bin");
      for (let i = 1; i < 20; i++) await w.write(i, chunk(i));
      await w.write(0, chunk(0));
      commit = w.commit({ type: "application/octet-stream", size: 20 * CHUNK_BYTES }).then(
        () => null,
        (err: Error) => err,
      );
    } finally {
      await files.close();
      await store.close();
    }
    // Either committed before the close or refused because of it: never hanging.
    const err = await commit;
    if (err !== null) assert.match((err as Error).message, /closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a checkpoint thread that fails does not leave a commit waiting", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-checkpoint-" });
  const path = `${dir}/chat.db`;
  const log = memoryLogger();
  const c = new Checkpointer(path, log, {
    worker: new URL("./fixtures/failing_checkpoint_worker.ts", import.meta.url),
  });
  try {
    // The first run fails (the worker throws): whoever waited is let go…
    await Deno.writeTextFile(`${path}.fail`, "");
    await c.settle();
    assert.equal(c.checkpoints, 0);
    assert.ok(
      log.lines.some((l) => /Background checkpoints .* stopped: .*on fire/.test(l)),
      log.lines.join("\n"),
    );
    // …and whoever asks afterwards waits for a new worker's run only, which succeeds.
    await c.settle();
    assert.equal(c.checkpoints, 1);
    await c.settle();
    assert.equal(c.checkpoints, 2);
    assert.equal(await c.close(), true);
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a checkpoint thread that never confirms closing is ended, and close says so", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-checkpoint-" });
  const path = `${dir}/chat.db`;
  const c = new Checkpointer(path, memoryLogger(), {
    worker: new URL("./fixtures/failing_checkpoint_worker.ts", import.meta.url),
    closeWait: 200,
  });
  try {
    await c.settle();
    assert.equal(c.checkpoints, 1);
    // The worker ignores the request to close: the caller must empty the log itself.
    await Deno.writeTextFile(`${path}.silent`, "");
    assert.equal(await c.close(), false);
  } finally {
    await c.close();
    await Deno.remove(dir, { recursive: true });
  }
});
