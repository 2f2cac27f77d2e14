import assert from "node:assert/strict";
import { Auth } from "../server/auth/auth.ts";
import { memoryLogger } from "../server/log.ts";
import { isHashed, PasswordHasher } from "../server/auth/password.ts";
import { parseUsers, readUsers, updateUsers } from "../server/auth/users.ts";

async function withDir(fn: (dir: string, hasher: PasswordHasher) => Promise<void>) {
  const dir = await Deno.makeTempDir();
  const hasher = new PasswordHasher();
  try {
    await fn(dir, hasher);
  } finally {
    hasher.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("parseUsers() accepts plaintext (with a warning) and hashes, and skips bad entries", () => {
  const hash =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g";
  const { users, warnings } = parseUsers(
    JSON.stringify({ alice: "pw", bob: hash, "bad name": "x", carol: 5 }),
  );
  assert.deepEqual([...users.keys()], ["alice", "bob"]);
  assert.equal(warnings.length, 3);
  assert.match(warnings.join("\n"), /"bad name"/);
  assert.match(warnings.join("\n"), /"carol".*must be a password/);
  assert.match(warnings.join("\n"), /"alice" has a plaintext password.*chat user passwd alice/);
  assert.deepEqual(parseUsers("  ").users.size, 0);
  assert.throws(() => parseUsers("{oops"), SyntaxError);
  assert.throws(() => parseUsers("[1]"), /expected an object/);
});

Deno.test("PasswordHasher.hash() writes argon2id PHC strings that verify()", async () => {
  const h = new PasswordHasher();
  try {
    const hash = await h.hash("correct horse");
    assert.match(hash, /^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    assert.ok(isHashed(hash));
    assert.equal(await h.verify("correct horse", hash), true);
    assert.equal(await h.verify("wrong horse", hash), false);
    assert.notEqual(await h.hash("correct horse"), hash, "salted");
    assert.equal(await h.verify("plain", "plain"), true);
    assert.equal(await h.verify("plain", "plainx"), false);
    assert.equal(await h.verify("anything", undefined), false);
  } finally {
    h.close();
  }
});

Deno.test("updateUsers() keeps every entry it does not change", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/users.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({ alice: "a", odd: { keep: true }, "bad name": "x" }),
    );
    await updateUsers(path, (u) => void u.set("bob", "b"));
    const raw = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(raw, { alice: "a", bob: "b", odd: { keep: true }, "bad name": "x" });
    assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    assert.equal((await readUsers(`${dir}/missing.json`)).users.size, 0);
  });
});

Deno.test("Auth tokens carry the user, expire, and die with a password change or removal", async () => {
  await withDir(async (dir, hasher) => {
    const usersPath = `${dir}/users.json`;
    await Deno.writeTextFile(
      usersPath,
      JSON.stringify({ alice: await hasher.hash("alice-pass"), bob: "bob-pass" }),
    );
    const log = memoryLogger();
    const auth = await Auth.create({ usersPath, hasher, log });
    assert.equal(auth.mode, "login");
    assert.equal(await auth.checkPassword("alice", "alice-pass"), true);
    assert.equal(await auth.checkPassword("alice", "nope"), false);
    assert.equal(await auth.checkPassword("bob", "bob-pass"), true);
    assert.equal(await auth.checkPassword("nobody", "x"), false);
    const token = auth.issueToken("alice", "s1");
    assert.deepEqual(auth.verifyToken(token), { user: "alice", session: "s1" });
    assert.equal(auth.verifyToken(token + "x"), null);
    assert.equal(auth.verifyToken("garbage"), null);

    // The secret is kept beside users.json and survives a restart.
    const secret = await Deno.readTextFile(`${dir}/.chat-secret`);
    assert.ok(secret.trim().length >= 32);
    assert.equal((await Deno.stat(`${dir}/.chat-secret`)).mode! & 0o777, 0o600);
    const again = await Auth.create({ usersPath, hasher, log });
    assert.deepEqual(again.verifyToken(token), { user: "alice", session: "s1" });

    const expired = await Auth.create({ usersPath, hasher, log, tokenTtl: -5 });
    assert.equal(expired.verifyToken(expired.issueToken("alice", "s2")), null);

    await updateUsers(usersPath, (u) => void u.set("alice", "new-password"));
    assert.equal(await auth.reload(), true);
    assert.equal(auth.verifyToken(token), null, "a password change revokes tokens");
    const bobToken = auth.issueToken("bob", "s3");
    await updateUsers(usersPath, (u) => void u.delete("bob"));
    assert.equal(await auth.reload(), true);
    assert.equal(auth.verifyToken(bobToken), null, "removal revokes tokens");
    assert.equal(await auth.reload(), false, "no change, no reload");
  });
});

Deno.test("Auth.register() adds a hashed user only when sign-up is on", async () => {
  await withDir(async (dir, hasher) => {
    const usersPath = `${dir}/users.json`;
    await Deno.writeTextFile(usersPath, JSON.stringify({ alice: "alice-pass" }));
    const log = memoryLogger();
    const closed = await Auth.create({ usersPath, hasher, log });
    assert.equal(await closed.register("dora", "dora-pass"), "disabled");
    const open = await Auth.create({ usersPath, hasher, log, allowSignup: true });
    assert.equal(await open.register("dora", "dora-pass"), "ok");
    assert.equal(await open.register("alice", "whatever1"), "exists");
    const raw = JSON.parse(await Deno.readTextFile(usersPath));
    assert.equal(raw.alice, "alice-pass");
    assert.ok(isHashed(raw.dora));
    assert.equal(await open.checkPassword("dora", "dora-pass"), true);
  });
});

Deno.test("Auth in open mode issues tokens that stop working once logins are required", async () => {
  await withDir(async (dir, hasher) => {
    const usersPath = `${dir}/users.json`;
    const auth = await Auth.create({ usersPath, hasher, log: memoryLogger() });
    assert.equal(auth.mode, "open");
    const token = auth.issueToken("guest", "s4");
    assert.deepEqual(auth.verifyToken(token), { user: "guest", session: "s4" });
    // In open mode the name's claim expires, not the token: a holder connected for
    // longer than a token lives keeps its name.
    const lasting = await Auth.create({ usersPath, hasher, log: memoryLogger(), openTokenTtl: -5 });
    assert.deepEqual(lasting.verifyToken(lasting.issueToken("guest", "s5")), {
      user: "guest",
      session: "s5",
      expired: true,
    });
    await Deno.writeTextFile(usersPath, JSON.stringify({ guest: "guest-pass" }));
    await auth.reload();
    assert.equal(auth.mode, "login");
    assert.equal(auth.verifyToken(token), null);
  });
});

Deno.test("Auth.deviceSession() checks the signature and the user only", async () => {
  await withDir(async (dir, hasher) => {
    const usersPath = `${dir}/users.json`;
    await Deno.writeTextFile(usersPath, JSON.stringify({ Alice: "alice-pass", bob: "bob-pass1" }));
    const log = memoryLogger();
    const auth = await Auth.create({ usersPath, hasher, log });
    const token = auth.issueToken("Alice", "s1");
    assert.equal(auth.deviceSession(token, "Alice"), "s1");
    assert.equal(auth.deviceSession(token, "alice"), "s1", "names are case-insensitive");
    assert.equal(auth.deviceSession(token, "bob"), null, "someone else's token");
    const [v, payload, sig] = token.split(".");
    assert.equal(auth.deviceSession(`${v}.${payload}.${sig.slice(1)}x`, "Alice"), null);
    assert.equal(auth.deviceSession(`${v}.${payload.slice(0, -1)}.${sig}`, "Alice"), null);
    assert.equal(auth.deviceSession("garbage", "Alice"), null);
    const stranger = await Auth.create({
      usersPath,
      hasher,
      log,
      secret: "another-secret-another-secret-another",
    });
    assert.equal(auth.deviceSession(stranger.issueToken("Alice", "s2"), "Alice"), null);

    // Expired, or from before a password change: no longer a session, still a device.
    const past = await Auth.create({ usersPath, hasher, log, tokenTtl: -60 });
    const expired = past.issueToken("Alice", "s3");
    assert.equal(auth.verifyToken(expired), null);
    assert.equal(auth.deviceSession(expired, "Alice"), "s3");
    await updateUsers(usersPath, (u) => void u.set("Alice", "changed-pass"));
    assert.equal(await auth.reload(), true);
    assert.equal(auth.verifyToken(token), null);
    assert.equal(auth.deviceSession(token, "Alice"), "s1");
  });
});

Deno.test("Auth.changePassword() checks the current password, then writes a new hash", async () => {
  await withDir(async (dir, hasher) => {
    const usersPath = `${dir}/users.json`;
    await Deno.writeTextFile(
      usersPath,
      JSON.stringify({ alice: await hasher.hash("alice-pass"), bob: "bob-pass1" }),
    );
    const auth = await Auth.create({ usersPath, hasher, log: memoryLogger() });
    const token = auth.issueToken("alice", "s1");
    const before = await Deno.readTextFile(usersPath);
    const seen: string[] = [];
    const change = (current: string, password = "alice-new-pass") =>
      auth.changePassword("alice", {
        current,
        password,
        beforeWrite: (fingerprint) => void seen.push(fingerprint),
      });

    assert.equal(await change("nope"), "wrong");
    assert.deepEqual(seen, [], "nothing is hashed or written for a wrong password");
    assert.equal(await Deno.readTextFile(usersPath), before);

    assert.equal(await change("alice-pass"), "ok");
    const raw = JSON.parse(await Deno.readTextFile(usersPath));
    assert.ok(isHashed(raw.alice));
    assert.equal(raw.bob, "bob-pass1", "every other entry is kept");
    assert.equal(await auth.checkPassword("alice", "alice-new-pass"), true);
    assert.equal(await auth.checkPassword("alice", "alice-pass"), false);
    assert.deepEqual(seen, [auth.fingerprint("alice")], "told the new fingerprint first");
    assert.equal(auth.verifyToken(token), null, "tokens from before are void at once");
    assert.equal(await auth.reload(), false, "the change is loaded already");

    // Changed in the file meanwhile (not yet reloaded): that change stays.
    await updateUsers(usersPath, (u) => void u.set("alice", "set-by-admin"));
    assert.equal(await change("alice-new-pass", "mine-instead"), "stale");
    assert.equal(JSON.parse(await Deno.readTextFile(usersPath)).alice, "set-by-admin");
    await auth.reload();
    // Removed meanwhile: nothing is written.
    await updateUsers(usersPath, (u) => void u.delete("bob"));
    assert.equal(
      await auth.changePassword("bob", { current: "bob-pass1", password: "x".repeat(8) }),
      "gone",
    );
    assert.equal(JSON.parse(await Deno.readTextFile(usersPath)).bob, undefined);
    assert.equal(await auth.changePassword("nobody", { current: "a", password: "b" }), "gone");
  });
});
