/**
 * The `chat` command line as a user meets it: help texts, version, and
 * unknown commands or flags answered with a hint.
 */
import assert from "node:assert/strict";
import { OPTIONS } from "../server/config.ts";
import { VERSION } from "../version.ts";
import { table, wrap } from "../cli/help.ts";
import { isHashed } from "../server/auth/password.ts";
import { SERVE } from "./chat_process.ts";
import { runClient } from "./client_helpers.ts";

/** `deno task start`'s permissions, for the server's own commands. */

function assertWellKept(help: string, usage: string): void {
  assert.ok(help.includes(`Usage:\n  ${usage}`), `usage line "${usage}"`);
  assert.ok(help.includes("\nExamples:\n"), "examples");
  for (const line of help.split("\n")) {
    assert.ok(line.length <= 80, `line longer than 80 columns: "${line}"`);
    assert.ok(!/\s$/.test(line), `trailing space: "${line}"`);
  }
}

Deno.test("chat --help lists every server option with its default and environment variable", async () => {
  const r = await runClient(["--help"], { permissions: SERVE });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  assert.ok(r.stdout.startsWith(`chat ${VERSION}: a private group chat`));
  assertWellKept(r.stdout, "chat [serve] [options]");
  for (const o of OPTIONS) {
    // A flag too wide for its column has its help on the next line.
    const flag = `  --${o.flag}${o.arg ? ` ${o.arg}` : ""}`;
    assert.ok(r.stdout.includes(`${flag}  `) || r.stdout.includes(`${flag}\n`), `--${o.flag}`);
    if (o.default !== undefined && o.default !== "" && o.default !== false) {
      assert.ok(
        r.stdout.replace(/\s+/g, " ").includes(`[default ${o.default}`),
        `default of --${o.flag}`,
      );
    }
    for (const e of o.env ?? []) assert.ok(r.stdout.includes(e), `env ${e}`);
  }
  for (
    const cmd of ["chat client [URL] [options]", "chat user add|passwd|role|signout|remove|list"]
  ) {
    assert.ok(r.stdout.includes(cmd), cmd);
  }
  const again = await runClient(["help"], { permissions: SERVE });
  assert.equal(again.stdout, r.stdout, "chat help is chat --help");
});

Deno.test("chat client --help explains the URL forms, options, piped mode and exit codes", async () => {
  const r = await runClient(["client", "--help"]);
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  assertWellKept(r.stdout, "chat client [URL] [options]");
  const flat = r.stdout.replace(/\s+/g, " ");
  for (
    const text of [
      "[default ws://localhost:8000/ws]",
      "-u, --user NAME",
      "-r, --room ROOM",
      "[default general]",
      "CHAT_PASSWORD",
      "NO_COLOR",
      "/join (/join ROOM private creates a private room), /invite, /leave, /rooms, /who, /dm, /history, /search, /passwd and /quit",
      "admins also /kick, /ban, /unban, /readonly, /archive, /private and /atroom",
      "Tab completes @names, commands and rooms",
      "When stdin is not a terminal",
      "Exit status: 0",
      'echo "deploy done" | chat client -u bot -r ops',
    ]
  ) assert.ok(flat.includes(text), text);
  const viaHelp = await runClient(["help", "client"]);
  assert.equal(viaHelp.stdout, r.stdout);
  const short = await runClient(["client", "-h"]);
  assert.equal(short.stdout, r.stdout);
});

Deno.test("chat user --help shows its commands on stdout; no command is a usage error", async () => {
  const r = await runClient(["user", "--help"], { permissions: SERVE });
  assert.equal(r.code, 0);
  assert.equal(r.stderr, "");
  assertWellKept(r.stdout, "chat user add NAME");
  for (const text of ["chat user passwd NAME", "chat user remove NAME", "chat user list"]) {
    assert.ok(r.stdout.includes(text), text);
  }
  assert.ok(r.stdout.includes("--users FILE"));
  assert.ok(r.stdout.includes("[default ./users.json; env USERS_FILE]"));
  const flat = r.stdout.replace(/\s+/g, " ");
  for (
    const text of [
      "--force",
      "the last one only with --force",
      'Names are case-insensitive: "Alice" and "alice" cannot both exist',
      "A server started without users.json runs in open mode; adding the first user turns login on.",
      "Removing the last user does not turn it off: nobody can sign in until a user is added.",
    ]
  ) assert.ok(flat.includes(text), text);
  assert.ok(!flat.includes("With no users the server runs in open mode"), "the old promise");
  const late = await runClient(["user", "add", "--help"], { permissions: SERVE });
  assert.equal(late.code, 0);
  assert.equal(late.stdout, r.stdout, "--help after the action also goes to stdout");
  const none = await runClient(["user"], { permissions: SERVE });
  assert.equal(none.code, 2);
  assert.equal(none.stdout, "");
  assert.ok(none.stderr.startsWith("Manage the users who may sign in"));
});

/** Runs `chat user ARGS… --users <dir>/users.json` in a folder holding `users`. */
async function withUsers(
  users: Record<string, string>,
  fn: (
    user: (args: string[], env?: Record<string, string>) => ReturnType<typeof runClient>,
    path: string,
  ) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/users.json`;
  try {
    await Deno.writeTextFile(path, JSON.stringify(users));
    await fn(
      (args, env) => runClient(["user", ...args, "--users", path], { permissions: SERVE, env }),
      path,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function storedNames(path: string): Promise<string[]> {
  return Object.keys(JSON.parse(await Deno.readTextFile(path)));
}

Deno.test("chat user add refuses a name taken in another case and names the stored user", async () => {
  await withUsers({ alice: "alice-pass" }, async (user, path) => {
    const r = await user(["add", "Alice"], { CHAT_PASSWORD: "other-pass" });
    assert.equal(
      r.stderr,
      'error: User "Alice" exists already as "alice" (names are case-insensitive): ' +
        'use "chat user passwd alice" to change the password\n',
    );
    assert.equal(r.code, 2);
    assert.deepEqual(await storedNames(path), ["alice"]);
    const same = await user(["add", "alice"], { CHAT_PASSWORD: "other-pass" });
    assert.equal(
      same.stderr,
      'error: User "alice" exists already: use "chat user passwd alice" to change the password\n',
    );
  });
});

Deno.test("chat user passwd and remove find the user in any case and keep its stored name", async () => {
  await withUsers({ Alice: "alice-pass", bob: "bob-pass1" }, async (user, path) => {
    const pw = await user(["passwd", "ALICE"], { CHAT_PASSWORD: "alice-new-pass" });
    assert.equal(pw.code, 0, pw.stderr);
    assert.equal(pw.stdout, `Changed the password of "Alice" in ${path}\n`);
    const raw = JSON.parse(await Deno.readTextFile(path));
    assert.deepEqual(Object.keys(raw), ["Alice", "bob"]);
    assert.ok(isHashed(raw.Alice));
    const rm = await user(["remove", "BOB"]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.equal(rm.stdout, `Removed "bob" from ${path}\n`);
    assert.deepEqual(await storedNames(path), ["Alice"]);
    const missing = await user(["remove", "carol"]);
    assert.equal(missing.stderr, `error: There is no user "carol" in "${path}"\n`);
    assert.equal(missing.code, 2);
  });
});

Deno.test("chat user remove refuses the last user unless --force", async () => {
  await withUsers({ alice: "alice-pass", "bad name": "x" }, async (user, path) => {
    const r = await user(["remove", "ALICE"]);
    assert.equal(
      r.stderr,
      'error: "alice" is the last user: removing them leaves nobody able to sign in ' +
        "(a running server keeps refusing sign-ins until a user is added; " +
        `delete "${path}" to run in open mode instead). Use --force to remove anyway\n`,
    );
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "");
    assert.deepEqual(await storedNames(path), ["alice", "bad name"], "nothing changed");
    const forced = await user(["remove", "alice", "--force"]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.equal(forced.stdout, `Removed "alice" from ${path}\n`);
    assert.deepEqual(await storedNames(path), ["bad name"], "entries that never loaded stay");
    const list = await user(["list"]);
    assert.equal(list.code, 0);
    assert.equal(list.stdout, "");
    assert.equal(list.stderr, `No users in "${path}": nobody can sign in\n`);
  });
});

Deno.test("chat answers unknown commands and flags with a hint and exit code 2", async () => {
  const cases: [string[], string[], string][] = [
    [
      ["clinet"],
      SERVE,
      'error: Unknown command "clinet": did you mean "client"? (see chat --help)',
    ],
    [
      ["frob"],
      SERVE,
      'error: Unknown command "frob": use serve, client, user, invite, export, health, docs, help (see chat --help)',
    ],
    [
      ["--prot", "9000"],
      SERVE,
      'error: Unknown flag "--prot": did you mean "--port"? (see chat --help)',
    ],
    [
      ["serve", "--hsot", "x"],
      SERVE,
      'error: Unknown flag "--hsot": did you mean "--host"? (see chat --help)',
    ],
    [["--port"], SERVE, 'error: Flag "--port" needs a value (see chat --help)'],
    [
      ["--port", "-5"],
      SERVE,
      'error: Flag "--port" needs a value; for one that starts with a dash, write --port=VALUE (see chat --help)',
    ],
    [["client", "-x"], [], 'error: Unknown flag "-x" (see chat client --help)'],
    [
      ["client", "--usr", "bob"],
      [],
      'error: Unknown flag "--usr": did you mean "--user"? (see chat client --help)',
    ],
    [["client", "--room"], [], 'error: Flag "--room" needs a value (see chat client --help)'],
    [
      ["client", "a:1", "b:2"],
      [],
      'error: Unexpected argument "b:2": give one server URL (see chat client --help)',
    ],
    [
      ["client", "--room", "no spaces", "-u", "bob"],
      [],
      'error: Invalid room name "no spaces": use 1-32 letters, digits, - or _',
    ],
    [
      ["user", "list", "--user", "x"],
      SERVE,
      'error: Unknown flag "--user": did you mean "--users"? (see chat user --help)',
    ],
    [
      ["user", "rename", "x"],
      SERVE,
      'error: Unknown command "user rename": use add, passwd, role, signout, remove or list (see chat user --help)',
    ],
    [
      ["help", "nope"],
      SERVE,
      'error: Unknown command "nope": use serve, client, user, invite, export, health, docs, help (see chat --help)',
    ],
  ];
  for (const [args, permissions, want] of cases) {
    const r = await runClient(args, { permissions: permissions.length ? permissions : undefined });
    assert.equal(r.stderr, `${want}\n`, args.join(" "));
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stdout, "", args.join(" "));
  }
});

Deno.test("chat --version prints the version", async () => {
  const r = await runClient(["--version"], { permissions: SERVE });
  assert.equal(r.code, 0);
  assert.match(
    r.stdout,
    new RegExp(`^chat ${VERSION.replaceAll(".", "\\.")} \\(deno \\d+\\.\\d+\\.\\d+\\)\n$`),
  );
});

Deno.test("table() wraps descriptions under their own column", () => {
  assert.deepEqual(wrap("a bb ccc dddd", 6), ["a bb", "ccc", "dddd"]);
  const text = table([
    ["--x N", "word ".repeat(30).trim()],
    ["--a-very-long-flag-name VALUE", "Short"],
  ]);
  const lines = text.split("\n");
  assert.ok(lines[0].startsWith("  --x N" + " ".repeat(20) + "word"));
  assert.ok(lines.every((l) => l.length <= 80));
  assert.ok(lines[1].startsWith(" ".repeat(27) + "word"), "continuation lines align");
  assert.equal(lines.at(-2), "  --a-very-long-flag-name VALUE");
  assert.equal(lines.at(-1), " ".repeat(27) + "Short", "a long flag puts its help below");
});
