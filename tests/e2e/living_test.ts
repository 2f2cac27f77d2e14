/**
 * Living messages in a real browser, two people on a real server: editing
 * in place (and with Up arrow), deleting after one question (a tombstone
 * stays), reactions toggled from the picker and the chips, replies whose
 * quote leads to the original (loading older pages), every action by
 * keyboard, a phone's long-press sheet, and a page that was offline while
 * all of it happened catching up without a reload. Screenshots of
 * reactions, a reply, a code block and a tombstone, desktop and phone.
 */
import assert from "node:assert/strict";
import type { Locator, Page } from "playwright-core";
import { hashPassword, signIn as connect, startTestServer, type TestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { Network, type Person, person, send, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password", carol: "carol-password" };

async function users(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) out[name] = await hashPassword(pw);
  return out;
}

/** The confirmed message whose text contains `text`. */
function row(p: Person | Page, text: string): Locator {
  const page = "page" in p ? p.page : p;
  // By its own text, not by the quote of a reply to it.
  return page.locator(".msg[data-id]").filter({
    has: page.locator(":scope > .msg-body > .msg-text", { hasText: text }),
  });
}

/** Points at a message and clicks one of its toolbar buttons (by the start of its label). */
async function action(p: Person, text: string, label: string): Promise<void> {
  const r = row(p, text);
  await r.hover();
  await r.locator(".msg-actions").getByRole("button", { name: new RegExp(`^${label}`) }).click();
}

/** The text and count of each reaction chip of a message, and whether it is the user's. */
function chips(r: Locator): Promise<string[]> {
  return r.locator(".reaction:not(.add)").evaluateAll((els) =>
    els.map((el) =>
      `${el.querySelector(".reaction-emoji")!.textContent} ${
        el.querySelector(".reaction-count")!.textContent
      }${el.getAttribute("aria-pressed") === "true" ? " mine" : ""}`
    )
  );
}

/** Presses "Retry now" until the page is connected again. */
async function reconnect(p: Person): Promise<void> {
  await until(async () => {
    if (await p.page.locator('.app[data-ready="true"]').count() > 0) return true;
    const retry = p.page.locator(".banner").getByRole("button", { name: "Retry now" });
    if (await retry.count() > 0) await retry.click({ timeout: 1000 }).catch(() => {});
    return false;
  }, `${p.name}'s page reconnects`);
}

/** Moves the focus with `key` until the focused control's label starts with `label`. */
async function tabTo(page: Page, key: "Tab" | "Shift+Tab", label: string): Promise<void> {
  for (let i = 0; i < 60; i++) {
    await page.keyboard.press(key);
    const on = await page.evaluate(() =>
      document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.textContent ??
        ""
    );
    if (on.startsWith(label)) return;
  }
  throw new Error(`"${label}" cannot be reached with ${key}`);
}

function focused(page: Page): Promise<string> {
  return page.evaluate(() =>
    document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.id ?? ""
  );
}

Deno.test("web app: two people edit, delete, react, un-react and reply", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    await send(alice, "a mesage to fix");
    await send(alice, "another one");
    await row(bob, "another one").waitFor();

    // Edit in place from the toolbar: Enter saves, everyone sees the new text.
    const id = await row(alice, "a mesage to fix").getAttribute("data-id");
    await action(alice, "a mesage to fix", "Edit your message");
    const editor = alice.page.locator(".msg-editor textarea");
    assert.equal(await editor.inputValue(), "a mesage to fix");
    await until(async () => await focused(alice.page) === `edit-${id}`, "the editor has the focus");
    await editor.fill("a message, fixed");
    await editor.press("Enter");
    for (const p of [alice, bob]) {
      const edited = row(p, "a message, fixed").locator(".edited");
      await edited.waitFor();
      assert.match((await edited.getAttribute("title"))!, /^Edited \w+day, /);
    }
    assert.equal(await row(bob, "a mesage to fix").count(), 0);
    await until(async () => await focused(alice.page) === "composer", "back in the message box");

    // Up arrow in the empty box edits the last message; Escape leaves it as it was.
    await alice.page.keyboard.press("ArrowUp");
    await editor.waitFor();
    assert.equal(await editor.inputValue(), "another one");
    await editor.press("End");
    await alice.page.keyboard.type(" (more)");
    await alice.page.keyboard.press("Escape");
    await editor.waitFor({ state: "detached" });
    assert.equal(await row(alice, "another one").locator(".edited").count(), 0);
    assert.equal(await row(alice, "another one (more)").count(), 0);

    // bob reacts from the picker; alice joins in from the chip, then takes hers back.
    await action(bob, "a message, fixed", "Add a reaction");
    const picker = bob.page.locator("dialog.emoji-picker");
    await picker.getByRole("button", { name: "party popper", exact: true }).click();
    await picker.waitFor({ state: "detached" });
    const fixedA = row(alice, "a message, fixed");
    const fixedB = row(bob, "a message, fixed");
    await until(async () => (await chips(fixedA)).join() === "🎉 1", "alice sees bob's 🎉");
    assert.equal(
      await fixedA.locator(".reaction[data-emoji='🎉']").getAttribute("title"),
      "bob reacted with 🎉",
    );
    await fixedA.locator(".reaction[data-emoji='🎉']").click();
    await until(async () => (await chips(fixedB)).join() === "🎉 2 mine", "bob sees two");
    assert.equal(
      await fixedB.locator(".reaction[data-emoji='🎉']").getAttribute("title"),
      "You and alice reacted with 🎉",
    );
    // Each page shows the change when the server's echo reaches it: wait for alice's too.
    await until(async () => (await chips(fixedA)).join() === "🎉 2 mine", "alice sees two");
    await fixedA.locator(".reaction[data-emoji='🎉']").click();
    await until(async () => (await chips(fixedB)).join() === "🎉 1 mine", "alice's is gone");
    await until(async () => (await chips(fixedA)).join() === "🎉 1", "alice sees hers gone");
    // Picked recently: offered first next time.
    await action(bob, "another one", "Add a reaction");
    assert.equal(
      await picker.locator(".emoji-grid").first().locator("button.emoji").first().textContent(),
      "🎉",
    );
    await bob.page.keyboard.press("Escape");
    await picker.waitFor({ state: "detached" });

    // bob replies: the quote shows above the message box, then above the reply.
    await action(bob, "a message, fixed", "Reply to the message from alice");
    const bar = bob.page.locator(".reply-bar");
    await bar.waitFor();
    assert.equal(await bar.locator(".reply-from").textContent(), "alice");
    assert.equal(await bar.locator(".reply-snippet").textContent(), "a message, fixed");
    await until(async () => await focused(bob.page) === "composer", "the box has the focus");
    await send(bob, "agreed");
    await bar.waitFor({ state: "detached" });
    for (const p of [alice, bob]) {
      const quote = row(p, "agreed").locator(".reply-quote");
      await quote.waitFor();
      assert.equal(await quote.locator(".reply-from").textContent(), "alice");
      assert.equal(await quote.locator(".reply-snippet").textContent(), "a message, fixed");
    }
    // The quote leads to the original.
    const original = await row(alice, "a message, fixed").getAttribute("data-id");
    await row(alice, "agreed").locator(".reply-quote").click();
    await alice.page.locator(`.msg.flash[data-id="${original}"]`).waitFor();
    // × stops replying.
    await action(bob, "another one", "Reply");
    await bar.getByRole("button", { name: "Cancel the reply to alice" }).click();
    await bar.waitFor({ state: "detached" });

    // Delete asks once, then the message is a tombstone for everyone, in its place.
    await action(alice, "a message, fixed", "Delete your message");
    const ask = alice.page.getByRole("dialog", { name: "Delete this message?" });
    await ask.waitFor();
    assert.equal(await ask.locator(".confirm-quote").textContent(), "a message, fixed");
    await ask.getByRole("button", { name: "Cancel" }).click();
    await ask.waitFor({ state: "detached" });
    assert.equal(await row(bob, "a message, fixed").count(), 1, "nothing deleted");
    await action(alice, "a message, fixed", "Delete your message");
    await ask.getByRole("button", { name: "Delete", exact: true }).click();
    for (const p of [alice, bob]) {
      const gone = p.page.locator(`.msg.deleted[data-id="${original}"]`);
      await gone.waitFor();
      assert.equal(await gone.locator(".msg-text").textContent(), "message deleted");
      assert.equal(
        await gone.locator(".msg-actions, .reaction").count(),
        0,
        "no toolbar, no chips",
      );
      await row(p, "agreed").locator(".reply-snippet.gone", { hasText: "message deleted" })
        .waitFor();
      assert.equal(await row(p, "a message, fixed").count(), 0);
    }
    const order = await bob.page.locator(".msg[data-id]").evaluateAll((els) =>
      els.map((el) => el.classList.contains("deleted") ? "tombstone" : "message")
    );
    assert.deepEqual(order, ["tombstone", "message", "message"], "it keeps its place");
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: a reply's quote loads older pages to reach its original; a 21st emoji is refused", async () => {
  const server = await startTestServer({ users: await users(), args: ["--burst", "400"] });
  await withBrowser(async (browser) => {
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    const carol = await connect(server.ws, "carol", PASSWORDS.carol);
    try {
      for (const c of [bob, carol]) {
        c.send({ type: "join", room: "general" });
        await c.next("joined");
      }
      bob.send({ type: "send", room: "general", text: "the original question", ref: "q" });
      const q = await bob.next((f) => f.type === "message" && f.ref === "q");
      const id = q.type === "message" ? q.id : 0;
      for (let i = 1; i <= 80; i++) {
        carol.send({ type: "send", room: "general", text: `chatter ${i}`, ref: `c${i}` });
        await carol.next((f) => f.type === "message" && f.ref === `c${i}`);
      }
      bob.send({ type: "send", room: "general", text: "answering myself", replyTo: id, ref: "a" });
      const a = await bob.next((f) => f.type === "message" && f.ref === "a");
      // 20 different emoji on the answer: the most a message takes.
      const twenty = [
        "😀",
        "😃",
        "😄",
        "😁",
        "😆",
        "😅",
        "🤣",
        "😂",
        "🙂",
        "🙃",
        "😉",
        "😊",
        "😇",
        "🥰",
        "😍",
        "🤩",
        "😘",
        "😗",
        "😚",
        "😙",
      ];
      for (const [i, emoji] of twenty.entries()) {
        carol.send({
          type: "react",
          room: "general",
          id: a.type === "message" ? a.id : 0,
          emoji,
          on: true,
          ref: `r${i}`,
        });
        await carol.next((f) => f.type === "reaction" && f.ref === `r${i}`);
      }
      const alice = await person(browser, server.http + "/", "alice");
      await signIn(alice, PASSWORDS.alice);
      const answer = row(alice, "answering myself");
      await until(async () => (await chips(answer)).length === 20, "20 chips");
      assert.equal(await alice.page.locator(`.msg[data-id="${id}"]`).count(), 0, "not loaded yet");
      await answer.locator(".reply-quote").click();
      await alice.page.locator(`.msg.flash[data-id="${id}"]`).waitFor();
      assert.ok(await alice.page.locator(`.msg[data-id="${id}"]`).isVisible(), "scrolled to it");

      await answer.scrollIntoViewIfNeeded();
      await action(alice, "answering myself", "Add a reaction");
      await alice.page.locator("dialog.emoji-picker").getByRole("button", {
        name: "rocket",
        exact: true,
      })
        .click();
      await alice.page.locator(".toast", {
        hasText: "A message can have at most 20 different reactions",
      }).waitFor();
      assert.equal((await chips(answer)).length, 20);
      assert.deepEqual(alice.errors, []);
    } finally {
      await bob.close();
      await carol.close();
    }
  }, server);
});

Deno.test("web app: a page offline while messages are edited, deleted and reacted to catches up without a reload", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const net = new Network();
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob", { setup: (c) => net.attach(c) });
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    for (const text of ["to be edited", "to be deleted", "to be liked", "to lose a like"]) {
      await send(alice, text);
    }
    await action(bob, "to lose a like", "Add a reaction");
    await bob.page.locator("dialog.emoji-picker").getByRole("button", { name: "eyes", exact: true })
      .click();
    await until(async () => (await chips(row(alice, "to lose a like"))).join() === "👀 1", "👀");
    await row(bob, "to lose a like").locator(".reaction").first().waitFor();
    // A mark that a reload would wipe.
    await bob.page.evaluate(() => ((globalThis as unknown as { __same: boolean }).__same = true));

    await net.cut();
    await bob.page.locator('.app[data-conn="waiting"]').waitFor();
    await action(alice, "to be edited", "Edit your message");
    await alice.page.locator(".msg-editor textarea").fill("edited while bob was away");
    await alice.page.locator(".msg-editor textarea").press("Enter");
    await row(alice, "edited while bob was away").locator(".edited").waitFor();
    await action(alice, "to be deleted", "Delete your message");
    await alice.page.getByRole("button", { name: "Delete", exact: true }).click();
    await alice.page.locator(".msg.deleted").waitFor();
    await action(alice, "to be liked", "Add a reaction");
    await alice.page.locator("dialog.emoji-picker").getByRole("button", {
      name: "red heart",
      exact: true,
    })
      .click();
    await row(alice, "to lose a like").locator(".reaction[data-emoji='👀']").waitFor();
    const raw = await connect(server.ws, "carol", PASSWORDS.carol);
    try {
      raw.send({ type: "join", room: "general" });
      await raw.next("joined");
      const liked = await row(alice, "to lose a like").getAttribute("data-id");
      // Bob's own 👀 taken back from his other device meanwhile.
      const bob2 = await connect(server.ws, "bob", PASSWORDS.bob);
      bob2.send({
        type: "react",
        room: "general",
        id: Number(liked),
        emoji: "👀",
        on: false,
        ref: "x",
      });
      await bob2.next((f) => f.type === "reaction" && f.ref === "x");
      await bob2.close();
    } finally {
      await raw.close();
    }
    await send(alice, "and a new one");
    await until(async () => (await chips(row(alice, "to lose a like"))).length === 0, "👀 gone");

    net.restore();
    await reconnect(bob);
    await row(bob, "and a new one").waitFor();
    await row(bob, "edited while bob was away").locator(".edited").waitFor();
    await bob.page.locator(".msg.deleted", { hasText: "message deleted" }).waitFor();
    await until(async () => (await chips(row(bob, "to be liked"))).join() === "❤️ 1", "❤️");
    await until(async () => (await chips(row(bob, "to lose a like"))).length === 0, "no 👀");
    const texts = await bob.page.locator(".msg[data-id] .msg-text").allInnerTexts();
    assert.deepEqual(texts.map((t) => t.replace(/\s+/g, " ").trim()), [
      "edited while bob was away (edited)",
      "message deleted",
      "to be liked",
      "to lose a like",
      "and a new one",
    ]);
    assert.equal(
      await bob.page.evaluate(() => (globalThis as unknown as { __same?: boolean }).__same),
      true,
      "no reload",
    );
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: every message action is reachable with Tab and Enter", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await alice.context.grantPermissions(["clipboard-read", "clipboard-write"]);
    await signIn(alice, PASSWORDS.alice);
    const page = alice.page;
    await send(alice, "typed without a mouse");
    const box = page.locator("#composer");
    await box.focus();

    // Backwards from the message box into the last message's toolbar.
    await tabTo(page, "Shift+Tab", "Copy the text of your message");
    const shown = await page.evaluate(() =>
      getComputedStyle(document.activeElement!.closest(".msg-actions")!).opacity
    );
    assert.equal(shown, "1", "the toolbar shows while it has the focus");
    await page.keyboard.press("Enter");
    await page.locator(".toast", { hasText: "Text copied" }).waitFor();
    assert.equal(
      await page.evaluate(() => navigator.clipboard.readText()),
      "typed without a mouse",
    );

    await tabTo(page, "Shift+Tab", "Add a reaction to your message");
    await page.keyboard.press("Enter");
    const picker = page.locator("dialog.emoji-picker");
    await picker.waitFor();
    await until(async () => await focused(page) === "thumbs up", "the first emoji has the focus");
    await page.keyboard.press("ArrowRight");
    await page.keyboard.press("ArrowDown");
    assert.equal(await focused(page), "fire");
    await page.keyboard.press("Enter");
    await picker.waitFor({ state: "detached" });
    const msg = row(alice, "typed without a mouse");
    await until(async () => (await chips(msg)).join() === "🔥 1 mine", "🔥 is in");
    await until(
      async () => /^Add a reaction to your message/.test(await focused(page)),
      "focus went back",
    );
    // The chip (before the toolbar), by keyboard: Enter takes the reaction back.
    await tabTo(page, "Shift+Tab", "🔥 1");
    await page.keyboard.press("Enter");
    await until(async () => (await chips(msg)).length === 0, "🔥 is gone");

    // Reply: Enter, the box has the focus, Escape stops replying.
    await box.focus();
    await tabTo(page, "Shift+Tab", "Reply to your message");
    await page.keyboard.press("Enter");
    await page.locator(".reply-bar").waitFor();
    // The box takes the focus once the reply bar is laid out.
    await until(async () => await focused(page) === "composer", "the box has the focus");
    await page.keyboard.press("Escape");
    await page.locator(".reply-bar").waitFor({ state: "detached" });

    // Edit: Enter opens it, Enter saves.
    await tabTo(page, "Shift+Tab", "Edit your message");
    await page.keyboard.press("Enter");
    const editor = page.locator(".msg-editor textarea");
    await editor.waitFor();
    // Type only once the editor has the focus (it takes it after layout).
    await until(async () => (await focused(page)).startsWith("edit-"), "the editor has the focus");
    await page.keyboard.type(", edited");
    await page.keyboard.press("Enter");
    await row(alice, "typed without a mouse, edited").locator(".edited").waitFor();

    // Delete: Escape keeps it (focus back on the button), Enter on Delete deletes.
    await box.focus();
    await tabTo(page, "Shift+Tab", "Delete your message");
    await page.keyboard.press("Enter");
    const ask = page.getByRole("dialog", { name: "Delete this message?" });
    await ask.waitFor();
    await until(
      async () => await page.evaluate(() => document.activeElement?.textContent) === "Delete",
      "the Delete button has the focus",
    );
    await page.keyboard.press("Escape");
    await ask.waitFor({ state: "detached" });
    // Back on the button, and still there two frames later (nothing else takes it).
    await until(async () => {
      if (!/^Delete your message/.test(await focused(page))) return false;
      await page.evaluate(() =>
        new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))
      );
      return /^Delete your message/.test(await focused(page));
    }, "focus went back and stayed");
    await page.keyboard.press("Enter");
    await ask.waitFor();
    await page.keyboard.press("Enter");
    await page.locator(".msg.deleted").waitFor();
    await until(async () => await focused(page) === "composer", "the box has the focus");
    assert.deepEqual(alice.errors, []);
  }, server);
});

/** Posts the conversation the screenshots show, as bob, carol and alice. */
async function scene(server: TestServer): Promise<void> {
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  const carol = await connect(server.ws, "carol", PASSWORDS.carol);
  const alice = await connect(server.ws, "alice", PASSWORDS.alice);
  const say = async (
    who: typeof bob,
    text: string,
    ref: string,
    replyTo?: number,
  ): Promise<number> => {
    who.send({ type: "send", room: "general", text, ref, ...(replyTo ? { replyTo } : {}) });
    const m = await who.next((f) => f.type === "message" && f.ref === ref);
    return m.type === "message" ? m.id : 0;
  };
  const react = async (who: typeof bob, id: number, emoji: string, ref: string) => {
    who.send({ type: "react", room: "general", id, emoji, on: true, ref });
    await who.next((f) => f.type === "reaction" && f.ref === ref);
  };
  try {
    for (const c of [bob, carol, alice]) {
      c.send({ type: "join", room: "general" });
      await c.next("joined");
    }
    const plan = await say(bob, "Release plan: we ship the new editor on Thursday.", "b1");
    await react(carol, plan, "🎉", "r1");
    await react(alice, plan, "🎉", "r2");
    await react(carol, plan, "👍", "r3");
    await react(bob, plan, "🚀", "r4");
    const oops = await say(carol, "the staging password is hunter2", "c1");
    carol.send({ type: "delete", room: "general", id: oops, ref: "d1" });
    await carol.next((f) => f.type === "deleted" && f.ref === "d1");
    await say(
      carol,
      "Does the migration still need the old flag?",
      "c2",
      plan,
    );
    const code = await say(
      bob,
      "Yes, for now:\n```ts\nconst editor = await load({ legacy: true });\neditor.mount(root);\n```",
      "b2",
    );
    await react(carol, code, "👀", "r5");
    const fix = await say(alice, "I'll drop it after the release", "a1", code);
    alice.send({
      type: "edit",
      room: "general",
      id: fix,
      text: "I'll drop it right after the release",
      ref: "e1",
    });
    await alice.next((f) => f.type === "edited" && f.ref === "e1");
  } finally {
    await bob.close();
    await carol.close();
    await alice.close();
  }
}

for (const phone of [false, true]) {
  const label = phone ? "phone" : "desktop";
  Deno.test(`web app: reactions, a reply, a code block and a tombstone look right (${label})`, async () => {
    const server = await startTestServer({ users: await users() });
    await withBrowser(async (browser) => {
      await scene(server);
      const alice = await person(browser, server.http + "/", "alice", { phone });
      await signIn(alice, PASSWORDS.alice);
      const page = alice.page;
      await row(alice, "right after the release").locator(".edited").waitFor();
      await page.locator(".msg.deleted").waitFor();
      await screenshot(page, `living-${label}`);

      if (phone) {
        // A long-press opens the actions as a sheet.
        const target = row(alice, "Release plan").locator(".msg-text");
        const box = (await target.boundingBox())!;
        const cdp = await alice.context.newCDPSession(page);
        const point = { x: box.x + 20, y: box.y + box.height / 2 };
        await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [point] });
        const sheet = page.locator("dialog.sheet");
        await sheet.waitFor();
        await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
        assert.deepEqual(
          await sheet.locator(".sheet-item").allInnerTexts(),
          ["Reply", "Copy text", "Copy link", "Cancel"],
          "not alice's: no Edit or Delete",
        );
        await screenshot(page, "message-sheet-phone");
        await sheet.getByRole("button", { name: "thumbs up", exact: true }).click();
        await sheet.waitFor({ state: "detached" });
        await until(
          async () => (await chips(row(alice, "Release plan"))).includes("👍 2 mine"),
          "👍 from the sheet",
        );
        // "More reactions" opens the picker, as a sheet too.
        await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [point] });
        await sheet.waitFor();
        await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
        await sheet.getByRole("button", { name: "More reactions" }).click();
        const picker = page.locator("dialog.emoji-picker");
        await picker.waitFor();
        await sheet.waitFor({ state: "detached" });
        await screenshot(page, "emoji-picker-phone");
        await page.keyboard.press("Escape");
        await picker.waitFor({ state: "detached" });
      } else {
        await action(alice, "Release plan", "Add a reaction");
        await page.locator("dialog.emoji-picker").waitFor();
        await screenshot(page, "emoji-picker-desktop");
        await page.keyboard.press("Escape");
        await page.locator("dialog.emoji-picker").waitFor({ state: "detached" });
        // The focus went back to the toolbar, which shows while it has it.
        await until(
          async () => /^Add a reaction to the message from bob/.test(await focused(page)),
          "focus went back to the toolbar",
        );
        await screenshot(page, "message-toolbar-desktop");
        await action(alice, "right after the release", "Edit your message");
        await page.locator(".msg-editor textarea").waitFor();
        await screenshot(page, "edit-desktop");
        await page.keyboard.press("Escape");
      }
      assert.deepEqual(alice.errors, []);
    }, server);
  });
}
