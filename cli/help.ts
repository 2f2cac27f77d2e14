/**
 * Help text layout shared by every `chat` command: two-column option tables
 * wrapped to 80 columns, the server's generated from `OPTIONS`.
 *
 * @module
 */
import { OPTIONS, type OptionSpec } from "../server/config.ts";

/** Width help text is wrapped to. */
export const HELP_WIDTH = 80;

/** Column where descriptions start. */
const COLUMN = 27;

/** Splits `text` into lines of at most `width` characters, at spaces. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(line);
  return lines.length > 0 ? lines : [""];
}

/**
 * A two-column table: each left cell is indented by two spaces, each
 * description starts at the same column and wraps below itself.
 *
 * @example
 * ```ts
 * import { table } from "./help.ts";
 * const text = table([["-u, --user NAME", "Sign in as NAME"]]);
 * if (!text.startsWith("  -u, --user NAME")) throw new Error("indent");
 * ```
 */
export function table(rows: [string, string][]): string {
  const out: string[] = [];
  for (const [left, right] of rows) {
    const head = `  ${left}`;
    const body = wrap(right, HELP_WIDTH - COLUMN);
    if (head.length >= COLUMN - 1) {
      out.push(head);
      for (const l of body) out.push(" ".repeat(COLUMN) + l);
      continue;
    }
    out.push(head.padEnd(COLUMN) + body[0]);
    for (const l of body.slice(1)) out.push(" ".repeat(COLUMN) + l);
  }
  return out.join("\n");
}

/** One server option as a table row: flag, help, default and environment variables. */
function optionRow(o: OptionSpec): [string, string] {
  const notes: string[] = [];
  if (o.default !== undefined && o.default !== "" && o.default !== false) {
    notes.push(`default ${o.default}`);
  }
  if (o.env) notes.push(`env ${o.env.join(", ")}`);
  return [
    `--${o.flag}${o.arg ? ` ${o.arg}` : ""}`,
    notes.length > 0 ? `${o.help} [${notes.join("; ")}]` : o.help,
  ];
}

/** The server's options, generated from {@link OPTIONS}, plus `--help`. */
export function serverOptionsHelp(): string {
  return table([...OPTIONS.map(optionRow), ["-h, --help", "Show this help"]]);
}
