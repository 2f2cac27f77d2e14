import assert from "node:assert/strict";
import { tokensPath, TokenStore } from "../../client/tokens.ts";

const A = "ws://a.example:8000/ws";
const B = "wss://b.example/chat/ws";

/** A temporary directory for one test, removed afterwards. */
async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "chat-tokens-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function envOf(vars: Record<string, string>): (name: string) => string | undefined {
  return (name) => vars[name];
}

Deno.test("tokensPath() follows XDG_CONFIG_HOME, then HOME, and APPDATA on Windows", async (t) => {
  await t.step("XDG_CONFIG_HOME first", () => {
    const env = envOf({ XDG_CONFIG_HOME: "/cfg/", HOME: "/home/ann" });
    assert.equal(tokensPath({ env, os: "linux" }), "/cfg/chat/tokens.json");
  });
  await t.step("HOME when XDG_CONFIG_HOME is unset, empty or relative", () => {
    for (const xdg of [undefined, "", "relative/cfg"]) {
      const vars: Record<string, string> = { HOME: "/home/ann" };
      if (xdg !== undefined) vars.XDG_CONFIG_HOME = xdg;
      assert.equal(
        tokensPath({ env: envOf(vars), os: "darwin" }),
        "/home/ann/.config/chat/tokens.json",
      );
    }
  });
  await t.step("APPDATA on Windows", () => {
    const env = envOf({ APPDATA: "C:\\Users\\ann\\AppData\\Roaming", HOME: "/ignored" });
    assert.equal(
      tokensPath({ env, os: "windows" }),
      "C:\\Users\\ann\\AppData\\Roaming\\chat\\tokens.json",
    );
  });
  await t.step("a sentence when nothing says where", () => {
    assert.throws(
      () => tokensPath({ env: envOf({}), os: "linux" }),
      new Error("Neither XDG_CONFIG_HOME nor HOME is set"),
    );
    assert.throws(() => tokensPath({ env: envOf({}), os: "windows" }), /APPDATA is not set/);
  });
});

Deno.test("TokenStore.set() creates a 0700 directory and a 0600 file and keeps other servers", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/cfg/chat/tokens.json`;
    const store = new TokenStore(path);
    assert.equal(await store.get(A), null, "no file yet");
    await store.set(A, { user: "alice", token: "t1" });
    await store.set(B, { user: "bob", token: "t2" });
    await store.set(A, { user: "alice", token: "t3" });
    assert.deepEqual(await store.get(A), { user: "alice", token: "t3" });
    assert.deepEqual(await store.get(B), { user: "bob", token: "t2" });
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), {
      [A]: { user: "alice", token: "t3" },
      [B]: { user: "bob", token: "t2" },
    });
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(`${dir}/cfg/chat`)).mode! & 0o777, 0o700);
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    }
    const names = [];
    for await (const e of Deno.readDir(`${dir}/cfg/chat`)) names.push(e.name);
    assert.deepEqual(names.sort(), ["tokens.json", "tokens.json.lock"], "no temp file left");
  });
});

Deno.test("TokenStore.delete() removes one server's entry and says whether it was there", async () => {
  await withDir(async (dir) => {
    const store = new TokenStore(`${dir}/tokens.json`);
    await store.set(A, { user: "alice", token: "t1" });
    await store.set(B, { user: "bob", token: "t2" });
    assert.equal(await store.delete(A), true);
    assert.equal(await store.delete(A), false);
    assert.equal(await store.get(A), null);
    assert.deepEqual(await store.get(B), { user: "bob", token: "t2" });
  });
});

Deno.test("TokenStore.get() ignores malformed entries and keeps entries it does not know", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ [A]: { user: "alice" }, [B]: "nonsense", other: { note: 1 } }),
    );
    const store = new TokenStore(path);
    assert.equal(await store.get(A), null, "no token");
    assert.equal(await store.get(B), null, "not an object");
    await store.set(A, { user: "alice", token: "t1" });
    const all = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(all.other, { note: 1 });
    assert.equal(all[B], "nonsense");
  });
});

Deno.test("TokenStore leaves a file that is not a JSON object alone and says so", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    for (const text of ["{ not json", "[]", "null"]) {
      await Deno.writeTextFile(path, text);
      const store = new TokenStore(path);
      const refusal = new SyntaxError(`"${path}" is not a JSON object: fix or remove it`);
      await assert.rejects(store.get(A), refusal);
      await assert.rejects(store.set(A, { user: "alice", token: "t1" }), refusal);
      assert.equal(await Deno.readTextFile(path), text, "unchanged");
    }
  });
});

Deno.test("TokenStore.set() writes through no leftover temp file or link", {
  ignore: Deno.build.os === "windows",
}, async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    await Deno.writeTextFile(`${dir}/victim`, "keep me");
    await Deno.symlink(`${dir}/victim`, `${path}.tmp`);
    await new TokenStore(path).set(A, { user: "alice", token: "t1" });
    assert.equal(await Deno.readTextFile(`${dir}/victim`), "keep me");
    assert.equal((await Deno.lstat(path)).isFile, true);
    assert.deepEqual(await new TokenStore(path).get(A), { user: "alice", token: "t1" });
  });
});

Deno.test("TokenStore.set() from writers racing on one file keeps every entry", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/chat/tokens.json`;
    // Separate stores take turns only through the OS lock, as two processes would.
    const stores = Array.from({ length: 4 }, () => new TokenStore(path));
    const urls = Array.from({ length: 40 }, (_, i) => `ws://host${i}:8000/ws`);
    await Promise.all(
      urls.map((url, i) => stores[i % stores.length].set(url, { user: `u${i}`, token: `t${i}` })),
    );
    const all = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(Object.keys(all).sort(), [...urls].sort());
    for (const [i, url] of urls.entries()) assert.equal(all[url].token, `t${i}`);
  });
});

Deno.test("TokenStore.set() gives up with a sentence when another writer keeps the lock", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/tokens.json`;
    const lock = await Deno.open(`${path}.lock`, { read: true, write: true, create: true });
    try {
      assert.equal(await lock.tryLock(true), true);
      const store = new TokenStore(path, { lockTimeout: 50 });
      await assert.rejects(
        store.set(A, { user: "alice", token: "t1" }),
        new Error(`Cannot write "${path}": another client holds its lock`),
      );
    } finally {
      lock.close();
    }
    await new TokenStore(path).set(A, { user: "alice", token: "t1" });
  });
});
