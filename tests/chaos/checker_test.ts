/**
 * The checker must be able to fail: hand-made records with a lost
 * acknowledgement, a duplicate, a silent hole, a refused message that
 * appears and a wrong unread count are each reported; a clean one is not.
 */
import assert from "node:assert/strict";
import type { ChatMessage, ServerFrame, WelcomeFrame } from "../../protocol.ts";
import { fileBytes } from "./actor.ts";
import { check, describeViolation } from "./checker.ts";
import { type Entry, type History, Recorder } from "./history.ts";
import { ConvView } from "./view.ts";

const TS = "2026-12-07T00:00:00.000Z";

function msg(
  id: number,
  from: string,
  text: string,
  extra: Partial<ChatMessage> = {},
): ChatMessage {
  return { id, seq: id, room: "general", from, text, ts: TS, ...extra };
}

function welcome(
  user: string,
  read: number,
  unread: number,
  last: number,
  seq: number,
): WelcomeFrame {
  return {
    type: "welcome",
    user,
    token: "t",
    rooms: ["general"],
    online: [],
    mode: "open",
    limits: { rate: 20, burst: 60, maxMessage: 4096 },
    conversations: [{ room: "general", last, read, seq, unread }],
  };
}

/** A tiny scenario writer: a and b in #general. */
class Script {
  readonly rec = new Recorder();
  open(client: string): this {
    this.rec.add({ kind: "open", client, conn: 1, node: 0 });
    return this;
  }
  send(client: string, text: string, ref: string): this {
    this.rec.add({
      kind: "out",
      client,
      conn: 1,
      frame: { type: "send", room: "general", text, ref },
    });
    return this;
  }
  got(client: string, frame: ServerFrame, since?: number): this {
    this.rec.add({ kind: "in", client, conn: 1, frame, ...(since !== undefined ? { since } : {}) });
    return this;
  }
  history(final: ChatMessage[], unread: { a: [number, number]; b: [number, number] }): History {
    const last = Math.max(0, ...final.map((m) => m.id));
    const seq = Math.max(0, ...final.map((m) => m.seq));
    const readings = (["a", "b"] as const).map((u) => ({
      user: u,
      welcome: welcome(u, unread[u][0], unread[u][1], last, seq),
      convs: { "#general": final },
    }));
    return {
      seed: 7,
      mode: "memory",
      users: ["a", "b"],
      entries: this.rec.entries as Entry[],
      final: { "#general": final },
      readings,
      admins: ["a"],
      finalReads: {},
      files: {},
    };
  }
}

function live(m: ChatMessage, ref?: string): ServerFrame {
  return { type: "message", ...m, ...(ref ? { ref } : {}) };
}

/** Both clients join with since 0, a sends m1 and m2, both see both. */
function clean(): Script {
  return new Script().open("a").open("b")
    .got("a", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .got("b", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .send("a", "m1", "r1").got("a", live(msg(1, "a", "m1"), "r1")).got("b", live(msg(1, "a", "m1")))
    .send("a", "m2", "r2").got("a", live(msg(2, "a", "m2"), "r2")).got(
      "b",
      live(msg(2, "a", "m2")),
    );
}

function rules(h: History): string[] {
  return check(h).violations.map((v) => v.rule).sort();
}

Deno.test("check() finds nothing wrong with a clean record", () => {
  const h = clean().history([msg(1, "a", "m1"), msg(2, "a", "m2")], { a: [0, 0], b: [0, 2] });
  const verdict = check(h);
  assert.deepEqual(verdict.violations, []);
  assert.equal(verdict.stats.acked.send, 2);
});

Deno.test("check() reports an acknowledged message missing from the final state", () => {
  const h = clean().history([msg(1, "a", "m1")], { a: [0, 0], b: [0, 1] });
  const v = check(h).violations;
  assert.ok(
    v.some((x) => x.rule === "lost" && /a's acknowledged send of #general #2/.test(x.message)),
  );
  // The clients hold #2, the final state does not.
  assert.ok(v.some((x) => x.rule === "state"));
  const text = describeViolation(h, v.find((x) => x.rule === "lost")!);
  assert.match(text, /^seed 7 \(--mode memory\): lost: /);
  assert.match(text, /> \[\d+\] +\d+ms a\/1 ← \{"type":"message","id":2/);
});

Deno.test("check() reports a position delivered twice on one connection", () => {
  const s = clean().got("b", live(msg(1, "a", "m1")));
  const h = s.history([msg(1, "a", "m1"), msg(2, "a", "m2")], { a: [0, 0], b: [0, 2] });
  assert.deepEqual(rules(h), ["order"]);
  assert.match(check(h).violations[0].message, /b received position 1 after 2/);
});

Deno.test("check() reports a silent hole and the stale view it leaves", () => {
  const s = new Script().open("a").open("b")
    .got("a", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .got("b", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .send("a", "m1", "r1").got("a", live(msg(1, "a", "m1"), "r1")).got("b", live(msg(1, "a", "m1")))
    .send("a", "m2", "r2").got("a", live(msg(2, "a", "m2"), "r2"))
    .send("a", "m3", "r3").got("a", live(msg(3, "a", "m3"), "r3")).got(
      "b",
      live(msg(3, "a", "m3")),
    );
  const final = [msg(1, "a", "m1"), msg(2, "a", "m2"), msg(3, "a", "m3")];
  const h = s.history(final, { a: [0, 0], b: [0, 3] });
  assert.deepEqual(rules(h), ["hole", "state"]);
  assert.match(check(h).violations[0].message, /b never received position 2 \(of 3\)/);
});

Deno.test("check() lets a page that says gap excuse a hole", () => {
  const s = new Script().open("a").open("b")
    .got("a", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .send("a", "m1", "r1").got("a", live(msg(1, "a", "m1"), "r1"))
    .send("a", "m2", "r2").got("a", live(msg(2, "a", "m2"), "r2"))
    .got("b", {
      type: "joined",
      room: "general",
      members: ["a", "b"],
      history: [msg(2, "a", "m2")],
      seq: 2,
      gap: true,
    }, 0);
  // b was told of the gap, reloads and finds #1 gone: allowed.
  const h = s.history([msg(2, "a", "m2")], { a: [0, 0], b: [0, 1] });
  // a's acknowledged #1 is missing (and a still shows it), but b's hole was announced.
  assert.deepEqual(rules(h), ["lost", "state"]);
});

Deno.test("check() reports a refused message that appears, and one nobody sent", () => {
  const s = clean().send("b", "nope", "x1").got("b", {
    type: "error",
    code: "rate_limited",
    message: "Slow down",
    ref: "x1",
  }).got("a", live(msg(3, "b", "nope"))).got("b", live(msg(3, "b", "nope")));
  const final = [msg(1, "a", "m1"), msg(2, "a", "m2"), msg(3, "b", "nope"), msg(4, "b", "ghost")];
  const h = s.history(final, { a: [0, 1], b: [0, 2] });
  const got = rules(h);
  assert.ok(got.includes("refused"), got.join());
  assert.ok(got.includes("unsent"), got.join());
});

Deno.test("check() reports an unread count that disagrees with the read marker", () => {
  const h = clean().history([msg(1, "a", "m1"), msg(2, "a", "m2")], { a: [0, 0], b: [0, 1] });
  const v = check(h).violations;
  assert.deepEqual(v.map((x) => x.rule), ["read"]);
  assert.match(v[0].message, /b has 1 unread after marker 0, but the final state has 2/);
});

Deno.test("check() reports an acknowledged edit that the final state lost", () => {
  const s = clean();
  s.rec.add({
    kind: "out",
    client: "a",
    conn: 1,
    frame: { type: "edit", room: "general", id: 1, text: "m1 edited", ref: "e1" },
  });
  s.got("a", {
    type: "edited",
    room: "general",
    id: 1,
    text: "m1 edited",
    editedAt: TS,
    seq: 3,
    ref: "e1",
  });
  const h = s.history([msg(1, "a", "m1"), msg(2, "a", "m2")], { a: [0, 0], b: [0, 2] });
  const v = check(h).violations;
  assert.ok(
    v.some((x) => x.rule === "lost" && /edit of #general #1 at position 3/.test(x.message)),
  );
});

Deno.test("check() reports a live frame that repeats what a joined page reflected", () => {
  const s = clean()
    .got("b", {
      type: "joined",
      room: "general",
      members: ["a", "b"],
      history: [msg(3, "a", "m3")],
      seq: 3,
    }, 2)
    .got("b", live(msg(3, "a", "m3")));
  s.rec.add({
    kind: "out",
    client: "a",
    conn: 1,
    frame: { type: "send", room: "general", text: "m3", ref: "r3" },
  });
  s.got("a", live(msg(3, "a", "m3"), "r3"));
  const h = s.history([msg(1, "a", "m1"), msg(2, "a", "m2"), msg(3, "a", "m3")], {
    a: [0, 0],
    b: [0, 3],
  });
  const v = check(h).violations;
  assert.deepEqual(v.map((x) => x.rule), ["repeat"]);
  assert.match(
    v[0].message,
    /b received position 3 live after a joined page that reflected up to 3/,
  );
});

Deno.test("check() excuses a deleted message's forgotten positions only with Redis, and wants its tombstone", () => {
  // b never saw #1 nor its edit at 2, only the delete at 3 (the Redis feed forgets them).
  const s = new Script().open("a").open("b")
    .got("a", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .got("b", { type: "joined", room: "general", members: ["a", "b"], history: [], seq: 0 }, 0)
    .send("a", "m1", "r1").got("a", live(msg(1, "a", "m1"), "r1"));
  s.rec.add({
    kind: "out",
    client: "a",
    conn: 1,
    frame: { type: "delete", room: "general", id: 1, ref: "d1" },
  });
  const final = [msg(1, "a", "", { seq: 2, deleted: true })];
  const deleted = { type: "deleted", room: "general", id: 1, seq: 2 } as const;
  const placed = new Script();
  placed.rec.entries.push(...s.rec.entries);
  placed.got("a", { ...deleted, from: "a", ts: TS, ref: "d1" }).got("b", {
    ...deleted,
    from: "a",
    ts: TS,
  });
  const redis = { ...placed.history(final, { a: [0, 0], b: [0, 0] }), mode: "redis" };
  assert.deepEqual(check(redis).violations, []);
  // A memory node forgets nothing: the same positions are a hole there.
  assert.deepEqual(rules(placed.history(final, { a: [0, 0], b: [0, 0] })), ["hole"]);
  // A `deleted` that cannot place its tombstone (an older server's) leaves b short of it.
  s.got("a", { ...deleted, ref: "d1" }).got("b", deleted);
  const bare = { ...s.history(final, { a: [0, 0], b: [0, 0] }), mode: "redis" };
  assert.deepEqual(rules(bare), ["state"]);
});

Deno.test("ConvView.applyMessage() lets a page's whole state replace one built on a stale base", () => {
  const view = new ConvView();
  view.applyMessage(msg(2, "ann", "first"));
  // Live during a catch-up: a reaction at 5, applied on a state that missed the edit at 4.
  view.applyChange({
    type: "reaction",
    room: "general",
    id: 2,
    emoji: "👍",
    user: "dan",
    on: true,
    seq: 5,
  });
  // The page then brings the message as it is at 5: edit and reaction.
  view.applyMessage(msg(2, "ann", "edited", { seq: 5, edited: TS, reactions: { "👍": ["dan"] } }));
  assert.deepEqual(view.lines(), ['#2@5 ann "edited" (edited) [👍:dan]']);
  // An older whole state never replaces a newer one.
  view.applyMessage(msg(2, "ann", "first"));
  assert.deepEqual(view.lines(), ['#2@5 ann "edited" (edited) [👍:dan]']);
});

Deno.test("ConvView.applyChange() keeps a change that overtook its message's page", () => {
  const view = new ConvView();
  const early = view.applyChange({
    type: "edited",
    to: "ann",
    id: 1,
    text: "ann edits 9",
    editedAt: TS,
    seq: 2,
  });
  assert.equal(early, false, "the message is not held yet");
  // The `history` page was read before the edit: it brings #1 as it was at 1.
  view.applyMessage(msg(1, "ann", "ann whispers 2"));
  assert.deepEqual(view.lines(), ['#1@2 ann "ann edits 9" (edited)']);
});

/** a sends m1; b answers it with r2 (a reply carrying a file) that both see. */
function withReply(file: string): Script {
  const s = clean();
  s.rec.add({ kind: "upload", client: "b", ref: "rb", status: 201, id: file });
  s.rec.add({
    kind: "out",
    client: "b",
    conn: 1,
    frame: { type: "send", room: "general", text: "re", replyTo: 1, files: [file], ref: "rb" },
  });
  const reply = msg(3, "b", "re", {
    replyTo: { id: 1, from: "a", snippet: "m1" },
    files: [{ id: file, name: "rb.txt", size: 1, type: "text/plain" }],
  });
  return s.got("b", live(reply, "rb")).got("a", live(reply));
}

const FILE = "f".repeat(22);

Deno.test("check() accepts a reply with a file kept as sent and downloading as uploaded", () => {
  const reply = msg(3, "b", "re", {
    replyTo: { id: 1, from: "a", snippet: "m1" },
    files: [{ id: FILE, name: "rb.txt", size: 1, type: "text/plain" }],
  });
  const h = withReply(FILE).history([msg(1, "a", "m1"), msg(2, "a", "m2"), reply], {
    a: [0, 1],
    b: [0, 2],
  });
  h.files[FILE] = fileBytes("rb");
  assert.deepEqual(check(h).violations, []);
  assert.deepEqual(check(h).stats.ackedParts, { replies: 1, files: 1, removals: 0 });
});

Deno.test("check() reports a reply that lost its link or its file, and a file that changed", () => {
  const kept = msg(3, "b", "re", {
    files: [{ id: FILE, name: "rb.txt", size: 1, type: "text/plain" }],
  });
  const h = withReply(FILE).history([msg(1, "a", "m1"), msg(2, "a", "m2"), kept], {
    a: [0, 1],
    b: [0, 2],
  });
  h.files[FILE] = "other bytes";
  const v = check(h).violations;
  assert.ok(
    v.some((x) =>
      x.rule === "lost" && /#general #3 answers #nothing .* answering #1/.test(x.message)
    ),
    JSON.stringify(v),
  );
  assert.ok(v.some((x) => x.rule === "file" && /downloads as "other bytes"/.test(x.message)));
  const noFile = withReply(FILE).history(
    [
      msg(1, "a", "m1"),
      msg(2, "a", "m2"),
      msg(3, "b", "re", {
        replyTo: { id: 1, from: "a", snippet: "m1" },
      }),
    ],
    { a: [0, 1], b: [0, 2] },
  );
  assert.ok(
    check(noFile).violations.some((x) =>
      x.rule === "lost" &&
      /carries files \[\] in the final state, but b sent \[f+\]/.test(x.message)
    ),
  );
  const refused = withReply(FILE).history(
    [
      msg(1, "a", "m1"),
      msg(2, "a", "m2"),
      msg(3, "b", "re", {
        replyTo: { id: 1, from: "a", snippet: "m1" },
        files: [{ id: FILE, name: "rb.txt", size: 1, type: "text/plain" }],
      }),
    ],
    { a: [0, 1], b: [0, 2] },
  );
  refused.files[FILE] = 404;
  assert.ok(check(refused).violations.some((x) => /downloads as HTTP 404/.test(x.message)));
});

Deno.test("check() tells an admin's removal from a member's deletion of someone else's message", () => {
  const byAdmin = (client: string, removed: boolean) => {
    const s = clean();
    s.rec.add({
      kind: "out",
      client,
      conn: 1,
      frame: { type: "delete", room: "general", id: 1, ref: "d1" },
    });
    s.got(client, { type: "deleted", room: "general", id: 1, seq: 3, from: "a", ref: "d1" });
    const gone = msg(1, "a", "", { seq: 3, deleted: true, ...(removed ? { removed: true } : {}) });
    return s.history([gone, msg(2, "a", "m2")], { a: [0, 0], b: [0, 1] });
  };
  // b is no admin: a removal nobody who may asked for.
  const h = byAdmin("b", true);
  assert.ok(
    check(h).violations.some((x) =>
      x.rule === "unsent" && /#1 is removed by an admin but nobody who may asked/.test(x.message)
    ),
  );
  // A tombstone that says "deleted by its author" when only someone else asked.
  assert.ok(
    check(byAdmin("b", false)).violations.some((x) =>
      /#1 is deleted by its author but nobody who may asked/.test(x.message)
    ),
  );
});

Deno.test("check() reports a read marker that did not survive the final round trip", () => {
  const h = clean().history([msg(1, "a", "m1"), msg(2, "a", "m2")], { a: [0, 0], b: [1, 1] });
  h.entries.push({
    i: h.entries.length,
    t: 0,
    kind: "out",
    client: "b",
    conn: 1,
    frame: { type: "read", room: "general", id: 1 },
  });
  h.entries.push({
    i: h.entries.length,
    t: 0,
    kind: "out",
    client: "b",
    conn: 1,
    frame: { type: "read", room: "general", id: 2 },
  });
  h.finalReads = { b: { "#general": 2 } };
  assert.deepEqual(rules(h), ["read"]);
  assert.match(
    check(h).violations[0].message,
    /b set its read marker to 2 at the end and heard it back, but a fresh connection reads 1/,
  );
  h.finalReads = { b: { "#general": 1 } };
  assert.deepEqual(rules(h), []);
});
