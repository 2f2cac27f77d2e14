/**
 * What durable history costs: the same load against a server on the memory
 * store and on the SQLite store (`synchronous = FULL`, the default, and
 * `NORMAL`). Each server runs in its own process; clients run here.
 *
 * Load: `--clients` users in one room; `--senders` of them each keep
 * `--window` messages unacknowledged for `--seconds`. Reported: messages
 * stored per second, deliveries per second (every client receives every
 * message) and the send → receive latency percentiles over every delivery.
 *
 * The machine may be shared: `--rounds` runs every store that many times,
 * interleaved, and reports the median round of each (by messages/s) with
 * the range of messages/s seen.
 *
 * `--inserts` measures only the insert path instead (no server): 20,000
 * messages committed one per transaction, then 20 per transaction.
 *
 * Usage: deno run -A scripts/store_bench.ts [--clients 50] [--senders 5]
 *        [--window 10] [--seconds 5] [--rounds 3] [--modes memory,full,normal]
 *        deno run -A scripts/store_bench.ts --inserts
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseConfig } from "../server/config.ts";
import { memoryLogger } from "../server/log.ts";
import { MemoryStore } from "../server/store/memory.ts";
import { splitFrames } from "../protocol.ts";
import { startServer } from "../server/server.ts";
import { openDataFile } from "../server/store/sqlite_schema.ts";
import { SqliteStore } from "../server/store/sqlite.ts";
import type { Store } from "../server/store/store.ts";

type Mode = "memory" | "full" | "normal";

function say(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

/** Child: serve on a free port with the store of `mode` until stdin closes. */
async function serve(mode: Mode, dir: string): Promise<void> {
  const config = parseConfig([
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--users",
    `${dir}/users.json`,
    "--rate",
    "100000",
    "--burst",
    "100000",
    "--max-conns-per-addr",
    "10000",
  ], {});
  const store: Store = mode === "memory"
    ? new MemoryStore({ limit: 200 })
    : SqliteStore.open(`${dir}/bench.db`, { synchronous: mode });
  const server = await startServer(config, { store, log: memoryLogger() });
  say(`port ${server.port}`);
  for await (const _ of Deno.stdin.readable) { /* until the parent goes */ }
  await server.shutdown();
  if (store instanceof SqliteStore) say(`stats ${JSON.stringify(store.stats)}`);
}

interface Result {
  mode: Mode;
  sent: number;
  deliveries: number;
  seconds: number;
  p50: number;
  p99: number;
  max: number;
  stats?: { commits: number; messages: number };
}

async function open(url: string, name: string, onText: (t: string) => void): Promise<WebSocket> {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = () => reject(new Error(`Cannot connect to ${url}`));
  });
  const welcome = Promise.withResolvers<void>();
  ws.onmessage = (e) => {
    if (typeof e.data !== "string") return;
    if (e.data.includes('"type":"welcome"')) welcome.resolve();
    onText(e.data);
  };
  ws.send(JSON.stringify({ type: "auth", username: name }));
  await welcome.promise;
  return ws;
}

async function run(mode: Mode, opts: Record<string, number>): Promise<Result> {
  const dir = await Deno.makeTempDir({ prefix: "chat-bench-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(import.meta.url).pathname, "--serve", mode, "--dir", dir],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.getReader();
  const decoder = new TextDecoder();
  let out = "";
  while (!/port (\d+)\n/.test(out)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`Server for ${mode} did not start: ${out}`);
    out += decoder.decode(value, { stream: true });
  }
  const url = `ws://127.0.0.1:${/port (\d+)/.exec(out)![1]}/ws`;

  const latencies: number[] = [];
  let deliveries = 0;
  let measuring = false;
  const onText = (text: string) => {
    const now = performance.now();
    for (const f of splitFrames(text)) {
      if (f.type !== "message" || !measuring) continue;
      const t = Number(/^t=([\d.]+) /.exec(f.text)?.[1]);
      if (Number.isFinite(t)) {
        latencies.push(now - t);
        deliveries++;
      }
    }
  };
  const clients: WebSocket[] = [];
  for (let i = 0; i < opts.clients; i++) clients.push(await open(url, `u${i}`, onText));

  let sent = 0;
  let stop = false;
  const senders = clients.slice(0, opts.senders).map((ws, i) =>
    new Promise<void>((resolve) => {
      let inFlight = 0;
      let seq = 0;
      const send = () => {
        while (!stop && inFlight < opts.window) {
          inFlight++;
          sent++;
          ws.send(JSON.stringify({
            type: "send",
            room: "general",
            text: `t=${performance.now()} s${i} #${seq}`,
            ref: `${seq++}`,
          }));
        }
        if (stop && inFlight === 0) resolve();
      };
      ws.addEventListener("message", (e) => {
        if (typeof e.data !== "string") return;
        for (const f of splitFrames(e.data)) {
          if (f.type === "message" && f.ref !== undefined) inFlight--;
          if (f.type === "error") inFlight--;
        }
        send();
      });
      send();
    })
  );
  measuring = true;
  const started = performance.now();
  await new Promise((r) => setTimeout(r, opts.seconds * 1000));
  stop = true;
  const seconds = (performance.now() - started) / 1000;
  await Promise.race([Promise.all(senders), new Promise((r) => setTimeout(r, 5000))]);
  measuring = false;
  for (const ws of clients) ws.close();
  await child.stdin.close();
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    out += decoder.decode(value, { stream: true });
  }
  await child.status;
  await Deno.remove(dir, { recursive: true });
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))];
  const stats = /stats (.+)\n/.exec(out);
  return {
    mode,
    sent,
    deliveries,
    seconds,
    p50: pct(0.5),
    p99: pct(0.99),
    max: latencies.at(-1) ?? 0,
    stats: stats ? JSON.parse(stats[1]) : undefined,
  };
}

/** Inserts per second on the raw insert path (FTS index included), by transaction size. */
async function inserts(): Promise<void> {
  say("| synchronous | messages per transaction | inserts/s |");
  say("| --- | ---: | ---: |");
  for (const sync of ["full", "normal"] as const) {
    for (const batch of [1, 20]) {
      const dir = await Deno.makeTempDir({ prefix: "chat-bench-" });
      const file = openDataFile(`${dir}/bench.db`, { synchronous: sync });
      const insert = file.db.prepare(
        "INSERT INTO messages (conv, id, room, recipient, sender, text, ts) VALUES (?, ?, ?, NULL, ?, ?, ?)",
      );
      const n = 20_000;
      let id = 0;
      const started = performance.now();
      for (let b = 0; b < n / batch; b++) {
        file.db.exec("BEGIN IMMEDIATE");
        for (let i = 0; i < batch; i++) {
          id++;
          insert.run("general", id, "general", "u", `message ${id} with a few words`, Date.now());
        }
        file.db.exec("COMMIT");
      }
      const rate = n / ((performance.now() - started) / 1000);
      file.close();
      await Deno.remove(dir, { recursive: true });
      say(`| ${sync.toUpperCase()} | ${batch} | ${Math.round(rate)} |`);
    }
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      serve: { type: "string" },
      dir: { type: "string" },
      clients: { type: "string", default: "50" },
      senders: { type: "string", default: "5" },
      window: { type: "string", default: "10" },
      seconds: { type: "string", default: "5" },
      rounds: { type: "string", default: "3" },
      modes: { type: "string", default: "memory,full,normal" },
      inserts: { type: "boolean" },
    },
  });
  if (values.serve) return await serve(values.serve as Mode, values.dir!);
  if (values.inserts) return await inserts();
  const opts = {
    clients: Number(values.clients),
    senders: Number(values.senders),
    window: Number(values.window),
    seconds: Number(values.seconds),
  };
  const rounds = Number(values.rounds);
  const modes = values.modes.split(",") as Mode[];
  say(
    `${opts.clients} clients in one room, ${opts.senders} senders with ${opts.window} messages in flight each, ${opts.seconds} s per run, ${rounds} rounds`,
  );
  say(
    `deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores, ${
      new Date().toISOString()
    }`,
  );
  const results = new Map<Mode, Result[]>(modes.map((m) => [m, []]));
  for (let i = 0; i < rounds; i++) {
    for (const mode of modes) results.get(mode)!.push(await run(mode, opts));
  }
  say(
    "| store | messages/s (range) | deliveries/s | p50 ms | p99 ms | max ms | messages per commit |",
  );
  say("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  for (const mode of modes) {
    const rs = results.get(mode)!.map((r) => ({
      ...r,
      rate: r.deliveries / opts.clients / r.seconds,
    }));
    rs.sort((a, b) => a.rate - b.rate);
    const r = rs[Math.floor(rs.length / 2)];
    const name = mode === "memory" ? "memory" : `SQLite synchronous=${mode.toUpperCase()}`;
    const perCommit = r.stats ? (r.stats.messages / Math.max(1, r.stats.commits)).toFixed(1) : "–";
    const range = rs.length > 1
      ? ` (${Math.round(rs[0].rate)}–${Math.round(rs.at(-1)!.rate)})`
      : "";
    say(
      `| ${name} | ${Math.round(r.rate)}${range} | ${Math.round(r.deliveries / r.seconds)} | ${
        r.p50.toFixed(1)
      } | ${r.p99.toFixed(1)} | ${r.max.toFixed(1)} | ${perCommit} |`,
    );
  }
}

if (import.meta.main) await main();
