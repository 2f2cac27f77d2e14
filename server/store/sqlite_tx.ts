/**
 * One short write transaction on a shared SQLite connection, for the stores
 * that share the message store's (files, admin).
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";

/**
 * Runs `fn` inside `BEGIN IMMEDIATE … COMMIT` on `db` (or inside the
 * transaction already open), rolling back when it throws. `fn` must not
 * await: the connection is shared, and nothing else may run inside it.
 */
export function immediate<T>(db: DatabaseSync, fn: () => T): T {
  if (db.isTransaction) return fn();
  db.exec("BEGIN IMMEDIATE");
  try {
    const out = fn();
    db.exec("COMMIT");
    return out;
  } catch (err) {
    try {
      if (db.isTransaction) db.exec("ROLLBACK");
    } catch {
      // The error that got us here is the one to report.
    }
    throw err;
  }
}
