/**
 * Saved sessions of the terminal client: the session token of the last
 * sign-in per server, so that the next start signs in without asking and,
 * on an open-mode server, keeps its name.
 *
 * `tokens.json` is one JSON object keyed by the normalized server URL (see
 * `normalizeUrl`), each value `{ "user": NAME, "token": TOKEN }`. It lives in
 * `$XDG_CONFIG_HOME/chat/`, else `~/.config/chat/` (Windows:
 * `%APPDATA%\chat\`); the directory is created 0700 and the file written
 * 0600. Writers take turns on an OS lock of `tokens.json.lock`; the holder
 * writes `tokens.json.tmp`, syncs it and renames it over `tokens.json`, so
 * a reader sees the old file or the new one and two clients saving for
 * different servers at once keep both entries.
 *
 * @module
 */
import { dirname, posix, win32 } from "node:path";
import { replaceLocked } from "../server/locked_file.ts";

/** A saved sign-in: who, and the token that continues their session. */
export interface SavedSession {
  /** The user the token belongs to, as the server spells it. */
  user: string;
  /** The session token from the server's latest `welcome`. */
  token: string;
}

/** Options for {@link tokensPath}. */
export interface TokensPathOptions {
  /** Reads an environment variable. @default {Deno.env.get} */
  env?: (name: string) => string | undefined;
  /** The operating system, which decides where configuration lives. @default {Deno.build.os} */
  os?: typeof Deno.build.os;
}

/**
 * Where `tokens.json` lives: `$XDG_CONFIG_HOME/chat/tokens.json` when that
 * variable holds an absolute path, else `$HOME/.config/chat/tokens.json`;
 * on Windows `%APPDATA%\chat\tokens.json`.
 *
 * @example
 * ```ts
 * import { tokensPath } from "./tokens.ts";
 * const env = (name: string) => ({ HOME: "/home/ann" } as Record<string, string>)[name];
 * if (tokensPath({ env, os: "linux" }) !== "/home/ann/.config/chat/tokens.json") {
 *   throw new Error("expected ~/.config");
 * }
 * ```
 *
 * @throws {Error} when the variables it needs are not set.
 */
export function tokensPath(options: TokensPathOptions = {}): string {
  const env = options.env ?? ((name: string) => Deno.env.get(name));
  if ((options.os ?? Deno.build.os) === "windows") {
    const appData = env("APPDATA");
    if (!appData) throw new Error("APPDATA is not set");
    return win32.join(appData, "chat", "tokens.json");
  }
  const xdg = env("XDG_CONFIG_HOME");
  // The XDG spec: a relative path is invalid and is ignored.
  if (xdg && posix.isAbsolute(xdg)) return posix.join(xdg, "chat", "tokens.json");
  const home = env("HOME");
  if (!home) throw new Error("Neither XDG_CONFIG_HOME nor HOME is set");
  return posix.join(home, ".config", "chat", "tokens.json");
}

function granted(descriptor: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(descriptor).state === "granted";
}

/**
 * The store at {@link tokensPath} if this process may use it, or why not.
 * Permissions are queried, never asked for: a client run with fewer of them
 * (or the compiled binary) works on without remembering sessions.
 */
export function openTokenStore(): { store: TokenStore } | { problem: string } {
  let path: string;
  try {
    path = tokensPath({
      env: (name) => {
        if (!granted({ name: "env", variable: name })) {
          throw new Error(`No permission to read the environment variable ${name}`);
        }
        return Deno.env.get(name);
      },
    });
  } catch (err) {
    return { problem: (err as Error).message };
  }
  const dir = dirname(path);
  if (!granted({ name: "read", path: dir }) || !granted({ name: "write", path: dir })) {
    return { problem: `No permission to read and write "${dir}"` };
  }
  return { store: new TokenStore(path) };
}

/** Options for {@link TokenStore}. */
export interface TokenStoreOptions {
  /** How long a write waits for another writer's lock, in milliseconds. @default {5000} */
  lockTimeout?: number;
}

function isSaved(value: unknown): value is SavedSession {
  const v = value as SavedSession | null;
  return typeof v === "object" && v !== null && typeof v.user === "string" &&
    typeof v.token === "string" && v.token !== "";
}

/** The saved sessions in one `tokens.json`; see the module documentation. */
export class TokenStore {
  /** The file. */
  readonly path: string;
  #lockTimeout: number;
  /** Writes of this process, one after another (the OS lock orders processes). */
  #writes: Promise<unknown> = Promise.resolve();

  /** A store at `path` (nothing is read or created yet). */
  constructor(path: string, options: TokenStoreOptions = {}) {
    this.path = path;
    this.#lockTimeout = options.lockTimeout ?? 5000;
  }

  /**
   * The session saved for `url`; `null` when there is none.
   *
   * @throws {SyntaxError} when the file is not a JSON object.
   * @throws {Error} when it exists but cannot be read.
   */
  async get(url: string): Promise<SavedSession | null> {
    const entry = (await this.#read())[url];
    return isSaved(entry) ? { user: entry.user, token: entry.token } : null;
  }

  /** Saves `session` for `url`, keeping every other server's entry. */
  async set(url: string, session: SavedSession): Promise<void> {
    await this.#update((all) => {
      all[url] = { user: session.user, token: session.token };
      return true;
    });
  }

  /** Forgets the session saved for `url`; resolves whether there was one. */
  async delete(url: string): Promise<boolean> {
    let found = false;
    await this.#update((all) => {
      found = Object.hasOwn(all, url);
      delete all[url];
      return found;
    });
    return found;
  }

  async #read(): Promise<Record<string, unknown>> {
    let text: string;
    try {
      text = await Deno.readTextFile(this.path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return {};
      throw new Error(`Cannot read "${this.path}": ${(err as Error).message}`);
    }
    let data: unknown;
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
    if (typeof data !== "object" || data === null || Array.isArray(data)) {
      // Not ours to overwrite: it may hold what someone wants to keep.
      throw new SyntaxError(`"${this.path}" is not a JSON object: fix or remove it`);
    }
    return data as Record<string, unknown>;
  }

  /** Runs `change` on the file's entries under the lock and writes them if it says so. */
  #update(change: (all: Record<string, unknown>) => boolean): Promise<void> {
    const run = this.#writes.then(() => this.#locked(change));
    this.#writes = run.catch(() => {});
    return run;
  }

  async #locked(change: (all: Record<string, unknown>) => boolean): Promise<void> {
    try {
      await Deno.mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new Error(`Cannot write "${this.path}": ${(err as Error).message}`);
    }
    await replaceLocked(this.path, async () => {
      const all = await this.#read();
      return change(all) ? `${JSON.stringify(all, null, 2)}\n` : null;
    }, {
      wait: this.#lockTimeout,
      busy: `Cannot write "${this.path}": another client holds its lock`,
    });
  }
}
