/**
 * The whole way in, as the issue tells it: the admin runs `chat invite` on the
 * server's shell, sends the link, the friend opens it in a browser, picks a
 * name and a password, and is in the chat — with sign-up off. The same link
 * then tells the next person, in words, that it has been used.
 */
import assert from "node:assert/strict";
import { SERVE } from "../chat_process.ts";
import { runClient } from "../client_helpers.ts";
import { hashPassword, startTestServer } from "../helpers.ts";
import { person, ready, until, withBrowser } from "./people.ts";

Deno.test("web app: chat invite prints a link; a friend opens it in a browser and is in", async () => {
  const srv = await startTestServer({
    users: { alice: { password: await hashPassword("alice-password"), role: "admin" } },
  });
  await withBrowser(async (browser) => {
    const r = await runClient(
      ["invite", "--url", srv.http, "--users", `${srv.dir}/users.json`],
      { permissions: SERVE },
    );
    assert.equal(r.code, 0, r.stderr);
    const link = /\n {2}(http\S+\/#\/invite\/[A-Za-z0-9_-]{22})\n/.exec(r.stdout)?.[1];
    assert.ok(link, r.stdout);
    // The server listens on 127.0.0.1 here, so the link names it.
    assert.ok(link.startsWith(srv.http), link);

    const zoe = await person(browser, link, "zoe");
    await zoe.page.getByRole("heading", { name: "You're invited to this chat" }).waitFor();
    await zoe.page.getByLabel("Username").fill("zoe");
    await zoe.page.getByLabel("Password").fill("zoe-password");
    await zoe.page.getByRole("button", { name: "Create account and join" }).click();
    await ready(zoe);
    await until(
      () => Promise.resolve(zoe.page.url() === `${srv.http}/#/general`),
      "zoe is in general",
    );
    assert.equal(await zoe.page.locator(".me-name").textContent(), "zoe");

    const late = await person(browser, link, "yan");
    await late.page.getByText("This invite link has been used").waitFor();
    assert.deepEqual(zoe.errors, []);
  }, srv);
});
