// This module is browser compatible.
/**
 * Turns message text into segments the UI renders as text nodes, links and
 * mentions. Nothing here produces HTML: the components render every segment
 * as text, so user input can never become markup.
 *
 * @module
 */
import { TEXT_TOKEN } from "../protocol.ts";

/** A piece of a message. */
export type Segment =
  | { kind: "text"; text: string }
  | { kind: "link"; text: string; href: string }
  | { kind: "mention"; text: string; name: string; me: boolean };

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
  // Links and mentions by the rule the server and the terminal client share
  // (matchAll works on a copy of the regex: sharing it is safe).
  for (const m of text.matchAll(TEXT_TOKEN)) {
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

/** The `@name` being typed at the caret (see {@link mentionAt}). */
export interface MentionQuery {
  /** Index of the `@`. */
  start: number;
  /** The name characters between the `@` and the caret (may be empty). */
  query: string;
}

// "@" where a mention may start (as in TEXT_TOKEN: not after a word character
// or "@"), then up to a name's worth of name characters, ending at the caret.
const TYPING = /(?<![\w@])@([A-Za-z0-9_-]{0,32})$/;

/**
 * The mention being typed when the caret is at `caret`: an `@` at the start
 * of a word (where {@link segments} would see a mention) and the name
 * characters after it up to the caret; null elsewhere, in an address
 * (`a@b`) and inside a link. Looks back at most a word's length from the caret.
 *
 * @example
 * ```ts
 * import { mentionAt } from "./text.ts";
 * const at = mentionAt("hi @bo", 6);
 * if (at?.start !== 3 || at.query !== "bo") throw new Error("mentionAt");
 * ```
 */
export function mentionAt(text: string, caret: number): MentionQuery | null {
  const from = Math.max(0, caret - 33);
  const m = TYPING.exec(text.slice(from, caret));
  if (!m) return null;
  const start = from + m.index;
  // The slice hides what was before it from the look-behind.
  if (start > 0 && /[\w@]/.test(text[start - 1])) return null;
  // "https://x.org/@bob" is a link, not a mention.
  let word = start;
  while (word > 0 && !/\s/.test(text[word - 1])) word--;
  if (/^https?:\/\//i.test(text.slice(word, start))) return null;
  return { start, query: m[1] };
}

/**
 * Puts `@name ` in place of the mention being typed from `start` (its `@`)
 * — the whole name when the caret is inside it — with one space after it.
 * Gives the new text and where the caret goes: after that space.
 */
export function insertMention(
  text: string,
  start: number,
  name: string,
): { text: string; caret: number } {
  let end = start + 1;
  while (end < text.length && /[A-Za-z0-9_-]/.test(text[end])) end++;
  const after = text.slice(end);
  const spaced = /^\s/.test(after) ? after.slice(1) : after;
  const head = `${text.slice(0, start)}@${name} `;
  return { text: head + spaced, caret: head.length };
}

/** Someone who may be mentioned, for {@link rankNames}. */
export interface Mentionable {
  /** The user's name. */
  name: string;
  /** Whether they are online now. */
  online?: boolean;
}

/**
 * The people whose names match `query` (ignoring case), best first: names
 * starting with it, then names containing it; within each, those online
 * first, then by name. At most `limit` of them.
 */
export function rankNames<T extends Mentionable>(query: string, people: T[], limit = 8): T[] {
  const q = query.toLowerCase();
  const scored: { p: T; group: number; lower: string }[] = [];
  for (const p of people) {
    const lower = p.name.toLowerCase();
    const at = lower.indexOf(q);
    if (at < 0) continue;
    scored.push({ p, group: at === 0 ? 0 : 1, lower });
  }
  scored.sort((a, b) =>
    a.group - b.group || Number(b.p.online ?? false) - Number(a.p.online ?? false) ||
    (a.lower < b.lower ? -1 : a.lower > b.lower ? 1 : 0)
  );
  return scored.slice(0, Math.max(0, limit)).map((s) => s.p);
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
