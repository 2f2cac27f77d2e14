/**
 * Server addresses as people type them: `ws://`, `wss://`, `http://`,
 * `https://` or a bare `host:port`, turned into the WebSocket URL the
 * client connects to, the `/api/info` URL it asks about sign-in, the
 * `/api/signout` URL that ends a saved session, and the `/api/files` URL
 * uploads go to.
 *
 * @module
 */

/** Where the client connects when no URL is given. */
export const DEFAULT_URL = "ws://localhost:8000/ws";

const SCHEMES: Record<string, string> = {
  "ws:": "ws:",
  "wss:": "wss:",
  "http:": "ws:",
  "https:": "wss:",
};

/**
 * Turns what a user typed into the server's WebSocket URL: `http` becomes
 * `ws`, `https` becomes `wss`, a bare `host:port` gets `ws://` (and port
 * 8000 when it names none), and the path `/ws` is added when the address
 * names no WebSocket path.
 *
 * @example
 * ```ts
 * import { normalizeUrl } from "./url.ts";
 * if (normalizeUrl("https://chat.example.com") !== "wss://chat.example.com/ws") {
 *   throw new Error("expected wss");
 * }
 * ```
 *
 * @throws {TypeError} for an address that is not a URL or uses another scheme.
 */
export function normalizeUrl(input: string): string {
  const text = input.trim();
  if (text === "") return DEFAULT_URL;
  const explicit = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text);
  let url: URL;
  try {
    // A bare HOST:PORT has no "//" and no spaces: "http//host" is a mistyped URL, not a host.
    if (!explicit && /\/\/|\s/.test(text)) throw new TypeError("not an address");
    url = new URL(explicit ? text : `ws://${text}`);
  } catch {
    throw new TypeError(
      `Invalid server URL "${text}": use ws://HOST:PORT/ws, https://HOST or HOST:PORT`,
    );
  }
  const scheme = SCHEMES[url.protocol];
  if (scheme === undefined) {
    throw new TypeError(
      `Unsupported server URL "${text}": use ws://, wss://, http:// or https://`,
    );
  }
  if (url.hostname === "") {
    throw new TypeError(`Invalid server URL "${text}": it names no host`);
  }
  const wasWebSocket = explicit && (url.protocol === "ws:" || url.protocol === "wss:");
  const path = url.pathname;
  let wsPath = path;
  // An explicit ws(s) URL with a path means exactly that socket; anything
  // else (a web page address or a bare host) gets the server's "/ws".
  if (!path.endsWith("/ws") && !(wasWebSocket && path !== "/" && path !== "")) {
    wsPath = `${path.endsWith("/") ? path : `${path}/`}ws`;
  }
  // A bare host means the chat's own default port, not 80.
  const port = url.port !== "" ? `:${url.port}` : explicit ? "" : ":8000";
  return `${scheme}//${url.hostname}${port}${wsPath}${url.search}`;
}

/** An HTTP URL beside a WebSocket URL: same host, `http(s)`, same path prefix. */
function besideWs(wsUrl: string, path: string): string {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  const prefix = url.pathname.endsWith("/ws") ? url.pathname.slice(0, -3) : "";
  url.pathname = `${prefix}${path}`;
  url.search = "";
  return url.href;
}

/**
 * The `/api/info` URL beside a WebSocket URL: same host, `http(s)`, and the
 * same path prefix when the server lives below a path.
 */
export function infoUrl(wsUrl: string): string {
  return besideWs(wsUrl, "/api/info");
}

/**
 * The `/api/signout` URL beside a WebSocket URL, found like {@link infoUrl}.
 *
 * @example
 * ```ts
 * import { signoutUrl } from "./url.ts";
 * if (signoutUrl("wss://example.com/chat/ws") !== "https://example.com/chat/api/signout") {
 *   throw new Error("expected the path prefix to stay");
 * }
 * ```
 */
export function signoutUrl(wsUrl: string): string {
  return besideWs(wsUrl, "/api/signout");
}

/**
 * The `/api/files` URL beside a WebSocket URL (where uploads go), found
 * like {@link infoUrl}.
 */
export function filesUrl(wsUrl: string): string {
  return besideWs(wsUrl, "/api/files");
}

/**
 * The server's HTTP address beside a WebSocket URL, without a trailing
 * slash: what a file's `url` (a path on the server) is appended to.
 *
 * @example
 * ```ts
 * import { httpBase } from "./url.ts";
 * if (httpBase("wss://example.com/chat/ws") !== "https://example.com/chat") {
 *   throw new Error("expected the path prefix to stay");
 * }
 * ```
 */
export function httpBase(wsUrl: string): string {
  return besideWs(wsUrl, "").replace(/\/$/, "");
}

/** `host:port` of a URL, for messages. */
export function hostOf(url: string): string {
  try {
    const u = new URL(url);
    const port = u.port || (u.protocol === "wss:" || u.protocol === "https:" ? "443" : "80");
    return `${u.hostname}:${port}`;
  } catch {
    return url;
  }
}
