/**
 * `chat invite`: asks the running server for an invite link and prints it
 * with its QR code. It runs on the server's machine: it signs its request
 * as the server's shell (see `./shell_request.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { renderUnicodeCompact } from "uqr";
import { flagError, UsageError } from "./flags.ts";
import { table } from "./help.ts";
import {
  NoAnswerError,
  refusal,
  secretOf,
  secretRefused,
  serverUrl,
  type ShellAnswer,
  shellRequest,
} from "./shell_request.ts";
import { MAX_INVITE_TTL, MAX_INVITE_USES } from "../server/admin/admin.ts";

/** `chat invite --help`. */
export const INVITE_HELP = `Print an invite link to the running chat, and its QR code.

Usage:
  chat invite [options]

Options:
${
  table([
    ["--uses N", "How many people may join with it [default 1]"],
    ["--expires TIME", "How long it works: 30m, 12h, 7d [default 7d]"],
    ["--admin", "Whoever joins with it is an admin"],
    ["--url URL", "The server [default http://localhost:PORT; env PORT]"],
    ["--users FILE", "The server's users file, beside its secret [default ./users.json]"],
    ["--secret SECRET", "The server's token secret [env CHAT_SECRET]"],
    ["-h, --help", "Show this help"],
  ])
}

Whoever opens the link picks a name and a password and is in, also when
sign-up is off. The link uses the server's public address: --public-url, the
tunnel's when it is up, else this machine's network address. Run it where the
server runs: it proves to the server that it is the server's shell with the
token secret (.chat-secret beside users.json, or --secret).

Examples:
  chat invite
  chat invite --uses 5 --expires 1d
  chat invite --admin --users /data/users.json`;

function out(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

/** `7d`, `12h`, `30m`, `90s` in seconds; throws a usage error otherwise. */
export function parseDuration(text: string): number {
  const m = /^(\d{1,6})([smhd])$/.exec(text.trim());
  if (!m) {
    throw new UsageError(
      `--expires "${text}" is not a duration: use a number and a unit, like 30m, 12h or 7d`,
    );
  }
  const seconds = Number(m[1]) * { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as "s"];
  if (seconds < 60 || seconds * 1000 > MAX_INVITE_TTL) {
    throw new UsageError(`--expires must be from 1 minute to ${MAX_INVITE_TTL / 86400_000} days`);
  }
  return seconds;
}

/** Runs `chat invite …`; resolves the exit code. */
export async function inviteCommand(args: string[]): Promise<number> {
  const names = ["uses", "expires", "admin", "url", "users", "secret", "help"];
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        uses: { type: "string" },
        expires: { type: "string" },
        admin: { type: "boolean" },
        url: { type: "string" },
        users: { type: "string" },
        secret: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw flagError(err as Error, names);
  }
  const v = parsed.values;
  if (v.help) {
    out(INVITE_HELP);
    return 0;
  }
  if (parsed.positionals.length > 0) {
    throw new UsageError(`Unexpected argument "${parsed.positionals[0]}" (see --help)`);
  }
  const uses = v.uses === undefined ? 1 : Number(v.uses);
  if (!/^\d{1,4}$/.test(v.uses ?? "1") || uses < 1 || uses > MAX_INVITE_USES) {
    throw new UsageError(`--uses must be a whole number from 1 to ${MAX_INVITE_USES}`);
  }
  const expires = parseDuration(v.expires ?? "7d");
  const usersPath = v.users ?? Deno.env.get("USERS_FILE") ?? "./users.json";
  const secret = await secretOf(v.secret, usersPath);
  const server = serverUrl(v.url);
  const body = { uses, expires, admin: v.admin === true };
  let res: ShellAnswer;
  try {
    res = await shellRequest(server, secret, { method: "POST", path: "/api/invites", body });
  } catch (err) {
    if (!(err instanceof NoAnswerError)) throw err;
    throw new Error(`${err.message}: start it with "chat", or pass --url`);
  }
  const answer = res.body;
  if (res.status === 409 && answer.error === "open_mode" && typeof answer.url === "string") {
    out(`${answer.message}\n\nThe chat's link (anyone with it can join):\n  ${answer.url}\n`);
    out(renderUnicodeCompact(answer.url, { border: 2 }));
    return 0;
  }
  if (secretRefused(res)) {
    throw new Error(
      `The server at ${server} does not accept this shell's secret: run chat invite with the secret the server uses (--users FILE beside it, or --secret)`,
    );
  }
  if (res.status !== 201 || typeof answer.url !== "string") {
    throw new Error(`The server at ${server} refused: ${refusal(res)}`);
  }
  const until = new Date(Number(answer.expires)).toLocaleString();
  const who = uses === 1 ? "one person" : `${uses} people`;
  out(`Invite link for ${who}${v.admin ? " (as admins)" : ""}, until ${until}:\n  ${answer.url}\n`);
  out(renderUnicodeCompact(answer.url, { border: 2 }));
  return 0;
}
