/**
 * Terminal input for the command line: a visible line, or a hidden password.
 * With stdin not a terminal (piped), lines are read as they come.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

let buffered = "";
let eof = false;

/** Reads one line from stdin (without the newline); `null` at end of input. */
export async function readLine(): Promise<string | null> {
  const chunk = new Uint8Array(4096);
  while (true) {
    const nl = buffered.indexOf("\n");
    if (nl !== -1) {
      const line = buffered.slice(0, nl).replace(/\r$/, "");
      buffered = buffered.slice(nl + 1);
      return line;
    }
    if (eof) {
      if (buffered === "") return null;
      const line = buffered;
      buffered = "";
      return line;
    }
    const n = await Deno.stdin.read(chunk);
    if (n === null) eof = true;
    else buffered += decoder.decode(chunk.subarray(0, n), { stream: true });
  }
}

/** Writes `text` to stderr (prompts stay out of piped stdout). */
export function say(text: string): void {
  Deno.stderr.writeSync(encoder.encode(text));
}

/** Asks a question and reads the answer; `fallback` when the answer is empty. */
export async function ask(question: string, fallback?: string): Promise<string | null> {
  say(fallback ? `${question} [${fallback}]: ` : `${question}: `);
  const line = await readLine();
  if (line === null) return null;
  return line.trim() === "" && fallback !== undefined ? fallback : line.trim();
}

/**
 * Asks for a password without echoing it (on a terminal); reads a plain line
 * when stdin is piped. `null` at end of input or on Ctrl+C.
 */
export async function askHidden(question: string): Promise<string | null> {
  say(`${question}: `);
  if (!Deno.stdin.isTerminal()) return await readLine();
  Deno.stdin.setRaw(true);
  let value = "";
  const buf = new Uint8Array(64);
  try {
    while (true) {
      const n = await Deno.stdin.read(buf);
      if (n === null) return null;
      for (const ch of decoder.decode(buf.subarray(0, n))) {
        if (ch === "\r" || ch === "\n") {
          say("\n");
          return value;
        }
        if (ch === "\u0003" || ch === "\u0004") {
          say("\n");
          return null;
        }
        if (ch === "\u007f" || ch === "\b") value = value.slice(0, -1);
        else if (ch >= " ") value += ch;
      }
    }
  } finally {
    Deno.stdin.setRaw(false);
  }
}
