/**
 * `chat user add|remove|passwd|list`: manage users.json from the command line.
 * The running server picks the change up within a second; sessions of a
 * removed user, or one whose password changed, end.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ConfigError, flagError } from "../server/config.ts";
import { PasswordHasher } from "../server/password.ts";
import { NAME_PATTERN } from "../server/protocol.ts";
import { MIN_PASSWORD, passwordProblem } from "../server/auth.ts";
import { readUsers, updateUsers } from "../server/users.ts";
import { table } from "./help.ts";
import { askHidden, say } from "./prompt.ts";

/** `chat user --help`. */
export const USER_HELP = `Manage the users who may sign in (users.json).

Usage:
${
  table([
    ["chat user add NAME", "Add a user (asks for the password)"],
    ["chat user passwd NAME", "Change a user's password"],
    ["chat user remove NAME", "Remove a user"],
    ["chat user list", "List the users"],
  ])
}

Options:
${
  table([
    ["--users FILE", "Users file [default ./users.json; env USERS_FILE]"],
    ["-h, --help", "Show this help"],
  ])
}

The password is asked twice without echo; for scripts it may come from the
CHAT_PASSWORD environment variable or one line on stdin. Passwords need at
least ${MIN_PASSWORD} characters and are stored as argon2id hashes. A running server picks
up a change within a second; the sessions of a removed user, or of one whose
password changed, end. With no users the server runs in open mode: adding the
first user turns login on.

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
      if (again !== pw) throw new ConfigError("The passwords do not match: nothing changed");
    }
  }
  if (pw === null) throw new ConfigError("No password given: nothing changed");
  const problem = passwordProblem(pw);
  if (problem) throw new ConfigError(`${problem}: nothing changed`);
  return pw;
}

/** Runs `chat user …`; resolves the exit code. */
export async function userCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { users: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw flagError(err as Error, ["users", "help"]);
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
    throw new ConfigError(`Unexpected argument "${rest[0]}" (see chat user --help)`);
  }
  if (action === "list") {
    const { users } = await readUsers(path);
    if (users.size === 0) say(`No users in "${path}": the server runs in open mode\n`);
    for (const u of [...users.keys()].sort()) out(u);
    return 0;
  }
  if (!["add", "remove", "passwd"].includes(action)) {
    throw new ConfigError(
      `Unknown command "user ${action}": use add, passwd, remove or list (see chat user --help)`,
    );
  }
  if (name === undefined) {
    throw new ConfigError(`"chat user ${action}" needs a NAME (see chat user --help)`);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new ConfigError(`Invalid username "${name}": use 1-32 letters, digits, - or _`);
  }
  const { users } = await readUsers(path);
  if (action === "add" && users.has(name)) {
    throw new ConfigError(
      `User "${name}" exists already: use "chat user passwd ${name}" to change the password`,
    );
  }
  if (action !== "add" && !users.has(name)) {
    throw new ConfigError(`There is no user "${name}" in "${path}"`);
  }
  if (action === "remove") {
    await updateUsers(path, (u) => void u.delete(name));
    out(`Removed "${name}" from ${path}`);
    return 0;
  }
  const password = await newPassword(name);
  const hasher = new PasswordHasher();
  try {
    const hash = await hasher.hash(password);
    await updateUsers(path, (u) => void u.set(name, hash));
  } finally {
    hasher.close();
  }
  out(
    action === "add"
      ? `Added "${name}" to ${path}`
      : `Changed the password of "${name}" in ${path}`,
  );
  return 0;
}
