import assert from "node:assert/strict";
import {
  ADMIN_COMMANDS,
  ADMIN_HELP,
  type Command,
  COMMANDS_HELP,
  DEFAULT_HISTORY,
  helpText,
  parseCommand,
  parseDuration,
} from "../../client/commands.ts";

Deno.test("parseCommand() reads every command", () => {
  const cases: [string, Command][] = [
    ["hello world", { kind: "say", text: "hello world" }],
    ["  spaced  ", { kind: "say", text: "  spaced  " }],
    ["//not a command", { kind: "say", text: "/not a command" }],
    ["", { kind: "empty" }],
    ["   ", { kind: "empty" }],
    ["/join random", { kind: "join", room: "random" }],
    ["/join #ops", { kind: "join", room: "ops" }],
    ["/JOIN ops", { kind: "join", room: "ops" }],
    ["/leave", { kind: "leave" }],
    ["/leave ops", { kind: "leave", room: "ops" }],
    ["/rooms", { kind: "rooms" }],
    ["/who", { kind: "who" }],
    ["/dm bob", { kind: "dm", user: "bob" }],
    ["/dm bob see you at 5", { kind: "dm", user: "bob", text: "see you at 5" }],
    ["/dm @bob  two  spaces", { kind: "dm", user: "bob", text: "two  spaces" }],
    ["/history", { kind: "history", limit: DEFAULT_HISTORY }],
    ["/history 5", { kind: "history", limit: 5 }],
    ["/search deploy friday", { kind: "search", q: "deploy friday" }],
    ["/passwd", { kind: "passwd" }],
    ["/password", { kind: "passwd" }],
    ["/help", { kind: "help" }],
    ["/quit", { kind: "quit" }],
    ["/quit   ", { kind: "quit" }],
    ["/edit fixed the typo", { kind: "edit", text: "fixed the typo" }],
    ["/edit 41 fixed the typo", { kind: "edit", id: 41, text: "fixed the typo" }],
    ["/edit #41 **bold** now", { kind: "edit", id: 41, text: "**bold** now" }],
    ["/edit 4x2 is not an id", { kind: "edit", text: "4x2 is not an id" }],
    ["/delete", { kind: "delete" }],
    ["/delete 41", { kind: "delete", id: 41 }],
    ["/del #41", { kind: "delete", id: 41 }],
    ["/react 41 👍", { kind: "react", id: 41, emoji: "👍" }],
    ["/react #7 👍🏽", { kind: "react", id: 7, emoji: "👍🏽" }],
    ["/react 7 🏳️‍🌈", { kind: "react", id: 7, emoji: "🏳️‍🌈" }],
    ["/reply 41 yes, done", { kind: "reply", id: 41, text: "yes, done" }],
    ["/reply #41 multi  spaced", { kind: "reply", id: 41, text: "multi  spaced" }],
    ["/ids", { kind: "ids" }],
    ["/frobnicate now", { kind: "unknown", name: "/frobnicate" }],
    ["/", { kind: "unknown", name: "/" }],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCommand(line), want, line);
});

Deno.test("parseCommand() explains a command used the wrong way", () => {
  const cases: [string, string][] = [
    ["/join", "Usage: /join ROOM [private]"],
    ["/join a b", "Usage: /join ROOM [private]"],
    ["/join bad!name", 'Invalid room name "bad!name": use 1-32 letters, digits, - or _'],
    ["/leave a b", "Usage: /leave [ROOM]"],
    ["/rooms all", "Usage: /rooms (it takes no arguments)"],
    ["/who me", "Usage: /who (it takes no arguments)"],
    ["/dm", "Usage: /dm USER [TEXT]"],
    ["/dm b@d hi", 'Invalid username "b@d": use 1-32 letters, digits, - or _'],
    ["/history 0", "Usage: /history [N], where N is a whole number from 1 to 200"],
    ["/history 201", "Usage: /history [N], where N is a whole number from 1 to 200"],
    ["/history lots", "Usage: /history [N], where N is a whole number from 1 to 200"],
    ["/search", "Usage: /search TEXT"],
    [`/search ${"x".repeat(201)}`, "Search text is longer than 200 characters"],
    ["/passwd hunter22", "Usage: /passwd (it asks for the passwords without echo)"],
    ["/edit", "Usage: /edit [ID] TEXT"],
    ["/edit 41", "Usage: /edit [ID] TEXT (the new text of message #41 is missing)"],
    ["/delete 41 42", "Usage: /delete [ID], where ID is a message id (/ids shows them)"],
    ["/delete last", "Usage: /delete [ID], where ID is a message id (/ids shows them)"],
    ["/delete 0", "Usage: /delete [ID], where ID is a message id (/ids shows them)"],
    ["/react 41", "Usage: /react ID EMOJI, e.g. /react 41 👍"],
    ["/react 👍 41", "Usage: /react ID EMOJI, e.g. /react 41 👍"],
    ["/react 41 ok", '"ok" is not one emoji'],
    ["/react 41 👍👍", '"👍👍" is not one emoji'],
    ["/reply 41", "Usage: /reply ID TEXT"],
    ["/reply bob hi", "Usage: /reply ID TEXT"],
    ["/ids on", "Usage: /ids (it takes no arguments)"],
  ];
  for (const [line, message] of cases) {
    assert.deepEqual(parseCommand(line), { kind: "invalid", message }, line);
  }
});

Deno.test("COMMANDS_HELP lists every command", () => {
  for (
    const c of [
      "/join",
      "/leave",
      "/rooms",
      "/who",
      "/dm",
      "/history",
      "/search",
      "/passwd",
      "/edit",
      "/delete",
      "/react",
      "/reply",
      "/ids",
      "/help",
      "/quit",
    ]
  ) {
    assert.ok(COMMANDS_HELP.includes(`  ${c} `), c);
  }
});

Deno.test("COMMANDS_HELP says that reacting again takes a reaction back", () => {
  assert.match(
    COMMANDS_HELP,
    /\/react ID EMOJI +React to message ID with EMOJI; again with the same EMOJI takes it back/,
  );
});

Deno.test("parseCommand() reads /upload PATH [TEXT], with quoted paths", () => {
  const cases: [string, Command][] = [
    ["/upload photo.png", { kind: "upload", path: "photo.png", text: "" }],
    ["/upload ~/a/b.pdf the **report**", {
      kind: "upload",
      path: "~/a/b.pdf",
      text: "the **report**",
    }],
    ['/upload "my photo.png" look', { kind: "upload", path: "my photo.png", text: "look" }],
    ["/upload 'it''s.txt'", { kind: "upload", path: "its.txt", text: "" }],
    ["/upload my\\ photo.png  hi  there", {
      kind: "upload",
      path: "my photo.png",
      text: "hi  there",
    }],
    ["/up C:\\Users\\ann\\x.txt", { kind: "upload", path: "C:\\Users\\ann\\x.txt", text: "" }],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCommand(line), want, line);
  assert.deepEqual(parseCommand("/upload"), {
    kind: "invalid",
    message: "Usage: /upload PATH [TEXT]",
  });
  assert.deepEqual(parseCommand('/upload "open'), {
    kind: "invalid",
    message: "Usage: /upload PATH [TEXT] (a quote in PATH is not closed)",
  });
});

Deno.test("parseCommand() reads /download ID [PATH], taking an id, its start, or a link", () => {
  const id = "mwU0aEG46mBH-Tc5GvrpYA";
  const cases: [string, Command][] = [
    [`/download ${id}`, { kind: "download", id }],
    ["/download mwU0", { kind: "download", id: "mwU0" }],
    [`/download ${id} out/`, { kind: "download", id, path: "out/" }],
    [`/dl ${id} "my file.txt"`, { kind: "download", id, path: "my file.txt" }],
    [
      `/download http://localhost:8000/files/${id}/x%20y.txt?v=alice&s=abc ~/got.txt`,
      { kind: "download", id, path: "~/got.txt" },
    ],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCommand(line), want, line);
  const usage =
    "Usage: /download ID [PATH], where ID is a file's id (shown after it: /download ID)";
  assert.deepEqual(parseCommand("/download"), { kind: "invalid", message: usage });
  assert.deepEqual(parseCommand("/download a.b"), { kind: "invalid", message: usage });
  assert.deepEqual(parseCommand(`/download ${id} my file.txt`), {
    kind: "invalid",
    message: `${usage} ("quote" a PATH with spaces)`,
  });
});

Deno.test("COMMANDS_HELP lists /upload and /download, and says Ctrl+C cancels them", () => {
  assert.match(COMMANDS_HELP, /\n {2}\/upload PATH \[TEXT\] Send the file at PATH here, with TEXT/);
  assert.match(COMMANDS_HELP, /\n {2}\/download ID \[PATH\] Save file ID/);
  assert.match(COMMANDS_HELP, /Ctrl\+C cancels an upload or download under way/);
});

Deno.test("parseCommand() reads /join ROOM private and /invite USER", () => {
  const cases: [string, Command][] = [
    ["/join plans private", { kind: "join", room: "plans", private: true }],
    ["/join #plans PRIVATE", { kind: "join", room: "plans", private: true }],
    ["/join plans --private", { kind: "join", room: "plans", private: true }],
    ["/invite bob", { kind: "invite", user: "bob" }],
    ["/invite @bob", { kind: "invite", user: "bob" }],
    ["/add bob", { kind: "invite", user: "bob" }],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCommand(line), want, line);
  const wrong: [string, string][] = [
    ["/join plans secret", "Usage: /join ROOM [private]"],
    ["/join plans private now", "Usage: /join ROOM [private]"],
    ["/invite", "Usage: /invite USER"],
    ["/invite bob carol", "Usage: /invite USER"],
    ["/invite b@d", 'Invalid username "b@d": use 1-32 letters, digits, - or _'],
  ];
  for (const [line, message] of wrong) {
    assert.deepEqual(parseCommand(line), { kind: "invalid", message }, line);
  }
});

Deno.test("parseCommand() reads the admin commands", () => {
  const cases: [string, Command][] = [
    ["/kick bob", { kind: "kick", user: "bob" }],
    ["/kick @bob", { kind: "kick", user: "bob" }],
    ["/ban bob", { kind: "ban", user: "bob" }],
    ["/ban bob 30m", { kind: "ban", user: "bob", duration: 1800 }],
    ["/ban bob 12h", { kind: "ban", user: "bob", duration: 43_200 }],
    ["/ban bob 7d spam, and  more spam", {
      kind: "ban",
      user: "bob",
      duration: 604_800,
      reason: "spam, and  more spam",
    }],
    ["/ban bob spam links", { kind: "ban", user: "bob", reason: "spam links" }],
    ["/ban bob 2W", { kind: "ban", user: "bob", duration: 1_209_600 }],
    ["/unban bob", { kind: "unban", user: "bob" }],
    ["/readonly on", { kind: "setting", setting: "readOnly", on: true }],
    ["/readonly OFF", { kind: "setting", setting: "readOnly", on: false }],
    ["/archive on", { kind: "setting", setting: "archived", on: true }],
    ["/archive off", { kind: "setting", setting: "archived", on: false }],
    ["/private on", { kind: "setting", setting: "private", on: true }],
    ["/private off", { kind: "setting", setting: "private", on: false }],
    ["/atroom on", { kind: "setting", setting: "restrictRoomMentions", on: true }],
    ["/atroom off", { kind: "setting", setting: "restrictRoomMentions", on: false }],
    ["/atroom", { kind: "invalid", message: "Usage: /atroom on|off" }],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCommand(line), want, line);
  for (const kind of ["kick", "ban", "unban", "setting"] as const) {
    assert.ok(ADMIN_COMMANDS.has(kind), kind);
  }
  for (const kind of ["invite", "join", "delete"] as const) {
    assert.ok(!ADMIN_COMMANDS.has(kind), kind);
  }
});

Deno.test("parseCommand() explains an admin command used the wrong way", () => {
  const ban = "Usage: /ban USER [DURATION] [REASON], e.g. /ban bob 7d spam";
  const cases: [string, string][] = [
    ["/kick", "Usage: /kick USER"],
    ["/kick bob now", "Usage: /kick USER"],
    ["/ban", ban],
    ["/ban b@d 1d", 'Invalid username "b@d": use 1-32 letters, digits, - or _'],
    [
      "/ban bob 5000w",
      "A ban lasts at most 3650d (ten years): leave DURATION out to ban until /unban",
    ],
    [`/ban bob 1d ${"x".repeat(201)}`, "The reason is longer than 200 characters"],
    ["/unban", "Usage: /unban USER"],
    ["/readonly", "Usage: /readonly on|off"],
    ["/readonly maybe", "Usage: /readonly on|off"],
    ["/archive on now", "Usage: /archive on|off"],
    ["/private", "Usage: /private on|off"],
  ];
  for (const [line, message] of cases) {
    assert.deepEqual(parseCommand(line), { kind: "invalid", message }, line);
  }
});

Deno.test("parseDuration() reads 45s, 30m, 12h, 7d and 2w, and nothing else", () => {
  assert.equal(parseDuration("45s"), 45);
  assert.equal(parseDuration("30m"), 1800);
  assert.equal(parseDuration("12h"), 43_200);
  assert.equal(parseDuration("7d"), 604_800);
  assert.equal(parseDuration("2w"), 1_209_600);
  for (const word of ["0m", "7", "d", "1.5h", "7days", "-1d", "spam"]) {
    assert.equal(parseDuration(word), null, word);
  }
});

Deno.test("/help shows the admin commands to admins only", () => {
  assert.equal(helpText(false), COMMANDS_HELP);
  assert.ok(!COMMANDS_HELP.includes("/kick"));
  assert.match(
    COMMANDS_HELP,
    /\n {2}\/join ROOM \[private\] Join a room \(created if new, private/,
  );
  assert.match(COMMANDS_HELP, /\n {2}\/invite USER +Add USER to this room/);
  const admin = helpText(true);
  assert.ok(admin.startsWith(COMMANDS_HELP));
  assert.ok(admin.endsWith(ADMIN_HELP));
  for (const c of ["/kick USER", "/ban USER [DURATION] [REASON]", "/unban USER"]) {
    assert.ok(ADMIN_HELP.includes(`\n  ${c}`), c);
  }
  for (const c of ["/readonly on|off", "/archive on|off", "/private on|off"]) {
    assert.ok(ADMIN_HELP.includes(`\n  ${c} `), c);
  }
});

Deno.test("parseCommand() reads /rename NEW and /rename ROOM NEW", () => {
  const cases: [string, Command][] = [
    ["/rename lounge", { kind: "rename", name: "lounge" }],
    ["/rename #lounge", { kind: "rename", name: "lounge" }],
    ["/RENAME ops  ops-2", { kind: "rename", room: "ops", name: "ops-2" }],
    ["/rename #ops #ops_2 ", { kind: "rename", room: "ops", name: "ops_2" }],
  ];
  for (const [line, want] of cases) assert.deepEqual(parseCommand(line), want, line);
  // The server refuses members; the client asks it, and says its answer.
  assert.ok(!ADMIN_COMMANDS.has("rename"));
});

Deno.test("parseCommand() explains /rename used the wrong way", () => {
  const cases: [string, string][] = [
    ["/rename", "Usage: /rename [ROOM] NEW"],
    ["/rename a b c", "Usage: /rename [ROOM] NEW"],
    ["/rename b@d", 'Invalid room name "b@d": use 1-32 letters, digits, - or _'],
    ["/rename ops n€w", 'Invalid room name "n€w": use 1-32 letters, digits, - or _'],
    [
      `/rename ${"x".repeat(33)}`,
      `Invalid room name "${"x".repeat(33)}": use 1-32 letters, digits, - or _`,
    ],
    ["/rename ops #ops", "#ops has that name already"],
  ];
  for (const [line, message] of cases) {
    assert.deepEqual(parseCommand(line), { kind: "invalid", message }, line);
  }
});

Deno.test("/help lists /rename among the admin commands", () => {
  assert.ok(!COMMANDS_HELP.includes("/rename"));
  assert.match(
    ADMIN_HELP,
    /\n {2}\/rename \[ROOM\] NEW Rename this room \(or ROOM\) to NEW, with all it has$/,
  );
});
