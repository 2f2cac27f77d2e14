/**
 * What a line typed into the terminal client means: a message, or one of the
 * slash commands. Pure parsing, no I/O.
 *
 * @module
 */
import {
  checkEmoji,
  MAX_BAN_REASON,
  MAX_BAN_SECONDS,
  MAX_PAGE,
  NAME_PATTERN,
} from "../protocol.ts";
import type { Completion } from "./editor.ts";

/** Messages `/history` shows when no number is given. */
export const DEFAULT_HISTORY = 20;

/** A parsed input line. */
export type Command =
  | { kind: "say"; text: string }
  /** Join `room`; `private` creates it private when it is new. */
  | { kind: "join"; room: string; private?: true }
  | { kind: "leave"; room?: string }
  | { kind: "rooms" }
  | { kind: "who" }
  | { kind: "dm"; user: string; text?: string }
  | { kind: "history"; limit: number }
  | { kind: "search"; q: string }
  | { kind: "passwd" }
  /** Edit a message of the user's: `id`, or their last one here. */
  | { kind: "edit"; id?: number; text: string }
  /** Delete a message of the user's: `id`, or their last one here. */
  | { kind: "delete"; id?: number }
  /** Add a reaction, or take it back if the user already gave it. */
  | { kind: "react"; id: number; emoji: string }
  | { kind: "reply"; id: number; text: string }
  /** Upload the file at `path` and send it here, with `text` (may be ""). */
  | { kind: "upload"; path: string; text: string }
  /** Save file `id` (or the start of one's id) of this conversation, to `path` if given. */
  | { kind: "download"; id: string; path?: string }
  /** Show or hide message ids. */
  | { kind: "ids" }
  /** Add `user` to the current room (the way into a private one). */
  | { kind: "invite"; user: string }
  /** Admins: remove `user` from the current room. */
  | { kind: "kick"; user: string }
  /** Admins: ban `user` from the chat, for `duration` seconds (else until unbanned). */
  | { kind: "ban"; user: string; duration?: number; reason?: string }
  /** Admins: lift `user`'s ban. */
  | { kind: "unban"; user: string }
  /** Admins: switch one setting of the current room on or off (`room_settings`). */
  | { kind: "setting"; setting: RoomSetting; on: boolean }
  /** Admins: rename `room` (default: the current room) to `name` (`rename_room`). */
  | { kind: "rename"; room?: string; name: string }
  | { kind: "help" }
  | { kind: "quit" }
  | { kind: "empty" }
  /** A known command used the wrong way; `message` says how to use it. */
  | { kind: "invalid"; message: string }
  | { kind: "unknown"; name: string };

/** A room setting an admin switches: `/readonly`, `/archive`, `/private`, `/atroom`. */
export type RoomSetting = "readOnly" | "archived" | "private" | "restrictRoomMentions";

/** Commands only admins may use, by name. */
export const ADMIN_COMMANDS: ReadonlySet<Command["kind"]> = new Set([
  "kick",
  "ban",
  "unban",
  "setting",
]);

/** The command list shown by `/help`. */
export const COMMANDS_HELP = `Commands:
  /join ROOM [private] Join a room (created if new, private with "private") and talk there
  /invite USER       Add USER to this room (the way into a private room)
  /leave [ROOM]      Leave the current room (or ROOM)
  /rooms             List the rooms
  /who               Who is in this room, and who is online
  /dm USER [TEXT]    Send USER a direct message; without TEXT, talk to USER
  /history [N]       Show the last N messages here (default ${DEFAULT_HISTORY}, at most ${MAX_PAGE})
  /search TEXT       Find messages containing every word of TEXT
  /passwd            Change your password (your other sessions are signed out)
  /edit [ID] TEXT    Change your message ID (default: your last one here) to TEXT
  /delete [ID]       Delete your message ID (default: your last one here); admins: anyone's
  /react ID EMOJI    React to message ID with EMOJI; again with the same EMOJI takes it back
  /reply ID TEXT     Answer message ID, quoting it
  /upload PATH [TEXT] Send the file at PATH here, with TEXT ("quote" a PATH with spaces)
  /download ID [PATH] Save file ID (as shown after the file) to PATH (default: ~/Downloads)
  /ids               Show or hide message ids (#41) in front of lines
  /help              Show this help
  /quit              Leave the chat (also Ctrl+D on an empty line)
Anything else is sent as a message (Markdown: **bold**, _italic_, ~~struck~~, \`code\`,
> quotes, - lists, [text](url)); start it with // to send a leading /.
Keys: Left/Right, Home/End, Up/Down (input history), Ctrl+U/Ctrl+K/Ctrl+W erase,
Tab completes @names, /commands and rooms (again for the next match),
Ctrl+C cancels an upload or download under way.`;

/** The admins' commands, added to `/help` for admins. */
export const ADMIN_HELP = `Admin commands:
  /kick USER         Remove USER from this room (they may join a public room again)
  /ban USER [DURATION] [REASON]
                     Ban USER from the chat, for DURATION (30m, 12h, 7d; default: until
                     /unban), telling them REASON
  /unban USER        Lift USER's ban
  /readonly on|off   Only admins may post in this room (announcements), or everyone again
  /archive on|off    Archive this room (kept, read-only, out of /rooms), or bring it back
  /private on|off    Make this room private (members add people with /invite), or public
  /atroom on|off     Only admins may notify everyone here with @room or @here, or everyone
  /rename [ROOM] NEW Rename this room (or ROOM) to NEW, with all it has`;

/** What `/help` shows: {@link COMMANDS_HELP}, and {@link ADMIN_HELP} for an admin. */
export function helpText(admin: boolean): string {
  return admin ? `${COMMANDS_HELP}\n${ADMIN_HELP}` : COMMANDS_HELP;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400, w: 7 * 86400 };

/**
 * A ban's duration as typed, in seconds: `45s`, `30m`, `12h`, `7d`, `2w`;
 * `null` when `word` is not one. Past the server's longest ban it is still
 * read (and then refused by {@link parseCommand} with the limit).
 */
export function parseDuration(word: string): number | null {
  const m = /^(\d{1,9})([smhdw])$/i.exec(word);
  if (!m) return null;
  const seconds = Number(m[1]) * UNITS[m[2].toLowerCase()];
  return seconds >= 1 ? seconds : null;
}

/** The target of a one-user command (`/kick @bob` works too), or why it is not one. */
function userArg(words: string[], usage: string): { user: string } | { message: string } {
  if (words.length !== 1) return { message: usage };
  const user = words[0].replace(/^@/, "");
  const problem = nameProblem(user, "username");
  return problem ? { message: problem } : { user };
}

/** `on` or `off` (also yes/no, true/false) for the room setting commands. */
function onOff(words: string[], name: string, setting: RoomSetting): Command {
  const word = words.length === 1 ? words[0].toLowerCase() : "";
  if (["on", "yes", "true"].includes(word)) return { kind: "setting", setting, on: true };
  if (["off", "no", "false"].includes(word)) return { kind: "setting", setting, on: false };
  return { kind: "invalid", message: `Usage: /${name} on|off` };
}

/** `/rename NEW` or `/rename ROOM NEW` (`#` in front of a name is allowed). */
function renameArgs(words: string[]): Command {
  if (words.length < 1 || words.length > 2) {
    return { kind: "invalid", message: "Usage: /rename [ROOM] NEW" };
  }
  const names = words.map((w) => w.replace(/^#/, ""));
  for (const n of names) {
    const problem = nameProblem(n, "room name");
    if (problem) return { kind: "invalid", message: problem };
  }
  if (names.length === 1) return { kind: "rename", name: names[0] };
  const [room, name] = names;
  if (room === name) return { kind: "invalid", message: `#${room} has that name already` };
  return { kind: "rename", room, name };
}

function nameProblem(value: string, what: string): string | null {
  return NAME_PATTERN.test(value)
    ? null
    : `Invalid ${what} "${value.slice(0, 40)}": use 1-32 letters, digits, - or _`;
}

/** A message id as typed: `41` or `#41`; `null` when it is not one. */
export function parseId(word: string): number | null {
  const m = /^#?(\d{1,15})$/.exec(word);
  if (!m) return null;
  const id = Number(m[1]);
  return id >= 1 && Number.isSafeInteger(id) ? id : null;
}

/**
 * The first argument of `rest`, as a shell reads a word: `"…"` or `'…'`
 * keep spaces, and so does a backslash before a space or quote (a
 * backslash before anything else stays, for Windows paths); then the text
 * after it. `null` when a quote is not closed.
 */
export function firstArg(rest: string): { arg: string; rest: string } | null {
  const text = rest.trimStart();
  let arg = "";
  let quote: string | null = null;
  let i = 0;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quote !== null) {
      if (c === quote) quote = null;
      else arg += c;
    } else if (c === '"' || c === "'") {
      quote = c;
    } else if (c === "\\" && /[\s"']/.test(text[i + 1] ?? "")) {
      arg += text[++i];
    } else if (/\s/.test(c)) {
      break;
    } else {
      arg += c;
    }
  }
  if (quote !== null) return null;
  return { arg, rest: text.slice(i).trim() };
}

/** What `/download` takes as a file id: an id, the start of one, or a file's link. */
function fileIdOf(word: string): string | null {
  const inLink = /\/files\/([A-Za-z0-9_-]{1,64})(?:[/?#]|$)/.exec(word);
  if (inLink) return inLink[1];
  return /^[A-Za-z0-9_-]{1,64}$/.test(word) ? word : null;
}

/** `ID REST`: the id and the text after it (`null` when the first word is not an id). */
function idAndText(rest: string): { id: number; text: string } | null {
  const m = /^(\S+)(?:\s+([\s\S]*))?$/.exec(rest);
  const id = m ? parseId(m[1]) : null;
  return id === null ? null : { id, text: m![2] ?? "" };
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
      const usage = { kind: "invalid", message: "Usage: /join ROOM [private]" } as const;
      if (words.length < 1 || words.length > 2) return usage;
      const isPrivate = words.length === 2;
      if (isPrivate && !["private", "--private"].includes(words[1].toLowerCase())) return usage;
      const room = words[0].replace(/^#/, "");
      const problem = nameProblem(room, "room name");
      if (problem) return { kind: "invalid", message: problem };
      return isPrivate ? { kind: "join", room, private: true } : { kind: "join", room };
    }
    case "invite":
    case "add": {
      const got = userArg(words, "Usage: /invite USER");
      return "user" in got ? { kind: "invite", user: got.user } : { kind: "invalid", ...got };
    }
    case "kick":
    case "remove": {
      const got = userArg(words, "Usage: /kick USER");
      return "user" in got ? { kind: "kick", user: got.user } : { kind: "invalid", ...got };
    }
    case "unban": {
      const got = userArg(words, "Usage: /unban USER");
      return "user" in got ? { kind: "unban", user: got.user } : { kind: "invalid", ...got };
    }
    case "ban": {
      const usage = "Usage: /ban USER [DURATION] [REASON], e.g. /ban bob 7d spam";
      const m = /^(\S+)(?:\s+(\S+))?(?:\s+([\s\S]*))?$/.exec(rest.trim());
      if (!m) return { kind: "invalid", message: usage };
      const got = userArg([m[1]], usage);
      if (!("user" in got)) return { kind: "invalid", ...got };
      const duration = m[2] === undefined ? null : parseDuration(m[2]);
      // A second word that is no duration starts the reason.
      const reason = (duration === null ? [m[2], m[3]] : [m[3]])
        .filter((w) => w !== undefined).join(" ").trim();
      if (duration !== null && duration > MAX_BAN_SECONDS) {
        return {
          kind: "invalid",
          message: `A ban lasts at most ${
            MAX_BAN_SECONDS / 86400
          }d (ten years): leave DURATION out to ban until /unban`,
        };
      }
      if (reason.length > MAX_BAN_REASON) {
        return {
          kind: "invalid",
          message: `The reason is longer than ${MAX_BAN_REASON} characters`,
        };
      }
      const cmd: Command = { kind: "ban", user: got.user };
      if (duration !== null) cmd.duration = duration;
      if (reason !== "") cmd.reason = reason;
      return cmd;
    }
    case "readonly":
    case "read-only":
      return onOff(words, "readonly", "readOnly");
    case "archive":
      return onOff(words, "archive", "archived");
    case "private":
      return onOff(words, "private", "private");
    case "atroom":
      return onOff(words, "atroom", "restrictRoomMentions");
    case "rename":
      return renameArgs(words);
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
    case "edit": {
      const usage = { kind: "invalid", message: "Usage: /edit [ID] TEXT" } as const;
      if (rest.trim() === "") return usage;
      const withId = idAndText(rest);
      if (withId === null) return { kind: "edit", text: rest };
      if (withId.text.trim() === "") {
        return {
          kind: "invalid",
          message: `Usage: /edit [ID] TEXT (the new text of message #${withId.id} is missing)`,
        };
      }
      return { kind: "edit", id: withId.id, text: withId.text };
    }
    case "delete":
    case "del": {
      if (words.length === 0) return { kind: "delete" };
      const id = words.length === 1 ? parseId(words[0]) : null;
      return id === null
        ? {
          kind: "invalid",
          message: "Usage: /delete [ID], where ID is a message id (/ids shows them)",
        }
        : { kind: "delete", id };
    }
    case "react": {
      const id = words.length === 2 ? parseId(words[0]) : null;
      if (id === null) {
        return { kind: "invalid", message: "Usage: /react ID EMOJI, e.g. /react 41 👍" };
      }
      try {
        return { kind: "react", id, emoji: checkEmoji(words[1]) };
      } catch {
        return { kind: "invalid", message: `"${words[1].slice(0, 40)}" is not one emoji` };
      }
    }
    case "reply":
    case "re": {
      const withId = idAndText(rest);
      if (withId === null || withId.text.trim() === "") {
        return { kind: "invalid", message: "Usage: /reply ID TEXT" };
      }
      return { kind: "reply", id: withId.id, text: withId.text };
    }
    case "upload":
    case "up": {
      const usage = "Usage: /upload PATH [TEXT]";
      const first = firstArg(rest);
      if (first === null) {
        return { kind: "invalid", message: `${usage} (a quote in PATH is not closed)` };
      }
      if (first.arg === "") return { kind: "invalid", message: usage };
      return { kind: "upload", path: first.arg, text: first.rest };
    }
    case "download":
    case "dl": {
      const usage =
        "Usage: /download ID [PATH], where ID is a file's id (shown after it: /download ID)";
      const id = words.length > 0 ? fileIdOf(words[0]) : null;
      if (id === null) return { kind: "invalid", message: usage };
      const after = rest.trimStart().slice(words[0].length);
      if (after.trim() === "") return { kind: "download", id };
      const path = firstArg(after);
      if (path === null || path.arg === "" || path.rest !== "") {
        return { kind: "invalid", message: `${usage} ("quote" a PATH with spaces)` };
      }
      return { kind: "download", id, path: path.arg };
    }
    case "ids":
      return words.length === 0
        ? { kind: "ids" }
        : { kind: "invalid", message: "Usage: /ids (it takes no arguments)" };
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

/** Every command's name, for Tab. */
const COMMAND_NAMES = [
  "join",
  "invite",
  "leave",
  "rooms",
  "who",
  "dm",
  "history",
  "search",
  "passwd",
  "edit",
  "delete",
  "react",
  "reply",
  "upload",
  "download",
  "ids",
  "help",
  "quit",
];

/** The admins' commands' names, for Tab. */
const ADMIN_COMMAND_NAMES = ["kick", "ban", "unban", "readonly", "archive", "private", "rename"];

/** Commands whose first argument is a person (with their aliases). */
const USER_COMMANDS = new Set(["dm", "msg", "invite", "add", "kick", "remove", "ban", "unban"]);

/** Commands whose first argument is a room (with their aliases). */
const ROOM_COMMANDS = new Set(["join", "j", "leave", "part"]);

/** What the client knows when Tab is pressed, for {@link complete}. */
export interface CompletionContext {
  /** The user's own name (never offered). */
  me: string;
  /** The people of the conversation on screen: a room's members, a DM's peer. */
  here: Iterable<string>;
  /** Other people the client knows of (online, in the user's other rooms). */
  others: Iterable<string>;
  /** Rooms the client knows of, for `/join` and `/leave`. */
  rooms: Iterable<string>;
  /**
   * `@room` is offered: the conversation on screen is a room where the user's
   * `@room` reaches everyone (see `roomMentionMax`).
   */
  everyone: boolean;
  /** The user is an admin: their commands are offered too. */
  admin: boolean;
}

// A mention being typed: "@" where a mention may start (not after a word
// character or "@", as in an address), then name characters up to the cursor.
const TYPED_MENTION = /(?<![\w@])@([A-Za-z0-9_-]{0,32})$/;

/**
 * What Tab completes at the end of `before` (the text before the cursor):
 * a command's name after `/` at the start of the line; a room after
 * `/join` or `/leave`; a person after `/dm`, `/invite`, `/kick`, `/ban` or
 * `/unban`; and `@name` (the conversation's people first, then others the
 * client knows of, then `@room` where
 * {@link CompletionContext.everyone} allows it) anywhere a mention may start.
 * Names match from their start, ignoring case. Null when there is nothing
 * to complete there.
 *
 * @example
 * ```ts
 * import { complete } from "./commands.ts";
 * const c = complete("hi @b", {
 *   me: "alice", here: ["bob", "bea"], others: [], rooms: [], everyone: true, admin: false,
 * });
 * if (c?.options.join() !== "@bea ,@bob ") throw new Error("complete");
 * ```
 */
export function complete(before: string, ctx: CompletionContext): Completion | null {
  const command = /^\/([\w-]*)$/.exec(before);
  if (command) {
    const names = ctx.admin ? [...COMMAND_NAMES, ...ADMIN_COMMAND_NAMES] : COMMAND_NAMES;
    return {
      word: before,
      options: startingWith(command[1], names).map((n) => `/${n} `),
    };
  }
  const argument = /^\/(\S+)\s+(#?[\w-]*)$/.exec(before);
  if (argument) {
    const name = argument[1].toLowerCase();
    const word = argument[2];
    if (ROOM_COMMANDS.has(name)) {
      return { word, options: startingWith(word.replace(/^#/, ""), ctx.rooms).map((r) => `${r} `) };
    }
    if (USER_COMMANDS.has(name)) {
      return { word, options: people(word, ctx).map((n) => `${n} `) };
    }
  }
  if (before.startsWith("/") && !before.startsWith("//")) {
    // A command's other arguments: nothing to complete, not even a mention, but /reply
    // and /edit take text where mentions make sense.
    const name = /^\/(\S*)/.exec(before)![1].toLowerCase();
    if (!["reply", "re", "edit", "dm", "msg"].includes(name)) return null;
  }
  const mention = TYPED_MENTION.exec(before);
  if (!mention) return null;
  // "https://x.org/@bob" is a link, not a mention.
  let start = mention.index;
  while (start > 0 && !/\s/.test(before[start - 1])) start--;
  if (/^https?:\/\//i.test(before.slice(start, mention.index))) return null;
  const options = people(mention[1], ctx).map((n) => `@${n} `);
  if (ctx.everyone && "room".startsWith(mention[1].toLowerCase())) options.push("@room ");
  return { word: before.slice(mention.index), options };
}

/** The names in `names` that start with `prefix` (ignoring case), sorted, each once. */
function startingWith(prefix: string, names: Iterable<string>): string[] {
  const p = prefix.toLowerCase();
  const seen = new Set<string>();
  const out: string[] = [];
  for (const n of names) {
    const lower = n.toLowerCase();
    if (!lower.startsWith(p) || seen.has(lower)) continue;
    seen.add(lower);
    out.push(n);
  }
  return out.sort((a, b) => a.toLowerCase() < b.toLowerCase() ? -1 : 1);
}

/** People matching `prefix`: those of the conversation first, then the others; never the user. */
function people(prefix: string, ctx: CompletionContext): string[] {
  const me = ctx.me.toLowerCase();
  const here = startingWith(prefix, ctx.here).filter((n) => n.toLowerCase() !== me);
  const taken = new Set(here.map((n) => n.toLowerCase()));
  const others = startingWith(prefix, ctx.others)
    .filter((n) => n.toLowerCase() !== me && !taken.has(n.toLowerCase()));
  return [...here, ...others];
}
