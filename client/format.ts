/**
 * How the terminal client shows things: message lines with local time and
 * sender, notices, and plain sentences for connection failures. Pure
 * functions of their inputs.
 *
 * @module
 */
import type {
  BannedFrame,
  ChangeFrame,
  ChatMessage,
  FileInfo,
  InvitedFrame,
  ReplyRef,
  RoomKind,
  RoomSettingsChangedFrame,
  SystemFrame,
} from "../protocol.ts";
import { CloseCode } from "../protocol.ts";
import { plainText, renderMarkdown, strip } from "./markdown.ts";
import { hostOf } from "./url.ts";

/** Text styles; each is a pair of ANSI codes. */
const STYLES = {
  dim: ["\x1b[2m", "\x1b[22m"],
  italic: ["\x1b[3m", "\x1b[23m"],
  bold: ["\x1b[1m", "\x1b[22m"],
  cyan: ["\x1b[36m", "\x1b[39m"],
  green: ["\x1b[32m", "\x1b[39m"],
  yellow: ["\x1b[33m", "\x1b[39m"],
  magenta: ["\x1b[35m", "\x1b[39m"],
  red: ["\x1b[31m", "\x1b[39m"],
} as const;

/** A style name of {@link paint}. */
export type Style = keyof typeof STYLES;

/** Wraps `text` in a style when `color` is on. */
export function paint(style: Style, text: string, color: boolean): string {
  return color ? STYLES[style][0] + text + STYLES[style][1] : text;
}

function pad(n: number): string {
  return String(n).padStart(2, "0");
}

/**
 * Local time of an ISO timestamp: `HH:MM` today, `YYYY-MM-DD HH:MM` on
 * another day.
 */
export function formatTime(ts: string, now: Date = new Date()): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return "--:--";
  const time = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  const sameDay = d.getFullYear() === now.getFullYear() && d.getMonth() === now.getMonth() &&
    d.getDate() === now.getDate();
  return sameDay ? time : `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${time}`;
}

/** Where the client is talking: a room or a direct-message peer. */
export type Place = { room: string; to?: undefined } | { to: string; room?: undefined };

/** Options for {@link formatMessage}. */
export interface FormatOptions {
  /** The signed-in user. */
  me: string;
  /** The conversation on screen: its messages need no label. */
  here?: Place;
  /**
   * Use ANSI colors, and render Markdown with styles; without, the text
   * shows as written. @default {false}
   */
  color?: boolean;
  /** Show message ids (`#41`) in front of lines. @default {false} */
  ids?: boolean;
  /** Clock, for the date part of old messages. */
  now?: Date;
  /**
   * The server's HTTP address (`httpBase` of url.ts), put in front of file
   * links, which the server sends as paths; without it, links show as paths.
   */
  base?: string;
}

/** Characters of a quoted message shown in a reply's quote line or a reaction's mention. */
export const QUOTE_CHARS = 60;

/** `text` cut to `max` characters (whole code points), with `…` when cut. */
export function shorten(text: string, max = QUOTE_CHARS): string {
  const points = [...text];
  return points.length <= max ? text : `${points.slice(0, max - 1).join("").trimEnd()}…`;
}

/** Reactions as one summary: `[👍 2 ❤️ 1]`, in the order they were first given. */
export function reactionSummary(reactions: Record<string, string[]> | undefined): string {
  const parts = Object.entries(reactions ?? {})
    .filter(([, users]) => users.length > 0)
    .map(([emoji, users]) => `${strip(emoji)} ${users.length}`);
  return parts.length === 0 ? "" : `[${parts.join(" ")}]`;
}

const SIZE_UNITS = ["KB", "MB", "GB", "TB"];

/**
 * A byte count as people read it, in decimal units like the server's
 * `--max-upload`: `1 byte`, `512 bytes`, `2.9 MB`, `25 MB`.
 */
export function formatSize(bytes: number): string {
  if (bytes < 1000) return bytes === 1 ? "1 byte" : `${bytes} bytes`;
  // One decimal below 10 (2.9 MB), none above (25 MB); 999.96 KB reads 1 MB.
  const shown = (v: number) => v < 9.95 ? v.toFixed(1).replace(/\.0$/, "") : String(Math.round(v));
  let value = bytes / 1000;
  let unit = 0;
  while (unit < SIZE_UNITS.length - 1 && Number(shown(value)) >= 1000) {
    value /= 1000;
    unit++;
  }
  return `${shown(value)} ${SIZE_UNITS[unit]}`;
}

/**
 * A file's link: the server's address (`options.base`) and the file's
 * signed path; the path alone without a base, and "" when the frame
 * carried no `url`.
 */
export function fileLink(file: FileInfo, base?: string): string {
  const url = strip(file.url ?? "");
  if (url === "") return "";
  return base !== undefined && url.startsWith("/") ? `${base}${url}` : url;
}

/** How many characters of a file's id {@link formatFile} shows. */
export const FILE_ID_SHOWN = 8;

/**
 * An attached file: `📎 photo.png (2.9 MB, 1280×720) · /download mwU0aEG4`,
 * the command that saves it (with the start of its id) first; then its link
 * (as {@link fileLink} makes it), dimmed, on a line of its own two spaces
 * further in, where a link too long for the terminal wraps without
 * splitting the line above.
 */
export function formatFile(file: FileInfo, options: FormatOptions): string {
  const color = options.color ?? false;
  const facts = [formatSize(file.size)];
  if (file.width !== undefined && file.height !== undefined) {
    facts.push(`${file.width}×${file.height}`);
  }
  const link = fileLink(file, options.base);
  // The start of the id is enough for /download (48 random bits: two files of
  // a conversation that share it are as good as impossible, and it says so).
  const id = strip(file.id ?? "").slice(0, FILE_ID_SHOWN);
  return `📎 ${paint("bold", strip(file.name), color)} (${facts.join(", ")})${
    id === "" ? "" : ` ${paint("dim", "·", color)} /download ${id}`
  }${link === "" ? "" : `\n  ${paint("dim", link, color)}`}`;
}

/** What a reply quotes: `↳ bob: the first words…` (`↳ #41 bob: …` with ids). */
export function formatQuote(ref: ReplyRef, options: FormatOptions): string {
  const color = options.color ?? false;
  const id = options.ids ? `#${ref.id} ` : "";
  const what = ref.deleted
    ? paint("italic", "message deleted", color)
    : shorten(oneLine(ref.snippet, color));
  return paint("dim", `↳ ${id}${ref.from}: `, color) + paint("dim", what, color);
}

/**
 * A message as lines (joined by `\n`): `12:04 bob: hello`, with `#room` in
 * front when it is not the room on screen and `bob → you:` for direct
 * messages; its current state after the text (`(edited)`, reactions), a
 * tombstone as "message deleted" ("message removed by an admin" when one
 * removed it), and a reply's quote on a line before it.
 */
export function formatMessage(msg: ChatMessage, options: FormatOptions): string {
  const color = options.color ?? false;
  const time = paint("dim", formatTime(msg.ts, options.now), color);
  const id = options.ids ? `${paint("dim", `#${msg.id}`, color)} ` : "";
  const fromStyle: Style = msg.from === options.me ? "green" : "cyan";
  const from = paint("bold", paint(fromStyle, msg.from, color), color);
  let head: string;
  if (msg.room !== undefined) {
    const label = options.here?.room === msg.room
      ? ""
      : `${paint("yellow", `#${msg.room}`, color)} `;
    head = `${id}${time} ${label}${from}:`;
  } else {
    const mine = msg.from === options.me;
    const peer = mine ? msg.to! : msg.from;
    const arrow = mine
      ? `${from} → ${paint("magenta", peer === options.me ? "you" : peer, color)}`
      : `${from} → ${paint("magenta", "you", color)}`;
    head = `${id}${time} ${arrow}:`;
  }
  // Files follow the text, each with its link on the next line; a message of
  // files alone starts with the first (its link then follows the marks).
  const files = msg.deleted ? [] : (msg.files ?? []).map((f) => formatFile(f, options));
  let rest = "";
  let body: string;
  if (msg.deleted) {
    const what = msg.removed ? "message removed by an admin" : "message deleted";
    body = paint("dim", paint("italic", what, color), color);
  } else if (msg.text === "" && files.length > 0) {
    const [first, ...more] = files.shift()!.split("\n");
    body = first;
    rest = more.map((l) => `\n  ${l}`).join("");
  } else {
    body = renderMarkdown(msg.text, { style: color }).join("\n  ");
  }
  const marks = [
    msg.edited && !msg.deleted ? paint("dim", "(edited)", color) : "",
    reactionSummary(msg.reactions),
  ].filter((m) => m !== "").join(" ");
  const line = `${head} ${body}${marks === "" ? "" : ` ${marks}`}${rest}${
    files.map((f) => `\n  ${f.replaceAll("\n", "\n  ")}`).join("")
  }`;
  if (msg.replyTo === undefined) return line;
  // The quote lines up with the sender's name.
  const indent = " ".repeat(
    (options.ids ? `#${msg.id} `.length : 0) + formatTime(msg.ts, options.now).length + 1,
  );
  return `${indent}${formatQuote(msg.replyTo, options)}\n${line}`;
}

/** Options for {@link formatChange} and {@link formatUpdate}. */
export interface ChangeOptions extends FormatOptions {
  /** The message as it is after the change, when the client holds it. */
  message?: ChatMessage;
}

/** `#ops ` or `@bob ` in front of a line about a conversation that is not on screen. */
function placeLabel(where: { room?: string; to?: string }, options: FormatOptions): string {
  const color = options.color ?? false;
  if (where.room !== undefined) {
    return options.here?.room === where.room ? "" : `${paint("yellow", `#${where.room}`, color)} `;
  }
  return options.here?.to === where.to ? "" : `${paint("magenta", `@${where.to}`, color)} `;
}

/** ` (bob: the first words…)`: which message a reaction is about, when known. */
function mention(msg: ChatMessage | undefined, color: boolean): string {
  if (!msg || msg.deleted) return "";
  // A message of files alone is named by its first file.
  const what = msg.text === "" && msg.files?.length ? `📎 ${strip(msg.files[0].name)}` : msg.text;
  return ` (${msg.from}: ${shorten(oneLine(what, color))})`;
}

/** Text on one line: Markdown without its marks on a terminal, else as written. */
function oneLine(text: string, color: boolean): string {
  return color ? plainText(text) : strip(text.replace(/\s+/g, " "));
}

function changeLine(
  kind: "edited" | "deleted" | "taken down" | "reacted" | "removed" | "reactions",
  parts: { id: number; user?: string; emoji?: string; text?: string; ts?: string },
  where: { room?: string; to?: string },
  options: ChangeOptions,
): string {
  const color = options.color ?? false;
  const time = paint(
    "dim",
    formatTime(parts.ts ?? (options.now ?? new Date()).toISOString(), options.now),
    color,
  );
  const label = placeLabel(where, options);
  const who = parts.user === undefined
    ? ""
    : paint("bold", paint(parts.user === options.me ? "green" : "cyan", parts.user, color), color);
  const id = `#${parts.id}`;
  const emoji = strip(parts.emoji ?? "");
  switch (kind) {
    case "edited": {
      const text = renderMarkdown(parts.text ?? "", { style: color }).join("\n  ");
      return who === ""
        ? `${time} ${label}${id} was edited: ${text}`
        : `${time} ${label}${who} edited ${id}: ${text}`;
    }
    case "deleted":
      return who === ""
        ? `${time} ${label}${id} was deleted`
        : `${time} ${label}${who} deleted ${id}`;
    // An admin removed someone else's message: the author did not delete it.
    case "taken down":
      return who === ""
        ? `${time} ${label}${id} was removed by an admin`
        : `${time} ${label}${who}'s message ${id} was removed by an admin`;
    case "reacted":
      return `${time} ${label}${who} reacted ${emoji} to ${id}${mention(options.message, color)}`;
    case "removed":
      return `${time} ${label}${who} removed ${emoji} from ${id}${mention(options.message, color)}`;
    case "reactions":
      return `${time} ${label}${id}${mention(options.message, color)} has reactions ${
        reactionSummary(options.message?.reactions)
      }`;
  }
}

/**
 * A live change as a short line: `bob edited #41: new text`, `alice deleted
 * #41`, `bob's message #41 was removed by an admin`, `alice reacted 👍 to #41
 * (bob: the deploy…)`, `alice removed 👍 from #41`, with the time in front. Who edited or deleted is the message's
 * author, named when the client holds the message (`options.message`).
 */
export function formatChange(change: ChangeFrame, options: ChangeOptions): string {
  const author = options.message?.from;
  switch (change.type) {
    case "edited":
      return changeLine(
        "edited",
        { id: change.id, user: author, text: change.text, ts: change.editedAt },
        change,
        options,
      );
    case "deleted":
      return changeLine(
        change.removed ? "taken down" : "deleted",
        { id: change.id, user: author },
        change,
        options,
      );
    case "reaction":
      return changeLine(
        change.on ? "reacted" : "removed",
        { id: change.id, user: change.user, emoji: change.emoji },
        change,
        options,
      );
  }
}

/**
 * What changed in a message while the client was away, as the same short
 * lines as {@link formatChange}: from the copy it held (`before`), or, when
 * it held none, what the message's state says (an edit, a deletion, its
 * reactions). Empty when nothing is worth a line.
 */
export function formatUpdate(
  before: ChatMessage | undefined,
  after: ChatMessage,
  options: FormatOptions,
): string[] {
  const opts: ChangeOptions = { ...options, message: after };
  if (after.deleted) {
    return before?.deleted ? [] : [changeLine(
      after.removed ? "taken down" : "deleted",
      { id: after.id, user: after.from },
      after,
      opts,
    )];
  }
  const lines: string[] = [];
  if (after.edited !== undefined && after.edited !== before?.edited) {
    lines.push(changeLine(
      "edited",
      { id: after.id, user: after.from, text: after.text, ts: after.edited },
      after,
      opts,
    ));
  }
  if (before === undefined) {
    if (after.reactions) lines.push(changeLine("reactions", { id: after.id }, after, opts));
    return lines;
  }
  const was = before.reactions ?? {};
  const now = after.reactions ?? {};
  for (const emoji of new Set([...Object.keys(now), ...Object.keys(was)])) {
    const old = was[emoji] ?? [];
    const cur = now[emoji] ?? [];
    for (const user of cur) {
      if (!old.includes(user)) {
        lines.push(changeLine("reacted", { id: after.id, user, emoji }, after, opts));
      }
    }
    for (const user of old) {
      if (!cur.includes(user)) {
        lines.push(changeLine("removed", { id: after.id, user, emoji }, after, opts));
      }
    }
  }
  return lines;
}

/**
 * A room event as a sentence: `* bob joined #random`, `* alice added bob to
 * #plans` (an invitation), `* alice removed bob from #lounge` (an admin's
 * kick); `me` is named "you".
 */
export function formatSystem(frame: SystemFrame, color = false, now?: Date, me?: string): string {
  const time = paint("dim", formatTime(frame.ts, now), color);
  const who = (name: string | undefined) => name === me ? "you" : name;
  switch (frame.event) {
    case "join":
      return frame.by === undefined
        ? `${time} ${paint("dim", `* ${frame.user} joined #${frame.room}`, color)}`
        : `${time} ${
          paint("dim", `* ${who(frame.by)} added ${who(frame.user)} to #${frame.room}`, color)
        }`;
    case "leave":
      return frame.by === undefined
        ? `${time} ${paint("dim", `* ${frame.user} left #${frame.room}`, color)}`
        : `${time} ${
          paint(
            "yellow",
            `* ${who(frame.by)} removed ${who(frame.user)} from #${frame.room}`,
            color,
          )
        }`;
    case "shutdown":
      return `${time} ${paint("yellow", "* The server is shutting down", color)}`;
  }
}

/**
 * An invitation: the answer to one's own `/invite` (`You added bob to
 * #plans`) or being added (`alice added you to #plans: /join plans to talk
 * there`).
 */
export function formatInvited(frame: InvitedFrame, me: string): string {
  // Names are shown as written; only "you" starts a sentence in capitals.
  const by = frame.by === me ? "You" : frame.by;
  if (frame.user !== undefined && frame.user !== me) {
    return `${by} added ${frame.user} to #${frame.room}`;
  }
  return `${by} added you to #${frame.room}: /join ${frame.room} to talk there`;
}

/** Being removed from a room by an admin: `alice removed you from #lounge`. */
export function formatRemoved(room: string, by: string, me: string): string {
  return by === me ? `You removed yourself from #${room}` : `${by} removed you from #${room}`;
}

/**
 * A room's new name: `* alice renamed #old to #new` (`you` for one's own),
 * or, found out on reconnecting, `* #old was renamed to #new while you were
 * away`.
 */
export function formatRenamed(
  frame: { room: string; name: string; by?: string },
  me: string,
): string {
  if (frame.by === undefined) {
    return `* #${frame.room} was renamed to #${frame.name} while you were away`;
  }
  return `* ${frame.by === me ? "you" : frame.by} renamed #${frame.room} to #${frame.name}`;
}

/**
 * Why `/rename` was refused, in words, from the server's error `code` (its
 * `message` for what has no words of its own here).
 */
export function formatRenameRefusal(
  code: string,
  message: string,
  options: { room: string; name: string; open?: boolean },
): string {
  const { room, name } = options;
  switch (code) {
    case "forbidden":
      return options.open
        ? `Cannot rename #${room}: only admins rename rooms, and this server is in open mode: it has none`
        : `Cannot rename #${room}: only admins rename rooms`;
    case "unknown_room":
      return `Cannot rename #${room}: there is no such room (or it is private and you are not in it)`;
    case "name_taken":
      return `Cannot rename #${room} to #${name}: there is a room #${name} already`;
    case "bad_request":
      return `Cannot rename #${room} to #${name}: ${lowerFirst(message)}`;
    default:
      return `Not renamed: ${lowerFirst(message)}`;
  }
}

/** A sentence continued after a colon: its first letter lower case (unless a word in capitals). */
function lowerFirst(message: string): string {
  return /^[A-Z][a-z]/.test(message) ? message.charAt(0).toLowerCase() + message.slice(1) : message;
}

/** What a room's kind says, in words: `["private", "read-only"]`; empty for an ordinary room. */
export function kindWords(kind: RoomKind | undefined): string[] {
  const words: string[] = [];
  if (kind?.private) words.push("private");
  if (kind?.readOnly) words.push("read-only");
  if (kind?.archived) words.push("archived");
  return words;
}

/** Whether two room kinds are the same (in what this client shows of them). */
export function sameKind(a: RoomKind | undefined, b: RoomKind | undefined): boolean {
  return kindWords(a).join() === kindWords(b).join() &&
    !!a?.restrictRoomMentions === !!b?.restrictRoomMentions;
}

/**
 * An admin's change of a room's kind as a sentence: `alice made #news
 * read-only`, `You made #plans public again`, `alice archived #old`. What
 * changed is told from `before` (the kind the client knew); without it,
 * the room's whole kind afterwards is said.
 */
export function formatRoomSettings(
  frame: RoomSettingsChangedFrame,
  me: string,
  before?: RoomKind,
): string {
  const by = frame.by === me ? "You" : frame.by;
  const room = `#${frame.room}`;
  const after = frame.settings;
  const made: string[] = [];
  const other: string[] = [];
  const flag = (k: keyof RoomKind) =>
    before === undefined
      ? (after[k] ? true : null)
      : (!!before[k] === !!after[k] ? null : !!after[k]);
  const priv = flag("private");
  if (priv === true) made.push("private");
  if (priv === false) made.push("public again");
  const ro = flag("readOnly");
  if (ro === true) made.push("read-only");
  if (ro === false) other.push(`let everyone post in ${room} again`);
  const arch = flag("archived");
  if (arch === true) other.push(`archived ${room}`);
  if (arch === false) other.push(`took ${room} out of the archive`);
  const mentions = flag("restrictRoomMentions");
  if (mentions === true) other.push(`let only admins use @room and @here in ${room}`);
  if (mentions === false) other.push(`let everyone use @room and @here in ${room} again`);
  const parts = [...(made.length > 0 ? [`made ${room} ${nameList(made)}`] : []), ...other];
  if (parts.length === 0) {
    return before === undefined
      ? `${by} made ${room} an open room again`
      : `${by} changed nothing about ${room}`;
  }
  return `${by} ${nameList(parts)}`;
}

/** A role change: `You are now an admin` / `You are now a member`. */
export function formatRole(role: "admin" | "member"): string {
  return role === "admin"
    ? "You are now an admin (/help lists the admin commands)"
    : "You are now a member";
}

/** When a ban ends, in local time (`2026-12-08 10:00`), from ms since the epoch. */
function localDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${
    pad(d.getMinutes())
  }`;
}

/** The answer to an admin's ban: `You banned bob until 2026-12-08 10:00: spam`. */
export function formatBanned(frame: BannedFrame): string {
  const until = frame.until === undefined
    ? " until you /unban them"
    : ` until ${localDateTime(frame.until)}`;
  return `You banned ${frame.user}${until}${frame.reason ? `: ${strip(frame.reason)}` : ""}`;
}

/** A short list of names: `alice, bob and carol`. */
export function nameList(names: string[]): string {
  if (names.length === 0) return "nobody";
  if (names.length === 1) return names[0];
  return `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/** Why the server closed a connection, as a sentence (for close codes without an error frame). */
export function closeSentence(code: number, reason: string): string {
  switch (code) {
    case CloseCode.GoingAway:
      return "The server is restarting";
    case CloseCode.SlowConsumer:
      return "The connection fell behind";
    case CloseCode.RateLimited:
      return "Too many connections or messages";
    case CloseCode.AuthFailed:
      return reason ? `Sign-in failed: ${reason}` : "Sign-in failed";
    case CloseCode.NameTaken:
      return reason ? `Name taken: ${reason}` : "The name is taken";
    case CloseCode.Banned:
      return "You are banned from this chat";
    case 1000:
      return "The connection was closed";
    default:
      return reason ? `The connection was lost: ${reason}` : "The connection was lost";
  }
}

const CERT_PROBLEMS: [RegExp, string][] = [
  [/UnknownIssuer/, "the certificate is not signed by an authority this machine trusts"],
  [/CaUsedAsEndEntity/, "the server presents a CA certificate as its own"],
  [/Expired/, "the certificate has expired"],
  [/NotValidYet/, "the certificate is not valid yet"],
  [/NotValidForName/, "the certificate is not valid for this host name"],
  [/BadSignature|InvalidSignature/, "the certificate's signature is invalid"],
  [/Revoked/, "the certificate was revoked"],
];

/**
 * A failure to reach the server as one plain sentence, from the message of
 * a WebSocket `error` event or a `fetch` error and its cause.
 */
export function describeConnectError(url: string, detail: string): string {
  const host = hostOf(url);
  const d = detail.replace(/^NetworkError:\s*/, "");
  if (/refused|tcp connect error|os error 111/i.test(d)) {
    return `Cannot connect to ${host}: connection refused (is the chat server running there?)`;
  }
  if (/dns error|failed to lookup|name or service not known|nodename nor servname/i.test(d)) {
    return `Cannot connect to ${url}: the host "${
      new URL(url).hostname
    }" was not found (check the URL)`;
  }
  if (/certificate|tls|ssl|handshake/i.test(d) && !/invalid HTTP version/i.test(d)) {
    const raw = (/invalid peer certificate: ([^\n]+)/.exec(d)?.[1] ?? d.split("\n")[0]).trim();
    const why = CERT_PROBLEMS.find(([re]) => re.test(raw))?.[1] ?? raw;
    // Deno refuses a CA certificate as a server's own even when told to trust it:
    // the server needs a certificate signed by that CA.
    const fix = /CaUsedAsEndEntity/.test(raw)
      ? "give the server a certificate signed by a CA of your own, and run the client with DENO_CERT=ca.pem"
      : "to trust a private or self-signed certificate, run with DENO_CERT=cert.pem";
    return `Cannot connect to ${host}: TLS failed: ${why} (${fix})`;
  }
  if (/invalid HTTP version|InvalidContentType|corrupt message|received corrupt/i.test(d)) {
    return url.startsWith("wss:")
      ? `Cannot connect to ${host}: the server does not speak TLS there (try ws:// or http://)`
      : `Cannot connect to ${host}: the server expects TLS there (try wss:// or https://)`;
  }
  const status = /Invalid status code:? (\d+)/i.exec(d)?.[1];
  if (status) {
    return status === "404"
      ? `Cannot connect to ${url}: the server answered 404 Not Found (the chat's WebSocket path is /ws)`
      : `Cannot connect to ${url}: the server answered HTTP ${status} instead of opening a WebSocket`;
  }
  if (/timed? ?out/i.test(d)) return `Cannot connect to ${host}: the connection timed out`;
  if (/reset|broken pipe|connection closed/i.test(d)) {
    return `Cannot connect to ${host}: the connection was closed before the chat answered`;
  }
  const oneLine = d.split("\n")[0].replace(
    /^(failed to connect to WebSocket|fetch failed):\s*/i,
    "",
  )
    .trim();
  return `Cannot connect to ${host}: ${oneLine || "the connection failed"}`;
}
