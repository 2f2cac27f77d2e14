/**
 * `chat user add|remove|passwd|list`: manage users.json from the command line.
 * The running server picks the change up within a second; sessions of a
 * removed user, or one whose password changed, end. Names are
 * case-insensitive: `passwd ALICE` changes the password of the stored
 * `alice`, and `add Alice` is refused while `alice` exists.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError, UsageError } from "./flags.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import { NAME_PATTERN } from "../protocol.ts";
import { MIN_PASSWORD, passwordProblem } from "../server/auth/auth.ts";
import {
  findUser,
  parseUsers,
  readUsers,
  setPassword,
  updateUsers,
  type Users,
} from "../server/auth/users.ts";
import { table } from "./help.ts";
import { askHidden, say } from "./prompt.ts";

/** `chat user --help`. */
export const USER_HELP = `Manage the users who may sign in (users.json).

Usage:
${
  table([
    ["chat user add NAME", "Add a user (asks for the password)"],
    ["chat user passwd NAME", "Change a user's password"],
    ["chat user remove NAME", "Remove a user (the last one only with --force)"],
    ["chat user list", "List the users"],
  ])
}

Options:
${
  table([
    ["--users FILE", "Users file [default ./users.json; env USERS_FILE]"],
    ["--force", "Let remove take the last user too"],
    ["-h, --help", "Show this help"],
  ])
}

The password is asked twice without echo; for scripts it may come from the
CHAT_PASSWORD environment variable or one line on stdin. Passwords need at
least ${MIN_PASSWORD} characters and are stored as argon2id hashes. Names are
case-insensitive: "Alice" and "alice" cannot both exist, and passwd or remove
find a user in any case.

A running server picks up a change within a second; the sessions of a removed
user, or of one whose password changed, end. A server started without
users.json runs in open mode; adding the first user turns login on. Removing
the last user does not turn it off: nobody can sign in until a user is added.

Examples:
  chat user add alice
  CHAT_PASSWORD=s3cret-pass chat user add bot --users /data/users.json
  chat user passwd alice
  chat user list`;

function out(line: string): void {
  // deno-lint-ignore no-console
  console.log(line);
}

async function newPassword(name: string): Promise<string> {
  const fromEnv = Deno.env.get("CHAT_PASSWORD");
  let pw: string | null;
  if (fromEnv !== undefined) pw = fromEnv;
  else {
    pw = await askHidden(`Password for ${name}`);
    if (pw !== null && Deno.stdin.isTerminal()) {
      const again = await askHidden("Repeat it");
      if (again !== pw) throw new UsageError("The passwords do not match: nothing changed");
    }
  }
  if (pw === null) throw new UsageError("No password given: nothing changed");
  const problem = passwordProblem(pw);
  if (problem) throw new UsageError(`${problem}: nothing changed`);
  return pw;
}

/** How many users the server would load from `users` (raw entries). */
function loadable(users: Users): number {
  return parseUsers(JSON.stringify(Object.fromEntries(users))).users.size;
}

/** Runs `chat user …`; resolves the exit code. */
export async function userCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        users: { type: "string" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw flagError(err as Error, ["users", "force", "help"]);
  }
  const [action, name, ...rest] = parsed.positionals;
  if (parsed.values.help || action === "help") {
    out(USER_HELP);
    return 0;
  }
  if (action === undefined) {
    say(`${USER_HELP}\n`);
    return 2;
  }
  const path = parsed.values.users ?? Deno.env.get("USERS_FILE") ?? "./users.json";
  if (rest.length > 0) {
    throw new UsageError(`Unexpected argument "${rest[0]}" (see chat user --help)`);
  }
  if (action === "list") {
    const { users } = await readUsers(path);
    if (users.size === 0) {
      const missing = await Deno.stat(path).then(() => false, () => true);
      say(
        missing
          ? `No users: "${path}" does not exist (a server started without it runs in open mode)\n`
          : `No users in "${path}": nobody can sign in\n`,
      );
    }
    for (const u of [...users.keys()].sort()) out(u);
    return 0;
  }
  if (!["add", "remove", "passwd"].includes(action)) {
    throw new UsageError(
      `Unknown command "user ${action}": use add, passwd, remove or list (see chat user --help)`,
    );
  }
  if (name === undefined) {
    throw new UsageError(`"chat user ${action}" needs a NAME (see chat user --help)`);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(`Invalid username "${name}": use 1-32 letters, digits, - or _`);
  }
  const { users } = await readUsers(path);
  if (action === "add") {
    const taken = findUser(users, name);
    if (taken !== undefined) throw exists(name, taken);
    const hash = await hashed(await newPassword(name));
    // Checked again under the lock: another writer may have been faster.
    let raced: string | undefined;
    await updateUsers(path, (u) => {
      raced = findUser(u, name);
      if (raced !== undefined) return false;
      u.set(name, hash);
    });
    if (raced !== undefined) throw exists(name, raced);
    out(`Added "${name}" to ${path}`);
    return 0;
  }
  // passwd and remove act on the user the server knows, in its stored case.
  const stored = findUser(users, name);
  if (stored === undefined) throw new UsageError(`There is no user "${name}" in "${path}"`);
  let gone = false;
  if (action === "remove") {
    let last = false;
    await updateUsers(path, (u) => {
      if (!u.has(stored)) return (gone = true, false);
      const left = new Map(u);
      left.delete(stored);
      if (loadable(left) === 0 && !parsed.values.force) return (last = true, false);
      u.delete(stored);
    });
    if (gone) throw new UsageError(`There is no user "${stored}" in "${path}"`);
    if (last) {
      throw new Error(
        `"${stored}" is the last user: removing them leaves nobody able to sign in (a running server keeps refusing sign-ins until a user is added; delete "${path}" to run in open mode instead). Use --force to remove anyway`,
      );
    }
    out(`Removed "${stored}" from ${path}`);
    return 0;
  }
  const hash = await hashed(await newPassword(stored));
  const { result } = await setPassword(path, { name: stored, hash });
  if (result === "missing") throw new UsageError(`There is no user "${stored}" in "${path}"`);
  out(`Changed the password of "${stored}" in ${path}`);
  return 0;
}

function exists(name: string, stored: string): UsageError {
  const as = stored === name ? "" : ` as "${stored}" (names are case-insensitive)`;
  return new UsageError(
    `User "${name}" exists already${as}: use "chat user passwd ${stored}" to change the password`,
  );
}

async function hashed(password: string): Promise<string> {
  const hasher = new PasswordHasher();
  try {
    return await hasher.hash(password);
  } finally {
    hasher.close();
  }
}
