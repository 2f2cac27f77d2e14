/**
 * Markdown in messages without a browser: the description tree of
 * web/markdown.ts, and the elements `MessageText` makes of it (its virtual
 * DOM, written out as HTML by a tiny serializer that escapes text the way
 * the DOM shows it).
 */
import assert from "node:assert/strict";
import { Fragment, type VNode } from "preact";
import { type Block, CACHE_SIZE, type Inline, markdown } from "../web/markdown.ts";
import { MAX_DEPTH, MAX_MARKDOWN } from "../markdown.ts";
import { CodeBlock, MessageText } from "../web/components/message_text.tsx";

const KNOWN = new Set(["alice", "bob"]);

/** The message as HTML: text escaped, components by name with their props. */
function render(text: string, me: string | null = "bob"): string {
  return serialize(MessageText({ text, me, known: (n) => KNOWN.has(n.toLowerCase()) }));
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function serialize(node: unknown): string {
  if (node === null || node === undefined || typeof node === "boolean") return "";
  if (typeof node === "string" || typeof node === "number") return escape(String(node));
  if (Array.isArray(node)) return node.map(serialize).join("");
  const v = node as VNode<Record<string, unknown>>;
  const { children, ...props } = v.props;
  if (v.type === Fragment) return serialize(children);
  const name = typeof v.type === "string" ? v.type : v.type === CodeBlock ? "CodeBlock" : "?";
  const attrs = Object.entries(props)
    .filter(([, value]) => value !== undefined)
    .map(([k, value]) => ` ${k}="${escape(String(value))}"`)
    .join("");
  if (name === "br" || name === "hr") return `<${name}${attrs}>`;
  return `<${name}${attrs}>${serialize(children)}</${name}>`;
}

Deno.test("a message with no Markdown renders as plain text, with no element around it", () => {
  assert.equal(render("hello there"), "hello there");
  assert.equal(render("  two spaces kept"), "  two spaces kept");
  assert.deepEqual(markdown("hello there"), [
    { t: "p", children: [{ t: "text", text: "hello there" }] },
  ]);
});

Deno.test("single newlines are line breaks; blank lines stay as typed between paragraphs", () => {
  assert.equal(render("a\nb\nc"), "a<br>b<br>c");
  assert.deepEqual(markdown("a\nb"), [
    { t: "p", children: [{ t: "text", text: "a" }, { t: "br" }, { t: "text", text: "b" }] },
  ]);
  assert.equal(render("a\n\nb"), '<p class="md-p">a</p><p class="md-p md-gap1">b</p>');
  assert.equal(render("a\n\n\n\nb"), '<p class="md-p">a</p><p class="md-p md-gap3">b</p>');
  assert.equal(
    render("a" + "\n".repeat(20) + "b"),
    '<p class="md-p">a</p><p class="md-p md-gap6">b</p>',
    "the gap classes stop at 6 blank lines",
  );
  assert.deepEqual(markdown("a\n\n\nb").map((b) => b.gap), [undefined, 2]);
});

Deno.test("bold, italic, strikethrough and inline code", () => {
  assert.equal(render("**b**"), "<strong>b</strong>");
  assert.equal(
    render("__b__ *i* _i_ ~~s~~"),
    "<strong>b</strong> <em>i</em> <em>i</em> <del>s</del>",
  );
  assert.equal(render("***x***"), "<em><strong>x</strong></em>");
  assert.equal(
    render("a `<b>&amp;</b>` c"),
    'a <code class="md-code">&lt;b&gt;&amp;amp;&lt;/b&gt;</code> c',
  );
  assert.equal(render("\\*not bold\\*"), "*not bold*", "escaped markers are text");
  assert.equal(render("snake_case_name"), "snake_case_name", "no emphasis inside words");
});

Deno.test("raw HTML shows as typed text, never as markup", () => {
  assert.equal(render("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
  assert.deepEqual(markdown("<script>alert(1)</script>"), [
    { t: "p", children: [{ t: "text", text: "<script>alert(1)</script>" }] },
  ]);
  assert.equal(render("<img src=x onerror=alert(1)>"), "&lt;img src=x onerror=alert(1)&gt;");
  assert.equal(render("hi <b>there</b>"), "hi &lt;b&gt;there&lt;/b&gt;");
  assert.equal(
    render("<div>\n**x**\n</div>"),
    "&lt;div&gt;<br>**x**<br>&lt;/div&gt;",
    "an HTML block keeps its lines and its text as typed",
  );
  assert.equal(render("&amp; &lt;"), "&amp;amp; &amp;lt;", "entities are not decoded into markup");
});

Deno.test("links: http and https only, autolinked or [text](url); others stay text", () => {
  const ext = (href: string, text: string) =>
    `<a href="${href}" target="_blank" rel="noopener noreferrer">${text}</a>`;
  assert.equal(render("[x](https://x.org/a)"), ext("https://x.org/a", "x"));
  assert.equal(render("[**x**](http://x.org)"), ext("http://x.org/", "<strong>x</strong>"));
  assert.equal(
    render("see https://x.org/a_b."),
    `see ${ext("https://x.org/a_b", "https://x.org/a_b")}.`,
  );
  assert.equal(render("<https://x.org>"), ext("https://x.org/", "https://x.org"));
  assert.equal(render("www.x.org"), ext("http://www.x.org/", "www.x.org"));
  assert.equal(
    render("(see https://en.wikipedia.org/wiki/Deno_(software))"),
    `(see ${
      ext(
        "https://en.wikipedia.org/wiki/Deno_(software)",
        "https://en.wikipedia.org/wiki/Deno_(software)",
      )
    })`,
  );
  for (
    const text of [
      "[x](javascript:alert(1))",
      "[x](JavaScript:alert(1))",
      "[x](data:text/html,<b>x</b>)",
      "[x](vbscript:msgbox(1))",
      "[x](file:///etc/passwd)",
      "[x](/relative)",
      "[x](#/general)",
      "[x](//evil.example)",
      "<javascript:alert(1)>",
      "javascript:alert(1)",
      "mail bob@example.com",
      "![x](javascript:alert(1))",
    ]
  ) {
    assert.equal(render(text), escape(text), `${text} stays text`);
  }
  assert.deepEqual(markdown("[x](javascript:alert(1))"), [
    { t: "p", children: [{ t: "text", text: "[x](javascript:alert(1))" }] },
  ]);
});

Deno.test("images are links to the image, never <img>", () => {
  const a = '<a href="https://x.org/c.png" target="_blank" rel="noopener noreferrer">';
  assert.equal(render("![a cat](https://x.org/c.png)"), `${a}a cat</a>`);
  assert.equal(render("![](https://x.org/c.png)"), `${a}https://x.org/c.png</a>`);
});

Deno.test("links to this chat open in the same tab", () => {
  const location = { origin: "https://chat.example" };
  Object.defineProperty(globalThis, "location", { value: location, configurable: true });
  try {
    assert.equal(
      render("look https://chat.example/#/general/5"),
      'look <a href="https://chat.example/#/general/5">https://chat.example/#/general/5</a>',
    );
  } finally {
    delete (globalThis as { location?: unknown }).location;
  }
});

Deno.test("mentions work inside Markdown, only for people who exist", () => {
  assert.equal(
    render("**bold @alice**"),
    '<strong>bold <span class="mention">@alice</span></strong>',
  );
  assert.deepEqual(markdown("**bold @alice**"), [{
    t: "p",
    children: [{
      t: "strong",
      children: [{ t: "text", text: "bold " }, { t: "mention", name: "alice", text: "@alice" }],
    }],
  }]);
  assert.equal(render("hi @Bob"), 'hi <span class="mention self">@Bob</span>', "mine");
  assert.equal(render("hi @nobody"), "hi @nobody");
  assert.equal(
    serialize(MessageText({ text: "hi @nobody", me: null })),
    'hi <span class="mention">@nobody</span>',
    "without known(), every @name is a mention (a message being sent)",
  );
  assert.equal(
    render("- ~~@alice~~"),
    '<ul class="md-list"><li><del><span class="mention">@alice</span></del></li></ul>',
  );
  assert.equal(render("`@alice`"), '<code class="md-code">@alice</code>', "not in code");
  assert.equal(
    render("[@alice](https://x.org)"),
    '<a href="https://x.org/" target="_blank" rel="noopener noreferrer">@alice</a>',
    "not in a link",
  );
  assert.equal(render("alice@example.com"), "alice@example.com", "an address is no mention");
});

Deno.test("fenced code blocks keep their text verbatim and their language", () => {
  const code = "let a = '<b>**x**</b>';\n\n    @alice https://x.org\n";
  const text = "```ts\n" + code + "```";
  assert.deepEqual(markdown(text), [{ t: "pre", text: code.slice(0, -1), lang: "ts" }]);
  assert.equal(
    render(text),
    `<CodeBlock text="${escape(code.slice(0, -1))}" lang="ts" class="md-pre"></CodeBlock>`,
  );
  assert.deepEqual(markdown('~~~js title="x"\nx\n~~~'), [{ t: "pre", text: "x", lang: "js" }]);
  assert.deepEqual(markdown("```\nx"), [{ t: "pre", text: "x", lang: "" }], "unclosed: to the end");
  assert.deepEqual(markdown("before\n```\nx\n```\nafter").map((b) => [b.t, b.gap]), [
    ["p", undefined],
    ["pre", undefined],
    ["p", undefined],
  ]);
});

Deno.test("indented lines are text as typed, not code", () => {
  assert.equal(render("    indented line"), "    indented line");
  assert.equal(render("x\n    y"), "x<br>y");
});

Deno.test("block quotes and lists", () => {
  assert.equal(
    render("> quoted\n> more"),
    '<blockquote class="md-quote">quoted<br>more</blockquote>',
  );
  assert.equal(
    render("> q\n\nafter"),
    '<blockquote class="md-quote">q</blockquote><p class="md-p md-gap1">after</p>',
  );
  assert.equal(render("- a\n- *b*"), '<ul class="md-list"><li>a</li><li><em>b</em></li></ul>');
  assert.equal(render("1. x\n2. y"), '<ol class="md-list" start="1"><li>x</li><li>y</li></ol>');
  assert.equal(render("3) x"), '<ol class="md-list" start="3"><li>x</li></ol>');
  assert.equal(
    render("- a\n\n- b\n\n  more"),
    '<ul class="md-list"><li>a</li><li class="md-gap1"><p class="md-p">b</p><p class="md-p md-gap1">more</p></li></ul>',
  );
  assert.equal(
    render("intro\n- a\n- b"),
    '<p class="md-p">intro</p><ul class="md-list"><li>a</li><li>b</li></ul>',
  );
  assert.equal(
    render("- [ ] todo\n- [x] done"),
    '<ul class="md-list"><li>☐ todo</li><li>☑ done</li></ul>',
  );
});

Deno.test("headings are bold lines; rules, tables and definitions stay compact", () => {
  assert.equal(render("# Title"), "<strong>Title</strong>");
  assert.equal(
    render("## Title\nbody"),
    '<p class="md-p"><strong>Title</strong></p><p class="md-p">body</p>',
  );
  assert.equal(
    render("a\n\n---\n\nb"),
    '<p class="md-p">a</p><hr class="md-hr md-gap1"><p class="md-p md-gap1">b</p>',
  );
  assert.equal(render("| a | b |\n|---|---|\n| 1 | 2 |"), "| a | b |<br>|---|---|<br>| 1 | 2 |");
  assert.equal(
    render("[1]: https://x.org"),
    '[1]: <a href="https://x.org/" target="_blank" rel="noopener noreferrer">https://x.org</a>',
    "a link definition shows as typed, its link usable",
  );
});

Deno.test("markdown() caches trees per text and forgets the least recently used", () => {
  const first = markdown("cached *text*");
  assert.equal(markdown("cached *text*"), first, "same tree");
  for (let i = 0; i < CACHE_SIZE - 1; i++) markdown(`filler ${i}`);
  assert.equal(markdown("cached *text*"), first, "used again: kept");
  for (let i = 0; i < CACHE_SIZE; i++) markdown(`more filler ${i}`);
  const again = markdown("cached *text*");
  assert.notEqual(again, first, "evicted");
  assert.deepEqual(again, first);
});

/** Every character of the text the tree shows (br as a newline). */
function shown(tree: Block[] | Inline[]): string {
  return tree.map((n): string => {
    switch (n.t) {
      case "text":
      case "code":
      case "mention":
        return n.text;
      case "br":
        return "\n";
      case "pre":
        return n.text;
      case "hr":
        return "";
      case "list":
        return n.items.map((item) => shown(item.children)).join("");
      default:
        return shown(n.children);
    }
  }).join("");
}

/** How deep the tree nests. */
function depth(tree: Block[] | Inline[]): number {
  return Math.max(
    0,
    ...tree.map((n): number =>
      n.t === "list"
        ? 1 + Math.max(...n.items.map((item) => depth(item.children)))
        : "children" in n
        ? 1 + depth(n.children)
        : 1
    ),
  );
}

Deno.test("shapes that would take the parser quadratic time or overflow its stack show as typed", () => {
  const n = 50_000;
  const long = "a ".repeat(MAX_MARKDOWN / 2 - 2) + "**b**";
  for (
    const text of [
      ">".repeat(n),
      "- ".repeat(n) + "a",
      "*".repeat(n) + "x" + "*".repeat(n),
      "ok\n" + "> ".repeat(2 * MAX_DEPTH + 1) + "a",
      "ok\n  " + "1. ".repeat(2 * MAX_DEPTH + 1) + "a",
      "_".repeat(257) + "a" + "_".repeat(257),
      long,
    ]
  ) {
    assert.deepEqual(markdown(text), [{ t: "p", children: plain(text) }], text.slice(0, 20));
  }
  assert.deepEqual(markdown("> ".repeat(n) + "\n@alice"), [{
    t: "p",
    children: [
      { t: "text", text: "> ".repeat(n) },
      { t: "br" },
      { t: "mention", name: "alice", text: "@alice" },
    ],
  }]);
  // Just below: Markdown, nesting capped.
  assert.equal(markdown("> ".repeat(2 * MAX_DEPTH) + "a")[0].t, "quote");
  const banner = "/" + "*".repeat(256) + "/";
  assert.deepEqual(markdown("```c\n" + banner + "\n```"), [{ t: "pre", text: banner, lang: "c" }]);
  assert.equal(markdown(long.slice(1))[0].t, "p");
  assert.ok(JSON.stringify(markdown(long.slice(1))).includes('"strong"'));
});

/** A line of plain text as the tree has it. */
function plain(text: string): Inline[] {
  return text.split("\n").flatMap((line, i): Inline[] => [
    ...(i > 0 ? [{ t: "br" } as const] : []),
    ...(line === "" ? [] : [{ t: "text", text: line } as const]),
  ]);
}

Deno.test("nesting stops at MAX_DEPTH; deeper text shows as typed", () => {
  const quotes = markdown("> ".repeat(MAX_DEPTH + 4) + "deep");
  assert.equal(depth(quotes), MAX_DEPTH + 2, "MAX_DEPTH quotes around a paragraph of text");
  assert.equal(shown(quotes), "> ".repeat(4) + "deep");
  const list = Array.from({ length: 20 }, (_, i) => "  ".repeat(i) + `- ${i}`).join("\n");
  assert.ok(depth(markdown(list)) <= 2 * MAX_DEPTH + 1);
  const stars = "*".repeat(300) + "x" + "*".repeat(300);
  const tree = markdown(stars);
  assert.ok(depth(tree) <= MAX_DEPTH + 2, `depth ${depth(tree)}`);
  assert.equal(shown(tree).replaceAll("*", ""), "x");
});

Deno.test("pathological input of the largest message size parses and keeps its text", () => {
  const n = 4096;
  for (
    const text of [
      "*a".repeat(n / 2),
      "[".repeat(n),
      "[a](".repeat(n / 4),
      "<".repeat(n),
      "http://a/" + ")".repeat(n),
      "@".repeat(n),
      "*_~[<".repeat(n / 5),
    ]
  ) {
    assert.equal(
      shown(markdown(text)).replace(/[*_~]/g, ""),
      text.replace(/[*_~]/g, ""),
      text.slice(0, 12),
    );
  }
});
