/**
 * One's own account in a real browser: changing the password from settings
 * (every other session is signed out, this one stays), a sign-in from a
 * device used before is never slowed down by someone guessing the password,
 * and the notification reminder can be dismissed and brought back.
 */
import assert from "node:assert/strict";
import { hashPassword, signIn as connect, startTestServer } from "../helpers.ts";
import { screenshot } from "./browser.ts";
import { person, ready, send, signIn, until, withBrowser } from "./people.ts";

const OLD = "alice-password";
const NEW = "a-brand-new-secret";

Deno.test("web app: changing the password signs out every other session and keeps this one", async () => {
  const server = await startTestServer({ users: { alice: await hashPassword(OLD) } });
  await withBrowser(async (browser) => {
    const laptop = await person(browser, server.http + "/", "alice");
    await signIn(laptop, OLD);
    const phone = await person(browser, server.http + "/", "alice", { phone: true });
    await signIn(phone, OLD);
    // A second tab on the laptop: the same browser storage, the same session.
    const tab = await laptop.context.newPage();
    await tab.goto(server.http + "/");
    await tab.locator('.app[data-ready="true"]').waitFor();
    const page = laptop.page;
    await page.getByRole("button", { name: "Settings" }).click();
    const dialog = page.locator("#settings-dialog");
    await dialog.waitFor();
    const error = dialog.locator("#passwd-error");

    // The wrong current password: said in the form, nothing else happens.
    await dialog.getByLabel("Current password").fill("not-my-password");
    await dialog.getByLabel("New password", { exact: true }).fill(NEW);
    await dialog.getByLabel("New password again").fill(NEW);
    await dialog.getByRole("button", { name: "Change password" }).click();
    await until(
      async () => (await error.textContent()) === "Your current password is wrong",
      "the form says the current password is wrong",
    );
    await ready(laptop);
    // Two different new ones: caught before anything is sent.
    await dialog.getByLabel("Current password").fill(OLD);
    await dialog.getByLabel("New password again").fill(NEW + "x");
    await dialog.getByRole("button", { name: "Change password" }).click();
    await until(
      async () => (await error.textContent()) === "The new passwords don't match",
      "the form says the new passwords differ",
    );
    await screenshot(page, "settings-desktop");

    await dialog.getByLabel("New password again").fill(NEW);
    await dialog.getByRole("button", { name: "Change password" }).click();
    await dialog.getByText("Your password was changed.").waitFor();
    // The phone's session is over: it is back at the sign-in form.
    await phone.page.getByLabel("Password").waitFor();
    // The other tab was signed out with the old token, and took the new one from storage.
    await tab.locator('.app[data-ready="true"]').waitFor();
    assert.equal(await tab.getByLabel("Password").count(), 0);
    assert.equal(
      await tab.evaluate(() => localStorage.getItem("chat.token")),
      await page.evaluate(() => localStorage.getItem("chat.token")),
    );
    // This one goes on, and still does after a reload (it holds the new token).
    await ready(laptop);
    await page.keyboard.press("Escape");
    await send(laptop, "still here");
    await page.reload();
    await ready(laptop);
    await send(laptop, "after a reload");
    // The old password no longer signs in; the new one does.
    await phone.page.getByLabel("Username").fill("alice");
    await phone.page.getByLabel("Password").fill(OLD);
    await phone.page.getByRole("button", { name: "Sign in", exact: true }).click();
    await phone.page.locator("#signin-error", { hasText: "Wrong username or password" }).waitFor();
    await signIn(phone, NEW);
    assert.deepEqual(laptop.errors, []);
    assert.deepEqual(phone.errors, []);
  }, server);
});

Deno.test("web app: someone guessing your password does not slow you down on a device you used before", async () => {
  const server = await startTestServer({ users: { alice: await hashPassword(OLD) } });
  await withBrowser(async (browser) => {
    const alice = await person(browser, server.http + "/", "alice");
    await signIn(alice, OLD);
    // Signed out: the device keeps only the proof that alice used it.
    await alice.page.getByRole("button", { name: "Sign out" }).click();
    await alice.page.getByLabel("Password").waitFor();

    // Someone else makes wrong guesses until alice's name is throttled.
    let throttled = false;
    for (let i = 0; i < 30 && !throttled; i++) {
      const outcome = await connect(server.ws, "alice", `guess-${i}`).then(
        async (c) => {
          await c.close();
          return "signed in";
        },
        (err: Error) => err.message,
      );
      throttled = /too many sign-in attempts/i.test(outcome);
    }
    assert.ok(throttled, "the guesses were throttled");
    // A stranger's password attempt on alice's name must wait …
    const stranger = await connect(server.ws, "alice", OLD).then(
      async (c) => {
        await c.close();
        return "signed in";
      },
      (err: Error) => err.message,
    );
    assert.match(stranger, /too many sign-in attempts/i);
    // … alice on her own device is let in at once.
    await signIn(alice, OLD);
    assert.deepEqual(alice.errors, []);
  }, server);
});

Deno.test("web app: the notification reminder can be dismissed and comes back only from settings", async () => {
  const server = await startTestServer({ users: { alice: await hashPassword(OLD) } });
  await withBrowser(async (browser) => {
    // A browser that has not been asked yet (headless Chromium answers "denied").
    const alice = await person(browser, server.http + "/", "alice", {
      setup: async (context) => {
        await context.addInitScript(() => {
          Object.defineProperty(Notification, "permission", { get: () => "default" });
        });
      },
    });
    await signIn(alice, OLD);
    const page = alice.page;
    const prompt = page.getByRole("button", { name: /Notify me about mentions/ });
    await prompt.waitFor();
    await page.getByRole("button", { name: /^Dismiss: turn notifications on later/ }).click();
    await prompt.waitFor({ state: "detached" });
    await page.reload();
    await ready(alice);
    assert.equal(await prompt.count(), 0, "still dismissed after a reload");
    await page.getByRole("button", { name: "Settings" }).click();
    await page.getByRole("button", { name: "Show the reminder in the sidebar" }).click();
    await page.keyboard.press("Escape");
    await prompt.waitFor();
    assert.deepEqual(alice.errors, []);
  }, server);
});
