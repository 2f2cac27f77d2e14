/**
 * A node and a Redis that is not ready (issue 22), with real processes: a
 * node started while nothing listens on Redis's port, or while Redis loads a
 * large append-only file, listens at once, says "starting" on /healthz and
 * serves as soon as Redis answers; a password Redis refuses still stops it
 * with one line; a Redis that stops serving mid-run (BUSY, like LOADING after
 * a restart) is treated like a lost connection. Unit tests of the waiting
 * rules come first.
 */
import assert from "node:assert/strict";
import { ErrorReply } from "redis";
import { VERSION } from "../version.ts";
import { createStartingHandler } from "../server/http/http.ts";
import { memoryLogger } from "../server/log.ts";
import type { ServerFrame } from "../protocol.ts";
import {
  closeRedis,
  connectRedis,
  incompatibility,
  isTransient,
  RedisUnavailableError,
  waitForRedis,
} from "../server/broker/redis_client.ts";
import { closeAll, freePort, type SignedIn, signIn, TestClient, waitUntil } from "./helpers.ts";
import { ChatNode, RedisServer, SECRET } from "./redis_helpers.ts";
import { runChat } from "./chat_process.ts";

type F<T extends ServerFrame["type"]> = Extract<ServerFrame, { type: T }>;

/** Keys written before the restart: enough for Redis to answer LOADING for seconds. */
const KEYS = 1_500_000;

const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
const LOADING = "LOADING Redis is loading the dataset in memory";
const BUSY =
  "BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE";

/** The line a node logs when it starts waiting for Redis at `url`. */
function waitingLine(url: string, reason: string): string {
  return `warning: Waiting for Redis at "${url}": ${reason}; retrying, and /healthz answers "starting" until it answers`;
}

/** A temporary directory and a users.json path in it (missing: open mode). */
async function tempUsers(): Promise<{ dir: string; users: string } & AsyncDisposable> {
  const dir = await Deno.makeTempDir({ prefix: "chat-startup-" });
  return {
    dir,
    users: `${dir}/users.json`,
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/** A raw RESP connection to Redis, for what node-redis would not do (block it, say). */
class RawRedis implements Disposable {
  #conn: Deno.TcpConn;
  #text = "";

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
  }

  static async open(port: number): Promise<RawRedis> {
    return new RawRedis(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Sends a command without waiting for its answer. */
  async send(...args: string[]): Promise<void> {
    const parts = args.map((a) => `$${new TextEncoder().encode(a).length}\r\n${a}\r\n`);
    await this.#conn.write(new TextEncoder().encode(`*${args.length}\r\n${parts.join("")}`));
  }

  /** The next reply line, without its type byte (`OK`, `ERR …`). */
  async line(): Promise<string> {
    const buf = new Uint8Array(1024);
    while (!this.#text.includes("\r\n")) {
      const n = await this.#conn.read(buf);
      if (n === null) throw new Error("Redis closed the connection");
      this.#text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const i = this.#text.indexOf("\r\n");
    const line = this.#text.slice(0, i);
    this.#text = this.#text.slice(i + 2);
    return line.replace(/^[+\-:]/, "");
  }

  /** Sends a command and resolves its one-line reply. */
  async call(...args: string[]): Promise<string> {
    await this.send(...args);
    return await this.line();
  }

  [Symbol.dispose](): void {
    this.#conn.close();
  }
}

/** Signs alice and bob in on `node`; alice's message reaches bob, and her acknowledgement her. */
async function exchange(node: ChatNode, text: string): Promise<void> {
  const clients: SignedIn[] = [];
  try {
    const alice = await signIn(node.ws, "alice");
    clients.push(alice);
    const bob = await signIn(node.ws, "bob");
    clients.push(bob);
    alice.send({ type: "send", room: "general", text, ref: "r1" });
    const own = await alice.next<F<"message">>((f) => f.type === "message" && f.ref === "r1");
    const got = await bob.next<F<"message">>((f) => f.type === "message" && f.text === text);
    assert.deepEqual(
      [got.from, got.room, got.id, got.ref],
      ["alice", "general", own.id, undefined],
      "bob gets alice's message, without her ref",
    );
  } finally {
    await closeAll(...clients);
  }
}

// ---------------------------------------------------------------------------
// Which failures are worth waiting for

Deno.test("isTransient() waits out a Redis that is not up yet, and nothing else", async (t) => {
  await t.step("unreachable: refused, reset, timed out, no route, unknown host (yet)", () => {
    for (
      const code of ["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENOTFOUND"]
    ) {
      assert.equal(isTransient(Object.assign(new Error(code), { code })), true, code);
    }
  });
  await t.step("answers that it cannot serve yet", () => {
    for (
      const reply of [
        LOADING,
        BUSY + ".",
        "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
      ]
    ) assert.equal(isTransient(new ErrorReply(reply)), true, reply);
  });
  await t.step("a refused password, missing rights, the wrong server, a bad URL", () => {
    for (
      const reply of [
        "WRONGPASS invalid username-password pair or user is disabled.",
        "NOAUTH Authentication required.",
        "NOPERM this user has no permissions to run the 'eval' command",
        "READONLY You can't write against a read only replica.",
        "ERR unknown command 'HELLO', with args beginning with: ",
      ]
    ) assert.equal(isTransient(new ErrorReply(reply)), false, reply);
    const tls = Object.assign(new Error("wrong version number"), {
      code: "ERR_SSL_WRONG_VERSION_NUMBER",
    });
    assert.equal(isTransient(tls), false);
    assert.equal(isTransient(new TypeError("Invalid pathname")), false);
  });
  await t.step("RedisUnavailableError says which it is", () => {
    assert.equal(
      isTransient(new RedisUnavailableError("m", { reason: "r", transient: true })),
      true,
    );
    assert.equal(
      isTransient(new RedisUnavailableError("m", { reason: "r", transient: false })),
      false,
    );
  });
});

Deno.test("incompatibility() refuses Redis before 6.2 and clustered servers", () => {
  const hello = (version: string, mode = "standalone") => [
    "server",
    "redis",
    "version",
    version,
    "proto",
    2,
    "id",
    7,
    "mode",
    mode,
    "role",
    "master",
    "modules",
    [],
  ];
  assert.equal(incompatibility(hello("7.0.15")), null);
  assert.equal(incompatibility(hello("6.2.0")), null);
  assert.equal(incompatibility(hello("10.0.1")), null);
  assert.equal(
    incompatibility(hello("6.0.16")),
    "it is version 6.0.16: chat needs Redis 6.2.0 or later",
  );
  assert.equal(
    incompatibility(hello("7.2.4", "cluster")),
    "it runs in cluster mode: chat needs a single Redis server (not Redis Cluster or Sentinel)",
  );
});

Deno.test("waitForRedis() says once what it waits for, then every few seconds, not every attempt", async () => {
  const log = memoryLogger();
  let clock = 0;
  let attempts = 0;
  let waits = 0;
  const value = await waitForRedis("redis://:pw@127.0.0.1:1", () => {
    attempts++;
    // Each attempt takes a second of the test's clock: 5 s between reminders is 5 attempts.
    clock += 1000;
    if (attempts <= 6) return Promise.reject(refused());
    if (attempts <= 12) return Promise.reject(new ErrorReply(LOADING));
    return Promise.resolve("up");
  }, { log, now: () => clock, maxBackoff: 1, remindEvery: 5000, onWaiting: () => waits++ });
  assert.equal(value, "up");
  assert.equal(attempts, 13);
  assert.equal(waits, 1);
  const url = "redis://:***@127.0.0.1:1";
  assert.deepEqual(log.lines, [
    waitingLine(url, "connection refused"),
    `warning: Still waiting for Redis at "${url}" (6 s): connection refused`,
    `warning: Still waiting for Redis at "${url}" (11 s): ${LOADING}`,
    `Redis at "${url}" answered after 13 s`,
  ]);
});

Deno.test("waitForRedis() gives up at once on a failure waiting cannot cure", async (t) => {
  const url = "redis://:pw@127.0.0.1:1";
  await t.step("a refused password, on the first attempt", async () => {
    const log = memoryLogger();
    let attempts = 0;
    await assert.rejects(
      waitForRedis(url, () => {
        attempts++;
        return Promise.reject(
          new ErrorReply("WRONGPASS invalid username-password pair or user is disabled."),
        );
      }, { log, maxBackoff: 1 }),
      (err: Error) =>
        err instanceof RedisUnavailableError && !err.transient &&
        err.message ===
          `Cannot connect to Redis at "redis://:***@127.0.0.1:1": it refused the password (WRONGPASS invalid username-password pair or user is disabled); check the password in --redis (or REDIS_URL)`,
    );
    assert.equal(attempts, 1);
    assert.deepEqual(log.lines, []);
  });
  await t.step("a missing right, after waiting", async () => {
    const log = memoryLogger();
    let attempts = 0;
    const denied = "NOPERM this user has no permissions to run the 'eval' command";
    await assert.rejects(
      waitForRedis(url, () => {
        attempts++;
        return Promise.reject(attempts < 3 ? refused() : new ErrorReply(denied));
      }, { log, maxBackoff: 1 }),
      (err: Error) =>
        err instanceof RedisUnavailableError && !err.transient &&
        err.message ===
          `Cannot use Redis at "redis://:***@127.0.0.1:1": ${denied}; check --redis (or REDIS_URL)`,
    );
    assert.equal(attempts, 3);
    assert.deepEqual(log.lines, [waitingLine("redis://:***@127.0.0.1:1", "connection refused")]);
  });
});

Deno.test("waitForRedis() resolves null when stopped, between attempts or during one", async (t) => {
  const log = memoryLogger();
  await t.step("between attempts: no long pause is left behind", async () => {
    const stop = new AbortController();
    const got = await waitForRedis("redis://127.0.0.1:1", () => Promise.reject(refused()), {
      log,
      signal: stop.signal,
      // Stopped while it pauses for a minute: the sanitizers fail a timer left running.
      maxBackoff: 60_000,
      onWaiting: () => queueMicrotask(() => stop.abort()),
    });
    assert.equal(got, null);
  });
  await t.step("during an attempt: its signal aborts", async () => {
    const stop = new AbortController();
    const signals: AbortSignal[] = [];
    const got = await waitForRedis("redis://127.0.0.1:1", (signal) => {
      signals.push(signal);
      if (signals.length < 3) return Promise.reject(refused());
      const gaveUp = new Promise<never>((_, reject) =>
        signal.addEventListener("abort", () => reject(new Error("gave up")))
      );
      stop.abort();
      return gaveUp;
    }, { log, signal: stop.signal, maxBackoff: 1 });
    assert.equal(got, null);
    assert.deepEqual(signals.map((s) => s.aborted), [false, false, true]);
  });
});

Deno.test("connectRedis() tells a Redis worth waiting for from one that refuses the node", async (t) => {
  const password = "right-password";
  await using redis = await RedisServer.start({
    args: ["--requirepass", password, "--busy-reply-threshold", "100"],
  });
  const url = `redis://:${password}@127.0.0.1:${redis.port}`;
  await t.step("nothing listens: worth waiting for", async () => {
    const port = freePort();
    await assert.rejects(
      connectRedis(`redis://127.0.0.1:${port}`),
      (err: Error) =>
        err instanceof RedisUnavailableError && err.transient &&
        err.reason === "connection refused" &&
        err.message ===
          `Cannot connect to Redis at "redis://127.0.0.1:${port}": connection refused; check --redis (or REDIS_URL) and that Redis is running`,
    );
  });
  await t.step("a wrong password or none: not worth waiting for", async () => {
    const wrong = `redis://:wrong@127.0.0.1:${redis.port}`;
    await assert.rejects(
      connectRedis(wrong),
      (err: Error) =>
        err instanceof RedisUnavailableError && !err.transient &&
        /refused the password/.test(err.message),
    );
    await assert.rejects(
      connectRedis(redis.url),
      (err: Error) =>
        err instanceof RedisUnavailableError && !err.transient &&
        err.message ===
          `Cannot connect to Redis at "${redis.url}": it requires a password (NOAUTH Authentication required); give it in --redis (or REDIS_URL): redis://:PASSWORD@HOST:PORT`,
    );
  });
  await t.step("something else listens there: not worth waiting for", async () => {
    using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    const http = (async () => {
      const conn = await listener.accept();
      await conn.write(new TextEncoder().encode("HTTP/1.1 400 Bad Request\r\n\r\n"));
      conn.close();
    })();
    await assert.rejects(
      connectRedis(`redis://127.0.0.1:${port}`),
      (err: Error) =>
        err instanceof RedisUnavailableError && !err.transient &&
        err.message ===
          `Cannot use Redis at "redis://127.0.0.1:${port}": what answers there is not Redis (Unknown RESP type 72 "H"); check --redis (or REDIS_URL)`,
    );
    await http;
  });
  await t.step("connected but busy: not ready yet; ready once it is not", async () => {
    using blocker = await RawRedis.open(redis.port);
    assert.equal(await blocker.call("AUTH", password), "OK");
    // A script that never ends: after 100 ms Redis answers BUSY to everyone else.
    await blocker.send("EVAL", "while true do end", "0");
    using admin = await RawRedis.open(redis.port);
    assert.equal(await admin.call("AUTH", password), "OK");
    await waitUntil(async () => (await admin.call("PING")).startsWith("BUSY"), "Redis is busy");
    await assert.rejects(
      connectRedis(url),
      (err: Error) => err instanceof RedisUnavailableError && err.transient && err.reason === BUSY,
    );
    assert.equal(await admin.call("SCRIPT", "KILL"), "OK");
    assert.match(await blocker.line(), /^ERR .*Script killed by user with SCRIPT KILL/);
    const client = await connectRedis(url);
    await closeRedis(client);
  });
});

Deno.test("createStartingHandler() answers 503 to /healthz, /ws and /api/…, and serves the web app", async () => {
  const log = memoryLogger();
  const handler = createStartingHandler({
    log,
    waitingFor: "Redis",
    health: () => Promise.resolve({ status: "starting", rooms: null }),
    static: (_req, path) => path === "/" ? new Response("<!doctype html><html></html>") : null,
  });
  const call = (path: string, init?: RequestInit) =>
    handler(new Request(`http://localhost${path}`, init));

  const health = await call("/healthz");
  assert.deepEqual(
    [health.status, health.headers.get("cache-control"), await health.json()],
    [503, "no-store", { status: "starting", rooms: null }],
  );
  assert.equal(health.headers.get("x-content-type-options"), "nosniff", "security headers too");
  const head = await call("/healthz", { method: "HEAD" });
  assert.deepEqual([head.status, await head.text()], [503, ""]);
  const post = await call("/healthz", { method: "POST", body: "x" });
  assert.deepEqual([post.status, post.headers.get("allow")], [405, "GET, HEAD"]);
  await post.body?.cancel();
  for (const path of ["/ws", "/api/info", "/api/signout"]) {
    const res = await call(path, path === "/api/signout" ? { method: "POST" } : undefined);
    assert.deepEqual(
      [res.status, res.headers.get("retry-after"), await res.text()],
      [503, "1", "The server is starting (waiting for Redis): try again shortly\n"],
      path,
    );
  }
  const page = await call("/");
  assert.deepEqual([page.status, await page.text()], [200, "<!doctype html><html></html>"]);
  const missing = await call("/nope");
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
  assert.deepEqual(log.lines, []);
});

// ---------------------------------------------------------------------------
// Nodes started before Redis is ready

Deno.test("main: a node started before Redis exists says starting, then serves once Redis is up", async () => {
  await using tmp = await tempUsers();
  await using redis = await RedisServer.prepare();
  await using node = await ChatNode.start(redis.url, { users: tmp.users, ready: false });
  assert.ok(node.output.includes(waitingLine(redis.url, "connection refused")), node.output);
  assert.match(
    node.output,
    /\n {2}Starting: {3}waiting for Redis; \/healthz answers 503 with "status":"starting" until it answers\n/,
  );

  const h = await node.healthz();
  assert.equal(h.code, 503);
  assert.deepEqual({ ...h.body, uptime: 0 }, {
    status: "starting",
    connections: 0,
    users: 0,
    rooms: null,
    uptime: 0,
    version: VERSION,
    publicUrl: null,
  });
  const starting = "The server is starting (waiting for Redis): try again shortly\n";
  for (const path of ["/ws", "/api/info"]) {
    const res = await fetch(`${node.http}${path}`);
    assert.deepEqual(
      [res.status, res.headers.get("retry-after"), await res.text()],
      [503, "1", starting],
      path,
    );
  }
  await assert.rejects(TestClient.connect(node.ws), /Could not connect/);
  const page = await fetch(`${node.http}/`);
  assert.equal(page.status, 200, "the web app is served meanwhile");
  assert.match(await page.text(), /<html/i);

  // Stopped while it waits: an ordinary shutdown.
  const other = await ChatNode.start(redis.url, { users: tmp.users, ready: false });
  const stopped = await other.kill("SIGTERM");
  assert.equal(stopped.code, 0, other.output);
  assert.match(other.output, /\nShutting down…\nStopped\n/);
  assert.doesNotMatch(other.stderr, /error/);

  await redis.restart();
  const up = await waitUntil(async () => {
    const h = await node.healthz();
    return h.code === 200 ? h.body : null;
  }, "the node serves");
  assert.equal(up.status, "ok");
  assert.equal(up.rooms, 0);
  assert.match(node.output, new RegExp(`\nRedis at "${redis.url}" answered after \\d+ s\n`));
  assert.match(node.output, /\nSharing the chat through Redis as node "[0-9a-f]{8}"\n/);
  assert.equal(node.output.split("Waiting for Redis").length, 2, "one waiting line");
  assert.doesNotMatch(node.stderr, /error/);
  await exchange(node, "hello after the wait");
});

Deno.test("main: Redis loading a large append-only file: a node waits at start, and is degraded while it reloads", async (t) => {
  await using tmp = await tempUsers();
  // Written as commands rather than an RDB preamble: loading takes seconds, as a big chat's would.
  await using redis = await RedisServer.start({
    args: ["--enable-debug-command", "yes", "--aof-use-rdb-preamble", "no"],
  });
  assert.equal(await redis.cli("DEBUG", "POPULATE", String(KEYS), "filler", "8"), "OK");
  assert.match(await redis.cli("BGREWRITEAOF"), /rewriting (started|scheduled)/);
  await waitUntil(
    async () => {
      const info = await redis.cli("INFO", "persistence");
      return /aof_rewrite_in_progress:0/.test(info) && /aof_rewrite_scheduled:0/.test(info);
    },
    "the append-only file holds every key",
    60_000,
  );
  assert.match(await redis.cli("INFO", "persistence"), /aof_last_bgrewrite_status:ok/);

  /** Restarts Redis and resolves once it answers LOADING and `ready()` holds. */
  const reload = async (what: string, ready = () => Promise.resolve(true)) => {
    await redis.stop();
    await redis.restart({ ready: false });
    await waitUntil(async () => {
      let reply;
      try {
        reply = await redis.ping();
      } catch (err) {
        if (err instanceof Deno.errors.ConnectionRefused) return false;
        throw err;
      }
      if (reply === "PONG") throw new Error(`Redis loaded before ${what}: write more keys`);
      return reply === LOADING && await ready();
    }, what);
  };
  const stillLoading = async () => assert.equal(await redis.ping(), LOADING, "still loading");

  await reload("Redis answers LOADING");
  await using node = await ChatNode.start(redis.url, { users: tmp.users, ready: false });
  const clients: SignedIn[] = [];
  try {
    await t.step("a node started meanwhile says starting, then serves", async () => {
      assert.ok(node.output.includes(waitingLine(redis.url, LOADING)), node.output);
      const h = await node.healthz();
      assert.deepEqual([h.code, h.body.status, h.body.rooms], [503, "starting", null]);
      await waitUntil(async () => (await node.healthz()).code === 200, "the node serves", 60_000);
      assert.equal(await redis.ping(), "PONG");
      assert.equal(Number(await redis.cli("DBSIZE")) >= KEYS, true, "the data was loaded");
      assert.equal((await node.health()).status, "ok");
      assert.match(node.output, new RegExp(`\nRedis at "${redis.url}" answered after \\d+ s\n`));
      assert.doesNotMatch(node.stderr, /error/);
    });

    const alice = await signIn(node.ws, "alice");
    clients.push(alice);
    const bob = await signIn(node.ws, "bob");
    clients.push(bob);
    alice.send({ type: "send", room: "general", text: "hello after loading", ref: "r1" });
    const first = await bob.next<F<"message">>((f) => f.type === "message" && f.ref === undefined);
    assert.deepEqual([first.from, first.text], ["alice", "hello after loading"]);

    await t.step("Redis restarted under it: connected while loading is not back", async () => {
      await reload("the node is connected again while Redis loads", async () => {
        const list = await redis.cli("CLIENT", "LIST");
        return list.includes("name=chat-store") && list.includes("name=chat-events");
      });
      assert.equal((await node.health()).status, "degraded");
      alice.send({ type: "send", room: "general", text: "during", ref: "d1" });
      const err = await alice.next<F<"error">>("error");
      assert.deepEqual([err.code, err.ref], ["unavailable", "d1"]);
      assert.doesNotMatch(node.output, /Reconnected/);
      await stillLoading();
      await waitUntil(async () => (await node.health()).status === "ok", "whole again", 60_000);
      assert.match(
        node.stderr,
        /warning: Lost the connection to Redis at "redis:\/\/127\.0\.0\.1:\d+"/,
      );
      assert.ok(node.output.includes(`Reconnected to Redis at "${redis.url}"; catching up\n`));
      alice.send({ type: "send", room: "general", text: "after", ref: "a1" });
      const got = await bob.next<F<"message">>((f) => f.type === "message" && f.text === "after");
      assert.equal(got.id, first.id + 1, "the refused message took no id");
      await bob.barrier();
      assert.equal(bob.all.filter((f) => f.type === "message" && f.text === "during").length, 0);
      assert.equal(alice.closeEvent, null, "connections stay open");
    });
  } finally {
    await closeAll(...clients);
  }
});

Deno.test("main: a password Redis refuses stops the node with one line, waiting or not", async (t) => {
  await using tmp = await tempUsers();
  await using redis = await RedisServer.prepare({ args: ["--requirepass", "right-password"] });
  const shown = `redis://:***@127.0.0.1:${redis.port}`;
  const wrong = `redis://:wrong-password@127.0.0.1:${redis.port}`;
  const refusedLine =
    `error: Cannot connect to Redis at "${shown}": it refused the password (WRONGPASS invalid username-password pair or user is disabled); check the password in --redis (or REDIS_URL)`;
  const run = (url: string) =>
    runChat([
      "--redis",
      url,
      "--secret",
      SECRET,
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--users",
      tmp.users,
    ]);

  await t.step("Redis not up yet: the node waits, then stops when Redis refuses it", async () => {
    const node = await ChatNode.start(wrong, { users: tmp.users, ready: false });
    let exit: number | null = null;
    node.proc.status.then((s) => exit = s.code);
    try {
      assert.match(node.output, /listening on 127\.0\.0\.1:\d+/);
      await redis.restart();
      await waitUntil(() => exit !== null, "the node stops");
      assert.equal(exit, 1);
    } finally {
      await node.kill("SIGKILL");
    }
    const lines = node.stderr.trimEnd().split("\n");
    assert.equal(lines[0], waitingLine(shown, "connection refused"));
    assert.equal(lines.at(-1), refusedLine);
    for (const l of lines.slice(1, -1)) assert.match(l, /^warning: Still waiting for Redis/);
    assert.doesNotMatch(node.output, /Sharing the chat/);
  });

  await t.step("Redis up: at once, one line and nothing else", async () => {
    assert.deepEqual(await run(wrong), { code: 1, stdout: "", stderr: refusedLine + "\n" });
  });

  await t.step("no password at all", async () => {
    const r = await run(`redis://127.0.0.1:${redis.port}`);
    assert.deepEqual(r, {
      code: 1,
      stdout: "",
      stderr:
        `error: Cannot connect to Redis at "redis://127.0.0.1:${redis.port}": it requires a password (NOAUTH Authentication required); give it in --redis (or REDIS_URL): redis://:PASSWORD@HOST:PORT\n`,
    });
  });
});

// ---------------------------------------------------------------------------
// Redis that stops serving while the node runs

Deno.test("RedisBroker: Redis busy mid-run is handled like a lost connection, then whole again", async () => {
  await using tmp = await tempUsers();
  await using redis = await RedisServer.start({ args: ["--busy-reply-threshold", "100"] });
  await using node = await ChatNode.start(redis.url, { users: tmp.users });
  const clients: SignedIn[] = [];
  try {
    const alice = await signIn(node.ws, "alice");
    clients.push(alice);
    const bob = await signIn(node.ws, "bob");
    clients.push(bob);
    alice.send({ type: "send", room: "general", text: "before", ref: "b1" });
    const before = await bob.next<F<"message">>((f) => f.type === "message" && f.text === "before");

    {
      // Redis answers BUSY while a script runs, as it answers LOADING after a restart.
      using blocker = await RawRedis.open(redis.port);
      await blocker.send("EVAL", "while true do end", "0");
      await waitUntil(async () => (await node.health()).status === "degraded", "degraded");
      assert.ok(
        node.stderr.includes(
          `warning: Redis at "${redis.url}" cannot serve (${BUSY}): serving local users only until it can\n`,
        ),
        node.stderr,
      );
      assert.equal((await node.health()).rooms, null);
      alice.send({ type: "send", room: "general", text: "during", ref: "d1" });
      const err = await alice.next<F<"error">>("error");
      assert.deepEqual([err.code, err.ref], ["unavailable", "d1"]);
      alice.send({ type: "history", room: "general" });
      assert.equal((await alice.next<F<"error">>("error")).code, "unavailable");
      assert.equal(await redis.cli("SCRIPT", "KILL"), "OK");
      assert.match(await blocker.line(), /Script killed by user with SCRIPT KILL/);
    }

    await waitUntil(async () => (await node.health()).status === "ok", "whole again");
    assert.ok(node.output.includes(`Redis at "${redis.url}" serves again; catching up\n`));
    alice.send({ type: "send", room: "general", text: "after", ref: "a1" });
    const after = await bob.next<F<"message">>((f) => f.type === "message" && f.text === "after");
    assert.equal(after.id, before.id + 1, "the refused message took no id");
    await bob.barrier();
    assert.equal(bob.all.filter((f) => f.type === "message" && f.text === "during").length, 0);
    assert.equal(alice.closeEvent, null, "connections stay open");
  } finally {
    await closeAll(...clients);
  }
});
