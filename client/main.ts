/**
 * `chat client [URL]`: asks for what it is not given, signs in, and then
 * chats interactively on a terminal or sends stdin's lines when piped.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ask, askHidden, readLine, say } from "../cli/prompt.ts";
import { table } from "../cli/help.ts";
import { ConfigError, flagError } from "../server/config.ts";
import { LOBBY, NAME_PATTERN, type WelcomeFrame } from "../server/protocol.ts";
import { describeConnectError } from "./format.ts";
import { runPiped } from "./piped.ts";
import { ConnectError, Session, type SessionEvent } from "./session.ts";
import { TerminalUI } from "./terminal.ts";
import { DEFAULT_URL, hostOf, infoUrl, normalizeUrl } from "./url.ts";

/** `chat client --help`. */
export const CLIENT_HELP = `Chat from the terminal, or send messages from a script.

Usage:
  chat client [URL] [options]

Arguments:
${
  table([[
    "URL",
    `The server: ws://, wss://, http://, https:// or HOST[:PORT] [default ${DEFAULT_URL}]. ` +
    "http becomes ws and https wss; /ws is added when the URL names no WebSocket path; " +
    "a bare HOST means port 8000.",
  ]])
}

Options:
${
  table([
    ["-u, --user NAME", "Sign in as NAME (asked when not given; needed when piped)"],
    ["-r, --room ROOM", `Start in ROOM, creating it if new [default ${LOBBY}]`],
    ["-h, --help", "Show this help"],
  ])
}

Environment:
${
  table([
    [
      "CHAT_PASSWORD",
      "The password, for scripts; otherwise it is asked without echo (open-mode servers need none)",
    ],
    ["NO_COLOR", "Print without colors"],
  ])
}

On a terminal, recent history is shown, then new messages appear above the
input line as they arrive. Type /help in the chat for its commands: /join,
/leave, /rooms, /who, /dm, /history, /search and /quit. A dropped connection
is resumed on its own, and what was missed meanwhile is shown once.

When stdin is not a terminal, each of its lines is sent as a message to the
room, in order, and the client exits once the server has acknowledged the
last one. Nothing is lost or repeated across a dropped connection.

Exit status: 0 when done (every line delivered, when piped), 1 when the
server cannot be reached, refuses the sign-in or a line, 2 for bad usage.

Examples:
  chat client                                  Ask for the server and the name
  chat client localhost:8000 --user alice      Local server, as alice
  chat client https://chat.example.com -r ops  Start in #ops

  # From a script (set CHAT_PASSWORD when the server wants a login):
  echo "deploy done" | chat client -u bot -r ops chat.example.com:8000`;

/** A failure to connect, sign in or deliver: one line, exit code 1. */
export class ClientError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "ClientError";
  }
}

function out(text: string): void {
  // deno-lint-ignore no-console
  console.log(text);
}

function env(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no --allow-env: as if unset
  }
}

/**
 * Asks the server how it signs people in (`/api/info`); `null` when it does
 * not say (an older server, or a proxy that forwards only `/ws`).
 *
 * @throws {ClientError} when the server cannot be reached at all.
 */
export async function serverMode(wsUrl: string): Promise<"open" | "login" | null> {
  let res: Response;
  try {
    res = await fetch(infoUrl(wsUrl), {
      signal: AbortSignal.timeout(10_000),
      headers: { accept: "application/json" },
    });
  } catch (err) {
    const e = err as Error & { cause?: unknown };
    const detail = e.name === "TimeoutError" ? "timed out" : `${e.message} ${e.cause ?? ""}`;
    throw new ClientError(describeConnectError(wsUrl, detail));
  }
  if (!res.ok) {
    await res.body?.cancel();
    return null;
  }
  try {
    const info = await res.json();
    return info?.mode === "open" || info?.mode === "login" ? info.mode : null;
  } catch {
    return null;
  }
}

async function askName(): Promise<string> {
  while (true) {
    const name = await ask("Username");
    if (name === null) throw new ClientError("No username given");
    if (NAME_PATTERN.test(name)) return name;
    say(`Invalid username "${name.slice(0, 40)}": use 1-32 letters, digits, - or _\n`);
  }
}

/** Events that arrive before a UI is there to show them wait here. */
class Dispatcher {
  #buffer: SessionEvent[] = [];
  #target: ((e: SessionEvent) => void) | null = null;

  emit = (e: SessionEvent): void => {
    if (this.#target) this.#target(e);
    else this.#buffer.push(e);
  };

  attach(target: (e: SessionEvent) => void): void {
    this.#target = target;
    for (const e of this.#buffer.splice(0)) target(e);
  }
}

/** Runs `chat client …`; resolves the exit code. */
export async function clientCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        user: { type: "string", short: "u" },
        room: { type: "string", short: "r" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const e = flagError(err as Error, ["user", "room", "help"]);
    throw new ConfigError(e.message.replace("(see --help)", "(see chat client --help)"));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(CLIENT_HELP);
    return 0;
  }
  if (positionals.length > 1) {
    throw new ConfigError(
      `Unexpected argument "${positionals[1]}": give one server URL (see chat client --help)`,
    );
  }
  const room = (values.room ?? LOBBY).replace(/^#/, "");
  if (!NAME_PATTERN.test(room)) {
    throw new ConfigError(`Invalid room name "${room}": use 1-32 letters, digits, - or _`);
  }
  if (values.user !== undefined && !NAME_PATTERN.test(values.user)) {
    throw new ConfigError(`Invalid username "${values.user}": use 1-32 letters, digits, - or _`);
  }
  const interactive = Deno.stdin.isTerminal();
  if (!interactive && values.user === undefined) {
    throw new ConfigError(
      "--user NAME is needed when stdin is not a terminal: stdin carries the messages",
    );
  }

  let typed = positionals[0];
  if (typed === undefined && interactive) {
    const answer = await ask("Server URL", DEFAULT_URL);
    if (answer === null) return 1;
    typed = answer;
  }
  let url: string;
  try {
    url = normalizeUrl(typed ?? DEFAULT_URL);
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  let username = values.user ?? await askName();
  let mode = await serverMode(url);
  let password = mode === "open" ? undefined : env("CHAT_PASSWORD");
  let asked = false;

  const dispatcher = new Dispatcher();
  let session: Session | null = null;
  let welcome: WelcomeFrame | null = null;
  for (let attempt = 1; welcome === null; attempt++) {
    if (mode === "login" && password === undefined) {
      if (!interactive) {
        throw new ClientError(
          `The server at ${
            hostOf(url)
          } needs a password: set CHAT_PASSWORD (stdin is not a terminal)`,
        );
      }
      const pw = await askHidden(`Password for ${username}`);
      if (pw === null) return 1;
      password = pw;
      asked = true;
    }
    session = new Session({
      url,
      username,
      password: mode === "open" ? undefined : password,
      onEvent: dispatcher.emit,
      giveUpAfter: interactive ? Infinity : 60_000,
    });
    try {
      welcome = await session.start();
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      const retry = interactive && attempt < 3;
      if (err.code === "auth_failed" && mode === null && !asked && interactive) {
        mode = "login"; // the server did not say; it wants a password
        password = undefined;
        continue;
      }
      if (err.code === "auth_failed" && asked && retry) {
        say(`${err.message}\n`);
        password = undefined;
        continue;
      }
      if (err.code === "name_taken" && values.user === undefined && retry) {
        say(`${err.message}\n`);
        username = await askName();
        continue;
      }
      throw new ClientError(err.message);
    }
  }
  const s = session!;
  try {
    if (interactive) {
      const ui = new TerminalUI({
        session: s,
        welcome,
        room,
        url,
        color: Deno.stdout.isTerminal() && !Deno.noColor,
      });
      dispatcher.attach((e) => ui.handle(e));
      return await ui.run();
    }
    let down = false;
    dispatcher.attach((e) => {
      if (e.type === "disconnected" && !down) {
        down = true;
        say(`warning: ${e.message}: reconnecting…\n`);
      } else if (e.type === "resumed") {
        down = false;
        say("warning: reconnected\n");
      } else if (e.type === "notice") say(`warning: ${e.message}\n`);
    });
    if (!s.rooms.has(room)) {
      try {
        await s.join(room);
      } catch (err) {
        throw new ClientError(`Cannot join #${room}: ${(err as Error).message}`);
      }
    }
    return await runPiped({
      session: s,
      target: { room },
      readLine,
      report: (line) => say(`error: ${line}\n`),
    });
  } finally {
    await s.close();
  }
}
