/**
 * Test helpers: a real server on a free port and real WebSocket clients that
 * wait for frames (never for fixed times).
 *
 * @module
 */
import { parseConfig } from "../server/config.ts";
import { memoryLogger } from "../server/log.ts";
import { type ChatServer, type StartOptions, startServer } from "../server/server.ts";
import { type ServerFrame, splitFrames } from "../protocol.ts";
import { PasswordHasher } from "../server/auth/password.ts";

/** Generous deadline for anything a test waits for. */
export const DEADLINE = 15_000;

/** A server started for one test, in its own temporary directory. */
export interface TestServer extends AsyncDisposable {
  server: ChatServer;
  /** `ws://127.0.0.1:PORT/ws` */
  ws: string;
  /** `http://127.0.0.1:PORT` */
  http: string;
  dir: string;
  log: string[];
  close(): Promise<void>;
}

/** Hashes a password the way `chat user add` does (for users.json fixtures). */
export async function hashPassword(password: string): Promise<string> {
  const h = new PasswordHasher();
  try {
    return await h.hash(password);
  } finally {
    h.close();
  }
}

/** Starts a server; `users` are written to users.json (values are plaintext unless hashed). */
export async function startTestServer(
  opts: {
    users?: Record<string, string | { password: string; role?: string }>;
    args?: string[];
    dir?: string;
  } & StartOptions = {},
): Promise<TestServer> {
  const dir = opts.dir ?? await Deno.makeTempDir({ prefix: "chat-test-" });
  if (opts.users) {
    await Deno.writeTextFile(`${dir}/users.json`, JSON.stringify(opts.users));
  }
  const config = parseConfig([
    "--port",
    "0",
    "--host",
    "127.0.0.1",
    "--users",
    `${dir}/users.json`,
    ...(opts.args ?? []),
  ], {});
  const log = memoryLogger();
  const server = await startServer(config, { log, ...opts });
  const close = async () => {
    await server.shutdown();
    if (!opts.dir) await Deno.remove(dir, { recursive: true }).catch(() => {});
  };
  return {
    server,
    ws: `ws://127.0.0.1:${server.port}/ws`,
    http: `http://127.0.0.1:${server.port}`,
    dir,
    log: log.lines,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Deno's WebSocket also takes request headers (the DOM lib does not know it). */
type DenoWebSocket = new (
  url: string,
  options: { protocols?: string | string[]; headers?: Record<string, string> },
) => WebSocket;

type Match = string | ((f: ServerFrame) => boolean);

function matcher(m: Match): (f: ServerFrame) => boolean {
  return typeof m === "string" ? (f) => f.type === m : m;
}

/** A WebSocket client that keeps every frame and lets tests wait for one. */
export class TestClient implements AsyncDisposable {
  readonly ws: WebSocket;
  /** Every frame received, in order. */
  readonly all: ServerFrame[] = [];
  /** Raw text frames as received (to check batching). */
  readonly raw: string[] = [];
  /** Frames not yet taken by {@link next}. */
  readonly inbox: ServerFrame[] = [];
  /** Close event, once closed. */
  closeEvent: CloseEvent | null = null;
  #waiters = new Set<() => void>();
  #closed: Promise<CloseEvent>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    const closed = Promise.withResolvers<CloseEvent>();
    this.#closed = closed.promise;
    ws.onmessage = (e) => {
      if (typeof e.data !== "string") return;
      this.raw.push(e.data);
      for (const f of splitFrames(e.data)) {
        this.all.push(f);
        this.inbox.push(f);
      }
      for (const w of this.#waiters) w();
    };
    ws.onclose = (e) => {
      this.closeEvent = e;
      closed.resolve(e);
      for (const w of this.#waiters) w();
    };
    ws.onerror = () => {};
  }

  /** Opens a connection and waits until it is open. */
  static async connect(
    url: string,
    init?: { protocols?: string | string[]; headers?: Record<string, string> },
  ): Promise<TestClient> {
    const ws = init?.headers
      ? new (WebSocket as unknown as DenoWebSocket)(url, init)
      : new WebSocket(url, init?.protocols);
    const c = new TestClient(ws);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("close", () => reject(new Error(`Could not connect to ${url}`)), {
        once: true,
      });
    });
    return c;
  }

  /** Sends a frame (an object is JSON-encoded). */
  send(frame: unknown): void {
    this.ws.send(
      typeof frame === "string" || frame instanceof Uint8Array ? frame : JSON.stringify(frame),
    );
  }

  /** Takes the first frame in the inbox matching `m`, waiting for it. */
  async next<T extends ServerFrame = ServerFrame>(m: Match, timeout = DEADLINE): Promise<T> {
    const test = matcher(m);
    const deadline = Date.now() + timeout;
    while (true) {
      const i = this.inbox.findIndex(test);
      if (i !== -1) return this.inbox.splice(i, 1)[0] as T;
      if (this.closeEvent) {
        throw new Error(
          `Connection closed (${this.closeEvent.code} ${this.closeEvent.reason}) while waiting for ${
            typeof m === "string" ? m : "a frame"
          }; inbox: ${JSON.stringify(this.inbox).slice(0, 500)}`,
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `Timed out waiting for ${typeof m === "string" ? m : "a frame"}; inbox: ${
            JSON.stringify(this.inbox).slice(0, 800)
          }`,
        );
      }
      const waiters = this.#waiters;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          waiters.delete(done);
          resolve();
        }
        waiters.add(done);
      });
    }
  }

  /** Sends `ping` and waits for its `pong`: everything sent to us before it has arrived. */
  async barrier(): Promise<void> {
    this.send({ type: "ping" });
    await this.next("pong");
  }

  /** Frames in the inbox matching `m` (not taken). */
  peek(m: Match): ServerFrame[] {
    return this.inbox.filter(matcher(m));
  }

  /** Waits for the server to close the connection. */
  waitClose(timeout = DEADLINE): Promise<CloseEvent> {
    let t: ReturnType<typeof setTimeout> | undefined;
    return Promise.race([
      this.#closed,
      new Promise<never>((_, reject) => {
        t = setTimeout(() => reject(new Error("Timed out waiting for close")), timeout);
      }),
    ]).finally(() => clearTimeout(t));
  }

  /** Resolves the close event once the server (or anyone) closed the connection. */
  closed(): Promise<CloseEvent> {
    return this.#closed;
  }

  /** Closes (if open) and waits for the close to finish. */
  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CONNECTING || this.ws.readyState === WebSocket.OPEN) {
      this.ws.close();
    }
    if (this.ws.readyState !== WebSocket.CLOSED || !this.closeEvent) await this.#closed;
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A client after its `welcome`. */
export type SignedIn = TestClient & { welcome: ServerFrame & { type: "welcome" } };

/** Connects and signs in; resolves the client after its `welcome`. */
export function signIn(url: string, username: string, password?: string): Promise<SignedIn> {
  return authenticate(
    url,
    password === undefined ? { type: "auth", username } : { type: "auth", username, password },
  );
}

/** Connects and signs in with a session token from an earlier welcome. */
export function signInWithToken(url: string, token: string): Promise<SignedIn> {
  return authenticate(url, { type: "auth", token });
}

/** Connects, sends `frame` and waits for the welcome (throws on an error frame). */
async function authenticate(url: string, frame: Record<string, unknown>): Promise<SignedIn> {
  const c = await TestClient.connect(url);
  c.send(frame);
  const welcome = await c.next<ServerFrame & { type: "welcome" }>((f) =>
    f.type === "welcome" || f.type === "error"
  );
  if (welcome.type !== "welcome") {
    await c.close();
    throw new Error(`Sign-in failed: ${JSON.stringify(welcome)}`);
  }
  return Object.assign(c, { welcome });
}

/** `POST /api/signout` with `token` on the server at `http` (`http://host:port`); resolves the status. */
export async function signOut(http: string, token: string): Promise<number> {
  const res = await fetch(`${http}/api/signout`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}` },
  });
  await res.body?.cancel();
  return res.status;
}

/** Closes every client, ignoring errors. */
export async function closeAll(...clients: (TestClient | undefined)[]): Promise<void> {
  await Promise.all(clients.map((c) => c?.close().catch(() => {})));
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Polls `check` until it returns a truthy value. */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  what: string,
  timeout = DEADLINE,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout;
  while (true) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
