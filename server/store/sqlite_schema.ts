/**
 * The SQLite data file: opening it with clear errors for bad paths, the
 * schema and its migrations. Used by {@link SqliteStore} (read-write, one
 * server per file) and by `chat export` (read-only, safe beside a running
 * server).
 *
 * The schema version lives in `PRAGMA user_version`; `PRAGMA application_id`
 * marks the file as chat's, so a database of another program is refused
 * instead of being written into.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { dirname, join } from "node:path";
import { plainText } from "../../markdown.ts";

/** The schema this version of chat writes. */
export const SCHEMA_VERSION = 13;

/** `PRAGMA application_id` of chat data files: "chat" in ASCII. */
export const APPLICATION_ID = 0x63686174;

/**
 * Migrations in order: `MIGRATIONS[i]` turns schema `i` into schema `i + 1`.
 * A new file runs them all. Never edit a released step: add one.
 */
const MIGRATIONS: ((db: DatabaseSync) => void)[] = [
  // 1: messages of rooms and DMs, rooms, membership, read markers, users.
  (db) =>
    db.exec(`
      CREATE TABLE messages (
        seq INTEGER PRIMARY KEY,
        conv TEXT NOT NULL,
        id INTEGER NOT NULL,
        room TEXT,
        recipient TEXT,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        ts INTEGER NOT NULL,
        UNIQUE (conv, id)
      );
      CREATE TABLE rooms (
        name TEXT PRIMARY KEY,
        creator TEXT NOT NULL,
        created INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE members (
        room TEXT NOT NULL,
        member TEXT NOT NULL,
        joined INTEGER NOT NULL,
        PRIMARY KEY (room, member)
      ) WITHOUT ROWID;
      CREATE INDEX members_by_member ON members (member, room);
      CREATE TABLE reads (
        member TEXT NOT NULL,
        conv TEXT NOT NULL,
        id INTEGER NOT NULL,
        PRIMARY KEY (member, conv)
      ) WITHOUT ROWID;
      CREATE TABLE users (
        name TEXT PRIMARY KEY,
        first_seen INTEGER NOT NULL
      ) WITHOUT ROWID;
    `),
  // 2: per-conversation watermarks (ids keep increasing and `gap` works after
  // retention deleted messages), DM parties, full-text search, and an index
  // on time for `--retain-days`.
  (db) =>
    db.exec(`
      CREATE TABLE convs (
        conv TEXT PRIMARY KEY,
        last INTEGER NOT NULL,
        trimmed INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO convs SELECT conv, max(id), min(id) - 1 FROM messages GROUP BY conv;
      CREATE TABLE dm_members (
        member TEXT NOT NULL,
        conv TEXT NOT NULL,
        PRIMARY KEY (member, conv)
      ) WITHOUT ROWID;
      INSERT OR IGNORE INTO dm_members
        SELECT substr(conv, 2, instr(conv, ':') - 2), conv FROM convs WHERE substr(conv, 1, 1) = '@';
      INSERT OR IGNORE INTO dm_members
        SELECT substr(conv, instr(conv, ':') + 1), conv FROM convs WHERE substr(conv, 1, 1) = '@';
      CREATE INDEX messages_by_ts ON messages (ts);
      CREATE VIRTUAL TABLE messages_fts USING fts5(
        text,
        content = 'messages',
        content_rowid = 'seq',
        tokenize = 'unicode61 remove_diacritics 2'
      );
      INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
      CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
      END;
      CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
      END;
    `),
  // 3: open-mode name claims (keyed by the lower-cased name, oldest first for
  // expiry) and revoked sessions (until when, to drop lapsed ones).
  (db) =>
    db.exec(`
      CREATE TABLE claims (
        folded TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        session TEXT NOT NULL,
        seen INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX claims_by_seen ON claims (seen, folded);
      CREATE TABLE revoked (
        session TEXT PRIMARY KEY,
        until INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX revoked_by_until ON revoked (until);
    `),
  // 4: the sender's `ref` of a message, to answer a resend with the stored
  // message (NULL for messages stored before, and for sends without one).
  (db) =>
    db.exec(`
      ALTER TABLE messages ADD COLUMN ref TEXT;
      CREATE INDEX messages_by_ref ON messages (sender, ref) WHERE ref IS NOT NULL;
    `),
  // 5: room topics ('' for none) and when each user was last seen (keyed by
  // the lower-cased name, as claims are). Open-mode holders start from their
  // claim's time, the best guess there is; everyone else starts unseen.
  (db) =>
    db.exec(`
      ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
      CREATE TABLE seen (
        folded TEXT PRIMARY KEY,
        at INTEGER NOT NULL
      ) WITHOUT ROWID;
      INSERT INTO seen SELECT folded, seen FROM claims;
    `),
  // 6: living messages. Every change takes the conversation's next position:
  // `rev` is the position of a message's latest change (its id until it
  // changes; `seq` stays the rowid), `convs.last` stays the counter and
  // `newest` is the newest message id; `kept` counts the kept messages (for
  // --retain-messages, now that ids skip). Edits, tombstones, replies (the
  // original as sent; `reply_snippet` NULL once the original was deleted) and
  // reactions (`ord`: the position that added them; `emoji_ord`: the one that
  // first added the emoji, while anyone still has it). An edit re-indexes the
  // text; a delete must leave nothing of it behind, in the index either.
  // Claims keep when their holder claimed the name (`since`; 0 for claims
  // made before), so a later holder cannot edit or delete an earlier one's messages.
  (db) => {
    db.exec(`
      ALTER TABLE claims ADD COLUMN since INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;
      UPDATE messages SET rev = id;
      ALTER TABLE messages ADD COLUMN edited INTEGER;
      ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE messages ADD COLUMN reply_to INTEGER;
      ALTER TABLE messages ADD COLUMN reply_from TEXT;
      ALTER TABLE messages ADD COLUMN reply_snippet TEXT;
      CREATE INDEX messages_by_rev ON messages (conv, rev);
      CREATE INDEX messages_by_reply ON messages (conv, reply_to) WHERE reply_to IS NOT NULL;
      CREATE TABLE reactions (
        conv TEXT NOT NULL,
        id INTEGER NOT NULL,
        emoji TEXT NOT NULL,
        member TEXT NOT NULL,
        ord INTEGER NOT NULL,
        emoji_ord INTEGER NOT NULL,
        PRIMARY KEY (conv, id, emoji, member)
      ) WITHOUT ROWID;
      ALTER TABLE convs ADD COLUMN newest INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE convs ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;
      UPDATE convs SET newest = last,
        kept = (SELECT count(*) FROM messages AS m WHERE m.conv = convs.conv);
      CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
      WHEN old.text IS NOT new.text BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
        INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
      END;
    `);
    // Removes a deleted message's words from the index itself instead of
    // only marking them deleted (FTS5 3.44+; older SQLite merges them away later).
    if (sqliteAtLeast(db, 3, 44)) {
      db.exec("INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1)");
    }
  },
  // 7: search indexes each message's words without its Markdown (`plain`,
  // kept beside the text so that the index is always told exactly what it
  // holds when a message changes or goes): `dep**loy**` is found by
  // "deploy", a link by its text and not by its address.
  (db) => {
    db.exec(`
      ALTER TABLE messages ADD COLUMN plain TEXT NOT NULL DEFAULT '';
      DROP TRIGGER messages_fts_insert;
      DROP TRIGGER messages_fts_delete;
      DROP TRIGGER messages_fts_update;
      DROP TABLE messages_fts;
    `);
    const update = db.prepare("UPDATE messages SET plain = ? WHERE seq = ?");
    for (const row of db.prepare("SELECT seq, text FROM messages WHERE text <> ''").iterate()) {
      update.run(plainText(String(row.text)), Number(row.seq));
    }
    db.exec(`
      CREATE VIRTUAL TABLE messages_fts USING fts5(
        plain,
        content = 'messages',
        content_rowid = 'seq',
        tokenize = 'unicode61 remove_diacritics 2'
      );
      INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
      CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts (rowid, plain) VALUES (new.seq, new.plain);
      END;
      CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, plain) VALUES ('delete', old.seq, old.plain);
      END;
      CREATE TRIGGER messages_fts_update AFTER UPDATE OF plain ON messages
      WHEN old.plain IS NOT new.plain BEGIN
        INSERT INTO messages_fts (messages_fts, rowid, plain) VALUES ('delete', old.seq, old.plain);
        INSERT INTO messages_fts (rowid, plain) VALUES (new.seq, new.plain);
      END;
    `);
    if (sqliteAtLeast(db, 3, 44)) {
      db.exec("INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1)");
    }
  },
  // 8: files. A message keeps the files it carries (`files`: a JSON array of
  // FileMeta, NULL when none and once deleted). The files themselves: one
  // row each (`state` 0 while uploading, invisible to readers and deleted at
  // the next open; 1 ready; 2 attached to `conv` by the send with `ref`, at
  // `attached`, carrying message `msg` once bound) and their chunks, each
  // in its own row. Chunks are large blobs: a rowid table (a WITHOUT ROWID
  // table would hold them in its b-tree) with a unique index to find them.
  (db) =>
    db.exec(`
      ALTER TABLE messages ADD COLUMN files TEXT;
      CREATE TABLE files (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        name TEXT NOT NULL,
        state INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        type TEXT NOT NULL DEFAULT '',
        width INTEGER,
        height INTEGER,
        created INTEGER NOT NULL,
        conv TEXT,
        ref TEXT,
        attached INTEGER,
        msg INTEGER
      ) WITHOUT ROWID;
      CREATE INDEX files_by_state ON files (state, created);
      CREATE INDEX files_unbound ON files (attached) WHERE state = 2 AND msg IS NULL;
      CREATE TABLE file_chunks (
        file TEXT NOT NULL,
        n INTEGER NOT NULL,
        data BLOB NOT NULL
      );
      CREATE UNIQUE INDEX file_chunks_by_file ON file_chunks (file, n);
    `),
  // 9: a message is found by its files' names too (see searchable() in
  // store.ts): they join the indexed words of the messages that carry them;
  // the update trigger puts them in the index.
  (db) =>
    db.exec(`
      UPDATE messages SET plain = ltrim(plain || coalesce(
        (SELECT ' ' || group_concat(value ->> '$.name', ' ') FROM json_each(messages.files)), ''))
      WHERE files IS NOT NULL AND deleted = 0;
    `),
  // 10: what admins manage (server/admin/sqlite.ts). Invite links (`used_by`:
  // a JSON array of the names that joined with one, oldest first; `admin` 0
  // or 1; `revoked` NULL until revoked), bans (keyed by the lower-cased
  // name; `until` NULL for a ban until lifted) and the audit log, whose ids
  // never come back after its oldest entries are trimmed (AUTOINCREMENT).
  (db) =>
    db.exec(`
      CREATE TABLE invites (
        code TEXT PRIMARY KEY,
        by TEXT NOT NULL,
        created INTEGER NOT NULL,
        expires INTEGER NOT NULL,
        uses INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0,
        admin INTEGER NOT NULL,
        revoked INTEGER,
        used_by TEXT NOT NULL DEFAULT '[]'
      ) WITHOUT ROWID;
      CREATE INDEX invites_by_created ON invites (created, code);
      CREATE TABLE bans (
        folded TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        by TEXT NOT NULL,
        at INTEGER NOT NULL,
        until INTEGER,
        reason TEXT
      ) WITHOUT ROWID;
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        by TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        detail TEXT
      );
    `),
  // 11: room settings (Store.roomSettings), one 0/1 column per flag: private
  // (members only), read-only (admins send), archived and auto-join (a default
  // room of new accounts). Existing rooms are plain.
  (db) =>
    db.exec(`
      ALTER TABLE rooms ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE rooms ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE rooms ADD COLUMN archived INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE rooms ADD COLUMN auto_join INTEGER NOT NULL DEFAULT 0;
    `),
  // 12: the latest room renames (Store.recentRenames), in the order made
  // (`n`; the oldest are trimmed), and each user's sessions with when each
  // last signed in (Store.sessions), keyed by the lower-cased name; the
  // index reads a user's sessions latest first (and finds the ones past the
  // cap) without sorting.
  (db) =>
    db.exec(`
      CREATE TABLE renames (
        n INTEGER PRIMARY KEY,
        room TEXT NOT NULL,
        name TEXT NOT NULL,
        at INTEGER NOT NULL
      );
      CREATE TABLE sessions (
        folded TEXT NOT NULL,
        session TEXT NOT NULL,
        seen INTEGER NOT NULL,
        PRIMARY KEY (folded, session)
      ) WITHOUT ROWID;
      CREATE INDEX sessions_by_seen ON sessions (folded, seen DESC, session DESC);
    `),
  // 13: one more room setting: `@room` and `@here` for admins only
  // (RoomSettings.restrictRoomMentions). Existing rooms let everyone use them.
  (db) => db.exec("ALTER TABLE rooms ADD COLUMN room_mentions INTEGER NOT NULL DEFAULT 0"),
];

/** Whether the SQLite library is at least `major.minor`. */
function sqliteAtLeast(db: DatabaseSync, major: number, minor: number): boolean {
  const v = String(db.prepare("SELECT sqlite_version() AS v").get()?.v ?? "0.0");
  const [a, b] = v.split(".").map(Number);
  return a > major || (a === major && b >= minor);
}

/** How {@link openDataFile} opens the file. */
export interface OpenDataOptions {
  /**
   * Only read: no migration, no lock, the file must exist. For `chat export`.
   * @default {false}
   */
  readOnly?: boolean;
  /**
   * `PRAGMA synchronous` for WAL mode: `"full"` syncs the log on every
   * commit (survives power loss), `"normal"` survives a killed process only.
   * @default {"full"}
   */
  synchronous?: "full" | "normal";
}

/** An open data file. */
export interface DataFile {
  db: DatabaseSync;
  /** Schema version found when opening (before migrating). */
  foundVersion: number;
  /** Closes the database, then releases the lock. */
  close(): void;
}

/**
 * Opens (creating if needed), checks, locks and migrates a data file.
 *
 * @throws {Error} with one line that says what is wrong and what to do: the
 * path is a directory, its directory is missing or read-only, the file is
 * read-only, not a database, damaged, another program's database, from a
 * newer chat, or in use by another server.
 */
export function openDataFile(path: string, options: OpenDataOptions = {}): DataFile {
  const readOnly = options.readOnly ?? false;
  checkPath(path, readOnly);
  let lock: Deno.FsFile | undefined;
  let db: DatabaseSync | undefined;
  try {
    if (!readOnly) lock = takeLock(path);
    try {
      db = new DatabaseSync(path, { readOnly, timeout: 5000 });
    } catch (err) {
      throw describe(path, err);
    }
    const foundVersion = prepare(db, path, readOnly, options.synchronous ?? "full");
    const opened = db;
    return {
      db: opened,
      foundVersion,
      close() {
        try {
          opened.close();
        } finally {
          lock?.close();
        }
      },
    };
  } catch (err) {
    try {
      db?.close();
    } catch {
      // Already failing; the first error is the one to report.
    }
    lock?.close();
    throw err;
  }
}

function checkPath(path: string, readOnly: boolean): void {
  let info: Deno.FileInfo | undefined;
  try {
    info = Deno.statSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw describe(path, err);
  }
  if (info?.isDirectory) {
    throw new Error(
      `Cannot use data file "${path}": it is a directory: give a file path such as "${
        join(path, "chat.db")
      }"`,
    );
  }
  if (info) return;
  if (readOnly) {
    throw new Error(`Cannot open data file "${path}": no such file: check the --data path`);
  }
  const dir = dirname(path);
  let parent: Deno.FileInfo;
  try {
    parent = Deno.statSync(dir);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      throw new Error(
        `Cannot create data file "${path}": directory "${dir}" does not exist: create it or choose another --data path`,
      );
    }
    // Permissions scoped to the data file itself (the compiled binary) do not
    // cover its directory: creating the file below reports any real problem.
    if (err instanceof Deno.errors.NotCapable) return;
    throw describe(path, err);
  }
  if (!parent.isDirectory) {
    throw new Error(
      `Cannot create data file "${path}": "${dir}" is not a directory: choose another --data path`,
    );
  }
}

/** One server per file: the ids of a conversation are counted in its memory. */
function takeLock(path: string): Deno.FsFile {
  let file: Deno.FsFile;
  const existed = exists(path);
  try {
    // flock(2) locks are separate from SQLite's own fcntl(2) locks on Linux and macOS.
    // Private messages: a new file is for its owner only (SQLite gives -wal and -shm the same mode).
    file = Deno.openSync(path, { read: true, write: true, create: true, mode: 0o600 });
  } catch (err) {
    if (!(err instanceof Deno.errors.PermissionDenied)) throw describe(path, err);
    throw new Error(
      existed
        ? `Cannot write data file "${path}": it is read-only (permission denied): make it writable by the user running chat or choose another --data path`
        : `Cannot create data file "${path}": directory "${
          dirname(path)
        }" is not writable (permission denied): make it writable by the user running chat or choose another --data path`,
    );
  }
  let locked: boolean;
  try {
    locked = file.tryLockSync(true);
  } catch (err) {
    file.close();
    throw describe(path, err);
  }
  if (!locked) {
    file.close();
    throw new Error(
      `Cannot use data file "${path}": another chat server is using it: stop that server or choose another --data path`,
    );
  }
  return file;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** Sets the connection up, identifies the file and brings its schema up to date. */
function prepare(
  db: DatabaseSync,
  path: string,
  readOnly: boolean,
  synchronous: "full" | "normal",
): number {
  let version: number;
  try {
    if (!readOnly) {
      const mode = db.prepare("PRAGMA journal_mode = WAL").get()?.journal_mode;
      if (mode !== "wal") {
        throw new Error(
          `Cannot use data file "${path}": SQLite cannot use write-ahead logging on it (journal mode "${mode}"): put it on a local disk`,
        );
      }
      db.exec(`PRAGMA synchronous = ${synchronous.toUpperCase()}`);
      // Deleted messages must be gone, not only unlinked: freed space is zeroed.
      db.exec("PRAGMA secure_delete = ON");
      // Keep the log from staying large after a burst (bytes).
      db.exec("PRAGMA journal_size_limit = 67108864");
    }
    version = pragma(db, "user_version");
    const app = pragma(db, "application_id");
    const tables = Number(
      db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get()?.n,
    );
    if (app !== APPLICATION_ID && (app !== 0 || version !== 0 || tables > 0)) {
      throw new Error(
        `Cannot use data file "${path}": it is a SQLite database of another program: choose another --data path`,
      );
    }
    if (version > SCHEMA_VERSION) {
      throw new Error(
        `Cannot use data file "${path}": it was written by a newer version of chat (schema ${version}, this version knows ${SCHEMA_VERSION}): upgrade chat`,
      );
    }
    if (readOnly) {
      if (version === 0) {
        throw new Error(`Cannot read data file "${path}": it holds no chat data yet`);
      }
      return version;
    }
  } catch (err) {
    throw describe(path, err);
  }
  migrate(db, path, version);
  return version;
}

function pragma(db: DatabaseSync, name: string): number {
  return Number(db.prepare(`PRAGMA ${name}`).get()?.[name] ?? 0);
}

/**
 * Runs the missing migrations, one transaction each. With nothing to do it
 * still writes the version once, so a file that cannot be written fails at
 * start rather than at the first message.
 */
function migrate(db: DatabaseSync, path: string, from: number): void {
  const steps = Math.max(1, SCHEMA_VERSION - from);
  for (let i = 0; i < steps; i++) {
    const to = Math.min(from + i + 1, SCHEMA_VERSION);
    try {
      db.exec("BEGIN IMMEDIATE");
      try {
        if (from + i < SCHEMA_VERSION) MIGRATIONS[from + i](db);
        db.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
        db.exec(`PRAGMA user_version = ${to}`);
        db.exec("COMMIT");
      } catch (err) {
        if (db.isTransaction) db.exec("ROLLBACK");
        throw err;
      }
    } catch (err) {
      const e = describe(path, err);
      throw from + i < SCHEMA_VERSION
        ? new Error(`Cannot upgrade data file "${path}" to schema ${to}: ${detail(path, e)}`)
        : e;
    }
  }
}

function detail(path: string, err: Error): string {
  const prefix = new RegExp(`^Cannot [a-z]+ data file "${escape(path)}": `);
  return err.message.replace(prefix, "");
}

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** SQLite result codes (the low byte of an extended code). */
const SQLITE_BUSY = 5, SQLITE_READONLY = 8, SQLITE_CORRUPT = 11, SQLITE_CANTOPEN = 14;
const SQLITE_NOTADB = 26, SQLITE_READONLY_DIRECTORY = 1544;

/** Turns whatever opening failed with into one line that says what to do. */
export function describe(path: string, err: unknown): Error {
  if (err instanceof Error && /^Cannot [a-z]+ data file "/.test(err.message)) return err;
  const e = err as Error & { errcode?: number };
  const code = typeof e.errcode === "number" ? e.errcode : undefined;
  const dir = dirname(path);
  const other = "or choose another --data path";
  if (err instanceof Deno.errors.NotCapable) {
    return new Error(
      `Cannot open data file "${path}": Deno has no permission to use it: run with --allow-read and --allow-write`,
    );
  }
  if (err instanceof Deno.errors.PermissionDenied) {
    return new Error(
      `Cannot write data file "${path}": permission denied: make it (and its directory) writable by the user running chat ${other}`,
    );
  }
  if (code === SQLITE_READONLY_DIRECTORY) {
    return new Error(
      `Cannot write data file "${path}": directory "${dir}" is read-only and SQLite keeps "${path}-wal" and "${path}-shm" beside the file: make it writable ${other}`,
    );
  }
  if (code !== undefined && (code & 0xff) === SQLITE_READONLY) {
    return new Error(
      `Cannot write data file "${path}": it is read-only: make it writable by the user running chat ${other}`,
    );
  }
  if (code === SQLITE_NOTADB) {
    return new Error(
      `Cannot open data file "${path}": it is not a SQLite database: restore it from a backup ${other}`,
    );
  }
  if (code !== undefined && (code & 0xff) === SQLITE_CORRUPT) {
    return new Error(
      `Cannot open data file "${path}": it is damaged (${e.message}): restore it from a backup ${other}`,
    );
  }
  if (code !== undefined && (code & 0xff) === SQLITE_BUSY) {
    return new Error(
      `Cannot use data file "${path}": another program holds a lock on it: stop it and try again`,
    );
  }
  if (
    (code !== undefined && (code & 0xff) === SQLITE_CANTOPEN) ||
    /unable to open database file/.test(e.message ?? "")
  ) {
    return new Error(
      `Cannot open data file "${path}": permission denied or directory "${dir}" is not writable: make both writable by the user running chat ${other}`,
    );
  }
  return new Error(`Cannot open data file "${path}": ${e.message ?? String(err)}`);
}
