/**
 * A WebSocket client on a bare TCP connection for the chaos clients: every
 * step has a deadline (a paused node accepts TCP connections but never
 * answers), pings are answered, and a frame can be cut off halfway before the
 * connection is dropped — which no WebSocket library lets a client do.
 *
 * @module
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A connected client; `onText` and `onClose` are set by its owner. */
export class Wire {
  /** Called with each text message. */
  onText: (text: string) => void = () => {};
  /** Called once, when the connection ends for any reason. */
  onClose: (why: string) => void = () => {};
  #conn: Deno.TcpConn;
  #closed = false;
  #writing: Promise<void> = Promise.resolve();
  #buf: Uint8Array;
  #parts: Uint8Array[] = [];
  /** Resolves when the read loop has ended. */
  readonly done: Promise<void>;

  private constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.#conn = conn;
    this.#buf = rest;
    this.done = this.#loop();
  }

  /** Opens `ws://127.0.0.1:port/ws`; rejects after `timeout` ms. */
  static async connect(port: number, timeout: number): Promise<Wire> {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), timeout);
    let conn: Deno.TcpConn | null = null;
    try {
      conn = await Deno.connect({ hostname: "127.0.0.1", port, signal: ac.signal });
      const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
      await conn.write(enc.encode(
        `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ));
      const c = conn;
      const abort = () => c.close();
      ac.signal.addEventListener("abort", abort);
      try {
        let got: Uint8Array = new Uint8Array(0);
        const chunk = new Uint8Array(4096);
        while (true) {
          const n = await conn.read(chunk);
          if (n === null) throw new Error("Connection closed during the handshake");
          got = concat(got, chunk.subarray(0, n));
          const end = indexOfHeadEnd(got);
          if (end === -1) continue;
          const head = dec.decode(got.subarray(0, end));
          if (!head.startsWith("HTTP/1.1 101")) {
            throw new Error(`Handshake refused: ${head.split("\r\n")[0]}`);
          }
          return new Wire(conn, got.slice(end + 4));
        }
      } finally {
        ac.signal.removeEventListener("abort", abort);
      }
    } catch (err) {
      try {
        conn?.close();
      } catch {
        // Closed by the abort.
      }
      throw ac.signal.aborted ? new Error(`Timed out connecting to port ${port}`) : err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Whether the connection has ended. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Sends one text frame (queued behind earlier writes); false once closed. */
  send(text: string): boolean {
    if (this.#closed) return false;
    this.#write(frame(1, enc.encode(text)));
    return true;
  }

  /**
   * Writes the first part of a text frame (at least its header, never all of
   * it) and drops the connection: the server sees a frame cut off mid-way.
   */
  async sendHalfAndDrop(text: string, fraction: number): Promise<void> {
    if (this.#closed) return;
    const bytes = frame(1, enc.encode(text));
    const cut = Math.max(2, Math.min(bytes.length - 1, Math.floor(bytes.length * fraction)));
    this.#write(bytes.subarray(0, cut));
    await this.#writing;
    this.drop("dropped mid-frame");
  }

  /** Closes the TCP connection at once, without a closing handshake. */
  drop(why = "dropped"): void {
    if (this.#closed) return;
    this.#end(why);
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
  }

  #write(bytes: Uint8Array): void {
    this.#writing = this.#writing.then(async () => {
      if (this.#closed) return;
      for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
    }).catch(() => this.drop("write failed"));
  }

  #end(why: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.onClose(why);
  }

  async #loop(): Promise<void> {
    const chunk = new Uint8Array(64 * 1024);
    try {
      while (!this.#closed) {
        while (this.#parse());
        if (this.#closed) break;
        const n = await this.#conn.read(chunk);
        if (n === null) {
          this.drop("closed by the server");
          break;
        }
        this.#buf = concat(this.#buf, chunk.subarray(0, n));
      }
    } catch {
      this.drop("connection reset");
    }
  }

  /** Handles one whole frame from the buffer; false when none is complete. */
  #parse(): boolean {
    const b = this.#buf;
    if (b.length < 2) return false;
    let len = b[1] & 0x7f;
    let at = 2;
    if (len === 126) {
      if (b.length < 4) return false;
      len = (b[2] << 8) | b[3];
      at = 4;
    } else if (len === 127) {
      if (b.length < 10) return false;
      len = Number(new DataView(b.buffer, b.byteOffset + 2, 8).getBigUint64(0));
      at = 10;
    }
    if (b.length < at + len) return false;
    const fin = (b[0] & 0x80) !== 0;
    const op = b[0] & 0x0f;
    const payload = b.slice(at, at + len);
    this.#buf = b.slice(at + len);
    if (op === 9) this.#write(frame(10, payload));
    else if (op === 8) {
      const code = payload.length >= 2 ? (payload[0] << 8) | payload[1] : 1005;
      this.drop(`close ${code} ${dec.decode(payload.subarray(2))}`.trim());
    } else if (op === 1 || op === 0) {
      this.#parts.push(payload);
      if (fin) {
        const whole = this.#parts.reduce((a, p) => concat(a, p), new Uint8Array(0));
        this.#parts = [];
        this.onText(dec.decode(whole));
      }
    }
    return true;
  }
}

/** A masked client frame. */
function frame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out[2] = len >> 8;
    out[3] = len & 0xff;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setBigUint64(2, BigInt(len));
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  out.set(mask, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function indexOfHeadEnd(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}
