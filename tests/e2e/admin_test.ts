/**
 * Invite links and the admin page in a real browser, on a real server: an
 * admin makes a link, copies it, shows its QR code (the code of that very
 * link) and revokes it after one question; the audit log lists what was
 * done, newest first, a page at a time. A friend opens a link, is told
 * beside the field what is wrong, makes an account and lands in the chat
 * signed in; links that were used, expired, revoked or never existed say so
 * in words. A member sees no way to the admin page and nothing of it at its
 * address. Screenshots of the invites tab and the invite page, desktop and
 * phone.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { encode } from "uqr";
import { SqliteAdminStore } from "../../server/admin/sqlite.ts";
import { SqliteStore } from "../../server/store/sqlite.ts";
import { pageHash, parsePage, parseRoute } from "../../web/route.ts";
import { hashPassword, signIn as connect, startTestServer, type TestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { type Person, person, ready, signIn, until, withBrowser } from "./people.ts";

const PASSWORDS = { alice: "alice-password", bob: "bob-password" };

/** users.json with alice as the admin and bob as a member. */
async function users(): Promise<Record<string, string>> {
  return {
    alice: { password: await hashPassword(PASSWORDS.alice), role: "admin" },
    bob: await hashPassword(PASSWORDS.bob),
  } as unknown as Record<string, string>;
}

/** The session token the page keeps. */
async function tokenOf(page: Page): Promise<string> {
  const token = await page.evaluate(() => localStorage.getItem("chat.token"));
  assert.ok(token, "the page keeps a session token");
  return token;
}

/** Calls the server's HTTP API as the test (not the page); resolves the status and the JSON. */
async function api(
  server: TestServer,
  method: string,
  path: string,
  opts: { token?: string; body?: unknown } = {},
): Promise<{ status: number; json: Record<string, unknown> }> {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  const res = await fetch(server.http + path, {
    method,
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  return { status: res.status, json: await res.json() };
}

interface InviteJson {
  code: string;
  url: string;
  uses: number;
  used: number;
  admin: boolean;
  created: number;
  expires: number;
  state: string;
  usedBy: string[];
}

/** Makes an invite through the API with an admin's token. */
async function makeInvite(
  server: TestServer,
  token: string,
  body: Record<string, unknown> = {},
): Promise<InviteJson> {
  const res = await api(server, "POST", "/api/invites", { token, body });
  assert.equal(res.status, 201, JSON.stringify(res.json));
  return res.json as unknown as InviteJson;
}

/** The dark cells of the QR code the page draws, as "x,y" (from its `<rect>` runs). */
async function drawnCells(p: Person): Promise<string[]> {
  const runs = await p.page.locator("svg.qr rect[fill='#000000']").evaluateAll((els) =>
    els.map((el) => [
      Number(el.getAttribute("x")),
      Number(el.getAttribute("y")),
      Number(el.getAttribute("width")),
    ])
  );
  const cells: string[] = [];
  for (const [x, y, w] of runs) for (let i = 0; i < w; i++) cells.push(`${x + i},${y}`);
  return cells.sort();
}

/** The dark cells of the QR code of `text`, encoded as the page encodes it. */
function expectedCells(text: string): string[] {
  const cells: string[] = [];
  encode(text, { ecc: "M", border: 4 }).data.forEach((row, y) =>
    row.forEach((dark, x) => dark && cells.push(`${x},${y}`))
  );
  return cells.sort();
}

/** Opens the admin page from the user menu (the drawer on a phone), then its Invites tab. */
async function openAdmin(p: Person): Promise<void> {
  if (p.phone) await p.page.getByRole("button", { name: /^Conversations/ }).click();
  await p.page.getByRole("link", { name: "Admin" }).click();
  // People is the first tab.
  await p.page.getByRole("heading", { name: "People" }).waitFor();
  assert.match(p.page.url(), /#\/admin\/people$/);
  await p.page.getByRole("link", { name: "Invites" }).click();
  await p.page.getByRole("heading", { name: "Invite links" }).waitFor();
  assert.match(p.page.url(), /#\/admin\/invites$/);
}

Deno.test("web app: an admin makes an invite link, copies it, shows its QR code and revokes it", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", {
      setup: (c) =>
        c.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.http }),
    });
    await signIn(alice, PASSWORDS.alice);
    await openAdmin(alice);
    const page = alice.page;
    await page.getByText("No invite links yet").waitFor();

    // Two people, thirty days, not admins.
    await page.getByLabel("People it lets in").fill("2");
    await page.getByLabel("Expires after").selectOption({ label: "30 days" });
    const before = Date.now();
    await page.getByRole("button", { name: "Create invite link" }).click();
    const item = page.locator("li.invite.fresh");
    await item.waitFor();
    const token = await tokenOf(page);
    const listed = await api(server, "GET", "/api/invites", { token });
    const invites = listed.json.invites as InviteJson[];
    assert.equal(invites.length, 1);
    const invite = invites[0];
    assert.equal(invite.uses, 2);
    assert.equal(invite.used, 0);
    assert.equal(invite.admin, false);
    assert.equal(invite.state, "ok");
    assert.equal(invite.expires - invite.created, 30 * 24 * 3600 * 1000);
    assert.ok(invite.created >= before - 1000 && invite.created <= Date.now());
    assert.equal(invite.url, `${server.http}/#/invite/${invite.code}`);
    assert.equal(await item.getAttribute("data-code"), invite.code);
    assert.equal(await item.locator(".state-badge").first().textContent(), "Active");
    assert.equal(await item.locator(".invite-uses").textContent(), "0 of 2 uses taken");
    assert.equal(await item.getByLabel("Invite link").inputValue(), invite.url);
    assert.match(
      await item.locator(".invite-meta").first().textContent() ?? "",
      /^Expires in 30 days/,
    );
    // The keyboard is on the new link's Copy button, ready to share it.
    assert.equal(
      await page.evaluate(() => document.activeElement?.textContent?.trim()),
      "Copy link",
    );

    await item.getByRole("button", { name: "Copy link" }).click();
    await item.getByRole("button", { name: "Copied" }).waitFor();
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), invite.url);

    // The QR code is that link's, drawn module by module.
    await item.getByRole("button", { name: "QR" }).click();
    const qr = item.getByRole("img", { name: "QR code of the invite link" });
    await qr.waitFor();
    assert.equal(
      await item.getByRole("button", { name: "QR" }).getAttribute("aria-expanded"),
      "true",
    );
    assert.deepEqual(await drawnCells(alice), expectedCells(invite.url));
    await screenshot(page, "admin-invites-desktop");

    // Revoke asks once; Cancel leaves the link working.
    await item.getByRole("button", { name: "Revoke" }).click();
    await item.getByRole("button", { name: "Cancel" }).click();
    assert.equal((await api(server, "GET", `/api/invites/${invite.code}`)).status, 200);
    await item.getByRole("button", { name: "Revoke" }).click();
    await item.getByRole("button", { name: "Revoke link" }).click();
    const revoked = page.locator(`li.invite[data-code="${invite.code}"][data-state="revoked"]`);
    await revoked.waitFor();
    assert.equal(await revoked.locator(".state-badge").first().textContent(), "Revoked");
    assert.equal(await revoked.getByRole("button").count(), 0);
    const gone = await api(server, "GET", `/api/invites/${invite.code}`);
    assert.deepEqual([gone.status, gone.json.error], [410, "invite_revoked"]);

    // The audit log says it, newest first.
    await page.getByRole("link", { name: "Audit log" }).click();
    await page.locator("table.audit tbody tr").nth(1).waitFor();
    const rows = await page.locator("table.audit tbody tr").evaluateAll((trs) =>
      trs.map((tr) =>
        [".audit-who", ".audit-what", ".audit-target"].map((c) =>
          tr.querySelector(c)!.textContent!.trim()
        ).join(" | ")
      )
    );
    const short = `invite ${invite.code.slice(0, 6)}…`;
    assert.deepEqual(rows, [
      `alice | revoked an invite link | ${short}`,
      `alice | created an invite link (2 uses, 30 days) | ${short}`,
    ]);
    assert.match(page.url(), /#\/admin\/audit$/);

    // Back to the chat: the address names the conversation again.
    await page.getByRole("button", { name: "Back to the chat" }).click();
    await page.locator("#composer").waitFor();
    await until(
      () => Promise.resolve(page.url().endsWith("#/general")),
      "the address is #/general",
    );
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: Copy link works without the Clipboard API (a page at a plain-http network address)", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", {
      setup: (c) =>
        c.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.http }),
    });
    await signIn(alice, PASSWORDS.alice);
    const invite = await makeInvite(server, await tokenOf(alice.page));
    // As on http://192.168.…: the page has no navigator.clipboard.
    await alice.page.addInitScript(() =>
      Object.defineProperty(Navigator.prototype, "clipboard", { get: () => undefined })
    );
    await alice.page.goto(server.http + "/#/admin/invites");
    await alice.page.reload();
    assert.equal(await alice.page.evaluate(() => typeof navigator.clipboard), "undefined");
    const item = alice.page.locator(`li.invite[data-code="${invite.code}"]`);
    await item.getByRole("button", { name: "Copy link" }).click();
    await item.getByRole("button", { name: "Copied" }).waitFor();
    // Another tab of the same browser, with the Clipboard API, reads what was copied.
    const other = await alice.context.newPage();
    await other.goto(server.http + "/");
    assert.equal(await other.evaluate(() => navigator.clipboard.readText()), invite.url);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: the audit log pages back with Load older, newest first, nothing twice", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const token = await tokenOf(alice.page);
    // 53 entries: more than one page of 50.
    for (let i = 0; i < 53; i++) await makeInvite(server, token, { uses: i + 1 });
    await alice.page.goto(server.http + "/#/admin/audit");
    const rows = alice.page.locator("table.audit tbody tr");
    await rows.nth(49).waitFor();
    assert.equal(await rows.count(), 50);
    await alice.page.getByRole("button", { name: "Load older" }).click();
    await rows.nth(52).waitFor();
    const ids = (await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute("data-id"))))
      .map(Number);
    assert.equal(ids.length, 53);
    assert.deepEqual(ids, [...ids].sort((a, b) => b - a));
    assert.equal(new Set(ids).size, 53);
    // Newest first: the last invite made (53 uses) leads, the first (1 use) ends the list.
    assert.match(
      await rows.first().locator(".audit-what").textContent() ?? "",
      /\(53 uses, 7 days\)/,
    );
    assert.match(await rows.last().locator(".audit-what").textContent() ?? "", /\(1 use, 7 days\)/);
    // Nothing older is left: the button goes.
    await alice.page.getByRole("button", { name: "Load older" }).waitFor({ state: "detached" });
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: a friend opens an invite link, makes an account and lands in the chat", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, PASSWORDS.alice);
    const invite = await makeInvite(server, await tokenOf(alice.page), { uses: 2 });

    const dave = await person(browser, invite.url, "dave");
    const page = dave.page;
    await page.getByRole("heading", { name: "You're invited to this chat" }).waitFor();
    await until(
      async () =>
        await page.evaluate(() => document.activeElement?.getAttribute("name")) === "username",
      "the name field has the focus",
    );
    await screenshot(page, "invite-page-desktop");

    // Too short a password: said beside the field, nothing sent.
    await page.getByLabel("Username").fill("dave");
    await page.getByLabel("Password").fill("short");
    await page.getByRole("button", { name: "Create account and join" }).click();
    await page.locator("#invite-password-error", {
      hasText: "The password is too short: use at least 8 characters",
    }).waitFor();
    assert.equal(await page.getByLabel("Password").getAttribute("aria-invalid"), "true");
    // A name someone has: the server says so, beside the name.
    await page.getByLabel("Username").fill("bob");
    await page.getByLabel("Password").fill("dave-password");
    await page.getByRole("button", { name: "Create account and join" }).click();
    await page.locator("#invite-name-error", {
      hasText: 'The name "bob" is taken: choose another',
    }).waitFor();
    assert.equal(await page.locator("#invite-password-error").count(), 0);
    const still = await api(server, "GET", "/api/invites", { token: await tokenOf(alice.page) });
    assert.equal((still.json.invites as InviteJson[])[0].used, 0);

    await page.getByLabel("Username").fill("dave");
    await page.getByRole("button", { name: "Create account and join" }).click();
    await ready(dave);
    // In the chat as dave, at the lobby's address: the invite's is gone.
    await until(
      () => Promise.resolve(page.url() === `${server.http}/#/general`),
      "the address is #/general",
    );
    assert.equal(await page.locator(".me-name").textContent(), "dave");
    assert.equal(await page.evaluate(() => localStorage.getItem("chat.user")), "dave");
    // A member: no way to the admin page.
    assert.equal(await page.getByRole("link", { name: "Admin" }).count(), 0);
    // The session is kept like any other: a reload stays signed in.
    await page.reload();
    await ready(dave);
    assert.equal(await page.locator(".me-name").textContent(), "dave");
    assert.equal(await page.getByLabel("Password").count(), 0);

    // alice sees who joined with her link.
    await openAdmin(alice);
    const item = alice.page.locator(`li.invite[data-code="${invite.code}"]`);
    await item.locator(".used-by", { hasText: "Joined with it: dave" }).waitFor();
    assert.equal(await item.locator(".invite-uses").textContent(), "1 of 2 uses taken");
    assert.deepEqual(dave.errors, []);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: an invite link on a phone, and one opened while signed in as someone else", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(alice, PASSWORDS.alice);
    const token = await tokenOf(alice.page);
    const invite = await makeInvite(server, token, { admin: true });

    // alice's own phone opens the link: she is told who she is, and may sign out to go on.
    await alice.page.goto(invite.url);
    await alice.page.getByText("You're signed in as alice").waitFor();
    assert.equal(await alice.page.getByLabel("Username").count(), 0);
    await alice.page.getByRole("button", { name: "Go to the chat as alice" }).click();
    await ready(alice);
    await until(
      () => Promise.resolve(alice.page.url().endsWith("#/general")),
      "alice is back in the chat",
    );

    // Someone new on a phone, dark: the form says this link makes an admin.
    const erin = await person(browser, invite.url, "erin", { phone: true, dark: true });
    await erin.page.getByText("You will be an admin of this chat.").waitFor();
    await screenshot(erin.page, "invite-page-phone");
    await erin.page.getByLabel("Username").fill("erin");
    await erin.page.getByLabel("Password").fill("erin-password");
    await erin.page.getByRole("button", { name: "Create account and join" }).click();
    await ready(erin);
    // An admin from the link: the admin page is in her menu.
    await openAdmin(erin);

    // alice opens the link again and signs out to use it: the form, on her phone now.
    await alice.page.goto(invite.url.replace(invite.code, (await makeInvite(server, token)).code));
    await alice.page.getByRole("button", { name: "Sign out and create an account" }).click();
    await alice.page.getByLabel("Username").waitFor();
    assert.equal(await alice.page.evaluate(() => localStorage.getItem("chat.token")), null);
    assert.match(alice.page.url(), /#\/invite\//);
    assert.deepEqual(erin.errors, []);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: used, expired, revoked and unknown invite links say so in words", async () => {
  const dir = await Deno.makeTempDir({ prefix: "chat-test-" });
  const store = SqliteStore.open(`${dir}/chat.db`);
  const server = await startTestServer({ users: await users(), dir, store });
  try {
    const alice = await connect(server.ws, "alice", PASSWORDS.alice);
    const token = alice.welcome.token;
    await alice.close();
    const used = await makeInvite(server, token);
    const taken = await api(server, "POST", `/api/invites/${used.code}`, {
      body: { name: "frank", password: "frank-password" },
    });
    assert.equal(taken.status, 201);
    const revoked = await makeInvite(server, token);
    assert.equal(
      (await api(server, "DELETE", `/api/invites/${revoked.code}`, { token })).status,
      200,
    );
    // Nothing the API makes is expired yet: this one is written straight into the store.
    const expired = "E".repeat(21) + "x";
    const day = 24 * 3600 * 1000;
    await SqliteAdminStore.open(store).createInvite({
      code: expired,
      by: "alice",
      created: Date.now() - 8 * day,
      expires: Date.now() - day,
      uses: 1,
      used: 0,
      admin: false,
      usedBy: [],
    });
    const cases = [
      [used.code, "used", "This invite link has been used"],
      [expired, "expired", "This invite link has expired"],
      [revoked.code, "revoked", "This invite link was revoked by an admin"],
      ["NoSuchInviteCodeHere00", "unknown", "This invite link is not valid"],
    ];
    await withBrowser(async (browser) => {
      for (const [code, state, words] of cases) {
        const p = await person(browser, `${server.http}/#/invite/${code}`, "someone");
        const main = p.page.locator(`main.invite-page[data-invite="${state}"]`);
        await main.waitFor();
        assert.equal(await main.getByRole("alert").locator("h2").textContent(), words);
        assert.equal(await p.page.getByLabel("Password").count(), 0);
        if (state === "unknown") {
          // The way to the normal sign-in: the form, at the bare address.
          await p.page.getByRole("button", { name: "Go to sign-in" }).click();
          await p.page.getByRole("button", { name: "Sign in", exact: true }).waitFor();
          assert.equal(p.page.url(), `${server.http}/`);
        }
        assert.deepEqual(p.errors, []);
        await p.context.close();
      }
    });
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

Deno.test("web app: a member has no way to the admin page and sees nothing of it", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const bob = await person(browser, server.http + "/", "bob");
    const asked: string[] = [];
    bob.page.on("request", (r) => {
      if (/\/api\/(invites|audit|people|bans)/.test(r.url())) asked.push(r.url());
    });
    await signIn(bob, PASSWORDS.bob);
    assert.equal(await bob.page.getByRole("link", { name: "Admin" }).count(), 0);
    await bob.page.goto(server.http + "/#/admin/invites");
    await bob.page.getByText("This page is for the chat's admins.").waitFor();
    await ready(bob);
    for (const what of ["People", "Invites", "Audit log", "Create invite link"]) {
      assert.equal(await bob.page.getByText(what, { exact: true }).count(), 0, what);
    }
    assert.deepEqual(asked, []);
    // The server refuses him anyway.
    const res = await api(server, "GET", "/api/invites", { token: await tokenOf(bob.page) });
    assert.deepEqual([res.status, res.json.error], [403, "forbidden"]);
    await bob.page.getByRole("button", { name: "Back to the chat" }).click();
    await bob.page.locator("#composer").waitFor();

    // Made an admin in users.json while signed in: the menu shows the way at once.
    const file = `${server.dir}/users.json`;
    const all = JSON.parse(await Deno.readTextFile(file));
    all.bob = { password: all.bob, role: "admin" };
    await Deno.writeTextFile(file, JSON.stringify(all));
    await bob.page.getByRole("link", { name: "Admin" }).click();
    await bob.page.getByRole("heading", { name: "People" }).waitFor();
    assert.deepEqual(bob.errors, []);
  }, server);
});

Deno.test("web app: the admin page on a phone: one column, full-width controls", async () => {
  const server = await startTestServer({ users: await users() });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(alice, PASSWORDS.alice);
    const token = await tokenOf(alice.page);
    // One that was used, to show its state beside the new one.
    const old = await makeInvite(server, token);
    await api(server, "POST", `/api/invites/${old.code}`, {
      body: { name: "gina", password: "gina-password" },
    });
    await openAdmin(alice);
    const page = alice.page;
    await page.getByRole("button", { name: "Create invite link" }).click();
    const item = page.locator("li.invite.fresh");
    await item.getByRole("button", { name: "QR" }).click();
    await item.getByRole("img", { name: "QR code of the invite link" }).waitFor();
    // Nothing wider than the screen; the form's controls span the card.
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      create: document.querySelector(".invite-form .btn")!.getBoundingClientRect().width,
      uses: document.querySelector(".invite-form input")!.getBoundingClientRect().width,
      card: document.querySelector(".invite-form")!.getBoundingClientRect().width,
    }));
    assert.equal(widths.page, 390);
    assert.equal(widths.create, widths.card);
    assert.equal(widths.uses, widths.card);
    await page.locator(`li.invite[data-code="${old.code}"][data-state="used"]`).waitFor();
    // The new link and its QR code in view, below the page's sticky header.
    await item.evaluate((el) => scrollTo(0, el.getBoundingClientRect().top + scrollY - 72));
    await screenshot(page, "admin-invites-phone");
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: invite and admin addresses are pages, not conversations", () => {
  const code = "rwp8sk_LUeZLH3d549exZw";
  assert.deepEqual(parsePage(`#/invite/${code}`), { kind: "invite", code });
  assert.deepEqual(parsePage("#/admin"), { kind: "admin", tab: "people" });
  assert.deepEqual(parsePage("#/admin/people"), { kind: "admin", tab: "people" });
  assert.deepEqual(parsePage("#/admin/invites"), { kind: "admin", tab: "invites" });
  assert.deepEqual(parsePage("#/admin/audit/"), { kind: "admin", tab: "audit" });
  for (
    const hash of [
      "#/general",
      "#/general/42",
      "#/@bob",
      "#/invite/",
      "#/invite/a b",
      "#/admin/x",
      "",
    ]
  ) {
    assert.equal(parsePage(hash), null, hash);
  }
  assert.equal(pageHash({ kind: "admin", tab: "audit" }), "#/admin/audit");
  assert.equal(pageHash({ kind: "invite", code }), `#/invite/${code}`);
  // An invite's address is no conversation's either.
  assert.equal(parseRoute(`#/invite/${code}`, "alice"), null);
});
