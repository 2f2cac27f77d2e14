import assert from "node:assert/strict";
import {
  type Command,
  COMMANDS_HELP,
  DEFAULT_HISTORY,
  parseCommand,
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
    ["/join", "Usage: /join ROOM"],
    ["/join a b", "Usage: /join ROOM"],
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
