import assert from "node:assert/strict";
import { charWidth, type Key, KeyDecoder, LineEditor, textWidth } from "../../client/editor.ts";

function type(ed: LineEditor, ...keys: (Key | string)[]): void {
  for (const k of keys) ed.handle(typeof k === "string" ? { name: "text", text: k } : k);
}

const k = (name: Exclude<Key["name"], "text">): Key => ({ name } as Key);

Deno.test("KeyDecoder.feed() turns raw input into keys", () => {
  const d = new KeyDecoder();
  assert.deepEqual(d.feed("hi"), [{ name: "text", text: "hi" }]);
  assert.deepEqual(d.feed("a\rb"), [
    { name: "text", text: "a" },
    { name: "enter" },
    { name: "text", text: "b" },
  ]);
  assert.deepEqual(d.feed("\x1b[D\x1b[C\x1b[A\x1b[B"), [k("left"), k("right"), k("up"), k("down")]);
  assert.deepEqual(d.feed("\x1b[H\x1b[F\x1b[1~\x1b[4~\x1b[3~"), [
    k("home"),
    k("end"),
    k("home"),
    k("end"),
    k("delete"),
  ]);
  assert.deepEqual(d.feed("\x1b[1;5D\x1bf"), [k("word-left"), k("word-right")]);
  assert.deepEqual(d.feed("\x7f\x08\x01\x05\x15\x0b\x17\x03\x04\x0c"), [
    k("backspace"),
    k("backspace"),
    k("home"),
    k("end"),
    k("kill-start"),
    k("kill-end"),
    k("kill-word"),
    k("interrupt"),
    k("eof"),
    k("redraw"),
  ]);
});

Deno.test("KeyDecoder.feed() keeps a sequence split across reads, and one Enter for CR LF", () => {
  const d = new KeyDecoder();
  assert.deepEqual(d.feed("x\x1b"), [{ name: "text", text: "x" }]);
  assert.deepEqual(d.feed("["), []);
  assert.deepEqual(d.feed("Dy"), [k("left"), { name: "text", text: "y" }]);
  assert.deepEqual(d.feed("a\r"), [{ name: "text", text: "a" }, k("enter")]);
  assert.deepEqual(d.feed("\nb"), [{ name: "text", text: "b" }], "LF after CR is the same Enter");
  assert.deepEqual(d.feed("\x1b[99~z"), [{ name: "text", text: "z" }], "unknown sequences vanish");
  // UTF-8 split in the middle of a character.
  const bytes = new TextEncoder().encode("é");
  assert.deepEqual(d.feed(bytes.subarray(0, 1)), []);
  assert.deepEqual(d.feed(bytes.subarray(1)), [{ name: "text", text: "é" }]);
});

Deno.test("LineEditor.handle() edits at the cursor", () => {
  const ed = new LineEditor();
  type(ed, "hello world");
  assert.equal(ed.cursor, 11);
  type(ed, k("word-left"), "big ");
  assert.equal(ed.text, "hello big world");
  type(ed, k("home"), k("delete"), "H", k("end"), k("backspace"), "D");
  assert.equal(ed.text, "Hello big worlD");
  type(ed, k("kill-word"));
  assert.equal(ed.text, "Hello big ");
  type(ed, k("left"), k("left"), k("kill-end"));
  assert.equal(ed.text, "Hello bi");
  type(ed, k("kill-start"));
  assert.equal(ed.text, "");
  assert.deepEqual(ed.handle(k("backspace")), { kind: "none" });
  assert.deepEqual(ed.handle(k("left")), { kind: "none" });
  type(ed, "añ😀b", k("left"), k("backspace"));
  assert.equal(ed.text, "añb", "an emoji is one character to delete");
});

Deno.test("LineEditor.handle() submits, recalls history, and reports Ctrl+C and Ctrl+D", () => {
  const ed = new LineEditor();
  type(ed, "first");
  assert.deepEqual(ed.handle(k("enter")), { kind: "submit", line: "first" });
  assert.equal(ed.text, "");
  type(ed, "second");
  ed.handle(k("enter"));
  type(ed, "draft");
  type(ed, k("up"));
  assert.equal(ed.text, "second");
  type(ed, k("up"));
  assert.equal(ed.text, "first");
  assert.deepEqual(ed.handle(k("up")), { kind: "none" }, "nothing older");
  type(ed, k("down"), k("down"));
  assert.equal(ed.text, "draft", "down past the newest brings the draft back");
  assert.deepEqual(ed.handle(k("interrupt")), { kind: "changed" }, "Ctrl+C clears a line");
  assert.equal(ed.text, "");
  assert.deepEqual(ed.handle(k("interrupt")), { kind: "interrupt" }, "…and quits on an empty one");
  assert.deepEqual(ed.handle(k("eof")), { kind: "eof" });
  type(ed, "ab", k("home"));
  assert.deepEqual(ed.handle(k("eof")), { kind: "changed" }, "Ctrl+D deletes under the cursor");
  assert.equal(ed.text, "b");
  assert.deepEqual(ed.handle(k("enter")), { kind: "submit", line: "b" });
  assert.deepEqual(ed.handle(k("enter")), { kind: "submit", line: "" });
});

Deno.test("LineEditor.render() scrolls long lines to keep the cursor in view", () => {
  const ed = new LineEditor();
  assert.deepEqual(ed.render("#general> ", 40), { line: "#general> ", cursor: 10 });
  type(ed, "0123456789".repeat(5));
  const end = ed.render("> ", 20);
  assert.equal(end.line, "> " + "0123456789".repeat(5).slice(-16));
  assert.equal(end.cursor, 18);
  assert.ok(end.line.length <= 19, "never wider than the terminal");
  type(ed, k("home"));
  const start = ed.render("> ", 20);
  assert.equal(start.line, "> 01234567890123456");
  assert.equal(start.cursor, 2);
  const wide = new LineEditor();
  type(wide, "日本");
  assert.deepEqual(wide.render("> ", 40), { line: "> 日本", cursor: 6 });
});

Deno.test("charWidth() counts wide and zero-width characters", () => {
  assert.equal(charWidth("a"), 1);
  assert.equal(charWidth("日"), 2);
  assert.equal(charWidth("😀"), 2);
  assert.equal(charWidth("\u0301"), 0);
  assert.equal(textWidth("e\u0301日"), 3);
});
