/**
 * Serves the web app from `web/dist/`, embedded with text imports so the
 * server needs no web/ folder at run time (and `deno compile` ships it).
 *
 * Everything is prepared once at startup: the bundle and stylesheet get
 * content-hashed names (cached for a year, immutable), `index.html` points at
 * them and is revalidated with an ETag, and each file is gzipped once for
 * browsers that accept it.
 *
 * @module
 */
import indexHtml from "../../web/dist/index.html" with { type: "text" };
import appJs from "../../web/dist/app.js" with { type: "text" };
import appCss from "../../web/dist/app.css" with { type: "text" };
import faviconSvg from "../../web/dist/favicon.svg" with { type: "text" };
import manifest from "../../web/dist/manifest.webmanifest" with { type: "text" };
import serviceWorker from "../../web/dist/sw.js" with { type: "text" };
import icons from "../../web/dist/icons.json" with { type: "json" };
import type { StaticHandler } from "./http.ts";

/** One file the app serves. */
export interface StaticFile {
  /** URL path, e.g. `/app.js`. */
  path: string;
  /** Content: text, or bytes (the icons). */
  body: string | Uint8Array<ArrayBuffer>;
  /** `Content-Type` header. */
  type: string;
}

/** Cache policy of a served file. */
type Caching = "immutable" | "revalidate" | "day";

interface Prepared {
  type: string;
  body: Uint8Array<ArrayBuffer>;
  gzip: Uint8Array<ArrayBuffer> | null;
  etag: string;
  caching: Caching;
}

const CACHE_CONTROL: Record<Caching, string> = {
  immutable: "public, max-age=31536000, immutable",
  revalidate: "no-cache",
  day: "public, max-age=86400",
};

/** Files smaller than this are not worth compressing. */
const MIN_GZIP = 512;

/** Where the service worker is served: its scope is the whole app. */
export const SERVICE_WORKER_PATH = "/sw.js";

function base64(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.fromBase64(text) as Uint8Array<ArrayBuffer>;
}

/** The embedded web app's files as they are in `web/dist/`: index, bundle, stylesheet, icon, manifest and service worker. */
export const WEB_APP_FILES: StaticFile[] = [
  { path: "/index.html", body: indexHtml, type: "text/html; charset=utf-8" },
  { path: "/app.js", body: appJs, type: "text/javascript; charset=utf-8" },
  { path: "/app.css", body: appCss, type: "text/css; charset=utf-8" },
  { path: "/favicon.svg", body: faviconSvg, type: "image/svg+xml" },
  {
    path: "/manifest.webmanifest",
    body: manifest,
    type: "application/manifest+json; charset=utf-8",
  },
  { path: SERVICE_WORKER_PATH, body: serviceWorker, type: "text/javascript; charset=utf-8" },
];

/**
 * The app's PNG icons (for the manifest and the install prompt), carried as
 * base64 in `web/dist/icons.json`: the server embeds text and JSON only.
 */
export const WEB_APP_ICONS: StaticFile[] = Object.entries(icons as Record<string, string>).map((
  [name, b64],
) => ({ path: `/${name}`, body: base64(b64), type: "image/png" }));

async function sha256(bytes: Uint8Array<ArrayBuffer>): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  return Array.from(digest.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function gzip(bytes: Uint8Array<ArrayBuffer>): Promise<Uint8Array<ArrayBuffer>> {
  const stream = new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

function bytesOf(body: string | Uint8Array<ArrayBuffer>): Uint8Array<ArrayBuffer> {
  return typeof body === "string"
    ? new TextEncoder().encode(body) as Uint8Array<ArrayBuffer>
    : body;
}

async function prepare(
  body: string | Uint8Array<ArrayBuffer>,
  type: string,
  caching: Caching,
): Promise<Prepared> {
  const bytes = bytesOf(body);
  // Compressed images gain nothing from gzip.
  const zipped = bytes.length >= MIN_GZIP && !type.startsWith("image/png")
    ? await gzip(bytes)
    : null;
  return {
    type,
    body: bytes,
    gzip: zipped && zipped.length < bytes.length ? zipped : null,
    etag: `"${await sha256(bytes)}"`,
    caching,
  };
}

/** Whether the request's `Accept-Encoding` allows gzip. */
export function acceptsGzip(header: string | null): boolean {
  if (!header) return false;
  for (const part of header.split(",")) {
    const [coding, ...params] = part.trim().toLowerCase().split(";");
    if (coding.trim() !== "gzip" && coding.trim() !== "*") continue;
    const q = params.map((p) => p.trim()).find((p) => p.startsWith("q="));
    return q === undefined || Number(q.slice(2)) > 0;
  }
  return false;
}

/** Whether `If-None-Match` names `etag` (weak or strong, or `*`). */
function matches(header: string | null, etag: string): boolean {
  if (!header) return false;
  return header.split(",").some((t) => {
    const tag = t.trim().replace(/^W\//, "");
    return tag === etag || tag === "*";
  });
}

function respond(req: Request, file: Prepared): Response {
  const headers: Record<string, string> = {
    "content-type": file.type,
    "cache-control": CACHE_CONTROL[file.caching],
    etag: file.etag,
  };
  if (file.gzip) headers.vary = "Accept-Encoding";
  if (matches(req.headers.get("if-none-match"), file.etag)) {
    delete headers["content-type"];
    return new Response(null, { status: 304, headers });
  }
  let body = file.body;
  if (file.gzip && acceptsGzip(req.headers.get("accept-encoding"))) {
    body = file.gzip;
    headers["content-encoding"] = "gzip";
  }
  headers["content-length"] = String(body.length);
  return new Response(body, { headers });
}

/**
 * Builds the handler for a set of files. `/app.js` and `/app.css` are served
 * under content-hashed names (`/assets/app.<hash>.js`) that `index.html`
 * refers to; `/` serves `index.html`.
 *
 * The service worker (`/sw.js`) gets `self.CHAT_BUILD = {version, shell}`
 * in front: `version` hashes every other file, so any change to the app is a
 * new worker (which the page offers to reload into), and `shell` lists what
 * it keeps for starting offline. It is revalidated on every check, as the
 * browser's update check needs.
 *
 * @example
 * ```ts
 * import { createStaticHandler } from "./static.ts";
 * const handler = await createStaticHandler([
 *   { path: "/index.html", body: "<p>hi</p>", type: "text/html; charset=utf-8" },
 * ]);
 * const res = await handler(new Request("http://localhost/"), "/");
 * if (res?.status !== 200) throw new Error("expected the index");
 * await res.body?.cancel();
 * ```
 */
export async function createStaticHandler(files: StaticFile[]): Promise<StaticHandler> {
  const table = new Map<string, Prepared>();
  let index: string | undefined;
  // Hashed names first, so the index can point at them.
  const renamed = new Map<string, string>();
  for (const f of files) {
    const m = f.path.match(/^\/(app)\.(js|css)$/);
    if (!m) continue;
    const bytes = bytesOf(f.body);
    const hashed = `/assets/${m[1]}.${(await sha256(bytes)).slice(0, 12)}.${m[2]}`;
    renamed.set(f.path, hashed);
    table.set(hashed, await prepare(f.body, f.type, "immutable"));
  }
  let worker: StaticFile | undefined;
  for (const f of files) {
    if (renamed.has(f.path)) continue;
    if (f.path === SERVICE_WORKER_PATH) worker = f;
    else if (f.path === "/index.html") {
      index = typeof f.body === "string" ? f.body : new TextDecoder().decode(f.body);
      for (const [from, to] of renamed) index = index.replaceAll(`"${from}"`, `"${to}"`);
      table.set("/index.html", await prepare(index, f.type, "revalidate"));
    } else table.set(f.path, await prepare(f.body, f.type, "day"));
  }
  const home = table.get("/index.html");
  if (home) table.set("/", home);
  if (worker) {
    const paths = [...table.keys()].filter((p) => p !== "/index.html").sort();
    const etags = paths.map((p) => `${p} ${table.get(p)!.etag}`).join("\n") + "\n" +
      (typeof worker.body === "string" ? worker.body : new TextDecoder().decode(worker.body));
    const version = (await sha256(new TextEncoder().encode(etags) as Uint8Array<ArrayBuffer>))
      .slice(0, 12);
    const prefix = `self.CHAT_BUILD=${JSON.stringify({ version, shell: paths })};\n`;
    const body = typeof worker.body === "string"
      ? prefix + worker.body
      : prefix + new TextDecoder().decode(worker.body);
    table.set(SERVICE_WORKER_PATH, await prepare(body, worker.type, "revalidate"));
  }
  return (req, path) => {
    const file = table.get(path);
    return file ? respond(req, file) : null;
  };
}

let webApp: Promise<StaticHandler> | undefined;

/** The embedded web app's handler, prepared once per process. */
export function webAppHandler(): Promise<StaticHandler> {
  webApp ??= createStaticHandler([...WEB_APP_FILES, ...WEB_APP_ICONS]);
  return webApp;
}
