/**
 * `deno task bench --soak DURATION`: mixed traffic on one chat node for a
 * while, sampling the server's memory, to show whether it stays flat once warm.
 *
 * One server (memory store, the bench's raised flood limits but the default
 * `--max-buffered`, `--metrics` on an address of its own) and, in this
 * process, `--clients` WebSocket clients that send messages at `--rate` frames
 * per second in total (mostly messages, some edits of their own messages and
 * reactions to others'), leave and join rooms, and disconnect and come back
 * with `since`. One more client is a stalled reader: it asks for history
 * pages and never reads the answers, so the server drops it as a slow
 * consumer (4008); it is reconnected every cycle so the stall keeps happening.
 *
 * Every few seconds the server's RSS (VmRSS of /proc/<pid>/status) and V8
 * heap (`deno_heap_used_bytes` from /metrics) are sampled. After the warm-up
 * (the first 20 % of the run) least-squares lines through each give slopes in
 * MiB/min: through every sample, and through the floor (lowest reading) of
 * each stretch of the run, which GC timing does not move; the verdict is
 * `flat` when the floor's slope stays under 1 % of the warm RSS per 10
 * minutes. The samples and the summary go to
 * bench/results/soak-latest.json (`--out`).
 *
 * Flags (beside `--soak 30s|10m|1h`): `--clients N` (200), `--rate N` (50
 * frames/s in total), `--out FILE`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Rng } from "../tests/chaos/prng.ts";

/** Starts one chat server with extra flags; resolves its pid, URL and a stop function. */
export type StartServer = (
  dir: string,
  args: string[],
) => Promise<{ pids: number[]; urls: string[]; stop(): Promise<void>; output: string[] }>;

/** What the soak runs. */
export interface SoakOptions {
  /** Length of the run in seconds. */
  seconds: number;
  /** Reading clients. @default {200} */
  clients?: number;
  /** Frames per second sent by all clients together (messages, edits, reactions). @default {50} */
  rate?: number;
}

/** One memory reading. */
export interface SoakSample {
  /** Seconds since the traffic started. */
  t: number;
  /** VmRSS of the server process, in MiB. */
  rssMB: number | null;
  /** V8 heap in use and reserved (from /metrics), in MiB. */
  heapUsedMB: number | null;
  heapTotalMB: number | null;
  /** Memory outside the V8 heap that JavaScript holds (buffers), in MiB (from /metrics). */
  externalMB: number | null;
  /** The anonymous part of RSS (RssAnon: heap, malloc arenas, stacks), in MiB. */
  anonMB: number | null;
  /** Open connections the server counts. */
  connections: number | null;
  /** Frames sent by the clients so far. */
  sent: number;
}

/** Least-squares lines through the warm samples of one series. */
export interface SoakFit {
  /** Samples after the warm-up. */
  n: number;
  /** Slope through every warm sample, in MiB per minute (garbage and GC timing show in it). */
  slopeMBPerMin: number;
  /**
   * Slope through the floors: the lowest reading of each of `windows` equal
   * stretches of the warm run. Garbage comes and goes with each GC; what is
   * kept raises the floor. The verdict uses this slope.
   */
  floorSlopeMBPerMin: number;
  windows: number;
  /** The first warm reading, and the last. */
  startMB: number;
  endMB: number;
  minMB: number;
  maxMB: number;
  /** |floor slope| below which the series counts as flat (see {@link flatThreshold}). */
  thresholdMBPerMin: number;
  verdict: "flat" | "growing" | "shrinking";
}

/** What the soak reports (and writes as JSON). */
export interface SoakReport {
  date: string;
  seconds: number;
  warmupSeconds: number;
  clients: number;
  rate: number;
  machine: { cores: number; loadavg: number[] | null; deno: string };
  /** Where the heap came from; null when /metrics could not be read (RSS only). */
  heapSource: "metrics" | null;
  traffic: {
    messages: number;
    edits: number;
    reactions: number;
    joins: number;
    leaves: number;
    reconnects: number;
    stalledConnects: number;
    /** Server closes with reason `slow_consumer` (chat_server_closes_total). */
    slowConsumerCloses: number | null;
    /** Error frames the clients got, by code. */
    errors: Record<string, number>;
  };
  samples: SoakSample[];
  rss: SoakFit | null;
  heap: SoakFit | null;
  external: SoakFit | null;
  verdict: "flat" | "growing" | "shrinking" | "unknown";
}

const ROOT = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const ROOMS = ["soak-a", "soak-b", "soak-c", "soak-d"];
const WARM_SHARE = 0.2;
/** Flat: under 1 % of the warm RSS per 10 minutes (a 100 MiB server: 0.1 MiB/min). */
const FLAT_SHARE_PER_10_MIN = 0.01;
/** The server's default `--max-buffered` (1 MiB), restored over the bench's raised one. */
const DEFAULT_MAX_BUFFERED = String(1024 * 1024);
/** Seconds one stalled-reader connection lives before it is replaced. */
const STALL_CYCLE = 20;

function print(line = ""): void {
  // deno-lint-ignore no-console
  console.log(line);
}

/** Parses `30s`, `10m`, `1h` or plain seconds into seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(text.trim());
  if (!m || Number(m[1]) <= 0) {
    throw new RangeError(`Invalid --soak "${text}": use a duration such as 30s, 10m or 1h`);
  }
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] ?? "s"] as number);
}

/** Least-squares slope and intercept of y over x. */
export function fitLine(points: [number, number][]): { slope: number; intercept: number } {
  const n = points.length;
  const mx = points.reduce((s, [x]) => s + x, 0) / n;
  const my = points.reduce((s, [, y]) => s + y, 0) / n;
  let sxy = 0, sxx = 0;
  for (const [x, y] of points) {
    sxy += (x - mx) * (y - my);
    sxx += (x - mx) ** 2;
  }
  const slope = sxx === 0 ? 0 : sxy / sxx;
  return { slope, intercept: my - slope * mx };
}

const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;

/**
 * The slope under which memory counts as flat: 1 % of the warm RSS per 10
 * minutes, for RSS and heap alike (heap is part of RSS). For a ~100 MiB
 * server at 50 frames/s that is ~0.1 MiB/min, ~35 bytes kept per frame sent:
 * a leak of one small object per message shows.
 */
function flatThreshold(warmRssMB: number): number {
  return (warmRssMB * FLAT_SHARE_PER_10_MIN) / 10;
}

/** The lowest reading of each of `windows` equal stretches of `points`. */
function floors(points: [number, number][], windows: number): [number, number][] {
  const out: [number, number][] = [];
  for (let w = 0; w < windows; w++) {
    const part = points.slice(
      Math.floor((w * points.length) / windows),
      Math.floor(((w + 1) * points.length) / windows),
    );
    if (part.length > 0) out.push(part.reduce((lo, p) => (p[1] < lo[1] ? p : lo)));
  }
  return out;
}

/** Fits the warm samples of one series; null with fewer than six readings. */
function fit(
  samples: SoakSample[],
  from: number,
  key: "rssMB" | "heapUsedMB" | "externalMB",
  threshold: number,
): SoakFit | null {
  const points = samples.filter((s) => s.t >= from && s[key] !== null)
    .map((s) => [s.t / 60, s[key]!] as [number, number]);
  if (points.length < 6) return null;
  // Windows of at least three samples, at most ten of them.
  const windows = Math.min(10, Math.floor(points.length / 3));
  const slope = fitLine(points).slope;
  const floorSlope = fitLine(floors(points, windows)).slope;
  const ys = points.map(([, y]) => y);
  return {
    n: points.length,
    slopeMBPerMin: round(slope, 3),
    floorSlopeMBPerMin: round(floorSlope, 3),
    windows,
    startMB: ys[0],
    endMB: ys.at(-1)!,
    minMB: Math.min(...ys),
    maxMB: Math.max(...ys),
    thresholdMBPerMin: round(threshold, 3),
    verdict: Math.abs(floorSlope) < threshold ? "flat" : floorSlope > 0 ? "growing" : "shrinking",
  };
}

/** The RSS and heap fits of a run's samples after `warmupSeconds`. */
export function summarize(
  samples: SoakSample[],
  warmupSeconds: number,
): { rss: SoakFit | null; heap: SoakFit | null; external: SoakFit | null } {
  const warm = samples.filter((s) => s.t >= warmupSeconds && s.rssMB !== null);
  const mean = warm.reduce((sum, s) => sum + s.rssMB!, 0) / Math.max(1, warm.length);
  const threshold = flatThreshold(mean);
  return {
    rss: fit(samples, warmupSeconds, "rssMB", threshold),
    heap: fit(samples, warmupSeconds, "heapUsedMB", threshold),
    external: fit(samples, warmupSeconds, "externalMB", threshold),
  };
}

/** Counters shared by the clients. */
interface Traffic {
  messages: number;
  edits: number;
  reactions: number;
  joins: number;
  leaves: number;
  reconnects: number;
  stalledConnects: number;
  errors: Record<string, number>;
}

/** One reading client: its socket, rooms, positions and recent message ids. */
class SoakClient {
  ws: WebSocket | null = null;
  token: string | null = null;
  ready = false;
  /** Rooms it is in (beside general), with the newest `seq` it saw in each. */
  seq = new Map<string, number>();
  /** Recent ids of its own messages and of others', by room (for edits and reactions). */
  own = new Map<string, number[]>();
  others = new Map<string, number[]>();
  reacted = new Set<number>();

  constructor(readonly name: string, readonly url: string, readonly traffic: Traffic) {}

  /** Connects, signs in (by token when it has one) and joins its rooms with `since`. */
  open(): Promise<void> {
    this.ready = false;
    return new Promise((resolve, reject) => {
      const ws = this.ws = new WebSocket(this.url);
      const timer = setTimeout(() => reject(new Error(`Client "${this.name}" not ready`)), 30_000);
      ws.onerror = () => {};
      ws.onopen = () => {
        ws.send(JSON.stringify(
          this.token ? { type: "auth", token: this.token } : { type: "auth", username: this.name },
        ));
      };
      ws.onclose = () => {
        clearTimeout(timer);
        this.ready = false;
        resolve();
      };
      ws.onmessage = (e) => {
        for (const line of (e.data as string).split("\n")) {
          if (!line) continue;
          const frame = JSON.parse(line);
          if (frame.type === "welcome") {
            this.token = frame.token;
            for (const [room, since] of this.seq) {
              ws.send(
                JSON.stringify(since ? { type: "join", room, since } : { type: "join", room }),
              );
            }
            clearTimeout(timer);
            this.ready = true;
            resolve();
          } else this.#onFrame(frame);
        }
      };
    });
  }

  #onFrame(frame: Record<string, unknown>): void {
    const room = frame.room as string | undefined;
    if (frame.type === "error") {
      const code = String(frame.code);
      this.traffic.errors[code] = (this.traffic.errors[code] ?? 0) + 1;
      return;
    }
    if (!room || !this.seq.has(room)) return;
    if (typeof frame.seq === "number") {
      this.seq.set(room, Math.max(this.seq.get(room) ?? 0, frame.seq));
    }
    if (frame.type === "message" && typeof frame.id === "number") {
      const list = frame.from === this.name ? this.own : this.others;
      const ids = list.get(room) ?? [];
      if (!ids.includes(frame.id)) ids.push(frame.id);
      if (ids.length > 20) ids.shift();
      list.set(room, ids);
    }
  }

  send(frame: unknown): void {
    if (this.ready && this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  /** Closes the socket and waits (briefly) until it is closed. */
  close(): Promise<void> {
    const ws = this.ws;
    this.ready = false;
    if (!ws || ws.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, 5000);
      ws.onclose = () => (clearTimeout(t), resolve());
      ws.close();
    });
  }
}

/** Encodes one masked client text frame. */
function wsFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const n = payload.length;
  const head = n < 126 ? [0x81, 0x80 | n] : [0x81, 0x80 | 126, n >> 8, n & 0xff];
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const out = new Uint8Array(head.length + 4 + n);
  out.set(head);
  out.set(mask, head.length);
  for (let i = 0; i < n; i++) out[head.length + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

/**
 * The stalled reader: a raw WebSocket that reads only until its welcome,
 * then asks for history pages forever and never reads again. The server
 * must drop it as a slow consumer; each cycle starts a fresh one.
 */
async function stalledReader(url: string, traffic: Traffic, stop: AbortSignal): Promise<void> {
  const { hostname, port } = new URL(url);
  let token: string | null = null;
  while (!stop.aborted) {
    let conn: Deno.TcpConn | null = null;
    // Closing the connection ends a write blocked on a full buffer (or the
    // welcome read): at the end of the cycle, or when the soak stops.
    const end = () => {
      try {
        conn?.close();
      } catch { /* closed */ }
      conn = null;
    };
    const timer = setTimeout(end, STALL_CYCLE * 1000);
    stop.addEventListener("abort", end);
    try {
      const c = conn = await Deno.connect({ hostname, port: Number(port) });
      traffic.stalledConnects++;
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await c.write(new TextEncoder().encode(
        `GET /ws HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ));
      await c.write(wsFrame(JSON.stringify(
        token ? { type: "auth", token } : { type: "auth", username: "stalled" },
      )));
      // Read until the welcome (for its token), and never again.
      let seen = "";
      const buf = new Uint8Array(64 * 1024);
      const decoder = new TextDecoder();
      while (!/"type":"welcome".*?"token":"([^"]+)"/.test(seen)) {
        const n = await c.read(buf);
        if (n === null) throw new Error("Stalled reader closed before its welcome");
        seen += decoder.decode(buf.subarray(0, n), { stream: true });
      }
      token = /"type":"welcome".*?"token":"([^"]+)"/.exec(seen)![1];
      for (const room of ROOMS) await c.write(wsFrame(JSON.stringify({ type: "join", room })));
      for (let i = 0; !stop.aborted; i++) {
        // Pages of up to 200 messages (MAX_PAGE), ten every 20 ms: the kernel's
        // buffers (a few MB on loopback) and then --max-buffered fill in seconds.
        const room = ROOMS[i % ROOMS.length];
        for (let j = 0; j < 10; j++) {
          await c.write(wsFrame(JSON.stringify({ type: "history", room, limit: 200 })));
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    } catch {
      // The server reset the connection after dropping it, or the cycle ended: start over.
      if (!stop.aborted) await new Promise((r) => setTimeout(r, 500));
    } finally {
      clearTimeout(timer);
      stop.removeEventListener("abort", end);
      end();
    }
  }
}

/**
 * Reads a process's VmRSS and RssAnon in MiB; through `sh`, as Deno grants
 * /proc/<pid> reads only with --allow-all.
 */
async function rssMB(pid: number): Promise<{ rss: number; anon: number | null } | null> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", `cat /proc/${pid}/status`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const kB = (field: string) => {
      const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
      return m ? round(Number(m[1]) / 1024) : null;
    };
    const rss = kB("VmRSS");
    return rss === null ? null : { rss, anon: kB("RssAnon") };
  } catch {
    return null;
  }
}

/** The values of a few series of a Prometheus text page (summed over labels matching `filter`). */
async function scrape(url: string): Promise<Map<string, number> | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) {
      await res.body?.cancel();
      return null;
    }
    const out = new Map<string, number>();
    for (const line of (await res.text()).split("\n")) {
      if (!line || line.startsWith("#")) continue;
      const m = /^([a-z_]+(?:\{[^}]*\})?) (\S+)/.exec(line);
      if (m) out.set(m[1], Number(m[2]));
    }
    return out;
  } catch {
    return null;
  }
}

/** Average load over 1, 5 and 15 minutes, through `sh` (see {@link rssMB}). */
async function loadavg(): Promise<number[] | null> {
  try {
    const out = await new Deno.Command("sh", {
      args: ["-c", "cat /proc/loadavg"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(out.stdout).split(" ").slice(0, 3).map(Number);
  } catch {
    return null;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Sends one frame of mixed traffic from a random ready client. */
function act(clients: SoakClient[], rnd: Rng, traffic: Traffic): void {
  const c = clients[Math.floor(rnd.next() * clients.length)];
  if (!c.ready || c.seq.size === 0) return;
  const rooms = [...c.seq.keys()];
  const room = rooms[Math.floor(rnd.next() * rooms.length)];
  const p = rnd.next();
  const own = c.own.get(room), others = c.others.get(room);
  if (p < 0.15 && own?.length) {
    const id = own[Math.floor(rnd.next() * own.length)];
    c.send({ type: "edit", room, id, text: `edited ${traffic.edits} by ${c.name}` });
    traffic.edits++;
  } else if (p < 0.3 && others?.length) {
    const id = others[Math.floor(rnd.next() * others.length)];
    // Toggle, so the reactions a message holds stay bounded.
    const on = !c.reacted.has(id);
    if (on) c.reacted.add(id);
    else c.reacted.delete(id);
    if (c.reacted.size > 200) c.reacted.delete(c.reacted.values().next().value!);
    c.send({ type: "react", room, id, emoji: "👍", on });
    traffic.reactions++;
  } else {
    c.send({ type: "send", room, text: `soak ${traffic.messages} from ${c.name} ~ lorem ipsum` });
    traffic.messages++;
  }
}

/** Moves a random client from one of its rooms to another. */
function churn(clients: SoakClient[], rnd: Rng, traffic: Traffic): void {
  const c = clients[Math.floor(rnd.next() * clients.length)];
  if (!c.ready) return;
  const rooms = [...c.seq.keys()];
  const from = rooms[Math.floor(rnd.next() * rooms.length)];
  const to = ROOMS.filter((r) => !c.seq.has(r))[0];
  if (!from || !to) return;
  c.send({ type: "leave", room: from });
  c.seq.delete(from);
  c.own.delete(from);
  c.others.delete(from);
  c.send({ type: "join", room: to });
  c.seq.set(to, 0);
  traffic.leaves++;
  traffic.joins++;
}

/** Runs the soak against a server started with `start`; resolves the report. */
export async function runSoak(start: StartServer, options: SoakOptions): Promise<SoakReport> {
  const seconds = options.seconds, count = options.clients ?? 200, rate = options.rate ?? 50;
  const traffic: Traffic = {
    messages: 0,
    edits: 0,
    reactions: 0,
    joins: 0,
    leaves: 0,
    reconnects: 0,
    stalledConnects: 0,
    errors: {},
  };
  const metricsPort = freePort();
  const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
  const dir = await Deno.makeTempDir({ prefix: "chat-soak-" });
  const stop = new AbortController();
  const timers: ReturnType<typeof setInterval>[] = [];
  let server: Awaited<ReturnType<StartServer>> | null = null;
  const clients: SoakClient[] = [];
  let stalled: Promise<void> | null = null;
  const samples: SoakSample[] = [];
  let heapSource: "metrics" | null = null;
  let slow: number | null = null;
  const load = await loadavg();
  try {
    server = await start(dir, [
      "--max-buffered",
      DEFAULT_MAX_BUFFERED,
      "--metrics",
      "--metrics-listen",
      `127.0.0.1:${metricsPort}`,
    ]);
    const url = server.urls[0], pid = server.pids[0];
    // Seeded, so two soaks send the same traffic.
    const rnd = new Rng(20);
    for (let i = 0; i < count; i++) {
      const c = new SoakClient(`soak${i}`, url, traffic);
      // Two rooms each, spread evenly.
      c.seq.set(ROOMS[i % ROOMS.length], 0);
      c.seq.set(ROOMS[(i + 1) % ROOMS.length], 0);
      clients.push(c);
    }
    for (let i = 0; i < count; i += 20) {
      await Promise.all(clients.slice(i, i + 20).map((c) => c.open()));
    }
    stalled = stalledReader(url, traffic, stop.signal);
    const started = performance.now();
    const elapsed = () => (performance.now() - started) / 1000;
    // About 60 samples at least (a short run needs six warm ones), at most one every 5 s.
    const every = Math.min(5, Math.max(0.5, seconds / 60));
    const sampleOnce = async () => {
      const [rss, metrics] = await Promise.all([rssMB(pid), scrape(metricsUrl)]);
      const heap = metrics?.get("deno_heap_used_bytes");
      if (heap !== undefined) heapSource = "metrics";
      const s = metrics?.get('chat_server_closes_total{reason="slow_consumer"}');
      if (s !== undefined) slow = s;
      const mb = (v: number | undefined) => (v === undefined ? null : round(v / 1048576));
      samples.push({
        t: round(elapsed(), 1),
        rssMB: rss?.rss ?? mb(metrics?.get("process_resident_memory_bytes")),
        anonMB: rss?.anon ?? null,
        heapUsedMB: mb(heap),
        heapTotalMB: mb(metrics?.get("deno_heap_total_bytes")),
        externalMB: mb(metrics?.get("deno_external_memory_bytes")),
        connections: metrics?.get("chat_connections") ?? null,
        sent: traffic.messages + traffic.edits + traffic.reactions,
      });
    };
    await sampleOnce();
    // Traffic in ticks of 100 ms; churn about once a second, a reconnect about every 2 s.
    let owed = 0;
    timers.push(setInterval(() => {
      owed += rate / 10;
      for (; owed >= 1; owed--) act(clients, rnd, traffic);
      if (rnd.next() < 0.1) churn(clients, rnd, traffic);
      if (rnd.next() < 0.05) {
        const c = clients[Math.floor(rnd.next() * clients.length)];
        if (c.ready) {
          traffic.reconnects++;
          c.close().then(() => stop.signal.aborted ? undefined : c.open()).catch(() => {});
        }
      }
    }, 100));
    let lastPrint = 0;
    while (elapsed() < seconds) {
      await new Promise((r) => setTimeout(r, Math.min(every, seconds - elapsed()) * 1000));
      await sampleOnce();
      const s = samples.at(-1)!;
      if (s.t - lastPrint >= 30 || elapsed() >= seconds) {
        lastPrint = s.t;
        print(
          `  ${s.t}s: RSS ${s.rssMB ?? "-"} MiB, heap ${s.heapUsedMB ?? "-"} MiB, ` +
            `${s.connections ?? "-"} connections, ${s.sent} frames sent`,
        );
      }
    }
  } finally {
    stop.abort();
    for (const t of timers) clearInterval(t);
    await Promise.all(clients.map((c) => c.close()));
    await stalled;
    await server?.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  const warmupSeconds = round(seconds * WARM_SHARE, 1);
  const { rss, heap, external } = summarize(samples, warmupSeconds);
  return {
    date: new Date().toISOString(),
    seconds,
    warmupSeconds,
    clients: count,
    rate,
    machine: { cores: navigator.hardwareConcurrency, loadavg: load, deno: Deno.version.deno },
    heapSource,
    traffic: {
      messages: traffic.messages,
      edits: traffic.edits,
      reactions: traffic.reactions,
      joins: traffic.joins,
      leaves: traffic.leaves,
      reconnects: traffic.reconnects,
      stalledConnects: traffic.stalledConnects,
      slowConsumerCloses: slow,
      errors: traffic.errors,
    },
    samples,
    rss,
    heap,
    external,
    verdict: rss?.verdict ?? "unknown",
  };
}

/** The report as text: about ten samples spread over the run, then the fits. */
export function soakTable(report: SoakReport): string {
  const lines = ["     t s   RSS MiB  heap MiB  heap tot  external  conns    frames"];
  const step = Math.max(1, Math.ceil(report.samples.length / 10));
  const shown = report.samples.filter((_, i, all) => i % step === 0 || i === all.length - 1);
  for (const s of shown) {
    lines.push(
      [s.t, s.rssMB, s.heapUsedMB, s.heapTotalMB, s.externalMB, s.connections, s.sent]
        .map((v, i) => String(v ?? "-").padStart(i === 0 ? 8 : i === 5 ? 6 : 9)).join(" "),
    );
  }
  lines.push("");
  const describe = (what: string, f: SoakFit | null) =>
    f
      ? `${what}: ${f.startMB} -> ${f.endMB} MiB after warm-up (min ${f.minMB}, max ${f.maxMB}), ` +
        `slope ${f.slopeMBPerMin} MiB/min over ${f.n} samples, of the floors of ` +
        `${f.windows} windows ${f.floorSlopeMBPerMin} (flat under ${f.thresholdMBPerMin}): ` +
        f.verdict
      : `${what}: not enough samples`;
  lines.push(describe("RSS ", report.rss));
  lines.push(
    report.heapSource ? describe("heap", report.heap) : "heap: /metrics unreadable, RSS only",
  );
  if (report.external) lines.push(describe("ext ", report.external));
  const t = report.traffic;
  lines.push(
    `traffic: ${t.messages} messages, ${t.edits} edits, ${t.reactions} reactions, ` +
      `${t.joins} joins/leaves, ${t.reconnects} reconnects, stalled reader connected ` +
      `${t.stalledConnects} times, ${t.slowConsumerCloses ?? "-"} slow-consumer closes; ` +
      `errors ${JSON.stringify(t.errors)}`,
    `load average at start: ${report.machine.loadavg?.join(" ") ?? "-"} ` +
      `(${report.machine.cores} cores); warm-up ${report.warmupSeconds}s`,
  );
  return lines.join("\n");
}

/**
 * `deno task bench --soak DURATION [--clients N] [--rate N] [--out FILE]`:
 * runs the soak, prints the table and writes the JSON. Resolves the report.
 */
export async function soakMain(args: string[], start: StartServer): Promise<SoakReport> {
  const { values } = parseArgs({
    args,
    options: {
      soak: { type: "string" },
      clients: { type: "string", default: "200" },
      rate: { type: "string", default: "50" },
      out: { type: "string", default: `${ROOT}/bench/results/soak-latest.json` },
    },
    strict: true,
    allowPositionals: false,
  });
  const seconds = parseDuration(values.soak ?? "");
  const clients = Number(values.clients), rate = Number(values.rate);
  if (!Number.isInteger(clients) || clients < 2) {
    throw new RangeError(`Invalid --clients "${values.clients}": use a whole number from 2`);
  }
  if (!(rate > 0)) throw new RangeError(`Invalid --rate "${values.rate}": use a positive number`);
  print(`Soak: ${seconds}s, ${clients} clients, ${rate} frames/s, one stalled reader`);
  const report = await runSoak(start, { seconds, clients, rate });
  print();
  print(soakTable(report));
  await Deno.mkdir(values.out.replace(/\/[^/]*$/, ""), { recursive: true });
  await Deno.writeTextFile(values.out, JSON.stringify(report, null, 2) + "\n");
  print(`\nWrote ${values.out}`);
  return report;
}
