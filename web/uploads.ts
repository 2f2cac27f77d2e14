// This module is browser compatible.
/**
 * Uploading files for the web client, without the DOM in the way: the
 * request itself (`POST /api/files?name=…` with the session token, the file
 * as the raw body) behind a small {@link Uploader} interface — progress and
 * cancel through XMLHttpRequest in a page, `fetch` where there is none (Deno
 * tests) — and the words and numbers the UI shows about files: sizes, error
 * reasons, the box an image preview takes, the icon a type gets.
 *
 * @module
 */
import { FILE_ID, type FileInfo } from "../protocol.ts";

/** One upload to make. */
export interface UploadRequest {
  /** The full URL, name included (`…/api/files?name=…`). */
  url: string;
  /** The session token, sent as `Authorization: Bearer …`. */
  token: string;
  /** The file's bytes. */
  body: Blob;
  /** Called as bytes go out (not at all where the transport cannot tell). */
  onProgress?: (loaded: number) => void;
}

/** How an upload ended: the HTTP status and body text; status 0 when the network failed. */
export interface UploadResponse {
  status: number;
  text: string;
}

/** An upload on its way. */
export interface UploadHandle {
  /** Settles when the server answered or the network failed (never rejects). */
  done: Promise<UploadResponse>;
  /** Stops the upload; `done` then settles with status 0 and text "aborted". */
  abort(): void;
}

/** Starts an upload. */
export type Uploader = (req: UploadRequest) => UploadHandle;

/** Uploads with XMLHttpRequest: the one browser API that reports upload progress. */
export function xhrUploader(req: UploadRequest): UploadHandle {
  const xhr = new XMLHttpRequest();
  const done = new Promise<UploadResponse>((resolve) => {
    xhr.upload.onprogress = (e) => req.onProgress?.(e.loaded);
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
    xhr.onerror = () => resolve({ status: 0, text: "" });
    xhr.ontimeout = () => resolve({ status: 0, text: "" });
    xhr.onabort = () => resolve({ status: 0, text: "aborted" });
  });
  xhr.open("POST", req.url);
  xhr.setRequestHeader("Authorization", `Bearer ${req.token}`);
  xhr.send(req.body);
  return { done, abort: () => xhr.abort() };
}

/** Uploads with `fetch` (no progress until the end): for runtimes without XMLHttpRequest. */
export function fetchUploader(req: UploadRequest): UploadHandle {
  const ctl = new AbortController();
  const done = (async (): Promise<UploadResponse> => {
    try {
      const res = await fetch(req.url, {
        method: "POST",
        headers: { authorization: `Bearer ${req.token}` },
        body: req.body,
        signal: ctl.signal,
      });
      const text = await res.text();
      if (res.ok) req.onProgress?.(req.body.size);
      return { status: res.status, text };
    } catch {
      return { status: 0, text: ctl.signal.aborted ? "aborted" : "" };
    }
  })();
  return { done, abort: () => ctl.abort() };
}

/** The uploader that fits the runtime. */
export function defaultUploader(): Uploader {
  return typeof XMLHttpRequest === "function" ? xhrUploader : fetchUploader;
}

/**
 * The file a `201` answer describes, or null when the body is not one (a
 * proxy's page, a server from before files).
 */
export function parseFileInfo(text: string): FileInfo | null {
  let v: Partial<FileInfo>;
  try {
    v = JSON.parse(text);
  } catch {
    return null;
  }
  return checkFileInfo(v);
}

/** `v` as a {@link FileInfo} when it is one (kept fields only), else null. */
export function checkFileInfo(v: unknown): FileInfo | null {
  if (typeof v !== "object" || v === null) return null;
  const f = v as Partial<FileInfo>;
  if (
    typeof f.id !== "string" || !FILE_ID.test(f.id) || typeof f.name !== "string" ||
    f.name === "" || !Number.isSafeInteger(f.size) || f.size! < 0 || typeof f.type !== "string"
  ) return null;
  const out: FileInfo = { id: f.id, name: f.name, size: f.size!, type: f.type };
  if (typeof f.url === "string") out.url = f.url;
  if (isDimension(f.width) && isDimension(f.height)) {
    out.width = f.width;
    out.height = f.height;
  }
  return out;
}

function isDimension(n: unknown): n is number {
  return typeof n === "number" && Number.isSafeInteger(n) && n > 0;
}

/**
 * Why an upload failed, in the user's words, and whether trying again may
 * help. The server's own text is kept where it says more than the status
 * (the size limit, what is wrong with an image).
 */
export function uploadProblem(res: UploadResponse): { text: string; retry: boolean } {
  const said = res.text.trim().slice(0, 300);
  switch (res.status) {
    case 0:
      return { text: "The upload failed: check your connection and retry", retry: true };
    case 400:
      return { text: said || "The server refused this file", retry: false };
    case 401:
      return { text: "Your session has ended: sign in again, then attach it again", retry: false };
    case 413:
      return { text: tooLarge(said), retry: false };
    case 429:
      return { text: "Too many uploads at once: retry in a moment", retry: true };
    case 507:
      return {
        text: said || "The chat's storage for files is full: ask whoever runs it to make room",
        retry: true,
      };
    default:
      return {
        text: said && res.status < 500
          ? said
          : `The server could not take the file (error ${res.status}): retry in a moment`,
        retry: res.status >= 500,
      };
  }
}

/** "Too large: …" with the limit as the server said it. */
function tooLarge(said: string): string {
  if (said === "") return "Too large for this chat";
  return /too large|too big|limit/i.test(said) ? said : `Too large: ${said}`;
}

/**
 * A size as people read it, in the decimal units the server's limits use:
 * "512 bytes", "2.4 KB", "18 MB", "1.2 GB".
 */
export function humanSize(n: number): string {
  if (n < 1000) return n === 1 ? "1 byte" : `${n} bytes`;
  const units = ["KB", "MB", "GB", "TB"];
  let v = n / 1000;
  let u = 0;
  while (v >= 999.95 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  const shown = v < 10 ? v.toFixed(1).replace(/\.0$/, "") : String(Math.round(v));
  return `${shown} ${units[u]}`;
}

/**
 * Why a file of `size` bytes is not sent to a server that takes at most
 * `max`: "archive.zip is 3 MB: more than this chat's 1 MB limit", in the
 * same units as the server's own refusal.
 */
export function overLimit(name: string, size: number, max: number): string {
  const shown = humanSize(size);
  const limit = humanSize(max);
  // Rounded to the same figure ("1 MB" over a 1 MB limit): say it without the size.
  return shown === limit
    ? `${name} is larger than this chat's ${limit} limit`
    : `${name} is ${shown}: more than this chat's ${limit} limit`;
}

/** Image types a pasted picture may have, with the extension its name gets. */
const PASTED_EXT: Record<string, string> = {
  "image/png": "png",
  "image/jpeg": "jpg",
  "image/gif": "gif",
  "image/webp": "webp",
};

/**
 * The name a pasted picture is sent with: browsers call every screenshot
 * "image.png" (or nothing), so those get "Pasted image 2026-12-07 at
 * 14.05.09.png" from the local time `at`; any other name is kept.
 */
export function pastedName(name: string, type: string, at: Date): string {
  const ext = PASTED_EXT[type.toLowerCase()];
  if (!ext || (name !== "" && !/^image\.(png|jpe?g|gif|webp)$/i.test(name))) return name;
  const two = (n: number) => String(n).padStart(2, "0");
  const day = `${at.getFullYear()}-${two(at.getMonth() + 1)}-${two(at.getDate())}`;
  const time = `${two(at.getHours())}.${two(at.getMinutes())}.${two(at.getSeconds())}`;
  return `Pasted image ${day} at ${time}.${ext}`;
}

/** The largest box an image preview takes in a message, in CSS pixels. */
export const PREVIEW_BOX = { width: 360, height: 280 };

/**
 * The size an image of `width`×`height` shows at in a box of at most `max`:
 * scaled down to fit (never up), aspect ratio kept, at least 1 pixel.
 */
export function fitBox(
  width: number,
  height: number,
  max: { width: number; height: number } = PREVIEW_BOX,
): { width: number; height: number } {
  const scale = Math.min(1, max.width / width, max.height / height);
  return {
    width: Math.max(1, Math.round(width * scale)),
    height: Math.max(1, Math.round(height * scale)),
  };
}

/** Types browsers show inline: the server serves these inline too. */
const IMAGES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp"]);

/** Whether a file shows as a picture (the server's sniffed type, with its size known). */
export function isImage(f: Pick<FileInfo, "type" | "width" | "height">): boolean {
  return IMAGES.has(f.type) && f.width !== undefined && f.height !== undefined &&
    f.width * f.height <= MAX_PREVIEW_PIXELS;
}

/**
 * Pictures larger than this (in pixels) are shown as a file card, never
 * decoded in the page: a small file can claim, and even hold, a picture
 * that would take gigabytes to draw (a "decompression bomb").
 */
export const MAX_PREVIEW_PIXELS = 50_000_000;

/**
 * A message's files as one line, where a preview would show its words (a
 * reply's quote, a notification, a message of files alone):
 * "🖼️ photo.jpg", "📎 report.pdf", "🖼️ 3 pictures", "📎 3 files"; "" for none.
 */
export function filesLine(files: readonly FileInfo[]): string {
  if (files.length === 0) return "";
  const pictures = files.every(isImage);
  const icon = pictures ? "🖼️" : "📎";
  if (files.length === 1) return `${icon} ${files[0].name}`;
  return `${icon} ${files.length} ${pictures ? "pictures" : "files"}`;
}

/** Each file of a message on its own line, as {@link filesLine} names one: what copying them gives. */
export function filesText(files: readonly FileInfo[]): string {
  return files.map((f) => filesLine([f])).join("\n");
}

/** What a file is, for its icon. */
export type FileKind =
  | "image"
  | "video"
  | "audio"
  | "pdf"
  | "archive"
  | "sheet"
  | "doc"
  | "code"
  | "text"
  | "file";

const EXTENSIONS: Record<string, FileKind> = {
  zip: "archive",
  gz: "archive",
  tgz: "archive",
  bz2: "archive",
  xz: "archive",
  "7z": "archive",
  rar: "archive",
  tar: "archive",
  csv: "sheet",
  tsv: "sheet",
  xls: "sheet",
  xlsx: "sheet",
  ods: "sheet",
  numbers: "sheet",
  doc: "doc",
  docx: "doc",
  odt: "doc",
  rtf: "doc",
  pages: "doc",
  ppt: "doc",
  pptx: "doc",
  key: "doc",
  odp: "doc",
  md: "text",
  txt: "text",
  log: "text",
  json: "code",
  ts: "code",
  tsx: "code",
  js: "code",
  py: "code",
  go: "code",
  rs: "code",
  c: "code",
  h: "code",
  java: "code",
  rb: "code",
  sh: "code",
  sql: "code",
  html: "code",
  css: "code",
  yaml: "code",
  yml: "code",
  toml: "code",
  xml: "code",
  pdf: "pdf",
  mp3: "audio",
  wav: "audio",
  ogg: "audio",
  m4a: "audio",
  flac: "audio",
  mp4: "video",
  mov: "video",
  webm: "video",
  mkv: "video",
  avi: "video",
  png: "image",
  jpg: "image",
  jpeg: "image",
  gif: "image",
  webp: "image",
  svg: "image",
  heic: "image",
};

/**
 * The kind of a file, from its type and then its name: the server decides
 * the type from the bytes and answers `application/octet-stream` for what
 * it cannot tell, where the name still says what the file is meant to be.
 */
export function fileKind(type: string, name: string): FileKind {
  const t = type.toLowerCase();
  if (t.startsWith("image/")) return "image";
  if (t.startsWith("video/")) return "video";
  if (t.startsWith("audio/")) return "audio";
  if (t === "application/pdf") return "pdf";
  if (/zip|gzip|x-tar|x-7z|x-rar|x-bzip|x-xz/.test(t)) return "archive";
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 ? name.slice(dot + 1).toLowerCase() : "";
  return EXTENSIONS[ext] ?? (t.startsWith("text/") ? "text" : "file");
}

/** The upload URL for a file called `name` on `origin`. */
export function uploadUrl(origin: string, name: string): string {
  const url = new URL("/api/files", origin);
  url.searchParams.set("name", name);
  return url.href;
}
