/**
 * The server's deliberate output: one line per event, to stderr for warnings
 * and errors, stdout otherwise.
 *
 * @module
 */

/** Where the server writes what it has to say. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Logs to the console (`quiet` keeps only warnings and errors). */
export function consoleLogger(quiet = false): Logger {
  return {
    info(message) {
      // deno-lint-ignore no-console
      if (!quiet) console.log(message);
    },
    warn(message) {
      // deno-lint-ignore no-console
      console.error(`warning: ${message}`);
    },
    error(message) {
      // deno-lint-ignore no-console
      console.error(`error: ${message}`);
    },
  };
}

/** Collects lines in memory; for tests. */
export function memoryLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(m),
    warn: (m) => lines.push(`warning: ${m}`),
    error: (m) => lines.push(`error: ${m}`),
  };
}
