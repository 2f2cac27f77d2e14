/**
 * Test helpers for `--redis`: a real `redis-server` on a free port (never the
 * machine's 6379), chat nodes as separate `deno run main.ts` processes, and a
 * TCP proxy that can cut one node off from Redis.
 *
 * @module
 */
import { DEADLINE, freePort, waitUntil } from "./helpers.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

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
  readonly proc: Deno.ChildProcess;
  #stdout: Output;
  #stderr: Output;
  /** Port read from the banner. */
  port = 0;

  private constructor(proc: Deno.ChildProcess) {
    this.proc = proc;
    this.#stdout = new Output(proc.stdout);
    this.#stderr = new Output(proc.stderr);
  }

  /**
   * Starts a node (sharing `redisUrl`, or on its own when null) and waits for
   * its "listening on HOST:PORT" banner line (printed once the node serves,
   * or once it waits for a Redis that is not up yet), then until it serves
   * unless `options.ready` is false.
   */
  static async start(redisUrl: string | null, options: NodeOptions): Promise<ChatNode> {
    const proc = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN,
        ...(redisUrl === null ? [] : ["--redis", redisUrl, "--secret", SECRET]),
        "--port",
        "0",
        "--host",
        "127.0.0.1",
        "--users",
        options.users,
        ...(options.args ?? []),
      ],
      env: { NO_COLOR: "1", ...options.env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const node = new ChatNode(proc);
    let exited = false;
    proc.status.then(() => (exited = true));
    try {
      const m = await waitUntil(
        () => {
          if (exited) throw new Error(`Node exited before listening: ${node.output}`);
          return /listening on [^\s]+:(\d+)/.exec(node.#stdout.text);
        },
        "the node prints its banner",
        DEADLINE * 2,
      );
      node.port = Number(m[1]);
      if (options.ready !== false) {
        await waitUntil(
          async () => {
            if (exited) throw new Error(`Node exited before serving: ${node.output}`);
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
    return this.#stdout.text + this.#stderr.text;
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#stderr.text;
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
  async kill(signal: Deno.Signal = "SIGTERM"): Promise<Deno.CommandStatus> {
    try {
      this.proc.kill(signal);
    } catch {
      // Already gone.
    }
    const status = await this.proc.status;
    await Promise.all([this.#stdout.done(), this.#stderr.done()]);
    return status;
  }

  /** Stops the node (SIGTERM). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGTERM");
  }
}

/**
 * A TCP proxy in front of Redis for one node: {@link cut} drops its
 * connections and refuses new ones until {@link restore}, like a network
 * partition between that node and Redis.
 */
export class TcpProxy implements AsyncDisposable {
  readonly port: number;
  #listener: Deno.TcpListener;
  #target: number;
  #open = new Set<Deno.TcpConn>();
  #down = false;
  #accepting: Promise<void>;
  #pipes = new Set<Promise<void>>();

  /** Listens on a free port and forwards to `target` on 127.0.0.1. */
  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#accepting = this.#accept();
  }

  /** `redis://127.0.0.1:PORT` */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  async #accept(): Promise<void> {
    for await (const conn of this.#listener) {
      if (this.#down) {
        conn.close();
        continue;
      }
      const p = this.#pipe(conn);
      this.#pipes.add(p);
      p.finally(() => this.#pipes.delete(p));
    }
  }

  async #pipe(client: Deno.TcpConn): Promise<void> {
    let server: Deno.TcpConn;
    try {
      server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
    } catch {
      client.close();
      return;
    }
    this.#open.add(client);
    this.#open.add(server);
    const copy = async (from: Deno.TcpConn, to: Deno.TcpConn) => {
      try {
        await from.readable.pipeTo(to.writable, { preventClose: true, preventAbort: true });
      } catch {
        // Closed by cut() or by the other side.
      }
    };
    const both = [copy(client, server), copy(server, client)];
    await Promise.race(both);
    for (const c of [client, server]) {
      if (this.#open.delete(c)) {
        try {
          c.close();
        } catch {
          // Already closed.
        }
      }
    }
    await Promise.allSettled(both);
  }

  /** Drops every connection and refuses new ones. */
  cut(): void {
    this.#down = true;
    for (const c of this.#open) {
      try {
        c.close();
      } catch {
        // Already closed.
      }
    }
    this.#open.clear();
  }

  /** Accepts connections again. */
  restore(): void {
    this.#down = false;
  }

  /** Stops listening and closes everything. */
  async [Symbol.asyncDispose](): Promise<void> {
    this.cut();
    this.#listener.close();
    await this.#accepting.catch(() => {});
    await Promise.allSettled([...this.#pipes]);
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
  options: { users?: Record<string, string>; args?: string[] } = {},
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
