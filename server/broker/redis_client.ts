/**
 * Connections to Redis for `--redis`: waiting at start while Redis is not
 * there yet (unreachable, refusing connections, loading its data), one clear
 * error when it can never work (a refused password, an incompatible server),
 * reconnection with capped backoff afterwards, commands that fail at once
 * (never queue) while the link is down, and Lua scripts.
 *
 * @module
 */
import {
  ConnectionTimeoutError,
  createClient,
  ErrorReply,
  SocketClosedUnexpectedlyError,
  SocketTimeoutError,
} from "redis";
import { createHash } from "node:crypto";
import type { Logger } from "../log.ts";

/** A node-redis client. */
export type RedisClient = ReturnType<typeof createClient>;

/** The oldest Redis that has every command the scripts use (`SET … PXAT`, `ZRANGE … BYSCORE`). */
export const MIN_REDIS_VERSION = "6.2.0";

/** Replies of a Redis that cannot serve yet and will without anyone's help. */
const TRANSIENT_REPLIES = new Set(["LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN"]);

/** Socket errors of a Redis that is not there yet, or of a network that will come back. */
const TRANSIENT_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "ETIMEDOUT",
  "EPIPE",
  "EHOSTUNREACH",
  "EHOSTDOWN",
  "ENETUNREACH",
  "ENETDOWN",
  "EADDRNOTAVAIL",
  // An unknown host too: in a compose file or a cluster, the name of Redis
  // often resolves only once its container runs.
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/**
 * Redis cannot be used. `transient` says whether waiting may help (it is not
 * reachable yet, or is loading its data) or not (a wrong URL, a refused
 * password, an incompatible server). The message is one sentence for the
 * user; {@link RedisUnavailableError.reason} is its short cause.
 */
export class RedisUnavailableError extends Error {
  /** Whether the same attempt may succeed later without anyone changing anything. */
  readonly transient: boolean;
  /** The cause in a few words (`connection refused`), for log lines. */
  readonly reason: string;

  /** Builds the error. */
  constructor(message: string, options: RedisUnavailableOptions) {
    super(message, { cause: options.cause });
    this.name = "RedisUnavailableError";
    this.reason = options.reason;
    this.transient = options.transient;
  }
}

/** Options for {@link RedisUnavailableError}. */
export interface RedisUnavailableOptions {
  /** The cause in a few words, for log lines. */
  reason: string;
  /** Whether waiting may help. */
  transient: boolean;
  /** The error behind it. */
  cause?: unknown;
}

/** A command Redis did not answer in time. */
class RedisTimeoutError extends Error {}

/** The code of an error reply: `LOADING` of `LOADING Redis is loading…`. */
function replyCode(err: ErrorReply): string {
  return /^\S+/.exec(err.message)?.[0] ?? "";
}

/**
 * Whether waiting may cure `err`: Redis unreachable or refusing connections,
 * a command that timed out, or a reply saying it cannot serve yet (`LOADING`,
 * `BUSY`, `MASTERDOWN`, `TRYAGAIN`, `CLUSTERDOWN`). Other error replies (a
 * refused password, a missing permission, a read-only replica) and TLS
 * failures are not: they need someone to change something.
 */
export function isTransient(err: unknown): boolean {
  if (err instanceof RedisUnavailableError) return err.transient;
  if (err instanceof ErrorReply) return TRANSIENT_REPLIES.has(replyCode(err));
  if (
    err instanceof RedisTimeoutError || err instanceof ConnectionTimeoutError ||
    err instanceof SocketClosedUnexpectedlyError || err instanceof SocketTimeoutError
  ) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && TRANSIENT_CODES.has(code);
}

/** `redis://user:***@host:port/db`: the URL with any password hidden. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString().replace(/\/$/, "");
  } catch {
    return url.replace(/:[^:@/]*@/, ":***@");
  }
}

/** Why a connection or a command failed, in words a user can act on. */
export function describeError(err: unknown): string {
  if (err instanceof RedisUnavailableError) return err.reason;
  if (err instanceof ConnectionTimeoutError) return "timed out";
  if (err instanceof SocketClosedUnexpectedlyError) return "connection closed";
  const e = err as { code?: string; message?: string } | undefined;
  switch (e?.code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ECONNRESET":
      return "connection reset";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "unknown host";
    case "ETIMEDOUT":
      return "timed out";
  }
  // Redis ends some replies with a period: the sentence goes on after it here.
  return (e?.message || String(err)).replace(/\.$/, "");
}

/**
 * What makes a server unusable, from its answer to `HELLO` (RESP2: a flat
 * list of names and values), or null when it will do.
 */
export function incompatibility(hello: Reply): string | null {
  if (!Array.isArray(hello)) return null;
  const info = new Map<string, Reply>();
  for (let i = 0; i + 1 < hello.length; i += 2) info.set(String(hello[i]), hello[i + 1]);
  const version = String(info.get("version") ?? "");
  if (/^\d+(\.\d+)*$/.test(version) && olderThan(version, MIN_REDIS_VERSION)) {
    return `it is version ${version}: chat needs Redis ${MIN_REDIS_VERSION} or later`;
  }
  const mode = info.get("mode");
  if (mode !== undefined && mode !== "standalone") {
    return `it runs in ${mode} mode: chat needs a single Redis server (not Redis Cluster or Sentinel)`;
  }
  return null;
}

/** Whether dotted version `a` comes before `b`. */
function olderThan(a: string, b: string): boolean {
  const x = a.split(".").map(Number), y = b.split(".").map(Number);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    if ((x[i] ?? 0) !== (y[i] ?? 0)) return (x[i] ?? 0) < (y[i] ?? 0);
  }
  return false;
}

/** One sentence for a failure to start with Redis at `url`, saying whether waiting may help. */
function unavailable(url: string, err: unknown): RedisUnavailableError {
  if (err instanceof RedisUnavailableError) return err;
  const shown = redactUrl(url);
  const reason = describeError(err);
  const code = err instanceof ErrorReply ? replyCode(err) : "";
  if (code === "WRONGPASS" || /invalid password/i.test(reason)) {
    return new RedisUnavailableError(
      `Cannot connect to Redis at "${shown}": it refused the password (${reason}); check the password in --redis (or REDIS_URL)`,
      { reason, transient: false, cause: err },
    );
  }
  if (code === "NOAUTH") {
    // Its wording depends on the command that met it: say it one way.
    return new RedisUnavailableError(
      `Cannot connect to Redis at "${shown}": it requires a password (NOAUTH Authentication required); give it in --redis (or REDIS_URL): redis://:PASSWORD@HOST:PORT`,
      { reason: "NOAUTH Authentication required", transient: false, cause: err },
    );
  }
  if (/^Unknown RESP type/.test(reason)) {
    // Something else listens there: an HTTP server, a proxy.
    return new RedisUnavailableError(
      `Cannot use Redis at "${shown}": what answers there is not Redis (${reason}); check --redis (or REDIS_URL)`,
      { reason, transient: false, cause: err },
    );
  }
  if (isTransient(err)) {
    return new RedisUnavailableError(
      `Cannot connect to Redis at "${shown}": ${reason}; check --redis (or REDIS_URL) and that Redis is running`,
      { reason, transient: true, cause: err },
    );
  }
  return new RedisUnavailableError(
    `Cannot use Redis at "${shown}": ${reason}; check --redis (or REDIS_URL)`,
    { reason, transient: false, cause: err },
  );
}

/** Reconnections of every client {@link connectRedis} opened in this process. */
let reconnects = 0;

/** How many times the Redis connections of this process were lost and tried again (`/metrics`). */
export function redisReconnects(): number {
  return reconnects;
}

/** Options for {@link connectRedis}. */
export interface ConnectOptions {
  /** Connection name shown by `CLIENT LIST` (helps operators and tests). */
  name?: string;
  /** Milliseconds the first connection may take. @default {10000} */
  connectTimeout?: number;
  /** Longest wait between reconnection attempts, in milliseconds. @default {2000} */
  maxBackoff?: number;
  /** Called with each error after the first connection (the link dropped). */
  onError?: (err: Error) => void;
  /** Gives up connecting when aborted (the client is destroyed). */
  signal?: AbortSignal;
}

/**
 * Opens a client to `url` and checks that Redis can serve: it must accept
 * the password, be recent enough and answer `PING` (not `LOADING`). The first
 * connection is tried once; later drops are retried forever with backoff
 * (`min(50 ms × 2^n, maxBackoff)` plus jitter), and meanwhile commands reject
 * at once instead of queueing.
 *
 * @throws {RedisUnavailableError} one sentence naming the URL and what to
 * check; `transient` when retrying later may succeed (see {@link waitForRedis}).
 */
export async function connectRedis(
  url: string,
  options: ConnectOptions = {},
): Promise<RedisClient> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisUnavailableError(
      `Invalid Redis URL "${redactUrl(url)}": use redis://HOST:PORT`,
      { reason: "invalid URL", transient: false },
    );
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new RedisUnavailableError(
      `Invalid Redis URL "${redactUrl(url)}": the scheme must be redis:// or rediss://`,
      { reason: "invalid URL", transient: false },
    );
  }
  let connected = false;
  const maxBackoff = options.maxBackoff ?? 2000;
  const timeout = options.connectTimeout ?? 10_000;
  let client: RedisClient;
  try {
    client = createClient({
      url,
      name: options.name,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: timeout,
        reconnectStrategy: (retries: number) =>
          connected
            ? Math.min(50 * 2 ** retries, maxBackoff) + Math.floor(Math.random() * 50)
            : false,
      },
    });
  } catch (err) {
    // node-redis refuses what URL accepts, e.g. a database that is not a number.
    throw new RedisUnavailableError(
      `Invalid Redis URL "${redactUrl(url)}": ${describeError(err)}`,
      { reason: "invalid URL", transient: false },
    );
  }
  let first: unknown = null;
  client.on("reconnecting", () => reconnects++);
  client.on("error", (err: Error) => {
    if (connected) options.onError?.(err);
    else first ??= err;
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const stopped = Promise.withResolvers<never>();
  const stop = () => stopped.reject(new Error("stopped"));
  options.signal?.addEventListener("abort", stop, { once: true });
  try {
    if (options.signal?.aborted) stop();
    const connecting = client.connect();
    // It may still settle after the race is lost (the client is destroyed then).
    connecting.catch(() => {});
    await Promise.race([
      connecting,
      stopped.promise,
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new RedisTimeoutError(`no answer within ${Math.round(timeout / 1000)} s`)),
          timeout,
        );
      }),
    ]);
    const checking = probe(client, redactUrl(url), timeout);
    checking.catch(() => {});
    await Promise.race([checking, stopped.promise]);
  } catch (err) {
    if (client.isOpen) client.destroy();
    // The socket's own error says more than the failed handshake it caused.
    throw unavailable(url, err instanceof RedisUnavailableError ? err : first ?? err);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", stop);
  }
  connected = true;
  return client;
}

/**
 * Checks a new connection: `HELLO` (answered even while Redis loads) says
 * whether the server will do at all, `PING` whether it serves already.
 */
async function probe(client: RedisClient, shown: string, timeout: number): Promise<void> {
  let hello: Reply = null;
  try {
    hello = await command(client, ["HELLO"], timeout);
  } catch (err) {
    if (!(err instanceof ErrorReply)) throw err;
    // HELLO without arguments came with Redis 6.2.
    if (/unknown command|wrong number of arguments/i.test(err.message)) {
      const reason = `it is older than Redis ${MIN_REDIS_VERSION} (${describeError(err)})`;
      throw new RedisUnavailableError(`Cannot use Redis at "${shown}": ${reason}`, {
        reason,
        transient: false,
      });
    }
    // A user not allowed HELLO: nothing to learn from it, the commands below will tell.
    if (replyCode(err) !== "NOPERM") throw err;
  }
  const problem = incompatibility(hello);
  if (problem) {
    throw new RedisUnavailableError(`Cannot use Redis at "${shown}": ${problem}`, {
      reason: problem,
      transient: false,
    });
  }
  await command(client, ["PING"], timeout);
}

/** Options for {@link waitForRedis}. */
export interface WaitOptions {
  /** Where the waiting lines go. */
  log: Logger;
  /** Stops waiting: the promise resolves null. */
  signal?: AbortSignal;
  /** Called once, after the first attempt failed for a reason that may pass. */
  onWaiting?: (err: RedisUnavailableError) => void;
  /** Longest pause between attempts, in milliseconds. @default {2000} */
  maxBackoff?: number;
  /** Milliseconds between the lines that say the node is still waiting. @default {5000} */
  remindEvery?: number;
  /** The clock (tests move it). @default {Date.now} */
  now?: () => number;
}

/**
 * Runs `attempt` until it succeeds, for a node starting before Redis is
 * ready: failures that may pass (see {@link isTransient}) are retried with
 * capped backoff (`min(50 ms × 2^n, maxBackoff)` plus jitter). The first one
 * is logged with what the node waits for, then one line every `remindEvery`
 * ms, not one per attempt. Any other failure ends the wait.
 *
 * `attempt` gets a signal that aborts when the wait is stopped; it must then
 * give up and release what it opened.
 *
 * @returns what `attempt` resolved, or null when `signal` stopped the wait.
 * @throws {RedisUnavailableError} with one sentence, on a failure waiting will not cure.
 */
export async function waitForRedis<T>(
  url: string,
  attempt: (signal: AbortSignal) => Promise<T>,
  options: WaitOptions,
): Promise<T | null> {
  const { log, signal } = options;
  const now = options.now ?? Date.now;
  const maxBackoff = options.maxBackoff ?? 2000;
  const remindEvery = options.remindEvery ?? 5000;
  const shown = redactUrl(url);
  const since = now();
  let told = -Infinity;
  for (let n = 0;; n++) {
    if (signal?.aborted) return null;
    const each = new AbortController();
    const stop = () => each.abort();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      const value = await attempt(each.signal);
      if (n > 0) log.info(`Redis at "${shown}" answered after ${seconds(now() - since)}`);
      return value;
    } catch (err) {
      if (signal?.aborted) return null;
      const why = unavailable(url, err);
      if (!why.transient) throw why;
      const t = now();
      if (n === 0) {
        log.warn(
          `Waiting for Redis at "${shown}": ${why.reason}; retrying, and /healthz answers "starting" until it answers`,
        );
        options.onWaiting?.(why);
        told = t;
      } else if (t - told >= remindEvery) {
        log.warn(`Still waiting for Redis at "${shown}" (${seconds(t - since)}): ${why.reason}`);
        told = t;
      }
    } finally {
      signal?.removeEventListener("abort", stop);
    }
    const delay = Math.min(50 * 2 ** Math.min(n, 16), maxBackoff);
    await sleep(delay + Math.floor(Math.random() * Math.min(50, delay)), signal);
  }
}

/** `12 s` */
function seconds(ms: number): string {
  return `${Math.round(ms / 1000)} s`;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}

/** Closes a client: politely when connected, at once otherwise. */
export async function closeRedis(client: RedisClient): Promise<void> {
  if (client.isReady) {
    try {
      await client.close();
      return;
    } catch {
      // Fall through to destroy.
    }
  }
  if (client.isOpen) client.destroy();
}

/** A reply from Redis as node-redis gives it for raw commands (RESP2). */
export type Reply = string | number | null | Reply[];

/**
 * Sends a raw command; rejects after `timeout` ms so a caller never hangs on
 * a link that stopped answering.
 */
export async function command(
  client: RedisClient,
  args: string[],
  timeout: number,
): Promise<Reply> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      client.sendCommand(args) as Promise<Reply>,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new RedisTimeoutError(`Redis did not answer within ${timeout} ms`)),
          timeout,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Per client: how many times it (re)connected, so a script sent before a reconnection counts as unsent. */
const connections = new WeakMap<RedisClient, { n: number }>();

/** The connection count of `client` (listening for reconnections from the first call on). */
function connection(client: RedisClient): { n: number } {
  let state = connections.get(client);
  if (!state) {
    const fresh = { n: 0 };
    client.on("ready", () => fresh.n++);
    connections.set(client, fresh);
    state = fresh;
  }
  return state;
}

/**
 * A Lua script. The first call on a connection sends it whole with EVAL
 * (Redis compiles and caches it); later calls on that connection send only
 * its SHA-1 with EVALSHA. A connection runs commands in the order they were
 * sent, so the script is cached before any EVALSHA of it arrives, and calls
 * keep their order. Sending the source every time would cost throughput:
 * with `appendfsync always`, Redis syncs its file once per read of a socket,
 * so the bytes per call bound the calls per sync.
 *
 * A call that still meets NOSCRIPT (the first EVAL was refused before Redis
 * compiled it, e.g. `BUSY`, or an operator ran `SCRIPT FLUSH`) is sent
 * again whole; only then may it run after calls sent later.
 */
export class Script {
  /** The Lua source. */
  readonly source: string;
  /** Its SHA-1 (hex), as Redis names it. */
  readonly sha: string;
  /** Per client: its connection count when the source was last sent. */
  #sent = new WeakMap<RedisClient, number>();

  /** Wraps Lua source. */
  constructor(source: string) {
    this.source = source;
    this.sha = createHash("sha1").update(source).digest("hex");
  }

  /** Runs the script with no keys and `args` as ARGV. */
  async run(client: RedisClient, args: string[], timeout: number): Promise<Reply> {
    const n = connection(client).n;
    if (this.#sent.get(client) !== n) {
      this.#sent.set(client, n);
      return await command(client, ["EVAL", this.source, "0", ...args], timeout);
    }
    try {
      return await command(client, ["EVALSHA", this.sha, "0", ...args], timeout);
    } catch (err) {
      if (!(err instanceof ErrorReply) || replyCode(err) !== "NOSCRIPT") throw err;
      return await command(client, ["EVAL", this.source, "0", ...args], timeout);
    }
  }
}
