import assert from "node:assert/strict";
import type { ChatMessage } from "../../protocol.ts";
import {
  closeSentence,
  describeConnectError,
  fileLink,
  formatBanned,
  formatChange,
  formatFile,
  formatInvited,
  formatMessage,
  formatQuote,
  formatRemoved,
  formatRenamed,
  formatRenameRefusal,
  formatRole,
  formatRoomSettings,
  formatSize,
  formatSystem,
  formatTime,
  formatUpdate,
  kindWords,
  nameList,
  paint,
  reactionSummary,
  sameKind,
  shorten,
} from "../../client/format.ts";

const local = (y: number, mo: number, d: number, h: number, mi: number) =>
  new Date(y, mo - 1, d, h, mi).toISOString();

Deno.test("formatTime() shows local HH:MM today and the date on other days", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  assert.equal(formatTime(local(2026, 5, 17, 9, 5), now), "09:05");
  assert.equal(formatTime(local(2026, 5, 16, 23, 59), now), "2026-05-16 23:59");
  assert.equal(formatTime("not a time", now), "--:--");
});

Deno.test("formatMessage() labels other rooms and direct messages", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 3);
  const here = { room: "general" } as const;
  const opts = { me: "alice", here, now };
  assert.equal(
    formatMessage({ id: 1, seq: 1, room: "general", from: "bob", text: "hi", ts }, opts),
    "14:03 bob: hi",
  );
  assert.equal(
    formatMessage({ id: 2, seq: 2, room: "ops", from: "bob", text: "deploy", ts }, opts),
    "14:03 #ops bob: deploy",
  );
  assert.equal(
    formatMessage({ id: 3, seq: 3, to: "alice", from: "bob", text: "psst", ts }, opts),
    "14:03 bob → you: psst",
  );
  assert.equal(
    formatMessage({ id: 4, seq: 4, to: "bob", from: "alice", text: "yes?", ts }, opts),
    "14:03 alice → bob: yes?",
  );
  const colored = formatMessage({ id: 1, seq: 1, room: "general", from: "bob", text: "hi", ts }, {
    ...opts,
    color: true,
  });
  assert.notEqual(colored, "14:03 bob: hi");
  assert.ok(colored.includes("\x1b["), "colors on request");
});

Deno.test("formatMessage() drops control characters from message text", () => {
  const ts = new Date(2026, 4, 17, 14, 3).toISOString();
  const now = new Date(2026, 4, 17, 15, 0);
  const msg = { id: 1, seq: 1, room: "general", from: "bob", text: "a\x1b[2Jb\x07 tab\tstays", ts };
  for (const color of [false, true]) {
    const line = formatMessage(msg, { me: "alice", here: { room: "general" }, now, color });
    assert.ok(line.includes("a[2Jb tab\tstays"), JSON.stringify(line));
    assert.ok(!line.includes("\x1b[2J") && !line.includes("\x07"), JSON.stringify(line));
  }
});

Deno.test("formatSystem() says who joined or left, and shutdowns", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 3);
  assert.equal(
    formatSystem({ type: "system", room: "ops", event: "join", user: "bob", ts }, false, now),
    "14:03 * bob joined #ops",
  );
  assert.equal(
    formatSystem({ type: "system", room: "ops", event: "leave", user: "bob", ts }, false, now),
    "14:03 * bob left #ops",
  );
  assert.equal(
    formatSystem({ type: "system", event: "shutdown", ts }, false, now),
    "14:03 * The server is shutting down",
  );
});

Deno.test("nameList() and paint() read naturally", () => {
  assert.equal(nameList([]), "nobody");
  assert.equal(nameList(["a"]), "a");
  assert.equal(nameList(["a", "b", "c"]), "a, b and c");
  assert.equal(paint("bold", "x", false), "x");
  assert.equal(paint("bold", "x", true), "\x1b[1mx\x1b[22m");
});

Deno.test("describeConnectError() gives one plain sentence per failure", () => {
  const url = "ws://127.0.0.1:9/ws";
  const cases: [string, string][] = [
    [
      "NetworkError: failed to connect to WebSocket: tcp connect error",
      "Cannot connect to 127.0.0.1:9: connection refused (is the chat server running there?)",
    ],
    [
      "fetch failed Error: error sending request: client error (Connect): tcp connect error: Connection refused (os error 111)",
      "Cannot connect to 127.0.0.1:9: connection refused (is the chat server running there?)",
    ],
    [
      "NetworkError: failed to connect to WebSocket: dns error",
      'Cannot connect to ws://127.0.0.1:9/ws: the host "127.0.0.1" was not found (check the URL)',
    ],
    [
      "NetworkError: failed to connect to WebSocket: Invalid status code: 404",
      "Cannot connect to ws://127.0.0.1:9/ws: the server answered 404 Not Found (the chat's WebSocket path is /ws)",
    ],
    [
      "NetworkError: failed to connect to WebSocket: Invalid status code: 502",
      "Cannot connect to ws://127.0.0.1:9/ws: the server answered HTTP 502 instead of opening a WebSocket",
    ],
    [
      "NetworkError: failed to connect to WebSocket: invalid HTTP version parsed",
      "Cannot connect to 127.0.0.1:9: the server expects TLS there (try wss:// or https://)",
    ],
    ["timed out", "Cannot connect to 127.0.0.1:9: the connection timed out"],
    ["", "Cannot connect to 127.0.0.1:9: the connection failed"],
  ];
  for (const [detail, want] of cases) assert.equal(describeConnectError(url, detail), want);
  const tls = describeConnectError(
    "wss://example.com/ws",
    "NetworkError: failed to connect to WebSocket: invalid peer certificate: UnknownIssuer",
  );
  assert.match(tls, /^Cannot connect to example\.com:443: TLS failed: /);
  assert.match(tls, /not signed by an authority this machine trusts/);
  assert.match(tls, /DENO_CERT/);
  assert.ok(!tls.includes("\n"));
  // `openssl req -x509` makes a CA certificate, which Deno will not take as a server's own.
  assert.equal(
    describeConnectError(
      "wss://127.0.0.1:8443/ws",
      "NetworkError: failed to connect to WebSocket: invalid peer certificate: Other(OtherError(CaUsedAsEndEntity))",
    ),
    "Cannot connect to 127.0.0.1:8443: TLS failed: the server presents a CA certificate as its own (give the server a certificate signed by a CA of your own, and run the client with DENO_CERT=ca.pem)",
  );
});

Deno.test("closeSentence() explains the server's close codes", () => {
  assert.equal(closeSentence(1001, "server shutting down"), "The server is restarting");
  assert.equal(closeSentence(4008, "slow consumer"), "The connection fell behind");
  assert.equal(closeSentence(1006, ""), "The connection was lost");
});

Deno.test("formatMessage() shows the current state: (edited), tombstones, reactions, ids", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 3);
  const here = { room: "general" } as const;
  const opts = { me: "alice", here, now };
  const msg: ChatMessage = { id: 41, seq: 45, room: "general", from: "bob", text: "fixed", ts };
  assert.equal(
    formatMessage(
      { ...msg, edited: ts, reactions: { "👍": ["alice", "carol"], "❤️": ["dan"] } },
      opts,
    ),
    "14:03 bob: fixed (edited) [👍 2 ❤️ 1]",
  );
  assert.equal(
    formatMessage({ ...msg, text: "", deleted: true }, opts),
    "14:03 bob: message deleted",
  );
  assert.equal(
    formatMessage({ ...msg, text: "", deleted: true, removed: true }, opts),
    "14:03 bob: message removed by an admin",
  );
  assert.equal(formatMessage(msg, { ...opts, ids: true }), "#41 14:03 bob: fixed");
  // Piped to a file (no colors), the text is as written; on a terminal, Markdown is styled.
  const md = { ...msg, text: "**done**, see `log`" };
  assert.equal(formatMessage(md, opts), "14:03 bob: **done**, see `log`");
  const styled = formatMessage(md, { ...opts, color: true });
  assert.ok(
    styled.endsWith("\x1b[1mdone\x1b[22m, see \x1b[36mlog\x1b[39m"),
    JSON.stringify(styled),
  );
  // A second line is indented under the first.
  assert.equal(formatMessage({ ...msg, text: "one\ntwo" }, opts), "14:03 bob: one\n  two");
});

Deno.test("formatMessage() puts a reply's quote on the line before it", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 4);
  const opts = { me: "alice", here: { room: "general" } as const, now };
  const reply: ChatMessage = {
    id: 42,
    seq: 42,
    room: "general",
    from: "alice",
    text: "yes it is",
    ts,
    replyTo: { id: 41, from: "bob", snippet: "is the deploy done?" },
  };
  assert.equal(
    formatMessage(reply, opts),
    "      ↳ bob: is the deploy done?\n14:04 alice: yes it is",
  );
  assert.equal(
    formatMessage(reply, { ...opts, ids: true }),
    "          ↳ #41 bob: is the deploy done?\n#42 14:04 alice: yes it is",
  );
  assert.equal(
    formatMessage({ ...reply, replyTo: { id: 41, from: "bob", snippet: "", deleted: true } }, opts),
    "      ↳ bob: message deleted\n14:04 alice: yes it is",
  );
  const long = "x".repeat(150);
  assert.equal(
    formatQuote({ id: 1, from: "bob", snippet: `${long}\x1b[2J` }, opts),
    `↳ bob: ${"x".repeat(59)}…`,
  );
  assert.equal(shorten("short"), "short");
  assert.equal(reactionSummary(undefined), "");
  assert.equal(reactionSummary({ "🎉": ["a"] }), "[🎉 1]");
});

Deno.test("formatChange() says who edited, deleted or reacted, in short lines", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 5);
  const opts = { me: "alice", here: { room: "general" } as const, now };
  const held: ChatMessage = {
    id: 41,
    seq: 43,
    room: "general",
    from: "bob",
    text: "the **deploy** is done",
    ts,
  };
  assert.equal(
    formatChange(
      { type: "edited", room: "general", id: 41, text: "new text", editedAt: ts, seq: 44 },
      { ...opts, message: held },
    ),
    "14:05 bob edited #41: new text",
  );
  assert.equal(
    formatChange(
      { type: "edited", room: "ops", id: 7, text: "elsewhere", editedAt: ts, seq: 9 },
      opts,
    ),
    "14:05 #ops #7 was edited: elsewhere",
  );
  assert.equal(
    formatChange({ type: "deleted", room: "general", id: 41, seq: 45 }, {
      ...opts,
      message: held,
    }),
    "15:00 bob deleted #41",
  );
  assert.equal(
    formatChange({ type: "deleted", room: "general", id: 41, seq: 45, removed: true }, {
      ...opts,
      message: held,
    }),
    "15:00 bob's message #41 was removed by an admin",
  );
  assert.equal(
    formatChange({ type: "deleted", room: "ops", id: 7, seq: 9, removed: true }, opts),
    "15:00 #ops #7 was removed by an admin",
  );
  assert.equal(
    formatChange(
      { type: "reaction", room: "general", id: 41, emoji: "👍", user: "alice", on: true, seq: 46 },
      { ...opts, message: held },
    ),
    "15:00 alice reacted 👍 to #41 (bob: the **deploy** is done)",
  );
  // On a terminal the mention is the rendered text, without its marks.
  assert.ok(
    formatChange(
      { type: "reaction", room: "general", id: 41, emoji: "👍", user: "alice", on: true, seq: 46 },
      { ...opts, color: true, message: held },
    ).endsWith(" (bob: the deploy is done)"),
  );
  assert.equal(
    formatChange(
      { type: "reaction", to: "bob", id: 3, emoji: "❤️", user: "bob", on: false, seq: 8 },
      opts,
    ),
    "15:00 @bob bob removed ❤️ from #3",
  );
});

Deno.test("formatUpdate() tells what changed while away from the copy held before", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 5);
  const opts = { me: "alice", here: { room: "general" } as const, now };
  const before: ChatMessage = {
    id: 41,
    seq: 41,
    room: "general",
    from: "bob",
    text: "old",
    ts,
    reactions: { "👍": ["alice"], "🎉": ["carol"] },
  };
  const after: ChatMessage = {
    ...before,
    seq: 50,
    text: "new",
    edited: ts,
    reactions: { "👍": ["alice", "dan"], "❤️": ["carol"] },
  };
  assert.deepEqual(formatUpdate(before, after, opts), [
    "14:05 bob edited #41: new",
    "15:00 dan reacted 👍 to #41 (bob: new)",
    "15:00 carol reacted ❤️ to #41 (bob: new)",
    "15:00 carol removed 🎉 from #41 (bob: new)",
  ]);
  const gone: ChatMessage = {
    id: 41,
    seq: 51,
    room: "general",
    from: "bob",
    text: "",
    ts,
    deleted: true,
  };
  assert.deepEqual(formatUpdate(before, gone, opts), ["15:00 bob deleted #41"]);
  assert.deepEqual(formatUpdate(before, { ...gone, removed: true }, opts), [
    "15:00 bob's message #41 was removed by an admin",
  ]);
  assert.deepEqual(formatUpdate(gone, { ...gone, seq: 52 }, opts), []);
  // Not held before: what its state says.
  assert.deepEqual(formatUpdate(undefined, after, opts), [
    "14:05 bob edited #41: new",
    "15:00 #41 (bob: new) has reactions [👍 2 ❤️ 1]",
  ]);
});

Deno.test("formatSize() writes sizes in decimal units, like --max-upload", () => {
  const cases: [number, string][] = [
    [0, "0 bytes"],
    [1, "1 byte"],
    [999, "999 bytes"],
    [1000, "1 KB"],
    [1500, "1.5 KB"],
    [9949, "9.9 KB"],
    [9950, "10 KB"],
    [999_499, "999 KB"],
    [999_960, "1 MB"],
    [2_949_000, "2.9 MB"],
    [25_000_000, "25 MB"],
    [3e9, "3 GB"],
  ];
  for (const [n, want] of cases) assert.equal(formatSize(n), want, String(n));
});

const FILE = {
  id: "mwU0aEG46mBH-Tc5GvrpYA",
  name: "photo.png",
  size: 2_949_000,
  type: "image/png",
  url: "/files/mwU0aEG46mBH-Tc5GvrpYA/photo.png?v=alice&s=sig",
  width: 1280,
  height: 720,
};

Deno.test("formatFile() shows a file as name, size and the command that saves it, its link below", () => {
  const base = "https://chat.example.com/chat";
  assert.equal(
    formatFile(FILE, { me: "alice", base }),
    `📎 photo.png (2.9 MB, 1280×720) · /download mwU0aEG4\n  ${base}${FILE.url}`,
  );
  const doc = { id: "x", name: "notes.txt", size: 12, type: "text/plain", url: "/files/x/n" };
  assert.equal(
    formatFile(doc, { me: "alice" }),
    "📎 notes.txt (12 bytes) · /download x\n  /files/x/n",
  );
  // A name, id or link from the server cannot move the cursor.
  assert.equal(
    formatFile(
      { ...doc, id: "x\x1b[1A", name: "a\x1b[2Jb.txt", url: "/files/x\x1b[H" },
      { me: "a", base },
    ),
    `📎 a[2Jb.txt (12 bytes) · /download x[1A\n  ${base}/files/x[H`,
  );
  assert.equal(fileLink({ ...doc, url: undefined }, base), "");
  assert.equal(
    formatFile({ ...doc, url: undefined }, { me: "a" }),
    "📎 notes.txt (12 bytes) · /download x",
  );
  assert.equal(
    formatFile(FILE, { me: "alice", base, color: true }),
    `📎 \x1b[1mphoto.png\x1b[22m (2.9 MB, 1280×720) \x1b[2m·\x1b[22m /download mwU0aEG4\n` +
      `  \x1b[2m${base}${FILE.url}\x1b[22m`,
  );
  // The line to copy from fits in 80 columns for a usual name; the link wraps on a line of its own.
  const first = formatFile({ ...FILE, name: "quarterly report.pdf" }, { me: "a", base });
  assert.equal(
    `14:07 dave: ${first.split("\n")[0]}`,
    "14:07 dave: 📎 quarterly report.pdf (2.9 MB, 1280×720) · /download mwU0aEG4",
  );
});

Deno.test("formatMessage() shows a message's files after its text, and alone on its first line", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 14, 3);
  const opts = { me: "alice", here: { room: "general" } as const, now, base: "http://h:1" };
  const doc = { id: "b".repeat(22), name: "a.pdf", size: 1000, type: "application/pdf", url: "/f" };
  const msg: ChatMessage = {
    id: 4,
    seq: 4,
    room: "general",
    from: "bob",
    text: "look",
    ts,
    files: [FILE, doc],
    reactions: { "👍": ["alice"] },
  };
  assert.equal(
    formatMessage(msg, opts),
    "14:03 bob: look [👍 1]\n" +
      `  📎 photo.png (2.9 MB, 1280×720) · /download mwU0aEG4\n` +
      `    http://h:1${FILE.url}\n` +
      `  📎 a.pdf (1 KB) · /download bbbbbbbb\n` +
      "    http://h:1/f",
  );
  // Alone: the first file on the first line, the marks after it, the links under it.
  assert.equal(
    formatMessage({ ...msg, text: "", edited: ts }, opts),
    `14:03 bob: 📎 photo.png (2.9 MB, 1280×720) · /download mwU0aEG4 (edited) [👍 1]\n` +
      `    http://h:1${FILE.url}\n` +
      `  📎 a.pdf (1 KB) · /download bbbbbbbb\n` +
      "    http://h:1/f",
  );
  // A tombstone shows no files.
  assert.equal(
    formatMessage(
      { ...msg, deleted: true, text: "", reactions: undefined },
      opts,
    ),
    "14:03 bob: message deleted",
  );
  // A reaction to a message of files alone names its first file.
  assert.equal(
    formatChange(
      { type: "reaction", room: "general", id: 4, seq: 5, emoji: "🎉", user: "carol", on: true },
      { ...opts, message: { ...msg, text: "" } },
    ).replace(/^\d\d:\d\d /, ""),
    "carol reacted 🎉 to #4 (bob: 📎 photo.png)",
  );
});

Deno.test("formatSystem() says who added or removed whom", () => {
  const now = new Date(2026, 4, 17, 15, 0);
  const ts = local(2026, 5, 17, 9, 5);
  const join = {
    type: "system",
    room: "plans",
    event: "join",
    user: "bob",
    by: "alice",
    ts,
  } as const;
  assert.equal(formatSystem(join, false, now), "09:05 * alice added bob to #plans");
  assert.equal(formatSystem(join, false, now, "alice"), "09:05 * you added bob to #plans");
  const leave = { ...join, room: "lounge", event: "leave" } as const;
  assert.equal(formatSystem(leave, false, now), "09:05 * alice removed bob from #lounge");
  assert.equal(formatSystem(leave, false, now, "bob"), "09:05 * alice removed you from #lounge");
});

Deno.test("formatInvited() and formatRemoved() tell who added or removed the user", () => {
  assert.equal(
    formatInvited({ type: "invited", room: "plans", user: "bob", by: "alice" }, "alice"),
    "You added bob to #plans",
  );
  assert.equal(
    formatInvited({ type: "invited", room: "plans", by: "alice" }, "bob"),
    "alice added you to #plans: /join plans to talk there",
  );
  assert.equal(formatRemoved("lounge", "alice", "bob"), "alice removed you from #lounge");
});

Deno.test("formatRoomSettings() says what an admin changed about a room", () => {
  const f = (settings: Record<string, true>, by = "alice") => ({
    type: "room_settings" as const,
    room: "news",
    settings,
    by,
  });
  assert.equal(formatRoomSettings(f({ readOnly: true }), "bob", {}), "alice made #news read-only");
  assert.equal(
    formatRoomSettings(f({ readOnly: true }), "alice", {}),
    "You made #news read-only",
  );
  assert.equal(formatRoomSettings(f({ private: true }), "bob", {}), "alice made #news private");
  assert.equal(
    formatRoomSettings(f({}), "bob", { private: true }),
    "alice made #news public again",
  );
  assert.equal(
    formatRoomSettings(f({}), "bob", { readOnly: true }),
    "alice let everyone post in #news again",
  );
  assert.equal(
    formatRoomSettings(f({ archived: true }), "bob", {}),
    "alice archived #news",
  );
  assert.equal(
    formatRoomSettings(f({}), "bob", { archived: true }),
    "alice took #news out of the archive",
  );
  assert.equal(
    formatRoomSettings(f({ private: true, readOnly: true }), "bob"),
    "alice made #news private and read-only",
    "without the kind before, the whole kind",
  );
  assert.equal(formatRoomSettings(f({}), "bob"), "alice made #news an open room again");
  assert.equal(
    formatRoomSettings(f({ restrictRoomMentions: true }), "bob", {}),
    "alice let only admins use @room and @here in #news",
  );
  assert.equal(
    formatRoomSettings(f({}), "alice", { restrictRoomMentions: true }),
    "You let everyone use @room and @here in #news again",
  );
  assert.equal(
    formatRoomSettings(f({ readOnly: true, restrictRoomMentions: true }), "bob"),
    "alice made #news read-only and let only admins use @room and @here in #news",
  );
  assert.ok(!sameKind({ restrictRoomMentions: true }, {}));
});

Deno.test("kindWords() and sameKind() read a room's kind", () => {
  assert.deepEqual(kindWords({}), []);
  assert.deepEqual(kindWords(undefined), []);
  assert.deepEqual(kindWords({ private: true, readOnly: true, archived: true }), [
    "private",
    "read-only",
    "archived",
  ]);
  assert.ok(sameKind({}, undefined));
  assert.ok(sameKind({ readOnly: true }, { readOnly: true }));
  assert.ok(!sameKind({ readOnly: true }, {}));
});

Deno.test("formatRole(), formatBanned() and closeSentence(4011) speak of roles and bans", () => {
  assert.equal(formatRole("admin"), "You are now an admin (/help lists the admin commands)");
  assert.equal(formatRole("member"), "You are now a member");
  assert.equal(
    formatBanned({ type: "banned", user: "bob", by: "alice" }),
    "You banned bob until you /unban them",
  );
  const until = new Date(2026, 11, 8, 10, 30).getTime();
  assert.equal(
    formatBanned({ type: "banned", user: "bob", by: "alice", until, reason: "spam" }),
    "You banned bob until 2026-12-08 10:30: spam",
  );
  assert.equal(closeSentence(4011, "banned"), "You are banned from this chat");
});

Deno.test("formatRenamed() says who renamed a room, or that it was renamed while away", () => {
  const f = { room: "ops", name: "ops-2", by: "alice" };
  assert.equal(formatRenamed(f, "bob"), "* alice renamed #ops to #ops-2");
  assert.equal(formatRenamed(f, "alice"), "* you renamed #ops to #ops-2");
  assert.equal(
    formatRenamed({ room: "ops", name: "ops-2" }, "bob"),
    "* #ops was renamed to #ops-2 while you were away",
  );
});

Deno.test("formatRenameRefusal() says each refusal of /rename in words", () => {
  const at = { room: "ops", name: "news" };
  assert.equal(
    formatRenameRefusal("forbidden", "Only admins may do this", at),
    "Cannot rename #ops: only admins rename rooms",
  );
  assert.equal(
    formatRenameRefusal("forbidden", "Only admins may do this", { ...at, open: true }),
    "Cannot rename #ops: only admins rename rooms, and this server is in open mode: it has none",
  );
  assert.equal(
    formatRenameRefusal("unknown_room", 'There is no room "ops"', at),
    "Cannot rename #ops: there is no such room (or it is private and you are not in it)",
  );
  assert.equal(
    formatRenameRefusal("name_taken", 'There is a room "news" already', at),
    "Cannot rename #ops to #news: there is a room #news already",
  );
  assert.equal(
    formatRenameRefusal("bad_request", 'Everyone is in "general": it keeps its name', {
      room: "general",
      name: "news",
    }),
    'Cannot rename #general to #news: everyone is in "general": it keeps its name',
  );
  assert.equal(
    formatRenameRefusal("closed", "The client was closed", at),
    "Not renamed: the client was closed",
  );
});
