/**
 * Slow consumers: one client that stops reading (a bare TCP socket that
 * never reads) among 100 fast ones in a room under a stream of messages.
 * The stuck one is cut off with 4008 once its buffer passes --max-buffered
 * (the default 1 MB); the others receive everything, in order, and keep
 * their latency. Latency and memory are measured and printed; the test
 * asserts behaviour only.
 */
import assert from "node:assert/strict";
import { type ChatMessage, splitFrames } from "../protocol.ts";
import { closeAll, signIn, startTestServer, type TestClient, waitUntil } from "./helpers.ts";
import { Op, RawWebSocket } from "./raw.ts";

const FAST = 100;
const BATCH = 25;
const TEXT = "x".repeat(4000);

interface Reader {
  client: TestClient;
  ids: number[];
  latencies: number[];
}

function p(values: number[], q: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.min(s.length - 1, Math.floor(q * s.length))];
}

Deno.test("Outbox cuts off one stuck reader with 4008 while 100 fast readers get everything in order", async () => {
  await using t = await startTestServer({
    args: ["--rate", "100000", "--burst", "100000", "--max-conns-per-addr", "500"],
    // Long enough that the stuck client can still read its close frame below.
    closeGrace: 120_000,
  });
  const readers: Reader[] = [];
  let sender: TestClient | undefined;
  let stuck: RawWebSocket | undefined;
  try {
    for (let i = 0; i < FAST; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, FAST - i) }, (_, j) => signIn(t.ws, `fast${i + j}`)),
      );
      for (const client of batch) {
        const r: Reader = { client, ids: [], latencies: [] };
        client.ws.addEventListener("message", (e) => {
          const now = performance.now();
          for (const f of splitFrames(String(e.data))) {
            if (f.type !== "message" || f.from !== "sender") continue;
            r.ids.push(f.id);
            r.latencies.push(now - Number(f.text.slice(0, f.text.indexOf("|"))));
          }
        });
        readers.push(r);
      }
    }
    sender = await signIn(t.ws, "sender");
    let sent = 0;
    let lastId = 0;
    const round = async () => {
      for (let i = 0; i < BATCH; i++) {
        sender!.send({ type: "send", room: "general", text: `${performance.now()}|${TEXT}` });
        sent++;
      }
      const own = await sender!.next<ChatMessage & { type: "message" }>((f) =>
        f.type === "message" && f.id >= lastId + BATCH
      );
      lastId = own.id;
      await waitUntil(
        () => readers.every((r) => r.ids.length > 0 && r.ids.at(-1)! >= lastId),
        `every fast reader has message ${lastId}`,
      );
      // The test clients keep every frame; drop them so memory shows the server's share.
      for (const c of [sender!, ...readers.map((r) => r.client)]) {
        c.all.length = c.raw.length = c.inbox.length = 0;
      }
    };
    const rss = () => Math.round(Deno.memoryUsage().rss / 2 ** 20);

    // Phase 1: no stuck reader yet.
    for (let i = 0; i < 8; i++) await round();
    const idleP99 = p(readers.flatMap((r) => r.latencies), 0.99);
    for (const r of readers) r.latencies.length = 0;
    const rssBefore = rss();

    // Phase 2: a reader that never reads joins the room.
    stuck = await RawWebSocket.connect(t.server.port);
    await stuck.signIn("stuck", "");
    const firstStuckId = lastId + 1;
    let rssMax = rssBefore;
    let rounds = 0;
    while (!t.log.some((l) => l.includes('slow consumer ("stuck")'))) {
      await round();
      rssMax = Math.max(rssMax, rss());
      assert.ok(++rounds < 1000, "the stuck reader is cut off within 100 MB");
    }
    const cutAt = lastId;
    // The room goes on after the cut.
    for (let i = 0; i < 8; i++) {
      await round();
      rssMax = Math.max(rssMax, rss());
    }
    const busyP99 = p(readers.flatMap((r) => r.latencies), 0.99);

    // Every fast reader got every message once, in order, and is still connected.
    const expected = readers[0].ids[0];
    for (const r of readers) {
      assert.equal(r.ids[0], expected);
      assert.equal(r.ids.length, sent, "every message reached every fast reader");
      for (let i = 1; i < r.ids.length; i++) assert.equal(r.ids[i], r.ids[i - 1] + 1);
      assert.equal(r.client.ws.readyState, WebSocket.OPEN);
    }
    assert.equal(t.server.hub.connections, FAST + 2 - 1, "only the stuck reader is gone");

    // The stuck reader finally reads: a prefix of the stream, in order, then 4008.
    let last = 0, got = 0, bytes = 0;
    let close: { code: number; reason: string } | null = null;
    for (let f; (f = await stuck.readFrame()) !== null;) {
      bytes += f.payload.length;
      if (f.opcode === Op.Close) {
        close = RawWebSocket.closeOf(f);
        break;
      }
      for (const m of splitFrames(new TextDecoder().decode(f.payload))) {
        if (m.type !== "message" || m.from !== "sender") continue;
        if (got === 0) assert.equal(m.id, firstStuckId, "from the first message after joining");
        else assert.equal(m.id, last + 1, "in order, none missing before the cut");
        last = m.id;
        got++;
      }
    }
    assert.deepEqual(close, { code: 4008, reason: "slow consumer" });
    assert.ok(last < cutAt, "nothing after the cut");
    // deno-lint-ignore no-console
    console.log(
      `  ${sent} messages to ${FAST} fast readers; stuck reader cut after ${got} messages ` +
        `(${(bytes / 2 ** 20).toFixed(1)} MiB reached it)\n` +
        `  p99 delivery: ${idleP99.toFixed(1)} ms without it, ${busyP99.toFixed(1)} ms with it\n` +
        `  test process RSS: ${rssBefore} MiB before, at most ${rssMax} MiB during`,
    );
  } finally {
    stuck?.close();
    await closeAll(sender, ...readers.map((r) => r.client));
  }
});
