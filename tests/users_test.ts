import assert from "node:assert/strict";
import { readUsers, updateUsers, writeUsers } from "../server/users.ts";

Deno.test("writeUsers() goes through users.json.tmp and leaves nothing behind", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.json`;
    await writeUsers(path, new Map([["bob", "b-pass-123"], ["alice", "a-pass-123"]]));
    assert.equal(
      await Deno.readTextFile(path),
      '{\n  "alice": "a-pass-123",\n  "bob": "b-pass-123"\n}\n',
    );
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["users.json"]);
    if (Deno.build.os !== "windows") assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeUsers() waits for another writer's temporary file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(`${path}.tmp`, "{}");
    let written = false;
    const writing = writeUsers(path, new Map([["alice", "a-pass-123"]])).then(() => written = true);
    // Still held: nothing may be written yet.
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(written, false);
    await Deno.remove(`${path}.tmp`);
    await writing;
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writeUsers() replaces a temporary file left by a crash", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(`${path}.tmp`, "{half");
    const old = new Date(Date.now() - 60_000);
    await Deno.utime(`${path}.tmp`, old, old);
    await writeUsers(path, new Map([["alice", "a-pass-123"]]));
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
    await assert.rejects(Deno.stat(`${path}.tmp`), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("updateUsers() from two writers at once keeps the file valid", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.json`;
    await Promise.all([
      updateUsers(path, (u) => void u.set("alice", "a-pass-123")),
      updateUsers(path, (u) => void u.set("bob", "b-pass-123")),
    ]);
    const { users } = await readUsers(path);
    assert.ok(users.size >= 1, "valid JSON with at least one of the writes");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("updateUsers() from two writers at once keeps both entries", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.json`;
    await writeUsers(path, new Map([["alice", "a-pass-123"]]));
    const results = await Promise.all(
      ["bob", "carol", "dave"].map((name) =>
        updateUsers(path, (u) => void u.set(name, `${name}-pass-1`))
      ),
    );
    assert.deepEqual([...(await readUsers(path)).users.keys()].sort(), [
      "alice",
      "bob",
      "carol",
      "dave",
    ]);
    assert.ok(results.every((u) => u.has("alice")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("updateUsers() resolves only the entries the server would load", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(path, JSON.stringify({ bob: "", "bad name": "x", alice: "a-pass-1" }));
    const users = await updateUsers(path, (u) => void u.set("carol", "c-pass-1"));
    assert.deepEqual([...users.keys()].sort(), ["alice", "carol"], "an empty password never loads");
    const raw = JSON.parse(await Deno.readTextFile(path));
    assert.equal(raw.bob, "", "but the file keeps what it had");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
