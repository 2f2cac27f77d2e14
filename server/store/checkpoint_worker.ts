/**
 * Checkpoints the data file's write-ahead log off the main thread (see
 * {@link Checkpointer} in checkpointer.ts). Messages: `{ path }` opens its
 * own connection to the file; `{ checkpoint: true }` → `{ done: true }` (or
 * `{ done: true, error }`) after a PASSIVE checkpoint; `{ close: true }` →
 * `{ closed: true }`.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

type Request = { path: string } | { checkpoint: true } | { close: true };

const scope = self as unknown as {
  onmessage: ((e: MessageEvent<Request>) => void) | null;
  postMessage(v: unknown): void;
};

let db: DatabaseSync | null = null;

scope.onmessage = (e) => {
  const req = e.data;
  if ("path" in req) {
    try {
      db = new DatabaseSync(req.path);
      // Never waits for the main thread's locks: a busy checkpoint simply does less.
      db.exec("PRAGMA busy_timeout = 0");
      // The checkpoint syncs the log before copying it, and the file after.
      db.exec("PRAGMA synchronous = FULL");
    } catch (err) {
      db = null;
      scope.postMessage({ error: (err as Error).message });
    }
  } else if ("checkpoint" in req) {
    try {
      db?.prepare("PRAGMA wal_checkpoint(PASSIVE)").get();
      scope.postMessage({ done: true });
    } catch (err) {
      scope.postMessage({ done: true, error: (err as Error).message });
    }
  } else {
    try {
      db?.close();
    } finally {
      db = null;
      scope.postMessage({ closed: true });
    }
  }
};
