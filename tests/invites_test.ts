/**
 * Invite links over real HTTP: `chat invite` from the server's shell, the
 * admin routes (create, list, revoke, audit log), opening and using a link
 * (with sign-up off), every refusal with its code, and two people racing for
 * the last use — on one node and on two nodes through a real Redis.
 */
import assert from "node:assert/strict";
import { adminRoutes } from "../server/http/admin.ts";
import { HttpError } from "../server/http/http.ts";
import { MemoryAdminStore } from "../server/admin/memory.ts";
import { Auth, deriveKey } from "../server/auth/auth.ts";
import { shellAuthorization } from "../server/admin/shell.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import { memoryLogger } from "../server/log.ts";
import { SERVE } from "./chat_process.ts";
import { runClient } from "./client_helpers.ts";
import { signIn, signInWithToken, startTestServer, type TestServer } from "./helpers.ts";
import { SECRET, startCluster } from "./redis_helpers.ts";

const ADMIN = { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" };

/** A JSON request; resolves the status and the parsed body. */
async function call(
  url: string,
  init: { method?: string; token?: string; body?: unknown } = {},
): Promise<{ status: number; body: Record<string, unknown>; headers: Headers }> {
  const headers: Record<string, string> = {};
  if (init.token) headers.authorization = `Bearer ${init.token}`;
  if (init.body !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(url, {
    method: init.method ?? "GET",
    headers,
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : {}, headers: res.headers };
}

/** An admin's token on `srv`. */
async function adminToken(srv: TestServer): Promise<string> {
  await using alice = await signIn(srv.ws, "alice", "alice-pass");
  return alice.welcome.token;
}

/** Creates an invite as alice; resolves its code. */
async function newInvite(
  http: string,
  token: string,
  body: Record<string, unknown> = {},
): Promise<string> {
  const r = await call(`${http}/api/invites`, { method: "POST", token, body });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body.code as string;
}

Deno.test("chat invite prints a link and a QR code that let a friend in with sign-up off", async () => {
  await using srv = await startTestServer({
    users: ADMIN,
    args: ["--public-url", "https://chat.example.com/"],
  });
  const r = await runClient(
    [
      "invite",
      "--url",
      srv.http,
      "--users",
      `${srv.dir}/users.json`,
      "--uses",
      "2",
      "--expires",
      "1d",
    ],
    { permissions: SERVE },
  );
  assert.equal(r.code, 0, r.stderr);
  const m =
    /^Invite link for 2 people, until .+:\n {2}(https:\/\/chat\.example\.com\/#\/invite\/([A-Za-z0-9_-]{22}))\n/
      .exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.ok(r.stdout.includes("▀"), "a QR code follows");
  const code = m[2];
  const look = await call(`${srv.http}/api/invites/${code}`);
  assert.equal(look.status, 200);
  assert.equal(look.body.ok, true);
  assert.equal(look.body.admin, false);
  const day = 24 * 3600_000;
  assert.ok(Math.abs((look.body.expires as number) - (Date.now() + day)) < 60_000);
  const made = await call(`${srv.http}/api/invites/${code}`, {
    method: "POST",
    body: { name: "carol", password: "carol-pass-1" },
  });
  assert.equal(made.status, 201, JSON.stringify(made.body));
  assert.equal(made.body.user, "carol");
  await using carol = await signInWithToken(srv.ws, made.body.token as string);
  assert.equal(carol.welcome.user, "carol");
  assert.equal(carol.welcome.role, "member");
  assert.ok(carol.welcome.rooms.includes("general"), "a new account starts in general");
  await using again = await signIn(srv.ws, "carol", "carol-pass-1");
  assert.equal(again.welcome.user, "carol");
  // The audit log says who made it and who used it.
  const token = await adminToken(srv);
  const log = await call(`${srv.http}/api/audit`, { token });
  const entries = log.body.entries as { action: string; by: string; target: string }[];
  assert.deepEqual(entries.map((e) => [e.action, e.by]), [["invite.use", "carol"], [
    "invite.create",
    "",
  ]]);
  assert.equal(entries[0].target, `invite ${code.slice(0, 6)}…`);
});

Deno.test("chat invite: a wrong secret, a stopped server and bad flags are told in words", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const wrong = await runClient(
    ["invite", "--url", srv.http, "--secret", "another-secret-0123456789-abcdefghijkl"],
    { permissions: SERVE },
  );
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /does not accept this shell's secret/);
  const missing = await runClient([
    "invite",
    "--url",
    srv.http,
    "--users",
    "/nonexistent/users.json",
  ], {
    permissions: SERVE,
  });
  assert.equal(missing.code, 2);
  assert.match(
    missing.stderr,
    /Cannot find the server's token secret at "\/nonexistent\/.chat-secret"/,
  );
  for (
    const [args, want] of [
      [["--uses", "0"], "--uses must be a whole number from 1 to 1000"],
      [["--expires", "7"], `--expires "7" is not a duration`],
      [["--expires", "400d"], "--expires must be from 1 minute to 365 days"],
      [["--url", "ftp://x"], `--url "ftp://x" is not an http or https address`],
    ] as const
  ) {
    const r = await runClient(["invite", "--users", `${srv.dir}/users.json`, ...args], {
      permissions: SERVE,
    });
    assert.equal(r.code, 2, args.join(" "));
    assert.ok(r.stderr.includes(want), r.stderr);
  }
  const port = srv.server.port;
  await srv.close();
  const down = await runClient(
    ["invite", "--url", `http://127.0.0.1:${port}`, "--secret", SECRET],
    { permissions: SERVE },
  );
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    /No chat server answers at http:\/\/127\.0\.0\.1:\d+ .*start it with "chat", or pass --url/,
  );
});

Deno.test("chat invite in open mode prints the chat's own link: anyone can join there", async () => {
  await using srv = await startTestServer();
  // Open mode keeps its secret beside the (missing) users file too.
  const r = await runClient(["invite", "--url", srv.http, "--users", `${srv.dir}/users.json`], {
    permissions: SERVE,
  });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /The server runs in open mode/);
  assert.match(
    r.stdout,
    /The chat's link \(anyone with it can join\):\n {2}http:\/\/127\.0\.0\.1:\d+\n/,
  );
});

Deno.test("admin routes: only admins list, create and revoke; refusals have codes", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const token = await adminToken(srv);
  await using bob = await signIn(srv.ws, "bob", "bob-pass-1");
  const member = bob.welcome.token;
  for (
    const [method, path] of [["GET", "/api/invites"], ["POST", "/api/invites"], [
      "GET",
      "/api/audit",
    ]]
  ) {
    const none = await call(`${srv.http}${path}`, {
      method,
      body: method === "POST" ? {} : undefined,
    });
    assert.equal(none.status, 401, `${method} ${path}`);
    assert.equal(none.body.error, "unauthorized");
    const forged = await call(`${srv.http}${path}`, { method, token: "v1.forged.token" });
    assert.equal(forged.status, 401);
    const m = await call(`${srv.http}${path}`, {
      method,
      token: member,
      body: method === "POST" ? {} : undefined,
    });
    assert.equal(m.status, 403, `${method} ${path}`);
    assert.deepEqual(m.body, { error: "forbidden", message: "Only admins may do this" });
  }
  const bad = [
    [{ uses: 0 }, `"uses" must be a whole number from 1 to 1000`],
    [{ uses: 1.5 }, `"uses" must be a whole number from 1 to 1000`],
    [{ uses: "3" }, `"uses" must be a whole number from 1 to 1000`],
    [{ expires: 10 }, `"expires" must be a whole number from 60 to 31536000`],
    [{ admin: "yes" }, `"admin" must be true or false`],
    [[1], "The body must be a JSON object"],
  ] as const;
  for (const [body, message] of bad) {
    const r = await call(`${srv.http}/api/invites`, { method: "POST", token, body });
    assert.equal(r.status, 400, JSON.stringify(body));
    assert.deepEqual(r.body, { error: "bad_request", message });
  }
  const code = await newInvite(srv.http, token, { uses: 3, expires: 3600, admin: true });
  const list = await call(`${srv.http}/api/invites`, { token });
  const invites = list.body.invites as Record<string, unknown>[];
  assert.equal(invites.length, 1);
  assert.equal(invites[0].code, code);
  assert.equal(invites[0].by, "alice");
  assert.equal(invites[0].uses, 3);
  assert.equal(invites[0].used, 0);
  assert.equal(invites[0].admin, true);
  assert.equal(invites[0].state, "ok");
  assert.match(
    invites[0].url as string,
    new RegExp(`^http://127\\.0\\.0\\.1:\\d+/#/invite/${code}$`),
  );
  // A member cannot revoke; an admin can, once.
  const mine = await call(`${srv.http}/api/invites/${code}`, { method: "DELETE", token: member });
  assert.equal(mine.status, 403);
  const gone = await call(`${srv.http}/api/invites/${code}`, { method: "DELETE", token });
  assert.deepEqual(gone.body, { ok: true });
  const twice = await call(`${srv.http}/api/invites/${code}`, { method: "DELETE", token });
  assert.deepEqual(twice.body, { ok: false });
  const unknown = await call(`${srv.http}/api/invites/AAAAAAAAAAAAAAAAAAAAAA`, {
    method: "DELETE",
    token,
  });
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error, "unknown_invite");
  const after = await call(`${srv.http}/api/invites`, { token });
  assert.equal((after.body.invites as Record<string, unknown>[])[0].state, "revoked");
  const wrongMethod = await fetch(`${srv.http}/api/invites`, { method: "PUT" });
  assert.equal(wrongMethod.status, 405);
  await wrongMethod.body?.cancel();
});

Deno.test("using a link: every refusal has its code and words, and takes no use", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const token = await adminToken(srv);
  const code = await newInvite(srv.http, token);
  const use = (body: unknown, c = code) =>
    call(`${srv.http}/api/invites/${c}`, { method: "POST", body });
  const cases: [unknown, number, string, string][] = [
    [
      { name: "bad name", password: "good-pass-1" },
      400,
      "bad_request",
      "Names are 1-32 letters, digits, - or _",
    ],
    [
      { name: "dave", password: "short" },
      400,
      "bad_request",
      "The password is too short: use at least 8 characters",
    ],
    [{ name: "dave" }, 400, "bad_request", "The password is too short: use at least 8 characters"],
    [
      { name: "BOB", password: "good-pass-1" },
      409,
      "name_taken",
      `The name "BOB" is taken: choose another`,
    ],
    [
      { name: "system", password: "good-pass-1" },
      409,
      "name_taken",
      `The name "system" is taken: choose another`,
    ],
    ["not an object", 400, "bad_request", "The body must be a JSON object"],
  ];
  for (const [body, status, error, message] of cases) {
    const r = await use(body);
    assert.equal(r.status, status, JSON.stringify(body));
    assert.deepEqual(r.body, { error, message });
  }
  const notValid = await use({ name: "dave", password: "good-pass-1" }, "nope");
  assert.deepEqual(notValid.body, {
    error: "unknown_invite",
    message: "This invite link is not valid: ask for a new one",
  });
  assert.equal(notValid.status, 404);
  // None of that took the one use.
  const ok = await use({ name: "dave", password: "good-pass-1" });
  assert.equal(ok.status, 201, JSON.stringify(ok.body));
  const used = await use({ name: "erin", password: "good-pass-1" });
  assert.equal(used.status, 410);
  assert.deepEqual(used.body, {
    error: "invite_used",
    message: "This invite link has been used: ask for a new one",
  });
  const look = await call(`${srv.http}/api/invites/${code}`);
  assert.equal(look.status, 410);
  assert.equal(look.body.error, "invite_used");
  // Revoked.
  const other = await newInvite(srv.http, token);
  await call(`${srv.http}/api/invites/${other}`, { method: "DELETE", token });
  const revoked = await use({ name: "erin", password: "good-pass-1" }, other);
  assert.deepEqual(revoked.body, {
    error: "invite_revoked",
    message: "This invite link was revoked by an admin: ask for a new one",
  });
  const users = JSON.parse(await Deno.readTextFile(`${srv.dir}/users.json`));
  assert.deepEqual(Object.keys(users).sort(), ["alice", "bob", "dave"]);
});

Deno.test("an admin invite makes an admin; its account signs in with the token it was given", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const token = await adminToken(srv);
  const code = await newInvite(srv.http, token, { admin: true });
  const r = await call(`${srv.http}/api/invites/${code}`, {
    method: "POST",
    body: { name: "Zoe", password: "zoe-pass-12" },
  });
  assert.equal(r.status, 201);
  await using zoe = await signInWithToken(srv.ws, r.body.token as string);
  assert.equal(zoe.welcome.user, "Zoe");
  assert.equal(zoe.welcome.role, "admin");
  const list = await call(`${srv.http}/api/invites`, { token: zoe.welcome.token });
  assert.equal(list.status, 200, "the new admin manages invites at once");
  const users = JSON.parse(await Deno.readTextFile(`${srv.dir}/users.json`));
  assert.equal(users.Zoe.role, "admin");
});

Deno.test("ten people racing for an invite's last use: exactly one gets in", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const token = await adminToken(srv);
  const code = await newInvite(srv.http, token, { uses: 2 });
  const first = await call(`${srv.http}/api/invites/${code}`, {
    method: "POST",
    body: { name: "first", password: "first-pass-1" },
  });
  assert.equal(first.status, 201);
  const racers = Array.from({ length: 8 }, (_, i) => `racer${i}`);
  const results = await Promise.all(
    racers.map((name) =>
      call(`${srv.http}/api/invites/${code}`, {
        method: "POST",
        body: { name, password: "racer-pass-1" },
      })
    ),
  );
  const won = results.filter((r) => r.status === 201);
  assert.equal(won.length, 1, JSON.stringify(results.map((r) => r.status)));
  assert.ok(results.every((r) => r.status === 201 || r.body.error === "invite_used"));
  const users = Object.keys(JSON.parse(await Deno.readTextFile(`${srv.dir}/users.json`)));
  assert.equal(users.filter((u) => u.startsWith("racer")).length, 1);
  const list = await call(`${srv.http}/api/invites`, { token });
  const invite = (list.body.invites as Record<string, unknown>[])[0];
  assert.equal(invite.used, 2);
  assert.deepEqual(invite.usedBy, ["first", won[0].body.user]);
  assert.equal(invite.state, "used");
});

Deno.test("through Redis: an invite made on one node is used on the other, and a race for its last use lets one in", async () => {
  await using cluster = await startCluster(2, { users: ADMIN });
  const [a, b] = cluster.nodes.map((n) => `http://127.0.0.1:${n.port}`);
  await using alice = await signIn(a.replace("http", "ws") + "/ws", "alice", "alice-pass");
  const code = await newInvite(a, alice.welcome.token, { uses: 1 });
  const lookB = await call(`${b}/api/invites/${code}`);
  assert.equal(lookB.status, 200, "the other node knows it");
  const results = await Promise.all(
    ["ann", "ben", "cat", "dan"].map((name, i) =>
      call(`${i % 2 ? a : b}/api/invites/${code}`, {
        method: "POST",
        body: { name, password: "racer-pass-1" },
      })
    ),
  );
  const won = results.filter((r) => r.status === 201);
  assert.equal(won.length, 1, JSON.stringify(results.map((r) => [r.status, r.body])));
  const list = await call(`${b}/api/invites`, { token: alice.welcome.token });
  assert.equal((list.body.invites as Record<string, unknown>[])[0].used, 1);
  const audit = await call(`${b}/api/audit`, { token: alice.welcome.token });
  assert.deepEqual(
    (audit.body.entries as { action: string }[]).map((e) => e.action),
    ["invite.use", "invite.create"],
  );
});

Deno.test("using links is rate-limited per address (each try may cost a password hash)", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  let last;
  for (let i = 0; i < 11; i++) {
    last = await call(`${srv.http}/api/invites/AAAAAAAAAAAAAAAAAAAAAA`, {
      method: "POST",
      body: { name: "x", password: "short" },
    });
    if (i < 10) assert.equal(last.status, 400);
  }
  assert.equal(last!.status, 429);
  assert.equal(last!.body.error, "rate_limited");
  assert.ok(Number(last!.headers.get("retry-after")) >= 1);
});

Deno.test("the audit log pages back with before and limit, and refuses bad numbers", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const token = await adminToken(srv);
  for (let i = 0; i < 5; i++) await newInvite(srv.http, token);
  const page = await call(`${srv.http}/api/audit?limit=2`, { token });
  const first = page.body.entries as { id: number; action: string; by: string }[];
  assert.equal(first.length, 2);
  assert.ok(first[0].id > first[1].id);
  assert.ok(first.every((e) => e.action === "invite.create" && e.by === "alice"));
  const next = await call(`${srv.http}/api/audit?limit=10&before=${first[1].id}`, { token });
  const rest = next.body.entries as { id: number }[];
  assert.equal(rest.length, 3);
  assert.ok(rest.every((e) => e.id < first[1].id));
  for (const q of ["limit=0", "limit=501", "limit=x", "before=-1"]) {
    const r = await call(`${srv.http}/api/audit?${q}`, { token });
    assert.equal(r.status, 400, q);
    assert.equal(r.body.error, "bad_request");
  }
});

Deno.test("an expired link says so, by its clock (admin routes on their own)", async () => {
  const dir = await Deno.makeTempDir();
  const hasher = new PasswordHasher();
  try {
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(ADMIN));
    const log = memoryLogger();
    const auth = await Auth.create({ usersPath: `${dir}/users.json`, hasher, log, secret: SECRET });
    let now = 1_000_000;
    const admin = new MemoryAdminStore({ now: () => now });
    const routes = adminRoutes({
      admin,
      auth,
      log,
      tokenUser: (t) => Promise.resolve(auth.verifyToken(t)?.user ?? null),
      linkBase: () => "https://chat.example.com",
      now: () => now,
    });
    const token = auth.issueToken("alice", "s1");
    const ask = async (method: string, path: string, body?: unknown, auth = true) => {
      const req = new Request(`http://x${path}`, {
        method,
        headers: auth ? { authorization: `Bearer ${token}` } : {},
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      try {
        const res = await routes.handle(req, new URL(req.url), "127.0.0.1");
        return { status: res!.status, body: await res!.json() };
      } catch (err) {
        // What the router's error boundary turns into a JSON answer.
        if (!(err instanceof HttpError)) throw err;
        return { status: err.status, body: { error: err.code, message: err.message } };
      }
    };
    const made = await ask("POST", "/api/invites", { expires: 60 });
    assert.equal(made.status, 201);
    assert.equal(made.body.url, `https://chat.example.com/#/invite/${made.body.code}`);
    now += 60_000;
    const late = await ask("GET", `/api/invites/${made.body.code}`, undefined, false);
    assert.equal(late.status, 410);
    assert.deepEqual(late.body, {
      error: "invite_expired",
      message: "This invite link has expired: ask for a new one",
    });
  } finally {
    hasher.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shell's signature is good for one request: not again, not with another body or path", async () => {
  await using srv = await startTestServer({ users: ADMIN });
  const secret = (await Deno.readTextFile(`${srv.dir}/.chat-secret`)).trim();
  const key = deriveKey(secret, "shell");
  const body = JSON.stringify({ uses: 1 });
  const header = shellAuthorization(key, "POST", "/api/invites", Date.now(), body);
  const post = (h: string, b: string, path = "/api/invites") =>
    fetch(`${srv.http}${path}`, { method: "POST", headers: { authorization: h }, body: b })
      .then(async (r) => ({ status: r.status, body: await r.json() }));
  const first = await post(header, body);
  assert.equal(first.status, 201, JSON.stringify(first.body));
  assert.equal(first.body.by, "");
  const replay = await post(header, body);
  assert.equal(replay.status, 401, "the same request again");
  const other = shellAuthorization(key, "POST", "/api/invites", Date.now(), body);
  const swapped = await post(other, JSON.stringify({ uses: 1000, admin: true }));
  assert.equal(swapped.status, 401, "another body under a signature");
  const elsewhere = await post(
    shellAuthorization(key, "POST", "/api/invites", Date.now(), ""),
    "",
    "/api/people/bob/signout",
  );
  assert.equal(elsewhere.status, 401, "another path");
  const old = shellAuthorization(key, "POST", "/api/invites", Date.now() - 120_000, body);
  assert.equal((await post(old, body)).status, 401, "too old");
  const list = await call(`${srv.http}/api/invites`, { token: await adminToken(srv) });
  assert.equal((list.body.invites as unknown[]).length, 1, "only the first made an invite");
});
