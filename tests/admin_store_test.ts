import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import type { AdminStore, Ban } from "../server/admin/admin.ts";
import { MemoryAdminStore } from "../server/admin/memory.ts";
import { RedisAdminStore } from "../server/admin/redis.ts";
import { SqliteAdminStore } from "../server/admin/sqlite.ts";
import { closeRedis, connectRedis, type RedisClient } from "../server/broker/redis_client.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import { SCHEMA_VERSION } from "../server/store/sqlite_schema.ts";
import { adminStoreContract, anInvite, T } from "./admin_store_contract.ts";
import { RedisServer } from "./redis_helpers.ts";

adminStoreContract("MemoryAdminStore", ({ now }) => Promise.resolve(new MemoryAdminStore({ now })));

adminStoreContract("SqliteAdminStore", async ({ now }) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-admin-" });
  // Without a sync per commit: the contract is about what is kept, not
  // durability (the reopen test below uses the default), and its 10,050
  // audit entries take 3 s of syncs otherwise.
  const store = SqliteStore.open(`${dir}/chat.db`, { synchronous: "normal" });
  const admin = SqliteAdminStore.open(store, { now });
  const close = admin.close.bind(admin);
  return Object.assign(admin, {
    close: async () => {
      await close();
      await store.close();
      await Deno.remove(dir, { recursive: true });
    },
  });
});

// One redis-server per test, on a free port; the store owns its client.
adminStoreContract("RedisAdminStore", async ({ now }) => {
  const redis = await RedisServer.start();
  try {
    const client = await connectRedis(redis.url, { name: "contract" });
    const admin = new RedisAdminStore(client, { now, ownsClient: true });
    const close = admin.close.bind(admin);
    return Object.assign(admin, {
      close: async () => {
        await close();
        await redis[Symbol.asyncDispose]();
      },
    });
  } catch (err) {
    await redis[Symbol.asyncDispose]();
    throw err;
  }
});

/** A temporary directory with `chat.db` in it, removed on dispose. */
async function tempData(): Promise<{ path: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "chat-admin-" });
  return {
    path: `${dir}/chat.db`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

/** The message store and the admin store of a data file, closed together on dispose. */
function openBoth(path: string): { store: SqliteStore; admin: SqliteAdminStore } & AsyncDisposable {
  const store = SqliteStore.open(path);
  const admin = SqliteAdminStore.open(store);
  return {
    store,
    admin,
    [Symbol.asyncDispose]: async () => {
      await admin.close();
      await store.close();
    },
  };
}

/** Everything an admin store holds that the contract can read. */
async function everything(admin: AdminStore, now: number) {
  return {
    invites: await admin.invites(now),
    live: await admin.liveInvites(now),
    bans: await admin.bans(now),
    audit: await admin.auditLog({ limit: 500 }),
  };
}

Deno.test("SqliteAdminStore keeps invites, bans and the audit log across a close and reopen", async () => {
  await using data = await tempData();
  const a = anInvite({ uses: 2, admin: true });
  const b = anInvite({ created: T + 1 });
  const ban: Ban = { user: "Mallory", by: "alice", at: T, until: T + 1000, reason: "spam" };
  let before;
  let lastId;
  {
    await using both = openBoth(data.path);
    const { admin } = both;
    await admin.createInvite(a);
    await admin.createInvite(b);
    assert.ok((await admin.redeem(a.code, "bob", T + 2)).ok);
    assert.equal(await admin.revokeInvite(b.code, T + 3), true);
    await admin.ban(ban);
    await admin.audit({ at: T + 4, by: "alice", action: "ban", target: "Mallory", detail: "spam" });
    lastId = (await admin.audit({ at: T + 5, by: "", action: "invite.create", target: "abc" })).id;
    before = await everything(admin, T + 10);
    assert.deepEqual(before.invites, [{ ...b, revoked: T + 3 }, {
      ...a,
      used: 1,
      usedBy: ["bob"],
    }]);
  }
  await using both = openBoth(data.path);
  const { admin } = both;
  assert.deepEqual(await everything(admin, T + 10), before);
  assert.deepEqual(await admin.banned("mallory", T + 10), ban);
  assert.deepEqual(await admin.redeem(a.code, "carol", T + 11), {
    ok: true,
    invite: { ...a, used: 2, usedBy: ["bob", "carol"] },
  });
  const next = await admin.audit({ at: T + 12, by: "alice", action: "unban", target: "Mallory" });
  assert.equal(next.id, lastId + 1, "ids go on where they were");
});

Deno.test("SqliteStore.open() migrates a version 9 file: empty invites, bans and audit log", async () => {
  await using data = await tempData();
  {
    await using both = openBoth(data.path);
    await both.store.append({ conv: "general", room: "general", from: "alice", text: "before" });
  }
  const v9 = new DatabaseSync(data.path);
  v9.exec(`
    ALTER TABLE rooms DROP COLUMN private; ALTER TABLE rooms DROP COLUMN read_only;
    ALTER TABLE rooms DROP COLUMN archived; ALTER TABLE rooms DROP COLUMN auto_join;
    ALTER TABLE rooms DROP COLUMN room_mentions;
    DROP TABLE invites; DROP TABLE bans; DROP TABLE audit;
    DROP TABLE renames; DROP TABLE sessions; PRAGMA user_version = 9`);
  v9.close();
  await using both = openBoth(data.path);
  const version = () => {
    const db = new DatabaseSync(data.path, { readOnly: true });
    try {
      return db.prepare("PRAGMA user_version").get()!.user_version;
    } finally {
      db.close();
    }
  };
  assert.equal(version(), SCHEMA_VERSION);
  assert.equal(SCHEMA_VERSION, 13);
  assert.deepEqual(await everything(both.admin, T), { invites: [], live: 0, bans: [], audit: [] });
  assert.deepEqual(
    (await both.store.page("general", { limit: 10 })).messages.map((m) => m.text),
    ["before"],
  );
  assert.equal((await both.admin.audit({ at: T, by: "", action: "role", target: "x" })).id, 1);
});

Deno.test("SqliteAdminStore writes between the message store's queued writes, sharing its connection", async () => {
  await using data = await tempData();
  await using both = openBoth(data.path);
  const { store, admin } = both;
  const a = anInvite({ uses: 10 });
  await admin.createInvite(a);
  // Appends queued for the next tick's commit, admin writes in between.
  const work: Promise<unknown>[] = [];
  for (let i = 0; i < 20; i++) {
    work.push(store.append({ conv: "general", room: "general", from: "alice", text: `m${i}` }));
    work.push(admin.redeem(a.code, `user${i}`, T + 1));
    work.push(admin.audit({ at: T + i, by: "alice", action: "kick", target: `user${i}` }));
  }
  await Promise.all(work);
  assert.equal((await store.page("general", { limit: 50 })).messages.length, 20);
  assert.equal((await admin.invite(a.code))?.used, 10);
  assert.equal((await admin.auditLog({ limit: 50 })).length, 20);
});

/**
 * A worker with its own connection to the data file (as another process
 * would have: the message store's lock allows one server per file), that
 * redeems an invite for each of `names` once told to go, and answers the
 * names that got in.
 */
function redeemingWorker(): Worker {
  const url = (p: string) => new URL(p, import.meta.url).href;
  const source = `
    import { DatabaseSync } from "node:sqlite";
    import { SqliteAdminStore } from ${JSON.stringify(url("../server/admin/sqlite.ts"))};
    let db;
    self.onmessage = async (e) => {
      const { path, code, names, now } = e.data;
      if (!db) {
        db = new DatabaseSync(path, { timeout: 10000 });
        self.postMessage({ ready: true });
        return;
      }
      try {
        const admin = SqliteAdminStore.open({ database: db });
        const won = [];
        for (const name of names) {
          if ((await admin.redeem(code, name, now)).ok) won.push(name);
          // A turn between redeems, as between requests: SQLite's busy
          // handler would otherwise let one side starve the other.
          await new Promise((resolve) => setTimeout(resolve, 0));
        }
        self.postMessage({ won });
      } catch (err) {
        self.postMessage({ error: String(err) });
      } finally {
        db.close();
      }
    };
  `;
  const blob = new Blob([source], { type: "text/javascript" });
  return new Worker(URL.createObjectURL(blob), { type: "module" });
}

/** The next message from a worker. */
function next(worker: Worker): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e) => resolve(e.data);
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(e.message));
    };
  });
}

Deno.test("SqliteAdminStore gives exactly `uses` redeems to two connections racing on one file", async () => {
  await using data = await tempData();
  await using both = openBoth(data.path);
  const uses = 40;
  const a = anInvite({ uses });
  await both.admin.createInvite(a);
  const worker = redeemingWorker();
  try {
    const ours = Array.from({ length: 60 }, (_, i) => `main${i}`);
    const theirs = Array.from({ length: 60 }, (_, i) => `worker${i}`);
    const message = { path: data.path, code: a.code, now: T + 1 };
    let reply = next(worker);
    worker.postMessage({ ...message, names: [] });
    assert.deepEqual(await reply, { ready: true });
    reply = next(worker);
    worker.postMessage({ ...message, names: theirs });
    const won: string[] = [];
    for (const name of ours) {
      if ((await both.admin.redeem(a.code, name, T + 1)).ok) won.push(name);
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
    const answer = await reply;
    assert.equal(answer.error, undefined);
    const theirWins = answer.won as string[];
    assert.equal(won.length + theirWins.length, uses, `${won.length} + ${theirWins.length}`);
    const after = await both.admin.invite(a.code);
    assert.equal(after?.used, uses);
    assert.deepEqual(after!.usedBy.toSorted(), [...won, ...theirWins].sort());
  } finally {
    worker.terminate();
  }
});

/** Two "nodes": admin stores on their own connections to one redis-server. */
async function twoNodes(): Promise<
  { a: RedisAdminStore; b: RedisAdminStore; redis: RedisServer } & AsyncDisposable
> {
  const redis = await RedisServer.start();
  const clients: RedisClient[] = [];
  try {
    for (const name of ["node-a", "node-b"]) clients.push(await connectRedis(redis.url, { name }));
  } catch (err) {
    await Promise.all(clients.map(closeRedis));
    await redis[Symbol.asyncDispose]();
    throw err;
  }
  return {
    a: new RedisAdminStore(clients[0]),
    b: new RedisAdminStore(clients[1]),
    redis,
    async [Symbol.asyncDispose]() {
      await Promise.all(clients.map(closeRedis));
      await redis[Symbol.asyncDispose]();
    },
  };
}

Deno.test("RedisAdminStore gives exactly `uses` redeems to two nodes racing for one invite", async () => {
  await using nodes = await twoNodes();
  const uses = 7;
  const inv = anInvite({ uses });
  await nodes.a.createInvite(inv);
  const names = Array.from({ length: 40 }, (_, i) => `user${i}`);
  const results = await Promise.all(
    names.map((n, i) => (i % 2 ? nodes.a : nodes.b).redeem(inv.code, n, T + 1)),
  );
  const won = names.filter((_, i) => results[i].ok);
  assert.equal(won.length, uses);
  assert.ok(results.every((r) => r.ok || r.why === "used"));
  for (const node of [nodes.a, nodes.b]) {
    const seen = await node.invite(inv.code);
    assert.equal(seen?.used, uses);
    assert.deepEqual(seen!.usedBy.toSorted(), won.toSorted());
  }
  // A use given back on one node is taken on the other, once.
  await nodes.b.release(inv.code, won[0]);
  const again = await Promise.all([
    nodes.a.redeem(inv.code, "late-a", T + 2),
    nodes.b.redeem(inv.code, "late-b", T + 2),
  ]);
  assert.equal(again.filter((r) => r.ok).length, 1);
  assert.equal((await nodes.a.invite(inv.code))?.used, uses);
});

Deno.test("RedisAdminStore keeps its keys under the prefix's admin: and apart from other prefixes", async () => {
  await using nodes = await twoNodes();
  const other = new RedisAdminStore(
    await connectRedis(nodes.redis.url, { name: "other" }),
    { prefix: "other:", ownsClient: true },
  );
  try {
    const inv = anInvite({ uses: 2 });
    await nodes.a.createInvite(inv);
    await nodes.a.redeem(inv.code, "bob", T + 1);
    await nodes.a.ban({ user: "Mallory", by: "alice", at: T });
    await nodes.a.audit({ at: T, by: "alice", action: "ban", target: "Mallory" });
    assert.equal(await other.invite(inv.code), null);
    assert.deepEqual(await other.invites(T), []);
    assert.equal(await other.banned("mallory", T), null);
    assert.deepEqual(await other.auditLog({ limit: 10 }), []);
    assert.deepEqual(await nodes.b.banned("MALLORY", T + 1), {
      user: "Mallory",
      by: "alice",
      at: T,
    });
    const keys = (await nodes.redis.cli("--scan", "--pattern", "*")).split("\n").sort();
    assert.deepEqual(keys, [
      "chat:admin:audit",
      "chat:admin:audit:id",
      "chat:admin:bans",
      `chat:admin:inv:${inv.code}`,
      `chat:admin:inv:${inv.code}:by`,
      "chat:admin:invites",
      "chat:admin:invites:drop",
      "chat:admin:invites:live",
    ]);
  } finally {
    await other.close();
  }
});
