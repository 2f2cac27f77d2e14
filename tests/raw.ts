/**
 * Clients written by hand on a bare TCP socket, for what a well-behaved
 * client library never does: send raw HTTP, do the WebSocket handshake and
 * then ignore pings, or stop reading altogether.
 *
 * @module
 */
import { connect, type Socket } from "node:net";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A parsed HTTP response. */
export interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/** A WebSocket upgrade request for `/ws`, with `headers` added (Host among them, if wanted). */
export function upgradeRequest(headers: Record<string, string>): string {
  return [
    "GET /ws HTTP/1.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    "",
    "",
  ].join("\r\n");
}

/** Sends `request` as is and reads the whole response (the server must close or send a length). */
export async function rawHttp(port: number, request: string | Uint8Array): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    const data = typeof request === "string" ? enc.encode(request) : request;
    // The server may answer (and close) before it has read everything: ignore write errors.
    const writing = conn.write(data).then(() => {}, () => {});
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(64 * 1024);
    let text = "";
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
      text = dec.decode(concat(chunks));
      const head = text.indexOf("\r\n\r\n");
      if (head !== -1) {
        if (text.startsWith("HTTP/1.1 101")) break;
        const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
        if (len && text.length >= head + 4 + Number(len[1])) break;
      }
    }
    await writing;
    return parseResponse(text);
  } finally {
    conn.close();
  }
}

function parseResponse(text: string): RawResponse {
  const head = text.indexOf("\r\n\r\n");
  const lines = text.slice(0, head === -1 ? text.length : head).split("\r\n");
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? "")?.[1] ?? 0);
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const i = line.indexOf(":");
    if (i > 0) headers.append(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return { status, headers, body: head === -1 ? "" : text.slice(head + 4) };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** A WebSocket frame from the server. */
export interface RawFrame {
  opcode: number;
  payload: Uint8Array;
}

/** Opcodes. */
export const Op = { Text: 1, Binary: 2, Close: 8, Ping: 9, Pong: 10 } as const;

/**
 * A WebSocket client on a bare TCP connection: it does the handshake and
 * sends masked text frames, and reads frames only when asked to, so pings go
 * unanswered and unread data piles up in the kernel.
 */
export class RawWebSocket {
  readonly conn: Deno.TcpConn;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;

  private constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.conn = conn;
    this.#buf = rest;
  }

  /** Connects and completes the handshake; throws unless the answer is 101. */
  static async connect(
    port: number,
    opts: { path?: string; headers?: Record<string, string> } = {},
  ): Promise<RawWebSocket> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const extra = Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}\r\n`).join("");
    await conn.write(enc.encode(
      `GET ${opts.path ?? "/ws"} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
    ));
    let got: Uint8Array = new Uint8Array(0);
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf);
      if (n === null) {
        conn.close();
        throw new Error("Connection closed during the WebSocket handshake");
      }
      got = concat([got, buf.subarray(0, n)]);
      const text = dec.decode(got);
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) continue;
      if (!text.startsWith("HTTP/1.1 101")) {
        conn.close();
        throw new Error(`Handshake refused: ${text.slice(0, end).split("\r\n")[0]}`);
      }
      return new RawWebSocket(conn, got.slice(enc.encode(text.slice(0, end + 4)).length));
    }
  }

  /** Sends one masked text frame. */
  async sendText(text: string): Promise<void> {
    await this.#send(Op.Text, enc.encode(text));
  }

  /** Answers a ping. */
  async pong(payload: Uint8Array): Promise<void> {
    await this.#send(Op.Pong, payload);
  }

  /**
   * Sends `{"type":"auth",…}` and reads frames until `welcome` (or throws on
   * `error`); pings that arrive meanwhile are answered only with `answerPings`.
   */
  async signIn(username: string, password: string, answerPings = false): Promise<void> {
    await this.sendText(JSON.stringify({ type: "auth", username, password }));
    while (true) {
      const f = await this.readFrame();
      if (f === null) throw new Error("Closed before welcome");
      if (f.opcode === Op.Ping && answerPings) await this.pong(f.payload);
      if (f.opcode !== Op.Text) continue;
      const text = dec.decode(f.payload);
      if (text.includes('"type":"welcome"')) return;
      if (text.includes('"type":"error"')) throw new Error(`Sign-in failed: ${text}`);
    }
  }

  async #send(opcode: number, payload: Uint8Array): Promise<void> {
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const len = payload.length;
    const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
    const frame = new Uint8Array(head + 4 + len);
    frame[0] = 0x80 | opcode;
    if (len < 126) frame[1] = 0x80 | len;
    else if (len < 65536) {
      frame[1] = 0x80 | 126;
      new DataView(frame.buffer).setUint16(2, len);
    } else {
      frame[1] = 0x80 | 127;
      new DataView(frame.buffer).setBigUint64(2, BigInt(len));
    }
    frame.set(mask, head);
    for (let i = 0; i < len; i++) frame[head + 4 + i] = payload[i] ^ mask[i & 3];
    // write() may take only part of a large frame.
    for (let at = 0; at < frame.length;) at += await this.conn.write(frame.subarray(at));
  }

  async #fill(need: number): Promise<boolean> {
    const chunk = new Uint8Array(256 * 1024);
    while (this.#buf.length < need) {
      if (this.#eof) return false;
      const n = await this.conn.read(chunk).catch(() => null);
      if (n === null) {
        this.#eof = true;
        return false;
      }
      this.#buf = concat([this.#buf, chunk.subarray(0, n)]);
    }
    return true;
  }

  /** Reads the next frame (never answering pings); null at end of stream. */
  async readFrame(): Promise<RawFrame | null> {
    if (!await this.#fill(2)) return null;
    const b1 = this.#buf[1];
    let len = b1 & 0x7f;
    let at = 2;
    if (len === 126) {
      if (!await this.#fill(4)) return null;
      len = new DataView(this.#buf.buffer, this.#buf.byteOffset).getUint16(2);
      at = 4;
    } else if (len === 127) {
      if (!await this.#fill(10)) return null;
      len = Number(new DataView(this.#buf.buffer, this.#buf.byteOffset).getBigUint64(2));
      at = 10;
    }
    if (!await this.#fill(at + len)) return null;
    const frame = { opcode: this.#buf[0] & 0x0f, payload: this.#buf.slice(at, at + len) };
    this.#buf = this.#buf.subarray(at + len);
    return frame;
  }

  /** The code and reason of a close frame. */
  static closeOf(f: RawFrame): { code: number; reason: string } {
    const code = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
    return { code, reason: dec.decode(f.payload.subarray(2)) };
  }

  /** Closes the TCP connection without a closing handshake. */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed.
    }
  }
}

/** Options for {@link RawRequest.open}. */
export interface RawRequestOptions {
  /** The local address to send from: any of 127.0.0.0/8 reaches a server on 127.0.0.1. @default {"127.0.0.1"} */
  localAddress?: string;
}

/**
 * One HTTP request on a bare TCP connection that the test feeds at its own
 * pace: the head at once, the body in whatever pieces and pauses it wants
 * (an upload held open, a stalled one). `Deno.connect` cannot choose the
 * local address, so this uses `node:net`, whose `localAddress` can: that is
 * how a test sends from several client addresses of one machine.
 */
export class RawRequest {
  readonly #socket: Socket;
  #received: Uint8Array[] = [];
  #ended = false;
  #closed: Promise<void>;
  #changed = new Set<() => void>();

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("data", (data: Uint8Array) => {
      this.#received.push(new Uint8Array(data));
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    // A reset ends the connection as well; the test looks at what arrived before it.
    socket.on("error", () => {});
    this.#closed = new Promise((resolve) =>
      socket.once("close", () => {
        this.#ended = true;
        this.#wake();
        resolve();
      })
    );
  }

  /** Connects to 127.0.0.1:`port` and sends `head` (up to the blank line after the headers). */
  static async open(
    port: number,
    head: string,
    options: RawRequestOptions = {},
  ): Promise<RawRequest> {
    const socket = connect({
      host: "127.0.0.1",
      port,
      localAddress: options.localAddress ?? "127.0.0.1",
    });
    const req = new RawRequest(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    await req.write(enc.encode(head));
    return req;
  }

  /** Whether the server has ended the connection (FIN or reset). */
  get ended(): boolean {
    return this.#ended;
  }

  /** Sends `bytes` (part of the body, or the rest of it). */
  write(bytes: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) =>
      this.#socket.write(bytes, (err?: Error | null) => err ? reject(err) : resolve())
    );
  }

  /** The response so far, or null until its head and `Content-Length` bytes of body are in. */
  peek(): RawResponse | null {
    const text = dec.decode(concat(this.#received));
    const head = text.indexOf("\r\n\r\n");
    if (head === -1) return null;
    const len = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, head));
    if (len ? text.length < head + 4 + Number(len[1]) : !this.#ended) return null;
    return parseResponse(text);
  }

  /** Waits for the whole response; throws if the connection ends first or after `timeout` ms. */
  async response(timeout = 15_000): Promise<RawResponse> {
    return await this.#until(
      () => {
        const res = this.peek();
        if (res === null && this.#ended) throw new Error("The connection ended before a response");
        return res;
      },
      timeout,
      "a response",
    );
  }

  /** Waits until the server ends the connection; throws after `timeout` ms. */
  async serverClosed(timeout = 15_000): Promise<void> {
    await this.#until(() => this.#ended || null, timeout, "the server to close");
  }

  /** Closes the connection (if still open) and waits until it is. */
  async close(): Promise<void> {
    this.#socket.destroy();
    await this.#closed;
  }

  /** `Symbol.asyncDispose`: {@link close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #wake(): void {
    for (const w of this.#changed) w();
  }

  async #until<T>(check: () => T | null, timeout: number, what: string): Promise<T> {
    const deadline = Date.now() + timeout;
    while (true) {
      const v = check();
      if (v !== null) return v;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${what}`);
      const changed = this.#changed;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          changed.delete(done);
          resolve();
        }
        changed.add(done);
      });
    }
  }
}
