// This module is browser compatible.
/**
 * Turns message text into segments the UI renders as text nodes, links and
 * mentions. Nothing here produces HTML: the components render every segment
 * as text, so user input can never become markup.
 *
 * @module
 */

/** A piece of a message. */
export type Segment =
  | { kind: "text"; text: string }
  | { kind: "link"; text: string; href: string }
  | { kind: "mention"; text: string; name: string; me: boolean };

// A link runs to the next space or quote; a mention is "@name" not preceded by
// a word character (so "a@b.c" stays an address). Both alternatives are linear
// on any input: the link's run is greedy with nothing after it to backtrack
// into, and a name backtracks over at most 32 characters.
const TOKEN = /\bhttps?:\/\/[^\s<>"'`]+|(?<![\w@])@[A-Za-z0-9_-]{1,32}(?![A-Za-z0-9_-])/gi;

// Characters that end a sentence rather than a URL ("see https://x.org.").
const TRAILING = ".,;:!?'\")]}>";

/**
 * Splits `text` into plain text, links (http and https only) and `@name`
 * mentions; `me` marks mentions of the viewer (case-insensitive). Takes time
 * linear in the length of `text`, whatever it holds.
 *
 * @example
 * ```ts
 * import { segments } from "./text.ts";
 * const parts = segments("hi @bob, see https://example.com.", "bob");
 * if (parts[1].kind !== "mention" || parts[3].kind !== "link") throw new Error("parse");
 * ```
 */
export function segments(text: string, me?: string | null): Segment[] {
  const out: Segment[] = [];
  const mine = me?.toLowerCase();
  let at = 0;
  const push = (t: string) => {
    if (t === "") return;
    const prev = out[out.length - 1];
    if (prev?.kind === "text") prev.text += t;
    else out.push({ kind: "text", text: t });
  };
  for (const m of text.matchAll(TOKEN)) {
    const start = m.index;
    let token = m[0];
    if (token[0] === "@") {
      push(text.slice(at, start));
      const name = token.slice(1);
      out.push({ kind: "mention", text: token, name, me: name.toLowerCase() === mine });
      at = start + token.length;
      continue;
    }
    token = trimLink(token);
    const href = safeHref(token);
    push(text.slice(at, start));
    if (href) out.push({ kind: "link", text: token, href });
    else push(token);
    at = start + token.length;
  }
  push(text.slice(at));
  return out;
}

/** Drops sentence punctuation from the end of a link, keeping balanced parentheses. */
function trimLink(url: string): string {
  // Count once, then trim with running counts: a ")" stays when the link
  // before it has at least as many "(" as ")". No "(" is ever trimmed, so the
  // total of "(" holds for every prefix the loop looks at.
  let open = 0;
  let close = 0;
  for (let i = 0; i < url.length; i++) {
    if (url[i] === "(") open++;
    else if (url[i] === ")") close++;
  }
  let end = url.length;
  while (end > 0 && TRAILING.includes(url[end - 1])) {
    if (url[end - 1] === ")") {
      if (open >= close) break;
      close--;
    }
    end--;
  }
  return url.slice(0, end);
}

/** The URL as an `href` when it parses as http or https, else null. */
export function safeHref(url: string): string | null {
  try {
    const u = new URL(url);
    return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
  } catch {
    return null;
  }
}

/** Whether `text` mentions `me` with `@me` (case-insensitive). */
export function mentions(text: string, me: string | null | undefined): boolean {
  if (!me) return false;
  return segments(text, me).some((s) => s.kind === "mention" && s.me);
}

/**
 * Splits `text` around the words of a search query (case-insensitive), for
 * highlighting results; odd indexes are the matches.
 */
export function highlight(text: string, q: string): string[] {
  const words = q.toLowerCase().split(/\s+/).filter((w) => w !== "");
  if (words.length === 0) return [text];
  const pattern = new RegExp(
    `(${words.map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|")})`,
    "gi",
  );
  return text.split(pattern);
}

/** A byte count in words: `1 byte`, `12 bytes`. */
export function bytes(n: number): string {
  return n === 1 ? "1 byte" : `${n} bytes`;
}
