/**
 * The real terminal client as a subprocess against the real server: piped
 * mode end to end, sign-in modes, and the one-line errors.
 */
import assert from "node:assert/strict";
import type { ServerFrame } from "../server/protocol.ts";
import {
  closeAll,
  DEADLINE,
  signIn,
  startTestServer,
  type TestClient,
  waitUntil,
} from "./helpers.ts";
import { ClientProcess, runChat } from "./client_helpers.ts";
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
    const result = await runChat(["client", "--user", "bot", t.ws], {
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
    const result = await runChat(["client", "-u", "bot", t.ws], { stdin: lines.join("\n") });
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
    const missing = await runChat(["client", t.ws], { stdin: "x\n" });
    assert.equal(missing.code, 2);
    assertOneLine(missing.stderr, /^error: --user NAME is needed when stdin is not a terminal/);
    const result = await runChat(
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
    const result = await runChat(["client", "-u", "bot", t.ws], {
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
    const wrong = await runChat(["client", "--user", "bot", t.ws], {
      stdin: "must not arrive\n",
      env: { CHAT_PASSWORD: "wrong-password" },
    });
    assert.equal(wrong.code, 1);
    assertOneLine(wrong.stderr, /^error: Wrong username or password$/);
    const none = await runChat(["client", "--user", "bot", t.ws], { stdin: "nor this\n" });
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
  const refused = await runChat(["client", "-u", "bot", `127.0.0.1:${port}`], { stdin: "x\n" });
  assert.equal(refused.code, 1);
  assertOneLine(
    refused.stderr,
    new RegExp(
      `^error: Cannot connect to 127\\.0\\.0\\.1:${port}: connection refused \\(is the chat server running there\\?\\)$`,
    ),
  );
  const path = await runChat(["client", "-u", "bot", `ws://127.0.0.1:${t.server.port}/nope`], {
    stdin: "x\n",
  });
  assert.equal(path.code, 1);
  assertOneLine(path.stderr, /^error: Cannot connect to .*: the server answered 404 Not Found/);
  const scheme = await runChat(["client", "-u", "bot", "ftp://example.com"], { stdin: "x\n" });
  assert.equal(scheme.code, 2);
  assertOneLine(
    scheme.stderr,
    /^error: Unsupported server URL "ftp:\/\/example\.com": use ws:\/\//,
  );
  const tls = await runChat(["client", "-u", "bot", `wss://127.0.0.1:${t.server.port}`], {
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
    const result = await runChat(["client", "-u", "bot", `https://127.0.0.1:${t.server.port}`], {
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
