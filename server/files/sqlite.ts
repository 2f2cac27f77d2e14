/**
 * The file store of a server with `--data FILE`: files live in the same
 * SQLite file as the messages, so one backup holds both.
 *
 * It shares the {@link SqliteStore}'s connection. Every write here is one
 * short synchronous transaction (no `await` inside), so it never interleaves
 * with the message store's per-tick commit. An upload's row and chunks are
 * written as they come, but its row says "uploading" until the commit turns
 * it into a ready file in one transaction: readers never see it before, and
 * the rows of uploads a crash cut short are deleted when the store opens.
 *
 * The quota is counted in memory: the committed sizes summed at open, plus
 * what uploads under way have written. Removed bytes do not linger: the
 * connection zeroes freed pages (`PRAGMA secure_delete`, set by the data
 * file for every table), and the message store checkpoints the write-ahead
 * log soon after, as it does after a delete.
 *
 * @module
 */
import { immediate } from "../store/sqlite_tx.ts";
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { SqliteStore } from "../store/sqlite.ts";
import {
  type AttachRefusal,
  CHUNK_BYTES,
  type CommitInfo,
  type FileRecord,
  type FileStore,
  type FileWriter,
  newFileId,
  QuotaExceeded,
} from "./files.ts";
import { bounded } from "../bounded.ts";

/** Options for {@link SqliteFileStore.open}. */
export interface SqliteFileStoreOptions {
  /** Most bytes kept, uploads under way included. */
  quota: number;
  /** The clock, in ms since the epoch (for tests). @default {Date.now} */
  now?: () => number;
}

/** Chunks (of 256 KiB) between background checkpoints: 1 MiB of log. */
const CHECKPOINT_CHUNKS = 4;

/**
 * Bytes/s that uploads together may write into the data file: 40 MB/s, more
 * than most uplinks deliver (320 Mbit/s). Unpaced, a fast upload's burst of
 * writes makes every message commit's sync wait behind megabytes of it
 * (measured: chat p99 twice as long during a 25 MB upload over loopback;
 * paced, within 1.2×; docs/performance.md).
 */
const DISK_RATE = 40_000_000;

/** How far ahead of the budget an upload may run before it waits (ms). */
const PACE_SLACK_MS = 20;

/** Longest a commit waits for the background checkpoint before it syncs on its own (ms). */
const SETTLE_WAIT_MS = 5_000;

/** SQLite's default `wal_autocheckpoint` (pages), restored after each chunk. */
const AUTOCHECKPOINT = 1000;

/** `files.state`: an upload under way (invisible), a ready file, an attached one. */
const UPLOADING = 0, READY = 1, ATTACHED = 2;

/** Files removed per transaction by a sweep, with a turn of the event loop between. */
const SWEEP_BATCH = 16;

interface FileRow {
  id: string;
  owner: string;
  name: string;
  state: number;
  size: number;
  type: string;
  width: number | null;
  height: number | null;
  created: number;
  conv: string | null;
  ref: string | null;
  msg: number | null;
}

/** A {@link FileStore} in the data file of a {@link SqliteStore}. */
export class SqliteFileStore implements FileStore {
  readonly quota: number;
  #store: SqliteStore;
  #db: DatabaseSync;
  #sql: ReturnType<typeof statements>;
  #now: () => number;
  #used: number;
  #closed = false;
  /** The connection's `PRAGMA synchronous` (2 = FULL), restored after each chunk. */
  #synchronous: number;
  /** Chunks written since the last background checkpoint was asked for. */
  #unsynced = 0;
  /** When the disk budget lets the next chunk go (performance.now()). */
  #nextWrite = 0;

  private constructor(store: SqliteStore, options: SqliteFileStoreOptions) {
    this.quota = options.quota;
    this.#store = store;
    this.#db = store.database;
    this.#sql = statements(this.#db);
    this.#now = options.now ?? Date.now;
    this.#synchronous = Number(this.#db.prepare("PRAGMA synchronous").get()?.synchronous ?? 2);
    // Uploads a crash (or a kill) cut short: nobody could see them, nobody will.
    const gone = this.#tx(() => {
      const n = this.#sql.dropUploadChunks.run().changes;
      this.#sql.dropUploads.run();
      return Number(n);
    });
    if (gone > 0) store.removedData();
    this.#used = Number(this.#sql.used.get()?.n ?? 0);
  }

  /**
   * The file store in `store`'s data file (schema 8 and later). Deletes the
   * rows of uploads that never committed.
   *
   * @example
   * ```ts
   * import { SqliteStore } from "../store/sqlite.ts";
   * import { SqliteFileStore } from "./sqlite.ts";
   * const store = SqliteStore.open(await Deno.makeTempFile({ suffix: ".db" }));
   * const files = SqliteFileStore.open(store, { quota: 100 * 1024 * 1024 });
   * const upload = await files.create("alice", "hello.txt");
   * await upload.write(0, new TextEncoder().encode("hello"));
   * await upload.commit({ type: "text/plain", size: 5 });
   * await files.close();
   * await store.close();
   * ```
   */
  static open(store: SqliteStore, options: SqliteFileStoreOptions): SqliteFileStore {
    return new SqliteFileStore(store, options);
  }

  /** Starts an upload: a row nobody can read until {@link FileWriter.commit}. */
  create(owner: string, name: string): Promise<FileWriter> {
    return this.#run(() => {
      const id = newFileId();
      this.#sql.addUpload.run(id, owner, name, UPLOADING, this.#now());
      return this.#writer(id);
    });
  }

  /** The writer of upload `id`: chunk rows of an invisible file row. */
  #writer(id: string): FileWriter {
    /** Bytes of each chunk written (counted against the quota). */
    const chunks = new Map<number, number>();
    let done = false;
    const open = () => {
      if (done) throw new Error(`The upload of file "${id}" is finished`);
    };
    const write = (index: number, bytes: Uint8Array) => {
      open();
      if (!Number.isSafeInteger(index) || index < 0) {
        throw new RangeError(`Chunk index ${index} is not a whole number of 0 or more`);
      }
      if (bytes.length > CHUNK_BYTES) {
        throw new RangeError(`Chunk of ${bytes.length} bytes: at most ${CHUNK_BYTES}`);
      }
      const grow = bytes.length - (chunks.get(index) ?? 0);
      // Checked and counted in the same turn as the write: concurrent uploads cannot both pass.
      if (this.#used + grow > this.quota) throw new QuotaExceeded(this.quota);
      this.#chunk(id, index, bytes);
      this.#used += grow;
      chunks.set(index, bytes.length);
    };
    const commit = (info: CommitInfo): FileRecord => {
      open();
      checkChunks(id, chunks, info.size);
      const row = this.#tx(() =>
        this.#sql.commit.get(
          id,
          info.size,
          info.type,
          info.width ?? null,
          info.height ?? null,
          this.#now(),
        ) as FileRow | undefined
      );
      if (!row) throw new Error(`Cannot commit file "${id}": its upload is gone`);
      done = true;
      return toRecord(row);
    };
    const abort = () => {
      if (done) return;
      done = true;
      this.#tx(() => {
        this.#sql.dropChunks.run(id);
        this.#sql.dropUpload.run(id);
      });
      for (const len of chunks.values()) this.#used -= len;
      chunks.clear();
      this.#store.removedData();
    };
    return {
      id,
      write: async (index, bytes) => {
        await this.#run(() => write(index, bytes));
        await this.#pace(bytes.length);
      },
      commit: async (info) => {
        // A large upload's log is synced off the main thread first (see #chunk).
        // Bounded: the commit's own FULL sync is correct without it, only slower.
        if (chunks.size > CHECKPOINT_CHUNKS && !this.#closed) {
          await bounded(this.#store.settleLog(), SETTLE_WAIT_MS);
        }
        return this.#run(() => commit(info));
      },
      // Gives the bytes back even once the store is closed (the rows go at the next open).
      abort: () => {
        if (this.#closed) {
          done = true;
          for (const len of chunks.values()) this.#used -= len;
          chunks.clear();
          return Promise.resolve();
        }
        return this.#run(abort);
      },
    };
  }

  /** A committed file, or null. */
  get(id: string): Promise<FileRecord | null> {
    return this.#run(() => {
      const row = this.#sql.file.get(id) as FileRow | undefined;
      return row && row.state !== UPLOADING ? toRecord(row) : null;
    });
  }

  /**
   * The bytes `start` to `end` (clamped to the file's size), one stored
   * chunk per pull: only the part of the chunk asked for is read from the
   * file. Errors when the file is unknown, or removed while it is read.
   */
  read(id: string, start: number, end: number): ReadableStream<Uint8Array> {
    let pos = Math.max(0, start);
    let stop = end;
    let checked = false;
    return new ReadableStream<Uint8Array>({
      pull: (controller) => {
        try {
          if (this.#closed) throw new Error("The file store is closed");
          if (!checked) {
            const row = this.#sql.file.get(id) as FileRow | undefined;
            if (!row || row.state === UPLOADING) throw new Error(`No file "${id}"`);
            stop = Math.min(stop, Number(row.size));
            checked = true;
          }
          if (pos >= stop) return controller.close();
          const n = Math.floor(pos / CHUNK_BYTES);
          const offset = pos - n * CHUNK_BYTES;
          const want = Math.min(CHUNK_BYTES - offset, stop - pos);
          const part = this.#sql.chunkPart.get(offset + 1, want, id, n)?.part;
          if (!(part instanceof Uint8Array) || part.length === 0) {
            throw new Error(`File "${id}" is gone`);
          }
          controller.enqueue(part);
          pos += part.length;
        } catch (err) {
          controller.error(err);
        }
      },
    }, { highWaterMark: 0 });
  }

  /** Attaches files for a send, all or none, in one transaction (see {@link FileStore.attach}). */
  attach(
    owner: string,
    ids: readonly string[],
    conv: string,
    ref: string,
  ): Promise<FileRecord[] | AttachRefusal> {
    return this.#run(() =>
      this.#tx((): FileRecord[] | AttachRefusal => {
        const rows: FileRow[] = [];
        for (const id of ids) {
          const r = this.#sql.file.get(id) as FileRow | undefined;
          const ok = r !== undefined && r.owner === owner &&
            (r.state === READY ||
              (r.state === ATTACHED && ref !== "" && r.conv === conv && r.ref === ref));
          if (!ok) return { id };
          rows.push(r);
        }
        const at = this.#now();
        for (const r of rows) {
          if (r.state !== READY) continue;
          this.#sql.attach.run(r.id, conv, ref, at);
          r.state = ATTACHED;
          r.conv = conv;
          r.ref = ref;
        }
        return rows.map(toRecord);
      })
    );
  }

  /** Records the message carrying files attached to `conv`. */
  bind(ids: readonly string[], conv: string, msg: number): Promise<void> {
    return this.#run(() =>
      this.#tx(() => {
        for (const id of ids) this.#sql.bind.run(id, conv, msg);
      })
    );
  }

  /** Moves the files of conversation `from` to `to` in one transaction (see {@link FileStore.rebind}). */
  rebind(from: string, to: string): Promise<number> {
    return this.#run(() => this.#tx(() => Number(this.#sql.rebind.run(from, to).changes)));
  }

  /** Removes committed files, one transaction each, and gives their bytes back. */
  remove(ids: readonly string[]): Promise<void> {
    return this.#run(() => {
      let removed = false;
      for (const id of ids) {
        const size = this.#tx(() => this.#removeIf(this.#sql.removeFile, id));
        if (size < 0) continue;
        this.#used -= size;
        removed = true;
      }
      if (removed) this.#store.removedData();
    });
  }

  /**
   * Removes ready files committed before `before`, and attached files
   * never bound that were attached before it (a send in progress keeps its
   * files however old their upload), in small transactions.
   */
  async sweepUnattached(before: number): Promise<number> {
    const ids = await this.#run(() =>
      this.#sql.unattached.all(before, before).map((r) => String(r.id))
    );
    let n = 0;
    for (let i = 0; i < ids.length; i += SWEEP_BATCH) {
      if (i > 0) await new Promise((resolve) => setTimeout(resolve, 0));
      const sizes = await this.#run(() =>
        this.#tx(() =>
          // Checked again in the delete: the file may have been attached or bound meanwhile.
          ids.slice(i, i + SWEEP_BATCH).map((id) =>
            this.#removeIf(this.#sql.removeUnattached, id, before)
          )
        )
      );
      // Counted once the transaction committed.
      for (const size of sizes) {
        if (size < 0) continue;
        this.#used -= size;
        n++;
      }
    }
    if (n > 0) this.#store.removedData();
    return n;
  }

  /** Bound files after `after` by id, at most `limit`. */
  bound(after: string, limit: number): Promise<{ id: string; conv: string; msg: number }[]> {
    return this.#run(() =>
      this.#sql.bound.all(after, Math.max(0, limit)).map((r) => ({
        id: String(r.id),
        conv: String(r.conv),
        msg: Number(r.msg),
      }))
    );
  }

  /** Committed bytes plus what uploads under way have written. */
  usage(): Promise<number> {
    return Promise.resolve(this.#used);
  }

  /** Stops answering; the message store closes the connection. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }

  // -------------------------------------------------------------------------

  /**
   * Deletes the file `id` with `statement` (which names the rows it may
   * delete, returning their size) and, if it went, its chunks, in the
   * transaction the caller opened; returns the bytes it held, or -1 when it
   * did not go.
   */
  #removeIf(statement: StatementSync, id: string, ...args: number[]): number {
    const gone = statement.get(id, ...args);
    if (gone === undefined) return -1;
    this.#sql.dropChunks.run(id);
    return Number(gone.size);
  }

  /**
   * Writes one chunk without syncing the log or checkpointing it on this
   * thread (`synchronous = NORMAL` and no automatic checkpoint, for this one
   * statement): a sync or a checkpoint here would hold the event loop, and
   * chat delivery with it, for tens of milliseconds at a time during a large
   * upload. Every {@link CHECKPOINT_CHUNKS} chunks the log is checkpointed
   * from another thread instead (which syncs it), so the commit's own sync
   * (FULL: durable up to and including the chunks) has little left to do. A
   * power cut can lose an unfinished upload's chunks, never damage the file.
   */
  #chunk(id: string, index: number, bytes: Uint8Array): void {
    const db = this.#db;
    const relax = this.#synchronous > 1;
    try {
      if (relax) db.exec("PRAGMA synchronous = NORMAL");
      db.exec("PRAGMA wal_autocheckpoint = 0");
      this.#sql.putChunk.run(id, index, bytes);
    } finally {
      // Durability first: messages committed next must be FULL again, whatever failed.
      try {
        if (relax) db.exec(`PRAGMA synchronous = ${this.#synchronous}`);
      } finally {
        db.exec(`PRAGMA wal_autocheckpoint = ${AUTOCHECKPOINT}`);
      }
    }
    if (++this.#unsynced >= CHECKPOINT_CHUNKS) {
      this.#unsynced = 0;
      this.#store.grewLog();
    }
  }

  /** Spreads chunk writes over time: at most {@link DISK_RATE} bytes/s, all uploads together. */
  async #pace(bytes: number): Promise<void> {
    const now = performance.now();
    this.#nextWrite = Math.max(this.#nextWrite, now) + bytes / DISK_RATE * 1000;
    const wait = this.#nextWrite - now - PACE_SLACK_MS;
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }

  #tx<T>(fn: () => T): T {
    return immediate(this.#db, fn);
  }

  #run<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new Error("The file store is closed"));
    try {
      return Promise.resolve(fn());
    } catch (err) {
      return Promise.reject(err);
    }
  }
}

/**
 * Checks that an upload's chunks make a whole file of `size` bytes: chunks
 * 0 to n-1, each {@link CHUNK_BYTES} but the last (reads find a byte's
 * chunk by dividing).
 */
function checkChunks(id: string, chunks: Map<number, number>, size: number): void {
  const n = chunks.size;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const len = chunks.get(i);
    if (len === undefined || (i < n - 1 && len !== CHUNK_BYTES)) {
      throw new RangeError(
        `Cannot commit file "${id}": chunk ${i} is ${
          len === undefined ? "missing" : `${len} bytes, not ${CHUNK_BYTES}`
        }`,
      );
    }
    sum += len;
  }
  if (sum !== size) {
    throw new RangeError(`Cannot commit file "${id}": its chunks hold ${sum} bytes, not ${size}`);
  }
}

function toRecord(r: FileRow): FileRecord {
  const record: FileRecord = {
    id: r.id,
    name: r.name,
    size: Number(r.size),
    type: r.type,
    owner: r.owner,
    created: Number(r.created),
  };
  if (r.width !== null) record.width = Number(r.width);
  if (r.height !== null) record.height = Number(r.height);
  if (r.state === ATTACHED) {
    record.conv = r.conv ?? "";
    record.ref = r.ref ?? "";
    if (r.msg !== null) record.msg = Number(r.msg);
  }
  return record;
}

const FILE_COLUMNS = "id, owner, name, state, size, type, width, height, created, conv, ref, msg";

function statements(db: DatabaseSync) {
  const p = (sql: string): StatementSync => db.prepare(sql);
  return {
    addUpload: p("INSERT INTO files (id, owner, name, state, created) VALUES (?, ?, ?, ?, ?)"),
    // A rewritten chunk replaces the old one (the unique index on (file, n)).
    putChunk: p("INSERT OR REPLACE INTO file_chunks (file, n, data) VALUES (?, ?, ?)"),
    commit: p(
      `UPDATE files SET state = ${READY}, size = ?2, type = ?3, width = ?4, height = ?5,
         created = ?6
       WHERE id = ?1 AND state = ${UPLOADING} RETURNING ${FILE_COLUMNS}`,
    ),
    dropUpload: p(`DELETE FROM files WHERE id = ? AND state = ${UPLOADING}`),
    dropChunks: p("DELETE FROM file_chunks WHERE file = ?"),
    dropUploadChunks: p(
      `DELETE FROM file_chunks WHERE file IN (SELECT id FROM files WHERE state = ${UPLOADING})`,
    ),
    dropUploads: p(`DELETE FROM files WHERE state = ${UPLOADING}`),
    used: p(`SELECT coalesce(sum(size), 0) AS n FROM files WHERE state <> ${UPLOADING}`),
    file: p(`SELECT ${FILE_COLUMNS} FROM files WHERE id = ?`),
    // substr() of a blob is a blob: only the part asked for leaves the file.
    chunkPart: p("SELECT substr(data, ?1, ?2) AS part FROM file_chunks WHERE file = ?3 AND n = ?4"),
    attach: p(
      `UPDATE files SET state = ${ATTACHED}, conv = ?2, ref = ?3, attached = ?4
       WHERE id = ?1 AND state = ${READY}`,
    ),
    bind: p(`UPDATE files SET msg = ?3 WHERE id = ?1 AND conv = ?2 AND state = ${ATTACHED}`),
    // No index by conversation: a rename (rare, by an admin) reads every file's row, not its bytes.
    rebind: p(`UPDATE files SET conv = ?2 WHERE conv = ?1 AND state = ${ATTACHED}`),
    removeFile: p(`DELETE FROM files WHERE id = ? AND state <> ${UPLOADING} RETURNING size`),
    // The partial index holds only files sent and not bound yet: a sweep
    // never walks every file ever sent.
    unattached: p(
      `SELECT id FROM files WHERE state = ${READY} AND created < ?1
       UNION ALL
       SELECT id FROM files INDEXED BY files_unbound
         WHERE state = ${ATTACHED} AND msg IS NULL AND attached < ?2`,
    ),
    removeUnattached: p(
      `DELETE FROM files WHERE id = ?1 AND ((state = ${READY} AND created < ?2)
         OR (state = ${ATTACHED} AND msg IS NULL AND attached < ?2))
       RETURNING size`,
    ),
    bound: p(
      "SELECT id, conv, msg FROM files WHERE id > ? AND msg IS NOT NULL ORDER BY id LIMIT ?",
    ),
  } satisfies Record<string, StatementSync>;
}
