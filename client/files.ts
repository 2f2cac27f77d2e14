/**
 * Files for the terminal client: an upload (`POST /api/files`) streamed from
 * disk and a download streamed to disk, each with progress and cancellable
 * by an `AbortSignal`; free names for downloads, so that nothing is
 * overwritten. Neither ever holds a whole file in memory.
 *
 * Each path is checked with `Deno.permissions.querySync` first. A
 * permission not granted yet is asked for, for exactly that path, through
 * the caller's {@link Ask} (the terminal client shows Deno's own question);
 * without one, or once refused, the transfer is refused with a sentence
 * saying what would allow it, for `deno run` and for the compiled binary.
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

/** A permission a transfer needs: reading the file to upload, or writing a download. */
export type Access = "read" | "write";

/**
 * Asks the user for `access` to exactly `path` (Deno's own question, see
 * `Deno.permissions.request`); resolves the permission's state afterwards:
 * `"granted"`, `"denied"` when the user said no, and `"prompt"` when nobody
 * could be asked after all (Deno was started with `--no-prompt`).
 */
export type Ask = (access: Access, path: string) => Promise<Deno.PermissionState>;

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
  /** Asks for read access to the file when it is not granted yet; without it, refused. */
  ask?: Ask;
  /**
   * Told once reading the file is allowed (any question answered), before it
   * is opened: opening a FIFO waits for its writer.
   */
  onReady?: () => void;
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
  /**
   * Asks for write access to each file name tried (the path, then
   * `name (1).ext`…) that is not granted yet; without it, refused.
   */
  ask?: Ask;
  /**
   * The file's name: when the path turns out to be a folder the client may
   * not look into (it could not tell before), the file goes in it by this name.
   */
  name?: string;
  /** Told once the file is created (any question answered), before the server is asked. */
  onReady?: () => void;
  /**
   * Where the file goes instead when the folder of `path` turns out not to
   * exist (a Downloads folder the client could not look into beforehand).
   */
  fallback?: string;
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

/** Reads `name` from the environment only when allowed already: never a question. */
function envAllowed(name: string): string | undefined {
  try {
    if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
      return undefined;
    }
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The user's Downloads folder, as {@link downloadsFolder} finds it. */
export interface DownloadsFolder {
  /** The folder's absolute path. */
  path: string;
  /**
   * Whether it is known to exist: `false` when the client may not look
   * (then a download tries it, and falls back to the current directory).
   */
  checked: boolean;
}

/**
 * Where `/download` saves by default: `$XDG_DOWNLOAD_DIR` when it is set
 * (and readable from the environment without a question), else
 * `~/Downloads`; only a folder that exists, or that the client may not look
 * into (it may exist). `undefined` when there is none: the current
 * directory then.
 */
export function downloadsFolder(): DownloadsFolder | undefined {
  const candidates: string[] = [];
  const xdg = envAllowed("XDG_DOWNLOAD_DIR");
  // Like the XDG spec's other variables: a relative path is ignored.
  if (xdg && xdg.startsWith("/")) candidates.push(xdg.replace(/(.)\/+$/, "$1"));
  const home = envAllowed("HOME") ?? envAllowed("USERPROFILE");
  if (home) candidates.push(`${home.replace(/[\\/]+$/, "")}/Downloads`);
  for (const path of candidates) {
    if (!allowed("read", path)) return { path, checked: false };
    try {
      if (Deno.statSync(path).isDirectory) return { path, checked: true };
    } catch { /* not there: the next one */ }
  }
  return undefined;
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

/** The state of `access` to `path`; `"denied"` when Deno cannot say. */
function permissionState(access: Access, path: string): Deno.PermissionState {
  try {
    return Deno.permissions.querySync({ name: access, path }).state;
  } catch {
    return "denied";
  }
}

/** Whether the client may `access` `path`, without asking. */
function allowed(access: Access, path: string): boolean {
  return permissionState(access, path) === "granted";
}

/**
 * Makes sure the client may `access` `path`: granted already, or asked for
 * with `ask` (when Deno would still ask) and granted.
 *
 * @throws {TransferError} when it may not: refused now, refused earlier in
 * this run (Deno asks once), or nobody to ask; the sentence says what to do.
 */
async function obtain(access: Access, path: string, ask?: Ask): Promise<void> {
  let state = permissionState(access, path);
  if (state === "granted") return;
  if (state === "prompt" && ask) {
    try {
      state = await ask(access, path);
    } catch (err) {
      if (err instanceof TransferError) throw err;
      state = permissionState(access, path);
    }
    if (state === "granted") return;
    if (state === "denied") {
      throw new TransferError(
        `${access === "read" ? "Reading" : "Writing"} "${path}" was not allowed`,
      );
    }
  }
  throw new TransferError(
    state === "denied"
      ? `No permission to ${access} "${path}": it was refused earlier, and Deno asks only once a run: restart the client and answer y, or start deno run with --allow-${access}=DIR for its folder`
      : `No permission to ${access} "${path}" and nobody to ask: run the client in a terminal, or with --allow-${access}=FOLDER`,
  );
}

/** A local file problem as a sentence. */
function fileProblem(path: string, err: unknown, access: Access = "read"): TransferError {
  if (err instanceof Deno.errors.NotFound) {
    return new TransferError(
      access === "read" ? `There is no file "${path}"` : `There is no folder for "${path}"`,
    );
  }
  if (err instanceof Deno.errors.PermissionDenied || err instanceof Deno.errors.NotCapable) {
    return new TransferError(
      `"${path}" may not be ${access === "read" ? "read" : "written"}: ${(err as Error).message}`,
    );
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
  await obtain("read", path, options.ask);
  options.onReady?.();
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

/** A file created for a download, and its path. */
interface Created {
  file: Deno.FsFile;
  path: string;
  /** The name asked for, when something was there and `path` is another one. */
  taken?: string;
}

/** Creates `path` anew; `null` when something is there already. */
async function createNew(path: string): Promise<Created | null> {
  try {
    return { file: await Deno.open(path, { write: true, createNew: true }), path };
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return null;
    throw err;
  }
}

/**
 * Creates `path` for writing, never over an existing file: when it is
 * taken, `name (1).ext`, `name (2).ext`… Each name tried is asked for with
 * `ask` unless granted. When `path` is taken and the client may not look at
 * it, it may be a folder: then the file goes in it as `inside` (write access
 * to the folder was just granted for exactly the path the user typed).
 */
async function createFree(
  path: string,
  options: { ask?: Ask; inside?: string; fallback?: string } = {},
): Promise<Created> {
  let base = path;
  let inside = options.inside === undefined ? undefined : localName(options.inside);
  for (let n = 0; n < 1000; n++) {
    const candidate = n === 0 ? base : numbered(base, n);
    await obtain("write", candidate, options.ask);
    let created: Created | null;
    try {
      created = await createNew(candidate);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound && options.fallback !== undefined) {
        return createFree(options.fallback, { ask: options.ask });
      }
      throw fileProblem(candidate, err, "write");
    }
    if (created) return n === 0 ? created : { ...created, taken: base };
    if (n === 0 && inside !== undefined && !allowed("read", candidate)) {
      // No stat without read access: trying a name inside tells a folder from a file.
      const within = `${candidate}/${inside}`;
      inside = undefined;
      try {
        created = await createNew(within);
      } catch (err) {
        if (err instanceof Deno.errors.NotADirectory) continue;
        throw fileProblem(within, err, "write");
      }
      if (created) return created;
      base = within;
      n = 0;
    }
  }
  throw new TransferError(`"${path}" and the next 999 names like it are taken`);
}

/** Closes and removes a download's file that is not to be kept. */
async function discard(created: Created): Promise<void> {
  try {
    created.file.close();
  } catch { /* closed by its stream already */ }
  await Deno.remove(created.path).catch(() => {});
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
  // Created before the server is asked: every question comes first, and nothing is fetched in vain.
  const created = await createFree(path, {
    ask: options.ask,
    inside: options.name,
    fallback: options.fallback,
  });
  options.onReady?.();
  let res: Response;
  try {
    res = await fetch(link, {
      headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
      signal,
    });
  } catch (err) {
    await discard(created);
    throw requestFailure(wsUrl, err, signal);
  }
  if (!res.ok) {
    await discard(created);
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
  let done = 0;
  onProgress?.(0, total);
  try {
    const body = res.body ?? ReadableStream.from<Uint8Array>([]);
    await body.pipeThrough(counter((n) => {
      done += n;
      onProgress?.(done, total);
    })).pipeTo(created.file.writable, { signal });
  } catch (err) {
    await discard(created);
    if (err instanceof TransferError) throw err;
    throw requestFailure(wsUrl, err, signal);
  }
  if (total !== null && res.headers.has("content-length") && done !== total) {
    await Deno.remove(created.path).catch(() => {});
    throw new TransferError(`The download stopped after ${done} of ${total} bytes`);
  }
  return created.taken === undefined
    ? { path: created.path, size: done }
    : { path: created.path, size: done, taken: created.taken };
}
