/**
 * The real terminal client as a subprocess against the real server: piped
 * mode end to end, sign-in modes, and the one-line errors.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../protocol.ts";
import {
  closeAll,
  DEADLINE,
  freePort,
  signIn,
  signOut,
  startTestServer,
  TestClient,
  waitUntil,
} from "./helpers.ts";
import { ChatProcess, childEnv } from "./chat_process.ts";
import { ClientProcess, clientRun, ConfigHome, ROOT, runClient } from "./client_helpers.ts";
import { TcpProxy } from "./tcp_proxy.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

const USERS = { alice: "alice-pass", bob: "bob-pass1", bot: "bot-password" };

/** Texts of the next `n` messages `c` receives, in order. */
async function texts(c: TestClient, n: number, timeout = 4 * DEADLINE): Promise<string[]> {
  const out: string[] = [];
  while (out.length < n) out.push((await c.next<F<"message">>("message", timeout)).text);
  return out;
}

/** No stack trace, no "Uncaught", exactly one line. */
function assertOneLine(stderr: string, pattern: RegExp): void {
  const lines = stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, `one line expected, got:\n${stderr}`);
  assert.match(lines[0], pattern);
  assert.ok(!/\bat .*:\d+:\d+/.test(stderr) && !/Uncaught/.test(stderr), stderr);
}

Deno.test("chat client (piped) sends every line in order past the rate-limit burst and exits 0", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    const lines = Array.from({ length: 150 }, (_, i) => `line ${i + 1}`);
    lines.splice(10, 0, "", "   ", "/not a command, just text", "naïve café ☕");
    const result = await runClient(["client", "--user", "bot", t.ws], {
      stdin: lines.join("\n") + "\n",
      env: { CHAT_PASSWORD: USERS.bot },
    });
    assert.equal(result.stderr, "");
    assert.equal(result.stdout, "");
    assert.equal(result.code, 0);
    const want = lines.filter((l) => l.trim() !== "");
    assert.equal(want.length, 152);
    const got = await texts(bob, want.length);
    assert.deepEqual(got, want);
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "nothing more, nothing twice");
    const all = bob.all.filter((f) => f.type === "message") as F<"message">[];
    assert.ok(all.every((m) => m.from === "bot" && m.room === "general"));
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (piped) resends what a strict server's rate limit refused", async () => {
  await using t = await startTestServer({ args: ["--rate", "5", "--burst", "6"] });
  const bob = await signIn(t.ws, "bob");
  try {
    const lines = Array.from({ length: 30 }, (_, i) => `paced ${i + 1}`);
    const result = await runClient(["client", "-u", "bot", t.ws], { stdin: lines.join("\n") });
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    assert.deepEqual(await texts(bob, 30), lines, "the last line needs no newline either");
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (piped, open mode) accepts an http URL and creates the --room", async () => {
  await using t = await startTestServer();
  const bob = await signIn(t.ws, "bob");
  try {
    const missing = await runClient(["client", t.ws], { stdin: "x\n" });
    assert.equal(missing.code, 2);
    assertOneLine(missing.stderr, /^error: --user NAME is needed when stdin is not a terminal/);
    const result = await runClient(
      ["client", `http://127.0.0.1:${t.server.port}`, "--room", "deploys", "--user", "ci"],
      { stdin: "build 41 ok\nbuild 42 ok\n", env: { CHAT_PASSWORD: "not needed in open mode" } },
    );
    assert.equal(result.stderr, "");
    assert.equal(result.code, 0);
    bob.send({ type: "join", room: "deploys" });
    const joined = await bob.next<F<"joined">>("joined");
    assert.deepEqual(joined.history.map((m) => [m.from, m.text]), [
      ["ci", "build 41 ok"],
      ["ci", "build 42 ok"],
    ]);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (piped) reports a refused line by number and still sends the rest", async () => {
  await using t = await startTestServer({ args: ["--max-message", "10"] });
  const bob = await signIn(t.ws, "bob");
  try {
    const result = await runClient(["client", "-u", "bot", t.ws], {
      stdin: "short\nthis one is far too long\nlast\n",
    });
    assert.equal(result.code, 1);
    assertOneLine(
      result.stderr,
      /^error: Line 2 was not sent: Message text is longer than 10 bytes$/,
    );
    assert.deepEqual(await texts(bob, 2), ["short", "last"]);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (piped) survives a dropped connection without losing or repeating a line", async () => {
  await using t = await startTestServer({ users: USERS });
  const proxy = new TcpProxy(t.server.port);
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await using client = new ClientProcess(["--user", "bot", proxy.ws], {
    CHAT_PASSWORD: USERS.bot,
  });
  try {
    const first = Array.from({ length: 20 }, (_, i) => `a${i + 1}`);
    await client.write(...first);
    assert.deepEqual(await texts(bob, 20), first);
    await waitUntil(() => proxy.open > 0, "the client connects through the proxy");
    proxy.refuse = true;
    await proxy.cut();
    const second = Array.from({ length: 20 }, (_, i) => `b${i + 1}`);
    await client.write(...second);
    proxy.refuse = false;
    const rest = Array.from({ length: 80 }, (_, i) => `c${i + 1}`);
    await client.write(...rest);
    const result = await client.finish();
    assert.equal(result.code, 0, result.stderr);
    assert.deepEqual(await texts(bob, 100), [...second, ...rest]);
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "no line twice");
    assert.match(
      result.stderr,
      /^warning: The connection was lost: reconnecting…\nwarning: reconnected\n$/,
    );
  } finally {
    await closeAll(bob);
    await proxy.close();
  }
});

Deno.test("chat client refuses a wrong password with one line and exit code 1", async () => {
  await using t = await startTestServer({ users: USERS });
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    const wrong = await runClient(["client", "--user", "bot", t.ws], {
      stdin: "must not arrive\n",
      env: { CHAT_PASSWORD: "wrong-password" },
    });
    assert.equal(wrong.code, 1);
    assertOneLine(wrong.stderr, /^error: Wrong username or password$/);
    const none = await runClient(["client", "--user", "bot", t.ws], { stdin: "nor this\n" });
    assert.equal(none.code, 1);
    assertOneLine(
      none.stderr,
      /^error: The server at 127\.0\.0\.1:\d+ needs a password: set CHAT_PASSWORD \(stdin is not a terminal\)$/,
    );
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client explains an unreachable or wrong server in one line", async () => {
  await using t = await startTestServer();
  const proxy = new TcpProxy(t.server.port);
  const port = proxy.port;
  await proxy.close(); // now nothing listens there
  const refused = await runClient(["client", "-u", "bot", `127.0.0.1:${port}`], { stdin: "x\n" });
  assert.equal(refused.code, 1);
  assertOneLine(
    refused.stderr,
    new RegExp(
      `^error: Cannot connect to 127\\.0\\.0\\.1:${port}: connection refused \\(is the chat server running there\\?\\)$`,
    ),
  );
  const path = await runClient(["client", "-u", "bot", `ws://127.0.0.1:${t.server.port}/nope`], {
    stdin: "x\n",
  });
  assert.equal(path.code, 1);
  assertOneLine(path.stderr, /^error: Cannot connect to .*: the server answered 404 Not Found/);
  const scheme = await runClient(["client", "-u", "bot", "ftp://example.com"], { stdin: "x\n" });
  assert.equal(scheme.code, 2);
  assertOneLine(
    scheme.stderr,
    /^error: Unsupported server URL "ftp:\/\/example\.com": use ws:\/\//,
  );
  const tls = await runClient(["client", "-u", "bot", `wss://127.0.0.1:${t.server.port}`], {
    stdin: "x\n",
  });
  assert.equal(tls.code, 1);
  assertOneLine(tls.stderr, /^error: Cannot connect to .*: the server does not speak TLS there/);
});

Deno.test("chat client names a TLS certificate problem in one line", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-tls-" });
  try {
    const gen = await new Deno.Command("openssl", {
      args: [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${dir}/key.pem`,
        "-out",
        `${dir}/cert.pem`,
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
      ],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.ok(gen.success, "openssl made a certificate");
    await using t = await startTestServer({
      args: ["--cert", `${dir}/cert.pem`, "--key", `${dir}/key.pem`],
    });
    const result = await runClient(["client", "-u", "bot", `https://127.0.0.1:${t.server.port}`], {
      stdin: "x\n",
    });
    assert.equal(result.code, 1);
    assertOneLine(
      result.stderr,
      /^error: Cannot connect to 127\.0\.0\.1:\d+: TLS failed: .*DENO_CERT/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/** A message sender and its text. */
function fromAndText(m: F<"message">): [string, string] {
  return [m.from, m.text];
}

/** Whether the server still takes `token`: `welcome`, or the error and close code it answers. */
async function tryToken(ws: string, token: string): Promise<string> {
  const c = await TestClient.connect(ws);
  try {
    c.send({ type: "auth", token });
    const f = await c.next((f) => f.type === "welcome" || f.type === "error");
    if (f.type === "welcome") return "welcome";
    return `${(f as F<"error">).code} ${(await c.waitClose()).code}`;
  } finally {
    await c.close();
  }
}

Deno.test("chat client (piped) saves its session 0600 and signs in with it next time, without CHAT_PASSWORD", async () => {
  await using t = await startTestServer({ users: USERS });
  await using config = new ConfigHome();
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    const first = await runClient(["client", "--user", "alice", t.ws], {
      stdin: "first\n",
      env: { CHAT_PASSWORD: USERS.alice },
      config,
    });
    assert.deepEqual([first.code, first.stderr], [0, ""]);
    const saved = await config.tokens();
    assert.deepEqual(Object.keys(saved), [t.ws]);
    assert.equal(saved[t.ws].user, "alice");
    if (Deno.build.os !== "windows") {
      assert.equal((await Deno.stat(config.tokensFile)).mode! & 0o777, 0o600);
      assert.equal((await Deno.stat(config.chatDir)).mode! & 0o777, 0o700);
    }
    // The same user in another case: the saved session, no password.
    const second = await runClient(["client", "--user", "ALICE", t.ws], {
      stdin: "second\n",
      config,
    });
    assert.deepEqual([second.code, second.stderr], [0, ""]);
    assert.deepEqual([
      fromAndText(await bob.next<F<"message">>("message")),
      fromAndText(await bob.next<F<"message">>("message")),
    ], [["alice", "first"], ["alice", "second"]]);
    assert.equal(await tryToken(t.ws, (await config.tokens())[t.ws].token), "welcome");
    // Another user does not get alice's session.
    const other = await runClient(["client", "--user", "bob", t.ws], { stdin: "nope\n", config });
    assert.equal(other.code, 1);
    assertOneLine(other.stderr, /^error: The server at .* needs a password: set CHAT_PASSWORD/);
    assert.equal((await config.tokens())[t.ws].user, "alice", "still alice's session");
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0);
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client (piped, open mode) keeps its name: taken without the saved session, back with it", async () => {
  await using t = await startTestServer();
  await using mine = new ConfigHome();
  await using theirs = new ConfigHome();
  const bob = await signIn(t.ws, "bob");
  try {
    const first = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "hello\n",
      config: mine,
    });
    assert.deepEqual([first.code, first.stderr], [0, ""]);
    const impostor = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "impostor\n",
      config: theirs,
    });
    assert.equal(impostor.code, 1);
    assertOneLine(
      impostor.stderr,
      /^error: The name "alice" is in use by someone else: choose another$/,
    );
    assert.deepEqual(await theirs.tokens(), {});
    const back = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "back again\n",
      config: mine,
    });
    assert.deepEqual([back.code, back.stderr], [0, ""]);
    assert.deepEqual(await texts(bob, 2), ["hello", "back again"]);
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "the impostor's line never arrived");
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client replaces a saved session the server refuses, saying so once", async (s) => {
  await using t = await startTestServer({ users: USERS });
  await using config = new ConfigHome();
  const elsewhere = { user: "zoe", token: "zoe-token" };
  const OTHER = "wss://chat.example.com/ws";
  const forged = { user: "alice", token: "v1.forged.token" };

  await s.step("with CHAT_PASSWORD: signs in with it and saves the new session", async () => {
    await config.write({ [t.ws]: forged, [OTHER]: elsewhere });
    const r = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "hi\n",
      env: { CHAT_PASSWORD: USERS.alice },
      config,
    });
    assert.equal(r.code, 0);
    assert.equal(r.stderr, `warning: Your saved session for ${t.ws} has ended: sign in again\n`);
    const saved = await config.tokens();
    assert.equal(saved[t.ws].user, "alice");
    assert.notEqual(saved[t.ws].token, forged.token);
    assert.equal(await tryToken(t.ws, saved[t.ws].token), "welcome");
    assert.deepEqual(saved[OTHER], elsewhere);
  });

  await s.step("without a password to fall back on: drops it and fails as usual", async () => {
    await config.write({ [t.ws]: forged, [OTHER]: elsewhere });
    const r = await runClient(["client", "-u", "alice", t.ws], { stdin: "hi\n", config });
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(
        `^warning: Your saved session for ${RegExp.escape(t.ws)} has ended: sign in again\n` +
          "error: The server at .* needs a password: set CHAT_PASSWORD \\(stdin is not a terminal\\)\n$",
      ),
    );
    assert.deepEqual(await config.tokens(), { [OTHER]: elsewhere });
  });
});

Deno.test("chat client signs in past guesses on its name: its ended session shows whose device it is", async () => {
  await using t = await startTestServer({
    users: USERS,
    tickInterval: 20,
    throttle: { userFree: 1, addrFree: 100, baseDelay: 60_000, maxWait: 1000 },
  });
  await using config = new ConfigHome();
  const bob = await signIn(t.ws, "bob", USERS.bob);
  try {
    const first = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "first\n",
      env: { CHAT_PASSWORD: USERS.alice },
      config,
    });
    assert.deepEqual([first.code, first.stderr], [0, ""]);
    // The session ends (signed out on the web, say) while someone guesses alice's password.
    assert.equal(await signOut(t.http, (await config.tokens())[t.ws].token), 204);
    for (const guess of ["guess-1", "guess-2", "guess-3"]) {
      const c = await TestClient.connect(t.ws);
      c.send({ type: "auth", username: "alice", password: guess });
      await c.next("error");
      await c.close();
    }
    const elsewhere = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "from a new device\n",
      env: { CHAT_PASSWORD: USERS.alice },
    });
    assert.equal(elsewhere.code, 1);
    assertOneLine(elsewhere.stderr, /^error: Too many sign-in attempts: try again in \d+ s$/);
    const back = await runClient(["client", "-u", "alice", t.ws], {
      stdin: "second\n",
      env: { CHAT_PASSWORD: USERS.alice },
      config,
    });
    assert.equal(back.code, 0);
    assert.equal(back.stderr, `warning: Your saved session for ${t.ws} has ended: sign in again\n`);
    assert.deepEqual([
      fromAndText(await bob.next<F<"message">>("message")),
      fromAndText(await bob.next<F<"message">>("message")),
    ], [["alice", "first"], ["alice", "second"]]);
    assert.equal(await tryToken(t.ws, (await config.tokens())[t.ws].token), "welcome");
  } finally {
    await closeAll(bob);
  }
});

Deno.test("chat client --forget signs the saved session out on the server and forgets only it", async () => {
  await using t = await startTestServer(); // open mode: signing out also frees the name
  await using config = new ConfigHome();
  const away = `ws://127.0.0.1:${freePort()}/ws`; // nothing listens there
  const first = await runClient(["client", "-u", "alice", t.ws], { stdin: "hi\n", config });
  assert.deepEqual([first.code, first.stderr], [0, ""]);
  const { token } = (await config.tokens())[t.ws];
  await config.write({ ...await config.tokens(), [away]: { user: "zoe", token: "zoe-token" } });

  const notBob = await runClient(["client", t.ws, "--forget", "-u", "bob"], { config });
  assert.deepEqual(notBob, {
    code: 0,
    stdout: `No saved session for bob on ${t.ws} (the saved one is alice's)\n`,
    stderr: "",
  });
  assert.equal(await tryToken(t.ws, token), "welcome", "left alone");

  const forgot = await runClient(["client", t.ws, "--forget", "-u", "Alice"], { config });
  assert.deepEqual(forgot, {
    code: 0,
    stdout: `Signed out of ${t.ws} and forgot the saved session\n`,
    stderr: "",
  });
  assert.deepEqual(Object.keys(await config.tokens()), [away], "the other server's stays");
  assert.equal(await tryToken(t.ws, token), "auth_failed 4003");
  const other = await signIn(t.ws, "alice");
  await other.close();

  const none = await runClient(["client", t.ws, "--forget"], { config });
  assert.deepEqual(none, { code: 0, stdout: `No saved session for ${t.ws}\n`, stderr: "" });

  await config.write({ ...await config.tokens(), [t.ws]: { user: "alice", token } });
  const ended = await runClient(["client", t.ws, "--forget"], { config });
  assert.deepEqual(ended, {
    code: 0,
    stdout: `The saved session for ${t.ws} had ended already: forgot it\n`,
    stderr: "",
  });
  assert.deepEqual(Object.keys(await config.tokens()), [away]);

  const unreachable = await runClient(["client", away, "--forget"], { config });
  assert.equal(unreachable.code, 0);
  assert.equal(unreachable.stderr, "");
  assert.match(
    unreachable.stdout,
    new RegExp(
      `^Forgot the saved session for ${RegExp.escape(away)}, not signed out on the server: ` +
        "cannot connect to 127\\.0\\.0\\.1:\\d+: connection refused .*\n$",
    ),
  );
  assert.deepEqual(await config.tokens(), {});
});

Deno.test("chat client without permission for its config directory chats on and says why it forgets", async (s) => {
  await using t = await startTestServer();
  await using config = new ConfigHome();
  const bob = await signIn(t.ws, "bob");
  try {
    const cases: [string, string, string[], string][] = [
      [
        "no environment",
        "alice",
        ["run", "--allow-net", "--allow-env=CHAT_PASSWORD", "main.ts"],
        "no permission to read the environment variable XDG_CONFIG_HOME",
      ],
      [
        "no files",
        "carol",
        ["run", "--allow-net", "--allow-env=CHAT_PASSWORD,HOME,XDG_CONFIG_HOME,APPDATA", "main.ts"],
        `no permission to read and write "${config.chatDir}"`,
      ],
    ];
    for (const [name, user, permissions, why] of cases) {
      await s.step(name, async () => {
        const r = await runClient(["client", "-u", user, t.ws], {
          stdin: `still here (${name})\n`,
          permissions,
          config,
        });
        assert.equal(r.code, 0);
        assert.equal(r.stderr, `warning: Your session will not be remembered: ${why}\n`);
        assert.deepEqual(await texts(bob, 1), [`still here (${name})`]);
        // A session nobody can continue is signed out on the way out: the name is free.
        const next = await signIn(t.ws, user);
        await next.close();
        const forget = await runClient(["client", t.ws, "--forget"], { permissions, config });
        assert.equal(forget.code, 1);
        assertOneLine(
          forget.stderr,
          new RegExp(
            `^error: Cannot forget the saved session for ${RegExp.escape(t.ws)}: ${
              RegExp.escape(why)
            }$`,
          ),
        );
      });
    }
    await assert.rejects(Deno.stat(config.chatDir), Deno.errors.NotFound, "nothing written");
  } finally {
    await closeAll(bob);
  }
});

Deno.test("deno task client may read and write $HOME/.config/chat only, and keeps sessions there", async () => {
  assert.deepEqual(clientRun("/dir"), [
    "run",
    "--allow-net",
    "--allow-env=CHAT_PASSWORD,HOME,XDG_CONFIG_HOME,XDG_DOWNLOAD_DIR,APPDATA",
    "--allow-read=/dir",
    "--allow-write=/dir",
    "main.ts",
  ]);
  await using t = await startTestServer({ users: USERS });
  const home = await Deno.makeTempDir({ prefix: "chat-home-" });
  try {
    // Deno's own cache lives under HOME by default: keep using the warm one.
    const info = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).output();
    const { denoDir } = JSON.parse(new TextDecoder().decode(info.stdout));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "client", "--user", "alice", t.ws],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv({ HOME: home, DENO_DIR: denoDir, CHAT_PASSWORD: USERS.alice }),
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(new TextEncoder().encode("via the task\n"));
    await writer.close();
    const out = await child.output();
    assert.equal(new TextDecoder().decode(out.stderr), "");
    assert.equal(out.code, 0);
    const saved = JSON.parse(await Deno.readTextFile(`${home}/.config/chat/tokens.json`));
    assert.equal(saved[t.ws].user, "alice");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("chat client (piped): a banned member's client prints the ban on stderr and exits 1 without reconnecting", async () => {
  const users = { alice: { password: "alice-pass", role: "admin" }, bob: "bob-pass-1" };
  await using t = await startTestServer({ users });
  const alice = await signIn(t.ws, "alice", "alice-pass");
  await using config = new ConfigHome();
  // stdin stays open: the client waits for lines when the ban comes.
  await using bob = new ChatProcess(["client", "--user", "bob", t.ws], {
    deno: config.run,
    cwd: ROOT,
    clearEnv: true,
    env: { ...config.env, CHAT_PASSWORD: "bob-pass-1" },
    stdin: true,
  });
  try {
    await bob.write("hello before the ban\n");
    const hello = await alice.next<F<"message">>((f) => f.type === "message" && f.from === "bob");
    assert.equal(hello.text, "hello before the ban");

    alice.send({ type: "ban", user: "bob", reason: "spam", duration: 3600, ref: "b1" });
    const banned = await alice.next<F<"banned">>("banned");
    assert.deepEqual([banned.user, banned.by, banned.reason, banned.ref], [
      "bob",
      "alice",
      "spam",
      "b1",
    ]);
    const status = await bob.status;
    assert.equal(status.code, 1);
    assertOneLine(bob.stderr, /^error: You are banned from this chat until .+: spam$/);
    assert.ok(!/reconnect/i.test(bob.stderr), bob.stderr);
    assert.equal(bob.stdout, "");

    // Starting again is refused the same way, in one line.
    const again = await runClient(["client", "--user", "bob", t.ws], {
      stdin: "must not arrive\n",
      env: { CHAT_PASSWORD: "bob-pass-1" },
    });
    assert.equal(again.code, 1);
    assertOneLine(again.stderr, /^error: You are banned from this chat until .+: spam$/);
    await alice.barrier();
    assert.equal(alice.peek((f) => f.type === "message" && f.from === "bob").length, 0);
  } finally {
    await closeAll(alice);
  }
});

Deno.test("chat client (piped) goes on in the --room under its new name when an admin renames it mid-stream", async () => {
  const users = { ...USERS, alice: { password: "alice-pass", role: "admin" } };
  await using t = await startTestServer({ users });
  const alice = await signIn(t.ws, "alice", "alice-pass");
  const bob = await signIn(t.ws, "bob", USERS.bob);
  await using client = new ClientProcess(["--user", "bot", "--room", "ops", t.ws], {
    CHAT_PASSWORD: USERS.bot,
  });
  try {
    bob.send({ type: "join", room: "ops" });
    await bob.next("joined");
    await client.write("a1", "a2", "a3");
    const before = await texts(bob, 3);
    assert.deepEqual(before, ["a1", "a2", "a3"]);
    // Lines on their way while the room is renamed: sent before, or after, or refused
    // under the old name and sent again under the new one; each arrives once, in order.
    const during = Array.from({ length: 100 }, (_, i) => `b${i + 1}`);
    await client.write(...during);
    alice.send({ type: "rename_room", room: "ops", name: "ops-2", ref: "r1" });
    await alice.next((f) => f.type === "room_renamed" && f.ref === "r1");
    const after = Array.from({ length: 20 }, (_, i) => `c${i + 1}`);
    await client.write(...after);
    const result = await client.finish();
    assert.deepEqual([result.code, result.stderr], [0, ""]);
    const got: F<"message">[] = [];
    while (got.length < 120) got.push(await bob.next<F<"message">>("message", 4 * DEADLINE));
    assert.deepEqual(got.map((m) => m.text), [...during, ...after]);
    const rooms = got.map((m) => m.room);
    const firstNew = rooms.indexOf("ops-2");
    assert.ok(firstNew !== -1, "some lines went to #ops-2");
    assert.ok(rooms.slice(0, firstNew).every((r) => r === "ops"), rooms.join());
    assert.ok(rooms.slice(firstNew).every((r) => r === "ops-2"), rooms.join());
    await bob.barrier();
    assert.equal(bob.peek("message").length, 0, "no line twice");
  } finally {
    await closeAll(alice, bob);
  }
});
