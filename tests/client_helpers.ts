/**
 * Runs the real `chat` program as a subprocess, with the permissions of
 * `deno task client`, for the terminal client's end-to-end tests.
 *
 * @module
 */

/** The repository root. */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** Arguments of `deno run` for the client, as in `deno task client`. */
export const CLIENT_RUN: string[] = [
  "run",
  "--allow-net",
  "--allow-env=CHAT_PASSWORD",
  "main.ts",
];

/** Environment for a child: only what Deno needs, plus `extra`. */
export function childEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const k of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME", "TZ", "LANG", "TERM"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  return { ...env, ...extra };
}

/** What a finished `chat` process printed. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `chat ARGS…` to the end, feeding `stdin` (closed afterwards). */
export async function runChat(
  args: string[],
  options: { stdin?: string; env?: Record<string, string>; permissions?: string[] } = {},
): Promise<RunResult> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: [...(options.permissions ?? CLIENT_RUN), ...args],
    cwd: ROOT,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    clearEnv: true,
    env: childEnv(options.env),
  });
  const child = cmd.spawn();
  const writer = child.stdin.getWriter();
  try {
    if (options.stdin) await writer.write(new TextEncoder().encode(options.stdin));
  } finally {
    await writer.close().catch(() => {});
  }
  const out = await child.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** A `chat client` process whose stdin the test writes line by line. */
export class ClientProcess implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #output: Promise<Deno.CommandOutput>;

  /** Starts `chat client ARGS…`. */
  constructor(args: string[], env: Record<string, string> = {}) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [...CLIENT_RUN, "client", ...args],
      cwd: ROOT,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      clearEnv: true,
      env: childEnv(env),
    }).spawn();
    this.#writer = this.child.stdin.getWriter();
    this.#output = this.child.output();
  }

  /** Writes lines to the client's stdin. */
  async write(...lines: string[]): Promise<void> {
    await this.#writer.write(new TextEncoder().encode(lines.map((l) => `${l}\n`).join("")));
  }

  /** Closes stdin (end of input) and waits for the process to end. */
  async finish(): Promise<RunResult> {
    await this.#writer.close().catch(() => {});
    const out = await this.#output;
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  }

  /** Kills the process if it still runs. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      this.child.kill("SIGKILL");
    } catch {
      // Ended already.
    }
    await this.#writer.close().catch(() => {});
    await this.#output.catch(() => {});
  }
}
