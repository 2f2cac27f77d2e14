/**
 * Attachments: the files people upload and send with messages.
 *
 * One interface, three backends, like messages: {@link MemoryFileStore}
 * (bounded by the quota, gone on restart), the SQLite file store (chunks in
 * the `--data` file) and the Redis file store (chunked keys, shared by every
 * node). `tests/file_store_contract.ts` runs the same suite against each.
 *
 * A file's life: {@link FileStore.create} starts an upload that nobody can
 * see; its chunks are written, then {@link FileWriter.commit} makes it a
 * *ready* file, which only its owner may read or send. {@link FileStore.attach}
 * ties ready files to a conversation as the message carrying them is sent,
 * {@link FileStore.bind} records that message's id. Files never attached are
 * swept an hour after their upload; files whose message is gone (deleted,
 * retention) are removed with it.
 *
 * @module
 */
import type { FileInfo } from "../../protocol.ts";

export type { FileInfo };

/** Bytes per stored chunk: every chunk of a file has this size except its last. */
export const CHUNK_BYTES = 256 * 1024;

/** Milliseconds after its upload an unattached file is swept. */
export const UNATTACHED_TTL = 60 * 60 * 1000;

/** A file as the store keeps it (what a message carries, without `url`). */
export type FileMeta = Omit<FileInfo, "url">;

/** A committed file and who may see it. */
export interface FileRecord extends FileMeta {
  /** Who uploaded it. */
  owner: string;
  /** When the upload committed (ms since the epoch). */
  created: number;
  /** The conversation key it was sent to (a room, or `@a:b`); absent while ready. */
  conv?: string;
  /** The sender's `ref` of the send that attached it ("" when none). */
  ref?: string;
  /** The id of the message carrying it, once bound. */
  msg?: number;
}

/** What a finished upload is, as the server decided from its bytes. */
export interface CommitInfo {
  /** Media type sniffed from the bytes. */
  type: string;
  /** Bytes written in all (the sum of the chunks). */
  size: number;
  /** Images: display width. */
  width?: number;
  /** Images: display height. */
  height?: number;
}

/** Thrown (rejected) by a write that would take the store past its quota. */
export class QuotaExceeded extends Error {
  /** Builds the error for a quota of `quota` bytes. */
  constructor(quota: number) {
    super(`The chat's file storage is full (${quota} bytes)`);
    this.name = "QuotaExceeded";
  }
}

/** An upload under way: invisible to every reader until committed. */
export interface FileWriter {
  /** The new file's id (unguessable: 22 base64url characters, as `FILE_ID` in protocol.ts). */
  readonly id: string;
  /**
   * Stores chunk `index` (0-based). Every chunk but the last is exactly
   * {@link CHUNK_BYTES}; chunks may be written in any order (the upload
   * writes chunk 0 last, once its header is final). Counts against the
   * quota at once: rejects with {@link QuotaExceeded} (nothing of this chunk
   * kept) when the store would pass it. The store must not hold on to
   * `bytes` once the promise settles: the caller reuses that buffer.
   */
  write(index: number, bytes: Uint8Array): Promise<void>;
  /**
   * Makes the file visible as a ready file of its owner, durably (for
   * SQLite and Redis: a crash before this leaves no trace a reader can
   * see; one after keeps the whole file).
   */
  commit(info: CommitInfo): Promise<FileRecord>;
  /** Drops everything written and gives its bytes back to the quota. */
  abort(): Promise<void>;
}

/** Why {@link FileStore.attach} refused. */
export interface AttachRefusal {
  /** The first id that may not be sent: unknown, someone else's, or sent already. */
  id: string;
}

/** Where files are kept. Every method may be called concurrently. */
export interface FileStore {
  /** Starts an upload by `owner` of a file called `name` (already cleaned). */
  create(owner: string, name: string): Promise<FileWriter>;
  /** A committed file, or null (unknown, removed, or still uploading). */
  get(id: string): Promise<FileRecord | null>;
  /**
   * The bytes `start` (inclusive) to `end` (exclusive) of a committed file,
   * chunk by chunk as stored (never the whole file at once). A file removed
   * while it is read ends the stream with an error.
   */
  read(id: string, start: number, end: number): ReadableStream<Uint8Array>;
  /**
   * Attaches `ids` to conversation `conv` for a send by `owner`, in one
   * atomic step (also across nodes): each must be `owner`'s and ready — or,
   * for a resend (`ref` not empty), attached already to `conv` by a send
   * with the same `ref`. Either all are attached, or none and the first id
   * that may not be is named. Resolves the files in the order given.
   */
  attach(
    owner: string,
    ids: readonly string[],
    conv: string,
    ref: string,
  ): Promise<FileRecord[] | AttachRefusal>;
  /** Records that files attached to `conv` are carried by message `msg`. */
  bind(ids: readonly string[], conv: string, msg: number): Promise<void>;
  /**
   * Moves every file attached or bound to conversation `from` to `to` (a
   * room's rename), in one atomic step (also across nodes); resolves how
   * many moved. Their ids, messages and bytes stay as they are.
   */
  rebind(from: string, to: string): Promise<number>;
  /** Removes files (their bytes and records) and gives their bytes back to the quota. */
  remove(ids: readonly string[]): Promise<void>;
  /**
   * Removes ready files committed before `before` (never sent), and
   * attached ones never bound since then (their send failed); resolves how
   * many went.
   */
  sweepUnattached(before: number): Promise<number>;
  /**
   * Bound files, as `{id, conv, msg}`, at most `limit` after the id
   * `after` (by id), for the sweep that removes files whose message is gone.
   */
  bound(after: string, limit: number): Promise<{ id: string; conv: string; msg: number }[]>;
  /** Bytes counted against the quota: committed files plus uploads under way. */
  usage(): Promise<number>;
  /** The quota in bytes. */
  readonly quota: number;
  /** Releases the backend (the store that owns the connection closes it). */
  close(): Promise<void>;
}

/** A new file id: 128 random bits, base64url (22 characters). */
export function newFileId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
