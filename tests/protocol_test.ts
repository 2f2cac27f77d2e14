import assert from "node:assert/strict";
import fc from "fast-check";
import {
  applyPresence,
  checkTopic,
  conversationKey,
  FrameError,
  MAX_TOPIC_BYTES,
  mentionsRoom,
  parseClientFrame,
  presenceCount,
  splitFrames,
  utf8Length,
  wireLength,
} from "../protocol.ts";
import { segments } from "../web/text.ts";

function fails(data: string, code: string, message: RegExp, ref?: string) {
  assert.throws(() => parseClientFrame(data), (err: unknown) => {
    assert.ok(err instanceof FrameError);
    assert.equal(err.code, code);
    assert.match(err.message, message);
    assert.equal(err.ref, ref);
    return true;
  });
}

Deno.test("parseClientFrame() accepts every client frame", () => {
  assert.deepEqual(parseClientFrame('{"type":"auth","username":"a","password":"p"}'), {
    type: "auth",
    username: "a",
    password: "p",
  });
  assert.deepEqual(parseClientFrame('{"type":"auth","username":"a"}'), {
    type: "auth",
    username: "a",
  });
  assert.deepEqual(parseClientFrame('{"type":"auth","token":"t"}'), { type: "auth", token: "t" });
  assert.deepEqual(parseClientFrame('{"username":"a","password":"p"}'), {
    type: "auth",
    username: "a",
    password: "p",
  });
  assert.deepEqual(parseClientFrame('{"type":"join","room":"ops","since":4}'), {
    type: "join",
    room: "ops",
    since: 4,
  });
  assert.deepEqual(parseClientFrame('{"type":"send","to":"bob","text":"hi","ref":"r"}'), {
    type: "send",
    to: "bob",
    text: "hi",
    ref: "r",
  });
  assert.deepEqual(parseClientFrame('{"type":"typing","room":"a","active":true}'), {
    type: "typing",
    room: "a",
    active: true,
  });
  assert.deepEqual(parseClientFrame('{"type":"history","room":"a","before":9,"limit":5}'), {
    type: "history",
    room: "a",
    before: 9,
    limit: 5,
  });
  assert.deepEqual(parseClientFrame('{"type":"read","to":"bob","id":3}'), {
    type: "read",
    to: "bob",
    id: 3,
  });
  assert.deepEqual(parseClientFrame('{"type":"search","q":"x","room":"a"}'), {
    type: "search",
    q: "x",
    room: "a",
  });
  assert.deepEqual(parseClientFrame('{"type":"ping"}'), { type: "ping" });
  assert.deepEqual(parseClientFrame('{"type":"rooms","extra":1}'), { type: "rooms" });
});

Deno.test("parseClientFrame() names the problem with each bad frame", () => {
  fails("nope", "bad_request", /not valid JSON/);
  fails("null", "bad_request", /JSON object/);
  fails('"str"', "bad_request", /JSON object/);
  fails("{}", "bad_request", /"type" is required/);
  fails('{"type":7}', "bad_request", /"type" must be a string/);
  fails('{"type":"x"}', "bad_request", /Unknown frame type "x"/);
  fails('{"type":"send","room":"a","text":"  ","ref":"r1"}', "bad_request", /empty/, "r1");
  fails('{"type":"send","room":"a","text":"hi","ref":5}', "bad_request", /"ref"/);
  fails(`{"type":"send","room":"a","text":"hi","ref":"${"r".repeat(65)}"}`, "bad_request", /"ref"/);
  fails('{"type":"send","room":"a b","text":"hi"}', "bad_request", /Invalid room name "a b"/);
  fails('{"type":"send","to":"","text":"hi"}', "bad_request", /Invalid username/);
  fails('{"type":"join"}', "bad_request", /"room" is required/);
  fails(
    '{"type":"join","room":"a","since":1.5}',
    "bad_request",
    /"since" must be a non-negative integer/,
  );
  fails('{"type":"history","room":"a","before":1,"since":2}', "bad_request", /not both/);
  fails('{"type":"history","room":"a","limit":201}', "bad_request", /between 1 and 200/);
  fails('{"type":"history","room":"a","limit":0}', "bad_request", /between 1 and 200/);
  fails('{"type":"read","room":"a"}', "bad_request", /"id" is required/);
  fails('{"type":"typing","room":"a","active":"yes"}', "bad_request", /"active" must be a boolean/);
  fails('{"type":"typing","room":"a","active":null}', "bad_request", /"active" must be a boolean/);
  fails('{"type":"typing","room":"a"}', "bad_request", /"active" is required/);
  fails('{"type":"send","room":"a","text":"\u200b\ufeff ","ref":"z"}', "bad_request", /empty/, "z");
  fails('{"type":"search","q":""}', "bad_request", /"q" is required/);
  fails('{"type":"auth"}', "bad_request", /"username" is required/);
  fails(
    '{"type":"auth","username":"a","password":5}',
    "bad_request",
    /"password" must be a string/,
  );
  fails('{"type":"register","username":"a"}', "bad_request", /"password" is required/);
  fails(
    JSON.stringify({ type: "send", room: "a", text: "x".repeat(70_000) }),
    "too_large",
    /65536/,
  );
});

Deno.test("parseClientFrame() measures text in UTF-8 bytes", () => {
  const ok = { type: "send", room: "a", text: "€".repeat(1365) }; // 4095 bytes
  assert.equal(parseClientFrame(JSON.stringify(ok)).type, "send");
  const big = { type: "send", room: "a", text: "€".repeat(1366), ref: "r" }; // 4098 bytes
  assert.throws(() => parseClientFrame(JSON.stringify(big)), (e: unknown) => {
    assert.ok(e instanceof FrameError && e.code === "too_large" && e.ref === "r");
    return true;
  });
  assert.equal(parseClientFrame(JSON.stringify(big), { maxMessageBytes: 5000 }).type, "send");
});

Deno.test("parseClientFrame() counts text as it travels: escapes count twice", () => {
  const send = (text: string, ref?: string) =>
    JSON.stringify({ type: "send", room: "a", text, ...(ref ? { ref } : {}) });
  // 2048 quotes are 4096 bytes on the wire: just fits; one more does not.
  assert.equal(parseClientFrame(send('"'.repeat(2048))).type, "send");
  fails(send('"'.repeat(2049), "q"), "too_large", /longer than 4096 bytes/, "q");
  fails(send("\\".repeat(2049)), "too_large", /longer than 4096 bytes/);
  fails(send("a\n".repeat(1366)), "too_large", /longer than 4096 bytes/);
});

Deno.test("parseClientFrame() refuses control characters and broken Unicode in text", () => {
  const send = (text: string) => JSON.stringify({ type: "send", room: "a", text, ref: "r" });
  for (
    const c of ["\u0000", "\u0001", "\u0007", "\u001b", "\u007f", "\u0085", "\u009f", "\u000b"]
  ) {
    fails(send(`hi${c}there`), "bad_request", /may not contain control characters/, "r");
  }
  fails(send("half a pair \ud83d"), "bad_request", /not valid Unicode/, "r");
  // Nothing visible: fillers, soft hyphens, tag characters, the blank braille pattern.
  for (
    const invisible of [
      "\u3164",
      "\u2800\u2800",
      "\u00ad",
      "\u{e0041}\u{e0042}",
      "\u115f",
      "\ufe0f",
    ]
  ) {
    fails(send(invisible), "bad_request", /empty/, "r");
  }
  // …but they may stand among visible text.
  assert.equal((parseClientFrame(send("co\u00adop")) as { text: string }).text, "co\u00adop");
  // Tabs and newlines stay; a carriage return becomes a newline.
  const ok = parseClientFrame(send("a\tb\r\nc\rd\ne 😀")) as { text: string };
  assert.equal(ok.text, "a\tb\nc\nd\ne 😀");
});

Deno.test("wireLength() is the byte length inside a JSON string", () => {
  for (const s of ["", "abc", '"q"', "back\\slash", "tab\tnew\nline", "é€😀", "a\u2028b"]) {
    assert.equal(wireLength(s), utf8Length(JSON.stringify(s)) - 2, JSON.stringify(s));
  }
});

Deno.test("utf8Length() counts bytes like TextEncoder", () => {
  for (const s of ["", "abc", "é", "€", "😀", "a😀b", "\ud800"]) {
    assert.equal(utf8Length(s), new TextEncoder().encode(s).length, s);
  }
});

Deno.test("splitFrames() reads batched server frames", () => {
  assert.deepEqual(splitFrames('{"type":"pong"}'), [{ type: "pong" }]);
  assert.deepEqual(splitFrames('{"type":"pong"}\n{"type":"rooms","rooms":[]}'), [
    { type: "pong" },
    { type: "rooms", rooms: [] },
  ]);
  assert.deepEqual(splitFrames(""), []);
});

Deno.test("conversationKey() is the same from both sides of a DM", () => {
  assert.equal(conversationKey("alice", { to: "bob" }), conversationKey("bob", { to: "alice" }));
  assert.equal(conversationKey("alice", { to: "bob" }), "@alice:bob");
  assert.equal(conversationKey("alice", { room: "ops" }), "ops");
});

Deno.test("applyPresence() and presenceCount() read every kind of presence frame", () => {
  const start = new Set(["a", "b"]);
  assert.deepEqual(applyPresence(start, { type: "presence", online: ["c"] }), new Set(["c"]));
  assert.deepEqual(
    applyPresence(start, { type: "presence", count: 2, added: ["c"], removed: ["a"] }),
    new Set(["b", "c"]),
  );
  assert.equal(presenceCount({ type: "presence", online: ["a"] }), null);
  assert.equal(presenceCount({ type: "presence", count: 3, added: ["c"], removed: [] }), null);
  assert.equal(presenceCount({ type: "presence", count: 900, added: [], removed: [] }), 900);
});

Deno.test("parseClientFrame() reads users, topic and read_all frames", () => {
  assert.deepEqual(parseClientFrame('{"type":"users"}'), { type: "users" });
  assert.deepEqual(parseClientFrame('{"type":"users","q":"Al"}'), { type: "users", q: "Al" });
  assert.deepEqual(parseClientFrame('{"type":"users","q":""}'), { type: "users" });
  assert.deepEqual(parseClientFrame('{"type":"users","q":null}'), { type: "users" });
  assert.deepEqual(parseClientFrame(JSON.stringify({ type: "users", q: "x".repeat(32) })), {
    type: "users",
    q: "x".repeat(32),
  });
  assert.deepEqual(parseClientFrame('{"type":"topic","room":"ops","topic":"Deploys"}'), {
    type: "topic",
    room: "ops",
    topic: "Deploys",
  });
  assert.deepEqual(
    parseClientFrame(JSON.stringify({ type: "topic", room: "ops", topic: "  a\tb\n\r\n c  " })),
    { type: "topic", room: "ops", topic: "a b c" },
    "one line, trimmed",
  );
  assert.deepEqual(parseClientFrame('{"type":"topic","room":"ops","topic":""}'), {
    type: "topic",
    room: "ops",
    topic: "",
  });
  assert.deepEqual(
    parseClientFrame(JSON.stringify({ type: "topic", room: "ops", topic: " \u200b\u2800 " })),
    { type: "topic", room: "ops", topic: "" },
    "nothing visible clears it",
  );
  assert.deepEqual(parseClientFrame('{"type":"read_all"}'), { type: "read_all" });
  assert.deepEqual(parseClientFrame('{"type":"read_all","room":"x"}'), { type: "read_all" });
});

Deno.test("parseClientFrame() names the problem with bad users and topic frames", () => {
  fails(JSON.stringify({ type: "users", q: "x".repeat(33) }), "bad_request", /longer than 32/);
  fails('{"type":"users","q":5}', "bad_request", /"q" must be a string/);
  fails('{"type":"topic","room":"ops"}', "bad_request", /"topic" is required/);
  fails('{"type":"topic","room":"ops","topic":7}', "bad_request", /"topic" must be a string/);
  fails('{"type":"topic","topic":"x"}', "bad_request", /"room" is required/);
  fails('{"type":"topic","room":"a b","topic":"x"}', "bad_request", /Invalid room name "a b"/);
  for (const c of ["\u0000", "\u0007", "\u001b", "\u007f", "\u0085", "\u009f"]) {
    fails(
      JSON.stringify({ type: "topic", room: "ops", topic: `a${c}b` }),
      "bad_request",
      /A topic may not contain control characters/,
    );
  }
  fails(
    JSON.stringify({ type: "topic", room: "ops", topic: "half a pair \ud83d" }),
    "bad_request",
    /not valid Unicode/,
  );
  fails(
    JSON.stringify({ type: "topic", room: "ops", topic: "x".repeat(MAX_TOPIC_BYTES + 1) }),
    "too_large",
    /A topic is longer than 300 bytes/,
  );
});

Deno.test("checkTopic() counts bytes as they travel, after trimming", () => {
  assert.equal(MAX_TOPIC_BYTES, 300);
  assert.equal(checkTopic("€".repeat(100)), "€".repeat(100), "300 bytes fit");
  assert.throws(() => checkTopic("€".repeat(100) + "x"), FrameError);
  assert.equal(checkTopic('"'.repeat(150)), '"'.repeat(150), "quotes count twice");
  assert.throws(() => checkTopic('"'.repeat(151)), /longer than 300 bytes/);
  assert.equal(checkTopic(`  ${"x".repeat(300)}  `), "x".repeat(300), "trimmed first");
});

Deno.test("checkTopic() refuses bidirectional controls that would reorder the header", () => {
  for (
    const c of [
      "\u202A",
      "\u202B",
      "\u202C",
      "\u202D",
      "\u202E",
      "\u2066",
      "\u2067",
      "\u2068",
      "\u2069",
    ]
  ) {
    assert.throws(
      () => checkTopic(`${c}gnp.exe`),
      (err: Error) =>
        err instanceof FrameError && err.code === "bad_request" &&
        err.message.includes("bidirectional control characters"),
      `U+${c.codePointAt(0)!.toString(16)}`,
    );
  }
  // Right-to-left text itself is welcome.
  assert.equal(checkTopic("שלום עולם"), "שלום עולם");
});

Deno.test("mentionsRoom() finds @room and @here as whole mentions, in any case", () => {
  for (
    const text of [
      "@room",
      "@here",
      "deploy at 5, @Room!",
      "@HERE",
      "(@room)",
      "hey\n@here: look",
      "see `@room`",
      "```\n@here\n```",
      "@room's build",
      "x @room.",
      "@here—now",
      "https://example.com @room",
    ]
  ) assert.equal(mentionsRoom(text), true, JSON.stringify(text));
  for (
    const text of [
      "",
      "room here",
      "@roomy",
      "@room-1",
      "@here_",
      "@here2",
      "a@room",
      "email@here.com",
      "@@room",
      "_@here",
      "@ room",
      "https://example.com/@room",
      "@alice @bob",
    ]
  ) assert.equal(mentionsRoom(text), false, JSON.stringify(text));
});

Deno.test("mentionsRoom() agrees with the mentions the web app finds", () => {
  const piece = fc.constantFrom(
    "@room",
    "@here",
    "@Room",
    "@roomy",
    "@",
    "a",
    "_",
    "-",
    " ",
    ".",
    "`",
    "/",
    "\n",
    "https://",
    "x.org",
    "é",
  );
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 12 }), (parts) => {
      const text = parts.join("");
      const web = segments(text).some((s) =>
        s.kind === "mention" && ["room", "here"].includes(s.name.toLowerCase())
      );
      assert.equal(mentionsRoom(text), web, JSON.stringify(text));
    }),
    { numRuns: 2000 },
  );
});

Deno.test("parseClientFrame() takes restrictRoomMentions in room_settings, true or false only", () => {
  assert.deepEqual(
    parseClientFrame('{"type":"room_settings","room":"dev","restrictRoomMentions":true,"ref":"s"}'),
    { type: "room_settings", room: "dev", restrictRoomMentions: true, ref: "s" },
  );
  assert.deepEqual(
    parseClientFrame('{"type":"room_settings","room":"dev","restrictRoomMentions":false}'),
    { type: "room_settings", room: "dev", restrictRoomMentions: false },
  );
  fails(
    '{"type":"room_settings","room":"dev","restrictRoomMentions":1,"ref":"s"}',
    "bad_request",
    /^Field "restrictRoomMentions" must be true or false$/,
    "s",
  );
  fails(
    '{"type":"room_settings","room":"dev"}',
    "bad_request",
    /"autoJoin" or "restrictRoomMentions"$/,
  );
});
