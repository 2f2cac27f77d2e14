/**
 * What a line typed into the terminal client means: a message, or one of the
 * slash commands. Pure parsing, no I/O.
 *
 * @module
 */
import { MAX_PAGE, NAME_PATTERN } from "../protocol.ts";

/** Messages `/history` shows when no number is given. */
export const DEFAULT_HISTORY = 20;

/** A parsed input line. */
export type Command =
  | { kind: "say"; text: string }
  | { kind: "join"; room: string }
  | { kind: "leave"; room?: string }
  | { kind: "rooms" }
  | { kind: "who" }
  | { kind: "dm"; user: string; text?: string }
  | { kind: "history"; limit: number }
  | { kind: "search"; q: string }
  | { kind: "passwd" }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "empty" }
  /** A known command used the wrong way; `message` says how to use it. */
  | { kind: "invalid"; message: string }
  | { kind: "unknown"; name: string };

/** The command list shown by `/help`. */
export const COMMANDS_HELP = `Commands:
  /join ROOM         Join a room (created if new) and talk there
  /leave [ROOM]      Leave the current room (or ROOM)
  /rooms             List the rooms
  /who               Who is in this room, and who is online
  /dm USER [TEXT]    Send USER a direct message; without TEXT, talk to USER
  /history [N]       Show the last N messages here (default ${DEFAULT_HISTORY}, at most ${MAX_PAGE})
  /search TEXT       Find messages containing every word of TEXT
  /passwd            Change your password (your other sessions are signed out)
  /help              Show this help
  /quit              Leave the chat (also Ctrl+D on an empty line)
Anything else is sent as a message; start it with // to send a leading /.
Keys: Left/Right, Home/End, Up/Down (input history), Ctrl+U/Ctrl+K/Ctrl+W erase.`;

function nameProblem(value: string, what: string): string | null {
  return NAME_PATTERN.test(value)
    ? null
    : `Invalid ${what} "${value.slice(0, 40)}": use 1-32 letters, digits, - or _`;
}

/**
 * Parses one input line.
 *
 * @example
 * ```ts
 * import { parseCommand } from "./commands.ts";
 * const c = parseCommand("/dm bob see you at 5");
 * if (c.kind !== "dm" || c.user !== "bob" || c.text !== "see you at 5") throw new Error();
 * ```
 */
export function parseCommand(line: string): Command {
  if (line.trim() === "") return { kind: "empty" };
  if (line.startsWith("//")) return { kind: "say", text: line.slice(1) };
  if (!line.startsWith("/")) return { kind: "say", text: line };
  const match = /^\/(\S*)\s*([\s\S]*)$/.exec(line.trimEnd())!;
  const name = match[1].toLowerCase();
  const rest = match[2];
  const words = rest === "" ? [] : rest.split(/\s+/);
  switch (name) {
    case "join":
    case "j": {
      if (words.length !== 1) return { kind: "invalid", message: "Usage: /join ROOM" };
      const room = words[0].replace(/^#/, "");
      const problem = nameProblem(room, "room name");
      return problem ? { kind: "invalid", message: problem } : { kind: "join", room };
    }
    case "leave":
    case "part": {
      if (words.length > 1) return { kind: "invalid", message: "Usage: /leave [ROOM]" };
      if (words.length === 0) return { kind: "leave" };
      const room = words[0].replace(/^#/, "");
      const problem = nameProblem(room, "room name");
      return problem ? { kind: "invalid", message: problem } : { kind: "leave", room };
    }
    case "rooms":
    case "list":
      return words.length === 0
        ? { kind: "rooms" }
        : { kind: "invalid", message: "Usage: /rooms (it takes no arguments)" };
    case "who":
    case "names":
      return words.length === 0
        ? { kind: "who" }
        : { kind: "invalid", message: "Usage: /who (it takes no arguments)" };
    case "dm":
    case "msg": {
      const m = /^@?(\S+)(?:\s+([\s\S]*))?$/.exec(rest);
      if (!m) return { kind: "invalid", message: "Usage: /dm USER [TEXT]" };
      const problem = nameProblem(m[1], "username");
      if (problem) return { kind: "invalid", message: problem };
      const text = m[2]?.trim() ? m[2] : undefined;
      return text === undefined ? { kind: "dm", user: m[1] } : { kind: "dm", user: m[1], text };
    }
    case "history": {
      if (words.length === 0) return { kind: "history", limit: DEFAULT_HISTORY };
      const n = Number(words[0]);
      if (words.length > 1 || !Number.isInteger(n) || n < 1 || n > MAX_PAGE) {
        return {
          kind: "invalid",
          message: `Usage: /history [N], where N is a whole number from 1 to ${MAX_PAGE}`,
        };
      }
      return { kind: "history", limit: n };
    }
    case "search":
    case "find": {
      const q = rest.trim();
      if (q === "") return { kind: "invalid", message: "Usage: /search TEXT" };
      if (q.length > 200) {
        return { kind: "invalid", message: "Search text is longer than 200 characters" };
      }
      return { kind: "search", q };
    }
    case "passwd":
    case "password":
      // Never on the command line, where it would be seen and kept in the input history.
      return words.length === 0
        ? { kind: "passwd" }
        : { kind: "invalid", message: "Usage: /passwd (it asks for the passwords without echo)" };
    case "help":
    case "?":
      return { kind: "help" };
    case "quit":
    case "exit":
      return { kind: "quit" };
    default:
      return { kind: "unknown", name: `/${match[1]}` };
  }
}
