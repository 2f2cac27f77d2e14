import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { diskName, exportCommand } from "../cli/export.ts";
import { CHUNK_BYTES, type FileMeta } from "../server/files/files.ts";
import { SqliteFileStore } from "../server/files/sqlite.ts";
import { pattern, upload } from "./file_store_contract.ts";
import { conversationKey } from "../protocol.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { SqliteAdminStore } from "../server/admin/sqlite.ts";
import { replyRef } from "../server/store/store.ts";
import { runChat } from "./chat_process.ts";

/** The word only the deleted message had. */
const SECRET = "hunter2xyzzy";

/**
 * A data file with two rooms and a DM, written at a fixed time, whose
 * messages changed after they were sent: an edit, reactions, a reply to
 * the edited message and a deleted one.
 */
async function fixture(dir: string): Promise<string> {
  const path = `${dir}/chat.db`;
  const s = SqliteStore.open(path, { now: () => Date.parse("2030-05-01T12:00:00.000Z") });
  await s.join("alice", "general");
  await s.join("alice", "ops");
  await s.append({ conv: "general", room: "general", from: "alice", text: "hello" });
  const deploy = await s.append({
    conv: "ops",
    room: "ops",
    from: "bob",
    text: 'deploy "now"\nplease',
  });
  await s.append({
    conv: conversationKey("alice", { to: "bob" }),
    to: "bob",
    from: "alice",
    text: "psst",
  });
  await s.append({ conv: "ops", room: "ops", from: "alice", text: "done ✅" });
  await s.append({
    conv: "ops",
    room: "ops",
    from: "carol",
    text: "on it",
    replyTo: { ...replyRef(deploy), seq: deploy.seq },
  });
  await s.append({
    conv: "general",
    room: "general",
    from: "alice",
    text: `the password is ${SECRET}`,
  });
  const changes = [
    await s.change({ kind: "edit", conv: "ops", id: 1, user: "bob", text: "deploy now" }),
    await s.change({ kind: "react", conv: "ops", id: 2, user: "bob", emoji: "👍", on: true }),
    await s.change({ kind: "react", conv: "ops", id: 2, user: "carol", emoji: "👍", on: true }),
    await s.change({ kind: "react", conv: "ops", id: 2, user: "bob", emoji: "🎉", on: true }),
    await s.change({ kind: "delete", conv: "general", id: 2, user: "alice" }),
  ];
  assert.ok(changes.every((c) => c.ok && c.applied !== null));
  await s.close();
  return path;
}

const TS = "2030-05-01T12:00:00.000Z";
const ALL = [
  { id: 1, room: "general", from: "alice", text: "hello", ts: TS },
  { id: 1, room: "ops", from: "bob", text: "deploy now", ts: TS, edited: TS },
  { id: 1, to: "bob", from: "alice", text: "psst", ts: TS },
  {
    id: 2,
    room: "ops",
    from: "alice",
    text: "done ✅",
    ts: TS,
    reactions: { "👍": ["bob", "carol"], "🎉": ["bob"] },
  },
  {
    id: 3,
    room: "ops",
    from: "carol",
    text: "on it",
    ts: TS,
    replyTo: { id: 1, from: "bob", snippet: "deploy now" },
  },
  { id: 2, room: "general", from: "alice", text: "", ts: TS, deleted: true },
];

function lines(stdout: string): unknown[] {
  assert.ok(stdout.endsWith("\n"));
  return stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
}

Deno.test("chat export writes every message as a JSON line in its current state, oldest first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = await fixture(dir);
    const before = await Deno.readFile(path);
    const all = await runChat(["export", "--data", path]);
    assert.equal(all.stderr, "");
    assert.equal(all.code, 0);
    assert.deepEqual(lines(all.stdout), ALL);
    // Key order too: reactions in the order the emoji were first used.
    assert.equal(all.stdout.split("\n")[3], JSON.stringify(ALL[3]));
    assert.doesNotMatch(all.stdout, new RegExp(SECRET), "a deleted message's text is not exported");
    const ops = await runChat(["export", "--data", path, "--room", "ops"]);
    assert.equal(ops.code, 0);
    assert.deepEqual(lines(ops.stdout), [ALL[1], ALL[3], ALL[4]]);
    const env = await runChat(["export", "--room", "general"], { env: { DATA: path } });
    assert.deepEqual(lines(env.stdout), [ALL[0], ALL[5]], "DATA names the file too");
    assert.deepEqual(await Deno.readFile(path), before, "export only reads");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat export works beside a running server that holds the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = await fixture(dir);
    const live = SqliteStore.open(path);
    try {
      await live.append({ conv: "ops", room: "ops", from: "bob", text: "live" });
      const r = await runChat(["export", "--data", path, "--room", "ops"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        (lines(r.stdout) as { text: string }[]).map((m) => m.text),
        ["deploy now", "done ✅", "on it", "live"],
      );
      assert.equal(
        (await live.append({ conv: "ops", room: "ops", from: "bob", text: "more" })).id,
        9,
        "after 3 messages, 4 changes and the live one",
      );
    } finally {
      await live.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat export reads a file a server of schema 5 still uses: messages as they were", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = `${dir}/chat.db`;
    const s = SqliteStore.open(path, { now: () => Date.parse(TS) });
    await s.join("alice", "general");
    await s.append({ conv: "general", room: "general", from: "alice", text: "hello" });
    await s.close();
    // Schema 5 had none of the columns and tables of changes.
    const db = new DatabaseSync(path);
    db.exec(`
      DROP TRIGGER messages_fts_insert; DROP TRIGGER messages_fts_delete;
      DROP TRIGGER messages_fts_update; DROP TABLE messages_fts; ALTER TABLE messages DROP COLUMN plain;
      DROP INDEX messages_by_rev; DROP INDEX messages_by_reply;
      DROP TABLE reactions;
      ALTER TABLE messages DROP COLUMN rev; ALTER TABLE messages DROP COLUMN edited;
      ALTER TABLE messages DROP COLUMN deleted; ALTER TABLE messages DROP COLUMN reply_to;
      ALTER TABLE messages DROP COLUMN reply_from; ALTER TABLE messages DROP COLUMN reply_snippet;
      PRAGMA user_version = 5`);
    db.close();
    const r = await runChat(["export", "--data", path]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(lines(r.stdout), [ALL[0]]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat export explains bad flags, paths and rooms", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = await fixture(dir);
    await t.step("--help", async () => {
      const r = await runChat(["export", "--help"]);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^Write the messages kept in a data file as JSON lines/);
      assert.match(r.stdout, /Usage:\n {2}chat export --data FILE \[--room NAME\]/);
      assert.match(r.stdout, /Examples:\n {2}chat export --data chat\.db > chat-backup\.jsonl/);
      assert.match(r.stdout, /A deleted message is a tombstone with empty text/);
      assert.match(r.stdout, /"reactions"/);
    });
    const fails = async (args: string[], code: number, message: string | RegExp) => {
      const r = await runChat(["export", ...args]);
      assert.equal(r.code, code, r.stderr);
      assert.equal(r.stdout, "");
      const line = r.stderr.trimEnd();
      assert.doesNotMatch(line, /\n/, "one line");
      if (typeof message === "string") assert.equal(line, message);
      else assert.match(line, message);
    };
    await t.step("an unknown flag", () =>
      fails(
        ["--data", path, "--rom", "ops"],
        2,
        'error: Unknown flag "--rom": did you mean "--room"? (see chat export --help)',
      ));
    await t.step("no data file", () =>
      fails(
        [],
        2,
        "error: Export needs a data file: chat export --data FILE (see chat export --help)",
      ));
    await t.step(
      "a flag without its value",
      () => fails(["--data"], 2, 'error: Flag "--data" needs a value (see chat export --help)'),
    );
    await t.step("a bad room name", () =>
      fails(
        ["--data", path, "--room", "no way"],
        2,
        'error: Invalid room "no way": names are 1-32 letters, digits, - or _',
      ));
    await t.step("a room that does not exist", () =>
      fails(
        ["--data", path, "--room", "nope"],
        1,
        `error: No room "nope" in data file "${path}": check the name`,
      ));
    await t.step("a missing file", () =>
      fails(
        ["--data", `${dir}/missing.db`],
        1,
        `error: Cannot open data file "${dir}/missing.db": no such file: check the --data path`,
      ));
    await t.step("a file that is not a database", async () => {
      await Deno.writeTextFile(`${dir}/notes.txt`, "not a database ".repeat(100));
      await fails(
        ["--data", `${dir}/notes.txt`],
        1,
        /^error: Cannot open data file ".*notes\.txt": it is not a SQLite database/,
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exportCommand() stops quietly when the reader goes away", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = await fixture(dir);
    let writes = 0;
    const closedPipe = {
      write(): Promise<number> {
        writes++;
        return Promise.reject(new Deno.errors.BrokenPipe("Broken pipe (os error 32)"));
      },
    };
    assert.equal(await exportCommand(["--data", path], {}, closedPipe), 0);
    assert.equal(writes, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * A data file whose messages carry files: a photo and a large document in
 * a room, a file in a DM, a file whose message was deleted, and one
 * uploaded but never sent.
 */
async function filesFixture(dir: string) {
  const path = `${dir}/chat.db`;
  const s = SqliteStore.open(path, { now: () => Date.parse(TS) });
  const files = SqliteFileStore.open(s, { quota: 1 << 30 });
  const photoBytes = pattern(1000, 1);
  const docBytes = pattern(2 * CHUNK_BYTES + 17, 2);
  const dmBytes = pattern(50, 3);
  const photo = await upload(files, "alice", "cat.png", photoBytes, {
    type: "image/png",
    width: 4,
    height: 3,
  });
  const doc = await upload(files, "alice", "report 2030.pdf", docBytes, {
    type: "application/pdf",
  });
  const dmFile = await upload(files, "alice", "psst.txt", dmBytes, { type: "text/plain" });
  const gone = await upload(files, "alice", "oops.txt", pattern(60, 4), { type: "text/plain" });
  const unsent = await upload(files, "alice", "unsent.txt", pattern(70, 5));
  const meta = (f: FileMeta): FileMeta => {
    const m: FileMeta = { id: f.id, name: f.name, size: f.size, type: f.type };
    if (f.width !== undefined) m.width = f.width;
    if (f.height !== undefined) m.height = f.height;
    return m;
  };
  const send = async (conv: string, text: string, list: FileMeta[], to?: string) => {
    const attached = await files.attach("alice", list.map((f) => f.id), conv, "");
    assert.ok(Array.isArray(attached));
    const msg = await s.append({
      conv,
      ...(to ? { to } : { room: conv }),
      from: "alice",
      text,
      files: attached.map(meta),
    });
    await files.bind(list.map((f) => f.id), conv, msg.id);
    return msg;
  };
  await s.join("alice", "general");
  await s.join("alice", "ops");
  await send("general", "look", [photo, doc]);
  await send(conversationKey("alice", { to: "bob" }), "", [dmFile], "bob");
  const oops = await send("ops", "wrong one", [gone]);
  assert.ok((await s.change({ kind: "delete", conv: "ops", id: oops.id, user: "alice" })).ok);
  await files.close();
  await s.close();
  return {
    path,
    photo: { meta: meta(photo), bytes: photoBytes },
    doc: { meta: meta(doc), bytes: docBytes },
    dm: { meta: meta(dmFile), bytes: dmBytes },
    gone,
    unsent,
  };
}

Deno.test("chat export --files writes the files of the exported messages as ID-NAME; lines keep their files", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const fx = await filesFixture(dir);
    const out = `${dir}/files/nested`;
    const r = await runChat(["export", "--data", fx.path, "--files", out]);
    assert.equal(r.stderr, "");
    assert.equal(r.code, 0);
    assert.deepEqual(lines(r.stdout), [
      {
        id: 1,
        room: "general",
        from: "alice",
        text: "look",
        ts: TS,
        files: [fx.photo.meta, fx.doc.meta],
      },
      { id: 1, to: "bob", from: "alice", text: "", ts: TS, files: [fx.dm.meta] },
      { id: 1, room: "ops", from: "alice", text: "", ts: TS, deleted: true },
    ]);
    assert.doesNotMatch(r.stdout, /"url"/);
    const names = [];
    for await (const e of Deno.readDir(out)) names.push(e.name);
    const want = [fx.photo, fx.doc, fx.dm];
    assert.deepEqual(names.sort(), want.map((f) => `${f.meta.id}-${f.meta.name}`).sort());
    for (const f of want) {
      const path = `${out}/${f.meta.id}-${f.meta.name}`;
      assert.deepEqual(await Deno.readFile(path), f.bytes, f.meta.name);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600, "private, as the data file");
    }
    const ops = await runChat([
      "export",
      "--data",
      fx.path,
      "--room",
      "general",
      "--files",
      `${dir}/g`,
    ]);
    assert.equal(ops.code, 0, ops.stderr);
    const only = [];
    for await (const e of Deno.readDir(`${dir}/g`)) only.push(e.name);
    assert.deepEqual(
      only.sort(),
      [fx.photo, fx.doc].map((f) => `${f.meta.id}-${f.meta.name}`).sort(),
      "only the files of the room exported",
    );
    const plain = await runChat(["export", "--data", fx.path]);
    assert.deepEqual(plain.stdout, r.stdout, "without --files, the same lines");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat export --files never writes through a link or outside the directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const fx = await filesFixture(dir);
    const out = `${dir}/out`;
    await Deno.mkdir(out);
    await Deno.writeTextFile(`${dir}/precious`, "keep me");
    await Deno.symlink(`${dir}/precious`, `${out}/${fx.photo.meta.id}-${fx.photo.meta.name}`);
    const r = await runChat(["export", "--data", fx.path, "--files", out]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /^error: Cannot write ".*cat\.png": something other than a file is there\n$/,
    );
    assert.equal(await Deno.readTextFile(`${dir}/precious`), "keep me");
    const bad = await runChat(["export", "--data", fx.path, "--files="]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /"--files" needs a directory/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("diskName() makes one safe path segment of at most 255 bytes", () => {
  const id = "q3Xv5hBWOmL3kP0Jc0rS1A";
  assert.equal(diskName(id, "cat.png"), `${id}-cat.png`);
  assert.equal(diskName(id, "../../etc/passwd"), `${id}-.._.._etc_passwd`);
  assert.equal(diskName(id, "a\\b\u0000c\nd"), `${id}-a_b_c_d`);
  assert.equal(diskName("../x", "y"), "___x-y", "even the id");
  const long = diskName(id, "é".repeat(200) + ".jpeg");
  assert.ok(new TextEncoder().encode(long).length <= 255, long);
  assert.ok(long.endsWith("é.jpeg"), "whole characters, the extension kept");
});

Deno.test("chat export --help documents --files", async () => {
  const r = await runChat(["export", "--help"]);
  assert.match(r.stdout, /Usage:\n {2}chat export --data FILE \[--room NAME\] \[--files DIR\]/);
  assert.match(r.stdout, /--files DIR +Also write the files of the exported messages into DIR/);
  assert.match(r.stdout, /"files"/);
});

Deno.test("chat export --audit writes the admin actions a server with --data recorded, oldest first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = `${dir}/chat.db`;
    const store = SqliteStore.open(path);
    const admin = SqliteAdminStore.open(store);
    try {
      await admin.audit({
        at: Date.parse("2030-05-01T12:00:00.000Z"),
        by: "",
        action: "invite.create",
        target: "invite abcdef…",
        detail: "1 use, 7 days",
      });
      await admin.audit({
        at: Date.parse("2030-05-01T12:05:00.000Z"),
        by: "alice",
        action: "ban",
        target: "bob",
      });
      // Read while the store still holds the file, as beside a live server.
      const r = await runChat(["export", "--data", path, "--audit"]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(lines(r.stdout), [
        {
          id: 1,
          at: "2030-05-01T12:00:00.000Z",
          by: "",
          action: "invite.create",
          target: "invite abcdef…",
          detail: "1 use, 7 days",
        },
        { id: 2, at: "2030-05-01T12:05:00.000Z", by: "alice", action: "ban", target: "bob" },
      ]);
      const mixed = await runChat(["export", "--data", path, "--audit", "--room", "ops"]);
      assert.equal(mixed.code, 2);
      assert.match(
        mixed.stderr,
        /--audit writes the audit log alone: leave out --room and --files/,
      );
    } finally {
      await admin.close();
      await store.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
