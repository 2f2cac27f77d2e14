import assert from "node:assert/strict";
import { plainText, renderMarkdown, strip } from "../../client/markdown.ts";

const B = ["\x1b[1m", "\x1b[22m"];
const I = ["\x1b[3m", "\x1b[23m"];
const S = ["\x1b[9m", "\x1b[29m"];
const C = ["\x1b[36m", "\x1b[39m"];
const U = ["\x1b[4m", "\x1b[24m"];
const D = ["\x1b[2m", "\x1b[22m"];
const dim = (t: string) => D[0] + t + D[1];

/** Every escape sequence in `lines` is one of the renderer's styles. */
function onlyStyles(lines: string[]): void {
  for (const line of lines) {
    // deno-lint-ignore no-control-regex
    const rest = line.replace(/\x1b\[(?:1|2|3|4|9|22|23|24|29|36|39)m/g, "");
    // deno-lint-ignore no-control-regex
    assert.ok(!/[\x00-\x08\x0a-\x1f\x7f-\x9f]/.test(rest), JSON.stringify(line));
  }
}

Deno.test("renderMarkdown() styles bold, italic, strikethrough and inline code", () => {
  assert.deepEqual(
    renderMarkdown("**bold** _it_ *also* ~~gone~~ `a<b>&c` plain"),
    [
      `${B[0]}bold${B[1]} ${I[0]}it${I[1]} ${I[0]}also${I[1]} ${S[0]}gone${S[1]} ${C[0]}a<b>&c${
        C[1]
      } plain`,
    ],
  );
  assert.deepEqual(renderMarkdown("**bold _and it_**"), [
    `${B[0]}bold ${I[0]}and it${I[1]}${B[1]}`,
  ]);
  assert.deepEqual(renderMarkdown("\\*not italic\\* 2 * 3"), ["*not italic* 2 * 3"]);
});

Deno.test("renderMarkdown() shows links as text (url), once when the text is the url", () => {
  assert.deepEqual(renderMarkdown("see [the docs](https://example.com/docs)"), [
    `see the docs (${U[0]}https://example.com/docs${U[1]})`,
  ]);
  assert.deepEqual(renderMarkdown("at https://example.com and <http://a.test/x>"), [
    `at ${U[0]}https://example.com${U[1]} and ${U[0]}http://a.test/x${U[1]}`,
  ]);
  assert.deepEqual(renderMarkdown("[https://a.test](https://a.test)"), [
    `${U[0]}https://a.test${U[1]}`,
  ]);
  // Only http and https are links: anything else shows its text alone.
  assert.deepEqual(renderMarkdown("[click](javascript:alert(1)) [f](file:///etc/passwd)"), [
    "click f",
  ]);
  assert.deepEqual(renderMarkdown("![a cat](https://img.test/cat.png)"), [
    `a cat (${U[0]}https://img.test/cat.png${U[1]})`,
  ]);
});

Deno.test("renderMarkdown() lays out code blocks, quotes and lists line by line", () => {
  assert.deepEqual(renderMarkdown("look:\n```js\nlet a = 1 < 2;\n  indented\n```"), [
    "look:",
    `${dim("│")} ${C[0]}let a = 1 < 2;${C[1]}`,
    `${dim("│")} ${C[0]}  indented${C[1]}`,
  ]);
  assert.deepEqual(renderMarkdown("> quoted **words**\n> second"), [
    `${dim("▎")} quoted ${B[0]}words${B[1]}`,
    `${dim("▎")} second`,
  ]);
  assert.deepEqual(renderMarkdown("- one\n- two\n  - nested\n\n3. three\n4. four"), [
    `${dim("•")} one`,
    `${dim("•")} two`,
    `  ${dim("•")} nested`,
    "",
    `${dim("3.")} three`,
    `${dim("4.")} four`,
  ]);
  assert.deepEqual(renderMarkdown("- [ ] todo\n- [x] done"), [
    `${dim("•")} [ ] todo`,
    `${dim("•")} [x] done`,
  ]);
  assert.deepEqual(renderMarkdown("line one\nline two\n\nnext paragraph"), [
    "line one",
    "line two",
    "",
    "next paragraph",
  ]);
  assert.deepEqual(renderMarkdown("# Title\n\n---"), [`${B[0]}Title${B[1]}`, "", dim("────────")]);
});

Deno.test("renderMarkdown() shows raw HTML as text", () => {
  assert.deepEqual(renderMarkdown("<b>not bold</b> <script>alert(1)</script>"), [
    "<b>not bold</b> <script>alert(1)</script>",
  ]);
  assert.deepEqual(renderMarkdown("<div>\nblock\n</div>"), ["<div>", "block", "</div>"]);
  assert.deepEqual(renderMarkdown("a &lt;b&gt; &amp; c"), ["a <b> & c"]);
});

Deno.test("renderMarkdown() never passes the text's own control characters to the terminal", () => {
  const attacks = [
    "\x1b[2J\x1b[H cleared",
    "**\x1b[31mred**",
    "`\x1b]0;title\x07`",
    "```\n\x1b[1A\x1b[2K\n```",
    "[\x1b[5mblink](https://a.test/\x1b[0m)",
    "&#27;[31m from a character reference &#x9b;31m",
    "> \x9b31m C1 control",
    "<span>\x1b[8m</span>",
    "- item \x07\x08\x7f",
    "tab\tstays\rcarriage",
  ];
  for (const text of attacks) onlyStyles(renderMarkdown(text));
  assert.deepEqual(renderMarkdown("&#27;[31m red?"), ["[31m red?"]);
  // A carriage return ends a line (as in CommonMark): it never moves back over one.
  assert.deepEqual(renderMarkdown("tab\tstays\rnext"), ["tab\tstays", "next"]);
});

Deno.test("renderMarkdown() without styles gives the text as written, cleaned", () => {
  const text = "**bold** and [a link](https://a.test)\n> quote\x1b[2J";
  assert.deepEqual(renderMarkdown(text, { style: false }), [
    "**bold** and [a link](https://a.test)",
    "> quote[2J",
  ]);
  // Only link definitions render to nothing: the text shows as written.
  assert.deepEqual(renderMarkdown("[ref]: https://a.test"), ["[ref]: https://a.test"]);
});

Deno.test("plainText() and strip() give one plain line", () => {
  assert.equal(plainText("**deploy** is _done_\nsee `log`"), "deploy is done see log");
  assert.equal(strip("a\nb\x1bc"), "abc");
  assert.equal(strip("a\nb\x1bc", true), "a\nbc");
});
