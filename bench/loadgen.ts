/**
 * The load generator: one process that opens many WebSocket clients against
 * the chat server or the bare relay, runs one scenario and prints its result
 * as one JSON line.
 *
 * It is built to be cheap per message so it is not the bottleneck: receivers
 * never parse JSON, they scan each frame for a marker (`~B<seq>~`) that the
 * sender put into the message text, so a batched frame (several messages
 * separated by `\n`) costs one `indexOf` per message. Send times live in a
 * ring indexed by sequence number. A reaction has no text to mark:
 * receivers find it by its message id and direction (`living`). CPU time of
 * this process and of the server is reported beside the results, so a
 * saturated load generator shows.
 *
 * Usage: `deno run -A bench/loadgen.ts '<spec JSON>'` (Deno lets a process read
 * /proc/<pid> only with --allow-all; every URL it connects to comes from the spec).
 *
 * @module
 */
import { cpuSeconds, cpuShare, Histogram, rssBytes } from "./stats.ts";
import { mib, RssSampler, uploadInWorker, type UploadOutcome, WARM_UP_BYTES } from "./upload.ts";

/** What to run, as passed by bench/run.ts. */
export interface Spec {
  /** `chat` speaks the chat protocol (sign in, join); `relay` just connects to `?room=`. */
  target: "chat" | "relay";
  /** WebSocket URLs of the server nodes; clients are spread over them. */
  urls: string[];
  /** Server process ids, for CPU and memory readings. */
  pids: number[];
  scenario: "fanout" | "rate" | "living" | "rooms" | "idle" | "search" | "signin" | "c100k";
  /** Receivers in the room (fanout, rate, living). */
  receivers?: number;
  /** Messages in flight at most (fanout). */
  inflight?: number;
  /** Messages per second (rate), or frames per second of every kind (living). */
  rate?: number;
  /** Clients (rooms), or connections (idle, signin, c100k). */
  clients?: number;
  /** Members per room (rooms); for signin, the room each user joins after general. */
  roomSize?: number;
  /**
   * Loopback source addresses the connections are spread over, 127.0.0.1 and
   * up (signin, c100k): one address has about 28,000 ephemeral ports to a server port.
   */
  sources?: number;
  /** Messages sent at once into the room when everyone is in (c100k). */
  messages?: number;
  /**
   * Milliseconds of each CPU reading while waiting for the servers to go
   * quiet (idle, signin, c100k): quiet is under 5 % of a core over one.
   * @default 500
   */
  quietMs?: number;
  /**
   * Milliseconds after the servers went quiet over which the lowest RSS is
   * taken as settled (idle, signin, c100k): what is left once the runtime
   * has handed back what the burst grew. @default 10000
   */
  settleMs?: number;
  /** Unmeasured seconds before the window. */
  warmup?: number;
  /** Measured seconds. */
  seconds?: number;
  /** Handshakes in progress at once while connecting. */
  concurrency?: number;
  /** Rooms filled with messages before searching (search). */
  rooms?: number;
  /** Messages sent into each of those rooms (search). */
  perRoom?: number;
  /**
   * Bytes of one file the sender uploads at the start of the window (fanout,
   * rate; chat only), streamed while the scenario's traffic goes on.
   */
  upload?: number;
}

/** What one scenario measured; fields that do not apply are absent. */
export interface Result {
  deliveries?: number;
  deliveriesPerSec?: number;
  sent?: number;
  /** Deliveries that never arrived (rate, living, rooms): should be 0. */
  missing?: number;
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  /** Edits and reactions sent during the window (living); `sent` counts every frame. */
  edits?: number;
  reactions?: number;
  /** Latency by kind of frame (living): new messages, edits, reactions. */
  messageP50Ms?: number;
  messageP99Ms?: number;
  editP50Ms?: number;
  editP99Ms?: number;
  reactionP50Ms?: number;
  reactionP99Ms?: number;
  /** Deliveries a receiver saw after a later frame of the same sender (living): should be 0. */
  reordered?: number;
  connections?: number;
  connsPerSec?: number;
  rssBaseMB?: number;
  rssMB?: number;
  rssPerConnKB?: number;
  /** RSS per connection once settled (the lowest over {@link Spec.settleMs} after quiet). */
  rssSettledPerConnKB?: number;
  /** Text received per connection while connecting and settling (idle, signin, c100k), in KB. */
  inPerConnKB?: number;
  /**
   * Time from opening a connection until it was ready (signed in and joined
   * for the chat) while connecting (idle, signin, c100k): p50, p99 and the slowest.
   */
  connectP50Ms?: number;
  connectP99Ms?: number;
  connectMaxMs?: number;
  /** Connections the server closed before the scenario did (signin, c100k): should be 0. */
  dropped?: number;
  /** Distinct source addresses of the connections, read from the kernel's socket table (with `sources`). */
  sourceAddresses?: number;
  /** Presence frames received once signed in, over all connections (c100k): presence was on. */
  presenceFrames?: number;
  /** Searches answered during the window (search). */
  searches?: number;
  searchP50Ms?: number;
  searchP99Ms?: number;
  /** Ping round trip before any search ran (search); p50Ms/p99Ms are during the searches. */
  idleP50Ms?: number;
  idleP99Ms?: number;
  /** Server RSS (summed over its processes) at the start of the window and its highest reading in it, in MiB (fanout, rate). */
  rssStartMB?: number;
  rssPeakMB?: number;
  /** With `upload`: the answer's HTTP status (201: stored), its size, duration and rate (10⁶ bytes/s). */
  uploadStatus?: number;
  uploadBytes?: number;
  uploadSeconds?: number;
  uploadMBps?: number;
  /** Server RSS in MiB when the upload started, its highest reading until it ended, and at the end of the window. */
  uploadRssBeforeMB?: number;
  uploadRssPeakMB?: number;
  uploadRssAfterMB?: number;
  /** Latency of the deliveries of messages sent while the upload was under way. */
  uploadDeliveries?: number;
  uploadP50Ms?: number;
  uploadP99Ms?: number;
  /** Share of one core used by the server(s) during the window. */
  serverCpu: number | null;
  /** Share of one core used by this load generator during the window. */
  loadgenCpu: number | null;
  seconds: number;
}

const MARK = "~B";
const FILLER = "~ the quick brown fox jumps over the lazy dog";
const RING = 1 << 16;
const MASK = RING - 1;
const CONNECT_TIMEOUT = 30_000;

function messageFrame(room: string, seq: number): string {
  return `{"type":"send","room":"${room}","text":"${MARK}${seq}${FILLER}"}`;
}

/** Calls `fn` with the sequence number of every marker in `data`. */
function scan(data: string, fn: (seq: number) => void): void {
  let i = data.indexOf(MARK);
  while (i !== -1) {
    let j = i + MARK.length, seq = 0, c = data.charCodeAt(j);
    while (c >= 48 && c <= 57) {
      seq = seq * 10 + c - 48;
      c = data.charCodeAt(++j);
    }
    fn(seq);
    i = data.indexOf(MARK, j);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Characters received by clients while connecting (welcome, joined, ...). */
let setupChars = 0;

/**
 * The token each chat user was welcomed with: a returning user signs in with
 * it, as a real client does (open mode keeps a name for the session holding it).
 */
const tokens = new Map<string, string>();

/** A client that has signed in and joined its room. */
type Client = WebSocket;

type Handler = (this: WebSocket, e: MessageEvent) => void;

/**
 * Deno's WebSocket constructor with its `client` option (an HTTP client, which
 * may set `localAddress`); the DOM types this project also loads hide it.
 */
const WebSocketVia = WebSocket as unknown as new (
  url: string,
  options: { client: Deno.HttpClient },
) => WebSocket;

/**
 * Opens one client; for the chat it signs in as `name` and joins `room`.
 * Resolves once the client is ready, with `onFrame` installed. A `client`
 * (an HTTP client with a `localAddress`) picks the connection's source address.
 */
function connect(
  spec: Spec,
  url: string,
  name: string,
  room: string,
  onFrame: Handler,
  client?: Deno.HttpClient,
) {
  return new Promise<Client>((resolve, reject) => {
    const to = spec.target === "relay" ? `${url}?room=${room}` : url;
    const ws = client ? new WebSocketVia(to, { client }) : new WebSocket(to);
    const timer = setTimeout(
      () => fail(new Error(`Client "${name}" not ready in time`)),
      CONNECT_TIMEOUT,
    );
    const fail = (err: Error) => {
      clearTimeout(timer);
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch { /* closing */ }
      reject(err);
    };
    const ready = () => {
      clearTimeout(timer);
      ws.onmessage = onFrame;
      ws.onclose = null;
      resolve(ws);
    };
    ws.onerror = () => {};
    ws.onclose = (e) =>
      fail(new Error(`Client "${name}" closed while connecting: ${e.code} ${e.reason}`));
    ws.onopen = () => {
      if (spec.target === "relay") return ready();
      const token = tokens.get(name);
      ws.send(JSON.stringify(token ? { type: "auth", token } : { type: "auth", username: name }));
    };
    let welcomed = false;
    ws.onmessage = (e) => {
      const data = e.data as string;
      setupChars += data.length;
      if (data.includes('"type":"error"')) {
        return fail(new Error(`Client "${name}" got an error: ${data.slice(0, 200)}`));
      }
      if (!welcomed && data.includes('"type":"welcome"')) {
        welcomed = true;
        const token = /"token":"([^"]+)"/.exec(data)?.[1];
        if (token) tokens.set(name, token);
        if (room === "general") return ready();
        ws.send(JSON.stringify({ type: "join", room }));
      }
      // A first sign-in may be told of general too: wait for this room's answer.
      if (welcomed && data.includes('"type":"joined"') && data.includes(`"room":"${room}"`)) {
        ready();
      }
    };
  });
}

/** Opens `n` clients with at most `concurrency` handshakes at a time. */
async function openAll(
  n: number,
  concurrency: number,
  open: (i: number) => Promise<Client>,
): Promise<Client[]> {
  const clients: Client[] = new Array(n);
  let next = 0;
  async function worker() {
    while (next < n) {
      const i = next++;
      clients[i] = await open(i);
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  return clients;
}

/** Closes every client and waits (briefly) for the closes to finish. */
async function closeAll(clients: Client[]): Promise<void> {
  await Promise.all(clients.map((ws) =>
    new Promise<void>((resolve) => {
      if (!ws || ws.readyState === WebSocket.CLOSED) return resolve();
      const t = setTimeout(resolve, 5000);
      ws.onclose = () => (clearTimeout(t), resolve());
      ws.onmessage = null;
      ws.close();
    })
  ));
}

/** CPU readings of the servers and this process, and the time. */
function sample(spec: Spec) {
  let server: number | null = 0;
  for (const pid of spec.pids) {
    const s = cpuSeconds(pid);
    server = s === null || server === null ? null : server + s;
  }
  return { t: performance.now(), server, self: cpuSeconds("self") };
}

function usage(spec: Spec, from: ReturnType<typeof sample>) {
  const to = sample(spec);
  const seconds = (to.t - from.t) / 1000;
  return {
    seconds: Math.round(seconds * 100) / 100,
    serverCpu: cpuShare(from.server, to.server, seconds),
    loadgenCpu: cpuShare(from.self, to.self, seconds),
  };
}

const ms = (us: number) => Math.round(us) / 1000;

/** p50 and p99 of `h` as `<prefix>P50Ms` and `<prefix>P99Ms`. */
function latencyAs(prefix: "upload", h: Histogram) {
  return { [`${prefix}P50Ms`]: ms(h.quantile(0.5)), [`${prefix}P99Ms`]: ms(h.quantile(0.99)) };
}

function latency(h: Histogram) {
  return { p50Ms: ms(h.quantile(0.5)), p99Ms: ms(h.quantile(0.99)), maxMs: ms(h.max) };
}

/** Lets setup traffic (joins, presence) settle before a window starts. */
async function settle(spec: Spec): Promise<void> {
  await delay(spec.warmup === 0 ? 200 : 1000);
}

/** Before a window with an upload: one small upload (see {@link WARM_UP_BYTES}). */
async function warmUpload(spec: Spec): Promise<void> {
  const token = tokens.get("sender");
  if (!spec.upload || !token) return;
  const { status, answer } = await uploadInWorker(spec.urls[0], token, WARM_UP_BYTES);
  if (status !== 201) throw new Error(`The warm-up upload failed: ${status} ${answer}`);
}

/**
 * The measured window's server memory and, when the spec asks for one, the
 * upload run during it: started with the window, as the sender (with the
 * token its welcome gave it). Deliveries of messages sent while the upload is
 * under way are timed apart.
 */
class Window {
  #spec: Spec;
  #rss: RssSampler;
  #start: number | null;
  #upload: Promise<UploadOutcome> | null = null;
  #uploadPeak: number | null = null;
  #from = Infinity;
  #to = Infinity;
  #during = new Histogram();

  constructor(spec: Spec) {
    this.#spec = spec;
    this.#rss = new RssSampler(spec.pids);
    this.#start = this.#rss.mark();
    if (!spec.upload) return;
    const token = tokens.get("sender");
    if (spec.target !== "chat" || !token) throw new Error("An upload needs the chat's sender");
    this.#from = performance.now();
    this.#upload = uploadInWorker(spec.urls[0], token, spec.upload).then((outcome) => {
      this.#to = outcome.endedAt;
      this.#uploadPeak = this.#rss.peak();
      return outcome;
    });
    // Awaited in finish(); a rejection meanwhile must not end the process.
    this.#upload.catch(() => {});
  }

  /** Times one delivery of a message sent at `sentAt` if the upload was under way then. */
  record(sentAt: number, us: number): void {
    if (sentAt >= this.#from && sentAt < this.#to) this.#during.record(us);
  }

  /** Waits for the upload (if any), stops sampling; resolves the window's fields. */
  async finish(): Promise<Partial<Result>> {
    const outcome = await this.#upload?.catch((err: Error) => {
      throw new Error(`The upload failed: ${err.message}`);
    });
    const peak = this.#rss.peak(), end = this.#rss.read();
    this.#rss.stop();
    const out: Partial<Result> = { rssStartMB: mib(this.#start), rssPeakMB: mib(peak) };
    if (!outcome) return out;
    if (outcome.status !== 201) {
      throw new Error(`The upload was refused: ${outcome.status} ${outcome.answer}`);
    }
    const seconds = (outcome.endedAt - outcome.startedAt) / 1000;
    return {
      ...out,
      uploadStatus: outcome.status,
      uploadBytes: outcome.bytes,
      uploadSeconds: Math.round(seconds * 1000) / 1000,
      uploadMBps: Math.round(outcome.bytes / 1e6 / seconds * 10) / 10,
      uploadRssBeforeMB: mib(this.#start),
      uploadRssPeakMB: mib(this.#uploadPeak),
      uploadRssAfterMB: mib(end),
      uploadDeliveries: this.#during.count,
      // No latency at all rather than 0 when no message went out during a (very short) upload.
      ...(this.#during.count > 0 ? latencyAs("upload", this.#during) : {}),
    };
  }

  /** Stops sampling without waiting (on failure). */
  stop(): void {
    this.#rss.stop();
  }
}

// ---------------------------------------------------------------------------
// Scenarios

/** One sender, `receivers` members, at most `inflight` messages not yet seen by every receiver. */
async function fanout(spec: Spec): Promise<Result> {
  const n = spec.receivers ?? 500, window = spec.inflight ?? 100;
  const room = "fan";
  const sentAt = new Float64Array(RING), got = new Uint32Array(RING);
  const hist = new Histogram();
  let seq = 0, inflight = 0, measuring = false, stopped = false, deliveries = 0, progress = 0;
  let sender: Client | null = null, window_: Window | null = null;
  const pump = () => {
    while (inflight < window && !stopped && sender) {
      const k = seq & MASK;
      got[k] = 0;
      sentAt[k] = performance.now();
      sender.send(messageFrame(room, seq++));
      inflight++;
    }
  };
  const onSeq = (now: number) => (s: number) => {
    const k = s & MASK;
    if (measuring) {
      deliveries++;
      const us = (now - sentAt[k]) * 1000;
      hist.record(us);
      window_?.record(sentAt[k], us);
    }
    if (++got[k] === n) {
      inflight--;
      progress++;
    }
  };
  function onFrame(e: MessageEvent) {
    scan(e.data as string, onSeq(performance.now()));
    if (inflight < window) pump();
  }
  const urls = spec.urls;
  const receivers = await openAll(
    n,
    spec.concurrency ?? 50,
    (i) => connect(spec, urls[i % urls.length], `r${i}`, room, onFrame),
  );
  sender = await connect(spec, urls[0], "sender", room, () => {});
  await warmUpload(spec);
  await settle(spec);
  pump();
  await watch(spec.warmup ?? 1, () => progress);
  measuring = true;
  const from = sample(spec);
  window_ = new Window(spec);
  let fields: Partial<Result>, u: ReturnType<typeof usage>;
  try {
    await watch(spec.seconds ?? 5, () => progress);
    measuring = false;
    u = usage(spec, from);
    // The traffic goes on until an upload that outlasts the window is done.
    fields = await window_.finish();
  } finally {
    window_.stop();
  }
  stopped = true;
  await closeAll([sender, ...receivers]);
  if (deliveries === 0) throw new Error("No message was delivered during the window");
  return {
    deliveries,
    deliveriesPerSec: Math.round(deliveries / u.seconds),
    sent: seq,
    ...latency(hist),
    ...fields,
    ...u,
  };
}

/** Waits `seconds`, failing when `progress` stops moving for 10 s. */
async function watch(seconds: number, progress: () => number): Promise<void> {
  const end = performance.now() + seconds * 1000;
  let last = progress(), lastAt = performance.now();
  while (performance.now() < end) {
    await delay(Math.min(100, Math.max(0, end - performance.now())));
    const p = progress();
    if (p !== last) (last = p, lastAt = performance.now());
    else if (performance.now() - lastAt > 10_000) {
      throw new Error("No message completed for 10 seconds: deliveries were lost");
    }
  }
}

/** One sender at a fixed rate into a room of `receivers`. */
async function rate(spec: Spec): Promise<Result> {
  const n = spec.receivers ?? 500, perSec = spec.rate ?? 50;
  const room = "fan";
  const sentAt = new Float64Array(RING);
  const hist = new Histogram();
  let measuring = false, deliveries = 0, measuredFrom = Infinity, measuredTo = Infinity;
  let window_: Window | null = null;
  const onSeq = (now: number) => (s: number) => {
    if (s >= measuredFrom && s < measuredTo) {
      deliveries++;
      const at = sentAt[s & MASK], us = (now - at) * 1000;
      hist.record(us);
      window_?.record(at, us);
    }
  };
  function onFrame(e: MessageEvent) {
    scan(e.data as string, onSeq(performance.now()));
  }
  const urls = spec.urls;
  const receivers = await openAll(
    n,
    spec.concurrency ?? 50,
    (i) => connect(spec, urls[i % urls.length], `r${i}`, room, onFrame),
  );
  const sender = await connect(spec, urls[0], "sender", room, () => {});
  await warmUpload(spec);
  await settle(spec);
  const warmup = spec.warmup ?? 1, seconds = spec.seconds ?? 5;
  const total = Math.round((warmup + seconds) * perSec);
  const start = performance.now();
  let seq = 0, from: ReturnType<typeof sample> | null = null;
  const expected = () => (measuredTo - measuredFrom) * n;
  let fields: Partial<Result>, u: ReturnType<typeof usage>;
  try {
    // Send every message whose time has come; timers may fire late, never early.
    while (seq < total) {
      const now = performance.now();
      while (seq < total && start + (seq * 1000) / perSec <= now) {
        if (!measuring && seq >= warmup * perSec) {
          measuring = true;
          measuredFrom = seq;
          from = sample(spec);
          window_ = new Window(spec);
        }
        sentAt[seq & MASK] = performance.now();
        sender.send(messageFrame(room, seq++));
      }
      measuredTo = seq;
      await delay(Math.max(0, start + (seq * 1000) / perSec - performance.now()));
    }
    u = usage(spec, from!);
    // Wait for the last deliveries (bounded), then for an upload that outlasts the window.
    const deadline = performance.now() + 10_000;
    while (deliveries < expected() && performance.now() < deadline) await delay(20);
    fields = await window_!.finish();
  } finally {
    window_?.stop();
  }
  await closeAll([sender, ...receivers]);
  return {
    deliveries,
    deliveriesPerSec: Math.round(deliveries / u.seconds),
    sent: measuredTo - measuredFrom,
    missing: expected() - deliveries,
    ...latency(hist),
    ...fields,
    ...u,
  };
}

/** Kinds of frame the `living` sender sends, as kept in its ring. */
const MESSAGE = 0, EDIT = 1, REACTION = 2;
/** One frame in this many is an edit or a reaction (living): a quarter of the traffic. */
const CHANGE_EVERY = 4;
/**
 * Starts a reaction as receivers see it: the chat's `reaction` frame and the
 * `react` frame the relay forwards unchanged.
 */
const REACT = '"type":"react';

/** A reaction's key: the message it is on and its direction (each happens once per message). */
function reactionKey(id: number, on: boolean): number {
  return id * 2 + (on ? 1 : 0);
}

/**
 * Calls `fn` with the sender's sequence number of every frame in `data`, in
 * the order they appear: a message or an edit by the marker in its text, a
 * reaction (which has no text to mark) by its message id and direction,
 * looked up in `reactions`. Still no JSON parsing: receivers stay cheap.
 */
function scanLiving(data: string, reactions: Map<number, number>, fn: (seq: number) => void) {
  let m = data.indexOf(MARK), r = data.indexOf(REACT);
  while (m !== -1 || r !== -1) {
    if (r === -1 || (m !== -1 && m < r)) {
      let j = m + MARK.length, seq = 0, c = data.charCodeAt(j);
      while (c >= 48 && c <= 57) {
        seq = seq * 10 + c - 48;
        c = data.charCodeAt(++j);
      }
      fn(seq);
      m = data.indexOf(MARK, j);
    } else {
      // The first "id" after the type is the frame's own: a room name never holds one.
      let j = data.indexOf('"id":', r) + 5, id = 0, c = data.charCodeAt(j);
      while (c >= 48 && c <= 57) {
        id = id * 10 + c - 48;
        c = data.charCodeAt(++j);
      }
      j = data.indexOf('"on":', j) + 5;
      const seq = reactions.get(reactionKey(id, data.charCodeAt(j) === 116 /* t */));
      if (seq !== undefined) fn(seq);
      r = data.indexOf(REACT, j);
    }
  }
}

/**
 * `rate` with living messages: one sender at `rate` frames per second into a
 * room of `receivers`, where every fourth frame changes one of its earlier
 * messages instead of sending a new one — an edit or a reaction, in turn. A
 * reaction is added to the newest message not reacted to yet and removed at
 * the next reaction turn. Every receiver's delivery of every frame is timed,
 * by kind; a frame a receiver sees after a later one of the sender counts as
 * reordered.
 *
 * The chat names messages by the id it assigns, which the sender learns from
 * its own copy of each message; the relay assigns none, so there the sender
 * uses its own sequence number as the id (the relay forwards the frames as
 * they are, and receivers find the same fields in them).
 */
async function living(spec: Spec): Promise<Result> {
  const n = spec.receivers ?? 500, perSec = spec.rate ?? 50;
  const room = "fan";
  const relay = spec.target === "relay";
  const sentAt = new Float64Array(RING), kindOf = new Uint8Array(RING);
  const reactions = new Map<number, number>();
  const hists = [new Histogram(), new Histogram(), new Histogram()], all = new Histogram();
  const delivered = [0, 0, 0], sentKinds = [0, 0, 0];
  let measuredFrom = Infinity, measuredTo = Infinity, reordered = 0;
  const lastSeen = new Float64Array(n).fill(-1);
  function receiver(me: number): Handler {
    return function (e: MessageEvent) {
      const now = performance.now();
      scanLiving(e.data as string, reactions, (s) => {
        if (s < lastSeen[me]) reordered++;
        else lastSeen[me] = s;
        if (s >= measuredFrom && s < measuredTo) {
          const k = s & MASK, kind = kindOf[k], us = (now - sentAt[k]) * 1000;
          delivered[kind]++;
          hists[kind].record(us);
          all.record(us);
        }
      });
    };
  }
  // Ids of the sender's messages that the chat has stored, oldest first.
  const confirmed: number[] = [];
  let senderError: string | null = null;
  function onSenderFrame(e: MessageEvent) {
    for (const line of (e.data as string).split("\n")) {
      if (line.startsWith('{"type":"message"')) {
        const id = /"id":(\d+)/.exec(line);
        if (id) confirmed.push(Number(id[1]));
      } else if (line.startsWith('{"type":"error"')) senderError ??= line.slice(0, 300);
    }
  }
  const urls = spec.urls;
  const receivers = await openAll(
    n,
    spec.concurrency ?? 50,
    (i) => connect(spec, urls[i % urls.length], `r${i}`, room, receiver(i)),
  );
  const sender = await connect(spec, urls[0], "sender", room, onSenderFrame);
  await settle(spec);
  let reactedOn: number | null = null, lastReacted = -1;
  /** The frame to send as number `seq`, and its kind. */
  const next = (seq: number): [number, string] => {
    const latest = confirmed.at(-1);
    if (seq % CHANGE_EVERY === CHANGE_EVERY - 1 && latest !== undefined) {
      if (Math.floor(seq / CHANGE_EVERY) % 2 === 0) {
        const text = `${MARK}${seq}~ edited${FILLER}`;
        return [EDIT, `{"type":"edit","room":"${room}","id":${latest},"text":"${text}"}`];
      }
      // Until a message has been confirmed, or a newer one than the last reacted to, a message goes.
      const id = reactedOn ?? (latest > lastReacted ? latest : null);
      if (id !== null) {
        const on = reactedOn === null;
        reactions.set(reactionKey(id, on), seq);
        if (on) reactedOn = lastReacted = id;
        else reactedOn = null;
        return [
          REACTION,
          `{"type":"react","room":"${room}","id":${id},"emoji":"👍","on":${on}}`,
        ];
      }
    }
    if (relay) confirmed.push(seq);
    return [MESSAGE, messageFrame(room, seq)];
  };
  const warmup = spec.warmup ?? 1, seconds = spec.seconds ?? 5;
  const total = Math.round((warmup + seconds) * perSec);
  const start = performance.now();
  let seq = 0, measuring = false, from: ReturnType<typeof sample> | null = null;
  // Send every frame whose time has come; timers may fire late, never early.
  while (seq < total && senderError === null) {
    const now = performance.now();
    while (seq < total && start + (seq * 1000) / perSec <= now) {
      if (!measuring && seq >= warmup * perSec) {
        measuring = true;
        measuredFrom = seq;
        from = sample(spec);
      }
      const [kind, frame] = next(seq);
      const k = seq & MASK;
      kindOf[k] = kind;
      if (measuring) sentKinds[kind]++;
      sentAt[k] = performance.now();
      sender.send(frame);
      seq++;
    }
    measuredTo = seq;
    await delay(Math.max(0, start + (seq * 1000) / perSec - performance.now()));
  }
  const u = usage(spec, from!);
  // Wait for the last deliveries (bounded).
  const expected = (measuredTo - measuredFrom) * n;
  const deliveries = () => delivered[0] + delivered[1] + delivered[2];
  const deadline = performance.now() + 10_000;
  while (deliveries() < expected && performance.now() < deadline && senderError === null) {
    await delay(20);
  }
  await closeAll([sender, ...receivers]);
  if (senderError !== null) throw new Error(`The sender got an error: ${senderError}`);
  const q = (h: Histogram, p: number) => ms(h.quantile(p));
  return {
    deliveries: deliveries(),
    deliveriesPerSec: Math.round(deliveries() / u.seconds),
    sent: measuredTo - measuredFrom,
    edits: sentKinds[EDIT],
    reactions: sentKinds[REACTION],
    missing: expected - deliveries(),
    reordered,
    ...latency(all),
    messageP50Ms: q(hists[MESSAGE], 0.5),
    messageP99Ms: q(hists[MESSAGE], 0.99),
    editP50Ms: q(hists[EDIT], 0.5),
    editP99Ms: q(hists[EDIT], 0.99),
    reactionP50Ms: q(hists[REACTION], 0.5),
    reactionP99Ms: q(hists[REACTION], 0.99),
    ...u,
  };
}

/** `clients` in rooms of `roomSize`, each sending one message a second. */
async function rooms(spec: Spec): Promise<Result> {
  const n = spec.clients ?? 1000, size = spec.roomSize ?? 10;
  const sentAt = new Float64Array(RING), senderOf = new Int32Array(RING);
  const hist = new Histogram();
  let deliveries = 0, measuredFrom = Infinity, measuredTo = Infinity;
  const handlers: Handler[] = [];
  function handler(me: number): Handler {
    return function (e: MessageEvent) {
      const now = performance.now();
      scan(e.data as string, (s) => {
        const k = s & MASK;
        if (senderOf[k] === me) return; // the sender's own copy (chat only)
        if (s >= measuredFrom && s < measuredTo) {
          deliveries++;
          hist.record((now - sentAt[k]) * 1000);
        }
      });
    };
  }
  const urls = spec.urls;
  const clients = await openAll(n, spec.concurrency ?? 50, (i) => {
    handlers[i] = handler(i);
    return connect(spec, urls[i % urls.length], `c${i}`, `r${Math.floor(i / size)}`, handlers[i]);
  });
  await settle(spec);
  const warmup = spec.warmup ?? 1, seconds = spec.seconds ?? 5;
  // Each client sends once a second, at its own phase in the second.
  const phase = clients.map((_, i) => (i * 1000) / n);
  const start = performance.now();
  let seq = 0, round = 0, next = 0, from: ReturnType<typeof sample> | null = null;
  const rounds = Math.round(warmup + seconds);
  while (round < rounds) {
    const now = performance.now();
    while (round < rounds && start + round * 1000 + phase[next] <= now) {
      if (from === null && round >= warmup) {
        from = sample(spec);
        measuredFrom = seq;
      }
      const k = seq & MASK;
      sentAt[k] = performance.now();
      senderOf[k] = next;
      clients[next].send(messageFrame(`r${Math.floor(next / size)}`, seq++));
      if (++next === n) (next = 0, round++);
    }
    measuredTo = seq;
    await delay(2);
  }
  const u = usage(spec, from!);
  const expected = (measuredTo - measuredFrom) * (size - 1);
  const deadline = performance.now() + 10_000;
  while (deliveries < expected && performance.now() < deadline) await delay(20);
  await closeAll(clients);
  return {
    deliveries,
    deliveriesPerSec: Math.round(deliveries / u.seconds),
    sent: measuredTo - measuredFrom,
    missing: expected - deliveries,
    ...latency(hist),
    ...u,
  };
}

/**
 * `clients` signed-in connections doing nothing. A first pass signs every
 * user in once and out again, so the measured pass is returning users (a
 * first sign-in joins the lobby, which every member is told about: `signin`
 * measures that).
 */
async function idle(spec: Spec): Promise<Result> {
  const n = spec.clients ?? 5000, concurrency = spec.concurrency ?? 200;
  const urls = spec.urls;
  const open = (i: number) => connect(spec, urls[i % urls.length], `i${i}`, "general", countText);
  // Warm-up: the same users once, a few at a time, each closed right away.
  await openAll(n, concurrency, async (i) => {
    const ws = await open(i);
    await closeAll([ws]);
    return ws;
  });
  const { clients, fields } = await storm(spec, n, concurrency, open);
  await closeAll(clients);
  return fields;
}

/**
 * `clients` users who were never seen before sign in, `concurrency` at a
 * time: each joins general (a first sign-in does that by itself) and, with
 * `roomSize`, then a room of that many. The relay just connects (to a room
 * of `roomSize`, or general). Names are new on every run: the server never
 * saw them, whatever it keeps.
 */
async function signin(spec: Spec): Promise<Result> {
  const n = spec.clients ?? 5000, size = spec.roomSize;
  const urls = spec.urls, prefix = freshPrefix();
  const room = (i: number) => (size ? `r${Math.floor(i / size)}` : "general");
  const via = sourceClients(spec);
  try {
    const { clients, fields } = await storm(
      spec,
      n,
      spec.concurrency ?? 200,
      newcomers(spec, prefix, via, room, () => countText),
    );
    if (via.length > 1) fields.sourceAddresses = sourceAddresses(urls);
    await closeAll(clients);
    return fields;
  } finally {
    for (const c of via) c?.close();
  }
}

/**
 * C100k: `clients` first-time users (as in `signin`) all in general, their
 * connections spread over `sources` loopback source addresses (one address
 * runs out of ephemeral ports near 28,000 connections); presence is
 * on (the server's default). Once everyone is in and the server is quiet,
 * the first client sends `messages` messages into general at once and every
 * other connection's copies are counted as they arrive: deliveries/s is
 * their number over the time from the first send to the last delivery.
 * Every process needs an open-file limit above `clients`.
 */
async function c100k(spec: Spec): Promise<Result> {
  const n = spec.clients ?? 100_000, k = spec.messages ?? 10;
  const urls = spec.urls, prefix = freshPrefix();
  const via = sourceClients(spec);
  let delivered = 0, lastAt = 0, presence = 0;
  const receive = (counts: boolean): Handler => (e) => {
    const data = e.data as string;
    heldChars += data.length;
    if (data.includes('"type":"presence"')) presence++;
    if (counts) {
      scan(data, () => delivered++);
      lastAt = performance.now();
    }
  };
  try {
    const { clients, fields } = await storm(
      spec,
      n,
      spec.concurrency ?? 200,
      // Client 0 sends: its own copies (the chat echoes) are not deliveries.
      newcomers(spec, prefix, via, () => "general", (i) => receive(i > 0)),
    );
    const addresses = sourceAddresses(urls);
    const expected = k * (n - 1), t0 = performance.now();
    for (let s = 0; s < k; s++) clients[0].send(messageFrame("general", s));
    // Until every copy is in, or none came for 10 s (then some are missing).
    let last = 0, lastProgress = performance.now();
    while (delivered < expected && performance.now() - lastProgress < 10_000) {
      await delay(5);
      if (delivered !== last) (last = delivered, lastProgress = performance.now());
    }
    const seconds = (lastAt - t0) / 1000;
    await closeAll(clients);
    return {
      ...fields,
      sourceAddresses: addresses,
      presenceFrames: presence,
      sent: k,
      deliveries: delivered,
      deliveriesPerSec: seconds > 0 ? Math.round(delivered / seconds) : 0,
      missing: expected - delivered,
    };
  } finally {
    for (const c of via) c?.close();
  }
}

/**
 * Opens client `i` as the never-seen user `${prefix}${i}`, into `room(i)`,
 * over the servers in turn and the source addresses of `via` in turn.
 */
function newcomers(
  spec: Spec,
  prefix: string,
  via: (Deno.HttpClient | undefined)[],
  room: (i: number) => string,
  onFrame: (i: number) => Handler,
): (i: number) => Promise<Client> {
  const urls = spec.urls;
  return (i) =>
    connect(spec, urls[i % urls.length], `${prefix}${i}`, room(i), onFrame(i), via[i % via.length]);
}

/**
 * One HTTP client per source address of `spec.sources` (127.0.0.1 and up),
 * for {@link connect}: the WebSocket API itself has no local-address option.
 * Without `sources`, one entry that leaves the choice to the kernel.
 */
function sourceClients(spec: Spec): (Deno.HttpClient | undefined)[] {
  if (!spec.sources) return [undefined];
  return Array.from(
    { length: spec.sources },
    (_, i) => Deno.createHttpClient({ localAddress: `127.0.0.${i + 1}` }),
  );
}

/** Text received by ready clients (idle, signin, c100k), beside {@link setupChars}. */
let heldChars = 0;
const countText: Handler = (e) => void (heldChars += (e.data as string).length);

/** A name prefix no earlier run used. */
function freshPrefix(): string {
  return `u${crypto.randomUUID().slice(0, 8)}-`;
}

/**
 * After the servers have quieted down, opens `n` clients with `open`,
 * `concurrency` handshakes at a time, and once the servers are quiet again
 * reads what the connections cost them: connections/s, RSS per connection,
 * text received per connection, and the servers' CPU while connecting.
 */
async function storm(
  spec: Spec,
  n: number,
  concurrency: number,
  open: (i: number) => Promise<Client>,
): Promise<{ clients: Client[]; fields: Result }> {
  needOpenFiles(spec, n);
  await quiet(spec);
  const rssBase = sumRss(spec);
  let dropped = 0;
  heldChars = setupChars = 0;
  const from = sample(spec);
  const t0 = performance.now();
  const took = new Histogram();
  const clients = await openAll(n, concurrency, async (i) => {
    const t = performance.now();
    const ws = await open(i);
    took.record((performance.now() - t) * 1000);
    // Closed by the server before the scenario closes it (a slow consumer, say).
    ws.onclose = () => void dropped++;
    return ws;
  });
  const connectSeconds = (performance.now() - t0) / 1000;
  const u = usage(spec, from);
  await quiet(spec);
  const rss = sumRss(spec);
  const settled = await settledRss(spec, rss);
  const received = heldChars + setupChars;
  const mb = (b: number | null) => (b === null ? undefined : Math.round(b / 1048576 * 10) / 10);
  const perConn = (b: number | null) =>
    b === null || rssBase === null ? undefined : Math.round((b - rssBase) / n / 1024 * 100) / 100;
  return {
    clients,
    fields: {
      connections: n,
      connsPerSec: Math.round(n / connectSeconds),
      rssBaseMB: mb(rssBase),
      rssMB: mb(rss),
      rssPerConnKB: perConn(rss),
      rssSettledPerConnKB: perConn(settled),
      inPerConnKB: Math.round(received / n / 1024 * 100) / 100,
      connectP50Ms: ms(took.quantile(0.5)),
      connectP99Ms: ms(took.quantile(0.99)),
      connectMaxMs: ms(took.max),
      dropped,
      ...u,
    },
  };
}

/** The soft open-file limit of a process, from /proc (null where it cannot be read). */
function openFileLimit(pid: number | "self"): number | null {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(
      Deno.readTextFileSync(`/proc/${pid}/limits`),
    );
    return m === null ? null : m[1] === "unlimited" ? Infinity : Number(m[1]);
  } catch {
    return null;
  }
}

/**
 * Fails early, saying why, when this process cannot hold `n` sockets or a
 * server its share of them (with room for the files a process opens anyway).
 */
function needOpenFiles(spec: Spec, n: number): void {
  for (const pid of ["self" as const, ...spec.pids]) {
    const need = (pid === "self" ? n : Math.ceil(n / spec.urls.length)) + 1000;
    const limit = openFileLimit(pid);
    if (limit === null || limit >= need) continue;
    const who = pid === "self" ? "the load generator" : `server process ${pid}`;
    throw new RangeError(
      `Cannot hold ${n} connections: ${who} may open ${limit} files, ${need} needed ` +
        "(raising the hard limit needs CAP_SYS_RESOURCE)",
    );
  }
}

/**
 * How many distinct source addresses this machine's established TCP
 * connections to the first server have, read from /proc/net/tcp: the proof
 * that the connections really were spread (0 where it cannot be read).
 */
function sourceAddresses(urls: string[]): number {
  const port = Number(new URL(urls[0]).port).toString(16).toUpperCase().padStart(4, "0");
  // 127.0.0.1 as the kernel writes it: the bytes of the address in host order (little-endian).
  const server = `0100007F:${port}`;
  let table: string;
  try {
    table = Deno.readTextFileSync("/proc/self/net/tcp");
  } catch {
    return 0;
  }
  const seen = new Set<string>();
  for (const line of table.split("\n")) {
    const f = line.trim().split(/\s+/);
    // sl, local address, remote address, state (01: established).
    if (f[2] === server && f[3] === "01") seen.add(f[1].slice(0, 8));
  }
  return seen.size;
}

function sumRss(spec: Spec): number | null {
  let total: number | null = 0;
  for (const pid of spec.pids) {
    const r = rssBytes(pid);
    total = r === null || total === null ? null : total + r;
  }
  return total;
}

/**
 * The lowest RSS of the servers over {@link Spec.settleMs} from now, read
 * every 250 ms, starting from `now` (null where it cannot be read). A
 * runtime hands memory back some seconds after a burst (V8's memory
 * reducer), which the reading right after quiet does not see.
 */
async function settledRss(spec: Spec, now: number | null): Promise<number | null> {
  if (now === null) return null;
  let lowest = now;
  const until = performance.now() + (spec.settleMs ?? 10_000);
  while (performance.now() < until) {
    await delay(250);
    const r = sumRss(spec);
    if (r === null) return null;
    lowest = Math.min(lowest, r);
  }
  return lowest;
}

/** Waits until the servers are nearly idle (at most 30 s): late broadcasts done, memory settled. */
async function quiet(spec: Spec): Promise<void> {
  const deadline = performance.now() + 30_000, step = spec.quietMs ?? 500;
  await delay(step);
  while (performance.now() < deadline) {
    const from = sample(spec);
    await delay(step);
    const { serverCpu } = usage(spec, from);
    if (serverCpu === null || serverCpu < 0.05) return;
  }
}

/** Seeded text: accents and Greek keep `toLowerCase` off its ASCII fast path, as in real chats. */
const SEED_TEXT =
  "Déploiement du café terminé, ΣΊΣΥΦΟΣ a relu la PR et tout est passé en production";

/**
 * Sends `frame` on a ready client and resolves once a frame holding `marker`
 * arrives; rejects on an error frame or after 30 s.
 */
function ask(ws: Client, frame: string, marker: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const before = ws.onmessage;
    const done = (err?: Error) => {
      clearTimeout(timer);
      ws.onmessage = before;
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(() => done(new Error(`No answer to ${frame.slice(0, 80)}`)), 30_000);
    ws.onmessage = (e) => {
      const data = e.data as string;
      if (data.includes(marker)) done();
      else if (data.includes('"type":"error"')) {
        done(new Error(`${frame.slice(0, 80)} got an error: ${data.slice(0, 200)}`));
      }
    };
    ws.send(frame);
  });
}

/** Sends `total` messages round-robin into `rooms`, at most 500 unacknowledged. */
function seed(ws: Client, rooms: string[], total: number): Promise<void> {
  return new Promise((resolve, reject) => {
    let sent = 0, echoed = 0, lastEcho = performance.now();
    const stall = setInterval(() => {
      if (performance.now() - lastEcho < 10_000) return;
      clearInterval(stall);
      reject(new Error(`Seeding stalled after ${echoed} of ${total} messages`));
    }, 1000);
    const pump = () => {
      while (sent < total && sent - echoed < 500) {
        const room = rooms[sent % rooms.length];
        ws.send(`{"type":"send","room":"${room}","text":"${MARK}${sent++}~ ${SEED_TEXT}"}`);
      }
    };
    // The sender's own copy of each message is its acknowledgement.
    ws.onmessage = (e) => {
      scan(e.data as string, () => echoed++);
      lastEcho = performance.now();
      if ((e.data as string).includes('"type":"error"')) {
        clearInterval(stall);
        return reject(new Error(`Seeding got an error: ${(e.data as string).slice(0, 200)}`));
      }
      if (echoed < total) return pump();
      clearInterval(stall);
      ws.onmessage = null;
      resolve();
    };
    pump();
  });
}

/** Pings one after another (a few ms apart) until `stop()` is true. */
async function pingLoop(ws: Client, hist: Histogram, stop: () => boolean): Promise<void> {
  while (!stop()) {
    const t0 = performance.now();
    await ask(ws, '{"type":"ping"}', '"type":"pong"');
    hist.record((performance.now() - t0) * 1000);
    await delay(2);
  }
}

/**
 * One member of `rooms` rooms fills them with `perRoom` messages each, then
 * searches them for a word no message holds, one search after another; a
 * second client pings meanwhile. The ping round trip is the delay every
 * other user sees while searches run.
 */
async function search(spec: Spec): Promise<Result> {
  const rooms = Array.from({ length: spec.rooms ?? 50 }, (_, i) => `s${i}`);
  const url = spec.urls[0];
  const seeker = await connect(spec, url, "seeker", "general", () => {});
  for (const room of rooms) {
    await ask(seeker, JSON.stringify({ type: "join", room }), '"type":"joined"');
  }
  await seed(seeker, rooms, rooms.length * (spec.perRoom ?? 2000));
  // On the node that searches: its event loop is the one under test.
  const pinger = await connect(spec, url, "pinger", "general", () => {});
  await settle(spec);
  const query = JSON.stringify({ type: "search", q: "zzyzx-nowhere", limit: 50 });
  const searchOnce = () => ask(seeker, query, '"type":"search"');
  const idle = new Histogram();
  let stopped = false;
  const idleEnd = performance.now() + (spec.warmup ?? 1) * 1000;
  await pingLoop(pinger, idle, () => performance.now() >= idleEnd);
  // Warm-up: the first scans also compile the code that runs them.
  for (let i = 0; i < 2; i++) await searchOnce();
  const pings = new Histogram(), searches = new Histogram();
  const from = sample(spec);
  const end = performance.now() + (spec.seconds ?? 5) * 1000;
  const pinging = pingLoop(pinger, pings, () => stopped);
  while (performance.now() < end) {
    const t0 = performance.now();
    await searchOnce();
    searches.record((performance.now() - t0) * 1000);
  }
  stopped = true;
  await pinging;
  const u = usage(spec, from);
  await closeAll([seeker, pinger]);
  return {
    searches: searches.count,
    searchP50Ms: ms(searches.quantile(0.5)),
    searchP99Ms: ms(searches.quantile(0.99)),
    ...latency(pings),
    idleP50Ms: ms(idle.quantile(0.5)),
    idleP99Ms: ms(idle.quantile(0.99)),
    ...u,
  };
}

const SCENARIOS = { fanout, rate, living, rooms, idle, search, signin, c100k };

/** Runs one scenario. */
export function runScenario(spec: Spec): Promise<Result> {
  return SCENARIOS[spec.scenario](spec);
}

if (import.meta.main) {
  const spec = JSON.parse(Deno.args[0]) as Spec;
  try {
    const result = await runScenario(spec);
    // deno-lint-ignore no-console
    console.log(JSON.stringify({ ok: true, result }));
    Deno.exit(0);
  } catch (err) {
    // deno-lint-ignore no-console
    console.log(JSON.stringify({ ok: false, error: (err as Error).message }));
    Deno.exit(1);
  }
}
