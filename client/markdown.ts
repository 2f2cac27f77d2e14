/**
 * Message text as the terminal shows it: Markdown (bold, italic,
 * strikethrough, inline code, code blocks, quotes, lists, links) with ANSI
 * styles. The text is parsed by `marked` into a syntax tree and the tree is
 * walked here; nothing is matched with regular expressions.
 *
 * Only this module writes escape sequences: every piece of the message's own
 * text goes through {@link strip} first, so a message can never move the
 * cursor, clear the screen or change the title, whatever it contains (raw
 * control characters, or character references such as `&#27;` that the
 * parser decodes).
 *
 * @module
 */
import type { Token, Tokens } from "marked";
import { lexMessage } from "../markdown.ts";

/** The ANSI styles of the renderer: an opening and a closing code each. */
const SGR = {
  bold: ["\x1b[1m", "\x1b[22m"],
  dim: ["\x1b[2m", "\x1b[22m"],
  italic: ["\x1b[3m", "\x1b[23m"],
  underline: ["\x1b[4m", "\x1b[24m"],
  strike: ["\x1b[9m", "\x1b[29m"],
  code: ["\x1b[36m", "\x1b[39m"],
} as const;

type Sgr = keyof typeof SGR;

/**
 * Removes the characters a terminal acts on (C0 and C1 controls, DEL),
 * keeping tabs and, when `newlines` is true, line breaks.
 */
export function strip(text: string, newlines = false): string {
  return newlines
    // deno-lint-ignore no-control-regex
    ? text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, "")
    // deno-lint-ignore no-control-regex
    : text.replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f]/g, "");
}

/** The named character references `marked` leaves as they are (it decodes numeric ones). */
const ENTITIES: Record<string, string> = {
  amp: "&",
  lt: "<",
  gt: ">",
  quot: '"',
  apos: "'",
  nbsp: "\u00a0",
};

function decode(text: string): string {
  return text.replace(/&([a-z]+);/g, (whole, name: string) => ENTITIES[name] ?? whole);
}

/** Options for {@link renderMarkdown}. */
export interface MarkdownOptions {
  /** Use ANSI styles; without them the text is returned as written. @default {true} */
  style?: boolean;
}

/** Links the terminal shows with their address: the others show their text only. */
function webLink(href: string): boolean {
  return /^https?:\/\//i.test(href);
}

class Renderer {
  #style: boolean;

  constructor(style: boolean) {
    this.#style = style;
  }

  paint(sgr: Sgr, text: string): string {
    return this.#style && text !== "" ? SGR[sgr][0] + text + SGR[sgr][1] : text;
  }

  /** Block tokens → lines. */
  blocks(tokens: Token[]): string[] {
    const lines: string[] = [];
    tokens.forEach((token, i) => {
      // A blank line between two blocks stays; at either end it goes.
      if (token.type === "space") {
        if (i > 0 && i < tokens.length - 1 && lines.length > 0) lines.push("");
        return;
      }
      lines.push(...this.block(token));
    });
    return lines;
  }

  block(token: Token): string[] {
    const t = token as Token & { type: string };
    switch (t.type) {
      case "def":
        return [];
      case "paragraph":
      case "text": {
        const tok = t as Tokens.Paragraph | Tokens.Text;
        return this.inline(tok.tokens ?? [{ type: "text", raw: tok.raw, text: tok.text }])
          .split("\n");
      }
      case "heading":
        return this.inline((t as Tokens.Heading).tokens).split("\n").map((l) =>
          this.paint("bold", l)
        );
      case "code": {
        const code = t as Tokens.Code;
        // A code block is kept exactly, each line marked on the left.
        return strip(code.text, true).split("\n").map((l) =>
          `${this.paint("dim", "│")} ${this.paint("code", l)}`
        );
      }
      case "blockquote":
        return this.blocks((t as Tokens.Blockquote).tokens).map((l) =>
          `${this.paint("dim", "▎")} ${l}`
        );
      case "list":
        return this.list(t as Tokens.List);
      case "hr":
        return [this.paint("dim", "────────")];
      case "html":
        // Raw HTML is text like any other.
        return strip((t as Tokens.HTML).text, true).replace(/\n+$/, "").split("\n");
      case "table": {
        const table = t as Tokens.Table;
        const row = (cells: Tokens.TableCell[], sgr?: Sgr) =>
          cells.map((c) => sgr ? this.paint(sgr, this.inline(c.tokens)) : this.inline(c.tokens))
            .join(this.paint("dim", " │ "));
        return [row(table.header, "bold"), ...table.rows.map((r) => row(r))];
      }
      default:
        return strip(t.raw, true).replace(/\n+$/, "").split("\n");
    }
  }

  list(list: Tokens.List): string[] {
    const lines: string[] = [];
    let n = typeof list.start === "number" ? list.start : 1;
    for (const item of list.items) {
      const bullet = list.ordered ? `${n++}.` : "•";
      const box = item.task ? (item.checked ? "[x] " : "[ ] ") : "";
      const body = this.blocks(item.tokens.filter((tok) => tok.type !== "checkbox"));
      const indent = " ".repeat(bullet.length + 1);
      body.forEach((line, i) => {
        lines.push(i === 0 ? `${this.paint("dim", bullet)} ${box}${line}` : `${indent}${line}`);
      });
      if (body.length === 0) lines.push(`${this.paint("dim", bullet)} ${box}`.trimEnd());
    }
    return lines;
  }

  /** Inline tokens → text, with `\n` where the message breaks its line. */
  inline(tokens: Token[]): string {
    let out = "";
    for (const token of tokens) {
      const t = token as Token & { type: string };
      switch (t.type) {
        case "text":
        case "escape": {
          const tok = t as Tokens.Text;
          out += tok.tokens ? this.inline(tok.tokens) : strip(decode(tok.text), true);
          break;
        }
        case "strong":
          out += this.paint("bold", this.inline((t as Tokens.Strong).tokens));
          break;
        case "em":
          out += this.paint("italic", this.inline((t as Tokens.Em).tokens));
          break;
        case "del":
          out += this.paint("strike", this.inline((t as Tokens.Del).tokens));
          break;
        case "codespan":
          out += this.paint("code", strip((t as Tokens.Codespan).text));
          break;
        case "br":
          out += "\n";
          break;
        case "link":
        case "image": {
          const link = t as Tokens.Link | Tokens.Image;
          const text = this.inline(link.tokens ?? []) || strip(link.text);
          if (!webLink(link.href)) {
            out += text;
            break;
          }
          const href = strip(link.href);
          out += plain(text) === href
            ? this.paint("underline", href)
            : `${text} (${this.paint("underline", href)})`;
          break;
        }
        case "html":
          out += strip((t as Tokens.HTML).text, true);
          break;
        default:
          out += strip(t.raw, true);
      }
    }
    return out;
  }
}

/** Text without the renderer's styles. */
function plain(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

/**
 * A message's text as lines for the terminal: Markdown rendered with ANSI
 * styles, or (with `style: false`) the text as written. Either way without
 * any control character of the text's own.
 *
 * @example
 * ```ts
 * import { renderMarkdown } from "./markdown.ts";
 * const [line] = renderMarkdown("see [the docs](https://example.com)", { style: false });
 * if (line !== "see [the docs](https://example.com)") throw new Error(line);
 * ```
 */
export function renderMarkdown(text: string, options: MarkdownOptions = {}): string[] {
  if (!(options.style ?? true)) return strip(text, true).split("\n");
  // Too long or too deeply nested to parse safely: the words still show.
  const tokens = lexMessage(text);
  if (tokens === null) return strip(text, true).split("\n");
  const lines = new Renderer(true).blocks(tokens);
  // Only link definitions, say: show what was written rather than nothing.
  if (lines.every((l) => l === "") && text.trim() !== "") return strip(text, true).split("\n");
  return lines;
}

/** Markdown rendered without styles, on one line: for quotes and short mentions. */
export function plainText(text: string): string {
  return plain(renderMarkdown(text).join(" "));
}
