/**
 * Connections to push services go only to addresses that were checked.
 *
 * `fetch` resolves a name itself, so checking the name's addresses first and
 * then calling `fetch` leaves a window in which the name can resolve
 * elsewhere (DNS rebinding). Deno's `fetch` cannot be told which address to
 * use while keeping TLS to the name, but it can use an HTTP proxy: this is a
 * CONNECT proxy on 127.0.0.1, inside the server, that resolves the name,
 * checks every address with {@link addressesProblem}, and opens the tunnel
 * to one of those very addresses. TLS still runs end to end between `fetch`
 * and the push service, with the name as SNI and for certificate checks.
 *
 * Only holders of the random credentials (this process) may use it, only
 * for CONNECT, and only to port 443.
 *
 * @module
 */
import { addressesProblem, resolveHost } from "./endpoint.ts";
import { bounded } from "../bounded.ts";

/** Options for {@link PinnedProxy.start}. */
export interface PinnedProxyOptions {
  /** Resolves a host name to its addresses. @default {resolveHost} */
  resolve?: (hostname: string) => Promise<string[]>;
  /** Why some addresses may not be reached, or null. @default {addressesProblem} */
  check?: (addresses: readonly string[]) => string | null;
  /** Port tunnels may go to. @default {443} */
  port?: number;
  /** Time allowed for the CONNECT request, the lookup and the connection, in ms. @default {10000} */
  connectTimeout?: number;
  /** Tunnels open or being opened at most; past it a CONNECT is answered 503. @default {MAX_TUNNELS} */
  maxTunnels?: number;
  /** Extra root certificates for the client (tests). */
  caCerts?: string[];
}

const MAX_HEAD = 8192;

/** Tunnels open or being opened at most, by default; past it a CONNECT is answered 503. */
export const MAX_TUNNELS = 64;

/** Addresses of one name tried at most (a name with many blackholed addresses costs no more). */
export const MAX_DIALS = 4;

/** A loopback CONNECT proxy that tunnels only to checked addresses, and the `fetch` client that uses it. */
export class PinnedProxy {
  /** Pass as `fetch(url, { client })`. */
  readonly client: Deno.HttpClient;
  #listener: Deno.Listener;
  #conns = new Set<Deno.Conn>();
  #refusals = new Map<string, string>();
  #auth: string;
  #opts: Required<Omit<PinnedProxyOptions, "caCerts">>;
  #closed = false;
  #abort = new AbortController();
  #loop: Promise<void>;

  private constructor(opts: PinnedProxyOptions) {
    this.#opts = {
      resolve: opts.resolve ?? resolveHost,
      check: opts.check ?? addressesProblem,
      port: opts.port ?? 443,
      connectTimeout: opts.connectTimeout ?? 10_000,
      maxTunnels: opts.maxTunnels ?? MAX_TUNNELS,
    };
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const password = toHex(crypto.getRandomValues(new Uint8Array(16)));
    this.#auth = "Basic " + btoa(`push:${password}`);
    const { port } = this.#listener.addr as Deno.NetAddr;
    this.client = Deno.createHttpClient({
      proxy: { url: `http://127.0.0.1:${port}`, basicAuth: { username: "push", password } },
      caCerts: opts.caCerts,
      poolIdleTimeout: 30_000,
      poolMaxIdlePerHost: 2,
    });
    this.#loop = this.#accept();
  }

  /** The loopback port it listens on. */
  get port(): number {
    return (this.#listener.addr as Deno.NetAddr).port;
  }

  /** Starts the proxy. */
  static start(opts: PinnedProxyOptions = {}): PinnedProxy {
    return new PinnedProxy(opts);
  }

  /**
   * Why the last tunnel to `host` (as in the URL, with port when it has
   * one) was refused, once; null when it was not. A refused tunnel makes
   * `fetch` fail with a generic error: this tells why.
   */
  takeRefusal(host: string): string | null {
    const why = this.#refusals.get(host) ?? null;
    this.#refusals.delete(host);
    return why;
  }

  /** Stops accepting, closes every tunnel and the client. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    this.client.close();
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    for (const c of this.#conns) closeQuietly(c);
    // A tunnel still waiting for the system resolver cannot be interrupted: do not wait long for it.
    await bounded(this.#loop, 1000);
  }

  async #accept(): Promise<void> {
    const tunnels = new Set<Promise<void>>();
    try {
      for await (const conn of this.#listener) {
        if (this.#closed) {
          closeQuietly(conn);
          break;
        }
        if (tunnels.size >= this.#opts.maxTunnels) {
          // Busy (many slow push services at once): the push is retried later.
          answer(conn, "503 Service Unavailable").finally(() => closeQuietly(conn));
          continue;
        }
        const t = this.#serve(conn).finally(() => tunnels.delete(t));
        tunnels.add(t);
      }
    } catch {
      // the listener was closed
    }
    await Promise.allSettled([...tunnels]);
  }

  async #serve(conn: Deno.Conn): Promise<void> {
    this.#conns.add(conn);
    let upstream: Deno.Conn | null = null;
    // One deadline for the whole tunnel set-up (head, lookup, every dial), and
    // one signal that ends it: the deadline, or the proxy closing.
    const ac = new AbortController();
    const deadline = Date.now() + this.#opts.connectTimeout;
    const timer = setTimeout(() => {
      ac.abort();
      if (upstream === null) closeQuietly(conn);
    }, this.#opts.connectTimeout);
    const stop = () => ac.abort();
    this.#abort.signal.addEventListener("abort", stop, { once: true });
    try {
      // The timer stays armed until the tunnel is up: a slow lookup or connect ends it too.
      const head = await readHead(conn);
      if (head === null) return;
      const [line, ...headers] = head.split("\r\n");
      const m = /^CONNECT (\S+) HTTP\/1\.[01]$/.exec(line);
      const auth = headers.find((h) => /^proxy-authorization:/i.test(h))?.slice(20).trim();
      if (auth !== this.#auth) return await answer(conn, "407 Proxy Authentication Required");
      if (!m) return await answer(conn, "405 Method Not Allowed");
      const target = parseTarget(m[1]);
      if (target === null || target.port !== this.#opts.port) {
        return await answer(conn, "403 Forbidden");
      }
      // As `URL.host` spells it, for takeRefusal().
      const urlHost = m[1].endsWith(":443") ? m[1].slice(0, -4) : m[1];
      let addresses: string[];
      try {
        addresses = await this.#opts.resolve(target.host);
      } catch {
        // Not a refusal: a lookup that fails now may work later (the fetch fails, and is retried).
        return await answer(conn, "502 Bad Gateway");
      }
      if (ac.signal.aborted) return;
      const why = this.#opts.check(addresses);
      if (why) {
        this.#refuse(urlHost, why);
        return await answer(conn, "403 Forbidden");
      }
      upstream = await connectFirst(
        addresses.slice(0, MAX_DIALS),
        target.port,
        deadline,
        ac.signal,
      );
      if (upstream === null) return await answer(conn, "502 Bad Gateway");
      this.#conns.add(upstream);
      if (this.#closed || ac.signal.aborted) return;
      clearTimeout(timer);
      await writeAll(conn, "HTTP/1.1 200 Connection Established\r\n\r\n");
      await Promise.allSettled([
        conn.readable.pipeTo(upstream.writable),
        upstream.readable.pipeTo(conn.writable),
      ]);
    } catch {
      // a tunnel that breaks is the fetch's error to report
    } finally {
      clearTimeout(timer);
      ac.abort();
      this.#abort.signal.removeEventListener("abort", stop);
      closeQuietly(conn);
      this.#conns.delete(conn);
      if (upstream) {
        closeQuietly(upstream);
        this.#conns.delete(upstream);
      }
    }
  }

  #refuse(host: string, why: string): void {
    if (this.#refusals.size >= 1000) this.#refusals.clear();
    this.#refusals.set(host, why);
  }
}

/** The CONNECT request's head, or null when the client went away or sent too much. */
async function readHead(conn: Deno.Conn): Promise<string | null> {
  const buf = new Uint8Array(MAX_HEAD);
  let n = 0;
  while (n < MAX_HEAD) {
    const got = await conn.read(buf.subarray(n));
    if (got === null) return null;
    n += got;
    const text = new TextDecoder().decode(buf.subarray(0, n));
    const end = text.indexOf("\r\n\r\n");
    // The client waits for our 200 before it sends anything past the head.
    if (end !== -1) return end + 4 === n ? text.slice(0, end) : null;
  }
  return null;
}

function parseTarget(authority: string): { host: string; port: number } | null {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:\[\]]+)):(\d{1,5})$/.exec(authority);
  if (!m) return null;
  return { host: m[1] ?? m[2], port: Number(m[3]) };
}

/**
 * A connection to the first of `addresses` that answers, all within
 * `deadline` (ms since the epoch): each try gets an equal share of the time
 * left, so one blackholed address does not use it all. Null when none did,
 * or `signal` aborted (the tunnel's deadline, or the proxy closing).
 */
async function connectFirst(
  addresses: string[],
  port: number,
  deadline: number,
  signal: AbortSignal,
): Promise<Deno.Conn | null> {
  for (let i = 0; i < addresses.length; i++) {
    const left = deadline - Date.now();
    if (signal.aborted || left <= 0) return null;
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), Math.max(1, left / (addresses.length - i)));
    const stop = () => ac.abort();
    signal.addEventListener("abort", stop, { once: true });
    try {
      const conn = await Deno.connect({ hostname: addresses[i], port, signal: ac.signal });
      if (signal.aborted) {
        closeQuietly(conn);
        return null;
      }
      return conn;
    } catch {
      // try the next address
    } finally {
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
    }
  }
  return null;
}

async function answer(conn: Deno.Conn, status: string): Promise<void> {
  await writeAll(conn, `HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
    .catch(() => {});
}

async function writeAll(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

function closeQuietly(c: Deno.Conn): void {
  try {
    c.close();
  } catch {
    // already closed
  }
}

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
