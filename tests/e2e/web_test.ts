/**
 * The web app in a real browser: two people (alice on a desktop, bob on a
 * phone and a laptop) chat in rooms and privately, see typing, presence and
 * unread counts, reload, lose the server and catch up, and search. Saves
 * screenshots of the main screens under tests/e2e/screenshots/.
 */
import assert from "node:assert/strict";
import type { Browser } from "playwright-core";
import { MemoryStore } from "../../server/store/memory.ts";
import { conversationKey } from "../../protocol.ts";
import {
  freePort,
  hashPassword,
  signIn as connect,
  startTestServer,
  type TestServer,
} from "../helpers.ts";
import { launchBrowser, screenshot } from "./browser.ts";
import { type Person, person, ready, send, signIn, until } from "./people.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password" };

/** Opens a conversation from the sidebar (the drawer, on a phone). */
async function openConv(p: Person, key: string): Promise<void> {
  if (p.phone) {
    await p.page.getByRole("button", { name: /^Conversations/ }).click();
    await p.page.locator(".sidebar.open").waitFor();
  }
  await p.page.locator(`[data-conv="${key}"]`).click();
  await p.page.locator(`[data-conv="${key}"][aria-current="page"]`).waitFor({ state: "attached" });
  if (p.phone) await p.page.locator(".sidebar.open").waitFor({ state: "detached" });
}

function badge(p: Person, key: string) {
  return p.page.locator(`[data-conv="${key}"] .badge`);
}

/** Ids of the message rows in the open conversation, in page order. */
function rowIds(p: Person): Promise<number[]> {
  return p.page.locator(".msg[data-id]").evaluateAll((els) =>
    els.map((e) => Number((e as HTMLElement).dataset.id))
  );
}

Deno.test("web app: two people chat in rooms and privately, across reloads and a server restart", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "chat-web-" });
  const users = {
    alice: await hashPassword(PASSWORDS.alice),
    bob: await hashPassword(PASSWORDS.bob),
  };
  // One store for both server runs: the restarted server keeps the history.
  const store = new MemoryStore({ limit: 1000 });
  const port = freePort();
  // users.json is written once: the restart must find carol's sign-up in it.
  const start = (first = false) =>
    startTestServer({
      users: first ? users : undefined,
      dir,
      store,
      args: ["--port", String(port), "--allow-signup", "--history", "1000", "--burst", "300"],
    });
  let server: TestServer = await start(true);
  const url = server.http + "/";
  let browser: Browser | undefined;
  const people: Person[] = [];
  try {
    browser = await launchBrowser();
    const b = browser;
    const alice = await person(b, url, "alice");
    const bob = await person(b, url, "bob", { phone: true });
    const carol = await person(b, url, "carol");
    people.push(alice, bob, carol);

    await t.step("the sign-in form shows the server's answers inline", async () => {
      await carol.page.getByLabel("Username").waitFor();
      await bob.page.getByLabel("Username").waitFor();
      await screenshot(carol.page, "signin-desktop");
      await screenshot(bob.page, "signin-phone");
      await carol.page.getByLabel("Username").fill("alice");
      await carol.page.getByLabel("Password").fill("not-her-password");
      await carol.page.getByRole("button", { name: "Sign in", exact: true }).click();
      await carol.page.getByRole("alert").filter({ hasText: "Wrong username or password" })
        .waitFor();
      await carol.page.getByRole("tab", { name: "Create account" }).click();
      await carol.page.getByLabel("Username").fill("alice");
      await carol.page.getByLabel("Password").fill("long-enough-password");
      await carol.page.getByRole("button", { name: "Create account" }).click();
      await carol.page.getByRole("alert")
        .filter({ hasText: 'The name "alice" is taken: choose another' }).waitFor();
      await carol.page.getByLabel("Username").fill("carol");
      await carol.page.getByLabel("Password").fill("short");
      await carol.page.getByRole("button", { name: "Create account" }).click();
      await carol.page.getByRole("alert").filter({ hasText: "at least 8 characters" }).waitFor();
      await carol.page.getByLabel("Password").fill("carol-password");
      await carol.page.getByRole("button", { name: "Create account" }).click();
      await ready(carol);
      const saved = JSON.parse(await Deno.readTextFile(`${dir}/users.json`));
      assert.deepEqual(Object.keys(saved).sort(), ["alice", "bob", "carol"]);
      assert.match(saved.carol, /^\$argon2id\$/, "the new password is stored hashed");
    });

    await t.step("two people sign in and see each other online", async () => {
      await signIn(alice, PASSWORDS.alice);
      await signIn(bob, PASSWORDS.bob);
      await alice.page.locator('[data-list="online"] .person-name', { hasText: /^bob$/ }).waitFor();
      await alice.page.locator(".subtitle", { hasText: "3 members · 3 online" }).waitFor();
    });

    await t.step("room messages with mentions and links", async () => {
      await send(alice, "Morning! Is the deploy still on for 5pm?");
      await bob.page.locator(".msg", { hasText: "Is the deploy still on" }).waitFor();
      await send(bob, "Yes. The checklist is at https://example.com/deploy-checklist");
      await send(carol, "I can take the database migration.");
      await send(alice, "Great, thanks @bob\nI'll watch the dashboards.");
      const mention = bob.page.locator(".msg.mentions-me .mention.self", { hasText: "@bob" });
      await mention.waitFor();
      const multi = bob.page.locator(".msg-text", { hasText: "Great, thanks" });
      assert.equal(
        (await multi.innerText()).trim(),
        "Great, thanks @bob\nI'll watch the dashboards.",
        "new lines are kept",
      );
      const link = alice.page.locator('a[href="https://example.com/deploy-checklist"]');
      await link.waitFor();
      assert.equal(await link.getAttribute("rel"), "noopener noreferrer");
      assert.equal(await link.getAttribute("target"), "_blank");
      // Own messages show at once and are reconciled: one copy, nothing pending.
      assert.equal(await alice.page.locator(".msg.pending").count(), 0);
      const texts = await alice.page.locator(".msg-text").allInnerTexts();
      assert.equal(texts.filter((x) => x.includes("Great, thanks")).length, 1);
    });

    await t.step("typing shows on the other side and clears", async () => {
      const box = bob.page.locator("#composer");
      await box.pressSequentially("Sounds g");
      const line = alice.page.locator(".typing", { hasText: "bob is typing…" });
      await line.waitFor();
      await screenshot(alice.page, "chat-desktop");
      await screenshot(bob.page, "chat-phone");
      await alice.page.emulateMedia({ colorScheme: "dark" });
      const bg = await alice.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
      assert.equal(bg, "rgb(22, 24, 29)", "dark colours follow prefers-color-scheme");
      await screenshot(alice.page, "chat-desktop-dark");
      await alice.page.emulateMedia({ colorScheme: "light" });
      await box.fill("");
      await line.waitFor({ state: "detached" });
    });

    await t.step("Enter sends, Shift+Enter adds a line, long words wrap", async () => {
      const box = alice.page.locator("#composer");
      await box.pressSequentially("two");
      await box.press("Shift+Enter");
      await box.pressSequentially("lines");
      assert.equal(await box.inputValue(), "two\nlines");
      await box.press("Enter");
      const row = bob.page.locator(".msg-text", { hasText: "two" }).filter({ hasText: "lines" });
      await row.waitFor();
      assert.equal((await row.innerText()).trim(), "two\nlines");
      assert.equal(await box.inputValue(), "");
      const long = "x".repeat(400);
      await send(alice, long);
      await bob.page.locator(".msg-text", { hasText: long }).waitFor();
      const overflow = await bob.page.locator(".messages").evaluate((el) =>
        el.scrollWidth - el.clientWidth
      );
      assert.equal(overflow, 0, "a long word wraps instead of widening the page");
    });

    let bob2!: Person;
    await t.step("rooms: create, browse, join, and unread counts", async () => {
      await alice.page.getByRole("button", { name: "Browse or create rooms" }).click();
      const dialog = alice.page.getByRole("dialog", { name: "Rooms" });
      // Nothing usable in the name: nothing to create.
      await dialog.getByLabel("Create or join a room").fill("!!!");
      assert.ok(await dialog.getByRole("button", { name: "Create" }).isDisabled());
      await dialog.getByLabel("Create or join a room").fill("ops");
      await dialog.getByRole("button", { name: "Create" }).click();
      await alice.page.locator(".title h1", { hasText: "ops" }).waitFor();
      await dialog.waitFor({ state: "detached" });

      await bob.page.getByRole("button", { name: /^Conversations/ }).click();
      await bob.page.getByRole("button", { name: "Browse or create rooms" }).click();
      const browse = bob.page.getByRole("dialog", { name: "Rooms" });
      await browse.getByRole("button", { name: "Join #ops" }).waitFor();
      await browse.locator(".room-list li", { hasText: "general" }).getByText("3 members")
        .waitFor();
      await screenshot(bob.page, "rooms-phone");
      await browse.getByRole("button", { name: "Join #ops" }).click();
      await bob.page.locator(".title h1", { hasText: "ops" }).waitFor();
      await alice.page.locator(".notice", { hasText: "bob joined #ops" }).waitFor();
      await openConv(bob, "#general");

      // Bob's laptop: signs in and sits in #general.
      bob2 = await person(b, url, "bob", { notifications: true });
      people.push(bob2);
      await signIn(bob2, PASSWORDS.bob);
      await bob2.page.locator('[data-conv="#ops"]').waitFor();

      await send(alice, "deploy starts at 5, I'll post updates here");
      await send(alice, "@bob can you watch the error rates?");
      await badge(bob2, "#ops").filter({ hasText: "2" }).waitFor();
      assert.match(await badge(bob2, "#ops").getAttribute("class") ?? "", /strong/, "a mention");
      await until(
        async () => (await bob2.page.title()) === "(2) #general · Chat",
        "the tab title counts unread messages",
      );
      await bob.page.getByRole("button", { name: "Conversations (2 unread)" }).click();
      await badge(bob, "#ops").filter({ hasText: "2" }).waitFor();
      await screenshot(bob.page, "drawer-phone");
      await bob.page.locator(".scrim").click({ position: { x: 370, y: 400 } });
    });

    await t.step("reading on the phone clears the badge on the laptop", async () => {
      await openConv(bob, "#ops");
      await bob.page.locator(".msg", { hasText: "can you watch the error rates" }).waitFor();
      await bob.page.locator(".divider", { hasText: "New" }).waitFor();
      await screenshot(bob.page, "unread-phone");
      await badge(bob2, "#ops").waitFor({ state: "detached" });
      await until(async () => (await bob2.page.title()) === "#general · Chat", "title clears");
    });

    await t.step("direct messages open from a name and have their own badges", async () => {
      await alice.page.locator('[data-list="online"] .person', { hasText: "bob" }).click();
      await alice.page.locator(".title h1", { hasText: /^bob$/ }).waitFor();
      await send(alice, "psst, a secret");
      await badge(bob2, "@alice").filter({ hasText: "1" }).waitFor();
      await openConv(bob, "@alice");
      await bob.page.locator(".msg", { hasText: "psst, a secret" }).waitFor();
      await badge(bob2, "@alice").waitFor({ state: "detached" });
      await send(bob, "got it, thanks");
      await alice.page.locator(".msg", { hasText: "got it" }).waitFor();
      assert.equal(
        await carol.page.locator(".msg", { hasText: "psst" }).count(),
        0,
        "a DM reaches nobody else",
      );
    });

    await t.step("markup in a message renders as text", async () => {
      const attack = `<img src=x onerror="document.title='pwned';window.__xss=1"><b>bold</b>`;
      await send(alice, attack);
      const row = bob.page.locator(".msg-text", { hasText: "<img src=x" });
      await row.waitFor();
      assert.equal((await row.innerText()).trim(), attack);
      assert.equal(await bob.page.locator(".messages img, .messages b").count(), 0);
      for (const p of [alice, bob]) {
        assert.equal(await p.page.evaluate(() => "__xss" in globalThis), false);
        assert.notEqual(await p.page.title(), "pwned");
      }
    });

    await t.step("search finds messages here and everywhere, and jumps to them", async () => {
      await alice.page.keyboard.press("Control+Shift+F");
      const panel = alice.page.getByRole("complementary", { name: "Search" });
      await panel.getByLabel("Search messages").fill("deploy");
      await panel.getByLabel("Search messages").press("Enter");
      await panel.getByText("No messages match “deploy”.").waitFor();
      await panel.getByText("All rooms").click();
      const results = panel.locator(".result");
      await until(async () => (await results.count()) === 3, "three results everywhere");
      await panel.locator("mark", { hasText: /^deploy$/i }).first().waitFor();
      await screenshot(alice.page, "search-desktop");
      await results.filter({ hasText: "#ops" }).click();
      await alice.page.locator(".title h1", { hasText: "ops" }).waitFor();
      await alice.page.locator(".msg.flash", { hasText: "deploy starts at 5" }).waitFor();
      await panel.getByText("In #ops").click();
      await until(async () => (await results.count()) === 1, "one result in #ops");
      await panel.getByRole("button", { name: "Close search" }).click();
    });

    await t.step("a reload keeps the session", async () => {
      await bob2.page.reload();
      await ready(bob2);
      await bob2.page.locator(".msg", { hasText: "Is the deploy still on" }).waitFor();
      await bob2.page.locator('[data-conv="@alice"]').waitFor();
      assert.equal(await bob2.page.getByLabel("Password").count(), 0);
    });

    await t.step("a mention while the tab is hidden notifies and marks the title", async () => {
      await bob2.page.evaluate(() => {
        Object.defineProperty(document, "visibilityState", { value: "hidden", configurable: true });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await openConv(alice, "#general");
      await send(alice, "@bob the deploy is done");
      await until(
        async () =>
          (await bob2.page.evaluate(() =>
            (globalThis as unknown as { __notes: unknown[] }).__notes
          )).length === 1,
        "a notification is raised",
      );
      const notes = await bob2.page.evaluate(() =>
        (globalThis as unknown as { __notes: unknown[] }).__notes
      );
      assert.deepEqual(notes, [{ title: "alice in #general", body: "@bob the deploy is done" }]);
      await until(async () => (await bob2.page.title()) === "(1) #general · Chat", "title counts");
      await bob2.page.evaluate(() => {
        Object.defineProperty(document, "visibilityState", {
          value: "visible",
          configurable: true,
        });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await until(async () => (await bob2.page.title()) === "#general · Chat", "read when seen");
    });

    await t.step(
      "after losing the server, everyone catches up with no duplicates or gaps",
      async () => {
        await openConv(bob, "#general");
        await bob.page.locator(".msg", { hasText: "the deploy is done" }).waitFor();
        const before = await rowIds(bob);
        await server.server.shutdown();
        for (const p of [alice, bob, bob2]) {
          await p.page.locator('.app[data-conn="waiting"]').waitFor();
        }
        await alice.page.locator(".banner", { hasText: "The server is restarting" })
          .filter({ hasText: "messages you write will be sent then" }).waitFor();
        // Written while offline: shown at once, sent when the connection is back.
        await alice.page.locator("#composer").fill("sent while offline");
        await alice.page.locator("#composer").press("Enter");
        await alice.page.locator(".msg.pending", { hasText: "Waiting for the connection" })
          .waitFor();
        await screenshot(alice.page, "offline-desktop");
        // Meanwhile more than a page of messages lands in the shared store.
        for (let i = 1; i <= 230; i++) {
          await store.append({
            conv: "general",
            room: "general",
            from: "carol",
            text: `away ${i}`,
          });
        }
        await store.append({
          conv: conversationKey("alice", { to: "bob" }),
          to: "bob",
          from: "alice",
          text: "while you were away",
        });
        server = await start();
        for (const p of [alice, bob, bob2]) await ready(p);
        await bob.page.locator(".msg", { hasText: "sent while offline" }).waitFor();
        await alice.page.locator(".msg.pending").waitFor({ state: "detached" });
        const after = await rowIds(bob);
        const first = after[0];
        assert.deepEqual(
          after,
          Array.from({ length: after.length }, (_, i) => first + i),
          "consecutive ids: no gaps, no duplicates",
        );
        assert.equal(after.length, before.length + 231);
        const texts = await bob.page.locator(".msg-text").allInnerTexts();
        for (const text of ["away 1", "away 117", "away 230", "sent while offline"]) {
          assert.equal(texts.filter((x) => x.trim() === text).length, 1, text);
        }
        await badge(bob, "@alice").filter({ hasText: "1" }).waitFor({ state: "attached" });
        await badge(bob2, "@alice").filter({ hasText: "1" }).waitFor();
        // The laptop has the same list after its own catch-up.
        await bob2.page.locator(".msg", { hasText: "sent while offline" }).waitFor();
        assert.deepEqual(await rowIds(bob2), after);
      },
    );

    await t.step("scrolling up loads older history and keeps the place", async () => {
      await bob2.page.reload();
      await ready(bob2);
      const rows = bob2.page.locator(".msg[data-id]");
      await until(async () => (await rows.count()) === 50, "the latest 50 messages load");
      const top = await rowIds(bob2);
      await bob2.page.locator(".messages").evaluate((el) => (el.scrollTop = 0));
      await until(async () => (await rows.count()) > 50, "older messages load");
      const ids = await rowIds(bob2);
      assert.deepEqual(ids.slice(-50), top, "older messages go above");
      assert.deepEqual(ids, Array.from({ length: ids.length }, (_, i) => ids[0] + i));
      const place = await bob2.page.locator(`.msg[data-id="${top[0]}"]`).evaluate((el) => {
        const list = el.closest(".messages")!.getBoundingClientRect();
        return el.getBoundingClientRect().top - list.top;
      });
      assert.ok(place >= -50, `the message that was on top stays in view (${place}px)`);
    });

    await t.step("a long unread stretch opens at the New line and is read at the end", async () => {
      const raw = await connect(server.ws, "alice", PASSWORDS.alice);
      try {
        for (let i = 1; i <= 60; i++) {
          raw.send({ type: "send", room: "ops", text: `status ${i}`, ref: `s${i}` });
        }
        await raw.next((f) => f.type === "message" && f.ref === "s60");
      } finally {
        await raw.close();
      }
      await badge(bob2, "#ops").filter({ hasText: "60" }).waitFor();
      await openConv(bob2, "#ops");
      const line = bob2.page.locator(".divider", { hasText: "New" });
      await line.waitFor();
      const jump = bob2.page.locator(".jump", { hasText: "60 new" });
      await jump.waitFor();
      const inView = (sel: string) =>
        bob2.page.locator(sel).evaluate((el) => {
          const list = el.closest(".messages")!.getBoundingClientRect();
          const r = el.getBoundingClientRect();
          return r.top >= list.top && r.bottom <= list.bottom;
        });
      assert.equal(await inView(".divider"), true, "the New line is on screen");
      assert.equal(await inView(".msg[data-id]:last-child"), false, "the end is not");
      await badge(bob, "#ops").filter({ hasText: "60" }).waitFor({ state: "attached" });
      await jump.click();
      await badge(bob, "#ops").waitFor({ state: "detached" });
      assert.equal(await inView(".msg[data-id]:last-child"), true);
    });

    await t.step("leaving a room takes it off every device and tells the others", async () => {
      await openConv(bob2, "#ops");
      // The members panel is open beside the messages on a wide screen.
      await bob2.page.getByRole("button", { name: "Leave #ops" }).click();
      await bob2.page.locator('[data-conv="#ops"]').waitFor({ state: "detached" });
      await bob2.page.locator(".title h1", { hasText: "general" }).waitFor();
      await bob.page.locator('[data-conv="#ops"]').waitFor({ state: "detached" });
      await openConv(alice, "#ops");
      await alice.page.locator(".notice", { hasText: "bob left #ops" }).waitFor();
      await alice.page.locator(".subtitle", { hasText: "1 member" }).waitFor();
    });

    await t.step("signing out forgets the session; a bad token returns to sign-in", async () => {
      await carol.page.getByRole("button", { name: "Sign out" }).click();
      await carol.page.getByLabel("Username").waitFor();
      assert.equal(await carol.page.evaluate(() => localStorage.getItem("chat.token")), null);
      await carol.page.reload();
      await carol.page.getByLabel("Username").waitFor();
      await carol.page.evaluate(() => localStorage.setItem("chat.token", "v1.forged.token"));
      await carol.page.reload();
      await carol.page.getByRole("alert").filter({ hasText: "session has expired" }).waitFor();
      assert.equal(await carol.page.evaluate(() => localStorage.getItem("chat.token")), null);
    });

    for (const p of people) assert.deepEqual(p.errors, [], `${p.name}: no script or CSP errors`);
  } finally {
    await browser?.close();
    await server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("web app: open mode asks for a name and refuses one in use", async () => {
  await using server = await startTestServer();
  const browser = await launchBrowser();
  try {
    const url = server.http + "/";
    const first = await person(browser, url, "dana", { phone: true });
    const second = await person(browser, url, "dana");
    await first.page.getByText("Pick a name to join the conversation.").waitFor();
    assert.equal(await first.page.getByLabel("Password").count(), 0, "no password in open mode");
    await first.page.getByLabel("Your name").fill("dana");
    await first.page.getByRole("button", { name: "Join" }).click();
    await ready(first);
    await second.page.getByLabel("Your name").fill("dana");
    await second.page.getByRole("button", { name: "Join" }).click();
    await second.page.getByRole("alert").filter({ hasText: 'The name "dana" is in use' }).waitFor();
    await second.page.getByLabel("Your name").fill("emil");
    await second.page.getByRole("button", { name: "Join" }).click();
    await ready(second);
    await send(second, "hello from emil");
    await first.page.locator(".msg", { hasText: "hello from emil" }).waitFor();
    await first.page.reload();
    await ready(first);
    await first.page.locator(".msg", { hasText: "hello from emil" }).waitFor();
    for (const p of [first, second]) assert.deepEqual(p.errors, [], `${p.name}: no errors`);
  } finally {
    await browser.close();
  }
});
