/**
 * Markdown in a real browser under the server's strict CSP: bold, a code
 * block with a working copy button, links for http only, and raw HTML shown
 * as the text typed, with no element made of it.
 */
import assert from "node:assert/strict";
import { hashPassword, startTestServer } from "../helpers.ts";
import { person, signIn, withBrowser } from "./people.ts";

const PASSWORD = "alice-password";
const CODE = 'let x = "<b>&amp;</b>";\n  indented();';
const MESSAGE = [
  "**bold** and a [link](https://example.com/x) and [bad](javascript:alert(1))",
  "next line",
  "```js",
  CODE,
  "```",
  "<img src=x onerror=alert(1)>",
].join("\n");

Deno.test("web app: Markdown renders as elements, raw HTML shows as text, code can be copied", async () => {
  const server = await startTestServer({ users: { alice: await hashPassword(PASSWORD) } });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const consoleErrors: string[] = [];
    alice.page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    await alice.context.grantPermissions(["clipboard-read", "clipboard-write"], {
      origin: server.http,
    });
    await signIn(alice, PASSWORD);
    const page = alice.page;
    const box = page.locator("#composer");

    await box.fill("just plain text");
    await box.press("Enter");
    const plain = page.locator(".msg:not(.pending) .msg-text", { hasText: "just plain text" });
    assert.equal(await plain.innerHTML(), "just plain text", "no Markdown: no element around it");

    await box.fill(MESSAGE);
    await box.press("Enter");
    const msg = page.locator(".msg:not(.pending)", { has: page.locator("pre") }).last();
    await msg.waitFor();
    const text = msg.locator(".msg-text");

    assert.equal(await text.locator("strong").textContent(), "bold");
    const links = await text.locator("a").evaluateAll((els) =>
      els.map((a) => ["href", "target", "rel"].map((k) => a.getAttribute(k)).concat(a.textContent))
    );
    assert.deepEqual(links, [["https://example.com/x", "_blank", "noopener noreferrer", "link"]]);
    assert.equal(await text.locator("br").count(), 1, "the single newline is a line break");

    const code = text.locator("pre code");
    assert.equal(await code.getAttribute("class"), "language-js");
    assert.equal(await code.textContent(), CODE, "the code verbatim");

    assert.equal(await page.locator(".msg-text img, .msg-text script").count(), 0, "no <img>");
    const shown = await text.textContent();
    assert.ok(shown?.includes("<img src=x onerror=alert(1)>"), `raw HTML as text: ${shown}`);
    assert.ok(shown?.includes("[bad](javascript:alert(1))"), "a javascript: link stays text");

    await text.getByRole("button", { name: "Copy", exact: true }).click();
    await text.getByRole("button", { name: "Copied", exact: true }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), CODE);
    await text.getByRole("button", { name: "Copy", exact: true }).waitFor();

    assert.deepEqual(alice.errors, [], "no script errors or CSP violations");
    assert.deepEqual(consoleErrors, [], "no console errors");
  }, server);
});
