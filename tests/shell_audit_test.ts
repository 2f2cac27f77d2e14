/**
 * The shell's changes in the audit log: real `chat user` processes record
 * each change they made in users.json with `POST /api/audit` on a real
 * server, signed as the server's shell; refused changes record nothing; a
 * missing server or a wrong secret is told in one line (the change stands);
 * and the route refuses everyone but the shell, replays and altered bodies.
 */
import assert from "node:assert/strict";
import { shellAuthorization } from "../server/admin/shell.ts";
import { deriveKey } from "../server/auth/auth.ts";
import { MAX_SHELL_DETAIL } from "../server/http/admin.ts";
import { shellRequest } from "../cli/shell_request.ts";
import { SERVE } from "./chat_process.ts";
import { runClient } from "./client_helpers.ts";
import { signIn, startTestServer, type TestServer, waitUntil } from "./helpers.ts";

const USERS = { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" };

/** Runs `chat user ARGS… --users <srv's users.json>` with a password from the environment. */
function user(usersPath: string, args: string[], env: Record<string, string> = {}) {
  return runClient(["user", ...args, "--users", usersPath], {
    permissions: SERVE,
    env: { CHAT_PASSWORD: "a-good-pass", ...env },
  });
}

/** The server's token secret, as the shell reads it. */
async function secretOf(srv: TestServer): Promise<string> {
  return (await Deno.readTextFile(`${srv.dir}/.chat-secret`)).trim();
}

/** The audit log, newest first, without ids and times. */
async function auditLog(srv: TestServer): Promise<Record<string, unknown>[]> {
  const r = await shellRequest(srv.http, await secretOf(srv), {
    method: "GET",
    path: "/api/audit",
  });
  assert.equal(r.status, 200);
  return (r.body.entries as Record<string, unknown>[]).map(({ id: _, at: __, ...e }) => e);
}

/** A signed `POST /api/audit` of `body` (its signature may cover `signed` instead). */
function signedPost(srv: TestServer, secret: string, body: string, signed = body): Request {
  return new Request(`${srv.http}/api/audit`, {
    method: "POST",
    headers: {
      authorization: shellAuthorization(
        deriveKey(secret, "shell"),
        "POST",
        "/api/audit",
        Date.now(),
        signed,
      ),
      "content-type": "application/json",
    },
    body,
  });
}

async function send(req: Request): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(req);
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {} };
}

Deno.test("chat user records each change in the running server's audit log as the shell", async () => {
  await using srv = await startTestServer({ users: USERS });
  const path = `${srv.dir}/users.json`;
  const url = ["--url", srv.http];
  const steps: [string[], string][] = [
    [["add", "carol"], `Added "carol" to ${path}\n`],
    [["add", "dave", "--admin"], `Added "dave" to ${path} as an admin\n`],
    [["passwd", "CAROL"], `Changed the password of "carol" in ${path}\n`],
    [["role", "carol", "admin"], `"carol" is now an admin in ${path}\n`],
    [["role", "carol", "admin"], `"carol" is already an admin\n`],
    [["signout", "bob"], `Signed "bob" out everywhere: their sessions end within a second\n`],
    [["remove", "bob"], `Removed "bob" from ${path}\n`],
  ];
  for (const [args, stdout] of steps) {
    const r = await user(path, [...args, ...url]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, stdout, args.join(" "));
    assert.equal(r.stderr, "", args.join(" "));
  }
  // Refused changes record nothing.
  for (
    const args of [["remove", "zed"], ["add", "Alice"], ["role", "zed", "admin"], [
      "passwd",
      "zed",
    ]]
  ) {
    const r = await user(path, [...args, ...url]);
    assert.equal(r.code, 2, args.join(" "));
  }
  const want = [
    { by: "", action: "remove", target: "bob" },
    { by: "", action: "signout", target: "bob" },
    { by: "", action: "role", target: "carol", detail: "admin" },
    { by: "", action: "passwd", target: "carol" },
    { by: "", action: "user.add", target: "dave", detail: "admin" },
    { by: "", action: "user.add", target: "carol", detail: "member" },
  ];
  assert.deepEqual(await auditLog(srv), want);
  // Admins read the same entries with their token.
  let token;
  {
    await using alice = await signIn(srv.ws, "alice", "alice-pass");
    token = alice.welcome.token;
  }
  const res = await fetch(`${srv.http}/api/audit`, {
    headers: { authorization: `Bearer ${token}` },
  });
  const entries = (await res.json()).entries as Record<string, unknown>[];
  assert.deepEqual(entries.map(({ id: _, at: __, ...e }) => e), want);
  assert.ok(entries.every((e) => typeof e.at === "number" && e.at > Date.now() - 60_000));
});

Deno.test("chat user without a server, or with another secret: the change stands and it says so", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-shell-audit-" });
  try {
    const srv = await startTestServer({ users: USERS, dir });
    const port = srv.server.port;
    const path = `${dir}/users.json`;
    try {
      await t.step("another secret is refused in words", async () => {
        const r = await user(path, ["add", "erin", "--url", srv.http], {
          CHAT_SECRET: "another-secret-0123456789-abcdefghijkl",
        });
        assert.equal(r.code, 0);
        assert.equal(r.stdout, `Added "erin" to ${path}\n`);
        assert.equal(
          r.stderr,
          `Not in the audit log: the server at ${srv.http} does not accept this shell's secret (run chat user beside the server's users.json, or set CHAT_SECRET to its secret)\n`,
        );
        assert.deepEqual(await auditLog(srv), []);
      });
    } finally {
      await srv.close();
    }
    await t.step("no server at --url", async () => {
      const r = await user(path, ["add", "carol", "--url", `127.0.0.1:${port}`]);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `Added "carol" to ${path}\n`);
      assert.equal(
        r.stderr,
        `Not in the audit log: no chat server was reached at http://127.0.0.1:${port} (pass --url if it runs elsewhere)\n`,
      );
      const stored = JSON.parse(await Deno.readTextFile(path));
      assert.equal(typeof stored.carol, "string", "the change stands");
    });
    await t.step("no server on $PORT", async () => {
      const r = await user(path, ["remove", "carol"], { PORT: String(port) });
      assert.equal(r.code, 0);
      assert.equal(
        r.stderr,
        `Not in the audit log: no chat server was reached at http://localhost:${port} (pass --url if it runs elsewhere)\n`,
      );
    });
    await t.step("no secret: no server ever ran beside this users file", async () => {
      await Deno.remove(`${dir}/.chat-secret`);
      const r = await user(path, ["signout", "bob", "--url", `http://127.0.0.1:${port}`]);
      assert.equal(r.code, 0);
      assert.equal(
        r.stderr,
        `Not in the audit log: no server's token secret beside "${path}" (no server has run with it; or set CHAT_SECRET)\n`,
      );
    });
    await t.step("a bad --url is refused before anything changes", async () => {
      const before = await Deno.readTextFile(path);
      const r = await user(path, ["add", "frank", "--url", "ftp://x"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--url "ftp:\/\/x" is not an http or https address/);
      assert.equal(await Deno.readTextFile(path), before);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("chat user add in open mode: recorded, and the first admin reads it once login is on", async () => {
  await using srv = await startTestServer();
  const r = await user(`${srv.dir}/users.json`, ["add", "alice", "--url", srv.http]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stderr, "");
  // The server turns login on at its next look at users.json.
  await waitUntil(async () => {
    const info = await (await fetch(`${srv.http}/api/info`)).json();
    return info.mode === "login";
  }, "login mode");
  const alice = await signIn(srv.ws, "alice", "a-good-pass");
  assert.equal(alice.welcome.role, "admin");
  const token = alice.welcome.token;
  await alice.close();
  const res = await fetch(`${srv.http}/api/audit`, {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  const entries = (await res.json()).entries as Record<string, unknown>[];
  assert.deepEqual(entries.map(({ id: _, at: __, ...e }) => e), [
    { by: "", action: "user.add", target: "alice", detail: "admin" },
  ]);
});

Deno.test("POST /api/audit: only the shell, once per signature, with a valid entry", async (t) => {
  await using srv = await startTestServer({ users: USERS });
  const secret = await secretOf(srv);
  let admin, member;
  {
    await using alice = await signIn(srv.ws, "alice", "alice-pass");
    await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
    admin = alice.welcome.token;
    member = bob.welcome.token;
  }
  const entry = JSON.stringify({ action: "passwd", target: "bob" });
  const unauthorized = {
    error: "unauthorized",
    message: "Sign the request as the server's shell (chat user does)",
  };
  const post = (headers: Record<string, string>, body = entry) =>
    send(
      new Request(`${srv.http}/api/audit`, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body,
      }),
    );

  await t.step("no signature or token: 401", async () => {
    const r = await post({});
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, unauthorized);
    const forged = await post({ authorization: "Bearer v1.forged.token" });
    assert.equal(forged.status, 401);
    const garbage = await post({ authorization: "Shell 123.abc" });
    assert.deepEqual(garbage, { status: 401, body: unauthorized });
  });

  await t.step("an admin's or a member's token: 403", async () => {
    const forbidden = {
      status: 403,
      body: { error: "forbidden", message: "Only the server's shell may add to the audit log" },
    };
    assert.deepEqual(await post({ authorization: `Bearer ${admin}` }), forbidden);
    assert.deepEqual(await post({ authorization: `Bearer ${member}` }), forbidden);
  });

  await t.step("a replayed or altered request is refused", async () => {
    const first = signedPost(srv, secret, entry);
    const again = new Request(first.url, {
      method: "POST",
      headers: first.headers,
      body: entry,
    });
    const ok = await send(first);
    assert.equal(ok.status, 201);
    assert.deepEqual(
      { ...ok.body, at: 0, id: 0 },
      { id: 0, at: 0, by: "", action: "passwd", target: "bob" },
    );
    assert.deepEqual(await send(again), { status: 401, body: unauthorized });
    const altered = signedPost(
      srv,
      secret,
      JSON.stringify({ action: "remove", target: "alice" }),
      entry,
    );
    assert.deepEqual(await send(altered), { status: 401, body: unauthorized });
    // A signature for another route does not carry over.
    const elsewhere = shellAuthorization(
      deriveKey(secret, "shell"),
      "POST",
      "/api/invites",
      Date.now(),
      entry,
    );
    assert.deepEqual(await post({ authorization: elsewhere }), { status: 401, body: unauthorized });
    // Another server's secret.
    const stranger = signedPost(srv, "another-secret-0123456789-abcdefghijkl", entry);
    assert.equal((await send(stranger)).status, 401);
  });

  await t.step("bad entries: 400 bad_request", async () => {
    const cases: [unknown, string][] = [
      [
        { action: "ban", target: "bob" },
        `"action" must be one of user.add, remove, passwd, role, signout`,
      ],
      [{ target: "bob" }, `"action" must be one of user.add, remove, passwd, role, signout`],
      [
        { action: "invite.create", target: "bob" },
        `"action" must be one of user.add, remove, passwd, role, signout`,
      ],
      [
        { action: "remove", target: "a b" },
        `"target" must be an account name: 1-32 letters, digits, - or _`,
      ],
      [
        { action: "remove", target: "" },
        `"target" must be an account name: 1-32 letters, digits, - or _`,
      ],
      [
        { action: "remove", target: "x".repeat(33) },
        `"target" must be an account name: 1-32 letters, digits, - or _`,
      ],
      [
        { action: "remove", target: 7 },
        `"target" must be an account name: 1-32 letters, digits, - or _`,
      ],
      [{ action: "user.add", target: "carol" }, `"detail" of user.add must be "admin" or "member"`],
      [
        { action: "role", target: "carol", detail: "owner" },
        `"detail" of role must be "admin" or "member"`,
      ],
      [
        { action: "passwd", target: "bob", detail: "x".repeat(MAX_SHELL_DETAIL + 1) },
        `"detail" must be text of 1-200 characters on one line`,
      ],
      [
        { action: "passwd", target: "bob", detail: "a\nb" },
        `"detail" must be text of 1-200 characters on one line`,
      ],
      [
        { action: "passwd", target: "bob", detail: 5 },
        `"detail" must be text of 1-200 characters on one line`,
      ],
      [[1, 2], "The body must be a JSON object"],
      ["not json{", "The body must be a JSON object"],
    ];
    for (const [body, message] of cases) {
      const text = typeof body === "string" ? body : JSON.stringify(body);
      const r = await send(signedPost(srv, secret, text));
      assert.deepEqual(r, { status: 400, body: { error: "bad_request", message } }, text);
    }
    const longest = await send(
      signedPost(
        srv,
        secret,
        JSON.stringify({ action: "signout", target: "bob", detail: "d".repeat(MAX_SHELL_DETAIL) }),
      ),
    );
    assert.equal(longest.status, 201);
  });

  await t.step("other methods: 405", async () => {
    const res = await fetch(`${srv.http}/api/audit`, { method: "PUT" });
    await res.body?.cancel();
    assert.equal(res.status, 405);
    assert.equal(res.headers.get("allow"), "GET, HEAD, POST");
  });

  await t.step("only the accepted requests are in the log", async () => {
    assert.deepEqual(await auditLog(srv), [
      { by: "", action: "signout", target: "bob", detail: "d".repeat(MAX_SHELL_DETAIL) },
      { by: "", action: "passwd", target: "bob" },
    ]);
  });
});
