/**
 * Mentions in a real browser: `@` in the message box opens the list of the
 * room's people (and `@room`), which filters as one types, is worked with the
 * arrows, Enter, Tab, Escape, a click or a tap, and never takes Enter, Up or
 * Escape from the message box while it is closed; on a phone it stays on
 * the screen, above the message box.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import {
  closeAll,
  hashPassword,
  type SignedIn,
  signIn as connect,
  startTestServer,
} from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { type Person, person, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = {
  alice: "alice-password",
  bob: "bob-password",
  bea: "bea-password",
  carol: "carol-password",
};

async function users(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) out[name] = await hashPassword(pw);
  return out;
}

/** The names the open list shows, in order. */
function listed(page: Page): Promise<string[]> {
  return page.locator("#mention-list [role=option]").evaluateAll((els) =>
    els.map((e) => e.getAttribute("data-name")!)
  );
}

/** The message box's text. */
function draft(page: Page): Promise<string> {
  return page.locator("#composer").inputValue();
}

/** Waits until the list shows exactly `names`. */
async function shows(page: Page, names: string[]): Promise<void> {
  await until(async () => (await listed(page)).join() === names.join(), `the list shows ${names}`);
}

/** Waits until the list is closed, and the message box says so. */
async function closed(page: Page): Promise<void> {
  await page.locator("#mention-list").waitFor({ state: "detached" });
  assert.equal(await page.locator("#composer").getAttribute("aria-expanded"), "false");
  assert.equal(await page.locator("#composer").getAttribute("aria-activedescendant"), null);
}

/** Signs `p` in and opens #dev. */
async function openDev(p: Person): Promise<void> {
  await signIn(p, PASSWORDS.alice);
  // By its address: on a phone the sidebar is a drawer.
  await p.page.evaluate(() => (location.hash = "#/dev"));
  await p.page.locator(".topbar h1", { hasText: "dev" }).waitFor();
  await p.page.locator("#composer").waitFor();
}

/** Whether `rect` lies within the page's viewport. */
async function onScreen(page: Page, selector: string): Promise<boolean> {
  return await page.locator(selector).evaluate((el) => {
    const r = el.getBoundingClientRect();
    return r.top >= 0 && r.left >= 0 && r.right <= innerWidth && r.bottom <= innerHeight;
  });
}

Deno.test("web app: @ opens the room's people, filters, and is worked with keys, clicks and taps", async () => {
  const server = await startTestServer({ users: await users() });
  let bob: SignedIn | undefined;
  let bea: SignedIn | undefined;
  await withBrowser(async (browser) => {
    try {
      // alice, bob and bea are in #dev (bob and bea online); carol is not.
      const alice = await connect(server.ws, "alice", PASSWORDS.alice);
      alice.send({ type: "join", room: "dev" });
      await alice.next((f) => f.type === "joined" && f.room === "dev");
      await alice.close();
      const carol = await connect(server.ws, "carol", PASSWORDS.carol);
      await carol.close();
      bob = await connect(server.ws, "bob", PASSWORDS.bob);
      bea = await connect(server.ws, "bea", PASSWORDS.bea);
      for (const c of [bob, bea]) {
        c.send({ type: "join", room: "dev" });
        await c.next((f) => f.type === "joined" && f.room === "dev");
      }
      bob.send({ type: "send", room: "dev", text: "shall we ship today?", ref: "q" });
      await bob.next((f) => f.type === "message" && f.ref === "q");

      const desk = await person(browser, server.http + "/", "alice");
      const page = desk.page;
      await openDev(desk);
      const box = page.locator("#composer");
      assert.equal(await box.getAttribute("aria-expanded"), "false");

      // "@b" lists bea and bob (not alice herself, not carol who is elsewhere).
      await box.pressSequentially("hi @b");
      await shows(page, ["bea", "bob"]);
      assert.equal(await box.getAttribute("aria-expanded"), "true");
      assert.equal(await box.getAttribute("aria-controls"), "mention-list");
      assert.equal(await box.getAttribute("aria-activedescendant"), "mention-0");
      assert.equal(await page.locator("#mention-list").getAttribute("role"), "listbox");
      assert.equal(await page.locator("#mention-0").getAttribute("aria-selected"), "true");
      assert.ok(await onScreen(page, "#mention-list"));
      await screenshot(page, "mentions-desktop-light");

      // While an input method composes, Enter and the arrows are its own: nothing is picked.
      for (const key of ["Enter", "ArrowDown", "Tab"]) {
        await box.evaluate((el, key) => {
          const init = { key, bubbles: true, cancelable: true, isComposing: true, keyCode: 229 };
          el.dispatchEvent(new KeyboardEvent("keydown", init));
        }, key);
      }
      assert.equal(await draft(page), "hi @b");
      assert.equal(await box.getAttribute("aria-activedescendant"), "mention-0");

      // Arrows move (and wrap); Enter puts "@bob " in and sends nothing.
      await box.press("ArrowDown");
      assert.equal(await box.getAttribute("aria-activedescendant"), "mention-1");
      assert.equal(await page.locator("#mention-1").getAttribute("aria-selected"), "true");
      await box.press("ArrowDown");
      assert.equal(await box.getAttribute("aria-activedescendant"), "mention-0");
      await box.press("ArrowUp");
      assert.equal(await box.getAttribute("aria-activedescendant"), "mention-1");
      await box.press("Enter");
      await closed(page);
      assert.equal(await draft(page), "hi @bob ");
      assert.equal(
        await box.evaluate((el: HTMLTextAreaElement) => el.selectionStart),
        "hi @bob ".length,
        "the caret is after the name",
      );

      // With the list closed, Enter sends.
      await box.pressSequentially("see you");
      await box.press("Enter");
      const sent = await bob.next((f) => f.type === "message" && f.from === "alice");
      assert.equal(sent.type === "message" && sent.text, "hi @bob see you");
      assert.equal(await draft(page), "");

      // Filtering: a prefix first, then names that only contain the letters; "@" alone lists
      // everyone and @room; Tab picks too.
      await box.pressSequentially("@");
      await shows(page, ["bea", "bob", "room"]);
      await box.pressSequentially("e");
      await shows(page, ["bea"]);
      await box.press("Backspace");
      await box.pressSequentially("o");
      await shows(page, ["bob", "room"]);
      await box.pressSequentially("o");
      await shows(page, ["room"]);
      await box.press("Tab");
      await closed(page);
      assert.equal(await draft(page), "@room ");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "composer");
      await box.fill("");

      // A click on a row puts the name in where the caret is, keeping the text after it.
      await box.fill("thanks  for the review");
      await box.evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(7, 7));
      await box.pressSequentially("@");
      await shows(page, ["bea", "bob", "room"]);
      await page.locator("#mention-list [data-name=bea]").click();
      await closed(page);
      assert.equal(await draft(page), "thanks @bea for the review");
      assert.equal(await page.evaluate(() => document.activeElement?.id), "composer");
      await box.fill("");

      // A pick that leaves the text as it was (the name typed in full before a space)
      // still moves the caret after the name and its space.
      await box.fill("hi @bo there");
      await box.evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(6, 6));
      await box.pressSequentially("b");
      await shows(page, ["bob"]);
      await box.press("Enter");
      await closed(page);
      assert.equal(await draft(page), "hi @bob there");
      assert.equal(
        await box.evaluate((el: HTMLTextAreaElement) => el.selectionStart),
        "hi @bob ".length,
        "the caret is after the name and its space",
      );
      await box.fill("");

      // No list in an address or a link, nor for a name that nobody has.
      await box.pressSequentially("mail bob@b");
      await closed(page);
      await box.fill("");
      await box.pressSequentially("https://x.org/@b");
      await closed(page);
      await box.fill("");
      await box.pressSequentially("@zed");
      await closed(page);
      await box.fill("");

      // Escape closes the list and only the list: a second Escape still drops the reply.
      const row = page.locator(".msg", { hasText: "shall we ship today?" });
      await row.hover();
      await row.locator(".msg-actions").getByRole("button", { name: /^Reply/ }).click();
      await page.locator(".reply-bar").waitFor();
      await box.pressSequentially("@b");
      await shows(page, ["bea", "bob"]);
      await box.press("Escape");
      await closed(page);
      assert.ok(await page.locator(".reply-bar").isVisible(), "the reply is still on");
      await box.pressSequentially("o");
      await page.locator("#composer").press("End");
      assert.equal(await page.locator("#mention-list").count(), 0, "it stays closed for that @");
      await box.press("Escape");
      await page.locator(".reply-bar").waitFor({ state: "detached" });
      // Enter with the list closed sends what is there.
      await box.press("Enter");
      const plain = await bob.next((f) => f.type === "message" && f.from === "alice");
      assert.equal(plain.type === "message" && plain.text, "@bo");

      await page.locator(".msg:not(.pending) .msg-text", { hasText: /^@bo$/ }).waitFor();

      // Up in the empty box still edits one's last message.
      await box.press("ArrowUp");
      const editor = page.locator(".msg-editor textarea");
      await editor.waitFor();
      assert.equal(await editor.inputValue(), "@bo");
      await editor.press("Escape");
      await page.locator(".msg.editing").waitFor({ state: "detached" });

      // A mention typed in the middle of a line opens the list when the caret comes back to it.
      await box.fill("ask @b about it");
      await closed(page);
      await box.evaluate((el: HTMLTextAreaElement) => el.setSelectionRange(6, 6));
      await box.press("ArrowRight");
      await box.press("ArrowLeft");
      await shows(page, ["bea", "bob"]);
      await box.press("ArrowDown");
      await box.press("Enter");
      assert.equal(await draft(page), "ask @bob about it");
      await box.fill("");
      assert.deepEqual(desk.errors, []);
      await desk.context.close();

      // Dark, on a laptop.
      const dark = await person(browser, server.http + "/", "alice", { dark: true });
      await openDev(dark);
      await dark.page.locator("#composer").pressSequentially("@");
      await shows(dark.page, ["bea", "bob", "room"]);
      await screenshot(dark.page, "mentions-desktop-dark");
      assert.deepEqual(dark.errors, []);
      await dark.context.close();

      // Phones, light and dark: the list is on the screen, above the message box; a tap picks.
      for (const scheme of ["light", "dark"] as const) {
        const phone = await person(browser, server.http + "/", "alice", {
          phone: true,
          dark: scheme === "dark",
        });
        await openDev(phone);
        const pbox = phone.page.locator("#composer");
        await pbox.tap();
        await pbox.pressSequentially("@");
        await shows(phone.page, ["bea", "bob", "room"]);
        assert.ok(await onScreen(phone.page, "#mention-list"), "the list fits the screen");
        const list = (await phone.page.locator("#mention-list").boundingBox())!;
        const form = (await phone.page.locator("form.composer").boundingBox())!;
        assert.ok(list.y + list.height <= form.y, "the list is above the message box");
        const rowBox = (await phone.page.locator("#mention-1").boundingBox())!;
        assert.ok(rowBox.height >= 44, "rows are big enough for a thumb");
        await screenshot(phone.page, `mentions-phone-${scheme}`);
        await phone.page.locator("#mention-list [data-name=bob]").tap();
        await closed(phone.page);
        assert.equal(await draft(phone.page), "@bob ");
        assert.equal(await phone.page.evaluate(() => document.activeElement?.id), "composer");
        assert.deepEqual(phone.errors, []);
        await phone.context.close();
      }
    } finally {
      await closeAll(bob, bea);
    }
  }, server);
});

Deno.test("web app: in a DM the list offers the other person and no @room", async () => {
  const server = await startTestServer({ users: await users() });
  let bob: SignedIn | undefined;
  await withBrowser(async (browser) => {
    try {
      bob = await connect(server.ws, "bob", PASSWORDS.bob);
      bob.send({ type: "send", to: "alice", text: "ping", ref: "p" });
      await bob.next((f) => f.type === "message" && f.ref === "p");
      const alice = await person(browser, server.http + "/", "alice");
      await signIn(alice, PASSWORDS.alice);
      await alice.page.locator('[data-conv="@bob"]').click();
      const box = alice.page.locator("#composer");
      await box.pressSequentially("@");
      await shows(alice.page, ["bob"]);
      await box.pressSequentially("r");
      await closed(alice.page);
      assert.deepEqual(alice.errors, []);
    } finally {
      await closeAll(bob);
    }
  }, server);
});

Deno.test("web app: in a room larger than --room-mention-max, @room is offered to admins only", async () => {
  const hashed = await users();
  const server = await startTestServer({
    users: { ...hashed, carol: { password: hashed.carol, role: "admin" } },
    args: ["--room-mention-max", "3"],
  });
  await withBrowser(async (browser) => {
    // Four people in #dev: more than 3.
    for (const name of ["alice", "bob", "bea", "carol"] as const) {
      const c = await connect(server.ws, name, PASSWORDS[name]);
      c.send({ type: "join", room: "dev" });
      await c.next((f) => f.type === "joined" && f.room === "dev");
      await c.close();
    }
    const alice = await person(browser, server.http + "/", "alice");
    await openDev(alice);
    await alice.page.locator("#composer").pressSequentially("@");
    await shows(alice.page, ["bea", "bob", "carol"]);
    await alice.page.locator("#composer").pressSequentially("r");
    await shows(alice.page, ["carol"]);

    const carol = await person(browser, server.http + "/", "carol");
    await signIn(carol, PASSWORDS.carol);
    await carol.page.evaluate(() => (location.hash = "#/dev"));
    await carol.page.locator(".topbar h1", { hasText: "dev" }).waitFor();
    await carol.page.locator("#composer").pressSequentially("@r");
    await shows(carol.page, ["room"]);
    assert.deepEqual([...alice.errors, ...carol.errors], []);
  }, server);
});
