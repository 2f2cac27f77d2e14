/**
 * Keyboard and links in a real browser: focus moving through the messages
 * never loads older history, Ctrl+K switches conversations, Ctrl+Shift+F
 * searches, Alt+↑/↓ move between conversations, Escape closes the search,
 * every conversation and message has its own address, and Back and Forward
 * move between conversations.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { hashPassword, signIn as connect, startTestServer, type TestServer } from "../helpers.ts";
import { type Person, person, ready, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password", carol: "carol-password" };

async function users(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) out[name] = await hashPassword(pw);
  return out;
}

/** Posts `n` messages in `room`, taking turns between bob and carol; resolves their ids. */
async function seed(server: TestServer, room: string, n: number): Promise<number[]> {
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  const carol = await connect(server.ws, "carol", PASSWORDS.carol);
  const ids: number[] = [];
  try {
    for (const c of [bob, carol]) {
      c.send({ type: "join", room });
      await c.next((f) => f.type === "joined" && f.room === room);
    }
    for (let i = 0; i < n; i++) {
      const c = i % 2 === 0 ? bob : carol;
      const ref = `s${i}`;
      c.send({ type: "send", room, text: `message ${i + 1}`, ref });
      const m = await c.next((f) => f.type === "message" && f.ref === ref);
      if (m.type === "message") ids.push(m.id);
    }
  } finally {
    await bob.close();
    await carol.close();
  }
  return ids;
}

/** Records the frames the page sends over its WebSocket, in `frames`. */
function recordFrames(page: Page): { type: string; before?: number }[] {
  const frames: { type: string; before?: number }[] = [];
  page.on("websocket", (ws) => {
    ws.on("framesent", (f) => {
      try {
        frames.push(JSON.parse(String(f.payload)));
      } catch {
        // Not ours.
      }
    });
  });
  return frames;
}

function activeKey(p: Person): Promise<string | null> {
  return p.page.locator('[data-conv][aria-current="page"]').getAttribute("data-conv");
}

async function waitForActive(p: Person, key: string): Promise<void> {
  await p.page.locator(`[data-conv="${key}"][aria-current="page"]`).waitFor({ state: "attached" });
}

Deno.test("web app: focus moving through the messages never loads older ones; the explicit control does", async () => {
  const server = await startTestServer({ users: await users(), args: ["--burst", "400"] });
  await withBrowser(async (browser) => {
    await seed(server, "general", 130);
    const alice = await person(browser, server.http + "/", "alice");
    const frames = recordFrames(alice.page);
    await signIn(alice, PASSWORDS.alice);
    const rows = alice.page.locator(".msg[data-id]");
    await rows.first().waitFor();
    const first = await rows.first().getAttribute("data-id");
    const loaded = await rows.count();
    assert.equal(loaded, 50, "the latest page");
    // Backwards from the message box through every control in the list, to its top.
    await alice.page.locator("#composer").focus();
    const older = alice.page.getByRole("button", { name: "Load older messages" });
    let visible = true;
    let copyLinks = 0;
    for (let i = 0; i < 400; i++) {
      await alice.page.keyboard.press("Shift+Tab");
      const state = await alice.page.evaluate(() => {
        const el = document.activeElement as HTMLElement | null;
        if (!el || el === document.body) return { on: "", shown: true, label: "" };
        const style = getComputedStyle(el);
        const shown = style.outlineStyle !== "none" && parseFloat(style.outlineWidth) > 0 ||
          style.boxShadow !== "none";
        // Shown, not just focused: a control under opacity 0 would be a blind spot.
        const actions = el.closest(".msg-actions");
        const opaque = !actions || getComputedStyle(actions).opacity === "1";
        return { on: el.textContent ?? "", shown: shown && opaque, label: el.ariaLabel ?? "" };
      });
      visible &&= state.shown;
      if (state.label.startsWith("Copy link")) copyLinks++;
      if (state.on === "Load older messages") break;
    }
    assert.deepEqual(
      frames.filter((f) => f.type === "history" && f.before !== undefined),
      [],
      "no older page was asked for while focus moved",
    );
    assert.ok(await older.evaluate((el) => el === document.activeElement), "reached the top");
    assert.ok(visible, "focus was visible on every control");
    assert.ok(copyLinks >= 50, `every message's Copy link is reachable (${copyLinks})`);
    assert.equal(await rows.first().getAttribute("data-id"), first, "the view kept its messages");
    assert.equal(await rows.count(), loaded);
    // The explicit control loads the page before.
    await alice.page.keyboard.press("Enter");
    await until(async () => (await rows.count()) > loaded, "older messages load");
    assert.equal(frames.filter((f) => f.type === "history" && f.before !== undefined).length, 1);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: Ctrl+K switches conversations; Ctrl+Shift+F searches; Escape closes the search", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    await seed(server, "design", 2);
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const page = alice.page;
    await page.locator("#composer").focus();

    // The switcher finds a room alice is not in and joins it.
    await page.keyboard.press("Control+k");
    const box = page.getByRole("combobox", { name: "Room or person" });
    await box.waitFor();
    assert.ok(await box.evaluate((el) => el === document.activeElement), "typing goes to the box");
    await page.keyboard.type("desi");
    await page.locator('[role="option"][aria-selected="true"][data-choice="#design"]').waitFor();
    await page.keyboard.press("Enter");
    await waitForActive(alice, "#design");
    await page.locator("#switcher-dialog").waitFor({ state: "detached" });
    assert.ok(
      await page.locator("#composer").evaluate((el) => el === document.activeElement),
      "back in the message box",
    );

    // People too, case-insensitively, with the arrow keys.
    await page.keyboard.press("Control+k");
    await box.waitFor();
    await page.keyboard.type("CAR");
    await page.locator('[role="option"][data-choice="@carol"]').waitFor();
    const options = await page.locator('[role="option"]').evaluateAll((els) =>
      els.map((e) => (e as HTMLElement).dataset.choice)
    );
    assert.deepEqual(options, ["@carol"]);
    await page.keyboard.press("ArrowDown");
    await page.keyboard.press("Enter");
    await waitForActive(alice, "@carol");
    // (Closed first: Ctrl+K on a switcher still open closes it.)
    await page.locator("#switcher-dialog").waitFor({ state: "detached" });
    // Escape closes the switcher without moving.
    await page.keyboard.press("Control+k");
    await box.waitFor();
    await page.keyboard.press("Escape");
    await page.locator("#switcher-dialog").waitFor({ state: "detached" });
    assert.equal(await activeKey(alice), "@carol");

    // Message search: Ctrl+Shift+F, then Escape from the box closes it.
    await page.keyboard.press("Control+Shift+F");
    const search = page.locator("#search-q");
    await search.waitFor();
    assert.ok(await search.evaluate((el) => el === document.activeElement));
    await page.keyboard.press("Escape");
    await page.locator(".search-panel").waitFor({ state: "detached" });
    // And from a result.
    await page.keyboard.press("Control+Shift+F");
    await search.fill("message");
    await page.locator("label.chip", { hasText: "All rooms" }).click();
    await page.locator(".result").first().waitFor();
    await page.locator(".result").first().focus();
    await page.keyboard.press("Escape");
    await page.locator(".search-panel").waitFor({ state: "detached" });
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: Alt+Up/Down move between conversations, with Shift between unread ones", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const page = alice.page;
    // Rooms alice is in: general, ops, zoo; and a direct conversation with bob.
    for (const room of ["zoo", "ops"]) {
      await page.getByRole("button", { name: "Browse or create rooms" }).click();
      await page.locator("#room-input").fill(room);
      await page.locator("#room-input").press("Enter");
      await waitForActive(alice, `#${room}`);
    }
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    try {
      bob.send({ type: "send", to: "alice", text: "psst" });
      await page.locator('[data-conv="@bob"] .badge').waitFor();
      bob.send({ type: "join", room: "ops" });
      await bob.next((f) => f.type === "joined");
      await page.locator('[data-conv="#general"]').click();
      await waitForActive(alice, "#general");
      await page.keyboard.press("Alt+ArrowDown");
      await waitForActive(alice, "#ops");
      await page.keyboard.press("Alt+ArrowDown");
      await waitForActive(alice, "#zoo");
      await page.keyboard.press("Alt+ArrowDown");
      await waitForActive(alice, "@bob");
      // Seen: no longer unread.
      await page.locator('[data-conv="@bob"] .badge').waitFor({ state: "detached" });
      await page.keyboard.press("Alt+ArrowDown");
      await waitForActive(alice, "#general");
      await page.keyboard.press("Alt+ArrowUp");
      await waitForActive(alice, "@bob");
      // Only unread ones: bob's DM is read now; a message in ops makes it the one.
      await page.keyboard.press("Alt+ArrowUp");
      await waitForActive(alice, "#zoo");
      bob.send({ type: "send", room: "ops", text: "deploying" });
      await page.locator('[data-conv="#ops"] .badge').waitFor();
      await page.keyboard.press("Alt+Shift+ArrowDown");
      await waitForActive(alice, "#ops");
    } finally {
      await bob.close();
    }
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: conversations and messages have addresses; Back and Forward move between conversations", async () => {
  const server = await startTestServer({ users: await users(), args: ["--burst", "400"] });
  await withBrowser(async (browser) => {
    const ids = await seed(server, "general", 120);
    const alice = await person(browser, server.http + "/", "alice");
    await alice.context.grantPermissions(["clipboard-read", "clipboard-write"]);
    await signIn(alice, PASSWORDS.alice);
    const page = alice.page;
    await until(
      () => Promise.resolve(new URL(page.url()).hash === "#/general"),
      "the address is #/general",
    );

    // A DM, then Back and Forward.
    let dmId: string | null = null;
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    try {
      bob.send({ type: "send", to: "alice", text: "hello alice" });
      await page.locator('[data-conv="@bob"]').click();
      await waitForActive(alice, "@bob");
      assert.equal(new URL(page.url()).hash, "#/@bob");
      await page.goBack();
      await waitForActive(alice, "#general");
      await page.goForward();
      await waitForActive(alice, "@bob");
      // After a reload on an address, the next conversation still gets an entry of its own.
      await page.reload();
      await ready(alice);
      await waitForActive(alice, "@bob");
      await page.locator('[data-conv="#general"]').click();
      await waitForActive(alice, "#general");
      await page.goBack();
      await waitForActive(alice, "@bob");

      // Copy link on bob's DM: the link names both people, so it works for bob too.
      const dm = page.locator(".msg", { hasText: "hello alice" });
      await dm.hover();
      await dm.getByRole("button", { name: /^Copy link/ }).click();
      await page.locator(".toast", { hasText: "Link copied" }).waitFor();
      const dmLink = await page.evaluate(() => navigator.clipboard.readText());
      dmId = await dm.getAttribute("data-id");
      assert.equal(dmLink, `${server.http}/#/@alice+bob/${dmId}`);
    } finally {
      await bob.close();
    }

    // A link to an old message, opened in a new tab, opens it there (loading older pages).
    const target = ids[5];
    const tab = await alice.context.newPage();
    await tab.goto(`${server.http}/#/general/${target}`);
    await tab.locator('.app[data-ready="true"]').waitFor();
    const row = tab.locator(`.msg[data-id="${target}"]`);
    await row.waitFor();
    await tab.locator(`.msg.flash[data-id="${target}"]`).waitFor();
    assert.ok(await row.isVisible(), "scrolled to it");
    assert.equal(
      await tab.locator('[data-conv][aria-current="page"]').getAttribute("data-conv"),
      "#general",
    );
    // A link to a room alice is not in opens it with "Join": a link alone joins nothing.
    const design = await seed(server, "design", 3);
    await tab.goto(`${server.http}/#/design/${design[1]}`);
    await tab.locator('.app[data-ready="true"]').waitFor();
    await tab.locator('[data-conv="#design"][aria-current="page"]').waitFor({ state: "attached" });
    await tab.getByText("Join #design to see its messages.").waitFor();
    assert.equal(await tab.locator(".msg[data-id]").count(), 0);
    await tab.getByRole("button", { name: "Join #design" }).click();
    await tab.locator(`.msg.flash[data-id="${design[1]}"]`).waitFor();
    // What was said before joining is history, not news.
    assert.equal(await tab.locator(".divider").count(), 0);
    assert.equal(await tab.locator('[data-conv="#design"] .badge').count(), 0);
    // A mistyped address changes nothing, and the bar shows where one is.
    await tab.evaluate(() => (location.hash = "#/Bad Name!"));
    await until(
      () => Promise.resolve(new URL(tab.url()).hash === "#/design"),
      "the address is back",
    );
    assert.equal(
      await tab.locator('[data-conv][aria-current="page"]').getAttribute("data-conv"),
      "#design",
    );
    // Links to nobody and to bad places say so, and change nothing.
    await tab.goto(`${server.http}/#/@nobody`);
    await tab.locator(".toast", { hasText: "There's no one called “nobody” here" }).waitFor();
    assert.equal(await tab.locator('[data-conv="@nobody"]').count(), 0);
    await tab.goto(`${server.http}/#/general/999999`);
    await tab.locator(".toast", { hasText: "That message is no longer here" }).waitFor();
    await tab.close();

    // bob opens alice's DM link: the same conversation, from his side.
    const bobPage = await person(browser, server.http + "/", "bob");
    await signIn(bobPage, PASSWORDS.bob);
    await bobPage.page.goto(`${server.http}/#/@alice+bob/${dmId}`);
    await bobPage.page.locator('[data-conv="@alice"][aria-current="page"]').waitFor({
      state: "attached",
    });
    await bobPage.page.locator(`.msg.flash[data-id="${dmId}"]`).waitFor();
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bobPage.errors, []);
  }, server);
});

Deno.test("web app: a link followed before signing in opens once signed in", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const ids = await seed(server, "general", 3);
    const alice = await person(browser, `${server.http}/#/general/${ids[0]}`, "alice");
    await signIn(alice, PASSWORDS.alice);
    await alice.page.locator(`.msg.flash[data-id="${ids[0]}"]`).waitFor();
    await ready(alice);
    // All of it fits on the screen: seen, so read (nothing scrolls to say so).
    await until(async () => (await alice.page.title()) === "#general · Chat", "read");
    assert.deepEqual(alice.errors, []);
  }, server);
});
