/**
 * Session tokens: HMAC-signed, with an expiry and a credential fingerprint.
 * `chat user passwd` and `chat user remove` (the real command, in a child
 * process) end live sessions and invalidate tokens; tampered and expired
 * tokens get auth_failed; the secret is kept beside users.json.
 */
import assert from "node:assert/strict";
import { Auth } from "../server/auth/auth.ts";
import { memoryLogger } from "../server/log.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, hashPassword, signIn, startTestServer, TestClient } from "./helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const MAIN = new URL("../main.ts", import.meta.url).pathname;

async function chatUser(dir: string, args: string[], password?: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      MAIN,
      "user",
      ...args,
      "--users",
      `${dir}/users.json`,
    ],
    env: { NO_COLOR: "1", ...(password ? { CHAT_PASSWORD: password } : {}) },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, text);
  return text;
}

/** Signs in with a token; resolves the first answer and the close code if refused. */
async function tokenSignIn(
  url: string,
  token: string,
): Promise<{ frame: ServerFrame; code?: number }> {
  const c = await TestClient.connect(url);
  try {
    c.send({ type: "auth", token });
    const frame = await c.next((f) => f.type === "welcome" || f.type === "error");
    if (frame.type === "welcome") return { frame };
    return { frame, code: (await c.waitClose()).code };
  } finally {
    await c.close();
  }
}

Deno.test("Auth tokens: chat user passwd and remove end sessions and invalidate tokens", async () => {
  const users = { alice: await hashPassword("alice-pass"), bob: await hashPassword("bob-pass1") };
  await using t = await startTestServer({ users, reloadInterval: 50 });
  const alice = await signIn(t.ws, "alice", "alice-pass");
  const bob = await signIn(t.ws, "bob", "bob-pass1");
  try {
    const aliceToken = alice.welcome.token;
    const bobToken = bob.welcome.token;
    assert.equal((await tokenSignIn(t.ws, aliceToken)).frame.type, "welcome");

    await chatUser(t.dir, ["passwd", "alice"], "alice-new-pass");
    const ended = await alice.next<F<"error">>("error");
    assert.deepEqual([ended.code, ended.message], [
      "auth_failed",
      "Your account was changed or removed: sign in again",
    ]);
    assert.equal((await alice.waitClose()).code, 4003);
    const old = await tokenSignIn(t.ws, aliceToken);
    assert.equal((old.frame as F<"error">).code, "auth_failed");
    assert.equal(old.code, 4003);
    const again = await signIn(t.ws, "alice", "alice-new-pass");
    await again.close();
    await assert.rejects(signIn(t.ws, "alice", "alice-pass"), /auth_failed/);

    await chatUser(t.dir, ["remove", "bob"]);
    assert.equal((await bob.next<F<"error">>("error")).code, "auth_failed");
    assert.equal((await bob.waitClose()).code, 4003);
    assert.equal(((await tokenSignIn(t.ws, bobToken)).frame as F<"error">).code, "auth_failed");
  } finally {
    await closeAll(alice, bob);
  }
});

Deno.test("Auth tokens: tampered, truncated, foreign and expired tokens get auth_failed", async () => {
  await using t = await startTestServer({ users: { alice: "alice-pass" } });
  const alice = await signIn(t.ws, "alice", "alice-pass");
  const hasher = new PasswordHasher();
  try {
    const token = alice.welcome.token;
    const [v, payload, sig] = token.split(".");
    // A token signed with the same secret (kept in .chat-secret) but already expired.
    const secret = (await Deno.readTextFile(`${t.dir}/.chat-secret`)).trim();
    const past = await Auth.create({
      usersPath: `${t.dir}/users.json`,
      secret,
      hasher,
      log: memoryLogger(),
      tokenTtl: -60,
    });
    const other = await Auth.create({
      usersPath: `${t.dir}/users.json`,
      secret: "another-secret-another-secret-another",
      hasher,
      log: memoryLogger(),
    });
    for (
      const [name, bad] of [
        [
          "signature changed",
          `${v}.${payload}.${sig.slice(0, -2)}${sig.endsWith("AA") ? "BB" : "AA"}`,
        ],
        ["payload changed", `${v}.${payload.slice(0, -2)}xx.${sig}`],
        ["truncated", token.slice(0, 20)],
        ["other version", `v2.${payload}.${sig}`],
        ["signed with another secret", other.issueToken("alice", "s-other")],
        ["expired", past.issueToken("alice", "s-past")],
      ]
    ) {
      const r = await tokenSignIn(t.ws, bad);
      assert.equal(r.frame.type, "error", name);
      assert.equal((r.frame as F<"error">).code, "auth_failed", name);
      assert.equal(
        (r.frame as F<"error">).message,
        "Your session has expired or is no longer valid: sign in again",
      );
      assert.equal(r.code, 4003, name);
    }
    assert.equal(
      (await tokenSignIn(t.ws, token)).frame.type,
      "welcome",
      "the real one still works",
    );
  } finally {
    hasher.close();
    await alice.close();
  }
});

Deno.test("Auth secret: generated once beside users.json (mode 0600) and kept across restarts", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-secret-" });
  try {
    let token: string;
    {
      await using t = await startTestServer({ users: { alice: "alice-pass" }, dir });
      const alice = await signIn(t.ws, "alice", "alice-pass");
      token = alice.welcome.token;
      await alice.close();
    }
    const st = await Deno.stat(`${dir}/.chat-secret`);
    assert.equal(st.mode! & 0o777, 0o600);
    assert.ok((await Deno.readTextFile(`${dir}/.chat-secret`)).trim().length >= 32);
    {
      await using t = await startTestServer({ dir });
      assert.equal(
        (await tokenSignIn(t.ws, token)).frame.type,
        "welcome",
        "same secret after a restart",
      );
    }
    {
      await using t = await startTestServer({ dir, args: ["--secret", "x".repeat(40)] });
      const r = await tokenSignIn(t.ws, token);
      assert.equal((r.frame as F<"error">).code, "auth_failed", "--secret replaces the kept one");
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
