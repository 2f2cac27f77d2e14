/**
 * Renaming a room in the web app, in real browsers on a real server: alice,
 * an admin, renames #plans from the admin page's Rooms tab (a taken name is
 * refused in the server's words first) while bob is in the room with a
 * draft typed. bob's page moves to the new address in place (no new
 * history entry; Back and an old link still make sense) with the history,
 * the draft and a line saying who renamed it; carol, elsewhere, keeps her
 * unread count under the new name; a page signed in afterwards knows only
 * the new name, and bob's laptop, offline meanwhile (while more than a join's
 * page is said in the room), comes back to the room under its new name — its
 * `welcome` says so in `renamed` — with its own draft, every message and no
 * trace of the old one. Admins
 * also rename from the room's members panel (the admin's own app follows);
 * `general` and members are offered no rename. Screenshots of the open rename field
 * (Rooms tab, members panel) and of bob's room after the rename.
 */
import assert from "node:assert/strict";
import { signIn as signInSocket, startTestServer } from "../helpers.ts";
import { JOIN_REPLAY } from "../../protocol.ts";
import { screenshot } from "./browser.ts";
import { Network, type Person, person, send, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-pass", bob: "bob-pass-1", carol: "carol-pass" };

/** Messages said in the room while bob's laptop is away: more than a join brings. */
const AWAY = JOIN_REPLAY + 5;

/** users.json: alice is the admin, bob and carol members. */
function users(): Record<string, string | { password: string; role: string }> {
  return {
    alice: { password: PASSWORDS.alice, role: "admin" },
    bob: PASSWORDS.bob,
    carol: PASSWORDS.carol,
  };
}

/** Creates (or joins) `room` from the room browser; waits until it is open. */
async function join(p: Person, room: string): Promise<void> {
  await p.page.getByRole("button", { name: "Browse or create rooms" }).click();
  await p.page.locator("#room-input").fill(room);
  await p.page.locator("#room-input").press("Enter");
  await p.page.locator(".topbar h1", { hasText: room }).waitFor();
}

/** Opens a conversation from the sidebar. */
async function open(p: Person, room: string): Promise<void> {
  await p.page.locator(`[data-conv="#${room}"]`).click();
  await p.page.locator(".topbar h1", { hasText: room }).waitFor();
}

/** The rooms in the sidebar, in order. */
async function sidebarRooms(p: Person): Promise<string[]> {
  return await p.page.locator('.conv-item[data-conv^="#"]').evaluateAll((els) =>
    els.map((e) => e.getAttribute("data-conv")!)
  );
}

/** The unread badge of a conversation in the sidebar ("" when there is none). */
async function badge(p: Person, key: string): Promise<string> {
  const b = p.page.locator(`[data-conv="${key}"] .badge`);
  return (await b.count()) === 0 ? "" : (await b.getAttribute("data-unread"))!;
}

/** Opens the admin page's Rooms tab; resolves once its rooms are listed. */
async function openRoomsTab(p: Person): Promise<void> {
  await p.page.getByRole("link", { name: "Admin" }).click();
  await p.page.getByRole("link", { name: "Rooms" }).click();
  await p.page.getByRole("heading", { name: "Rooms" }).waitFor();
  await p.page.locator("li.room-admin").first().waitFor();
}

/** Opens the members panel (wide screens show it already). */
async function members(p: Person): Promise<void> {
  const button = p.page.locator('.topbar button[aria-label="Members"]');
  if (await button.getAttribute("aria-pressed") !== "true") await button.click();
  await p.page.locator('aside.panel[aria-label="Members"]').waitFor();
}

/** Waits until the page is connected again, pressing "Retry now" while it waits. */
async function reconnect(p: Person): Promise<void> {
  await until(async () => {
    if (await p.page.locator('.app[data-ready="true"]').count() > 0) return true;
    const retry = p.page.locator(".banner").getByRole("button", { name: "Retry now" });
    if (await retry.count() > 0) await retry.click({ timeout: 1000 }).catch(() => {});
    return false;
  }, `${p.name}'s page reconnects`);
}

/** The page's address after the `#`. */
async function hash(p: Person): Promise<string> {
  return await p.page.evaluate(() => location.hash);
}

Deno.test("web app: an admin renames a room; every member's app follows, with history, draft and unread", async () => {
  const server = await startTestServer({ users: users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    const carol = await person(browser, server.http + "/", "carol");
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    await signIn(carol, PASSWORDS.carol);
    const net = new Network();
    const laptop = await person(browser, server.http + "/", "bob", {
      setup: (c) => net.attach(c),
    });
    await signIn(laptop, PASSWORDS.bob);
    await join(carol, "ideas");
    await join(carol, "plans");
    await join(bob, "plans");
    // carol looks elsewhere: two unread in #plans.
    await open(carol, "general");
    await send(bob, "first plan");
    await send(bob, "second plan");
    await until(async () => (await badge(carol, "#plans")) === "2", "carol has 2 unread in #plans");

    // bob goes from general to plans (two history entries) and types without sending.
    await open(bob, "general");
    await open(bob, "plans");
    assert.equal(await hash(bob), "#/plans");
    const entries = await bob.page.evaluate(() => history.length);
    await bob.page.locator("#composer").fill("a draft about the plan");
    // bob's laptop is in the room too, with a draft of its own, and goes offline.
    await open(laptop, "plans");
    await laptop.page.locator("#composer").fill("typed on the laptop");
    await net.cut();
    await laptop.page.locator('.app[data-conn="waiting"]').waitFor();

    // A member is offered no rename in the members panel.
    await members(bob);
    await bob.page.getByRole("button", { name: "Leave #plans" }).waitFor();
    assert.equal(await bob.page.getByRole("button", { name: /^Rename/ }).count(), 0);

    // alice: the Rooms tab offers Rename on every row but general's.
    await openRoomsTab(alice);
    const general = alice.page.locator('li.room-admin[data-room="general"]');
    await general.getByRole("group", { name: "Settings of #general" }).waitFor();
    assert.equal(await general.getByRole("button", { name: /^Rename/ }).count(), 0);
    const row = alice.page.locator('li.room-admin[data-room="plans"]');
    await row.getByRole("button", { name: "Rename #plans" }).click();
    const form = row.getByRole("form", { name: "Rename #plans" });
    const field = form.getByLabel("New name for #plans");
    assert.equal(await field.inputValue(), "plans", "prefilled with the name");
    // Escape leaves it as it was.
    await field.press("Escape");
    assert.equal(await form.count(), 0);
    await row.getByRole("button", { name: "Rename #plans" }).click();

    // A taken name: the server's words under the field, nothing renamed.
    await field.fill("Ideas");
    await form.getByText("Renames it to #ideas").waitFor();
    await field.press("Enter");
    await form.getByRole("alert").filter({ hasText: 'There is a room "ideas" already' }).waitFor();
    assert.equal(await field.getAttribute("aria-invalid"), "true");
    assert.deepEqual(await sidebarRooms(bob), ["#general", "#plans"]);

    // Typed the way people type: the preview shows the name it becomes.
    await field.fill("Q3 Roadmap!");
    await form.getByText("Renames it to #q3-roadmap").waitFor();
    await screenshot(alice.page, "rename-room-desktop");
    await form.getByRole("button", { name: "Save" }).click();
    await alice.page.locator('li.room-admin[data-room="q3-roadmap"]')
      .getByRole("status").filter({ hasText: "#plans is called #q3-roadmap now" }).waitFor();
    assert.equal(await alice.page.locator('li.room-admin[data-room="plans"]').count(), 0);

    // bob's page: the same place under the new name, replaced in the history.
    await bob.page.locator(".topbar h1", { hasText: "q3-roadmap" }).waitFor();
    await until(async () => (await hash(bob)) === "#/q3-roadmap", "bob's address follows");
    assert.equal(await bob.page.evaluate(() => history.length), entries, "no new history entry");
    await bob.page.locator(".notice", { hasText: "alice renamed #plans to #q3-roadmap" })
      .waitFor();
    await bob.page.locator(".msg", { hasText: "first plan" }).waitFor();
    assert.equal(await bob.page.locator("#composer").inputValue(), "a draft about the plan");
    assert.deepEqual(await sidebarRooms(bob), ["#general", "#q3-roadmap"]);
    assert.equal(await bob.page.title(), "#q3-roadmap · Chat");
    await bob.page.getByRole("button", { name: "Leave #q3-roadmap" }).waitFor();
    await screenshot(bob.page, "renamed-room-desktop");

    // carol's app: the room under its new name, with her unread count; no ghost of #plans.
    await carol.page.locator('[data-conv="#q3-roadmap"]').waitFor();
    assert.deepEqual(await sidebarRooms(carol), ["#general", "#ideas", "#q3-roadmap"]);
    assert.equal(await badge(carol, "#q3-roadmap"), "2");

    // Sending works under the new name: bob's draft goes, carol's count goes up.
    await bob.page.locator("#composer").press("Enter");
    await bob.page.locator(".msg:not(.pending)", { hasText: "a draft about the plan" }).waitFor();
    await until(
      async () => (await badge(carol, "#q3-roadmap")) === "3",
      "carol has 3 unread in #q3-roadmap",
    );
    await open(carol, "q3-roadmap");
    await carol.page.locator(".msg", { hasText: "a draft about the plan" }).waitFor();

    // Back goes to where bob was before the room; Forward to the room, by its new name.
    await bob.page.goBack();
    await bob.page.locator(".topbar h1", { hasText: "general" }).waitFor();
    await bob.page.goForward();
    await bob.page.locator(".topbar h1", { hasText: "q3-roadmap" }).waitFor();
    assert.equal(await hash(bob), "#/q3-roadmap");
    // A link to a message of the old name, opened later in this page, follows the rename.
    const id = await bob.page.locator(".msg", { hasText: "first plan" }).getAttribute("data-id");
    await open(bob, "general");
    await bob.page.evaluate((h) => (location.hash = h), `#/plans/${id}`);
    await bob.page.locator(".topbar h1", { hasText: "q3-roadmap" }).waitFor();
    await until(async () => (await hash(bob)) === `#/q3-roadmap/${id}`, "the link is rewritten");
    assert.deepEqual(await sidebarRooms(bob), ["#general", "#q3-roadmap"]);

    // While the laptop is away, carol says more than a join's page in the room: the laptop
    // must take up from where it was, not from the newest page. A new sign-in is told the rename.
    const carolSocket = await signInSocket(server.ws, "carol", PASSWORDS.carol);
    try {
      assert.deepEqual(carolSocket.welcome.renamed, [{ room: "plans", name: "q3-roadmap" }]);
      for (let i = 1; i <= AWAY; i++) {
        carolSocket.send({
          type: "send",
          room: "q3-roadmap",
          text: `while away ${i}`,
          ref: `a${i}`,
        });
      }
      for (let i = 1; i <= AWAY; i++) {
        await carolSocket.next((f) => f.type === "message" && f.ref === `a${i}`);
      }
    } finally {
      await carolSocket.close();
    }

    // The laptop comes back: the room under its new name, its history and draft, no ghost.
    net.restore();
    await reconnect(laptop);
    await laptop.page.locator(".topbar h1", { hasText: "q3-roadmap" }).waitFor();
    await laptop.page.locator(".notice", {
      hasText: "#plans was renamed to #q3-roadmap while you were away",
    }).waitFor();
    await laptop.page.locator(".msg", { hasText: "a draft about the plan" }).waitFor();
    await laptop.page.locator(".msg", { hasText: `while away ${AWAY}` }).waitFor();
    // Every message, from before it went away to the last one said meanwhile: no hole.
    assert.equal(await laptop.page.locator(".msg", { hasText: "while away " }).count(), AWAY);
    await laptop.page.locator(".msg", { hasText: "first plan" }).waitFor();
    assert.equal(await laptop.page.locator(".notice", { hasText: "no longer kept" }).count(), 0);
    assert.deepEqual(await sidebarRooms(laptop), ["#general", "#q3-roadmap"]);
    assert.equal(await laptop.page.locator("#composer").inputValue(), "typed on the laptop");
    await until(async () => (await hash(laptop)) === "#/q3-roadmap", "the laptop's address");
    // The picture shows where the laptop left off: the line, then what came meanwhile.
    await laptop.page.locator(".notice", { hasText: "while you were away" })
      .scrollIntoViewIfNeeded();
    await screenshot(laptop.page, "renamed-while-away-desktop");

    // A page signed in after the rename knows only the new name.
    const later = await person(browser, server.http + "/", "carol");
    await signIn(later, PASSWORDS.carol);
    await later.page.locator('[data-conv="#q3-roadmap"]').waitFor();
    assert.deepEqual(await sidebarRooms(later), ["#general", "#ideas", "#q3-roadmap"]);
    await open(later, "q3-roadmap");
    await later.page.locator(".msg", { hasText: `while away ${AWAY}` }).waitFor();
    await later.context.close();

    // From the room itself: an admin's members panel offers Rename, not in general.
    await alice.page.getByRole("button", { name: "Back to the chat" }).click();
    await join(alice, "q3-roadmap");
    await members(alice);
    await alice.page.getByRole("button", { name: "Rename #q3-roadmap…" }).click();
    const here = alice.page.getByRole("form", { name: "Rename #q3-roadmap" });
    await here.getByLabel("New name for #q3-roadmap").fill("roadmap");
    await here.getByText("Renames it to #roadmap").waitFor();
    await screenshot(alice.page, "rename-panel-desktop");
    await here.getByLabel("New name for #q3-roadmap").press("Enter");
    // alice is in the room: her own app moves it too, with one line in the room.
    await alice.page.locator(".topbar h1", { hasText: "roadmap" }).waitFor();
    await alice.page.getByRole("button", { name: "Rename #roadmap…" }).waitFor();
    assert.equal(await here.count(), 0);
    await until(async () => (await hash(alice)) === "#/roadmap", "alice's address follows");
    assert.equal(
      await alice.page.locator(".notice", { hasText: "alice renamed #q3-roadmap to #roadmap" })
        .count(),
      1,
    );
    await until(
      async () => (await sidebarRooms(bob)).join() === "#general,#roadmap",
      "bob's sidebar follows the second rename",
    );
    // A link to the first name follows both renames.
    await bob.page.evaluate((h) => (location.hash = h), `#/plans/${id}`);
    await until(async () => (await hash(bob)) === `#/roadmap/${id}`, "the link follows twice");
    await open(alice, "general");
    await members(alice);
    assert.equal(await alice.page.getByRole("button", { name: /^Rename/ }).count(), 0);

    assert.deepEqual([...alice.errors, ...bob.errors, ...carol.errors, ...laptop.errors], []);
  }, server);
});
