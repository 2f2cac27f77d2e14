/**
 * The file routes: `POST /api/files` (upload) and `GET /files/<id>/…`
 * (download). Behind the HTTP edge's error boundary: refusals are
 * {@link HttpError}s.
 *
 * An upload streams: each piece of the body goes through the
 * {@link Sanitizer} (type from the bytes, photo metadata dropped) and is cut
 * into {@link CHUNK_BYTES} chunks written to the store as they fill, so the
 * server holds a few chunks, never the file. The first chunk is written last,
 * once the sanitizer has fixed the header fields that depend on the final
 * size. Nothing is visible until the store commits the upload.
 *
 * @module
 */
import { FILE_ID } from "../../protocol.ts";
import { CHUNK_BYTES, type FileStore, type FileWriter, QuotaExceeded } from "../files/files.ts";
import { cleanName, DamagedImage, isInlineImage, Sanitizer } from "../files/media.ts";
import type { FileUrls } from "../files/urls.ts";
import { KeyedCounter } from "../hub/limits.ts";
import { RateBuckets } from "./rate.ts";
import { HttpError } from "./http.ts";

/** Uploads one user may have under way at once on a node. */
export const MAX_ACTIVE_UPLOADS = 4;

/**
 * Uploads one client address may have under way at once on a node: names
 * cost nothing in open mode, so the per-user bound alone does not hold.
 */
export const MAX_UPLOADS_PER_ADDR = 8;

/** Uploads a node runs at once: each holds about two chunks in memory. */
export const MAX_UPLOADS = 64;

/**
 * New uploads one user may start: a burst of 60 (a folder of photos dropped
 * at once), then 2 a second. Unsent uploads live for an hour, each costing
 * its record whatever its size: without a rate, one account could post
 * thousands of one-byte files a second and fill the server's memory.
 */
export const USER_UPLOAD_RATE = { rate: 2, burst: 60 };

/** New uploads one client address may start (names cost nothing in open mode). */
export const ADDR_UPLOAD_RATE = { rate: 4, burst: 120 };

/** Milliseconds an upload may go without sending a byte before it is dropped (408). */
export const UPLOAD_IDLE_MS = 30_000;

/**
 * The slowest an upload may go, on average over each {@link SLOW_WINDOW_MS}:
 * 16 KB/s (a poor mobile uplink does ten times that). Without it a client
 * could keep an upload slot for hours by sending a byte before each idle
 * cutoff, and 64 such clients would shut everyone out of uploading.
 */
export const MIN_UPLOAD_RATE = 16_000;

/** Milliseconds over which {@link MIN_UPLOAD_RATE} is measured. */
export const SLOW_WINDOW_MS = 60_000;

/** What the file routes need. */
export interface FileRoutesDeps {
  files: FileStore;
  urls: FileUrls;
  /** Largest upload in bytes (`--max-upload`). */
  maxUpload: number;
  /** The user a session token belongs to, or null (forged, expired, signed out). */
  tokenUser: (token: string) => Promise<string | null>;
  /** Whether `user` may see the files of conversation `conv` now. */
  canSee: (user: string, conv: string) => Promise<boolean>;
  /** Milliseconds an upload may go without a byte (tests use small ones). @default {UPLOAD_IDLE_MS} */
  idleMs?: number;
  /** The slowest average rate, in bytes/s, over each `window` ms (tests use small windows). */
  minRate?: { bytesPerSecond: number; windowMs: number };
  /** Whether the server is shutting down (an upload cut by it is not the server's failure). */
  stopping?: () => boolean;
}

/** The two file routes. */
export interface FileRoutes {
  /** `POST /api/files?name=…` from client address `addr`. */
  upload(req: Request, url: URL, addr: string): Promise<Response>;
  /** `GET|HEAD /files/<id>[/<name>]?v=…&s=…`. */
  download(req: Request, url: URL): Promise<Response>;
}

/** Builds the file routes. */
export function fileRoutes(deps: FileRoutesDeps): FileRoutes {
  const byUser = new KeyedCounter();
  const byAddr = new KeyedCounter();
  const starts = new RateBuckets();
  let running = 0;
  const idleMs = deps.idleMs ?? UPLOAD_IDLE_MS;
  const minRate = deps.minRate ?? { bytesPerSecond: MIN_UPLOAD_RATE, windowMs: SLOW_WINDOW_MS };

  async function upload(req: Request, url: URL, addr: string): Promise<Response> {
    const user = await bearerUser(req, deps);
    if (user === null) {
      throw new HttpError(401, "Send your session token as Authorization: Bearer TOKEN", {
        "www-authenticate": "Bearer",
      });
    }
    const raw = url.searchParams.get("name");
    if (raw === null) throw new HttpError(400, "Name the file: POST /api/files?name=FILENAME");
    const name = cleanName(raw);
    if (name === null) throw new HttpError(400, `"${raw.slice(0, 100)}" is not a usable file name`);
    const length = req.headers.get("content-length");
    if (length !== null && Number(length) > deps.maxUpload) throw tooLarge(deps.maxUpload);
    if (length === "0" || req.body === null) throw empty();
    const mine = byUser.get(user);
    if (mine >= MAX_ACTIVE_UPLOADS) {
      throw new HttpError(
        429,
        `You have ${mine} uploads under way: wait for one to finish`,
        { "retry-after": "1" },
      );
    }
    if (running >= MAX_UPLOADS || byAddr.get(addr) >= MAX_UPLOADS_PER_ADDR) {
      throw new HttpError(429, "Too many uploads under way: try again shortly", {
        "retry-after": "5",
      });
    }
    // Both rates are checked before either is spent: a refusal costs nothing.
    const userKey = `u:${user.toLowerCase()}`, addrKey = `a:${addr}`;
    const wait = Math.max(
      starts.wait(userKey, USER_UPLOAD_RATE),
      starts.wait(addrKey, ADDR_UPLOAD_RATE),
    );
    if (wait > 0) {
      throw new HttpError(429, "Too many uploads: slow down and try again shortly", {
        "retry-after": String(wait),
      });
    }
    starts.take(userKey);
    starts.take(addrKey);
    byAddr.add(addr, MAX_UPLOADS_PER_ADDR);
    byUser.add(user, MAX_ACTIVE_UPLOADS);
    running++;
    let writer: FileWriter | null = null;
    try {
      writer = await deps.files.create(user, name);
      const record = await store(pieces(req.body, idleMs, minRate), writer, deps.maxUpload);
      writer = null;
      return new Response(JSON.stringify(deps.urls.info(record, user)), {
        status: 201,
        headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
      });
    } catch (err) {
      await writer?.abort();
      if (err instanceof QuotaExceeded) {
        throw new HttpError(507, "The chat's file storage is full: ask its admin to make room", {
          connection: "close",
        });
      }
      if (err instanceof DamagedImage) throw new HttpError(400, err.message);
      if (!(err instanceof HttpError) && deps.stopping?.()) {
        throw new HttpError(503, "The server is restarting: upload the file again in a moment", {
          connection: "close",
          "retry-after": "5",
        });
      }
      throw err;
    } finally {
      byUser.remove(user);
      byAddr.remove(addr);
      running--;
    }
  }

  async function download(req: Request, url: URL): Promise<Response> {
    // Every refusal is the same 404: a link must not tell whether a file exists.
    const notFound = () => new HttpError(404, "Not found");
    const id = url.pathname.split("/")[2] ?? "";
    const v = url.searchParams.get("v") ?? "";
    const s = url.searchParams.get("s") ?? "";
    if (!FILE_ID.test(id) || v === "" || !deps.urls.verify(id, v, s)) throw notFound();
    let viewer = v;
    if (req.headers.has("authorization")) {
      const user = await bearerUser(req, deps);
      if (user === null) throw notFound();
      viewer = user;
    }
    const file = await deps.files.get(id);
    if (file === null) throw notFound();
    const allowed = file.conv === undefined
      ? file.owner.toLowerCase() === viewer.toLowerCase()
      : await deps.canSee(viewer, file.conv);
    if (!allowed) throw notFound();

    const etag = `"${file.id}"`;
    const headers: Record<string, string> = {
      "content-type": file.type.startsWith("text/") ? `${file.type}; charset=utf-8` : file.type,
      "content-disposition": disposition(file.name, isInlineImage(file.type)),
      "x-content-type-options": "nosniff",
      "content-security-policy": "sandbox; default-src 'none'",
      "cache-control": "private, max-age=31536000, immutable",
      "accept-ranges": "bytes",
      etag,
    };
    if (matches(req.headers.get("if-none-match"), etag)) {
      return new Response(null, { status: 304, headers });
    }
    let start = 0, end = file.size, status = 200;
    const range = req.headers.get("range");
    const ifRange = req.headers.get("if-range");
    if (range !== null && (ifRange === null || ifRange === etag)) {
      const r = parseRange(range, file.size);
      if (r === "unsatisfiable") {
        throw new HttpError(416, "The range is outside the file", {
          "content-range": `bytes */${file.size}`,
        });
      }
      if (r !== null) {
        [start, end] = r;
        status = 206;
        headers["content-range"] = `bytes ${start}-${end - 1}/${file.size}`;
      }
    }
    headers["content-length"] = String(end - start);
    const body = req.method === "HEAD" || end === start ? null : deps.files.read(id, start, end);
    return new Response(body, { status, headers });
  }

  return { upload, download };
}

/**
 * The pieces of `body`, failing with 408 when none comes for `idleMs`: a
 * stalled upload must not hold its slot forever. A streamed body is read
 * into one reused buffer (a BYOB reader: no allocation per piece, so a large
 * upload leaves no garbage behind it); each piece is valid until the next is
 * asked for. (A body the runtime already holds whole is not a byte stream.)
 */
async function* pieces(
  body: ReadableStream<Uint8Array>,
  idleMs: number,
  minRate: { bytesPerSecond: number; windowMs: number },
): AsyncGenerator<Uint8Array> {
  let windowStart = performance.now();
  let windowBytes = 0;
  let buffer: ArrayBuffer | null = new ArrayBuffer(CHUNK_BYTES);
  let reader: ReadableStreamBYOBReader | ReadableStreamDefaultReader<Uint8Array>;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    buffer = null;
    reader = body.getReader();
  }
  try {
    while (true) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new HttpError(
                408,
                `The upload stalled: nothing arrived for ${
                  Number((idleMs / 1000).toFixed(1))
                } seconds`,
                { connection: "close" },
              ),
            ),
          idleMs,
        );
      });
      try {
        const read = buffer === null
          ? (reader as ReadableStreamDefaultReader<Uint8Array>).read()
          : (reader as ReadableStreamBYOBReader).read(new Uint8Array(buffer));
        const { done, value } = await Promise.race([read.catch(cutOff), idle]);
        if (done || value === undefined) return;
        if (buffer !== null) buffer = value.buffer as ArrayBuffer;
        windowBytes += value.length;
        const now = performance.now();
        if (now - windowStart >= minRate.windowMs) {
          if (windowBytes < minRate.bytesPerSecond * minRate.windowMs / 1000) {
            throw new HttpError(
              408,
              `The upload is too slow: under ${humanBytes(minRate.bytesPerSecond)}/s for ${
                Number((minRate.windowMs / 1000).toFixed(1))
              } seconds`,
              { connection: "close" },
            );
          }
          windowStart = now;
          windowBytes = 0;
        }
        yield value;
      } finally {
        clearTimeout(timer);
      }
    }
  } finally {
    // Not awaited: a peer that stopped sending must not hold the answer back.
    reader.cancel().catch(() => {});
  }
}

/**
 * A body that cannot be read any more: the client went away mid-upload (or
 * the server is shutting down). Nobody reads the answer; it must not be
 * logged as the server's failure.
 */
function cutOff(err: unknown): never {
  if (err instanceof HttpError) throw err;
  throw new HttpError(400, "The upload was cut off before its end", { connection: "close" });
}

/** The user of the request's `Authorization: Bearer` token, or null. */
async function bearerUser(req: Request, deps: FileRoutesDeps): Promise<string | null> {
  const m = /^Bearer\s+(\S{1,1024})$/i.exec(req.headers.get("authorization") ?? "");
  return m ? await deps.tokenUser(m[1]) : null;
}

/**
 * Streams `body` through a {@link Sanitizer} into `writer`, chunk by chunk;
 * resolves the committed file. Chunk 0 is kept back in its own buffer and
 * written last, once its header is final; every other chunk is cut in one
 * reused buffer (the store copies what it keeps). Between chunks the event
 * loop gets a turn, so that chat traffic is not held up behind a fast upload.
 */
async function store(body: AsyncIterable<Uint8Array>, writer: FileWriter, max: number) {
  using turns = new Turns();
  const sanitizer = new Sanitizer();
  let received = 0;
  let total = 0;
  let index = 0;
  const head = new Uint8Array(CHUNK_BYTES);
  const rest = new Uint8Array(CHUNK_BYTES);
  let buf = head;
  let fill = 0;
  const flush = async () => {
    if (index > 0) {
      await writer.write(index, fill === CHUNK_BYTES ? buf : buf.subarray(0, fill));
      await turns.next();
    }
    index++;
    total += fill;
    buf = rest;
    fill = 0;
  };
  const put = async (bytes: Uint8Array) => {
    let at = 0;
    while (at < bytes.length) {
      const n = Math.min(CHUNK_BYTES - fill, bytes.length - at);
      buf.set(bytes.subarray(at, at + n), fill);
      fill += n;
      at += n;
      if (fill === CHUNK_BYTES) await flush();
    }
  };
  for await (const piece of body) {
    received += piece.length;
    if (received > max) throw tooLarge(max);
    for (const out of sanitizer.push(piece)) await put(out);
  }
  if (received === 0) throw empty();
  const end = sanitizer.end();
  for (const out of end.out) await put(out);
  const headLength = index === 0 ? fill : CHUNK_BYTES;
  if (fill > 0) await flush();
  if (total === 0) throw empty();
  const first = head.subarray(0, headLength);
  sanitizer.fixHead(first, total);
  await writer.write(0, first);
  return await writer.commit({
    type: end.type,
    size: total,
    ...(end.width !== undefined ? { width: end.width } : {}),
    ...(end.height !== undefined ? { height: end.height } : {}),
  });
}

/**
 * Turns of the event loop, as messages to ourselves: unlike a timer they are
 * not clamped to milliseconds, and pending socket reads run first. Closed
 * when the upload ends (an open port would keep the process alive).
 */
class Turns implements Disposable {
  #channel = new MessageChannel();
  #waiting: (() => void)[] = [];

  constructor() {
    this.#channel.port1.onmessage = () => this.#waiting.shift()?.();
  }

  /** Resolves after one turn. */
  next(): Promise<void> {
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#channel.port2.postMessage(null);
    });
  }

  [Symbol.dispose](): void {
    this.#channel.port1.close();
    this.#channel.port2.close();
    for (const resolve of this.#waiting.splice(0)) resolve();
  }
}

function tooLarge(max: number): HttpError {
  return new HttpError(413, `The file is larger than ${humanBytes(max)}, this chat's limit`, {
    connection: "close",
  });
}

function empty(): HttpError {
  return new HttpError(400, "The file is empty");
}

/** `25 MB`, `1.5 GB`: a size in words (decimal units, as --max-upload reads them). */
export function humanBytes(n: number): string {
  const units = ["bytes", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${n} bytes` : `${Number(v.toFixed(1))} ${units[i]}`;
}

/** `inline` or `attachment`, with the name for browsers old (ASCII) and new (UTF-8). */
function disposition(name: string, inline: boolean): string {
  const ascii = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `${inline ? "inline" : "attachment"}; filename="${ascii}"; filename*=UTF-8''${
    encodeURIComponent(name).replace(/['()*]/g, (c) => "%" + c.charCodeAt(0).toString(16))
  }`;
}

/** Whether an `If-None-Match` header names `etag` (or `*`). */
function matches(header: string | null, etag: string): boolean {
  if (header === null) return false;
  return header.split(",").some((t) => {
    const tag = t.trim().replace(/^W\//, "");
    return tag === etag || tag === "*";
  });
}

/**
 * One byte range of a file of `size` bytes as `[start, end)`; null for a
 * header this route ignores (not bytes, several ranges: the whole file is
 * sent), `"unsatisfiable"` for a range outside the file.
 */
export function parseRange(
  header: string,
  size: number,
): [number, number] | null | "unsatisfiable" {
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/.exec(header.trim());
  if (!m || (m[1] === "" && m[2] === "")) return null;
  if (m[1] === "") {
    const n = Number(m[2]);
    if (n === 0) return "unsatisfiable";
    return [Math.max(0, size - n), size];
  }
  const start = Number(m[1]);
  const last = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || last < start) return "unsatisfiable";
  return [start, last + 1];
}
