/**
 * The client in a script: every line of stdin becomes a message, in order,
 * and the process ends once the server has acknowledged the last one.
 *
 * @module
 */
import { ServerError, type Session, type Target } from "./session.ts";

/** Lines read ahead of the server's acknowledgements. */
const WINDOW = 256;

/** Options for {@link runPiped}. */
export interface PipedOptions {
  /** The signed-in session. */
  session: Session;
  /** Where the lines go. */
  target: Target;
  /** Reads the next line; `null` at end of input. */
  readLine: () => Promise<string | null>;
  /** Reports a problem (one line each). */
  report: (line: string) => void;
  /**
   * Settles with the session's last word when it cannot go on (banned,
   * signed out): no more lines are read, and the run ends with 1.
   */
  ended?: Promise<string>;
}

/**
 * Sends every non-blank line as a message and waits for each to be
 * acknowledged; resolves the exit code (0 when every line was delivered).
 */
export async function runPiped(options: PipedOptions): Promise<number> {
  const { session, target, readLine, report } = options;
  let failed = 0;
  let firstLost = Infinity;
  let fatal: string | null = null;
  const ended = options.ended?.then((message) => {
    fatal ??= message;
    return null;
  });
  const window: Promise<void>[] = [];
  let lineNo = 0;
  while (fatal === null) {
    // A read waiting for a line that may never come must not outlive the session.
    const line = await (ended ? Promise.race([readLine(), ended]) : readLine());
    if (line === null) break;
    lineNo++;
    if (line.trim() === "") continue;
    const n = lineNo;
    window.push(
      session.send(target, line).then(() => {}, (err: Error) => {
        if (err instanceof ServerError && err.code === "closed") {
          fatal ??= err.message;
          firstLost = Math.min(firstLost, n);
          return;
        }
        failed++;
        report(`Line ${n} was not sent: ${err.message}`);
      }),
    );
    if (window.length >= WINDOW) await window.shift();
  }
  await Promise.all(window);
  if (fatal !== null) {
    report(
      firstLost === Infinity
        ? fatal
        : `${fatal}: line ${firstLost} and those after it were not sent`,
    );
    return 1;
  }
  return failed > 0 ? 1 : 0;
}
