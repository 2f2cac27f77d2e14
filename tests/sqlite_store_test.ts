import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { type ChatMessage, conversationKey, snippetOf, UNREAD_CAP } from "../protocol.ts";
import { APPLICATION_ID, SCHEMA_VERSION } from "../server/store/sqlite_schema.ts";
import { SqliteStore, type SqliteStoreOptions, UNREAD_SCAN } from "../server/store/sqlite.ts";
import { type Draft, ReplyChanged, replyRef, RoomGone } from "../server/store/store.ts";
import { assertRenamed, roomToRename, storeContract } from "./store_contract.ts";
import { exportCommand } from "../cli/export.ts";

storeContract("SqliteStore", async ({ keep }) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-sqlite-" });
  const store = SqliteStore.open(`${dir}/chat.db`, { retainMessages: keep });
  const close = store.close.bind(store);
  store.close = async () => {
    await close();
    await Deno.remove(dir, { recursive: true });
  };
  return store;
}, { refsOfKept: true, settle: (store) => store.flush() });

/** A temporary directory with `chat.db` in it, removed on dispose. */
async function tempData(): Promise<{ dir: string; path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "chat-sqlite-" });
  return {
    dir,
    path: `${dir}/chat.db`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** Opens a store that closes on dispose. */
function open(path: string, options?: SqliteStoreOptions): SqliteStore & AsyncDisposable {
  const store = SqliteStore.open(path, options);
  return Object.assign(store, { [Symbol.asyncDispose]: () => store.close() });
}

/** A second, independent connection: sees only what was committed. */
function peek<T>(path: string, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

/** Runs SQL on a second connection. */
function peekExec(path: string, sql: string): void {
  const db = new DatabaseSync(path);
  try {
    db.exec(sql);
  } finally {
    db.close();
  }
}

function count(path: string, where = "1"): number {
  return peek(
    path,
    (db) => Number(db.prepare(`SELECT count(*) AS n FROM messages WHERE ${where}`).get()!.n),
  );
}

const room = (r: string, from: string, text: string): Draft => ({ conv: r, room: r, from, text });
const dm = (from: string, to: string, text: string): Draft => ({
  conv: conversationKey(from, { to }),
  to,
  from,
  text,
});

Deno.test("SqliteStore.open() finds messages, ids, rooms, members, read markers and users after a reopen", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.touchUser("alice");
    await s.touchUser("bob");
    await s.join("alice", "general");
    await s.join("bob", "general");
    await s.join("alice", "ops");
    await s.join("bob", "ops");
    await s.leave("bob", "ops");
    for (let i = 1; i <= 5; i++) await s.append(room("general", "alice", `g${i}`));
    await s.append(dm("alice", "bob", "psst"));
    await s.setRead("bob", "general", 3);
    await s.setRead("bob", conversationKey("alice", { to: "bob" }), 1);
  }
  await using s = open(data.path);
  assert.deepEqual(await s.rooms(), [{ name: "general", members: 2 }, { name: "ops", members: 1 }]);
  assert.deepEqual(await s.members("general"), ["alice", "bob"]);
  assert.deepEqual(await s.roomsOf("bob"), ["general"]);
  assert.equal(await s.roomsCreatedBy("alice"), 2);
  assert.equal(await s.knownUser("bob"), true);
  assert.equal(await s.knownUser("carol"), false);
  assert.deepEqual(await s.conversations("bob"), [
    { room: "general", last: 5, read: 3, seq: 5, unread: 2 },
    { to: "alice", last: 1, read: 1, seq: 1, unread: 0 },
  ]);
  const page = await s.page("general", { since: 2, limit: 10 });
  assert.deepEqual(page.messages.map((m) => [m.id, m.text]), [[3, "g3"], [4, "g4"], [5, "g5"]]);
  assert.equal(page.gap, false);
  const next = await s.append(room("general", "bob", "g6"));
  assert.equal(next.id, 6, "ids continue after a reopen");
  const reply = await s.append(dm("bob", "alice", "hi"));
  assert.equal(reply.id, 2);
  assert.deepEqual(
    (await s.page(conversationKey("alice", { to: "bob" }), { limit: 5 })).messages.map((m) => ({
      id: m.id,
      to: m.to,
      from: m.from,
      text: m.text,
    })),
    [{ id: 1, to: "bob", from: "alice", text: "psst" }, {
      id: 2,
      to: "alice",
      from: "bob",
      text: "hi",
    }],
  );
});

Deno.test("SqliteStore.open() creates the file and its log readable by the owner only", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  await s.append(room("r", "u", "private"));
  assert.equal((await Deno.stat(data.path)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(`${data.path}-wal`)).mode! & 0o777, 0o600);
});

Deno.test("SqliteStore.close() commits the writes still queued", async () => {
  await using data = await tempData();
  const s = SqliteStore.open(data.path, { commitDelay: 60_000 });
  const pending = [s.append(room("r", "u", "one")), s.append(room("r", "u", "two"))];
  assert.equal(count(data.path), 0, "nothing is committed before the tick");
  await s.close();
  assert.deepEqual((await Promise.all(pending)).map((m) => m.id), [1, 2]);
  assert.equal(count(data.path), 2);
  await assert.rejects(s.append(room("r", "u", "late")), /closed/);
});

Deno.test("SqliteStore.append() resolves after its transaction committed; a tick shares one transaction", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  const first = await s.append(room("r", "u", "hello"));
  assert.equal(count(data.path, "id = 1"), 1, "another connection sees it once append resolved");
  assert.equal(first.id, 1);
  const before = s.stats.commits;
  const writes = await Promise.all([
    ...Array.from({ length: 50 }, (_, i) => s.append(room("r", "u", `m${i}`))),
    s.join("u", "r"),
    s.setRead("u", "r", 40),
  ]);
  assert.equal(s.stats.commits - before, 1, "51 messages, a join and a read marker: one commit");
  assert.deepEqual(writes.slice(0, 50).map((m) => (m as { id: number }).id).at(-1), 51);
  assert.deepEqual(writes[50], { added: true, created: true, count: 1 });
  assert.equal(writes[51], 40);
  assert.equal(count(data.path), 51);
});

Deno.test("SqliteStore.append() rejects every write of a failed commit and gives its ids out again", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  await s.append(room("r", "u", "ok"));
  // A real failure inside the commit: another connection adds a trigger that aborts.
  const db = new DatabaseSync(data.path);
  db.exec(`CREATE TRIGGER boom BEFORE INSERT ON messages WHEN new.text = 'boom'
           BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
  db.close();
  const batch = [
    s.append(room("r", "u", "innocent")),
    s.append(room("r", "u", "boom")),
    s.join("u", "r"),
  ];
  const results = await Promise.allSettled(batch);
  for (const r of results) {
    assert.equal(r.status, "rejected");
    assert.match(
      (r as PromiseRejectedResult).reason.message,
      /Cannot save to data file ".*": disk says no/,
    );
  }
  assert.equal(count(data.path), 1, "nothing of the failed transaction was kept");
  assert.deepEqual(await s.members("r"), []);
  const again = await s.append(room("r", "u", "after"));
  assert.equal(again.id, 2, "the ids of the failed transaction are given out again");
  assert.deepEqual((await s.page("r", { limit: 10 })).messages.map((m) => m.text), ["ok", "after"]);
});

Deno.test("SqliteStore retainMessages trims only what is over the limit; ids and gap survive a reopen", async () => {
  await using data = await tempData();
  const ab = conversationKey("alice", { to: "bob" });
  {
    await using s = open(data.path, { retainMessages: 3 });
    for (let i = 1; i <= 10; i++) await s.append(room("big", "alice", `big ${i}`));
    for (let i = 1; i <= 2; i++) await s.append(room("small", "alice", `small ${i}`));
    for (let i = 1; i <= 5; i++) await s.append(dm("alice", "bob", `dm ${i}`));
    await s.flush();
    assert.deepEqual((await s.page("big", { limit: 50 })).messages.map((m) => m.id), [8, 9, 10]);
    assert.deepEqual((await s.page("small", { limit: 50 })).messages.map((m) => m.id), [1, 2]);
    assert.deepEqual((await s.page(ab, { limit: 50 })).messages.map((m) => m.id), [3, 4, 5]);
    assert.equal(count(data.path), 8, "the rows are gone from the file");
    const scope = { user: "alice", rooms: ["big", "small"], limit: 50 };
    assert.deepEqual(
      (await s.search("big", scope)).map((m) => m.id),
      [10, 9, 8],
      "and from search",
    );
    assert.equal(s.stats.deleted, 9);
  }
  await using s = open(data.path);
  const resume = await s.page("big", { since: 2, limit: 50 });
  assert.deepEqual([resume.messages.map((m) => m.id), resume.gap], [[8, 9, 10], true]);
  assert.equal((await s.page("big", { since: 7, limit: 50 })).gap, false);
  assert.equal((await s.page("small", { since: 0, limit: 50 })).gap, false);
  assert.equal((await s.append(room("big", "bob", "eleven"))).id, 11);
  assert.deepEqual(await s.conversations("bob"), [{
    to: "alice",
    last: 5,
    read: 0,
    seq: 5,
    unread: 3,
  }]);
});

Deno.test("SqliteStore retainDays deletes only older messages; ids continue after everything is gone", async () => {
  await using data = await tempData();
  let now = Date.parse("2030-01-01T00:00:00Z");
  const clock = () => now;
  const ab = conversationKey("alice", { to: "bob" });
  {
    await using s = open(data.path, { now: clock });
    for (let i = 1; i <= 3; i++) await s.append(room("r", "alice", `old ${i}`));
    await s.append(dm("alice", "bob", "old dm"));
    now += 10 * 86_400_000;
    for (let i = 4; i <= 5; i++) await s.append(room("r", "alice", `new ${i}`));
  }
  {
    await using s = open(data.path, { now: clock, retainDays: 7 });
    await s.flush();
    const page = await s.page("r", { since: 0, limit: 50 });
    assert.deepEqual(page.messages.map((m) => m.text), ["new 4", "new 5"]);
    assert.equal(page.gap, true);
    assert.deepEqual((await s.page(ab, { limit: 50 })).messages, []);
    assert.deepEqual(await s.conversations("bob"), [{
      to: "alice",
      last: 1,
      read: 0,
      seq: 1,
      unread: 0,
    }]);
    now += 30 * 86_400_000;
    await s.flush();
    assert.equal(count(data.path), 0, "everything is older than 7 days now");
  }
  await using s = open(data.path, { now: clock, retainDays: 7 });
  assert.equal((await s.append(room("r", "bob", "fresh"))).id, 6);
  assert.equal((await s.append(dm("bob", "alice", "fresh dm"))).id, 2);
  const page = await s.page("r", { since: 3, limit: 50 });
  assert.deepEqual([page.messages.map((m) => m.id), page.gap], [[6], true]);
});

Deno.test("SqliteStore retention deletes in small batches between writes", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await Promise.all(Array.from({ length: 3000 }, (_, i) => s.append(room("r", "u", `m${i}`))));
  }
  await using s = open(data.path, { retainMessages: 10, retentionBatch: 100 });
  const deadline = Date.now() + 15_000;
  while (count(data.path) === 3000) {
    assert.ok(Date.now() < deadline, "the sweep starts by itself");
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  const msg = await s.append(room("r", "u", "while trimming"));
  assert.equal(msg.id, 3001);
  const left = count(data.path);
  assert.ok(left > 11 && left < 3001, `the append committed between two batches (${left} rows)`);
  await s.flush();
  assert.equal(count(data.path), 10);
  assert.deepEqual((await s.page("r", { limit: 1 })).messages.map((m) => m.text), [
    "while trimming",
  ]);
});

Deno.test("SqliteStore.search() matches word prefixes, ignores case and accents, keeps DMs private", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  await s.append(room("ops", "alice", "Déploiement du café terminé"));
  await s.append(room("ops", "bob", "deployment at 10:00"));
  await s.append(room("hr", "carol", "deployment of salaries"));
  await s.append(dm("bob", "carol", "deployment gossip"));
  const alice = { user: "alice", rooms: ["ops"], limit: 10 };
  assert.deepEqual((await s.search("DEPLOY", alice)).map((m) => m.from), ["bob"]);
  assert.deepEqual((await s.search("deploiement cafe", alice)).map((m) => m.from), ["alice"]);
  assert.deepEqual((await s.search("10:00", alice)).map((m) => m.from), ["bob"]);
  assert.deepEqual(
    await s.search("deployment", { ...alice, conv: "hr" }),
    [],
    "not a room of hers",
  );
  const bc = conversationKey("bob", { to: "carol" });
  assert.deepEqual(await s.search("gossip", { ...alice, conv: bc }), [], "not her DM");
  assert.deepEqual(
    (await s.search("deployment", { user: "carol", rooms: ["hr"], limit: 10 })).map((m) => m.text),
    ["deployment gossip", "deployment of salaries"],
  );
});

Deno.test("SqliteStore.open() migrates a version 1 file in place", async () => {
  await using data = await tempData();
  // Schema 1 as chat wrote it: no FTS index, no watermarks, no DM table.
  const v1 = new DatabaseSync(data.path);
  v1.exec(`
    PRAGMA application_id = ${APPLICATION_ID};
    PRAGMA user_version = 1;
    CREATE TABLE messages (seq INTEGER PRIMARY KEY, conv TEXT NOT NULL, id INTEGER NOT NULL,
      room TEXT, recipient TEXT, sender TEXT NOT NULL, text TEXT NOT NULL, ts INTEGER NOT NULL,
      UNIQUE (conv, id));
    CREATE TABLE rooms (name TEXT PRIMARY KEY, creator TEXT NOT NULL, created INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE members (room TEXT NOT NULL, member TEXT NOT NULL, joined INTEGER NOT NULL,
      PRIMARY KEY (room, member)) WITHOUT ROWID;
    CREATE INDEX members_by_member ON members (member, room);
    CREATE TABLE reads (member TEXT NOT NULL, conv TEXT NOT NULL, id INTEGER NOT NULL,
      PRIMARY KEY (member, conv)) WITHOUT ROWID;
    CREATE TABLE users (name TEXT PRIMARY KEY, first_seen INTEGER NOT NULL) WITHOUT ROWID;
    INSERT INTO rooms VALUES ('general', 'alice', 1700000000000);
    INSERT INTO members VALUES ('general', 'alice', 1700000000000), ('general', 'bob', 1700000000000);
    INSERT INTO users VALUES ('alice', 1700000000000), ('bob', 1700000000000);
    INSERT INTO messages (conv, id, room, recipient, sender, text, ts) VALUES
      ('general', 5, 'general', NULL, 'alice', 'the deploy is done', 1700000000005),
      ('general', 6, 'general', NULL, 'bob', 'thanks', 1700000000006),
      ('@alice:bob', 1, NULL, 'bob', 'alice', 'secret deploy key', 1700000000007);
    INSERT INTO reads VALUES ('bob', 'general', 5);
  `);
  v1.close();
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    const page = await s.page("general", { since: 1, limit: 10 });
    assert.deepEqual(page.messages.map((m) => m.text), ["the deploy is done", "thanks"]);
    assert.equal(page.gap, true, "ids 1-4 were gone before the migration");
    assert.equal(page.messages[0].ts, new Date(1700000000005).toISOString());
    assert.equal((await s.page("general", { since: 4, limit: 10 })).gap, false);
    assert.deepEqual(await s.conversations("bob"), [
      { room: "general", last: 6, read: 5, seq: 6, unread: 0 },
      { to: "alice", last: 1, read: 0, seq: 1, unread: 1 },
    ]);
    const found = await s.search("deploy", { user: "bob", rooms: ["general"], limit: 10 });
    assert.deepEqual(found.map((m) => m.text), ["secret deploy key", "the deploy is done"]);
    assert.deepEqual(await s.search("deploy", { user: "carol", rooms: [], limit: 10 }), []);
    assert.equal((await s.append(room("general", "bob", "new"))).id, 7);
    assert.equal(await s.knownUser("alice"), true);
  }
  await using s = open(data.path);
  assert.deepEqual((await s.page("general", { limit: 10 })).messages.map((m) => m.id), [5, 6, 7]);
});

Deno.test("SqliteStore.open() migrates a version 2 file: claims and revocations start empty", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "general");
    await s.append(room("general", "alice", "before the upgrade"));
    await s.append(dm("alice", "bob", "psst"));
  }
  // Schema 2 is schema 3 without its two tables.
  const v2 = new DatabaseSync(data.path);
  v2.exec(`${TO_SCHEMA_3}; DROP TABLE claims; DROP TABLE revoked; PRAGMA user_version = 2`);
  v2.close();
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    assert.deepEqual(await s.staleClaims(Infinity, 10), []);
    assert.equal(await s.sessionRevoked("s1", 0), false);
    assert.equal((await s.claimName("Alice", "s1", 1000, true)).ok, true);
    await s.revokeSession("s2", Date.now() + 60_000);
    assert.deepEqual(await s.conversations("bob"), [{
      to: "alice",
      last: 1,
      read: 0,
      seq: 1,
      unread: 1,
    }]);
  }
  await using s = open(data.path);
  assert.deepEqual(await s.staleClaims(Infinity, 10), [
    { name: "Alice", session: "s1", seen: 1000, since: 1000 },
  ]);
  assert.equal(await s.sessionRevoked("s2", Date.now()), true);
  assert.deepEqual((await s.page("general", { limit: 10 })).messages.map((m) => m.text), [
    "before the upgrade",
  ]);
});

/** Turns a file of this version back into schema 12: rooms without the room mentions flag. */
const TO_SCHEMA_12 = `
  ALTER TABLE rooms DROP COLUMN room_mentions;
  PRAGMA user_version = 12`;

/** Turns a file of this version back into schema 11: no renames or sessions listed. */
const TO_SCHEMA_11 = `
  ${TO_SCHEMA_12};
  DROP TABLE renames;
  DROP TABLE sessions;
  PRAGMA user_version = 11`;

/** Turns a file of this version back into schema 10: rooms without settings. */
const TO_SCHEMA_10 = `
  ${TO_SCHEMA_11};
  ALTER TABLE rooms DROP COLUMN private;
  ALTER TABLE rooms DROP COLUMN read_only;
  ALTER TABLE rooms DROP COLUMN archived;
  ALTER TABLE rooms DROP COLUMN auto_join;
  PRAGMA user_version = 10`;

/** Turns a file of this version back into schema 9: no invites, bans or audit log. */
const TO_SCHEMA_9 = `
  ${TO_SCHEMA_10};
  DROP TABLE invites;
  DROP TABLE bans;
  DROP TABLE audit;
  PRAGMA user_version = 9`;

/** Turns a file of this version back into schema 7: no files, with messages or on their own. */
const TO_SCHEMA_7 = `
  ${TO_SCHEMA_9};
  DROP TABLE file_chunks;
  DROP TABLE files;
  ALTER TABLE messages DROP COLUMN files;
  PRAGMA user_version = 7`;

/**
 * Turns a file of this version back into schema 6: the search index over the
 * text as typed, with the triggers of schema 6, and no `plain` column.
 */
const TO_SCHEMA_6 = `
  ${TO_SCHEMA_7};
  DROP TRIGGER messages_fts_insert;
  DROP TRIGGER messages_fts_delete;
  DROP TRIGGER messages_fts_update;
  DROP TABLE messages_fts;
  ALTER TABLE messages DROP COLUMN plain;
  CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content = 'messages', content_rowid = 'seq',
    tokenize = 'unicode61 remove_diacritics 2'
  );
  INSERT INTO messages_fts (messages_fts) VALUES ('rebuild');
  CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
  END;
  CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
  END;
  CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages
  WHEN old.text IS NOT new.text BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    INSERT INTO messages_fts (rowid, text) VALUES (new.seq, new.text);
  END;
  INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
  PRAGMA user_version = 6`;

/**
 * Turns a file of this version back into schema 5: messages without changes
 * (positions, edits, tombstones, replies, reactions), `convs` without the
 * newest id and the count of kept messages, no update trigger, the search
 * index with `secure-delete` off (FTS5's default, as schema 5 had it), and
 * claims without the time they were made.
 */
const TO_SCHEMA_5 = `
  ${TO_SCHEMA_6};
  ALTER TABLE claims DROP COLUMN since;
  DROP TRIGGER messages_fts_update;
  DROP INDEX messages_by_rev;
  DROP INDEX messages_by_reply;
  DROP TABLE reactions;
  ALTER TABLE messages DROP COLUMN rev;
  ALTER TABLE messages DROP COLUMN edited;
  ALTER TABLE messages DROP COLUMN deleted;
  ALTER TABLE messages DROP COLUMN reply_to;
  ALTER TABLE messages DROP COLUMN reply_from;
  ALTER TABLE messages DROP COLUMN reply_snippet;
  ALTER TABLE convs DROP COLUMN newest;
  ALTER TABLE convs DROP COLUMN kept;
  INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 0);
  PRAGMA user_version = 5`;

/** Turns a file of this version back into schema 4: no topics, no last-seen times. */
const TO_SCHEMA_4 =
  `${TO_SCHEMA_5}; DROP TABLE seen; ALTER TABLE rooms DROP COLUMN topic; PRAGMA user_version = 4`;

/** Turns a file of this version back into schema 3: messages without their `ref`. */
const TO_SCHEMA_3 =
  `${TO_SCHEMA_4}; DROP INDEX messages_by_ref; ALTER TABLE messages DROP COLUMN ref; PRAGMA user_version = 3`;

Deno.test("SqliteStore.open() migrates a version 3 file: messages kept before have no ref", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.append(room("general", "alice", "before the upgrade"));
    await s.append(dm("alice", "bob", "psst"));
  }
  const v3 = new DatabaseSync(data.path);
  v3.exec(TO_SCHEMA_3);
  v3.close();
  const draft = { ...room("general", "alice", "before the upgrade"), ref: "k1" };
  let first;
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    assert.equal(SCHEMA_VERSION, 13);
    first = await s.appendOnce(draft);
    assert.deepEqual([first.fresh, first.msg.id], [true, 2], "a message without a ref is new");
    assert.deepEqual(await s.appendOnce(draft), { msg: first.msg, fresh: false });
    assert.deepEqual((await s.page("general", { limit: 10 })).messages.map((m) => m.text), [
      "before the upgrade",
      "before the upgrade",
    ]);
    assert.deepEqual(await s.conversations("bob"), [{
      to: "alice",
      last: 1,
      read: 0,
      seq: 1,
      unread: 1,
    }]);
  }
  await using s = open(data.path);
  assert.deepEqual(await s.appendOnce(draft), { msg: first.msg, fresh: false });
  const plan = peek(data.path, (db) =>
    db.prepare(
      "EXPLAIN QUERY PLAN SELECT * FROM messages WHERE sender = ? AND ref = ? ORDER BY seq DESC LIMIT 1",
    ).all("alice", "k1").map((r) => String(r.detail)).join("; "));
  assert.match(plan, /USING INDEX messages_by_ref/, "a resend is found through the index");
  assert.doesNotMatch(plan, /TEMP B-TREE/, "without sorting");
});

Deno.test("SqliteStore.open() migrates a version 4 file: no topics yet, name holders seen at their claim", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "general");
    await s.join("alice", "ops");
    await s.append(room("ops", "alice", "before the upgrade"));
    await s.claimName("Dora", "sd", 1234, true);
  }
  const v4 = new DatabaseSync(data.path);
  v4.exec(TO_SCHEMA_4);
  v4.close();
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    assert.deepEqual(await s.rooms(), [
      { name: "general", members: 1 },
      { name: "ops", members: 1 },
    ]);
    assert.equal(await s.topic("ops"), "");
    assert.deepEqual(await s.lastSeen(["alice", "dora"]), new Map([["dora", 1234]]));
    assert.equal(await s.setTopic("ops", "after the upgrade"), true);
    await s.markSeen(["alice"], 5678);
  }
  await using s = open(data.path);
  assert.equal(await s.topic("ops"), "after the upgrade");
  assert.deepEqual((await s.rooms())[1], { name: "ops", members: 1, topic: "after the upgrade" });
  assert.deepEqual(await s.lastSeen(["Alice"]), new Map([["Alice", 5678]]));
  assert.deepEqual((await s.page("ops", { limit: 10 })).messages.map((m) => m.text), [
    "before the upgrade",
  ]);
});

Deno.test("SqliteStore.recentClaims() and lastSeen() use their indexes", async () => {
  await using data = await tempData();
  {
    await using _s = open(data.path);
  }
  const plan = (sql: string, ...args: (string | number)[]) =>
    peek(
      data.path,
      (db) =>
        db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail)).join(
          "; ",
        ),
    );
  const recent = plan(
    `SELECT name, session, seen, since FROM claims WHERE seen >= ?1 AND instr(folded, ?2) > 0
     ORDER BY seen DESC, folded DESC LIMIT ?3`,
    0,
    "a",
    10,
  );
  assert.match(recent, /claims_by_seen/);
  assert.doesNotMatch(recent, /TEMP B-TREE/, "without sorting");
  const seen = plan(
    "SELECT folded, at FROM seen WHERE folded IN (SELECT value FROM json_each(?))",
    "[]",
  );
  assert.match(seen, /USING PRIMARY KEY|SEARCH seen/);
});

Deno.test("SqliteStore.appendOnce() recognizes a resend after a reopen, until retention deleted it", async () => {
  await using data = await tempData();
  const draft = { ...room("general", "alice", "deploy done"), ref: "k1" };
  let first;
  {
    await using s = open(data.path);
    first = await s.appendOnce(draft);
    for (let i = 0; i < 300; i++) {
      await s.appendOnce({ ...room("ops", "alice", `${i}`), ref: `x${i}` });
    }
  }
  {
    await using s = open(data.path, { retainMessages: 3 });
    assert.deepEqual(await s.appendOnce(draft), { msg: first.msg, fresh: false });
    assert.equal(count(data.path, "text = 'deploy done'"), 1);
    for (let i = 0; i < 3; i++) await s.append(room("general", "bob", `${i}`));
    await s.flush();
    assert.equal(count(data.path, "text = 'deploy done'"), 0, "retention deleted it");
    const again = await s.appendOnce(draft);
    assert.deepEqual([again.fresh, again.msg.id], [true, 5], "no longer kept: a new message");
  }
});

Deno.test("SqliteStore.appendOnce() answers a resend of a message not committed yet once it is", async () => {
  await using data = await tempData();
  const s = SqliteStore.open(data.path, { commitDelay: 60_000 });
  const draft = { ...room("general", "alice", "hi"), ref: "k1" };
  const settled: string[] = [];
  const first = s.appendOnce(draft).then((r) => (settled.push("first"), r));
  const again = s.appendOnce(draft).then((r) => (settled.push("again"), r));
  const other = s.appendOnce({ ...draft, text: "other" });
  // Sentinel: a read of committed history, asked for after them, answers
  // first; anything already settled would have run its callback before it.
  assert.deepEqual((await s.page("general", { limit: 10 })).messages, []);
  assert.deepEqual(settled, [], "nothing resolves before the commit");
  assert.equal(count(data.path), 0);
  await s.close();
  assert.deepEqual(settled, ["first", "again"]);
  assert.deepEqual(await again, { msg: (await first).msg, fresh: false });
  assert.deepEqual([(await other).fresh, (await other).msg.id], [true, 2]);
  assert.equal(count(data.path), 2);
});

Deno.test("SqliteStore.appendOnce() rejects a resend with the failed commit of its message", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  const db = new DatabaseSync(data.path);
  db.exec(`CREATE TRIGGER boom BEFORE INSERT ON messages WHEN new.text = 'boom'
           BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
  db.close();
  const draft = { ...room("general", "alice", "boom"), ref: "k1" };
  const results = await Promise.allSettled([s.appendOnce(draft), s.appendOnce(draft)]);
  assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
  peekExec(data.path, "DROP TRIGGER boom");
  const later = await s.appendOnce(draft);
  assert.deepEqual([later.fresh, later.msg.id], [true, 1], "nothing was kept: stored now");
});

Deno.test("SqliteStore.releaseName() keeps the file and its search index consistent over a reopen", async () => {
  await using data = await tempData();
  const ab = conversationKey("alice", { to: "bob" });
  {
    await using s = open(data.path);
    await s.claimName("alice", "s1", 1000, true);
    await s.touchUser("alice");
    for (let i = 1; i <= 3; i++) await s.append(dm("alice", "bob", `secret ${i}`));
    await s.append(room("general", "alice", "secret in public"));
    await s.setRead("bob", ab, 3);
    assert.deepEqual(await s.releaseName("alice", "s1"), []);
  }
  const left = (table: string) =>
    peek(data.path, (db) => Number(db.prepare(`SELECT count(*) AS n FROM ${table}`).get()!.n));
  assert.equal(count(data.path, `conv = '${ab}'`), 0);
  assert.deepEqual([left("dm_members"), left("reads"), left("users"), left("claims")], [
    0,
    0,
    0,
    0,
  ]);
  // rank 1: the external-content index must match the messages table row for row.
  const db = new DatabaseSync(data.path);
  db.exec("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)");
  db.close();
  await using s = open(data.path);
  const found = await s.search("secret", { user: "bob", rooms: ["general"], limit: 10 });
  assert.deepEqual(found.map((m) => m.text), ["secret in public"]);
  assert.equal((await s.page(ab, { since: 0, limit: 10 })).gap, true, "ids 1-3 are gone");
  assert.equal((await s.append(dm("bob", "alice", "new"))).id, 4, "ids continue after a reopen");
  assert.deepEqual(await s.conversations("alice"), [{
    to: "bob",
    last: 4,
    read: 0,
    seq: 4,
    unread: 1,
  }]);
  assert.equal(await s.knownUser("alice"), false);
});

Deno.test("SqliteStore.releaseName() in a batch with writes of the same name keeps their order", async () => {
  await using data = await tempData();
  const ab = conversationKey("alice", { to: "bob" });
  {
    await using s = open(data.path, { commitDelay: 60_000 });
    const claimed = s.claimName("alice", "s1", 1000, true);
    const writes = [
      s.touchUser("alice"),
      s.append(dm("alice", "bob", "before")),
      s.releaseName("alice", "s1"),
      s.append(dm("bob", "alice", "after")),
    ];
    await s.flush();
    assert.equal((await claimed).ok, true);
    const [, before, rooms, after] = await Promise.all(writes);
    assert.deepEqual(rooms, []);
    assert.deepEqual([(before as { id: number }).id, (after as { id: number }).id], [1, 2]);
    assert.equal(await s.knownUser("alice"), false, "the release came after the sign-in");
    assert.deepEqual((await s.page(ab, { limit: 10 })).messages.map((m) => m.text), ["after"]);
    assert.deepEqual(await s.conversations("bob"), [{
      to: "alice",
      last: 2,
      read: 0,
      seq: 2,
      unread: 0,
    }]);
  }
  await using s = open(data.path);
  assert.deepEqual(await s.conversations("alice"), [{
    to: "bob",
    last: 2,
    read: 0,
    seq: 2,
    unread: 1,
  }]);
  assert.deepEqual((await s.page(ab, { limit: 10 })).messages.map((m) => m.text), ["after"]);
});

Deno.test("SqliteStore.revokeSession() drops lapsed revocations from the file", async () => {
  await using data = await tempData();
  let now = Date.parse("2030-01-01T00:00:00Z");
  await using s = open(data.path, { now: () => now });
  await s.revokeSession("old", now + 1000);
  await s.revokeSession("long", now + 60_000);
  now += 2000;
  await s.revokeSession("new", now + 1000);
  const sessions = peek(
    data.path,
    (db) => db.prepare("SELECT session FROM revoked ORDER BY session").all().map((r) => r.session),
  );
  assert.deepEqual(sessions, ["long", "new"]);
  assert.equal(await s.sessionRevoked("long", now), true);
});

Deno.test("SqliteStore.open() refuses what it cannot use with one clear line and changes nothing", async (t) => {
  await using data = await tempData();
  const refuse = (path: string, pattern: RegExp) => {
    assert.throws(() => SqliteStore.open(path), (err: Error) => {
      assert.match(err.message, pattern);
      assert.doesNotMatch(err.message, /\n/, "one line");
      return true;
    });
  };
  await t.step("a directory", async () => {
    await Deno.mkdir(`${data.dir}/sub`);
    refuse(
      `${data.dir}/sub`,
      /^Cannot use data file ".*\/sub": it is a directory: give a file path such as ".*\/sub\/chat\.db"$/,
    );
  });
  await t.step("a missing directory", () => {
    refuse(
      `${data.dir}/nope/chat.db`,
      /^Cannot create data file ".*": directory ".*\/nope" does not exist: create it or choose another --data path$/,
    );
  });
  await t.step("a file that is not a database", async () => {
    const path = `${data.dir}/notes.txt`;
    const text = "dear diary, ".repeat(400);
    await Deno.writeTextFile(path, text);
    refuse(
      path,
      /^Cannot open data file ".*notes\.txt": it is not a SQLite database: restore it from a backup or choose another --data path$/,
    );
    assert.equal(await Deno.readTextFile(path), text, "left as it was");
  });
  await t.step("a damaged database", async () => {
    const whole = `${data.dir}/whole.db`;
    const s = SqliteStore.open(whole);
    await Promise.all(
      Array.from({ length: 2000 }, (_, i) => s.append(room("r", "u", `message number ${i}`))),
    );
    await s.close();
    const path = `${data.dir}/cut.db`;
    const cut = (await Deno.readFile(whole)).slice(0, 3 * 4096);
    await Deno.writeFile(path, cut);
    refuse(
      path,
      /^Cannot open data file ".*cut\.db": it is damaged \(database disk image is malformed\): restore it from a backup or choose another --data path$/,
    );
    assert.deepEqual(await Deno.readFile(path), cut, "left as it was");
  });
  await t.step("a database of another program", () => {
    const path = `${data.dir}/other.db`;
    const db = new DatabaseSync(path);
    db.exec("CREATE TABLE invoices (n INTEGER); INSERT INTO invoices VALUES (42)");
    db.close();
    refuse(
      path,
      /^Cannot use data file ".*other\.db": it is a SQLite database of another program: choose another --data path$/,
    );
    const tables = peek(
      path,
      (db) => db.prepare("SELECT name FROM sqlite_schema").all().map((r) => r.name),
    );
    assert.deepEqual(tables, ["invoices"]);
  });
  await t.step("a file from a newer chat", () => {
    const path = `${data.dir}/future.db`;
    const db = new DatabaseSync(path);
    db.exec(
      `PRAGMA application_id = ${APPLICATION_ID}; PRAGMA user_version = ${SCHEMA_VERSION + 1}`,
    );
    db.close();
    refuse(
      path,
      new RegExp(
        `^Cannot use data file ".*": it was written by a newer version of chat \\(schema ${
          SCHEMA_VERSION + 1
        }, this version knows ${SCHEMA_VERSION}\\): upgrade chat$`,
      ),
    );
  });
  await t.step("a file another server is using", async () => {
    const first = SqliteStore.open(data.path);
    try {
      await first.append(room("r", "u", "mine"));
      refuse(
        data.path,
        /^Cannot use data file ".*": another chat server is using it: stop that server or choose another --data path$/,
      );
      assert.equal(
        (await first.append(room("r", "u", "still mine"))).id,
        2,
        "the first one goes on",
      );
    } finally {
      await first.close();
    }
    await using again = open(data.path);
    assert.equal(
      (await again.append(room("r", "u", "after"))).id,
      3,
      "usable once the first closed",
    );
  });
});

/** Whether `word` occurs anywhere in the bytes of the data file or its log. */
async function inFile(path: string, word: string): Promise<boolean> {
  const latin1 = new TextDecoder("latin1");
  for (const file of [path, `${path}-wal`]) {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(file);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      throw err;
    }
    // One byte, one character: an ASCII word is found wherever its bytes are.
    if (latin1.decode(bytes).includes(word)) return true;
  }
  return false;
}

/** Waits until `ready()` holds, failing after `ms`. */
async function until(ready: () => boolean | Promise<boolean>, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!await ready()) {
    assert.ok(Date.now() < deadline, `timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function walSize(path: string): number {
  try {
    return Deno.statSync(`${path}-wal`).size;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return 0;
    throw err;
  }
}

Deno.test("SqliteStore.change() delete leaves the text nowhere: not the file, its log, the index or a reply", async () => {
  await using data = await tempData();
  // A word no other part of the file holds.
  const secret = "quokkazanzibar";
  const scope = { user: "bob", rooms: ["general"], limit: 10 };
  {
    await using s = open(data.path, { checkpointDelay: 20 });
    await s.append(room("general", "bob", "before"));
    // Long enough to spill into overflow pages: freed, they would keep the text unless zeroed.
    const long = `the vault code is ${secret} 42 ${"and more words ".repeat(600)}${secret}`;
    const m = await s.append(room("general", "alice", long));
    const reply = await s.append({
      ...room("general", "bob", "noted"),
      replyTo: { ...replyRef(m), seq: m.seq },
    });
    await s.append(room("general", "bob", "after"));
    assert.equal(reply.replyTo?.snippet, snippetOf(long));
    assert.equal(await inFile(data.path, secret), true, "the text is in the file first");
    assert.deepEqual((await s.search(secret, scope)).map((f) => f.id), [m.id]);
    const deleted = await s.change({ kind: "delete", conv: "general", id: m.id, user: "alice" });
    assert.deepEqual(deleted, {
      ok: true,
      applied: {
        kind: "deleted",
        conv: "general",
        id: m.id,
        seq: 5,
        user: "alice",
        from: "alice",
        ts: m.ts,
      },
    });
    // The checkpoint comes by itself soon after the commit, and empties the log.
    await until(() => walSize(data.path) === 0, "the log is checkpointed");
    assert.equal(await inFile(data.path, secret), false, "gone from the file and its log");
    assert.deepEqual(await s.search(secret, scope), []);
    assert.deepEqual(await s.search("vault", scope), []);
    assert.deepEqual(await s.message("general", m.id), {
      id: m.id,
      seq: 5,
      room: "general",
      from: "alice",
      text: "",
      ts: m.ts,
      deleted: true,
    });
    const [answer] = (await s.page("general", { since: 2, limit: 1 })).messages;
    assert.deepEqual(answer.replyTo, { id: m.id, from: "alice", snippet: "", deleted: true });
    const stored = peek(
      data.path,
      (db) =>
        db.prepare("SELECT text, reply_snippet FROM messages WHERE conv = 'general' ORDER BY id")
          .all(),
    ).map((r) => [r.text, r.reply_snippet]);
    assert.deepEqual(stored, [["before", null], ["", null], ["noted", null], ["after", null]]);
  }
  assert.equal(await inFile(data.path, secret), false, "and after closing");
  // rank 1: the external-content index matches the messages table row for row.
  peekExec(
    data.path,
    "INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 1)",
  );
  await using s = open(data.path);
  assert.deepEqual(await s.search(secret, scope), []);
  assert.deepEqual((await s.search("after", scope)).map((m) => m.text), ["after"]);
});

Deno.test("SqliteStore.change() works on a message sent in the same batch, before the commit", async () => {
  await using data = await tempData();
  const s = SqliteStore.open(data.path, { commitDelay: 60_000 });
  const order: string[] = [];
  const track = <T>(what: string, p: Promise<T>) => p.then((v) => (order.push(what), v));
  const sent = track("sent", s.append(room("general", "alice", "helo")));
  const edited = track(
    "edited",
    s.change({ kind: "edit", conv: "general", id: 1, user: "alice", text: "hello" }),
  );
  const reacted = track(
    "reacted",
    s.change({ kind: "react", conv: "general", id: 1, user: "bob", emoji: "👍", on: true }),
  );
  const twice = track(
    "twice",
    s.change({ kind: "react", conv: "general", id: 1, user: "bob", emoji: "👍", on: true }),
  );
  const forbidden = track(
    "forbidden",
    s.change({ kind: "edit", conv: "general", id: 1, user: "bob", text: "mine now" }),
  );
  const unknown = track(
    "unknown",
    s.change({ kind: "edit", conv: "general", id: 2, user: "alice", text: "?" }),
  );
  const next = track("next", s.append(room("general", "bob", "hi")));
  assert.equal(count(data.path), 0, "nothing is committed yet");
  // Sentinel: a read of committed history answers before anything of the batch resolves.
  assert.deepEqual((await s.page("general", { limit: 10 })).messages, []);
  assert.deepEqual(order, []);
  await s.flush();
  const all = await Promise.all([sent, edited, reacted, twice, forbidden, unknown, next]);
  assert.deepEqual(order, ["sent", "edited", "reacted", "twice", "forbidden", "unknown", "next"]);
  const editedAt = (all[1] as { applied: { editedAt: string } }).applied.editedAt;
  assert.deepEqual(all.slice(1, 6), [
    {
      ok: true,
      applied: {
        kind: "edited",
        conv: "general",
        id: 1,
        seq: 2,
        user: "alice",
        text: "hello",
        editedAt,
      },
    },
    {
      ok: true,
      applied: {
        kind: "reaction",
        conv: "general",
        id: 1,
        seq: 3,
        user: "bob",
        emoji: "👍",
        on: true,
      },
    },
    { ok: true, applied: null },
    { ok: false, refusal: "forbidden" },
    { ok: false, refusal: "unknown_message" },
  ]);
  assert.equal((all[6] as { id: number }).id, 4, "the next message takes the next position");
  await s.close();
  await using again = open(data.path);
  const page = await again.page("general", { since: 0, limit: 10 });
  assert.deepEqual(page.messages.map((m) => [m.id, m.seq, m.text, m.edited, m.reactions]), [
    [1, 3, "hello", editedAt, { "👍": ["bob"] }],
    [4, 4, "hi", undefined, undefined],
  ]);
  assert.equal(page.seq, 4);
});

Deno.test("SqliteStore.change() in a failed commit gives its position out again and leaves no trace", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  await s.append(room("r", "alice", "one"));
  peekExec(
    data.path,
    `CREATE TRIGGER boom BEFORE UPDATE OF text ON messages WHEN new.text = 'boom'
     BEGIN SELECT RAISE(ABORT, 'disk says no'); END`,
  );
  const results = await Promise.allSettled([
    s.change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: true }),
    s.change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "boom" }),
  ]);
  assert.deepEqual(results.map((r) => r.status), ["rejected", "rejected"]);
  peekExec(data.path, "DROP TRIGGER boom");
  const again = await s.change({
    kind: "react",
    conv: "r",
    id: 1,
    user: "bob",
    emoji: "👍",
    on: true,
  });
  assert.deepEqual(again.ok && again.applied?.seq, 2, "the reaction was not kept: added now");
  const msg = await s.message("r", 1);
  assert.deepEqual([msg?.seq, msg?.text, msg?.reactions], [2, "one", { "👍": ["bob"] }]);
});

Deno.test("SqliteStore keeps edits, tombstones, reactions and replies over a reopen", async () => {
  await using data = await tempData();
  const ab = conversationKey("alice", { to: "bob" });
  let editedAt: string | undefined;
  {
    await using s = open(data.path);
    await s.join("alice", "ops");
    await s.join("bob", "ops");
    const q = await s.append(room("ops", "alice", "is the deploy done?"));
    await s.append({ ...room("ops", "bob", "yes"), replyTo: { ...replyRef(q), seq: q.seq } });
    await s.append(room("ops", "bob", "oops"));
    await s.append(dm("alice", "bob", "psst"));
    const e = await s.change({
      kind: "edit",
      conv: "ops",
      id: 1,
      user: "alice",
      text: "is the release done?",
    });
    editedAt = e.ok ? e.applied?.editedAt : undefined;
    // 🎉 keeps its place before 👍 after its first user left it, as a client applying the frames sees it.
    await s.change({ kind: "react", conv: "ops", id: 2, user: "alice", emoji: "🎉", on: true });
    await s.change({ kind: "react", conv: "ops", id: 2, user: "alice", emoji: "👍", on: true });
    await s.change({ kind: "react", conv: "ops", id: 2, user: "carol", emoji: "🎉", on: true });
    await s.change({ kind: "react", conv: "ops", id: 2, user: "alice", emoji: "🎉", on: false });
    await s.change({ kind: "delete", conv: "ops", id: 3, user: "bob" });
    await s.change({ kind: "react", conv: ab, id: 1, user: "bob", emoji: "👀", on: true });
  }
  await using s = open(data.path);
  const page = await s.page("ops", { since: 0, limit: 10 });
  const ts = page.messages.map((m) => m.ts);
  assert.match(editedAt ?? "", /^\d{4}-\d\d-\d\dT/);
  assert.deepEqual(
    page.messages,
    [
      {
        id: 1,
        seq: 4,
        room: "ops",
        from: "alice",
        text: "is the release done?",
        ts: ts[0],
        edited: editedAt,
      },
      {
        id: 2,
        seq: 8,
        room: "ops",
        from: "bob",
        text: "yes",
        ts: ts[1],
        reactions: { "🎉": ["carol"], "👍": ["alice"] },
        replyTo: { id: 1, from: "alice", snippet: "is the release done?" },
      },
      { id: 3, seq: 9, room: "ops", from: "bob", text: "", ts: ts[2], deleted: true },
    ],
  );
  assert.deepEqual(Object.keys(page.messages[1].reactions!), ["🎉", "👍"]);
  assert.deepEqual([page.seq, page.more, page.gap], [9, false, false]);
  assert.deepEqual(
    (await s.page("ops", { since: 4, limit: 10 })).messages.map((m) => m.id),
    [2, 3],
    "by seq: only what changed after 4",
  );
  assert.deepEqual(await s.conversations("alice"), [
    { room: "ops", last: 3, read: 0, seq: 9, unread: 1 },
    { to: "bob", last: 1, read: 0, seq: 2, unread: 0 },
  ]);
  assert.deepEqual((await s.message(ab, 1))?.reactions, { "👀": ["bob"] });
  assert.equal((await s.append(room("ops", "alice", "thanks"))).id, 10, "positions continue");
  assert.deepEqual(
    peek(data.path, (db) => db.prepare("SELECT count(*) AS n FROM reactions").get()!.n),
    3,
  );
});

Deno.test("SqliteStore keeps an admin's removal over a reopen, in pages, search and chat export", async () => {
  await using data = await tempData();
  let ts = "", ownTs = "";
  {
    await using s = open(data.path);
    await s.join("alice", "ops");
    await s.join("bob", "ops");
    ts = (await s.append(room("ops", "bob", "rude words"))).ts;
    ownTs = (await s.append(room("ops", "alice", "my own"))).ts;
    const removed = await s.change({
      kind: "delete",
      conv: "ops",
      id: 1,
      user: "alice",
      moderator: true,
    });
    assert.deepEqual(removed, {
      ok: true,
      applied: {
        kind: "deleted",
        conv: "ops",
        id: 1,
        seq: 3,
        user: "alice",
        from: "bob",
        ts,
        removed: true,
      },
    });
    const own = await s.change({
      kind: "delete",
      conv: "ops",
      id: 2,
      user: "alice",
      moderator: true,
    });
    assert.deepEqual(own, {
      ok: true,
      applied: {
        kind: "deleted",
        conv: "ops",
        id: 2,
        seq: 4,
        user: "alice",
        from: "alice",
        ts: ownTs,
      },
    });
  }
  // The existing column carries it: 2 for removed, 1 for deleted by its author.
  assert.deepEqual(
    peek(data.path, (db) => db.prepare("SELECT id, deleted, text FROM messages ORDER BY id").all())
      .map((r) => [r.id, r.deleted, r.text]),
    [[1, 2, ""], [2, 1, ""]],
  );
  {
    await using s = open(data.path);
    const stone = {
      id: 1,
      seq: 3,
      room: "ops",
      from: "bob",
      text: "",
      ts,
      deleted: true as const,
      removed: true as const,
    };
    assert.deepEqual(await s.message("ops", 1), stone);
    const page = await s.page("ops", { since: 2, limit: 10 });
    assert.deepEqual(page.messages.map((m) => [m.id, m.removed]), [[1, true], [2, undefined]]);
    assert.deepEqual(page.messages[0], stone);
    assert.deepEqual((await s.page("ops", { limit: 10 })).messages[0], stone);
    assert.deepEqual(await s.search("rude", { user: "alice", rooms: ["ops"], limit: 10 }), []);
  }
  let text = "";
  const decoder = new TextDecoder();
  const out = {
    write(p: Uint8Array): Promise<number> {
      text += decoder.decode(p, { stream: true });
      return Promise.resolve(p.length);
    },
  };
  assert.equal(await exportCommand(["--data", data.path], {}, out), 0);
  assert.deepEqual(text.trimEnd().split("\n").map((l) => JSON.parse(l)), [
    { id: 1, room: "ops", from: "bob", text: "", ts, deleted: true, removed: true },
    { id: 2, room: "ops", from: "alice", text: "", ts: ownTs, deleted: true },
  ]);
});

Deno.test("SqliteStore.open() migrates a version 5 file: every message readable, seq = id", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "general");
    await s.join("bob", "general");
    for (let i = 1; i <= 4; i++) await s.append(room("general", i % 2 ? "alice" : "bob", `g${i}`));
    await s.append(dm("alice", "bob", "psst"));
    await s.setRead("bob", "general", 1);
    await s.claimName("Dora", "sd", 1234, true);
  }
  const v5 = new DatabaseSync(data.path);
  // As schema 5 retention left it: message 1 is gone, the watermark says so.
  v5.exec(`${TO_SCHEMA_5}; DELETE FROM messages WHERE conv = 'general' AND id = 1;
    UPDATE convs SET trimmed = 1 WHERE conv = 'general'`);
  v5.close();
  assert.equal(
    peek(
      data.path,
      (db) =>
        db.prepare("SELECT count(*) AS n FROM sqlite_schema WHERE name = 'reactions'").get()!.n,
    ),
    0,
    "a real schema 5 file",
  );
  {
    await using s = open(data.path, { retainMessages: 100 });
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    // A claim made before its time was kept: 0 (every message of the name is
    // its holder's, as before), kept by a refresh; a new claim has its time.
    const dora = { name: "Dora", session: "sd", seen: 1234, since: 0 };
    assert.deepEqual(await s.nameClaim("dora"), dora);
    assert.deepEqual(await s.claimName("dora", "sd", 2000, false), {
      ok: true,
      claim: { ...dora, seen: 2000 },
    });
    assert.deepEqual(await s.claimName("Eve", "se", 3000, true), {
      ok: true,
      claim: { name: "Eve", session: "se", seen: 3000, since: 3000 },
    });
    const page = await s.page("general", { since: 0, limit: 10 });
    assert.deepEqual(
      page.messages.map((m) => [m.id, m.seq, m.from, m.text]),
      [[2, 2, "bob", "g2"], [3, 3, "alice", "g3"], [4, 4, "bob", "g4"]],
    );
    assert.deepEqual([page.gap, page.seq], [true, 4], "message 1 was gone before");
    assert.equal((await s.page("general", { since: 1, limit: 10 })).gap, false);
    assert.deepEqual(await s.conversations("bob"), [
      { room: "general", last: 4, read: 1, seq: 4, unread: 1 },
      { to: "alice", last: 1, read: 0, seq: 1, unread: 1 },
    ]);
    assert.deepEqual(
      peek(
        data.path,
        (db) =>
          db.prepare("SELECT conv, last, newest, kept, trimmed FROM convs ORDER BY conv").all()
            .map((r) => ({ ...r })),
      ),
      [
        { conv: "@alice:bob", last: 1, newest: 1, kept: 1, trimmed: 0 },
        { conv: "general", last: 4, newest: 4, kept: 3, trimmed: 1 },
      ],
    );
    assert.equal(
      peek(
        data.path,
        (db) => db.prepare("SELECT v FROM messages_fts_config WHERE k = 'secure-delete'").get()?.v,
      ),
      1,
      "the index removes deleted words",
    );
    const e = await s.change({
      kind: "edit",
      conv: "general",
      id: 3,
      user: "alice",
      text: "g3 fixed",
    });
    assert.equal(e.ok && e.applied?.seq, 5);
    const scope = { user: "bob", rooms: ["general"], limit: 10 };
    assert.deepEqual((await s.search("fixed", scope)).map((m) => m.id), [3], "edits are indexed");
    assert.deepEqual(await s.search("g3", scope).then((f) => f.map((m) => m.text)), ["g3 fixed"]);
    assert.equal((await s.append(room("general", "bob", "g6"))).id, 6);
  }
  await using s = open(data.path);
  const since4 = await s.page("general", { since: 4, limit: 10 });
  assert.deepEqual(since4.messages.map((m) => [m.id, m.seq]), [[3, 5], [6, 6]]);
});

Deno.test("SqliteStore retention removes a message with its reactions; the watermark is its last change", async () => {
  await using data = await tempData();
  {
    // Written without retention, trimmed at the reopen: nothing races the changes.
    await using s = open(data.path);
    for (let i = 1; i <= 5; i++) await s.append(room("r", "alice", `m${i}`));
    // A late reaction to message 1 (seq 6), one to message 5 (7), an edit of message 4 (8).
    await s.change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: true });
    await s.change({ kind: "react", conv: "r", id: 5, user: "bob", emoji: "👍", on: true });
    await s.change({ kind: "edit", conv: "r", id: 4, user: "alice", text: "m4 edited" });
  }
  {
    await using s = open(data.path, { retainMessages: 3 });
    await s.flush();
    const page = await s.page("r", { since: 0, limit: 10 });
    assert.deepEqual(page.messages.map((m) => [m.id, m.seq]), [[3, 3], [5, 7], [4, 8]]);
    assert.equal(page.gap, true);
    assert.equal(
      (await s.page("r", { since: 5, limit: 10 })).gap,
      true,
      "message 1 changed at 6, after 5: a copy held since 5 is stale",
    );
    assert.equal((await s.page("r", { since: 6, limit: 10 })).gap, false);
    assert.deepEqual(
      peek(data.path, (db) => db.prepare("SELECT id FROM reactions").all().map((r) => r.id)),
      [5],
      "the reactions of the removed messages are gone",
    );
    assert.equal(
      await s.change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: false })
        .then((r) => r.ok ? "ok" : r.refusal),
      "unknown_message",
    );
  }
  await using s = open(data.path);
  assert.equal((await s.page("r", { since: 5, limit: 10 })).gap, true, "after a reopen too");
  assert.equal((await s.page("r", { since: 6, limit: 10 })).gap, false);
});

Deno.test("SqliteStore retainDays removes old messages with their reactions; the watermark is their last change", async () => {
  await using data = await tempData();
  let now = Date.parse("2030-01-01T00:00:00Z");
  {
    await using s = open(data.path, { now: () => now });
    await s.append(room("r", "alice", "old"));
    now += 10 * 86_400_000;
    await s.append(room("r", "alice", "new"));
    await s.change({ kind: "react", conv: "r", id: 1, user: "bob", emoji: "👍", on: true });
    await s.change({ kind: "react", conv: "r", id: 2, user: "bob", emoji: "👍", on: true });
  }
  await using s = open(data.path, { now: () => now, retainDays: 7 });
  await s.flush();
  const page = await s.page("r", { since: 0, limit: 10 });
  assert.deepEqual(page.messages.map((m) => [m.id, m.seq, m.text]), [[2, 4, "new"]]);
  assert.equal((await s.page("r", { since: 2, limit: 10 })).gap, true, "message 1 changed at 3");
  assert.equal((await s.page("r", { since: 3, limit: 10 })).gap, false);
  assert.deepEqual(
    peek(data.path, (db) => db.prepare("SELECT id FROM reactions").all().map((r) => r.id)),
    [2],
  );
});

Deno.test("SqliteStore reads by position, counts unread and finds replies through indexes", async () => {
  await using data = await tempData();
  {
    await using _s = open(data.path);
  }
  const plan = (sql: string, ...args: (string | number)[]) =>
    peek(
      data.path,
      (db) =>
        db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail)).join(
          "; ",
        ),
    );
  const since = plan(
    "SELECT id FROM messages WHERE conv = ? AND rev > ? ORDER BY rev LIMIT ?",
    "r",
    0,
    10,
  );
  assert.match(since, /USING INDEX messages_by_rev \(conv=\? AND rev>\?\)/);
  assert.doesNotMatch(since, /TEMP B-TREE/, "without sorting");
  const unread = plan(
    `SELECT count(*) FROM (SELECT 1 FROM (SELECT x.deleted, x.sender FROM messages AS x
         WHERE x.conv = ?1 AND x.id > ?2 ORDER BY x.id DESC LIMIT ?5)
       WHERE deleted = 0 AND sender <> ?3 LIMIT ?4)`,
    "r",
    0,
    "u",
    100,
    1000,
  );
  assert.match(unread, /SEARCH x USING INDEX sqlite_autoindex_messages_1 \(conv=\? AND id>\?\)/);
  assert.doesNotMatch(unread, /TEMP B-TREE/, "newest first along the index, without sorting");
  assert.match(
    plan("UPDATE messages SET reply_snippet = NULL WHERE conv = ? AND reply_to = ?", "r", 1),
    /USING INDEX messages_by_reply/,
  );
  assert.match(
    plan("UPDATE messages SET reply_snippet = ?3 WHERE conv = ?1 AND reply_to = ?2", "r", 1, "x"),
    /USING INDEX messages_by_reply/,
    "an edit's new quote reaches the replies through the index",
  );
});

Deno.test("SqliteStore.conversations() counts unread among the newest messages after the marker", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  assert.equal(UNREAD_SCAN, 1000);
  await s.join("alice", "busy");
  await s.join("alice", "calm");
  const ab = conversationKey("alice", { to: "bob" });
  // Asked for at once: one transaction.
  await Promise.all(
    Array.from({ length: 1100 }, (_, i) => s.append(room("busy", "bob", `b${i + 1}`))),
  );
  const calm = [];
  for (let i = 1; i <= 12; i++) {
    calm.push(s.append(room("calm", i % 3 === 0 ? "alice" : "bob", `c${i}`)));
  }
  calm.push(s.append(dm("bob", "alice", "hey")), s.append(dm("alice", "bob", "yo")));
  await Promise.all(calm);
  for (const id of [1, 2, 4]) {
    await s.change({ kind: "delete", conv: "calm", id, user: "bob" });
  }
  await s.change({ kind: "react", conv: "calm", id: 5, user: "alice", emoji: "👍", on: true });
  await s.flush();
  /** Others' live messages after the marker, counted from the pages. */
  const brute = async (conv: string, read: number) =>
    (await s.page(conv, { limit: 5000 })).messages.filter((m) =>
      m.id > read && m.from !== "alice" && !m.deleted
    ).length;
  // calm: 12 messages, alice's are 3, 6, 9, 12; 1, 2 and 4 are deleted: 5, 7, 8, 10, 11.
  assert.equal(await brute("calm", 0), 5);
  assert.deepEqual(await s.conversations("alice"), [
    { room: "busy", last: 1100, read: 0, seq: 1100, unread: UNREAD_CAP },
    { room: "calm", last: 12, read: 0, seq: 16, unread: 5 },
    { to: "bob", last: 2, read: 0, seq: 2, unread: 1 },
  ]);
  await s.setRead("alice", "busy", 1050);
  await s.setRead("alice", "calm", 7);
  await s.setRead("alice", ab, 1);
  assert.equal(await brute("calm", 7), 3);
  assert.deepEqual(await s.conversations("alice"), [
    { room: "busy", last: 1100, read: 1050, seq: 1100, unread: 50 },
    { room: "calm", last: 12, read: 7, seq: 16, unread: 3 },
    { to: "bob", last: 2, read: 1, seq: 2, unread: 0 },
  ]);
  // The bound: past UNREAD_SCAN of alice's own messages after her marker, older ones are not counted.
  await s.setRead("alice", "busy", 1100);
  await Promise.all(
    Array.from({ length: 5 }, (_, i) => s.append(room("busy", "bob", `late${i}`))),
  );
  await Promise.all(
    Array.from({ length: UNREAD_SCAN }, (_, i) => s.append(room("busy", "alice", `own${i}`))),
  );
  await s.flush();
  assert.equal(await brute("busy", 1100), 5);
  assert.equal((await s.conversations("alice"))[0].unread, 0, "only the newest 1000 are looked at");
  await s.append(room("busy", "bob", "newest"));
  await s.flush();
  assert.equal((await s.conversations("alice"))[0].unread, 1);
});

Deno.test("SqliteStore.append() refuses a stale reply after what is queued, so a read then sees the change", async () => {
  await using data = await tempData();
  await using s = open(data.path, { commitDelay: 60_000 });
  const first = s.append(room("r", "alice", "first words"));
  await s.flush();
  const quote = { ...replyRef(await first), seq: 1 };
  const edited = s.change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "second words" });
  let seen: ChatMessage | null | undefined;
  const refused = s.append({ ...room("r", "bob", "re"), replyTo: quote }).catch(async (err) => {
    // The hub reads the original again on ReplyChanged: the edit is committed by then.
    seen = await s.message("r", 1);
    throw err;
  });
  // A turn of the event loop (the commit is a minute away): still waiting for the edit's commit.
  await new Promise((resolve) => setTimeout(resolve, 0));
  const settled = () => seen !== undefined;
  assert.equal(settled(), false, "not refused before what is queued commits");
  await s.flush();
  await assert.rejects(refused, ReplyChanged);
  assert.equal((await edited).ok, true);
  assert.deepEqual(
    [seen?.seq, seen?.text],
    [2, "second words"],
  );
  const retry = s.append({
    ...room("r", "bob", "re"),
    replyTo: { ...quote, snippet: "second words", seq: 2 },
  });
  await s.flush();
  assert.deepEqual((await retry).replyTo, { id: 1, from: "alice", snippet: "second words" });
  assert.equal((await retry).id, 3, "the refusal took no id");
  // An edit updates the stored quote (read back without the original, from the row itself).
  const third = s.change({ kind: "edit", conv: "r", id: 1, user: "alice", text: "third\n  words" });
  await s.flush();
  assert.equal((await third).ok, true);
  const stored = peek(
    data.path,
    (db) =>
      db.prepare("SELECT reply_snippet FROM messages WHERE conv = 'r' AND id = 3").get()
        ?.reply_snippet,
  );
  assert.equal(stored, snippetOf("third\n  words"));
});

Deno.test("SqliteStore.append() of a reply after a release wiped its original in the same batch quotes nothing", async () => {
  await using data = await tempData();
  const secret = "wombatquixotic";
  const ab = conversationKey("alice", { to: "bob" });
  await using s = open(data.path, { commitDelay: 60_000, checkpointDelay: 10 });
  const claimed = s.claimName("alice", "s1", 1000, true);
  const original = s.append(dm("alice", "bob", `the ${secret} plan`));
  await s.flush();
  assert.equal((await claimed).ok, true);
  const quote = { ...replyRef(await original), seq: 1 };
  // Checked at call time (the original is kept), then the release runs first in the transaction.
  const released = s.releaseName("alice", "s1");
  const reply = s.append({ ...dm("bob", "alice", "sounds good"), replyTo: quote });
  await s.flush();
  assert.deepEqual(await released, []);
  const gone = { id: 1, from: "alice", snippet: "", deleted: true };
  assert.deepEqual([(await reply).id, (await reply).replyTo], [2, gone]);
  assert.deepEqual((await s.page(ab, { limit: 10 })).messages.map((m) => [m.id, m.replyTo]), [
    [2, gone],
  ]);
  await until(() => walSize(data.path) === 0, "the log is checkpointed");
  assert.equal(await inFile(data.path, secret), false, "nothing of the wiped text is in the file");
});

Deno.test("SqliteStore.open() migrates a version 6 file: search finds words through their Markdown", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.append(room("general", "alice", "the dep**loy** is [done](https://x.test/zebra)"));
  }
  const v6 = new DatabaseSync(data.path);
  v6.exec(TO_SCHEMA_6);
  v6.close();
  await using s = open(data.path);
  const scope = { user: "alice", rooms: ["general"], limit: 10 };
  assert.deepEqual((await s.search("deploy done", scope)).length, 1);
  assert.deepEqual((await s.search("zebra", scope)).length, 0);
  // The index follows the migrated rows: an edit replaces their words.
  await s.change({ kind: "edit", conv: "general", id: 1, user: "alice", text: "a **mango**" });
  assert.deepEqual((await s.search("deploy", scope)).length, 0);
  assert.deepEqual((await s.search("mango", scope)).length, 1);
});

Deno.test("SqliteStore keeps a message's files over a reopen; a delete leaves none in its row", async () => {
  await using data = await tempData();
  const photo = {
    id: "q3Xv5hBWOmL3kP0Jc0rS1A",
    name: "cat.png",
    size: 1234,
    type: "image/png",
    width: 640,
    height: 480,
  };
  const doc = { id: "Zz9_-aBcDeFgHiJkLmNoPq", name: "a.pdf", size: 5, type: "application/pdf" };
  {
    await using s = open(data.path);
    await s.append({ ...room("general", "alice", "look"), files: [photo, doc] });
    await s.append({ ...room("general", "alice", ""), files: [doc] });
    await s.append(room("general", "alice", "plain"));
  }
  assert.deepEqual(
    peek(data.path, (db) => db.prepare("SELECT files FROM messages ORDER BY id").all())
      .map((r) => r.files === null ? null : JSON.parse(String(r.files))),
    [[photo, doc], [doc], null],
    "JSON in the row, NULL when none",
  );
  await using s = open(data.path);
  const page = await s.page("general", { limit: 10 });
  assert.deepEqual(page.messages.map((m) => m.files), [[photo, doc], [doc], undefined]);
  const found = await s.search("look", { user: "alice", rooms: ["general"], limit: 10 });
  assert.deepEqual(found.map((m) => m.files), [[photo, doc]]);
  assert.ok((await s.change({ kind: "delete", conv: "general", id: 1, user: "alice" })).ok);
  await s.flush();
  assert.equal((await s.message("general", 1))?.files, undefined);
  assert.equal(
    peek(data.path, (db) => db.prepare("SELECT files FROM messages WHERE id = 1").get()!.files),
    null,
  );
});

Deno.test("SqliteStore.open() migrates a version 7 file: messages without files, empty file tables", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.append(room("general", "alice", "before files"));
  }
  const v7 = new DatabaseSync(data.path);
  v7.exec(TO_SCHEMA_7);
  v7.close();
  await using s = open(data.path);
  assert.equal(
    peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
    SCHEMA_VERSION,
  );
  const [before] = (await s.page("general", { limit: 10 })).messages;
  assert.deepEqual([before.text, "files" in before], ["before files", false]);
  assert.equal(peek(data.path, (db) => db.prepare("SELECT count(*) AS n FROM files").get()!.n), 0);
  const after = await s.append({
    ...room("general", "alice", ""),
    files: [{ id: "q3Xv5hBWOmL3kP0Jc0rS1A", name: "x.txt", size: 1, type: "text/plain" }],
  });
  assert.deepEqual(await s.message("general", after.id), after);
});

Deno.test("SqliteStore.open() migrates a version 8 file: messages are found by their files' names", async () => {
  await using data = await tempData();
  const file = {
    id: "AAAAAAAAAAAAAAAAAAAAAA",
    name: "q3-revenue.csv",
    size: 10,
    type: "text/plain",
  };
  {
    await using s = open(data.path);
    await s.append({ ...room("general", "alice", "the numbers"), files: [file] });
    await s.append({ ...room("general", "bob", ""), files: [{ ...file, name: "team photo.png" }] });
  }
  // As version 8 left it: only the text was searched.
  const v8 = new DatabaseSync(data.path);
  v8.exec(`${TO_SCHEMA_9}; UPDATE messages SET plain = text; PRAGMA user_version = 8`);
  v8.close();
  await using s = open(data.path);
  assert.equal(
    peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
    SCHEMA_VERSION,
  );
  const scope = { user: "alice", rooms: ["general"], limit: 10 };
  assert.deepEqual((await s.search("revenue", scope)).map((m) => m.id), [1]);
  assert.deepEqual((await s.search("photo", scope)).map((m) => m.id), [2]);
  assert.deepEqual((await s.search("numbers", scope)).map((m) => m.id), [1]);
});

Deno.test("SqliteStore keeps room settings over a reopen, and a private room's creation", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "secret", { private: true });
    await s.join("bob", "secret");
    await s.join("alice", "news");
    await s.join("alice", "old");
    await s.join("alice", "plain");
    assert.deepEqual(await s.setRoomSettings("news", { readOnly: true }), { readOnly: true });
    await s.setRoomSettings("old", { archived: true, readOnly: true });
    await s.setRoomSettings("old", { readOnly: false });
    assert.equal(await s.setRoomSettings("nowhere", { private: true }), null);
  }
  assert.deepEqual(
    peek(
      data.path,
      (db) =>
        db.prepare("SELECT name, private, read_only, archived FROM rooms ORDER BY name").all()
          .map((r) => [r.name, r.private, r.read_only, r.archived]),
    ),
    [["news", 0, 1, 0], ["old", 0, 0, 1], ["plain", 0, 0, 0], ["secret", 1, 0, 0]],
  );
  await using s = open(data.path);
  assert.deepEqual(await s.rooms(), [
    { name: "news", members: 1, readOnly: true },
    { name: "old", members: 1, archived: true },
    { name: "plain", members: 1 },
    { name: "secret", members: 2, private: true },
  ]);
  assert.deepEqual(await s.roomSettings("secret"), { private: true });
  assert.deepEqual(await s.roomSettings("plain"), {});
  assert.equal(await s.roomSettings("nowhere"), null);
  assert.deepEqual(await s.members("secret"), ["alice", "bob"]);
});

Deno.test("SqliteStore.open() migrates a version 10 file: existing rooms are plain", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "general");
    await s.join("bob", "ops");
    await s.setTopic("ops", "deploys");
    await s.append(room("ops", "bob", "before the upgrade"));
  }
  const v10 = new DatabaseSync(data.path);
  v10.exec(TO_SCHEMA_10);
  v10.close();
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    assert.deepEqual(await s.rooms(), [
      { name: "general", members: 1 },
      { name: "ops", members: 1, topic: "deploys" },
    ]);
    assert.deepEqual(await s.roomSettings("ops"), {});
    assert.deepEqual(await s.setRoomSettings("ops", { private: true }), { private: true });
    assert.deepEqual(await s.join("carol", "hidden", { private: true }), {
      added: true,
      created: true,
      count: 1,
    });
  }
  await using s = open(data.path);
  assert.deepEqual(await s.rooms(), [
    { name: "general", members: 1 },
    { name: "hidden", members: 1, private: true },
    { name: "ops", members: 1, topic: "deploys", private: true },
  ]);
  assert.deepEqual((await s.page("ops", { limit: 10 })).messages.map((m) => m.text), [
    "before the upgrade",
  ]);
});

Deno.test("SqliteStore.renameRoom() is durable when it resolves: the room and the gone old name survive a reopen", async () => {
  await using data = await tempData();
  let before;
  {
    await using s = open(data.path);
    before = await roomToRename(s, (s) => (s as SqliteStore).flush());
    // Queued, not awaited: the rename commits them first, and they move with the room.
    const late = s.append(room("ops", "bob", "just before"));
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.equal((await late).id, before.history.seq + 1);
    assert.deepEqual(
      peek(data.path, (db) => ({
        ...db.prepare("SELECT conv, room FROM messages WHERE id = ?").get(before.history.seq + 1),
      })),
      { conv: "deploys", room: "deploys" },
      "committed by the time the rename resolved",
    );
    before.history.messages.push(await late);
    before.history.seq++;
    before.changes.messages.push(await late);
    before.changes.seq++;
    for (const convs of before.convs.values()) {
      for (const c of convs) {
        if (c.room !== "ops") continue;
        c.last = c.seq = before.history.seq;
        c.unread += c.read < c.last && convs !== before.convs.get("bob") ? 1 : 0;
      }
    }
  }
  await using s = open(data.path);
  await assertRenamed(s, before);
  await assert.rejects(s.append(room("ops", "alice", "lost?")), RoomGone);
  assert.deepEqual(await s.join("dave", "ops"), { added: true, created: true, count: 1 });
  const first = await s.append(room("ops", "dave", "new"));
  assert.equal(first.id, before.history.seq + 2, "after the renamed room's ids and its gap");
});

Deno.test("SqliteStore.renameRoom() moves every user's read marker; a join that creates the old name again survives a reopen", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "ops");
    await s.join("erin", "ops");
    await s.append(room("ops", "alice", "one"));
    await s.setRead("erin", "ops", 1);
    await s.leave("erin", "ops");
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    assert.deepEqual(
      peek(
        data.path,
        (db) => db.prepare("SELECT member, conv, id FROM reads").all().map((r) => ({ ...r })),
      ),
      [{ member: "erin", conv: "deploys", id: 1 }],
      "an ex-member's marker moves too",
    );
    // Not awaited: the send after the join is taken, in order.
    const joined = s.join("bob", "ops");
    const sent = s.append(room("ops", "bob", "hi"));
    assert.deepEqual(await joined, { added: true, created: true, count: 1 });
    assert.equal((await sent).id, 3);
  }
  await using s = open(data.path);
  assert.equal((await s.append(room("ops", "bob", "again"))).id, 4);
  await s.join("erin", "deploys");
  assert.deepEqual(
    (await s.conversations("erin")).map((c) => [c.room, c.read, c.unread]),
    [["deploys", 1, 0]],
  );
});

Deno.test("SqliteStore.open() migrates a version 11 file: no renames or sessions yet, kept from then on", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "ops");
    await s.append(room("ops", "alice", "before the upgrade"));
  }
  const v11 = new DatabaseSync(data.path);
  v11.exec(TO_SCHEMA_11);
  v11.close();
  const now = Date.now();
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    assert.equal(SCHEMA_VERSION, 13);
    assert.deepEqual(await s.recentRenames(10), []);
    assert.deepEqual(await s.sessions(["alice"], 0, now), new Map());
    assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
    await s.noteSession("Alice", "s1", 1000);
    await s.noteSession("alice", "s2", 2000);
  }
  await using s = open(data.path);
  assert.deepEqual(
    (await s.recentRenames(10)).map(({ room, name }) => [room, name]),
    [["ops", "deploys"]],
    "renames survive a reopen",
  );
  assert.deepEqual(
    await s.sessions(["ALICE"], 0, now),
    new Map([["ALICE", [{ session: "s2", seen: 2000 }, { session: "s1", seen: 1000 }]]]),
    "sessions survive a reopen",
  );
  assert.deepEqual((await s.page("deploys", { limit: 10 })).messages.map((m) => m.text), [
    "before the upgrade",
  ]);
});

Deno.test("SqliteStore.open() migrates a version 12 file: rooms keep their settings, @room open to all", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    await s.join("alice", "ops");
    await s.join("alice", "news");
    await s.setRoomSettings("news", { readOnly: true, autoJoin: true });
    await s.append(room("ops", "alice", "before the upgrade"));
  }
  const v12 = new DatabaseSync(data.path);
  v12.exec(TO_SCHEMA_12);
  v12.close();
  {
    await using s = open(data.path);
    assert.equal(
      peek(data.path, (db) => db.prepare("PRAGMA user_version").get()!.user_version),
      SCHEMA_VERSION,
    );
    assert.equal(SCHEMA_VERSION, 13);
    assert.deepEqual(await s.roomSettings("ops"), {});
    assert.deepEqual(await s.roomSettings("news"), { readOnly: true, autoJoin: true });
    assert.deepEqual(await s.setRoomSettings("ops", { restrictRoomMentions: true }), {
      restrictRoomMentions: true,
    });
  }
  await using s = open(data.path);
  assert.deepEqual(await s.roomSettings("ops"), { restrictRoomMentions: true }, "kept on reopen");
  assert.deepEqual(await s.rooms(), [
    { name: "news", members: 1, readOnly: true, autoJoin: true },
    { name: "ops", members: 1, restrictRoomMentions: true },
  ]);
  assert.deepEqual((await s.page("ops", { limit: 10 })).messages.map((m) => m.text), [
    "before the upgrade",
  ]);
});

Deno.test("SqliteStore.renameRoom() lists the rename in its own transaction: committed with it, or neither", async () => {
  await using data = await tempData();
  await using s = open(data.path);
  await s.join("alice", "ops");
  peekExec(
    data.path,
    "CREATE TRIGGER no_renames BEFORE INSERT ON renames BEGIN SELECT RAISE(ABORT, 'refused'); END",
  );
  await assert.rejects(s.renameRoom("ops", "deploys"), /refused/);
  assert.deepEqual([await s.roomExists("ops"), await s.roomExists("deploys")], [true, false]);
  peekExec(data.path, "DROP TRIGGER no_renames");
  assert.equal(await s.renameRoom("ops", "deploys"), "renamed");
  // Read on another connection, without a flush: in the file when the rename resolved.
  assert.deepEqual(
    peek(
      data.path,
      (db) => db.prepare("SELECT room, name FROM renames").all().map((r) => ({ ...r })),
    ),
    [{ room: "ops", name: "deploys" }],
  );
});

Deno.test("SqliteStore.sessions() reads every user's sessions in one query, along the index, unsorted", async () => {
  await using data = await tempData();
  {
    await using s = open(data.path);
    for (let u = 0; u < 5; u++) {
      for (let i = 0; i < 3; i++) await s.noteSession(`u${u}`, `s${u}-${i}`, 1000 * i + u);
    }
  }
  const plan = peek(data.path, (db) =>
    db.prepare(
      `EXPLAIN QUERY PLAN SELECT folded, session, seen FROM sessions AS s
       WHERE folded IN (SELECT value FROM json_each(?1)) AND seen >= ?2
         AND NOT EXISTS (SELECT 1 FROM revoked AS r WHERE r.session = s.session AND r.until > ?3)
       ORDER BY folded, seen DESC, session DESC`,
    ).all('["u1","u2"]', 0, 0).map((r) => String(r.detail)).join("; "));
  assert.match(plan, /USING COVERING INDEX sessions_by_seen/);
  assert.doesNotMatch(plan, /TEMP B-TREE/, "without sorting");
  await using s = open(data.path);
  const found = await s.sessions(["u1", "U3", "nobody"], 1000, Date.now());
  assert.deepEqual(
    [...found].map(([user, list]) => [user, list.map((x) => x.session)]),
    [["u1", ["s1-2", "s1-1"]], ["U3", ["s3-2", "s3-1"]]],
  );
});

Deno.test("SqliteStore.memberCount() forgets the counts of a failed commit", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.db`;
  const s = SqliteStore.open(path);
  try {
    await s.join("alice", "r");
    assert.equal(await s.memberCount("r"), 1, "counted: from now on kept in memory");
    const db = new DatabaseSync(path);
    db.exec(`CREATE TRIGGER boom BEFORE INSERT ON messages WHEN new.text = 'boom'
             BEGIN SELECT RAISE(ABORT, 'disk says no'); END`);
    db.close();
    const batch = await Promise.allSettled([
      s.join("bob", "r"),
      s.leave("alice", "r"),
      s.join("carol", "r"),
      s.append({ conv: "r", room: "r", from: "alice", text: "boom" }),
    ]);
    assert.deepEqual(batch.map((r) => r.status), ["rejected", "rejected", "rejected", "rejected"]);
    assert.equal(await s.memberCount("r"), 1);
    assert.deepEqual(await s.membersPage("r", undefined, 10), { members: ["alice"], count: 1 });
    assert.deepEqual(await s.join("bob", "r"), { added: true, created: false, count: 2 });
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SqliteStore.memberCount() reads committed members, as members() does", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/chat.db`;
  const s = SqliteStore.open(path, { commitDelay: 50 });
  try {
    await s.join("alice", "r");
    const joined = s.join("bob", "r");
    assert.equal(await s.memberCount("r"), 1);
    assert.deepEqual(await s.members("r"), ["alice"]);
    assert.equal((await joined).count, 2);
    assert.equal(await s.memberCount("r"), 2);
    // Counted by a later open: the file is the truth.
  } finally {
    await s.close();
  }
  const again = SqliteStore.open(path);
  try {
    assert.equal(await again.memberCount("r"), 2);
  } finally {
    await again.close();
    await Deno.remove(dir, { recursive: true });
  }
});
