import assert from "node:assert/strict";
import { DEFAULT_URL, hostOf, infoUrl, normalizeUrl } from "../../client/url.ts";

Deno.test("normalizeUrl() turns every accepted form into a WebSocket URL", () => {
  const cases: [string, string][] = [
    ["", DEFAULT_URL],
    ["   ", DEFAULT_URL],
    ["ws://localhost:8000/ws", "ws://localhost:8000/ws"],
    ["wss://chat.example.com/ws", "wss://chat.example.com/ws"],
    ["http://localhost:8000", "ws://localhost:8000/ws"],
    ["http://localhost:8000/", "ws://localhost:8000/ws"],
    ["https://chat.example.com", "wss://chat.example.com/ws"],
    ["HTTPS://Chat.Example.com:8443/", "wss://chat.example.com:8443/ws"],
    ["localhost:8000", "ws://localhost:8000/ws"],
    ["127.0.0.1:9000", "ws://127.0.0.1:9000/ws"],
    ["[::1]:9000", "ws://[::1]:9000/ws"],
    ["chat.local", "ws://chat.local:8000/ws"],
    ["wss://chat.example.com", "wss://chat.example.com/ws"],
    ["https://example.com/chat", "wss://example.com/chat/ws"],
    ["https://example.com/chat/", "wss://example.com/chat/ws"],
    ["ws://example.com/custom-socket", "ws://example.com/custom-socket"],
    ["ws://h:1/ws?x=1#frag", "ws://h:1/ws?x=1"],
    ["  localhost:8000  ", "ws://localhost:8000/ws"],
  ];
  for (const [input, want] of cases) assert.equal(normalizeUrl(input), want, input);
});

Deno.test("normalizeUrl() rejects other schemes and non-URLs with a clear message", () => {
  assert.throws(
    () => normalizeUrl("ftp://example.com"),
    new TypeError(
      'Unsupported server URL "ftp://example.com": use ws://, wss://, http:// or https://',
    ),
  );
  for (
    const bad of [
      "http://",
      "a b",
      "host:99999",
      "ws://:8000",
      "http//127.0.0.1:8000",
      "ht!tp://x y",
    ]
  ) {
    assert.throws(() => normalizeUrl(bad), (e: Error) => {
      assert.ok(e instanceof TypeError, bad);
      assert.match(e.message, /^Invalid server URL "/, bad);
      return true;
    });
  }
});

Deno.test("infoUrl() points at /api/info beside the socket, keeping a path prefix", () => {
  assert.equal(infoUrl("ws://localhost:8000/ws"), "http://localhost:8000/api/info");
  assert.equal(infoUrl("wss://example.com/chat/ws"), "https://example.com/chat/api/info");
  assert.equal(infoUrl("ws://example.com/custom?x=1"), "http://example.com/api/info");
});

Deno.test("hostOf() names host and port, with the scheme's default port", () => {
  assert.equal(hostOf("ws://localhost:8000/ws"), "localhost:8000");
  assert.equal(hostOf("wss://example.com/ws"), "example.com:443");
  assert.equal(hostOf("ws://example.com/ws"), "example.com:80");
});
