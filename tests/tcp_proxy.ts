/**
 * The TCP proxy of the tests that need a network failure, between a client
 * and the server or between a node and Redis: `cut()` drops every connection
 * through it at once, `refuse` turns new ones away (closed as soon as
 * accepted) until it is reset; both together are a network partition.
 *
 * @module
 */

/** A proxy on 127.0.0.1 in front of `target`. */
export class TcpProxy implements AsyncDisposable {
  /** The proxy's port. */
  readonly port: number;
  /** When set, new connections are closed at once. */
  refuse = false;
  /** Connections accepted so far (refused ones included). */
  accepted = 0;
  #listener: Deno.TcpListener;
  #target: number;
  #pairs = new Set<[Deno.TcpConn, Deno.TcpConn]>();
  #tasks = new Set<Promise<void>>();
  #loop: Promise<void>;

  /** Starts a proxy to `127.0.0.1:target`. */
  constructor(target: number) {
    this.#target = target;
    this.#listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.#loop = this.#accept();
  }

  /** `ws://127.0.0.1:PORT/ws` through the proxy. */
  get ws(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** `redis://127.0.0.1:PORT` through the proxy. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Number of connections open through the proxy. */
  get open(): number {
    return this.#pairs.size;
  }

  async #accept(): Promise<void> {
    for await (const client of this.#listener) {
      this.accepted++;
      if (this.refuse) {
        client.close();
        continue;
      }
      let upstream: Deno.TcpConn;
      try {
        upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
      } catch {
        client.close();
        continue;
      }
      const pair: [Deno.TcpConn, Deno.TcpConn] = [client, upstream];
      this.#pairs.add(pair);
      const task = Promise.all([pipe(client, upstream), pipe(upstream, client)]).then(() => {
        this.#pairs.delete(pair);
        closeQuietly(client);
        closeQuietly(upstream);
      });
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  /** Drops every open connection, as a network failure would. */
  async cut(): Promise<void> {
    for (const [a, b] of this.#pairs) {
      closeQuietly(a);
      closeQuietly(b);
    }
    await Promise.all(this.#tasks);
  }

  /** Stops the proxy and drops its connections. */
  async close(): Promise<void> {
    this.#listener.close();
    await this.#loop.catch(() => {});
    await this.cut();
  }

  /** `await using` support. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

async function pipe(from: Deno.TcpConn, to: Deno.TcpConn): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    while (true) {
      const n = await from.read(buf);
      if (n === null) break;
      let off = 0;
      while (off < n) off += await to.write(buf.subarray(off, n));
    }
  } catch {
    // One side went away.
  }
  closeQuietly(to);
  closeQuietly(from);
}

function closeQuietly(c: Deno.TcpConn): void {
  try {
    c.close();
  } catch {
    // Closed already.
  }
}
