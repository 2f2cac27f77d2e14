/**
 * Measures what going through Redis costs: message latency and deliveries
 * per second for one node on its own versus two nodes sharing a Redis, with
 * real processes on 127.0.0.1. Prints a markdown table for docs/scaling.md.
 *
 *     deno run -A scripts/redis_overhead.ts [--messages 300] [--receivers 10] [--burst 500]
 *
 * Needs `redis-server` on the PATH; starts its own on a free port.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { splitFrames } from "../protocol.ts";
import { ChatNode, RedisServer } from "../tests/redis_helpers.ts";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "300" },
    receivers: { type: "string", default: "10" },
    burst: { type: "string", default: "500" },
  },
});
const MESSAGES = Number(values.messages);
const RECEIVERS = Number(values.receivers);
const BURST = Number(values.burst);
const FLAGS = ["--rate", "100000", "--burst", "100000"];

/** A signed-in socket that counts messages and lets a caller wait for one. */
class Peer {
  ws: WebSocket;
  count = 0;
  #wait: { n: number; resolve: (t: number) => void } | null = null;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.onmessage = (e) => {
      for (const f of splitFrames(String(e.data))) {
        if (f.type !== "message") continue;
        this.count++;
        if (this.#wait && this.count >= this.#wait.n) {
          const w = this.#wait;
          this.#wait = null;
          w.resolve(performance.now());
        }
      }
    };
  }

  static async open(url: string, name: string): Promise<Peer> {
    const ws = new WebSocket(url);
    await new Promise((r, j) => {
      ws.onopen = r;
      ws.onerror = j;
    });
    const welcomed = new Promise<void>((resolve) => {
      ws.onmessage = (e) => {
        if (String(e.data).includes('"welcome"')) resolve();
      };
    });
    ws.send(JSON.stringify({ type: "auth", username: name }));
    await welcomed;
    return new Peer(ws);
  }

  /** Resolves the time at which the peer has seen `n` messages in total. */
  until(n: number): Promise<number> {
    if (this.count >= n) return Promise.resolve(performance.now());
    return new Promise((resolve) => (this.#wait = { n, resolve }));
  }

  async close(): Promise<void> {
    const closed = new Promise((r) => (this.ws.onclose = r));
    this.ws.close();
    await closed;
  }
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

interface Result {
  p50: number;
  p99: number;
  rate: number;
}

/** Latency (sender on `a`, receiver on `b`) and fan-out rate over `urls`. */
async function measure(a: string, b: string, urls: string[], tag: string): Promise<Result> {
  const sender = await Peer.open(a, `${tag}s`);
  const receiver = await Peer.open(b, `${tag}r`);
  const lat: number[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    const t0 = performance.now();
    sender.ws.send(JSON.stringify({ type: "send", room: "general", text: `m${i}` }));
    lat.push(await receiver.until(receiver.count + 1) - t0);
  }
  const peers = await Promise.all(
    Array.from({ length: RECEIVERS }, (_, i) => Peer.open(urls[i % urls.length], `${tag}p${i}`)),
  );
  const base = peers.map((p) => p.count);
  const t0 = performance.now();
  for (let i = 0; i < BURST; i++) {
    sender.ws.send(JSON.stringify({ type: "send", room: "general", text: `b${i}` }));
  }
  const ends = await Promise.all(peers.map((p, i) => p.until(base[i] + BURST)));
  const seconds = (Math.max(...ends) - t0) / 1000;
  await Promise.all([sender, receiver, ...peers].map((p) => p.close()));
  return { p50: pct(lat, 50), p99: pct(lat, 99), rate: (BURST * RECEIVERS) / seconds };
}

const dir = await Deno.makeTempDir({ prefix: "chat-overhead-" });
const users = `${dir}/users.json`;
await using redis = await RedisServer.start();
await using single = await ChatNode.start(null, { users, args: FLAGS });
await using n1 = await ChatNode.start(redis.url, { users, args: FLAGS });
await using n2 = await ChatNode.start(redis.url, { users, args: FLAGS });
try {
  const one = await measure(single.ws, single.ws, [single.ws], "one");
  const two = await measure(n1.ws, n2.ws, [n1.ws, n2.ws], "two");
  const row = (name: string, r: Result) =>
    `| ${name} | ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${
      Math.round(r.rate).toLocaleString("en-US")
    } |`;
  // deno-lint-ignore no-console
  console.log([
    `${MESSAGES} messages one at a time for latency; ${BURST} sent at once to ${RECEIVERS} receivers for deliveries/s.`,
    "",
    "| setup | latency p50 | latency p99 | deliveries/s |",
    "| --- | --- | --- | --- |",
    row("one node, memory store", one),
    row("two nodes through Redis (sender and receiver on different nodes)", two),
  ].join("\n"));
} finally {
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}
