/**
 * `chat health`: asks a running server's `/healthz` and exits 0 when it
 * answers "ok". Containers use it as their HEALTHCHECK, so slim images need
 * no curl.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError, UsageError } from "./flags.ts";

/** `chat health --help`. */
export const HEALTH_HELP = `Check that a chat server is up (for container health checks).

Usage:
  chat health [URL] [options]

Options:
  --port N        Port of the local server (default 8000) [env PORT]
  --timeout SEC   Give up after this many seconds (default 5)
  -h, --help      Show this help

Without URL it asks http://127.0.0.1:PORT/healthz. Exits 0 when the server
answers with status "ok", 1 otherwise (the reason goes to stderr).

Examples:
  chat health
  chat health https://chat.example.com/healthz
`;

function out(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

function fail(line: string): number {
  // deno-lint-ignore no-console
  console.error(`unhealthy: ${line}`);
  return 1;
}

/** Runs `chat health …`; resolves the exit code. */
export async function healthCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        port: { type: "string" },
        timeout: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw flagError(err as Error, ["port", "timeout", "help"]);
  }
  if (parsed.values.help) {
    out(HEALTH_HELP);
    return 0;
  }
  const [target, extra] = parsed.positionals;
  if (extra !== undefined) throw new UsageError(`Unexpected argument "${extra}" (see --help)`);
  const port = parsed.values.port ?? Deno.env.get("PORT") ?? "8000";
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535) {
    throw new UsageError(`Invalid --port "${port}": expected a port number`);
  }
  const seconds = Number(parsed.values.timeout ?? "5");
  if (!(seconds > 0)) {
    throw new UsageError(`Invalid --timeout "${parsed.values.timeout}": expected seconds`);
  }
  let url: URL;
  try {
    url = new URL(target ?? `http://127.0.0.1:${port}/healthz`);
  } catch {
    throw new UsageError(`Invalid URL "${target}": expected http://HOST:PORT/healthz`);
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(seconds * 1000) });
  } catch (err) {
    const e = err as Error;
    if (e.name === "TimeoutError") return fail(`${url}: no answer within ${seconds} s`);
    const cause = (e.cause as Error | undefined)?.message ?? e.message;
    // "error sending request for url (…): client error (Connect): tcp connect error: X"
    return fail(`${url}: ${cause.split(": ").at(-1)}`);
  }
  const text = await res.text();
  let body: { status?: unknown } | null = null;
  try {
    body = JSON.parse(text);
  } catch {
    // Said below.
  }
  // A node waiting for Redis answers 503 with why ("starting"): name it.
  const status = typeof body?.status === "string" ? ` (status "${body.status}")` : "";
  if (!res.ok) return fail(`${url}: HTTP ${res.status}${status}`);
  if (body === null) return fail(`${url}: the answer is not JSON`);
  if (body.status !== "ok") return fail(`${url}: status "${body.status}"`);
  out(`ok ${url}`);
  return 0;
}
