/**
 * Test helpers for `--redis`: a real `redis-server` on a free port (never the
 * machine's 6379) and chat nodes as separate `deno run main.ts` processes. The
 * proxy that cuts a node off from Redis is tests/tcp_proxy.ts.
 *
 * @module
 */
import { ChatProcess } from "./chat_process.ts";
import { DEADLINE, freePort, waitUntil } from "./helpers.ts";

/** A 32+ character secret shared by the nodes of a test. */
export const SECRET = "test-secret-0123456789-abcdefghijklmnop";

/** Collects a child's output as text, line by line. */
class Output {
  text = "";
  #done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#done = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of stream) this.text += decoder.decode(chunk, { stream: true });
    })().catch(() => {});
  }

  /** Resolves when the stream has ended. */
  done(): Promise<void> {
    return this.#done;
  }
}

/** Options for {@link RedisServer.start}. */
export interface RedisOptions {
  /** More redis-server arguments, e.g. `["--requirepass", "pw"]` (later ones win). */
  args?: string[];
}

/** A redis-server started for one test. */
export class RedisServer implements AsyncDisposable {
  /** Its port on 127.0.0.1. */
  readonly port: number;
  /** Its data directory (AOF files). */
  readonly dir: string;
  #args: string[];
  #proc: Deno.ChildProcess | null = null;
  #out: Output | null = null;

  private constructor(port: number, dir: string, args: string[]) {
    this.port = port;
    this.dir = dir;
    this.#args = args;
  }

  /** `redis://127.0.0.1:PORT` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /**
   * Starts redis-server with an append-only file fsynced on every write, so
   * a restart (even after SIGKILL) keeps everything it acknowledged.
   */
  static async start(options: RedisOptions = {}): Promise<RedisServer> {
    const r = await RedisServer.prepare(options);
    await r.restart();
    return r;
  }

  /**
   * A server with its port and data directory, not started yet: until
   * {@link restart}, connections to its port are refused.
   */
  static async prepare(options: RedisOptions = {}): Promise<RedisServer> {
    const dir = await Deno.makeTempDir({ prefix: "chat-redis-" });
    return new RedisServer(freePort(), dir, options.args ?? []);
  }

  /**
   * Starts (again) on the same port and data directory, and waits until it
   * is ready; with `ready: false`, only until the process runs (it may still
   * be loading its data: see {@link ping}).
   */
  async restart(options: { ready?: boolean } = {}): Promise<void> {
    if (this.#proc) throw new Error("redis-server is already running");
    this.#proc = new Deno.Command("redis-server", {
      args: [
        "--port",
        String(this.port),
        "--bind",
        "127.0.0.1",
        "--dir",
        this.dir,
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--protected-mode",
        "no",
        ...this.#args,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#out = new Output(this.#proc.stdout);
    this.#proc.stderr.cancel();
    if (options.ready === false) return;
    const out = this.#out;
    await waitUntil(
      () => out.text.includes("Ready to accept connections"),
      "redis-server is ready",
    );
  }

  /** Stops the server with `signal` and waits for it to exit. */
  async stop(signal: Deno.Signal = "SIGTERM"): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    this.#proc = null;
    try {
      proc.kill(signal);
    } catch {
      // Already gone.
    }
    await proc.status;
    await this.#out?.done();
  }

  /**
   * Sends PING on a new connection of its own, as raw RESP: resolves `PONG`,
   * or the error Redis answers instead (`LOADING Redis is loading…`); rejects
   * when nothing listens.
   */
  async ping(): Promise<string> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: this.port });
    try {
      await conn.write(new TextEncoder().encode("*1\r\n$4\r\nPING\r\n"));
      const decoder = new TextDecoder();
      const buf = new Uint8Array(1024);
      let text = "";
      while (!text.includes("\r\n")) {
        const n = await conn.read(buf);
        if (n === null) break;
        text += decoder.decode(buf.subarray(0, n), { stream: true });
      }
      return text.split("\r\n")[0].replace(/^[+-]/, "");
    } finally {
      conn.close();
    }
  }

  /** Runs one redis-cli command against the server. */
  async cli(...args: string[]): Promise<string> {
    const out = await new Deno.Command("redis-cli", {
      args: ["-p", String(this.port), ...args],
      stdout: "piped",
      stderr: "piped",
    }).output();
    return new TextDecoder().decode(out.stdout).trim();
  }

  /** Stops the server and removes its data. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop("SIGKILL");
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}

/** Options for {@link ChatNode.start}. */
export interface NodeOptions {
  /** Extra flags. */
  args?: string[];
  /** users.json path (missing = open mode). */
  users: string;
  /** Extra environment variables. */
  env?: Record<string, string>;
  /**
   * Wait until the node serves (`/healthz` answers 200), not only for its
   * banner, which a node waiting for Redis prints already. @default {true}
   */
  ready?: boolean;
}

/** A chat node: `deno run -A main.ts --redis URL …` as its own process. */
export class ChatNode implements AsyncDisposable {
  readonly #proc: ChatProcess;
  /** Port read from the banner. */
  port = 0;

  private constructor(proc: ChatProcess) {
    this.#proc = proc;
  }

  /** The child process. */
  get proc(): Deno.ChildProcess {
    return this.#proc.child;
  }

  /**
   * Starts a node (sharing `redisUrl`, or on its own when null) and waits for
   * its "listening on HOST:PORT" banner line (printed once the node serves,
   * or once it waits for a Redis that is not up yet), then until it serves
   * unless `options.ready` is false.
   */
  static async start(redisUrl: string | null, options: NodeOptions): Promise<ChatNode> {
    const node = new ChatNode(
      new ChatProcess([
        ...(redisUrl === null ? [] : ["--redis", redisUrl, "--secret", SECRET]),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--users",
        options.users,
        ...(options.args ?? []),
      ], { env: options.env }),
    );
    try {
      const banner = await node.#proc.waitFor(/listening on [^\s]+:(\d+)/, DEADLINE * 2);
      node.port = Number(/listening on [^\s]+:(\d+)/.exec(banner)![1]);
      if (options.ready !== false) {
        await waitUntil(
          async () => {
            if (node.#proc.exited) throw new Error(`Node exited before serving: ${node.output}`);
            return (await node.healthz()).code === 200;
          },
          "the node serves",
          DEADLINE * 2,
        );
      }
    } catch (err) {
      await node.kill("SIGKILL");
      throw err;
    }
    return node;
  }

  /** Everything the node printed so far. */
  get output(): string {
    return this.#proc.stdout + this.#proc.stderr;
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#proc.stderr;
  }

  /** `ws://127.0.0.1:PORT/ws` */
  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** `http://127.0.0.1:PORT` */
  get http(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** GET /healthz as JSON. */
  async health(): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.http}/healthz`);
    return await res.json();
  }

  /** GET /healthz: its HTTP status and JSON body. */
  async healthz(): Promise<{ code: number; body: Record<string, unknown> }> {
    const res = await fetch(`${this.http}/healthz`);
    return { code: res.status, body: await res.json() };
  }

  /** Sends `signal` and waits for the process to end. */
  kill(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    return this.#proc.kill(signal);
  }

  /** Stops the node (SIGTERM). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGTERM");
  }
}

/** A redis-server and nodes started for one test. */
export interface Cluster extends AsyncDisposable {
  redis: RedisServer;
  nodes: ChatNode[];
  /** Temporary directory (users.json lives here). */
  dir: string;
  users: string;
}

/**
 * Starts a redis-server and `count` nodes sharing it. `users` (name →
 * credential) are written to users.json first; without them the nodes run in
 * open mode.
 */
export async function startCluster(
  count: number,
  options: {
    users?: Record<string, string | { password: string; role: string }>;
    args?: string[];
  } = {},
): Promise<Cluster> {
  const dir = await Deno.makeTempDir({ prefix: "chat-cluster-" });
  const users = `${dir}/users.json`;
  if (options.users) await Deno.writeTextFile(users, JSON.stringify(options.users));
  const redis = await RedisServer.start();
  const nodes: ChatNode[] = [];
  const close = async () => {
    await Promise.all(nodes.map((n) => n.kill("SIGTERM")));
    await redis[Symbol.asyncDispose]();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  try {
    const started = await Promise.allSettled(
      Array.from({ length: count }, () => ChatNode.start(redis.url, { users, args: options.args })),
    );
    for (const s of started) if (s.status === "fulfilled") nodes.push(s.value);
    const failed = started.find((s) => s.status === "rejected");
    if (failed) throw (failed as PromiseRejectedResult).reason;
  } catch (err) {
    await close();
    throw err;
  }
  return { redis, nodes, dir, users, [Symbol.asyncDispose]: close };
}
