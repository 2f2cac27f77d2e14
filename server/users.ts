/**
 * users.json: `{"name": "<argon2id PHC string>" | "<plaintext>", ...}`.
 * Plaintext values are the seed-era format: accepted, with a warning.
 * Writes are atomic (a temporary file renamed over the old one) and keep
 * every other entry.
 *
 * @module
 */
import { NAME_PATTERN } from "./protocol.ts";
import { isHashed } from "./password.ts";

/** Username → stored credential (PHC hash or plaintext). */
export type Users = Map<string, string>;

/** What parsing a users file found besides the users. */
export interface ParsedUsers {
  users: Users;
  /** Problems that did not stop the file from loading, one sentence each. */
  warnings: string[];
}

/**
 * Parses the text of a users file.
 *
 * @throws {SyntaxError} when the text is not a JSON object.
 */
export function parseUsers(text: string, path = "users.json"): ParsedUsers {
  const users: Users = new Map();
  const warnings: string[] = [];
  if (text.trim() === "") return { users, warnings };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SyntaxError(
      `Cannot read "${path}": not valid JSON: ${(err as Error).message}`,
    );
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new SyntaxError(
      `Cannot read "${path}": expected an object like {"alice": "password"}`,
    );
  }
  for (const [name, cred] of Object.entries(value)) {
    if (!NAME_PATTERN.test(name)) {
      warnings.push(
        `Skipping user "${name}" in "${path}": names are 1-32 letters, digits, - or _`,
      );
    } else if (typeof cred !== "string" || cred === "") {
      warnings.push(
        `Skipping user "${name}" in "${path}": the value must be a password or a hash`,
      );
    } else {
      users.set(name, cred);
      if (!isHashed(cred)) {
        warnings.push(
          `User "${name}" has a plaintext password in "${path}": run "chat user passwd ${name}" to store it hashed`,
        );
      }
    }
  }
  return { users, warnings };
}

/** Reads a users file; a missing file is an empty set (open mode). */
export async function readUsers(path: string): Promise<ParsedUsers> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { users: new Map(), warnings: [] };
    }
    throw new Error(`Cannot read "${path}": ${(err as Error).message}`);
  }
  return parseUsers(text, path);
}

/**
 * Runs `fn` holding the users file's write lock: `<path>.tmp`, created
 * exclusively (a fixed name, so a binary allowed only these two paths can
 * use it), which `fn` fills and which then replaces the file. Writers take
 * turns; a lock left by a crash (older than 10 s) is broken.
 */
async function withWriteLock(
  path: string,
  fn: () => Promise<string | null>,
): Promise<void> {
  const tmp = `${path}.tmp`;
  const deadline = Date.now() + 3000;
  while (true) {
    try {
      await Deno.writeTextFile(tmp, "", { mode: 0o600, createNew: true });
      break;
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) {
        throw new Error(`Cannot write "${path}": ${(err as Error).message}`);
      }
      // Another writer holds it, or a crash left it behind.
      const age = Date.now() - ((await Deno.stat(tmp).catch(() => null))?.mtime?.getTime() ?? 0);
      if (age > 10_000) await Deno.remove(tmp).catch(() => {});
      else if (Date.now() > deadline) {
        throw new Error(`Cannot write "${path}": "${tmp}" is in use by another writer`);
      } else await new Promise((r) => setTimeout(r, 25));
    }
  }
  try {
    const text = await fn();
    if (text === null) {
      await Deno.remove(tmp);
      return;
    }
    await Deno.writeTextFile(tmp, text, { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    if (err instanceof SyntaxError) throw err;
    throw new Error(`Cannot write "${path}": ${(err as Error).message}`);
  }
}

function serialize(users: Users, extra: Record<string, unknown>): string {
  const obj: Record<string, unknown> = { ...extra };
  for (const name of [...users.keys()].sort()) obj[name] = users.get(name)!;
  return JSON.stringify(obj, null, 2) + "\n";
}

/** Writes a users file atomically, readable by its owner only. */
export async function writeUsers(
  path: string,
  users: Users,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await withWriteLock(path, () => Promise.resolve(serialize(users, extra)));
}

/**
 * Reads, changes and writes back a users file under its write lock, keeping
 * every entry the change does not touch (even ones the server skips), so two
 * writers (a sign-up and `chat user add`, say) never lose each other's
 * entries. `change` returns false to skip the write. Resolves the users as
 * the server would load them (validated).
 *
 * @throws {SyntaxError} when the file exists but is not a JSON object.
 */
export async function updateUsers(
  path: string,
  change: (users: Users) => boolean | void,
): Promise<Users> {
  let result: Users = new Map();
  await withWriteLock(path, async () => {
    let text = "";
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) {
        throw new Error(`Cannot read "${path}": ${(err as Error).message}`);
      }
    }
    let raw: unknown = {};
    try {
      if (text.trim() !== "") raw = JSON.parse(text);
    } catch (err) {
      throw new SyntaxError(`Cannot update "${path}": not valid JSON: ${(err as Error).message}`);
    }
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      throw new SyntaxError(`Cannot update "${path}": expected a JSON object`);
    }
    const users: Users = new Map();
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) {
      if (typeof v === "string") users.set(k, v);
      else extra[k] = v;
    }
    const write = change(users) !== false;
    const out = serialize(users, extra);
    result = parseUsers(out, path).users;
    return write ? out : null;
  });
  return result;
}
