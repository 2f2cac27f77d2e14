import assert from "node:assert/strict";
import {
  clean,
  closeSentence,
  describeConnectError,
  formatMessage,
  formatSystem,
  formatTime,
  nameList,
  paint,
} from "../../client/format.ts";

const local = (y: number, mo: number, d: number, h: number, mi: number) =>
  new Date(y, mo - 1, d, h, mi).toISOString();

Deno.test("formatTime() shows local HH:MM today and the date on other days", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  assert.equal(formatTime(local(2026, 5, 17, 9, 5), now), "09:05");
  assert.equal(formatTime(local(2026, 5, 16, 23, 59), now), "2026-05-16 23:59");
  assert.equal(formatTime("not a time", now), "--:--");
});

Deno.test("formatMessage() labels other rooms and direct messages", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 3);
  const here = { room: "general" } as const;
  const opts = { me: "alice", here, now };
  assert.equal(
    formatMessage({ id: 1, room: "general", from: "bob", text: "hi", ts }, opts),
    "14:03 bob: hi",
  );
  assert.equal(
    formatMessage({ id: 2, room: "ops", from: "bob", text: "deploy", ts }, opts),
    "14:03 #ops bob: deploy",
  );
  assert.equal(
    formatMessage({ id: 3, to: "alice", from: "bob", text: "psst", ts }, opts),
    "14:03 bob → you: psst",
  );
  assert.equal(
    formatMessage({ id: 4, to: "bob", from: "alice", text: "yes?", ts }, opts),
    "14:03 alice → bob: yes?",
  );
  const colored = formatMessage({ id: 1, room: "general", from: "bob", text: "hi", ts }, {
    ...opts,
    color: true,
  });
  assert.notEqual(colored, "14:03 bob: hi");
  assert.ok(colored.includes("\x1b["), "colors on request");
});

Deno.test("clean() strips terminal control characters from message text", () => {
  assert.equal(clean("a\x1b[2Jb\rc\x07"), "a[2Jbc");
  assert.equal(clean("two\nlines"), "two\n  lines");
  assert.equal(clean("tab\tstays"), "tab\tstays");
});

Deno.test("formatSystem() says who joined or left, and shutdowns", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 3);
  assert.equal(
    formatSystem({ type: "system", room: "ops", event: "join", user: "bob", ts }, false, now),
    "14:03 * bob joined #ops",
  );
  assert.equal(
    formatSystem({ type: "system", room: "ops", event: "leave", user: "bob", ts }, false, now),
    "14:03 * bob left #ops",
  );
  assert.equal(
    formatSystem({ type: "system", event: "shutdown", ts }, false, now),
    "14:03 * The server is shutting down",
  );
});

Deno.test("nameList() and paint() read naturally", () => {
  assert.equal(nameList([]), "nobody");
  assert.equal(nameList(["a"]), "a");
  assert.equal(nameList(["a", "b", "c"]), "a, b and c");
  assert.equal(paint("bold", "x", false), "x");
  assert.equal(paint("bold", "x", true), "\x1b[1mx\x1b[22m");
});

Deno.test("describeConnectError() gives one plain sentence per failure", () => {
  const url = "ws://127.0.0.1:9/ws";
  const cases: [string, string][] = [
    [
      "NetworkError: failed to connect to WebSocket: tcp connect error",
      "Cannot connect to 127.0.0.1:9: connection refused (is the chat server running there?)",
    ],
    [
      "fetch failed Error: error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
      "Cannot connect to 127.0.0.1:9: connection refused (is the chat server running there?)",
    ],
    [
      "NetworkError: failed to connect to WebSocket: dns error",
      'Cannot connect to ws://127.0.0.1:9/ws: the host "127.0.0.1" was not found (check the URL)',
    ],
    [
      "NetworkError: failed to connect to WebSocket: Invalid status code: 404",
      "Cannot connect to ws://127.0.0.1:9/ws: the server answered 404 Not Found (the chat's WebSocket path is /ws)",
    ],
    [
      "NetworkError: failed to connect to WebSocket: Invalid status code: 502",
      "Cannot connect to ws://127.0.0.1:9/ws: the server answered HTTP 502 instead of opening a WebSocket",
    ],
    [
      "NetworkError: failed to connect to WebSocket: invalid HTTP version parsed",
      "Cannot connect to 127.0.0.1:9: the server expects TLS there (try wss:// or https://)",
    ],
    ["timed out", "Cannot connect to 127.0.0.1:9: the connection timed out"],
    ["", "Cannot connect to 127.0.0.1:9: the connection failed"],
  ];
  for (const [detail, want] of cases) assert.equal(describeConnectError(url, detail), want);
  const tls = describeConnectError(
    "wss://example.com/ws",
    "NetworkError: failed to connect to WebSocket: invalid peer certificate: UnknownIssuer",
  );
  assert.match(tls, /^Cannot connect to example\.com:443: TLS failed: /);
  assert.match(tls, /not signed by an authority this machine trusts/);
  assert.match(tls, /DENO_CERT/);
  assert.ok(!tls.includes("\n"));
  // `openssl req -x509` makes a CA certificate, which Deno will not take as a server's own.
  assert.equal(
    describeConnectError(
      "wss://127.0.0.1:8443/ws",
      "NetworkError: failed to connect to WebSocket: invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
    ),
    "Cannot connect to 127.0.0.1:8443: TLS failed: the server presents a CA certificate as its own (give the server a certificate signed by a CA of your own, and run the client with DENO_CERT=ca.pem)",
  );
});

Deno.test("closeSentence() explains the server's close codes", () => {
  assert.equal(closeSentence(1001, "server shutting down"), "The server is restarting");
  assert.equal(closeSentence(4008, "slow consumer"), "The connection fell behind");
  assert.equal(closeSentence(1006, ""), "The connection was lost");
});
