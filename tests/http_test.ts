/**
 * The HTTP edge: security headers on every answer, plain errors without
 * stack traces, size limits, and the cross-site WebSocket (Origin) check.
 */
import assert from "node:assert/strict";
import { MAX_BODY_BYTES, MAX_HEADER_BYTES, SECURITY_HEADERS } from "../server/http/http.ts";
import { closeAll, signIn, startTestServer } from "./helpers.ts";
import { rawHttp, RawWebSocket, upgradeRequest } from "./raw.ts";

function assertSecurityHeaders(headers: Headers, what: string): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) {
    assert.equal(headers.get(k), v, `${what}: header "${k}"`);
  }
  assert.match(headers.get("content-security-policy")!, /frame-ancestors 'none'/);
}

function assertPlainError(body: string, what: string): void {
  assert.ok(!/\bat .*:\d+:\d+/.test(body), `${what}: no stack trace in ${JSON.stringify(body)}`);
  assert.ok(!body.includes("file://"), `${what}: no file paths`);
  assert.ok(body.length < 200, `${what}: a short message`);
}

Deno.test("createHandler() answers every status with the security headers and no stack traces", async (t) => {
  let failHealth = false;
  await using s = await startTestServer({
    health: () => {
      if (failHealth) throw new Error("boom in /secret/path.ts");
      return {};
    },
  });
  const port = s.server.port;
  const cases: [
    string,
    () => Promise<{ status: number; headers: Headers; body: string }>,
    number,
  ][] = [
    ["GET /healthz", () => get("/healthz"), 200],
    ["HEAD /healthz", () => get("/healthz", { method: "HEAD" }), 200],
    ["unknown path", () => get("/no/such/thing"), 404],
    ["wrong method", () => get("/healthz", { method: "POST", body: "x" }), 405],
    ["GET /ws without upgrade", () => get("/ws"), 426],
    [
      "cross-site upgrade",
      () =>
        rawHttp(
          port,
          upgradeRequest({ Host: `127.0.0.1:${port}`, Origin: "https://evil.example" }),
        ),
      403,
    ],
    [
      "huge body announced",
      () =>
        rawHttp(
          port,
          `POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n${
            "x".repeat(1000)
          }`,
        ),
      413,
    ],
    [
      "huge headers",
      () => get("/healthz", { headers: { "x-big": "a".repeat(MAX_HEADER_BYTES + 1) } }),
      431,
    ],
    [
      "a handler that throws",
      async () => {
        failHealth = true;
        try {
          return await get("/healthz");
        } finally {
          failHealth = false;
        }
      },
      500,
    ],
  ];
  async function get(path: string, init?: RequestInit) {
    const res = await fetch(`${s.http}${path}`, init);
    return { status: res.status, headers: res.headers, body: await res.text() };
  }
  for (const [name, run, status] of cases) {
    await t.step(`${name}: ${status}`, async () => {
      const res = await run();
      assert.equal(res.status, status, res.body);
      assertSecurityHeaders(res.headers, name);
      if (status >= 400) {
        assert.match(res.headers.get("content-type")!, /^text\/plain/);
        assertPlainError(res.body, name);
      }
    });
  }
  await t.step("the error texts say what is wrong", async () => {
    assert.equal(
      (await get("/healthz", { method: "DELETE" })).body,
      "Method DELETE is not allowed here\n",
    );
    const r405 = await fetch(`${s.http}/healthz`, { method: "PUT", body: "x" });
    assert.equal(r405.headers.get("allow"), "GET, HEAD");
    await r405.body?.cancel();
    assert.equal((await get("/nope")).body, "Not found\n");
    assert.match((await get("/ws")).body, /speaks WebSocket/);
    const big = await rawHttp(
      port,
      `POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: ${MAX_BODY_BYTES + 1}\r\n\r\n`,
    );
    assert.equal(big.body, `Request body is larger than ${MAX_BODY_BYTES} bytes\n`);
  });
  await t.step("the 500 is logged with its stack, for the operator", () => {
    assert.ok(s.log.some((l) => l.startsWith("error: GET /healthz failed: Error: boom")));
  });
  await t.step(
    "headers too big for the HTTP parser are refused and the server carries on",
    async () => {
      const res = await rawHttp(
        port,
        `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${
          "a".repeat(1_000_000)
        }\r\nConnection: close\r\n\r\n`,
      );
      assert.ok(res.status === 400 || res.status === 431, `status ${res.status}`);
      assert.equal((await get("/healthz")).status, 200);
    },
  );
  await t.step(
    "a malformed WebSocket handshake is the client's error, not the server's",
    async () => {
      const head =
        "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n";
      const noKey = await rawHttp(port, `${head}Connection: Upgrade\r\n\r\n`);
      assert.equal(noKey.status, 400);
      assert.match(noKey.body, /^Bad WebSocket handshake: .*sec-websocket-key/i);
      const noConnection = await rawHttp(
        port,
        `${head}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nConnection: close\r\n\r\n`,
      );
      assert.equal(noConnection.status, 400);
      assert.match(noConnection.body, /'connection' header must contain 'Upgrade'/);
      assert.equal(noConnection.headers.get("x-content-type-options"), "nosniff");
      assert.ok(
        !s.log.some((l) => l.includes("GET /ws failed")),
        "nothing logged as a server error",
      );
      assert.equal((await get("/healthz")).status, 200);
    },
  );
  await t.step("a WebSocket upgrade with a head over 64 KB is refused too", async () => {
    const res = await rawHttp(port, upgradeRequest({ Host: "x", "X-Big": "a".repeat(70_000) }));
    assert.equal(res.status, 400);
    assert.equal(s.server.hub.connections, 0, "no connection was opened");
    assert.equal((await get("/healthz")).status, 200);
  });
});

Deno.test("createHandler() refuses cross-site WebSocket upgrades unless the origin is allowed", async (t) => {
  await using s = await startTestServer({
    args: ["--allowed-origins", "https://chat.example.org, http://localhost:3000/"],
  });
  const port = s.server.port;
  const accepted = async (origin: string | null) => {
    const res = await rawHttp(
      port,
      upgradeRequest({ Host: `127.0.0.1:${port}`, ...(origin === null ? {} : { Origin: origin }) }),
    );
    return res;
  };
  for (
    const [origin, status] of [
      [null, 101],
      [`http://127.0.0.1:${port}`, 101],
      ["https://chat.example.org", 101],
      ["HTTPS://CHAT.EXAMPLE.ORG", 101],
      ["http://localhost:3000", 101],
      ["https://evil.example", 403],
      ["https://chat.example.org.evil.example", 403],
      [`http://127.0.0.1:${port + 1}`, 403],
      ["null", 403],
      ["not a url", 403],
    ] as const
  ) {
    await t.step(`Origin ${origin ?? "(none)"}: ${status}`, async () => {
      const res = await accepted(origin);
      assert.equal(res.status, status, res.body);
      if (status === 403) {
        assert.equal(
          res.body,
          "Cross-origin WebSocket refused: add the origin to --allowed-origins\n",
        );
      }
    });
  }
  await t.step("a refused origin never reaches the hub", async () => {
    const before = s.server.hub.connections;
    await assert.rejects(
      RawWebSocket.connect(port, { headers: { Origin: "https://evil.example" } }),
      /Handshake refused: HTTP\/1\.1 403/,
    );
    assert.equal(s.server.hub.connections, before);
    assert.ok(
      s.log.some((l) => l.includes('Refused a WebSocket from origin "https://evil.example"')),
    );
  });
  await t.step("an allowed page's socket chats normally", async () => {
    const raw = await RawWebSocket.connect(port, {
      headers: { Origin: "https://chat.example.org" },
    });
    try {
      await raw.signIn("dora", "");
    } finally {
      raw.close();
    }
    const c = await signIn(s.ws, "erin");
    await closeAll(c);
  });
});
