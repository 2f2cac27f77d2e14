/**
 * `chat client [URL]`: asks for what it is not given, signs in, and then
 * chats interactively on a terminal or sends stdin's lines when piped.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ask, askHidden, readLine, say } from "../cli/prompt.ts";
import { table } from "../cli/help.ts";
import { flagError, UsageError } from "../cli/flags.ts";
import { LOBBY, NAME_PATTERN, type WelcomeFrame } from "../protocol.ts";
import { describeConnectError } from "./format.ts";
import { runPiped } from "./piped.ts";
import { ConnectError, Session, type SessionEvent } from "./session.ts";
import { TerminalUI } from "./terminal.ts";
import { openTokenStore, type SavedSession, type TokenStore } from "./tokens.ts";
import { DEFAULT_URL, hostOf, infoUrl, normalizeUrl, signoutUrl } from "./url.ts";

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
    [
      "-u, --user NAME",
      "Sign in as NAME (asked when not given and no session is saved; needed when piped)",
    ],
    ["-r, --room ROOM", `Start in ROOM, creating it if new [default ${LOBBY}]`],
    ["--forget", "Sign out the session saved for the server, forget it, and exit"],
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
    [
      "XDG_CONFIG_HOME, HOME",
      "Where saved sessions are kept: chat/tokens.json in $XDG_CONFIG_HOME, " +
      "else in ~/.config (Windows: in %APPDATA%)",
    ],
    [
      "XDG_DOWNLOAD_DIR",
      "Where /download saves without a path, when it is a folder; else ~/Downloads, " +
      "else the current directory",
    ],
  ])
}

After signing in, the client keeps the session's token for that server (one
user per server), so the next start signs in as that user without asking;
when piped, if --user names them. On an open-mode server this keeps the
name, which belongs to whoever holds its session. When the saved session has
ended, the client asks again. --forget signs it out and forgets it.

On a terminal, recent history is shown, then new messages appear above the
input line as they arrive, their Markdown styled. Type /help in the chat for
its commands: /join (/join ROOM private creates a private room), /invite,
/leave, /rooms, /who, /dm, /history, /search, /passwd and /quit; admins also
/kick, /ban, /unban, /readonly, /archive, /private and /atroom, and may
/rename a room. /edit, /delete, /react and /reply change and answer messages,
and /ids shows their ids. Tab completes @names, commands and rooms. /upload
sends a file and /download saves one (into $XDG_DOWNLOAD_DIR or ~/Downloads
when there is one, else the current directory); a file the client may not
read or write yet is asked for with Deno's question, that one file only
(answer y or n; deno run may instead be given --allow-read=DIR and
--allow-write=DIR). A dropped connection is
resumed on its own, and what was missed meanwhile (messages, edits,
deletions, reactions) is shown once.

When stdin is not a terminal, each of its lines is sent as a message to the
room, in order, and the client exits once the server has acknowledged the
last one. Nothing is lost or repeated across a dropped connection.

Exit status: 0 when done (every line delivered, when piped), 1 when the
server cannot be reached, refuses the sign-in or a line, or bans the user
(then the client prints why and does not reconnect), 2 for bad usage.

Examples:
  chat client                                  Ask for the server and the name
  chat client localhost:8000 --user alice      Local server, as alice
  chat client https://chat.example.com -r ops  Start in #ops
  chat client localhost:8000 --forget          Sign out and forget the session

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

/** A warning on stderr: a plain line on a terminal, `warning: …` when piped. */
function warn(text: string): void {
  say(Deno.stdin.isTerminal() ? `${text}\n` : `warning: ${text}\n`);
}

/** A sentence-case message continued after a colon. */
function lower(message: string): string {
  return message.charAt(0).toLowerCase() + message.slice(1);
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
    throw new ClientError(fetchError(wsUrl, err));
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

/** Why a request to the server's HTTP side failed, as one sentence. */
function fetchError(wsUrl: string, err: unknown): string {
  const e = err as Error & { cause?: unknown };
  const detail = e.name === "TimeoutError" ? "timed out" : `${e.message} ${e.cause ?? ""}`;
  return describeConnectError(wsUrl, detail);
}

/**
 * Signs a session out on the server (`POST /api/signout`): `signed-out`,
 * `ended` when the server no longer knew it, or why it could not be done.
 */
async function signOut(
  wsUrl: string,
  token: string,
  timeout = 10_000,
): Promise<"signed-out" | "ended" | string> {
  let res: Response;
  try {
    res = await fetch(signoutUrl(wsUrl), {
      method: "POST",
      headers: { authorization: `Bearer ${token}` },
      signal: AbortSignal.timeout(timeout),
    });
  } catch (err) {
    return fetchError(wsUrl, err);
  }
  await res.body?.cancel();
  if (res.ok) return "signed-out";
  if (res.status === 401) return "ended";
  return `The server answered ${res.status} ${res.statusText}`.trimEnd();
}

/** `chat client [URL] --forget`: signs the saved session out and forgets it. */
async function forget(url: string, user: string | undefined): Promise<number> {
  const opened = openTokenStore();
  const cannot = (why: string) =>
    new ClientError(`Cannot forget the saved session for ${url}: ${lower(why)}`);
  if ("problem" in opened) throw cannot(opened.problem);
  let saved: SavedSession | null;
  try {
    saved = await opened.store.get(url);
  } catch (err) {
    throw cannot((err as Error).message);
  }
  if (saved === null) {
    out(`No saved session for ${url}`);
    return 0;
  }
  if (user !== undefined && user.toLowerCase() !== saved.user.toLowerCase()) {
    out(`No saved session for ${user} on ${url} (the saved one is ${saved.user}'s)`);
    return 0;
  }
  const outcome = await signOut(url, saved.token);
  try {
    await opened.store.delete(url);
  } catch (err) {
    throw cannot((err as Error).message);
  }
  out(
    outcome === "signed-out"
      ? `Signed out of ${url} and forgot the saved session`
      : outcome === "ended"
      ? `The saved session for ${url} had ended already: forgot it`
      : `Forgot the saved session for ${url}, not signed out on the server: ${lower(outcome)}`,
  );
  return 0;
}

/**
 * The session saved for one server: read at start, replaced after every
 * welcome (tokens are renewed), dropped when the server refuses it. Once it
 * cannot be used, it says why in one line and stays out of the way.
 */
class SavedSessions {
  #url: string;
  #store: TokenStore | null = null;
  #notice: (message: string) => void;
  #writes: Promise<void> = Promise.resolve();
  /** The latest token the server gave. */
  #token: string | null = null;
  /** Whether a token of the session signed in with is in the file. */
  #kept = false;

  constructor(url: string, notice: (message: string) => void) {
    this.#url = url;
    this.#notice = notice;
    const opened = openTokenStore();
    if ("store" in opened) this.#store = opened.store;
    else this.#disable(opened.problem);
  }

  #disable(why: string): void {
    this.#store = null;
    this.#notice(`Your session will not be remembered: ${lower(why)}`);
  }

  /** The saved session, if there is one for `user` (any case) or no user is named. */
  async get(user: string | undefined): Promise<SavedSession | null> {
    if (this.#store === null) return null;
    let saved: SavedSession | null;
    try {
      saved = await this.#store.get(this.#url);
    } catch (err) {
      this.#disable((err as Error).message);
      return null;
    }
    if (saved !== null && user !== undefined && saved.user.toLowerCase() !== user.toLowerCase()) {
      return null;
    }
    this.#kept = saved !== null;
    return saved;
  }

  /**
   * Saves a token from a welcome, or from a password change (in the
   * background; see {@link SavedSessions.finish}).
   */
  save(session: SavedSession): void {
    this.#token = session.token;
    this.#write(async (store) => {
      await store.set(this.#url, { user: session.user, token: session.token });
      this.#kept = true;
    });
  }

  /** Forgets the saved session (the server refused it). */
  drop(): void {
    this.#kept = false;
    this.#write((store) => store.delete(this.#url));
  }

  /**
   * Waits for every save; when no token of the session was saved, signs it
   * out (best effort), so that an open-mode name is not held for nobody.
   */
  async finish(): Promise<void> {
    await this.#writes;
    if (this.#kept || this.#token === null) return;
    // Short: the user is leaving, and the name expires on its own anyway.
    await signOut(this.#url, this.#token, 3000);
  }

  #write(op: (store: TokenStore) => Promise<unknown>): void {
    this.#writes = this.#writes.then(async () => {
      const store = this.#store;
      if (store === null) return;
      try {
        await op(store);
      } catch (err) {
        this.#disable((err as Error).message);
      }
    });
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
        forget: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    const e = flagError(err as Error, ["user", "room", "forget", "help"]);
    throw new UsageError(e.message.replace("(see --help)", "(see chat client --help)"));
  }
  const { values, positionals } = parsed;
  if (values.help) {
    out(CLIENT_HELP);
    return 0;
  }
  if (positionals.length > 1) {
    throw new UsageError(
      `Unexpected argument "${positionals[1]}": give one server URL (see chat client --help)`,
    );
  }
  const room = (values.room ?? LOBBY).replace(/^#/, "");
  if (!NAME_PATTERN.test(room)) {
    throw new UsageError(`Invalid room name "${room}": use 1-32 letters, digits, - or _`);
  }
  if (values.user !== undefined && !NAME_PATTERN.test(values.user)) {
    throw new UsageError(`Invalid username "${values.user}": use 1-32 letters, digits, - or _`);
  }
  const interactive = Deno.stdin.isTerminal();
  if (!interactive && values.user === undefined && !values.forget) {
    throw new UsageError(
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
    throw new UsageError((err as Error).message);
  }
  if (values.forget) return await forget(url, values.user);

  const dispatcher = new Dispatcher();
  const saved = new SavedSessions(url, (message) => dispatcher.emit({ type: "notice", message }));
  try {
    return await signInAndRun({ url, room, user: values.user, interactive, saved, dispatcher });
  } finally {
    await saved.finish();
  }
}

/** Signs in (with the saved session first, if any) and chats; resolves the exit code. */
async function signInAndRun(options: {
  url: string;
  room: string;
  user: string | undefined;
  interactive: boolean;
  saved: SavedSessions;
  dispatcher: Dispatcher;
}): Promise<number> {
  const { url, room, user, interactive, saved, dispatcher } = options;
  const found = await saved.get(user);
  let token = found?.token;
  let username = user ?? found?.user ?? await askName();
  let mode = await serverMode(url);
  let password = mode === "open" ? undefined : env("CHAT_PASSWORD");
  let asked = false;
  const onEvent = (e: SessionEvent) => {
    if (e.type === "welcome") saved.save({ user: e.welcome.user, token: e.welcome.token });
    else if (e.type === "token") saved.save({ user: e.user, token: e.token });
    dispatcher.emit(e);
  };
  // The saved token goes along with a password sign-in even once it has
  // ended: it shows the server this device signed in as the user before.
  const deviceFor = (name: string) =>
    found !== null && found.user.toLowerCase() === name.toLowerCase() ? found.token : undefined;

  let session: Session | null = null;
  let welcome: WelcomeFrame | null = null;
  for (let attempt = 1; welcome === null; attempt++) {
    if (token === undefined && mode === "login" && password === undefined) {
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
      token,
      password: mode === "open" ? undefined : password,
      device: deviceFor(username),
      onEvent,
      giveUpAfter: interactive ? Infinity : 60_000,
    });
    try {
      welcome = await session.start();
    } catch (err) {
      if (!(err instanceof ConnectError)) throw err;
      if (err.token) {
        // Signed out elsewhere, or unused for too long: the usual questions.
        token = undefined;
        saved.drop();
        warn(`Your saved session for ${url} has ended: sign in again`);
        if (user === undefined) username = await askName();
        attempt--;
        continue;
      }
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
      if (err.code === "name_taken" && user === undefined && retry) {
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
        progress: Deno.stdout.isTerminal(),
      });
      dispatcher.attach((e) => ui.handle(e));
      return await ui.run();
    }
    let down = false;
    const ended = Promise.withResolvers<string>();
    // Lines go on to the room under its new name when it is renamed.
    const target = { room };
    dispatcher.attach((e) => {
      if (e.type === "fatal") return ended.resolve(e.message);
      if (e.type === "renamed" && e.room === target.room) target.room = e.name;
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
      target,
      readLine,
      report: (line) => say(`error: ${line}\n`),
      ended: ended.promise,
    });
  } finally {
    await s.close();
  }
}
