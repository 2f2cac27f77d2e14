// This module is browser compatible.
/**
 * Message Markdown as a small description tree: `marked` parses the text
 * (CommonMark + GFM) and this module maps its tokens to plain objects that
 * the `MessageText` component turns into Preact elements one to one. Nothing
 * here makes HTML: raw HTML in a message becomes a text node, links are kept
 * only for http and https, images become links, and the `@name` mentions and
 * bare links of {@link segments} keep working inside the text.
 *
 * The tree is the testable part: it holds every decision about what the
 * message shows, so tests check it without a browser.
 *
 * @module
 */
import type { MarkedToken, Token } from "marked";
import { lexMessage, MAX_DEPTH } from "../markdown.ts";
import { safeHref, segments } from "./text.ts";

/** A piece of running text. */
export type Inline =
  | { t: "text"; text: string }
  | { t: "br" }
  | { t: "strong" | "em" | "del"; children: Inline[] }
  | { t: "code"; text: string }
  | { t: "link"; href: string; children: Inline[] }
  | { t: "mention"; name: string; text: string };

/**
 * A block of a message. `gap` is the number of blank lines before it in the
 * message (absent when none), so that paragraphs stay as far apart as typed.
 */
export type Block =
  | { t: "p"; gap?: number; children: Inline[] }
  | { t: "pre"; gap?: number; text: string; lang: string }
  | { t: "quote"; gap?: number; children: Block[] }
  | { t: "list"; gap?: number; ordered: boolean; start: number; items: Item[] }
  | { t: "hr"; gap?: number };

/** A list item. */
export interface Item {
  /** Blank lines before it in the message (absent when none). */
  gap?: number;
  /** Its blocks. */
  children: Block[];
}

/** How many parsed messages {@link markdown} keeps: a few screens of history. */
export const CACHE_SIZE = 500;

// Parsed trees by text, least recently used first (a Map keeps insertion order).
const cache = new Map<string, Block[]>();

/**
 * The blocks of message `text`. Single newlines are line breaks, as chat
 * users expect. Trees are cached by text (the message list re-renders
 * often): treat the result as read-only.
 *
 * @example
 * ```ts
 * import { markdown } from "./markdown.ts";
 * const [p] = markdown("**hi** @bob");
 * if (p.t !== "p" || p.children[0].t !== "strong") throw new Error("parse");
 * ```
 */
export function markdown(text: string): Block[] {
  const hit = cache.get(text);
  if (hit) {
    cache.delete(text);
    cache.set(text, hit);
    return hit;
  }
  const tree = parse(text);
  cache.set(text, tree);
  if (cache.size > CACHE_SIZE) cache.delete(cache.keys().next().value!);
  return tree;
}

/** Whether `blocks` is one plain paragraph, which renders inline like plain text. */
export function isInline(blocks: Block[]): blocks is [{ t: "p"; children: Inline[] }] {
  return blocks.length === 1 && blocks[0].t === "p";
}

function parse(text: string): Block[] {
  const tokens = lexMessage(text);
  return tokens === null ? [{ t: "p", children: plain(text, true) }] : blocks(tokens, 0);
}

function newlines(s: string, fromEnd = false): number {
  if (!fromEnd) return s.split("\n").length - 1;
  let n = 0;
  while (n < s.length && s[s.length - 1 - n] === "\n") n++;
  return n;
}

function blocks(tokens: Token[], depth: number): Block[] {
  const out: Block[] = [];
  // Newlines since the end of the last block: the newline that ends a line
  // plus one per blank line. marked puts them in the block's raw text or in
  // the space token after it.
  let ends = 0;
  let box: string | null = null;
  for (const token of tokens) {
    const t = token as MarkedToken;
    if (t.type === "space") {
      ends += newlines(t.raw);
      continue;
    }
    if (t.type === "checkbox") {
      // A GFM task item: the box goes in front of the item's first paragraph.
      box = t.checked ? "☑ " : "☐ ";
      continue;
    }
    const b = block(t, depth);
    if (box !== null) {
      if (b.t === "p") b.children.unshift({ t: "text", text: box });
      else out.push({ t: "p", children: [{ t: "text", text: box }] });
      box = null;
    }
    const gap = out.length > 0 ? ends - 1 : 0;
    if (gap > 0) b.gap = gap;
    out.push(b);
    ends = newlines(t.raw, true);
  }
  if (box !== null) out.push({ t: "p", children: [{ t: "text", text: box }] });
  return out;
}

function block(t: MarkedToken, depth: number): Block {
  if ((t.type === "blockquote" || t.type === "list") && depth >= MAX_DEPTH) {
    return { t: "p", children: plain(trimEnd(t.raw), true) };
  }
  switch (t.type) {
    case "paragraph":
      return { t: "p", children: inlines(t.tokens, false, 0) };
    case "text":
      // A tight list item's text.
      return { t: "p", children: t.tokens ? inlines(t.tokens, false, 0) : plain(t.text, true) };
    case "heading":
      // A chat message is not a document: a heading is a bold line.
      return { t: "p", children: [{ t: "strong", children: inlines(t.tokens, false, 0) }] };
    case "code":
      // Indented text is not code in a chat (people paste indented lines): as typed.
      if (t.codeBlockStyle === "indented") return { t: "p", children: plain(trimEnd(t.raw), true) };
      return { t: "pre", text: t.text, lang: (t.lang ?? "").trim().split(/\s+/)[0] };
    case "blockquote":
      return { t: "quote", children: blocks(t.tokens, depth + 1) };
    case "list": {
      const items: Item[] = [];
      let ends = 0;
      for (const item of t.items) {
        const gap = items.length > 0 ? ends - 1 : 0;
        items.push(
          gap > 0
            ? { gap, children: blocks(item.tokens, depth + 1) }
            : { children: blocks(item.tokens, depth + 1) },
        );
        ends = newlines(item.raw, true);
      }
      return { t: "list", ordered: t.ordered, start: t.ordered ? Number(t.start) || 0 : 1, items };
    }
    case "hr":
      return { t: "hr" };
    case "html":
      // Raw HTML shows as typed.
      return { t: "p", children: plain(trimEnd(t.text), false) };
    default:
      // Tables, link definitions and anything else: as typed.
      return { t: "p", children: plain(trimEnd(t.raw), true) };
  }
}

function trimEnd(s: string): string {
  return s.replace(/\n+$/, "");
}

/**
 * Text as typed, lines as line breaks; with `linked`, bare links and
 * mentions found as in plain text.
 */
function plain(text: string, linked: boolean): Inline[] {
  const out: Inline[] = [];
  text.split("\n").forEach((line, i) => {
    if (i > 0) out.push({ t: "br" });
    if (line === "") return;
    if (linked) out.push(...segmented(line));
    else out.push({ t: "text", text: line });
  });
  return out;
}

/** Plain text with the links and mentions that {@link segments} finds. */
function segmented(text: string): Inline[] {
  return segments(text).map((s): Inline =>
    s.kind === "text"
      ? { t: "text", text: s.text }
      : s.kind === "link"
      ? { t: "link", href: s.href, children: [{ t: "text", text: s.text }] }
      : { t: "mention", name: s.name, text: s.text }
  );
}

/** Inline tokens; `inLink` keeps link text free of nested links and mentions. */
function inlines(tokens: Token[], inLink: boolean, depth: number): Inline[] {
  const out: Inline[] = [];
  const add = (n: Inline) => {
    const prev = out[out.length - 1];
    if (n.t === "text" && prev?.t === "text") prev.text += n.text;
    else out.push(n);
  };
  for (const token of tokens) {
    const t = token as MarkedToken;
    switch (t.type) {
      case "text":
        if (inLink) add({ t: "text", text: t.text });
        else segmented(t.text).forEach(add);
        break;
      case "escape":
        add({ t: "text", text: t.text });
        break;
      case "br":
        add({ t: "br" });
        break;
      case "strong":
      case "em":
      case "del":
        if (depth >= MAX_DEPTH) add({ t: "text", text: t.raw });
        else add({ t: t.type, children: inlines(t.tokens, inLink, depth + 1) });
        break;
      case "codespan":
        add({ t: "code", text: t.text });
        break;
      case "link": {
        const href = inLink ? null : safeHref(t.href);
        if (href) add({ t: "link", href, children: inlines(t.tokens, true, depth + 1) });
        else add({ t: "text", text: t.raw });
        break;
      }
      case "image": {
        // No images from a message (no tracking pixels, no layout jumps): a link.
        const href = inLink ? null : safeHref(t.href);
        if (href) add({ t: "link", href, children: [{ t: "text", text: t.text || t.href }] });
        else add({ t: "text", text: t.raw });
        break;
      }
      default:
        // Inline HTML and anything else: as typed.
        add({ t: "text", text: t.raw });
    }
  }
  return out;
}
