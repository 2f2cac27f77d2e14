/**
 * The command line's signed requests to the running server, as its shell:
 * `chat invite` and `chat user` run on the server's machine, where the
 * server's token secret can be read, and sign each request (and its body,
 * once) with a key derived from it (see `server/admin/shell.ts`).
 *
 * @module
 */
import { dirname, join } from "node:path";
import { UsageError } from "./flags.ts";
import { deriveKey } from "../server/auth/auth.ts";
import { shellAuthorization } from "../server/admin/shell.ts";

/** How long a request may take before the server counts as not answering, in ms. */
export const SHELL_TIMEOUT_MS = 10_000;

/** A request to the server that nothing answered (not running, another address, too slow). */
export class NoAnswerError extends Error {
  /** Builds the error for `server` with the `reason` fetch gave. */
  constructor(readonly server: string, readonly reason: string) {
    super(`No chat server answers at ${server} (${reason})`);
    this.name = "NoAnswerError";
  }
}

/** The server's address: `flag` (--url), else this machine on $PORT (8000); throws a usage error. */
export function serverUrl(flag: string | undefined): string {
  const raw = flag ?? `http://localhost:${Deno.env.get("PORT") || 8000}`;
  const withScheme = /^[a-z]+:\/\//i.test(raw) ? raw : `http://${raw}`;
  try {
    const url = new URL(withScheme);
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new Error("scheme");
    return url.origin;
  } catch {
    throw new UsageError(`--url "${raw}" is not an http or https address`);
  }
}

/**
 * The token secret the server signs with: `flag` (--secret), CHAT_SECRET, or
 * `.chat-secret` beside `usersPath`. Throws a usage error naming `command`
 * when there is none.
 */
export async function secretOf(
  flag: string | undefined,
  usersPath: string,
  command = "chat invite",
): Promise<string> {
  const given = flag ?? Deno.env.get("CHAT_SECRET");
  if (given) return given;
  const path = join(dirname(usersPath), ".chat-secret");
  try {
    const secret = (await Deno.readTextFile(path)).trim();
    if (secret.length >= 32) return secret;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      throw new Error(`Cannot read the server's token secret "${path}": ${(err as Error).message}`);
    }
  }
  throw new UsageError(
    `Cannot find the server's token secret at "${path}": run ${command} where the server runs, beside its users.json (or pass --users FILE or --secret)`,
  );
}

/** One signed request: `method path` with a JSON `body` (none for GET). */
export interface ShellRequest {
  method: "GET" | "POST";
  /** The path, with its query if any (the signature covers the path only). */
  path: string;
  /** Sent as JSON. */
  body?: unknown;
}

/** The server's answer: its status and its JSON body (`{}` when it sent none). */
export interface ShellAnswer {
  status: number;
  body: Record<string, unknown>;
}

/**
 * Sends `request` to `server` signed as its shell with `secret`; throws
 * {@link NoAnswerError} when nothing answers within `timeout` ms.
 */
export async function shellRequest(
  server: string,
  secret: string,
  request: ShellRequest,
  options: { timeout?: number } = {},
): Promise<ShellAnswer> {
  const url = new URL(request.path, server);
  const body = request.body === undefined ? "" : JSON.stringify(request.body);
  const headers: Record<string, string> = {
    authorization: shellAuthorization(
      deriveKey(secret, "shell"),
      request.method,
      url.pathname,
      Date.now(),
      body,
    ),
  };
  if (body !== "") headers["content-type"] = "application/json";
  let res: Response;
  try {
    res = await fetch(url, {
      method: request.method,
      headers,
      body: body === "" ? undefined : body,
      signal: AbortSignal.timeout(options.timeout ?? SHELL_TIMEOUT_MS),
    });
  } catch (err) {
    throw new NoAnswerError(server, (err as Error).message);
  }
  const answer = await res.json().catch(() => ({}));
  const isObject = typeof answer === "object" && answer !== null && !Array.isArray(answer);
  return { status: res.status, body: isObject ? answer as Record<string, unknown> : {} };
}

/** Whether the server refused the shell's signature (another secret, or a clock far off). */
export function secretRefused(answer: ShellAnswer): boolean {
  return answer.status === 401 || answer.status === 403;
}

/** The server's own words for a refusal, else its HTTP status. */
export function refusal(answer: ShellAnswer): string {
  const message = answer.body.message;
  return typeof message === "string" ? message : `HTTP ${answer.status}`;
}
