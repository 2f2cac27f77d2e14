/**
 * `chat user add|remove|passwd|role|signout|list`: manage users.json from the
 * command line. The running server picks the change up within a second;
 * sessions of a removed user, or one whose password changed, end. Each change
 * made is then recorded in the server's audit log as the server's shell
 * (`POST /api/audit`, signed as `chat invite` signs); without a server that
 * answers, the change stands and `chat user` says it is not in the log.
 * Names are case-insensitive: `passwd ALICE` changes the password of the
 * stored `alice`, and `add Alice` is refused while `alice` exists.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { flagError, UsageError } from "./flags.ts";
import { PasswordHasher } from "../server/auth/password.ts";
import { NAME_PATTERN } from "../protocol.ts";
import { MIN_PASSWORD, passwordProblem } from "../server/auth/auth.ts";
import {
  endSessions,
  findUser,
  parseUsers,
  readUsers,
  removesLastAdmin,
  setPassword,
  setRole,
  updateUsers,
  type Users,
} from "../server/auth/users.ts";
import { table } from "./help.ts";
import { askHidden, say } from "./prompt.ts";
import {
  NoAnswerError,
  refusal,
  secretOf,
  secretRefused,
  serverUrl,
  shellRequest,
} from "./shell_request.ts";

/** `chat user --help`. */
export const USER_HELP = `Manage the users who may sign in (users.json).

Usage:
${
  table([
    ["chat user add NAME", "Add a user (asks for the password)"],
    ["chat user passwd NAME", "Change a user's password"],
    ["chat user role NAME ROLE", "Make a user an admin, or a member (ROLE)"],
    ["chat user signout NAME", "End all of a user's sessions, on every device"],
    ["chat user remove NAME", "Remove a user (the last one only with --force)"],
    ["chat user list", "List the users and their roles"],
  ])
}

Options:
${
  table([
    ["--users FILE", "Users file [default ./users.json; env USERS_FILE]"],
    ["--admin", "Add the user as an admin"],
    ["--force", "Let remove take the last user too"],
    ["--url URL", "The server, for its audit log [default http://localhost:PORT; env PORT]"],
    ["-h, --help", "Show this help"],
  ])
}

The password is asked twice without echo; for scripts it may come from the
CHAT_PASSWORD environment variable or one line on stdin. Passwords need at
least ${MIN_PASSWORD} characters and are stored as argon2id hashes. Names are
case-insensitive: "Alice" and "alice" cannot both exist, and passwd or remove
find a user in any case.

Admins manage people, invites and rooms in the web app. The first user added
to a file without users is an admin. At least one admin always remains:
demoting or removing the last one is refused (make another admin first).

A running server picks up a change within a second; the sessions of a removed
user, or of one whose password changed, end. A server started without
users.json runs in open mode; adding the first user turns login on. Removing
the last user does not turn it off: nobody can sign in until a user is added.

Each change is recorded in the running server's audit log as made by the
server's shell (signed with its token secret: .chat-secret beside users.json,
or CHAT_SECRET). When no server answers at --url, the change stands and
chat user says that it is not in the audit log.

Examples:
  chat user add alice
  CHAT_PASSWORD=s3cret-pass chat user add bot --users /data/users.json
  chat user passwd alice
  chat user role bob admin
  chat user remove bob --url http://localhost:9000
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
        admin: { type: "boolean" },
        url: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw flagError(err as Error, ["users", "force", "admin", "url", "help"]);
  }
  const [action, name, ...more] = parsed.positionals;
  // `role NAME ROLE` takes one more word than the others.
  const role = action === "role" ? more[0] : undefined;
  const rest = action === "role" ? more.slice(1) : more;
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
  if (parsed.values.admin && action !== "add") {
    throw new UsageError(`--admin goes with "chat user add" (see chat user --help)`);
  }
  // A bad --url is refused before anything changes.
  const url = parsed.values.url;
  if (url !== undefined) serverUrl(url);
  const audit = (action: string, target: string, detail?: string) =>
    recordChange(url, path, { action, target, detail });
  if (action === "list") {
    const { users, admins } = await readUsers(path);
    if (users.size === 0) {
      const missing = await Deno.stat(path).then(() => false, () => true);
      say(
        missing
          ? `No users: "${path}" does not exist (a server started without it runs in open mode)\n`
          : `No users in "${path}": nobody can sign in\n`,
      );
    }
    const names = [...users.keys()].sort();
    const width = Math.max(0, ...names.map((n) => n.length));
    for (const u of names) out(`${u.padEnd(width)}  ${admins.has(u) ? "admin" : "member"}`);
    if (users.size > 0 && admins.size === 0) {
      say(`Nobody is an admin: make one with "chat user role NAME admin"\n`);
    }
    return 0;
  }
  if (!["add", "remove", "passwd", "role", "signout"].includes(action)) {
    throw new UsageError(
      `Unknown command "user ${action}": use add, passwd, role, signout, remove or list (see chat user --help)`,
    );
  }
  if (name === undefined) {
    throw new UsageError(`"chat user ${action}" needs a NAME (see chat user --help)`);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new UsageError(`Invalid username "${name}": use 1-32 letters, digits, - or _`);
  }
  if (action === "role" && role !== "admin" && role !== "member") {
    throw new UsageError(
      role === undefined
        ? `"chat user role ${name}" needs a role: admin or member (see chat user --help)`
        : `Unknown role "${role}": use admin or member`,
    );
  }
  const { users } = await readUsers(path);
  if (action === "add") {
    const taken = findUser(users, name);
    if (taken !== undefined) throw exists(name, taken);
    const hash = await hashed(await newPassword(name));
    // Checked again under the lock: another writer may have been faster.
    let raced: string | undefined;
    let admin = false;
    await updateUsers(path, (u, admins) => {
      raced = findUser(u, name);
      if (raced !== undefined) return false;
      // The first user of a file is its admin: someone must be able to manage the rest.
      admin = parsed.values.admin === true || loadable(u) === 0;
      if (admin) admins.add(name);
      u.set(name, hash);
    });
    if (raced !== undefined) throw exists(name, raced);
    out(`Added "${name}" to ${path}${admin ? " as an admin" : ""}`);
    await audit("user.add", name, admin ? "admin" : "member");
    return 0;
  }
  if (action === "signout") {
    const { stored } = await endSessions(path, name);
    if (stored === undefined) throw new UsageError(`There is no user "${name}" in "${path}"`);
    out(`Signed "${stored}" out everywhere: their sessions end within a second`);
    await audit("signout", stored);
    return 0;
  }
  if (action === "role") {
    const { result, stored } = await setRole(path, name, role as "admin" | "member");
    if (result === "missing") throw new UsageError(`There is no user "${name}" in "${path}"`);
    if (result === "last_admin") {
      throw new UsageError(
        `"${stored}" is the last admin: make another user an admin first ("chat user role NAME admin")`,
      );
    }
    out(
      result === "same"
        ? `"${stored}" is already ${role === "admin" ? "an admin" : "a member"}`
        : `"${stored}" is now ${role === "admin" ? "an admin" : "a member"} in ${path}`,
    );
    if (result === "changed") await audit("role", stored!, role);
    return 0;
  }
  // passwd and remove act on the user the server knows, in its stored case.
  const stored = findUser(users, name);
  if (stored === undefined) throw new UsageError(`There is no user "${name}" in "${path}"`);
  let gone = false;
  if (action === "remove") {
    let last = false;
    let lastAdmin = false;
    await updateUsers(path, (u, admins) => {
      if (!u.has(stored)) return (gone = true, false);
      if (removesLastAdmin(u, admins, stored)) return (lastAdmin = true, false);
      const left = new Map(u);
      left.delete(stored);
      if (loadable(left) === 0 && !parsed.values.force) return (last = true, false);
      u.delete(stored);
    });
    if (gone) throw new UsageError(`There is no user "${stored}" in "${path}"`);
    if (lastAdmin) {
      throw new UsageError(
        `"${stored}" is the last admin: make another user an admin first ("chat user role NAME admin"), then remove them`,
      );
    }
    if (last) {
      throw new Error(
        `"${stored}" is the last user: removing them leaves nobody able to sign in (a running server keeps refusing sign-ins until a user is added; delete "${path}" to run in open mode instead). Use --force to remove anyway`,
      );
    }
    out(`Removed "${stored}" from ${path}`);
    await audit("remove", stored);
    return 0;
  }
  const hash = await hashed(await newPassword(stored));
  const { result } = await setPassword(path, { name: stored, hash });
  if (result === "missing") throw new UsageError(`There is no user "${stored}" in "${path}"`);
  out(`Changed the password of "${stored}" in ${path}`);
  await audit("passwd", stored);
  return 0;
}

/**
 * Records a change made in users.json in the audit log of the server at
 * `url` (--url, else localhost on $PORT). The change is done whatever happens
 * here: a server that does not answer or refuses is told in one line on
 * stderr, and the exit code stays 0.
 */
async function recordChange(
  url: string | undefined,
  usersPath: string,
  entry: { action: string; target: string; detail?: string },
): Promise<void> {
  const miss = (why: string) => say(`Not in the audit log: ${why}\n`);
  let server: string;
  let secret: string;
  try {
    // Read only now: a bad $PORT must not stop a change (it is made already).
    server = serverUrl(url);
  } catch (err) {
    return miss(lowerFirst((err as Error).message));
  }
  try {
    secret = await secretOf(undefined, usersPath, "chat user");
  } catch (err) {
    if (!(err instanceof UsageError)) return miss(lowerFirst((err as Error).message));
    // Every server keeps its secret beside its users.json unless given one.
    return miss(
      `no server's token secret beside "${usersPath}" (no server has run with it; or set CHAT_SECRET)`,
    );
  }
  try {
    const res = await shellRequest(server, secret, {
      method: "POST",
      path: "/api/audit",
      body: entry,
    }, { timeout: 5_000 });
    if (res.status === 201) return;
    if (secretRefused(res)) {
      return miss(
        `the server at ${server} does not accept this shell's secret (run chat user beside the server's users.json, or set CHAT_SECRET to its secret)`,
      );
    }
    return miss(`the server at ${server} refused: ${refusal(res)}`);
  } catch (err) {
    if (!(err instanceof NoAnswerError)) {
      return miss(`it could not be sent to ${server}: ${(err as Error).message}`);
    }
    return miss(`no chat server was reached at ${server} (pass --url if it runs elsewhere)`);
  }
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

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}
