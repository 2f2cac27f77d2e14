/**
 * A public URL through ngrok: the server forwards an ngrok endpoint to its
 * own port. Opening is best effort: when it fails (bad token, no network),
 * {@link openTunnel} says so in one line and the server keeps serving locally.
 *
 * The ngrok SDK (`npm:@ngrok/ngrok`) is a native Node-API addon. It is loaded
 * only when a tunnel is requested and needs `--allow-ffi` plus
 * `--allow-sys=cpus,networkInterfaces,hostname` (its loader asks for a
 * process report to tell glibc from musl).
 *
 * @module
 */
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";

/** An open tunnel. */
export interface Tunnel {
  /** The public `https://…` URL. */
  url: string;
  /** Closes the tunnel; safe to call twice. */
  close(): Promise<void>;
}

/** What an opener needs to know. */
export interface TunnelRequest {
  /** Local address to forward to, e.g. `127.0.0.1:8000` or `https://127.0.0.1:8443`. */
  addr: string;
  /** ngrok auth token. */
  authtoken: string;
  /** Reserved domain, if any. */
  domain?: string;
  /** Headers the tunnel adds to every request it forwards. */
  headers?: Record<string, string>;
}

/** Opens a tunnel; rejects with a readable error when it cannot. */
export type TunnelOpener = (request: TunnelRequest) => Promise<Tunnel>;

/** Options for {@link openTunnel}. */
export interface OpenTunnelOptions {
  /** Where the one-line failure goes. */
  log: Logger;
  /** Opens the tunnel. @default {ngrokOpener} */
  opener?: TunnelOpener;
  /** Milliseconds to wait for the tunnel before giving up. @default {20000} */
  timeout?: number;
  /** The server speaks https (forward to https upstream). @default {false} */
  tls?: boolean;
  /** Headers the tunnel adds to every request it forwards (the server's proof of origin). */
  headers?: Record<string, string>;
}

/** Opens an ngrok endpoint with the official SDK. */
export const ngrokOpener: TunnelOpener = async (request) => {
  const { default: ngrok } = await import("@ngrok/ngrok");
  const listener = await ngrok.forward({
    addr: request.addr,
    authtoken: request.authtoken,
    ...(request.domain ? { domain: request.domain } : {}),
    ...(request.addr.startsWith("https://") ? { verify_upstream_tls: false } : {}),
    ...(request.headers
      ? { request_header_add: Object.entries(request.headers).map(([k, v]) => `${k}:${v}`) }
      : {}),
  });
  const url = listener.url();
  if (!url) {
    await listener.close();
    throw new Error("ngrok returned no URL");
  }
  let closing: Promise<void> | null = null;
  return {
    url,
    close: () => closing ??= listener.close().catch(() => {}),
  };
};

/** The local address a tunnel should forward to for a server on `host:port`. */
export function upstreamAddr(host: string, port: number, tls = false): string {
  const h = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "[::1]" : host;
  const shown = h.includes(":") && !h.startsWith("[") ? `[${h}]` : h;
  return `${tls ? "https://" : ""}${shown}:${port}`;
}

/** The first line of an error's message, without noise. */
function reason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.split("\n")[0].trim().replace(/\.$/, "") || "unknown error";
}

/**
 * Opens the tunnel the configuration asks for; resolves null when none is
 * asked for or it cannot be opened (after logging one warning line).
 */
export async function openTunnel(
  config: Pick<Config, "ngrok" | "ngrokToken" | "ngrokDomain" | "host">,
  port: number,
  options: OpenTunnelOptions,
): Promise<Tunnel | null> {
  if (!config.ngrok) return null;
  const { log } = options;
  const fail = (why: string) => {
    log.warn(`Cannot open the ngrok tunnel, serving locally only: ${why}`);
    return null;
  };
  if (!config.ngrokToken) {
    return fail(
      "no auth token: set NGROK_AUTHTOKEN (https://dashboard.ngrok.com/get-started/your-authtoken)",
    );
  }
  const opener = options.opener ?? ngrokOpener;
  const timeout = options.timeout ?? 20_000;
  const opening = opener({
    addr: upstreamAddr(config.host, port, options.tls),
    authtoken: config.ngrokToken,
    domain: config.ngrokDomain,
    ...(options.headers ? { headers: options.headers } : {}),
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), timeout);
  });
  try {
    const result = await Promise.race([opening, timedOut]);
    if (result === "timeout") {
      // A tunnel that opens after we gave up must not stay open unannounced.
      opening.then((t) => t.close(), () => {});
      const wait = timeout < 1000 ? `${timeout} ms` : `${Math.round(timeout / 1000)} s`;
      return fail(`no answer from ngrok within ${wait}`);
    }
    return result;
  } catch (err) {
    const why = reason(err);
    const hint = /authtoken|ERR_NGROK_10[5-7]/i.test(why)
      ? " (check NGROK_AUTHTOKEN)"
      : /tcp connection|dns|lookup|resolve/i.test(why)
      ? " (is this machine online?)"
      : "";
    return fail(why + hint);
  } finally {
    clearTimeout(timer);
  }
}
