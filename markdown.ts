// This module is browser compatible.
/**
 * Message text is Markdown (CommonMark with GitHub's strikethrough and
 * autolinks); this module parses it the one way both clients render it: the
 * web app as Preact elements (`web/markdown.ts`), the terminal with ANSI
 * styles (`client/markdown.ts`). It returns `marked`'s tokens, or null when
 * the text must show as typed.
 *
 * @module
 */
import { Lexer, type Token } from "marked";

/**
 * How deep quotes, lists and emphasis may nest before the rest shows as typed:
 * enough for any real message, and a bound on the depth of a rendered tree.
 */
export const MAX_DEPTH = 8;

/**
 * Messages longer than this many characters show as typed: it bounds the
 * parser's worst case (some shapes take time quadratic in the length).
 */
export const MAX_MARKDOWN = 16_384;

// Shapes that make marked recurse once per character (taking quadratic time
// and, from a few thousand, overflowing the stack): a line starting with many
// quote or list markers ("> > > …", "- - - … a") and a very long run of
// emphasis delimiters ("*****…x*****…"; a run as long as a code comment banner
// is fine). Nobody writes these on purpose; such a message shows as typed.
// Both patterns are linear: each repetition must consume a marker.
const DEEP_BLOCKS = new RegExp(
  `^(?:[ \\t]*(?:>|(?:[-+*]|\\d{1,9}[.)])(?=[ \\t]))){${2 * MAX_DEPTH + 1}}`,
  "m",
);
const LONG_RUN = /[*_]{257}/;

/**
 * The Markdown tokens of message `text` (single newlines are line breaks, as
 * chat users expect), or null when it should show as typed: too long, shaped
 * to make the parser recurse deeply, or (a backstop) making it throw.
 *
 * @example
 * ```ts
 * import { lexMessage } from "./markdown.ts";
 * const tokens = lexMessage("**hi**");
 * if (tokens?.[0].type !== "paragraph") throw new Error("parse");
 * if (lexMessage("> ".repeat(100) + "x") !== null) throw new Error("deep");
 * ```
 */
export function lexMessage(text: string): Token[] | null {
  if (text.length > MAX_MARKDOWN || DEEP_BLOCKS.test(text) || LONG_RUN.test(text)) return null;
  try {
    return Lexer.lex(text, { gfm: true, breaks: true });
  } catch {
    return null;
  }
}

/** Characters without which text has no Markdown that changes its words. */
const MARKUP = /[*_~`[\]<>&\\!|#]|https?:|www\./;

/**
 * The words of message `text` without its Markdown, as search indexes them:
 * emphasis, code marks and quote markers gone, a link's text kept and its
 * address dropped (an autolinked URL is its own text), raw HTML as typed.
 * Blocks are separated by newlines. Text without Markdown comes back as is.
 *
 * @example
 * ```ts
 * import { plainText } from "./markdown.ts";
 * if (plainText("dep**loy** [docs](https://x.test/y)") !== "deploy docs") throw new Error();
 * ```
 */
export function plainText(text: string): string {
  if (!MARKUP.test(text)) return text;
  const tokens = lexMessage(text);
  return tokens === null ? text : words(tokens).trim();
}

/** The text of tokens, blocks on their own lines. */
function words(tokens: readonly Token[]): string {
  let out = "";
  for (const t of tokens) {
    const children = (t as { tokens?: Token[] }).tokens;
    switch (t.type) {
      case "space":
      case "hr":
        out += "\n";
        break;
      case "br":
        out += "\n";
        break;
      case "code":
        out += `${t.text}\n`;
        break;
      case "codespan":
      case "escape":
      case "html":
        out += t.type === "html" ? t.raw : t.text;
        break;
      case "list":
        for (const item of t.items) out += `${words(item.tokens)}\n`;
        break;
      case "table":
        for (const row of [t.header, ...t.rows]) {
          out += `${row.map((cell: { tokens: Token[] }) => words(cell.tokens)).join(" ")}\n`;
        }
        break;
      case "image":
        out += t.text;
        break;
      default:
        // Paragraphs, headings, quotes, emphasis, links (their text): what is inside.
        if (children) out += words(children);
        else if ("text" in t && typeof t.text === "string") out += t.text;
        else out += t.raw;
        if (t.type === "paragraph" || t.type === "heading" || t.type === "blockquote") out += "\n";
    }
  }
  return out;
}
