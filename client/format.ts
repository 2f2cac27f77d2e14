/**
 * How the terminal client shows things: message lines with local time and
 * sender, notices, and plain sentences for connection failures. Pure
 * functions of their inputs.
 *
 * @module
 */
import type { ChatMessage, SystemFrame } from "../protocol.ts";
import { CloseCode } from "../protocol.ts";
import { hostOf } from "./url.ts";

/** Text styles; each is a pair of ANSI codes. */
const STYLES = {
  dim: ["\x1b[2m", "\x1b[22m"],
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

/** Removes control characters a message could use to redraw the terminal. */
export function clean(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, "").replace(/\n/g, "\n  ");
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
  /** Use ANSI colors. @default {false} */
  color?: boolean;
  /** Clock, for the date part of old messages. */
  now?: Date;
}

/**
 * One message line: `12:04 bob: hello`, with `#room` in front when it is not
 * the room on screen, and `bob → you:` for direct messages.
 */
export function formatMessage(msg: ChatMessage, options: FormatOptions): string {
  const color = options.color ?? false;
  const time = paint("dim", formatTime(msg.ts, options.now), color);
  const fromStyle: Style = msg.from === options.me ? "green" : "cyan";
  const from = paint("bold", paint(fromStyle, msg.from, color), color);
  const text = clean(msg.text);
  if (msg.room !== undefined) {
    const label = options.here?.room === msg.room
      ? ""
      : `${paint("yellow", `#${msg.room}`, color)} `;
    return `${time} ${label}${from}: ${text}`;
  }
  const mine = msg.from === options.me;
  const peer = mine ? msg.to! : msg.from;
  const arrow = mine
    ? `${from} → ${paint("magenta", peer === options.me ? "you" : peer, color)}`
    : `${from} → ${paint("magenta", "you", color)}`;
  return `${time} ${arrow}: ${text}`;
}

/** A room event as a sentence: `* bob joined #random`. */
export function formatSystem(frame: SystemFrame, color = false, now?: Date): string {
  const time = paint("dim", formatTime(frame.ts, now), color);
  switch (frame.event) {
    case "join":
      return `${time} ${paint("dim", `* ${frame.user} joined #${frame.room}`, color)}`;
    case "leave":
      return `${time} ${paint("dim", `* ${frame.user} left #${frame.room}`, color)}`;
    case "shutdown":
      return `${time} ${paint("yellow", "* The server is shutting down", color)}`;
  }
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
