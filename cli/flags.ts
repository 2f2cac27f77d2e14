/**
 * Command-line parts every command shares: the error a user can fix, and
 * `parseArgs` errors turned into sentences with a "did you mean" hint.
 *
 * @module
 */

/**
 * A command-line mistake the user can fix; the message says how. `chat`
 * prints it without a stack trace and exits with status 2.
 */
export class UsageError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/**
 * Closest of `known` to `name` (at most two edits away), for "did you mean"
 * hints.
 *
 * @example
 * ```ts
 * import { suggest } from "./flags.ts";
 * suggest("prot", ["port", "host"]); // "port"
 * ```
 */
export function suggest(name: string, known: string[]): string | undefined {
  let best: string | undefined, bestD = 3;
  for (const k of known) {
    const d = distance(name, k);
    if (d < bestD) (best = k, bestD = d);
  }
  return best;
}

function distance(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0];
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j];
      dp[j] = Math.min(dp[j] + 1, dp[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length];
}

/** Turns a `parseArgs` error into a sentence with a hint; `known` are the long flags. */
export function flagError(err: Error, known: string[]): UsageError {
  const m = /Unknown option '(--?)([^']+)'/.exec(err.message);
  if (m) {
    const hint = m[1] === "--" ? suggest(m[2], known) : undefined;
    return new UsageError(
      `Unknown flag "${m[1]}${m[2]}"${hint ? `: did you mean "--${hint}"?` : ""} (see --help)`,
    );
  }
  // "Option '-r, --room <value>' argument missing": name the long form. "Argument
  // is ambiguous": the value starts with a dash ("--port -5") and reads as a flag.
  const v = /Option '(?:-\w, )?--?([^ ']+)[^']*' argument (missing|is ambiguous)/.exec(
    err.message,
  );
  if (v) {
    const dash = v[2] === "missing"
      ? ""
      : `; for one that starts with a dash, write --${v[1]}=VALUE`;
    return new UsageError(`Flag "--${v[1]}" needs a value${dash} (see --help)`);
  }
  const p = /Unexpected argument '([^']+)'/.exec(err.message);
  if (p) return new UsageError(`Unexpected argument "${p[1]}" (see --help)`);
  return new UsageError(`${err.message} (see --help)`);
}
