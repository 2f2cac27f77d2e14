/**
 * Changing one's own password over the WebSocket (`passwd`), against the
 * real server: the session that asked goes on with a fresh token, every
 * other session of the user ends, the check of the current password is
 * throttled per session, and two nodes sharing users.json agree.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type { Auth } from "../server/auth/auth.ts";
import { isHashed } from "../server/auth/password.ts";
import { Passwords, type PasswordsContext } from "../server/hub/passwd.ts";
import type { ServerFrame } from "../protocol.ts";
import { updateUsers } from "../server/auth/users.ts";
import {
  closeAll,
  hashPassword,
  signIn,
  signInWithToken,
  startTestServer,
  TestClient,
} from "./helpers.ts";
import { startCluster } from "./redis_helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1" };

/** The claims of a token: user, expiry, fingerprint, session. */
function claims(token: string): { u: string; e: number; f: string; s: string } {
  return JSON.parse(Buffer.from(token.split(".")[1], "base64url").toString());
}

/** The answer to a `passwd` frame carrying `ref`: the new token, or an error. */
function answer(c: TestClient, ref: string): Promise<F<"passwd"> | F<"error">> {
  return c.next((f) => (f.type === "passwd" || f.type === "error") && f.ref === ref);
}

/** Signs in with `frame` on a new connection; resolves the first answer and the close code. */
async function attempt(
  url: string,
  frame: Record<string, unknown>,
): Promise<{ frame: ServerFrame; code: number | null }> {
  const c = await TestClient.connect(url);
  try {
    c.send(frame);
    const first = await c.next((f) => f.type === "welcome" || f.type === "error");
    return { frame: first, code: first.type === "error" ? (await c.waitClose()).code : null };
  } finally {
    await c.close();
  }
}

async function usersFile(dir: string): Promise<Record<string, string>> {
  return JSON.parse(await Deno.readTextFile(`${dir}/users.json`));
}

Deno.test("Hub passwd: the asking connection goes on with a new session, every other one ends", async () => {
  await using t = await startTestServer({ users: USERS });
  const first = await signIn(t.ws, "alice", USERS.alice);
  // A second connection of the same session: another tab holding the same
  // token — or a thief who copied it. Either way it must end.
  const tab = await signInWithToken(t.ws, first.welcome.token);
  const laptop = await signIn(t.ws, "alice", USERS.alice);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  const clients: TestClient[] = [first, tab, laptop, bob];
  try {
    const before = await usersFile(t.dir);
    first.send({ type: "passwd", current: USERS.alice, password: "a-new-secret", ref: "p1" });
    const done = await answer(first, "p1") as F<"passwd">;
    assert.equal(done.type, "passwd");

    // Same user, a new session and a new credential fingerprint.
    const old = claims(first.welcome.token);
    const c = claims(done.token);
    assert.equal(c.u, "alice");
    assert.notEqual(c.s, old.s);
    assert.notEqual(c.f, old.f);

    // Every other connection is signed out, saying why, the same session's too.
    for (const other of [laptop, tab]) {
      const ended = await other.next<F<"error">>("error");
      assert.deepEqual([ended.code, ended.message, ended.ref], [
        "auth_failed",
        "Your password was changed on another device: sign in again",
        undefined,
      ]);
      assert.equal((await other.waitClose()).code, 4003);
      assert.equal(other.peek("passwd").length, 0, "no new token for it");
    }
    await first.barrier();
    await bob.barrier();
    assert.equal(first.peek("error").length, 0);
    assert.equal(bob.peek("error").length, 0);

    // Old tokens are refused (this session's and the other's), the new one works.
    for (const token of [first.welcome.token, laptop.welcome.token]) {
      const r = await attempt(t.ws, { type: "auth", token });
      assert.equal((r.frame as F<"error">).code, "auth_failed");
      assert.equal(r.code, 4003);
    }
    const again = await signInWithToken(t.ws, done.token);
    clients.push(again);
    assert.equal(claims(again.welcome.token).s, c.s, "the welcome continues the new session");

    // users.json holds a new argon2id hash for alice and nothing else changed.
    const after = await usersFile(t.dir);
    assert.ok(isHashed(after.alice));
    assert.notEqual(after.alice, before.alice);
    assert.equal(after.bob, before.bob);
    const wrong = await attempt(t.ws, { type: "auth", username: "alice", password: USERS.alice });
    assert.deepEqual([(wrong.frame as F<"error">).message, wrong.code], [
      "Wrong username or password",
      4003,
    ]);
    clients.push(await signIn(t.ws, "alice", "a-new-secret"));
    assert.ok(t.log.some((l) => l.includes('"alice" changed their password')), t.log.join("\n"));
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub passwd: refusals answer the frame and keep the connection open", async (s) => {
  await using t = await startTestServer({ users: USERS });
  const alice = await signIn(t.ws, "alice", USERS.alice);
  try {
    const before = await Deno.readTextFile(`${t.dir}/users.json`);

    await s.step("a wrong current password: auth_failed with the ref", async () => {
      alice.send({ type: "passwd", current: "not-it-at-all", password: "a-new-secret", ref: "w" });
      const e = await answer(alice, "w") as F<"error">;
      assert.deepEqual([e.type, e.code, e.message], [
        "error",
        "auth_failed",
        "Your current password is wrong",
      ]);
    });

    await s.step("a new password that is too short: bad_request with the ref", async () => {
      alice.send({ type: "passwd", current: USERS.alice, password: "short", ref: "s" });
      const e = await answer(alice, "s") as F<"error">;
      assert.deepEqual([e.code, e.message], [
        "bad_request",
        "The password is too short: use at least 8 characters",
      ]);
    });

    await s.step("a frame without the current password: bad_request", async () => {
      alice.send({ type: "passwd", password: "a-new-secret", ref: "m" });
      const e = await answer(alice, "m") as F<"error">;
      assert.deepEqual([e.code, e.message], ["bad_request", 'Field "current" is required']);
    });

    await alice.barrier();
    assert.equal(alice.closeEvent, null, "still connected");
    assert.equal(await Deno.readTextFile(`${t.dir}/users.json`), before, "nothing written");
    await assert.rejects(signIn(t.ws, "alice", "a-new-secret"), /auth_failed/);
  } finally {
    await alice.close();
  }
});

Deno.test("Hub passwd: open mode has no passwords to change", async () => {
  await using t = await startTestServer();
  const guest = await signIn(t.ws, "guest");
  try {
    guest.send({ type: "passwd", current: "", password: "a-new-secret", ref: "o" });
    const e = await answer(guest, "o") as F<"error">;
    assert.deepEqual([e.code, e.message], [
      "bad_request",
      "This server is in open mode: there are no passwords",
    ]);
    await guest.barrier();
    assert.equal(guest.closeEvent, null);
  } finally {
    await guest.close();
  }
});

Deno.test("Hub passwd: guesses of the current password are throttled per session", async () => {
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 2, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  const thief = await signIn(t.ws, "alice", USERS.alice);
  const clients: TestClient[] = [thief];
  try {
    // Two free failures and a third, then the session has to wait a minute.
    for (const ref of ["g1", "g2", "g3"]) {
      thief.send({ type: "passwd", current: `guess-${ref}`, password: "stolen-now", ref });
      assert.equal((await answer(thief, ref) as F<"error">).code, "auth_failed");
    }
    thief.send({ type: "passwd", current: USERS.alice, password: "stolen-now", ref: "g4" });
    const limited = await answer(thief, "g4") as F<"error">;
    assert.equal(limited.code, "rate_limited");
    assert.ok(limited.retryAfter! >= 55 && limited.retryAfter! <= 60, `${limited.retryAfter}`);
    assert.equal(
      limited.message,
      `Too many password attempts: try again in ${limited.retryAfter} s`,
    );
    await thief.barrier();
    assert.equal(thief.closeEvent, null, "the connection stays open");

    // Signing in is not slowed by it, and another session changes the password at once.
    const owner = await signIn(t.ws, "alice", USERS.alice);
    clients.push(owner);
    owner.send({ type: "passwd", current: USERS.alice, password: "owner-only-now", ref: "o1" });
    assert.equal((await answer(owner, "o1")).type, "passwd");
    // Which signs the thief's session out.
    assert.equal((await thief.waitClose()).code, 4003);
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Hub passwd: a stolen token buys one set of guesses, not one per way of asking", async () => {
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 2, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  const thief = await signIn(t.ws, "alice", USERS.alice);
  try {
    for (const ref of ["g1", "g2", "g3"]) {
      thief.send({ type: "passwd", current: `guess-${ref}`, password: "stolen-now", ref });
      assert.equal((await answer(thief, ref) as F<"error">).code, "auth_failed");
    }
    // The same session's token as `device` on a password sign-in: the same count.
    const device = thief.welcome.token;
    const signin = await attempt(t.ws, {
      type: "auth",
      username: "alice",
      password: "guess-g4",
      device,
    });
    assert.equal((signin.frame as F<"error">).code, "rate_limited");
    assert.equal(signin.code, 4029);
    // Without the device, the name's own count (untouched so far) decides.
    const plain = await attempt(t.ws, { type: "auth", username: "alice", password: "guess-g5" });
    assert.equal((plain.frame as F<"error">).code, "auth_failed");
  } finally {
    await thief.close();
  }
});

Deno.test("Hub passwd: a user removed or changed in users.json meanwhile gets a clear error", async (s) => {
  // The server would notice the file within a minute only: the change finds it first.
  await using t = await startTestServer({ users: USERS, reloadInterval: 60_000 });
  const path = `${t.dir}/users.json`;

  await s.step("changed in the file (as by `chat user passwd`): that change stays", async () => {
    const alice = await signIn(t.ws, "alice", USERS.alice);
    try {
      const theirs = await hashPassword("set-by-admin");
      await updateUsers(path, (u) => void u.set("alice", theirs));
      alice.send({ type: "passwd", current: USERS.alice, password: "mine-instead", ref: "c" });
      const e = await answer(alice, "c") as F<"error">;
      assert.deepEqual([e.code, e.message], [
        "auth_failed",
        "Your password was changed elsewhere meanwhile: nothing was changed",
      ]);
      assert.equal((await usersFile(t.dir)).alice, theirs);
      // The file was read again: the session ends as after any change of it.
      assert.equal((await alice.waitClose()).code, 4003);
    } finally {
      await alice.close();
    }
  });

  await s.step("removed: nothing is written", async () => {
    const bob = await signIn(t.ws, "bob", USERS.bob);
    try {
      await updateUsers(path, (u) => void u.delete("bob"));
      bob.send({ type: "passwd", current: USERS.bob, password: "bob-is-back", ref: "r" });
      const e = await answer(bob, "r") as F<"error">;
      assert.deepEqual([e.code, e.message], [
        "auth_failed",
        "Your account no longer exists: the password was not changed",
      ]);
      assert.equal((await usersFile(t.dir)).bob, undefined);
      assert.equal((await bob.waitClose()).code, 4003);
    } finally {
      await bob.close();
    }
  });
});

Deno.test("server --redis: a password change on one node signs every other connection out on every node", async () => {
  const hash = await hashPassword(USERS.alice);
  await using cluster = await startCluster(2, { users: { alice: hash, bob: USERS.bob } });
  const [n0, n1] = cluster.nodes;
  const first = await signIn(n0.ws, "alice", USERS.alice);
  // The same session on the other node, and another session there.
  const tab = await signInWithToken(n1.ws, first.welcome.token);
  const laptop = await signIn(n1.ws, "alice", USERS.alice);
  const clients: TestClient[] = [first, tab, laptop];
  try {
    first.send({ type: "passwd", current: USERS.alice, password: "a-new-secret", ref: "x" });
    const done = await answer(first, "x") as F<"passwd">;
    assert.equal(done.type, "passwd");
    // The other node rereads the shared file: every connection of alice there ends,
    // the copy of the asking session's token too.
    assert.notEqual(claims(done.token).s, claims(first.welcome.token).s);
    assert.equal((await laptop.waitClose()).code, 4003);
    assert.equal((await tab.waitClose()).code, 4003);
    assert.equal(tab.peek("passwd").length, 0);
    // Both nodes refuse the old tokens and take the new one.
    for (const node of [n0, n1]) {
      const old = await attempt(node.ws, { type: "auth", token: first.welcome.token });
      assert.equal((old.frame as F<"error">).code, "auth_failed");
      clients.push(await signInWithToken(node.ws, done.token));
    }
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("Passwords: shutdown waits for a reread of users.json under way and starts no more", async () => {
  // A reread reads the file: a node that closed under it leaked the read
  // (seen once as Deno's leak check failing a test of this file).
  let finish!: (changed: boolean) => void;
  let reads = 0, revalidated = 0;
  const warnings: string[] = [];
  const passwords = new Passwords({
    auth: {
      reload: () => (reads++, new Promise<boolean>((r) => finish = r)),
    } as unknown as Auth,
    store: {} as PasswordsContext["store"],
    broker: {} as PasswordsContext["broker"],
    log: {
      info() {},
      warn: (m: string) => void warnings.push(m),
      error() {},
    } as unknown as PasswordsContext["log"],
    now: () => 0,
    throttle: {} as PasswordsContext["throttle"],
    reply() {},
    error() {},
    drop() {},
    revalidate: () => {
      if (++revalidated === 1) throw new Error("revalidate broke");
    },
  });
  passwords.reload();
  let settled = false;
  const closing = passwords.close().then(() => settled = true);
  await Promise.resolve();
  await Promise.resolve();
  assert.equal(settled, false, "the reread is still under way");
  finish(true);
  // A failure after the read is logged, and does not fail the shutdown.
  await closing;
  assert.equal(revalidated, 1, "the sessions were checked before it settled");
  assert.deepEqual(warnings, ["Could not reread the users file: revalidate broke"]);
  // Closed: another node's event or a late password change reads nothing.
  passwords.reload();
  assert.equal(reads, 1);
  await passwords.close();
});
