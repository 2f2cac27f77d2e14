/**
 * Connections to Redis for `--redis`: one clear error when Redis cannot be
 * reached at start, reconnection with capped backoff afterwards, commands
 * that fail at once (never queue) while the link is down, and Lua scripts.
 *
 * @module
 */
import { createClient } from "redis";

/** A node-redis client. */
export type RedisClient = ReturnType<typeof createClient>;

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

/** Why a connection failed, in words a user can act on. */
function describe(err: unknown): string {
  const e = err as { code?: string; message?: string } | undefined;
  switch (e?.code) {
    case "ECONNREFUSED":
      return "connection refused";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "unknown host";
    case "ETIMEDOUT":
      return "timed out";
  }
  return e?.message || String(err);
}

/**
 * Opens a client to `url`. The first connection is tried once: if Redis
 * cannot be reached the promise rejects with one sentence naming the URL and
 * what to check. Later drops are retried forever with backoff
 * (`min(50 ms × 2^n, maxBackoff)` plus jitter); meanwhile commands reject at
 * once instead of queueing.
 *
 * @throws {Error} `Cannot connect to Redis at "…": …` when the first connection fails.
 */
export async function connectRedis(
  url: string,
  options: ConnectOptions = {},
): Promise<RedisClient> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`Invalid Redis URL "${redactUrl(url)}": use redis://HOST:PORT`);
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") {
    throw new Error(
      `Invalid Redis URL "${redactUrl(url)}": the scheme must be redis:// or rediss://`,
    );
  }
  let connected = false;
  const maxBackoff = options.maxBackoff ?? 2000;
  const client = createClient({
    url,
    name: options.name,
    disableOfflineQueue: true,
    socket: {
      connectTimeout: options.connectTimeout ?? 10_000,
      reconnectStrategy: (retries: number) =>
        connected
          ? Math.min(50 * 2 ** retries, maxBackoff) + Math.floor(Math.random() * 50)
          : false,
    },
  });
  let first: unknown = null;
  client.on("error", (err: Error) => {
    if (connected) options.onError?.(err);
    else first ??= err;
  });
  const timeout = options.connectTimeout ?? 10_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${Math.round(timeout / 1000)} s`)),
          timeout,
        );
      }),
    ]);
  } catch (err) {
    if (client.isOpen) client.destroy();
    throw new Error(
      `Cannot connect to Redis at "${redactUrl(url)}": ${
        describe(first ?? err)
      }; check --redis (or REDIS_URL) and that Redis is running`,
    );
  } finally {
    clearTimeout(timer);
  }
  connected = true;
  return client;
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
          () => reject(new Error(`Redis did not answer within ${timeout} ms`)),
          timeout,
        );
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A Lua script. It is sent whole with EVAL every time (Redis caches the
 * compiled script): EVALSHA with a fallback to EVAL on NOSCRIPT would let a
 * retried call overtake later ones, and callers rely on commands running in
 * the order they were sent.
 */
export class Script {
  /** The Lua source. */
  readonly source: string;

  /** Wraps Lua source. */
  constructor(source: string) {
    this.source = source;
  }

  /** Runs the script with no keys and `args` as ARGV. */
  run(client: RedisClient, args: string[], timeout: number): Promise<Reply> {
    return command(client, ["EVAL", this.source, "0", ...args], timeout);
  }
}
