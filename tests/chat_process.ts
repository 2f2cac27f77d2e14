/**
 * The one way tests run `main.ts` as a real process: {@link ChatProcess} (a
 * child whose output is collected line by line), {@link spawnServer} (one
 * that serves, after its banner) and {@link runChat} (a command run to its
 * exit code).
 *
 * @module
 */
import { DEADLINE } from "./helpers.ts";

/** The path of main.ts. */
export const MAIN: string = new URL("../main.ts", import.meta.url).pathname;

/** `deno` arguments of a server with its scoped permissions, as in the README. */
export const SERVE: string[] = [
  "run",
  "--allow-net",
  "--allow-read",
  "--allow-write",
  "--allow-env",
  MAIN,
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

/** How to run a `chat` process. */
export interface ChatOptions {
  /** `deno` arguments before chat's own. @default {["run", "-A", MAIN]} */
  deno?: string[];
  /** The working directory. @default {the test's} */
  cwd?: string;
  /** Extra environment variables (`NO_COLOR=1` is always set). */
  env?: Record<string, string>;
  /** Pass only what Deno needs ({@link childEnv}) besides `env`. @default {false} */
  clearEnv?: boolean;
  /** Keep stdin open for {@link ChatProcess.write}. @default {false} */
  stdin?: boolean;
  /**
   * Run as root without the capabilities that bypass file permissions, so a
   * read-only file is read-only for the test too (no-op for other users).
   * @default {false}
   */
  dropRoot?: boolean;
}

/** A `chat` process; its output is collected as it comes. */
export class ChatProcess implements AsyncDisposable {
  /** The child process. */
  readonly child: Deno.ChildProcess;
  /** Every complete line printed so far, stdout and stderr interleaved. */
  readonly lines: string[] = [];
  /** Resolves the exit status once both outputs are read to their end. */
  readonly status: Promise<Deno.CommandStatus>;
  #text = { stdout: "", stderr: "" };
  #exited = false;
  #changed = new Set<() => void>();
  #writer: WritableStreamDefaultWriter<Uint8Array> | null = null;

  /** Starts `deno run main.ts ARGS…`. */
  constructor(args: string[], options: ChatOptions = {}) {
    let cmd = Deno.execPath();
    let full = [...(options.deno ?? ["run", "-A", MAIN]), ...args];
    if (options.dropRoot && Deno.uid() === 0) {
      full = ["--bounding-set", "-dac_override,-dac_read_search", cmd, ...full];
      cmd = "setpriv";
    }
    const env = { NO_COLOR: "1", ...options.env };
    this.child = new Deno.Command(cmd, {
      args: full,
      cwd: options.cwd,
      clearEnv: options.clearEnv,
      env: options.clearEnv ? childEnv(env) : env,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (options.stdin) this.#writer = this.child.stdin.getWriter();
    const read = Promise.all([
      this.#read(this.child.stdout, "stdout"),
      this.#read(this.child.stderr, "stderr"),
    ]);
    this.status = this.child.status.then(async (s) => {
      await read;
      this.#exited = true;
      this.#notify();
      return s;
    });
  }

  async #read(stream: ReadableStream<Uint8Array>, name: "stdout" | "stderr"): Promise<void> {
    let rest = "";
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      const text = decoder.decode(chunk, { stream: true });
      this.#text[name] += text;
      const lines = (rest + text).split("\n");
      rest = lines.pop()!;
      this.lines.push(...lines);
      this.#notify();
    }
    if (rest !== "") this.lines.push(rest);
    this.#notify();
  }

  #notify(): void {
    for (const f of this.#changed) f();
  }

  /** Standard output so far. */
  get stdout(): string {
    return this.#text.stdout;
  }

  /** Standard error so far. */
  get stderr(): string {
    return this.#text.stderr;
  }

  /** Whether the process has ended (and its output is read). */
  get exited(): boolean {
    return this.#exited;
  }

  /** Waits for a line matching `re` and returns it; fails once the process ended without one. */
  async waitFor(re: RegExp, timeout: number = DEADLINE): Promise<string> {
    const deadline = Date.now() + timeout;
    while (true) {
      const hit = this.lines.find((l) => re.test(l));
      if (hit !== undefined) return hit;
      if (this.#exited) {
        throw new Error(`The process exited before printing ${re}:\n${this.lines.join("\n")}`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`Timed out waiting for ${re}:\n${this.lines.join("\n")}`);
      await new Promise<void>((resolve) => {
        const changed = this.#changed;
        const t = setTimeout(done, left);
        function done() {
          clearTimeout(t);
          changed.delete(done);
          resolve();
        }
        changed.add(done);
      });
    }
  }

  /** Writes `text` to stdin (needs `stdin: true`). */
  async write(text: string): Promise<void> {
    if (!this.#writer) throw new TypeError("Cannot write: the process was started without stdin");
    await this.#writer.write(new TextEncoder().encode(text));
  }

  /** Closes stdin: the end of input. */
  async endInput(): Promise<void> {
    await this.#writer?.close().catch(() => {});
  }

  /** Sends `signal` (unless the process ended already) and waits for the exit status. */
  async kill(signal: Deno.Signal = "SIGKILL"): Promise<Deno.CommandStatus> {
    if (!this.#exited) {
      try {
        this.child.kill(signal);
      } catch {
        // Exited meanwhile.
      }
    }
    await this.endInput();
    return await this.status;
  }

  /** Kills the process if it still runs. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.kill("SIGKILL");
  }
}

/** A `chat` server: a {@link ChatProcess} that printed its banner. */
export interface ServerProcess extends ChatProcess {
  /** The port from the banner. */
  readonly port: number;
  /** `ws://127.0.0.1:PORT/ws` */
  readonly ws: string;
}

/** Starts `chat ARGS…` and waits for its "listening on HOST:PORT" banner. */
export async function spawnServer(
  args: string[],
  options: ChatOptions = {},
): Promise<ServerProcess> {
  const proc = new ChatProcess(args, options);
  try {
    const banner = await proc.waitFor(/listening on [^\s]+:(\d+)/);
    const port = Number(/listening on [^\s]+:(\d+)/.exec(banner)![1]);
    return Object.assign(proc, { port, ws: `ws://127.0.0.1:${port}/ws` });
  } catch (err) {
    await proc.kill("SIGKILL");
    throw err;
  }
}

/** What a finished `chat` process printed. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@link runChat}. */
export interface RunOptions extends Omit<ChatOptions, "stdin"> {
  /** What the program reads on stdin (closed afterwards). @default {none: stdin is /dev/null} */
  stdin?: string;
  /** Killed after this many ms. @default {DEADLINE * 2} */
  timeout?: number;
}

/** Runs `chat ARGS…` to its exit, feeding `stdin`. */
export async function runChat(args: string[], options: RunOptions = {}): Promise<RunResult> {
  const { stdin, timeout = DEADLINE * 2, ...rest } = options;
  await using proc = new ChatProcess(args, { ...rest, stdin: stdin !== undefined });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeout);
  try {
    if (stdin !== undefined) {
      await proc.write(stdin).catch(() => {});
      await proc.endInput();
    }
    const { code } = await proc.status;
    return { code, stdout: proc.stdout, stderr: proc.stderr };
  } finally {
    clearTimeout(timer);
  }
}
