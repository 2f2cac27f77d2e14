import assert from "node:assert/strict";
import {
  highlight,
  insertMention,
  mentionAt,
  mentions,
  rankNames,
  safeHref,
  segments,
} from "../web/text.ts";
import { mentionsIn } from "../protocol.ts";
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

/** Each segment as `[kind, text]`, for compact expectations. */
function kinds(text: string): [string, string][] {
  return segments(text).map((s) => [s.kind, s.text]);
}

Deno.test("segments() trims sentence punctuation after a link and keeps balanced parentheses", () => {
  const x = "https://x.org";
  assert.deepEqual(kinds(`see ${x}.`), [["text", "see "], ["link", x], ["text", "."]]);
  assert.deepEqual(kinds(`${x}/a?!...,;:`), [["link", `${x}/a`], ["text", "?!...,;:"]]);
  assert.deepEqual(kinds(`${x}/a.b,c`), [["link", `${x}/a.b,c`]], "inner punctuation stays");
  assert.deepEqual(kinds(`${x}/a}.>`), [["link", `${x}/a`], ["text", "}.>"]]);
  assert.deepEqual(kinds(`(${x}/a)`), [["text", "("], ["link", `${x}/a`], ["text", ")"]]);
  assert.deepEqual(kinds(`${x}/A_(b)).`), [["link", `${x}/A_(b)`], ["text", ")."]]);
  assert.deepEqual(kinds(`${x}/((a)).`), [["link", `${x}/((a))`], ["text", "."]]);
  assert.deepEqual(kinds(`${x}/(a).)`), [["link", `${x}/(a)`], ["text", ".)"]]);
  assert.deepEqual(kinds(`${x}/(a.)`), [["link", `${x}/(a.)`]], "a kept ) keeps what is before it");
  assert.deepEqual(kinds(`${x}/a)b)`), [["link", `${x}/a)b`], ["text", ")"]], "only the end");
  assert.deepEqual(kinds(`${x}/((a)`), [["link", `${x}/((a)`]], "an unclosed ( stays");
  assert.deepEqual(kinds(`${x}/a). @bob`), [
    ["link", `${x}/a`],
    ["text", "). "],
    ["mention", "@bob"],
  ]);
});

Deno.test("segments() gives sensible output on adversarial input", () => {
  const n = 50_000;
  assert.deepEqual(kinds("https://a.io/" + ")".repeat(n)), [
    ["link", "https://a.io/"],
    ["text", ")".repeat(n)],
  ]);
  assert.deepEqual(kinds("http://a/" + "(.)".repeat(n) + ")".repeat(n)), [
    ["link", "http://a/" + "(.)".repeat(n)],
    ["text", ")".repeat(n)],
  ]);
  assert.deepEqual(kinds("(".repeat(n) + "http://a/b" + ")".repeat(n)), [
    ["text", "(".repeat(n)],
    ["link", "http://a/b"],
    ["text", ")".repeat(n)],
  ]);
  const open = "http://a/" + "(".repeat(n);
  assert.deepEqual(kinds(open), [["link", open]]);
  const dots = "http://a/" + ".".repeat(n) + "x";
  assert.deepEqual(kinds(dots), [["link", dots]]);
  assert.deepEqual(kinds("http://a/" + ".)".repeat(n)), [
    ["link", "http://a/"],
    ["text", ".)".repeat(n)],
  ]);
  assert.deepEqual(kinds("@".repeat(n)), [["text", "@".repeat(n)]]);
  assert.deepEqual(kinds("http:// ".repeat(n)), [["text", "http:// ".repeat(n)]]);
  assert.deepEqual(kinds("http://".repeat(n)), [["link", "http://".repeat(n)]]);
  const links = segments("http://a.io/(b). ".repeat(n)).filter((s) => s.kind === "link");
  assert.equal(links.length, n);
  assert.equal(links[0].text, "http://a.io/(b)");
  assert.equal(segments("@a ".repeat(n)).filter((s) => s.kind === "mention").length, n);
});

type Method = (this: unknown, ...args: unknown[]) => unknown;

/**
 * Runs `fn` and returns how many characters it handed to string and regex
 * built-ins: a substring costs its length, a character read 1, a regex
 * search the span from where it started to where it stopped, and any other
 * string method the length of its string. Code that re-slices, re-splits or
 * re-matches its input shows up here deterministically, unlike in a timing;
 * reads by index (`s[i]`) are not counted.
 */
function builtinWork(fn: () => void): number {
  const substring = new Set(["slice", "substring", "substr"]);
  const char = new Set(["at", "charAt", "charCodeAt", "codePointAt"]);
  let work = 0;
  const undo: (() => void)[] = [];
  const patch = (target: object, name: string, wrapper: (original: Method) => Method) => {
    const methods = target as Record<string, Method>;
    const original = methods[name];
    methods[name] = wrapper(original);
    undo.push(() => methods[name] = original);
  };
  for (const name of Object.getOwnPropertyNames(String.prototype)) {
    const value = (String.prototype as unknown as Record<string, unknown>)[name];
    if (typeof value !== "function" || ["constructor", "toString", "valueOf"].includes(name)) {
      continue;
    }
    patch(String.prototype, name, (original) =>
      function (this: unknown, ...args: unknown[]) {
        const result = original.apply(this, args);
        const own = typeof this === "string" ? this.length : 0;
        work += substring.has(name) ? (result as string).length : char.has(name) ? 1 : own;
        return result;
      });
  }
  patch(RegExp.prototype, "exec", (original) =>
    function (this: unknown, ...args: unknown[]) {
      const re = this as RegExp;
      const start = re.global || re.sticky ? re.lastIndex : 0;
      const match = original.apply(this, args) as RegExpExecArray | null;
      const stop = match ? match.index + match[0].length : (args[0] as string).length;
      work += Math.max(1, stop - start);
      return match;
    });
  try {
    fn();
  } finally {
    for (const restore of undo) restore();
  }
  return work;
}

Deno.test("segments() does work linear in the length of adversarial input", () => {
  const shapes: Record<string, (n: number) => string> = {
    "link + )": (n) => "https://a.io/" + ")".repeat(n),
    "link + (.) + )": (n) => "http://a/" + "(.)".repeat(n) + ")".repeat(n),
    "link + .)": (n) => "http://a/" + ".)".repeat(n),
    "link + . + x": (n) => "http://a/" + ".".repeat(n) + "x",
    "( + link + )": (n) => "(".repeat(n) + "http://a" + ")".repeat(n),
    "link + (": (n) => "http://a/" + "(".repeat(n),
    "@": (n) => "@".repeat(n),
    "@a": (n) => "@a ".repeat(n),
    "http://": (n) => "http://".repeat(n),
    "http:// + space": (n) => "http:// ".repeat(n),
    "links": (n) => "http://a.io/(b). @a ".repeat(n),
  };
  for (const [name, shape] of Object.entries(shapes)) {
    for (const n of [1_000, 20_000]) {
      const text = shape(n);
      const work = builtinWork(() => segments(text, "a"));
      assert.ok(
        work <= 40 * text.length,
        `"${name}" x ${n}: ${work} units of work for ${text.length} characters`,
      );
    }
  }
});

Deno.test("mentions() matches @name only, case-insensitively", () => {
  assert.equal(mentions("ping @Bob", "bob"), true);
  assert.equal(mentions("ping @bobby", "bob"), false);
  assert.equal(mentions("bob@example.com", "bob"), false);
  assert.equal(mentions("ping @bob", null), false);
});

/** The names `segments()` shows as mentions, lower case, each once. */
function shown(text: string): string[] {
  const names = segments(text).flatMap((s) => s.kind === "mention" ? [s.name.toLowerCase()] : []);
  return [...new Set(names)];
}

Deno.test("segments() and mentionsIn() follow the one mention rule", async (t) => {
  const cases: [string, string[], boolean][] = [
    ["mail a@b.c or alice@example.com", [], false],
    ['hi @bob, @carol. @dave! @erin? (@finn) @gus: [@hal] "@ida" @jo;', [
      "bob",
      "carol",
      "dave",
      "erin",
      "finn",
      "gus",
      "hal",
      "ida",
      "jo",
    ], false],
    ["@room and @here", [], true],
    ["@Room", [], true],
    ["@roomy @rooms", ["roomy", "rooms"], false],
    ["@@bob @", [], false],
    ["https://x.org/@bob and http://y.org/a@carol", [], false],
    ["see https://x.org/ @bob", ["bob"], false],
    [`@${"a".repeat(32)}`, ["a".repeat(32)], false],
    [`@${"a".repeat(33)}`, [], false],
    ["@bob-smith @bob_2 @BOB", ["bob-smith", "bob_2", "bob"], false],
    ["@bob's @bob’s «@bob» 日本@bob", ["bob"], false],
    ["@bob\n@carol\t@dave", ["bob", "carol", "dave"], false],
    ["x@bob _@bob 9@bob", [], false],
    ["@bobé", ["bob"], false],
  ];
  for (const [text, names, room] of cases) {
    await t.step(JSON.stringify(text), () => {
      const found = mentionsIn(text);
      assert.deepEqual(found.names, names);
      assert.equal(found.room, room);
      // segments() shows @room and @here as mentions too; mentionsIn() says "room" for them.
      const everyone = ["room", "here"].filter((r) => new RegExp(`@${r}\\b`, "i").test(text));
      assert.deepEqual(shown(text).sort(), [...names, ...everyone].sort());
    });
  }
});

Deno.test("mentionAt() finds the mention being typed at the caret, by the same rule", () => {
  assert.deepEqual(mentionAt("@", 1), { start: 0, query: "" });
  assert.deepEqual(mentionAt("hi @bo", 6), { start: 3, query: "bo" });
  assert.deepEqual(mentionAt("hi @bo there", 6), { start: 3, query: "bo" });
  assert.deepEqual(mentionAt("hi @bob", 5), { start: 3, query: "b" }, "the caret inside a name");
  assert.deepEqual(mentionAt("(@b", 3), { start: 1, query: "b" });
  assert.deepEqual(mentionAt("line\n@b", 7), { start: 5, query: "b" });
  assert.equal(mentionAt("hi @bob ", 8), null, "the name is over");
  assert.equal(mentionAt("hi bob", 6), null);
  assert.equal(mentionAt("mail bob@ex", 11), null, "an address");
  assert.equal(mentionAt("@@b", 3), null);
  assert.equal(mentionAt("https://x.org/@b", 16), null, "a link");
  assert.equal(mentionAt("@" + "b".repeat(33), 34), null, "longer than a name");
  assert.deepEqual(mentionAt("x ".repeat(50) + "@" + "b".repeat(32), 133), {
    start: 100,
    query: "b".repeat(32),
  });
  assert.equal(mentionAt("a" + "@" + "b".repeat(32), 34), null, "what is before the look-back");
  const long = "x".repeat(100_000) + " @b";
  assert.deepEqual(mentionAt(long, long.length), { start: 100_001, query: "b" });
});

Deno.test("insertMention() puts the whole name in, with one space, and says where the caret goes", () => {
  assert.deepEqual(insertMention("hi @b", 3, "bob"), { text: "hi @bob ", caret: 8 });
  assert.deepEqual(insertMention("hi @bo there", 3, "bob"), { text: "hi @bob there", caret: 8 });
  assert.deepEqual(insertMention("hi @bxx, ok", 3, "bob"), { text: "hi @bob , ok", caret: 8 });
  assert.deepEqual(insertMention("@", 0, "room"), { text: "@room ", caret: 6 });
});

Deno.test("rankNames() puts prefixes first, then online people, then by name", () => {
  const people = [
    { name: "rob" },
    { name: "bob" },
    { name: "Bea", online: true },
    { name: "abby", online: true },
    { name: "carl" },
    { name: "bert" },
  ];
  assert.deepEqual(rankNames("b", people).map((p) => p.name), [
    "Bea",
    "bert",
    "bob",
    "abby",
    "rob",
  ]);
  assert.deepEqual(rankNames("B", people).map((p) => p.name), [
    "Bea",
    "bert",
    "bob",
    "abby",
    "rob",
  ]);
  assert.deepEqual(rankNames("", people).map((p) => p.name), [
    "abby",
    "Bea",
    "bert",
    "bob",
    "carl",
    "rob",
  ]);
  assert.deepEqual(rankNames("b", people, 2).map((p) => p.name), ["Bea", "bert"]);
  assert.deepEqual(rankNames("z", people), []);
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
  const m = (id: number) => ({ id, seq: id, room: "r", from: "a", text: `${id}`, ts: "" });
  const list = [m(3), m(4)];
  assert.equal(mergeMessages(list, []), list);
  assert.equal(mergeMessages(list, [m(3)]), list, "nothing new: same array");
  assert.deepEqual(mergeMessages(list, [m(5), m(6)]).map((x) => x.id), [3, 4, 5, 6]);
  assert.deepEqual(mergeMessages(list, [m(1), m(2), m(4), m(5)]).map((x) => x.id), [1, 2, 3, 4, 5]);
  const withRef = mergeMessages([], [{ ...m(1), ref: "c1", type: "message" } as never]);
  assert.deepEqual(withRef[0], m(1), "the stored copy has no ref or type");
});
