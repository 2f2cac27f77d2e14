import assert from "node:assert/strict";
import { highlight, mentions, safeHref, segments } from "../web/text.ts";
import { mergeMessages } from "../web/conversation.ts";

Deno.test("segments() finds links and mentions and leaves markup as text", () => {
  assert.deepEqual(segments("hi @bob, see https://example.com/a?b=1.", "bob"), [
    { kind: "text", text: "hi " },
    { kind: "mention", text: "@bob", name: "bob", me: true },
    { kind: "text", text: ", see " },
    { kind: "link", text: "https://example.com/a?b=1", href: "https://example.com/a?b=1" },
    { kind: "text", text: "." },
  ]);
  assert.deepEqual(segments('<img src=x onerror="alert(1)">', "bob"), [
    { kind: "text", text: '<img src=x onerror="alert(1)">' },
  ]);
  assert.deepEqual(segments("mail alice@example.com"), [
    { kind: "text", text: "mail alice@example.com" },
  ], "an address is not a mention");
  assert.deepEqual(segments("javascript:alert(1) and ftp://x.org"), [
    { kind: "text", text: "javascript:alert(1) and ftp://x.org" },
  ], "only http and https become links");
  assert.deepEqual(
    segments("(see https://en.wikipedia.org/wiki/Deno_(software))").map((s) => s.text),
    ["(see ", "https://en.wikipedia.org/wiki/Deno_(software)", ")"],
  );
  assert.deepEqual(segments("@Carol", "carol"), [
    { kind: "mention", text: "@Carol", name: "Carol", me: true },
  ]);
});

Deno.test("mentions() matches @name only, case-insensitively", () => {
  assert.equal(mentions("ping @Bob", "bob"), true);
  assert.equal(mentions("ping @bobby", "bob"), false);
  assert.equal(mentions("bob@example.com", "bob"), false);
  assert.equal(mentions("ping @bob", null), false);
});

Deno.test("safeHref() accepts http and https only", () => {
  assert.equal(safeHref("https://example.com"), "https://example.com/");
  assert.equal(safeHref("javascript:alert(1)"), null);
  assert.equal(safeHref("not a url"), null);
});

Deno.test("highlight() splits around query words", () => {
  assert.deepEqual(highlight("Deploy the deploy", "deploy"), ["", "Deploy", " the ", "deploy", ""]);
  assert.deepEqual(highlight("a.b", "."), ["a", ".", "b"], "regex characters are literal");
  assert.deepEqual(highlight("abc", "  "), ["abc"]);
});

Deno.test("mergeMessages() keeps id order and drops duplicates", () => {
  const m = (id: number) => ({ id, room: "r", from: "a", text: `${id}`, ts: "" });
  const list = [m(3), m(4)];
  assert.equal(mergeMessages(list, []), list);
  assert.equal(mergeMessages(list, [m(3)]), list, "nothing new: same array");
  assert.deepEqual(mergeMessages(list, [m(5), m(6)]).map((x) => x.id), [3, 4, 5, 6]);
  assert.deepEqual(mergeMessages(list, [m(1), m(2), m(4), m(5)]).map((x) => x.id), [1, 2, 3, 4, 5]);
  const withRef = mergeMessages([], [{ ...m(1), ref: "c1", type: "message" } as never]);
  assert.deepEqual(withRef[0], m(1), "the stored copy has no ref or type");
});
