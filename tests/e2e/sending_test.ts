/**
 * No message is silently lost, in a real browser: quick bursts are paced to
 * the server's limits, unsent messages and drafts survive a reload (and stay
 * with their user), a message refused for good can be retried or deleted,
 * and a counter keeps messages within the size limit.
 */
import assert from "node:assert/strict";
import type { BrowserContext } from "playwright-core";
import type { ChatMessage } from "../../protocol.ts";
import { hashPassword, signIn as connect, startTestServer, type TestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { Network, type Person, person, ready, send, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password" };

async function users(): Promise<Record<string, string>> {
  return {
    alice: await hashPassword(PASSWORDS.alice),
    bob: await hashPassword(PASSWORDS.bob),
  };
}

/** Records the text of every toast the page shows, in `__toasts`. */
async function recordToasts(context: BrowserContext): Promise<void> {
  await context.addInitScript(() => {
    const w = globalThis as unknown as { __toasts: string[] };
    w.__toasts = [];
    new MutationObserver((records) => {
      for (const r of records) {
        const target = r.target instanceof Element ? r.target : r.target.parentElement;
        const changed = r.type === "characterData" ? target?.closest(".toast") : null;
        if (changed) w.__toasts.push(changed.textContent ?? "");
        for (const n of r.addedNodes) {
          if (!(n instanceof Element)) continue;
          for (const t of n.matches(".toast") ? [n] : n.querySelectorAll(".toast")) {
            w.__toasts.push(t.textContent ?? "");
          }
        }
      }
    }).observe(document, { childList: true, subtree: true, characterData: true });
  });
}

/** What another client (bob, over a plain WebSocket) finds in a room's history. */
async function history(server: TestServer, room: string): Promise<ChatMessage[]> {
  const bob = await connect(server.ws, "bob", PASSWORDS.bob);
  try {
    bob.send({ type: "join", room });
    await bob.next((f) => f.type === "joined" && f.room === room);
    bob.send({ type: "history", room, limit: 200 });
    const page = await bob.next((f) => f.type === "history" && f.room === room);
    return page.type === "history" ? page.messages : [];
  } finally {
    await bob.close();
  }
}

function texts(messages: ChatMessage[]): string[] {
  return messages.map((m) => m.text);
}

/** The unsent messages the page keeps for `user`, as their texts. */
function savedTexts(p: Person, user: string): Promise<string[]> {
  return p.page.evaluate((key) => {
    const saved = JSON.parse(localStorage.getItem(key) ?? "{}") as Record<
      string,
      { text: string }[]
    >;
    return Object.values(saved).flat().map((m) => m.text);
  }, `chat.unsent.${user}`);
}

async function waitingFor(p: Person): Promise<void> {
  await p.page.locator('.app[data-conn="waiting"]').waitFor();
}

/** Presses "Retry now" until the page is connected again (an attempt may be under way). */
async function reconnect(p: Person): Promise<void> {
  await until(async () => {
    if (await p.page.locator('.app[data-ready="true"]').count() > 0) return true;
    const retry = p.page.locator(".banner").getByRole("button", { name: "Retry now" });
    if (await retry.count() > 0) await retry.click({ timeout: 1000 }).catch(() => {});
    return false;
  }, `${p.name}'s page reconnects`);
}

Deno.test("web app: 75 messages typed quickly are all stored once, in order, with one notice at most", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", { setup: recordToasts });
    await signIn(alice, PASSWORDS.alice);
    const box = alice.page.locator("#composer");
    const written = Array.from({ length: 75 }, (_, i) => `burst ${i + 1}`);
    await box.focus();
    for (const text of written) {
      await alice.page.keyboard.insertText(text);
      await alice.page.keyboard.press("Enter");
    }
    await alice.page.locator(".msg[data-id]").nth(74).waitFor();
    await alice.page.locator(".msg.pending").first().waitFor({ state: "detached" });
    assert.deepEqual(texts(await history(server, "general")), written, "once each, in order");
    assert.equal(await alice.page.locator(".msg[data-id]").count(), 75);
    const toasts = await alice.page.evaluate(() =>
      (globalThis as unknown as { __toasts: string[] }).__toasts
    );
    assert.deepEqual(toasts.filter((x) => /too many frames/i.test(x)), [], "no server jargon");
    assert.ok(
      toasts.filter((x) => x.includes("You're sending messages too fast")).length <= 1,
      `at most one notice: ${JSON.stringify(toasts)}`,
    );
    assert.deepEqual(
      toasts.filter((x) => !x.includes("You're sending messages too fast")),
      [],
      "no other toasts",
    );
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: unsent messages and drafts survive a reload and are sent once", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const net = new Network();
    const alice = await person(browser, server.http + "/", "alice", {
      setup: (c) => net.attach(c),
    });
    // A second room, for a second draft.
    const raw = await connect(server.ws, "alice", PASSWORDS.alice);
    raw.send({ type: "join", room: "ops" });
    await raw.next("joined");
    await raw.close();
    await signIn(alice, PASSWORDS.alice);
    const box = alice.page.locator("#composer");

    await net.cut();
    await waitingFor(alice);
    const written = ["first while away", "second while away", "third while away"];
    for (const text of written) {
      await box.fill(text);
      await box.press("Enter");
    }
    await alice.page.locator(".msg.pending", { hasText: "Waiting for the connection…" }).nth(2)
      .waitFor();
    await alice.page.locator('[data-conv="#ops"]').click();
    await box.fill("a draft for ops");
    await alice.page.locator('[data-conv="#general"]').click();
    await box.fill("a thought for later");
    await until(async () => (await savedTexts(alice, "alice")).length === 3, "they are saved");

    await alice.page.reload();
    // Back before the connection is: the messages wait, the draft is in the box.
    const waiting = alice.page.locator(".msg.pending", {
      hasText: "Waiting for the connection…",
    });
    await waiting.nth(2).waitFor();
    assert.deepEqual(
      (await waiting.locator(".msg-text").allInnerTexts()).map((x) => x.trim()),
      written,
    );
    assert.equal(await box.inputValue(), "a thought for later");
    await alice.page.locator('[data-conv="#ops"]').click();
    await until(async () => (await box.inputValue()) === "a draft for ops", "ops has its draft");
    await alice.page.locator('[data-conv="#general"]').click();
    await until(async () => (await box.inputValue()) === "a thought for later", "draft is back");

    net.restore();
    await reconnect(alice);
    await alice.page.locator(".msg:not(.pending)", { hasText: "third while away" }).waitFor();
    await alice.page.locator(".msg.pending").first().waitFor({ state: "detached" });
    assert.deepEqual(texts(await history(server, "general")), written, "once each, in order");
    assert.equal(await box.inputValue(), "a thought for later", "a draft is not sent");
    assert.deepEqual(await savedTexts(alice, "alice"), []);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: a message sent right after typing does not come back as a draft after a reload", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const box = alice.page.locator("#composer");
    // Typed and sent well within the pause after which a draft is saved.
    await box.fill("sent at once");
    await box.press("Enter");
    await alice.page.locator(".msg:not(.pending)", { hasText: "sent at once" }).waitFor();
    await alice.page.reload();
    await ready(alice);
    assert.equal(await box.inputValue(), "", "the message box is empty");
    const saved = await alice.page.evaluate(() => localStorage.getItem("chat.drafts.alice"));
    assert.ok(!saved?.includes("sent at once"), `no draft kept: ${saved}`);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: a message refused for good shows Not sent with Retry and Delete", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const net = new Network();
    const alice = await person(browser, server.http + "/", "alice", {
      setup: (c) => net.attach(c),
    });
    const raw = await connect(server.ws, "alice", PASSWORDS.alice);
    try {
      raw.send({ type: "join", room: "ops" });
      await raw.next("joined");
      await signIn(alice, PASSWORDS.alice);
      await alice.page.locator('[data-conv="#ops"]').click();
      await alice.page.locator(".title h1", { hasText: "ops" }).waitFor();

      // Written while offline; meanwhile alice leaves #ops on another device.
      await net.cut();
      await waitingFor(alice);
      const box = alice.page.locator("#composer");
      for (const text of ["ship it", "wrong room"]) {
        await box.fill(text);
        await box.press("Enter");
      }
      await alice.page.locator(".msg.pending.waiting").nth(1).waitFor();
      raw.send({ type: "leave", room: "ops" });
      await raw.next("left");
      net.restore();
      await reconnect(alice);

      const failed = alice.page.locator(".msg.pending.failed");
      await failed.nth(1).waitFor();
      const reason = "Not sent: You're not in #ops any more: join it again, then retry";
      for (const text of ["ship it", "wrong room"]) {
        const row = failed.filter({ hasText: text });
        await row.getByText(reason).waitFor();
        await row.getByRole("button", { name: "Retry" }).waitFor();
        await row.getByRole("button", { name: "Delete" }).waitFor();
      }
      await alice.page.getByText("You're not in #ops any more.").waitFor();
      await screenshot(alice.page, "not-sent-desktop");

      // Back in the room, Retry sends it (from the keyboard).
      await alice.page.getByRole("button", { name: "Join #ops" }).click();
      await box.waitFor();
      const ship = failed.filter({ hasText: "ship it" });
      await ship.getByRole("button", { name: "Retry" }).focus();
      await alice.page.keyboard.press("Enter");
      await alice.page.locator(".msg:not(.pending)", { hasText: "ship it" }).waitFor();
      await ship.waitFor({ state: "detached" });
      assert.equal(
        await alice.page.evaluate(() => document.activeElement?.id),
        "composer",
        "the keyboard goes back to the message box",
      );

      // Delete takes the other away, from storage too.
      assert.deepEqual(await savedTexts(alice, "alice"), ["wrong room"]);
      await failed.filter({ hasText: "wrong room" }).getByRole("button", { name: "Delete" })
        .click();
      await failed.first().waitFor({ state: "detached" });
      assert.deepEqual(await savedTexts(alice, "alice"), []);
      await alice.page.reload();
      await ready(alice);
      await alice.page.locator(".msg", { hasText: "ship it" }).waitFor();
      assert.equal(await alice.page.locator(".msg", { hasText: "wrong room" }).count(), 0);
      assert.deepEqual(texts(await history(server, "ops")), ["ship it"], "stored once");
      assert.deepEqual(alice.errors, []);
    } finally {
      await raw.close();
    }
  }, server);
});

Deno.test("web app: a byte counter shows near the size limit and sending stops above it", async () => {
  // 40 bytes as the server counts them: UTF-8, with quotes, backslashes, tabs and newlines twice.
  const server = await startTestServer({ users: await users(), args: ["--max-message", "40"] });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(alice, PASSWORDS.alice);
    const box = alice.page.locator("#composer");
    const counter = alice.page.locator("#composer-count");
    const sendButton = alice.page.getByRole("button", { name: "Send" });
    const base = "a".repeat(30);

    await box.fill(base + "abcde");
    assert.equal(await counter.count(), 0, "no counter far from the limit (35 of 40)");
    await box.fill(base + '"é"');
    await counter.filter({ hasText: /^4 bytes left$/ }).waitFor();
    await box.fill(base + '"é"ü');
    await counter.filter({ hasText: /^2 bytes left$/ }).waitFor();
    await box.fill(base + '"é"ü\\');
    await counter.filter({ hasText: /^0 bytes left$/ }).waitFor();
    assert.equal(await sendButton.isEnabled(), true, "exactly at the limit it may be sent");
    await box.fill(base + '"é"ü\\😀');
    await counter.filter({ hasText: /^4 bytes too long$/ }).waitFor();
    assert.equal(await sendButton.isEnabled(), false, "the send button is off above the limit");
    await box.press("Enter");
    assert.equal(await box.inputValue(), base + '"é"ü\\😀', "Enter keeps the text");
    assert.equal(await alice.page.locator(".msg.pending").count(), 0, "nothing was sent");
    await screenshot(alice.page, "counter-phone");

    // Exactly 40 bytes with a tab, a quote, an emoji and an accent: the server agrees.
    const fits = '😀\t"é' + "x".repeat(30);
    await box.fill(fits);
    await counter.filter({ hasText: /^0 bytes left$/ }).waitFor();
    await box.press("Enter");
    await alice.page.locator(".msg:not(.pending)", { hasText: "xxxxxxxx" }).waitFor();
    assert.equal(await counter.count(), 0, "the counter goes with the text");
    assert.deepEqual(texts(await history(server, "general")), [fits]);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: another user on the same browser neither sees nor sends someone's unsent messages", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const net = new Network();
    const shared = await person(browser, server.http + "/", "alice", {
      setup: (c) => net.attach(c),
    });
    await signIn(shared, PASSWORDS.alice);
    const box = shared.page.locator("#composer");
    await net.cut();
    await waitingFor(shared);
    await box.fill("alice's secret plan");
    await box.press("Enter");
    await shared.page.locator(".msg.pending", { hasText: "alice's secret plan" }).waitFor();
    await box.fill("alice's draft");
    await shared.page.getByRole("button", { name: "Sign out" }).click();
    await shared.page.getByLabel("Username").waitFor();
    net.restore();

    // Bob signs in on the same browser.
    const bob: Person = { ...shared, name: "bob" };
    await signIn(bob, PASSWORDS.bob);
    await shared.page.locator(".list-start, .msg").first().waitFor();
    assert.equal(await box.inputValue(), "", "no draft of alice's");
    assert.equal(await shared.page.locator(".msg.pending").count(), 0);
    assert.equal(await shared.page.getByText("alice's secret plan").count(), 0);
    await send(bob, "bob was here");
    assert.deepEqual(texts(await history(server, "general")), ["bob was here"]);
    assert.deepEqual(await savedTexts(shared, "bob"), []);
    assert.deepEqual(await savedTexts(shared, "alice"), ["alice's secret plan"], "kept for alice");

    // Alice again: her message goes out once and her draft is back.
    await shared.page.getByRole("button", { name: "Sign out" }).click();
    await signIn(shared, PASSWORDS.alice);
    await shared.page.locator(".msg:not(.pending)", { hasText: "alice's secret plan" }).waitFor();
    await until(async () => (await box.inputValue()) === "alice's draft", "her draft is back");
    assert.deepEqual(texts(await history(server, "general")), [
      "bob was here",
      "alice's secret plan",
    ]);
    assert.deepEqual(shared.errors, []);
  }, server);
});
