import assert from "node:assert/strict";
import { complete, type CompletionContext } from "../../client/commands.ts";
import { type Key, LineEditor } from "../../client/editor.ts";

const CTX: CompletionContext = {
  me: "alice",
  here: ["bob", "bea", "alice", "Carl"],
  others: ["bert", "bob", "dave", "alice"],
  rooms: ["dev", "design", "general"],
  everyone: true,
  admin: false,
};

/** The options Tab has for `before`, or null. */
function options(before: string, ctx: Partial<CompletionContext> = {}): string[] | null {
  return complete(before, { ...CTX, ...ctx })?.options ?? null;
}

Deno.test("complete() offers @names: the conversation's people first, then others, then @room", () => {
  assert.deepEqual(options("hi @b"), ["@bea ", "@bob ", "@bert "]);
  assert.deepEqual(complete("hi @b", CTX)?.word, "@b");
  assert.deepEqual(options("@"), ["@bea ", "@bob ", "@Carl ", "@bert ", "@dave ", "@room "]);
  assert.deepEqual(options("@c"), ["@Carl "], "ignoring case");
  assert.deepEqual(options("@C"), ["@Carl "]);
  assert.deepEqual(options("@r"), ["@room "]);
  assert.deepEqual(
    options("@r", { everyone: false }),
    [],
    "no @room in a DM, nor in a room too large for the user's @room",
  );
  assert.deepEqual(options("@al"), [], "never oneself");
  assert.deepEqual(options("@zed"), []);
});

Deno.test("complete() follows the mention rule: no addresses, links or finished words", () => {
  assert.equal(options("mail bob@b"), null, "an address");
  assert.equal(options("@@b"), null);
  assert.equal(options("see https://x.org/@b"), null, "a link");
  assert.equal(options("hi @bob "), null, "after the space the word is over");
  assert.equal(options("hi bob"), null);
  assert.deepEqual(options("(@b"), ["@bea ", "@bob ", "@bert "], "after punctuation");
  assert.deepEqual(
    options("é@b"),
    ["@bea ", "@bob ", "@bert "],
    "after a non-ASCII letter, as in segments()",
  );
  assert.equal(options("@" + "b".repeat(33)), null, "longer than a name");
});

Deno.test("complete() offers commands, rooms after /join and /leave, and people after /dm", () => {
  assert.deepEqual(options("/"), [
    "/delete ",
    "/dm ",
    "/download ",
    "/edit ",
    "/help ",
    "/history ",
    "/ids ",
    "/invite ",
    "/join ",
    "/leave ",
    "/passwd ",
    "/quit ",
    "/react ",
    "/reply ",
    "/rooms ",
    "/search ",
    "/upload ",
    "/who ",
  ]);
  assert.deepEqual(options("/d"), ["/delete ", "/dm ", "/download "]);
  assert.deepEqual(options("/J"), ["/join "]);
  assert.deepEqual(options("/k"), [], "admins' commands only for admins");
  assert.deepEqual(options("/k", { admin: true }), ["/kick "]);
  assert.deepEqual(options("/r", { admin: true }), [
    "/react ",
    "/readonly ",
    "/rename ",
    "/reply ",
    "/rooms ",
  ]);
  assert.deepEqual(options("/join d"), ["design ", "dev "]);
  assert.deepEqual(options("/join #de"), ["design ", "dev "]);
  assert.equal(complete("/join #de", CTX)?.word, "#de");
  assert.deepEqual(options("/leave g"), ["general "]);
  assert.deepEqual(options("/dm b"), ["bea ", "bob ", "bert "]);
  assert.deepEqual(options("/invite d"), ["dave "]);
  assert.deepEqual(options("/dm bob hi @be"), ["@bea ", "@bert "], "mentions in a DM's text");
  assert.equal(options("/search @b"), null, "no mentions in other commands' arguments");
  assert.deepEqual(options("//hi @bo"), ["@bob "], "a message starting with /");
});

function press(ed: LineEditor, ...keys: (Key | string)[]) {
  return keys.map((k) => ed.handle(typeof k === "string" ? { name: "text", text: k } : k));
}
const TAB: Key = { name: "tab" };

Deno.test("LineEditor: Tab puts in a unique match with a space, and goes through several", () => {
  const ed = new LineEditor({ complete: (before) => complete(before, CTX) });
  press(ed, "hi @bo");
  assert.deepEqual(press(ed, TAB), [
    { kind: "completed", options: ["@bob "], index: 0, again: false },
  ]);
  assert.equal(ed.text, "hi @bob ");
  assert.deepEqual(press(ed, TAB), [{ kind: "none" }], "nothing more to complete");
  assert.equal(ed.text, "hi @bob ");

  ed.set("hi @b");
  const first = press(ed, TAB)[0];
  assert.deepEqual(first, {
    kind: "completed",
    options: ["@bea ", "@bob ", "@bert "],
    index: 0,
    again: false,
  });
  assert.equal(ed.text, "hi @bea ");
  press(ed, TAB);
  assert.equal(ed.text, "hi @bob ");
  press(ed, TAB);
  assert.equal(ed.text, "hi @bert ");
  assert.deepEqual(press(ed, TAB), [
    { kind: "completed", options: ["@bea ", "@bob ", "@bert "], index: 0, again: true },
  ]);
  assert.equal(ed.text, "hi @bea ", "round and round");
  press(ed, "there");
  assert.equal(ed.text, "hi @bea there");
  press(ed, TAB);
  assert.equal(ed.text, "hi @bea there", "typing ends the round");

  // In the middle of a line: the text after the cursor stays, and the cursor follows.
  ed.set("hey  how are you");
  for (let i = 0; i < 12; i++) ed.handle({ name: "left" });
  press(ed, "@c", TAB);
  assert.equal(ed.text, "hey @Carl  how are you");
  assert.equal(ed.cursor, "hey @Carl ".length);

  // Wide characters before the word count as one each.
  ed.set("🎉 @be");
  press(ed, TAB, TAB);
  assert.equal(ed.text, "🎉 @bert ");

  // Without a completer (the password question), Tab does nothing.
  const plain = new LineEditor();
  press(plain, "@b");
  assert.deepEqual(press(plain, TAB), [{ kind: "none" }]);
  assert.equal(plain.text, "@b");
});
