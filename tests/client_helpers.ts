/**
 * Runs the real `chat` program as a subprocess, with the permissions of
 * `deno task client`, for the terminal client's end-to-end tests. Every
 * client gets a configuration directory of its own (`XDG_CONFIG_HOME`), so
 * no test reads or writes the saved sessions of the person running it.
 *
 * @module
 */
import { ChatProcess, runChat, type RunResult } from "./chat_process.ts";

/** The repository root. */
export const ROOT: string = new URL("..", import.meta.url).pathname;

/** The directory `deno task client` may read and write, as written in deno.json. */
export const TASK_CHAT_DIR = "$HOME/.config/chat";

/** The `client` task of deno.json. */
export const CLIENT_TASK: string = JSON.parse(
  Deno.readTextFileSync(new URL("../deno.json", import.meta.url)),
).tasks.client;

/**
 * Arguments of `deno run` for the client, as in `deno task client`, with
 * `chatDir` where the task has `$HOME/.config/chat`.
 */
export function clientRun(chatDir: string): string[] {
  const words = CLIENT_TASK.replaceAll(TASK_CHAT_DIR, chatDir)
    .match(/"[^"]*"|\S+/g)!
    .map((w) => w.replace(/^"(.*)"$/, "$1"));
  if (words[0] !== "deno" || words.at(-1) !== "client") {
    throw new Error(`Unexpected client task: ${CLIENT_TASK}`);
  }
  return words.slice(1, -1);
}

/** Deno's cache, to name explicitly for a client run with a HOME of its own. */
export async function denoDir(): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), { args: ["info", "--json"], stdout: "piped" })
    .output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

/** The shape of the client's tokens.json. */
export type SavedTokens = Record<string, { user: string; token: string }>;

/**
 * A configuration directory of one test's own, used as `XDG_CONFIG_HOME`;
 * removed on dispose.
 */
export class ConfigHome implements AsyncDisposable {
  /** The directory (`XDG_CONFIG_HOME`). */
  readonly path: string = Deno.makeTempDirSync({ prefix: "chat-config-" });

  /** The client's directory in it. */
  get chatDir(): string {
    return `${this.path}/chat`;
  }

  /** The saved sessions file. */
  get tokensFile(): string {
    return `${this.chatDir}/tokens.json`;
  }

  /** Environment for a client using it. */
  get env(): Record<string, string> {
    return { XDG_CONFIG_HOME: this.path };
  }

  /** `deno run` arguments with the task's permissions, for this directory. */
  get run(): string[] {
    return clientRun(this.chatDir);
  }

  /** The saved sessions; `{}` when the file does not exist. */
  async tokens(): Promise<SavedTokens> {
    try {
      return JSON.parse(await Deno.readTextFile(this.tokensFile));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return {};
      throw err;
    }
  }

  /** Writes tokens.json as given (creating the directory). */
  async write(tokens: SavedTokens): Promise<void> {
    await Deno.mkdir(this.chatDir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(this.tokensFile, JSON.stringify(tokens), { mode: 0o600 });
  }

  /** Removes the directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

/** Options for {@link runClient}. */
export interface ClientRunOptions {
  /** What the program reads on stdin (closed afterwards). */
  stdin?: string;
  /** Environment variables besides the ones Deno needs. */
  env?: Record<string, string>;
  /** `deno` arguments before `chat`'s own. @default {config.run} */
  permissions?: string[];
  /** The configuration directory. @default {a new one, removed afterwards} */
  config?: ConfigHome;
}

/**
 * Runs `chat ARGS…` to the end as {@link runChat} does, in the repository
 * root with only the environment Deno needs and a configuration directory of
 * its own, so nothing of the person running the tests leaks in.
 */
export async function runClient(
  args: string[],
  options: ClientRunOptions = {},
): Promise<RunResult> {
  await using own = options.config ? null : new ConfigHome();
  const config = options.config ?? own!;
  return await runChat(args, {
    deno: options.permissions ?? config.run,
    cwd: ROOT,
    clearEnv: true,
    env: { ...config.env, ...options.env },
    stdin: options.stdin ?? "",
  });
}

/** A `chat client` process whose stdin the test writes line by line. */
export class ClientProcess implements AsyncDisposable {
  readonly #proc: ChatProcess;
  #own: ConfigHome | null;

  /** Starts `chat client ARGS…` (in a configuration directory of its own unless given one). */
  constructor(args: string[], env: Record<string, string> = {}, config?: ConfigHome) {
    this.#own = config ? null : new ConfigHome();
    const home = config ?? this.#own!;
    this.#proc = new ChatProcess(["client", ...args], {
      deno: home.run,
      cwd: ROOT,
      clearEnv: true,
      env: { ...home.env, ...env },
      stdin: true,
    });
  }

  /** The child process. */
  get child(): Deno.ChildProcess {
    return this.#proc.child;
  }

  /** Writes lines to the client's stdin. */
  async write(...lines: string[]): Promise<void> {
    await this.#proc.write(lines.map((l) => `${l}\n`).join(""));
  }

  /** Closes stdin (end of input) and waits for the process to end. */
  async finish(): Promise<RunResult> {
    await this.#proc.endInput();
    const { code } = await this.#proc.status;
    await this.#own?.[Symbol.asyncDispose]();
    return { code, stdout: this.#proc.stdout, stderr: this.#proc.stderr };
  }

  /** Kills the process if it still runs. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.#proc.kill("SIGKILL");
    await this.#own?.[Symbol.asyncDispose]();
  }
}

/** A temporary directory, removed on dispose. */
export class TempDir implements AsyncDisposable {
  readonly path: string;
  constructor(prefix = "chat-files-") {
    this.path = Deno.makeTempDirSync({ prefix });
  }
  async [Symbol.asyncDispose](): Promise<void> {
    await Deno.remove(this.path, { recursive: true }).catch(() => {});
  }
}

/** `n` random bytes (not compressible, not an image: stored as they are). */
export function randomBytes(n: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}
