/**
 * Files for the terminal client: an upload (`POST /api/files`) streamed from
 * disk and a download streamed to disk, each with progress and cancellable
 * by an `AbortSignal`; free names for downloads, so that nothing is
 * overwritten. Neither ever holds a whole file in memory.
 *
 * The client never asks for a permission it lacks (a prompt would fight
 * the raw-mode input line): each path is checked with
 * `Deno.permissions.querySync` first, and refused with a sentence saying
 * which flag would allow it.
 *
 * @module
 */
import type { FileInfo } from "../protocol.ts";
import { describeConnectError } from "./format.ts";
import { strip } from "./markdown.ts";
import { filesUrl } from "./url.ts";

/** Progress of a transfer: `done` bytes so far, of `total` (`null` when unknown). */
export type Progress = (done: number, total: number | null) => void;

/** Options for {@link TransferError}. */
export interface TransferErrorOptions {
  /** The transfer was cancelled (its signal aborted). @default {false} */
  cancelled?: boolean;
  /** The HTTP status the server answered, when it answered. */
  status?: number;
}

/** Why an upload or download did not happen, as a sentence to show. */
export class TransferError extends Error {
  /** Whether it was cancelled rather than failed. */
  readonly cancelled: boolean;
  /** The server's HTTP status, when it answered with an error. */
  readonly status?: number;
  /** Builds the error. */
  constructor(message: string, options: TransferErrorOptions = {}) {
    super(message);
    this.name = "TransferError";
    this.cancelled = options.cancelled ?? false;
    this.status = options.status;
  }
}

/** Options for {@link uploadFile}. */
export interface UploadOptions {
  /** The chat's WebSocket URL: the upload goes to `/api/files` beside it. */
  wsUrl: string;
  /** The session token (`Authorization: Bearer`). */
  token: string;
  /** The name the file gets. @default {the last part of the path} */
  name?: string;
  /** Cancels the upload. */
  signal?: AbortSignal;
  /** Told as bytes go out. */
  onProgress?: Progress;
}

/** Options for {@link downloadFile}. */
export interface DownloadOptions {
  /** The chat's WebSocket URL, for sentences about a failed connection. */
  wsUrl: string;
  /** The session token, sent as `Authorization: Bearer` (the link works without it too). */
  token?: string;
  /** The size to report progress against when the server sends no `Content-Length`. */
  size?: number;
  /** Cancels the download; the partial file is removed. */
  signal?: AbortSignal;
  /** Told as bytes arrive. */
  onProgress?: Progress;
}

/** Where a download went. */
export interface Downloaded {
  /** The file written. */
  path: string;
  /** Bytes written. */
  size: number;
  /** The path asked for, when a file was there already and another name was chosen. */
  taken?: string;
}

/** `~` and `~/…` with the home directory, as a shell would (when HOME may be read). */
export function expandHome(path: string): string {
  if (path !== "~" && !path.startsWith("~/")) return path;
  let home: string | undefined;
  try {
    home = Deno.env.get("HOME") ?? Deno.env.get("USERPROFILE");
  } catch {
    home = undefined; // no --allow-env for it: left as typed
  }
  return home === undefined ? path : `${home}${path.slice(1)}`;
}

/** The last part of a path (`/a/b/photo.png` → `photo.png`), on any system. */
export function baseName(path: string): string {
  return path.replace(/[\\/]+$/, "").split(/[\\/]/).at(-1) ?? path;
}

/**
 * A file name from the server made safe to create here: no path
 * separators, control characters or names that mean a directory. The server
 * cleans names already; this is the client not relying on it.
 */
export function localName(name: string): string {
  // deno-lint-ignore no-control-regex
  const clean = name.replace(/[\\/\x00-\x1f\x7f]/g, "_").trim();
  return clean === "" || clean === "." || clean === ".." ? "download" : clean;
}

/**
 * The `n`th other name for a path that is taken: `photo (1).png`,
 * `archive (2).tar.gz`, `README (1)`.
 */
export function numbered(path: string, n: number): string {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  const dir = path.slice(0, slash + 1);
  const base = path.slice(slash + 1);
  // The extension starts at the last dot (or at ".tar." for a .tar.gz), never at the first character.
  const m = /^(.+?)((?:\.tar)?\.[^.\s]{1,10})?$/i.exec(base);
  const stem = m?.[1] ?? base;
  const ext = m?.[2] ?? "";
  return `${dir}${stem} (${n})${ext}`;
}

/** Whether the client may `name` (read or write) at `path`, without asking. */
function allowed(name: "read" | "write", path: string): boolean {
  try {
    return Deno.permissions.querySync({ name, path }).state === "granted";
  } catch {
    return false;
  }
}

function noPermission(name: "read" | "write", path: string): TransferError {
  return new TransferError(
    `No permission to ${name} "${path}": start the client with --allow-${name}=DIR for its directory`,
  );
}

/** A local file problem as a sentence. */
function fileProblem(path: string, err: unknown): TransferError {
  if (err instanceof Deno.errors.NotFound) return new TransferError(`There is no file "${path}"`);
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return new TransferError(`"${path}" may not be read: ${(err as Error).message}`);
  }
  if (err instanceof Deno.errors.IsADirectory) {
    return new TransferError(`"${path}" is a directory: give a file`);
  }
  return new TransferError(`Cannot use "${path}": ${(err as Error).message}`);
}

/** Why a request did not get an answer: cancelled, or the connection as a sentence. */
function requestFailure(wsUrl: string, err: unknown, signal?: AbortSignal): TransferError {
  if (signal?.aborted) return new TransferError("Cancelled", { cancelled: true });
  const e = err as Error & { cause?: unknown };
  return new TransferError(describeConnectError(wsUrl, `${e.message} ${e.cause ?? ""}`));
}

/** The server's sentence from an error response (plain text), or its status. */
async function serverSentence(res: Response): Promise<string> {
  let text = "";
  try {
    text = (await res.text()).slice(0, 2000);
  } catch { /* no body: the status says it */ }
  const line = strip(text.split("\n").map((l) => l.trim()).find((l) => l !== "") ?? "");
  if (line === "" || line.startsWith("<") || line.startsWith("{")) {
    return `The server answered ${res.status} ${res.statusText}`.trimEnd();
  }
  return line.length > 300 ? `${line.slice(0, 299)}…` : line;
}

/** Passes chunks on unchanged, counting their bytes. */
function counter(count: (bytes: number) => void): TransformStream<Uint8Array, Uint8Array> {
  return new TransformStream({
    transform(chunk, controller) {
      count(chunk.byteLength);
      controller.enqueue(chunk);
    },
  });
}

/**
 * Uploads the file at `path`, streamed from disk as the request body;
 * resolves what the server answers (the file's id, cleaned name, size and
 * type). Send the id with a message to share it.
 *
 * @throws {TransferError} for a file that cannot be read, a failed
 * connection, the server's refusal (its sentence: too large, storage full,
 * empty file…), or `cancelled` when the signal aborted.
 */
export async function uploadFile(path: string, options: UploadOptions): Promise<FileInfo> {
  const { wsUrl, token, signal, onProgress } = options;
  if (!allowed("read", path)) throw noPermission("read", path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    throw fileProblem(path, err);
  }
  try {
    let total: number | null;
    try {
      const info = await file.stat();
      if (info.isDirectory) throw new Deno.errors.IsADirectory();
      total = info.isFile ? info.size : null;
    } catch (err) {
      throw fileProblem(path, err);
    }
    if (signal?.aborted) throw new TransferError("Cancelled", { cancelled: true });
    let sent = 0;
    onProgress?.(0, total);
    const body = file.readable.pipeThrough(counter((n) => {
      sent += n;
      onProgress?.(sent, total);
    }));
    const name = options.name ?? baseName(path);
    let res: Response;
    try {
      res = await fetch(`${filesUrl(wsUrl)}?name=${encodeURIComponent(name)}`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${token}`,
          "content-type": "application/octet-stream",
        },
        body,
        signal,
      });
    } catch (err) {
      throw requestFailure(wsUrl, err, signal);
    }
    if (res.status !== 201 && res.status !== 200) {
      throw new TransferError(await serverSentence(res), { status: res.status });
    }
    let answer: FileInfo;
    try {
      answer = await res.json();
    } catch (err) {
      throw requestFailure(wsUrl, err, signal);
    }
    if (typeof answer?.id !== "string" || typeof answer.name !== "string") {
      throw new TransferError("The server's answer to the upload names no file");
    }
    return answer;
  } finally {
    try {
      file.close();
    } catch { /* closed by its stream already */ }
  }
}

/**
 * Creates `path` for writing, never over an existing file: when it is
 * taken, `name (1).ext`, `name (2).ext`… Resolves the file and its path.
 */
async function createFree(path: string): Promise<{ file: Deno.FsFile; path: string }> {
  for (let n = 0; n < 1000; n++) {
    const candidate = n === 0 ? path : numbered(path, n);
    if (!allowed("write", candidate)) throw noPermission("write", candidate);
    try {
      const file = await Deno.open(candidate, { write: true, createNew: true });
      return { file, path: candidate };
    } catch (err) {
      if (err instanceof Deno.errors.AlreadyExists) continue;
      throw fileProblem(candidate, err);
    }
  }
  throw new TransferError(`"${path}" and the next 999 names like it are taken`);
}

/**
 * Where a download named `name` goes when the user asked for `path`: the
 * name in the current directory when no path is given, the name inside
 * `path` when that is a directory (or ends with a separator), else `path`.
 */
export function destination(name: string, path?: string): string {
  const safe = localName(name);
  if (path === undefined || path === "") return safe;
  const expanded = expandHome(path);
  if (/[\\/]$/.test(expanded)) return `${expanded}${safe}`;
  if (allowed("read", expanded)) {
    try {
      if (Deno.statSync(expanded).isDirectory) return `${expanded}/${safe}`;
    } catch { /* not there yet: the file's own path */ }
  }
  return expanded;
}

/**
 * Downloads `link` (a file's absolute URL) to `path`, streamed to disk;
 * when `path` exists, to the first free `name (n).ext` beside it instead.
 * A failed or cancelled download leaves no partial file.
 *
 * @throws {TransferError} for a failed connection, the server's refusal
 * (`404`: no such file for this user), a path that cannot be written, or
 * `cancelled` when the signal aborted.
 */
export async function downloadFile(
  link: string,
  path: string,
  options: DownloadOptions,
): Promise<Downloaded> {
  const { wsUrl, signal, onProgress } = options;
  // Checked before asking the server, so that nothing is fetched in vain.
  if (!allowed("write", path)) throw noPermission("write", path);
  let res: Response;
  try {
    res = await fetch(link, {
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      signal,
    });
  } catch (err) {
    throw requestFailure(wsUrl, err, signal);
  }
  if (!res.ok) {
    if (res.status === 404) {
      await res.body?.cancel();
      throw new TransferError(
        "The server has no such file for you (it was deleted, or you are no longer in its conversation)",
        { status: 404 },
      );
    }
    throw new TransferError(await serverSentence(res), { status: res.status });
  }
  const length = Number(res.headers.get("content-length"));
  const total = Number.isSafeInteger(length) && res.headers.has("content-length")
    ? length
    : options.size ?? null;
  let created: { file: Deno.FsFile; path: string };
  try {
    created = await createFree(path);
  } catch (err) {
    await res.body?.cancel();
    throw err;
  }
  let done = 0;
  onProgress?.(0, total);
  try {
    const body = res.body ?? ReadableStream.from<Uint8Array>([]);
    await body.pipeThrough(counter((n) => {
      done += n;
      onProgress?.(done, total);
    })).pipeTo(created.file.writable, { signal });
  } catch (err) {
    try {
      created.file.close();
    } catch { /* closed by its stream already */ }
    await Deno.remove(created.path).catch(() => {});
    if (err instanceof TransferError) throw err;
    throw requestFailure(wsUrl, err, signal);
  }
  if (total !== null && res.headers.has("content-length") && done !== total) {
    await Deno.remove(created.path).catch(() => {});
    throw new TransferError(`The download stopped after ${done} of ${total} bytes`);
  }
  return created.path === path
    ? { path, size: done }
    : { path: created.path, size: done, taken: path };
}
