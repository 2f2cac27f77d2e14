/**
 * The files a server touches, checked against the process's permissions
 * before it starts. The compiled `chat` may only read and write a few files
 * in the folder it runs in (see scripts/compile.ts); a path elsewhere gets
 * one clear sentence instead of a permission error from deep inside.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { type Config, ConfigError } from "./config.ts";

/** A file the server needs, and how. */
export interface NeededFile {
  /** The path as configured. */
  path: string;
  /** Whether the server writes it too. */
  write: boolean;
  /** What it is, for the message. */
  what: string;
}

/** Every file the server may read or write with this configuration. */
export function neededFiles(config: Config): NeededFile[] {
  const files: NeededFile[] = [
    { path: config.usersPath, write: config.allowSignup, what: "users file" },
  ];
  if (config.secret === undefined) {
    files.push({
      path: join(dirname(config.usersPath), ".chat-secret"),
      write: true,
      what: "token secret",
    });
  }
  // The Web Push keys, made on first start unless the environment gives them (server/push/vapid.ts).
  if (Deno.env.get("CHAT_VAPID_PUBLIC_KEY") === undefined) {
    files.push({
      path: join(dirname(config.usersPath), "vapid.json"),
      write: true,
      what: "push keys",
    });
  }
  if (!config.dataPath && !config.redisUrl) {
    files.push(...replaced(signoutsPath(config), "sign-outs file"));
  }
  if (config.dataPath) {
    files.push({ path: config.dataPath, write: true, what: "data file" });
    for (const suffix of ["-wal", "-shm", "-journal"]) {
      files.push({ path: config.dataPath + suffix, write: true, what: "data file" });
    }
  }
  if (config.certPath) files.push({ path: config.certPath, write: false, what: "certificate" });
  if (config.keyPath) files.push({ path: config.keyPath, write: false, what: "private key" });
  return files;
}

/**
 * A file written the way server/locked_file.ts does: holding the lock file
 * beside it, through a temporary file renamed over it.
 */
function replaced(path: string, what: string): NeededFile[] {
  return [
    { path, write: true, what },
    { path: `${path}.lock`, write: true, what: `${what} lock` },
    { path: `${path}.tmp`, write: true, what: `temporary ${what}` },
  ];
}

/**
 * Where the in-memory store keeps sign-outs: beside `.chat-secret`, which
 * keeps tokens valid across restarts (their revocations must outlive it too).
 */
export function signoutsPath(config: Pick<Config, "usersPath">): string {
  return join(dirname(config.usersPath), ".chat-signouts");
}

function granted(name: "read" | "write", path: string): boolean {
  return Deno.permissions.querySync({ name, path }).state === "granted";
}

/** How to get access to a file this process may not touch. */
export function accessHint(): string {
  return Deno.build.standalone
    ? "this chat binary may only use users.json, .chat-secret, vapid.json, chat.db and .env in the folder it runs in: start it there, or see docs/deployment.md"
    : "grant it with --allow-read and --allow-write (deno task start does)";
}

/**
 * Throws when the process may not read (or write) a file it will need.
 *
 * @throws {ConfigError} naming the first such file and how to fix it.
 */
export function checkFileAccess(config: Config): void {
  const files = neededFiles(config);
  if (config.allowSignup) files.push(...replaced(config.usersPath, "users file").slice(1));
  for (const f of files) {
    const read = granted("read", f.path);
    if (read && (!f.write || granted("write", f.path))) continue;
    const verb = read ? "write" : f.write ? "read and write" : "read";
    throw new ConfigError(`Cannot ${verb} the ${f.what} "${f.path}": ${accessHint()}`);
  }
}
