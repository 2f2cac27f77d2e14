/**
 * HTTP routing and the WebSocket upgrade, and the one error boundary: an
 * {@link HttpError} becomes its status; anything else is logged and answered
 * with a plain 500, never a stack trace.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import type { Conn, Hub } from "../hub/hub.ts";
import type { Logger } from "../log.ts";
import { DEFAULTS } from "../config.ts";
import type { SocketReaper } from "../hub/reaper.ts";
import type { FileRoutes } from "./files.ts";
import type { AdminRoutes } from "./admin.ts";
import { CONTENT_TYPE } from "../metrics/metrics.ts";

/**
 * An error with an HTTP status, safe to show to the client. With a `code`
 * (for the JSON routes) it is answered as `{"error": code, "message": …}`,
 * else as plain text.
 */
export class HttpError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** Extra response headers (e.g. `Allow`). */
  readonly headers: Record<string, string>;
  /** A machine-readable code, e.g. `"invite_used"`. */
  readonly code?: string;
  /** More fields for the JSON answer. */
  readonly extra?: Record<string, unknown>;
  /** Builds the error. */
  constructor(
    status: number,
    message: string,
    headers: Record<string, string> = {},
    code?: string,
    extra?: Record<string, unknown>,
  ) {
    super(message);
    this.name = "HttpError";
    this.status = status;
    this.headers = headers;
    if (code !== undefined) this.code = code;
    if (extra !== undefined) this.extra = extra;
  }
}

/** Headers on every response. */
export const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self' ws: wss:; " +
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
  "cross-origin-opener-policy": "same-origin",
};

/** Largest request body accepted, in bytes: no route takes one, so anything big is abuse. */
export const MAX_BODY_BYTES = 64 * 1024;

/** Largest total size of the request headers, in bytes. */
export const MAX_HEADER_BYTES = 32 * 1024;

/** A static file answer supplied by the web app. */
export type StaticHandler = (
  req: Request,
  path: string,
) => Response | null | Promise<Response | null>;

/** What the handler needs. */
export interface HttpDeps {
  hub: Hub;
  log: Logger;
  /** `/healthz` body. */
  health: () => Promise<Record<string, unknown>>;
  /** `/api/info` body: auth mode and the like, for the web app. */
  info: () => Record<string, unknown>;
  /** Other web origins allowed to open WebSockets. */
  allowedOrigins?: string[];
  /** Seconds before an unanswered ping drops a socket (0: never). @default {30} */
  idleTimeout?: number;
  /** Take the client address from X-Forwarded-For. @default {false} */
  trustProxy?: boolean;
  /** The server speaks https itself (for the Origin check). @default {false} */
  tls?: boolean;
  /**
   * The secret the built-in tunnel adds to every request it forwards (in
   * {@link TUNNEL_HEADER}): only such requests have their client address
   * taken from the tunnel's X-Forwarded-For.
   */
  tunnelSecret?: string;
  /** Static files (the web app). */
  static?: StaticHandler;
  /** Drops connections stuck while closing. */
  reaper?: SocketReaper;
  /** Uploads and downloads of attachments; absent: those paths are 404. */
  files?: FileRoutes;
  /** Invite links and the audit log; absent: those paths are 404. */
  admin?: AdminRoutes;
  /** `GET /metrics` on this port (`--metrics` with `--metrics-token`); absent: 404. */
  metrics?: MetricsRoute;
}

/** What `/metrics` serves, and who may read it. */
export interface MetricsRoute {
  /** The metrics in the Prometheus text format. */
  render: () => string;
  /** The bearer token a scraper must send; absent: anyone may read them (a private address). */
  token?: string;
}

/** The paths of the admin routes (`server/http/admin.ts`). */
const ADMIN_PATHS = /^\/api\/(audit|bans|invites|people|rooms)(\/|$)/;

/** The header the built-in tunnel adds, carrying {@link HttpDeps.tunnelSecret}. */
export const TUNNEL_HEADER = "x-chat-tunnel";

/** Builds the `Deno.serve` handler. */
export function createHandler(
  deps: HttpDeps,
): (req: Request, info: Deno.ServeHandlerInfo) => Promise<Response> {
  const allowed = new Set((deps.allowedOrigins ?? []).map((o) => normalizeOrigin(o) ?? o));
  const secret = deps.tunnelSecret ? Buffer.from(deps.tunnelSecret) : null;
  /** Whether the request came through the built-in tunnel (it carries the tunnel's secret). */
  function viaTunnel(req: Request): boolean {
    const values = secret ? req.headers.get(TUNNEL_HEADER)?.split(",") : undefined;
    return values?.some((v) => {
      const b = Buffer.from(v.trim());
      return b.length === secret!.length && timingSafeEqual(b, secret!);
    }) ?? false;
  }
  const hub = deps.hub;
  // One set of socket handlers shared by every connection (no per-socket closures).
  const conns = new WeakMap<WebSocket, Conn>();
  function onMessage(this: WebSocket, e: MessageEvent): void {
    const conn = conns.get(this);
    if (conn) hub.receive(conn, e.data);
  }
  function onOpen(this: WebSocket): void {
    const conn = conns.get(this);
    if (conn) hub.opened(conn);
  }
  function onClose(this: WebSocket): void {
    deps.reaper?.untrack(this);
    const conn = conns.get(this);
    if (conn) hub.close(conn);
  }
  function upgrade(req: Request, addr: string, scheme: string | null): Response {
    if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
      throw new HttpError(426, "This endpoint speaks WebSocket: connect with a WebSocket client", {
        upgrade: "websocket",
      });
    }
    const origin = req.headers.get("origin");
    if (origin !== null && !originAllowed(origin, req, scheme, allowed)) {
      deps.log.warn(`Refused a WebSocket from origin "${origin.slice(0, 100)}" (${addr})`);
      throw new HttpError(
        403,
        "Cross-origin WebSocket refused: add the origin to --allowed-origins" +
          (scheme !== null && originAllowed(origin, req, null, allowed)
            ? ` (the page is not on ${scheme}: behind a TLS proxy, pass --trust-proxy and have it send X-Forwarded-Proto)`
            : ""),
      );
    }
    // Chrome refuses a connection whose requested subprotocol is not echoed.
    const protocol = req.headers.get("sec-websocket-protocol")?.split(",")[0].trim();
    let upgraded: { socket: WebSocket; response: Response };
    try {
      upgraded = Deno.upgradeWebSocket(req, {
        idleTimeout: deps.idleTimeout ?? DEFAULTS.idleTimeout,
        ...(protocol ? { protocol } : {}),
      });
    } catch (err) {
      // A handshake missing its Connection or Sec-WebSocket-Key header: the client's mistake.
      throw new HttpError(400, `Bad WebSocket handshake: ${(err as Error).message}`);
    }
    const { socket, response } = upgraded;
    socket.binaryType = "arraybuffer";
    const conn = hub.open(socket, { addr });
    conns.set(socket, conn);
    deps.reaper?.track(socket, addr);
    socket.onopen = onOpen;
    socket.onmessage = onMessage;
    // No error handler: the close event follows every error, and each
    // handler costs every open socket a listener.
    socket.onclose = onClose;
    return response;
  }

  async function route(req: Request, addr: string, scheme: string | null): Promise<Response> {
    const url = new URL(req.url);
    const path = url.pathname;
    // An upload's body is bounded by --max-upload, as it streams.
    checkSize(req, path !== "/ws", path !== "/api/files" || !deps.files);
    const method = req.method;
    const only = (...methods: string[]) => {
      if (!methods.includes(method)) {
        throw new HttpError(405, `Method ${method} is not allowed here`, {
          allow: methods.join(", "),
        });
      }
    };
    switch (path) {
      case "/ws":
        only("GET");
        return upgrade(req, addr, scheme);
      case "/healthz":
        only("GET", "HEAD");
        return json(await deps.health(), { "cache-control": "no-store" });
      case "/api/info":
        only("GET", "HEAD");
        return json(deps.info(), { "cache-control": "no-store" });
      case "/api/signout": {
        only("POST");
        // A bearer header, never a cookie: no other site can make a browser send it.
        const m = /^Bearer\s+(\S{1,1024})$/i.exec(req.headers.get("authorization") ?? "");
        if (!m) {
          throw new HttpError(401, "Send the session token as Authorization: Bearer TOKEN", {
            "www-authenticate": "Bearer",
          });
        }
        if (!(await hub.signOut(m[1]))) {
          throw new HttpError(401, "The session is not valid (expired or already signed out)", {
            "www-authenticate": "Bearer",
          });
        }
        return new Response(null, { status: 204, headers: { "cache-control": "no-store" } });
      }
      case "/metrics":
        if (!deps.metrics) throw new HttpError(404, "Not found");
        return metricsResponse(req, deps.metrics);
      case "/api/files":
        if (!deps.files) break;
        only("POST");
        return await deps.files.upload(req, url, addr);
    }
    if (deps.admin && ADMIN_PATHS.test(path)) {
      const res = await deps.admin.handle(req, url, addr);
      if (res) return res;
    }
    if (deps.files && path.startsWith("/files/")) {
      only("GET", "HEAD");
      return await deps.files.download(req, url);
    }
    if (deps.static) {
      const res = await deps.static(req, path);
      if (res) {
        if (method !== "GET" && method !== "HEAD") {
          await res.body?.cancel();
          throw new HttpError(405, `Method ${method} is not allowed here`, { allow: "GET, HEAD" });
        }
        return res;
      }
    }
    throw new HttpError(404, "Not found");
  }

  return async (req, info) => {
    const remote = info.remoteAddr as Deno.NetAddr;
    let addr = clientAddress(remote.hostname ?? "unknown");
    // The scheme the client used; null when a trusted proxy does not say.
    let scheme: string | null = deps.tls ? "https" : "http";
    const tunnel = viaTunnel(req);
    if (tunnel || deps.trustProxy) {
      // The proxy appends the address it saw: the last entry is the one it
      // vouches for; earlier ones are whatever the client sent.
      const fwd = req.headers.get("x-forwarded-for");
      const last = fwd?.slice(fwd.lastIndexOf(",") + 1).trim();
      if (last && isIP(last)) addr = clientAddress(last);
      const proto = req.headers.get("x-forwarded-proto")?.split(",").pop()?.trim().toLowerCase();
      if (tunnel) scheme = "https";
      // Unsaid: a server that serves TLS itself still knows; otherwise nobody does.
      else scheme = proto === "http" || proto === "https" ? proto : deps.tls ? "https" : null;
    }
    return await respond(req, deps.log, () => route(req, addr, scheme));
  };
}

/**
 * Runs a route behind the error boundary (an {@link HttpError} becomes its
 * status, anything else a logged 500), adds the security headers, and drops
 * the body of a HEAD answer.
 */
async function respond(
  req: Request,
  log: Logger,
  route: () => Promise<Response>,
): Promise<Response> {
  let res: Response;
  try {
    res = await route();
  } catch (err) {
    if (err instanceof HttpError && err.code !== undefined) {
      res = json(
        { ...err.extra, error: err.code, message: err.message },
        { "cache-control": "no-store", ...err.headers },
        err.status,
      );
    } else if (err instanceof HttpError) {
      res = new Response(err.message + "\n", {
        status: err.status,
        headers: { "content-type": "text/plain; charset=utf-8", ...err.headers },
      });
    } else {
      log.error(
        `${req.method} ${new URL(req.url).pathname} failed: ${(err as Error).stack ?? err}`,
      );
      res = new Response("Internal server error\n", {
        status: 500,
        headers: { "content-type": "text/plain; charset=utf-8" },
      });
    }
    if (req.body && !req.bodyUsed) await req.body.cancel().catch(() => {});
  }
  if (res.status === 101) return res;
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) {
    if (!res.headers.has(k)) res.headers.set(k, v);
  }
  if (req.method === "HEAD" && res.body) {
    await res.body.cancel();
    return new Response(null, { status: res.status, headers: res.headers });
  }
  return res;
}

/**
 * The answer to `GET /metrics`: 401 without the right bearer token (when
 * there is one), the metrics otherwise.
 */
function metricsResponse(req: Request, metrics: MetricsRoute): Response {
  if (req.method !== "GET" && req.method !== "HEAD") {
    throw new HttpError(405, `Method ${req.method} is not allowed here`, { allow: "GET, HEAD" });
  }
  if (metrics.token !== undefined && !bearerIs(req, metrics.token)) {
    throw new HttpError(401, "Send the metrics token as Authorization: Bearer TOKEN", {
      "www-authenticate": 'Bearer realm="metrics"',
    });
  }
  return new Response(metrics.render(), {
    headers: { "content-type": CONTENT_TYPE, "cache-control": "no-store" },
  });
}

/**
 * Whether the request's bearer token is `token`, compared in constant time:
 * both are hashed first, so neither their bytes nor their lengths show in
 * the time it takes.
 */
function bearerIs(req: Request, token: string): boolean {
  const m = /^Bearer\s+(\S+)$/i.exec(req.headers.get("authorization") ?? "");
  if (!m) return false;
  const digest = (text: string) => createHash("sha256").update(text).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}

/**
 * The handler of the address `--metrics-listen` names: `/metrics` (without
 * a token unless `metrics.token` says so) and 404 for anything else.
 */
export function createMetricsHandler(
  metrics: MetricsRoute,
  log: Logger,
): (req: Request) => Promise<Response> {
  return (req) =>
    respond(req, log, () => {
      checkSize(req);
      if (new URL(req.url).pathname !== "/metrics") throw new HttpError(404, "Not found");
      return Promise.resolve(metricsResponse(req, metrics));
    });
}

/** What {@link createStartingHandler} needs. */
export interface StartingDeps {
  log: Logger;
  /** What the node waits for, named in the answers (`"Redis"`). */
  waitingFor: string;
  /** `/healthz` body; its `status` is `"starting"`. */
  health: () => Promise<Record<string, unknown>>;
  /** Static files (the web app). */
  static?: StaticHandler;
  /** `GET /metrics` on this port, as {@link HttpDeps.metrics}: a node that waits says so there too. */
  metrics?: MetricsRoute;
}

/**
 * The handler of a node that waits for its shared backend at start:
 * `/healthz` answers 503 with its body (`"status":"starting"`), so a load
 * balancer sends nobody yet; `/ws` and `/api/…` answer 503 saying what the
 * node waits for; the web app's files are served (the app retries).
 */
export function createStartingHandler(deps: StartingDeps): (req: Request) => Promise<Response> {
  const starting = () =>
    new HttpError(
      503,
      `The server is starting (waiting for ${deps.waitingFor}): try again shortly`,
      { "retry-after": "1" },
    );
  async function route(req: Request): Promise<Response> {
    const path = new URL(req.url).pathname;
    checkSize(req, path !== "/ws");
    const readOnly = req.method === "GET" || req.method === "HEAD";
    if (path === "/healthz") {
      if (!readOnly) {
        throw new HttpError(405, `Method ${req.method} is not allowed here`, {
          allow: "GET, HEAD",
        });
      }
      return json(await deps.health(), { "cache-control": "no-store" }, 503);
    }
    if (path === "/metrics" && deps.metrics) return metricsResponse(req, deps.metrics);
    if (path === "/ws" || path.startsWith("/api/") || path.startsWith("/files/")) throw starting();
    const res = await deps.static?.(req, path);
    if (res) {
      if (!readOnly) {
        await res.body?.cancel();
        throw new HttpError(405, `Method ${req.method} is not allowed here`, {
          allow: "GET, HEAD",
        });
      }
      return res;
    }
    throw new HttpError(404, "Not found");
  }
  return (req) => respond(req, deps.log, () => route(req));
}

/**
 * Refuses requests with huge headers or bodies before anything reads them.
 * `headers: false` skips adding up the headers: WebSocket upgrades, whose
 * request Deno keeps for the life of the connection — iterating its headers
 * would keep a JS copy of them too (~1.5 KB per idle connection). Their head
 * is still bounded: Deno answers 400 to a request head over 64 KB.
 */
function checkSize(req: Request, headers = true, body = true): void {
  if (headers) {
    let size = 0;
    for (const [k, v] of req.headers) size += k.length + v.length + 4;
    if (size > MAX_HEADER_BYTES) {
      throw new HttpError(431, `Request headers are larger than ${MAX_HEADER_BYTES} bytes`);
    }
  }
  const length = req.headers.get("content-length");
  if (body && length !== null && !(Number(length) <= MAX_BODY_BYTES)) {
    throw new HttpError(413, `Request body is larger than ${MAX_BODY_BYTES} bytes`, {
      connection: "close",
    });
  }
}

/**
 * The address limits are counted against: IPv4 as is, IPv6 by its /64
 * network (one host usually holds a whole /64, so single addresses are free).
 */
export function clientAddress(ip: string): string {
  if (isIP(ip) !== 6 || ip === "::1") return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  const [head, tail = ""] = ip.toLowerCase().split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === "" ? [] : tail.split(":");
  const groups = [
    ...left,
    ...Array(Math.max(0, 8 - left.length - right.length)).fill("0"),
    ...right,
  ];
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/** `scheme://host[:port]` as a browser sends it (default ports dropped), or null. */
function normalizeOrigin(origin: string): string | null {
  try {
    const url = new URL(origin.trim());
    return url.protocol === "http:" || url.protocol === "https:" ? url.origin : null;
  } catch {
    return null;
  }
}

/**
 * Same origin as the request — scheme, host and port — or listed in
 * `allowed`. The scheme is the one the client used: https when the server
 * (or the tunnel, or a trusted proxy) terminates TLS. When a trusted proxy
 * does not say which (no X-Forwarded-Proto), only host and port can be
 * compared.
 */
function originAllowed(
  origin: string,
  req: Request,
  scheme: string | null,
  allowed: Set<string>,
): boolean {
  if (allowed.has("*")) return true;
  const o = normalizeOrigin(origin);
  if (o === null) return false;
  if (allowed.has(o)) return true;
  const host = req.headers.get("host") ?? new URL(req.url).host;
  if (scheme !== null) return o === normalizeOrigin(`${scheme}://${host}`);
  return new URL(o).host === host.toLowerCase();
}

/** A JSON answer. */
export function json(body: unknown, headers: Record<string, string> = {}, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}
