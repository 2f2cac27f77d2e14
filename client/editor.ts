/**
 * The input line of the terminal client, as plain state: a key decoder for
 * raw terminal input and a line editor that knows its text, cursor and
 * input history and how to draw itself in a given width. No I/O here, so
 * every key can be tested.
 *
 * @module
 */

/** A key press, decoded from raw terminal input. */
export type Key =
  | { name: "text"; text: string }
  | {
    name:
      | "enter"
      | "backspace"
      | "delete"
      | "left"
      | "right"
      | "word-left"
      | "word-right"
      | "home"
      | "end"
      | "up"
      | "down"
      | "kill-start"
      | "kill-end"
      | "kill-word"
      | "interrupt"
      | "eof"
      | "redraw"
      | "tab";
  };

const CONTROL: Record<string, Key["name"]> = {
  "\r": "enter",
  "\n": "enter",
  "\x7f": "backspace",
  "\b": "backspace",
  "\x01": "home",
  "\x05": "end",
  "\x02": "left",
  "\x06": "right",
  "\x10": "up",
  "\x0e": "down",
  "\x15": "kill-start",
  "\x0b": "kill-end",
  "\x17": "kill-word",
  "\x03": "interrupt",
  "\x04": "eof",
  "\x0c": "redraw",
  "\t": "tab",
};

const CSI: Record<string, Key["name"]> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
  "1~": "home",
  "7~": "home",
  "4~": "end",
  "8~": "end",
  "3~": "delete",
  "1;5C": "word-right",
  "1;5D": "word-left",
  "1;3C": "word-right",
  "1;3D": "word-left",
};

/**
 * Turns raw terminal input into {@link Key}s. Escape sequences split across
 * reads are kept until they are complete; unknown ones are dropped.
 */
export class KeyDecoder {
  #pending = "";
  #decoder = new TextDecoder();
  #lastWasCr = false;

  /** Decodes a chunk of bytes (or text) read from the terminal. */
  feed(chunk: Uint8Array | string): Key[] {
    const text = typeof chunk === "string" ? chunk : this.#decoder.decode(chunk, { stream: true });
    let s = this.#pending + text;
    this.#pending = "";
    const keys: Key[] = [];
    let plain = "";
    const flush = () => {
      if (plain !== "") keys.push({ name: "text", text: plain });
      plain = "";
    };
    while (s.length > 0) {
      const ch = s[0];
      if (ch === "\x1b") {
        const seq = escape(s);
        if (seq === "incomplete") {
          this.#pending = s;
          break;
        }
        flush();
        if (seq.key) keys.push({ name: seq.key } as Key);
        s = s.slice(seq.length);
        this.#lastWasCr = false;
        continue;
      }
      // A terminal may send "\r\n" for one Enter: count it once.
      if (ch === "\n" && this.#lastWasCr) {
        this.#lastWasCr = false;
        s = s.slice(1);
        continue;
      }
      this.#lastWasCr = ch === "\r";
      const control = CONTROL[ch];
      if (control) {
        flush();
        keys.push({ name: control } as Key);
      } else if (ch >= " ") plain += ch;
      s = s.slice(1);
    }
    flush();
    return keys;
  }

  /** A lone Escape waiting for more input (the caller may drop it after a pause). */
  get pending(): boolean {
    return this.#pending !== "";
  }

  /** Forgets a partial escape sequence. */
  reset(): void {
    this.#pending = "";
  }
}

/** Length and meaning of the escape sequence at the start of `s`. */
function escape(s: string): { length: number; key?: Key["name"] } | "incomplete" {
  if (s.length === 1) return "incomplete";
  const second = s[1];
  if (second === "[" || second === "O") {
    // CSI/SS3: parameters, then one final byte in @..~
    let i = 2;
    while (i < s.length && s.charCodeAt(i) >= 0x20 && s.charCodeAt(i) <= 0x3f) i++;
    if (i >= s.length) return s.length > 16 ? { length: s.length } : "incomplete";
    const body = s.slice(2, i + 1);
    return { length: i + 1, key: CSI[body] };
  }
  if (second === "b") return { length: 2, key: "word-left" };
  if (second === "f") return { length: 2, key: "word-right" };
  if (second === "\x7f") return { length: 2, key: "kill-word" };
  // Escape followed by something else: drop the Escape alone.
  return { length: 1 };
}

/**
 * Columns a character takes on a terminal: 0 for combining marks, 2 for
 * wide East Asian characters and emoji, 1 otherwise.
 */
export function charWidth(ch: string): number {
  const c = ch.codePointAt(0) ?? 0;
  if (c === 0) return 0;
  if (c < 0x300) return 1;
  if ((c >= 0x300 && c <= 0x36f) || (c >= 0x200b && c <= 0x200f) || c === 0xfe0f) return 0;
  if (
    (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
    (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
    (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
    (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1faff) ||
    (c >= 0x20000 && c <= 0x3fffd)
  ) return 2;
  return 1;
}

/** Columns `text` takes on a terminal. */
export function textWidth(text: string): number {
  let w = 0;
  for (const ch of text) w += charWidth(ch);
  return w;
}

/** What a key did to the line. */
export type EditResult =
  | { kind: "submit"; line: string }
  | { kind: "changed" }
  /**
   * Tab put in `options[index]`; the same key again puts in the next one.
   * `options` are all the choices there were; `again` when this Tab went
   * on to the next choice rather than completing afresh.
   */
  | { kind: "completed"; options: string[]; index: number; again: boolean }
  | { kind: "none" }
  | { kind: "redraw" }
  | { kind: "interrupt" }
  | { kind: "eof" };

/** The visible input line: what to print and where the cursor goes. */
export interface Rendered {
  /** Prompt and the visible part of the text, to print after clearing the line. */
  line: string;
  /** Column of the cursor, from 0. */
  cursor: number;
}

/** What Tab may put in place of the end of the text before the cursor. */
export interface Completion {
  /** The end of the text before the cursor that is replaced. */
  word: string;
  /** The replacements, best first (the first goes in at the first Tab). */
  options: string[];
}

/** Options for {@link LineEditor}. */
export interface LineEditorOptions {
  /** Lines of input history kept for Up/Down. @default {100} */
  historySize?: number;
  /**
   * What Tab completes, given the text before the cursor; without it, Tab
   * does nothing.
   */
  complete?: (before: string) => Completion | null;
}

/** A one-line text editor with input history, driven by {@link Key}s. */
export class LineEditor {
  #chars: string[] = [];
  #cursor = 0;
  #history: string[] = [];
  #historySize: number;
  /** Position in the history while browsing it; `history.length` means the draft. */
  #browse = 0;
  #draft: string[] = [];
  #complete: LineEditorOptions["complete"];
  /** The choices Tab is going through: which one is in, where, and how long it is. */
  #cycle: { options: string[]; index: number; start: number; length: number } | null = null;

  /** Creates an empty editor. */
  constructor(options: LineEditorOptions = {}) {
    this.#historySize = options.historySize ?? 100;
    this.#complete = options.complete;
  }

  /** The current text. */
  get text(): string {
    return this.#chars.join("");
  }

  /** The cursor position, in characters from the start. */
  get cursor(): number {
    return this.#cursor;
  }

  /** Replaces the text and puts the cursor at its end. */
  set(text: string): void {
    this.#cycle = null;
    this.#chars = [...text];
    this.#cursor = this.#chars.length;
  }

  /** Applies one key. */
  handle(key: Key): EditResult {
    const chars = this.#chars;
    if (key.name !== "tab") this.#cycle = null;
    switch (key.name) {
      case "text": {
        const add = [...key.text];
        chars.splice(this.#cursor, 0, ...add);
        this.#cursor += add.length;
        return { kind: "changed" };
      }
      case "enter": {
        const line = this.text;
        if (line.trim() !== "" && this.#history.at(-1) !== line) {
          this.#history.push(line);
          if (this.#history.length > this.#historySize) this.#history.shift();
        }
        this.#browse = this.#history.length;
        this.#chars = [];
        this.#cursor = 0;
        return { kind: "submit", line };
      }
      case "backspace":
        if (this.#cursor === 0) return { kind: "none" };
        chars.splice(--this.#cursor, 1);
        return { kind: "changed" };
      case "delete":
        if (this.#cursor >= chars.length) return { kind: "none" };
        chars.splice(this.#cursor, 1);
        return { kind: "changed" };
      case "left":
        return this.#move(Math.max(0, this.#cursor - 1));
      case "right":
        return this.#move(Math.min(chars.length, this.#cursor + 1));
      case "home":
        return this.#move(0);
      case "end":
        return this.#move(chars.length);
      case "word-left":
        return this.#move(this.#wordStart());
      case "word-right": {
        let i = this.#cursor;
        while (i < chars.length && chars[i] === " ") i++;
        while (i < chars.length && chars[i] !== " ") i++;
        return this.#move(i);
      }
      case "kill-start":
        if (this.#cursor === 0) return { kind: "none" };
        chars.splice(0, this.#cursor);
        this.#cursor = 0;
        return { kind: "changed" };
      case "kill-end":
        if (this.#cursor >= chars.length) return { kind: "none" };
        chars.splice(this.#cursor);
        return { kind: "changed" };
      case "kill-word": {
        const start = this.#wordStart();
        if (start === this.#cursor) return { kind: "none" };
        chars.splice(start, this.#cursor - start);
        this.#cursor = start;
        return { kind: "changed" };
      }
      case "up":
        return this.#recall(this.#browse - 1);
      case "down":
        return this.#recall(this.#browse + 1);
      case "interrupt":
        if (chars.length === 0) return { kind: "interrupt" };
        this.#chars = [];
        this.#cursor = 0;
        return { kind: "changed" };
      case "eof":
        if (chars.length === 0) return { kind: "eof" };
        return this.handle({ name: "delete" });
      case "redraw":
        return { kind: "redraw" };
      case "tab":
        return this.#tab();
    }
  }

  /**
   * Tab: the first choice for the word before the cursor; pressed again
   * right after, the next choice instead (round and round).
   */
  #tab(): EditResult {
    const cycle = this.#cycle;
    if (cycle) {
      cycle.index = (cycle.index + 1) % cycle.options.length;
      const next = [...cycle.options[cycle.index]];
      this.#chars.splice(cycle.start, cycle.length, ...next);
      cycle.length = next.length;
      this.#cursor = cycle.start + next.length;
      return { kind: "completed", options: cycle.options, index: cycle.index, again: true };
    }
    const found = this.#complete?.(this.#chars.slice(0, this.#cursor).join(""));
    if (!found || found.options.length === 0) return { kind: "none" };
    const start = this.#cursor - [...found.word].length;
    const first = [...found.options[0]];
    this.#chars.splice(start, this.#cursor - start, ...first);
    this.#cursor = start + first.length;
    if (found.options.length > 1) {
      this.#cycle = { options: found.options, index: 0, start, length: first.length };
    }
    return { kind: "completed", options: found.options, index: 0, again: false };
  }

  #move(to: number): EditResult {
    if (to === this.#cursor) return { kind: "none" };
    this.#cursor = to;
    return { kind: "redraw" };
  }

  #wordStart(): number {
    let i = this.#cursor;
    while (i > 0 && this.#chars[i - 1] === " ") i--;
    while (i > 0 && this.#chars[i - 1] !== " ") i--;
    return i;
  }

  #recall(index: number): EditResult {
    if (index < 0 || index > this.#history.length) return { kind: "none" };
    if (this.#browse === this.#history.length) this.#draft = [...this.#chars];
    this.#browse = index;
    this.#chars = index === this.#history.length ? [...this.#draft] : [...this.#history[index]];
    this.#cursor = this.#chars.length;
    return { kind: "changed" };
  }

  /**
   * Draws the prompt and as much of the text as fits in `width` columns,
   * scrolled so that the cursor stays visible.
   */
  render(prompt: string, width: number): Rendered {
    const cols = Math.max(width - 1, 10);
    let shownPrompt = prompt;
    while (textWidth(shownPrompt) > cols / 2 && shownPrompt.length > 1) {
      shownPrompt = shownPrompt.slice(1);
    }
    const room = cols - textWidth(shownPrompt);
    const chars = this.#chars.map((c) => c === "\t" ? " " : c);
    // Start far enough right that the cursor fits; then fill to the right.
    let start = 0;
    let before = 0;
    for (let i = 0; i < this.#cursor; i++) before += charWidth(chars[i]);
    while (before > room - 1 && start < this.#cursor) before -= charWidth(chars[start++]);
    let end = start;
    let used = 0;
    while (end < chars.length && used + charWidth(chars[end]) <= room) {
      used += charWidth(chars[end++]);
    }
    return {
      line: shownPrompt + chars.slice(start, end).join(""),
      cursor: textWidth(shownPrompt) + before,
    };
  }
}
