/**
 * users.json: `{"name": "<argon2id PHC string>" | "<plaintext>", ...}` for
 * members, and `{"name": {"password": "<argon2id PHC string>", "role":
 * "admin"}}` for admins; `"sessions": N` in such an object counts how often
 * an admin signed the user out everywhere (their tokens carry it). Plaintext values are the seed-era format: accepted,
 * with a warning; a file of the seed format lists members only. Names are
 * case-insensitive: `Alice` and `alice` are one user, shown as stored.
 *
 * Writers take turns on an OS lock of `users.json.lock` (a file that is never
 * renamed or removed); the holder writes `users.json.tmp`, syncs it to disk
 * and renames it over users.json, so readers see the old file or the new one,
 * never half of one. Every entry a write does not touch is kept.
 *
 * @module
 */
import { replaceLocked } from "../locked_file.ts";
import { NAME_PATTERN } from "../../protocol.ts";
import { isHashed } from "./password.ts";
import type { Role } from "../admin/admin.ts";

/** Username → stored credential (PHC hash or plaintext). */
export type Users = Map<string, string>;

/** The users of a users file, and which of them are admins. */
export interface UsersFile {
  /** Every user the server loads, with their credential. */
  users: Users;
  /** The admins among them, spelled as stored. */
  admins: Set<string>;
  /**
   * How often each user was signed out everywhere (absent: never): part of
   * what their tokens are bound to, so raising it ends every session.
   */
  epochs: Map<string, number>;
}

/** What parsing a users file found besides the users. */
export interface ParsedUsers extends UsersFile {
  /** Problems that did not stop the file from loading, one sentence each. */
  warnings: string[];
}

/**
 * The stored name of the user called `name` in any case, or undefined. An
 * exact match wins (only a hand-edited file can hold two names that differ
 * in case, and {@link parseUsers} loads only the first of them).
 *
 * @example Sign-in and `chat user passwd` find a user however it is typed
 * ```ts
 * import { findUser } from "./users.ts";
 *
 * const users = new Map([["Alice", "hash"]]);
 * findUser(users, "alice"); // "Alice"
 * findUser(users, "bob"); // undefined
 * ```
 */
export function findUser(users: Users, name: string): string | undefined {
  if (users.has(name)) return name;
  const key = name.toLowerCase();
  for (const stored of users.keys()) {
    if (stored.toLowerCase() === key) return stored;
  }
  return undefined;
}

/** An entry of a users file as written: a member's credential, or an object with a role. */
type RawEntry = string | { password?: unknown; role?: unknown };

/** The credential and role of an entry, or why it does not load. */
function entryOf(raw: unknown): { cred: string; role: Role; epoch: number } | string {
  if (typeof raw === "string") {
    return raw === ""
      ? "the value must be a password or a hash"
      : { cred: raw, role: "member", epoch: 0 };
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    return 'the value must be a password, a hash, or {"password": …, "role": "admin"}';
  }
  const { password, role, sessions } = raw as {
    password?: unknown;
    role?: unknown;
    sessions?: unknown;
  };
  if (typeof password !== "string" || password === "") {
    return '"password" must be a password or a hash';
  }
  if (role !== undefined && role !== "admin" && role !== "member") {
    return '"role" must be "admin" or "member"';
  }
  if (
    sessions !== undefined &&
    (typeof sessions !== "number" || !Number.isSafeInteger(sessions) || sessions < 0)
  ) {
    return '"sessions" must be a whole number of 0 or more';
  }
  return { cred: password, role: role === "admin" ? "admin" : "member", epoch: sessions ?? 0 };
}

/** Why an entry of a users file does not load, or undefined when it does. */
function skipReason(users: Users, name: string, raw: unknown): string | undefined {
  if (!NAME_PATTERN.test(name)) return "names are 1-32 letters, digits, - or _";
  const entry = entryOf(raw);
  if (typeof entry === "string") return entry;
  // The first in file order wins.
  const taken = findUser(users, name);
  if (taken !== undefined) {
    return `the name "${taken}" is already taken (names are case-insensitive)`;
  }
  return undefined;
}

/**
 * Parses the text of a users file. Of two names that differ only in case,
 * the first loads and the other is skipped with a warning.
 *
 * @throws {SyntaxError} when the text is not a JSON object.
 */
export function parseUsers(text: string, path = "users.json"): ParsedUsers {
  const users: Users = new Map();
  const admins = new Set<string>();
  const epochs = new Map<string, number>();
  const warnings: string[] = [];
  if (text.trim() === "") return { users, admins, epochs, warnings };
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
  for (const [name, raw] of Object.entries(value)) {
    const problem = skipReason(users, name, raw);
    if (problem !== undefined) {
      warnings.push(`Skipping user "${name}" in "${path}": ${problem}`);
      continue;
    }
    const { cred, role, epoch } = entryOf(raw) as { cred: string; role: Role; epoch: number };
    users.set(name, cred);
    if (role === "admin") admins.add(name);
    if (epoch > 0) epochs.set(name, epoch);
    if (!isHashed(cred)) {
      warnings.push(
        `User "${name}" has a plaintext password in "${path}": run "chat user passwd ${name}" to store it hashed`,
      );
    }
  }
  return { users, admins, epochs, warnings };
}

/** Reads a users file; a missing file is an empty set (open mode). */
export async function readUsers(path: string): Promise<ParsedUsers> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) {
      return { users: new Map(), admins: new Set(), epochs: new Map(), warnings: [] };
    }
    throw new Error(`Cannot read "${path}": ${(err as Error).message}`);
  }
  return parseUsers(text, path);
}

/** How long a writer waits for another one before giving up, in milliseconds. */
const LOCK_WAIT = 5000;

/**
 * Runs `fn` holding the users file's write lock and writes what it returns
 * (unless null) over `path`, atomically and durably ({@link replaceLocked};
 * fixed names beside the file, so a binary allowed only a few paths can use
 * them).
 */
function withWriteLock(
  path: string,
  fn: () => Promise<string | null>,
  wait: number,
): Promise<void> {
  return replaceLocked(path, fn, {
    wait,
    busy: `Cannot write "${path}": "${path}.lock" is in use by another writer`,
  });
}

function serialize(
  users: Users,
  admins: ReadonlySet<string>,
  extra: Record<string, unknown>,
  epochs: ReadonlyMap<string, number> = new Map(),
): string {
  const obj: Record<string, unknown> = { ...extra };
  // Case-insensitive, and stable: if a hand-edited file holds two names that
  // differ only in case, the one loaded (the first) stays first.
  const names = [...users.keys()].sort((a, b) => {
    const x = a.toLowerCase(), y = b.toLowerCase();
    return x < y ? -1 : x > y ? 1 : 0;
  });
  for (const name of names) {
    const cred = users.get(name)!;
    // Members stay in the seed format, so a file without admins reads as before.
    const epoch = epochs.get(name) ?? 0;
    if (!admins.has(name) && epoch === 0) obj[name] = cred;
    else {
      obj[name] = {
        password: cred,
        ...(admins.has(name) ? { role: "admin" } : {}),
        ...(epoch > 0 ? { sessions: epoch } : {}),
      };
    }
  }
  return JSON.stringify(obj, null, 2) + "\n";
}

/** Writes a users file atomically and durably, readable by its owner only. */
export async function writeUsers(
  path: string,
  users: Users,
  extra: Record<string, unknown> = {},
  admins: ReadonlySet<string> = new Set(),
): Promise<void> {
  await withWriteLock(path, () => Promise.resolve(serialize(users, admins, extra)), LOCK_WAIT);
}

/** Options for {@link updateUsers}. */
export interface UpdateUsersOptions {
  /** How long to wait for another writer's lock, in milliseconds. @default {5000} */
  lockTimeout?: number;
}

/**
 * Reads, changes and writes back a users file under its write lock, keeping
 * every entry the change does not touch (even ones the server skips), so two
 * writers (a sign-up and `chat user add`, say) never lose each other's
 * entries. `change` gets every entry's credential (look names up with
 * {@link findUser}) and the set of admins, changes them in place, and
 * returns false to skip the write. A name removed from `users` stops being
 * an admin. Resolves the users as the server would load them (validated).
 *
 * @example Add a user unless the name is taken in any case
 * ```ts ignore
 * import { findUser, updateUsers } from "./users.ts";
 *
 * let taken: string | undefined;
 * await updateUsers("users.json", (users) => {
 *   taken = findUser(users, "Alice");
 *   if (taken !== undefined) return false;
 *   users.set("Alice", "<argon2id hash>");
 * });
 * ```
 *
 * @throws {SyntaxError} when the file exists but is not a JSON object.
 * @throws {Error} when another writer holds the lock for longer than
 * `lockTimeout`, or when `change` adds a name that differs only in case from
 * one already there.
 */
export async function updateUsers(
  path: string,
  change: (users: Users, admins: Set<string>, epochs: Map<string, number>) => boolean | void,
  options: UpdateUsersOptions = {},
): Promise<UsersFile> {
  let result: UsersFile = { users: new Map(), admins: new Set(), epochs: new Map() };
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
    const admins = new Set<string>();
    const epochs = new Map<string, number>();
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(raw)) {
      const entry = entryOf(v as RawEntry);
      if (typeof entry === "string") {
        // Kept as written (the server skips it with a warning).
        extra[k] = v;
        continue;
      }
      users.set(k, entry.cred);
      if (entry.role === "admin") admins.add(k);
      if (entry.epoch > 0) epochs.set(k, entry.epoch);
    }
    const before = new Set(users.keys());
    const write = change(users, admins, epochs) !== false;
    if (write) {
      for (const name of users.keys()) {
        if (before.has(name)) continue;
        const other = [...users.keys()].find((k) =>
          k !== name && k.toLowerCase() === name.toLowerCase()
        );
        if (other !== undefined) {
          throw new Error(
            `the name "${name}" is already taken by "${other}" (names are case-insensitive)`,
          );
        }
      }
    }
    for (const name of admins) if (!users.has(name)) admins.delete(name);
    for (const name of epochs.keys()) if (!users.has(name)) epochs.delete(name);
    const out = serialize(users, admins, extra, epochs);
    const parsed = parseUsers(out, path);
    result = { users: parsed.users, admins: parsed.admins, epochs: parsed.epochs };
    return write ? out : null;
  }, options.lockTimeout ?? LOCK_WAIT);
  return result;
}

/** What {@link setPassword} did. */
export type PasswordChange =
  /** The new credential is written. */
  | "changed"
  /** The file no longer lists the user: nothing was written. */
  | "missing"
  /** The user's credential is no longer the one expected: nothing was written. */
  | "stale";

/** The change {@link setPassword} makes. */
export interface PasswordUpdate {
  /** The user, spelled as stored (see {@link findUser}). */
  name: string;
  /** The new credential (an argon2id PHC string). */
  hash: string;
  /**
   * The credential the change was decided on (the one the current password
   * was checked against). When the file holds another one by now, someone
   * changed the password meanwhile and theirs stays.
   */
  expect?: string;
}

/**
 * Replaces the credential of one user under the write lock, keeping every
 * other entry: what `chat user passwd` and a password change over the
 * WebSocket both do. Resolves what happened and the users as the server
 * would load them afterwards.
 *
 * @example Change alice's password
 * ```ts ignore
 * import { setPassword } from "./users.ts";
 *
 * const { result } = await setPassword("users.json", { name: "alice", hash: "<argon2id hash>" });
 * if (result === "missing") throw new Error('There is no user "alice"');
 * ```
 *
 * @throws {SyntaxError} when the file is not a JSON object.
 * @throws {Error} when another writer holds the lock for longer than `lockTimeout`.
 */
export async function setPassword(
  path: string,
  update: PasswordUpdate,
  options: UpdateUsersOptions = {},
): Promise<{ result: PasswordChange } & UsersFile> {
  const { name, hash, expect } = update;
  let result: PasswordChange = "changed";
  const file = await updateUsers(path, (u) => {
    const now = u.get(name);
    if (now === undefined) return (result = "missing", false);
    if (expect !== undefined && now !== expect) return (result = "stale", false);
    u.set(name, hash);
  }, options);
  return { result, ...file };
}

/** What {@link setRole} did. */
export type RoleChange = "changed" | "same" | "missing" | "last_admin";

/**
 * Gives `name` (any case) a role under the write lock: what `chat user role`
 * and an admin in the web app both do. Demoting the last admin is refused
 * (`"last_admin"`): at least one admin always remains once there is one.
 */
export async function setRole(
  path: string,
  name: string,
  role: Role,
  options: UpdateUsersOptions = {},
): Promise<{ result: RoleChange; stored?: string } & UsersFile> {
  let result: RoleChange = "changed";
  let stored: string | undefined;
  const file = await updateUsers(path, (users, admins) => {
    stored = findUser(users, name);
    if (stored === undefined) return (result = "missing", false);
    if (admins.has(stored) === (role === "admin")) return (result = "same", false);
    if (role === "admin") admins.add(stored);
    else {
      if (admins.size === 1) return (result = "last_admin", false);
      admins.delete(stored);
    }
  }, options);
  return { result, stored, ...file };
}

/**
 * Signs `name` (any case) out everywhere: raises their `sessions` count under
 * the write lock, which every token of theirs is bound to. Resolves the name
 * as stored, or undefined when there is no such user.
 */
export async function endSessions(
  path: string,
  name: string,
  options: UpdateUsersOptions = {},
): Promise<{ stored?: string } & UsersFile> {
  let stored: string | undefined;
  const file = await updateUsers(path, (users, _admins, epochs) => {
    stored = findUser(users, name);
    if (stored === undefined) return false;
    epochs.set(stored, (epochs.get(stored) ?? 0) + 1);
  }, options);
  return { stored, ...file };
}

/**
 * Whether removing `name` would take the last admin away: it is an admin,
 * the only one, and other users would remain (removing the very last user
 * is `chat user remove --force`'s own question).
 */
export function removesLastAdmin(users: Users, admins: ReadonlySet<string>, name: string): boolean {
  return admins.has(name) && admins.size === 1 && users.size > 1;
}
