/**
 * Moderation in the web app, in real browsers on a real server: the admin
 * page's People tab lists every account with its role, presence and ban;
 * making someone an admin or a member reaches their browser at once (the
 * admin entry comes and goes, the admin page tells a demoted admin so); the
 * last admin is refused in the server's words; a ban from the People tab
 * shuts the banned user's browser out with the reason on the sign-in screen
 * and it stops reconnecting, until an unban lets them sign in again;
 * removing an account ends its sessions; a kicked user is told who removed
 * them and the room says so; an admin removing someone's message (from the
 * toolbar, or a phone's long-press sheet) leaves "message removed by an
 * admin" in every browser. Screenshots of the People
 * tab (desktop, phone) and of the ban notice.
 */
import assert from "node:assert/strict";
import type { Locator, Page } from "playwright-core";
import type { ServerFrame } from "../../protocol.ts";
import {
  closeAll,
  hashPassword,
  signIn as connect,
  signInWithToken,
  startTestServer,
  type TestServer,
} from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { type Person, person, ready, send, signIn, until, withBrowser } from "./people.ts";
import { localTimes } from "../../web/time.ts";

const PASSWORDS: Record<string, string> = {
  alice: "alice-password",
  bob: "bob-password",
  carol: "carol-password",
  dave: "dave-password",
};

/** users.json: alice is the admin, the others members. */
async function users(): Promise<Record<string, string>> {
  const out: Record<string, unknown> = {};
  for (const [name, pw] of Object.entries(PASSWORDS)) {
    const hash = await hashPassword(pw);
    out[name] = name === "alice" ? { password: hash, role: "admin" } : hash;
  }
  return out as Record<string, string>;
}

/** The session token the page keeps. */
async function tokenOf(page: Page): Promise<string> {
  const token = await page.evaluate(() => localStorage.getItem("chat.token"));
  assert.ok(token, "the page keeps a session token");
  return token;
}

/** GETs an admin route as the test; resolves the JSON. */
async function get(server: TestServer, path: string, token: string): Promise<unknown> {
  const res = await fetch(server.http + path, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200, path);
  return await res.json();
}

/** Opens the admin page's People tab from the user menu (the drawer on a phone). */
async function openPeople(p: Person): Promise<void> {
  if (p.phone) await p.page.getByRole("button", { name: /^Conversations/ }).click();
  await p.page.getByRole("link", { name: "Admin" }).click();
  await p.page.getByRole("heading", { name: "People" }).waitFor();
  assert.match(p.page.url(), /#\/admin\/people$/);
  await p.page.locator("li.person-admin").first().waitFor();
}

/** A person's row in the People tab. */
function rowOf(p: Person, name: string): Locator {
  return p.page.locator(`li.person-admin[data-name="${name}"]`);
}

/** What a row shows, in order: name, badges, presence, ban. */
async function shown(row: Locator): Promise<string> {
  return await row.locator(".person-text").evaluate((el) =>
    [...el.querySelectorAll(".person-admin-name, .state-badge, .seen, .ban-text")]
      .map((e) => e.textContent!.trim())
      .join(" | ")
  );
}

/** Bans `name` from the People tab: reason and duration as the form offers them. */
async function ban(p: Person, name: string, reason: string, duration: string): Promise<void> {
  const row = rowOf(p, name);
  await row.getByRole("button", { name: "Ban…" }).click();
  const form = row.getByRole("form", { name: `Ban ${name}` });
  await form.getByLabel(`Reason (shown to ${name})`).fill(reason);
  await form.getByLabel("How long").selectOption({ label: duration });
  await form.getByRole("button", { name: `Ban ${name}` }).click();
  await row.getByRole("status").filter({ hasText: `${name} is banned` }).waitFor();
}

Deno.test("web app: the People tab lists roles, presence and bans; role changes reach the other browser live", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    // dave is signed in elsewhere: removing his account ends that session.
    const dave = await connect(server.ws, "dave", PASSWORDS.dave);
    let daveAgain: Awaited<ReturnType<typeof connect>> | undefined;
    try {
      await openPeople(alice);
      const page = alice.page;
      assert.deepEqual(
        await page.locator("li.person-admin").evaluateAll((els) =>
          els.map((e) => `${e.getAttribute("data-name")} ${e.getAttribute("data-role")}`)
        ),
        ["alice admin", "bob member", "carol member", "dave member"],
      );
      await until(
        async () => (await shown(rowOf(alice, "dave"))).endsWith("online"),
        "dave shows online",
      );
      assert.equal(await shown(rowOf(alice, "alice")), "alice | You | Admin | online");
      assert.equal(await shown(rowOf(alice, "bob")), "bob | Member | online");
      assert.equal(await shown(rowOf(alice, "carol")), "carol | Member | not seen yet");
      // Nobody bans or removes themselves: alice's own row offers neither.
      assert.deepEqual(
        await rowOf(alice, "alice").locator(".person-actions button").allTextContents(),
        ["Make member"],
      );
      assert.deepEqual(
        await rowOf(alice, "bob").locator(".person-actions button").allTextContents(),
        ["Make admin", "Ban…", "Sign out everywhere…", " Remove…"],
      );

      // A ban for a day, with its reason, shows in the list as the server keeps it.
      const before = Date.now();
      await ban(alice, "carol", "spam", "1 day");
      const token = await tokenOf(page);
      const { bans } = await get(server, "/api/bans", token) as {
        bans: { user: string; by: string; until: number; reason: string; at: number }[];
      };
      assert.equal(bans.length, 1);
      assert.deepEqual([bans[0].user, bans[0].by, bans[0].reason], ["carol", "alice", "spam"]);
      assert.ok(bans[0].until >= before + 86_400_000 && bans[0].until <= Date.now() + 86_400_000);
      const dayLater = new Date(bans[0].until).toLocaleString("en-US", {
        dateStyle: "medium",
        timeStyle: "short",
        timeZone: "UTC",
      });
      assert.equal(
        await shown(rowOf(alice, "carol")),
        `carol | Member | Banned | not seen yet | Banned until ${dayLater} by alice: spam`,
      );
      // Fresh from the server, the same.
      await page.getByRole("button", { name: "Refresh" }).click();
      await until(
        async () => (await shown(rowOf(alice, "carol"))).includes("Banned until"),
        "the ban is listed after a refresh",
      );
      assert.deepEqual(
        await rowOf(alice, "carol").locator(".person-actions button").allTextContents(),
        ["Make admin", "Unban", "Sign out everywhere…", " Remove…"],
      );
      await screenshot(page, "admin-people-desktop");

      // Made an admin: bob's browser gets the admin entry at once.
      assert.equal(await bob.page.getByRole("link", { name: "Admin" }).count(), 0);
      await rowOf(alice, "bob").getByRole("button", { name: "Make admin" }).click();
      await rowOf(alice, "bob").getByRole("status").filter({ hasText: "bob is an admin now" })
        .waitFor();
      await rowOf(alice, "bob").and(page.locator('[data-role="admin"]')).waitFor();
      await bob.page.getByRole("link", { name: "Admin" }).waitFor();

      // bob opens the admin page; made a member while there, he is told so, and the tabs go.
      await openPeople(bob);
      const bobRow = rowOf(alice, "bob");
      await bobRow.getByRole("button", { name: "Make member" }).click();
      const ask = bobRow.getByRole("group", { name: "Make bob a member?" });
      assert.equal(
        await ask.locator("span").textContent(),
        "Make bob a member? They lose the admin page and the admin actions at once.",
      );
      await ask.getByRole("button", { name: "Make member" }).click();
      await bobRow.getByRole("status").filter({ hasText: "bob is a member now" }).waitFor();
      await bob.page.getByText(
        "You are a member now, no longer an admin: this page is for the chat's admins.",
      ).waitFor();
      assert.equal(await bob.page.getByRole("link", { name: "People" }).count(), 0);
      await bob.page.getByRole("button", { name: "Back to the chat" }).click();
      await bob.page.locator("#composer").waitFor();
      assert.equal(await bob.page.getByRole("link", { name: "Admin" }).count(), 0);

      // The last admin cannot make herself a member: the server's words say why.
      const aliceRow = rowOf(alice, "alice");
      await aliceRow.getByRole("button", { name: "Make member" }).click();
      const own = aliceRow.getByRole("group", { name: "Make alice a member?" });
      assert.equal(
        await own.locator("span").textContent(),
        "Make yourself a member? You lose this page and the admin actions at once.",
      );
      await own.getByRole("button", { name: "Make member" }).click();
      await aliceRow.getByRole("alert").filter({
        hasText: '"alice" is the last admin: make another user an admin first',
      }).waitFor();
      assert.equal(await aliceRow.getAttribute("data-role"), "admin");

      // Signing dave out everywhere asks once; his session ends, his password still works.
      const daveRow = rowOf(alice, "dave");
      const devices = (row: Locator) => row.locator(".sessions").textContent();
      assert.equal((await devices(daveRow))?.trim(), "· signed in on 1 device");
      await daveRow.getByRole("button", { name: "Sign out everywhere…" }).click();
      await daveRow.getByRole("group", { name: "Sign dave out everywhere?" })
        .getByRole("button", { name: "Sign out everywhere" }).click();
      await daveRow.getByRole("status").filter({ hasText: "dave is signed out everywhere" })
        .waitFor();
      assert.equal((await dave.waitClose()).code, 4003);
      await until(
        async () => (await devices(daveRow))?.trim() === "· no device signed in",
        "the row counts no session of dave's",
      );
      daveAgain = await connect(server.ws, "dave", PASSWORDS.dave);

      // Removing dave's account asks once, then his session ends and he leaves the list.
      await daveRow.getByRole("button", { name: "Remove…" }).click();
      await daveRow.getByRole("group", { name: "Remove dave's account?" })
        .getByRole("button", { name: "Remove account" }).click();
      await daveRow.waitFor({ state: "detached" });
      assert.equal((await daveAgain!.waitClose()).code, 4003);
      const { people } = await get(server, "/api/people", token) as { people: { name: string }[] };
      assert.deepEqual(people.map((p) => p.name), ["alice", "bob", "carol"]);
      assert.deepEqual(
        await page.locator("li.person-admin").evaluateAll((els) =>
          els.map((e) => e.getAttribute("data-name"))
        ),
        ["alice", "bob", "carol"],
      );

      // The audit log says it all in words, newest first (the refusal changed nothing).
      await page.getByRole("link", { name: "Audit log" }).click();
      await page.locator('tr[data-action="remove"]').waitFor();
      assert.deepEqual(
        await page.locator("table.audit tbody tr").evaluateAll((rows) =>
          rows.map((r) =>
            [".audit-who", ".audit-what", ".audit-target"].map((c) =>
              r.querySelector(c)!.textContent
            ).join(" | ")
          )
        ),
        [
          "alice | removed the account | dave",
          "alice | signed them out everywhere | dave",
          "alice | changed the role to member | bob",
          "alice | changed the role to admin | bob",
          "alice | banned (for 1 day: spam) | carol",
        ],
      );
      assert.deepEqual(alice.errors, []);
      assert.deepEqual(bob.errors, []);
    } finally {
      await closeAll(dave, daveAgain);
    }
  }, server);
});

Deno.test("web app: a banned user is told why on the sign-in screen and stops reconnecting; unban lets them in", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    let sockets = 0;
    bob.page.on("websocket", () => sockets++);
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);
    assert.equal(sockets, 1);
    await openPeople(alice);

    // An admin cannot be banned: the server's words show beside him. bob is made
    // an admin behind the list's back (users.json), so the list still offers it.
    const file = `${server.dir}/users.json`;
    const all = JSON.parse(await Deno.readTextFile(file));
    all.bob = { password: all.bob, role: "admin" };
    await Deno.writeTextFile(file, JSON.stringify(all));
    await bob.page.getByRole("link", { name: "Admin" }).waitFor();
    const bobRow = rowOf(alice, "bob");
    await bobRow.getByRole("button", { name: "Ban…" }).click();
    await bobRow.getByRole("form", { name: "Ban bob" }).getByRole("button", { name: "Ban bob" })
      .click();
    await bobRow.getByRole("alert").filter({
      hasText: '"bob" is an admin: make them a member first',
    }).waitFor();
    all.bob = all.bob.password;
    await Deno.writeTextFile(file, JSON.stringify(all));
    await bob.page.getByRole("link", { name: "Admin" }).waitFor({ state: "detached" });

    // Banned until unbanned: bob's browser says so on the sign-in screen.
    await bobRow.getByRole("button", { name: "Cancel" }).click();
    await ban(alice, "bob", "spamming the lounge", "Until unbanned");
    const notice = bob.page.locator(".signin-notice");
    await notice.waitFor();
    assert.equal(
      await notice.locator(".banned-message").textContent(),
      "You are banned from this chat: spamming the lounge",
    );
    assert.equal(await notice.getByRole("heading").textContent(), "An admin banned you");
    await bob.page.getByLabel("Password").waitFor();
    await screenshot(bob.page, "banned-notice-desktop");

    // And it stops: nothing reconnects within two of the app's retry intervals
    // (the first two waits after a drop are at most 625 ms and 1250 ms), even
    // when the network comes back or the page is shown again.
    const opened = sockets;
    await bob.page.evaluate(() => {
      dispatchEvent(new Event("online"));
      document.dispatchEvent(new Event("visibilitychange"));
    });
    const t0 = await bob.page.evaluate(() => performance.now());
    await bob.page.waitForFunction((t) => performance.now() - t > 2000, t0, { polling: 100 });
    assert.equal(sockets, opened, "no new WebSocket after the ban");
    assert.equal(await bob.page.locator(".app").getAttribute("data-conn"), "offline");

    // A reload tries the saved session once, is told again, and stops again.
    await bob.page.reload();
    await notice.waitFor();
    assert.equal(
      await notice.locator(".banned-message").textContent(),
      "You are banned from this chat: spamming the lounge",
    );
    const t1 = await bob.page.evaluate(() => performance.now());
    await bob.page.waitForFunction((t) => performance.now() - t > 2000, t1, { polling: 100 });
    assert.equal(sockets, opened + 1, "the reload tried once");

    // Signing in with the password is refused with the same words.
    await bob.page.getByLabel("Username").fill("bob");
    await bob.page.getByLabel("Password").fill(PASSWORDS.bob);
    await bob.page.getByRole("button", { name: "Sign in", exact: true }).click();
    await until(() => Promise.resolve(sockets === opened + 2), "the sign-in opened a socket");
    await notice.waitFor();
    assert.equal(
      await notice.locator(".banned-message").textContent(),
      "You are banned from this chat: spamming the lounge",
    );

    // Unbanned: the row says so, and bob signs in again.
    await bobRow.getByRole("button", { name: "Unban" }).click();
    await bobRow.getByRole("status").filter({ hasText: "bob can sign in again" }).waitFor();
    assert.equal(await shown(bobRow), "bob | Member | last seen just now");
    await signIn(bob, PASSWORDS.bob);
    assert.equal(await notice.count(), 0);
    await bob.page.locator("#composer").waitFor();
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: a ban with an end says until when, in the reader's time", () => {
  assert.equal(
    localTimes("You are banned from this chat until 2026-12-08T10:32:00.000Z: spam"),
    `You are banned from this chat until ${
      new Date("2026-12-08T10:32:00.000Z").toLocaleString(undefined, {
        dateStyle: "medium",
        timeStyle: "short",
      })
    }: spam`,
  );
  assert.equal(localTimes("no time here"), "no time here");
});

Deno.test("web app: a kicked user is told who removed them; an admin removes bob's message", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    const bob = await person(browser, server.http + "/", "bob");
    await signIn(alice, PASSWORDS.alice);
    await signIn(bob, PASSWORDS.bob);

    // bob's message in general: alice, an admin, gets Delete on it too.
    await send(bob, "buy cheap watches");
    const msg = (p: Person) =>
      p.page.locator(".msg[data-id]").filter({ hasText: "buy cheap watches" });
    const id = await msg(bob).getAttribute("data-id");
    await msg(alice).hover();
    await msg(alice).locator(".msg-actions")
      .getByRole("button", { name: /^Delete the message from bob/ }).click();
    const ask = alice.page.getByRole("dialog", { name: "Remove bob's message?" });
    await ask.waitFor();
    assert.equal(
      await ask.locator(".confirm-text").textContent(),
      "This is bob's message, not yours: as an admin you remove it for everyone, and it cannot be brought back. In its place everyone sees “message removed by an admin”.",
    );
    await ask.getByRole("button", { name: "Remove message" }).click();
    for (const p of [alice, bob]) {
      await p.page.locator(`.msg[data-id="${id}"] .tombstone`, {
        hasText: "message removed by an admin",
      }).waitFor();
    }
    // bob (a member) has no Delete on alice's messages.
    await send(alice, "please stop");
    await bob.page.locator(".msg[data-id]").filter({ hasText: "please stop" }).hover();
    assert.equal(
      await bob.page.getByRole("button", { name: /^Delete the message from alice/ }).count(),
      0,
    );

    // bob is in #lounge (joined on another connection of his: all of them join).
    const bobWs = await connect(server.ws, "bob", PASSWORDS.bob);
    const aliceWs = await signInWithToken(server.ws, await tokenOf(alice.page));
    try {
      for (const c of [aliceWs, bobWs]) {
        c.send({ type: "join", room: "lounge" });
        await c.next((f: ServerFrame) => f.type === "joined" && f.room === "lounge");
      }
      await bob.page.locator(".sidebar .conv-name", { hasText: /^lounge$/ }).waitFor();
      await alice.page.goto(server.http + "/#/lounge");
      await ready(alice);
      await bob.page.goto(server.http + "/#/lounge");
      await ready(bob);
      await bob.page.locator("#composer").waitFor();

      aliceWs.send({ type: "kick", room: "lounge", user: "bob", ref: "k1" });
      const kicked = await aliceWs.next((f: ServerFrame) => f.type === "kicked");
      assert.deepEqual(kicked, { type: "kicked", room: "lounge", user: "bob", ref: "k1" });
      await bob.page.locator(".toast", { hasText: "alice removed you from #lounge" }).waitFor();
      // Out of the room: back in general, and lounge is gone from the list.
      await until(
        () => Promise.resolve(bob.page.url().endsWith("#/general")),
        "bob is back in general",
      );
      await bob.page.locator(".sidebar .conv-name", { hasText: /^lounge$/ }).waitFor({
        state: "detached",
      });
      await alice.page.locator("li.notice.leave", { hasText: "alice removed bob from #lounge" })
        .waitFor();
    } finally {
      await closeAll(bobWs, aliceWs);
    }
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: the People tab on a phone: stacked cards, full-width actions", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(alice, PASSWORDS.alice);
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    try {
      await openPeople(alice);
      await until(
        async () => (await shown(rowOf(alice, "bob"))).endsWith("online"),
        "bob shows online",
      );
      await ban(alice, "carol", "spam", "7 days");
      await rowOf(alice, "dave").getByRole("button", { name: "Ban…" }).click();
      const page = alice.page;
      const sizes = await page.evaluate(() => {
        const card = document.querySelector('li.person-admin[data-name="bob"]')!;
        const buttons = [...card.querySelectorAll(".person-actions .btn")];
        return {
          page: document.documentElement.scrollWidth,
          card: card.getBoundingClientRect().width,
          actions: card.querySelector(".person-actions")!.getBoundingClientRect().width,
          buttons: buttons.map((b) => Math.round(b.getBoundingClientRect().height)),
          form: document.querySelector(".ban-form input")!.getBoundingClientRect().width,
          formCard: document.querySelector(".ban-form")!.getBoundingClientRect().width,
        };
      });
      assert.equal(sizes.page, 390);
      // The actions span the card, below the name; every button is a thumb's height.
      assert.equal(sizes.actions, sizes.card);
      assert.ok(sizes.buttons.every((h) => h >= 36), `button heights ${sizes.buttons}`);
      assert.ok(sizes.form > sizes.formCard - 40, "the reason field spans the form");
      // carol's ban and dave's ban form in view, below the page's sticky header.
      await rowOf(alice, "carol").evaluate((el) =>
        scrollTo(0, el.getBoundingClientRect().top + scrollY - 72)
      );
      await screenshot(page, "admin-people-phone");
      assert.deepEqual(alice.errors, []);
    } finally {
      await closeAll(bob);
    }
  }, server);
});

Deno.test("web app: on a phone an admin's long-press sheet offers Delete on someone else's message", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(alice, PASSWORDS.alice);
    const bob = await connect(server.ws, "bob", PASSWORDS.bob);
    try {
      bob.send({ type: "send", room: "general", text: "off-topic advert", ref: "m1" });
      const sent = await bob.next((f: ServerFrame) => f.type === "message" && f.ref === "m1");
      const id = (sent as ServerFrame & { type: "message" }).id;
      const page = alice.page;
      const target = page.locator(`.msg[data-id="${id}"] .msg-text`);
      await target.waitFor();
      const box = (await target.boundingBox())!;
      const cdp = await alice.context.newCDPSession(page);
      const point = { x: box.x + 20, y: box.y + box.height / 2 };
      await cdp.send("Input.dispatchTouchEvent", { type: "touchStart", touchPoints: [point] });
      const sheet = page.locator("dialog.sheet");
      await sheet.waitFor();
      await cdp.send("Input.dispatchTouchEvent", { type: "touchEnd", touchPoints: [] });
      assert.deepEqual(
        await sheet.locator(".sheet-item").allInnerTexts(),
        ["Reply", "Delete", "Copy text", "Copy link", "Cancel"],
        "not alice's, but she is an admin: Delete, no Edit",
      );
      await sheet.getByRole("button", { name: "Delete" }).click();
      const ask = page.getByRole("dialog", { name: "Remove bob's message?" });
      await ask.getByRole("button", { name: "Remove message" }).click();
      await page.locator(`.msg[data-id="${id}"] .tombstone`, {
        hasText: "message removed by an admin",
      }).waitFor();
      const gone = await bob.next((f: ServerFrame) => f.type === "deleted" && f.id === id);
      assert.equal((gone as ServerFrame & { type: "deleted" }).removed, true);
      assert.deepEqual(alice.errors, []);
    } finally {
      await closeAll(bob);
    }
  }, server);
});
