/**
 * The file store of a server without `--data` or `--redis`: files live in
 * this process, bounded by the quota, and are gone on restart, as history is.
 *
 * @module
 */
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

/** Options for {@link MemoryFileStore}. */
export interface MemoryFileStoreOptions {
  /** Most bytes kept, uploads under way included. */
  quota: number;
  /** The clock, in ms since the epoch (for tests). @default {Date.now} */
  now?: () => number;
}

interface Kept {
  record: FileRecord;
  chunks: Uint8Array[];
  /** When a send attached it (ms); a sweep spares a file attached since its cut. */
  attached?: number;
}

/** A {@link FileStore} in this process's memory. */
export class MemoryFileStore implements FileStore {
  readonly quota: number;
  #now: () => number;
  #files = new Map<string, Kept>();
  #used = 0;

  /** An empty store holding at most `options.quota` bytes. */
  constructor(options: MemoryFileStoreOptions) {
    this.quota = options.quota;
    this.#now = options.now ?? Date.now;
  }

  create(owner: string, name: string): Promise<FileWriter> {
    const id = newFileId();
    const chunks: Uint8Array[] = [];
    let done = false;
    let written = 0;
    const release = () => {
      this.#used -= written;
      written = 0;
      chunks.length = 0;
    };
    const writer: FileWriter = {
      id,
      write: (index, bytes) => {
        if (done) return Promise.reject(new Error("This upload is finished"));
        const before = chunks[index]?.length ?? 0;
        const grow = bytes.length - before;
        if (this.#used + grow > this.quota) return Promise.reject(new QuotaExceeded(this.quota));
        chunks[index] = bytes.slice();
        this.#used += grow;
        written += grow;
        return Promise.resolve();
      },
      commit: (info: CommitInfo) => {
        if (done) return Promise.reject(new Error("This upload is finished"));
        done = true;
        const record: FileRecord = {
          id,
          name,
          size: info.size,
          type: info.type,
          owner,
          created: this.#now(),
        };
        if (info.width !== undefined) record.width = info.width;
        if (info.height !== undefined) record.height = info.height;
        this.#files.set(id, { record, chunks });
        return Promise.resolve({ ...record });
      },
      abort: () => {
        if (!done) {
          done = true;
          release();
        }
        return Promise.resolve();
      },
    };
    return Promise.resolve(writer);
  }

  get(id: string): Promise<FileRecord | null> {
    const kept = this.#files.get(id);
    return Promise.resolve(kept ? { ...kept.record } : null);
  }

  read(id: string, start: number, end: number): ReadableStream<Uint8Array> {
    let pos = start;
    return new ReadableStream({
      pull: (controller) => {
        const kept = this.#files.get(id);
        if (!kept) return controller.error(new Error(`File ${id} is gone`));
        if (pos >= end) return controller.close();
        const index = Math.floor(pos / CHUNK_BYTES);
        const offset = pos - index * CHUNK_BYTES;
        const chunk = kept.chunks[index];
        const take = Math.min(chunk.length - offset, end - pos);
        controller.enqueue(chunk.slice(offset, offset + take));
        pos += take;
      },
    }, { highWaterMark: 0 });
  }

  attach(
    owner: string,
    ids: readonly string[],
    conv: string,
    ref: string,
  ): Promise<FileRecord[] | AttachRefusal> {
    const found: Kept[] = [];
    for (const id of ids) {
      const kept = this.#files.get(id);
      const r = kept?.record;
      const ok = r !== undefined && r.owner === owner &&
        (r.conv === undefined || (ref !== "" && r.conv === conv && r.ref === ref));
      if (!ok) return Promise.resolve({ id });
      found.push(kept!);
    }
    for (const kept of found) {
      if (kept.record.conv === undefined) {
        kept.record.conv = conv;
        kept.record.ref = ref;
        kept.attached = this.#now();
      }
    }
    return Promise.resolve(found.map((k) => ({ ...k.record })));
  }

  bind(ids: readonly string[], conv: string, msg: number): Promise<void> {
    for (const id of ids) {
      const r = this.#files.get(id)?.record;
      if (r && r.conv === conv) r.msg = msg;
    }
    return Promise.resolve();
  }

  rebind(from: string, to: string): Promise<number> {
    let n = 0;
    for (const { record: r } of this.#files.values()) {
      if (r.conv !== from) continue;
      r.conv = to;
      n++;
    }
    return Promise.resolve(n);
  }

  remove(ids: readonly string[]): Promise<void> {
    for (const id of ids) {
      const kept = this.#files.get(id);
      if (!kept) continue;
      this.#files.delete(id);
      for (const c of kept.chunks) this.#used -= c?.length ?? 0;
    }
    return Promise.resolve();
  }

  async sweepUnattached(before: number): Promise<number> {
    const gone: string[] = [];
    for (const [id, { record: r, attached }] of this.#files) {
      if (r.msg === undefined && (attached ?? r.created) < before) gone.push(id);
    }
    await this.remove(gone);
    return gone.length;
  }

  bound(after: string, limit: number): Promise<{ id: string; conv: string; msg: number }[]> {
    const out: { id: string; conv: string; msg: number }[] = [];
    for (const [id, { record: r }] of this.#files) {
      if (r.msg !== undefined && id > after) out.push({ id, conv: r.conv!, msg: r.msg });
    }
    out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
    return Promise.resolve(out.slice(0, limit));
  }

  usage(): Promise<number> {
    return Promise.resolve(this.#used);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
