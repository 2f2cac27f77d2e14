/**
 * Private, read-only and archived rooms in the web app, in real browsers on a
 * real server: bob creates a private room with the room browser's switch
 * (a lock in the sidebar, the header and the browser); carol neither sees it
 * listed nor joins it by name (the server's words show); bob adds carol from
 * the members panel (refusals in words too) and carol's app says who added
 * her, with the room and its history. Alice, an admin, makes a room
 * read-only from the admin page's Rooms tab (bob's composer gives way to a
 * line at once, alice still posts), archives one (gone from the room
 * browser), sets a default room (`GET /api/rooms` shows it), is refused for
 * `general` in the server's words, and removes bob from a room from its
 * members panel. Screenshots of the private room, the Rooms tab (desktop,
 * phone) and a read-only room.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { startTestServer, type TestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { type Person, person, send, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-pass", bob: "bob-pass-1", carol: "carol-pass" };

/** users.json: alice is the admin, bob and carol members. */
function users(): Record<string, string | { password: string; role: string }> {
  return {
    alice: { password: PASSWORDS.alice, role: "admin" },
    bob: PASSWORDS.bob,
    carol: PASSWORDS.carol,
  };
}

/** The session token the page keeps. */
async function tokenOf(page: Page): Promise<string> {
  const token = await page.evaluate(() => localStorage.getItem("chat.token"));
  assert.ok(token, "the page keeps a session token");
  return token;
}

/** `GET /api/rooms` as an admin. */
async function apiRooms(
  server: TestServer,
  token: string,
): Promise<
  { name: string; members: number; private?: true; autoJoin?: true; restrictRoomMentions?: true }[]
> {
  const res = await fetch(server.http + "/api/rooms", {
    headers: { authorization: `Bearer ${token}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()).rooms;
}

/** Opens the room browser; resolves once its list of rooms arrived. */
async function openBrowser(p: Person): Promise<void> {
  if (p.phone) await p.page.getByRole("button", { name: /^Conversations/ }).click();
  await p.page.getByRole("button", { name: "Browse or create rooms" }).click();
  await p.page.locator("#rooms-dialog ul.room-list").waitFor();
}

/** The names the room browser lists, in order. */
async function listed(p: Person): Promise<string[]> {
  return await p.page.locator("#rooms-dialog .room-list .room-name").evaluateAll((els) =>
    els.map((e) => e.firstChild!.textContent!.trim())
  );
}

/** Creates (or joins) `room` from the room browser, private when asked; waits until it is open. */
async function join(p: Person, room: string, opts: { private?: boolean } = {}): Promise<void> {
  await openBrowser(p);
  await p.page.locator("#room-input").fill(room);
  if (opts.private) await p.page.getByRole("switch", { name: "Private" }).check();
  await p.page.locator("#room-input").press("Enter");
  await p.page.locator(".topbar h1", { hasText: room }).waitFor();
}

/** Opens a conversation from the sidebar. */
async function open(p: Person, room: string): Promise<void> {
  await p.page.locator(`[data-conv="#${room}"]`).click();
  await p.page.locator(".topbar h1", { hasText: room }).waitFor();
}

/** Opens the members panel (wide screens show it already). */
async function members(p: Person): Promise<void> {
  const button = p.page.locator('.topbar button[aria-label="Members"]');
  if (await button.getAttribute("aria-pressed") !== "true") await button.click();
  await p.page.locator('aside.panel[aria-label="Members"]').waitFor();
}

/** A toast with this text. */
async function toast(p: Person, text: string): Promise<void> {
  await p.page.locator(".toast", { hasText: text }).first().waitFor();
}

/** Opens the admin page's Rooms tab; resolves once its rooms are listed. */
async function openRoomsTab(p: Person): Promise<void> {
  if (p.phone) await p.page.getByRole("button", { name: /^Conversations/ }).click();
  await p.page.getByRole("link", { name: "Admin" }).click();
  await p.page.getByRole("link", { name: "Rooms" }).click();
  await p.page.getByRole("heading", { name: "Rooms" }).waitFor();
  assert.match(p.page.url(), /#\/admin\/rooms$/);
  await p.page.locator("li.room-admin").first().waitFor();
}

/** Flips a switch of a room in the Rooms tab; resolves the row's answer (note or error). */
async function flip(p: Person, room: string, label: string): Promise<string> {
  const row = p.page.locator(`li.room-admin[data-room="${room}"]`);
  const note = row.locator(".person-note, .form-error");
  await row.getByRole("switch", { name: label }).click();
  await note.first().waitFor();
  return (await note.first().textContent())!.trim();
}

Deno.test("web app: a private room is created with a switch, stays hidden, and members add people", async () => {
  const server = await startTestServer({ users: users() });
  await withBrowser(async (browser) => {
    const bob = await person(browser, server.http + "/", "bob");
    const carol = await person(browser, server.http + "/", "carol");
    await signIn(bob, PASSWORDS.bob);
    await signIn(carol, PASSWORDS.carol);

    // The switch is offered for a room that does not exist yet, not for one that does.
    await openBrowser(bob);
    await bob.page.locator("#room-input").fill("general");
    assert.equal(await bob.page.getByRole("switch", { name: "Private" }).count(), 0);
    await bob.page.getByRole("button", { name: "Close", exact: true }).click();
    await join(bob, "plans", { private: true });
    await bob.page.locator(".topbar h1 .hash.lock").waitFor();
    assert.equal(await bob.page.locator('[data-conv="#plans"] .conv-icon.private').count(), 1);
    assert.equal(
      await bob.page.locator(".topbar .subtitle-text").textContent(),
      "Private · 1 member · 1 online",
    );
    await send(bob, "the secret plan");

    // carol: not in her room browser; joining by name gets the server's words.
    await openBrowser(carol);
    assert.deepEqual(await listed(carol), ["general"]);
    await carol.page.locator("#room-input").fill("plans");
    await carol.page.locator("#room-input").press("Enter");
    await toast(
      carol,
      'There is no room "plans" you can join: a private room is joined by invitation',
    );
    assert.equal(await carol.page.locator('[data-conv="#plans"]').count(), 0);

    // bob adds people from the members panel: refusals in words, then carol.
    await members(bob);
    await bob.page.getByRole("button", { name: "Add people…" }).click();
    const form = bob.page.getByRole("form", { name: "Add people to #plans" });
    await form.locator("#add-person-input").fill("nobody");
    await form.getByRole("button", { name: "Add", exact: true }).click();
    await form.getByRole("alert").filter({ hasText: 'There is no user "nobody"' }).waitFor();
    await form.locator("#add-person-input").fill("car");
    // The directory offers carol (bob, in the room already, is not offered).
    const choices = form.getByRole("list", { name: "People to add" });
    await choices.getByRole("button", { name: /carol/ }).waitFor();
    assert.deepEqual(
      await choices.locator(".person-name").allTextContents(),
      ["carol"],
    );
    await choices.getByRole("button", { name: /carol/ }).click();
    await form.getByRole("status").filter({ hasText: "carol is in #plans now" }).waitFor();
    await bob.page.locator('.panel [data-member="carol"]').waitFor();
    await bob.page.locator(".notice", { hasText: "bob added carol to #plans" }).waitFor();
    await screenshot(bob.page, "private-room-desktop");
    // Adding her again is refused in the server's words.
    await form.locator("#add-person-input").fill("carol");
    await form.getByRole("button", { name: "Add", exact: true }).click();
    await form.getByRole("alert").filter({ hasText: '"carol" is in #plans already' }).waitFor();

    // carol's app: who added her, the room (locked) with its history.
    await toast(carol, "bob added you to #plans");
    await carol.page.locator('[data-conv="#plans"] .conv-icon.private').waitFor();
    await carol.page.keyboard.press("Escape");
    await open(carol, "plans");
    await carol.page.locator(".notice", { hasText: "bob added you to #plans" }).waitFor();
    await carol.page.locator(".msg", { hasText: "the secret plan" }).waitFor();
    await carol.page.locator(".topbar h1 .hash.lock").waitFor();
    // Now a member, she sees it in the room browser, with its lock.
    await openBrowser(carol);
    assert.deepEqual(await listed(carol), ["general", "plans"]);
    assert.equal(
      await carol.page.locator("#rooms-dialog .room-list .conv-icon.private").count(),
      1,
    );
    await carol.page.getByRole("button", { name: "Close", exact: true }).click();

    // In a private room the mention hint's "Invite them" adds the person (a link would not let
    // them in).
    await join(bob, "ideas", { private: true });
    await bob.page.locator("#composer").fill("@carol have a look");
    await bob.page.locator(".mention-hint", { hasText: "carol isn't in #ideas" }).waitFor();
    await bob.page.getByRole("button", { name: "Invite them" }).click();
    await toast(bob, "Added carol to #ideas");
    await toast(carol, "bob added you to #ideas");
    await carol.page.locator('[data-conv="#ideas"] .conv-icon.private').waitFor();
    assert.equal(await bob.page.locator('[data-conv="@carol"]').count(), 0, "no DM with a link");

    assert.deepEqual([...bob.errors, ...carol.errors], []);
  }, server);
});

Deno.test("web app: the admin's Rooms tab sets read-only, archived and default rooms; admins remove people", async () => {
  const server = await startTestServer({ users: users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    for (const room of ["news", "old", "lounge"]) await join(bob, room);
    await join(bob, "hideout", { private: true });
    await join(alice, "news");
    await join(alice, "lounge");
    await open(bob, "news");
    await send(bob, "bob's note");

    await openRoomsTab(alice);
    assert.deepEqual(
      await alice.page.locator("li.room-admin").evaluateAll((els) =>
        els.map((e) => e.getAttribute("data-room"))
      ),
      ["general", "hideout", "lounge", "news", "old"],
    );
    // A private room alice is not in is listed, but only its members manage it.
    const hideout = alice.page.locator('li.room-admin[data-room="hideout"]');
    await hideout.getByText("You are not in #hideout: only its members manage a private room")
      .waitFor();
    assert.equal(
      await hideout.getByRole("switch", { name: "Read-only" }).getAttribute("aria-disabled"),
      "true",
    );

    // Read-only: bob's composer gives way to a line at once, and the room says who did it.
    assert.equal(
      await flip(alice, "news", "Read-only"),
      "#news is read-only now: only admins post",
    );
    await bob.page.locator(".closed-bar", { hasText: "Only admins post in #news" }).waitFor();
    assert.equal(await bob.page.locator("#composer").count(), 0);
    await bob.page.locator(".notice", { hasText: "alice made #news read-only" }).waitFor();
    // bob may react to his message there, but neither edit it, reply, nor set the topic.
    const note = bob.page.locator(".msg", { hasText: "bob's note" });
    await note.hover();
    await note.getByRole("button", { name: /^Add a reaction/ }).waitFor();
    assert.equal(await note.getByRole("button", { name: /^(Edit|Reply)/ }).count(), 0);
    assert.equal(await bob.page.locator(".topbar .topic-btn").count(), 0);
    await screenshot(alice.page, "admin-rooms-desktop");

    // general cannot be private: the server's words.
    assert.equal(
      await flip(alice, "general", "Private"),
      'Everyone is in "general": it stays open',
    );

    // A default room round-trips through the server.
    const token = await tokenOf(alice.page);
    assert.equal(
      await flip(alice, "lounge", "Default room"),
      "#lounge is a default room now: new accounts join it",
    );
    assert.equal((await apiRooms(server, token)).find((r) => r.name === "lounge")?.autoJoin, true);
    assert.equal(
      await flip(alice, "lounge", "Default room"),
      "#lounge is no longer a default room",
    );
    assert.equal(
      (await apiRooms(server, token)).find((r) => r.name === "lounge")?.autoJoin,
      undefined,
    );

    // Archived: read-only for everyone, gone from the room browser.
    assert.equal(
      await flip(alice, "old", "Archived"),
      "#old is archived: kept, read-only, out of the list",
    );
    await open(bob, "old");
    await bob.page.locator(".closed-bar", { hasText: "#old is archived: read-only" }).waitFor();
    await openBrowser(bob);
    assert.deepEqual(await listed(bob), ["general", "hideout", "lounge", "news"]);
    await bob.page.getByRole("button", { name: "Close", exact: true }).click();

    // The Rooms tab on a phone.
    const phone = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(phone, PASSWORDS.alice);
    await openRoomsTab(phone);
    await screenshot(phone.page, "admin-rooms-phone");
    await phone.context.close();

    // Alice, an admin, still posts in the read-only room; bob reads it there.
    await alice.page.getByRole("button", { name: "Back to the chat" }).click();
    await open(alice, "news");
    await send(alice, "Release on Friday");
    await open(bob, "news");
    await bob.page.locator(".msg", { hasText: "Release on Friday" }).waitFor();
    await screenshot(bob.page, "read-only-room-desktop");

    // Alice removes bob from #lounge from its members panel, after one question.
    await open(alice, "lounge");
    await members(alice);
    const row = alice.page.locator('.panel [data-member="bob"]');
    await row.hover();
    await row.getByRole("button", { name: "Remove bob from #lounge" }).click();
    await row.getByRole("button", { name: "Remove from room" }).click();
    await toast(bob, "alice removed you from #lounge");
    await until(
      async () => (await alice.page.locator('.panel [data-member="bob"]').count()) === 0,
      "bob leaves alice's members list",
    );
    await alice.page.locator(".notice", { hasText: "alice removed bob from #lounge" }).waitFor();
    // A member is offered no "Remove".
    await open(bob, "news");
    await members(bob);
    await bob.page.locator('.panel [data-member="alice"]').waitFor();
    assert.equal(await bob.page.locator(".panel .member-remove").count(), 0);

    assert.deepEqual([...alice.errors, ...bob.errors], []);
  }, server);
});

Deno.test("web app: an admin lets only admins use @room from the Rooms tab; a member's @room comes back Not sent in the server's words", async () => {
  const server = await startTestServer({ users: users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    await join(bob, "dev");
    await join(alice, "dev");

    await openRoomsTab(alice);
    const row = alice.page.locator('li.room-admin[data-room="dev"]');
    const toggle = row.getByRole("switch", { name: "Only admins may use @room" });
    assert.equal(await toggle.isChecked(), false);
    assert.equal(
      await flip(alice, "dev", "Only admins may use @room"),
      "#dev lets only admins use @room and @here now",
    );
    assert.equal(await toggle.isChecked(), true);
    const token = await tokenOf(alice.page);
    assert.equal(
      (await apiRooms(server, token)).find((r) => r.name === "dev")?.restrictRoomMentions,
      true,
    );
    await screenshot(alice.page, "admin-rooms-mentions-desktop");

    // bob's room says who did it; his @room is refused, in the server's words.
    await bob.page.locator(".notice", {
      hasText: "alice let only admins use @room and @here in #dev",
    })
      .waitFor();
    const box = bob.page.locator("#composer");
    await box.fill("@room lunch?");
    await box.press("Enter");
    const failed = bob.page.locator(".msg.pending.failed", { hasText: "@room lunch?" });
    await failed.getByText("Not sent: Only admins may notify everyone in #dev with @room or @here")
      .waitFor();
    await failed.getByRole("button", { name: "Delete" }).waitFor();
    // The connection goes on: a message without @room is sent, and alice's @room goes too.
    await send(bob, "lunch anyone?");
    await alice.page.getByRole("button", { name: "Back to the chat" }).click();
    await open(alice, "dev");
    await send(alice, "@here release at 5");
    await bob.page.locator(".msg:not(.pending)", { hasText: "@here release at 5" }).waitFor();
    assert.equal(
      await alice.page.locator(".msg", { hasText: "@room lunch?" }).count(),
      0,
      "nothing of the refused message reached alice",
    );

    // Turned off again from the tab.
    await openRoomsTab(alice);
    assert.equal(
      await flip(alice, "dev", "Only admins may use @room"),
      "#dev lets everyone use @room and @here again",
    );
    assert.equal(
      (await apiRooms(server, token)).find((r) => r.name === "dev")?.restrictRoomMentions,
      undefined,
    );
    await bob.page.locator(".notice", {
      hasText: "alice let everyone use @room and @here in #dev again",
    })
      .waitFor();

    assert.deepEqual([...alice.errors, ...bob.errors], []);
  }, server);
});
