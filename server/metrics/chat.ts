/**
 * The chat server's metrics (`--metrics`): what each one counts, the hooks
 * that count them on the hot path (see `meter.ts`), the store timing, the
 * samplers (event-loop lag, Redis round trip) and the values read at scrape
 * time (connections, memory). docs/operations.md lists every metric.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { type ClientFrame, CloseCode, utf8Length } from "../../protocol.ts";
import type { Store } from "../store/store.ts";
import type { HubMeter, OutboxMeter } from "./meter.ts";
import { type HistogramSeries, Registry, type Series } from "./metrics.ts";

/** Every client frame type, as the `type` label of `chat_frames_received_total` spells it. */
const FRAME_TYPES = [
  "auth",
  "register",
  "join",
  "leave",
  "rooms",
  "send",
  "edit",
  "delete",
  "react",
  "typing",
  "history",
  "read",
  "search",
  "ping",
  "users",
  "topic",
  "passwd",
  "read_all",
  "members",
  "ban",
  "unban",
  "kick",
  "invite",
  "room_settings",
  "rename_room",
  "visible",
  "push_subscribe",
  "push_unsubscribe",
  "notify_level",
] as const satisfies readonly ClientFrame["type"][];

// A frame type added to the protocol but not above fails to type-check here.
const _allTypes: [Exclude<ClientFrame["type"], typeof FRAME_TYPES[number]>] extends [never] ? true
  : false = true;

/** The `reason` label of `chat_server_closes_total`, by close code. */
const CLOSE_REASONS: Record<number, string> = {
  [CloseCode.GoingAway]: "going_away",
  [CloseCode.NotAuthenticated]: "not_authenticated",
  [CloseCode.BadFrame]: "bad_frame",
  [CloseCode.AuthFailed]: "auth_failed",
  [CloseCode.SlowConsumer]: "slow_consumer",
  [CloseCode.NameTaken]: "name_taken",
  [CloseCode.Banned]: "banned",
  [CloseCode.RateLimited]: "rate_limited",
};

/** The `reason` label of `chat_sign_in_failures_total`: the error codes a refused sign-in gets. */
const SIGN_IN_FAILURES = [
  "auth_failed",
  "name_taken",
  "signup_disabled",
  "bad_request",
  "rate_limited",
  "banned",
  "unavailable",
] as const;

/** Store methods that write, and the `op` label they are timed under. */
const STORE_WRITES = [
  ["append", "append"],
  ["appendOnce", "append"],
  ["appendAndPublish", "append"],
  ["change", "change"],
  ["changeAndPublish", "change"],
] as const;

/** Seconds: from 100 µs (memory, SQLite in WAL) to seconds (a Redis that stalls). */
const LATENCY_BUCKETS = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
];

/** What the gauges read at scrape time. */
export interface HubGauges {
  /** Open connections, signed in or not. */
  readonly connections: number;
  /** Users with a connection on this node. */
  readonly usersOnline: number;
  /** Rooms with a connection on this node. */
  readonly roomsRouted: number;
}

/** Options for {@link ChatMetrics}. */
export interface ChatMetricsOptions {
  /** The server's version, for `chat_build_info`. */
  version: string;
  /** Milliseconds between event-loop lag samples. @default {500} */
  lagInterval?: number;
  /** Milliseconds between Redis round-trip samples. @default {5000} */
  pingInterval?: number;
}

/** What {@link ChatMetrics.watchRedis} samples. */
export interface RedisProbe {
  /** Sends `PING` and resolves on its answer. */
  ping(): Promise<unknown>;
  /** Reconnections of this process's Redis connections so far. */
  reconnects(): number;
}

/** Every metric of one chat server, and the hooks that count them. */
export class ChatMetrics {
  /** The registry that renders them. */
  readonly registry = new Registry();
  /** Hooks for the hub and sign-in. */
  readonly hub: HubMeter;
  /** Hooks for the outbox. */
  readonly outbox: OutboxMeter;
  #hubSource: () => HubGauges | null = () => null;
  #redis: RedisProbe | null = null;
  #storeSeconds;
  #lag: HistogramSeries;
  #ping: HistogramSeries;
  #pingFailures: Series;
  #lagInterval: number;
  #pingInterval: number;
  #lagTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setTimeout> | undefined;
  #pinging = false;
  #running = false;

  /** Declares every metric; {@link start} starts the samplers. */
  constructor(options: ChatMetricsOptions) {
    this.#lagInterval = options.lagInterval ?? 500;
    this.#pingInterval = options.pingInterval ?? 5000;
    const r = this.registry;
    r.gauge({
      name: "chat_build_info",
      help: "Always 1; the server's version is in its label",
      labelNames: ["version"],
    }).labels(options.version).set(1);
    r.gauge({
      name: "chat_connections",
      help: "Open WebSocket connections, signed in or not",
      collect: (g) => g.set(this.#hubSource()?.connections ?? 0),
    });
    r.gauge({
      name: "chat_users_online",
      help: "Signed-in users with at least one connection to this node",
      collect: (g) => g.set(this.#hubSource()?.usersOnline ?? 0),
    });
    r.gauge({
      name: "chat_rooms_routed",
      help: "Rooms with at least one member connected to this node",
      collect: (g) => g.set(this.#hubSource()?.roomsRouted ?? 0),
    });
    this.hub = this.#hubMeter();
    this.outbox = this.#outboxMeter();
    this.#storeSeconds = r.histogram({
      name: "chat_store_commit_seconds",
      help:
        "Time the store took to keep a new message (append) or a change (edit, delete, reaction)",
      labelNames: ["op"],
      buckets: LATENCY_BUCKETS,
    });
    this.#storeSeconds.labels("append");
    this.#storeSeconds.labels("change");
    this.#lag = r.histogram({
      name: "chat_event_loop_lag_seconds",
      help: "How late a timer fired, sampled twice a second: time the event loop was busy",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    }).labels();
    this.#ping = r.histogram({
      name: "chat_redis_ping_seconds",
      help: "Round trip of a PING to Redis, sampled every 5 s (only with --redis)",
      buckets: LATENCY_BUCKETS,
    }).labels();
    this.#pingFailures = r.counter({
      name: "chat_redis_ping_failures_total",
      help: "PINGs to Redis that failed or timed out (only with --redis)",
    }).labels();
    r.counter({
      name: "chat_redis_reconnects_total",
      help: "Times a connection to Redis was lost and tried again (only with --redis)",
      collect: (c) => c.labels().set(this.#redis?.reconnects() ?? 0),
    });
    this.#processMetrics(r);
  }

  /** The hub whose connections the gauges report. */
  watchHub(source: () => HubGauges | null): void {
    this.#hubSource = source;
  }

  /** Samples the round trip to Redis from now on (`--redis`). */
  watchRedis(probe: RedisProbe): void {
    this.#redis = probe;
    if (this.#running && this.#pingTimer === undefined) this.#schedulePing();
  }

  /**
   * Times the store's writes (`chat_store_commit_seconds`) by wrapping its
   * write methods on this instance; the others are left as they are.
   */
  timeStore(store: Store): void {
    const target = store as unknown as Record<string, unknown>;
    for (const [method, op] of STORE_WRITES) {
      const fn = target[method];
      if (typeof fn !== "function") continue;
      const series = this.#storeSeconds.labels(op);
      target[method] = function timed(...args: unknown[]): Promise<unknown> {
        const start = performance.now();
        const done = () => series.observe((performance.now() - start) / 1000);
        return (fn.apply(store, args) as Promise<unknown>).then(
          (v) => {
            done();
            return v;
          },
          (err) => {
            done();
            throw err;
          },
        );
      };
    }
  }

  /** Starts the event-loop lag sampler (and the Redis one, once Redis is watched). */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#scheduleLag();
    if (this.#redis) this.#schedulePing();
  }

  /** Stops the samplers. */
  stop(): void {
    this.#running = false;
    clearTimeout(this.#lagTimer);
    clearTimeout(this.#pingTimer);
    this.#lagTimer = this.#pingTimer = undefined;
  }

  /** Every metric in the Prometheus text format. */
  render(): string {
    return this.registry.render();
  }

  #scheduleLag(): void {
    const interval = this.#lagInterval;
    const due = performance.now() + interval;
    this.#lagTimer = setTimeout(() => {
      this.#lag.observe(Math.max(0, performance.now() - due) / 1000);
      if (this.#running) this.#scheduleLag();
    }, interval);
    Deno.unrefTimer(this.#lagTimer);
  }

  #schedulePing(): void {
    this.#pingTimer = setTimeout(async () => {
      const redis = this.#redis;
      if (redis && !this.#pinging) {
        this.#pinging = true;
        const start = performance.now();
        try {
          await redis.ping();
          this.#ping.observe((performance.now() - start) / 1000);
        } catch {
          this.#pingFailures.inc();
        } finally {
          this.#pinging = false;
        }
      }
      if (this.#running) this.#schedulePing();
    }, this.#pingInterval);
    Deno.unrefTimer(this.#pingTimer);
  }

  /** The hub's hooks, each counting on a series resolved here, once. */
  #hubMeter(): HubMeter {
    const r = this.registry;
    const frames = r.counter({
      name: "chat_frames_received_total",
      help: 'Frames received from clients, by type ("other": not a valid frame)',
      labelNames: ["type"],
    });
    const byType = new Map<string, Series>(FRAME_TYPES.map((t) => [t, frames.labels(t)]));
    const otherType = frames.labels("other");
    const limited = r.counter({
      name: "chat_rate_limited_frames_total",
      help: "Frames refused because their connection sent faster than --rate and --burst allow",
    }).labels();
    const closes = r.counter({
      name: "chat_server_closes_total",
      help: "Connections the server closed, by reason (its close code)",
      labelNames: ["reason"],
    });
    const byCode = new Map<number, Series>(
      Object.entries(CLOSE_REASONS).map(([code, reason]) => [Number(code), closes.labels(reason)]),
    );
    const otherClose = closes.labels("other");
    const messages = r.counter({
      name: "chat_messages_sent_total",
      help: "Chat messages this node delivered to its connections (one per message)",
    }).labels();
    const deliveries = r.counter({
      name: "chat_message_deliveries_total",
      help: "Copies of chat messages queued to this node's connections (one per recipient)",
    }).labels();
    const signIns = r.counter({
      name: "chat_sign_ins_total",
      help: "Sign-ins that ended in a welcome (password, token, name or sign-up)",
    }).labels();
    const failures = r.counter({
      name: "chat_sign_in_failures_total",
      help: "Sign-ins refused, by the error code the client got",
      labelNames: ["reason"],
    });
    const byReason = new Map<string, Series>(
      SIGN_IN_FAILURES.map((reason) => [reason, failures.labels(reason)]),
    );
    return {
      frameIn: (type) => (byType.get(type) ?? otherType).value++,
      rateLimited: () => limited.value++,
      closed: (code) => (byCode.get(code) ?? otherClose).value++,
      message: (n) => {
        if (n === 0) return;
        messages.value++;
        deliveries.value += n;
      },
      signedIn: () => signIns.value++,
      signInFailed: (reason) => (byReason.get(reason) ?? failures.labels("other")).value++,
    };
  }

  /** The outbox's hook: frames, socket writes and bytes. */
  #outboxMeter(): OutboxMeter {
    const r = this.registry;
    const frames = r.counter({
      name: "chat_frames_sent_total",
      help: "Frames written to client sockets (every kind: messages, replies, presence…)",
    }).labels();
    const bytes = r.counter({
      name: "chat_sent_bytes_total",
      help: "UTF-8 bytes of the text written to client sockets (WebSocket framing not counted)",
    }).labels();
    const batches = r.histogram({
      name: "chat_batch_frames",
      help: "Frames per socket write (a batch); its _count is the number of writes",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    }).labels();
    // A fan-out writes the same string to every member: its length is counted once.
    let last = "";
    let lastBytes = 0;
    return {
      written(n, text) {
        frames.value += n;
        batches.observe(n);
        if (text !== last) {
          last = text;
          lastBytes = utf8Length(text);
        }
        bytes.value += lastBytes;
      },
    };
  }

  /** Memory, CPU and start time of this process, read at scrape time. */
  #processMetrics(r: Registry): void {
    let memory: Deno.MemoryUsage | null = null;
    r.beforeCollect(() => (memory = Deno.memoryUsage()));
    r.gauge({
      name: "process_resident_memory_bytes",
      help: "Resident set size of the process",
      collect: (g) => g.set(memory?.rss ?? 0),
    });
    r.gauge({
      name: "deno_heap_used_bytes",
      help: "V8 heap in use",
      collect: (g) => g.set(memory?.heapUsed ?? 0),
    });
    r.gauge({
      name: "deno_heap_total_bytes",
      help: "V8 heap reserved",
      collect: (g) => g.set(memory?.heapTotal ?? 0),
    });
    r.gauge({
      name: "deno_external_memory_bytes",
      help: "Memory of objects outside the V8 heap (buffers) that JavaScript holds",
      collect: (g) => g.set(memory?.external ?? 0),
    });
    r.counter({
      name: "process_cpu_seconds_total",
      help: "CPU time the process used, user and system",
      collect: (c) => {
        const { user, system } = cpuUsage();
        c.labels().set((user + system) / 1e6);
      },
    });
    r.gauge({
      name: "process_start_time_seconds",
      help: "When the process started, in seconds since the Unix epoch",
    }).set(Math.round(Date.now() / 1000 - performance.now() / 1000));
  }
}
