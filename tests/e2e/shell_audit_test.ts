/**
 * The shell's changes in the web app's audit log: entries recorded by
 * `chat user` (through `POST /api/audit`, as the server's shell) read in
 * words on the admin page, with "the server's shell" as who did them.
 */
import assert from "node:assert/strict";
import { shellRequest } from "../../cli/shell_request.ts";
import { hashPassword, startTestServer } from "../helpers.ts";
import { person, signIn, withBrowser } from "./people.ts";

Deno.test("web app: the audit log tells the shell's chat user changes in words", async () => {
  const server = await startTestServer({
    users: {
      alice: { password: await hashPassword("alice-password"), role: "admin" },
      bob: await hashPassword("bob-password"),
    },
  });
  await withBrowser(async (browser) => {
    const secret = (await Deno.readTextFile(`${server.dir}/.chat-secret`)).trim();
    // Oldest first, as chat user would send them.
    for (
      const body of [
        { action: "user.add", target: "carol", detail: "member" },
        { action: "user.add", target: "dave", detail: "admin" },
        { action: "passwd", target: "carol" },
        { action: "role", target: "carol", detail: "admin" },
        { action: "signout", target: "bob" },
        { action: "remove", target: "bob" },
      ]
    ) {
      const r = await shellRequest(server.http, secret, {
        method: "POST",
        path: "/api/audit",
        body,
      });
      assert.equal(r.status, 201, JSON.stringify(r.body));
    }
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, "alice-password");
    await alice.page.goto(server.http + "/#/admin/audit");
    const rows = alice.page.locator("table.audit tbody tr");
    await rows.nth(5).waitFor();
    const text = await rows.evaluateAll((trs) =>
      trs.map((tr) =>
        [".audit-who", ".audit-what", ".audit-target"].map((c) =>
          tr.querySelector(c)!.textContent!.trim()
        ).join(" | ")
      )
    );
    assert.deepEqual(text, [
      "the server's shell | removed the account | bob",
      "the server's shell | signed them out everywhere | bob",
      "the server's shell | changed the role to admin | carol",
      "the server's shell | changed the password | carol",
      "the server's shell | added the account as an admin | dave",
      "the server's shell | added the account | carol",
    ]);
    assert.deepEqual(alice.errors, []);
  }, server);
});
