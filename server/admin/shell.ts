/**
 * The server's shell as an admin: `chat invite` runs where the server's
 * token secret can be read, and proves it by signing each request with a key
 * derived from that secret (`Authorization: Shell <time>.<signature>` over
 * the time, method, path and a hash of the body). Whoever can read the
 * secret can sign any token anyway, so this gives the shell nothing it did
 * not have. A signature is good for one request: that method, path and body,
 * within {@link SHELL_WINDOW_MS} of its time, once (the server remembers the
 * signatures it took; someone who sees a request cannot send it again, nor
 * another one with it).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, timingSafeEqual } from "node:crypto";

/** How far a signature's time may be from the server's clock, in ms. */
export const SHELL_WINDOW_MS = 60_000;

function sign(key: Buffer, at: number, method: string, path: string, body: string): string {
  const digest = createHash("sha256").update(body).digest("base64url");
  return createHmac("sha256", key).update(`shell:${at}:${method}:${path}:${digest}`)
    .digest("base64url");
}

/** The `Authorization` header value for `method path` with `body` at `now` (ms), signed with `key`. */
export function shellAuthorization(
  key: Buffer,
  method: string,
  path: string,
  now: number,
  body = "",
): string {
  return `Shell ${now}.${sign(key, now, method.toUpperCase(), path, body)}`;
}

/** The signatures a server has taken, each kept until it could no longer be taken anyway. */
export class ShellSignatures {
  #seen = new Map<string, number>();

  /**
   * Whether `header` is a shell signature of `method path` with `body`, made
   * within the window of `now`, that was not taken before; takes it.
   */
  take(
    header: string | null,
    key: Buffer,
    request: { method: string; path: string; body: string },
    now: number,
  ): boolean {
    const m = /^Shell\s+(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(header ?? "");
    if (!m) return false;
    const at = Number(m[1]);
    if (Math.abs(now - at) > SHELL_WINDOW_MS) return false;
    const want = Buffer.from(
      sign(key, at, request.method.toUpperCase(), request.path, request.body),
    );
    const got = Buffer.from(m[2]);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return false;
    for (const [sig, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(sig);
    }
    if (this.#seen.has(m[2])) return false;
    this.#seen.set(m[2], at + SHELL_WINDOW_MS);
    return true;
  }
}
