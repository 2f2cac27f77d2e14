/**
 * Finding people and rooms in a real browser: the new-DM dialog lists
 * everyone with an account (online first, then by last seen), matches names
 * ignoring case and keeps a wrong name in the dialog; mentions of people who
 * are not in the room say so and invite them; mentions of nobody are plain
 * text; typed room names become valid ones; rooms have topics; and "Mark all
 * as read" clears every badge on every device.
 */
import assert from "node:assert/strict";
import { hashPassword, signIn as connect, startTestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { type Person, person, send, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = {
  alice: "alice-password",
  bob: "bob-password",
  Carol: "carol-password",
  dave: "dave-password",
};

async function users(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) out[name] = await hashPassword(pw);
  return out;
}

async function waitForActive(p: Person, key: string): Promise<void> {
  await p.page.locator(`[data-conv="${key}"][aria-current="page"]`).waitFor({ state: "attached" });
}

/** Creates (or joins) a room from the rooms dialog, typing `typed`. */
async function createRoom(p: Person, typed: string): Promise<void> {
  await p.page.getByRole("button", { name: "Browse or create rooms" }).click();
  await p.page.locator("#room-input").fill(typed);
  await p.page.locator("#room-input").press("Enter");
}

Deno.test("web app: the new-DM dialog lists everyone with last seen, matches any case, and keeps a wrong name", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    // dave was here and left; bob is online now; Carol never came.
    const dave = await connect(server.ws, "dave", PASSWORDS.dave);
    await dave.close();
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    try {
      const alice = await person(browser, server.http + "/", "alice");
      await signIn(alice, PASSWORDS.alice);
      const page = alice.page;
      await page.getByRole("button", { name: "New direct message" }).click();
      const entries = page.locator(".directory .person");
      await until(async () => (await entries.count()) === 3, "everyone is listed");
      const listed = await entries.evaluateAll((els) =>
        els.map((e) => [
          e.querySelector(".person-name")!.textContent,
          e.querySelector(".seen")!.textContent,
        ])
      );
      assert.deepEqual(listed, [
        ["bob", "online"],
        ["dave", "last seen just now"],
        ["Carol", "not seen yet"],
      ]);
      await screenshot(page, "new-dm-desktop");
      // Filtering ignores case.
      await page.locator("#dm-input").fill("CAR");
      await until(async () => (await entries.count()) === 1, "the list narrows");
      // A name nobody has keeps the dialog open, with the reason under the field.
      await page.locator("#dm-input").fill("zed");
      await page.locator("#dm-input").press("Enter");
      const error = page.locator("#dm-error");
      await error.waitFor();
      assert.match(await error.textContent() ?? "", /no one called “zed”/);
      assert.ok(await page.locator("#dm-dialog").isVisible(), "the dialog stays open");
      assert.equal(await page.locator(".toast").count(), 0, "no toast");
      // Typed in another case: the conversation is with the account as it is spelled.
      await page.locator("#dm-input").fill("carol");
      await page.locator("#dm-input").press("Enter");
      await waitForActive(alice, "@Carol");
      await page.locator("#dm-dialog").waitFor({ state: "detached" });
      await send(alice, "hello Carol");
      assert.deepEqual(alice.errors, []);
    } finally {
      await bob.close();
    }
  }, server);
});

Deno.test("web app: the quick switcher and the DM dialog list everyone seen recently in open mode", async () => {
  const server = await startTestServer();
  await withBrowser(async (browser) => {
    const zed = await connect(server.ws, "zed");
    await zed.close();
    const alice = await person(browser, server.http + "/", "alice");
    await alice.page.getByLabel("Your name").fill("alice");
    await alice.page.getByRole("button", { name: "Join" }).click();
    await alice.page.locator('.app[data-ready="true"]').waitFor();
    await alice.page.keyboard.press("Control+k");
    await alice.page.keyboard.type("ze");
    await alice.page.locator('[role="option"][data-choice="@zed"]').waitFor();
    // zed's departure may reach the server after alice's sign-in: wait for it.
    await until(
      async () =>
        /^last seen/.test(
          await alice.page.locator('[data-choice="@zed"] .choice-note').textContent() ?? "",
        ),
      "zed is listed as last seen",
    );
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: a mention of someone not in the room says so and invites them; unknown names are plain text", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const bob = await person(browser, server.http + "/", "bob");
    await signIn(bob, PASSWORDS.bob);
    const page = alice.page;

    // Typed with spaces and capitals: the name shown before creating is the one made.
    await page.getByRole("button", { name: "Browse or create rooms" }).click();
    await page.locator("#room-input").fill("Design Team!");
    await until(
      async () => (await page.locator("#room-preview").textContent()) === "Creates #design-team",
      "the preview shows the name",
    );
    await page.locator("#room-input").press("Enter");
    await waitForActive(alice, "#design-team");

    const box = page.locator("#composer");
    await box.fill("@bob can you look? cc @nobody");
    const hint = page.locator(".mention-hint");
    await hint.waitFor();
    assert.equal(
      await hint.locator("span").textContent(),
      "bob isn't in #design-team, so they won't see this.",
    );
    await screenshot(page, "mention-hint-desktop");
    await hint.getByRole("button", { name: "Invite them" }).click();
    // Invited once: the hint goes (no second invitation by a second click).
    await hint.waitFor({ state: "detached" });
    // bob gets a direct message with a link that takes him into the room.
    await bob.page.locator('[data-conv="@alice"]').click();
    const link = bob.page.locator(".msg a", { hasText: "#/design-team" });
    await link.waitFor();
    await link.click();
    await waitForActive(bob, "#design-team");
    // Now he is a member: no hint for him any more.
    await until(
      async () => (await page.locator(".mention-hint").count()) === 0,
      "the hint goes once bob is in the room",
    );
    await box.press("Enter");
    const sent = page.locator(".msg:not(.pending)", { hasText: "can you look?" });
    await sent.waitFor();
    assert.deepEqual(await sent.locator(".mention").allTextContents(), ["@bob"]);
    assert.ok((await sent.locator(".msg-text").textContent())!.includes("cc @nobody"));
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: rooms have a topic, set by members and shown live in the header", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const bob = await person(browser, server.http + "/", "bob", { phone: true });
    await signIn(bob, PASSWORDS.bob);
    await createRoom(alice, "launch");
    await waitForActive(alice, "#launch");
    await alice.page.getByRole("button", { name: "Add a topic" }).click();
    await alice.page.locator("#topic-input").fill("Ship v2 on Friday");
    await alice.page.locator("#topic-input").press("Enter");
    await alice.page.locator(".topbar .topic-btn", { hasText: "Ship v2 on Friday" }).waitFor();
    await alice.page.locator(".notice", { hasText: "alice set the topic: Ship v2 on Friday" })
      .waitFor();
    // bob sees it in the rooms list, joins, and sees it in the header.
    await bob.page.getByRole("button", { name: /^Conversations/ }).click();
    await bob.page.getByRole("button", { name: "Browse or create rooms" }).click();
    await bob.page.locator(".room-topic", { hasText: "Ship v2 on Friday" }).waitFor();
    await bob.page.getByRole("button", { name: "Join #launch" }).click();
    await waitForActive(bob, "#launch");
    await bob.page.locator(".topbar .topic-btn", { hasText: "Ship v2 on Friday" }).waitFor();
    // bob changes it: alice sees the change live.
    await bob.page.locator(".topbar .topic-btn").click();
    await bob.page.locator("#topic-input").fill("Ship v2 on Monday");
    await bob.page.getByRole("button", { name: "Save" }).click();
    await alice.page.locator(".topbar .topic-btn", { hasText: "Ship v2 on Monday" }).waitFor();
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: Mark all as read clears every badge, on every device", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const laptop = await person(browser, server.http + "/", "alice");
    await signIn(laptop, PASSWORDS.alice);
    await createRoom(laptop, "ops");
    await waitForActive(laptop, "#ops");
    // The phone looks at #ops too, so #general stays unread there as well.
    const phone = await person(browser, server.http + "/#/ops", "alice", { phone: true });
    await signIn(phone, PASSWORDS.alice);
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    try {
      bob.send({ type: "send", to: "alice", text: "one" });
      bob.send({ type: "send", room: "general", text: "two" });
      for (const p of [laptop, phone]) {
        await p.page.locator('[data-conv="@bob"] .badge').waitFor({ state: "attached" });
        await p.page.locator('[data-conv="#general"] .badge').waitFor({ state: "attached" });
      }
      await laptop.page.getByRole("button", { name: "Mark all as read" }).click();
      for (const p of [laptop, phone]) {
        await until(
          async () => (await p.page.locator(".badge").count()) === 0,
          `${p.phone ? "the phone" : "the laptop"} shows nothing unread`,
        );
      }
      assert.equal(await laptop.page.getByRole("button", { name: "Mark all as read" }).count(), 0);
      // Shift+Escape does the same.
      bob.send({ type: "send", to: "alice", text: "three" });
      await laptop.page.locator('[data-conv="@bob"] .badge').waitFor();
      await laptop.page.keyboard.press("Shift+Escape");
      await laptop.page.locator('[data-conv="@bob"] .badge').waitFor({ state: "detached" });
    } finally {
      await bob.close();
    }
    assert.deepEqual(laptop.errors, []);
    assert.deepEqual(phone.errors, []);
  }, server);
});
