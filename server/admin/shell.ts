/**
 * The server's shell as an admin: `chat invite` runs where the server's
 * token secret can be read, and proves it by signing each request with a key
 * derived from that secret (`Authorization: Shell <time>.<signature>` over
 * the time, method and path). Whoever can read the secret can sign any token
 * anyway, so this gives the shell nothing it did not have; a signature is
 * good for {@link SHELL_WINDOW_MS} around its time and for one method and path.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHmac, timingSafeEqual } from "node:crypto";

/** How far a signature's time may be from the server's clock, in ms. */
export const SHELL_WINDOW_MS = 60_000;

function sign(key: Buffer, at: number, method: string, path: string): string {
  return createHmac("sha256", key).update(`shell:${at}:${method}:${path}`).digest("base64url");
}

/** The `Authorization` header value for `method path` at `now` (ms), signed with `key`. */
export function shellAuthorization(key: Buffer, method: string, path: string, now: number): string {
  return `Shell ${now}.${sign(key, now, method.toUpperCase(), path)}`;
}

/** Whether `header` is a shell signature of `method path` made within the window of `now`. */
export function isShell(
  header: string | null,
  key: Buffer,
  method: string,
  path: string,
  now: number,
): boolean {
  const m = /^Shell\s+(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(header ?? "");
  if (!m) return false;
  const at = Number(m[1]);
  if (Math.abs(now - at) > SHELL_WINDOW_MS) return false;
  const want = Buffer.from(sign(key, at, method.toUpperCase(), path));
  const got = Buffer.from(m[2]);
  return got.length === want.length && timingSafeEqual(got, want);
}
