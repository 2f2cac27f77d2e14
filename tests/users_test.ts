import assert from "node:assert/strict";
import {
  findUser,
  parseUsers,
  readUsers,
  setPassword,
  updateUsers,
  type Users,
  writeUsers,
} from "../server/auth/users.ts";

const USERS_MODULE = new URL("../server/auth/users.ts", import.meta.url).href;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function listDir(dir: string): Promise<string[]> {
  const names = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

/** Holds `<path>.lock` the way a writer does, from this process. */
async function holdLock(path: string): Promise<Deno.FsFile> {
  const lock = await Deno.open(`${path}.lock`, { read: true, write: true, create: true });
  assert.equal(await lock.tryLock(true), true, "the lock was free");
  return lock;
}

/**
 * Resolves once `count` tryLock() calls in this process were refused: a
 * writer has found the lock held and is waiting for it. Restores tryLock()
 * when disposed.
 */
function refusedLocks(count: number): { reached: Promise<void> } & Disposable {
  const original = Deno.FsFile.prototype.tryLock;
  const reached = Promise.withResolvers<void>();
  let refused = 0;
  Deno.FsFile.prototype.tryLock = async function (this: Deno.FsFile, exclusive?: boolean) {
    const got = await original.call(this, exclusive);
    if (!got && ++refused >= count) reached.resolve();
    return got;
  };
  return {
    reached: reached.promise,
    [Symbol.dispose]() {
      Deno.FsFile.prototype.tryLock = original;
    },
  };
}

/**
 * A `deno eval` process running `code` with server/auth/users.ts imported as
 * `users`; its stdout is read with {@link waitFor}, its stdin written with
 * {@link send}.
 */
class EvalChild implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  #out = "";
  #reader: ReadableStreamDefaultReader<string>;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #stderr: Promise<string>;

  constructor(code: string) {
    this.process = new Deno.Command(Deno.execPath(), {
      args: ["eval", `import * as users from ${JSON.stringify(USERS_MODULE)};\n${code}`],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#reader = this.process.stdout.pipeThrough(new TextDecoderStream()).getReader();
    this.#writer = this.process.stdin.getWriter();
    this.#stderr = new Response(this.process.stderr).text();
  }

  /** Resolves once the child has printed `text`. */
  async waitFor(text: string): Promise<void> {
    while (!this.#out.includes(text)) {
      const { value, done } = await this.#reader.read();
      if (done) {
        throw new Error(`The child ended before printing "${text}": ${await this.#stderr}`);
      }
      this.#out += value;
    }
  }

  /** Writes `text` to the child's stdin. */
  send(text: string): Promise<void> {
    return this.#writer.write(new TextEncoder().encode(text));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#writer.close().catch(() => {});
    try {
      this.process.kill("SIGKILL");
    } catch {
      // It has exited already.
    }
    await this.process.status;
    await this.#reader.cancel();
    await this.#stderr;
  }
}

/** Resolves whether `p` settled within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((r) => timer = setTimeout(() => r(false), ms));
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("writeUsers() goes through users.json.tmp and leaves only its lock file behind", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await writeUsers(path, new Map([["bob", "b-pass-123"], ["alice", "a-pass-123"]]));
    assert.equal(
      await Deno.readTextFile(path),
      '{\n  "alice": "a-pass-123",\n  "bob": "b-pass-123"\n}\n',
    );
    assert.deepEqual(await listDir(dir), ["users.json", "users.json.lock"]);
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(`${path}.lock`)).mode! & 0o777, 0o600);
    }
  });
});

Deno.test({
  name: "writeUsers() syncs the temporary file before the rename and the folder after it",
  ignore: Deno.build.os === "windows",
  async fn() {
    await withDir(async (dir) => {
      const path = `${dir}/users.json`;
      const events: string[] = [];
      const names = new WeakMap<Deno.FsFile, string>();
      const proto = Deno.FsFile.prototype;
      const { open, rename } = Deno;
      const { sync, syncSync, close } = proto;
      const name = (f: Deno.FsFile) => names.get(f) ?? "?";
      Deno.open = async (p, options) => {
        const file = await open(p, options);
        names.set(file, String(p));
        return file;
      };
      proto.sync = function (this: Deno.FsFile) {
        events.push(`sync ${name(this)}`);
        return sync.call(this);
      };
      proto.syncSync = function (this: Deno.FsFile) {
        events.push(`sync ${name(this)}`);
        return syncSync.call(this);
      };
      proto.close = function (this: Deno.FsFile) {
        events.push(`close ${name(this)}`);
        return close.call(this);
      };
      Deno.rename = (from, to) => {
        events.push(`rename ${from} ${to}`);
        return rename(from, to);
      };
      try {
        await writeUsers(path, new Map([["alice", "a-pass-123"]]));
      } finally {
        Object.assign(Deno, { open, rename });
        Object.assign(proto, { sync, syncSync, close });
      }
      assert.deepEqual(events, [
        `sync ${path}.tmp`,
        `close ${path}.tmp`,
        `rename ${path}.tmp ${path}`,
        `sync ${dir}`,
        `close ${dir}`,
        `close ${path}.lock`,
      ]);
    });
  },
});

Deno.test("writeUsers() skips only the folder sync where the folder may not be read", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    const files = [path, `${path}.lock`, `${path}.tmp`].join(",");
    const script = `${dir}/write.ts`;
    await Deno.writeTextFile(
      script,
      `import { writeUsers } from ${JSON.stringify(USERS_MODULE)};
const opened: string[] = [];
const open = Deno.open;
Deno.open = (p, o) => (opened.push(String(p)), open(p, o));
await writeUsers(${JSON.stringify(path)}, new Map([["alice", "a-pass-123"]]));
console.log(JSON.stringify(opened));`,
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", `--allow-read=${files}`, `--allow-write=${files}`, script],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    assert.equal(out.code, 0, dec.decode(out.stderr));
    assert.deepEqual(JSON.parse(dec.decode(out.stdout)), [`${path}.lock`, `${path}.tmp`]);
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
  });
});

Deno.test("writeUsers() waits while another writer holds users.json.lock", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    const lock = await holdLock(path);
    using tries = refusedLocks(2);
    let written = false;
    const writing = writeUsers(path, new Map([["alice", "a-pass-123"]])).then(() => written = true);
    try {
      // The writer was refused the lock twice: it is waiting, not writing.
      await tries.reached;
      assert.equal(written, false, "nothing may be written while the lock is held");
      await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    } finally {
      lock.close();
    }
    await writing;
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
  });
});

Deno.test("writeUsers() writes over a temporary file left by a crash without waiting", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    // A fresh one: under the old lock scheme this blocked writers for 10 s.
    await Deno.writeTextFile(`${path}.tmp`, "{half");
    const started = Date.now();
    await writeUsers(path, new Map([["alice", "a-pass-123"]]));
    assert.ok(Date.now() - started < 1000, "no wait");
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
    await assert.rejects(Deno.stat(`${path}.tmp`), Deno.errors.NotFound);
  });
});

Deno.test("updateUsers() gives up with a clear error while the lock stays taken", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    const lock = await holdLock(path);
    try {
      await assert.rejects(
        updateUsers(path, (u) => void u.set("alice", "a-pass-123"), { lockTimeout: 200 }),
        { message: `Cannot write "${path}": "${path}.lock" is in use by another writer` },
      );
    } finally {
      lock.close();
    }
    await updateUsers(path, (u) => void u.set("alice", "a-pass-123"), { lockTimeout: 200 });
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
  });
});

Deno.test("updateUsers() from two writers at once keeps the file valid", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Promise.all([
      updateUsers(path, (u) => void u.set("alice", "a-pass-123")),
      updateUsers(path, (u) => void u.set("bob", "b-pass-123")),
    ]);
    const { users } = await readUsers(path);
    assert.ok(users.size >= 1, "valid JSON with at least one of the writes");
  });
});

Deno.test("updateUsers() from two writers at once keeps both entries", async () => {
  await withDir(async (dir) => {
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
    assert.ok(results.every((u) => u.users.has("alice")));
  });
});

Deno.test("updateUsers() from two processes racing many updates loses no entry", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    const count = 40;
    const writer = (prefix: string) =>
      new EvalChild(`
console.log("ready");
await Deno.stdin.read(new Uint8Array(1));
for (let i = 0; i < ${count}; i++) {
  await users.updateUsers(${JSON.stringify(path)}, (u) => void u.set("${prefix}" + i, "pass-1234"));
}
console.log("done");`);
    await using a = writer("a");
    await using b = writer("b");
    await Promise.all([a.waitFor("ready"), b.waitFor("ready")]);
    await Promise.all([a.send("go\n"), b.send("go\n")]);
    await Promise.all([a.waitFor("done"), b.waitFor("done")]);
    const names = [...(await readUsers(path)).users.keys()];
    assert.equal(names.length, 2 * count, `lost: ${2 * count - names.length}`);
  });
});

Deno.test({
  name: "updateUsers() is not blocked by the lock of a writer that was killed",
  ignore: Deno.build.os === "windows",
  async fn() {
    await withDir(async (dir) => {
      const path = `${dir}/users.json`;
      await using child = new EvalChild(`
await users.updateUsers(${JSON.stringify(path)}, () => {
  console.log("inside");
  while (true) {} // killed here, holding the lock
});`);
      await child.waitFor("inside");
      child.process.kill("SIGKILL");
      await child.process.status;
      const started = Date.now();
      await updateUsers(path, (u) => void u.set("alice", "a-pass-123"), { lockTimeout: 1000 });
      assert.ok(Date.now() - started < 1000);
      assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice"]);
    });
  },
});

Deno.test("updateUsers() waits for another process's lock however old it looks, then gets in", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await using child = new EvalChild(`
await users.updateUsers(${JSON.stringify(path)}, (u) => {
  console.log("inside");
  Deno.stdin.readSync(new Uint8Array(1)); // holds the lock until told to go on
  u.set("held", "held-pass-1");
});
console.log("done");`);
    await child.waitFor("inside");
    // The old scheme broke a lock older than 10 s, so two writers could
    // both judge it stale and both get in. The age must not matter now.
    const old = new Date(Date.now() - 60_000);
    for (const name of await listDir(dir)) await Deno.utime(`${dir}/${name}`, old, old);
    using tries = refusedLocks(2);
    let written = false;
    const writing = updateUsers(path, (u) => void u.set("alice", "a-pass-123"));
    writing.then(() => written = true, () => {});
    // The writer was refused the lock twice: it is waiting, not writing.
    await tries.reached;
    assert.equal(written, false, "kept out while the lock is held");
    await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
    await child.send("\n");
    assert.equal(await settlesWithin(writing, 1000), true, "in right after the release");
    await writing;
    await child.waitFor("done");
    assert.deepEqual([...(await readUsers(path)).users.keys()], ["alice", "held"]);
  });
});

Deno.test("updateUsers() resolves only the entries the server would load", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(path, JSON.stringify({ bob: "", "bad name": "x", alice: "a-pass-1" }));
    const { users } = await updateUsers(path, (u) => void u.set("carol", "c-pass-1"));
    assert.deepEqual([...users.keys()].sort(), ["alice", "carol"], "an empty password never loads");
    const raw = JSON.parse(await Deno.readTextFile(path));
    assert.equal(raw.bob, "", "but the file keeps what it had");
  });
});

Deno.test("updateUsers() refuses to add a name that differs only in case from a stored one", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await writeUsers(path, new Map([["alice", "a-pass-123"]]));
    await assert.rejects(
      updateUsers(path, (u) => void u.set("Alice", "b-pass-123")),
      {
        message:
          `Cannot write "${path}": the name "Alice" is already taken by "alice" (names are case-insensitive)`,
      },
    );
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { alice: "a-pass-123" });
    let found: string | undefined;
    await updateUsers(path, (u) => {
      found = findUser(u, "ALICE");
      u.set(found!, "c-pass-123");
    });
    assert.equal(found, "alice");
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { alice: "c-pass-123" });
  });
});

Deno.test("updateUsers() keeps the loaded one of two names that differ in case first", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    // A hand-edited file; sorted by code unit, "Alice" would move ahead.
    await Deno.writeTextFile(path, JSON.stringify({ alice: "a-pass-123", Alice: "b-pass-123" }));
    const { users } = await updateUsers(path, (u) => void u.set("carol", "c-pass-123"));
    assert.deepEqual([...users], [["alice", "a-pass-123"], ["carol", "c-pass-123"]]);
    assert.deepEqual(Object.keys(JSON.parse(await Deno.readTextFile(path))), [
      "alice",
      "Alice",
      "carol",
    ]);
  });
});

Deno.test("parseUsers() keeps the first of two names that differ only in case", () => {
  const { users, warnings } = parseUsers(
    JSON.stringify({ alice: "a-pass-123", bob: "b-pass-123", Alice: "c-pass-123", BOB: "" }),
    "/srv/users.json",
  );
  assert.deepEqual([...users.keys()], ["alice", "bob"]);
  assert.deepEqual(warnings.filter((w) => !w.includes("plaintext")), [
    'Skipping user "Alice" in "/srv/users.json": the name "alice" is already taken (names are case-insensitive)',
    'Skipping user "BOB" in "/srv/users.json": the value must be a password or a hash',
  ]);
});

Deno.test("findUser() finds a name in any case and returns it as stored", () => {
  const users: Users = new Map([["Alice", "a"], ["bob", "b"]]);
  assert.equal(findUser(users, "Alice"), "Alice");
  assert.equal(findUser(users, "alice"), "Alice");
  assert.equal(findUser(users, "BOB"), "bob");
  assert.equal(findUser(users, "carol"), undefined);
  const both: Users = new Map([["alice", "a"], ["Alice", "b"]]);
  assert.equal(findUser(both, "Alice"), "Alice", "an exact match first");
  assert.equal(findUser(both, "ALICE"), "alice", "then the first in order");
});

Deno.test("setPassword() replaces one credential and keeps every other entry", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(path, JSON.stringify({ alice: "a", bob: "b", odd: { keep: true } }));
    const done = await setPassword(path, { name: "alice", hash: "a2" });
    assert.equal(done.result, "changed");
    assert.deepEqual([...done.users], [["alice", "a2"], ["bob", "b"]]);
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
      odd: { keep: true },
      alice: "a2",
      bob: "b",
    });
    const before = await Deno.readTextFile(path);
    assert.equal((await setPassword(path, { name: "carol", hash: "c" })).result, "missing");
    assert.equal((await setPassword(path, { name: "Alice", hash: "x" })).result, "missing");
    assert.equal(
      (await setPassword(path, { name: "alice", hash: "a3", expect: "a" })).result,
      "stale",
      "changed by someone else since it was read",
    );
    assert.equal(await Deno.readTextFile(path), before, "nothing written");
    assert.equal(
      (await setPassword(path, { name: "alice", hash: "a3", expect: "a2" })).result,
      "changed",
    );
  });
});
