/**
 * The processes of one chaos schedule and the faults done to them: one
 * `main.ts` node (memory or `--data` SQLite), or two or three nodes sharing a
 * real `redis-server` (AOF, `appendfsync always`), each through a TCP proxy
 * that can cut its Redis link. Every fault heals itself before it returns.
 *
 * @module
 */
import { ChatProcess } from "../chat_process.ts";
import { freePort } from "../helpers.ts";
import { SECRET } from "../redis_helpers.ts";
import { TcpProxy } from "../tcp_proxy.ts";
import type { Recorder } from "./history.ts";
import type { Rng } from "./prng.ts";

/** Where history lives. */
export type Mode = "memory" | "sqlite" | "redis";

/** The accounts of a schedule (users.json): the first is an admin. */
export const ACCOUNTS: Readonly<Record<string, string | { password: string; role: "admin" }>> = {
  ann: { password: "ann-pass-1", role: "admin" },
  ben: "ben-pass-1",
  cat: "cat-pass-1",
  dan: "dan-pass-1",
  zaudit: "zaudit-pass",
};

/** The password of `user` in {@link ACCOUNTS}. */
export function passwordOf(user: string): string {
  const a = ACCOUNTS[user];
  return typeof a === "string" ? a : a.password;
}

/** The faults each mode gets (a node's in-memory history cannot survive `kill -9`). */
export const FAULTS: Record<Mode, readonly string[]> = {
  memory: ["pause-node"],
  sqlite: ["pause-node", "kill-node"],
  redis: ["pause-node", "kill-node", "pause-redis", "restart-redis", "cut-link"],
};

const READY_MS = 30_000;

/** A redis-server whose process the schedule may pause, kill and restart. */
class Redis {
  readonly port = freePort();
  readonly dir: string;
  #proc: Deno.ChildProcess | null = null;
  #out = "";
  #reading: Promise<void> = Promise.resolve();

  constructor(dir: string) {
    this.dir = dir;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get child(): Deno.ChildProcess | null {
    return this.#proc;
  }

  async start(): Promise<void> {
    this.#out = "";
    const proc = new Deno.Command("redis-server", {
      args: [
        ...["--port", String(this.port), "--bind", "127.0.0.1", "--dir", this.dir],
        ...["--save", "", "--appendonly", "yes", "--appendfsync", "always"],
        ...["--protected-mode", "no"],
      ],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    this.#proc = proc;
    this.#reading = (async () => {
      const d = new TextDecoder();
      for await (const c of proc.stdout) this.#out += d.decode(c, { stream: true });
    })().catch(() => {});
    await until(() => this.#out.includes("Ready to accept connections"), "redis-server is ready");
  }

  async kill(): Promise<void> {
    const proc = this.#proc;
    if (!proc) return;
    this.#proc = null;
    signal(proc, "SIGCONT");
    signal(proc, "SIGKILL");
    await proc.status;
    await this.#reading;
  }
}

/** A chat node and how to start it again. */
class Node {
  proc: ChatProcess | null = null;
  port: number | null = null;
  readonly args: string[];

  constructor(args: string[]) {
    this.args = args;
  }

  async start(): Promise<void> {
    const proc = new ChatProcess(this.args, { env: { NO_COLOR: "1" } });
    this.proc = proc;
    try {
      const banner = await proc.waitFor(/listening on [^\s]+:(\d+)/, READY_MS);
      const port = Number(/listening on [^\s]+:(\d+)/.exec(banner)![1]);
      await until(async () => await healthy(port), "the node serves", () => proc.exited);
      this.port = port;
    } catch (err) {
      await proc.kill("SIGKILL");
      this.proc = null;
      throw err;
    }
  }

  async kill(): Promise<void> {
    const proc = this.proc;
    this.proc = null;
    this.port = null;
    if (!proc) return;
    if (!proc.exited) signal(proc.child, "SIGCONT");
    await proc.kill("SIGKILL");
  }
}

/** The processes of one schedule. */
export class Deployment implements AsyncDisposable {
  readonly mode: Mode;
  readonly #dir: string;
  readonly #nodes: Node[];
  readonly #redis: Redis | null;
  readonly #proxies: TcpProxy[];
  readonly #rec: Recorder;

  private constructor(
    mode: Mode,
    dir: string,
    nodes: Node[],
    redis: Redis | null,
    proxies: TcpProxy[],
    rec: Recorder,
  ) {
    this.mode = mode;
    this.#dir = dir;
    this.#nodes = nodes;
    this.#redis = redis;
    this.#proxies = proxies;
    this.#rec = rec;
  }

  /**
   * Starts the processes of `mode` (with Redis, `redisNodes` nodes) and waits
   * until every node serves.
   */
  static async start(mode: Mode, rec: Recorder, redisNodes = 2): Promise<Deployment> {
    const dir = await Deno.makeTempDir({ prefix: "chat-chaos-" });
    // Accounts with an admin (who may remove anyone's message); fast clients
    // must not meet the flood limits.
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(ACCOUNTS));
    const common = [
      ...["--host", "127.0.0.1", "--port", "0", "--users", `${dir}/users.json`],
      ...["--rate", "500", "--burst", "1000", "--history", "100000"],
    ];
    let redis: Redis | null = null;
    const proxies: TcpProxy[] = [];
    const nodes: Node[] = [];
    try {
      if (mode === "redis") {
        redis = new Redis(dir);
        await redis.start();
        for (let i = 0; i < redisNodes; i++) {
          const proxy = new TcpProxy(redis.port);
          proxies.push(proxy);
          nodes.push(new Node([...common, "--redis", proxy.url, "--secret", SECRET]));
        }
      } else {
        nodes.push(
          new Node([...common, ...(mode === "sqlite" ? ["--data", `${dir}/chat.db`] : [])]),
        );
      }
      const full = new Deployment(mode, dir, nodes, redis, proxies, rec);
      await Promise.all(nodes.map((n) => n.start()));
      return full;
    } catch (err) {
      await new Deployment(mode, dir, nodes, redis, proxies, rec).close();
      throw err;
    }
  }

  /** How many nodes serve clients. */
  get size(): number {
    return this.#nodes.length;
  }

  /** Node `i`'s port, or null while it is down. */
  port(i: number): number | null {
    return this.#nodes[i % this.#nodes.length].port;
  }

  /**
   * Does one fault of this mode, chosen by `rng`, lasting `ms`, and heals it
   * before returning.
   */
  async fault(kind: string, rng: Rng, ms: number): Promise<void> {
    const i = rng.int(this.#nodes.length);
    const node = this.#nodes[i];
    const note = (what: string) => this.#rec.add({ kind: "fault", what });
    switch (kind) {
      case "pause-node": {
        const child = node.proc?.child;
        if (!child) return;
        note(`SIGSTOP node ${i} for ${ms} ms`);
        signal(child, "SIGSTOP");
        await sleep(ms);
        signal(child, "SIGCONT");
        note(`SIGCONT node ${i}`);
        return;
      }
      case "kill-node": {
        note(`kill -9 node ${i}`);
        await node.kill();
        await sleep(ms);
        await node.start();
        note(`node ${i} restarted (port ${node.port})`);
        return;
      }
      case "pause-redis": {
        const child = this.#redis?.child;
        if (!child) return;
        note(`SIGSTOP redis for ${ms} ms`);
        signal(child, "SIGSTOP");
        await sleep(ms);
        signal(child, "SIGCONT");
        note("SIGCONT redis");
        return;
      }
      case "restart-redis": {
        note("kill -9 redis");
        await this.#redis!.kill();
        await sleep(ms);
        await this.#redis!.start();
        note("redis restarted (same AOF)");
        return;
      }
      case "cut-link": {
        const proxy = this.#proxies[i];
        note(`cut node ${i}'s Redis link for ${ms} ms`);
        proxy.refuse = true;
        await proxy.cut();
        await sleep(ms);
        proxy.refuse = false;
        note(`node ${i}'s Redis link restored`);
        return;
      }
    }
  }

  /** Waits until every node answers `/healthz` with 200 again (Redis back, links up). */
  async healed(): Promise<void> {
    for (const n of this.#nodes) {
      if (!n.proc || n.proc.exited) await n.start();
      const port = n.port!;
      await until(() => healthy(port), "every node is healthy again");
    }
  }

  /** What the nodes printed (for a failing schedule). */
  output(): string {
    return this.#nodes.map((n, i) => `--- node ${i}\n${n.proc?.stderr ?? ""}`).join("\n");
  }

  /** Stops everything and removes the temporary directory. */
  async close(): Promise<void> {
    await Promise.all(this.#nodes.map((n) => n.kill()));
    await Promise.all(this.#proxies.map((p) => p.close()));
    await this.#redis?.kill();
    await Deno.remove(this.#dir, { recursive: true }).catch(() => {});
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function signal(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    child.kill(sig);
  } catch {
    // Exited already.
  }
}

async function healthy(port: number): Promise<boolean> {
  const ac = new AbortController();
  const t = setTimeout(() => ac.abort(), 2000);
  try {
    const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: ac.signal });
    const body = await res.json();
    return res.status === 200 && body.status === "ok";
  } catch {
    return false;
  } finally {
    clearTimeout(t);
  }
}

/** Resolves after `ms` (the schedule's own pacing, never a wait for a condition). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until true; throws after {@link READY_MS} or once `dead()` says so. */
export async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  dead: () => boolean = () => false,
  timeout = READY_MS,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!await check()) {
    if (dead()) throw new Error(`The process exited before ${what}`);
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await sleep(25);
  }
}
