import assert from "node:assert/strict";
import { exportCommand } from "../cli/export.ts";
import { conversationKey } from "../protocol.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { runChat } from "./chat_process.ts";

/** A data file with two rooms and a DM, written at a fixed time. */
async function fixture(dir: string): Promise<string> {
  const path = `${dir}/chat.db`;
  const s = SqliteStore.open(path, { now: () => Date.parse("2030-05-01T12:00:00.000Z") });
  await s.join("alice", "general");
  await s.join("alice", "ops");
  await s.append({ conv: "general", room: "general", from: "alice", text: "hello" });
  await s.append({ conv: "ops", room: "ops", from: "bob", text: 'deploy "now"\nplease' });
  await s.append({
    conv: conversationKey("alice", { to: "bob" }),
    to: "bob",
    from: "alice",
    text: "psst",
  });
  await s.append({ conv: "ops", room: "ops", from: "alice", text: "done ✅" });
  await s.close();
  return path;
}

const TS = "2030-05-01T12:00:00.000Z";
const ALL = [
  { id: 1, room: "general", from: "alice", text: "hello", ts: TS },
  { id: 1, room: "ops", from: "bob", text: 'deploy "now"\nplease', ts: TS },
  { id: 1, to: "bob", from: "alice", text: "psst", ts: TS },
  { id: 2, room: "ops", from: "alice", text: "done ✅", ts: TS },
];

function lines(stdout: string): unknown[] {
  assert.ok(stdout.endsWith("\n"));
  return stdout.trimEnd().split("\n").map((l) => JSON.parse(l));
}

Deno.test("chat export writes every message as a JSON line, oldest first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-export-" });
  try {
    const path = await fixture(dir);
    const before = await Deno.readFile(path);
    const all = await runChat(["export", "--data", path]);
    assert.equal(all.stderr, "");
    assert.equal(all.code, 0);
    assert.deepEqual(lines(all.stdout), ALL);
    const ops = await runChat(["export", "--data", path, "--room", "ops"]);
    assert.equal(ops.code, 0);
    assert.deepEqual(lines(ops.stdout), [ALL[1], ALL[3]]);
    const env = await runChat(["export", "--room", "general"], { env: { DATA: path } });
    assert.deepEqual(lines(env.stdout), [ALL[0]], "DATA names the file too");
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
        ['deploy "now"\nplease', "done ✅", "live"],
      );
      assert.equal(
        (await live.append({ conv: "ops", room: "ops", from: "bob", text: "more" })).id,
        4,
      );
    } finally {
      await live.close();
    }
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
