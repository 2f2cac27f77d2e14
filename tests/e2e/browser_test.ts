import assert from "node:assert/strict";
import { CHROMIUM, ensureChromium } from "./browser.ts";

Deno.test("ensureChromium() names the Debian package when it cannot install it", async () => {
  await assert.rejects(
    ensureChromium({ path: "/nonexistent/chromium", root: false }),
    (err: Error) => {
      assert.equal(
        err.message,
        'Browser tests need Chromium at "/nonexistent/chromium": install the Debian package "chromium" (sudo apt-get install chromium)',
      );
      return true;
    },
  );
});

Deno.test("ensureChromium() finds the installed browser", async () => {
  // On a machine without it, this installs it (as root) or fails naming the package.
  assert.equal(await ensureChromium(), CHROMIUM);
});
