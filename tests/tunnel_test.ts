import assert from "node:assert/strict";
import { banner } from "../main.ts";
import { parseConfig } from "../server/config.ts";
import { memoryLogger } from "../server/log.ts";
import {
  openTunnel,
  type Tunnel,
  type TunnelOpener,
  type TunnelRequest,
  upstreamAddr,
} from "../server/http/tunnel.ts";
import type { ServerFrame } from "../protocol.ts";
import { closeAll, freePort, signIn, startTestServer, TestClient, waitUntil } from "./helpers.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;
import { rawHttp, upgradeRequest } from "./raw.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const PUBLIC = "https://quiet-otter-42.ngrok-free.app";

/** An opener that records what it was asked and whether its tunnel closed. */
function fakeOpener(url = PUBLIC) {
  const state = { requests: [] as TunnelRequest[], closed: 0 };
  const opener: TunnelOpener = (request) => {
    state.requests.push(request);
    return Promise.resolve({
      url,
      close: () => {
        state.closed++;
        return Promise.resolve();
      },
    });
  };
  return { opener, state };
}

Deno.test("upstreamAddr() forwards wildcard listeners to loopback", () => {
  assert.equal(upstreamAddr("0.0.0.0", 8000), "127.0.0.1:8000");
  assert.equal(upstreamAddr("::", 8000), "[::1]:8000");
  assert.equal(upstreamAddr("127.0.0.1", 9000), "127.0.0.1:9000");
  assert.equal(upstreamAddr("::1", 9000), "[::1]:9000");
  assert.equal(upstreamAddr("0.0.0.0", 8443, true), "https://127.0.0.1:8443");
});

Deno.test("openTunnel() does nothing unless a tunnel is asked for", async () => {
  const log = memoryLogger();
  const { opener, state } = fakeOpener();
  const config = parseConfig([], {});
  assert.equal(await openTunnel(config, 8000, { log, opener }), null);
  assert.equal(state.requests.length, 0);
  assert.deepEqual(log.lines, []);
});

Deno.test("openTunnel() passes token, domain and the local address to the opener", async () => {
  const log = memoryLogger();
  const { opener, state } = fakeOpener();
  const config = parseConfig(["--host", "0.0.0.0"], {
    NGROK_TOKEN: "tok-123",
    NGROK_DOMAIN: "chat.example.ngrok.app",
  });
  const tunnel = await openTunnel(config, 8123, { log, opener });
  assert.equal(tunnel?.url, PUBLIC);
  assert.deepEqual(state.requests, [{
    addr: "127.0.0.1:8123",
    authtoken: "tok-123",
    domain: "chat.example.ngrok.app",
  }]);
  assert.deepEqual(log.lines, []);
});

Deno.test("openTunnel() says in one line why it failed and resolves null", async (t) => {
  const failing = (message: string): TunnelOpener => () => Promise.reject(new Error(message));
  await t.step("a rejected token gets a hint", async () => {
    const log = memoryLogger();
    const config = parseConfig([], { NGROK_AUTHTOKEN: "bogus" });
    const tunnel = await openTunnel(config, 8000, {
      log,
      opener: failing(
        "authentication failed: The authtoken you specified is not valid.\n\nERR_NGROK_105\n",
      ),
    });
    assert.equal(tunnel, null);
    assert.deepEqual(log.lines, [
      "warning: Cannot open the ngrok tunnel, serving locally only: authentication failed: " +
      "The authtoken you specified is not valid (check NGROK_AUTHTOKEN)",
    ]);
  });
  await t.step("no network gets a hint", async () => {
    const log = memoryLogger();
    const config = parseConfig([], { NGROK_AUTHTOKEN: "x" });
    await openTunnel(config, 8000, {
      log,
      opener: failing("failed to connect session: failed to establish tcp connection"),
    });
    assert.deepEqual(log.lines, [
      "warning: Cannot open the ngrok tunnel, serving locally only: failed to connect session: " +
      "failed to establish tcp connection (is this machine online?)",
    ]);
  });
  await t.step("--ngrok without a token", async () => {
    const log = memoryLogger();
    const { opener, state } = fakeOpener();
    const config = parseConfig(["--ngrok"], {});
    assert.equal(await openTunnel(config, 8000, { log, opener }), null);
    assert.equal(state.requests.length, 0);
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0], /^warning: Cannot open the ngrok tunnel.*set NGROK_AUTHTOKEN/);
  });
});

Deno.test("openTunnel() gives up after its timeout and closes a tunnel that opens later", async () => {
  const log = memoryLogger();
  const late = Promise.withResolvers<Tunnel>();
  let closed = false;
  const config = parseConfig([], { NGROK_AUTHTOKEN: "x" });
  const tunnel = await openTunnel(config, 8000, {
    log,
    opener: () => late.promise,
    timeout: 50,
  });
  assert.equal(tunnel, null);
  assert.deepEqual(log.lines, [
    "warning: Cannot open the ngrok tunnel, serving locally only: no answer from ngrok within 50 ms",
  ]);
  late.resolve({
    url: PUBLIC,
    close: () => {
      closed = true;
      return Promise.resolve();
    },
  });
  await waitUntil(() => closed, "the late tunnel is closed");
});

Deno.test("startServer() with a tunnel: banner, /healthz and close on shutdown", async (t) => {
  await t.step("open mode warns that anyone with the link can join", async () => {
    const { opener, state } = fakeOpener();
    const ts = await startTestServer({ args: ["--ngrok-token", "tok"], tunnel: opener });
    try {
      assert.equal(state.requests[0].addr, `127.0.0.1:${ts.server.port}`);
      assert.equal(ts.server.publicUrl, PUBLIC);
      const text = banner(ts.server, parseConfig(["--ngrok-token", "tok"], {}));
      const lines = text.split("\n");
      assert.ok(lines.includes(`  Public URL: ${PUBLIC}`), text);
      assert.ok(lines.includes(`  Public WS:  wss://quiet-otter-42.ngrok-free.app/ws`), text);
      assert.ok(
        lines.some((l) => /WARNING: .*anyone with the link can join/.test(l)),
        text,
      );
      const res = await fetch(`${ts.http}/healthz`);
      const health = await res.json();
      assert.equal(health.publicUrl, PUBLIC);
      assert.equal(health.status, "ok");
      assert.equal(state.closed, 0);
    } finally {
      await ts.close();
    }
    assert.equal(state.closed, 1, "shutdown closes the tunnel");
  });
  await t.step("login mode has no open-mode warning", async () => {
    const { opener } = fakeOpener();
    await using ts = await startTestServer({
      users: { alice: "alice-pass" },
      args: ["--ngrok-token", "tok"],
      tunnel: opener,
    });
    const text = banner(ts.server, parseConfig(["--ngrok-token", "tok"], {}));
    assert.match(text, /Public URL: https:\/\/quiet-otter-42/);
    assert.doesNotMatch(text, /anyone with the link/);
  });
  await t.step(
    "without a tunnel /healthz says null and the banner has no public lines",
    async () => {
      await using ts = await startTestServer();
      const health = await (await fetch(`${ts.http}/healthz`)).json();
      assert.equal(health.publicUrl, null);
      assert.equal(ts.server.publicUrl, null);
      assert.doesNotMatch(banner(ts.server, parseConfig([], {})), /Public/);
    },
  );
});

Deno.test("createHandler() lets a browser on the ngrok URL open the WebSocket", async () => {
  // ngrok forwards the public Host header and adds the secret the server gave it.
  const { opener, state } = fakeOpener();
  await using ts = await startTestServer({ args: ["--ngrok-token", "tok"], tunnel: opener });
  const headers = state.requests[0].headers!;
  assert.deepEqual(Object.keys(headers), ["x-chat-tunnel"]);
  assert.ok(headers["x-chat-tunnel"].length >= 20, "an unguessable secret");
  const ok = await rawHttp(
    ts.server.port,
    upgradeRequest({
      Host: "quiet-otter-42.ngrok-free.app",
      Origin: "https://quiet-otter-42.ngrok-free.app",
      "X-Forwarded-For": "203.0.113.9",
      "X-Forwarded-Proto": "https",
      ...headers,
    }),
  );
  assert.equal(ok.status, 101);
  const foreign = await rawHttp(
    ts.server.port,
    upgradeRequest({
      Host: "quiet-otter-42.ngrok-free.app",
      Origin: "https://evil.example",
      ...headers,
    }),
  );
  assert.equal(foreign.status, 403);
  await waitUntil(() => ts.log.some((l) => l.includes('origin "https://evil.example"')), "log");
});

Deno.test("createHandler() takes client addresses from the tunnel's X-Forwarded-For only", async () => {
  const { opener, state } = fakeOpener();
  await using ts = await startTestServer({
    args: ["--ngrok-token", "tok", "--max-conns-per-addr", "1"],
    tunnel: opener,
  });
  const secret = state.requests[0].headers!;
  const clients: TestClient[] = [];
  const connect = async (headers: Record<string, string>) => {
    const c = await TestClient.connect(ts.ws, { headers });
    clients.push(c);
    return c;
  };
  const signInAs = async (c: TestClient, username: string) => {
    c.send({ type: "auth", username });
    return await c.next((f) => f.type === "welcome" || f.type === "error");
  };
  try {
    // Two visitors through the tunnel are two addresses, not one 127.0.0.1 bucket.
    const a = await connect({ "x-forwarded-for": "203.0.113.1", ...secret });
    const b = await connect({ "x-forwarded-for": "203.0.113.2", ...secret });
    assert.equal((await signInAs(a, "ann")).type, "welcome");
    assert.equal((await signInAs(b, "ben")).type, "welcome");
    // A second one from the same visitor address is counted against it.
    const a2 = await connect({ "x-forwarded-for": "203.0.113.1", ...secret });
    assert.equal((await a2.next<F<"error">>("error")).code, "rate_limited");
    // A local client forging the header, without the secret (or with a wrong one), is 127.0.0.1.
    const local = await connect({});
    assert.equal((await signInAs(local, "lou")).type, "welcome");
    for (const forged of [{}, { "x-chat-tunnel": "guess" }] as Record<string, string>[]) {
      const f = await connect({ "x-forwarded-for": "198.51.100.7", ...forged });
      const err = await f.next<F<"error">>("error");
      assert.equal(err.code, "rate_limited", "counted as 127.0.0.1, which is full");
    }
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("chat with a bogus ngrok token says so in one line and keeps serving locally", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-ngrok-" });
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-read",
      "--allow-write",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys=cpus,networkInterfaces,hostname",
      MAIN,
      "--host",
      "127.0.0.1",
      "--port",
      String(port),
    ],
    cwd: dir,
    env: { NGROK_AUTHTOKEN: "bogus-token", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const err = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let stdout = "", stderr = "";
  const pumps = [
    (async () => {
      for (let r = await out.read(); !r.done; r = await out.read()) stdout += r.value;
    })(),
    (async () => {
      for (let r = await err.read(); !r.done; r = await err.read()) stderr += r.value;
    })(),
  ];
  let alice, bob;
  try {
    await waitUntil(() => stdout.includes("History:"), "the banner is printed", 60_000);
    assert.match(stdout, new RegExp(`listening on 127\\.0\\.0\\.1:${port}`));
    assert.doesNotMatch(stdout, /Public URL/);
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, `one line on stderr, got:\n${stderr}`);
    assert.match(lines[0], /^warning: Cannot open the ngrok tunnel, serving locally only: \S/);
    assert.doesNotMatch(stderr, /^\s+at /m, "no stack trace");
    // The SDK really ran: the failure is ngrok's, not a missing permission.
    assert.doesNotMatch(stderr, /Requires|NotCapable|Cannot find module/);
    const health = await (await fetch(`http://127.0.0.1:${port}/healthz`)).json();
    assert.equal(health.publicUrl, null);
    assert.equal(health.status, "ok");
    alice = await signIn(`ws://127.0.0.1:${port}/ws`, "alice");
    bob = await signIn(`ws://127.0.0.1:${port}/ws`, "bob");
    alice.send({ type: "send", room: "general", text: "still here" });
    const got = await bob.next((f) => f.type === "message");
    assert.equal(got.type === "message" && got.text, "still here");
  } finally {
    await closeAll(alice, bob);
    child.kill("SIGTERM");
    const status = await child.status;
    await Promise.all(pumps);
    await Deno.remove(dir, { recursive: true });
    assert.equal(status.code, 0, "SIGTERM shuts down cleanly");
  }
});
